//! Downward API values for environment variables: `fieldRef` (`podFieldSelectorRuntimeValue`,
//! `fieldpath.ExtractFieldPathAsString`) and `resourceFieldRef`
//! (`resource.ExtractContainerResourceValue` with the kubelet's limit defaulting).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::env::{EnvContext, EnvError};
use super::{pod_name, pod_namespace, pod_uid};
use crate::quantity::{Quantity, QuantityFormat};

/// The downward API value of a `fieldRef` (`podFieldSelectorRuntimeValue`).
pub(crate) fn field_ref_value(
    pod: &Pod,
    env: &str,
    selector: &ObjectFieldSelector,
    ctx: &EnvContext<'_>,
) -> Result<String, EnvError> {
    let version = selector.api_version.as_deref().unwrap_or_default();
    // The API server defaults an empty apiVersion to v1; accept both.
    if !version.is_empty() && version != "v1" {
        return Err(EnvError::UnsupportedFieldRefVersion {
            env: env.to_owned(),
            version: version.to_owned(),
        });
    }
    let path = selector.field_path.as_str();
    let metadata = &pod.metadata;
    if let Some((base, key)) = split_subscript(path) {
        let (map, key_to_check) = match base {
            "metadata.annotations" => (metadata.annotations.as_ref(), key.to_lowercase()),
            "metadata.labels" => (metadata.labels.as_ref(), key.to_owned()),
            _ => {
                return Err(EnvError::UnsupportedFieldPath {
                    env: env.to_owned(),
                    path: path.to_owned(),
                });
            }
        };
        qualified_name(&key_to_check).map_err(|reason| EnvError::InvalidFieldSubscript {
            env: env.to_owned(),
            path: path.to_owned(),
            reason,
        })?;
        return Ok(map.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    let spec = pod.spec.as_ref();
    let host_ip = |joined: bool| -> Result<String, EnvError> {
        if ctx.host_ips.is_empty() {
            return Err(EnvError::HostIpUnknown {
                env: env.to_owned(),
                path: path.to_owned(),
            });
        }
        Ok(if joined {
            ctx.host_ips.join(",")
        } else {
            ctx.host_ips[0].clone()
        })
    };
    let pod_ips = sort_pod_ips(&ctx.pod_ips, ctx.host_ips.first().map(String::as_str));
    Ok(match path {
        "metadata.name" => pod_name(pod).to_owned(),
        "metadata.namespace" => pod_namespace(pod).to_owned(),
        "metadata.uid" => pod_uid(pod).to_owned(),
        "metadata.labels" => format_map(metadata.labels.as_ref()),
        "metadata.annotations" => format_map(metadata.annotations.as_ref()),
        "spec.nodeName" | "spec.host" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => host_ip(false)?,
        "status.hostIPs" => host_ip(true)?,
        "status.podIP" => pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => pod_ips.join(","),
        _ => {
            return Err(EnvError::UnsupportedFieldPath {
                env: env.to_owned(),
                path: path.to_owned(),
            });
        }
    })
}

/// `sortPodIPs`: at most one IP of the node's primary family, then one of the other.
fn sort_pod_ips(pod_ips: &[String], primary_host_ip: Option<&str>) -> Vec<String> {
    let primary_is_v6 = primary_host_ip
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_ipv6());
    let of_family = |v6: bool| {
        pod_ips
            .iter()
            .find(|ip| ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6() == v6))
            .cloned()
    };
    of_family(primary_is_v6)
        .into_iter()
        .chain(of_family(!primary_is_v6))
        .collect()
}

/// `SplitMaybeSubscriptedPath`: `metadata.labels['app']` -> (`metadata.labels`, `app`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (base, key) = inner.split_once("['")?;
    (!base.is_empty()).then_some((base, key))
}

/// `IsQualifiedName`: `[prefix/]name`, name at most 63 characters of `[-A-Za-z0-9_.]`
/// starting and ending alphanumeric, prefix a DNS subdomain.
fn qualified_name(value: &str) -> Result<(), String> {
    let (prefix, name) = match value.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.as_bytes().first().is_some_and(alnum)
        && name.as_bytes().last().is_some_and(alnum)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        return Err(format!(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start \
             and end with an alphanumeric character (got {name:?})"
        ));
    }
    if let Some(prefix) = prefix {
        let prefix_ok = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|label| {
                let b = label.as_bytes();
                let lower = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
                b.first().is_some_and(lower)
                    && b.last().is_some_and(lower)
                    && b.iter().all(|c| lower(c) || *c == b'-')
            });
        if !prefix_ok {
            return Err(format!(
                "prefix part must be a DNS-1123 subdomain (got {prefix:?})"
            ));
        }
    }
    Ok(())
}

/// `fieldpath.FormatMap`: sorted `key="value"` lines, values Go-quoted.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", go_quote(value)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `%q` for strings: double quotes, backslash escapes, `\x`/`\u` for control characters.
fn go_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if u32::from(c) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The downward API value of a `resourceFieldRef` (`ExtractContainerResourceValue` on the pod
/// with limits defaulted to the node's allocatable).
pub(crate) fn resource_field_value(
    pod: &Pod,
    container: &Container,
    env: &str,
    selector: &ResourceFieldSelector,
    ctx: &EnvContext<'_>,
) -> Result<String, EnvError> {
    let parse = |field: &str, value: &ApiQuantity| {
        Quantity::from_api(value).map_err(|reason| EnvError::InvalidQuantity {
            env: env.to_owned(),
            field: field.to_owned(),
            value: value.0.clone(),
            reason,
        })
    };
    let divisor = match &selector.divisor {
        Some(divisor) => parse("resourceFieldRef.divisor", divisor)?,
        None => Quantity::ZERO,
    };
    let divisor = if divisor.is_zero() {
        Quantity::from_int(1, QuantityFormat::DecimalSI)
    } else {
        divisor
    };
    // Regular containers (and the container itself) see the node's allocatable as their
    // limit when they set none; init containers named by containerName do not.
    let (target, default_limits) = match selector.container_name.as_deref() {
        None | Some("") => (container, true),
        Some(name) => {
            let spec = pod.spec.as_ref();
            let regular = spec.and_then(|s| s.containers.iter().find(|c| c.name == name));
            let init =
                spec.and_then(|s| s.init_containers.iter().flatten().find(|c| c.name == name));
            match (regular, init) {
                (Some(c), _) => (c, true),
                (None, Some(c)) => (c, false),
                (None, None) => {
                    return Err(EnvError::ContainerNotFound {
                        env: env.to_owned(),
                        container: name.to_owned(),
                    });
                }
            }
        }
    };
    let (kind, resource) = selector
        .resource
        .split_once('.')
        .filter(|(kind, _)| matches!(*kind, "limits" | "requests"))
        .ok_or_else(|| EnvError::UnsupportedResource {
            env: env.to_owned(),
            resource: selector.resource.clone(),
        })?;
    let supported = matches!(resource, "cpu" | "memory" | "ephemeral-storage")
        || resource.starts_with("hugepages-");
    if !supported {
        return Err(EnvError::UnsupportedResource {
            env: env.to_owned(),
            resource: selector.resource.clone(),
        });
    }
    let resources = target.resources.as_ref();
    let list = if kind == "limits" {
        resources.and_then(|r| r.limits.as_ref())
    } else {
        resources.and_then(|r| r.requests.as_ref())
    };
    let field = format!("container {:?} resources.{kind}.{resource}", target.name);
    let mut amount = match list.and_then(|l| l.get(resource)) {
        Some(value) => parse(&field, value)?,
        None => Quantity::ZERO,
    };
    let defaultable = matches!(resource, "cpu" | "memory" | "ephemeral-storage");
    if kind == "limits"
        && default_limits
        && defaultable
        && amount.is_zero()
        && let Some(allocatable) = ctx.node_allocatable.get(resource)
    {
        amount = parse(&format!("node allocatable {resource}"), allocatable)?;
    }
    let (numerator, denominator) = if resource == "cpu" {
        (amount.milli_value(), divisor.milli_value())
    } else {
        (amount.value(), divisor.value())
    };
    Ok(ceil_div(numerator, denominator.max(1)).to_string())
}

fn ceil_div(numerator: i64, denominator: i64) -> i64 {
    let (n, d) = (i128::from(numerator), i128::from(denominator));
    let quotient = n / d + i128::from(n % d != 0 && (n > 0) == (d > 0));
    i64::try_from(quotient).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_matches_fmt_q() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(go_quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(go_quote("\u{1}é"), "\"\\x01é\"");
    }

    #[test]
    fn splits_subscripted_paths() {
        assert_eq!(
            split_subscript("metadata.labels['app']"),
            Some(("metadata.labels", "app"))
        );
        assert_eq!(split_subscript("metadata.labels"), None);
        assert_eq!(split_subscript("['x']"), None);
    }

    #[test]
    fn pod_ips_follow_node_family() {
        let ips = vec!["fd00::5".to_owned(), "10.0.0.5".to_owned()];
        assert_eq!(
            sort_pod_ips(&ips, Some("192.168.1.1")),
            ["10.0.0.5", "fd00::5"]
        );
        assert_eq!(sort_pod_ips(&ips, Some("fd00::1")), ["fd00::5", "10.0.0.5"]);
        assert_eq!(sort_pod_ips(&ips, None), ["10.0.0.5", "fd00::5"]);
    }
}

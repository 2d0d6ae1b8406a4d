//! The downward API: values a container reads about its pod, for environment variables
//! ([`crate::kuberuntime::env`]) and downward API volumes ([`crate::volumes::projection`]).
//!
//! | here | upstream |
//! | --- | --- |
//! | [`field_path_value`] | `pkg/fieldpath` `ExtractFieldPathAsString`, `FormatMap` |
//! | [`find_container`] | `pkg/api/v1/resource` `findContainerInPod` |
//! | [`container_resource_value`] | `pkg/api/v1/resource` `ExtractContainerResourceValue`, `MergeContainerResourceLimits` |
//!
//! What differs between the two consumers stays with them: environment variables also offer
//! `spec.*` and `status.*` fields and default limits only for regular containers; volume files
//! have their lines sorted.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::quantity::{Quantity, QuantityError, QuantityFormat};

/// Why a downward API value cannot be read; the messages are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownwardError {
    /// A `fieldRef` path the downward API does not offer.
    #[error("unsupported fieldPath: {path}")]
    UnsupportedFieldPath { path: String },
    /// A `metadata.labels['k']`/`metadata.annotations['k']` key that is not a valid key.
    #[error("invalid key subscript in {path}: {reason}")]
    InvalidFieldSubscript { path: String, reason: String },
    /// A `resourceFieldRef` resource the downward API does not offer.
    #[error("unsupported container resource : {resource}")]
    UnsupportedResource { resource: String },
    /// A `resourceFieldRef.containerName` that names no container of the pod.
    #[error("container {container} not found")]
    ContainerNotFound { container: String },
    /// A resource quantity (a request, a limit, a divisor) did not parse.
    #[error("invalid quantity {value:?} in {field}: {reason}")]
    InvalidQuantity {
        field: String,
        value: String,
        reason: QuantityError,
    },
}

/// The value of a pod's `metadata` field (`ExtractFieldPathAsString`): `metadata.name`,
/// `metadata.namespace`, `metadata.uid`, `metadata.labels` and `metadata.annotations` (as
/// sorted `key="value"` lines), and one label or annotation as `metadata.labels['key']`.
pub fn field_path_value(pod: &Pod, path: &str) -> Result<String, DownwardError> {
    let metadata = &pod.metadata;
    let unsupported = || DownwardError::UnsupportedFieldPath {
        path: path.to_owned(),
    };
    if let Some((base, key)) = split_subscript(path) {
        let (map, key_to_check) = match base {
            "metadata.annotations" => (metadata.annotations.as_ref(), key.to_lowercase()),
            "metadata.labels" => (metadata.labels.as_ref(), key.to_owned()),
            _ => return Err(unsupported()),
        };
        qualified_name(&key_to_check).map_err(|reason| DownwardError::InvalidFieldSubscript {
            path: path.to_owned(),
            reason,
        })?;
        return Ok(map.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    Ok(match path {
        "metadata.name" => text(&metadata.name),
        "metadata.namespace" => text(&metadata.namespace),
        "metadata.uid" => text(&metadata.uid),
        "metadata.labels" => format_map(metadata.labels.as_ref()),
        "metadata.annotations" => format_map(metadata.annotations.as_ref()),
        _ => return Err(unsupported()),
    })
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

/// `fieldpath.FormatMap`: `key="value"` lines in key order, values Go-quoted.
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
            // Control characters are all below U+00A0: C0 and DEL as `\x`, C1 as `\u`.
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

/// The container of `pod` named `name`: a regular container, else an init container
/// (`findContainerInPod`).
pub fn find_container<'a>(pod: &'a Pod, name: &str) -> Result<&'a Container, DownwardError> {
    let spec = pod.spec.as_ref();
    let regular = spec.into_iter().flat_map(|s| &s.containers);
    let init = spec
        .into_iter()
        .flat_map(|s| s.init_containers.iter().flatten());
    regular
        .chain(init)
        .find(|c| c.name == name)
        .ok_or_else(|| DownwardError::ContainerNotFound {
            container: name.to_owned(),
        })
}

/// The value of a `resourceFieldRef` of `container` (`ExtractContainerResourceValue`): the
/// request or limit divided by the divisor (default 1), rounded up; CPU in millicores before
/// the division.
///
/// With `default_limits` (the node's allocatable), a cpu, memory or ephemeral-storage limit
/// that is unset or zero reads as the node's value (`MergeContainerResourceLimits`).
pub fn container_resource_value(
    selector: &ResourceFieldSelector,
    container: &Container,
    default_limits: Option<&BTreeMap<String, ApiQuantity>>,
) -> Result<String, DownwardError> {
    let parse = |field: &str, value: &ApiQuantity| {
        Quantity::from_api(value).map_err(|reason| DownwardError::InvalidQuantity {
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
    let unsupported = || DownwardError::UnsupportedResource {
        resource: selector.resource.clone(),
    };
    let (kind, resource) = selector
        .resource
        .split_once('.')
        .filter(|(kind, _)| matches!(*kind, "limits" | "requests"))
        .ok_or_else(unsupported)?;
    let defaultable = matches!(resource, "cpu" | "memory" | "ephemeral-storage");
    if !defaultable && !resource.starts_with("hugepages-") {
        return Err(unsupported());
    }
    let resources = container.resources.as_ref();
    let list = if kind == "limits" {
        resources.and_then(|r| r.limits.as_ref())
    } else {
        resources.and_then(|r| r.requests.as_ref())
    };
    let field = format!("container {:?} resources.{kind}.{resource}", container.name);
    let mut amount = match list.and_then(|l| l.get(resource)) {
        Some(value) => parse(&field, value)?,
        None => Quantity::ZERO,
    };
    if kind == "limits"
        && defaultable
        && amount.is_zero()
        && let Some(allocatable) = default_limits.and_then(|limits| limits.get(resource))
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

/// `numerator / denominator` rounded towards positive infinity (`math.Ceil`).
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
        assert_eq!(go_quote("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\x01é\"");
        assert_eq!(go_quote("\u{7f}\u{85}"), "\"\\x7f\\u0085\"");
    }

    #[test]
    fn formats_maps_sorted() {
        let map: BTreeMap<String, String> = [("b", "2"), ("a", "x y")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(format_map(Some(&map)), "a=\"x y\"\nb=\"2\"");
        assert_eq!(format_map(None), "");
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

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                         "labels": {"app": "web", "tier": "front"}},
            "spec": {
                "containers": [{"name": "app", "resources": {
                    "requests": {"cpu": "250m", "memory": "64Mi"},
                    "limits": {"cpu": "0", "hugepages-2Mi": "4Mi"}}}],
                "initContainers": [{"name": "init"}]
            }
        }))
        .unwrap()
    }

    fn selector(resource: &str, divisor: Option<&str>) -> ResourceFieldSelector {
        ResourceFieldSelector {
            resource: resource.to_owned(),
            divisor: divisor.map(|d| ApiQuantity(d.to_owned())),
            ..ResourceFieldSelector::default()
        }
    }

    #[test]
    fn reads_metadata_fields() {
        let pod = pod();
        assert_eq!(field_path_value(&pod, "metadata.uid").unwrap(), "u1");
        assert_eq!(
            field_path_value(&pod, "metadata.labels").unwrap(),
            "app=\"web\"\ntier=\"front\""
        );
        assert_eq!(
            field_path_value(&pod, "metadata.labels['tier']").unwrap(),
            "front"
        );
        assert_eq!(
            field_path_value(&pod, "metadata.annotations['x']").unwrap(),
            ""
        );
        assert!(matches!(
            field_path_value(&pod, "metadata.labels['-bad']"),
            Err(DownwardError::InvalidFieldSubscript { .. })
        ));
        assert_eq!(
            field_path_value(&pod, "spec.nodeName")
                .unwrap_err()
                .to_string(),
            "unsupported fieldPath: spec.nodeName"
        );
    }

    #[test]
    fn resource_values_divide_round_up_and_default_limits() {
        let pod = pod();
        let app = find_container(&pod, "app").unwrap();
        let init = find_container(&pod, "init").unwrap();
        assert_eq!(init.name, "init");
        assert_eq!(
            find_container(&pod, "gone").unwrap_err().to_string(),
            "container gone not found"
        );
        let allocatable: BTreeMap<String, ApiQuantity> = [("cpu", "4"), ("memory", "8Gi")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), ApiQuantity(v.to_owned())))
            .collect();
        let value = |resource, divisor, container, defaults| {
            container_resource_value(&selector(resource, divisor), container, defaults)
        };
        assert_eq!(value("requests.cpu", None, app, None).unwrap(), "1");
        assert_eq!(value("requests.cpu", Some("1m"), app, None).unwrap(), "250");
        assert_eq!(
            value("requests.memory", Some("1Mi"), app, None).unwrap(),
            "64"
        );
        assert_eq!(
            value("limits.hugepages-2Mi", Some("1Mi"), app, None).unwrap(),
            "4"
        );
        // An unset or zero limit is the node's allocatable, when given.
        assert_eq!(
            value("limits.cpu", None, app, Some(&allocatable)).unwrap(),
            "4"
        );
        assert_eq!(value("limits.cpu", None, app, None).unwrap(), "0");
        assert_eq!(
            value("limits.memory", Some("1Gi"), init, Some(&allocatable)).unwrap(),
            "8"
        );
        assert_eq!(
            value("limits.gpu", None, app, None)
                .unwrap_err()
                .to_string(),
            "unsupported container resource : limits.gpu"
        );
        assert!(matches!(
            value("requests.cpu", Some("lots"), app, None),
            Err(DownwardError::InvalidQuantity { .. })
        ));
    }

    #[test]
    fn ceil_div_rounds_up() {
        assert_eq!(ceil_div(1500, 1000), 2);
        assert_eq!(ceil_div(-1500, 1000), -1);
        assert_eq!(ceil_div(2000, 1000), 2);
    }
}

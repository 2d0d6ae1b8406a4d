//! Values the downward API projects from the pod: metadata fields
//! (`pkg/api/v1/pod` `fieldpath.ExtractFieldPathAsString`) and container resources
//! (`pkg/api/v1/resource` `ExtractResourceValueByContainerNameAndNodeAllocatable`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::quantity::{Quantity, QuantityFormat};

/// The value of a `fieldRef.fieldPath` that volumes support.
pub fn extract_field_path(pod: &Pod, field_path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    if let Some((map, key)) = subscript(field_path) {
        let values = match map {
            "metadata.annotations" => meta.annotations.as_ref(),
            "metadata.labels" => meta.labels.as_ref(),
            _ => return Err(format!("unsupported fieldPath: {field_path}")),
        };
        return Ok(values.and_then(|v| v.get(key)).cloned().unwrap_or_default());
    }
    match field_path {
        "metadata.annotations" => Ok(format_map(meta.annotations.as_ref())),
        "metadata.labels" => Ok(format_map(meta.labels.as_ref())),
        "metadata.name" => Ok(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => Ok(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => Ok(meta.uid.clone().unwrap_or_default()),
        _ => Err(format!("unsupported fieldPath: {field_path}")),
    }
}

/// `metadata.labels['key']` -> (`metadata.labels`, `key`).
fn subscript(field_path: &str) -> Option<(&str, &str)> {
    let (map, rest) = field_path.split_once("['")?;
    Some((map, rest.strip_suffix("']")?))
}

/// `key="value"` lines in key order, values quoted as Go's `%q` does.
#[must_use]
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote`: double quotes, backslash escapes for quotes, backslashes and
/// control characters.
#[must_use]
pub fn go_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let code = u32::from(c);
                if code <= 0xffff {
                    let _ = write!(out, "\\u{code:04x}");
                } else {
                    let _ = write!(out, "\\U{code:08x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Sorts the lines of a multi-line value (labels, annotations), as the downward API plugin
/// does.
#[must_use]
pub fn sort_lines(value: &str) -> String {
    let mut lines: Vec<&str> = value.split('\n').collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// The value of a `resourceFieldRef` of a container of `pod`, limits defaulting to the node's
/// allocatable resources.
pub fn extract_resource_value(
    pod: &Pod,
    selector: &ResourceFieldSelector,
    node_allocatable: &BTreeMap<String, ApiQuantity>,
) -> Result<String, String> {
    let container_name = selector.container_name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref().ok_or("pod has no spec")?;
    let container: &Container = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == container_name)
        .ok_or_else(|| format!("container {container_name} not found"))?;
    let resources = container.resources.as_ref();
    let (kind, name) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource : {}", selector.resource))?;
    let known =
        matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if !known {
        return Err(format!(
            "unsupported container resource : {}",
            selector.resource
        ));
    }
    let value = match kind {
        "limits" => resources
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(name))
            .or_else(|| {
                // MergeContainerResourceLimits: unset limits are the node's allocatable.
                matches!(name, "cpu" | "memory" | "ephemeral-storage")
                    .then(|| node_allocatable.get(name))
                    .flatten()
            }),
        "requests" => resources
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(name)),
        _ => {
            return Err(format!(
                "unsupported container resource : {}",
                selector.resource
            ));
        }
    };
    let parse =
        |q: &ApiQuantity| Quantity::from_api(q).map_err(|_| format!("invalid quantity {:?}", q.0));
    let value = match value {
        Some(q) => parse(q)?,
        None => Quantity::ZERO,
    };
    let divisor = match &selector.divisor {
        Some(d) => parse(d)?,
        None => Quantity::from_int(1, QuantityFormat::DecimalSI),
    };
    let result = if name == "cpu" {
        let divisor = divisor.milli_value().max(1);
        ceil_div(value.milli_value(), divisor)
    } else {
        let divisor = divisor.value().max(1);
        ceil_div(value.value(), divisor)
    };
    Ok(result.to_string())
}

fn ceil_div(a: i64, b: i64) -> i64 {
    let q = a / b;
    if a % b != 0 && (a > 0) == (b > 0) {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\x01é\"");
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
}

//! The body of the kubelet's `PATCH pods/{name}/status`.
//!
//! Upstream (`pkg/util/pod` `PatchPodStatus`) diffs `{"status": old}` against
//! `{"metadata": {"uid": uid}, "status": new}` with `strategicpatch.CreateTwoWayMergePatch` and
//! sends the result as `application/strategic-merge-patch+json`; the UID makes the server
//! refuse the patch when the pod was replaced by another of the same name. This is the same
//! two-way diff, specialised to `PodStatus`:
//!
//! * maps are diffed field by field; a removed field becomes `null`;
//! * `conditions` (merge key `type`), `podIPs`, `hostIPs` (merge key `ip`) and
//!   `resourceClaimStatuses` (merge key `name`) are merge lists: changed or added elements are
//!   sent (changed ones with only their changed fields and the merge key), removed ones as
//!   `{"$patch": "delete", <key>: ...}`, and `$setElementOrder/<list>` gives the full order
//!   whenever the list changed;
//! * every other list, notably `containerStatuses` and `initContainerStatuses`, has no patch
//!   strategy and is replaced whole.

use k8s_openapi::api::core::v1::PodStatus;
use serde_json::{Map, Value};

use super::{Error, Result};

/// The merge key of a `PodStatus` list field, if it is a merge list.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "conditions" => Some("type"),
        "podIPs" | "hostIPs" => Some("ip"),
        "resourceClaimStatuses" => Some("name"),
        _ => None,
    }
}

/// The strategic merge patch that turns `old` (the status the API server has) into `new`, as
/// `{"metadata":{"uid":...},"status":{...}}`; `None` when the statuses are equal.
pub fn status_patch(uid: &str, old: &PodStatus, new: &PodStatus) -> Result<Option<Value>> {
    let old = serde_json::to_value(old).map_err(Error::SerializeStatus)?;
    let new = serde_json::to_value(new).map_err(Error::SerializeStatus)?;
    let empty = Map::new();
    let diff = diff_maps(
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
        merge_key,
    );
    if diff.is_empty() {
        return Ok(None);
    }
    let mut metadata = Map::new();
    metadata.insert("uid".to_owned(), Value::String(uid.to_owned()));
    let mut body = Map::new();
    body.insert("metadata".to_owned(), Value::Object(metadata));
    body.insert("status".to_owned(), Value::Object(diff));
    Ok(Some(Value::Object(body)))
}

/// Field-by-field diff of two maps; `lists` gives the merge key of this level's list fields.
fn diff_maps(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    lists: fn(&str) -> Option<&'static str>,
) -> Map<String, Value> {
    let mut patch = Map::new();
    for (field, new_value) in new {
        let Some(old_value) = old.get(field) else {
            patch.insert(field.clone(), new_value.clone());
            continue;
        };
        if old_value == new_value {
            continue;
        }
        match (old_value, new_value) {
            (Value::Object(o), Value::Object(n)) => {
                let nested = diff_maps(o, n, no_merge_lists);
                if !nested.is_empty() {
                    patch.insert(field.clone(), Value::Object(nested));
                }
            }
            (Value::Array(o), Value::Array(n)) => match lists(field) {
                Some(key) if keyed(o, key) && keyed(n, key) => {
                    diff_merge_list(field, o, n, key, &mut patch);
                }
                _ => {
                    patch.insert(field.clone(), new_value.clone());
                }
            },
            _ => {
                patch.insert(field.clone(), new_value.clone());
            }
        }
    }
    for field in old.keys() {
        if !new.contains_key(field) {
            patch.insert(field.clone(), Value::Null);
        }
    }
    patch
}

/// Below the top level of `PodStatus` no list has a merge strategy.
fn no_merge_lists(_: &str) -> Option<&'static str> {
    None
}

/// Every element is a map with a merge key.
fn keyed(items: &[Value], key: &str) -> bool {
    items
        .iter()
        .all(|item| item.as_object().is_some_and(|m| m.contains_key(key)))
}

/// The merge key of an element, as Go prints it for sorting.
fn key_of(item: &Value, key: &str) -> String {
    match item.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// The two-way diff of a merge list (upstream `diffListsOfMaps` + `normalizeSliceOrder`).
fn diff_merge_list(
    field: &str,
    old: &[Value],
    new: &[Value],
    key: &str,
    patch: &mut Map<String, Value>,
) {
    let mut changes: Vec<(usize, Value)> = Vec::new();
    let mut deletions: Vec<(String, Value)> = Vec::new();
    for (index, item) in new.iter().enumerate() {
        let k = key_of(item, key);
        match old.iter().find(|o| key_of(o, key) == k) {
            None => changes.push((index, item.clone())),
            Some(previous) => {
                let (Some(o), Some(n)) = (previous.as_object(), item.as_object()) else {
                    continue;
                };
                let mut diff = diff_maps(o, n, no_merge_lists);
                if !diff.is_empty() {
                    diff.insert(key.to_owned(), n.get(key).cloned().unwrap_or(Value::Null));
                    changes.push((index, Value::Object(diff)));
                }
            }
        }
    }
    for item in old {
        let k = key_of(item, key);
        if !new.iter().any(|n| key_of(n, key) == k) {
            let mut directive = Map::new();
            directive.insert("$patch".to_owned(), Value::String("delete".to_owned()));
            directive.insert(
                key.to_owned(),
                item.get(key).cloned().unwrap_or(Value::Null),
            );
            deletions.push((k, Value::Object(directive)));
        }
    }
    // Changed and added elements in the new order, then deletions sorted by key.
    changes.sort_by_key(|(index, _)| *index);
    deletions.sort_by(|a, b| a.0.cmp(&b.0));
    let items: Vec<Value> = changes
        .into_iter()
        .map(|(_, v)| v)
        .chain(deletions.into_iter().map(|(_, v)| v))
        .collect();

    let same_order = old.len() == new.len()
        && old
            .iter()
            .zip(new)
            .all(|(o, n)| key_of(o, key) == key_of(n, key));
    if !items.is_empty() || !same_order {
        let order = new
            .iter()
            .map(|item| {
                let mut entry = Map::new();
                entry.insert(
                    key.to_owned(),
                    item.get(key).cloned().unwrap_or(Value::Null),
                );
                Value::Object(entry)
            })
            .collect();
        patch.insert(format!("$setElementOrder/{field}"), Value::Array(order));
    }
    if !items.is_empty() {
        patch.insert(field.to_owned(), Value::Array(items));
    }
}

//! The directives of a strategic merge patch: the special keys that are instructions rather
//! than fields (`$patch`, `$retainKeys`, `$deleteFromPrimitiveList/<field>`,
//! `$setElementOrder/<field>`), and their removal from the result.

use serde_json::{Map, Value};

use super::{StrategicMergeFailure, type_name};

/// The key of the `$patch` directive, on an object or a list element.
pub(super) const DIRECTIVE_MARKER: &str = "$patch";
/// `$patch: delete`: delete this object, or the list element with this merge key.
pub(super) const DELETE: &str = "delete";
/// `$patch: replace`: replace this object, or the whole list this element is in.
pub(super) const REPLACE: &str = "replace";
/// `$patch: merge`: accepted by the patch format, refused when applied (as upstream).
pub(super) const MERGE: &str = "merge";
/// `$retainKeys: [...]`: clear every field of the original object not in the list.
const RETAIN_KEYS: &str = "$retainKeys";
/// `$deleteFromPrimitiveList/<field>: [...]`: delete these values from a list of scalars.
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
/// `$setElementOrder/<field>: [...]`: the order the merged list must have.
pub(super) const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// The `<field>` of a key `<prefix>/<field>`, or `None` when the part before the first `/` is
/// not exactly `prefix` (upstream `extractKey`).
pub(super) fn extract_key<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    let (head, field) = key.split_once('/')?;
    (head == prefix).then_some(field)
}

/// For a `$deleteFromPrimitiveList/<field>` key, the field it deletes from.
pub(super) fn delete_list_field(key: &str) -> Result<Option<&str>, StrategicMergeFailure> {
    if !key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
        return Ok(None);
    }
    extract_key(key, DELETE_FROM_PRIMITIVE_LIST)
        .map(Some)
        .ok_or_else(|| StrategicMergeFailure::InvalidDeleteFromPrimitiveList {
            key: key.to_owned(),
        })
}

/// Whether `key` is a `$setElementOrder/...` directive.
pub(super) fn is_set_element_order(key: &str) -> bool {
    key.starts_with(SET_ELEMENT_ORDER)
}

/// Applies a `$retainKeys` directive (upstream `applyRetainKeysDirective`): every field of
/// `original` not in the list is cleared. Every field the patch sets must be in the list.
pub(super) fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), StrategicMergeFailure> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retained) = retain else {
        return Err(StrategicMergeFailure::InvalidRetainKeys {
            reason: format!("$retainKeys must be a list, not {}", type_name(&retain)),
        });
    };
    let is_retained = |key: &str| retained.iter().any(|k| k.as_str() == Some(key));
    for (key, value) in patch.iter() {
        let exempt = value.is_null()
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || is_set_element_order(key);
        if !exempt && !is_retained(key) {
            return Err(StrategicMergeFailure::InvalidRetainKeys {
                reason: format!("the patch sets {key}, which $retainKeys does not list"),
            });
        }
    }
    original.retain(|key, _| is_retained(key));
    Ok(())
}

/// Removes every `null` member of the objects in `value`; `null` list elements stay
/// (upstream `discardNullValuesFromPatch`).
pub(super) fn discard_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(discard_nulls);
        }
        Value::Array(list) => list.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// Drops every object that carries a `$patch` directive from `value`, the value itself
/// included (`None`) (upstream `removeDirectives`): a directive about something the original
/// does not have has nothing to act on.
pub(super) fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE_MARKER) {
                return None;
            }
            let kept = map
                .into_iter()
                .filter_map(|(key, v)| remove_directives(v).map(|v| (key, v)))
                .collect();
            Some(Value::Object(kept))
        }
        Value::Array(list) => Some(Value::Array(
            list.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// Whether `key` is a directive rather than a field.
fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE_MARKER
        || key == RETAIN_KEYS
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
        || is_set_element_order(key)
}

/// Normalises a merge result the way kube-apiserver's decoding into the typed object does:
/// directive keys (left in values that were taken from the patch without merging, such as new
/// list elements or replaced lists) and `null` members are dropped everywhere.
pub(super) fn normalize_map(map: &mut Map<String, Value>) {
    map.retain(|key, value| !value.is_null() && !is_directive_key(key));
    map.values_mut().for_each(normalize);
}

fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => normalize_map(map),
        Value::Array(list) => list.iter_mut().for_each(normalize),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn extract_key_needs_the_exact_prefix_and_a_slash() {
        assert_eq!(
            extract_key("$setElementOrder/containers", SET_ELEMENT_ORDER),
            Some("containers")
        );
        assert_eq!(extract_key("$setElementOrder", SET_ELEMENT_ORDER), None);
        assert_eq!(extract_key("$setElementOrderX/a", SET_ELEMENT_ORDER), None);
        assert_eq!(
            extract_key("$setElementOrder/a/b", SET_ELEMENT_ORDER),
            Some("a/b")
        );
    }

    #[test]
    fn remove_directives_drops_objects_with_patch_directive() {
        let value = json!({"a": {"$patch": "delete"}, "b": [{"$patch": "replace"}, {"x": 1}]});
        assert_eq!(remove_directives(value), Some(json!({"b": [{"x": 1}]})));
        assert_eq!(
            remove_directives(json!({"$patch": "replace", "a": 1})),
            None
        );
    }

    #[test]
    fn normalize_drops_directive_keys_and_nulls_everywhere() {
        let mut map = json!({
            "spec": {"$setElementOrder/env": [], "env": [{"name": "a", "value": null, "$patch": "x"}]},
            "$retainKeys": [],
            "gone": null
        });
        let Value::Object(map_ref) = &mut map else {
            panic!()
        };
        normalize_map(map_ref);
        assert_eq!(map, json!({"spec": {"env": [{"name": "a"}]}}));
    }
}

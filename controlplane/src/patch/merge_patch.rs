//! JSON merge patch (RFC 7386, `application/merge-patch+json`), applied as kube-apiserver
//! applies it (`MergePatch` of `gopkg.in/evanphx/json-patch.v4`):
//! - an object patch merges into the object key by key, recursively; `null` deletes a key;
//! - any other patch value replaces the old value whole — lists are never merged;
//! - `null` members of the objects in a value that is taken over whole (a new key, or a value
//!   replacing one of another type) are dropped; `null` list elements stay.

use serde_json::{Map, Value};

use super::{PatchError, PatchType};

/// Applies the merge patch `patch` to `original`. The result is the merged object, or — for a
/// patch that is a list — that list (which the caller refuses as an object).
pub(super) fn apply(original: Map<String, Value>, patch: &[u8]) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(patch).map_err(PatchError::InvalidJson)?;
    match patch {
        Value::Object(patch) => {
            let mut document = original;
            merge_object(&mut document, patch);
            Ok(Value::Object(document))
        }
        Value::Array(_) => {
            let mut list = patch;
            prune_nulls(&mut list);
            Ok(list)
        }
        _ => Err(PatchError::InvalidPatchDocument {
            patch_type: PatchType::Merge,
            reason: "a merge patch must be a JSON object",
        }),
    }
}

/// Merges the members of `patch` into `document` (upstream `mergeDocs`).
fn merge_object(document: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            document.remove(&key);
            continue;
        }
        match document.get_mut(&key) {
            Some(current) if !current.is_null() => {
                let taken = std::mem::take(current);
                *current = merge_value(taken, value);
            }
            _ => {
                let mut value = value;
                prune_nulls(&mut value);
                document.insert(key, value);
            }
        }
    }
}

/// Merges `patch` into `current` (upstream `merge`): objects merge, anything else is replaced.
fn merge_value(current: Value, patch: Value) -> Value {
    match (current, patch) {
        (Value::Object(mut current), Value::Object(patch)) => {
            merge_object(&mut current, patch);
            Value::Object(current)
        }
        // An object replaced by a non-object is taken as it is; anything else replaced by a
        // value loses that value's nulls first.
        (Value::Object(_), patch) => patch,
        (_, mut patch) => {
            prune_nulls(&mut patch);
            patch
        }
    }
}

/// Drops the `null` members of every object in `value`, however deeply nested in objects and
/// lists (upstream `pruneNulls`); `null` list elements stay.
fn prune_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(prune_nulls);
        }
        Value::Array(list) => list.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

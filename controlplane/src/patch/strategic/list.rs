//! Merging lists: element by element by merge key, as sets of scalars, or not at all; list
//! element directives; and the order of the merged list (`$setElementOrder`).
//!
//! The order rules are upstream's (`normalizeElementOrder`, `mergeSortedSlice`): the elements
//! the patch mentions come in the patch's order (or the `$setElementOrder` list's), the others
//! keep their relative order from the original, and the two runs are interleaved by walking
//! both and taking an untouched element first only when the original had it before the next
//! patched one.

use serde_json::{Map, Value};

use super::directives::{
    self, DELETE, DIRECTIVE_MARKER, MERGE, REPLACE, SET_ELEMENT_ORDER, is_set_element_order,
};
use super::schema::FieldSchema;
use super::{Result, StrategicMergeFailure, merge_map, type_name};

/// The JSON type of list elements, as upstream's `reflect.Type` of decoded JSON tells them
/// apart (integers and other numbers are different types there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementKind {
    Object,
    List,
    String,
    Bool,
    Integer,
    Float,
    Null,
}

impl ElementKind {
    fn of(value: &Value) -> Self {
        match value {
            Value::Object(_) => Self::Object,
            Value::Array(_) => Self::List,
            Value::String(_) => Self::String,
            Value::Bool(_) => Self::Bool,
            Value::Number(n) if n.is_f64() => Self::Float,
            Value::Number(_) => Self::Integer,
            Value::Null => Self::Null,
        }
    }
}

/// The one element type of all `lists` (upstream `sliceElementType`).
fn element_kind(lists: &[&[Value]]) -> Result<ElementKind, StrategicMergeFailure> {
    let mut kind = None;
    for value in lists.iter().flat_map(|list| list.iter()) {
        let this = ElementKind::of(value);
        match kind {
            None if this == ElementKind::List => return Err(StrategicMergeFailure::ListOfLists),
            None => kind = Some(this),
            Some(first) if first != this => {
                return Err(StrategicMergeFailure::MixedListElementTypes);
            }
            Some(_) => {}
        }
    }
    kind.ok_or(StrategicMergeFailure::NoListElements)
}

/// How list elements are told apart: by the value of their merge key, or by their own value.
#[derive(Debug, Clone, Copy)]
enum Identity {
    MergeKey(&'static str),
    Value,
}

impl Identity {
    fn of(self, value: &Value) -> Option<&Value> {
        match self {
            Self::MergeKey(key) => value.as_object().and_then(|map| map.get(key)),
            Self::Value => Some(value),
        }
    }

    /// The position of the first element of `list` with the same identity as `item`
    /// (upstream `index`).
    fn position_in(self, list: &[Value], item: &Value) -> Option<usize> {
        let target = self.of(item);
        list.iter()
            .position(|candidate| self.of(candidate) == target)
    }
}

/// Merges the list `patch` into the list `original` of a field with metadata `schema`
/// (upstream `mergeSliceHandler`). A deletion list is applied whatever the field's strategy.
pub(super) fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: &FieldSchema,
    is_delete_list: bool,
) -> Result<Vec<Value>> {
    if schema.merges_lists() || is_delete_list {
        merge_list(original, patch, schema, is_delete_list)
    } else {
        Ok(patch)
    }
}

/// Merges two lists of a field with a merge strategy (upstream `mergeSlice`).
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: &FieldSchema,
    is_delete_list: bool,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    if element_kind(&[&original, &patch])? != ElementKind::Object {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for value in original.iter().chain(&patch) {
            if !merged.contains(value) {
                merged.push(value.clone());
            }
        }
        let (patched, untouched) = merged.into_iter().partition(|v| patch.contains(v));
        return order(patched, untouched, &patch, &original, Identity::Value);
    }

    let key = schema
        .merge_key()
        .ok_or(StrategicMergeFailure::NoMergeKey)?;
    let (original, patch) = split_special_elements(original, patch, key)?;
    let original_len = original.len();
    let patch_keys = merge_key_values(&patch, key)?;
    let merged = merge_elements(original, patch, key, schema)?;
    require_merge_keys(&[&merged], key)?;
    let patch_order: Vec<Value> = patch_keys
        .into_iter()
        .map(|value| Value::Object(Map::from_iter([(key.to_owned(), value)])))
        .collect();
    // The untouched elements keep the order the original had, which is the order of the
    // merged list's leading part (merged elements stay where they were).
    let server_order = merged[..original_len].to_vec();
    let identity = Identity::MergeKey(key);
    let (patched, untouched) = merged
        .into_iter()
        .partition(|v| identity.position_in(&patch_order, v).is_some());
    order(patched, untouched, &patch_order, &server_order, identity)
}

/// Applies the element directives of a list merged by `key` (upstream
/// `mergeSliceWithSpecialElements`): `$patch: delete` removes every original element with
/// that key, `$patch: replace` makes the other patch elements the whole list. Returns the
/// original and the patch elements without directives.
fn split_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &'static str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for element in patch {
        let Some(directive) = element.get(DIRECTIVE_MARKER) else {
            plain.push(element);
            continue;
        };
        match directive.as_str() {
            Some(DELETE) => {
                let value = element
                    .get(key)
                    .ok_or_else(|| missing_merge_key(key, &element))?;
                original.retain(|o| o.get(key) != Some(value));
            }
            // Elements after this one may still carry directives to prune.
            Some(REPLACE) => replace = true,
            Some(MERGE) => return Err(StrategicMergeFailure::ListMergeDirective.into()),
            _ => {
                return Err(StrategicMergeFailure::UnknownPatchDirective {
                    value: directive.to_string(),
                }
                .into());
            }
        }
    }
    Ok(if replace {
        (plain, Vec::new())
    } else {
        (original, plain)
    })
}

/// Merges each patch element into the element of `list` with the same merge key, or appends
/// it (upstream `mergeSliceWithoutSpecialElements`).
fn merge_elements(
    mut list: Vec<Value>,
    patch: Vec<Value>,
    key: &'static str,
    schema: &FieldSchema,
) -> Result<Vec<Value>> {
    for element in patch {
        let Value::Object(patch_element) = element else {
            return Err(expected_object(&element).into());
        };
        let Some(value) = patch_element.get(key).cloned() else {
            return Err(missing_merge_key(key, &Value::Object(patch_element)).into());
        };
        let position = list.iter().position(|o| o.get(key) == Some(&value));
        match position.map(|i| (i, std::mem::take(&mut list[i]))) {
            Some((i, Value::Object(current))) => {
                let segment = format!("[{key}={}]", scalar_text(&value));
                let merged =
                    merge_map(current, patch_element, schema).map_err(|e| e.within(&segment))?;
                list[i] = Value::Object(merged);
            }
            Some((_, other)) => return Err(expected_object(&other).into()),
            None => list.push(Value::Object(patch_element)),
        }
    }
    Ok(list)
}

/// Orders a merged list (upstream `normalizeElementOrder`): `patched` by `patch_order`,
/// `untouched` by `server_order`, then the two interleaved.
fn order(
    patched: Vec<Value>,
    untouched: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    identity: Identity,
) -> Result<Vec<Value>> {
    let patched = sort_by_order(patched, patch_order, identity)?;
    let untouched = sort_by_order(untouched, server_order, identity)?;
    Ok(interleave(untouched, patched, server_order, identity))
}

/// Sorts `items` stably by their position in `order` (upstream `normalizeSliceOrder`);
/// elements carrying `$patch: delete` go last.
fn sort_by_order(mut items: Vec<Value>, order: &[Value], identity: Identity) -> Result<Vec<Value>> {
    if let Identity::MergeKey(key) = identity {
        require_merge_keys(&[&items, order], key)?;
        let (kept, deletions): (Vec<Value>, Vec<Value>) = items
            .into_iter()
            .partition(|v| v.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some(DELETE));
        items = kept;
        items.sort_by_key(|v| identity.position_in(order, v).unwrap_or(usize::MAX));
        items.extend(deletions);
    } else {
        items.sort_by_key(|v| identity.position_in(order, v).unwrap_or(usize::MAX));
    }
    Ok(items)
}

/// Interleaves two runs that are each in order (upstream `mergeSortedSlice`): an element of
/// `untouched` goes before the next element of `patched` only when `server_order` has both
/// and has it first.
fn interleave(
    untouched: Vec<Value>,
    patched: Vec<Value>,
    server_order: &[Value],
    identity: Identity,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(untouched.len() + patched.len());
    let mut untouched = untouched.into_iter().peekable();
    let mut patched = patched.into_iter().peekable();
    loop {
        let take_untouched = match (untouched.peek(), patched.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(left), Some(right)) => {
                match (
                    identity.position_in(server_order, left),
                    identity.position_in(server_order, right),
                ) {
                    (Some(l), Some(r)) => l < r,
                    _ => false,
                }
            }
        };
        let next = if take_untouched {
            untouched.next()
        } else {
            patched.next()
        };
        out.extend(next);
    }
    out
}

/// Applies every `$setElementOrder/<field>` directive of `patch` (upstream
/// `mergePatchIntoOriginal`): the field's list is merged here, ordered by the directive, and
/// removed from the patch so it is not merged again.
pub(super) fn apply_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: &FieldSchema,
) -> Result<()> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|key| is_set_element_order(key))
        .cloned()
        .collect();
    for directive in directives {
        let Some(order_value) = patch.remove(&directive) else {
            continue;
        };
        let Value::Array(element_order) = order_value else {
            return Err(StrategicMergeFailure::ExpectedList {
                found: type_name(&order_value),
            }
            .into());
        };
        let field = directives::extract_key(&directive, SET_ELEMENT_ORDER)
            .ok_or_else(|| StrategicMergeFailure::InvalidSetElementOrderKey {
                key: directive.clone(),
            })?
            .to_owned();
        set_element_order(original, patch, schema, &field, &element_order)
            .map_err(|e| e.within(&field))?;
    }
    Ok(())
}

/// Merges and orders the list `field` by `element_order`.
fn set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: &FieldSchema,
    field: &str,
    element_order: &[Value],
) -> Result<()> {
    let original_list = list_field(original, field)?;
    let patch_list = list_field(patch, field)?;
    let child = schema.child(field);
    let merge_key = child.merge_key();
    validate_patch_order(patch_list.unwrap_or(&[]), element_order, merge_key)?;

    let merged = match (original_list, patch_list) {
        (Some(original_list), None) => original_list.to_vec(),
        (None, Some(patch_list)) => patch_list
            .iter()
            .cloned()
            .filter_map(directives::remove_directives)
            .collect(),
        (Some(original_list), Some(patch_list)) => {
            merge_list_field(original_list.to_vec(), patch_list.to_vec(), child, false)?
        }
        (None, None) => return Ok(()),
    };
    let kind = element_kind(&[original_list.unwrap_or(&[]), patch_list.unwrap_or(&[])])?;
    let identity = match (kind, merge_key) {
        (ElementKind::Object, Some(key)) => Identity::MergeKey(key),
        (ElementKind::Object, None) => return Err(StrategicMergeFailure::NoMergeKey.into()),
        _ => Identity::Value,
    };
    if let Identity::MergeKey(key) = identity {
        require_merge_keys(&[&merged], key)?;
        if let Some(not_object) = element_order.iter().find(|v| !v.is_object()) {
            return Err(expected_object(not_object).into());
        }
    }
    let server_order = original_list.unwrap_or(&[]).to_vec();
    let (patched, untouched) = merged
        .into_iter()
        .partition(|v| identity.position_in(element_order, v).is_some());
    let ordered = order(patched, untouched, element_order, &server_order, identity)?;
    original.insert(field.to_owned(), Value::Array(ordered));
    patch.remove(field);
    Ok(())
}

/// The list under `field`, if the object has the field; an error if it is not a list.
fn list_field<'m>(
    map: &'m Map<String, Value>,
    field: &str,
) -> Result<Option<&'m [Value]>, StrategicMergeFailure> {
    match map.get(field) {
        None => Ok(None),
        Some(Value::Array(list)) => Ok(Some(list)),
        Some(other) => Err(StrategicMergeFailure::ExpectedList {
            found: type_name(other),
        }),
    }
}

/// Checks that the patch list is in the order of the `$setElementOrder` list, elements to
/// delete and other directive elements aside (upstream `validatePatchWithSetOrderList`).
fn validate_patch_order(
    patch_list: &[Value],
    element_order: &[Value],
    merge_key: Option<&'static str>,
) -> Result<(), StrategicMergeFailure> {
    if patch_list.is_empty() || element_order.is_empty() {
        return Ok(());
    }
    let mut candidates = Vec::with_capacity(patch_list.len());
    for element in patch_list {
        if merge_key.is_some() && !element.is_object() {
            return Err(expected_object(element));
        }
        let is_deletion = element.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some(DELETE);
        if merge_key.is_none() || !is_deletion {
            candidates.push(element);
        }
    }
    let (mut next_patch, mut next_order) = (0, 0);
    while next_patch < candidates.len() && next_order < element_order.len() {
        let candidate = candidates[next_patch];
        if candidate.get(DIRECTIVE_MARKER).is_some() {
            next_patch += 1;
            continue;
        }
        if same_identity(candidate, &element_order[next_order], merge_key)? {
            next_patch += 1;
        }
        next_order += 1;
    }
    if next_patch < candidates.len() {
        return Err(StrategicMergeFailure::SetElementOrderMismatch);
    }
    Ok(())
}

/// Whether two elements have the same merge key value (or, without a merge key, are equal)
/// (upstream `mergeKeyValueEqual`).
fn same_identity(
    left: &Value,
    right: &Value,
    merge_key: Option<&'static str>,
) -> Result<bool, StrategicMergeFailure> {
    let Some(key) = merge_key else {
        return Ok(left == right);
    };
    Ok(merge_key_value(left, key)? == merge_key_value(right, key)?)
}

/// The value of the merge key of a list element, which must be an object that has it.
fn merge_key_value<'v>(
    element: &'v Value,
    key: &'static str,
) -> Result<&'v Value, StrategicMergeFailure> {
    match element {
        Value::Object(map) => map.get(key).ok_or_else(|| missing_merge_key(key, element)),
        other => Err(expected_object(other)),
    }
}

/// The merge key values of `elements`, which must all have one.
fn merge_key_values(
    elements: &[Value],
    key: &'static str,
) -> Result<Vec<Value>, StrategicMergeFailure> {
    elements
        .iter()
        .map(|element| merge_key_value(element, key).cloned())
        .collect()
}

/// Checks that every element of `lists` is an object with the merge key
/// (upstream `validateMergeKeyInLists`).
fn require_merge_keys(lists: &[&[Value]], key: &'static str) -> Result<(), StrategicMergeFailure> {
    for element in lists.iter().flat_map(|list| list.iter()) {
        match element {
            Value::Object(map) if map.contains_key(key) => {}
            Value::Object(_) => return Err(missing_merge_key(key, element)),
            other => return Err(expected_object(other)),
        }
    }
    Ok(())
}

fn missing_merge_key(key: &'static str, element: &Value) -> StrategicMergeFailure {
    StrategicMergeFailure::MissingMergeKey {
        key,
        element: element.to_string(),
    }
}

fn expected_object(found: &Value) -> StrategicMergeFailure {
    StrategicMergeFailure::ExpectedObject {
        found: type_name(found),
    }
}

/// A merge key value as it reads in a path: strings without quotes.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn names(list: &[Value]) -> Vec<&str> {
        list.iter().filter_map(|v| v["name"].as_str()).collect()
    }

    #[test]
    fn element_kinds_must_agree() {
        assert_eq!(
            element_kind(&[&[json!(1)], &[json!(2)]]),
            Ok(ElementKind::Integer)
        );
        assert_eq!(
            element_kind(&[&[json!(1)], &[json!(2.5)]]),
            Err(StrategicMergeFailure::MixedListElementTypes)
        );
        assert_eq!(
            element_kind(&[&[], &[json!([1])]]),
            Err(StrategicMergeFailure::ListOfLists)
        );
        assert_eq!(
            element_kind(&[&[], &[]]),
            Err(StrategicMergeFailure::NoListElements)
        );
    }

    #[test]
    fn interleave_puts_untouched_elements_before_later_patched_ones() {
        let server_order = [
            json!({"name": "a"}),
            json!({"name": "b"}),
            json!({"name": "c"}),
        ];
        let untouched = vec![json!({"name": "a"}), json!({"name": "c"})];
        let patched = vec![json!({"name": "b"}), json!({"name": "new"})];
        let merged = interleave(
            untouched,
            patched,
            &server_order,
            Identity::MergeKey("name"),
        );
        assert_eq!(names(&merged), ["a", "b", "new", "c"]);
    }

    #[test]
    fn set_element_order_validation_skips_deletions() {
        let order = [json!({"name": "a"}), json!({"name": "b"})];
        let patch = [
            json!({"name": "gone", "$patch": "delete"}),
            json!({"name": "a"}),
            json!({"name": "b"}),
        ];
        assert_eq!(validate_patch_order(&patch, &order, Some("name")), Ok(()));
        let reversed = [json!({"name": "b"}), json!({"name": "a"})];
        assert_eq!(
            validate_patch_order(&reversed, &order, Some("name")),
            Err(StrategicMergeFailure::SetElementOrderMismatch)
        );
    }
}

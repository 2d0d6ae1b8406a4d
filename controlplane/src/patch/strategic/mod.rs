//! Strategic merge patch (`application/strategic-merge-patch+json`), applied the way
//! `k8s.io/apimachinery/pkg/util/strategicpatch` applies it in kube-apiserver
//! (`StrategicMergeMapPatch`, with `MergeParallelList` and `IgnoreUnmatchedNulls` set).
//!
//! The semantics, briefly:
//! - objects merge key by key; `null` deletes a key;
//! - a list whose field has `patchStrategy:"merge"` merges element by element, matched by the
//!   merge key (lists of objects) or as a set (lists of scalars); any other list is replaced;
//! - directives: `$patch: replace|delete` on an object, `$patch: delete|replace` as a list
//!   element, `$retainKeys`, `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>`;
//! - the order of a merged list is the `$setElementOrder` list, else the patch's order for
//!   patched elements interleaved with the untouched elements in their old order.
//!
//! After merging, the result is normalised the way kube-apiserver's decoding into the typed
//! object normalises it: directive keys and `null` members never survive.

mod directives;
pub mod kinds;
mod list;
pub mod schema;

use serde_json::{Map, Value};

use self::directives::{DELETE, DIRECTIVE_MARKER, REPLACE};
use self::schema::{FieldSchema, PatchStrategy};

/// Why a strategic merge patch could not be applied. The comments name the upstream error
/// each variant corresponds to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategicMergeFailure {
    /// `mergepatch.ErrBadPatchType`: `$patch` on an object is neither `replace` nor `delete`,
    /// or `$patch` on a list element is not `delete`, `replace` or `merge`.
    #[error("unknown patch type {value} in an object")]
    UnknownPatchDirective { value: String },
    /// `$patch: merge` as a list element: upstream has never implemented it.
    #[error("merging lists cannot yet be specified in the patch")]
    ListMergeDirective,
    /// `mergepatch.ErrNoMergeKey`: an element of a list merged by key lacks the key.
    #[error("list element {element} does not contain declared merge key {key}")]
    MissingMergeKey { key: &'static str, element: String },
    /// A list of objects under a `merge` strategy that declares no merge key.
    #[error("cannot merge a list of objects without a merge key")]
    NoMergeKey,
    /// `mergepatch.ErrNoListOfLists`.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// The elements of the lists to merge are not all of one JSON type.
    #[error("list element types are not identical")]
    MixedListElementTypes,
    /// A `$setElementOrder` list refers to a field whose lists have no elements at all.
    #[error("no elements in any of the given lists")]
    NoListElements,
    /// `mergepatch.ErrBadPatchFormatForPrimitiveList`: a `$deleteFromPrimitiveList` key
    /// without `/<field>`.
    #[error("invalid patch format of primitive list: {key}")]
    InvalidDeleteFromPrimitiveList { key: String },
    /// `mergepatch.ErrBadPatchFormatForRetainKeys`: `$retainKeys` is not a list, or the patch
    /// sets a field that the list does not retain.
    #[error("invalid patch format of retainKeys: {reason}")]
    InvalidRetainKeys { reason: String },
    /// `mergepatch.ErrBadPatchFormatForSetElementOrderList`: a `$setElementOrder` key
    /// without `/<field>`.
    #[error("invalid patch format of setElementOrder list: {key}")]
    InvalidSetElementOrderKey { key: String },
    /// `mergepatch.ErrBadArgType`: a list was expected.
    #[error("expected a list, but received {found}")]
    ExpectedList { found: &'static str },
    /// `mergepatch.ErrBadArgType`: an object was expected.
    #[error("expected an object, but received {found}")]
    ExpectedObject { found: &'static str },
    /// The patch list is not in the order its `$setElementOrder` list gives.
    #[error("the order in the patch list doesn't match the $setElementOrder list")]
    SetElementOrderMismatch,
}

/// A strategic merge patch failure and the field path where it happened
/// (e.g. `spec.containers[name=web].env`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failure} (at {})", if path.is_empty() { "the object root" } else { path.as_str() })]
pub struct StrategicMergeError {
    /// Where in the object the merge failed; empty for the root.
    pub path: String,
    /// What failed.
    pub failure: StrategicMergeFailure,
}

impl StrategicMergeError {
    /// Whether upstream answers this failure with 422 Unprocessable Entity (only
    /// `ErrNoListOfLists` among the failures applying a patch can produce).
    #[must_use]
    pub fn is_unprocessable(&self) -> bool {
        self.failure == StrategicMergeFailure::ListOfLists
    }

    /// Prefixes the path with the field or list element `segment` it happened under.
    fn within(mut self, segment: &str) -> Self {
        self.path = match (self.path.is_empty(), self.path.starts_with('[')) {
            (true, _) => segment.to_owned(),
            (false, true) => format!("{segment}{}", self.path),
            (false, false) => format!("{segment}.{}", self.path),
        };
        self
    }
}

impl From<StrategicMergeFailure> for StrategicMergeError {
    fn from(failure: StrategicMergeFailure) -> Self {
        Self {
            path: String::new(),
            failure,
        }
    }
}

type Result<T, E = StrategicMergeError> = std::result::Result<T, E>;

/// Applies the strategic merge patch `patch` to `original`, an object of a kind whose
/// top-level patch metadata is `fields` (see [`kinds::fields_of`]).
pub fn apply(
    original: Map<String, Value>,
    patch: Map<String, Value>,
    fields: &'static [FieldSchema],
) -> Result<Map<String, Value>> {
    let root = FieldSchema {
        name: "",
        strategy: PatchStrategy::Unspecified,
        retain_keys: false,
        fields,
    };
    let mut merged = merge_map(original, patch, &root)?;
    directives::normalize_map(&mut merged);
    Ok(merged)
}

/// Merges the object `patch` into the object `original` (upstream `mergeMap`).
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: &FieldSchema,
) -> Result<Map<String, Value>> {
    if let Some(directive) = patch.remove(DIRECTIVE_MARKER) {
        return match directive.as_str() {
            // The patch replaces the object; nothing in it is merged.
            Some(REPLACE) => Ok(patch),
            Some(DELETE) => Ok(Map::new()),
            _ => Err(StrategicMergeFailure::UnknownPatchDirective {
                value: directive.to_string(),
            }
            .into()),
        };
    }
    directives::apply_retain_keys(&mut original, &mut patch)?;
    list::apply_set_element_order(&mut original, &mut patch, schema)?;

    // Upstream walks the patch in Go's random map order, so a list and a deletion list for
    // the same field apply in either order; deletions last is the deterministic choice (and
    // upstream's usual outcome). Patches built by kubectl never add what they delete.
    let mut entries = Vec::with_capacity(patch.len());
    let mut deletions = Vec::new();
    for (key, patch_value) in patch {
        match directives::delete_list_field(&key)? {
            Some(field) => deletions.push((field.to_owned(), true, patch_value)),
            None => entries.push((key, false, patch_value)),
        }
    }
    for (field, is_delete_list, patch_value) in entries.into_iter().chain(deletions) {
        if patch_value.is_null() {
            original.remove(&field);
            continue;
        }
        let Some(current) = original.get_mut(&field) else {
            if !is_delete_list && let Some(value) = prepare_patch_value(patch_value) {
                original.insert(field, value);
            }
            continue;
        };
        let mut drop_field = false;
        match (current, patch_value) {
            (Value::Object(current), Value::Object(patch_map)) => {
                let child = schema.child(&field);
                let taken = std::mem::take(current);
                *current = if child.strategy == PatchStrategy::Replace {
                    patch_map
                } else {
                    merge_map(taken, patch_map, child).map_err(|e| e.within(&field))?
                };
            }
            (Value::Array(current), Value::Array(patch_list)) => {
                let child = schema.child(&field);
                let taken = std::mem::take(current);
                *current = list::merge_list_field(taken, patch_list, child, is_delete_list)
                    .map_err(|e| e.within(&field))?;
            }
            // Different JSON types, or scalars: the patch value replaces the old one. A
            // deletion list never replaces anything.
            (current, patch_value) if !is_delete_list => match prepare_patch_value(patch_value) {
                Some(value) => *current = value,
                None => drop_field = true,
            },
            _ => {}
        }
        if drop_field {
            original.remove(&field);
        }
    }
    Ok(original)
}

/// A patch value taken as it is, for a field the original does not have (or has with another
/// type): without its `null` members and without any object that carries a `$patch` directive
/// (upstream `discardNullValuesFromPatch` + `removeDirectives`). `None` when the value itself
/// is such an object: then the field is left out.
fn prepare_patch_value(mut value: Value) -> Option<Value> {
    directives::discard_nulls(&mut value);
    directives::remove_directives(value)
}

/// The JSON type of a value, for error messages.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

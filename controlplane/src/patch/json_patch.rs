//! JSON patch (RFC 6902, `application/json-patch+json`), applied as kube-apiserver applies it
//! (`Patch.Apply` of `gopkg.in/evanphx/json-patch.v4`, at most 10000 operations).
//!
//! The operations run in order on a copy of the object; the first that fails fails the whole
//! patch, naming its index, its operation and its path. Where the upstream library departs
//! from RFC 6902 in ways clients rely on, this does too:
//! - `replace` of an object member that does not exist adds it;
//! - list indices may be negative, counting from the end (`-1` is the last element; for `add`
//!   `-1` appends), and may carry a sign or leading zeros;
//! - an operation without `value` (`add`, `replace`) uses `null`.
//!
//! Where the upstream library has plain bugs, this follows the RFC instead: a `test` of an
//! object compares the whole object (upstream ignores extra members in the expected value), a
//! `copy` from a member that does not exist fails (upstream copies `null`), and a path must
//! start with `/` (upstream ignores whatever precedes the first `/`).

use serde_json::{Map, Value};

use super::{PatchError, PatchType};

/// The most operations one JSON patch may have (upstream `maxJSONPatchOperations`).
pub const MAX_OPERATIONS: usize = 10_000;

/// A JSON patch operation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("json patch operation {index} ({op} {path:?}) failed: {failure}")]
pub struct JsonPatchError {
    /// The index of the operation in the patch, from 0.
    pub index: usize,
    /// The operation (`add`, `remove`, ...), as the patch spells it.
    pub op: String,
    /// The operation's `path`.
    pub path: String,
    /// What went wrong.
    pub failure: JsonPatchFailure,
}

/// Why a JSON patch operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPatchFailure {
    /// The `op` member is missing or names no RFC 6902 operation.
    #[error("unexpected operation kind")]
    UnknownOperation,
    /// A member the operation needs (`path`, `from`) is missing.
    #[error("the operation has no {field} member")]
    MissingMember { field: &'static str },
    /// A member that must be a string is not.
    #[error("the {field} member must be a string")]
    MemberNotString { field: &'static str },
    /// The object or list that would hold the target does not exist.
    #[error("the document is missing the path {path:?}")]
    MissingPath { path: String },
    /// `remove` (or `move`) of an object member that does not exist.
    #[error("unable to remove nonexistent key {key:?}")]
    NonexistentKey { key: String },
    /// A list index that is not a number, or out of range.
    #[error("invalid list index {index:?}")]
    InvalidIndex { index: String },
    /// `replace` of the whole document with something that is not an object or a list.
    #[error("a value replacing the whole document must be an object or a list")]
    RootNotContainer,
    /// `test` found another value.
    #[error("testing value at {path:?} failed")]
    TestFailed { path: String },
}

/// Applies the JSON patch `patch` to `document`.
pub(super) fn apply(document: Value, patch: &[u8]) -> Result<Value, PatchError> {
    let operations = decode(patch)?;
    if operations.len() > MAX_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            max: MAX_OPERATIONS,
            count: operations.len(),
        });
    }
    let mut document = document;
    for (index, operation) in operations.iter().enumerate() {
        apply_operation(&mut document, index, operation)?;
    }
    Ok(document)
}

/// Decodes the patch into its operations (upstream `DecodePatch`): a list of objects, or
/// `null` for none. A `null` element is an operation without members.
fn decode(patch: &[u8]) -> Result<Vec<Map<String, Value>>, PatchError> {
    let not_operations = || PatchError::InvalidPatchDocument {
        patch_type: PatchType::Json,
        reason: "a JSON patch must be a list of operation objects",
    };
    match serde_json::from_slice(patch).map_err(PatchError::InvalidJson)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(list) => list
            .into_iter()
            .map(|operation| match operation {
                Value::Object(map) => Ok(map),
                Value::Null => Ok(Map::new()),
                _ => Err(not_operations()),
            })
            .collect(),
        _ => Err(not_operations()),
    }
}

fn apply_operation(
    document: &mut Value,
    index: usize,
    operation: &Map<String, Value>,
) -> Result<(), JsonPatchError> {
    let op = operation
        .get("op")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let path_member = string_member(operation, "path");
    let error_path = path_member.clone().unwrap_or_default();
    let fail = |failure: JsonPatchFailure| JsonPatchError {
        index,
        op: op.to_owned(),
        path: error_path,
        failure,
    };
    let value = || operation.get("value").cloned().unwrap_or(Value::Null);
    let result = match op {
        "add" => path_member.and_then(|path| add(document, &path, value())),
        "remove" => path_member.and_then(|path| remove(document, &path).map(drop)),
        "replace" => path_member.and_then(|path| replace(document, &path, value())),
        "move" => string_member(operation, "from").and_then(|from| {
            let path = path_member?;
            let moved = remove(document, &from)?;
            add(document, &path, moved)
        }),
        "copy" => string_member(operation, "from").and_then(|from| {
            let path = path_member?;
            let copied = get(document, &from)?
                .cloned()
                .ok_or(JsonPatchFailure::MissingPath { path: from })?;
            add(document, &path, copied)
        }),
        "test" => path_member.and_then(|path| test(document, &path, operation.get("value"))),
        _ => Err(JsonPatchFailure::UnknownOperation),
    };
    result.map_err(fail)
}

/// The string member `field` of an operation.
fn string_member(
    operation: &Map<String, Value>,
    field: &'static str,
) -> Result<String, JsonPatchFailure> {
    match operation.get(field) {
        None | Some(Value::Null) => Err(JsonPatchFailure::MissingMember { field }),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(JsonPatchFailure::MemberNotString { field }),
    }
}

/// The object or list holding the target of `path`, and the target's (decoded) last token.
enum Parent<'d> {
    Object(&'d mut Map<String, Value>, String),
    List(&'d mut Vec<Value>, String),
}

/// Finds the parent of `path` (upstream `findObject`); `None` when it does not exist.
fn parent<'d>(document: &'d mut Value, path: &str) -> Option<Parent<'d>> {
    let rest = path.strip_prefix('/')?;
    let mut tokens: Vec<String> = rest.split('/').map(decode_token).collect();
    let target = tokens.pop()?;
    let mut current = document;
    for token in &tokens {
        current = match current {
            Value::Object(map) => map.get_mut(token).filter(|v| !v.is_null())?,
            Value::Array(list) => {
                let len = list.len();
                list.get_mut(existing_index(token, len)?)?
            }
            _ => return None,
        };
    }
    match current {
        Value::Object(map) => Some(Parent::Object(map, target)),
        Value::Array(list) => Some(Parent::List(list, target)),
        _ => None,
    }
}

/// Decodes `~1` to `/` and `~0` to `~` (RFC 6901).
fn decode_token(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The position of an existing element (`get`, `remove`, `replace`): negative counts from the
/// end.
fn existing_index(token: &str, len: usize) -> Option<usize> {
    let index: i64 = token.parse().ok()?;
    let len = i64::try_from(len).ok()?;
    let index = if index < 0 { index + len } else { index };
    if (0..len).contains(&index) {
        usize::try_from(index).ok()
    } else {
        None
    }
}

/// The position an `add` inserts at: up to the length, negative counts from the end plus one.
fn insertion_index(token: &str, len: usize) -> Option<usize> {
    let index: i64 = token.parse().ok()?;
    let size = i64::try_from(len).ok()? + 1;
    let index = if index < 0 { index + size } else { index };
    if (0..size).contains(&index) {
        usize::try_from(index).ok()
    } else {
        None
    }
}

fn missing(path: &str) -> JsonPatchFailure {
    JsonPatchFailure::MissingPath {
        path: path.to_owned(),
    }
}

fn invalid_index(token: String) -> JsonPatchFailure {
    JsonPatchFailure::InvalidIndex { index: token }
}

fn add(document: &mut Value, path: &str, value: Value) -> Result<(), JsonPatchFailure> {
    match parent(document, path).ok_or_else(|| missing(path))? {
        Parent::Object(map, key) => {
            map.insert(key, value);
        }
        Parent::List(list, token) if token == "-" => list.push(value),
        Parent::List(list, token) => {
            let index = insertion_index(&token, list.len()).ok_or_else(|| invalid_index(token))?;
            list.insert(index, value);
        }
    }
    Ok(())
}

fn remove(document: &mut Value, path: &str) -> Result<Value, JsonPatchFailure> {
    match parent(document, path).ok_or_else(|| missing(path))? {
        Parent::Object(map, key) => map
            .remove(&key)
            .ok_or(JsonPatchFailure::NonexistentKey { key }),
        Parent::List(list, token) => {
            let index = existing_index(&token, list.len()).ok_or_else(|| invalid_index(token))?;
            Ok(list.remove(index))
        }
    }
}

fn replace(document: &mut Value, path: &str, value: Value) -> Result<(), JsonPatchFailure> {
    if path.is_empty() {
        if !(value.is_object() || value.is_array()) {
            return Err(JsonPatchFailure::RootNotContainer);
        }
        *document = value;
        return Ok(());
    }
    match parent(document, path).ok_or_else(|| missing(path))? {
        // A member that does not exist is added, as upstream does.
        Parent::Object(map, key) => {
            map.insert(key, value);
        }
        Parent::List(list, token) => {
            let index = existing_index(&token, list.len()).ok_or_else(|| invalid_index(token))?;
            list[index] = value;
        }
    }
    Ok(())
}

/// The value at `path`: `Some(None)` for an object member that is missing or `null`.
fn get<'d>(document: &'d mut Value, path: &str) -> Result<Option<&'d Value>, JsonPatchFailure> {
    if path.is_empty() {
        return Ok(Some(document));
    }
    match parent(document, path).ok_or_else(|| missing(path))? {
        Parent::Object(map, key) => Ok(map.get(&key).filter(|v| !v.is_null())),
        Parent::List(list, token) => {
            let index = existing_index(&token, list.len()).ok_or_else(|| invalid_index(token))?;
            Ok(Some(&list[index]).filter(|v| !v.is_null()))
        }
    }
}

fn test(
    document: &mut Value,
    path: &str,
    expected: Option<&Value>,
) -> Result<(), JsonPatchFailure> {
    let actual = get(document, path)?;
    let matches = match (actual, expected) {
        // A missing member tests equal to `null`.
        (None, Some(Value::Null)) => true,
        (Some(actual), Some(expected)) => actual == expected,
        _ => false,
    };
    if matches {
        Ok(())
    } else {
        Err(JsonPatchFailure::TestFailed {
            path: path.to_owned(),
        })
    }
}

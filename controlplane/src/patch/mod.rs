//! PATCH for the API server, with kube-apiserver's semantics: the real kubectl and kubelets
//! send JSON patches, merge patches and strategic merge patches, and must get exactly the
//! object kube-apiserver would have made.
//!
//! [`apply_patch`] is the one entry point: given the kind of the stored object, the patch type
//! from the request's `Content-Type` ([`PatchType::from_content_type`]), the stored object and
//! the request body, it returns the patched object or a [`PatchError`] that says which HTTP
//! status and `Status` reason to answer with. Validation, defaulting and storing the result
//! are the caller's: like kube-apiserver, the caller must still decode the result as its kind
//! (a patch may have produced an object that is not one, e.g. a string where a number goes).

mod error;
pub mod json_patch;
mod merge_patch;
pub mod strategic;

use std::fmt;

use serde_json::Value;

pub use self::error::PatchError;
pub use self::json_patch::{JsonPatchError, JsonPatchFailure};
pub use self::strategic::schema::{FieldSchema, PatchStrategy};
pub use self::strategic::{StrategicMergeError, StrategicMergeFailure};

/// The patch types kube-apiserver accepts, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// `application/json-patch+json`: RFC 6902 operations.
    Json,
    /// `application/merge-patch+json`: RFC 7386.
    Merge,
    /// `application/strategic-merge-patch+json`: Kubernetes' strategic merge patch, for
    /// built-in kinds only.
    StrategicMerge,
    /// `application/apply-patch+yaml` (or `+cbor`): server-side apply. Recognised so that the
    /// server can refuse it with a clear message; not implemented.
    Apply,
}

impl PatchType {
    /// The content types the server can apply (server-side apply is recognised but refused).
    pub const SUPPORTED_CONTENT_TYPES: [&'static str; 3] = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ];

    /// The patch type of a request's `Content-Type` header, parameters (`; charset=utf-8`)
    /// ignored; `None` for any other media type (answer 415 Unsupported Media Type).
    #[must_use]
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media_type.as_str() {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }

    /// The `Content-Type` of this patch type.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json-patch+json",
            Self::Merge => "application/merge-patch+json",
            Self::StrategicMerge => "application/strategic-merge-patch+json",
            Self::Apply => "application/apply-patch+yaml",
        }
    }
}

impl fmt::Display for PatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Merge => "merge",
            Self::StrategicMerge => "strategic merge",
            Self::Apply => "apply",
        })
    }
}

/// The `apiVersion` and `kind` of the object being patched: what selects the strategic merge
/// patch metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectKind<'a> {
    /// `apiVersion`, e.g. `v1` or `storage.k8s.io/v1`.
    pub api_version: &'a str,
    /// `kind`, e.g. `Pod`.
    pub kind: &'a str,
}

impl ObjectKind<'static> {
    /// The kind of the `k8s-openapi` resource type `K`.
    #[must_use]
    pub fn of<K: k8s_openapi::Resource>() -> Self {
        Self {
            api_version: K::API_VERSION,
            kind: K::KIND,
        }
    }
}

impl<'a> ObjectKind<'a> {
    /// The kind named by an object's own `apiVersion` and `kind` members, if it has both.
    #[must_use]
    pub fn of_object(object: &'a Value) -> Option<Self> {
        Some(Self {
            api_version: object.get("apiVersion")?.as_str()?,
            kind: object.get("kind")?.as_str()?,
        })
    }

    /// Whether strategic merge patches can be applied to this kind.
    #[must_use]
    pub fn supports_strategic_merge(&self) -> bool {
        strategic::kinds::fields_of(self.api_version, self.kind).is_some()
    }
}

/// Applies `patch` (a request body of type `patch_type`) to `original`, a stored object of
/// kind `kind`, and returns the patched object.
///
/// `original` is not modified. The result is always a JSON object.
pub fn apply_patch(
    kind: ObjectKind<'_>,
    patch_type: PatchType,
    original: &Value,
    patch: &[u8],
) -> Result<Value, PatchError> {
    let Value::Object(original) = original else {
        return Err(PatchError::OriginalNotAnObject {
            found: json_type(original),
        });
    };
    let patched = match patch_type {
        PatchType::Json => json_patch::apply(Value::Object(original.clone()), patch)?,
        PatchType::Merge => merge_patch::apply(original.clone(), patch)?,
        PatchType::StrategicMerge => {
            let fields =
                strategic::kinds::fields_of(kind.api_version, kind.kind).ok_or_else(|| {
                    PatchError::StrategicMergeUnsupported {
                        api_version: kind.api_version.to_owned(),
                        kind: kind.kind.to_owned(),
                    }
                })?;
            let patch = match serde_json::from_slice(patch).map_err(PatchError::InvalidJson)? {
                Value::Object(patch) => patch,
                // Upstream decodes `null` into a nil map: a patch that changes nothing.
                Value::Null => return Ok(Value::Object(original.clone())),
                _ => {
                    return Err(PatchError::InvalidPatchDocument {
                        patch_type,
                        reason: "a strategic merge patch must be a JSON object",
                    });
                }
            };
            Value::Object(strategic::apply(original.clone(), patch, fields)?)
        }
        PatchType::Apply => {
            return Err(PatchError::ServerSideApplyUnsupported {
                content_type: patch_type.content_type(),
            });
        }
    };
    if patched.is_object() {
        Ok(patched)
    } else {
        Err(PatchError::PatchedNotAnObject {
            found: json_type(&patched),
        })
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

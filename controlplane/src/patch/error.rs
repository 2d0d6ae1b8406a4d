//! Why a patch could not be applied, and the HTTP status kube-apiserver answers with.

use http::StatusCode;

use super::PatchType;
use super::json_patch::JsonPatchError;
use super::strategic::StrategicMergeError;

/// Why a patch could not be applied. [`PatchError::http_status`] and [`PatchError::reason`]
/// give the answer for the API server's `Status` object.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch body is not JSON.
    #[error("error decoding patch: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The patch body is JSON of a shape its patch type does not accept.
    #[error("invalid {patch_type} patch: {reason}")]
    InvalidPatchDocument {
        patch_type: PatchType,
        reason: &'static str,
    },
    /// A JSON patch with more operations than kube-apiserver accepts.
    #[error("the allowed maximum operations in a JSON patch is {max}, got {count}")]
    TooManyOperations { max: usize, count: usize },
    /// A JSON patch operation failed: a `test` found another value, a path does not exist,
    /// an index is out of range.
    #[error(transparent)]
    JsonPatchFailed(#[from] JsonPatchError),
    /// A strategic merge patch could not be merged: an invalid directive, a list element
    /// without its merge key, lists of mismatched element types.
    #[error("strategic merge patch failed: {0}")]
    StrategicMergeFailed(#[from] StrategicMergeError),
    /// The patch turned the object into something that is not a JSON object (a merge patch
    /// that is a list, a JSON patch replacing the whole document with a list).
    #[error("the patched object is not a JSON object but {found}")]
    PatchedNotAnObject { found: &'static str },
    /// A strategic merge patch for a kind without patch metadata (as kube-apiserver answers
    /// for custom resources).
    #[error(
        "strategic merge patch is not supported for {kind} ({api_version}): the body of the \
         request was in an unknown format - accepted media types include: \
         application/json-patch+json, application/merge-patch+json"
    )]
    StrategicMergeUnsupported { api_version: String, kind: String },
    /// Server-side apply, which this control plane does not implement.
    #[error(
        "server-side apply ({content_type}) is not supported by this API server: use \
         client-side apply (kubectl apply without --server-side), a strategic merge, merge \
         or JSON patch"
    )]
    ServerSideApplyUnsupported { content_type: &'static str },
    /// The stored object is not a JSON object: a fault of the server, not of the request.
    #[error("the stored object to patch is not a JSON object but {found}")]
    OriginalNotAnObject { found: &'static str },
}

impl PatchError {
    /// The HTTP status kube-apiserver answers this error with (with one deliberate
    /// difference: see [`PatchError::StrategicMergeFailed`] below).
    ///
    /// - 400 Bad Request: the body is not JSON, or not of its patch type's shape
    ///   (`errors.NewBadRequest` in `applyJSPatch`/`strategicPatchObject`); malformed
    ///   `$retainKeys`, `$deleteFromPrimitiveList`, `$setElementOrder` directives
    ///   (`interpretStrategicMergePatchError`). Other strategic merge failures (an unknown
    ///   `$patch` value, a missing merge key, mixed element types) reach kube-apiserver's
    ///   handler as untyped errors, which it answers with 500; they are the client's fault,
    ///   so this answers 400.
    /// - 413 Request Entity Too Large: more than 10000 JSON patch operations.
    /// - 415 Unsupported Media Type: strategic merge patch of a kind without patch metadata,
    ///   server-side apply.
    /// - 422 Unprocessable Entity (reason `Invalid`): any failed JSON patch operation
    ///   (`NewGenericServerResponse(http.StatusUnprocessableEntity, ...)` around
    ///   `patchObj.Apply`), lists of lists in a strategic merge patch, a result that does not
    ///   decode as an object.
    /// - 500 Internal Server Error: the stored object is not an object.
    #[must_use]
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::StrategicMergeFailed(e) if e.is_unprocessable() => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::InvalidJson(_)
            | Self::InvalidPatchDocument { .. }
            | Self::StrategicMergeFailed(_) => StatusCode::BAD_REQUEST,
            Self::TooManyOperations { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::JsonPatchFailed(_) | Self::PatchedNotAnObject { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::StrategicMergeUnsupported { .. } | Self::ServerSideApplyUnsupported { .. } => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::OriginalNotAnObject { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `reason` of the Kubernetes `Status` object for this error (`metav1.StatusReason`).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self.http_status() {
            StatusCode::BAD_REQUEST => "BadRequest",
            StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
            StatusCode::UNPROCESSABLE_ENTITY => "Invalid",
            _ => "InternalError",
        }
    }
}

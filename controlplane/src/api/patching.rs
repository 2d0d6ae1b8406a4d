//! PATCH bodies: which patch type a request carries and applying it to the current object,
//! through [`crate::patch`].

use serde_json::Value;

use super::error::{ApiError, ApiResult};
use crate::patch::{ObjectKind, PatchType, apply_patch};
use crate::resources::ResourceInfo;

/// The patch type of a Content-Type; unknown types and server-side apply get 415.
pub fn patch_type(content_type: &str) -> ApiResult<PatchType> {
    match PatchType::from_content_type(content_type) {
        Some(PatchType::Apply) => Err(ApiError::unsupported_media_type(
            "server-side apply (application/apply-patch+yaml) is not supported by this API server yet; use client-side apply (kubectl apply --server-side=false) or another patch type",
        )),
        Some(kind) => Ok(kind),
        None => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format {content_type:?} - accepted media types include: {}",
            PatchType::SUPPORTED_CONTENT_TYPES.join(", ")
        ))),
    }
}

/// Applies a patch to `original` (the current object).
pub fn apply(
    resource: &ResourceInfo,
    kind: PatchType,
    original: &Value,
    body: &[u8],
) -> ApiResult<Value> {
    let api_version = resource.api_version();
    let object_kind = ObjectKind {
        api_version: &api_version,
        kind: resource.kind,
    };
    apply_patch(object_kind, kind, original, body)
        .map_err(|err| ApiError::new(err.http_status(), err.reason(), err.to_string()))
}

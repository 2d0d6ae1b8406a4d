//! PATCH bodies: which patch type a request carries and applying it to the current object.

use serde_json::Value;

use super::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;

/// The patch types of the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
}

impl PatchKind {
    /// The patch type of a Content-Type; server-side apply and unknown types are refused
    /// with 415.
    pub fn from_content_type(content_type: &str) -> ApiResult<Self> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Err(ApiError::unsupported_media_type(
                    "server-side apply (application/apply-patch+yaml) is not supported by this API server yet; use client-side apply (kubectl apply --server-side=false) or another patch type",
                ))
            }
            other => Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format {other:?} - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"
            ))),
        }
    }
}

/// Applies a patch to `original` (the current object).
pub fn apply(
    _resource: &ResourceInfo,
    kind: PatchKind,
    original: &Value,
    body: &[u8],
) -> ApiResult<Value> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut patched = original.clone();
    match kind {
        // Interim: strategic merge behaves as a JSON merge patch until the strategic patch
        // module lands.
        PatchKind::Merge | PatchKind::Strategic => json_patch::merge(&mut patched, &patch),
        PatchKind::Json => {
            let operations: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
            json_patch::patch(&mut patched, &operations).map_err(|e| {
                ApiError::new(
                    http::StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("the JSON patch could not be applied: {e}"),
                )
            })?;
        }
    }
    Ok(patched)
}

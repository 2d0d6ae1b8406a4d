//! `OpenAPI` documents (`/openapi/v2`, `/openapi/v3`).

use axum::body::Body;
use axum::response::Response;
use http::Request;

use super::error::{ApiError, ApiResult};
use super::request::RequestInfo;

pub(crate) fn handle(info: &RequestInfo, _request: &Request<Body>) -> ApiResult<Response> {
    Err(ApiError::path_not_found(&info.path))
}

//! API errors as kube-apiserver reports them: an HTTP status and a `Status` object whose
//! `reason` and `details` clients (kubectl, client-go, kube-rs) match on.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use crate::resources::ResourceInfo;

/// One invalid field of an object, as `Status.details.causes` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueDuplicate`,
    /// `FieldValueNotSupported`, `FieldValueForbidden`, `FieldValueTooLong`.
    pub reason: &'static str,
    /// The field path, e.g. `spec.containers[0].image`.
    pub field: String,
    /// What is wrong, in kube-apiserver's words (`Required value`,
    /// `Invalid value: "Foo": a lowercase RFC 1123 subdomain must ...`).
    pub message: String,
}

impl FieldError {
    #[must_use]
    pub fn required(field: impl Into<String>) -> Self {
        FieldError {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }

    #[must_use]
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {}: {detail}", show_value(value)),
        }
    }

    #[must_use]
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        FieldError {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {}", show_value(value)),
        }
    }

    #[must_use]
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let supported: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                show_value(value),
                supported.join(", ")
            ),
        }
    }

    #[must_use]
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {detail}"),
        }
    }

    /// `field: message`, as in the Status message.
    #[must_use]
    pub fn summary(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// Go's `%#v`-like rendering kube-apiserver uses for values in field errors.
fn show_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// A failed API request.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: StatusCode,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, `Forbidden`, ...
    pub reason: &'static str,
    pub message: String,
    /// `Status.details`, if any.
    pub details: Option<Value>,
}

fn details(name: &str, resource: &ResourceInfo) -> Value {
    let mut d = json!({ "name": name, "kind": resource.plural });
    if !resource.group.is_empty() {
        d["group"] = json!(resource.group);
    }
    d
}

impl ApiError {
    #[must_use]
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    #[must_use]
    pub fn not_found(resource: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(details(name, resource)),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} {name:?} not found", resource.qualified_name()),
            )
        }
    }

    #[must_use]
    pub fn already_exists(resource: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(details(name, resource)),
            ..Self::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} {name:?} already exists", resource.qualified_name()),
            )
        }
    }

    /// A stale resourceVersion (optimistic concurrency).
    #[must_use]
    pub fn conflict(resource: &ResourceInfo, name: &str, detail: &str) -> Self {
        ApiError {
            details: Some(details(name, resource)),
            ..Self::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} {name:?}: {detail}",
                    resource.qualified_name()
                ),
            )
        }
    }

    /// The object changed since the client read it.
    #[must_use]
    pub fn modified(resource: &ResourceInfo, name: &str) -> Self {
        Self::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one cause per bad field.
    #[must_use]
    pub fn invalid(resource: &ResourceInfo, name: &str, errors: &[FieldError]) -> Self {
        let summaries: Vec<String> = errors.iter().map(FieldError::summary).collect();
        let message = match summaries.as_slice() {
            [one] => format!("{} {name:?} is invalid: {one}", resource.kind),
            many => format!(
                "{} {name:?} is invalid: [{}]",
                resource.kind,
                many.join(", ")
            ),
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field}))
            .collect();
        let mut d = json!({ "name": name, "kind": resource.kind, "causes": causes });
        if !resource.group.is_empty() {
            d["group"] = json!(resource.group);
        }
        ApiError {
            details: Some(d),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
        }
    }

    #[must_use]
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    #[must_use]
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    #[must_use]
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    #[must_use]
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    #[must_use]
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }

    /// The watch or list asked for history that is gone.
    #[must_use]
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    #[must_use]
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    #[must_use]
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }

    #[must_use]
    pub fn path_not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// The `Status` object.
    #[must_use]
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.as_u16(),
            self.reason,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.status()).unwrap_or_default();
        (
            self.code,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// The result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::store::Error> for ApiError {
    fn from(err: crate::store::Error) -> Self {
        use crate::store::Error as S;
        match err {
            S::Compacted {
                requested,
                compacted,
            } => ApiError::gone(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            S::Backend { .. } => ApiError::unavailable(err.to_string()),
            // NotFound, AlreadyExists and Conflict are mapped by handlers, which know the
            // resource and name; reaching here means a race the handler did not expect.
            other => ApiError::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    #[test]
    fn not_found_reads_like_kube_apiserver() {
        let pods = lookup("", "v1", "pods").unwrap();
        let status = ApiError::not_found(pods, "nginx").status();
        assert_eq!(status["message"], "pods \"nginx\" not found");
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["code"], 404);
        assert_eq!(status["details"], json!({"name": "nginx", "kind": "pods"}));
        let leases = lookup("coordination.k8s.io", "v1", "leases").unwrap();
        let status = ApiError::already_exists(leases, "n1").status();
        assert_eq!(
            status["message"],
            "leases.coordination.k8s.io \"n1\" already exists"
        );
        assert_eq!(status["details"]["group"], "coordination.k8s.io");
    }

    #[test]
    fn invalid_lists_every_cause() {
        let pods = lookup("", "v1", "pods").unwrap();
        let one = ApiError::invalid(
            pods,
            "x",
            &[FieldError::required("spec.containers[0].image")],
        );
        assert_eq!(one.code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            one.message,
            "Pod \"x\" is invalid: spec.containers[0].image: Required value"
        );
        let two = ApiError::invalid(
            pods,
            "x",
            &[
                FieldError::required("spec.containers[0].image"),
                FieldError::duplicate("spec.containers[1].name", &json!("app")),
            ],
        );
        assert_eq!(
            two.message,
            "Pod \"x\" is invalid: [spec.containers[0].image: Required value, \
             spec.containers[1].name: Duplicate value: \"app\"]"
        );
        let causes = two.status()["details"]["causes"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(causes.len(), 2);
        assert_eq!(causes[1]["reason"], "FieldValueDuplicate");
        assert_eq!(causes[1]["field"], "spec.containers[1].name");
    }

    #[test]
    fn conflict_message_names_the_object() {
        let pods = lookup("", "v1", "pods").unwrap();
        let err = ApiError::modified(pods, "nginx");
        assert_eq!(err.code, StatusCode::CONFLICT);
        assert!(err.message.starts_with(
            "Operation cannot be fulfilled on pods \"nginx\": the object has been modified"
        ));
    }
}

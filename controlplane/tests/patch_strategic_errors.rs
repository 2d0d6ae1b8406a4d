//! Strategic merge patches that cannot be applied, and the HTTP statuses they answer with.

mod patch_support;

use ferrolet_controlplane::patch::{
    ObjectKind, PatchError, PatchType, StrategicMergeFailure, apply_patch,
};
use http::StatusCode;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use patch_support::pod;

fn try_patch_pod(patch: &Value) -> Result<Value, PatchError> {
    apply_patch(
        ObjectKind::of::<Pod>(),
        PatchType::StrategicMerge,
        &pod(),
        patch.to_string().as_bytes(),
    )
}

#[test]
fn unknown_kinds_refuse_strategic_merge_with_415() {
    let widget =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
    let error = apply_patch(
        ObjectKind {
            api_version: "example.com/v1",
            kind: "Widget",
        },
        PatchType::StrategicMerge,
        &widget,
        br#"{"spec":{}}"#,
    )
    .expect_err("refused");
    assert_eq!(error.http_status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error.reason(), "UnsupportedMediaType");
    assert!(
        error
            .to_string()
            .contains("strategic merge patch is not supported for Widget")
    );
    // Merge patches still work for it.
    let merged = apply_patch(
        ObjectKind {
            api_version: "example.com/v1",
            kind: "Widget",
        },
        PatchType::Merge,
        &widget,
        br#"{"spec":{"size":3}}"#,
    )
    .expect("merge patch applies");
    assert_eq!(merged["spec"], json!({"size": 3}));
}

#[test]
fn invalid_directives_are_bad_requests() {
    for (patch, failure) in [
        (
            json!({"spec": {"containers": [{"name": "web", "$patch": "merge"}]}}),
            StrategicMergeFailure::ListMergeDirective,
        ),
        (
            json!({"metadata": {"$deleteFromPrimitiveList": ["x"]}}),
            StrategicMergeFailure::InvalidDeleteFromPrimitiveList {
                key: "$deleteFromPrimitiveList".to_owned(),
            },
        ),
        (
            json!({"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
                            "containers": [{"name": "web", "image": "a"}, {"name": "sidecar", "image": "b"}]}}),
            StrategicMergeFailure::SetElementOrderMismatch,
        ),
    ] {
        let Err(PatchError::StrategicMergeFailed(error)) = try_patch_pod(&patch) else {
            panic!("{patch} must fail");
        };
        assert_eq!(error.failure, failure, "{patch}");
        let error = PatchError::StrategicMergeFailed(error);
        assert_eq!(error.http_status(), StatusCode::BAD_REQUEST, "{patch}");
        assert_eq!(error.reason(), "BadRequest");
    }
}

#[test]
fn a_missing_merge_key_names_the_field() {
    let Err(error) =
        try_patch_pod(&json!({"spec": {"containers": [{"name": "web", "env": [{"value": "x"}]}]}}))
    else {
        panic!("must fail");
    };
    let message = error.to_string();
    assert!(message.contains("declared merge key name"), "{message}");
    assert!(
        message.contains("spec.containers[name=web].env"),
        "{message}"
    );
    assert_eq!(error.http_status(), StatusCode::BAD_REQUEST);
}

#[test]
fn lists_of_lists_are_unprocessable() {
    let mut original = pod();
    original["metadata"]["finalizers"] = json!([]);
    let error = apply_patch(
        ObjectKind::of::<Pod>(),
        PatchType::StrategicMerge,
        &original,
        br#"{"metadata":{"finalizers":[["x"]]}}"#,
    )
    .expect_err("refused");
    assert_eq!(error.http_status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error.reason(), "Invalid");
}

#[test]
fn a_patch_that_is_not_an_object_is_a_bad_request() {
    for body in [&b"[1]"[..], b"\"x\"", b"{not json"] {
        let original = pod();
        let error = apply_patch(
            ObjectKind::of::<Pod>(),
            PatchType::StrategicMerge,
            &original,
            body,
        )
        .expect_err("refused");
        assert_eq!(error.http_status(), StatusCode::BAD_REQUEST, "{error}");
    }
}

//! JSON patch and JSON merge patch behaviour, the content types, and the errors' HTTP
//! statuses.

use ferrolet_controlplane::patch::{
    JsonPatchError, JsonPatchFailure, ObjectKind, PatchError, PatchType, apply_patch,
    json_patch::MAX_OPERATIONS,
};
use http::StatusCode;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

fn config_map() -> Value {
    serde_json::to_value(ConfigMap {
        metadata: ObjectMeta {
            name: Some("settings".to_owned()),
            namespace: Some("default".to_owned()),
            labels: Some([("app".to_owned(), "web".to_owned())].into()),
            finalizers: Some(vec!["a".to_owned(), "b".to_owned()]),
            ..ObjectMeta::default()
        },
        data: Some(
            [("mode", "fast"), ("level", "3")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
        ),
        ..ConfigMap::default()
    })
    .expect("serialize")
}

fn patch(patch_type: PatchType, body: &Value) -> Result<Value, PatchError> {
    apply_patch(
        ObjectKind::of::<ConfigMap>(),
        patch_type,
        &config_map(),
        body.to_string().as_bytes(),
    )
}

fn json_patch_failure(body: &Value) -> JsonPatchError {
    match patch(PatchType::Json, body) {
        Err(PatchError::JsonPatchFailed(error)) => error,
        other => panic!("expected a failed operation, got {other:?}"),
    }
}

#[test]
fn merge_patch_merges_objects_and_null_deletes() {
    let patched = patch(
        PatchType::Merge,
        &json!({"metadata": {"labels": {"app": null, "tier": "db"}}, "data": {"level": "4"}}),
    )
    .expect("applies");
    assert_eq!(patched["metadata"]["labels"], json!({"tier": "db"}));
    assert_eq!(patched["data"], json!({"mode": "fast", "level": "4"}));
    assert_eq!(patched["metadata"]["name"], "settings");
}

#[test]
fn merge_patch_replaces_lists_whole() {
    let patched = patch(
        PatchType::Merge,
        &json!({"metadata": {"finalizers": ["c"]}}),
    )
    .expect("applies");
    assert_eq!(patched["metadata"]["finalizers"], json!(["c"]));
}

#[test]
fn merge_patch_of_a_pod_replaces_containers() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]}});
    let patched = apply_patch(
        ObjectKind::of::<Pod>(),
        PatchType::Merge,
        &pod,
        br#"{"spec":{"containers":[{"name":"b","image":"b2"}]}}"#,
    )
    .expect("applies");
    assert_eq!(
        patched["spec"]["containers"],
        json!([{"name": "b", "image": "b2"}])
    );
}

#[test]
fn merge_patch_drops_nulls_of_new_values() {
    let patched = patch(
        PatchType::Merge,
        &json!({"extra": {"keep": 1, "drop": null, "nested": [{"x": null, "y": 2}]}}),
    )
    .expect("applies");
    assert_eq!(patched["extra"], json!({"keep": 1, "nested": [{"y": 2}]}));
}

#[test]
fn merge_patch_that_is_not_an_object_is_refused() {
    let error = patch(PatchType::Merge, &json!([1, 2])).expect_err("a list is no object");
    assert_eq!(error.http_status(), StatusCode::UNPROCESSABLE_ENTITY);
    for body in [json!("x"), json!(3), Value::Null] {
        let error = patch(PatchType::Merge, &body).expect_err("refused");
        assert_eq!(error.http_status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error.reason(), "BadRequest");
    }
}

#[test]
fn json_patch_adds_removes_and_replaces() {
    let patched = patch(
        PatchType::Json,
        &json!([
            {"op": "add", "path": "/metadata/labels/tier", "value": "db"},
            {"op": "remove", "path": "/data/level"},
            {"op": "replace", "path": "/data/mode", "value": "slow"},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "c"},
            {"op": "add", "path": "/metadata/finalizers/0", "value": "first"},
            {"op": "move", "from": "/metadata/labels/app", "path": "/metadata/annotations"},
            {"op": "copy", "from": "/data/mode", "path": "/data/copy"}
        ]),
    )
    .expect("applies");
    assert_eq!(patched["metadata"]["labels"], json!({"tier": "db"}));
    assert_eq!(patched["metadata"]["annotations"], json!("web"));
    assert_eq!(
        patched["metadata"]["finalizers"],
        json!(["first", "a", "b", "c"])
    );
    assert_eq!(patched["data"], json!({"mode": "slow", "copy": "slow"}));
}

#[test]
fn json_patch_test_operation_guards_the_patch() {
    let patched = patch(
        PatchType::Json,
        &json!([
            {"op": "test", "path": "/data/mode", "value": "fast"},
            {"op": "replace", "path": "/data/mode", "value": "slow"}
        ]),
    )
    .expect("the test passes");
    assert_eq!(patched["data"]["mode"], "slow");
}

#[test]
fn a_failed_test_operation_is_422_and_names_the_operation_and_path() {
    let body = json!([
        {"op": "add", "path": "/data/x", "value": "1"},
        {"op": "test", "path": "/data/mode", "value": "slow"},
        {"op": "replace", "path": "/data/mode", "value": "slower"}
    ]);
    let error = json_patch_failure(&body);
    assert_eq!(error.index, 1);
    assert_eq!(error.op, "test");
    assert_eq!(error.path, "/data/mode");
    assert!(matches!(error.failure, JsonPatchFailure::TestFailed { .. }));
    let error = PatchError::from(error);
    assert_eq!(error.http_status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error.reason(), "Invalid");
    let message = error.to_string();
    assert!(
        message.contains("operation 1 (test \"/data/mode\")"),
        "{message}"
    );
}

#[test]
fn missing_paths_fail_with_422() {
    let error = json_patch_failure(&json!([{"op": "remove", "path": "/data/nope"}]));
    assert_eq!(
        error.failure,
        JsonPatchFailure::NonexistentKey {
            key: "nope".to_owned()
        }
    );
    let error =
        json_patch_failure(&json!([{"op": "add", "path": "/spec/containers/0", "value": {}}]));
    assert!(matches!(
        error.failure,
        JsonPatchFailure::MissingPath { .. }
    ));
    let error = json_patch_failure(
        &json!([{"op": "replace", "path": "/metadata/finalizers/7", "value": "x"}]),
    );
    assert_eq!(
        error.failure,
        JsonPatchFailure::InvalidIndex {
            index: "7".to_owned()
        }
    );
    assert_eq!(
        PatchError::from(error).http_status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[test]
fn replace_of_a_missing_member_adds_it_as_kube_apiserver_does() {
    let patched = patch(
        PatchType::Json,
        &json!([{"op": "replace", "path": "/metadata/labels/new", "value": "x"}]),
    )
    .expect("applies");
    assert_eq!(patched["metadata"]["labels"]["new"], "x");
}

#[test]
fn negative_indices_count_from_the_end() {
    let patched = patch(
        PatchType::Json,
        &json!([{"op": "remove", "path": "/metadata/finalizers/-1"}]),
    )
    .expect("applies");
    assert_eq!(patched["metadata"]["finalizers"], json!(["a"]));
}

#[test]
fn a_failed_json_patch_leaves_the_original_untouched() {
    let original = config_map();
    let before = original.clone();
    let error = apply_patch(
        ObjectKind::of::<ConfigMap>(),
        PatchType::Json,
        &original,
        br#"[{"op":"remove","path":"/data/mode"},{"op":"test","path":"/data/level","value":"9"}]"#,
    );
    assert!(error.is_err());
    assert_eq!(original, before);
}

#[test]
fn malformed_json_patches_are_bad_requests() {
    for body in [&b"{\"op\":\"add\"}"[..], b"[1]", b"not json", b"\"x\""] {
        let error = apply_patch(
            ObjectKind::of::<ConfigMap>(),
            PatchType::Json,
            &config_map(),
            body,
        )
        .expect_err("refused");
        assert_eq!(error.http_status(), StatusCode::BAD_REQUEST, "{error}");
    }
    // Operations that decode but cannot run are failed operations (422), as upstream.
    let error = json_patch_failure(&json!([{"op": "frobnicate", "path": "/data"}]));
    assert_eq!(error.failure, JsonPatchFailure::UnknownOperation);
    let error = json_patch_failure(&json!([{"op": "add", "value": 1}]));
    assert_eq!(
        error.failure,
        JsonPatchFailure::MissingMember { field: "path" }
    );
}

#[test]
fn too_many_operations_are_refused_with_413() {
    let operations =
        vec![json!({"op": "test", "path": "/data/mode", "value": "fast"}); MAX_OPERATIONS + 1];
    let error = patch(PatchType::Json, &Value::Array(operations)).expect_err("too many");
    assert_eq!(error.http_status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error.reason(), "RequestEntityTooLarge");
}

#[test]
fn a_json_patch_may_not_turn_the_object_into_a_list() {
    let error = patch(
        PatchType::Json,
        &json!([{"op": "replace", "path": "", "value": [1]}]),
    )
    .expect_err("not an object");
    assert!(matches!(error, PatchError::PatchedNotAnObject { .. }));
    assert_eq!(error.http_status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[test]
fn content_types_map_to_patch_types() {
    for (content_type, patch_type) in [
        ("application/json-patch+json", Some(PatchType::Json)),
        ("application/merge-patch+json", Some(PatchType::Merge)),
        (
            "application/strategic-merge-patch+json",
            Some(PatchType::StrategicMerge),
        ),
        (
            "application/strategic-merge-patch+json; charset=utf-8",
            Some(PatchType::StrategicMerge),
        ),
        ("Application/Merge-Patch+JSON", Some(PatchType::Merge)),
        ("application/apply-patch+yaml", Some(PatchType::Apply)),
        ("application/apply-patch+cbor", Some(PatchType::Apply)),
        ("application/json", None),
        ("", None),
    ] {
        assert_eq!(
            PatchType::from_content_type(content_type),
            patch_type,
            "{content_type}"
        );
    }
    for content_type in PatchType::SUPPORTED_CONTENT_TYPES {
        let patch_type = PatchType::from_content_type(content_type).expect("supported");
        assert_eq!(patch_type.content_type(), content_type);
    }
}

#[test]
fn server_side_apply_is_refused_with_415() {
    let error = patch(PatchType::Apply, &json!({"data": {"x": "y"}})).expect_err("refused");
    assert!(matches!(
        error,
        PatchError::ServerSideApplyUnsupported { .. }
    ));
    assert_eq!(error.http_status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error.reason(), "UnsupportedMediaType");
    assert!(error.to_string().contains("server-side apply"));
}

#[test]
fn the_stored_object_must_be_an_object() {
    let error = apply_patch(
        ObjectKind::of::<ConfigMap>(),
        PatchType::Merge,
        &json!([1]),
        b"{}",
    )
    .expect_err("refused");
    assert_eq!(error.http_status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error.reason(), "InternalError");
}

#[test]
fn the_kind_is_read_from_the_object() {
    let object = config_map();
    assert_eq!(
        ObjectKind::of_object(&object),
        Some(ObjectKind::of::<ConfigMap>())
    );
    assert_eq!(ObjectKind::of_object(&json!({"kind": "Pod"})), None);
}

#[test]
fn kinds_with_patch_metadata() {
    assert!(ObjectKind::of::<Pod>().supports_strategic_merge());
    assert!(ObjectKind::of::<k8s_openapi::api::storage::v1::CSINode>().supports_strategic_merge());
    assert!(
        ObjectKind::of::<k8s_openapi::api::coordination::v1::Lease>().supports_strategic_merge()
    );
    assert!(ObjectKind::of::<k8s_openapi::api::events::v1::Event>().supports_strategic_merge());
    assert!(
        !ObjectKind {
            api_version: "v2",
            kind: "Pod"
        }
        .supports_strategic_merge()
    );
    assert!(
        !ObjectKind {
            api_version: "example.com/v1",
            kind: "Widget"
        }
        .supports_strategic_merge()
    );
}

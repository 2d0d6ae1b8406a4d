//! The special apimachinery types, Go durations, type lookup by apiVersion and kind, content
//! types, and the errors `decode_request` reports (with the HTTP status each maps to).

mod protobuf_support;

use ferrolet_controlplane::api::protobuf::{
    CONTENT_TYPE, MAGIC, ProtobufError, decode_request, descriptor_pool, go_duration, is_protobuf,
    message_type, to_json,
};
use http::StatusCode;
use prost::Message as _;
use prost_reflect::Value;
use protobuf_support::{build, encode};
use serde_json::{Value as Json, json};

#[test]
fn special_types_convert_like_go() {
    let pool = descriptor_pool().expect("pool");
    let of = |name: &str, fields: Json| {
        let descriptor = pool.get_message_by_name(name).expect(name);
        to_json(&build(&descriptor, &fields)).expect("converts")
    };
    let meta_v1 = "k8s.io.apimachinery.pkg.apis.meta.v1";
    let duration = format!("{meta_v1}.Duration");
    assert_eq!(
        of(&duration, json!({"duration": 3_723_000_000_000_i64})),
        json!("1h2m3s")
    );
    assert_eq!(
        of(&duration, json!({"duration": 500_000_000})),
        json!("500ms")
    );
    assert_eq!(of(&duration, json!({})), json!("0s"));
    let time = format!("{meta_v1}.Time");
    assert_eq!(of(&time, json!({})), Json::Null);
    // Go's zero time.Time, should a client spell it out.
    assert_eq!(
        of(&time, json!({"seconds": -62_135_596_800_i64})),
        Json::Null
    );
    assert_eq!(
        of(&time, json!({"seconds": 0})),
        json!("1970-01-01T00:00:00Z")
    );
    assert_eq!(
        of(
            &format!("{meta_v1}.MicroTime"),
            json!({"seconds": 1, "nanos": 5_000})
        ),
        json!("1970-01-01T00:00:01.000005Z")
    );
    assert_eq!(
        of("k8s.io.apimachinery.pkg.api.resource.Quantity", json!({})),
        json!("0")
    );
    assert_eq!(
        of("k8s.io.apimachinery.pkg.util.intstr.IntOrString", json!({})),
        json!(0)
    );
    assert_eq!(
        of(
            &format!("{meta_v1}.Verbs"),
            json!({"items": ["get", "list"]})
        ),
        json!(["get", "list"])
    );
    assert_eq!(
        of(
            "k8s.io.api.networking.v1.IngressClassParametersReference",
            json!({"aPIGroup": "example.com", "kind": "Params", "name": "p"})
        ),
        json!({"apiGroup": "example.com", "kind": "Params", "name": "p"})
    );
}

#[test]
fn go_durations() {
    let cases = [
        (0, "0s"),
        (1, "1ns"),
        (999, "999ns"),
        (1_000, "1µs"),
        (1_500, "1.5µs"),
        (500_000_000, "500ms"),
        (1_500_000_000, "1.5s"),
        (3_723_000_000_000, "1h2m3s"),
        (3_600_000_000_000, "1h0m0s"),
        (90_000_000_000, "1m30s"),
        (-1_000_000_000, "-1s"),
        (-90_000_000_000, "-1m30s"),
        (i64::MAX, "2562047h47m16.854775807s"),
        (i64::MIN, "-2562047h47m16.854775808s"),
    ];
    for (nanos, expected) in cases {
        assert_eq!(go_duration(nanos), expected, "{nanos}ns");
    }
}

#[test]
fn message_types_follow_group_and_version() {
    let name = |api_version: &str, kind: &str| {
        message_type(api_version, kind)
            .map(|m| m.full_name().to_owned())
            .map_err(|e| e.to_string())
    };
    assert_eq!(name("v1", "Pod").as_deref(), Ok("k8s.io.api.core.v1.Pod"));
    assert_eq!(
        name("coordination.k8s.io/v1", "Lease").as_deref(),
        Ok("k8s.io.api.coordination.v1.Lease")
    );
    assert_eq!(
        name("rbac.authorization.k8s.io/v1", "ClusterRole").as_deref(),
        Ok("k8s.io.api.rbac.v1.ClusterRole")
    );
    assert_eq!(
        name("apps/v1", "Deployment").as_deref(),
        Ok("k8s.io.api.apps.v1.Deployment")
    );
    assert_eq!(
        name("meta.k8s.io/v1", "Status").as_deref(),
        Ok("k8s.io.apimachinery.pkg.apis.meta.v1.Status")
    );
    assert_eq!(
        name("storage.k8s.io/v1", "DeleteOptions").as_deref(),
        Ok("k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions")
    );
    for (api_version, kind) in [
        ("example.com/v1", "Widget"),
        ("v2", "Pod"),
        ("v1", "Deployment"),
        ("v1", "Pod.Spec"),
        ("apps/v1", "Secret"),
        ("", "Pod"),
    ] {
        assert_eq!(
            name(api_version, kind),
            Err(format!(
                "no protobuf message type is known for {api_version}/{kind}"
            )),
            "{api_version}/{kind}"
        );
    }
}

#[test]
fn content_types() {
    assert_eq!(CONTENT_TYPE, "application/vnd.kubernetes.protobuf");
    assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
    assert!(is_protobuf(
        "application/vnd.kubernetes.protobuf; charset=utf-8"
    ));
    assert!(is_protobuf(
        " Application/Vnd.Kubernetes.Protobuf;stream=watch"
    ));
    assert!(!is_protobuf("application/json"));
    assert!(!is_protobuf("application/vnd.kubernetes.protobuf+json"));
    assert!(!is_protobuf(""));
}

#[test]
fn errors_name_what_failed_and_map_to_http_statuses() {
    let json_body = br#"{"kind":"Namespace","apiVersion":"v1"}"#;
    let err = decode_request(json_body).expect_err("not protobuf");
    assert!(matches!(err, ProtobufError::NotAnEnvelope));
    assert_eq!(err.status_code(), StatusCode::BAD_REQUEST);
    assert!(
        err.to_string()
            .contains("not a Kubernetes protobuf envelope"),
        "{err}"
    );

    let err = decode_request(b"k8s\0\x0a\xff").expect_err("truncated envelope");
    assert!(
        matches!(err, ProtobufError::EnvelopeDecodeFailed(_)),
        "{err:?}"
    );
    assert_eq!(err.status_code(), StatusCode::BAD_REQUEST);

    let widget = encode("v1", "Namespace", &json!({}));
    let widget = String::from_utf8_lossy(&widget)
        .replace("v1", "xx")
        .into_bytes();
    let err = decode_request(&widget).expect_err("unknown version");
    assert_eq!(
        err.to_string(),
        "no protobuf message type is known for xx/Namespace"
    );
    assert_eq!(err.status_code(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let unknown = descriptor_pool()
        .expect("pool")
        .get_message_by_name("k8s.io.apimachinery.pkg.runtime.Unknown")
        .expect("Unknown");
    let body = |fields: Json, raw: &[u8]| {
        let mut message = build(&unknown, &fields);
        message.set_field_by_name("raw", Value::Bytes(raw.to_vec().into()));
        [MAGIC.as_slice(), &message.encode_to_vec()].concat()
    };

    let err =
        decode_request(&body(json!({"typeMeta": {"apiVersion": "v1"}}), b"")).expect_err("no kind");
    assert!(matches!(err, ProtobufError::MissingTypeMeta), "{err:?}");

    let type_meta = json!({"apiVersion": "v1", "kind": "Pod"});
    let err = decode_request(&body(
        json!({"typeMeta": type_meta, "contentEncoding": "gzip"}),
        b"",
    ))
    .expect_err("gzip");
    assert_eq!(
        err.to_string(),
        r#"protobuf envelope content encoding "gzip" is not supported"#
    );
    assert_eq!(err.status_code(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let err = decode_request(&body(
        json!({"typeMeta": type_meta, "contentType": "application/json"}),
        b"{}",
    ))
    .expect_err("json inside");
    assert!(
        matches!(err, ProtobufError::UnsupportedContentType(_)),
        "{err:?}"
    );
    assert_eq!(err.status_code(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Field 1 (metadata) announced as 100 bytes long with none following.
    let err =
        decode_request(&body(json!({"typeMeta": type_meta}), &[0x0a, 100])).expect_err("bad raw");
    assert!(
        err.to_string()
            .starts_with("decoding the protobuf body of v1/Pod as k8s.io.api.core.v1.Pod: "),
        "{err}"
    );
    assert_eq!(err.status_code(), StatusCode::BAD_REQUEST);

    let err = decode_request(&encode(
        "v1",
        "Service",
        &json!({"spec": {"ports": [{"targetPort": {"type": 7}}]}}),
    ))
    .expect_err("bad IntOrString");
    assert_eq!(
        err.to_string(),
        "converting k8s.io.apimachinery.pkg.util.intstr.IntOrString to JSON: \
         type 7 is neither 0 (int) nor 1 (string)"
    );

    let err = decode_request(&encode(
        "v1",
        "ConfigMap",
        &json!({"metadata": {"managedFields": [{"fieldsV1": {"Raw": "{not json"}}]}}),
    ))
    .expect_err("bad FieldsV1");
    assert!(
        err.to_string().starts_with(
            "converting k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1 to JSON: Raw is not JSON"
        ),
        "{err}"
    );
}

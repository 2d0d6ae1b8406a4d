//! Protobuf request bodies built with the Kubernetes descriptor pool, encoded the way
//! client-go encodes them (envelope, every Go value field written even when zero), and the
//! exact JSON `decode_request` must turn them into.

use ferrolet_controlplane::api::protobuf::{
    CONTENT_TYPE, MAGIC, ProtobufError, decode_request, descriptor_pool, go_duration, is_protobuf,
    message_type, to_json,
};
use http::StatusCode;
use prost::Message as _;
use prost_reflect::{DynamicMessage, Kind, MapKey, MessageDescriptor, Value};
use serde_json::{Value as Json, json};

/// A message of type `descriptor` with exactly the fields named in `fields` set. Bytes are
/// given as text (their UTF-8 bytes); message fields as nested objects.
fn build(descriptor: &MessageDescriptor, fields: &Json) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    let object = fields.as_object().expect("fields are a JSON object");
    for (name, json) in object {
        let field = descriptor
            .get_field_by_name(name)
            .unwrap_or_else(|| panic!("{} has no field {name}", descriptor.full_name()));
        let value = if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                panic!("map entry of {name}")
            };
            let value_kind = entry.map_entry_value_field().kind();
            let entries = json.as_object().expect("map as object");
            Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| (MapKey::String(k.clone()), single(&value_kind, v)))
                    .collect(),
            )
        } else if field.is_list() {
            let items = json.as_array().expect("list as array");
            Value::List(items.iter().map(|v| single(&field.kind(), v)).collect())
        } else {
            single(&field.kind(), json)
        };
        message.set_field(&field, value);
    }
    message
}

fn single(kind: &Kind, json: &Json) -> Value {
    match kind {
        Kind::Message(descriptor) => Value::Message(build(descriptor, json)),
        Kind::String => Value::String(json.as_str().expect("string").to_owned()),
        Kind::Bytes => Value::Bytes(
            json.as_str()
                .expect("bytes as text")
                .as_bytes()
                .to_vec()
                .into(),
        ),
        Kind::Bool => Value::Bool(json.as_bool().expect("bool")),
        Kind::Int32 => Value::I32(i32::try_from(json.as_i64().expect("int")).expect("int32")),
        Kind::Int64 => Value::I64(json.as_i64().expect("int")),
        other => panic!("no test encoding for {other:?}"),
    }
}

/// The body client-go sends: `k8s\0` and a `runtime.Unknown` around the encoded object.
fn envelope(api_version: &str, kind: &str, object: &DynamicMessage) -> Vec<u8> {
    let unknown = descriptor_pool()
        .expect("pool")
        .get_message_by_name("k8s.io.apimachinery.pkg.runtime.Unknown")
        .expect("runtime.Unknown");
    let mut envelope = build(
        &unknown,
        &json!({
            "typeMeta": {"apiVersion": api_version, "kind": kind},
            "contentEncoding": "",
            "contentType": "",
        }),
    );
    envelope.set_field_by_name("raw", Value::Bytes(object.encode_to_vec().into()));
    [MAGIC.as_slice(), &envelope.encode_to_vec()].concat()
}

fn encode(api_version: &str, kind: &str, fields: &Json) -> Vec<u8> {
    let descriptor = message_type(api_version, kind).expect("known type");
    envelope(api_version, kind, &build(&descriptor, fields))
}

fn decode(api_version: &str, kind: &str, fields: &Json) -> Json {
    decode_request(&encode(api_version, kind, fields)).expect("decodes")
}

/// `ObjectMeta` as gogo-protobuf writes it: every Go value field, zero or not, and the zero
/// creation time as an empty message.
fn meta(name: &str, namespace: &str) -> Json {
    json!({
        "name": name, "generateName": "", "namespace": namespace, "selfLink": "", "uid": "",
        "resourceVersion": "", "generation": 0, "creationTimestamp": {},
    })
}

#[test]
fn namespace_keeps_set_fields_and_drops_go_zero_values() {
    let body = encode(
        "v1",
        "Namespace",
        &json!({"metadata": meta("demo", ""), "spec": {}, "status": {"phase": ""}}),
    );
    assert!(body.starts_with(b"k8s\0"));
    assert_eq!(
        decode_request(&body).expect("decodes"),
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "demo", "creationTimestamp": null},
            "spec": {},
            "status": {},
        })
    );
}

#[test]
fn pod_with_containers_ports_resources_env_probe_volumes_labels_and_times() {
    let mut metadata = meta("web", "default");
    metadata["labels"] = json!({"app": "web", "tier": "frontend"});
    metadata["annotations"] = json!({"note": ""});
    metadata["creationTimestamp"] = json!({"seconds": 1_704_164_645_i64, "nanos": 999});
    let quantity = |s: &str| json!({"string": s});
    let container = json!({
        "name": "app",
        "image": "registry.local/app:1",
        "command": ["/bin/app", "--port=8080"],
        "ports": [{"name": "http", "hostPort": 0, "containerPort": 8080, "protocol": "TCP", "hostIP": ""}],
        "env": [
            {"name": "MODE", "value": "prod"},
            {"name": "POD_IP", "value": "", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
            {"name": "TOKEN", "value": "", "valueFrom": {"secretKeyRef": {"localObjectReference": {"name": "creds"}, "key": "token"}}},
        ],
        "resources": {
            "limits": {"cpu": quantity("500m"), "memory": quantity("128Mi")},
            "requests": {"cpu": quantity("250m")},
        },
        "volumeMounts": [{"name": "data", "readOnly": false, "mountPath": "/data", "subPath": ""}],
        "readinessProbe": {
            "handler": {"httpGet": {"path": "/healthz", "port": {"type": 1, "intVal": 0, "strVal": "http"}, "host": "", "scheme": "HTTP"}},
            "initialDelaySeconds": 0,
            "timeoutSeconds": 1,
            "periodSeconds": 10,
        },
        "livenessProbe": {
            "handler": {"tcpSocket": {"port": {"type": 0, "intVal": 8080, "strVal": ""}, "host": ""}},
            "periodSeconds": 5,
        },
        "terminationMessagePath": "/dev/termination-log",
        "imagePullPolicy": "IfNotPresent",
        "stdin": false,
        "tty": false,
    });
    let pod = decode(
        "v1",
        "Pod",
        &json!({
            "metadata": metadata,
            "spec": {
                "volumes": [{"name": "data", "volumeSource": {"emptyDir": {"medium": "", "sizeLimit": quantity("1Gi")}}}],
                "containers": [container],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "automountServiceAccountToken": false,
                "hostNetwork": false,
                "nodeName": "",
                "priority": 0,
            },
            "status": {
                "phase": "Running",
                "startTime": {"seconds": 1_704_164_700_i64},
                "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": {}, "lastTransitionTime": {"seconds": 0}}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 2, "image": "registry.local/app:1", "imageID": "", "state": {"running": {"startedAt": {"seconds": 1_704_164_701_i64}}}}],
            },
        }),
    );
    assert_eq!(
        pod,
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "labels": {"app": "web", "tier": "frontend"},
                "annotations": {"note": ""},
                // meta.v1.Time keeps whole seconds only, as Go's decoder does.
                "creationTimestamp": "2024-01-02T03:04:05Z",
            },
            "spec": {
                "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
                "containers": [{
                    "name": "app",
                    "image": "registry.local/app:1",
                    "command": ["/bin/app", "--port=8080"],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [
                        {"name": "MODE", "value": "prod"},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                    ],
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "128Mi"},
                        "requests": {"cpu": "250m"},
                    },
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                        "timeoutSeconds": 1,
                        "periodSeconds": 10,
                    },
                    "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 5},
                    "terminationMessagePath": "/dev/termination-log",
                    "imagePullPolicy": "IfNotPresent",
                }],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                // Pointer fields (*bool, *int32): set, so kept even when false or 0.
                "automountServiceAccountToken": false,
                "priority": 0,
            },
            "status": {
                "phase": "Running",
                "startTime": "2024-01-02T03:05:00Z",
                "conditions": [{
                    "type": "Ready",
                    "status": "True",
                    "lastProbeTime": null,
                    "lastTransitionTime": "1970-01-01T00:00:00Z",
                }],
                "containerStatuses": [{
                    "name": "app",
                    "ready": true,
                    "restartCount": 2,
                    "image": "registry.local/app:1",
                    "state": {"running": {"startedAt": "2024-01-02T03:05:01Z"}},
                }],
            },
        })
    );
}

#[test]
fn service_ports_are_numbers_and_target_ports_follow_their_type() {
    let service = decode(
        "v1",
        "Service",
        &json!({
            "metadata": meta("web", "default"),
            "spec": {
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": 80, "targetPort": {"type": 1, "intVal": 0, "strVal": "http"}, "nodePort": 0},
                    {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": {"type": 0, "intVal": 19090, "strVal": ""}, "nodePort": 30090},
                ],
                "selector": {"app": "web"},
                "clusterIP": "",
                "type": "ClusterIP",
                "sessionAffinity": "",
            },
            "status": {"loadBalancer": {}},
        }),
    );
    assert_eq!(
        service,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": null},
            "spec": {
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"},
                    {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": 19090, "nodePort": 30090},
                ],
                "selector": {"app": "web"},
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        })
    );
}

#[test]
fn secret_bytes_are_base64_and_string_data_stays_text() {
    let secret_type = message_type("v1", "Secret").expect("Secret");
    let mut secret = build(
        &secret_type,
        &json!({
            "metadata": meta("creds", "default"),
            "stringData": {"user": "admin"},
            "type": "Opaque",
            "immutable": false,
        }),
    );
    secret.set_field_by_name(
        "data",
        Value::Map(
            [
                (
                    MapKey::String("password".into()),
                    Value::Bytes(b"s3cr3t".to_vec().into()),
                ),
                (
                    MapKey::String("binary".into()),
                    Value::Bytes(vec![0, 0xff, 0x10].into()),
                ),
                (
                    MapKey::String("empty".into()),
                    Value::Bytes(Vec::new().into()),
                ),
            ]
            .into_iter()
            .collect(),
        ),
    );
    let json = decode_request(&envelope("v1", "Secret", &secret)).expect("decodes");
    assert_eq!(
        json,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "default", "creationTimestamp": null},
            "data": {"binary": "AP8Q", "empty": "", "password": "czNjcjN0"},
            "stringData": {"user": "admin"},
            "type": "Opaque",
            // `immutable` is a *bool: false was set and is kept.
            "immutable": false,
        })
    );
}

#[test]
fn lease_micro_times_keep_microseconds_and_pointer_zeros() {
    let lease = decode(
        "coordination.k8s.io/v1",
        "Lease",
        &json!({
            "metadata": meta("node-a", "kube-node-lease"),
            "spec": {
                "holderIdentity": "node-a",
                "leaseDurationSeconds": 40,
                "acquireTime": {"seconds": 1_704_164_645_i64, "nanos": 0},
                "renewTime": {"seconds": 1_704_164_645_i64, "nanos": 123_456_789},
                "leaseTransitions": 0,
            },
        }),
    );
    assert_eq!(
        lease,
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "node-a", "namespace": "kube-node-lease", "creationTimestamp": null},
            "spec": {
                "holderIdentity": "node-a",
                "leaseDurationSeconds": 40,
                "acquireTime": "2024-01-02T03:04:05.000000Z",
                "renewTime": "2024-01-02T03:04:05.123456Z",
                "leaseTransitions": 0,
            },
        })
    );
}

#[test]
fn delete_options_in_any_group_version_keep_a_zero_grace_period() {
    let options = json!({
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "0d3a3c8e-4f0c-4b8a-9d1e-6f1f2f3a4b5c"},
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
    });
    let expected = |api_version: &str| {
        json!({
            "apiVersion": api_version,
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "0d3a3c8e-4f0c-4b8a-9d1e-6f1f2f3a4b5c"},
            "propagationPolicy": "Foreground",
            "dryRun": ["All"],
        })
    };
    for api_version in ["v1", "meta.k8s.io/v1", "apps/v1", "coordination.k8s.io/v1"] {
        assert_eq!(
            decode(api_version, "DeleteOptions", &options),
            expected(api_version),
            "{api_version}"
        );
    }
}

#[test]
fn eviction_embeds_delete_options() {
    let eviction = decode(
        "policy/v1",
        "Eviction",
        &json!({
            "metadata": meta("web-0", "default"),
            "deleteOptions": {"gracePeriodSeconds": 5},
        }),
    );
    assert_eq!(
        eviction,
        json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "web-0", "namespace": "default", "creationTimestamp": null},
            "deleteOptions": {"gracePeriodSeconds": 5},
        })
    );
}

#[test]
fn token_request_review_and_access_review_carry_extra_values_as_arrays() {
    let request = decode(
        "authentication.k8s.io/v1",
        "TokenRequest",
        &json!({
            "metadata": meta("default", "default"),
            "spec": {
                "audiences": ["https://kubernetes.default.svc"],
                "expirationSeconds": 3600,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web-0", "uID": "1234"},
            },
            "status": {"token": "", "expirationTimestamp": {}},
        }),
    );
    assert_eq!(
        request["spec"],
        json!({
            "audiences": ["https://kubernetes.default.svc"],
            "expirationSeconds": 3600,
            // Go's json tag renames the proto field `uID`.
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web-0", "uid": "1234"},
        })
    );
    assert_eq!(request["status"], json!({"expirationTimestamp": null}));

    let review = decode(
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        &json!({
            "metadata": meta("", ""),
            "spec": {
                "resourceAttributes": {"namespace": "default", "verb": "get", "group": "", "version": "v1", "resource": "pods", "subresource": "", "name": "web-0"},
                "user": "system:node:node-a",
                "groups": ["system:nodes"],
                "extra": {"scopes": {"items": ["a", "b"]}},
                "uid": "",
            },
            "status": {"allowed": false, "denied": false, "reason": "", "evaluationError": ""},
        }),
    );
    assert_eq!(
        review,
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "metadata": {"creationTimestamp": null},
            "spec": {
                "resourceAttributes": {"namespace": "default", "verb": "get", "version": "v1", "resource": "pods", "name": "web-0"},
                "user": "system:node:node-a",
                "groups": ["system:nodes"],
                "extra": {"scopes": ["a", "b"]},
            },
            "status": {},
        })
    );
}

#[test]
fn certificate_signing_request_bytes_and_usages() {
    let csr = decode(
        "certificates.k8s.io/v1",
        "CertificateSigningRequest",
        &json!({
            "metadata": meta("node-csr-abc", ""),
            "spec": {
                "request": "-----BEGIN CERTIFICATE REQUEST-----\n",
                "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                "expirationSeconds": 86_400,
                "usages": ["digital signature", "client auth"],
                "username": "",
                "uid": "",
            },
            "status": {},
        }),
    );
    assert_eq!(
        csr["spec"],
        json!({
            "request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K",
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "expirationSeconds": 86_400,
            "usages": ["digital signature", "client auth"],
        })
    );
}

#[test]
fn managed_fields_and_raw_extensions_carry_embedded_json_and_envelopes() {
    let mut metadata = meta("cm", "default");
    metadata["managedFields"] = json!([{
        "manager": "kubectl-create",
        "operation": "Update",
        "apiVersion": "v1",
        "time": {"seconds": 1_704_164_645_i64},
        "fieldsType": "FieldsV1",
        "fieldsV1": {"Raw": r#"{"f:data":{".":{},"f:a":{}}}"#},
        "subresource": "",
    }]);
    let config_map = decode(
        "v1",
        "ConfigMap",
        &json!({"metadata": metadata, "data": {"a": "b"}}),
    );
    assert_eq!(
        config_map["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl-create",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2024-01-02T03:04:05Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}, "f:a": {}}},
        }])
    );

    // A core/v1 List whose items are JSON and a nested protobuf envelope.
    let nested = encode("v1", "Namespace", &json!({"metadata": meta("inner", "")}));
    let list_type = message_type("v1", "List").expect("List");
    let mut list = build(
        &list_type,
        &json!({"metadata": {"resourceVersion": "", "continue": ""}}),
    );
    let raw = |bytes: Vec<u8>| {
        let raw_type = descriptor_pool()
            .expect("pool")
            .get_message_by_name("k8s.io.apimachinery.pkg.runtime.RawExtension")
            .expect("RawExtension");
        let mut message = DynamicMessage::new(raw_type);
        message.set_field_by_name("raw", Value::Bytes(bytes.into()));
        Value::Message(message)
    };
    list.set_field_by_name(
        "items",
        Value::List(vec![
            raw(br#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x"}}"#.to_vec()),
            raw(nested),
        ]),
    );
    assert_eq!(
        decode_request(&envelope("v1", "List", &list)).expect("decodes"),
        json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {},
            "items": [
                {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x"}},
                {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "inner", "creationTimestamp": null}},
            ],
        })
    );
}

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

//! Protobuf request bodies built with the Kubernetes descriptor pool, encoded the way
//! client-go encodes them (envelope, every Go value field written even when zero), and the
//! exact JSON `decode_request` must turn them into.

mod protobuf_support;

use ferrolet_controlplane::api::protobuf::{decode_request, descriptor_pool, message_type};
use prost_reflect::{DynamicMessage, MapKey, Value};
use protobuf_support::{build, decode, encode, envelope, meta};
use serde_json::json;

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

//! The harness of the differential tests (`patch_kubectl_*.rs`): every case is applied by
//! `apply_patch` and by the upstream Go implementation compiled into kubectl
//! (`kubectl patch --local`, which runs the same `strategicpatch`/`evanphx/json-patch` code as
//! kube-apiserver's PATCH handler), and the results must agree. For strategic merge patches
//! kubectl prints the raw merge result, which kube-apiserver then decodes into the typed
//! object: the comparison applies that decoding's effect (directive keys and `null` members
//! vanish) to kubectl's output.
//!
//! Needs `kubectl` on `PATH` (`hack/install-deps` installs it); no cluster is contacted.

// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use ferrolet_controlplane::patch::{ObjectKind, PatchType, apply_patch};
use serde_json::{Value, json};

/// One patch case.
pub struct Case {
    name: String,
    object: Value,
    patch_type: PatchType,
    patch: Value,
}

pub fn case(name: &str, object: &Value, patch_type: PatchType, patch: Value) -> Case {
    Case {
        name: name.to_owned(),
        object: object.clone(),
        patch_type,
        patch,
    }
}

fn kubectl_type(patch_type: PatchType) -> &'static str {
    match patch_type {
        PatchType::Json => "json",
        PatchType::Merge => "merge",
        PatchType::StrategicMerge | PatchType::Apply => "strategic",
    }
}

/// Runs `kubectl patch --local`; `Err` with kubectl's message when it refuses the patch.
fn kubectl_patch(dir: &Path, case: &Case) -> Result<Value, String> {
    let file = dir.join("object.json");
    std::fs::write(&file, case.object.to_string()).expect("write the object file");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, "").expect("write an empty kubeconfig");
    let output = Command::new("kubectl")
        .env("KUBECONFIG", &kubeconfig)
        .args(["patch", "--local", "-o", "json", "--type"])
        .arg(kubectl_type(case.patch_type))
        .arg("-f")
        .arg(&file)
        .arg("-p")
        .arg(case.patch.to_string())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run kubectl ({e}): install it with hack/install-deps (Debian: kubectl or kubernetes-client)")
        });
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).expect("kubectl prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// What decoding into the typed object does to a strategic merge result.
fn typed_decode(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, v| {
                !v.is_null()
                    && key != "$patch"
                    && key != "$retainKeys"
                    && !key.starts_with("$setElementOrder")
                    && !key.starts_with("$deleteFromPrimitiveList")
            });
            map.values_mut().for_each(typed_decode);
        }
        Value::Array(list) => list.iter_mut().for_each(typed_decode),
        _ => {}
    }
}

/// JSON equality, except that Go prints a float64 without a fraction as an integer.
fn same_json(ours: &Value, upstream: &Value) -> bool {
    match (ours, upstream) {
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => ours == upstream,
    }
}

pub fn run(cases: &[Case]) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut failures = Vec::new();
    for case in cases {
        let kind = ObjectKind {
            api_version: case.object["apiVersion"].as_str().expect("apiVersion"),
            kind: case.object["kind"].as_str().expect("kind"),
        };
        let ours = apply_patch(
            kind,
            case.patch_type,
            &case.object,
            case.patch.to_string().as_bytes(),
        );
        let mut upstream = kubectl_patch(dir.path(), case);
        if case.patch_type == PatchType::StrategicMerge
            && let Ok(value) = &mut upstream
        {
            typed_decode(value);
        }
        match (&ours, &upstream) {
            (Ok(ours), Ok(upstream)) if same_json(ours, upstream) => {}
            (Err(ours), Err(upstream)) => {
                eprintln!(
                    "{}: both refuse\n  ours:     {ours}\n  upstream: {}",
                    case.name,
                    upstream.trim()
                );
            }
            _ => failures.push(format!(
                "{}:\n  ours:     {}\n  upstream: {}",
                case.name,
                ours.as_ref()
                    .map_or_else(ToString::to_string, ToString::to_string),
                upstream
                    .as_ref()
                    .map_or_else(|e| format!("error: {}", e.trim()), ToString::to_string),
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from upstream:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

pub fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "0b5cf3c4-5c1e-4b6e-9d39-2f8d0e6f5a11",
            "labels": {"app": "web", "tier": "frontend"},
            "annotations": {"note": "x"},
            "finalizers": ["a.example.com/one", "b.example.com/two"],
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u1"},
                {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u2"}
            ]
        },
        "spec": {
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "config", "configMap": {"name": "web-config"}}
            ],
            "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.25",
                    "args": ["-g", "daemon off;"],
                    "ports": [
                        {"containerPort": 80, "protocol": "TCP"},
                        {"containerPort": 443, "protocol": "TCP"}
                    ],
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "B", "value": "2"},
                        {"name": "C", "value": "3"}
                    ],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                },
                {"name": "sidecar", "image": "busybox", "command": ["sleep", "3600"]},
                {"name": "logger", "image": "fluentbit"}
            ],
            "tolerations": [
                {"key": "k1", "operator": "Exists"},
                {"key": "k2", "operator": "Exists"}
            ],
            "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
            "nodeSelector": {"disk": "ssd"}
        },
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "False"},
                {"type": "Ready", "status": "False"}
            ],
            "podIPs": [{"ip": "10.0.0.5"}],
            "containerStatuses": [
                {"name": "web", "ready": false, "restartCount": 0, "image": "nginx:1.25", "imageID": ""},
                {"name": "sidecar", "ready": false, "restartCount": 0, "image": "busybox", "imageID": ""}
            ]
        }
    })
}

//! Differential tests: every case is applied by `apply_patch` and by the upstream Go
//! implementation compiled into kubectl (`kubectl patch --local`, which runs the same
//! `strategicpatch`/`evanphx/json-patch` code as kube-apiserver's PATCH handler), and the
//! results must agree. For strategic merge patches kubectl prints the raw merge result,
//! which kube-apiserver then decodes into the typed object: the comparison applies that
//! decoding's effect (directive keys and `null` members vanish) to kubectl's output.
//!
//! Needs `kubectl` on `PATH` (`hack/install-deps` installs it); no cluster is contacted.

use std::path::Path;
use std::process::Command;

use ferrolet_controlplane::patch::{ObjectKind, PatchType, apply_patch};
use serde_json::{Value, json};

/// One patch case.
struct Case {
    name: &'static str,
    object: Value,
    patch_type: PatchType,
    patch: Value,
}

fn case(name: &'static str, object: &Value, patch_type: PatchType, patch: Value) -> Case {
    Case {
        name,
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

fn run(cases: &[Case]) {
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
            (Ok(ours), Ok(upstream)) if ours == upstream => {}
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

fn pod() -> Value {
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

#[test]
fn strategic_merge_lists_and_directives_agree_with_upstream() {
    let pod = pod();
    let smp = PatchType::StrategicMerge;
    run(&[
        case("empty patch", &pod, smp, json!({})),
        case("null patch", &pod, smp, Value::Null),
        case(
            "container merged by name, new one inserted",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "sidecar", "image": "busybox:2"}, {"name": "new", "image": "n"}]}}),
        ),
        case(
            "env by name",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "web", "env": [{"name": "B", "value": "two"}, {"name": "D", "value": "4"}]}]}}),
        ),
        case(
            "env value deleted with null",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "web", "env": [{"name": "B", "value": null}]}]}}),
        ),
        case(
            "$patch delete of a container",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}),
        ),
        case(
            "$patch delete of a missing element",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "nope", "$patch": "delete"}]}}),
        ),
        case(
            "$patch replace on a list",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "only", "image": "o"}, {"$patch": "replace"}]}}),
        ),
        case(
            "$patch replace on a map",
            &pod,
            smp,
            json!({"metadata": {"labels": {"$patch": "replace", "new": "label"}}}),
        ),
        case(
            "$patch delete on a map",
            &pod,
            smp,
            json!({"spec": {"securityContext": {"$patch": "delete"}}}),
        ),
        case(
            "$patch merge on a map is refused",
            &pod,
            smp,
            json!({"spec": {"securityContext": {"$patch": "merge", "runAsUser": 1}}}),
        ),
        case(
            "$patch merge on a list element is refused",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "web", "$patch": "merge"}]}}),
        ),
        case(
            "unknown $patch value",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "web", "$patch": "bogus"}]}}),
        ),
    ]);
}

#[test]
fn strategic_merge_ordering_and_primitive_lists_agree_with_upstream() {
    let pod = pod();
    let smp = PatchType::StrategicMerge;
    run(&[
        case(
            "$setElementOrder reorders containers",
            &pod,
            smp,
            json!({"spec": {"$setElementOrder/containers": [{"name": "logger"}, {"name": "web"}, {"name": "sidecar"}]}}),
        ),
        case(
            "$setElementOrder with a changed and a new element",
            &pod,
            smp,
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "new"}, {"name": "web"}, {"name": "sidecar"}, {"name": "logger"}],
                "containers": [{"name": "new", "image": "n"}, {"name": "web", "image": "nginx:1.26"}]
            }}),
        ),
        case(
            "$setElementOrder of env inside a container",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "web", "$setElementOrder/env": [{"name": "C"}, {"name": "A"}, {"name": "B"}]}]}}),
        ),
        case(
            "$setElementOrder that does not match the patch order",
            &pod,
            smp,
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [{"name": "sidecar", "image": "s"}, {"name": "web", "image": "w"}]
            }}),
        ),
        case(
            "$setElementOrder for a list the original lacks",
            &pod,
            smp,
            json!({"spec": {
                "$setElementOrder/imagePullSecrets": [{"name": "b"}, {"name": "a"}],
                "imagePullSecrets": [{"name": "b"}, {"name": "a"}]
            }}),
        ),
        case(
            "$deleteFromPrimitiveList/finalizers",
            &pod,
            smp,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example.com/one"]}}),
        ),
        case(
            "finalizers merged as a set",
            &pod,
            smp,
            json!({"metadata": {"finalizers": ["c.example.com/three", "a.example.com/one"]}}),
        ),
        case(
            "$setElementOrder/finalizers with additions and deletions",
            &pod,
            smp,
            json!({"metadata": {
                "$setElementOrder/finalizers": ["c.example.com/three", "b.example.com/two"],
                "finalizers": ["c.example.com/three"],
                "$deleteFromPrimitiveList/finalizers": ["a.example.com/one"]
            }}),
        ),
        case(
            "$deleteFromPrimitiveList on an atomic list",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "web", "$deleteFromPrimitiveList/args": ["-g"]}]}}),
        ),
        case(
            "$deleteFromPrimitiveList for a missing field",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "sidecar", "$deleteFromPrimitiveList/args": ["x"]}]}}),
        ),
        case(
            "malformed $deleteFromPrimitiveList key",
            &pod,
            smp,
            json!({"metadata": {"$deleteFromPrimitiveList": ["a.example.com/one"]}}),
        ),
    ]);
}

#[test]
fn strategic_merge_retain_keys_and_atomic_lists_agree_with_upstream() {
    let pod = pod();
    let smp = PatchType::StrategicMerge;
    run(&[
        case(
            "$retainKeys switches a volume's source",
            &pod,
            smp,
            json!({"spec": {
                "$setElementOrder/volumes": [{"name": "data"}, {"name": "config"}],
                "volumes": [{"name": "data", "$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/srv"}}]
            }}),
        ),
        case(
            "$retainKeys that does not list a patched field",
            &pod,
            smp,
            json!({"spec": {"volumes": [{"name": "data", "$retainKeys": ["hostPath"], "hostPath": {"path": "/srv"}}]}}),
        ),
        case(
            "null deletes a label",
            &pod,
            smp,
            json!({"metadata": {"labels": {"tier": null, "added": "yes"}}}),
        ),
        case(
            "tolerations are atomic",
            &pod,
            smp,
            json!({"spec": {"tolerations": [{"key": "k3", "operator": "Exists"}]}}),
        ),
        case(
            "container statuses are atomic",
            &pod,
            smp,
            json!({"status": {"containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "image": "nginx:1.25", "imageID": "sha"}]}}),
        ),
        case(
            "conditions by type",
            &pod,
            smp,
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}]}}),
        ),
        case(
            "ports by containerPort",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 443, "name": "https"}, {"containerPort": 8080}]}]}}),
        ),
        case(
            "ownerReferences by uid",
            &pod,
            smp,
            json!({"metadata": {"ownerReferences": [{"uid": "u2", "$patch": "delete"}, {"apiVersion": "v1", "kind": "X", "name": "x", "uid": "u3"}]}}),
        ),
    ]);
}

#[test]
fn strategic_merge_errors_and_new_fields_agree_with_upstream() {
    let pod = pod();
    let smp = PatchType::StrategicMerge;
    run(&[
        case(
            "element without its merge key",
            &pod,
            smp,
            json!({"spec": {"containers": [{"image": "nameless"}]}}),
        ),
        case(
            "lists of lists",
            &pod,
            smp,
            json!({"metadata": {"finalizers": [["x"]]}}),
        ),
        case(
            "list element types that differ",
            &pod,
            smp,
            json!({"metadata": {"finalizers": [1]}}),
        ),
        case(
            "a map replacing a list",
            &pod,
            smp,
            json!({"spec": {"tolerations": {"key": "k"}}}),
        ),
        case(
            "new fields keep no directives or nulls",
            &pod,
            smp,
            json!({"spec": {
                "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a"]}, {"ip": "5.6.7.8", "$patch": "delete"}],
                "dnsConfig": {"options": [{"name": "ndots", "value": null}], "$patch": "replace"},
                "affinity": {"nodeAffinity": {"x": null}}
            }}),
        ),
        case(
            "new container carrying directives",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "new", "image": "n", "$setElementOrder/env": [{"name": "A"}], "env": [{"name": "A", "value": null}]}]}}),
        ),
        case(
            "nodeSelector merges (no strategy on maps)",
            &pod,
            smp,
            json!({"spec": {"nodeSelector": {"zone": "a"}}}),
        ),
        case(
            "object-level $retainKeys",
            &pod,
            smp,
            json!({"spec": {"securityContext": {"$retainKeys": ["runAsUser"], "runAsUser": 1}}}),
        ),
        case(
            "scalars replaced, types may change",
            &pod,
            smp,
            json!({"spec": {"securityContext": {"runAsUser": "1000"}, "nodeSelector": "x"}}),
        ),
    ]);
}

#[test]
fn kubectl_apply_and_kubelet_status_patches_agree_with_upstream() {
    let pod = pod();
    let smp = PatchType::StrategicMerge;
    run(&[
        case(
            "kubectl apply: image and label change",
            &pod,
            smp,
            json!({
                "metadata": {
                    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\"}\n"},
                    "labels": {"track": "stable"}
                },
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}, {"name": "logger"}],
                    "containers": [{"image": "nginx:1.26", "name": "web"}]
                }
            }),
        ),
        case(
            "kubectl apply: env removed and reordered",
            &pod,
            smp,
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}, {"name": "logger"}],
                "containers": [{
                    "$setElementOrder/env": [{"name": "C"}, {"name": "A"}],
                    "env": [{"$patch": "delete", "name": "B"}],
                    "name": "web"
                }]
            }}),
        ),
        case(
            "kubelet status patch",
            &pod,
            smp,
            json!({
                "metadata": {"uid": "0b5cf3c4-5c1e-4b6e-9d39-2f8d0e6f5a11"},
                "status": {
                    "$setElementOrder/conditions": [
                        {"type": "PodReadyToStartContainers"}, {"type": "Initialized"},
                        {"type": "Ready"}, {"type": "ContainersReady"}, {"type": "PodScheduled"}
                    ],
                    "$setElementOrder/podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
                    "conditions": [
                        {"lastProbeTime": null, "lastTransitionTime": "2025-01-01T00:00:01Z", "status": "True", "type": "PodReadyToStartContainers"},
                        {"lastTransitionTime": "2025-01-01T00:00:02Z", "status": "True", "type": "Initialized"},
                        {"lastTransitionTime": "2025-01-01T00:00:03Z", "status": "True", "type": "Ready"},
                        {"lastProbeTime": null, "lastTransitionTime": "2025-01-01T00:00:03Z", "status": "True", "type": "ContainersReady"}
                    ],
                    "containerStatuses": [
                        {"name": "web", "ready": true, "restartCount": 0, "started": true, "image": "nginx:1.25", "imageID": "sha256:1",
                         "state": {"running": {"startedAt": "2025-01-01T00:00:02Z"}}, "containerID": "containerd://1"},
                        {"name": "sidecar", "ready": true, "restartCount": 0, "started": true, "image": "busybox", "imageID": "sha256:2",
                         "state": {"running": {"startedAt": "2025-01-01T00:00:02Z"}}, "containerID": "containerd://2"}
                    ],
                    "phase": "Running",
                    "podIP": "10.0.0.5",
                    "podIPs": [{"ip": "fd00::5"}],
                    "hostIP": "192.168.1.10",
                    "hostIPs": [{"ip": "192.168.1.10"}],
                    "startTime": "2025-01-01T00:00:00Z"
                }
            }),
        ),
    ]);
}

#[test]
fn other_kinds_agree_with_upstream() {
    let smp = PatchType::StrategicMerge;
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
        "spec": {"podCIDR": "10.0.0.0/24", "podCIDRs": ["10.0.0.0/24"], "taints": [{"key": "a", "effect": "NoSchedule"}]},
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "n1"}],
            "images": [{"names": ["a"], "sizeBytes": 1}]
        }
    });
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}], "selector": {"app": "web"}}
    });
    let csi_node = json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
        "metadata": {"name": "n1"},
        "spec": {"drivers": [{"name": "a.csi", "nodeID": "n1"}, {"name": "b.csi", "nodeID": "n1"}]}
    });
    let service_account = json!({
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"},
        "secrets": [{"name": "s1"}], "imagePullSecrets": [{"name": "p1"}]
    });
    let namespace = json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"},
        "spec": {"finalizers": ["kubernetes"]}
    });
    run(&[
        case(
            "node conditions by type",
            &node,
            smp,
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        ),
        case(
            "node addresses by type",
            &node,
            smp,
            json!({"status": {"addresses": [{"type": "ExternalIP", "address": "1.2.3.4"}]}}),
        ),
        case(
            "node podCIDRs as a set, taints atomic",
            &node,
            smp,
            json!({"spec": {"podCIDRs": ["fd00::/64"], "taints": [{"key": "b", "effect": "NoExecute"}]}}),
        ),
        case(
            "node images atomic",
            &node,
            smp,
            json!({"status": {"images": [{"names": ["b"], "sizeBytes": 2}]}}),
        ),
        case(
            "service ports by port",
            &service,
            smp,
            json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}, {"port": 8080}]}}),
        ),
        case(
            "csinode drivers by name",
            &csi_node,
            smp,
            json!({"spec": {"drivers": [{"name": "b.csi", "nodeID": "n2"}, {"name": "c.csi", "nodeID": "n1"}]}}),
        ),
        case(
            "service account secrets by name, image pull secrets atomic",
            &service_account,
            smp,
            json!({"secrets": [{"name": "s2"}], "imagePullSecrets": [{"name": "p2"}]}),
        ),
        case(
            "namespace spec.finalizers atomic",
            &namespace,
            smp,
            json!({"spec": {"finalizers": ["other"]}}),
        ),
    ]);
}

#[test]
fn merge_patches_agree_with_upstream() {
    let pod = pod();
    let merge = PatchType::Merge;
    run(&[
        case(
            "labels merged, null deletes",
            &pod,
            merge,
            json!({"metadata": {"labels": {"tier": null, "new": "x"}}}),
        ),
        case(
            "lists replaced",
            &pod,
            merge,
            json!({"spec": {"containers": [{"name": "only", "image": "o"}]}}),
        ),
        case(
            "new values lose their nulls",
            &pod,
            merge,
            json!({"spec": {"dnsConfig": {"options": [{"name": "ndots", "value": null}, null]}}}),
        ),
        case(
            "object replaced by a list keeps nulls",
            &pod,
            merge,
            json!({"spec": {"securityContext": [null, {"a": null}]}}),
        ),
        case(
            "list replaced by an object loses nulls",
            &pod,
            merge,
            json!({"spec": {"tolerations": {"a": null, "b": {"c": null}}}}),
        ),
        case("a list patch", &pod, merge, json!([1])),
        case("a string patch", &pod, merge, json!("x")),
        case("a null patch", &pod, merge, Value::Null),
    ]);
}

#[test]
fn json_patches_agree_with_upstream() {
    let pod = pod();
    let json = PatchType::Json;
    run(&[
        case(
            "add, replace, remove",
            &pod,
            json,
            json!([
                {"op": "add", "path": "/metadata/labels/new", "value": "x"},
                {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.26"},
                {"op": "remove", "path": "/metadata/annotations/note"}
            ]),
        ),
        case(
            "escaped keys",
            &pod,
            json,
            json!([{"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "web"}]),
        ),
        case(
            "test passes",
            &pod,
            json,
            json!([{"op": "test", "path": "/spec/containers/0/name", "value": "web"}, {"op": "remove", "path": "/spec/containers/1"}]),
        ),
        case(
            "test fails",
            &pod,
            json,
            json!([{"op": "test", "path": "/spec/containers/0/name", "value": "nope"}]),
        ),
        case(
            "test of a missing member against null",
            &pod,
            json,
            json!([{"op": "test", "path": "/metadata/labels/missing", "value": null}]),
        ),
        case(
            "remove of a missing member",
            &pod,
            json,
            json!([{"op": "remove", "path": "/metadata/labels/missing"}]),
        ),
        case(
            "replace of a missing member adds it",
            &pod,
            json,
            json!([{"op": "replace", "path": "/metadata/labels/missing", "value": "x"}]),
        ),
        case(
            "replace under a missing parent",
            &pod,
            json,
            json!([{"op": "replace", "path": "/metadata/nope/x", "value": "x"}]),
        ),
        case(
            "append and negative indices",
            &pod,
            json,
            json!([
                {"op": "add", "path": "/metadata/finalizers/-", "value": "z"},
                {"op": "add", "path": "/metadata/finalizers/-1", "value": "y"},
                {"op": "remove", "path": "/metadata/finalizers/-3"},
                {"op": "add", "path": "/metadata/finalizers/0", "value": "first"}
            ]),
        ),
        case(
            "index out of range",
            &pod,
            json,
            json!([{"op": "add", "path": "/metadata/finalizers/5", "value": "z"}]),
        ),
    ]);
}

#[test]
fn json_patch_moves_and_failures_agree_with_upstream() {
    let pod = pod();
    let json = PatchType::Json;
    run(&[
        case(
            "move and copy",
            &pod,
            json,
            json!([
                {"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/annotations/tier"},
                {"op": "copy", "from": "/spec/containers/0/image", "path": "/metadata/annotations/image"}
            ]),
        ),
        case(
            "move from a missing member",
            &pod,
            json,
            json!([{"op": "move", "from": "/metadata/labels/missing", "path": "/metadata/annotations/x"}]),
        ),
        case(
            "unknown operation",
            &pod,
            json,
            json!([{"op": "frobnicate", "path": "/metadata"}]),
        ),
        case(
            "operation without path",
            &pod,
            json,
            json!([{"op": "add", "value": 1}]),
        ),
        case(
            "add without value adds null",
            &pod,
            json,
            json!([{"op": "add", "path": "/metadata/labels/empty"}]),
        ),
        case(
            "a patch that is not a list",
            &pod,
            json,
            json!({"op": "add"}),
        ),
        case("a null patch", &pod, json, Value::Null),
        case(
            "add at the root",
            &pod,
            json,
            json!([{"op": "add", "path": "", "value": {}}]),
        ),
    ]);
}

//! The patches real clients send (kubectl apply, the kubelet's status manager) and patches
//! of the other kinds agree with upstream's (see `patch_support`).

mod patch_support;

use ferrolet_controlplane::patch::PatchType;
use serde_json::json;

use patch_support::{case, pod, run};

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

//! Strategic merge patch behaviour, case by case, on realistic objects built from
//! `k8s-openapi` types. (`patch_kubectl_*.rs` check the same engine against upstream's.)

use ferrolet_controlplane::patch::{ObjectKind, PatchError, PatchType, apply_patch};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Node, Pod, PodSpec, PodStatus, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

fn container(name: &str, image: &str) -> Container {
    Container {
        name: name.to_owned(),
        image: Some(image.to_owned()),
        ..Container::default()
    }
}

/// A pod with three containers (the first with env and ports), labels, finalizers, volumes
/// and a status.
fn pod() -> Pod {
    let mut web = container("web", "nginx:1.25");
    web.env = Some(vec![env("A", "1"), env("B", "2"), env("C", "3")]);
    web.ports = Some(vec![ContainerPort {
        container_port: 80,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }]);
    let status: PodStatus = serde_json::from_value(json!({
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"},
            {"type": "Initialized", "status": "False", "lastTransitionTime": "2025-01-01T00:00:00Z"},
            {"type": "Ready", "status": "False", "lastTransitionTime": "2025-01-01T00:00:00Z"}
        ],
        "containerStatuses": [
            {"name": "web", "ready": false, "restartCount": 0, "image": "nginx:1.25", "imageID": "",
             "state": {"waiting": {"reason": "ContainerCreating"}}}
        ]
    }))
    .expect("a pod status");
    Pod {
        metadata: ObjectMeta {
            name: Some("web".to_owned()),
            namespace: Some("default".to_owned()),
            uid: Some("8f6b0a2e-3c55-4f2e-a7a4-0f0e4a7b9c01".to_owned()),
            labels: Some([("app", "web"), ("tier", "frontend")].map(owned).into()),
            finalizers: Some(vec![
                "a.example.com/one".to_owned(),
                "b.example.com/two".to_owned(),
            ]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![
                web,
                container("sidecar", "busybox"),
                container("logger", "fluentbit"),
            ],
            volumes: Some(vec![
                serde_json::from_value::<Volume>(
                    json!({"name": "data", "emptyDir": {"medium": "Memory"}}),
                )
                .expect("a volume"),
            ]),
            ..PodSpec::default()
        }),
        status: Some(status),
    }
}

fn owned((k, v): (&str, &str)) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

/// Applies a strategic merge patch to `pod()` and decodes the result as a `Pod`.
fn patch_pod(patch: &Value) -> Pod {
    let patched = try_patch_pod(patch).expect("the patch applies");
    serde_json::from_value(patched).expect("the result is a valid Pod")
}

fn try_patch_pod(patch: &Value) -> Result<Value, PatchError> {
    let original = serde_json::to_value(pod()).expect("serialize the pod");
    apply_patch(
        ObjectKind::of::<Pod>(),
        PatchType::StrategicMerge,
        &original,
        patch.to_string().as_bytes(),
    )
}

fn spec(pod: &Pod) -> &PodSpec {
    pod.spec.as_ref().expect("spec")
}

fn names(containers: &[Container]) -> Vec<&str> {
    containers.iter().map(|c| c.name.as_str()).collect()
}

fn env_of(pod: &Pod, container: usize) -> Vec<(String, Option<String>)> {
    spec(pod).containers[container]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

fn pair(name: &str, value: &str) -> (String, Option<String>) {
    (name.to_owned(), Some(value.to_owned()))
}

#[test]
fn containers_merge_by_name_and_keep_untouched_containers() {
    let pod =
        patch_pod(&json!({"spec": {"containers": [{"name": "sidecar", "image": "busybox:1.37"}]}}));
    let containers = &spec(&pod).containers;
    assert_eq!(names(containers), ["web", "sidecar", "logger"]);
    assert_eq!(containers[1].image.as_deref(), Some("busybox:1.37"));
    assert_eq!(
        containers[0],
        pod_container(0),
        "untouched container kept whole"
    );
    assert_eq!(containers[2].image.as_deref(), Some("fluentbit"));
}

fn pod_container(index: usize) -> Container {
    spec(&pod()).containers[index].clone()
}

#[test]
fn a_new_container_goes_after_the_patched_one() {
    let pod = patch_pod(&json!({"spec": {"containers": [
        {"name": "sidecar", "image": "busybox:2"},
        {"name": "metrics", "image": "exporter"}
    ]}}));
    // Upstream interleaves: untouched elements that came before the patched one stay before
    // it, the new element follows the patched one.
    assert_eq!(
        names(&spec(&pod).containers),
        ["web", "sidecar", "metrics", "logger"]
    );
}

#[test]
fn env_merges_by_name_inside_a_container() {
    let pod = patch_pod(&json!({"spec": {"containers": [
        {"name": "web", "env": [{"name": "B", "value": "two"}, {"name": "D", "value": "4"}]}
    ]}}));
    assert_eq!(
        env_of(&pod, 0),
        [
            pair("A", "1"),
            pair("B", "two"),
            pair("D", "4"),
            pair("C", "3")
        ]
    );
    assert_eq!(
        spec(&pod).containers[0].image.as_deref(),
        Some("nginx:1.25")
    );
}

#[test]
fn conditions_merge_by_type_replacing_only_that_type() {
    let pod = patch_pod(&json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:01:00Z"}
    ]}}));
    let conditions = pod.status.expect("status").conditions.expect("conditions");
    let summary: Vec<(&str, &str)> = conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("PodScheduled", "True"),
            ("Initialized", "False"),
            ("Ready", "True")
        ]
    );
    assert_eq!(
        serde_json::to_value(&conditions[2].last_transition_time).expect("time"),
        json!("2025-01-01T00:01:00Z")
    );
}

#[test]
fn patch_delete_removes_a_list_element_by_merge_key() {
    let pod =
        patch_pod(&json!({"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}));
    assert_eq!(names(&spec(&pod).containers), ["web", "logger"]);
}

#[test]
fn patch_replace_replaces_a_whole_list() {
    let pod = patch_pod(&json!({"spec": {"containers": [
        {"name": "only", "image": "alpine"},
        {"$patch": "replace"}
    ]}}));
    assert_eq!(spec(&pod).containers, [container("only", "alpine")]);
}

#[test]
fn patch_replace_replaces_a_whole_map() {
    let pod = patch_pod(&json!({"metadata": {"labels": {"$patch": "replace", "owner": "team-a"}}}));
    assert_eq!(
        pod.metadata.labels,
        Some([("owner", "team-a")].map(owned).into())
    );
}

#[test]
fn patch_delete_on_a_map_empties_it() {
    let patched =
        try_patch_pod(&json!({"metadata": {"labels": {"$patch": "delete"}}})).expect("applies");
    assert_eq!(patched["metadata"]["labels"], json!({}));
}

#[test]
fn set_element_order_reorders_a_list() {
    let pod = patch_pod(&json!({"spec": {
        "$setElementOrder/containers": [{"name": "logger"}, {"name": "web"}, {"name": "sidecar"}]
    }}));
    assert_eq!(names(&spec(&pod).containers), ["logger", "web", "sidecar"]);
}

#[test]
fn set_element_order_places_new_elements() {
    let pod = patch_pod(&json!({"spec": {"containers": [{
        "name": "web",
        "$setElementOrder/env": [{"name": "Z"}, {"name": "A"}, {"name": "B"}, {"name": "C"}],
        "env": [{"name": "Z", "value": "26"}]
    }]}}));
    assert_eq!(
        env_of(&pod, 0),
        [
            pair("Z", "26"),
            pair("A", "1"),
            pair("B", "2"),
            pair("C", "3")
        ]
    );
}

#[test]
fn delete_from_primitive_list_removes_finalizers() {
    let pod = patch_pod(&json!({"metadata": {
        "$deleteFromPrimitiveList/finalizers": ["a.example.com/one", "not.there/x"]
    }}));
    assert_eq!(
        pod.metadata.finalizers,
        Some(vec!["b.example.com/two".to_owned()])
    );
}

#[test]
fn finalizers_merge_as_a_set() {
    let pod = patch_pod(
        &json!({"metadata": {"finalizers": ["c.example.com/three", "a.example.com/one"]}}),
    );
    // No duplicates; the patch's values in the patch's order, and `b` (untouched) after `a`,
    // which the original had before it.
    assert_eq!(
        pod.metadata.finalizers,
        Some(
            [
                "c.example.com/three",
                "a.example.com/one",
                "b.example.com/two"
            ]
            .map(str::to_owned)
            .to_vec()
        )
    );
}

#[test]
fn retain_keys_clears_the_fields_it_does_not_list() {
    // kubectl's patch when a volume switches from emptyDir to hostPath.
    let pod = patch_pod(&json!({"spec": {"volumes": [{
        "name": "data",
        "$retainKeys": ["hostPath", "name"],
        "hostPath": {"path": "/srv/data"}
    }]}}));
    let volume = &spec(&pod).volumes.as_ref().expect("volumes")[0];
    assert!(volume.empty_dir.is_none(), "emptyDir is cleared");
    assert_eq!(
        volume.host_path.as_ref().map(|h| h.path.as_str()),
        Some("/srv/data")
    );
}

#[test]
fn null_deletes_a_label() {
    let pod = patch_pod(&json!({"metadata": {"labels": {"tier": null}}}));
    assert_eq!(
        pod.metadata.labels,
        Some([("app", "web")].map(owned).into())
    );
}

#[test]
fn lists_without_a_strategy_are_replaced() {
    let mut tolerant = pod();
    tolerant.spec.as_mut().expect("spec").tolerations = Some(vec![
        serde_json::from_value(json!({"key": "a", "operator": "Exists"})).expect("toleration"),
    ]);
    let original = serde_json::to_value(tolerant).expect("serialize");
    let patched = apply_patch(
        ObjectKind::of::<Pod>(),
        PatchType::StrategicMerge,
        &original,
        br#"{"spec":{"tolerations":[{"key":"b","operator":"Exists"}]}}"#,
    )
    .expect("applies");
    assert_eq!(
        patched["spec"]["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );
}

#[test]
fn container_statuses_are_replaced_whole() {
    // Upstream's ContainerStatuses has no patch strategy: the kubelet sends the full list.
    let pod = patch_pod(&json!({"status": {"containerStatuses": [
        {"name": "sidecar", "ready": true, "restartCount": 1, "image": "busybox", "imageID": "sha256:1"}
    ]}}));
    let statuses = pod
        .status
        .expect("status")
        .container_statuses
        .expect("statuses");
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].name, "sidecar");
    assert!(
        statuses[0].state.is_none(),
        "nothing merged from the old list"
    );
}

/// What `kubectl apply` sends after the image of `web` and a label changed in the manifest:
/// a three-way strategic merge patch with the new last-applied configuration, only the
/// changed container (by its merge key) and `$setElementOrder/containers`.
#[test]
fn kubectl_apply_patch_changes_image_and_label() {
    let last_applied = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{},"labels":{"app":"web","tier":"backend"},"name":"web","namespace":"default"},"spec":{"containers":[{"image":"nginx:1.26","name":"web"},{"image":"busybox","name":"sidecar"},{"image":"fluentbit","name":"logger"}]}}"#;
    let patch = json!({
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": format!("{last_applied}\n")},
            "labels": {"tier": "backend"}
        },
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}, {"name": "logger"}],
            "containers": [{"image": "nginx:1.26", "name": "web"}]
        }
    });
    let patched = try_patch_pod(&patch).expect("applies");
    let mut expected = serde_json::to_value(pod()).expect("serialize");
    expected["metadata"]["labels"]["tier"] = json!("backend");
    expected["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": format!("{last_applied}\n")
    });
    expected["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    assert_eq!(patched, expected);
}

/// What the kubelet's status manager sends (`statusutil.PatchPodStatus`, a two-way strategic
/// merge patch of the status): changed conditions with `$setElementOrder/conditions`, the
/// full container status list, the pod IPs, the uid as a precondition.
#[test]
fn kubelet_status_patch_yields_the_expected_status() {
    let patch = json!({
        "metadata": {"uid": "8f6b0a2e-3c55-4f2e-a7a4-0f0e4a7b9c01"},
        "status": {
            "$setElementOrder/conditions": [
                {"type": "PodReadyToStartContainers"}, {"type": "Initialized"},
                {"type": "Ready"}, {"type": "ContainersReady"}, {"type": "PodScheduled"}
            ],
            "conditions": [
                {"lastProbeTime": null, "lastTransitionTime": "2025-01-01T00:00:05Z", "status": "True", "type": "PodReadyToStartContainers"},
                {"lastTransitionTime": "2025-01-01T00:00:05Z", "status": "True", "type": "Initialized"},
                {"lastTransitionTime": "2025-01-01T00:00:07Z", "status": "True", "type": "Ready"},
                {"lastProbeTime": null, "lastTransitionTime": "2025-01-01T00:00:07Z", "status": "True", "type": "ContainersReady"}
            ],
            "containerStatuses": [{
                "name": "web", "ready": true, "restartCount": 0, "started": true,
                "image": "docker.io/library/nginx:1.25", "imageID": "docker.io/library/nginx@sha256:1",
                "containerID": "containerd://c1",
                "state": {"running": {"startedAt": "2025-01-01T00:00:06Z"}}
            }],
            "hostIP": "192.168.1.10",
            "hostIPs": [{"ip": "192.168.1.10"}],
            "phase": "Running",
            "podIP": "10.244.0.7",
            "podIPs": [{"ip": "10.244.0.7"}],
            "startTime": "2025-01-01T00:00:04Z"
        }
    });
    let patched = try_patch_pod(&patch).expect("applies");
    let expected_status = json!({
        "phase": "Running",
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2025-01-01T00:00:05Z"},
            {"type": "Initialized", "status": "True", "lastTransitionTime": "2025-01-01T00:00:05Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:07Z"},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2025-01-01T00:00:07Z"},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}
        ],
        "containerStatuses": [{
            "name": "web", "ready": true, "restartCount": 0, "started": true,
            "image": "docker.io/library/nginx:1.25", "imageID": "docker.io/library/nginx@sha256:1",
            "containerID": "containerd://c1",
            "state": {"running": {"startedAt": "2025-01-01T00:00:06Z"}}
        }],
        "hostIP": "192.168.1.10",
        "hostIPs": [{"ip": "192.168.1.10"}],
        "podIP": "10.244.0.7",
        "podIPs": [{"ip": "10.244.0.7"}],
        "startTime": "2025-01-01T00:00:04Z"
    });
    assert_eq!(patched["status"], expected_status);
    let pod: Pod = serde_json::from_value(patched).expect("a valid Pod");
    assert_eq!(
        pod.status.and_then(|s| s.pod_ips).map(|ips| ips.len()),
        Some(1)
    );
}

/// A merge that only adds elements puts them first: the original's elements are interleaved
/// only relative to patch elements the original had. That is why the kubelet (and kubectl)
/// send `$setElementOrder` whenever a merged list changes.
#[test]
fn pod_ips_merge_by_ip() {
    let first =
        try_patch_pod(&json!({"status": {"podIPs": [{"ip": "10.244.0.7"}]}})).expect("applies");
    let patched = apply_patch(
        ObjectKind::of::<Pod>(),
        PatchType::StrategicMerge,
        &first,
        br#"{"status":{"podIPs":[{"ip":"fd00::7"}]}}"#,
    )
    .expect("applies");
    assert_eq!(
        patched["status"]["podIPs"],
        json!([{"ip": "fd00::7"}, {"ip": "10.244.0.7"}])
    );
    let ordered = apply_patch(
        ObjectKind::of::<Pod>(),
        PatchType::StrategicMerge,
        &first,
        br#"{"status":{"$setElementOrder/podIPs":[{"ip":"10.244.0.7"},{"ip":"fd00::7"}],"podIPs":[{"ip":"fd00::7"}]}}"#,
    )
    .expect("applies");
    assert_eq!(
        ordered["status"]["podIPs"],
        json!([{"ip": "10.244.0.7"}, {"ip": "fd00::7"}])
    );
}

#[test]
fn the_result_never_keeps_directives_or_nulls() {
    let patched = try_patch_pod(&json!({"spec": {
        "containers": [{"name": "new", "image": "n", "$setElementOrder/env": [{"name": "X"}], "env": [{"name": "X", "value": null}]}],
        "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a"]}, {"ip": "5.6.7.8", "$patch": "delete"}],
        "dnsConfig": {"$patch": "replace", "nameservers": ["1.1.1.1"]}
    }}))
    .expect("applies");
    let text = patched.to_string();
    assert!(!text.contains('$'), "a directive survived: {text}");
    assert!(!text.contains("null"), "a null survived: {text}");
    assert_eq!(
        patched["spec"]["hostAliases"],
        json!([{"ip": "1.2.3.4", "hostnames": ["a"]}])
    );
    // A `$patch` object for a field the original lacks has nothing to act on (upstream
    // `removeDirectives`): the field stays unset.
    assert!(patched["spec"].get("dnsConfig").is_none());
    assert_eq!(
        patched["spec"]["containers"][0],
        json!({"name": "new", "image": "n", "env": [{"name": "X"}]})
    );
}

#[test]
fn node_status_merges_conditions_and_addresses_by_type() {
    let node = json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}]
        }
    });
    let patched = apply_patch(
        ObjectKind::of::<Node>(),
        PatchType::StrategicMerge,
        &node,
        br#"{"status":{"conditions":[{"type":"Ready","status":"True"}],"addresses":[{"type":"Hostname","address":"n1"}]}}"#,
    )
    .expect("applies");
    assert_eq!(
        patched["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "False"}])
    );
    // The new address comes first (see `pod_ips_merge_by_ip`).
    assert_eq!(
        patched["status"]["addresses"],
        json!([{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "192.168.1.10"}])
    );
}

//! Strategic merge patches agree with upstream's (see `patch_support`): list merging,
//! directives, ordering, errors and corner cases, on a pod.

mod patch_support;

use ferrolet_controlplane::patch::PatchType;
use serde_json::{Value, json};

use patch_support::{case, pod, run};

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
fn strategic_merge_corner_cases_agree_with_upstream() {
    let pod = pod();
    let smp = PatchType::StrategicMerge;
    run(&[
        case(
            "merge key compared with its JSON type (80.0 is not 80)",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 80.0, "name": "f"}, {"containerPort": 80, "name": "i"}]}]}}),
        ),
        case(
            "$patch delete by an integer merge key",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 443, "$patch": "delete"}]}]}}),
        ),
        case(
            "null for a deletion list removes the field",
            &pod,
            smp,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": null}}),
        ),
        case(
            "deletion list against a non-list",
            &pod,
            smp,
            json!({"metadata": {"$deleteFromPrimitiveList/labels": ["app"]}}),
        ),
        case(
            "$setElementOrder for a field neither has",
            &pod,
            smp,
            json!({"spec": {"$setElementOrder/hostAliases": [{"ip": "1.1.1.1"}]}}),
        ),
        case(
            "$setElementOrder for a field that is not a list",
            &pod,
            smp,
            json!({"spec": {"$setElementOrder/securityContext": [{"name": "x"}]}}),
        ),
        case(
            "$setElementOrder that is not a list",
            &pod,
            smp,
            json!({"spec": {"$setElementOrder/containers": {"name": "x"}}}),
        ),
        case(
            "malformed $setElementOrder key",
            &pod,
            smp,
            json!({"spec": {"$setElementOrder": [{"name": "web"}]}}),
        ),
    ]);
}

#[test]
fn strategic_merge_nested_directives_agree_with_upstream() {
    let pod = pod();
    let smp = PatchType::StrategicMerge;
    run(&[
        case(
            "kubectl apply deleting a container",
            &pod,
            smp,
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "logger"}],
                "containers": [{"$patch": "delete", "name": "sidecar"}]
            }}),
        ),
        case(
            "$patch replace nested in a merged element",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "web", "resources": {"$patch": "replace", "limits": {"cpu": "1"}}}]}}),
        ),
        case(
            "$patch replace on a map the original has",
            &pod,
            smp,
            json!({"spec": {"securityContext": {"$patch": "replace", "runAsGroup": 3}}}),
        ),
        case(
            "$patch replace list element with $setElementOrder",
            &pod,
            smp,
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "b", "image": "b"}, {"name": "a", "image": "a"}, {"$patch": "replace"}]
            }}),
        ),
        case(
            "scalars of mixed types in a set",
            &pod,
            smp,
            json!({"metadata": {"finalizers": [1, "x"]}}),
        ),
        case(
            "empty lists",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "web", "ports": []}]}}),
        ),
        case(
            "object-level $retainKeys with $setElementOrder",
            &pod,
            smp,
            json!({"spec": {"containers": [{
                "name": "web",
                "$retainKeys": ["name", "image", "env"],
                "$setElementOrder/env": [{"name": "C"}, {"name": "A"}],
                "env": [{"name": "B", "$patch": "delete"}]
            }]}}),
        ),
        case(
            "duplicate values in a patched set",
            &pod,
            smp,
            json!({"metadata": {"finalizers": ["z", "z", "a.example.com/one"]}}),
        ),
        case(
            "two patch elements with the same key",
            &pod,
            smp,
            json!({"spec": {"containers": [{"name": "x", "image": "1"}, {"name": "x", "args": ["2"]}]}}),
        ),
    ]);
}

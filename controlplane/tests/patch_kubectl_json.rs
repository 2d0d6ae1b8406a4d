//! JSON merge patches and JSON patches agree with upstream's (see `patch_support`).

mod patch_support;

use ferrolet_controlplane::patch::PatchType;
use serde_json::{Value, json};

use patch_support::{case, pod, run};

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

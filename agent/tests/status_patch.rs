//! `status_patch`: the strategic merge patch body of `PATCH pods/{name}/status`. Each patch is
//! checked against the exact JSON upstream's `CreateTwoWayMergePatch` produces and by applying
//! it with a small strategic-merge applier to the old status.

#[path = "status_common.rs"]
mod common;

use common::{at, container, exited, pod, running, runtime};
use ferrolet_agent::status::time::api_time;
use ferrolet_agent::status::{StatusContext, pod_status, status_patch};
use k8s_openapi::api::core::v1::{PodCondition, PodIP, PodStatus};
use serde_json::{Map, Value, json};

fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "conditions" => Some("type"),
        "podIPs" | "hostIPs" => Some("ip"),
        "resourceClaimStatuses" => Some("name"),
        _ => None,
    }
}

/// Applies a strategic merge patch to a `PodStatus` JSON, the way the API server does for the
/// directives `status_patch` emits.
fn apply(target: &mut Map<String, Value>, patch: &Map<String, Value>, top: bool) {
    for (field, value) in patch {
        if field.starts_with("$setElementOrder/") {
            continue;
        }
        if value.is_null() {
            target.remove(field);
            continue;
        }
        let key = if top { merge_key(field) } else { None };
        match (target.get_mut(field), value, key) {
            (Some(Value::Array(items)), Value::Array(changes), Some(key)) => {
                for change in changes {
                    let k = &change[key];
                    if change.get("$patch") == Some(&json!("delete")) {
                        items.retain(|i| &i[key] != k);
                    } else if let Some(existing) = items.iter_mut().find(|i| &i[key] == k) {
                        let (Value::Object(e), Value::Object(c)) = (existing, change) else {
                            panic!("merge list elements are maps");
                        };
                        apply(e, c, false);
                    } else {
                        items.push(change.clone());
                    }
                }
            }
            (Some(Value::Object(existing)), Value::Object(changes), _) => {
                apply(existing, changes, false);
            }
            _ => {
                target.insert(field.clone(), value.clone());
            }
        }
    }
    // `$setElementOrder/<list>` orders the merged list, also when no element changed.
    for (directive, order) in patch {
        let (Some(field), Value::Array(order)) =
            (directive.strip_prefix("$setElementOrder/"), order)
        else {
            continue;
        };
        let (Some(key), Some(Value::Array(items))) = (merge_key(field), target.get_mut(field))
        else {
            continue;
        };
        let position = |i: &Value| order.iter().position(|o| o[key] == i[key]);
        items.sort_by_key(|i| position(i).unwrap_or(usize::MAX));
    }
}

/// The patch turns `old` into `new`.
fn check_round_trip(old: &PodStatus, new: &PodStatus) -> Option<Value> {
    let patch = status_patch("uid-1", old, new).expect("patch");
    let mut applied = serde_json::to_value(old).expect("json");
    if let Some(patch) = &patch {
        assert_eq!(patch["metadata"], json!({"uid": "uid-1"}));
        let (Value::Object(target), Value::Object(changes)) = (&mut applied, &patch["status"])
        else {
            panic!("objects");
        };
        apply(target, changes, true);
    }
    assert_eq!(
        applied,
        serde_json::to_value(new).expect("json"),
        "patch {patch:?}"
    );
    patch
}

fn cond(type_: &str, status: &str, seconds: i64) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        last_transition_time: Some(api_time(at(seconds))),
        ..PodCondition::default()
    }
}

#[test]
fn equal_statuses_need_no_patch() {
    let p = pod("Always", vec![], vec![container("app")]);
    let s = pod_status(
        &p,
        &runtime(vec![running("app", 0, 1)]),
        &StatusContext::new("containerd", at(9)),
    );
    assert_eq!(status_patch("uid-1", &s, &s.clone()).expect("patch"), None);
    assert_eq!(
        status_patch("uid-1", &PodStatus::default(), &PodStatus::default()).expect("patch"),
        None
    );
}

#[test]
fn conditions_merge_by_type_with_element_order() {
    let not_ready = PodCondition {
        reason: Some("ContainersNotReady".to_owned()),
        message: Some("containers with unready status: [app]".to_owned()),
        ..cond("Ready", "False", 0)
    };
    let old = PodStatus {
        phase: Some("Pending".to_owned()),
        conditions: Some(vec![not_ready, cond("PodScheduled", "True", 0)]),
        ..PodStatus::default()
    };
    let new = PodStatus {
        phase: Some("Running".to_owned()),
        conditions: Some(vec![
            cond("Ready", "True", 30),
            cond("PodScheduled", "True", 0),
        ]),
        pod_ip: Some("10.1.0.5".to_owned()),
        pod_ips: Some(vec![PodIP {
            ip: "10.1.0.5".to_owned(),
        }]),
        ..PodStatus::default()
    };
    let patch = check_round_trip(&old, &new).expect("a patch");
    assert_eq!(
        patch,
        json!({
            "metadata": {"uid": "uid-1"},
            "status": {
                "$setElementOrder/conditions": [{"type": "Ready"}, {"type": "PodScheduled"}],
                "conditions": [{
                    "type": "Ready",
                    "status": "True",
                    "lastTransitionTime": "2023-11-14T22:13:50Z",
                    "reason": null,
                    "message": null
                }],
                "phase": "Running",
                "podIP": "10.1.0.5",
                "podIPs": [{"ip": "10.1.0.5"}]
            }
        })
    );
}

#[test]
fn removed_added_and_reordered_list_elements() {
    let old = PodStatus {
        conditions: Some(vec![
            cond("Ready", "True", 0),
            cond("example.com/x", "True", 0),
        ]),
        pod_ips: Some(vec![PodIP {
            ip: "10.1.0.5".to_owned(),
        }]),
        ..PodStatus::default()
    };
    let new = PodStatus {
        conditions: Some(vec![
            cond("PodScheduled", "True", 0),
            cond("Ready", "True", 0),
        ]),
        pod_ips: Some(vec![
            PodIP {
                ip: "10.1.0.5".to_owned(),
            },
            PodIP {
                ip: "fd00::5".to_owned(),
            },
        ]),
        ..PodStatus::default()
    };
    let patch = check_round_trip(&old, &new).expect("a patch");
    assert_eq!(
        patch["status"],
        json!({
            "$setElementOrder/conditions": [{"type": "PodScheduled"}, {"type": "Ready"}],
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2023-11-14T22:13:20Z"},
                {"$patch": "delete", "type": "example.com/x"}
            ],
            "$setElementOrder/podIPs": [{"ip": "10.1.0.5"}, {"ip": "fd00::5"}],
            "podIPs": [{"ip": "fd00::5"}]
        })
    );

    // Only the order changed.
    let swapped = PodStatus {
        conditions: Some(vec![
            cond("example.com/x", "True", 0),
            cond("Ready", "True", 0),
        ]),
        ..old.clone()
    };
    let patch = check_round_trip(&old, &swapped).expect("a patch");
    assert_eq!(
        patch["status"],
        json!({"$setElementOrder/conditions": [{"type": "example.com/x"}, {"type": "Ready"}]})
    );
}

#[test]
fn container_statuses_are_replaced_whole_and_removed_fields_are_null() {
    let p = pod("Always", vec![], vec![container("app"), container("log")]);
    let ctx = StatusContext::new("containerd", at(5));
    let old = pod_status(
        &p,
        &runtime(vec![running("app", 0, 1), running("log", 0, 1)]),
        &ctx,
    );
    let mut later = StatusContext::new("containerd", at(50));
    later.previous = Some(old.clone());
    let new = pod_status(
        &p,
        &runtime(vec![exited("app", 0, 1, 1, 40), running("log", 0, 1)]),
        &later,
    );
    let patch = check_round_trip(&old, &new).expect("a patch");
    let statuses = &patch["status"]["containerStatuses"];
    assert_eq!(
        statuses.as_array().map(Vec::len),
        Some(2),
        "whole list: {patch}"
    );
    assert_eq!(statuses[0]["state"]["terminated"]["exitCode"], 1);
    assert_eq!(statuses[1]["name"], "log");

    let with_message = PodStatus {
        message: Some("evicted".to_owned()),
        ..new.clone()
    };
    let patch = check_round_trip(&with_message, &new).expect("a patch");
    assert_eq!(patch["status"], json!({"message": null}));
}

#[test]
fn patches_of_a_pod_lifecycle_round_trip() {
    let p = pod(
        "OnFailure",
        vec![container("setup")],
        vec![container("app")],
    );
    let snapshots = [
        runtime(vec![]),
        runtime(vec![running("setup", 0, 1)]),
        runtime(vec![exited("setup", 0, 0, 1, 2)]),
        runtime(vec![exited("setup", 0, 0, 1, 2), running("app", 0, 3)]),
        runtime(vec![exited("setup", 0, 0, 1, 2), exited("app", 0, 1, 3, 4)]),
        runtime(vec![
            exited("setup", 0, 0, 1, 2),
            exited("app", 0, 1, 3, 4),
            running("app", 1, 5),
        ]),
        runtime(vec![exited("setup", 0, 0, 1, 2), exited("app", 1, 0, 5, 6)]),
    ];
    let mut api = PodStatus::default();
    for (i, rt) in snapshots.iter().enumerate() {
        let mut ctx = StatusContext::new("containerd", at(10 * i64::try_from(i).expect("small")));
        ctx.previous = Some(api.clone());
        let new = pod_status(&p, rt, &ctx);
        check_round_trip(&api, &new);
        assert_eq!(status_patch("uid-1", &new, &new).expect("patch"), None);
        api = new;
    }
    assert_eq!(api.phase.as_deref(), Some("Succeeded"));
}

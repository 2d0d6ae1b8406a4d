//! The taints that mirror a node's conditions, as kube-controller-manager's node lifecycle
//! controller keeps them (`nodeConditionToTaintKeyStatusMap`, `doNoScheduleTaintingPass`,
//! `doNoExecuteTaintingPass`):
//!
//! | condition                  | taints                                   |
//! |----------------------------|------------------------------------------|
//! | Ready `False`              | `not-ready:NoSchedule`, `not-ready:NoExecute`     |
//! | Ready `Unknown`            | `unreachable:NoSchedule`, `unreachable:NoExecute` |
//! | `MemoryPressure` `True`    | `memory-pressure:NoSchedule`             |
//! | `DiskPressure` `True`      | `disk-pressure:NoSchedule`               |
//! | `PIDPressure` `True`       | `pid-pressure:NoSchedule`                |
//! | `NetworkUnavailable` `True`| `network-unavailable:NoSchedule`         |
//! | `spec.unschedulable`       | `unschedulable:NoSchedule`               |
//!
//! (all keys under `node.kubernetes.io/`). When the condition clears — Ready `True` posted by
//! the kubelet again — the taints go. Other taints are never touched.

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::scheduler::taints::{
    NO_EXECUTE, NO_SCHEDULE, TAINT_DISK_PRESSURE, TAINT_MEMORY_PRESSURE, TAINT_NETWORK_UNAVAILABLE,
    TAINT_NOT_READY, TAINT_PID_PRESSURE, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE, condition_status,
};

/// Every `(key, effect)` this controller owns.
pub const MANAGED_TAINTS: [(&str, &str); 9] = [
    (TAINT_NOT_READY, NO_EXECUTE),
    (TAINT_UNREACHABLE, NO_EXECUTE),
    (TAINT_NOT_READY, NO_SCHEDULE),
    (TAINT_UNREACHABLE, NO_SCHEDULE),
    (TAINT_MEMORY_PRESSURE, NO_SCHEDULE),
    (TAINT_DISK_PRESSURE, NO_SCHEDULE),
    (TAINT_PID_PRESSURE, NO_SCHEDULE),
    (TAINT_NETWORK_UNAVAILABLE, NO_SCHEDULE),
    (TAINT_UNSCHEDULABLE, NO_SCHEDULE),
];

fn is_managed(taint: &Taint) -> bool {
    MANAGED_TAINTS
        .iter()
        .any(|(key, effect)| taint.key == *key && taint.effect == *effect)
}

/// The managed taints the node's conditions and cordon call for.
#[must_use]
pub fn desired_taints(node: &Node) -> Vec<(&'static str, &'static str)> {
    let mut desired = Vec::new();
    match condition_status(node, "Ready") {
        Some("False") => {
            desired.push((TAINT_NOT_READY, NO_SCHEDULE));
            desired.push((TAINT_NOT_READY, NO_EXECUTE));
        }
        Some("Unknown") => {
            desired.push((TAINT_UNREACHABLE, NO_SCHEDULE));
            desired.push((TAINT_UNREACHABLE, NO_EXECUTE));
        }
        _ => {}
    }
    let pressures = [
        ("MemoryPressure", TAINT_MEMORY_PRESSURE),
        ("DiskPressure", TAINT_DISK_PRESSURE),
        ("PIDPressure", TAINT_PID_PRESSURE),
        ("NetworkUnavailable", TAINT_NETWORK_UNAVAILABLE),
    ];
    for (condition, key) in pressures {
        if condition_status(node, condition) == Some("True") {
            desired.push((key, NO_SCHEDULE));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        desired.push((TAINT_UNSCHEDULABLE, NO_SCHEDULE));
    }
    desired
}

/// The node's taint list with the managed taints brought in line with its conditions, or
/// `None` if it already is. Other taints keep their place; a kept managed taint keeps its
/// `timeAdded`; a new `NoExecute` taint gets `timeAdded = now` (its eviction clock).
#[must_use]
pub fn reconcile_taints(node: &Node, now: Timestamp) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let desired = desired_taints(node);
    let is_desired = |t: &Taint| {
        desired
            .iter()
            .any(|(key, effect)| t.key == *key && t.effect == *effect)
    };
    let mut next: Vec<Taint> = current
        .iter()
        .filter(|t| !is_managed(t) || is_desired(t))
        .cloned()
        .collect();
    let removed = next.len() != current.len();
    let mut added = false;
    for (key, effect) in desired {
        if !next.iter().any(|t| t.key == key && t.effect == effect) {
            next.push(Taint {
                key: key.to_string(),
                effect: effect.to_string(),
                value: None,
                time_added: (effect == NO_EXECUTE).then_some(Time(now)),
            });
            added = true;
        }
    }
    (removed || added).then_some(next)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};

    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn node(conditions: &[(&str, &str)], taints: Vec<Taint>) -> Node {
        Node {
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| NodeCondition {
                            type_: (*t).into(),
                            status: (*s).into(),
                            ..NodeCondition::default()
                        })
                        .collect(),
                ),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            value: None,
            time_added: None,
        }
    }

    fn keys(taints: &[Taint]) -> Vec<String> {
        taints
            .iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect()
    }

    #[test]
    fn an_unreachable_node_gets_both_unreachable_taints() {
        let n = node(&[("Ready", "Unknown")], vec![taint("user", NO_SCHEDULE)]);
        let taints = reconcile_taints(&n, ts(42)).expect("changed");
        assert_eq!(
            keys(&taints),
            vec![
                "user:NoSchedule",
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute",
            ]
        );
        assert_eq!(taints[1].time_added, None);
        assert_eq!(taints[2].time_added, Some(Time(ts(42))));
    }

    #[test]
    fn a_node_that_is_ready_again_loses_the_taints_and_keeps_others() {
        let n = node(
            &[("Ready", "True")],
            vec![
                taint(TAINT_UNREACHABLE, NO_SCHEDULE),
                taint("user", NO_EXECUTE),
                taint(TAINT_UNREACHABLE, NO_EXECUTE),
                taint(TAINT_NOT_READY, NO_SCHEDULE),
            ],
        );
        let taints = reconcile_taints(&n, ts(1)).expect("changed");
        assert_eq!(keys(&taints), vec!["user:NoExecute"]);
    }

    #[test]
    fn not_ready_replaces_unreachable() {
        let n = node(
            &[("Ready", "False")],
            vec![
                taint(TAINT_UNREACHABLE, NO_SCHEDULE),
                taint(TAINT_UNREACHABLE, NO_EXECUTE),
            ],
        );
        assert_eq!(
            keys(&reconcile_taints(&n, ts(1)).expect("changed")),
            vec![
                "node.kubernetes.io/not-ready:NoSchedule",
                "node.kubernetes.io/not-ready:NoExecute",
            ]
        );
    }

    #[test]
    fn an_up_to_date_node_needs_no_change_and_kept_taints_keep_their_time() {
        let mut no_execute = taint(TAINT_UNREACHABLE, NO_EXECUTE);
        no_execute.time_added = Some(Time(ts(5)));
        let n = node(
            &[("Ready", "Unknown")],
            vec![no_execute.clone(), taint(TAINT_UNREACHABLE, NO_SCHEDULE)],
        );
        assert_eq!(reconcile_taints(&n, ts(100)), None);
        assert_eq!(
            reconcile_taints(&node(&[("Ready", "True")], vec![]), ts(1)),
            None
        );
    }

    #[test]
    fn pressure_conditions_and_cordon_give_no_schedule_taints() {
        let mut n = node(
            &[
                ("Ready", "True"),
                ("MemoryPressure", "True"),
                ("DiskPressure", "False"),
                ("PIDPressure", "True"),
                ("NetworkUnavailable", "True"),
            ],
            vec![],
        );
        n.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
        assert_eq!(
            keys(&reconcile_taints(&n, ts(1)).expect("changed")),
            vec![
                "node.kubernetes.io/memory-pressure:NoSchedule",
                "node.kubernetes.io/pid-pressure:NoSchedule",
                "node.kubernetes.io/network-unavailable:NoSchedule",
                "node.kubernetes.io/unschedulable:NoSchedule",
            ]
        );
    }

    #[test]
    fn a_node_without_a_ready_condition_is_not_tainted_yet() {
        assert!(desired_taints(&node(&[], vec![])).is_empty());
    }
}

//! Whether a node is still heard from, and what its conditions become when it is not
//! (kube-controller-manager's `tryUpdateNodeHealth`).
//!
//! A node is heard from when its kubelet renews the node's Lease in `kube-node-lease` or posts
//! a new Ready heartbeat. As upstream does, the controller notes *its own* time of each such
//! change (the probe time) instead of trusting the timestamps in the objects, so clock skew
//! between hosts does not matter, and every node it starts to watch gets a full grace period.
//! A node that never posted a Ready condition is measured from its creation, with the longer
//! startup grace period.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Condition reason when a kubelet that reported before stopped reporting.
pub const REASON_NODE_STATUS_UNKNOWN: &str = "NodeStatusUnknown";
/// Condition message when a kubelet that reported before stopped reporting.
pub const MESSAGE_STOPPED_POSTING: &str = "Kubelet stopped posting node status.";
/// Condition reason when a kubelet never reported the condition.
pub const REASON_NODE_STATUS_NEVER_UPDATED: &str = "NodeStatusNeverUpdated";
/// Condition message when a kubelet never reported the condition.
pub const MESSAGE_NEVER_POSTED: &str = "Kubelet never posted node status.";

/// The conditions that become `Unknown` when the kubelet goes silent (`NetworkUnavailable`
/// is left alone: the network plugin, not the kubelet, owns it).
pub const KUBELET_CONDITIONS: [&str; 4] =
    ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What the controller last saw of one node's health signals.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    has_ready: bool,
    ready_heartbeat: Option<Timestamp>,
    lease_renew: Option<Timestamp>,
    probe: Timestamp,
}

/// The last time each node was heard from, by the controller's clock.
#[derive(Debug, Clone, Default)]
pub struct HealthTracker {
    nodes: HashMap<String, Observed>,
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

impl HealthTracker {
    /// Takes what the node and its lease show at `now` and returns the node's probe time: the
    /// last time the controller saw a new Ready heartbeat or a renewed lease.
    pub fn observe(&mut self, node: &Node, lease: Option<&Lease>, now: Timestamp) -> Timestamp {
        let name = node.metadata.name.clone().unwrap_or_default();
        let ready = ready_condition(node);
        let heartbeat = ready
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0);
        let renew = lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0);
        let created = node
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(now, |t| t.0);

        let mut observed = match self.nodes.remove(&name) {
            None => Observed {
                has_ready: ready.is_some(),
                ready_heartbeat: heartbeat,
                lease_renew: None,
                probe: if ready.is_some() {
                    now
                } else {
                    created.min(now)
                },
            },
            Some(saved) => {
                let heard = saved.has_ready != ready.is_some()
                    || (ready.is_some() && saved.ready_heartbeat != heartbeat);
                Observed {
                    has_ready: ready.is_some(),
                    ready_heartbeat: heartbeat,
                    probe: if heard { now } else { saved.probe },
                    ..saved
                }
            }
        };
        if let Some(renew) = renew
            && observed.lease_renew.is_none_or(|saved| saved < renew)
        {
            observed.lease_renew = Some(renew);
            observed.probe = now;
        }
        let probe = observed.probe;
        self.nodes.insert(name, observed);
        probe
    }

    /// Forgets nodes that no longer exist.
    pub fn retain(&mut self, existing: &HashSet<&str>) {
        self.nodes
            .retain(|name, _| existing.contains(name.as_str()));
    }
}

/// The grace period a node gets: `startup` while it has never posted a Ready condition.
#[must_use]
pub fn grace_period(node: &Node, grace: Duration, startup: Duration) -> Duration {
    if ready_condition(node).is_some() {
        grace
    } else {
        startup
    }
}

/// Whether a node last heard from at `probe` is overdue at `now`.
#[must_use]
pub fn is_stale(probe: Timestamp, now: Timestamp, grace: Duration) -> bool {
    let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
    probe
        .checked_add(grace)
        .is_ok_and(|deadline| now > deadline)
}

/// The node's conditions with the kubelet-owned ones set to `Unknown` (reason
/// `NodeStatusUnknown`, or `NodeStatusNeverUpdated` for a condition that was never posted),
/// or `None` if they already are. Transition times become `now`; heartbeats stay.
#[must_use]
pub fn unknown_conditions(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in KUBELET_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(condition) if condition.status != "Unknown" => {
                condition.status = "Unknown".into();
                condition.reason = Some(REASON_NODE_STATUS_UNKNOWN.into());
                condition.message = Some(MESSAGE_STOPPED_POSTING.into());
                condition.last_transition_time = Some(Time(now));
                changed = true;
            }
            Some(_) => {}
            None => {
                conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some(REASON_NODE_STATUS_NEVER_UPDATED.into()),
                    message: Some(MESSAGE_NEVER_POSTED.into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::api::core::v1::NodeStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn node(ready: Option<(&str, i64)>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                creation_timestamp: Some(Time(ts(0))),
                ..ObjectMeta::default()
            },
            status: Some(NodeStatus {
                conditions: ready.map(|(status, heartbeat)| {
                    vec![
                        NodeCondition {
                            type_: "Ready".into(),
                            status: status.into(),
                            reason: Some("KubeletReady".into()),
                            last_heartbeat_time: Some(Time(ts(heartbeat))),
                            ..NodeCondition::default()
                        },
                        NodeCondition {
                            type_: "MemoryPressure".into(),
                            status: "False".into(),
                            ..NodeCondition::default()
                        },
                    ]
                }),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    fn lease(renewed: i64) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(ts(renewed))),
                ..LeaseSpec::default()
            }),
        }
    }

    const GRACE: Duration = Duration::from_secs(50);

    #[test]
    fn a_renewed_lease_keeps_the_node_fresh() {
        let mut t = HealthTracker::default();
        let n = node(Some(("True", 0)));
        assert_eq!(t.observe(&n, Some(&lease(100)), ts(100)), ts(100));
        assert!(!is_stale(ts(100), ts(140), GRACE));
        assert_eq!(t.observe(&n, Some(&lease(140)), ts(141)), ts(141));
        assert!(!is_stale(ts(141), ts(190), GRACE));
    }

    #[test]
    fn a_lease_not_renewed_for_the_grace_period_makes_the_node_stale() {
        let mut t = HealthTracker::default();
        let n = node(Some(("True", 0)));
        let probe = t.observe(&n, Some(&lease(100)), ts(100));
        assert_eq!(t.observe(&n, Some(&lease(100)), ts(150)), probe);
        assert!(!is_stale(probe, ts(150), GRACE), "exactly the grace period");
        assert!(is_stale(
            t.observe(&n, Some(&lease(100)), ts(151)),
            ts(151),
            GRACE
        ));
    }

    #[test]
    fn a_new_ready_heartbeat_counts_as_heard_from() {
        let mut t = HealthTracker::default();
        t.observe(&node(Some(("True", 10))), None, ts(10));
        assert_eq!(t.observe(&node(Some(("True", 10))), None, ts(70)), ts(10));
        assert_eq!(t.observe(&node(Some(("True", 75))), None, ts(80)), ts(80));
    }

    #[test]
    fn an_old_lease_seen_first_still_gets_a_grace_period() {
        // The controller's own clock counts, not the kubelet's timestamps.
        let mut t = HealthTracker::default();
        let probe = t.observe(&node(Some(("True", 0))), Some(&lease(5)), ts(1000));
        assert_eq!(probe, ts(1000));
    }

    #[test]
    fn a_node_that_never_posted_is_measured_from_its_creation_with_the_startup_grace() {
        let mut t = HealthTracker::default();
        let n = node(None);
        let probe = t.observe(&n, None, ts(30));
        assert_eq!(probe, ts(0));
        let grace = grace_period(&n, GRACE, Duration::from_mins(1));
        assert_eq!(grace, Duration::from_mins(1));
        assert!(!is_stale(probe, ts(60), grace));
        assert!(is_stale(probe, ts(61), grace));
        assert_eq!(
            grace_period(&node(Some(("True", 0))), GRACE, Duration::from_mins(1)),
            GRACE
        );
    }

    #[test]
    fn stale_conditions_become_unknown_with_upstream_wording() {
        let conditions = unknown_conditions(&node(Some(("True", 7))), ts(99)).expect("changed");
        let ready = conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("ready");
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(ready.last_transition_time, Some(Time(ts(99))));
        assert_eq!(
            ready.last_heartbeat_time,
            Some(Time(ts(7))),
            "heartbeat kept"
        );
        let memory = conditions
            .iter()
            .find(|c| c.type_ == "MemoryPressure")
            .expect("memory");
        assert_eq!(memory.status, "Unknown");
        let disk = conditions
            .iter()
            .find(|c| c.type_ == "DiskPressure")
            .expect("disk");
        assert_eq!(disk.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(
            disk.message.as_deref(),
            Some("Kubelet never posted node status.")
        );
        assert_eq!(disk.last_heartbeat_time, Some(Time(ts(0))), "creation time");
        assert_eq!(conditions.len(), 4);
    }

    #[test]
    fn unknown_conditions_are_left_as_they_are() {
        let mut n = node(Some(("True", 7)));
        let conditions = unknown_conditions(&n, ts(99)).expect("changed");
        n.status.get_or_insert_with(Default::default).conditions = Some(conditions);
        assert_eq!(unknown_conditions(&n, ts(200)), None);
    }

    #[test]
    fn retain_forgets_deleted_nodes() {
        let mut t = HealthTracker::default();
        t.observe(&node(Some(("True", 0))), None, ts(10));
        t.retain(&HashSet::new());
        // Seen anew: a fresh grace period from now.
        assert_eq!(t.observe(&node(Some(("True", 0))), None, ts(500)), ts(500));
    }
}

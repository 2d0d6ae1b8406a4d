//! What the scheduler reads of a pod or node: keys, binding, whether it waits for this
//! scheduler, and fingerprints of what can change a decision. The state kept between watch
//! events is in [`super::state`].

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use k8s_openapi::api::core::v1::{Node, Pod};

use super::taints;

/// The scheduler name of pods that do not name one.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// A pod's UID ("" if it has none).
#[must_use]
pub fn pod_uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// `namespace/name` of a pod.
#[must_use]
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The node a pod is bound to, if any.
#[must_use]
pub fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Whether a pod has finished for good (`Succeeded` or `Failed`) and holds no resources.
#[must_use]
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether a pod waits for this scheduler: not bound, not being deleted, not finished, not
/// held back by scheduling gates, and naming this scheduler (or none, for the default one).
#[must_use]
pub fn is_pending_for(pod: &Pod, scheduler_name: &str) -> bool {
    let Some(spec) = &pod.spec else {
        return false;
    };
    let named = spec
        .scheduler_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_SCHEDULER_NAME);
    bound_node(pod).is_none()
        && pod.metadata.deletion_timestamp.is_none()
        && !is_terminal(pod)
        && spec.scheduling_gates.as_ref().is_none_or(Vec::is_empty)
        && named == scheduler_name
}

fn hash_of(value: &impl serde::Serialize) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(value)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// What of a pending pod can change the scheduling decision (its spec and labels), hashed: a
/// change of it is a reason to retry. Status updates, such as the scheduler's own
/// `PodScheduled` condition, do not change it.
#[must_use]
pub fn scheduling_fingerprint(pod: &Pod) -> u64 {
    hash_of(&(&pod.spec, &pod.metadata.labels))
}

/// What of a node the filters and scores read (labels, taints, cordon, allocatable, the
/// status of each condition), hashed: heartbeats and other status noise leave it unchanged.
#[must_use]
pub fn node_fingerprint(node: &Node) -> u64 {
    let spec = node.spec.as_ref();
    let conditions: BTreeMap<&str, &str> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    hash_of(&(
        &node.metadata.labels,
        spec.and_then(|s| s.taints.as_ref()),
        spec.and_then(|s| s.unschedulable),
        node.status.as_ref().and_then(|s| s.allocatable.as_ref()),
        conditions,
        taints::scheduling_taints(node),
    ))
}

/// Orders pods as kube-scheduler's `PrioritySort` does: higher `spec.priority` first, then the
/// older pod, then by namespace/name for a stable order.
pub fn sort_by_priority<P: std::borrow::Borrow<Pod>>(pods: &mut [P]) {
    let priority = |p: &Pod| p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
    pods.sort_by(|a, b| {
        let (a, b) = (a.borrow(), b.borrow());
        priority(b)
            .cmp(&priority(a))
            .then_with(|| {
                let created = |p: &Pod| p.metadata.creation_timestamp.clone();
                created(a).cmp(&created(b))
            })
            .then_with(|| pod_key(a).cmp(&pod_key(b)))
    });
}

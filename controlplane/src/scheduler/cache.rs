//! The scheduler's view of the cluster between watch events: which pods wait for a node,
//! the node snapshot a decision is made on, and the pods this scheduler bound that the watch
//! has not shown bound yet (the assume cache), so that a burst of pods does not overcommit a
//! node. Pure: the caller passes the objects and the time.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};

use super::node_info::NodeInfo;
use super::resources::ResourceError;
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
pub fn sort_by_priority(pods: &mut [&Pod]) {
    let priority = |p: &Pod| p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
    pods.sort_by(|a, b| {
        priority(b)
            .cmp(&priority(a))
            .then_with(|| {
                let created = |p: &Pod| p.metadata.creation_timestamp.clone();
                created(a).cmp(&created(b))
            })
            .then_with(|| pod_key(a).cmp(&pod_key(b)))
    });
}

#[derive(Debug, Clone)]
struct Assumed {
    pod: Pod,
    expires: Instant,
}

/// Pods this scheduler bound whose binding the watch has not delivered yet, by UID.
#[derive(Debug, Clone)]
pub struct AssumeCache {
    ttl: Duration,
    pods: HashMap<String, Assumed>,
}

impl AssumeCache {
    /// An empty cache whose entries expire after `ttl` if the watch never confirms them.
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            pods: HashMap::new(),
        }
    }

    /// Records that `pod` was bound to `node`.
    pub fn assume(&mut self, pod: &Pod, node: &str, now: Instant) {
        let mut bound = pod.clone();
        bound.spec.get_or_insert_with(Default::default).node_name = Some(node.to_string());
        self.pods.insert(
            pod_uid(pod).to_string(),
            Assumed {
                pod: bound,
                expires: now + self.ttl,
            },
        );
    }

    /// Whether a pod is assumed bound.
    #[must_use]
    pub fn contains(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// Drops the entries the watch has caught up with (the pod shows a node, or is gone) and
    /// the expired ones. `current` looks a pod up by UID in the watch cache.
    pub fn reconcile<'a>(&mut self, current: impl Fn(&str) -> Option<&'a Pod>, now: Instant) {
        self.pods.retain(|uid, assumed| {
            assumed.expires > now && current(uid).is_some_and(|pod| bound_node(pod).is_none())
        });
    }

    /// The assumed pods, each with `spec.nodeName` set.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values().map(|a| &a.pod)
    }

    /// How many pods are assumed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether no pod is assumed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
}

/// A node left out of a snapshot because its own or a bound pod's quantities are invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedNode {
    /// The node.
    pub node: String,
    /// What could not be read.
    pub error: ResourceError,
}

/// Builds the per-node view a scheduling pass decides on: every node, sorted by name, with the
/// non-terminal pods bound to it and the assumed ones. Assumed pods must already be
/// reconciled against `pods`, so that none is counted twice.
pub fn build_snapshot<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    pods: impl IntoIterator<Item = &'a Pod>,
    assumed: &'a AssumeCache,
) -> (Vec<NodeInfo>, Vec<SkippedNode>) {
    let mut by_node: HashMap<&str, Vec<Pod>> = HashMap::new();
    for pod in pods.into_iter().chain(assumed.pods()) {
        if let Some(node) = bound_node(pod)
            && !is_terminal(pod)
        {
            by_node.entry(node).or_default().push(pod.clone());
        }
    }
    let mut sorted: Vec<&Node> = nodes.into_iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut infos = Vec::with_capacity(sorted.len());
    let mut skipped = Vec::new();
    for node in sorted {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let node_pods = by_node.remove(name).unwrap_or_default();
        match NodeInfo::new(node.clone(), node_pods) {
            Ok(info) => infos.push(info),
            Err(error) => skipped.push(SkippedNode {
                node: name.to_string(),
                error,
            }),
        }
    }
    (infos, skipped)
}

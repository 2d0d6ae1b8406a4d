//! The scheduler's cache (kube-scheduler's `internal/cache`): every node with the pods bound to
//! it, kept up to date from watch events, and the pods this scheduler has assumed onto a node
//! before the watch shows them bound, so that decisions never rebuild the cluster's view and a
//! burst of pods does not overcommit a node. It also holds the pods that wait for this
//! scheduler. Pure: the caller passes the events and the time.
//!
//! An assumed pod's life: [`SchedulerCache::assume`] when the decision is made (the pod counts
//! on its node at once), [`SchedulerCache::finish_binding`] when the binding was accepted,
//! then the watch shows it bound and it is an ordinary bound pod; or
//! [`SchedulerCache::forget`] when the binding failed, and it waits again. An assumed pod only
//! expires (with a TTL counted from the end of its binding, if one is set) when the watch never
//! confirms it; while the watch lags, it is neither pending nor bound twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};

use super::cache::{bound_node, is_pending_for, is_terminal, pod_uid, scheduling_fingerprint};
use super::node_info::NodeInfo;

/// Where an assumed pod's binding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    /// The binding request is on its way.
    InFlight,
    /// The API server accepted it; the watch has not shown it yet. Expires at the instant, if
    /// the cache has a TTL.
    Finished(Option<Instant>),
}

/// A pod the cache counts on a node.
#[derive(Debug, Clone)]
struct PlacedPod {
    pod: Arc<Pod>,
    node: String,
    /// `None` once the watch showed the pod bound.
    assumed: Option<Binding>,
}

/// A pod that waits for this scheduler, and the fingerprint of what can change its decision.
#[derive(Debug, Clone)]
pub struct PendingPod {
    pub pod: Arc<Pod>,
    pub fingerprint: u64,
}

/// What a watch event did to the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Resources may have been freed or a node changed: unschedulable pods may fit now.
    pub cluster_changed: bool,
}

/// The cache. See the module documentation.
#[derive(Debug)]
pub struct SchedulerCache {
    scheduler_name: String,
    ttl: Option<Duration>,
    /// Every node, sorted by name: the view a decision is made on.
    nodes: Vec<NodeInfo>,
    /// Pods on a node (bound or assumed) that still hold resources, by UID. A pod whose node
    /// is not known yet is kept here and counted once the node appears.
    placed: HashMap<String, PlacedPod>,
    pending: HashMap<String, PendingPod>,
    /// UIDs and node names seen since a relist began.
    relisting_pods: Option<HashSet<String>>,
    relisting_nodes: Option<HashSet<String>>,
}

impl SchedulerCache {
    /// An empty cache for the scheduler named `scheduler_name`. Assumed pods whose binding
    /// finished expire after `ttl` if the watch never shows them; `None` keeps them until it
    /// does (kube-scheduler's default).
    #[must_use]
    pub fn new(scheduler_name: &str, ttl: Option<Duration>) -> Self {
        Self {
            scheduler_name: scheduler_name.to_string(),
            ttl,
            nodes: Vec::new(),
            placed: HashMap::new(),
            pending: HashMap::new(),
            relisting_pods: None,
            relisting_nodes: None,
        }
    }

    /// The nodes with their pods, sorted by name.
    #[must_use]
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The pods waiting for this scheduler, by UID.
    #[must_use]
    pub fn pending(&self) -> &HashMap<String, PendingPod> {
        &self.pending
    }

    /// Whether a pod is assumed (its binding in flight or not yet shown by the watch).
    #[must_use]
    pub fn is_assumed(&self, uid: &str) -> bool {
        self.placed.get(uid).is_some_and(|p| p.assumed.is_some())
    }

    /// How many pods are assumed.
    #[must_use]
    pub fn assumed_count(&self) -> usize {
        self.placed.values().filter(|p| p.assumed.is_some()).count()
    }

    fn node_mut(&mut self, name: &str) -> Option<&mut NodeInfo> {
        let at = self.nodes.binary_search_by(|n| n.name().cmp(name)).ok()?;
        Some(&mut self.nodes[at])
    }

    fn count_on_node(&mut self, pod: &Pod, node: &str) {
        if let Some(info) = self.node_mut(node)
            && let Err(error) = info.add_pod(pod)
        {
            tracing::warn!(pod = %super::cache::pod_key(pod), %error, "accounting a pod on its node");
        }
    }

    fn uncount(&mut self, placed: &PlacedPod) {
        if let Some(info) = self.node_mut(&placed.node) {
            info.remove_pod(&placed.pod);
        }
    }

    /// A node was added or changed. True if it is new or what the filters read changed is
    /// the caller's business ([`super::run::ClusterWatch`]); this only keeps the view.
    pub fn update_node(&mut self, node: Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(seen) = self.relisting_nodes.as_mut() {
            seen.insert(name.clone());
        }
        match self.nodes.binary_search_by(|n| n.name().cmp(&name)) {
            Ok(at) => {
                if let Err(error) = self.nodes[at].set_node(node) {
                    tracing::warn!(node = %name, %error, "leaving node out of scheduling");
                    self.nodes.remove(at);
                }
            }
            Err(at) => {
                let pods = self
                    .placed
                    .values()
                    .filter(|p| p.node == name)
                    .map(|p| p.pod.as_ref());
                match NodeInfo::new(node, pods) {
                    Ok(info) => self.nodes.insert(at, info),
                    Err(error) => {
                        tracing::warn!(node = %name, %error, "leaving node out of scheduling");
                    }
                }
            }
        }
    }

    /// A node was deleted.
    pub fn delete_node(&mut self, name: &str) {
        if let Ok(at) = self.nodes.binary_search_by(|n| n.name().cmp(name)) {
            self.nodes.remove(at);
        }
    }

    /// A pod was added or changed, as the watch shows it.
    pub fn update_pod(&mut self, pod: Pod) -> Applied {
        let uid = pod_uid(&pod).to_string();
        if uid.is_empty() {
            return Applied::default();
        }
        if let Some(seen) = self.relisting_pods.as_mut() {
            seen.insert(uid.clone());
        }
        let node = bound_node(&pod).map(str::to_owned);
        let assumed = self.placed.get(&uid).and_then(|p| p.assumed);
        match node {
            Some(node) if !is_terminal(&pod) => {
                self.pending.remove(&uid);
                let pod = Arc::new(pod);
                let placed = PlacedPod {
                    pod: pod.clone(),
                    node: node.clone(),
                    assumed: None,
                };
                // Confirmed (or bound by someone else): count it where the watch says.
                if let Some(previous) = self.placed.insert(uid, placed) {
                    self.uncount(&previous);
                }
                self.count_on_node(&pod, &node);
                Applied::default()
            }
            Some(_) => {
                // Finished: it holds nothing any more.
                self.pending.remove(&uid);
                let freed = self.placed.remove(&uid);
                if let Some(previous) = &freed {
                    self.uncount(previous);
                }
                Applied {
                    cluster_changed: freed.is_some(),
                }
            }
            None if assumed.is_some() => {
                // The watch lags behind our binding: keep the latest object, not pending.
                if let Some(placed) = self.placed.get_mut(&uid) {
                    placed.pod = Arc::new(pod);
                }
                Applied::default()
            }
            None => {
                if is_pending_for(&pod, &self.scheduler_name) {
                    let fingerprint = scheduling_fingerprint(&pod);
                    self.pending.insert(
                        uid,
                        PendingPod {
                            pod: Arc::new(pod),
                            fingerprint,
                        },
                    );
                } else {
                    self.pending.remove(&uid);
                }
                Applied::default()
            }
        }
    }

    /// A pod was deleted.
    pub fn delete_pod(&mut self, pod: &Pod) -> Applied {
        let uid = pod_uid(pod);
        self.pending.remove(uid);
        match self.placed.remove(uid) {
            Some(placed) => {
                self.uncount(&placed);
                Applied {
                    cluster_changed: true,
                }
            }
            None => Applied::default(),
        }
    }

    /// A pod relist begins: pods not seen again before [`Self::end_pod_relist`] are gone.
    pub fn begin_pod_relist(&mut self) {
        self.relisting_pods = Some(HashSet::new());
    }

    /// A pod relist ended: drops the pods it did not show, except assumed ones whose binding
    /// is still in flight.
    pub fn end_pod_relist(&mut self) -> Applied {
        let Some(seen) = self.relisting_pods.take() else {
            return Applied::default();
        };
        self.pending.retain(|uid, _| seen.contains(uid));
        let gone: Vec<String> = self
            .placed
            .iter()
            .filter(|(uid, p)| !seen.contains(*uid) && p.assumed != Some(Binding::InFlight))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in &gone {
            if let Some(placed) = self.placed.remove(uid) {
                self.uncount(&placed);
            }
        }
        Applied {
            cluster_changed: !gone.is_empty(),
        }
    }

    /// A node relist begins.
    pub fn begin_node_relist(&mut self) {
        self.relisting_nodes = Some(HashSet::new());
    }

    /// A node relist ended: drops the nodes it did not show.
    pub fn end_node_relist(&mut self) {
        if let Some(seen) = self.relisting_nodes.take() {
            self.nodes.retain(|n| seen.contains(n.name()));
        }
    }

    /// The scheduler decided to bind a pending pod to `node`: it counts there from now on and
    /// is no longer pending.
    pub fn assume(&mut self, uid: &str, node: &str) {
        let Some(pending) = self.pending.remove(uid) else {
            return;
        };
        self.count_on_node(&pending.pod, node);
        self.placed.insert(
            uid.to_string(),
            PlacedPod {
                pod: pending.pod,
                node: node.to_string(),
                assumed: Some(Binding::InFlight),
            },
        );
    }

    /// The binding of an assumed pod was accepted; the watch will show it.
    pub fn finish_binding(&mut self, uid: &str, now: Instant) {
        let expires = self.ttl.map(|ttl| now + ttl);
        if let Some(placed) = self.placed.get_mut(uid)
            && placed.assumed.is_some()
        {
            placed.assumed = Some(Binding::Finished(expires));
        }
    }

    /// The binding of an assumed pod failed: it no longer counts on the node, and waits
    /// again unless `still_pending` is false (it is being deleted, say).
    pub fn forget(&mut self, uid: &str, still_pending: bool) {
        let Some(placed) = self.placed.get(uid).filter(|p| p.assumed.is_some()) else {
            return;
        };
        let placed = placed.clone();
        self.placed.remove(uid);
        self.uncount(&placed);
        if still_pending && is_pending_for(&placed.pod, &self.scheduler_name) {
            self.pending.insert(
                uid.to_string(),
                PendingPod {
                    fingerprint: scheduling_fingerprint(&placed.pod),
                    pod: placed.pod,
                },
            );
        }
    }

    /// Drops assumed pods whose binding finished more than the TTL ago without the watch
    /// showing them; they wait again if the watch still shows them pending.
    pub fn cleanup_expired(&mut self, now: Instant) -> usize {
        let expired: Vec<String> = self
            .placed
            .iter()
            .filter(|(_, p)| matches!(p.assumed, Some(Binding::Finished(Some(at))) if at <= now))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in &expired {
            tracing::warn!(uid = %uid, "assumed pod expired before the watch showed it bound");
            self.forget(uid, true);
        }
        expired.len()
    }
}

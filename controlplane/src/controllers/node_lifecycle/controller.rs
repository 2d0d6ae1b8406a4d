//! One monitor pass of the node lifecycle controller over the watch caches: mark silent nodes
//! `Unknown`, bring the condition taints in line, evict pods whose `NoExecute` tolerations ran
//! out. The decisions are the pure functions of the sibling modules; the writes go through
//! [`NodeLifecycleApi`], with a kube-rs implementation and, in tests, a recording fake.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, EventSource, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;

use super::eviction::{self, TaintClock};
use super::health::{self, HealthTracker};
use super::tainting;
use super::{Error, NodeLifecycleConfig};
use crate::scheduler::cache::{bound_node, is_terminal, pod_key, pod_uid};
use crate::scheduler::taints::condition_status;

/// Event source of node status events (upstream's node lifecycle controller).
pub const NODE_CONTROLLER: &str = "node-controller";
/// Event source of eviction events (upstream's taint eviction controller).
pub const TAINT_EVICTION_CONTROLLER: &str = "taint-eviction-controller";

/// The API writes of the node lifecycle controller.
#[async_trait]
pub trait NodeLifecycleApi: Send + Sync {
    /// Applies a JSON merge patch to `nodes/{name}/status`; returns the updated node.
    async fn patch_node_status(&self, node: &str, patch: &serde_json::Value) -> kube::Result<Node>;
    /// Applies a JSON merge patch to `nodes/{name}`; returns the updated node.
    async fn patch_node(&self, node: &str, patch: &serde_json::Value) -> kube::Result<Node>;
    /// Deletes a pod gracefully, if it still has this UID.
    async fn delete_pod(&self, namespace: &str, name: &str, uid: &str) -> kube::Result<()>;
    /// Creates a core/v1 event.
    async fn create_event(&self, event: &Event) -> kube::Result<()>;
}

/// [`NodeLifecycleApi`] over a kube-rs client.
#[derive(Clone)]
pub struct KubeNodeLifecycleApi {
    client: Client,
}

impl std::fmt::Debug for KubeNodeLifecycleApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeNodeLifecycleApi")
            .finish_non_exhaustive()
    }
}

impl KubeNodeLifecycleApi {
    /// Writes through `client`.
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl NodeLifecycleApi for KubeNodeLifecycleApi {
    async fn patch_node_status(&self, node: &str, patch: &serde_json::Value) -> kube::Result<Node> {
        Api::<Node>::all(self.client.clone())
            .patch_status(node, &PatchParams::default(), &Patch::Merge(patch))
            .await
    }

    async fn patch_node(&self, node: &str, patch: &serde_json::Value) -> kube::Result<Node> {
        Api::<Node>::all(self.client.clone())
            .patch(node, &PatchParams::default(), &Patch::Merge(patch))
            .await
    }

    async fn delete_pod(&self, namespace: &str, name: &str, uid: &str) -> kube::Result<()> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .delete(name, &params)
            .await?;
        Ok(())
    }

    async fn create_event(&self, event: &Event) -> kube::Result<()> {
        let namespace = event.metadata.namespace.as_deref().unwrap_or("default");
        Api::<Event>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), event)
            .await?;
        Ok(())
    }
}

/// What a monitor pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorReport {
    /// Nodes whose conditions were set to `Unknown`.
    pub marked_unknown: Vec<String>,
    /// Nodes whose taints were changed.
    pub retainted: Vec<String>,
    /// `namespace/name` of the pods deleted.
    pub evicted: Vec<String>,
}

/// The controller's state across passes.
#[derive(Debug)]
pub struct NodeLifecycleController<A> {
    api: A,
    config: NodeLifecycleConfig,
    health: HealthTracker,
    taint_clock: TaintClock,
    /// Pods already deleted, by UID, until they leave the cache.
    evicted: HashSet<String>,
}

impl<A: NodeLifecycleApi> NodeLifecycleController<A> {
    /// A controller writing through `api`.
    pub fn new(api: A, config: NodeLifecycleConfig) -> Self {
        Self {
            api,
            config,
            health: HealthTracker::default(),
            taint_clock: TaintClock::default(),
            evicted: HashSet::new(),
        }
    }

    /// The writes go here.
    pub fn api(&self) -> &A {
        &self.api
    }

    /// Checks every node at `now`. API failures are logged; the next pass retries.
    pub async fn monitor(
        &mut self,
        nodes: &[Arc<Node>],
        leases: &[Arc<Lease>],
        pods: &[Arc<Pod>],
        now: Timestamp,
    ) -> MonitorReport {
        let mut report = MonitorReport::default();
        let leases: HashMap<&str, &Lease> = leases
            .iter()
            .filter_map(|l| Some((l.metadata.name.as_deref()?, l.as_ref())))
            .collect();
        let mut pods_by_node: HashMap<&str, Vec<&Pod>> = HashMap::new();
        for pod in pods {
            if let Some(node) = bound_node(pod) {
                pods_by_node.entry(node).or_default().push(pod);
            }
        }
        let live: HashSet<&str> = pods.iter().map(|p| pod_uid(p)).collect();
        self.evicted.retain(|uid| live.contains(uid.as_str()));
        let names: HashSet<&str> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .collect();
        self.health.retain(&names);
        self.taint_clock.retain_nodes(&names);

        let mut sorted: Vec<&Node> = nodes.iter().map(AsRef::as_ref).collect();
        sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for node in sorted {
            let name = node.metadata.name.as_deref().unwrap_or_default();
            let lease = leases.get(name).copied();
            let Some(view) = self.check_health(node, lease, now, &mut report).await else {
                continue;
            };
            let Some(view) = self.update_taints(view, now, &mut report).await else {
                continue;
            };
            let on_node = pods_by_node
                .get(name)
                .map(Vec::as_slice)
                .unwrap_or_default();
            self.evict_expired(&view, on_node, now, &mut report).await;
        }
        report
    }

    /// Marks the node `Unknown` if it went silent; returns the node as it now is, or `None`
    /// if the update failed.
    async fn check_health(
        &mut self,
        node: &Node,
        lease: Option<&Lease>,
        now: Timestamp,
        report: &mut MonitorReport,
    ) -> Option<Node> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let probe = self.health.observe(node, lease, now);
        let grace = health::grace_period(
            node,
            self.config.grace_period,
            self.config.startup_grace_period,
        );
        if !health::is_stale(probe, now, grace) {
            return Some(node.clone());
        }
        let Some(conditions) = health::unknown_conditions(node, now) else {
            return Some(node.clone());
        };
        let patch = json!({
            "metadata": { "resourceVersion": node.metadata.resource_version },
            "status": { "conditions": conditions },
        });
        match self.api.patch_node_status(&name, &patch).await {
            Ok(updated) => {
                tracing::info!(node = %name, "node stopped reporting: conditions set to Unknown");
                report.marked_unknown.push(name);
                if condition_status(node, "Ready") == Some("True") {
                    let event = node_event(
                        &updated,
                        "NodeNotReady",
                        &self.config.reporting_instance,
                        now,
                    );
                    self.emit(event).await;
                }
                Some(updated)
            }
            Err(source) => {
                let error = Error::StatusUpdateFailed { node: name, source };
                tracing::warn!(error = %error_chain(&error), "marking node Unknown");
                None
            }
        }
    }

    /// Brings the condition taints in line; returns the node as it now is, or `None` if the
    /// update failed.
    async fn update_taints(
        &mut self,
        node: Node,
        now: Timestamp,
        report: &mut MonitorReport,
    ) -> Option<Node> {
        let Some(taints) = tainting::reconcile_taints(&node, now) else {
            return Some(node);
        };
        let name = node.metadata.name.clone().unwrap_or_default();
        let value = if taints.is_empty() {
            json!(null)
        } else {
            json!(taints)
        };
        let patch = json!({
            "metadata": { "resourceVersion": node.metadata.resource_version },
            "spec": { "taints": value },
        });
        match self.api.patch_node(&name, &patch).await {
            Ok(updated) => {
                let keys: Vec<String> = taints
                    .iter()
                    .map(|t| format!("{}:{}", t.key, t.effect))
                    .collect();
                tracing::info!(node = %name, taints = ?keys, "node taints updated");
                report.retainted.push(name);
                Some(updated)
            }
            Err(source) => {
                let error = Error::TaintUpdateFailed { node: name, source };
                tracing::warn!(error = %error_chain(&error), "updating node taints");
                None
            }
        }
    }

    /// Deletes the node's pods whose `NoExecute` tolerations have run out.
    async fn evict_expired(
        &mut self,
        node: &Node,
        pods: &[&Pod],
        now: Timestamp,
        report: &mut MonitorReport,
    ) {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let node_taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let no_execute = self.taint_clock.no_execute_taints(name, &node_taints, now);
        if no_execute.is_empty() {
            return;
        }
        for pod in pods {
            if is_terminal(pod)
                || pod.metadata.deletion_timestamp.is_some()
                || self.evicted.contains(pod_uid(pod))
            {
                continue;
            }
            let tolerations =
                eviction::effective_tolerations(pod, self.config.pod_eviction_timeout);
            if eviction::eviction_for(&tolerations, &no_execute).is_due(now) {
                self.evict(pod, now, report).await;
            }
        }
    }

    async fn evict(&mut self, pod: &Pod, now: Timestamp, report: &mut MonitorReport) {
        let key = pod_key(pod);
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let result = self.api.delete_pod(namespace, name, pod_uid(pod)).await;
        match result {
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(source) => {
                let error = Error::EvictionFailed { pod: key, source };
                tracing::warn!(error = %error_chain(&error), "evicting pod");
                return;
            }
            Ok(()) => {
                tracing::info!(pod = %key, "evicted pod from a NoExecute-tainted node");
                report.evicted.push(key.clone());
                let event = pod_event(
                    pod,
                    "TaintManagerEviction",
                    &format!("Marking for deletion Pod {key}"),
                    &self.config.reporting_instance,
                    now,
                );
                self.emit(event).await;
            }
        }
        self.evicted.insert(pod_uid(pod).to_string());
    }

    async fn emit(&self, event: Event) {
        if let Err(source) = self.api.create_event(&event).await {
            let error = Error::EventFailed {
                reason: event.reason.clone().unwrap_or_default(),
                object: event.involved_object.name.clone().unwrap_or_default(),
                source,
            };
            tracing::warn!(error = %error_chain(&error), "recording event");
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn event(
    involved: ObjectReference,
    namespace: &str,
    reason: &str,
    message: String,
    component: &str,
    instance: &str,
    now: Timestamp,
) -> Event {
    let name = involved.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        involved_object: involved,
        type_: Some("Normal".into()),
        reason: Some(reason.into()),
        message: Some(message),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        reporting_component: Some(component.into()),
        reporting_instance: Some(instance.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        action: None,
        event_time: None,
        related: None,
        series: None,
    }
}

/// `Node n1 status is now: NodeNotReady` (upstream's `RecordNodeStatusChange`); events about
/// cluster-scoped objects live in `default`.
fn node_event(node: &Node, status: &str, instance: &str, now: Timestamp) -> Event {
    let name = node.metadata.name.clone().unwrap_or_default();
    let involved = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.clone()),
        uid: node.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    event(
        involved,
        "default",
        status,
        format!("Node {name} status is now: {status}"),
        NODE_CONTROLLER,
        instance,
        now,
    )
}

fn pod_event(pod: &Pod, reason: &str, message: &str, instance: &str, now: Timestamp) -> Event {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let involved = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: Some(namespace.clone()),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    event(
        involved,
        &namespace,
        reason,
        message.to_string(),
        TAINT_EVICTION_CONTROLLER,
        instance,
        now,
    )
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;

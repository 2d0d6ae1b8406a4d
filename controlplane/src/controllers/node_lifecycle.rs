//! The node lifecycle controller: notices nodes whose kubelet stopped reporting, marks their
//! conditions `Unknown`, keeps the `node.kubernetes.io/*` taints in line with node conditions,
//! and evicts pods from `NoExecute`-tainted nodes once their tolerations run out — the parts
//! of kube-controller-manager's node lifecycle and taint eviction controllers a small cluster
//! needs. It talks to the API server only through a kube-rs `Client`.
//!
//! [`health`], [`tainting`] and [`eviction`] decide (pure, unit-tested); [`controller`] writes;
//! [`run`] watches Nodes, node Leases and Pods and runs a pass every `monitor_period`.

pub mod controller;
pub mod eviction;
pub mod health;
pub mod tainting;

use std::pin::pin;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

pub use controller::{
    KubeNodeLifecycleApi, MonitorReport, NodeLifecycleApi, NodeLifecycleController,
};

/// The namespace of the kubelets' heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Settings of the node lifecycle controller (kube-controller-manager's flags in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLifecycleConfig {
    /// How long a node may go without a lease renewal or status heartbeat before it is marked
    /// `Unknown` (`--node-monitor-grace-period`, 50 s).
    pub grace_period: Duration,
    /// The same for a node that never posted a Ready condition (`--node-startup-grace-period`,
    /// 60 s).
    pub startup_grace_period: Duration,
    /// How long pods without their own toleration stay on an unreachable or not-ready node:
    /// the `tolerationSeconds` the `DefaultTolerationSeconds` admission plugin adds (300 s).
    pub pod_eviction_timeout: Duration,
    /// How often nodes are checked (`--node-monitor-period`, 5 s).
    pub monitor_period: Duration,
    /// `reportingInstance` of the events (e.g. the host name).
    pub reporting_instance: String,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(50),
            startup_grace_period: Duration::from_mins(1),
            pod_eviction_timeout: Duration::from_mins(5),
            monitor_period: Duration::from_secs(5),
            reporting_instance: "ferrolet-controlplane".to_string(),
        }
    }
}

/// Errors of the node lifecycle controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A watch stream ended, which kube-runtime's watchers never do on their own.
    #[error("the {resource} watch ended")]
    WatchEnded {
        /// `nodes`, `leases` or `pods`.
        resource: &'static str,
    },
    /// PATCH `nodes/{name}/status` failed.
    #[error("setting the conditions of node {node} to Unknown")]
    StatusUpdateFailed {
        node: String,
        #[source]
        source: kube::Error,
    },
    /// PATCH `nodes/{name}` (taints) failed.
    #[error("updating the taints of node {node}")]
    TaintUpdateFailed {
        node: String,
        #[source]
        source: kube::Error,
    },
    /// DELETE of an evicted pod failed.
    #[error("deleting pod {pod} from a NoExecute-tainted node")]
    EvictionFailed {
        pod: String,
        #[source]
        source: kube::Error,
    },
    /// Creating an event failed.
    #[error("creating a {reason} event for {object}")]
    EventFailed {
        reason: String,
        object: String,
        #[source]
        source: kube::Error,
    },
}

/// Result of the node lifecycle controller.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a watch has delivered its initial list; `Err` when the stream ended.
fn note<K>(
    item: Option<std::result::Result<watcher::Event<K>, watcher::Error>>,
    resource: &'static str,
    synced: &mut bool,
) -> Result<()> {
    match item {
        Some(Ok(watcher::Event::InitDone)) => *synced = true,
        Some(Ok(_)) => {}
        Some(Err(error)) => {
            // The watcher retries with backoff; the cache stays as it was meanwhile.
            tracing::warn!(resource, %error, "watch error");
        }
        None => return Err(Error::WatchEnded { resource }),
    }
    Ok(())
}

/// Runs the controller until `cancel` fires: watches Nodes, Leases in `kube-node-lease` and
/// Pods, and every `monitor_period` marks silent nodes `Unknown`, updates their taints and
/// evicts pods whose `NoExecute` tolerations expired.
pub async fn run(
    client: Client,
    config: NodeLifecycleConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let (node_store, node_writer) = reflector::store::<Node>();
    let (lease_store, lease_writer) = reflector::store::<Lease>();
    let (pod_store, pod_writer) = reflector::store::<Pod>();
    let mut node_events = pin!(
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(node_writer)
    );
    let mut lease_events = pin!(
        watcher(
            Api::<Lease>::namespaced(client.clone(), NODE_LEASE_NAMESPACE),
            watcher::Config::default()
        )
        .default_backoff()
        .reflect(lease_writer)
    );
    let mut pod_events = pin!(
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(pod_writer)
    );
    let mut ticker = tokio::time::interval(config.monitor_period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut controller = NodeLifecycleController::new(KubeNodeLifecycleApi::new(client), config);
    let (mut nodes_synced, mut leases_synced, mut pods_synced) = (false, false, false);
    tracing::info!("node lifecycle controller started");

    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            item = node_events.next() => note(item, "nodes", &mut nodes_synced)?,
            item = lease_events.next() => note(item, "leases", &mut leases_synced)?,
            item = pod_events.next() => note(item, "pods", &mut pods_synced)?,
            _ = ticker.tick() => {
                if nodes_synced && leases_synced && pods_synced {
                    let report = controller
                        .monitor(
                            &node_store.state(),
                            &lease_store.state(),
                            &pod_store.state(),
                            Timestamp::now(),
                        )
                        .await;
                    if report != MonitorReport::default() {
                        tracing::debug!(?report, "node lifecycle pass");
                    }
                }
            }
        }
    }
    tracing::info!("node lifecycle controller stopped");
    Ok(())
}

//! [`NodeStatusManager`]: registers the Node and keeps its status current, as the kubelet's
//! `registerWithAPIServer` and `syncNodeStatus` do.

use std::sync::Arc;
use std::time::Duration;

use ferrolet_cri::RuntimeService;
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::KubeletConfiguration;
use crate::node::conditions::RuntimeHealth;
use crate::node::host::{HostInfo, HostSnapshot};
use crate::node::registration::{NodeIdentity, default_label_changes, initial_node};
use crate::node::status::{NodeStatusInputs, compute_node_status, node_status_changed};
use crate::node::{Backoff, Error, Result, is_conflict, is_not_found};

/// The PLEG's health check: `Err` carries the kubelet's reason, e.g.
/// `pleg was last seen active 3m0s ago; threshold is 3m0s` (see
/// [`crate::node::pleg_unhealthy_message`]). Closures implement it.
pub trait PlegHealth: Send + Sync {
    /// `Ok` while the PLEG relists in time.
    fn healthy(&self) -> std::result::Result<(), String>;
}

impl<F> PlegHealth for F
where
    F: Fn() -> std::result::Result<(), String> + Send + Sync,
{
    fn healthy(&self) -> std::result::Result<(), String> {
        self()
    }
}

/// What one status sync did.
#[derive(Debug, Clone)]
pub struct SyncOutcome {
    /// Whether the status was posted (it changed, or the report frequency elapsed).
    pub patched: bool,
    /// The status computed (as posted, when it was).
    pub status: NodeStatus,
}

/// Registers the node and reports its status every `nodeStatusUpdateFrequency`: at once when
/// the status changed, otherwise every `nodeStatusReportFrequency`. If the Node is deleted,
/// it is registered again.
pub struct NodeStatusManager {
    nodes: Api<Node>,
    identity: NodeIdentity,
    config: KubeletConfiguration,
    host: Arc<dyn HostInfo>,
    runtime: Arc<dyn RuntimeService>,
    pleg: Arc<dyn PlegHealth>,
    runtime_health: Option<RuntimeHealth>,
    runtime_responding: bool,
    registered: bool,
    last_report: Option<Instant>,
}

impl std::fmt::Debug for NodeStatusManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStatusManager")
            .field("identity", &self.identity)
            .field("registered", &self.registered)
            .field("runtime_health", &self.runtime_health)
            .finish_non_exhaustive()
    }
}

impl NodeStatusManager {
    /// A manager for the node `identity`, configured by `config` (`port`, `maxPods`,
    /// `kubeReserved`, `systemReserved`, `registerNode`, `registerWithTaints`, `nodeLabels`,
    /// the two status frequencies), reading the machine through `host` and the runtime's
    /// health through `runtime`. The PLEG counts as healthy until
    /// [`NodeStatusManager::with_pleg_health`] says otherwise.
    #[must_use]
    pub fn new(
        client: kube::Client,
        identity: NodeIdentity,
        config: &KubeletConfiguration,
        host: Arc<dyn HostInfo>,
        runtime: Arc<dyn RuntimeService>,
    ) -> Self {
        NodeStatusManager {
            nodes: Api::all(client),
            identity,
            config: config.clone(),
            host,
            runtime,
            pleg: Arc::new(|| Ok(())),
            runtime_health: None,
            runtime_responding: true,
            registered: false,
            last_report: None,
        }
    }

    /// Uses the PLEG's health check for the Ready condition.
    #[must_use]
    pub fn with_pleg_health(mut self, pleg: Arc<dyn PlegHealth>) -> Self {
        self.pleg = pleg;
        self
    }

    /// The node's name.
    #[must_use]
    pub fn node_name(&self) -> &str {
        &self.identity.node_name
    }

    fn update_frequency(&self) -> Duration {
        self.config.node_status_update_frequency.get()
    }

    /// Computes the status from fresh readings of the runtime and the host; returns the host
    /// reading with it.
    async fn compute(
        &mut self,
        previous: Option<&NodeStatus>,
    ) -> Result<(NodeStatus, HostSnapshot)> {
        match RuntimeHealth::probe(self.runtime.as_ref()).await {
            Ok(health) => {
                self.runtime_health = Some(health);
                self.runtime_responding = true;
            }
            Err(err) => {
                debug!(node = %self.identity.node_name, error = %err, "container runtime status check failed");
                self.runtime_responding = false;
            }
        }
        // Small reads of procfs and one statvfs: not worth a blocking thread.
        let host = self.host.snapshot().map_err(|source| Error::HostInfo {
            node: self.identity.node_name.clone(),
            source,
        })?;
        let pleg = self.pleg.healthy();
        let inputs = NodeStatusInputs {
            node_ip: self.identity.node_ip,
            hostname: &self.identity.hostname,
            host: &host,
            runtime: self.runtime_health.as_ref(),
            runtime_responding: self.runtime_responding,
            pleg: &pleg,
            max_pods: u32::try_from(self.config.max_pods).unwrap_or(0),
            kubelet_port: self.config.port,
            kube_reserved: &self.config.kube_reserved,
            system_reserved: &self.config.system_reserved,
        };
        let status = compute_node_status(&inputs, previous, jiff::Timestamp::now());
        Ok((status, host))
    }

    /// Creates the Node with its labels, taints and a first status; if it exists already,
    /// adopts it and puts its default labels (hostname, os, arch) in line.
    pub async fn register(&mut self) -> Result<Node> {
        let node_name = self.identity.node_name.clone();
        let (status, host) = self.compute(None).await?;
        let mut node = initial_node(&self.identity, &self.config, &host.architecture);
        node.status = Some(status);
        info!(node = %node_name, "attempting to register node");
        match self.nodes.create(&PostParams::default(), &node).await {
            Ok(created) => {
                info!(node = %node_name, "successfully registered node");
                self.registered = true;
                self.last_report = Some(Instant::now());
                Ok(created)
            }
            Err(err) if is_conflict(&err) => {
                let adopt = |source| Error::AdoptFailed {
                    node: node_name.clone(),
                    source,
                };
                let existing = self.nodes.get(&node_name).await.map_err(adopt)?;
                info!(node = %node_name, "node was previously registered");
                let adopted = match default_label_changes(&node, &existing) {
                    Some(labels) => {
                        let patch = json!({ "metadata": { "labels": labels } });
                        self.nodes
                            .patch(
                                &node_name,
                                &PatchParams::default(),
                                &Patch::Strategic(patch),
                            )
                            .await
                            .map_err(adopt)?
                    }
                    None => existing,
                };
                self.registered = true;
                Ok(adopted)
            }
            Err(source) => Err(Error::RegisterFailed {
                node: node_name,
                source,
            }),
        }
    }

    /// Computes the status against the Node's current one and patches `nodes/<name>/status`
    /// when it changed or `nodeStatusReportFrequency` elapsed since the last report.
    pub async fn sync_status(&mut self) -> Result<SyncOutcome> {
        let node_name = self.identity.node_name.clone();
        let existing = match self.nodes.get(&node_name).await {
            Ok(node) => node,
            Err(err) if is_not_found(&err) => return Err(Error::NodeNotFound { node: node_name }),
            Err(source) => {
                return Err(Error::GetNodeFailed {
                    node: node_name,
                    source,
                });
            }
        };
        let previous = existing.status.unwrap_or_default();
        let (status, _) = self.compute(Some(&previous)).await?;
        let report_due = self
            .last_report
            .is_none_or(|at| at.elapsed() >= self.config.node_status_report_frequency.get());
        if !report_due && !node_status_changed(&previous, &status) {
            return Ok(SyncOutcome {
                patched: false,
                status,
            });
        }
        let patched = self
            .nodes
            .patch_status(
                &node_name,
                &PatchParams::default(),
                &Patch::Strategic(status_patch(&status)),
            )
            .await
            .map_err(|source| {
                if is_not_found(&source) {
                    Error::NodeNotFound {
                        node: node_name.clone(),
                    }
                } else {
                    Error::PatchStatusFailed {
                        node: node_name.clone(),
                        source,
                    }
                }
            })?;
        self.last_report = Some(Instant::now());
        debug!(node = %node_name, "node status patched");
        Ok(SyncOutcome {
            patched: true,
            status: patched.status.unwrap_or(status),
        })
    }

    /// Registers (when `registerNode`), then syncs the status every
    /// `nodeStatusUpdateFrequency` until `cancel` fires. Failures are logged with the node's
    /// name and retried with a backoff bounded by the update frequency; a deleted Node is
    /// registered again.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = Backoff::new(self.update_frequency());
        loop {
            let step = if self.config.register_node && !self.registered {
                self.register().await.map(|_| Duration::ZERO)
            } else {
                self.sync_status().await.map(|_| self.update_frequency())
            };
            let delay = match step {
                Ok(delay) => {
                    backoff.reset();
                    delay
                }
                Err(err) => {
                    if err.is_node_not_found() && self.config.register_node {
                        if self.registered {
                            info!(node = %self.identity.node_name, "Node object is gone; registering again");
                        }
                        self.registered = false;
                    }
                    warn!(node = %self.identity.node_name, error = %err, "unable to update node status");
                    backoff.next_delay()
                }
            };
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        debug!(node = %self.identity.node_name, "node status manager stopped");
    }
}

/// The strategic merge patch of `nodes/<name>/status` that sets `status`: conditions merge by
/// type (others' conditions stay), addresses are replaced as a whole (their merge key, type,
/// would keep stale addresses: the kubelet's `fixupPatchForNodeStatusAddresses`).
#[must_use]
pub fn status_patch(status: &NodeStatus) -> serde_json::Value {
    let mut patch = json!({ "status": status });
    if let Some(addresses) = patch
        .pointer_mut("/status/addresses")
        .and_then(serde_json::Value::as_array_mut)
    {
        addresses.push(json!({ "$patch": "replace" }));
    }
    patch
}

//! A simulated node: API objects only, no runtime. Like a kubelet it registers its Node and
//! its Lease, renews the Lease and patches the node status every [`HEARTBEAT`], and reports
//! each pod bound to it as Running with a strategic merge patch on `pods/status`, shaped like
//! the one the kubelet's status manager sends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::metrics::{Figure, Recorder};

/// How often a node renews its Lease and patches its status (the kubelet's
/// `nodeStatusUpdateFrequency` with the Lease at its default renew interval).
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The container every bench pod has; its status names it.
pub const CONTAINER: &str = "pause";
pub const IMAGE: &str = "registry.k8s.io/pause:3.10";
/// The node conditions the kubelet reports, in its order.
const CONDITIONS: [&str; 4] = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];

/// The name of node `index`.
pub fn node_name(index: usize) -> String {
    format!("bench-node-{index:05}")
}

/// A timestamp as the API writes it (RFC 3339, seconds).
fn now() -> Value {
    serde_json::to_value(Time(Timestamp::now())).unwrap_or(Value::Null)
}

/// One simulated node.
pub struct FakeNode {
    index: usize,
    name: String,
    client: Client,
    nodes: Api<Node>,
    leases: Api<Lease>,
    recorder: Arc<Recorder>,
    /// The Lease as last written: the next renewal replaces it (optimistic concurrency).
    lease: Lease,
    /// UIDs of the pods already reported Running.
    running: HashSet<String>,
    pods_started: u32,
}

impl std::fmt::Debug for FakeNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeNode")
            .field("name", &self.name)
            .field("running", &self.running.len())
            .finish_non_exhaustive()
    }
}

impl FakeNode {
    /// Creates node `index` (Ready, with room for `max_pods` pods) and its Lease.
    pub async fn register(
        client: Client,
        index: usize,
        max_pods: usize,
        recorder: Arc<Recorder>,
    ) -> Result<Self> {
        let name = node_name(index);
        let nodes = Api::<Node>::all(client.clone());
        let leases = Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE);
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
            "spec": { "podCIDR": pod_cidr(index), "podCIDRs": [pod_cidr(index)] },
        }))
        .context("building a Node")?;
        let created = recorder
            .write(
                Figure::NodeCreate,
                || format!("creating node {name}"),
                nodes.create(&PostParams::default(), &node),
            )
            .await
            .with_context(|| format!("registering node {name} failed"))?;
        // Like the kubelet: register, then report the full status.
        let status = json!({ "status": full_status(index, max_pods) });
        recorder
            .write(
                Figure::NodeStatusPatch,
                || format!("patching the status of node {name}"),
                nodes.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&status)),
            )
            .await
            .with_context(|| format!("reporting the status of node {name} failed"))?;
        let lease: Lease = serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": LEASE_NAMESPACE,
                "ownerReferences": [{
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": name,
                    "uid": created.uid().unwrap_or_default(),
                }],
            },
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": 40,
                "renewTime": MicroTime(Timestamp::now()),
            },
        }))
        .context("building a Lease")?;
        let lease = recorder
            .write(
                Figure::LeaseCreate,
                || format!("creating lease {name}"),
                leases.create(&PostParams::default(), &lease),
            )
            .await
            .with_context(|| format!("creating the lease of node {name} failed"))?;
        Ok(Self {
            index,
            name,
            client,
            nodes,
            leases,
            recorder,
            lease,
            running: HashSet::new(),
            pods_started: 0,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Heartbeats every [`HEARTBEAT`] from `first_heartbeat`, and reports the pods that
    /// arrive on `pods`, until `cancel`.
    pub async fn run(
        mut self,
        first_heartbeat: Instant,
        mut pods: UnboundedReceiver<Pod>,
        cancel: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval_at(first_heartbeat, HEARTBEAT);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {
                    self.renew_lease().await;
                    self.patch_node_status().await;
                }
                Some(pod) = pods.recv() => self.pod_bound(&pod).await,
            }
        }
    }

    /// Replaces the Lease with a new `spec.renewTime`, like the kubelet's lease controller.
    async fn renew_lease(&mut self) {
        let mut lease = self.lease.clone();
        lease.spec.get_or_insert_default().renew_time = Some(MicroTime(Timestamp::now()));
        let name = &self.name;
        let renewed = self
            .recorder
            .write(
                Figure::LeaseUpdate,
                || format!("renewing lease {name}"),
                self.leases.replace(name, &PostParams::default(), &lease),
            )
            .await;
        match renewed {
            Some(lease) => self.lease = lease,
            // The failure is recorded; start again from the stored Lease, as the kubelet does.
            None => {
                if let Ok(Ok(lease)) =
                    tokio::time::timeout(Duration::from_secs(10), self.leases.get(name)).await
                {
                    self.lease = lease;
                }
            }
        }
    }

    /// Patches the heartbeat times of the node conditions, like the kubelet's node status
    /// update when nothing else changed.
    async fn patch_node_status(&self) {
        let now = now();
        let patch = json!({
            "status": {
                "$setElementOrder/conditions": CONDITIONS.map(|c| json!({ "type": c })),
                "conditions": CONDITIONS.map(|c| json!({ "type": c, "lastHeartbeatTime": now })),
            }
        });
        let name = &self.name;
        self.recorder
            .write(
                Figure::NodeStatusPatch,
                || format!("patching the status of node {name}"),
                self.nodes
                    .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch)),
            )
            .await;
    }

    /// Reports a pod bound to this node as Running, once.
    async fn pod_bound(&mut self, pod: &Pod) {
        let bound_here = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&self.name);
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let uid = pod.uid().unwrap_or_default();
        if !bound_here
            || running
            || pod.metadata.deletion_timestamp.is_some()
            || !self.running.insert(uid.clone())
        {
            return;
        }
        self.pods_started += 1;
        let patch = running_status(&uid, &node_ip(self.index), &self.pod_ip());
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        self.recorder
            .write(
                Figure::PodStatusPatch,
                || format!("patching the status of pod {namespace}/{name}"),
                Api::<Pod>::namespaced(self.client.clone(), &namespace).patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                ),
            )
            .await;
    }

    /// The next address of the node's pod CIDR (wrapping after 254).
    fn pod_ip(&self) -> String {
        let [a, b, c, _] = pod_network(self.index);
        format!("{a}.{b}.{c}.{}", (self.pods_started - 1) % 254 + 1)
    }
}

/// The node's pod /24 in 10.64.0.0/10.
fn pod_network(index: usize) -> [u8; 4] {
    let [_, _, hi, lo] = u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes();
    [10, 64 + (hi & 0x3f), lo, 0]
}

fn pod_cidr(index: usize) -> String {
    let [a, b, c, d] = pod_network(index);
    format!("{a}.{b}.{c}.{d}/24")
}

/// The node's `InternalIP` in 172.16.0.0/12.
fn node_ip(index: usize) -> String {
    let [_, _, hi, lo] = u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes();
    format!("172.{}.{hi}.{lo}", 16 + (hi >> 4 & 0x0f))
}

/// The status the kubelet reports after registration: Ready, room for `max_pods` small pods.
fn full_status(index: usize, max_pods: usize) -> Value {
    let now = now();
    let resources = json!({
        "cpu": "64",
        "memory": "256Gi",
        "pods": max_pods.to_string(),
        "ephemeral-storage": "100Gi",
    });
    let conditions: Vec<Value> = CONDITIONS
        .iter()
        .map(|&kind| {
            let (status, reason, message) = if kind == "Ready" {
                ("True", "KubeletReady", "kubelet is posting ready status")
            } else {
                (
                    "False",
                    "KubeletHasSufficientResources",
                    "kubelet has enough",
                )
            };
            json!({
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            })
        })
        .collect();
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": conditions,
        "addresses": [
            { "type": "InternalIP", "address": node_ip(index) },
            { "type": "Hostname", "address": node_name(index) },
        ],
        "daemonEndpoints": { "kubeletEndpoint": { "Port": 10250 } },
        "nodeInfo": {
            "machineID": format!("{index:032x}"),
            "systemUUID": format!("{index:032x}"),
            "bootID": format!("{index:032x}"),
            "kernelVersion": "6.1.0",
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "containerRuntimeVersion": "containerd://1.6.20",
            "kubeletVersion": "v1.33.0",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    })
}

/// The kubelet's status patch for a pod whose one container started.
fn running_status(uid: &str, host_ip: &str, pod_ip: &str) -> Value {
    let now = now();
    let condition = |kind: &str| json!({ "type": kind, "status": "True", "lastProbeTime": null, "lastTransitionTime": now });
    let order = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ];
    json!({
        "metadata": { "uid": uid },
        "status": {
            "$setElementOrder/conditions": order.map(|c| json!({ "type": c })),
            "conditions": order[..4].iter().map(|c| condition(c)).collect::<Vec<_>>(),
            "containerStatuses": [{
                "name": CONTAINER,
                "image": IMAGE,
                "imageID": format!("{IMAGE}@sha256:{:064x}", 0),
                "containerID": format!("containerd://{}", uid.replace('-', "")),
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": { "running": { "startedAt": now } },
                "lastState": {},
            }],
            "hostIP": host_ip,
            "hostIPs": [{ "ip": host_ip }],
            "phase": "Running",
            "podIP": pod_ip,
            "podIPs": [{ "ip": pod_ip }],
            "startTime": now,
        },
    })
}

/// How the fake nodes learn about the pods bound to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodWatch {
    /// One watch per node with `fieldSelector=spec.nodeName=<node>`, like real kubelets.
    PerNode,
    /// One watch of all pods for all nodes, dispatched by `spec.nodeName`.
    Shared,
}

/// The pods of one node, from a watch with its field selector, until `cancel`. Sends `()`
/// on `synced` once the initial list is done.
pub async fn watch_node_pods(
    client: Client,
    node: String,
    to_node: UnboundedSender<Pod>,
    synced: UnboundedSender<()>,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
) {
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let events = watcher(Api::<Pod>::all(client), config).default_backoff();
    pump(events, synced, &recorder, &cancel, |pod| {
        let _ = to_node.send(pod);
    })
    .await;
}

/// Every pod, from one watch, handed to the node it is bound to, until `cancel`.
pub async fn watch_all_pods(
    client: Client,
    nodes: HashMap<String, UnboundedSender<Pod>>,
    synced: UnboundedSender<()>,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
) {
    let events = watcher(Api::<Pod>::all(client), watcher::Config::default()).default_backoff();
    pump(events, synced, &recorder, &cancel, |pod| {
        if let Some(to_node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| nodes.get(n))
        {
            let _ = to_node.send(pod);
        }
    })
    .await;
}

/// Hands every pod a watch delivers to `deliver`; counts watch errors (the watcher retries
/// them with backoff, like a kubelet's reflector).
async fn pump(
    events: impl Stream<Item = Result<watcher::Event<Pod>, watcher::Error>>,
    synced: UnboundedSender<()>,
    recorder: &Recorder,
    cancel: &CancellationToken,
    mut deliver: impl FnMut(Pod),
) {
    let mut events = std::pin::pin!(events);
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return,
            event = events.next() => event,
        };
        match event {
            Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => deliver(pod),
            Some(Ok(watcher::Event::InitDone)) => {
                let _ = synced.send(());
            }
            Some(Ok(watcher::Event::Init | watcher::Event::Delete(_))) => {}
            Some(Err(err)) => recorder.watch_error(format!("pod watch: {err}")),
            None => return,
        }
    }
}

//! The Filter plugins of kube-scheduler's default profile that ferrolet implements, in
//! upstream's order: `NodeUnschedulable`, `NodeName`, `TaintToleration`, `NodeAffinity`,
//! `NodePorts`, `NodeResourcesFit`. As in the framework, a node's verdict is that of the first plugin that
//! rejects it; only `NodeResourcesFit` gives several reasons at once.
//!
//! Reason strings are upstream's, word for word, because users and tools read them from
//! `kubectl describe pod` (`pkg/scheduler/framework/plugins/*`).

use k8s_openapi::api::core::v1::{Container, Pod, Toleration};

use super::affinity;
use super::node_info::NodeInfo;
use super::resources::PodResources;
use super::taints::{self, NO_EXECUTE, NO_SCHEDULE, TAINT_UNSCHEDULABLE};

/// `NodeUnschedulable`: a cordoned node takes only pods that tolerate the unschedulable taint.
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// `NodeName`: `spec.nodeName` names another node.
pub const REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
/// `NodeAffinity`: `nodeSelector` or required node affinity does not match.
pub const REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// `NodePorts`: a requested host port is taken.
pub const REASON_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
/// `NodeResourcesFit`: the node's pod capacity is used up.
pub const REASON_TOO_MANY_PODS: &str = "Too many pods";

/// The plugin names, as upstream's `names` package spells them.
pub mod plugin {
    /// Cordoned nodes.
    pub const NODE_UNSCHEDULABLE: &str = "NodeUnschedulable";
    /// `spec.nodeName`.
    pub const NODE_NAME: &str = "NodeName";
    /// Taints and tolerations.
    pub const TAINT_TOLERATION: &str = "TaintToleration";
    /// `nodeSelector` and node affinity.
    pub const NODE_AFFINITY: &str = "NodeAffinity";
    /// Host ports.
    pub const NODE_PORTS: &str = "NodePorts";
    /// Requests against allocatable.
    pub const NODE_RESOURCES_FIT: &str = "NodeResourcesFit";
}

/// Why one plugin rejected a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The rejecting plugin.
    pub plugin: &'static str,
    /// Its reasons, as they appear in the unschedulable message.
    pub reasons: Vec<String>,
}

impl Rejection {
    fn new(plugin: &'static str, reason: impl Into<String>) -> Self {
        Self {
            plugin,
            reasons: vec![reason.into()],
        }
    }
}

/// The outcome of one filter on one node.
pub type FilterResult = std::result::Result<(), Rejection>;

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

/// `NodeUnschedulable`: `spec.unschedulable` rejects every pod that does not tolerate the
/// `node.kubernetes.io/unschedulable:NoSchedule` taint.
pub fn node_unschedulable(pod: &Pod, node: &NodeInfo) -> FilterResult {
    let cordoned = node
        .node()
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let cordon_taint = taints::taint(TAINT_UNSCHEDULABLE, NO_SCHEDULE);
    if cordoned && !taints::tolerated_by(tolerations(pod), &cordon_taint) {
        return Err(Rejection::new(
            plugin::NODE_UNSCHEDULABLE,
            REASON_UNSCHEDULABLE,
        ));
    }
    Ok(())
}

/// `NodeName`: a pod that names a node fits only there.
pub fn node_name(pod: &Pod, node: &NodeInfo) -> FilterResult {
    match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        Some(wanted) if !wanted.is_empty() && wanted != node.name() => {
            Err(Rejection::new(plugin::NODE_NAME, REASON_NODE_NAME))
        }
        _ => Ok(()),
    }
}

/// `TaintToleration`: every `NoSchedule` and `NoExecute` taint must be tolerated (`PreferNoSchedule`
/// only lowers the score). A node that is not Ready counts as carrying the taint the node
/// lifecycle controller gives it (see [`taints::scheduling_taints`]).
pub fn taint_toleration(pod: &Pod, node: &NodeInfo) -> FilterResult {
    let node_taints = taints::scheduling_taints(node.node());
    let untolerated = taints::first_untolerated(&node_taints, tolerations(pod), |t| {
        t.effect == NO_SCHEDULE || t.effect == NO_EXECUTE
    });
    match untolerated {
        Some(taint) => Err(Rejection::new(
            plugin::TAINT_TOLERATION,
            format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or_default()
            ),
        )),
        None => Ok(()),
    }
}

/// `NodeAffinity`: `nodeSelector` and required node affinity.
pub fn node_affinity(pod: &Pod, node: &NodeInfo) -> FilterResult {
    if affinity::matches_required(pod, node.node()) {
        Ok(())
    } else {
        Err(Rejection::new(plugin::NODE_AFFINITY, REASON_NODE_AFFINITY))
    }
}

/// A host port a container binds: `(hostIP, protocol, hostPort)`, with an empty IP read as
/// `0.0.0.0` and an empty protocol as `TCP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// The host address; `0.0.0.0` for all of them.
    pub ip: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The port.
    pub port: i32,
}

const ALL_HOST_IPS: &str = "0.0.0.0";

impl HostPort {
    /// Whether binding `self` collides with `other` (`HostPortInfo.CheckConflict`): same
    /// protocol and port, and the same address or either is `0.0.0.0`.
    #[must_use]
    pub fn conflicts_with(&self, other: &Self) -> bool {
        self.protocol == other.protocol
            && self.port == other.port
            && (self.ip == other.ip || self.ip == ALL_HOST_IPS || other.ip == ALL_HOST_IPS)
    }
}

/// The host ports of a pod's containers and sidecars (init containers with
/// `restartPolicy: Always`, which run alongside them).
#[must_use]
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c: &Container| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|port| port > 0))
        .map(|p| HostPort {
            ip: p
                .host_ip
                .clone()
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| ALL_HOST_IPS.to_string()),
            protocol: p
                .protocol
                .clone()
                .filter(|proto| !proto.is_empty())
                .unwrap_or_else(|| "TCP".to_string()),
            port: p.host_port.unwrap_or_default(),
        })
        .collect()
}

/// `NodePorts`: every host port the pod asks for must be free on the node.
pub fn node_ports(pod: &Pod, node: &NodeInfo) -> FilterResult {
    let used = node.used_ports();
    let taken = host_ports(pod)
        .iter()
        .any(|wanted| used.iter().any(|u| wanted.conflicts_with(u)));
    if taken {
        Err(Rejection::new(plugin::NODE_PORTS, REASON_NODE_PORTS))
    } else {
        Ok(())
    }
}

/// `NodeResourcesFit`: the node's pod capacity, then each requested resource against
/// allocatable minus what the pods on the node request. Every shortage is a reason.
pub fn node_resources_fit(pod: &PodResources, node: &NodeInfo) -> FilterResult {
    let mut reasons = Vec::new();
    let allocatable = node.allocatable();
    let used = node.requested();
    let pod_count = i64::try_from(node.pod_count()).unwrap_or(i64::MAX);
    if pod_count.saturating_add(1) > allocatable.pods {
        reasons.push(REASON_TOO_MANY_PODS.to_string());
    }
    let wanted = &pod.requests;
    let short = |want: i64, have: i64, in_use: i64| want > 0 && want > have.saturating_sub(in_use);
    if short(wanted.milli_cpu, allocatable.milli_cpu, used.milli_cpu) {
        reasons.push("Insufficient cpu".to_string());
    }
    if short(wanted.memory, allocatable.memory, used.memory) {
        reasons.push("Insufficient memory".to_string());
    }
    if short(
        wanted.ephemeral_storage,
        allocatable.ephemeral_storage,
        used.ephemeral_storage,
    ) {
        reasons.push("Insufficient ephemeral-storage".to_string());
    }
    for (name, amount) in &wanted.scalar {
        if short(*amount, allocatable.scalar(name), used.scalar(name)) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Rejection {
            plugin: plugin::NODE_RESOURCES_FIT,
            reasons,
        })
    }
}

/// Runs the filters in upstream order and returns the first rejection.
pub fn run_filters(pod: &Pod, resources: &PodResources, node: &NodeInfo) -> FilterResult {
    node_unschedulable(pod, node)?;
    node_name(pod, node)?;
    taint_toleration(pod, node)?;
    node_affinity(pod, node)?;
    node_ports(pod, node)?;
    node_resources_fit(resources, node)
}

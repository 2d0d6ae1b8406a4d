//! A node together with the pods already on it: the unit the filters and scores look at
//! (kube-scheduler's `framework.NodeInfo`).

use k8s_openapi::api::core::v1::{Node, Pod};

use super::filters::{HostPort, host_ports};

use super::resources::{PodResources, Resources, Result};

/// A node, the pods bound to it that still hold resources (not Succeeded or Failed, including
/// pods this scheduler has just bound), and the sums the filters need.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    node: Node,
    pods: Vec<Pod>,
    allocatable: Resources,
    requested: Resources,
    non_zero_milli_cpu: i64,
    non_zero_memory: i64,
    used_ports: Vec<HostPort>,
}

impl NodeInfo {
    /// Builds the node's view from the node and the pods bound to it.
    pub fn new(node: Node, pods: Vec<Pod>) -> Result<Self> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let allocatable = match node.status.as_ref().and_then(|s| s.allocatable.as_ref()) {
            Some(list) => Resources::from_list(list, &format!("node {name}"))?,
            None => Resources::default(),
        };
        let mut info = Self {
            node,
            pods: Vec::with_capacity(pods.len()),
            allocatable,
            requested: Resources::default(),
            non_zero_milli_cpu: 0,
            non_zero_memory: 0,
            used_ports: Vec::new(),
        };
        for pod in pods {
            info.add_pod(pod)?;
        }
        Ok(info)
    }

    /// Accounts for one more pod on the node (a pod bound there, or assumed to be).
    pub fn add_pod(&mut self, pod: Pod) -> Result<()> {
        let resources = PodResources::of(&pod)?;
        self.requested.add(&resources.requests);
        self.non_zero_milli_cpu = self
            .non_zero_milli_cpu
            .saturating_add(resources.non_zero_milli_cpu);
        self.non_zero_memory = self
            .non_zero_memory
            .saturating_add(resources.non_zero_memory);
        self.used_ports.extend(host_ports(&pod));
        self.pods.push(pod);
        Ok(())
    }

    /// The node's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or_default()
    }

    /// The node object.
    #[must_use]
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The pods on the node.
    #[must_use]
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// `status.allocatable`, read.
    #[must_use]
    pub fn allocatable(&self) -> &Resources {
        &self.allocatable
    }

    /// The summed requests of the pods on the node.
    #[must_use]
    pub fn requested(&self) -> &Resources {
        &self.requested
    }

    /// The summed cpu requests with per-container defaults (for scoring).
    #[must_use]
    pub fn non_zero_milli_cpu(&self) -> i64 {
        self.non_zero_milli_cpu
    }

    /// The summed memory requests with per-container defaults (for scoring).
    #[must_use]
    pub fn non_zero_memory(&self) -> i64 {
        self.non_zero_memory
    }

    /// The host ports the pods on the node hold.
    #[must_use]
    pub fn used_ports(&self) -> &[HostPort] {
        &self.used_ports
    }
}

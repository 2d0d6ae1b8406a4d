//! A node together with the pods already on it: the unit the filters and scores look at
//! (kube-scheduler's `framework.NodeInfo`). Kept up to date in place by the scheduler's cache
//! as pods are bound, assumed, finished or deleted, so that a decision never has to rebuild
//! it.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::filters::{HostPort, host_ports};
use super::resources::{PodResources, Resources, Result};

/// What one pod takes on a node.
#[derive(Debug, Clone)]
struct PodUsage {
    resources: PodResources,
    ports: Vec<HostPort>,
}

/// A node, the pods bound to it that still hold resources (not Succeeded or Failed, including
/// pods this scheduler has just bound), and the sums the filters need.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    node: Node,
    /// By UID (or `namespace/name` for a pod without one).
    pods: HashMap<String, PodUsage>,
    allocatable: Resources,
    requested: Resources,
    non_zero_milli_cpu: i64,
    non_zero_memory: i64,
    used_ports: Vec<HostPort>,
}

fn allocatable_of(node: &Node) -> Result<Resources> {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    match node.status.as_ref().and_then(|s| s.allocatable.as_ref()) {
        Some(list) => Resources::from_list(list, &format!("node {name}")),
        None => Ok(Resources::default()),
    }
}

/// The key a pod is accounted under.
fn pod_id(pod: &Pod) -> String {
    match pod.metadata.uid.as_deref().filter(|u| !u.is_empty()) {
        Some(uid) => uid.to_string(),
        None => super::cache::pod_key(pod),
    }
}

impl NodeInfo {
    /// Builds the node's view from the node and the pods bound to it.
    pub fn new<P: std::borrow::Borrow<Pod>>(
        node: Node,
        pods: impl IntoIterator<Item = P>,
    ) -> Result<Self> {
        let allocatable = allocatable_of(&node)?;
        let mut info = Self {
            node,
            pods: HashMap::new(),
            allocatable,
            requested: Resources::default(),
            non_zero_milli_cpu: 0,
            non_zero_memory: 0,
            used_ports: Vec::new(),
        };
        for pod in pods {
            info.add_pod(pod.borrow())?;
        }
        Ok(info)
    }

    /// Replaces the node object (a label, taint or allocatable change), keeping the pods.
    pub fn set_node(&mut self, node: Node) -> Result<()> {
        self.allocatable = allocatable_of(&node)?;
        self.node = node;
        Ok(())
    }

    /// Accounts for one more pod on the node (a pod bound there, or assumed to be). A pod
    /// already accounted for is replaced.
    pub fn add_pod(&mut self, pod: &Pod) -> Result<()> {
        let resources = PodResources::of(pod)?;
        let id = pod_id(pod);
        self.remove(&id);
        self.requested.add(&resources.requests);
        self.non_zero_milli_cpu = self
            .non_zero_milli_cpu
            .saturating_add(resources.non_zero_milli_cpu);
        self.non_zero_memory = self
            .non_zero_memory
            .saturating_add(resources.non_zero_memory);
        let ports = host_ports(pod);
        self.used_ports.extend(ports.iter().cloned());
        self.pods.insert(id, PodUsage { resources, ports });
        Ok(())
    }

    /// Stops accounting for a pod (deleted, finished, or its assumed binding undone); false
    /// if it was not on the node.
    pub fn remove_pod(&mut self, pod: &Pod) -> bool {
        self.remove(&pod_id(pod))
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(usage) = self.pods.remove(id) else {
            return false;
        };
        self.requested.sub(&usage.resources.requests);
        self.non_zero_milli_cpu = self
            .non_zero_milli_cpu
            .saturating_sub(usage.resources.non_zero_milli_cpu);
        self.non_zero_memory = self
            .non_zero_memory
            .saturating_sub(usage.resources.non_zero_memory);
        if !usage.ports.is_empty() {
            self.used_ports = self
                .pods
                .values()
                .flat_map(|u| u.ports.iter().cloned())
                .collect();
        }
        true
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

    /// How many pods are on the node.
    #[must_use]
    pub fn pod_count(&self) -> usize {
        self.pods.len()
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(uid: &str, cpu: &str, host_port: Option<i32>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                uid: Some(uid.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some([("cpu".to_string(), Quantity(cpu.into()))].into()),
                        ..ResourceRequirements::default()
                    }),
                    ports: host_port.map(|p| {
                        vec![ContainerPort {
                            container_port: 80,
                            host_port: Some(p),
                            ..ContainerPort::default()
                        }]
                    }),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn removing_a_pod_gives_back_what_it_took() {
        let mut info = NodeInfo::new(Node::default(), vec![pod("a", "500m", Some(8080))]).unwrap();
        info.add_pod(&pod("b", "250m", None)).unwrap();
        assert_eq!(info.requested().milli_cpu, 750);
        assert_eq!(info.pod_count(), 2);
        assert!(info.remove_pod(&pod("a", "500m", Some(8080))));
        assert_eq!(info.requested().milli_cpu, 250);
        assert_eq!(info.non_zero_milli_cpu(), 250);
        assert!(info.used_ports().is_empty());
        assert!(!info.remove_pod(&pod("a", "500m", None)), "already gone");
    }

    #[test]
    fn adding_a_pod_twice_counts_it_once() {
        let mut info = NodeInfo::new(Node::default(), Vec::<Pod>::new()).unwrap();
        info.add_pod(&pod("a", "1", None)).unwrap();
        info.add_pod(&pod("a", "2", None)).unwrap();
        assert_eq!(info.pod_count(), 1);
        assert_eq!(info.requested().milli_cpu, 2000);
    }
}

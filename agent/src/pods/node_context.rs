//! What pod workers need to know about the node they run on.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::kuberuntime::{CgroupDriver, DnsContext, ResourceContext};

/// Node facts and kubelet settings for building sandboxes and containers.
#[derive(Debug, Clone)]
pub struct NodeContext {
    pub node_name: String,
    /// The node's IPs, primary first.
    pub node_ips: Vec<String>,
    /// The runtime's name, for container IDs (`containerd://...`).
    pub runtime_name: String,
    /// The kubelet root directory (`/var/lib/ferrolet`).
    pub root_dir: String,
    /// Where pod log directories go (`/var/log/pods`).
    pub pod_logs_dir: String,
    pub cgroup_root: String,
    pub cgroups_per_qos: bool,
    pub cgroup_driver: CgroupDriver,
    pub dns: DnsContext,
    pub resources: ResourceContext,
    /// The node's allocatable resources (defaults of `resourceFieldRef` limits).
    pub allocatable: BTreeMap<String, Quantity>,
}

impl NodeContext {
    /// The log directories of a pod (`<ns>_<name>_<uid>`).
    #[must_use]
    pub fn logs_of(&self, uid: &str) -> Vec<PathBuf> {
        let suffix = format!("_{uid}");
        std::fs::read_dir(&self.pod_logs_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(&suffix))
            .map(|e| e.path())
            .collect()
    }
}

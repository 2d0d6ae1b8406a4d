//! The node status as the kubelet computes it (`setNodeStatus`): capacity, allocatable,
//! addresses, system info, daemon endpoints and conditions, from the host, the runtime and the
//! configuration. Pure: the loops in [`crate::node::NodeStatusManager`] feed it and post its
//! result.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::node::KUBELET_VERSION;
use crate::node::conditions::{
    Pressure, ReadinessInputs, RuntimeHealth, aggregate_message, node_conditions, ready_problems,
};
use crate::node::host::HostSnapshot;
use crate::quantity::{Quantity, QuantityFormat};

/// Everything the node status is computed from.
#[derive(Debug, Clone, Copy)]
pub struct NodeStatusInputs<'a> {
    /// The `InternalIP` address.
    pub node_ip: IpAddr,
    /// The `Hostname` address.
    pub hostname: &'a str,
    pub host: &'a HostSnapshot,
    /// The runtime's latest answers, if it ever answered.
    pub runtime: Option<&'a RuntimeHealth>,
    /// Whether the runtime answered the latest `Status` call.
    pub runtime_responding: bool,
    /// The PLEG health check.
    pub pleg: &'a Result<(), String>,
    /// `maxPods`.
    pub max_pods: u32,
    /// The kubelet's HTTPS port.
    pub kubelet_port: i32,
    pub kube_reserved: &'a BTreeMap<String, Quantity>,
    pub system_reserved: &'a BTreeMap<String, Quantity>,
}

/// The capacity of the node: CPUs, memory, the root filesystem, pods, and hugepages (none
/// are reserved by ferrolet, so they are reported as 0 as the kubelet does on such a host).
#[must_use]
pub fn capacity(host: &HostSnapshot, max_pods: u32) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        (
            "cpu".to_owned(),
            Quantity::from_int(i64::from(host.num_cpus), QuantityFormat::DecimalSI),
        ),
        (
            "memory".to_owned(),
            Quantity::from_bytes(host.memory_total_bytes),
        ),
        (
            "ephemeral-storage".to_owned(),
            Quantity::from_bytes(host.root_fs_capacity_bytes),
        ),
        (
            "pods".to_owned(),
            Quantity::from_int(i64::from(max_pods), QuantityFormat::DecimalSI),
        ),
        ("hugepages-1Gi".to_owned(), Quantity::from_bytes(0)),
        ("hugepages-2Mi".to_owned(), Quantity::from_bytes(0)),
    ])
}

/// Allocatable: capacity minus kube and system reservations, never below zero; hugepages
/// come out of memory too (`MachineInfo` setter).
#[must_use]
pub fn allocatable(
    capacity: &BTreeMap<String, Quantity>,
    kube_reserved: &BTreeMap<String, Quantity>,
    system_reserved: &BTreeMap<String, Quantity>,
) -> BTreeMap<String, Quantity> {
    let mut out: BTreeMap<String, Quantity> = capacity
        .iter()
        .map(|(name, cap)| {
            let mut value = *cap;
            for reserved in [kube_reserved, system_reserved] {
                if let Some(r) = reserved.get(name) {
                    value = value.saturating_sub(r);
                }
            }
            (name.clone(), value.clamp_non_negative())
        })
        .collect();
    let hugepages: Vec<Quantity> = capacity
        .iter()
        .filter(|(name, _)| name.starts_with("hugepages-"))
        .map(|(_, q)| *q)
        .collect();
    if let Some(memory) = out.get_mut("memory") {
        for pages in hugepages {
            *memory = memory.saturating_sub(&pages).clamp_non_negative();
        }
    }
    out
}

/// The status the kubelet would post now. `previous` is the status on the API server; its
/// conditions' transition times are kept where the status did not change.
#[must_use]
pub fn compute_node_status(
    inputs: &NodeStatusInputs<'_>,
    previous: Option<&NodeStatus>,
    now: jiff::Timestamp,
) -> NodeStatus {
    let now = api_time(now);
    let capacity = capacity(inputs.host, inputs.max_pods);
    let allocatable = allocatable(&capacity, inputs.kube_reserved, inputs.system_reserved);
    let problems = ready_problems(ReadinessInputs {
        runtime: inputs.runtime,
        runtime_responding: inputs.runtime_responding,
        pleg: inputs.pleg,
    });
    let previous_conditions = previous
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let conditions = node_conditions(
        previous_conditions,
        Pressure::of(inputs.host),
        aggregate_message(&problems),
        &now,
    );
    let host = inputs.host;
    NodeStatus {
        capacity: Some(to_api(&capacity)),
        allocatable: Some(to_api(&allocatable)),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_owned(),
                address: inputs.node_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".to_owned(),
                address: inputs.hostname.to_owned(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: inputs.kubelet_port,
            }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: host.machine_id.clone(),
            system_uuid: host.system_uuid.clone(),
            boot_id: host.boot_id.clone(),
            kernel_version: host.kernel_version.clone(),
            os_image: host.os_image.clone(),
            operating_system: "linux".to_owned(),
            architecture: host.architecture.clone(),
            container_runtime_version: inputs.runtime.map_or_else(
                || "Unknown://Unknown".to_owned(),
                RuntimeHealth::container_runtime_version,
            ),
            kubelet_version: KUBELET_VERSION.to_owned(),
            // Deprecated: the kubelet no longer knows kube-proxy's version.
            kube_proxy_version: String::new(),
            swap: None,
        }),
        ..NodeStatus::default()
    }
}

/// A timestamp as the API stores it: whole seconds, so that values read back compare equal.
#[must_use]
pub fn api_time(now: jiff::Timestamp) -> Time {
    Time(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

fn to_api(
    list: &BTreeMap<String, Quantity>,
) -> BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity> {
    list.iter().map(|(k, v)| (k.clone(), v.to_api())).collect()
}

/// Whether `new` differs from the reported `old` in anything the kubelet owns other than
/// heartbeat times (`nodeStatusHasChanged`): then it is posted at once instead of at the next
/// `nodeStatusReportFrequency`. Quantities compare by value (`"1Ki"` equals `"1024"`);
/// conditions that others own (`NetworkUnavailable`) and fields the kubelet does not set here
/// (images, volumes) are not compared.
#[must_use]
pub fn node_status_changed(old: &NodeStatus, new: &NodeStatus) -> bool {
    conditions_changed(
        old.conditions.as_deref().unwrap_or_default(),
        new.conditions.as_deref().unwrap_or_default(),
    ) || !same_quantities(old.capacity.as_ref(), new.capacity.as_ref())
        || !same_quantities(old.allocatable.as_ref(), new.allocatable.as_ref())
        || old.addresses != new.addresses
        || old.node_info != new.node_info
        || old.daemon_endpoints != new.daemon_endpoints
}

fn conditions_changed(old: &[NodeCondition], new: &[NodeCondition]) -> bool {
    new.iter().any(|n| {
        old.iter().find(|o| o.type_ == n.type_).is_none_or(|o| {
            o.status != n.status
                || o.reason != n.reason
                || o.message != n.message
                || o.last_transition_time != n.last_transition_time
        })
    })
}

fn same_quantities(
    old: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    new: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> bool {
    let parse =
        |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| Quantity::parse(&q.0).ok();
    match (old, new) {
        (None, None) => true,
        (Some(old), Some(new)) => {
            old.len() == new.len()
                && new.iter().all(|(name, n)| {
                    old.get(name)
                        .is_some_and(|o| o == n || (parse(o).is_some() && parse(o) == parse(n)))
                })
        }
        _ => false,
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;

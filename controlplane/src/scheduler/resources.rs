//! Resource arithmetic of the `NodeResourcesFit` plugin: what a pod requests, what a node can
//! give, and what the pods already bound to a node take.
//!
//! A pod's requests follow `k8s.io/component-helpers/resource.PodRequests`: the sum over app
//! containers and sidecars (init containers with `restartPolicy: Always`), at least the
//! largest regular init container (each plus the sidecars started before it), plus the pod
//! overhead. cpu is counted in millicores, everything else in whole units (bytes, counts).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::quantity::{self, QuantityError};

/// The `cpu` resource name.
pub const CPU: &str = "cpu";
/// The `memory` resource name.
pub const MEMORY: &str = "memory";
/// The `ephemeral-storage` resource name.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
/// The `pods` resource name (a node's pod capacity).
pub const PODS: &str = "pods";

/// cpu a container without a cpu request counts as when scoring (kube-scheduler's
/// `DefaultMilliCPURequest`), so that many request-less pods do not pile onto one node.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory a container without a memory request counts as when scoring (kube-scheduler's
/// `DefaultMemoryRequest`, 200 Mi).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Errors of resource arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// A quantity in a resource list could not be read.
    #[error("reading resource {resource:?} of {owner}")]
    InvalidQuantity {
        /// The object the list belongs to (`pod default/web`, `node node1`).
        owner: String,
        resource: String,
        #[source]
        source: QuantityError,
    },
}

/// Result of resource arithmetic.
pub type Result<T, E = ResourceError> = std::result::Result<T, E>;

/// Amounts of the resources the scheduler accounts for (kube-scheduler's `framework.Resource`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// cpu in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Pod count (only meaningful for a node's allocatable).
    pub pods: i64,
    /// Extended, hugepages and other scalar resources by name, in whole units.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a resource list; names that are neither standard nor scalar resources are ignored,
    /// as kube-scheduler ignores them.
    pub fn from_list(list: &BTreeMap<String, Quantity>, owner: &str) -> Result<Self> {
        let mut resources = Self::default();
        for (name, quantity) in list {
            let invalid = |source| ResourceError::InvalidQuantity {
                owner: owner.to_string(),
                resource: name.clone(),
                source,
            };
            let whole = || quantity::parse_value(&quantity.0).map_err(invalid);
            match name.as_str() {
                CPU => resources.milli_cpu = quantity::parse_milli(&quantity.0).map_err(invalid)?,
                MEMORY => resources.memory = whole()?,
                EPHEMERAL_STORAGE => resources.ephemeral_storage = whole()?,
                PODS => resources.pods = whole()?,
                other if is_scalar_resource_name(other) => {
                    resources.scalar.insert(other.to_string(), whole()?);
                }
                _ => {}
            }
        }
        Ok(resources)
    }

    /// Adds `other` to `self` (saturating: a sum never wraps).
    pub fn add(&mut self, other: &Self) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
        self.pods = self.pods.saturating_add(other.pods);
        for (name, amount) in &other.scalar {
            let entry = self.scalar.entry(name.clone()).or_insert(0);
            *entry = entry.saturating_add(*amount);
        }
    }

    /// Takes `other` away from `self` (saturating), undoing an [`Resources::add`].
    pub fn sub(&mut self, other: &Self) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_sub(other.ephemeral_storage);
        self.pods = self.pods.saturating_sub(other.pods);
        for (name, amount) in &other.scalar {
            if let Some(entry) = self.scalar.get_mut(name) {
                *entry = entry.saturating_sub(*amount);
            }
        }
    }

    /// Raises each amount of `self` to at least the one in `other`.
    pub fn set_max(&mut self, other: &Self) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.pods = self.pods.max(other.pods);
        for (name, amount) in &other.scalar {
            let entry = self.scalar.entry(name.clone()).or_insert(0);
            *entry = (*entry).max(*amount);
        }
    }

    /// The amount of a scalar resource (0 when absent).
    #[must_use]
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar.get(name).copied().unwrap_or(0)
    }
}

/// Whether kube-scheduler accounts for a resource name beyond cpu, memory, ephemeral-storage
/// and pods: extended resources (`example.com/gpu`), `kubernetes.io/`-prefixed native
/// resources, `hugepages-*` and `attachable-volumes-*` (`schedutil.IsScalarResourceName`).
#[must_use]
pub fn is_scalar_resource_name(name: &str) -> bool {
    let extended =
        name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.");
    extended
        || name.contains("kubernetes.io/")
        || name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
}

/// Per-container fallback requests used when scoring (cpu millicores, memory bytes).
#[derive(Debug, Clone, Copy)]
struct NonMissing {
    milli_cpu: i64,
    memory: i64,
}

/// What a pod asks for: the requests that must fit, and the non-zero cpu and memory used for
/// scoring (each container without a cpu or memory request counts the scheduler's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodResources {
    /// Effective requests (init containers, sidecars and overhead accounted for).
    pub requests: Resources,
    /// cpu millicores with defaults for containers that request none.
    pub non_zero_milli_cpu: i64,
    /// Memory bytes with defaults for containers that request none.
    pub non_zero_memory: i64,
}

impl PodResources {
    /// Computes a pod's effective requests.
    pub fn of(pod: &Pod) -> Result<Self> {
        let requests = pod_requests(pod, None)?;
        let non_zero = pod_requests(
            pod,
            Some(NonMissing {
                milli_cpu: DEFAULT_MILLI_CPU_REQUEST,
                memory: DEFAULT_MEMORY_REQUEST,
            }),
        )?;
        Ok(Self {
            requests,
            non_zero_milli_cpu: non_zero.milli_cpu,
            non_zero_memory: non_zero.memory,
        })
    }
}

/// A pod's effective requests: what must fit on a node for it to be bound there.
pub fn effective_requests(pod: &Pod) -> Result<Resources> {
    pod_requests(pod, None)
}

fn pod_requests(pod: &Pod, non_missing: Option<NonMissing>) -> Result<Resources> {
    let owner = pod_owner(pod);
    let Some(spec) = &pod.spec else {
        return Ok(Resources::default());
    };
    let mut requests = Resources::default();
    for container in &spec.containers {
        requests.add(&container_requests(container, non_missing, &owner)?);
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for container in spec.init_containers.iter().flatten() {
        let own = container_requests(container, non_missing, &owner)?;
        let during_start = if container.restart_policy.as_deref() == Some("Always") {
            // A sidecar keeps running next to the app containers: it adds to the pod's sum,
            // and to every init container started after it.
            requests.add(&own);
            sidecars.add(&own);
            sidecars.clone()
        } else {
            let mut with_sidecars = own;
            with_sidecars.add(&sidecars);
            with_sidecars
        };
        init_peak.set_max(&during_start);
    }
    requests.set_max(&init_peak);
    if let Some(overhead) = &spec.overhead {
        requests.add(&Resources::from_list(overhead, &owner)?);
    }
    Ok(requests)
}

/// A container's requests. A resource with a limit and no request counts its limit, which is
/// what API server defaulting writes into the request; this keeps the arithmetic right for
/// objects that did not go through that defaulting.
fn container_requests(
    container: &Container,
    non_missing: Option<NonMissing>,
    owner: &str,
) -> Result<Resources> {
    let mut list = BTreeMap::new();
    if let Some(resources) = &container.resources {
        if let Some(limits) = &resources.limits {
            list.extend(limits.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(requests) = &resources.requests {
            list.extend(requests.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let mut requests = Resources::from_list(&list, owner)?;
    if let Some(defaults) = non_missing {
        if !list.contains_key(CPU) {
            requests.milli_cpu = defaults.milli_cpu;
        }
        if !list.contains_key(MEMORY) {
            requests.memory = defaults.memory;
        }
    }
    Ok(requests)
}

fn pod_owner(pod: &Pod) -> String {
    format!(
        "pod {}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

    use super::*;

    fn list(items: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_string(), Quantity((*v).to_string())))
            .collect()
    }

    fn container(requests: &[(&str, &str)]) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(list(requests)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sidecar(requests: &[(&str, &str)]) -> Container {
        Container {
            restart_policy: Some("Always".into()),
            ..container(requests)
        }
    }

    fn pod(containers: Vec<Container>, init: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers,
                init_containers: Some(init),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn sums_app_containers() {
        let p = pod(
            vec![
                container(&[("cpu", "100m"), ("memory", "64Mi")]),
                container(&[("cpu", "1.5"), ("example.com/gpu", "1")]),
            ],
            vec![],
        );
        let r = effective_requests(&p).unwrap();
        assert_eq!(r.milli_cpu, 1600);
        assert_eq!(r.memory, 64 << 20);
        assert_eq!(r.scalar("example.com/gpu"), 1);
    }

    #[test]
    fn a_regular_init_container_raises_the_floor_but_does_not_add() {
        let p = pod(
            vec![container(&[("cpu", "500m"), ("memory", "1Gi")])],
            vec![container(&[("cpu", "2"), ("memory", "100Mi")])],
        );
        let r = effective_requests(&p).unwrap();
        assert_eq!(r.milli_cpu, 2000);
        assert_eq!(r.memory, 1 << 30);
    }

    #[test]
    fn sidecars_add_to_the_sum_and_to_later_init_containers() {
        // sidecar 200m, then an init container of 1 cpu that runs next to the sidecar, then
        // app containers of 300m: max(200m + 300m, 1 + 200m) = 1200m.
        let p = pod(
            vec![container(&[("cpu", "300m")])],
            vec![sidecar(&[("cpu", "200m")]), container(&[("cpu", "1")])],
        );
        assert_eq!(effective_requests(&p).unwrap().milli_cpu, 1200);

        // An init container before the sidecar does not run next to it: max(500m, 1) = 1.
        let p = pod(
            vec![container(&[("cpu", "300m")])],
            vec![container(&[("cpu", "1")]), sidecar(&[("cpu", "200m")])],
        );
        assert_eq!(effective_requests(&p).unwrap().milli_cpu, 1000);
    }

    #[test]
    fn overhead_is_added_on_top() {
        let mut p = pod(vec![container(&[("cpu", "1"), ("memory", "1Gi")])], vec![]);
        if let Some(spec) = p.spec.as_mut() {
            spec.overhead = Some(list(&[("cpu", "250m"), ("memory", "120Mi")]));
        }
        let r = effective_requests(&p).unwrap();
        assert_eq!(r.milli_cpu, 1250);
        assert_eq!(r.memory, (1 << 30) + (120 << 20));
    }

    #[test]
    fn limits_stand_in_for_missing_requests() {
        let mut c = container(&[("cpu", "100m")]);
        if let Some(res) = c.resources.as_mut() {
            res.limits = Some(list(&[("cpu", "2"), ("memory", "256Mi")]));
        }
        let r = effective_requests(&pod(vec![c], vec![])).unwrap();
        assert_eq!(r.milli_cpu, 100);
        assert_eq!(r.memory, 256 << 20);
    }

    #[test]
    fn non_zero_requests_fill_in_defaults_per_container() {
        let p = pod(
            vec![container(&[]), container(&[("cpu", "1"), ("memory", "0")])],
            vec![],
        );
        let r = PodResources::of(&p).unwrap();
        assert_eq!(r.requests.milli_cpu, 1000);
        assert_eq!(r.non_zero_milli_cpu, 1100);
        // An explicit zero stays zero; only a missing request gets the default.
        assert_eq!(r.non_zero_memory, DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn reads_a_node_allocatable_list() {
        let r = Resources::from_list(
            &list(&[
                ("cpu", "3800m"),
                ("memory", "7Gi"),
                ("ephemeral-storage", "50G"),
                ("pods", "110"),
                ("hugepages-2Mi", "0"),
                ("example.com/fpga", "2"),
                ("storage", "1Gi"),
            ]),
            "node n1",
        )
        .unwrap();
        assert_eq!(r.milli_cpu, 3800);
        assert_eq!(r.memory, 7 << 30);
        assert_eq!(r.ephemeral_storage, 50_000_000_000);
        assert_eq!(r.pods, 110);
        assert_eq!(r.scalar("example.com/fpga"), 2);
        assert!(r.scalar.contains_key("hugepages-2Mi"));
        assert!(!r.scalar.contains_key("storage"));
    }

    #[test]
    fn an_invalid_quantity_names_its_owner_and_resource() {
        let p = pod(vec![container(&[("memory", "lots")])], vec![]);
        let Err(ResourceError::InvalidQuantity {
            owner, resource, ..
        }) = effective_requests(&p)
        else {
            panic!("expected an error");
        };
        assert_eq!(owner, "pod /");
        assert_eq!(resource, "memory");
    }

    #[test]
    fn scalar_resource_names() {
        assert!(is_scalar_resource_name("nvidia.com/gpu"));
        assert!(is_scalar_resource_name("hugepages-1Gi"));
        assert!(is_scalar_resource_name("attachable-volumes-csi-x"));
        assert!(is_scalar_resource_name("kubernetes.io/batch-cpu"));
        assert!(!is_scalar_resource_name("storage"));
        assert!(!is_scalar_resource_name("requests.example.com/x"));
    }
}

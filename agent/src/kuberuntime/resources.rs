//! Linux cgroup resources for containers and sandboxes, as the kubelet derives them from
//! requests and limits (`kuberuntime_container_linux.go`, `kuberuntime_sandbox_linux.go`,
//! `helpers_linux.go`) and the OOM score adjustment per `QoS` class (`pkg/kubelet/qos`).

use std::collections::BTreeMap;

use ferrolet_cri::api::{HugepageLimit, LinuxContainerResources};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::qos::QosClass;
use super::{ConfigError, format_pod};
use crate::quantity::Quantity;

/// Minimum CPU shares the kernel accepts (and what zero CPU maps to).
pub const MIN_SHARES: i64 = 2;
/// Maximum CPU shares (cgroup v1 `cpu.shares`).
pub const MAX_SHARES: i64 = 262_144;
/// Shares of one CPU.
pub const SHARES_PER_CPU: i64 = 1024;
/// The default CFS period, 100ms in microseconds.
pub const QUOTA_PERIOD: i64 = 100_000;
/// The smallest CFS quota, 1ms in microseconds.
pub const MIN_QUOTA_PERIOD: i64 = 1000;

/// OOM score adjustment for Guaranteed and node-critical containers.
pub const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
/// OOM score adjustment for `BestEffort` containers.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;

/// The request the scheduler assumes for a container without a memory request (200Mi),
/// which the sidecar OOM score rule also uses.
const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Node facts and kubelet settings the resource translation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceContext {
    /// The node's memory capacity in bytes (cAdvisor's `MemoryCapacity`), the base of the
    /// Burstable OOM score.
    pub memory_capacity: i64,
    /// `--cpu-cfs-quota` (default true): enforce CPU limits through CFS quota.
    pub cpu_cfs_quota: bool,
    /// `--cpu-cfs-quota-period` in microseconds (default 100000).
    pub cpu_cfs_quota_period: i64,
    /// Huge page sizes the host supports, as cgroups name them (`2MB`, `1GB`); each gets a
    /// limit, zero unless the container requests that size.
    pub hugepage_sizes: Vec<String>,
    /// Set `memory.oom.group=1` so an OOM kill takes the whole container (the kubelet does
    /// this on cgroup v2 unless `singleProcessOOMKill` is set).
    pub memory_oom_group: bool,
}

impl ResourceContext {
    /// Kubelet defaults for a node with `memory_capacity` bytes of memory.
    #[must_use]
    pub fn new(memory_capacity: i64) -> Self {
        Self {
            memory_capacity,
            cpu_cfs_quota: true,
            cpu_cfs_quota_period: QUOTA_PERIOD,
            hugepage_sizes: Vec::new(),
            memory_oom_group: false,
        }
    }
}

/// CPU shares for a CPU amount in millicores (`MilliCPUToShares`): 1024 per CPU, at least 2.
#[must_use]
pub fn milli_cpu_to_shares(milli_cpu: i64) -> i64 {
    if milli_cpu == 0 {
        return MIN_SHARES;
    }
    (milli_cpu.saturating_mul(SHARES_PER_CPU) / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// CFS quota in microseconds for a CPU limit in millicores over `period`
/// (`milliCPUToQuota`): 0 (unlimited) for no limit, at least 1ms otherwise.
#[must_use]
pub fn milli_cpu_to_quota(milli_cpu: i64, period: i64) -> i64 {
    if milli_cpu == 0 {
        return 0;
    }
    (milli_cpu.saturating_mul(period) / 1000).max(MIN_QUOTA_PERIOD)
}

/// The container's `LinuxContainerResources`: CPU shares from the CPU request (the limit when
/// no request is set), CFS quota and period from the CPU limit, the memory limit, the OOM
/// score adjustment for the pod's `QoS` class and huge page limits.
pub fn linux_container_resources(
    pod: &Pod,
    container: &Container,
    qos: QosClass,
    ctx: &ResourceContext,
) -> Result<LinuxContainerResources, ConfigError> {
    let requests = container_list(pod, container, "requests")?;
    let limits = container_list(pod, container, "limits")?;
    let mut resources = calculate_linux_resources(
        requests.get("cpu").copied(),
        limits.get("cpu").copied().unwrap_or(Quantity::ZERO),
        limits.get("memory").copied().unwrap_or(Quantity::ZERO),
        ctx,
    );
    resources.oom_score_adj = oom_score_adj(pod, container, qos, ctx.memory_capacity)?;
    resources.hugepage_limits = hugepage_limits(&limits, &ctx.hugepage_sizes);
    Ok(resources)
}

/// `calculateLinuxResources`: shares, quota/period, memory limit.
fn calculate_linux_resources(
    cpu_request: Option<Quantity>,
    cpu_limit: Quantity,
    memory_limit: Quantity,
    ctx: &ResourceContext,
) -> LinuxContainerResources {
    // Without a request the limit stands in, as the API server would have defaulted it.
    let shares_from = cpu_request.unwrap_or(cpu_limit);
    let mut resources = LinuxContainerResources {
        cpu_shares: milli_cpu_to_shares(shares_from.milli_value()),
        memory_limit_in_bytes: memory_limit.value(),
        ..LinuxContainerResources::default()
    };
    if ctx.cpu_cfs_quota {
        resources.cpu_period = ctx.cpu_cfs_quota_period;
        resources.cpu_quota = milli_cpu_to_quota(cpu_limit.milli_value(), ctx.cpu_cfs_quota_period);
    }
    if ctx.memory_oom_group {
        resources
            .unified
            .insert("memory.oom.group".to_owned(), "1".to_owned());
    }
    resources
}

/// The OOM score adjustment of a container (`GetContainerOOMScoreAdjust`): -997 for
/// node-critical pods and Guaranteed pods, 1000 for `BestEffort`, and for Burstable
/// `1000 - 1000 * memoryRequest / memoryCapacity` kept within `[3, 999]` so Burstable always
/// ranks between the other two. A sidecar (an init container with `restartPolicy: Always`)
/// is scored like the smallest of itself and the regular containers, and never below them.
pub fn oom_score_adj(
    pod: &Pod,
    container: &Container,
    qos: QosClass,
    memory_capacity: i64,
) -> Result<i64, ConfigError> {
    if is_node_critical_pod(pod) {
        return Ok(GUARANTEED_OOM_SCORE_ADJ);
    }
    match qos {
        QosClass::Guaranteed => return Ok(GUARANTEED_OOM_SCORE_ADJ),
        QosClass::BestEffort => return Ok(BEST_EFFORT_OOM_SCORE_ADJ),
        QosClass::Burstable => {}
    }
    let capacity = i128::from(memory_capacity.max(1));
    let score = |request: i64| -> i64 {
        let adj = 1000 - (1000 * i128::from(request)) / capacity;
        i64::try_from(adj).unwrap_or(i64::MIN)
    };
    let own_request = memory_request(pod, container)?;
    let mut adj = score(own_request.unwrap_or(0));
    if is_sidecar(pod, container) {
        let mut min = own_request.unwrap_or(DEFAULT_MEMORY_REQUEST);
        for regular in pod.spec.iter().flat_map(|spec| spec.containers.iter()) {
            min = min.min(memory_request(pod, regular)?.unwrap_or(DEFAULT_MEMORY_REQUEST));
        }
        adj = score(min);
        if min <= own_request.unwrap_or(0) {
            adj += 1;
        }
    }
    let floor = 1000 + GUARANTEED_OOM_SCORE_ADJ;
    if adj < floor {
        return Ok(floor);
    }
    if adj == BEST_EFFORT_OOM_SCORE_ADJ {
        return Ok(adj - 1);
    }
    Ok(adj)
}

fn memory_request(pod: &Pod, container: &Container) -> Result<Option<i64>, ConfigError> {
    Ok(container_list(pod, container, "requests")?
        .get("memory")
        .map(Quantity::value))
}

fn is_sidecar(pod: &Pod, container: &Container) -> bool {
    pod.spec
        .iter()
        .flat_map(|spec| spec.init_containers.iter().flatten())
        .any(|init| init.name == container.name)
        && container.restart_policy.as_deref() == Some("Always")
}

/// `IsNodeCriticalPod`: a critical pod (static, mirror, or priority at least the system
/// critical priority) of priority class `system-node-critical`.
#[must_use]
pub fn is_node_critical_pod(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    if spec.priority_class_name.as_deref() != Some("system-node-critical") {
        return false;
    }
    let annotations = pod.metadata.annotations.as_ref();
    let annotation = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
    let is_static = annotation("kubernetes.io/config.source").is_some_and(|s| s != "api");
    let is_mirror = annotation("kubernetes.io/config.mirror").is_some();
    let critical_priority = spec.priority.is_some_and(|p| p >= 2_000_000_000);
    is_static || is_mirror || critical_priority
}

/// Huge page limits for every page size the host supports (`GetHugepageLimitsFromResources`).
fn hugepage_limits(limits: &BTreeMap<String, Quantity>, sizes: &[String]) -> Vec<HugepageLimit> {
    let mut required: BTreeMap<String, u64> = BTreeMap::new();
    for (name, amount) in limits {
        let Some(size) = name.strip_prefix("hugepages-") else {
            continue;
        };
        let Ok(page) = Quantity::parse(size) else {
            continue;
        };
        if let Some(unit) = hugepage_unit_size(page.value()) {
            required.insert(unit, u64::try_from(amount.value()).unwrap_or(0));
        }
    }
    sizes
        .iter()
        .map(|size| HugepageLimit {
            page_size: size.clone(),
            limit: required.get(size).copied().unwrap_or(0),
        })
        .collect()
}

/// `HugePageUnitSizeFromByteSize`: 2097152 -> `2MB`.
fn hugepage_unit_size(mut size: i64) -> Option<String> {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    if size <= 0 {
        return None;
    }
    let mut idx = 0;
    while size % 1024 == 0 && idx < UNITS.len() - 1 {
        size /= 1024;
        idx += 1;
    }
    if size > 1024 && idx < UNITS.len() - 1 {
        return None;
    }
    Some(format!("{size}{}", UNITS[idx]))
}

/// The sandbox's `(overhead, resources)` (`applySandboxResources`): the pod overhead treated
/// as requests equal to limits, and the pod's aggregate requests and limits without overhead.
pub fn sandbox_resources(
    pod: &Pod,
    ctx: &ResourceContext,
) -> Result<(LinuxContainerResources, LinuxContainerResources), ConfigError> {
    let overhead = match pod.spec.as_ref().and_then(|spec| spec.overhead.as_ref()) {
        Some(list) => {
            let list = parse_list(pod, "spec.overhead", Some(list))?;
            let cpu = list.get("cpu").copied().unwrap_or(Quantity::ZERO);
            let memory = list.get("memory").copied().unwrap_or(Quantity::ZERO);
            calculate_linux_resources(Some(cpu), cpu, memory, ctx)
        }
        None => LinuxContainerResources::default(),
    };
    let requests = pod_aggregate(pod, "requests")?;
    let limits = pod_aggregate(pod, "limits")?;
    let resources = calculate_linux_resources(
        requests.get("cpu").copied(),
        limits.get("cpu").copied().unwrap_or(Quantity::ZERO),
        limits.get("memory").copied().unwrap_or(Quantity::ZERO),
        ctx,
    );
    Ok((overhead, resources))
}

/// `PodRequests`/`PodLimits` without overhead: the sum over regular containers, sidecars
/// added on top, and the largest init container (plus the sidecars started before it) when
/// that is more.
fn pod_aggregate(pod: &Pod, kind: &str) -> Result<BTreeMap<String, Quantity>, ConfigError> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(BTreeMap::new());
    };
    let mut total = BTreeMap::new();
    for container in &spec.containers {
        add_into(&mut total, &container_list(pod, container, kind)?);
    }
    let mut sidecars = BTreeMap::new();
    let mut init_peak = BTreeMap::new();
    for init in spec.init_containers.iter().flatten() {
        let own = container_list(pod, init, kind)?;
        let mut running = own.clone();
        if init.restart_policy.as_deref() == Some("Always") {
            add_into(&mut total, &own);
            add_into(&mut sidecars, &own);
            running = sidecars.clone();
        } else {
            add_into(&mut running, &sidecars);
        }
        max_into(&mut init_peak, &running);
    }
    max_into(&mut total, &init_peak);
    Ok(total)
}

fn add_into(target: &mut BTreeMap<String, Quantity>, other: &BTreeMap<String, Quantity>) {
    for (name, quantity) in other {
        let entry = target.entry(name.clone()).or_insert(Quantity::ZERO);
        *entry = entry.saturating_add(quantity);
    }
}

fn max_into(target: &mut BTreeMap<String, Quantity>, other: &BTreeMap<String, Quantity>) {
    for (name, quantity) in other {
        let entry = target.entry(name.clone()).or_insert(*quantity);
        *entry = (*entry).max(*quantity);
    }
}

/// A container's parsed `requests` or `limits`.
pub(crate) fn container_list(
    pod: &Pod,
    container: &Container,
    kind: &str,
) -> Result<BTreeMap<String, Quantity>, ConfigError> {
    let resources = container.resources.as_ref();
    let list = match kind {
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => resources.and_then(|r| r.limits.as_ref()),
    };
    parse_list(
        pod,
        &format!("container {:?} resources.{kind}", container.name),
        list,
    )
}

fn parse_list(
    pod: &Pod,
    field: &str,
    list: Option<&BTreeMap<String, ApiQuantity>>,
) -> Result<BTreeMap<String, Quantity>, ConfigError> {
    list.into_iter()
        .flatten()
        .map(|(name, value)| {
            Quantity::from_api(value)
                .map(|q| (name.clone(), q))
                .map_err(|reason| ConfigError::InvalidQuantity {
                    pod: format_pod(pod),
                    field: format!("{field}.{name}"),
                    value: value.0.clone(),
                    reason,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_quota_follow_upstream_table() {
        // From upstream helpers_linux_test.go.
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1_000_000), MAX_SHARES);
        assert_eq!(milli_cpu_to_quota(0, QUOTA_PERIOD), 0);
        assert_eq!(milli_cpu_to_quota(5, QUOTA_PERIOD), 1000);
        assert_eq!(milli_cpu_to_quota(9, QUOTA_PERIOD), 1000);
        assert_eq!(milli_cpu_to_quota(10, QUOTA_PERIOD), 1000);
        assert_eq!(milli_cpu_to_quota(200, QUOTA_PERIOD), 20000);
        assert_eq!(milli_cpu_to_quota(500, QUOTA_PERIOD), 50000);
        assert_eq!(milli_cpu_to_quota(1000, QUOTA_PERIOD), 100_000);
        assert_eq!(milli_cpu_to_quota(1500, QUOTA_PERIOD), 150_000);
        assert_eq!(milli_cpu_to_quota(1500, 50_000), 75_000);
    }

    #[test]
    fn hugepage_units() {
        assert_eq!(hugepage_unit_size(2 * 1024 * 1024).as_deref(), Some("2MB"));
        assert_eq!(
            hugepage_unit_size(1024 * 1024 * 1024).as_deref(),
            Some("1GB")
        );
        assert_eq!(hugepage_unit_size(64 * 1024).as_deref(), Some("64KB"));
        assert_eq!(hugepage_unit_size(0), None);
    }
}

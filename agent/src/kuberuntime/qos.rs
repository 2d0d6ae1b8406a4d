//! Pod `QoS` class (`pkg/apis/core/v1/helper/qos`) and the pod's cgroup parent as the kubelet's
//! pod container manager names it (`pkg/kubelet/cm/pod_container_manager_linux.go`).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::pod_uid;
use crate::quantity::Quantity;

/// The Kubernetes `QoS` class of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// Every container has equal, non-zero CPU and memory requests and limits.
    Guaranteed,
    /// Some request or limit is set, but the pod is not Guaranteed.
    Burstable,
    /// No container sets a CPU or memory request or limit.
    BestEffort,
}

impl QosClass {
    /// The API spelling (`status.qosClass`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Guaranteed => "Guaranteed",
            Self::Burstable => "Burstable",
            Self::BestEffort => "BestEffort",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "Guaranteed" => Some(Self::Guaranteed),
            "Burstable" => Some(Self::Burstable),
            "BestEffort" => Some(Self::BestEffort),
            _ => None,
        }
    }
}

impl fmt::Display for QosClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pod's `QoS` class: `status.qosClass` when the API server has set it (the class is
/// immutable once set, so resizes do not move a pod between `QoS` cgroups), else computed from
/// the CPU and memory requests and limits of all init and regular containers.
///
/// Like upstream, requests are not defaulted from limits here (the API server does that), and
/// a quantity that does not parse counts as unset.
#[must_use]
pub fn qos_class(pod: &Pod) -> QosClass {
    if let Some(class) = pod
        .status
        .as_ref()
        .and_then(|status| status.qos_class.as_deref())
        .and_then(QosClass::parse)
    {
        return class;
    }
    compute_qos_class(pod)
}

/// The `QoS` class computed from the spec alone (upstream `ComputePodQOS`).
#[must_use]
pub fn compute_qos_class(pod: &Pod) -> QosClass {
    let mut requests: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    for container in all_containers(pod) {
        let resources = container.resources.as_ref();
        for (name, quantity) in qos_resources(resources.and_then(|r| r.requests.as_ref())) {
            let sum = requests.entry(name).or_insert(Quantity::ZERO);
            *sum = sum.saturating_add(&quantity);
        }
        let mut found = (false, false);
        for (name, quantity) in qos_resources(resources.and_then(|r| r.limits.as_ref())) {
            match name {
                "cpu" => found.0 = true,
                _ => found.1 = true,
            }
            let sum = limits.entry(name).or_insert(Quantity::ZERO);
            *sum = sum.saturating_add(&quantity);
        }
        if found != (true, true) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed
        && requests.len() == limits.len()
        && requests
            .iter()
            .all(|(name, request)| limits.get(name) == Some(request))
    {
        return QosClass::Guaranteed;
    }
    QosClass::Burstable
}

/// The positive CPU and memory entries of a resource list.
fn qos_resources(
    list: Option<&BTreeMap<String, ApiQuantity>>,
) -> impl Iterator<Item = (&'static str, Quantity)> + '_ {
    list.into_iter().flatten().filter_map(|(name, value)| {
        let name = match name.as_str() {
            "cpu" => "cpu",
            "memory" => "memory",
            _ => return None,
        };
        let quantity = Quantity::from_api(value).ok()?;
        (quantity > Quantity::ZERO).then_some((name, quantity))
    })
}

/// Init containers followed by regular containers.
pub(crate) fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.spec.iter().flat_map(|spec| {
        spec.init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
    })
}

/// How the kubelet's cgroup manager spells cgroup names (`--cgroup-driver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupDriver {
    /// Plain cgroupfs paths: `/kubepods/burstable/pod<uid>`.
    #[default]
    Cgroupfs,
    /// systemd slices: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice`.
    Systemd,
}

/// The pod's cgroup parent as the kubelet passes it to the runtime (`GetPodCgroupParent`):
/// `<cgroupRoot>/kubepods/pod<uid>` for Guaranteed pods and
/// `<cgroupRoot>/kubepods/{burstable,besteffort}/pod<uid>` otherwise (cgroupfs driver), or the
/// equivalent systemd slice path. `cgroup_root` is the kubelet's `--cgroup-root` (default `/`).
#[must_use]
pub fn pod_cgroup_parent(
    pod: &Pod,
    cgroup_root: &str,
    qos: QosClass,
    driver: CgroupDriver,
) -> String {
    let mut components: Vec<String> = match driver {
        CgroupDriver::Cgroupfs => cgroup_root
            .split('/')
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect(),
        CgroupDriver::Systemd => systemd_root_components(cgroup_root),
    };
    components.push("kubepods".to_owned());
    match qos {
        QosClass::Guaranteed => {}
        QosClass::Burstable => components.push("burstable".to_owned()),
        QosClass::BestEffort => components.push("besteffort".to_owned()),
    }
    components.push(format!("pod{}", pod_uid(pod)));
    match driver {
        CgroupDriver::Cgroupfs => format!("/{}", components.join("/")),
        CgroupDriver::Systemd => systemd_path(&components),
    }
}

/// `ParseSystemdToCgroupName`: `/a.slice/a-b.slice` names the components `[a, b]`.
fn systemd_root_components(cgroup_root: &str) -> Vec<String> {
    let Some(last) = cgroup_root.split('/').rfind(|part| !part.is_empty()) else {
        return Vec::new();
    };
    let name = last.strip_suffix(".slice").unwrap_or(last);
    if name == "-" {
        return Vec::new();
    }
    name.split('-').map(|part| part.replace('_', "-")).collect()
}

/// `CgroupName.ToSystemd`: escapes `-` as `_` in each component, joins them with `-` and
/// expands the slice into its full path.
fn systemd_path(components: &[String]) -> String {
    let escaped: Vec<String> = components.iter().map(|c| c.replace('-', "_")).collect();
    let mut path = String::new();
    for depth in 1..=escaped.len() {
        path.push('/');
        path.push_str(&escaped[..depth].join("-"));
        path.push_str(".slice");
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

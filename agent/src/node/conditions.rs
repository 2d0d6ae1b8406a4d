//! The node conditions the kubelet owns: `MemoryPressure`, `DiskPressure`, `PIDPressure` and
//! `Ready`, with the kubelet's reasons and messages (`pkg/kubelet/nodestatus/setters.go`) so
//! that `kubectl describe node` and anything matching on them read the same as with the
//! kubelet.

use std::time::Duration;

use ferrolet_cri::api;
use k8s_openapi::api::core::v1::NodeCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::config::format_go_duration;
use crate::node::host::HostSnapshot;

/// The kubelet's default hard eviction threshold `memory.available<100Mi`.
pub const MEMORY_AVAILABLE_THRESHOLD_BYTES: u64 = 100 * 1024 * 1024;
/// The kubelet's default hard eviction threshold `nodefs.available<10%`.
pub const NODEFS_AVAILABLE_THRESHOLD_PERCENT: u64 = 10;
/// `pid.available<5%` of `pid_max`: the kubelet has no default for PIDs; this one keeps a
/// node from taking pods it could not fork for.
pub const PID_AVAILABLE_THRESHOLD_PERCENT: u64 = 5;

/// What the container runtime said in its last `Version` and `Status` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeHealth {
    /// The `RuntimeReady` condition is true.
    pub runtime_ready: bool,
    /// `RuntimeReady` as the kubelet prints it (`RuntimeReady=false reason:... message:...`).
    pub runtime_message: String,
    /// The `NetworkReady` condition is true.
    pub network_ready: bool,
    /// `NetworkReady` as the kubelet prints it.
    pub network_message: String,
    /// `runtime_name` of `Version` (`containerd`).
    pub runtime_name: String,
    /// `runtime_version` of `Version` (`1.6.20`).
    pub runtime_version: String,
}

impl RuntimeHealth {
    /// Reads the answers of CRI `Version` and `Status`.
    #[must_use]
    pub fn from_cri(version: &api::VersionResponse, status: &api::StatusResponse) -> Self {
        let conditions = status
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let find = |kind: &str| conditions.iter().find(|c| c.r#type == kind);
        let runtime = find("RuntimeReady");
        let network = find("NetworkReady");
        RuntimeHealth {
            runtime_ready: runtime.is_some_and(|c| c.status),
            runtime_message: go_condition_string(runtime),
            network_ready: network.is_some_and(|c| c.status),
            network_message: go_condition_string(network),
            runtime_name: version.runtime_name.clone(),
            runtime_version: version.runtime_version.clone(),
        }
    }

    /// Asks the runtime (`Version`, then `Status`).
    pub async fn probe(
        runtime: &dyn ferrolet_cri::RuntimeService,
    ) -> ferrolet_cri::Result<RuntimeHealth> {
        let version = runtime.version().await?;
        let status = runtime.status(false).await?;
        Ok(RuntimeHealth::from_cri(&version, &status))
    }

    /// `nodeInfo.containerRuntimeVersion`: `containerd://1.6.20`.
    #[must_use]
    pub fn container_runtime_version(&self) -> String {
        format!("{}://{}", self.runtime_name, self.runtime_version)
    }
}

/// A runtime condition as Go's `%v` of `*RuntimeCondition` prints it; `<nil>` when absent.
fn go_condition_string(condition: Option<&api::RuntimeCondition>) -> String {
    condition.map_or_else(
        || "<nil>".to_owned(),
        |c| {
            format!(
                "{}={} reason:{} message:{}",
                c.r#type, c.status, c.reason, c.message
            )
        },
    )
}

/// What the Ready condition is computed from.
#[derive(Debug, Clone, Copy)]
pub struct ReadinessInputs<'a> {
    /// The runtime's latest answers, if it ever answered.
    pub runtime: Option<&'a RuntimeHealth>,
    /// Whether the latest `Status` call succeeded; when it did not, the runtime is down.
    pub runtime_responding: bool,
    /// The PLEG health check: `Err("pleg was last seen active 3m0s ago; threshold is 3m0s")`.
    pub pleg: &'a Result<(), String>,
}

/// The reasons the node is not ready, in the kubelet's order: runtime errors (down, health
/// checks, not ready), then network errors.
#[must_use]
pub fn ready_problems(inputs: ReadinessInputs<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    if !inputs.runtime_responding {
        problems.push("container runtime is down".to_owned());
    }
    if let Err(reason) = inputs.pleg {
        problems.push(format!("PLEG is not healthy: {reason}"));
    }
    match inputs.runtime {
        Some(health) => {
            if inputs.runtime_responding && !health.runtime_ready {
                problems.push(format!(
                    "container runtime not ready: {}",
                    health.runtime_message
                ));
            }
            if !health.network_ready {
                problems.push(format!(
                    "container runtime network not ready: {}",
                    health.network_message
                ));
            }
        }
        None if inputs.runtime_responding => {
            problems.push("container runtime status check may not have completed yet".to_owned());
        }
        None => {}
    }
    problems
}

/// The PLEG health message the kubelet writes once relisting stalls.
#[must_use]
pub fn pleg_unhealthy_message(last_seen_ago: Duration, threshold: Duration) -> String {
    format!(
        "pleg was last seen active {} ago; threshold is {}",
        format_go_duration(last_seen_ago),
        format_go_duration(threshold)
    )
}

/// Joins problems as apimachinery's `utilerrors.NewAggregate(...).Error()`: one as itself,
/// several de-duplicated in `[a, b]`; `None` when there is none.
#[must_use]
pub fn aggregate_message(problems: &[String]) -> Option<String> {
    let mut unique: Vec<&str> = Vec::new();
    for p in problems {
        if !unique.contains(&p.as_str()) {
            unique.push(p);
        }
    }
    match unique.as_slice() {
        [] => None,
        [one] => Some((*one).to_owned()),
        many => Some(format!("[{}]", many.join(", "))),
    }
}

/// Which resources are under pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

impl Pressure {
    /// Pressure by the kubelet's default hard eviction thresholds.
    #[must_use]
    pub fn of(host: &HostSnapshot) -> Pressure {
        let below_percent = |available: u64, total: u64, percent: u64| {
            total > 0 && u128::from(available) * 100 < u128::from(total) * u128::from(percent)
        };
        Pressure {
            memory: host.memory_available_bytes < MEMORY_AVAILABLE_THRESHOLD_BYTES,
            disk: below_percent(
                host.root_fs_available_bytes,
                host.root_fs_capacity_bytes,
                NODEFS_AVAILABLE_THRESHOLD_PERCENT,
            ),
            pid: below_percent(
                host.pid_max.saturating_sub(host.running_processes),
                host.pid_max,
                PID_AVAILABLE_THRESHOLD_PERCENT,
            ),
        }
    }
}

/// The four conditions, in the kubelet's order (Ready last), each keeping the previous
/// `lastTransitionTime` when its status did not change; `lastHeartbeatTime` is `now`.
#[must_use]
pub fn node_conditions(
    previous: &[NodeCondition],
    pressure: Pressure,
    not_ready_message: Option<String>,
    now: &Time,
) -> Vec<NodeCondition> {
    fn pick(
        flag: bool,
        yes: (&'static str, &'static str),
        no: (&'static str, &'static str),
    ) -> (&'static str, &'static str) {
        if flag { yes } else { no }
    }
    let memory = pick(
        pressure.memory,
        (
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        ),
        (
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
    );
    let disk = pick(
        pressure.disk,
        ("KubeletHasDiskPressure", "kubelet has disk pressure"),
        ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    );
    let pid = pick(
        pressure.pid,
        (
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
        ),
        (
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
    );
    let ready_status = not_ready_message.is_none();
    let (ready_reason, ready_message) = match not_ready_message {
        None => (
            "KubeletReady".to_owned(),
            "kubelet is posting ready status".to_owned(),
        ),
        Some(message) => ("KubeletNotReady".to_owned(), message),
    };
    let make = |kind: &str, status: bool, reason: String, message: String| {
        let status = if status { "True" } else { "False" }.to_owned();
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == kind && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        NodeCondition {
            type_: kind.to_owned(),
            status,
            reason: Some(reason),
            message: Some(message),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(last_transition_time),
        }
    };
    vec![
        make(
            "MemoryPressure",
            pressure.memory,
            memory.0.into(),
            memory.1.into(),
        ),
        make("DiskPressure", pressure.disk, disk.0.into(), disk.1.into()),
        make("PIDPressure", pressure.pid, pid.0.into(), pid.1.into()),
        make("Ready", ready_status, ready_reason, ready_message),
    ]
}

#[cfg(test)]
#[path = "conditions_tests.rs"]
mod tests;

//! The pod conditions the kubelet owns, and when they last changed.
//!
//! A port of upstream `pkg/kubelet/status/generate.go` (`GenerateContainersReadyCondition`,
//! `GeneratePodReadyCondition`, `GeneratePodInitializedCondition`,
//! `GeneratePodReadyToStartContainersCondition`) and `status_manager.go`
//! `updateLastTransitionTime`.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};

use super::actions::{sandbox_changed, spec_containers};
use super::phase::PodPhase;
use super::restart::is_restartable_init_container;
use super::runtime::PodRuntimeStatus;
use super::time::api_time;

/// `PodScheduled`.
pub const POD_SCHEDULED: &str = "PodScheduled";
/// `PodReadyToStartContainers`: the sandbox exists with networking.
pub const POD_READY_TO_START_CONTAINERS: &str = "PodReadyToStartContainers";
/// `Initialized`: every init container succeeded (or every sidecar started).
pub const INITIALIZED: &str = "Initialized";
/// `ContainersReady`: every container is ready.
pub const CONTAINERS_READY: &str = "ContainersReady";
/// `Ready`: containers ready and every readiness gate true.
pub const READY: &str = "Ready";
/// `DisruptionTarget`: set by eviction or graceful node shutdown, kept once there.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";

/// Reason: the pod succeeded.
pub const REASON_POD_COMPLETED: &str = "PodCompleted";
/// Reason: the pod failed.
pub const REASON_POD_FAILED: &str = "PodFailed";
/// Reason: some container is not ready.
pub const REASON_CONTAINERS_NOT_READY: &str = "ContainersNotReady";
/// Reason: some init container has not succeeded.
pub const REASON_CONTAINERS_NOT_INITIALIZED: &str = "ContainersNotInitialized";
/// Reason: some readiness gate is not true.
pub const REASON_READINESS_GATES_NOT_READY: &str = "ReadinessGatesNotReady";

/// The conditions the kubelet generates (upstream `PodConditionsByKubelet`); others in the
/// API status are kept as they are.
#[must_use]
pub fn is_kubelet_owned(condition_type: &str) -> bool {
    matches!(
        condition_type,
        POD_SCHEDULED | READY | INITIALIZED | CONTAINERS_READY | POD_READY_TO_START_CONTAINERS
    )
}

/// A condition without times.
fn condition(
    type_: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<String>,
) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.map(str::to_owned),
        message: message.filter(|m| !m.is_empty()),
        ..PodCondition::default()
    }
}

/// Go's `fmt.Sprintf("%s", []string{...})`: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

fn find<'a>(statuses: &[&'a ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().copied().find(|s| s.name == name)
}

/// `ContainersReady`: true when every app container and every sidecar is ready.
#[must_use]
pub fn containers_ready(pod: &Pod, statuses: &[&ContainerStatus], phase: PodPhase) -> PodCondition {
    let (containers, inits) = spec_containers(pod);
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = inits.iter().filter(|c| is_restartable_init_container(c));
    for container in sidecars.chain(containers) {
        match find(statuses, &container.name) {
            Some(status) if !status.ready => unready.push(container.name.as_str()),
            Some(_) => {}
            None => unknown.push(container.name.as_str()),
        }
    }
    if (phase == PodPhase::Succeeded && unknown.is_empty()) || phase == PodPhase::Failed {
        return terminal(CONTAINERS_READY, phase);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !unready.is_empty() {
        messages.push(format!(
            "containers with unready status: {}",
            go_list(&unready)
        ));
    }
    if messages.is_empty() {
        return condition(CONTAINERS_READY, true, None, None);
    }
    condition(
        CONTAINERS_READY,
        false,
        Some(REASON_CONTAINERS_NOT_READY),
        Some(messages.join(", ")),
    )
}

/// `Ready`: `ContainersReady`, and every readiness gate names a condition (in `conditions`)
/// that is true.
#[must_use]
pub fn pod_ready(
    pod: &Pod,
    conditions: &[PodCondition],
    statuses: &[&ContainerStatus],
    phase: PodPhase,
) -> PodCondition {
    let containers = containers_ready(pod, statuses, phase);
    if containers.status != "True" {
        return PodCondition {
            type_: READY.to_owned(),
            ..containers
        };
    }
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or_default();
    let mut messages = Vec::new();
    for gate in gates {
        match conditions.iter().find(|c| c.type_ == gate.condition_type) {
            None => messages.push(format!(
                "corresponding condition of pod readiness gate {:?} does not exist.",
                gate.condition_type
            )),
            Some(c) if c.status != "True" => messages.push(format!(
                "the status of pod readiness gate {:?} is not \"True\", but {}",
                gate.condition_type, c.status
            )),
            Some(_) => {}
        }
    }
    if messages.is_empty() {
        return condition(READY, true, None, None);
    }
    condition(
        READY,
        false,
        Some(REASON_READINESS_GATES_NOT_READY),
        Some(messages.join(", ")),
    )
}

/// `Initialized`: every regular init container succeeded and every sidecar started, or the
/// pod already ran an app container.
#[must_use]
pub fn initialized(pod: &Pod, statuses: &[&ContainerStatus], phase: PodPhase) -> PodCondition {
    let (containers, inits) = spec_containers(pod);
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for container in inits {
        let Some(status) = find(statuses, &container.name) else {
            unknown.push(container.name.as_str());
            continue;
        };
        let done = if is_restartable_init_container(container) {
            status.started == Some(true)
        } else {
            status.ready
        };
        if !done {
            incomplete.push(container.name.as_str());
        }
    }
    if phase == PodPhase::Succeeded && unknown.is_empty() {
        return condition(INITIALIZED, true, Some(REASON_POD_COMPLETED), None);
    }
    // An app container that ran proves initialization finished (sidecars may be restarting).
    let app_started = containers.iter().any(|c| {
        find(statuses, &c.name)
            .and_then(|s| s.state.as_ref())
            .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
    });
    if app_started {
        return condition(INITIALIZED, true, None, None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !incomplete.is_empty() {
        messages.push(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        ));
    }
    if messages.is_empty() {
        return condition(INITIALIZED, true, None, None);
    }
    condition(
        INITIALIZED,
        false,
        Some(REASON_CONTAINERS_NOT_INITIALIZED),
        Some(messages.join(", ")),
    )
}

/// `PodReadyToStartContainers`: true when no new sandbox is needed.
#[must_use]
pub fn ready_to_start_containers(pod: &Pod, runtime: &PodRuntimeStatus) -> PodCondition {
    let (needs_sandbox, _, _) = sandbox_changed(pod, runtime);
    condition(POD_READY_TO_START_CONTAINERS, !needs_sandbox, None, None)
}

/// `PodScheduled`: always true on the node.
#[must_use]
pub fn scheduled() -> PodCondition {
    condition(POD_SCHEDULED, true, None, None)
}

/// `ContainersReady`/`Ready` of a terminal pod: false, with `PodCompleted` or `PodFailed`.
fn terminal(type_: &str, phase: PodPhase) -> PodCondition {
    let reason = match phase {
        PodPhase::Succeeded => Some(REASON_POD_COMPLETED),
        PodPhase::Failed => Some(REASON_POD_FAILED),
        _ => None,
    };
    condition(type_, false, reason, None)
}

/// Sets `lastTransitionTime` of the kubelet's conditions (and `DisruptionTarget`): kept from
/// the previous status while the condition's status is unchanged, `now` otherwise.
pub fn update_last_transition_times(
    conditions: &mut [PodCondition],
    previous: &[PodCondition],
    now: Timestamp,
) {
    for condition in conditions
        .iter_mut()
        .filter(|c| is_kubelet_owned(&c.type_) || c.type_ == DISRUPTION_TARGET)
    {
        let old = previous.iter().find(|o| o.type_ == condition.type_);
        condition.last_transition_time = match old {
            Some(old) if old.status == condition.status => old.last_transition_time.clone(),
            _ => Some(api_time(now)),
        };
    }
}

//! The pod phase from its container statuses.
//!
//! A port of upstream `kubelet_pods.go` `getPhase` (without the alpha per-container restart
//! rules): init containers keep a pod `Pending` until they all succeeded (a failed one fails
//! the pod under `restartPolicy: Never`), sidecars only count once started, and when every app
//! container stopped the restart policy decides between `Running`, `Succeeded` and `Failed`.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::actions::spec_containers;
use super::restart::{RestartPolicy, is_restartable_init_container};

/// `status.phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    /// Accepted, but some container has not started yet.
    Pending,
    /// Bound, every container created, at least one running (or restarting).
    Running,
    /// Every container terminated successfully and will not be restarted.
    Succeeded,
    /// Every container terminated, at least one in failure, and none will be restarted.
    Failed,
    /// The state could not be obtained.
    Unknown,
}

impl PodPhase {
    /// The API string.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Unknown => "Unknown",
        }
    }

    /// Parses the API string.
    #[must_use]
    pub fn parse(phase: &str) -> Option<Self> {
        match phase {
            "Pending" => Some(Self::Pending),
            "Running" => Some(Self::Running),
            "Succeeded" => Some(Self::Succeeded),
            "Failed" => Some(Self::Failed),
            "Unknown" => Some(Self::Unknown),
            _ => None,
        }
    }

    /// `Succeeded` or `Failed`: a pod never leaves these.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// Counters over the pod's containers.
#[derive(Debug, Default)]
struct Tally {
    pending_regular_init: usize,
    pending_sidecars: usize,
    failed_init: usize,
    unknown: usize,
    running: usize,
    waiting: usize,
    stopped: usize,
    succeeded: usize,
}

/// The phase of a pod given its init and app container statuses (as the API will show them).
///
/// `pod_is_terminal`: the pod worker is terminating the pod, so nothing will be restarted.
/// `pod_has_initialized`: an app container of the current sandbox exists (upstream
/// `HasAnyActiveRegularContainerStarted`), so restarting sidecars do not make it `Pending`.
#[must_use]
pub fn get_phase(
    pod: &Pod,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    pod_is_terminal: bool,
    pod_has_initialized: bool,
) -> PodPhase {
    let (containers, inits) = spec_containers(pod);
    let find = |name: &str| {
        init_statuses
            .iter()
            .chain(statuses)
            .find(|s| s.name == name)
    };
    let mut t = Tally::default();

    for container in inits {
        let sidecar = is_restartable_init_container(container);
        let Some(status) = find(&container.name) else {
            if sidecar {
                t.unknown += 1;
            } else {
                t.pending_regular_init += 1;
            }
            continue;
        };
        let state = status.state.clone().unwrap_or_default();
        let last_terminated = status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref());
        if sidecar {
            if state.running.is_some() {
                if status.started != Some(true) {
                    t.pending_sidecars += 1;
                }
                t.running += 1;
            } else if state.terminated.is_some() {
                // Stopped sidecars do not count.
            } else if state.waiting.is_some() {
                if last_terminated.is_none() {
                    t.pending_sidecars += 1;
                    t.waiting += 1;
                }
            } else {
                t.pending_sidecars += 1;
                t.unknown += 1;
            }
        } else if let Some(terminated) = &state.terminated {
            if terminated.exit_code != 0 {
                t.failed_init += 1;
            }
        } else if state.waiting.is_some() && last_terminated.is_some() {
            if last_terminated.is_some_and(|l| l.exit_code != 0) {
                t.failed_init += 1;
            }
        } else {
            // Running, waiting for its first run, or without state.
            t.pending_regular_init += 1;
        }
    }

    for container in containers {
        let Some(status) = find(&container.name) else {
            t.unknown += 1;
            continue;
        };
        let state = status.state.clone().unwrap_or_default();
        if state.running.is_some() {
            t.running += 1;
        } else if let Some(terminated) = &state.terminated {
            t.stopped += 1;
            if terminated.exit_code == 0 {
                t.succeeded += 1;
            }
        } else if state.waiting.is_some() {
            let restarting = status
                .last_state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some());
            if restarting {
                t.stopped += 1;
            } else {
                t.waiting += 1;
            }
        } else {
            t.unknown += 1;
        }
    }

    let policy = RestartPolicy::of(pod);
    if t.failed_init > 0 && policy == RestartPolicy::Never {
        return PodPhase::Failed;
    }
    if t.pending_regular_init > 0
        || (t.pending_sidecars > 0 && !pod_has_initialized)
        || t.waiting > 0
    {
        return PodPhase::Pending;
    }
    if t.running > 0 && t.unknown == 0 {
        return PodPhase::Running;
    }
    if t.running == 0 && t.stopped > 0 && t.unknown == 0 {
        if pod_is_terminal {
            return if t.stopped == t.succeeded {
                PodPhase::Succeeded
            } else {
                PodPhase::Failed
            };
        }
        return match policy {
            RestartPolicy::Always => PodPhase::Running,
            _ if t.stopped == t.succeeded => PodPhase::Succeeded,
            RestartPolicy::Never => PodPhase::Failed,
            RestartPolicy::OnFailure => PodPhase::Running,
        };
    }
    PodPhase::Pending
}

//! Whether a container that is not running should run again.
//!
//! Upstream: `pkg/kubelet/container/helpers.go` `ShouldContainerBeRestarted`,
//! `pkg/kubelet/kuberuntime/helpers.go` `isInitContainerFailed`, `shouldRestartOnFailure`,
//! `pkg/api/v1/pod` `IsRestartableInitContainer`, `container/helpers.go` `HashContainer`.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::runtime::{PodRuntimeStatus, RuntimeContainer, RuntimeContainerState};

/// The pod's `spec.restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Restart every container that exits (the API default).
    #[default]
    Always,
    /// Restart containers that exit with a non-zero code.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// The policy of a pod (`Always` when unset, as the API server defaults it).
    #[must_use]
    pub fn of(pod: &Pod) -> Self {
        let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
        match policy {
            Some("OnFailure") => Self::OnFailure,
            Some("Never") => Self::Never,
            _ => Self::Always,
        }
    }

    /// Failed containers are restarted (`Always` or `OnFailure`): upstream's
    /// `shouldRestartOnFailure`.
    #[must_use]
    pub fn restarts_on_failure(self) -> bool {
        self != Self::Never
    }
}

/// Whether the last instance of a container should be followed by a new one under the pod's
/// restart policy. A running container is not restarted; a container that is only `Created` or
/// in an unknown state is always (re)started; an exited one follows the policy.
#[must_use]
pub fn should_restart(policy: RestartPolicy, last: &RuntimeContainer) -> bool {
    match last.state {
        RuntimeContainerState::Running => false,
        RuntimeContainerState::Created | RuntimeContainerState::Unknown => true,
        RuntimeContainerState::Exited => match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => last.exit_code != 0,
            RestartPolicy::Never => false,
        },
    }
}

/// Whether the named container of the pod should be started (again): never once the pod is
/// being deleted, always when it never ran, otherwise [`should_restart`] on its newest instance.
#[must_use]
pub fn should_container_be_restarted(pod: &Pod, name: &str, runtime: &PodRuntimeStatus) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    runtime
        .latest(name)
        .is_none_or(|last| should_restart(RestartPolicy::of(pod), last))
}

/// An init container with `restartPolicy: Always`: a sidecar that starts before the later init
/// containers and keeps running next to the app containers.
#[must_use]
pub fn is_restartable_init_container(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// An init container instance that failed: exited non-zero, OOM-killed, or in an unknown state.
#[must_use]
pub fn is_init_container_failed(container: &RuntimeContainer) -> bool {
    container.reason.contains("OOMKilled")
        || (container.state == RuntimeContainerState::Exited && container.exit_code != 0)
        || container.state == RuntimeContainerState::Unknown
}

/// The hash of a container spec recorded on the containers the agent creates; one
/// definition for writing and comparing it lives with the labels.
pub use crate::kuberuntime::labels::container_hash;

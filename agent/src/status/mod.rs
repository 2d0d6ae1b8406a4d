//! The kubelet's pure decisions about a pod: what to do next with its sandbox and containers,
//! and what status to report for it.
//!
//! Nothing here performs I/O or reads a clock. The pod worker builds a [`PodRuntimeStatus`]
//! from CRI, passes the time in, and gets back either [`PodActions`] (what to kill, create and
//! start) or a `PodStatus` to send, and [`status_patch`] turns two statuses into the strategic
//! merge patch the kubelet sends to `pods/{name}/status`.
//!
//! The rules follow upstream Kubernetes (v1.33 behaviour, default feature gates):
//!
//! | here | upstream |
//! | --- | --- |
//! | [`runtime`] | `kubecontainer.PodStatus`, `kuberuntime.toKubeContainerStatus` |
//! | [`restart`] | `container/helpers.go` `ShouldContainerBeRestarted`, `kuberuntime/helpers.go` |
//! | [`backoff`] | `client-go/util/flowcontrol.Backoff`, `kuberuntime_manager.go` `doBackOff`, `images/image_manager.go` |
//! | [`actions`] | `kuberuntime_manager.go` `computePodActions`, `kuberuntime_container.go` `computeInitContainerActions` |
//! | [`phase`] | `kubelet_pods.go` `getPhase` |
//! | [`conditions`] | `status/generate.go`, `status_manager.go` `updateLastTransitionTime` |
//! | [`containers`] | `kubelet_pods.go` `convertToAPIContainerStatuses`, `prober_manager.go` `UpdatePodStatus` |
//! | [`pod`] | `kubelet_pods.go` `generateAPIPodStatus`, `status_manager.go` `updateStatusInternal` |
//! | [`patch`] | `pkg/util/pod` `PatchPodStatus`, `strategicpatch.CreateTwoWayMergePatch` |
//! | [`termination`] | `kuberuntime_container.go` `getTerminationMessage` |

pub mod actions;
pub mod backoff;
pub mod conditions;
pub mod containers;
mod init_actions;
pub mod patch;
pub mod phase;
pub mod pod;
pub mod restart;
pub mod runtime;
pub mod termination;
pub mod time;

pub use actions::{
    ContainerKill, ContainerStart, KillReason, PodActions, ProbeResults, StartReason,
    compute_pod_actions, compute_pod_actions_with_probes,
};
pub use backoff::{Backoff, ContainerBackoff, ContainerKey, ImageKey, ImagePullBackoff};
pub use patch::status_patch;
pub use phase::PodPhase;
pub use pod::{StatusContext, WaitingReason, pod_status, terminate_pod_status};
pub use restart::{RestartPolicy, should_restart};
pub use runtime::{
    PodRuntimeStatus, RuntimeContainer, RuntimeContainerState, SandboxState, SandboxStatus,
};

/// What can go wrong while turning statuses into an API request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pod status could not be turned into JSON for the patch body.
    #[error("serializing pod status for the status patch")]
    SerializeStatus(#[source] serde_json::Error),
}

/// The result type of this module.
pub type Result<T> = std::result::Result<T, Error>;

//! A runtime-neutral snapshot of one pod as the container runtime sees it.
//!
//! The pod worker builds a [`PodRuntimeStatus`] from CRI (`PodSandboxStatus` and
//! `ContainerStatus` of every sandbox and container labelled with the pod's UID, including
//! exited ones); every decision in [`crate::status`] reads only this snapshot. It plays the role
//! of upstream's `kubecontainer.PodStatus`.

use ferrolet_cri::api;
use jiff::Timestamp;

use super::time::timestamp_from_unix_nanos;

/// The annotation in which the kubelet records the hash of the container spec it created a
/// container from (hexadecimal), so that a changed spec can be detected later.
pub const CONTAINER_HASH_ANNOTATION: &str = "io.kubernetes.container.hash";

/// The label carrying the container's name in the pod spec.
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";

/// Whether a sandbox can host containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxState {
    /// `SANDBOX_READY`: created, networked and running.
    Ready,
    /// `SANDBOX_NOTREADY`: stopped or broken; it must be replaced.
    NotReady,
}

/// One pod sandbox of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxStatus {
    /// The runtime's sandbox ID.
    pub id: String,
    /// Ready or not.
    pub state: SandboxState,
    /// When the runtime created it.
    pub created_at: Option<Timestamp>,
    /// The sandbox's IPs, primary first, or `None` when the runtime reported no network status
    /// at all (an empty list means "reported, but no IP": the sandbox must be recreated).
    pub ips: Option<Vec<String>>,
    /// The sandbox attempt (`PodSandboxMetadata.attempt`), counting re-creations.
    pub attempt: u32,
    /// The sandbox shares the node's network namespace (`NamespaceMode::NODE`).
    pub host_network: bool,
}

impl SandboxStatus {
    /// Converts a CRI `PodSandboxStatus`.
    #[must_use]
    pub fn from_cri(status: &api::PodSandboxStatus) -> Self {
        let state = if status.state == api::PodSandboxState::SandboxReady as i32 {
            SandboxState::Ready
        } else {
            SandboxState::NotReady
        };
        let ips = status.network.as_ref().map(|network| {
            std::iter::once(network.ip.clone())
                .chain(network.additional_ips.iter().map(|ip| ip.ip.clone()))
                .filter(|ip| !ip.is_empty())
                .collect()
        });
        let host_network = status
            .linux
            .as_ref()
            .and_then(|linux| linux.namespaces.as_ref())
            .and_then(|namespaces| namespaces.options.as_ref())
            .is_some_and(|options| options.network == api::NamespaceMode::Node as i32);
        Self {
            id: status.id.clone(),
            state,
            created_at: timestamp_from_unix_nanos(status.created_at),
            ips,
            attempt: status.metadata.as_ref().map_or(0, |m| m.attempt),
            host_network,
        }
    }

    /// The sandbox is ready.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.state == SandboxState::Ready
    }
}

/// The state of one container instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeContainerState {
    /// Created but never started (or failed to start).
    Created,
    /// Running.
    Running,
    /// Exited; `exit_code` and `finished_at` are set.
    Exited,
    /// The runtime does not know.
    Unknown,
}

/// One container instance (one attempt of one container of the pod spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeContainer {
    /// The runtime's container ID (without the `containerd://` prefix).
    pub id: String,
    /// The container's name in the pod spec.
    pub name: String,
    /// The attempt (`ContainerMetadata.attempt`): the kubelet creates attempt N+1 from attempt
    /// N, so it is also the container's restart count.
    pub attempt: u32,
    /// Current state.
    pub state: RuntimeContainerState,
    /// When the runtime created it.
    pub created_at: Option<Timestamp>,
    /// When it started (not set while `Created`).
    pub started_at: Option<Timestamp>,
    /// When it exited (only for `Exited`).
    pub finished_at: Option<Timestamp>,
    /// Exit code (only meaningful for `Exited`).
    pub exit_code: i32,
    /// The runtime's short reason, such as `Completed`, `Error`, `OOMKilled`.
    pub reason: String,
    /// The runtime's human-readable message.
    pub message: String,
    /// The image the runtime reports for the container.
    pub image: String,
    /// The image reference (digest) the container runs: the API's `imageID`.
    pub image_ref: String,
    /// Hash of the container spec it was created from ([`CONTAINER_HASH_ANNOTATION`]).
    pub hash: Option<u64>,
    /// The sandbox it belongs to, when known (CRI `Container.pod_sandbox_id`); `None` counts
    /// as belonging to the current sandbox.
    pub sandbox_id: Option<String>,
}

impl RuntimeContainer {
    /// Converts a CRI `ContainerStatus` (the sandbox ID is not part of it; set
    /// [`RuntimeContainer::sandbox_id`] from `ListContainers` when available).
    #[must_use]
    pub fn from_cri(status: &api::ContainerStatus) -> Self {
        let state = match api::ContainerState::try_from(status.state) {
            Ok(api::ContainerState::ContainerCreated) => RuntimeContainerState::Created,
            Ok(api::ContainerState::ContainerRunning) => RuntimeContainerState::Running,
            Ok(api::ContainerState::ContainerExited) => RuntimeContainerState::Exited,
            Ok(api::ContainerState::ContainerUnknown) | Err(_) => RuntimeContainerState::Unknown,
        };
        let name = status
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| status.labels.get(CONTAINER_NAME_LABEL).cloned())
            .unwrap_or_default();
        let exited = state == RuntimeContainerState::Exited;
        Self {
            id: status.id.clone(),
            name,
            attempt: status.metadata.as_ref().map_or(0, |m| m.attempt),
            state,
            created_at: timestamp_from_unix_nanos(status.created_at),
            started_at: if state == RuntimeContainerState::Created {
                None
            } else {
                timestamp_from_unix_nanos(status.started_at)
            },
            finished_at: if exited {
                timestamp_from_unix_nanos(status.finished_at)
            } else {
                None
            },
            exit_code: if exited { status.exit_code } else { 0 },
            reason: if exited {
                status.reason.clone()
            } else {
                String::new()
            },
            message: if exited {
                status.message.clone()
            } else {
                String::new()
            },
            image: status
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default(),
            image_ref: status.image_ref.clone(),
            hash: status
                .annotations
                .get(CONTAINER_HASH_ANNOTATION)
                .and_then(|h| u64::from_str_radix(h, 16).ok()),
            sandbox_id: None,
        }
    }

    /// The container is running.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.state == RuntimeContainerState::Running
    }

    /// The container exited with code 0.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.state == RuntimeContainerState::Exited && self.exit_code == 0
    }

    /// The API's `containerID`: `<runtime>://<id>`, such as `containerd://4f1c...`.
    #[must_use]
    pub fn container_id(&self, runtime_name: &str) -> String {
        format!("{runtime_name}://{}", self.id)
    }

    /// Newest first: by creation time, then attempt.
    fn newer_than(&self, other: &Self) -> bool {
        (self.created_at, self.attempt) > (other.created_at, other.attempt)
    }
}

/// Everything the runtime knows about one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRuntimeStatus {
    /// All sandboxes of the pod, in any order.
    pub sandboxes: Vec<SandboxStatus>,
    /// All containers of the pod (every attempt still known to the runtime), in any order.
    pub containers: Vec<RuntimeContainer>,
}

impl PodRuntimeStatus {
    /// The newest sandbox (by creation time, then attempt).
    #[must_use]
    pub fn latest_sandbox(&self) -> Option<&SandboxStatus> {
        self.sandboxes
            .iter()
            .max_by_key(|s| (s.created_at, s.attempt))
    }

    /// The newest instance of the named container.
    #[must_use]
    pub fn latest(&self, name: &str) -> Option<&RuntimeContainer> {
        self.by_name_newest_first(name).into_iter().next()
    }

    /// The instance before the newest one of the named container: the source of the API's
    /// `lastState`.
    #[must_use]
    pub fn previous(&self, name: &str) -> Option<&RuntimeContainer> {
        self.by_name_newest_first(name).into_iter().nth(1)
    }

    /// The newest instance of the named container that has exited.
    #[must_use]
    pub fn latest_exited(&self, name: &str) -> Option<&RuntimeContainer> {
        self.by_name_newest_first(name)
            .into_iter()
            .find(|c| c.state == RuntimeContainerState::Exited)
    }

    /// Every instance of the named container, newest first.
    #[must_use]
    pub fn by_name_newest_first(&self, name: &str) -> Vec<&RuntimeContainer> {
        let mut found: Vec<&RuntimeContainer> =
            self.containers.iter().filter(|c| c.name == name).collect();
        found.sort_by(|a, b| {
            if a.newer_than(b) {
                std::cmp::Ordering::Less
            } else if b.newer_than(a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        found
    }

    /// Containers that belong to the newest sandbox (those without a known sandbox count too):
    /// upstream's `ActiveContainerStatuses`.
    pub fn active_containers(&self) -> impl Iterator<Item = &RuntimeContainer> {
        let current = self.latest_sandbox().map(|s| s.id.as_str());
        self.containers
            .iter()
            .filter(move |c| match (&c.sandbox_id, current) {
                (Some(id), Some(current)) => id == current,
                _ => true,
            })
    }

    /// The pod's IPs from the newest sandbox when it is ready (empty otherwise).
    #[must_use]
    pub fn pod_ips(&self) -> Vec<String> {
        match self.latest_sandbox() {
            Some(sandbox) if sandbox.is_ready() => sandbox.ips.clone().unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

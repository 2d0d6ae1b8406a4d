//! The volume manager: the volumes of pods, laid out and behaving as the kubelet's
//! (`pkg/kubelet/volumemanager`, `pkg/volume/{emptydir,hostpath,configmap,secret,downwardapi,
//! projected,csi}`). CSI volumes (inline and through `PersistentVolumeClaims`) go through the
//! drivers registered with the plugin watcher ([`csi`], [`crate::csi`]).
//!
//! The pod worker calls, for each pod:
//! 1. [`VolumeManager::mount_pod`] before the sandbox starts; a failure is a `FailedMount`
//!    event (its `Display`), and the worker retries later.
//! 2. [`PodVolumes::mounts_for`] for each (init) container right before creating it, with the
//!    container's environment for `subPathExpr`; an error is a `Failed` event of the
//!    container (`CreateContainerConfigError`).
//! 3. [`VolumeManager::refresh`] periodically while the pod runs, so that configMap, secret,
//!    downward API and token updates reach it.
//! 4. [`VolumeManager::unmount_pod`] once every container has stopped.
//!
//! At start-up the agent calls [`VolumeManager::make_root_shared`], then
//! [`VolumeManager::reconstruct`] to see what is on disk, and, once it knows which pods are
//! live (API and runtime), [`VolumeManager::cleanup_orphans`].
//!
//! subPaths are resolved without following symlinks out of the volume and bind-mounted from
//! the opened descriptor: see [`subpath`].

pub mod atomic_writer;
pub mod csi;
mod error;
pub mod layout;
mod manager;
pub mod mounter;
pub mod ownership;
pub mod plugins;
mod pod_volumes;
pub mod projection;
mod recovery;
pub mod sources;
pub mod subpath;
pub mod teardown;
mod token;

pub use error::{SetUpError, SubPathError, TearDownError, VolumeError};
pub use layout::{Layout, VolumePlugin};
pub use manager::{Clock, VolumeManager};
pub use mounter::{HostMounter, Mounter, RecordingMounter};
pub use pod_volumes::{MountedVolume, PodVolumes};
pub use recovery::{OrphanCleanup, ReconstructedVolume};
pub use sources::{
    InMemoryVolumeSources, KubeVolumeSources, ServiceAccountToken, ServiceAccountTokenRequest,
    SourceError, VolumeSources,
};

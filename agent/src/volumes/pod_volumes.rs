//! The volumes of one pod once set up, and how a container's `volumeMounts` become CRI mounts
//! (`makeMounts` in `pkg/kubelet/kubelet_pods.go`).

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferrolet_cri::api::{Mount, MountPropagation};
use k8s_openapi::api::core::v1::Container;

use crate::kuberuntime::expansion::expand_sub_path_expr;

use super::error::{SubPathError, VolumeError};
use super::layout::{Layout, VolumePlugin, is_safe_component};
use super::mounter::Mounter;
use super::subpath::{bind_sub_path, validate_sub_path};

/// One set-up volume of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedVolume {
    /// `spec.volumes[].name`.
    pub name: String,
    pub plugin: VolumePlugin,
    /// The host path the runtime mounts (the volume directory, or the hostPath itself).
    pub path: PathBuf,
    /// Whether containers must mount it read-only whatever their volumeMount says.
    pub read_only: bool,
    /// Whether the runtime should relabel it for `SELinux` (volumes the kubelet manages).
    pub selinux_relabel: bool,
}

/// The set-up volumes of one pod, from [`super::VolumeManager::mount_pod`].
#[derive(Clone)]
pub struct PodVolumes {
    pub(crate) layout: Layout,
    pub(crate) pod_uid: String,
    pub(crate) volumes: BTreeMap<String, MountedVolume>,
    pub(crate) mounter: Arc<dyn Mounter>,
}

impl fmt::Debug for PodVolumes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodVolumes")
            .field("pod_uid", &self.pod_uid)
            .field("volumes", &self.volumes)
            .finish_non_exhaustive()
    }
}

impl PodVolumes {
    /// The pod's UID.
    #[must_use]
    pub fn pod_uid(&self) -> &str {
        &self.pod_uid
    }

    /// The volume named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&MountedVolume> {
        self.volumes.get(name)
    }

    /// Every volume, by name.
    #[must_use]
    pub fn volumes(&self) -> &BTreeMap<String, MountedVolume> {
        &self.volumes
    }

    /// The CRI mounts for `container`'s volumeMounts (call right before creating it, also for
    /// init containers). `env` resolves the container's environment variables for
    /// `subPathExpr`. A subPath is resolved safely and bind-mounted under `volume-subpaths`
    /// (see [`super::subpath`]); those mounts stay until
    /// [`super::VolumeManager::unmount_pod`]. `/etc/hosts` and the termination log are not
    /// volumes and are the caller's.
    pub fn mounts_for(
        &self,
        container: &Container,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<Mount>, VolumeError> {
        if !is_safe_component(&container.name) {
            return Err(VolumeError::InvalidName {
                what: "container",
                name: container.name.clone(),
            });
        }
        let mut mounts = Vec::new();
        for (index, volume_mount) in container.volume_mounts.iter().flatten().enumerate() {
            let volume = self.volumes.get(&volume_mount.name).ok_or_else(|| {
                VolumeError::VolumeNotFound {
                    volume: volume_mount.name.clone(),
                    container: container.name.clone(),
                }
            })?;
            let sub_path = match volume_mount
                .sub_path_expr
                .as_deref()
                .filter(|e| !e.is_empty())
            {
                Some(expr) => {
                    expand_sub_path_expr(expr, env).map_err(|missing| VolumeError::SubPathExpr {
                        volume: volume_mount.name.clone(),
                        container: container.name.clone(),
                        expr: expr.to_owned(),
                        missing,
                    })?
                }
                None => volume_mount.sub_path.clone().unwrap_or_default(),
            };
            let host_path = if sub_path.is_empty() {
                volume.path.clone()
            } else {
                self.prepare_sub_path(volume, &container.name, index, &sub_path)
                    .map_err(|source| VolumeError::SubPath {
                        volume: volume_mount.name.clone(),
                        container: container.name.clone(),
                        sub_path: sub_path.clone(),
                        source,
                    })?
            };
            let propagation = match volume_mount.mount_propagation.as_deref() {
                None | Some("None") => MountPropagation::PropagationPrivate,
                Some("HostToContainer") => MountPropagation::PropagationHostToContainer,
                Some("Bidirectional") => MountPropagation::PropagationBidirectional,
                Some(other) => {
                    return Err(VolumeError::InvalidPropagation {
                        mode: other.to_owned(),
                    });
                }
            };
            let readonly = volume_mount.read_only.unwrap_or(false) || volume.read_only;
            // `IfPossible` would need the runtime's handler features; only `Enabled` asks.
            let recursive_read_only =
                readonly && volume_mount.recursive_read_only.as_deref() == Some("Enabled");
            let container_path = if volume_mount.mount_path.starts_with('/') {
                volume_mount.mount_path.clone()
            } else {
                format!("/{}", volume_mount.mount_path)
            };
            mounts.push(Mount {
                container_path,
                host_path: host_path.to_string_lossy().into_owned(),
                readonly,
                selinux_relabel: volume.selinux_relabel,
                propagation: propagation.into(),
                recursive_read_only,
                ..Default::default()
            });
        }
        Ok(mounts)
    }

    fn prepare_sub_path(
        &self,
        volume: &MountedVolume,
        container: &str,
        index: usize,
        sub_path: &str,
    ) -> Result<PathBuf, SubPathError> {
        validate_sub_path(sub_path)?;
        // Missing directories get the volume root's mode (with setgid from an fsGroup).
        let mode = std::fs::metadata(&volume.path)
            .map(|m| m.permissions().mode() & 0o7777)
            .map_err(SubPathError::OpenRoot)?;
        let target = self
            .layout
            .subpath_target(&self.pod_uid, &volume.name, container, index);
        bind_sub_path(
            self.mounter.as_ref(),
            Path::new(&volume.path),
            sub_path,
            &target,
            Some(mode),
        )?;
        Ok(target)
    }
}

//! CSI volumes (`pkg/volume/csi`): inline ephemeral volumes (`spec.volumes[].csi`) and
//! `PersistentVolumeClaims` bound to CSI `PersistentVolumes`.
//!
//! Set-up: a persistent volume of a driver with `STAGE_UNSTAGE_VOLUME` is staged once per
//! node at `<root>/plugins/kubernetes.io/csi/<driver>/<sha256(handle)>/globalmount`; then
//! every pod's use is published at `<pod>/volumes/kubernetes.io~csi/<name>/mount`. Inline
//! volumes are only published (their handle is `csi-<sha256(pod uid + name)>`, and the
//! driver learns from `csi.storage.k8s.io/ephemeral` that the volume lives with the pod).
//! Next to each target and staging directory a `vol_data.json` records what teardown needs,
//! so it works after an agent restart and when the pod object is long gone.
//!
//! Teardown: unpublish every CSI volume of the pod, then unstage each staged volume that no
//! other pod on the node still uses. A failure (the driver is away) leaves the record in
//! place; the caller retries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ferrolet_csi::{EPHEMERAL_CONTEXT_KEY, PublishSpec};
use k8s_openapi::api::core::v1::{CSIVolumeSource, PersistentVolumeClaimVolumeSource, Pod};
use serde::{Deserialize, Serialize};

use super::error::{SetUpError, TearDownError};
use super::layout::{VOLUMES_DIR, VolumePlugin};
use super::manager::VolumeManager;
use super::mounter::is_mount_point;

/// The record next to a target (`<name>/vol_data.json`) or a staging directory.
const VOL_DATA: &str = "vol_data.json";

/// What the agent remembers of a published (or staged) CSI volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeData {
    pub driver_name: String,
    pub volume_handle: String,
    /// `spec.volumes[].name` (publish records only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spec_vol_id: String,
    /// `Ephemeral` or `Persistent`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub volume_lifecycle_mode: String,
    /// The staging directory, when the volume was staged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_path: Option<PathBuf>,
}

/// A CSI volume of a pod, resolved from its inline source or its claim's volume.
#[derive(Debug, Clone)]
pub struct CsiVolume {
    pub driver: String,
    pub volume_handle: String,
    pub read_only: bool,
    pub fs_type: String,
    pub attributes: HashMap<String, String>,
    pub ephemeral: bool,
    pub multi_node: bool,
}

/// The handle of an inline volume (`makeVolumeHandle`): `csi-<sha256(pod uid + name)>`.
#[must_use]
pub fn inline_volume_handle(pod_uid: &str, volume: &str) -> String {
    format!(
        "csi-{}",
        super::layout::sha256_hex(&format!("{pod_uid}{volume}"))
    )
}

/// The CSI volume of an inline source.
#[must_use]
pub fn from_inline(pod_uid: &str, name: &str, source: &CSIVolumeSource) -> CsiVolume {
    CsiVolume {
        driver: source.driver.clone(),
        volume_handle: inline_volume_handle(pod_uid, name),
        read_only: source.read_only.unwrap_or(false),
        fs_type: source.fs_type.clone().unwrap_or_default(),
        attributes: source
            .volume_attributes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        ephemeral: true,
        multi_node: false,
    }
}

fn write_record(dir: &Path, data: &VolumeData) -> Result<(), SetUpError> {
    std::fs::create_dir_all(dir).map_err(|e| SetUpError::io("create volume directory", dir, e))?;
    let path = dir.join(VOL_DATA);
    let bytes = serde_json::to_vec(data).map_err(|e| SetUpError::Task(e.to_string()))?;
    std::fs::write(&path, bytes).map_err(|e| SetUpError::io("write", &path, e))
}

fn read_record(dir: &Path) -> Result<Option<VolumeData>, TearDownError> {
    let path = dir.join(VOL_DATA);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| TearDownError::CsiRecord {
                    path,
                    reason: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TearDownError::CsiRecord {
            path,
            reason: e.to_string(),
        }),
    }
}

fn mounted(manager: &VolumeManager, path: &Path) -> Result<bool, SetUpError> {
    let table = manager
        .mounter
        .mount_points()
        .map_err(|e| SetUpError::io("read mount table for", path, e))?;
    Ok(std::fs::canonicalize(path).is_ok_and(|c| is_mount_point(&table, &c)))
}

impl VolumeManager {
    /// Resolves a claim to the CSI volume it is bound to.
    pub(super) async fn claim_volume(
        &self,
        pod: &Pod,
        source: &PersistentVolumeClaimVolumeSource,
    ) -> Result<CsiVolume, SetUpError> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = &source.claim_name;
        let claim = self
            .sources
            .persistent_volume_claim(namespace, name)
            .await?
            .ok_or_else(|| SetUpError::ClaimNotFound { name: name.clone() })?;
        let bound = claim
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Bound");
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty() && bound)
            .ok_or_else(|| SetUpError::ClaimNotBound { name: name.clone() })?;
        let volume = self
            .sources
            .persistent_volume(&volume_name)
            .await?
            .ok_or_else(|| SetUpError::PersistentVolumeNotFound {
                name: volume_name.clone(),
            })?;
        let spec = volume.spec.unwrap_or_default();
        let csi = spec.csi.ok_or(SetUpError::NotCsi {
            name: volume_name.clone(),
        })?;
        let multi_node = spec
            .access_modes
            .iter()
            .flatten()
            .any(|m| m.ends_with("Many"));
        Ok(CsiVolume {
            driver: csi.driver,
            volume_handle: csi.volume_handle,
            read_only: source.read_only.unwrap_or(false) || csi.read_only.unwrap_or(false),
            fs_type: csi.fs_type.unwrap_or_default(),
            attributes: csi
                .volume_attributes
                .unwrap_or_default()
                .into_iter()
                .collect(),
            ephemeral: false,
            multi_node,
        })
    }

    /// Stages (when the driver stages) and publishes `volume` for the pod; returns the
    /// target directory. Idempotent: a published target is left alone.
    pub(super) async fn set_up_csi(
        &self,
        pod: &Pod,
        uid: &str,
        name: &str,
        volume: CsiVolume,
    ) -> Result<PathBuf, SetUpError> {
        let dir = self.layout.volume_dir(uid, VolumePlugin::Csi, name);
        let target = dir.join("mount");
        if mounted(self, &target)? {
            return Ok(target);
        }
        let driver = self
            .csi
            .as_ref()
            .and_then(|d| d.get(&volume.driver))
            .ok_or_else(|| SetUpError::CsiDriverNotRegistered(volume.driver.clone()))?;
        let mut context = volume.attributes.clone();
        let meta = &pod.metadata;
        for (key, value) in [
            ("csi.storage.k8s.io/pod.name", meta.name.clone()),
            ("csi.storage.k8s.io/pod.namespace", meta.namespace.clone()),
            ("csi.storage.k8s.io/pod.uid", meta.uid.clone()),
            (
                "csi.storage.k8s.io/serviceAccount.name",
                pod.spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.clone()),
            ),
        ] {
            context.insert(key.to_owned(), value.unwrap_or_default());
        }
        context.insert(
            EPHEMERAL_CONTEXT_KEY.to_owned(),
            volume.ephemeral.to_string(),
        );
        let mut spec = PublishSpec {
            volume_id: volume.volume_handle.clone(),
            staging_target_path: None,
            target_path: target.clone(),
            read_only: volume.read_only,
            fs_type: volume.fs_type.clone(),
            multi_node: volume.multi_node,
            volume_context: context,
        };
        if !volume.ephemeral && driver.client.supports_stage_unstage().await? {
            let staging = self
                .layout
                .csi_global_mount(&volume.driver, &volume.volume_handle);
            let record = VolumeData {
                driver_name: volume.driver.clone(),
                volume_handle: volume.volume_handle.clone(),
                spec_vol_id: String::new(),
                volume_lifecycle_mode: String::new(),
                staging_path: None,
            };
            write_record(staging.parent().unwrap_or(&staging), &record)?;
            std::fs::create_dir_all(&staging)
                .map_err(|e| SetUpError::io("create staging directory", &staging, e))?;
            spec.staging_target_path = Some(staging.clone());
            if !mounted(self, &staging)? {
                let stage = PublishSpec {
                    volume_context: volume.attributes.clone(),
                    ..spec.clone()
                };
                driver.client.stage(&stage).await?;
            }
        }
        // The record first: a publish that half-happened is still torn down.
        write_record(
            &dir,
            &VolumeData {
                driver_name: volume.driver.clone(),
                volume_handle: volume.volume_handle.clone(),
                spec_vol_id: name.to_owned(),
                volume_lifecycle_mode: if volume.ephemeral {
                    "Ephemeral"
                } else {
                    "Persistent"
                }
                .to_owned(),
                staging_path: spec.staging_target_path.clone(),
            },
        )?;
        driver.client.publish(&spec).await?;
        tracing::info!(pod_uid = %uid, volume = %name, driver = %volume.driver, handle = %volume.volume_handle, "CSI volume published");
        Ok(target)
    }

    /// Unpublishes every CSI volume of the pod and unstages those no other pod uses.
    pub(super) async fn tear_down_csi(&self, uid: &str) -> Result<(), TearDownError> {
        let plugin_dir = self
            .layout
            .pod_dir(uid)
            .join(VOLUMES_DIR)
            .join(VolumePlugin::Csi.dir_name());
        let Ok(entries) = std::fs::read_dir(&plugin_dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let Some(record) = read_record(&dir)? else {
                continue; // never published: the generic teardown removes the directory
            };
            let driver = self
                .csi
                .as_ref()
                .and_then(|d| d.get(&record.driver_name))
                .ok_or_else(|| TearDownError::CsiDriverNotRegistered(record.driver_name.clone()))?;
            driver
                .client
                .unpublish(&record.volume_handle, &dir.join("mount"))
                .await?;
            remove_dir_all_same_fs(&dir)?;
            tracing::info!(pod_uid = %uid, volume = %record.spec_vol_id, handle = %record.volume_handle, "CSI volume unpublished");
            if let Some(staging) = &record.staging_path
                && !self.csi_volume_in_use(&record.driver_name, &record.volume_handle)
            {
                driver
                    .client
                    .unstage(&record.volume_handle, staging)
                    .await?;
                if let Some(volume_dir) = staging.parent() {
                    remove_dir_all_same_fs(volume_dir)?;
                }
                tracing::info!(handle = %record.volume_handle, "CSI volume unstaged");
            }
        }
        Ok(())
    }

    /// Whether any pod directory still has `handle` of `driver` published.
    fn csi_volume_in_use(&self, driver: &str, handle: &str) -> bool {
        let Ok(pods) = std::fs::read_dir(self.layout.pods_dir()) else {
            return false;
        };
        pods.flatten().any(|pod| {
            let dir = pod
                .path()
                .join(VOLUMES_DIR)
                .join(VolumePlugin::Csi.dir_name());
            std::fs::read_dir(dir).is_ok_and(|volumes| {
                volumes.flatten().any(|v| {
                    read_record(&v.path())
                        .ok()
                        .flatten()
                        .is_some_and(|r| r.driver_name == driver && r.volume_handle == handle)
                })
            })
        })
    }
}

/// Removes a directory tree that must hold nothing mounted (a CSI target after unpublish):
/// never crosses into another filesystem.
fn remove_dir_all_same_fs(dir: &Path) -> Result<(), TearDownError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(root) = std::fs::symlink_metadata(dir) else {
        return Ok(());
    };
    let remove = |path: &Path, source| TearDownError::Remove {
        path: path.to_owned(),
        source,
    };
    let mut stack = vec![(dir.to_owned(), false)];
    while let Some((path, visited)) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| remove(&path, e))?;
        if meta.dev() != root.dev() {
            return Err(TearDownError::CrossesFilesystem { path });
        }
        if !meta.is_dir() {
            std::fs::remove_file(&path).map_err(|e| remove(&path, e))?;
        } else if visited {
            std::fs::remove_dir(&path).map_err(|e| remove(&path, e))?;
        } else {
            stack.push((path.clone(), true));
            for child in std::fs::read_dir(&path)
                .map_err(|e| remove(&path, e))?
                .flatten()
            {
                stack.push((child.path(), false));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_handles_are_stable_per_pod_and_volume() {
        let a = inline_volume_handle("uid-1", "data");
        assert_eq!(a, inline_volume_handle("uid-1", "data"));
        assert_ne!(a, inline_volume_handle("uid-2", "data"));
        assert!(a.starts_with("csi-") && a.len() == 4 + 64);
    }

    #[test]
    fn records_round_trip_and_a_tree_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("vol");
        let data = VolumeData {
            driver_name: "d".into(),
            volume_handle: "h".into(),
            spec_vol_id: "v".into(),
            volume_lifecycle_mode: "Persistent".into(),
            staging_path: Some("/x/globalmount".into()),
        };
        write_record(&volume, &data).unwrap();
        std::fs::create_dir_all(volume.join("mount/sub")).unwrap();
        assert_eq!(read_record(&volume).unwrap(), Some(data));
        remove_dir_all_same_fs(&volume).unwrap();
        assert!(!volume.exists());
        assert_eq!(read_record(&volume).unwrap(), None);
    }
}

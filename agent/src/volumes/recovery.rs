//! Recovery after an agent restart: what volumes are on disk, and removal of the directories
//! of pods that no longer exist (`reconstruct.go` and `cleanupOrphanedPodDirs` upstream).

use std::collections::HashSet;
use std::path::PathBuf;

use super::error::{TearDownError, VolumeError};
use super::layout::VolumePlugin;
use super::manager::VolumeManager;
use super::mounter::is_mount_point;
use super::teardown::tear_down_dir;

/// A volume found on disk by [`VolumeManager::reconstruct`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconstructedVolume {
    pub pod_uid: String,
    pub plugin: VolumePlugin,
    pub name: String,
    pub path: PathBuf,
    /// Whether a tmpfs (or other mount) is at `path`.
    pub mounted: bool,
}

/// What [`VolumeManager::cleanup_orphans`] did.
#[derive(Debug, Default)]
pub struct OrphanCleanup {
    /// UIDs whose pod directories were removed.
    pub removed: Vec<String>,
    /// Pod directories that could not be cleaned (retried on the next call).
    pub failed: Vec<VolumeError>,
}

impl VolumeManager {
    /// The pod UIDs that have a directory under `<root>/pods`.
    fn pod_dirs(&self) -> Result<Vec<String>, VolumeError> {
        let pods_dir = self.layout.pods_dir();
        let entries = match std::fs::read_dir(&pods_dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(VolumeError::ReadPodsDir {
                    path: pods_dir,
                    source,
                });
            }
        };
        Ok(entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }

    /// The volumes on disk after an agent restart: for every pod directory, every volume
    /// directory of a known plugin, and whether it is mounted. The caller keeps the volumes
    /// of pods the runtime still runs (their `mount_pod` is idempotent) and passes the live
    /// UIDs to [`VolumeManager::cleanup_orphans`].
    pub fn reconstruct(&self) -> Result<Vec<ReconstructedVolume>, VolumeError> {
        let table = self
            .mounter
            .mount_points()
            .map_err(VolumeError::MountTable)?;
        let mut found = Vec::new();
        for uid in self.pod_dirs()? {
            let Ok(plugin_dirs) = std::fs::read_dir(self.layout.pod_volumes_dir(&uid)) else {
                continue;
            };
            for plugin_dir in plugin_dirs.flatten() {
                let Some(plugin) = plugin_dir
                    .file_name()
                    .to_str()
                    .and_then(VolumePlugin::from_dir_name)
                else {
                    continue;
                };
                let Ok(volume_dirs) = std::fs::read_dir(plugin_dir.path()) else {
                    continue;
                };
                for volume_dir in volume_dirs.flatten() {
                    let path = volume_dir.path();
                    let mounted =
                        std::fs::canonicalize(&path).is_ok_and(|c| is_mount_point(&table, &c));
                    found.push(ReconstructedVolume {
                        pod_uid: uid.clone(),
                        plugin,
                        name: volume_dir.file_name().to_string_lossy().into_owned(),
                        path,
                        mounted,
                    });
                }
            }
        }
        found.sort_by(|a, b| (&a.pod_uid, a.plugin, &a.name).cmp(&(&b.pod_uid, b.plugin, &b.name)));
        Ok(found)
    }

    /// Removes the directories of pods not in `live_uids` (every pod the API or the runtime
    /// still knows must be in it): unmounts whatever is mounted below each (from the mount
    /// table), then removes the whole pod directory without crossing filesystems.
    pub async fn cleanup_orphans(
        &self,
        live_uids: &HashSet<String>,
    ) -> Result<OrphanCleanup, VolumeError> {
        let mut report = OrphanCleanup::default();
        for uid in self.pod_dirs()? {
            if live_uids.contains(&uid) {
                continue;
            }
            let lock = self.pod_lock(&uid);
            let guard = lock.lock().await;
            let mounter = self.mounter.clone();
            let pod_dir = self.layout.pod_dir(&uid);
            let result = match self.tear_down_csi(&uid).await {
                Ok(()) => {
                    tokio::task::spawn_blocking(move || tear_down_dir(mounter.as_ref(), &pod_dir))
                        .await
                        .unwrap_or_else(|err| Err(TearDownError::Task(err.to_string())))
                }
                Err(err) => Err(err),
            };
            drop(guard);
            match result {
                Ok(()) => {
                    tracing::info!(pod_uid = %uid, "removed orphaned pod directory");
                    self.forget_pod_lock(&uid);
                    report.removed.push(uid);
                }
                Err(source) => report.failed.push(VolumeError::TearDown {
                    pod_uid: uid,
                    source,
                }),
            }
        }
        self.tokens.retain_pods(&|uid| live_uids.contains(uid));
        Ok(report)
    }
}

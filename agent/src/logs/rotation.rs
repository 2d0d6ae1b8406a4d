//! Log rotation, as the kubelet's container log manager does it: every monitor interval each
//! running container's current log file is checked; one that reached `containerLogMaxSize`
//! is renamed to `<file>.<timestamp>` and the runtime is asked to reopen it (CRI
//! `ReopenContainerLog`), and rotated files beyond `containerLogMaxFiles` (the current one
//! included) are removed, oldest first. Rotated files are kept uncompressed so that reading
//! across them stays simple.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferrolet_cri::RuntimeService;
use ferrolet_cri::api;
use tokio_util::sync::CancellationToken;

use super::reader::log_files;

/// Errors rotating one container's log.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("container status of {container}")]
    Status {
        container: String,
        #[source]
        source: ferrolet_cri::Error,
    },
    #[error("rename {} for rotation", path.display())]
    Rename {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("remove old log {}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reopen the log of container {container}")]
    Reopen {
        container: String,
        #[source]
        source: ferrolet_cri::Error,
    },
}

/// Rotates the logs of the running containers.
pub struct ContainerLogManager {
    runtime: Arc<dyn RuntimeService>,
    max_size: u64,
    max_files: usize,
    interval: Duration,
}

impl std::fmt::Debug for ContainerLogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerLogManager")
            .field("max_size", &self.max_size)
            .field("max_files", &self.max_files)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The suffix of a rotated file: the time of rotation, fixed width so that names sort by age.
fn rotation_suffix(now: jiff::Timestamp) -> String {
    format!(
        "{}.{:09}",
        now.strftime("%Y%m%d-%H%M%S"),
        now.subsec_nanosecond()
    )
}

impl ContainerLogManager {
    /// `max_size` bytes per file (0 disables rotation), at most `max_files` files per
    /// container log (at least 2), checked every `interval`.
    #[must_use]
    pub fn new(
        runtime: Arc<dyn RuntimeService>,
        max_size: u64,
        max_files: usize,
        interval: Duration,
    ) -> Self {
        ContainerLogManager {
            runtime,
            max_size,
            max_files: max_files.max(2),
            interval,
        }
    }

    /// The manager `containerLogMaxSize`, `containerLogMaxFiles` and
    /// `containerLogMonitorInterval` ask for.
    #[must_use]
    pub fn from_config(
        runtime: Arc<dyn RuntimeService>,
        config: &crate::config::KubeletConfiguration,
    ) -> Self {
        Self::new(
            runtime,
            u64::try_from(config.container_log_max_size.value()).unwrap_or_default(),
            usize::try_from(config.container_log_max_files).unwrap_or(5),
            config.container_log_monitor_interval.0,
        )
    }

    /// Checks every interval until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        if self.max_size == 0 {
            return;
        }
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            self.rotate_all().await;
        }
    }

    /// One pass over the running containers.
    pub async fn rotate_all(&self) {
        let filter = api::ContainerFilter {
            state: Some(api::ContainerStateValue {
                state: api::ContainerState::ContainerRunning as i32,
            }),
            ..api::ContainerFilter::default()
        };
        let containers = match self.runtime.list_containers(Some(filter)).await {
            Ok(containers) => containers,
            Err(err) => {
                tracing::debug!(%err, "list containers for log rotation");
                return;
            }
        };
        for container in containers {
            if let Err(err) = self.rotate_if_needed(&container.id).await {
                tracing::warn!(container = %container.id, %err, "log rotation");
            }
        }
    }

    /// Rotates one container's log if its current file is too big; returns whether it did.
    pub async fn rotate_if_needed(&self, container: &str) -> Result<bool, RotationError> {
        let status = self
            .runtime
            .container_status(container, false)
            .await
            .map_err(|source| RotationError::Status {
                container: container.to_owned(),
                source,
            })?;
        let Some(path) = status
            .status
            .map(|s| PathBuf::from(s.log_path))
            .filter(|p| !p.as_os_str().is_empty())
        else {
            return Ok(false);
        };
        let size = match tokio::fs::metadata(&path).await {
            Ok(meta) => meta.len(),
            Err(_) => return Ok(false),
        };
        if size < self.max_size {
            return Ok(false);
        }
        self.rotate(container, &path).await?;
        Ok(true)
    }

    async fn rotate(&self, container: &str, path: &Path) -> Result<(), RotationError> {
        // After this rotation the current file and max_files - 1 rotated ones are left.
        remove_excess(path, self.max_files.saturating_sub(2))?;
        let rotated = PathBuf::from(format!(
            "{}.{}",
            path.display(),
            rotation_suffix(jiff::Timestamp::now())
        ));
        std::fs::rename(path, &rotated).map_err(|source| RotationError::Rename {
            path: path.to_owned(),
            source,
        })?;
        if let Err(source) = self.runtime.reopen_container_log(container).await {
            // The runtime still writes to the renamed file: give it back its name.
            if let Err(err) = std::fs::rename(&rotated, path) {
                tracing::warn!(path = %path.display(), %err, "restore the log after a failed reopen");
            }
            return Err(RotationError::Reopen {
                container: container.to_owned(),
                source,
            });
        }
        tracing::debug!(%container, rotated = %rotated.display(), "container log rotated");
        Ok(())
    }
}

/// Removes the oldest rotated files of the log at `current` until `keep` are left.
fn remove_excess(current: &Path, keep: usize) -> Result<(), RotationError> {
    let files = log_files(current).map_err(|source| RotationError::Remove {
        path: current.to_owned(),
        source,
    })?;
    let rotated: Vec<&PathBuf> = files.iter().filter(|f| *f != current).collect();
    let excess = rotated.len().saturating_sub(keep);
    for path in rotated.into_iter().take(excess) {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(RotationError::Remove {
                    path: path.clone(),
                    source,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolet_cri::contract::{container_config, sandbox_config};
    use ferrolet_cri::fake::FakeRuntime;

    /// A running container of the fake runtime whose log is `dir/0.log`.
    async fn running_container(fake: &FakeRuntime, dir: &Path) -> String {
        fake.add_image("busybox:1.35");
        let config = sandbox_config("web", "");
        let sandbox = fake.run_pod_sandbox(&config, "").await.unwrap();
        let mut container = container_config("app", "busybox:1.35", &[]);
        container.log_path = dir.join("0.log").display().to_string();
        let id = fake
            .create_container(&sandbox, &container, &config)
            .await
            .unwrap();
        fake.start_container(&id).await.unwrap();
        id
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn big_logs_are_rotated_reopened_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeRuntime::new();
        let id = running_container(&fake, dir.path()).await;
        let manager =
            ContainerLogManager::new(Arc::new(fake.clone()), 100, 3, Duration::from_secs(1));
        let current = dir.path().join("0.log");
        std::fs::write(&current, [b'x'; 99]).unwrap();
        assert!(
            !manager.rotate_if_needed(&id).await.unwrap(),
            "under the limit"
        );
        for round in 1..=4 {
            // The runtime writes on: what it reopened grows past the limit again.
            std::fs::write(&current, [b'x'; 100]).unwrap();
            fake.clear_calls();
            manager.rotate_all().await;
            assert!(
                fake.operations().contains(&"ReopenContainerLog"),
                "round {round}"
            );
            let names = names(dir.path());
            let rotated = names.iter().filter(|n| n.starts_with("0.log.")).count();
            // The current file and at most max_files - 1 rotated ones (the fake does not
            // recreate the current file).
            assert_eq!(rotated, round.min(2), "round {round}: {names:?}");
        }
    }

    #[tokio::test]
    async fn a_failed_reopen_gives_the_file_its_name_back() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeRuntime::new();
        let id = running_container(&fake, dir.path()).await;
        let manager =
            ContainerLogManager::new(Arc::new(fake.clone()), 10, 5, Duration::from_secs(1));
        std::fs::write(dir.path().join("0.log"), [b'x'; 20]).unwrap();
        fake.inject_error("ReopenContainerLog", tonic::Status::unavailable("down"));
        let err = manager.rotate_if_needed(&id).await.unwrap_err();
        assert!(matches!(err, RotationError::Reopen { .. }), "{err}");
        assert_eq!(names(dir.path()), ["0.log"]);
    }

    #[test]
    fn suffixes_sort_by_time() {
        let a: jiff::Timestamp = "2024-01-01T00:00:09.5Z".parse().unwrap();
        let b: jiff::Timestamp = "2024-01-01T00:00:10.000000001Z".parse().unwrap();
        assert_eq!(rotation_suffix(a), "20240101-000009.500000000");
        assert!(rotation_suffix(a) < rotation_suffix(b));
    }

    #[test]
    fn excess_rotated_files_go_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let current = dir.path().join("0.log");
        for name in [
            "0.log",
            "0.log.20240101-000001.000000000",
            "0.log.20240101-000002.000000000",
            "0.log.20240101-000003.000000000",
            "1.log",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_excess(&current, 1).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["0.log", "0.log.20240101-000003.000000000", "1.log"]);
    }
}

//! The kubelet plugin watcher (`pkg/kubelet/pluginmanager`): plugins put a socket serving the
//! `pluginregistration.Registration` service into `<root>/plugins_registry`; the watcher asks
//! it `GetInfo`, hands the plugin to the handler of its type (only `CSIPlugin` here), and tells
//! the plugin the outcome with `NotifyRegistrationStatus`. A socket that disappears, is
//! replaced by a new one (the plugin restarted), or refuses connections (the plugin died
//! without removing it) deregisters the plugin; a new or revived socket registers it again.
//!
//! The directory is polled: plugins come and go rarely, and polling needs no inotify
//! descriptors and sees sockets that were there before the agent started.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferrolet_proto::pluginregistration::v1::registration_client::RegistrationClient;
use ferrolet_proto::pluginregistration::v1::{InfoRequest, PluginInfo, RegistrationStatus};
use tokio_util::sync::CancellationToken;

use crate::socket;

/// The plugin type CSI drivers register as.
pub const CSI_PLUGIN_TYPE: &str = "CSIPlugin";
/// How long the handshake calls may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the agent does with a CSI driver that registers or goes away.
#[async_trait]
pub trait RegistrationHandler: Send + Sync {
    /// Accepts the driver `name` serving CSI on `endpoint` with `versions`, or says why not
    /// (the message goes back to the plugin).
    async fn register(
        &self,
        name: &str,
        endpoint: &Path,
        versions: &[String],
    ) -> Result<(), String>;
    /// The driver `name` is gone.
    async fn deregister(&self, name: &str);
}

/// Device, inode and change time (seconds, nanoseconds) of a socket file.
type SocketIdentity = (u64, u64, i64, i64);

/// A plugin registered from one socket.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Registered {
    /// Device, inode and change time of the socket: a restarted plugin binds a new one.
    identity: SocketIdentity,
    name: String,
}

/// Watches a `plugins_registry` directory.
#[derive(Debug, Clone)]
pub struct PluginWatcher {
    dir: PathBuf,
    poll: Duration,
}

impl PluginWatcher {
    /// A watcher of `dir` (`<root>/plugins_registry`), created if missing.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PluginWatcher {
            dir: dir.into(),
            poll: Duration::from_millis(500),
        }
    }

    /// Polls every `poll` instead of every 500 ms.
    #[must_use]
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Runs until `cancel`: registers plugins as their sockets appear and deregisters them as
    /// they go (and every plugin when cancelled).
    pub async fn run(self, handler: Arc<dyn RegistrationHandler>, cancel: CancellationToken) {
        if let Err(err) = std::fs::create_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), %err, "create the plugin registry directory");
        }
        let mut registered: HashMap<PathBuf, Registered> = HashMap::new();
        // Sockets of plugins that are not acceptable (wrong type, version): not asked again
        // until they are replaced.
        let mut refused: HashMap<PathBuf, SocketIdentity> = HashMap::new();
        loop {
            let sockets = scan(&self.dir);
            // Gone or replaced sockets first, so a restarted plugin registers anew.
            let stale: Vec<PathBuf> = registered
                .iter()
                .filter(|(path, r)| {
                    sockets.get(*path) != Some(&r.identity) || !accepts_connections(path)
                })
                .map(|(path, _)| path.clone())
                .collect();
            for path in stale {
                if let Some(gone) = registered.remove(&path) {
                    tracing::info!(plugin = %gone.name, socket = %path.display(), "plugin deregistered");
                    handler.deregister(&gone.name).await;
                }
            }
            for (path, identity) in &sockets {
                if registered.contains_key(path)
                    || refused.get(path) == Some(identity)
                    || !accepts_connections(path)
                {
                    continue;
                }
                match handshake(path, handler.as_ref()).await {
                    Handshake::Registered(name) => {
                        registered.insert(
                            path.clone(),
                            Registered {
                                identity: *identity,
                                name,
                            },
                        );
                    }
                    Handshake::Invalid => {
                        refused.insert(path.clone(), *identity);
                    }
                    Handshake::Retry => {}
                }
            }
            refused.retain(|path, _| sockets.contains_key(path));
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(self.poll) => {}
            }
        }
        for (_, gone) in registered {
            handler.deregister(&gone.name).await;
        }
    }
}

/// Whether something listens on the socket (a dead plugin's socket refuses connections).
fn accepts_connections(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// The sockets in `dir` with their identity.
fn scan(dir: &Path) -> HashMap<PathBuf, SocketIdentity> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            meta.file_type().is_socket().then(|| {
                let identity = (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec());
                (entry.path(), identity)
            })
        })
        .collect()
}

/// Whether one of `versions` is a CSI version this node speaks (1.x).
fn speaks_csi_v1(versions: &[String]) -> bool {
    versions
        .iter()
        .any(|v| v.trim_start_matches('v').split('.').next() == Some("1"))
}

/// How a handshake ended.
enum Handshake {
    /// The plugin registered under this name.
    Registered(String),
    /// The plugin is not acceptable (told why); not asked again until its socket changes.
    Invalid,
    /// Not reachable, or the handler failed (told why): asked again at the next poll.
    Retry,
}

/// `GetInfo`, validation, the handler, and `NotifyRegistrationStatus`.
async fn handshake(path: &Path, handler: &dyn RegistrationHandler) -> Handshake {
    let mut client = RegistrationClient::new(socket::channel(path, HANDSHAKE_TIMEOUT));
    let info: PluginInfo = match client.get_info(InfoRequest {}).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            tracing::debug!(socket = %path.display(), %status, "plugin GetInfo failed");
            return Handshake::Retry;
        }
    };
    let invalid = if info.r#type != CSI_PLUGIN_TYPE {
        Some(format!("plugin type {:?} is not supported", info.r#type))
    } else if info.name.is_empty() {
        Some("plugin name is empty".to_owned())
    } else if !speaks_csi_v1(&info.supported_versions) {
        Some(format!(
            "none of the versions {:?} is supported (1.x)",
            info.supported_versions
        ))
    } else {
        None
    };
    let outcome = if let Some(reason) = &invalid {
        Err(reason.clone())
    } else {
        let endpoint = if info.endpoint.is_empty() {
            path.to_owned()
        } else {
            PathBuf::from(&info.endpoint)
        };
        handler
            .register(&info.name, &endpoint, &info.supported_versions)
            .await
    };
    let status = RegistrationStatus {
        plugin_registered: outcome.is_ok(),
        error: outcome.clone().err().unwrap_or_default(),
    };
    if let Err(status) = client.notify_registration_status(status).await {
        tracing::warn!(plugin = %info.name, %status, "NotifyRegistrationStatus failed");
    }
    match outcome {
        Ok(()) => {
            tracing::info!(plugin = %info.name, socket = %path.display(), "plugin registered");
            Handshake::Registered(info.name)
        }
        Err(reason) => {
            tracing::warn!(plugin = %info.name, %reason, "plugin registration refused");
            if invalid.is_some() {
                Handshake::Invalid
            } else {
                Handshake::Retry
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csi_versions_of_the_1_series_are_spoken() {
        assert!(speaks_csi_v1(&["1.0.0".to_owned()]));
        assert!(speaks_csi_v1(&["0.3.0".to_owned(), "v1.10.0".to_owned()]));
        assert!(!speaks_csi_v1(&["0.3.0".to_owned()]));
        assert!(!speaks_csi_v1(&[]));
    }
}

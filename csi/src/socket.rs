//! gRPC over unix sockets, the transport of CSI and of the kubelet plugin handshake.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tonic::transport::{Channel, Endpoint, Uri};

/// A channel to the socket at `path` that connects on first use (and again after the peer went
/// away), so a driver that is not up yet fails the call, not the construction. `timeout`
/// bounds each call.
#[must_use]
pub fn channel(path: &Path, timeout: Duration) -> Channel {
    let path: PathBuf = path.to_owned();
    // The URI is never dialled: the connector opens the socket; it only fills :authority.
    Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
}

/// Binds a listening socket at `path`, creating its directory and replacing a stale socket
/// left by an earlier run (a plugin killed without cleaning up).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    UnixListener::bind(path)
}

/// `tonic::transport::Error` displays only "transport error"; the cause is in its sources.
#[must_use]
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

//! The kubelet server: HTTPS on `address:port` (default `0.0.0.0:10250`) with authentication
//! and authorization ([`auth`]), and the read-only `/healthz` on
//! `healthzBindAddress:healthzPort` (default `127.0.0.1:10248`).
//!
//! | Path | What |
//! | --- | --- |
//! | `/healthz` | `ok` while the PLEG relists |
//! | `/pods` | the pods this node runs, as a `PodList` |
//! | `/containerLogs/{ns}/{pod}/{container}` | the container's log ([`crate::logs`]) |
//! | `/exec/...`, `/attach/...`, `/portForward/{ns}/{pod}` | streams through the runtime's streaming server ([`streaming`]) |
//! | `/metrics` | the kubelet's metrics ([`crate::metrics`]) |
//! | `/metrics/resource`, `/stats/summary` | CPU and memory of the node, pods and containers ([`stats`]) |

pub mod auth;
mod handlers;
mod listener;
pub mod stats;
pub mod streaming;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use ferrolet_cri::RuntimeService;
use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::KubeletConfiguration;

pub use auth::{Denied, Identity, KubeletAuth};
pub use handlers::HttpError;

/// The pods this node runs now.
pub type PodLister = Arc<dyn Fn() -> Vec<Arc<Pod>> + Send + Sync>;
/// The node's health for `/healthz`: the PLEG's.
pub type HealthCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the server serves from.
pub struct ServerContext {
    pub config: KubeletConfiguration,
    pub root_dir: PathBuf,
    pub node_name: String,
    pub host_name: String,
    pub node_ip: IpAddr,
    /// The API client for token and access reviews.
    pub client: Option<kube::Client>,
    pub runtime: Arc<dyn RuntimeService>,
    pub pods: PodLister,
    pub health: HealthCheck,
}

impl std::fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerContext")
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("kubelet server TLS")]
    Tls(#[from] tls::TlsError),
    #[error("listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The bound server, ready to run.
#[derive(Debug)]
pub struct KubeletServer {
    state: Arc<handlers::State>,
    tls: Arc<rustls::ServerConfig>,
    secure: TcpListener,
    healthz: Option<TcpListener>,
}

async fn bind(ip: IpAddr, port: i32) -> Result<TcpListener, ServerError> {
    let address = SocketAddr::new(ip, u16::try_from(port).unwrap_or_default());
    TcpListener::bind(address)
        .await
        .map_err(|source| ServerError::Listen { address, source })
}

impl KubeletServer {
    /// Loads (or makes) the serving certificate and binds both listeners.
    pub async fn bind(context: ServerContext) -> Result<Self, ServerError> {
        let config = &context.config;
        let (cert, key) = tls::serving_files(
            config.tls_cert_file.as_deref(),
            config.tls_private_key_file.as_deref(),
            &context.root_dir,
            &context.host_name,
            context.node_ip,
        )?;
        let tls = tls::server_config(
            &cert,
            &key,
            config.authentication.x509.client_ca_file.as_deref(),
        )?;
        let secure = bind(config.address, config.port).await?;
        let healthz = if config.healthz_port > 0 {
            Some(bind(config.healthz_bind_address, config.healthz_port).await?)
        } else {
            None
        };
        tracing::info!(address = %secure.local_addr().map(|a| a.to_string()).unwrap_or_default(), "kubelet server listening");
        Ok(KubeletServer {
            state: Arc::new(handlers::State::new(context)),
            tls: Arc::new(tls),
            secure,
            healthz,
        })
    }

    /// The HTTPS address.
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.secure.local_addr().ok()
    }

    /// Serves until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(healthz) = self.healthz {
            tasks.spawn(listener::serve_healthz(
                self.state.clone(),
                healthz,
                cancel.clone(),
            ));
        }
        tasks.spawn(listener::serve(
            self.state,
            self.secure,
            self.tls,
            cancel.clone(),
        ));
        while tasks.join_next().await.is_some() {}
    }
}

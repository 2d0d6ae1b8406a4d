//! `ferrolet csi-hostpath`: a CSI driver whose volumes are directories on the node
//! (`<state-dir>/volumes/<id>/data`), in one process with the two sidecars a CSI driver
//! usually needs:
//!
//! - the registrar ([`registrar`]): the kubelet plugin registration socket, as
//!   node-driver-registrar serves it;
//! - the provisioner ([`provisioner`], with `--kubeconfig`): watches
//!   `PersistentVolumeClaims` of `StorageClasses` whose provisioner is this driver, calls its
//!   own `CreateVolume` and creates the `PersistentVolume`; deletes released volumes under reclaimPolicy Delete. That
//!   is external-provisioner's design: the control plane never dials a driver's socket (it
//!   may not even run on the driver's host), the driver's side watches the API.

pub mod mounts;
pub mod node;
pub mod provisioner;
pub mod registrar;
pub mod services;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;

use ferrolet_proto::csi::v1::controller_server::ControllerServer;
use ferrolet_proto::csi::v1::identity_server::IdentityServer;
use ferrolet_proto::csi::v1::node_server::NodeServer;
use ferrolet_proto::pluginregistration::v1::registration_server::RegistrationServer;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::socket;

/// Settings of one driver instance.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// The CSI driver name (`hostpath.csi.ferrolet.io`).
    pub name: String,
    /// This node's id as the driver reports it (`NodeGetInfo`).
    pub node_id: String,
    /// The CSI socket.
    pub endpoint: PathBuf,
    /// Where the registration socket goes (`<kubelet-root>/plugins_registry`); `None`: the
    /// driver does not register itself.
    pub registry_dir: Option<PathBuf>,
    /// Where volumes live.
    pub state_dir: PathBuf,
    /// Bytes all volumes may have together.
    pub capacity_bytes: u64,
    /// How long each `NodePublishVolume` waits before it mounts (simulates slow storage).
    pub publish_delay: std::time::Duration,
}

/// A failure to start or run the driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("open the volume store: {0}")]
    Store(#[from] store::StoreError),
    #[error("listen on {}: {source}", path.display())]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serve {}: {}", path.display(), socket::error_chain(source))]
    Serve {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
}

impl DriverOptions {
    /// The registration socket, `<registry_dir>/<name>-reg.sock`.
    #[must_use]
    pub fn registration_socket(&self) -> Option<PathBuf> {
        self.registry_dir
            .as_ref()
            .map(|dir| dir.join(format!("{}-reg.sock", self.name)))
    }
}

/// Serves the driver (and registers it) until `cancel`; removes its sockets when done. With
/// `client`, runs the provisioner too.
pub async fn run(
    options: DriverOptions,
    client: Option<kube::Client>,
    cancel: CancellationToken,
) -> Result<(), DriverError> {
    let store = Arc::new(store::VolumeStore::open(
        &options.state_dir,
        options.capacity_bytes,
    )?);
    let listen = |path: &PathBuf| {
        socket::bind(path).map_err(|source| DriverError::Listen {
            path: path.clone(),
            source,
        })
    };
    let csi_listener = listen(&options.endpoint)?;
    let csi = Server::builder()
        .add_service(IdentityServer::new(services::IdentityService {
            name: options.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
        .add_service(ControllerServer::new(services::ControllerService {
            store: store.clone(),
        }))
        .add_service(NodeServer::new(node::NodeService {
            node_id: options.node_id.clone(),
            store: store.clone(),
            lock: tokio::sync::Mutex::new(()),
            publish_delay: options.publish_delay,
        }))
        .serve_with_incoming_shutdown(
            UnixListenerStream::new(csi_listener),
            cancel.clone().cancelled_owned(),
        );
    tracing::info!(driver = %options.name, endpoint = %options.endpoint.display(), "serving CSI");
    let mut tasks = tokio::task::JoinSet::new();
    let endpoint = options.endpoint.clone();
    tasks.spawn(async move {
        csi.await.map_err(|source| DriverError::Serve {
            path: endpoint,
            source,
        })
    });
    // The registration socket comes last: once the kubelet sees it, CSI must answer.
    let registration = options.registration_socket();
    if let Some(path) = &registration {
        let listener = listen(path)?;
        let server = Server::builder()
            .add_service(RegistrationServer::new(registrar::Registrar {
                driver_name: options.name.clone(),
                endpoint: options.endpoint.clone(),
            }))
            .serve_with_incoming_shutdown(
                UnixListenerStream::new(listener),
                cancel.clone().cancelled_owned(),
            );
        let path = path.clone();
        tasks.spawn(async move {
            server
                .await
                .map_err(|source| DriverError::Serve { path, source })
        });
    }
    if let Some(client) = client {
        let provisioner = provisioner::Provisioner::new(client, &options.name, &options.endpoint);
        let cancel = cancel.clone();
        tasks.spawn(async move {
            provisioner.run(cancel).await;
            Ok(())
        });
    }
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        if let Ok(Err(err)) = joined {
            cancel.cancel();
            outcome = outcome.and(Err(err));
        }
    }
    for path in registration.iter().chain([&options.endpoint]) {
        let _ = std::fs::remove_file(path);
    }
    outcome
}

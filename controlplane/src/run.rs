//! The whole control plane in one process: PKI and kubeconfig, the store, the API server on
//! HTTPS, store compaction, and the scheduler and controllers as in-process clients of the
//! API (through a loopback identity, like kube-apiserver's loopback client).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::access::Access;
use crate::api::{ApiConfig, ApiServer};
use crate::auth::{
    Authenticator, ClusterPki, Kubeconfig, ServiceAccountIssuerConfig, ServiceAccountTokenIssuer,
    ServingIdentity, StaticTokens, SystemClock,
};
use crate::controllers::node_lifecycle::NodeLifecycleConfig;
use crate::scheduler::SchedulerConfig;
use crate::store::Store;
use crate::store::embedded::EmbeddedStore;
use crate::store::etcd::{EtcdConfig, EtcdStore};

/// Settings of `ferrolet control-plane`.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// Where the PKI, the embedded store and the admin kubeconfig live.
    pub data_dir: PathBuf,
    /// The address the API server listens on.
    pub bind_address: IpAddr,
    pub secure_port: u16,
    /// The address nodes and clients reach the API server at (kubeconfig, `kubernetes`
    /// endpoints); the bind address when unset and not a wildcard.
    pub advertise_address: Option<IpAddr>,
    /// etcd v3 endpoints; the embedded store when empty.
    pub etcd_servers: Vec<String>,
    pub service_cidr: String,
    /// A kube-apiserver `--token-auth-file`.
    pub token_auth_file: Option<PathBuf>,
    /// Where to write the admin kubeconfig (default `<data dir>/admin.kubeconfig`).
    pub kubeconfig_out: Option<PathBuf>,
    /// Kubeconfigs to write for nodes, as (node name, path): a client certificate for
    /// `CN=system:node:<name>, O=system:nodes`, what `kubeadm kubeconfig user` gives a kubelet.
    pub node_kubeconfigs: Vec<(String, PathBuf)>,
    pub node_monitor_grace_period: Duration,
    pub pod_eviction_timeout: Duration,
    /// How often store history older than the previous run of compaction is dropped.
    pub compaction_interval: Duration,
    /// Changes the watch cache keeps for resuming watches.
    pub watch_cache_capacity: usize,
}

impl ControlPlaneConfig {
    /// Defaults for a data directory.
    #[must_use]
    pub fn new(data_dir: PathBuf) -> Self {
        ControlPlaneConfig {
            data_dir,
            bind_address: IpAddr::from([127, 0, 0, 1]),
            secure_port: 6443,
            advertise_address: None,
            etcd_servers: Vec::new(),
            service_cidr: "10.96.0.0/12".into(),
            token_auth_file: None,
            kubeconfig_out: None,
            node_kubeconfigs: Vec::new(),
            node_monitor_grace_period: Duration::from_secs(50),
            pod_eviction_timeout: Duration::from_mins(5),
            compaction_interval: Duration::from_mins(5),
            watch_cache_capacity: 100_000,
        }
    }

    fn advertise(&self) -> IpAddr {
        self.advertise_address
            .unwrap_or(if self.bind_address.is_unspecified() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                self.bind_address
            })
    }

    /// The admin kubeconfig path.
    #[must_use]
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.kubeconfig_out
            .clone()
            .unwrap_or_else(|| self.data_dir.join("admin.kubeconfig"))
    }
}

/// Errors starting the control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("create data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cluster PKI in {path}")]
    Pki {
        path: PathBuf,
        #[source]
        source: crate::auth::PkiError,
    },
    #[error("write kubeconfig {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: crate::auth::KubeconfigError,
    },
    #[error("read token file {path}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: crate::auth::TokenFileError,
    },
    #[error("service account signing key")]
    ServiceAccountKey(#[source] crate::auth::TokenError),
    #[error("open the embedded store in {path}")]
    EmbeddedStore {
        path: PathBuf,
        #[source]
        source: crate::store::embedded::OpenError,
    },
    #[error("connect to etcd {endpoints:?}")]
    Etcd {
        endpoints: Vec<String>,
        #[source]
        source: crate::store::etcd::ConnectError,
    },
    #[error("start the API server: {0}")]
    ApiServer(String),
    #[error("listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("build the loopback client")]
    LoopbackClient(#[source] kube::Error),
}

/// Writes the kubeconfigs of `--node-kubeconfig`, each with a new client certificate.
fn write_node_kubeconfigs(
    config: &ControlPlaneConfig,
    pki: &ClusterPki,
    server_url: &str,
) -> Result<(), Error> {
    for (node, path) in &config.node_kubeconfigs {
        let user = format!("system:node:{node}");
        let certificate = pki
            .issue_client_certificate(&user, &["system:nodes"], Duration::from_hours(24 * 365))
            .map_err(|source| Error::Pki {
                path: pki.dir().to_owned(),
                source,
            })?;
        Kubeconfig::for_client_certificate(pki, server_url, &user, &certificate)
            .write_to(path)
            .map_err(|source| Error::Kubeconfig {
                path: path.clone(),
                source,
            })?;
    }
    Ok(())
}

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    pub address: SocketAddr,
    pub server: Arc<ApiServer>,
    tasks: tokio::task::JoinSet<()>,
    cancel: CancellationToken,
    store: Option<Arc<EmbeddedStore>>,
}

impl ControlPlane {
    /// Starts everything; returns once the API server listens.
    pub async fn start(
        config: ControlPlaneConfig,
        cancel: CancellationToken,
    ) -> Result<Self, Error> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let services = crate::registry::ServiceIpAllocator::new(&config.service_cidr)
            .map_err(Error::ApiServer)?;
        let advertise = config.advertise();
        let mut identity = ServingIdentity::for_service_ip(IpAddr::V4(services.first()));
        identity.ip_addresses.push(advertise);
        if !config.bind_address.is_unspecified() {
            identity.ip_addresses.push(config.bind_address);
        }
        let pki_dir = config.data_dir.join("pki");
        let pki = ClusterPki::load_or_create(&pki_dir, &identity).map_err(|source| Error::Pki {
            path: pki_dir.clone(),
            source,
        })?;

        let address = SocketAddr::new(config.bind_address, config.secure_port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| Error::Listen { address, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| Error::Listen { address, source })?;
        // With port 0 the kernel picks one: clients learn the real port.
        let server_url = format!("https://{}", SocketAddr::new(advertise, address.port()));
        let kubeconfig = config.kubeconfig_path();
        Kubeconfig::admin(&pki, &server_url)
            .write_to(&kubeconfig)
            .map_err(|source| Error::Kubeconfig {
                path: kubeconfig.clone(),
                source,
            })?;

        write_node_kubeconfigs(&config, &pki, &server_url)?;

        let (access, loopback_token) = authentication(&config, &pki)?;
        let (store, embedded) = open_store(&config).await?;
        let api_config = ApiConfig {
            service_cidr: config.service_cidr.clone(),
            advertise_address: SocketAddr::new(advertise, address.port()).to_string(),
            ca_pem: Some(pki.ca_certificate_pem().to_owned()),
            cache_capacity: config.watch_cache_capacity,
            ..ApiConfig::default()
        };
        let kubelet_cert = pki
            .issue_client_certificate(
                "kube-apiserver-kubelet-client",
                &["system:masters"],
                Duration::from_hours(24 * 365),
            )
            .map_err(|source| Error::Pki {
                path: pki_dir.clone(),
                source,
            })?;
        let kubelet_client = crate::api::proxy::KubeletClient::new(
            &kubelet_cert.certificate_pem,
            &kubelet_cert.key_pem,
        )
        .map_err(Error::ApiServer)?;
        let server = ApiServer::new(
            store.clone(),
            api_config,
            Some(access),
            Some(kubelet_client),
            cancel.clone(),
        )
        .await
        .map_err(Error::ApiServer)?;
        server
            .bootstrap()
            .await
            .map_err(|e| Error::ApiServer(e.to_string()))?;

        let tls = pki.server_config().map_err(|source| Error::Pki {
            path: pki_dir,
            source,
        })?;
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(crate::api::serve::serve(
            server.clone(),
            listener,
            Some(Arc::new(tls)),
            cancel.clone(),
        ));
        tasks.spawn(compact(store, config.compaction_interval, cancel.clone()));

        let client = loopback_client(&pki, address, &loopback_token)?;
        spawn_controllers(&mut tasks, &client, &config, &cancel);
        Ok(ControlPlane {
            kubeconfig,
            address,
            server,
            tasks,
            cancel,
            store: embedded,
        })
    }

    /// Stops everything and waits for it; the embedded store is closed cleanly.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
        if let Some(store) = self.store.take() {
            store.close().await;
        }
    }
}

/// The authenticator (client certificates, the token file, service-account tokens) and the
/// loopback token the in-process controllers use.
fn authentication(
    config: &ControlPlaneConfig,
    pki: &ClusterPki,
) -> Result<(Access, String), Error> {
    let mut tokens = match &config.token_auth_file {
        Some(path) => StaticTokens::load(path).map_err(|source| Error::TokenFile {
            path: path.clone(),
            source,
        })?,
        None => StaticTokens::default(),
    };
    let loopback_token = uuid::Uuid::new_v4().simple().to_string();
    tokens.insert(
        &loopback_token,
        crate::auth::UserInfo {
            name: "system:apiserver".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        },
    );
    let issuer = ServiceAccountTokenIssuer::new(
        pki.service_account_key_pem(),
        ServiceAccountIssuerConfig::default(),
        Arc::new(SystemClock),
    )
    .map_err(Error::ServiceAccountKey)?;
    let issuer = Arc::new(issuer);
    let access = Access {
        authenticator: Arc::new(Authenticator::new(tokens, Some(issuer.clone()), true)),
        issuer: Some(issuer),
    };

    Ok((access, loopback_token))
}

/// The embedded store in the data directory, or etcd when endpoints are given.
async fn open_store(
    config: &ControlPlaneConfig,
) -> Result<(Arc<dyn Store>, Option<Arc<EmbeddedStore>>), Error> {
    let opened: (Arc<dyn Store>, Option<Arc<EmbeddedStore>>) = if config.etcd_servers.is_empty() {
        let dir = config.data_dir.join("store");
        let store = EmbeddedStore::open(&dir)
            .await
            .map_err(|source| Error::EmbeddedStore { path: dir, source })?;
        let store = Arc::new(store);
        (store.clone(), Some(store))
    } else {
        let store = EtcdStore::connect(EtcdConfig::new(config.etcd_servers.clone()))
            .await
            .map_err(|source| Error::Etcd {
                endpoints: config.etcd_servers.clone(),
                source,
            })?;
        (Arc::new(store), None)
    };

    Ok(opened)
}

/// How long controllers may take to stop by themselves.
const CONTROLLER_STOP_GRACE: Duration = Duration::from_secs(2);

/// The scheduler, the node lifecycle and the namespace controllers.
///
/// When `cancel` fires each gets a moment to stop by itself and is then aborted: the API
/// server stops at the same time, and a controller in the middle of a request to it would
/// otherwise wait for the client's read timeout and hold up the process's exit.
fn spawn_controllers(
    tasks: &mut tokio::task::JoinSet<()>,
    client: &kube::Client,
    config: &ControlPlaneConfig,
    cancel: &CancellationToken,
) {
    let mut controllers = tokio::task::JoinSet::new();
    spawn_each_controller(&mut controllers, client, config, cancel);
    let cancel = cancel.clone();
    tasks.spawn(async move {
        cancel.cancelled().await;
        let stopped = async { while controllers.join_next().await.is_some() {} };
        if tokio::time::timeout(CONTROLLER_STOP_GRACE, stopped)
            .await
            .is_err()
        {
            tracing::warn!("controllers still busy after the stop grace; aborting them");
        }
        controllers.shutdown().await;
    });
}

fn spawn_each_controller(
    tasks: &mut tokio::task::JoinSet<()>,
    client: &kube::Client,
    config: &ControlPlaneConfig,
    cancel: &CancellationToken,
) {
    let scheduler_cancel = cancel.clone();
    let scheduler_client = client.clone();
    tasks.spawn(async move {
        if let Err(err) = crate::scheduler::run(
            scheduler_client,
            SchedulerConfig::default(),
            scheduler_cancel,
        )
        .await
        {
            tracing::error!(%err, "scheduler stopped");
        }
    });
    let lifecycle = NodeLifecycleConfig {
        grace_period: config.node_monitor_grace_period,
        pod_eviction_timeout: config.pod_eviction_timeout,
        ..NodeLifecycleConfig::default()
    };
    let lifecycle_cancel = cancel.clone();
    let lifecycle_client = client.clone();
    tasks.spawn(async move {
        let controller = Box::pin(crate::controllers::node_lifecycle::run(
            lifecycle_client,
            lifecycle,
            lifecycle_cancel,
        ));
        if let Err(err) = controller.await {
            tracing::error!(%err, "node lifecycle controller stopped");
        }
    });
    tasks.spawn(crate::controllers::namespace::run(
        client.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::persistent_volume::run(
        client.clone(),
        cancel.clone(),
    ));
}

/// A kube client that talks to this API server as `system:apiserver`.
fn loopback_client(
    pki: &ClusterPki,
    address: SocketAddr,
    token: &str,
) -> Result<kube::Client, Error> {
    let host = if address.ip().is_unspecified() {
        SocketAddr::new(IpAddr::from([127, 0, 0, 1]), address.port())
    } else {
        address
    };
    let url: http::Uri = format!("https://{host}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| Error::ApiServer(format!("loopback URL: {e}")))?;
    let mut config = kube::Config::new(url);
    config.root_cert = Some(vec![pki.ca_certificate_der().to_vec()]);
    config.auth_info.token = Some(token.to_owned().into());
    config.read_timeout = None;
    kube::Client::try_from(config).map_err(Error::LoopbackClient)
}

/// Drops store history older than one interval, like kube-apiserver's periodic etcd
/// compaction.
async fn compact(store: Arc<dyn Store>, interval: Duration, cancel: CancellationToken) {
    let mut previous = None;
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Some(revision) = previous
            && let Err(err) = store.compact(revision).await
        {
            tracing::warn!(%err, revision, "compaction failed");
        }
        previous = store.current_revision().await.ok();
    }
}

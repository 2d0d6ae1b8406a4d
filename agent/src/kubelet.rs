//! The node agent as a whole: connects to the API server and the runtime, registers the node,
//! keeps its status and lease, and runs the pods bound to it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrolet_cri::{ConnectOptions, RemoteRuntime, RuntimeEndpoint, RuntimeService};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{CgroupDriver as ConfigCgroupDriver, KubeletConfiguration};
use crate::events::EventRecorder;
use crate::images::ImageManager;
use crate::kuberuntime::{CgroupDriver, DnsContext, ResourceContext};
use crate::node::{HostInfo, LeaseRenewer, LinuxHost, NodeIdentity, NodeStatusManager};
use crate::pleg::{Pleg, PodLifecycleEvent};
use crate::pods::node_context::NodeContext;
use crate::pods::status_manager::StatusManager;
use crate::pods::sync::PodSyncer;
use crate::pods::workers::PodWorkers;
use crate::prober::ProbeManager;
use crate::sources::{self, PodUpdate};
use crate::status::{ContainerBackoff, ImagePullBackoff};
use crate::volumes::{KubeVolumeSources, VolumeManager};

/// How the agent is started (`ferrolet node` flags plus the configuration file).
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    pub config: KubeletConfiguration,
    pub kubeconfig: PathBuf,
    /// The Node's name (default: the host name, lowercased).
    pub node_name: Option<String>,
    /// The node's IP (default: the address the API server is reached from).
    pub node_ip: Option<IpAddr>,
    /// The agent's state directory (pods' volumes, etc-hosts, termination messages).
    pub root_dir: PathBuf,
    /// How often the PLEG relists when the runtime streams no events.
    pub pleg_relist_period: Duration,
}

/// Errors starting the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read kubeconfig {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("build the API client from {path}")]
    Client {
        path: PathBuf,
        #[source]
        source: kube::Error,
    },
    #[error("container runtime endpoint")]
    Endpoint(#[source] ferrolet_cri::Error),
    #[error("connect to the container runtime")]
    Runtime(#[source] ferrolet_cri::Error),
    #[error("register node {node}")]
    Register {
        node: String,
        #[source]
        source: crate::node::Error,
    },
    #[error("prepare the volume directory")]
    Volumes(#[source] crate::volumes::VolumeError),
    #[error("find the node's address: {0}")]
    NodeAddress(String),
    #[error("start the kubelet server")]
    Server(#[source] crate::server::ServerError),
}

fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
        .to_lowercase()
}

/// The local address used to reach the API server: the node's IP unless given.
fn address_towards(server: &http::Uri) -> Result<IpAddr, String> {
    let host = server
        .host()
        .ok_or("the API server URL has no host")?
        .trim_matches(['[', ']']);
    let port = server.port_u16().unwrap_or(443);
    let target = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let bind = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = std::net::UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    socket.connect(target).map_err(|e| e.to_string())?;
    Ok(socket.local_addr().map_err(|e| e.to_string())?.ip())
}

/// Reads the kubeconfig: the client and the server's URL.
async fn api_client(path: &Path) -> Result<(kube::Client, http::Uri), Error> {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
            path: path.to_owned(),
            source,
        })?;
    let client_config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|source| Error::Kubeconfig {
        path: path.to_owned(),
        source,
    })?;
    let server = client_config.cluster_url.clone();
    let client = kube::Client::try_from(client_config).map_err(|source| Error::Client {
        path: path.to_owned(),
        source,
    })?;
    Ok((client, server))
}

/// Connects to the container runtime the configuration names.
async fn connect_runtime(config: &KubeletConfiguration) -> Result<RemoteRuntime, Error> {
    let endpoint =
        RuntimeEndpoint::parse(&config.container_runtime_endpoint).map_err(Error::Endpoint)?;
    let connect = ConnectOptions {
        connect_timeout: Duration::from_mins(1),
        request_timeout: config.runtime_request_timeout.0,
        image_endpoint: config
            .image_service_endpoint
            .as_deref()
            .map(RuntimeEndpoint::parse)
            .transpose()
            .map_err(Error::Endpoint)?,
        ..ConnectOptions::default()
    };
    let remote = RemoteRuntime::connect(&endpoint, connect)
        .await
        .map_err(Error::Runtime)?;
    tracing::info!(runtime = %remote.runtime_version().runtime_name, version = %remote.runtime_version().runtime_version, %endpoint, "connected to the container runtime");
    Ok(remote)
}

/// What the pod workers know of the node.
fn node_context(
    options: &KubeletOptions,
    node_name: &str,
    node_ip: IpAddr,
    runtime_name: String,
    host: &dyn HostInfo,
    allocatable: BTreeMap<String, Quantity>,
) -> NodeContext {
    let config = &options.config;
    let memory = host.snapshot().ok().map_or(0, |s| {
        i64::try_from(s.memory_total_bytes).unwrap_or(i64::MAX)
    });
    NodeContext {
        node_name: node_name.to_owned(),
        node_ips: vec![node_ip.to_string()],
        runtime_name,
        root_dir: options.root_dir.to_string_lossy().into_owned(),
        pod_logs_dir: config.pod_logs_dir.to_string_lossy().into_owned(),
        cgroup_root: config.cgroup_root.clone(),
        cgroups_per_qos: config.cgroups_per_qos,
        cgroup_driver: match config.cgroup_driver {
            ConfigCgroupDriver::Cgroupfs => CgroupDriver::Cgroupfs,
            ConfigCgroupDriver::Systemd => CgroupDriver::Systemd,
        },
        dns: DnsContext {
            cluster_dns: config.cluster_dns.iter().map(ToString::to_string).collect(),
            cluster_domain: config.cluster_domain.clone(),
            host_resolv_conf: (!config.resolv_conf.as_os_str().is_empty())
                .then(|| std::fs::read_to_string(&config.resolv_conf).unwrap_or_default()),
            node_ips: vec![node_ip.to_string()],
        },
        resources: ResourceContext::new(memory),
        allocatable,
    }
}

/// Runs the agent until `cancel`.
pub async fn run(options: KubeletOptions, cancel: CancellationToken) -> Result<(), Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = &options.config;
    let (client, server) = api_client(&options.kubeconfig).await?;
    let remote = Arc::new(connect_runtime(config).await?);
    let runtime: Arc<dyn RuntimeService> =
        Arc::new(crate::metrics::InstrumentedRuntime::new(remote.clone()));

    let node_name = options.node_name.clone().unwrap_or_else(host_name);
    let node_ip = match options.node_ip {
        Some(ip) => ip,
        None => address_towards(&server).map_err(Error::NodeAddress)?,
    };
    let host: Arc<dyn HostInfo> = Arc::new(LinuxHost::new(&options.root_dir));
    let identity = NodeIdentity {
        node_name: node_name.clone(),
        hostname: host_name(),
        node_ip,
    };
    let pleg = Arc::new(Pleg::new(runtime.clone(), options.pleg_relist_period));
    let pleg_health = pleg.clone();
    let mut node_status = NodeStatusManager::new(
        client.clone(),
        identity,
        config,
        host.clone(),
        runtime.clone(),
    )
    .with_pleg_health(Arc::new(move || pleg_health.healthy()));
    let node = node_status
        .register()
        .await
        .map_err(|source| Error::Register {
            node: node_name.clone(),
            source,
        })?;
    tracing::info!(node = %node_name, %node_ip, "node registered");
    let node_object = node.clone();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(node_status.run(cancel.clone()));
    tasks.spawn(LeaseRenewer::from_config(client.clone(), &node_name, config).run(cancel.clone()));

    let volumes = volume_manager(&options, &client, &node_name, &mut tasks, &cancel)?;
    let events = EventRecorder::new(Some(client.clone()), &node_name);
    // Probe results that change wake the pod's worker.
    let (probe_tx, probe_wakes) = mpsc::unbounded_channel::<String>();
    let probes = Arc::new(ProbeManager::new(
        runtime.clone(),
        events.clone(),
        Box::new(move |uid| {
            let _ = probe_tx.send(uid.to_owned());
        }),
        cancel.clone(),
    ));
    let syncer = Arc::new(PodSyncer {
        runtime: runtime.clone(),
        images: ImageManager::new(remote.clone()),
        volumes: Arc::new(volumes),
        client: Some(client.clone()),
        events,
        node: node_context(
            &options,
            &node_name,
            node_ip,
            remote.runtime_version().runtime_name.clone(),
            host.as_ref(),
            node.status
                .as_ref()
                .and_then(|s| s.allocatable.clone())
                .unwrap_or_default(),
        ),
        backoff: Mutex::new(ContainerBackoff::new()),
        image_backoff: Mutex::new(ImagePullBackoff::new()),
        probes,
    });
    let (node_tx, node_rx) = watch::channel(Some(Arc::new(node_object)));
    tasks.spawn(watch_node(
        client.clone(),
        node_name.clone(),
        node_tx,
        cancel.clone(),
    ));
    let workers = PodWorkers::new(
        syncer.clone(),
        Arc::new(StatusManager::new(Some(client.clone()))),
        Some(client.clone()),
        node_rx,
        usize::try_from(config.max_pods).unwrap_or(110),
        cancel.clone(),
    );

    let server = kubelet_server(
        &options, &node_name, node_ip, &client, &runtime, &workers, &pleg,
    )
    .await?;
    tasks.spawn(server.run(cancel.clone()));
    tasks.spawn(
        crate::logs::ContainerLogManager::from_config(runtime.clone(), config).run(cancel.clone()),
    );

    let (updates_tx, updates) = mpsc::channel(256);
    tasks.spawn(sources::watch_api(
        client.clone(),
        node_name.clone(),
        updates_tx.clone(),
        cancel.clone(),
    ));
    if let Some(dir) = &config.static_pod_path {
        tasks.spawn(sources::watch_files(
            dir.clone(),
            node_name.clone(),
            config.file_check_frequency.0,
            updates_tx.clone(),
            cancel.clone(),
        ));
    }
    drop(updates_tx);
    let (events_tx, pleg_events) = mpsc::channel(1024);
    tasks.spawn(pleg.clone().run(events_tx, cancel.clone()));
    let wakes = Wakes {
        pleg: pleg_events,
        probes: probe_wakes,
    };
    dispatch(updates, wakes, &pleg, &workers, &syncer, &cancel).await;
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Binds the kubelet server: `/pods` from the pod workers, `/healthz` from the PLEG.
async fn kubelet_server(
    options: &KubeletOptions,
    node_name: &str,
    node_ip: IpAddr,
    client: &kube::Client,
    runtime: &Arc<dyn RuntimeService>,
    workers: &Arc<PodWorkers>,
    pleg: &Arc<Pleg>,
) -> Result<crate::server::KubeletServer, Error> {
    let (workers, pleg) = (workers.clone(), pleg.clone());
    crate::server::KubeletServer::bind(crate::server::ServerContext {
        config: options.config.clone(),
        root_dir: options.root_dir.clone(),
        node_name: node_name.to_owned(),
        host_name: host_name(),
        node_ip,
        client: Some(client.clone()),
        runtime: runtime.clone(),
        pods: Arc::new(move || workers.pods()),
        health: Arc::new(move || pleg.healthy()),
    })
    .await
    .map_err(Error::Server)
}

/// The volume manager on `<root>`, with the CSI plugin watcher on `<root>/plugins_registry`
/// (where CSI drivers register, as with the kubelet) running in `tasks`.
fn volume_manager(
    options: &KubeletOptions,
    client: &kube::Client,
    node_name: &str,
    tasks: &mut tokio::task::JoinSet<()>,
    cancel: &CancellationToken,
) -> Result<VolumeManager, Error> {
    std::fs::create_dir_all(&options.root_dir).ok();
    let csi_drivers = Arc::new(crate::csi::CsiDrivers::default());
    tasks.spawn(
        ferrolet_csi::PluginWatcher::new(options.root_dir.join("plugins_registry")).run(
            Arc::new(crate::csi::CsiRegistration::new(
                csi_drivers.clone(),
                Some(client.clone()),
                node_name,
            )),
            cancel.clone(),
        ),
    );
    let volumes = VolumeManager::new(
        &options.root_dir,
        Arc::new(KubeVolumeSources::new(client.clone())),
    )
    .with_csi_drivers(csi_drivers);
    volumes.make_root_shared().map_err(Error::Volumes)?;
    Ok(volumes)
}

/// Keeps `node` current with this node's object in the API (labels and allocatable, for
/// admission).
async fn watch_node(
    client: kube::Client,
    name: String,
    node: watch::Sender<Option<Arc<Node>>>,
    cancel: CancellationToken,
) {
    use futures::StreamExt as _;
    use kube::runtime::watcher::{self, Event};
    let api: kube::Api<Node> = kube::Api::all(client);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher::watcher(api, config));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            event = events.next() => match event {
                Some(Ok(Event::Apply(object) | Event::InitApply(object))) => {
                    node.send_replace(Some(Arc::new(object)));
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    tracing::debug!(node = %name, %err, "watch the node");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                None => return,
            },
        }
    }
}

/// Hands pod updates and runtime events to the pod workers; once the sources have synced,
/// removes what belongs to no pod every two seconds.
/// What wakes a pod's worker besides its updates: runtime events and probe results.
struct Wakes {
    pleg: mpsc::Receiver<PodLifecycleEvent>,
    probes: mpsc::UnboundedReceiver<String>,
}

async fn dispatch(
    mut updates: mpsc::Receiver<PodUpdate>,
    mut wakes: Wakes,
    pleg: &Pleg,
    workers: &Arc<PodWorkers>,
    syncer: &PodSyncer,
    cancel: &CancellationToken,
) {
    let mut sources_synced = false;
    let mut housekeeping = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            update = updates.recv() => match update {
                Some(PodUpdate::Set(pod)) => workers.update(pod),
                Some(PodUpdate::Removed { uid }) => workers.removed(&uid),
                Some(PodUpdate::Mirror(pod)) => workers.mirror(pod),
                Some(PodUpdate::Synced) => sources_synced = true,
                None => break,
            },
            event = wakes.pleg.recv() => if let Some(event) = event {
                workers.wake(&event.pod_uid);
            },
            Some(uid) = wakes.probes.recv() => workers.wake(&uid),
            _ = housekeeping.tick(), if sources_synced => {
                remove_orphans(pleg, workers, syncer).await;
            }
        }
    }
}

/// Sandboxes and containers of pods this node does not run (any more) are removed, and so are
/// the volume directories of pods nobody knows.
async fn remove_orphans(pleg: &Pleg, workers: &PodWorkers, syncer: &PodSyncer) {
    let known = workers.known();
    let in_runtime: BTreeSet<String> = match pleg.pods_in_runtime().await {
        Ok(uids) => uids,
        Err(err) => {
            tracing::debug!(%err, "list pods in the runtime");
            return;
        }
    };
    for uid in in_runtime.difference(&known) {
        tracing::info!(pod_uid = %uid, "removing orphaned pod from the runtime");
        if let Err(err) = syncer.cleanup(uid).await {
            tracing::warn!(pod_uid = %uid, %err, "remove orphaned pod");
        }
    }
    let live = known.iter().cloned().collect();
    if let Err(err) = syncer.volumes.cleanup_orphans(&live).await {
        tracing::debug!(%err, "clean orphaned volume directories");
    }
}

//! `ferrolet control-plane`: the companion control plane (API server, store, scheduler,
//! controllers) in the foreground until SIGINT or SIGTERM.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ferrolet_controlplane::run::{ControlPlane, ControlPlaneConfig};
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug)]
pub struct ControlPlaneArgs {
    /// Where the cluster PKI, the embedded store and the admin kubeconfig live.
    #[arg(
        long,
        env = "FERROLET_CONTROL_PLANE_DIR",
        default_value = "/var/lib/ferrolet/control-plane"
    )]
    data_dir: PathBuf,
    /// The address the API server listens on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// The HTTPS port (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// The address clients and nodes reach the API server at (default: the bind address,
    /// or 127.0.0.1 when that is a wildcard).
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// etcd v3 endpoints (comma-separated http URLs); the embedded store when not given.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// The range Service cluster IPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: String,
    /// A kube-apiserver style static token file (token,user,uid,"group1,group2").
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Where to write the admin kubeconfig (default: <data-dir>/admin.kubeconfig).
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Write a kubeconfig for node NAME at PATH (`NAME=PATH`, repeatable): a client
    /// certificate for `system:node:NAME` in `system:nodes`, for `ferrolet node --kubeconfig`.
    #[arg(long, value_name = "NAME=PATH", value_parser = parse_node_kubeconfig)]
    node_kubeconfig: Vec<(String, PathBuf)>,
    /// How long a node may go without renewing its Lease before it is marked unreachable.
    #[arg(long, default_value = "50s", value_parser = crate::cri_cmd::parse_duration)]
    node_monitor_grace_period: Duration,
    /// How long pods stay on an unreachable node unless they tolerate it longer.
    #[arg(long, default_value = "5m", value_parser = crate::cri_cmd::parse_duration)]
    pod_eviction_timeout: Duration,
    /// How often store history is compacted.
    #[arg(long, default_value = "5m", value_parser = crate::cri_cmd::parse_duration)]
    compaction_interval: Duration,
}

fn parse_node_kubeconfig(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_owned(), PathBuf::from(path)))
        }
        _ => Err(format!("expected NAME=PATH, got {value:?}")),
    }
}

pub async fn run(args: ControlPlaneArgs) -> anyhow::Result<()> {
    let mut config = ControlPlaneConfig::new(args.data_dir);
    config.bind_address = args.bind_address;
    config.secure_port = args.secure_port;
    config.advertise_address = args.advertise_address;
    config.etcd_servers = args.etcd_servers;
    config.service_cidr = args.service_cluster_ip_range;
    config.token_auth_file = args.token_auth_file;
    config.kubeconfig_out = args.kubeconfig_out;
    config.node_kubeconfigs = args.node_kubeconfig;
    config.node_monitor_grace_period = args.node_monitor_grace_period;
    config.pod_eviction_timeout = args.pod_eviction_timeout;
    config.compaction_interval = args.compaction_interval;
    let cancel = CancellationToken::new();
    let control_plane = ControlPlane::start(config, cancel.clone()).await?;
    tracing::info!(address = %control_plane.address, "API server listening");
    println!("admin kubeconfig: {}", control_plane.kubeconfig.display());
    println!("API server: https://{}", control_plane.address);
    shutdown_signal().await;
    tracing::info!("stopping");
    control_plane.stop().await;
    Ok(())
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async {
            match term.as_mut() {
                Some(term) => { term.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

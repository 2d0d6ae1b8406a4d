//! `ferrolet node`: the node agent (kubelet), in the foreground until SIGINT or SIGTERM.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use ferrolet_agent::config::KubeletConfiguration;
use ferrolet_agent::kubelet::{self, KubeletOptions};
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// A `KubeletConfiguration` file (kubelet.config.k8s.io/v1beta1); the kubelet's defaults
    /// without one.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The kubeconfig to reach the API server with.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// The Node's name (default: the host name).
    #[arg(long = "hostname-override", alias = "node-name")]
    node_name: Option<String>,
    /// The node's IP (default: the local address towards the API server).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// The agent's state directory.
    #[arg(long, default_value = "/var/lib/ferrolet")]
    root_dir: PathBuf,
    /// Overrides containerRuntimeEndpoint of the configuration.
    #[arg(long)]
    container_runtime_endpoint: Option<String>,
    /// How often the runtime is relisted when it streams no container events.
    #[arg(long, default_value = "1s", value_parser = crate::cri_cmd::parse_duration)]
    pleg_relist_period: Duration,
}

pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => {
            let loaded = KubeletConfiguration::load(path)?;
            for warning in &loaded.warnings {
                tracing::warn!(config = %path.display(), "{warning}");
            }
            loaded.config
        }
        None => KubeletConfiguration::default(),
    };
    if let Some(endpoint) = args.container_runtime_endpoint {
        config.container_runtime_endpoint = endpoint;
    }
    let options = KubeletOptions {
        config,
        kubeconfig: args.kubeconfig,
        node_name: args.node_name,
        node_ip: args.node_ip,
        root_dir: args.root_dir,
        pleg_relist_period: args.pleg_relist_period,
    };
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        crate::control_plane_cmd::shutdown_signal().await;
        tracing::info!("stopping");
        stop.cancel();
    });
    kubelet::run(options, cancel).await.context("node agent")?;
    Ok(())
}

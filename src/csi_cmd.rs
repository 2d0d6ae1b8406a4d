//! `ferrolet csi-hostpath`: the hostpath CSI driver with its registrar (and, given a
//! kubeconfig, its provisioner), in the foreground until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use ferrolet_csi::driver::{self, DriverOptions};
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug)]
pub struct CsiHostPathArgs {
    /// The CSI driver name: the `provisioner` of storage classes and `driver` of volumes.
    #[arg(long, default_value = "hostpath.csi.ferrolet.io")]
    driver_name: String,
    /// This node's id in `NodeGetInfo` (default: the host name; use the Node's name).
    #[arg(long)]
    node_id: Option<String>,
    /// The node agent's root directory: the driver registers in `<root>/plugins_registry`
    /// and, unless --endpoint says otherwise, listens on `<root>/plugins/<driver>/csi.sock`.
    #[arg(long, default_value = "/var/lib/ferrolet")]
    kubelet_root: PathBuf,
    /// The CSI socket.
    #[arg(long)]
    endpoint: Option<PathBuf>,
    /// Do not register with the node agent (a controller-only instance).
    #[arg(long)]
    no_register: bool,
    /// Where the volumes' directories live.
    #[arg(long, default_value = "/var/lib/ferrolet-csi-hostpath")]
    state_dir: PathBuf,
    /// Bytes all volumes may have together (Kubernetes quantity).
    #[arg(long, default_value = "10Gi")]
    capacity: String,
    /// With a kubeconfig, also provision volumes for claims of storage classes whose
    /// provisioner is this driver, and delete released ones (external-provisioner's job).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Wait this long in each publish (`NodePublishVolume`) before mounting: simulates slow
    /// storage (tests kill the driver in the middle of a publish).
    #[arg(long, default_value = "0s", value_parser = crate::cri_cmd::parse_duration)]
    publish_delay: std::time::Duration,
}

pub async fn run(args: CsiHostPathArgs) -> anyhow::Result<()> {
    let capacity_bytes = driver::provisioner::quantity_bytes(&args.capacity)
        .with_context(|| format!("--capacity {:?} is not a quantity", args.capacity))?;
    let node_id = match args.node_id {
        Some(id) => id,
        None => nix::unistd::gethostname()
            .context("read the host name")?
            .to_string_lossy()
            .into_owned(),
    };
    let endpoint = args.endpoint.unwrap_or_else(|| {
        args.kubelet_root
            .join("plugins")
            .join(&args.driver_name)
            .join("csi.sock")
    });
    let options = DriverOptions {
        name: args.driver_name,
        node_id,
        endpoint,
        registry_dir: (!args.no_register).then(|| args.kubelet_root.join("plugins_registry")),
        state_dir: args.state_dir,
        capacity_bytes,
        publish_delay: args.publish_delay,
    };
    let client = match &args.kubeconfig {
        Some(path) => Some(client_for(path).await?),
        None => None,
    };
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        crate::control_plane_cmd::shutdown_signal().await;
        tracing::info!("stopping");
        stop.cancel();
    });
    driver::run(options, client, cancel)
        .await
        .context("csi-hostpath driver")
}

async fn client_for(path: &std::path::Path) -> anyhow::Result<kube::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let file = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("read {}", path.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .context("load the kubeconfig")?;
    kube::Client::try_from(config).context("build an API client")
}

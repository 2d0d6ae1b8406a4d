//! `ferrolet`: the one binary. Each subcommand wires library crates together; the work
//! happens in the crates.

mod control_plane_cmd;
mod cri_cmd;
mod csi_cmd;
mod node_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ferrolet",
    version,
    about = "A Kubernetes node agent (kubelet) in Rust, with a small companion control plane"
)]
struct Cli {
    /// Log filter in tracing's env-filter syntax, such as info or debug.
    #[arg(long, global = true, env = "FERROLET_LOG", default_value = "info")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Inspect and drive a CRI runtime directly (like crictl): containerd, CRI-O, or any
    /// runtime.v1 server.
    Cri(cri_cmd::CriArgs),
    /// Run the companion control plane: API server (embedded store or etcd), scheduler and
    /// controllers. Prints the admin kubeconfig path.
    ControlPlane(control_plane_cmd::ControlPlaneArgs),
    /// Run the node agent (kubelet): registers this node and runs the pods bound to it
    /// through a CRI runtime.
    Node(node_cmd::NodeArgs),
    /// Run the hostpath CSI driver: volumes as directories on this node, registered with the
    /// node agent through its plugin registration socket, provisioning with --kubeconfig.
    CsiHostpath(csi_cmd::CsiHostPathArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(async move {
                match cli.command {
                    Command::Cri(args) => cri_cmd::run(args).await,
                    Command::ControlPlane(args) => control_plane_cmd::run(args).await,
                    Command::Node(args) => node_cmd::run(args).await,
                    Command::CsiHostpath(args) => csi_cmd::run(args).await,
                }
            })
        });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // The whole cause chain on one line, like the kubelet's errors; no backtrace.
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

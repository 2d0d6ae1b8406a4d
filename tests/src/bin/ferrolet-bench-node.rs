//! `ferrolet-bench-node`: the node agent's benchmark. Starts `ferrolet control-plane` and
//! `ferrolet node` (in the node's network namespace, against hack/containerd's containerd)
//! and measures:
//!
//! - pod startup for N busybox `sleep` pods created at once through the API (create →
//!   Running with every container ready, as a watch shows it), p50/p99, beside the CRI floor:
//!   the same number of pods started at once by a bare CRI client against the same
//!   containerd with the configs the agent builds; and the ratio ferrolet / floor;
//! - the agent's RSS and CPU over a window, idle with no pods, with the most pods running,
//!   and with as many pods each probed (exec + httpGet every 10 s), beside containerd's over
//!   the same window.
//!
//! Prints figures, never judges them: the goals are printed beside them. Exits non-zero only
//! when the bench itself fails. Run it through `hack/bench-node`.

#[path = "../bench_node/mod.rs"]
mod bench_node;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bench_node::floor::Floor;
use bench_node::report::{self, StartupRow, UsageRow, WindowUsage};
use bench_node::startup;
use ferrolet_tests::cluster::{ClusterOptions, TestCluster};
use ferrolet_tests::measure::ProcessUsage;
use ferrolet_tests::{containerd, required_env};
use tokio_util::sync::CancellationToken;

const USAGE: &str = "usage: ferrolet-bench-node [--pods N,N,...] [--idle-window S] [--settle S]
    [--timeout S] [--no-probes]

  --pods N,...       pod counts, each created at once (default 1,30,100)
  --idle-window S    seconds over which the agent's and containerd's CPU is measured, idle
                     with no pods and with the most pods running (default 30)
  --settle S         seconds to wait before each window (default 10)
  --timeout S        seconds one round's pods get to be Running, and to be gone after
                     deletion (default 300)
  --no-probes        skip the last round: the most pods again, as test-server pods with an
                     exec liveness and an httpGet readiness probe every 10s, and a window
                     measuring the agent with them

Needs root and the environment of hack/lib.sh (FERROLET_BIN, FERROLET_NETNS, ...).";

/// Exit status after SIGINT or SIGTERM, like a shell's.
const INTERRUPTED: u8 = 130;
const NAMESPACE: &str = "bench";

#[derive(Debug, Clone)]
struct Settings {
    pods: Vec<usize>,
    window: Duration,
    settle: Duration,
    timeout: Duration,
    /// A last round of test-server pods with an exec and an http probe each.
    probes: bool,
}

fn main() -> ExitCode {
    let settings = match parse_args(std::env::args().skip(1)) {
        Ok(Some(settings)) => settings,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let cancel = CancellationToken::new();
        tokio::spawn(cancel_on_signal(cancel.clone()));
        match bench(&settings, &cancel).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err:#}");
                if cancel.is_cancelled() {
                    ExitCode::from(INTERRUPTED)
                } else {
                    ExitCode::FAILURE
                }
            }
        }
    })
}

/// Cancels the run on SIGINT or SIGTERM; the bench then removes its pods and stops.
async fn cancel_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("interrupted: removing the bench's pods and stopping the cluster");
    cancel.cancel();
}

async fn bench(settings: &Settings, cancel: &CancellationToken) -> Result<()> {
    let options = ClusterOptions {
        agent_log: "info".to_owned(),
        ..ClusterOptions::new("bench-node")
    };
    let cluster = TestCluster::start(options).await?;
    let containerd_pid = containerd_pid()?;
    let runtime = containerd().await;
    println!(
        "hack/bench-node: pods {:?} created at once; windows of {:?}; {} {}; {} CPUs",
        settings.pods,
        settings.window,
        runtime.runtime_version().runtime_name,
        runtime.runtime_version().runtime_version,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
    );
    cluster.namespace(NAMESPACE).await?;
    // A first pod warms the agent and containerd up and is the floor's template.
    let warmup = startup::sleep_pod("warmup", &cluster.node_name)?;
    ferrolet_tests::pods::create(&cluster.client, NAMESPACE, &warmup).await?;
    let template =
        startup::wait_ready(&cluster.client, NAMESPACE, "warmup", settings.timeout).await?;
    let floor = Floor::new(runtime, template, cluster.node_ip.to_string()).await?;
    cluster.delete_all_pods(settings.timeout).await?;

    let mut work = Work {
        settings,
        cluster: &cluster,
        floor: &floor,
        agent_pid: cluster.agent_pid(),
        containerd_pid,
        startup: Vec::new(),
        usage: Vec::new(),
    };
    let outcome = tokio::select! {
        outcome = work.run() => outcome,
        () = cancel.cancelled() => Err(anyhow::anyhow!("interrupted")),
    };
    let (startup, usage) = (
        std::mem::take(&mut work.startup),
        std::mem::take(&mut work.usage),
    );
    // Whatever happened: no pod of the bench outlives it.
    let cleaned = floor.clean().await;
    let deleted = cluster.delete_all_pods(settings.timeout).await;
    let agent = ProcessUsage::of(&cluster.agent_pid().to_string());
    if !startup.is_empty() {
        println!("\npod startup (create -> Running and ready, seen on a watch) vs CRI floor");
        print!("{}", report::startup_table(&startup));
    }
    if !usage.is_empty() {
        println!("\nresources (agent = ferrolet node; ctrd = containerd; x = agent/ctrd)");
        print!("{}", report::usage_table(&usage, settings.window));
    }
    if let Ok(agent) = agent {
        #[allow(clippy::cast_precision_loss, reason = "KiB are far below 2^52")]
        let peak = agent.peak_rss_kib as f64 / 1024.0;
        println!("agent peak RSS over the whole run (VmHWM): {peak:.1} MiB");
    }
    println!();
    print!("{}", report::goals(&startup, &usage));
    // The node's pod cgroups go with the node.
    let cgroup_root = cluster.cgroup_root.clone();
    drop(cluster);
    let node_cgroups = ferrolet_tests::CgroupParent::at(&cgroup_root)
        .remove()
        .map_err(|e| anyhow::anyhow!("the node's pods left cgroups behind: {e}"));
    outcome?;
    cleaned?;
    deleted?;
    node_cgroups?;
    floor.finish()
}

/// The state of one run.
struct Work<'a> {
    settings: &'a Settings,
    cluster: &'a TestCluster,
    floor: &'a Floor,
    agent_pid: u32,
    containerd_pid: u32,
    startup: Vec<StartupRow>,
    usage: Vec<UsageRow>,
}

impl Work<'_> {
    async fn run(&mut self) -> Result<()> {
        self.window("idle, 0 pods").await?;
        let most = self.settings.pods.iter().copied().max().unwrap_or(0);
        for (index, &n) in self.settings.pods.iter().enumerate() {
            // Alternate which goes first, so that drift in containerd's speed hits both.
            let mut floor = Vec::new();
            let mut ferrolet = Vec::new();
            for step in 0..2 {
                if (index + step) % 2 == 0 {
                    eprintln!("{n} pods: CRI floor");
                    floor = self.floor.round(n).await.context("the CRI floor")?;
                    self.floor.clean().await?;
                } else {
                    eprintln!("{n} pods: ferrolet");
                    ferrolet = startup::round(
                        &self.cluster.client,
                        NAMESPACE,
                        &self.cluster.node_name,
                        n,
                        self.settings.timeout,
                        startup::sleep_pod,
                    )
                    .await
                    .with_context(|| format!("starting {n} pods through ferrolet"))?;
                    if n == most {
                        self.window(&format!("{n} pods running")).await?;
                    }
                    self.cluster.delete_all_pods(self.settings.timeout).await?;
                }
            }
            self.startup.push(StartupRow {
                pods: n,
                floor,
                ferrolet,
            });
        }
        if self.settings.probes && most > 0 {
            eprintln!("{most} pods with probes: ferrolet");
            startup::round(
                &self.cluster.client,
                NAMESPACE,
                &self.cluster.node_name,
                most,
                self.settings.timeout,
                startup::probed_pod,
            )
            .await
            .with_context(|| format!("starting {most} pods with probes"))?;
            self.window(&format!("{most} pods, exec + http probe / 10s"))
                .await?;
            self.cluster.delete_all_pods(self.settings.timeout).await?;
        }
        Ok(())
    }

    /// Waits `settle`, then measures the agent and containerd over one window.
    async fn window(&mut self, label: &str) -> Result<()> {
        eprintln!("{label}: measuring over {:?}", self.settings.window);
        tokio::time::sleep(self.settings.settle).await;
        let (agent, containerd) = (self.agent_pid.to_string(), self.containerd_pid.to_string());
        let before = (ProcessUsage::of(&agent)?, ProcessUsage::of(&containerd)?);
        tokio::time::sleep(self.settings.window).await;
        let after = (ProcessUsage::of(&agent)?, ProcessUsage::of(&containerd)?);
        self.usage.push(UsageRow {
            label: label.to_owned(),
            agent: WindowUsage::between(before.0, after.0, self.settings.window),
            containerd: WindowUsage::between(before.1, after.1, self.settings.window),
        });
        Ok(())
    }
}

/// containerd's pid, from hack/containerd's pid file.
fn containerd_pid() -> Result<u32> {
    let file = format!(
        "{}/containerd/containerd.pid",
        required_env("FERROLET_RUN_DIR")
    );
    std::fs::read_to_string(&file)
        .with_context(|| format!("reading {file}: is hack/containerd running?"))?
        .trim()
        .parse()
        .with_context(|| format!("a pid in {file}"))
}

/// The settings, or `None` for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Settings>, String> {
    let mut settings = Settings {
        pods: vec![1, 30, 100],
        window: Duration::from_secs(30),
        settle: Duration::from_secs(10),
        timeout: Duration::from_mins(5),
        probes: true,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        let seconds = |v: String| -> Result<Duration, String> {
            v.parse::<f64>()
                .ok()
                .filter(|n| *n >= 0.0 && n.is_finite())
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("{arg} needs a number of seconds, not {v:?}"))
        };
        match arg.as_str() {
            "--pods" => {
                let list = value()?;
                settings.pods = list
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().ok().filter(|n| *n > 0))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("--pods needs positive counts, not {list:?}"))?;
            }
            "--idle-window" => settings.window = seconds(value()?)?,
            "--settle" => settings.settle = seconds(value()?)?,
            "--timeout" => settings.timeout = seconds(value()?)?,
            "--no-probes" => settings.probes = false,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if settings.window.is_zero() {
        return Err("--idle-window must be more than 0".to_owned());
    }
    Ok(Some(settings))
}

//! `ferrolet-bench-controlplane`: loads a fresh `ferrolet control-plane` with N simulated
//! nodes (Lease renewal and node status patch every 10 s each, pods reported Running) and M
//! pods (created, scheduled by the control plane, status-patched by their node), once on the
//! embedded store and once on etcd, and prints p50/p99 of single-object writes, schedule
//! latency, lists and watch-event delay, and the control plane's peak RSS, side by side with
//! the ratio etcd / embedded. Run it through `hack/bench-controlplane`.

// The bench's modules live beside the test support library rather than in it: they are
// this binary's alone.
#[path = "../bench/mod.rs"]
mod bench;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bench::cluster::Backend;
use bench::fake_node::PodWatch;
use bench::workload::{self, Settings};
use tokio_util::sync::CancellationToken;

const USAGE: &str = "usage: ferrolet-bench-controlplane [--nodes N] [--pods M] [--duration S]
    [--backend embedded|etcd|both] [--pod-concurrency C] [--pod-rate R]
    [--list-interval S] [--pod-watch per-node|shared] [--settle-timeout S]
    [--ferrolet PATH] [--etcd PATH] [--work-dir DIR]

  --nodes N            simulated nodes (default 100)
  --pods M             pods to create (default 3000)
  --duration S         seconds the nodes heartbeat at least, from the first pod create;
                       the run goes on until every pod is Running (default 60)
  --backend B          embedded, etcd or both, side by side (default both)
  --pod-concurrency C  pod creates in flight (default 20)
  --pod-rate R         pod creates started per second (default: as fast as C allows)
  --list-interval S    seconds between the periodic lists (default 5)
  --pod-watch W        per-node: one pod watch per node, like kubelets (default);
                       shared: one pod watch for all nodes
  --settle-timeout S   seconds after the duration the pods get to be Running before the
                       run counts as failed (default 600)
  --ferrolet PATH      the ferrolet binary (default: beside this one)
  --etcd PATH          the etcd binary (default /usr/bin/etcd)
  --work-dir DIR       where the temporary directories go (default: the temp dir)";

/// Exit status after SIGINT or SIGTERM, like a shell's.
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let (settings, backends) = match parse_args(std::env::args().skip(1)) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // kube's TLS needs a process-wide provider: ring, as the control plane uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
    runtime.block_on(bench(settings, backends))
}

async fn bench(settings: Settings, backends: Vec<Backend>) -> ExitCode {
    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_signal(cancel.clone()));
    println!("{}", header(&settings));
    let mut outcomes = Vec::new();
    let mut failure = None;
    for backend in backends {
        match workload::run(backend, &settings, &cancel).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(err) => {
                failure = Some(err.context(format!("the {backend} run failed")));
                break;
            }
        }
    }
    if !outcomes.is_empty() {
        print!("{}", bench::report::render(&outcomes));
    }
    if let Some(err) = failure {
        eprintln!("error: {err:#}");
        return if cancel.is_cancelled() {
            ExitCode::from(INTERRUPTED)
        } else {
            ExitCode::FAILURE
        };
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| o.errors.0 > 0)
        .map(|o| format!("{} ({} errors)", o.backend, o.errors.0))
        .collect();
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: the workload failed on {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

/// Cancels the run on SIGINT or SIGTERM; the guards then stop every process.
async fn cancel_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("interrupted: stopping the control plane and etcd");
    cancel.cancel();
}

fn header(settings: &Settings) -> String {
    let creation = match settings.pod_rate {
        Some(rate) => format!(
            "{rate} creates/s, at most {} in flight",
            settings.pod_concurrency
        ),
        None => format!(
            "{} in flight, as fast as the API allows",
            settings.pod_concurrency
        ),
    };
    let watch = match settings.pod_watch {
        PodWatch::PerNode => "one pod watch per node",
        PodWatch::Shared => "one shared pod watch",
    };
    format!(
        "hack/bench-controlplane: {} nodes (Lease + node status every 10s, {watch}), {} pods \
         ({creation}), lists every {:?}, heartbeats for at least {:?}; {} CPUs",
        settings.nodes,
        settings.pods,
        settings.list_interval,
        settings.duration,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
    )
}

/// The settings and backends, or `None` for `--help`.
fn parse_args(
    mut args: impl Iterator<Item = String>,
) -> Result<Option<(Settings, Vec<Backend>)>, String> {
    let mut settings = Settings {
        nodes: 100,
        pods: 3000,
        duration: Duration::from_mins(1),
        settle_timeout: Duration::from_mins(10),
        pod_concurrency: 20,
        pod_rate: None,
        list_interval: Duration::from_secs(5),
        pod_watch: PodWatch::PerNode,
        ferrolet: default_ferrolet().map_err(|e| format!("{e:#}"))?,
        etcd: PathBuf::from("/usr/bin/etcd"),
        work_dir: std::env::temp_dir(),
    };
    let mut backends = vec![Backend::Embedded, Backend::Etcd];
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        let number = |v: String| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|n| *n > 0.0 && n.is_finite())
                .ok_or_else(|| format!("{arg} needs a positive number, not {v:?}"))
        };
        let whole = |v: String| -> Result<usize, String> {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{arg} needs a positive whole number, not {v:?}"))
        };
        match arg.as_str() {
            "--nodes" => settings.nodes = whole(value()?)?,
            "--pods" => settings.pods = whole(value()?)?,
            "--duration" => settings.duration = Duration::from_secs_f64(number(value()?)?),
            "--settle-timeout" => {
                settings.settle_timeout = Duration::from_secs_f64(number(value()?)?);
            }
            "--pod-concurrency" => settings.pod_concurrency = whole(value()?)?,
            "--pod-rate" => settings.pod_rate = Some(number(value()?)?),
            "--list-interval" => {
                settings.list_interval = Duration::from_secs_f64(number(value()?)?);
            }
            "--backend" => {
                backends = match value()?.as_str() {
                    "embedded" => vec![Backend::Embedded],
                    "etcd" => vec![Backend::Etcd],
                    "both" => vec![Backend::Embedded, Backend::Etcd],
                    other => return Err(format!("unknown backend {other:?}")),
                }
            }
            "--pod-watch" => {
                settings.pod_watch = match value()?.as_str() {
                    "per-node" => PodWatch::PerNode,
                    "shared" => PodWatch::Shared,
                    other => return Err(format!("unknown pod watch {other:?}")),
                }
            }
            "--ferrolet" => settings.ferrolet = value()?.into(),
            "--etcd" => settings.etcd = value()?.into(),
            "--work-dir" => settings.work_dir = value()?.into(),
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some((settings, backends)))
}

/// `ferrolet` in the directory of this binary (both are built into the same target dir).
fn default_ferrolet() -> Result<PathBuf> {
    let me = std::env::current_exe().context("finding this binary")?;
    Ok(me.with_file_name("ferrolet"))
}

//! `ferrolet-bench-cri`: times `RunPodSandbox`, `CreateContainer` and `StartContainer` for N pods
//! against a real runtime, through ferrolet's CRI client and, side by side, through the bare
//! generated gRPC client (the baseline), sequentially and with a given concurrency. Prints
//! median and p99 of each and the ratio ferrolet / baseline.
//!
//! Runs are interleaved (baseline and ferrolet alternate which goes first) so that drift in
//! the runtime's speed over the run hits both alike. Run it through `hack/bench-cri`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ferrolet_cri::api::runtime_service_client::RuntimeServiceClient;
use ferrolet_cri::contract::{container_config, sandbox_config, unique_token};
use ferrolet_cri::{RemoteRuntime, RuntimeService, api};
use ferrolet_images::BUSYBOX;
use ferrolet_tests::measure::Summary;
use ferrolet_tests::{CgroupParent, containerd, cri_bare};
use futures::future::join_all;
use tonic::transport::Channel;

const OPERATIONS: [&str; 3] = ["RunPodSandbox", "CreateContainer", "StartContainer"];
const RUN_LABEL: &str = "ferrolet.bench/run";

/// Per-operation latencies of one client in one mode.
type Samples = HashMap<&'static str, Vec<Duration>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    Baseline,
    Ferrolet,
}

struct Bench {
    ferrolet: RemoteRuntime,
    baseline: RuntimeServiceClient<Channel>,
    cgroup_parent: String,
    run_id: String,
}

fn main() {
    let mut pods = 20_usize;
    let mut concurrency = 10_usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--pods" => pods = value(),
            "--concurrency" => concurrency = value(),
            other => panic!("unknown argument {other}; use --pods N --concurrency C"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench(pods, concurrency.max(1)));
}

async fn bench(pods: usize, concurrency: usize) {
    let ferrolet = containerd().await;
    let baseline = cri_bare::client().await.expect("the bare CRI client");
    let cgroup = CgroupParent::new("bench");
    let bench = Bench {
        ferrolet,
        baseline,
        cgroup_parent: cgroup.path().to_owned(),
        run_id: unique_token(),
    };
    let version = bench.ferrolet.runtime_version().clone();
    println!(
        "hack/bench-cri: {} {}, {pods} pods per client and mode, concurrency {concurrency}; \
         baseline = bare generated gRPC client",
        version.runtime_name, version.runtime_version
    );
    let mut report = String::new();
    let _ = writeln!(
        report,
        "{:<12} {:<16} {:>12} {:>12} {:>12} {:>12} {:>8} {:>8}",
        "mode", "operation", "base med", "base p99", "ferro med", "ferro p99", "x med", "x p99"
    );
    for (mode, width) in [("sequential", 1), ("concurrent", concurrency)] {
        let (base, ferro) = bench.mode(pods, width).await;
        bench.cleanup().await;
        for op in OPERATIONS {
            let (b, f) = (&base[op], &ferro[op]);
            let (b, f) = (
                Summary::of(b).expect("baseline samples"),
                Summary::of(f).expect("ferrolet samples"),
            );
            let (bm, bp, fm, fp) = (b.p50, b.p99, f.p50, f.p99);
            let _ = writeln!(
                report,
                "{mode:<12} {op:<16} {:>12} {:>12} {:>12} {:>12} {:>8.2} {:>8.2}",
                ms(bm),
                ms(bp),
                ms(fm),
                ms(fp),
                fm.as_secs_f64() / bm.as_secs_f64(),
                fp.as_secs_f64() / bp.as_secs_f64(),
            );
        }
    }
    print!("{report}");
    cgroup
        .remove()
        .expect("bench pods left their cgroups behind");
}

impl Bench {
    /// Runs `pods` pod starts per client, `width` at a time, alternating which client goes
    /// first in each batch.
    async fn mode(&self, pods: usize, width: usize) -> (Samples, Samples) {
        let (mut base, mut ferro) = (Samples::new(), Samples::new());
        let mut started = 0;
        let mut batch = 0;
        while started < pods {
            let n = width.min(pods - started);
            let order = if batch % 2 == 0 {
                [Client::Baseline, Client::Ferrolet]
            } else {
                [Client::Ferrolet, Client::Baseline]
            };
            for client in order {
                let runs = join_all((0..n).map(|_| self.start_pod(client))).await;
                let samples = if client == Client::Baseline {
                    &mut base
                } else {
                    &mut ferro
                };
                for run in runs {
                    for (op, took) in OPERATIONS.iter().zip(run) {
                        samples.entry(op).or_default().push(took);
                    }
                }
            }
            started += n;
            batch += 1;
        }
        (base, ferro)
    }

    /// One pod: sandbox, container, start; returns the three call latencies.
    async fn start_pod(&self, client: Client) -> [Duration; 3] {
        let mut config = sandbox_config("bench", &self.cgroup_parent);
        config
            .labels
            .insert(RUN_LABEL.to_owned(), self.run_id.clone());
        let container = container_config("sleep", BUSYBOX, &["sleep", "3600"]);
        match client {
            Client::Ferrolet => {
                let rt = &self.ferrolet;
                let t = Instant::now();
                let sandbox = rt
                    .run_pod_sandbox(&config, "")
                    .await
                    .expect("RunPodSandbox");
                let run = t.elapsed();
                let t = Instant::now();
                let id = rt
                    .create_container(&sandbox, &container, &config)
                    .await
                    .expect("CreateContainer");
                let create = t.elapsed();
                let t = Instant::now();
                rt.start_container(&id).await.expect("StartContainer");
                [run, create, t.elapsed()]
            }
            Client::Baseline => {
                Box::pin(cri_bare::start_pod(
                    self.baseline.clone(),
                    config,
                    container,
                ))
                .await
                .expect("the bare client starts a pod")
                .0
            }
        }
    }

    async fn cleanup(&self) {
        let filter = api::PodSandboxFilter {
            label_selector: HashMap::from([(RUN_LABEL.to_owned(), self.run_id.clone())]),
            ..Default::default()
        };
        let sandboxes = self
            .ferrolet
            .list_pod_sandbox(Some(filter))
            .await
            .expect("ListPodSandbox");
        join_all(sandboxes.iter().map(|s| async {
            self.ferrolet
                .stop_pod_sandbox(&s.id)
                .await
                .expect("StopPodSandbox");
            self.ferrolet
                .remove_pod_sandbox(&s.id)
                .await
                .expect("RemovePodSandbox");
        }))
        .await;
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

//! One run against one backend: a fresh control plane (and etcd), N fake nodes heartbeating,
//! M pods created, scheduled by the control plane and reported Running by their nodes, lists
//! at a fixed interval, and an observer timing the watch events. Everything the run starts
//! ends with it: tasks through cancellation tokens, processes and directories through the
//! guards of [`super::cluster`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ferrolet_tests::measure::Summary;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::cluster::{Backend, ControlPlane, Etcd, ProcessUsage};
use super::fake_node::{self, FakeNode, HEARTBEAT, PodWatch};
use super::load::{Created, NAMESPACE, create_pods, list_periodically};
use super::metrics::{Figure, Recorder};
use super::observer::Observer;

/// How many nodes register at once.
const REGISTER_CONCURRENCY: usize = 20;
/// How long watches get to finish their initial list.
const SYNC_TIMEOUT: Duration = Duration::from_mins(2);
/// How long the observer keeps watching after the load stopped, for the last events.
const DRAIN: Duration = Duration::from_secs(2);
/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub nodes: usize,
    pub pods: usize,
    /// The least time the nodes heartbeat, from the moment pod creation starts.
    pub duration: Duration,
    /// How long after `duration` the pods get to reach Running before the run gives up.
    pub settle_timeout: Duration,
    /// Pod creates in flight at once.
    pub pod_concurrency: usize,
    /// Pod creates started per second; `None` for as fast as `pod_concurrency` allows.
    pub pod_rate: Option<f64>,
    /// The interval of the periodic lists.
    pub list_interval: Duration,
    pub pod_watch: PodWatch,
    /// The `ferrolet` binary.
    pub ferrolet: PathBuf,
    /// The `etcd` binary.
    pub etcd: PathBuf,
    /// Where the temporary directories of the processes go.
    pub work_dir: PathBuf,
}

/// The figures of one run.
#[derive(Debug)]
pub struct Outcome {
    pub backend: Backend,
    pub figures: HashMap<Figure, Summary>,
    pub control_plane: ProcessUsage,
    pub etcd: Option<ProcessUsage>,
    /// CPU time of the bench process (clients, fake nodes, observer) during the run.
    pub bench_cpu: Duration,
    /// From the start of pod creation to the end of the run.
    pub wall: Duration,
    pub pods_created: usize,
    pub pods_running: usize,
    /// Pods created per second, from the first create to the last acknowledgement.
    pub create_rate: f64,
    /// Pods bound per second, from the first create to the last pod seen bound.
    pub bind_rate: f64,
    /// Stamped writes whose event never reached the observer.
    pub unmatched_writes: usize,
    pub watch_errors: (usize, Vec<String>),
    pub errors: (usize, Vec<String>),
}

/// Runs the workload against a fresh control plane on `backend`. Fails if a process cannot
/// start or dies, or on `cancel`; workload errors are counted in the outcome.
pub async fn run(
    backend: Backend,
    settings: &Settings,
    cancel: &CancellationToken,
) -> Result<Outcome> {
    let etcd = match backend {
        Backend::Embedded => None,
        Backend::Etcd => {
            let etcd =
                interruptible(cancel, Etcd::start(&settings.etcd, &settings.work_dir)).await?;
            progress(backend, &format!("etcd ready ({})", etcd.dir().display()));
            Some(etcd)
        }
    };
    let mut control_plane = interruptible(
        cancel,
        ControlPlane::start(&settings.ferrolet, &settings.work_dir, etcd.as_ref()),
    )
    .await?;
    progress(
        backend,
        &format!("control plane ready ({})", control_plane.dir().display()),
    );
    let outcome = Run::new(backend, settings, &control_plane, cancel)
        .await?
        .execute(&mut control_plane, etcd.as_ref())
        .await;
    if outcome.is_err() {
        eprintln!(
            "[{backend}] last lines of the control plane's log {}:\n{}",
            control_plane.log().display(),
            control_plane.log_tail()
        );
    }
    outcome
}

/// The state of one run.
struct Run<'a> {
    backend: Backend,
    settings: &'a Settings,
    cancel: &'a CancellationToken,
    recorder: Arc<Recorder>,
    /// Fake nodes and their pod watches share one client, the pod creator, the lister and the
    /// observer have one each.
    nodes_client: Client,
    creator_client: Client,
    lister_client: Client,
    observer_client: Client,
}

impl<'a> Run<'a> {
    async fn new(
        backend: Backend,
        settings: &'a Settings,
        control_plane: &ControlPlane,
        cancel: &'a CancellationToken,
    ) -> Result<Self> {
        Ok(Self {
            backend,
            settings,
            cancel,
            recorder: Arc::new(Recorder::default()),
            nodes_client: control_plane.client().await?,
            creator_client: control_plane.client().await?,
            lister_client: control_plane.client().await?,
            observer_client: control_plane.client().await?,
        })
    }

    async fn execute(
        self,
        control_plane: &mut ControlPlane,
        etcd: Option<&Etcd>,
    ) -> Result<Outcome> {
        let bench_cpu_before = ProcessUsage::of("self")?.cpu;
        let observe = self.cancel.child_token();
        let load = self.cancel.child_token();
        // Stop every task however this function ends.
        let _stop_observing = observe.clone().drop_guard();
        let _stop_load = load.clone().drop_guard();
        let mut watches = JoinSet::new();
        let mut loaders = JoinSet::new();

        let namespace: Namespace =
            serde_json::from_value(json!({ "metadata": { "name": NAMESPACE } }))?;
        Api::<Namespace>::all(self.creator_client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .context("creating the bench namespace")?;

        let (synced_tx, mut synced) = mpsc::unbounded_channel();
        let observer = Observer::start(
            &self.observer_client,
            &mut watches,
            &synced_tx,
            &self.recorder,
            &observe,
        );
        self.wait_synced(&mut synced, 3, "the observer's watches")
            .await?;

        progress(
            self.backend,
            &format!("registering {} nodes", self.settings.nodes),
        );
        let nodes = self.register_nodes().await?;

        let (inboxes, watch_count) =
            self.start_pod_watches(&nodes, &mut watches, &synced_tx, &observe);
        self.wait_synced(&mut synced, watch_count, "the nodes' pod watches")
            .await?;

        progress(
            self.backend,
            &format!("creating {} pods; nodes heartbeat", self.settings.pods),
        );
        let start = Instant::now();
        let count = u32::try_from(nodes.len()).unwrap_or(u32::MAX).max(1);
        for (i, (node, inbox)) in nodes.into_iter().zip(inboxes).enumerate() {
            // Spread the first heartbeats over one period: N/10 lease renewals a second.
            let offset = HEARTBEAT * u32::try_from(i).unwrap_or(u32::MAX) / count;
            loaders.spawn(node.run((start + offset).into(), inbox, load.clone()));
        }
        loaders.spawn(list_periodically(
            self.lister_client.clone(),
            self.settings.nodes,
            self.settings.list_interval,
            self.recorder.clone(),
            load.clone(),
        ));
        let created_count = Arc::new(AtomicUsize::new(0));
        let creator = tokio::spawn(create_pods(
            self.creator_client.clone(),
            self.settings.clone(),
            self.recorder.clone(),
            created_count.clone(),
            load.clone(),
        ));

        let pods_running = self
            .wait_done(
                control_plane,
                etcd,
                &observer,
                &creator,
                &created_count,
                start,
            )
            .await?;
        let wall = start.elapsed();
        load.cancel();
        let created = creator.await.context("the pod creator panicked")?;
        while let Some(joined) = loaders.join_next().await {
            joined.context("a fake node or the lister panicked")?;
        }
        tokio::time::sleep(DRAIN).await;
        observe.cancel();
        while let Some(joined) = watches.join_next().await {
            joined.context("a watch task panicked")?;
        }

        let control_plane_usage = control_plane.usage()?;
        let etcd_usage = etcd.map(Etcd::usage).transpose()?;
        let bench_cpu = ProcessUsage::of("self")?
            .cpu
            .saturating_sub(bench_cpu_before);
        let unmatched_writes = self.watch_delays(&observer);
        let (create_rate, bind_rate) = self.pod_latencies(&observer, &created);
        progress(self.backend, "done");
        Ok(Outcome {
            backend: self.backend,
            figures: self.recorder.summaries(),
            control_plane: control_plane_usage,
            etcd: etcd_usage,
            bench_cpu,
            wall,
            pods_created: created.acks.len(),
            pods_running,
            create_rate,
            bind_rate,
            unmatched_writes,
            watch_errors: self.recorder.watch_errors(),
            errors: self.recorder.errors(),
        })
    }

    /// Starts the nodes' pod watches (one per node, or one shared); returns each node's
    /// inbox, in node order, and the number of watches.
    fn start_pod_watches(
        &self,
        nodes: &[FakeNode],
        watches: &mut JoinSet<()>,
        synced_tx: &mpsc::UnboundedSender<()>,
        observe: &CancellationToken,
    ) -> (Vec<mpsc::UnboundedReceiver<Pod>>, usize) {
        let mut to_nodes = HashMap::new();
        let mut inboxes = Vec::new();
        for node in nodes {
            let (tx, rx) = mpsc::unbounded_channel();
            to_nodes.insert(node.name().to_owned(), tx);
            inboxes.push(rx);
        }
        let watch_count = match self.settings.pod_watch {
            PodWatch::PerNode => {
                for (name, tx) in to_nodes {
                    watches.spawn(fake_node::watch_node_pods(
                        self.nodes_client.clone(),
                        name,
                        tx,
                        synced_tx.clone(),
                        self.recorder.clone(),
                        observe.clone(),
                    ));
                }
                nodes.len()
            }
            PodWatch::Shared => {
                watches.spawn(fake_node::watch_all_pods(
                    self.nodes_client.clone(),
                    to_nodes,
                    synced_tx.clone(),
                    self.recorder.clone(),
                    observe.clone(),
                ));
                1
            }
        };
        (inboxes, watch_count)
    }

    /// Waits for `count` watches to finish their initial list.
    async fn wait_synced(
        &self,
        synced: &mut mpsc::UnboundedReceiver<()>,
        count: usize,
        what: &str,
    ) -> Result<()> {
        let all = async {
            for _ in 0..count {
                synced.recv().await;
            }
        };
        match tokio::time::timeout(
            SYNC_TIMEOUT,
            interruptible(self.cancel, async {
                all.await;
                Ok(())
            }),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => bail!("{what} did not finish their initial list within {SYNC_TIMEOUT:?}"),
        }
    }

    /// Registers the fake nodes, [`REGISTER_CONCURRENCY`] at a time.
    async fn register_nodes(&self) -> Result<Vec<FakeNode>> {
        let max_pods = self
            .settings
            .pods
            .div_ceil(self.settings.nodes.max(1))
            .saturating_mul(2)
            .max(110);
        let registering = stream::iter(0..self.settings.nodes)
            .map(|i| {
                FakeNode::register(
                    self.nodes_client.clone(),
                    i,
                    max_pods,
                    self.recorder.clone(),
                )
            })
            .buffer_unordered(REGISTER_CONCURRENCY)
            .try_collect();
        interruptible(self.cancel, registering).await
    }

    /// Waits until the duration has passed and every created pod was seen Running; fails if
    /// the control plane dies or on cancel. Returns the number of pods seen Running.
    async fn wait_done(
        &self,
        control_plane: &mut ControlPlane,
        etcd: Option<&Etcd>,
        observer: &Observer,
        creator: &tokio::task::JoinHandle<Created>,
        created: &AtomicUsize,
        start: Instant,
    ) -> Result<usize> {
        let deadline = start + self.settings.duration + self.settings.settle_timeout;
        let running = observer.running();
        let mut last_progress = Instant::now();
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => bail!("interrupted"),
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            control_plane.ensure_running()?;
            let seen = *running.borrow();
            let (failed, _) = self.recorder.errors();
            if start.elapsed() >= self.settings.duration
                && creator.is_finished()
                && seen >= created.load(Ordering::Relaxed)
            {
                return Ok(seen);
            }
            if Instant::now() > deadline {
                self.recorder.error(format!(
                    "only {seen} of {} pods were seen Running {:?} after creation started",
                    self.settings.pods,
                    start.elapsed()
                ));
                return Ok(seen);
            }
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                // RSS over time shows growth that the peak alone does not.
                let rss = |usage: Result<ProcessUsage>| {
                    usage.map_or_else(|_| "?".to_owned(), |u| format!("{}MiB", u.rss_kib / 1024))
                };
                let etcd_rss =
                    etcd.map_or_else(String::new, |e| format!(", etcd RSS {}", rss(e.usage())));
                progress(
                    self.backend,
                    &format!(
                        "{:.0}s: {seen}/{} pods Running, {failed} errors, control plane RSS {}{etcd_rss}",
                        start.elapsed().as_secs_f64(),
                        self.settings.pods,
                        rss(control_plane.usage()),
                    ),
                );
            }
        }
    }

    /// Matches the stamped writes with their arrival at the observer; returns how many
    /// never arrived.
    fn watch_delays(&self, observer: &Observer) -> usize {
        let mut unmatched = 0;
        for (revision, kind, acked) in self.recorder.acks() {
            match observer.arrival(revision) {
                // An event may beat the write's own answer: that is no delay.
                Some(arrived) => self.recorder.sample(
                    kind.delay_figure(),
                    arrived.saturating_duration_since(acked),
                ),
                None => unmatched += 1,
            }
        }
        unmatched
    }

    /// Schedule latency and pod startup of every created pod; returns the create and bind
    /// rates (pods per second).
    fn pod_latencies(&self, observer: &Observer, created: &Created) -> (f64, f64) {
        let seen = observer.pods();
        let mut last_bound = None;
        for (name, acked) in &created.acks {
            let Some(pod) = seen.get(name) else { continue };
            if let Some(bound) = pod.bound {
                self.recorder.sample(
                    Figure::ScheduleLatency,
                    bound.saturating_duration_since(*acked),
                );
                last_bound = last_bound.max(Some(bound));
            }
            if let Some(running) = pod.running {
                self.recorder.sample(
                    Figure::PodStartup,
                    running.saturating_duration_since(*acked),
                );
            }
        }
        let rate = |count: usize, end: Option<Instant>| match (created.first_start, end) {
            (Some(first), Some(end)) if end > first => {
                #[allow(clippy::cast_precision_loss, reason = "pod counts are far below 2^52")]
                let count = count as f64;
                count / (end - first).as_secs_f64()
            }
            _ => 0.0,
        };
        let bound = seen.values().filter(|p| p.bound.is_some()).count();
        (
            rate(created.acks.len(), created.last_ack),
            rate(bound, last_bound),
        )
    }
}

/// `future`, or an "interrupted" error when `cancel` fires first.
async fn interruptible<T>(
    cancel: &CancellationToken,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        () = cancel.cancelled() => bail!("interrupted"),
        outcome = future => outcome,
    }
}

fn progress(backend: Backend, message: &str) {
    eprintln!("[{backend}] {message}");
}

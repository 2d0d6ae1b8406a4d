//! What a run measures: latency samples per figure, the acknowledgement time of every write
//! (keyed by the resourceVersion the API server answered with, for the watch-event delay),
//! and the errors of the workload.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferrolet_tests::measure::Summary;
use kube::Resource;

/// How long one request may take before it counts as failed; keeps every request bounded.
pub const REQUEST_TIMEOUT: Duration = Duration::from_mins(1);
/// How many error messages are kept for the report (all are counted).
const KEPT_ERRORS: usize = 10;

/// The kinds of objects whose writes are stamped, and whose watch events are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Watched {
    Pods,
    Nodes,
    Leases,
}

impl Watched {
    pub const ALL: [Watched; 3] = [Watched::Pods, Watched::Nodes, Watched::Leases];

    /// The figure of the watch-event delay of this kind.
    pub fn delay_figure(self) -> Figure {
        match self {
            Watched::Pods => Figure::WatchDelayPods,
            Watched::Nodes => Figure::WatchDelayNodes,
            Watched::Leases => Figure::WatchDelayLeases,
        }
    }
}

/// One measured distribution of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Figure {
    NodeCreate,
    LeaseCreate,
    PodCreate,
    LeaseUpdate,
    NodeStatusPatch,
    PodStatusPatch,
    /// Pod create acknowledged → the watch shows it bound (`spec.nodeName`).
    ScheduleLatency,
    /// Pod create acknowledged → the watch shows it Running (the fake node patched it).
    PodStartup,
    ListPodsAll,
    ListPodsNode,
    ListNodes,
    WatchDelayPods,
    WatchDelayNodes,
    WatchDelayLeases,
}

impl Figure {
    /// In report order.
    pub const ALL: [Figure; 14] = [
        Figure::PodCreate,
        Figure::PodStatusPatch,
        Figure::LeaseUpdate,
        Figure::NodeStatusPatch,
        Figure::NodeCreate,
        Figure::LeaseCreate,
        Figure::ScheduleLatency,
        Figure::PodStartup,
        Figure::ListPodsAll,
        Figure::ListPodsNode,
        Figure::ListNodes,
        Figure::WatchDelayPods,
        Figure::WatchDelayNodes,
        Figure::WatchDelayLeases,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Figure::NodeCreate => "write: node create",
            Figure::LeaseCreate => "write: lease create",
            Figure::PodCreate => "write: pod create",
            Figure::LeaseUpdate => "write: lease update",
            Figure::NodeStatusPatch => "write: node status patch",
            Figure::PodStatusPatch => "write: pod status patch",
            Figure::ScheduleLatency => "schedule latency",
            Figure::PodStartup => "pod startup (to Running)",
            Figure::ListPodsAll => "list: pods, all",
            Figure::ListPodsNode => "list: pods, one node",
            Figure::ListNodes => "list: nodes",
            Figure::WatchDelayPods => "watch delay: pods",
            Figure::WatchDelayNodes => "watch delay: nodes",
            Figure::WatchDelayLeases => "watch delay: leases",
        }
    }

    /// Whether this is a single-object write (the figures the API latency SLO is about).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Figure::NodeCreate
                | Figure::LeaseCreate
                | Figure::PodCreate
                | Figure::LeaseUpdate
                | Figure::NodeStatusPatch
                | Figure::PodStatusPatch
        )
    }

    /// The kind of object a write of this figure changes.
    fn written(self) -> Option<Watched> {
        match self {
            Figure::PodCreate | Figure::PodStatusPatch => Some(Watched::Pods),
            Figure::NodeCreate | Figure::NodeStatusPatch => Some(Watched::Nodes),
            Figure::LeaseCreate | Figure::LeaseUpdate => Some(Watched::Leases),
            _ => None,
        }
    }
}

/// The samples, write stamps and errors of one run; shared by every task of the run.
#[derive(Debug, Default)]
pub struct Recorder {
    samples: Mutex<HashMap<Figure, Vec<Duration>>>,
    /// resourceVersion of each acknowledged write → what it wrote and when the answer came.
    acks: Mutex<HashMap<i64, (Watched, Instant)>>,
    errors: Mutex<Errors>,
    /// Watch failures the watchers recovered from by re-watching or re-listing.
    watch_errors: Mutex<Errors>,
}

#[derive(Debug, Default)]
struct Errors {
    count: usize,
    first: Vec<String>,
}

impl Errors {
    fn add(&mut self, message: String) {
        self.count += 1;
        if self.first.len() < KEPT_ERRORS {
            self.first.push(message);
        }
    }
}

impl Recorder {
    pub fn sample(&self, figure: Figure, took: Duration) {
        lock(&self.samples).entry(figure).or_default().push(took);
    }

    /// Counts a failure of the workload; the run fails at the end.
    pub fn error(&self, message: String) {
        lock(&self.errors).add(message);
    }

    /// Counts a watch failure that the watcher recovers from; reported, not fatal.
    pub fn watch_error(&self, message: String) {
        lock(&self.watch_errors).add(message);
    }

    /// Times a single-object write and stamps its resourceVersion. A failure (or no answer
    /// within [`REQUEST_TIMEOUT`]) is recorded as an error, described by `what`, and gives
    /// `None`.
    pub async fn write<K: Resource>(
        &self,
        figure: Figure,
        what: impl FnOnce() -> String,
        request: impl Future<Output = kube::Result<K>>,
    ) -> Option<K> {
        let start = Instant::now();
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(object)) => {
                let acked = Instant::now();
                self.sample(figure, acked - start);
                if let (Some(kind), Some(revision)) = (figure.written(), revision_of(&object)) {
                    lock(&self.acks).insert(revision, (kind, acked));
                }
                Some(object)
            }
            Ok(Err(err)) => {
                self.error(format!("{}: {err}", what()));
                None
            }
            Err(_) => {
                self.error(format!("{}: no answer within {REQUEST_TIMEOUT:?}", what()));
                None
            }
        }
    }

    /// Every stamped write.
    pub fn acks(&self) -> Vec<(i64, Watched, Instant)> {
        lock(&self.acks)
            .iter()
            .map(|(rv, (kind, at))| (*rv, *kind, *at))
            .collect()
    }

    /// The summary of every figure with samples.
    pub fn summaries(&self) -> HashMap<Figure, Summary> {
        lock(&self.samples)
            .iter()
            .filter_map(|(figure, samples)| Summary::of(samples).map(|s| (*figure, s)))
            .collect()
    }

    /// The number of errors and the first few messages.
    pub fn errors(&self) -> (usize, Vec<String>) {
        let errors = lock(&self.errors);
        (errors.count, errors.first.clone())
    }

    /// The number of recovered watch failures and the first few messages.
    pub fn watch_errors(&self) -> (usize, Vec<String>) {
        let errors = lock(&self.watch_errors);
        (errors.count, errors.first.clone())
    }
}

/// `metadata.resourceVersion` as a store revision.
pub fn revision_of<K: Resource>(object: &K) -> Option<i64> {
    object.meta().resource_version.as_deref()?.parse().ok()
}

/// Locks a mutex; a panicked holder does not invalidate figures, so poisoning is ignored.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

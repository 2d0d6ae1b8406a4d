//! One scheduling pass: decide for every pending pod that is due on the cache's view of the
//! nodes, assuming each onto its node as it is placed (kube-scheduler's scheduling cycle), then
//! bind them all concurrently (its binding cycle) or record why they do not fit. The API
//! writes go through [`SchedulerApi`], so that a pass runs against a recording fake in tests
//! and against a real API server in production.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Binding, Event, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use super::algorithm::{self, REASON_SCHEDULER_ERROR};
use super::cache;
use super::objects::{self, EventReporter};
use super::queue::{BackoffConfig, SchedulingQueue};
use super::run::{Error, SchedulerConfig, error_chain};
use super::state::SchedulerCache;

/// Bindings in flight at once in a pass (kube-scheduler binds each pod in its own goroutine).
const BIND_CONCURRENCY: usize = 32;

/// The API writes of the scheduler.
#[async_trait]
pub trait SchedulerApi: Send + Sync {
    /// POSTs `pods/{name}/binding`.
    async fn bind(&self, binding: &Binding) -> kube::Result<()>;
    /// Applies a JSON merge patch to `pods/{name}/status`.
    async fn patch_pod_status(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> kube::Result<()>;
    /// Creates a core/v1 event.
    async fn create_event(&self, event: &Event) -> kube::Result<()>;
}

/// [`SchedulerApi`] over a kube-rs client.
#[derive(Clone)]
pub struct KubeSchedulerApi {
    client: Client,
}

impl std::fmt::Debug for KubeSchedulerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSchedulerApi").finish_non_exhaustive()
    }
}

impl KubeSchedulerApi {
    /// Writes through `client`.
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl SchedulerApi for KubeSchedulerApi {
    async fn bind(&self, binding: &Binding) -> kube::Result<()> {
        let namespace = binding.metadata.namespace.as_deref().unwrap_or_default();
        let name = binding.metadata.name.as_deref().unwrap_or_default();
        // The API server answers with a Status object, not a Binding.
        let _: serde_json::Value = Api::<Pod>::namespaced(self.client.clone(), namespace)
            .create_subresource("binding", name, &PostParams::default(), binding)
            .await?;
        Ok(())
    }

    async fn patch_pod_status(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> kube::Result<()> {
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    async fn create_event(&self, event: &Event) -> kube::Result<()> {
        let namespace = event.metadata.namespace.as_deref().unwrap_or_default();
        Api::<Event>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), event)
            .await?;
        Ok(())
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// `(namespace/name, node)` of each pod bound.
    pub bound: Vec<(String, String)>,
    /// `namespace/name` of each pod that did not fit or failed to bind.
    pub failed: Vec<String>,
}

/// How a binding ended.
enum BindOutcome {
    Bound,
    /// 409 because the pod already has a node: someone (a previous attempt of ours whose
    /// answer was lost, say) bound it; the watch will show where.
    AlreadyBound,
    /// 409 for another reason (being deleted) or 404: only back off.
    GoneOrTaken(String),
    Failed(kube::Error),
}

fn bind_outcome(result: kube::Result<()>) -> BindOutcome {
    match result {
        Ok(()) => BindOutcome::Bound,
        Err(kube::Error::Api(status))
            if status.is_conflict() && status.message.contains("already assigned to node") =>
        {
            BindOutcome::AlreadyBound
        }
        Err(kube::Error::Api(status)) if status.is_conflict() || status.is_not_found() => {
            BindOutcome::GoneOrTaken(status.message.clone())
        }
        Err(error) => BindOutcome::Failed(error),
    }
}

/// The scheduler's state across passes: the cache, the queue, and the last
/// `FailedScheduling` event of each pod (to not repeat an unchanged one).
#[derive(Debug)]
pub struct Scheduler<A> {
    api: A,
    reporter: EventReporter,
    event_repeat_interval: Duration,
    queue: SchedulingQueue,
    cache: SchedulerCache,
    last_failure: HashMap<String, (String, Instant)>,
}

impl<A: SchedulerApi> Scheduler<A> {
    /// A scheduler writing through `api`.
    pub fn new(api: A, config: &SchedulerConfig) -> Self {
        Self {
            api,
            reporter: EventReporter {
                component: config.scheduler_name.clone(),
                instance: config.reporting_instance.clone(),
            },
            event_repeat_interval: config.event_repeat_interval,
            queue: SchedulingQueue::new(BackoffConfig {
                initial: config.initial_backoff,
                max: config.max_backoff,
                unschedulable_timeout: config.unschedulable_timeout,
            }),
            cache: SchedulerCache::new(&config.scheduler_name, config.assumed_pod_ttl),
            last_failure: HashMap::new(),
        }
    }

    /// The writes go here.
    pub fn api(&self) -> &A {
        &self.api
    }

    /// The cache the decisions are made on.
    pub fn cache(&self) -> &SchedulerCache {
        &self.cache
    }

    /// A change that may let unschedulable pods fit (node added or changed, bound pod gone).
    pub fn cluster_changed(&mut self) {
        self.queue.cluster_changed();
    }

    /// When a waiting pod is due next.
    #[must_use]
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.queue.next_ready_at()
    }

    /// Takes a pod watch event into the cache; true if resources may have been freed.
    pub fn pod_event(&mut self, event: watcher::Event<Pod>) -> bool {
        let applied = match event {
            watcher::Event::Init => {
                self.cache.begin_pod_relist();
                return false;
            }
            watcher::Event::InitDone => self.cache.end_pod_relist(),
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                self.cache.update_pod(pod)
            }
            watcher::Event::Delete(pod) => self.cache.delete_pod(&pod),
        };
        applied.cluster_changed
    }

    /// Takes a node watch event into the cache.
    pub fn node_event(&mut self, event: watcher::Event<Node>) {
        match event {
            watcher::Event::Init => self.cache.begin_node_relist(),
            watcher::Event::InitDone => self.cache.end_node_relist(),
            watcher::Event::Apply(node) | watcher::Event::InitApply(node) => {
                self.cache.update_node(node);
            }
            watcher::Event::Delete(node) => {
                self.cache
                    .delete_node(node.metadata.name.as_deref().unwrap_or_default());
            }
        }
    }

    /// Schedules every pending pod that is due at `now`, in priority order: each is decided
    /// on the cache's nodes and assumed there at once, so the next decision sees it; then all
    /// are bound concurrently. API failures are logged and retried with backoff.
    pub async fn schedule_pending(
        &mut self,
        now: Instant,
        wall: Timestamp,
        cancel: &CancellationToken,
    ) -> PassReport {
        let mut report = PassReport::default();
        self.cache.cleanup_expired(now);
        let pending = self.cache.pending();
        self.queue
            .sync(pending.iter().map(|(uid, p)| (uid.as_str(), p.fingerprint)));
        self.last_failure.retain(|uid, _| pending.contains_key(uid));

        let mut due: Vec<Arc<Pod>> = self
            .queue
            .ready(now)
            .iter()
            .filter_map(|uid| pending.get(uid).map(|p| p.pod.clone()))
            .collect();
        if due.is_empty() {
            return report;
        }
        cache::sort_by_priority(&mut due);

        // Scheduling cycle: one decision after another on the same, updated view.
        let mut placed: Vec<(Arc<Pod>, String)> = Vec::new();
        for pod in due {
            if cancel.is_cancelled() {
                break;
            }
            match algorithm::schedule_pod(&pod, self.cache.nodes()) {
                Ok(result) => {
                    self.cache.assume(cache::pod_uid(&pod), &result.node);
                    placed.push((pod, result.node));
                }
                Err(error) => {
                    let key = cache::pod_key(&pod);
                    tracing::info!(pod = %key, reason = %error, "pod is unschedulable");
                    self.record_failure(
                        &pod,
                        error.condition_reason(),
                        &error.to_string(),
                        now,
                        wall,
                    )
                    .await;
                    report.failed.push(key);
                }
            }
        }

        // Binding cycle: every binding at once (bounded), in decision order.
        let api = &self.api;
        let reporter = &self.reporter;
        let outcomes: Vec<(Arc<Pod>, String, BindOutcome)> = futures::stream::iter(placed)
            .map(|(pod, node)| async move {
                let outcome = bind_outcome(api.bind(&objects::binding(&pod, &node)).await);
                if matches!(outcome, BindOutcome::Bound) {
                    let event = objects::scheduled_event(&pod, &node, reporter, wall);
                    emit(api, &pod, event).await;
                }
                (pod, node, outcome)
            })
            .buffered(BIND_CONCURRENCY)
            .collect()
            .await;
        for (pod, node, outcome) in outcomes {
            match self.finish_binding(&pod, &node, outcome, now, wall).await {
                Some(true) => report.bound.push((cache::pod_key(&pod), node)),
                Some(false) => report.failed.push(cache::pod_key(&pod)),
                None => {}
            }
        }
        report
    }

    /// Settles an assumed pod after its binding: confirmed, or forgotten and backed off.
    /// `Some(true)` if it was bound, `Some(false)` if that failed, `None` if someone else had
    /// bound it.
    async fn finish_binding(
        &mut self,
        pod: &Pod,
        node: &str,
        outcome: BindOutcome,
        now: Instant,
        wall: Timestamp,
    ) -> Option<bool> {
        let key = cache::pod_key(pod);
        let uid = cache::pod_uid(pod).to_string();
        match outcome {
            BindOutcome::Bound => {
                tracing::debug!(pod = %key, node, "bound pod");
                self.cache.finish_binding(&uid, now);
                self.queue.remove(&uid);
                self.last_failure.remove(&uid);
                Some(true)
            }
            BindOutcome::AlreadyBound => {
                // Treated as bound: no second attempt; the watch shows the node it is on.
                tracing::info!(pod = %key, "pod is already bound");
                self.cache.finish_binding(&uid, now);
                self.queue.remove(&uid);
                self.last_failure.remove(&uid);
                None
            }
            BindOutcome::GoneOrTaken(message) => {
                tracing::warn!(pod = %key, node, %message, "binding refused");
                self.cache.forget(&uid, true);
                self.queue.mark_failed(&uid, now);
                Some(false)
            }
            BindOutcome::Failed(source) => {
                self.cache.forget(&uid, true);
                let cause = source.to_string();
                let error = Error::BindFailed {
                    pod: key,
                    node: node.to_string(),
                    source,
                };
                tracing::warn!(error = %error_chain(&error), "binding failed");
                let message = format!("running Bind plugin \"DefaultBinder\": {cause}");
                self.record_failure(pod, REASON_SCHEDULER_ERROR, &message, now, wall)
                    .await;
                Some(false)
            }
        }
    }

    /// Backs the pod off, sets `PodScheduled=False` and emits `FailedScheduling` (unless the
    /// same message was emitted for it recently).
    async fn record_failure(
        &mut self,
        pod: &Pod,
        reason: &str,
        message: &str,
        now: Instant,
        wall: Timestamp,
    ) {
        let uid = cache::pod_uid(pod).to_string();
        self.queue.mark_failed(&uid, now);
        if let Some(patch) = objects::unschedulable_condition_patch(pod, reason, message, wall) {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            if let Err(source) = self.api.patch_pod_status(namespace, name, &patch).await {
                let error = Error::StatusPatchFailed {
                    pod: cache::pod_key(pod),
                    source,
                };
                tracing::warn!(error = %error_chain(&error), "recording unschedulable condition");
            }
        }
        let repeat = self.last_failure.get(&uid).is_some_and(|(last, at)| {
            last == message && now.saturating_duration_since(*at) < self.event_repeat_interval
        });
        if !repeat {
            let event = objects::failed_scheduling_event(pod, message, &self.reporter, wall);
            emit(&self.api, pod, event).await;
            self.last_failure.insert(uid, (message.to_string(), now));
        }
    }
}

async fn emit<A: SchedulerApi>(api: &A, pod: &Pod, event: Event) {
    if let Err(source) = api.create_event(&event).await {
        let error = Error::EventFailed {
            pod: cache::pod_key(pod),
            reason: event.reason.clone().unwrap_or_default(),
            source,
        };
        tracing::warn!(error = %error_chain(&error), "recording event");
    }
}

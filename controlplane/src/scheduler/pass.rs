//! One scheduling pass over the watch caches: decide for every pending pod that is due, bind
//! it or record why it does not fit. The API writes go through [`SchedulerApi`], so that a
//! pass runs against a recording fake in tests and against a real API server in production.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Binding, Event, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio_util::sync::CancellationToken;

use super::algorithm::{self, REASON_SCHEDULER_ERROR};
use super::cache::{self, AssumeCache};
use super::objects::{self, EventReporter};
use super::queue::{BackoffConfig, SchedulingQueue};
use super::run::{Error, SchedulerConfig, error_chain};

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

/// The scheduler's state across passes: the queue, the assume cache, and the last
/// `FailedScheduling` event of each pod (to not repeat an unchanged one).
#[derive(Debug)]
pub struct Scheduler<A> {
    api: A,
    name: String,
    reporter: EventReporter,
    event_repeat_interval: Duration,
    queue: SchedulingQueue,
    assumed: AssumeCache,
    last_failure: HashMap<String, (String, Instant)>,
}

impl<A: SchedulerApi> Scheduler<A> {
    /// A scheduler writing through `api`.
    pub fn new(api: A, config: &SchedulerConfig) -> Self {
        Self {
            api,
            name: config.scheduler_name.clone(),
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
            assumed: AssumeCache::new(config.assumed_pod_ttl),
            last_failure: HashMap::new(),
        }
    }

    /// The writes go here.
    pub fn api(&self) -> &A {
        &self.api
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

    /// Schedules every pending pod that is due at `now`, in priority order, on the nodes and
    /// pods of the watch caches. API failures are logged and retried with backoff.
    pub async fn schedule_pending(
        &mut self,
        nodes: &[Arc<Node>],
        pods: &[Arc<Pod>],
        now: Instant,
        wall: Timestamp,
        cancel: &CancellationToken,
    ) -> PassReport {
        let mut report = PassReport::default();
        let by_uid: HashMap<&str, &Pod> = pods
            .iter()
            .map(|p| (cache::pod_uid(p), p.as_ref()))
            .collect();
        self.assumed.reconcile(|uid| by_uid.get(uid).copied(), now);

        let pending: Vec<&Pod> = pods
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| {
                let uid = cache::pod_uid(p);
                !uid.is_empty()
                    && cache::is_pending_for(p, &self.name)
                    && !self.assumed.contains(uid)
            })
            .collect();
        self.queue.sync(
            pending
                .iter()
                .map(|p| (cache::pod_uid(p), cache::scheduling_fingerprint(p))),
        );
        let pending_uids: HashSet<&str> = pending.iter().map(|p| cache::pod_uid(p)).collect();
        self.last_failure
            .retain(|uid, _| pending_uids.contains(uid.as_str()));

        let ready: HashSet<String> = self.queue.ready(now).into_iter().collect();
        let mut due: Vec<&Pod> = pending
            .into_iter()
            .filter(|p| ready.contains(cache::pod_uid(p)))
            .collect();
        if due.is_empty() {
            return report;
        }
        cache::sort_by_priority(&mut due);

        let (mut snapshot, skipped) = cache::build_snapshot(
            nodes.iter().map(AsRef::as_ref),
            pods.iter().map(AsRef::as_ref),
            &self.assumed,
        );
        for s in skipped {
            tracing::warn!(node = %s.node, error = %s.error, "leaving node out of scheduling");
        }

        for pod in due {
            if cancel.is_cancelled() {
                break;
            }
            let key = cache::pod_key(pod);
            match algorithm::schedule_pod(pod, &snapshot) {
                Ok(result) => {
                    if self.bind(pod, &result.node, now, wall).await {
                        let mut bound = pod.clone();
                        bound.spec.get_or_insert_with(Default::default).node_name =
                            Some(result.node.clone());
                        if let Some(info) = snapshot.iter_mut().find(|n| n.name() == result.node)
                            && let Err(error) = info.add_pod(bound)
                        {
                            tracing::warn!(pod = %key, %error, "accounting bound pod");
                        }
                        report.bound.push((key, result.node));
                    } else {
                        report.failed.push(key);
                    }
                }
                Err(error) => {
                    tracing::info!(pod = %key, reason = %error, "pod is unschedulable");
                    self.record_failure(
                        pod,
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
        report
    }

    /// Binds and, on success, assumes the pod and reports it; on failure, backs off.
    async fn bind(&mut self, pod: &Pod, node: &str, now: Instant, wall: Timestamp) -> bool {
        let key = cache::pod_key(pod);
        let uid = cache::pod_uid(pod).to_string();
        match self.api.bind(&objects::binding(pod, node)).await {
            Ok(()) => {
                tracing::info!(pod = %key, node, "bound pod");
                self.assumed.assume(pod, node, now);
                self.queue.remove(&uid);
                self.last_failure.remove(&uid);
                let event = objects::scheduled_event(pod, node, &self.reporter, wall);
                self.emit(pod, event).await;
                true
            }
            Err(source) => {
                let gone_or_taken =
                    matches!(&source, kube::Error::Api(s) if s.is_conflict() || s.is_not_found());
                let cause = source.to_string();
                let error = Error::BindFailed {
                    pod: key,
                    node: node.to_string(),
                    source,
                };
                tracing::warn!(error = %error_chain(&error), "binding failed");
                if gone_or_taken {
                    // Bound elsewhere or deleted meanwhile: the watch will tell; back off only.
                    self.queue.mark_failed(&uid, now);
                } else {
                    let message = format!("running Bind plugin \"DefaultBinder\": {cause}");
                    self.record_failure(pod, REASON_SCHEDULER_ERROR, &message, now, wall)
                        .await;
                }
                false
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
            self.emit(pod, event).await;
            self.last_failure.insert(uid, (message.to_string(), now));
        }
    }

    async fn emit(&self, pod: &Pod, event: Event) {
        if let Err(source) = self.api.create_event(&event).await {
            let error = Error::EventFailed {
                pod: cache::pod_key(pod),
                reason: event.reason.clone().unwrap_or_default(),
                source,
            };
            tracing::warn!(error = %error_chain(&error), "recording event");
        }
    }
}

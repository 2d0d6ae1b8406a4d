//! The scheduler loop: watches over pods and nodes feeding the scheduler's cache, and a
//! scheduling pass whenever the cluster changed or a waiting pod is due. It speaks only the Kubernetes API through a
//! kube-rs `Client`, like kube-scheduler, so it runs against any API server.

use std::collections::HashMap;
use std::future;
use std::pin::pin;
use std::time::{Duration, Instant};

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::cache::{self, DEFAULT_SCHEDULER_NAME};
use super::pass::{KubeSchedulerApi, Scheduler};

/// Settings of the scheduler loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// The `spec.schedulerName` this scheduler serves; also its event source component.
    pub scheduler_name: String,
    /// `reportingInstance` of its events (e.g. the host name).
    pub reporting_instance: String,
    /// Backoff after a pod's first failed attempt.
    pub initial_backoff: Duration,
    /// Upper bound of the per-pod backoff.
    pub max_backoff: Duration,
    /// How long an unschedulable pod waits for a cluster change before it is retried anyway.
    pub unschedulable_timeout: Duration,
    /// How long after its binding was accepted an assumed pod may wait for the watch to show
    /// it bound before it is dropped; `None` waits as long as it takes (kube-scheduler's
    /// default: a pod the API server bound is bound, however late the watch).
    pub assumed_pod_ttl: Option<Duration>,
    /// An unchanged `FailedScheduling` event of a pod is repeated at most this often.
    pub event_repeat_interval: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            scheduler_name: DEFAULT_SCHEDULER_NAME.to_string(),
            reporting_instance: "ferrolet-controlplane".to_string(),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            unschedulable_timeout: Duration::from_mins(1),
            assumed_pod_ttl: None,
            event_repeat_interval: Duration::from_mins(5),
        }
    }
}

/// Errors of the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A watch stream ended, which kube-runtime's watchers never do on their own.
    #[error("the {resource} watch ended")]
    WatchEnded {
        /// `pods` or `nodes`.
        resource: &'static str,
    },
    /// POST `pods/{name}/binding` failed.
    #[error("binding pod {pod} to node {node}")]
    BindFailed {
        pod: String,
        node: String,
        #[source]
        source: kube::Error,
    },
    /// PATCH `pods/{name}/status` failed.
    #[error("patching the status of pod {pod}")]
    StatusPatchFailed {
        pod: String,
        #[source]
        source: kube::Error,
    },
    /// Creating an event failed.
    #[error("creating a {reason} event for pod {pod}")]
    EventFailed {
        pod: String,
        reason: String,
        #[source]
        source: kube::Error,
    },
}

/// Result of the scheduler.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its sources, joined with `": "`, for a log line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Turns watch events into what the scheduler cares about: whether both caches are synced,
/// and whether a change may let unschedulable pods fit.
#[derive(Debug, Default)]
pub struct ClusterWatch {
    pods_synced: bool,
    nodes_synced: bool,
    node_fingerprints: HashMap<String, u64>,
}

impl ClusterWatch {
    /// Whether both watch caches hold a full list.
    #[must_use]
    pub fn synced(&self) -> bool {
        self.pods_synced && self.nodes_synced
    }

    /// Takes a pod event; true if resources may have been freed (a bound pod deleted or
    /// finished, or a relist that may have missed that).
    pub fn pod_event(&mut self, event: &watcher::Event<Pod>) -> bool {
        match event {
            watcher::Event::InitDone => {
                self.pods_synced = true;
                true
            }
            watcher::Event::Delete(pod) => cache::bound_node(pod).is_some(),
            watcher::Event::Apply(pod) => {
                cache::bound_node(pod).is_some() && cache::is_terminal(pod)
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => false,
        }
    }

    /// Takes a node event; true if a node appeared or changed what the filters read.
    pub fn node_event(&mut self, event: &watcher::Event<Node>) -> bool {
        match event {
            watcher::Event::InitDone => {
                self.nodes_synced = true;
                true
            }
            watcher::Event::Apply(node) | watcher::Event::InitApply(node) => {
                let fingerprint = cache::node_fingerprint(node);
                self.node_fingerprints.insert(node.name_any(), fingerprint) != Some(fingerprint)
            }
            watcher::Event::Delete(node) => {
                self.node_fingerprints.remove(&node.name_any());
                false
            }
            watcher::Event::Init => false,
        }
    }
}

type WatchItem<K> = Option<std::result::Result<watcher::Event<K>, watcher::Error>>;

/// Applies one watch item; `Err` when the stream ended.
fn take<K>(
    item: WatchItem<K>,
    resource: &'static str,
    handle: &mut impl FnMut(watcher::Event<K>) -> bool,
) -> Result<bool> {
    match item {
        Some(Ok(event)) => Ok(handle(event)),
        Some(Err(error)) => {
            // The watcher retries with backoff; the cache stays as it was meanwhile.
            tracing::warn!(resource, error = %error_chain(&error), "watch error");
            Ok(false)
        }
        None => Err(Error::WatchEnded { resource }),
    }
}

/// Takes every item a stream has ready without waiting; true if any changed the cluster.
fn drain<K, S: Stream<Item = std::result::Result<watcher::Event<K>, watcher::Error>> + Unpin>(
    stream: &mut S,
    resource: &'static str,
    handle: &mut impl FnMut(watcher::Event<K>) -> bool,
) -> Result<bool> {
    let mut changed = false;
    while let Some(item) = stream.next().now_or_never() {
        changed |= take(item, resource, handle)?;
    }
    Ok(changed)
}

/// Runs the scheduler until `cancel` fires: watches pods and nodes, binds each pending pod
/// (`spec.nodeName` empty, not being deleted, `spec.schedulerName` this scheduler's) to the
/// best node, and records `PodScheduled=False` and a `FailedScheduling` event for those that
/// fit nowhere, retrying them when nodes change and periodically with backoff.
pub async fn run(client: Client, config: SchedulerConfig, cancel: CancellationToken) -> Result<()> {
    let mut pod_events = pin!(
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()).default_backoff()
    );
    let mut node_events = pin!(
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).default_backoff()
    );
    let mut scheduler = Scheduler::new(KubeSchedulerApi::new(client), &config);
    let mut watch = ClusterWatch::default();
    tracing::info!(scheduler = %config.scheduler_name, "scheduler started");

    loop {
        let wakeup = scheduler.next_wakeup();
        let due = async move {
            match wakeup {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => future::pending().await,
            }
        };
        let mut on_pod = |event: watcher::Event<Pod>| {
            let changed = watch.pod_event(&event);
            scheduler.pod_event(event) || changed
        };
        let mut changed = tokio::select! {
            () = cancel.cancelled() => break,
            item = pod_events.next() => take(item, "pods", &mut on_pod)?,
            item = node_events.next() => take(item, "nodes", &mut |e| {
                let changed = watch.node_event(&e);
                scheduler.node_event(e);
                changed
            })?,
            () = due => false,
        };
        // Coalesce a burst of events into one pass.
        changed |= drain(&mut pod_events, "pods", &mut |e| {
            let changed = watch.pod_event(&e);
            scheduler.pod_event(e) || changed
        })?;
        changed |= drain(&mut node_events, "nodes", &mut |e| {
            let changed = watch.node_event(&e);
            scheduler.node_event(e);
            changed
        })?;
        if changed {
            scheduler.cluster_changed();
        }
        if watch.synced() {
            let report = scheduler
                .schedule_pending(Instant::now(), Timestamp::now(), &cancel)
                .await;
            if !report.bound.is_empty() || !report.failed.is_empty() {
                tracing::debug!(
                    bound = report.bound.len(),
                    failed = report.failed.len(),
                    assumed = scheduler.cache().assumed_count(),
                    "scheduling pass"
                );
            }
        }
    }
    tracing::info!("scheduler stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..Node::default()
        }
    }

    fn bound_pod(phase: &str) -> Pod {
        Pod {
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn synced_only_after_both_initial_lists() {
        let mut w = ClusterWatch::default();
        assert!(!w.synced());
        w.pod_event(&watcher::Event::InitDone);
        assert!(!w.synced());
        w.node_event(&watcher::Event::InitDone);
        assert!(w.synced());
    }

    #[test]
    fn node_changes_count_only_when_the_filters_would_see_them() {
        let mut w = ClusterWatch::default();
        let n = node("n1", &[("zone", "a")]);
        assert!(w.node_event(&watcher::Event::Apply(n.clone())), "new node");
        let mut heartbeat = n.clone();
        heartbeat.metadata.resource_version = Some("2".into());
        assert!(
            !w.node_event(&watcher::Event::Apply(heartbeat)),
            "no relevant change"
        );
        assert!(w.node_event(&watcher::Event::Apply(node("n1", &[("zone", "b")]))));
        assert!(!w.node_event(&watcher::Event::Delete(n)));
    }

    #[test]
    fn freed_resources_count_as_a_change() {
        let mut w = ClusterWatch::default();
        assert!(w.pod_event(&watcher::Event::Delete(bound_pod("Running"))));
        assert!(w.pod_event(&watcher::Event::Apply(bound_pod("Succeeded"))));
        assert!(!w.pod_event(&watcher::Event::Apply(bound_pod("Running"))));
        assert!(
            !w.pod_event(&watcher::Event::Delete(Pod::default())),
            "unbound pod"
        );
    }

    #[test]
    fn error_chain_joins_sources() {
        let error = Error::BindFailed {
            pod: "default/p".into(),
            node: "n1".into(),
            source: kube::Error::Api(
                kube::core::Status::failure("pod p is already assigned", "Conflict")
                    .with_code(409)
                    .boxed(),
            ),
        };
        let text = error_chain(&error);
        assert!(
            text.starts_with("binding pod default/p to node n1: "),
            "{text}"
        );
        assert!(text.contains("already assigned"), "{text}");
    }
}

//! Pod workers: one task per pod UID. Updates from the sources, runtime events from the
//! PLEG and timers wake a pod's worker, which syncs the pod and reports its status; a pod
//! being deleted is terminated within its grace period, cleaned up, and then deleted from the
//! API with grace 0, as the kubelet finalizes pods.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::admission::{self, Rejection};
use super::status_manager::{StatusManager, StatusTarget};
use super::sync::{PodState, PodSyncer, pod_grace};
use crate::sources::{CONFIG_MIRROR_ANNOTATION, is_static};
use crate::status::PodPhase;

/// How long a terminated pod's clean-up is retried before the pod is finalized anyway.
const CLEANUP_LIMIT: Duration = Duration::from_mins(2);

/// How often a worker syncs its pod without being woken.
const RESYNC: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum Message {
    Update(Arc<Pod>),
    Removed,
    Wake,
}

/// A pod's worker: where to send its news, and the pod as last seen (for admission).
#[derive(Debug)]
struct Worker {
    messages: mpsc::UnboundedSender<Message>,
    pod: Arc<Pod>,
    /// The pod reached Succeeded or Failed here: it no longer takes room.
    finished: bool,
}

/// The workers of all pods.
pub struct PodWorkers {
    syncer: Arc<PodSyncer>,
    status: Arc<StatusManager>,
    client: Option<kube::Client>,
    /// This node as the API has it now, for admission.
    node: watch::Receiver<Option<Arc<Node>>>,
    workers: Mutex<HashMap<String, Worker>>,
    /// Mirror pods by `namespace/name` of the static pod.
    mirrors: Mutex<HashMap<String, Arc<Pod>>>,
    max_pods: usize,
    cancel: CancellationToken,
}

impl std::fmt::Debug for PodWorkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodWorkers").finish_non_exhaustive()
    }
}

fn full_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn is_terminal(status: Option<&k8s_openapi::api::core::v1::PodStatus>) -> bool {
    status
        .and_then(|s| s.phase.as_deref())
        .and_then(PodPhase::parse)
        .is_some_and(PodPhase::is_terminal)
}

impl PodWorkers {
    #[must_use]
    pub fn new(
        syncer: Arc<PodSyncer>,
        status: Arc<StatusManager>,
        client: Option<kube::Client>,
        node: watch::Receiver<Option<Arc<Node>>>,
        max_pods: usize,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(PodWorkers {
            syncer,
            status,
            client,
            node,
            workers: Mutex::new(HashMap::new()),
            mirrors: Mutex::new(HashMap::new()),
            max_pods,
            cancel,
        })
    }

    fn workers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Worker>> {
        self.workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The UIDs of pods with a worker.
    #[must_use]
    pub fn known(&self) -> BTreeSet<String> {
        self.workers().keys().cloned().collect()
    }

    /// The pods with a worker (the kubelet server's `/pods`).
    #[must_use]
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.workers().values().map(|w| w.pod.clone()).collect()
    }

    /// A pod from a source was added or changed.
    pub fn update(self: &Arc<Self>, pod: Arc<Pod>) {
        let id = uid(&pod);
        let mut workers = self.workers();
        if let Some(worker) = workers.get_mut(&id) {
            worker.pod = pod.clone();
            let _ = worker.messages.send(Message::Update(pod));
            return;
        }
        if let Err(rejection) = self.admit(&pod, &workers) {
            drop(workers);
            self.reject(&pod, &rejection.reason, &rejection.message);
            return;
        }
        let running = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Running");
        crate::metrics::kubelet_metrics().pod_seen(&id, running);
        let (tx, rx) = mpsc::unbounded_channel();
        workers.insert(
            id,
            Worker {
                messages: tx,
                pod: pod.clone(),
                finished: false,
            },
        );
        drop(workers);
        let this = self.clone();
        tokio::spawn(async move { this.run(pod, rx).await });
    }

    /// Whether a new pod may run here. Pods being deleted or finished need no admission, and
    /// neither does one a kubelet already ran (after an agent restart it keeps running).
    fn admit(&self, pod: &Pod, workers: &HashMap<String, Worker>) -> Result<(), Rejection> {
        let running = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Running");
        if pod.metadata.deletion_timestamp.is_some() || is_terminal(pod.status.as_ref()) || running
        {
            return Ok(());
        }
        let active: Vec<&Pod> = workers
            .values()
            .filter(|w| !w.finished)
            .map(|w| w.pod.as_ref())
            .filter(|p| !is_terminal(p.status.as_ref()))
            .collect();
        let node = self.node.borrow().clone();
        match node {
            Some(node) => admission::admit(pod, &node, &active, self.max_pods),
            // Not seen the Node yet: only the pod count can be checked.
            None if active.len() >= self.max_pods => Err(Rejection {
                reason: "OutOfpods".into(),
                message: "Node didn't have enough resource: pods".into(),
            }),
            None => Ok(()),
        }
    }

    /// A pod is gone from its source. A mirror pod that is gone is made again by its static
    /// pod's worker.
    pub fn removed(&self, uid: &str) {
        self.mirrors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, mirror| mirror.metadata.uid.as_deref() != Some(uid));
        if let Some(worker) = self.workers().get(uid) {
            let _ = worker.messages.send(Message::Removed);
        }
    }

    /// Something changed in the runtime for a pod.
    pub fn wake(&self, uid: &str) {
        if let Some(worker) = self.workers().get(uid) {
            let _ = worker.messages.send(Message::Wake);
        }
    }

    /// A mirror pod was seen in the API. One being deleted (a user deleted it) is deleted at
    /// once, and its static pod's worker makes a new one, as the kubelet does.
    pub fn mirror(&self, mirror: Arc<Pod>) {
        let mut mirrors = self
            .mirrors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if mirror.metadata.deletion_timestamp.is_none() {
            mirrors.insert(full_name(&mirror), mirror);
            return;
        }
        mirrors.retain(|_, known| known.metadata.uid != mirror.metadata.uid);
        drop(mirrors);
        if let Some(client) = self.client.clone() {
            tokio::spawn(async move { delete_mirror(client, &mirror).await });
        }
    }

    /// Admission refused the pod: it is Failed with a reason, and never runs.
    fn reject(self: &Arc<Self>, pod: &Pod, reason: &str, message: &str) {
        let mut status = pod.status.clone().unwrap_or_default();
        status.phase = Some("Failed".into());
        status.reason = Some(reason.into());
        status.message = Some(format!("Pod was rejected: {message}"));
        let target = StatusTarget::of(pod);
        let api_status = pod.status.clone();
        let manager = self.status.clone();
        self.syncer.events.record(
            crate::events::pod_reference(pod, None),
            crate::events::EventType::Warning,
            reason,
            format!("Pod was rejected: {message}"),
        );
        tokio::spawn(async move {
            if let Err(err) = manager.update(&target, api_status.as_ref(), &status).await {
                tracing::warn!(%err, "report rejected pod");
            }
        });
    }

    /// Where the status of `pod` goes: itself, or its mirror pod for a static pod (made
    /// when missing).
    async fn status_target(
        &self,
        pod: &Pod,
    ) -> Option<(StatusTarget, Option<k8s_openapi::api::core::v1::PodStatus>)> {
        if !is_static(pod) {
            return Some((StatusTarget::of(pod), pod.status.clone()));
        }
        let name = full_name(pod);
        let known = self
            .mirrors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&name)
            .cloned();
        if let Some(mirror) = known {
            return Some((StatusTarget::of(&mirror), mirror.status.clone()));
        }
        let client = self.client.clone()?;
        let mut mirror = pod.clone();
        mirror.metadata.uid = None;
        mirror.metadata.resource_version = None;
        mirror.status = None;
        let hash = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::sources::CONFIG_HASH_ANNOTATION))
            .cloned()
            .unwrap_or_default();
        mirror
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(CONFIG_MIRROR_ANNOTATION.into(), hash);
        let node_name = self.syncer.node.node_name.clone();
        if let Ok(node) = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
            .get(&node_name)
            .await
        {
            mirror.metadata.owner_references = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: node_name,
                    uid: node.metadata.uid.unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: None,
                },
            ]);
        }
        let api: Api<Pod> = Api::namespaced(
            client,
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        match api.create(&PostParams::default(), &mirror).await {
            Ok(created) => {
                let created = Arc::new(created);
                self.mirrors
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(name, created.clone());
                Some((StatusTarget::of(&created), created.status.clone()))
            }
            Err(err) => {
                tracing::warn!(pod = %name, %err, "create mirror pod");
                None
            }
        }
    }

    async fn report(&self, pod: &Pod, status: &k8s_openapi::api::core::v1::PodStatus) {
        let Some((target, api_status)) = self.status_target(pod).await else {
            return;
        };
        if let Err(err) = self
            .status
            .update(&target, api_status.as_ref(), status)
            .await
        {
            tracing::warn!(pod = %full_name(pod), %err, "report pod status");
        }
    }

    async fn run(
        self: Arc<Self>,
        mut pod: Arc<Pod>,
        mut messages: mpsc::UnboundedReceiver<Message>,
    ) {
        let id = uid(&pod);
        let mut state = PodState::default();
        let mut removed = false;
        let mut next = RESYNC;
        loop {
            if removed || pod.metadata.deletion_timestamp.is_some() {
                self.finish(&pod, removed, &mut state).await;
                break;
            }
            let finished = state
                .last_status
                .as_ref()
                .is_some_and(|s| is_terminal(Some(s)))
                || is_terminal(pod.status.as_ref());
            if finished {
                if let Some(worker) = self.workers().get_mut(&id) {
                    worker.finished = true;
                }
                // Succeeded and Failed pods keep their final status; their sandbox goes.
                if let Err(err) = self.syncer.stop_sandboxes(&id).await {
                    tracing::debug!(pod = %full_name(&pod), %err, "stop sandbox of finished pod");
                }
            } else {
                let outcome = self.syncer.sync(&pod, &mut state).await;
                self.report(&pod, &outcome.status).await;
                next = outcome.requeue.unwrap_or(RESYNC).min(RESYNC);
            }
            // Wait for news; drain the queue so a burst of events makes one sync.
            let message = tokio::select! {
                () = self.cancel.cancelled() => break,
                () = tokio::time::sleep(next) => None,
                message = messages.recv() => message,
            };
            let mut pending = message.into_iter().collect::<Vec<_>>();
            while let Ok(more) = messages.try_recv() {
                pending.push(more);
            }
            for message in pending {
                match message {
                    Message::Update(update) => pod = update,
                    Message::Removed => removed = true,
                    Message::Wake => {}
                }
            }
        }
        self.workers().remove(&id);
    }

    /// Terminates, cleans up and (for an API pod that is being deleted) deletes the pod.
    async fn finish(&self, pod: &Pod, removed: bool, state: &mut PodState) {
        let name = full_name(pod);
        // The kubelet gives the containers the pod's deletion grace period from the moment it
        // acts on the deletion (not what is left of it by the deletion timestamp).
        let grace = if removed {
            Duration::ZERO
        } else {
            Duration::from_secs(u64::try_from(pod_grace(pod)).unwrap_or(0))
        };
        tracing::info!(pod = %name, grace_seconds = grace.as_secs(), "terminating pod");
        let status = self.syncer.terminate(pod, grace, state).await;
        if !removed {
            self.report(pod, &status).await;
        }
        let id = uid(pod);
        // Like the kubelet, the pod object stays until its resources are reclaimed; a slow
        // runtime gets retries with back-off, bounded so that a pod whose clean-up keeps
        // failing is still finalized (housekeeping of orphans keeps trying after).
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(250);
        for attempt in 0.. {
            match self.syncer.cleanup(&id).await {
                Ok(()) => break,
                Err(err) if started.elapsed() < CLEANUP_LIMIT => {
                    tracing::warn!(pod = %name, %err, attempt, "clean up pod; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(err) => {
                    tracing::error!(pod = %name, %err, attempt, "clean up pod failed; finalizing the pod anyway, housekeeping retries");
                    break;
                }
            }
        }
        self.status.forget(&id);
        if !removed
            && !is_static(pod)
            && let Some(client) = &self.client
        {
            let api: Api<Pod> = Api::namespaced(
                client.clone(),
                pod.metadata.namespace.as_deref().unwrap_or_default(),
            );
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(id.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api
                .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
                .await
            {
                Ok(_) => tracing::info!(pod = %name, "pod deleted"),
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(err) => tracing::warn!(pod = %name, %err, "delete pod"),
            }
        }
        if is_static(pod) {
            self.remove_mirror(pod).await;
        }
    }

    async fn remove_mirror(&self, pod: &Pod) {
        let mirror = self
            .mirrors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&full_name(pod));
        if let (Some(mirror), Some(client)) = (mirror, &self.client) {
            delete_mirror(client.clone(), &mirror).await;
        }
    }
}

/// Deletes a mirror pod with grace 0 (its static pod is stopped, or stays and gets a new one).
async fn delete_mirror(client: kube::Client, mirror: &Pod) {
    let api: Api<Pod> = Api::namespaced(
        client,
        mirror.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: mirror.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    if let Err(err) = api
        .delete(mirror.metadata.name.as_deref().unwrap_or_default(), &params)
        .await
    {
        tracing::debug!(pod = %full_name(mirror), %err, "delete mirror pod");
    }
}

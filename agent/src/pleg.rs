//! The pod lifecycle event generator: notices containers and sandboxes changing in the
//! runtime and wakes the worker of the pod they belong to.
//!
//! containerd 1.6 has no `GetContainerEvents`, so the PLEG relists: every period it lists
//! sandboxes and containers and compares them with the last listing, as the kubelet's
//! generic PLEG does. Where the runtime streams events, they wake workers at once and the
//! relist still runs as a safety net. A PLEG that has not relisted for three minutes is
//! unhealthy, which makes the node `NotReady`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrolet_cri::{RuntimeService, api};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The label the kubelet puts on every sandbox and container with the pod's UID.
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

/// How long without a relist before the PLEG is unhealthy (the kubelet's threshold).
pub const RELIST_THRESHOLD: Duration = Duration::from_mins(3);

/// What changed for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLifecycleEvent {
    pub pod_uid: String,
    pub kind: EventKind,
    /// The container or sandbox id.
    pub id: String,
}

/// The kinds of change, as the kubelet's PLEG names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    ContainerStarted,
    ContainerDied,
    ContainerRemoved,
    ContainerChanged,
    SandboxChanged,
}

/// What the PLEG last saw of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Container(i32),
    Sandbox(i32),
}

/// The relisting PLEG.
pub struct Pleg {
    runtime: Arc<dyn RuntimeService>,
    period: Duration,
    last_relist: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Pleg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pleg")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

fn uid_of(labels: &std::collections::HashMap<String, String>) -> Option<&String> {
    labels.get(POD_UID_LABEL)
}

/// The events between two listings (`id → (pod uid, state)`).
fn diff(
    old: &BTreeMap<String, (String, Seen)>,
    new: &BTreeMap<String, (String, Seen)>,
) -> Vec<PodLifecycleEvent> {
    let mut events = Vec::new();
    for (id, (uid, seen)) in new {
        let before = old.get(id).map(|(_, s)| *s);
        if before == Some(*seen) {
            continue;
        }
        let kind = match seen {
            Seen::Sandbox(_) => EventKind::SandboxChanged,
            Seen::Container(state) if *state == api::ContainerState::ContainerRunning as i32 => {
                EventKind::ContainerStarted
            }
            Seen::Container(state) if *state == api::ContainerState::ContainerExited as i32 => {
                EventKind::ContainerDied
            }
            Seen::Container(_) => EventKind::ContainerChanged,
        };
        events.push(PodLifecycleEvent {
            pod_uid: uid.clone(),
            kind,
            id: id.clone(),
        });
    }
    for (id, (uid, seen)) in old {
        if !new.contains_key(id) {
            let kind = match seen {
                Seen::Sandbox(_) => EventKind::SandboxChanged,
                Seen::Container(_) => EventKind::ContainerRemoved,
            };
            events.push(PodLifecycleEvent {
                pod_uid: uid.clone(),
                kind,
                id: id.clone(),
            });
        }
    }
    events
}

impl Pleg {
    #[must_use]
    pub fn new(runtime: Arc<dyn RuntimeService>, period: Duration) -> Self {
        Pleg {
            runtime,
            period,
            last_relist: Mutex::new(None),
        }
    }

    /// `Ok` while the PLEG relists; the kubelet's message otherwise.
    pub fn healthy(&self) -> Result<(), String> {
        let last = *self
            .last_relist
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match last {
            None => Ok(()),
            Some(at) if at.elapsed() <= RELIST_THRESHOLD => Ok(()),
            Some(at) => Err(format!(
                "pleg was last seen active {}s ago; threshold is {}s",
                at.elapsed().as_secs(),
                RELIST_THRESHOLD.as_secs()
            )),
        }
    }

    async fn list(&self) -> Result<BTreeMap<String, (String, Seen)>, ferrolet_cri::Error> {
        let mut seen = BTreeMap::new();
        for sandbox in self.runtime.list_pod_sandbox(None).await? {
            if let Some(uid) = uid_of(&sandbox.labels)
                .cloned()
                .or_else(|| sandbox.metadata.as_ref().map(|m| m.uid.clone()))
            {
                seen.insert(sandbox.id.clone(), (uid, Seen::Sandbox(sandbox.state)));
            }
        }
        for container in self.runtime.list_containers(None).await? {
            if let Some(uid) = uid_of(&container.labels) {
                seen.insert(
                    container.id.clone(),
                    (uid.clone(), Seen::Container(container.state)),
                );
            }
        }
        Ok(seen)
    }

    /// Relists every period until `cancel`, sending the pod UIDs whose objects changed.
    /// Streamed container events from the runtime are forwarded as they come.
    pub async fn run(
        self: Arc<Self>,
        events: mpsc::Sender<PodLifecycleEvent>,
        cancel: CancellationToken,
    ) {
        let mut stream = match self.runtime.get_container_events().await {
            Ok(stream) => Some(stream),
            Err(err) => {
                tracing::info!(%err, "runtime streams no container events; relisting only");
                None
            }
        };
        let mut previous = BTreeMap::new();
        let mut ticker = tokio::time::interval(self.period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticker.tick() => {}
                event = async {
                    match stream.as_mut() {
                        Some(s) => s.next().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some(Ok(event)) = event {
                        let uid = event.containers_statuses.iter().find_map(|c| c.labels.get(POD_UID_LABEL).cloned())
                            .or_else(|| event.pod_sandbox_status.as_ref().and_then(|s| s.metadata.as_ref()).map(|m| m.uid.clone()));
                        if let Some(uid) = uid {
                            let kind = match event.container_event_type() {
                                api::ContainerEventType::ContainerStartedEvent => EventKind::ContainerStarted,
                                api::ContainerEventType::ContainerStoppedEvent => EventKind::ContainerDied,
                                api::ContainerEventType::ContainerDeletedEvent => EventKind::ContainerRemoved,
                                api::ContainerEventType::ContainerCreatedEvent => EventKind::ContainerChanged,
                            };
                            let _ = events.send(PodLifecycleEvent { pod_uid: uid, kind, id: event.container_id }).await;
                        }
                        continue;
                    }
                    tracing::warn!("runtime event stream ended; relisting only");
                    stream = None;
                    continue;
                }
            }
            let started = Instant::now();
            match self.list().await {
                Ok(current) => {
                    for event in diff(&previous, &current) {
                        if events.send(event).await.is_err() {
                            return;
                        }
                    }
                    previous = current;
                    *self
                        .last_relist
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
                    crate::metrics::kubelet_metrics().observe_relist(started.elapsed());
                    tracing::trace!(elapsed_ms = started.elapsed().as_millis(), "relisted");
                }
                Err(err) => tracing::warn!(%err, "PLEG relist failed"),
            }
        }
    }

    /// The pod UIDs that have sandboxes or containers in the runtime.
    pub async fn pods_in_runtime(&self) -> Result<BTreeSet<String>, ferrolet_cri::Error> {
        Ok(self
            .list()
            .await?
            .into_values()
            .map(|(uid, _)| uid)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolet_cri::contract::{container_config, sandbox_config};
    use ferrolet_cri::fake::FakeRuntime;

    #[tokio::test]
    async fn relist_reports_started_died_and_removed_containers() {
        let fake = FakeRuntime::new();
        fake.disable_container_events();
        fake.add_image("busybox:1.35");
        let runtime: Arc<dyn RuntimeService> = Arc::new(fake.clone());
        let pleg = Arc::new(Pleg::new(runtime, Duration::from_millis(20)));
        let (tx, mut rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        tokio::spawn(pleg.clone().run(tx, cancel.clone()));

        let mut config = sandbox_config("web", "");
        config.labels.insert(POD_UID_LABEL.into(), "uid-1".into());
        let sandbox = fake.run_pod_sandbox(&config, "").await.unwrap();
        let mut container = container_config("app", "busybox:1.35", &[]);
        container
            .labels
            .insert(POD_UID_LABEL.into(), "uid-1".into());
        let id = fake
            .create_container(&sandbox, &container, &config)
            .await
            .unwrap();
        fake.start_container(&id).await.unwrap();
        let wait_for = |kind: EventKind| {
            let id = id.clone();
            async move { (kind, id) }
        };
        let mut seen = Vec::new();
        let (want, _) = wait_for(EventKind::ContainerStarted).await;
        while !seen.contains(&want) {
            let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(event.pod_uid, "uid-1");
            seen.push(event.kind);
        }
        fake.exit_container(&id, 1).unwrap();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            if event.kind == EventKind::ContainerDied && event.id == id {
                break;
            }
        }
        fake.remove_container(&id).await.unwrap();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            if event.kind == EventKind::ContainerRemoved {
                break;
            }
        }
        assert!(pleg.healthy().is_ok());
        cancel.cancel();
    }

    #[test]
    fn diff_is_empty_when_nothing_changed() {
        let mut a = BTreeMap::new();
        a.insert("c1".to_owned(), ("u".to_owned(), Seen::Container(1)));
        assert!(diff(&a, &a).is_empty());
        let mut b = a.clone();
        b.insert("c1".to_owned(), ("u".to_owned(), Seen::Container(2)));
        assert_eq!(diff(&a, &b)[0].kind, EventKind::ContainerDied);
    }
}

//! The observer: a client of its own that watches pods, nodes and leases and notes when each
//! change arrives. Matched by resourceVersion against the acknowledgement of the write that
//! made it, this gives the watch-event delay; the pod events also give the time each pod
//! was seen bound and Running.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::metrics::{Recorder, Watched, lock, revision_of};

/// When the observer saw a pod bound and Running.
#[derive(Debug, Clone, Copy, Default)]
pub struct PodSeen {
    pub bound: Option<Instant>,
    pub running: Option<Instant>,
}

/// What the observer saw. Shared by its watch tasks.
#[derive(Debug)]
pub struct Observer {
    /// resourceVersion → when its event first arrived.
    arrivals: Mutex<HashMap<i64, Instant>>,
    /// Pod name → when it was first seen bound and Running.
    pods: Mutex<HashMap<String, PodSeen>>,
    /// How many pods have been seen Running.
    running: watch::Sender<usize>,
}

impl Observer {
    /// Starts one watch per kind on `tasks`, until `cancel`. Each sends `()` on `synced` once
    /// its initial list is done.
    pub fn start(
        client: &Client,
        tasks: &mut JoinSet<()>,
        synced: &mpsc::UnboundedSender<()>,
        recorder: &Arc<Recorder>,
        cancel: &CancellationToken,
    ) -> Arc<Self> {
        let observer = Arc::new(Self {
            arrivals: Mutex::default(),
            pods: Mutex::default(),
            running: watch::Sender::new(0),
        });
        for kind in Watched::ALL {
            let (observer, synced, recorder, cancel) = (
                observer.clone(),
                synced.clone(),
                recorder.clone(),
                cancel.clone(),
            );
            let client = client.clone();
            tasks.spawn(async move {
                match kind {
                    Watched::Pods => {
                        let on_change = |pod: &Pod, at| observer.pod_changed(pod, at);
                        follow(Api::all(client), synced, &recorder, &cancel, on_change).await;
                    }
                    Watched::Nodes => {
                        let on_change = |node: &Node, at| observer.arrived(node, at);
                        follow(Api::all(client), synced, &recorder, &cancel, on_change).await;
                    }
                    Watched::Leases => {
                        let on_change = |lease: &Lease, at| observer.arrived(lease, at);
                        follow(Api::all(client), synced, &recorder, &cancel, on_change).await;
                    }
                }
            });
        }
        observer
    }

    fn arrived<K: Resource>(&self, object: &K, at: Instant) {
        if let Some(revision) = revision_of(object) {
            lock(&self.arrivals).entry(revision).or_insert(at);
        }
    }

    fn pod_changed(&self, pod: &Pod, at: Instant) {
        self.arrived(pod, at);
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some();
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if !bound && !running {
            return;
        }
        let mut pods = lock(&self.pods);
        let seen = pods.entry(pod.name_any()).or_default();
        if bound && seen.bound.is_none() {
            seen.bound = Some(at);
        }
        if running && seen.running.is_none() {
            seen.running = Some(at);
            self.running.send_modify(|n| *n += 1);
        }
    }

    /// When the event of `revision` arrived, if it did.
    pub fn arrival(&self, revision: i64) -> Option<Instant> {
        lock(&self.arrivals).get(&revision).copied()
    }

    /// What was seen of every pod.
    pub fn pods(&self) -> HashMap<String, PodSeen> {
        lock(&self.pods).clone()
    }

    /// The number of pods seen Running, to wait on.
    pub fn running(&self) -> watch::Receiver<usize> {
        self.running.subscribe()
    }
}

/// Follows one kind until `cancel`, calling `on_change` with the arrival time of every
/// change after the initial list (changes that a relist brings again are not new arrivals).
async fn follow<K>(
    api: Api<K>,
    synced: mpsc::UnboundedSender<()>,
    recorder: &Recorder,
    cancel: &CancellationToken,
    mut on_change: impl FnMut(&K, Instant),
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let events = watcher(api, watcher::Config::default()).default_backoff();
    let mut events = std::pin::pin!(events);
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return,
            event = events.next() => event,
        };
        let at = Instant::now();
        match event {
            Some(Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object))) => {
                on_change(&object, at);
            }
            Some(Ok(watcher::Event::InitDone)) => {
                let _ = synced.send(());
            }
            Some(Ok(watcher::Event::Init | watcher::Event::InitApply(_))) => {}
            Some(Err(err)) => recorder.watch_error(format!("observer watch: {err}")),
            None => return,
        }
    }
}

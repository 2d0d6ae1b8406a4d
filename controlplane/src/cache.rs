//! The watch cache: every object of the store in memory, plus a window of recent changes,
//! fed by one store watch. Lists and watches are served from here, so a thousand watching
//! kubelets cost one store watch, as in kube-apiserver.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::store::{self, EventKind, KeyValue, Revision, Store};

/// An object as the cache holds it: parsed once, with `metadata.resourceVersion` set.
#[derive(Debug)]
pub struct CachedObject {
    pub key: String,
    pub value: Value,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

/// What happened to an object: the watch event types of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One change, shared by every watcher that receives it.
#[derive(Debug)]
pub struct Change {
    pub kind: ChangeKind,
    pub revision: Revision,
    /// The object after the change (for a deletion: its last state, at the deletion's
    /// revision).
    pub object: Arc<CachedObject>,
    /// The object before the change.
    pub prev: Option<Arc<CachedObject>>,
}

/// Errors of the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The requested history is older than the cache's window.
    #[error("too old resource version: {requested} ({oldest})")]
    TooOld {
        requested: Revision,
        oldest: Revision,
    },
    /// The cache did not reach the revision in time.
    #[error("the watch cache did not reach revision {wanted} within {timeout:?} (at {current})")]
    NotReady {
        wanted: Revision,
        current: Revision,
        timeout: Duration,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

#[derive(Debug)]
struct State {
    revision: Revision,
    /// Watches may resume from any revision >= this one.
    oldest: Revision,
    objects: BTreeMap<String, Arc<CachedObject>>,
    window: VecDeque<Arc<Change>>,
}

/// The cache. Cheap to clone: clones share it.
#[derive(Debug, Clone)]
pub struct WatchCache {
    state: Arc<RwLock<State>>,
    live: broadcast::Sender<Arc<Change>>,
    revision: watch::Receiver<Revision>,
    capacity: usize,
}

/// Parses a stored value and stamps its resourceVersion.
pub(crate) fn to_object(kv: &KeyValue, revision: Revision) -> Arc<CachedObject> {
    let mut value: Value = serde_json::from_slice(&kv.value).unwrap_or_else(|err| {
        tracing::error!(key = %kv.key, %err, "stored value is not JSON");
        Value::Null
    });
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
    Arc::new(CachedObject {
        key: kv.key.clone(),
        value,
        create_revision: kv.create_revision,
        mod_revision: revision,
    })
}

impl WatchCache {
    /// Lists everything under `prefix` and keeps following the store until `cancel`.
    /// `capacity` is the number of recent changes kept for watches that resume.
    pub async fn start(
        store: Arc<dyn Store>,
        prefix: &str,
        capacity: usize,
        cancel: CancellationToken,
    ) -> Result<Self, CacheError> {
        let listed = store.list(prefix).await?;
        let objects = listed
            .kvs
            .iter()
            .map(|kv| (kv.key.clone(), to_object(kv, kv.mod_revision)))
            .collect();
        let state = State {
            revision: listed.revision,
            oldest: listed.revision,
            objects,
            window: VecDeque::with_capacity(capacity.min(1 << 16)),
        };
        let (revision_tx, revision_rx) = watch::channel(listed.revision);
        let cache = WatchCache {
            state: Arc::new(RwLock::new(state)),
            live: broadcast::channel(capacity.clamp(1024, 1 << 16)).0,
            revision: revision_rx,
            capacity,
        };
        let events = store.watch(prefix, listed.revision).await?;
        let feeder = cache.clone();
        tokio::spawn(async move {
            feeder.feed(events, revision_tx, cancel).await;
        });
        Ok(cache)
    }

    async fn feed(
        &self,
        mut events: store::EventStream,
        revision_tx: watch::Sender<Revision>,
        cancel: CancellationToken,
    ) {
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return,
                event = events.next() => event,
            };
            match event {
                Some(Ok(event)) => {
                    let revision = self.apply(&event);
                    revision_tx.send_replace(revision);
                }
                Some(Err(err)) => {
                    // The store watch broke (e.g. etcd compacted past it): the cache cannot
                    // tell what it missed. Fail loudly; the process supervisor restarts us.
                    tracing::error!(%err, "watch cache lost the store watch");
                    cancel.cancel();
                    return;
                }
                None => {
                    tracing::error!("store watch ended");
                    cancel.cancel();
                    return;
                }
            }
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn apply(&self, event: &store::Event) -> Revision {
        let revision = event.revision();
        let object = to_object(&event.kv, revision);
        let mut state = self.write();
        let prev = state.objects.get(&event.kv.key).cloned();
        let kind = match event.kind {
            EventKind::Put if prev.is_some() => ChangeKind::Modified,
            EventKind::Put => ChangeKind::Added,
            EventKind::Delete => ChangeKind::Deleted,
        };
        match kind {
            ChangeKind::Deleted => {
                state.objects.remove(&event.kv.key);
            }
            _ => {
                state.objects.insert(event.kv.key.clone(), object.clone());
            }
        }
        let change = Arc::new(Change {
            kind,
            revision,
            object,
            prev,
        });
        state.revision = revision;
        state.window.push_back(change.clone());
        while state.window.len() > self.capacity {
            if let Some(evicted) = state.window.pop_front() {
                state.oldest = evicted.revision;
            }
        }
        // Sent under the lock: watchers that subscribed under the read lock see every change
        // after their backlog, in order.
        let _ = self.live.send(change);
        revision
    }

    /// The newest revision the cache has applied.
    #[must_use]
    pub fn revision(&self) -> Revision {
        *self.revision.borrow()
    }

    /// Waits until the cache has applied `revision` (read-your-writes for lists).
    pub async fn wait_for(&self, revision: Revision, timeout: Duration) -> Result<(), CacheError> {
        let mut rx = self.revision.clone();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(CacheError::NotReady {
                wanted: revision,
                current: self.revision(),
                timeout,
            }),
        }
    }

    /// The objects under `prefix` and the revision they are at.
    #[must_use]
    pub fn list(&self, prefix: &str) -> (Vec<Arc<CachedObject>>, Revision) {
        let state = self.read();
        let objects = state
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, o)| o.clone())
            .collect();
        (objects, state.revision)
    }

    /// One object, as the cache has it.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.read().objects.get(key).cloned()
    }

    /// Changes under `prefix` after `after`, in order: first those still in the window, then
    /// live ones. `TooOld` if the window no longer reaches back to `after`. The stream ends
    /// if the watcher falls too far behind; a client then watches again from its last
    /// revision, like after any dropped watch.
    pub fn watch(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<BoxStream<'static, Arc<Change>>, CacheError> {
        let state = self.read();
        if after < state.oldest {
            return Err(CacheError::TooOld {
                requested: after,
                oldest: state.oldest,
            });
        }
        let backlog: Vec<Arc<Change>> = state
            .window
            .iter()
            .filter(|c| c.revision > after && c.object.key.starts_with(prefix))
            .cloned()
            .collect();
        let last = state.revision.max(after);
        let receiver = self.live.subscribe();
        drop(state);
        let prefix = prefix.to_owned();
        let live = futures::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(change) => Some((Some(change), receiver)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "watcher fell behind; closing its watch");
                    None
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .filter_map(move |change| {
            let keep = change.filter(|c| c.revision > last && c.object.key.starts_with(&prefix));
            async move { keep }
        });
        Ok(futures::stream::iter(backlog).chain(live).boxed())
    }

    /// Changes after `after` read from the store itself, for watches that resume from before
    /// the cache's window (after a restart of the API server, say): the store keeps history
    /// until it is compacted.
    pub async fn watch_store(
        store: &dyn Store,
        prefix: &str,
        after: Revision,
    ) -> Result<BoxStream<'static, Result<Arc<Change>, CacheError>>, CacheError> {
        let events = store.watch(prefix, after).await?;
        Ok(events
            .map(|event| {
                let event = event?;
                let revision = event.revision();
                let prev = event.prev.as_ref().map(|kv| to_object(kv, kv.mod_revision));
                let kind = match event.kind {
                    EventKind::Put if prev.is_some() => ChangeKind::Modified,
                    EventKind::Put => ChangeKind::Added,
                    EventKind::Delete => ChangeKind::Deleted,
                };
                Ok(Arc::new(Change {
                    kind,
                    revision,
                    object: to_object(&event.kv, revision),
                    prev,
                }))
            })
            .boxed())
    }

    /// A receiver of the cache's revision, for bookmarks.
    #[must_use]
    pub fn revisions(&self) -> watch::Receiver<Revision> {
        self.revision.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use serde_json::json;

    async fn cache_with(store: &MemoryStore, capacity: usize) -> WatchCache {
        WatchCache::start(
            Arc::new(store.clone()),
            "/registry/",
            capacity,
            CancellationToken::new(),
        )
        .await
        .unwrap()
    }

    fn pod(name: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"metadata": {"name": name}})).unwrap()
    }

    #[tokio::test]
    async fn lists_what_the_store_has_with_resource_versions() {
        let store = MemoryStore::new();
        store.create("/registry/pods/a/x", pod("x")).await.unwrap();
        let cache = cache_with(&store, 100).await;
        let y = store.create("/registry/pods/a/y", pod("y")).await.unwrap();
        cache
            .wait_for(y.mod_revision, Duration::from_secs(5))
            .await
            .unwrap();
        let (objects, revision) = cache.list("/registry/pods/");
        assert_eq!(revision, y.mod_revision);
        let names: Vec<_> = objects
            .iter()
            .map(|o| o.value["metadata"]["name"].clone())
            .collect();
        assert_eq!(names, [json!("x"), json!("y")]);
        assert_eq!(
            objects[1].value["metadata"]["resourceVersion"],
            json!(y.mod_revision.to_string())
        );
    }

    #[tokio::test]
    async fn watch_replays_the_window_then_follows_live_changes() {
        let store = MemoryStore::new();
        let cache = cache_with(&store, 100).await;
        let a = store.create("/registry/pods/a/x", pod("x")).await.unwrap();
        let b = store
            .update("/registry/pods/a/x", pod("x"), a.mod_revision)
            .await
            .unwrap();
        cache
            .wait_for(b.mod_revision, Duration::from_secs(5))
            .await
            .unwrap();
        let mut changes = cache.watch("/registry/pods/", a.mod_revision - 1).unwrap();
        store.delete("/registry/pods/a/x", None).await.unwrap();
        store
            .create("/registry/configmaps/a/c", pod("c"))
            .await
            .unwrap();
        let kinds: Vec<ChangeKind> = futures::stream::StreamExt::take(&mut changes, 3)
            .map(|c| c.kind)
            .collect()
            .await;
        assert_eq!(
            kinds,
            [ChangeKind::Added, ChangeKind::Modified, ChangeKind::Deleted]
        );
    }

    #[tokio::test]
    async fn watch_from_before_the_window_is_too_old() {
        let store = MemoryStore::new();
        let cache = cache_with(&store, 2).await;
        let mut last = 0;
        for i in 0..5 {
            last = store
                .create(&format!("/registry/pods/a/{i}"), pod("p"))
                .await
                .unwrap()
                .mod_revision;
        }
        cache.wait_for(last, Duration::from_secs(5)).await.unwrap();
        assert!(matches!(
            cache.watch("/registry/", 1),
            Err(CacheError::TooOld { .. })
        ));
        assert!(cache.watch("/registry/", last - 1).is_ok());
    }
}

//! The watch cache: every object of the store in memory, plus a window of recent changes,
//! fed by one store watch. Lists and watches are served from here, so a thousand watching
//! kubelets cost one store watch, as in kube-apiserver.
//!
//! Each object is kept once, as the JSON the API returns (with its resourceVersion), shared by
//! the current state, the history window and every watcher, together with the few attributes
//! selectors read (labels and selectable fields), read once when it is stored: a list is the
//! concatenation of stored bytes, and a change costs its serialized size in the window, which
//! is bounded by count and by bytes.
//!
//! Changes are published per resource, and for resources with an indexed field (pods by
//! `spec.nodeName`, as kube-apiserver's cacher indexes them) also per value of that field, so
//! that a kubelet watching its own pods is woken by changes to its own pods only.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::store::{self, EventKind, KeyValue, Revision, Store};

/// What selectors read of an object, read once when it is cached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The selectable fields of its resource and their values (missing fields as "").
    pub fields: Vec<(&'static str, String)>,
}

impl Attributes {
    /// The value of a selectable field ("" if the resource has no such field).
    #[must_use]
    pub fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(field, _)| *field == name)
            .map_or("", |(_, value)| value.as_str())
    }
}

/// Reads the attributes of an object, given its store key.
pub type AttributesFn = Arc<dyn Fn(&str, &Value) -> Attributes + Send + Sync>;

/// An object as the cache holds it.
#[derive(Debug)]
pub struct CachedObject {
    pub key: String,
    /// The object as the API returns it: JSON, `metadata.resourceVersion` set.
    pub json: Bytes,
    pub attributes: Attributes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

impl CachedObject {
    /// The object parsed (for the representations that need to look inside it).
    #[must_use]
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// What the object costs the cache, roughly.
    fn size(&self) -> usize {
        let attributes: usize = self
            .attributes
            .labels
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .chain(self.attributes.fields.iter().map(|(_, v)| v.len()))
            .sum();
        std::mem::size_of::<Self>() + self.key.len() + self.json.len() + attributes
    }
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

/// Settings of the cache.
#[derive(Clone)]
pub struct CacheConfig {
    /// The most changes kept for watches that resume.
    pub capacity: usize,
    /// The most bytes those changes may take (their objects' serialized sizes).
    pub max_bytes: usize,
    /// Reads the attributes of objects.
    pub attributes: AttributesFn,
    /// Resources (by key prefix) whose changes are also published by the value of a field.
    pub indexes: Vec<(String, &'static str)>,
}

impl std::fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheConfig")
            .field("capacity", &self.capacity)
            .field("max_bytes", &self.max_bytes)
            .field("indexes", &self.indexes)
            .finish_non_exhaustive()
    }
}

impl CacheConfig {
    /// `capacity` changes, at most `max_bytes`, only labels read, no index.
    #[must_use]
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity,
            max_bytes,
            attributes: Arc::new(|_, value| Attributes {
                labels: labels_of(value),
                fields: Vec::new(),
            }),
            indexes: Vec::new(),
        }
    }
}

/// `metadata.labels` of an object.
#[must_use]
pub fn labels_of(value: &Value) -> BTreeMap<String, String> {
    value["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

type Sender = broadcast::Sender<Arc<Change>>;

/// Where the changes of one resource are published.
#[derive(Debug)]
struct Topic {
    all: Sender,
    /// The indexed field, if the resource has one, and a channel per value being watched.
    index: Option<(&'static str, HashMap<String, Sender>)>,
}

/// Buffer of a resource's channel: a watcher this far behind is closed and resumes.
const TOPIC_BUFFER: usize = 1 << 14;
/// Buffer of a per-value channel (one node's pods).
const INDEX_BUFFER: usize = 1 << 10;

#[derive(Debug)]
struct State {
    revision: Revision,
    /// Watches may resume from any revision >= this one.
    oldest: Revision,
    objects: BTreeMap<String, Arc<CachedObject>>,
    window: VecDeque<Arc<Change>>,
    window_bytes: usize,
    topics: HashMap<String, Topic>,
}

/// The cache. Cheap to clone: clones share it.
#[derive(Clone)]
pub struct WatchCache {
    state: Arc<RwLock<State>>,
    /// Changes under keys that name no resource (tests watching `/registry/`).
    everything: Sender,
    revision: watch::Receiver<Revision>,
    config: CacheConfig,
    delivered: Arc<AtomicU64>,
}

impl std::fmt::Debug for WatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCache")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The key prefix of the resource a key (or key prefix) belongs to: `/registry/pods/` for
/// `/registry/pods/ns/name`, `/registry/coordination.k8s.io/leases/` for a lease (API groups
/// have dots, resource names do not).
#[must_use]
pub fn resource_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("/registry/")?;
    let mut parts = rest.splitn(3, '/');
    let first = parts.next().filter(|p| !p.is_empty())?;
    let len = if first.contains('.') {
        let second = parts.next().filter(|p| !p.is_empty())?;
        first.len() + 1 + second.len()
    } else {
        first.len()
    };
    // Only a complete segment names a resource: `/registry/pods/`, not `/registry/po`.
    let end = "/registry/".len() + len;
    (key.len() > end && key.as_bytes()[end] == b'/').then(|| &key[..=end])
}

impl WatchCache {
    /// Lists everything under `prefix` and keeps following the store until `cancel`.
    pub async fn start(
        store: Arc<dyn Store>,
        prefix: &str,
        config: CacheConfig,
        cancel: CancellationToken,
    ) -> Result<Self, CacheError> {
        let listed = store.list(prefix).await?;
        let objects = listed
            .kvs
            .iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    to_object(kv, kv.mod_revision, &config.attributes),
                )
            })
            .collect();
        let state = State {
            revision: listed.revision,
            oldest: listed.revision,
            objects,
            window: VecDeque::with_capacity(config.capacity.min(1 << 16)),
            window_bytes: 0,
            topics: HashMap::new(),
        };
        let (revision_tx, revision_rx) = watch::channel(listed.revision);
        let cache = WatchCache {
            state: Arc::new(RwLock::new(state)),
            everything: broadcast::channel(TOPIC_BUFFER).0,
            revision: revision_rx,
            config,
            delivered: Arc::new(AtomicU64::new(0)),
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

    fn index_field(&self, resource: &str) -> Option<&'static str> {
        self.config
            .indexes
            .iter()
            .find(|(prefix, _)| prefix == resource)
            .map(|(_, field)| *field)
    }

    fn apply(&self, event: &store::Event) -> Revision {
        let revision = event.revision();
        // Parsed and serialized outside the lock.
        let object = to_object(&event.kv, revision, &self.config.attributes);
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
        state.window_bytes += change.object.size();
        state.window.push_back(change.clone());
        while state.window.len() > self.config.capacity
            || (state.window_bytes > self.config.max_bytes && state.window.len() > 1)
        {
            if let Some(evicted) = state.window.pop_front() {
                state.window_bytes = state.window_bytes.saturating_sub(evicted.object.size());
                state.oldest = evicted.revision;
            }
        }
        // Sent under the lock: watchers that subscribed under the read lock see every change
        // after their backlog, in order.
        self.publish(&mut state, &change);
        revision
    }

    fn publish(&self, state: &mut State, change: &Arc<Change>) {
        let Some(resource) = resource_prefix(&change.object.key) else {
            let _ = self.everything.send(change.clone());
            return;
        };
        let _ = self.everything.send(change.clone());
        let Some(topic) = state.topics.get_mut(resource) else {
            return;
        };
        let _ = topic.all.send(change.clone());
        if let Some((field, channels)) = topic.index.as_mut() {
            let now = change.object.attributes.field(field);
            let before = change.prev.as_ref().map(|p| p.attributes.field(field));
            for value in std::iter::once(now).chain(before.filter(|b| *b != now)) {
                if let Some(sender) = channels.get(value)
                    && sender.send(change.clone()).is_err()
                {
                    // Nobody watches this value any more.
                    channels.remove(value);
                }
            }
        }
    }

    /// The newest revision the cache has applied.
    #[must_use]
    pub fn revision(&self) -> Revision {
        *self.revision.borrow()
    }

    /// How many changes watchers have been woken for so far (each watcher counts each
    /// change it received): what fan-out costs.
    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
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
    /// live ones. With `index` (`("spec.nodeName", "n1")` on pods), only changes whose object
    /// has, or had, that value of the resource's indexed field, and the watcher is not woken
    /// by others. `TooOld` if the window no longer reaches back to `after`. The stream ends
    /// if the watcher falls too far behind; a client then watches again from its last
    /// revision, like after any dropped watch.
    pub fn watch(
        &self,
        prefix: &str,
        after: Revision,
        index: Option<(&str, &str)>,
    ) -> Result<BoxStream<'static, Arc<Change>>, CacheError> {
        let resource = resource_prefix(prefix).map(str::to_owned);
        let index = match (&resource, index) {
            (Some(resource), Some((field, value))) if self.index_field(resource) == Some(field) => {
                Some((field, value.to_owned()))
            }
            _ => None,
        };
        let mut state = self.write();
        if after < state.oldest {
            return Err(CacheError::TooOld {
                requested: after,
                oldest: state.oldest,
            });
        }
        let in_index = |c: &Change| match &index {
            Some((field, value)) => {
                c.object.attributes.field(field) == value
                    || c.prev
                        .as_ref()
                        .is_some_and(|p| p.attributes.field(field) == value)
            }
            None => true,
        };
        let backlog: Vec<Arc<Change>> = state
            .window
            .iter()
            .filter(|c| c.revision > after && c.object.key.starts_with(prefix) && in_index(c))
            .cloned()
            .collect();
        let last = state.revision.max(after);
        let receiver = match &resource {
            None => self.everything.subscribe(),
            Some(resource) => {
                let field = self.index_field(resource);
                let topic = state
                    .topics
                    .entry(resource.clone())
                    .or_insert_with(|| Topic {
                        all: broadcast::channel(TOPIC_BUFFER).0,
                        index: field.map(|f| (f, HashMap::new())),
                    });
                match (&index, topic.index.as_mut()) {
                    (Some((_, value)), Some((_, channels))) => channels
                        .entry(value.clone())
                        .or_insert_with(|| broadcast::channel(INDEX_BUFFER).0)
                        .subscribe(),
                    _ => topic.all.subscribe(),
                }
            }
        };
        drop(state);
        let prefix = prefix.to_owned();
        let delivered = self.delivered.clone();
        let live = futures::stream::unfold(receiver, move |mut receiver| {
            let delivered = delivered.clone();
            async move {
                match receiver.recv().await {
                    Ok(change) => {
                        delivered.fetch_add(1, Ordering::Relaxed);
                        Some((Some(change), receiver))
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "watcher fell behind; closing its watch");
                        None
                    }
                    Err(broadcast::error::RecvError::Closed) => None,
                }
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
        &self,
        store: &dyn Store,
        prefix: &str,
        after: Revision,
    ) -> Result<BoxStream<'static, Result<Arc<Change>, CacheError>>, CacheError> {
        let events = store.watch(prefix, after).await?;
        let attributes = self.config.attributes.clone();
        Ok(events
            .map(move |event| {
                let event = event?;
                let revision = event.revision();
                let prev = event
                    .prev
                    .as_ref()
                    .map(|kv| to_object(kv, kv.mod_revision, &attributes));
                let kind = match event.kind {
                    EventKind::Put if prev.is_some() => ChangeKind::Modified,
                    EventKind::Put => ChangeKind::Added,
                    EventKind::Delete => ChangeKind::Deleted,
                };
                Ok(Arc::new(Change {
                    kind,
                    revision,
                    object: to_object(&event.kv, revision, &attributes),
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

/// Sets `metadata.resourceVersion` of a parsed object.
fn stamp(value: &mut Value, revision: Revision) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

/// Parses a stored value, stamps its resourceVersion, reads its attributes and keeps it as
/// the JSON the API returns.
pub(crate) fn to_object(
    kv: &KeyValue,
    revision: Revision,
    attributes: &AttributesFn,
) -> Arc<CachedObject> {
    let mut value: Value = serde_json::from_slice(&kv.value).unwrap_or_else(|err| {
        tracing::error!(key = %kv.key, %err, "stored value is not JSON");
        Value::Null
    });
    stamp(&mut value, revision);
    Arc::new(CachedObject {
        key: kv.key.clone(),
        attributes: attributes(&kv.key, &value),
        json: Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
        create_revision: kv.create_revision,
        mod_revision: revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use serde_json::json;

    fn pod_attributes() -> AttributesFn {
        Arc::new(|_, value: &Value| Attributes {
            labels: labels_of(value),
            fields: vec![(
                "spec.nodeName",
                value["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )],
        })
    }

    async fn cache_with(store: &MemoryStore, capacity: usize) -> WatchCache {
        let mut config = CacheConfig::new(capacity, usize::MAX);
        config.attributes = pod_attributes();
        config.indexes = vec![("/registry/pods/".into(), "spec.nodeName")];
        WatchCache::start(
            Arc::new(store.clone()),
            "/registry/",
            config,
            CancellationToken::new(),
        )
        .await
        .unwrap()
    }

    fn pod(name: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"metadata": {"name": name}})).unwrap()
    }

    fn pod_on(name: &str, node: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"metadata": {"name": name}, "spec": {"nodeName": node}}))
            .unwrap()
    }

    #[test]
    fn resource_prefixes_of_keys() {
        assert_eq!(
            resource_prefix("/registry/pods/ns/p"),
            Some("/registry/pods/")
        );
        assert_eq!(resource_prefix("/registry/pods/"), Some("/registry/pods/"));
        assert_eq!(
            resource_prefix("/registry/nodes/n1"),
            Some("/registry/nodes/")
        );
        assert_eq!(
            resource_prefix("/registry/coordination.k8s.io/leases/ns/l"),
            Some("/registry/coordination.k8s.io/leases/")
        );
        assert_eq!(resource_prefix("/registry/"), None);
        assert_eq!(resource_prefix("/registry/po"), None);
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
            .map(|o| o.value()["metadata"]["name"].clone())
            .collect();
        assert_eq!(names, [json!("x"), json!("y")]);
        assert_eq!(
            objects[1].value()["metadata"]["resourceVersion"],
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
        let mut changes = cache
            .watch("/registry/pods/", a.mod_revision - 1, None)
            .unwrap();
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
            cache.watch("/registry/", 1, None),
            Err(CacheError::TooOld { .. })
        ));
        assert!(cache.watch("/registry/", last - 1, None).is_ok());
    }

    #[tokio::test]
    async fn the_window_is_bounded_by_bytes() {
        let store = MemoryStore::new();
        let mut config = CacheConfig::new(1000, 4096);
        config.attributes = pod_attributes();
        let cache = WatchCache::start(
            Arc::new(store.clone()),
            "/registry/",
            config,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let big = serde_json::to_vec(&json!({"metadata": {"name": "p"}, "data": "x".repeat(1000)}))
            .unwrap();
        let mut last = 0;
        for i in 0..20 {
            last = store
                .create(&format!("/registry/pods/a/{i}"), big.clone())
                .await
                .unwrap()
                .mod_revision;
        }
        cache.wait_for(last, Duration::from_secs(5)).await.unwrap();
        let state = cache.read();
        assert!(
            state.window.len() < 5,
            "{} changes kept",
            state.window.len()
        );
        assert!(state.window_bytes <= 4096);
        assert_eq!(
            state.oldest,
            last - i64::try_from(state.window.len()).unwrap()
        );
    }

    #[tokio::test]
    async fn a_node_watch_is_not_woken_by_other_nodes_pods() {
        let store = MemoryStore::new();
        let cache = cache_with(&store, 1000).await;
        let mut mine = cache
            .watch(
                "/registry/pods/",
                cache.revision(),
                Some(("spec.nodeName", "n1")),
            )
            .unwrap();
        let mut last = 0;
        for i in 0..50 {
            last = store
                .create(&format!("/registry/pods/a/other-{i}"), pod_on("o", "n2"))
                .await
                .unwrap()
                .mod_revision;
        }
        cache.wait_for(last, Duration::from_secs(5)).await.unwrap();
        tokio::task::yield_now().await;
        assert_eq!(cache.delivered(), 0, "woken by another node's pods");

        // A pod that moves onto n1 and one that leaves it are both n1's business.
        let created = store
            .create("/registry/pods/a/mine", pod_on("mine", "n1"))
            .await
            .unwrap();
        let first = mine.next().await.unwrap();
        assert_eq!(first.object.key, "/registry/pods/a/mine");
        store
            .update(
                "/registry/pods/a/mine",
                pod_on("mine", "n3"),
                created.mod_revision,
            )
            .await
            .unwrap();
        let left = mine.next().await.unwrap();
        assert_eq!(
            left.prev
                .as_ref()
                .unwrap()
                .attributes
                .field("spec.nodeName"),
            "n1"
        );
        assert_eq!(cache.delivered(), 2);

        // A watch without the index sees everything.
        let mut all = cache.watch("/registry/pods/", last, None).unwrap();
        let next = all.next().await.unwrap();
        assert_eq!(next.object.key, "/registry/pods/a/mine");
    }
}

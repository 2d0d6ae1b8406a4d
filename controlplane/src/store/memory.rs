//! An in-memory [`Store`] for unit tests of the layers above (the API server's handlers and
//! watch cache): the same semantics as the real backends, checked by the same suite, no disk.
//! It never backs a running control plane.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::{Error, Event, EventKind, EventStream, KeyValue, ListResult, Result, Revision, Store};

#[derive(Debug, Default)]
struct State {
    revision: Revision,
    compacted: Revision,
    live: BTreeMap<String, KeyValue>,
    history: Vec<Event>,
}

/// The in-memory store. Clones share state.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<Event>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    #[must_use]
    pub fn new() -> Self {
        MemoryStore {
            state: Arc::new(Mutex::new(State::default())),
            events: broadcast::channel(4096).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn commit(&self, mut state: MutexGuard<'_, State>, event: Event) -> KeyValue {
        let kv = event.kv.clone();
        match event.kind {
            EventKind::Put => {
                state.live.insert(kv.key.clone(), kv.clone());
            }
            EventKind::Delete => {
                state.live.remove(&kv.key);
            }
        }
        state.history.push(event.clone());
        // Sent under the lock, so live events reach subscribers in revision order.
        let _ = self.events.send(event);
        drop(state);
        kv
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.lock().live.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<ListResult> {
        let state = self.lock();
        Ok(ListResult {
            kvs: state
                .live
                .range(prefix.to_owned()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, kv)| kv.clone())
                .collect(),
            revision: state.revision,
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let mut state = self.lock();
        if state.live.contains_key(key) {
            return Err(Error::AlreadyExists {
                key: key.to_owned(),
            });
        }
        state.revision += 1;
        let kv = KeyValue {
            key: key.to_owned(),
            value,
            create_revision: state.revision,
            mod_revision: state.revision,
        };
        Ok(self.commit(
            state,
            Event {
                kind: EventKind::Put,
                kv,
                prev: None,
            },
        ))
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        let mut state = self.lock();
        let prev = state
            .live
            .get(key)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                key: key.to_owned(),
            })?;
        if prev.mod_revision != expected {
            return Err(Error::Conflict {
                key: key.to_owned(),
                expected,
                actual: prev.mod_revision,
            });
        }
        state.revision += 1;
        let kv = KeyValue {
            key: key.to_owned(),
            value,
            create_revision: prev.create_revision,
            mod_revision: state.revision,
        };
        Ok(self.commit(
            state,
            Event {
                kind: EventKind::Put,
                kv,
                prev: Some(prev),
            },
        ))
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        let mut state = self.lock();
        let prev = state
            .live
            .get(key)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                key: key.to_owned(),
            })?;
        if let Some(expected) = expected.filter(|e| *e != prev.mod_revision) {
            return Err(Error::Conflict {
                key: key.to_owned(),
                expected,
                actual: prev.mod_revision,
            });
        }
        state.revision += 1;
        let kv = KeyValue {
            mod_revision: state.revision,
            ..prev.clone()
        };
        Ok(self.commit(
            state,
            Event {
                kind: EventKind::Delete,
                kv,
                prev: Some(prev),
            },
        ))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream> {
        let state = self.lock();
        if after < state.compacted {
            return Err(Error::Compacted {
                requested: after,
                compacted: state.compacted,
            });
        }
        let backlog: Vec<Event> = state
            .history
            .iter()
            .filter(|e| e.revision() > after && e.kv.key.starts_with(prefix))
            .cloned()
            .collect();
        let last = state.revision.max(after);
        // Subscribed under the lock: nothing committed after the backlog is missed.
        let receiver = self.events.subscribe();
        drop(state);
        let prefix = prefix.to_owned();
        let live = tokio_stream::wrappers::BroadcastStream::new(receiver).filter_map(move |item| {
            let prefix = prefix.clone();
            async move {
                match item {
                    Ok(event) if event.revision() > last && event.kv.key.starts_with(&prefix) => {
                        Some(Ok(event))
                    }
                    Ok(_) => None,
                    Err(_) => Some(Err(Error::Compacted {
                        requested: last,
                        compacted: last,
                    })),
                }
            }
        });
        Ok(futures::stream::iter(backlog.into_iter().map(Ok))
            .chain(live)
            .boxed())
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.lock().revision)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut state = self.lock();
        if revision > state.revision {
            return Err(Error::Backend {
                operation: "compact",
                reason: format!(
                    "revision {revision} is in the future (current {})",
                    state.revision
                ),
            });
        }
        state.compacted = state.compacted.max(revision);
        let compacted = state.compacted;
        state.history.retain(|e| e.revision() > compacted);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::MemoryStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_store_passes_the_shared_suite() {
        if let Err(failed) = super::super::suite::run(Arc::new(MemoryStore::new()), "/suite").await
        {
            panic!("{failed}");
        }
    }
}

//! Watch streams on etcd.
//!
//! A watch "after `after`" is an etcd watch starting *at* `after` whose events at `after`
//! are dropped: etcd refuses a start revision below its compaction, so this way etcd says
//! `Compacted` exactly when `after` is below the compacted revision, as the embedded store
//! does (a start at `after + 1` would be accepted for `after` one below it). etcd reports a
//! compacted start asynchronously, after confirming the watch, so here `Compacted` is the
//! stream's first item rather than the error of `watch` itself.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchClient, WatchOptions, WatchResponse, WatchStream};
use futures::StreamExt;

use super::{backend, etcd_range, key_value};
use crate::store::{Error, Event, EventKind, EventStream, KeyValue, Result, Revision};

struct EtcdWatch {
    stream: WatchStream,
    endpoints: Arc<str>,
    /// Every event up to here has been queued.
    position: Revision,
    pending: VecDeque<Event>,
    finished: bool,
}

/// Opens the etcd watch and waits for etcd to confirm it.
pub(super) async fn start(
    mut client: WatchClient,
    endpoints: Arc<str>,
    timeout: Duration,
    prefix: &str,
    after: Revision,
) -> Result<EventStream> {
    let (start, end) = etcd_range(prefix);
    // etcd's start revision 0 means "from now"; revision 1 is etcd's empty initial state.
    let options = WatchOptions::new()
        .with_range(end)
        .with_start_revision(after.max(1))
        .with_prev_key();
    let stream = match tokio::time::timeout(timeout, client.watch(start, Some(options))).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(backend("watch", &endpoints, e)),
        Err(_) => {
            return Err(backend(
                "watch",
                &endpoints,
                format_args!("no answer within {timeout:?}"),
            ));
        }
    };
    let mut watch = EtcdWatch {
        stream,
        endpoints,
        position: after,
        pending: VecDeque::new(),
        finished: false,
    };
    match tokio::time::timeout(timeout, watch.stream.message()).await {
        Ok(Ok(Some(created))) => {
            // Compacted as the error of `watch` if etcd says so at once.
            watch.take(&created)?;
        }
        Ok(Ok(None)) => {
            return Err(backend("watch", &watch.endpoints, "etcd closed the watch"));
        }
        Ok(Err(e)) => return Err(backend("watch", &watch.endpoints, e)),
        Err(_) => {
            return Err(backend(
                "watch",
                &watch.endpoints,
                format_args!("watch not confirmed within {timeout:?}"),
            ));
        }
    }
    Ok(futures::stream::unfold(watch, |mut watch| async move {
        let item = watch.next().await?;
        Some((item, watch))
    })
    .boxed())
}

impl EtcdWatch {
    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            let taken = match self.stream.message().await {
                Ok(Some(response)) => self.take(&response),
                Ok(None) => Err(backend("watch", &self.endpoints, "etcd closed the watch")),
                Err(e) => Err(backend("watch", &self.endpoints, e)),
            };
            if let Err(e) = taken {
                self.finished = true;
                return Some(Err(e));
            }
        }
    }

    /// Queues the events of one response past `position`; the error if etcd cancelled.
    fn take(&mut self, response: &WatchResponse) -> Result<()> {
        if response.canceled() {
            self.finished = true;
            return Err(if response.compact_revision() > 0 {
                Error::Compacted {
                    requested: self.position,
                    compacted: response.compact_revision(),
                }
            } else {
                backend(
                    "watch",
                    &self.endpoints,
                    format_args!("etcd cancelled the watch: {}", response.cancel_reason()),
                )
            });
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            if kv.mod_revision() <= self.position {
                continue;
            }
            let prev = event
                .prev_kv()
                .map(|prev| key_value("watch", &self.endpoints, prev))
                .transpose()?;
            let event = match event.event_type() {
                EventType::Put => Event {
                    kind: EventKind::Put,
                    kv: key_value("watch", &self.endpoints, kv)?,
                    prev,
                },
                // etcd's deletion carries only the key and the revision; the trait's carries
                // the last value, which is `prev`.
                EventType::Delete => Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key: key_value("watch", &self.endpoints, kv)?.key,
                        value: prev.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
                        create_revision: prev.as_ref().map_or(0, |p| p.create_revision),
                        mod_revision: kv.mod_revision(),
                    },
                    prev,
                },
            };
            self.position = event.revision();
            self.pending.push_back(event);
        }
        Ok(())
    }
}

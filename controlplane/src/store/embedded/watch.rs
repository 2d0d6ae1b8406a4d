//! Watch streams of the embedded store.
//!
//! A watcher keeps `position`: every matching event up to it has been queued. It starts in
//! `CatchUp`, reading pages of rows after `position` from the table. When a page comes back
//! short it has seen everything committed in that snapshot; it then subscribes to the live
//! ring and reads the table once more. Because the writer publishes a batch only after
//! committing it, every batch is either in that last snapshot or arrives through the
//! subscription (or both: live batches at or below `position` are skipped), so the handover
//! has neither a gap nor a duplicate.
//!
//! A watcher that does not keep up with the live ring (it holds `watch_buffer` batches,
//! shared by all watchers, and writers never wait for it) is not an error and costs no
//! memory: it drops its subscription and goes back to reading the table from `position`,
//! then hands over again. Only if the history it still needs has been compacted meanwhile
//! does its stream end with `Compacted`, as a watch from that revision would.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::{Batch, Shared, read};
use crate::store::{Event, EventStream, Result, Revision, in_range, prefix_range};

/// The phase of one watcher.
#[derive(Debug)]
enum Phase {
    /// Reading the table; subscribed once the table has been read to its end once.
    CatchUp {
        live: Option<broadcast::Receiver<Arc<Batch>>>,
    },
    /// Following the live ring.
    Live {
        live: broadcast::Receiver<Arc<Batch>>,
    },
    /// The stream ended.
    Finished,
}

#[derive(Debug)]
struct Watcher {
    shared: Arc<Shared>,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    position: Revision,
    phase: Phase,
    pending: VecDeque<Event>,
}

/// The stream of events after `after` for keys with `prefix`.
pub(super) fn stream(shared: Arc<Shared>, prefix: &str, after: Revision) -> EventStream {
    let (start, end) = prefix_range(prefix);
    let watcher = Watcher {
        shared,
        start,
        end,
        position: after,
        phase: Phase::CatchUp { live: None },
        pending: VecDeque::new(),
    };
    futures::stream::unfold(watcher, |mut watcher| async move {
        let item = watcher.next().await?;
        Some((item, watcher))
    })
    .boxed()
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            match std::mem::replace(&mut self.phase, Phase::Finished) {
                Phase::Finished => return None,
                Phase::CatchUp { live } => {
                    if let Err(e) = self.catch_up(live).await {
                        // The phase stays `Finished`: the error is the stream's last item.
                        return Some(Err(e));
                    }
                }
                Phase::Live { mut live } => match live.recv().await {
                    Ok(batch) => {
                        self.take_live(&batch);
                        self.phase = Phase::Live { live };
                    }
                    Err(RecvError::Lagged(_)) => {
                        self.phase = Phase::CatchUp { live: None };
                    }
                    Err(RecvError::Closed) => {}
                },
            }
        }
    }

    /// Reads one page from the table and decides the next phase.
    async fn catch_up(&mut self, live: Option<broadcast::Receiver<Arc<Batch>>>) -> Result<()> {
        let page_size = self.shared.catch_up_page;
        let (after, start, end) = (self.position, self.start.clone(), self.end.clone());
        let page = self
            .shared
            .readers
            .run("watch", move |conn| {
                read::events_after(conn, after, &start, end.as_deref(), page_size)
            })
            .await?;
        let full = page.events.len() >= page_size;
        if let Some(last) = page.events.last() {
            self.position = last.revision();
        }
        self.pending.extend(page.events);
        self.phase = if full {
            // More to read; a subscription held meanwhile would only lag.
            Phase::CatchUp { live: None }
        } else {
            // Nothing in this snapshot is left unread.
            self.position = self.position.max(page.revision);
            match live {
                Some(live) => Phase::Live { live },
                // Subscribe, then read the table once more: whatever is committed from
                // here on is in that read or in the subscription.
                None => match self.subscribe() {
                    Some(live) => Phase::CatchUp { live: Some(live) },
                    // The store is closing; what was committed has been read.
                    None => Phase::Finished,
                },
            }
        };
        Ok(())
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<Arc<Batch>>> {
        #[cfg(test)]
        self.shared
            .before_subscribe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .run();
        self.shared.subscribe()
    }

    /// Queues the matching events of a live batch that are past `position`.
    fn take_live(&mut self, batch: &Batch) {
        if batch.last <= self.position {
            return;
        }
        let position = self.position;
        self.pending.extend(
            batch
                .events
                .iter()
                .filter(|e| {
                    e.revision() > position
                        && in_range(e.kv.key.as_bytes(), &self.start, self.end.as_deref())
                })
                .cloned(),
        );
        self.position = batch.last;
    }
}

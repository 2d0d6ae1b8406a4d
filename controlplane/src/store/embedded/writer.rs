//! The writer thread: the only write connection, group commit, and compaction.
//!
//! The thread takes the first queued message, then everything else already queued (up to
//! `max_batch` writes), applies the writes in one transaction, commits (one fsync), and
//! only then publishes the batch to watchers and answers each writer. While a commit is
//! being made durable new writes queue up and form the next batch, so the batch size grows
//! with the load without any timer. A failed write (conflict, missing key) takes no
//! revision and does not affect the others; an `SQLite` failure fails the whole batch and
//! its revisions are not used.

use std::fs::File;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::thread;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::read::sql;
use super::{Batch, Shared};
use crate::store::{Error, Event, EventKind, KeyValue, Result, Revision};

/// A write request.
#[derive(Debug)]
pub(super) enum WriteOp {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

impl WriteOp {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Update { .. } => "update",
            Self::Delete { .. } => "delete",
        }
    }
}

/// What the writer thread is asked to do.
#[derive(Debug)]
pub(super) enum Msg {
    Write {
        op: WriteOp,
        reply: oneshot::Sender<Result<KeyValue>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// Starts the writer thread. It owns the write connection and the directory lock, and
/// releases both when the store's request channel closes or `Close` arrives.
pub(super) fn spawn(
    conn: Connection,
    lock: File,
    inbox: mpsc::Receiver<Msg>,
    shared: Arc<Shared>,
    max_batch: usize,
) -> io::Result<()> {
    thread::Builder::new()
        .name("store-writer".to_owned())
        .spawn(move || {
            let mut writer = Writer {
                conn,
                shared,
                max_batch,
            };
            let close_reply = writer.run(inbox);
            let Writer { conn, shared, .. } = writer;
            drop(conn);
            drop(lock);
            // Dropping the sender ends every live watch once it has drained the ring.
            shared
                .events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(reply) = close_reply {
                // The closer may have given up waiting; nothing to do then.
                let _ = reply.send(());
            }
        })
        .map(drop)
}

struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    max_batch: usize,
}

type Pending = (WriteOp, oneshot::Sender<Result<KeyValue>>);

impl Writer {
    /// Serves messages until the channel closes or `Close` arrives (returned).
    fn run(&mut self, mut inbox: mpsc::Receiver<Msg>) -> Option<oneshot::Sender<()>> {
        while let Some(first) = inbox.blocking_recv() {
            let mut batch = Vec::new();
            let mut control = None;
            match first {
                Msg::Write { op, reply } => batch.push((op, reply)),
                other => control = Some(other),
            }
            while control.is_none() && batch.len() < self.max_batch {
                match inbox.try_recv() {
                    Ok(Msg::Write { op, reply }) => batch.push((op, reply)),
                    Ok(other) => control = Some(other),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.commit(batch);
            }
            match control {
                Some(Msg::Compact { revision, reply }) => {
                    let _ = reply.send(self.compact(revision));
                }
                Some(Msg::Close { reply }) => {
                    // Writes queued behind `Close` are answered "closed" when dropped.
                    return Some(reply);
                }
                Some(Msg::Write { .. }) | None => {}
            }
        }
        None
    }

    /// Applies and commits one batch, then publishes and answers.
    fn commit(&mut self, batch: Vec<Pending>) {
        let mut revision = self.shared.revision.load(Ordering::Acquire);
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let committed = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (op, _) in &batch {
                match apply(&tx, revision + 1, op)? {
                    Ok(event) => {
                        revision += 1;
                        outcomes.push(Ok(event.kv.clone()));
                        events.push(event);
                    }
                    Err(refused) => outcomes.push(Err(refused)),
                }
            }
            tx.commit()
        })();
        if let Err(e) = committed {
            tracing::error!(error = %e, writes = batch.len(), "embedded store: commit failed");
            let reason = format!("sqlite: committing a batch of {} writes: {e}", batch.len());
            for (op, reply) in batch {
                let _ = reply.send(Err(Error::Backend {
                    operation: op.name(),
                    reason: reason.clone(),
                }));
            }
            return;
        }
        self.shared.revision.store(revision, Ordering::Release);
        if !events.is_empty() {
            let batch = Arc::new(Batch {
                events,
                last: revision,
            });
            if let Some(tx) = self
                .shared
                .events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
            {
                // No receiver is not an error: nobody watches.
                let _ = tx.send(batch);
            }
        }
        for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
            // A writer that stopped waiting (cancelled request) still got its write.
            let _ = reply.send(outcome);
        }
    }

    /// Deletes superseded rows and tombstones up to `revision` and records it.
    fn compact(&mut self, revision: Revision) -> Result<()> {
        let current = self.shared.revision.load(Ordering::Acquire);
        if revision > current {
            return Err(Error::Backend {
                operation: "compact",
                reason: format!("revision {revision} is in the future (current: {current})"),
            });
        }
        if revision <= self.shared.compacted.load(Ordering::Acquire) {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("compact"))?;
        // A row up to `revision` survives only if it is its key's newest row up to
        // `revision` and live: the key's value at `revision`, and the `prev` of the key's
        // next change. Rows above `revision` are never touched.
        tx.execute(
            "DELETE FROM kv WHERE id <= ?1 AND (deleted = 1 OR id < \
             (SELECT max(n.id) FROM kv n WHERE n.key = kv.key AND n.id <= ?1))",
            [revision],
        )
        .map_err(sql("compact"))?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE name = 'compact_revision'",
            [revision],
        )
        .map_err(sql("compact"))?;
        tx.commit().map_err(sql("compact"))?;
        self.shared.compacted.store(revision, Ordering::Release);
        Ok(())
    }
}

/// The newest live row of a key: (revision, value, create revision).
fn latest(tx: &Transaction<'_>, key: &str) -> rusqlite::Result<Option<KeyValue>> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, value, create_revision, deleted FROM kv WHERE key = ?1 \
         ORDER BY id DESC LIMIT 1",
    )?;
    let row = stmt
        .query_row([key.as_bytes()], |row| {
            Ok((
                row.get::<_, Revision>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Revision>(2)?,
                row.get::<_, bool>(3)?,
            ))
        })
        .optional()?;
    Ok(row.and_then(|(id, value, create_revision, deleted)| {
        (!deleted).then(|| KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision: id,
        })
    }))
}

fn insert(
    tx: &Transaction<'_>,
    revision: Revision,
    key: &str,
    value: &[u8],
    create_revision: Revision,
    prev_revision: Revision,
    deleted: bool,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO kv (id, key, value, create_revision, prev_revision, deleted) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        revision,
        key.as_bytes(),
        value,
        create_revision,
        prev_revision,
        deleted
    ])?;
    Ok(())
}

/// Applies one write at `revision`: the outer error is `SQLite`'s (fails the batch), the
/// inner one the write's own refusal (takes no revision).
fn apply(
    tx: &Transaction<'_>,
    revision: Revision,
    op: &WriteOp,
) -> rusqlite::Result<Result<Event>> {
    match op {
        WriteOp::Create { key, value } => {
            if latest(tx, key)?.is_some() {
                return Ok(Err(Error::AlreadyExists { key: key.clone() }));
            }
            insert(tx, revision, key, value, revision, 0, false)?;
            Ok(Ok(Event {
                kind: EventKind::Put,
                kv: KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: revision,
                    mod_revision: revision,
                },
                prev: None,
            }))
        }
        WriteOp::Update {
            key,
            value,
            expected,
        } => {
            let prev = match check(latest(tx, key)?, key, Some(*expected)) {
                Ok(prev) => prev,
                Err(refused) => return Ok(Err(refused)),
            };
            insert(
                tx,
                revision,
                key,
                value,
                prev.create_revision,
                prev.mod_revision,
                false,
            )?;
            Ok(Ok(Event {
                kind: EventKind::Put,
                kv: KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: prev.create_revision,
                    mod_revision: revision,
                },
                prev: Some(prev),
            }))
        }
        WriteOp::Delete { key, expected } => {
            let prev = match check(latest(tx, key)?, key, *expected) {
                Ok(prev) => prev,
                Err(refused) => return Ok(Err(refused)),
            };
            insert(
                tx,
                revision,
                key,
                &[],
                prev.create_revision,
                prev.mod_revision,
                true,
            )?;
            Ok(Ok(Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    mod_revision: revision,
                    ..prev.clone()
                },
                prev: Some(prev),
            }))
        }
    }
}

/// The precondition of update and delete: the key is live, at `expected` if given.
fn check(current: Option<KeyValue>, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
    let current = current.ok_or_else(|| Error::NotFound {
        key: key.to_owned(),
    })?;
    match expected {
        Some(expected) if expected != current.mod_revision => Err(Error::Conflict {
            key: key.to_owned(),
            expected,
            actual: current.mod_revision,
        }),
        _ => Ok(current),
    }
}

//! Reads: a pool of read connections used on tokio's blocking pool, and the queries.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::Semaphore;

use super::schema::{self, COMPACTED_SQL, REVISION_SQL};
use crate::store::{Error, Event, EventKind, KeyValue, ListResult, Result, Revision};

/// Read connections, at most `limit` in use at once so that readers cannot take every
/// blocking thread.
#[derive(Debug)]
pub(super) struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
    closed: AtomicBool,
}

impl ReaderPool {
    pub(super) fn new(path: PathBuf, limit: usize) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(limit),
            closed: AtomicBool::new(false),
        }
    }

    /// Closes the idle connections; later reads fail.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.permits.close();
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Runs `f` on a read connection without blocking the async runtime.
    pub(super) async fn run<T, F>(self: &Arc<Self>, operation: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let closed = || Error::Backend {
            operation,
            reason: "the embedded store is closed".to_owned(),
        };
        let _permit = self.permits.acquire().await.map_err(|_| closed())?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            if pool.closed.load(Ordering::Acquire) {
                return Err(closed());
            }
            let idle = pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => schema::open_reader(&pool.path).map_err(sql(operation))?,
            };
            let result = f(&mut conn);
            pool.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
            result
        })
        .await
        .map_err(|e| Error::Backend {
            operation,
            reason: format!("the read task failed: {e}"),
        })?
    }
}

/// Maps an `SQLite` error of `operation` to the store's error.
pub(super) fn sql(operation: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::Backend {
        operation,
        reason: format!("sqlite: {e}"),
    }
}

/// Keys are stored as blobs so that byte order (and prefix ranges) work; they were written
/// from `&str`, so anything else is corruption.
fn key_string(bytes: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Blob, e.into())
    })
}

/// The current value of `key`.
pub(super) fn get(conn: &mut Connection, key: &str) -> Result<Option<KeyValue>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, value, create_revision, deleted FROM kv WHERE key = ?1 \
             ORDER BY id DESC LIMIT 1",
        )
        .map_err(sql("get"))?;
    let row = stmt
        .query_row([key.as_bytes()], |row| {
            Ok((
                row.get::<_, Revision>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Revision>(2)?,
                row.get::<_, bool>(3)?,
            ))
        })
        .optional()
        .map_err(sql("get"))?;
    Ok(row.and_then(|(id, value, create_revision, deleted)| {
        (!deleted).then(|| KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision: id,
        })
    }))
}

/// Every live key in `[start, end)` and the revision of the snapshot, in one read
/// transaction.
pub(super) fn list(conn: &mut Connection, start: &[u8], end: Option<&[u8]>) -> Result<ListResult> {
    let tx = conn.transaction().map_err(sql("list"))?;
    let revision: Revision = tx
        .query_row(REVISION_SQL, [], |row| row.get(0))
        .map_err(sql("list"))?;
    let sql_text = format!(
        "SELECT k.id, k.key, k.value, k.create_revision FROM kv k WHERE k.id IN \
         (SELECT max(id) FROM kv WHERE key >= ?1 {} GROUP BY key) AND k.deleted = 0 \
         ORDER BY k.key",
        if end.is_some() { "AND key < ?2" } else { "" }
    );
    let mut stmt = tx.prepare_cached(&sql_text).map_err(sql("list"))?;
    let decode = |row: &Row<'_>| {
        Ok(KeyValue {
            mod_revision: row.get(0)?,
            key: key_string(row.get(1)?)?,
            value: row.get(2)?,
            create_revision: row.get(3)?,
        })
    };
    let kvs = match end {
        Some(end) => stmt.query_map(params![start, end], decode),
        None => stmt.query_map(params![start], decode),
    }
    .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
    .map_err(sql("list"))?;
    Ok(ListResult { kvs, revision })
}

/// One page of a watcher's catch-up.
#[derive(Debug)]
pub(super) struct Page {
    /// Events in `[start, end)` after the requested revision, oldest first.
    pub(super) events: Vec<Event>,
    /// The store's revision in the snapshot the page was read from.
    pub(super) revision: Revision,
}

/// At most `limit` events after `after` for keys in `[start, end)`, read in one snapshot;
/// `Compacted` if the snapshot's compaction is past `after`.
pub(super) fn events_after(
    conn: &mut Connection,
    after: Revision,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
) -> Result<Page> {
    let tx = conn.transaction().map_err(sql("watch"))?;
    let compacted: Revision = tx
        .query_row(COMPACTED_SQL, [], |row| row.get(0))
        .map_err(sql("watch"))?;
    if after < compacted {
        return Err(Error::Compacted {
            requested: after,
            compacted,
        });
    }
    let revision: Revision = tx
        .query_row(REVISION_SQL, [], |row| row.get(0))
        .map_err(sql("watch"))?;
    let sql_text = format!(
        "SELECT k.id, k.key, k.value, k.create_revision, k.deleted, \
                p.id, p.value, p.create_revision \
         FROM kv k LEFT JOIN kv p ON p.id = k.prev_revision \
         WHERE k.id > ?1 AND k.key >= ?2 {} ORDER BY k.id LIMIT ?3",
        if end.is_some() { "AND k.key < ?4" } else { "" }
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = tx.prepare_cached(&sql_text).map_err(sql("watch"))?;
    let events = match end {
        Some(end) => stmt.query_map(params![after, start, limit, end], decode_event),
        None => stmt.query_map(params![after, start, limit], decode_event),
    }
    .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
    .map_err(sql("watch"))?;
    Ok(Page { events, revision })
}

fn decode_event(row: &Row<'_>) -> rusqlite::Result<Event> {
    let revision: Revision = row.get(0)?;
    let key = key_string(row.get(1)?)?;
    let value: Vec<u8> = row.get(2)?;
    let create_revision: Revision = row.get(3)?;
    let deleted: bool = row.get(4)?;
    let prev = match row.get::<_, Option<Revision>>(5)? {
        Some(prev_revision) => Some(KeyValue {
            key: key.clone(),
            value: row.get(6)?,
            create_revision: row.get(7)?,
            mod_revision: prev_revision,
        }),
        None => None,
    };
    Ok(if deleted {
        Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key,
                value: prev.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
                create_revision,
                mod_revision: revision,
            },
            prev,
        }
    } else {
        Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key,
                value,
                create_revision,
                mod_revision: revision,
            },
            prev,
        }
    })
}

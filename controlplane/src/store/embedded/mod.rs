//! The embedded store: the control plane's default, a crash-safe revisioned store in one data
//! directory, on `SQLite`.
//!
//! The design is log-structured, like k3s's kine: one table holds one row per revision
//! (`id` = revision, the key, the value, the key's create revision, the revision of the
//! key's previous live row, and a deleted flag). A key's current value is its newest row;
//! history is the rows themselves, so a watch catches up by reading rows in `id` order.
//! Compaction deletes the rows that a newer row of the same key supersedes up to a revision,
//! plus tombstones, and records that revision.
//!
//! One dedicated writer thread owns the only write connection and commits with group commit:
//! every write queued while the previous transaction was being made durable goes into the
//! next transaction, which costs one fsync (WAL journal, `synchronous=FULL`); each writer is
//! answered only after that commit. Reads use a small pool of read connections on tokio's
//! blocking pool; WAL gives each read transaction a consistent snapshot.
//!
//! Committed batches are also published in-process to watchers through a bounded ring
//! (`tokio::sync::broadcast`); see [`watch`] for how a watcher hands over from reading the
//! table to the ring, and what happens to one that falls behind.

mod read;
mod schema;
mod watch;
mod writer;

use std::fmt;
use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{Error, Event, EventStream, KeyValue, ListResult, Result, Revision, Store};
use read::ReaderPool;
use writer::{Msg, WriteOp};

/// The file in the data directory whose lock marks the directory as in use.
pub const LOCK_FILE: &str = "LOCK";
/// The `SQLite` database in the data directory.
pub const DATABASE_FILE: &str = "store.db";

/// Tuning of an [`EmbeddedStore`]; `Default` suits a small cluster on a small VM.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The most writes committed in one transaction (one fsync).
    pub max_batch: usize,
    /// How many writes may wait for the writer before writers wait to enqueue.
    pub queue_depth: usize,
    /// How many committed batches the live watch ring holds; a watcher further behind than
    /// this goes back to reading the table.
    pub watch_buffer: usize,
    /// Rows a watcher reads from the table at a time while catching up.
    pub catch_up_page: usize,
    /// The most read connections in use at once.
    pub readers: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            queue_depth: 4096,
            watch_buffer: 256,
            catch_up_page: 512,
            readers: 8,
        }
    }
}

/// Why a data directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("creating data directory {dir}")]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("opening lock file {path}")]
    OpenLockFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "data directory {dir} is in use by another store (the lock on {path} is held); stop the \
         other control plane or choose another directory"
    )]
    InUse { dir: PathBuf, path: PathBuf },
    #[error("locking {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("opening database {path}")]
    OpenDatabase {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("preparing the schema of {path}")]
    Schema {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {path} refused the WAL journal (journal_mode is {mode})")]
    JournalMode { path: PathBuf, mode: String },
    #[error("database {path} has schema version {found}; this build reads version {expected}")]
    SchemaVersion {
        path: PathBuf,
        found: i64,
        expected: i64,
    },
    #[error("syncing data directory {dir}")]
    SyncDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("starting the writer thread")]
    SpawnWriter(#[source] io::Error),
    #[error("the open task failed")]
    Join(#[source] tokio::task::JoinError),
}

/// A batch of events committed in one transaction, as the live ring carries it.
#[derive(Debug)]
struct Batch {
    events: Vec<Event>,
    /// The revision of the last write in the batch.
    last: Revision,
}

/// What the store's parts share: the writer thread, the readers, and every watch stream.
#[derive(Debug)]
struct Shared {
    readers: Arc<ReaderPool>,
    /// Taken when the writer stops, which ends every live watch.
    events: Mutex<Option<broadcast::Sender<Arc<Batch>>>>,
    /// The last committed revision.
    revision: AtomicI64,
    /// The last compaction's revision.
    compacted: AtomicI64,
    catch_up_page: usize,
    /// Runs where a watcher has read the table to its end and is about to subscribe.
    #[cfg(test)]
    before_subscribe: Mutex<tests::Hook>,
}

impl Shared {
    fn subscribe(&self) -> Option<broadcast::Receiver<Arc<Batch>>> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(broadcast::Sender::subscribe)
    }
}

/// The embedded store in a data directory. Dropping it stops the writer thread after the
/// writes already queued; [`EmbeddedStore::close`] does the same and waits for it.
pub struct EmbeddedStore {
    dir: PathBuf,
    requests: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("dir", &self.dir)
            .field("revision", &self.shared.revision.load(Ordering::Acquire))
            .field("compacted", &self.shared.compacted.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Creates or reopens the store in `dir` with the default tuning.
    pub async fn open(dir: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with_config(dir, EmbeddedConfig::default()).await
    }

    /// Creates or reopens the store in `dir`. Fails with [`OpenError::InUse`] while another
    /// store (in this or another process) has the directory open.
    pub async fn open_with_config(
        dir: impl AsRef<Path>,
        config: EmbeddedConfig,
    ) -> Result<Self, OpenError> {
        let dir = dir.as_ref().to_path_buf();
        let prepare_dir = dir.clone();
        let opened = tokio::task::spawn_blocking(move || prepare(&prepare_dir))
            .await
            .map_err(OpenError::Join)??;

        let (tx, _) = broadcast::channel(config.watch_buffer.max(1));
        let shared = Arc::new(Shared {
            readers: Arc::new(ReaderPool::new(
                opened.db_path.clone(),
                config.readers.max(1),
            )),
            events: Mutex::new(Some(tx)),
            revision: AtomicI64::new(opened.state.revision),
            compacted: AtomicI64::new(opened.state.compacted),
            catch_up_page: config.catch_up_page.max(1),
            #[cfg(test)]
            before_subscribe: Mutex::default(),
        });
        let (requests, inbox) = mpsc::channel(config.queue_depth.max(1));
        writer::spawn(
            opened.conn,
            opened.lock,
            inbox,
            Arc::clone(&shared),
            config.max_batch.max(1),
        )
        .map_err(OpenError::SpawnWriter)?;
        Ok(Self {
            dir,
            requests,
            shared,
        })
    }

    /// The data directory.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The revision of the last compaction (0 if none): watches need `after` at least this.
    #[must_use]
    pub fn compacted_revision(&self) -> Revision {
        self.shared.compacted.load(Ordering::Acquire)
    }

    /// Commits the writes already queued, stops the writer, ends every watch stream and
    /// releases the data directory; later operations fail. Returns once the directory can be
    /// opened again.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.requests.send(Msg::Close { reply }).await.is_ok() {
            // An error means the writer is already gone, which is what was asked for.
            let _ = done.await;
        }
        self.shared.readers.close();
    }

    async fn write(&self, op: WriteOp) -> Result<KeyValue> {
        let operation = op.name();
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Msg::Write { op, reply })
            .await
            .map_err(|_| closed(operation))?;
        answer.await.map_err(|_| closed(operation))?
    }
}

fn closed(operation: &'static str) -> Error {
    Error::Backend {
        operation,
        reason: "the embedded store is closed".to_owned(),
    }
}

/// What `prepare` hands to the writer thread.
struct Opened {
    lock: File,
    conn: rusqlite::Connection,
    db_path: PathBuf,
    state: schema::State,
}

/// Locks the directory and opens (creating if needed) the database: blocking work.
fn prepare(dir: &Path) -> Result<Opened, OpenError> {
    fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| OpenError::OpenLockFile {
            path: lock_path.clone(),
            source,
        })?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(OpenError::InUse {
                dir: dir.to_path_buf(),
                path: lock_path,
            });
        }
        Err(TryLockError::Error(source)) => {
            return Err(OpenError::Lock {
                path: lock_path,
                source,
            });
        }
    }
    let db_path = dir.join(DATABASE_FILE);
    let (conn, state) = schema::open_writer(&db_path)?;
    // The database and its WAL may have just been created: make their directory entries
    // durable too, or a power loss could lose acknowledged writes with the files.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| OpenError::SyncDir {
            dir: dir.to_path_buf(),
            source,
        })?;
    Ok(Opened {
        lock,
        conn,
        db_path,
        state,
    })
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.shared
            .readers
            .run("get", move |conn| read::get(conn, &key))
            .await
    }

    async fn list(&self, prefix: &str) -> Result<ListResult> {
        let (start, end) = super::prefix_range(prefix);
        self.shared
            .readers
            .run("list", move |conn| read::list(conn, &start, end.as_deref()))
            .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        self.write(WriteOp::Create {
            key: key.to_owned(),
            value,
        })
        .await
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        self.write(WriteOp::Update {
            key: key.to_owned(),
            value,
            expected,
        })
        .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        self.write(WriteOp::Delete {
            key: key.to_owned(),
            expected,
        })
        .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream> {
        let after = after.max(0);
        let compacted = self.compacted_revision();
        if after < compacted {
            return Err(Error::Compacted {
                requested: after,
                compacted,
            });
        }
        if self.requests.is_closed() {
            return Err(closed("watch"));
        }
        Ok(watch::stream(Arc::clone(&self.shared), prefix, after))
    }

    async fn current_revision(&self) -> Result<Revision> {
        if self.requests.is_closed() {
            return Err(closed("current revision"));
        }
        Ok(self.shared.revision.load(Ordering::Acquire))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Msg::Compact { revision, reply })
            .await
            .map_err(|_| closed("compact"))?;
        answer.await.map_err(|_| closed("compact"))?
    }
}

#[cfg(test)]
mod tests;

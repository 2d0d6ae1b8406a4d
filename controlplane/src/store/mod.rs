//! The control plane's storage: a revisioned key-value store behind one trait, with two
//! backends that pass one shared suite — an embedded, crash-safe store (the default, a data
//! directory) and etcd v3 (`--etcd-servers`).
//!
//! The semantics are etcd's, because the API server's are built on them: every write gets
//! the next revision of the whole store (revisions only increase); `update` and `delete` can
//! be conditional on the object's last modification revision (optimistic concurrency → 409
//! Conflict); `watch` delivers every change after a revision, in order, exactly once, until
//! history before that revision has been compacted away (→ 410 Gone).

use std::fmt;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub mod embedded;
pub mod etcd;
pub mod suite;

pub use embedded::{EmbeddedConfig, EmbeddedStore};
pub use etcd::{EtcdConfig, EtcdStore};

/// A store revision: the resourceVersion of the Kubernetes API.
pub type Revision = i64;

/// One key with its value and revisions.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision at which the key was created (last created, if it was deleted since).
    pub create_revision: Revision,
    /// The revision of the last change to the key (for a deletion: the deletion's revision).
    pub mod_revision: Revision,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value", &String::from_utf8_lossy(&self.value))
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .finish()
    }
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change, as a watch delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The key after the change; for a deletion, the last value with `mod_revision` set to
    /// the deletion's revision.
    pub kv: KeyValue,
    /// The key before the change, if it existed.
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision of the change.
    #[must_use]
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// A consistent snapshot of a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// Keys in ascending order.
    pub kvs: Vec<KeyValue>,
    /// The store revision the snapshot was taken at.
    pub revision: Revision,
}

/// Errors of store operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("key {key:?} not found")]
    NotFound { key: String },
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },
    /// A conditional write saw another revision than the caller expected.
    #[error("key {key:?} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    /// The history a watch asked for is gone.
    #[error("revision {requested} has been compacted (oldest available: {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The backend could not be reached or refused the operation.
    #[error("{operation} failed: {reason}")]
    Backend {
        operation: &'static str,
        reason: String,
    },
}

/// The result of a store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Changes after a revision, in order.
pub type EventStream = BoxStream<'static, Result<Event>>;

/// A revisioned key-value store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value of a key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;
    /// Every key with the prefix, as of one revision.
    async fn list(&self, prefix: &str) -> Result<ListResult>;
    /// Creates a key; `AlreadyExists` if it exists.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue>;
    /// Replaces a key's value if its `mod_revision` is `expected`; `NotFound` if it does not
    /// exist, `Conflict` if it changed.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue>;
    /// Deletes a key, if `expected` is given only at that `mod_revision`; returns the last
    /// value with `mod_revision` set to the deletion's revision.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue>;
    /// Every change to keys with the prefix after revision `after`, in order; `Compacted`
    /// if that history is gone.
    ///
    /// `after` is a resourceVersion: a watch from `after` is possible while `after` is at
    /// least the revision of the last compaction. `Compacted` arrives in one of two ways,
    /// and callers (the API server's 410 Gone) must handle both: as the error of `watch`
    /// itself when the backend knows at once (the embedded store), or as the stream's first
    /// and last item (etcd reports it asynchronously). A stream may also end with
    /// `Compacted` after some events when it fell so far behind that the history it still
    /// needed was compacted meanwhile; a stream that ends without an error was closed by
    /// the store (shut down); in every case the caller re-lists or re-watches.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream>;
    /// The store's current revision.
    async fn current_revision(&self) -> Result<Revision>;
    /// Forgets history up to and including `revision`: afterwards a watch needs `after >=
    /// revision`. Compacting at or below an earlier compaction does nothing; compacting
    /// beyond the current revision is an error.
    async fn compact(&self, revision: Revision) -> Result<()>;
}

pub mod memory;

/// The key range `[start, end)` that holds exactly the keys with `prefix`; `end` is `None`
/// when the range is unbounded (an empty prefix, or one of only `0xff` bytes).
pub(crate) fn prefix_range(prefix: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    let start = prefix.as_bytes().to_vec();
    let mut end = start.clone();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (start, Some(end));
        }
    }
    (start, None)
}

/// Whether `key` lies in the range made by [`prefix_range`].
pub(crate) fn in_range(key: &[u8], start: &[u8], end: Option<&[u8]>) -> bool {
    key >= start && end.is_none_or(|end| key < end)
}

#[cfg(test)]
mod tests {
    use super::{in_range, prefix_range};

    #[test]
    fn prefix_range_separates_sibling_prefixes() {
        let (start, end) = prefix_range("/registry/pods/");
        assert_eq!(end.as_deref(), Some(&b"/registry/pods0"[..]));
        assert!(in_range(
            b"/registry/pods/default/a",
            &start,
            end.as_deref()
        ));
        assert!(!in_range(
            b"/registry/podtemplates/a",
            &start,
            end.as_deref()
        ));
        assert!(!in_range(b"/registry/pods", &start, end.as_deref()));
    }

    #[test]
    fn empty_prefix_is_unbounded() {
        let (start, end) = prefix_range("");
        assert!(start.is_empty());
        assert_eq!(end, None);
        assert!(in_range(b"anything", &start, None));
    }
}

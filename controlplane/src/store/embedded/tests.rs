//! Unit tests of the embedded store's internals; its behaviour is checked by the shared
//! suite in the integration tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use futures::StreamExt;
use rusqlite::Connection;

use super::{DATABASE_FILE, EmbeddedStore};
use crate::store::{Event, EventStream, Store};

fn rows(dir: &std::path::Path) -> Vec<(i64, String, bool)> {
    let conn = Connection::open(dir.join(DATABASE_FILE)).expect("open database");
    let mut stmt = conn
        .prepare("SELECT id, CAST(key AS TEXT), deleted FROM kv ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test]
async fn compaction_keeps_only_what_later_history_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).await.expect("open");
    let a1 = store.create("/a", b"1".to_vec()).await.expect("create a");
    let a2 = store
        .update("/a", b"2".to_vec(), a1.mod_revision)
        .await
        .expect("update a");
    store.create("/b", b"1".to_vec()).await.expect("create b");
    let b_gone = store.delete("/b", None).await.expect("delete b");
    let c1 = store.create("/c", b"1".to_vec()).await.expect("create c");
    let c2 = store
        .update("/c", b"2".to_vec(), c1.mod_revision)
        .await
        .expect("update c");

    store.compact(b_gone.mod_revision).await.expect("compact");
    store.close().await;

    // a2 is a's value at the compaction; b is gone with its tombstone; c is untouched.
    assert_eq!(
        rows(dir.path()),
        vec![
            (a2.mod_revision, "/a".to_owned(), false),
            (c1.mod_revision, "/c".to_owned(), false),
            (c2.mod_revision, "/c".to_owned(), false),
        ]
    );
}

#[tokio::test]
async fn revisions_are_not_reused_after_compacting_a_trailing_deletion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).await.expect("open");
    store.create("/a", b"1".to_vec()).await.expect("create");
    let gone = store.delete("/a", None).await.expect("delete");
    store.compact(gone.mod_revision).await.expect("compact");
    store.close().await;
    assert!(
        rows(dir.path()).is_empty(),
        "the tombstone and its value are compacted away"
    );

    let store = EmbeddedStore::open(dir.path()).await.expect("reopen");
    assert_eq!(
        store.current_revision().await.expect("revision"),
        gone.mod_revision
    );
    assert_eq!(store.compacted_revision(), gone.mod_revision);
    let next = store
        .create("/a", b"2".to_vec())
        .await
        .expect("create again");
    assert_eq!(next.mod_revision, gone.mod_revision + 1);
    store.close().await;
}

/// Code a test runs inside the store at a chosen point.
#[derive(Default)]
pub(super) struct Hook(Option<Box<dyn FnMut() + Send>>);

impl Hook {
    pub(super) fn run(&mut self) {
        if let Some(hook) = self.0.as_mut() {
            hook();
        }
    }
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Hook(set)"
        } else {
            "Hook(none)"
        })
    }
}

/// The next item of a stream, within a few seconds.
async fn next(stream: &mut EventStream) -> Option<crate::store::Result<Event>> {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("no stream item within 5s")
}

/// A write committed after a watcher read the table to its end but before it subscribed to
/// live events is delivered: the watcher reads the table again once subscribed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_between_catch_up_and_subscription_is_not_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).await.expect("open"));
    let first = store
        .create("/w/first", b"x".to_vec())
        .await
        .expect("create");

    let (written_tx, written_rx) = mpsc::channel();
    let fired = Arc::new(AtomicBool::new(false));
    let hook = {
        let (store, fired) = (Arc::clone(&store), Arc::clone(&fired));
        move || {
            if fired.swap(true, Ordering::SeqCst) {
                return;
            }
            // The writer is its own thread: waiting here for the commit cannot deadlock.
            let kv = futures::executor::block_on(store.create("/w/gap", b"x".to_vec()))
                .expect("write in the gap");
            written_tx.send(kv).expect("report the write");
        }
    };
    *store.shared.before_subscribe.lock().expect("hook lock") = Hook(Some(Box::new(hook)));

    let mut stream = store.watch("/w/", 0).await.expect("watch");
    let event = next(&mut stream).await.expect("open").expect("ok");
    assert_eq!(event.kv, first);
    let event = next(&mut stream).await.expect("open").expect("ok");
    let gap = written_rx.recv().expect("the hook wrote");
    assert_eq!(event.kv, gap, "the write in the gap is delivered");
    // The hook holds the store: unset it so that the store can go.
    *store.shared.before_subscribe.lock().expect("hook lock") = Hook::default();
    store.close().await;
}

//! Unit tests of the embedded store's internals; its behaviour is checked by the shared
//! suite in the integration tests.

use rusqlite::Connection;

use super::{DATABASE_FILE, EmbeddedStore};
use crate::store::Store;

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

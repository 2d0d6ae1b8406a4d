//! Cases on reads, writes, their refusals and revisions, and compaction.

use std::sync::Arc;

use super::{CaseResult, Context, ensure, ensure_eq, expect_compacted, next_events};
use crate::store::{Error, KeyValue, Store};

pub(super) async fn crud(store: Arc<dyn Store>, root: String) -> CaseResult {
    let key = format!("{root}/a");
    let created = store.create(&key, b"v1".to_vec()).await.context("create")?;
    ensure_eq!(created.key, key, "created key");
    ensure_eq!(created.value, b"v1".to_vec(), "created value");
    ensure_eq!(
        created.create_revision,
        created.mod_revision,
        "created revisions"
    );
    ensure_eq!(
        store.get(&key).await.context("get")?,
        Some(created.clone()),
        "get"
    );
    let listed = store.list(&format!("{root}/")).await.context("list")?;
    ensure_eq!(listed.kvs, vec![created.clone()], "list");
    ensure!(
        listed.revision >= created.mod_revision,
        "list revision {} is before the create at {}",
        listed.revision,
        created.mod_revision
    );

    let updated = store
        .update(&key, b"v2".to_vec(), created.mod_revision)
        .await
        .context("update")?;
    ensure!(
        updated.mod_revision > created.mod_revision,
        "update did not advance the revision"
    );
    ensure_eq!(
        updated.create_revision,
        created.create_revision,
        "updated create_revision"
    );
    ensure_eq!(updated.value, b"v2".to_vec(), "updated value");
    ensure_eq!(
        store.get(&key).await.context("get")?,
        Some(updated.clone()),
        "get after update"
    );

    let deleted = store
        .delete(&key, Some(updated.mod_revision))
        .await
        .context("delete")?;
    ensure!(
        deleted.mod_revision > updated.mod_revision,
        "delete did not advance the revision"
    );
    ensure_eq!(
        KeyValue {
            mod_revision: updated.mod_revision,
            ..deleted.clone()
        },
        updated,
        "deleted key-value (the last value)"
    );
    ensure_eq!(
        store.get(&key).await.context("get")?,
        None,
        "get after delete"
    );
    ensure!(
        store
            .list(&format!("{root}/"))
            .await
            .context("list")?
            .kvs
            .is_empty(),
        "list after delete is not empty"
    );

    let recreated = store
        .create(&key, b"v3".to_vec())
        .await
        .context("re-create")?;
    ensure!(
        recreated.create_revision > deleted.mod_revision,
        "re-created key has create_revision {} before its deletion at {}",
        recreated.create_revision,
        deleted.mod_revision
    );
    let deleted = store
        .delete(&key, None)
        .await
        .context("unconditional delete")?;
    ensure_eq!(
        deleted.value,
        b"v3".to_vec(),
        "unconditionally deleted value"
    );
    Ok(())
}

pub(super) async fn refusals(store: Arc<dyn Store>, root: String) -> CaseResult {
    let key = format!("{root}/a");
    let missing = format!("{root}/missing");
    let a = store.create(&key, b"v1".to_vec()).await.context("create")?;
    let revision = store.current_revision().await.context("current revision")?;

    match store.create(&key, b"again".to_vec()).await {
        Err(Error::AlreadyExists { key: k }) => ensure_eq!(k, key, "AlreadyExists key"),
        other => {
            return Err(format!(
                "second create: expected AlreadyExists, got {other:?}"
            ));
        }
    }
    for expected in [0, a.mod_revision] {
        match store.update(&missing, b"x".to_vec(), expected).await {
            Err(Error::NotFound { key: k }) => ensure_eq!(k, missing, "NotFound key"),
            other => {
                return Err(format!(
                    "update of a missing key expecting {expected}: expected NotFound, got {other:?}"
                ));
            }
        }
    }
    for expected in [None, Some(a.mod_revision)] {
        match store.delete(&missing, expected).await {
            Err(Error::NotFound { .. }) => {}
            other => {
                return Err(format!(
                    "delete of a missing key ({expected:?}): expected NotFound, got {other:?}"
                ));
            }
        }
    }
    let stale = a.mod_revision - 1;
    match store.update(&key, b"x".to_vec(), stale).await {
        Err(Error::Conflict {
            key: k,
            expected,
            actual,
        }) => {
            ensure_eq!(k, key, "Conflict key");
            ensure_eq!(expected, stale, "Conflict expected");
            ensure_eq!(actual, a.mod_revision, "Conflict actual");
        }
        other => return Err(format!("stale update: expected Conflict, got {other:?}")),
    }
    match store.delete(&key, Some(stale)).await {
        Err(Error::Conflict { actual, .. }) => {
            ensure_eq!(actual, a.mod_revision, "delete Conflict actual");
        }
        other => return Err(format!("stale delete: expected Conflict, got {other:?}")),
    }
    ensure_eq!(
        store.current_revision().await.context("current revision")?,
        revision,
        "revision after refused writes (they must take none)"
    );
    ensure_eq!(
        store.get(&key).await.context("get")?,
        Some(a.clone()),
        "key after refusals"
    );

    store.delete(&key, None).await.context("delete")?;
    match store.update(&key, b"x".to_vec(), a.mod_revision).await {
        Err(Error::NotFound { .. }) => {}
        other => {
            return Err(format!(
                "update of a deleted key: expected NotFound, got {other:?}"
            ));
        }
    }
    Ok(())
}

pub(super) async fn revisions_increase_across_keys(
    store: Arc<dyn Store>,
    root: String,
) -> CaseResult {
    let mut last = store.current_revision().await.context("current revision")?;
    let mut kvs = Vec::new();
    for i in 0..5 {
        let kv = store
            .create(&format!("{root}/k{i}"), vec![b'0'])
            .await
            .context("create")?;
        ensure!(
            kv.mod_revision > last,
            "create of k{i} got {} after {last}",
            kv.mod_revision
        );
        last = kv.mod_revision;
        kvs.push(kv);
    }
    for round in 1..4u8 {
        for kv in &mut kvs {
            *kv = store
                .update(&kv.key, vec![b'0' + round], kv.mod_revision)
                .await
                .context("update")?;
            ensure!(
                kv.mod_revision > last,
                "update got {} after {last}",
                kv.mod_revision
            );
            last = kv.mod_revision;
        }
    }
    let current = store.current_revision().await.context("current revision")?;
    ensure!(
        current >= last,
        "current revision {current} is before the last write {last}"
    );
    Ok(())
}

pub(super) async fn concurrent_conditional_updates_conflict(
    store: Arc<dyn Store>,
    root: String,
) -> CaseResult {
    for round in 0..10 {
        let key = format!("{root}/k{round}");
        let kv = store.create(&key, b"0".to_vec()).await.context("create")?;
        let one = {
            let (store, key) = (Arc::clone(&store), key.clone());
            tokio::spawn(async move { store.update(&key, b"1".to_vec(), kv.mod_revision).await })
        };
        let two = {
            let (store, key) = (Arc::clone(&store), key.clone());
            tokio::spawn(async move { store.update(&key, b"2".to_vec(), kv.mod_revision).await })
        };
        let one = one.await.map_err(|e| format!("update task: {e}"))?;
        let two = two.await.map_err(|e| format!("update task: {e}"))?;
        let (won, lost) = match (one, two) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            (one, two) => {
                return Err(format!(
                    "round {round}: expected one success and one Conflict, got {one:?} and {two:?}"
                ));
            }
        };
        match lost {
            Error::Conflict {
                expected, actual, ..
            } => {
                ensure_eq!(expected, kv.mod_revision, "Conflict expected");
                ensure_eq!(
                    actual,
                    won.mod_revision,
                    "Conflict actual (the winner's revision)"
                );
            }
            other => {
                return Err(format!(
                    "round {round}: the loser got {other:?}, not Conflict"
                ));
            }
        }
        ensure_eq!(
            store.get(&key).await.context("get")?,
            Some(won),
            "the winner's value"
        );
    }
    Ok(())
}

pub(super) async fn compaction(store: Arc<dyn Store>, root: String) -> CaseResult {
    let prefix = format!("{root}/");
    let (a, b, c) = (
        format!("{root}/a"),
        format!("{root}/b"),
        format!("{root}/c"),
    );
    let a1 = store.create(&a, b"a1".to_vec()).await.context("create a")?;
    let a2 = store
        .update(&a, b"a2".to_vec(), a1.mod_revision)
        .await
        .context("update a")?;
    store.create(&b, b"b1".to_vec()).await.context("create b")?;
    store.delete(&b, None).await.context("delete b")?;
    let compact_at = store.current_revision().await.context("current revision")?;
    let c1 = store.create(&c, b"c1".to_vec()).await.context("create c")?;
    let a3 = store
        .update(&a, b"a3".to_vec(), a2.mod_revision)
        .await
        .context("update a")?;

    store.compact(compact_at).await.context("compact")?;

    for after in [a1.mod_revision, compact_at - 1] {
        let compacted = expect_compacted(store.as_ref(), &prefix, after).await?;
        ensure_eq!(
            compacted,
            compact_at,
            "compacted revision reported for a watch after {after}"
        );
    }
    let mut stream = store
        .watch(&prefix, compact_at)
        .await
        .context("watch at the compaction")?;
    let events = next_events(&mut stream, 2, "watch at the compaction").await?;
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.kv.clone(), e.prev.clone()))
        .collect();
    ensure_eq!(
        seen,
        vec![(c1.clone(), None), (a3.clone(), Some(a2))],
        "events after compaction"
    );

    ensure_eq!(
        store.get(&a).await.context("get a")?,
        Some(a3.clone()),
        "a after compaction"
    );
    ensure_eq!(
        store.get(&b).await.context("get b")?,
        None,
        "b after compaction"
    );
    ensure_eq!(
        store.list(&prefix).await.context("list")?.kvs,
        vec![a3, c1],
        "list after compaction"
    );

    store
        .compact(compact_at)
        .await
        .context("compacting again at the same revision")?;
    store
        .compact(a1.mod_revision)
        .await
        .context("compacting below the compaction")?;
    let future = store.current_revision().await.context("current revision")? + 1000;
    match store.compact(future).await {
        Err(Error::Backend { .. }) => {}
        other => {
            return Err(format!(
                "compacting at a future revision: expected an error, got {other:?}"
            ));
        }
    }
    Ok(())
}

//! The cases of the store suite.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::watch;

use super::{Case, CaseResult, Context, ensure, ensure_eq, expect_compacted, next_events};
use crate::store::{Error, Event, EventKind, KeyValue, Revision, Store};

/// Writers and writes per writer in the concurrent watch case.
const WRITERS: usize = 8;
const WRITES_PER_WRITER: usize = 200;

pub(super) const ALL: &[Case] = &[
    Case {
        name: "crud",
        run: |s, r| Box::pin(crud(s, r)),
    },
    Case {
        name: "refusals",
        run: |s, r| Box::pin(refusals(s, r)),
    },
    Case {
        name: "revisions_increase_across_keys",
        run: |s, r| Box::pin(revisions_increase_across_keys(s, r)),
    },
    Case {
        name: "list_is_a_snapshot_at_its_revision",
        run: |s, r| Box::pin(list_is_a_snapshot_at_its_revision(s, r)),
    },
    Case {
        name: "watch_replays_history_with_prev",
        run: |s, r| Box::pin(watch_replays_history_with_prev(s, r)),
    },
    Case {
        name: "watch_resumes_from_the_middle",
        run: |s, r| Box::pin(watch_resumes_from_the_middle(s, r)),
    },
    Case {
        name: "watch_sees_concurrent_writers_exactly_once",
        run: |s, r| Box::pin(watch_sees_concurrent_writers_exactly_once(s, r)),
    },
    Case {
        name: "prefixes_are_isolated",
        run: |s, r| Box::pin(prefixes_are_isolated(s, r)),
    },
    Case {
        name: "concurrent_conditional_updates_conflict",
        run: |s, r| Box::pin(concurrent_conditional_updates_conflict(s, r)),
    },
    Case {
        name: "compaction",
        run: |s, r| Box::pin(compaction(s, r)),
    },
];

async fn crud(store: Arc<dyn Store>, root: String) -> CaseResult {
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

async fn refusals(store: Arc<dyn Store>, root: String) -> CaseResult {
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

async fn revisions_increase_across_keys(store: Arc<dyn Store>, root: String) -> CaseResult {
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

/// Lists taken while writers change the prefix each equal the state that the watch history
/// gives at the list's revision.
async fn list_is_a_snapshot_at_its_revision(store: Arc<dyn Store>, root: String) -> CaseResult {
    let prefix = format!("{root}/");
    let start = store.current_revision().await.context("current revision")?;
    let mut stream = store.watch(&prefix, start).await.context("watch")?;

    let writer = {
        let (store, root) = (Arc::clone(&store), root.clone());
        tokio::spawn(async move {
            let mut writes = 0;
            for round in 0..10u8 {
                for i in 0..10 {
                    let key = format!("{root}/k{i}");
                    match store.get(&key).await? {
                        None => store.create(&key, vec![round]).await.map(drop)?,
                        Some(kv) if (i + usize::from(round)) % 3 == 0 => {
                            store.delete(&key, Some(kv.mod_revision)).await.map(drop)?;
                        }
                        Some(kv) => {
                            store
                                .update(&key, vec![round], kv.mod_revision)
                                .await
                                .map(drop)?;
                        }
                    }
                    writes += 1;
                }
            }
            Ok::<_, Error>(writes)
        })
    };
    let mut lists = Vec::new();
    for _ in 0..10 {
        lists.push(store.list(&prefix).await.context("list")?);
        tokio::task::yield_now().await;
    }
    let write_count = writer
        .await
        .map_err(|e| format!("writer task: {e}"))?
        .context("write")?;
    let final_list = store.list(&prefix).await.context("final list")?;
    lists.push(final_list);

    let events = next_events(&mut stream, write_count, "watch of the writes").await?;
    for list in &lists {
        let mut state = BTreeMap::new();
        for event in events.iter().filter(|e| e.revision() <= list.revision) {
            match event.kind {
                EventKind::Put => state.insert(event.kv.key.clone(), event.kv.clone()),
                EventKind::Delete => state.remove(&event.kv.key),
            };
        }
        let listed: BTreeMap<_, _> = list
            .kvs
            .iter()
            .map(|kv| (kv.key.clone(), kv.clone()))
            .collect();
        ensure_eq!(listed, state, "list at revision {}", list.revision);
        let keys: Vec<_> = list.kvs.iter().map(|kv| &kv.key).collect();
        ensure!(keys.is_sorted(), "list keys are not in order: {keys:?}");
    }
    let current = store.current_revision().await.context("current revision")?;
    ensure_eq!(
        lists.last().map(|l| l.revision),
        Some(current),
        "revision of a list with no write after it"
    );
    Ok(())
}

async fn watch_replays_history_with_prev(store: Arc<dyn Store>, root: String) -> CaseResult {
    let (a, b) = (format!("{root}/a"), format!("{root}/b"));
    let start = store.current_revision().await.context("current revision")?;
    let a1 = store.create(&a, b"a1".to_vec()).await.context("create a")?;
    let a2 = store
        .update(&a, b"a2".to_vec(), a1.mod_revision)
        .await
        .context("update a")?;
    let b1 = store.create(&b, b"b1".to_vec()).await.context("create b")?;
    let a_gone = store.delete(&a, None).await.context("delete a")?;

    let mut stream = store
        .watch(&format!("{root}/"), start)
        .await
        .context("watch")?;
    let events = next_events(&mut stream, 4, "history").await?;
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.kv.clone(), e.prev.clone()))
        .collect();
    let expected = vec![
        (EventKind::Put, a1.clone(), None),
        (EventKind::Put, a2.clone(), Some(a1)),
        (EventKind::Put, b1, None),
        (EventKind::Delete, a_gone.clone(), Some(a2.clone())),
    ];
    ensure_eq!(seen, expected, "events");
    ensure_eq!(
        a_gone.value,
        a2.value,
        "the delete event's value (the last value)"
    );

    // The same stream goes on with live events.
    let b2 = store
        .update(&b, b"b2".to_vec(), expected[2].1.mod_revision)
        .await
        .context("update b")?;
    let live = next_events(&mut stream, 1, "live event").await?;
    ensure_eq!(live[0].kv, b2, "live event");
    Ok(())
}

async fn watch_resumes_from_the_middle(store: Arc<dyn Store>, root: String) -> CaseResult {
    let mut written = Vec::new();
    for i in 0..6 {
        written.push(
            store
                .create(&format!("{root}/k{i}"), vec![b'x'])
                .await
                .context("create")?,
        );
    }
    let resume = written[2].mod_revision;
    let mut stream = store
        .watch(&format!("{root}/"), resume)
        .await
        .context("watch")?;
    let events = next_events(&mut stream, 3, "resumed watch").await?;
    let seen: Vec<_> = events.into_iter().map(|e| e.kv).collect();
    ensure_eq!(
        seen,
        written[3..].to_vec(),
        "events after revision {resume}"
    );
    // Nothing else is pending: the next event is the next write.
    let next = store
        .create(&format!("{root}/k6"), vec![b'x'])
        .await
        .context("create")?;
    let live = next_events(&mut stream, 1, "live event").await?;
    ensure_eq!(live[0].kv, next, "first event after the replay");
    Ok(())
}

/// Eight writers write concurrently; a watch from before them, and one started while they
/// write, see exactly the acknowledged revisions, in order.
async fn watch_sees_concurrent_writers_exactly_once(
    store: Arc<dyn Store>,
    root: String,
) -> CaseResult {
    let prefix = format!("{root}/");
    let start = store.current_revision().await.context("current revision")?;
    let total = WRITERS * WRITES_PER_WRITER;
    // The early watcher consumes while the writers write: it follows live events.
    let mut early = store.watch(&prefix, start).await.context("watch")?;
    let early = tokio::spawn(async move { next_events(&mut early, total, "early watch").await });

    let (progress_tx, mut progress) = watch::channel(0usize);
    let progress_tx = Arc::new(progress_tx);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (store, root, progress_tx) =
            (Arc::clone(&store), root.clone(), Arc::clone(&progress_tx));
        writers.push(tokio::spawn(async move {
            let mut revisions = Vec::with_capacity(WRITES_PER_WRITER);
            for i in 0..WRITES_PER_WRITER {
                let kv = store
                    .create(&format!("{root}/w{w}/{i}"), vec![b'x'])
                    .await?;
                revisions.push(kv.mod_revision);
                progress_tx.send_modify(|n| *n += 1);
            }
            Ok::<_, Error>(revisions)
        }));
    }
    // A second watcher joins half-way, from the same start: it must catch up from history
    // and hand over to live events while the writers go on.
    let half = WRITERS * WRITES_PER_WRITER / 2;
    tokio::time::timeout(super::WAIT * 3, progress.wait_for(|n| *n >= half))
        .await
        .map_err(|_| "writers did not get half-way".to_owned())?
        .map_err(|_| "writers stopped before half-way".to_owned())?;
    let mut late = store.watch(&prefix, start).await.context("late watch")?;

    let mut acknowledged = BTreeSet::new();
    for writer in writers {
        let revisions = writer
            .await
            .map_err(|e| format!("writer task: {e}"))?
            .context("concurrent create")?;
        ensure!(
            revisions.is_sorted(),
            "one writer's revisions are not increasing: {revisions:?}"
        );
        acknowledged.extend(revisions);
    }
    ensure_eq!(acknowledged.len(), total, "distinct acknowledged revisions");
    let expected: Vec<Revision> = acknowledged.into_iter().collect();
    let late = next_events(&mut late, total, "late watch").await?;
    let early = early
        .await
        .map_err(|e| format!("early watch task: {e}"))??;
    for (name, events) in [("early", early), ("late", late)] {
        let seen: Vec<_> = events.iter().map(Event::revision).collect();
        ensure!(
            seen == expected,
            "{name} watch saw {} events, first mismatch at index {:?}",
            seen.len(),
            seen.iter().zip(&expected).position(|(a, b)| a != b)
        );
    }
    Ok(())
}

async fn prefixes_are_isolated(store: Arc<dyn Store>, root: String) -> CaseResult {
    let pods = format!("{root}/registry/pods/");
    let start = store.current_revision().await.context("current revision")?;
    let pod = store
        .create(&format!("{pods}default/a"), b"pod".to_vec())
        .await
        .context("create")?;
    for key in [
        format!("{root}/registry/podtemplates/default/a"),
        format!("{root}/registry/pods"),
        format!("{root}/registry/pods0"),
    ] {
        store
            .create(&key, b"other".to_vec())
            .await
            .context("create")?;
    }
    let listed = store.list(&pods).await.context("list")?;
    ensure_eq!(listed.kvs, vec![pod.clone()], "list of {pods}");

    let mut stream = store.watch(&pods, start).await.context("watch")?;
    let first = next_events(&mut stream, 1, "watch").await?;
    ensure_eq!(first[0].kv, pod, "first event under {pods}");
    // A write elsewhere, then a sentinel: the sentinel must be the next event.
    store
        .create(
            &format!("{root}/registry/podtemplates/default/b"),
            b"other".to_vec(),
        )
        .await
        .context("create")?;
    let sentinel = store
        .create(&format!("{pods}default/z"), b"pod".to_vec())
        .await
        .context("create")?;
    let next = next_events(&mut stream, 1, "watch").await?;
    ensure_eq!(next[0].kv, sentinel, "next event under {pods}");
    Ok(())
}

async fn concurrent_conditional_updates_conflict(
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

async fn compaction(store: Arc<dyn Store>, root: String) -> CaseResult {
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

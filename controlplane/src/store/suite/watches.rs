//! Cases on lists and watches: snapshots, history, handover to live events, concurrency.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::watch;

use super::{CaseResult, Context, WAIT, ensure, ensure_eq, next_events};
use crate::store::{Error, Event, EventKind, Revision, Store};

/// Writers and writes per writer in the concurrent watch case.
const WRITERS: usize = 8;
const WRITES_PER_WRITER: usize = 200;

pub(super) async fn list_is_a_snapshot_at_its_revision(
    store: Arc<dyn Store>,
    root: String,
) -> CaseResult {
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

pub(super) async fn watch_replays_history_with_prev(
    store: Arc<dyn Store>,
    root: String,
) -> CaseResult {
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

pub(super) async fn watch_resumes_from_the_middle(
    store: Arc<dyn Store>,
    root: String,
) -> CaseResult {
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

pub(super) async fn watch_sees_concurrent_writers_exactly_once(
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
    tokio::time::timeout(WAIT * 3, progress.wait_for(|n| *n >= half))
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

pub(super) async fn prefixes_are_isolated(store: Arc<dyn Store>, root: String) -> CaseResult {
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

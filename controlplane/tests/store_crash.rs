//! Crash safety of the embedded store: a child process writes as fast as it can and prints
//! each acknowledged write; the test kills it with SIGKILL mid-stream, reopens the data
//! directory, and checks that every acknowledged write is there, with its revision, and in
//! the replayed history.
//!
//! The child is this test binary itself, re-run with `CHILD_ENV` set so that only
//! `crash_child_writer` does anything.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use ferrolet_controlplane::store::embedded::OpenError;
use ferrolet_controlplane::store::{EmbeddedStore, Error, EventKind, Revision, Store};
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// Set (to the data directory) in the child's environment.
const CHILD_ENV: &str = "FERROLET_STORE_CRASH_CHILD_DIR";
/// Acknowledgements to read before the kill.
const ACKS_BEFORE_KILL: usize = 500;
const CHILD_WRITERS: usize = 16;
const WAIT: Duration = Duration::from_secs(30);

/// The child's body; a no-op in an ordinary test run.
#[test]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("child: runtime");
    runtime.block_on(async move {
        let store = Arc::new(EmbeddedStore::open(&dir).await.expect("child: open store"));
        let mut writers = Vec::new();
        for w in 0..CHILD_WRITERS {
            let store = Arc::clone(&store);
            writers.push(tokio::spawn(async move {
                // Bounded, but far more than the parent waits for before the kill.
                for i in 0..1_000_000 {
                    let key = format!("/crash/{w:02}/{i:07}");
                    let kv = store.create(&key, key.as_bytes().to_vec()).await?;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {key} {}", kv.mod_revision).expect("child: stdout");
                    out.flush().expect("child: flush");
                }
                Ok::<_, Error>(())
            }));
        }
        for writer in writers {
            writer
                .await
                .expect("child: writer task")
                .expect("child: write");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_keeps_acknowledged_writes_across_sigkill() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "crash_child_writer",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the child writer")?;
    let mut stdout = BufReader::new(child.stdout.take().context("child stdout")?);

    let mut acked: BTreeMap<String, Revision> = BTreeMap::new();
    let mut line = String::new();
    while acked.len() < ACKS_BEFORE_KILL {
        line.clear();
        let n = tokio::time::timeout(WAIT, stdout.read_line(&mut line))
            .await
            .context("the child stopped acknowledging writes")??;
        ensure!(
            n > 0,
            "the child exited after {} acknowledgements",
            acked.len()
        );
        record(&line, &mut acked)?;
    }
    // The child holds the data directory: another process cannot open it meanwhile.
    match EmbeddedStore::open(dir.path()).await {
        Err(OpenError::InUse { .. }) => {}
        other => bail!("opening the directory the child uses: expected InUse, got {other:?}"),
    }
    child.start_kill().context("SIGKILL to the child")?;
    let status = tokio::time::timeout(WAIT, child.wait()).await??;
    ensure!(!status.success(), "the child was not killed: {status}");
    // Lines the child printed before it died are acknowledged writes too.
    loop {
        line.clear();
        if tokio::time::timeout(WAIT, stdout.read_line(&mut line)).await?? == 0 {
            break;
        }
        if line.ends_with('\n') {
            record(&line, &mut acked)?;
        }
    }
    eprintln!("{} acknowledged writes before SIGKILL", acked.len());

    let store = EmbeddedStore::open(dir.path())
        .await
        .context("reopening after SIGKILL")?;
    for (key, &revision) in &acked {
        let kv = store
            .get(key)
            .await?
            .with_context(|| format!("acknowledged {key} is lost"))?;
        ensure!(
            kv.mod_revision == revision && kv.create_revision == revision,
            "{key} was acknowledged at revision {revision}, found {kv:?}"
        );
        ensure!(
            kv.value == key.as_bytes(),
            "{key} has another value: {kv:?}"
        );
    }

    // The history from the start has every revision up to the current one, without a
    // gap, each at most once, the acknowledged ones among them.
    let current = store.current_revision().await?;
    let max_acked = acked.values().copied().max().unwrap_or(0);
    ensure!(
        current >= max_acked,
        "current revision {current} is below acknowledged {max_acked}"
    );
    let mut stream = store.watch("/crash/", 0).await?;
    let mut replayed = BTreeMap::new();
    for expected in 1..=current {
        let event = tokio::time::timeout(WAIT, stream.next())
            .await?
            .context("the replay ended early")??;
        ensure!(
            event.revision() == expected && event.kind == EventKind::Put,
            "replay: expected a put at revision {expected}, got {event:?}"
        );
        replayed.insert(event.kv.key.clone(), event.revision());
    }
    for (key, revision) in &acked {
        ensure!(
            replayed.get(key) == Some(revision),
            "{key} at {revision} is not replayed"
        );
    }

    let next = store.create("/crash/after", b"x".to_vec()).await?;
    ensure!(
        next.mod_revision > current,
        "a write after reopening got revision {} (current was {current})",
        next.mod_revision
    );
    store.close().await;
    Ok(())
}

/// Parses `ACK <key> <revision>` (other lines are the test harness's).
fn record(line: &str, acked: &mut BTreeMap<String, Revision>) -> anyhow::Result<()> {
    let mut words = line.split_whitespace();
    if words.next() != Some("ACK") {
        return Ok(());
    }
    let (Some(key), Some(revision)) = (words.next(), words.next()) else {
        bail!("malformed acknowledgement {line:?}");
    };
    let revision = revision
        .parse()
        .with_context(|| format!("revision in {line:?}"))?;
    if acked.insert(key.to_owned(), revision).is_some() {
        bail!("{key} acknowledged twice");
    }
    Ok(())
}

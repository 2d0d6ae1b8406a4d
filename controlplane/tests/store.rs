//! The store backends against the shared suite — the embedded store in a temporary
//! directory and a real etcd started by the test — plus the embedded store's own
//! behaviours: its directory lock, reopening, and slow watchers.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ferrolet_controlplane::store::embedded::OpenError;
use ferrolet_controlplane::store::etcd::ConnectError;
use ferrolet_controlplane::store::{
    EmbeddedConfig, EmbeddedStore, Error, EtcdConfig, EtcdStore, EventKind, Store, suite,
};
use futures::StreamExt;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_passes_the_suite() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(EmbeddedStore::open(dir.path()).await?);
    suite::run(store.clone(), "/suite").await?;
    store.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_store_passes_the_suite() -> anyhow::Result<()> {
    let mut etcd = EtcdServer::start()?;
    let store = etcd.connect().await?;
    suite::run(Arc::new(store), "/suite").await?;
    Ok(())
}

#[tokio::test]
async fn etcd_store_names_unreachable_endpoints() -> anyhow::Result<()> {
    let endpoint = format!("http://127.0.0.1:{}", free_port()?);
    let mut config = EtcdConfig::new([endpoint.clone()]);
    config.connect_timeout = Duration::from_millis(500);
    config.request_timeout = Duration::from_secs(2);
    match EtcdStore::connect(config).await {
        Err(e @ ConnectError::Unreachable { .. }) => {
            let message = format!(
                "{e}: {}",
                std::error::Error::source(&e).map_or(String::new(), ToString::to_string)
            );
            assert!(message.contains(&endpoint), "{message}");
            assert!(message.contains("current revision failed"), "{message}");
            Ok(())
        }
        other => bail!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn embedded_store_locks_its_data_dir() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path()).await?;
    match EmbeddedStore::open(dir.path()).await {
        Err(e @ OpenError::InUse { .. }) => {
            assert!(e.to_string().contains("is in use"), "{e}");
        }
        other => bail!("second open: expected InUse, got {other:?}"),
    }
    store.close().await;
    assert!(
        matches!(store.get("/a").await, Err(Error::Backend { .. })),
        "a closed store refuses reads"
    );
    let reopened = EmbeddedStore::open(dir.path())
        .await
        .context("open after close")?;
    reopened.close().await;
    Ok(())
}

#[tokio::test]
async fn embedded_store_reopens_with_its_history() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path()).await?;
    let a = store.create("/registry/a", b"1".to_vec()).await?;
    let a = store
        .update("/registry/a", b"2".to_vec(), a.mod_revision)
        .await?;
    let b = store.create("/registry/b", b"1".to_vec()).await?;
    let b_gone = store.delete("/registry/b", None).await?;
    store.close().await;

    let store = EmbeddedStore::open(dir.path()).await?;
    assert_eq!(store.current_revision().await?, b_gone.mod_revision);
    assert_eq!(store.get("/registry/a").await?, Some(a.clone()));
    assert_eq!(store.get("/registry/b").await?, None);
    let mut stream = store.watch("/registry/", 0).await?;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let event = tokio::time::timeout(WAIT, stream.next())
            .await?
            .context("stream ended")??;
        seen.push((event.kind, event.revision()));
    }
    assert_eq!(
        seen,
        vec![
            (EventKind::Put, 1),
            (EventKind::Put, a.mod_revision),
            (EventKind::Put, b.mod_revision),
            (EventKind::Delete, b_gone.mod_revision),
        ]
    );
    let next = store.create("/registry/c", b"1".to_vec()).await?;
    assert_eq!(next.mod_revision, b_gone.mod_revision + 1);
    store.close().await;
    Ok(())
}

/// A watcher that does not read while the live ring overflows loses nothing: it goes back
/// to the table. If that history is compacted meanwhile, its stream ends with Compacted.
#[tokio::test]
async fn embedded_slow_watcher_falls_back_to_the_table() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = EmbeddedConfig {
        watch_buffer: 2,
        catch_up_page: 16,
        ..EmbeddedConfig::default()
    };
    let store = EmbeddedStore::open_with_config(dir.path(), config).await?;
    let first = store.create("/w/first", b"x".to_vec()).await?;
    let mut slow = store.watch("/w/", 0).await?;
    let mut doomed = store.watch("/w/", 0).await?;
    for stream in [&mut slow, &mut doomed] {
        // Both are now live (the table was read to its end).
        let event = tokio::time::timeout(WAIT, stream.next())
            .await?
            .context("stream ended")??;
        assert_eq!(event.kv, first);
    }
    let mut written = Vec::new();
    for i in 0..100 {
        // One write at a time: each is its own batch, so the ring of 2 overflows.
        written.push(
            store
                .create(&format!("/w/{i:03}"), b"x".to_vec())
                .await?
                .mod_revision,
        );
    }
    let mut seen = Vec::new();
    for _ in 0..written.len() {
        let event = tokio::time::timeout(WAIT, slow.next())
            .await?
            .context("stream ended")??;
        seen.push(event.revision());
    }
    assert_eq!(
        seen, written,
        "the slow watcher saw every event once, in order"
    );

    let current = store.current_revision().await?;
    store.compact(current).await?;
    match tokio::time::timeout(WAIT, doomed.next()).await? {
        Some(Err(Error::Compacted {
            requested,
            compacted,
        })) => {
            assert_eq!(requested, first.mod_revision);
            assert_eq!(compacted, current);
        }
        other => bail!("expected Compacted, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(WAIT, doomed.next()).await?.is_none(),
        "ended after Compacted"
    );
    // The live one goes on.
    let last = store.create("/w/last", b"x".to_vec()).await?;
    let event = tokio::time::timeout(WAIT, slow.next())
        .await?
        .context("stream ended")??;
    assert_eq!(event.kv, last);
    store.close().await;
    assert!(
        tokio::time::timeout(WAIT, slow.next()).await?.is_none(),
        "close ends watches"
    );
    Ok(())
}

/// A rough measurement of group commit, printed (run with `--nocapture`); not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_write_throughput() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(EmbeddedStore::open(dir.path()).await?);
    for (writers, per_writer) in [(1usize, 300usize), (16, 200)] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                for i in 0..per_writer {
                    store
                        .create(&format!("/bench/{writers}/{w}/{i}"), vec![b'x'; 1024])
                        .await?;
                }
                Ok::<_, Error>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let total = writers * per_writer;
        #[allow(clippy::cast_precision_loss, reason = "a printed estimate")]
        let rate = total as f64 / started.elapsed().as_secs_f64();
        println!(
            "embedded store: {writers:2} concurrent writers: {total} writes of 1 KiB at {rate:.0} writes/s"
        );
    }
    store.close().await;
    Ok(())
}

/// A free port on 127.0.0.1 (free when asked; etcd binds it soon after).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The etcd binary: `$FERROLET_ETCD`, else `etcd` on `PATH`, else `/usr/bin/etcd`.
fn etcd_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("FERROLET_ETCD") {
        return Ok(path.into());
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("etcd"))
        .chain([PathBuf::from("/usr/bin/etcd")])
        .find(|path| path.is_file());
    on_path.context(
        "the etcd binary was not found (not $FERROLET_ETCD, not on PATH, not /usr/bin/etcd): \
         run hack/install-deps, which installs Debian's etcd-server",
    )
}

/// A real etcd on free loopback ports with a temporary data directory; killed and removed
/// on drop, also when the test fails.
struct EtcdServer {
    child: Child,
    client_url: String,
    dir: tempfile::TempDir,
}

impl EtcdServer {
    fn start() -> anyhow::Result<Self> {
        let binary = etcd_binary()?;
        let dir = tempfile::tempdir()?;
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let name = format!("store-test-{}-{client_port}", std::process::id());
        let log = std::fs::File::create(dir.path().join("etcd.log"))?;
        let child = Command::new(&binary)
            .arg("--name")
            .arg(&name)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("{name}={peer_url}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            child,
            client_url,
            dir,
        })
    }

    fn log(&self) -> String {
        let mut log = String::new();
        let _ = std::fs::File::open(self.dir.path().join("etcd.log"))
            .and_then(|mut f| f.read_to_string(&mut log));
        let tail: Vec<_> = log.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Connects once etcd answers (bounded: about 30 s).
    async fn connect(&mut self) -> anyhow::Result<EtcdStore> {
        let mut config = EtcdConfig::new([self.client_url.clone()]);
        config.connect_timeout = Duration::from_millis(500);
        config.request_timeout = Duration::from_secs(1);
        let mut last_error = None;
        for _ in 0..60 {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "etcd exited with {status} before answering:\n{}",
                    self.log()
                );
            }
            match EtcdStore::connect(config.clone()).await {
                Ok(store) => return Ok(store),
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!(
            "etcd did not answer at {}: {last_error:?}\n{}",
            self.client_url,
            self.log()
        )
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

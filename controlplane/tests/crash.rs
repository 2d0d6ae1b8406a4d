//! kill -9 of the control plane during a burst of writes: every acknowledged write is there
//! after the restart, and a watcher resumes from its last resourceVersion without a gap or a
//! duplicate.
//!
//! A custom harness: the binary is both the test and, when `FERROLET_CRASH_CHILD` is set,
//! the control plane the test kills (the same code `ferrolet control-plane` runs).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use tokio_util::sync::CancellationToken;

const CHILD_ENV: &str = "FERROLET_CRASH_CHILD";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        runtime.block_on(child(&spec));
        return;
    }
    runtime.block_on(kill_during_write_burst());
    println!("test kill_during_write_burst ... ok");
}

/// The control plane under test: runs until killed.
async fn child(spec: &str) {
    let (dir, port) = spec.split_once(':').unwrap();
    let mut config = ferrolet_controlplane::run::ControlPlaneConfig::new(PathBuf::from(dir));
    config.secure_port = port.parse().unwrap();
    let _cp = ferrolet_controlplane::run::ControlPlane::start(config, CancellationToken::new())
        .await
        .unwrap();
    println!("READY");
    std::future::pending::<()>().await;
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(dir: &Path, port: u16) -> ChildGuard {
    let child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, format!("{}:{port}", dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ChildGuard(child)
}

async fn connect(kubeconfig: &Path) -> kube::Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if kubeconfig.exists()
            && let Ok(config) = kube::config::Kubeconfig::read_from(kubeconfig)
            && let Ok(config) = kube::Config::from_custom_kubeconfig(
                config,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
        {
            let client = kube::Client::try_from(config).unwrap();
            if client.apiserver_version().await.is_ok() {
                return client;
            }
        }
        assert!(Instant::now() < deadline, "control plane did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rv(cm: &ConfigMap) -> i64 {
    cm.metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// (event type, name, resourceVersion) in arrival order.
type Seen = Arc<Mutex<Vec<(String, String, i64)>>>;

fn record(seen: &Seen, event: WatchEvent<ConfigMap>) -> Option<i64> {
    let (kind, cm) = match event {
        WatchEvent::Added(cm) => ("ADDED", cm),
        WatchEvent::Modified(cm) => ("MODIFIED", cm),
        WatchEvent::Deleted(cm) => ("DELETED", cm),
        WatchEvent::Bookmark(_) | WatchEvent::Error(_) => return None,
    };
    let revision = rv(&cm);
    seen.lock().unwrap().push((
        kind.to_owned(),
        cm.metadata.name.clone().unwrap_or_default(),
        revision,
    ));
    Some(revision)
}

// One scenario, top to bottom: start, burst, kill, restart, check.
#[allow(clippy::too_many_lines)]
async fn kill_during_write_burst() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut child = spawn(&data, port);
    let kubeconfig = data.join("admin.kubeconfig");
    let client = connect(&kubeconfig).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // A watcher from "now", recording everything it sees.
    let start = configmaps
        .list(&kube::api::ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let seen: Seen = Arc::default();
    let last_seen = Arc::new(Mutex::new(start.parse::<i64>().unwrap()));
    let watcher = {
        let (configmaps, seen, last_seen) = (configmaps.clone(), seen.clone(), last_seen.clone());
        tokio::spawn(async move {
            let stream = configmaps
                .watch(&WatchParams::default(), &start)
                .await
                .unwrap();
            futures::pin_mut!(stream);
            while let Ok(Some(event)) = stream.try_next().await {
                if let Some(revision) = record(&seen, event) {
                    *last_seen.lock().unwrap() = revision;
                }
            }
        })
    };

    // Eight writers create ConfigMaps as fast as they are acknowledged.
    let acked: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8 {
        let (configmaps, acked) = (configmaps.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let name = format!("burst-{w}-{i}");
                let cm: ConfigMap = serde_json::from_value(
                    serde_json::json!({"metadata": {"name": name}, "data": {"i": i.to_string()}}),
                )
                .unwrap();
                match configmaps.create(&PostParams::default(), &cm).await {
                    Ok(created) => {
                        acked.lock().unwrap().insert(name, rv(&created));
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_mins(1);
    // The watcher goes away mid-burst (a client that lost its connection): what it misses
    // before and after the crash must come when it resumes.
    while acked.lock().unwrap().len() < 150 {
        assert!(Instant::now() < deadline, "writes too slow");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    watcher.abort();
    while acked.lock().unwrap().len() < 400 {
        assert!(Instant::now() < deadline, "writes too slow");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SIGKILL in the middle of the burst.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let before_crash: Vec<(String, String, i64)> = seen.lock().unwrap().clone();
    let resume_from = *last_seen.lock().unwrap();
    drop(child);

    // Restart on the same data directory.
    let _child = spawn(&data, port);
    let client = connect(&kubeconfig).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client, "default");
    let stored: BTreeMap<String, i64> = configmaps
        .list(&kube::api::ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|cm| (cm.metadata.name.clone().unwrap(), rv(cm)))
        .collect();
    for (name, revision) in &acked {
        assert_eq!(
            stored.get(name),
            Some(revision),
            "acknowledged write {name}@{revision} lost"
        );
    }

    // Resume the watch from the last revision seen before the crash.
    let stream = configmaps
        .watch(&WatchParams::default(), &resume_from.to_string())
        .await
        .unwrap();
    futures::pin_mut!(stream);
    let resumed: Seen = Arc::default();
    let seen_names: BTreeSet<String> = before_crash.iter().map(|(_, n, _)| n.clone()).collect();
    let missing: BTreeSet<String> = acked
        .keys()
        .filter(|n| !seen_names.contains(*n))
        .cloned()
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = BTreeSet::new();
    // Writes committed but not acknowledged before the kill come too: wait for every
    // acknowledged one, not for a count.
    while !missing.is_subset(&found) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(remaining, stream.next())
            .await
            .expect("resumed watch stalled");
        let event = event
            .expect("resumed watch ended")
            .expect("resumed watch failed");
        if let WatchEvent::Added(cm) = &event {
            found.insert(cm.metadata.name.clone().unwrap());
        }
        record(&resumed, event);
    }
    let all: Vec<(String, String, i64)> = before_crash
        .iter()
        .chain(resumed.lock().unwrap().iter())
        .cloned()
        .collect();
    let revisions: Vec<i64> = all.iter().map(|(_, _, r)| *r).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "revisions not strictly increasing across the restart"
    );
    let mut added = BTreeSet::new();
    for (kind, name, _) in &all {
        if kind == "ADDED" {
            assert!(added.insert(name.clone()), "{name} delivered twice");
        }
    }
    for name in acked.keys() {
        assert!(added.contains(name), "{name} never delivered");
    }
    assert!(
        !resumed.lock().unwrap().is_empty(),
        "the resumed watch had nothing to deliver: the test proves nothing"
    );
    println!(
        "{} writes acknowledged before SIGKILL, {} seen before, {} after resume",
        acked.len(),
        before_crash.len(),
        resumed.lock().unwrap().len()
    );
}

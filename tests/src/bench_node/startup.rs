//! Pod startup through the node agent: N busybox `sleep` pods created at once through the
//! API, each timed from just before its create request to the moment a watch shows it
//! Running with every container ready. The watch is timed on this side: the Ready
//! condition's `lastTransitionTime` has whole seconds only.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::future::join_all;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, WatchEvent, WatchParams};
use tokio::sync::mpsc;

use ferrolet_tests::pods::{self, BUSYBOX};

/// A busybox pod that sleeps; it ignores SIGTERM (PID 1), so it is killed after its grace.
/// It is bound to `node` from the start, as node e2e tests make their pods: what is measured
/// is the node agent, not the scheduler.
pub fn sleep_pod(name: &str, node: &str) -> Result<Pod> {
    pods::pod(serde_json::json!({
        "metadata": { "name": name, "labels": { "app": "bench" } },
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{ "name": "sleep", "image": BUSYBOX, "command": ["sleep", "3600"] }]
        }
    }))
}

/// A test-server pod with the probes of a typical service: an exec liveness probe and an
/// httpGet readiness probe, each every 10 s (for the probe overhead).
pub fn probed_pod(name: &str, node: &str) -> Result<Pod> {
    pods::pod(serde_json::json!({
        "metadata": { "name": name, "labels": { "app": "bench" } },
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "server",
                "image": ferrolet_images::catalog::TEST_SERVER,
                "livenessProbe": { "exec": { "command": ["true"] }, "periodSeconds": 10 },
                "readinessProbe": {
                    "httpGet": { "path": "/healthz", "port": 8080 },
                    "periodSeconds": 10
                }
            }]
        }
    }))
}

/// Whether the pod is Running with every container ready.
pub fn running_and_ready(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let wanted = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let ready = status
        .container_statuses
        .iter()
        .flatten()
        .filter(|c| c.ready)
        .count();
    pods::phase(pod) == "Running"
        && ready == wanted
        && pods::condition(pod, "Ready") == Some("True")
}

/// Creates `n` pods on `node` at once in `namespace` and returns each one's startup
/// latency, failing if any is not Running and ready within `limit`.
pub async fn round(
    client: &kube::Client,
    namespace: &str,
    node: &str,
    n: usize,
    limit: Duration,
    make: fn(&str, &str) -> Result<Pod>,
) -> Result<Vec<Duration>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let version = api
        .list_metadata(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = tokio::spawn(watch_ready(api.clone(), version, tx));
    let names: Vec<String> = (0..n).map(|i| format!("pod-{n}-{i}")).collect();
    let created = join_all(names.iter().map(|name| async {
        let pod = make(name, node)?;
        let began = Instant::now();
        pods::create(client, namespace, &pod).await?;
        Ok::<_, anyhow::Error>((name.clone(), began))
    }))
    .await;
    let mut began = HashMap::new();
    for result in created {
        let (name, at) = result?;
        began.insert(name, at);
    }
    let deadline = tokio::time::Instant::now() + limit;
    let mut ready: HashMap<String, Instant> = HashMap::new();
    while ready.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Ok((name, at)))) => {
                if began.contains_key(&name) {
                    ready.entry(name).or_insert(at);
                }
            }
            Ok(Some(Err(err))) => {
                watcher.abort();
                return Err(err.context("watching the pods"));
            }
            Ok(None) => bail!("the pod watch ended"),
            Err(_) => {
                watcher.abort();
                let mut missing: Vec<&String> =
                    began.keys().filter(|k| !ready.contains_key(*k)).collect();
                missing.sort();
                bail!(
                    "{} of {n} pods not Running and ready within {limit:?}: {:?}",
                    missing.len(),
                    &missing[..missing.len().min(5)]
                );
            }
        }
    }
    watcher.abort();
    Ok(began
        .iter()
        .map(|(name, at)| ready[name].duration_since(*at))
        .collect())
}

type Seen = Result<(String, Instant)>;

/// Watches the namespace's pods from `version` and sends each pod's name the first time it is
/// seen Running and ready, with when the event arrived. Re-watches when the server ends the
/// watch; the caller aborts it.
async fn watch_ready(api: Api<Pod>, mut version: String, tx: mpsc::UnboundedSender<Seen>) {
    let mut sent = HashSet::new();
    loop {
        let stream = match api
            .watch(&WatchParams::default().timeout(290), &version)
            .await
        {
            Ok(stream) => stream,
            Err(err) => {
                let _ = tx.send(Err(err.into()));
                return;
            }
        };
        let mut stream = stream.boxed();
        loop {
            let event = match stream.try_next().await {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(err) => {
                    let _ = tx.send(Err(err.into()));
                    return;
                }
            };
            let at = Instant::now();
            match event {
                WatchEvent::Added(pod) | WatchEvent::Modified(pod) => {
                    if let Some(v) = pod.metadata.resource_version.clone() {
                        version = v;
                    }
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    if running_and_ready(&pod) && sent.insert(name.clone()) {
                        let _ = tx.send(Ok((name, at)));
                    }
                }
                WatchEvent::Bookmark(bookmark) => version = bookmark.metadata.resource_version,
                WatchEvent::Deleted(_) => {}
                WatchEvent::Error(err) => {
                    let _ = tx.send(Err(anyhow::anyhow!("{err}")).context("the pod watch"));
                    return;
                }
            }
        }
    }
}

/// The pod `name` once it is Running and ready.
pub async fn wait_ready(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    limit: Duration,
) -> Result<Pod> {
    pods::wait_for(
        client,
        namespace,
        name,
        limit,
        "Running and ready",
        running_and_ready,
    )
    .await
    .with_context(|| format!("waiting for {namespace}/{name}"))
}

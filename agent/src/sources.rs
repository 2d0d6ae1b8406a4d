//! Where the pods of this node come from: the API server (pods whose `spec.nodeName` is this
//! node) and static pod manifests in `staticPodPath`, as the kubelet's config sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Annotations of static pods and their mirror pods, as the kubelet sets them.
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
pub const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
pub const CONFIG_SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";

/// A change to the set of pods this node should run.
#[derive(Debug, Clone)]
pub enum PodUpdate {
    /// A pod was added or changed (the whole desired state).
    Set(Arc<Pod>),
    /// A pod is gone from its source.
    Removed { uid: String },
    /// A mirror pod (the API's view of a static pod) was seen or changed.
    Mirror(Arc<Pod>),
    /// The source has sent its complete set once: anything else in the runtime is an orphan.
    Synced,
}

/// Whether a pod is the mirror of a static pod.
#[must_use]
pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CONFIG_MIRROR_ANNOTATION))
}

/// Whether a pod comes from a static manifest.
#[must_use]
pub fn is_static(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_SOURCE_ANNOTATION))
        .is_some_and(|s| s == "file")
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// Watches the pods bound to `node` and sends every change until `cancel`.
pub async fn watch_api(
    client: kube::Client,
    node: String,
    updates: mpsc::Sender<PodUpdate>,
    cancel: CancellationToken,
) {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = watcher(api, config).default_backoff().boxed();
    // During a relist (after a watch broke), pods not seen again are gone.
    let mut known: BTreeSet<String> = BTreeSet::new();
    let mut relisted: BTreeSet<String> = BTreeSet::new();
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return,
            event = stream.next() => event,
        };
        let sends: Vec<PodUpdate> = match event {
            None => return,
            Some(Err(err)) => {
                tracing::warn!(%err, node, "pod watch failed; retrying");
                continue;
            }
            Some(Ok(watcher::Event::Init)) => {
                relisted.clear();
                continue;
            }
            Some(Ok(watcher::Event::InitApply(pod) | watcher::Event::Apply(pod))) => {
                let id = uid(&pod);
                relisted.insert(id.clone());
                known.insert(id);
                if is_mirror(&pod) {
                    vec![PodUpdate::Mirror(Arc::new(pod))]
                } else {
                    vec![PodUpdate::Set(Arc::new(pod))]
                }
            }
            Some(Ok(watcher::Event::InitDone)) => {
                let gone: Vec<String> = known.difference(&relisted).cloned().collect();
                known.clone_from(&relisted);
                gone.into_iter()
                    .map(|uid| PodUpdate::Removed { uid })
                    .collect()
            }
            Some(Ok(watcher::Event::Delete(pod))) => {
                let id = uid(&pod);
                known.remove(&id);
                vec![PodUpdate::Removed { uid: id }]
            }
        };
        for update in sends {
            if updates.send(update).await.is_err() {
                return;
            }
        }
    }
}

/// Errors reading a static pod manifest.
#[derive(Debug, thiserror::Error)]
pub enum StaticPodError {
    #[error("read static pod manifest {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("static pod manifest {path} is not a valid Pod: {reason}")]
    Parse { path: PathBuf, reason: String },
}

/// A stable UID for a static pod: a hash of its manifest and the node, so it survives agent
/// restarts and changes when the manifest does (the kubelet hashes the same inputs).
fn static_uid(content: &[u8], node: &str) -> String {
    // FNV-1a, 128 bits folded into two 64-bit halves: stable across builds and platforms.
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x8422_2325_cbf2_9ce4;
    for byte in content.iter().chain(b"\0").chain(node.as_bytes()) {
        a = (a ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        b = (b ^ u64::from(byte.rotate_left(3))).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{a:016x}{b:016x}")
}

/// Reads one manifest as the kubelet's file source does: the pod gets the node's name
/// appended, the node, a namespace (`default` when none), and its source annotations.
pub fn read_static_pod(path: &Path, node: &str) -> Result<Pod, StaticPodError> {
    let content = std::fs::read(path).map_err(|source| StaticPodError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&content);
    let parse = |reason: String| StaticPodError::Parse {
        path: path.to_owned(),
        reason,
    };
    let value: serde_json::Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text).map_err(|e| parse(e.to_string()))?
    } else {
        serde_saphyr::from_str(&text).map_err(|e| parse(e.to_string()))?
    };
    if value["kind"] != "Pod" {
        return Err(parse(format!("kind is {}, not Pod", value["kind"])));
    }
    let mut pod: Pod = serde_json::from_value(value).map_err(|e| parse(e.to_string()))?;
    let uid = static_uid(&content, node);
    let name = pod
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| parse("metadata.name is missing".into()))?;
    pod.metadata.name = Some(format!("{name}-{node}"));
    pod.metadata
        .namespace
        .get_or_insert_with(|| "default".into());
    pod.metadata.uid = Some(uid.clone());
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_SOURCE_ANNOTATION.into(), "file".into());
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), uid);
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node.to_owned());
    }
    Ok(pod)
}

/// Watches `dir` for static pod manifests, every `period`, until `cancel`.
pub async fn watch_files(
    dir: PathBuf,
    node: String,
    period: Duration,
    updates: mpsc::Sender<PodUpdate>,
    cancel: CancellationToken,
) {
    let mut current: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut ticker = tokio::time::interval(period);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let mut seen = BTreeMap::new();
        // A directory that is gone holds no pods (theirs are removed below).
        let entries: Vec<std::fs::DirEntry> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.flatten().collect(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => {
                tracing::warn!(dir = %dir.display(), %err, "read static pod directory");
                continue;
            }
        };
        for entry in entries {
            let path = entry.path();
            let manifest = path
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
            if !manifest
                || path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            match read_static_pod(&path, &node) {
                Ok(pod) => {
                    let id = uid(&pod);
                    if current.get(&path) != Some(&id)
                        && updates.send(PodUpdate::Set(Arc::new(pod))).await.is_err()
                    {
                        return;
                    }
                    seen.insert(path, id);
                }
                Err(err) => tracing::warn!(%err, "skipping static pod manifest"),
            }
        }
        for (path, id) in &current {
            if seen.get(path) != Some(id)
                && !seen.values().any(|v| v == id)
                && updates
                    .send(PodUpdate::Removed { uid: id.clone() })
                    .await
                    .is_err()
            {
                return;
            }
        }
        current = seen;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_pods_get_node_name_namespace_and_stable_uid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yaml");
        std::fs::write(&path, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: busybox:1.35\n").unwrap();
        let pod = read_static_pod(&path, "n1").unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        assert!(is_static(&pod));
        let again = read_static_pod(&path, "n1").unwrap();
        assert_eq!(pod.metadata.uid, again.metadata.uid);
        assert_ne!(
            pod.metadata.uid,
            read_static_pod(&path, "n2").unwrap().metadata.uid
        );
        std::fs::write(&path, "kind: Service\n").unwrap();
        let err = read_static_pod(&path, "n1").unwrap_err();
        assert!(err.to_string().contains("web.yaml"), "{err}");
    }

    #[tokio::test]
    async fn file_source_reports_added_and_removed_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        tokio::spawn(watch_files(
            dir.path().to_owned(),
            "n1".into(),
            Duration::from_millis(20),
            tx,
            cancel.clone(),
        ));
        let path = dir.path().join("p.json");
        std::fs::write(&path, r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"x"}]}}"#).unwrap();
        let added = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let PodUpdate::Set(pod) = added else {
            panic!("want Set")
        };
        std::fs::remove_file(&path).unwrap();
        let removed = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let PodUpdate::Removed { uid } = removed else {
            panic!("want Removed")
        };
        assert_eq!(Some(uid), pod.metadata.uid.clone());
        cancel.cancel();
    }
}

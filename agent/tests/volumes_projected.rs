//! Projected volumes: sources merged, service account tokens from `TokenRequest`, refreshed
//! after 80% of their lifetime; atomic updates of configMap contents.

mod volumes_support;

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use ferrolet_agent::volumes::{InMemoryVolumeSources, ServiceAccountTokenRequest};
use serde_json::json;
use volumes_support::{TestRoot, data_target, manager, mode, mount_at, pod, read, volume};

fn kube_api_access() -> k8s_openapi::api::core::v1::Volume {
    volume(
        "kube-api-access-x",
        json!({"projected": {"defaultMode": 0o644, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "vault/token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"secret": {"name": "extra", "optional": true}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ]}}),
    )
}

#[tokio::test]
async fn projected_volume_merges_sources_and_requests_bound_tokens() {
    let root = TestRoot::new();
    let sources = Arc::new(InMemoryVolumeSources::new());
    sources.set_config_map("ns", "kube-root-ca.crt", &[("ca.crt", "CERT")]);
    let vm = manager(&root, sources.clone());
    let mut pod = pod("uid-proj", vec![kube_api_access()]);
    pod.spec.as_mut().unwrap().service_account_name = Some("builder".into());
    let volumes = vm.mount_pod(&pod).await.unwrap();

    let dir = root
        .agent_root()
        .join("pods/uid-proj/volumes/kubernetes.io~projected/kube-api-access-x");
    assert_eq!(volumes.get("kube-api-access-x").unwrap().path, dir);
    assert!(volumes.get("kube-api-access-x").unwrap().read_only);
    assert_eq!(mount_at(&dir).expect("projected tmpfs").fs_type, "tmpfs");
    assert_eq!(read(&dir.join("token")), "token-1");
    assert_eq!(read(&dir.join("vault/token")), "token-2");
    assert_eq!(read(&dir.join("ca.crt")), "CERT");
    assert_eq!(read(&dir.join("namespace")), "ns");
    assert_eq!(mode(&dir.join("token")), 0o644);

    let requests = sources.token_requests();
    assert_eq!(
        requests[0],
        ServiceAccountTokenRequest {
            namespace: "ns".into(),
            service_account: "builder".into(),
            audiences: vec![],
            expiration_seconds: 3607,
            pod_name: "web".into(),
            pod_uid: "uid-proj".into(),
        }
    );
    assert_eq!(requests[1].audiences, vec!["vault".to_owned()]);
    vm.unmount_pod("uid-proj").await.unwrap();
    assert!(root.mounts().is_empty());
}

#[tokio::test]
async fn tokens_are_refreshed_after_eighty_percent_of_their_lifetime() {
    let root = TestRoot::new();
    let sources = Arc::new(InMemoryVolumeSources::new());
    let start = jiff::Timestamp::from_second(1_700_000_000).unwrap();
    sources.set_issued_at(start);
    let offset = Arc::new(AtomicI64::new(0));
    let clock_offset = offset.clone();
    // Moves the manager's clock and the API server's (which issues tokens) together.
    let advance = |seconds: i64| {
        offset.store(seconds, Ordering::SeqCst);
        sources.set_issued_at(
            start
                .checked_add(jiff::SignedDuration::from_secs(seconds))
                .unwrap(),
        );
    };
    let vm = manager(&root, sources.clone()).with_clock(Arc::new(move || {
        start
            .checked_add(jiff::SignedDuration::from_secs(
                clock_offset.load(Ordering::SeqCst),
            ))
            .unwrap()
    }));
    let pod = pod(
        "uid-tok",
        vec![volume(
            "t",
            json!({"projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 1000, "path": "token"}}
            ]}}),
        )],
    );
    vm.mount_pod(&pod).await.unwrap();
    let dir = root
        .agent_root()
        .join("pods/uid-tok/volumes/kubernetes.io~projected/t");
    assert_eq!(read(&dir.join("token")), "token-1");
    let first = data_target(&dir);

    advance(799);
    assert!(vm.refresh(&pod).await.unwrap().is_empty());
    assert_eq!(
        sources.token_requests().len(),
        1,
        "not refreshed before 80%"
    );
    assert_eq!(data_target(&dir), first, "no swap when unchanged");

    advance(800);
    assert_eq!(vm.refresh(&pod).await.unwrap(), vec!["t".to_owned()]);
    assert_eq!(sources.token_requests().len(), 2);
    assert_eq!(read(&dir.join("token")), "token-2");

    // The API is down at the next refresh: the cached token is kept while it is valid.
    sources.set_failure(Some("connection refused"));
    advance(1700);
    assert!(vm.refresh(&pod).await.unwrap().is_empty());
    assert_eq!(read(&dir.join("token")), "token-2");
    advance(1900);
    let err = vm.refresh(&pod).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "MountVolume.SetUp failed for volume \"t\" : connection refused"
    );
    assert_eq!(
        read(&dir.join("token")),
        "token-2",
        "failed refresh keeps the old contents"
    );
    vm.unmount_pod("uid-tok").await.unwrap();
}

#[tokio::test]
async fn token_is_0640_and_group_owned_with_fs_group() {
    let root = TestRoot::new();
    let sources = Arc::new(InMemoryVolumeSources::new());
    let vm = manager(&root, sources);
    let mut pod = pod(
        "uid-tokfsg",
        vec![volume(
            "t",
            json!({"projected": {"sources": [
                {"serviceAccountToken": {"path": "token"}}
            ]}}),
        )],
    );
    pod.spec.as_mut().unwrap().security_context =
        Some(serde_json::from_value(json!({"fsGroup": 2000})).unwrap());
    vm.mount_pod(&pod).await.unwrap();
    let token = root
        .agent_root()
        .join("pods/uid-tokfsg/volumes/kubernetes.io~projected/t/token");
    let meta = std::fs::metadata(&token).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!(meta.gid(), 2000);
    vm.unmount_pod("uid-tokfsg").await.unwrap();
}

#[tokio::test]
async fn config_map_updates_swap_data_and_prune_removed_keys() {
    let root = TestRoot::new();
    let sources = Arc::new(InMemoryVolumeSources::new());
    sources.set_config_map("ns", "cfg", &[("a", "1"), ("b", "2")]);
    let vm = manager(&root, sources.clone());
    let pod = pod(
        "uid-upd",
        vec![volume("cfg", json!({"configMap": {"name": "cfg"}}))],
    );
    vm.mount_pod(&pod).await.unwrap();
    let dir = root
        .agent_root()
        .join("pods/uid-upd/volumes/kubernetes.io~configmap/cfg");
    let first = data_target(&dir);

    assert!(vm.refresh(&pod).await.unwrap().is_empty());
    assert_eq!(data_target(&dir), first);

    sources.set_config_map("ns", "cfg", &[("a", "10"), ("c", "3")]);
    assert_eq!(vm.refresh(&pod).await.unwrap(), vec!["cfg".to_owned()]);
    let second = data_target(&dir);
    assert_ne!(second, first);
    assert!(
        !dir.join(&first).exists(),
        "old timestamped directory removed"
    );
    assert_eq!(read(&dir.join("a")), "10");
    assert_eq!(read(&dir.join("c")), "3");
    assert!(
        std::fs::symlink_metadata(dir.join("b")).is_err(),
        "removed key's link is gone"
    );
    let mut entries: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    let mut expected = vec![
        "..data".to_owned(),
        second.to_string_lossy().into_owned(),
        "a".into(),
        "c".into(),
    ];
    expected.sort();
    assert_eq!(entries, expected);

    // Deleted from the API: the refresh fails and the pod keeps the last contents.
    sources.delete_config_map("ns", "cfg");
    assert!(vm.refresh(&pod).await.is_err());
    assert_eq!(read(&dir.join("a")), "10");
    vm.unmount_pod("uid-upd").await.unwrap();
    // After teardown a refresh does not bring the volume back.
    sources.set_config_map("ns", "cfg", &[("a", "1")]);
    assert!(vm.refresh(&pod).await.unwrap().is_empty());
    assert!(!dir.exists());
}

//! Teardown and recovery: idempotent unmounts, reconstruction after an agent restart,
//! orphaned pod directories cleaned (mounts included), removal never crossing filesystems.

mod volumes_support;

use std::collections::HashSet;
use std::sync::Arc;

use ferrolet_agent::volumes::mounter::{MountCall, RecordingMounter};
use ferrolet_agent::volumes::teardown::remove_all_one_filesystem;
use ferrolet_agent::volumes::{
    InMemoryVolumeSources, ReconstructedVolume, TearDownError, VolumeManager, VolumePlugin,
};
use k8s_openapi::api::core::v1::Container;
use serde_json::json;
use volumes_support::{TestRoot, manager, mount_at, pod, read, volume};

fn pod_with_volumes(uid: &str) -> k8s_openapi::api::core::v1::Pod {
    let mut pod = pod(
        uid,
        vec![
            volume("disk", json!({"emptyDir": {}})),
            volume("mem", json!({"emptyDir": {"medium": "Memory"}})),
            volume("cfg", json!({"configMap": {"name": "cfg"}})),
            volume("sec", json!({"secret": {"secretName": "sec"}})),
        ],
    );
    pod.spec.as_mut().unwrap().containers[0].volume_mounts = Some(
        serde_json::from_value(json!([{"name": "disk", "mountPath": "/d", "subPath": "sub"}]))
            .unwrap(),
    );
    pod
}

fn sources() -> Arc<InMemoryVolumeSources> {
    let sources = Arc::new(InMemoryVolumeSources::new());
    sources.set_config_map("ns", "cfg", &[("k", "v")]);
    sources.set_secret("ns", "sec", &[("k", b"v")]);
    sources
}

async fn start(vm: &VolumeManager, uid: &str) {
    let pod = pod_with_volumes(uid);
    let volumes = vm.mount_pod(&pod).await.unwrap();
    let container: &Container = &pod.spec.as_ref().unwrap().containers[0];
    volumes.mounts_for(container, &|_| None).unwrap();
}

#[tokio::test]
async fn reconstruct_after_restart_and_clean_orphans() {
    let root = TestRoot::new();
    let sources = sources();
    {
        let vm = manager(&root, sources.clone());
        start(&vm, "live").await;
        start(&vm, "dead").await;
    }
    // Per pod: the memory emptyDir and secret tmpfs plus one subPath bind mount.
    assert_eq!(root.mounts().len(), 6);

    // The agent restarts: a new manager finds the volumes on disk.
    let vm = manager(&root, sources.clone());
    let found = vm.reconstruct().unwrap();
    let live: Vec<&ReconstructedVolume> = found.iter().filter(|v| v.pod_uid == "live").collect();
    let summary: Vec<(VolumePlugin, &str, bool)> = live
        .iter()
        .map(|v| (v.plugin, v.name.as_str(), v.mounted))
        .collect();
    assert_eq!(
        summary,
        vec![
            (VolumePlugin::EmptyDir, "disk", false),
            (VolumePlugin::EmptyDir, "mem", true),
            (VolumePlugin::ConfigMap, "cfg", false),
            (VolumePlugin::Secret, "sec", true),
        ]
    );
    assert_eq!(found.len(), 8);

    // The live pod is set up again without losing data or stacking mounts.
    let disk = root
        .agent_root()
        .join("pods/live/volumes/kubernetes.io~empty-dir/disk");
    let mem = root
        .agent_root()
        .join("pods/live/volumes/kubernetes.io~empty-dir/mem");
    std::fs::write(disk.join("f"), "disk").unwrap();
    std::fs::write(mem.join("f"), "mem").unwrap();
    start(&vm, "live").await;
    assert_eq!(read(&disk.join("f")), "disk");
    assert_eq!(read(&mem.join("f")), "mem");
    assert_eq!(root.mounts().len(), 6);

    // Something else left in the dead pod's directory goes too.
    std::fs::write(root.agent_root().join("pods/dead/etc-hosts"), "x").unwrap();
    let live_uids: HashSet<String> = ["live".to_owned()].into();
    let report = vm.cleanup_orphans(&live_uids).await.unwrap();
    assert_eq!(report.removed, vec!["dead".to_owned()]);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(!root.agent_root().join("pods/dead").exists());
    assert_eq!(root.mounts().len(), 3, "the live pod's mounts stay");
    assert_eq!(read(&mem.join("f")), "mem");

    vm.unmount_pod("live").await.unwrap();
    assert!(root.mounts().is_empty());
    let report = vm.cleanup_orphans(&HashSet::new()).await.unwrap();
    assert_eq!(report.removed, vec!["live".to_owned()]);
    assert!(vm.reconstruct().unwrap().is_empty());
}

#[tokio::test]
async fn unmount_pod_is_idempotent_and_keeps_the_rest_of_the_pod_dir() {
    let root = TestRoot::new();
    let vm = manager(&root, sources());
    start(&vm, "p1").await;
    let pod_dir = root.agent_root().join("pods/p1");
    std::fs::write(pod_dir.join("etc-hosts"), "hosts").unwrap();
    vm.unmount_pod("p1").await.unwrap();
    vm.unmount_pod("p1").await.unwrap();
    vm.unmount_pod("never-existed").await.unwrap();
    assert!(root.mounts().is_empty());
    for gone in ["volumes", "volume-subpaths", "plugins"] {
        assert!(!pod_dir.join(gone).exists(), "{gone} left");
    }
    assert_eq!(read(&pod_dir.join("etc-hosts")), "hosts");
    assert!(vm.unmount_pod("../escape").await.is_err());
}

#[test]
fn removal_never_crosses_into_another_filesystem() {
    let root = TestRoot::new();
    let dir = root.path().join("pod");
    let mounted = dir.join("volumes/x");
    std::fs::create_dir_all(&mounted).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &mounted,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    std::fs::write(mounted.join("precious"), "data").unwrap();
    // A mounter whose table does not show the tmpfs: the device check still stops removal.
    let blind = RecordingMounter::new();
    let err = remove_all_one_filesystem(&blind, &dir).unwrap_err();
    assert!(
        matches!(err, TearDownError::CrossesFilesystem { .. }),
        "{err:?}"
    );
    assert_eq!(read(&mounted.join("precious")), "data");
    // With the real table, it refuses before touching anything.
    let err = remove_all_one_filesystem(&ferrolet_agent::volumes::HostMounter, &dir).unwrap_err();
    assert!(matches!(err, TearDownError::StillMounted { .. }), "{err:?}");
    assert!(mount_at(&mounted).is_some());
}

#[tokio::test]
async fn root_is_made_a_shared_mount() {
    let root = TestRoot::new();
    let vm = manager(&root, sources());
    vm.make_root_shared().unwrap();
    let mount = mount_at(&root.agent_root()).expect("root bind-mounted onto itself");
    assert!(
        mount.optional.iter().any(|o| o.starts_with("shared:")),
        "{:?}",
        mount.optional
    );
    vm.make_root_shared().unwrap();
    assert_eq!(root.mounts().len(), 1, "not mounted twice");
}

#[tokio::test]
async fn recording_mounter_sees_the_tmpfs_of_memory_volumes_without_privileges() {
    let dir = tempfile::tempdir().unwrap();
    let mounter = Arc::new(RecordingMounter::new());
    let vm = VolumeManager::new(dir.path(), Arc::new(InMemoryVolumeSources::new()))
        .with_mounter(mounter.clone())
        .with_node_allocatable(
            [(
                "memory".to_owned(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into()),
            )]
            .into(),
        );
    let pod = pod(
        "rec",
        vec![volume(
            "mem",
            json!({"emptyDir": {"medium": "Memory", "sizeLimit": "10Mi"}}),
        )],
    );
    vm.mount_pod(&pod).await.unwrap();
    vm.mount_pod(&pod).await.unwrap();
    let target = dir
        .path()
        .join("pods/rec/volumes/kubernetes.io~empty-dir/mem");
    assert_eq!(
        mounter.calls(),
        vec![MountCall::Tmpfs {
            target: target.clone(),
            size_bytes: Some(10 * 1024 * 1024)
        }]
    );
    vm.unmount_pod("rec").await.unwrap();
    assert_eq!(
        mounter.calls()[1],
        MountCall::Unmount {
            target: std::fs::canonicalize(dir.path())
                .unwrap()
                .join("pods/rec/volumes/kubernetes.io~empty-dir/mem")
        }
    );
    assert!(!target.exists());
}

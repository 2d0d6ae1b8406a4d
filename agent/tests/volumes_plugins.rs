//! Each volume plugin's layout, contents and modes, with in-memory API sources and real
//! mounts (root).

mod volumes_support;

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::sync::Arc;

use ferrolet_agent::volumes::{InMemoryVolumeSources, VolumePlugin};
use serde_json::json;
use volumes_support::{TestRoot, data_target, manager, mode, mount_at, pod, read, volume};

#[tokio::test]
async fn empty_dir_on_disk_keeps_data_until_teardown() {
    let root = TestRoot::new();
    let vm = manager(&root, Arc::new(InMemoryVolumeSources::new()));
    let pod = pod("uid-ed", vec![volume("scratch", json!({"emptyDir": {}}))]);

    let volumes = vm.mount_pod(&pod).await.unwrap();
    let dir = root
        .agent_root()
        .join("pods/uid-ed/volumes/kubernetes.io~empty-dir/scratch");
    let mounted = volumes.get("scratch").unwrap();
    assert_eq!(mounted.path, dir);
    assert_eq!(mounted.plugin, VolumePlugin::EmptyDir);
    assert!(!mounted.read_only);
    assert_eq!(mode(&dir), 0o777);
    assert!(
        mount_at(&dir).is_none(),
        "a disk emptyDir is a plain directory"
    );

    std::fs::write(dir.join("data"), "kept").unwrap();
    vm.mount_pod(&pod).await.unwrap();
    assert_eq!(read(&dir.join("data")), "kept", "set-up is idempotent");

    vm.unmount_pod("uid-ed").await.unwrap();
    assert!(!dir.exists());
    assert!(!root.agent_root().join("pods/uid-ed/volumes").exists());
    assert!(
        root.agent_root().join("pods/uid-ed").exists(),
        "the pod directory stays"
    );
    vm.unmount_pod("uid-ed").await.unwrap();
}

#[tokio::test]
async fn empty_dir_memory_is_a_sized_tmpfs_unmounted_on_teardown() {
    let root = TestRoot::new();
    let vm = manager(&root, Arc::new(InMemoryVolumeSources::new()));
    let pod = pod(
        "uid-mem",
        vec![
            volume(
                "mem",
                json!({"emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}),
            ),
            volume("unbounded", json!({"emptyDir": {"medium": "Memory"}})),
        ],
    );
    vm.mount_pod(&pod).await.unwrap();
    let dir = root
        .agent_root()
        .join("pods/uid-mem/volumes/kubernetes.io~empty-dir/mem");
    let mount = mount_at(&dir).expect("tmpfs mounted");
    assert_eq!(mount.fs_type, "tmpfs");
    assert!(
        mount.super_options.contains("size=65536k"),
        "{}",
        mount.super_options
    );
    // Without sizeLimit and pod limits, the node's allocatable memory (8Gi here).
    let unbounded = mount_at(
        &root
            .agent_root()
            .join("pods/uid-mem/volumes/kubernetes.io~empty-dir/unbounded"),
    )
    .unwrap();
    assert!(
        unbounded.super_options.contains("size=8388608k"),
        "{}",
        unbounded.super_options
    );

    std::fs::write(dir.join("f"), "x").unwrap();
    vm.mount_pod(&pod).await.unwrap();
    assert_eq!(read(&dir.join("f")), "x", "not mounted twice");
    assert_eq!(root.mounts().len(), 2);

    vm.unmount_pod("uid-mem").await.unwrap();
    assert!(
        root.mounts().is_empty(),
        "tmpfs unmounted: {:?}",
        root.mounts()
    );
    assert!(!dir.exists());
}

#[tokio::test]
async fn empty_dir_memory_is_bounded_by_the_pod_memory_limit() {
    let root = TestRoot::new();
    let vm = manager(&root, Arc::new(InMemoryVolumeSources::new()));
    let mut pod = pod(
        "uid-lim",
        vec![volume(
            "mem",
            json!({"emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}),
        )],
    );
    pod.spec.as_mut().unwrap().containers[0].resources =
        Some(serde_json::from_value(json!({"limits": {"memory": "32Mi"}})).unwrap());
    vm.mount_pod(&pod).await.unwrap();
    let mount = mount_at(
        &root
            .agent_root()
            .join("pods/uid-lim/volumes/kubernetes.io~empty-dir/mem"),
    )
    .unwrap();
    assert!(
        mount.super_options.contains("size=32768k"),
        "{}",
        mount.super_options
    );
    vm.unmount_pod("uid-lim").await.unwrap();
}

async fn host_path_error(root: &TestRoot, path: &std::path::Path, ty: &str) -> Option<String> {
    let vm = manager(root, Arc::new(InMemoryVolumeSources::new()));
    let pod = pod(
        "uid-hp",
        vec![volume("h", json!({"hostPath": {"path": path, "type": ty}}))],
    );
    match vm.mount_pod(&pod).await {
        Ok(volumes) => {
            assert_eq!(
                volumes.get("h").unwrap().path,
                path,
                "hostPath is used in place"
            );
            None
        }
        Err(err) => Some(err.to_string()),
    }
}

#[tokio::test]
async fn host_path_types_are_checked_with_the_kubelet_messages() {
    let root = TestRoot::new();
    let host = root.host_dir("hp");
    let dir = host.join("dir");
    std::fs::create_dir(&dir).unwrap();
    let file = host.join("file");
    std::fs::write(&file, "x").unwrap();
    let socket = host.join("sock");
    let _listener = UnixListener::bind(&socket).unwrap();
    let missing = host.join("missing");
    let fails = |path: &std::path::Path, what: &str| {
        format!(
            "MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: {} is not a {what}",
            path.display()
        )
    };

    assert_eq!(
        host_path_error(&root, &missing, "").await,
        None,
        "no type: no check"
    );
    assert_eq!(host_path_error(&root, &dir, "Directory").await, None);
    assert_eq!(
        host_path_error(&root, &file, "Directory").await,
        Some(fails(&file, "directory"))
    );
    assert_eq!(
        host_path_error(&root, &missing, "Directory").await,
        Some(fails(&missing, "directory"))
    );
    assert_eq!(host_path_error(&root, &file, "File").await, None);
    assert_eq!(
        host_path_error(&root, &dir, "File").await,
        Some(fails(&dir, "file"))
    );
    assert_eq!(host_path_error(&root, &socket, "Socket").await, None);
    assert_eq!(
        host_path_error(&root, &file, "Socket").await,
        Some(fails(&file, "socket file"))
    );
    let null = std::path::Path::new("/dev/null");
    assert_eq!(host_path_error(&root, null, "CharDevice").await, None);
    assert_eq!(
        host_path_error(&root, &file, "CharDevice").await,
        Some(fails(&file, "character device"))
    );
    assert_eq!(
        host_path_error(&root, null, "BlockDevice").await,
        Some(fails(null, "block device"))
    );
    let block = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            use std::os::unix::fs::FileTypeExt;
            std::fs::metadata(p).is_ok_and(|m| m.file_type().is_block_device())
        })
        .expect("this test needs a block device under /dev");
    assert_eq!(host_path_error(&root, &block, "BlockDevice").await, None);

    let created_dir = host.join("new/nested");
    assert_eq!(
        host_path_error(&root, &created_dir, "DirectoryOrCreate").await,
        None
    );
    assert!(created_dir.is_dir());
    assert_eq!(mode(&created_dir), 0o755);
    assert_eq!(
        host_path_error(&root, &file, "DirectoryOrCreate").await,
        Some(fails(&file, "directory"))
    );
    let created_file = host.join("new-file");
    assert_eq!(
        host_path_error(&root, &created_file, "FileOrCreate").await,
        None
    );
    assert!(created_file.is_file());
    assert_eq!(mode(&created_file), 0o644);
    assert_eq!(
        host_path_error(&root, &dir, "FileOrCreate").await,
        Some(fails(&dir, "file"))
    );
    assert_eq!(
        host_path_error(&root, &file, "Bogus").await.unwrap(),
        "MountVolume.SetUp failed for volume \"h\" : Bogus is an invalid volume type"
    );
}

#[tokio::test]
async fn config_map_layout_contents_and_modes() {
    let root = TestRoot::new();
    let sources = Arc::new(InMemoryVolumeSources::new());
    sources.put_config_map(
        serde_json::from_value(json!({
            "metadata": {"name": "cfg", "namespace": "ns"},
            "data": {"a.conf": "alpha", "b.conf": "beta"},
            "binaryData": {"bin": "AAEC"}
        }))
        .unwrap(),
    );
    let vm = manager(&root, sources);
    let pod = pod(
        "uid-cm",
        vec![
            volume(
                "all",
                json!({"configMap": {"name": "cfg", "defaultMode": 0o440}}),
            ),
            volume(
                "items",
                json!({"configMap": {"name": "cfg", "items": [
                    {"key": "a.conf", "path": "conf/a"},
                    {"key": "b.conf", "path": "b", "mode": 0o600}
                ]}}),
            ),
        ],
    );
    let volumes = vm.mount_pod(&pod).await.unwrap();
    let all = root
        .agent_root()
        .join("pods/uid-cm/volumes/kubernetes.io~configmap/all");
    assert!(
        volumes.get("all").unwrap().read_only,
        "configMap volumes are read-only"
    );
    assert!(mount_at(&all).is_none(), "configMap volumes are on disk");

    let ts = data_target(&all);
    let ts = ts.to_str().unwrap();
    let bytes = ts.as_bytes();
    assert!(
        ts.starts_with("..") && ts.len() == "..2024_01_02_03_04_05.123456789".len(),
        "{ts}"
    );
    assert!(
        bytes[2..6].iter().all(u8::is_ascii_digit) && bytes[6] == b'_' && bytes[21] == b'.',
        "{ts}"
    );
    for key in ["a.conf", "b.conf", "bin"] {
        assert_eq!(
            std::fs::read_link(all.join(key)).unwrap(),
            std::path::Path::new("..data").join(key)
        );
        assert_eq!(mode(&all.join(key)), 0o440);
    }
    assert_eq!(read(&all.join("a.conf")), "alpha");
    assert_eq!(std::fs::read(all.join("bin")).unwrap(), vec![0, 1, 2]);
    assert_eq!(mode(&all.join(ts)), 0o755);

    let items = root
        .agent_root()
        .join("pods/uid-cm/volumes/kubernetes.io~configmap/items");
    assert_eq!(read(&items.join("conf/a")), "alpha");
    assert_eq!(
        std::fs::read_link(items.join("conf")).unwrap(),
        std::path::Path::new("..data/conf")
    );
    assert_eq!(
        mode(&items.join("conf/a")),
        0o644,
        "defaultMode defaults to 0644"
    );
    assert_eq!(mode(&items.join("b")), 0o600);
    assert!(!items.join("b.conf").exists());
    vm.unmount_pod("uid-cm").await.unwrap();
}

#[tokio::test]
async fn missing_config_maps_secrets_and_keys() {
    let root = TestRoot::new();
    let sources = Arc::new(InMemoryVolumeSources::new());
    sources.set_config_map("ns", "cfg", &[("k", "v")]);
    let vm = manager(&root, sources);
    let err = |volumes| async {
        vm.mount_pod(&pod("uid-miss", volumes))
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(vec![volume("c", json!({"configMap": {"name": "y"}}))]).await,
        "MountVolume.SetUp failed for volume \"c\" : configmap \"y\" not found"
    );
    assert_eq!(
        err(vec![volume("s", json!({"secret": {"secretName": "y"}}))]).await,
        "MountVolume.SetUp failed for volume \"s\" : secret \"y\" not found"
    );
    assert_eq!(
        err(vec![volume(
            "c",
            json!({"configMap": {"name": "cfg", "items": [{"key": "nope", "path": "p"}]}})
        )])
        .await,
        "MountVolume.SetUp failed for volume \"c\" : configmap references non-existent config key: nope"
    );
    assert_eq!(
        err(vec![volume(
            "p",
            json!({"projected": {"sources": [
                {"configMap": {"name": "gone1"}}, {"secret": {"name": "gone2"}}
            ]}})
        )])
        .await,
        "MountVolume.SetUp failed for volume \"p\" : [configmap \"gone1\" not found, secret \"gone2\" not found]"
    );

    let optional = pod(
        "uid-opt",
        vec![
            volume("c", json!({"configMap": {"name": "y", "optional": true}})),
            volume(
                "s",
                json!({"secret": {"secretName": "y", "optional": true}}),
            ),
            volume(
                "k",
                json!({"configMap": {"name": "cfg", "optional": true, "items": [{"key": "nope", "path": "p"}, {"key": "k", "path": "q"}]}}),
            ),
        ],
    );
    let volumes = vm.mount_pod(&optional).await.unwrap();
    let c = &volumes.get("c").unwrap().path;
    let names: Vec<String> = std::fs::read_dir(c)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".."))
        .collect();
    assert!(
        names.is_empty(),
        "optional and missing: empty, got {names:?}"
    );
    assert!(c.join("..data").exists());
    let k = &volumes.get("k").unwrap().path;
    assert!(!k.join("p").exists());
    assert_eq!(read(&k.join("q")), "v");
    vm.unmount_pod("uid-opt").await.unwrap();
    vm.unmount_pod("uid-miss").await.unwrap();
}

#[tokio::test]
async fn secret_is_on_a_tmpfs_with_its_modes() {
    let root = TestRoot::new();
    let sources = Arc::new(InMemoryVolumeSources::new());
    sources.set_secret(
        "ns",
        "creds",
        &[("password", b"s3cret"), ("user", b"admin")],
    );
    let vm = manager(&root, sources);
    let pod = pod(
        "uid-sec",
        vec![volume(
            "creds",
            json!({"secret": {"secretName": "creds", "defaultMode": 0o400, "items": [
                {"key": "password", "path": "pw"}, {"key": "user", "path": "u", "mode": 0o640}
            ]}}),
        )],
    );
    let volumes = vm.mount_pod(&pod).await.unwrap();
    let dir = root
        .agent_root()
        .join("pods/uid-sec/volumes/kubernetes.io~secret/creds");
    assert_eq!(mount_at(&dir).expect("secret tmpfs").fs_type, "tmpfs");
    assert!(volumes.get("creds").unwrap().read_only);
    assert_eq!(read(&dir.join("pw")), "s3cret");
    assert_eq!(mode(&dir.join("pw")), 0o400);
    assert_eq!(mode(&dir.join("u")), 0o640);
    vm.unmount_pod("uid-sec").await.unwrap();
    assert!(root.mounts().is_empty());
}

#[tokio::test]
async fn downward_api_files_and_live_updates() {
    let root = TestRoot::new();
    let vm = manager(&root, Arc::new(InMemoryVolumeSources::new()));
    let mut pod = pod(
        "uid-dapi",
        vec![volume(
            "info",
            json!({"downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}, "mode": 0o600},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
                {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
                {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
                {"path": "mem_limit", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
                {"path": "cpu_limit", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"}},
                {"path": "cpu_request", "resourceFieldRef": {"containerName": "app", "resource": "requests.cpu"}}
            ]}}),
        )],
    );
    pod.metadata.labels = Some(
        [("tier", "web"), ("app", "x")]
            .map(|(k, v)| (k.into(), v.into()))
            .into(),
    );
    pod.metadata.annotations = Some(
        [("note", "say \"hi\"\n")]
            .map(|(k, v)| (k.into(), v.into()))
            .into(),
    );
    pod.spec.as_mut().unwrap().containers[0].resources = Some(
        serde_json::from_value(json!({"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}))
            .unwrap(),
    );
    vm.mount_pod(&pod).await.unwrap();
    let dir = root
        .agent_root()
        .join("pods/uid-dapi/volumes/kubernetes.io~downward-api/info");
    assert_eq!(mount_at(&dir).expect("downward API tmpfs").fs_type, "tmpfs");
    assert_eq!(read(&dir.join("labels")), "app=\"x\"\ntier=\"web\"");
    assert_eq!(read(&dir.join("annotations")), "note=\"say \\\"hi\\\"\\n\"");
    assert_eq!(mode(&dir.join("annotations")), 0o600);
    assert_eq!(mode(&dir.join("labels")), 0o644);
    assert_eq!(read(&dir.join("name")), "web");
    assert_eq!(read(&dir.join("ns")), "ns");
    assert_eq!(read(&dir.join("uid")), "uid-dapi");
    assert_eq!(read(&dir.join("tier")), "web");
    assert_eq!(read(&dir.join("mem_limit")), "64");
    assert_eq!(
        read(&dir.join("cpu_limit")),
        "4000",
        "unset limit: node allocatable (4 cpus)"
    );
    assert_eq!(
        read(&dir.join("cpu_request")),
        "1",
        "250m rounds up to 1 cpu"
    );

    let before = data_target(&dir);
    assert_eq!(vm.refresh(&pod).await.unwrap(), Vec::<String>::new());
    assert_eq!(data_target(&dir), before, "unchanged: no swap");
    pod.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("tier".into(), "db".into());
    assert_eq!(vm.refresh(&pod).await.unwrap(), vec!["info".to_owned()]);
    assert_eq!(read(&dir.join("labels")), "app=\"x\"\ntier=\"db\"");
    assert_eq!(read(&dir.join("tier")), "db");
    assert!(!dir.join(&before).exists(), "old data directory removed");
    vm.unmount_pod("uid-dapi").await.unwrap();
}

#[tokio::test]
async fn fs_group_owns_empty_dir_and_config_map_contents() {
    let root = TestRoot::new();
    let sources = Arc::new(InMemoryVolumeSources::new());
    sources.set_config_map("ns", "cfg", &[("k", "v")]);
    let vm = manager(&root, sources);
    let mut pod = pod(
        "uid-fsg",
        vec![
            volume("scratch", json!({"emptyDir": {}})),
            volume(
                "cfg",
                json!({"configMap": {"name": "cfg", "defaultMode": 0o400}}),
            ),
        ],
    );
    pod.spec.as_mut().unwrap().security_context =
        Some(serde_json::from_value(json!({"fsGroup": 4321})).unwrap());
    let volumes = vm.mount_pod(&pod).await.unwrap();

    let scratch = &volumes.get("scratch").unwrap().path;
    let meta = std::fs::metadata(scratch).unwrap();
    assert_eq!(meta.gid(), 4321);
    assert_eq!(meta.mode() & 0o7777, 0o2777, "setgid directory");

    let cfg = &volumes.get("cfg").unwrap().path;
    let file = std::fs::metadata(cfg.join("k")).unwrap();
    assert_eq!(file.gid(), 4321);
    assert_eq!(
        file.mode() & 0o7777,
        0o440,
        "read-only volume: group read added"
    );
    let ts = std::fs::metadata(cfg.join(data_target(cfg))).unwrap();
    assert_eq!(ts.gid(), 4321);
    assert_eq!(ts.mode() & 0o7777, 0o2755);
    vm.unmount_pod("uid-fsg").await.unwrap();
}

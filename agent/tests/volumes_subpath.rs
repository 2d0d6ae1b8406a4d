//! subPath safety (CVE-2017-1002101, CVE-2021-25741): symlinks out of the volume, directories
//! swapped for symlinks while resolving; and container mounts from volumeMounts.

mod volumes_support;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ferrolet_agent::volumes::mounter::HostMounter;
use ferrolet_agent::volumes::subpath::bind_sub_path;
use ferrolet_agent::volumes::{InMemoryVolumeSources, PodVolumes, VolumeError, VolumeManager};
use ferrolet_cri::api::MountPropagation;
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::json;
use volumes_support::{TestRoot, manager, mode, mount_at, pod, read, volume, volume_mount};

fn container(mounts: &serde_json::Value) -> Container {
    serde_json::from_value(json!({"name": "app", "image": "busybox", "volumeMounts": mounts}))
        .unwrap()
}

fn no_env(_: &str) -> Option<String> {
    None
}

async fn with_empty_dir(root: &TestRoot, uid: &str) -> (VolumeManager, Pod, PodVolumes) {
    let vm = manager(root, Arc::new(InMemoryVolumeSources::new()));
    let pod = pod(uid, vec![volume("data", json!({"emptyDir": {}}))]);
    let volumes = vm.mount_pod(&pod).await.unwrap();
    (vm, pod, volumes)
}

fn subpath_mounts(root: &TestRoot) -> usize {
    root.mounts()
        .iter()
        .filter(|m| m.mount_point.to_string_lossy().contains("volume-subpaths"))
        .count()
}

#[tokio::test]
async fn a_sub_path_that_is_a_symlink_out_of_the_volume_fails() {
    let root = TestRoot::new();
    let (vm, _pod, volumes) = with_empty_dir(&root, "uid-a").await;
    let vol = &volumes.get("data").unwrap().path;
    symlink("/etc", vol.join("evil")).unwrap();
    let relative = "../".repeat(20) + "etc";
    symlink(&relative, vol.join("up")).unwrap();

    for sub_path in ["evil", "up"] {
        let err = volumes
            .mounts_for(
                &container(&json!([{"name": "data", "mountPath": "/x", "subPath": sub_path}])),
                &no_env,
            )
            .unwrap_err();
        assert!(matches!(err, VolumeError::SubPath { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "failed to prepare subPath \"{sub_path}\" for volumeMount \"data\" of container \"app\": symlink \"{sub_path}\" points outside the volume"
            )
        );
    }
    assert_eq!(subpath_mounts(&root), 0);
    vm.unmount_pod("uid-a").await.unwrap();
}

#[tokio::test]
async fn a_sub_path_through_a_symlinked_directory_fails() {
    let root = TestRoot::new();
    let (vm, _pod, volumes) = with_empty_dir(&root, "uid-b").await;
    let vol = &volumes.get("data").unwrap().path;
    symlink("/etc", vol.join("link")).unwrap();
    std::fs::create_dir(vol.join("real")).unwrap();
    symlink("../../../../../../../../../../etc", vol.join("real/up")).unwrap();

    for (sub_path, component) in [
        ("link/passwd", "link"),
        ("real/up/passwd", "real/up"),
        ("real/up", "real/up"),
    ] {
        let err = volumes
            .mounts_for(
                &container(&json!([{"name": "data", "mountPath": "/x", "subPath": sub_path}])),
                &no_env,
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(&format!(
                "symlink \"{component}\" points outside the volume"
            )),
            "{err}"
        );
    }
    let err = volumes
        .mounts_for(
            &container(&json!([{"name": "data", "mountPath": "/x", "subPath": "../x"}])),
            &no_env,
        )
        .unwrap_err()
        .to_string();
    assert!(err.ends_with("must not contain '..'"), "{err}");
    let err = volumes
        .mounts_for(
            &container(&json!([{"name": "data", "mountPath": "/x", "subPath": "/etc"}])),
            &no_env,
        )
        .unwrap_err()
        .to_string();
    assert!(err.ends_with("must not be an absolute path"), "{err}");
    assert_eq!(subpath_mounts(&root), 0);
    vm.unmount_pod("uid-b").await.unwrap();
}

#[tokio::test]
async fn symlinks_inside_the_volume_and_missing_directories() {
    let root = TestRoot::new();
    let (vm, _pod, volumes) = with_empty_dir(&root, "uid-in").await;
    let vol = volumes.get("data").unwrap().path.clone();
    std::fs::create_dir(vol.join("real")).unwrap();
    std::fs::write(vol.join("real/file"), "inside").unwrap();
    symlink("real", vol.join("alias")).unwrap();
    symlink("real/file", vol.join("alias-file")).unwrap();
    symlink("../real/file", vol.join("real/back")).unwrap();

    let mounts = volumes
        .mounts_for(
            &container(&json!([
                {"name": "data", "mountPath": "/a", "subPath": "alias/file"},
                {"name": "data", "mountPath": "/b", "subPath": "new/dir"},
                {"name": "data", "mountPath": "/c", "subPath": "alias-file"},
                {"name": "data", "mountPath": "/d", "subPath": "real/back"}
            ])),
            &no_env,
        )
        .unwrap();
    let pod_dir = root.agent_root().join("pods/uid-in");
    assert_eq!(
        mounts[0].host_path,
        pod_dir.join("volume-subpaths/data/app/0").to_string_lossy()
    );
    assert_eq!(read(Path::new(&mounts[0].host_path)), "inside");
    assert_eq!(read(Path::new(&mounts[2].host_path)), "inside");
    assert_eq!(read(Path::new(&mounts[3].host_path)), "inside");
    assert!(
        vol.join("new/dir").is_dir(),
        "missing subPath directories are created"
    );
    assert_eq!(
        mode(&vol.join("new/dir")),
        0o777,
        "with the volume root's mode"
    );
    std::fs::write(vol.join("new/dir/seen"), "y").unwrap();
    assert_eq!(read(&Path::new(&mounts[1].host_path).join("seen")), "y");
    assert_eq!(subpath_mounts(&root), 4);

    // A container restart maps the same mounts again without stacking them.
    volumes
        .mounts_for(
            &container(&json!([
                {"name": "data", "mountPath": "/a", "subPath": "alias/file"},
                {"name": "data", "mountPath": "/b", "subPath": "new/dir"},
                {"name": "data", "mountPath": "/c", "subPath": "alias-file"},
                {"name": "data", "mountPath": "/d", "subPath": "real/back"}
            ])),
            &no_env,
        )
        .unwrap();
    assert_eq!(subpath_mounts(&root), 4);

    vm.unmount_pod("uid-in").await.unwrap();
    assert!(root.mounts().is_empty(), "{:?}", root.mounts());
    assert!(!pod_dir.join("volume-subpaths").exists());
}

#[test]
fn a_directory_swapped_for_a_symlink_never_exposes_the_host() {
    let root = TestRoot::new();
    let host = root.host_dir("secret");
    std::fs::write(host.join("marker"), "HOST").unwrap();
    let vol = root.path().join("vol");
    std::fs::create_dir_all(vol.join("dir")).unwrap();
    std::fs::write(vol.join("dir/marker"), "VOLUME").unwrap();
    symlink(&host, vol.join("link")).unwrap();
    let target_dir = root.path().join("target-dir");
    let target_file = root.path().join("target-file");

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, swaps, vol) = (stop.clone(), swaps.clone(), vol.clone());
        std::thread::spawn(move || {
            let dir = nix::fcntl::open(
                &vol,
                nix::fcntl::OFlag::O_PATH,
                nix::sys::stat::Mode::empty(),
            )
            .unwrap();
            // Swap the directory and the symlink to the host directory in a tight loop.
            while !stop.load(Ordering::SeqCst) {
                nix::fcntl::renameat2(
                    &dir,
                    "dir",
                    &dir,
                    "link",
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )
                .unwrap();
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let (mut mounted, mut refused) = (0, 0);
    for i in 0..1000 {
        // Let the swapper move between resolutions even when the CPUs are busy elsewhere,
        // so that resolutions meet every phase of the swap.
        let before = swaps.load(Ordering::Relaxed);
        for _ in 0..10_000 {
            if swaps.load(Ordering::Relaxed) != before {
                break;
            }
            std::thread::yield_now();
        }
        let (sub_path, target) = if i % 2 == 0 {
            ("dir", &target_dir)
        } else {
            ("dir/marker", &target_file)
        };
        match bind_sub_path(&HostMounter, &vol, sub_path, target, None) {
            Ok(()) => {
                mounted += 1;
                let shown = if sub_path == "dir" {
                    target.join("marker")
                } else {
                    target.clone()
                };
                let content = std::fs::read_to_string(&shown).unwrap_or_default();
                let is_mount = mount_at(target).is_some();
                nix::mount::umount2(target.as_path(), nix::mount::MntFlags::MNT_DETACH).unwrap();
                assert!(is_mount, "bind_sub_path returned without a mount");
                assert_eq!(
                    content, "VOLUME",
                    "iteration {i}: the bind mount shows the host directory"
                );
            }
            Err(err) => {
                if refused < 5 {
                    eprintln!("refused: {err}");
                }
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    swapper.join().unwrap();
    eprintln!(
        "race: {mounted} mounted, {refused} refused, {} swaps",
        swaps.load(Ordering::Relaxed)
    );
    assert!(mounted > 0, "never resolved");
    assert!(
        refused > 0 && swaps.load(Ordering::Relaxed) >= 1000,
        "the swapper did not race"
    );
    assert!(root.mounts().is_empty());
}

#[tokio::test]
async fn volume_mounts_map_to_cri_mounts() {
    let root = TestRoot::new();
    let sources = Arc::new(InMemoryVolumeSources::new());
    sources.set_config_map("ns", "cfg", &[("app.conf", "conf")]);
    let vm = manager(&root, sources);
    let pod = pod(
        "uid-map",
        vec![
            volume("data", json!({"emptyDir": {}})),
            volume("cfg", json!({"configMap": {"name": "cfg"}})),
            volume("host", json!({"hostPath": {"path": root.host_dir("h")}})),
        ],
    );
    let volumes = vm.mount_pod(&pod).await.unwrap();
    let env = |name: &str| match name {
        "POD_NAME" => Some("web-0".to_owned()),
        _ => None,
    };
    let mounts = volumes
        .mounts_for(
            &container(&json!([
                {"name": "data", "mountPath": "/data"},
                {"name": "data", "mountPath": "/ro", "readOnly": true, "mountPropagation": "None"},
                {"name": "cfg", "mountPath": "/etc/app"},
                {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
                {"name": "host", "mountPath": "/host", "mountPropagation": "HostToContainer"},
                {"name": "host", "mountPath": "/shared", "mountPropagation": "Bidirectional"},
                {"name": "data", "mountPath": "/logs", "subPathExpr": "logs/$(POD_NAME)"},
                {"name": "data", "mountPath": "/rro", "readOnly": true, "recursiveReadOnly": "Enabled"}
            ])),
            &env,
        )
        .unwrap();
    let data = volumes
        .get("data")
        .unwrap()
        .path
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        (mounts[0].host_path.as_str(), mounts[0].readonly),
        (data.as_str(), false)
    );
    assert_eq!(mounts[0].container_path, "/data");
    assert_eq!(
        mounts[0].propagation,
        MountPropagation::PropagationPrivate as i32
    );
    assert!(mounts[0].selinux_relabel);
    assert!(mounts[1].readonly);
    assert!(mounts[2].readonly, "configMap volumes are forced read-only");
    assert!(mounts[3].readonly);
    assert_eq!(read(Path::new(&mounts[3].host_path)), "conf");
    assert_eq!(
        mounts[4].propagation,
        MountPropagation::PropagationHostToContainer as i32
    );
    assert!(!mounts[4].selinux_relabel, "hostPath is not relabelled");
    assert_eq!(
        mounts[5].propagation,
        MountPropagation::PropagationBidirectional as i32
    );
    assert!(
        volumes
            .get("data")
            .unwrap()
            .path
            .join("logs/web-0")
            .is_dir()
    );
    assert!(mounts[7].recursive_read_only && !mounts[1].recursive_read_only);

    let missing = volumes
        .mounts_for(
            &container(
                &json!([{"name": "data", "mountPath": "/l", "subPathExpr": "$(NOPE)/$(POD_NAME)"}]),
            ),
            &env,
        )
        .unwrap_err()
        .to_string();
    assert_eq!(
        missing,
        "failed to expand subPathExpr \"$(NOPE)/$(POD_NAME)\" for volumeMount \"data\" of container \"app\": missing value for NOPE"
    );
    let unknown = volumes
        .mounts_for(
            &container(&json!([{"name": "nope", "mountPath": "/n"}])),
            &env,
        )
        .unwrap_err()
        .to_string();
    assert_eq!(
        unknown,
        "cannot find volume \"nope\" to mount into container \"app\""
    );
    let bad = volumes
        .mounts_for(
            &container(
                &json!([{"name": "data", "mountPath": "/n", "mountPropagation": "Sideways"}]),
            ),
            &env,
        )
        .unwrap_err()
        .to_string();
    assert_eq!(bad, "invalid MountPropagation mode: \"Sideways\"");
    let _ = volume_mount(json!({"name": "x", "mountPath": "/x"}));
    vm.unmount_pod("uid-map").await.unwrap();
    assert!(root.mounts().is_empty());
}

//! Shared helpers of the volume tests: a root directory that unmounts and removes everything
//! below it when dropped (also when a test fails), pod builders and mount table queries.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferrolet_agent::volumes::mounter::{HostMounter, MountInfo, Mounter, mounts_below};
use ferrolet_agent::volumes::{InMemoryVolumeSources, VolumeManager};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;

/// A temporary agent root. Dropping it unmounts everything below it (lazily, deepest first)
/// and removes it.
pub struct TestRoot {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestRoot {
    pub fn new() -> TestRoot {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "volume tests mount tmpfs and bind mounts: run them as root (e.g. sudo -E cargo test -p ferrolet-agent)"
        );
        let dir = tempfile::Builder::new()
            .prefix("ferrolet-volumes-")
            .tempdir()
            .expect("create temporary root");
        let path = std::fs::canonicalize(dir.path()).expect("canonical root");
        TestRoot {
            dir: Some(dir),
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A directory outside the agent root (for hostPath and "host" files), cleaned with it.
    pub fn host_dir(&self, name: &str) -> PathBuf {
        let dir = self.path.join("host").join(name);
        std::fs::create_dir_all(&dir).expect("create host dir");
        dir
    }

    /// The agent root under this root.
    pub fn agent_root(&self) -> PathBuf {
        self.path.join("agent")
    }

    /// The mounts below this root.
    pub fn mounts(&self) -> Vec<MountInfo> {
        mounts_below(&HostMounter.mount_points().expect("mountinfo"), &self.path)
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        for _ in 0..32 {
            let mounts = self.mounts();
            if mounts.is_empty() {
                break;
            }
            for mount in mounts {
                let _ = nix::mount::umount2(&mount.mount_point, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// The mount at exactly `path`, if any.
pub fn mount_at(path: &Path) -> Option<MountInfo> {
    let canonical = std::fs::canonicalize(path).ok()?;
    HostMounter
        .mount_points()
        .expect("mountinfo")
        .into_iter()
        .rev()
        .find(|m| m.mount_point == canonical)
}

/// A manager over `root`'s agent root with in-memory sources and a fixed allocatable.
pub fn manager(root: &TestRoot, sources: Arc<InMemoryVolumeSources>) -> VolumeManager {
    let allocatable: BTreeMap<String, Quantity> = [
        ("cpu", "4"),
        ("memory", "8Gi"),
        ("ephemeral-storage", "100Gi"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
    .collect();
    VolumeManager::new(root.agent_root(), sources).with_node_allocatable(allocatable)
}

/// A pod in namespace `ns` with one container `app` and `volumes`.
pub fn pod(uid: &str, volumes: Vec<Volume>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("busybox".into()),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A volume from its JSON source (`{"emptyDir": {}}`).
pub fn volume(name: &str, source: serde_json::Value) -> Volume {
    let mut value = source;
    value["name"] = serde_json::Value::String(name.to_owned());
    serde_json::from_value(value).expect("volume json")
}

/// A volumeMount from JSON.
pub fn volume_mount(value: serde_json::Value) -> VolumeMount {
    serde_json::from_value(value).expect("volumeMount json")
}

/// The permission bits of `path` (not following a final symlink when `follow` is false).
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// The target of the `..data` link of a projected volume.
pub fn data_target(dir: &Path) -> PathBuf {
    std::fs::read_link(dir.join("..data")).expect("..data link")
}

/// Reads `path` as a string.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

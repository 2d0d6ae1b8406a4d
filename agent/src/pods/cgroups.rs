//! Pod cgroups left after a pod's containers are gone. The runtime creates the pod cgroup
//! (`<cgroupRoot>/kubepods[/<qos>]/pod<uid>`) as the parent of the containers' cgroups and
//! removes only the containers' own; the kubelet removes the pod's, as its pod container
//! manager does, so that no empty cgroups pile up in any hierarchy.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Where cgroup hierarchies are mounted.
const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// The pod's cgroup directories that exist, in every hierarchy (v1 controllers and the
/// unified one), for the cgroupfs driver.
fn pod_cgroup_dirs(mount: &Path, cgroup_root: &str, uid: &str) -> Vec<PathBuf> {
    let root = cgroup_root.trim_matches('/');
    let relative: Vec<PathBuf> = ["", "burstable", "besteffort"]
        .iter()
        .map(|qos| {
            Path::new(root)
                .join("kubepods")
                .join(qos)
                .join(format!("pod{uid}"))
        })
        .collect();
    // cgroup v2 mounted at the top, or v1 with one directory per hierarchy below it.
    let mut hierarchies = vec![mount.to_owned()];
    if let Ok(entries) = std::fs::read_dir(mount) {
        hierarchies.extend(
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    hierarchies
        .iter()
        .flat_map(|h| relative.iter().map(move |r| h.join(r)))
        .filter(|dir| dir.is_dir())
        .collect()
}

/// Removes a cgroup and its children, deepest first (cgroup directories only go with
/// `rmdir`, and only once no process is left in them).
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(err) if err.kind() != ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Removes the cgroups of pod `uid` under `cgroup_root` in every hierarchy.
pub fn remove_pod_cgroups(cgroup_root: &str, uid: &str) -> Result<(), String> {
    remove_pod_cgroups_at(Path::new(CGROUP_MOUNT), cgroup_root, uid)
}

fn remove_pod_cgroups_at(mount: &Path, cgroup_root: &str, uid: &str) -> Result<(), String> {
    if uid.is_empty() {
        return Ok(());
    }
    let mut errors = Vec::new();
    for dir in pod_cgroup_dirs(mount, cgroup_root, uid) {
        if let Err(err) = remove_tree(&dir) {
            errors.push(format!("remove cgroup {}: {err}", dir.display()));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_removes_the_pod_cgroup_in_each_hierarchy_only() {
        // Plain directories stand in for the cgroup filesystem: `rmdir` works on both.
        let mount = tempfile::tempdir().unwrap();
        let base = mount.path();
        let pod = |h: &str, qos: &str, uid: &str| {
            base.join(h)
                .join("test/kubepods")
                .join(qos)
                .join(format!("pod{uid}"))
        };
        let ours = [pod("memory", "besteffort", "u1"), pod("cpu", "", "u1")];
        let other = pod("memory", "besteffort", "u2");
        for dir in ours.iter().chain([&other]) {
            std::fs::create_dir_all(dir.join("container-a")).unwrap();
        }
        let found = pod_cgroup_dirs(base, "/test", "u1");
        assert_eq!(found.len(), 2, "{found:?}");
        remove_pod_cgroups_at(base, "/test", "u1").unwrap();
        assert!(ours.iter().all(|d| !d.exists()));
        assert!(
            other.join("container-a").is_dir(),
            "another pod's cgroup stays"
        );
        // Nothing left to remove is not an error.
        remove_pod_cgroups_at(base, "/test", "u1").unwrap();
    }
}

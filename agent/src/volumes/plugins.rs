//! The filesystem side of the plugins: emptyDir (`pkg/volume/emptydir`), hostPath type checks
//! (`pkg/volume/hostpath`) and the directory (or tmpfs) that configMap, secret, downwardAPI
//! and projected contents are written into. These block; the manager runs them off the async
//! runtime.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::atomic_writer::{AtomicWriter, Payload};
use super::error::SetUpError;
use super::mounter::{Mounter, is_mount_point};
use super::ownership::{FsGroup, set_volume_ownership};
use crate::quantity::Quantity;

/// Mode of emptyDir (and wrapped emptyDir) volume directories: anyone may write.
const VOLUME_DIR_MODE: u32 = 0o777;
/// Mode of the kubelet's own directories under the pod.
const POD_DIR_MODE: u32 = 0o750;
/// The marker of a set-up emptyDir in its plugin metadata directory.
const READY_FILE: &str = "ready";

/// Where an emptyDir keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// A directory on the node's disk.
    Disk,
    /// A tmpfs of its own.
    Memory,
}

/// Creates `dir` (and its parents, 0750) with mode 0777, keeping what is in it.
fn setup_dir(dir: &Path) -> Result<(), SetUpError> {
    if let Some(parent) = dir.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(POD_DIR_MODE)
            .create(parent)
            .map_err(|err| SetUpError::io("create volume parent directory", parent, err))?;
    }
    match fs::DirBuilder::new().mode(VOLUME_DIR_MODE).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(SetUpError::io("create volume directory", dir, err)),
    }
    let meta = fs::symlink_metadata(dir)
        .map_err(|err| SetUpError::io("inspect volume directory", dir, err))?;
    if !meta.is_dir() {
        return Err(SetUpError::io(
            "create volume directory",
            dir,
            io::Error::other("exists and is not a directory"),
        ));
    }
    let mode = meta.permissions().mode();
    if mode & 0o777 != VOLUME_DIR_MODE {
        // Keep setgid (an fsGroup set it); the umask narrowed the rest.
        fs::set_permissions(
            dir,
            fs::Permissions::from_mode((mode & 0o7000) | VOLUME_DIR_MODE),
        )
        .map_err(|err| SetUpError::io("set mode of volume directory", dir, err))?;
    }
    Ok(())
}

/// Whether `dir` is a mount point.
pub fn is_mounted(mounter: &dyn Mounter, dir: &Path) -> Result<bool, SetUpError> {
    let table = mounter
        .mount_points()
        .map_err(|err| SetUpError::io("read mount table for", dir, err))?;
    let Ok(canonical) = fs::canonicalize(dir) else {
        return Ok(false);
    };
    Ok(is_mount_point(&table, &canonical))
}

/// Mounts a tmpfs at `dir` unless one is there already.
fn ensure_tmpfs(
    mounter: &dyn Mounter,
    dir: &Path,
    size_bytes: Option<u64>,
) -> Result<(), SetUpError> {
    if is_mounted(mounter, dir)? {
        return Ok(());
    }
    mounter
        .mount_tmpfs(dir, size_bytes)
        .map_err(|source| SetUpError::MountTmpfs {
            path: dir.to_owned(),
            source,
        })
}

/// Sets up an emptyDir at `dir`. Idempotent: a volume marked ready in `meta_dir` (and, for
/// memory, still mounted) is left alone, so its data and ownership survive agent restarts.
pub fn set_up_empty_dir(
    mounter: &dyn Mounter,
    dir: &Path,
    meta_dir: &Path,
    medium: Medium,
    size_bytes: Option<u64>,
    fs_group: Option<FsGroup>,
) -> Result<(), SetUpError> {
    let ready = meta_dir.join(READY_FILE).exists();
    if ready && dir.is_dir() {
        match medium {
            Medium::Disk => return Ok(()),
            Medium::Memory if is_mounted(mounter, dir)? => return Ok(()),
            Medium::Memory => {}
        }
    }
    setup_dir(dir)?;
    if medium == Medium::Memory {
        ensure_tmpfs(mounter, dir, size_bytes)?;
    }
    if let Some(fs_group) = fs_group {
        set_volume_ownership(dir, fs_group, false)
            .map_err(|err| SetUpError::io("set volume ownership", dir, err))?;
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(POD_DIR_MODE)
        .create(meta_dir)
        .map_err(|err| SetUpError::io("create plugin directory", meta_dir, err))?;
    let ready_file = meta_dir.join(READY_FILE);
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&ready_file)
        .map_err(|err| SetUpError::io("mark volume ready", &ready_file, err))?;
    Ok(())
}

/// Writes `payload` into the volume at `dir` with the atomic writer, on a tmpfs of its own
/// when `tmpfs` is `Some(size)`. Returns whether the contents changed.
pub fn write_projected(
    mounter: &dyn Mounter,
    dir: &Path,
    tmpfs: Option<Option<u64>>,
    payload: &Payload,
    fs_group: Option<FsGroup>,
) -> Result<bool, SetUpError> {
    setup_dir(dir)?;
    if let Some(size_bytes) = tmpfs {
        ensure_tmpfs(mounter, dir, size_bytes)?;
    }
    let set_perms = move |target: &Path| match fs_group {
        Some(fs_group) => set_volume_ownership(target, fs_group, true),
        None => Ok(()),
    };
    AtomicWriter::new(dir).write(payload, Some(&set_perms))
}

/// Checks (and for the `...OrCreate` types, creates) a hostPath as its `type` says, with the
/// kubelet's messages. Symlinks are followed, as the kubelet's `os.Stat` does.
pub fn check_host_path(path: &Path, host_path_type: Option<&str>) -> Result<(), SetUpError> {
    let mismatch = |expected| SetUpError::HostPathTypeCheck {
        path: path.to_owned(),
        expected,
    };
    let meta = fs::metadata(path).ok();
    let ty = meta.as_ref().map(fs::Metadata::file_type);
    match host_path_type.unwrap_or_default() {
        "" => Ok(()),
        "DirectoryOrCreate" if meta.is_none() => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(|err| SetUpError::io("create hostPath directory", path, err)),
        "DirectoryOrCreate" | "Directory" => match ty {
            Some(t) if t.is_dir() => Ok(()),
            _ => Err(mismatch("directory")),
        },
        "FileOrCreate" if meta.is_none() => fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map(drop)
            .map_err(|err| SetUpError::io("create hostPath file", path, err)),
        "FileOrCreate" | "File" => match ty {
            Some(t) if t.is_file() => Ok(()),
            _ => Err(mismatch("file")),
        },
        "Socket" => match ty {
            Some(t) if t.is_socket() => Ok(()),
            _ => Err(mismatch("socket file")),
        },
        "CharDevice" => match ty {
            Some(t) if t.is_char_device() => Ok(()),
            _ => Err(mismatch("character device")),
        },
        "BlockDevice" => match ty {
            Some(t) if t.is_block_device() => Ok(()),
            _ => Err(mismatch("block device")),
        },
        other => Err(SetUpError::InvalidHostPathType(other.to_owned())),
    }
}

/// The size of a memory-backed volume (`calculateEmptyDirMemorySize`): the node's allocatable
/// memory, lowered to the pod's memory limit and then to the volume's `sizeLimit` when those
/// are positive and smaller. `None`: the kernel's default (half of RAM).
#[must_use]
pub fn memory_volume_size(
    pod: &Pod,
    size_limit: Option<&ApiQuantity>,
    node_allocatable_memory: Option<&ApiQuantity>,
) -> Option<u64> {
    let bytes = |q: &ApiQuantity| {
        Quantity::from_api(q)
            .ok()
            .filter(|q| *q > Quantity::ZERO)
            .and_then(|q| u64::try_from(q.value()).ok())
    };
    let mut size = node_allocatable_memory.and_then(bytes);
    for candidate in [pod_memory_limit(pod), size_limit.and_then(bytes)] {
        if let Some(candidate) = candidate
            && size.is_none_or(|s| candidate <= s)
        {
            size = Some(candidate);
        }
    }
    size
}

/// The pod's memory limit when every container has one: the larger of the sum over app
/// containers and the largest init container (`ResourceConfigForPod`).
fn pod_memory_limit(pod: &Pod) -> Option<u64> {
    let spec = pod.spec.as_ref()?;
    let limit = |c: &k8s_openapi::api::core::v1::Container| {
        c.resources
            .as_ref()?
            .limits
            .as_ref()?
            .get("memory")
            .and_then(|q| Quantity::from_api(q).ok())
            .and_then(|q| u64::try_from(q.value()).ok())
    };
    let mut sum: u64 = 0;
    for container in &spec.containers {
        sum = sum.saturating_add(limit(container)?);
    }
    let mut init_max = 0;
    for container in spec.init_containers.iter().flatten() {
        init_max = init_max.max(limit(container)?);
    }
    Some(sum.max(init_max)).filter(|s| *s > 0)
}

//! fsGroup ownership of volume contents (`pkg/volume/volume_linux.go`): every file and
//! directory gets the pod's `securityContext.fsGroup` as its group and group access; directories
//! get setgid so that new files inherit the group.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Group read/write for volumes containers may write.
const RW_MASK: u32 = 0o660;
/// Group read for volumes the kubelet forces read-only.
const RO_MASK: u32 = 0o440;
/// Traversal of directories.
const EXEC_MASK: u32 = 0o110;
const SETGID: u32 = 0o2000;

/// `securityContext.fsGroupChangePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsGroupChangePolicy {
    /// Change every file on every set-up (the default).
    #[default]
    Always,
    /// Change only when the volume root does not already have the group and modes.
    OnRootMismatch,
}

impl FsGroupChangePolicy {
    /// The policy named in a pod spec (`None` and unknown values: `Always`).
    #[must_use]
    pub fn from_spec(value: Option<&str>) -> Self {
        match value {
            Some("OnRootMismatch") => FsGroupChangePolicy::OnRootMismatch,
            _ => FsGroupChangePolicy::Always,
        }
    }
}

/// The fsGroup to apply to a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsGroup {
    pub gid: u32,
    pub policy: FsGroupChangePolicy,
}

/// Gives everything below `dir` (not following symlinks) the group `fs_group.gid` and group
/// access: read for `read_only` volumes, read/write otherwise, plus setgid and traversal on
/// directories. Symlinks get the group only: chmod would change their targets.
pub fn set_volume_ownership(dir: &Path, fs_group: FsGroup, read_only: bool) -> io::Result<()> {
    if fs_group.policy == FsGroupChangePolicy::OnRootMismatch
        && !requires_permission_change(dir, fs_group.gid, read_only)
    {
        tracing::debug!(dir = %dir.display(), "skipping fsGroup change: root matches");
        return Ok(());
    }
    walk(dir, fs_group.gid, read_only)
}

fn walk(path: &Path, gid: u32, read_only: bool) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    change_file_permission(path, &meta, gid, read_only)?;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            walk(&entry?.path(), gid, read_only)?;
        }
    }
    Ok(())
}

fn change_file_permission(
    path: &Path,
    meta: &fs::Metadata,
    gid: u32,
    read_only: bool,
) -> io::Result<()> {
    std::os::unix::fs::lchown(path, None, Some(gid))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut mask = if read_only { RO_MASK } else { RW_MASK };
    if meta.is_dir() {
        mask |= SETGID | EXEC_MASK;
    }
    let mode = (meta.mode() & 0o7777) | mask;
    // chown(2) clears setgid on non-directories; set the mode after it.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Whether the volume root lacks the group, the access bits or setgid.
fn requires_permission_change(dir: &Path, gid: u32, read_only: bool) -> bool {
    let Ok(meta) = fs::metadata(dir) else {
        return true;
    };
    if meta.gid() != gid || !meta.is_dir() {
        return true;
    }
    let wanted = if read_only { RO_MASK } else { RW_MASK } | EXEC_MASK;
    meta.mode() & wanted != wanted || meta.mode() & SETGID == 0
}

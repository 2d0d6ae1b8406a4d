//! Tearing volumes down: unmount everything below a directory (deepest first, as read from
//! the mount table), then remove the directory without ever crossing into another filesystem
//! or a directory that is still mounted (`RemoveAllOneFilesystem`), so that a failed unmount
//! can never turn into deleting a host directory or the data behind a bind mount.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::error::TearDownError;
use super::mounter::{Mounter, mounts_below};

/// Unmounts every mount at or below `dir`. A missing `dir` has nothing mounted.
pub fn unmount_below(mounter: &dyn Mounter, dir: &Path) -> Result<(), TearDownError> {
    let Ok(canonical) = fs::canonicalize(dir) else {
        return Ok(());
    };
    // Stacked and nested mounts may need several rounds; each round unmounts what is listed.
    for _ in 0..16 {
        let table = mounter.mount_points().map_err(TearDownError::MountTable)?;
        let mounts = mounts_below(&table, &canonical);
        if mounts.is_empty() {
            return Ok(());
        }
        for mount in mounts {
            match mounter.unmount(&mount.mount_point) {
                Ok(()) => {
                    tracing::debug!(path = %mount.mount_point.display(), "unmounted");
                }
                // Already gone (unmounted with its parent, or by someone else).
                Err(err)
                    if matches!(
                        err.raw_os_error(),
                        Some(nix::libc::EINVAL | nix::libc::ENOENT)
                    ) => {}
                Err(source) => {
                    return Err(TearDownError::Unmount {
                        path: mount.mount_point,
                        source,
                    });
                }
            }
        }
    }
    Err(TearDownError::StillMounted { path: canonical })
}

/// Removes `dir` and everything in it, refusing when anything below is still mounted or lives
/// on another filesystem. A missing `dir` is already removed.
pub fn remove_all_one_filesystem(mounter: &dyn Mounter, dir: &Path) -> Result<(), TearDownError> {
    let root = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(TearDownError::Remove {
                path: dir.to_owned(),
                source,
            });
        }
    };
    if let Ok(canonical) = fs::canonicalize(dir) {
        let table = mounter.mount_points().map_err(TearDownError::MountTable)?;
        if let Some(mount) = mounts_below(&table, &canonical).into_iter().next() {
            return Err(TearDownError::StillMounted {
                path: mount.mount_point,
            });
        }
    }
    if !root.is_dir() {
        return fs::remove_file(dir).map_err(|source| TearDownError::Remove {
            path: dir.to_owned(),
            source,
        });
    }
    remove_tree(dir, root.dev())
}

fn remove_tree(dir: &Path, dev: u64) -> Result<(), TearDownError> {
    let remove_error = |path: &Path, source| TearDownError::Remove {
        path: path.to_owned(),
        source,
    };
    let entries = fs::read_dir(dir).map_err(|err| remove_error(dir, err))?;
    for entry in entries {
        let entry = entry.map_err(|err| remove_error(dir, err))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|err| remove_error(&path, err))?;
        if meta.is_dir() {
            if meta.dev() != dev {
                return Err(TearDownError::CrossesFilesystem { path });
            }
            remove_tree(&path, dev)?;
        } else {
            fs::remove_file(&path).map_err(|err| remove_error(&path, err))?;
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(remove_error(dir, err)),
    }
}

/// Unmounts everything below `dir` and removes it.
pub fn tear_down_dir(mounter: &dyn Mounter, dir: &Path) -> Result<(), TearDownError> {
    unmount_below(mounter, dir)?;
    remove_all_one_filesystem(mounter, dir)
}

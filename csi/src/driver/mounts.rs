//! The bind mounts the hostpath driver makes: the volume onto the staging path, the staging
//! path (or the volume) onto the pod's target path.

use std::io;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

/// Whether `path` is a mount point in this mount namespace.
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    let Ok(canonical) = std::fs::canonicalize(path) else {
        return Ok(false);
    };
    let wanted = canonical.to_string_lossy();
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount| unescape(mount) == wanted))
}

/// Undoes the octal escapes of mountinfo (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(code) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Bind-mounts `source` onto the directory `target` (created), read-only when asked.
/// Nothing happens when `target` is already a mount point.
pub fn bind(source: &Path, target: &Path, read_only: bool) -> io::Result<()> {
    std::fs::create_dir_all(target)?;
    if is_mount_point(target)? {
        return Ok(());
    }
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    if read_only {
        let remounted = nix::mount::mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        );
        if let Err(err) = remounted {
            let _ = nix::mount::umount2(target, MntFlags::MNT_DETACH);
            return Err(err.into());
        }
    }
    Ok(())
}

/// Unmounts `target` if it is a mount point, then removes the (empty) directory. A missing
/// target is not an error.
pub fn unbind(target: &Path) -> io::Result<()> {
    while is_mount_point(target)? {
        nix::mount::umount2(target, MntFlags::empty())?;
    }
    match std::fs::remove_dir(target) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/var/lib/a\040b"), "/var/lib/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape(r"/tail\04"), r"/tail\04");
    }

    #[test]
    fn the_root_is_a_mount_point_and_a_fresh_directory_is_not() {
        assert!(is_mount_point(Path::new("/")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()).unwrap());
        assert!(!is_mount_point(&dir.path().join("missing")).unwrap());
    }
}

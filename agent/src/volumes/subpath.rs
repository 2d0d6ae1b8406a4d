//! Safe subPath mounts (`pkg/volume/util/subpath/subpath_linux.go`), against the class of
//! CVE-2017-1002101 and CVE-2021-25741: a container that can write into a volume can plant
//! symlinks there, or swap a directory for one between a check and its use, to make the
//! kubelet bind-mount a host path into a container.
//!
//! So no path inside the volume is ever resolved by the kernel. Each component is opened with
//! `O_PATH | O_NOFOLLOW` relative to the descriptor of its parent, starting at the volume
//! root; missing directories are created in place (`mkdirat` + `openat` without following).
//! A symlink on the way is read and resolved component by component the same way, relative
//! to the directories already opened; an absolute target or one that climbs above the volume
//! root is an error. (Following in-volume symlinks is what upstream allows too, after
//! `EvalSymlinks` and a `PathWithinBase` check: subPaths into configMap and secret volumes go
//! through their `key -> ..data/key` links.) The final descriptor is bind-mounted through
//! `/proc/self/fd/N` onto `<pod>/volume-subpaths/<volume>/<container>/<index>`, and that path is
//! what the runtime mounts into the container.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use super::error::SubPathError;
use super::mounter::{Mounter, is_mount_point};

/// Symlinks followed at most while resolving one subPath (the kernel's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// Checks a subPath (after `subPathExpr` expansion) as the kubelet does before resolving it:
/// relative and without `..` elements.
pub fn validate_sub_path(sub_path: &str) -> Result<(), SubPathError> {
    if sub_path.starts_with('/') {
        return Err(SubPathError::Absolute);
    }
    if sub_path.split('/').any(|c| c == "..") {
        return Err(SubPathError::Backsteps);
    }
    Ok(())
}

/// A subPath opened inside its volume.
#[derive(Debug)]
pub struct OpenedSubPath {
    /// An `O_PATH` (or, for a directory created here, `O_RDONLY`) descriptor of the file.
    pub fd: OwnedFd,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// Opens `sub_path` inside `volume_root` without ever following a symlink out of it. With
/// `create_mode`, missing components are created as directories with that mode (applied with
/// fchmod, so the umask does not narrow it).
pub fn open_sub_path(
    volume_root: &Path,
    sub_path: &str,
    create_mode: Option<u32>,
) -> Result<OpenedSubPath, SubPathError> {
    validate_sub_path(sub_path)?;
    // The volume root itself is the kubelet's (or, for hostPath, the admin's) path.
    let root = nix::fcntl::open(
        volume_root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|err| SubPathError::OpenRoot(err.into()))?;
    // Opened directories from the root down, with their names (for messages).
    let mut stack: Vec<(OwnedFd, String)> = vec![(root, String::new())];
    // Components still to resolve, each with the symlink whose target it came from.
    let mut queue: VecDeque<(String, Option<Rc<str>>)> =
        sub_path.split('/').map(|c| (c.to_owned(), None)).collect();
    let mut links = 0;
    while let Some((component, via)) = queue.pop_front() {
        if component.is_empty() || component == "." {
            continue;
        }
        let here = describe(&stack, &component);
        if component == ".." {
            // Only symlink targets get here: subPath itself has no `..`.
            if stack.len() == 1 {
                return Err(SubPathError::SymlinkEscapes {
                    component: via.map_or(here, |link| link.to_string()),
                });
            }
            stack.pop();
            continue;
        }
        let parent = &stack[stack.len() - 1].0;
        let opened = nix::fcntl::openat(
            parent.as_fd(),
            component.as_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        match opened {
            Ok(fd) => {
                let stat =
                    nix::sys::stat::fstat(fd.as_fd()).map_err(|err| open_error(&here, err))?;
                let kind = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
                if kind == SFlag::S_IFLNK {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(SubPathError::TooManyLinks { component: here });
                    }
                    let target = nix::fcntl::readlinkat(parent.as_fd(), component.as_str())
                        .map_err(|err| open_error(&here, err))?;
                    let target = target.to_string_lossy().into_owned();
                    if target.starts_with('/') || target.is_empty() {
                        return Err(SubPathError::SymlinkEscapes { component: here });
                    }
                    let link: Rc<str> = Rc::from(here.as_str());
                    for part in target.split('/').rev() {
                        queue.push_front((part.to_owned(), Some(link.clone())));
                    }
                } else if kind == SFlag::S_IFDIR {
                    stack.push((fd, component));
                } else if queue.iter().any(|(c, _)| !c.is_empty() && c != ".") {
                    return Err(SubPathError::NotADirectory { component: here });
                } else {
                    stack.push((fd, component));
                }
            }
            Err(Errno::ENOENT) if create_mode.is_some() => {
                let mode = create_mode.unwrap_or(0o755);
                let fd = create_dir(parent, &component, mode, &here)?;
                stack.push((fd, component));
            }
            Err(err) => return Err(open_error(&here, err)),
        }
    }
    let (fd, _) = stack
        .pop()
        .ok_or_else(|| SubPathError::OpenRoot(io::Error::other("empty stack")))?;
    let stat = nix::sys::stat::fstat(fd.as_fd()).map_err(|err| open_error(sub_path, err))?;
    let is_dir = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR;
    Ok(OpenedSubPath { fd, is_dir })
}

/// Creates `name` in `parent` and opens it without following a symlink swapped in meanwhile.
fn create_dir(
    parent: &OwnedFd,
    name: &str,
    mode: u32,
    here: &str,
) -> Result<OwnedFd, SubPathError> {
    let created =
        match nix::sys::stat::mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(mode)) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(err) => {
                return Err(SubPathError::CreateDir {
                    component: here.to_owned(),
                    source: err.into(),
                });
            }
        };
    let fd = nix::fcntl::openat(
        parent.as_fd(),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|err| open_error(here, err))?;
    if created {
        // mkdirat applied the umask; the volume root's mode is what the directory must have.
        nix::sys::stat::fchmod(fd.as_fd(), Mode::from_bits_truncate(mode)).map_err(|err| {
            SubPathError::CreateDir {
                component: here.to_owned(),
                source: err.into(),
            }
        })?;
    }
    Ok(fd)
}

fn describe(stack: &[(OwnedFd, String)], component: &str) -> String {
    let mut parts: Vec<&str> = stack[1..].iter().map(|(_, name)| name.as_str()).collect();
    parts.push(component);
    parts.join("/")
}

fn open_error(component: &str, err: Errno) -> SubPathError {
    SubPathError::Open {
        component: component.to_owned(),
        source: err.into(),
    }
}

/// Resolves `sub_path` in `volume_root` (see [`open_sub_path`]) and bind-mounts it onto
/// `target`. A target already showing that file is kept (a container restart); one showing
/// something else is unmounted first.
pub fn bind_sub_path(
    mounter: &dyn Mounter,
    volume_root: &Path,
    sub_path: &str,
    target: &Path,
    create_mode: Option<u32>,
) -> Result<(), SubPathError> {
    let opened = open_sub_path(volume_root, sub_path, create_mode)?;
    let prepare = |source: io::Error| SubPathError::PrepareTarget {
        target: target.to_owned(),
        source,
    };
    let opened_stat =
        nix::sys::stat::fstat(opened.fd.as_fd()).map_err(|err| prepare(err.into()))?;
    for _ in 0..8 {
        let table = mounter.mount_points().map_err(prepare)?;
        let Ok(canonical) = fs::canonicalize(target) else {
            break;
        };
        if !is_mount_point(&table, &canonical) {
            break;
        }
        let meta = fs::symlink_metadata(target).map_err(prepare)?;
        if meta.dev() == opened_stat.st_dev && meta.ino() == opened_stat.st_ino {
            return Ok(());
        }
        mounter.unmount(target).map_err(prepare)?;
    }
    prepare_target(target, opened.is_dir).map_err(prepare)?;
    mounter
        .bind_fd(opened.fd.as_fd(), target)
        .map_err(|source| SubPathError::Bind {
            target: target.to_owned(),
            source,
        })
}

/// A directory (for a directory) or an empty file (for anything else: bind-mounting onto a
/// file works for every non-directory type) at `target`.
fn prepare_target(target: &Path, is_dir: bool) -> io::Result<()> {
    if let Some(parent) = target.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)?;
    }
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() == is_dir => return Ok(()),
        Ok(meta) if meta.is_dir() => fs::remove_dir(target)?,
        Ok(_) => fs::remove_file(target)?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    if is_dir {
        fs::DirBuilder::new().mode(0o750).create(target)
    } else {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(target)
            .map(drop)
    }
}

//! The mount side effects of volumes behind [`Mounter`]: tmpfs mounts, bind mounts from an
//! open file descriptor, unmounts and the mount table. [`HostMounter`] makes the syscalls
//! (mount(2), umount2(2), `/proc/self/mountinfo`); [`RecordingMounter`] records them.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{MntFlags, MsFlags};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Unique mount id.
    pub id: u32,
    /// Parent mount id.
    pub parent_id: u32,
    /// The mount point, unescaped.
    pub mount_point: PathBuf,
    /// Filesystem type (`tmpfs`, `ext4`).
    pub fs_type: String,
    /// Mount source (`tmpfs`, `/dev/vda`).
    pub source: String,
    /// Per-superblock options (`rw,size=1024k`).
    pub super_options: String,
    /// Optional fields (`shared:1`, `master:2`).
    pub optional: Vec<String>,
}

/// Parses the text of `/proc/<pid>/mountinfo`; malformed lines are skipped.
#[must_use]
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let (head, tail) = line.split_once(" - ")?;
    let mut fields = head.split(' ');
    let id = fields.next()?.parse().ok()?;
    let parent_id = fields.next()?.parse().ok()?;
    let _major_minor = fields.next()?;
    let _root = fields.next()?;
    let mount_point = PathBuf::from(unescape_octal(fields.next()?));
    let _options = fields.next()?;
    let optional = fields
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    let mut tail = tail.split(' ');
    let fs_type = tail.next()?.to_owned();
    let source = unescape_octal(tail.next().unwrap_or_default());
    let super_options = tail.next().unwrap_or_default().to_owned();
    Some(MountInfo {
        id,
        parent_id,
        mount_point,
        fs_type,
        source,
        super_options,
        optional,
    })
}

/// Undoes the kernel's `\ooo` escapes of space, tab, newline and backslash.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = u32::from(bytes[i + 1] - b'0') * 64
                + u32::from(bytes[i + 2] - b'0') * 8
                + u32::from(bytes[i + 3] - b'0');
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount operations of volumes.
pub trait Mounter: Send + Sync + fmt::Debug {
    /// Mounts a new tmpfs at `target`, limited to `size_bytes` when given.
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<u64>) -> io::Result<()>;
    /// Bind-mounts the file or directory open as `source` onto `target` (through
    /// `/proc/self/fd/N`, so that no path is resolved again) and checks that `target` now
    /// shows that very file.
    fn bind_fd(&self, source: BorrowedFd<'_>, target: &Path) -> io::Result<()>;
    /// Unmounts the topmost mount at `target`.
    fn unmount(&self, target: &Path) -> io::Result<()>;
    /// The current mount table.
    fn mount_points(&self) -> io::Result<Vec<MountInfo>>;
    /// Makes `path` a shared mount with shared sub-mounts (`mount --make-rshared`), bind
    /// mounting it onto itself first when it is not a mount point.
    fn make_rshared(&self, path: &Path) -> io::Result<()>;
}

/// [`Mounter`] making the real syscalls (needs `CAP_SYS_ADMIN`).
#[derive(Debug, Default, Clone, Copy)]
pub struct HostMounter;

impl Mounter for HostMounter {
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<u64>) -> io::Result<()> {
        let options = size_bytes.map(|size| format!("size={size}"));
        nix::mount::mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            MsFlags::empty(),
            options.as_deref(),
        )?;
        Ok(())
    }

    fn bind_fd(&self, source: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
        let proc_path = format!("/proc/self/fd/{}", source.as_raw_fd());
        nix::mount::mount(
            Some(proc_path.as_str()),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        // Defense in depth: what is now mounted at `target` must be the opened file.
        let opened = nix::sys::stat::fstat(source)?;
        let mounted = std::fs::symlink_metadata(target)?;
        if mounted.dev() != opened.st_dev || mounted.ino() != opened.st_ino {
            let _ = nix::mount::umount2(target, MntFlags::MNT_DETACH);
            return Err(io::Error::other(
                "bind mount shows another file than the one opened",
            ));
        }
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        match nix::mount::umount2(target, MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => Ok(()),
            // Still in use (a process has its cwd there): detach it so that the pod can go.
            Err(nix::errno::Errno::EBUSY) => {
                tracing::warn!(target = %target.display(), "mount busy; detaching it");
                nix::mount::umount2(target, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW)?;
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    fn mount_points(&self) -> io::Result<Vec<MountInfo>> {
        Ok(parse_mountinfo(&std::fs::read_to_string(
            "/proc/self/mountinfo",
        )?))
    }

    fn make_rshared(&self, path: &Path) -> io::Result<()> {
        let canonical = std::fs::canonicalize(path)?;
        let table = self.mount_points()?;
        let entry = table.iter().rev().find(|m| m.mount_point == canonical);
        if let Some(entry) = entry
            && entry.optional.iter().any(|o| o.starts_with("shared:"))
        {
            return Ok(());
        }
        if entry.is_none() {
            nix::mount::mount(
                Some(&canonical),
                &canonical,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
        }
        nix::mount::mount(
            None::<&str>,
            &canonical,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )?;
        Ok(())
    }
}

/// A mount call [`RecordingMounter`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountCall {
    Tmpfs {
        target: PathBuf,
        size_bytes: Option<u64>,
    },
    Bind {
        target: PathBuf,
    },
    Unmount {
        target: PathBuf,
    },
    MakeRShared {
        path: PathBuf,
    },
}

/// [`Mounter`] that mounts nothing: it records calls and keeps a mount table of its own, so
/// that volume logic can be tested without privileges.
#[derive(Debug, Default)]
pub struct RecordingMounter {
    state: Mutex<(Vec<MountCall>, Vec<MountInfo>)>,
}

impl RecordingMounter {
    /// A mounter with an empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The calls made so far.
    #[must_use]
    pub fn calls(&self) -> Vec<MountCall> {
        self.lock().0.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<MountCall>, Vec<MountInfo>)> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, call: MountCall, target: &Path, fs_type: &str) -> io::Result<()> {
        let mount_point = std::fs::canonicalize(target)?;
        let mut state = self.lock();
        let id = u32::try_from(state.1.len()).unwrap_or(u32::MAX) + 1000;
        state.0.push(call);
        state.1.push(MountInfo {
            id,
            parent_id: 1,
            mount_point,
            fs_type: fs_type.to_owned(),
            source: fs_type.to_owned(),
            super_options: String::new(),
            optional: Vec::new(),
        });
        Ok(())
    }
}

impl Mounter for RecordingMounter {
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<u64>) -> io::Result<()> {
        let call = MountCall::Tmpfs {
            target: target.to_owned(),
            size_bytes,
        };
        self.add(call, target, "tmpfs")
    }

    fn bind_fd(&self, _source: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
        let call = MountCall::Bind {
            target: target.to_owned(),
        };
        self.add(call, target, "bind")
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        let canonical = std::fs::canonicalize(target)?;
        let mut state = self.lock();
        state.0.push(MountCall::Unmount {
            target: target.to_owned(),
        });
        let Some(index) = state.1.iter().rposition(|m| m.mount_point == canonical) else {
            return Err(io::Error::from_raw_os_error(nix::libc::EINVAL));
        };
        state.1.remove(index);
        Ok(())
    }

    fn mount_points(&self) -> io::Result<Vec<MountInfo>> {
        Ok(self.lock().1.clone())
    }

    fn make_rshared(&self, path: &Path) -> io::Result<()> {
        self.lock().0.push(MountCall::MakeRShared {
            path: path.to_owned(),
        });
        Ok(())
    }
}

/// Whether `path` (canonical) is a mount point in `table`.
#[must_use]
pub fn is_mount_point(table: &[MountInfo], path: &Path) -> bool {
    table.iter().any(|m| m.mount_point == path)
}

/// The mounts in `table` strictly below or at `dir` (canonical), deepest first, the most
/// recent first among mounts stacked on one path: the order to unmount them in.
#[must_use]
pub fn mounts_below(table: &[MountInfo], dir: &Path) -> Vec<MountInfo> {
    let mut below: Vec<MountInfo> = table
        .iter()
        .filter(|m| m.mount_point.starts_with(dir))
        .cloned()
        .collect();
    below.sort_by(|a, b| {
        let depth = |m: &MountInfo| m.mount_point.components().count();
        depth(b).cmp(&depth(a)).then(b.id.cmp(&a.id))
    });
    below
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_with_escapes_and_optional_fields() {
        let text = "36 35 98:0 /mnt1 /mnt\\040with\\040space rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n\
                    43 27 0:39 / /tmp/mt rw,relatime - tmpfs tmpfs rw,size=1024k\n\
                    garbage\n";
        let table = parse_mountinfo(text);
        assert_eq!(table.len(), 2);
        assert_eq!(table[0].mount_point, Path::new("/mnt with space"));
        assert_eq!(table[0].optional, vec!["master:1", "shared:7"]);
        assert_eq!(table[0].fs_type, "ext3");
        assert_eq!(table[1].fs_type, "tmpfs");
        assert_eq!(table[1].super_options, "rw,size=1024k");
        assert!(is_mount_point(&table, Path::new("/tmp/mt")));
    }

    #[test]
    fn mounts_below_sorts_deepest_and_newest_first() {
        let m = |id, p: &str| MountInfo {
            id,
            parent_id: 1,
            mount_point: p.into(),
            fs_type: "tmpfs".into(),
            source: "tmpfs".into(),
            super_options: String::new(),
            optional: vec![],
        };
        let table = vec![
            m(1, "/a"),
            m(2, "/a/b"),
            m(3, "/a/b/c"),
            m(4, "/a/b"),
            m(5, "/ab"),
        ];
        let ids: Vec<u32> = mounts_below(&table, Path::new("/a/b"))
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, vec![3, 4, 2]);
    }
}

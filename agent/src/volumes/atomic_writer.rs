//! The kubelet's atomic writer (`pkg/volume/util/atomic_writer.go`): projects a set of files
//! into a volume so that a reader sees either the old or the new set, never a mix.
//!
//! Files live in a hidden timestamped directory (`..2024_01_02_03_04_05.123456789`); the
//! symlink `..data` points at it and the user-visible names are symlinks `key -> ..data/key`.
//! An update writes a new timestamped directory, points a temporary symlink `..data_tmp` at it
//! and renames that over `..data` (rename(2) is atomic), then removes names that are gone and
//! the old directory. Names starting with `..` are reserved. The writer is not safe for
//! concurrent writes to one directory; the volume manager serialises them per pod.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::SetUpError;

/// The symlink to the current timestamped directory.
pub const DATA_DIR_NAME: &str = "..data";
/// The symlink renamed over [`DATA_DIR_NAME`].
pub const NEW_DATA_DIR_NAME: &str = "..data_tmp";

const MAX_FILE_NAME_LENGTH: usize = 255;
const MAX_PATH_LENGTH: usize = 4096;

/// The content and mode of one projected file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    /// Permission bits (`0o644`).
    pub mode: u32,
}

/// Relative path -> file.
pub type Payload = BTreeMap<String, FileProjection>;

/// Writes payloads into one target directory.
#[derive(Debug, Clone)]
pub struct AtomicWriter {
    target_dir: PathBuf,
}

/// Applies ownership to the whole volume after new files were written and before they become
/// visible (fsGroup).
pub type SetPerms<'a> = &'a dyn Fn(&Path) -> io::Result<()>;

impl AtomicWriter {
    /// A writer into `target_dir`, which must exist.
    #[must_use]
    pub fn new(target_dir: impl Into<PathBuf>) -> Self {
        AtomicWriter {
            target_dir: target_dir.into(),
        }
    }

    /// Projects `payload`. Returns whether `..data` was swapped: nothing is written when the
    /// current files already have the payload's content and names.
    pub fn write(
        &self,
        payload: &Payload,
        set_perms: Option<SetPerms<'_>>,
    ) -> Result<bool, SetUpError> {
        let payload = validate_payload(payload)?;
        let data_dir = self.target_dir.join(DATA_DIR_NAME);
        let old_ts = match fs::read_link(&data_dir) {
            Ok(target) => Some(target),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(SetUpError::io("read data directory link", &data_dir, err)),
        };
        let old_files = match &old_ts {
            Some(ts) => list_files(&self.target_dir.join(ts)).map_err(|err| {
                SetUpError::io("walk data directory", self.target_dir.join(ts), err)
            })?,
            None => BTreeSet::new(),
        };

        if let Some(ts) = &old_ts
            && !should_write(&payload, &old_files, &self.target_dir.join(ts))?
        {
            self.create_user_visible_files(&payload)?;
            return Ok(false);
        }

        let ts_dir = self.new_timestamp_dir()?;
        let ts_name = ts_dir.file_name().map(PathBuf::from).unwrap_or_default();
        if let Err(err) = write_payload_to_dir(&payload, &ts_dir) {
            let _ = fs::remove_dir_all(&ts_dir);
            return Err(err);
        }
        if let Some(set_perms) = set_perms
            && let Err(err) = set_perms(&self.target_dir)
        {
            let _ = fs::remove_dir_all(&ts_dir);
            return Err(SetUpError::io(
                "set volume ownership",
                &self.target_dir,
                err,
            ));
        }
        self.create_user_visible_files(&payload)?;

        let new_data_dir = self.target_dir.join(NEW_DATA_DIR_NAME);
        let _ = fs::remove_file(&new_data_dir);
        if let Err(err) = std::os::unix::fs::symlink(&ts_name, &new_data_dir) {
            let _ = fs::remove_dir_all(&ts_dir);
            return Err(SetUpError::io(
                "create data directory link",
                &new_data_dir,
                err,
            ));
        }
        if let Err(err) = fs::rename(&new_data_dir, &data_dir) {
            let _ = fs::remove_file(&new_data_dir);
            let _ = fs::remove_dir_all(&ts_dir);
            return Err(SetUpError::io("swap data directory link", &data_dir, err));
        }

        // Names that were in the old payload and are not in the new one.
        let new_top: BTreeSet<&str> = payload.keys().map(|p| top_level(p)).collect();
        let old_top: BTreeSet<&str> = old_files.iter().map(|p| top_level(p)).collect();
        for gone in old_top.difference(&new_top) {
            let visible = self.target_dir.join(gone);
            if fs::symlink_metadata(&visible).is_ok_and(|m| m.file_type().is_symlink()) {
                fs::remove_file(&visible)
                    .map_err(|err| SetUpError::io("remove old user-visible path", &visible, err))?;
            }
        }
        self.remove_stale_timestamp_dirs(&ts_name)?;
        Ok(true)
    }

    fn new_timestamp_dir(&self) -> Result<PathBuf, SetUpError> {
        let now = jiff::Timestamp::now();
        let stamp = now.strftime("%Y_%m_%d_%H_%M_%S").to_string();
        let mut suffix = now.subsec_nanosecond().unsigned_abs();
        loop {
            let dir = self.target_dir.join(format!("..{stamp}.{suffix:09}"));
            match fs::DirBuilder::new().mode(0o755).create(&dir) {
                Ok(()) => {
                    // The umask may have narrowed the mode: group and others must traverse it.
                    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                        .map_err(|err| SetUpError::io("set mode of data directory", &dir, err))?;
                    return Ok(dir);
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    suffix = (suffix + 1) % 1_000_000_000;
                }
                Err(err) => return Err(SetUpError::io("create data directory", &dir, err)),
            }
        }
    }

    /// `name -> ..data/name` for every top-level name of the payload.
    fn create_user_visible_files(&self, payload: &Payload) -> Result<(), SetUpError> {
        let names: BTreeSet<&str> = payload.keys().map(|p| top_level(p)).collect();
        for name in names {
            let visible = self.target_dir.join(name);
            match fs::symlink_metadata(&visible) {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    std::os::unix::fs::symlink(Path::new(DATA_DIR_NAME).join(name), &visible)
                        .map_err(|err| SetUpError::io("create user-visible link", &visible, err))?;
                }
                Err(err) => return Err(SetUpError::io("inspect user-visible path", &visible, err)),
            }
        }
        Ok(())
    }

    /// Removes timestamped directories other than `current` (the previous one, and any left
    /// by an interrupted write).
    fn remove_stale_timestamp_dirs(&self, current: &Path) -> Result<(), SetUpError> {
        let entries = fs::read_dir(&self.target_dir)
            .map_err(|err| SetUpError::io("read volume directory", &self.target_dir, err))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name_str = name.to_string_lossy();
            let is_ts = name_str.starts_with("..")
                && name_str[2..].starts_with(|c: char| c.is_ascii_digit());
            if is_ts && Path::new(&name) != current {
                let path = entry.path();
                fs::remove_dir_all(&path)
                    .map_err(|err| SetUpError::io("remove old data directory", &path, err))?;
            }
        }
        Ok(())
    }
}

/// Whether `payload` differs from the files in `old_dir` (names or content; modes are
/// immutable in the pod spec, and fsGroup changes them on disk).
fn should_write(
    payload: &Payload,
    old_files: &BTreeSet<String>,
    old_dir: &Path,
) -> Result<bool, SetUpError> {
    if old_files.len() != payload.len() || payload.keys().any(|k| !old_files.contains(k)) {
        return Ok(true);
    }
    for (path, file) in payload {
        let old = old_dir.join(path);
        let content =
            fs::read(&old).map_err(|err| SetUpError::io("read projected file", &old, err))?;
        if content != file.data {
            return Ok(true);
        }
    }
    Ok(false)
}

fn top_level(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// Checks every path as the kubelet does and returns the payload with cleaned paths.
fn validate_payload(payload: &Payload) -> Result<Payload, SetUpError> {
    let mut clean = Payload::new();
    for (path, file) in payload {
        clean.insert(validate_path(path)?, file.clone());
    }
    Ok(clean)
}

/// A payload path must be relative, without `..` elements, not start with `..`, with names of
/// at most 255 and a whole of at most 4096 characters. Returns the cleaned path.
pub fn validate_path(path: &str) -> Result<String, SetUpError> {
    let invalid = |reason| SetUpError::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if path.starts_with('/') {
        return Err(invalid("must be relative path"));
    }
    if path.len() > MAX_PATH_LENGTH {
        return Err(invalid("must be less than or equal to 4096 characters"));
    }
    let items: Vec<&str> = path.split('/').collect();
    for item in &items {
        if *item == ".." {
            return Err(invalid("must not contain '..'"));
        }
        if item.len() > MAX_FILE_NAME_LENGTH {
            return Err(invalid(
                "filenames must be less than or equal to 255 characters",
            ));
        }
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return Err(invalid("must not start with '..'"));
    }
    let cleaned: Vec<&str> = items
        .into_iter()
        .filter(|i| !i.is_empty() && *i != ".")
        .collect();
    if cleaned.is_empty() {
        return Err(invalid("must name a file"));
    }
    Ok(cleaned.join("/"))
}

fn write_payload_to_dir(payload: &Payload, dir: &Path) -> Result<(), SetUpError> {
    for (path, file) in payload {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|err| SetUpError::io("create directory", parent, err))?;
        }
        let mode = file.mode & 0o7777;
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&full)
            .map_err(|err| SetUpError::io("create file", &full, err))?;
        out.write_all(&file.data)
            .map_err(|err| SetUpError::io("write file", &full, err))?;
        // The umask narrowed the mode of open(2); the payload's mode is what counts.
        fs::set_permissions(&full, fs::Permissions::from_mode(mode))
            .map_err(|err| SetUpError::io("set file mode", &full, err))?;
    }
    Ok(())
}

/// Relative paths of the files (not directories) below `dir`, not following symlinks.
fn list_files(dir: &Path) -> io::Result<BTreeSet<String>> {
    fn walk(base: &Path, rel: &str, out: &mut BTreeSet<String>) -> io::Result<()> {
        for entry in fs::read_dir(base.join(rel))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if entry.file_type()?.is_dir() {
                walk(base, &child, out)?;
            } else {
                out.insert(child);
            }
        }
        Ok(())
    }
    let mut out = BTreeSet::new();
    match walk(dir, "", &mut out) {
        Ok(()) => Ok(out),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_paths_like_the_kubelet() {
        assert_eq!(validate_path("a/./b//c").unwrap(), "a/b/c");
        assert!(validate_path("..a-file-reserved/x").is_err());
        assert!(validate_path("x/..y").is_ok());
        assert!(validate_path("/abs").is_err());
        assert!(validate_path("a/../b").is_err());
        assert!(validate_path("..data").is_err());
        assert!(validate_path("").is_err());
        assert!(validate_path(&"a".repeat(256)).is_err());
    }
}

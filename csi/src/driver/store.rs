//! The hostpath driver's volumes: one directory each under `<state>/volumes/<id>/data`, with
//! its record (`volume.json`: name, capacity, whether it is an inline ephemeral volume).
//! Capacity is accounted, not enforced: the sum of the volumes' capacities stays within the
//! driver's `--capacity`, and `NodeGetVolumeStats` reports the usage against each one's size.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The size of a volume created without a capacity range.
pub const DEFAULT_VOLUME_BYTES: u64 = 100 * 1024 * 1024;

/// A failed volume operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("volume id {0:?} is not a valid path component")]
    InvalidId(String),
    #[error("volume {0} not found")]
    NotFound(String),
    #[error("volume {name} exists with capacity {existing} bytes, outside the requested range")]
    Conflict { name: String, existing: u64 },
    #[error("capacity range is invalid: required {required} bytes exceeds limit {limit} bytes")]
    InvalidRange { required: u64, limit: u64 },
    #[error("not enough capacity: {requested} bytes requested, {available} bytes available")]
    Exhausted { requested: u64, available: u64 },
    #[error("{step} {}: {source}", path.display())]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    fn io<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
        move |source| StoreError::Io {
            step,
            path: path.to_owned(),
            source,
        }
    }
}

impl From<StoreError> for tonic::Status {
    fn from(err: StoreError) -> Self {
        let message = err.to_string();
        match err {
            StoreError::InvalidId(_) | StoreError::InvalidRange { .. } => {
                tonic::Status::invalid_argument(message)
            }
            StoreError::NotFound(_) => tonic::Status::not_found(message),
            StoreError::Conflict { .. } => tonic::Status::already_exists(message),
            StoreError::Exhausted { .. } => tonic::Status::resource_exhausted(message),
            StoreError::Io { .. } => tonic::Status::internal(message),
        }
    }
}

/// One volume's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRecord {
    pub id: String,
    pub name: String,
    pub capacity_bytes: u64,
    /// Created by `NodePublishVolume` for an inline volume; deleted by its unpublish.
    pub ephemeral: bool,
}

/// The volumes of one driver instance.
#[derive(Debug)]
pub struct VolumeStore {
    dir: PathBuf,
    capacity: u64,
    /// Serialises create and delete (capacity accounting).
    lock: Mutex<()>,
}

/// Whether `id` can name a directory.
#[must_use]
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl VolumeStore {
    /// Volumes under `<state_dir>/volumes`, `capacity` bytes in all.
    pub fn open(state_dir: &Path, capacity: u64) -> Result<Self, StoreError> {
        let dir = state_dir.join("volumes");
        fs::create_dir_all(&dir).map_err(StoreError::io("create", &dir))?;
        Ok(VolumeStore {
            dir,
            capacity,
            lock: Mutex::new(()),
        })
    }

    /// The id of the volume created for `name`: stable, so `CreateVolume` is idempotent.
    #[must_use]
    pub fn id_for_name(name: &str) -> String {
        let digest = Sha256::digest(name.as_bytes());
        let hex = digest.iter().take(16).fold(String::new(), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        });
        format!("vol-{hex}")
    }

    fn volume_dir(&self, id: &str) -> Result<PathBuf, StoreError> {
        if valid_id(id) {
            Ok(self.dir.join(id))
        } else {
            Err(StoreError::InvalidId(id.to_owned()))
        }
    }

    /// Where the volume's data lives.
    pub fn data_dir(&self, id: &str) -> Result<PathBuf, StoreError> {
        Ok(self.volume_dir(id)?.join("data"))
    }

    /// The volume `id`, if it exists.
    pub fn get(&self, id: &str) -> Result<Option<VolumeRecord>, StoreError> {
        let path = self.volume_dir(id)?.join("volume.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|err| StoreError::Io {
                    step: "parse",
                    path,
                    source: io::Error::other(err),
                }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(StoreError::io("read", &path)(err)),
        }
    }

    /// Every volume.
    pub fn list(&self) -> Result<Vec<VolumeRecord>, StoreError> {
        let entries = fs::read_dir(&self.dir).map_err(StoreError::io("list", &self.dir))?;
        let mut records = Vec::new();
        for entry in entries.flatten() {
            if let Some(id) = entry.file_name().to_str()
                && let Ok(Some(record)) = self.get(id)
            {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Bytes not yet given to a volume.
    pub fn available(&self) -> Result<u64, StoreError> {
        let used: u64 = self.list()?.iter().map(|r| r.capacity_bytes).sum();
        Ok(self.capacity.saturating_sub(used))
    }

    /// Creates the volume `id` named `name` with a capacity in `[required, limit]` (0: no
    /// bound), or returns the existing one when it fits the range.
    pub fn create(
        &self,
        id: &str,
        name: &str,
        required: u64,
        limit: u64,
        ephemeral: bool,
    ) -> Result<VolumeRecord, StoreError> {
        if limit > 0 && required > limit {
            return Err(StoreError::InvalidRange { required, limit });
        }
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(existing) = self.get(id)? {
            let fits = existing.capacity_bytes >= required
                && (limit == 0 || existing.capacity_bytes <= limit);
            return if fits && existing.name == name {
                Ok(existing)
            } else {
                Err(StoreError::Conflict {
                    name: name.to_owned(),
                    existing: existing.capacity_bytes,
                })
            };
        }
        let capacity = if required > 0 {
            required
        } else if limit > 0 {
            limit.min(DEFAULT_VOLUME_BYTES)
        } else {
            DEFAULT_VOLUME_BYTES
        };
        let available = self.available()?;
        if capacity > available {
            return Err(StoreError::Exhausted {
                requested: capacity,
                available,
            });
        }
        let dir = self.volume_dir(id)?;
        let data = dir.join("data");
        fs::create_dir_all(&data).map_err(StoreError::io("create", &data))?;
        // World-writable like an emptyDir: pods run as any user.
        fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .map_err(StoreError::io("chmod", &data))?;
        let record = VolumeRecord {
            id: id.to_owned(),
            name: name.to_owned(),
            capacity_bytes: capacity,
            ephemeral,
        };
        let path = dir.join("volume.json");
        let tmp = dir.join("volume.json.tmp");
        let bytes = serde_json::to_vec(&record).map_err(|err| StoreError::Io {
            step: "encode",
            path: path.clone(),
            source: io::Error::other(err),
        })?;
        fs::write(&tmp, bytes).map_err(StoreError::io("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(StoreError::io("rename", &path))?;
        Ok(record)
    }

    /// Deletes the volume `id` and its data; a missing volume is not an error.
    pub fn delete(&self, id: &str) -> Result<(), StoreError> {
        let dir = self.volume_dir(id)?;
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The record goes first: a half-deleted volume is then simply not there.
        match fs::remove_file(dir.join("volume.json")) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(StoreError::io("remove", &dir)(err)),
        }
        match remove_tree_same_fs(&dir) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(StoreError::io("remove", &dir)(err)),
        }
    }
}

/// `rm -rf` that refuses to cross into another filesystem (a volume still bind-mounted
/// somewhere below would otherwise lose the data of whatever is mounted there).
fn remove_tree_same_fs(dir: &Path) -> io::Result<()> {
    fn walk(path: &Path, dev: u64) -> io::Result<()> {
        let meta = fs::symlink_metadata(path)?;
        if meta.dev() != dev {
            return Err(io::Error::other(format!(
                "{} is on another filesystem",
                path.display()
            )));
        }
        if meta.is_dir() {
            for entry in fs::read_dir(path)? {
                walk(&entry?.path(), dev)?;
            }
            fs::remove_dir(path)
        } else {
            fs::remove_file(path)
        }
    }
    walk(dir, fs::symlink_metadata(dir)?.dev())
}

/// Bytes and inodes used below `dir` (a `du` that does not cross filesystems).
#[must_use]
pub fn usage(dir: &Path) -> (u64, u64) {
    let Ok(root) = fs::symlink_metadata(dir) else {
        return (0, 0);
    };
    let dev = root.dev();
    let mut bytes = 0;
    let mut inodes = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.dev() != dev {
            continue;
        }
        inodes += 1;
        bytes += meta.blocks() * 512;
        if meta.is_dir()
            && let Ok(entries) = fs::read_dir(&path)
        {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
    (bytes, inodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_is_idempotent_and_capacity_is_accounted() {
        let dir = tempfile::tempdir().unwrap();
        let store = VolumeStore::open(dir.path(), 300).unwrap();
        let id = VolumeStore::id_for_name("pvc-1");
        let made = store.create(&id, "pvc-1", 200, 0, false).unwrap();
        assert_eq!(made.capacity_bytes, 200);
        assert!(store.data_dir(&id).unwrap().is_dir());
        assert_eq!(store.create(&id, "pvc-1", 100, 250, false).unwrap(), made);
        assert!(matches!(
            store.create(&id, "pvc-1", 250, 0, false),
            Err(StoreError::Conflict { .. })
        ));
        let other = VolumeStore::id_for_name("pvc-2");
        assert!(matches!(
            store.create(&other, "pvc-2", 200, 0, false),
            Err(StoreError::Exhausted { available: 100, .. })
        ));
        assert!(matches!(
            store.create(&other, "pvc-2", 20, 10, false),
            Err(StoreError::InvalidRange { .. })
        ));
        store.delete(&id).unwrap();
        assert_eq!(store.get(&id).unwrap(), None);
        assert!(!store.data_dir(&id).unwrap().exists());
        store.delete(&id).unwrap();
        assert_eq!(store.available().unwrap(), 300);
    }

    #[test]
    fn ids_that_are_not_path_components_are_refused() {
        for id in ["", ".", "..", "a/b", "../x", "a b"] {
            assert!(!valid_id(id), "{id:?}");
        }
        assert!(valid_id("csi-0123abcd"));
        assert!(valid_id(&VolumeStore::id_for_name("x")));
    }
}

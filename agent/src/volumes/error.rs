//! The errors of the volume manager. [`VolumeError`] is what the pod worker reports: its
//! `Display` is the text of the kubelet's `FailedMount` / `Failed` events.

use std::io;
use std::path::PathBuf;

use super::sources::SourceError;

/// A failure of the volume manager, naming the volume (and container) it concerns.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The pod has no `metadata.uid`, so it has no directory.
    #[error("pod {pod} has no uid")]
    MissingPodUid { pod: String },
    /// A name that is not a single path component (static pods are not validated).
    #[error("invalid {what} name {name:?} for a path component")]
    InvalidName { what: &'static str, name: String },
    /// Setting up one volume failed: the `FailedMount` event message.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {source}")]
    SetUp {
        volume: String,
        #[source]
        source: SetUpError,
    },
    /// A volumeMount names a volume the pod does not have (or that is not set up).
    #[error("cannot find volume \"{volume}\" to mount into container \"{container}\"")]
    VolumeNotFound { volume: String, container: String },
    /// `mountPropagation` is not one of None, `HostToContainer`, Bidirectional.
    #[error("invalid MountPropagation mode: \"{mode}\"")]
    InvalidPropagation { mode: String },
    /// `subPathExpr` references variables the container does not define.
    #[error(
        "failed to expand subPathExpr \"{expr}\" for volumeMount \"{volume}\" of container \"{container}\": missing value for {missing}"
    )]
    SubPathExpr {
        volume: String,
        container: String,
        expr: String,
        missing: String,
    },
    /// The subPath cannot be resolved safely inside its volume or cannot be bind-mounted.
    #[error(
        "failed to prepare subPath \"{sub_path}\" for volumeMount \"{volume}\" of container \"{container}\": {source}"
    )]
    SubPath {
        volume: String,
        container: String,
        sub_path: String,
        #[source]
        source: SubPathError,
    },
    /// Unmounting or removing the volumes of a pod failed.
    #[error("UnmountVolume.TearDown failed for pod \"{pod_uid}\": {source}")]
    TearDown {
        pod_uid: String,
        #[source]
        source: TearDownError,
    },
    /// Listing the pod directories (reconstruction, orphan cleanup) failed.
    #[error("read pod directories under {path}: {source}")]
    ReadPodsDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Reading the mount table failed.
    #[error("read mount table: {0}")]
    MountTable(#[source] io::Error),
    /// Making the root directory a shared mount failed.
    #[error("make {path} a shared mount: {source}")]
    MakeShared {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why one volume could not be set up; the text follows the kubelet's plugins.
#[derive(Debug, thiserror::Error)]
pub enum SetUpError {
    /// The configMap does not exist and the volume is not optional.
    #[error("configmap \"{name}\" not found")]
    ConfigMapNotFound { name: String },
    /// The secret does not exist and the volume is not optional.
    #[error("secret \"{name}\" not found")]
    SecretNotFound { name: String },
    /// An item names a key the configMap does not have.
    #[error("configmap references non-existent config key: {key}")]
    MissingConfigMapKey { key: String },
    /// An item names a key the secret does not have.
    #[error("references non-existent secret key: {key}")]
    MissingSecretKey { key: String },
    /// The hostPath exists as something else than its `type` says (or not at all).
    #[error("hostPath type check failed: {} is not a {expected}", path.display())]
    HostPathTypeCheck {
        path: PathBuf,
        expected: &'static str,
    },
    /// The hostPath `type` is none of the known ones.
    #[error("{0} is an invalid volume type")]
    InvalidHostPathType(String),
    /// A downward API field cannot be read from the pod.
    #[error("unable to extract field {field}: {reason}")]
    DownwardApi {
        field: String,
        #[source]
        reason: crate::downward::DownwardError,
    },
    /// Fetching a configMap, secret or token from the API failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A file path of the projection is not a clean relative path.
    #[error("invalid path: {reason}: {path}")]
    InvalidPath { path: String, reason: &'static str },
    /// A filesystem step failed.
    #[error("{step} {}: {source}", path.display())]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Mounting the tmpfs of the volume failed.
    #[error("mount tmpfs at {}: {source}", path.display())]
    MountTmpfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The emptyDir medium is not supported (`HugePages`).
    #[error("emptyDir medium \"{0}\" is not supported on this node")]
    UnsupportedMedium(String),
    /// The volume type has no plugin on this node (CSI, persistentVolumeClaim, nfs, ...).
    #[error("volume type {kind} is not supported on this node")]
    Unsupported { kind: String },
    /// Several sources of a projected volume failed (upstream's error aggregate).
    #[error("[{}]", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Multiple(Vec<SetUpError>),
    /// The blocking set-up task could not finish.
    #[error("set-up task failed: {0}")]
    Task(String),
    /// No CSI driver of that name has registered on this node (yet).
    #[error("kubernetes.io/csi: driver name {0} not found in the list of registered CSI drivers")]
    CsiDriverNotRegistered(String),
    /// A CSI call (stage, publish) failed.
    #[error("kubernetes.io/csi: {0}")]
    Csi(#[from] ferrolet_csi::CsiError),
    /// The `PersistentVolumeClaim` does not exist.
    #[error("persistentvolumeclaim \"{name}\" not found")]
    ClaimNotFound { name: String },
    /// The `PersistentVolumeClaim` is not bound to a volume yet.
    #[error("persistentvolumeclaim \"{name}\" is not bound")]
    ClaimNotBound { name: String },
    /// The `PersistentVolume` the claim is bound to does not exist.
    #[error("persistentvolume \"{name}\" not found")]
    PersistentVolumeNotFound { name: String },
    /// The `PersistentVolume` is not a CSI volume.
    #[error(
        "persistentvolume \"{name}\" has no csi source; only CSI volumes are supported on this node"
    )]
    NotCsi { name: String },
}

impl SetUpError {
    /// An I/O failure of `step` on `path`.
    pub(crate) fn io(step: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SetUpError::Io {
            step,
            path: path.into(),
            source,
        }
    }

    /// One error as is, several as an aggregate.
    pub(crate) fn aggregate(mut errors: Vec<SetUpError>) -> Option<SetUpError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(SetUpError::Multiple(errors)),
        }
    }
}

/// Why a subPath could not be prepared. Messages name components relative to the volume,
/// never host paths the container must not learn.
#[derive(Debug, thiserror::Error)]
pub enum SubPathError {
    /// subPath is absolute.
    #[error("must not be an absolute path")]
    Absolute,
    /// subPath contains `..`.
    #[error("must not contain '..'")]
    Backsteps,
    /// A symlink on the way points outside the volume (absolute, or above its root).
    #[error("symlink \"{component}\" points outside the volume")]
    SymlinkEscapes { component: String },
    /// Too many symlinks on the way.
    #[error("too many levels of symbolic links at \"{component}\"")]
    TooManyLinks { component: String },
    /// A component that must be a directory is not one.
    #[error("\"{component}\" is not a directory")]
    NotADirectory { component: String },
    /// Opening a component failed.
    #[error("open \"{component}\": {source}")]
    Open {
        component: String,
        #[source]
        source: io::Error,
    },
    /// Creating a missing directory failed.
    #[error("create directory \"{component}\": {source}")]
    CreateDir {
        component: String,
        #[source]
        source: io::Error,
    },
    /// Opening the volume root failed.
    #[error("open volume root: {0}")]
    OpenRoot(#[source] io::Error),
    /// Creating the bind-mount target under volume-subpaths failed.
    #[error("prepare bind target {}: {source}", target.display())]
    PrepareTarget {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The bind mount failed (or showed something else than the opened file).
    #[error("bind mount onto {}: {source}", target.display())]
    Bind {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why a pod's volumes could not be torn down.
#[derive(Debug, thiserror::Error)]
pub enum TearDownError {
    /// Unmounting a mount point below the pod directory failed.
    #[error("unmount {}: {source}", path.display())]
    Unmount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Something is still mounted below a directory that was to be removed.
    #[error("{} is still mounted", path.display())]
    StillMounted { path: PathBuf },
    /// The directory holds another filesystem (removal never crosses filesystems).
    #[error("{} is on another filesystem; not removing", path.display())]
    CrossesFilesystem { path: PathBuf },
    /// Removing a file or directory failed.
    #[error("remove {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Reading the mount table failed.
    #[error("read mount table: {0}")]
    MountTable(#[source] io::Error),
    /// The blocking teardown task could not finish.
    #[error("teardown task failed: {0}")]
    Task(String),
    /// The CSI driver of a published volume is not registered (it will be retried).
    #[error("kubernetes.io/csi: driver name {0} not found in the list of registered CSI drivers")]
    CsiDriverNotRegistered(String),
    /// A CSI call (unpublish, unstage) failed.
    #[error("kubernetes.io/csi: {0}")]
    Csi(#[from] ferrolet_csi::CsiError),
    /// The record of a published CSI volume is unreadable.
    #[error("read {}: {reason}", path.display())]
    CsiRecord { path: PathBuf, reason: String },
}

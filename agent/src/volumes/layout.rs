//! Where volumes live on disk, as the kubelet lays them out under its root directory:
//! `<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>` for volume contents,
//! `<root>/pods/<uid>/volume-subpaths/<volume>/<container>/<index>` for subPath bind mounts and
//! `<root>/pods/<uid>/plugins/kubernetes.io~<plugin>/<name>` for plugin metadata.

use std::path::{Path, PathBuf};

/// `<root>/pods`.
pub const PODS_DIR: &str = "pods";
/// `<pod>/volumes`.
pub const VOLUMES_DIR: &str = "volumes";
/// `<pod>/volume-subpaths`.
pub const VOLUME_SUBPATHS_DIR: &str = "volume-subpaths";
/// `<pod>/plugins`.
pub const PLUGINS_DIR: &str = "plugins";

/// The in-tree volume plugins ferrolet implements, named as the kubelet names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VolumePlugin {
    /// `kubernetes.io/empty-dir`.
    EmptyDir,
    /// `kubernetes.io/host-path` (used in place: nothing under the pod directory).
    HostPath,
    /// `kubernetes.io/configmap`.
    ConfigMap,
    /// `kubernetes.io/secret` (on a tmpfs).
    Secret,
    /// `kubernetes.io/downward-api` (on a tmpfs).
    DownwardApi,
    /// `kubernetes.io/projected` (on a tmpfs).
    Projected,
    /// `kubernetes.io/csi`: published by a CSI driver onto `<volume dir>/mount`.
    Csi,
}

impl VolumePlugin {
    /// Every plugin.
    pub const ALL: [VolumePlugin; 7] = [
        VolumePlugin::EmptyDir,
        VolumePlugin::HostPath,
        VolumePlugin::ConfigMap,
        VolumePlugin::Secret,
        VolumePlugin::DownwardApi,
        VolumePlugin::Projected,
        VolumePlugin::Csi,
    ];

    /// The plugin name (`kubernetes.io/empty-dir`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            VolumePlugin::EmptyDir => "kubernetes.io/empty-dir",
            VolumePlugin::HostPath => "kubernetes.io/host-path",
            VolumePlugin::ConfigMap => "kubernetes.io/configmap",
            VolumePlugin::Secret => "kubernetes.io/secret",
            VolumePlugin::DownwardApi => "kubernetes.io/downward-api",
            VolumePlugin::Projected => "kubernetes.io/projected",
            VolumePlugin::Csi => "kubernetes.io/csi",
        }
    }

    /// The plugin name escaped for disk (`kubernetes.io~empty-dir`).
    #[must_use]
    pub fn dir_name(self) -> &'static str {
        match self {
            VolumePlugin::EmptyDir => "kubernetes.io~empty-dir",
            VolumePlugin::HostPath => "kubernetes.io~host-path",
            VolumePlugin::ConfigMap => "kubernetes.io~configmap",
            VolumePlugin::Secret => "kubernetes.io~secret",
            VolumePlugin::DownwardApi => "kubernetes.io~downward-api",
            VolumePlugin::Projected => "kubernetes.io~projected",
            VolumePlugin::Csi => "kubernetes.io~csi",
        }
    }

    /// The plugin whose on-disk directory is `dir_name`.
    #[must_use]
    pub fn from_dir_name(dir_name: &str) -> Option<VolumePlugin> {
        VolumePlugin::ALL
            .into_iter()
            .find(|p| p.dir_name() == dir_name)
    }

    /// Whether the kubelet forces containers to mount this volume read-only
    /// (`GetAttributes().ReadOnly`): the API owns the contents.
    #[must_use]
    pub fn forces_read_only(self) -> bool {
        matches!(
            self,
            VolumePlugin::ConfigMap
                | VolumePlugin::Secret
                | VolumePlugin::DownwardApi
                | VolumePlugin::Projected
        )
    }

    /// Whether the kubelet manages the volume's contents (and so asks the runtime to relabel
    /// it for `SELinux`); a hostPath belongs to the host, a CSI volume to its driver.
    #[must_use]
    pub fn managed(self) -> bool {
        !matches!(self, VolumePlugin::HostPath | VolumePlugin::Csi)
    }

    /// Whether the contents are written by the atomic writer (and refreshed).
    #[must_use]
    pub fn projects_api_data(self) -> bool {
        self.forces_read_only()
    }

    /// Whether the volume is a tmpfs of its own, whatever its spec says (the kubelet wraps
    /// these in a memory-backed emptyDir so that secrets never touch the disk).
    #[must_use]
    pub fn always_tmpfs(self) -> bool {
        matches!(
            self,
            VolumePlugin::Secret | VolumePlugin::DownwardApi | VolumePlugin::Projected
        )
    }
}

/// Paths under the agent's root directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root` (`/var/lib/ferrolet`).
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// The root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/pods`.
    #[must_use]
    pub fn pods_dir(&self) -> PathBuf {
        self.root.join(PODS_DIR)
    }

    /// `<root>/pods/<uid>`.
    #[must_use]
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods_dir().join(uid)
    }

    /// `<root>/pods/<uid>/volumes`.
    #[must_use]
    pub fn pod_volumes_dir(&self, uid: &str) -> PathBuf {
        self.pod_dir(uid).join(VOLUMES_DIR)
    }

    /// `<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`.
    #[must_use]
    pub fn volume_dir(&self, uid: &str, plugin: VolumePlugin, name: &str) -> PathBuf {
        self.pod_volumes_dir(uid).join(plugin.dir_name()).join(name)
    }

    /// `<root>/pods/<uid>/plugins/kubernetes.io~<plugin>/<name>`: plugin metadata such as the
    /// emptyDir `ready` marker.
    #[must_use]
    pub fn plugin_meta_dir(&self, uid: &str, plugin: VolumePlugin, name: &str) -> PathBuf {
        self.pod_dir(uid)
            .join(PLUGINS_DIR)
            .join(plugin.dir_name())
            .join(name)
    }

    /// `<root>/plugins/kubernetes.io/csi/<driver>/<sha256 of the volume handle>/globalmount`:
    /// where a CSI volume is staged once for every pod of the node that uses it.
    #[must_use]
    pub fn csi_global_mount(&self, driver: &str, volume_handle: &str) -> PathBuf {
        self.csi_volume_dir(driver, volume_handle)
            .join("globalmount")
    }

    /// `<root>/plugins/kubernetes.io/csi/<driver>/<sha256 of the volume handle>`.
    #[must_use]
    pub fn csi_volume_dir(&self, driver: &str, volume_handle: &str) -> PathBuf {
        let hex = sha256_hex(volume_handle);
        self.root
            .join(PLUGINS_DIR)
            .join("kubernetes.io")
            .join("csi")
            .join(driver)
            .join(hex)
    }

    /// `<root>/pods/<uid>/volume-subpaths`.
    #[must_use]
    pub fn pod_subpaths_dir(&self, uid: &str) -> PathBuf {
        self.pod_dir(uid).join(VOLUME_SUBPATHS_DIR)
    }

    /// `<root>/pods/<uid>/volume-subpaths/<volume>/<container>/<index>`: where the subPath of
    /// the `index`th volumeMount of `container` is bind-mounted.
    #[must_use]
    pub fn subpath_target(
        &self,
        uid: &str,
        volume: &str,
        container: &str,
        index: usize,
    ) -> PathBuf {
        self.pod_subpaths_dir(uid)
            .join(volume)
            .join(container)
            .join(index.to_string())
    }
}

/// The SHA-256 of `text` in lowercase hex, as the kubelet names CSI directories.
#[must_use]
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .fold(String::new(), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// Whether `name` can be used as one path component (a pod UID, volume or container name):
/// not empty, not `.` or `..`, without `/` or NUL. API validation guarantees this for objects
/// from the API server; static pods are checked here.
#[must_use]
pub fn is_safe_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

//! [`VolumeManager`]: sets up the volumes of a pod before its sandbox starts, keeps projected
//! contents current, and tears everything down when the pod is gone, also across agent
//! restarts (`pkg/kubelet/volumemanager`, without the reconciler loop: the pod worker calls in).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::error::{SetUpError, VolumeError};
use super::layout::{Layout, VolumePlugin, is_safe_component};
use super::mounter::{HostMounter, Mounter};
use super::ownership::{FsGroup, FsGroupChangePolicy};
use super::plugins::{self, Medium};
use super::pod_volumes::{MountedVolume, PodVolumes};
use super::projection::{self, DEFAULT_MODE, ProjectionContext};
use super::sources::VolumeSources;
use super::teardown::tear_down_dir;
use super::token::TokenCache;
use crate::node::host::parse_meminfo;
use crate::quantity::Quantity;

/// The clock tokens are aged by.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Sets up and tears down the volumes of the pods on this node.
pub struct VolumeManager {
    pub(super) layout: Layout,
    pub(super) sources: Arc<dyn VolumeSources>,
    pub(super) mounter: Arc<dyn Mounter>,
    pub(super) tokens: TokenCache,
    pub(super) node_allocatable: BTreeMap<String, ApiQuantity>,
    pub(super) clock: Clock,
    /// The CSI drivers registered on the node (none: CSI volumes fail to mount).
    pub(super) csi: Option<Arc<crate::csi::CsiDrivers>>,
    /// Serialises set-up, refresh and teardown of one pod (the atomic writer needs it).
    pub(super) pod_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for VolumeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeManager")
            .field("root", &self.layout.root())
            .field("mounter", &self.mounter)
            .finish_non_exhaustive()
    }
}

/// The plugin of a volume and what it needs.
enum VolumeKind<'a> {
    EmptyDir(&'a k8s_openapi::api::core::v1::EmptyDirVolumeSource),
    HostPath(&'a k8s_openapi::api::core::v1::HostPathVolumeSource),
    ConfigMap(&'a k8s_openapi::api::core::v1::ConfigMapVolumeSource),
    Secret(&'a k8s_openapi::api::core::v1::SecretVolumeSource),
    DownwardApi(&'a k8s_openapi::api::core::v1::DownwardAPIVolumeSource),
    Projected(&'a k8s_openapi::api::core::v1::ProjectedVolumeSource),
    Csi(&'a k8s_openapi::api::core::v1::CSIVolumeSource),
    Claim(&'a k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource),
}

impl VolumeKind<'_> {
    fn plugin(&self) -> VolumePlugin {
        match self {
            VolumeKind::EmptyDir(_) => VolumePlugin::EmptyDir,
            VolumeKind::HostPath(_) => VolumePlugin::HostPath,
            VolumeKind::ConfigMap(_) => VolumePlugin::ConfigMap,
            VolumeKind::Secret(_) => VolumePlugin::Secret,
            VolumeKind::DownwardApi(_) => VolumePlugin::DownwardApi,
            VolumeKind::Projected(_) => VolumePlugin::Projected,
            VolumeKind::Csi(_) | VolumeKind::Claim(_) => VolumePlugin::Csi,
        }
    }
}

fn classify(volume: &Volume) -> Result<VolumeKind<'_>, SetUpError> {
    if let Some(s) = &volume.empty_dir {
        Ok(VolumeKind::EmptyDir(s))
    } else if let Some(s) = &volume.host_path {
        Ok(VolumeKind::HostPath(s))
    } else if let Some(s) = &volume.config_map {
        Ok(VolumeKind::ConfigMap(s))
    } else if let Some(s) = &volume.secret {
        Ok(VolumeKind::Secret(s))
    } else if let Some(s) = &volume.downward_api {
        Ok(VolumeKind::DownwardApi(s))
    } else if let Some(s) = &volume.projected {
        Ok(VolumeKind::Projected(s))
    } else if let Some(s) = &volume.csi {
        Ok(VolumeKind::Csi(s))
    } else if let Some(s) = &volume.persistent_volume_claim {
        Ok(VolumeKind::Claim(s))
    } else {
        // Name the source the way the pod spec does (persistentVolumeClaim, csi, nfs, ...).
        let kind = serde_json::to_value(volume)
            .ok()
            .and_then(|v| v.as_object()?.keys().find(|k| *k != "name").cloned())
            .unwrap_or_else(|| "unknown".to_owned());
        Err(SetUpError::Unsupported { kind })
    }
}

/// Runs blocking filesystem work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SetUpError> + Send + 'static,
) -> Result<T, SetUpError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| SetUpError::Task(err.to_string()))?
}

/// The pod's `spec.volumes`.
fn spec_volumes(pod: &Pod) -> impl Iterator<Item = &Volume> {
    pod.spec
        .iter()
        .flat_map(|spec| spec.volumes.iter().flatten())
}

fn pod_uid(pod: &Pod) -> Result<String, VolumeError> {
    let uid = pod
        .metadata
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| VolumeError::MissingPodUid {
            pod: format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default()
            ),
        })?;
    check_name("pod uid", &uid)?;
    Ok(uid)
}

fn check_name(what: &'static str, name: &str) -> Result<(), VolumeError> {
    if is_safe_component(name) {
        Ok(())
    } else {
        Err(VolumeError::InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

fn fs_group(pod: &Pod) -> Option<FsGroup> {
    let context = pod.spec.as_ref()?.security_context.as_ref()?;
    Some(FsGroup {
        gid: u32::try_from(context.fs_group?).ok()?,
        policy: FsGroupChangePolicy::from_spec(context.fs_group_change_policy.as_deref()),
    })
}

/// cpu, memory and ephemeral-storage of this host: what the downward API reports for unset
/// limits when the caller does not pass the node's allocatable resources.
fn host_allocatable() -> BTreeMap<String, ApiQuantity> {
    let mut allocatable = BTreeMap::new();
    if let Ok(cpus) = std::thread::available_parallelism() {
        allocatable.insert("cpu".to_owned(), ApiQuantity(cpus.to_string()));
    }
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| parse_meminfo(&text).ok());
    if let Some((total, _available)) = mem_total {
        allocatable.insert("memory".to_owned(), Quantity::from_bytes(total).to_api());
    }
    if let Ok(stat) = nix::sys::statvfs::statvfs("/") {
        let bytes = stat.blocks().saturating_mul(stat.fragment_size());
        allocatable.insert(
            "ephemeral-storage".to_owned(),
            ApiQuantity(bytes.to_string()),
        );
    }
    allocatable
}

impl VolumeManager {
    /// A manager keeping pod volumes under `root_dir` (`/var/lib/ferrolet`), reading API
    /// objects through `sources`, mounting for real ([`HostMounter`]).
    pub fn new(root_dir: impl Into<PathBuf>, sources: Arc<dyn VolumeSources>) -> Self {
        VolumeManager {
            layout: Layout::new(root_dir),
            sources,
            mounter: Arc::new(HostMounter),
            tokens: TokenCache::default(),
            node_allocatable: host_allocatable(),
            clock: Arc::new(Timestamp::now),
            csi: None,
            pod_locks: std::sync::Mutex::default(),
        }
    }

    /// Mounts CSI volumes through the drivers registered in `drivers`.
    #[must_use]
    pub fn with_csi_drivers(mut self, drivers: Arc<crate::csi::CsiDrivers>) -> Self {
        self.csi = Some(drivers);
        self
    }

    /// Uses `mounter` instead of the host's mount syscalls.
    #[must_use]
    pub fn with_mounter(mut self, mounter: Arc<dyn Mounter>) -> Self {
        self.mounter = mounter;
        self
    }

    /// The node's allocatable resources (`cpu`, `memory`, `ephemeral-storage`): defaults of
    /// unset limits for the downward API and the upper bound of memory-backed volumes.
    #[must_use]
    pub fn with_node_allocatable(mut self, allocatable: BTreeMap<String, ApiQuantity>) -> Self {
        self.node_allocatable = allocatable;
        self
    }

    /// The clock tokens are aged by (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The directory layout.
    #[must_use]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Creates the root directory and makes it a shared mount (as the kubelet does at start),
    /// which `Bidirectional` mount propagation needs. Call once at start-up, before pods.
    pub fn make_root_shared(&self) -> Result<(), VolumeError> {
        let root = self.layout.root().to_owned();
        let failed = |source| VolumeError::MakeShared {
            path: root.clone(),
            source,
        };
        std::fs::create_dir_all(&root).map_err(failed)?;
        self.mounter.make_rshared(&root).map_err(failed)
    }

    pub(super) fn pod_lock(&self, uid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .pod_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(uid.to_owned()).or_default().clone()
    }

    /// Drops the lock of a pod that is gone.
    pub(super) fn forget_pod_lock(&self, uid: &str) {
        self.pod_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(uid);
    }

    fn projection_context(&self) -> ProjectionContext<'_> {
        ProjectionContext {
            sources: self.sources.as_ref(),
            tokens: &self.tokens,
            now: (self.clock)(),
            node_allocatable: &self.node_allocatable,
        }
    }

    /// Sets up every volume of `pod` (call before its sandbox starts; again after a failure:
    /// it is idempotent and keeps the data of volumes already set up). The error names the
    /// first volume that failed, as a `FailedMount` event does.
    pub async fn mount_pod(&self, pod: &Pod) -> Result<PodVolumes, VolumeError> {
        let uid = pod_uid(pod)?;
        let lock = self.pod_lock(&uid);
        let _guard = lock.lock().await;
        let mut volumes = BTreeMap::new();
        for volume in spec_volumes(pod) {
            check_name("volume", &volume.name)?;
            let mounted =
                self.set_up(pod, &uid, volume)
                    .await
                    .map_err(|source| VolumeError::SetUp {
                        volume: volume.name.clone(),
                        source,
                    })?;
            volumes.insert(volume.name.clone(), mounted);
        }
        Ok(PodVolumes {
            layout: self.layout.clone(),
            pod_uid: uid,
            volumes,
            mounter: self.mounter.clone(),
        })
    }

    async fn set_up(
        &self,
        pod: &Pod,
        uid: &str,
        volume: &Volume,
    ) -> Result<MountedVolume, SetUpError> {
        let kind = classify(volume)?;
        let plugin = kind.plugin();
        let dir = self.layout.volume_dir(uid, plugin, &volume.name);
        let mounter = self.mounter.clone();
        let fs_group = fs_group(pod);
        let memory = self.node_allocatable.get("memory");
        let mut read_only = plugin.forces_read_only();
        let path = match kind {
            VolumeKind::EmptyDir(source) => {
                let medium = match source.medium.as_deref().unwrap_or_default() {
                    "" => Medium::Disk,
                    "Memory" => Medium::Memory,
                    other => return Err(SetUpError::UnsupportedMedium(other.to_owned())),
                };
                let size = (medium == Medium::Memory)
                    .then(|| plugins::memory_volume_size(pod, source.size_limit.as_ref(), memory))
                    .flatten();
                let meta = self.layout.plugin_meta_dir(uid, plugin, &volume.name);
                let target = dir.clone();
                blocking(move || {
                    plugins::set_up_empty_dir(
                        mounter.as_ref(),
                        &target,
                        &meta,
                        medium,
                        size,
                        fs_group,
                    )
                })
                .await?;
                dir
            }
            VolumeKind::HostPath(source) => {
                let path = PathBuf::from(&source.path);
                let checked = path.clone();
                let ty = source.type_.clone();
                blocking(move || plugins::check_host_path(&checked, ty.as_deref())).await?;
                path
            }
            VolumeKind::Csi(source) => {
                let csi = super::csi::from_inline(uid, &volume.name, source);
                read_only = csi.read_only;
                self.set_up_csi(pod, uid, &volume.name, csi).await?
            }
            VolumeKind::Claim(source) => {
                let csi = self.claim_volume(pod, source).await?;
                read_only = csi.read_only;
                self.set_up_csi(pod, uid, &volume.name, csi).await?
            }
            _ => {
                self.project(pod, &kind, &dir).await?;
                dir
            }
        };
        Ok(MountedVolume {
            name: volume.name.clone(),
            plugin,
            path,
            read_only,
            selinux_relabel: plugin.managed(),
        })
    }

    /// Writes the current contents of a configMap, secret, downwardAPI or projected volume.
    /// Returns whether they changed.
    async fn project(
        &self,
        pod: &Pod,
        kind: &VolumeKind<'_>,
        dir: &std::path::Path,
    ) -> Result<bool, SetUpError> {
        let ctx = self.projection_context();
        let payload = match kind {
            VolumeKind::ConfigMap(source) => {
                projection::config_map_payload(ctx, pod, source).await?
            }
            VolumeKind::Secret(source) => projection::secret_payload(ctx, pod, source).await?,
            VolumeKind::DownwardApi(source) => {
                let mode = source
                    .default_mode
                    .and_then(|m| u32::try_from(m).ok())
                    .unwrap_or(DEFAULT_MODE);
                projection::downward_api_payload(
                    ctx,
                    pod,
                    source.items.as_deref().unwrap_or_default(),
                    mode,
                )?
            }
            VolumeKind::Projected(source) => {
                projection::projected_payload(ctx, pod, source).await?
            }
            VolumeKind::EmptyDir(_)
            | VolumeKind::HostPath(_)
            | VolumeKind::Csi(_)
            | VolumeKind::Claim(_) => return Ok(false),
        };
        let tmpfs = kind
            .plugin()
            .always_tmpfs()
            .then(|| plugins::memory_volume_size(pod, None, self.node_allocatable.get("memory")));
        let mounter = self.mounter.clone();
        let fs_group = fs_group(pod);
        let dir = dir.to_owned();
        blocking(move || {
            plugins::write_projected(mounter.as_ref(), &dir, tmpfs, &payload, fs_group)
        })
        .await
    }

    /// Projects the current configMap, secret, downward API and token contents into the
    /// pod's volumes that are set up, swapping only what changed (call periodically, e.g.
    /// every sync of the pod worker, so that updates reach running containers). Tokens are
    /// requested again once 80% of their lifetime has passed. Returns the names of volumes
    /// whose contents changed; on failures, the other volumes are still refreshed and the
    /// first error is returned (the old contents stay).
    pub async fn refresh(&self, pod: &Pod) -> Result<Vec<String>, VolumeError> {
        let uid = pod_uid(pod)?;
        let lock = self.pod_lock(&uid);
        let _guard = lock.lock().await;
        let mut changed = Vec::new();
        let mut first_error = None;
        for volume in spec_volumes(pod) {
            let Ok(kind) = classify(volume) else { continue };
            if !kind.plugin().projects_api_data() || !is_safe_component(&volume.name) {
                continue;
            }
            let dir = self.layout.volume_dir(&uid, kind.plugin(), &volume.name);
            if !dir.is_dir() {
                continue; // not set up (yet, or any more)
            }
            match self.project(pod, &kind, &dir).await {
                Ok(true) => changed.push(volume.name.clone()),
                Ok(false) => {}
                Err(source) => {
                    tracing::warn!(volume = %volume.name, pod_uid = %uid, error = %source, "refresh volume failed");
                    first_error.get_or_insert(VolumeError::SetUp {
                        volume: volume.name.clone(),
                        source,
                    });
                }
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(changed),
        }
    }

    /// Unmounts the pod's volumes and subPath bind mounts and removes `volumes`,
    /// `volume-subpaths` and `plugins` from its directory; the rest of the pod directory is
    /// left to the caller. Call after every container of the pod has stopped. Idempotent.
    pub async fn unmount_pod(&self, uid: &str) -> Result<(), VolumeError> {
        check_name("pod uid", uid)?;
        let lock = self.pod_lock(uid);
        let guard = lock.lock().await;
        // CSI volumes go through their driver first; what is left is plain directories.
        self.tear_down_csi(uid)
            .await
            .map_err(|source| VolumeError::TearDown {
                pod_uid: uid.to_owned(),
                source,
            })?;
        let mounter = self.mounter.clone();
        let pod_dir = self.layout.pod_dir(uid);
        let result = tokio::task::spawn_blocking(move || {
            for sub in [
                super::layout::VOLUME_SUBPATHS_DIR,
                super::layout::VOLUMES_DIR,
                super::layout::PLUGINS_DIR,
            ] {
                tear_down_dir(mounter.as_ref(), &pod_dir.join(sub))?;
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|err| Err(super::error::TearDownError::Task(err.to_string())));
        result.map_err(|source| VolumeError::TearDown {
            pod_uid: uid.to_owned(),
            source,
        })?;
        self.tokens.forget_pod(uid);
        drop(guard);
        self.forget_pod_lock(uid);
        Ok(())
    }
}

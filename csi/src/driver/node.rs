//! The hostpath driver's `Node` service: stage (bind the volume onto the staging path),
//! publish (bind the staging path, or the volume, onto the pod's target path), the reverse,
//! and usage statistics. Inline ephemeral volumes are created by their publish and deleted by
//! their unpublish.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferrolet_proto::csi::v1 as csi;
use ferrolet_proto::csi::v1::node_server::Node;
use tonic::{Request, Response, Status};

use super::mounts;
use super::store::{VolumeStore, valid_id};
use crate::EPHEMERAL_CONTEXT_KEY;

/// The `Node` service of one driver instance.
#[derive(Debug)]
pub struct NodeService {
    pub node_id: String,
    pub store: Arc<VolumeStore>,
    /// Serialises node operations (a publish and an unpublish of one target must not race).
    pub lock: tokio::sync::Mutex<()>,
    /// How long each publish waits before it mounts (slow storage, for tests).
    pub publish_delay: std::time::Duration,
}

fn required_path(what: &str, path: &str) -> Result<PathBuf, Status> {
    if path.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{what} missing in request"
        )));
    }
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return Err(Status::invalid_argument(format!("{what} must be absolute")));
    }
    Ok(path)
}

fn volume_id(id: &str) -> Result<&str, Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("volume ID missing in request"));
    }
    if !valid_id(id) {
        return Err(Status::invalid_argument(format!(
            "invalid volume ID {id:?}"
        )));
    }
    Ok(id)
}

fn internal<'a>(step: &'a str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Status + 'a {
    move |err| Status::internal(format!("{step} {}: {err}", path.display()))
}

/// Runs blocking mount work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Status::internal(err.to_string()))?
}

fn rpc_capability(kind: csi::node_service_capability::rpc::Type) -> csi::NodeServiceCapability {
    use csi::node_service_capability::{Rpc, Type};
    csi::NodeServiceCapability {
        r#type: Some(Type::Rpc(Rpc {
            r#type: kind.into(),
        })),
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        request: Request<csi::NodeStageVolumeRequest>,
    ) -> Result<Response<csi::NodeStageVolumeResponse>, Status> {
        let request = request.into_inner();
        let id = volume_id(&request.volume_id)?.to_owned();
        let staging = required_path("staging target path", &request.staging_target_path)?;
        if request.volume_capability.is_none() {
            return Err(Status::invalid_argument(
                "volume capability missing in request",
            ));
        }
        let _guard = self.lock.lock().await;
        if self.store.get(&id)?.is_none() {
            return Err(Status::not_found(format!("volume {id} not found")));
        }
        let source = self.store.data_dir(&id)?;
        blocking(move || {
            mounts::bind(&source, &staging, false).map_err(internal("stage onto", &staging))
        })
        .await?;
        tracing::info!(volume = %id, staging = %request.staging_target_path, "volume staged");
        Ok(Response::new(csi::NodeStageVolumeResponse {}))
    }

    async fn node_unstage_volume(
        &self,
        request: Request<csi::NodeUnstageVolumeRequest>,
    ) -> Result<Response<csi::NodeUnstageVolumeResponse>, Status> {
        let request = request.into_inner();
        let id = volume_id(&request.volume_id)?.to_owned();
        let staging = required_path("staging target path", &request.staging_target_path)?;
        let _guard = self.lock.lock().await;
        blocking(move || mounts::unbind(&staging).map_err(internal("unstage", &staging))).await?;
        tracing::info!(volume = %id, staging = %request.staging_target_path, "volume unstaged");
        Ok(Response::new(csi::NodeUnstageVolumeResponse {}))
    }

    async fn node_publish_volume(
        &self,
        request: Request<csi::NodePublishVolumeRequest>,
    ) -> Result<Response<csi::NodePublishVolumeResponse>, Status> {
        let request = request.into_inner();
        let id = volume_id(&request.volume_id)?.to_owned();
        let target = required_path("target path", &request.target_path)?;
        if request.volume_capability.is_none() {
            return Err(Status::invalid_argument(
                "volume capability missing in request",
            ));
        }
        let ephemeral = request
            .volume_context
            .get(EPHEMERAL_CONTEXT_KEY)
            .is_some_and(|v| v == "true");
        tracing::info!(volume = %id, target = %target.display(), "publishing volume");
        tokio::time::sleep(self.publish_delay).await;
        let _guard = self.lock.lock().await;
        let source = if ephemeral {
            let size = request
                .volume_context
                .get("size")
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            self.store.create(&id, &id, size, 0, true)?;
            self.store.data_dir(&id)?
        } else if request.staging_target_path.is_empty() {
            if self.store.get(&id)?.is_none() {
                return Err(Status::not_found(format!("volume {id} not found")));
            }
            self.store.data_dir(&id)?
        } else {
            let staging = PathBuf::from(&request.staging_target_path);
            let staged = mounts::is_mount_point(&staging).map_err(internal("inspect", &staging))?;
            if !staged {
                return Err(Status::failed_precondition(format!(
                    "volume {id} is not staged at {}",
                    staging.display()
                )));
            }
            staging
        };
        let read_only = request.readonly;
        let bound = target.clone();
        blocking(move || {
            mounts::bind(&source, &bound, read_only).map_err(internal("publish onto", &bound))
        })
        .await?;
        tracing::info!(volume = %id, target = %target.display(), ephemeral, read_only, "volume published");
        Ok(Response::new(csi::NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<csi::NodeUnpublishVolumeRequest>,
    ) -> Result<Response<csi::NodeUnpublishVolumeResponse>, Status> {
        let request = request.into_inner();
        let id = volume_id(&request.volume_id)?.to_owned();
        let target = required_path("target path", &request.target_path)?;
        let _guard = self.lock.lock().await;
        let unbound = target.clone();
        blocking(move || mounts::unbind(&unbound).map_err(internal("unpublish", &unbound))).await?;
        if self.store.get(&id)?.is_some_and(|r| r.ephemeral) {
            self.store.delete(&id)?;
            tracing::info!(volume = %id, "ephemeral volume deleted");
        }
        tracing::info!(volume = %id, target = %target.display(), "volume unpublished");
        Ok(Response::new(csi::NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<csi::NodeGetVolumeStatsRequest>,
    ) -> Result<Response<csi::NodeGetVolumeStatsResponse>, Status> {
        use csi::volume_usage::Unit;
        let request = request.into_inner();
        let id = volume_id(&request.volume_id)?.to_owned();
        let path = required_path("volume path", &request.volume_path)?;
        let Some(record) = self.store.get(&id)? else {
            return Err(Status::not_found(format!("volume {id} not found")));
        };
        if !path.exists() {
            return Err(Status::not_found(format!(
                "{} does not exist",
                path.display()
            )));
        }
        let (bytes, inodes) = blocking(move || Ok(super::store::usage(&path))).await?;
        let total = i64::try_from(record.capacity_bytes).unwrap_or(i64::MAX);
        let used = i64::try_from(bytes).unwrap_or(i64::MAX);
        Ok(Response::new(csi::NodeGetVolumeStatsResponse {
            usage: vec![
                csi::VolumeUsage {
                    total,
                    used,
                    available: (total - used).max(0),
                    unit: Unit::Bytes.into(),
                },
                csi::VolumeUsage {
                    total: 0,
                    used: i64::try_from(inodes).unwrap_or(i64::MAX),
                    available: 0,
                    unit: Unit::Inodes.into(),
                },
            ],
            volume_condition: None,
        }))
    }

    async fn node_get_capabilities(
        &self,
        _request: Request<csi::NodeGetCapabilitiesRequest>,
    ) -> Result<Response<csi::NodeGetCapabilitiesResponse>, Status> {
        use csi::node_service_capability::rpc::Type;
        Ok(Response::new(csi::NodeGetCapabilitiesResponse {
            capabilities: vec![
                rpc_capability(Type::StageUnstageVolume),
                rpc_capability(Type::GetVolumeStats),
            ],
        }))
    }

    async fn node_get_info(
        &self,
        _request: Request<csi::NodeGetInfoRequest>,
    ) -> Result<Response<csi::NodeGetInfoResponse>, Status> {
        Ok(Response::new(csi::NodeGetInfoResponse {
            node_id: self.node_id.clone(),
            max_volumes_per_node: 0,
            accessible_topology: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(dir: &Path) -> NodeService {
        NodeService {
            node_id: "node-1".into(),
            store: Arc::new(VolumeStore::open(dir, 1 << 30).unwrap()),
            lock: tokio::sync::Mutex::new(()),
            publish_delay: std::time::Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn volume_stats_report_usage_against_the_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let node = service(dir.path());
        let record = node.store.create("vol-a", "a", 1 << 20, 0, false).unwrap();
        let data = node.store.data_dir("vol-a").unwrap();
        std::fs::write(data.join("blob"), vec![7u8; 64 * 1024]).unwrap();
        let stats = node
            .node_get_volume_stats(Request::new(csi::NodeGetVolumeStatsRequest {
                volume_id: "vol-a".into(),
                volume_path: data.display().to_string(),
                staging_target_path: String::new(),
            }))
            .await
            .unwrap()
            .into_inner();
        let bytes = &stats.usage[0];
        assert_eq!(bytes.unit, i32::from(csi::volume_usage::Unit::Bytes));
        assert_eq!(bytes.total, i64::try_from(record.capacity_bytes).unwrap());
        assert!(bytes.used >= 64 * 1024, "{bytes:?}");
        assert_eq!(bytes.available, bytes.total - bytes.used);
        assert_eq!(stats.usage[1].used, 2, "the directory and the file");
    }

    #[tokio::test]
    async fn unknown_volumes_and_bad_requests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let node = service(dir.path());
        let capability = csi::VolumeCapability::default();
        let publish = |volume_id: &str, target: &str| csi::NodePublishVolumeRequest {
            volume_id: volume_id.into(),
            target_path: target.into(),
            volume_capability: Some(capability.clone()),
            ..Default::default()
        };
        let missing = node
            .node_publish_volume(Request::new(publish("vol-none", "/tmp/x/mount")))
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        let escape = node
            .node_publish_volume(Request::new(publish("../etc", "/tmp/x/mount")))
            .await
            .unwrap_err();
        assert_eq!(escape.code(), tonic::Code::InvalidArgument);
        let relative = node
            .node_publish_volume(Request::new(publish("vol-a", "mount")))
            .await
            .unwrap_err();
        assert_eq!(relative.code(), tonic::Code::InvalidArgument);
        let caps = node
            .node_get_capabilities(Request::new(csi::NodeGetCapabilitiesRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(caps.capabilities.len(), 2);
        let info = node
            .node_get_info(Request::new(csi::NodeGetInfoRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.node_id, "node-1");
    }
}

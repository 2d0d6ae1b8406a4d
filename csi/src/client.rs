//! The kubelet's side of a CSI driver: `Identity` and `Node` calls on the driver's socket
//! (`pkg/volume/csi/csi_client.go`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrolet_proto::csi::v1 as csi;
use ferrolet_proto::csi::v1::identity_client::IdentityClient;
use ferrolet_proto::csi::v1::node_client::NodeClient;
use tonic::transport::Channel;

use crate::socket;

/// How long one CSI call may take (the kubelet's `csiTimeout` is 2 minutes; a hostpath
/// driver answers in milliseconds, and a stuck driver should turn into a retry soon).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A failed CSI call.
#[derive(Debug, thiserror::Error)]
pub enum CsiError {
    /// The driver answered with an error or could not be reached.
    #[error("rpc error: {call} on {}: code = {:?} desc = {}", endpoint.display(), status.code(), status_message(status))]
    Call {
        call: &'static str,
        endpoint: PathBuf,
        #[source]
        status: Box<tonic::Status>,
    },
}

/// The status message, or the transport error behind an empty one.
fn status_message(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        std::error::Error::source(status).map_or_else(String::new, socket::error_chain)
    } else {
        let mut text = status.message().to_owned();
        if let Some(source) = std::error::Error::source(status) {
            let cause = socket::error_chain(source);
            if !text.contains(&cause) {
                text = format!("{text}: {cause}");
            }
        }
        text
    }
}

type Result<T> = std::result::Result<T, CsiError>;

/// What a volume is published (or staged) as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishSpec {
    pub volume_id: String,
    /// The `globalmount` directory when the driver stages volumes.
    pub staging_target_path: Option<PathBuf>,
    pub target_path: PathBuf,
    pub read_only: bool,
    pub fs_type: String,
    /// `true` when several nodes may write (`ReadWriteMany`).
    pub multi_node: bool,
    pub volume_context: HashMap<String, String>,
}

impl PublishSpec {
    fn capability(&self) -> csi::VolumeCapability {
        use csi::volume_capability::access_mode::Mode;
        let mode = match (self.multi_node, self.read_only) {
            (true, true) => Mode::MultiNodeReaderOnly,
            (true, false) => Mode::MultiNodeMultiWriter,
            (false, _) => Mode::SingleNodeWriter,
        };
        csi::VolumeCapability {
            access_type: Some(csi::volume_capability::AccessType::Mount(
                csi::volume_capability::MountVolume {
                    fs_type: self.fs_type.clone(),
                    ..Default::default()
                },
            )),
            access_mode: Some(csi::volume_capability::AccessMode { mode: mode.into() }),
        }
    }
}

/// A client of one CSI driver's socket.
#[derive(Debug, Clone)]
pub struct CsiClient {
    endpoint: PathBuf,
    channel: Channel,
}

impl CsiClient {
    /// A client of the driver listening on `endpoint`; nothing is dialled until a call.
    #[must_use]
    pub fn new(endpoint: &Path) -> Self {
        CsiClient {
            endpoint: endpoint.to_owned(),
            channel: socket::channel(endpoint, CALL_TIMEOUT),
        }
    }

    /// The driver's socket.
    #[must_use]
    pub fn endpoint(&self) -> &Path {
        &self.endpoint
    }

    fn failed(&self, call: &'static str) -> impl FnOnce(tonic::Status) -> CsiError + '_ {
        move |status| CsiError::Call {
            call,
            endpoint: self.endpoint.clone(),
            status: Box::new(status),
        }
    }

    fn node(&self) -> NodeClient<Channel> {
        NodeClient::new(self.channel.clone())
    }

    /// `Identity.GetPluginInfo`: the driver's name and version.
    pub async fn plugin_info(&self) -> Result<csi::GetPluginInfoResponse> {
        IdentityClient::new(self.channel.clone())
            .get_plugin_info(csi::GetPluginInfoRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(self.failed("GetPluginInfo"))
    }

    /// `Node.NodeGetInfo`: the driver's id for this node and its limits.
    pub async fn node_get_info(&self) -> Result<csi::NodeGetInfoResponse> {
        self.node()
            .node_get_info(csi::NodeGetInfoRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(self.failed("NodeGetInfo"))
    }

    /// Whether the driver has the `STAGE_UNSTAGE_VOLUME` node capability.
    pub async fn supports_stage_unstage(&self) -> Result<bool> {
        use csi::node_service_capability::{Type, rpc};
        let response = self
            .node()
            .node_get_capabilities(csi::NodeGetCapabilitiesRequest {})
            .await
            .map_err(self.failed("NodeGetCapabilities"))?
            .into_inner();
        Ok(response.capabilities.iter().any(|c| {
            matches!(&c.r#type, Some(Type::Rpc(r)) if r.r#type == i32::from(rpc::Type::StageUnstageVolume))
        }))
    }

    /// `Node.NodeStageVolume` into `spec.staging_target_path`.
    pub async fn stage(&self, spec: &PublishSpec) -> Result<()> {
        let request = csi::NodeStageVolumeRequest {
            volume_id: spec.volume_id.clone(),
            staging_target_path: path_string(spec.staging_target_path.as_deref()),
            volume_capability: Some(spec.capability()),
            volume_context: spec.volume_context.clone(),
            ..Default::default()
        };
        self.node()
            .node_stage_volume(request)
            .await
            .map(drop)
            .map_err(self.failed("NodeStageVolume"))
    }

    /// `Node.NodeUnstageVolume`.
    pub async fn unstage(&self, volume_id: &str, staging_target_path: &Path) -> Result<()> {
        let request = csi::NodeUnstageVolumeRequest {
            volume_id: volume_id.to_owned(),
            staging_target_path: path_string(Some(staging_target_path)),
        };
        self.node()
            .node_unstage_volume(request)
            .await
            .map(drop)
            .map_err(self.failed("NodeUnstageVolume"))
    }

    /// `Node.NodePublishVolume` onto `spec.target_path`.
    pub async fn publish(&self, spec: &PublishSpec) -> Result<()> {
        let request = csi::NodePublishVolumeRequest {
            volume_id: spec.volume_id.clone(),
            staging_target_path: path_string(spec.staging_target_path.as_deref()),
            target_path: path_string(Some(&spec.target_path)),
            volume_capability: Some(spec.capability()),
            readonly: spec.read_only,
            volume_context: spec.volume_context.clone(),
            ..Default::default()
        };
        self.node()
            .node_publish_volume(request)
            .await
            .map(drop)
            .map_err(self.failed("NodePublishVolume"))
    }

    /// `Node.NodeUnpublishVolume`.
    pub async fn unpublish(&self, volume_id: &str, target_path: &Path) -> Result<()> {
        let request = csi::NodeUnpublishVolumeRequest {
            volume_id: volume_id.to_owned(),
            target_path: path_string(Some(target_path)),
        };
        self.node()
            .node_unpublish_volume(request)
            .await
            .map(drop)
            .map_err(self.failed("NodeUnpublishVolume"))
    }
}

fn path_string(path: Option<&Path>) -> String {
    path.map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

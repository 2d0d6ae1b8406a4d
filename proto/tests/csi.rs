//! Round trips of CSI v1 over a unix socket: a node plugin serving `Identity` and `Node`, the
//! kubelet side calling them the way it mounts a volume for a pod.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ferrolet_proto::csi::v1::identity_client::IdentityClient;
use ferrolet_proto::csi::v1::identity_server::{self, IdentityServer};
use ferrolet_proto::csi::v1::node_client::NodeClient;
use ferrolet_proto::csi::v1::node_server::{self, NodeServer};
use ferrolet_proto::csi::v1::node_service_capability::rpc::Type as NodeRpc;
use ferrolet_proto::csi::v1::plugin_capability::service::Type as PluginService;
use ferrolet_proto::csi::v1::volume_capability::access_mode::Mode;
use ferrolet_proto::csi::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use ferrolet_proto::csi::v1::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, NodeExpandVolumeRequest, NodeExpandVolumeResponse,
    NodeGetCapabilitiesRequest, NodeGetCapabilitiesResponse, NodeGetInfoRequest,
    NodeGetInfoResponse, NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse,
    NodePublishVolumeRequest, NodePublishVolumeResponse, NodeServiceCapability,
    NodeStageVolumeRequest, NodeStageVolumeResponse, NodeUnpublishVolumeRequest,
    NodeUnpublishVolumeResponse, NodeUnstageVolumeRequest, NodeUnstageVolumeResponse,
    PluginCapability, ProbeRequest, ProbeResponse, Topology, VolumeCapability, VolumeCondition,
    VolumeUsage, node_service_capability, plugin_capability, volume_usage,
};
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use common::UnixServer;

const DRIVER: &str = "hostpath.csi.k8s.io";

/// Identity of a node-only plugin (no `CONTROLLER_SERVICE`), not ready until told so.
struct HostPathIdentity {
    ready: Option<bool>,
}

#[tonic::async_trait]
impl identity_server::Identity for HostPathIdentity {
    async fn get_plugin_info(
        &self,
        _: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: DRIVER.into(),
            vendor_version: "v1.15.0".into(),
            manifest: HashMap::from([("commit".into(), "abc123".into())]),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        let service = |kind: PluginService| PluginCapability {
            r#type: Some(plugin_capability::Type::Service(
                plugin_capability::Service {
                    r#type: kind.into(),
                },
            )),
        };
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities: vec![service(PluginService::VolumeAccessibilityConstraints)],
        }))
    }

    async fn probe(&self, _: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        Ok(Response::new(ProbeResponse { ready: self.ready }))
    }
}

/// A node plugin that "mounts" by recording target paths; it requires staging first.
#[derive(Default)]
struct HostPathNode {
    staged: Mutex<HashSet<String>>,
    published: Arc<Mutex<HashMap<String, NodePublishVolumeRequest>>>,
}

#[tonic::async_trait]
impl node_server::Node for HostPathNode {
    async fn node_stage_volume(
        &self,
        request: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        let request = request.into_inner();
        if request.staging_target_path.is_empty() {
            return Err(Status::invalid_argument("staging_target_path is required"));
        }
        self.staged.lock().unwrap().insert(request.volume_id);
        Ok(Response::new(NodeStageVolumeResponse {}))
    }

    async fn node_unstage_volume(
        &self,
        request: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        self.staged
            .lock()
            .unwrap()
            .remove(&request.into_inner().volume_id);
        Ok(Response::new(NodeUnstageVolumeResponse {}))
    }

    async fn node_publish_volume(
        &self,
        request: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        let request = request.into_inner();
        if !self.staged.lock().unwrap().contains(&request.volume_id) {
            return Err(Status::failed_precondition(format!(
                "volume {} is not staged",
                request.volume_id
            )));
        }
        self.published
            .lock()
            .unwrap()
            .insert(request.target_path.clone(), request);
        Ok(Response::new(NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let request = request.into_inner();
        match self.published.lock().unwrap().remove(&request.target_path) {
            Some(_) => Ok(Response::new(NodeUnpublishVolumeResponse {})),
            None => Err(Status::not_found(format!(
                "{} is not published",
                request.target_path
            ))),
        }
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        let published = self
            .published
            .lock()
            .unwrap()
            .contains_key(&request.into_inner().volume_path);
        Ok(Response::new(NodeGetVolumeStatsResponse {
            usage: vec![VolumeUsage {
                available: 3 << 30,
                total: 4 << 30,
                used: 1 << 30,
                unit: volume_usage::Unit::Bytes.into(),
            }],
            volume_condition: Some(VolumeCondition {
                abnormal: !published,
                message: if published { "ok" } else { "not mounted" }.into(),
            }),
        }))
    }

    async fn node_expand_volume(
        &self,
        _: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        Err(Status::unimplemented("EXPAND_VOLUME is not advertised"))
    }

    async fn node_get_capabilities(
        &self,
        _: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        let rpc = |kind: NodeRpc| NodeServiceCapability {
            r#type: Some(node_service_capability::Type::Rpc(
                node_service_capability::Rpc {
                    r#type: kind.into(),
                },
            )),
        };
        Ok(Response::new(NodeGetCapabilitiesResponse {
            capabilities: vec![
                rpc(NodeRpc::StageUnstageVolume),
                rpc(NodeRpc::GetVolumeStats),
            ],
        }))
    }

    async fn node_get_info(
        &self,
        _: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        Ok(Response::new(NodeGetInfoResponse {
            node_id: "node-a".into(),
            max_volumes_per_node: 16,
            accessible_topology: Some(Topology {
                segments: HashMap::from([("topology.hostpath.csi/node".into(), "node-a".into())]),
            }),
        }))
    }
}

fn mount_rw(fs_type: &str) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: fs_type.into(),
            mount_flags: vec!["noatime".into()],
            volume_mount_group: String::new(),
        })),
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter.into(),
        }),
    }
}

#[tokio::test]
async fn identity_round_trip() {
    let server = UnixServer::start(
        Server::builder().add_service(IdentityServer::new(HostPathIdentity { ready: Some(false) })),
    );
    let mut identity = IdentityClient::new(server.channel().await);

    let info = identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, DRIVER);
    assert_eq!(info.vendor_version, "v1.15.0");
    assert_eq!(info.manifest["commit"], "abc123");

    let caps = identity
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    let services: Vec<PluginService> = caps
        .capabilities
        .iter()
        .filter_map(|cap| match &cap.r#type {
            Some(plugin_capability::Type::Service(service)) => Some(service.r#type()),
            _ => None,
        })
        .collect();
    assert_eq!(services, [PluginService::VolumeAccessibilityConstraints]);
    assert!(
        !services.contains(&PluginService::ControllerService),
        "node-only plugin"
    );

    // `ready` is a BoolValue wrapper: an explicit false must survive the trip, not collapse to
    // "unset" (which CSI defines as ready).
    let probe = identity.probe(ProbeRequest {}).await.unwrap().into_inner();
    assert_eq!(probe.ready, Some(false));

    server.stop().await;
}

#[tokio::test]
async fn node_info_and_capabilities_round_trip() {
    let server = UnixServer::start(
        Server::builder()
            .add_service(IdentityServer::new(HostPathIdentity { ready: None }))
            .add_service(NodeServer::new(HostPathNode::default())),
    );
    let channel = server.channel().await;
    let mut client = NodeClient::new(channel.clone());

    let probe = IdentityClient::new(channel)
        .probe(ProbeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(probe.ready, None, "unset readiness stays unset");

    let info = client
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, "node-a");
    assert_eq!(info.max_volumes_per_node, 16);
    assert_eq!(
        info.accessible_topology.unwrap().segments["topology.hostpath.csi/node"],
        "node-a"
    );

    let caps = client
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    let rpcs: Vec<NodeRpc> = caps
        .capabilities
        .iter()
        .filter_map(|cap| {
            cap.r#type
                .as_ref()
                .map(|node_service_capability::Type::Rpc(rpc)| rpc.r#type())
        })
        .collect();
    assert_eq!(rpcs, [NodeRpc::StageUnstageVolume, NodeRpc::GetVolumeStats]);

    server.stop().await;
}

#[tokio::test]
async fn node_stage_publish_unpublish_round_trip() {
    let node = HostPathNode::default();
    let published = Arc::clone(&node.published);
    let server = UnixServer::start(Server::builder().add_service(NodeServer::new(node)));
    let mut client = NodeClient::new(server.channel().await);

    let volume_id = "pvc-1234";
    let staging = "/var/lib/kubelet/plugins/kubernetes.io/csi/hostpath.csi.k8s.io/abc/globalmount";
    let target = "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~csi/pvc-1234/mount";
    let publish = NodePublishVolumeRequest {
        volume_id: volume_id.into(),
        publish_context: HashMap::from([("devicePath".into(), "/dev/loop7".into())]),
        staging_target_path: staging.into(),
        target_path: target.into(),
        volume_capability: Some(mount_rw("ext4")),
        readonly: true,
        secrets: HashMap::from([("password".into(), "hunter2".into())]),
        volume_context: HashMap::from([("csi.storage.k8s.io/pod.name".into(), "web-0".into())]),
    };

    // Publishing before staging is refused with the plugin's status code and message.
    let refused = client
        .node_publish_volume(publish.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(refused.message(), "volume pvc-1234 is not staged");

    client
        .node_stage_volume(NodeStageVolumeRequest {
            volume_id: volume_id.into(),
            publish_context: publish.publish_context.clone(),
            staging_target_path: staging.into(),
            volume_capability: Some(mount_rw("ext4")),
            secrets: HashMap::new(),
            volume_context: HashMap::new(),
        })
        .await
        .unwrap();
    client.node_publish_volume(publish.clone()).await.unwrap();
    assert_eq!(
        published.lock().unwrap()[target],
        publish,
        "every field arrives intact"
    );

    let stats = client
        .node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: volume_id.into(),
            volume_path: target.into(),
            staging_target_path: staging.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.usage[0].unit(), volume_usage::Unit::Bytes);
    assert_eq!(stats.usage[0].total, 4 << 30);
    assert!(!stats.volume_condition.unwrap().abnormal);

    client
        .node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: volume_id.into(),
            target_path: target.into(),
        })
        .await
        .unwrap();
    assert!(published.lock().unwrap().is_empty());
    let again = client
        .node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: volume_id.into(),
            target_path: target.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::NotFound);

    let expand = client
        .node_expand_volume(NodeExpandVolumeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(expand.code(), tonic::Code::Unimplemented);

    server.stop().await;
}

#[tokio::test]
async fn service_and_method_paths_match_the_spec() {
    assert_eq!(identity_server::SERVICE_NAME, "csi.v1.Identity");
    assert_eq!(node_server::SERVICE_NAME, "csi.v1.Node");
    assert_eq!(
        ferrolet_proto::csi::v1::controller_server::SERVICE_NAME,
        "csi.v1.Controller"
    );
    assert_eq!(
        ferrolet_proto::csi::v1::group_controller_server::SERVICE_NAME,
        "csi.v1.GroupController"
    );
    assert_eq!(
        ferrolet_proto::csi::v1::snapshot_metadata_server::SERVICE_NAME,
        "csi.v1.SnapshotMetadata"
    );

    let server =
        UnixServer::start(Server::builder().add_service(NodeServer::new(HostPathNode::default())));
    let info: NodeGetInfoResponse = common::raw_unary(
        server.channel().await,
        "/csi.v1.Node/NodeGetInfo",
        NodeGetInfoRequest {},
    )
    .await
    .unwrap();
    assert_eq!(info.node_id, "node-a");
    server.stop().await;
}

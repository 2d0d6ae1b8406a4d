//! Wire-format pins: encode messages with prost and compare the exact bytes (field tags)
//! against the numbers upstream publishes. A renumbered or retyped field in a vendored
//! `.proto` breaks these tests before it breaks a real containerd/CSI driver/device plugin.
//!
//! Tag byte = (field number << 3) | wire type; wire type 0 = varint, 2 = length-delimited.
//! The expected numbers were checked against: CSI spec v1.10.0 (Go bindings vendored by
//! kubernetes/kubernetes@00a8b4dd, whose go.mod pins spec v1.10.0), and the kubelet
//! pluginregistration/deviceplugin `api.proto` files in kubernetes/kubernetes staging.

use std::collections::HashMap;

use ferrolet_proto::csi::v1 as csi;
use ferrolet_proto::deviceplugin::v1beta1 as dp;
use ferrolet_proto::pluginregistration::v1 as reg;
use prost::Message;

fn bytes(message: &impl Message) -> Vec<u8> {
    message.encode_to_vec()
}

// ------------------------------------------------------------------------------- CSI v1

#[test]
fn csi_node_publish_volume_request_field_numbers() {
    // target_path = 4 (length-delimited -> tag 0x22).
    let only_target = csi::NodePublishVolumeRequest {
        target_path: "/t".into(),
        ..Default::default()
    };
    assert_eq!(bytes(&only_target), [0x22, 2, b'/', b't']);

    let request = csi::NodePublishVolumeRequest {
        volume_id: "v".into(),                                      // 1 -> 0x0a
        publish_context: HashMap::from([("k".into(), "v".into())]), // 2 -> 0x12
        staging_target_path: "/s".into(),                           // 3 -> 0x1a
        target_path: "/t".into(),                                   // 4 -> 0x22
        volume_capability: Some(csi::VolumeCapability::default()),  // 5 -> 0x2a
        readonly: true,                                             // 6 varint -> 0x30
        secrets: HashMap::from([("p".into(), "s".into())]),         // 7 -> 0x3a
        volume_context: HashMap::from([("c".into(), "x".into())]),  // 8 -> 0x42
    };
    assert_eq!(
        bytes(&request),
        [
            0x0a, 1, b'v', //
            0x12, 6, 0x0a, 1, b'k', 0x12, 1, b'v', //
            0x1a, 2, b'/', b's', //
            0x22, 2, b'/', b't', //
            0x2a, 0, //
            0x30, 1, //
            0x3a, 6, 0x0a, 1, b'p', 0x12, 1, b's', //
            0x42, 6, 0x0a, 1, b'c', 0x12, 1, b'x',
        ]
    );
    assert_eq!(
        csi::NodePublishVolumeRequest::decode(bytes(&request).as_slice()).unwrap(),
        request
    );
}

#[test]
fn csi_node_stage_and_unpublish_field_numbers() {
    let stage = csi::NodeStageVolumeRequest {
        volume_id: "v".into(),                              // 1
        staging_target_path: "/g".into(),                   // 3
        secrets: HashMap::from([("a".into(), "b".into())]), // 5
        ..Default::default()
    };
    assert_eq!(
        bytes(&stage),
        [
            0x0a, 1, b'v', 0x1a, 2, b'/', b'g', 0x2a, 6, 0x0a, 1, b'a', 0x12, 1, b'b'
        ]
    );

    let unpublish = csi::NodeUnpublishVolumeRequest {
        volume_id: "v".into(),
        target_path: "/t".into(),
    };
    assert_eq!(bytes(&unpublish), [0x0a, 1, b'v', 0x12, 2, b'/', b't']);
}

#[test]
fn csi_volume_capability_oneof_and_access_mode() {
    use csi::volume_capability::{
        AccessMode, AccessType, BlockVolume, MountVolume, access_mode::Mode,
    };

    // block = 1 (empty message), access_mode = 3 { mode = 1 }.
    let block = csi::VolumeCapability {
        access_type: Some(AccessType::Block(BlockVolume {})),
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeMultiWriter.into(),
        }),
    };
    assert_eq!(bytes(&block), [0x0a, 0, 0x1a, 2, 0x08, 7]);

    // mount = 2 { fs_type = 1, mount_flags = 2, volume_mount_group = 3 }.
    let mount = csi::VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: "x".into(),
            mount_flags: vec!["ro".into()],
            volume_mount_group: "g".into(),
        })),
        access_mode: None,
    };
    assert_eq!(
        bytes(&mount),
        [0x12, 10, 0x0a, 1, b'x', 0x12, 2, b'r', b'o', 0x1a, 1, b'g']
    );
}

#[test]
fn csi_probe_ready_is_a_bool_value_wrapper() {
    // ready = 1 is google.protobuf.BoolValue: "false" is a present, empty wrapper, distinct
    // from "unset" (which the spec defines as ready).
    assert_eq!(bytes(&csi::ProbeResponse { ready: None }), Vec::<u8>::new());
    assert_eq!(bytes(&csi::ProbeResponse { ready: Some(false) }), [0x0a, 0]);
    assert_eq!(
        bytes(&csi::ProbeResponse { ready: Some(true) }),
        [0x0a, 2, 0x08, 1]
    );
    assert_eq!(
        csi::ProbeResponse::decode(&[0x0a, 0][..]).unwrap().ready,
        Some(false)
    );
}

#[test]
fn csi_node_get_info_and_capacity_field_numbers() {
    let info = csi::NodeGetInfoResponse {
        node_id: "n".into(),      // 1
        max_volumes_per_node: 16, // 2 varint -> 0x10
        accessible_topology: Some(csi::Topology {
            segments: HashMap::from([("z".into(), "1".into())]), // Topology.segments = 1
        }), // 3
    };
    assert_eq!(
        bytes(&info),
        [
            0x0a, 1, b'n', 0x10, 16, 0x1a, 8, 0x0a, 6, 0x0a, 1, b'z', 0x12, 1, b'1'
        ]
    );

    // maximum_volume_size = 2 and minimum_volume_size = 3 are Int64Value wrappers.
    let capacity = csi::GetCapacityResponse {
        available_capacity: 300,
        maximum_volume_size: Some(5),
        minimum_volume_size: Some(0),
    };
    assert_eq!(
        bytes(&capacity),
        [0x08, 0xac, 0x02, 0x12, 2, 0x08, 5, 0x1a, 0]
    );
}

#[test]
fn csi_controller_and_snapshot_field_numbers() {
    let create = csi::CreateVolumeRequest {
        name: "pvc".into(),                                                    // 1
        accessibility_requirements: Some(csi::TopologyRequirement::default()), // 7 -> 0x3a
        mutable_parameters: HashMap::from([("i".into(), "3".into())]),         // 8 -> 0x42
        ..Default::default()
    };
    assert_eq!(
        bytes(&create),
        [
            0x0a, 3, b'p', b'v', b'c', 0x3a, 0, 0x42, 6, 0x0a, 1, b'i', 0x12, 1, b'3'
        ]
    );

    let snapshot = csi::Snapshot {
        size_bytes: 1,                // 1
        snapshot_id: "s".into(),      // 2
        source_volume_id: "v".into(), // 3
        creation_time: Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        }), // 4
        ready_to_use: true,           // 5
        group_snapshot_id: "g".into(), // 6
    };
    assert_eq!(
        bytes(&snapshot),
        [
            0x08, 1, 0x12, 1, b's', 0x1a, 1, b'v', 0x22, 2, 0x08, 1, 0x28, 1, 0x32, 1, b'g',
        ]
    );

    // ListVolumesResponse.VolumeStatus: published_node_ids = 1, volume_condition = 2.
    let status = csi::list_volumes_response::VolumeStatus {
        published_node_ids: vec!["n".into()],
        volume_condition: Some(csi::VolumeCondition {
            abnormal: true,
            message: "m".into(),
        }),
    };
    assert_eq!(
        bytes(&status),
        [0x0a, 1, b'n', 0x12, 5, 0x08, 1, 0x12, 1, b'm']
    );
}

#[test]
fn csi_enum_values() {
    use csi::controller_service_capability::rpc::Type as ControllerRpc;
    use csi::group_controller_service_capability::rpc::Type as GroupRpc;
    use csi::node_service_capability::rpc::Type as NodeRpc;
    use csi::plugin_capability::service::Type as PluginService;
    use csi::volume_capability::access_mode::Mode;

    assert_eq!(PluginService::ControllerService as i32, 1);
    assert_eq!(PluginService::VolumeAccessibilityConstraints as i32, 2);
    assert_eq!(PluginService::GroupControllerService as i32, 3);
    assert_eq!(PluginService::SnapshotMetadataService as i32, 4);
    assert_eq!(Mode::MultiNodeMultiWriter as i32, 5);
    assert_eq!(Mode::SingleNodeSingleWriter as i32, 6);
    assert_eq!(Mode::SingleNodeMultiWriter as i32, 7);
    assert_eq!(ControllerRpc::ListVolumesPublishedNodes as i32, 10);
    assert_eq!(ControllerRpc::VolumeCondition as i32, 11);
    assert_eq!(ControllerRpc::GetVolume as i32, 12);
    assert_eq!(ControllerRpc::SingleNodeMultiWriter as i32, 13);
    assert_eq!(ControllerRpc::ModifyVolume as i32, 14);
    assert_eq!(NodeRpc::StageUnstageVolume as i32, 1);
    assert_eq!(NodeRpc::VolumeCondition as i32, 4);
    assert_eq!(NodeRpc::VolumeMountGroup as i32, 6);
    assert_eq!(GroupRpc::CreateDeleteGetVolumeGroupSnapshot as i32, 1);
    assert_eq!(csi::BlockMetadataType::VariableLength as i32, 2);
    assert_eq!(csi::volume_usage::Unit::Inodes as i32, 2);
}

// ------------------------------------------------------------- kubelet plugin registration

#[test]
fn pluginregistration_field_numbers() {
    let info = reg::PluginInfo {
        r#type: "T".into(),                       // 1
        name: "n".into(),                         // 2
        endpoint: "e".into(),                     // 3
        supported_versions: vec!["1.0.0".into()], // 4 -> 0x22
    };
    assert_eq!(
        bytes(&info),
        [
            0x0a, 1, b'T', 0x12, 1, b'n', 0x1a, 1, b'e', 0x22, 5, b'1', b'.', b'0', b'.', b'0'
        ]
    );

    let status = reg::RegistrationStatus {
        plugin_registered: true,
        error: "e".into(),
    };
    assert_eq!(bytes(&status), [0x08, 1, 0x12, 1, b'e']);
}

// --------------------------------------------------------------------- kubelet device plugins

#[test]
fn deviceplugin_device_and_topology_field_numbers() {
    // Device: ID = 1, health = 2, topology = 3; TopologyInfo.nodes = 1; NUMANode.ID = 1.
    let device = dp::Device {
        id: "G".into(),
        health: "H".into(),
        topology: Some(dp::TopologyInfo {
            nodes: vec![dp::NumaNode { id: 1 }],
        }),
    };
    assert_eq!(
        bytes(&device),
        [0x0a, 1, b'G', 0x12, 1, b'H', 0x1a, 4, 0x0a, 2, 0x08, 1]
    );

    let list = dp::ListAndWatchResponse {
        devices: vec![dp::Device {
            id: "G".into(),
            ..Default::default()
        }],
    };
    assert_eq!(bytes(&list), [0x0a, 3, 0x0a, 1, b'G']);
}

#[test]
fn deviceplugin_registration_field_numbers() {
    let request = dp::RegisterRequest {
        version: "v".into(),       // 1
        endpoint: "e".into(),      // 2
        resource_name: "r".into(), // 3
        options: Some(dp::DevicePluginOptions {
            pre_start_required: true,                 // 1
            get_preferred_allocation_available: true, // 2
        }), // 4
    };
    assert_eq!(
        bytes(&request),
        [
            0x0a, 1, b'v', 0x12, 1, b'e', 0x1a, 1, b'r', 0x22, 4, 0x08, 1, 0x10, 1
        ]
    );
}

#[test]
fn deviceplugin_allocation_field_numbers() {
    let preferred = dp::ContainerPreferredAllocationRequest {
        available_device_i_ds: vec!["a".into()],    // 1
        must_include_device_i_ds: vec!["m".into()], // 2
        allocation_size: 2,                         // 3 varint -> 0x18
    };
    assert_eq!(bytes(&preferred), [0x0a, 1, b'a', 0x12, 1, b'm', 0x18, 2]);

    let allocate = dp::ContainerAllocateRequest {
        devices_ids: vec!["d".into()],
    };
    assert_eq!(bytes(&allocate), [0x0a, 1, b'd']);

    let response = dp::ContainerAllocateResponse {
        envs: HashMap::from([("k".into(), "v".into())]), // 1
        mounts: vec![dp::Mount {
            container_path: "c".into(), // 1
            host_path: "h".into(),      // 2
            read_only: true,            // 3
        }], // 2
        devices: vec![dp::DeviceSpec {
            container_path: "c".into(), // 1
            host_path: "h".into(),      // 2
            permissions: "r".into(),    // 3
        }], // 3
        annotations: HashMap::from([("a".into(), "b".into())]), // 4
        cdi_devices: vec![dp::CdiDevice { name: "x".into() }], // 5 -> 0x2a
    };
    assert_eq!(
        bytes(&response),
        [
            0x0a, 6, 0x0a, 1, b'k', 0x12, 1, b'v', //
            0x12, 8, 0x0a, 1, b'c', 0x12, 1, b'h', 0x18, 1, //
            0x1a, 9, 0x0a, 1, b'c', 0x12, 1, b'h', 0x1a, 1, b'r', //
            0x22, 6, 0x0a, 1, b'a', 0x12, 1, b'b', //
            0x2a, 3, 0x0a, 1, b'x',
        ]
    );
}

// ------------------------------------------------------------- crate-provided bindings

#[test]
fn crate_provided_service_names() {
    use ferrolet_proto::health::v1::health_server;
    use ferrolet_proto::runtime::v1::{image_service_server, runtime_service_server};

    assert_eq!(
        runtime_service_server::SERVICE_NAME,
        "runtime.v1.RuntimeService"
    );
    assert_eq!(
        image_service_server::SERVICE_NAME,
        "runtime.v1.ImageService"
    );
    assert_eq!(health_server::SERVICE_NAME, "grpc.health.v1.Health");
}

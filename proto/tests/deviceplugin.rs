//! Round trips of the device plugin API over unix sockets: a plugin registers with the
//! kubelet's `Registration` service, and the kubelet side drives the plugin's `DevicePlugin`
//! service, including the server-streaming `ListAndWatch`.

mod common;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use ferrolet_proto::deviceplugin::v1beta1::device_plugin_client::DevicePluginClient;
use ferrolet_proto::deviceplugin::v1beta1::device_plugin_server::{self, DevicePluginServer};
use ferrolet_proto::deviceplugin::v1beta1::registration_client::RegistrationClient;
use ferrolet_proto::deviceplugin::v1beta1::registration_server::{self, RegistrationServer};
use ferrolet_proto::deviceplugin::v1beta1::{
    AllocateRequest, AllocateResponse, CdiDevice, ContainerAllocateRequest,
    ContainerAllocateResponse, ContainerPreferredAllocationRequest,
    ContainerPreferredAllocationResponse, Device, DevicePluginOptions, DeviceSpec, Empty,
    ListAndWatchResponse, Mount, NumaNode, PreStartContainerRequest, PreStartContainerResponse,
    PreferredAllocationRequest, PreferredAllocationResponse, RegisterRequest, TopologyInfo,
};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use common::UnixServer;

const HEALTHY: &str = "Healthy";
const UNHEALTHY: &str = "Unhealthy";

fn gpu(id: &str, health: &str, numa: i64) -> Device {
    Device {
        id: id.into(),
        health: health.into(),
        topology: Some(TopologyInfo {
            nodes: vec![NumaNode { id: numa }],
        }),
    }
}

/// A two-GPU plugin: the second GPU turns unhealthy after the first `ListAndWatch` update.
struct GpuPlugin {
    prestarted: Arc<Mutex<Vec<Vec<String>>>>,
}

type DeviceStream = Pin<Box<dyn Stream<Item = Result<ListAndWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl device_plugin_server::DevicePlugin for GpuPlugin {
    async fn get_device_plugin_options(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(DevicePluginOptions {
            pre_start_required: true,
            get_preferred_allocation_available: true,
        }))
    }

    type ListAndWatchStream = DeviceStream;

    async fn list_and_watch(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        let updates = vec![
            Ok(ListAndWatchResponse {
                devices: vec![gpu("GPU-0", HEALTHY, 0), gpu("GPU-1", HEALTHY, 1)],
            }),
            Ok(ListAndWatchResponse {
                devices: vec![gpu("GPU-0", HEALTHY, 0), gpu("GPU-1", UNHEALTHY, 1)],
            }),
        ];
        Ok(Response::new(Box::pin(tokio_stream::iter(updates))))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        // Must-include devices first, then fill from the available ones in order.
        let container_responses = request
            .into_inner()
            .container_requests
            .into_iter()
            .map(|req| {
                let size = usize::try_from(req.allocation_size).unwrap_or(0);
                let mut ids = req.must_include_device_i_ds;
                for id in req.available_device_i_ds {
                    if ids.len() >= size {
                        break;
                    }
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                ContainerPreferredAllocationResponse { device_i_ds: ids }
            })
            .collect();
        Ok(Response::new(PreferredAllocationResponse {
            container_responses,
        }))
    }

    async fn allocate(
        &self,
        request: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        let container_responses = request
            .into_inner()
            .container_requests
            .into_iter()
            .map(|req| ContainerAllocateResponse {
                envs: HashMap::from([("VISIBLE_GPUS".into(), req.devices_ids.join(","))]),
                mounts: vec![Mount {
                    container_path: "/usr/local/gpu".into(),
                    host_path: "/opt/gpu/lib".into(),
                    read_only: true,
                }],
                devices: req
                    .devices_ids
                    .iter()
                    .map(|id| DeviceSpec {
                        container_path: format!("/dev/{}", id.to_lowercase()),
                        host_path: format!("/dev/{}", id.to_lowercase()),
                        permissions: "rw".into(),
                    })
                    .collect(),
                annotations: HashMap::from([(
                    "example.com/gpus".into(),
                    req.devices_ids.len().to_string(),
                )]),
                cdi_devices: req
                    .devices_ids
                    .iter()
                    .map(|id| CdiDevice {
                        name: format!("example.com/gpu={id}"),
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(AllocateResponse {
            container_responses,
        }))
    }

    async fn pre_start_container(
        &self,
        request: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        self.prestarted
            .lock()
            .unwrap()
            .push(request.into_inner().devices_ids);
        Ok(Response::new(PreStartContainerResponse {}))
    }
}

#[tokio::test]
async fn device_plugin_round_trip_with_list_and_watch_stream() {
    let prestarted = Arc::new(Mutex::new(Vec::new()));
    let server = UnixServer::start(Server::builder().add_service(DevicePluginServer::new(
        GpuPlugin {
            prestarted: Arc::clone(&prestarted),
        },
    )));
    let mut client = DevicePluginClient::new(server.channel().await);

    let options = client
        .get_device_plugin_options(Empty {})
        .await
        .unwrap()
        .into_inner();
    assert!(options.pre_start_required);
    assert!(options.get_preferred_allocation_available);

    let updates: Vec<ListAndWatchResponse> = client
        .list_and_watch(Empty {})
        .await
        .unwrap()
        .into_inner()
        .map(|update| update.expect("stream item"))
        .collect()
        .await;
    assert_eq!(
        updates.len(),
        2,
        "both ListAndWatch updates arrive, in order"
    );
    assert_eq!(
        updates[0].devices,
        [gpu("GPU-0", HEALTHY, 0), gpu("GPU-1", HEALTHY, 1)]
    );
    assert_eq!(updates[1].devices[1].health, UNHEALTHY);
    assert_eq!(
        updates[1].devices[1].topology.as_ref().unwrap().nodes[0].id,
        1
    );

    let preferred = client
        .get_preferred_allocation(PreferredAllocationRequest {
            container_requests: vec![ContainerPreferredAllocationRequest {
                available_device_i_ds: vec!["GPU-0".into(), "GPU-1".into(), "GPU-2".into()],
                must_include_device_i_ds: vec!["GPU-2".into()],
                allocation_size: 2,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        preferred.container_responses[0].device_i_ds,
        ["GPU-2", "GPU-0"]
    );

    let allocated = client
        .allocate(AllocateRequest {
            container_requests: vec![
                ContainerAllocateRequest {
                    devices_ids: vec!["GPU-0".into(), "GPU-1".into()],
                },
                ContainerAllocateRequest {
                    devices_ids: vec!["GPU-1".into()],
                },
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(allocated.container_responses.len(), 2);
    let first = &allocated.container_responses[0];
    assert_eq!(first.envs["VISIBLE_GPUS"], "GPU-0,GPU-1");
    assert_eq!(first.annotations["example.com/gpus"], "2");
    assert_eq!(first.mounts[0].host_path, "/opt/gpu/lib");
    assert!(first.mounts[0].read_only);
    assert_eq!(first.devices[1].container_path, "/dev/gpu-1");
    assert_eq!(first.devices[1].permissions, "rw");
    assert_eq!(
        first.cdi_devices,
        [
            CdiDevice {
                name: "example.com/gpu=GPU-0".into()
            },
            CdiDevice {
                name: "example.com/gpu=GPU-1".into()
            },
        ]
    );
    assert_eq!(
        allocated.container_responses[1].envs["VISIBLE_GPUS"],
        "GPU-1"
    );

    client
        .pre_start_container(PreStartContainerRequest {
            devices_ids: vec!["GPU-1".into()],
        })
        .await
        .unwrap();
    assert_eq!(*prestarted.lock().unwrap(), [vec!["GPU-1".to_string()]]);

    server.stop().await;
}

/// The kubelet side: accepts registrations for the `v1beta1` API only.
struct Kubelet {
    registered: Arc<Mutex<Vec<RegisterRequest>>>,
}

#[tonic::async_trait]
impl registration_server::Registration for Kubelet {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let request = request.into_inner();
        if request.version != "v1beta1" {
            return Err(Status::invalid_argument(format!(
                "unsupported device plugin API version {:?}",
                request.version
            )));
        }
        self.registered.lock().unwrap().push(request);
        Ok(Response::new(Empty {}))
    }
}

#[tokio::test]
async fn register_with_kubelet_round_trip() {
    let registered = Arc::new(Mutex::new(Vec::new()));
    let server = UnixServer::start(Server::builder().add_service(RegistrationServer::new(
        Kubelet {
            registered: Arc::clone(&registered),
        },
    )));
    let mut client = RegistrationClient::new(server.channel().await);

    let request = RegisterRequest {
        version: "v1beta1".into(),
        endpoint: "example-gpu.sock".into(),
        resource_name: "example.com/gpu".into(),
        options: Some(DevicePluginOptions {
            pre_start_required: false,
            get_preferred_allocation_available: true,
        }),
    };
    client.register(request.clone()).await.unwrap();
    assert_eq!(
        registered.lock().unwrap().as_slice(),
        std::slice::from_ref(&request)
    );

    let rejected = client
        .register(RegisterRequest {
            version: "v1alpha".into(),
            ..request
        })
        .await
        .unwrap_err();
    assert_eq!(rejected.code(), tonic::Code::InvalidArgument);
    assert!(
        rejected.message().contains("v1alpha"),
        "{}",
        rejected.message()
    );
    assert_eq!(registered.lock().unwrap().len(), 1);

    // Device plugins dial this exact path on kubelet.sock.
    assert_eq!(registration_server::SERVICE_NAME, "v1beta1.Registration");
    assert_eq!(device_plugin_server::SERVICE_NAME, "v1beta1.DevicePlugin");
    let _: Empty = common::raw_unary(
        server.channel().await,
        "/v1beta1.Registration/Register",
        RegisterRequest {
            version: "v1beta1".into(),
            ..RegisterRequest::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(registered.lock().unwrap().len(), 2);

    server.stop().await;
}

//! The hostpath driver's `Identity` and `Controller` services.

use std::sync::Arc;

use ferrolet_proto::csi::v1 as csi;
use ferrolet_proto::csi::v1::controller_server::Controller;
use ferrolet_proto::csi::v1::identity_server::Identity;
use tonic::{Request, Response, Status};

use super::store::VolumeStore;

/// `Identity`: who the driver is and that it is ready.
#[derive(Debug)]
pub struct IdentityService {
    pub name: String,
    pub version: String,
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _request: Request<csi::GetPluginInfoRequest>,
    ) -> Result<Response<csi::GetPluginInfoResponse>, Status> {
        Ok(Response::new(csi::GetPluginInfoResponse {
            name: self.name.clone(),
            vendor_version: self.version.clone(),
            manifest: std::collections::HashMap::new(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _request: Request<csi::GetPluginCapabilitiesRequest>,
    ) -> Result<Response<csi::GetPluginCapabilitiesResponse>, Status> {
        use csi::plugin_capability::{Service, Type, service};
        Ok(Response::new(csi::GetPluginCapabilitiesResponse {
            capabilities: vec![csi::PluginCapability {
                r#type: Some(Type::Service(Service {
                    r#type: service::Type::ControllerService.into(),
                })),
            }],
        }))
    }

    async fn probe(
        &self,
        _request: Request<csi::ProbeRequest>,
    ) -> Result<Response<csi::ProbeResponse>, Status> {
        Ok(Response::new(csi::ProbeResponse { ready: Some(true) }))
    }
}

/// `Controller`: volumes created and deleted with their capacity.
#[derive(Debug)]
pub struct ControllerService {
    pub store: Arc<VolumeStore>,
}

fn bytes(value: i64, what: &str) -> Result<u64, Status> {
    u64::try_from(value).map_err(|_| Status::invalid_argument(format!("{what} is negative")))
}

fn check_capabilities(capabilities: &[csi::VolumeCapability]) -> Result<(), Status> {
    if capabilities.is_empty() {
        return Err(Status::invalid_argument(
            "volume capabilities missing in request",
        ));
    }
    for capability in capabilities {
        if matches!(
            capability.access_type,
            Some(csi::volume_capability::AccessType::Block(_))
        ) {
            return Err(Status::invalid_argument(
                "block access is not supported: volumes are directories",
            ));
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn create_volume(
        &self,
        request: Request<csi::CreateVolumeRequest>,
    ) -> Result<Response<csi::CreateVolumeResponse>, Status> {
        let request = request.into_inner();
        if request.name.is_empty() {
            return Err(Status::invalid_argument("volume name missing in request"));
        }
        check_capabilities(&request.volume_capabilities)?;
        if request.volume_content_source.is_some() {
            return Err(Status::invalid_argument(
                "volume content sources (snapshots, clones) are not supported",
            ));
        }
        let range = request.capacity_range.unwrap_or_default();
        let required = bytes(range.required_bytes, "required bytes")?;
        let limit = bytes(range.limit_bytes, "limit bytes")?;
        let id = VolumeStore::id_for_name(&request.name);
        let store = self.store.clone();
        let name = request.name.clone();
        let record =
            tokio::task::spawn_blocking(move || store.create(&id, &name, required, limit, false))
                .await
                .map_err(|err| Status::internal(err.to_string()))??;
        tracing::info!(volume = %record.id, name = %record.name, capacity = record.capacity_bytes, "volume created");
        Ok(Response::new(csi::CreateVolumeResponse {
            volume: Some(csi::Volume {
                capacity_bytes: i64::try_from(record.capacity_bytes).unwrap_or(i64::MAX),
                volume_id: record.id,
                volume_context: request.parameters,
                content_source: None,
                accessible_topology: Vec::new(),
            }),
        }))
    }

    async fn delete_volume(
        &self,
        request: Request<csi::DeleteVolumeRequest>,
    ) -> Result<Response<csi::DeleteVolumeResponse>, Status> {
        let id = request.into_inner().volume_id;
        if id.is_empty() {
            return Err(Status::invalid_argument("volume ID missing in request"));
        }
        let store = self.store.clone();
        let deleted = id.clone();
        tokio::task::spawn_blocking(move || store.delete(&deleted))
            .await
            .map_err(|err| Status::internal(err.to_string()))??;
        tracing::info!(volume = %id, "volume deleted");
        Ok(Response::new(csi::DeleteVolumeResponse {}))
    }

    async fn validate_volume_capabilities(
        &self,
        request: Request<csi::ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<csi::ValidateVolumeCapabilitiesResponse>, Status> {
        let request = request.into_inner();
        if self.store.get(&request.volume_id)?.is_none() {
            return Err(Status::not_found(format!(
                "volume {} not found",
                request.volume_id
            )));
        }
        check_capabilities(&request.volume_capabilities)?;
        Ok(Response::new(csi::ValidateVolumeCapabilitiesResponse {
            confirmed: Some(csi::validate_volume_capabilities_response::Confirmed {
                volume_context: request.volume_context,
                volume_capabilities: request.volume_capabilities,
                parameters: request.parameters,
                mutable_parameters: request.mutable_parameters,
            }),
            message: String::new(),
        }))
    }

    async fn get_capacity(
        &self,
        _request: Request<csi::GetCapacityRequest>,
    ) -> Result<Response<csi::GetCapacityResponse>, Status> {
        let available = self.store.available()?;
        Ok(Response::new(csi::GetCapacityResponse {
            available_capacity: i64::try_from(available).unwrap_or(i64::MAX),
            maximum_volume_size: None,
            minimum_volume_size: None,
        }))
    }

    async fn controller_get_capabilities(
        &self,
        _request: Request<csi::ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<csi::ControllerGetCapabilitiesResponse>, Status> {
        use csi::controller_service_capability::{Rpc, Type, rpc};
        let capability = |kind: rpc::Type| csi::ControllerServiceCapability {
            r#type: Some(Type::Rpc(Rpc {
                r#type: kind.into(),
            })),
        };
        Ok(Response::new(csi::ControllerGetCapabilitiesResponse {
            capabilities: vec![
                capability(rpc::Type::CreateDeleteVolume),
                capability(rpc::Type::GetCapacity),
            ],
        }))
    }
}

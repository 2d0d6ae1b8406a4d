//! What node-driver-registrar does for a CSI driver: serve `pluginregistration.Registration`
//! on `<kubelet-root>/plugins_registry/<driver>-reg.sock` so the kubelet's plugin watcher
//! finds the driver and learns its CSI endpoint.

use std::path::PathBuf;

use ferrolet_proto::pluginregistration::v1 as reg;
use ferrolet_proto::pluginregistration::v1::registration_server::Registration;
use tonic::{Request, Response, Status};

use crate::watcher::CSI_PLUGIN_TYPE;

/// The CSI versions the driver announces.
pub const SUPPORTED_VERSIONS: &[&str] = &["1.0.0"];

/// Answers the kubelet's registration handshake.
#[derive(Debug)]
pub struct Registrar {
    pub driver_name: String,
    /// The driver's CSI socket, as the kubelet should dial it.
    pub endpoint: PathBuf,
}

#[tonic::async_trait]
impl Registration for Registrar {
    async fn get_info(
        &self,
        _request: Request<reg::InfoRequest>,
    ) -> Result<Response<reg::PluginInfo>, Status> {
        Ok(Response::new(reg::PluginInfo {
            r#type: CSI_PLUGIN_TYPE.to_owned(),
            name: self.driver_name.clone(),
            endpoint: self.endpoint.to_string_lossy().into_owned(),
            supported_versions: SUPPORTED_VERSIONS.iter().map(|v| (*v).to_owned()).collect(),
        }))
    }

    async fn notify_registration_status(
        &self,
        request: Request<reg::RegistrationStatus>,
    ) -> Result<Response<reg::RegistrationStatusResponse>, Status> {
        let status = request.into_inner();
        if status.plugin_registered {
            tracing::info!(driver = %self.driver_name, "registered with the kubelet");
        } else {
            tracing::error!(driver = %self.driver_name, error = %status.error, "the kubelet refused the registration");
        }
        Ok(Response::new(reg::RegistrationStatusResponse {}))
    }
}

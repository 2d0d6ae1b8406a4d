//! Round trip of the kubelet plugin-registration handshake over a unix socket: the plugin
//! serves `Registration`, the kubelet side calls `GetInfo` then `NotifyRegistrationStatus`.

mod common;

use std::sync::{Arc, Mutex};

use ferrolet_proto::pluginregistration::v1::registration_client::RegistrationClient;
use ferrolet_proto::pluginregistration::v1::registration_server::{self, RegistrationServer};
use ferrolet_proto::pluginregistration::v1::{
    InfoRequest, PluginInfo, RegistrationStatus, RegistrationStatusResponse,
};
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use common::UnixServer;

/// A CSI driver's registrar: answers `GetInfo` and remembers every status it is told.
struct Registrar {
    info: PluginInfo,
    statuses: Arc<Mutex<Vec<RegistrationStatus>>>,
}

#[tonic::async_trait]
impl registration_server::Registration for Registrar {
    async fn get_info(&self, _: Request<InfoRequest>) -> Result<Response<PluginInfo>, Status> {
        Ok(Response::new(self.info.clone()))
    }

    async fn notify_registration_status(
        &self,
        request: Request<RegistrationStatus>,
    ) -> Result<Response<RegistrationStatusResponse>, Status> {
        self.statuses.lock().unwrap().push(request.into_inner());
        Ok(Response::new(RegistrationStatusResponse {}))
    }
}

fn csi_plugin_info() -> PluginInfo {
    PluginInfo {
        r#type: "CSIPlugin".into(),
        name: "hostpath.csi.k8s.io".into(),
        endpoint: "/var/lib/kubelet/plugins/csi-hostpath/csi.sock".into(),
        supported_versions: vec!["1.0.0".into(), "1.10.0".into()],
    }
}

#[tokio::test]
async fn get_info_and_notify_status_round_trip() {
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let server = UnixServer::start(Server::builder().add_service(RegistrationServer::new(
        Registrar {
            info: csi_plugin_info(),
            statuses: Arc::clone(&statuses),
        },
    )));
    let mut client = RegistrationClient::new(server.channel().await);

    let info = client.get_info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info, csi_plugin_info());
    assert_eq!(info.supported_versions, ["1.0.0", "1.10.0"]);

    client
        .notify_registration_status(RegistrationStatus {
            plugin_registered: false,
            error: "plugin name hostpath.csi.k8s.io already registered".into(),
        })
        .await
        .unwrap();
    client
        .notify_registration_status(RegistrationStatus {
            plugin_registered: true,
            error: String::new(),
        })
        .await
        .unwrap();

    let seen = statuses.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(!seen[0].plugin_registered);
    assert_eq!(
        seen[0].error,
        "plugin name hostpath.csi.k8s.io already registered"
    );
    assert!(seen[1].plugin_registered);
    assert!(seen[1].error.is_empty());

    server.stop().await;
}

#[tokio::test]
async fn method_paths_match_the_kubelet() {
    // The kubelet's pluginwatcher calls these exact paths; the package is
    // "pluginregistration", not "pluginregistration.v1".
    assert_eq!(
        registration_server::SERVICE_NAME,
        "pluginregistration.Registration"
    );

    let server = UnixServer::start(Server::builder().add_service(RegistrationServer::new(
        Registrar {
            info: csi_plugin_info(),
            statuses: Arc::default(),
        },
    )));
    let info: PluginInfo = common::raw_unary(
        server.channel().await,
        "/pluginregistration.Registration/GetInfo",
        InfoRequest {},
    )
    .await
    .unwrap();
    assert_eq!(info.name, "hostpath.csi.k8s.io");

    let wrong_package = common::raw_unary::<InfoRequest, PluginInfo>(
        server.channel().await,
        "/pluginregistration.v1.Registration/GetInfo",
        InfoRequest {},
    )
    .await
    .unwrap_err();
    assert_eq!(wrong_package.code(), tonic::Code::Unimplemented);

    server.stop().await;
}

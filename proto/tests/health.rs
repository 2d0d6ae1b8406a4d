//! `grpc.health.v1` through the re-exports: a reporter flips a service's status and a client
//! sees it over a unix socket, both via `Check` and the `Watch` stream.

mod common;

use ferrolet_proto::health::v1::health_check_response::ServingStatus as WireStatus;
use ferrolet_proto::health::v1::health_client::HealthClient;
use ferrolet_proto::health::v1::{HealthCheckRequest, HealthCheckResponse};
use ferrolet_proto::health::{ServingStatus, health_reporter};
use tokio_stream::StreamExt;
use tonic::transport::Server;

use common::UnixServer;

#[tokio::test]
async fn health_check_and_watch_round_trip() {
    let (reporter, service) = health_reporter();
    reporter
        .set_service_status("csi.v1.Node", ServingStatus::NotServing)
        .await;
    let server = UnixServer::start(Server::builder().add_service(service));
    let mut client = HealthClient::new(server.channel().await);

    let check = |name: &str| HealthCheckRequest {
        service: name.into(),
    };
    let status = client
        .check(check("csi.v1.Node"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status(), WireStatus::NotServing);

    let unknown = client.check(check("no.such.Service")).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let mut watch = client
        .watch(check("csi.v1.Node"))
        .await
        .unwrap()
        .into_inner();
    let first: HealthCheckResponse = watch.next().await.unwrap().unwrap();
    assert_eq!(first.status(), WireStatus::NotServing);

    reporter
        .set_service_status("csi.v1.Node", ServingStatus::Serving)
        .await;
    let second = watch.next().await.unwrap().unwrap();
    assert_eq!(second.status(), WireStatus::Serving);
    let status: HealthCheckResponse = common::raw_unary(
        server.channel().await,
        "/grpc.health.v1.Health/Check",
        check("csi.v1.Node"),
    )
    .await
    .unwrap();
    assert_eq!(status.status(), WireStatus::Serving);

    drop(watch);
    server.stop().await;
}

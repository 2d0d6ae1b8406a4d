//! pods/log and the upgrade subresources (exec, attach, port-forward) are proxied to the
//! kubelet of the pod's node, with the API server's kubelet-client certificate.
//!
//! The kubelet here is a stand-in HTTPS server (ferrolet's own kubelet server is a later
//! milestone): it checks that the caller presents a certificate of the cluster CA, echoes what
//! it was asked, and answers an upgrade by echoing bytes back.

mod common;

use std::sync::Arc;

use common::Cluster;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves like a kubelet on 127.0.0.1; returns its port.
async fn fake_kubelet(ca_pem: &str) -> u16 {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let caller = tls.get_ref().1.peer_certificates().map_or(0, <[_]>::len);
                let service = hyper::service::service_fn(
                    move |mut request: hyper::Request<hyper::body::Incoming>| async move {
                        let target = request.uri().to_string();
                        if request.headers().contains_key(http::header::UPGRADE) {
                            let upgrade = hyper::upgrade::on(&mut request);
                            tokio::spawn(async move {
                                let mut io = TokioIo::new(upgrade.await.unwrap());
                                let mut buf = [0_u8; 64];
                                while let Ok(n) = io.read(&mut buf).await {
                                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            });
                            return Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(101)
                                    .header("connection", "Upgrade")
                                    .header("upgrade", "SPDY/3.1")
                                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                                    .unwrap(),
                            );
                        }
                        let body = format!(
                            "kubelet saw {target} from a caller with {caller} certificate(s)\n"
                        );
                        Ok(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(body),
                        )))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_and_streams_reach_the_kubelet() {
    let cluster = Cluster::start().await;
    let ca = std::fs::read_to_string(cluster.dir.path().join("data/pki/ca.crt")).unwrap();
    let port = fake_kubelet(&ca).await;
    let client = cluster.client().await;
    let node: Node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}},
    }))
    .unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "x"}]}})).unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod).await.unwrap();

    let logs = cluster.ok(&["logs", "p", "--tail=2", "--timestamps"]).await;
    assert!(
        logs.starts_with("kubelet saw /containerLogs/default/p/app?"),
        "{logs}"
    );
    assert!(
        logs.contains("tailLines=2") && logs.contains("timestamps=true"),
        "{logs}"
    );
    assert!(
        logs.contains("with 1 certificate"),
        "the API server presented its client certificate: {logs}"
    );

    // A pod without a node has no logs to fetch.
    let pending: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "pending"}, "spec": {"containers": [{"name": "a", "image": "x"}]}})).unwrap();
    pods.create(&PostParams::default(), &pending).await.unwrap();
    let out = cluster.kubectl(&["logs", "pending"]).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not have a host assigned"),
        "{out:?}"
    );

    // An upgrade goes through byte for byte.
    let request = http::Request::builder()
        .method("POST")
        .uri("/api/v1/namespaces/default/pods/p/exec?command=sh&stdin=true&stdout=true")
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1")
        .body(kube::client::Body::empty())
        .unwrap();
    let mut response = client.send(request).await.unwrap();
    assert_eq!(response.status(), 101);
    let upgraded = hyper::upgrade::on(&mut response).await.unwrap();
    let mut io = TokioIo::new(upgraded);
    io.write_all(b"ping").await.unwrap();
    let mut echoed = [0_u8; 4];
    io.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");
    drop(io);
    let _ = response.into_body().collect().await;
    cluster.stop().await;
}

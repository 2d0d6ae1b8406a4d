//! `KubeVolumeSources` against a scripted API server on loopback: the requests it makes and
//! how it reads the answers (a light check; the end-to-end tests use a real API server).

use std::sync::{Arc, Mutex};

use ferrolet_agent::volumes::{
    KubeVolumeSources, ServiceAccountTokenRequest, SourceError, VolumeSources,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Requests seen: (method, path, body).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

async fn serve(listener: TcpListener, seen: Seen) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = stream.read(&mut chunk).await.unwrap();
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break (head.to_owned(), body.to_owned());
                    }
                }
            };
            let mut request_line = head.lines().next().unwrap().split(' ');
            let method = request_line.next().unwrap().to_owned();
            let target = request_line.next().unwrap();
            let path = target.split('?').next().unwrap().to_owned();
            seen.lock()
                .unwrap()
                .push((method.clone(), path.clone(), body));
            let (status, answer) = match (method.as_str(), path.as_str()) {
                ("GET", "/api/v1/namespaces/ns/configmaps/cfg") => (
                    "200 OK",
                    r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg","namespace":"ns"},"data":{"k":"v"}}"#,
                ),
                ("GET", "/api/v1/namespaces/ns/secrets/sec") => (
                    "200 OK",
                    r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"sec","namespace":"ns"},"data":{"k":"dg=="}}"#,
                ),
                ("POST", "/api/v1/namespaces/ns/serviceaccounts/builder/token") => (
                    "201 Created",
                    r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"audiences":["api"],"expirationSeconds":3607},"status":{"token":"jwt","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#,
                ),
                ("GET", _) => (
                    "404 Not Found",
                    r#"{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"NotFound","code":404,"message":"not found"}"#,
                ),
                _ => (
                    "500 Internal Server Error",
                    r#"{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"InternalError","code":500,"message":"boom"}"#,
                ),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

#[tokio::test]
async fn kube_sources_get_objects_and_request_bound_tokens() {
    // kube's client builds a TLS connector even for http:// and needs a crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let server = tokio::spawn(serve(listener, seen.clone()));
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n\
         users: [{{name: u, user: {{}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
    ))
    .unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let sources = KubeVolumeSources::new(kube::Client::try_from(config).unwrap());

    let cm = sources.config_map("ns", "cfg").await.unwrap().unwrap();
    assert_eq!(cm.data.unwrap()["k"], "v");
    assert!(sources.config_map("ns", "missing").await.unwrap().is_none());
    let secret = sources.secret("ns", "sec").await.unwrap().unwrap();
    assert_eq!(secret.data.unwrap()["k"].0, b"v");
    assert!(sources.secret("ns", "missing").await.unwrap().is_none());

    let request = ServiceAccountTokenRequest {
        namespace: "ns".into(),
        service_account: "builder".into(),
        audiences: vec!["api".into()],
        expiration_seconds: 3607,
        pod_name: "web".into(),
        pod_uid: "uid-1".into(),
    };
    let token = sources.service_account_token(&request).await.unwrap();
    assert_eq!(token.token, "jwt");
    assert_eq!(token.expiration, "2030-01-01T00:00:00Z".parse().unwrap());
    let body: serde_json::Value =
        serde_json::from_str(&seen.lock().unwrap().last().unwrap().2).unwrap();
    assert_eq!(body["spec"]["audiences"], serde_json::json!(["api"]));
    assert_eq!(body["spec"]["expirationSeconds"], 3607);
    assert_eq!(
        body["spec"]["boundObjectRef"],
        serde_json::json!({"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-1"})
    );

    let failed = sources
        .service_account_token(&ServiceAccountTokenRequest {
            service_account: "other".into(),
            ..request
        })
        .await
        .unwrap_err();
    assert!(
        matches!(failed, SourceError::TokenRequestFailed { .. }),
        "{failed:?}"
    );
    assert!(
        failed
            .to_string()
            .starts_with("failed to fetch token for service account \"ns/other\""),
        "{failed}"
    );
    server.abort();
}

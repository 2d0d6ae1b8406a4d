//! Kubeconfigs as the real kubectl reads them, and kubectl talking TLS to a server built on
//! the PKI's `ServerConfig`, the authenticator and the authorizer.
//!
//! Needs kubectl at /usr/bin/kubectl (Debian package `kubectl`, or `hack/install-deps`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use ferrolet_controlplane::auth::authenticator::Authenticator;
use ferrolet_controlplane::auth::pki::ServingIdentity;
use ferrolet_controlplane::auth::{
    ClusterPki, Decision, InMemoryObjectLookup, Kubeconfig, RequestAttributes, StaticTokens,
    authorize, forbidden_message_with_reason,
};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const KUBECTL: &str = "/usr/bin/kubectl";
const ALICE_TOKEN: &str = "31ada4fd-adec-460c-809a-9e56ceb75269";

fn kubectl_path() -> &'static str {
    assert!(
        Path::new(KUBECTL).exists(),
        "{KUBECTL} is missing: install the Debian package kubectl (hack/install-deps)"
    );
    KUBECTL
}

async fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let cache = kubeconfig.with_extension("cache");
    let output = tokio::process::Command::new(kubectl_path())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(&cache)
        .args(args)
        .env_remove("KUBECONFIG")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run kubectl");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn pki_in(dir: &Path) -> ClusterPki {
    ClusterPki::load_or_create(&dir.join("pki"), &ServingIdentity::default()).expect("pki")
}

#[tokio::test]
async fn kubectl_reads_the_admin_kubeconfig() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki_in(dir.path());
    let path = dir.path().join("admin.conf");
    Kubeconfig::admin(&pki, "https://127.0.0.1:6443")
        .write_to(&path)
        .expect("write kubeconfig");
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let (ok, stdout, stderr) = kubectl(
        &path,
        &[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
    )
    .await;
    assert!(ok, "kubectl failed: {stderr}");
    assert_eq!(stdout, "https://127.0.0.1:6443");

    let (ok, stdout, stderr) = kubectl(&path, &["config", "view", "--raw", "-o", "json"]).await;
    assert!(ok, "kubectl failed: {stderr}");
    let config: serde_json::Value = serde_json::from_str(&stdout).expect("kubectl prints JSON");
    assert_eq!(config["current-context"], "kubernetes-admin@ferrolet");
    assert_eq!(config["contexts"][0]["context"]["user"], "kubernetes-admin");
    assert_eq!(config["contexts"][0]["context"]["cluster"], "ferrolet");
    let data = |v: &serde_json::Value| {
        String::from_utf8(
            STANDARD
                .decode(v.as_str().expect("string"))
                .expect("base64"),
        )
        .expect("utf-8")
    };
    assert_eq!(
        data(&config["clusters"][0]["cluster"]["certificate-authority-data"]),
        pki.ca_certificate_pem()
    );
    assert_eq!(
        data(&config["users"][0]["user"]["client-certificate-data"]),
        pki.admin().certificate_pem
    );
    assert_eq!(
        data(&config["users"][0]["user"]["client-key-data"]),
        pki.admin().key_pem
    );
}

#[tokio::test]
async fn kubectl_reads_a_token_kubeconfig() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki_in(dir.path());
    let path = dir.path().join("alice.conf");
    let mut config = Kubeconfig::for_token(&pki, "https://127.0.0.1:6443", "alice", ALICE_TOKEN);
    config.namespace = Some("dev".to_owned());
    config.write_to(&path).expect("write kubeconfig");
    let (ok, stdout, stderr) = kubectl(
        &path,
        &[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.users[0].user.token} {.contexts[0].context.namespace}",
        ],
    )
    .await;
    assert!(ok, "kubectl failed: {stderr}");
    assert_eq!(stdout, format!("{ALICE_TOKEN} dev"));
}

/// A minimal API server: TLS from the PKI, then authentication and authorization of every
/// request; `/version` answers, the pod list of `default` answers an empty list.
async fn serve(pki: &ClusterPki, authenticator: Authenticator) -> SocketAddr {
    let acceptor = TlsAcceptor::from(Arc::new(pki.server_config().expect("server config")));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let authenticator = Arc::new(authenticator);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let authenticator = authenticator.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let peer = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|chain| chain[0].to_vec());
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let response = handle(&authenticator, peer.as_deref(), &req);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

fn handle<B>(
    authenticator: &Authenticator,
    peer: Option<&[u8]>,
    req: &Request<B>,
) -> Response<Full<Bytes>> {
    let lookup = InMemoryObjectLookup::new();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let Ok(user) = authenticator.authenticate(peer, authorization, &lookup) else {
        return json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
        );
    };
    let path = req.uri().path();
    let attrs = if path == "/api/v1/namespaces/default/pods" {
        RequestAttributes::resource("list", "", "pods", "default", "")
    } else {
        RequestAttributes::non_resource("get", path)
    };
    if let Decision::Deny { reason } = authorize(&user, &attrs, &lookup) {
        let message = forbidden_message_with_reason(&user, &attrs, &reason);
        return json(
            StatusCode::FORBIDDEN,
            &serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": message, "reason": "Forbidden",
                "details": {"kind": attrs.resource}, "code": 403}),
        );
    }
    match path {
        "/version" => json(
            StatusCode::OK,
            &serde_json::json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-ferrolet",
                "gitCommit": "", "gitTreeState": "clean", "buildDate": "", "goVersion": "",
                "compiler": "rustc", "platform": "linux/amd64", "user": user.name}),
        ),
        "/api/v1/namespaces/default/pods" => json(
            StatusCode::OK,
            &serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []}),
        ),
        _ => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"kind": "Status", "code": 404}),
        ),
    }
}

#[tokio::test]
async fn kubectl_authenticates_with_the_admin_certificate_and_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki_in(dir.path());
    let tokens = StaticTokens::parse(&format!("{ALICE_TOKEN},alice,1001,\"dev,ops\"\n"))
        .expect("token file");
    let addr = serve(&pki, Authenticator::new(tokens, None, true)).await;
    let server = format!("https://localhost:{}", addr.port());

    let admin = dir.path().join("admin.conf");
    Kubeconfig::admin(&pki, &server)
        .write_to(&admin)
        .expect("admin kubeconfig");
    let (ok, stdout, stderr) = kubectl(&admin, &["get", "--raw", "/version"]).await;
    assert!(ok, "kubectl with the admin certificate failed: {stderr}");
    let version: serde_json::Value = serde_json::from_str(&stdout).expect("version JSON");
    assert_eq!(
        version["user"], "kubernetes-admin",
        "the server saw the client certificate"
    );
    let (ok, stdout, stderr) =
        kubectl(&admin, &["get", "--raw", "/api/v1/namespaces/default/pods"]).await;
    assert!(ok, "system:masters may list pods: {stderr}");
    assert!(stdout.contains("PodList"), "{stdout}");

    let alice = dir.path().join("alice.conf");
    Kubeconfig::for_token(&pki, &server, "alice", ALICE_TOKEN)
        .write_to(&alice)
        .expect("token kubeconfig");
    let (ok, stdout, stderr) = kubectl(&alice, &["get", "--raw", "/version"]).await;
    assert!(ok, "kubectl with a token failed: {stderr}");
    let version: serde_json::Value = serde_json::from_str(&stdout).expect("version JSON");
    assert_eq!(version["user"], "alice");
    let (ok, _, stderr) =
        kubectl(&alice, &["get", "--raw", "/api/v1/namespaces/default/pods"]).await;
    assert!(!ok, "alice may not list pods");
    assert!(
        stderr.contains(
            "Error from server (Forbidden): pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        ),
        "{stderr}"
    );

    let wrong = dir.path().join("wrong.conf");
    Kubeconfig::for_token(&pki, &server, "mallory", "not-a-token")
        .write_to(&wrong)
        .expect("token kubeconfig");
    let (ok, _, stderr) = kubectl(&wrong, &["get", "--raw", "/version"]).await;
    assert!(!ok, "an unknown token is refused");
    assert!(stderr.contains("Unauthorized"), "{stderr}");
}

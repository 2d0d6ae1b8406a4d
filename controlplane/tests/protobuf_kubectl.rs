//! What the real kubectl sends: a loopback HTTP server records the protobuf bodies of
//! `kubectl create ...`, answers with the JSON `decode_request` made of them (so kubectl also
//! proves it accepts those JSON answers), and each decoded body must equal the expected
//! Kubernetes JSON and the JSON kubectl itself prints for the same object
//! (`--dry-run=client -o json`, Go's `encoding/json`).
//!
//! Needs kubectl at /usr/bin/kubectl (`hack/install-deps`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ferrolet_controlplane::api::protobuf::{decode_request, is_protobuf};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value as Json, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const KUBECTL: &str = "/usr/bin/kubectl";

/// One POST the server received.
#[derive(Debug, Clone)]
struct Captured {
    path: String,
    content_type: String,
    body: Bytes,
}

/// The recording server; stops when dropped.
struct Recorder {
    addr: SocketAddr,
    posts: Arc<Mutex<Vec<Captured>>>,
    task: JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let posts = Arc::new(Mutex::new(Vec::new()));
        let recorded = posts.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let recorded = recorded.clone();
                        async move { Ok::<_, Infallible>(handle(req, &recorded).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self { addr, posts, task }
    }

    fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.posts.lock().expect("lock"))
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    recorded: &Mutex<Vec<Captured>>,
) -> Response<Full<Bytes>> {
    let json = |status: StatusCode, body: &Json| {
        Response::builder()
            .status(status)
            .header("Content-Type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("response")
    };
    // The gcloud kubectl dispatcher asks for the server version to pick its kubectl; 1.33
    // makes it run kubectl 1.33. A plain kubectl does not ask for `create`.
    if req.method() == Method::GET && req.uri().path() == "/version" {
        return json(
            StatusCode::OK,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.1", "platform": "linux/amd64"}),
        );
    }
    if req.method() != Method::POST {
        return json(
            StatusCode::NOT_FOUND,
            &status(404, "NotFound", "not served here"),
        );
    }
    let path = req.uri().path().to_owned();
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .expect("request body")
        .to_bytes();
    recorded.lock().expect("lock").push(Captured {
        path,
        content_type: content_type.clone(),
        body: body.clone(),
    });
    let decoded = if is_protobuf(&content_type) {
        decode_request(&body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    };
    match decoded {
        Ok(object) => json(StatusCode::CREATED, &object),
        Err(message) => json(
            StatusCode::BAD_REQUEST,
            &status(400, "BadRequest", &message),
        ),
    }
}

fn status(code: u16, reason: &str, message: &str) -> Json {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    })
}

fn kubectl_path() -> &'static str {
    assert!(
        Path::new(KUBECTL).exists(),
        "{KUBECTL} is missing: run hack/install-deps (it installs kubectl)"
    );
    KUBECTL
}

/// Runs kubectl against `server` with an empty kubeconfig; (success, stdout, stderr).
async fn kubectl(dir: &Path, server: SocketAddr, args: &[&str]) -> (bool, String, String) {
    let kubeconfig: PathBuf = dir.join("kubeconfig");
    if !kubeconfig.exists() {
        std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\n").expect("write kubeconfig");
    }
    let run = tokio::process::Command::new(kubectl_path())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--server")
        .arg(format!("http://{server}"))
        .args(args)
        .env_remove("KUBECONFIG")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_mins(1), run)
        .await
        .expect("kubectl finishes within a minute")
        .expect("run kubectl");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `kubectl create ...`, returns the one POST it made, decoded, after checking that
/// kubectl accepted the JSON answer; and what kubectl prints for the same object as JSON.
async fn create(recorder: &Recorder, dir: &Path, args: &[&str]) -> (Captured, Json, Json) {
    let (ok, stdout, stderr) = kubectl(dir, recorder.addr, args).await;
    assert!(ok, "kubectl {args:?} failed: {stderr}");
    let posts = recorder.take();
    assert_eq!(posts.len(), 1, "kubectl {args:?} made one POST: {posts:?}");
    let post = posts.into_iter().next().expect("one post");
    assert!(
        is_protobuf(&post.content_type),
        "kubectl {args:?} sent {:?}",
        post.content_type
    );
    assert!(post.body.starts_with(b"k8s\0"), "protobuf envelope");
    let decoded = decode_request(&post.body).expect("kubectl's body decodes");
    // `namespace/demo created`, `deployment.apps/web created`.
    let name = decoded["metadata"]["name"].as_str().expect("name");
    let kind = decoded["kind"].as_str().expect("kind").to_ascii_lowercase();
    assert!(
        stdout.starts_with(&kind) && stdout.contains(&format!("/{name} created")),
        "kubectl read our JSON answer: {stdout}"
    );

    // The flags go before a `--` that starts the container command.
    let mut dry_run = args.to_vec();
    let at = dry_run
        .iter()
        .position(|a| *a == "--")
        .unwrap_or(dry_run.len());
    dry_run.splice(at..at, ["--dry-run=client", "-o", "json"]);
    let (ok, stdout, stderr) = kubectl(dir, recorder.addr, &dry_run).await;
    assert!(ok, "kubectl {dry_run:?} failed: {stderr}");
    let printed: Json = serde_json::from_str(&stdout).expect("kubectl prints JSON");
    (post, decoded, printed)
}

#[tokio::test]
async fn kubectl_create_namespace_configmap_and_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recorder = Recorder::start().await;

    let (post, namespace, printed) =
        create(&recorder, dir.path(), &["create", "namespace", "demo"]).await;
    assert_eq!(post.path, "/api/v1/namespaces");
    let expected = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "demo", "creationTimestamp": null},
        "spec": {},
        "status": {},
    });
    assert_eq!(namespace, expected);
    assert_eq!(printed, expected);

    let (post, config_map, printed) = create(
        &recorder,
        dir.path(),
        &[
            "create",
            "configmap",
            "cm",
            "--from-literal=a=b",
            "-n",
            "default",
        ],
    )
    .await;
    assert_eq!(post.path, "/api/v1/namespaces/default/configmaps");
    let expected = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default", "creationTimestamp": null},
        "data": {"a": "b"},
    });
    assert_eq!(config_map, expected);
    assert_eq!(printed, expected);

    let (post, secret, printed) = create(
        &recorder,
        dir.path(),
        &[
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=k=v",
            "-n",
            "default",
        ],
    )
    .await;
    assert_eq!(post.path, "/api/v1/namespaces/default/secrets");
    let expected = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "default", "creationTimestamp": null},
        "data": {"k": "dg=="},
    });
    assert_eq!(secret, expected);
    assert_eq!(printed, expected);
}

/// More built-in kinds: the decoded protobuf body equals kubectl's own JSON of the object.
#[tokio::test]
async fn kubectl_create_other_kinds_decodes_to_kubectls_own_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recorder = Recorder::start().await;
    write_tls_pair(dir.path());
    let tls = dir.path().display();
    let cases = [
        "create deployment web --image=registry.local/web:1 --replicas=2 --port=8080 -n default"
            .to_owned(),
        "create service clusterip web --tcp=80:8080 -n default".to_owned(),
        "create service nodeport np --tcp=80:http --node-port=30080 -n default".to_owned(),
        "create job once --image=registry.local/job:1 -n default -- /bin/true".to_owned(),
        "create cronjob nightly --image=registry.local/job:1 --schedule=@daily -n default"
            .to_owned(),
        "create quota q --hard=cpu=1500m,memory=1Gi,pods=10 -n default".to_owned(),
        "create pdb web --selector=app=web --min-available=50% -n default".to_owned(),
        "create priorityclass high --value=1000 --description=important".to_owned(),
        "create serviceaccount robot -n default".to_owned(),
        "create ingress web --rule=example.test/*=web:80 -n default".to_owned(),
        "create secret docker-registry pull --docker-server=registry.local --docker-username=u \
         --docker-password=p -n default"
            .to_owned(),
        format!("create secret tls tls --cert={tls}/tls.crt --key={tls}/tls.key -n default"),
    ];
    for line in &cases {
        let args: Vec<&str> = line.split_whitespace().collect();
        let (_, decoded, mut printed) = create(&recorder, dir.path(), &args).await;
        if line.starts_with("create pdb") {
            // Known difference: PodDisruptionBudgetStatus's int32 fields are Go values without
            // `omitempty`, so Go writes their zeros; the wire cannot tell them from unset and
            // the decoder leaves them out (a Go or k8s-openapi reader sees 0 either way).
            assert_eq!(
                printed["status"],
                json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0})
            );
            printed["status"] = json!({});
        }
        assert_eq!(decoded, printed, "kubectl {line}");
    }
}

/// A syntactically valid PEM pair for `kubectl create secret tls` (it checks the PEM blocks
/// and that key and certificate match).
fn write_tls_pair(dir: &Path) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["example.test".into()])
        .expect("params")
        .self_signed(&key)
        .expect("self-signed");
    std::fs::write(dir.join("tls.crt"), cert.pem()).expect("write cert");
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("write key");
}

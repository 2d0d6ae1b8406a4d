//! Pod volumes end to end: `ferrolet control-plane` plus one `ferrolet node` on
//! hack/containerd's containerd, a pod per volume type, each case in its own namespace and
//! all at once. What a volume holds is read from inside the containers (CRI `ExecSync`): the
//! container's view is what counts. Every case deletes its pods and checks that nothing of
//! theirs stays mounted (`/proc/self/mountinfo`); at the end nothing may be mounted under the
//! node's root directory.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use base64::Engine as _;
use ferrolet_cri::{RuntimeService, api};
use ferrolet_tests::case;
use ferrolet_tests::cluster::{ClusterOptions, TestCluster};
use ferrolet_tests::pods::{
    BUSYBOX, condition, container, create, events, exec, phase, pod, wait_for, wait_gone,
    waiting_reason,
};
use ferrolet_tests::suite::{self, Mode};
use ferrolet_tests::{containerd, mount_points};
use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};

type Ctx = Arc<TestCluster>;

const RUNNING: Duration = Duration::from_mins(1);
/// How soon an update of an API object must be visible in a running pod (the bound).
const UPDATE: Duration = Duration::from_mins(1);

fn main() -> ExitCode {
    let cases = vec![
        case!(empty_dir_is_shared_between_containers_and_memory_is_a_sized_tmpfs),
        case!(host_path_types_are_enforced_with_an_event),
        case!(config_map_and_secret_files_have_content_modes_and_updates),
        case!(downward_api_files_follow_labels_and_annotations),
        case!(projected_service_account_tokens_pass_token_review),
        case!(a_sub_path_symlink_out_of_the_volume_never_exposes_the_host),
        case!(a_sub_path_swapped_for_a_symlink_never_exposes_the_host),
    ];
    let Some(cases) = suite::select(cases) else {
        return ExitCode::SUCCESS;
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let cluster = match TestCluster::start(ClusterOptions::new("volumes-e2e")).await {
            Ok(cluster) => Arc::new(cluster),
            Err(err) => {
                println!("setting up the cluster failed: {err:#}");
                return ExitCode::FAILURE;
            }
        };
        let failures = suite::run(&cases, &cluster, Mode::Concurrent, Duration::from_mins(4)).await;
        let teardown = teardown(cluster).await.map_err(|e| format!("{e:#}"));
        suite::summary(cases.len(), &failures, &teardown)
    })
}

/// Deletes every pod left, waits for the node to finalize them, and checks that nothing is
/// mounted under the node's root directory and no pod directory is left.
async fn teardown(cluster: Arc<TestCluster>) -> Result<()> {
    cluster.delete_all_pods(Duration::from_mins(2)).await?;
    let root = cluster.root_dir.display().to_string();
    // The root itself is the agent's shared bind mount; what is below it belonged to pods.
    let mounts: Vec<String> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&format!("{root}/")))
        .collect();
    ensure!(mounts.is_empty(), "mounts left under {root}: {mounts:?}");
    let left: Vec<_> = std::fs::read_dir(cluster.root_dir.join("pods"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    ensure!(left.is_empty(), "pod directories left: {left:?}");
    drop(cluster);
    Ok(())
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && condition(pod, "Ready") == Some("True")
}

/// Creates the pod and waits until it runs and is ready; returns its UID.
async fn run_pod(ctx: &Ctx, ns: &str, manifest: serde_json::Value) -> Result<String> {
    let created = create(&ctx.client, ns, &pod(manifest)?).await?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let running = wait_for(
        &ctx.client,
        ns,
        &name,
        RUNNING,
        "running",
        running_and_ready,
    )
    .await
    .map_err(|err| with_events(err, &ctx.client, ns, &name));
    let running = match running {
        Ok(pod) => pod,
        Err(err) => return Err(err.await),
    };
    Ok(uid(&running))
}

/// `err` with the pod's events appended (what the agent said about it).
async fn with_events(
    err: anyhow::Error,
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> anyhow::Error {
    let said: Vec<String> = events(client, ns, name)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            format!(
                "{} {}",
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default()
            )
        })
        .collect();
    err.context(format!("events: {said:#?}"))
}

/// Deletes the pod, waits until the node has finalized it, and checks that nothing under its
/// directory is still mounted.
async fn delete_and_check_unmounted(ctx: &Ctx, ns: &str, name: &str, pod_uid: &str) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let params = DeleteParams {
        grace_period_seconds: Some(1),
        ..DeleteParams::default()
    };
    api.delete(name, &params).await?;
    wait_gone(&ctx.client, ns, name, RUNNING).await?;
    let pod_dir = ctx.root_dir.join("pods").join(pod_uid);
    let prefix = format!("{}/", pod_dir.display());
    let left: Vec<String> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&prefix))
        .collect();
    ensure!(left.is_empty(), "{ns}/{name}: mounts left: {left:?}");
    ensure!(
        !pod_dir.join("volumes").exists(),
        "{ns}/{name}: {} left",
        pod_dir.join("volumes").display()
    );
    Ok(())
}

/// Runs `command` in a container and returns its output, failing on a non-zero exit.
async fn sh(pod_uid: &str, container: &str, script: &str) -> Result<String> {
    let (code, output) = exec(pod_uid, container, &["sh", "-c", script]).await?;
    ensure!(
        code == 0,
        "`{script}` in {container} exited {code}: {output}"
    );
    Ok(output)
}

/// Polls `script` in a container until its output (trimmed) is `want`.
async fn wait_output(
    pod_uid: &str,
    container: &str,
    script: &str,
    want: &str,
    limit: Duration,
) -> Result<Duration> {
    let began = Instant::now();
    let mut last = String::new();
    while began.elapsed() < limit {
        if let Ok((_, output)) = exec(pod_uid, container, &["sh", "-c", script]).await {
            if output.trim() == want {
                return Ok(began.elapsed());
            }
            last = output;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("`{script}` in {container}: not {want:?} within {limit:?}; last: {last:?}")
}

async fn empty_dir_is_shared_between_containers_and_memory_is_a_sized_tmpfs(
    ctx: Ctx,
) -> Result<()> {
    let ns = ctx.namespace("vol-emptydir").await?;
    let mount = |name: &str, path: &str| serde_json::json!({ "name": name, "mountPath": path });
    let pod_uid = run_pod(&ctx, &ns, serde_json::json!({
        "metadata": { "name": "shared" },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [
                { "name": "data", "emptyDir": {} },
                { "name": "cache", "emptyDir": { "medium": "Memory", "sizeLimit": "16Mi" } }
            ],
            "containers": [
                { "name": "writer", "image": BUSYBOX,
                  "command": ["sh", "-c", "echo from-writer > /data/msg; echo in-memory > /cache/m; exec sleep 3600"],
                  "volumeMounts": [mount("data", "/data"), mount("cache", "/cache")] },
                { "name": "reader", "image": BUSYBOX, "command": ["sleep", "3600"],
                  "volumeMounts": [mount("data", "/in"), mount("cache", "/mem")] }
            ]
        }
    })).await?;
    wait_output(&pod_uid, "reader", "cat /in/msg", "from-writer", RUNNING).await?;
    wait_output(&pod_uid, "reader", "cat /mem/m", "in-memory", RUNNING).await?;
    // The reader writes back; the writer sees it.
    sh(&pod_uid, "reader", "echo from-reader > /in/reply").await?;
    let reply = sh(&pod_uid, "writer", "cat /data/reply").await?;
    ensure!(reply.trim() == "from-reader", "writer read {reply:?}");
    // On disk as the kubelet lays it out, and the memory volume is a 16Mi tmpfs.
    let on_disk = ctx.root_dir.join(format!(
        "pods/{pod_uid}/volumes/kubernetes.io~empty-dir/data/msg"
    ));
    let content = std::fs::read_to_string(&on_disk).context("the emptyDir on the node")?;
    ensure!(
        content.trim() == "from-writer",
        "{}: {content:?}",
        on_disk.display()
    );
    let mem = sh(&pod_uid, "reader", "grep ' /mem ' /proc/mounts").await?;
    ensure!(
        mem.starts_with("tmpfs ") && mem.contains("size=16384k"),
        "the memory emptyDir is not a 16Mi tmpfs: {mem}"
    );
    let disk = sh(&pod_uid, "reader", "grep ' /in ' /proc/mounts").await?;
    ensure!(
        !disk.starts_with("tmpfs "),
        "the disk emptyDir is a tmpfs: {disk}"
    );
    delete_and_check_unmounted(&ctx, &ns, "shared", &pod_uid).await
}

async fn host_path_types_are_enforced_with_an_event(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("vol-hostpath").await?;
    let host = ctx.dir().join("hostpath");
    std::fs::create_dir_all(host.join("dir"))?;
    std::fs::write(host.join("file"), "host-file\n")?;
    let socket = host.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket)?;
    let at = |p: &str| host.join(p).display().to_string();
    let volume = |name: &str, path: String, ty: &str| serde_json::json!({ "name": name, "hostPath": { "path": path, "type": ty } });
    let mount = |name: &str| serde_json::json!({ "name": name, "mountPath": format!("/{name}") });
    let pod_uid = run_pod(
        &ctx,
        &ns,
        serde_json::json!({
            "metadata": { "name": "types" },
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "volumes": [
                    volume("d", at("dir"), "Directory"),
                    volume("dc", at("new-dir/sub"), "DirectoryOrCreate"),
                    volume("f", at("file"), "File"),
                    volume("fc", at("new-file"), "FileOrCreate"),
                    volume("s", at("sock"), "Socket"),
                    volume("c", "/dev/null".into(), "CharDevice"),
                    volume("any", at("file"), "")
                ],
                "containers": [{
                    "name": "main", "image": BUSYBOX, "command": ["sleep", "3600"],
                    "volumeMounts": (["d", "dc", "f", "fc", "s", "c", "any"].map(mount))
                }]
            }
        }),
    )
    .await?;
    let seen = sh(
        &pod_uid,
        "main",
        "test -d /d && test -d /dc && cat /f && test -f /fc && test -S /s && test -c /c && cat /any \
         && echo written > /d/by-pod",
    )
    .await?;
    ensure!(
        seen == "host-file\nhost-file\n",
        "the container saw {seen:?}"
    );
    ensure!(
        host.join("new-dir/sub").is_dir(),
        "DirectoryOrCreate did not create"
    );
    ensure!(
        host.join("new-file").is_file(),
        "FileOrCreate did not create"
    );
    ensure!(
        std::fs::read_to_string(host.join("dir/by-pod"))? == "written\n",
        "the pod's write did not reach the host directory"
    );

    // Each mismatch keeps the pod from starting, with a FailedMount event naming the check.
    let mismatches = [
        ("dir-is-a-file", at("file"), "Directory", "directory"),
        ("file-is-a-dir", at("dir"), "File", "file"),
        ("not-a-socket", at("file"), "Socket", "socket file"),
        (
            "not-a-block-device",
            "/dev/null".to_owned(),
            "BlockDevice",
            "block device",
        ),
        ("missing", at("nothing-here"), "Directory", "directory"),
    ];
    for (name, path, ty, _) in &mismatches {
        create(
            &ctx.client,
            &ns,
            &pod(serde_json::json!({
                "metadata": { "name": name },
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "volumes": [volume("v", path.clone(), ty)],
                    "containers": [{ "name": "main", "image": BUSYBOX, "command": ["sleep", "3600"],
                                     "volumeMounts": [mount("v")] }]
                }
            }))?,
        )
        .await?;
    }
    for (name, path, _, expected) in &mismatches {
        let want = format!("hostPath type check failed: {path} is not a {expected}");
        let deadline = Instant::now() + RUNNING;
        loop {
            let said = events(&ctx.client, &ns, name).await?;
            if said.iter().any(|e| {
                e.reason.as_deref() == Some("FailedMount")
                    && e.message.as_deref().is_some_and(|m| m.contains(&want))
            }) {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{name}: no FailedMount {want:?} in {said:#?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let current: Pod = Api::namespaced(ctx.client.clone(), &ns).get(name).await?;
        ensure!(
            phase(&current) == "Pending",
            "{name}: phase {}",
            phase(&current)
        );
        let filter = api::ContainerFilter {
            label_selector: [("io.kubernetes.pod.uid".to_owned(), uid(&current))].into(),
            ..Default::default()
        };
        let made = containerd().await.list_containers(Some(filter)).await?;
        ensure!(made.is_empty(), "{name}: containers were created: {made:?}");
    }
    ensure!(
        !host.join("nothing-here").exists(),
        "a Directory check created the path"
    );
    for (name, ..) in &mismatches {
        let current: Pod = Api::namespaced(ctx.client.clone(), &ns).get(name).await?;
        delete_and_check_unmounted(&ctx, &ns, name, &uid(&current)).await?;
    }
    delete_and_check_unmounted(&ctx, &ns, "types", &pod_uid).await
}

async fn config_map_and_secret_files_have_content_modes_and_updates(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("vol-configmap").await?;
    let client = &ctx.client;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": { "name": "app-config" }, "data": { "app.conf": "v1", "other": "o" }
            }))?,
        )
        .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(&PostParams::default(), &serde_json::from_value(serde_json::json!({
            "metadata": { "name": "app-secret" }, "stringData": { "password": "s3cret", "user": "admin" }
        }))?)
        .await?;
    let mount = |name: &str| serde_json::json!({ "name": name, "mountPath": format!("/{name}") });
    let pod_uid = run_pod(&ctx, &ns, serde_json::json!({
        "metadata": { "name": "consumer" },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [
                { "name": "cm", "configMap": { "name": "app-config" } },
                { "name": "items", "configMap": { "name": "app-config", "defaultMode": 0o640,
                  "items": [{ "key": "app.conf", "path": "conf/app.conf", "mode": 0o600 },
                            { "key": "other", "path": "other.txt" }] } },
                { "name": "sec", "secret": { "secretName": "app-secret", "defaultMode": 0o400 } },
                { "name": "opt", "configMap": { "name": "not-there", "optional": true } }
            ],
            "containers": [{
                "name": "main", "image": BUSYBOX, "command": ["sleep", "3600"],
                "volumeMounts": (["cm", "items", "sec", "opt"].map(mount))
            }]
        }
    })).await?;
    let view = sh(
        &pod_uid,
        "main",
        "for f in /cm/app.conf /cm/other /items/conf/app.conf /items/other.txt /sec/password /sec/user; do \
           echo \"$f $(cat $f) $(stat -L -c %a $f)\"; done; test ! -e /items/other && echo other-absent; \
         echo \"optional: $(ls /opt | wc -l)\"",
    )
    .await?;
    for want in [
        "/cm/app.conf v1 644",
        "/cm/other o 644",
        "/items/conf/app.conf v1 600",
        "/items/other.txt o 640",
        "/sec/password s3cret 400",
        "/sec/user admin 400",
        "other-absent",
        "optional: 0",
    ] {
        ensure!(
            view.contains(want),
            "no {want:?} in the container's view: {view}"
        );
    }
    // Read-only, whatever the volumeMount says; secrets on a tmpfs.
    let (code, _) = exec(&pod_uid, "main", &["sh", "-c", "echo x > /cm/new"]).await?;
    ensure!(code != 0, "the configMap volume is writable");
    let sec = sh(&pod_uid, "main", "grep ' /sec ' /proc/mounts").await?;
    ensure!(
        sec.starts_with("tmpfs "),
        "the secret volume is not a tmpfs: {sec}"
    );

    config_maps
        .patch(
            "app-config",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "data": { "app.conf": "v2" } })),
        )
        .await?;
    secrets
        .patch(
            "app-secret",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "stringData": { "password": "rotated" } })),
        )
        .await?;
    let took = wait_output(&pod_uid, "main", "cat /cm/app.conf", "v2", UPDATE).await?;
    wait_output(&pod_uid, "main", "cat /items/conf/app.conf", "v2", UPDATE).await?;
    wait_output(&pod_uid, "main", "cat /sec/password", "rotated", UPDATE).await?;
    println!("configMap update visible in the pod after {took:?}");
    delete_and_check_unmounted(&ctx, &ns, "consumer", &pod_uid).await
}

async fn downward_api_files_follow_labels_and_annotations(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("vol-downward").await?;
    let field = |path: &str, field: &str| serde_json::json!({ "path": path, "fieldRef": { "fieldPath": field } });
    let pod_uid = run_pod(&ctx, &ns, serde_json::json!({
        "metadata": { "name": "info", "labels": { "app": "dw", "tier": "a" },
                      "annotations": { "note": "first" } },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [{ "name": "podinfo", "downwardAPI": { "items": [
                field("labels", "metadata.labels"),
                field("annotations", "metadata.annotations"),
                field("name", "metadata.name"),
                { "path": "mem", "resourceFieldRef": { "containerName": "main", "resource": "limits.memory", "divisor": "1Mi" } }
            ] } }],
            "containers": [{
                "name": "main", "image": BUSYBOX, "command": ["sleep", "3600"],
                "resources": { "limits": { "memory": "64Mi" } },
                "volumeMounts": [{ "name": "podinfo", "mountPath": "/etc/podinfo" }]
            }]
        }
    })).await?;
    let labels = sh(&pod_uid, "main", "cat /etc/podinfo/labels").await?;
    ensure!(
        labels == "app=\"dw\"\ntier=\"a\"",
        "labels file: {labels:?}"
    );
    let rest = sh(
        &pod_uid,
        "main",
        "cat /etc/podinfo/name; echo; cat /etc/podinfo/mem",
    )
    .await?;
    ensure!(rest == "info\n64", "name and memory limit: {rest:?}");
    let annotations = sh(&pod_uid, "main", "cat /etc/podinfo/annotations").await?;
    ensure!(
        annotations.contains("note=\"first\""),
        "annotations file: {annotations:?}"
    );

    Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .patch(
            "info",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "metadata": { "labels": { "tier": "b" }, "annotations": { "note": "second" } }
            })),
        )
        .await?;
    let took = wait_output(
        &pod_uid,
        "main",
        "cat /etc/podinfo/labels",
        "app=\"dw\"\ntier=\"b\"",
        UPDATE,
    )
    .await?;
    wait_output(
        &pod_uid,
        "main",
        "grep note /etc/podinfo/annotations",
        "note=\"second\"",
        UPDATE,
    )
    .await?;
    println!("label update visible in the pod after {took:?}");
    delete_and_check_unmounted(&ctx, &ns, "info", &pod_uid).await
}

/// The claims of a JWT, unverified (the API server verifies).
fn jwt_claims(token: &str) -> Result<serde_json::Value> {
    let parts: Vec<&str> = token.split('.').collect();
    ensure!(parts.len() == 3, "not a JWT: {token:?}");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .context("the JWT payload is not base64url")?;
    Ok(serde_json::from_slice(&payload)?)
}

/// Asks the API server whether `token` authenticates for `audiences` (none: its own).
async fn token_review(
    client: &kube::Client,
    token: &str,
    audiences: &[&str],
) -> Result<TokenReview> {
    let mut spec = serde_json::json!({ "token": token });
    if !audiences.is_empty() {
        spec["audiences"] = serde_json::json!(audiences);
    }
    let review: TokenReview = serde_json::from_value(serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec
    }))?;
    Ok(Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?)
}

fn authenticated_as(review: &TokenReview) -> Option<String> {
    let status = review.status.as_ref()?;
    if status.authenticated != Some(true) {
        return None;
    }
    status.user.as_ref()?.username.clone()
}

async fn projected_service_account_tokens_pass_token_review(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("vol-token").await?;
    let pod_uid = run_pod(&ctx, &ns, serde_json::json!({
        "metadata": { "name": "tokens" },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [{ "name": "vault", "projected": { "defaultMode": 0o440, "sources": [
                { "serviceAccountToken": { "path": "token", "audience": "vault", "expirationSeconds": 3600 } },
                { "configMap": { "name": "kube-root-ca.crt", "items": [{ "key": "ca.crt", "path": "ca.crt" }] } },
                { "downwardAPI": { "items": [{ "path": "namespace", "fieldRef": { "fieldPath": "metadata.namespace" } }] } }
            ] } }],
            "containers": [{
                "name": "main", "image": BUSYBOX, "command": ["sleep", "3600"],
                "volumeMounts": [{ "name": "vault", "mountPath": "/var/run/vault" }]
            }]
        }
    })).await?;
    let user = format!("system:serviceaccount:{ns}:default");
    // The default kube-api-access volume: token, CA and namespace.
    let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    let default_token = sh(&pod_uid, "main", &format!("cat {sa}/token")).await?;
    let namespace = sh(&pod_uid, "main", &format!("cat {sa}/namespace")).await?;
    ensure!(namespace == ns, "{sa}/namespace: {namespace:?}");
    let ca = sh(&pod_uid, "main", &format!("cat {sa}/ca.crt")).await?;
    ensure!(
        ca.starts_with("-----BEGIN CERTIFICATE-----"),
        "{sa}/ca.crt: {ca:?}"
    );
    let claims = jwt_claims(&default_token)?;
    ensure!(
        claims["kubernetes.io"]["pod"]["uid"] == pod_uid.as_str(),
        "the token is not bound to the pod: {claims}"
    );
    let review = token_review(&ctx.client, &default_token, &[]).await?;
    ensure!(
        authenticated_as(&review).as_deref() == Some(user.as_str()),
        "the default token was not accepted as {user}: {:?}",
        review.status
    );

    // The projected token for audience "vault", next to a configMap and the namespace.
    let token = sh(&pod_uid, "main", "cat /var/run/vault/token").await?;
    let claims = jwt_claims(&token)?;
    ensure!(
        claims["aud"] == serde_json::json!(["vault"]) || claims["aud"] == "vault",
        "audience: {claims}"
    );
    let review = token_review(&ctx.client, &token, &["vault"]).await?;
    ensure!(
        authenticated_as(&review).as_deref() == Some(user.as_str()),
        "the vault token was not accepted for audience vault: {:?}",
        review.status
    );
    let review = token_review(&ctx.client, &token, &[]).await?;
    ensure!(
        authenticated_as(&review).is_none(),
        "a token for audience vault was accepted by the API server's audience"
    );
    let rest = sh(
        &pod_uid,
        "main",
        "cat /var/run/vault/namespace; echo; stat -L -c %a /var/run/vault/token; head -1 /var/run/vault/ca.crt",
    )
    .await?;
    ensure!(
        rest == format!("{ns}\n440\n-----BEGIN CERTIFICATE-----\n"),
        "projected namespace, token mode and CA: {rest:?}"
    );
    delete_and_check_unmounted(&ctx, &ns, "tokens", &pod_uid).await
}

/// A host directory with a file only the host should see; returns the directory and the
/// file's content.
fn host_secret(ctx: &Ctx, name: &str) -> Result<(String, String)> {
    let dir = ctx.dir().join(name);
    std::fs::create_dir_all(&dir)?;
    let content = format!("HOST-SECRET-{name}");
    std::fs::write(dir.join("marker"), &content)?;
    Ok((dir.display().to_string(), content))
}

async fn a_sub_path_symlink_out_of_the_volume_never_exposes_the_host(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("vol-subpath-link").await?;
    let (host_dir, secret) = host_secret(&ctx, "subpath-link")?;
    let plant = format!(
        "mkdir -p /vol/inside && echo inside > /vol/inside/marker && ln -s inside /vol/ok \
         && ln -s {host_dir} /vol/abs && ln -s ../../../../../../../../../../..{host_dir} /vol/rel \
         && mkdir /vol/nested && ln -s ../../../../../../../../../../..{host_dir} /vol/nested/up"
    );
    let victim = |name: &str, sub_path: &str| {
        serde_json::json!({
            "name": name, "image": BUSYBOX,
            "command": ["sh", "-c", "cat /mnt/marker; exec sleep 3600"],
            "volumeMounts": [{ "name": "vol", "mountPath": "/mnt", "subPath": sub_path }]
        })
    };
    create(&ctx.client, &ns, &pod(serde_json::json!({
        "metadata": { "name": "escape" },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [{ "name": "vol", "emptyDir": {} }],
            "initContainers": [{ "name": "plant", "image": BUSYBOX, "command": ["sh", "-c", plant],
                                 "volumeMounts": [{ "name": "vol", "mountPath": "/vol" }] }],
            "containers": [
                victim("via-ok", "ok"),
                victim("via-abs", "abs"),
                victim("via-rel", "rel"),
                victim("via-nested", "nested/up")
            ]
        }
    }))?)
    .await?;
    let attackers = ["via-abs", "via-rel", "via-nested"];
    let escaped = wait_for(
        &ctx.client,
        &ns,
        "escape",
        RUNNING,
        "refusing the symlinks",
        |p| {
            container(p, "via-ok").is_some_and(|c| c.ready)
                && attackers.iter().all(|name| {
                    container(p, name).and_then(waiting_reason)
                        == Some("CreateContainerConfigError")
                })
        },
    )
    .await?;
    let pod_uid = uid(&escaped);
    // An in-volume symlink is followed (as upstream does), to the volume's own directory.
    let seen = sh(&pod_uid, "via-ok", "cat /mnt/marker").await?;
    ensure!(seen.trim() == "inside", "via-ok saw {seen:?}");
    // The attackers never ran: no container of theirs was ever created, so nothing saw the
    // host file; and a Failed event says why.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let said = events(&ctx.client, &ns, "escape").await?;
    for name in attackers {
        let filter = api::ContainerFilter {
            label_selector: [
                ("io.kubernetes.pod.uid".to_owned(), pod_uid.clone()),
                ("io.kubernetes.container.name".to_owned(), name.to_owned()),
            ]
            .into(),
            ..Default::default()
        };
        let made = containerd().await.list_containers(Some(filter)).await?;
        ensure!(made.is_empty(), "{name}: a container was created: {made:?}");
        ensure!(
            said.iter().any(|e| {
                e.reason.as_deref() == Some("Failed")
                    && e.message.as_deref().is_some_and(|m| {
                        m.contains(name) || m.contains("points outside the volume")
                    })
            }),
            "{name}: no Failed event in {said:#?}"
        );
    }
    ensure!(
        said.iter().any(|e| e
            .message
            .as_deref()
            .is_some_and(|m| m.contains("points outside the volume"))),
        "no event names the symlink out of the volume: {said:#?}"
    );
    // No subPath mount of the pod shows the host file, seen from the node.
    ensure_no_sub_path_shows(&ctx, &pod_uid, &secret)?;
    delete_and_check_unmounted(&ctx, &ns, "escape", &pod_uid).await
}

/// Fails if any subPath bind mount of the pod holds the host's secret marker.
fn ensure_no_sub_path_shows(ctx: &Ctx, pod_uid: &str, secret: &str) -> Result<()> {
    let prefix = format!(
        "{}/",
        ctx.root_dir
            .join(format!("pods/{pod_uid}/volume-subpaths"))
            .display()
    );
    for mount in mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&prefix))
    {
        let marker = std::fs::read_to_string(format!("{mount}/marker")).unwrap_or_default();
        ensure!(
            !marker.contains(secret),
            "{mount} exposes the host directory"
        );
    }
    Ok(())
}

async fn a_sub_path_swapped_for_a_symlink_never_exposes_the_host(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("vol-subpath-swap").await?;
    let (host_dir, secret) = host_secret(&ctx, "subpath-swap")?;
    // A sidecar swaps /vol/d between a directory and a symlink to the host directory as fast
    // as it can while the victims start, each resolving subPath "d".
    let swap = format!(
        "while true; do rm -rf /vol/d; mkdir -p /vol/d; echo inside > /vol/d/marker 2>/dev/null; \
         usleep 30000; rm -rf /vol/d; ln -s {host_dir} /vol/d; usleep 30000; done"
    );
    let victims: Vec<String> = (0..6).map(|i| format!("victim-{i}")).collect();
    let containers: Vec<serde_json::Value> = victims
        .iter()
        .map(|name| {
            serde_json::json!({
                "name": name, "image": BUSYBOX, "command": ["sleep", "3600"],
                "volumeMounts": [{ "name": "vol", "mountPath": "/mnt", "subPath": "d" }]
            })
        })
        .collect();
    let created = create(
        &ctx.client,
        &ns,
        &pod(serde_json::json!({
            "metadata": { "name": "swap" },
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "volumes": [{ "name": "vol", "emptyDir": {} }],
                "initContainers": [{ "name": "swapper", "image": BUSYBOX, "restartPolicy": "Always",
                                     "command": ["sh", "-c", swap],
                                     "volumeMounts": [{ "name": "vol", "mountPath": "/vol" }] }],
                "containers": containers
            }
        }))?,
    )
    .await?;
    let pod_uid = uid(&created);
    // Let the victims be tried for a while: each attempt races the swapper.
    let began = Instant::now();
    let mut views = Vec::new();
    let mut refused = 0;
    while began.elapsed() < Duration::from_secs(40) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        ensure_no_sub_path_shows(&ctx, &pod_uid, &secret)?;
        let current: Pod = Api::namespaced(ctx.client.clone(), &ns).get("swap").await?;
        let started: Vec<&String> = victims
            .iter()
            .filter(|v| container(&current, v).is_some_and(|c| c.ready))
            .collect();
        if started.len() == victims.len() {
            break;
        }
        refused = victims.len() - started.len();
    }
    for name in &victims {
        if let Ok((_, view)) = exec(
            &pod_uid,
            name,
            &["sh", "-c", "cat /mnt/marker; ls -la /mnt"],
        )
        .await
        {
            ensure!(!view.contains(&secret), "{name} sees the host file: {view}");
            views.push(format!(
                "{name}: {}",
                view.lines().next().unwrap_or_default()
            ));
        }
    }
    ensure_no_sub_path_shows(&ctx, &pod_uid, &secret)?;
    println!(
        "subPath swap: {} victims ran ({views:?}), {refused} still refused at the end",
        views.len()
    );
    delete_and_check_unmounted(&ctx, &ns, "swap", &pod_uid).await
}

//! CSI end to end: `ferrolet control-plane`, one `ferrolet node` on hack/containerd's
//! containerd, and the real `ferrolet csi-hostpath` driver registering itself with the node
//! through `<root>/plugins_registry` and provisioning through the API (its kubeconfig). The
//! cases run one after the other (one of them kills the driver). Each checks the driver's
//! volumes on disk (`--state-dir`) and the node's mount table; at the end nothing may be
//! mounted under the node's root directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use ferrolet_tests::case;
use ferrolet_tests::cluster::{ClusterOptions, TestCluster};
use ferrolet_tests::mount_points;
use ferrolet_tests::pods::{
    BUSYBOX, condition, create, events, exec, phase, pod, wait_for, wait_gone,
};
use ferrolet_tests::process::ChildProcess;
use ferrolet_tests::suite::{self, Mode};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::{CSINode, StorageClass};
use kube::Api;
use kube::api::{DeleteParams, PostParams};

const DRIVER: &str = "hostpath.csi.ferrolet.io";
const RUNNING: Duration = Duration::from_mins(1);

/// The cluster and the driver's process.
struct Fixture {
    cluster: TestCluster,
    driver: Mutex<ChildProcess>,
    state_dir: PathBuf,
}

type Ctx = Arc<Fixture>;

fn main() -> ExitCode {
    let cases = vec![
        case!(the_driver_registers_with_the_node),
        case!(a_pod_with_an_inline_volume_runs_on_the_drivers_volume),
        case!(a_claim_of_a_storage_class_is_provisioned_staged_and_deleted),
        case!(pre_created_volumes_bind_by_class_access_modes_and_capacity),
        case!(a_driver_killed_during_publish_is_retried_until_it_is_back),
    ];
    let Some(cases) = suite::select(cases) else {
        return ExitCode::SUCCESS;
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let fixture = match start().await {
            Ok(fixture) => Arc::new(fixture),
            Err(err) => {
                println!("setting up the cluster failed: {err:#}");
                return ExitCode::FAILURE;
            }
        };
        let failures = suite::run(&cases, &fixture, Mode::Sequential, Duration::from_mins(4)).await;
        let teardown = teardown(fixture).await.map_err(|e| format!("{e:#}"));
        suite::summary(cases.len(), &failures, &teardown)
    })
}

async fn start() -> Result<Fixture> {
    let cluster = TestCluster::start(ClusterOptions::new("csi-e2e")).await?;
    let state_dir = cluster.dir().join("csi-state");
    let command = vec![
        ferrolet_tests::required_env("FERROLET_BIN").into(),
        "csi-hostpath".into(),
        "--driver-name".into(),
        DRIVER.into(),
        "--node-id".into(),
        cluster.node_name.clone().into(),
        "--kubelet-root".into(),
        cluster.root_dir.clone().into(),
        "--state-dir".into(),
        state_dir.clone().into(),
        "--capacity".into(),
        "1Gi".into(),
        "--kubeconfig".into(),
        cluster.kubeconfig.clone().into(),
        // Slow storage: every publish takes a second, so a test can kill the driver in the
        // middle of one.
        "--publish-delay".into(),
        "1s".into(),
    ];
    let driver = ChildProcess::spawn(
        "the csi-hostpath driver",
        command,
        vec![("FERROLET_LOG".into(), "info".into())],
        &cluster.dir().join("csi-driver.log"),
    )?;
    Ok(Fixture {
        cluster,
        driver: Mutex::new(driver),
        state_dir,
    })
}

async fn teardown(fixture: Ctx) -> Result<()> {
    let cluster = &fixture.cluster;
    cluster.delete_all_pods(Duration::from_mins(2)).await?;
    let root = cluster.root_dir.display().to_string();
    let mounts: Vec<String> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&format!("{root}/")))
        .collect();
    fixture.driver.lock().unwrap().stop();
    ensure!(mounts.is_empty(), "mounts left under {root}: {mounts:?}");
    let left: Vec<_> = std::fs::read_dir(cluster.root_dir.join("pods"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    ensure!(left.is_empty(), "pod directories left: {left:?}");
    Ok(())
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && condition(pod, "Ready") == Some("True")
}

fn sha256_hex(text: &str) -> String {
    // sha256 through coreutils: the tests crate needs no hashing dependency for two paths.
    let output = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run sha256sum (coreutils)");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The driver's directory of volume `id`.
fn volume_dir(ctx: &Ctx, id: &str) -> PathBuf {
    ctx.state_dir.join("volumes").join(id)
}

/// Mount points under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&prefix) || *m == dir.display().to_string())
        .collect()
}

/// Polls `check` every 300 ms until it holds, or fails after `limit` saying `what`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + limit;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(err) => last_error = Some(err),
        }
        if Instant::now() > deadline {
            bail!("not {what} within {limit:?} (last error: {last_error:?})");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Deletes the pod, waits until the node has finalized it, and checks that nothing under its
/// directory is still mounted.
async fn delete_pod(ctx: &Ctx, ns: &str, name: &str, pod_uid: &str) -> Result<()> {
    let client = &ctx.cluster.client;
    let params = DeleteParams {
        grace_period_seconds: Some(1),
        ..DeleteParams::default()
    };
    Api::<Pod>::namespaced(client.clone(), ns)
        .delete(name, &params)
        .await?;
    wait_gone(client, ns, name, RUNNING).await?;
    let pod_dir = ctx.cluster.root_dir.join("pods").join(pod_uid);
    let left = mounts_under(&pod_dir);
    ensure!(left.is_empty(), "{ns}/{name}: mounts left: {left:?}");
    Ok(())
}

fn csi_pod(name: &str, volume: &serde_json::Value) -> Result<Pod> {
    pod(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [volume],
            "containers": [{
                "name": "main", "image": BUSYBOX,
                "command": ["sh", "-c", format!("echo written-by-{name} > /data/file; exec sleep 3600")],
                "volumeMounts": [{ "name": "data", "mountPath": "/data" }]
            }]
        }
    }))
}

/// Whether the node's `CSINode` lists the driver.
async fn csi_node_has_driver(client: &kube::Client, node: &str) -> Result<bool> {
    let object = Api::<CSINode>::all(client.clone()).get_opt(node).await?;
    Ok(object.is_some_and(|o| o.spec.drivers.iter().any(|d| d.name == DRIVER)))
}

async fn the_driver_registers_with_the_node(ctx: Ctx) -> Result<()> {
    let client = &ctx.cluster.client;
    let node_name = ctx.cluster.node_name.clone();
    let csi_nodes: Api<CSINode> = Api::all(client.clone());
    eventually(RUNNING, "in the node's CSINode", || {
        let csi_nodes = csi_nodes.clone();
        let node_name = node_name.clone();
        async move {
            let Some(object) = csi_nodes.get_opt(&node_name).await? else {
                return Ok(false);
            };
            Ok(object
                .spec
                .drivers
                .iter()
                .any(|d| d.name == DRIVER && d.node_id == node_name))
        }
    })
    .await
    .map_err(|e| e.context(ctx.driver.lock().unwrap().log_tail(20)))?;
    let node = Api::<Node>::all(client.clone()).get(&node_name).await?;
    let annotation = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("csi.volume.kubernetes.io/nodeid"))
        .context("no csi.volume.kubernetes.io/nodeid annotation")?;
    let ids: serde_json::Value = serde_json::from_str(annotation)?;
    ensure!(
        ids[DRIVER] == node_name.as_str(),
        "node id annotation: {annotation}"
    );
    let owner = csi_nodes
        .get(&node_name)
        .await?
        .metadata
        .owner_references
        .unwrap_or_default();
    ensure!(
        owner
            .iter()
            .any(|o| o.kind == "Node" && o.name == node_name),
        "the CSINode is not owned by the Node: {owner:?}"
    );
    Ok(())
}

async fn a_pod_with_an_inline_volume_runs_on_the_drivers_volume(ctx: Ctx) -> Result<()> {
    let client = &ctx.cluster.client;
    let ns = ctx.cluster.namespace("csi-inline").await?;
    let created = create(
        client,
        &ns,
        &csi_pod(
            "inline",
            &serde_json::json!({ "name": "data", "csi": { "driver": DRIVER, "volumeAttributes": { "size": "1048576" } } }),
        )?,
    )
    .await?;
    let pod_uid = uid(&created);
    wait_for(client, &ns, "inline", RUNNING, "running", running_and_ready).await?;
    let handle = format!("csi-{}", sha256_hex(&format!("{pod_uid}data")));
    let on_disk = volume_dir(&ctx, &handle).join("data/file");
    eventually(Duration::from_secs(10), "written", || {
        let on_disk = on_disk.clone();
        async move { Ok(std::fs::read_to_string(&on_disk).is_ok_and(|c| c == "written-by-inline\n")) }
    })
    .await?;
    let target = ctx.cluster.root_dir.join(format!(
        "pods/{pod_uid}/volumes/kubernetes.io~csi/data/mount"
    ));
    ensure!(
        mount_points().contains(&target.display().to_string()),
        "{} is not mounted",
        target.display()
    );
    let (_, seen) = exec(&pod_uid, "main", &["cat", "/data/file"]).await?;
    ensure!(seen == "written-by-inline\n", "the container saw {seen:?}");
    // Inline volumes are never staged.
    let staged = mounts_under(&ctx.cluster.root_dir.join("plugins/kubernetes.io/csi"));
    ensure!(staged.is_empty(), "an inline volume was staged: {staged:?}");
    delete_pod(&ctx, &ns, "inline", &pod_uid).await?;
    ensure!(
        !volume_dir(&ctx, &handle).exists(),
        "the ephemeral volume {handle} outlived its pod"
    );
    Ok(())
}

async fn a_claim_of_a_storage_class_is_provisioned_staged_and_deleted(ctx: Ctx) -> Result<()> {
    let client = &ctx.cluster.client;
    let ns = ctx.cluster.namespace("csi-claim").await?;
    let class: StorageClass = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "hostpath" }, "provisioner": DRIVER, "reclaimPolicy": "Delete"
    }))?;
    Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "data" },
        "spec": { "storageClassName": "hostpath", "accessModes": ["ReadWriteOnce"],
                  "resources": { "requests": { "storage": "10Mi" } } }
    }))?;
    let claim = claims.create(&PostParams::default(), &claim).await?;
    let pv_name = format!("pvc-{}", claim.metadata.uid.clone().unwrap_or_default());
    eventually(RUNNING, "bound", || {
        let claims = claims.clone();
        let pv_name = pv_name.clone();
        async move {
            let claim = claims.get("data").await?;
            let status = claim.status.unwrap_or_default();
            Ok(status.phase.as_deref() == Some("Bound")
                && claim.spec.and_then(|s| s.volume_name).as_deref() == Some(pv_name.as_str()))
        }
    })
    .await
    .map_err(|e| e.context(ctx.driver.lock().unwrap().log_tail(20)))?;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = volumes.get(&pv_name).await?;
    let csi = pv
        .spec
        .as_ref()
        .and_then(|s| s.csi.clone())
        .context("the provisioned volume has no csi source")?;
    ensure!(csi.driver == DRIVER, "driver {}", csi.driver);
    let handle = csi.volume_handle.clone();
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(
        volume_dir(&ctx, &handle).join("volume.json"),
    )?)?;
    ensure!(
        record["capacityBytes"] == 10 * 1024 * 1024,
        "the driver's volume: {record}"
    );

    let created = create(
        client,
        &ns,
        &csi_pod(
            "user",
            &serde_json::json!({ "name": "data", "persistentVolumeClaim": { "claimName": "data" } }),
        )?,
    )
    .await?;
    let pod_uid = uid(&created);
    wait_for(client, &ns, "user", RUNNING, "running", running_and_ready).await?;
    let on_disk = volume_dir(&ctx, &handle).join("data/file");
    eventually(Duration::from_secs(10), "written", || {
        let on_disk = on_disk.clone();
        async move { Ok(std::fs::read_to_string(&on_disk).is_ok_and(|c| c == "written-by-user\n")) }
    })
    .await?;
    let global = ctx.cluster.root_dir.join(format!(
        "plugins/kubernetes.io/csi/{DRIVER}/{}/globalmount",
        sha256_hex(&handle)
    ));
    ensure!(
        mount_points().contains(&global.display().to_string()),
        "{} is not staged; mounts: {:?}",
        global.display(),
        mounts_under(&ctx.cluster.root_dir)
    );
    delete_pod(&ctx, &ns, "user", &pod_uid).await?;
    let staged = mounts_under(&ctx.cluster.root_dir.join("plugins"));
    ensure!(staged.is_empty(), "still staged after the pod: {staged:?}");
    ensure!(
        std::fs::read_to_string(&on_disk)? == "written-by-user\n",
        "the data did not outlive the pod"
    );

    // Deleting the claim releases the volume; reclaimPolicy Delete deletes it.
    claims.delete("data", &DeleteParams::default()).await?;
    eventually(RUNNING, "deleted", || {
        let volumes = volumes.clone();
        let pv_name = pv_name.clone();
        async move { Ok(volumes.get_opt(&pv_name).await?.is_none()) }
    })
    .await?;
    ensure!(
        !volume_dir(&ctx, &handle).exists(),
        "the driver still has volume {handle}"
    );
    Api::<StorageClass>::all(client.clone())
        .delete("hostpath", &DeleteParams::default())
        .await?;
    Ok(())
}

async fn pre_created_volumes_bind_by_class_access_modes_and_capacity(ctx: Ctx) -> Result<()> {
    let client = &ctx.cluster.client;
    let ns = ctx.cluster.namespace("csi-bind").await?;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    for (name, size, modes) in [
        ("manual-small", "5Mi", vec!["ReadWriteOnce"]),
        ("manual-big", "50Mi", vec!["ReadWriteOnce"]),
        ("manual-rwx", "20Mi", vec!["ReadWriteMany"]),
    ] {
        let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name },
            "spec": { "storageClassName": "manual", "capacity": { "storage": size },
                      "accessModes": modes, "persistentVolumeReclaimPolicy": "Retain",
                      "csi": { "driver": DRIVER, "volumeHandle": format!("handle-{name}") } }
        }))?;
        volumes.create(&PostParams::default(), &pv).await?;
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    for (name, class, size, mode) in [
        ("rwo", "manual", "10Mi", "ReadWriteOnce"),
        ("rwx", "manual", "1Mi", "ReadWriteMany"),
        ("other-class", "elsewhere", "1Mi", "ReadWriteOnce"),
        ("too-big", "manual", "1Gi", "ReadWriteOnce"),
    ] {
        let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name },
            "spec": { "storageClassName": class, "accessModes": [mode],
                      "resources": { "requests": { "storage": size } } }
        }))?;
        claims.create(&PostParams::default(), &claim).await?;
    }
    let bound_to = |claims: Api<PersistentVolumeClaim>,
                    name: &'static str,
                    volume: &'static str| async move {
        eventually(
            Duration::from_secs(30),
            &format!("{name} bound to {volume}"),
            || {
                let claims = claims.clone();
                async move {
                    let claim = claims.get(name).await?;
                    Ok(
                        claim.status.and_then(|s| s.phase).as_deref() == Some("Bound")
                            && claim.spec.and_then(|s| s.volume_name).as_deref() == Some(volume),
                    )
                }
            },
        )
        .await
    };
    // The smallest volume that fits: 5Mi is too small, the 20Mi one is ReadWriteMany only.
    bound_to(claims.clone(), "rwo", "manual-big").await?;
    bound_to(claims.clone(), "rwx", "manual-rwx").await?;
    let big = volumes.get("manual-big").await?;
    ensure!(
        big.status.and_then(|s| s.phase).as_deref() == Some("Bound"),
        "manual-big is not Bound"
    );
    // Nothing fits these: they stay Pending.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in ["other-class", "too-big"] {
        let claim = claims.get(name).await?;
        ensure!(
            claim.spec.and_then(|s| s.volume_name).is_none(),
            "{name} was bound"
        );
    }
    let small = volumes.get("manual-small").await?;
    ensure!(
        small.status.and_then(|s| s.phase).as_deref() == Some("Available"),
        "manual-small is not Available"
    );
    // A deleted claim releases its volume; Retain keeps it.
    claims.delete("rwo", &DeleteParams::default()).await?;
    eventually(Duration::from_secs(30), "manual-big Released", || {
        let volumes = volumes.clone();
        async move {
            Ok(volumes
                .get("manual-big")
                .await?
                .status
                .and_then(|s| s.phase)
                .as_deref()
                == Some("Released"))
        }
    })
    .await?;
    for name in ["manual-small", "manual-big", "manual-rwx"] {
        volumes.delete(name, &DeleteParams::default()).await?;
    }
    Ok(())
}

async fn a_driver_killed_during_publish_is_retried_until_it_is_back(ctx: Ctx) -> Result<()> {
    let client = &ctx.cluster.client;
    let ns = ctx.cluster.namespace("csi-retry").await?;
    let created = create(
        client,
        &ns,
        &csi_pod(
            "patient",
            &serde_json::json!({ "name": "data", "csi": { "driver": DRIVER } }),
        )?,
    )
    .await?;
    let pod_uid = uid(&created);
    // Killed in the middle of the publish of this pod's volume.
    let target = format!("pods/{pod_uid}/volumes/kubernetes.io~csi/data/mount");
    let log = ctx.driver.lock().unwrap().log().to_owned();
    eventually(RUNNING, "publishing", || {
        let log = log.clone();
        let target = target.clone();
        async move {
            let text = std::fs::read_to_string(&log)?;
            Ok(text
                .lines()
                .any(|l| l.contains("publishing volume") && l.contains(&target)))
        }
    })
    .await?;
    ctx.driver.lock().unwrap().kill9();
    // Without its driver the publish fails, is reported, and retried.
    let mut failures = 0;
    let deadline = Instant::now() + RUNNING;
    while failures < 2 {
        ensure!(
            Instant::now() < deadline,
            "no FailedMount events while the driver is down"
        );
        let said = events(client, &ns, "patient").await?;
        failures = said
            .iter()
            .filter(|e| e.reason.as_deref() == Some("FailedMount"))
            .map(|e| e.count.unwrap_or(1))
            .sum();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let waiting: Pod = Api::namespaced(client.clone(), &ns).get("patient").await?;
    ensure!(
        phase(&waiting) == "Pending",
        "phase {} without the driver",
        phase(&waiting)
    );
    let said = events(client, &ns, "patient").await?;
    let message = said
        .iter()
        .find(|e| e.reason.as_deref() == Some("FailedMount"))
        .and_then(|e| e.message.clone())
        .unwrap_or_default();
    // Either the publish reached the dead socket, or the node had noticed the driver gone.
    ensure!(
        message.contains("MountVolume.SetUp failed for volume \"data\"")
            && (message.contains("NodePublishVolume")
                || message.contains("not found in the list of registered CSI drivers")),
        "FailedMount says {message:?}"
    );
    // The node noticed that the driver went away (its socket refuses connections)...
    eventually(Duration::from_secs(10), "removed from the CSINode", || {
        let client = client.clone();
        let node = ctx.cluster.node_name.clone();
        async move { Ok(!csi_node_has_driver(&client, &node).await?) }
    })
    .await?;
    ctx.driver.lock().unwrap().restart()?;
    // ... and registers it again once it is back.
    eventually(RUNNING, "back in the CSINode", || {
        let client = client.clone();
        let node = ctx.cluster.node_name.clone();
        async move { csi_node_has_driver(&client, &node).await }
    })
    .await?;
    wait_for(
        client,
        &ns,
        "patient",
        RUNNING,
        "running once the driver is back",
        running_and_ready,
    )
    .await?;
    let (_, seen) = exec(&pod_uid, "main", &["cat", "/data/file"]).await?;
    ensure!(seen == "written-by-patient\n", "the container saw {seen:?}");
    delete_pod(&ctx, &ns, "patient", &pod_uid).await
}

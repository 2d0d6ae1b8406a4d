//! The node agent end to end: `ferrolet control-plane` plus one `ferrolet node` on
//! hack/containerd's containerd, driven through the API as a user would, each case in its own
//! namespace and all at once. At the end every pod is deleted and the node must have removed
//! everything it made: sandboxes, containers, mounts, pod directories, logs and cgroups.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use ferrolet_cri::{RuntimeService, api};
use ferrolet_tests::case;
use ferrolet_tests::cluster::{ClusterOptions, TestCluster, node_ready};
use ferrolet_tests::cri_facts::{footprint, parse_cri_log};
use ferrolet_tests::pods::{
    BUSYBOX, condition, container, create, events, init_container, phase, pod, shell_pod, wait_for,
    wait_gone, waiting_reason,
};
use ferrolet_tests::suite::{self, Mode};
use ferrolet_tests::{cidr_contains, containerd, mount_points, pod_cidr, registry};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, PostParams};

type Ctx = Arc<TestCluster>;

const RUNNING: Duration = Duration::from_mins(1);

fn main() -> ExitCode {
    let cases = vec![
        case!(a_busybox_pod_runs_with_a_pingable_ip_and_cri_logs),
        case!(init_containers_run_in_order),
        case!(a_failing_init_container_fails_the_pod_under_never),
        case!(a_failing_init_container_is_retried_under_always),
        case!(restart_policies_give_the_kubelets_phase_and_restart_count),
        case!(crash_loop_back_off_grows),
        case!(termination_messages_come_from_the_file_or_the_logs),
        case!(environment_from_expansion_config_maps_secrets_and_the_downward_api),
        case!(deletion_honours_the_grace_period_and_leaves_nothing),
        case!(a_missing_image_backs_off_and_a_registry_image_is_pulled),
        case!(active_deadline_fails_the_pod),
        case!(a_static_pod_runs_with_a_mirror_pod),
        case!(admission_rejects_what_does_not_fit),
    ];
    let Some(cases) = suite::select(cases) else {
        return ExitCode::SUCCESS;
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let mut options = ClusterOptions::new("node-e2e");
        options.kubelet_config = "staticPodPath: STATIC\nmaxPods: 40".into();
        let cluster = match start(options).await {
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

/// The cluster with its static pod directory under its own temporary directory.
async fn start(mut options: ClusterOptions) -> Result<TestCluster> {
    let manifests = std::env::temp_dir().join(format!("ferrolet-static-{}", std::process::id()));
    std::fs::create_dir_all(&manifests)?;
    options.kubelet_config = options
        .kubelet_config
        .replace("STATIC", &manifests.display().to_string());
    TestCluster::start(options).await
}

/// Deletes every pod, waits for the node to finalize them, and checks that nothing of theirs
/// is left on the host.
async fn teardown(cluster: Arc<TestCluster>) -> Result<()> {
    let manifests = std::env::temp_dir().join(format!("ferrolet-static-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&manifests);
    cluster.delete_all_pods(Duration::from_mins(2)).await?;
    // Static pods have no object to delete: their sandboxes go once the file is gone.
    let runtime = containerd().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sandboxes = runtime.list_pod_sandbox(None).await?;
        if sandboxes.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "sandboxes left: {:?}",
                sandboxes.iter().map(|s| &s.metadata).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let root = cluster.root_dir.display().to_string();
    // The root itself is a shared bind mount of the agent's (made at start, as the kubelet
    // does); what is below it belonged to pods.
    let mounts: Vec<String> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&format!("{root}/")))
        .collect();
    ensure!(mounts.is_empty(), "mounts left under {root}: {mounts:?}");
    let pods_dir = cluster.root_dir.join("pods");
    let left: Vec<_> = std::fs::read_dir(&pods_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    ensure!(left.is_empty(), "pod directories left: {left:?}");
    for hierarchy in ["memory", "cpu", "pids"] {
        let kubepods = format!("/sys/fs/cgroup/{hierarchy}{}/kubepods", cluster.cgroup_root);
        let pods = pod_cgroups(std::path::Path::new(&kubepods));
        ensure!(pods.is_empty(), "pod cgroups left in {kubepods}: {pods:?}");
    }
    drop(cluster);
    Ok(())
}

/// `pod<uid>` directories below a `kubepods` cgroup.
fn pod_cgroups(kubepods: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for dir in [
        kubepods.to_owned(),
        kubepods.join("burstable"),
        kubepods.join("besteffort"),
    ] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            found.extend(
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("pod")),
            );
        }
    }
    found
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && condition(pod, "Ready") == Some("True")
}

fn termination_message(pod: &Pod, name: &str) -> Option<String> {
    container(pod, name)?
        .state
        .as_ref()?
        .terminated
        .as_ref()?
        .message
        .clone()
}

/// The CRI sandboxes of a pod, by its UID label.
async fn sandboxes_of(pod_uid: &str) -> Result<Vec<api::PodSandbox>> {
    let filter = api::PodSandboxFilter {
        label_selector: [("io.kubernetes.pod.uid".to_owned(), pod_uid.to_owned())].into(),
        ..Default::default()
    };
    Ok(containerd().await.list_pod_sandbox(Some(filter)).await?)
}

/// The CRI containers of a pod, by its UID label.
async fn containers_of(pod_uid: &str) -> Result<Vec<api::Container>> {
    let filter = api::ContainerFilter {
        label_selector: [("io.kubernetes.pod.uid".to_owned(), pod_uid.to_owned())].into(),
        ..Default::default()
    };
    Ok(containerd().await.list_containers(Some(filter)).await?)
}

async fn a_busybox_pod_runs_with_a_pingable_ip_and_cri_logs(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("e2e-basic").await?;
    let client = &ctx.client;
    create(
        client,
        &ns,
        &shell_pod(
            "web",
            "Always",
            "echo hello; echo oops >&2; exec sleep 3600",
        )?,
    )
    .await?;
    let pod = wait_for(
        client,
        &ns,
        "web",
        RUNNING,
        "Running and Ready",
        running_and_ready,
    )
    .await?;
    let status = pod.status.clone().unwrap_or_default();

    let ip: Ipv4Addr = status.pod_ip.clone().context("podIP")?.parse()?;
    ensure!(
        cidr_contains(pod_cidr(), ip),
        "pod IP {ip} outside the pod CIDR"
    );
    let ips: Vec<String> = status
        .pod_ips
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip)
        .collect();
    ensure!(ips == [ip.to_string()], "podIPs {ips:?}");
    ensure!(
        status.host_ip.as_deref() == Some(&*ctx.node_ip.to_string()),
        "hostIP {:?}",
        status.host_ip
    );
    ensure!(
        status.qos_class.as_deref() == Some("BestEffort"),
        "qosClass {:?}",
        status.qos_class
    );
    ensure!(status.start_time.is_some(), "no startTime");
    for type_ in [
        "PodScheduled",
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ] {
        ensure!(
            condition(&pod, type_) == Some("True"),
            "condition {type_}: {:?}",
            status.conditions
        );
    }
    let main = container(&pod, "main").context("status of main")?;
    ensure!(
        main.ready && main.started == Some(true) && main.restart_count == 0,
        "{main:?}"
    );
    ensure!(main.image.ends_with(BUSYBOX), "image {}", main.image);
    ensure!(!main.image_id.is_empty(), "no imageID");
    let container_id = main.container_id.clone().context("containerID")?;
    ensure!(container_id.starts_with("containerd://"), "{container_id}");
    ensure!(
        main.state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .is_some(),
        "{main:?}"
    );

    // Reachable from the host, routed through the node.
    let ping = tokio::process::Command::new("ping")
        .args(["-c", "1", "-W", "3", &ip.to_string()])
        .output()
        .await?;
    ensure!(
        ping.status.success(),
        "ping {ip}: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // The container's log in CRI format where the kubelet puts it.
    let path = format!("/var/log/pods/{ns}_web_{}/main/0.log", uid(&pod));
    let lines = ferrolet_tests::eventually(Duration::from_secs(10), "both log lines", || {
        let path = path.clone();
        async move {
            let text = std::fs::read_to_string(&path).ok()?;
            let lines = parse_cri_log(&text);
            (lines.len() >= 2).then_some(lines)
        }
    })
    .await;
    let seen: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l.stream.as_str(), l.content.as_str()))
        .collect();
    ensure!(
        seen.contains(&("stdout", "hello")) && seen.contains(&("stderr", "oops")),
        "{seen:?}"
    );

    // The events of a start, from the kubelet.
    let reasons: Vec<String> = events(client, &ns, "web")
        .await?
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        ensure!(
            reasons.iter().any(|r| r == reason),
            "no {reason} event in {reasons:?}"
        );
    }
    Ok(())
}

async fn init_containers_run_in_order(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("e2e-init").await?;
    let client = &ctx.client;
    let mount = serde_json::json!([{ "name": "work", "mountPath": "/work" }]);
    create(
        client,
        &ns,
        &pod(serde_json::json!({
            "metadata": { "name": "ordered" },
            "spec": {
                "restartPolicy": "Never",
                "volumes": [{ "name": "work", "emptyDir": {} }],
                "initContainers": [
                    { "name": "first", "image": BUSYBOX, "volumeMounts": mount,
                      "command": ["sh", "-c", "sleep 1; echo first >> /work/order"] },
                    { "name": "second", "image": BUSYBOX, "volumeMounts": mount,
                      "command": ["sh", "-c", "echo second >> /work/order"] }
                ],
                "containers": [{ "name": "main", "image": BUSYBOX, "volumeMounts": mount,
                    "command": ["sh", "-c", "cat /work/order > /dev/termination-log"] }]
            }
        }))?,
    )
    .await?;
    let pod = wait_for(client, &ns, "ordered", RUNNING, "Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await?;
    ensure!(
        termination_message(&pod, "main").as_deref() == Some("first\nsecond\n"),
        "{:?}",
        termination_message(&pod, "main")
    );
    let finished = |name: &str| -> Result<_> {
        let t = init_container(&pod, name)
            .and_then(|s| s.state.as_ref()?.terminated.clone())
            .with_context(|| format!("{name} not terminated"))?;
        ensure!(
            t.exit_code == 0 && t.reason.as_deref() == Some("Completed"),
            "{name}: {t:?}"
        );
        Ok(t)
    };
    let (first, second) = (finished("first")?, finished("second")?);
    ensure!(
        first.finished_at.map(|t| t.0) <= second.started_at.map(|t| t.0),
        "second started before first finished"
    );
    ensure!(
        condition(&pod, "Initialized") == Some("True"),
        "Initialized"
    );
    Ok(())
}

async fn a_failing_init_container_fails_the_pod_under_never(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("e2e-init-never").await?;
    let client = &ctx.client;
    create(client, &ns, &pod(serde_json::json!({
        "metadata": { "name": "broken" },
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [{ "name": "setup", "image": BUSYBOX, "command": ["sh", "-c", "exit 3"] }],
            "containers": [{ "name": "main", "image": BUSYBOX, "command": ["sleep", "3600"] }]
        }
    }))?).await?;
    let pod = wait_for(client, &ns, "broken", RUNNING, "Failed", |p| {
        phase(p) == "Failed"
    })
    .await?;
    let setup = init_container(&pod, "setup").context("setup status")?;
    let terminated = setup
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .context("setup terminated")?;
    ensure!(
        terminated.exit_code == 3 && terminated.reason.as_deref() == Some("Error"),
        "{terminated:?}"
    );
    ensure!(setup.restart_count == 0, "restarted under Never");
    let main = container(&pod, "main").context("main status")?;
    ensure!(
        waiting_reason(main) == Some("PodInitializing") && main.container_id.is_none(),
        "{main:?}"
    );
    ensure!(
        condition(&pod, "Initialized") == Some("False"),
        "Initialized"
    );
    // The app container never existed in the runtime.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let names: Vec<String> = containers_of(&uid(&pod))
        .await?
        .into_iter()
        .filter_map(|c| c.metadata.map(|m| m.name))
        .collect();
    ensure!(
        !names.iter().any(|n| n == "main"),
        "main was created: {names:?}"
    );
    Ok(())
}

async fn a_failing_init_container_is_retried_under_always(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("e2e-init-always").await?;
    let client = &ctx.client;
    create(client, &ns, &pod(serde_json::json!({
        "metadata": { "name": "retry" },
        "spec": {
            "restartPolicy": "Always",
            "initContainers": [{ "name": "setup", "image": BUSYBOX, "command": ["sh", "-c", "exit 1"] }],
            "containers": [{ "name": "main", "image": BUSYBOX, "command": ["sleep", "3600"] }]
        }
    }))?).await?;
    let pod = wait_for(
        client,
        &ns,
        "retry",
        Duration::from_secs(90),
        "init container restarted in back-off",
        |p| {
            init_container(p, "setup").is_some_and(|s| {
                s.restart_count >= 1 && waiting_reason(s) == Some("CrashLoopBackOff")
            })
        },
    )
    .await?;
    ensure!(phase(&pod) == "Pending", "phase {}", phase(&pod));
    let main = container(&pod, "main").context("main status")?;
    ensure!(
        waiting_reason(main) == Some("PodInitializing") && main.container_id.is_none(),
        "{main:?}"
    );
    Ok(())
}

async fn restart_policies_give_the_kubelets_phase_and_restart_count(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("e2e-restart").await?;
    let client = &ctx.client;
    // (name, policy, exit code, expected phase, restarts expected)
    let matrix = [
        ("always-fails", "Always", 1, "Running", true),
        ("onfailure-fails", "OnFailure", 1, "Running", true),
        ("never-fails", "Never", 1, "Failed", false),
        ("onfailure-succeeds", "OnFailure", 0, "Succeeded", false),
        ("never-succeeds", "Never", 0, "Succeeded", false),
        ("always-succeeds", "Always", 0, "Running", true),
    ];
    for (name, policy, code, _, _) in matrix {
        create(
            client,
            &ns,
            &shell_pod(name, policy, &format!("exit {code}"))?,
        )
        .await?;
    }
    for (name, _, code, expected, restarts) in matrix {
        let pod = wait_for(client, &ns, name, Duration::from_secs(90), expected, |p| {
            // A restarted container is ready while its next run lasts (it has no
            // readiness probe), so the crash loop is judged while it waits in
            // back-off.
            let restarted = container(p, "main").is_some_and(|c| {
                c.restart_count >= 1 && c.state.as_ref().is_some_and(|s| s.waiting.is_some())
            });
            phase(p) == expected
                && (restarted || !restarts)
                && (restarts
                    || container(p, "main")
                        .is_some_and(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some())))
        })
        .await?;
        let main = container(&pod, "main").context("main status")?;
        if restarts {
            let last = main
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .context("lastState.terminated")?;
            ensure!(
                last.exit_code == code,
                "{name}: last exit {}",
                last.exit_code
            );
            ensure!(!main.ready, "{name}: ready while waiting in back-off");
        } else {
            ensure!(main.restart_count == 0, "{name}: restarted");
            let terminated = main
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .context("terminated")?;
            let reason = if code == 0 { "Completed" } else { "Error" };
            ensure!(
                terminated.exit_code == code && terminated.reason.as_deref() == Some(reason),
                "{name}: {terminated:?}"
            );
            // A finished pod keeps its status; its sandbox is stopped.
            let uid = uid(&pod);
            let stopped =
                ferrolet_tests::eventually(Duration::from_secs(20), "the sandbox stopped", || {
                    let uid = uid.clone();
                    async move {
                        let sandboxes = sandboxes_of(&uid).await.ok()?;
                        sandboxes
                            .iter()
                            .all(|s| s.state() != api::PodSandboxState::SandboxReady)
                            .then_some(())
                    }
                });
            stopped.await;
        }
    }
    Ok(())
}

async fn crash_loop_back_off_grows(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("e2e-backoff").await?;
    let client = &ctx.client;
    create(client, &ns, &shell_pod("crasher", "Always", "exit 1")?).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    // The back-off the waiting message names, each time it changes: 10s, then 20s.
    let mut delays: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(100);
    while delays.len() < 2 && Instant::now() < deadline {
        let pod = api.get("crasher").await?;
        if let Some(message) = container(&pod, "main")
            .filter(|c| waiting_reason(c) == Some("CrashLoopBackOff"))
            .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone())
        {
            let delay = message
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            ensure!(
                message.starts_with("back-off ")
                    && message.contains("restarting failed container=main pod=crasher_"),
                "{message}"
            );
            if delays.last() != Some(&delay) {
                delays.push(delay);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    ensure!(delays == ["10s", "20s"], "back-off delays seen: {delays:?}");
    let pod = api.get("crasher").await?;
    ensure!(phase(&pod) == "Running", "phase {}", phase(&pod));
    let reasons: Vec<String> = events(client, &ns, "crasher")
        .await?
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    ensure!(
        reasons.iter().any(|r| r == "BackOff"),
        "no BackOff event: {reasons:?}"
    );
    Ok(())
}

/// (pod name, policy, message path, script, expected message)
type Termination = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
);

async fn termination_messages_come_from_the_file_or_the_logs(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("e2e-termination").await?;
    let client = &ctx.client;
    // (name, policy, message path, script, expected message)
    let cases: [Termination; 5] = [
        (
            "file",
            "File",
            None,
            "printf 'all done' > /dev/termination-log",
            Some("all done"),
        ),
        (
            "custom-path",
            "File",
            Some("/tmp/why"),
            "printf 'custom' > /tmp/why; exit 4",
            Some("custom"),
        ),
        (
            "logs-on-error",
            "FallbackToLogsOnError",
            None,
            "echo line1; echo boom; exit 2",
            Some("line1\nboom"),
        ),
        (
            "logs-not-on-success",
            "FallbackToLogsOnError",
            None,
            "echo quiet",
            None,
        ),
        (
            "file-beats-logs",
            "FallbackToLogsOnError",
            None,
            "echo noise; printf 'from file' > /dev/termination-log; exit 1",
            Some("from file"),
        ),
    ];
    for (name, policy, path, script, _) in cases {
        let mut c = serde_json::json!({ "name": "main", "image": BUSYBOX, "command": ["sh", "-c", script], "terminationMessagePolicy": policy });
        if let Some(path) = path {
            c["terminationMessagePath"] = path.into();
        }
        create(client, &ns, &pod(serde_json::json!({
            "metadata": { "name": name }, "spec": { "restartPolicy": "Never", "containers": [c] }
        }))?).await?;
    }
    for (name, _, _, _, expected) in cases {
        let pod = wait_for(client, &ns, name, RUNNING, "finished", |p| {
            matches!(phase(p), "Succeeded" | "Failed")
        })
        .await?;
        let message = termination_message(&pod, "main").filter(|m| !m.is_empty());
        ensure!(
            message.as_deref().map(str::trim_end) == expected,
            "{name}: message {message:?}, expected {expected:?}"
        );
    }
    Ok(())
}

async fn environment_from_expansion_config_maps_secrets_and_the_downward_api(
    ctx: Ctx,
) -> Result<()> {
    let ns = ctx.namespace("e2e-env").await?;
    let client = &ctx.client;
    let config_map: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "settings" }, "data": { "greeting": "hello", "LEVEL": "debug" }
    }))?;
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &config_map)
        .await?;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "creds" }, "stringData": { "password": "s3cret", "TOKEN": "t0ken" }
    }))?;
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await?;
    let names = [
        "GREETING",
        "PASSWORD",
        "CM_LEVEL",
        "TOKEN",
        "MESSAGE",
        "ESCAPED",
        "UNDEFINED",
        "POD_NAME",
        "POD_NAMESPACE",
        "POD_UID",
        "POD_IP",
        "HOST_IP",
        "NODE_NAME",
        "SA",
        "APP",
        "MEM_LIMIT",
        "CPU_LIMIT_MILLI",
        "CPU_REQUEST",
    ];
    let script = names
        .iter()
        .map(|n| format!("echo {n}=${n}"))
        .collect::<Vec<_>>()
        .join("; ");
    let field = |path: &str| serde_json::json!({ "fieldRef": { "fieldPath": path } });
    create(client, &ns, &pod(serde_json::json!({
        "metadata": { "name": "env", "labels": { "app": "envtest" } },
        "spec": {
            // Bound directly: the admission case's greedy pod may fill the node for the
            // scheduler until the node rejects it.
            "nodeName": ctx.node_name,
            "restartPolicy": "Never",
            "containers": [{
                "name": "main", "image": BUSYBOX,
                "command": ["sh", "-c", format!("({script}) > /dev/termination-log")],
                "resources": { "requests": { "cpu": "100m", "memory": "32Mi" }, "limits": { "cpu": "500m", "memory": "64Mi" } },
                "envFrom": [
                    { "configMapRef": { "name": "settings" }, "prefix": "CM_" },
                    { "secretRef": { "name": "creds" } }
                ],
                "env": [
                    { "name": "GREETING", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "greeting" } } },
                    { "name": "PASSWORD", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "password" } } },
                    { "name": "MESSAGE", "value": "$(GREETING) from $(POD_NAME)" },
                    { "name": "ESCAPED", "value": "$$(GREETING)" },
                    { "name": "UNDEFINED", "value": "$(NOT_THERE)" },
                    { "name": "POD_NAME", "valueFrom": field("metadata.name") },
                    { "name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace") },
                    { "name": "POD_UID", "valueFrom": field("metadata.uid") },
                    { "name": "POD_IP", "valueFrom": field("status.podIP") },
                    { "name": "HOST_IP", "valueFrom": field("status.hostIP") },
                    { "name": "NODE_NAME", "valueFrom": field("spec.nodeName") },
                    { "name": "SA", "valueFrom": field("spec.serviceAccountName") },
                    { "name": "APP", "valueFrom": field("metadata.labels['app']") },
                    { "name": "MEM_LIMIT", "valueFrom": { "resourceFieldRef": { "resource": "limits.memory" } } },
                    { "name": "CPU_LIMIT_MILLI", "valueFrom": { "resourceFieldRef": { "resource": "limits.cpu", "divisor": "1m" } } },
                    { "name": "CPU_REQUEST", "valueFrom": { "resourceFieldRef": { "resource": "requests.cpu" } } }
                ]
            }]
        }
    }))?).await?;
    let pod = wait_for(client, &ns, "env", RUNNING, "Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await?;
    let message = termination_message(&pod, "main").context("no termination message")?;
    let got: BTreeMap<&str, &str> = message.lines().filter_map(|l| l.split_once('=')).collect();
    let pod_uid = uid(&pod);
    let pod_ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();
    let node_ip = ctx.node_ip.to_string();
    let expected: BTreeMap<&str, &str> = [
        ("GREETING", "hello"),
        ("PASSWORD", "s3cret"),
        ("CM_LEVEL", "debug"),
        ("TOKEN", "t0ken"),
        // Only variables defined earlier in the list expand, as in the kubelet.
        ("MESSAGE", "hello from $(POD_NAME)"),
        ("ESCAPED", "$(GREETING)"),
        ("UNDEFINED", "$(NOT_THERE)"),
        ("POD_NAME", "env"),
        ("POD_NAMESPACE", ns.as_str()),
        ("POD_UID", pod_uid.as_str()),
        ("POD_IP", pod_ip.as_str()),
        ("HOST_IP", node_ip.as_str()),
        ("NODE_NAME", ctx.node_name.as_str()),
        ("SA", "default"),
        ("APP", "envtest"),
        ("MEM_LIMIT", "67108864"),
        ("CPU_LIMIT_MILLI", "500"),
        // Rounded up to whole cores without a divisor.
        ("CPU_REQUEST", "1"),
    ]
    .into();
    ensure!(
        got == expected,
        "environment:\n got {got:?}\nwant {expected:?}"
    );
    ensure!(!pod_ip.is_empty(), "no pod IP");
    Ok(())
}

async fn deletion_honours_the_grace_period_and_leaves_nothing(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("e2e-delete").await?;
    let client = &ctx.client;
    // `sh` as PID 1 ignores SIGTERM: only the SIGKILL after the grace period ends it.
    let mut stubborn = shell_pod(
        "stubborn",
        "Always",
        "trap '' TERM; while true; do sleep 1; done",
    )?;
    stubborn
        .spec
        .as_mut()
        .context("spec")?
        .termination_grace_period_seconds = Some(30);
    create(client, &ns, &stubborn).await?;
    let pod = wait_for(
        client,
        &ns,
        "stubborn",
        RUNNING,
        "Running",
        running_and_ready,
    )
    .await?;
    let pod_uid = uid(&pod);
    let sandbox = sandboxes_of(&pod_uid)
        .await?
        .into_iter()
        .next()
        .context("no sandbox")?;
    let status = containerd()
        .await
        .pod_sandbox_status(&sandbox.id, true)
        .await?;
    let netns = footprint(&status.info).netns_path;
    ensure!(
        mount_points().contains(&netns),
        "the sandbox's netns {netns} is not mounted"
    );

    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let params = DeleteParams {
        grace_period_seconds: Some(5),
        ..DeleteParams::default()
    };
    api.delete("stubborn", &params).await?;
    let took = wait_gone(client, &ns, "stubborn", Duration::from_secs(40)).await?;
    ensure!(
        took >= Duration::from_millis(4500) && took <= Duration::from_secs(15),
        "deleted after {took:?}, not ~5s"
    );

    ensure!(sandboxes_of(&pod_uid).await?.is_empty(), "sandbox left");
    ensure!(containers_of(&pod_uid).await?.is_empty(), "containers left");
    let mounts: Vec<String> = mount_points()
        .into_iter()
        .filter(|m| m.contains(&pod_uid) || *m == netns)
        .collect();
    ensure!(mounts.is_empty(), "mounts left: {mounts:?}");
    ensure!(!std::path::Path::new(&netns).exists(), "netns {netns} left");
    ensure!(
        !ctx.root_dir.join("pods").join(&pod_uid).exists(),
        "pod directory left"
    );
    ensure!(
        !std::path::Path::new(&format!("/var/log/pods/{ns}_stubborn_{pod_uid}")).exists(),
        "logs left"
    );
    let killing = events(client, &ns, "stubborn")
        .await?
        .into_iter()
        .any(|e| e.reason.as_deref() == Some("Killing"));
    ensure!(killing, "no Killing event");
    Ok(())
}

async fn a_missing_image_backs_off_and_a_registry_image_is_pulled(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("e2e-images").await?;
    let client = &ctx.client;
    let missing = format!("{}/ferrolet/missing:1", registry());
    // The registry's copy of busybox: same content as the imported image, pulled by name.
    let pulled = format!("{}/{}", registry(), ferrolet_images::REGISTRY_BUSYBOX);
    for (name, image) in [("missing", &missing), ("pulled", &pulled)] {
        create(client, &ns, &pod(serde_json::json!({
            "metadata": { "name": name },
            "spec": { "containers": [{ "name": "main", "image": image, "command": ["sleep", "3600"], "imagePullPolicy": "Always" }] }
        }))?).await?;
    }
    let mut seen = Vec::new();
    wait_for(
        client,
        &ns,
        "missing",
        RUNNING,
        "ErrImagePull then ImagePullBackOff",
        |p| {
            if let Some(reason) = container(p, "main").and_then(waiting_reason)
                && seen.last().map(String::as_str) != Some(reason)
            {
                seen.push(reason.to_owned());
            }
            seen.iter().any(|r| r == "ErrImagePull") && seen.iter().any(|r| r == "ImagePullBackOff")
        },
    )
    .await?;
    let failed = events(client, &ns, "missing").await?.into_iter().find(|e| {
        e.reason.as_deref() == Some("Failed")
            && e.message
                .as_deref()
                .is_some_and(|m| m.starts_with(&format!("Failed to pull image \"{missing}\"")))
    });
    ensure!(failed.is_some(), "no Failed event naming the image");
    let pod = wait_for(client, &ns, "pulled", RUNNING, "Running", running_and_ready).await?;
    let reasons: Vec<String> = events(client, &ns, "pulled")
        .await?
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    ensure!(
        reasons.iter().any(|r| r == "Pulling") && reasons.iter().any(|r| r == "Pulled"),
        "{reasons:?}"
    );
    ensure!(
        container(&pod, "main").is_some_and(|c| !c.image_id.is_empty()),
        "no imageID"
    );
    // The agent is unaffected.
    let node = Api::<Node>::all(client.clone()).get(&ctx.node_name).await?;
    ensure!(node_ready(&node), "node not Ready");
    Ok(())
}

async fn active_deadline_fails_the_pod(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("e2e-deadline").await?;
    let client = &ctx.client;
    let mut limited = shell_pod("limited", "Always", "exec sleep 3600")?;
    limited
        .spec
        .as_mut()
        .context("spec")?
        .active_deadline_seconds = Some(5);
    create(client, &ns, &limited).await?;
    let pod = wait_for(
        client,
        &ns,
        "limited",
        Duration::from_secs(40),
        "Failed",
        |p| phase(p) == "Failed",
    )
    .await?;
    let status = pod.status.clone().unwrap_or_default();
    ensure!(
        status.reason.as_deref() == Some("DeadlineExceeded"),
        "reason {:?}",
        status.reason
    );
    let main = container(&pod, "main").context("main")?;
    ensure!(
        main.state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some(),
        "still running: {main:?}"
    );
    Ok(())
}

async fn a_static_pod_runs_with_a_mirror_pod(ctx: Ctx) -> Result<()> {
    let manifests = std::env::temp_dir().join(format!("ferrolet-static-{}", std::process::id()));
    let file = manifests.join("static-web.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\n  namespace: default\nspec:\n  \
             containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [sleep, \"3600\"]\n"
        ),
    )?;
    let client = &ctx.client;
    let mirror_name = format!("static-web-{}", ctx.node_name);
    let mirror = wait_for(
        client,
        "default",
        &mirror_name,
        RUNNING,
        "a Running mirror pod",
        running_and_ready,
    )
    .await?;
    let annotations = mirror.metadata.annotations.clone().unwrap_or_default();
    ensure!(
        annotations.contains_key("kubernetes.io/config.mirror"),
        "{annotations:?}"
    );
    ensure!(
        mirror.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(ctx.node_name.as_str()),
        "nodeName"
    );
    // Deleting the mirror pod does not stop the static pod: the node makes it again.
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.delete(
        &mirror_name,
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await?;
    let again = wait_for(
        client,
        "default",
        &mirror_name,
        RUNNING,
        "a new mirror pod",
        |p| p.metadata.uid != mirror.metadata.uid && running_and_ready(p),
    )
    .await?;
    ensure!(
        container(&again, "main").map(|c| &c.container_id)
            == container(&mirror, "main").map(|c| &c.container_id),
        "the static pod restarted"
    );
    // Removing the manifest removes the pod and its mirror.
    std::fs::remove_file(&file)?;
    wait_gone(client, "default", &mirror_name, Duration::from_mins(1)).await?;
    Ok(())
}

async fn admission_rejects_what_does_not_fit(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("e2e-admission").await?;
    let client = &ctx.client;
    // Bound directly (no scheduler to keep them off): the node's admission decides.
    let bound = |name: &str, extra: serde_json::Value| -> Result<Pod> {
        let mut spec = serde_json::json!({
            "nodeName": ctx.node_name,
            "containers": [{ "name": "main", "image": BUSYBOX, "command": ["sleep", "3600"] }]
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        pod(serde_json::json!({ "metadata": { "name": name }, "spec": spec }))
    };
    create(
        client,
        &ns,
        &bound(
            "wrong-node",
            serde_json::json!({ "nodeSelector": { "disktype": "ssd" } }),
        )?,
    )
    .await?;
    let mut greedy = bound("greedy", serde_json::json!({}))?;
    greedy.spec.as_mut().context("spec")?.containers[0].resources =
        Some(serde_json::from_value(serde_json::json!({
            "requests": { "cpu": "1000" }
        }))?);
    create(client, &ns, &greedy).await?;
    for (name, reason) in [("wrong-node", "NodeAffinity"), ("greedy", "OutOfcpu")] {
        let pod = wait_for(client, &ns, name, RUNNING, "rejected", |p| {
            phase(p) == "Failed"
        })
        .await?;
        let status = pod.status.clone().unwrap_or_default();
        ensure!(
            status.reason.as_deref() == Some(reason),
            "{name}: reason {:?}, message {:?}",
            status.reason,
            status.message
        );
        ensure!(
            status
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with("Pod was rejected: ")),
            "{name}: {:?}",
            status.message
        );
        ensure!(
            containers_of(&uid(&pod)).await?.is_empty()
                && sandboxes_of(&uid(&pod)).await?.is_empty(),
            "{name} ran"
        );
    }
    Ok(())
}

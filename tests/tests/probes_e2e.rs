//! Probes and lifecycle hooks end to end, the kubelet's `NodeConformance` cases on
//! hack/containerd's containerd: exec, httpGet, tcpSocket and grpc liveness probes against
//! busybox and the test-server image (whose health the test flips over HTTP from the host,
//! which routes to the pod CIDR), readiness with an initial delay and failing readiness,
//! startup gating liveness, and postStart/preStop hooks whose effects are observed (a file in
//! the container, requests received by a handler pod). The cases run at once, each in its own
//! namespace; then the agent is killed and restarted under a probed pod, which must neither
//! restart nor lose its readiness.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use ferrolet_cri::RuntimeService;
use ferrolet_tests::case;
use ferrolet_tests::cluster::{ClusterOptions, TestCluster};
use ferrolet_tests::containerd;
use ferrolet_tests::pods::{BUSYBOX, condition, container, create, events, pod, wait_for};
use ferrolet_tests::suite::{self, Mode};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Mutex;

/// The shared cluster; the mutex lets the last phase restart its agent.
type Ctx = Arc<Mutex<TestCluster>>;

const TEST_SERVER: &str = "ferrolet/test-server:1";
const RUNNING: Duration = Duration::from_mins(1);

fn main() -> ExitCode {
    let concurrent = vec![
        case!(a_failing_liveness_exec_probe_restarts_the_container_again_and_again),
        case!(a_succeeding_liveness_exec_probe_never_restarts),
        case!(an_http_liveness_probe_restarts_when_health_flips),
        case!(a_tcp_liveness_probe_restarts_when_the_port_closes),
        case!(a_grpc_liveness_probe_restarts_when_the_service_stops_serving),
        case!(http_probes_send_headers_and_redirects_to_other_hosts_warn),
        case!(readiness_waits_for_the_initial_delay_and_never_restarts),
        case!(a_failing_readiness_probe_keeps_the_pod_not_ready),
        case!(a_startup_probe_holds_back_liveness),
        case!(a_failing_startup_probe_restarts_the_container),
        case!(post_start_exec_writes_a_file_in_the_container),
        case!(a_failing_post_start_hook_kills_the_container),
        case!(hooks_reach_a_handler_pod),
    ];
    let sequential = vec![case!(probe_results_survive_an_agent_restart)];
    let (Some(concurrent), Some(sequential)) =
        (suite::select(concurrent), suite::select(sequential))
    else {
        return ExitCode::SUCCESS;
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let cluster = match TestCluster::start(ClusterOptions::new("probes-e2e")).await {
            Ok(cluster) => Arc::new(Mutex::new(cluster)),
            Err(err) => {
                println!("setting up the cluster failed: {err:#}");
                return ExitCode::FAILURE;
            }
        };
        let limit = Duration::from_mins(4);
        let mut failures = suite::run(&concurrent, &cluster, Mode::Concurrent, limit).await;
        failures.extend(suite::run(&sequential, &cluster, Mode::Sequential, limit).await);
        let teardown = teardown(&cluster).await.map_err(|e| format!("{e:#}"));
        suite::summary(concurrent.len() + sequential.len(), &failures, &teardown)
    })
}

/// Deletes every pod and waits until the node has finalized them and containerd has no
/// sandbox left.
async fn teardown(cluster: &Ctx) -> Result<()> {
    let cluster = cluster.lock().await;
    cluster.delete_all_pods(Duration::from_mins(2)).await?;
    let runtime = containerd().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sandboxes = runtime.list_pod_sandbox(None).await?;
        if sandboxes.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} sandboxes left", sandboxes.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A client and a fresh namespace.
async fn setup(ctx: &Ctx, namespace: &str) -> Result<(kube::Client, String)> {
    let cluster = ctx.lock().await;
    let ns = cluster.namespace(namespace).await?;
    Ok((cluster.client.clone(), ns))
}

/// A one-container pod (`main`) with the given container fields added.
fn probe_pod(name: &str, image: &str, extra: serde_json::Value) -> Result<Pod> {
    let mut main = serde_json::json!({ "name": "main", "image": image });
    if let (Some(main), serde_json::Value::Object(extra)) = (main.as_object_mut(), extra) {
        main.extend(extra);
    }
    pod(serde_json::json!({
        "metadata": { "name": name },
        "spec": { "terminationGracePeriodSeconds": 1, "containers": [main] }
    }))
}

/// The test-server's ports, named as the probes refer to them.
fn server_ports() -> serde_json::Value {
    serde_json::json!([
        { "name": "http", "containerPort": 8080 },
        { "name": "tcp", "containerPort": 7070 },
        { "name": "grpc", "containerPort": 9090 }
    ])
}

fn restarts(pod: &Pod) -> i32 {
    container(pod, "main").map_or(0, |c| c.restart_count)
}

fn running(pod: &Pod) -> bool {
    container(pod, "main")
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

fn ready(pod: &Pod) -> bool {
    container(pod, "main").is_some_and(|c| c.ready)
}

fn pod_ip(pod: &Pod) -> Result<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .context("the pod has no IP")
}

/// A GET from the host to `ip:port` (HTTP/1.0): the status code and body.
async fn http_get(ip: &str, port: u16, path: &str) -> Result<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((ip, port)).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .context("timed out")??;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("a status line in {head:?}"))?;
    Ok((code, body.to_owned()))
}

/// Flips the test server's health (retrying while its new instance starts).
async fn flip(client: &kube::Client, ns: &str, name: &str, query: &str) -> Result<()> {
    let deadline = Instant::now() + RUNNING;
    loop {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let pod = api.get(name).await?;
        if running(&pod)
            && let Ok(ip) = pod_ip(&pod)
            && let Ok((200, _)) = http_get(&ip, 8080, &format!("/set-health?{query}")).await
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("could not flip the health of {ns}/{name}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Watches the pod for `period`: it must keep running with no restart (and, if `ready` is
/// given, with that readiness).
async fn steady(
    client: &kube::Client,
    ns: &str,
    name: &str,
    period: Duration,
    ready_state: Option<bool>,
) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let end = Instant::now() + period;
    loop {
        let pod = api.get(name).await?;
        ensure!(
            restarts(&pod) == 0 && running(&pod),
            "{ns}/{name} restarted or stopped: {:?}",
            container(&pod, "main")
        );
        if let Some(want) = ready_state {
            ensure!(
                ready(&pod) == want
                    && condition(&pod, "Ready") == Some(if want { "True" } else { "False" }),
                "{ns}/{name}: ready should be {want}: {:?}",
                pod.status.as_ref().map(|s| &s.conditions)
            );
        }
        if Instant::now() > end {
            return Ok(pod);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits for an event with `reason` whose message contains `text`.
async fn event(
    client: &kube::Client,
    ns: &str,
    name: &str,
    reason: &str,
    text: &str,
) -> Result<()> {
    let deadline = Instant::now() + RUNNING;
    loop {
        let all = events(client, ns, name).await?;
        if all.iter().any(|e| {
            e.reason.as_deref() == Some(reason)
                && e.message.as_deref().is_some_and(|m| m.contains(text))
        }) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let seen: Vec<String> = all
                .iter()
                .map(|e| format!("{:?}: {:?}", e.reason, e.message))
                .collect();
            bail!("no {reason} event containing {text:?} for {ns}/{name}; events: {seen:#?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn wait_restarts(client: &kube::Client, ns: &str, name: &str, at_least: i32) -> Result<Pod> {
    wait_for(
        client,
        ns,
        name,
        Duration::from_mins(2),
        &format!("restarted {at_least} times"),
        |p| restarts(p) >= at_least,
    )
    .await
}

async fn a_failing_liveness_exec_probe_restarts_the_container_again_and_again(
    ctx: Ctx,
) -> Result<()> {
    let (client, ns) = setup(&ctx, "probe-exec-fail").await?;
    let pod = probe_pod(
        "liveness",
        BUSYBOX,
        serde_json::json!({
            "command": ["sh", "-c", "echo ok > /tmp/health; sleep 3; rm -f /tmp/health; exec sleep 600"],
            "livenessProbe": {
                "exec": { "command": ["cat", "/tmp/health"] },
                "periodSeconds": 1, "failureThreshold": 1
            }
        }),
    )?;
    create(&client, &ns, &pod).await?;
    let first = wait_restarts(&client, &ns, "liveness", 1).await?;
    event(
        &client,
        &ns,
        "liveness",
        "Unhealthy",
        "Liveness probe failed: cat: can't open '/tmp/health'",
    )
    .await?;
    event(
        &client,
        &ns,
        "liveness",
        "Killing",
        "Container main failed liveness probe, will be restarted",
    )
    .await?;
    let second = wait_restarts(&client, &ns, "liveness", 2).await?;
    ensure!(
        restarts(&second) > restarts(&first),
        "the restart count stopped growing"
    );
    Ok(())
}

async fn a_succeeding_liveness_exec_probe_never_restarts(ctx: Ctx) -> Result<()> {
    let (client, ns) = setup(&ctx, "probe-exec-ok").await?;
    let pod = probe_pod(
        "liveness",
        BUSYBOX,
        serde_json::json!({
            "command": ["sh", "-c", "echo ok > /tmp/health; exec sleep 600"],
            "livenessProbe": {
                "exec": { "command": ["cat", "/tmp/health"] },
                "periodSeconds": 1, "failureThreshold": 1
            }
        }),
    )?;
    create(&client, &ns, &pod).await?;
    wait_for(&client, &ns, "liveness", RUNNING, "running", running).await?;
    steady(
        &client,
        &ns,
        "liveness",
        Duration::from_secs(12),
        Some(true),
    )
    .await?;
    let unhealthy = events(&client, &ns, "liveness")
        .await?
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Unhealthy"))
        .count();
    ensure!(unhealthy == 0, "{unhealthy} Unhealthy events");
    Ok(())
}

/// A test-server pod with `probe` as its liveness probe: healthy it runs on; flipped with
/// `query` it is restarted, and again after a second flip.
async fn liveness_flip(
    ctx: &Ctx,
    namespace: &str,
    probe: serde_json::Value,
    args: &[&str],
    query: &str,
) -> Result<()> {
    let (client, ns) = setup(ctx, namespace).await?;
    let mut probe = probe;
    if let Some(p) = probe.as_object_mut() {
        p.insert("periodSeconds".into(), 1.into());
        p.insert("failureThreshold".into(), 1.into());
    }
    let pod = probe_pod(
        "server",
        TEST_SERVER,
        serde_json::json!({ "args": args, "ports": server_ports(), "livenessProbe": probe }),
    )?;
    create(&client, &ns, &pod).await?;
    wait_for(&client, &ns, "server", RUNNING, "running", running).await?;
    // Healthy: several probes pass without a restart.
    steady(&client, &ns, "server", Duration::from_secs(4), None).await?;
    flip(&client, &ns, "server", query).await?;
    wait_restarts(&client, &ns, "server", 1).await?;
    event(
        &client,
        &ns,
        "server",
        "Unhealthy",
        "Liveness probe failed: ",
    )
    .await?;
    flip(&client, &ns, "server", query).await?;
    wait_restarts(&client, &ns, "server", 2).await?;
    Ok(())
}

async fn an_http_liveness_probe_restarts_when_health_flips(ctx: Ctx) -> Result<()> {
    liveness_flip(
        &ctx,
        "probe-http",
        serde_json::json!({ "httpGet": { "path": "/healthz", "port": "http" } }),
        &[],
        "status=fail",
    )
    .await
}

async fn a_tcp_liveness_probe_restarts_when_the_port_closes(ctx: Ctx) -> Result<()> {
    liveness_flip(
        &ctx,
        "probe-tcp",
        serde_json::json!({ "tcpSocket": { "port": 7070 } }),
        &[],
        "status=fail",
    )
    .await
}

async fn a_grpc_liveness_probe_restarts_when_the_service_stops_serving(ctx: Ctx) -> Result<()> {
    liveness_flip(
        &ctx,
        "probe-grpc",
        serde_json::json!({ "grpc": { "port": 9090, "service": "probed" } }),
        &["--grpc-service", "probed"],
        "service=probed&status=fail",
    )
    .await
}

async fn http_probes_send_headers_and_redirects_to_other_hosts_warn(ctx: Ctx) -> Result<()> {
    let (client, ns) = setup(&ctx, "probe-http-details").await?;
    let pod = probe_pod(
        "server",
        TEST_SERVER,
        serde_json::json!({
            "ports": server_ports(),
            // Fails with 400 unless the header arrives.
            "livenessProbe": {
                "httpGet": {
                    "path": "/header?name=X-Probe&value=yes", "port": 8080,
                    "httpHeaders": [{ "name": "X-Probe", "value": "yes" }]
                },
                "periodSeconds": 1, "failureThreshold": 1
            },
            // A redirect to another host is not followed: a success with a warning.
            "readinessProbe": {
                "httpGet": { "path": "/redirect?to=http://192.0.2.1/elsewhere", "port": "http" },
                "periodSeconds": 1
            }
        }),
    )?;
    create(&client, &ns, &pod).await?;
    wait_for(&client, &ns, "server", RUNNING, "ready", ready).await?;
    event(
        &client,
        &ns,
        "server",
        "ProbeWarning",
        "Readiness probe warning: Probe terminated redirects",
    )
    .await?;
    let pod = steady(&client, &ns, "server", Duration::from_secs(5), Some(true)).await?;
    let (_, requests) = http_get(&pod_ip(&pod)?, 8080, "/requests").await?;
    ensure!(
        requests.contains("GET /header?name=X-Probe&value=yes")
            && !requests.lines().any(|l| l.starts_with("GET /elsewhere")),
        "requests seen by the server: {requests}"
    );
    Ok(())
}

async fn readiness_waits_for_the_initial_delay_and_never_restarts(ctx: Ctx) -> Result<()> {
    const DELAY: i64 = 8;
    let (client, ns) = setup(&ctx, "probe-ready-delay").await?;
    let pod = probe_pod(
        "ready",
        BUSYBOX,
        serde_json::json!({
            "command": ["sleep", "600"],
            "readinessProbe": {
                "exec": { "command": ["true"] },
                "initialDelaySeconds": DELAY, "periodSeconds": 1
            }
        }),
    )?;
    create(&client, &ns, &pod).await?;
    let started = wait_for(&client, &ns, "ready", RUNNING, "running", running).await?;
    ensure!(!ready(&started), "ready right after the start");
    let pod = wait_for(&client, &ns, "ready", RUNNING, "ready", ready).await?;
    let main = container(&pod, "main").context("status")?;
    let started_at = main
        .state
        .as_ref()
        .and_then(|s| s.running.as_ref())
        .and_then(|r| r.started_at.clone())
        .context("startedAt")?
        .0;
    let ready_at = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.clone())
        .context("Ready lastTransitionTime")?
        .0;
    let waited = ready_at.duration_since(started_at).as_secs();
    // Second precision on both sides.
    ensure!(
        waited >= DELAY - 1,
        "Ready {waited}s after the start, before the {DELAY}s delay"
    );
    ensure!(waited < DELAY + 30, "Ready only {waited}s after the start");
    steady(&client, &ns, "ready", Duration::from_secs(3), Some(true)).await?;
    Ok(())
}

async fn a_failing_readiness_probe_keeps_the_pod_not_ready(ctx: Ctx) -> Result<()> {
    let (client, ns) = setup(&ctx, "probe-ready-fail").await?;
    let pod = probe_pod(
        "unready",
        BUSYBOX,
        serde_json::json!({
            "command": ["sleep", "600"],
            "readinessProbe": { "exec": { "command": ["false"] }, "periodSeconds": 1, "failureThreshold": 1 }
        }),
    )?;
    create(&client, &ns, &pod).await?;
    wait_for(&client, &ns, "unready", RUNNING, "running", running).await?;
    let pod = steady(
        &client,
        &ns,
        "unready",
        Duration::from_secs(10),
        Some(false),
    )
    .await?;
    ensure!(
        condition(&pod, "ContainersReady") == Some("False"),
        "ContainersReady: {:?}",
        pod.status.as_ref().map(|s| &s.conditions)
    );
    event(
        &client,
        &ns,
        "unready",
        "Unhealthy",
        "Readiness probe failed",
    )
    .await?;
    Ok(())
}

async fn a_startup_probe_holds_back_liveness(ctx: Ctx) -> Result<()> {
    const STARTUP: u64 = 8;
    let (client, ns) = setup(&ctx, "probe-startup").await?;
    let pod = probe_pod(
        "startup",
        BUSYBOX,
        serde_json::json!({
            "command": ["sh", "-c", format!("sleep {STARTUP}; touch /tmp/started; exec sleep 600")],
            "startupProbe": {
                "exec": { "command": ["cat", "/tmp/started"] },
                "periodSeconds": 1, "failureThreshold": 60
            },
            // Fails whenever it runs: only the startup probe keeps it from running early.
            "livenessProbe": { "exec": { "command": ["false"] }, "periodSeconds": 1, "failureThreshold": 1 }
        }),
    )?;
    create(&client, &ns, &pod).await?;
    let pod = wait_for(&client, &ns, "startup", RUNNING, "running", running).await?;
    let main = container(&pod, "main").context("status")?;
    ensure!(
        main.started == Some(false),
        "started before its startup probe: {main:?}"
    );
    // Once started, liveness runs (and fails): the first instance ran at least the startup
    // time.
    let pod = wait_restarts(&client, &ns, "startup", 1).await?;
    let last = container(&pod, "main")
        .and_then(|c| c.last_state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .context("last state")?;
    let ran = last
        .finished_at
        .as_ref()
        .context("finishedAt")?
        .0
        .duration_since(last.started_at.as_ref().context("startedAt")?.0)
        .as_secs();
    ensure!(
        ran >= i64::try_from(STARTUP)? - 1,
        "liveness killed it after {ran}s, during startup"
    );
    event(&client, &ns, "startup", "Killing", "failed liveness probe").await?;
    Ok(())
}

async fn a_failing_startup_probe_restarts_the_container(ctx: Ctx) -> Result<()> {
    let (client, ns) = setup(&ctx, "probe-startup-fail").await?;
    let pod = probe_pod(
        "startup",
        BUSYBOX,
        serde_json::json!({
            "command": ["sleep", "600"],
            "startupProbe": { "exec": { "command": ["false"] }, "periodSeconds": 1, "failureThreshold": 2 }
        }),
    )?;
    create(&client, &ns, &pod).await?;
    wait_restarts(&client, &ns, "startup", 1).await?;
    event(
        &client,
        &ns,
        "startup",
        "Killing",
        "Container main failed startup probe, will be restarted",
    )
    .await?;
    event(&client, &ns, "startup", "Unhealthy", "Startup probe failed").await?;
    Ok(())
}

async fn post_start_exec_writes_a_file_in_the_container(ctx: Ctx) -> Result<()> {
    let (client, ns) = setup(&ctx, "hook-poststart").await?;
    let pod = probe_pod(
        "hooked",
        BUSYBOX,
        serde_json::json!({
            "command": ["sleep", "600"],
            "lifecycle": { "postStart": { "exec": { "command": ["sh", "-c", "echo from-post-start > /tmp/hook"] } } }
        }),
    )?;
    create(&client, &ns, &pod).await?;
    let pod = wait_for(&client, &ns, "hooked", RUNNING, "running", running).await?;
    let id = container(&pod, "main")
        .and_then(|c| c.container_id.clone())
        .context("containerID")?;
    let id = id.split_once("://").map_or(id.as_str(), |(_, id)| id);
    let out = containerd()
        .await
        .exec_sync(
            id,
            &["cat".into(), "/tmp/hook".into()],
            Duration::from_secs(10),
        )
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.exit_code == 0 && text.trim() == "from-post-start",
        "cat /tmp/hook: {text:?}"
    );
    ensure!(restarts(&pod) == 0, "restarted");
    Ok(())
}

async fn a_failing_post_start_hook_kills_the_container(ctx: Ctx) -> Result<()> {
    let (client, ns) = setup(&ctx, "hook-poststart-fail").await?;
    let pod = probe_pod(
        "hooked",
        BUSYBOX,
        serde_json::json!({
            "command": ["sleep", "600"],
            "lifecycle": { "postStart": { "exec": { "command": ["sh", "-c", "echo nope; exit 3"] } } }
        }),
    )?;
    create(&client, &ns, &pod).await?;
    event(
        &client,
        &ns,
        "hooked",
        "FailedPostStartHook",
        "exited with 3",
    )
    .await?;
    wait_restarts(&client, &ns, "hooked", 1).await?;
    Ok(())
}

/// postStart httpGet, preStop exec (busybox `wget`) and preStop httpGet, all aimed at a
/// test-server pod whose request log must show them.
async fn hooks_reach_a_handler_pod(ctx: Ctx) -> Result<()> {
    let (client, ns) = setup(&ctx, "hook-handler").await?;
    let handler = probe_pod(
        "handler",
        TEST_SERVER,
        serde_json::json!({ "ports": server_ports() }),
    )?;
    create(&client, &ns, &handler).await?;
    let handler = wait_for(&client, &ns, "handler", RUNNING, "running", running).await?;
    let ip = pod_ip(&handler)?;
    let http_hooks = probe_pod(
        "http-hooks",
        BUSYBOX,
        serde_json::json!({
            "command": ["sleep", "600"],
            "lifecycle": {
                "postStart": { "httpGet": { "host": ip, "port": 8080, "path": "/echo?msg=post-start-http" } },
                "preStop": { "httpGet": { "host": ip, "port": 8080, "path": "/echo?msg=pre-stop-http" } }
            }
        }),
    )?;
    let exec_hook = probe_pod(
        "exec-hook",
        BUSYBOX,
        serde_json::json!({
            "command": ["sleep", "600"],
            "lifecycle": {
                "preStop": { "exec": { "command": ["wget", "-q", "-O-", format!("http://{ip}:8080/echo?msg=pre-stop-exec")] } }
            }
        }),
    )?;
    for pod in [&http_hooks, &exec_hook] {
        create(&client, &ns, pod).await?;
    }
    for name in ["http-hooks", "exec-hook"] {
        wait_for(&client, &ns, name, RUNNING, "running", running).await?;
    }
    let (_, requests) = http_get(&ip, 8080, "/requests").await?;
    ensure!(
        requests.contains("/echo?msg=post-start-http"),
        "no postStart request: {requests}"
    );
    ensure!(
        !requests.contains("pre-stop"),
        "preStop ran early: {requests}"
    );
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    for name in ["http-hooks", "exec-hook"] {
        api.delete(
            name,
            &DeleteParams {
                grace_period_seconds: Some(10),
                ..DeleteParams::default()
            },
        )
        .await?;
    }
    for name in ["http-hooks", "exec-hook"] {
        ferrolet_tests::pods::wait_gone(&client, &ns, name, Duration::from_secs(40)).await?;
    }
    let (_, requests) = http_get(&ip, 8080, "/requests").await?;
    for msg in ["pre-stop-http", "pre-stop-exec"] {
        ensure!(
            requests.contains(&format!("/echo?msg={msg}")),
            "no {msg} request: {requests}"
        );
    }
    Ok(())
}

/// A restarted agent takes over a probed pod without restarting it and without flipping its
/// readiness.
async fn probe_results_survive_an_agent_restart(ctx: Ctx) -> Result<()> {
    let (client, ns) = setup(&ctx, "probe-agent-restart").await?;
    let pod = probe_pod(
        "survivor",
        BUSYBOX,
        serde_json::json!({
            "command": ["sh", "-c", "sleep 3; echo ok > /tmp/ready; exec sleep 600"],
            "readinessProbe": { "exec": { "command": ["cat", "/tmp/ready"] }, "periodSeconds": 1, "failureThreshold": 1 },
            "livenessProbe": { "exec": { "command": ["true"] }, "periodSeconds": 1, "failureThreshold": 1 },
            "startupProbe": { "exec": { "command": ["true"] }, "periodSeconds": 1 }
        }),
    )?;
    create(&client, &ns, &pod).await?;
    wait_for(&client, &ns, "survivor", RUNNING, "ready", ready).await?;
    let before = container(
        &Api::<Pod>::namespaced(client.clone(), &ns)
            .get("survivor")
            .await?,
        "main",
    )
    .and_then(|c| c.container_id.clone());
    let watcher = {
        let client = client.clone();
        let ns = ns.clone();
        tokio::spawn(async move {
            steady(
                &client,
                &ns,
                "survivor",
                Duration::from_secs(15),
                Some(true),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    ctx.lock().await.crash_and_restart_agent().await?;
    let pod = watcher.await??;
    let after = container(&pod, "main").and_then(|c| c.container_id.clone());
    ensure!(
        before == after,
        "the container changed: {before:?} -> {after:?}"
    );
    Ok(())
}

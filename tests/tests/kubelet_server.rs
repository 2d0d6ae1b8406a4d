//! The kubelet server end to end: `ferrolet control-plane` plus one `ferrolet node` on
//! hack/containerd's containerd, driven with the real `kubectl` (logs, logs -f, --previous,
//! --tail, exec, exec -i, attach, port-forward through the API server's proxy) and with
//! `curl` straight at the kubelet's port (authentication, authorization, path traversal,
//! /metrics, /metrics/resource, /stats/summary). Log rotation runs with a small
//! containerLogMaxSize. Each case has its own namespace; all run at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use ferrolet_tests::case;
use ferrolet_tests::cluster::{ClusterOptions, TestCluster};
use ferrolet_tests::pods::{
    BUSYBOX, condition, container, create, phase, pod, shell_pod, wait_for,
};
use ferrolet_tests::suite::{self, Mode};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

type Ctx = Arc<TestCluster>;

const RUNNING: Duration = Duration::from_mins(1);
const ADMIN_TOKEN: &str = "kubelet-server-admin-token";
const NOBODY_TOKEN: &str = "kubelet-server-nobody-token";
/// The rotation settings of the node (small, so that the rotation case rotates quickly).
const LOG_MAX_SIZE: u64 = 4096;
const LOG_MAX_FILES: usize = 3;

fn main() -> ExitCode {
    let cases = vec![
        case!(kubectl_logs_with_tail_timestamps_and_limit_bytes),
        case!(kubectl_logs_follow_sees_new_lines),
        case!(kubectl_logs_previous_after_a_restart),
        case!(kubectl_exec_runs_commands_with_stdin_and_exit_codes),
        case!(kubectl_attach_streams_the_output),
        case!(kubectl_port_forward_reaches_httpd_in_the_pod),
        case!(the_kubelet_refuses_without_credentials_or_rights),
        case!(container_logs_refuse_path_traversal),
        case!(metrics_parse_as_prometheus_text_with_the_series),
        case!(stats_summary_has_cpu_and_memory_of_a_busy_pod),
        case!(logs_rotate_and_are_read_across_files),
    ];
    let Some(cases) = suite::select(cases) else {
        return ExitCode::SUCCESS;
    };
    let tokens =
        std::env::temp_dir().join(format!("ferrolet-ks-tokens-{}.csv", std::process::id()));
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let code = runtime.block_on(async {
        let cluster = match start(&tokens).await {
            Ok(cluster) => Arc::new(cluster),
            Err(err) => {
                println!("setting up the cluster failed: {err:#}");
                return ExitCode::FAILURE;
            }
        };
        let failures = suite::run(&cases, &cluster, Mode::Concurrent, Duration::from_mins(4)).await;
        let teardown = cluster
            .delete_all_pods(Duration::from_mins(2))
            .await
            .map_err(|e| format!("{e:#}"));
        suite::summary(cases.len(), &failures, &teardown)
    });
    let _ = std::fs::remove_file(&tokens);
    code
}

async fn start(tokens: &PathBuf) -> Result<TestCluster> {
    std::fs::write(
        tokens,
        format!("{ADMIN_TOKEN},kubelet-admin,u1,\"system:masters\"\n{NOBODY_TOKEN},nobody,u2\n"),
    )?;
    let mut options = ClusterOptions::new("kubelet-server");
    options.control_plane_args = vec!["--token-auth-file".into(), tokens.display().to_string()];
    options.kubelet_config = format!(
        "containerLogMaxSize: {LOG_MAX_SIZE}\ncontainerLogMaxFiles: {LOG_MAX_FILES}\n\
         containerLogMonitorInterval: 1s"
    );
    TestCluster::start(options).await
}

/// Runs `kubectl --kubeconfig <admin> -n <namespace> args...` to its end (within a minute).
async fn kubectl(ctx: &Ctx, namespace: &str, args: &[&str]) -> Result<std::process::Output> {
    kubectl_with_input(ctx, namespace, args, None).await
}

fn kubectl_command(ctx: &Ctx, namespace: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("kubectl");
    command
        .arg("--kubeconfig")
        .arg(&ctx.kubeconfig)
        .arg("-n")
        .arg(namespace)
        .args(args)
        .kill_on_drop(true);
    command
}

async fn kubectl_with_input(
    ctx: &Ctx,
    namespace: &str,
    args: &[&str],
    input: Option<&[u8]>,
) -> Result<std::process::Output> {
    let mut command = kubectl_command(ctx, namespace, args);
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .context("running kubectl (hack/install-deps installs it)")?;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().context("kubectl stdin")?;
        stdin.write_all(input).await?;
        drop(stdin);
    }
    tokio::time::timeout(Duration::from_mins(1), child.wait_with_output())
        .await
        .with_context(|| format!("kubectl {args:?} did not finish within a minute"))?
        .context("kubectl")
}

/// `kubectl ...` that must succeed; its stdout.
async fn kubectl_ok(ctx: &Ctx, namespace: &str, args: &[&str]) -> Result<String> {
    let output = kubectl(ctx, namespace, args).await?;
    ensure!(
        output.status.success(),
        "kubectl {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// A `curl` of the kubelet's HTTPS port: status code and body.
async fn curl_kubelet(ctx: &Ctx, path: &str, token: Option<&str>) -> Result<(u16, String)> {
    let url = format!("https://{}:10250{path}", ctx.node_ip);
    let mut command = tokio::process::Command::new("curl");
    command.args([
        "-sk",
        "--path-as-is",
        "--max-time",
        "20",
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(token) = token {
        command
            .arg("-H")
            .arg(format!("Authorization: Bearer {token}"));
    }
    let output = command.arg(&url).output().await.context("running curl")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text
        .rsplit_once('\n')
        .with_context(|| format!("curl {url}: {text:?}"))?;
    Ok((
        code.trim()
            .parse()
            .with_context(|| format!("curl {url}: {text:?}"))?,
        body.to_owned(),
    ))
}

async fn running_pod(
    ctx: &Ctx,
    namespace: &str,
    manifest: &k8s_openapi::api::core::v1::Pod,
) -> Result<()> {
    create(&ctx.client, namespace, manifest).await?;
    let name = manifest.metadata.name.as_deref().unwrap_or_default();
    wait_for(&ctx.client, namespace, name, RUNNING, "Running", |p| {
        phase(p) == "Running"
    })
    .await?;
    Ok(())
}

async fn kubectl_logs_with_tail_timestamps_and_limit_bytes(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("ks-logs").await?;
    // stdout and stderr are separate pipes: the pause keeps their order in the log.
    let script =
        "for i in 1 2 3 4 5; do echo line-$i; done; sleep 1; echo to-stderr >&2; sleep 3600";
    running_pod(&ctx, &ns, &shell_pod("printer", "Always", script)?).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let all = loop {
        let all = kubectl_ok(&ctx, &ns, &["logs", "printer"]).await?;
        if all.contains("to-stderr") || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    ensure!(
        all == "line-1\nline-2\nline-3\nline-4\nline-5\nto-stderr\n",
        "kubectl logs: {all:?}"
    );
    let tail = kubectl_ok(&ctx, &ns, &["logs", "printer", "--tail=2"]).await?;
    ensure!(tail == "line-5\nto-stderr\n", "--tail=2: {tail:?}");
    let stamped = kubectl_ok(&ctx, &ns, &["logs", "printer", "--timestamps", "--tail=1"]).await?;
    let (stamp, rest) = stamped.split_once(' ').context("a timestamp")?;
    ensure!(rest == "to-stderr\n", "--timestamps: {stamped:?}");
    stamp
        .parse::<jiff::Timestamp>()
        .with_context(|| format!("--timestamps prefix {stamp:?}"))?;
    let limited = kubectl_ok(&ctx, &ns, &["logs", "printer", "--limit-bytes=9"]).await?;
    ensure!(limited == "line-1\nli", "--limit-bytes=9: {limited:?}");
    let since = kubectl_ok(&ctx, &ns, &["logs", "printer", "--since=1h"]).await?;
    ensure!(since == all, "--since=1h: {since:?}");
    let missing = kubectl(&ctx, &ns, &["logs", "printer", "-c", "nope"]).await?;
    ensure!(
        !missing.status.success(),
        "logs of a container that does not exist"
    );
    Ok(())
}

async fn kubectl_logs_follow_sees_new_lines(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("ks-follow").await?;
    let script = "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.5; done";
    running_pod(&ctx, &ns, &shell_pod("ticker", "Always", script)?).await?;
    let mut child = kubectl_command(&ctx, &ns, &["logs", "-f", "ticker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    let mut seen = Vec::new();
    // Lines keep coming while kubectl follows: at least 4 more than the first one.
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            seen.push(line);
            if seen.len() >= 6 {
                break;
            }
        }
        anyhow::Ok(())
    })
    .await;
    let _ = child.kill().await;
    ensure!(read.is_ok(), "kubectl logs -f gave only {seen:?} in 30s");
    read.unwrap_or(Ok(()))?;
    let numbers: Vec<u32> = seen
        .iter()
        .map(|l| l.strip_prefix("tick-").and_then(|n| n.parse().ok()))
        .collect::<Option<_>>()
        .with_context(|| format!("unexpected lines {seen:?}"))?;
    ensure!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "followed lines are not consecutive: {seen:?}"
    );
    ensure!(
        started.elapsed() >= Duration::from_secs(1),
        "6 lines came at once: not followed"
    );
    Ok(())
}

async fn kubectl_logs_previous_after_a_restart(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("ks-previous").await?;
    let manifest = pod(serde_json::json!({
        "metadata": {"name": "restarter"},
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "state", "emptyDir": {}}],
            "containers": [{
                "name": "main", "image": BUSYBOX,
                "volumeMounts": [{"name": "state", "mountPath": "/state"}],
                "command": ["sh", "-c", "n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n; echo run-$n; if [ $n -ge 2 ]; then sleep 3600; fi; exit 1"]
            }]
        }
    }))?;
    create(&ctx.client, &ns, &manifest).await?;
    wait_for(
        &ctx.client,
        &ns,
        "restarter",
        Duration::from_mins(2),
        "restarted and running",
        |p| {
            container(p, "main").is_some_and(|c| {
                c.restart_count >= 1 && c.state.as_ref().is_some_and(|s| s.running.is_some())
            })
        },
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let current = kubectl_ok(&ctx, &ns, &["logs", "restarter"]).await?;
        let previous = kubectl_ok(&ctx, &ns, &["logs", "restarter", "--previous"]).await?;
        if current == "run-2\n" && previous == "run-1\n" {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("logs {current:?}, --previous {previous:?}; expected run-2 and run-1");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn kubectl_exec_runs_commands_with_stdin_and_exit_codes(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("ks-exec").await?;
    running_pod(&ctx, &ns, &shell_pod("sleeper", "Always", "sleep 3600")?).await?;
    // kubectl 1.31+ asks for WebSocket streams first; without, it speaks SPDY.
    for websockets in ["true", "false"] {
        let output = kubectl_command(
            &ctx,
            &ns,
            &["exec", "sleeper", "--", "cat", "/etc/hostname"],
        )
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets)
        .output()
        .await?;
        ensure!(
            output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "sleeper",
            "exec with KUBECTL_REMOTE_COMMAND_WEBSOCKETS={websockets}: {output:?}"
        );
    }
    // Straight at the kubelet: both upgrades reach the runtime's streaming server and come
    // back switched, with the protocol it chose.
    let path = format!("/exec/{ns}/sleeper/main?command=true&output=1");
    for (method, headers) in [
        (
            "GET",
            vec![
                "Connection: Upgrade",
                "Upgrade: websocket",
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Protocol: v4.channel.k8s.io",
            ],
        ),
        (
            "POST",
            vec![
                "Connection: Upgrade",
                "Upgrade: SPDY/3.1",
                "X-Stream-Protocol-Version: v4.channel.k8s.io",
            ],
        ),
    ] {
        let mut command = tokio::process::Command::new("curl");
        command.args(["-sk", "-i", "--http1.1", "--max-time", "5", "-X", method]);
        command
            .arg("-H")
            .arg(format!("Authorization: Bearer {ADMIN_TOKEN}"));
        for header in &headers {
            command.arg("-H").arg(header);
        }
        let output = command
            .arg(format!("https://{}:10250{path}", ctx.node_ip))
            .output()
            .await?;
        let head = String::from_utf8_lossy(&output.stdout).to_lowercase();
        ensure!(
            head.starts_with("http/1.1 101") && head.contains("v4.channel.k8s.io"),
            "{headers:?} upgrade of {method} /exec: {head:?}"
        );
    }
    let output = kubectl_with_input(
        &ctx,
        &ns,
        &[
            "exec",
            "-i",
            "sleeper",
            "--",
            "sh",
            "-c",
            "tr a-z A-Z; echo err >&2",
        ],
        Some(b"hello from stdin\n"),
    )
    .await?;
    ensure!(output.status.success(), "exec -i: {output:?}");
    ensure!(
        String::from_utf8_lossy(&output.stdout) == "HELLO FROM STDIN\n",
        "exec -i stdout: {output:?}"
    );
    ensure!(
        String::from_utf8_lossy(&output.stderr).contains("err"),
        "exec stderr: {output:?}"
    );
    let failing = kubectl(&ctx, &ns, &["exec", "sleeper", "--", "sh", "-c", "exit 3"]).await?;
    ensure!(
        failing.status.code() == Some(3),
        "exit code of the command: {failing:?}"
    );
    Ok(())
}

async fn kubectl_attach_streams_the_output(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("ks-attach").await?;
    let script = "i=0; while true; do i=$((i+1)); echo attached-$i; sleep 0.5; done";
    running_pod(&ctx, &ns, &shell_pod("talker", "Always", script)?).await?;
    let mut child = kubectl_command(&ctx, &ns, &["attach", "talker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match lines.next_line().await? {
                Some(line) if line.starts_with("attached-") => return anyhow::Ok(Some(line)),
                Some(_) => {}
                None => return anyhow::Ok(None),
            }
        }
    })
    .await;
    let _ = child.kill().await;
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = tokio::time::timeout(Duration::from_secs(2), err.read_to_string(&mut stderr)).await;
    }
    match first {
        Ok(Ok(Some(_))) => Ok(()),
        other => bail!("kubectl attach printed no output line ({other:?}); stderr: {stderr}"),
    }
}

async fn kubectl_port_forward_reaches_httpd_in_the_pod(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("ks-portforward").await?;
    let script = "mkdir -p /www && echo hello-port-forward > /www/index.html && exec httpd -f -p 8080 -h /www";
    running_pod(&ctx, &ns, &shell_pod("web", "Always", script)?).await?;
    // kubectl 1.31+ tunnels port-forward through a WebSocket first and falls back to SPDY
    // when the upgrade is refused; without, it speaks SPDY at once.
    for websockets in ["true", "false"] {
        port_forward_once(&ctx, &ns, websockets)
            .await
            .with_context(|| format!("KUBECTL_PORT_FORWARD_WEBSOCKETS={websockets}"))?;
    }
    Ok(())
}

async fn port_forward_once(ctx: &Ctx, ns: &str, websockets: &str) -> Result<()> {
    let mut child = kubectl_command(ctx, ns, &["port-forward", "pod/web", ":8080"])
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            // "Forwarding from 127.0.0.1:39123 -> 8080"
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:")
                && let Some((port, _)) = rest.split_once(' ')
            {
                return anyhow::Ok(port.parse::<u16>()?);
            }
        }
        bail!("kubectl port-forward ended")
    })
    .await;
    let result = async {
        let port = port.context("kubectl port-forward printed no local port within 30s")??;
        // Twice: each connection is its own stream through the kubelet.
        for _ in 0..2 {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            stream
                .write_all(b"GET /index.html HTTP/1.0\r\nHost: web\r\n\r\n")
                .await?;
            let mut answer = String::new();
            tokio::time::timeout(Duration::from_secs(20), stream.read_to_string(&mut answer))
                .await
                .context("the forwarded connection did not answer within 20s")??;
            ensure!(
                answer.starts_with("HTTP/1.") && answer.contains("hello-port-forward"),
                "through port-forward: {answer:?}"
            );
        }
        Ok(())
    }
    .await;
    let _ = child.kill().await;
    if result.is_err() {
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ =
                tokio::time::timeout(Duration::from_secs(2), err.read_to_string(&mut stderr)).await;
        }
        return result.with_context(|| format!("kubectl port-forward stderr: {stderr}"));
    }
    result
}

async fn the_kubelet_refuses_without_credentials_or_rights(ctx: Ctx) -> Result<()> {
    let (code, body) = curl_kubelet(&ctx, "/pods", None).await?;
    ensure!(code == 401, "no credentials: {code} {body:?}");
    let (code, body) = curl_kubelet(&ctx, "/pods", Some("not-a-token")).await?;
    ensure!(code == 401, "an unknown token: {code} {body:?}");
    let (code, body) = curl_kubelet(&ctx, "/pods", Some(NOBODY_TOKEN)).await?;
    ensure!(code == 403, "an identity without rights: {code} {body:?}");
    ensure!(body.contains("nobody"), "the 403 names the user: {body:?}");
    let (code, body) = curl_kubelet(&ctx, "/pods", Some(ADMIN_TOKEN)).await?;
    ensure!(code == 200, "the admin: {code} {body:?}");
    let list: serde_json::Value = serde_json::from_str(&body)?;
    ensure!(list["kind"] == "PodList", "/pods: {body}");
    let (code, body) = curl_kubelet(&ctx, "/healthz", Some(ADMIN_TOKEN)).await?;
    ensure!(code == 200 && body == "ok", "/healthz: {code} {body:?}");
    // The read-only healthz listens on the node's loopback only.
    let netns = ferrolet_tests::required_env("FERROLET_NETNS");
    let output = tokio::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &netns,
            "curl",
            "-s",
            "--max-time",
            "10",
            "http://127.0.0.1:10248/healthz",
        ])
        .output()
        .await?;
    ensure!(
        String::from_utf8_lossy(&output.stdout) == "ok",
        "read-only healthz: {output:?}"
    );
    // The Node publishes the real port.
    let node = Api::<Node>::all(ctx.client.clone())
        .get(&ctx.node_name)
        .await?;
    let port = node
        .status
        .and_then(|s| s.daemon_endpoints)
        .and_then(|d| d.kubelet_endpoint)
        .map(|e| e.port);
    ensure!(
        port == Some(10250),
        "daemonEndpoints.kubeletEndpoint.Port: {port:?}"
    );
    Ok(())
}

async fn container_logs_refuse_path_traversal(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("ks-traversal").await?;
    running_pod(
        &ctx,
        &ns,
        &shell_pod("victim", "Always", "echo innocent; sleep 3600")?,
    )
    .await?;
    let (code, body) = curl_kubelet(
        &ctx,
        &format!("/containerLogs/{ns}/victim/main"),
        Some(ADMIN_TOKEN),
    )
    .await?;
    ensure!(code == 200, "the log itself: {code} {body:?}");
    for path in [
        "/containerLogs/../../../../etc/passwd".to_owned(),
        format!("/containerLogs/{ns}/victim/../../../../../etc/passwd"),
        format!("/containerLogs/{ns}/..%2F..%2F..%2Fetc/passwd"),
        format!("/containerLogs/{ns}/victim/..%2F..%2F..%2F..%2Fetc%2Fpasswd"),
        "/containerLogs/%2e%2e/%2e%2e/passwd".to_owned(),
        format!("/containerLogs/{ns}/victim/.."),
        format!("/containerLogs/{ns}/victim/main/../../../../etc/passwd"),
        "/containerLogs/..%2F..%2F..%2Fetc/victim/main".to_owned(),
    ] {
        let (code, body) = curl_kubelet(&ctx, &path, Some(ADMIN_TOKEN)).await?;
        ensure!(code == 400 || code == 404, "{path}: {code} {body:?}");
        ensure!(!body.contains("root:"), "{path} read /etc/passwd: {body:?}");
        ensure!(!body.contains("innocent"), "{path} read a log: {body:?}");
    }
    Ok(())
}

/// One sample of Prometheus text: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (0.0.4): `# HELP`/`# TYPE` lines, and samples
/// `name{label="value",...} value [timestamp]`; fails on anything else.
fn parse_prometheus(text: &str) -> Result<(BTreeMap<String, String>, Vec<Sample>)> {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    let is_name = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for (number, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", number + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    ensure!(is_name(name), "{}", at());
                    ensure!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{}",
                        at()
                    );
                    types.insert(name.to_owned(), kind.to_owned());
                }
                (Some("HELP"), Some(name), _) => ensure!(is_name(name), "{}", at()),
                _ => {}
            }
            continue;
        }
        let (series, rest) = match line.find('{') {
            Some(_) => {
                let close = line.rfind('}').with_context(at)?;
                (&line[..=close], line[close + 1..].trim())
            }
            None => line
                .split_once(' ')
                .map(|(s, r)| (s, r.trim()))
                .with_context(at)?,
        };
        let (name, labels_text) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.strip_suffix('}').with_context(at)?),
            None => (series, ""),
        };
        ensure!(is_name(name), "{}", at());
        let mut labels = BTreeMap::new();
        let mut rest_labels = labels_text;
        while !rest_labels.is_empty() {
            let (label, after) = rest_labels.split_once("=\"").with_context(at)?;
            ensure!(is_name(label), "{}", at());
            // The value ends at the first unescaped quote.
            let mut value = String::new();
            let mut chars = after.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, escaped)) => value.push(escaped),
                        None => bail!("{}", at()),
                    },
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.with_context(at)?;
            labels.insert(label.to_owned(), value);
            rest_labels = after[end + 1..]
                .strip_prefix(',')
                .unwrap_or(&after[end + 1..]);
        }
        let mut parts = rest.split_whitespace();
        let value_text = parts.next().with_context(at)?;
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().with_context(at)?,
        };
        if let Some(timestamp) = parts.next() {
            timestamp.parse::<i64>().with_context(at)?;
        }
        ensure!(parts.next().is_none(), "{}", at());
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok((types, samples))
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

async fn metrics_parse_as_prometheus_text_with_the_series(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("ks-metrics").await?;
    let manifest = pod(serde_json::json!({
        "metadata": {"name": "counted"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": BUSYBOX, "command": ["sleep", "3600"],
                "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}
            }]
        }
    }))?;
    create(&ctx.client, &ns, &manifest).await?;
    wait_for(&ctx.client, &ns, "counted", RUNNING, "Ready", |p| {
        condition(p, "Ready") == Some("True")
    })
    .await?;
    let (code, text) = curl_kubelet(&ctx, "/metrics", Some(ADMIN_TOKEN)).await?;
    ensure!(code == 200, "/metrics: {code} {text:?}");
    let (types, samples) = parse_prometheus(&text)?;
    for (name, kind) in [
        ("kubelet_pod_start_duration_seconds", "histogram"),
        ("kubelet_pleg_relist_duration_seconds", "histogram"),
        ("kubelet_runtime_operations_total", "counter"),
        ("kubelet_runtime_operations_errors_total", "counter"),
        ("kubelet_runtime_operations_duration_seconds", "histogram"),
        ("kubelet_running_pods", "gauge"),
        ("kubelet_running_containers", "gauge"),
        ("prober_probe_total", "counter"),
    ] {
        ensure!(
            types.get(name).map(String::as_str) == Some(kind),
            "{name} is not declared a {kind}: {:?}",
            types.get(name)
        );
    }
    let started = find(&samples, "kubelet_pod_start_duration_seconds_count", &[])
        .context("kubelet_pod_start_duration_seconds_count")?;
    ensure!(
        started.value >= 1.0,
        "pod starts observed: {}",
        started.value
    );
    let inf = find(
        &samples,
        "kubelet_pod_start_duration_seconds_bucket",
        &[("le", "+Inf")],
    )
    .context("the +Inf bucket")?;
    ensure!(
        (inf.value - started.value).abs() < f64::EPSILON,
        "+Inf bucket != count"
    );
    let relists = find(&samples, "kubelet_pleg_relist_duration_seconds_count", &[])
        .context("relist count")?;
    ensure!(relists.value >= 1.0, "relists: {}", relists.value);
    let ops = find(
        &samples,
        "kubelet_runtime_operations_total",
        &[("operation_type", "list_containers")],
    )
    .context("list_containers operations")?;
    ensure!(ops.value >= 1.0, "list_containers: {}", ops.value);
    find(
        &samples,
        "kubelet_runtime_operations_duration_seconds_bucket",
        &[("operation_type", "run_podsandbox"), ("le", "+Inf")],
    )
    .context("run_podsandbox latency")?;
    let probes = find(
        &samples,
        "prober_probe_total",
        &[
            ("probe_type", "Readiness"),
            ("result", "successful"),
            ("namespace", &ns),
            ("pod", "counted"),
            ("container", "main"),
        ],
    )
    .context("the readiness probe's results")?;
    ensure!(probes.value >= 1.0, "probe results: {}", probes.value);
    let pods = find(&samples, "kubelet_running_pods", &[]).context("kubelet_running_pods")?;
    ensure!(pods.value >= 1.0, "running pods: {}", pods.value);
    let containers = find(
        &samples,
        "kubelet_running_containers",
        &[("container_state", "running")],
    )
    .context("running containers")?;
    ensure!(
        containers.value >= 1.0,
        "running containers: {}",
        containers.value
    );

    let (code, text) = curl_kubelet(&ctx, "/metrics/resource", Some(ADMIN_TOKEN)).await?;
    ensure!(code == 200, "/metrics/resource: {code} {text:?}");
    let (_, samples) = parse_prometheus(&text)?;
    find(&samples, "node_cpu_usage_seconds_total", &[]).context("node cpu")?;
    find(&samples, "node_memory_working_set_bytes", &[]).context("node memory")?;
    find(
        &samples,
        "container_memory_working_set_bytes",
        &[
            ("namespace", &ns),
            ("pod", "counted"),
            ("container", "main"),
        ],
    )
    .context("the pod's container memory")?;
    find(
        &samples,
        "pod_cpu_usage_seconds_total",
        &[("namespace", &ns), ("pod", "counted")],
    )
    .context("the pod's cpu")?;
    // A malformed text is refused by the parser (it would not be proving anything otherwise).
    ensure!(parse_prometheus("metric{a=\"b} 1").is_err());
    ensure!(parse_prometheus("metric one").is_err());
    Ok(())
}

async fn stats_summary_has_cpu_and_memory_of_a_busy_pod(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("ks-stats").await?;
    running_pod(
        &ctx,
        &ns,
        &shell_pod("busy", "Always", "while :; do :; done")?,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (code, body) = curl_kubelet(&ctx, "/stats/summary", Some(ADMIN_TOKEN)).await?;
        ensure!(code == 200, "/stats/summary: {code} {body:?}");
        let summary: serde_json::Value = serde_json::from_str(&body)?;
        let pod = summary["pods"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["podRef"]["namespace"] == ns.as_str() && p["podRef"]["name"] == "busy");
        let positive = |v: &serde_json::Value| v.as_u64().is_some_and(|n| n > 0);
        let good = pod.is_some_and(|pod| {
            let container = &pod["containers"][0];
            positive(&pod["cpu"]["usageNanoCores"])
                && positive(&pod["cpu"]["usageCoreNanoSeconds"])
                && positive(&pod["memory"]["workingSetBytes"])
                && container["name"] == "main"
                && positive(&container["cpu"]["usageNanoCores"])
                && positive(&container["memory"]["workingSetBytes"])
        }) && summary["node"]["nodeName"] == ctx.node_name.as_str()
            && positive(&summary["node"]["cpu"]["usageCoreNanoSeconds"])
            && positive(&summary["node"]["memory"]["workingSetBytes"]);
        if good {
            // A busy loop uses a visible part of a core, even on a loaded machine.
            let cores = pod
                .and_then(|p| p["cpu"]["usageNanoCores"].as_u64())
                .unwrap_or_default();
            ensure!(cores > 10_000_000, "a busy pod uses {cores} nanocores");
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "no CPU and memory for the busy pod in /stats/summary: {pod:?} node {}",
                summary["node"]
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn logs_rotate_and_are_read_across_files(ctx: Ctx) -> Result<()> {
    let ns = ctx.namespace("ks-rotation").await?;
    // About 2.5 KiB of log per burst (with the CRI prefix), a burst every 1.5 s, then quiet:
    // the 4 KiB limit is crossed several times.
    let script = "i=0; for b in 1 2 3 4 5 6 7 8; do for l in $(seq 1 40); do i=$((i+1)); \
                  echo rotated-line-$i; done; sleep 1.5; done; echo done-writing; sleep 3600";
    running_pod(&ctx, &ns, &shell_pod("chatty", "Always", script)?).await?;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let uid = pods.get("chatty").await?.metadata.uid.unwrap_or_default();
    let dir = PathBuf::from(format!("/var/log/pods/{ns}_chatty_{uid}/main"));
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let logs = kubectl_ok(&ctx, &ns, &["logs", "chatty"]).await?;
        if logs.ends_with("done-writing\n") {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the pod did not finish writing: {logs:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // One more monitor interval, so that the last rotation has happened.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let files: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let rotated = files.iter().filter(|f| f.starts_with("0.log.")).count();
    ensure!(
        rotated >= 1,
        "no rotated files in {}: {files:?}",
        dir.display()
    );
    ensure!(
        files.len() <= LOG_MAX_FILES,
        "more than {LOG_MAX_FILES} files: {files:?}"
    );
    for file in &files {
        let size = std::fs::metadata(dir.join(file))?.len();
        // A file is rotated once it reaches the limit: at most one burst more.
        ensure!(size < LOG_MAX_SIZE + 4096, "{file} has {size} bytes");
    }
    let current = std::fs::read_to_string(dir.join("0.log"))?;
    let logs = kubectl_ok(&ctx, &ns, &["logs", "chatty"]).await?;
    let lines: Vec<&str> = logs.lines().collect();
    ensure!(lines.last() == Some(&"done-writing"), "{logs:?}");
    let numbers: Vec<u32> = lines[..lines.len() - 1]
        .iter()
        .map(|l| l.strip_prefix("rotated-line-").and_then(|n| n.parse().ok()))
        .collect::<Option<_>>()
        .with_context(|| format!("unexpected lines: {logs:?}"))?;
    ensure!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1) && numbers.last() == Some(&320),
        "kubectl logs across rotated files is not one run of lines ending at 320: {numbers:?}"
    );
    let in_current = current.lines().count();
    ensure!(
        lines.len() > in_current,
        "kubectl logs gave {} lines, no more than the current file's {in_current}: not read across files",
        lines.len()
    );
    // The oldest lines were removed with the oldest files.
    ensure!(
        numbers[0] > 1,
        "nothing was removed: {} lines kept",
        numbers.len()
    );
    let tail = kubectl_ok(&ctx, &ns, &["logs", "chatty", "--tail=3"]).await?;
    ensure!(
        tail == "rotated-line-319\nrotated-line-320\ndone-writing\n",
        "--tail=3: {tail:?}"
    );
    Ok(())
}

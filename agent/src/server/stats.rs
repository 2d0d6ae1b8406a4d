//! CPU and memory of the node, its pods and their containers: `/stats/summary` (the kubelet's
//! `stats/v1alpha1` Summary) and `/metrics/resource` (Prometheus text, the series the
//! metrics-server scrapes). Pods and containers come from CRI `ListContainerStats` and
//! `ListPodSandboxStats` (summed from the containers where the runtime lacks it), the node
//! from `/proc`. A CPU rate the runtime does not give is computed from two samples.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use ferrolet_cri::{RuntimeService, api};
use http::{Response, StatusCode, header};
use serde_json::{Value, json};

use super::ServerContext;
use crate::kuberuntime::labels::POD_UID_LABEL;

/// One CPU and memory sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Nanoseconds since the epoch.
    pub time: i64,
    pub usage_core_nano_seconds: Option<u64>,
    pub usage_nano_cores: Option<u64>,
    pub working_set_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub page_faults: Option<u64>,
    pub major_page_faults: Option<u64>,
}

fn value(v: Option<&api::UInt64Value>) -> Option<u64> {
    v.map(|v| v.value)
}

impl Usage {
    fn from_cri(cpu: Option<&api::CpuUsage>, memory: Option<&api::MemoryUsage>) -> Self {
        Usage {
            time: cpu.map_or(0, |c| c.timestamp),
            usage_core_nano_seconds: cpu.and_then(|c| value(c.usage_core_nano_seconds.as_ref())),
            usage_nano_cores: cpu.and_then(|c| value(c.usage_nano_cores.as_ref())),
            working_set_bytes: memory.and_then(|m| value(m.working_set_bytes.as_ref())),
            usage_bytes: memory.and_then(|m| value(m.usage_bytes.as_ref())),
            available_bytes: memory.and_then(|m| value(m.available_bytes.as_ref())),
            rss_bytes: memory.and_then(|m| value(m.rss_bytes.as_ref())),
            page_faults: memory.and_then(|m| value(m.page_faults.as_ref())),
            major_page_faults: memory.and_then(|m| value(m.major_page_faults.as_ref())),
        }
    }

    fn add(&mut self, other: &Usage) {
        fn sum(a: &mut Option<u64>, b: Option<u64>) {
            if let Some(b) = b {
                *a = Some(a.unwrap_or_default() + b);
            }
        }
        self.time = self.time.max(other.time);
        sum(
            &mut self.usage_core_nano_seconds,
            other.usage_core_nano_seconds,
        );
        sum(&mut self.usage_nano_cores, other.usage_nano_cores);
        sum(&mut self.working_set_bytes, other.working_set_bytes);
        sum(&mut self.usage_bytes, other.usage_bytes);
        sum(&mut self.rss_bytes, other.rss_bytes);
        sum(&mut self.page_faults, other.page_faults);
        sum(&mut self.major_page_faults, other.major_page_faults);
    }

    fn time_rfc3339(&self) -> String {
        jiff::Timestamp::from_nanosecond(i128::from(self.time))
            .unwrap_or_else(|_| jiff::Timestamp::now())
            .to_string()
    }

    fn cpu_json(&self) -> Value {
        json!({
            "time": self.time_rfc3339(),
            "usageNanoCores": self.usage_nano_cores,
            "usageCoreNanoSeconds": self.usage_core_nano_seconds,
        })
    }

    fn memory_json(&self) -> Value {
        json!({
            "time": self.time_rfc3339(),
            "availableBytes": self.available_bytes,
            "usageBytes": self.usage_bytes,
            "workingSetBytes": self.working_set_bytes,
            "rssBytes": self.rss_bytes,
            "pageFaults": self.page_faults,
            "majorPageFaults": self.major_page_faults,
        })
    }
}

/// One container's stats.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerUsage {
    pub name: String,
    /// Nanoseconds since the epoch.
    pub start_time: i64,
    pub usage: Usage,
}

/// One pod's stats.
#[derive(Debug, Clone, PartialEq)]
pub struct PodUsage {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub start_time: i64,
    pub usage: Usage,
    pub containers: Vec<ContainerUsage>,
}

/// Everything at one instant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub node: Usage,
    pub node_start_time: i64,
    pub pods: Vec<PodUsage>,
}

/// Reads `/proc` for the node: CPU time of all CPUs (not idle, not iowait) and memory.
fn node_usage() -> (Usage, i64) {
    let now = jiff::Timestamp::now();
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let (cpu, boot) = parse_proc_stat(&stat);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| -> Option<u64> {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    let (total, available, free) = (field("MemTotal"), field("MemAvailable"), field("MemFree"));
    let usage = Usage {
        time: i64::try_from(now.as_nanosecond()).unwrap_or_default(),
        usage_core_nano_seconds: cpu,
        usage_nano_cores: None,
        working_set_bytes: total.zip(available).map(|(t, a)| t.saturating_sub(a)),
        usage_bytes: total.zip(free).map(|(t, f)| t.saturating_sub(f)),
        available_bytes: available,
        rss_bytes: None,
        page_faults: None,
        major_page_faults: None,
    };
    (usage, boot.unwrap_or_default() * 1_000_000_000)
}

/// The busy CPU time (ns; `USER_HZ` is 100 on Linux) and boot time (s) of `/proc/stat`.
fn parse_proc_stat(text: &str) -> (Option<u64>, Option<i64>) {
    let cpu = text
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .map(|rest| {
            let ticks: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal: all but idle and iowait.
            let busy: u64 = ticks
                .iter()
                .take(8)
                .enumerate()
                .filter(|(i, _)| *i != 3 && *i != 4)
                .map(|(_, t)| t)
                .sum();
            busy * 10_000_000
        });
    let boot = text
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok());
    (cpu, boot)
}

/// Collects stats from the runtime and `/proc`.
pub struct StatsProvider {
    runtime: Arc<dyn RuntimeService>,
    /// The previous CPU sample per object (`time`, `usage_core_nano_seconds`).
    samples: Mutex<HashMap<String, (i64, u64)>>,
}

impl std::fmt::Debug for StatsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsProvider").finish_non_exhaustive()
    }
}

impl StatsProvider {
    #[must_use]
    pub fn new(runtime: Arc<dyn RuntimeService>, _node_name: &str) -> Self {
        StatsProvider {
            runtime,
            samples: Mutex::new(HashMap::new()),
        }
    }

    /// Fills in `usage_nano_cores` from the previous sample of `key` when missing.
    fn rate(&self, key: &str, usage: &mut Usage) {
        let Some(total) = usage.usage_core_nano_seconds else {
            return;
        };
        let mut samples = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if usage.usage_nano_cores.is_none_or(|n| n == 0)
            && let Some((time, before)) = samples.get(key)
            && usage.time > *time
            && total >= *before
        {
            let elapsed = u128::try_from(usage.time - time).unwrap_or(1);
            let cores = u128::from(total - before) * 1_000_000_000 / elapsed;
            usage.usage_nano_cores = Some(u64::try_from(cores).unwrap_or(u64::MAX));
        }
        samples.insert(key.to_owned(), (usage.time, total));
    }

    /// The current stats of the node and of every ready pod.
    pub async fn snapshot(&self) -> Snapshot {
        let (mut node, node_start_time) = node_usage();
        self.rate("node", &mut node);
        let ready = api::PodSandboxFilter {
            state: Some(api::PodSandboxStateValue {
                state: api::PodSandboxState::SandboxReady as i32,
            }),
            ..api::PodSandboxFilter::default()
        };
        let sandboxes = self
            .runtime
            .list_pod_sandbox(Some(ready))
            .await
            .unwrap_or_default();
        let running = api::ContainerFilter {
            state: Some(api::ContainerStateValue {
                state: api::ContainerState::ContainerRunning as i32,
            }),
            ..api::ContainerFilter::default()
        };
        let containers = self
            .runtime
            .list_containers(Some(running))
            .await
            .unwrap_or_default();
        let stats: HashMap<String, api::ContainerStats> = self
            .runtime
            .list_container_stats(None)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| Some((s.attributes.as_ref()?.id.clone(), s)))
            .collect();
        let sandbox_stats: HashMap<String, api::LinuxPodSandboxStats> = self
            .runtime
            .list_pod_sandbox_stats(None)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| Some((s.attributes.as_ref()?.id.clone(), s.linux?)))
            .collect();
        let mut pods = Vec::new();
        for sandbox in sandboxes {
            let meta = sandbox.metadata.clone().unwrap_or_default();
            let mut pod = PodUsage {
                name: meta.name,
                namespace: meta.namespace,
                uid: sandbox
                    .labels
                    .get(POD_UID_LABEL)
                    .cloned()
                    .unwrap_or(meta.uid),
                start_time: sandbox.created_at,
                usage: Usage::default(),
                containers: Vec::new(),
            };
            for container in containers.iter().filter(|c| c.pod_sandbox_id == sandbox.id) {
                let Some(stat) = stats.get(&container.id) else {
                    continue;
                };
                let mut usage = Usage::from_cri(stat.cpu.as_ref(), stat.memory.as_ref());
                self.rate(&container.id, &mut usage);
                pod.containers.push(ContainerUsage {
                    name: container
                        .metadata
                        .as_ref()
                        .map(|m| m.name.clone())
                        .unwrap_or_default(),
                    start_time: container.created_at,
                    usage,
                });
            }
            pod.containers.sort_by(|a, b| a.name.cmp(&b.name));
            pod.usage = match sandbox_stats.get(&sandbox.id) {
                Some(linux) if linux.cpu.is_some() || linux.memory.is_some() => {
                    Usage::from_cri(linux.cpu.as_ref(), linux.memory.as_ref())
                }
                _ => {
                    let mut sum = Usage::default();
                    for c in &pod.containers {
                        sum.add(&c.usage);
                    }
                    sum.usage_nano_cores = None;
                    sum
                }
            };
            self.rate(&format!("pod/{}", sandbox.id), &mut pod.usage);
            pods.push(pod);
        }
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Snapshot {
            node,
            node_start_time,
            pods,
        }
    }

    /// `/stats/summary`.
    pub async fn summary(&self, context: &ServerContext) -> Value {
        let snapshot = self.snapshot().await;
        summary_json(&snapshot, &context.node_name)
    }

    /// `/metrics/resource`.
    pub async fn resource_metrics(&self, _context: &ServerContext) -> Response<Body> {
        let snapshot = self.snapshot().await;
        let mut response = Response::new(Body::from(resource_metrics_text(&snapshot)));
        *response.status_mut() = StatusCode::OK;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }

    /// Sets `kubelet_running_pods` and `kubelet_running_containers` from the runtime.
    pub async fn count_running(&self, _context: &ServerContext) {
        let metrics = crate::metrics::kubelet_metrics();
        if let Ok(sandboxes) = self.runtime.list_pod_sandbox(None).await {
            let ready = sandboxes
                .iter()
                .filter(|s| s.state == api::PodSandboxState::SandboxReady as i32)
                .count();
            metrics.running_pods.set(&[], count(ready));
        }
        if let Ok(containers) = self.runtime.list_containers(None).await {
            let mut states: BTreeMap<&str, usize> = [
                ("created", 0),
                ("running", 0),
                ("exited", 0),
                ("unknown", 0),
            ]
            .into();
            for c in &containers {
                let state = match api::ContainerState::try_from(c.state) {
                    Ok(api::ContainerState::ContainerCreated) => "created",
                    Ok(api::ContainerState::ContainerRunning) => "running",
                    Ok(api::ContainerState::ContainerExited) => "exited",
                    _ => "unknown",
                };
                *states.entry(state).or_default() += 1;
            }
            for (state, n) in states {
                metrics.running_containers.set(&[state], count(n));
            }
        }
    }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "counts of pods and containers are small"
)]
fn count(n: usize) -> f64 {
    n as f64
}

fn rfc3339(nanos: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(nanos))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// The kubelet's Summary (`stats/v1alpha1`), CPU and memory only.
#[must_use]
pub fn summary_json(snapshot: &Snapshot, node_name: &str) -> Value {
    let pods: Vec<Value> = snapshot
        .pods
        .iter()
        .map(|pod| {
            let containers: Vec<Value> = pod
                .containers
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name,
                        "startTime": rfc3339(c.start_time),
                        "cpu": c.usage.cpu_json(),
                        "memory": c.usage.memory_json(),
                    })
                })
                .collect();
            json!({
                "podRef": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
                "startTime": rfc3339(pod.start_time),
                "containers": containers,
                "cpu": pod.usage.cpu_json(),
                "memory": pod.usage.memory_json(),
            })
        })
        .collect();
    json!({
        "node": {
            "nodeName": node_name,
            "startTime": rfc3339(snapshot.node_start_time),
            "cpu": snapshot.node.cpu_json(),
            "memory": snapshot.node.memory_json(),
        },
        "pods": pods,
    })
}

#[allow(clippy::cast_precision_loss, reason = "Prometheus values are floats")]
fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// The `/metrics/resource` text: node, pod and container CPU (cumulative seconds) and
/// working set, with the sample time in milliseconds, as the kubelet writes them.
#[must_use]
pub fn resource_metrics_text(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let ms = |nanos: i64| nanos / 1_000_000;
    let mut family = |name: &str, help: &str, kind: &str, lines: Vec<String>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for line in lines {
            let _ = writeln!(out, "{name}{line}");
        }
    };
    let node = &snapshot.node;
    let pod_labels = |p: &PodUsage| format!("namespace=\"{}\",pod=\"{}\"", p.namespace, p.name);
    let container_lines = |f: &dyn Fn(&ContainerUsage) -> Option<String>| -> Vec<String> {
        snapshot
            .pods
            .iter()
            .flat_map(|p| {
                p.containers.iter().filter_map(move |c| {
                    f(c).map(|v| format!("{{container=\"{}\",{}}} {v}", c.name, pod_labels(p)))
                })
            })
            .collect()
    };
    family(
        "container_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        "counter",
        container_lines(&|c| {
            c.usage
                .usage_core_nano_seconds
                .map(|n| format!("{} {}", seconds(n), ms(c.usage.time)))
        }),
    );
    family(
        "container_memory_working_set_bytes",
        "[STABLE] Current working set of the container in bytes",
        "gauge",
        container_lines(&|c| {
            c.usage
                .working_set_bytes
                .map(|n| format!("{n} {}", ms(c.usage.time)))
        }),
    );
    family(
        "container_start_time_seconds",
        "[STABLE] Start time of the container since unix epoch in seconds",
        "gauge",
        container_lines(&|c| {
            Some(format!(
                "{} {}",
                seconds(c.start_time.unsigned_abs()),
                ms(c.usage.time)
            ))
        }),
    );
    let node_lines = |v: Option<String>| v.map(|v| format!(" {v} {}", ms(node.time)));
    family(
        "node_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
        "counter",
        node_lines(node.usage_core_nano_seconds.map(|n| seconds(n).to_string()))
            .into_iter()
            .collect(),
    );
    family(
        "node_memory_working_set_bytes",
        "[STABLE] Current working set of the node in bytes",
        "gauge",
        node_lines(node.working_set_bytes.map(|n| n.to_string()))
            .into_iter()
            .collect(),
    );
    let pod_lines = |f: &dyn Fn(&Usage) -> Option<String>| -> Vec<String> {
        snapshot
            .pods
            .iter()
            .filter_map(|p| {
                f(&p.usage).map(|v| format!("{{{}}} {v} {}", pod_labels(p), ms(p.usage.time)))
            })
            .collect()
    };
    family(
        "pod_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
        "counter",
        pod_lines(&|u| u.usage_core_nano_seconds.map(|n| seconds(n).to_string())),
    );
    family(
        "pod_memory_working_set_bytes",
        "[STABLE] Current working set of the pod in bytes",
        "gauge",
        pod_lines(&|u| u.working_set_bytes.map(|n| n.to_string())),
    );
    family(
        "scrape_error",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
        vec![" 0".to_owned()],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_busy_time_and_boot() {
        let (cpu, boot) =
            parse_proc_stat("cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 1 2 3 4\nbtime 1700000000\n");
        assert_eq!(cpu, Some(161 * 10_000_000));
        assert_eq!(boot, Some(1_700_000_000));
    }

    #[test]
    fn cpu_rate_comes_from_two_samples() {
        let provider = StatsProvider::new(Arc::new(ferrolet_cri::fake::FakeRuntime::new()), "n");
        let mut first = Usage {
            time: 1_000_000_000,
            usage_core_nano_seconds: Some(0),
            ..Usage::default()
        };
        provider.rate("c", &mut first);
        assert_eq!(first.usage_nano_cores, None);
        let mut second = Usage {
            time: 3_000_000_000,
            usage_core_nano_seconds: Some(1_000_000_000),
            ..Usage::default()
        };
        provider.rate("c", &mut second);
        // One CPU-second over two seconds: half a core.
        assert_eq!(second.usage_nano_cores, Some(500_000_000));
    }

    #[test]
    fn summary_and_resource_metrics_formats() {
        let usage = Usage {
            time: 2_000_000_000,
            usage_core_nano_seconds: Some(1_500_000_000),
            usage_nano_cores: Some(10),
            working_set_bytes: Some(4096),
            ..Usage::default()
        };
        let snapshot = Snapshot {
            node: usage,
            node_start_time: 0,
            pods: vec![PodUsage {
                name: "p".into(),
                namespace: "ns".into(),
                uid: "u".into(),
                start_time: 1_000_000_000,
                usage,
                containers: vec![ContainerUsage {
                    name: "c".into(),
                    start_time: 1_000_000_000,
                    usage,
                }],
            }],
        };
        let summary = summary_json(&snapshot, "node-a");
        assert_eq!(summary["node"]["nodeName"], "node-a");
        assert_eq!(summary["pods"][0]["podRef"]["uid"], "u");
        assert_eq!(
            summary["pods"][0]["containers"][0]["cpu"]["usageNanoCores"],
            10
        );
        assert_eq!(summary["pods"][0]["memory"]["workingSetBytes"], 4096);
        let text = resource_metrics_text(&snapshot);
        assert!(text.contains(
            "container_cpu_usage_seconds_total{container=\"c\",namespace=\"ns\",pod=\"p\"} 1.5 2000\n"
        ), "{text}");
        assert!(
            text.contains("node_memory_working_set_bytes 4096 2000\n"),
            "{text}"
        );
        assert!(
            text.contains("pod_memory_working_set_bytes{namespace=\"ns\",pod=\"p\"} 4096 2000\n"),
            "{text}"
        );
    }
}

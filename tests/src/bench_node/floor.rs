//! The CRI floor of pod startup: the same pods started by the bare CRI client straight
//! against the same containerd, with the configs the node agent would build for them (its
//! own config builders, from a pod the API server defaulted), so the sandbox joins the same
//! CNI network, runs under a cgroup of the same shape, and the container gets the same
//! mounts, environment, log path and security settings. Only the `io.kubernetes.pod.uid`
//! label is swapped for the bench's own, so that the agent never takes these sandboxes for
//! orphans of its own.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ferrolet_agent::kuberuntime::container::{
    container_log_directory, termination_message_host_path,
};
use ferrolet_agent::kuberuntime::{
    ContainerContext, DnsContext, ResourceContext, SandboxContext, SecurityContextInputs,
    container_config, pod_sandbox_config,
};
use ferrolet_agent::pleg::POD_UID_LABEL;
use ferrolet_cri::api::runtime_service_client::RuntimeServiceClient;
use ferrolet_cri::contract::unique_token;
use ferrolet_cri::{ImageService, RemoteRuntime, RuntimeService, api};
use ferrolet_tests::{CgroupParent, cri_bare};
use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use tempfile::TempDir;
use tonic::transport::Channel;

/// The label that marks this run's sandboxes.
const RUN_LABEL: &str = "ferrolet.bench/node-floor";

/// Everything the floor needs, made once per run.
pub struct Floor {
    runtime: RemoteRuntime,
    bare: RuntimeServiceClient<Channel>,
    /// A pod as the API server defaulted it and the agent ran it.
    template: Pod,
    /// The environment the agent gave the template's container.
    env: Vec<api::KeyValue>,
    image_ref: String,
    node_ip: String,
    cgroup: CgroupParent,
    dir: TempDir,
    run_id: String,
}

impl Floor {
    /// The floor for pods like `template`, which the agent has running now (its container's
    /// environment is read back from the runtime).
    pub async fn new(runtime: RemoteRuntime, template: Pod, node_ip: String) -> Result<Self> {
        let uid = template.metadata.uid.clone().unwrap_or_default();
        let containers = runtime
            .list_containers(Some(api::ContainerFilter {
                label_selector: HashMap::from([(POD_UID_LABEL.to_owned(), uid)]),
                ..Default::default()
            }))
            .await
            .context("listing the template pod's containers")?;
        let Some(container) = containers.first() else {
            bail!("the template pod has no container in the runtime");
        };
        let status = runtime
            .container_status(&container.id, true)
            .await
            .context("the template container's status")?;
        let env = verbose_env(&status.info);
        let image = template
            .spec
            .as_ref()
            .and_then(|s| s.containers[0].image.clone());
        let image_ref = runtime
            .image_status(&ferrolet_cri::image_spec(&image.unwrap_or_default()), false)
            .await
            .context("the template's image")?
            .image
            .map(|i| i.id)
            .context("the template's image is not in the runtime")?;
        Ok(Self {
            runtime,
            bare: cri_bare::client().await?,
            template,
            env,
            image_ref,
            node_ip,
            cgroup: CgroupParent::new("bench-floor"),
            dir: tempfile::Builder::new()
                .prefix("ferrolet-bench-floor-")
                .tempdir()?,
            run_id: unique_token(),
        })
    }

    /// Starts `n` pods at once; returns each pod's time from its first step to
    /// `StartContainer` answered.
    pub async fn round(&self, n: usize) -> Result<Vec<Duration>> {
        let names: Vec<String> = (0..n).map(|i| format!("floor-{n}-{i}")).collect();
        let starts = join_all(names.iter().map(|name| self.start(name))).await;
        starts.into_iter().collect()
    }

    async fn start(&self, name: &str) -> Result<Duration> {
        let mut pod = self.template.clone();
        let uid = unique_token();
        pod.metadata.name = Some(name.to_owned());
        pod.metadata.uid = Some(uid.clone());
        pod.metadata.labels = Some(std::collections::BTreeMap::from([(
            "app".to_owned(),
            "bench".to_owned(),
        )]));
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let root = self.dir.path();
        let logs = root.join("logs").display().to_string();
        let sandbox_ctx = SandboxContext {
            pod_logs_dir: logs.clone(),
            cgroup_parent: format!("{}/pod{uid}", self.cgroup.path()),
            dns: DnsContext {
                cluster_dns: Vec::new(),
                cluster_domain: "cluster.local".to_owned(),
                host_resolv_conf: Some(std::fs::read_to_string("/etc/resolv.conf")?),
                node_ips: vec![self.node_ip.clone()],
            },
            resources: ResourceContext::new(memory_bytes()),
            ..SandboxContext::default()
        };
        let mut sandbox = pod_sandbox_config(&pod, &sandbox_ctx)?.value;
        self.relabel(&mut sandbox.labels);
        let container = &pod.spec.as_ref().context("a pod spec")?.containers[0];
        let hosts = root.join(format!("{uid}-hosts"));
        let root_dir = root.join("root").display().to_string();
        let termination = termination_message_host_path(&root_dir, &uid, &container.name, 0);
        let ctx = ContainerContext {
            attempt: 0,
            image_ref: self.image_ref.clone(),
            env: self.env.clone(),
            mounts: Vec::new(),
            etc_hosts_path: Some(hosts.display().to_string()),
            termination_message_host_path: Some(termination.clone()),
            selinux_enabled: false,
            resources: sandbox_ctx.resources.clone(),
            security: SecurityContextInputs::default(),
        };
        let mut config = container_config(&pod, container, &ctx)?;
        self.relabel(&mut config.labels);
        let began = Instant::now();
        // What any client must do besides the calls: the container's log directory, the
        // hosts file and the termination message file it mounts.
        let log_dir = container_log_directory(&logs, &namespace, name, &uid, &container.name);
        std::fs::create_dir_all(&log_dir)?;
        std::fs::write(&hosts, "127.0.0.1\tlocalhost\n")?;
        let termination = PathBuf::from(termination);
        std::fs::create_dir_all(termination.parent().context("a parent")?)?;
        std::fs::write(&termination, "")?;
        Box::pin(cri_bare::start_pod(self.bare.clone(), sandbox, config)).await?;
        Ok(began.elapsed())
    }

    fn relabel(&self, labels: &mut HashMap<String, String>) {
        labels.remove(POD_UID_LABEL);
        labels.insert(RUN_LABEL.to_owned(), self.run_id.clone());
    }

    /// Stops and removes every sandbox of this run, all at once.
    pub async fn clean(&self) -> Result<()> {
        let filter = api::PodSandboxFilter {
            label_selector: HashMap::from([(RUN_LABEL.to_owned(), self.run_id.clone())]),
            ..Default::default()
        };
        let sandboxes = self.runtime.list_pod_sandbox(Some(filter)).await?;
        let removed = join_all(sandboxes.iter().map(|s| async {
            self.runtime.stop_pod_sandbox(&s.id).await?;
            self.runtime.remove_pod_sandbox(&s.id).await
        }))
        .await;
        for result in removed {
            result.context("removing a floor sandbox")?;
        }
        Ok(())
    }

    /// Removes the run's cgroups after [`Floor::clean`]; fails if a pod left one behind.
    pub fn finish(self) -> Result<()> {
        self.cgroup
            .remove()
            .map_err(|e| anyhow::anyhow!("floor pods left their cgroups behind: {e}"))
    }
}

/// The container's environment from containerd's verbose status (`info.config.envs`).
fn verbose_env(info: &HashMap<String, String>) -> Vec<api::KeyValue> {
    let Some(parsed) = info
        .get("info")
        .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
    else {
        return Vec::new();
    };
    parsed["config"]["envs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| {
            Some(api::KeyValue {
                key: kv["key"].as_str()?.to_owned(),
                value: kv["value"].as_str().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// `MemTotal` in bytes, as the agent takes the node's memory capacity.
fn memory_bytes() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

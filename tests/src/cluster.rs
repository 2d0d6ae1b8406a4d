//! A whole cluster for end-to-end tests: `ferrolet control-plane` on the host side of the
//! node's link (`FERROLET_HOST_IP`, a free port, a temporary data directory) and one
//! `ferrolet node` inside the node's network namespace, driving hack/containerd's containerd.
//! Everything runs from the `ferrolet` binary that `hack/test` builds (`FERROLET_BIN`).

use std::ffi::OsString;
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use tempfile::TempDir;

use crate::process::ChildProcess;
use crate::required_env;

/// How long the control plane and the node get to become ready.
const START_TIMEOUT: Duration = Duration::from_mins(1);

/// Settings of a test cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Names the node, its cgroup (under `FERROLET_CGROUP_PARENT`) and its directories.
    pub name: String,
    /// Extra `ferrolet control-plane` flags.
    pub control_plane_args: Vec<String>,
    /// Extra lines of the node's `KubeletConfiguration`.
    pub kubelet_config: String,
    /// The node agent's log filter (`FERROLET_LOG`).
    pub agent_log: String,
}

impl ClusterOptions {
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            control_plane_args: Vec::new(),
            kubelet_config: String::new(),
            agent_log: "info,ferrolet_agent=debug".to_owned(),
        }
    }
}

/// A control plane and one node; both stop when dropped.
pub struct TestCluster {
    // Fields drop in order: the node first, then the control plane, then the directory.
    node: ChildProcess,
    control_plane: ChildProcess,
    /// A client with the admin's credentials.
    pub client: kube::Client,
    pub node_name: String,
    /// The admin kubeconfig, for kubectl.
    pub kubeconfig: PathBuf,
    /// The node agent's `--root-dir`.
    pub root_dir: PathBuf,
    /// The node's IP, as it registered.
    pub node_ip: IpAddr,
    /// The node's pod cgroup root, relative to each hierarchy.
    pub cgroup_root: String,
    dir: TempDir,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("node_name", &self.node_name)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

fn free_port(ip: IpAddr) -> Result<u16> {
    let listener = TcpListener::bind((ip, 0)).with_context(|| format!("a free port on {ip}"))?;
    Ok(listener.local_addr()?.port())
}

/// A client for a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> Result<kube::Client> {
    let file = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .context("loading the kubeconfig")?;
    kube::Client::try_from(config).context("building a client")
}

impl TestCluster {
    /// Starts the control plane and the node, and waits until the node is Ready.
    pub async fn start(options: ClusterOptions) -> Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ferrolet = PathBuf::from(required_env("FERROLET_BIN"));
        let host_ip: IpAddr = required_env("FERROLET_HOST_IP").parse()?;
        let node_ip: IpAddr = required_env("FERROLET_NODE_IP").parse()?;
        let netns = required_env("FERROLET_NETNS");
        let endpoint = required_env("FERROLET_CONTAINERD_ENDPOINT");
        let cgroup_root = format!(
            "/{}/{}",
            required_env("FERROLET_CGROUP_PARENT"),
            options.name
        );
        let mut dir = tempfile::Builder::new()
            .prefix(&format!("ferrolet-{}-", options.name))
            .tempdir()?;
        if std::env::var_os("FERROLET_KEEP_TEST_DIRS").is_some() {
            // For a post-mortem: the logs and data stay (the processes still stop).
            dir.disable_cleanup(true);
            eprintln!("keeping {}", dir.path().display());
        }
        let node_name = options.name.clone();
        let node_kubeconfig = dir.path().join("node.kubeconfig");

        let port = free_port(host_ip)?;
        let mut command: Vec<OsString> = vec![
            ferrolet.clone().into(),
            "control-plane".into(),
            "--data-dir".into(),
            dir.path().join("control-plane").into(),
            "--bind-address".into(),
            host_ip.to_string().into(),
            "--secure-port".into(),
            port.to_string().into(),
            "--node-kubeconfig".into(),
            format!("{node_name}={}", node_kubeconfig.display()).into(),
        ];
        command.extend(options.control_plane_args.iter().map(OsString::from));
        let mut control_plane = ChildProcess::spawn(
            "the control plane",
            command,
            Vec::new(),
            &dir.path().join("control-plane.log"),
        )?;
        let kubeconfig = dir.path().join("control-plane/admin.kubeconfig");
        let client = wait_for_api(&mut control_plane, &kubeconfig).await?;

        let root_dir = dir.path().join("root");
        let config = dir.path().join("kubelet.yaml");
        // The kubelet server trusts client certificates of the cluster CA (the API server's
        // kubelet client), as kubeadm sets it up.
        let authentication = if options.kubelet_config.contains("authentication:") {
            String::new()
        } else {
            format!(
                "authentication:\n  x509:\n    clientCAFile: {}\n",
                dir.path().join("control-plane/pki/ca.crt").display()
            )
        };
        std::fs::write(
            &config,
            format!(
                "apiVersion: kubelet.config.k8s.io/v1beta1\n\
                 kind: KubeletConfiguration\n\
                 containerRuntimeEndpoint: {endpoint}\n\
                 cgroupRoot: {cgroup_root}\n\
                 {authentication}\
                 {}\n",
                options.kubelet_config
            ),
        )?;
        let command: Vec<OsString> = vec![
            "nsenter".into(),
            format!("--net=/run/netns/{netns}").into(),
            "--".into(),
            ferrolet.into(),
            "node".into(),
            "--config".into(),
            config.into(),
            "--kubeconfig".into(),
            node_kubeconfig.into(),
            "--hostname-override".into(),
            node_name.clone().into(),
            "--root-dir".into(),
            root_dir.clone().into(),
        ];
        let node = ChildProcess::spawn(
            "the node agent",
            command,
            vec![("FERROLET_LOG".into(), options.agent_log.clone())],
            &dir.path().join("node.log"),
        )?;
        let mut cluster = Self {
            node,
            control_plane,
            client,
            node_name,
            kubeconfig,
            root_dir,
            node_ip,
            cgroup_root,
            dir,
        };
        cluster.wait_node_ready().await?;
        Ok(cluster)
    }

    /// Waits until the node reports Ready=True.
    pub async fn wait_node_ready(&mut self) -> Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.node.ensure_running()?;
            if let Ok(node) = nodes.get(&self.node_name).await
                && node_ready(&node)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} not Ready within {START_TIMEOUT:?}; its log:\n{}",
                    self.node_name,
                    self.node.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills the node agent with SIGKILL (its pods keep running) and starts it again.
    pub async fn crash_and_restart_agent(&mut self) -> Result<()> {
        self.node.kill9();
        self.node.restart()?;
        self.wait_node_ready().await
    }

    /// Stops the control plane (SIGTERM) until [`TestCluster::start_control_plane`].
    pub fn stop_control_plane(&mut self) {
        self.control_plane.stop();
    }

    /// Starts the stopped control plane again on its data.
    pub async fn start_control_plane(&mut self) -> Result<()> {
        self.control_plane.restart()?;
        self.client = wait_for_api(&mut self.control_plane, &self.kubeconfig).await?;
        Ok(())
    }

    /// Fails, with the end of its log, if the node agent has exited.
    pub fn ensure_agent_running(&mut self) -> Result<()> {
        self.node.ensure_running()
    }

    /// The node agent's pid.
    #[must_use]
    pub fn agent_pid(&self) -> u32 {
        self.node.pid()
    }

    /// The node agent's log file.
    #[must_use]
    pub fn agent_log(&self) -> &Path {
        self.node.log()
    }

    /// The temporary directory holding everything of this cluster.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates a namespace for one test.
    pub async fn namespace(&self, name: &str) -> Result<String> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name }
        }))?;
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(name.to_owned())
    }

    /// Deletes every pod of the cluster and waits until the node has finalized them all
    /// (containers stopped, sandboxes and volumes removed, objects deleted).
    pub async fn delete_all_pods(&self, limit: Duration) -> Result<()> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        for pod in pods.list(&ListParams::default()).await?.items {
            let api: Api<Pod> = Api::namespaced(
                self.client.clone(),
                pod.metadata.namespace.as_deref().unwrap_or_default(),
            );
            let params = DeleteParams {
                grace_period_seconds: Some(1),
                ..DeleteParams::default()
            };
            let _ = api
                .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
                .await;
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = pods.list(&ListParams::default()).await?.items;
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let names: Vec<String> = left
                    .iter()
                    .map(|p| format!("{:?}", p.metadata.name))
                    .collect();
                bail!("pods left after {limit:?}: {}", names.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.node.stop();
        // The agent makes its root directory a shared mount of itself (as the kubelet does)
        // and leaves it when it stops; what its pods mounted is gone by now unless a test
        // failed. Either way nothing may outlive the cluster.
        let root = self.root_dir.display().to_string();
        let mut below: Vec<String> = crate::mount_points()
            .into_iter()
            .filter(|m| *m == root || m.starts_with(&format!("{root}/")))
            .collect();
        below.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in below {
            if let Err(err) = nix::mount::umount2(mount.as_str(), nix::mount::MntFlags::MNT_DETACH)
            {
                eprintln!("unmount {mount}: {err}");
            }
        }
    }
}

/// Waits for the admin kubeconfig and `/readyz`; returns an admin client.
async fn wait_for_api(process: &mut ChildProcess, kubeconfig: &Path) -> Result<kube::Client> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        process.ensure_running()?;
        if kubeconfig.exists() {
            let client = client_for(kubeconfig).await?;
            let request = http::Request::get("/readyz").body(Vec::new())?;
            if let Ok(body) = client.request_text(request).await
                && body.trim() == "ok"
            {
                return Ok(client);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the API server was not ready within {START_TIMEOUT:?}; its log:\n{}",
                process.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a node's Ready condition is True.
#[must_use]
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

//! The node agent through outages, one case after the other on one cluster: the agent
//! killed with SIGKILL and started again, containerd restarted, the API server down for a
//! while, the Node object deleted. Pods keep running throughout; nothing restarts that should
//! not, and the agent picks up where it left off.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ferrolet_cri::{RuntimeService, api};
use ferrolet_tests::case;
use ferrolet_tests::cluster::{ClusterOptions, TestCluster, node_ready};
use ferrolet_tests::pods::{container, create, phase, shell_pod, wait_for};
use ferrolet_tests::suite::{self, Mode};
use ferrolet_tests::{containerd, required_env};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use tokio::sync::Mutex;

type Ctx = Arc<Mutex<TestCluster>>;

const RUNNING: Duration = Duration::from_mins(1);
/// Long enough for several PLEG relists, status syncs and worker resyncs.
const SETTLE: Duration = Duration::from_secs(15);

fn main() -> ExitCode {
    let cases = vec![
        case!(a_crashed_agent_restarts_no_container),
        case!(pods_survive_a_containerd_restart),
        case!(pods_keep_running_while_the_api_server_is_down),
        case!(a_deleted_node_registers_again),
    ];
    let Some(cases) = suite::select(cases) else {
        return ExitCode::SUCCESS;
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let cluster = match TestCluster::start(ClusterOptions::new("node-restart")).await {
            Ok(cluster) => Arc::new(Mutex::new(cluster)),
            Err(err) => {
                println!("setting up the cluster failed: {err:#}");
                return ExitCode::FAILURE;
            }
        };
        let failures = suite::run(&cases, &cluster, Mode::Sequential, Duration::from_mins(4)).await;
        let teardown = {
            let cluster = cluster.lock().await;
            cluster
                .delete_all_pods(Duration::from_mins(2))
                .await
                .map_err(|e| format!("{e:#}"))
        };
        drop(cluster);
        suite::summary(cases.len(), &failures, &teardown)
    })
}

/// What must not change across an outage: each container's ID and restart count.
type Snapshot = BTreeMap<String, (String, i32)>;

async fn snapshot(client: &kube::Client, namespace: &str) -> Result<Snapshot> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut seen = Snapshot::new();
    for pod in pods.list(&ListParams::default()).await?.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        ensure!(phase(&pod) == "Running", "{name} is {}", phase(&pod));
        let main = container(&pod, "main").with_context(|| format!("{name}: no status"))?;
        ensure!(main.ready, "{name} not ready");
        seen.insert(
            name,
            (
                main.container_id.clone().unwrap_or_default(),
                main.restart_count,
            ),
        );
    }
    Ok(seen)
}

/// Starts `count` long-running pods in `namespace` and waits until all run.
async fn start_pods(cluster: &TestCluster, namespace: &str, count: usize) -> Result<Snapshot> {
    let client = &cluster.client;
    for i in 0..count {
        create(
            client,
            namespace,
            &shell_pod(&format!("p{i}"), "Always", "exec sleep 3600")?,
        )
        .await?;
    }
    for i in 0..count {
        wait_for(
            client,
            namespace,
            &format!("p{i}"),
            RUNNING,
            "Running",
            |p| phase(p) == "Running" && container(p, "main").is_some_and(|c| c.ready),
        )
        .await?;
    }
    snapshot(client, namespace).await
}

/// The running CRI containers of the cluster's pods, by ID.
async fn running_containers() -> Result<Vec<String>> {
    let filter = api::ContainerFilter {
        state: Some(api::ContainerStateValue {
            state: api::ContainerState::ContainerRunning.into(),
        }),
        ..Default::default()
    };
    Ok(containerd()
        .await
        .list_containers(Some(filter))
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect())
}

async fn a_crashed_agent_restarts_no_container(ctx: Ctx) -> Result<()> {
    let mut cluster = ctx.lock().await;
    let ns = cluster.namespace("restart-agent").await?;
    let before = start_pods(&cluster, &ns, 10).await?;
    cluster.crash_and_restart_agent().await?;
    tokio::time::sleep(SETTLE).await;
    cluster.ensure_agent_running()?;
    let after = snapshot(&cluster.client, &ns).await?;
    ensure!(
        before == after,
        "containers changed:\nbefore {before:?}\n after {after:?}"
    );
    ensure!(
        after.values().all(|(_, restarts)| *restarts == 0),
        "restarts: {after:?}"
    );
    Ok(())
}

async fn pods_survive_a_containerd_restart(ctx: Ctx) -> Result<()> {
    let mut cluster = ctx.lock().await;
    let ns = cluster.namespace("restart-containerd").await?;
    let before = start_pods(&cluster, &ns, 3).await?;
    let running = running_containers().await?;
    let status =
        tokio::process::Command::new(format!("{}/hack/containerd", required_env("FERROLET_ROOT")))
            .arg("restart")
            .status()
            .await?;
    ensure!(status.success(), "hack/containerd restart failed");
    let still = running_containers().await?;
    ensure!(
        running.iter().all(|id| still.contains(id)),
        "containers stopped with containerd"
    );
    tokio::time::sleep(SETTLE).await;
    cluster.ensure_agent_running()?;
    let after = snapshot(&cluster.client, &ns).await?;
    ensure!(
        before == after,
        "containers changed:\nbefore {before:?}\n after {after:?}"
    );
    // The agent talks to the new containerd: a new pod starts.
    create(
        &cluster.client,
        &ns,
        &shell_pod("after", "Always", "exec sleep 3600")?,
    )
    .await?;
    wait_for(&cluster.client, &ns, "after", RUNNING, "Running", |p| {
        phase(p) == "Running"
    })
    .await?;
    let node = Api::<Node>::all(cluster.client.clone())
        .get(&cluster.node_name)
        .await?;
    ensure!(
        node_ready(&node),
        "node not Ready after the runtime came back"
    );
    Ok(())
}

async fn pods_keep_running_while_the_api_server_is_down(ctx: Ctx) -> Result<()> {
    let mut cluster = ctx.lock().await;
    let ns = cluster.namespace("restart-api").await?;
    let before = start_pods(&cluster, &ns, 3).await?;
    let running = running_containers().await?;
    cluster.stop_control_plane();
    tokio::time::sleep(SETTLE).await;
    cluster.ensure_agent_running()?;
    let still = running_containers().await?;
    ensure!(
        running.iter().all(|id| still.contains(id)),
        "containers stopped while the API was down"
    );
    cluster.start_control_plane().await?;
    cluster.wait_node_ready().await?;
    let after = snapshot(&cluster.client, &ns).await?;
    ensure!(
        before == after,
        "containers changed:\nbefore {before:?}\n after {after:?}"
    );
    // Everything resumes: a new pod is run and reported.
    create(
        &cluster.client,
        &ns,
        &shell_pod("after", "Always", "exec sleep 3600")?,
    )
    .await?;
    wait_for(&cluster.client, &ns, "after", RUNNING, "Running", |p| {
        phase(p) == "Running"
    })
    .await?;
    Ok(())
}

async fn a_deleted_node_registers_again(ctx: Ctx) -> Result<()> {
    let mut cluster = ctx.lock().await;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let old = nodes.get(&cluster.node_name).await?;
    nodes
        .delete(&cluster.node_name, &DeleteParams::default())
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
    loop {
        if let Some(node) = nodes.get_opt(&cluster.node_name).await?
            && node.metadata.uid != old.metadata.uid
        {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the node did not register again within 1m"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cluster.wait_node_ready().await
}

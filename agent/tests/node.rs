//! The node loops against the real ferrolet control plane, started in-process on a free port:
//! registration, status, the Lease and its renewal, re-registration after deletion, with the
//! recording CRI fake as the runtime. Every wait is bounded.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferrolet_agent::config::KubeletConfiguration;
use ferrolet_agent::node::{
    HostSnapshot, LeaseRenewer, NodeIdentity, NodeStatusManager, StaticHost,
};
use ferrolet_controlplane::run::{ControlPlane, ControlPlaneConfig};
use ferrolet_cri::fake::FakeRuntime;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

struct Cluster {
    control_plane: ControlPlane,
    client: kube::Client,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ControlPlaneConfig::new(dir.path().join("data"));
        config.secure_port = 0;
        config.compaction_interval = Duration::from_hours(1);
        let control_plane = ControlPlane::start(config, CancellationToken::new())
            .await
            .expect("start the control plane");
        let kubeconfig = kube::config::Kubeconfig::read_from(&control_plane.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        Cluster {
            control_plane,
            client,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.control_plane.stop().await;
    }
}

fn host() -> HostSnapshot {
    HostSnapshot {
        num_cpus: 2,
        memory_total_bytes: 16_768_323_584,
        memory_available_bytes: 8 << 30,
        root_fs_capacity_bytes: 105_152_176_128,
        root_fs_available_bytes: 60 << 30,
        pid_max: 4_194_304,
        running_processes: 300,
        machine_id: "0123456789abcdef0123456789abcdef".into(),
        system_uuid: String::new(),
        boot_id: "5a4e7e4c-8d8f-4c57-9b7a-000000000001".into(),
        kernel_version: "6.1.0-test".into(),
        os_image: "Debian GNU/Linux 13 (trixie)".into(),
        architecture: "amd64".into(),
    }
}

fn identity(name: &str) -> NodeIdentity {
    NodeIdentity {
        node_name: name.into(),
        hostname: name.into(),
        node_ip: "127.0.0.1".parse().unwrap(),
    }
}

fn config(update: Duration) -> KubeletConfiguration {
    KubeletConfiguration {
        node_status_update_frequency: update.into(),
        node_status_report_frequency: Duration::from_mins(5).into(),
        kube_reserved: [("cpu".to_owned(), "500m".parse().unwrap())].into(),
        ..KubeletConfiguration::default()
    }
}

fn manager(
    cluster: &Cluster,
    name: &str,
    runtime: &FakeRuntime,
    update: Duration,
) -> NodeStatusManager {
    NodeStatusManager::new(
        cluster.client.clone(),
        identity(name),
        &config(update),
        Arc::new(StaticHost(host())),
        Arc::new(runtime.clone()),
    )
}

/// Polls `probe` until it returns `Some`, failing the test with `what` after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn condition<'a>(node: &'a Node, kind: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

fn ready(node: &Node) -> Option<(String, String, String)> {
    let c = condition(node, "Ready")?;
    Some((
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_reports_status_renews_lease_and_registers_again() {
    let cluster = Cluster::start().await;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-node-lease");
    let runtime = FakeRuntime::new();
    runtime.set_network_ready(false);

    let cancel = CancellationToken::new();
    let status_loop = tokio::spawn(
        manager(&cluster, "node-a", &runtime, Duration::from_millis(500)).run(cancel.clone()),
    );
    let lease_loop = tokio::spawn(
        LeaseRenewer::new(cluster.client.clone(), "node-a", 40)
            .with_renew_interval(Duration::from_millis(300))
            .run(cancel.clone()),
    );

    // Registered, with the kubelet's labels and a status saying why it is not ready.
    let node = eventually("node-a with a Ready condition", || async {
        let node = nodes.get_opt("node-a").await.ok()??;
        ready(&node).map(|_| node)
    })
    .await;
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["kubernetes.io/hostname"], "node-a");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["kubernetes.io/arch"], "amd64");
    assert_eq!(
        ready(&node).unwrap(),
        (
            "False".to_owned(),
            "KubeletNotReady".to_owned(),
            "container runtime network not ready: NetworkReady=false \
             reason:NetworkPluginNotReady message:cni plugin not initialized"
                .to_owned()
        )
    );
    let status = node.status.clone().unwrap();
    let capacity = status.capacity.unwrap();
    assert_eq!(capacity["cpu"].0, "2");
    assert_eq!(capacity["memory"].0, "16375316Ki");
    assert_eq!(capacity["pods"].0, "110");
    assert_eq!(status.allocatable.unwrap()["cpu"].0, "1500m");
    let info = status.node_info.unwrap();
    assert_eq!(info.kubelet_version, "v1.33.0-ferrolet");
    assert_eq!(info.container_runtime_version, "fake://0.0.0");
    let addresses: Vec<_> = status
        .addresses
        .unwrap()
        .into_iter()
        .map(|a| (a.type_, a.address))
        .collect();
    assert_eq!(
        addresses,
        [
            ("InternalIP".to_owned(), "127.0.0.1".to_owned()),
            ("Hostname".to_owned(), "node-a".to_owned())
        ]
    );
    let uid = node.metadata.uid.clone().unwrap();

    // The Lease: held by the node, owned by the Node, renewed.
    let lease = eventually("the Lease of node-a", || async {
        leases.get_opt("node-a").await.ok()?
    })
    .await;
    let spec = lease.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("node-a"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = &lease.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str()
        ),
        ("v1", "Node", "node-a")
    );
    assert_eq!(owner.uid, uid);
    let first_renewal = spec.renew_time.unwrap();
    eventually("the Lease's renewTime to advance", || async {
        let renewed = leases.get_opt("node-a").await.ok()??.spec?.renew_time?;
        (renewed > first_renewal).then_some(())
    })
    .await;

    // The network comes up: Ready flips, with a new transition time.
    let not_ready_since = condition(&node, "Ready")
        .unwrap()
        .last_transition_time
        .clone();
    runtime.set_network_ready(true);
    let node = eventually("node-a Ready=True", || async {
        let node = nodes.get_opt("node-a").await.ok()??;
        (ready(&node)?.0 == "True").then_some(node)
    })
    .await;
    let c = condition(&node, "Ready").unwrap();
    assert_eq!(c.reason.as_deref(), Some("KubeletReady"));
    assert_eq!(
        c.message.as_deref(),
        Some("kubelet is posting ready status")
    );
    assert!(c.last_transition_time >= not_ready_since);
    assert_eq!(
        condition(&node, "MemoryPressure")
            .unwrap()
            .reason
            .as_deref(),
        Some("KubeletHasSufficientMemory")
    );

    // Deleted: registered again, as a new object.
    nodes
        .delete("node-a", &DeleteParams::default())
        .await
        .expect("delete node-a");
    let again = eventually("node-a registered again", || async {
        let node = nodes.get_opt("node-a").await.ok()??;
        (node.metadata.uid.as_deref() != Some(uid.as_str())).then_some(node)
    })
    .await;
    assert!(
        again
            .metadata
            .labels
            .unwrap()
            .contains_key("kubernetes.io/hostname")
    );

    // Both loops end when cancelled.
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), status_loop)
        .await
        .expect("status loop ends")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), lease_loop)
        .await
        .expect("lease loop ends")
        .unwrap();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopts_existing_node_and_patches_only_on_change() {
    let cluster = Cluster::start().await;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let existing: Node = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "node-b",
            "labels": { "kubernetes.io/arch": "s390x", "team": "blue" }
        }
    }))
    .unwrap();
    nodes
        .create(&PostParams::default(), &existing)
        .await
        .unwrap();

    let runtime = FakeRuntime::new();
    let mut manager = manager(&cluster, "node-b", &runtime, Duration::from_secs(10));
    let adopted = manager.register().await.expect("adopt node-b");
    let labels = adopted.metadata.labels.unwrap();
    assert_eq!(labels["kubernetes.io/arch"], "amd64");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["team"], "blue", "other labels stay");

    // The first sync reports; the next one, unchanged and before the report frequency, not.
    let first = manager.sync_status().await.unwrap();
    assert!(first.patched);
    let second = manager.sync_status().await.unwrap();
    assert!(!second.patched, "nothing changed but heartbeats");

    // The runtime stops answering: a change, reported at once.
    runtime.inject_error("Status", tonic::Status::unavailable("connection refused"));
    let down = manager.sync_status().await.unwrap();
    assert!(down.patched);
    let node = nodes.get("node-b").await.unwrap();
    assert_eq!(
        ready(&node).unwrap(),
        (
            "False".to_owned(),
            "KubeletNotReady".to_owned(),
            "container runtime is down".to_owned()
        )
    );
    let back = manager.sync_status().await.unwrap();
    assert!(back.patched);
    assert_eq!(
        ready(&nodes.get("node-b").await.unwrap()).unwrap().0,
        "True"
    );

    // Status sync on a deleted Node says so, for the loop to register again.
    nodes
        .delete("node-b", &DeleteParams::default())
        .await
        .unwrap();
    let err = manager.sync_status().await.unwrap_err();
    assert!(err.is_node_not_found(), "{err}");
    assert_eq!(err.to_string(), "node node-b: Node not found");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_waits_for_its_node_and_survives_conflicts() {
    let cluster = Cluster::start().await;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-node-lease");
    let mut renewer = LeaseRenewer::new(cluster.client.clone(), "node-c", 40);
    assert_eq!(renewer.renew_interval(), Duration::from_secs(10));

    // No Node, no Lease: it would have no owner.
    let err = renewer.sync().await.unwrap_err();
    assert!(err.to_string().contains("owner Node unknown"), "{err}");
    assert!(leases.get_opt("node-c").await.unwrap().is_none());

    let runtime = FakeRuntime::new();
    manager(&cluster, "node-c", &runtime, Duration::from_secs(10))
        .register()
        .await
        .unwrap();
    let created = renewer.sync().await.expect("create the Lease");
    assert!(created.metadata.owner_references.is_some());

    // Someone else writes the Lease: our next renewal conflicts, reads it again, succeeds.
    let mut theirs = leases.get("node-c").await.unwrap();
    theirs
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("touched".into(), "yes".into());
    leases
        .replace("node-c", &PostParams::default(), &theirs)
        .await
        .unwrap();
    let after_conflict = renewer.sync().await.expect("renew after a conflict");
    assert_eq!(after_conflict.metadata.labels.unwrap()["touched"], "yes");
    assert!(after_conflict.spec.unwrap().renew_time > created.spec.unwrap().renew_time);

    // Deleted: created again.
    leases
        .delete("node-c", &DeleteParams::default())
        .await
        .unwrap();
    renewer.sync().await.expect("recreate the Lease");
    assert!(leases.get_opt("node-c").await.unwrap().is_some());
    cluster.stop().await;
}

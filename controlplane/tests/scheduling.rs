//! The scheduler inside a running control plane: nodes are API objects here, pods get bound
//! or an Unschedulable condition and event that say why, and are retried when nodes change.

// Helpers take JSON literals by value: the tests read better that way.
#![allow(clippy::needless_pass_by_value)]

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

fn node(name: &str, cpu: &str, labels: serde_json::Value, taints: serde_json::Value) -> Node {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {
            "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
            "capacity": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }))
    .unwrap()
}

fn pod(name: &str, extra: serde_json::Value) -> Pod {
    let mut spec = serde_json::json!({"containers": [{"name": "a", "image": "busybox:1.35"}]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_bind_where_they_fit_or_say_why_not() {
    let cluster = Cluster::start().await;
    let client = cluster.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    nodes
        .create(
            &PostParams::default(),
            &node("big", "2", serde_json::json!({}), serde_json::json!([])),
        )
        .await
        .unwrap();
    nodes
        .create(
            &PostParams::default(),
            &node(
                "tainted",
                "1",
                serde_json::json!({"disk": "ssd"}),
                serde_json::json!([{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]),
            ),
        )
        .await
        .unwrap();

    // Fits only on the big node.
    let heavy = serde_json::json!({"containers": [{"name": "a", "image": "busybox:1.35", "resources": {"requests": {"cpu": "1500m"}}}]});
    pods.create(&PostParams::default(), &pod("heavy", heavy))
        .await
        .unwrap();
    let bound = eventually("heavy to be bound", async || {
        pods.get("heavy").await.ok()?.spec?.node_name
    })
    .await;
    assert_eq!(bound, "big");
    let scheduled = pods
        .get("heavy")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .unwrap();
    assert!(
        scheduled
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    );

    // Wants an ssd node, and the only one is tainted.
    pods.create(
        &PostParams::default(),
        &pod(
            "picky",
            serde_json::json!({"nodeSelector": {"disk": "ssd"}}),
        ),
    )
    .await
    .unwrap();
    let condition = eventually("picky to be marked unschedulable", async || {
        let conditions = pods.get("picky").await.ok()?.status?.conditions?;
        conditions
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    })
    .await;
    assert_eq!(condition.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(
        condition.message.as_deref(),
        Some(
            "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: x}."
        )
    );
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let event = eventually("a FailedScheduling event", async || {
        let list = events
            .list(
                &ListParams::default().fields("involvedObject.name=picky,reason=FailedScheduling"),
            )
            .await
            .ok()?;
        list.items.into_iter().next()
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(event.message.unwrap().contains("untolerated taint"));

    // A matching node appears: the pod is retried and bound there.
    nodes
        .create(
            &PostParams::default(),
            &node(
                "ssd",
                "1",
                serde_json::json!({"disk": "ssd"}),
                serde_json::json!([]),
            ),
        )
        .await
        .unwrap();
    let bound = eventually("picky to be bound after a node appears", async || {
        pods.get("picky").await.ok()?.spec?.node_name
    })
    .await;
    assert_eq!(bound, "ssd");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_stops_renewing_its_lease_becomes_unreachable_and_loses_its_pods() {
    let cluster = Cluster::start_with(|config| {
        config.node_monitor_grace_period = Duration::from_secs(2);
        config.pod_eviction_timeout = Duration::from_secs(2);
    })
    .await;
    let client = cluster.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    nodes
        .create(
            &PostParams::default(),
            &node("quiet", "2", serde_json::json!({}), serde_json::json!([])),
        )
        .await
        .unwrap();
    // A pod that tolerates unreachability for a short while, and one forever.
    let brief = serde_json::json!({"nodeName": "quiet", "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}]});
    let forever = serde_json::json!({"nodeName": "quiet", "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]});
    pods.create(&PostParams::default(), &pod("brief", brief))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("forever", forever))
        .await
        .unwrap();

    // No lease renewals: Ready goes Unknown and the unreachable taints come.
    let ready = eventually("Ready=Unknown", async || {
        let conditions = nodes.get("quiet").await.ok()?.status?.conditions?;
        conditions
            .into_iter()
            .find(|c| c.type_ == "Ready" && c.status == "Unknown")
    })
    .await;
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    let taints = eventually("unreachable taints", async || {
        let taints = nodes.get("quiet").await.ok()?.spec?.taints?;
        (taints
            .iter()
            .filter(|t| t.key == "node.kubernetes.io/unreachable")
            .count()
            == 2)
            .then_some(taints)
    })
    .await;
    assert!(taints.iter().any(|t| t.effect == "NoExecute"));
    // The pod with the short toleration is deleted (gracefully: marked for deletion).
    eventually("brief to be evicted", async || {
        pods.get("brief")
            .await
            .ok()?
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        pods.get("forever")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
    cluster.stop().await;
}

/// A pod that does not fit waits for a cluster change, not for the unschedulable timeout (a
/// minute): a bound pod that finishes or is deleted gives its room to it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_that_finishes_or_is_deleted_makes_room_for_an_unschedulable_one() {
    let cluster = Cluster::start().await;
    let client = cluster.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    nodes
        .create(
            &PostParams::default(),
            &node("one", "1", serde_json::json!({}), serde_json::json!([])),
        )
        .await
        .unwrap();
    let whole_cpu = || serde_json::json!({"containers": [{"name": "a", "image": "busybox:1.35", "resources": {"requests": {"cpu": "1"}}}]});
    let bound = async |name: &str| {
        eventually(&format!("{name} to be bound"), async || {
            pods.get(name).await.ok()?.spec?.node_name
        })
        .await
    };
    let unschedulable = async |name: &str| {
        eventually(&format!("{name} to be marked unschedulable"), async || {
            let conditions = pods.get(name).await.ok()?.status?.conditions?;
            conditions
                .into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        })
        .await
    };

    pods.create(&PostParams::default(), &pod("first", whole_cpu()))
        .await
        .unwrap();
    assert_eq!(bound("first").await, "one");
    pods.create(&PostParams::default(), &pod("second", whole_cpu()))
        .await
        .unwrap();
    unschedulable("second").await;

    // The first pod finishes: it holds no CPU any more.
    let started = Instant::now();
    pods.patch_status(
        "first",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"phase": "Succeeded"}})),
    )
    .await
    .unwrap();
    assert_eq!(bound("second").await, "one");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "retried only after {:?}",
        started.elapsed()
    );

    pods.create(&PostParams::default(), &pod("third", whole_cpu()))
        .await
        .unwrap();
    unschedulable("third").await;
    let started = Instant::now();
    pods.delete("second", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(bound("third").await, "one");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "retried only after {:?}",
        started.elapsed()
    );
    cluster.stop().await;
}

//! Monitor passes against a recording fake of the API that applies the patches, as the API
//! server and the watch would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Event, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::controllers::node_lifecycle::NodeLifecycleConfig;

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, Node>,
    deleted: Vec<String>,
    events: Vec<(String, String)>,
    writes: Vec<String>,
    conflict_next_status_patch: bool,
}

#[derive(Clone, Default)]
struct FakeApi(Arc<Mutex<State>>);

impl FakeApi {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().expect("fake api lock"))
    }

    fn apply(&self, node: &str, patch: &serde_json::Value, what: &str) -> kube::Result<Node> {
        self.with(|s| {
            let current = s.nodes.get(node).cloned().unwrap_or_default();
            let wanted_rv = &patch["metadata"]["resourceVersion"];
            if !wanted_rv.is_null()
                && wanted_rv.as_str() != current.metadata.resource_version.as_deref()
            {
                return Err(conflict());
            }
            let mut doc = serde_json::to_value(&current).expect("node to json");
            json_patch::merge(&mut doc, patch);
            let mut updated: Node = serde_json::from_value(doc).expect("json to node");
            let rv: u64 = current
                .metadata
                .resource_version
                .as_deref()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            updated.metadata.resource_version = Some((rv + 1).to_string());
            s.nodes.insert(node.to_string(), updated.clone());
            s.writes.push(format!("{what} {node}"));
            Ok(updated)
        })
    }

    fn nodes(&self) -> Vec<Arc<Node>> {
        self.with(|s| s.nodes.values().cloned().map(Arc::new).collect())
    }

    fn node(&self, name: &str) -> Node {
        self.with(|s| s.nodes[name].clone())
    }
}

fn conflict() -> kube::Error {
    kube::Error::Api(
        kube::core::Status::failure("the object has been modified", "Conflict")
            .with_code(409)
            .boxed(),
    )
}

#[async_trait]
impl NodeLifecycleApi for FakeApi {
    async fn patch_node_status(&self, node: &str, patch: &serde_json::Value) -> kube::Result<Node> {
        if self.with(|s| std::mem::take(&mut s.conflict_next_status_patch)) {
            return Err(conflict());
        }
        self.apply(node, patch, "status")
    }

    async fn patch_node(&self, node: &str, patch: &serde_json::Value) -> kube::Result<Node> {
        self.apply(node, patch, "taints")
    }

    async fn delete_pod(&self, namespace: &str, name: &str, _uid: &str) -> kube::Result<()> {
        self.with(|s| s.deleted.push(format!("{namespace}/{name}")));
        Ok(())
    }

    async fn create_event(&self, event: &Event) -> kube::Result<()> {
        self.with(|s| {
            s.events.push((
                event.reason.clone().unwrap_or_default(),
                event.message.clone().unwrap_or_default(),
            ));
        });
        Ok(())
    }
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn ready_node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            resource_version: Some("1".into()),
            creation_timestamp: Some(Time(ts(0))),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("KubeletReady".into()),
                last_heartbeat_time: Some(Time(ts(0))),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        }),
    }
}

fn lease(node: &str, renewed: i64) -> Arc<Lease> {
    Arc::new(Lease {
        metadata: ObjectMeta {
            name: Some(node.into()),
            namespace: Some("kube-node-lease".into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            renew_time: Some(MicroTime(ts(renewed))),
            ..LeaseSpec::default()
        }),
    })
}

fn pod(name: &str, node: &str, tolerations: Vec<Toleration>) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            tolerations: Some(tolerations),
            ..PodSpec::default()
        }),
        status: None,
    })
}

fn unreachable_toleration(seconds: Option<i64>) -> Toleration {
    Toleration {
        key: Some("node.kubernetes.io/unreachable".into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        toleration_seconds: seconds,
        value: None,
    }
}

fn setup() -> (FakeApi, NodeLifecycleController<FakeApi>) {
    let api = FakeApi::default();
    api.with(|s| {
        s.nodes.insert("n1".into(), ready_node("n1"));
    });
    let controller = NodeLifecycleController::new(api.clone(), NodeLifecycleConfig::default());
    (api, controller)
}

fn taint_keys(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect()
}

#[tokio::test]
async fn a_node_with_a_fresh_lease_is_left_alone() {
    let (api, mut c) = setup();
    for t in [0, 10, 20, 30, 40, 50, 60] {
        let report = c.monitor(&api.nodes(), &[lease("n1", t)], &[], ts(t)).await;
        assert_eq!(report, MonitorReport::default());
    }
    assert!(api.with(|s| s.writes.is_empty()));
}

#[tokio::test]
async fn a_silent_node_is_marked_unknown_tainted_and_its_pods_evicted_on_time() {
    let (api, mut c) = setup();
    let pods = vec![
        pod("plain", "n1", vec![]),
        pod("quick", "n1", vec![unreachable_toleration(Some(30))]),
        pod("daemon", "n1", vec![unreachable_toleration(None)]),
        pod("elsewhere", "n2", vec![]),
    ];
    let leases = [lease("n1", 0)];
    c.monitor(&api.nodes(), &leases, &pods, ts(0)).await;
    let report = c.monitor(&api.nodes(), &leases, &pods, ts(50)).await;
    assert_eq!(report, MonitorReport::default(), "within the grace period");

    let report = c.monitor(&api.nodes(), &leases, &pods, ts(51)).await;
    assert_eq!(report.marked_unknown, vec!["n1"]);
    assert_eq!(report.retainted, vec!["n1"]);
    assert!(report.evicted.is_empty());
    let n1 = api.node("n1");
    let ready = n1
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .cloned()
        .expect("ready condition");
    assert_eq!(ready.status, "Unknown");
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    assert_eq!(
        taint_keys(&n1),
        vec![
            "node.kubernetes.io/unreachable:NoSchedule",
            "node.kubernetes.io/unreachable:NoExecute"
        ]
    );
    assert_eq!(
        api.with(|s| s.writes.clone()),
        vec!["status n1", "taints n1"]
    );
    assert!(api.with(|s| s.events.contains(&(
        "NodeNotReady".to_string(),
        "Node n1 status is now: NodeNotReady".to_string()
    ))));

    let report = c.monitor(&api.nodes(), &leases, &pods, ts(80)).await;
    assert!(report.evicted.is_empty());
    let report = c.monitor(&api.nodes(), &leases, &pods, ts(81)).await;
    assert_eq!(report.evicted, vec!["default/quick"]);
    // Deleted once only, even while the watch still shows the pod.
    let report = c.monitor(&api.nodes(), &leases, &pods, ts(100)).await;
    assert!(report.evicted.is_empty());
    let report = c.monitor(&api.nodes(), &leases, &pods, ts(351)).await;
    assert_eq!(report.evicted, vec!["default/plain"]);
    let report = c.monitor(&api.nodes(), &leases, &pods, ts(100_000)).await;
    assert!(
        report.evicted.is_empty(),
        "the daemon pod tolerates forever"
    );
    assert_eq!(
        api.with(|s| s.deleted.clone()),
        vec!["default/quick", "default/plain"]
    );
    assert!(api.with(|s| s.events.contains(&(
        "TaintManagerEviction".to_string(),
        "Marking for deletion Pod default/plain".to_string()
    ))));
}

#[tokio::test]
async fn a_node_that_comes_back_loses_its_taints() {
    let (api, mut c) = setup();
    let leases = [lease("n1", 0)];
    c.monitor(&api.nodes(), &leases, &[], ts(0)).await;
    c.monitor(&api.nodes(), &leases, &[], ts(60)).await;
    assert_eq!(taint_keys(&api.node("n1")).len(), 2);

    // The kubelet renews its lease and posts Ready=True again.
    api.with(|s| {
        let node = s.nodes.get_mut("n1").expect("n1");
        let conditions = node
            .status
            .as_mut()
            .and_then(|st| st.conditions.as_mut())
            .expect("conditions");
        for condition in conditions.iter_mut().filter(|c| c.type_ == "Ready") {
            condition.status = "True".into();
            condition.last_heartbeat_time = Some(Time(ts(70)));
        }
    });
    let pods = vec![pod("plain", "n1", vec![])];
    let report = c
        .monitor(&api.nodes(), &[lease("n1", 70)], &pods, ts(70))
        .await;
    assert!(report.marked_unknown.is_empty());
    assert_eq!(report.retainted, vec!["n1"]);
    assert!(taint_keys(&api.node("n1")).is_empty());
    let report = c
        .monitor(&api.nodes(), &[lease("n1", 75)], &pods, ts(1000))
        .await;
    assert!(report.evicted.is_empty());
}

#[tokio::test]
async fn a_conflicting_status_update_is_retried_on_the_next_pass() {
    let (api, mut c) = setup();
    let leases = [lease("n1", 0)];
    c.monitor(&api.nodes(), &leases, &[], ts(0)).await;
    api.with(|s| s.conflict_next_status_patch = true);
    let report = c.monitor(&api.nodes(), &leases, &[], ts(60)).await;
    assert_eq!(report, MonitorReport::default());
    assert!(
        api.with(|s| s.writes.is_empty()),
        "no taint change on a stale view"
    );
    let report = c.monitor(&api.nodes(), &leases, &[], ts(65)).await;
    assert_eq!(report.marked_unknown, vec!["n1"]);
}

#[tokio::test]
async fn a_node_that_never_reported_gets_the_startup_grace_period() {
    let api = FakeApi::default();
    let mut silent = ready_node("n1");
    silent.status = Some(NodeStatus::default());
    api.with(|s| {
        s.nodes.insert("n1".into(), silent);
    });
    let mut c = NodeLifecycleController::new(
        api.clone(),
        NodeLifecycleConfig {
            startup_grace_period: Duration::from_mins(1),
            ..NodeLifecycleConfig::default()
        },
    );
    assert_eq!(
        c.monitor(&api.nodes(), &[], &[], ts(60)).await,
        MonitorReport::default()
    );
    let report = c.monitor(&api.nodes(), &[], &[], ts(61)).await;
    assert_eq!(report.marked_unknown, vec!["n1"]);
    let ready = api
        .node("n1")
        .status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
        .expect("ready");
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusNeverUpdated"));
    // No NodeNotReady event: it never was Ready.
    assert!(api.with(|s| s.events.is_empty()));
}

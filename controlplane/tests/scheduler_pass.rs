//! Scheduling passes against a recording fake of the API: bindings, the assume cache,
//! unschedulable conditions and events, retries.

#[path = "scheduler_support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferrolet_controlplane::scheduler::SchedulerConfig;
use ferrolet_controlplane::scheduler::pass::{Scheduler, SchedulerApi};
use k8s_openapi::api::core::v1::{Binding, Event, Node, Pod, PodCondition, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use support::{NodeExt, PodExt, node, pod};

#[derive(Default)]
struct Recorded {
    bindings: Vec<(String, String)>,
    status_patches: Vec<(String, serde_json::Value)>,
    events: Vec<Event>,
    bind_error: Option<(u16, &'static str)>,
    /// Message of the refusal (defaults to one that names no reason).
    bind_error_message: Option<String>,
    /// Every binding request, accepted or not.
    attempts: usize,
}

#[derive(Default, Clone)]
struct FakeApi(Arc<Mutex<Recorded>>);

impl FakeApi {
    fn with<T>(&self, f: impl FnOnce(&mut Recorded) -> T) -> T {
        f(&mut self.0.lock().expect("fake api lock"))
    }
    fn bindings(&self) -> Vec<(String, String)> {
        self.with(|r| r.bindings.clone())
    }
    fn events(&self) -> Vec<(String, String, String)> {
        self.with(|r| {
            r.events
                .iter()
                .map(|e| {
                    (
                        e.involved_object.name.clone().unwrap_or_default(),
                        e.reason.clone().unwrap_or_default(),
                        e.message.clone().unwrap_or_default(),
                    )
                })
                .collect()
        })
    }
    fn patches(&self) -> Vec<(String, serde_json::Value)> {
        self.with(|r| r.status_patches.clone())
    }
}

#[async_trait]
impl SchedulerApi for FakeApi {
    async fn bind(&self, binding: &Binding) -> kube::Result<()> {
        self.with(|r| {
            r.attempts += 1;
            if let Some((code, reason)) = r.bind_error {
                let message = r
                    .bind_error_message
                    .clone()
                    .unwrap_or_else(|| "refused by the fake".into());
                return Err(kube::Error::Api(
                    kube::core::Status::failure(&message, reason)
                        .with_code(code)
                        .boxed(),
                ));
            }
            r.bindings.push((
                binding.metadata.name.clone().unwrap_or_default(),
                binding.target.name.clone().unwrap_or_default(),
            ));
            Ok(())
        })
    }

    async fn patch_pod_status(
        &self,
        _namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> kube::Result<()> {
        self.with(|r| r.status_patches.push((name.to_string(), patch.clone())));
        Ok(())
    }

    async fn create_event(&self, event: &Event) -> kube::Result<()> {
        self.with(|r| r.events.push(event.clone()));
        Ok(())
    }
}

struct Harness {
    api: FakeApi,
    scheduler: Scheduler<FakeApi>,
    nodes: Vec<Arc<Node>>,
    pods: Vec<Arc<Pod>>,
    t0: Instant,
}

impl Harness {
    fn new(nodes: Vec<Node>, pods: Vec<Pod>) -> Self {
        let api = FakeApi::default();
        let scheduler = Scheduler::new(api.clone(), &SchedulerConfig::default());
        Self {
            api,
            scheduler,
            nodes: nodes.into_iter().map(Arc::new).collect(),
            pods: pods.into_iter().map(Arc::new).collect(),
            t0: Instant::now(),
        }
    }

    /// What the watches would deliver: every node and pod as the harness holds them.
    fn deliver(&mut self) {
        for node in &self.nodes {
            self.scheduler
                .node_event(watcher::Event::Apply((**node).clone()));
        }
        for pod in &self.pods {
            self.scheduler
                .pod_event(watcher::Event::Apply((**pod).clone()));
        }
    }

    async fn pass_at(
        &mut self,
        after: Duration,
    ) -> ferrolet_controlplane::scheduler::pass::PassReport {
        self.deliver();
        self.scheduler
            .schedule_pending(
                self.t0 + after,
                Timestamp::UNIX_EPOCH,
                &CancellationToken::new(),
            )
            .await
    }

    /// What the watch would show after the recorded bindings.
    fn apply_bindings(&mut self) {
        let bindings = self.api.bindings();
        for p in &mut self.pods {
            let name = p.metadata.name.clone().unwrap_or_default();
            if let Some((_, node)) = bindings.iter().find(|(pod, _)| *pod == name) {
                let mut bound = (**p).clone();
                bound.spec.get_or_insert_with(Default::default).node_name = Some(node.clone());
                *p = Arc::new(bound);
            }
        }
    }
}

#[tokio::test]
async fn a_burst_does_not_overcommit_a_node_before_the_watch_catches_up() {
    let small = node("n1").allocatable(&[("cpu", "2"), ("memory", "4Gi"), ("pods", "10")]);
    let pods = (0..3)
        .map(|i| pod(&format!("p{i}"), &[("cpu", "1")]))
        .collect();
    let mut h = Harness::new(vec![small], pods);

    let report = h.pass_at(Duration::ZERO).await;
    assert_eq!(report.bound.len(), 2);
    assert_eq!(report.failed, vec!["default/p2"]);
    assert_eq!(
        h.api.bindings(),
        vec![("p0".into(), "n1".into()), ("p1".into(), "n1".into())]
    );

    // The watch has not delivered the bindings yet: the assumed pods still count, and the
    // bound pods are not bound twice.
    h.scheduler.cluster_changed();
    let report = h.pass_at(Duration::from_secs(2)).await;
    assert_eq!(report.failed, vec!["default/p2"]);
    assert!(report.bound.is_empty());
    assert_eq!(h.api.bindings().len(), 2);

    let events = h.api.events();
    assert!(events.contains(&(
        "p0".into(),
        "Scheduled".into(),
        "Successfully assigned default/p0 to n1".into()
    )));
    assert!(events.contains(&(
        "p2".into(),
        "FailedScheduling".into(),
        "0/1 nodes are available: 1 Insufficient cpu.".into()
    )));
}

#[tokio::test]
async fn an_unschedulable_pod_gets_its_condition_and_is_retried_when_a_node_appears() {
    let mut h = Harness::new(
        vec![node("small").allocatable(&[("cpu", "1"), ("pods", "5")])],
        vec![pod("big", &[("cpu", "3")])],
    );
    h.pass_at(Duration::ZERO).await;
    let patches = h.api.patches();
    assert_eq!(patches.len(), 1);
    let condition = &patches[0].1["status"]["conditions"][0];
    assert_eq!(condition["type"], "PodScheduled");
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "Unschedulable");
    assert_eq!(
        condition["message"],
        "0/1 nodes are available: 1 Insufficient cpu."
    );

    // Nothing changed: no retry before the unschedulable timeout.
    assert!(h.pass_at(Duration::from_secs(5)).await.failed.is_empty());

    h.nodes.push(Arc::new(node("large")));
    h.scheduler.cluster_changed();
    assert!(
        h.pass_at(Duration::from_millis(500)).await.bound.is_empty(),
        "still in backoff"
    );
    let report = h.pass_at(Duration::from_secs(6)).await;
    assert_eq!(
        report.bound,
        vec![("default/big".to_string(), "large".to_string())]
    );
}

#[tokio::test]
async fn an_unchanged_failure_is_retried_periodically_without_repeating_writes() {
    let mut p = pod("p", &[("cpu", "8")]);
    let mut h = Harness::new(vec![node("n1")], vec![p.clone()]);
    h.pass_at(Duration::ZERO).await;
    assert_eq!(h.api.patches().len(), 1);
    assert_eq!(h.api.events().len(), 1);

    // The watch shows the condition the scheduler wrote.
    p.status = Some(PodStatus {
        conditions: Some(vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some("0/1 nodes are available: 1 Insufficient cpu.".into()),
            ..PodCondition::default()
        }]),
        ..PodStatus::default()
    });
    h.pods = vec![Arc::new(p)];
    let report = h.pass_at(Duration::from_secs(61)).await;
    assert_eq!(
        report.failed,
        vec!["default/p"],
        "retried after the timeout"
    );
    assert_eq!(h.api.patches().len(), 1, "same condition: no patch");
    assert_eq!(h.api.events().len(), 1, "same message: no new event");
}

#[tokio::test]
async fn pods_that_are_not_pending_for_this_scheduler_are_left_alone() {
    let mut terminating = pod("terminating", &[]);
    terminating.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
    );
    let mut gated = pod("gated", &[]);
    gated
        .spec
        .get_or_insert_with(Default::default)
        .scheduling_gates = Some(vec![k8s_openapi::api::core::v1::PodSchedulingGate {
        name: "wait".into(),
    }]);
    let pods = vec![
        pod("bound", &[]).node_name("n1"),
        pod("other", &[]).scheduler("my-scheduler"),
        pod("explicit", &[]).scheduler("default-scheduler"),
        terminating,
        gated,
    ];
    let mut h = Harness::new(vec![node("n1")], pods);
    let report = h.pass_at(Duration::ZERO).await;
    assert_eq!(
        report.bound,
        vec![("default/explicit".to_string(), "n1".to_string())]
    );
}

#[tokio::test]
async fn higher_priority_pods_are_placed_first() {
    let one_slot = node("n1").allocatable(&[("cpu", "1"), ("pods", "10")]);
    let pods = vec![
        pod("low", &[("cpu", "1")]),
        pod("high", &[("cpu", "1")]).priority(100),
    ];
    let mut h = Harness::new(vec![one_slot], pods);
    let report = h.pass_at(Duration::ZERO).await;
    assert_eq!(
        report.bound,
        vec![("default/high".to_string(), "n1".to_string())]
    );
    assert_eq!(report.failed, vec!["default/low"]);
}

#[tokio::test]
async fn a_refused_binding_backs_off_and_is_retried() {
    let mut h = Harness::new(vec![node("n1")], vec![pod("p", &[])]);
    h.api.with(|r| r.bind_error = Some((500, "InternalError")));
    let report = h.pass_at(Duration::ZERO).await;
    assert_eq!(report.failed, vec!["default/p"]);
    let patches = h.api.patches();
    assert_eq!(
        patches[0].1["status"]["conditions"][0]["reason"],
        "SchedulerError"
    );
    let events = h.api.events();
    assert_eq!(events[0].1, "FailedScheduling");
    assert!(
        events[0]
            .2
            .starts_with("running Bind plugin \"DefaultBinder\": "),
        "{}",
        events[0].2
    );

    // A conflict (bound elsewhere meanwhile) only backs off: no condition, no event.
    h.api.with(|r| r.bind_error = Some((409, "Conflict")));
    h.scheduler.cluster_changed();
    h.pass_at(Duration::from_secs(1)).await;
    assert_eq!(h.api.patches().len(), 1);
    assert_eq!(h.api.events().len(), 1);

    h.api.with(|r| r.bind_error = None);
    h.scheduler.cluster_changed();
    let report = h.pass_at(Duration::from_secs(4)).await;
    assert_eq!(report.bound.len(), 1);
}

#[tokio::test]
async fn once_the_watch_shows_the_binding_the_pod_counts_from_the_cache() {
    let small = node("n1").allocatable(&[("cpu", "1"), ("pods", "10")]);
    let mut h = Harness::new(vec![small], vec![pod("a", &[("cpu", "1")])]);
    h.pass_at(Duration::ZERO).await;
    h.apply_bindings();
    h.pods.push(Arc::new(pod("b", &[("cpu", "1")])));
    let report = h.pass_at(Duration::from_secs(1)).await;
    assert!(report.bound.is_empty());
    assert_eq!(report.failed, vec!["default/b"]);
}

#[tokio::test]
async fn a_cancelled_pass_stops_before_the_next_pod() {
    let mut h = Harness::new(vec![node("n1")], vec![pod("a", &[]), pod("b", &[])]);
    let cancel = CancellationToken::new();
    cancel.cancel();
    h.deliver();
    let report = h
        .scheduler
        .schedule_pending(h.t0, Timestamp::UNIX_EPOCH, &cancel)
        .await;
    assert!(report.bound.is_empty());
    assert!(h.api.bindings().is_empty());
}

#[tokio::test]
async fn one_pass_binds_every_due_pod_and_spreads_them() {
    let nodes = vec![node("n1"), node("n2"), node("n3")];
    let pods = (0..60)
        .map(|i| pod(&format!("p{i:02}"), &[("cpu", "100m")]))
        .collect();
    let mut h = Harness::new(nodes, pods);
    let report = h.pass_at(Duration::ZERO).await;
    assert_eq!(report.bound.len(), 60, "{report:?}");
    assert!(report.failed.is_empty());
    let bindings = h.api.bindings();
    for n in ["n1", "n2", "n3"] {
        let on_node = bindings.iter().filter(|(_, node)| node == n).count();
        assert_eq!(on_node, 20, "{n}: {bindings:?}");
    }
    assert_eq!(h.scheduler.cache().assumed_count(), 60);
    h.apply_bindings();
    h.deliver();
    assert_eq!(
        h.scheduler.cache().assumed_count(),
        0,
        "the watch confirmed them"
    );
    let requested: Vec<i64> = h
        .scheduler
        .cache()
        .nodes()
        .iter()
        .map(|n| n.requested().milli_cpu)
        .collect();
    assert_eq!(requested, [2000, 2000, 2000], "each pod counted once");
}

#[tokio::test]
async fn a_bound_pod_is_not_bound_again_however_long_the_watch_lags() {
    let mut h = Harness::new(vec![node("n1")], vec![pod("p", &[("cpu", "1")])]);
    assert_eq!(h.pass_at(Duration::ZERO).await.bound.len(), 1);
    // The watch keeps showing the pod unbound, well past any assume timeout.
    for secs in [1, 31, 120, 600] {
        h.scheduler.cluster_changed();
        let report = h.pass_at(Duration::from_secs(secs)).await;
        assert!(
            report.bound.is_empty() && report.failed.is_empty(),
            "{report:?}"
        );
    }
    assert_eq!(h.api.with(|r| r.attempts), 1);
    assert_eq!(h.scheduler.cache().assumed_count(), 1);
    assert_eq!(h.scheduler.cache().nodes()[0].requested().milli_cpu, 1000);
    h.apply_bindings();
    h.deliver();
    assert_eq!(h.scheduler.cache().assumed_count(), 0);
    assert_eq!(h.scheduler.cache().nodes()[0].requested().milli_cpu, 1000);
}

#[tokio::test]
async fn a_conflict_because_the_pod_has_a_node_counts_as_bound() {
    let small = |name: &str| node(name).allocatable(&[("cpu", "1"), ("pods", "10")]);
    let mut h = Harness::new(
        vec![small("n1"), small("n2")],
        vec![pod("p", &[("cpu", "1")])],
    );
    h.api.with(|r| {
        r.bind_error = Some((409, "Conflict"));
        r.bind_error_message = Some("pod p is already assigned to node \"n2\"".into());
    });
    let report = h.pass_at(Duration::ZERO).await;
    assert!(
        report.bound.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );
    assert!(h.api.events().is_empty(), "no FailedScheduling");
    assert!(h.api.patches().is_empty(), "no condition");
    h.scheduler.cluster_changed();
    h.pass_at(Duration::from_secs(5)).await;
    assert_eq!(h.api.with(|r| r.attempts), 1, "not bound again");

    // The watch shows where it really is: it counts there, and only there.
    h.pods = vec![Arc::new(pod("p", &[("cpu", "1")]).node_name("n2"))];
    h.deliver();
    let requested: Vec<(String, i64)> = h
        .scheduler
        .cache()
        .nodes()
        .iter()
        .map(|n| (n.name().to_owned(), n.requested().milli_cpu))
        .collect();
    assert_eq!(requested, [("n1".into(), 0), ("n2".into(), 1000)]);
    assert_eq!(h.scheduler.cache().assumed_count(), 0);
}

#[tokio::test]
async fn a_deleted_pod_frees_its_node() {
    let small = node("n1").allocatable(&[("cpu", "1"), ("pods", "10")]);
    let mut h = Harness::new(vec![small], vec![pod("a", &[("cpu", "1")]).node_name("n1")]);
    h.pods.push(Arc::new(pod("b", &[("cpu", "1")])));
    assert_eq!(h.pass_at(Duration::ZERO).await.failed, vec!["default/b"]);
    let a = (*h.pods.remove(0)).clone();
    assert!(h.scheduler.pod_event(watcher::Event::Delete(a)));
    h.scheduler.cluster_changed();
    let report = h.pass_at(Duration::from_secs(1)).await;
    assert_eq!(
        report.bound,
        vec![("default/b".to_string(), "n1".to_string())]
    );
}

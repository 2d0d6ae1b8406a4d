//! `pod_status` (upstream `generateAPIPodStatus`, `convertToAPIContainerStatuses`,
//! `status/generate.go`, the status manager's transition rules).

#[path = "status_common.rs"]
mod common;

use std::collections::BTreeMap;

use common::{
    at, container, exited, pod, running, runtime, sandbox, sidecar, unknown, with_readiness_probe,
    with_startup_probe,
};
use ferrolet_agent::status::time::{api_time, format_rfc3339};
use ferrolet_agent::status::{PodRuntimeStatus, StatusContext, WaitingReason, pod_status};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodCondition, PodReadinessGate,
    PodStatus, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

const NOW: i64 = 100;

fn ctx() -> StatusContext {
    let mut ctx = StatusContext::new("containerd", at(NOW));
    ctx.host_ips = vec!["192.168.1.10".to_owned()];
    ctx
}

fn condition<'a>(status: &'a PodStatus, type_: &str) -> &'a PodCondition {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("condition {type_}"))
}

/// (status, reason, message) of a condition.
fn cond(status: &PodStatus, type_: &str) -> (String, Option<String>, Option<String>) {
    let c = condition(status, type_);
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn app(status: &PodStatus, name: &str) -> ContainerStatus {
    status
        .container_statuses
        .iter()
        .chain(status.init_container_statuses.iter())
        .flatten()
        .find(|s| s.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("status of {name}"))
}

fn state(s: &ContainerStatus) -> ContainerState {
    s.state.clone().expect("state")
}

fn terminated(s: &ContainerStatus) -> ContainerStateTerminated {
    state(s).terminated.expect("terminated")
}

fn waiting_reason(s: &ContainerStatus) -> Option<String> {
    state(s).waiting.and_then(|w| w.reason)
}

/// An optional API time, as status fields hold it.
#[allow(clippy::unnecessary_wraps)] // Compared against `Option<Time>` fields everywhere.
fn t(ts: Timestamp) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> {
    Some(api_time(ts))
}

#[test]
fn new_pod_is_pending_with_default_waiting_reasons_and_conditions() {
    let p = pod("Always", vec![container("setup")], vec![container("app")]);
    let s = pod_status(&p, &PodRuntimeStatus::default(), &ctx());
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    assert_eq!(
        waiting_reason(&app(&s, "setup")).as_deref(),
        Some("PodInitializing")
    );
    assert_eq!(
        waiting_reason(&app(&s, "app")).as_deref(),
        Some("PodInitializing")
    );
    let types: Vec<&str> = s
        .conditions
        .iter()
        .flatten()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled"
        ]
    );
    assert_eq!(cond(&s, "PodReadyToStartContainers").0, "False");
    assert_eq!(
        cond(&s, "Initialized"),
        (
            "False".to_owned(),
            Some("ContainersNotInitialized".to_owned()),
            Some("containers with incomplete status: [setup]".to_owned())
        )
    );
    let not_ready = (
        "False".to_owned(),
        Some("ContainersNotReady".to_owned()),
        Some("containers with unready status: [app]".to_owned()),
    );
    assert_eq!(cond(&s, "Ready"), not_ready);
    assert_eq!(cond(&s, "ContainersReady"), not_ready);
    assert_eq!(cond(&s, "PodScheduled"), ("True".to_owned(), None, None));
    assert!(
        s.conditions
            .iter()
            .flatten()
            .all(|c| c.last_transition_time == t(at(NOW)))
    );
    assert_eq!(s.start_time, t(at(NOW)));
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    assert_eq!(s.host_ip.as_deref(), Some("192.168.1.10"));
    assert_eq!(s.pod_ip, None);

    let no_init = pod("Always", vec![], vec![container("app")]);
    let s = pod_status(&no_init, &runtime(vec![]), &ctx());
    assert_eq!(
        waiting_reason(&app(&s, "app")).as_deref(),
        Some("ContainerCreating")
    );
    assert_eq!(cond(&s, "PodReadyToStartContainers").0, "True");
    assert_eq!(cond(&s, "Initialized").0, "True");
}

#[test]
fn running_pod_reports_container_details_and_is_ready() {
    let p = pod("Always", vec![], vec![container("app")]);
    let mut instance = running("app", 2, 50);
    instance.started_at = Some(
        Timestamp::from_nanosecond(i128::from(at(50).as_second()) * 1_000_000_000 + 999)
            .expect("ts"),
    );
    let s = pod_status(&p, &runtime(vec![instance]), &ctx());
    assert_eq!(s.phase.as_deref(), Some("Running"));
    let c = app(&s, "app");
    assert_eq!(c.container_id.as_deref(), Some("containerd://app-2"));
    assert_eq!(c.image, "registry.local/app:1");
    assert_eq!(c.image_id, "registry.local/app@sha256:abc");
    assert_eq!(c.restart_count, 2);
    assert!(c.ready);
    assert_eq!(c.started, Some(true));
    assert_eq!(state(&c).running.and_then(|r| r.started_at), t(at(50)));
    for type_ in [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
    ] {
        assert_eq!(cond(&s, type_), ("True".to_owned(), None, None), "{type_}");
    }
    assert_eq!(s.pod_ip.as_deref(), Some("10.1.0.5"));
    // Timestamps serialize like the API: RFC 3339, whole seconds.
    let json = serde_json::to_value(&c).expect("json");
    assert_eq!(
        json["state"]["running"]["startedAt"],
        "2023-11-14T22:14:10Z"
    );
    assert_eq!(format_rfc3339(at(50)), "2023-11-14T22:14:10Z");
}

#[test]
fn readiness_and_startup_probes_gate_ready_and_started() {
    let p = pod(
        "Always",
        vec![],
        vec![
            with_readiness_probe(container("b")),
            with_startup_probe(container("a")),
            container("c"),
        ],
    );
    let rt = runtime(vec![
        running("a", 0, 1),
        running("b", 0, 1),
        running("c", 0, 1),
    ]);
    let s = pod_status(&p, &rt, &ctx());
    assert_eq!(app(&s, "a").started, Some(false));
    assert!(!app(&s, "a").ready, "not started yet");
    assert!(!app(&s, "b").ready, "readiness probe has not succeeded");
    assert!(app(&s, "c").ready);
    assert_eq!(
        cond(&s, "ContainersReady").2.as_deref(),
        Some("containers with unready status: [b a]"),
        "spec order"
    );
    // Regular containers are listed by name.
    let names: Vec<String> = s
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);

    let mut probed = ctx();
    probed.startup.insert("a-0".to_owned(), true);
    probed.readiness.insert("b-0".to_owned(), true);
    let s = pod_status(&p, &rt, &probed);
    assert!(app(&s, "a").ready && app(&s, "b").ready);
    assert_eq!(cond(&s, "Ready").0, "True");
}

#[test]
fn last_transition_time_is_kept_while_the_condition_does_not_change() {
    let p = pod("Always", vec![], vec![container("app")]);
    let mut first_ctx = StatusContext::new("containerd", at(10));
    first_ctx.host_ips = vec!["192.168.1.10".to_owned()];
    let first = pod_status(&p, &runtime(vec![running("app", 0, 5)]), &first_ctx);
    assert_eq!(condition(&first, "Ready").last_transition_time, t(at(10)));

    // Same state later: times kept, start time kept.
    let mut later = ctx();
    later.previous = Some(first.clone());
    let same = pod_status(&p, &runtime(vec![running("app", 0, 5)]), &later);
    assert_eq!(condition(&same, "Ready").last_transition_time, t(at(10)));
    assert_eq!(same.start_time, t(at(10)));
    assert_eq!(same, first);

    // The container crashed: Ready flips, its time moves; PodScheduled keeps its time.
    let crashed = pod_status(&p, &runtime(vec![exited("app", 0, 1, 5, 90)]), &later);
    assert_eq!(condition(&crashed, "Ready").status, "False");
    assert_eq!(
        condition(&crashed, "Ready").last_transition_time,
        t(at(NOW))
    );
    assert_eq!(
        condition(&crashed, "PodScheduled").last_transition_time,
        t(at(10))
    );
}

#[test]
fn last_state_and_restart_count_come_from_the_previous_attempt() {
    let p = pod("Always", vec![], vec![container("app")]);
    let rt = runtime(vec![
        exited("app", 0, 1, 1, 2),
        exited("app", 1, 137, 3, 4),
        running("app", 2, 5),
    ]);
    let c = app(&pod_status(&p, &rt, &ctx()), "app");
    assert_eq!(c.restart_count, 2);
    assert!(state(&c).running.is_some());
    let last = c.last_state.and_then(|s| s.terminated).expect("last state");
    assert_eq!(last.exit_code, 137);
    assert_eq!(last.container_id.as_deref(), Some("containerd://app-1"));
    assert_eq!(last.started_at, t(at(3)));
    assert_eq!(last.finished_at, t(at(4)));
}

#[test]
fn exit_codes_map_to_completed_error_and_oom_killed() {
    let p = pod(
        "Never",
        vec![],
        vec![
            container("ok"),
            container("bad"),
            container("oom"),
            container("bare"),
        ],
    );
    let mut oom = exited("oom", 0, 137, 1, 2);
    oom.reason = "OOMKilled".to_owned();
    let mut bare = exited("bare", 0, 3, 1, 2);
    bare.reason = String::new();
    let rt = runtime(vec![
        exited("ok", 0, 0, 1, 2),
        exited("bad", 0, 1, 1, 2),
        oom,
        bare,
    ]);
    let s = pod_status(&p, &rt, &ctx());
    let reason = |name: &str| {
        (
            terminated(&app(&s, name)).exit_code,
            terminated(&app(&s, name)).reason,
        )
    };
    assert_eq!(reason("ok"), (0, Some("Completed".to_owned())));
    assert_eq!(reason("bad"), (1, Some("Error".to_owned())));
    assert_eq!(reason("oom"), (137, Some("OOMKilled".to_owned())));
    assert_eq!(reason("bare"), (3, Some("Error".to_owned())));
    assert_eq!(s.phase.as_deref(), Some("Failed"));
    assert_eq!(
        cond(&s, "Ready"),
        ("False".to_owned(), Some("PodFailed".to_owned()), None)
    );
}

#[test]
fn termination_messages_follow_the_runtime_message_and_are_capped() {
    let spec = pod("Never", vec![], vec![container("a"), container("b")]);
    let mut with_message = exited("a", 0, 1, 1, 2);
    with_message.message = "runtime says".to_owned();
    let long = exited("b", 0, 1, 1, 2);
    let mut context = ctx();
    context
        .termination_messages
        .insert("a-0".to_owned(), "disk full".to_owned());
    context
        .termination_messages
        .insert("b-0".to_owned(), "é".repeat(4000));
    let status = pod_status(&spec, &runtime(vec![with_message, long]), &context);
    assert_eq!(
        terminated(&app(&status, "a")).message.as_deref(),
        Some("runtime says: disk full")
    );
    // 12 KiB shared by 2 containers, cut on a character boundary.
    let capped = terminated(&app(&status, "b")).message.expect("message");
    assert_eq!(capped.len(), 6144);
}

#[test]
fn waiting_reasons_show_for_containers_that_will_start() {
    let p = pod(
        "Always",
        vec![],
        vec![container("crash"), container("pull"), container("config")],
    );
    let rt = runtime(vec![exited("crash", 4, 1, 1, 2)]);
    let mut c = ctx();
    c.waiting.insert(
        "crash".to_owned(),
        WaitingReason::new(
            "CrashLoopBackOff",
            "back-off 1m20s restarting failed container=crash pod=web_default(uid-1)",
        ),
    );
    c.waiting.insert(
        "pull".to_owned(),
        WaitingReason::new("ErrImagePull", "not found"),
    );
    c.waiting.insert(
        "config".to_owned(),
        WaitingReason::new("CreateContainerConfigError", "secret \"x\" not found"),
    );
    let s = pod_status(&p, &rt, &c);
    let crash = app(&s, "crash");
    let waiting = state(&crash).waiting.expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        waiting.message.as_deref(),
        Some("back-off 1m20s restarting failed container=crash pod=web_default(uid-1)")
    );
    assert_eq!(
        crash
            .last_state
            .and_then(|s| s.terminated)
            .map(|t| t.exit_code),
        Some(1)
    );
    assert_eq!(crash.restart_count, 4);
    assert_eq!(
        waiting_reason(&app(&s, "pull")).as_deref(),
        Some("ErrImagePull")
    );
    assert_eq!(
        waiting_reason(&app(&s, "config")).as_deref(),
        Some("CreateContainerConfigError")
    );
    assert_eq!(s.phase.as_deref(), Some("Pending"));

    // Under Never an exited container is not restarted: its terminated state stays.
    let never = pod("Never", vec![], vec![container("crash")]);
    let s = pod_status(&never, &rt, &c);
    assert!(state(&app(&s, "crash")).terminated.is_some());
}

#[test]
fn finished_pod_keeps_its_final_status() {
    let p = pod("Never", vec![], vec![container("app")]);
    let done = pod_status(&p, &runtime(vec![exited("app", 0, 0, 1, 2)]), &ctx());
    assert_eq!(done.phase.as_deref(), Some("Succeeded"));
    assert_eq!(
        cond(&done, "Initialized"),
        ("True".to_owned(), Some("PodCompleted".to_owned()), None)
    );
    assert_eq!(
        cond(&done, "ContainersReady"),
        ("False".to_owned(), Some("PodCompleted".to_owned()), None)
    );

    // Later the runtime forgot the container and the sandbox: still Succeeded, same
    // container state, pod IP kept.
    let mut later = ctx();
    later.previous = Some(done.clone());
    let s = pod_status(&p, &PodRuntimeStatus::default(), &later);
    assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    assert_eq!(app(&s, "app"), app(&done, "app"));
    assert_eq!(s.pod_ip.as_deref(), Some("10.1.0.5"));

    // A terminal phase in the API status wins over anything computed.
    let mut api_failed = p.clone();
    api_failed.status = Some(PodStatus {
        phase: Some("Failed".to_owned()),
        reason: Some("Evicted".to_owned()),
        ..PodStatus::default()
    });
    let s = pod_status(&api_failed, &runtime(vec![running("app", 0, 1)]), &ctx());
    assert_eq!(s.phase.as_deref(), Some("Failed"));
    assert_eq!(s.reason.as_deref(), Some("Evicted"));
}

#[test]
fn terminated_container_may_not_come_back_under_never() {
    let p = pod("Never", vec![], vec![container("app"), container("side")]);
    let mut c = ctx();
    let previous = pod_status(
        &p,
        &runtime(vec![exited("app", 0, 0, 1, 2), running("side", 0, 1)]),
        &c,
    );
    c.previous = Some(previous.clone());
    // A runtime snapshot that shows the finished container running again is refused.
    let s = pod_status(
        &p,
        &runtime(vec![running("app", 1, 3), running("side", 0, 1)]),
        &c,
    );
    assert_eq!(s, previous);
}

#[test]
fn vanished_running_container_is_reported_as_terminated_last_state() {
    let p = pod("Always", vec![], vec![container("app")]);
    let mut c = ctx();
    c.previous = Some(pod_status(&p, &runtime(vec![running("app", 3, 1)]), &c));
    let s = pod_status(&p, &runtime(vec![]), &c);
    let app_status = app(&s, "app");
    assert_eq!(
        waiting_reason(&app_status).as_deref(),
        Some("ContainerCreating")
    );
    let last = app_status
        .last_state
        .and_then(|l| l.terminated)
        .expect("last");
    assert_eq!(last.reason.as_deref(), Some("ContainerStatusUnknown"));
    assert_eq!(last.exit_code, 137);
    assert_eq!(
        last.message.as_deref(),
        Some(
            "The container could not be located when the pod was deleted.  The container used to be Running"
        )
    );
    assert_eq!(app_status.restart_count, 4);
    assert_eq!(s.phase.as_deref(), Some("Running"));
}

#[test]
fn unknown_state_of_a_running_container_is_terminated_unknown() {
    let p = pod("Always", vec![], vec![container("app")]);
    let mut c = ctx();
    c.previous = Some(pod_status(&p, &runtime(vec![running("app", 1, 1)]), &c));
    let s = pod_status(&p, &runtime(vec![unknown("app", 1, 1)]), &c);
    let app_status = app(&s, "app");
    let done = terminated(&app_status);
    assert_eq!(done.reason.as_deref(), Some("ContainerStatusUnknown"));
    assert_eq!(
        done.message.as_deref(),
        Some("The container could not be located when the pod was terminated")
    );
    assert_eq!(app_status.restart_count, 2);
}

#[test]
fn init_containers_and_sidecars() {
    let p = pod(
        "Always",
        vec![container("setup"), sidecar("proxy")],
        vec![container("app")],
    );
    let rt = runtime(vec![
        exited("setup", 0, 0, 1, 2),
        running("proxy", 0, 3),
        running("app", 0, 4),
    ]);
    let s = pod_status(&p, &rt, &ctx());
    let setup = app(&s, "setup");
    assert!(setup.ready, "a succeeded init container is ready");
    assert_eq!(setup.started, Some(false));
    let proxy = app(&s, "proxy");
    assert!(proxy.ready && proxy.started == Some(true));
    let names: Vec<String> = s
        .init_container_statuses
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["setup", "proxy"], "init containers keep spec order");
    assert_eq!(cond(&s, "Initialized").0, "True");
    assert_eq!(cond(&s, "Ready").0, "True");
    assert_eq!(s.phase.as_deref(), Some("Running"));

    // The init container was garbage-collected after the app was created: Completed.
    let rt = runtime(vec![running("proxy", 0, 3), running("app", 0, 4)]);
    let s = pod_status(&p, &rt, &ctx());
    let setup = terminated(&app(&s, "setup"));
    assert_eq!(
        (setup.exit_code, setup.reason.as_deref()),
        (0, Some("Completed"))
    );
}

#[test]
fn pod_ips_follow_the_node_family_and_host_network_uses_node_ips() {
    let p = pod("Always", vec![], vec![container("app")]);
    let mut rt = runtime(vec![running("app", 0, 1)]);
    rt.sandboxes[0].ips = Some(vec!["fd00::5".to_owned(), "10.1.0.5".to_owned()]);
    let s = pod_status(&p, &rt, &ctx());
    let ips: Vec<String> = s.pod_ips.iter().flatten().map(|ip| ip.ip.clone()).collect();
    assert_eq!(ips, ["10.1.0.5", "fd00::5"]);
    assert_eq!(s.pod_ip.as_deref(), Some("10.1.0.5"));

    let mut v6 = ctx();
    v6.host_ips = vec!["fd00::1".to_owned(), "192.168.1.10".to_owned()];
    let s = pod_status(&p, &rt, &v6);
    assert_eq!(s.pod_ip.as_deref(), Some("fd00::5"));
    assert_eq!(s.host_ips.iter().flatten().count(), 2);

    let mut host = p.clone();
    host.spec.as_mut().expect("spec").host_network = Some(true);
    let mut host_rt = runtime(vec![running("app", 0, 1)]);
    host_rt.sandboxes[0].host_network = true;
    host_rt.sandboxes[0].ips = None;
    let s = pod_status(&host, &host_rt, &v6);
    let ips: Vec<String> = s.pod_ips.iter().flatten().map(|ip| ip.ip.clone()).collect();
    assert_eq!(ips, ["fd00::1", "192.168.1.10"]);
}

#[test]
fn qos_class_is_computed_unless_the_api_set_it() {
    let limits = |cpu: &str, memory: &str| ResourceRequirements {
        limits: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])),
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("0.5".to_owned())),
            ("memory".to_owned(), Quantity("128Mi".to_owned())),
        ])),
        ..ResourceRequirements::default()
    };
    let with = |r: ResourceRequirements| {
        let mut c = container("app");
        c.resources = Some(r);
        pod("Always", vec![], vec![c])
    };
    let qos = |p: &Pod| pod_status(p, &runtime(vec![]), &ctx()).qos_class;
    assert_eq!(
        qos(&with(limits("500m", "134217728"))).as_deref(),
        Some("Guaranteed")
    );
    assert_eq!(
        qos(&with(limits("1", "128Mi"))).as_deref(),
        Some("Burstable")
    );
    let mut set = with(limits("1", "128Mi"));
    set.status = Some(PodStatus {
        qos_class: Some("Guaranteed".to_owned()),
        ..PodStatus::default()
    });
    assert_eq!(qos(&set).as_deref(), Some("Guaranteed"));
}

#[test]
fn foreign_conditions_and_readiness_gates() {
    let mut p = pod("Always", vec![], vec![container("app")]);
    p.spec.as_mut().expect("spec").readiness_gates = Some(vec![PodReadinessGate {
        condition_type: "example.com/lb".to_owned(),
    }]);
    let rt = runtime(vec![running("app", 0, 1)]);
    let s = pod_status(&p, &rt, &ctx());
    assert_eq!(
        cond(&s, "Ready"),
        (
            "False".to_owned(),
            Some("ReadinessGatesNotReady".to_owned()),
            Some(
                "corresponding condition of pod readiness gate \"example.com/lb\" does not exist."
                    .to_owned()
            )
        )
    );
    assert_eq!(cond(&s, "ContainersReady").0, "True");

    let gate = PodCondition {
        type_: "example.com/lb".to_owned(),
        status: "True".to_owned(),
        last_transition_time: t(at(3)),
        ..PodCondition::default()
    };
    p.status = Some(PodStatus {
        conditions: Some(vec![gate.clone()]),
        ..PodStatus::default()
    });
    let s = pod_status(&p, &rt, &ctx());
    assert_eq!(cond(&s, "Ready").0, "True");
    assert_eq!(
        s.conditions.as_ref().map(|c| c[0].clone()),
        Some(gate),
        "kept first, untouched"
    );
}

#[test]
fn sandbox_recreation_is_not_ready_to_start_containers() {
    let p = pod("Always", vec![], vec![container("app")]);
    let rt = PodRuntimeStatus {
        sandboxes: vec![sandbox("sb-1", 0, false, 0)],
        containers: vec![exited("app", 0, 137, 1, 2)],
    };
    let s = pod_status(&p, &rt, &ctx());
    assert_eq!(cond(&s, "PodReadyToStartContainers").0, "False");
    assert_eq!(s.phase.as_deref(), Some("Running"));
}

#[test]
fn terminated_pod_marks_unobserved_containers_unknown_and_fails() {
    use ferrolet_agent::status::terminate_pod_status;

    let mut p = pod("Always", vec![], vec![container("app"), container("log")]);
    let running_status = pod_status(
        &p,
        &runtime(vec![running("app", 0, 1), exited("log", 0, 0, 1, 2)]),
        &ctx(),
    );
    p.status = Some(running_status.clone());
    let done = terminate_pod_status(&p, &running_status);
    assert_eq!(done.phase.as_deref(), Some("Failed"));
    let app_done = terminated(&app(&done, "app"));
    assert_eq!(
        (app_done.exit_code, app_done.reason.as_deref()),
        (137, Some("ContainerStatusUnknown"))
    );
    assert_eq!(
        terminated(&app(&done, "log")).reason.as_deref(),
        Some("Completed"),
        "observed terminations are kept"
    );

    // Never initialized: app containers stay waiting; only init containers that started, or
    // the first one, are marked.
    let mut init = pod(
        "Always",
        vec![container("setup"), container("migrate")],
        vec![container("app")],
    );
    let pending = pod_status(&init, &runtime(vec![]), &ctx());
    init.status = Some(pending.clone());
    let done = terminate_pod_status(&init, &pending);
    assert_eq!(
        terminated(&app(&done, "setup")).reason.as_deref(),
        Some("ContainerStatusUnknown")
    );
    assert!(state(&app(&done, "migrate")).waiting.is_some());
    assert!(state(&app(&done, "app")).waiting.is_some());

    // A terminal phase stays.
    let succeeded = PodStatus {
        phase: Some("Succeeded".to_owned()),
        ..PodStatus::default()
    };
    assert_eq!(
        terminate_pod_status(&init, &succeeded).phase.as_deref(),
        Some("Succeeded")
    );
}

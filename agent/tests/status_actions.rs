//! `compute_pod_actions` (upstream `computePodActions` / `computeInitContainerActions`).

#[path = "status_common.rs"]
mod common;

use std::time::Duration;

use common::{
    at, container, created, exited, pod, running, runtime, sandbox, sidecar, unknown,
    with_startup_probe,
};
use ferrolet_agent::status::restart::container_hash;
use ferrolet_agent::status::{
    ContainerBackoff, ContainerKey, KillReason, PodActions, PodRuntimeStatus, ProbeResults,
    StartReason, compute_pod_actions, compute_pod_actions_with_probes,
};
use k8s_openapi::api::core::v1::Pod;

fn actions(p: &Pod, rt: &PodRuntimeStatus) -> PodActions {
    compute_pod_actions(p, rt, &ContainerBackoff::new(), at(1000))
}

fn names(starts: &[ferrolet_agent::status::ContainerStart]) -> Vec<&str> {
    starts.iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn fresh_pod_creates_the_sandbox_then_the_first_init_container() {
    let p = pod(
        "Always",
        vec![container("setup"), container("migrate")],
        vec![container("app")],
    );
    let a = actions(&p, &PodRuntimeStatus::default());
    assert!(a.create_sandbox);
    assert!(
        a.kill_pod,
        "nothing to kill, but upstream sets KillPod with CreateSandbox"
    );
    assert_eq!(a.attempt, 0);
    assert_eq!(a.sandbox_id, None);
    assert_eq!(names(&a.init_containers_to_start), ["setup"]);
    assert_eq!(
        a.next_init_container().map(|s| s.reason),
        Some(StartReason::NotStarted)
    );
    assert!(a.containers_to_start.is_empty());
}

#[test]
fn fresh_pod_without_init_containers_starts_every_container() {
    let p = pod("Always", vec![], vec![container("app"), container("log")]);
    let a = actions(&p, &PodRuntimeStatus::default());
    assert!(a.create_sandbox);
    assert_eq!(names(&a.containers_to_start), ["app", "log"]);
    assert_eq!(
        a.containers_to_start
            .iter()
            .map(|s| s.index)
            .collect::<Vec<_>>(),
        [0, 1]
    );
}

#[test]
fn init_containers_run_one_at_a_time_in_order() {
    let p = pod(
        "Always",
        vec![container("setup"), container("migrate")],
        vec![container("app")],
    );
    // Sandbox ready, nothing started yet.
    let a = actions(&p, &runtime(vec![]));
    assert!(!a.create_sandbox && !a.kill_pod);
    assert_eq!(names(&a.init_containers_to_start), ["setup"]);

    // setup is running: wait.
    let a = actions(&p, &runtime(vec![running("setup", 0, 1)]));
    assert!(a.init_containers_to_start.is_empty() && a.containers_to_start.is_empty());
    assert!(!a.kill_pod);

    // setup succeeded: migrate next.
    let a = actions(&p, &runtime(vec![exited("setup", 0, 0, 1, 2)]));
    assert_eq!(names(&a.init_containers_to_start), ["migrate"]);
    assert!(a.containers_to_start.is_empty());
}

#[test]
fn finished_init_starts_all_app_containers() {
    let p = pod(
        "Always",
        vec![container("setup"), container("migrate")],
        vec![container("app"), container("log")],
    );
    let rt = runtime(vec![
        exited("setup", 0, 0, 1, 2),
        exited("migrate", 0, 0, 3, 4),
    ]);
    let a = actions(&p, &rt);
    assert!(a.init_containers_to_start.is_empty());
    assert_eq!(names(&a.containers_to_start), ["app", "log"]);
    assert!(
        a.containers_to_start
            .iter()
            .all(|s| s.reason == StartReason::NotStarted)
    );
    assert!(!a.kill_pod && !a.create_sandbox);
}

#[test]
fn failed_init_container_under_never_fails_the_pod() {
    let p = pod("Never", vec![container("setup")], vec![container("app")]);
    let a = actions(&p, &runtime(vec![exited("setup", 0, 1, 1, 2)]));
    assert!(a.init_failed);
    assert!(a.kill_pod);
    assert!(a.init_containers_to_start.is_empty() && a.containers_to_start.is_empty());
}

#[test]
fn failed_init_container_under_on_failure_is_restarted_after_backoff() {
    let p = pod(
        "OnFailure",
        vec![container("setup")],
        vec![container("app")],
    );
    let rt = runtime(vec![exited("setup", 0, 1, 1, 2)]);
    let mut backoff = ContainerBackoff::new();
    backoff.next_delay(ContainerKey::new("uid-1", "setup"), at(1), at(1));
    let a = compute_pod_actions(&p, &rt, &backoff, at(5));
    assert!(!a.init_failed && !a.kill_pod);
    let start = a.next_init_container().expect("setup restarts");
    assert_eq!(start.name, "setup");
    assert_eq!(start.reason, StartReason::Exited);
    assert_eq!(start.last_finished, Some(at(2)));
    assert_eq!(start.backoff, Some(Duration::from_secs(7)));
}

#[test]
fn exited_app_container_under_always_restarts_after_backoff() {
    let p = pod("Always", vec![], vec![container("app")]);
    let rt = runtime(vec![exited("app", 3, 1, 10, 20)]);
    let mut backoff = ContainerBackoff::new();
    backoff.next_delay(ContainerKey::new("uid-1", "app"), at(9), at(9));
    backoff.next_delay(ContainerKey::new("uid-1", "app"), at(10), at(10));

    let waiting = compute_pod_actions(&p, &rt, &backoff, at(25));
    assert_eq!(names(&waiting.containers_to_start), ["app"]);
    let start = &waiting.containers_to_start[0];
    assert_eq!(start.reason, StartReason::Exited);
    assert_eq!(start.backoff, Some(Duration::from_secs(15)));
    assert!(!waiting.kill_pod);

    let ready = compute_pod_actions(&p, &rt, &backoff, at(40));
    assert_eq!(ready.containers_to_start[0].backoff, None);
}

#[test]
fn exited_app_container_under_never_is_left_alone() {
    let p = pod("Never", vec![], vec![container("app")]);
    let a = actions(&p, &runtime(vec![exited("app", 0, 1, 10, 20)]));
    assert!(a.containers_to_start.is_empty());
    assert!(a.containers_to_kill.is_empty());
    // Nothing runs and nothing will: the sandbox is stopped.
    assert!(a.kill_pod);
    assert!(!a.create_sandbox);
}

#[test]
fn on_failure_restarts_only_failed_containers() {
    let p = pod("OnFailure", vec![], vec![container("ok"), container("bad")]);
    let rt = runtime(vec![exited("ok", 0, 0, 1, 2), exited("bad", 0, 2, 1, 2)]);
    let a = actions(&p, &rt);
    assert_eq!(names(&a.containers_to_start), ["bad"]);
    assert!(!a.kill_pod);
}

#[test]
fn running_containers_are_kept() {
    let p = pod("Always", vec![], vec![container("app")]);
    let a = actions(&p, &runtime(vec![running("app", 0, 1)]));
    assert_eq!(
        a,
        PodActions {
            sandbox_id: Some("sb-1".to_owned()),
            ..PodActions::default()
        }
    );
}

#[test]
fn dead_sandbox_recreates_everything() {
    let p = pod("Always", vec![container("setup")], vec![container("app")]);
    let rt = PodRuntimeStatus {
        sandboxes: vec![sandbox("sb-1", 0, false, 0)],
        containers: vec![exited("setup", 0, 0, 1, 2), running("app", 0, 3)],
    };
    let a = actions(&p, &rt);
    assert!(a.create_sandbox && a.kill_pod);
    assert_eq!(a.attempt, 1);
    assert_eq!(a.sandbox_id.as_deref(), Some("sb-1"));
    assert_eq!(names(&a.init_containers_to_start), ["setup"]);
    assert_eq!(
        a.init_containers_to_start[0].reason,
        StartReason::SandboxChanged
    );
    assert!(a.containers_to_start.is_empty());

    let no_init = pod("Always", vec![], vec![container("app"), container("log")]);
    let a = actions(&no_init, &rt);
    assert_eq!(names(&a.containers_to_start), ["app", "log"]);
}

#[test]
fn dead_sandbox_of_a_finished_never_pod_is_not_recreated() {
    let p = pod("Never", vec![], vec![container("app")]);
    let rt = PodRuntimeStatus {
        sandboxes: vec![sandbox("sb-1", 0, false, 0)],
        containers: vec![exited("app", 0, 0, 1, 2)],
    };
    let a = actions(&p, &rt);
    assert!(a.kill_pod);
    assert!(!a.create_sandbox);
    assert!(a.containers_to_start.is_empty());
}

#[test]
fn dead_sandbox_under_on_failure_skips_succeeded_containers() {
    let p = pod("OnFailure", vec![], vec![container("ok"), container("bad")]);
    let rt = PodRuntimeStatus {
        sandboxes: vec![sandbox("sb-1", 2, false, 0)],
        containers: vec![exited("ok", 0, 0, 1, 2), exited("bad", 0, 1, 1, 2)],
    };
    let a = actions(&p, &rt);
    assert!(a.create_sandbox);
    assert_eq!(a.attempt, 3);
    assert_eq!(names(&a.containers_to_start), ["bad"]);

    let all_done = PodRuntimeStatus {
        containers: vec![exited("ok", 0, 0, 1, 2), exited("bad", 0, 0, 1, 2)],
        ..rt
    };
    let a = actions(&p, &all_done);
    assert!(a.kill_pod && !a.create_sandbox);
}

#[test]
fn sandbox_without_ip_or_with_wrong_network_mode_is_replaced() {
    let p = pod("Always", vec![], vec![container("app")]);
    let mut no_ip = runtime(vec![running("app", 0, 1)]);
    no_ip.sandboxes[0].ips = Some(vec![]);
    let a = actions(&p, &no_ip);
    assert!(a.create_sandbox);
    assert_eq!(a.sandbox_id.as_deref(), Some("sb-1"));

    let mut host = runtime(vec![running("app", 0, 1)]);
    host.sandboxes[0].host_network = true;
    let a = actions(&p, &host);
    assert!(a.create_sandbox);
    assert_eq!(a.sandbox_id, None);

    let mut two = runtime(vec![running("app", 0, 1)]);
    two.sandboxes.push(sandbox("sb-2", 1, true, 5));
    let a = actions(&p, &two);
    assert!(a.create_sandbox);
    assert_eq!(a.sandbox_id.as_deref(), Some("sb-2"));
    assert_eq!(a.attempt, 2);
}

#[test]
fn changed_spec_kills_and_restarts_the_container() {
    let p = pod("Never", vec![], vec![container("app")]);
    let mut old = running("app", 0, 1);
    old.hash = Some(container_hash(&container("app")) ^ 1);
    let a = actions(&p, &runtime(vec![old]));
    assert_eq!(a.containers_to_kill.len(), 1);
    let kill = &a.containers_to_kill[0];
    assert_eq!(kill.container_id, "app-0");
    assert_eq!(kill.reason, KillReason::SpecChanged);
    assert_eq!(
        kill.message,
        "Container app definition changed, will be restarted"
    );
    assert_eq!(names(&a.containers_to_start), ["app"]);
    assert_eq!(a.containers_to_start[0].reason, StartReason::SpecChanged);

    let mut same = running("app", 0, 1);
    same.hash = Some(container_hash(&container("app")));
    let a = actions(&p, &runtime(vec![same]));
    assert!(a.containers_to_kill.is_empty() && a.containers_to_start.is_empty());
}

#[test]
fn liveness_failure_kills_and_restarts_per_policy() {
    let probes = ProbeResults {
        liveness: [("app-0".to_owned(), false)].into(),
        ..ProbeResults::default()
    };
    let rt = runtime(vec![running("app", 0, 1)]);
    let always = pod("Always", vec![], vec![container("app")]);
    let a = compute_pod_actions_with_probes(&always, &rt, &probes, &ContainerBackoff::new(), at(9));
    assert_eq!(a.containers_to_kill[0].reason, KillReason::LivenessProbe);
    assert_eq!(
        a.containers_to_kill[0].message,
        "Container app failed liveness probe, will be restarted"
    );
    assert_eq!(
        a.containers_to_start[0].reason,
        StartReason::LivenessProbeFailed
    );

    let never = pod("Never", vec![], vec![container("app")]);
    let a = compute_pod_actions_with_probes(&never, &rt, &probes, &ContainerBackoff::new(), at(9));
    assert_eq!(
        a.containers_to_kill[0].message,
        "Container app failed liveness probe"
    );
    assert!(a.containers_to_start.is_empty());
    assert!(a.kill_pod, "nothing kept and nothing to start");
}

#[test]
fn unknown_and_stuck_containers_are_restarted() {
    let p = pod("Never", vec![], vec![container("a"), container("b")]);
    let a = actions(&p, &runtime(vec![unknown("a", 0, 1), created("b", 0, 1)]));
    assert_eq!(names(&a.containers_to_start), ["a", "b"]);
    assert_eq!(a.containers_to_start[0].reason, StartReason::UnknownState);
    assert_eq!(a.containers_to_start[1].reason, StartReason::StuckCreated);
    assert_eq!(a.containers_to_kill.len(), 1);
    assert_eq!(a.containers_to_kill[0].reason, KillReason::Unknown);
    assert_eq!(
        a.containers_to_kill[0].message,
        "Container is in \"unknown\" state, try killing it before restart"
    );
}

#[test]
fn sidecar_starts_before_later_init_containers_and_keeps_running() {
    let p = pod(
        "Always",
        vec![sidecar("proxy"), container("setup")],
        vec![container("app")],
    );
    // Nothing yet: the sidecar first.
    let a = actions(&p, &runtime(vec![]));
    assert_eq!(names(&a.init_containers_to_start), ["proxy"]);

    // The sidecar runs (no startup probe, so it has started): the next init container.
    let a = actions(&p, &runtime(vec![running("proxy", 0, 1)]));
    assert_eq!(names(&a.init_containers_to_start), ["setup"]);
    assert!(a.containers_to_start.is_empty());

    // Init done: the app starts, the sidecar is kept.
    let rt = runtime(vec![running("proxy", 0, 1), exited("setup", 0, 0, 2, 3)]);
    let a = actions(&p, &rt);
    assert!(a.init_containers_to_start.is_empty());
    assert_eq!(names(&a.containers_to_start), ["app"]);

    // The sidecar crashed while the app runs: restarted like an app container.
    let rt = runtime(vec![
        exited("proxy", 0, 1, 1, 50),
        exited("setup", 0, 0, 2, 3),
        running("app", 0, 4),
    ]);
    let a = actions(&p, &rt);
    assert_eq!(names(&a.init_containers_to_start), ["proxy"]);
    assert_eq!(a.init_containers_to_start[0].reason, StartReason::Exited);
    assert!(a.containers_to_start.is_empty());
    assert!(!a.kill_pod);

    // Its instances vanished after initialization: started again; setup is not rerun.
    let rt = runtime(vec![running("app", 0, 4)]);
    let a = actions(&p, &rt);
    assert_eq!(names(&a.init_containers_to_start), ["proxy"]);
}

#[test]
fn sidecar_with_startup_probe_gates_the_next_init_container() {
    let p = pod(
        "Always",
        vec![with_startup_probe(sidecar("proxy")), container("setup")],
        vec![container("app")],
    );
    let rt = runtime(vec![running("proxy", 0, 1)]);
    let backoff = ContainerBackoff::new();
    let a = compute_pod_actions_with_probes(&p, &rt, &ProbeResults::default(), &backoff, at(5));
    assert!(
        a.init_containers_to_start.is_empty(),
        "startup probe has not run"
    );

    let passed = ProbeResults {
        startup: [("proxy-0".to_owned(), true)].into(),
        ..ProbeResults::default()
    };
    let a = compute_pod_actions_with_probes(&p, &rt, &passed, &backoff, at(5));
    assert_eq!(names(&a.init_containers_to_start), ["setup"]);

    let failed = ProbeResults {
        startup: [("proxy-0".to_owned(), false)].into(),
        ..ProbeResults::default()
    };
    let a = compute_pod_actions_with_probes(&p, &rt, &failed, &backoff, at(5));
    assert_eq!(a.containers_to_kill[0].reason, KillReason::StartupProbe);
    assert_eq!(
        a.containers_to_kill[0].message,
        "Init container proxy failed startup probe"
    );
    assert_eq!(names(&a.init_containers_to_start), ["proxy"]);
}

#[test]
fn sidecars_are_not_restarted_only_to_keep_a_finished_pod_alive() {
    let p = pod("Never", vec![sidecar("proxy")], vec![container("app")]);
    // The app finished under Never; the sidecar still runs: the pod is stopped.
    let rt = runtime(vec![running("proxy", 0, 1), exited("app", 0, 0, 2, 8)]);
    let a = actions(&p, &rt);
    assert!(a.kill_pod);
    assert!(a.init_containers_to_start.is_empty());
}

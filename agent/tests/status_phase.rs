//! The pod phase (upstream `getPhase`) over restart policies, exit codes, init containers and
//! sidecars.

#[path = "status_common.rs"]
mod common;

use common::{container, pod, sidecar};
use ferrolet_agent::status::PodPhase;
use ferrolet_agent::status::phase::get_phase;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus,
};

fn status(name: &str, state: ContainerState) -> ContainerStatus {
    ContainerStatus {
        name: name.to_owned(),
        state: Some(state),
        last_state: Some(ContainerState::default()),
        ..ContainerStatus::default()
    }
}

fn run(name: &str) -> ContainerStatus {
    ContainerStatus {
        started: Some(true),
        ..status(
            name,
            ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..ContainerState::default()
            },
        )
    }
}

fn terminated_state(code: i32) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    }
}

fn done(name: &str, code: i32) -> ContainerStatus {
    status(name, terminated_state(code))
}

fn wait(name: &str) -> ContainerStatus {
    status(
        name,
        ContainerState {
            waiting: Some(ContainerStateWaiting::default()),
            ..ContainerState::default()
        },
    )
}

/// Waiting to restart after an instance that exited with `code` (a crash loop).
fn restarting(name: &str, code: i32) -> ContainerStatus {
    ContainerStatus {
        last_state: Some(terminated_state(code)),
        ..wait(name)
    }
}

#[test]
fn restart_policy_times_exit_code_matrix() {
    let cases = [
        ("Always", 0, PodPhase::Running),
        ("Always", 1, PodPhase::Running),
        ("OnFailure", 0, PodPhase::Succeeded),
        ("OnFailure", 1, PodPhase::Running),
        ("Never", 0, PodPhase::Succeeded),
        ("Never", 1, PodPhase::Failed),
    ];
    for (policy, code, expected) in cases {
        let p = pod(policy, vec![], vec![container("a"), container("b")]);
        let statuses = [done("a", 0), done("b", code)];
        assert_eq!(
            get_phase(&p, &[], &statuses, false, true),
            expected,
            "{policy} exit {code}"
        );
    }
}

#[test]
fn terminal_pod_is_succeeded_or_failed_whatever_the_policy() {
    let p = pod("Always", vec![], vec![container("a"), container("b")]);
    assert_eq!(
        get_phase(&p, &[], &[done("a", 0), done("b", 0)], true, true),
        PodPhase::Succeeded
    );
    assert_eq!(
        get_phase(&p, &[], &[done("a", 0), done("b", 137)], true, true),
        PodPhase::Failed
    );
}

#[test]
fn running_waiting_and_unknown_containers() {
    let p = pod("Always", vec![], vec![container("a"), container("b")]);
    assert_eq!(
        get_phase(&p, &[], &[run("a"), done("b", 1)], false, true),
        PodPhase::Running
    );
    assert_eq!(
        get_phase(&p, &[], &[run("a"), wait("b")], false, true),
        PodPhase::Pending,
        "a container that never started keeps the pod pending"
    );
    assert_eq!(
        get_phase(&p, &[], &[run("a"), restarting("b", 1)], false, true),
        PodPhase::Running,
        "a crash-looping container counts as stopped, not waiting"
    );
    assert_eq!(
        get_phase(&p, &[], &[run("a")], false, true),
        PodPhase::Pending,
        "a container without status is unknown"
    );
}

#[test]
fn crash_loop_under_never_and_on_failure() {
    let never = pod("Never", vec![], vec![container("a")]);
    assert_eq!(
        get_phase(&never, &[], &[restarting("a", 0)], false, true),
        PodPhase::Failed,
        "waiting with a last state counts as stopped, never as succeeded"
    );
    let on_failure = pod("OnFailure", vec![], vec![container("a")]);
    assert_eq!(
        get_phase(&on_failure, &[], &[restarting("a", 1)], false, true),
        PodPhase::Running
    );
}

#[test]
fn init_containers_keep_the_pod_pending_until_they_succeed() {
    let p = pod("Always", vec![container("setup")], vec![container("app")]);
    let app = [wait("app")];
    assert_eq!(
        get_phase(&p, &[wait("setup")], &app, false, false),
        PodPhase::Pending
    );
    assert_eq!(
        get_phase(&p, &[run("setup")], &app, false, false),
        PodPhase::Pending
    );
    assert_eq!(get_phase(&p, &[], &app, false, false), PodPhase::Pending);
    assert_eq!(
        get_phase(&p, &[done("setup", 0)], &[run("app")], false, true),
        PodPhase::Running
    );
}

#[test]
fn failed_init_container_fails_the_pod_only_under_never() {
    let app = [wait("app")];
    let never = pod("Never", vec![container("setup")], vec![container("app")]);
    assert_eq!(
        get_phase(&never, &[done("setup", 1)], &app, false, false),
        PodPhase::Failed
    );
    let always = pod("Always", vec![container("setup")], vec![container("app")]);
    assert_eq!(
        get_phase(&always, &[done("setup", 1)], &app, false, false),
        PodPhase::Pending
    );
    assert_eq!(
        get_phase(&always, &[restarting("setup", 1)], &app, false, false),
        PodPhase::Pending
    );
    let on_failure = pod(
        "OnFailure",
        vec![container("setup")],
        vec![container("app")],
    );
    assert_eq!(
        get_phase(&on_failure, &[restarting("setup", 1)], &app, false, false),
        PodPhase::Pending
    );
}

#[test]
fn sidecars_count_once_started() {
    let p = pod("Always", vec![sidecar("proxy")], vec![container("app")]);
    let not_started = ContainerStatus {
        started: Some(false),
        ..run("proxy")
    };
    assert_eq!(
        get_phase(
            &p,
            std::slice::from_ref(&not_started),
            &[wait("app")],
            false,
            false
        ),
        PodPhase::Pending
    );
    assert_eq!(
        get_phase(&p, &[run("proxy")], &[run("app")], false, true),
        PodPhase::Running
    );
    // Restarting sidecar after initialization: the pod does not go back to Pending.
    assert_eq!(
        get_phase(&p, &[not_started], &[run("app")], false, true),
        PodPhase::Running
    );
    assert_eq!(
        get_phase(&p, &[restarting("proxy", 1)], &[run("app")], false, true),
        PodPhase::Running
    );
}

#[test]
fn stopped_sidecars_do_not_block_completion() {
    let p = pod("Never", vec![sidecar("proxy")], vec![container("app")]);
    assert_eq!(
        get_phase(&p, &[done("proxy", 137)], &[done("app", 0)], false, true),
        PodPhase::Succeeded
    );
    assert_eq!(
        get_phase(&p, &[run("proxy")], &[done("app", 0)], false, true),
        PodPhase::Running,
        "the sidecar still runs"
    );
}

#[test]
fn phase_strings() {
    for phase in [
        PodPhase::Pending,
        PodPhase::Running,
        PodPhase::Succeeded,
        PodPhase::Failed,
        PodPhase::Unknown,
    ] {
        assert_eq!(PodPhase::parse(phase.as_str()), Some(phase));
    }
    assert!(PodPhase::Failed.is_terminal() && !PodPhase::Running.is_terminal());
}

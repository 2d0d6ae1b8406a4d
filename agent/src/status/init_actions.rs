//! Init container decisions: start regular init containers one at a time, in order; start
//! sidecars (restartable init containers) before the later init containers and keep them
//! running; fail the pod when a regular init container fails under `restartPolicy: Never`.
//!
//! A port of upstream `kuberuntime_container.go` `computeInitContainerActions`. The init
//! containers are walked from the last to the first, because completed init containers may
//! have been removed from the runtime: the newest evidence of progress is what counts.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::actions::{
    ContainerKill, KillReason, Plan, PodActions, ProbeResults, StartReason, spec_containers,
};
use super::restart::{
    RestartPolicy, container_hash, is_init_container_failed, is_restartable_init_container,
};
use super::runtime::{PodRuntimeStatus, RuntimeContainer, RuntimeContainerState};

/// Fills in the init container part of `actions`/`plan`; returns whether the pod has been
/// initialized (so that app containers may be handled).
pub(crate) fn compute_init_container_actions(
    pod: &Pod,
    runtime: &PodRuntimeStatus,
    probes: &ProbeResults,
    policy: RestartPolicy,
    actions: &mut PodActions,
    plan: &mut Plan,
) -> bool {
    let (containers, inits) = spec_containers(pod);
    if inits.is_empty() {
        return true;
    }
    // An app container that is created or running proves that initialization finished once,
    // even if the init containers were removed since. (Exited ones do not: after a reboot
    // every container is exited and the new sandbox has not been initialized.)
    let mut initialized = containers.iter().any(|c| {
        runtime.latest(&c.name).is_some_and(|s| {
            matches!(
                s.state,
                RuntimeContainerState::Created | RuntimeContainerState::Running
            )
        })
    });
    let mut previous_done = initialized;
    let last = inits.len() - 1;

    for (i, container) in inits.iter().enumerate().rev() {
        let sidecar = is_restartable_init_container(container);
        let Some(status) = runtime.latest(&container.name) else {
            // Its instances are gone; a sidecar must run again once initialization has begun.
            if previous_done && sidecar {
                plan.init.push((i, StartReason::NotStarted));
            }
            continue;
        };
        if previous_done && !sidecar {
            // After initialization only sidecars are kept running.
            continue;
        }
        match status.state {
            RuntimeContainerState::Created => plan.init.push((i, StartReason::StuckCreated)),
            RuntimeContainerState::Running => {
                if sidecar {
                    let step = RunningSidecar {
                        index: i,
                        container,
                        status,
                        is_last: i == last,
                        previous_done,
                    };
                    if step.decide(probes, actions, plan) {
                        initialized = true;
                    }
                }
                // A running regular init container: wait for it to finish.
            }
            RuntimeContainerState::Exited => {
                if sidecar {
                    plan.init.push((i, StartReason::Exited));
                } else if is_init_container_failed(status) {
                    if !policy.restarts_on_failure() {
                        fail_pod(actions, plan);
                        return false;
                    }
                    plan.init.push((i, StartReason::Exited));
                } else if i == last {
                    initialized = true;
                } else {
                    plan.init.push((i + 1, StartReason::NotStarted));
                }
            }
            RuntimeContainerState::Unknown => {
                if !sidecar && !policy.restarts_on_failure() {
                    fail_pod(actions, plan);
                    return false;
                }
                actions.containers_to_kill.push(ContainerKill {
                    container_id: status.id.clone(),
                    name: container.name.clone(),
                    reason: KillReason::Unknown,
                    message:
                        "Init container is in \"unknown\" state, try killing it before restart"
                            .to_owned(),
                });
                plan.init.push((i, StartReason::UnknownState));
            }
        }
        previous_done = true;
    }

    if !previous_done {
        // Nothing has started yet: begin with the first init container.
        plan.init.push((0, StartReason::NotStarted));
    }
    initialized
}

/// A regular init container failed and will not be restarted: the pod is done.
fn fail_pod(actions: &mut PodActions, plan: &mut Plan) {
    actions.kill_pod = true;
    actions.init_failed = true;
    plan.init.clear();
}

/// A running sidecar: once started (startup probe passed, if any) the next init container may
/// start; it is restarted when its spec changed or it failed a probe.
struct RunningSidecar<'a> {
    index: usize,
    container: &'a Container,
    status: &'a RuntimeContainer,
    is_last: bool,
    previous_done: bool,
}

impl RunningSidecar<'_> {
    /// Returns whether the pod is initialized by this (last) sidecar having started.
    fn decide(&self, probes: &ProbeResults, actions: &mut PodActions, plan: &mut Plan) -> bool {
        let name = &self.container.name;
        if self.container.startup_probe.is_some() {
            match probes.startup.get(&self.status.id) {
                // The startup probe has not run yet: wait.
                None => return false,
                Some(false) => {
                    self.restart(
                        KillReason::StartupProbe,
                        StartReason::StartupProbeFailed,
                        format!("Init container {name} failed startup probe"),
                        actions,
                        plan,
                    );
                    return false;
                }
                Some(true) => {}
            }
        }
        let initialized = self.is_last;
        if !self.is_last && !self.previous_done {
            // Started for the first time: the next init container may start.
            plan.init.push((self.index + 1, StartReason::NotStarted));
        }
        if self
            .status
            .hash
            .is_some_and(|hash| hash != container_hash(self.container))
        {
            self.restart(
                KillReason::SpecChanged,
                StartReason::SpecChanged,
                format!("Init container {name} definition changed"),
                actions,
                plan,
            );
            return initialized;
        }
        if self.container.liveness_probe.is_some()
            && probes.liveness.get(&self.status.id) == Some(&false)
        {
            self.restart(
                KillReason::LivenessProbe,
                StartReason::LivenessProbeFailed,
                format!("Init container {name} failed liveness probe"),
                actions,
                plan,
            );
        }
        initialized
    }

    fn restart(
        &self,
        kill: KillReason,
        start: StartReason,
        message: String,
        actions: &mut PodActions,
        plan: &mut Plan,
    ) {
        actions.containers_to_kill.push(ContainerKill {
            container_id: self.status.id.clone(),
            name: self.container.name.clone(),
            reason: kill,
            message,
        });
        plan.init.push((self.index, start));
    }
}

//! What the pod worker should do next to bring the runtime in line with the pod spec.
//!
//! A port of upstream `kuberuntime_manager.go` `computePodActions` and
//! `kuberuntime_container.go` `computeInitContainerActions` (sidecar containers GA, no in-place
//! resize, no ephemeral containers), plus `kuberuntime/util` `PodSandboxChanged`. Back-off is
//! only reported here; the worker enforces it with [`ContainerBackoff::admit`] when it starts
//! a container, as upstream's `SyncPod` does.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::backoff::{ContainerBackoff, ContainerKey};
use super::init_actions::compute_init_container_actions;
use super::restart::{RestartPolicy, container_hash, should_container_be_restarted};
use super::runtime::{PodRuntimeStatus, RuntimeContainer, RuntimeContainerState};
use crate::kuberuntime::pod_uid;

/// Probe results the decisions depend on, keyed by runtime container ID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeResults {
    /// Liveness: `false` is a failure (the container is killed and restarted per policy).
    pub liveness: HashMap<String, bool>,
    /// Startup: `true` succeeded, `false` failed; absent means not run yet.
    pub startup: HashMap<String, bool>,
}

/// Why a container is (re)started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartReason {
    /// It has no instance yet (first start, or its instances were removed).
    NotStarted,
    /// The sandbox is (re)created, so every container starts over.
    SandboxChanged,
    /// Its last instance exited and the restart policy restarts it.
    Exited,
    /// Its last instance was created but never started.
    StuckCreated,
    /// Its last instance is in an unknown state; it is killed first.
    UnknownState,
    /// Its spec changed; the running instance is killed first.
    SpecChanged,
    /// It failed its liveness probe; the running instance is killed first.
    LivenessProbeFailed,
    /// It failed its startup probe; the running instance is killed first.
    StartupProbeFailed,
}

/// One container to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStart {
    /// Index in `spec.containers` or `spec.initContainers`.
    pub index: usize,
    /// The container's name.
    pub name: String,
    /// Why it starts.
    pub reason: StartReason,
    /// When its newest exited instance finished: what [`ContainerBackoff::admit`] needs.
    pub last_finished: Option<Timestamp>,
    /// Remaining restart back-off: while set, the worker reports `CrashLoopBackOff` instead
    /// of starting it.
    pub backoff: Option<Duration>,
}

/// Why a running container is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    /// Its spec changed.
    SpecChanged,
    /// It failed its liveness probe.
    LivenessProbe,
    /// It failed its startup probe.
    StartupProbe,
    /// Its state is unknown; it is killed so that no two instances run.
    Unknown,
}

/// One container instance to kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerKill {
    /// The runtime container ID.
    pub container_id: String,
    /// The container's name.
    pub name: String,
    /// Why.
    pub reason: KillReason,
    /// Upstream's event message, such as `Container app definition changed, will be restarted`.
    pub message: String,
}

/// The changes to make, in the order the worker applies them: kill the pod (all containers and
/// sandboxes) or the listed containers, create the sandbox, start init containers, then
/// containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodActions {
    /// Stop every container and the sandbox (before re-creating it, or because nothing is left
    /// to run).
    pub kill_pod: bool,
    /// Create a new sandbox (with [`PodActions::attempt`]).
    pub create_sandbox: bool,
    /// The current sandbox, when there is one to keep using or to replace.
    pub sandbox_id: Option<String>,
    /// The sandbox attempt for a new sandbox (or the current one's).
    pub attempt: u32,
    /// A regular init container failed and the restart policy is `Never`: the pod has failed.
    pub init_failed: bool,
    /// Init containers to start, in spec order (regular ones one at a time, sidecars as needed).
    pub init_containers_to_start: Vec<ContainerStart>,
    /// App containers to start, in spec order.
    pub containers_to_start: Vec<ContainerStart>,
    /// Running (or unknown) container instances to kill first.
    pub containers_to_kill: Vec<ContainerKill>,
}

impl PodActions {
    /// The first init container to start, if any.
    #[must_use]
    pub fn next_init_container(&self) -> Option<&ContainerStart> {
        self.init_containers_to_start.first()
    }
}

/// Whether the pod needs a new sandbox: none exists, more than one is ready, the newest is not
/// ready, its network mode is wrong, or it has no IP. Returns (needed, attempt for the new or
/// current sandbox, ID of the sandbox to replace or keep).
#[must_use]
pub fn sandbox_changed(pod: &Pod, runtime: &PodRuntimeStatus) -> (bool, u32, Option<String>) {
    let Some(latest) = runtime.latest_sandbox() else {
        return (true, 0, None);
    };
    let next = latest.attempt.saturating_add(1);
    let ready = runtime.sandboxes.iter().filter(|s| s.is_ready()).count();
    if ready > 1 || !latest.is_ready() {
        return (true, next, Some(latest.id.clone()));
    }
    let host_network = is_host_network(pod);
    if latest.host_network != host_network {
        return (true, next, None);
    }
    if !host_network && latest.ips.as_ref().is_some_and(Vec::is_empty) {
        return (true, next, Some(latest.id.clone()));
    }
    (false, latest.attempt, Some(latest.id.clone()))
}

/// [`compute_pod_actions_with_probes`] without probe results (no liveness kills; sidecars with
/// a startup probe wait for it).
#[must_use]
pub fn compute_pod_actions(
    pod: &Pod,
    runtime: &PodRuntimeStatus,
    backoff: &ContainerBackoff,
    now: Timestamp,
) -> PodActions {
    compute_pod_actions_with_probes(pod, runtime, &ProbeResults::default(), backoff, now)
}

/// Decides what to kill, create and start for a pod given what the runtime has.
#[must_use]
pub fn compute_pod_actions_with_probes(
    pod: &Pod,
    runtime: &PodRuntimeStatus,
    probes: &ProbeResults,
    backoff: &ContainerBackoff,
    now: Timestamp,
) -> PodActions {
    let (containers, _) = spec_containers(pod);
    let policy = RestartPolicy::of(pod);
    let (create, attempt, sandbox_id) = sandbox_changed(pod, runtime);
    let mut actions = PodActions {
        kill_pod: create,
        create_sandbox: create,
        sandbox_id,
        attempt,
        ..PodActions::default()
    };
    let mut plan = Plan::default();

    if create {
        sandbox_plan(pod, runtime, policy, &mut actions, &mut plan);
        return plan.finish(pod, runtime, backoff, now, actions);
    }

    let initialized =
        compute_init_container_actions(pod, runtime, probes, policy, &mut actions, &mut plan);
    if actions.kill_pod || !initialized {
        return plan.finish(pod, runtime, backoff, now, actions);
    }

    let mut keep = 0usize;
    for (index, container) in containers.iter().enumerate() {
        let latest = runtime.latest(&container.name);
        match latest {
            Some(last) if last.is_running() => {
                if let Some((reason, start_reason, message, restart)) =
                    running_container_verdict(container, last, probes, policy)
                {
                    let message = if restart {
                        plan.app.push((index, start_reason));
                        format!("{message}, will be restarted")
                    } else {
                        message
                    };
                    actions.containers_to_kill.push(ContainerKill {
                        container_id: last.id.clone(),
                        name: container.name.clone(),
                        reason,
                        message,
                    });
                } else {
                    keep += 1;
                }
            }
            _ => {
                if !should_container_be_restarted(pod, &container.name, runtime) {
                    continue;
                }
                let reason = match latest.map(|c| c.state) {
                    None => StartReason::NotStarted,
                    Some(RuntimeContainerState::Created) => StartReason::StuckCreated,
                    Some(RuntimeContainerState::Unknown) => StartReason::UnknownState,
                    Some(_) => StartReason::Exited,
                };
                plan.app.push((index, reason));
                if let Some(last) = latest.filter(|c| c.state == RuntimeContainerState::Unknown) {
                    actions.containers_to_kill.push(ContainerKill {
                        container_id: last.id.clone(),
                        name: container.name.clone(),
                        reason: KillReason::Unknown,
                        message: "Container is in \"unknown\" state, try killing it before restart"
                            .to_owned(),
                    });
                }
            }
        }
    }

    if keep == 0 && plan.app.is_empty() {
        // Nothing runs and nothing will: stop the pod, and do not restart sidecars only to
        // keep it alive.
        actions.kill_pod = true;
        plan.init.clear();
    }
    plan.finish(pod, runtime, backoff, now, actions)
}

/// The sandbox is (re)created: everything starts over from the first init container, unless
/// the pod has nothing left to run.
fn sandbox_plan(
    pod: &Pod,
    runtime: &PodRuntimeStatus,
    policy: RestartPolicy,
    actions: &mut PodActions,
    plan: &mut Plan,
) {
    let (containers, init_containers) = spec_containers(pod);
    if !policy.restarts_on_failure() && actions.attempt != 0 && !runtime.containers.is_empty() {
        // restartPolicy Never and the pod ran before: it is done, do not bring it back.
        actions.create_sandbox = false;
        return;
    }
    let to_start: Vec<usize> = containers
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            !(policy == RestartPolicy::OnFailure
                && runtime
                    .latest(&c.name)
                    .is_some_and(RuntimeContainer::succeeded))
        })
        .map(|(index, _)| index)
        .collect();
    if to_start.is_empty() && has_any_regular_container_created(containers, runtime) {
        // Initialized before and nothing left to start.
        actions.create_sandbox = false;
        return;
    }
    let reason = if actions.attempt == 0 {
        StartReason::NotStarted
    } else {
        StartReason::SandboxChanged
    };
    if init_containers.is_empty() {
        plan.app = to_start.into_iter().map(|i| (i, reason)).collect();
    } else {
        plan.init.push((0, reason));
    }
}

/// For a running app container: kill it because its spec changed (always restarted) or it
/// failed a probe (restarted per policy)? Returns (kill reason, start reason, message, restart).
fn running_container_verdict(
    container: &Container,
    last: &RuntimeContainer,
    probes: &ProbeResults,
    policy: RestartPolicy,
) -> Option<(KillReason, StartReason, String, bool)> {
    let name = &container.name;
    if last
        .hash
        .is_some_and(|hash| hash != container_hash(container))
    {
        return Some((
            KillReason::SpecChanged,
            StartReason::SpecChanged,
            format!("Container {name} definition changed"),
            true,
        ));
    }
    let restart = policy.restarts_on_failure();
    if probes.liveness.get(&last.id) == Some(&false) {
        return Some((
            KillReason::LivenessProbe,
            StartReason::LivenessProbeFailed,
            format!("Container {name} failed liveness probe"),
            restart,
        ));
    }
    if probes.startup.get(&last.id) == Some(&false) {
        return Some((
            KillReason::StartupProbe,
            StartReason::StartupProbeFailed,
            format!("Container {name} failed startup probe"),
            restart,
        ));
    }
    None
}

/// Indexes to start, collected while deciding; turned into [`ContainerStart`]s at the end.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) init: Vec<(usize, StartReason)>,
    pub(crate) app: Vec<(usize, StartReason)>,
}

impl Plan {
    fn finish(
        self,
        pod: &Pod,
        runtime: &PodRuntimeStatus,
        backoff: &ContainerBackoff,
        now: Timestamp,
        mut actions: PodActions,
    ) -> PodActions {
        let (containers, init_containers) = spec_containers(pod);
        actions.init_containers_to_start =
            starts(pod, runtime, backoff, now, init_containers, self.init);
        actions.containers_to_start = starts(pod, runtime, backoff, now, containers, self.app);
        actions
    }
}

/// Spec order, one entry per index, with the back-off each start is subject to.
fn starts(
    pod: &Pod,
    runtime: &PodRuntimeStatus,
    backoff: &ContainerBackoff,
    now: Timestamp,
    specs: &[Container],
    mut planned: Vec<(usize, StartReason)>,
) -> Vec<ContainerStart> {
    planned.sort_by_key(|(index, _)| *index);
    planned.dedup_by_key(|(index, _)| *index);
    let uid = pod_uid(pod);
    planned
        .into_iter()
        .filter_map(|(index, reason)| {
            let spec = specs.get(index)?;
            let last_finished = runtime
                .latest_exited(&spec.name)
                .and_then(|c| c.finished_at);
            let backoff = last_finished.and_then(|finished| {
                backoff.in_backoff(&ContainerKey::new(uid, &spec.name), finished, now)
            });
            Some(ContainerStart {
                index,
                name: spec.name.clone(),
                reason,
                last_finished,
                backoff,
            })
        })
        .collect()
}

/// The pod's app and init containers (empty when the pod has no spec).
pub(crate) fn spec_containers(pod: &Pod) -> (&[Container], &[Container]) {
    pod.spec.as_ref().map_or((&[], &[]), |spec| {
        (
            spec.containers.as_slice(),
            spec.init_containers.as_deref().unwrap_or_default(),
        )
    })
}

/// The pod runs in the node's network namespace.
pub(crate) fn is_host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// Some app container has an instance that was created, ran or exited: the pod got past its
/// init containers at some point.
pub(crate) fn has_any_regular_container_created(
    containers: &[Container],
    runtime: &PodRuntimeStatus,
) -> bool {
    containers.iter().any(|c| {
        runtime
            .latest(&c.name)
            .is_some_and(|s| s.state != RuntimeContainerState::Unknown)
    })
}

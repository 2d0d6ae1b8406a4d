//! Container statuses as the API shows them.
//!
//! A port of upstream `kubelet_pods.go` `convertToAPIContainerStatuses` (state, last state,
//! restart count, waiting reasons, statuses of vanished containers) and of the readiness and
//! startup part of `prober/prober_manager.go` `UpdatePodStatus`.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod,
};

use super::actions::has_any_regular_container_created;
use super::pod::StatusContext;
use super::restart::{is_restartable_init_container, should_container_be_restarted};
use super::runtime::{PodRuntimeStatus, RuntimeContainer, RuntimeContainerState};
use super::time::api_time;

/// Waiting reason of a container not created yet in a pod without init containers.
pub const CONTAINER_CREATING: &str = "ContainerCreating";
/// Waiting reason of a container not created yet in a pod with init containers.
pub const POD_INITIALIZING: &str = "PodInitializing";
/// Terminated reason of a container whose instance vanished from the runtime.
pub const CONTAINER_STATUS_UNKNOWN: &str = "ContainerStatusUnknown";

/// Upstream's cap on all termination messages of a pod together (12 KiB), shared evenly.
pub const MAX_POD_TERMINATION_MESSAGE_BYTES: usize = 12 * 1024;

/// Which list is being converted.
pub(crate) struct ContainerList<'a> {
    /// The spec containers of the list, in spec order.
    pub(crate) specs: &'a [Container],
    /// The previous API statuses of the list.
    pub(crate) previous: &'a [ContainerStatus],
    /// These are init containers.
    pub(crate) init: bool,
}

/// Converts one list (init or app containers) to API statuses: init containers in spec order,
/// app containers sorted by name (as upstream sorts them).
pub(crate) fn container_statuses(
    pod: &Pod,
    runtime: &PodRuntimeStatus,
    ctx: &StatusContext,
    list: &ContainerList<'_>,
) -> Vec<ContainerStatus> {
    let (app_specs, init_specs) = super::actions::spec_containers(pod);
    let has_init = !init_specs.is_empty();
    let deleted = pod.metadata.deletion_timestamp.is_some();
    let old: HashMap<&str, &ContainerStatus> =
        list.previous.iter().map(|s| (s.name.as_str(), s)).collect();
    let budget = MAX_POD_TERMINATION_MESSAGE_BYTES / (app_specs.len() + init_specs.len()).max(1);

    let mut statuses: Vec<ContainerStatus> = list
        .specs
        .iter()
        .map(|spec| default_status(spec, old.get(spec.name.as_str()).copied(), has_init))
        .collect();

    for (spec, status) in list.specs.iter().zip(statuses.iter_mut()) {
        let instances = runtime.by_name_newest_first(&spec.name);
        let old = old.get(spec.name.as_str()).copied();
        if instances.is_empty() {
            vanished(status, old, has_init, deleted);
            continue;
        }
        let convert = |c: &RuntimeContainer| convert(c, spec, old, ctx, budget);
        if let Some(newest) = instances.first() {
            *status = convert(newest);
        }
        if let Some(previous) = instances.get(1) {
            status.last_state = convert(previous).state;
        }
    }

    for (spec, status) in list.specs.iter().zip(statuses.iter_mut()) {
        if list.init {
            let latest = runtime.latest(&spec.name);
            if latest.is_some_and(RuntimeContainer::succeeded) {
                continue;
            }
            if latest.is_none()
                && !is_restartable_init_container(spec)
                && has_any_regular_container_created(app_specs, runtime)
                && is_waiting(status)
            {
                status.state = Some(terminated(
                    0,
                    "Completed",
                    "Unable to get init container status from container runtime and pod has been initialized, treat it as exited normally",
                ));
                continue;
            }
        }
        if !should_container_be_restarted(pod, &spec.name, runtime) {
            continue;
        }
        let Some(reason) = ctx.waiting.get(&spec.name) else {
            continue;
        };
        if status
            .state
            .as_ref()
            .is_some_and(|s| s.terminated.is_some())
        {
            status.last_state = status.state.take();
        }
        status.state = Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.reason.clone()),
                message: Some(reason.message.clone()).filter(|m| !m.is_empty()),
            }),
            ..ContainerState::default()
        });
    }

    for (spec, status) in list.specs.iter().zip(statuses.iter_mut()) {
        apply_probes(spec, status, ctx, list.init);
    }
    if !list.init {
        statuses.sort_by(|a, b| a.name.cmp(&b.name));
    }
    statuses
}

/// The status of a container before looking at the runtime: waiting to be created, or the
/// previous terminated status (a terminated container stays terminated until a new instance
/// shows up), keeping the restart count and last state of a previous status.
fn default_status(
    spec: &Container,
    old: Option<&ContainerStatus>,
    has_init: bool,
) -> ContainerStatus {
    if let Some(old) = old
        && old.state.as_ref().is_some_and(|s| s.terminated.is_some())
    {
        return old.clone();
    }
    ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        state: Some(waiting(if has_init {
            POD_INITIALIZING
        } else {
            CONTAINER_CREATING
        })),
        last_state: Some(old.and_then(|o| o.last_state.clone()).unwrap_or_default()),
        restart_count: old.map_or(0, |o| o.restart_count),
        ..ContainerStatus::default()
    }
}

/// A container with no instance in the runtime that was running before: it must have
/// terminated, even though its exit code is lost; show that in the last state (and count a
/// restart unless the pod is being deleted) instead of letting the pod fall back to `Pending`.
fn vanished(
    status: &mut ContainerStatus,
    old: Option<&ContainerStatus>,
    has_init: bool,
    deleted: bool,
) {
    let Some(old) = old else { return };
    let old_state = old.state.clone().unwrap_or_default();
    if old_state.terminated.is_some() || old_state.running.is_none() {
        return;
    }
    let default_reason = if has_init {
        POD_INITIALIZING
    } else {
        CONTAINER_CREATING
    };
    let is_default_waiting = status
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .is_some_and(|w| w.reason.as_deref() == Some(default_reason));
    let has_last_termination = status
        .last_state
        .as_ref()
        .is_some_and(|s| s.terminated.is_some());
    if !is_default_waiting || has_last_termination {
        return;
    }
    status.last_state = Some(terminated(
        137,
        CONTAINER_STATUS_UNKNOWN,
        "The container could not be located when the pod was deleted.  The container used to be Running",
    ));
    if !deleted {
        status.restart_count += 1;
    }
}

/// One runtime instance as an API status.
fn convert(
    c: &RuntimeContainer,
    spec: &Container,
    old: Option<&ContainerStatus>,
    ctx: &StatusContext,
    message_budget: usize,
) -> ContainerStatus {
    let container_id = c.container_id(&ctx.runtime_name);
    let mut restart_count = i32::try_from(c.attempt).unwrap_or(i32::MAX);
    let old_running = old
        .and_then(|o| o.state.as_ref())
        .is_some_and(|s| s.running.is_some());
    let state = match c.state {
        RuntimeContainerState::Running => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: c.started_at.map(api_time),
            }),
            ..ContainerState::default()
        },
        RuntimeContainerState::Exited => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: c.exit_code,
                reason: Some(exit_reason(c)),
                message: termination_message(c, ctx, message_budget),
                started_at: c.started_at.map(api_time),
                finished_at: c.finished_at.map(api_time),
                container_id: Some(container_id.clone()),
                signal: None,
            }),
            ..ContainerState::default()
        },
        RuntimeContainerState::Unknown if old_running => {
            // It was running and the runtime lost track of it: it did terminate; do not let a
            // run-once container run twice.
            restart_count = old.map_or(0, |o| o.restart_count).saturating_add(1);
            terminated(
                137,
                CONTAINER_STATUS_UNKNOWN,
                "The container could not be located when the pod was terminated",
            )
        }
        RuntimeContainerState::Created | RuntimeContainerState::Unknown => ContainerState {
            waiting: Some(ContainerStateWaiting::default()),
            ..ContainerState::default()
        },
    };
    ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        image_id: c.image_ref.clone(),
        container_id: Some(container_id),
        restart_count,
        state: Some(state),
        last_state: Some(ContainerState::default()),
        ..ContainerStatus::default()
    }
}

/// The runtime's reason, or `Completed`/`Error` by exit code when it gave none (containerd
/// sets these itself; other runtimes may not).
fn exit_reason(c: &RuntimeContainer) -> String {
    if !c.reason.is_empty() {
        return c.reason.clone();
    }
    if c.exit_code == 0 {
        "Completed"
    } else {
        "Error"
    }
    .to_owned()
}

/// The runtime's message, followed by the termination message the caller read (from the
/// termination message file, or from the log under `FallbackToLogsOnError`), truncated to the
/// container's share of the pod's budget.
fn termination_message(c: &RuntimeContainer, ctx: &StatusContext, budget: usize) -> Option<String> {
    let mut message = c.message.clone();
    if let Some(extra) = ctx
        .termination_messages
        .get(&c.id)
        .filter(|m| !m.is_empty())
    {
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(extra);
    }
    if message.len() > budget {
        let mut end = budget;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    Some(message).filter(|m| !m.is_empty())
}

/// `started` and `ready` from the probe results: a running container has started once its
/// startup probe succeeded (immediately without one) and is ready once started and its
/// readiness probe succeeded (immediately without one); a regular init container is ready
/// once it exited 0.
fn apply_probes(spec: &Container, status: &mut ContainerStatus, ctx: &StatusContext, init: bool) {
    let running = status.state.as_ref().is_some_and(|s| s.running.is_some());
    let id = status
        .container_id
        .as_deref()
        .and_then(|cid| cid.split_once("://").map(|(_, id)| id))
        .unwrap_or_default();
    let started = running
        && ctx
            .startup
            .get(id)
            .copied()
            .unwrap_or(spec.startup_probe.is_none());
    status.started = Some(started);
    if init && !is_restartable_init_container(spec) {
        status.ready = status
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0);
        return;
    }
    status.ready = started
        && ctx
            .readiness
            .get(id)
            .copied()
            .unwrap_or(spec.readiness_probe.is_none());
}

fn is_waiting(status: &ContainerStatus) -> bool {
    status.state.as_ref().is_some_and(|s| s.waiting.is_some())
}

fn waiting(reason: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message: None,
        }),
        ..ContainerState::default()
    }
}

fn terminated(exit_code: i32, reason: &str, message: &str) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code,
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    }
}

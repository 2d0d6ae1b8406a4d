//! The pod status the kubelet reports.
//!
//! A port of upstream `kubelet_pods.go` `generateAPIPodStatus`/`convertStatusToAPIStatus` and
//! of the parts of `status_manager.go` `updateStatusInternal` that shape the status (illegal
//! transitions, `lastTransitionTime`, `startTime`, second precision).

use std::collections::HashMap;
use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, HostIP, Pod, PodCondition, PodIP,
    PodStatus,
};

use super::actions::{is_host_network, spec_containers};
use super::conditions::{self, DISRUPTION_TARGET, is_kubelet_owned};
use super::containers::{CONTAINER_STATUS_UNKNOWN, ContainerList, container_statuses};
use super::phase::{PodPhase, get_phase};
use super::restart::RestartPolicy;
use super::runtime::PodRuntimeStatus;
use super::time::api_time;

/// Why a container waits, as the worker last saw it (upstream's `ReasonCache`): set when a
/// start failed (`ErrImagePull`, `ImagePullBackOff`, `CrashLoopBackOff`,
/// `CreateContainerConfigError`, ...), cleared when a start succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingReason {
    /// The short reason.
    pub reason: String,
    /// The human-readable message (may be empty).
    pub message: String,
}

impl WaitingReason {
    /// A waiting reason with a message.
    #[must_use]
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Everything besides the pod and the runtime snapshot that the status depends on.
#[derive(Debug, Clone)]
pub struct StatusContext {
    /// The status the kubelet generated last for this pod (the status manager's cache); `None`
    /// after a restart, when the API status in `pod.status` is the basis.
    pub previous: Option<PodStatus>,
    /// The runtime's name for container IDs: `containerd` gives `containerd://<id>`.
    pub runtime_name: String,
    /// The node's IPs, primary first (`hostIP`/`hostIPs`, and the pod IPs of host network
    /// pods); empty leaves them unset.
    pub host_ips: Vec<String>,
    /// The current time.
    pub now: Timestamp,
    /// The pod worker is terminating the pod: nothing will be restarted.
    pub pod_is_terminal: bool,
    /// Waiting reasons by container name.
    pub waiting: HashMap<String, WaitingReason>,
    /// Readiness probe results by runtime container ID (`true` = success). A running container
    /// without a result is ready only when it has no readiness probe.
    pub readiness: HashMap<String, bool>,
    /// Startup probe results by runtime container ID (`true` = success). A running container
    /// without a result has started only when it has no startup probe.
    pub startup: HashMap<String, bool>,
    /// Termination messages by runtime container ID, already read by the caller from the
    /// termination message file (or the log tail, under `FallbackToLogsOnError` when the file
    /// is empty and the container failed).
    pub termination_messages: HashMap<String, String>,
}

impl StatusContext {
    /// A context with nothing known besides the runtime's name and the time.
    #[must_use]
    pub fn new(runtime_name: impl Into<String>, now: Timestamp) -> Self {
        Self {
            previous: None,
            runtime_name: runtime_name.into(),
            host_ips: Vec::new(),
            now,
            pod_is_terminal: false,
            waiting: HashMap::new(),
            readiness: HashMap::new(),
            startup: HashMap::new(),
            termination_messages: HashMap::new(),
        }
    }
}

/// Generates the status to report for a pod.
///
/// A pod that reached `Succeeded` or `Failed` keeps that phase, and a status in which a
/// container that will not be restarted leaves its terminated state is refused: the previous
/// status is returned unchanged (upstream aborts such an update).
#[must_use]
pub fn pod_status(pod: &Pod, runtime: &PodRuntimeStatus, ctx: &StatusContext) -> PodStatus {
    let api = pod.status.clone().unwrap_or_default();
    let old = ctx.previous.clone().unwrap_or_else(|| api.clone());
    let (app_specs, init_specs) = spec_containers(pod);

    let init_statuses = container_statuses(
        pod,
        runtime,
        ctx,
        &ContainerList {
            specs: init_specs,
            previous: old.init_container_statuses.as_deref().unwrap_or_default(),
            init: true,
        },
    );
    let statuses = container_statuses(
        pod,
        runtime,
        ctx,
        &ContainerList {
            specs: app_specs,
            previous: old.container_statuses.as_deref().unwrap_or_default(),
            init: false,
        },
    );

    let phase = decide_phase(pod, runtime, ctx, &api, &old, &init_statuses, &statuses);
    let (reason, message) = if old.phase.as_deref() == Some(phase.as_str()) {
        (
            old.reason.clone().or_else(|| api.reason.clone()),
            old.message.clone().or_else(|| api.message.clone()),
        )
    } else {
        (None, None)
    };

    let all: Vec<&ContainerStatus> = init_statuses.iter().chain(&statuses).collect();
    let mut conditions = generate_conditions(pod, runtime, &api, &old, &all, phase);
    conditions::update_last_transition_times(
        &mut conditions,
        old.conditions.as_deref().unwrap_or_default(),
        ctx.now,
    );

    let mut status = PodStatus {
        phase: Some(phase.as_str().to_owned()),
        reason,
        message,
        conditions: non_empty(conditions),
        qos_class: Some(api.qos_class.clone().unwrap_or_else(|| {
            crate::kuberuntime::qos::compute_qos_class(pod)
                .as_str()
                .to_owned()
        })),
        init_container_statuses: non_empty(init_statuses),
        container_statuses: non_empty(statuses),
        start_time: old.start_time.clone().or_else(|| Some(api_time(ctx.now))),
        nominated_node_name: api.nominated_node_name.clone(),
        resource_claim_statuses: api.resource_claim_statuses.clone(),
        ..PodStatus::default()
    };
    set_ips(pod, runtime, ctx, &old, &mut status);

    let policy = RestartPolicy::of(pod);
    if illegal_transition(
        old.container_statuses.as_deref(),
        status.container_statuses.as_deref(),
        policy,
    ) || illegal_transition(
        old.init_container_statuses.as_deref(),
        status.init_container_statuses.as_deref(),
        policy,
    ) {
        return old;
    }
    status
}

/// `getPhase`, then the terminal phase of the previous or API status wins.
fn decide_phase(
    pod: &Pod,
    runtime: &PodRuntimeStatus,
    ctx: &StatusContext,
    api: &PodStatus,
    old: &PodStatus,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
) -> PodPhase {
    let (app_specs, _) = spec_containers(pod);
    let has_initialized = runtime
        .active_containers()
        .any(|c| app_specs.iter().any(|s| s.name == c.name));
    let phase = get_phase(
        pod,
        init_statuses,
        statuses,
        ctx.pod_is_terminal,
        has_initialized,
    );
    let parse = |s: &PodStatus| s.phase.as_deref().and_then(PodPhase::parse);
    let api_phase = parse(api).filter(|p| p.is_terminal());
    let old_phase = parse(old).filter(|p| p.is_terminal());
    match (api_phase, old_phase) {
        // The API server shows a terminal phase: no transition out of it, nor to the other one.
        (Some(api_phase), _) => api_phase,
        (None, Some(old_phase)) if !phase.is_terminal() => old_phase,
        _ => phase,
    }
}

/// The API status's conditions the kubelet does not own, `DisruptionTarget` from the previous
/// status, then the kubelet's own: `PodReadyToStartContainers`, `Initialized`, `Ready`,
/// `ContainersReady`, `PodScheduled` (upstream's order).
fn generate_conditions(
    pod: &Pod,
    runtime: &PodRuntimeStatus,
    api: &PodStatus,
    old: &PodStatus,
    all: &[&ContainerStatus],
    phase: PodPhase,
) -> Vec<PodCondition> {
    let mut conditions: Vec<PodCondition> = api
        .conditions
        .iter()
        .flatten()
        .filter(|c| !is_kubelet_owned(&c.type_))
        .cloned()
        .collect();
    if let Some(disruption) = old
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == DISRUPTION_TARGET)
    {
        match conditions.iter_mut().find(|c| c.type_ == DISRUPTION_TARGET) {
            Some(existing) => *existing = disruption.clone(),
            None => conditions.push(disruption.clone()),
        }
    }
    conditions.push(conditions::ready_to_start_containers(pod, runtime));
    conditions.push(conditions::initialized(pod, all, phase));
    let ready = conditions::pod_ready(pod, &conditions, all, phase);
    conditions.push(ready);
    conditions.push(conditions::containers_ready(pod, all, phase));
    conditions.push(conditions::scheduled());
    conditions
}

/// The status to report once the pod worker has stopped every container of the pod (upstream
/// `status_manager.go` `TerminatePod`): any container status that is not terminated becomes
/// terminated with `ContainerStatusUnknown` (exit 137), because its real end was not observed
/// and must not read as success; app containers only once the pod had initialized, init
/// containers only up to the last one that started. A non-terminal phase becomes `Failed`.
#[must_use]
pub fn terminate_pod_status(pod: &Pod, status: &PodStatus) -> PodStatus {
    let mut status = status.clone();
    let unknown = || {
        Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 137,
                reason: Some(CONTAINER_STATUS_UNKNOWN.to_owned()),
                message: Some(
                    "The container could not be located when the pod was terminated".to_owned(),
                ),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        })
    };
    if has_pod_initialized(pod) {
        for c in status.container_statuses.iter_mut().flatten() {
            if terminated(c).is_none() {
                c.state = unknown();
            }
        }
    }
    if let Some(inits) = status.init_container_statuses.as_mut() {
        // All but the trailing init containers that never attempted to start.
        let attempted = inits
            .iter()
            .rposition(|c| !is_waiting(c) || last_terminated(c).is_some())
            .map_or(inits.len().min(1), |last| last + 1);
        for c in inits.iter_mut().take(attempted) {
            if terminated(c).is_none() {
                c.state = unknown();
            }
        }
    }
    let phase = status.phase.as_deref().and_then(PodPhase::parse);
    if !phase.is_some_and(PodPhase::is_terminal) {
        status.phase = Some(PodPhase::Failed.as_str().to_owned());
    }
    status
}

/// Evidence in the API status that the pod got past its init containers.
fn has_pod_initialized(pod: &Pod) -> bool {
    let (_, inits) = spec_containers(pod);
    if inits.is_empty() {
        return true;
    }
    let api = pod.status.clone().unwrap_or_default();
    if api
        .container_statuses
        .iter()
        .flatten()
        .any(|c| last_terminated(c).is_some() || !is_waiting(c))
    {
        return true;
    }
    api.init_container_statuses
        .as_deref()
        .and_then(<[ContainerStatus]>::last)
        .is_some_and(|c| {
            last_terminated(c).is_some_and(|t| t.exit_code == 0)
                || terminated(c).is_some_and(|t| t.exit_code == 0)
        })
}

fn is_waiting(status: &ContainerStatus) -> bool {
    status.state.as_ref().is_some_and(|s| s.waiting.is_some())
}

fn last_terminated(status: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
}

/// `podIP(s)` from the newest ready sandbox (kept from the previous status once the sandbox is
/// gone, as upstream keeps them for terminated pods), ordered by the node's IP family;
/// `hostIP(s)` from the node; host network pods get the node's IPs.
fn set_ips(
    pod: &Pod,
    runtime: &PodRuntimeStatus,
    ctx: &StatusContext,
    old: &PodStatus,
    status: &mut PodStatus,
) {
    let mut pod_ips = sort_pod_ips(&runtime.pod_ips(), ctx.host_ips.first());
    if pod_ips.is_empty() {
        pod_ips = old
            .pod_ips
            .iter()
            .flatten()
            .map(|ip| ip.ip.clone())
            .collect();
    }
    if let Some(primary) = ctx.host_ips.first() {
        status.host_ip = Some(primary.clone());
        status.host_ips = Some(
            ctx.host_ips
                .iter()
                .take(2)
                .map(|ip| HostIP { ip: ip.clone() })
                .collect(),
        );
        if is_host_network(pod) {
            if pod_ips.is_empty() {
                pod_ips.push(primary.clone());
            }
            if let (Some(secondary), [only]) = (ctx.host_ips.get(1), pod_ips.as_slice())
                && is_ipv6(only) != is_ipv6(secondary)
            {
                pod_ips.push(secondary.clone());
            }
        }
    }
    status.pod_ip = pod_ips.first().cloned();
    status.pod_ips = non_empty(pod_ips.into_iter().map(|ip| PodIP { ip }).collect());
}

/// The first IP of the node's family, then the first of the other family (upstream
/// `sortPodIPs`); IPv4 first when the node IP is unknown.
fn sort_pod_ips(ips: &[String], node_ip: Option<&String>) -> Vec<String> {
    let primary_v6 = node_ip.is_some_and(|ip| is_ipv6(ip));
    let parsed: Vec<IpAddr> = ips.iter().filter_map(|ip| ip.trim().parse().ok()).collect();
    let first_of = |v6: bool| {
        parsed
            .iter()
            .find(|ip| ip.is_ipv6() == v6)
            .map(ToString::to_string)
    };
    first_of(primary_v6)
        .into_iter()
        .chain(first_of(!primary_v6))
        .collect()
}

fn is_ipv6(ip: &str) -> bool {
    ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6())
}

/// A container that terminated and will not be restarted must stay terminated (upstream
/// `checkContainerStateTransition`).
fn illegal_transition(
    old: Option<&[ContainerStatus]>,
    new: Option<&[ContainerStatus]>,
    policy: RestartPolicy,
) -> bool {
    if policy == RestartPolicy::Always {
        return false;
    }
    old.unwrap_or_default().iter().any(|old| {
        let Some(done) = terminated(old) else {
            return false;
        };
        if done.exit_code != 0 && policy == RestartPolicy::OnFailure {
            return false;
        }
        new.unwrap_or_default()
            .iter()
            .any(|new| new.name == old.name && terminated(new).is_none())
    })
}

fn terminated(status: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    status.state.as_ref().and_then(|s| s.terminated.as_ref())
}

/// `None` for an empty list, as Go omits empty lists from the JSON.
fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

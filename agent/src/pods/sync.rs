//! One pass of a pod worker (the kubelet's `SyncPod`): bring the runtime to the pod's spec —
//! volumes, sandbox, images, init containers in order, containers — then generate the status.
//! And the way out (`SyncTerminatingPod`): stop containers within the grace period, tear down
//! the sandbox and volumes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrolet_cri::{RuntimeService, api};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};

use super::node_context::NodeContext;
use super::runtime_view::pod_runtime_status;
use super::start::Placement;
use crate::events::{EventRecorder, EventType, container_field_path, pod_reference};
use crate::images::ImageManager;
use crate::kuberuntime::{self, SandboxContext};
use crate::lifecycle::{kill_grace, spec_of};
use crate::prober::ProbeManager;
use crate::status::termination::{
    TerminationMessageFile, TerminationMessageSource, termination_message_source,
};
use crate::status::{
    ContainerBackoff, ContainerKey, ContainerKill, ImageKey, ImagePullBackoff, PodActions,
    PodRuntimeStatus, StatusContext, WaitingReason, compute_pod_actions_with_probes, pod_status,
};
use crate::volumes::VolumeManager;

/// Shared services of all pod workers.
pub struct PodSyncer {
    pub runtime: Arc<dyn RuntimeService>,
    pub images: ImageManager,
    pub volumes: Arc<VolumeManager>,
    pub client: Option<kube::Client>,
    pub events: EventRecorder,
    pub node: NodeContext,
    pub backoff: Mutex<ContainerBackoff>,
    pub image_backoff: Mutex<ImagePullBackoff>,
    /// Liveness, readiness and startup probes of every pod.
    pub probes: Arc<ProbeManager>,
}

impl std::fmt::Debug for PodSyncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodSyncer")
            .field("node", &self.node.node_name)
            .finish_non_exhaustive()
    }
}

/// What one sync concluded.
#[derive(Debug)]
pub struct SyncOutcome {
    /// The status to report.
    pub status: PodStatus,
    /// Sync again after this long at the latest (a back-off ending, a pending start).
    pub requeue: Option<Duration>,
}

/// What a worker remembers about its pod between syncs.
#[derive(Debug, Default)]
pub struct PodState {
    /// Waiting reasons of containers whose last start failed, by container name.
    pub waiting: HashMap<String, WaitingReason>,
    /// Termination messages already read, by container ID.
    pub termination_messages: HashMap<String, String>,
    /// The last generated status.
    pub last_status: Option<PodStatus>,
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

fn spec_containers(pod: &Pod) -> (Vec<Container>, Vec<Container>) {
    let spec = pod.spec.clone().unwrap_or_default();
    (spec.init_containers.unwrap_or_default(), spec.containers)
}

impl PodSyncer {
    pub(crate) fn record(
        &self,
        pod: &Pod,
        container: Option<&str>,
        kind: EventType,
        reason: &str,
        message: String,
    ) {
        let path = container.map(|c| container_field_path(pod, c));
        self.events
            .record(pod_reference(pod, path), kind, reason, message);
    }

    /// The pod's sandbox config for a given attempt; its warnings (such as
    /// `MissingClusterDNS`) become events when `record_warnings`, once per sandbox.
    fn sandbox_config(
        &self,
        pod: &Pod,
        attempt: u32,
        record_warnings: bool,
    ) -> Result<api::PodSandboxConfig, String> {
        let qos = kuberuntime::qos_class(pod);
        let cgroup_parent = if self.node.cgroups_per_qos {
            kuberuntime::pod_cgroup_parent(
                pod,
                &self.node.cgroup_root,
                qos,
                self.node.cgroup_driver,
            )
        } else {
            String::new()
        };
        let ctx = SandboxContext {
            attempt,
            pod_logs_dir: self.node.pod_logs_dir.clone(),
            cgroup_parent,
            dns: self.node.dns.clone(),
            resources: self.node.resources.clone(),
            extra_supplemental_groups: Vec::new(),
        };
        let built = kuberuntime::pod_sandbox_config(pod, &ctx).map_err(|e| e.to_string())?;
        for warning in built.warnings.into_iter().filter(|_| record_warnings) {
            self.record(
                pod,
                None,
                EventType::Warning,
                warning.reason,
                warning.message,
            );
        }
        Ok(built.value)
    }

    /// One sync of a pod that should be running.
    pub async fn sync(&self, pod: &Pod, state: &mut PodState) -> SyncOutcome {
        let now = Timestamp::now();
        let deadline = active_deadline_remaining(pod, state.last_status.as_ref(), now);
        if deadline == Some(Duration::ZERO) {
            return self.deadline_exceeded(pod, state).await;
        }
        let mut requeue = deadline;
        let mut runtime = match pod_runtime_status(self.runtime.as_ref(), uid(pod)).await {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::warn!(pod = %kuberuntime::format_pod(pod), %err, "read pod from the runtime");
                return SyncOutcome {
                    status: self.status(pod, &PodRuntimeStatus::default(), state),
                    requeue: Some(Duration::from_secs(1)),
                };
            }
        };
        let volumes = match self.volumes.mount_pod(pod).await {
            Ok(volumes) => Some(volumes),
            Err(err) => {
                self.record(
                    pod,
                    None,
                    EventType::Warning,
                    "FailedMount",
                    err.to_string(),
                );
                requeue = Some(Duration::from_secs(2));
                None
            }
        };
        if let Some(volumes) = volumes {
            let actions = {
                let backoff = self
                    .backoff
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let probes = self.probes.for_actions(uid(pod));
                compute_pod_actions_with_probes(pod, &runtime, &probes, &backoff, now)
            };
            if actions.kill_pod {
                self.kill_containers(pod, &runtime, Duration::ZERO).await;
                for sandbox in runtime.sandboxes.iter().filter(|s| s.is_ready()) {
                    if let Err(err) = self.runtime.stop_pod_sandbox(&sandbox.id).await {
                        tracing::warn!(pod = %kuberuntime::format_pod(pod), %err, "stop sandbox");
                    }
                }
            }
            let mut sandbox_id = actions.sandbox_id.clone();
            if actions.create_sandbox {
                sandbox_id = self
                    .create_sandbox(pod, actions.attempt, &mut requeue)
                    .await;
            }
            self.kill_for_restart(pod, &runtime, &actions.containers_to_kill)
                .await;
            if let Some(sandbox_id) = sandbox_id.filter(|_| !actions.init_failed) {
                let sandbox_config = self.sandbox_config(pod, actions.attempt, false).ok();
                let pod_ips = self.sandbox_ips(&sandbox_id).await;
                if let Some(sandbox_config) = &sandbox_config {
                    let placement = Placement {
                        sandbox_id: &sandbox_id,
                        sandbox_config,
                        pod_ips: &pod_ips,
                        volumes: &volumes,
                    };
                    if let Some(after) = self
                        .start_containers(pod, &actions, &runtime, placement, state, now)
                        .await
                    {
                        requeue = Some(requeue.map_or(after, |r: Duration| r.min(after)));
                    }
                }
            }
            match pod_runtime_status(self.runtime.as_ref(), uid(pod)).await {
                Ok(r) => runtime = r,
                Err(err) => tracing::warn!(%err, "re-read pod from the runtime"),
            }
        }
        self.read_termination_messages(pod, &runtime, state);
        let reported = state.last_status.as_ref().or(pod.status.as_ref());
        self.probes.sync_pod(pod, &runtime, reported);
        let status = self.status(pod, &runtime, state);
        state.last_status = Some(status.clone());
        SyncOutcome { status, requeue }
    }

    /// Stops the containers the actions restart or replace (`preStop` first).
    async fn kill_for_restart(
        &self,
        pod: &Pod,
        runtime: &PodRuntimeStatus,
        kills: &[ContainerKill],
    ) {
        let pod_ip = pod_ip(runtime);
        for kill in kills {
            self.record(
                pod,
                Some(&kill.name),
                EventType::Normal,
                "Killing",
                kill.message.clone(),
            );
            let grace = kill_grace(pod, spec_of(pod, &kill.name), Some(kill.reason));
            self.kill_container(
                pod,
                &kill.name,
                &kill.container_id,
                grace,
                pod_ip.as_deref(),
            )
            .await;
        }
    }

    /// Starts the next init container (at most one per sync: they run in order) and the
    /// regular containers the actions name, honouring crash-loop back-off. Returns when to
    /// sync again at the latest.
    async fn start_containers(
        &self,
        pod: &Pod,
        actions: &PodActions,
        runtime: &PodRuntimeStatus,
        placement: Placement<'_>,
        state: &mut PodState,
        now: Timestamp,
    ) -> Option<Duration> {
        let mut requeue: Option<Duration> = None;
        let (init, regular) = spec_containers(pod);
        let starts = actions
            .init_containers_to_start
            .iter()
            .filter_map(|s| init.iter().find(|c| c.name == s.name).map(|c| (s, c, true)))
            .chain(actions.containers_to_start.iter().filter_map(|s| {
                regular
                    .iter()
                    .find(|c| c.name == s.name)
                    .map(|c| (s, c, false))
            }));
        for (start, container, is_init) in starts {
            // A regular init container that cannot start now holds back everything after it;
            // a sidecar (an init container with restartPolicy Always) does not.
            let blocks = is_init && container.restart_policy.as_deref() != Some("Always");
            if let Some(remaining) = start.backoff {
                let delay = self
                    .backoff
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .delay(&ContainerKey::new(uid(pod), &container.name));
                let waiting =
                    crate::status::backoff::crash_loop_back_off(pod, &container.name, delay);
                self.record(
                    pod,
                    Some(&container.name),
                    EventType::Warning,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {}",
                        container.name,
                        kuberuntime::format_pod(pod)
                    ),
                );
                state.waiting.insert(container.name.clone(), waiting);
                requeue = Some(requeue.map_or(remaining, |r| r.min(remaining)));
                if blocks {
                    break;
                }
                continue;
            }
            let attempt = runtime.latest(&container.name).map_or(0, |c| c.attempt + 1);
            match self
                .start_container(pod, container, attempt, placement, start.last_finished, now)
                .await
            {
                Ok(()) => {
                    state.waiting.remove(&container.name);
                }
                Err(waiting) => {
                    state.waiting.insert(container.name.clone(), waiting);
                    // Again when the image's pull back-off ends, else after a short pause
                    // (a missing ConfigMap may appear, a runtime error may pass).
                    let image_key =
                        ImageKey::new(uid(pod), container.image.clone().unwrap_or_default());
                    let retry = self
                        .image_backoff
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .in_backoff(&image_key, now)
                        .unwrap_or(Duration::from_secs(5));
                    requeue = Some(requeue.map_or(retry, |r| r.min(retry)));
                    if blocks {
                        break;
                    }
                }
            }
        }
        requeue
    }

    async fn sandbox_ips(&self, sandbox_id: &str) -> Vec<String> {
        match self.runtime.pod_sandbox_status(sandbox_id, false).await {
            Ok(status) => status
                .status
                .and_then(|s| s.network)
                .map(|n| {
                    std::iter::once(n.ip)
                        .chain(n.additional_ips.into_iter().map(|i| i.ip))
                        .filter(|ip| !ip.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    async fn create_sandbox(
        &self,
        pod: &Pod,
        attempt: u32,
        requeue: &mut Option<Duration>,
    ) -> Option<String> {
        let config = match self.sandbox_config(pod, attempt, true) {
            Ok(config) => config,
            Err(err) => {
                self.record(
                    pod,
                    None,
                    EventType::Warning,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {err}"),
                );
                *requeue = Some(Duration::from_secs(5));
                return None;
            }
        };
        if let Some(dir) = Some(&config.log_directory).filter(|d| !d.is_empty())
            && let Err(err) = std::fs::create_dir_all(dir)
        {
            tracing::warn!(dir, %err, "create pod log directory");
        }
        match self.runtime.run_pod_sandbox(&config, "").await {
            Ok(id) => Some(id),
            Err(err) => {
                self.record(
                    pod,
                    None,
                    EventType::Warning,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {err}"),
                );
                *requeue = Some(Duration::from_secs(5));
                None
            }
        }
    }

    /// Reads the termination messages of exited containers not read yet.
    fn read_termination_messages(
        &self,
        pod: &Pod,
        runtime: &PodRuntimeStatus,
        state: &mut PodState,
    ) {
        let (init, regular) = spec_containers(pod);
        for container in runtime
            .containers
            .iter()
            .filter(|c| c.finished_at.is_some() && !c.is_running())
        {
            if state.termination_messages.contains_key(&container.id) {
                continue;
            }
            let Some(spec) = init
                .iter()
                .chain(regular.iter())
                .find(|c| c.name == container.name)
            else {
                continue;
            };
            let path = kuberuntime::container::termination_message_host_path(
                &self.node.root_dir,
                uid(pod),
                &container.name,
                container.attempt,
            );
            let contents = std::fs::read(&path);
            let text;
            let error;
            let file = match &contents {
                Ok(bytes) => {
                    text = String::from_utf8_lossy(
                        &bytes[..bytes.len().min(crate::status::termination::MAX_FILE_BYTES)],
                    )
                    .into_owned();
                    TerminationMessageFile::Contents(&text)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    TerminationMessageFile::Missing
                }
                Err(e) => {
                    error = e.to_string();
                    TerminationMessageFile::Unreadable {
                        path: &path,
                        error: &error,
                    }
                }
            };
            let message = match termination_message_source(
                spec.termination_message_policy.as_deref(),
                container.exit_code,
                &container.reason,
                file,
            ) {
                TerminationMessageSource::Message(m) => m,
                TerminationMessageSource::LogTail => {
                    self.log_tail(pod, &container.name, container.attempt)
                }
            };
            state
                .termination_messages
                .insert(container.id.clone(), message);
        }
    }

    /// The last lines of a container's CRI log, for `FallbackToLogsOnError`.
    fn log_tail(&self, pod: &Pod, name: &str, attempt: u32) -> String {
        let dir = kuberuntime::container::pod_log_directory(
            &self.node.pod_logs_dir,
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default(),
            uid(pod),
        );
        let path = format!(
            "{dir}/{}",
            kuberuntime::container::container_log_path(name, attempt)
        );
        let Ok(text) = std::fs::read_to_string(&path) else {
            return String::new();
        };
        let mut out = String::new();
        for line in text.lines() {
            // `<time> <stream> <F|P> <content>`
            let mut parts = line.splitn(4, ' ');
            let (_, _, tag, content) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next().unwrap_or_default(),
            );
            out.push_str(content);
            if tag != Some("P") {
                out.push('\n');
            }
        }
        let lines: Vec<&str> = out.lines().collect();
        let tail = lines[lines
            .len()
            .saturating_sub(crate::status::termination::MAX_LOG_LINES)..]
            .join("\n");
        let start = tail
            .len()
            .saturating_sub(crate::status::termination::MAX_LOG_BYTES);
        let start = (start..tail.len())
            .find(|i| tail.is_char_boundary(*i))
            .unwrap_or(tail.len());
        tail[start..].to_owned()
    }

    fn status(&self, pod: &Pod, runtime: &PodRuntimeStatus, state: &PodState) -> PodStatus {
        let mut ctx = StatusContext::new(self.node.runtime_name.clone(), Timestamp::now());
        ctx.previous.clone_from(&state.last_status);
        ctx.host_ips.clone_from(&self.node.node_ips);
        ctx.waiting.clone_from(&state.waiting);
        ctx.termination_messages
            .clone_from(&state.termination_messages);
        (ctx.readiness, ctx.startup) = self.probes.results().for_status(uid(pod));
        pod_status(pod, runtime, &ctx)
    }

    /// Stops every running container of the pod within `grace`.
    async fn kill_containers(&self, pod: &Pod, runtime: &PodRuntimeStatus, grace: Duration) {
        let running: Vec<_> = runtime
            .containers
            .iter()
            .filter(|c| c.is_running())
            .cloned()
            .collect();
        let pod_ip = pod_ip(runtime);
        let stops = running.iter().map(|c| {
            self.record(
                pod,
                Some(&c.name),
                EventType::Normal,
                "Killing",
                format!("Stopping container {}", c.name),
            );
            self.kill_container(pod, &c.name, &c.id, grace, pod_ip.as_deref())
        });
        futures::future::join_all(stops).await;
    }

    /// Terminates the pod: stops containers within `grace`, stops and removes sandboxes, and
    /// unmounts volumes. Returns the final status.
    pub async fn terminate(&self, pod: &Pod, grace: Duration, state: &mut PodState) -> PodStatus {
        self.probes.remove_pod(uid(pod));
        let runtime = pod_runtime_status(self.runtime.as_ref(), uid(pod))
            .await
            .unwrap_or_default();
        self.kill_containers(pod, &runtime, grace).await;
        let runtime = pod_runtime_status(self.runtime.as_ref(), uid(pod))
            .await
            .unwrap_or(runtime);
        self.read_termination_messages(pod, &runtime, state);
        let status = crate::status::terminate_pod_status(pod, &self.status(pod, &runtime, state));
        state.last_status = Some(status.clone());
        status
    }

    /// `activeDeadlineSeconds` passed: the pod fails with `DeadlineExceeded`, its containers
    /// are stopped within the grace period and its sandbox is stopped, as the kubelet's
    /// active deadline handler does.
    async fn deadline_exceeded(&self, pod: &Pod, state: &mut PodState) -> SyncOutcome {
        const MESSAGE: &str = "Pod was active on the node longer than the specified deadline";
        self.record(
            pod,
            None,
            EventType::Normal,
            "DeadlineExceeded",
            MESSAGE.to_owned(),
        );
        let grace = Duration::from_secs(u64::try_from(pod_grace(pod)).unwrap_or(30));
        let mut status = self.terminate(pod, grace, state).await;
        if let Err(err) = self.stop_sandboxes(uid(pod)).await {
            tracing::warn!(pod = %kuberuntime::format_pod(pod), %err, "stop sandbox");
        }
        status.phase = Some("Failed".into());
        status.reason = Some("DeadlineExceeded".into());
        status.message = Some(MESSAGE.into());
        state.last_status = Some(status.clone());
        SyncOutcome {
            status,
            requeue: None,
        }
    }

    /// Stops the sandboxes of a pod that finished (its containers stay for their logs).
    pub async fn stop_sandboxes(&self, uid: &str) -> Result<(), String> {
        let runtime = pod_runtime_status(self.runtime.as_ref(), uid)
            .await
            .map_err(|e| e.to_string())?;
        for sandbox in runtime.sandboxes.iter().filter(|s| s.is_ready()) {
            self.runtime
                .stop_pod_sandbox(&sandbox.id)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Removes what the runtime and the volume manager still hold of a terminated pod.
    pub async fn cleanup(&self, uid: &str) -> Result<(), String> {
        self.probes.remove_pod(uid);
        let runtime = pod_runtime_status(self.runtime.as_ref(), uid)
            .await
            .map_err(|e| e.to_string())?;
        for sandbox in &runtime.sandboxes {
            self.runtime
                .stop_pod_sandbox(&sandbox.id)
                .await
                .map_err(|e| e.to_string())?;
            self.runtime
                .remove_pod_sandbox(&sandbox.id)
                .await
                .map_err(|e| e.to_string())?;
        }
        // Containers whose sandbox is already gone.
        for container in &runtime.containers {
            let _ = self.runtime.remove_container(&container.id).await;
        }
        // The containers are gone: the volumes go now, even when the pod's cgroups cannot be
        // removed yet (a process still exiting keeps a cgroup v1 directory busy); that error
        // is returned after, so the clean-up is retried.
        self.volumes
            .unmount_pod(uid)
            .await
            .map_err(|e| e.to_string())?;
        if self.node.cgroups_per_qos
            && self.node.cgroup_driver == kuberuntime::CgroupDriver::Cgroupfs
        {
            super::cgroups::remove_pod_cgroups(&self.node.cgroup_root, uid)?;
        }
        let pod_dir = std::path::Path::new(&self.node.root_dir)
            .join("pods")
            .join(uid);
        if pod_dir.exists() {
            // Whatever is left (etc-hosts, termination message files) has no mounts: those
            // went with the volumes.
            std::fs::remove_dir_all(&pod_dir)
                .map_err(|e| format!("remove {}: {e}", pod_dir.display()))?;
        }
        let logs = self.node.logs_of(uid);
        for dir in logs {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }
}

/// The IP of the pod's ready sandbox, the default host of httpGet hooks.
fn pod_ip(runtime: &PodRuntimeStatus) -> Option<String> {
    runtime
        .latest_sandbox()
        .filter(|s| s.is_ready())
        .and_then(|s| s.ips.as_ref()?.first().cloned())
}

/// How long the pod may still be active under `activeDeadlineSeconds`, counted from its
/// start time (zero once passed); `None` without a deadline or before it started.
fn active_deadline_remaining(
    pod: &Pod,
    last: Option<&PodStatus>,
    now: Timestamp,
) -> Option<Duration> {
    let seconds = pod.spec.as_ref()?.active_deadline_seconds?;
    let started = last
        .and_then(|s| s.start_time.as_ref())
        .or_else(|| pod.status.as_ref().and_then(|s| s.start_time.as_ref()))?
        .0;
    let deadline = started + jiff::SignedDuration::from_secs(seconds.max(0));
    let left = deadline.duration_since(now);
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

/// The grace period of a pod's containers.
#[must_use]
pub fn pod_grace(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn pod(deadline: Option<i64>, started: Option<Timestamp>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                active_deadline_seconds: deadline,
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                start_time: started.map(Time),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn active_deadline_counts_from_the_start_time() {
        let start = Timestamp::from_second(1_700_000_000).unwrap();
        let at = |s: i64| start + jiff::SignedDuration::from_secs(s);
        assert_eq!(
            active_deadline_remaining(&pod(None, Some(start)), None, at(5)),
            None
        );
        assert_eq!(
            active_deadline_remaining(&pod(Some(10), None), None, at(5)),
            None
        );
        assert_eq!(
            active_deadline_remaining(&pod(Some(10), Some(start)), None, at(4)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            active_deadline_remaining(&pod(Some(10), Some(start)), None, at(11)),
            Some(Duration::ZERO)
        );
        // The agent's own last status wins over the API's copy.
        let last = PodStatus {
            start_time: Some(Time(at(3))),
            ..PodStatus::default()
        };
        assert_eq!(
            active_deadline_remaining(&pod(Some(10), Some(start)), Some(&last), at(11)),
            Some(Duration::from_secs(2))
        );
    }
}

//! Container lifecycle hooks (`postStart`, `preStop`) with exec, httpGet and sleep handlers,
//! and killing a container the kubelet's way: `preStop` first, within the grace period, then
//! `StopContainer` with what is left of it (upstream `lifecycle/handlers.go` and
//! `kuberuntime_container.go` `killContainer`, `executePreStopHook`).

use std::time::{Duration, Instant};

use ferrolet_cri::RuntimeService;
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};

use crate::events::EventType;
use crate::kuberuntime::format_pod;
use crate::pods::sync::{PodSyncer, pod_grace};
use crate::prober::check::http_target;
use crate::prober::http;
use crate::status::KillReason;

/// What `StopContainer` gets at least after a `preStop` hook used up the grace period.
pub const MINIMUM_GRACE: Duration = Duration::from_secs(2);

/// How long an httpGet `postStart` hook may take.
const POST_START_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a hook failed, worded as upstream's events are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

/// Runs one handler in (or against) the container.
pub async fn run_handler(
    runtime: &dyn RuntimeService,
    pod: &Pod,
    container: &Container,
    container_id: &str,
    handler: &LifecycleHandler,
    pod_ip: Option<&str>,
    http_timeout: Duration,
) -> Result<(), HookError> {
    let pod_name = format_pod(pod);
    let name = &container.name;
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        let failed = |cause: String| {
            HookError(format!(
                "Exec lifecycle hook ({command:?}) for Container {name:?} in Pod {pod_name:?} failed - error: {cause}"
            ))
        };
        // No timeout of its own: a preStop hook is bounded by the grace period.
        let response = runtime
            .exec_sync(container_id, &command, Duration::ZERO)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if response.exit_code != 0 {
            let mut output = String::from_utf8_lossy(&response.stdout).into_owned();
            output.push_str(&String::from_utf8_lossy(&response.stderr));
            return Err(failed(format!(
                "command '{}' exited with {}: {}, message: {output:?}",
                command.join(" "),
                response.exit_code,
                String::from_utf8_lossy(&response.stderr)
            )));
        }
        return Ok(());
    }
    if let Some(action) = &handler.http_get {
        let path = action.path.clone().unwrap_or_default();
        let failed = |cause: String| {
            HookError(format!(
                "HTTP lifecycle hook ({path}) for Container {name:?} in Pod {pod_name:?} failed - error: {cause}"
            ))
        };
        let (target, headers) = http_target(action, container, pod_ip).map_err(failed)?;
        // Like the kubelet, only a failed request fails the hook, not the status code.
        http::get(&target, &headers, http_timeout)
            .await
            .map_err(failed)?;
        return Ok(());
    }
    if let Some(sleep) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(
            u64::try_from(sleep.seconds).unwrap_or(0),
        ))
        .await;
        return Ok(());
    }
    Err(HookError(format!(
        "Lifecycle hook for Container {name:?} in Pod {pod_name:?} failed - error: invalid handler"
    )))
}

/// The grace period of a kill: a liveness or startup probe's own
/// `terminationGracePeriodSeconds` when it failed, else the pod's.
#[must_use]
pub fn kill_grace(
    pod: &Pod,
    container: Option<&Container>,
    reason: Option<KillReason>,
) -> Duration {
    let probe = match reason {
        Some(KillReason::LivenessProbe) => container.and_then(|c| c.liveness_probe.as_ref()),
        Some(KillReason::StartupProbe) => container.and_then(|c| c.startup_probe.as_ref()),
        _ => None,
    };
    let seconds = probe
        .and_then(|p| p.termination_grace_period_seconds)
        .unwrap_or_else(|| pod_grace(pod))
        .max(0);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// The spec of container `name` (app, init or sidecar).
#[must_use]
pub fn spec_of<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

impl PodSyncer {
    /// Runs the container's `postStart` hook, if any; on failure records
    /// `FailedPostStartHook`, kills the container and returns the message.
    pub(crate) async fn post_start(
        &self,
        pod: &Pod,
        container: &Container,
        container_id: &str,
        pod_ip: Option<&str>,
    ) -> Result<(), HookError> {
        let Some(handler) = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.as_ref())
        else {
            return Ok(());
        };
        let Err(err) = run_handler(
            self.runtime.as_ref(),
            pod,
            container,
            container_id,
            handler,
            pod_ip,
            POST_START_HTTP_TIMEOUT,
        )
        .await
        else {
            return Ok(());
        };
        self.record(
            pod,
            Some(&container.name),
            EventType::Warning,
            "FailedPostStartHook",
            err.to_string(),
        );
        self.record(
            pod,
            Some(&container.name),
            EventType::Normal,
            "Killing",
            "FailedPostStartHook".to_owned(),
        );
        let grace = kill_grace(pod, Some(container), None);
        self.kill_container(pod, &container.name, container_id, grace, pod_ip)
            .await;
        Err(err)
    }

    /// Kills one container: its `preStop` hook first (bounded by `grace`, recording
    /// `FailedPreStopHook` when it fails), then `StopContainer` with the rest of the grace
    /// period (at least [`MINIMUM_GRACE`] after a hook).
    pub(crate) async fn kill_container(
        &self,
        pod: &Pod,
        name: &str,
        container_id: &str,
        grace: Duration,
        pod_ip: Option<&str>,
    ) {
        let mut grace = grace;
        let container = spec_of(pod, name);
        let pre_stop = container
            .and_then(|c| c.lifecycle.as_ref())
            .and_then(|l| l.pre_stop.as_ref());
        if let (Some(container), Some(handler)) = (container, pre_stop)
            && !grace.is_zero()
        {
            let began = Instant::now();
            let hook = run_handler(
                self.runtime.as_ref(),
                pod,
                container,
                container_id,
                handler,
                pod_ip,
                grace,
            );
            match tokio::time::timeout(grace, hook).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => self.record(
                    pod,
                    Some(name),
                    EventType::Warning,
                    "FailedPreStopHook",
                    err.to_string(),
                ),
                Err(_) => tracing::info!(
                    pod = %format_pod(pod),
                    container = name,
                    grace_seconds = grace.as_secs(),
                    "preStop hook did not finish within the grace period"
                ),
            }
            grace = grace.saturating_sub(began.elapsed()).max(MINIMUM_GRACE);
        }
        if let Err(err) = self.runtime.stop_container(container_id, grace).await {
            tracing::warn!(pod = %format_pod(pod), container = name, %err, "stop container");
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodSpec, Probe};

    use super::*;

    #[test]
    fn a_failed_probe_kills_with_its_own_grace_period() {
        let container = Container {
            name: "app".into(),
            liveness_probe: Some(Probe {
                termination_grace_period_seconds: Some(5),
                ..Probe::default()
            }),
            ..Container::default()
        };
        let pod = Pod {
            spec: Some(PodSpec {
                termination_grace_period_seconds: Some(40),
                containers: vec![container.clone()],
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        let c = spec_of(&pod, "app");
        assert_eq!(
            kill_grace(&pod, c, Some(KillReason::LivenessProbe)),
            Duration::from_secs(5)
        );
        assert_eq!(
            kill_grace(&pod, c, Some(KillReason::StartupProbe)),
            Duration::from_secs(40)
        );
        assert_eq!(kill_grace(&pod, c, None), Duration::from_secs(40));
    }
}

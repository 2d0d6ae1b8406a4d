//! One probe worker: a task per (pod, container, probe kind) that probes every period while
//! its container runs and reports the results (upstream `worker.go` `run`).

use std::sync::Arc;

use ferrolet_cri::RuntimeService;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::check::{self, Outcome, Subject};
use super::state::{ContainerView, ProbeState, Step, Update};
use super::{ProbeKind, ProbeResult, ProbeTiming, ResultsStore};
use crate::events::{EventRecorder, EventType, container_field_path, pod_reference};

/// What every worker shares.
#[derive(Clone)]
pub struct WorkerContext {
    pub runtime: Arc<dyn RuntimeService>,
    pub results: Arc<ResultsStore>,
    pub events: EventRecorder,
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext").finish_non_exhaustive()
    }
}

/// One worker's fixed inputs.
#[derive(Debug)]
pub struct ProbeWorker {
    pub pod: Arc<Pod>,
    pub container: Container,
    pub kind: ProbeKind,
    pub probe: Probe,
    pub view: watch::Receiver<ContainerView>,
    pub cancel: CancellationToken,
}

impl ProbeWorker {
    fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or_default()
    }

    /// Probes until cancelled.
    pub async fn run(mut self, ctx: WorkerContext) {
        let timing = ProbeTiming::of(&self.probe, self.kind);
        let mut state = ProbeState::new(self.kind, timing);
        let mut ticker = tokio::time::interval(timing.period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let view = self.view.borrow_and_update().clone();
            let started = self.container.startup_probe.is_none()
                || view.container_id.as_deref().is_some_and(|id| {
                    ctx.results.get(self.uid(), id, ProbeKind::Startup)
                        == Some(ProbeResult::Success)
                });
            let (updates, step) = state.tick(&view, started, Timestamp::now());
            self.apply(&ctx, &state, updates);
            let mut delay = None;
            match step {
                Step::Probe => {
                    let outcome = self.probe_once(&ctx, &view, timing).await;
                    if let Some(result) = state.record(outcome)
                        && let Some(id) = state.container_id()
                    {
                        ctx.results.set(self.uid(), id, self.kind, result);
                    }
                }
                Step::Delay(d) => delay = Some(d),
                Step::Skip => {}
            }
            let delayed = async {
                match delay {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.cancel.cancelled() => break,
                _ = ticker.tick() => {}
                () = delayed => {}
                changed = self.view.changed() => if changed.is_err() { break },
            }
        }
        if let Some(id) = state.container_id() {
            ctx.results.remove(self.uid(), id, self.kind);
        }
    }

    fn apply(&self, ctx: &WorkerContext, state: &ProbeState, updates: Vec<Update>) {
        for update in updates {
            match update {
                Update::Switch { old, new } => {
                    if let Some(old) = old {
                        ctx.results.remove(self.uid(), &old, self.kind);
                    }
                    // A result seeded from the reported status (after an agent restart) stays.
                    if ctx.results.get(self.uid(), &new, self.kind).is_none() {
                        ctx.results
                            .set(self.uid(), &new, self.kind, self.kind.initial());
                    }
                }
                Update::Set(result) => {
                    if let Some(id) = state.container_id() {
                        ctx.results.set(self.uid(), id, self.kind, result);
                    }
                }
            }
        }
    }

    /// Runs the probe and records upstream's events; the outcome as the state machine takes
    /// it (`None` for an error).
    async fn probe_once(
        &self,
        ctx: &WorkerContext,
        view: &ContainerView,
        timing: ProbeTiming,
    ) -> Option<ProbeResult> {
        let id = view.container_id.as_deref()?;
        let subject = Subject {
            runtime: ctx.runtime.as_ref(),
            container: &self.container,
            container_id: id,
            pod_ip: view.pod_ip.as_deref(),
        };
        let outcome = check::run(&self.probe, subject, timing.timeout).await;
        let kind = self.kind.title();
        let (event, result) = match outcome {
            Outcome::Success => (None, Some(ProbeResult::Success)),
            Outcome::Warning(message) => (
                Some(("ProbeWarning", format!("{kind} probe warning: {message}"))),
                Some(ProbeResult::Success),
            ),
            Outcome::Failure(output) => (
                Some(("Unhealthy", format!("{kind} probe failed: {output}"))),
                Some(ProbeResult::Failure),
            ),
            Outcome::Error(err) => (
                Some(("Unhealthy", format!("{kind} probe errored: {err}"))),
                None,
            ),
        };
        crate::metrics::kubelet_metrics().record_probe(crate::metrics::ProbeResult {
            probe_type: kind,
            result: match result {
                Some(ProbeResult::Success) => "successful",
                Some(ProbeResult::Failure) => "failed",
                _ => "unknown",
            },
            container: &self.container.name,
            pod: self.pod.metadata.name.as_deref().unwrap_or_default(),
            namespace: self.pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod_uid: self.uid(),
        });
        tracing::debug!(
            pod = %crate::kuberuntime::format_pod(&self.pod),
            container = %self.container.name,
            probe = kind,
            ?result,
            "probe"
        );
        if let Some((reason, message)) = event {
            ctx.events.record(
                pod_reference(
                    &self.pod,
                    Some(container_field_path(&self.pod, &self.container.name)),
                ),
                EventType::Warning,
                reason,
                message,
            );
        }
        result
    }
}

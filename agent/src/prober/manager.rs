//! The probe workers of every pod: started for each container and probe kind the spec has,
//! told after each pod sync which instance of their container runs, stopped with the pod.
//!
//! After an agent restart the workers start from what the pod's reported status says of the
//! running instances: a container that was ready stays ready and one that had started stays
//! started until a probe says otherwise, and liveness starts as a success, so a restart of
//! the agent neither restarts containers nor flips the pod's readiness.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ferrolet_cri::RuntimeService;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::results::OnChange;
use super::state::ContainerView;
use super::worker::{ProbeWorker, WorkerContext};
use super::{ProbeKind, ProbeResult, ResultsStore};
use crate::events::EventRecorder;
use crate::status::{PodRuntimeStatus, ProbeResults};

type WorkerKey = (String, String, ProbeKind);

#[derive(Debug)]
struct WorkerHandle {
    view: watch::Sender<ContainerView>,
    cancel: CancellationToken,
}

/// The prober manager.
pub struct ProbeManager {
    ctx: WorkerContext,
    workers: Mutex<HashMap<WorkerKey, WorkerHandle>>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for ProbeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeManager").finish_non_exhaustive()
    }
}

/// The containers that are probed: app containers and sidecars (restartable init containers).
fn probed_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    let sidecars = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .chain(sidecars)
}

impl ProbeManager {
    /// A manager whose workers call `on_change` with a pod's UID when its results change
    /// (to wake the pod's worker); they all stop with `cancel`.
    #[must_use]
    pub fn new(
        runtime: Arc<dyn RuntimeService>,
        events: EventRecorder,
        on_change: OnChange,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            ctx: WorkerContext {
                runtime,
                results: Arc::new(ResultsStore::new(on_change)),
                events,
            },
            workers: Mutex::new(HashMap::new()),
            cancel,
        }
    }

    fn workers(&self) -> std::sync::MutexGuard<'_, HashMap<WorkerKey, WorkerHandle>> {
        self.workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The results store.
    #[must_use]
    pub fn results(&self) -> &ResultsStore {
        &self.ctx.results
    }

    /// Liveness and startup verdicts for the pod worker's decisions.
    #[must_use]
    pub fn for_actions(&self, uid: &str) -> ProbeResults {
        self.ctx.results.for_actions(uid)
    }

    /// After a sync: starts missing workers (seeding their first result from `reported`, the
    /// status reported last), stops those whose probe is gone, and tells each which instance
    /// of its container runs. Needs a runtime (spawns tasks).
    pub fn sync_pod(&self, pod: &Pod, runtime: &PodRuntimeStatus, reported: Option<&PodStatus>) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod_ip = runtime
            .latest_sandbox()
            .filter(|s| s.is_ready())
            .and_then(|s| s.ips.as_ref())
            .and_then(|ips| ips.first().cloned());
        let shared = Arc::new(pod.clone());
        let mut wanted = HashSet::new();
        let mut workers = self.workers();
        for container in probed_containers(pod) {
            let latest = runtime.latest(&container.name);
            let view = ContainerView {
                container_id: latest.map(|c| c.id.clone()),
                running: latest.is_some_and(crate::status::RuntimeContainer::is_running),
                started_at: latest.and_then(|c| c.started_at),
                pod_ip: pod_ip.clone(),
                terminating: pod.metadata.deletion_timestamp.is_some(),
            };
            for kind in ProbeKind::ALL {
                let Some(probe) = kind.of(container) else {
                    continue;
                };
                let key = (uid.clone(), container.name.clone(), kind);
                wanted.insert(key.clone());
                if let Some(handle) = workers.get(&key) {
                    handle.view.send_if_modified(|current| {
                        let changed = *current != view;
                        if changed {
                            current.clone_from(&view);
                        }
                        changed
                    });
                    continue;
                }
                if let Some(id) = &view.container_id
                    && view.running
                    && let Some(seed) = seed(kind, &container.name, id, reported)
                    && self.ctx.results.get(&uid, id, kind).is_none()
                {
                    self.ctx.results.set(&uid, id, kind, seed);
                }
                let (tx, rx) = watch::channel(view.clone());
                let cancel = self.cancel.child_token();
                let worker = ProbeWorker {
                    pod: shared.clone(),
                    container: container.clone(),
                    kind,
                    probe: probe.clone(),
                    view: rx,
                    cancel: cancel.clone(),
                };
                tokio::spawn(worker.run(self.ctx.clone()));
                workers.insert(key, WorkerHandle { view: tx, cancel });
            }
        }
        workers.retain(|key, handle| {
            let keep = key.0 != uid || wanted.contains(key);
            if !keep {
                handle.cancel.cancel();
            }
            keep
        });
    }

    /// Stops the pod's workers and forgets its results.
    pub fn remove_pod(&self, uid: &str) {
        self.workers().retain(|key, handle| {
            let keep = key.0 != uid;
            if !keep {
                handle.cancel.cancel();
            }
            keep
        });
        self.ctx.results.remove_pod(uid);
    }
}

/// The result a worker of a restarted agent starts with, from what was reported of the same
/// running instance: readiness as it was, startup as a success once it had started.
fn seed(
    kind: ProbeKind,
    name: &str,
    container_id: &str,
    reported: Option<&PodStatus>,
) -> Option<ProbeResult> {
    let reported = reported?;
    let status = reported
        .container_statuses
        .iter()
        .flatten()
        .chain(reported.init_container_statuses.iter().flatten())
        .find(|s| s.name == name)?;
    let same = status
        .container_id
        .as_deref()
        .and_then(|cid| cid.split_once("://"))
        .is_some_and(|(_, id)| id == container_id);
    let running = status.state.as_ref().is_some_and(|s| s.running.is_some());
    if !same || !running {
        return None;
    }
    match kind {
        ProbeKind::Readiness => Some(if status.ready {
            ProbeResult::Success
        } else {
            ProbeResult::Failure
        }),
        ProbeKind::Startup => (status.started == Some(true)).then_some(ProbeResult::Success),
        ProbeKind::Liveness => None,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateRunning, ContainerStatus};

    use super::*;

    fn reported(id: &str, ready: bool, started: bool) -> PodStatus {
        PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: "app".into(),
                container_id: Some(format!("containerd://{id}")),
                ready,
                started: Some(started),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        }
    }

    #[test]
    fn a_restarted_agent_keeps_what_it_reported_of_the_same_instance() {
        let status = reported("abc", true, true);
        assert_eq!(
            seed(ProbeKind::Readiness, "app", "abc", Some(&status)),
            Some(ProbeResult::Success)
        );
        assert_eq!(
            seed(ProbeKind::Startup, "app", "abc", Some(&status)),
            Some(ProbeResult::Success)
        );
        assert_eq!(seed(ProbeKind::Liveness, "app", "abc", Some(&status)), None);
        // Another instance, or nothing reported: the kind's initial result.
        assert_eq!(
            seed(ProbeKind::Readiness, "app", "def", Some(&status)),
            None
        );
        assert_eq!(seed(ProbeKind::Readiness, "app", "abc", None), None);
        let not_started = reported("abc", false, false);
        assert_eq!(
            seed(ProbeKind::Startup, "app", "abc", Some(&not_started)),
            None
        );
        assert_eq!(
            seed(ProbeKind::Readiness, "app", "abc", Some(&not_started)),
            Some(ProbeResult::Failure)
        );
    }
}

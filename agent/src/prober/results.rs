//! The probe results of every container instance, per pod: what the probe workers write and
//! the pod worker reads.

use std::collections::HashMap;
use std::sync::Mutex;

use super::ProbeKind;
use crate::status::ProbeResults;

/// The outcome a probe worker reports (after its thresholds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    Failure,
    /// Not known yet (a startup probe that has not run).
    Unknown,
}

/// Called with a pod UID when one of its results changed.
pub type OnChange = Box<dyn Fn(&str) + Send + Sync>;

/// One pod's results by (runtime container ID, kind).
type PodResults = HashMap<(String, ProbeKind), ProbeResult>;

/// Results by pod UID, then by (runtime container ID, kind).
pub struct ResultsStore {
    results: Mutex<HashMap<String, PodResults>>,
    on_change: OnChange,
}

impl std::fmt::Debug for ResultsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultsStore").finish_non_exhaustive()
    }
}

impl Default for ResultsStore {
    fn default() -> Self {
        Self::new(Box::new(|_| {}))
    }
}

impl ResultsStore {
    /// A store that calls `on_change` with the pod UID whenever a result changes.
    #[must_use]
    pub fn new(on_change: OnChange) -> Self {
        Self {
            results: Mutex::new(HashMap::new()),
            on_change,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodResults>> {
        self.results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The result of one container instance's probe, if any.
    #[must_use]
    pub fn get(&self, pod: &str, container_id: &str, kind: ProbeKind) -> Option<ProbeResult> {
        self.lock()
            .get(pod)?
            .get(&(container_id.to_owned(), kind))
            .copied()
    }

    /// Sets a result; wakes the pod's worker when it changed.
    pub fn set(&self, pod: &str, container_id: &str, kind: ProbeKind, result: ProbeResult) {
        let previous = self
            .lock()
            .entry(pod.to_owned())
            .or_default()
            .insert((container_id.to_owned(), kind), result);
        if previous != Some(result) {
            (self.on_change)(pod);
        }
    }

    /// Forgets one container instance's result of `kind`.
    pub fn remove(&self, pod: &str, container_id: &str, kind: ProbeKind) {
        if let Some(results) = self.lock().get_mut(pod) {
            results.remove(&(container_id.to_owned(), kind));
        }
    }

    /// Forgets everything of a pod.
    pub fn remove_pod(&self, pod: &str) {
        self.lock().remove(pod);
    }

    /// What the pod worker's decisions need: failed liveness (`false`) and startup results.
    #[must_use]
    pub fn for_actions(&self, pod: &str) -> ProbeResults {
        let mut out = ProbeResults::default();
        for ((id, kind), result) in self.lock().get(pod).into_iter().flatten() {
            match (kind, result) {
                (ProbeKind::Liveness, r) => {
                    out.liveness.insert(id.clone(), *r != ProbeResult::Failure);
                }
                (ProbeKind::Startup, ProbeResult::Success | ProbeResult::Failure) => {
                    out.startup
                        .insert(id.clone(), *result == ProbeResult::Success);
                }
                _ => {}
            }
        }
        out
    }

    /// What the status needs: readiness and startup results (`true` = success) by container
    /// ID; a container without an entry is judged by whether it has such a probe.
    #[must_use]
    pub fn for_status(&self, pod: &str) -> (HashMap<String, bool>, HashMap<String, bool>) {
        let mut readiness = HashMap::new();
        let mut startup = HashMap::new();
        for ((id, kind), result) in self.lock().get(pod).into_iter().flatten() {
            let ok = *result == ProbeResult::Success;
            match kind {
                ProbeKind::Readiness => {
                    readiness.insert(id.clone(), ok);
                }
                ProbeKind::Startup => {
                    startup.insert(id.clone(), ok);
                }
                ProbeKind::Liveness => {}
            }
        }
        (readiness, startup)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn wakes_the_pod_only_on_change_and_maps_results() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let counter = wakes.clone();
        let store = ResultsStore::new(Box::new(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        store.set("p", "c1", ProbeKind::Liveness, ProbeResult::Success);
        store.set("p", "c1", ProbeKind::Liveness, ProbeResult::Success);
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        store.set("p", "c1", ProbeKind::Liveness, ProbeResult::Failure);
        store.set("p", "c1", ProbeKind::Startup, ProbeResult::Unknown);
        store.set("p", "c1", ProbeKind::Readiness, ProbeResult::Success);
        assert_eq!(wakes.load(Ordering::SeqCst), 4);
        let actions = store.for_actions("p");
        assert_eq!(actions.liveness.get("c1"), Some(&false));
        assert!(actions.startup.is_empty(), "unknown startup is no verdict");
        let (ready, started) = store.for_status("p");
        assert_eq!(ready.get("c1"), Some(&true));
        assert_eq!(started.get("c1"), Some(&false));
        store.remove_pod("p");
        assert_eq!(store.get("p", "c1", ProbeKind::Liveness), None);
    }
}

//! The scheduling queue: which pending pods to try now, and when to retry the ones that did
//! not fit (kube-scheduler's active / backoff / unschedulable queues, reduced to their rules).
//!
//! A new pod is tried at once. A pod that failed waits out a per-pod backoff that doubles with
//! each attempt up to a bound (upstream: 1 s to 10 s), and is then retried as soon as the
//! cluster changed in a way that can help (a node added or changed, a bound pod gone) — or,
//! without such a change, once it has waited `unschedulable_timeout` (upstream: 5 min).
//! Pure: the caller passes the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Retry timing of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Backoff after the first failed attempt.
    pub initial: Duration,
    /// Upper bound of the backoff.
    pub max: Duration,
    /// How long an unschedulable pod waits for a cluster change before it is retried anyway.
    pub unschedulable_timeout: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
            unschedulable_timeout: Duration::from_mins(1),
        }
    }
}

impl BackoffConfig {
    /// The backoff after `attempts` failed attempts: `initial × 2^(attempts-1)`, at most `max`.
    #[must_use]
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    fingerprint: u64,
    attempts: u32,
    failed: Option<Failure>,
}

#[derive(Debug, Clone, Copy)]
struct Failure {
    backoff_until: Instant,
    retry_anyway_at: Instant,
    cluster_changed: bool,
}

/// Pending pods by UID, with their attempt history.
#[derive(Debug, Clone, Default)]
pub struct SchedulingQueue {
    config: BackoffConfig,
    entries: HashMap<String, Entry>,
}

impl SchedulingQueue {
    /// An empty queue.
    #[must_use]
    pub fn new(config: BackoffConfig) -> Self {
        Self {
            config,
            entries: HashMap::new(),
        }
    }

    /// Makes the queue hold exactly the given pending pods (UID and a fingerprint of what can
    /// change a decision, see [`super::cache::scheduling_fingerprint`]). New pods are ready at
    /// once; a pod whose fingerprint changed (its spec or labels were updated) is retried
    /// after its backoff.
    pub fn sync<'a>(&mut self, pending: impl IntoIterator<Item = (&'a str, u64)>) {
        let mut next = HashMap::new();
        for (uid, fingerprint) in pending {
            let entry = match self.entries.remove(uid) {
                Some(mut entry) => {
                    if entry.fingerprint != fingerprint {
                        entry.fingerprint = fingerprint;
                        if let Some(failure) = entry.failed.as_mut() {
                            failure.cluster_changed = true;
                        }
                    }
                    entry
                }
                None => Entry {
                    fingerprint,
                    attempts: 0,
                    failed: None,
                },
            };
            next.insert(uid.to_string(), entry);
        }
        self.entries = next;
    }

    /// Records a failed attempt.
    pub fn mark_failed(&mut self, uid: &str, now: Instant) {
        let config = self.config;
        if let Some(entry) = self.entries.get_mut(uid) {
            entry.attempts = entry.attempts.saturating_add(1);
            entry.failed = Some(Failure {
                backoff_until: now + config.backoff(entry.attempts),
                retry_anyway_at: now + config.unschedulable_timeout,
                cluster_changed: false,
            });
        }
    }

    /// Forgets a pod (bound, deleted, or handed to another scheduler).
    pub fn remove(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    /// A cluster change that may make unschedulable pods fit: they become eligible once their
    /// backoff is over.
    pub fn cluster_changed(&mut self) {
        for failure in self.entries.values_mut().filter_map(|e| e.failed.as_mut()) {
            failure.cluster_changed = true;
        }
    }

    /// When a pod that failed becomes ready; `None` for a pod that never failed (ready now).
    fn ready_at(entry: &Entry) -> Option<Instant> {
        entry.failed.map(|f| {
            if f.cluster_changed {
                f.backoff_until
            } else {
                f.backoff_until.max(f.retry_anyway_at)
            }
        })
    }

    /// The pods to try at `now`, by UID (unordered: the caller orders by priority).
    #[must_use]
    pub fn ready(&self, now: Instant) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, entry)| Self::ready_at(entry).is_none_or(|at| at <= now))
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    /// When the next failed pod becomes ready, if any is waiting.
    #[must_use]
    pub fn next_ready_at(&self) -> Option<Instant> {
        self.entries.values().filter_map(Self::ready_at).min()
    }

    /// How many attempts failed for a pod so far.
    #[must_use]
    pub fn attempts(&self, uid: &str) -> u32 {
        self.entries.get(uid).map_or(0, |e| e.attempts)
    }

    /// How many pods the queue holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the queue is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
            unschedulable_timeout: Duration::from_mins(1),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_bound() {
        let c = config();
        let secs: Vec<u64> = (1..=6).map(|n| c.backoff(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(c.backoff(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn new_pods_are_ready_at_once() {
        let mut q = SchedulingQueue::new(config());
        q.sync([("a", 1), ("b", 1)]);
        let mut ready = q.ready(Instant::now());
        ready.sort();
        assert_eq!(ready, vec!["a", "b"]);
        assert_eq!(q.next_ready_at(), None);
    }

    #[test]
    fn a_failed_pod_waits_for_a_cluster_change_and_its_backoff() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new(config());
        q.sync([("a", 1)]);
        q.mark_failed("a", t0);
        assert!(
            q.ready(t0 + Duration::from_secs(5)).is_empty(),
            "no change yet"
        );
        q.cluster_changed();
        assert!(
            q.ready(t0 + Duration::from_millis(500)).is_empty(),
            "backoff"
        );
        assert_eq!(q.ready(t0 + Duration::from_secs(1)), vec!["a"]);
        assert_eq!(q.next_ready_at(), Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn without_a_change_a_failed_pod_is_retried_after_the_timeout() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new(config());
        q.sync([("a", 1)]);
        q.mark_failed("a", t0);
        assert!(q.ready(t0 + Duration::from_secs(59)).is_empty());
        assert_eq!(q.ready(t0 + Duration::from_mins(1)), vec!["a"]);
        assert_eq!(q.next_ready_at(), Some(t0 + Duration::from_mins(1)));
    }

    #[test]
    fn backoff_grows_with_attempts() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new(config());
        q.sync([("a", 1)]);
        for _ in 0..3 {
            q.mark_failed("a", t0);
        }
        assert_eq!(q.attempts("a"), 3);
        q.cluster_changed();
        assert!(q.ready(t0 + Duration::from_secs(3)).is_empty());
        assert_eq!(q.ready(t0 + Duration::from_secs(4)), vec!["a"]);
    }

    #[test]
    fn an_updated_pod_counts_as_a_change() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new(config());
        q.sync([("a", 1)]);
        q.mark_failed("a", t0);
        q.sync([("a", 1)]);
        assert!(q.ready(t0 + Duration::from_secs(2)).is_empty());
        q.sync([("a", 2)]);
        assert_eq!(q.ready(t0 + Duration::from_secs(2)), vec!["a"]);
    }

    #[test]
    fn sync_drops_pods_that_are_no_longer_pending() {
        let mut q = SchedulingQueue::new(config());
        q.sync([("a", 1), ("b", 1)]);
        q.sync([("b", 1)]);
        assert_eq!(q.len(), 1);
        q.remove("b");
        assert!(q.is_empty());
    }
}

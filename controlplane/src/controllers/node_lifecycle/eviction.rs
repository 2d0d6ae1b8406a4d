//! When a pod on a node with `NoExecute` taints must go (kube-controller-manager's taint
//! eviction controller, `processPodOnNode` and `getMinTolerationTime`):
//!
//! - a `NoExecute` taint that no toleration tolerates evicts at once;
//! - each taint is matched by the pod's first toleration that tolerates it; a toleration
//!   without `tolerationSeconds` tolerates forever, one with `tolerationSeconds <= 0` not at all;
//! - otherwise the pod goes at the earliest `taint start + tolerationSeconds`.
//!
//! Pods that do not tolerate `not-ready:NoExecute` or `unreachable:NoExecute` themselves get
//! the tolerations the `DefaultTolerationSeconds` admission plugin would have added, with the
//! configured default (300 s upstream). Upstream measures every taint from the moment the
//! controller saw the node's taints change; here each taint is measured from its own
//! `timeAdded` (the time the controller first saw it, for a taint without one), which gives
//! the same deadlines and survives a controller restart.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::scheduler::taints::{NO_EXECUTE, TAINT_NOT_READY, TAINT_UNREACHABLE, taint, tolerates};

/// What to do with a pod on a node with `NoExecute` taints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// The pod tolerates every `NoExecute` taint forever (or there is none).
    Never,
    /// Evict now.
    Now,
    /// Evict at this time, unless the taints go first.
    At(Timestamp),
}

impl Eviction {
    /// Whether the pod must be deleted at `now`.
    #[must_use]
    pub fn is_due(self, now: Timestamp) -> bool {
        match self {
            Self::Never => false,
            Self::Now => true,
            Self::At(at) => at <= now,
        }
    }
}

/// The pod's tolerations plus, for each of `not-ready:NoExecute` and `unreachable:NoExecute`
/// it does not tolerate, an `Exists` toleration for `default_seconds`
/// (the `DefaultTolerationSeconds` admission plugin).
#[must_use]
pub fn effective_tolerations(pod: &Pod, default_seconds: Duration) -> Vec<Toleration> {
    let mut tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let seconds = i64::try_from(default_seconds.as_secs()).unwrap_or(i64::MAX);
    for key in [TAINT_NOT_READY, TAINT_UNREACHABLE] {
        let no_execute = taint(key, NO_EXECUTE);
        if !tolerations.iter().any(|t| tolerates(t, &no_execute)) {
            tolerations.push(Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".into()),
                effect: Some(NO_EXECUTE.into()),
                toleration_seconds: Some(seconds),
                value: None,
            });
        }
    }
    tolerations
}

/// The eviction of a pod with `tolerations` from a node with the `NoExecute` `taints`, each
/// paired with the time it started.
#[must_use]
pub fn eviction_for(tolerations: &[Toleration], taints: &[(Taint, Timestamp)]) -> Eviction {
    let mut earliest: Option<Timestamp> = None;
    for (taint, since) in taints.iter().filter(|(t, _)| t.effect == NO_EXECUTE) {
        let Some(toleration) = tolerations.iter().find(|t| tolerates(t, taint)) else {
            return Eviction::Now;
        };
        let Some(seconds) = toleration.toleration_seconds else {
            continue;
        };
        if seconds <= 0 {
            return Eviction::Now;
        }
        let deadline = since
            .checked_add(SignedDuration::from_secs(seconds))
            .unwrap_or(Timestamp::MAX);
        earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
    }
    earliest.map_or(Eviction::Never, Eviction::At)
}

/// When the controller first saw each `NoExecute` taint that has no `timeAdded`, by node.
#[derive(Debug, Clone, Default)]
pub struct TaintClock {
    first_seen: HashMap<(String, String, String), Timestamp>,
}

impl TaintClock {
    /// The node's `NoExecute` taints, each with its start: `timeAdded`, or when first seen.
    /// Taints no longer on the node are forgotten.
    pub fn no_execute_taints(
        &mut self,
        node: &str,
        taints: &[Taint],
        now: Timestamp,
    ) -> Vec<(Taint, Timestamp)> {
        let mut current = Vec::new();
        let mut started = Vec::new();
        for taint in taints.iter().filter(|t| t.effect == NO_EXECUTE) {
            let key = (
                node.to_string(),
                taint.key.clone(),
                taint.value.clone().unwrap_or_default(),
            );
            let since = match &taint.time_added {
                Some(time) => time.0,
                None => *self.first_seen.entry(key.clone()).or_insert(now),
            };
            current.push(key);
            started.push((taint.clone(), since));
        }
        self.first_seen
            .retain(|key, _| key.0 != node || current.contains(key));
        started
    }

    /// Forgets the taints of nodes that no longer exist.
    pub fn retain_nodes(&mut self, existing: &HashSet<&str>) {
        self.first_seen
            .retain(|key, _| existing.contains(key.0.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: (!key.is_empty()).then(|| key.to_string()),
            operator: Some("Exists".into()),
            effect: Some(NO_EXECUTE.into()),
            toleration_seconds: seconds,
            value: None,
        }
    }

    fn pod(tolerations: Vec<Toleration>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                tolerations: Some(tolerations),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    const DEFAULT: Duration = Duration::from_mins(5);

    #[test]
    fn a_pod_without_tolerations_gets_the_default_on_an_unreachable_node() {
        let tolerations = effective_tolerations(&pod(vec![]), DEFAULT);
        let taints = [(taint(TAINT_UNREACHABLE, NO_EXECUTE), ts(100))];
        assert_eq!(eviction_for(&tolerations, &taints), Eviction::At(ts(400)));
        assert!(!Eviction::At(ts(400)).is_due(ts(399)));
        assert!(Eviction::At(ts(400)).is_due(ts(400)));
    }

    #[test]
    fn the_pods_own_toleration_seconds_win_over_the_default() {
        let own = pod(vec![toleration(TAINT_UNREACHABLE, Some(30))]);
        let tolerations = effective_tolerations(&own, DEFAULT);
        assert_eq!(tolerations.len(), 2, "only not-ready gets the default");
        let taints = [(taint(TAINT_UNREACHABLE, NO_EXECUTE), ts(100))];
        assert_eq!(eviction_for(&tolerations, &taints), Eviction::At(ts(130)));
    }

    #[test]
    fn a_toleration_without_seconds_tolerates_forever() {
        let daemon = pod(vec![
            toleration(TAINT_UNREACHABLE, None),
            toleration(TAINT_NOT_READY, None),
        ]);
        let tolerations = effective_tolerations(&daemon, DEFAULT);
        let taints = [(taint(TAINT_UNREACHABLE, NO_EXECUTE), ts(100))];
        assert_eq!(eviction_for(&tolerations, &taints), Eviction::Never);
        assert!(!Eviction::Never.is_due(Timestamp::MAX));
    }

    #[test]
    fn an_untolerated_no_execute_taint_evicts_now() {
        let tolerations = effective_tolerations(&pod(vec![]), DEFAULT);
        let taints = [
            (taint(TAINT_UNREACHABLE, NO_EXECUTE), ts(100)),
            (taint("maintenance", NO_EXECUTE), ts(100)),
        ];
        assert_eq!(eviction_for(&tolerations, &taints), Eviction::Now);
        let zero = pod(vec![toleration("maintenance", Some(0))]);
        let taints = [(taint("maintenance", NO_EXECUTE), ts(100))];
        assert_eq!(
            eviction_for(&effective_tolerations(&zero, DEFAULT), &taints),
            Eviction::Now
        );
    }

    #[test]
    fn the_earliest_deadline_over_all_taints_counts() {
        let p = pod(vec![toleration("a", Some(60)), toleration("b", Some(600))]);
        let taints = [
            (taint("a", NO_EXECUTE), ts(1000)),
            (taint("b", NO_EXECUTE), ts(0)),
        ];
        assert_eq!(
            eviction_for(&effective_tolerations(&p, DEFAULT), &taints),
            Eviction::At(ts(600))
        );
    }

    #[test]
    fn the_first_matching_toleration_decides() {
        let p = pod(vec![
            toleration("", None),
            toleration(TAINT_UNREACHABLE, Some(10)),
        ]);
        let taints = [(taint(TAINT_UNREACHABLE, NO_EXECUTE), ts(0))];
        assert_eq!(
            eviction_for(&effective_tolerations(&p, DEFAULT), &taints),
            Eviction::Never
        );
    }

    #[test]
    fn no_schedule_taints_do_not_evict() {
        let taints = [(taint("x", "NoSchedule"), ts(0))];
        assert_eq!(eviction_for(&[], &taints), Eviction::Never);
    }

    #[test]
    fn the_taint_clock_uses_time_added_or_first_sight() {
        let mut clock = TaintClock::default();
        let mut stamped = taint(TAINT_UNREACHABLE, NO_EXECUTE);
        stamped.time_added = Some(Time(ts(7)));
        let unstamped = taint("maintenance", NO_EXECUTE);
        let seen = clock.no_execute_taints("n1", &[stamped.clone(), unstamped.clone()], ts(50));
        assert_eq!(seen[0].1, ts(7));
        assert_eq!(seen[1].1, ts(50));
        let seen = clock.no_execute_taints("n1", std::slice::from_ref(&unstamped), ts(80));
        assert_eq!(seen[0].1, ts(50), "first sight is kept");
        // Gone and back: a new start.
        clock.no_execute_taints("n1", &[], ts(90));
        assert_eq!(
            clock.no_execute_taints("n1", std::slice::from_ref(&unstamped), ts(95))[0].1,
            ts(95)
        );
        clock.retain_nodes(&HashSet::new());
        assert_eq!(
            clock.no_execute_taints("n1", &[unstamped], ts(99))[0].1,
            ts(99)
        );
    }
}

//! Scoring of the nodes that passed the filters, with kube-scheduler's formulas and default
//! plugin weights: `NodeResourcesFit` (`LeastAllocated` over cpu and memory, weight 1),
//! `TaintToleration` (fewer untolerated `PreferNoSchedule` taints is better, weight 3) and
//! `NodeAffinity` (preferred terms, weight 2). Upstream breaks ties at random; ferrolet picks
//! the lowest node name so that a decision can be reproduced.

use k8s_openapi::api::core::v1::{Pod, Toleration};

use super::affinity;
use super::node_info::NodeInfo;
use super::resources::PodResources;
use super::taints::{self, PREFER_NO_SCHEDULE};

/// The highest score one plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;
/// Weight of `NodeResourcesFit` in the default profile.
pub const WEIGHT_RESOURCES_FIT: i64 = 1;
/// Weight of `TaintToleration` in the default profile.
pub const WEIGHT_TAINT_TOLERATION: i64 = 3;
/// Weight of `NodeAffinity` in the default profile.
pub const WEIGHT_NODE_AFFINITY: i64 = 2;

/// `(allocatable - requested) * 100 / allocatable`, 0 when nothing is allocatable or the
/// request exceeds it (`leastRequestedScore`).
#[must_use]
pub fn least_requested(requested: i64, allocatable: i64) -> i64 {
    if allocatable <= 0 || requested > allocatable {
        return 0;
    }
    // i128: (allocatable - requested) * 100 overflows i64 for exabyte-sized memory.
    let score =
        i128::from(allocatable - requested) * i128::from(MAX_NODE_SCORE) / i128::from(allocatable);
    i64::try_from(score).unwrap_or(0)
}

/// `NodeResourcesFit`'s `LeastAllocated` score: the average of the cpu and memory scores, where
/// requested is what the pods on the node request plus what this pod requests, each
/// container without a request counting the defaults.
#[must_use]
pub fn least_allocated(pod: &PodResources, node: &NodeInfo) -> i64 {
    let allocatable = node.allocatable();
    let cpu = least_requested(
        node.non_zero_milli_cpu()
            .saturating_add(pod.non_zero_milli_cpu),
        allocatable.milli_cpu,
    );
    let memory = least_requested(
        node.non_zero_memory().saturating_add(pod.non_zero_memory),
        allocatable.memory,
    );
    // Equal weights for cpu and memory: the weighted average is the midpoint.
    i64::midpoint(cpu, memory)
}

/// How many `PreferNoSchedule` taints of the node the pod does not tolerate (`TaintToleration`'s
/// raw score; only tolerations with no effect or `PreferNoSchedule` count).
#[must_use]
pub fn intolerable_prefer_no_schedule(pod: &Pod, node: &NodeInfo) -> i64 {
    let tolerations: Vec<Toleration> = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| {
            t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == PREFER_NO_SCHEDULE)
        })
        .cloned()
        .collect();
    let count = node
        .node()
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.effect == PREFER_NO_SCHEDULE && !taints::tolerated_by(&tolerations, t))
        .count();
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Scales raw scores to `0..=100` relative to the highest one, reversed if lower is better
/// (`helper.DefaultNormalizeScore`).
pub fn normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.fill(MAX_NODE_SCORE);
        }
        return;
    }
    for score in scores.iter_mut() {
        let scaled = MAX_NODE_SCORE * *score / max;
        *score = if reverse {
            MAX_NODE_SCORE - scaled
        } else {
            scaled
        };
    }
}

/// A feasible node and its weighted total score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeScore {
    /// The node's name.
    pub name: String,
    /// The sum of each plugin's normalized score times its weight.
    pub total: i64,
}

/// Scores every feasible node.
#[must_use]
pub fn score_nodes(pod: &Pod, resources: &PodResources, nodes: &[&NodeInfo]) -> Vec<NodeScore> {
    let mut taint_scores: Vec<i64> = nodes
        .iter()
        .map(|n| intolerable_prefer_no_schedule(pod, n))
        .collect();
    normalize(&mut taint_scores, true);
    let mut affinity_scores: Vec<i64> = nodes
        .iter()
        .map(|n| affinity::preferred_weight(pod, n.node()))
        .collect();
    normalize(&mut affinity_scores, false);
    nodes
        .iter()
        .zip(taint_scores)
        .zip(affinity_scores)
        .map(|((node, taint), affinity)| NodeScore {
            name: node.name().to_string(),
            total: least_allocated(resources, node) * WEIGHT_RESOURCES_FIT
                + taint * WEIGHT_TAINT_TOLERATION
                + affinity * WEIGHT_NODE_AFFINITY,
        })
        .collect()
}

/// The node with the highest total; among equals, the lowest name.
#[must_use]
pub fn select_host(scores: &[NodeScore]) -> Option<&NodeScore> {
    scores
        .iter()
        .min_by(|a, b| b.total.cmp(&a.total).then_with(|| a.name.cmp(&b.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_requested_scales_free_share_to_100() {
        assert_eq!(least_requested(0, 4000), 100);
        assert_eq!(least_requested(1000, 4000), 75);
        assert_eq!(least_requested(3999, 4000), 0);
        assert_eq!(least_requested(4000, 4000), 0);
        assert_eq!(least_requested(5000, 4000), 0);
        assert_eq!(least_requested(10, 0), 0);
        assert_eq!(least_requested(1, i64::MAX), 99);
    }

    #[test]
    fn normalize_scales_and_reverses() {
        let mut s = vec![0, 1, 2];
        normalize(&mut s, true);
        assert_eq!(s, vec![100, 50, 0]);
        let mut s = vec![0, 0];
        normalize(&mut s, true);
        assert_eq!(s, vec![100, 100]);
        let mut s = vec![0, 0];
        normalize(&mut s, false);
        assert_eq!(s, vec![0, 0]);
        let mut s = vec![5, 10, 3];
        normalize(&mut s, false);
        assert_eq!(s, vec![50, 100, 30]);
    }

    #[test]
    fn select_host_prefers_score_then_name() {
        let s = |name: &str, total| NodeScore {
            name: name.into(),
            total,
        };
        let scores = vec![s("c", 10), s("b", 20), s("a", 20)];
        assert_eq!(select_host(&scores).map(|n| n.name.as_str()), Some("a"));
        assert_eq!(select_host(&[]), None);
    }
}

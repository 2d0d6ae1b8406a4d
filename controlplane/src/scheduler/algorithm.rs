//! One scheduling decision: `PreFilter`, Filter on every candidate node, Score on the feasible
//! ones, pick the best (kube-scheduler's `schedulePod`). Pure: no I/O, no clock.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use super::affinity::{self, NodeNamePreFilter};
use super::filters::{self, plugin};
use super::fit_error::FitError;
use super::node_info::NodeInfo;
use super::resources::{PodResources, ResourceError};
use super::score;

/// `PodScheduled` condition reason when no node fits.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
/// `PodScheduled` condition reason when scheduling failed for another cause.
pub const REASON_SCHEDULER_ERROR: &str = "SchedulerError";

/// `NodeAffinity`'s `PreFilter` message when the required terms pin disjoint node names.
pub const MSG_AFFINITY_CONFLICT: &str = "pod affinity terms conflict";

/// Where a pod should go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleResult {
    /// The chosen node.
    pub node: String,
    /// How many nodes the filters looked at.
    pub evaluated_nodes: usize,
    /// How many of them fit.
    pub feasible_nodes: usize,
}

/// Why a pod could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cluster has no nodes at all.
    #[error("no nodes available to schedule pods")]
    NoNodesAvailable,
    /// No node passed the filters.
    #[error("{0}")]
    Unschedulable(FitError),
    /// The pod's resource requests cannot be read.
    #[error("reading the pod's resource requests: {0}")]
    InvalidPod(#[source] ResourceError),
}

impl ScheduleError {
    /// The `PodScheduled=False` condition reason for this failure.
    #[must_use]
    pub fn condition_reason(&self) -> &'static str {
        match self {
            Self::NoNodesAvailable | Self::Unschedulable(_) => REASON_UNSCHEDULABLE,
            Self::InvalidPod(_) => REASON_SCHEDULER_ERROR,
        }
    }
}

/// Picks a node for `pod` among `nodes` (each with the pods already on it).
pub fn schedule_pod(pod: &Pod, nodes: &[NodeInfo]) -> Result<ScheduleResult, ScheduleError> {
    if nodes.is_empty() {
        return Err(ScheduleError::NoNodesAvailable);
    }
    let resources = PodResources::of(pod).map_err(ScheduleError::InvalidPod)?;
    let mut fit_error = FitError {
        num_all_nodes: nodes.len(),
        ..FitError::default()
    };

    let candidates: Vec<&NodeInfo> = match affinity::node_name_prefilter(pod) {
        NodeNamePreFilter::AllNodes => nodes.iter().collect(),
        NodeNamePreFilter::Only(names) => {
            fit_error.absent_nodes_reason = Some(format!(
                "node(s) didn't satisfy plugin(s) [{}]",
                plugin::NODE_AFFINITY
            ));
            nodes.iter().filter(|n| names.contains(n.name())).collect()
        }
        NodeNamePreFilter::Conflict => {
            fit_error.pre_filter_msg = Some(MSG_AFFINITY_CONFLICT.to_string());
            return Err(ScheduleError::Unschedulable(fit_error));
        }
    };

    let mut feasible = Vec::new();
    let mut rejected = BTreeMap::new();
    for node in &candidates {
        match filters::run_filters(pod, &resources, node) {
            Ok(()) => feasible.push(*node),
            Err(rejection) => {
                rejected.insert(node.name().to_string(), rejection.reasons);
            }
        }
    }
    if feasible.is_empty() {
        fit_error.node_reasons = rejected;
        return Err(ScheduleError::Unschedulable(fit_error));
    }

    let scores = score::score_nodes(pod, &resources, &feasible);
    let best = score::select_host(&scores)
        .map(|s| s.name.clone())
        .unwrap_or_default();
    Ok(ScheduleResult {
        node: best,
        evaluated_nodes: candidates.len(),
        feasible_nodes: feasible.len(),
    })
}

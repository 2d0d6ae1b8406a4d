//! The node's presence in the cluster: its Node object (registration and status, as the
//! kubelet's `kubelet_node_status.go` and `nodestatus` setters) and its Lease in
//! `kube-node-lease` (as the kubelet's `nodelease` controller).
//!
//! The computation is pure and unit-tested ([`status`], [`conditions`]); the
//! two loops, [`NodeStatusManager`] and [`LeaseRenewer`], talk to the API server through a
//! kube-rs [`kube::Client`] and take a cancellation token.

pub mod conditions;
pub mod host;
mod lease;
mod manager;
pub mod registration;
pub mod status;

use std::time::Duration;

pub use conditions::{RuntimeHealth, pleg_unhealthy_message};
pub use host::{HostInfo, HostSnapshot, LinuxHost, StaticHost};
pub use lease::{LEASE_NAMESPACE, LeaseRenewer};
pub use manager::{NodeStatusManager, PlegHealth, SyncOutcome, status_patch};
pub use registration::NodeIdentity;
pub use status::{NodeStatusInputs, compute_node_status, node_status_changed};

/// The version the node reports as `nodeInfo.kubeletVersion`: the Kubernetes API it follows,
/// marked as ferrolet's.
pub const KUBELET_VERSION: &str = "v1.33.0-ferrolet";

/// The result of the node loops' steps.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed step of registration, status reporting or lease renewal; each names the node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host's facts could not be read.
    #[error("node {node}: read host facts: {source}")]
    HostInfo {
        node: String,
        #[source]
        source: host::HostError,
    },
    /// Creating the Node failed.
    #[error("node {node}: register Node: {source}")]
    RegisterFailed {
        node: String,
        #[source]
        source: kube::Error,
    },
    /// The Node exists, but reading or reconciling it failed.
    #[error("node {node}: adopt existing Node: {source}")]
    AdoptFailed {
        node: String,
        #[source]
        source: kube::Error,
    },
    /// The Node object does not exist (deleted, or not registered yet).
    #[error("node {node}: Node not found")]
    NodeNotFound { node: String },
    /// Reading the Node failed.
    #[error("node {node}: get Node: {source}")]
    GetNodeFailed {
        node: String,
        #[source]
        source: kube::Error,
    },
    /// Patching `nodes/<name>/status` failed.
    #[error("node {node}: patch Node status: {source}")]
    PatchStatusFailed {
        node: String,
        #[source]
        source: kube::Error,
    },
    /// Reading the Lease failed.
    #[error("node {node}: get Lease kube-node-lease/{node}: {source}")]
    GetLeaseFailed {
        node: String,
        #[source]
        source: kube::Error,
    },
    /// The Lease is missing and cannot be created before its owner, the Node, is known.
    #[error("node {node}: create Lease kube-node-lease/{node}: owner Node unknown: {source}")]
    LeaseOwnerUnknown {
        node: String,
        #[source]
        source: Box<Error>,
    },
    /// Creating the Lease failed.
    #[error("node {node}: create Lease kube-node-lease/{node}: {source}")]
    CreateLeaseFailed {
        node: String,
        #[source]
        source: kube::Error,
    },
    /// Renewing the Lease failed, after retries.
    #[error("node {node}: renew Lease kube-node-lease/{node} ({attempts} attempts): {source}")]
    RenewLeaseFailed {
        node: String,
        attempts: u32,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Whether the Node object does not exist.
    #[must_use]
    pub fn is_node_not_found(&self) -> bool {
        matches!(self, Error::NodeNotFound { .. })
    }
}

/// Whether the API server answered 404.
pub(crate) fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.is_not_found())
}

/// Whether the API server answered 409 (conflict or already exists).
pub(crate) fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

/// Exponential backoff from 100ms, doubling up to `max`, as the kubelet retries registration
/// and lease creation (it caps at 7s; here also at the loop's own period).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const START: Duration = Duration::from_millis(100);
    const KUBELET_MAX: Duration = Duration::from_secs(7);

    pub(crate) fn new(period: Duration) -> Self {
        Backoff {
            next: Self::START,
            max: period.min(Self::KUBELET_MAX).max(Self::START),
        }
    }

    /// The wait before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::START;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_period() {
        let mut b = Backoff::new(Duration::from_secs(1));
        let delays: Vec<_> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        let mut long = Backoff::new(Duration::from_mins(1));
        let last = (0..10).map(|_| long.next_delay()).last().unwrap();
        assert_eq!(last, Duration::from_secs(7));
    }
}

//! [`LeaseRenewer`]: the node's heartbeat, the Lease `kube-node-lease/<node>`, as the
//! kubelet's lease controller (`component-helpers/apimachinery/lease`) keeps it.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::KubeletConfiguration;
use crate::node::{Backoff, Error, Result, is_conflict, is_not_found};

/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Immediate retries of one renewal before waiting for the next interval (the lease
/// controller's `maxUpdateRetries`).
const MAX_UPDATE_RETRIES: u32 = 5;

/// Creates and renews the node's Lease: `holderIdentity` and name are the node's name,
/// `renewTime` is now at every renewal, and the Node owns it (so that deleting the Node
/// deletes its Lease).
#[derive(Debug)]
pub struct LeaseRenewer {
    leases: Api<Lease>,
    nodes: Api<Node>,
    node_name: String,
    lease_duration_seconds: i32,
    renew_interval: Duration,
    /// The Lease as last written: renewals start from it without a GET.
    latest: Option<Lease>,
}

impl LeaseRenewer {
    /// A renewer for `node_name` with `nodeLeaseDurationSeconds`; it renews every quarter of
    /// the duration, as the kubelet does (10s for the default 40s).
    #[must_use]
    pub fn new(
        client: kube::Client,
        node_name: impl Into<String>,
        lease_duration_seconds: i32,
    ) -> Self {
        let secs = u64::try_from(lease_duration_seconds.max(1)).unwrap_or(40);
        LeaseRenewer {
            leases: Api::namespaced(client.clone(), LEASE_NAMESPACE),
            nodes: Api::all(client),
            node_name: node_name.into(),
            lease_duration_seconds,
            renew_interval: Duration::from_secs(secs) / 4,
            latest: None,
        }
    }

    /// A renewer with the configuration's `nodeLeaseDurationSeconds`.
    #[must_use]
    pub fn from_config(
        client: kube::Client,
        node_name: impl Into<String>,
        config: &KubeletConfiguration,
    ) -> Self {
        Self::new(client, node_name, config.node_lease_duration_seconds)
    }

    /// Renews at another interval (tests; or a shorter one than the kubelet's).
    #[must_use]
    pub fn with_renew_interval(mut self, interval: Duration) -> Self {
        self.renew_interval = interval;
        self
    }

    /// How often the Lease is renewed.
    #[must_use]
    pub fn renew_interval(&self) -> Duration {
        self.renew_interval
    }

    /// Renews the Lease once, creating it if it is missing; returns it as stored.
    pub async fn sync(&mut self) -> Result<Lease> {
        if let Some(latest) = self.latest.take() {
            // The Lease changes only through us: renew from the copy we wrote, without a GET.
            match self.retry_update(latest).await {
                Ok(lease) => return Ok(lease),
                Err(err) => {
                    debug!(node = %self.node_name, error = %err, "renewing from the latest Lease failed; reading it again");
                }
            }
        }
        let (lease, created) = self.ensure().await?;
        self.latest = Some(lease.clone());
        if created {
            return Ok(lease);
        }
        self.retry_update(lease).await
    }

    /// Renews every interval until `cancel` fires. Failures are logged with the node's name
    /// and retried with backoff bounded by the interval.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = Backoff::new(self.renew_interval);
        loop {
            let delay = match self.sync().await {
                Ok(_) => {
                    backoff.reset();
                    self.renew_interval
                }
                Err(err) => {
                    warn!(node = %self.node_name, error = %err, "unable to renew node lease");
                    backoff.next_delay()
                }
            };
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        debug!(node = %self.node_name, "lease renewer stopped");
    }

    /// The Lease as stored, created if missing; `true` when this call created it.
    async fn ensure(&self) -> Result<(Lease, bool)> {
        let get_failed = |source| Error::GetLeaseFailed {
            node: self.node_name.clone(),
            source,
        };
        if let Some(lease) = self
            .leases
            .get_opt(&self.node_name)
            .await
            .map_err(get_failed)?
        {
            return Ok((lease, false));
        }
        // As the kubelet: no Lease without its owner reference, so that it goes with the Node.
        let owner = self
            .owner_reference()
            .await
            .map_err(|e| Error::LeaseOwnerUnknown {
                node: self.node_name.clone(),
                source: Box::new(e),
            })?;
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.node_name.clone()),
                namespace: Some(LEASE_NAMESPACE.to_owned()),
                owner_references: Some(vec![owner]),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.node_name.clone()),
                lease_duration_seconds: Some(self.lease_duration_seconds),
                renew_time: Some(now()),
                ..LeaseSpec::default()
            }),
        };
        match self.leases.create(&PostParams::default(), &lease).await {
            Ok(created) => Ok((created, true)),
            // Created in between (by an earlier instance of us): use it.
            Err(err) if is_conflict(&err) => {
                let lease = self.leases.get(&self.node_name).await.map_err(get_failed)?;
                Ok((lease, false))
            }
            Err(source) => Err(Error::CreateLeaseFailed {
                node: self.node_name.clone(),
                source,
            }),
        }
    }

    /// Writes `base` with a new `renewTime`, up to [`MAX_UPDATE_RETRIES`] times; a conflict
    /// reads the Lease again first.
    async fn retry_update(&mut self, mut base: Lease) -> Result<Lease> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let lease = self.renewed(base.clone()).await;
            let err = match self
                .leases
                .replace(&self.node_name, &PostParams::default(), &lease)
                .await
            {
                Ok(updated) => {
                    self.latest = Some(updated.clone());
                    return Ok(updated);
                }
                Err(err) => err,
            };
            if attempt >= MAX_UPDATE_RETRIES || is_not_found(&err) {
                return Err(Error::RenewLeaseFailed {
                    node: self.node_name.clone(),
                    attempts: attempt,
                    source: err,
                });
            }
            debug!(node = %self.node_name, error = %err, attempt, "lease update failed; retrying");
            if is_conflict(&err) {
                base = self.ensure().await?.0;
            }
        }
    }

    /// `base` with `renewTime` now, and the owner reference added if it still lacks one and
    /// the Node can be read (a failure there does not hold the renewal back).
    async fn renewed(&self, mut lease: Lease) -> Lease {
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.renew_time = Some(now());
        if lease
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(Vec::is_empty)
        {
            match self.owner_reference().await {
                Ok(owner) => lease.metadata.owner_references = Some(vec![owner]),
                Err(err) => {
                    debug!(node = %self.node_name, error = %err, "cannot set the Lease's owner yet");
                }
            }
        }
        lease
    }

    async fn owner_reference(&self) -> Result<OwnerReference> {
        let node = self.nodes.get(&self.node_name).await.map_err(|source| {
            if is_not_found(&source) {
                Error::NodeNotFound {
                    node: self.node_name.clone(),
                }
            } else {
                Error::GetNodeFailed {
                    node: self.node_name.clone(),
                    source,
                }
            }
        })?;
        Ok(OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Node".to_owned(),
            name: self.node_name.clone(),
            uid: node.metadata.uid.unwrap_or_default(),
            ..OwnerReference::default()
        })
    }
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

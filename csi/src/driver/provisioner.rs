//! external-provisioner's job for the hostpath driver. A claim of a `StorageClass` whose
//! provisioner is this driver, for which the PV controller found no existing volume (it then
//! annotates the claim `volume.kubernetes.io/storage-provisioner: <driver>`), gets a volume
//! (`CreateVolume` on the driver's own controller socket, named `pvc-<claim uid>`, with the
//! claim's requested storage as required bytes) and a `PersistentVolume` pre-bound to the claim
//! (`claimRef`), which the PV controller then binds. A `PersistentVolume` of this driver whose
//! claim is gone (`Released`, or its claim no longer exists) and whose reclaim policy is
//! `Delete` has its volume deleted (`DeleteVolume`) and then its object.
//!
//! The API is polled (list every second): claims are few, and a list needs no resumable
//! watch state; every pass is idempotent, so a restart of the driver simply carries on.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use ferrolet_proto::csi::v1 as csi;
use ferrolet_proto::csi::v1::controller_client::ControllerClient;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::socket;

/// The annotation naming the provisioner of a `PersistentVolume` (as external-provisioner sets).
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The annotation by which the PV controller asks a provisioner for a claim's volume.
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
const PASS_INTERVAL: Duration = Duration::from_secs(1);

/// A failed step of one pass.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{step}: {source}")]
    Api {
        step: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{call} for {what}: {status}")]
    Csi {
        call: &'static str,
        what: String,
        status: Box<tonic::Status>,
    },
    #[error("claim {0} requests an invalid storage quantity {1:?}")]
    Quantity(String, String),
}

/// Provisions and deletes volumes of one driver.
pub struct Provisioner {
    client: kube::Client,
    driver: String,
    controller: ControllerClient<Channel>,
}

/// Bytes of a Kubernetes quantity (`10Mi`, `1G`, `512`); `None` if it is not one.
#[must_use]
pub fn quantity_bytes(quantity: &str) -> Option<u64> {
    let quantity = quantity.trim();
    let split = quantity
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" => 1000,
        "M" => 1000u64.pow(2),
        "G" => 1000u64.pow(3),
        "T" => 1000u64.pow(4),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(multiplier);
    }
    let value: f64 = number.parse().ok()?;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "fractional quantities round up to whole bytes, far below f64's precision limit"
    )]
    Some((value * multiplier as f64).ceil() as u64)
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

fn claim_key(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )
}

impl Provisioner {
    /// A provisioner for `driver`, calling its controller on `endpoint`.
    #[must_use]
    pub fn new(client: kube::Client, driver: &str, endpoint: &Path) -> Self {
        Provisioner {
            client,
            driver: driver.to_owned(),
            controller: ControllerClient::new(socket::channel(endpoint, Duration::from_secs(30))),
        }
    }

    /// Runs passes until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            if let Err(err) = self.pass().await {
                tracing::warn!(driver = %self.driver, %err, "provisioning pass");
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(PASS_INTERVAL) => {}
            }
        }
    }

    fn api_error(step: impl Into<String>) -> impl FnOnce(kube::Error) -> ProvisionError {
        let step = step.into();
        move |source| ProvisionError::Api {
            step,
            source: Box::new(source),
        }
    }

    /// One pass: provision what is pending, delete what was released.
    pub async fn pass(&self) -> Result<(), ProvisionError> {
        let classes: HashMap<String, StorageClass> = Api::<StorageClass>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(Self::api_error("list storage classes"))?
            .items
            .into_iter()
            .filter(|c| c.provisioner == self.driver)
            .filter_map(|c| Some((c.metadata.name.clone()?, c)))
            .collect();
        let claims = Api::<PersistentVolumeClaim>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(Self::api_error("list persistent volume claims"))?
            .items;
        let volumes_api = Api::<PersistentVolume>::all(self.client.clone());
        let volumes = volumes_api
            .list(&ListParams::default())
            .await
            .map_err(Self::api_error("list persistent volumes"))?
            .items;
        let mut first_error = None;
        for claim in &claims {
            let Some(class) = claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref())
                .and_then(|name| classes.get(name))
            else {
                continue;
            };
            // The PV controller asks for a volume once no existing one fits the claim.
            let requested = claim
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(STORAGE_PROVISIONER))
                .is_some_and(|p| *p == self.driver);
            let pending = requested
                && claim.metadata.deletion_timestamp.is_none()
                && claim
                    .spec
                    .as_ref()
                    .and_then(|s| s.volume_name.as_deref())
                    .is_none_or(str::is_empty);
            let pv_name = format!("pvc-{}", claim.metadata.uid.as_deref().unwrap_or_default());
            let exists = volumes
                .iter()
                .any(|v| v.metadata.name.as_deref() == Some(&pv_name));
            if pending
                && !exists
                && let Err(err) = self.provision(claim, class, &pv_name).await
            {
                tracing::warn!(claim = %claim_key(claim), %err, "provisioning failed");
                first_error.get_or_insert(err);
            }
        }
        for volume in &volumes {
            if self.released(volume, &claims)
                && let Err(err) = self.delete(volume).await
            {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Whether `volume` is this driver's, has reclaim policy Delete and lost its claim.
    fn released(&self, volume: &PersistentVolume, claims: &[PersistentVolumeClaim]) -> bool {
        let ours = volume
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PROVISIONED_BY))
            .is_some_and(|p| *p == self.driver);
        let Some(spec) = volume.spec.as_ref() else {
            return false;
        };
        if !ours || spec.persistent_volume_reclaim_policy.as_deref() != Some("Delete") {
            return false;
        }
        if volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released") {
            return true;
        }
        let Some(claim_ref) = spec.claim_ref.as_ref() else {
            return false;
        };
        !claims.iter().any(|c| {
            c.metadata.namespace == claim_ref.namespace
                && c.metadata.name == claim_ref.name
                && (claim_ref.uid.is_none() || c.metadata.uid == claim_ref.uid)
        })
    }

    async fn provision(
        &self,
        claim: &PersistentVolumeClaim,
        class: &StorageClass,
        pv_name: &str,
    ) -> Result<(), ProvisionError> {
        let spec = claim.spec.clone().unwrap_or_default();
        let requested = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone())
            .unwrap_or_default();
        let required = if requested.is_empty() {
            0
        } else {
            quantity_bytes(&requested)
                .ok_or_else(|| ProvisionError::Quantity(claim_key(claim), requested.clone()))?
        };
        let access_modes = spec.access_modes.clone().unwrap_or_default();
        let multi_node = access_modes.iter().any(|m| m.ends_with("Many"));
        let mode = if multi_node {
            csi::volume_capability::access_mode::Mode::MultiNodeMultiWriter
        } else {
            csi::volume_capability::access_mode::Mode::SingleNodeWriter
        };
        let request = csi::CreateVolumeRequest {
            name: pv_name.to_owned(),
            capacity_range: Some(csi::CapacityRange {
                required_bytes: i64::try_from(required).unwrap_or(i64::MAX),
                limit_bytes: 0,
            }),
            volume_capabilities: vec![csi::VolumeCapability {
                access_type: Some(csi::volume_capability::AccessType::Mount(
                    csi::volume_capability::MountVolume::default(),
                )),
                access_mode: Some(csi::volume_capability::AccessMode { mode: mode.into() }),
            }],
            parameters: class
                .parameters
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let volume = self
            .controller
            .clone()
            .create_volume(request)
            .await
            .map_err(|status| ProvisionError::Csi {
                call: "CreateVolume",
                what: claim_key(claim),
                status: Box::new(status),
            })?
            .into_inner()
            .volume
            .unwrap_or_default();
        let attributes: BTreeMap<String, String> = volume.volume_context.into_iter().collect();
        let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": pv_name,
                "annotations": { PROVISIONED_BY: self.driver },
            },
            "spec": {
                "capacity": { "storage": volume.capacity_bytes.to_string() },
                "accessModes": access_modes,
                "persistentVolumeReclaimPolicy": class.reclaim_policy.clone().unwrap_or_else(|| "Delete".to_owned()),
                "storageClassName": class.metadata.name,
                "volumeMode": "Filesystem",
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": claim.metadata.namespace,
                    "name": claim.metadata.name,
                    "uid": claim.metadata.uid,
                },
                "csi": {
                    "driver": self.driver,
                    "volumeHandle": volume.volume_id,
                    "volumeAttributes": attributes,
                },
            },
        }))
        .expect("a PersistentVolume from its JSON form");
        match Api::<PersistentVolume>::all(self.client.clone())
            .create(&PostParams::default(), &pv)
            .await
        {
            Ok(_) => {}
            // A pass that raced an earlier one: the volume is there.
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => return Err(Self::api_error(format!("create {pv_name}"))(err)),
        }
        tracing::info!(claim = %claim_key(claim), volume = %pv_name, handle = %pv.spec.as_ref().and_then(|s| s.csi.as_ref()).map(|c| c.volume_handle.as_str()).unwrap_or_default(), "volume provisioned");
        Ok(())
    }

    async fn delete(&self, volume: &PersistentVolume) -> Result<(), ProvisionError> {
        let name = volume.metadata.name.clone().unwrap_or_default();
        let Some(handle) = volume
            .spec
            .as_ref()
            .and_then(|s| s.csi.as_ref())
            .map(|c| c.volume_handle.clone())
        else {
            return Ok(());
        };
        self.controller
            .clone()
            .delete_volume(csi::DeleteVolumeRequest {
                volume_id: handle.clone(),
                secrets: HashMap::new(),
            })
            .await
            .map_err(|status| ProvisionError::Csi {
                call: "DeleteVolume",
                what: name.clone(),
                status: Box::new(status),
            })?;
        match Api::<PersistentVolume>::all(self.client.clone())
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => return Err(Self::api_error(format!("delete {name}"))(err)),
        }
        tracing::info!(volume = %name, %handle, "released volume deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_become_bytes() {
        assert_eq!(quantity_bytes("10Mi"), Some(10 << 20));
        assert_eq!(quantity_bytes("1G"), Some(1_000_000_000));
        assert_eq!(quantity_bytes("512"), Some(512));
        assert_eq!(quantity_bytes("1.5Ki"), Some(1536));
        assert_eq!(quantity_bytes("3x"), None);
    }
}

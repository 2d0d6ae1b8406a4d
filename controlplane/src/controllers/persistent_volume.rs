//! A minimal `PersistentVolume` controller (kube-controller-manager's `persistentvolume-binder`):
//!
//! - a pending claim is bound to the smallest `Available` volume that fits it (same
//!   storageClassName, every requested access mode, at least the requested storage, same
//!   volumeMode), or to the volume pre-bound to it through `claimRef` (what a provisioner
//!   creates);
//! - a claim that nothing fits and whose `StorageClass` names a provisioner is annotated
//!   `volume.kubernetes.io/storage-provisioner` so that provisioner (for CSI drivers the
//!   driver's own external-provisioner loop) creates a volume for it;
//! - a bound volume whose claim is gone becomes `Released`; what happens next is its
//!   reclaim policy's business (`Delete`: the provisioner deletes it; `Retain`: the admin).
//!
//! Binding writes the volume's `claimRef` first, then the claim's `volumeName`, then both
//! statuses, each with the object's resourceVersion: a conflict aborts the step and the next
//! pass (every second) starts over from what is stored.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus,
    PersistentVolumeStatus,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use tokio_util::sync::CancellationToken;

/// The annotation naming the provisioner that should create a volume for a claim.
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// Set on a claim once the controller bound it (as upstream does).
const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// The provisioner name of classes without dynamic provisioning.
const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";
const PERIOD: Duration = Duration::from_secs(1);

/// Errors of one pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("list {0}")]
    List(&'static str, #[source] kube::Error),
    #[error("{step} {name}")]
    Write {
        step: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Runs until `cancel`.
pub async fn run(client: Client, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(PERIOD);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(err) = Box::pin(pass(&client)).await {
            tracing::debug!(error = %err, cause = ?std::error::Error::source(&err).map(ToString::to_string), "persistent volume controller");
        }
    }
}

/// Bytes of a quantity, for comparing capacities (`None`: unparsable).
fn bytes(quantity: &Quantity) -> Option<f64> {
    let text = quantity.0.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        _ => {
            let exponent: i32 = suffix.strip_prefix(['e', 'E'])?.parse().ok()?;
            10.0_f64.powi(exponent)
        }
    };
    Some(number * factor)
}

fn key(namespace: Option<&str>, name: Option<&str>) -> String {
    format!(
        "{}/{}",
        namespace.unwrap_or_default(),
        name.unwrap_or_default()
    )
}

fn claim_key(claim: &PersistentVolumeClaim) -> String {
    key(
        claim.metadata.namespace.as_deref(),
        claim.metadata.name.as_deref(),
    )
}

fn volume_phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn claim_class(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

/// Whether `volume` can serve `claim` (ignoring who it is bound to).
#[must_use]
pub fn fits(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let (Some(spec), Some(claim_spec)) = (volume.spec.as_ref(), claim.spec.as_ref()) else {
        return false;
    };
    if spec.storage_class_name.as_deref().unwrap_or_default() != claim_class(claim) {
        return false;
    }
    let modes = spec.access_modes.clone().unwrap_or_default();
    if !claim_spec
        .access_modes
        .iter()
        .flatten()
        .all(|m| modes.contains(m))
    {
        return false;
    }
    let mode = |m: Option<&String>| m.map_or("Filesystem", String::as_str).to_owned();
    if mode(spec.volume_mode.as_ref()) != mode(claim_spec.volume_mode.as_ref()) {
        return false;
    }
    let requested = claim_spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(bytes)
        .unwrap_or(0.0);
    let capacity = spec
        .capacity
        .as_ref()
        .and_then(|c| c.get("storage"))
        .and_then(bytes)
        .unwrap_or(0.0);
    capacity >= requested
}

fn capacity(volume: &PersistentVolume) -> f64 {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(bytes)
        .unwrap_or(0.0)
}

fn refers_to(reference: &ObjectReference, claim: &PersistentVolumeClaim) -> bool {
    reference.namespace == claim.metadata.namespace
        && reference.name == claim.metadata.name
        && (reference.uid.is_none() || reference.uid == claim.metadata.uid)
}

/// One look at every volume and claim.
pub async fn pass(client: &Client) -> Result<(), Error> {
    let volumes_api: Api<PersistentVolume> = Api::all(client.clone());
    let claims_api: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let mut volumes = volumes_api
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::List("persistentvolumes", e))?
        .items;
    let claims = claims_api
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::List("persistentvolumeclaims", e))?
        .items;
    let classes: BTreeMap<String, StorageClass> = Api::<StorageClass>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::List("storageclasses", e))?
        .items
        .into_iter()
        .filter_map(|c| Some((c.metadata.name.clone()?, c)))
        .collect();

    // Volumes: Available, Bound or Released as their claimRef says.
    for volume in &volumes {
        let claim_ref = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        let phase = match claim_ref {
            Some(r) if claims.iter().any(|c| refers_to(r, c)) => {
                let claim = claims.iter().find(|c| refers_to(r, c));
                let claimed = claim
                    .and_then(|c| c.spec.as_ref())
                    .and_then(|s| s.volume_name.as_deref())
                    == volume.metadata.name.as_deref();
                if claimed { "Bound" } else { "Available" }
            }
            // Pre-bound to a claim that has not been created yet, or lost it.
            Some(r) if r.uid.is_some() && volume_phase(volume) == "Bound" => "Released",
            Some(_) if volume_phase(volume) == "Released" => "Released",
            // No claimRef, or pre-bound to a claim that does not exist (yet).
            None | Some(_) => "Available",
        };
        if volume_phase(volume) != phase {
            set_volume_phase(client, volume, phase).await?;
        }
    }

    for claim in &claims {
        if claim.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let bound_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|n| !n.is_empty());
        let claim_phase = claim
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or_default();
        if let Some(name) = &bound_name {
            if claim_phase != "Bound"
                && let Some(volume) = volumes
                    .iter()
                    .find(|v| v.metadata.name.as_deref() == Some(name))
            {
                complete_binding(client, volume, claim).await?;
            }
            continue;
        }
        // A volume pre-bound to this claim (a provisioner's), else the smallest that fits.
        let prebound = volumes.iter().position(|v| {
            v.spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .is_some_and(|r| refers_to(r, claim))
                && volume_phase(v) != "Released"
        });
        let chosen = prebound.or_else(|| {
            volumes
                .iter()
                .enumerate()
                .filter(|(_, v)| {
                    v.spec.as_ref().is_some_and(|s| s.claim_ref.is_none())
                        && volume_phase(v) != "Released"
                        && fits(v, claim)
                })
                .min_by(|(_, a), (_, b)| capacity(a).total_cmp(&capacity(b)))
                .map(|(i, _)| i)
        });
        match chosen {
            Some(index) => {
                let bound = Box::pin(bind(client, &volumes[index], claim)).await?;
                volumes[index] = bound;
            }
            None => request_provisioning(client, claim, &classes).await?,
        }
    }
    Ok(())
}

async fn set_volume_phase(
    client: &Client,
    volume: &PersistentVolume,
    phase: &str,
) -> Result<PersistentVolume, Error> {
    let name = volume.metadata.name.clone().unwrap_or_default();
    let mut updated = volume.clone();
    updated.status = Some(PersistentVolumeStatus {
        phase: Some(phase.to_owned()),
        ..volume.status.clone().unwrap_or_default()
    });
    let stored = Api::<PersistentVolume>::all(client.clone())
        .replace_status(&name, &PostParams::default(), &updated)
        .await
        .map_err(|source| Error::Write {
            step: "set the phase of persistentvolume",
            name: name.clone(),
            source,
        })?;
    tracing::info!(volume = %name, phase, "persistent volume phase");
    Ok(stored)
}

/// Writes the volume's claimRef (the first, claiming step), then completes the binding.
async fn bind(
    client: &Client,
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Result<PersistentVolume, Error> {
    let name = volume.metadata.name.clone().unwrap_or_default();
    let mut updated = volume.clone();
    let spec = updated.spec.get_or_insert_with(Default::default);
    let wanted = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: claim.metadata.namespace.clone(),
        name: claim.metadata.name.clone(),
        uid: claim.metadata.uid.clone(),
        resource_version: claim.metadata.resource_version.clone(),
        field_path: None,
    };
    let stored = if spec.claim_ref.as_ref().and_then(|r| r.uid.as_ref()) == wanted.uid.as_ref() {
        volume.clone()
    } else {
        spec.claim_ref = Some(wanted);
        Api::<PersistentVolume>::all(client.clone())
            .replace(&name, &PostParams::default(), &updated)
            .await
            .map_err(|source| Error::Write {
                step: "claim persistentvolume",
                name: name.clone(),
                source,
            })?
    };
    complete_binding(client, &stored, claim).await?;
    Ok(stored)
}

/// Sets the claim's volumeName (if needed) and both statuses to Bound.
async fn complete_binding(
    client: &Client,
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Result<(), Error> {
    let volume_name = volume.metadata.name.clone().unwrap_or_default();
    let namespace = claim.metadata.namespace.clone().unwrap_or_default();
    let claim_name = claim.metadata.name.clone().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let mut claim = claim.clone();
    let spec = claim.spec.get_or_insert_with(Default::default);
    if spec.volume_name.as_deref() != Some(volume_name.as_str()) {
        spec.volume_name = Some(volume_name.clone());
        claim
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(BIND_COMPLETED.to_owned(), "yes".to_owned());
        claim = claims
            .replace(&claim_name, &PostParams::default(), &claim)
            .await
            .map_err(|source| Error::Write {
                step: "bind persistentvolumeclaim",
                name: claim_key(&claim),
                source,
            })?;
    }
    let volume_spec = volume.spec.clone().unwrap_or_default();
    claim.status = Some(PersistentVolumeClaimStatus {
        phase: Some("Bound".into()),
        access_modes: volume_spec.access_modes.clone(),
        capacity: volume_spec.capacity.clone(),
        ..claim.status.clone().unwrap_or_default()
    });
    claims
        .replace_status(&claim_name, &PostParams::default(), &claim)
        .await
        .map_err(|source| Error::Write {
            step: "set the status of persistentvolumeclaim",
            name: claim_key(&claim),
            source,
        })?;
    if volume_phase(volume) != "Bound" {
        set_volume_phase(client, volume, "Bound").await?;
    }
    tracing::info!(claim = %claim_key(&claim), volume = %volume_name, "claim bound");
    Ok(())
}

/// Annotates a claim that no volume fits with its class's provisioner (once).
async fn request_provisioning(
    client: &Client,
    claim: &PersistentVolumeClaim,
    classes: &BTreeMap<String, StorageClass>,
) -> Result<(), Error> {
    let Some(class) = classes.get(claim_class(claim)) else {
        return Ok(());
    };
    if class.provisioner == NO_PROVISIONER {
        return Ok(());
    }
    let annotations = claim.metadata.annotations.clone().unwrap_or_default();
    if annotations.get(STORAGE_PROVISIONER) == Some(&class.provisioner) {
        return Ok(());
    }
    let mut updated = claim.clone();
    updated
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(STORAGE_PROVISIONER.to_owned(), class.provisioner.clone());
    let namespace = claim.metadata.namespace.clone().unwrap_or_default();
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace)
        .replace(
            claim.metadata.name.as_deref().unwrap_or_default(),
            &PostParams::default(),
            &updated,
        )
        .await
        .map_err(|source| Error::Write {
            step: "annotate persistentvolumeclaim",
            name: claim_key(claim),
            source,
        })?;
    tracing::info!(claim = %claim_key(claim), provisioner = %class.provisioner, "waiting for the provisioner");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(class: &str, modes: &[&str], size: &str) -> PersistentVolume {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "pv" },
            "spec": { "storageClassName": class, "accessModes": modes, "capacity": { "storage": size } }
        }))
        .unwrap()
    }

    fn claim(class: &str, modes: &[&str], size: &str) -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "c", "namespace": "ns" },
            "spec": { "storageClassName": class, "accessModes": modes,
                      "resources": { "requests": { "storage": size } } }
        }))
        .unwrap()
    }

    #[test]
    fn a_volume_fits_by_class_modes_and_capacity() {
        let pv = volume("fast", &["ReadWriteOnce", "ReadOnlyMany"], "1Gi");
        assert!(fits(&pv, &claim("fast", &["ReadWriteOnce"], "512Mi")));
        assert!(fits(&pv, &claim("fast", &["ReadWriteOnce"], "1Gi")));
        assert!(!fits(&pv, &claim("fast", &["ReadWriteOnce"], "2G")));
        assert!(!fits(&pv, &claim("slow", &["ReadWriteOnce"], "1Mi")));
        assert!(!fits(&pv, &claim("fast", &["ReadWriteMany"], "1Mi")));
    }

    #[test]
    fn quantities_compare_across_suffixes() {
        assert_eq!(bytes(&Quantity("1Ki".into())), Some(1024.0));
        assert_eq!(bytes(&Quantity("1k".into())), Some(1000.0));
        assert_eq!(bytes(&Quantity("1e3".into())), Some(1000.0));
        assert_eq!(bytes(&Quantity("x".into())), None);
    }
}

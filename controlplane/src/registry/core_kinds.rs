//! The hooks of the simpler kinds: namespaces, nodes, config, events, leases, storage.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, NamespaceSpec, NamespaceStatus, Node, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeClaimStatus, PersistentVolumeStatus, Secret,
    ServiceAccount,
};
use k8s_openapi::api::storage::v1::{CSIDriver, CSINode, StorageClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::Kind;
use super::validation::{NameRule, config_key_errors};
use crate::api::error::FieldError;

impl Kind for Namespace {
    const NAME_RULE: NameRule = NameRule::Dns1123Label;
    const FIELD_SELECTORS: &'static [&'static str] = &["status.phase"];

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn prepare_for_create(&mut self) {
        // The namespace controller removes the "kubernetes" finalizer once the namespace's
        // content is gone.
        self.spec = Some(NamespaceSpec {
            finalizers: Some(vec!["kubernetes".into()]),
        });
        self.status = Some(NamespaceStatus {
            phase: Some("Active".into()),
            ..Default::default()
        });
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.spec.clone_from(&old.spec);
        self.status.clone_from(&old.status);
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec.clone_from(&old.spec);
    }
}

impl Kind for Node {
    const FIELD_SELECTORS: &'static [&'static str] = &["spec.unschedulable"];
    const HAS_SPEC: bool = false;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn prepare_for_update(&mut self, old: &Self) {
        // The kubelet owns the status; the main resource (kubectl cordon, taints) owns spec.
        self.status.clone_from(&old.status);
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec.clone_from(&old.spec);
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (i, taint) in self
            .spec
            .iter()
            .flat_map(|s| s.taints.iter().flatten())
            .enumerate()
        {
            let field = format!("spec.taints[{i}].effect");
            if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&taint.effect.as_str()) {
                errors.push(FieldError::not_supported(
                    field,
                    &json!(taint.effect),
                    &["NoExecute", "NoSchedule", "PreferNoSchedule"],
                ));
            }
            if taint.key.is_empty() {
                errors.push(FieldError::required(format!("spec.taints[{i}].key")));
            }
        }
        errors
    }
}

fn data_key_errors<'a>(field: &str, keys: impl Iterator<Item = &'a String>) -> Vec<FieldError> {
    keys.flat_map(|k| config_key_errors(&format!("{field}[{k}]"), k))
        .collect()
}

impl Kind for ConfigMap {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errors = data_key_errors("data", self.data.iter().flat_map(|d| d.keys()));
        errors.extend(data_key_errors(
            "binaryData",
            self.binary_data.iter().flat_map(|d| d.keys()),
        ));
        for key in self.data.iter().flat_map(|d| d.keys()) {
            if self
                .binary_data
                .as_ref()
                .is_some_and(|b| b.contains_key(key))
            {
                errors.push(FieldError::duplicate(format!("data[{key}]"), &json!(key)));
            }
        }
        errors
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        if old.immutable == Some(true)
            && (self.data != old.data
                || self.binary_data != old.binary_data
                || self.immutable != old.immutable)
        {
            vec![FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            )]
        } else {
            Vec::new()
        }
    }
}

impl Kind for Secret {
    const FIELD_SELECTORS: &'static [&'static str] = &["type"];

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn set_defaults(&mut self) {
        if self.type_.as_deref().is_none_or(str::is_empty) {
            self.type_ = Some("Opaque".into());
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errors = data_key_errors("data", self.data.iter().flat_map(|d| d.keys()));
        errors.extend(data_key_errors(
            "stringData",
            self.string_data.iter().flat_map(|d| d.keys()),
        ));
        errors
    }

    fn prepare_for_create(&mut self) {
        merge_string_data(self);
    }

    fn prepare_for_update(&mut self, _old: &Self) {
        merge_string_data(self);
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.type_ != old.type_ {
            errors.push(FieldError::invalid(
                "type",
                &json!(self.type_),
                "field is immutable",
            ));
        }
        if old.immutable == Some(true) && self.data != old.data {
            errors.push(FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
        errors
    }
}

/// `stringData` is write-only: its entries move into `data`.
fn merge_string_data(secret: &mut Secret) {
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (key, value) in string_data {
            data.insert(key, k8s_openapi::ByteString(value.into_bytes()));
        }
    }
}

impl Kind for Event {
    const FIELD_SELECTORS: &'static [&'static str] = &[
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ];

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let object_ns = self
            .involved_object
            .namespace
            .as_deref()
            .unwrap_or_default();
        let event_ns = self.metadata.namespace.as_deref().unwrap_or_default();
        if !object_ns.is_empty() && object_ns != event_ns {
            errors.push(FieldError::invalid(
                "involvedObject.namespace",
                &json!(object_ns),
                "does not match event.namespace",
            ));
        }
        errors
    }
}

impl Kind for Endpoints {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
}

impl Kind for ServiceAccount {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
}

impl Kind for PersistentVolume {
    const HAS_SPEC: bool = true;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(PersistentVolumeStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
    }

    fn set_defaults(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            spec.persistent_volume_reclaim_policy
                .get_or_insert_with(|| "Retain".into());
            spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
        }
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status.clone_from(&old.status);
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec.clone_from(&old.spec);
    }
}

impl Kind for PersistentVolumeClaim {
    const HAS_SPEC: bool = true;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(PersistentVolumeClaimStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
    }

    fn set_defaults(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
        }
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status.clone_from(&old.status);
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec.clone_from(&old.spec);
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let Some(spec) = &self.spec else {
            return vec![FieldError::required("spec")];
        };
        if spec.access_modes.as_ref().is_none_or(Vec::is_empty) {
            errors.push(FieldError::required("spec.accessModes"));
        }
        let has_storage = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .is_some_and(|r| r.contains_key("storage"));
        if !has_storage {
            errors.push(FieldError::required("spec.resources[storage]"));
        }
        errors
    }
}

impl Kind for Lease {
    const HAS_SPEC: bool = true;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
}

impl Kind for CSIDriver {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
}

impl Kind for CSINode {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
}

impl Kind for StorageClass {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn set_defaults(&mut self) {
        self.reclaim_policy.get_or_insert_with(|| "Delete".into());
        self.volume_binding_mode
            .get_or_insert_with(|| "Immediate".into());
    }

    fn validate(&self) -> Vec<FieldError> {
        if self.provisioner.is_empty() {
            vec![FieldError::required("provisioner")]
        } else {
            Vec::new()
        }
    }
}

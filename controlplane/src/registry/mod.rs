//! Per-resource behaviour of the API server — decoding against the k8s-openapi types,
//! defaulting, validation, and what create and update may change — the equivalent of
//! kube-apiserver's registry strategies and the admission plugins ferrolet applies.

mod core_kinds;
pub mod pod;
pub mod service;
pub mod validation;

use std::collections::BTreeMap;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::error::{ApiError, FieldError};
use crate::resources::{self, ResourceInfo};
use validation::NameRule;

pub use service::ServiceIpAllocator;

/// A decoded request body.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The object as its type serializes it (unknown fields dropped).
    pub value: Value,
    /// Paths of fields the type does not know (`spec.containers[0].imagee`).
    pub unknown_fields: Vec<String>,
}

/// Per-kind hooks over a typed object. Every method has a no-op default.
pub trait Kind: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The rule names of this kind follow.
    const NAME_RULE: NameRule = NameRule::Dns1123Subdomain;
    /// Fields field selectors may name, besides `metadata.name` and `metadata.namespace`.
    const FIELD_SELECTORS: &'static [&'static str] = &[];
    /// Whether spec changes bump `metadata.generation`.
    const HAS_SPEC: bool = false;

    fn metadata(&self) -> &ObjectMeta;
    /// Sets kube-apiserver's defaults (and what its admission plugins add).
    fn set_defaults(&mut self) {}
    /// Resets what a client may not set on create (usually the status).
    fn prepare_for_create(&mut self) {}
    /// On an update of the main resource: keeps what only the status subresource may change.
    fn prepare_for_update(&mut self, _old: &Self) {}
    /// On an update of the status subresource: keeps everything but the status.
    fn prepare_for_status_update(&mut self, _old: &Self) {}
    /// Field errors of the object.
    fn validate(&self) -> Vec<FieldError> {
        Vec::new()
    }
    /// Field errors of an update beyond those of the new object (immutable fields).
    fn validate_update(&self, _old: &Self) -> Vec<FieldError> {
        Vec::new()
    }
}

/// The object-safe face of a resource's behaviour, over JSON values.
pub trait Strategy: Send + Sync {
    fn info(&self) -> &'static ResourceInfo;
    /// Type-checks a request body against the kind's type.
    fn decode(&self, body: &Value) -> Result<Decoded, ApiError>;
    /// Defaults, prepares and validates a new object (metadata already set).
    fn create(&self, object: &mut Value) -> Result<(), ApiError>;
    /// Prepares and validates an update of the main resource or of a subresource.
    fn update(
        &self,
        new: &mut Value,
        old: &Value,
        subresource: Option<&str>,
    ) -> Result<(), ApiError>;
    /// Fields field selectors may name.
    fn field_selectors(&self) -> Vec<&'static str>;
    /// Whether spec changes bump `metadata.generation`.
    fn has_spec(&self) -> bool;
}

/// [`Strategy`] for a typed [`Kind`].
pub struct Typed<K> {
    info: &'static ResourceInfo,
    kind: PhantomData<fn() -> K>,
}

impl<K> std::fmt::Debug for Typed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Typed")
            .field("kind", &self.info.kind)
            .finish()
    }
}

impl<K: Kind> Typed<K> {
    fn new(info: &'static ResourceInfo) -> Self {
        Typed {
            info,
            kind: PhantomData,
        }
    }

    fn typed(&self, value: &Value) -> Result<K, ApiError> {
        serde_path_to_error::deserialize(value.clone()).map_err(|err| {
            ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: {path}: {inner}",
                kind = self.info.kind,
                version = self.info.version,
                path = err.path(),
                inner = err.inner(),
            ))
        })
    }

    fn to_value(object: &K) -> Result<Value, ApiError> {
        serde_json::to_value(object)
            .map_err(|err| ApiError::internal(format!("encode object: {err}")))
    }

    fn name_of(value: &Value) -> String {
        value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn check(&self, value: &Value, errors: &[FieldError]) -> Result<(), ApiError> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(self.info, &Self::name_of(value), errors))
        }
    }
}

impl<K: Kind> Strategy for Typed<K> {
    fn info(&self) -> &'static ResourceInfo {
        self.info
    }

    fn decode(&self, body: &Value) -> Result<Decoded, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: the body is not a JSON object",
                self.info.kind, self.info.version, self.info.kind
            )));
        }
        let typed = self.typed(body)?;
        let mut value = Self::to_value(&typed)?;
        let mut unknown_fields = Vec::new();
        unknown_paths(body, &value, "", &mut unknown_fields);
        // apiVersion and kind are not fields of the typed struct in k8s-openapi.
        unknown_fields.retain(|f| f != "apiVersion" && f != "kind");
        if let Some(object) = value.as_object_mut() {
            object.insert("apiVersion".into(), Value::String(self.info.api_version()));
            object.insert("kind".into(), Value::String(self.info.kind.to_owned()));
        }
        Ok(Decoded {
            value,
            unknown_fields,
        })
    }

    fn create(&self, object: &mut Value) -> Result<(), ApiError> {
        let mut typed = self.typed(object)?;
        typed.prepare_for_create();
        typed.set_defaults();
        let mut errors = validation::metadata_errors(object, K::NAME_RULE, self.info.namespaced);
        errors.extend(typed.validate());
        let value = Self::to_value(&typed)?;
        self.check(&value, &errors)?;
        *object = with_type_meta(value, self.info);
        Ok(())
    }

    fn update(
        &self,
        new: &mut Value,
        old: &Value,
        subresource: Option<&str>,
    ) -> Result<(), ApiError> {
        let mut typed = self.typed(new)?;
        let old_typed = self.typed(old)?;
        match subresource {
            Some("status") => typed.prepare_for_status_update(&old_typed),
            _ => typed.prepare_for_update(&old_typed),
        }
        typed.set_defaults();
        let mut errors = validation::metadata_errors(new, K::NAME_RULE, self.info.namespaced);
        errors.extend(typed.validate());
        errors.extend(typed.validate_update(&old_typed));
        let value = Self::to_value(&typed)?;
        self.check(&value, &errors)?;
        *new = with_type_meta(value, self.info);
        Ok(())
    }

    fn field_selectors(&self) -> Vec<&'static str> {
        let mut fields = vec!["metadata.name", "metadata.namespace"];
        fields.extend_from_slice(K::FIELD_SELECTORS);
        fields
    }

    fn has_spec(&self) -> bool {
        K::HAS_SPEC
    }
}

fn with_type_meta(mut value: Value, info: &ResourceInfo) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.insert("apiVersion".into(), Value::String(info.api_version()));
        object.insert("kind".into(), Value::String(info.kind.to_owned()));
    }
    value
}

/// Collects paths present (non-null) in `input` but absent from `typed`.
fn unknown_paths(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(given), Value::Object(known)) => {
            for (key, value) in given {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match known.get(key) {
                    Some(known_value) => unknown_paths(value, known_value, &child, out),
                    None if value.is_null() => {}
                    // Maps of strings (labels, data) come back complete; a missing key in a
                    // struct is an unknown field.
                    None => out.push(child),
                }
            }
        }
        (Value::Array(given), Value::Array(known)) => {
            for (i, (value, known_value)) in given.iter().zip(known).enumerate() {
                unknown_paths(value, known_value, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Every resource's strategy, by plural name (`pods`, `leases`).
pub struct Registry {
    strategies: BTreeMap<&'static str, Box<dyn Strategy>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.strategies.keys()).finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    #[must_use]
    pub fn new() -> Self {
        use k8s_openapi::api::coordination::v1::Lease;
        use k8s_openapi::api::core::v1 as core;
        use k8s_openapi::api::storage::v1 as storage;
        let mut strategies: BTreeMap<&'static str, Box<dyn Strategy>> = BTreeMap::new();
        for info in resources::RESOURCES {
            let strategy: Box<dyn Strategy> = match info.kind {
                "Namespace" => Box::new(Typed::<core::Namespace>::new(info)),
                "Pod" => Box::new(Typed::<core::Pod>::new(info)),
                "Node" => Box::new(Typed::<core::Node>::new(info)),
                "Event" => Box::new(Typed::<core::Event>::new(info)),
                "ConfigMap" => Box::new(Typed::<core::ConfigMap>::new(info)),
                "Secret" => Box::new(Typed::<core::Secret>::new(info)),
                "Service" => Box::new(Typed::<core::Service>::new(info)),
                "Endpoints" => Box::new(Typed::<core::Endpoints>::new(info)),
                "ServiceAccount" => Box::new(Typed::<core::ServiceAccount>::new(info)),
                "PersistentVolume" => Box::new(Typed::<core::PersistentVolume>::new(info)),
                "PersistentVolumeClaim" => {
                    Box::new(Typed::<core::PersistentVolumeClaim>::new(info))
                }
                "Lease" => Box::new(Typed::<Lease>::new(info)),
                "CSIDriver" => Box::new(Typed::<storage::CSIDriver>::new(info)),
                "CSINode" => Box::new(Typed::<storage::CSINode>::new(info)),
                "StorageClass" => Box::new(Typed::<storage::StorageClass>::new(info)),
                other => unreachable!("no strategy for served kind {other}"),
            };
            strategies.insert(info.plural, strategy);
        }
        Registry { strategies }
    }

    /// The strategy of a resource, by plural name.
    #[must_use]
    pub fn get(&self, plural: &str) -> Option<&dyn Strategy> {
        self.strategies.get(plural).map(AsRef::as_ref)
    }
}

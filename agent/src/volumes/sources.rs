//! What volumes need from the API server: configMaps, secrets and service account tokens
//! (`TokenRequest`), behind [`VolumeSources`] so that plugins can be tested without one.
//! [`KubeVolumeSources`] is the kube-rs implementation; [`InMemoryVolumeSources`] serves
//! objects held in memory (unit tests, and nodes running static pods without an API server).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolume, PersistentVolumeClaim, Secret, ServiceAccount,
};
use kube::Api;
use kube::api::PostParams;
use serde::de::DeserializeOwned;

/// A failed call to the API server.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// GET of a configMap or secret failed (other than not found).
    #[error("get {kind} \"{name}\" in namespace \"{namespace}\": {source}")]
    GetFailed {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The `TokenRequest` for a service account failed.
    #[error(
        "failed to fetch token for service account \"{namespace}/{service_account}\": {source}"
    )]
    TokenRequestFailed {
        namespace: String,
        service_account: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The `TokenRequest` answer has no token or expiration.
    #[error(
        "token request for service account \"{namespace}/{service_account}\" returned no {missing}"
    )]
    TokenRequestIncomplete {
        namespace: String,
        service_account: String,
        missing: &'static str,
    },
    /// The source cannot answer (in-memory sources configured to fail, no API server).
    #[error("{0}")]
    Unavailable(String),
}

/// A `TokenRequest` for the projected `serviceAccountToken` of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceAccountTokenRequest {
    pub namespace: String,
    /// `spec.serviceAccountName` of the pod (`default` when empty).
    pub service_account: String,
    /// Empty: the API server's own audiences.
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    /// The pod the token is bound to: it stops being valid when that pod is deleted.
    pub pod_name: String,
    pub pod_uid: String,
}

/// A token and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountToken {
    pub token: String,
    pub expiration: jiff::Timestamp,
}

/// What volume plugins read from the API server.
#[async_trait]
pub trait VolumeSources: Send + Sync + std::fmt::Debug {
    /// The configMap, or `None` when it does not exist.
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, SourceError>;
    /// The secret, or `None` when it does not exist.
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError>;
    /// A new token for a service account, bound to a pod (`TokenRequest`).
    async fn service_account_token(
        &self,
        request: &ServiceAccountTokenRequest,
    ) -> Result<ServiceAccountToken, SourceError>;
    /// The `PersistentVolumeClaim`, or `None` when it does not exist. Sources without an API
    /// server know none.
    async fn persistent_volume_claim(
        &self,
        _namespace: &str,
        _name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, SourceError> {
        Ok(None)
    }
    /// The `PersistentVolume`, or `None` when it does not exist.
    async fn persistent_volume(
        &self,
        _name: &str,
    ) -> Result<Option<PersistentVolume>, SourceError> {
        Ok(None)
    }
}

/// [`VolumeSources`] through kube-rs: GET configmaps/secrets, POST serviceaccounts/token.
#[derive(Clone)]
pub struct KubeVolumeSources {
    client: kube::Client,
}

impl std::fmt::Debug for KubeVolumeSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeVolumeSources").finish_non_exhaustive()
    }
}

impl KubeVolumeSources {
    /// Sources reading through `client` (the node's credentials).
    #[must_use]
    pub fn new(client: kube::Client) -> Self {
        KubeVolumeSources { client }
    }

    /// GET of the `kind` object `namespace/name`; `None` when it does not exist.
    async fn get_opt<K>(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<K>, SourceError>
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name)
            .await
            .map_err(|source| SourceError::GetFailed {
                kind,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source: Box::new(source),
            })
    }
}

#[async_trait]
impl VolumeSources for KubeVolumeSources {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, SourceError> {
        self.get_opt("configmap", namespace, name).await
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError> {
        self.get_opt("secret", namespace, name).await
    }

    async fn persistent_volume_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, SourceError> {
        self.get_opt("persistentvolumeclaim", namespace, name).await
    }

    async fn persistent_volume(&self, name: &str) -> Result<Option<PersistentVolume>, SourceError> {
        Api::<PersistentVolume>::all(self.client.clone())
            .get_opt(name)
            .await
            .map_err(|source| SourceError::GetFailed {
                kind: "persistentvolume",
                namespace: String::new(),
                name: name.to_owned(),
                source: Box::new(source),
            })
    }

    async fn service_account_token(
        &self,
        request: &ServiceAccountTokenRequest,
    ) -> Result<ServiceAccountToken, SourceError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &request.namespace);
        let body = TokenRequest {
            spec: TokenRequestSpec {
                audiences: request.audiences.clone(),
                expiration_seconds: Some(request.expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(request.pod_name.clone()),
                    uid: Some(request.pod_uid.clone()),
                }),
            },
            ..Default::default()
        };
        let answer = api
            .create_token_request(&request.service_account, &PostParams::default(), &body)
            .await
            .map_err(|source| SourceError::TokenRequestFailed {
                namespace: request.namespace.clone(),
                service_account: request.service_account.clone(),
                source: Box::new(source),
            })?;
        let incomplete = |missing| SourceError::TokenRequestIncomplete {
            namespace: request.namespace.clone(),
            service_account: request.service_account.clone(),
            missing,
        };
        let status = answer.status.ok_or_else(|| incomplete("status"))?;
        if status.token.is_empty() {
            return Err(incomplete("token"));
        }
        Ok(ServiceAccountToken {
            token: status.token,
            expiration: status.expiration_timestamp.0,
        })
    }
}

/// [`VolumeSources`] over objects held in memory. Records every token request; can be told
/// to fail. Tokens are `token-<n>` and expire `expiration_seconds` after `issued_at`.
#[derive(Debug, Default)]
pub struct InMemoryVolumeSources {
    state: Mutex<InMemoryState>,
}

#[derive(Debug, Default)]
struct InMemoryState {
    config_maps: HashMap<(String, String), ConfigMap>,
    secrets: HashMap<(String, String), Secret>,
    token_requests: Vec<ServiceAccountTokenRequest>,
    issued_at: Option<jiff::Timestamp>,
    failure: Option<String>,
}

/// The metadata of the in-memory object `namespace/name`.
fn object_meta(namespace: &str, name: &str) -> kube::api::ObjectMeta {
    kube::api::ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        ..Default::default()
    }
}

impl InMemoryVolumeSources {
    /// Empty sources.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, InMemoryState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds or replaces a configMap with string `data`.
    pub fn set_config_map(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let config_map = ConfigMap {
            metadata: object_meta(namespace, name),
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        };
        self.put_config_map(config_map);
    }

    /// Adds or replaces a configMap object (it must have a name and namespace).
    pub fn put_config_map(&self, config_map: ConfigMap) {
        let key = (
            config_map.metadata.namespace.clone().unwrap_or_default(),
            config_map.metadata.name.clone().unwrap_or_default(),
        );
        self.state().config_maps.insert(key, config_map);
    }

    /// Adds or replaces a secret with `data`.
    pub fn set_secret(&self, namespace: &str, name: &str, data: &[(&str, &[u8])]) {
        let secret = Secret {
            metadata: object_meta(namespace, name),
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), k8s_openapi::ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        let key = (namespace.to_owned(), name.to_owned());
        self.state().secrets.insert(key, secret);
    }

    /// Removes a configMap.
    pub fn delete_config_map(&self, namespace: &str, name: &str) {
        self.state()
            .config_maps
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Removes a secret.
    pub fn delete_secret(&self, namespace: &str, name: &str) {
        self.state()
            .secrets
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Makes every call fail with `message` (`None`: answer again).
    pub fn set_failure(&self, message: Option<&str>) {
        self.state().failure = message.map(str::to_owned);
    }

    /// The time tokens are issued at (default: now).
    pub fn set_issued_at(&self, at: jiff::Timestamp) {
        self.state().issued_at = Some(at);
    }

    /// The token requests made so far.
    #[must_use]
    pub fn token_requests(&self) -> Vec<ServiceAccountTokenRequest> {
        self.state().token_requests.clone()
    }
}

#[async_trait]
impl VolumeSources for InMemoryVolumeSources {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, SourceError> {
        let state = self.state();
        if let Some(failure) = &state.failure {
            return Err(SourceError::Unavailable(failure.clone()));
        }
        Ok(state
            .config_maps
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned())
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError> {
        let state = self.state();
        if let Some(failure) = &state.failure {
            return Err(SourceError::Unavailable(failure.clone()));
        }
        Ok(state
            .secrets
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned())
    }

    async fn service_account_token(
        &self,
        request: &ServiceAccountTokenRequest,
    ) -> Result<ServiceAccountToken, SourceError> {
        let mut state = self.state();
        if let Some(failure) = &state.failure {
            return Err(SourceError::Unavailable(failure.clone()));
        }
        state.token_requests.push(request.clone());
        let issued = state.issued_at.unwrap_or_else(jiff::Timestamp::now);
        let expiration = issued
            .checked_add(jiff::SignedDuration::from_secs(request.expiration_seconds))
            .map_err(|err| SourceError::Unavailable(err.to_string()))?;
        Ok(ServiceAccountToken {
            token: format!("token-{}", state.token_requests.len()),
            expiration,
        })
    }
}

//! The `ConfigMaps` and Secrets a container's environment names, fetched from the API before
//! the (synchronous) environment is built.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;

use crate::kuberuntime::EnvSource;

/// `ConfigMaps` and Secrets of one namespace, by name; absent ones are missing.
#[derive(Debug, Default)]
pub struct PrefetchedSources {
    namespace: String,
    config_maps: BTreeMap<String, BTreeMap<String, String>>,
    secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

/// The `ConfigMap` and Secret names a container's env and envFrom refer to.
#[must_use]
pub fn referenced(container: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for from in container.env_from.iter().flatten() {
        if let Some(c) = &from.config_map_ref {
            config_maps.insert(c.name.clone());
        }
        if let Some(s) = &from.secret_ref {
            secrets.insert(s.name.clone());
        }
    }
    for env in container.env.iter().flatten() {
        if let Some(from) = &env.value_from {
            if let Some(c) = &from.config_map_key_ref {
                config_maps.insert(c.name.clone());
            }
            if let Some(s) = &from.secret_key_ref {
                secrets.insert(s.name.clone());
            }
        }
    }
    (config_maps, secrets)
}

impl PrefetchedSources {
    /// Fetches what `container` refers to in the pod's namespace; failures leave the object
    /// missing (the environment builder then reports it, or skips it when optional).
    pub async fn fetch(client: Option<&kube::Client>, pod: &Pod, container: &Container) -> Self {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let mut sources = PrefetchedSources {
            namespace: namespace.clone(),
            ..Default::default()
        };
        let Some(client) = client else { return sources };
        let (config_maps, secrets) = referenced(container);
        let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
        for name in config_maps {
            match cm_api.get_opt(&name).await {
                Ok(Some(cm)) => {
                    sources
                        .config_maps
                        .insert(name, cm.data.unwrap_or_default());
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(namespace, name, %err, "read ConfigMap for environment"),
            }
        }
        let secret_api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        for name in secrets {
            match secret_api.get_opt(&name).await {
                Ok(Some(secret)) => {
                    let data = secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect();
                    sources.secrets.insert(name, data);
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(namespace, name, %err, "read Secret for environment"),
            }
        }
        sources
    }

    /// Sources from given objects (tests, static pods).
    #[must_use]
    pub fn from_maps(
        namespace: &str,
        config_maps: BTreeMap<String, BTreeMap<String, String>>,
        secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    ) -> Self {
        PrefetchedSources {
            namespace: namespace.to_owned(),
            config_maps,
            secrets,
        }
    }
}

impl EnvSource for PrefetchedSources {
    fn config_map(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, String>> {
        (namespace == self.namespace)
            .then(|| self.config_maps.get(name).cloned())
            .flatten()
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        (namespace == self.namespace)
            .then(|| self.secrets.get(name).cloned())
            .flatten()
    }
}

//! A container's environment, as the kubelet's `makeEnvironmentVariables` builds it:
//! `envFrom` first, then `env` in declaration order (later entries replace earlier ones,
//! `$(VAR)` references expand against what is defined so far and the service variables),
//! then the service link variables the container did not define itself.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ferrolet_cri::api::KeyValue;
use k8s_openapi::api::core::v1::{
    Container, EnvVarSource, ObjectFieldSelector, Pod, ResourceFieldSelector,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::expansion::expand;
use super::{Warning, WithWarnings, pod_namespace};
use crate::downward::{self, DownwardError};

/// Where `ConfigMaps` and Secrets come from (the kubelet's configmap and secret managers). A
/// `None` answer means the object does not exist.
pub trait EnvSource {
    /// The `data` of `ConfigMap` `namespace/name`.
    fn config_map(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, String>>;
    /// The `data` of Secret `namespace/name`, decoded.
    fn secret(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>>;
}

/// Everything a container's environment depends on besides the pod.
pub struct EnvContext<'a> {
    /// The node's IPs, primary first (`status.hostIP`, `status.hostIPs`).
    pub host_ips: Vec<String>,
    /// The pod's IPs as the sandbox reported them (`status.podIP`, `status.podIPs`).
    pub pod_ips: Vec<String>,
    /// `ConfigMaps` and Secrets in the pod's namespace.
    pub sources: &'a dyn EnvSource,
    /// Service link variables (`KUBERNETES_SERVICE_HOST`, `<SVC>_SERVICE_PORT`, ...): those of
    /// the master service always, those of the pod's namespace when `enableServiceLinks`.
    pub service_env: BTreeMap<String, String>,
    /// The node's allocatable resources, the default for `resourceFieldRef` limits the
    /// container does not set.
    pub node_allocatable: BTreeMap<String, ApiQuantity>,
}

impl fmt::Debug for EnvContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvContext")
            .field("host_ips", &self.host_ips)
            .field("pod_ips", &self.pod_ips)
            .field("service_env", &self.service_env)
            .field("node_allocatable", &self.node_allocatable)
            .finish_non_exhaustive()
    }
}

/// Why an environment could not be built; the kubelet reports these as
/// `CreateContainerConfigError` and retries.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A non-optional `ConfigMap` does not exist.
    #[error("couldn't get configMap {namespace}/{name}: configmap {name:?} not found")]
    ConfigMapNotFound { namespace: String, name: String },
    /// A non-optional Secret does not exist.
    #[error("couldn't get secret {namespace}/{name}: secret {name:?} not found")]
    SecretNotFound { namespace: String, name: String },
    /// A non-optional `configMapKeyRef` names a key the `ConfigMap` lacks.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        key: String,
        namespace: String,
        name: String,
    },
    /// A non-optional `secretKeyRef` names a key the Secret lacks.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        key: String,
        namespace: String,
        name: String,
    },
    /// A Secret value is not UTF-8, so it cannot travel in a CRI string.
    #[error("value of key {key} in Secret {namespace}/{name} is not valid UTF-8")]
    SecretValueNotUtf8 {
        key: String,
        namespace: String,
        name: String,
    },
    /// A `fieldRef` with an `apiVersion` other than `v1`.
    #[error("env {env}: unsupported pod version: {version}")]
    UnsupportedFieldRefVersion { env: String, version: String },
    /// `status.hostIP(s)` was asked for but the node's IPs are not known yet.
    #[error("env {env}: no host IP known for the node ({path})")]
    HostIpUnknown { env: String, path: String },
    /// A `fieldRef` or `resourceFieldRef` the downward API cannot answer: an unsupported
    /// path or resource, an invalid subscript, an unknown container, a bad quantity.
    #[error("env {env}: {source}")]
    Downward {
        env: String,
        #[source]
        source: DownwardError,
    },
}

/// The environment of `container`, in order: `envFrom` sources (keys optionally prefixed),
/// `env` entries (a later definition replaces an earlier one where it stood), then service
/// variables not already defined.
///
/// Upstream collects these in a Go map, so its order is unspecified; ferrolet keeps first
/// definition order so the runtime request is reproducible. `envFrom` keys that cannot be
/// environment variable names (empty, `=`, non-printable) are skipped with an
/// `InvalidEnvironmentVariableNames` warning; with the API server's relaxed name validation
/// (GA in 1.34) no valid `ConfigMap` or Secret key is skipped.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    ctx: &EnvContext<'_>,
) -> Result<WithWarnings<Vec<KeyValue>>, EnvError> {
    let namespace = pod_namespace(pod);
    let mut env = OrderedEnv::default();
    let mut warnings = Vec::new();
    let mut sources = SourceCache::new(namespace, ctx.sources);

    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or_default();
        let (kind, name, entries) = if let Some(cm_ref) = &source.config_map_ref {
            let optional = cm_ref.optional.unwrap_or(false);
            let Some(data) = sources.config_map(&cm_ref.name, optional)? else {
                continue;
            };
            let entries: Vec<(String, String)> =
                data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            ("configMap", cm_ref.name.clone(), entries)
        } else if let Some(secret_ref) = &source.secret_ref {
            let optional = secret_ref.optional.unwrap_or(false);
            let Some(data) = sources.secret(&secret_ref.name, optional)? else {
                continue;
            };
            let mut entries = Vec::with_capacity(data.len());
            for (key, value) in data {
                entries.push((
                    key.clone(),
                    secret_string(namespace, &secret_ref.name, key, value)?,
                ));
            }
            ("secret", secret_ref.name.clone(), entries)
        } else {
            continue;
        };
        let mut invalid = Vec::new();
        for (key, value) in entries {
            let key = format!("{prefix}{key}");
            if is_env_var_name(&key) {
                env.set(key, value);
            } else {
                invalid.push(key);
            }
        }
        if !invalid.is_empty() {
            invalid.sort();
            warnings.push(Warning {
                reason: "InvalidEnvironmentVariableNames",
                message: format!(
                    "Keys [{}] from the EnvFrom {kind} {namespace}/{name} were skipped since they \
                     are considered invalid environment variable names.",
                    invalid.join(", ")
                ),
            });
        }
    }

    for var in container.env.iter().flatten() {
        let literal = var.value.as_deref().unwrap_or_default();
        let value = if !literal.is_empty() {
            expand(literal, |name| {
                env.get(name)
                    .or_else(|| ctx.service_env.get(name).map(String::as_str))
            })
        } else if let Some(from) = &var.value_from {
            let resolved = resolve_value_from(pod, container, &var.name, from, ctx, &mut sources)?;
            match resolved {
                Some(value) => value,
                // An optional reference to something missing defines nothing.
                None => continue,
            }
        } else {
            String::new()
        };
        env.set(var.name.clone(), value);
    }

    for (name, value) in &ctx.service_env {
        if env.get(name).is_none() {
            env.set(name.clone(), value.clone());
        }
    }
    Ok(WithWarnings {
        value: env.into_key_values(),
        warnings,
    })
}

/// Resolves `valueFrom`; `Ok(None)` when an optional source or key is missing.
fn resolve_value_from(
    pod: &Pod,
    container: &Container,
    env_name: &str,
    from: &EnvVarSource,
    ctx: &EnvContext<'_>,
    sources: &mut SourceCache<'_>,
) -> Result<Option<String>, EnvError> {
    let namespace = pod_namespace(pod);
    if let Some(field) = &from.field_ref {
        return field_ref_value(pod, env_name, field, ctx).map(Some);
    }
    if let Some(resource) = &from.resource_field_ref {
        return resource_field_value(pod, container, env_name, resource, ctx).map(Some);
    }
    if let Some(selector) = &from.config_map_key_ref {
        let optional = selector.optional.unwrap_or(false);
        let Some(data) = sources.config_map(&selector.name, optional)? else {
            return Ok(None);
        };
        return match data.get(&selector.key) {
            Some(value) => Ok(Some(value.clone())),
            None if optional => Ok(None),
            None => Err(EnvError::ConfigMapKeyNotFound {
                key: selector.key.clone(),
                namespace: namespace.to_owned(),
                name: selector.name.clone(),
            }),
        };
    }
    if let Some(selector) = &from.secret_key_ref {
        let optional = selector.optional.unwrap_or(false);
        let Some(data) = sources.secret(&selector.name, optional)? else {
            return Ok(None);
        };
        return match data.get(&selector.key) {
            Some(value) => secret_string(namespace, &selector.name, &selector.key, value).map(Some),
            None if optional => Ok(None),
            None => Err(EnvError::SecretKeyNotFound {
                key: selector.key.clone(),
                namespace: namespace.to_owned(),
                name: selector.name.clone(),
            }),
        };
    }
    Ok(Some(String::new()))
}

/// The `ConfigMaps` and Secrets of the pod's namespace, each fetched at most once while one
/// container's environment is built; a missing one is an error unless the reference is
/// optional.
struct SourceCache<'a> {
    namespace: &'a str,
    source: &'a dyn EnvSource,
    config_maps: BTreeMap<String, Option<BTreeMap<String, String>>>,
    secrets: BTreeMap<String, Option<BTreeMap<String, Vec<u8>>>>,
}

impl<'a> SourceCache<'a> {
    fn new(namespace: &'a str, source: &'a dyn EnvSource) -> Self {
        SourceCache {
            namespace,
            source,
            config_maps: BTreeMap::new(),
            secrets: BTreeMap::new(),
        }
    }

    /// The data of `ConfigMap` `name`; `None` when it does not exist and `optional`.
    fn config_map(
        &mut self,
        name: &str,
        optional: bool,
    ) -> Result<Option<&BTreeMap<String, String>>, EnvError> {
        let (namespace, source) = (self.namespace, self.source);
        let fetch = || source.config_map(namespace, name);
        cached(&mut self.config_maps, name, optional, fetch, || {
            EnvError::ConfigMapNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }
        })
    }

    /// The data of Secret `name`; `None` when it does not exist and `optional`.
    fn secret(
        &mut self,
        name: &str,
        optional: bool,
    ) -> Result<Option<&BTreeMap<String, Vec<u8>>>, EnvError> {
        let (namespace, source) = (self.namespace, self.source);
        let fetch = || source.secret(namespace, name);
        cached(&mut self.secrets, name, optional, fetch, || {
            EnvError::SecretNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }
        })
    }
}

/// `cache[name]`, fetched on first use; `None` when the object does not exist and the
/// reference is `optional`, the `not_found` error when it is not.
fn cached<'c, T>(
    cache: &'c mut BTreeMap<String, Option<T>>,
    name: &str,
    optional: bool,
    fetch: impl FnOnce() -> Option<T>,
    not_found: impl FnOnce() -> EnvError,
) -> Result<Option<&'c T>, EnvError> {
    match cache.entry(name.to_owned()).or_insert_with(fetch) {
        Some(data) => Ok(Some(data)),
        None if optional => Ok(None),
        None => Err(not_found()),
    }
}

fn secret_string(namespace: &str, name: &str, key: &str, value: &[u8]) -> Result<String, EnvError> {
    String::from_utf8(value.to_vec()).map_err(|_| EnvError::SecretValueNotUtf8 {
        key: key.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

/// Environment variable names as the API server's relaxed validation admits them: printable
/// ASCII without `=`.
fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// Variables in first-definition order with in-place replacement.
#[derive(Default)]
struct OrderedEnv {
    order: Vec<(String, String)>,
    index: BTreeMap<String, usize>,
}

impl OrderedEnv {
    fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.order[i].1.as_str())
    }

    fn set(&mut self, name: String, value: String) {
        if let Some(&i) = self.index.get(&name) {
            self.order[i].1 = value;
        } else {
            self.index.insert(name.clone(), self.order.len());
            self.order.push((name, value));
        }
    }

    fn into_key_values(self) -> Vec<KeyValue> {
        self.order
            .into_iter()
            .map(|(key, value)| KeyValue { key, value })
            .collect()
    }
}

/// The downward API value of a `fieldRef` (`podFieldSelectorRuntimeValue`): the node and pod
/// IPs and `spec` fields only environment variables offer, then the pod's metadata.
fn field_ref_value(
    pod: &Pod,
    env: &str,
    selector: &ObjectFieldSelector,
    ctx: &EnvContext<'_>,
) -> Result<String, EnvError> {
    let version = selector.api_version.as_deref().unwrap_or_default();
    // The API server defaults an empty apiVersion to v1; accept both.
    if !version.is_empty() && version != "v1" {
        return Err(EnvError::UnsupportedFieldRefVersion {
            env: env.to_owned(),
            version: version.to_owned(),
        });
    }
    let path = selector.field_path.as_str();
    let spec = pod.spec.as_ref();
    let host_ip = |joined: bool| -> Result<String, EnvError> {
        if ctx.host_ips.is_empty() {
            return Err(EnvError::HostIpUnknown {
                env: env.to_owned(),
                path: path.to_owned(),
            });
        }
        Ok(if joined {
            ctx.host_ips.join(",")
        } else {
            ctx.host_ips[0].clone()
        })
    };
    let pod_ips = || sort_pod_ips(&ctx.pod_ips, ctx.host_ips.first().map(String::as_str));
    Ok(match path {
        "spec.nodeName" | "spec.host" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => host_ip(false)?,
        "status.hostIPs" => host_ip(true)?,
        "status.podIP" => pod_ips().first().cloned().unwrap_or_default(),
        "status.podIPs" => pod_ips().join(","),
        _ => downward::field_path_value(pod, path).map_err(|source| EnvError::Downward {
            env: env.to_owned(),
            source,
        })?,
    })
}

/// `sortPodIPs`: at most one IP of the node's primary family, then one of the other.
fn sort_pod_ips(pod_ips: &[String], primary_host_ip: Option<&str>) -> Vec<String> {
    let primary_is_v6 = primary_host_ip
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_ipv6());
    let of_family = |v6: bool| {
        pod_ips
            .iter()
            .find(|ip| ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6() == v6))
            .cloned()
    };
    of_family(primary_is_v6)
        .into_iter()
        .chain(of_family(!primary_is_v6))
        .collect()
}

/// The downward API value of a `resourceFieldRef` (`containerResourceRuntimeValue` after
/// `defaultPodLimitsForDownwardAPI`): the container itself and the pod's regular containers
/// see the node's allocatable as the limits they do not set; init containers named by
/// `containerName` do not.
fn resource_field_value(
    pod: &Pod,
    container: &Container,
    env: &str,
    selector: &ResourceFieldSelector,
    ctx: &EnvContext<'_>,
) -> Result<String, EnvError> {
    let (target, default_limits) = match selector.container_name.as_deref() {
        None | Some("") => (Ok(container), true),
        Some(name) => {
            let is_regular = pod
                .spec
                .iter()
                .flat_map(|s| &s.containers)
                .any(|c| c.name == name);
            (downward::find_container(pod, name), is_regular)
        }
    };
    let default_limits = default_limits.then_some(&ctx.node_allocatable);
    target
        .and_then(|target| downward::container_resource_value(selector, target, default_limits))
        .map_err(|source| EnvError::Downward {
            env: env.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::sort_pod_ips;

    #[test]
    fn pod_ips_follow_node_family() {
        let ips = vec!["fd00::5".to_owned(), "10.0.0.5".to_owned()];
        assert_eq!(
            sort_pod_ips(&ips, Some("192.168.1.1")),
            ["10.0.0.5", "fd00::5"]
        );
        assert_eq!(sort_pod_ips(&ips, Some("fd00::1")), ["fd00::5", "10.0.0.5"]);
        assert_eq!(sort_pod_ips(&ips, None), ["10.0.0.5", "fd00::5"]);
    }
}

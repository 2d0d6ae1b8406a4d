//! The files of configMap, secret, downwardAPI and projected volumes
//! (`pkg/volume/{configmap,secret,downwardapi,projected}`): which keys land at which paths
//! with which modes, what a missing object or key means, and where tokens come from.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, DownwardAPIVolumeFile, KeyToPath, Pod, ProjectedVolumeSource,
    SecretVolumeSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::atomic_writer::{FileProjection, Payload};
use super::error::SetUpError;
use super::sources::{ServiceAccountTokenRequest, VolumeSources};
use super::token::TokenCache;
use crate::downward;

/// `defaultMode` when the spec has none (the API server defaults it to this).
pub const DEFAULT_MODE: u32 = 0o644;
/// `expirationSeconds` of a projected token when the spec has none.
pub const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;

/// What building a payload needs besides the pod.
#[derive(Clone, Copy)]
pub struct ProjectionContext<'a> {
    pub sources: &'a dyn VolumeSources,
    pub tokens: &'a TokenCache,
    pub now: Timestamp,
    pub node_allocatable: &'a BTreeMap<String, ApiQuantity>,
}

impl std::fmt::Debug for ProjectionContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionContext")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// A mode from the API (`i32` holding permission bits) as permission bits.
fn mode_bits(mode: Option<i32>, default: u32) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok()).unwrap_or(default) & 0o7777
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

fn fs_group_set(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group)
        .is_some()
}

/// `MakePayload` of the configMap and secret plugins: every key at its own name, or only the
/// items at their paths. A missing key is skipped when `optional`, an error otherwise.
fn make_payload(
    items: Option<&[KeyToPath]>,
    data: &BTreeMap<String, Vec<u8>>,
    default_mode: u32,
    optional: bool,
    missing_key: impl Fn(String) -> SetUpError,
) -> Result<Payload, SetUpError> {
    let mut payload = Payload::new();
    match items {
        None | Some([]) => {
            for (key, value) in data {
                payload.insert(
                    key.clone(),
                    FileProjection {
                        data: value.clone(),
                        mode: default_mode,
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(value) = data.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(missing_key(item.key.clone()));
                };
                payload.insert(
                    item.path.clone(),
                    FileProjection {
                        data: value.clone(),
                        mode: mode_bits(item.mode, default_mode),
                    },
                );
            }
        }
    }
    Ok(payload)
}

/// The data of a configMap (`None`: it does not exist and is optional).
async fn config_map_data(
    ctx: ProjectionContext<'_>,
    pod: &Pod,
    name: &str,
    optional: bool,
) -> Result<BTreeMap<String, Vec<u8>>, SetUpError> {
    match ctx.sources.config_map(namespace(pod), name).await? {
        Some(config_map) => {
            let mut data: BTreeMap<String, Vec<u8>> = config_map
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            for (key, value) in config_map.binary_data.unwrap_or_default() {
                data.entry(key).or_insert(value.0);
            }
            Ok(data)
        }
        None if optional => Ok(BTreeMap::new()),
        None => Err(SetUpError::ConfigMapNotFound {
            name: name.to_owned(),
        }),
    }
}

async fn secret_data(
    ctx: ProjectionContext<'_>,
    pod: &Pod,
    name: &str,
    optional: bool,
) -> Result<BTreeMap<String, Vec<u8>>, SetUpError> {
    match ctx.sources.secret(namespace(pod), name).await? {
        Some(secret) => Ok(secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()),
        None if optional => Ok(BTreeMap::new()),
        None => Err(SetUpError::SecretNotFound {
            name: name.to_owned(),
        }),
    }
}

/// The files of a configMap volume.
pub async fn config_map_payload(
    ctx: ProjectionContext<'_>,
    pod: &Pod,
    source: &ConfigMapVolumeSource,
) -> Result<Payload, SetUpError> {
    let name = source.name.as_str();
    let optional = source.optional.unwrap_or(false);
    let data = config_map_data(ctx, pod, name, optional).await?;
    make_payload(
        source.items.as_deref(),
        &data,
        mode_bits(source.default_mode, DEFAULT_MODE),
        optional,
        |key| SetUpError::MissingConfigMapKey { key },
    )
}

/// The files of a secret volume.
pub async fn secret_payload(
    ctx: ProjectionContext<'_>,
    pod: &Pod,
    source: &SecretVolumeSource,
) -> Result<Payload, SetUpError> {
    let name = source.secret_name.as_deref().unwrap_or_default();
    let optional = source.optional.unwrap_or(false);
    let data = secret_data(ctx, pod, name, optional).await?;
    make_payload(
        source.items.as_deref(),
        &data,
        mode_bits(source.default_mode, DEFAULT_MODE),
        optional,
        |key| SetUpError::MissingSecretKey { key },
    )
}

/// Sorts the lines of a multi-line value (labels, annotations), as the downward API plugin
/// does (`utilstrings.SortLines`).
fn sort_lines(value: &str) -> String {
    let mut lines: Vec<&str> = value.split('\n').collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// The files of a downward API volume (`CollectData`).
pub fn downward_api_payload(
    ctx: ProjectionContext<'_>,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
) -> Result<Payload, SetUpError> {
    let mut errors = Vec::new();
    let mut payload = Payload::new();
    for item in items {
        let value = if let Some(field) = &item.field_ref {
            downward::field_path_value(pod, &field.field_path).map_err(|reason| {
                SetUpError::DownwardApi {
                    field: field.field_path.clone(),
                    reason,
                }
            })
        } else if let Some(resource) = &item.resource_field_ref {
            // Every container, init containers too, sees the node's allocatable as the
            // limits it does not set (`ExtractResourceValueByContainerNameAndNodeAllocatable`).
            let container_name = resource.container_name.as_deref().unwrap_or_default();
            downward::find_container(pod, container_name)
                .and_then(|container| {
                    downward::container_resource_value(
                        resource,
                        container,
                        Some(ctx.node_allocatable),
                    )
                })
                .map_err(|reason| SetUpError::DownwardApi {
                    field: resource.resource.clone(),
                    reason,
                })
        } else {
            Ok(String::new())
        };
        match value {
            Ok(value) => {
                payload.insert(
                    item.path.clone(),
                    FileProjection {
                        data: sort_lines(&value).into_bytes(),
                        mode: mode_bits(item.mode, default_mode),
                    },
                );
            }
            Err(err) => errors.push(err),
        }
    }
    match SetUpError::aggregate(errors) {
        Some(err) => Err(err),
        None => Ok(payload),
    }
}

/// The files of a projected volume: its sources merged, errors aggregated.
pub async fn projected_payload(
    ctx: ProjectionContext<'_>,
    pod: &Pod,
    source: &ProjectedVolumeSource,
) -> Result<Payload, SetUpError> {
    let default_mode = mode_bits(source.default_mode, DEFAULT_MODE);
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for projection in source.sources.iter().flatten() {
        let part = if let Some(cm) = &projection.config_map {
            let name = cm.name.as_str();
            let optional = cm.optional.unwrap_or(false);
            match config_map_data(ctx, pod, name, optional).await {
                Ok(data) => {
                    make_payload(cm.items.as_deref(), &data, default_mode, optional, |key| {
                        SetUpError::MissingConfigMapKey { key }
                    })
                }
                Err(err) => Err(err),
            }
        } else if let Some(secret) = &projection.secret {
            let name = secret.name.as_str();
            let optional = secret.optional.unwrap_or(false);
            match secret_data(ctx, pod, name, optional).await {
                Ok(data) => make_payload(
                    secret.items.as_deref(),
                    &data,
                    default_mode,
                    optional,
                    |key| SetUpError::MissingSecretKey { key },
                ),
                Err(err) => Err(err),
            }
        } else if let Some(downward) = &projection.downward_api {
            downward_api_payload(
                ctx,
                pod,
                downward.items.as_deref().unwrap_or_default(),
                default_mode,
            )
        } else if let Some(token) = &projection.service_account_token {
            token_payload(ctx, pod, token, default_mode).await
        } else {
            // clusterTrustBundle and podCertificate projections are not supported.
            Ok(Payload::new())
        };
        match part {
            Ok(part) => payload.extend(part),
            Err(err) => errors.push(err),
        }
    }
    match SetUpError::aggregate(errors) {
        Some(err) => Err(err),
        None => Ok(payload),
    }
}

async fn token_payload(
    ctx: ProjectionContext<'_>,
    pod: &Pod,
    projection: &k8s_openapi::api::core::v1::ServiceAccountTokenProjection,
    default_mode: u32,
) -> Result<Payload, SetUpError> {
    let spec = pod.spec.as_ref();
    let service_account = spec
        .and_then(|s| {
            s.service_account_name
                .clone()
                .or_else(|| s.service_account.clone())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let request = ServiceAccountTokenRequest {
        namespace: namespace(pod).to_owned(),
        service_account,
        audiences: projection
            .audience
            .clone()
            .filter(|a| !a.is_empty())
            .into_iter()
            .collect(),
        expiration_seconds: projection
            .expiration_seconds
            .unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS),
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
    };
    let token = ctx.tokens.get(ctx.sources, &request, ctx.now).await?;
    // With an fsGroup the token is 0600 and the ownership change makes it 0640.
    let mode = if fs_group_set(pod) {
        0o600
    } else {
        default_mode
    };
    let mut payload = Payload::new();
    payload.insert(
        projection.path.clone(),
        FileProjection {
            data: token.token.into_bytes(),
            mode,
        },
    );
    Ok(payload)
}

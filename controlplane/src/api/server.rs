//! [`ApiServer`]: the state every request handler shares, and the request dispatcher.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::error::{ApiError, ApiResult};
use super::options::{QueryOptions, negotiate};
use super::request::RequestInfo;
use super::selectors::field_value;
use super::{discovery, handlers, watch};
use crate::cache::{Attributes, CacheConfig, CachedObject, WatchCache, labels_of, resource_prefix};
use crate::registry::{Registry, ServiceIpAllocator, Strategy};
use crate::resources::{self, ResourceInfo};
use crate::store::Store;

/// Largest request body accepted (kube-apiserver's limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Settings of the API server.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Range of Service `ClusterIPs` (`--service-cluster-ip-range`).
    pub service_cidr: String,
    /// How often a watch with `allowWatchBookmarks` gets a bookmark.
    pub bookmark_interval: Duration,
    /// Changes the watch cache keeps for watches that resume.
    pub cache_capacity: usize,
    /// The most bytes those changes may take (the serialized objects).
    pub cache_bytes: usize,
    /// `host:port` clients reach the API server at, for discovery.
    pub advertise_address: String,
    /// The cluster CA in PEM, published in every namespace as `kube-root-ca.crt`.
    pub ca_pem: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            service_cidr: "10.96.0.0/12".into(),
            bookmark_interval: Duration::from_mins(1),
            cache_capacity: 100_000,
            cache_bytes: 256 * 1024 * 1024,
            advertise_address: "127.0.0.1:6443".into(),
            ca_pem: None,
        }
    }
}

/// A consistent list result kept for `continue` tokens.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub objects: Vec<Arc<CachedObject>>,
    pub revision: i64,
}

/// Recent list snapshots by id, and their ids oldest first (for eviction).
pub(crate) type Snapshots = (HashMap<String, Arc<Snapshot>>, VecDeque<String>);

/// The API server's shared state.
pub struct ApiServer {
    pub store: Arc<dyn Store>,
    pub cache: WatchCache,
    pub registry: Registry,
    pub config: ApiConfig,
    pub services: ServiceIpAllocator,
    /// Serializes `ClusterIP` and `NodePort` allocation.
    pub(crate) service_lock: tokio::sync::Mutex<()>,
    pub(crate) snapshots: Mutex<Snapshots>,
    /// Authentication; `None` lets every request act as a cluster admin (in-process tests).
    pub access: Option<super::access::Access>,
    pub(crate) lookup: super::access::CacheLookup,
    /// Credentials for the kubelets' APIs (logs, exec, attach, port-forward).
    pub kubelet_client: Option<super::proxy::KubeletClient>,
    pub cancel: CancellationToken,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ApiServer {
    /// Starts the watch cache over `store` and returns the server state.
    pub async fn new(
        store: Arc<dyn Store>,
        config: ApiConfig,
        access: Option<super::access::Access>,
        kubelet_client: Option<super::proxy::KubeletClient>,
        cancel: CancellationToken,
    ) -> Result<Arc<Self>, String> {
        let services = ServiceIpAllocator::new(&config.service_cidr)?;
        let registry = Registry::new();
        let cache = WatchCache::start(
            store.clone(),
            "/registry/",
            cache_config(&config, &registry),
            cancel.clone(),
        )
        .await
        .map_err(|e| format!("start the watch cache: {e}"))?;
        Ok(Arc::new(ApiServer {
            store,
            lookup: super::access::CacheLookup(cache.clone()),
            access,
            kubelet_client,
            cache,
            registry,
            config,
            services,
            service_lock: tokio::sync::Mutex::new(()),
            snapshots: Mutex::new((HashMap::new(), VecDeque::new())),
            cancel,
        }))
    }

    /// The resource and strategy a request addresses.
    pub(crate) fn resource(
        &self,
        info: &RequestInfo,
    ) -> ApiResult<(&'static ResourceInfo, &dyn Strategy)> {
        let resource = resources::lookup(&info.api_group, &info.api_version, &info.resource)
            .ok_or_else(|| ApiError::path_not_found(&info.path))?;
        let strategy = self
            .registry
            .get(resource.plural)
            .ok_or_else(|| ApiError::path_not_found(&info.path))?;
        if let Some(sub) = &info.subresource
            && !resource.subresources.contains(&sub.as_str())
        {
            return Err(ApiError::path_not_found(&info.path));
        }
        if info.namespace.is_some() && !resource.namespaced {
            return Err(ApiError::path_not_found(&info.path));
        }
        Ok((resource, strategy))
    }

    /// Handles one request.
    pub async fn handle(self: &Arc<Self>, request: Request<Body>) -> Response {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().map(str::to_owned);
        let started = std::time::Instant::now();
        let response = match self.route(request).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        };
        tracing::debug!(%method, %path, query = query.as_deref().unwrap_or(""), status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis(), "request");
        response
    }

    async fn route(self: &Arc<Self>, request: Request<Body>) -> ApiResult<Response> {
        let options = QueryOptions::parse(request.uri().query())?;
        let info = RequestInfo::parse(request.method(), request.uri().path(), options.is_watch());
        let user = super::access::authenticate(self.access.as_ref(), &request, &self.lookup)?;
        super::access::check(&user, &info, &self.lookup)?;
        if !info.is_resource_request {
            return discovery::handle(self, &info, &request);
        }
        if super::proxy::is_proxied(&info) {
            return super::proxy::handle(self, &info, request).await;
        }
        let reviewing = super::reviews::is_review(&info.api_group, &info.resource);
        let representation = negotiate(
            request
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        );
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_owned();
        let body = axum::body::to_bytes(request.into_body(), MAX_BODY)
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    format!("read request body: {e}"),
                )
            })?;
        // Clients of built-in types (kubectl's typed calls, the kubelet) may send protobuf;
        // everything below works on the JSON the same object would have.
        let body = if super::protobuf::is_protobuf(&content_type) && !body.is_empty() {
            let value = super::protobuf::decode_request(&body).map_err(|err| {
                let code = err.status_code();
                let reason = match code {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
                    StatusCode::INTERNAL_SERVER_ERROR => "InternalError",
                    _ => "BadRequest",
                };
                ApiError::new(code, reason, err.to_string())
            })?;
            axum::body::Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
        } else {
            body
        };
        let ctx = handlers::Context {
            server: self.clone(),
            user,
            info,
            options,
            representation,
        };
        if reviewing {
            return super::reviews::review(&ctx, &body);
        }
        match (ctx.info.verb.as_str(), ctx.info.subresource.as_deref()) {
            ("watch", _) => watch::watch(ctx).await,
            ("list", _) => handlers::list(&ctx).await,
            ("get", _) => handlers::get(&ctx).await,
            ("create", Some("binding")) => handlers::bind(&ctx, &body).await,
            ("create", Some("token")) => super::reviews::token_request(&ctx, &body).await,
            ("create", _) => handlers::create(&ctx, &body).await,
            ("update", _) => handlers::update(&ctx, &body).await,
            ("patch", _) => handlers::patch(&ctx, &content_type, &body).await,
            ("delete", _) => handlers::delete(&ctx, &body).await,
            ("deletecollection", _) => handlers::delete_collection(&ctx, &body).await,
            _ => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource".to_string(),
            )),
        }
    }
}

/// The watch cache's settings: the selectable fields of each resource are read once per
/// object, and pods are indexed by `spec.nodeName` (kube-apiserver's cacher does the same), so
/// that each kubelet's pod watch costs only its own pods' changes.
fn cache_config(config: &ApiConfig, registry: &Registry) -> CacheConfig {
    let fields: HashMap<String, Vec<&'static str>> = resources::RESOURCES
        .iter()
        .filter_map(|r| {
            registry
                .get(r.plural)
                .map(|strategy| (r.key_prefix(), strategy.field_selectors()))
        })
        .collect();
    let mut cache = CacheConfig::new(config.cache_capacity, config.cache_bytes);
    cache.attributes = Arc::new(move |key, value| Attributes {
        labels: labels_of(value),
        fields: resource_prefix(key)
            .and_then(|prefix| fields.get(prefix))
            .map(|names| {
                names
                    .iter()
                    .map(|name| (*name, field_value(value, name)))
                    .collect()
            })
            .unwrap_or_default(),
    });
    if let Some(pods) = resources::lookup("", "v1", "pods") {
        cache.indexes = vec![(pods.key_prefix(), "spec.nodeName")];
    }
    cache
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Whether a method is one that reads.
#[must_use]
pub fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

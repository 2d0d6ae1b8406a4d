//! Reads and creates: get, list (with selectors, pagination and tables), create, binding.

use std::sync::Arc;

use axum::response::Response;
use base64::Engine as _;
use http::StatusCode;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::options::{QueryOptions, Representation};
use super::request::RequestInfo;
use super::selectors::{FieldSelector, LabelSelector};
use super::server::{ApiServer, Snapshot, json_response};
use super::table;
use crate::cache::CachedObject;
use crate::registry::Strategy;
use crate::resources::ResourceInfo;
use crate::store::{self, KeyValue};

pub(crate) use super::write::{delete, delete_collection, patch, update};

/// Everything a handler needs about one request.
pub(crate) struct Context {
    pub server: Arc<ApiServer>,
    pub user: crate::auth::UserInfo,
    pub info: RequestInfo,
    pub options: QueryOptions,
    pub representation: Representation,
}

impl Context {
    pub fn resource(&self) -> ApiResult<(&'static ResourceInfo, &dyn Strategy)> {
        self.server.resource(&self.info)
    }

    pub fn name(&self) -> &str {
        self.info.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.info.namespace.as_deref()
    }

    pub fn key(&self, resource: &ResourceInfo) -> String {
        resource.key(self.namespace(), self.name())
    }

    /// The `NodeRestriction` admission plugin: what nodes may write, checked on the body.
    pub fn admit_node(&self, object: Option<&Value>, old: Option<&Value>) -> ApiResult<()> {
        let attrs = super::access::attributes(&self.info);
        crate::auth::node_restriction::admit(&self.user, &attrs, object, old, &self.server.lookup)
            .map_err(|denied| ApiError::forbidden(denied.message))
    }
}

/// The current time as kube-apiserver writes timestamps (RFC 3339, whole seconds, UTC).
#[must_use]
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// A stored value as the API returns it: parsed, with `metadata.resourceVersion`.
pub(crate) fn decode_stored(kv: &KeyValue) -> ApiResult<Value> {
    let mut value: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    set_resource_version(&mut value, kv.mod_revision);
    Ok(value)
}

pub(crate) fn set_resource_version(value: &mut Value, revision: i64) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

/// The bytes to store: the object without its resourceVersion (the store's revision is the
/// resourceVersion).
pub(crate) fn encode_for_store(value: &Value) -> Vec<u8> {
    let mut value = value.clone();
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

/// The object in the representation the client asked for.
pub(crate) fn represent(ctx: &Context, resource: &ResourceInfo, object: &Value) -> Value {
    match ctx.representation {
        Representation::Object => object.clone(),
        Representation::Metadata => table::partial_metadata(object),
        Representation::Table => table::table(
            resource,
            &[object],
            object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default(),
            None,
            ctx.options.include_object.as_deref(),
            true,
        ),
    }
}

pub(crate) async fn get(ctx: &Context) -> ApiResult<Response> {
    let (resource, _) = ctx.resource()?;
    match ctx.info.subresource.as_deref() {
        None | Some("status") => {}
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!("{}/{other} is not served yet", resource.plural),
            ));
        }
    }
    let kv = ctx
        .server
        .store
        .get(&ctx.key(resource))
        .await?
        .ok_or_else(|| ApiError::not_found(resource, ctx.name()))?;
    let object = decode_stored(&kv)?;
    Ok(json_response(
        StatusCode::OK,
        &represent(ctx, resource, &object),
    ))
}

/// Selectors of a list or watch request.
pub(crate) struct Filter {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn new(options: &QueryOptions, strategy: &dyn Strategy) -> ApiResult<Self> {
        Ok(Filter {
            labels: LabelSelector::parse(options.label_selector.as_deref().unwrap_or_default())?,
            fields: FieldSelector::parse(
                options.field_selector.as_deref().unwrap_or_default(),
                &strategy.field_selectors(),
            )?,
        })
    }

    /// Whether a cached object matches, from the attributes read when it was cached.
    pub fn matches_object(&self, object: &CachedObject) -> bool {
        let attributes = &object.attributes;
        self.fields
            .0
            .iter()
            .all(|term| (attributes.field(&term.field) == term.value) == term.equal)
            && (self.labels.is_empty() || self.labels.matches(&attributes.labels))
    }
}

/// How long a list waits for the watch cache to reach a revision.
const CACHE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits until the cache serves at least the revision the request asks for: the store's
/// current revision for a consistent read (`resourceVersion` unset), any for "0", the given
/// one otherwise.
pub(crate) async fn cache_at(ctx: &Context) -> ApiResult<()> {
    let wanted = match ctx.options.resource_version.as_deref() {
        None | Some("") => ctx.server.store.current_revision().await?,
        Some("0") => return Ok(()),
        Some(rv) => rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?,
    };
    ctx.server
        .cache
        .wait_for(wanted, CACHE_WAIT)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Timeout",
                format!("Too large resource version: {e}"),
            )
        })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: i64,
    id: String,
    offset: usize,
}

const MAX_SNAPSHOTS: usize = 64;

fn encode_token(token: &ContinueToken) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(token).unwrap_or_default())
}

fn decode_token(text: &str) -> ApiResult<ContinueToken> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))
}

pub(crate) async fn list(ctx: &Context) -> ApiResult<Response> {
    let (resource, strategy) = ctx.resource()?;
    let filter = Filter::new(&ctx.options, strategy)?;
    let (snapshot, offset, id) = if let Some(token) = ctx
        .options
        .continue_token
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        let token = decode_token(token)?;
        let snapshots = ctx
            .server
            .snapshots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let snapshot = snapshots.0.get(&token.id).cloned().ok_or_else(|| {
            ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
        })?;
        (snapshot, token.offset, token.id)
    } else {
        cache_at(ctx).await?;
        let (objects, revision) = ctx
            .server
            .cache
            .list(&resource.key_prefix_in(ctx.namespace()));
        let objects: Vec<Arc<CachedObject>> = objects
            .into_iter()
            .filter(|o| filter.matches_object(o))
            .collect();
        (
            Arc::new(Snapshot { objects, revision }),
            0,
            uuid::Uuid::new_v4().to_string(),
        )
    };
    let total = snapshot.objects.len();
    let limit = ctx
        .options
        .limit
        .filter(|l| *l > 0)
        .map_or(total, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let end = offset.saturating_add(limit).min(total);
    let page = &snapshot.objects[offset.min(total)..end];
    let continue_token = (end < total).then(|| {
        let mut snapshots = ctx
            .server
            .snapshots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !snapshots.0.contains_key(&id) {
            snapshots.0.insert(id.clone(), snapshot.clone());
            snapshots.1.push_back(id.clone());
            while snapshots.1.len() > MAX_SNAPSHOTS {
                if let Some(old) = snapshots.1.pop_front() {
                    snapshots.0.remove(&old);
                }
            }
        }
        encode_token(&ContinueToken {
            rv: snapshot.revision,
            id: id.clone(),
            offset: end,
        })
    });
    let revision = snapshot.revision.to_string();
    let mut metadata = json!({"resourceVersion": revision});
    if let Some(token) = &continue_token {
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(total - end);
    }
    let body = match ctx.representation {
        // The common case, and the costly one with thousands of objects: the cached bytes
        // of each object, written one after the other.
        Representation::Object => {
            return Ok(list_response(
                &resource.list_kind(),
                &resource.api_version(),
                &metadata,
                page,
            ));
        }
        Representation::Table => {
            let values: Vec<Value> = page.iter().map(|o| o.value()).collect();
            let refs: Vec<&Value> = values.iter().collect();
            table::table(
                resource,
                &refs,
                &revision,
                continue_token.as_deref(),
                ctx.options.include_object.as_deref(),
                true,
            )
        }
        Representation::Metadata => {
            let items: Vec<Value> = page
                .iter()
                .map(|o| table::partial_metadata(&o.value()))
                .collect();
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "items": items})
        }
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// A list of cached objects as JSON: the envelope around the objects' stored bytes.
fn list_response(
    kind: &str,
    api_version: &str,
    metadata: &Value,
    objects: &[Arc<CachedObject>],
) -> Response {
    let head =
        serde_json::to_vec(&json!({"kind": kind, "apiVersion": api_version, "metadata": metadata}))
            .unwrap_or_default();
    let size = head.len() + 16 + objects.iter().map(|o| o.json.len() + 1).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    // `{"kind":...,"metadata":{...}` without its closing brace, then the items.
    body.extend_from_slice(&head[..head.len().saturating_sub(1)]);
    body.extend_from_slice(b",\"items\":[");
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&object.json);
    }
    body.extend_from_slice(b"]}");
    let mut response = Response::new(axum::body::Body::from(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Parses a request body as JSON, as kube-apiserver's decoder reports failures.
pub(crate) fn parse_body(body: &[u8]) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

/// Checks `apiVersion` and `kind` of a body against the resource.
pub(crate) fn check_type(body: &Value, resource: &ResourceInfo) -> ApiResult<()> {
    if let Some(api_version) = body["apiVersion"].as_str().filter(|v| !v.is_empty())
        && api_version != resource.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            resource.api_version()
        )));
    }
    if let Some(kind) = body["kind"].as_str().filter(|k| !k.is_empty())
        && kind != resource.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            resource.kind
        )));
    }
    Ok(())
}

/// Applies `fieldValidation` to unknown fields: an error for Strict, warnings for Warn.
pub(crate) fn field_validation(ctx: &Context, unknown: &[String]) -> ApiResult<Vec<String>> {
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    let messages: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match ctx.options.field_validation()? {
        "Strict" => {
            let (kind, version) = ctx
                .resource()
                .map(|(r, _)| (r.kind, r.version))
                .unwrap_or_default();
            Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                messages.join(", ")
            )))
        }
        "Warn" => Ok(messages),
        _ => Ok(Vec::new()),
    }
}

/// A response carrying `Warning` headers.
pub(crate) fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - \"{}\"", warning.replace('"', "\\\""));
        if let Ok(value) = http::HeaderValue::from_str(&text) {
            response.headers_mut().append(http::header::WARNING, value);
        }
    }
    response
}

async fn namespace_admission(
    ctx: &Context,
    resource: &ResourceInfo,
    namespace: &str,
    name: &str,
) -> ApiResult<()> {
    let namespaces = crate::resources::lookup("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("namespaces are not served"))?;
    let Some(ns) = ctx
        .server
        .store
        .get(&namespaces.key(None, namespace))
        .await?
    else {
        return Err(ApiError::not_found(namespaces, namespace));
    };
    let ns: Value = serde_json::from_slice(&ns.value).unwrap_or_default();
    if ns["metadata"]["deletionTimestamp"].is_string() && resource.kind != "Event" {
        return Err(ApiError::forbidden(format!(
            "{} {name:?} is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
            resource.qualified_name()
        )));
    }
    Ok(())
}

pub(crate) async fn create(ctx: &Context, body: &[u8]) -> ApiResult<Response> {
    let (resource, strategy) = ctx.resource()?;
    if ctx.info.subresource.is_some() || ctx.info.name.is_some() {
        return Err(ApiError::method_not_allowed(format!(
            "creating {} is not supported",
            ctx.info.path
        )));
    }
    let body = parse_body(body)?;
    check_type(&body, resource)?;
    let decoded = strategy.decode(&body)?;
    let warnings = field_validation(ctx, &decoded.unknown_fields)?;
    let mut object = decoded.value;
    let meta = object["metadata"]
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    if resource.namespaced {
        let url_ns = ctx.namespace().unwrap_or_default();
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != url_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(url_ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    let generate_name = meta
        .get("generateName")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let given_name = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    for key in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        meta.remove(key);
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    if strategy.has_spec() {
        meta.insert("generation".into(), json!(1));
    }
    let attempts = if given_name.is_none() && generate_name.is_some() {
        5
    } else {
        1
    };
    for attempt in 0..attempts {
        let name = match (&given_name, &generate_name) {
            (Some(name), _) => name.clone(),
            (None, Some(prefix)) => {
                format!("{prefix}{}", crate::registry::pod::generated_name_suffix())
            }
            (None, None) => String::new(),
        };
        object["metadata"]["name"] = json!(name);
        let mut candidate = object.clone();
        strategy.create(&mut candidate)?;
        ctx.admit_node(Some(&candidate), None)?;
        if resource.namespaced {
            namespace_admission(ctx, resource, ctx.namespace().unwrap_or_default(), &name).await?;
        }
        super::admission::admit_create(ctx, resource, &mut candidate).await?;
        if ctx.options.dry_run() {
            return Ok(with_warnings(
                json_response(StatusCode::CREATED, &candidate),
                &warnings,
            ));
        }
        let key = resource.key(ctx.namespace(), &name);
        match ctx
            .server
            .store
            .create(&key, encode_for_store(&candidate))
            .await
        {
            Ok(kv) => {
                set_resource_version(&mut candidate, kv.mod_revision);
                super::admission::after_create(ctx, resource, &candidate).await;
                let body = represent(ctx, resource, &candidate);
                return Ok(with_warnings(
                    json_response(StatusCode::CREATED, &body),
                    &warnings,
                ));
            }
            Err(store::Error::AlreadyExists { .. }) if attempt + 1 < attempts => {}
            Err(store::Error::AlreadyExists { .. }) => {
                return Err(ApiError::already_exists(resource, &name));
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(ApiError::internal("could not generate a unique name"))
}

/// `POST pods/{name}/binding`: the scheduler assigns a pod to a node.
pub(crate) async fn bind(ctx: &Context, body: &[u8]) -> ApiResult<Response> {
    let (resource, _) = ctx.resource()?;
    let binding = parse_body(body)?;
    let node = binding["target"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            let errors = [crate::api::error::FieldError::required("target.name")];
            ApiError::invalid(resource, ctx.name(), &errors)
        })?;
    let key = ctx.key(resource);
    loop {
        let kv = ctx
            .server
            .store
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::not_found(resource, ctx.name()))?;
        let mut pod = decode_stored(&kv)?;
        if pod["metadata"]["deletionTimestamp"].is_string() {
            return Err(ApiError::conflict(
                resource,
                ctx.name(),
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        if let Some(current) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict(
                resource,
                ctx.name(),
                &format!("pod {} is already assigned to node {current:?}", ctx.name()),
            ));
        }
        pod["spec"]["nodeName"] = json!(node);
        if let Some(annotations) = binding["metadata"]["annotations"].as_object() {
            for (k, v) in annotations {
                pod["metadata"]["annotations"][k] = v.clone();
            }
        }
        set_condition(&mut pod, "PodScheduled", "True", None, None);
        match ctx
            .server
            .store
            .update(&key, encode_for_store(&pod), kv.mod_revision)
            .await
        {
            Ok(_) => {
                let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
                return Ok(json_response(StatusCode::CREATED, &status));
            }
            Err(store::Error::Conflict { .. }) => {}
            Err(store::Error::NotFound { .. }) => {
                return Err(ApiError::not_found(resource, ctx.name()));
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Sets a status condition by type, keeping `lastTransitionTime` when the status is unchanged.
pub(crate) fn set_condition(
    object: &mut Value,
    kind: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) {
    let now = now_rfc3339();
    let conditions = object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut found = false;
    let mut updated: Vec<Value> = conditions
        .into_iter()
        .map(|mut c| {
            if c["type"] == kind {
                found = true;
                if c["status"] != status {
                    c["lastTransitionTime"] = json!(now);
                }
                c["status"] = json!(status);
                c["lastProbeTime"] = Value::Null;
                match reason {
                    Some(r) => c["reason"] = json!(r),
                    None => {
                        c.as_object_mut().map(|m| m.remove("reason"));
                    }
                }
                match message {
                    Some(m) => c["message"] = json!(m),
                    None => {
                        c.as_object_mut().map(|o| o.remove("message"));
                    }
                }
            }
            c
        })
        .collect();
    if !found {
        let mut c = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        if let Some(m) = message {
            c["message"] = json!(m);
        }
        updated.push(c);
    }
    object["status"]["conditions"] = json!(updated);
}

//! Routing and the plain endpoints: `/healthz`, `/pods`, `/containerLogs`, `/metrics`.
//! Path segments are percent-decoded and must be Kubernetes names, so that nothing in a path
//! can point outside the pod's log directory.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use ferrolet_cri::api;
use http::{Method, Request, Response, StatusCode, header};
use k8s_openapi::api::core::v1::Pod;

use super::ServerContext;
use super::auth::{Denied, KubeletAuth, request_attributes};
use crate::kuberuntime::labels::{CONTAINER_NAME_LABEL, POD_UID_LABEL};
use crate::logs::{LogOptions, LogSink, read_log};

/// An error answered as plain text, as the kubelet answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HttpError {
    pub status: StatusCode,
    pub message: String,
}

impl HttpError {
    #[must_use]
    pub fn bad_request(message: impl Into<String>) -> Self {
        HttpError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
    #[must_use]
    pub fn not_found(message: impl Into<String>) -> Self {
        HttpError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
    #[must_use]
    pub fn internal(message: impl Into<String>) -> Self {
        HttpError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    #[must_use]
    pub fn into_response(self) -> Response<Body> {
        text(self.status, format!("{}\n", self.message))
    }
}

impl From<Denied> for HttpError {
    fn from(denied: Denied) -> Self {
        let status = match denied {
            Denied::Unauthenticated => StatusCode::UNAUTHORIZED,
            Denied::Forbidden(_) => StatusCode::FORBIDDEN,
            Denied::ReviewFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        HttpError {
            status,
            message: denied.to_string(),
        }
    }
}

pub(super) fn text(status: StatusCode, body: impl Into<Body>) -> Response<Body> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json(value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Percent-decodes a path segment; `None` when it is not valid UTF-8 after decoding.
pub(super) fn decode_segment(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A DNS-1123 label (namespaces, container names) or, with `dots`, subdomain (pod names).
pub(super) fn is_name(value: &str, dots: bool) -> bool {
    let max = if dots { 253 } else { 63 };
    !value.is_empty()
        && value.len() <= max
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.')
        })
        && value
            .split('.')
            .all(|part| !part.is_empty() && !part.starts_with('-') && !part.ends_with('-'))
}

/// The named segments after the endpoint's own: `{namespace}/{pod}[/{container}]`.
pub(super) fn object_path(
    rest: &[&str],
    with_container: bool,
) -> Result<(String, String, Option<String>), HttpError> {
    let expected = if with_container { 3 } else { 2 };
    if rest.len() != expected {
        return Err(HttpError::bad_request(format!(
            "expected {} path segments after the endpoint, got {}",
            expected,
            rest.len()
        )));
    }
    let decoded: Vec<String> = rest
        .iter()
        .map(|s| decode_segment(s).ok_or_else(|| HttpError::bad_request("invalid path encoding")))
        .collect::<Result<_, _>>()?;
    if !is_name(&decoded[0], false) {
        return Err(HttpError::bad_request(format!(
            "invalid namespace {:?}",
            decoded[0]
        )));
    }
    if !is_name(&decoded[1], true) {
        return Err(HttpError::bad_request(format!(
            "invalid pod name {:?}",
            decoded[1]
        )));
    }
    let container = if with_container {
        if !is_name(&decoded[2], false) {
            return Err(HttpError::bad_request(format!(
                "invalid container name {:?}",
                decoded[2]
            )));
        }
        Some(decoded[2].clone())
    } else {
        None
    };
    Ok((decoded[0].clone(), decoded[1].clone(), container))
}

/// The query as a multimap (values percent-decoded, `+` as space).
pub(super) fn query_params(request: &Request<Body>) -> HashMap<String, Vec<String>> {
    let mut params: HashMap<String, Vec<String>> = HashMap::new();
    for pair in request.uri().query().unwrap_or_default().split('&') {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode_segment(&value.replace('+', " ")).unwrap_or_default();
        params.entry(key.to_owned()).or_default().push(value);
    }
    params
}

/// A boolean query flag: `true`/`1` (the kubelet's and the API's spellings).
pub(super) fn flag(params: &HashMap<String, Vec<String>>, names: &[&str]) -> bool {
    names.iter().any(|name| {
        params
            .get(*name)
            .and_then(|v| v.first())
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    })
}

fn number(params: &HashMap<String, Vec<String>>, name: &str) -> Result<Option<i64>, HttpError> {
    params
        .get(name)
        .and_then(|v| v.first())
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| HttpError::bad_request(format!("{name}: invalid number {v:?}")))
        })
        .transpose()
}

/// The log options of a `/containerLogs` query.
pub(super) fn log_options(params: &HashMap<String, Vec<String>>) -> Result<LogOptions, HttpError> {
    let since_seconds = number(params, "sinceSeconds")?;
    let since_time = params
        .get("sinceTime")
        .and_then(|v| v.first())
        .map(|v| {
            v.parse::<jiff::Timestamp>()
                .map_err(|_| HttpError::bad_request(format!("sinceTime: invalid time {v:?}")))
        })
        .transpose()?;
    if since_seconds.is_some() && since_time.is_some() {
        return Err(HttpError::bad_request(
            "at most one of sinceTime or sinceSeconds may be specified",
        ));
    }
    let since = match since_seconds {
        Some(s) if s <= 0 => {
            return Err(HttpError::bad_request(
                "sinceSeconds must be greater than 0",
            ));
        }
        Some(s) => Some(
            jiff::Timestamp::now()
                .checked_sub(jiff::SignedDuration::from_secs(s))
                .unwrap_or(jiff::Timestamp::MIN),
        ),
        None => since_time,
    };
    let limit_bytes = match number(params, "limitBytes")? {
        Some(n) if n <= 0 => {
            return Err(HttpError::bad_request("limitBytes must be greater than 0"));
        }
        n => n.map(i64::unsigned_abs),
    };
    Ok(LogOptions {
        // A negative tail is "all", as the kubelet reads it.
        tail_lines: number(params, "tailLines")?.and_then(|n| u64::try_from(n).ok()),
        since,
        timestamps: flag(params, &["timestamps"]),
        limit_bytes,
        follow: flag(params, &["follow"]),
    })
}

/// Shared state of the handlers.
pub(crate) struct State {
    pub(super) context: ServerContext,
    pub(super) auth: KubeletAuth,
    pub(super) stats: super::stats::StatsProvider,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

impl State {
    pub(super) fn new(context: ServerContext) -> Self {
        let auth = KubeletAuth::new(
            context.client.clone(),
            &context.node_name,
            context.config.authentication.clone(),
            context.config.authorization.clone(),
        );
        let stats = super::stats::StatsProvider::new(context.runtime.clone(), &context.node_name);
        State {
            context,
            auth,
            stats,
        }
    }

    pub(super) fn healthz(&self) -> Response<Body> {
        match (self.context.health)() {
            Ok(()) => text(StatusCode::OK, "ok"),
            Err(reason) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("[-]pleg failed: {reason}\nhealthz check failed\n"),
            ),
        }
    }

    /// Authenticates, authorizes and routes one request.
    pub(super) async fn handle(
        self: Arc<Self>,
        request: Request<Body>,
        certificates: &[Vec<u8>],
    ) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let started = std::time::Instant::now();
        let answer = async {
            let identity = self
                .auth
                .authenticate(certificates, request.headers())
                .await?;
            self.auth
                .authorize(&identity, &request_attributes(request.method(), &path))
                .await?;
            self.route(request, &path).await
        }
        .await;
        let response = answer.unwrap_or_else(HttpError::into_response);
        tracing::debug!(%path, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis(), "kubelet server request");
        response
    }

    async fn route(
        self: &Arc<Self>,
        request: Request<Body>,
        path: &str,
    ) -> Result<Response<Body>, HttpError> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let get = request.method() == Method::GET || request.method() == Method::HEAD;
        match (
            segments.first().copied().unwrap_or_default(),
            &segments[1..],
        ) {
            ("healthz", []) if get => Ok(self.healthz()),
            ("pods", [] | [""]) if get => Ok(self.pods()),
            ("containerLogs", rest) if get => {
                let (namespace, pod, container) = object_path(rest, true)?;
                let container = container.unwrap_or_default();
                let params = query_params(&request);
                drop(request);
                self.container_logs(&params, &namespace, &pod, &container)
                    .await
            }
            ("exec" | "attach", rest) => {
                let (namespace, pod, container) = object_path(rest, true)?;
                let container = container.unwrap_or_default();
                let id = self
                    .find_container(&namespace, &pod, &container, false)
                    .await?;
                super::streaming::exec_or_attach(self, request, &id).await
            }
            ("portForward", rest) => {
                let (namespace, pod, _) = object_path(rest, false)?;
                let pod = self.find_pod(&namespace, &pod)?;
                super::streaming::port_forward(self, request, &pod).await
            }
            ("metrics", []) if get => Ok(self.metrics().await),
            ("metrics", ["resource"]) if get => {
                Ok(self.stats.resource_metrics(&self.context).await)
            }
            ("stats", ["summary"]) if get => Ok(json(&self.stats.summary(&self.context).await)),
            _ => Err(HttpError::not_found("404 page not found")),
        }
    }

    fn pods(&self) -> Response<Body> {
        let pods = (self.context.pods)();
        let mut items: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
        items.sort_by_key(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()));
        json(&serde_json::json!({
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {},
            "items": items,
        }))
    }

    pub(super) fn find_pod(&self, namespace: &str, name: &str) -> Result<Arc<Pod>, HttpError> {
        (self.context.pods)()
            .into_iter()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.name.as_deref() == Some(name)
            })
            .ok_or_else(|| HttpError::not_found(format!("pod \"{namespace}/{name}\" not found")))
    }

    /// The runtime id of a pod's container: the newest instance, or with `previous` the one
    /// before it.
    pub(super) async fn find_container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<String, HttpError> {
        let pod_object = self.find_pod(namespace, pod)?;
        let uid = pod_object.metadata.uid.clone().unwrap_or_default();
        let filter = api::ContainerFilter {
            label_selector: [
                (POD_UID_LABEL.to_owned(), uid),
                (CONTAINER_NAME_LABEL.to_owned(), container.to_owned()),
            ]
            .into(),
            ..api::ContainerFilter::default()
        };
        let mut instances = self
            .context
            .runtime
            .list_containers(Some(filter))
            .await
            .map_err(|e| HttpError::internal(format!("list containers: {e}")))?;
        instances.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        let index = usize::from(previous);
        instances.get(index).map(|c| c.id.clone()).ok_or_else(|| {
            if previous {
                HttpError::bad_request(format!(
                    "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                ))
            } else {
                HttpError::bad_request(format!(
                    "container \"{container}\" in pod \"{pod}\" is waiting to start: no instance yet"
                ))
            }
        })
    }

    async fn container_logs(
        &self,
        params: &HashMap<String, Vec<String>>,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<Response<Body>, HttpError> {
        let options = log_options(params)?;
        let id = self
            .find_container(namespace, pod, container, flag(params, &["previous"]))
            .await?;
        let status = self
            .context
            .runtime
            .container_status(&id, false)
            .await
            .map_err(|e| HttpError::internal(format!("container status of {id}: {e}")))?
            .status
            .unwrap_or_default();
        let path = checked_log_path(&self.context.config.pod_logs_dir, &status.log_path)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
        let runtime = self.context.runtime.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut sink = ChannelSink {
                tx: tx.clone(),
                runtime,
                container: id,
                handle,
            };
            if let Err(err) = read_log(&path, &options, &mut sink) {
                let _ = tx.blocking_send(Err(err));
            }
        });
        let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut response = text(StatusCode::OK, body);
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-cache"),
        );
        Ok(response)
    }

    async fn metrics(&self) -> Response<Body> {
        self.stats.count_running(&self.context).await;
        let mut response = text(StatusCode::OK, crate::metrics::kubelet_metrics().encode());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }
}

/// The runtime's log path, only if it lies inside the pod logs directory.
pub(super) fn checked_log_path(pod_logs_dir: &Path, log_path: &str) -> Result<PathBuf, HttpError> {
    let path = PathBuf::from(log_path);
    let inside = path.is_absolute()
        && path.starts_with(pod_logs_dir)
        && path
            .components()
            .all(|c| !matches!(c, Component::ParentDir));
    if inside {
        Ok(path)
    } else {
        Err(HttpError::not_found(format!(
            "container log {log_path:?} is not in the pod logs directory"
        )))
    }
}

/// Sends log output to the response body from the blocking reader thread.
struct ChannelSink {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    runtime: Arc<dyn ferrolet_cri::RuntimeService>,
    container: String,
    handle: tokio::runtime::Handle,
}

impl LogSink for ChannelSink {
    fn write(&mut self, bytes: &[u8]) -> bool {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(bytes)))
            .is_ok()
    }

    fn keep_following(&mut self) -> bool {
        if self.tx.is_closed() {
            return false;
        }
        let status = self
            .handle
            .block_on(self.runtime.container_status(&self.container, false));
        status.ok().and_then(|s| s.status).is_some_and(|s| {
            s.state == api::ContainerState::ContainerRunning as i32
                || s.state == api::ContainerState::ContainerCreated as i32
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_in_any_segment_is_refused() {
        for rest in [
            ["..", "pod", "c"],
            ["ns", "..", "c"],
            ["ns", "pod", ".."],
            ["%2e%2e", "pod", "c"],
            ["ns", "%2E%2E%2Fetc", "c"],
            ["ns", "pod", "c%2F..%2F..%2Fetc%2Fpasswd"],
            ["ns", ".hidden", "c"],
            ["ns", "a..b", "c"],
            ["", "pod", "c"],
            ["ns", "pod", "%zz"],
        ] {
            let err = object_path(&rest, true).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{rest:?}");
        }
        assert!(object_path(&["ns", "pod", "c", "x"], true).is_err());
        let (ns, pod, c) = object_path(&["default", "web-0.a", "app"], true).unwrap();
        assert_eq!(
            (ns.as_str(), pod.as_str(), c.as_deref()),
            ("default", "web-0.a", Some("app"))
        );
    }

    #[test]
    fn log_paths_outside_the_logs_directory_are_refused() {
        let dir = Path::new("/var/log/pods");
        assert!(checked_log_path(dir, "/var/log/pods/ns_p_u/c/0.log").is_ok());
        assert!(checked_log_path(dir, "/var/log/pods/../../etc/shadow").is_err());
        assert!(checked_log_path(dir, "/etc/shadow").is_err());
        assert!(checked_log_path(dir, "relative/0.log").is_err());
        assert!(checked_log_path(dir, "/var/log/podsx/0.log").is_err());
    }

    fn params(query: &str) -> HashMap<String, Vec<String>> {
        let request = Request::get(format!("/x?{query}"))
            .body(Body::empty())
            .unwrap();
        query_params(&request)
    }

    #[test]
    fn log_options_from_the_query() {
        let options = log_options(&params(
            "follow=true&tailLines=5&timestamps=1&limitBytes=100&sinceTime=2024-01-01T00%3A00%3A00Z",
        ))
        .unwrap();
        assert!(options.follow && options.timestamps);
        assert_eq!(options.tail_lines, Some(5));
        assert_eq!(options.limit_bytes, Some(100));
        assert_eq!(options.since, Some("2024-01-01T00:00:00Z".parse().unwrap()));
        let all = log_options(&params("tailLines=-1")).unwrap();
        assert_eq!(all.tail_lines, None);
        let since = log_options(&params("sinceSeconds=10"))
            .unwrap()
            .since
            .unwrap();
        assert!(jiff::Timestamp::now().duration_since(since).as_secs() >= 10);
        for bad in [
            "sinceSeconds=0",
            "limitBytes=0",
            "tailLines=x",
            "sinceTime=yesterday",
            "sinceSeconds=1&sinceTime=2024-01-01T00:00:00Z",
        ] {
            assert!(log_options(&params(bad)).is_err(), "{bad}");
        }
    }
}

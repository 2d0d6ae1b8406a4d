//! Watches: a stream of `{"type": ..., "object": ...}` lines, from the watch cache, with
//! selector transitions, bookmarks, initial events and timeouts as kube-apiserver sends them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::StreamExt;
use http::{StatusCode, header};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::handlers::{Context, Filter};
use super::options::Representation;
use super::table;
use crate::cache::{CacheError, CachedObject, Change, ChangeKind};
use crate::resources::ResourceInfo;

/// A watch without `timeoutSeconds` ends after this long; clients watch again.
const DEFAULT_TIMEOUT: Duration = Duration::from_mins(30);

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

struct Encoder {
    resource: &'static ResourceInfo,
    representation: Representation,
    include_object: Option<String>,
    first: bool,
}

impl Encoder {
    fn encode(&mut self, kind: &str, cached: &CachedObject) -> Bytes {
        let object = match self.representation {
            Representation::Object => {
                // The cached bytes as they are, inside the event's envelope.
                let mut line = Vec::with_capacity(cached.json.len() + 32);
                line.extend_from_slice(b"{\"type\":\"");
                line.extend_from_slice(kind.as_bytes());
                line.extend_from_slice(b"\",\"object\":");
                line.extend_from_slice(&cached.json);
                line.extend_from_slice(b"}\n");
                return Bytes::from(line);
            }
            Representation::Metadata => table::partial_metadata(&cached.value()),
            Representation::Table => {
                let object = cached.value();
                let rv = object["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let t = table::table(
                    self.resource,
                    &[&object],
                    &rv,
                    None,
                    self.include_object.as_deref(),
                    self.first,
                );
                self.first = false;
                t
            }
        };
        event_line(kind, &object)
    }

    fn bookmark(&self, revision: i64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        event_line(
            "BOOKMARK",
            &json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": metadata}),
        )
    }
}

/// The event a change is for this watcher, given its selectors: objects that start matching
/// are ADDED, those that stop matching are DELETED.
fn transition(change: &Change, filter: &Filter) -> Option<&'static str> {
    let now = filter.matches_object(&change.object);
    let before = change
        .prev
        .as_ref()
        .is_some_and(|p| filter.matches_object(p));
    match change.kind {
        ChangeKind::Added => now.then_some("ADDED"),
        ChangeKind::Deleted => before.then_some("DELETED"),
        ChangeKind::Modified => match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
    }
}

fn streaming(body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

type Changes = futures::stream::BoxStream<'static, Result<Arc<Change>, CacheError>>;

/// The changes under `prefix` after `start`, from the cache or, older than its window, from
/// the store; `Err` with the response to send when the store has compacted that history.
async fn changes_after(
    ctx: &Context,
    prefix: &str,
    start: i64,
    filter: &Filter,
) -> ApiResult<Result<Changes, Response>> {
    let cache = &ctx.server.cache;
    // A kubelet's watch of its own pods is woken only by changes to pods on its node.
    let index = filter
        .fields
        .required_value("spec.nodeName")
        .map(|node| ("spec.nodeName", node));
    match cache.watch(prefix, start, index) {
        Ok(changes) => Ok(Ok(changes.map(Ok).boxed())),
        // Older than the cache's window: the store may still have that history.
        Err(CacheError::TooOld { .. }) => {
            match cache
                .watch_store(ctx.server.store.as_ref(), prefix, start)
                .await
            {
                Ok(changes) => Ok(Ok(changes)),
                Err(CacheError::Store(crate::store::Error::Compacted {
                    requested,
                    compacted,
                })) => {
                    // kube-apiserver answers 200 and an ERROR event, which clients turn into a
                    // relist.
                    let status = ApiError::gone(format!(
                        "too old resource version: {requested} ({compacted})"
                    ))
                    .status();
                    let line = event_line("ERROR", &status);
                    let body = futures::stream::iter([Ok::<_, Infallible>(line)]);
                    Ok(Err(streaming(Body::from_stream(body))))
                }
                Err(err) => Err(ApiError::internal(err.to_string())),
            }
        }
        Err(err) => Err(ApiError::internal(err.to_string())),
    }
}

pub(crate) async fn watch(ctx: Context) -> ApiResult<Response> {
    let (resource, strategy) = ctx.resource()?;
    let mut options = ctx.options.clone();
    if let Some(name) = &ctx.info.name {
        // A watch on one object is a watch with a name selector.
        let selector = options.field_selector.take().unwrap_or_default();
        options.field_selector = Some(if selector.is_empty() {
            format!("metadata.name={name}")
        } else {
            format!("{selector},metadata.name={name}")
        });
    }
    let filter = Filter::new(&options, strategy)?;
    let prefix = resource.key_prefix_in(ctx.namespace());
    let cache = ctx.server.cache.clone();
    let rv = options.resource_version.clone().unwrap_or_default();
    let initial_events = options.send_initial_events() || rv.is_empty() || rv == "0";
    let timeout = options
        .timeout_seconds
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let mut encoder = Encoder {
        resource,
        representation: ctx.representation,
        include_object: options.include_object.clone(),
        first: true,
    };
    let bookmarks = options.bookmarks();
    let mut initial: Vec<Bytes> = Vec::new();
    let start = if initial_events {
        if options.send_initial_events() && rv.is_empty() {
            super::handlers::cache_at(&ctx).await?;
        }
        let (objects, revision) = cache.list(&prefix);
        for object in objects.iter().filter(|o| filter.matches_object(o)) {
            initial.push(encoder.encode("ADDED", object));
        }
        if options.send_initial_events() && bookmarks {
            initial.push(encoder.bookmark(revision, true));
        }
        revision
    } else {
        rv.parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?
    };
    let changes = match changes_after(&ctx, &prefix, start, &filter).await? {
        Ok(changes) => changes,
        Err(gone) => return Ok(gone),
    };
    let filter = Arc::new(filter);
    let bookmark_every = ctx.server.config.bookmark_interval;
    let revisions = cache.revisions();
    let cancel = ctx.server.cancel.clone();
    let deadline = tokio::time::Instant::now() + timeout;
    let live = futures::stream::unfold(
        (
            changes,
            encoder,
            tokio::time::interval_at(tokio::time::Instant::now() + bookmark_every, bookmark_every),
        ),
        move |(mut changes, mut encoder, mut ticker)| {
            let filter = filter.clone();
            let revisions = revisions.clone();
            let cancel = cancel.clone();
            async move {
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return None,
                        () = tokio::time::sleep_until(deadline) => return None,
                        _ = ticker.tick(), if bookmarks => {
                            let revision = *revisions.borrow();
                            let line = encoder.bookmark(revision, false);
                            return Some((line, (changes, encoder, ticker)));
                        }
                        change = changes.next() => {
                            match change? {
                                Ok(change) => {
                                    if let Some(kind) = transition(&change, &filter) {
                                        let line = encoder.encode(kind, &change.object);
                                        return Some((line, (changes, encoder, ticker)));
                                    }
                                }
                                Err(CacheError::Store(crate::store::Error::Compacted { requested, compacted })) => {
                                    // History gone under the watch: tell the client to relist,
                                    // then end the watch.
                                    let status = ApiError::gone(format!("too old resource version: {requested} ({compacted})")).status();
                                    let line = event_line("ERROR", &status);
                                    let ended = futures::stream::empty().boxed();
                                    return Some((line, (ended, encoder, ticker)));
                                }
                                Err(err) => {
                                    tracing::info!(%err, "watch ended");
                                    return None;
                                }
                            }
                        }
                    }
                }
            }
        },
    );
    let stream = futures::stream::iter(initial)
        .chain(live)
        .map(Ok::<_, Infallible>);
    Ok(streaming(Body::from_stream(stream)))
}

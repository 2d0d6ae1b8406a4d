//! Changes to existing objects: update (PUT), patch, delete (graceful for pods, through
//! finalizers for everything), deletecollection.

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::handlers::{
    Context, Filter, cache_at, check_type, decode_stored, encode_for_store, field_validation,
    parse_body, represent, set_resource_version, with_warnings,
};
use super::server::json_response;
use crate::registry::Strategy;
use crate::resources::ResourceInfo;
use crate::store::{self, KeyValue};

/// How many times a write retries after losing a race it did not ask to lose.
const RETRIES: usize = 16;

/// What an update did.
enum Outcome {
    Written(Value),
    Deleted(Value),
}

/// Metadata the client cannot change with an update.
fn keep_system_metadata(new: &mut Value, old: &Value) {
    for key in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match old["metadata"].get(key) {
            Some(v) => new["metadata"][key] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(key);
                }
            }
        }
    }
}

/// Whether an object marked for deletion may now go: no finalizers left, and (for pods) the
/// kubelet said it is done (grace period 0).
fn ready_to_delete(object: &Value, resource: &ResourceInfo) -> bool {
    let meta = &object["metadata"];
    if !meta["deletionTimestamp"].is_string() {
        return false;
    }
    let finalizers_empty = meta["finalizers"].as_array().is_none_or(Vec::is_empty);
    let spec_finalizers_empty = resource.kind != "Namespace"
        || object["spec"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
    let grace_done =
        resource.kind != "Pod" || meta["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) == 0;
    finalizers_empty && spec_finalizers_empty && grace_done
}

/// Prepares and writes `new` over `current`; `precondition` says whether the client pinned a
/// resourceVersion (a race then fails with 409 instead of being retried by the caller).
async fn commit(
    ctx: &Context,
    resource: &ResourceInfo,
    strategy: &dyn Strategy,
    current: &KeyValue,
    mut new: Value,
) -> ApiResult<Option<Outcome>> {
    let old = decode_stored(current)?;
    if let Some(rv) = new["metadata"]["resourceVersion"]
        .as_str()
        .filter(|r| !r.is_empty())
        && rv != current.mod_revision.to_string()
    {
        return Err(ApiError::modified(resource, ctx.name()));
    }
    keep_system_metadata(&mut new, &old);
    if ctx.info.subresource.as_deref() == Some("finalize") {
        let finalizers = new["spec"]["finalizers"].clone();
        new = old.clone();
        new["spec"]["finalizers"] = finalizers;
    } else {
        strategy.update(&mut new, &old, ctx.info.subresource.as_deref())?;
    }
    ctx.admit_node(Some(&new), Some(&old))?;
    if strategy.has_spec() && new["spec"] != old["spec"] {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        new["metadata"]["generation"] = json!(generation);
    }
    set_resource_version(&mut new, current.mod_revision);
    if ready_to_delete(&new, resource) {
        if ctx.options.dry_run() {
            return Ok(Some(Outcome::Deleted(new)));
        }
        return match ctx
            .server
            .store
            .delete(&current.key, Some(current.mod_revision))
            .await
        {
            Ok(kv) => {
                set_resource_version(&mut new, kv.mod_revision);
                Ok(Some(Outcome::Deleted(new)))
            }
            Err(store::Error::Conflict { .. }) => Ok(None),
            Err(store::Error::NotFound { .. }) => Err(ApiError::not_found(resource, ctx.name())),
            Err(err) => Err(err.into()),
        };
    }
    if new == old || ctx.options.dry_run() {
        return Ok(Some(Outcome::Written(new)));
    }
    match ctx
        .server
        .store
        .update(&current.key, encode_for_store(&new), current.mod_revision)
        .await
    {
        Ok(kv) => {
            set_resource_version(&mut new, kv.mod_revision);
            Ok(Some(Outcome::Written(new)))
        }
        Err(store::Error::Conflict { .. }) => Ok(None),
        Err(store::Error::NotFound { .. }) => Err(ApiError::not_found(resource, ctx.name())),
        Err(err) => Err(err.into()),
    }
}

fn respond(
    ctx: &Context,
    resource: &ResourceInfo,
    outcome: &Outcome,
    warnings: &[String],
) -> Response {
    let object = match outcome {
        Outcome::Written(o) | Outcome::Deleted(o) => o,
    };
    with_warnings(
        json_response(StatusCode::OK, &represent(ctx, resource, object)),
        warnings,
    )
}

async fn current(ctx: &Context, resource: &ResourceInfo) -> ApiResult<KeyValue> {
    ctx.server
        .store
        .get(&ctx.key(resource))
        .await?
        .ok_or_else(|| ApiError::not_found(resource, ctx.name()))
}

pub(crate) async fn update(ctx: &Context, body: &[u8]) -> ApiResult<Response> {
    let (resource, strategy) = ctx.resource()?;
    let body = parse_body(body)?;
    check_type(&body, resource)?;
    let decoded = strategy.decode(&body)?;
    let warnings = field_validation(ctx, &decoded.unknown_fields)?;
    let name = decoded.value["metadata"]["name"]
        .as_str()
        .unwrap_or_default();
    if name != ctx.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            ctx.name()
        )));
    }
    if let (Some(ns), Some(url_ns)) = (
        decoded.value["metadata"]["namespace"].as_str(),
        ctx.namespace(),
    ) && !ns.is_empty()
        && ns != url_ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let pinned = decoded.value["metadata"]["resourceVersion"]
        .as_str()
        .is_some_and(|r| !r.is_empty());
    for _ in 0..RETRIES {
        let kv = current(ctx, resource).await?;
        match commit(ctx, resource, strategy, &kv, decoded.value.clone()).await? {
            Some(outcome) => return Ok(respond(ctx, resource, &outcome, &warnings)),
            None if pinned => return Err(ApiError::modified(resource, ctx.name())),
            None => {}
        }
    }
    Err(ApiError::modified(resource, ctx.name()))
}

pub(crate) async fn patch(ctx: &Context, content_type: &str, body: &[u8]) -> ApiResult<Response> {
    let (resource, strategy) = ctx.resource()?;
    let patch_type = super::patching::patch_type(content_type)?;
    for _ in 0..RETRIES {
        let kv = current(ctx, resource).await?;
        let original = decode_stored(&kv)?;
        let patched = super::patching::apply(resource, patch_type, &original, body)?;
        check_type(&patched, resource)?;
        let decoded = strategy.decode(&patched)?;
        let warnings = field_validation(ctx, &decoded.unknown_fields)?;
        let pinned =
            patched["metadata"]["resourceVersion"] != original["metadata"]["resourceVersion"];
        if pinned {
            // The patch named another resourceVersion: a precondition that fails.
            return Err(ApiError::modified(resource, ctx.name()));
        }
        // The patch did not pin a version: write against what it was applied to.
        let mut value = decoded.value;
        set_resource_version(&mut value, kv.mod_revision);
        if let Some(outcome) = commit(ctx, resource, strategy, &kv, value).await? {
            return Ok(respond(ctx, resource, &outcome, &warnings));
        }
    }
    Err(ApiError::modified(resource, ctx.name()))
}

/// `DeleteOptions` from the body or the query.
struct DeleteOptions {
    grace_period: Option<i64>,
    uid: Option<String>,
    resource_version: Option<String>,
}

fn delete_options(ctx: &Context, body: &[u8]) -> ApiResult<DeleteOptions> {
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let grace_period = body["gracePeriodSeconds"]
        .as_i64()
        .or(ctx.options.grace_period_seconds);
    Ok(DeleteOptions {
        grace_period,
        uid: body["preconditions"]["uid"].as_str().map(str::to_owned),
        resource_version: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_owned),
    })
}

fn success_status(resource: &ResourceInfo, object: &Value) -> Value {
    let mut details = json!({"name": object["metadata"]["name"], "kind": resource.plural, "uid": object["metadata"]["uid"]});
    if !resource.group.is_empty() {
        details["group"] = json!(resource.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// Deletes one object; `Ok(None)` means a race to retry.
async fn delete_one(
    ctx: &Context,
    resource: &ResourceInfo,
    kv: &KeyValue,
    options: &DeleteOptions,
) -> ApiResult<Option<(StatusCode, Value)>> {
    let mut object = decode_stored(kv)?;
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if let Some(uid) = options.uid.as_deref() {
        let actual = object["metadata"]["uid"].as_str().unwrap_or_default();
        if uid != actual {
            return Err(ApiError::conflict(
                resource,
                &name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = options.resource_version.as_deref()
        && rv != kv.mod_revision.to_string()
    {
        return Err(ApiError::conflict(
            resource,
            &name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                kv.mod_revision
            ),
        ));
    }
    let now = jiff::Timestamp::now();
    let already = object["metadata"]["deletionTimestamp"].is_string();
    // Graceful pod deletion: the kubelet finalizes with grace 0.
    let grace = if resource.kind == "Pod" {
        let scheduled = object["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let terminal = matches!(
            object["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        );
        let wanted = options
            .grace_period
            .or_else(|| object["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .max(0);
        if scheduled && !terminal { wanted } else { 0 }
    } else {
        0
    };
    let has_finalizers = object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
        || (resource.kind == "Namespace"
            && object["spec"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty()));
    if grace > 0 || has_finalizers {
        let current_grace = object["metadata"]["deletionGracePeriodSeconds"].as_i64();
        if already && current_grace.is_some_and(|g| g <= grace) {
            // A later delete may only shorten the grace period.
            return Ok(Some((StatusCode::OK, object)));
        }
        let deadline = now + jiff::SignedDuration::from_secs(grace);
        let deadline = jiff::Timestamp::from_second(deadline.as_second()).unwrap_or(deadline);
        object["metadata"]["deletionTimestamp"] = json!(deadline.to_string());
        object["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        if resource.kind == "Namespace" {
            object["status"]["phase"] = json!("Terminating");
        }
        if ctx.options.dry_run() {
            return Ok(Some((StatusCode::OK, object)));
        }
        return match ctx
            .server
            .store
            .update(&kv.key, encode_for_store(&object), kv.mod_revision)
            .await
        {
            Ok(new) => {
                set_resource_version(&mut object, new.mod_revision);
                // Accepted: the object lives on until its finalizers or kubelet are done.
                Ok(Some((StatusCode::OK, object)))
            }
            Err(store::Error::Conflict { .. }) => Ok(None),
            Err(store::Error::NotFound { .. }) => Err(ApiError::not_found(resource, &name)),
            Err(err) => Err(err.into()),
        };
    }
    if ctx.options.dry_run() {
        return Ok(Some((StatusCode::OK, object)));
    }
    match ctx
        .server
        .store
        .delete(&kv.key, Some(kv.mod_revision))
        .await
    {
        Ok(deleted) => {
            set_resource_version(&mut object, deleted.mod_revision);
            if resource.kind == "Pod" {
                Ok(Some((StatusCode::OK, object)))
            } else {
                Ok(Some((StatusCode::OK, success_status(resource, &object))))
            }
        }
        Err(store::Error::Conflict { .. }) => Ok(None),
        Err(store::Error::NotFound { .. }) => Err(ApiError::not_found(resource, &name)),
        Err(err) => Err(err.into()),
    }
}

pub(crate) async fn delete(ctx: &Context, body: &[u8]) -> ApiResult<Response> {
    let (resource, _) = ctx.resource()?;
    if ctx.info.subresource.is_some() {
        return Err(ApiError::method_not_allowed(
            "deleting a subresource is not supported",
        ));
    }
    let options = delete_options(ctx, body)?;
    for _ in 0..RETRIES {
        let kv = current(ctx, resource).await?;
        if let Some((code, body)) = delete_one(ctx, resource, &kv, &options).await? {
            let body = if body["kind"] == "Status" {
                body
            } else {
                represent(ctx, resource, &body)
            };
            return Ok(json_response(code, &body));
        }
    }
    Err(ApiError::modified(resource, ctx.name()))
}

pub(crate) async fn delete_collection(ctx: &Context, body: &[u8]) -> ApiResult<Response> {
    let (resource, strategy) = ctx.resource()?;
    let options = delete_options(ctx, body)?;
    let filter = Filter::new(&ctx.options, strategy)?;
    cache_at(ctx).await?;
    let (objects, revision) = ctx
        .server
        .cache
        .list(&resource.key_prefix_in(ctx.namespace()));
    let mut deleted = Vec::new();
    for object in objects.iter().filter(|o| filter.matches_object(o)) {
        for _ in 0..RETRIES {
            let Some(kv) = ctx.server.store.get(&object.key).await? else {
                break;
            };
            if let Some((_, body)) = delete_one(ctx, resource, &kv, &options).await? {
                if body["kind"] == "Status" {
                    deleted.push(object.value());
                } else {
                    deleted.push(body);
                }
                break;
            }
        }
    }
    let list = json!({
        "kind": resource.list_kind(),
        "apiVersion": resource.api_version(),
        "metadata": {"resourceVersion": revision.to_string()},
        "items": deleted,
    });
    Ok(json_response(StatusCode::OK, &list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    #[test]
    fn deletion_waits_for_finalizers_and_the_kubelet() {
        let pods = lookup("", "v1", "pods").unwrap();
        let pending = json!({"metadata": {"deletionTimestamp": "2030-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30}});
        assert!(!ready_to_delete(&pending, pods));
        let finalized = json!({"metadata": {"deletionTimestamp": "2030-01-01T00:00:00Z", "deletionGracePeriodSeconds": 0}});
        assert!(ready_to_delete(&finalized, pods));
        let configmaps = lookup("", "v1", "configmaps").unwrap();
        let held = json!({"metadata": {"deletionTimestamp": "x", "finalizers": ["a"]}});
        assert!(!ready_to_delete(&held, configmaps));
        let released = json!({"metadata": {"deletionTimestamp": "x", "finalizers": []}});
        assert!(ready_to_delete(&released, configmaps));
        assert!(!ready_to_delete(&json!({"metadata": {}}), configmaps));
    }
}

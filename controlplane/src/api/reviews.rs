//! Requests that create nothing: `TokenRequest` (a service-account JWT), `TokenReview` (who
//! is this token) and `SubjectAccessReview` (may this user do that), which kubelets use to
//! mount projected tokens and to authenticate and authorize calls to their own API.

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::handlers::{Context, decode_stored, parse_body};
use super::server::json_response;
use crate::auth::service_account::{ObjectRef, ServiceAccountTokenRequest};
use crate::auth::{Decision, RequestAttributes, UserInfo, authorize};
use crate::resources;

/// Whether the request is one of these review APIs, with the group/resource it names.
#[must_use]
pub(crate) fn is_review(group: &str, resource: &str) -> bool {
    matches!(
        (group, resource),
        (
            "authentication.k8s.io",
            "tokenreviews" | "selfsubjectreviews"
        ) | (
            "authorization.k8s.io",
            "subjectaccessreviews" | "selfsubjectaccessreviews"
        )
    )
}

pub(crate) fn review(ctx: &Context, body: &[u8]) -> ApiResult<Response> {
    if ctx.info.verb != "create" {
        return Err(ApiError::method_not_allowed(format!(
            "{} only supports create",
            ctx.info.resource
        )));
    }
    let body = parse_body(body)?;
    match ctx.info.resource.as_str() {
        "tokenreviews" => Ok(token_review(ctx, &body)),
        "selfsubjectreviews" => Ok(json_response(
            StatusCode::CREATED,
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {"creationTimestamp": null}, "status": {"userInfo": user_json(&ctx.user)}}),
        )),
        resource => Ok(access_review(
            ctx,
            &body,
            resource == "selfsubjectaccessreviews",
        )),
    }
}

fn user_json(user: &UserInfo) -> Value {
    let mut value = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        value["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        value["extra"] = json!(user.extra);
    }
    value
}

fn token_review(ctx: &Context, body: &Value) -> Response {
    let token = body["spec"]["token"].as_str().unwrap_or_default();
    let audiences: Vec<String> = body["spec"]["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let access = ctx.server.access.as_ref();
    let outcome = match access {
        Some(access) => access
            .authenticator
            .authenticate_token_for_audiences(token, &audiences, &ctx.server.lookup)
            .map_err(|e| e.to_string()),
        None => Err("authentication is not configured".to_owned()),
    };
    let status = match outcome {
        Ok(user) => {
            json!({"authenticated": true, "user": user_json(&user), "audiences": audiences})
        }
        Err(error) => json!({"authenticated": false, "error": error, "user": {}}),
    };
    json_response(
        StatusCode::CREATED,
        &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": {"creationTimestamp": null}, "spec": body["spec"], "status": status}),
    )
}

fn access_review(ctx: &Context, body: &Value, own: bool) -> Response {
    let spec = &body["spec"];
    let user = if own {
        ctx.user.clone()
    } else {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        UserInfo {
            name: spec["user"].as_str().unwrap_or_default().to_owned(),
            uid: spec["uid"].as_str().unwrap_or_default().to_owned(),
            groups: strings(&spec["groups"]),
            ..Default::default()
        }
    };
    let attrs = if let Some(resource) = spec["resourceAttributes"].as_object() {
        let get = |k: &str| resource.get(k).and_then(Value::as_str).unwrap_or_default();
        let mut attrs = RequestAttributes::resource(
            get("verb"),
            get("group"),
            get("resource"),
            get("namespace"),
            get("name"),
        );
        get("version").clone_into(&mut attrs.api_version);
        if !get("subresource").is_empty() {
            attrs = attrs.with_subresource(get("subresource"));
        }
        attrs
    } else {
        let non = &spec["nonResourceAttributes"];
        RequestAttributes::non_resource(
            non["verb"].as_str().unwrap_or_default(),
            non["path"].as_str().unwrap_or_default(),
        )
    };
    let status = match authorize(&user, &attrs, &ctx.server.lookup) {
        Decision::Allow => json!({"allowed": true}),
        Decision::Deny { reason } => json!({"allowed": false, "reason": reason}),
    };
    let kind = if own {
        "SelfSubjectAccessReview"
    } else {
        "SubjectAccessReview"
    };
    json_response(
        StatusCode::CREATED,
        &json!({"apiVersion": "authorization.k8s.io/v1", "kind": kind, "metadata": {"creationTimestamp": null}, "spec": spec, "status": status}),
    )
}

/// `POST serviceaccounts/{name}/token`: a signed, bound service-account token.
pub(crate) async fn token_request(ctx: &Context, body: &[u8]) -> ApiResult<Response> {
    let issuer = ctx
        .server
        .access
        .as_ref()
        .and_then(|a| a.issuer.clone())
        .ok_or_else(|| ApiError::unavailable("service account tokens are not enabled"))?;
    let body = parse_body(body)?;
    let namespace = ctx.namespace().unwrap_or_default().to_owned();
    let accounts = resources::lookup("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("serviceaccounts not served"))?;
    let account = ctx
        .server
        .store
        .get(&accounts.key(Some(&namespace), ctx.name()))
        .await?
        .ok_or_else(|| ApiError::not_found(accounts, ctx.name()))?;
    let account = decode_stored(&account)?;
    let spec = &body["spec"];
    let mut request = ServiceAccountTokenRequest {
        namespace: namespace.clone(),
        service_account_name: ctx.name().to_owned(),
        service_account_uid: account["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        audiences: spec["audiences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        expiration_seconds: spec["expirationSeconds"].as_i64(),
        bound_pod: None,
        bound_node: None,
    };
    let bound = &spec["boundObjectRef"];
    if bound["kind"] == "Pod" {
        let pods = resources::lookup("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods not served"))?;
        let name = bound["name"].as_str().unwrap_or_default();
        let pod = ctx
            .server
            .store
            .get(&pods.key(Some(&namespace), name))
            .await?
            .ok_or_else(|| ApiError::not_found(pods, name))?;
        let pod = decode_stored(&pod)?;
        let uid = pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(want) = bound["uid"].as_str().filter(|u| !u.is_empty())
            && want != uid
        {
            return Err(ApiError::conflict(
                pods,
                name,
                &format!(
                    "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        request.bound_pod = Some(ObjectRef {
            name: name.to_owned(),
            uid,
        });
        if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            let nodes = resources::lookup("", "v1", "nodes")
                .ok_or_else(|| ApiError::internal("nodes not served"))?;
            let uid = ctx
                .server
                .cache
                .get(&nodes.key(None, node))
                .and_then(|n| n.value()["metadata"]["uid"].as_str().map(str::to_owned))
                .unwrap_or_default();
            request.bound_node = Some(ObjectRef {
                name: node.to_owned(),
                uid,
            });
        }
    }
    let (token, expiration) = issuer
        .issue(&request)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut spec = spec.clone();
    spec["audiences"] = json!(request.audiences);
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"name": ctx.name(), "namespace": namespace, "creationTimestamp": null},
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": expiration.to_string()},
        }),
    ))
}

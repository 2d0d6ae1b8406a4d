//! Authentication and authorization of each request, and the object lookups the node
//! authorizer needs, answered from the watch cache.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, header};
use k8s_openapi::api::core::v1::Pod;

use super::error::{ApiError, ApiResult};
use super::request::RequestInfo;
use super::serve::PeerCertificates;
use crate::auth::{
    Authenticator, Decision, ObjectLookup, PodBinding, RequestAttributes, UserInfo, authorize,
    forbidden_message_with_reason,
};
use crate::cache::WatchCache;
use crate::resources;

/// How requests are authenticated; `None` on an [`super::ApiServer`] means every request acts
/// as a cluster admin (in-process tests only).
#[derive(Debug, Clone)]
pub struct Access {
    pub authenticator: Arc<Authenticator>,
    /// Signs `TokenRequest` tokens; `None` disables service-account tokens.
    pub issuer: Option<Arc<crate::auth::ServiceAccountTokenIssuer>>,
}

/// [`ObjectLookup`] over the watch cache.
#[derive(Debug, Clone)]
pub struct CacheLookup(pub WatchCache);

impl ObjectLookup for CacheLookup {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodBinding> {
        let pods = resources::lookup("", "v1", "pods")?;
        let object = self.0.get(&pods.key(Some(namespace), name))?;
        let pod: Pod = serde_json::from_slice(&object.json).ok()?;
        Some(PodBinding::of(&pod))
    }

    fn node_has_pod_with_service_account(
        &self,
        node_name: &str,
        namespace: &str,
        service_account: &str,
    ) -> bool {
        let Some(pods) = resources::lookup("", "v1", "pods") else {
            return false;
        };
        let (objects, _) = self.0.list(&pods.key_prefix_in(Some(namespace)));
        objects.iter().any(|o| {
            o.attributes.field("spec.nodeName") == node_name
                && o.attributes.field("spec.serviceAccountName") == service_account
        })
    }

    fn service_account_uid(&self, namespace: &str, name: &str) -> Option<String> {
        let accounts = resources::lookup("", "v1", "serviceaccounts")?;
        let object = self.0.get(&accounts.key(Some(namespace), name))?;
        object.value()["metadata"]["uid"]
            .as_str()
            .map(str::to_owned)
    }
}

/// The authorizer's view of a request.
#[must_use]
pub fn attributes(info: &RequestInfo) -> RequestAttributes {
    if info.is_resource_request {
        let mut attrs = RequestAttributes::resource(
            &info.verb,
            &info.api_group,
            &info.resource,
            info.namespace.as_deref().unwrap_or_default(),
            info.name.as_deref().unwrap_or_default(),
        );
        info.api_version.clone_into(&mut attrs.api_version);
        info.path.clone_into(&mut attrs.path);
        if let Some(sub) = &info.subresource {
            attrs = attrs.with_subresource(sub);
        }
        attrs
    } else {
        RequestAttributes::non_resource(&info.verb, &info.path)
    }
}

/// Who sent the request: 401 if the credentials are bad.
pub(crate) fn authenticate(
    access: Option<&Access>,
    request: &Request<Body>,
    lookup: &CacheLookup,
) -> ApiResult<UserInfo> {
    let Some(access) = access else {
        return Ok(UserInfo {
            name: "system:admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            ..Default::default()
        });
    };
    let certificate = request
        .extensions()
        .get::<PeerCertificates>()
        .and_then(|c| c.0.first().cloned());
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    access
        .authenticator
        .authenticate(certificate.as_deref(), authorization, lookup)
        .map_err(|err| {
            tracing::info!(%err, path = %request.uri().path(), "authentication failed");
            ApiError::unauthorized()
        })
}

/// May `user` do what the request asks: 403 with kube-apiserver's message if not.
pub(crate) fn check(user: &UserInfo, info: &RequestInfo, lookup: &CacheLookup) -> ApiResult<()> {
    let attrs = attributes(info);
    match authorize(user, &attrs, lookup) {
        Decision::Allow => Ok(()),
        Decision::Deny { reason } => {
            let message = forbidden_message_with_reason(user, &attrs, &reason);
            let mut err = ApiError::forbidden(message);
            if info.is_resource_request {
                let mut details = serde_json::json!({"name": info.name.clone().unwrap_or_default(), "kind": info.resource});
                if !info.api_group.is_empty() {
                    details["group"] = serde_json::json!(info.api_group);
                }
                err.details = Some(details);
            }
            Err(err)
        }
    }
}

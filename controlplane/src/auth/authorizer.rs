//! Authorization of a request, and kube-apiserver's 403 message when it is refused.
//!
//! The policy, until RBAC is implemented:
//!
//! - members of `system:masters` may do everything (kube-apiserver binds them to
//!   `cluster-admin`);
//! - non-resource URLs: `get` of `/healthz`, `/livez`, `/readyz`, `/version` for everyone
//!   (`system:public-info-viewer`); additionally `/api*`, `/apis*`, `/openapi*` (the
//!   `system:discovery` role) and the service-account issuer documents
//!   (`/.well-known/openid-configuration`, `/openid/v1/jwks`) for authenticated users;
//! - kubelets (`system:node:<name>` in `system:nodes`): see
//!   [`node_authorizer`];
//! - every authenticated user may create `selfsubjectaccessreviews`,
//!   `selfsubjectrulesreviews` and `selfsubjectreviews` (`system:basic-user`);
//! - everything else is denied. Service accounts in particular get nothing more until RBAC
//!   roles and bindings exist; upstream they would get what their bindings grant.

use super::lookup::ObjectLookup;
use super::node_authorizer;
use super::user::{SYSTEM_MASTERS, UserInfo};

/// What a request does, as kube-apiserver's request-info resolver derives it from the URL and
/// method (`authorizer.Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestAttributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, ...;
    /// for non-resource requests the lowercase HTTP method.
    pub verb: String,
    /// The API group, empty for the core group.
    pub api_group: String,
    /// The API version, e.g. `v1`.
    pub api_version: String,
    /// The resource, e.g. `pods`.
    pub resource: String,
    /// The subresource, e.g. `status`; empty for none.
    pub subresource: String,
    /// The namespace; empty for cluster-scoped resources and requests across namespaces.
    pub namespace: String,
    /// The object's name; empty for `list`, `watch` of a collection and `create`.
    pub name: String,
    /// Whether the request is for an API resource (`/api/...`, `/apis/...`) rather than a
    /// non-resource URL such as `/healthz`.
    pub is_resource_request: bool,
    /// The request path.
    pub path: String,
}

impl RequestAttributes {
    /// A resource request (without API version, which no decision here depends on); add a
    /// subresource with [`with_subresource`](Self::with_subresource).
    #[must_use]
    pub fn resource(
        verb: &str,
        api_group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        Self {
            verb: verb.to_owned(),
            api_group: api_group.to_owned(),
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            is_resource_request: true,
            ..Self::default()
        }
    }

    /// The same request for a subresource.
    #[must_use]
    pub fn with_subresource(mut self, subresource: &str) -> Self {
        subresource.clone_into(&mut self.subresource);
        self
    }

    /// A non-resource request, e.g. `get /healthz`.
    #[must_use]
    pub fn non_resource(verb: &str, path: &str) -> Self {
        Self {
            verb: verb.to_owned(),
            path: path.to_owned(),
            ..Self::default()
        }
    }

    /// `resource` or `resource/subresource`, as RBAC rules and messages name it.
    #[must_use]
    pub fn resource_and_subresource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// The outcome of authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The request may proceed.
    Allow,
    /// The request is refused (403); `reason` says why, as kube-apiserver appends an
    /// authorizer's reason to its message.
    Deny { reason: String },
}

impl Decision {
    /// A denial for `reason`.
    #[must_use]
    pub fn deny(reason: impl Into<String>) -> Self {
        Self::Deny {
            reason: reason.into(),
        }
    }

    /// Whether the request may proceed.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow)
    }
}

/// Non-resource URLs everyone may `get` (`system:public-info-viewer`).
const PUBLIC_URLS: [&str; 5] = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
/// Non-resource URLs authenticated users may `get` besides the public ones; a trailing `*`
/// matches any rest, as in RBAC rules (`system:discovery`,
/// `system:service-account-issuer-discovery`).
const DISCOVERY_URLS: [&str; 10] = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/openapi",
    "/openapi/*",
    "/.well-known/openid-configuration",
    "/.well-known/openid-configuration/",
    "/openid/v1/jwks",
    "/openid/v1/jwks/",
];

/// Decides whether `user` may do what `attrs` describe; `lookup` answers which node a pod is
/// bound to, for kubelets.
#[must_use]
pub fn authorize(
    user: &UserInfo,
    attrs: &RequestAttributes,
    lookup: &dyn ObjectLookup,
) -> Decision {
    if user.in_group(SYSTEM_MASTERS) {
        return Decision::Allow;
    }
    if !attrs.is_resource_request {
        return authorize_non_resource(user, attrs);
    }
    if !user.is_anonymous() && is_self_review(attrs) {
        return Decision::Allow;
    }
    if let Some(node_name) = user.node_name() {
        if node_name.is_empty() {
            return Decision::deny(format!("unknown node for user {:?}", user.name));
        }
        return node_authorizer::authorize(node_name, attrs, lookup);
    }
    if user.is_anonymous() {
        return Decision::deny("anonymous requests may only read health and version endpoints");
    }
    Decision::deny(
        "no policy grants this: ferrolet authorizes only system:masters, nodes and self reviews until RBAC is implemented",
    )
}

fn authorize_non_resource(user: &UserInfo, attrs: &RequestAttributes) -> Decision {
    if attrs.verb != "get" {
        return Decision::deny(format!("only get is allowed on path {:?}", attrs.path));
    }
    if PUBLIC_URLS.contains(&attrs.path.as_str()) {
        return Decision::Allow;
    }
    if DISCOVERY_URLS
        .iter()
        .any(|rule| url_matches(rule, &attrs.path))
    {
        return if user.is_anonymous() {
            Decision::deny(format!("path {:?} requires authentication", attrs.path))
        } else {
            Decision::Allow
        };
    }
    Decision::deny(format!("no policy grants access to path {:?}", attrs.path))
}

/// RBAC's match of non-resource URLs: exact, or a prefix when the rule ends with `*`.
fn url_matches(rule: &str, path: &str) -> bool {
    match rule.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => rule == path,
    }
}

fn is_self_review(attrs: &RequestAttributes) -> bool {
    attrs.verb == "create"
        && attrs.subresource.is_empty()
        && match attrs.api_group.as_str() {
            "authorization.k8s.io" => matches!(
                attrs.resource.as_str(),
                "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
            ),
            "authentication.k8s.io" => attrs.resource == "selfsubjectreviews",
            _ => false,
        }
}

/// kube-apiserver's 403 message for a refused request, without the authorizer's reason:
///
/// - `pods "nginx" is forbidden: User "system:node:n1" cannot patch resource "pods/status" in
///   API group "" in the namespace "default"`
/// - `nodes is forbidden: User "system:anonymous" cannot list resource "nodes" in API group ""
///   at the cluster scope`
/// - `forbidden: User "system:anonymous" cannot get path "/metrics"`
///
/// (`responsewriters.forbiddenMessage` wrapped by `apierrors.NewForbidden`, whose qualified
/// resource is `resource.group` without the subresource.)
#[must_use]
pub fn forbidden_message(user: &UserInfo, attrs: &RequestAttributes) -> String {
    wrap_forbidden(attrs, &user_cannot(user, attrs))
}

/// [`forbidden_message`] with the authorizer's reason appended as kube-apiserver does when
/// there is one: `<message>: <reason>`. This is the `message` of the 403 `Status` for a
/// [`Decision::Deny`].
#[must_use]
pub fn forbidden_message_with_reason(
    user: &UserInfo,
    attrs: &RequestAttributes,
    reason: &str,
) -> String {
    let mut inner = user_cannot(user, attrs);
    if !reason.is_empty() {
        inner.push_str(": ");
        inner.push_str(reason);
    }
    wrap_forbidden(attrs, &inner)
}

fn user_cannot(user: &UserInfo, attrs: &RequestAttributes) -> String {
    if !attrs.is_resource_request {
        return format!(
            "User {:?} cannot {} path {:?}",
            user.name, attrs.verb, attrs.path
        );
    }
    let resource = attrs.resource_and_subresource();
    if attrs.namespace.is_empty() {
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
            user.name, attrs.verb, resource, attrs.api_group
        )
    } else {
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
            user.name, attrs.verb, resource, attrs.api_group, attrs.namespace
        )
    }
}

/// `apierrors.NewForbidden(groupResource, name, err)`'s message.
pub(super) fn wrap_forbidden(attrs: &RequestAttributes, inner: &str) -> String {
    let qualified = qualified_resource(attrs);
    if qualified.is_empty() {
        format!("forbidden: {inner}")
    } else if attrs.name.is_empty() {
        format!("{qualified} is forbidden: {inner}")
    } else {
        format!("{qualified} {:?} is forbidden: {inner}", attrs.name)
    }
}

/// `schema.GroupResource.String()`: `resource` or `resource.group`; empty for non-resource
/// requests.
pub(super) fn qualified_resource(attrs: &RequestAttributes) -> String {
    if !attrs.is_resource_request {
        return String::new();
    }
    if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    }
}

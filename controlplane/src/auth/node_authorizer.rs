//! What a kubelet may do, modelled on kube-apiserver's Node authorizer
//! (`plugin/pkg/auth/authorizer/node/node_authorizer.go`), the `system:node` rules it applies
//! (`NodeRules` in `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`) and the parts
//! of `NodeRestriction` admission (`plugin/pkg/admission/noderestriction/admission.go`) that
//! need only the stored objects. The parts that need the request body are in
//! [`node_restriction`](super::node_restriction).
//!
//! | resource | verbs | restriction |
//! | --- | --- | --- |
//! | `nodes` | get, list, watch | |
//! | `nodes`, `nodes/status` | create, update, patch | its own Node |
//! | `leases` (coordination.k8s.io) | get, create, update, patch, delete | its own, in `kube-node-lease` |
//! | `pods` | get, list, watch, create | create: mirror pods bound to itself (admission) |
//! | `pods` | delete | bound to itself |
//! | `pods/status` | update, patch | bound to itself |
//! | `pods/eviction` | create | bound to itself |
//! | `events` (core, events.k8s.io) | create, update, patch | |
//! | `services`, `endpoints` | get, list, watch | |
//! | `namespaces` | get | |
//! | `configmaps`, `secrets` | get, list, watch | in a namespace |
//! | `persistentvolumeclaims`, `persistentvolumes` | get, list, watch | |
//! | `csidrivers` (storage.k8s.io) | get, list, watch | |
//! | `csinodes` (storage.k8s.io) | get, list, watch; create, update, patch, delete | writes: its own |
//! | `runtimeclasses` (node.k8s.io) | get, list, watch | |
//! | `serviceaccounts/token` | create | a service account of a pod bound to itself |
//! | `tokenreviews`, `subjectaccessreviews`, `localsubjectaccessreviews` | create | |
//! | `certificatesigningrequests` (certificates.k8s.io) | create, get, list, watch | |
//!
//! Differences from upstream, which keeps a graph of pods, secrets, configmaps and volumes:
//! upstream lets a node read only the secrets, configmaps, PVCs and PVs that pods bound to it
//! reference (and `get` only, for PVCs and PVs), list and watch pods only with the field
//! selector `spec.nodeName=<node>`, and read only its own Node object; here those reads are
//! open to every node (secrets and configmaps within a namespace). Not granted here:
//! `persistentvolumeclaims/status` updates, `volumeattachments`, `resourceslices` and
//! `resourceclaims`.

use super::authorizer::{Decision, RequestAttributes};
use super::lookup::ObjectLookup;

/// The namespace of node leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

const READ: &[&str] = &["get", "list", "watch"];

/// Decides a request of the kubelet of node `node` (never empty).
#[must_use]
pub fn authorize(node: &str, attrs: &RequestAttributes, lookup: &dyn ObjectLookup) -> Decision {
    match (attrs.api_group.as_str(), attrs.resource.as_str()) {
        ("", "nodes") => authorize_node(node, attrs),
        ("", "pods") => authorize_pod(node, attrs, lookup),
        ("", "serviceaccounts") => authorize_create_token(node, attrs, lookup),
        ("" | "events.k8s.io", "events") => verbs(attrs, &["create", "update", "patch"]),
        ("", "services" | "endpoints" | "persistentvolumeclaims" | "persistentvolumes")
        | ("storage.k8s.io", "csidrivers")
        | ("node.k8s.io", "runtimeclasses") => verbs(attrs, READ),
        ("", "namespaces") => verbs(attrs, &["get"]),
        ("", "configmaps" | "secrets") => authorize_read_namespaced(attrs),
        ("coordination.k8s.io", "leases") => authorize_lease(node, attrs),
        ("storage.k8s.io", "csinodes") => authorize_csi_node(node, attrs),
        ("authentication.k8s.io", "tokenreviews")
        | ("authorization.k8s.io", "subjectaccessreviews" | "localsubjectaccessreviews") => {
            verbs(attrs, &["create"])
        }
        ("certificates.k8s.io", "certificatesigningrequests") => {
            verbs(attrs, &["create", "get", "list", "watch"])
        }
        _ => not_allowed(attrs),
    }
}

/// Allows `allowed` verbs on the resource itself (no subresource).
fn verbs(attrs: &RequestAttributes, allowed: &[&str]) -> Decision {
    if attrs.subresource.is_empty() && allowed.contains(&attrs.verb.as_str()) {
        Decision::Allow
    } else {
        not_allowed(attrs)
    }
}

fn not_allowed(attrs: &RequestAttributes) -> Decision {
    Decision::deny(format!(
        "nodes may not {} {} in API group {:?}",
        attrs.verb,
        attrs.resource_and_subresource(),
        attrs.api_group
    ))
}

/// `NodeRestriction`'s refusal of another node's object.
fn other_node(node: &str, requested: &str) -> Decision {
    Decision::deny(format!(
        "node {node:?} is not allowed to modify node {requested:?}"
    ))
}

fn authorize_node(node: &str, attrs: &RequestAttributes) -> Decision {
    // The name of a created Node is in the body when the path has none; admission checks it.
    let own = attrs.name == node || (attrs.verb == "create" && attrs.name.is_empty());
    match (attrs.subresource.as_str(), attrs.verb.as_str()) {
        ("", "get" | "list" | "watch") => Decision::Allow,
        ("", "create") | ("" | "status", "update" | "patch") => {
            if own {
                Decision::Allow
            } else {
                other_node(node, &attrs.name)
            }
        }
        _ => not_allowed(attrs),
    }
}

fn authorize_pod(node: &str, attrs: &RequestAttributes, lookup: &dyn ObjectLookup) -> Decision {
    let bound_here = |what: &str| match lookup.pod(&attrs.namespace, &attrs.name) {
        Some(pod) if pod.node_name == node => Decision::Allow,
        Some(_) => Decision::deny(format!(
            "node {node:?} can only {what} pods with spec.nodeName set to itself"
        )),
        // A pod that does not exist: the request proceeds and finds 404 Not Found, as
        // upstream, where admission looks the pod up and reports it missing.
        None => Decision::Allow,
    };
    match (attrs.subresource.as_str(), attrs.verb.as_str()) {
        // create: mirror pods; node_restriction checks the body (mirror annotation, own node).
        ("", "get" | "list" | "watch" | "create") => Decision::Allow,
        ("", "delete") if !attrs.name.is_empty() => bound_here("delete"),
        ("status", "update" | "patch") if !attrs.name.is_empty() => {
            bound_here("update pod status for")
        }
        ("eviction", "create") if !attrs.name.is_empty() => bound_here("evict"),
        _ => not_allowed(attrs),
    }
}

fn authorize_create_token(
    node: &str,
    attrs: &RequestAttributes,
    lookup: &dyn ObjectLookup,
) -> Decision {
    if attrs.verb != "create" || attrs.name.is_empty() {
        return Decision::deny("can only create tokens for individual service accounts");
    }
    if attrs.subresource != "token" {
        return Decision::deny("can only create token subresource of serviceaccount");
    }
    if lookup.node_has_pod_with_service_account(node, &attrs.namespace, &attrs.name) {
        Decision::Allow
    } else {
        Decision::deny(format!(
            "no relationship found between node '{node}' and this object"
        ))
    }
}

fn authorize_read_namespaced(attrs: &RequestAttributes) -> Decision {
    if !READ.contains(&attrs.verb.as_str()) {
        return Decision::deny("can only read resources of this type");
    }
    if !attrs.subresource.is_empty() {
        return Decision::deny("cannot read subresource");
    }
    if attrs.namespace.is_empty() {
        return Decision::deny("can only read namespaced object of this type");
    }
    Decision::Allow
}

fn authorize_lease(node: &str, attrs: &RequestAttributes) -> Decision {
    if !matches!(
        attrs.verb.as_str(),
        "get" | "create" | "update" | "patch" | "delete"
    ) || !attrs.subresource.is_empty()
    {
        return Decision::deny("can only get, create, update, patch, or delete a node lease");
    }
    if attrs.namespace != NODE_LEASE_NAMESPACE {
        return Decision::deny(format!(
            "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
        ));
    }
    // A create names the lease in its body; admission checks that name.
    if attrs.verb != "create" && attrs.name != node {
        return Decision::deny(
            "can only access node lease with the same name as the requesting node",
        );
    }
    Decision::Allow
}

fn authorize_csi_node(node: &str, attrs: &RequestAttributes) -> Decision {
    if !attrs.subresource.is_empty() {
        return Decision::deny("cannot authorize CSINode subresources");
    }
    match attrs.verb.as_str() {
        "get" | "list" | "watch" | "create" => Decision::Allow,
        "update" | "patch" | "delete" if attrs.name == node => Decision::Allow,
        "update" | "patch" | "delete" => {
            Decision::deny("can only access CSINode with the same name as the requesting node")
        }
        _ => {
            Decision::deny("can only get, list, watch, create, update, patch, or delete a CSINode")
        }
    }
}

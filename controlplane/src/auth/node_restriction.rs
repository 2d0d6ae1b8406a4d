//! The `NodeRestriction` admission checks that need the request body, after authorization has
//! let a kubelet's request through (kube-apiserver's
//! `plugin/pkg/admission/noderestriction/admission.go`):
//!
//! - a Node it creates or updates is its own, carries no `node-restriction.kubernetes.io/`
//!   labels nor `kubernetes.io`/`k8s.io` labels outside the kubelet's set, and an update keeps
//!   the taints;
//! - a pod it creates is a mirror pod bound to itself, owned by its Node, and references no
//!   service account, secret, configmap, persistent volume claim or cluster trust bundle;
//! - a pod status update keeps the labels;
//! - a Lease or `CSINode` it creates has its name;
//! - a token it requests is bound to a pod on its node, by name and uid.
//!
//! For `patch`, the API server passes the patched object as `object`; for updates and patches
//! the stored object as `old_object`. Not done: the check of the owner reference's uid against
//! the Node's uid, and of pod resource claim statuses.

use std::collections::BTreeSet;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, Volume};
use serde::de::DeserializeOwned;

use super::authorizer::{RequestAttributes, qualified_resource};
use super::lookup::ObjectLookup;
use super::user::UserInfo;

/// The annotation that marks a mirror pod (a static pod's reflection in the API).
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// A request refused by admission: 403 Forbidden with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AdmissionDenied {
    /// kube-apiserver's message, e.g. `pods "web" is forbidden: node "n1" can only create pods
    /// with spec.nodeName set to itself`.
    pub message: String,
}

/// Admits or refuses the request of `user` with body `object` and stored `old_object`;
/// requests of users that are not nodes pass.
pub fn admit(
    user: &UserInfo,
    attrs: &RequestAttributes,
    object: Option<&serde_json::Value>,
    old_object: Option<&serde_json::Value>,
    lookup: &dyn ObjectLookup,
) -> Result<(), AdmissionDenied> {
    let Some(node) = user.node_name().filter(|n| !n.is_empty()) else {
        return Ok(());
    };
    let check = Check {
        node,
        attrs,
        object,
    };
    let verb = attrs.verb.as_str();
    let sub = attrs.subresource.as_str();
    match (attrs.api_group.as_str(), attrs.resource.as_str()) {
        ("", "pods") => match (sub, verb) {
            ("", "create") => check.pod_create(),
            ("status", "update" | "patch") => check.pod_status(old_object),
            _ => Ok(()),
        },
        ("", "nodes") if matches!(verb, "create" | "update" | "patch") => {
            check.node_object(old_object)
        }
        ("coordination.k8s.io", "leases") | ("storage.k8s.io", "csinodes") if verb == "create" => {
            check.own_name()
        }
        ("", "serviceaccounts") if sub == "token" && verb == "create" => check.token(lookup),
        _ => Ok(()),
    }
}

struct Check<'a> {
    node: &'a str,
    attrs: &'a RequestAttributes,
    object: Option<&'a serde_json::Value>,
}

impl Check<'_> {
    /// `admission.NewForbidden`: the qualified resource and the object's name.
    fn deny(&self, reason: impl AsRef<str>) -> AdmissionDenied {
        let name = if self.attrs.name.is_empty() {
            let meta = self.object.and_then(|o| o.get("metadata"));
            let field = |f: &str| {
                meta.and_then(|m| m.get(f))
                    .and_then(serde_json::Value::as_str)
                    .filter(|s| !s.is_empty())
            };
            field("name")
                .or_else(|| field("generateName"))
                .unwrap_or("Unknown")
                .to_owned()
        } else {
            self.attrs.name.clone()
        };
        AdmissionDenied {
            message: format!(
                "{} {name:?} is forbidden: {}",
                qualified_resource(self.attrs),
                reason.as_ref()
            ),
        }
    }

    fn parse<T: DeserializeOwned>(
        &self,
        value: Option<&serde_json::Value>,
    ) -> Result<T, AdmissionDenied> {
        let value = value.ok_or_else(|| self.deny("request has no object"))?;
        serde_json::from_value(value.clone())
            .map_err(|e| self.deny(format!("unexpected object: {e}")))
    }

    fn pod_create(&self) -> Result<(), AdmissionDenied> {
        let node = self.node;
        let pod: Pod = self.parse(self.object)?;
        let annotations = pod.metadata.annotations.as_ref();
        if !annotations.is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION)) {
            return Err(self.deny(format!(
                "pod does not have {MIRROR_POD_ANNOTATION:?} annotation, node {node:?} can only create mirror pods"
            )));
        }
        let spec = pod.spec.unwrap_or_default();
        if spec.node_name.as_deref() != Some(node) {
            return Err(self.deny(format!(
                "node {node:?} can only create pods with spec.nodeName set to itself"
            )));
        }
        let owners = pod.metadata.owner_references.unwrap_or_default();
        match owners.as_slice() {
            [] => {
                return Err(self.deny(format!(
                    "node {node:?} can only create pods with an owner reference set to itself"
                )));
            }
            [owner] => {
                if owner.api_version != "v1" || owner.kind != "Node" || owner.name != node {
                    return Err(self.deny(format!(
                        "node {node:?} can only create pods with an owner reference set to itself"
                    )));
                }
                if owner.controller != Some(true) {
                    return Err(self.deny(format!(
                        "node {node:?} can only create pods with a controller owner reference set to itself"
                    )));
                }
                if owner.block_owner_deletion == Some(true) {
                    return Err(self.deny(format!(
                        "node {node:?} must not set blockOwnerDeletion on an owner reference"
                    )));
                }
            }
            _ => {
                return Err(self.deny(format!(
                    "node {node:?} can only create pods with a single owner reference set to itself"
                )));
            }
        }
        if spec
            .service_account_name
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        {
            return Err(self.deny(format!(
                "node {node:?} can not create pods that reference a service account"
            )));
        }
        if let Some(reference) = references(&spec).first() {
            return Err(self.deny(format!(
                "node {node:?} can not create pods that reference {}",
                reference.resource()
            )));
        }
        Ok(())
    }

    fn pod_status(&self, old_object: Option<&serde_json::Value>) -> Result<(), AdmissionDenied> {
        let node = self.node;
        let old: Pod = self.parse(old_object)?;
        let new: Pod = self.parse(self.object)?;
        let old_node = old.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if old_node != Some(node) {
            return Err(self.deny(format!(
                "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
            )));
        }
        let labels = |p: &Pod| p.metadata.labels.clone().unwrap_or_default();
        if labels(&old) != labels(&new) {
            return Err(self.deny(format!(
                "node {node:?} cannot update labels through pod status"
            )));
        }
        Ok(())
    }

    fn node_object(&self, old_object: Option<&serde_json::Value>) -> Result<(), AdmissionDenied> {
        let node = self.node;
        let new: Node = self.parse(self.object)?;
        let requested = if self.attrs.name.is_empty() {
            new.metadata.name.clone().unwrap_or_default()
        } else {
            self.attrs.name.clone()
        };
        if requested != node {
            return Err(self.deny(format!(
                "node {node:?} is not allowed to modify node {requested:?}"
            )));
        }
        let labels = |n: &Node| n.metadata.labels.clone().unwrap_or_default();
        if self.attrs.verb == "create" {
            let forbidden = forbidden_labels(labels(&new).keys());
            if !forbidden.is_empty() {
                return Err(self.deny(format!(
                    "node {node:?} is not allowed to set the following labels: {}",
                    forbidden.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
            return Ok(());
        }
        let Some(old_object) = old_object else {
            return Ok(());
        };
        let old: Node = self.parse(Some(old_object))?;
        let taints = |n: &Node| {
            n.spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default()
        };
        if taints(&old) != taints(&new) {
            return Err(self.deny(format!("node {node:?} is not allowed to modify taints")));
        }
        let (old_labels, new_labels) = (labels(&old), labels(&new));
        let modified = old_labels
            .keys()
            .chain(new_labels.keys())
            .filter(|k| old_labels.get(*k) != new_labels.get(*k));
        let forbidden = forbidden_labels(modified);
        if !forbidden.is_empty() {
            // Upstream's message, without the node's name.
            return Err(self.deny(format!(
                "is not allowed to modify labels: {}",
                forbidden.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(())
    }

    fn own_name(&self) -> Result<(), AdmissionDenied> {
        let name = self
            .object
            .and_then(|o| o.pointer("/metadata/name"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or(&self.attrs.name);
        if name == self.node {
            return Ok(());
        }
        let what = if self.attrs.resource == "leases" {
            "node lease"
        } else {
            "CSINode"
        };
        Err(self.deny(format!(
            "can only access {what} with the same name as the requesting node"
        )))
    }

    fn token(&self, lookup: &dyn ObjectLookup) -> Result<(), AdmissionDenied> {
        let request: TokenRequest = self.parse(self.object)?;
        let bound = request.spec.bound_object_ref.unwrap_or_default();
        if bound.api_version.as_deref() != Some("v1")
            || bound.kind.as_deref() != Some("Pod")
            || bound.name.as_deref().unwrap_or_default().is_empty()
        {
            return Err(self.deny("node requested token not bound to a pod"));
        }
        let pod_uid = bound.uid.unwrap_or_default();
        if pod_uid.is_empty() {
            return Err(self.deny("node requested token with a pod binding without a uid"));
        }
        let pod_name = bound.name.unwrap_or_default();
        let Some(pod) = lookup.pod(&self.attrs.namespace, &pod_name) else {
            return Err(self.deny(format!("pods {pod_name:?} not found")));
        };
        if pod.uid != pod_uid {
            return Err(self.deny(format!(
                "the UID in the bound object reference ({pod_uid}) does not match the UID in record. The object might have been deleted and then recreated"
            )));
        }
        if pod.node_name != self.node {
            return Err(
                self.deny("node requested token bound to a pod scheduled on a different node")
            );
        }
        Ok(())
    }
}

/// A kind of object a pod spec can reference, in the order upstream checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reference {
    Secrets,
    ConfigMaps,
    ClusterTrustBundles,
    PersistentVolumeClaims,
}

impl Reference {
    fn resource(self) -> &'static str {
        match self {
            Self::Secrets => "secrets",
            Self::ConfigMaps => "configmaps",
            Self::ClusterTrustBundles => "clustertrustbundles",
            Self::PersistentVolumeClaims => "persistentvolumeclaims",
        }
    }
}

/// The kinds of objects `spec` references (upstream's `VisitPodSecretNames`,
/// `VisitPodConfigmapNames` and the volume checks of admission).
fn references(spec: &PodSpec) -> BTreeSet<Reference> {
    let mut refs = BTreeSet::new();
    let mut add = |found: bool, reference: Reference| {
        if found {
            refs.insert(reference);
        }
    };
    add(
        spec.image_pull_secrets
            .as_ref()
            .is_some_and(|s| !s.is_empty()),
        Reference::Secrets,
    );
    let env = spec
        .containers
        .iter()
        .map(|c| (c.env.as_deref(), c.env_from.as_deref()))
        .chain(
            spec.init_containers
                .iter()
                .flatten()
                .map(|c| (c.env.as_deref(), c.env_from.as_deref())),
        )
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| (c.env.as_deref(), c.env_from.as_deref())),
        );
    for (vars, sources) in env {
        for from in vars
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.value_from.as_ref())
        {
            add(from.secret_key_ref.is_some(), Reference::Secrets);
            add(from.config_map_key_ref.is_some(), Reference::ConfigMaps);
        }
        for source in sources.unwrap_or_default() {
            add(source.secret_ref.is_some(), Reference::Secrets);
            add(source.config_map_ref.is_some(), Reference::ConfigMaps);
        }
    }
    for volume in spec.volumes.iter().flatten() {
        add(volume_references_secret(volume), Reference::Secrets);
        add(volume.config_map.is_some(), Reference::ConfigMaps);
        add(
            volume.persistent_volume_claim.is_some(),
            Reference::PersistentVolumeClaims,
        );
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            add(source.secret.is_some(), Reference::Secrets);
            add(source.config_map.is_some(), Reference::ConfigMaps);
            add(
                source.cluster_trust_bundle.is_some(),
                Reference::ClusterTrustBundles,
            );
        }
    }
    refs
}

fn volume_references_secret(volume: &Volume) -> bool {
    volume.secret.is_some()
        || volume.azure_file.is_some()
        || volume
            .cephfs
            .as_ref()
            .is_some_and(|v| v.secret_ref.is_some())
        || volume
            .cinder
            .as_ref()
            .is_some_and(|v| v.secret_ref.is_some())
        || volume
            .flex_volume
            .as_ref()
            .is_some_and(|v| v.secret_ref.is_some())
        || volume
            .iscsi
            .as_ref()
            .is_some_and(|v| v.secret_ref.is_some())
        || volume.rbd.as_ref().is_some_and(|v| v.secret_ref.is_some())
        || volume.scale_io.is_some()
        || volume
            .storageos
            .as_ref()
            .is_some_and(|v| v.secret_ref.is_some())
        || volume
            .csi
            .as_ref()
            .is_some_and(|v| v.node_publish_secret_ref.is_some())
}

/// The labels a kubelet may set on its Node (`kubeletapis.IsKubeletLabel`).
const KUBELET_LABELS: [&str; 11] = [
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
];
/// Label namespaces (and their subdomains) a kubelet may use.
const KUBELET_LABEL_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];
/// The label namespace reserved for labels only administrators set.
const NODE_RESTRICTION_NAMESPACE: &str = "node-restriction.kubernetes.io";

fn in_namespace(namespace: &str, domain: &str) -> bool {
    namespace == domain
        || namespace
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// The labels among `keys` a kubelet may not set, sorted.
fn forbidden_labels<'a>(keys: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
    keys.filter(|key| {
        let namespace = key.split_once('/').map_or("", |(ns, _)| ns);
        let restricted = in_namespace(namespace, NODE_RESTRICTION_NAMESPACE);
        let kubernetes =
            in_namespace(namespace, "kubernetes.io") || in_namespace(namespace, "k8s.io");
        let kubelet = KUBELET_LABELS.contains(&key.as_str())
            || KUBELET_LABEL_NAMESPACES
                .iter()
                .any(|d| in_namespace(namespace, d));
        restricted || (kubernetes && !kubelet)
    })
    .cloned()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_labels() {
        let keys: Vec<String> = [
            "kubernetes.io/hostname",
            "node.kubernetes.io/exclude-from-external-load-balancers",
            "foo.kubelet.kubernetes.io/x",
            "node-role.kubernetes.io/control-plane",
            "node-restriction.kubernetes.io/dedicated",
            "example.com/team",
            "plain",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let forbidden: Vec<String> = forbidden_labels(keys.iter()).into_iter().collect();
        assert_eq!(
            forbidden,
            vec![
                "node-restriction.kubernetes.io/dedicated".to_owned(),
                "node-role.kubernetes.io/control-plane".to_owned(),
            ]
        );
    }
}

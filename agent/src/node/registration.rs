//! The Node object the kubelet registers (`initialNode`) and how it adopts one that exists
//! already (`updateDefaultLabels`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::config::KubeletConfiguration;

/// `kubernetes.io/hostname`.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// `kubernetes.io/os`.
pub const LABEL_OS: &str = "kubernetes.io/os";
/// `kubernetes.io/arch`.
pub const LABEL_ARCH: &str = "kubernetes.io/arch";
/// `beta.kubernetes.io/os`, still set by the kubelet for old selectors.
pub const LABEL_OS_BETA: &str = "beta.kubernetes.io/os";
/// `beta.kubernetes.io/arch`, still set by the kubelet for old selectors.
pub const LABEL_ARCH_BETA: &str = "beta.kubernetes.io/arch";

/// The labels the kubelet keeps in line on a Node that exists already.
const DEFAULT_LABELS: &[&str] = &[
    LABEL_HOSTNAME,
    LABEL_OS,
    LABEL_ARCH,
    LABEL_OS_BETA,
    LABEL_ARCH_BETA,
];

/// Who this node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The Node object's name (usually the hostname, lowercased).
    pub node_name: String,
    /// The host name: the `kubernetes.io/hostname` label and the `Hostname` address.
    pub hostname: String,
    /// The `InternalIP` address.
    pub node_ip: IpAddr,
}

/// The Node to create: name, the kubelet's default labels plus `nodeLabels`, and the taints of
/// `registerWithTaints`. `spec.podCIDR` is left to the control plane. The status is filled in
/// by the caller.
#[must_use]
pub fn initial_node(identity: &NodeIdentity, config: &KubeletConfiguration, arch: &str) -> Node {
    let mut labels = BTreeMap::from([
        (LABEL_HOSTNAME.to_owned(), identity.hostname.clone()),
        (LABEL_OS.to_owned(), "linux".to_owned()),
        (LABEL_ARCH.to_owned(), arch.to_owned()),
        (LABEL_OS_BETA.to_owned(), "linux".to_owned()),
        (LABEL_ARCH_BETA.to_owned(), arch.to_owned()),
    ]);
    // As the kubelet: configured labels win over the defaults.
    labels.extend(
        config
            .node_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let taints: Vec<Taint> = config
        .register_with_taints
        .iter()
        .map(|t| Taint {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: t.effect.as_str().to_owned(),
            time_added: None,
        })
        .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(identity.node_name.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!taints.is_empty()).then_some(taints),
            ..NodeSpec::default()
        }),
        status: None,
    }
}

/// The default labels of `desired` that `existing` lacks or has with another value, as the
/// label map to patch onto it; `None` when it is in line already.
#[must_use]
pub fn default_label_changes(desired: &Node, existing: &Node) -> Option<BTreeMap<String, String>> {
    let want = desired.metadata.labels.as_ref()?;
    let have = existing.metadata.labels.as_ref();
    let changes: BTreeMap<String, String> = DEFAULT_LABELS
        .iter()
        .filter_map(|label| {
            let value = want.get(*label)?;
            (have.and_then(|h| h.get(*label)) != Some(value))
                .then(|| ((*label).to_owned(), value.clone()))
        })
        .collect();
    (!changes.is_empty()).then_some(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RegisterTaint, TaintEffect};

    fn identity() -> NodeIdentity {
        NodeIdentity {
            node_name: "node-a".into(),
            hostname: "node-a.example".into(),
            node_ip: "10.0.0.5".parse().unwrap(),
        }
    }

    #[test]
    fn initial_node_has_kubelet_labels_and_taints() {
        let config = KubeletConfiguration {
            register_with_taints: vec![RegisterTaint {
                key: "node-role.kubernetes.io/control-plane".into(),
                value: None,
                effect: TaintEffect::NoSchedule,
            }],
            node_labels: [("node.kubernetes.io/pool".to_owned(), "blue".to_owned())].into(),
            ..KubeletConfiguration::default()
        };
        let node = initial_node(&identity(), &config, "amd64");
        assert_eq!(node.metadata.name.as_deref(), Some("node-a"));
        let labels = node.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_HOSTNAME], "node-a.example");
        assert_eq!(labels[LABEL_OS], "linux");
        assert_eq!(labels[LABEL_ARCH], "amd64");
        assert_eq!(labels[LABEL_OS_BETA], "linux");
        assert_eq!(labels[LABEL_ARCH_BETA], "amd64");
        assert_eq!(labels["node.kubernetes.io/pool"], "blue");
        let spec = node.spec.as_ref().unwrap();
        assert_eq!(spec.pod_cidr, None);
        let taints = spec.taints.as_ref().unwrap();
        assert_eq!(taints[0].key, "node-role.kubernetes.io/control-plane");
        assert_eq!(taints[0].effect, "NoSchedule");
    }

    #[test]
    fn no_taints_means_no_taint_list() {
        let node = initial_node(&identity(), &KubeletConfiguration::default(), "arm64");
        assert_eq!(node.spec.unwrap().taints, None);
    }

    #[test]
    fn adopting_fixes_only_default_labels() {
        let desired = initial_node(&identity(), &KubeletConfiguration::default(), "amd64");
        let mut existing = desired.clone();
        assert_eq!(default_label_changes(&desired, &existing), None);
        let labels = existing.metadata.labels.as_mut().unwrap();
        labels.insert(LABEL_ARCH.into(), "arm64".into());
        labels.remove(LABEL_OS);
        labels.insert("team".into(), "x".into());
        let changes = default_label_changes(&desired, &existing).unwrap();
        assert_eq!(
            changes,
            BTreeMap::from([
                (LABEL_ARCH.to_owned(), "amd64".to_owned()),
                (LABEL_OS.to_owned(), "linux".to_owned()),
            ])
        );
    }
}

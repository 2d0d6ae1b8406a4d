//! Builders for the scheduler tests, included by them with `#[path]`. Compiled on its own it
//! is an empty test crate.
// Each including test crate uses a different subset of the builders, and test builders are
// called for their value anyway.
#![allow(
    dead_code,
    clippy::must_use_candidate,
    clippy::return_self_not_must_use
)]

use std::collections::BTreeMap;

use ferrolet_controlplane::scheduler::NodeInfo;
use k8s_openapi::api::core::v1::{
    Affinity, Container, Node, NodeAffinity, NodeCondition, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, NodeSpec, NodeStatus, Pod, PodSpec, PreferredSchedulingTerm,
    ResourceRequirements, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub fn quantities(items: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_string(), Quantity((*v).to_string())))
        .collect()
}

fn string_map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// A Ready node with 4 cpu, 8Gi memory, 20Gi ephemeral storage and room for 110 pods.
pub fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: Some(quantities(&[
                ("cpu", "4"),
                ("memory", "8Gi"),
                ("ephemeral-storage", "20Gi"),
                ("pods", "110"),
            ])),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        }),
    }
}

/// Chainable changes to a test node.
pub trait NodeExt: Sized {
    fn node_mut(&mut self) -> &mut Node;

    fn allocatable(mut self, items: &[(&str, &str)]) -> Self {
        self.node_mut()
            .status
            .get_or_insert_with(Default::default)
            .allocatable = Some(quantities(items));
        self
    }

    fn labels(mut self, items: &[(&str, &str)]) -> Self {
        self.node_mut().metadata.labels = Some(string_map(items));
        self
    }

    fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        self.node_mut()
            .spec
            .get_or_insert_with(Default::default)
            .taints
            .get_or_insert_with(Vec::new)
            .push(Taint {
                key: key.into(),
                value: (!value.is_empty()).then(|| value.into()),
                effect: effect.into(),
                time_added: None,
            });
        self
    }

    fn cordoned(mut self) -> Self {
        self.node_mut()
            .spec
            .get_or_insert_with(Default::default)
            .unschedulable = Some(true);
        self
    }

    fn ready(mut self, status: &str) -> Self {
        let conditions = self
            .node_mut()
            .status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new);
        conditions.retain(|c| c.type_ != "Ready");
        if !status.is_empty() {
            conditions.push(NodeCondition {
                type_: "Ready".into(),
                status: status.into(),
                ..NodeCondition::default()
            });
        }
        self
    }
}

impl NodeExt for Node {
    fn node_mut(&mut self) -> &mut Node {
        self
    }
}

/// A pod in `default` with UID `uid-<name>` and one container requesting `requests`.
pub fn pod(name: &str, requests: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![container(requests)],
            ..PodSpec::default()
        }),
        status: None,
    }
}

pub fn container(requests: &[(&str, &str)]) -> Container {
    Container {
        name: "main".into(),
        resources: (!requests.is_empty()).then(|| ResourceRequirements {
            requests: Some(quantities(requests)),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    }
}

pub fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.into(),
        operator: operator.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_string()).collect()),
    }
}

pub fn label_term(requirements: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: Some(requirements),
        match_fields: None,
    }
}

pub fn name_term(names: &[&str]) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![requirement("metadata.name", "In", names)]),
    }
}

/// Chainable changes to a test pod.
pub trait PodExt: Sized {
    fn pod_mut(&mut self) -> &mut Pod;

    fn spec_mut(&mut self) -> &mut PodSpec {
        self.pod_mut().spec.get_or_insert_with(Default::default)
    }

    fn tolerate(mut self, key: &str, operator: &str, value: &str, effect: &str) -> Self {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        self.spec_mut()
            .tolerations
            .get_or_insert_with(Vec::new)
            .push(Toleration {
                key: opt(key),
                operator: opt(operator),
                value: opt(value),
                effect: opt(effect),
                toleration_seconds: None,
            });
        self
    }

    fn node_selector(mut self, items: &[(&str, &str)]) -> Self {
        self.spec_mut().node_selector = Some(string_map(items));
        self
    }

    fn required_terms(mut self, terms: Vec<NodeSelectorTerm>) -> Self {
        let affinity = self
            .spec_mut()
            .affinity
            .get_or_insert_with(Affinity::default);
        affinity
            .node_affinity
            .get_or_insert_with(NodeAffinity::default)
            .required_during_scheduling_ignored_during_execution = Some(NodeSelector {
            node_selector_terms: terms,
        });
        self
    }

    fn preferred_term(mut self, weight: i32, term: NodeSelectorTerm) -> Self {
        let affinity = self
            .spec_mut()
            .affinity
            .get_or_insert_with(Affinity::default);
        affinity
            .node_affinity
            .get_or_insert_with(NodeAffinity::default)
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(PreferredSchedulingTerm {
                weight,
                preference: term,
            });
        self
    }

    fn node_name(mut self, node: &str) -> Self {
        self.spec_mut().node_name = Some(node.into());
        self
    }

    fn init_container(mut self, requests: &[(&str, &str)], sidecar: bool) -> Self {
        let mut c = container(requests);
        if sidecar {
            c.restart_policy = Some("Always".into());
        }
        self.spec_mut()
            .init_containers
            .get_or_insert_with(Vec::new)
            .push(c);
        self
    }

    fn overhead(mut self, items: &[(&str, &str)]) -> Self {
        self.spec_mut().overhead = Some(quantities(items));
        self
    }

    fn priority(mut self, priority: i32) -> Self {
        self.spec_mut().priority = Some(priority);
        self
    }

    fn scheduler(mut self, name: &str) -> Self {
        self.spec_mut().scheduler_name = Some(name.into());
        self
    }
}

impl PodExt for Pod {
    fn pod_mut(&mut self) -> &mut Pod {
        self
    }
}

/// A node view with the given pods on it.
pub fn info(node: Node, pods: Vec<Pod>) -> NodeInfo {
    NodeInfo::new(node, pods).expect("valid test quantities")
}

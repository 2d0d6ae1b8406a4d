//! Node selection by labels and fields: `spec.nodeSelector` and node affinity, as the
//! `NodeAffinity` plugin and `k8s.io/component-helpers/scheduling/corev1/nodeaffinity` match them.
//!
//! Required affinity is an OR of `nodeSelectorTerms`; a term is an AND of its
//! `matchExpressions` (on labels) and `matchFields` (only `metadata.name`); a term with no
//! requirements, or with one that cannot be evaluated (unknown operator, `Gt` with a
//! non-integer), matches nothing.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Node, NodeAffinity, NodeSelectorRequirement, NodeSelectorTerm, Pod,
};

/// The only field `matchFields` may select on.
const NODE_NAME_FIELD: &str = "metadata.name";

/// What `NodeAffinity`'s `PreFilter` says about the candidate nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeNamePreFilter {
    /// Every node is a candidate.
    AllNodes,
    /// Every required term pins `metadata.name`: only these nodes are candidates
    /// (`DaemonSet` pods look like this).
    Only(BTreeSet<String>),
    /// The terms pin node names that cannot all hold: no node is a candidate.
    Conflict,
}

fn required_node_affinity(pod: &Pod) -> Option<&[NodeSelectorTerm]> {
    pod.spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .map(|selector| selector.node_selector_terms.as_slice())
}

/// `NodeAffinity`'s `PreFilter`: the node names that every required term restricts the pod to
/// (`metadata.name In ...` `matchFields`, intersected within a term and united across terms).
#[must_use]
pub fn node_name_prefilter(pod: &Pod) -> NodeNamePreFilter {
    let Some(terms) = required_node_affinity(pod) else {
        return NodeNamePreFilter::AllNodes;
    };
    if terms.is_empty() {
        return NodeNamePreFilter::AllNodes;
    }
    let mut union = BTreeSet::new();
    for term in terms {
        let mut term_names: Option<BTreeSet<String>> = None;
        for requirement in term.match_fields.iter().flatten() {
            if requirement.key == NODE_NAME_FIELD && requirement.operator == "In" {
                let values: BTreeSet<String> =
                    requirement.values.iter().flatten().cloned().collect();
                term_names = Some(match term_names {
                    None => values,
                    Some(names) => names.intersection(&values).cloned().collect(),
                });
            }
        }
        match term_names {
            // A term that does not pin a name leaves every node possible.
            None => return NodeNamePreFilter::AllNodes,
            Some(names) => union.extend(names),
        }
    }
    if union.is_empty() {
        NodeNamePreFilter::Conflict
    } else {
        NodeNamePreFilter::Only(union)
    }
}

/// Whether a node satisfies the pod's `nodeSelector` and its required node affinity.
#[must_use]
pub fn matches_required(pod: &Pod, node: &Node) -> bool {
    let labels = node_labels(node);
    let selector_ok = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref())
        .is_none_or(|selector| {
            selector
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value))
        });
    selector_ok
        && required_node_affinity(pod).is_none_or(|terms| {
            terms
                .iter()
                .any(|term| term_matches(term, labels, node_name(node)))
        })
}

/// The sum of the weights of the pod's preferred node affinity terms that the node matches.
#[must_use]
pub fn preferred_weight(pod: &Pod, node: &Node) -> i64 {
    let preferred = pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na: &NodeAffinity| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let labels = node_labels(node);
    preferred
        .into_iter()
        .flatten()
        .filter(|t| t.weight != 0 && term_matches(&t.preference, labels, node_name(node)))
        .map(|t| i64::from(t.weight))
        .sum()
}

/// Whether one node selector term matches: all its label expressions and field requirements
/// hold, and it has at least one of them.
#[must_use]
pub fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    node_name: &str,
) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| label_requirement_matches(r, labels))
        && fields
            .iter()
            .all(|r| field_requirement_matches(r, node_name))
}

/// Whether a `matchExpressions` requirement holds for a node's labels.
#[must_use]
pub fn label_requirement_matches(
    requirement: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let label = labels.get(&requirement.key);
    match requirement.operator.as_str() {
        "In" => label.is_some_and(|v| values.contains(v)),
        "NotIn" => label.is_none_or(|v| !values.contains(v)),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        op @ ("Gt" | "Lt") => {
            let [bound] = values else {
                return false;
            };
            let (Some(Ok(actual)), Ok(bound)) =
                (label.map(|v| v.parse::<i64>()), bound.parse::<i64>())
            else {
                return false;
            };
            if op == "Gt" {
                actual > bound
            } else {
                actual < bound
            }
        }
        _ => false,
    }
}

fn field_requirement_matches(requirement: &NodeSelectorRequirement, node_name: &str) -> bool {
    if requirement.key != NODE_NAME_FIELD {
        return false;
    }
    let values = requirement.values.as_deref().unwrap_or_default();
    let listed = values.iter().any(|v| v == node_name);
    match requirement.operator.as_str() {
        "In" => listed,
        "NotIn" => !listed,
        _ => false,
    }
}

fn node_labels(node: &Node) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    node.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

fn node_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Affinity, NodeSelector, PodSpec, PreferredSchedulingTerm};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).into()).collect()),
        }
    }

    fn term(
        exprs: Vec<NodeSelectorRequirement>,
        fields: Vec<NodeSelectorRequirement>,
    ) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: (!exprs.is_empty()).then_some(exprs),
            match_fields: (!fields.is_empty()).then_some(fields),
        }
    }

    fn pod_with(selector: &[(&str, &str)], terms: Option<Vec<NodeSelectorTerm>>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                node_selector: (!selector.is_empty()).then(|| {
                    selector
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect()
                }),
                affinity: terms.map(|node_selector_terms| Affinity {
                    node_affinity: Some(NodeAffinity {
                        required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                            node_selector_terms,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn labels(items: &[(&str, &str)]) -> BTreeMap<String, String> {
        items
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn operators_on_labels() {
        let l = labels(&[("zone", "a"), ("cores", "8")]);
        assert!(label_requirement_matches(
            &req("zone", "In", &["a", "b"]),
            &l
        ));
        assert!(!label_requirement_matches(&req("zone", "In", &["b"]), &l));
        assert!(!label_requirement_matches(&req("absent", "In", &["a"]), &l));
        assert!(label_requirement_matches(&req("zone", "NotIn", &["b"]), &l));
        assert!(!label_requirement_matches(
            &req("zone", "NotIn", &["a"]),
            &l
        ));
        assert!(label_requirement_matches(
            &req("absent", "NotIn", &["a"]),
            &l
        ));
        assert!(label_requirement_matches(&req("zone", "Exists", &[]), &l));
        assert!(!label_requirement_matches(
            &req("absent", "Exists", &[]),
            &l
        ));
        assert!(label_requirement_matches(
            &req("absent", "DoesNotExist", &[]),
            &l
        ));
        assert!(!label_requirement_matches(
            &req("zone", "DoesNotExist", &[]),
            &l
        ));
        assert!(label_requirement_matches(&req("cores", "Gt", &["4"]), &l));
        assert!(!label_requirement_matches(&req("cores", "Gt", &["8"]), &l));
        assert!(label_requirement_matches(&req("cores", "Lt", &["16"]), &l));
        assert!(!label_requirement_matches(&req("cores", "Lt", &["8"]), &l));
        // Gt/Lt need an integer label, exactly one integer value, and the label present.
        assert!(!label_requirement_matches(&req("zone", "Gt", &["1"]), &l));
        assert!(!label_requirement_matches(&req("cores", "Gt", &["x"]), &l));
        assert!(!label_requirement_matches(
            &req("cores", "Gt", &["1", "2"]),
            &l
        ));
        assert!(!label_requirement_matches(&req("absent", "Lt", &["1"]), &l));
        assert!(!label_requirement_matches(
            &req("zone", "Matches", &["a"]),
            &l
        ));
    }

    #[test]
    fn terms_are_ored_and_requirements_anded() {
        let n = node("n1", &[("zone", "a"), ("disk", "ssd")]);
        let both = term(
            vec![req("zone", "In", &["a"]), req("disk", "In", &["ssd"])],
            vec![],
        );
        let one_wrong = term(
            vec![req("zone", "In", &["a"]), req("disk", "In", &["hdd"])],
            vec![],
        );
        assert!(matches_required(
            &pod_with(&[], Some(vec![both.clone()])),
            &n
        ));
        assert!(!matches_required(
            &pod_with(&[], Some(vec![one_wrong.clone()])),
            &n
        ));
        assert!(matches_required(
            &pod_with(&[], Some(vec![one_wrong, both])),
            &n
        ));
    }

    #[test]
    fn an_empty_term_matches_nothing() {
        let n = node("n1", &[]);
        assert!(!matches_required(
            &pod_with(&[], Some(vec![term(vec![], vec![])])),
            &n
        ));
    }

    #[test]
    fn match_fields_select_the_node_name() {
        let n = node("n1", &[]);
        let on_n1 = term(vec![], vec![req("metadata.name", "In", &["n1"])]);
        let not_n1 = term(vec![], vec![req("metadata.name", "NotIn", &["n1"])]);
        let bad_field = term(vec![], vec![req("metadata.uid", "In", &["n1"])]);
        assert!(matches_required(&pod_with(&[], Some(vec![on_n1])), &n));
        assert!(!matches_required(&pod_with(&[], Some(vec![not_n1])), &n));
        assert!(!matches_required(&pod_with(&[], Some(vec![bad_field])), &n));
    }

    #[test]
    fn node_selector_and_affinity_must_both_hold() {
        let n = node("n1", &[("zone", "a"), ("disk", "ssd")]);
        let zone_a = term(vec![req("zone", "In", &["a"])], vec![]);
        assert!(matches_required(
            &pod_with(&[("disk", "ssd")], Some(vec![zone_a.clone()])),
            &n
        ));
        assert!(!matches_required(
            &pod_with(&[("disk", "hdd")], Some(vec![zone_a])),
            &n
        ));
        assert!(matches_required(&pod_with(&[("disk", "ssd")], None), &n));
        assert!(!matches_required(&pod_with(&[("gpu", "yes")], None), &n));
        assert!(matches_required(&pod_with(&[], None), &n));
    }

    #[test]
    fn prefilter_collects_pinned_node_names() {
        let pin = |names: &[&str]| term(vec![], vec![req("metadata.name", "In", names)]);
        assert_eq!(
            node_name_prefilter(&pod_with(&[], None)),
            NodeNamePreFilter::AllNodes
        );
        assert_eq!(
            node_name_prefilter(&pod_with(&[], Some(vec![pin(&["a"]), pin(&["b"])]))),
            NodeNamePreFilter::Only(["a".to_string(), "b".to_string()].into())
        );
        // A term without a name pin leaves all nodes possible.
        let zone = term(vec![req("zone", "In", &["a"])], vec![]);
        assert_eq!(
            node_name_prefilter(&pod_with(&[], Some(vec![pin(&["a"]), zone]))),
            NodeNamePreFilter::AllNodes
        );
        // Two pins in one term intersect.
        let both = term(
            vec![],
            vec![
                req("metadata.name", "In", &["a", "b"]),
                req("metadata.name", "In", &["b"]),
            ],
        );
        assert_eq!(
            node_name_prefilter(&pod_with(&[], Some(vec![both]))),
            NodeNamePreFilter::Only(["b".to_string()].into())
        );
        let disjoint = term(
            vec![],
            vec![
                req("metadata.name", "In", &["a"]),
                req("metadata.name", "In", &["b"]),
            ],
        );
        assert_eq!(
            node_name_prefilter(&pod_with(&[], Some(vec![disjoint]))),
            NodeNamePreFilter::Conflict
        );
    }

    #[test]
    fn preferred_terms_add_their_weights() {
        let n = node("n1", &[("zone", "a"), ("disk", "ssd")]);
        let mut p = pod_with(&[], None);
        let pref = |weight, key: &str, value: &str| PreferredSchedulingTerm {
            weight,
            preference: term(vec![req(key, "In", &[value])], vec![]),
        };
        if let Some(spec) = p.spec.as_mut() {
            spec.affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    preferred_during_scheduling_ignored_during_execution: Some(vec![
                        pref(5, "zone", "a"),
                        pref(3, "disk", "ssd"),
                        pref(7, "zone", "b"),
                    ]),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        assert_eq!(preferred_weight(&p, &n), 8);
        assert_eq!(preferred_weight(&pod_with(&[], None), &n), 0);
    }
}

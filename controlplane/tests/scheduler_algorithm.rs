//! Whole decisions: which node wins, and the unschedulable message in kube-scheduler's format.

#[path = "scheduler_support/mod.rs"]
mod support;

use ferrolet_controlplane::scheduler::{FitError, NodeInfo, ScheduleError, schedule_pod};
use k8s_openapi::api::core::v1::Pod;
use support::{NodeExt, PodExt, info, label_term, name_term, node, pod, requirement};

fn placed(p: &Pod, nodes: &[NodeInfo]) -> String {
    match schedule_pod(p, nodes) {
        Ok(result) => result.node,
        Err(e) => panic!("not scheduled: {e}"),
    }
}

fn message(p: &Pod, nodes: &[NodeInfo]) -> String {
    match schedule_pod(p, nodes) {
        Ok(result) => panic!("scheduled on {}", result.node),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_brief_example_message() {
    let nodes = vec![
        info(
            node("n1")
                .labels(&[("disk", "ssd")])
                .allocatable(&[("cpu", "1"), ("pods", "10")]),
            vec![],
        ),
        info(node("n2"), vec![]),
        info(node("n3"), vec![]),
    ];
    let p = pod("web", &[("cpu", "2")]).node_selector(&[("disk", "ssd")]);
    assert_eq!(
        message(&p, &nodes),
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."
    );
}

#[test]
fn every_reason_of_a_node_is_counted_and_entries_sort_as_strings() {
    let mut nodes = vec![info(
        node("big").allocatable(&[("cpu", "1"), ("memory", "1Gi"), ("pods", "10")]),
        vec![],
    )];
    for i in 0..10 {
        nodes.push(info(
            node(&format!("t{i:02}")).taint("team", "b", "NoSchedule"),
            vec![],
        ));
    }
    nodes.push(info(node("z1").cordoned(), vec![]));
    nodes.push(info(node("z2").cordoned(), vec![]));
    let p = pod("p", &[("cpu", "2"), ("memory", "2Gi")]);
    // "10 ..." sorts before "2 ..." as upstream's sort.Strings does.
    assert_eq!(
        message(&p, &nodes),
        "0/13 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, \
         10 node(s) had untolerated taint {team: b}, 2 node(s) were unschedulable."
    );
}

#[test]
fn different_taints_are_different_reasons() {
    let nodes = vec![
        info(
            node("a").taint("node-role.kubernetes.io/control-plane", "", "NoSchedule"),
            vec![],
        ),
        info(node("b").ready("False"), vec![]),
        info(node("c").taint("gpu", "true", "NoExecute"), vec![]),
    ];
    assert_eq!(
        message(&pod("p", &[]), &nodes),
        "0/3 nodes are available: 1 node(s) had untolerated taint {gpu: true}, \
         1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, \
         1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
    );
}

#[test]
fn no_nodes_at_all() {
    let err = schedule_pod(&pod("p", &[]), &[]).unwrap_err();
    assert_eq!(err, ScheduleError::NoNodesAvailable);
    assert_eq!(err.to_string(), "no nodes available to schedule pods");
    assert_eq!(err.condition_reason(), "Unschedulable");
}

#[test]
fn a_pod_pinned_by_match_fields_counts_the_other_nodes_as_prefiltered() {
    let nodes = vec![
        info(
            node("n1").allocatable(&[("cpu", "4"), ("pods", "1")]),
            vec![pod("x", &[]).node_name("n1")],
        ),
        info(node("n2"), vec![]),
        info(node("n3"), vec![]),
    ];
    let daemon = pod("ds", &[]).required_terms(vec![name_term(&["n1"])]);
    assert_eq!(
        message(&daemon, &nodes),
        "0/3 nodes are available: 1 Too many pods, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]."
    );
    let elsewhere = pod("ds", &[]).required_terms(vec![name_term(&["n3"])]);
    assert_eq!(placed(&elsewhere, &nodes), "n3");
}

#[test]
fn conflicting_name_pins_fail_in_prefilter() {
    let nodes = vec![info(node("n1"), vec![]), info(node("n2"), vec![])];
    let p = pod("p", &[]).required_terms(vec![k8s_openapi::api::core::v1::NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![
            requirement("metadata.name", "In", &["n1"]),
            requirement("metadata.name", "In", &["n2"]),
        ]),
    }]);
    assert_eq!(
        message(&p, &nodes),
        "0/2 nodes are available: pod affinity terms conflict."
    );
}

#[test]
fn an_invalid_request_is_a_scheduler_error() {
    let err = schedule_pod(&pod("p", &[("cpu", "lots")]), &[info(node("n1"), vec![])]).unwrap_err();
    assert_eq!(err.condition_reason(), "SchedulerError");
    assert!(matches!(err, ScheduleError::InvalidPod(_)));
}

#[test]
fn least_allocated_picks_the_emptier_node() {
    let nodes = vec![
        info(
            node("busy"),
            vec![pod("a", &[("cpu", "2"), ("memory", "4Gi")]).node_name("busy")],
        ),
        info(node("idle"), vec![]),
    ];
    assert_eq!(placed(&pod("p", &[("cpu", "1")]), &nodes), "idle");
}

#[test]
fn request_less_pods_count_defaults_and_spread() {
    // Four request-less pods on "a" weigh 400m and 800Mi when scoring, so "b" wins.
    let nodes = vec![
        info(
            node("a"),
            (0..4)
                .map(|i| pod(&format!("x{i}"), &[]).node_name("a"))
                .collect(),
        ),
        info(node("b"), vec![]),
    ];
    assert_eq!(placed(&pod("p", &[]), &nodes), "b");
}

#[test]
fn ties_go_to_the_lowest_node_name() {
    let nodes = vec![
        info(node("n3"), vec![]),
        info(node("n1"), vec![]),
        info(node("n2"), vec![]),
    ];
    assert_eq!(placed(&pod("p", &[("cpu", "1")]), &nodes), "n1");
}

#[test]
fn prefer_no_schedule_taints_lower_the_score() {
    let nodes = vec![
        info(node("a-spot").taint("spot", "", "PreferNoSchedule"), vec![]),
        info(node("b"), vec![]),
    ];
    assert_eq!(placed(&pod("p", &[]), &nodes), "b");
    // Tolerating it removes the penalty; the tie goes to the lower name.
    let tolerant = pod("p", &[]).tolerate("spot", "Exists", "", "PreferNoSchedule");
    assert_eq!(placed(&tolerant, &nodes), "a-spot");
    // A PreferNoSchedule-only node is still feasible.
    let only = vec![info(
        node("a-spot").taint("spot", "", "PreferNoSchedule"),
        vec![],
    )];
    assert_eq!(placed(&pod("p", &[]), &only), "a-spot");
}

#[test]
fn preferred_node_affinity_raises_the_score() {
    let nodes = vec![
        info(node("a"), vec![]),
        info(node("b").labels(&[("zone", "west")]), vec![]),
    ];
    let p =
        pod("p", &[]).preferred_term(10, label_term(vec![requirement("zone", "In", &["west"])]));
    assert_eq!(placed(&p, &nodes), "b");
}

#[test]
fn a_fit_error_can_be_built_and_formatted_directly() {
    let mut e = FitError {
        num_all_nodes: 2,
        ..FitError::default()
    };
    assert_eq!(e.to_string(), "0/2 nodes are available:");
    e.node_reasons
        .insert("n1".into(), vec!["Insufficient cpu".into()]);
    e.node_reasons
        .insert("n2".into(), vec!["Insufficient cpu".into()]);
    assert_eq!(
        e.to_string(),
        "0/2 nodes are available: 2 Insufficient cpu."
    );
    e.pre_filter_msg = Some("something failed early".into());
    assert_eq!(
        e.to_string(),
        "0/2 nodes are available: something failed early."
    );
}

//! Each Filter plugin, passing and rejecting, with upstream's reason strings.

#[path = "scheduler_support/mod.rs"]
mod support;

use ferrolet_controlplane::scheduler::filters::{self, Rejection, plugin};
use ferrolet_controlplane::scheduler::resources::PodResources;
use k8s_openapi::api::core::v1::{ContainerPort, Pod};
use support::{NodeExt, PodExt, info, label_term, name_term, node, pod, requirement};

fn reasons(result: Result<(), Rejection>) -> Vec<String> {
    result.err().map(|r| r.reasons).unwrap_or_default()
}

fn fit(
    p: &k8s_openapi::api::core::v1::Pod,
    n: &ferrolet_controlplane::scheduler::NodeInfo,
) -> Vec<String> {
    reasons(filters::node_resources_fit(
        &PodResources::of(p).expect("valid pod"),
        n,
    ))
}

#[test]
fn node_unschedulable_rejects_a_cordoned_node() {
    let cordoned = info(node("n1").cordoned(), vec![]);
    let rejection = filters::node_unschedulable(&pod("p", &[]), &cordoned).unwrap_err();
    assert_eq!(rejection.plugin, plugin::NODE_UNSCHEDULABLE);
    assert_eq!(rejection.reasons, vec!["node(s) were unschedulable"]);
    assert!(filters::node_unschedulable(&pod("p", &[]), &info(node("n1"), vec![])).is_ok());
}

#[test]
fn node_unschedulable_admits_pods_tolerating_the_unschedulable_taint() {
    let cordoned = info(node("n1").cordoned(), vec![]);
    let tolerant = pod("p", &[]).tolerate(
        "node.kubernetes.io/unschedulable",
        "Exists",
        "",
        "NoSchedule",
    );
    assert!(filters::node_unschedulable(&tolerant, &cordoned).is_ok());
    let everything = pod("p", &[]).tolerate("", "Exists", "", "");
    assert!(filters::node_unschedulable(&everything, &cordoned).is_ok());
    let wrong_effect = pod("p", &[]).tolerate(
        "node.kubernetes.io/unschedulable",
        "Exists",
        "",
        "NoExecute",
    );
    assert!(filters::node_unschedulable(&wrong_effect, &cordoned).is_err());
}

#[test]
fn node_name_admits_only_the_named_node() {
    let n1 = info(node("n1"), vec![]);
    assert!(filters::node_name(&pod("p", &[]).node_name("n1"), &n1).is_ok());
    assert!(filters::node_name(&pod("p", &[]), &n1).is_ok());
    assert_eq!(
        reasons(filters::node_name(&pod("p", &[]).node_name("n2"), &n1)),
        vec!["node(s) didn't match the requested node name"]
    );
}

#[test]
fn taint_toleration_rejects_untolerated_no_schedule_and_no_execute() {
    let gpu = info(node("n1").taint("dedicated", "gpu", "NoSchedule"), vec![]);
    assert_eq!(
        reasons(filters::taint_toleration(&pod("p", &[]), &gpu)),
        vec!["node(s) had untolerated taint {dedicated: gpu}"]
    );
    let evicting = info(node("n1").taint("maintenance", "", "NoExecute"), vec![]);
    assert_eq!(
        reasons(filters::taint_toleration(&pod("p", &[]), &evicting)),
        vec!["node(s) had untolerated taint {maintenance: }"]
    );
}

#[test]
fn taint_toleration_admits_tolerating_pods_and_ignores_prefer_no_schedule() {
    let gpu = info(node("n1").taint("dedicated", "gpu", "NoSchedule"), vec![]);
    let equal = pod("p", &[]).tolerate("dedicated", "Equal", "gpu", "NoSchedule");
    let exists = pod("p", &[]).tolerate("dedicated", "Exists", "", "");
    let wrong_value = pod("p", &[]).tolerate("dedicated", "Equal", "cpu", "NoSchedule");
    assert!(filters::taint_toleration(&equal, &gpu).is_ok());
    assert!(filters::taint_toleration(&exists, &gpu).is_ok());
    assert!(filters::taint_toleration(&wrong_value, &gpu).is_err());
    let soft = info(node("n1").taint("spot", "", "PreferNoSchedule"), vec![]);
    assert!(filters::taint_toleration(&pod("p", &[]), &soft).is_ok());
}

#[test]
fn taint_toleration_reports_the_first_untolerated_taint() {
    let n = info(
        node("n1")
            .taint("a", "1", "NoSchedule")
            .taint("b", "2", "NoSchedule"),
        vec![],
    );
    let tolerates_a = pod("p", &[]).tolerate("a", "Exists", "", "");
    assert_eq!(
        reasons(filters::taint_toleration(&tolerates_a, &n)),
        vec!["node(s) had untolerated taint {b: 2}"]
    );
}

#[test]
fn a_node_that_is_not_ready_carries_its_readiness_taint() {
    let not_ready = info(node("n1").ready("False"), vec![]);
    assert_eq!(
        reasons(filters::taint_toleration(&pod("p", &[]), &not_ready)),
        vec!["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
    );
    let never_reported = info(node("n1").ready(""), vec![]);
    assert!(filters::taint_toleration(&pod("p", &[]), &never_reported).is_err());
    let unknown = info(node("n1").ready("Unknown"), vec![]);
    assert_eq!(
        reasons(filters::taint_toleration(&pod("p", &[]), &unknown)),
        vec!["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]
    );
    // A DaemonSet-style toleration lets the pod onto the unready node.
    let tolerant =
        pod("p", &[]).tolerate("node.kubernetes.io/not-ready", "Exists", "", "NoSchedule");
    assert!(filters::taint_toleration(&tolerant, &not_ready).is_ok());
    // Tolerating the controller's NoExecute taint for a while (as every pod does through
    // DefaultTolerationSeconds) does not let a pod onto the unreachable node; tolerating the
    // key with every effect does.
    let tainted = info(
        node("n1")
            .ready("Unknown")
            .taint("node.kubernetes.io/unreachable", "", "NoExecute"),
        vec![],
    );
    let tolerates_no_execute =
        pod("p", &[]).tolerate("node.kubernetes.io/unreachable", "Exists", "", "NoExecute");
    assert_eq!(
        reasons(filters::taint_toleration(&tolerates_no_execute, &tainted)),
        vec!["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]
    );
    let tolerates_all = pod("p", &[]).tolerate("node.kubernetes.io/unreachable", "Exists", "", "");
    assert!(filters::taint_toleration(&tolerates_all, &tainted).is_ok());
}

#[test]
fn node_affinity_checks_selector_and_required_terms() {
    let n = info(node("n1").labels(&[("zone", "a"), ("cores", "8")]), vec![]);
    let reason = vec!["node(s) didn't match Pod's node affinity/selector".to_string()];
    assert!(filters::node_affinity(&pod("p", &[]).node_selector(&[("zone", "a")]), &n).is_ok());
    assert_eq!(
        reasons(filters::node_affinity(
            &pod("p", &[]).node_selector(&[("zone", "b")]),
            &n
        )),
        reason
    );
    let ops = [
        (requirement("zone", "In", &["a", "c"]), true),
        (requirement("zone", "NotIn", &["a"]), false),
        (requirement("zone", "Exists", &[]), true),
        (requirement("gpu", "DoesNotExist", &[]), true),
        (requirement("cores", "Gt", &["4"]), true),
        (requirement("cores", "Lt", &["4"]), false),
    ];
    for (req, fits) in ops {
        let p = pod("p", &[]).required_terms(vec![label_term(vec![req.clone()])]);
        assert_eq!(filters::node_affinity(&p, &n).is_ok(), fits, "{req:?}");
    }
    let on_n2 = pod("p", &[]).required_terms(vec![name_term(&["n2"])]);
    assert_eq!(reasons(filters::node_affinity(&on_n2, &n)), reason);
    let on_n1 = pod("p", &[]).required_terms(vec![name_term(&["n1"])]);
    assert!(filters::node_affinity(&on_n1, &n).is_ok());
}

#[test]
fn node_resources_fit_compares_requests_with_what_is_left() {
    let busy = info(
        node("n1"),
        vec![pod("a", &[("cpu", "3"), ("memory", "6Gi")]).node_name("n1")],
    );
    assert!(fit(&pod("p", &[("cpu", "1"), ("memory", "2Gi")]), &busy).is_empty());
    assert_eq!(
        fit(&pod("p", &[("cpu", "1001m")]), &busy),
        vec!["Insufficient cpu"]
    );
    assert_eq!(
        fit(&pod("p", &[("cpu", "2"), ("memory", "3Gi")]), &busy),
        vec!["Insufficient cpu", "Insufficient memory"]
    );
    assert_eq!(
        fit(&pod("p", &[("ephemeral-storage", "21Gi")]), &busy),
        vec!["Insufficient ephemeral-storage"]
    );
}

#[test]
fn node_resources_fit_checks_extended_resources() {
    let gpu_node = info(
        node("n1").allocatable(&[("cpu", "4"), ("pods", "10"), ("example.com/gpu", "2")]),
        vec![pod("a", &[("example.com/gpu", "1")]).node_name("n1")],
    );
    assert!(fit(&pod("p", &[("example.com/gpu", "1")]), &gpu_node).is_empty());
    assert_eq!(
        fit(&pod("p", &[("example.com/gpu", "2")]), &gpu_node),
        vec!["Insufficient example.com/gpu"]
    );
    let plain = info(node("n2"), vec![]);
    assert_eq!(
        fit(&pod("p", &[("example.com/gpu", "1")]), &plain),
        vec!["Insufficient example.com/gpu"]
    );
}

#[test]
fn node_resources_fit_counts_pods() {
    let full = info(
        node("n1").allocatable(&[("cpu", "4"), ("memory", "1Gi"), ("pods", "1")]),
        vec![pod("a", &[]).node_name("n1")],
    );
    assert_eq!(fit(&pod("p", &[]), &full), vec!["Too many pods"]);
    assert_eq!(
        fit(&pod("p", &[("cpu", "5")]), &full),
        vec!["Too many pods", "Insufficient cpu"]
    );
    let no_allocatable = info(node("n2").allocatable(&[]), vec![]);
    assert_eq!(fit(&pod("p", &[]), &no_allocatable), vec!["Too many pods"]);
}

#[test]
fn node_resources_fit_accounts_init_containers_and_overhead() {
    let n = info(
        node("n1").allocatable(&[("cpu", "2"), ("pods", "10")]),
        vec![],
    );
    let big_init = pod("p", &[("cpu", "1")]).init_container(&[("cpu", "3")], false);
    assert_eq!(fit(&big_init, &n), vec!["Insufficient cpu"]);
    let sidecar = pod("p", &[("cpu", "1500m")]).init_container(&[("cpu", "600m")], true);
    assert_eq!(fit(&sidecar, &n), vec!["Insufficient cpu"]);
    let overhead = pod("p", &[("cpu", "1900m")]).overhead(&[("cpu", "200m")]);
    assert_eq!(fit(&overhead, &n), vec!["Insufficient cpu"]);
    assert!(fit(&pod("p", &[("cpu", "2")]), &n).is_empty());
}

#[test]
fn run_filters_reports_only_the_first_rejecting_plugin() {
    let n = info(
        node("n1")
            .cordoned()
            .taint("dedicated", "x", "NoSchedule")
            .allocatable(&[("pods", "0")]),
        vec![],
    );
    let p = pod("p", &[("cpu", "1")]);
    let resources = PodResources::of(&p).expect("valid pod");
    let rejection = filters::run_filters(&p, &resources, &n).unwrap_err();
    assert_eq!(rejection.plugin, plugin::NODE_UNSCHEDULABLE);
    let p = p.tolerate("", "Exists", "", "");
    let rejection = filters::run_filters(&p, &resources, &n).unwrap_err();
    assert_eq!(rejection.plugin, plugin::NODE_RESOURCES_FIT);
    assert_eq!(rejection.reasons, vec!["Too many pods", "Insufficient cpu"]);
}

fn with_host_port(p: Pod, ip: &str, protocol: &str, port: i32) -> Pod {
    let mut p = p;
    let spec = p.spec.get_or_insert_with(Default::default);
    spec.containers[0]
        .ports
        .get_or_insert_with(Vec::new)
        .push(ContainerPort {
            container_port: port,
            host_port: Some(port),
            host_ip: (!ip.is_empty()).then(|| ip.to_string()),
            protocol: (!protocol.is_empty()).then(|| protocol.to_string()),
            name: None,
        });
    p
}

#[test]
fn node_ports_rejects_a_taken_host_port() {
    let n = info(
        node("n1"),
        vec![with_host_port(pod("a", &[]).node_name("n1"), "", "", 8080)],
    );
    let same = with_host_port(pod("p", &[]), "", "TCP", 8080);
    let rejection = filters::node_ports(&same, &n).unwrap_err();
    assert_eq!(rejection.plugin, plugin::NODE_PORTS);
    assert_eq!(
        rejection.reasons,
        vec!["node(s) didn't have free ports for the requested pod ports"]
    );
    // 0.0.0.0 held by the bound pod covers every address.
    assert!(filters::node_ports(&with_host_port(pod("p", &[]), "10.0.0.1", "", 8080), &n).is_err());
    // Another protocol or port is free.
    assert!(filters::node_ports(&with_host_port(pod("p", &[]), "", "UDP", 8080), &n).is_ok());
    assert!(filters::node_ports(&with_host_port(pod("p", &[]), "", "", 8081), &n).is_ok());
    assert!(filters::node_ports(&pod("p", &[]), &n).is_ok());

    let specific = info(
        node("n2"),
        vec![with_host_port(
            pod("a", &[]).node_name("n2"),
            "10.0.0.1",
            "",
            80,
        )],
    );
    assert!(
        filters::node_ports(
            &with_host_port(pod("p", &[]), "10.0.0.2", "", 80),
            &specific
        )
        .is_ok()
    );
    assert!(
        filters::node_ports(
            &with_host_port(pod("p", &[]), "10.0.0.1", "", 80),
            &specific
        )
        .is_err()
    );
    assert!(filters::node_ports(&with_host_port(pod("p", &[]), "", "", 80), &specific).is_err());
}

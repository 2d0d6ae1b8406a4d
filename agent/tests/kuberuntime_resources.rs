//! `QoS` classes, cgroup parents, cgroup resources and OOM scores as the kubelet computes them.

use ferrolet_agent::kuberuntime::qos::compute_qos_class;
use ferrolet_agent::kuberuntime::resources::{oom_score_adj, sandbox_resources};
use ferrolet_agent::kuberuntime::{
    CgroupDriver, QosClass, ResourceContext, linux_container_resources, pod_cgroup_parent,
    qos_class,
};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

const GI: i64 = 1024 * 1024 * 1024;
const MI: i64 = 1024 * 1024;

fn pod(containers: serde_json::Value) -> Pod {
    let mut value = json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "0a1b2c3d-0000-1111-2222-333344445555"},
        "spec": {}
    });
    value["spec"]["containers"] = containers;
    serde_json::from_value(value).expect("valid pod")
}

fn resources(requests: serde_json::Value, limits: serde_json::Value) -> serde_json::Value {
    let mut container = json!({"name": "c", "resources": {}});
    container["resources"]["requests"] = requests;
    container["resources"]["limits"] = limits;
    container
}

fn guaranteed() -> Pod {
    pod(json!([resources(
        json!({"cpu": "500m", "memory": "256Mi"}),
        json!({"cpu": "500m", "memory": "256Mi"})
    )]))
}

fn burstable() -> Pod {
    pod(json!([resources(
        json!({"cpu": "100m", "memory": "1Gi"}),
        json!({"cpu": "1", "memory": "2Gi"})
    )]))
}

fn best_effort() -> Pod {
    pod(json!([{"name": "c"}]))
}

#[test]
fn qos_classes_follow_requests_and_limits() {
    assert_eq!(qos_class(&guaranteed()), QosClass::Guaranteed);
    assert_eq!(qos_class(&burstable()), QosClass::Burstable);
    assert_eq!(qos_class(&best_effort()), QosClass::BestEffort);
    // Requests of other resources do not count; zero quantities do not either.
    let only_storage = pod(json!([resources(
        json!({"ephemeral-storage": "1Gi", "cpu": "0"}),
        json!({})
    )]));
    assert_eq!(qos_class(&only_storage), QosClass::BestEffort);
    // Every container needs both limits for Guaranteed.
    let partial = pod(json!([
        resources(
            json!({"cpu": "1", "memory": "1Gi"}),
            json!({"cpu": "1", "memory": "1Gi"})
        ),
        resources(json!({"cpu": "1"}), json!({"cpu": "1"}))
    ]));
    assert_eq!(qos_class(&partial), QosClass::Burstable);
    // Equal sums spelled differently are still equal.
    let spelled = pod(json!([resources(
        json!({"cpu": "1000m", "memory": "1024Mi"}),
        json!({"cpu": "1", "memory": "1Gi"})
    )]));
    assert_eq!(qos_class(&spelled), QosClass::Guaranteed);
    // Init containers count too.
    let mut with_init = guaranteed();
    with_init.spec.as_mut().expect("spec").init_containers = Some(vec![
        serde_json::from_value(json!({"name": "init"})).expect("container"),
    ]);
    assert_eq!(qos_class(&with_init), QosClass::Burstable);
}

#[test]
fn status_qos_class_wins_over_the_spec() {
    let mut pod = best_effort();
    pod.status = Some(serde_json::from_value(json!({"qosClass": "Burstable"})).expect("status"));
    assert_eq!(qos_class(&pod), QosClass::Burstable);
    assert_eq!(compute_qos_class(&pod), QosClass::BestEffort);
}

#[test]
fn cgroup_parents_follow_the_kubelet_layout() {
    let uid = "0a1b2c3d-0000-1111-2222-333344445555";
    let p = best_effort();
    let cases = [
        (QosClass::Guaranteed, "/", format!("/kubepods/pod{uid}")),
        (
            QosClass::Burstable,
            "/",
            format!("/kubepods/burstable/pod{uid}"),
        ),
        (
            QosClass::BestEffort,
            "/",
            format!("/kubepods/besteffort/pod{uid}"),
        ),
        (
            QosClass::Burstable,
            "/ferrolet/",
            format!("/ferrolet/kubepods/burstable/pod{uid}"),
        ),
    ];
    for (qos, root, expected) in cases {
        assert_eq!(
            pod_cgroup_parent(&p, root, qos, CgroupDriver::Cgroupfs),
            expected
        );
    }
    let escaped = "0a1b2c3d_0000_1111_2222_333344445555";
    assert_eq!(
        pod_cgroup_parent(&p, "/", QosClass::Burstable, CgroupDriver::Systemd),
        format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{escaped}.slice")
    );
    assert_eq!(
        pod_cgroup_parent(&p, "/", QosClass::Guaranteed, CgroupDriver::Systemd),
        format!("/kubepods.slice/kubepods-pod{escaped}.slice")
    );
}

#[test]
fn cpu_shares_quota_and_memory_limit() {
    let ctx = ResourceContext::new(8 * GI);
    let p = pod(json!([resources(
        json!({"cpu": "100m", "memory": "64Mi"}),
        json!({"cpu": "100m", "memory": "128Mi"})
    )]));
    let c = &p.spec.as_ref().expect("spec").containers[0];
    let r = linux_container_resources(&p, c, qos_class(&p), &ctx).expect("resources");
    assert_eq!(r.cpu_shares, 102);
    assert_eq!(r.cpu_quota, 10_000);
    assert_eq!(r.cpu_period, 100_000);
    assert_eq!(r.memory_limit_in_bytes, 128 * MI);

    // No request: shares come from the limit. No limit: quota 0 (unlimited), period set.
    let p = pod(json!([resources(json!({}), json!({"cpu": "2"}))]));
    let c = &p.spec.as_ref().expect("spec").containers[0];
    let r = linux_container_resources(&p, c, qos_class(&p), &ctx).expect("resources");
    assert_eq!((r.cpu_shares, r.cpu_quota), (2048, 200_000));
    let p = best_effort();
    let c = &p.spec.as_ref().expect("spec").containers[0];
    let r = linux_container_resources(&p, c, qos_class(&p), &ctx).expect("resources");
    assert_eq!(
        (
            r.cpu_shares,
            r.cpu_quota,
            r.cpu_period,
            r.memory_limit_in_bytes
        ),
        (2, 0, 100_000, 0)
    );

    // --cpu-cfs-quota=false leaves quota and period unset; a custom period scales the quota.
    let mut no_cfs = ResourceContext::new(8 * GI);
    no_cfs.cpu_cfs_quota = false;
    let p = guaranteed();
    let c = &p.spec.as_ref().expect("spec").containers[0];
    let r = linux_container_resources(&p, c, qos_class(&p), &no_cfs).expect("resources");
    assert_eq!((r.cpu_quota, r.cpu_period), (0, 0));
    let mut period = ResourceContext::new(8 * GI);
    period.cpu_cfs_quota_period = 50_000;
    let r = linux_container_resources(&p, c, qos_class(&p), &period).expect("resources");
    assert_eq!((r.cpu_quota, r.cpu_period), (25_000, 50_000));
}

#[test]
fn oom_score_adj_per_qos_class() {
    let capacity = 4 * GI;
    let check = |p: &Pod, expected: i64| {
        let c = &p.spec.as_ref().expect("spec").containers[0];
        assert_eq!(
            oom_score_adj(p, c, qos_class(p), capacity).expect("score"),
            expected
        );
    };
    check(&guaranteed(), -997);
    check(&best_effort(), 1000);
    // 1Gi of 4Gi requested: 1000 - 250.
    check(&burstable(), 750);
    // A tiny request rounds to 1000, kept just below BestEffort.
    check(
        &pod(json!([resources(json!({"memory": "1"}), json!({}))])),
        999,
    );
    // Requesting all memory would give 0; Burstable stays above Guaranteed.
    check(
        &pod(json!([resources(json!({"memory": "4Gi"}), json!({}))])),
        3,
    );
    // A Burstable pod with only a CPU request scores as requesting no memory.
    check(
        &pod(json!([resources(json!({"cpu": "1"}), json!({}))])),
        999,
    );
}

#[test]
fn oom_score_adj_for_node_critical_pods_and_sidecars() {
    let mut critical = burstable();
    let spec = critical.spec.as_mut().expect("spec");
    spec.priority_class_name = Some("system-node-critical".to_owned());
    spec.priority = Some(2_000_001_000);
    let c = critical.spec.as_ref().expect("spec").containers[0].clone();
    assert_eq!(
        oom_score_adj(&critical, &c, QosClass::Burstable, 4 * GI).expect("score"),
        -997
    );

    // A sidecar is scored like the smallest of itself and the regular containers, plus one
    // when it is not smaller than them.
    let sidecar_pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "u"},
        "spec": {
            "initContainers": [{"name": "proxy", "restartPolicy": "Always",
                "resources": {"requests": {"memory": "2Gi"}}}],
            "containers": [{"name": "app", "resources": {"requests": {"memory": "1Gi"}}}]
        }
    }))
    .expect("pod");
    let proxy = sidecar_pod
        .spec
        .as_ref()
        .expect("spec")
        .init_containers
        .as_ref()
        .expect("init")[0]
        .clone();
    let app = sidecar_pod.spec.as_ref().expect("spec").containers[0].clone();
    assert_eq!(
        oom_score_adj(&sidecar_pod, &app, QosClass::Burstable, 4 * GI).expect("app"),
        750
    );
    assert_eq!(
        oom_score_adj(&sidecar_pod, &proxy, QosClass::Burstable, 4 * GI).expect("proxy"),
        751
    );
}

#[test]
fn sandbox_resources_aggregate_containers_and_overhead() {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "u"},
        "spec": {
            "overhead": {"cpu": "250m", "memory": "120Mi"},
            "initContainers": [{"name": "init", "resources": {
                "requests": {"cpu": "2"}, "limits": {"cpu": "2", "memory": "1Gi"}}}],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "256Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "256Mi"}}}
            ]
        }
    }))
    .expect("pod");
    let (overhead, resources) = sandbox_resources(&p, &ResourceContext::new(8 * GI)).expect("ok");
    assert_eq!(overhead.cpu_shares, 256);
    assert_eq!(overhead.cpu_quota, 25_000);
    assert_eq!(overhead.memory_limit_in_bytes, 120 * MI);
    // Requests: max(0.75 CPU of the regular containers, 2 CPUs of the init container).
    assert_eq!(resources.cpu_shares, 2048);
    // Limits: max(1.5 CPUs, 2 CPUs) and max(512Mi, 1Gi).
    assert_eq!(resources.cpu_quota, 200_000);
    assert_eq!(resources.memory_limit_in_bytes, GI);
}

#[test]
fn hugepage_limits_cover_every_host_page_size() {
    let mut ctx = ResourceContext::new(8 * GI);
    ctx.hugepage_sizes = vec!["2MB".to_owned(), "1GB".to_owned()];
    let p = pod(json!([resources(
        json!({"memory": "64Mi", "hugepages-2Mi": "128Mi"}),
        json!({"memory": "64Mi", "hugepages-2Mi": "128Mi"})
    )]));
    let c = &p.spec.as_ref().expect("spec").containers[0];
    let r = linux_container_resources(&p, c, qos_class(&p), &ctx).expect("resources");
    let limits: Vec<_> = r
        .hugepage_limits
        .iter()
        .map(|h| (h.page_size.as_str(), h.limit))
        .collect();
    assert_eq!(limits, [("2MB", 128 * 1024 * 1024), ("1GB", 0)]);
}

#[test]
fn invalid_quantities_are_reported_with_their_field() {
    let p = pod(json!([resources(json!({"cpu": "lots"}), json!({}))]));
    let c = &p.spec.as_ref().expect("spec").containers[0];
    let err = linux_container_resources(&p, c, QosClass::Burstable, &ResourceContext::new(GI))
        .expect_err("invalid");
    let message = err.to_string();
    assert!(
        message.contains("container \"c\" resources.requests.cpu") && message.contains("\"lots\""),
        "{message}"
    );
}

//! `PodSandboxConfig` as the kubelet's `generatePodSandboxConfig` builds it.

use ferrolet_agent::kuberuntime::{
    CgroupDriver, DnsContext, SandboxContext, pod_cgroup_parent, pod_sandbox_config, qos_class,
};
use ferrolet_cri::api::{NamespaceMode, PodSandboxConfig, Protocol, security_profile::ProfileType};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

fn pod(spec: serde_json::Value) -> Pod {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "app", "image": "nginx:1.27"}]);
    }
    serde_json::from_value(json!({
        "metadata": {
            "name": "web-0",
            "namespace": "shop",
            "uid": "9a8b7c6d-0000-1111-2222-333344445555",
            "labels": {"app": "web"},
            "annotations": {"kubernetes.io/config.source": "api", "team": "core"}
        },
        "spec": spec
    }))
    .expect("valid pod")
}

fn ctx(pod: &Pod) -> SandboxContext {
    SandboxContext {
        attempt: 2,
        cgroup_parent: pod_cgroup_parent(pod, "/", qos_class(pod), CgroupDriver::Cgroupfs),
        dns: DnsContext {
            cluster_dns: vec!["10.96.0.10".to_owned()],
            cluster_domain: "cluster.local".to_owned(),
            host_resolv_conf: Some("nameserver 192.168.1.1\n".to_owned()),
            node_ips: vec!["192.168.1.10".to_owned()],
        },
        ..SandboxContext::default()
    }
}

fn build(pod: &Pod) -> PodSandboxConfig {
    pod_sandbox_config(pod, &ctx(pod))
        .expect("sandbox config")
        .value
}

fn namespaces(config: &PodSandboxConfig) -> (i32, i32, i32) {
    let ns = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|sc| sc.namespace_options.as_ref())
        .expect("namespace options");
    (ns.network, ns.pid, ns.ipc)
}

#[test]
fn metadata_hostname_logs_labels_and_annotations() {
    let config = build(&pod(json!({})));
    let metadata = config.metadata.as_ref().expect("metadata");
    assert_eq!(
        (
            metadata.name.as_str(),
            metadata.namespace.as_str(),
            metadata.uid.as_str()
        ),
        ("web-0", "shop", "9a8b7c6d-0000-1111-2222-333344445555")
    );
    assert_eq!(metadata.attempt, 2);
    assert_eq!(config.hostname, "web-0");
    assert_eq!(
        config.log_directory,
        "/var/log/pods/shop_web-0_9a8b7c6d-0000-1111-2222-333344445555"
    );
    assert_eq!(config.labels.len(), 4);
    assert_eq!(config.labels["app"], "web");
    assert_eq!(config.labels["io.kubernetes.pod.name"], "web-0");
    assert_eq!(config.labels["io.kubernetes.pod.namespace"], "shop");
    assert_eq!(
        config.labels["io.kubernetes.pod.uid"],
        "9a8b7c6d-0000-1111-2222-333344445555"
    );
    assert_eq!(config.annotations.len(), 2);
    assert_eq!(config.annotations["team"], "core");
    let dns = config.dns_config.as_ref().expect("dns");
    assert_eq!(dns.servers, ["10.96.0.10"]);
    assert_eq!(dns.options, ["ndots:5"]);
    let linux = config.linux.as_ref().expect("linux");
    assert_eq!(
        linux.cgroup_parent,
        "/kubepods/besteffort/pod9a8b7c6d-0000-1111-2222-333344445555"
    );
}

#[test]
fn namespace_options_follow_host_and_share_flags() {
    let pod_mode = i32::from(NamespaceMode::Pod);
    let node = i32::from(NamespaceMode::Node);
    let container = i32::from(NamespaceMode::Container);
    assert_eq!(
        namespaces(&build(&pod(json!({})))),
        (pod_mode, container, pod_mode)
    );
    assert_eq!(
        namespaces(&build(&pod(json!({"hostNetwork": true})))),
        (node, container, pod_mode)
    );
    assert_eq!(
        namespaces(&build(&pod(json!({"shareProcessNamespace": true})))),
        (pod_mode, pod_mode, pod_mode)
    );
    assert_eq!(
        namespaces(&build(&pod(
            json!({"hostPID": true, "shareProcessNamespace": true})
        ))),
        (pod_mode, node, pod_mode)
    );
    assert_eq!(
        namespaces(&build(&pod(json!({"hostIPC": true})))),
        (pod_mode, container, node)
    );
}

#[test]
fn host_network_sandboxes_have_no_hostname() {
    let config = build(&pod(json!({"hostNetwork": true})));
    assert_eq!(config.hostname, "");
    // ClusterFirst on the host network resolves like Default.
    assert_eq!(config.dns_config.expect("dns").servers, ["192.168.1.1"]);
}

#[test]
fn hostname_subdomain_and_fqdn() {
    let config = build(&pod(json!({
        "hostname": "db", "subdomain": "primary", "setHostnameAsFQDN": true
    })));
    assert_eq!(config.hostname, "db.primary.shop.svc.cluster.local");
    let config = build(&pod(json!({"hostname": "db", "subdomain": "primary"})));
    assert_eq!(config.hostname, "db");
}

#[test]
fn port_mappings_cover_all_containers_ports() {
    let config = build(&pod(json!({
        "containers": [
            {"name": "web", "ports": [
                {"name": "http", "containerPort": 8080, "hostPort": 80},
                {"name": "http", "containerPort": 8081, "hostPort": 81},
                {"containerPort": 9090, "protocol": "UDP", "hostIP": "127.0.0.1", "hostPort": 9090}
            ]},
            {"name": "metrics", "ports": [{"containerPort": 9100, "protocol": "SCTP"}]}
        ]
    })));
    let mappings: Vec<_> = config
        .port_mappings
        .iter()
        .map(|p| {
            (
                p.protocol,
                p.container_port,
                p.host_port,
                p.host_ip.as_str(),
            )
        })
        .collect();
    assert_eq!(
        mappings,
        [
            (i32::from(Protocol::Tcp), 8080, 80, ""),
            (i32::from(Protocol::Udp), 9090, 9090, "127.0.0.1"),
            (i32::from(Protocol::Sctp), 9100, 0, ""),
        ]
    );
}

#[test]
fn sandbox_security_context_sysctls_and_resources() {
    let p = pod(json!({
        "securityContext": {
            "runAsUser": 1000,
            "runAsGroup": 3000,
            "fsGroup": 2000,
            "supplementalGroups": [4000, 5000],
            "supplementalGroupsPolicy": "Strict",
            "seLinuxOptions": {"level": "s0:c123,c456"},
            "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]
        },
        "initContainers": [{"name": "setup", "securityContext": {"privileged": true}}],
        "containers": [{"name": "app", "resources": {
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"}
        }}]
    }));
    let mut context = ctx(&p);
    context.extra_supplemental_groups = vec![6000];
    let config = pod_sandbox_config(&p, &context).expect("config").value;
    let linux = config.linux.as_ref().expect("linux");
    let sc = linux.security_context.as_ref().expect("security context");
    assert!(sc.privileged, "an init container is privileged");
    assert_eq!(sc.run_as_user.as_ref().map(|v| v.value), Some(1000));
    assert_eq!(sc.run_as_group.as_ref().map(|v| v.value), Some(3000));
    assert_eq!(sc.supplemental_groups, [2000, 6000, 4000, 5000]);
    assert_eq!(sc.supplemental_groups_policy, 1);
    assert_eq!(
        sc.selinux_options.as_ref().map(|o| o.level.as_str()),
        Some("s0:c123,c456")
    );
    assert_eq!(
        sc.seccomp.as_ref().map(|s| s.profile_type),
        Some(i32::from(ProfileType::RuntimeDefault))
    );
    assert_eq!(linux.sysctls["net.core.somaxconn"], "1024");
    let resources = linux.resources.as_ref().expect("resources");
    assert_eq!(resources.cpu_shares, 102);
    assert_eq!(resources.cpu_quota, 20_000);
    assert_eq!(resources.memory_limit_in_bytes, 128 * 1024 * 1024);
    assert_eq!(linux.overhead.as_ref().map(|o| o.cpu_shares), Some(0));
}

#[test]
fn dns_warnings_reach_the_caller() {
    let p = pod(json!({}));
    let mut context = ctx(&p);
    context.dns.cluster_dns.clear();
    let config = pod_sandbox_config(&p, &context).expect("config");
    assert_eq!(config.warnings.len(), 1);
    assert_eq!(config.warnings[0].reason, "MissingClusterDNS");
}

#[test]
fn a_pod_without_spec_is_an_error() {
    let p: Pod =
        serde_json::from_value(json!({"metadata": {"name": "x", "namespace": "y", "uid": "z"}}))
            .expect("pod");
    let err = pod_sandbox_config(&p, &SandboxContext::default()).expect_err("no spec");
    assert_eq!(err.to_string(), "pod x_y(z) has no spec");
}

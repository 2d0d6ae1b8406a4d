//! `ContainerConfig` as the kubelet's `generateContainerConfig` builds it.

use ferrolet_agent::kuberuntime::container::{
    container_log_directory, termination_message_host_path,
};
use ferrolet_agent::kuberuntime::labels::container_hash;
use ferrolet_agent::kuberuntime::security::{DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS};
use ferrolet_agent::kuberuntime::{
    ConfigError, ContainerContext, ResourceContext, SecurityContextInputs, container_config,
    linux_security_context, verify_run_as_non_root,
};
use ferrolet_cri::api::{
    ContainerConfig, KeyValue, LinuxContainerSecurityContext, Mount, NamespaceMode,
    security_profile::ProfileType,
};
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::json;

const UID: &str = "5e4d3c2b-0000-1111-2222-333344445555";

fn pod(spec: serde_json::Value) -> Pod {
    let mut value = json!({
        "metadata": {"name": "api-7f9c", "namespace": "shop", "uid": UID, "deletionGracePeriodSeconds": 10}
    });
    value["spec"] = spec;
    serde_json::from_value(value).expect("valid pod")
}

fn app(pod: &Pod) -> &Container {
    &pod.spec.as_ref().expect("spec").containers[0]
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

fn context() -> ContainerContext {
    ContainerContext {
        attempt: 3,
        image_ref: "sha256:0123abcd".to_owned(),
        env: vec![kv("GREETING", "hello"), kv("TARGET", "world")],
        mounts: vec![Mount {
            container_path: "/data".to_owned(),
            host_path: format!("/var/lib/kubelet/pods/{UID}/volumes/kubernetes.io~empty-dir/data"),
            ..Mount::default()
        }],
        etc_hosts_path: Some(format!("/var/lib/kubelet/pods/{UID}/etc-hosts")),
        termination_message_host_path: Some(termination_message_host_path(
            "/var/lib/kubelet",
            UID,
            "app",
            0xdead_beef,
        )),
        selinux_enabled: false,
        resources: ResourceContext::new(16 * 1024 * 1024 * 1024),
        security: SecurityContextInputs {
            image_user: Some("1000:1000".to_owned()),
            ..SecurityContextInputs::default()
        },
    }
}

fn web_pod() -> Pod {
    pod(json!({
        "terminationGracePeriodSeconds": 45,
        "containers": [{
            "name": "app",
            "image": "registry.local/shop/api:2.1",
            "command": ["/bin/sh", "-c"],
            "args": ["echo $(GREETING) $(TARGET) $$(GREETING) $(MISSING)"],
            "workingDir": "/srv",
            "stdin": true,
            "tty": true,
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "lifecycle": {"preStop": {"exec": {"command": ["/bin/sleep", "5"]}}},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
        }]
    }))
}

fn build(pod: &Pod, ctx: &ContainerContext) -> ContainerConfig {
    container_config(pod, app(pod), ctx).expect("container config")
}

fn security(config: &ContainerConfig) -> &LinuxContainerSecurityContext {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .expect("security context")
}

#[test]
fn metadata_image_command_and_log_path() {
    let config = build(&web_pod(), &context());
    let metadata = config.metadata.as_ref().expect("metadata");
    assert_eq!((metadata.name.as_str(), metadata.attempt), ("app", 3));
    let image = config.image.as_ref().expect("image");
    assert_eq!(image.image, "sha256:0123abcd");
    assert_eq!(image.user_specified_image, "registry.local/shop/api:2.1");
    assert_eq!(config.command, ["/bin/sh", "-c"]);
    assert_eq!(
        config.args,
        ["echo hello world $(GREETING) $(MISSING)"],
        "expanded, escaped and unresolved references"
    );
    assert_eq!(config.working_dir, "/srv");
    assert_eq!(config.envs, context().env);
    assert_eq!(config.log_path, "app/3.log");
    assert!(config.stdin && config.tty && !config.stdin_once);
    assert_eq!(
        container_log_directory("/var/log/pods", "shop", "api-7f9c", UID, "app"),
        format!("/var/log/pods/shop_api-7f9c_{UID}/app")
    );
}

#[test]
fn mounts_are_volumes_then_hosts_then_termination_log() {
    let config = build(&web_pod(), &context());
    let mounts: Vec<_> = config
        .mounts
        .iter()
        .map(|m| (m.container_path.as_str(), m.host_path.as_str(), m.readonly))
        .collect();
    assert_eq!(
        mounts,
        [
            (
                "/data",
                "/var/lib/kubelet/pods/5e4d3c2b-0000-1111-2222-333344445555/volumes/kubernetes.io~empty-dir/data",
                false
            ),
            (
                "/etc/hosts",
                "/var/lib/kubelet/pods/5e4d3c2b-0000-1111-2222-333344445555/etc-hosts",
                false
            ),
            (
                "/dev/termination-log",
                "/var/lib/kubelet/pods/5e4d3c2b-0000-1111-2222-333344445555/containers/app/deadbeef",
                false
            ),
        ]
    );

    // A container mounting its own /etc/hosts does not get the managed one.
    let mut p = web_pod();
    p.spec.as_mut().expect("spec").containers[0].volume_mounts = Some(vec![
        serde_json::from_value(json!({"name": "hosts", "mountPath": "/etc/hosts"})).expect("mount"),
    ]);
    let config = build(&p, &context());
    assert!(
        config
            .mounts
            .iter()
            .all(|m| !m.host_path.ends_with("/etc-hosts"))
    );
}

#[test]
fn labels_and_annotations_follow_labels_go() {
    let p = web_pod();
    let config = build(&p, &context());
    assert_eq!(config.labels.len(), 4);
    assert_eq!(config.labels["io.kubernetes.container.name"], "app");
    assert_eq!(config.labels["io.kubernetes.pod.name"], "api-7f9c");
    assert_eq!(config.labels["io.kubernetes.pod.namespace"], "shop");
    assert_eq!(config.labels["io.kubernetes.pod.uid"], UID);
    let a = &config.annotations;
    assert_eq!(
        a["io.kubernetes.container.hash"],
        format!("{:x}", container_hash(app(&p)))
    );
    assert_eq!(a["io.kubernetes.container.restartCount"], "3");
    assert_eq!(
        a["io.kubernetes.container.terminationMessagePath"],
        "/dev/termination-log"
    );
    assert_eq!(
        a["io.kubernetes.container.terminationMessagePolicy"],
        "FallbackToLogsOnError"
    );
    assert_eq!(a["io.kubernetes.pod.terminationGracePeriod"], "45");
    assert_eq!(a["io.kubernetes.pod.deletionGracePeriod"], "10");
    let ports: serde_json::Value =
        serde_json::from_str(&a["io.kubernetes.container.ports"]).expect("ports JSON");
    assert_eq!(
        ports,
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    );
    let pre_stop: serde_json::Value =
        serde_json::from_str(&a["io.kubernetes.container.preStopHandler"]).expect("JSON");
    assert_eq!(pre_stop, json!({"exec": {"command": ["/bin/sleep", "5"]}}));
}

#[test]
fn container_hash_changes_only_with_name_or_image() {
    let p = web_pod();
    let base = app(&p).clone();
    let mut resized = base.clone();
    resized.resources = None;
    resized.args = Some(vec!["other".to_owned()]);
    assert_eq!(container_hash(&base), container_hash(&resized));
    let mut new_image = base.clone();
    new_image.image = Some("registry.local/shop/api:2.2".to_owned());
    assert_ne!(container_hash(&base), container_hash(&new_image));
    assert_eq!(container_hash(&base), container_hash(&base.clone()));
}

#[test]
fn linux_resources_are_filled_in() {
    let config = build(&web_pod(), &context());
    let r = config
        .linux
        .as_ref()
        .and_then(|l| l.resources.as_ref())
        .expect("resources");
    assert_eq!(r.cpu_shares, 102);
    assert_eq!((r.cpu_quota, r.cpu_period), (50_000, 100_000));
    assert_eq!(r.memory_limit_in_bytes, 256 * 1024 * 1024);
    // Burstable: 1000 - 1000 * 128Mi / 16Gi.
    assert_eq!(r.oom_score_adj, 993);
}

#[test]
fn default_security_context() {
    let config = build(&web_pod(), &context());
    let sc = security(&config);
    assert!(!sc.privileged && !sc.readonly_rootfs && !sc.no_new_privs);
    assert_eq!(sc.capabilities, None);
    // The image's numeric user is passed on.
    assert_eq!(sc.run_as_user.as_ref().map(|v| v.value), Some(1000));
    assert_eq!(sc.masked_paths, DEFAULT_MASKED_PATHS);
    assert_eq!(sc.readonly_paths, DEFAULT_READONLY_PATHS);
    assert_eq!(
        sc.seccomp.as_ref().map(|s| s.profile_type),
        Some(i32::from(ProfileType::Unconfined))
    );
    assert_eq!(sc.apparmor, None);
    let ns = sc.namespace_options.as_ref().expect("namespaces");
    assert_eq!(
        (ns.network, ns.pid, ns.ipc),
        (
            i32::from(NamespaceMode::Pod),
            i32::from(NamespaceMode::Container),
            i32::from(NamespaceMode::Pod)
        )
    );
}

#[test]
fn explicit_security_context() {
    let p = pod(json!({
        "securityContext": {"runAsUser": 2000, "fsGroup": 3000, "supplementalGroups": [4000],
            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "app",
            "securityContext": {
                "runAsUser": 1001,
                "runAsGroup": 1002,
                "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false,
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                "procMount": "Unmasked",
                "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"},
                "appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-nginx"}
            }
        }]
    }));
    let mut ctx = context();
    ctx.security.target_container_id = Some("abc123".to_owned());
    let sc = linux_security_context(&p, app(&p), &ctx.security).expect("security context");
    assert_eq!(sc.run_as_user.as_ref().map(|v| v.value), Some(1001));
    assert_eq!(sc.run_as_group.as_ref().map(|v| v.value), Some(1002));
    assert!(sc.readonly_rootfs && sc.no_new_privs);
    let caps = sc.capabilities.as_ref().expect("capabilities");
    // Names go to the runtime as written; containerd adds the CAP_ prefix.
    assert_eq!(caps.add_capabilities, ["NET_ADMIN"]);
    assert_eq!(caps.drop_capabilities, ["ALL"]);
    assert_eq!(sc.supplemental_groups, [3000, 4000]);
    assert!(sc.masked_paths.is_empty() && sc.readonly_paths.is_empty());
    let seccomp = sc.seccomp.as_ref().expect("seccomp");
    assert_eq!(seccomp.profile_type, i32::from(ProfileType::Localhost));
    assert_eq!(
        seccomp.localhost_ref,
        "/var/lib/kubelet/seccomp/profiles/audit.json"
    );
    let apparmor = sc.apparmor.as_ref().expect("apparmor");
    assert_eq!(apparmor.profile_type, i32::from(ProfileType::Localhost));
    assert_eq!(apparmor.localhost_ref, "k8s-nginx");
    #[allow(deprecated)] // The legacy field containerd 1.6 reads.
    let legacy = sc.apparmor_profile.clone();
    assert_eq!(legacy, "localhost/k8s-nginx");
    let ns = sc.namespace_options.as_ref().expect("namespaces");
    assert_eq!(ns.pid, i32::from(NamespaceMode::Target));
    assert_eq!(ns.target_id, "abc123");
}

#[test]
fn privileged_and_pod_level_defaults() {
    let p = pod(json!({
        "securityContext": {"runAsUser": 4242, "runAsGroup": 4343,
            "seLinuxOptions": {"type": "spc_t"}},
        "containers": [{"name": "app", "securityContext": {"privileged": true}}]
    }));
    let mut inputs = SecurityContextInputs {
        seccomp_default: true,
        ..SecurityContextInputs::default()
    };
    inputs.image_user = Some("nobody".to_owned());
    let sc = linux_security_context(&p, app(&p), &inputs).expect("security context");
    assert!(sc.privileged);
    // allowPrivilegeEscalation unset: no_new_privs stays off, as in the kubelet.
    assert!(!sc.no_new_privs);
    assert_eq!(sc.run_as_user.as_ref().map(|v| v.value), Some(4242));
    assert_eq!(sc.run_as_group.as_ref().map(|v| v.value), Some(4343));
    assert_eq!(sc.run_as_username, "");
    assert_eq!(
        sc.selinux_options.as_ref().map(|o| o.r#type.as_str()),
        Some("spc_t")
    );
    assert_eq!(
        sc.seccomp.as_ref().map(|s| s.profile_type),
        Some(i32::from(ProfileType::RuntimeDefault))
    );

    // Without runAsUser anywhere, a named image user is passed by name.
    let p = pod(json!({"containers": [{"name": "app"}]}));
    let sc = linux_security_context(&p, app(&p), &inputs).expect("security context");
    assert_eq!(sc.run_as_user, None);
    assert_eq!(sc.run_as_username, "nobody");
}

#[test]
fn run_as_non_root_against_the_image_user() {
    let non_root = pod(json!({
        "securityContext": {"runAsNonRoot": true},
        "containers": [{"name": "app"}]
    }));
    let c = app(&non_root);
    assert!(verify_run_as_non_root(&non_root, c, Some("1000")).is_ok());
    assert!(verify_run_as_non_root(&non_root, c, Some("1000:1000")).is_ok());
    let pod_name = format!("api-7f9c_shop({UID})");
    for user in [Some("0"), Some("0:0"), Some(""), None] {
        let err = verify_run_as_non_root(&non_root, c, user).expect_err("root");
        assert!(
            matches!(err, ConfigError::ImageRunsAsRoot { .. }),
            "{user:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "container has runAsNonRoot and image will run as root (pod: {pod_name:?}, \
                 container: app)"
            )
        );
    }
    for user in ["root", "nobody"] {
        let err = verify_run_as_non_root(&non_root, c, Some(user)).expect_err(user);
        assert_eq!(
            err.to_string(),
            format!(
                "container has runAsNonRoot and image has non-numeric user ({user}), cannot \
                 verify user is non-root (pod: {pod_name:?}, container: app)"
            )
        );
    }

    // runAsUser decides when set, whatever the image says.
    let explicit = pod(json!({
        "securityContext": {"runAsNonRoot": true},
        "containers": [{"name": "app", "securityContext": {"runAsUser": 0}}]
    }));
    let err = verify_run_as_non_root(&explicit, app(&explicit), Some("1000")).expect_err("uid 0");
    assert_eq!(
        err.to_string(),
        format!("container's runAsUser breaks non-root policy (pod: {pod_name:?}, container: app)")
    );
    let explicit = pod(json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000},
        "containers": [{"name": "app"}]
    }));
    assert!(verify_run_as_non_root(&explicit, app(&explicit), Some("root")).is_ok());

    // The container may opt out of the pod's runAsNonRoot.
    let opt_out = pod(json!({
        "securityContext": {"runAsNonRoot": true},
        "containers": [{"name": "app", "securityContext": {"runAsNonRoot": false}}]
    }));
    assert!(verify_run_as_non_root(&opt_out, app(&opt_out), Some("0")).is_ok());

    // container_config refuses to build a config that breaks the policy.
    let mut ctx = context();
    ctx.security.image_user = Some("root".to_owned());
    let err = container_config(&non_root, c, &ctx).expect_err("non-numeric");
    assert!(matches!(err, ConfigError::NonNumericImageUser { .. }));
}

#[test]
fn invalid_security_profiles_are_errors() {
    let p = pod(json!({"containers": [{"name": "app",
        "securityContext": {"seccompProfile": {"type": "Localhost"}}}]}));
    let err = linux_security_context(&p, app(&p), &SecurityContextInputs::default())
        .expect_err("no localhost profile");
    assert!(matches!(
        err,
        ConfigError::SeccompLocalhostProfileMissing { .. }
    ));

    let p = pod(json!({"containers": [{"name": "app",
        "securityContext": {"appArmorProfile": {"type": "Bogus"}}}]}));
    let err = linux_security_context(&p, app(&p), &SecurityContextInputs::default())
        .expect_err("unknown type");
    assert!(
        err.to_string()
            .contains("unknown apparmor profile type: \"Bogus\"")
    );
}

#[test]
fn apparmor_beta_annotation_is_honoured() {
    let mut p = pod(json!({"containers": [{"name": "app"}]}));
    p.metadata.annotations = Some(
        [(
            "container.apparmor.security.beta.kubernetes.io/app".to_owned(),
            "runtime/default".to_owned(),
        )]
        .into_iter()
        .collect(),
    );
    let sc = linux_security_context(&p, app(&p), &SecurityContextInputs::default())
        .expect("security context");
    assert_eq!(
        sc.apparmor.as_ref().map(|a| a.profile_type),
        Some(i32::from(ProfileType::RuntimeDefault))
    );
}

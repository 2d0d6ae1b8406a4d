//! `KubeletConfiguration` files as the kubelet reads them: kubeadm's, the defaults, and every
//! kind of refusal naming its field.

use std::path::Path;
use std::time::Duration;

use ferrolet_agent::config::{
    AuthorizationMode, CgroupDriver, ConfigError, KubeletConfiguration, LoadedConfig, TaintEffect,
};

/// What `kubeadm init` writes to /var/lib/kubelet/config.yaml (v1.33), plus reservations.
const KUBEADM: &str = r#"
apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
cpuManagerReconcilePeriod: 0s
crashLoopBackOff: {}
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMaximumGCAge: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
memorySwap: {}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
kubeReserved:
  cpu: 100m
  memory: 256Mi
systemReserved:
  cpu: 1
  ephemeral-storage: 1Gi
registerWithTaints:
- key: node-role.kubernetes.io/control-plane
  effect: NoSchedule
"#;

fn load(text: &str) -> Result<LoadedConfig, ConfigError> {
    KubeletConfiguration::from_document(text, Path::new("/etc/x.yaml"))
}

fn header() -> String {
    "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n".to_owned()
}

fn reject(body: &str) -> String {
    let err = load(&format!("{}{body}", header())).expect_err(body);
    err.to_string()
}

#[test]
fn kubeadm_config_reads_with_kubelet_defaults() {
    let loaded = load(KUBEADM).expect("kubeadm's config");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(c.cgroup_driver, CgroupDriver::Systemd);
    assert_eq!(
        c.cluster_dns,
        ["10.96.0.10".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(c.cluster_domain, "cluster.local");
    assert_eq!(
        c.authentication.x509.client_ca_file.as_deref(),
        Some(Path::new("/etc/kubernetes/pki/ca.crt"))
    );
    assert!(c.authentication.webhook.enabled);
    assert!(!c.authentication.anonymous.enabled);
    assert_eq!(c.authorization.mode, AuthorizationMode::Webhook);
    // Zero values mean "the kubelet's default".
    assert_eq!(
        c.authentication.webhook.cache_ttl.get(),
        Duration::from_mins(2)
    );
    assert_eq!(
        c.authorization.webhook.cache_authorized_ttl.get(),
        Duration::from_mins(5)
    );
    assert_eq!(
        c.container_runtime_endpoint,
        "unix:///run/containerd/containerd.sock"
    );
    assert_eq!(
        c.node_status_update_frequency.get(),
        Duration::from_secs(10)
    );
    assert_eq!(c.node_status_report_frequency.get(), Duration::from_mins(5));
    assert_eq!(c.sync_frequency.get(), Duration::from_mins(1));
    assert_eq!(c.runtime_request_timeout.get(), Duration::from_mins(2));
    assert!(c.rotate_certificates);
    assert_eq!(
        c.static_pod_path.as_deref(),
        Some(Path::new("/etc/kubernetes/manifests"))
    );
    assert_eq!(c.kube_reserved["cpu"].to_string(), "100m");
    assert_eq!(c.kube_reserved["memory"].to_string(), "256Mi");
    assert_eq!(c.system_reserved["cpu"].to_string(), "1");
    assert_eq!(c.register_with_taints[0].effect, TaintEffect::NoSchedule);
    assert_eq!(c.port, 10250);
}

#[test]
fn defaults_are_the_kubelets() {
    let d = KubeletConfiguration::default();
    let loaded = load(&header()).unwrap();
    assert_eq!(loaded.config, d);
    assert_eq!(d.address.to_string(), "0.0.0.0");
    assert_eq!(d.port, 10250);
    assert_eq!(d.read_only_port, 0);
    assert_eq!(d.healthz_bind_address.to_string(), "127.0.0.1");
    assert_eq!(d.healthz_port, 10248);
    assert_eq!(
        d.container_runtime_endpoint,
        "unix:///run/containerd/containerd.sock"
    );
    assert_eq!(d.image_endpoint(), d.container_runtime_endpoint);
    assert_eq!(d.pod_logs_dir, Path::new("/var/log/pods"));
    assert_eq!(d.max_pods, 110);
    assert_eq!(
        d.node_status_update_frequency.get(),
        Duration::from_secs(10)
    );
    assert_eq!(d.node_status_report_frequency.get(), Duration::from_mins(5));
    assert_eq!(d.node_lease_duration_seconds, 40);
    assert_eq!(d.node_lease_renew_interval(), Duration::from_secs(10));
    assert_eq!(d.cgroup_root, "/");
    assert!(d.cgroups_per_qos);
    assert_eq!(d.cgroup_driver, CgroupDriver::Cgroupfs);
    assert!(d.cluster_dns.is_empty());
    assert_eq!(d.resolv_conf, Path::new("/etc/resolv.conf"));
    assert_eq!(d.sync_frequency.get(), Duration::from_mins(1));
    assert_eq!(d.file_check_frequency.get(), Duration::from_secs(20));
    assert_eq!(d.runtime_request_timeout.get(), Duration::from_mins(2));
    assert_eq!(d.container_log_max_size.to_string(), "10Mi");
    assert_eq!(d.container_log_max_files, 5);
    assert!(d.register_node);
    assert!(d.fail_swap_on);
    assert!(d.serialize_image_pulls);
}

#[test]
fn durations_and_report_frequency_follow_the_update_frequency() {
    let c = load(&format!(
        "{}nodeStatusUpdateFrequency: 1m30s\nsyncFrequency: 500ms\nfileCheckFrequency: 2h\n",
        header()
    ))
    .unwrap()
    .config;
    assert_eq!(
        c.node_status_update_frequency.get(),
        Duration::from_secs(90)
    );
    // Set explicitly, the update frequency is also the report frequency (kubelet defaulting).
    assert_eq!(
        c.node_status_report_frequency.get(),
        Duration::from_secs(90)
    );
    assert_eq!(c.sync_frequency.get(), Duration::from_millis(500));
    assert_eq!(c.file_check_frequency.get(), Duration::from_hours(2));
}

#[test]
fn empty_strings_are_unset() {
    let c = load(&format!(
        "{}staticPodPath: \"\"\nimageServiceEndpoint: \"\"\ntlsCertFile: \"\"\n\
         cgroupRoot: \"\"\nauthentication:\n  x509:\n    clientCAFile: \"\"\n",
        header()
    ))
    .unwrap()
    .config;
    assert_eq!(c.static_pod_path, None);
    assert_eq!(c.image_service_endpoint, None);
    assert_eq!(c.tls_cert_file, None);
    assert_eq!(c.cgroup_root, "/");
    assert_eq!(c.authentication.x509.client_ca_file, None);
}

#[test]
fn json_reads_too() {
    let c = load(
        r#"{"apiVersion":"kubelet.config.k8s.io/v1beta1","kind":"KubeletConfiguration",
            "maxPods":20,"featureGates":{"EventedPLEG":true},"podPidsLimit":4096}"#,
    )
    .unwrap()
    .config;
    assert_eq!(c.max_pods, 20);
    assert!(c.feature_gates["EventedPLEG"]);
    assert_eq!(c.pod_pids_limit, 4096);
}

#[test]
fn load_reads_a_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, format!("{}port: 10251\n", header())).unwrap();
    assert_eq!(
        KubeletConfiguration::load(&path).unwrap().config.port,
        10251
    );
    let missing = dir.path().join("missing.yaml");
    let err = KubeletConfiguration::load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string().starts_with(&format!(
            "kubelet config {}: read failed",
            missing.display()
        )),
        "{err}"
    );
}

#[test]
fn bad_duration_names_the_field() {
    assert_eq!(
        reject("nodeStatusUpdateFrequency: 10 s\n"),
        "kubelet config /etc/x.yaml: field \"nodeStatusUpdateFrequency\": invalid duration \"10 s\""
    );
}

#[test]
fn unknown_fields_are_named_with_their_path() {
    assert_eq!(
        reject("fooBar: 1\n"),
        "kubelet config /etc/x.yaml: unknown field \"fooBar\""
    );
    assert_eq!(
        reject("authentication:\n  x509:\n    clientCaFile: /ca.crt\n"),
        "kubelet config /etc/x.yaml: unknown field \"authentication.x509.clientCaFile\""
    );
    let err = load(&format!("{}fooBar: 1\n", header())).unwrap_err();
    assert_eq!(err.field(), Some("fooBar"));
}

#[test]
fn wrong_types_name_the_field() {
    let cases = [
        ("maxPods: many\n", "maxPods"),
        ("port: [1]\n", "port"),
        ("registerNode: \"yes\"\n", "registerNode"),
        ("clusterDNS:\n- not-an-ip\n", "clusterDNS[0]"),
        ("kubeReserved:\n  memory: 1 Gi\n", "kubeReserved.memory"),
        ("cgroupDriver: upstart\n", "cgroupDriver"),
        ("authorization:\n  mode: AlwaysDeny\n", "authorization.mode"),
        (
            "registerWithTaints:\n- key: a\n  effect: Sometimes\n",
            "registerWithTaints[0].effect",
        ),
        ("featureGates:\n  A: maybe\n", "featureGates.A"),
        ("containerLogMaxSize: lots\n", "containerLogMaxSize"),
    ];
    for (body, field) in cases {
        let message = reject(body);
        assert!(
            message.starts_with(&format!("kubelet config /etc/x.yaml: field \"{field}\": ")),
            "{body:?}: {message}"
        );
    }
}

#[test]
fn invalid_values_name_the_field() {
    let cases = [
        ("maxPods: -1\n", "maxPods", "must not be negative, got -1"),
        (
            "port: 70000\n",
            "port",
            "invalid port 70000: must be between 1 and 65535",
        ),
        ("healthzPort: -2\n", "healthzPort", "invalid port -2"),
        (
            "readOnlyPort: 65536\n",
            "readOnlyPort",
            "invalid port 65536",
        ),
        (
            "nodeLeaseDurationSeconds: -5\n",
            "nodeLeaseDurationSeconds",
            "must be positive",
        ),
        (
            "containerLogMaxFiles: 1\n",
            "containerLogMaxFiles",
            "must be greater than 1",
        ),
        ("podPidsLimit: -2\n", "podPidsLimit", "must be -1"),
        (
            "containerRuntimeEndpoint: tcp://localhost:3735\n",
            "containerRuntimeEndpoint",
            "scheme \"tcp\" is not supported",
        ),
        (
            "imageServiceEndpoint: relative.sock\n",
            "imageServiceEndpoint",
            "must be absolute",
        ),
        (
            "podLogsDir: logs\n",
            "podLogsDir",
            "is not an absolute path",
        ),
        (
            "kubeReserved:\n  gpu: 1\n",
            "kubeReserved.gpu",
            "unsupported resource",
        ),
        (
            "systemReserved:\n  cpu: -1\n",
            "systemReserved.cpu",
            "must not be negative",
        ),
        ("tlsCertFile: /a.crt\n", "tlsPrivateKeyFile", "go together"),
    ];
    for (body, field, detail) in cases {
        let message = reject(body);
        assert!(
            message.starts_with(&format!("kubelet config /etc/x.yaml: field \"{field}\": ")),
            "{body:?}: {message}"
        );
        assert!(message.contains(detail), "{body:?}: {message}");
    }
}

#[test]
fn api_version_and_kind_must_match() {
    let wrong_version =
        load("apiVersion: kubelet.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n")
            .unwrap_err()
            .to_string();
    assert!(
        wrong_version.starts_with("kubelet config /etc/x.yaml: field \"apiVersion\": unsupported value \"kubelet.config.k8s.io/v1alpha1\""),
        "{wrong_version}"
    );
    let wrong_kind =
        load("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeProxyConfiguration\n")
            .unwrap_err()
            .to_string();
    assert!(wrong_kind.contains("field \"kind\""), "{wrong_kind}");
    let missing = load("port: 1\n").unwrap_err();
    assert_eq!(missing.field(), Some("apiVersion"));
    assert!(matches!(
        load("- a\n").unwrap_err(),
        ConfigError::Syntax { .. }
    ));
    assert!(matches!(
        load("a: [\n").unwrap_err(),
        ConfigError::Syntax { .. }
    ));
}

#[test]
fn ignored_settings_are_warned_about() {
    let loaded = load(&format!(
        "{}evictionHard:\n  memory.available: 200Mi\nshutdownGracePeriod: 30s\n\
         cpuManagerPolicy: static\nimageGCHighThresholdPercent: 0\n",
        header()
    ))
    .unwrap();
    assert_eq!(loaded.config.eviction_hard["memory.available"], "200Mi");
    assert_eq!(
        loaded.config.shutdown_grace_period.get(),
        Duration::from_secs(30)
    );
    let warnings = loaded.warnings.join("\n");
    assert_eq!(loaded.warnings.len(), 3, "{warnings}");
    assert!(
        warnings.contains("field \"evictionHard\" is ignored"),
        "{warnings}"
    );
    assert!(
        warnings.contains("field \"shutdownGracePeriod\" is ignored"),
        "{warnings}"
    );
    assert!(
        warnings.contains("field \"cpuManagerPolicy\" is not supported by ferrolet and is ignored"),
        "{warnings}"
    );
}

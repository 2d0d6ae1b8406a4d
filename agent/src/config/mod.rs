//! The kubelet's configuration file: `KubeletConfiguration` (`kubelet.config.k8s.io/v1beta1`).
//!
//! A file written for the kubelet (by kubeadm, say) is read here as the kubelet reads it: YAML
//! or JSON, the kubelet's defaults for what is missing or left at its zero value, strict about
//! names. A field ferrolet does not know is an error; a field the kubelet knows but ferrolet
//! does not act on is accepted and, when it asks for something, reported in
//! [`LoadedConfig::warnings`]. Every error names the field it is about.

mod duration;
mod load;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::quantity::Quantity;

pub use duration::{DurationError, GoDuration, format_go_duration, parse_go_duration};

/// The `apiVersion` of the configuration file.
pub const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
/// The `kind` of the configuration file.
pub const KIND: &str = "KubeletConfiguration";

/// The kubelet's settings, as the fields of `KubeletConfiguration` that ferrolet applies.
///
/// [`Default`] gives the kubelet's defaults; [`KubeletConfiguration::load`] reads a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "the fields are the kubelet file format's booleans, named as it names them"
)]
pub struct KubeletConfiguration {
    pub api_version: String,
    pub kind: String,
    /// The address the kubelet's HTTPS server listens on.
    pub address: IpAddr,
    /// The kubelet's HTTPS port (`daemonEndpoints.kubeletEndpoint.Port` in the node status).
    pub port: i32,
    /// The read-only HTTP port; 0 disables it.
    pub read_only_port: i32,
    pub healthz_bind_address: IpAddr,
    /// The `/healthz` port; 0 disables it.
    pub healthz_port: i32,
    /// A directory of static pod manifests.
    pub static_pod_path: Option<PathBuf>,
    /// The CRI runtime service, `unix:///path/to.sock`.
    pub container_runtime_endpoint: String,
    /// The CRI image service; the runtime endpoint when unset.
    pub image_service_endpoint: Option<String>,
    /// Where container logs go, `<podLogsDir>/<namespace>_<name>_<uid>/<container>/N.log`.
    pub pod_logs_dir: PathBuf,
    /// The pod capacity of the node.
    pub max_pods: i32,
    /// The PID limit of each pod; -1 for none.
    pub pod_pids_limit: i64,
    /// How often the node status is computed (and posted when it changed).
    pub node_status_update_frequency: GoDuration,
    /// How often the node status is posted when it did not change.
    pub node_status_report_frequency: GoDuration,
    /// The duration of the node's Lease; it is renewed every quarter of it.
    pub node_lease_duration_seconds: i32,
    pub cgroup_root: String,
    #[serde(rename = "cgroupsPerQOS")]
    pub cgroups_per_qos: bool,
    pub cgroup_driver: CgroupDriver,
    /// Nameservers given to pods with `dnsPolicy: ClusterFirst`.
    #[serde(rename = "clusterDNS")]
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    /// The host's resolver configuration, the base of pods' `/etc/resolv.conf`; empty
    /// disables it.
    pub resolv_conf: PathBuf,
    pub serialize_image_pulls: bool,
    pub image_pull_progress_deadline: Option<GoDuration>,
    /// How often running pods are synced.
    pub sync_frequency: GoDuration,
    /// How often the static pod directory is read.
    pub file_check_frequency: GoDuration,
    /// The deadline of CRI calls other than long-running ones.
    pub runtime_request_timeout: GoDuration,
    pub container_log_max_size: Quantity,
    pub container_log_max_files: i32,
    pub authentication: KubeletAuthentication,
    pub authorization: KubeletAuthorization,
    #[serde(rename = "tlsCertFile")]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(rename = "tlsPrivateKeyFile")]
    pub tls_private_key_file: Option<PathBuf>,
    pub rotate_certificates: bool,
    #[serde(rename = "serverTLSBootstrap")]
    pub server_tls_bootstrap: bool,
    /// Whether the kubelet creates its Node object.
    pub register_node: bool,
    /// Taints the Node is created with.
    pub register_with_taints: Vec<RegisterTaint>,
    /// Labels the Node is created with (the kubelet's `--node-labels`).
    pub node_labels: BTreeMap<String, String>,
    /// Resources set aside for Kubernetes daemons, subtracted from allocatable.
    pub kube_reserved: BTreeMap<String, Quantity>,
    /// Resources set aside for the operating system, subtracted from allocatable.
    pub system_reserved: BTreeMap<String, Quantity>,
    /// Accepted for compatibility; ferrolet does not evict (a warning says so).
    pub eviction_hard: BTreeMap<String, String>,
    pub feature_gates: BTreeMap<String, bool>,
    pub fail_swap_on: bool,
    /// Accepted for compatibility; ferrolet has no graceful node shutdown yet.
    pub shutdown_grace_period: GoDuration,
}

/// `cgroupDriver`: who manages the pods' cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    #[default]
    Cgroupfs,
    Systemd,
}

/// `authentication`: how the kubelet's HTTPS server authenticates callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubeletAuthentication {
    pub x509: X509Authentication,
    pub webhook: WebhookAuthentication,
    pub anonymous: AnonymousAuthentication,
}

/// `authentication.x509`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct X509Authentication {
    /// Client certificates signed by this CA are authenticated by their CN and O.
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: Option<PathBuf>,
}

/// `authentication.webhook`: bearer tokens checked with a `TokenReview`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WebhookAuthentication {
    pub enabled: bool,
    #[serde(rename = "cacheTTL")]
    pub cache_ttl: GoDuration,
}

impl Default for WebhookAuthentication {
    fn default() -> Self {
        WebhookAuthentication {
            enabled: true,
            cache_ttl: GoDuration::from_secs(120),
        }
    }
}

/// `authentication.anonymous`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AnonymousAuthentication {
    pub enabled: bool,
}

/// `authorization`: how the kubelet's HTTPS server authorizes callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubeletAuthorization {
    pub mode: AuthorizationMode,
    pub webhook: WebhookAuthorization,
}

/// `authorization.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum AuthorizationMode {
    AlwaysAllow,
    /// A `SubjectAccessReview` per request.
    #[default]
    Webhook,
}

/// `authorization.webhook`: how long `SubjectAccessReview` answers are cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WebhookAuthorization {
    #[serde(rename = "cacheAuthorizedTTL")]
    pub cache_authorized_ttl: GoDuration,
    #[serde(rename = "cacheUnauthorizedTTL")]
    pub cache_unauthorized_ttl: GoDuration,
}

impl Default for WebhookAuthorization {
    fn default() -> Self {
        WebhookAuthorization {
            cache_authorized_ttl: GoDuration::from_secs(300),
            cache_unauthorized_ttl: GoDuration::from_secs(30),
        }
    }
}

/// One of `registerWithTaints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterTaint {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    pub effect: TaintEffect,
}

/// The effect of a taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    /// The API spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

impl Default for KubeletConfiguration {
    /// The kubelet's defaults (`SetDefaults_KubeletConfiguration`).
    fn default() -> Self {
        KubeletConfiguration {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 10250,
            read_only_port: 0,
            healthz_bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            healthz_port: 10248,
            static_pod_path: None,
            container_runtime_endpoint: DEFAULT_RUNTIME_ENDPOINT.to_owned(),
            image_service_endpoint: None,
            pod_logs_dir: PathBuf::from("/var/log/pods"),
            max_pods: 110,
            pod_pids_limit: -1,
            node_status_update_frequency: GoDuration::from_secs(10),
            node_status_report_frequency: GoDuration::from_secs(300),
            node_lease_duration_seconds: 40,
            cgroup_root: "/".to_owned(),
            cgroups_per_qos: true,
            cgroup_driver: CgroupDriver::Cgroupfs,
            cluster_dns: Vec::new(),
            cluster_domain: String::new(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            serialize_image_pulls: true,
            image_pull_progress_deadline: None,
            sync_frequency: GoDuration::from_secs(60),
            file_check_frequency: GoDuration::from_secs(20),
            runtime_request_timeout: GoDuration::from_secs(120),
            container_log_max_size: Quantity::from_bytes(10 * 1024 * 1024),
            container_log_max_files: 5,
            authentication: KubeletAuthentication::default(),
            authorization: KubeletAuthorization::default(),
            tls_cert_file: None,
            tls_private_key_file: None,
            rotate_certificates: false,
            server_tls_bootstrap: false,
            register_node: true,
            register_with_taints: Vec::new(),
            node_labels: BTreeMap::new(),
            kube_reserved: BTreeMap::new(),
            system_reserved: BTreeMap::new(),
            eviction_hard: BTreeMap::new(),
            feature_gates: BTreeMap::new(),
            fail_swap_on: true,
            shutdown_grace_period: GoDuration::default(),
        }
    }
}

/// The runtime endpoint when none is configured: containerd's default socket.
pub const DEFAULT_RUNTIME_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";

impl KubeletConfiguration {
    /// The image service endpoint: `imageServiceEndpoint`, or the runtime's when unset.
    #[must_use]
    pub fn image_endpoint(&self) -> &str {
        self.image_service_endpoint
            .as_deref()
            .unwrap_or(&self.container_runtime_endpoint)
    }

    /// How often the node Lease is renewed: a quarter of its duration, as the kubelet does.
    #[must_use]
    pub fn node_lease_renew_interval(&self) -> std::time::Duration {
        let secs = u64::try_from(self.node_lease_duration_seconds).unwrap_or(40);
        std::time::Duration::from_secs(secs) / 4
    }
}

/// A configuration as loaded from a file, with what was accepted but not applied.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    pub config: KubeletConfiguration,
    /// One line per setting that ferrolet accepted and ignores, naming the field.
    pub warnings: Vec<String>,
}

/// A configuration file that could not be used; every variant names the file, and those
/// about content name the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("kubelet config {}: read failed: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML or JSON, or not a mapping.
    #[error("kubelet config {}: not a valid YAML or JSON document: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    /// A field that `KubeletConfiguration` does not have.
    #[error("kubelet config {}: unknown field {field:?}", path.display())]
    UnknownField { path: PathBuf, field: String },
    /// A field of the wrong type or with a value that is not allowed.
    #[error("kubelet config {}: field {field:?}: {message}", path.display())]
    InvalidField {
        path: PathBuf,
        field: String,
        message: String,
    },
}

impl ConfigError {
    /// The field the error is about, if it is about one.
    #[must_use]
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownField { field, .. } | ConfigError::InvalidField { field, .. } => {
                Some(field)
            }
            ConfigError::Read { .. } | ConfigError::Syntax { .. } => None,
        }
    }
}

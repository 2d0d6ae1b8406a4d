//! Pure builders from a Kubernetes `Pod` to CRI `runtime.v1` requests, as the kubelet's
//! `pkg/kubelet/kuberuntime` package (with the helpers it calls in `kubelet_pods.go`,
//! `network/dns`, `cm` and `qos`) computes them.
//!
//! Nothing here does I/O: every input a kubelet would read from the node, the runtime or the
//! API server (resolv.conf, the image's user, `ConfigMaps` and Secrets, the node's allocatable
//! and memory capacity, the mounts the volume manager prepared) is a parameter. That keeps the
//! translation testable against upstream's documented outputs and lets the pod worker decide
//! when to fetch what.
//!
//! | module | upstream |
//! | --- | --- |
//! | [`sandbox`] | `kuberuntime_sandbox.go`, `kuberuntime_sandbox_linux.go`, `util/util.go` |
//! | [`dns`] | `network/dns/dns.go` |
//! | [`hosts`] | `kubelet_pods.go` (`managedHostsFileContent`, `GeneratePodHostNameAndDomain`) |
//! | [`env`](mod@env) | `kubelet_pods.go` (`makeEnvironmentVariables`, `podFieldSelectorRuntimeValue`); the downward API itself is [`crate::downward`] |
//! | [`expansion`] | `third_party/forked/golang/expansion` |
//! | [`container`] | `kuberuntime_container.go`, `helpers.go` |
//! | [`labels`] | `labels.go`, `container/helpers.go` (`HashContainer`) |
//! | [`resources`] | `kuberuntime_container_linux.go`, `helpers_linux.go`, `qos/policy.go` |
//! | [`security`] | `security_context.go`, `security_context_others.go`, `pkg/securitycontext` |
//! | [`qos`] | `apis/core/v1/helper/qos`, `cm/pod_container_manager_linux.go` |

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec};

pub mod container;
pub mod dns;
pub mod env;
pub mod expansion;
pub mod hosts;
pub mod labels;
pub mod qos;
pub mod resources;
pub mod sandbox;
pub mod security;

pub use container::{ContainerContext, container_config};
pub use dns::{DnsContext, dns_config};
pub use env::{EnvContext, EnvError, EnvSource, container_env};
pub use hosts::{EtcHostsContext, hosts_file, manages_etc_hosts};
pub use qos::{CgroupDriver, QosClass, pod_cgroup_parent, qos_class};
pub use resources::{ResourceContext, linux_container_resources};
pub use sandbox::{SandboxContext, pod_sandbox_config};
pub use security::{SecurityContextInputs, linux_security_context, verify_run_as_non_root};

/// The kubelet's default root for container logs (`KubeletConfiguration.podLogsDirectory`).
pub const DEFAULT_POD_LOGS_DIR: &str = "/var/log/pods";

/// The kubelet's default root directory (`--root-dir`).
pub const DEFAULT_KUBELET_ROOT_DIR: &str = "/var/lib/kubelet";

/// Errors building CRI configuration from a pod; each names the pod and, where it applies,
/// the container and the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The pod object has no `spec`.
    #[error("pod {pod} has no spec")]
    MissingSpec { pod: String },

    /// A resource quantity in the pod could not be parsed.
    #[error("pod {pod}: invalid quantity {value:?} in {field}: {reason}")]
    InvalidQuantity {
        pod: String,
        field: String,
        value: String,
        reason: crate::quantity::QuantityError,
    },

    /// `spec.hostname` is not a DNS-1123 label (upstream `GeneratePodHostNameAndDomain`).
    #[error("pod Hostname {hostname:?} is not a valid DNS label: {reason}")]
    InvalidHostname { hostname: String, reason: String },

    /// `spec.subdomain` is not a DNS-1123 label.
    #[error("pod Subdomain {subdomain:?} is not a valid DNS label: {reason}")]
    InvalidSubdomain { subdomain: String, reason: String },

    /// Truncating a long pod hostname left nothing usable.
    #[error("hostname for pod {pod:?} was invalid: {hostname:?}")]
    EmptyTruncatedHostname { pod: String, hostname: String },

    /// `setHostnameAsFQDN` produced a name longer than the kernel's nodename field.
    #[error(
        "failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long \
         (64 characters is the max, {len} characters requested)"
    )]
    FqdnTooLong { fqdn: String, len: usize },

    /// The node's resolv.conf could not be parsed.
    #[error("parsing the node's resolv.conf for pod {pod}: {reason}")]
    ResolvConf { pod: String, reason: String },

    /// `runAsNonRoot` is set but `runAsUser` is 0.
    #[error("container's runAsUser breaks non-root policy (pod: {pod:?}, container: {container})")]
    RunAsUserIsRoot { pod: String, container: String },

    /// `runAsNonRoot` is set and the image runs as uid 0 (or names no user).
    #[error(
        "container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {container})"
    )]
    ImageRunsAsRoot { pod: String, container: String },

    /// `runAsNonRoot` is set and the image names a user that is not numeric.
    #[error(
        "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user \
         is non-root (pod: {pod:?}, container: {container})"
    )]
    NonNumericImageUser {
        user: String,
        pod: String,
        container: String,
    },

    /// `supplementalGroupsPolicy` has a value CRI does not know.
    #[error("pod {pod}: unsupported supplementalGroupsPolicy: {policy}")]
    UnsupportedSupplementalGroupsPolicy { pod: String, policy: String },

    /// A seccomp profile of type Localhost names no profile.
    #[error(
        "pod {pod}, container {container}: localhostProfile must be set if seccompProfile type is \
         Localhost"
    )]
    SeccompLocalhostProfileMissing { pod: String, container: String },

    /// An `AppArmor` profile of type Localhost names no profile.
    #[error("pod {pod}, container {container}: missing localhost apparmor profile name")]
    AppArmorLocalhostProfileMissing { pod: String, container: String },

    /// An `AppArmor` profile type the kubelet does not know.
    #[error("pod {pod}, container {container}: unknown apparmor profile type: {profile_type:?}")]
    UnknownAppArmorProfileType {
        pod: String,
        container: String,
        profile_type: String,
    },
}

/// A non-fatal finding the kubelet reports as a Warning event on the pod (`reason` is the
/// event reason upstream uses) while still going ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The event reason, e.g. `MissingClusterDNS` or `DNSConfigForming`.
    pub reason: &'static str,
    /// The event message.
    pub message: String,
}

/// A built value together with the warnings found while building it.
#[derive(Debug, Clone, PartialEq)]
pub struct WithWarnings<T> {
    /// The value.
    pub value: T,
    /// Warnings the caller should record as events on the pod.
    pub warnings: Vec<Warning>,
}

/// The pod's name, as `format.Pod` writes it in kubelet messages: `name_namespace(uid)`.
#[must_use]
pub fn format_pod(pod: &Pod) -> String {
    format!("{}_{}({})", pod_name(pod), pod_namespace(pod), pod_uid(pod))
}

pub(crate) fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

pub(crate) fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or_default()
}

pub(crate) fn pod_uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

pub(crate) fn pod_spec(pod: &Pod) -> Result<&PodSpec, ConfigError> {
    pod.spec.as_ref().ok_or_else(|| ConfigError::MissingSpec {
        pod: format_pod(pod),
    })
}

/// Converts an ordered map into the `HashMap` prost generates for CRI maps.
pub(crate) fn to_hash_map(
    map: BTreeMap<String, String>,
) -> std::collections::HashMap<String, String> {
    map.into_iter().collect()
}

//! The CRI `PodSandboxConfig` for a pod (`generatePodSandboxConfig`,
//! `generatePodSandboxLinuxConfig`, `applySandboxResources`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolet_cri::api::{
    Int64Value, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, PodSandboxConfig,
    PodSandboxMetadata, PortMapping, Protocol, SecurityProfile, security_profile::ProfileType,
};
use k8s_openapi::api::core::v1::{Container, Pod};

use super::container::pod_log_directory;
use super::dns::{DnsContext, dns_config};
use super::hosts::{nodename_for_kernel, pod_hostname_and_domain};
use super::labels::{pod_annotations, pod_labels};
use super::resources::{ResourceContext, sandbox_resources};
use super::security::{
    has_privileged_container, namespace_options, selinux_option, supplemental_groups_policy,
};
use super::{
    ConfigError, DEFAULT_POD_LOGS_DIR, WithWarnings, pod_name, pod_namespace, pod_spec, pod_uid,
    to_hash_map,
};

/// What the sandbox configuration needs besides the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxContext {
    /// The sandbox attempt: 0 for the first, one more for each re-creation.
    pub attempt: u32,
    /// The root of pod log directories (default `/var/log/pods`).
    pub pod_logs_dir: String,
    /// The pod's cgroup, from [`super::pod_cgroup_parent`].
    pub cgroup_parent: String,
    /// The kubelet's DNS settings and the node's resolv.conf.
    pub dns: DnsContext,
    /// Kubelet settings for the sandbox's aggregate resources and overhead.
    pub resources: ResourceContext,
    /// Groups the pod's volumes require (`GetExtraSupplementalGroupsForPod`).
    pub extra_supplemental_groups: Vec<i64>,
}

impl Default for SandboxContext {
    fn default() -> Self {
        Self {
            attempt: 0,
            pod_logs_dir: DEFAULT_POD_LOGS_DIR.to_owned(),
            cgroup_parent: String::new(),
            dns: DnsContext::default(),
            resources: ResourceContext::new(0),
            extra_supplemental_groups: Vec::new(),
        }
    }
}

/// The `PodSandboxConfig` for `pod`: metadata, hostname (not for hostNetwork pods), log
/// directory, DNS, port mappings of all regular containers' ports, labels and annotations,
/// and the Linux settings (cgroup parent, namespaces, sandbox security context, sysctls,
/// overhead and aggregate resources). DNS warnings are returned for the caller to record.
pub fn pod_sandbox_config(
    pod: &Pod,
    ctx: &SandboxContext,
) -> Result<WithWarnings<PodSandboxConfig>, ConfigError> {
    let spec = pod_spec(pod)?;
    let dns = dns_config(pod, &ctx.dns)?;
    let hostname = if spec.host_network.unwrap_or(false) {
        String::new()
    } else {
        let (hostname, domain) = pod_hostname_and_domain(pod, &ctx.dns.cluster_domain)?;
        nodename_for_kernel(
            &hostname,
            &domain,
            spec.set_hostname_as_fqdn.unwrap_or(false),
        )?
    };
    let port_mappings = spec.containers.iter().flat_map(port_mappings).collect();
    let (overhead, resources) = sandbox_resources(pod, &ctx.resources)?;
    let linux = LinuxPodSandboxConfig {
        cgroup_parent: ctx.cgroup_parent.clone(),
        security_context: Some(sandbox_security_context(pod, ctx)?),
        sysctls: spec
            .security_context
            .iter()
            .flat_map(|sc| sc.sysctls.iter().flatten())
            .map(|s| (s.name.clone(), s.value.clone()))
            .collect(),
        overhead: Some(overhead),
        resources: Some(resources),
    };
    let config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: pod_name(pod).to_owned(),
            uid: pod_uid(pod).to_owned(),
            namespace: pod_namespace(pod).to_owned(),
            attempt: ctx.attempt,
        }),
        hostname,
        log_directory: pod_log_directory(
            &ctx.pod_logs_dir,
            pod_namespace(pod),
            pod_name(pod),
            pod_uid(pod),
        ),
        dns_config: Some(dns.value),
        port_mappings,
        labels: to_hash_map(pod_labels(pod)),
        annotations: to_hash_map(pod_annotations(pod)),
        linux: Some(linux),
        windows: None,
    };
    Ok(WithWarnings {
        value: config,
        warnings: dns.warnings,
    })
}

/// The sandbox's security context: privileged if any container is, seccomp `RuntimeDefault`
/// (the pause process never needs more), the pod's user, group, supplemental groups
/// (`fsGroup`, volume groups, `supplementalGroups`), `SELinux` options and namespace modes.
fn sandbox_security_context(
    pod: &Pod,
    ctx: &SandboxContext,
) -> Result<LinuxSandboxSecurityContext, ConfigError> {
    let mut sc = LinuxSandboxSecurityContext {
        privileged: has_privileged_container(pod),
        seccomp: Some(SecurityProfile {
            profile_type: ProfileType::RuntimeDefault.into(),
            localhost_ref: String::new(),
        }),
        namespace_options: Some(namespace_options(pod)),
        ..LinuxSandboxSecurityContext::default()
    };
    if let Some(pod_sc) = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()) {
        sc.run_as_user = pod_sc.run_as_user.map(|value| Int64Value { value });
        sc.run_as_group = pod_sc.run_as_group.map(|value| Int64Value { value });
        sc.supplemental_groups.extend(pod_sc.fs_group);
        sc.supplemental_groups
            .extend_from_slice(&ctx.extra_supplemental_groups);
        sc.supplemental_groups
            .extend(pod_sc.supplemental_groups.iter().flatten());
        sc.supplemental_groups_policy = supplemental_groups_policy(pod)?;
        sc.selinux_options = selinux_option(pod_sc.se_linux_options.as_ref());
    }
    Ok(sc)
}

/// The container's ports as CRI port mappings (`MakePortMappings`): every port, with or
/// without `hostPort` (the runtime's CNI portmap plugin acts only on those with one); a port
/// repeated under the same name, or with the same family, protocol, host IP and ports, is
/// kept once.
#[must_use]
pub fn port_mappings(container: &Container) -> Vec<PortMapping> {
    let mut seen = BTreeSet::new();
    let mut mappings = Vec::new();
    for port in container.ports.iter().flatten() {
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        let host_ip = port.host_ip.clone().unwrap_or_default();
        let host_port = port.host_port.unwrap_or(0);
        let key = if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            name.to_owned()
        } else {
            let family = match host_ip.parse::<IpAddr>() {
                _ if host_ip.is_empty() => "any",
                Ok(ip) if ip.is_ipv6() => "v6",
                _ => "v4",
            };
            format!(
                "{family}-{protocol}-{host_ip}:{}:{host_port}",
                port.container_port
            )
        };
        if !seen.insert(key) {
            continue;
        }
        let protocol = match protocol {
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            _ => Protocol::Tcp,
        };
        mappings.push(PortMapping {
            protocol: protocol.into(),
            container_port: port.container_port,
            host_port,
            host_ip,
        });
    }
    mappings
}

//! The pod's hostname and the kubelet-managed `/etc/hosts` (`kubelet_pods.go`:
//! `GeneratePodHostNameAndDomain`, `GetNodenameForKernel`, `managedHostsFileContent`,
//! `nodeHostsFileContent`, `makeMounts`).

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{Container, HostAlias, Pod};

use super::{ConfigError, pod_name, pod_namespace, pod_spec};

/// Where the managed hosts file is mounted in containers.
pub const ETC_HOSTS_PATH: &str = "/etc/hosts";

const MANAGED_HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n";
const MANAGED_HOSTS_HEADER_WITH_HOST_NETWORK: &str =
    "# Kubernetes-managed hosts file (host network).\n";

/// Longest hostname the kernel keeps (64 bytes with the terminating NUL).
const HOSTNAME_MAX_LEN: usize = 63;
/// Longest FQDN that fits the kernel's nodename field.
const FQDN_MAX_LEN: usize = 64;

/// What the hosts file needs besides the pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcHostsContext {
    /// The pod's IPs (primary first), from the sandbox status.
    pub pod_ips: Vec<String>,
    /// `--cluster-domain`, for the FQDN of pods with a subdomain.
    pub cluster_domain: String,
    /// The node's own `/etc/hosts`, which hostNetwork pods see (plus their host aliases).
    pub node_hosts_file: String,
}

/// The pod's hostname and, when `spec.subdomain` is set, its domain
/// `<subdomain>.<namespace>.svc.<cluster domain>`.
///
/// The hostname is `spec.hostname` or the pod name, cut to 63 characters without a trailing
/// `-` or `.`; `spec.hostname` and `spec.subdomain` must be DNS-1123 labels.
pub fn pod_hostname_and_domain(
    pod: &Pod,
    cluster_domain: &str,
) -> Result<(String, String), ConfigError> {
    let spec = pod_spec(pod)?;
    let mut hostname = pod_name(pod).to_owned();
    if let Some(requested) = spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        dns1123_label(requested).map_err(|reason| ConfigError::InvalidHostname {
            hostname: requested.to_owned(),
            reason,
        })?;
        requested.clone_into(&mut hostname);
    }
    if hostname.len() > HOSTNAME_MAX_LEN {
        // Pod names are ASCII once validated; stay on a char boundary regardless.
        let mut end = HOSTNAME_MAX_LEN;
        while !hostname.is_char_boundary(end) {
            end -= 1;
        }
        // Nor may it end with '-' or '.'.
        let len = hostname[..end].trim_end_matches(['-', '.']).len();
        if len == 0 {
            return Err(ConfigError::EmptyTruncatedHostname {
                pod: pod_name(pod).to_owned(),
                hostname,
            });
        }
        hostname.truncate(len);
    }
    let mut domain = String::new();
    if let Some(subdomain) = spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
        dns1123_label(subdomain).map_err(|reason| ConfigError::InvalidSubdomain {
            subdomain: subdomain.to_owned(),
            reason,
        })?;
        domain = format!("{subdomain}.{}.svc.{cluster_domain}", pod_namespace(pod));
    }
    Ok((hostname, domain))
}

/// The name the sandbox's UTS namespace gets (`GetNodenameForKernel`): the hostname, or with
/// `setHostnameAsFQDN` and a domain, `hostname.domain` (at most 64 characters).
pub fn nodename_for_kernel(
    hostname: &str,
    domain: &str,
    set_hostname_as_fqdn: bool,
) -> Result<String, ConfigError> {
    if domain.is_empty() || !set_hostname_as_fqdn {
        return Ok(hostname.to_owned());
    }
    let fqdn = format!("{hostname}.{domain}");
    if fqdn.len() > FQDN_MAX_LEN {
        let len = fqdn.len();
        return Err(ConfigError::FqdnTooLong { fqdn, len });
    }
    Ok(fqdn)
}

/// Checks a DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn dns1123_label(value: &str) -> Result<(), String> {
    if value.len() > HOSTNAME_MAX_LEN {
        return Err(format!(
            "must be no more than {HOSTNAME_MAX_LEN} characters"
        ));
    }
    let bytes = value.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let valid = bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-');
    if valid {
        Ok(())
    } else {
        Err(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
             '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or \
             '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                .to_owned(),
        )
    }
}

/// The contents of the pod's managed `/etc/hosts`, byte for byte as the kubelet writes it:
/// the header, the localhost entries, one line per pod IP (`ip\tfqdn\thostname` when the pod
/// has a subdomain, else `ip\thostname`) and the `spec.hostAliases` section. A hostNetwork
/// pod gets the node's hosts file under its own header, plus its host aliases.
pub fn hosts_file(pod: &Pod, ctx: &EtcHostsContext) -> Result<String, ConfigError> {
    let spec = pod_spec(pod)?;
    let aliases = spec.host_aliases.as_deref().unwrap_or_default();
    let mut out = String::new();
    if spec.host_network.unwrap_or(false) {
        out.push_str(MANAGED_HOSTS_HEADER_WITH_HOST_NETWORK);
        out.push_str(&ctx.node_hosts_file);
        out.push_str(&host_alias_entries(aliases));
        return Ok(out);
    }
    let (hostname, domain) = pod_hostname_and_domain(pod, &ctx.cluster_domain)?;
    out.push_str(MANAGED_HOSTS_HEADER);
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    for ip in &ctx.pod_ips {
        if domain.is_empty() {
            let _ = writeln!(out, "{ip}\t{hostname}");
        } else {
            let _ = writeln!(out, "{ip}\t{hostname}.{domain}\t{hostname}");
        }
    }
    out.push_str(&host_alias_entries(aliases));
    Ok(out)
}

fn host_alias_entries(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
        let _ = writeln!(out, "{}\t{names}", alias.ip);
    }
    out
}

/// Whether the kubelet bind-mounts its managed hosts file into `container`: once the pod has
/// an IP (it has none while its sandbox is being created), unless the container mounts a
/// volume at `/etc/hosts` itself. hostNetwork pods get one too, carrying the node's entries.
#[must_use]
pub fn manages_etc_hosts(container: &Container, pod_ips: &[String]) -> bool {
    !pod_ips.is_empty()
        && !container
            .volume_mounts
            .iter()
            .flatten()
            .any(|mount| mount.mount_path == ETC_HOSTS_PATH)
}

/// The host path of the pod's managed hosts file: `<kubelet root>/pods/<uid>/etc-hosts`.
#[must_use]
pub fn etc_hosts_host_path(kubelet_root_dir: &str, pod_uid: &str) -> String {
    format!(
        "{}/pods/{pod_uid}/etc-hosts",
        kubelet_root_dir.trim_end_matches('/')
    )
}

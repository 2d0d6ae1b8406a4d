//! The pod's resolver configuration (`pkg/kubelet/network/dns/dns.go`, `GetPodDNS`).

use std::net::IpAddr;

use ferrolet_cri::api::DnsConfig;
use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

use super::{ConfigError, Warning, WithWarnings, format_pod, pod_namespace, pod_spec};

/// At most this many nameservers reach resolv.conf (glibc's `MAXNS`).
pub const MAX_DNS_NAMESERVERS: usize = 3;
/// At most this many search domains (`validation.MaxDNSSearchPaths`).
pub const MAX_DNS_SEARCH_PATHS: usize = 32;
/// At most this many characters in the search line (`validation.MaxDNSSearchListChars`).
pub const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;
/// Longest search domain glibc copes with (`DNS1123SubdomainMaxLength`).
const MAX_SEARCH_DOMAIN_LEN: usize = 253;

/// The options a `ClusterFirst` pod gets.
pub const DEFAULT_DNS_OPTIONS: &[&str] = &["ndots:5"];

/// The kubelet's DNS settings and the node's resolver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsContext {
    /// `--cluster-dns`: the cluster DNS service IPs; empty when the kubelet has none.
    pub cluster_dns: Vec<String>,
    /// `--cluster-domain` (e.g. `cluster.local`); empty for none.
    pub cluster_domain: String,
    /// The contents of the file named by `--resolv-conf` (usually `/etc/resolv.conf`), or
    /// `None` when the kubelet runs with `--resolv-conf=""` (host DNS disabled).
    pub host_resolv_conf: Option<String>,
    /// The node's IPs; only consulted with `--resolv-conf=""`, to pick a loopback nameserver
    /// of the right family.
    pub node_ips: Vec<String>,
}

/// How the pod resolves names, from `spec.dnsPolicy` and `spec.hostNetwork`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodDnsType {
    Cluster,
    Host,
    None,
}

/// The `DnsConfig` of the pod's sandbox.
///
/// - `ClusterFirst` (default; `Default` behaviour for hostNetwork pods) and
///   `ClusterFirstWithHostNet`: nameservers = cluster DNS, searches = `<ns>.svc.<domain>`,
///   `svc.<domain>`, `<domain>` then the host's, options `ndots:5`. Without cluster DNS the
///   kubelet falls back to `Default` and warns (`MissingClusterDNS`).
/// - `Default`: the host's resolv.conf.
/// - `None`: nothing but `spec.dnsConfig`.
///
/// `spec.dnsConfig` is then merged in (duplicates dropped, options overridden by name) and the
/// result cut to the resolver's limits (`DNSConfigForming` warning).
pub fn dns_config(pod: &Pod, ctx: &DnsContext) -> Result<WithWarnings<DnsConfig>, ConfigError> {
    let spec = pod_spec(pod)?;
    let mut warnings = Vec::new();
    let mut config = match &ctx.host_resolv_conf {
        Some(contents) => {
            parse_resolv_conf(contents).map_err(|reason| ConfigError::ResolvConf {
                pod: format_pod(pod),
                reason,
            })?
        }
        None => DnsConfig::default(),
    };
    let host_network = spec.host_network.unwrap_or(false);
    let dns_type = match spec.dns_policy.as_deref().unwrap_or("ClusterFirst") {
        "None" => PodDnsType::None,
        "ClusterFirstWithHostNet" => PodDnsType::Cluster,
        "ClusterFirst" if !host_network => PodDnsType::Cluster,
        "ClusterFirst" | "Default" => PodDnsType::Host,
        other => {
            warnings.push(Warning {
                reason: "DNSConfigForming",
                message: format!(
                    "invalid DNSPolicy={other}: falling back to DNSClusterFirst policy"
                ),
            });
            PodDnsType::Cluster
        }
    };
    let mut use_host = dns_type == PodDnsType::Host;
    match dns_type {
        PodDnsType::None => config = DnsConfig::default(),
        PodDnsType::Cluster if !ctx.cluster_dns.is_empty() => {
            config.servers.clone_from(&ctx.cluster_dns);
            config.searches = cluster_first_searches(pod_namespace(pod), ctx, config.searches);
            config.options = DEFAULT_DNS_OPTIONS.iter().map(|&o| o.to_owned()).collect();
        }
        PodDnsType::Cluster => {
            warnings.push(Warning {
                reason: "MissingClusterDNS",
                message: format!(
                    "pod: {:?}. kubelet does not have ClusterDNS IP configured and cannot create \
                     Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.",
                    format_pod(pod)
                ),
            });
            use_host = true;
        }
        PodDnsType::Host => {}
    }
    if use_host && ctx.host_resolv_conf.is_none() {
        // With --resolv-conf="" the pod gets a loopback resolver: DNS effectively disabled.
        config.servers = ctx
            .node_ips
            .iter()
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
            .map(|ip| if ip.is_ipv6() { "::1" } else { "127.0.0.1" }.to_owned())
            .collect();
        if config.servers.is_empty() {
            config.servers.push("127.0.0.1".to_owned());
        }
        config.searches = vec![".".to_owned()];
    }
    if let Some(pod_dns) = &spec.dns_config {
        append_pod_dns_config(&mut config, pod_dns);
    }
    fit_limits(&mut config, &mut warnings);
    Ok(WithWarnings {
        value: config,
        warnings,
    })
}

/// Parses resolv.conf: `nameserver` lines accumulate; the last `search` line wins (trailing
/// dots trimmed, a lone `.` dropped); `options` accumulate, a later option replacing an
/// earlier one of the same name.
pub fn parse_resolv_conf(contents: &str) -> Result<DnsConfig, String> {
    let mut config = DnsConfig::default();
    for line in contents.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        let mut fields = trimmed.split_whitespace();
        match fields.next() {
            Some("nameserver") => match fields.next() {
                Some(server) => config.servers.push(server.to_owned()),
                None => return Err("nameserver list is empty".to_owned()),
            },
            Some("search") => {
                config.searches = fields
                    .filter(|&s| s != ".")
                    .map(|s| s.strip_suffix('.').unwrap_or(s).to_owned())
                    .collect();
            }
            Some("options") => {
                for option in fields {
                    upsert_option(&mut config.options, option.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(config)
}

fn option_name(option: &str) -> &str {
    option.split(':').next().unwrap_or(option)
}

/// Replaces the option of the same name in place, or appends it.
fn upsert_option(options: &mut Vec<String>, option: String) {
    match options
        .iter_mut()
        .find(|existing| option_name(existing) == option_name(&option))
    {
        Some(existing) => *existing = option,
        None => options.push(option),
    }
}

fn cluster_first_searches(namespace: &str, ctx: &DnsContext, host: Vec<String>) -> Vec<String> {
    if ctx.cluster_domain.is_empty() {
        return host;
    }
    let domain = &ctx.cluster_domain;
    let mut searches = vec![
        format!("{namespace}.svc.{domain}"),
        format!("svc.{domain}"),
        domain.clone(),
    ];
    searches.extend(host);
    omit_duplicates(searches)
}

fn omit_duplicates(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

/// `appendDNSConfig`: adds `spec.dnsConfig` to the base configuration.
fn append_pod_dns_config(config: &mut DnsConfig, pod_dns: &PodDNSConfig) {
    config
        .servers
        .extend(pod_dns.nameservers.iter().flatten().cloned());
    config.servers = omit_duplicates(std::mem::take(&mut config.servers));
    config
        .searches
        .extend(pod_dns.searches.iter().flatten().cloned());
    config.searches = omit_duplicates(std::mem::take(&mut config.searches));
    for option in pod_dns.options.iter().flatten() {
        let name = option.name.clone().unwrap_or_default();
        let rendered = match option.value.as_deref() {
            Some(value) if !value.is_empty() => format!("{name}:{value}"),
            _ => name,
        };
        upsert_option(&mut config.options, rendered);
    }
}

/// `formDNSConfigFitsLimits`: at most 3 nameservers, 32 search domains of at most 253
/// characters, 2048 characters of search line.
fn fit_limits(config: &mut DnsConfig, warnings: &mut Vec<Warning>) {
    if config.servers.len() > MAX_DNS_NAMESERVERS {
        config.servers.truncate(MAX_DNS_NAMESERVERS);
        warnings.push(Warning {
            reason: "DNSConfigForming",
            message: format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the applied \
                 nameserver line is: {}",
                config.servers.join(" ")
            ),
        });
    }
    let mut exceeded = false;
    if config.searches.len() > MAX_DNS_SEARCH_PATHS {
        config.searches.truncate(MAX_DNS_SEARCH_PATHS);
        exceeded = true;
    }
    let before = config.searches.len();
    config
        .searches
        .retain(|search| search.len() <= MAX_SEARCH_DOMAIN_LEN);
    exceeded |= config.searches.len() != before;
    while config.searches.join(" ").len() > MAX_DNS_SEARCH_LIST_CHARS {
        config.searches.pop();
        exceeded = true;
    }
    if exceeded {
        warnings.push(Warning {
            reason: "DNSConfigForming",
            message: format!(
                "Search Line limits were exceeded, some search paths have been omitted, the \
                 applied search line is: {}",
                config.searches.join(" ")
            ),
        });
    }
}

//! Services: defaults, validation, and the `ClusterIP` and `NodePort` allocators.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use super::Kind;
use super::validation::NameRule;
use crate::api::error::FieldError;

const TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

impl Kind for Service {
    const NAME_RULE: NameRule = NameRule::Dns1035Label;
    const HAS_SPEC: bool = false;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn prepare_for_create(&mut self) {
        self.status = Some(k8s_openapi::api::core::v1::ServiceStatus::default());
    }

    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(ServiceSpec::default);
        spec.type_.get_or_insert_with(|| "ClusterIP".into());
        spec.session_affinity.get_or_insert_with(|| "None".into());
        if spec.type_.as_deref() != Some("ExternalName") {
            spec.internal_traffic_policy
                .get_or_insert_with(|| "Cluster".into());
            spec.ip_families.get_or_insert_with(|| vec!["IPv4".into()]);
            spec.ip_family_policy
                .get_or_insert_with(|| "SingleStack".into());
        }
        if matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer")) {
            spec.external_traffic_policy
                .get_or_insert_with(|| "Cluster".into());
        }
        for port in spec.ports.iter_mut().flatten() {
            port.protocol.get_or_insert_with(|| "TCP".into());
            // 0 and "" mean unset, as protobuf clients send them.
            let unset = match &port.target_port {
                None | Some(IntOrString::Int(0)) => true,
                Some(IntOrString::String(s)) => s.is_empty(),
                Some(IntOrString::Int(_)) => false,
            };
            if unset {
                port.target_port = Some(IntOrString::Int(port.port));
            }
        }
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.status.clone_from(&old.status);
        // Allocated addresses stay with the service unless the client names them.
        if let (Some(new), Some(old)) = (self.spec.as_mut(), old.spec.as_ref()) {
            if new.cluster_ip.as_deref().is_none_or(str::is_empty) {
                new.cluster_ip.clone_from(&old.cluster_ip);
                new.cluster_ips.clone_from(&old.cluster_ips);
            }
            for port in new.ports.iter_mut().flatten() {
                if port.node_port.is_none() {
                    port.node_port = old
                        .ports
                        .iter()
                        .flatten()
                        .find(|p| p.port == port.port && p.protocol == port.protocol)
                        .and_then(|p| p.node_port);
                }
            }
        }
    }

    fn prepare_for_status_update(&mut self, old: &Self) {
        self.spec.clone_from(&old.spec);
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let Some(spec) = &self.spec else {
            return vec![FieldError::required("spec")];
        };
        let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
        if !TYPES.contains(&kind) {
            errors.push(FieldError::not_supported("spec.type", &json!(kind), &TYPES));
        }
        let ports = spec.ports.as_deref().unwrap_or_default();
        if kind != "ExternalName" && ports.is_empty() && spec.cluster_ip.as_deref() != Some("None")
        {
            errors.push(FieldError::required("spec.ports"));
        }
        let mut names = BTreeSet::new();
        for (i, port) in ports.iter().enumerate() {
            if !(1..=65535).contains(&port.port) {
                errors.push(FieldError::invalid(
                    format!("spec.ports[{i}].port"),
                    &json!(port.port),
                    "must be between 1 and 65535, inclusive",
                ));
            }
            let name = port.name.clone().unwrap_or_default();
            if ports.len() > 1 && name.is_empty() {
                errors.push(FieldError::required(format!("spec.ports[{i}].name")));
            }
            if !name.is_empty() && !names.insert(name.clone()) {
                errors.push(FieldError::duplicate(
                    format!("spec.ports[{i}].name"),
                    &json!(name),
                ));
            }
        }
        if kind == "ExternalName" && spec.external_name.as_deref().is_none_or(str::is_empty) {
            errors.push(FieldError::required("spec.externalName"));
        }
        errors
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let ip = |s: &Service| {
            s.spec
                .as_ref()
                .and_then(|s| s.cluster_ip.clone())
                .unwrap_or_default()
        };
        if !ip(old).is_empty() && ip(self) != ip(old) {
            vec![FieldError::invalid(
                "spec.clusterIPs[0]",
                &json!(ip(self)),
                "may not change once set",
            )]
        } else {
            Vec::new()
        }
    }
}

/// Hands out `ClusterIPs` from the service CIDR and `NodePorts` from 30000-32767.
#[derive(Debug, Clone)]
pub struct ServiceIpAllocator {
    network: u32,
    size: u32,
}

/// The first `NodePort` and the last.
pub const NODE_PORT_RANGE: (i32, i32) = (30000, 32767);

impl ServiceIpAllocator {
    /// An allocator over `cidr` (e.g. `10.96.0.0/12`).
    pub fn new(cidr: &str) -> Result<Self, String> {
        let (net, len) = cidr
            .split_once('/')
            .ok_or_else(|| format!("service CIDR {cidr:?} is not address/length"))?;
        let net: Ipv4Addr = net
            .parse()
            .map_err(|e| format!("service CIDR {cidr:?}: {e}"))?;
        let len: u32 = len
            .parse()
            .map_err(|e| format!("service CIDR {cidr:?}: {e}"))?;
        if !(8..=30).contains(&len) {
            return Err(format!(
                "service CIDR {cidr:?}: prefix length must be 8 to 30"
            ));
        }
        let size = 1_u32 << (32 - len);
        Ok(ServiceIpAllocator {
            network: u32::from(net) & !(size - 1),
            size,
        })
    }

    /// The address of the `kubernetes` service: the first one of the range.
    #[must_use]
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    /// Whether an address lies in the range.
    #[must_use]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip > self.network && ip < self.network + self.size - 1
    }

    /// A free address, starting from a random point, skipping `used`.
    #[must_use]
    pub fn allocate(&self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        use rand::Rng;
        let usable = self.size - 2;
        let start = rand::rng().random_range(0..usable);
        (0..usable)
            .map(|i| Ipv4Addr::from(self.network + 1 + (start + i) % usable))
            .find(|ip| !used.contains(ip))
    }

    /// A free `NodePort`, skipping `used`.
    #[must_use]
    pub fn allocate_node_port(used: &BTreeSet<i32>) -> Option<i32> {
        use rand::Rng;
        let (low, high) = NODE_PORT_RANGE;
        let span = high - low + 1;
        let start = rand::rng().random_range(0..span);
        (0..span)
            .map(|i| low + (start + i) % span)
            .find(|p| !used.contains(p))
    }
}

/// The addresses and `NodePorts` services already hold.
#[must_use]
pub fn used_addresses<'a>(
    services: impl Iterator<Item = &'a Value>,
) -> (BTreeSet<Ipv4Addr>, BTreeSet<i32>) {
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for service in services {
        for ip in service["spec"]["clusterIPs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(ip) = ip.as_str().and_then(|s| s.parse().ok()) {
                ips.insert(ip);
            }
        }
        if let Some(ip) = service["spec"]["clusterIP"]
            .as_str()
            .and_then(|s| s.parse().ok())
        {
            ips.insert(ip);
        }
        for port in service["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(p) = port["nodePort"]
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
            {
                ports.insert(p);
            }
        }
    }
    (ips, ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_inside_the_range_and_skips_used() {
        let allocator = ServiceIpAllocator::new("10.96.0.0/29").unwrap();
        assert_eq!(allocator.first(), Ipv4Addr::new(10, 96, 0, 1));
        let mut used = BTreeSet::new();
        for _ in 0..6 {
            let ip = allocator.allocate(&used).unwrap();
            assert!(allocator.contains(ip), "{ip}");
            assert!(used.insert(ip));
        }
        assert_eq!(
            allocator.allocate(&used),
            None,
            "a /29 has 6 usable addresses"
        );
        assert!(ServiceIpAllocator::new("10.96.0.0").is_err());
    }

    #[test]
    fn node_ports_stay_in_range() {
        let mut used = BTreeSet::new();
        for _ in 0..100 {
            let p = ServiceIpAllocator::allocate_node_port(&used).unwrap();
            assert!((30000..=32767).contains(&p));
            assert!(used.insert(p));
        }
    }
}

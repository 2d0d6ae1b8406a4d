//! Pod admission, as the kubelet's predicate admit handler does it before a pod's worker
//! starts: the node must match the pod's node selector and required node affinity, have
//! room for it (pod count, cpu, memory, ephemeral-storage requests against allocatable minus
//! what admitted pods request), and have its host ports free. A rejected pod is Failed with
//! the reason (`NodeAffinity`, `OutOfpods`, `OutOfcpu`, `NodePorts`, ...) and never runs.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec,
};

use crate::quantity::Quantity;

/// Why a pod was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The pod status reason, e.g. `OutOfcpu`.
    pub reason: String,
    /// What failed, without the `Pod was rejected: ` prefix.
    pub message: String,
}

impl Rejection {
    fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Resources whose requests are counted against allocatable.
const RESOURCES: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// Admits `pod` onto `node`, which already runs `admitted` (active pods only), with room
/// for `max_pods`.
pub fn admit(pod: &Pod, node: &Node, admitted: &[&Pod], max_pods: usize) -> Result<(), Rejection> {
    let spec = pod.spec.clone().unwrap_or_default();
    if !matches_node_selector(&spec, node) {
        return Err(Rejection::new(
            "NodeAffinity",
            "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector",
        ));
    }
    let capacity_pods = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get("pods"))
        .and_then(|q| Quantity::from_api(q).ok())
        .map_or(max_pods, |q| usize::try_from(q.value()).unwrap_or(max_pods))
        .min(max_pods);
    if admitted.len() >= capacity_pods {
        return Err(Rejection::new(
            "OutOfpods",
            format!(
                "Node didn't have enough resource: pods, requested: 1, used: {}, capacity: {capacity_pods}",
                admitted.len()
            ),
        ));
    }
    let allocatable = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.clone())
        .unwrap_or_default();
    let wanted = pod_requests(&spec);
    for resource in RESOURCES {
        let requested = wanted.get(resource).copied().unwrap_or(0);
        if requested == 0 {
            continue;
        }
        let Some(capacity) = allocatable
            .get(resource)
            .and_then(|q| Quantity::from_api(q).ok())
        else {
            continue;
        };
        let used: i64 = admitted
            .iter()
            .map(|p| {
                pod_requests(&p.spec.clone().unwrap_or_default())
                    .get(resource)
                    .copied()
                    .unwrap_or(0)
            })
            .sum();
        let capacity = scaled(resource, &capacity);
        if used.saturating_add(requested) > capacity {
            return Err(Rejection::new(
                format!("OutOf{resource}"),
                format!(
                    "Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, capacity: {capacity}"
                ),
            ));
        }
    }
    let used_ports: BTreeSet<(String, String, i32)> =
        admitted.iter().flat_map(|p| host_ports(p)).collect();
    if host_ports(pod).iter().any(|p| conflicts(p, &used_ports)) {
        return Err(Rejection::new(
            "NodePorts",
            "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports",
        ));
    }
    Ok(())
}

/// cpu in millicores, the others in bytes.
fn scaled(resource: &str, quantity: &Quantity) -> i64 {
    if resource == "cpu" {
        quantity.milli_value()
    } else {
        quantity.value()
    }
}

/// A container's requests; a limit stands in for a missing request, as the API server
/// defaults it.
fn container_requests(container: &Container) -> BTreeMap<&'static str, i64> {
    let resources = container.resources.as_ref();
    let requests = resources.and_then(|r| r.requests.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());
    RESOURCES
        .iter()
        .filter_map(|&resource| {
            let quantity = requests
                .and_then(|r| r.get(resource))
                .or_else(|| limits.and_then(|l| l.get(resource)))?;
            let quantity = Quantity::from_api(quantity).ok()?;
            Some((resource, scaled(resource, &quantity)))
        })
        .collect()
}

/// What a pod requests, as the scheduler and the kubelet count it: the app containers and
/// sidecars together, or the largest regular init container with the sidecars started
/// before it if that is more, plus the pod overhead.
#[must_use]
pub fn pod_requests(spec: &PodSpec) -> BTreeMap<&'static str, i64> {
    let mut total: BTreeMap<&'static str, i64> = BTreeMap::new();
    for container in &spec.containers {
        for (resource, value) in container_requests(container) {
            *total.entry(resource).or_default() += value;
        }
    }
    let mut sidecars: BTreeMap<&'static str, i64> = BTreeMap::new();
    let mut init_peak: BTreeMap<&'static str, i64> = BTreeMap::new();
    for container in spec.init_containers.iter().flatten() {
        let requests = container_requests(container);
        if container.restart_policy.as_deref() == Some("Always") {
            for (resource, value) in requests {
                *sidecars.entry(resource).or_default() += value;
                *total.entry(resource).or_default() += value;
            }
        } else {
            for resource in RESOURCES {
                let here = requests.get(resource).copied().unwrap_or(0)
                    + sidecars.get(resource).copied().unwrap_or(0);
                let peak = init_peak.entry(resource).or_default();
                *peak = (*peak).max(here);
            }
        }
    }
    for (resource, peak) in init_peak {
        let value = total.entry(resource).or_default();
        *value = (*value).max(peak);
    }
    for (resource, quantity) in spec.overhead.iter().flatten() {
        if let (Some(&resource), Ok(quantity)) = (
            RESOURCES.iter().find(|r| **r == resource.as_str()),
            Quantity::from_api(quantity),
        ) {
            *total.entry(resource).or_default() += scaled(resource, &quantity);
        }
    }
    total.retain(|_, v| *v > 0);
    total
}

/// (protocol, host IP, host port) of every container port with a host port.
fn host_ports(pod: &Pod) -> Vec<(String, String, i32)> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|p| *p > 0)?;
            let ip = p
                .host_ip
                .clone()
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| "0.0.0.0".into());
            Some((p.protocol.clone().unwrap_or_else(|| "TCP".into()), ip, port))
        })
        .collect()
}

fn conflicts(wanted: &(String, String, i32), used: &BTreeSet<(String, String, i32)>) -> bool {
    let (protocol, ip, port) = wanted;
    used.iter().any(|(p, i, n)| {
        p == protocol && n == port && (i == ip || i == "0.0.0.0" || ip == "0.0.0.0")
    })
}

/// `nodeSelector` and required node affinity against the node's labels and name.
fn matches_node_selector(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice());
    let name = node.metadata.name.clone().unwrap_or_default();
    let affinity_ok =
        terms.is_none_or(|terms| terms.iter().any(|term| term_matches(term, &labels, &name)));
    selector_ok && affinity_ok
}

fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, name: &str) -> bool {
    let expressions = term.match_expressions.iter().flatten();
    let fields = term.match_fields.iter().flatten();
    if term.match_expressions.as_ref().is_none_or(Vec::is_empty)
        && term.match_fields.as_ref().is_none_or(Vec::is_empty)
    {
        // An empty term matches nothing.
        return false;
    }
    expressions
        .clone()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields
            .clone()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(name)))
}

fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let number = |v: &str| v.parse::<i64>().ok();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(number), values.first().and_then(|x| number(x))), (Some(v), Some(x)) if v > x)
        }
        "Lt" => {
            matches!((value.and_then(number), values.first().and_then(|x| number(x))), (Some(v), Some(x)) if v < x)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node() -> Node {
        serde_json::from_value(json!({
            "metadata": { "name": "n1", "labels": { "disktype": "ssd", "zone": "a", "cores": "8" } },
            "status": { "allocatable": { "cpu": "2", "memory": "1Gi", "pods": "3" } }
        }))
        .unwrap()
    }

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{ "name": "c", "image": "busybox" }]);
        }
        serde_json::from_value(json!({ "metadata": { "name": "p" }, "spec": spec })).unwrap()
    }

    fn requesting(cpu: &str, memory: &str) -> Pod {
        pod(json!({ "containers": [{ "name": "c", "image": "busybox",
            "resources": { "requests": { "cpu": cpu, "memory": memory } } }] }))
    }

    fn reason(result: Result<(), Rejection>) -> String {
        result.err().map(|r| r.reason).unwrap_or_default()
    }

    #[test]
    fn node_selector_and_required_affinity() {
        let n = node();
        assert_eq!(
            admit(
                &pod(json!({ "nodeSelector": { "disktype": "ssd" } })),
                &n,
                &[],
                110
            ),
            Ok(())
        );
        assert_eq!(
            reason(admit(
                &pod(json!({ "nodeSelector": { "disktype": "hdd" } })),
                &n,
                &[],
                110
            )),
            "NodeAffinity"
        );
        let affinity = |op: &str, values: serde_json::Value| {
            pod(
                json!({ "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{ "matchExpressions": [{ "key": "cores", "operator": op, "values": values }] }] } } } }),
            )
        };
        assert_eq!(admit(&affinity("Gt", json!(["4"])), &n, &[], 110), Ok(()));
        assert_eq!(
            reason(admit(&affinity("Lt", json!(["4"])), &n, &[], 110)),
            "NodeAffinity"
        );
        assert_eq!(
            admit(&affinity("In", json!(["8", "16"])), &n, &[], 110),
            Ok(())
        );
        assert_eq!(
            reason(admit(&affinity("NotIn", json!(["8"])), &n, &[], 110)),
            "NodeAffinity"
        );
        assert_eq!(admit(&affinity("Exists", json!([])), &n, &[], 110), Ok(()));
        let by_name = pod(
            json!({ "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{ "matchFields": [{ "key": "metadata.name", "operator": "In", "values": ["n2"] }] },
                                  { "matchFields": [{ "key": "metadata.name", "operator": "In", "values": ["n1"] }] }] } } } }),
        );
        assert_eq!(admit(&by_name, &n, &[], 110), Ok(()), "terms are ORed");
    }

    #[test]
    fn resources_count_what_is_admitted() {
        let n = node();
        let half = requesting("1", "256Mi");
        assert_eq!(admit(&half, &n, &[&half], 110), Ok(()));
        let rejected = admit(&half, &n, &[&half, &half], 110).unwrap_err();
        assert_eq!(rejected.reason, "OutOfcpu");
        assert_eq!(
            rejected.message,
            "Node didn't have enough resource: cpu, requested: 1000, used: 2000, capacity: 2000"
        );
        assert_eq!(
            reason(admit(&requesting("10m", "2Gi"), &n, &[], 110)),
            "OutOfmemory"
        );
        // Limits stand in for missing requests.
        let limited = pod(json!({ "containers": [{ "name": "c", "image": "busybox",
            "resources": { "limits": { "cpu": "3" } } }] }));
        assert_eq!(reason(admit(&limited, &n, &[], 110)), "OutOfcpu");
    }

    #[test]
    fn pod_count_is_the_smaller_of_allocatable_and_max_pods() {
        let n = node();
        let p = pod(json!({}));
        assert_eq!(admit(&p, &n, &[&p, &p], 110), Ok(()));
        assert_eq!(reason(admit(&p, &n, &[&p, &p, &p], 110)), "OutOfpods");
        assert_eq!(reason(admit(&p, &n, &[&p], 1)), "OutOfpods");
    }

    #[test]
    fn init_containers_count_at_their_peak_and_sidecars_always() {
        let spec: PodSpec = serde_json::from_value(json!({
            "initContainers": [
                { "name": "sidecar", "image": "x", "restartPolicy": "Always", "resources": { "requests": { "cpu": "100m" } } },
                { "name": "big", "image": "x", "resources": { "requests": { "cpu": "2", "memory": "1Mi" } } }
            ],
            "containers": [{ "name": "c", "image": "x", "resources": { "requests": { "cpu": "500m", "memory": "64Mi" } } }],
            "overhead": { "cpu": "10m" }
        }))
        .unwrap();
        let requests = pod_requests(&spec);
        assert_eq!(requests["cpu"], 2100 + 10);
        assert_eq!(requests["memory"], 64 * 1024 * 1024);
    }

    #[test]
    fn host_ports_must_be_free() {
        let n = node();
        let web = |ip: &str| {
            pod(json!({ "containers": [{ "name": "c", "image": "x",
            "ports": [{ "containerPort": 80, "hostPort": 8080, "hostIP": ip }] }] }))
        };
        assert_eq!(
            admit(&web("10.0.0.1"), &n, &[&web("10.0.0.2")], 110),
            Ok(())
        );
        assert_eq!(
            reason(admit(&web("10.0.0.1"), &n, &[&web("")], 110)),
            "NodePorts"
        );
    }
}

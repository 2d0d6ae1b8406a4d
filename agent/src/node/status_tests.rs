use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::*;

fn host() -> HostSnapshot {
    HostSnapshot {
        num_cpus: 2,
        memory_total_bytes: 16_768_323_584,
        memory_available_bytes: 8 << 30,
        root_fs_capacity_bytes: 105_152_176_128,
        root_fs_available_bytes: 60 << 30,
        pid_max: 4_194_304,
        running_processes: 300,
        machine_id: "0123456789abcdef".into(),
        system_uuid: "4c4c4544-0000".into(),
        boot_id: "b00t".into(),
        kernel_version: "6.1.0-18-amd64".into(),
        os_image: "Debian GNU/Linux 12 (bookworm)".into(),
        architecture: "amd64".into(),
    }
}

fn runtime() -> RuntimeHealth {
    RuntimeHealth {
        runtime_ready: true,
        runtime_message: String::new(),
        network_ready: true,
        network_message: String::new(),
        runtime_name: "containerd".into(),
        runtime_version: "1.6.20".into(),
    }
}

fn q(s: &str) -> Quantity {
    Quantity::parse(s).unwrap()
}

struct Fixture {
    host: HostSnapshot,
    runtime: RuntimeHealth,
    pleg: Result<(), String>,
    kube_reserved: BTreeMap<String, Quantity>,
    system_reserved: BTreeMap<String, Quantity>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            host: host(),
            runtime: runtime(),
            pleg: Ok(()),
            kube_reserved: BTreeMap::new(),
            system_reserved: BTreeMap::new(),
        }
    }

    fn inputs(&self) -> NodeStatusInputs<'_> {
        NodeStatusInputs {
            node_ip: "10.0.0.5".parse().unwrap(),
            hostname: "node-a",
            host: &self.host,
            runtime: Some(&self.runtime),
            runtime_responding: true,
            pleg: &self.pleg,
            max_pods: 110,
            kubelet_port: 10250,
            kube_reserved: &self.kube_reserved,
            system_reserved: &self.system_reserved,
        }
    }
}

fn at(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(secs).unwrap()
}

fn strings(list: &BTreeMap<String, ApiQuantity>) -> BTreeMap<&str, &str> {
    list.iter()
        .map(|(k, v)| (k.as_str(), v.0.as_str()))
        .collect()
}

#[test]
fn capacity_as_the_kubelet_writes_it() {
    let f = Fixture::new();
    let status = compute_node_status(&f.inputs(), None, at(1_000));
    assert_eq!(
        strings(status.capacity.as_ref().unwrap()),
        BTreeMap::from([
            ("cpu", "2"),
            ("memory", "16375316Ki"),
            ("ephemeral-storage", "102687672Ki"),
            ("pods", "110"),
            ("hugepages-1Gi", "0"),
            ("hugepages-2Mi", "0"),
        ])
    );
    assert_eq!(status.capacity, status.allocatable);
}

#[test]
fn allocatable_subtracts_reservations_and_never_goes_negative() {
    let mut f = Fixture::new();
    f.kube_reserved = BTreeMap::from([("cpu".into(), q("100m")), ("memory".into(), q("100Mi"))]);
    f.system_reserved = BTreeMap::from([
        ("cpu".into(), q("400m")),
        ("ephemeral-storage".into(), q("1Gi")),
        ("pods".into(), q("500")),
    ]);
    let status = compute_node_status(&f.inputs(), None, at(1_000));
    let reported = strings(status.allocatable.as_ref().unwrap());
    assert_eq!(reported["cpu"], "1500m");
    assert_eq!(reported["memory"], "16272916Ki");
    assert_eq!(reported["ephemeral-storage"], "101639096Ki");
    assert_eq!(reported["pods"], "0");

    let cap = capacity(&f.host, 110);
    let direct = allocatable(&cap, &f.kube_reserved, &BTreeMap::new());
    assert_eq!(direct["cpu"].to_string(), "1900m");
}

#[test]
fn hugepages_come_out_of_allocatable_memory() {
    let mut cap = capacity(&host(), 110);
    cap.insert(
        "hugepages-2Mi".into(),
        Quantity::from_bytes(512 * 1024 * 1024),
    );
    let alloc = allocatable(&cap, &BTreeMap::new(), &BTreeMap::new());
    assert_eq!(alloc["memory"].to_string(), "15851028Ki");
    assert_eq!(alloc["hugepages-2Mi"].to_string(), "512Mi");
}

#[test]
fn addresses_info_and_endpoints() {
    let f = Fixture::new();
    let status = compute_node_status(&f.inputs(), None, at(1_000));
    let addresses: Vec<_> = status
        .addresses
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| (a.type_.as_str(), a.address.as_str()))
        .collect();
    assert_eq!(
        addresses,
        [("InternalIP", "10.0.0.5"), ("Hostname", "node-a")]
    );
    let info = status.node_info.as_ref().unwrap();
    assert_eq!(info.machine_id, "0123456789abcdef");
    assert_eq!(info.system_uuid, "4c4c4544-0000");
    assert_eq!(info.boot_id, "b00t");
    assert_eq!(info.kernel_version, "6.1.0-18-amd64");
    assert_eq!(info.os_image, "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(info.operating_system, "linux");
    assert_eq!(info.architecture, "amd64");
    assert_eq!(info.container_runtime_version, "containerd://1.6.20");
    assert_eq!(info.kubelet_version, "v1.33.0-ferrolet");
    assert_eq!(info.kube_proxy_version, "");
    let port = status
        .daemon_endpoints
        .as_ref()
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map(|e| e.port);
    assert_eq!(port, Some(10250));
}

#[test]
fn network_not_ready_makes_ready_false_with_the_kubelet_message() {
    let mut f = Fixture::new();
    f.runtime.network_ready = false;
    f.runtime.network_message =
        "NetworkReady=false reason:NetworkPluginNotReady message:cni plugin not initialized".into();
    let status = compute_node_status(&f.inputs(), None, at(1_000));
    let ready = status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("KubeletNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some(
            "container runtime network not ready: NetworkReady=false \
             reason:NetworkPluginNotReady message:cni plugin not initialized"
        )
    );
}

#[test]
fn only_heartbeats_moving_is_no_change() {
    let f = Fixture::new();
    let first = compute_node_status(&f.inputs(), None, at(1_000));
    let second = compute_node_status(&f.inputs(), Some(&first), at(1_010));
    assert_ne!(first.conditions, second.conditions, "heartbeats moved");
    assert!(!node_status_changed(&first, &second));
}

#[test]
fn changes_that_need_an_update() {
    let mut f = Fixture::new();
    let first = compute_node_status(&f.inputs(), None, at(1_000));

    f.runtime.network_ready = false;
    let not_ready = compute_node_status(&f.inputs(), Some(&first), at(1_010));
    assert!(node_status_changed(&first, &not_ready), "Ready flipped");

    let mut f = Fixture::new();
    f.host.memory_total_bytes += 1 << 20;
    let more_memory = compute_node_status(&f.inputs(), Some(&first), at(1_010));
    assert!(node_status_changed(&first, &more_memory), "capacity");

    let mut f = Fixture::new();
    f.runtime.runtime_version = "1.7.0".into();
    let upgraded = compute_node_status(&f.inputs(), Some(&first), at(1_010));
    assert!(node_status_changed(&first, &upgraded), "nodeInfo");

    let mut moved = first.clone();
    moved.addresses.as_mut().unwrap()[0].address = "10.0.0.6".into();
    assert!(node_status_changed(&first, &moved), "addresses");

    let mut missing = first.clone();
    missing.conditions.as_mut().unwrap().pop();
    assert!(node_status_changed(&missing, &first), "a condition appears");
}

#[test]
fn quantities_compare_by_value_and_foreign_conditions_are_ignored() {
    let f = Fixture::new();
    let first = compute_node_status(&f.inputs(), None, at(1_000));
    let mut reported = first.clone();
    // The API server may write quantities in another, equal form.
    reported
        .capacity
        .as_mut()
        .unwrap()
        .insert("memory".into(), ApiQuantity("16768323584".into()));
    reported
        .conditions
        .as_mut()
        .unwrap()
        .push(k8s_openapi::api::core::v1::NodeCondition {
            type_: "NetworkUnavailable".into(),
            status: "False".into(),
            ..Default::default()
        });
    let next = compute_node_status(&f.inputs(), Some(&reported), at(1_010));
    assert!(!node_status_changed(&reported, &next));
}

#[test]
fn runtime_down_is_reported_and_version_unknown_before_first_answer() {
    let f = Fixture::new();
    let mut inputs = f.inputs();
    inputs.runtime = None;
    inputs.runtime_responding = false;
    let status = compute_node_status(&inputs, None, at(1_000));
    let info = status.node_info.as_ref().unwrap();
    assert_eq!(info.container_runtime_version, "Unknown://Unknown");
    let ready = status.conditions.as_ref().unwrap().last().unwrap();
    assert_eq!(ready.message.as_deref(), Some("container runtime is down"));
}

#[test]
fn status_patch_replaces_addresses_and_merges_conditions() {
    let f = Fixture::new();
    let status = compute_node_status(&f.inputs(), None, at(1_000));
    let patch = crate::node::status_patch(&status);
    let addresses = patch["status"]["addresses"].as_array().unwrap();
    assert_eq!(addresses.last().unwrap()["$patch"], "replace");
    assert_eq!(addresses.len(), 3);
    assert_eq!(patch["status"]["conditions"].as_array().unwrap().len(), 4);
    assert_eq!(patch["status"]["capacity"]["memory"], "16375316Ki");
    assert!(patch["status"].get("images").is_none());
}

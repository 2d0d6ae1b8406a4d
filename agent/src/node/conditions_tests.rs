use std::time::Duration;

use ferrolet_cri::api;
use k8s_openapi::api::core::v1::NodeCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;

fn time(secs: i64) -> Time {
    Time(jiff::Timestamp::from_second(secs).unwrap())
}

fn host() -> HostSnapshot {
    HostSnapshot {
        num_cpus: 2,
        memory_total_bytes: 8 << 30,
        memory_available_bytes: 4 << 30,
        root_fs_capacity_bytes: 100 << 30,
        root_fs_available_bytes: 50 << 30,
        pid_max: 4_194_304,
        running_processes: 300,
        machine_id: "m".into(),
        system_uuid: String::new(),
        boot_id: "b".into(),
        kernel_version: "6.1.0".into(),
        os_image: "Debian".into(),
        architecture: "amd64".into(),
    }
}

fn healthy_runtime() -> RuntimeHealth {
    RuntimeHealth {
        runtime_ready: true,
        runtime_message: "RuntimeReady=true reason: message:".into(),
        network_ready: true,
        network_message: "NetworkReady=true reason: message:".into(),
        runtime_name: "containerd".into(),
        runtime_version: "1.6.20".into(),
    }
}

fn find<'a>(conditions: &'a [NodeCondition], kind: &str) -> &'a NodeCondition {
    conditions.iter().find(|c| c.type_ == kind).unwrap()
}

#[test]
fn runtime_health_from_cri_prints_conditions_like_go() {
    let version = api::VersionResponse {
        version: "0.1.0".into(),
        runtime_name: "containerd".into(),
        runtime_version: "1.6.20".into(),
        runtime_api_version: "v1".into(),
    };
    let status = api::StatusResponse {
        status: Some(api::RuntimeStatus {
            conditions: vec![
                api::RuntimeCondition {
                    r#type: "RuntimeReady".into(),
                    status: true,
                    reason: String::new(),
                    message: String::new(),
                },
                api::RuntimeCondition {
                    r#type: "NetworkReady".into(),
                    status: false,
                    reason: "NetworkPluginNotReady".into(),
                    message: "Network plugin returns error: cni plugin not initialized".into(),
                },
            ],
        }),
        ..Default::default()
    };
    let health = RuntimeHealth::from_cri(&version, &status);
    assert!(health.runtime_ready);
    assert!(!health.network_ready);
    assert_eq!(
        health.network_message,
        "NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: \
         cni plugin not initialized"
    );
    assert_eq!(health.container_runtime_version(), "containerd://1.6.20");

    let empty = RuntimeHealth::from_cri(&version, &api::StatusResponse::default());
    assert!(!empty.runtime_ready && !empty.network_ready);
    assert_eq!(empty.network_message, "<nil>");
}

fn inputs<'a>(
    runtime: Option<&'a RuntimeHealth>,
    runtime_responding: bool,
    pleg: &'a Result<(), String>,
) -> ReadinessInputs<'a> {
    ReadinessInputs {
        runtime,
        runtime_responding,
        pleg,
    }
}

#[test]
fn ready_problems_in_kubelet_order() {
    let mut health = healthy_runtime();
    let ok = Ok(());
    assert!(ready_problems(inputs(Some(&health), true, &ok)).is_empty());

    health.network_ready = false;
    health.network_message = "NetworkReady=false reason:NetworkPluginNotReady message:x".into();
    assert_eq!(
        ready_problems(inputs(Some(&health), true, &ok)),
        ["container runtime network not ready: NetworkReady=false \
          reason:NetworkPluginNotReady message:x"]
    );

    let pleg = Err(pleg_unhealthy_message(
        Duration::from_mins(3),
        Duration::from_mins(3),
    ));
    let problems = ready_problems(inputs(Some(&health), false, &pleg));
    assert_eq!(
        problems,
        [
            "container runtime is down",
            "PLEG is not healthy: pleg was last seen active 3m0s ago; threshold is 3m0s",
            "container runtime network not ready: NetworkReady=false \
             reason:NetworkPluginNotReady message:x",
        ]
    );
    assert_eq!(
        aggregate_message(&problems).unwrap(),
        "[container runtime is down, PLEG is not healthy: pleg was last seen active 3m0s ago; \
         threshold is 3m0s, container runtime network not ready: NetworkReady=false \
         reason:NetworkPluginNotReady message:x]"
    );

    let mut not_ready = healthy_runtime();
    not_ready.runtime_ready = false;
    not_ready.runtime_message = "RuntimeReady=false reason:Down message:y".into();
    assert_eq!(
        ready_problems(inputs(Some(&not_ready), true, &ok)),
        ["container runtime not ready: RuntimeReady=false reason:Down message:y"]
    );
    assert_eq!(
        ready_problems(inputs(None, true, &ok)),
        ["container runtime status check may not have completed yet"]
    );
    assert_eq!(
        ready_problems(inputs(None, false, &ok)),
        ["container runtime is down"]
    );
}

#[test]
fn aggregate_is_single_or_bracketed_and_deduplicated() {
    assert_eq!(aggregate_message(&[]), None);
    assert_eq!(aggregate_message(&["a".into()]).as_deref(), Some("a"));
    assert_eq!(
        aggregate_message(&["a".into(), "b".into(), "a".into()]).as_deref(),
        Some("[a, b]")
    );
    assert_eq!(
        aggregate_message(&["a".into(), "a".into()]).as_deref(),
        Some("a")
    );
}

#[test]
fn pressure_by_default_thresholds() {
    assert_eq!(Pressure::of(&host()), Pressure::default());
    let mut h = host();
    h.memory_available_bytes = 99 * 1024 * 1024;
    assert!(Pressure::of(&h).memory);
    h.memory_available_bytes = 100 * 1024 * 1024;
    assert!(!Pressure::of(&h).memory);

    let mut h = host();
    h.root_fs_available_bytes = h.root_fs_capacity_bytes / 10 - 1;
    assert!(Pressure::of(&h).disk);
    h.root_fs_available_bytes = h.root_fs_capacity_bytes / 10;
    assert!(!Pressure::of(&h).disk);

    let mut h = host();
    h.pid_max = 1000;
    h.running_processes = 951;
    assert!(Pressure::of(&h).pid);
    h.running_processes = 950;
    assert!(!Pressure::of(&h).pid);
}

#[test]
fn conditions_have_kubelet_reasons_and_ready_last() {
    let now = time(1_000);
    let conditions = node_conditions(&[], Pressure::default(), None, &now);
    let types: Vec<_> = conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    );
    let expect = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        (
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ];
    for (kind, status, reason, message) in expect {
        let c = find(&conditions, kind);
        assert_eq!(c.status, status, "{kind}");
        assert_eq!(c.reason.as_deref(), Some(reason));
        assert_eq!(c.message.as_deref(), Some(message));
        assert_eq!(c.last_heartbeat_time.as_ref(), Some(&now));
        assert_eq!(c.last_transition_time.as_ref(), Some(&now));
    }

    let all = Pressure {
        memory: true,
        disk: true,
        pid: true,
    };
    let conditions = node_conditions(&[], all, Some("container runtime is down".into()), &now);
    let expect = [
        (
            "MemoryPressure",
            "True",
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        ),
        (
            "DiskPressure",
            "True",
            "KubeletHasDiskPressure",
            "kubelet has disk pressure",
        ),
        (
            "PIDPressure",
            "True",
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
        ),
        (
            "Ready",
            "False",
            "KubeletNotReady",
            "container runtime is down",
        ),
    ];
    for (kind, status, reason, message) in expect {
        let c = find(&conditions, kind);
        assert_eq!(c.status, status, "{kind}");
        assert_eq!(c.reason.as_deref(), Some(reason));
        assert_eq!(c.message.as_deref(), Some(message));
    }
}

#[test]
fn transition_time_kept_while_status_holds() {
    let first = node_conditions(&[], Pressure::default(), None, &time(1_000));
    let second = node_conditions(&first, Pressure::default(), None, &time(1_010));
    let ready = find(&second, "Ready");
    assert_eq!(ready.last_transition_time, Some(time(1_000)));
    assert_eq!(ready.last_heartbeat_time, Some(time(1_010)));

    // Ready flips: new transition time; a new message with the same status keeps it.
    let third = node_conditions(&second, Pressure::default(), Some("a".into()), &time(1_020));
    assert_eq!(
        find(&third, "Ready").last_transition_time,
        Some(time(1_020))
    );
    assert_eq!(
        find(&third, "MemoryPressure").last_transition_time,
        Some(time(1_000))
    );
    let fourth = node_conditions(&third, Pressure::default(), Some("b".into()), &time(1_030));
    assert_eq!(
        find(&fourth, "Ready").last_transition_time,
        Some(time(1_020))
    );
    assert_eq!(find(&fourth, "Ready").message.as_deref(), Some("b"));
}

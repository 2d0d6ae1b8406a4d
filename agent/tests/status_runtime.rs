//! The runtime snapshot (CRI conversion, newest/previous instance), termination message
//! sources, quantities and API time.

#[path = "status_common.rs"]
mod common;

use std::collections::HashMap;

use common::{at, exited, running, sandbox};
use ferrolet_agent::status::runtime::CONTAINER_HASH_ANNOTATION;
use ferrolet_agent::status::termination::{
    TerminationMessageFile, TerminationMessageSource, termination_message_source,
};
use ferrolet_agent::status::time::{api_time, format_rfc3339, timestamp_from_unix_nanos};
use ferrolet_agent::status::{
    PodRuntimeStatus, RuntimeContainer, RuntimeContainerState, SandboxState, SandboxStatus,
};
use ferrolet_cri::api;
use jiff::Timestamp;

const SECOND: i64 = 1_000_000_000;

#[test]
fn cri_container_status_converts() {
    let status = api::ContainerStatus {
        id: "c1".to_owned(),
        metadata: Some(api::ContainerMetadata {
            name: "app".to_owned(),
            attempt: 3,
        }),
        state: api::ContainerState::ContainerExited as i32,
        created_at: 10 * SECOND,
        started_at: 11 * SECOND,
        finished_at: 12 * SECOND + 500,
        exit_code: 137,
        reason: "OOMKilled".to_owned(),
        message: "out of memory".to_owned(),
        image: Some(api::ImageSpec {
            image: "docker.io/library/busybox:1.36".to_owned(),
            ..api::ImageSpec::default()
        }),
        image_ref: "docker.io/library/busybox@sha256:abc".to_owned(),
        annotations: HashMap::from([(CONTAINER_HASH_ANNOTATION.to_owned(), "1f".to_owned())]),
        ..api::ContainerStatus::default()
    };
    let c = RuntimeContainer::from_cri(&status);
    assert_eq!(c.id, "c1");
    assert_eq!(c.name, "app");
    assert_eq!(c.attempt, 3);
    assert_eq!(c.state, RuntimeContainerState::Exited);
    assert_eq!(c.created_at, Timestamp::from_second(10).ok());
    assert_eq!(c.started_at, Timestamp::from_second(11).ok());
    assert_eq!(
        c.finished_at,
        Timestamp::from_nanosecond(i128::from(12 * SECOND + 500)).ok()
    );
    assert_eq!((c.exit_code, c.reason.as_str()), (137, "OOMKilled"));
    assert_eq!(c.image_ref, "docker.io/library/busybox@sha256:abc");
    assert_eq!(c.hash, Some(0x1f));
    assert_eq!(c.container_id("containerd"), "containerd://c1");

    // A running container has no finish time or exit details even if the runtime sent some.
    let running = RuntimeContainer::from_cri(&api::ContainerStatus {
        state: api::ContainerState::ContainerRunning as i32,
        ..status.clone()
    });
    assert_eq!(running.finished_at, None);
    assert_eq!(running.exit_code, 0);
    assert!(running.reason.is_empty());
    let created = RuntimeContainer::from_cri(&api::ContainerStatus {
        state: api::ContainerState::ContainerCreated as i32,
        ..status
    });
    assert_eq!(created.started_at, None);
}

#[test]
fn cri_sandbox_status_converts() {
    let status = api::PodSandboxStatus {
        id: "sb".to_owned(),
        metadata: Some(api::PodSandboxMetadata {
            name: "web".to_owned(),
            uid: "uid-1".to_owned(),
            namespace: "default".to_owned(),
            attempt: 2,
        }),
        state: api::PodSandboxState::SandboxReady as i32,
        created_at: 5 * SECOND,
        network: Some(api::PodSandboxNetworkStatus {
            ip: "10.1.0.5".to_owned(),
            additional_ips: vec![api::PodIp {
                ip: "fd00::5".to_owned(),
            }],
        }),
        linux: Some(api::LinuxPodSandboxStatus {
            namespaces: Some(api::Namespace {
                options: Some(api::NamespaceOption {
                    network: api::NamespaceMode::Node as i32,
                    ..api::NamespaceOption::default()
                }),
            }),
        }),
        ..api::PodSandboxStatus::default()
    };
    let s = SandboxStatus::from_cri(&status);
    assert_eq!(s.state, SandboxState::Ready);
    assert_eq!(s.attempt, 2);
    assert!(s.host_network);
    assert_eq!(
        s.ips,
        Some(vec!["10.1.0.5".to_owned(), "fd00::5".to_owned()])
    );
    let no_network = SandboxStatus::from_cri(&api::PodSandboxStatus {
        network: None,
        state: api::PodSandboxState::SandboxNotready as i32,
        ..status
    });
    assert_eq!(no_network.ips, None);
    assert!(!no_network.is_ready());
}

#[test]
fn newest_and_previous_instances() {
    let mut other_sandbox = exited("app", 0, 1, 1, 2);
    other_sandbox.sandbox_id = Some("sb-0".to_owned());
    let rt = PodRuntimeStatus {
        sandboxes: vec![sandbox("sb-0", 0, false, 0), sandbox("sb-1", 1, true, 3)],
        containers: vec![
            running("app", 2, 9),
            other_sandbox,
            exited("app", 1, 1, 4, 5),
        ],
    };
    assert_eq!(rt.latest_sandbox().map(|s| s.id.as_str()), Some("sb-1"));
    assert_eq!(rt.latest("app").map(|c| c.attempt), Some(2));
    assert_eq!(rt.previous("app").map(|c| c.attempt), Some(1));
    assert_eq!(rt.latest_exited("app").map(|c| c.attempt), Some(1));
    assert_eq!(rt.latest("db"), None);
    assert_eq!(rt.active_containers().count(), 2);
    assert_eq!(rt.pod_ips(), ["10.1.0.5"]);
}

#[test]
fn termination_message_sources() {
    let fallback = Some("FallbackToLogsOnError");
    let file = Some("File");
    let cases = [
        (
            file,
            1,
            "Error",
            TerminationMessageFile::Missing,
            TerminationMessageSource::Message(String::new()),
        ),
        (
            fallback,
            1,
            "Error",
            TerminationMessageFile::Missing,
            TerminationMessageSource::LogTail,
        ),
        (
            fallback,
            1,
            "Error",
            TerminationMessageFile::Contents(""),
            TerminationMessageSource::LogTail,
        ),
        (
            fallback,
            0,
            "Completed",
            TerminationMessageFile::Contents(""),
            TerminationMessageSource::Message(String::new()),
        ),
        (
            fallback,
            128,
            "ContainerCannotRun",
            TerminationMessageFile::NotConfigured,
            TerminationMessageSource::Message(String::new()),
        ),
        (
            fallback,
            1,
            "Error",
            TerminationMessageFile::Contents("bye"),
            TerminationMessageSource::Message("bye".to_owned()),
        ),
        (
            fallback,
            1,
            "Error",
            TerminationMessageFile::Unreadable {
                path: "/var/lib/t",
                error: "permission denied",
            },
            TerminationMessageSource::Message(
                "Error on reading termination log /var/lib/t: permission denied".to_owned(),
            ),
        ),
    ];
    for (policy, code, reason, file, expected) in cases {
        assert_eq!(
            termination_message_source(policy, code, reason, file),
            expected,
            "{policy:?} {code} {reason} {file:?}"
        );
    }
}

#[test]
fn api_times_have_whole_seconds() {
    let precise =
        Timestamp::from_nanosecond(i128::from(at(0).as_second()) * 1_000_000_000 + 999_999_999)
            .expect("ts");
    assert_eq!(api_time(precise).0, at(0));
    assert_eq!(format_rfc3339(precise), "2023-11-14T22:13:20Z");
    let json = serde_json::to_value(api_time(precise)).expect("json");
    assert_eq!(json, "2023-11-14T22:13:20Z");
    assert_eq!(timestamp_from_unix_nanos(0), None);
}

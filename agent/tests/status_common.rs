//! Builders shared by the `status_*` tests (included with `#[path]`; each test uses a part).
#![allow(dead_code)] // Every test file uses a different subset of the builders.

use ferrolet_agent::status::{
    PodRuntimeStatus, RuntimeContainer, RuntimeContainerState, SandboxState, SandboxStatus,
};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Seconds after a fixed epoch.
pub(crate) fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("valid timestamp")
}

pub(crate) fn container(name: &str) -> Container {
    Container {
        name: name.to_owned(),
        image: Some(format!("registry.local/{name}:1")),
        ..Container::default()
    }
}

pub(crate) fn sidecar(name: &str) -> Container {
    Container {
        restart_policy: Some("Always".to_owned()),
        ..container(name)
    }
}

pub(crate) fn with_readiness_probe(mut c: Container) -> Container {
    c.readiness_probe = Some(Probe::default());
    c
}

pub(crate) fn with_startup_probe(mut c: Container) -> Container {
    c.startup_probe = Some(Probe::default());
    c
}

/// A pod `web` in `default` with UID `uid-1`.
pub(crate) fn pod(policy: &str, init: Vec<Container>, containers: Vec<Container>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".to_owned()),
            namespace: Some("default".to_owned()),
            uid: Some("uid-1".to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some(policy.to_owned()),
            init_containers: (!init.is_empty()).then_some(init),
            containers,
            ..PodSpec::default()
        }),
        status: None,
    }
}

pub(crate) fn sandbox(id: &str, attempt: u32, ready: bool, created: i64) -> SandboxStatus {
    SandboxStatus {
        id: id.to_owned(),
        state: if ready {
            SandboxState::Ready
        } else {
            SandboxState::NotReady
        },
        created_at: Some(at(created)),
        ips: Some(vec!["10.1.0.5".to_owned()]),
        attempt,
        host_network: false,
    }
}

fn instance(
    name: &str,
    attempt: u32,
    state: RuntimeContainerState,
    created: i64,
) -> RuntimeContainer {
    RuntimeContainer {
        id: format!("{name}-{attempt}"),
        name: name.to_owned(),
        attempt,
        state,
        created_at: Some(at(created)),
        started_at: None,
        finished_at: None,
        exit_code: 0,
        reason: String::new(),
        message: String::new(),
        image: format!("registry.local/{name}:1"),
        image_ref: format!("registry.local/{name}@sha256:abc"),
        hash: None,
        sandbox_id: None,
    }
}

/// Instance `attempt` of `name`, ID `<name>-<attempt>`, running since `started`.
pub(crate) fn running(name: &str, attempt: u32, started: i64) -> RuntimeContainer {
    RuntimeContainer {
        started_at: Some(at(started)),
        ..instance(name, attempt, RuntimeContainerState::Running, started)
    }
}

/// Instance `attempt` of `name` that ran from `started` to `finished` and exited with `code`.
pub(crate) fn exited(
    name: &str,
    attempt: u32,
    code: i32,
    started: i64,
    finished: i64,
) -> RuntimeContainer {
    RuntimeContainer {
        started_at: Some(at(started)),
        finished_at: Some(at(finished)),
        exit_code: code,
        reason: if code == 0 { "Completed" } else { "Error" }.to_owned(),
        ..instance(name, attempt, RuntimeContainerState::Exited, started)
    }
}

pub(crate) fn created(name: &str, attempt: u32, at_seconds: i64) -> RuntimeContainer {
    instance(name, attempt, RuntimeContainerState::Created, at_seconds)
}

pub(crate) fn unknown(name: &str, attempt: u32, at_seconds: i64) -> RuntimeContainer {
    instance(name, attempt, RuntimeContainerState::Unknown, at_seconds)
}

/// One ready sandbox `sb-1` with the given containers.
pub(crate) fn runtime(containers: Vec<RuntimeContainer>) -> PodRuntimeStatus {
    PodRuntimeStatus {
        sandboxes: vec![sandbox("sb-1", 0, true, 0)],
        containers,
    }
}

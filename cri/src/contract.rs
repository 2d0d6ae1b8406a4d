//! The behaviours every CRI runtime the agent drives must show, as one suite that runs
//! against the recording fake (unit tests) and against real containerd (integration tests).
//! If the fake and containerd ever disagree, this suite is where it shows.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;

use crate::api;
use crate::service::{ImageService, RuntimeService, image_spec};

/// The image the suite runs containers from; `hack/images` imports it into the runtime.
pub const TEST_IMAGE: &str = "docker.io/library/busybox:1.35";

/// The label that marks every sandbox this suite creates, so that it can clean up after a
/// failure.
pub const RUN_LABEL: &str = "ferrolet.test/contract-run";

/// A sandbox id that no runtime has.
const MISSING_ID: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffff0000dead";

/// A process-unique token for names and UIDs.
#[must_use]
pub fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{:x}-{:x}-{}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A pod sandbox config in namespace `default` with a fresh UID and the given cgroup parent
/// (empty: the runtime's default).
#[must_use]
pub fn sandbox_config(name: &str, cgroup_parent: &str) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.to_owned(),
            uid: unique_token(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.to_owned(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container config running `command` (the image's default without one).
#[must_use]
pub fn container_config(name: &str, image: &str, command: &[&str]) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.to_owned(),
            attempt: 0,
        }),
        image: Some(image_spec(image)),
        command: command.iter().map(|&s| s.to_owned()).collect(),
        log_path: format!("{name}/0.log"),
        ..Default::default()
    }
}

/// Runs the suite: it panics on the first broken behaviour, after removing every sandbox it
/// made.
pub async fn run(
    runtime: &dyn RuntimeService,
    images: &dyn ImageService,
    image: &str,
    cgroup_parent: &str,
) {
    let run_id = unique_token();
    let outcome = AssertUnwindSafe(steps(runtime, images, image, cgroup_parent, &run_id))
        .catch_unwind()
        .await;
    let filter = api::PodSandboxFilter {
        label_selector: HashMap::from([(RUN_LABEL.to_owned(), run_id.clone())]),
        ..Default::default()
    };
    if let Ok(left) = runtime.list_pod_sandbox(Some(filter)).await {
        for sandbox in left {
            let _ = runtime.stop_pod_sandbox(&sandbox.id).await;
            let _ = runtime.remove_pod_sandbox(&sandbox.id).await;
        }
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn steps(
    runtime: &dyn RuntimeService,
    images: &dyn ImageService,
    image: &str,
    cgroup_parent: &str,
    run_id: &str,
) {
    check_runtime_ready(runtime).await;
    check_missing_objects(runtime, images, image).await;
    let mut config = sandbox_config("contract", cgroup_parent);
    config
        .labels
        .insert(RUN_LABEL.to_owned(), run_id.to_owned());
    let sandbox = check_sandbox_start(runtime, &config, run_id).await;
    check_container_lifecycle(runtime, &config, &sandbox, image).await;
    check_sandbox_teardown(runtime, &sandbox).await;
}

async fn check_runtime_ready(runtime: &dyn RuntimeService) {
    let version = runtime.version().await.expect("Version");
    assert_eq!(version.runtime_api_version, "v1", "{version:?}");
    let status = runtime.status(false).await.expect("Status");
    let conditions = status.status.expect("runtime status").conditions;
    assert!(
        conditions
            .iter()
            .any(|c| c.r#type == "RuntimeReady" && c.status),
        "RuntimeReady: {conditions:?}"
    );
}

/// What does not exist: `NotFound` for status, success for removal.
async fn check_missing_objects(
    runtime: &dyn RuntimeService,
    images: &dyn ImageService,
    image: &str,
) {
    let err = runtime
        .pod_sandbox_status(MISSING_ID, false)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains(MISSING_ID), "{err}");
    runtime
        .remove_pod_sandbox(MISSING_ID)
        .await
        .expect("removing a missing sandbox");
    let err = runtime
        .container_status(MISSING_ID, false)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    runtime
        .remove_container(MISSING_ID)
        .await
        .expect("removing a missing container");
    let absent = images
        .image_status(&image_spec("docker.io/library/ferrolet-absent:0"), false)
        .await
        .expect("ImageStatus of an absent image");
    assert!(absent.image.is_none(), "{absent:?}");
    let present = images
        .image_status(&image_spec(image), false)
        .await
        .expect("ImageStatus");
    assert!(
        present.image.is_some(),
        "test image {image} missing: run hack/images"
    );
}

/// A sandbox: ready, listed by id and by label, metadata kept.
async fn check_sandbox_start(
    runtime: &dyn RuntimeService,
    config: &api::PodSandboxConfig,
    run_id: &str,
) -> String {
    let sandbox = runtime
        .run_pod_sandbox(config, "")
        .await
        .expect("RunPodSandbox");
    let listed = runtime
        .list_pod_sandbox(Some(api::PodSandboxFilter {
            id: sandbox.clone(),
            ..Default::default()
        }))
        .await
        .expect("ListPodSandbox");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].state(), api::PodSandboxState::SandboxReady);
    let by_label = runtime
        .list_pod_sandbox(Some(api::PodSandboxFilter {
            label_selector: HashMap::from([(RUN_LABEL.to_owned(), run_id.to_owned())]),
            ..Default::default()
        }))
        .await
        .expect("ListPodSandbox by label");
    assert_eq!(
        by_label.iter().map(|s| &s.id).collect::<Vec<_>>(),
        [&sandbox]
    );
    let status = runtime
        .pod_sandbox_status(&sandbox, false)
        .await
        .expect("PodSandboxStatus")
        .status
        .expect("status");
    assert_eq!(status.metadata, config.metadata);
    assert_eq!(status.state(), api::PodSandboxState::SandboxReady);
    sandbox
}

/// A container through its life: created, running, exited, removed.
async fn check_container_lifecycle(
    runtime: &dyn RuntimeService,
    config: &api::PodSandboxConfig,
    sandbox: &str,
    image: &str,
) {
    let container_config = container_config("sleeper", image, &["sleep", "3600"]);
    let container = runtime
        .create_container(sandbox, &container_config, config)
        .await
        .expect("CreateContainer");
    assert_eq!(
        container_state(runtime, &container).await.state(),
        api::ContainerState::ContainerCreated
    );
    runtime
        .start_container(&container)
        .await
        .expect("StartContainer");
    let running = container_state(runtime, &container).await;
    assert_eq!(running.state(), api::ContainerState::ContainerRunning);
    assert!(running.started_at > 0, "{running:?}");
    let in_sandbox = runtime
        .list_containers(Some(api::ContainerFilter {
            pod_sandbox_id: sandbox.to_owned(),
            ..Default::default()
        }))
        .await
        .expect("ListContainers");
    assert_eq!(
        in_sandbox.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&container]
    );
    let err = runtime.start_container(&container).await.unwrap_err();
    assert!(!err.is_not_found(), "starting a running container: {err}");

    runtime
        .stop_container(&container, Duration::ZERO)
        .await
        .expect("StopContainer");
    let exited = container_state(runtime, &container).await;
    assert_eq!(exited.state(), api::ContainerState::ContainerExited);
    assert_ne!(exited.exit_code, 0, "a killed sleep does not exit 0");
    assert!(exited.finished_at > 0, "{exited:?}");
    runtime
        .remove_container(&container)
        .await
        .expect("RemoveContainer");
    let err = runtime
        .container_status(&container, false)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

/// Sandbox teardown: not ready after stop, gone after remove, removal idempotent.
async fn check_sandbox_teardown(runtime: &dyn RuntimeService, sandbox: &str) {
    runtime
        .stop_pod_sandbox(sandbox)
        .await
        .expect("StopPodSandbox");
    let stopped = runtime
        .pod_sandbox_status(sandbox, false)
        .await
        .expect("PodSandboxStatus after stop")
        .status
        .expect("status");
    assert_eq!(stopped.state(), api::PodSandboxState::SandboxNotready);
    runtime
        .remove_pod_sandbox(sandbox)
        .await
        .expect("RemovePodSandbox");
    let err = runtime
        .pod_sandbox_status(sandbox, false)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    runtime
        .remove_pod_sandbox(sandbox)
        .await
        .expect("removing twice");
}

async fn container_state(runtime: &dyn RuntimeService, id: &str) -> api::ContainerStatus {
    let status = runtime
        .container_status(id, false)
        .await
        .expect("ContainerStatus");
    status.status.expect("status")
}

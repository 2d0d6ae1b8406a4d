//! The CRI client against the real containerd that `hack/containerd` runs: a pod's whole
//! life through CRI, the error paths, and proof that nothing is left behind.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use ferrolet_cri::api;
use ferrolet_cri::contract::{self, container_config, sandbox_config};
use ferrolet_cri::{
    Code, ConnectOptions, Error, ImageService, RemoteRuntime, RuntimeEndpoint, RuntimeService,
    image_spec,
};
use ferrolet_images::{BUSYBOX, PAUSE, REGISTRY_BUSYBOX, REGISTRY_ONLY};
use ferrolet_tests::cri_facts::{LogLine, SandboxFootprint, footprint, parse_cri_log};
use ferrolet_tests::{
    CgroupParent, cidr_contains, containerd, eventually, links_in_netns, mount_points, node_netns,
    pod_cidr, process_alive, registry,
};

#[tokio::test]
async fn version_reports_containerd_on_cri_v1() {
    let runtime = containerd().await;
    let version = runtime.version().await.unwrap();
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");
    assert!(!version.runtime_version.is_empty());
    assert_eq!(runtime.runtime_version(), &version, "negotiated at connect");
    let status = runtime.status(false).await.unwrap().status.unwrap();
    for condition in ["RuntimeReady", "NetworkReady"] {
        assert!(
            status
                .conditions
                .iter()
                .any(|c| c.r#type == condition && c.status),
            "{condition}: {status:?}"
        );
    }
}

#[tokio::test]
async fn containerd_passes_the_runtime_contract() {
    let runtime = containerd().await;
    let cgroup = CgroupParent::new("contract");
    contract::run(&runtime, &runtime, contract::TEST_IMAGE, cgroup.path()).await;
    cgroup
        .remove()
        .expect("no cgroup left by the contract suite");
}

#[tokio::test]
async fn pod_lifecycle_runs_commands_and_leaves_nothing_behind() {
    let runtime = containerd().await;
    let cgroup = CgroupParent::new("lifecycle");
    let logs = tempfile::tempdir().unwrap();
    let netns = node_netns();
    let links_before = links_in_netns(&netns);

    let mut config = sandbox_config("lifecycle", cgroup.path());
    config.log_directory = logs.path().to_string_lossy().into_owned();
    config.labels.insert("app".into(), "lifecycle".into());
    let sandbox = runtime.run_pod_sandbox(&config, "").await.unwrap();

    let result =
        std::panic::AssertUnwindSafe(exercise_pod(&runtime, &config, &sandbox, logs.path()));
    let outcome = futures::FutureExt::catch_unwind(result).await;
    // Whatever happened, tear down through CRI, as the agent would.
    runtime.stop_pod_sandbox(&sandbox).await.unwrap();
    runtime.remove_pod_sandbox(&sandbox).await.unwrap();
    let footprint = match outcome {
        Ok(footprint) => footprint,
        Err(panic) => std::panic::resume_unwind(panic),
    };

    // Nothing left: sandbox process, network namespace (file and mount), veth, mounts that
    // name the sandbox, cgroups.
    assert!(
        !process_alive(footprint.pid),
        "pause process {} still alive",
        footprint.pid
    );
    assert!(
        !Path::new(&footprint.netns_path).exists(),
        "{} left",
        footprint.netns_path
    );
    let mounts = mount_points();
    let leaked: Vec<_> = mounts
        .iter()
        .filter(|m| m.contains(&sandbox) || **m == footprint.netns_path)
        .collect();
    assert!(leaked.is_empty(), "mounts left: {leaked:?}");
    let links_after = links_in_netns(&netns);
    assert!(
        !links_after.contains(&footprint.host_veth),
        "veth {} left in {netns}: {links_after:?}",
        footprint.host_veth
    );
    let new_links: Vec<_> = links_after
        .iter()
        .filter(|l| !links_before.contains(l))
        .collect();
    assert!(
        new_links.iter().all(|l| !l.starts_with("veth")),
        "new veths left: {new_links:?}"
    );
    cgroup
        .remove()
        .expect("no cgroup or process left in the pod's cgroup parent");
}

/// The body of the lifecycle test, between sandbox creation and teardown.
async fn exercise_pod(
    runtime: &RemoteRuntime,
    config: &api::PodSandboxConfig,
    sandbox: &str,
    logs: &Path,
) -> SandboxFootprint {
    let footprint = check_sandbox_network(runtime, sandbox).await;
    local_busybox(runtime).await;
    let app_id = start_app_and_read_its_log(runtime, config, sandbox, logs).await;
    check_exec_sync(runtime, &app_id).await;
    check_job_exit(runtime, config, sandbox).await;
    stop_and_remove_containers(runtime, sandbox, &app_id).await;
    footprint
}

/// The sandbox has an address from the CNI bridge's host-local range, a pause process, a
/// network namespace and a veth on the node's bridge.
async fn check_sandbox_network(runtime: &RemoteRuntime, sandbox: &str) -> SandboxFootprint {
    let status = runtime.pod_sandbox_status(sandbox, true).await.unwrap();
    let footprint = footprint(&status.info);
    let ip: Ipv4Addr = status
        .status
        .unwrap()
        .network
        .unwrap()
        .ip
        .parse()
        .expect("pod IPv4");
    assert!(
        cidr_contains(pod_cidr(), ip),
        "pod IP {ip} outside the pod CIDR"
    );
    assert!(process_alive(footprint.pid), "pause runs");
    assert!(Path::new(&footprint.netns_path).exists());
    assert!(links_in_netns(&node_netns()).contains(&footprint.host_veth));
    footprint
}

/// The image is present (imported by hack/images), so a kubelet with pull policy
/// `IfNotPresent` does not pull it; the short name resolves like the full one.
async fn local_busybox(runtime: &RemoteRuntime) -> api::Image {
    let image = runtime
        .image_status(&image_spec("busybox:1.35"), false)
        .await
        .unwrap()
        .image
        .expect("busybox present under its short name");
    assert!(
        image.repo_tags.iter().any(|t| t == BUSYBOX),
        "{:?}",
        image.repo_tags
    );
    assert!(image.size > 0);
    image
}

/// A long-running container whose output lands in the CRI log file, in the CRI format.
async fn start_app_and_read_its_log(
    runtime: &RemoteRuntime,
    config: &api::PodSandboxConfig,
    sandbox: &str,
    logs: &Path,
) -> String {
    let script =
        "echo hello from ferrolet; echo to stderr >&2; trap '' TERM; while :; do sleep 1; done";
    let app = container_config("app", BUSYBOX, &["sh", "-c", script]);
    let app_id = runtime
        .create_container(sandbox, &app, config)
        .await
        .unwrap();
    runtime.start_container(&app_id).await.unwrap();
    let log_path = logs.join("app/0.log");
    let lines = eventually(Duration::from_secs(10), "two log lines", || {
        let log_path = log_path.clone();
        async move {
            let text = std::fs::read_to_string(&log_path).ok()?;
            let lines = parse_cri_log(&text);
            (lines.len() >= 2).then_some(lines)
        }
    })
    .await;
    for (stream, content) in [("stdout", "hello from ferrolet"), ("stderr", "to stderr")] {
        let want = LogLine {
            stream: stream.into(),
            tag: "F".into(),
            content: content.into(),
        };
        assert!(lines.contains(&want), "{want:?} not in {lines:?}");
    }
    app_id
}

/// `ExecSync`: exit code and both streams; a command past its timeout does not hang the call.
async fn check_exec_sync(runtime: &RemoteRuntime, app_id: &str) {
    let cmd = ["sh", "-c", "echo out; echo err >&2; exit 3"].map(String::from);
    let exec = runtime
        .exec_sync(app_id, &cmd, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(exec.exit_code, 3);
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&exec.stderr), "err\n");
    let hostname = runtime
        .exec_sync(app_id, &["hostname".to_owned()], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&hostname.stdout).trim(),
        "lifecycle"
    );
    let slow = ["sleep", "30"].map(String::from);
    let started = std::time::Instant::now();
    let timed_out = runtime
        .exec_sync(app_id, &slow, Duration::from_secs(1))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "ExecSync timeout was not enforced"
    );
    match timed_out {
        Err(err) => assert!(err.to_string().contains(app_id), "{err}"),
        Ok(response) => assert_ne!(response.exit_code, 0, "{response:?}"),
    }
}

/// A container that exits by itself: exit code, finish time, reason, image reference.
async fn check_job_exit(runtime: &RemoteRuntime, config: &api::PodSandboxConfig, sandbox: &str) {
    let job = container_config("job", BUSYBOX, &["sh", "-c", "exit 7"]);
    let job_id = runtime
        .create_container(sandbox, &job, config)
        .await
        .unwrap();
    runtime.start_container(&job_id).await.unwrap();
    let exited = eventually(Duration::from_secs(10), "job to exit", || async {
        let status = runtime
            .container_status(&job_id, false)
            .await
            .ok()?
            .status?;
        (status.state() == api::ContainerState::ContainerExited).then_some(status)
    })
    .await;
    assert_eq!(exited.exit_code, 7);
    assert_eq!(exited.reason, "Error");
    // containerd may stamp a process that exits at once as finished before started: only
    // both being set is part of the contract.
    assert!(
        exited.started_at > 0 && exited.finished_at > 0,
        "{exited:?}"
    );
    // The image reference is the image id or, once the image has a repo digest (it was
    // pulled from a registry under some name, maybe by a test running alongside), that repo
    // digest: names are only ever added to busybox, so read them after the exit.
    let image = local_busybox(runtime).await;
    assert!(
        exited.image_ref == image.id || image.repo_digests.contains(&exited.image_ref),
        "{} is neither {} nor one of {:?}",
        exited.image_ref,
        image.id,
        image.repo_digests
    );
}

/// The long-running container ignores SIGTERM, so the runtime kills it when the grace period
/// ends, not before; then every container is removed.
async fn stop_and_remove_containers(runtime: &RemoteRuntime, sandbox: &str, app_id: &str) {
    let started = std::time::Instant::now();
    runtime
        .stop_container(app_id, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "grace period not honoured"
    );
    let stopped = runtime
        .container_status(app_id, false)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(stopped.state(), api::ContainerState::ContainerExited);
    assert_eq!(
        stopped.exit_code, 137,
        "SIGKILL after the grace period: {stopped:?}"
    );
    let filter = api::ContainerFilter {
        pod_sandbox_id: sandbox.to_owned(),
        ..Default::default()
    };
    for container in runtime.list_containers(Some(filter.clone())).await.unwrap() {
        runtime.remove_container(&container.id).await.unwrap();
    }
    let left = runtime.list_containers(Some(filter)).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn sandbox_runs_the_local_pause_image() {
    let runtime = containerd().await;
    let pause = runtime
        .image_status(&image_spec(PAUSE), false)
        .await
        .unwrap();
    assert!(pause.image.is_some(), "{PAUSE} missing: run hack/images");
    let cgroup = CgroupParent::new("pause");
    let config = sandbox_config("pause", cgroup.path());
    let sandbox = runtime.run_pod_sandbox(&config, "").await.unwrap();
    let status = runtime.pod_sandbox_status(&sandbox, true).await.unwrap();
    let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    runtime.stop_pod_sandbox(&sandbox).await.unwrap();
    runtime.remove_pod_sandbox(&sandbox).await.unwrap();
    assert_eq!(info["image"], PAUSE);
    assert_eq!(info["runtimeSpec"]["process"]["args"][0], "/pause");
    cgroup.remove().unwrap();
}

#[tokio::test]
async fn missing_things_give_typed_errors_that_name_them() {
    let runtime = containerd().await;

    // A sandbox that does not exist.
    let missing = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let err = runtime
        .pod_sandbox_status(missing, false)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(
        matches!(
            err,
            Error::Rpc {
                operation: "PodSandboxStatus",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(missing), "{err}");
    let err = runtime
        .create_container(
            missing,
            &container_config("c", BUSYBOX, &[]),
            &sandbox_config("x", ""),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains(missing), "{err}");

    // An image that does not exist: not present, and a container cannot be made from it.
    let absent = "docker.io/library/ferrolet-no-such-image:0";
    let status = runtime
        .image_status(&image_spec(absent), false)
        .await
        .unwrap();
    assert!(status.image.is_none());
    let cgroup = CgroupParent::new("missing-image");
    let config = sandbox_config("missing-image", cgroup.path());
    let sandbox = runtime.run_pod_sandbox(&config, "").await.unwrap();
    let err = runtime
        .create_container(&sandbox, &container_config("c", absent, &[]), &config)
        .await
        .unwrap_err();
    runtime.stop_pod_sandbox(&sandbox).await.unwrap();
    runtime.remove_pod_sandbox(&sandbox).await.unwrap();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("ferrolet-no-such-image"), "{err}");
    cgroup.remove().unwrap();

    // A registry that does not have the image.
    let unknown = format!("{}/ferrolet/no-such-image:0", registry());
    let err = runtime
        .pull_image(&image_spec(&unknown), None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Rpc {
                operation: "PullImage",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains(&unknown), "{err}");
}

#[tokio::test]
async fn bad_socket_path_fails_to_connect_with_the_path_in_the_error() {
    let endpoint =
        RuntimeEndpoint::parse("unix:///run/ferrolet-no-such-dir/containerd.sock").unwrap();
    let options = ConnectOptions {
        connect_timeout: Duration::from_millis(500),
        ..ConnectOptions::default()
    };
    let started = std::time::Instant::now();
    let err = RemoteRuntime::connect(&endpoint, options)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "connect retries are bounded"
    );
    let Error::ConnectFailed { attempts, .. } = &err else {
        panic!("want ConnectFailed, got {err:?}");
    };
    assert!(*attempts > 1, "it retried: {err}");
    let message = err.to_string();
    assert!(
        message.contains("/run/ferrolet-no-such-dir/containerd.sock"),
        "{message}"
    );
    assert!(message.contains("No such file or directory"), "{message}");
    assert_eq!(err.code(), Code::Unavailable);
}

async fn image_present(runtime: &RemoteRuntime, spec: &api::ImageSpec) -> Option<api::Image> {
    runtime.image_status(spec, false).await.unwrap().image
}

#[tokio::test]
async fn pulls_from_the_loopback_registry() {
    let runtime = containerd().await;
    // Only the registry has this image; removing it after the pull cannot take an image that
    // other tests use (a runtime removes an image by id, with all its names).
    let reference = format!("{}/{REGISTRY_ONLY}", registry());
    let spec = image_spec(&reference);
    // Start from a clean slate: a previous run may have left it pulled.
    runtime.remove_image(&spec).await.unwrap();
    assert!(image_present(&runtime, &spec).await.is_none());
    let image_ref = runtime.pull_image(&spec, None, None).await.unwrap();
    let image = image_present(&runtime, &spec).await.expect("pulled");
    assert_eq!(image.id, image_ref);
    assert!(
        image.repo_tags.contains(&reference),
        "{:?}",
        image.repo_tags
    );
    assert!(
        image
            .repo_digests
            .iter()
            .any(|d| d.starts_with(&format!("{}/ferrolet/pull-test@sha256:", registry()))),
        "{:?}",
        image.repo_digests
    );
    let listed = runtime.list_images(None).await.unwrap();
    assert!(listed.iter().any(|i| i.id == image_ref));
    runtime.remove_image(&spec).await.unwrap();
    assert!(image_present(&runtime, &spec).await.is_none());
    // Removing again is not an error.
    runtime.remove_image(&spec).await.unwrap();

    // The registry's busybox is the very image hack/images imported: same build, same id.
    let local = image_present(&runtime, &image_spec(BUSYBOX)).await;
    let local = local.expect("busybox imported by hack/images");
    let pulled = runtime
        .pull_image(
            &image_spec(&format!("{}/{REGISTRY_BUSYBOX}", registry())),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(pulled, local.id);
}

#[tokio::test]
async fn container_events_stream_or_fall_back() {
    let runtime = containerd().await;
    match runtime.get_container_events().await {
        // containerd 1.6 has no evented PLEG: the agent relists instead.
        Err(err) => assert!(err.is_unimplemented(), "{err}"),
        Ok(mut events) => {
            use futures::StreamExt;
            let cgroup = CgroupParent::new("events");
            let config = sandbox_config("events", cgroup.path());
            let sandbox = runtime.run_pod_sandbox(&config, "").await.unwrap();
            let container = runtime
                .create_container(
                    &sandbox,
                    &container_config("c", BUSYBOX, &["true"]),
                    &config,
                )
                .await
                .unwrap();
            let seen = tokio::time::timeout(Duration::from_secs(10), async {
                while let Some(event) = events.next().await {
                    if event.unwrap().container_id == container {
                        return true;
                    }
                }
                false
            })
            .await;
            runtime.stop_pod_sandbox(&sandbox).await.unwrap();
            runtime.remove_pod_sandbox(&sandbox).await.unwrap();
            assert_eq!(seen, Ok(true), "an event for the created container");
            cgroup.remove().unwrap();
        }
    }
}

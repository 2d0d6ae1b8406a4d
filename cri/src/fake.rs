//! A recording, in-memory CRI runtime for unit tests of the layers above (the agent's pod
//! workers, PLEG, probes). It keeps sandboxes, containers and images as a runtime would,
//! follows the behaviours containerd shows (checked by the shared [`crate::contract`] suite,
//! which runs against both), records every call, and lets a test inject failures, container
//! exits and `ExecSync` results.
//!
//! It is never the runtime of an integration test: those run against real containerd.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::broadcast;

use crate::api;
use crate::error::{Error, Result};
use crate::image_ref;
use crate::service::{ContainerEventStream, ImageService, RuntimeService};

/// One recorded call: the CRI method and the object it named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub operation: &'static str,
    pub target: String,
}

#[derive(Debug)]
struct Sandbox {
    status: api::PodSandboxStatus,
}

#[derive(Debug)]
struct Container {
    status: api::ContainerStatus,
    pod_sandbox_id: String,
}

#[derive(Debug)]
struct State {
    next_id: u64,
    sandboxes: BTreeMap<String, Sandbox>,
    containers: BTreeMap<String, Container>,
    images: BTreeMap<String, api::Image>,
    pullable: BTreeMap<String, u64>,
    calls: Vec<Call>,
    injected: HashMap<&'static str, VecDeque<tonic::Status>>,
    exec_results: HashMap<String, VecDeque<api::ExecSyncResponse>>,
    network_ready: bool,
    events_supported: bool,
}

/// The recording fake. Clones share state.
#[derive(Debug, Clone)]
pub struct FakeRuntime {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<api::ContainerEventResponse>,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

fn now_nanos() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

fn not_found(operation: &'static str, target: String, what: &str) -> Error {
    Error::Rpc {
        operation,
        target,
        code: tonic::Code::NotFound,
        message: format!("{what}: not found"),
    }
}

impl FakeRuntime {
    /// An empty runtime: network ready, no images, container events supported.
    #[must_use]
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        FakeRuntime {
            state: Arc::new(Mutex::new(State {
                next_id: 0,
                sandboxes: BTreeMap::new(),
                containers: BTreeMap::new(),
                images: BTreeMap::new(),
                pullable: BTreeMap::new(),
                calls: Vec::new(),
                injected: HashMap::new(),
                exec_results: HashMap::new(),
                network_ready: true,
                events_supported: true,
            })),
            events,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already; the state is still
        // worth reading for its report.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes an image present, as if it had been pulled or imported.
    pub fn add_image(&self, reference: &str) {
        let mut state = self.lock();
        let id = state.allocate_id();
        let full = image_ref::normalize(reference);
        state.images.insert(
            full.clone(),
            api::Image {
                id: format!("sha256:{id:0>64}"),
                repo_tags: vec![full],
                size: 1 << 20,
                ..Default::default()
            },
        );
    }

    /// Makes an image available to `PullImage` (as a registry would), without pulling it.
    pub fn add_pullable_image(&self, reference: &str) {
        let mut state = self.lock();
        let id = state.allocate_id();
        state.pullable.insert(image_ref::normalize(reference), id);
    }

    /// Every call so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The operations called so far, in order.
    #[must_use]
    pub fn operations(&self) -> Vec<&'static str> {
        self.lock().calls.iter().map(|c| c.operation).collect()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Makes the next call of `operation` (e.g. `"StartContainer"`) fail with `status`.
    pub fn inject_error(&self, operation: &'static str, status: tonic::Status) {
        self.lock()
            .injected
            .entry(operation)
            .or_default()
            .push_back(status);
    }

    /// Queues the answer of the next `ExecSync` in `container_id`; without one, a command
    /// succeeds with no output.
    pub fn push_exec_result(&self, container_id: &str, result: api::ExecSyncResponse) {
        self.lock()
            .exec_results
            .entry(container_id.to_owned())
            .or_default()
            .push_back(result);
    }

    /// Sets the `NetworkReady` condition that `Status` reports.
    pub fn set_network_ready(&self, ready: bool) {
        self.lock().network_ready = ready;
    }

    /// Makes `GetContainerEvents` answer `Unimplemented`, like containerd 1.6.
    pub fn disable_container_events(&self) {
        self.lock().events_supported = false;
    }

    /// Lets a running container's process exit with `exit_code`, as if it ended by itself.
    pub fn exit_container(&self, container_id: &str, exit_code: i32) -> Result<()> {
        let event = {
            let mut state = self.lock();
            let container = state.containers.get_mut(container_id).ok_or_else(|| {
                not_found("exit", format!("container {container_id:?}"), "container")
            })?;
            container.exit(exit_code);
            state.event(container_id, api::ContainerEventType::ContainerStoppedEvent)
        };
        self.emit(event);
        Ok(())
    }

    /// The state of a sandbox, for assertions.
    #[must_use]
    pub fn sandbox_state(&self, pod_sandbox_id: &str) -> Option<api::PodSandboxState> {
        self.lock()
            .sandboxes
            .get(pod_sandbox_id)
            .map(|s| s.status.state())
    }

    /// The state of a container, for assertions.
    #[must_use]
    pub fn container_state(&self, container_id: &str) -> Option<api::ContainerState> {
        self.lock()
            .containers
            .get(container_id)
            .map(|c| c.status.state())
    }

    /// Records the call and returns an injected failure for it, if one is queued.
    fn begin(&self, operation: &'static str, target: String) -> Result<()> {
        let mut state = self.lock();
        state.calls.push(Call {
            operation,
            target: target.clone(),
        });
        match state
            .injected
            .get_mut(operation)
            .and_then(VecDeque::pop_front)
        {
            Some(status) => Err(Error::from_status(operation, target, &status)),
            None => Ok(()),
        }
    }

    fn emit(&self, event: Option<api::ContainerEventResponse>) {
        if let Some(event) = event {
            // Nobody listening is fine: PLEG relists.
            let _ = self.events.send(event);
        }
    }
}

impl State {
    fn allocate_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn event(
        &self,
        container_id: &str,
        kind: api::ContainerEventType,
    ) -> Option<api::ContainerEventResponse> {
        let container = self.containers.get(container_id)?;
        let sandbox = self.sandboxes.get(&container.pod_sandbox_id);
        Some(api::ContainerEventResponse {
            container_id: container_id.to_owned(),
            container_event_type: kind.into(),
            created_at: now_nanos(),
            pod_sandbox_status: sandbox.map(|s| s.status.clone()),
            containers_statuses: vec![container.status.clone()],
        })
    }

    /// Stops every container of the sandbox and marks it not ready; returns the containers
    /// that stopped.
    fn stop_sandbox(&mut self, pod_sandbox_id: &str) -> Vec<String> {
        let mut stopped = Vec::new();
        for (id, container) in &mut self.containers {
            if container.pod_sandbox_id == pod_sandbox_id
                && container.status.state() == api::ContainerState::ContainerRunning
            {
                container.exit(137);
                stopped.push(id.clone());
            }
        }
        if let Some(sandbox) = self.sandboxes.get_mut(pod_sandbox_id) {
            sandbox
                .status
                .set_state(api::PodSandboxState::SandboxNotready);
            sandbox.status.network = None;
        }
        stopped
    }

    fn find_image(&self, reference: &str) -> Option<&api::Image> {
        let full = image_ref::normalize(reference);
        self.images
            .get(&full)
            .or_else(|| self.images.values().find(|image| image.id == reference))
    }
}

impl Container {
    fn exit(&mut self, exit_code: i32) {
        self.status.set_state(api::ContainerState::ContainerExited);
        self.status.finished_at = now_nanos();
        self.status.exit_code = exit_code;
        let reason = if exit_code == 0 { "Completed" } else { "Error" };
        reason.clone_into(&mut self.status.reason);
    }
}

fn labels_match(selector: &HashMap<String, String>, labels: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[async_trait]
impl RuntimeService for FakeRuntime {
    async fn version(&self) -> Result<api::VersionResponse> {
        self.begin("Version", "runtime".into())?;
        Ok(api::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: "0.0.0".into(),
            runtime_api_version: "v1".into(),
        })
    }

    async fn status(&self, _verbose: bool) -> Result<api::StatusResponse> {
        self.begin("Status", "runtime".into())?;
        let network_ready = self.lock().network_ready;
        let condition = |kind: &str, ready: bool| api::RuntimeCondition {
            r#type: kind.to_owned(),
            status: ready,
            reason: if ready {
                String::new()
            } else {
                "NetworkPluginNotReady".into()
            },
            message: if ready {
                String::new()
            } else {
                "cni plugin not initialized".into()
            },
        };
        Ok(api::StatusResponse {
            status: Some(api::RuntimeStatus {
                conditions: vec![
                    condition("RuntimeReady", true),
                    condition("NetworkReady", network_ready),
                ],
            }),
            ..Default::default()
        })
    }

    async fn run_pod_sandbox(
        &self,
        config: &api::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String> {
        let meta = config.metadata.clone().unwrap_or_default();
        let target = format!(
            "pod sandbox for {}/{} (uid {})",
            meta.namespace, meta.name, meta.uid
        );
        self.begin("RunPodSandbox", target.clone())?;
        if meta.name.is_empty() || meta.namespace.is_empty() || meta.uid.is_empty() {
            return Err(Error::Rpc {
                operation: "RunPodSandbox",
                target,
                code: tonic::Code::InvalidArgument,
                message: "sandbox metadata must include name, namespace and uid".into(),
            });
        }
        let mut state = self.lock();
        let n = state.allocate_id();
        let id = format!("{n:0>64x}");
        let host_network = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref())
            .is_some_and(|ns| ns.network() == api::NamespaceMode::Node);
        let mut status = api::PodSandboxStatus {
            id: id.clone(),
            metadata: Some(meta),
            created_at: now_nanos(),
            network: Some(api::PodSandboxNetworkStatus {
                ip: if host_network {
                    String::new()
                } else {
                    format!("10.88.{}.{}", (n >> 8) & 0xff, n & 0xff)
                },
                additional_ips: Vec::new(),
            }),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            runtime_handler: runtime_handler.to_owned(),
            ..Default::default()
        };
        status.set_state(api::PodSandboxState::SandboxReady);
        state.sandboxes.insert(id.clone(), Sandbox { status });
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<()> {
        let target = format!("pod sandbox {pod_sandbox_id:?}");
        self.begin("StopPodSandbox", target.clone())?;
        let events = {
            let mut state = self.lock();
            if !state.sandboxes.contains_key(pod_sandbox_id) {
                return Err(not_found("StopPodSandbox", target, "sandbox"));
            }
            let stopped = state.stop_sandbox(pod_sandbox_id);
            stopped
                .iter()
                .map(|id| state.event(id, api::ContainerEventType::ContainerStoppedEvent))
                .collect::<Vec<_>>()
        };
        for event in events {
            self.emit(event);
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<()> {
        self.begin(
            "RemovePodSandbox",
            format!("pod sandbox {pod_sandbox_id:?}"),
        )?;
        let events = {
            let mut state = self.lock();
            if !state.sandboxes.contains_key(pod_sandbox_id) {
                // Removing what is gone succeeds: the CRI asks for idempotent removal.
                return Ok(());
            }
            state.stop_sandbox(pod_sandbox_id);
            let ids: Vec<String> = state
                .containers
                .iter()
                .filter(|(_, c)| c.pod_sandbox_id == pod_sandbox_id)
                .map(|(id, _)| id.clone())
                .collect();
            let events: Vec<_> = ids
                .iter()
                .map(|id| state.event(id, api::ContainerEventType::ContainerDeletedEvent))
                .collect();
            for id in &ids {
                state.containers.remove(id);
            }
            state.sandboxes.remove(pod_sandbox_id);
            events
        };
        for event in events {
            self.emit(event);
        }
        Ok(())
    }

    async fn pod_sandbox_status(
        &self,
        pod_sandbox_id: &str,
        _verbose: bool,
    ) -> Result<api::PodSandboxStatusResponse> {
        let target = format!("pod sandbox {pod_sandbox_id:?}");
        self.begin("PodSandboxStatus", target.clone())?;
        let state = self.lock();
        let sandbox = state
            .sandboxes
            .get(pod_sandbox_id)
            .ok_or_else(|| not_found("PodSandboxStatus", target, "sandbox"))?;
        Ok(api::PodSandboxStatusResponse {
            status: Some(sandbox.status.clone()),
            timestamp: now_nanos(),
            ..Default::default()
        })
    }

    async fn list_pod_sandbox(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>> {
        self.begin("ListPodSandbox", "runtime".into())?;
        let filter = filter.unwrap_or_default();
        let state = self.lock();
        Ok(state
            .sandboxes
            .values()
            .map(|s| &s.status)
            .filter(|s| filter.id.is_empty() || s.id.starts_with(&filter.id))
            .filter(|s| {
                filter
                    .state
                    .as_ref()
                    .is_none_or(|want| want.state == s.state)
            })
            .filter(|s| labels_match(&filter.label_selector, &s.labels))
            .map(|s| api::PodSandbox {
                id: s.id.clone(),
                metadata: s.metadata.clone(),
                state: s.state,
                created_at: s.created_at,
                labels: s.labels.clone(),
                annotations: s.annotations.clone(),
                runtime_handler: s.runtime_handler.clone(),
            })
            .collect())
    }

    async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: &api::ContainerConfig,
        _sandbox_config: &api::PodSandboxConfig,
    ) -> Result<String> {
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let target = format!("container {name:?} in pod sandbox {pod_sandbox_id:?}");
        self.begin("CreateContainer", target.clone())?;
        let mut state = self.lock();
        if !state.sandboxes.contains_key(pod_sandbox_id) {
            return Err(not_found("CreateContainer", target, "sandbox"));
        }
        let image = config.image.clone().unwrap_or_default();
        let Some(found) = state.find_image(&image.image) else {
            return Err(not_found(
                "CreateContainer",
                target,
                &format!("image {:?}", image.image),
            ));
        };
        let image_ref = found.id.clone();
        let n = state.allocate_id();
        let id = format!("{n:0>64x}");
        let mut status = api::ContainerStatus {
            id: id.clone(),
            metadata: config.metadata.clone(),
            created_at: now_nanos(),
            image: Some(image),
            image_ref: image_ref.clone(),
            image_id: image_ref,
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            mounts: config.mounts.clone(),
            log_path: config.log_path.clone(),
            ..Default::default()
        };
        status.set_state(api::ContainerState::ContainerCreated);
        state.containers.insert(
            id.clone(),
            Container {
                status,
                pod_sandbox_id: pod_sandbox_id.to_owned(),
            },
        );
        let event = state.event(&id, api::ContainerEventType::ContainerCreatedEvent);
        drop(state);
        self.emit(event);
        Ok(id)
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        let target = format!("container {container_id:?}");
        self.begin("StartContainer", target.clone())?;
        let mut state = self.lock();
        let container = state
            .containers
            .get_mut(container_id)
            .ok_or_else(|| not_found("StartContainer", target.clone(), "container"))?;
        if container.status.state() != api::ContainerState::ContainerCreated {
            return Err(Error::Rpc {
                operation: "StartContainer",
                target,
                code: tonic::Code::FailedPrecondition,
                message: format!(
                    "container is in {} state",
                    container.status.state().as_str_name()
                ),
            });
        }
        container
            .status
            .set_state(api::ContainerState::ContainerRunning);
        container.status.started_at = now_nanos();
        let event = state.event(container_id, api::ContainerEventType::ContainerStartedEvent);
        drop(state);
        self.emit(event);
        Ok(())
    }

    async fn stop_container(&self, container_id: &str, _timeout: Duration) -> Result<()> {
        let target = format!("container {container_id:?}");
        self.begin("StopContainer", target.clone())?;
        let mut state = self.lock();
        let container = state
            .containers
            .get_mut(container_id)
            .ok_or_else(|| not_found("StopContainer", target, "container"))?;
        if container.status.state() != api::ContainerState::ContainerRunning {
            return Ok(());
        }
        container.exit(137);
        let event = state.event(container_id, api::ContainerEventType::ContainerStoppedEvent);
        drop(state);
        self.emit(event);
        Ok(())
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        self.begin("RemoveContainer", format!("container {container_id:?}"))?;
        let mut state = self.lock();
        if let Some(container) = state.containers.get_mut(container_id) {
            if container.status.state() == api::ContainerState::ContainerRunning {
                container.exit(137);
            }
        } else {
            return Ok(());
        }
        let event = state.event(container_id, api::ContainerEventType::ContainerDeletedEvent);
        state.containers.remove(container_id);
        drop(state);
        self.emit(event);
        Ok(())
    }

    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>> {
        self.begin("ListContainers", "runtime".into())?;
        let filter = filter.unwrap_or_default();
        let state = self.lock();
        Ok(state
            .containers
            .values()
            .filter(|c| filter.id.is_empty() || c.status.id.starts_with(&filter.id))
            .filter(|c| {
                filter.pod_sandbox_id.is_empty() || c.pod_sandbox_id == filter.pod_sandbox_id
            })
            .filter(|c| {
                filter
                    .state
                    .as_ref()
                    .is_none_or(|want| want.state == c.status.state)
            })
            .filter(|c| labels_match(&filter.label_selector, &c.status.labels))
            .map(|c| api::Container {
                id: c.status.id.clone(),
                pod_sandbox_id: c.pod_sandbox_id.clone(),
                metadata: c.status.metadata.clone(),
                image: c.status.image.clone(),
                image_ref: c.status.image_ref.clone(),
                image_id: c.status.image_id.clone(),
                state: c.status.state,
                created_at: c.status.created_at,
                labels: c.status.labels.clone(),
                annotations: c.status.annotations.clone(),
            })
            .collect())
    }

    async fn container_status(
        &self,
        container_id: &str,
        _verbose: bool,
    ) -> Result<api::ContainerStatusResponse> {
        let target = format!("container {container_id:?}");
        self.begin("ContainerStatus", target.clone())?;
        let state = self.lock();
        let container = state
            .containers
            .get(container_id)
            .ok_or_else(|| not_found("ContainerStatus", target, "container"))?;
        Ok(api::ContainerStatusResponse {
            status: Some(container.status.clone()),
            ..Default::default()
        })
    }

    async fn update_container_resources(
        &self,
        container_id: &str,
        linux: Option<api::LinuxContainerResources>,
    ) -> Result<()> {
        let target = format!("container {container_id:?}");
        self.begin("UpdateContainerResources", target.clone())?;
        let mut state = self.lock();
        let container = state
            .containers
            .get_mut(container_id)
            .ok_or_else(|| not_found("UpdateContainerResources", target, "container"))?;
        container.status.resources = Some(api::ContainerResources {
            linux,
            windows: None,
        });
        Ok(())
    }

    async fn reopen_container_log(&self, container_id: &str) -> Result<()> {
        let target = format!("container {container_id:?}");
        self.begin("ReopenContainerLog", target.clone())?;
        let state = self.lock();
        match state.containers.get(container_id) {
            Some(c) if c.status.state() == api::ContainerState::ContainerRunning => Ok(()),
            Some(_) => Err(Error::Rpc {
                operation: "ReopenContainerLog",
                target,
                code: tonic::Code::FailedPrecondition,
                message: "container is not running".into(),
            }),
            None => Err(not_found("ReopenContainerLog", target, "container")),
        }
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        _cmd: &[String],
        _timeout: Duration,
    ) -> Result<api::ExecSyncResponse> {
        let target = format!("container {container_id:?}");
        self.begin("ExecSync", target.clone())?;
        let mut state = self.lock();
        match state.containers.get(container_id) {
            Some(c) if c.status.state() == api::ContainerState::ContainerRunning => {}
            Some(c) => {
                return Err(Error::Rpc {
                    operation: "ExecSync",
                    target,
                    code: tonic::Code::FailedPrecondition,
                    message: format!("container is in {} state", c.status.state().as_str_name()),
                });
            }
            None => return Err(not_found("ExecSync", target, "container")),
        }
        Ok(state
            .exec_results
            .get_mut(container_id)
            .and_then(VecDeque::pop_front)
            .unwrap_or_default())
    }

    async fn exec(&self, request: api::ExecRequest) -> Result<String> {
        self.begin("Exec", format!("container {:?}", request.container_id))?;
        Ok(format!("http://127.0.0.1:0/exec/{}", request.container_id))
    }

    async fn attach(&self, request: api::AttachRequest) -> Result<String> {
        self.begin("Attach", format!("container {:?}", request.container_id))?;
        Ok(format!(
            "http://127.0.0.1:0/attach/{}",
            request.container_id
        ))
    }

    async fn port_forward(&self, request: api::PortForwardRequest) -> Result<String> {
        self.begin(
            "PortForward",
            format!("pod sandbox {:?}", request.pod_sandbox_id),
        )?;
        Ok(format!(
            "http://127.0.0.1:0/portforward/{}",
            request.pod_sandbox_id
        ))
    }

    async fn container_stats(&self, container_id: &str) -> Result<api::ContainerStats> {
        let target = format!("container {container_id:?}");
        self.begin("ContainerStats", target.clone())?;
        let state = self.lock();
        let container = state
            .containers
            .get(container_id)
            .ok_or_else(|| not_found("ContainerStats", target, "container"))?;
        Ok(api::ContainerStats {
            attributes: Some(api::ContainerAttributes {
                id: container.status.id.clone(),
                metadata: container.status.metadata.clone(),
                labels: container.status.labels.clone(),
                annotations: container.status.annotations.clone(),
            }),
            ..Default::default()
        })
    }

    async fn list_container_stats(
        &self,
        _filter: Option<api::ContainerStatsFilter>,
    ) -> Result<Vec<api::ContainerStats>> {
        self.begin("ListContainerStats", "runtime".into())?;
        Ok(Vec::new())
    }

    async fn pod_sandbox_stats(&self, pod_sandbox_id: &str) -> Result<api::PodSandboxStats> {
        let target = format!("pod sandbox {pod_sandbox_id:?}");
        self.begin("PodSandboxStats", target.clone())?;
        let state = self.lock();
        let sandbox = state
            .sandboxes
            .get(pod_sandbox_id)
            .ok_or_else(|| not_found("PodSandboxStats", target, "sandbox"))?;
        Ok(api::PodSandboxStats {
            attributes: Some(api::PodSandboxAttributes {
                id: sandbox.status.id.clone(),
                metadata: sandbox.status.metadata.clone(),
                labels: sandbox.status.labels.clone(),
                annotations: sandbox.status.annotations.clone(),
            }),
            ..Default::default()
        })
    }

    async fn list_pod_sandbox_stats(
        &self,
        _filter: Option<api::PodSandboxStatsFilter>,
    ) -> Result<Vec<api::PodSandboxStats>> {
        self.begin("ListPodSandboxStats", "runtime".into())?;
        Ok(Vec::new())
    }

    async fn update_runtime_config(&self, _runtime_config: api::RuntimeConfig) -> Result<()> {
        self.begin("UpdateRuntimeConfig", "runtime".into())
    }

    async fn runtime_config(&self) -> Result<api::RuntimeConfigResponse> {
        self.begin("RuntimeConfig", "runtime".into())?;
        Ok(api::RuntimeConfigResponse {
            linux: Some(api::LinuxRuntimeConfiguration {
                cgroup_driver: api::CgroupDriver::Cgroupfs.into(),
            }),
        })
    }

    async fn get_container_events(&self) -> Result<ContainerEventStream> {
        self.begin("GetContainerEvents", "runtime".into())?;
        if !self.lock().events_supported {
            return Err(Error::Rpc {
                operation: "GetContainerEvents",
                target: "runtime".into(),
                code: tonic::Code::Unimplemented,
                message: "unknown method GetContainerEvents for service runtime.v1.RuntimeService"
                    .into(),
            });
        }
        let receiver = self.events.subscribe();
        Ok(tokio_stream::wrappers::BroadcastStream::new(receiver)
            .filter_map(|item| async move { item.ok().map(Ok) })
            .boxed())
    }
}

#[async_trait]
impl ImageService for FakeRuntime {
    async fn list_images(&self, _filter: Option<api::ImageFilter>) -> Result<Vec<api::Image>> {
        self.begin("ListImages", "runtime".into())?;
        Ok(self.lock().images.values().cloned().collect())
    }

    async fn image_status(
        &self,
        image: &api::ImageSpec,
        _verbose: bool,
    ) -> Result<api::ImageStatusResponse> {
        self.begin("ImageStatus", format!("image {:?}", image.image))?;
        let state = self.lock();
        Ok(api::ImageStatusResponse {
            image: state.find_image(&image.image).cloned(),
            ..Default::default()
        })
    }

    async fn pull_image(
        &self,
        image: &api::ImageSpec,
        _auth: Option<api::AuthConfig>,
        _sandbox_config: Option<&api::PodSandboxConfig>,
    ) -> Result<String> {
        let target = format!("image {:?}", image.image);
        self.begin("PullImage", target.clone())?;
        let full = image_ref::normalize(&image.image);
        let mut state = self.lock();
        if let Some(present) = state.images.get(&full) {
            return Ok(present.id.clone());
        }
        let Some(&n) = state.pullable.get(&full) else {
            return Err(Error::Rpc {
                operation: "PullImage",
                target,
                code: tonic::Code::NotFound,
                message: format!("failed to resolve reference {full:?}: {full}: not found"),
            });
        };
        let id = format!("sha256:{n:0>64}");
        state.images.insert(
            full.clone(),
            api::Image {
                id: id.clone(),
                repo_tags: vec![full],
                size: 1 << 20,
                ..Default::default()
            },
        );
        Ok(id)
    }

    async fn remove_image(&self, image: &api::ImageSpec) -> Result<()> {
        self.begin("RemoveImage", format!("image {:?}", image.image))?;
        let full = image_ref::normalize(&image.image);
        let mut state = self.lock();
        let key = if state.images.contains_key(&full) {
            Some(full)
        } else {
            state
                .images
                .iter()
                .find(|(_, i)| i.id == image.image)
                .map(|(k, _)| k.clone())
        };
        if let Some(key) = key {
            state.images.remove(&key);
        }
        Ok(())
    }

    async fn image_fs_info(&self) -> Result<api::ImageFsInfoResponse> {
        self.begin("ImageFsInfo", "runtime".into())?;
        Ok(api::ImageFsInfoResponse::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract;

    fn runtime_with_busybox() -> FakeRuntime {
        let fake = FakeRuntime::new();
        fake.add_image(contract::TEST_IMAGE);
        fake
    }

    #[tokio::test]
    async fn fake_passes_the_runtime_contract() {
        let fake = runtime_with_busybox();
        contract::run(&fake, &fake, contract::TEST_IMAGE, "").await;
    }

    #[tokio::test]
    async fn records_calls_in_order_with_their_objects() {
        let fake = runtime_with_busybox();
        let config = contract::sandbox_config("recorded", "");
        let id = fake.run_pod_sandbox(&config, "").await.unwrap();
        fake.stop_pod_sandbox(&id).await.unwrap();
        assert_eq!(fake.operations(), ["RunPodSandbox", "StopPodSandbox"]);
        assert_eq!(fake.calls()[1].target, format!("pod sandbox {id:?}"));
        fake.clear_calls();
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn injected_errors_fail_the_next_call_only() {
        let fake = runtime_with_busybox();
        fake.inject_error("RunPodSandbox", tonic::Status::unavailable("cni down"));
        let config = contract::sandbox_config("flaky", "");
        let err = fake.run_pod_sandbox(&config, "").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert!(err.to_string().contains("default/flaky"), "{err}");
        fake.run_pod_sandbox(&config, "").await.unwrap();
    }

    #[tokio::test]
    async fn container_exit_and_events_reach_subscribers() {
        let fake = runtime_with_busybox();
        let mut events = fake.get_container_events().await.unwrap();
        let config = contract::sandbox_config("events", "");
        let sandbox = fake.run_pod_sandbox(&config, "").await.unwrap();
        let container = fake
            .create_container(
                &sandbox,
                &contract::container_config("app", contract::TEST_IMAGE, &[]),
                &config,
            )
            .await
            .unwrap();
        fake.start_container(&container).await.unwrap();
        fake.exit_container(&container, 3).unwrap();
        let kinds: Vec<_> = (0..3)
            .map(|_| futures::executor::block_on(events.next()).unwrap().unwrap())
            .map(|e| e.container_event_type())
            .collect();
        assert_eq!(
            kinds,
            [
                api::ContainerEventType::ContainerCreatedEvent,
                api::ContainerEventType::ContainerStartedEvent,
                api::ContainerEventType::ContainerStoppedEvent,
            ]
        );
        let status = fake
            .container_status(&container, false)
            .await
            .unwrap()
            .status
            .unwrap();
        assert_eq!(status.exit_code, 3);
        assert_eq!(status.reason, "Error");
    }

    #[tokio::test]
    async fn exec_results_are_served_in_order() {
        let fake = runtime_with_busybox();
        let config = contract::sandbox_config("exec", "");
        let sandbox = fake.run_pod_sandbox(&config, "").await.unwrap();
        let container = fake
            .create_container(
                &sandbox,
                &contract::container_config("app", contract::TEST_IMAGE, &[]),
                &config,
            )
            .await
            .unwrap();
        let cmd = ["true".to_owned()];
        let err = fake
            .exec_sync(&container, &cmd, Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        fake.start_container(&container).await.unwrap();
        fake.push_exec_result(
            &container,
            api::ExecSyncResponse {
                stdout: b"hi\n".to_vec(),
                stderr: Vec::new(),
                exit_code: 1,
            },
        );
        let first = fake
            .exec_sync(&container, &cmd, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            (first.exit_code, first.stdout.as_slice()),
            (1, &b"hi\n"[..])
        );
        let second = fake
            .exec_sync(&container, &cmd, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(second.exit_code, 0);
    }

    #[tokio::test]
    async fn pulls_only_what_a_registry_would_serve() {
        let fake = FakeRuntime::new();
        fake.add_pullable_image("127.0.0.1:5000/busybox:1.35");
        let spec = crate::image_spec("127.0.0.1:5000/busybox:1.35");
        let image_ref = fake.pull_image(&spec, None, None).await.unwrap();
        let status = fake.image_status(&spec, false).await.unwrap();
        assert_eq!(status.image.unwrap().id, image_ref);
        let missing = crate::image_spec("127.0.0.1:5000/nope:1");
        let err = fake.pull_image(&missing, None, None).await.unwrap_err();
        assert!(err.is_not_found());
        assert!(err.to_string().contains("nope:1"), "{err}");
    }

    #[tokio::test]
    async fn missing_events_support_is_unimplemented() {
        let fake = FakeRuntime::new();
        fake.disable_container_events();
        let Err(err) = fake.get_container_events().await else {
            panic!("events must be refused");
        };
        assert!(err.is_unimplemented());
    }
}

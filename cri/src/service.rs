//! The CRI as the kubelet sees it: two narrow traits with one real implementation
//! ([`crate::RemoteRuntime`], over gRPC) and a recording fake for unit tests.
//!
//! Parameters follow the kubelet's `internalapi` interfaces: the caller passes what the call is
//! about, and gets back what it needs (an id, a status), not raw request/response envelopes.

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::api;
use crate::error::Result;

/// Container events streamed by `GetContainerEvents`.
pub type ContainerEventStream = BoxStream<'static, Result<api::ContainerEventResponse>>;

/// `runtime.v1.RuntimeService`: pod sandboxes, containers, streaming endpoints, stats.
#[async_trait]
pub trait RuntimeService: Send + Sync {
    /// Runtime name, version and CRI API version.
    async fn version(&self) -> Result<api::VersionResponse>;
    /// Runtime conditions (`RuntimeReady`, `NetworkReady`) and, when verbose, extra info.
    async fn status(&self, verbose: bool) -> Result<api::StatusResponse>;

    /// Creates and starts a pod sandbox; returns its id.
    async fn run_pod_sandbox(
        &self,
        config: &api::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String>;
    /// Stops a sandbox and its containers and releases its network. Idempotent.
    async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<()>;
    /// Removes a stopped sandbox and its containers. Idempotent.
    async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<()>;
    /// The status of one sandbox; `NotFound` if it does not exist.
    async fn pod_sandbox_status(
        &self,
        pod_sandbox_id: &str,
        verbose: bool,
    ) -> Result<api::PodSandboxStatusResponse>;
    /// Sandboxes matching the filter (all of them without one).
    async fn list_pod_sandbox(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>>;

    /// Creates a container in a sandbox; returns its id.
    async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: &api::ContainerConfig,
        sandbox_config: &api::PodSandboxConfig,
    ) -> Result<String>;
    /// Starts a created container.
    async fn start_container(&self, container_id: &str) -> Result<()>;
    /// Stops a container, killing it after `timeout` (SIGTERM first, then SIGKILL).
    async fn stop_container(&self, container_id: &str, timeout: Duration) -> Result<()>;
    /// Removes a container. Idempotent.
    async fn remove_container(&self, container_id: &str) -> Result<()>;
    /// Containers matching the filter (all of them without one).
    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>>;
    /// The status of one container; `NotFound` if it does not exist.
    async fn container_status(
        &self,
        container_id: &str,
        verbose: bool,
    ) -> Result<api::ContainerStatusResponse>;
    /// Changes the cgroup resources of a running container.
    async fn update_container_resources(
        &self,
        container_id: &str,
        linux: Option<api::LinuxContainerResources>,
    ) -> Result<()>;
    /// Asks the runtime to reopen the container's log file after rotation.
    async fn reopen_container_log(&self, container_id: &str) -> Result<()>;

    /// Runs a command in a container and waits for it; `timeout` zero means no limit.
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<api::ExecSyncResponse>;
    /// Prepares a streaming exec; returns the runtime's streaming URL.
    async fn exec(&self, request: api::ExecRequest) -> Result<String>;
    /// Prepares a streaming attach; returns the runtime's streaming URL.
    async fn attach(&self, request: api::AttachRequest) -> Result<String>;
    /// Prepares a port forward into a sandbox; returns the runtime's streaming URL.
    async fn port_forward(&self, request: api::PortForwardRequest) -> Result<String>;

    /// Resource usage of one container.
    async fn container_stats(&self, container_id: &str) -> Result<api::ContainerStats>;
    /// Resource usage of the containers matching the filter.
    async fn list_container_stats(
        &self,
        filter: Option<api::ContainerStatsFilter>,
    ) -> Result<Vec<api::ContainerStats>>;
    /// Resource usage of one sandbox.
    async fn pod_sandbox_stats(&self, pod_sandbox_id: &str) -> Result<api::PodSandboxStats>;
    /// Resource usage of the sandboxes matching the filter.
    async fn list_pod_sandbox_stats(
        &self,
        filter: Option<api::PodSandboxStatsFilter>,
    ) -> Result<Vec<api::PodSandboxStats>>;

    /// Hands node-level settings (the pod CIDR) to the runtime.
    async fn update_runtime_config(&self, runtime_config: api::RuntimeConfig) -> Result<()>;
    /// The runtime's own configuration (cgroup driver).
    async fn runtime_config(&self) -> Result<api::RuntimeConfigResponse>;
    /// A stream of container lifecycle events; `Unimplemented` on runtimes without them.
    async fn get_container_events(&self) -> Result<ContainerEventStream>;
}

/// `runtime.v1.ImageService`: images on the node.
#[async_trait]
pub trait ImageService: Send + Sync {
    /// Images matching the filter (all of them without one).
    async fn list_images(&self, filter: Option<api::ImageFilter>) -> Result<Vec<api::Image>>;
    /// The status of one image; `image` is `None` in the answer when it is not present.
    async fn image_status(
        &self,
        image: &api::ImageSpec,
        verbose: bool,
    ) -> Result<api::ImageStatusResponse>;
    /// Pulls an image with optional registry credentials; returns the image reference
    /// (usually its digest).
    async fn pull_image(
        &self,
        image: &api::ImageSpec,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<&api::PodSandboxConfig>,
    ) -> Result<String>;
    /// Removes an image. Idempotent.
    async fn remove_image(&self, image: &api::ImageSpec) -> Result<()>;
    /// Usage of the filesystems that hold images and container layers.
    async fn image_fs_info(&self) -> Result<api::ImageFsInfoResponse>;
}

/// Shorthand for an [`api::ImageSpec`] naming just an image reference.
#[must_use]
pub fn image_spec(image: &str) -> api::ImageSpec {
    api::ImageSpec {
        image: image.to_owned(),
        ..Default::default()
    }
}

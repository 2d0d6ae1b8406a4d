//! [`RemoteRuntime`]: the CRI client over a unix socket, the kubelet's `remoteRuntimeService`
//! and `remoteImageService` in one.

use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::api;
use crate::api::image_service_client::ImageServiceClient;
use crate::api::runtime_service_client::RuntimeServiceClient;
use crate::endpoint::RuntimeEndpoint;
use crate::error::{Error, Result};
use crate::service::{ContainerEventStream, ImageService, RuntimeService};

/// The version string the client sends in `Version`; runtimes ignore it, the kubelet sends
/// the same.
const CLIENT_API_VERSION: &str = "0.1.0";

/// How the client dials the runtime and bounds its calls.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// How long to keep trying to reach the socket (it may not exist yet while the runtime
    /// starts).
    pub connect_timeout: Duration,
    /// The deadline of every unary call except image pulls and `ExecSync` (the kubelet's
    /// `runtimeRequestTimeout`, 2 minutes by default); zero means no deadline.
    pub request_timeout: Duration,
    /// The deadline of `PullImage`; `None` waits as long as the pull makes progress (the
    /// kubelet's behaviour).
    pub pull_timeout: Option<Duration>,
    /// Largest message accepted from the runtime (the kubelet allows 16 MiB, for long
    /// `ListContainers` answers).
    pub max_message_size: usize,
    /// A separate image service endpoint (the kubelet's `--image-service-endpoint`); the
    /// runtime endpoint serves both when `None`.
    pub image_endpoint: Option<RuntimeEndpoint>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_mins(2),
            pull_timeout: None,
            max_message_size: 16 * 1024 * 1024,
            image_endpoint: None,
        }
    }
}

/// A connected CRI client for one runtime.
///
/// Cloning is cheap: clones share the underlying HTTP/2 connection, which reconnects by
/// itself if the runtime restarts.
#[derive(Debug, Clone)]
pub struct RemoteRuntime {
    endpoint: RuntimeEndpoint,
    runtime: RuntimeServiceClient<Channel>,
    image: ImageServiceClient<Channel>,
    options: ConnectOptions,
    version: api::VersionResponse,
}

impl RemoteRuntime {
    /// Dials `endpoint` (retrying until `connect_timeout`), checks that it serves CRI
    /// `runtime.v1`, and returns the client.
    pub async fn connect(endpoint: &RuntimeEndpoint, options: ConnectOptions) -> Result<Self> {
        let channel = dial(endpoint, &options).await?;
        let image_channel = match &options.image_endpoint {
            Some(image_endpoint) => dial(image_endpoint, &options).await?,
            None => channel.clone(),
        };
        let limit = options.max_message_size;
        let mut client = RemoteRuntime {
            endpoint: endpoint.clone(),
            runtime: RuntimeServiceClient::new(channel)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            image: ImageServiceClient::new(image_channel)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            options,
            version: api::VersionResponse::default(),
        };
        client.version = client.negotiate_version().await?;
        Ok(client)
    }

    /// The endpoint this client talks to.
    #[must_use]
    pub fn endpoint(&self) -> &RuntimeEndpoint {
        &self.endpoint
    }

    /// What the runtime answered to `Version` when the client connected.
    #[must_use]
    pub fn runtime_version(&self) -> &api::VersionResponse {
        &self.version
    }

    async fn negotiate_version(&self) -> Result<api::VersionResponse> {
        let unsupported = |reason: String| Error::UnsupportedApiVersion {
            endpoint: self.endpoint.to_string(),
            reason,
        };
        let version = match self.version().await {
            Ok(version) => version,
            Err(err) if err.is_unimplemented() => {
                return Err(unsupported(format!(
                    "runtime.v1.RuntimeService/Version is not implemented ({err})"
                )));
            }
            Err(err) => return Err(err),
        };
        if version.runtime_api_version != "v1" && !version.runtime_api_version.starts_with("v1.") {
            return Err(unsupported(format!(
                "runtime reports API version {:?}",
                version.runtime_api_version
            )));
        }
        Ok(version)
    }

    /// Runs one unary call with a deadline, mapping a gRPC failure to [`Error::Rpc`] that
    /// names the operation and its object.
    async fn call<T, Fut>(
        &self,
        operation: &'static str,
        target: impl FnOnce() -> String,
        deadline: Option<Duration>,
        call: impl FnOnce(Option<Duration>) -> Fut,
    ) -> Result<T>
    where
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let started = Instant::now();
        // Boxed: request messages (a ContainerConfig with its PodSandboxConfig) make these
        // futures large, and they sit in every caller's future.
        let outcome = match deadline {
            Some(limit) => tokio::time::timeout(limit, Box::pin(call(Some(limit)))).await,
            None => Ok(Box::pin(call(None)).await),
        };
        let result = match outcome {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => {
                Err(Error::DeadlineExceeded {
                    operation,
                    target: target(),
                    timeout: deadline.unwrap_or_default(),
                })
            }
            Ok(Err(status)) => Err(Error::from_status(operation, target(), &status)),
            Err(_elapsed) => Err(Error::DeadlineExceeded {
                operation,
                target: target(),
                timeout: deadline.unwrap_or_default(),
            }),
        };
        tracing::trace!(
            operation,
            elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            ok = result.is_ok(),
            "cri call"
        );
        result
    }

    fn default_deadline(&self) -> Option<Duration> {
        Some(self.options.request_timeout).filter(|t| !t.is_zero())
    }
}

/// Builds a request carrying the deadline as the `grpc-timeout` header, so the runtime can
/// give up when the client does.
fn request<T>(message: T, deadline: Option<Duration>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(limit) = deadline {
        request.set_timeout(limit);
    }
    request
}

fn sandbox(id: &str) -> impl FnOnce() -> String + '_ {
    move || format!("pod sandbox {id:?}")
}

fn container(id: &str) -> impl FnOnce() -> String + '_ {
    move || format!("container {id:?}")
}

fn image(spec: &api::ImageSpec) -> impl FnOnce() -> String + '_ {
    move || format!("image {:?}", spec.image)
}

fn runtime() -> String {
    "runtime".to_owned()
}

async fn dial(endpoint: &RuntimeEndpoint, options: &ConnectOptions) -> Result<Channel> {
    let started = Instant::now();
    let mut attempts = 0;
    let mut backoff = Duration::from_millis(50);
    loop {
        attempts += 1;
        let path = endpoint.path().to_owned();
        // The URI is never dialled: the connector ignores it and opens the unix socket. It
        // only fills the HTTP/2 :authority header.
        let connected =
            Endpoint::from_static("http://localhost")
                .connect_timeout(options.connect_timeout)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await;
        match connected {
            Ok(channel) => return Ok(channel),
            Err(err) => {
                let elapsed = started.elapsed();
                if elapsed + backoff >= options.connect_timeout {
                    return Err(Error::ConnectFailed {
                        endpoint: endpoint.to_string(),
                        attempts,
                        reason: error_chain(&err),
                    });
                }
                tracing::debug!(%endpoint, attempts, error = %error_chain(&err), "runtime not reachable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// `tonic::transport::Error` displays only "transport error"; the cause (no such file,
/// connection refused) is in its sources.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        // Wrappers often repeat their cause's text; say it once.
        let text = cause.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn timeout_seconds(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX)
}

#[async_trait]
impl RuntimeService for RemoteRuntime {
    async fn version(&self) -> Result<api::VersionResponse> {
        let mut client = self.runtime.clone();
        let message = api::VersionRequest {
            version: CLIENT_API_VERSION.to_owned(),
        };
        self.call(
            "Version",
            runtime,
            self.default_deadline(),
            |d| async move { client.version(request(message, d)).await },
        )
        .await
    }

    async fn status(&self, verbose: bool) -> Result<api::StatusResponse> {
        let mut client = self.runtime.clone();
        self.call("Status", runtime, self.default_deadline(), |d| async move {
            client
                .status(request(api::StatusRequest { verbose }, d))
                .await
        })
        .await
    }

    async fn run_pod_sandbox(
        &self,
        config: &api::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String> {
        let mut client = self.runtime.clone();
        let message = Box::new(api::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: runtime_handler.to_owned(),
        });
        let meta = config.metadata.clone().unwrap_or_default();
        let target = || {
            format!(
                "pod sandbox for {}/{} (uid {})",
                meta.namespace, meta.name, meta.uid
            )
        };
        let response = self
            .call(
                "RunPodSandbox",
                target,
                self.default_deadline(),
                |d| async move { client.run_pod_sandbox(request(*message, d)).await },
            )
            .await?;
        if response.pod_sandbox_id.is_empty() {
            return Err(Error::InvalidResponse {
                operation: "RunPodSandbox",
                target: format!("pod sandbox for {}/{}", meta.namespace, meta.name),
                reason: "empty pod sandbox id".into(),
            });
        }
        Ok(response.pod_sandbox_id)
    }

    async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<()> {
        let mut client = self.runtime.clone();
        let message = api::StopPodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
        };
        self.call(
            "StopPodSandbox",
            sandbox(pod_sandbox_id),
            self.default_deadline(),
            |d| async move { client.stop_pod_sandbox(request(message, d)).await },
        )
        .await
        .map(drop)
    }

    async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<()> {
        let mut client = self.runtime.clone();
        let message = api::RemovePodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
        };
        self.call(
            "RemovePodSandbox",
            sandbox(pod_sandbox_id),
            self.default_deadline(),
            |d| async move { client.remove_pod_sandbox(request(message, d)).await },
        )
        .await
        .map(drop)
    }

    async fn pod_sandbox_status(
        &self,
        pod_sandbox_id: &str,
        verbose: bool,
    ) -> Result<api::PodSandboxStatusResponse> {
        let mut client = self.runtime.clone();
        let message = api::PodSandboxStatusRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
            verbose,
        };
        let response = self
            .call(
                "PodSandboxStatus",
                sandbox(pod_sandbox_id),
                self.default_deadline(),
                |d| async move { client.pod_sandbox_status(request(message, d)).await },
            )
            .await?;
        if response.status.is_none() {
            return Err(Error::InvalidResponse {
                operation: "PodSandboxStatus",
                target: sandbox(pod_sandbox_id)(),
                reason: "no status in the answer".into(),
            });
        }
        Ok(response)
    }

    async fn list_pod_sandbox(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>> {
        let mut client = self.runtime.clone();
        let message = api::ListPodSandboxRequest { filter };
        self.call(
            "ListPodSandbox",
            runtime,
            self.default_deadline(),
            |d| async move { client.list_pod_sandbox(request(message, d)).await },
        )
        .await
        .map(|response| response.items)
    }

    async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: &api::ContainerConfig,
        sandbox_config: &api::PodSandboxConfig,
    ) -> Result<String> {
        let mut client = self.runtime.clone();
        let message = Box::new(api::CreateContainerRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
            config: Some(config.clone()),
            sandbox_config: Some(sandbox_config.clone()),
        });
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.as_str())
            .unwrap_or_default();
        let target = || format!("container {name:?} in pod sandbox {pod_sandbox_id:?}");
        let response = self
            .call(
                "CreateContainer",
                target,
                self.default_deadline(),
                |d| async move { client.create_container(request(*message, d)).await },
            )
            .await?;
        if response.container_id.is_empty() {
            return Err(Error::InvalidResponse {
                operation: "CreateContainer",
                target: format!("container {name:?} in pod sandbox {pod_sandbox_id:?}"),
                reason: "empty container id".into(),
            });
        }
        Ok(response.container_id)
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        let mut client = self.runtime.clone();
        let message = api::StartContainerRequest {
            container_id: container_id.to_owned(),
        };
        self.call(
            "StartContainer",
            container(container_id),
            self.default_deadline(),
            |d| async move { client.start_container(request(message, d)).await },
        )
        .await
        .map(drop)
    }

    async fn stop_container(&self, container_id: &str, timeout: Duration) -> Result<()> {
        let mut client = self.runtime.clone();
        let message = api::StopContainerRequest {
            container_id: container_id.to_owned(),
            timeout: timeout_seconds(timeout),
        };
        // The runtime may wait the whole grace period before it kills: the call deadline
        // covers that on top of the usual request timeout, as in the kubelet.
        let deadline = Some(self.options.request_timeout + timeout);
        self.call(
            "StopContainer",
            container(container_id),
            deadline,
            |d| async move { client.stop_container(request(message, d)).await },
        )
        .await
        .map(drop)
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        let mut client = self.runtime.clone();
        let message = api::RemoveContainerRequest {
            container_id: container_id.to_owned(),
        };
        self.call(
            "RemoveContainer",
            container(container_id),
            self.default_deadline(),
            |d| async move { client.remove_container(request(message, d)).await },
        )
        .await
        .map(drop)
    }

    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>> {
        let mut client = self.runtime.clone();
        let message = api::ListContainersRequest { filter };
        self.call(
            "ListContainers",
            runtime,
            self.default_deadline(),
            |d| async move { client.list_containers(request(message, d)).await },
        )
        .await
        .map(|response| response.containers)
    }

    async fn container_status(
        &self,
        container_id: &str,
        verbose: bool,
    ) -> Result<api::ContainerStatusResponse> {
        let mut client = self.runtime.clone();
        let message = api::ContainerStatusRequest {
            container_id: container_id.to_owned(),
            verbose,
        };
        let response = self
            .call(
                "ContainerStatus",
                container(container_id),
                self.default_deadline(),
                |d| async move { client.container_status(request(message, d)).await },
            )
            .await?;
        if response.status.is_none() {
            return Err(Error::InvalidResponse {
                operation: "ContainerStatus",
                target: container(container_id)(),
                reason: "no status in the answer".into(),
            });
        }
        Ok(response)
    }

    async fn update_container_resources(
        &self,
        container_id: &str,
        linux: Option<api::LinuxContainerResources>,
    ) -> Result<()> {
        let mut client = self.runtime.clone();
        let message = api::UpdateContainerResourcesRequest {
            container_id: container_id.to_owned(),
            linux,
            ..Default::default()
        };
        self.call(
            "UpdateContainerResources",
            container(container_id),
            self.default_deadline(),
            |d| async move { client.update_container_resources(request(message, d)).await },
        )
        .await
        .map(drop)
    }

    async fn reopen_container_log(&self, container_id: &str) -> Result<()> {
        let mut client = self.runtime.clone();
        let message = api::ReopenContainerLogRequest {
            container_id: container_id.to_owned(),
        };
        self.call(
            "ReopenContainerLog",
            container(container_id),
            self.default_deadline(),
            |d| async move { client.reopen_container_log(request(message, d)).await },
        )
        .await
        .map(drop)
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<api::ExecSyncResponse> {
        let mut client = self.runtime.clone();
        let message = api::ExecSyncRequest {
            container_id: container_id.to_owned(),
            cmd: cmd.to_vec(),
            timeout: timeout_seconds(timeout),
        };
        // As in the kubelet: the runtime enforces the command's timeout, the call deadline
        // leaves it the usual request timeout on top; no timeout means no deadline.
        let deadline = (!timeout.is_zero()).then(|| timeout + self.options.request_timeout);
        self.call(
            "ExecSync",
            container(container_id),
            deadline,
            |d| async move { client.exec_sync(request(message, d)).await },
        )
        .await
    }

    async fn exec(&self, message: api::ExecRequest) -> Result<String> {
        let mut client = self.runtime.clone();
        let id = message.container_id.clone();
        self.call(
            "Exec",
            container(&id),
            self.default_deadline(),
            |d| async move { client.exec(request(message, d)).await },
        )
        .await
        .map(|response| response.url)
    }

    async fn attach(&self, message: api::AttachRequest) -> Result<String> {
        let mut client = self.runtime.clone();
        let id = message.container_id.clone();
        self.call(
            "Attach",
            container(&id),
            self.default_deadline(),
            |d| async move { client.attach(request(message, d)).await },
        )
        .await
        .map(|response| response.url)
    }

    async fn port_forward(&self, message: api::PortForwardRequest) -> Result<String> {
        let mut client = self.runtime.clone();
        let id = message.pod_sandbox_id.clone();
        self.call(
            "PortForward",
            sandbox(&id),
            self.default_deadline(),
            |d| async move { client.port_forward(request(message, d)).await },
        )
        .await
        .map(|response| response.url)
    }

    async fn container_stats(&self, container_id: &str) -> Result<api::ContainerStats> {
        let mut client = self.runtime.clone();
        let message = api::ContainerStatsRequest {
            container_id: container_id.to_owned(),
        };
        let response = self
            .call(
                "ContainerStats",
                container(container_id),
                self.default_deadline(),
                |d| async move { client.container_stats(request(message, d)).await },
            )
            .await?;
        response.stats.ok_or_else(|| Error::InvalidResponse {
            operation: "ContainerStats",
            target: container(container_id)(),
            reason: "no stats in the answer".into(),
        })
    }

    async fn list_container_stats(
        &self,
        filter: Option<api::ContainerStatsFilter>,
    ) -> Result<Vec<api::ContainerStats>> {
        let mut client = self.runtime.clone();
        let message = api::ListContainerStatsRequest { filter };
        self.call(
            "ListContainerStats",
            runtime,
            self.default_deadline(),
            |d| async move { client.list_container_stats(request(message, d)).await },
        )
        .await
        .map(|response| response.stats)
    }

    async fn pod_sandbox_stats(&self, pod_sandbox_id: &str) -> Result<api::PodSandboxStats> {
        let mut client = self.runtime.clone();
        let message = api::PodSandboxStatsRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
        };
        let response = self
            .call(
                "PodSandboxStats",
                sandbox(pod_sandbox_id),
                self.default_deadline(),
                |d| async move { client.pod_sandbox_stats(request(message, d)).await },
            )
            .await?;
        response.stats.ok_or_else(|| Error::InvalidResponse {
            operation: "PodSandboxStats",
            target: sandbox(pod_sandbox_id)(),
            reason: "no stats in the answer".into(),
        })
    }

    async fn list_pod_sandbox_stats(
        &self,
        filter: Option<api::PodSandboxStatsFilter>,
    ) -> Result<Vec<api::PodSandboxStats>> {
        let mut client = self.runtime.clone();
        let message = api::ListPodSandboxStatsRequest { filter };
        self.call(
            "ListPodSandboxStats",
            runtime,
            self.default_deadline(),
            |d| async move { client.list_pod_sandbox_stats(request(message, d)).await },
        )
        .await
        .map(|response| response.stats)
    }

    async fn update_runtime_config(&self, runtime_config: api::RuntimeConfig) -> Result<()> {
        let mut client = self.runtime.clone();
        let message = api::UpdateRuntimeConfigRequest {
            runtime_config: Some(runtime_config),
        };
        self.call(
            "UpdateRuntimeConfig",
            runtime,
            self.default_deadline(),
            |d| async move { client.update_runtime_config(request(message, d)).await },
        )
        .await
        .map(drop)
    }

    async fn runtime_config(&self) -> Result<api::RuntimeConfigResponse> {
        let mut client = self.runtime.clone();
        self.call(
            "RuntimeConfig",
            runtime,
            self.default_deadline(),
            |d| async move {
                client
                    .runtime_config(request(api::RuntimeConfigRequest {}, d))
                    .await
            },
        )
        .await
    }

    async fn get_container_events(&self) -> Result<ContainerEventStream> {
        let mut client = self.runtime.clone();
        // A stream lives as long as the subscriber wants it: no deadline.
        let stream = self
            .call("GetContainerEvents", runtime, None, |_| async move {
                client.get_container_events(api::GetEventsRequest {}).await
            })
            .await?;
        Ok(stream
            .map(|item| {
                item.map_err(|status| {
                    Error::from_status("GetContainerEvents", "runtime".into(), &status)
                })
            })
            .boxed())
    }
}

#[async_trait]
impl ImageService for RemoteRuntime {
    async fn list_images(&self, filter: Option<api::ImageFilter>) -> Result<Vec<api::Image>> {
        let mut client = self.image.clone();
        let message = api::ListImagesRequest { filter };
        self.call(
            "ListImages",
            runtime,
            self.default_deadline(),
            |d| async move { client.list_images(request(message, d)).await },
        )
        .await
        .map(|response| response.images)
    }

    async fn image_status(
        &self,
        spec: &api::ImageSpec,
        verbose: bool,
    ) -> Result<api::ImageStatusResponse> {
        let mut client = self.image.clone();
        let message = api::ImageStatusRequest {
            image: Some(spec.clone()),
            verbose,
        };
        self.call(
            "ImageStatus",
            image(spec),
            self.default_deadline(),
            |d| async move { client.image_status(request(message, d)).await },
        )
        .await
    }

    async fn pull_image(
        &self,
        spec: &api::ImageSpec,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<&api::PodSandboxConfig>,
    ) -> Result<String> {
        let mut client = self.image.clone();
        let message = Box::new(api::PullImageRequest {
            image: Some(spec.clone()),
            auth,
            sandbox_config: sandbox_config.cloned(),
        });
        let response = self
            .call(
                "PullImage",
                image(spec),
                self.options.pull_timeout,
                |d| async move { client.pull_image(request(*message, d)).await },
            )
            .await?;
        if response.image_ref.is_empty() {
            return Err(Error::InvalidResponse {
                operation: "PullImage",
                target: image(spec)(),
                reason: "empty image reference".into(),
            });
        }
        Ok(response.image_ref)
    }

    async fn remove_image(&self, spec: &api::ImageSpec) -> Result<()> {
        let mut client = self.image.clone();
        let message = api::RemoveImageRequest {
            image: Some(spec.clone()),
        };
        self.call(
            "RemoveImage",
            image(spec),
            self.default_deadline(),
            |d| async move { client.remove_image(request(message, d)).await },
        )
        .await
        .map(drop)
    }

    async fn image_fs_info(&self) -> Result<api::ImageFsInfoResponse> {
        let mut client = self.image.clone();
        self.call(
            "ImageFsInfo",
            runtime,
            self.default_deadline(),
            |d| async move {
                client
                    .image_fs_info(request(api::ImageFsInfoRequest {}, d))
                    .await
            },
        )
        .await
    }
}

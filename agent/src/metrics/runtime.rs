//! [`InstrumentedRuntime`]: a [`RuntimeService`] that times every call and counts its
//! errors (`kubelet_runtime_operations_*`, labelled with the operation names of the kubelet's
//! `instrumentedRuntimeService`: `run_podsandbox`, `list_containers`, `exec_sync`, ...).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferrolet_cri::{ContainerEventStream, Result, RuntimeService, api};

/// Wraps a runtime; every call is recorded in [`super::kubelet_metrics`].
pub struct InstrumentedRuntime {
    inner: Arc<dyn RuntimeService>,
}

impl std::fmt::Debug for InstrumentedRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedRuntime")
            .finish_non_exhaustive()
    }
}

impl InstrumentedRuntime {
    #[must_use]
    pub fn new(inner: Arc<dyn RuntimeService>) -> Self {
        InstrumentedRuntime { inner }
    }
}

async fn timed<T>(operation: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
    let started = Instant::now();
    let result = call.await;
    super::kubelet_metrics().observe_runtime_operation(
        operation,
        started.elapsed(),
        result.is_ok(),
    );
    result
}

#[async_trait]
impl RuntimeService for InstrumentedRuntime {
    async fn version(&self) -> Result<api::VersionResponse> {
        timed("version", self.inner.version()).await
    }

    async fn status(&self, verbose: bool) -> Result<api::StatusResponse> {
        timed("status", self.inner.status(verbose)).await
    }

    async fn run_pod_sandbox(
        &self,
        config: &api::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String> {
        timed(
            "run_podsandbox",
            self.inner.run_pod_sandbox(config, runtime_handler),
        )
        .await
    }

    async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<()> {
        timed(
            "stop_podsandbox",
            self.inner.stop_pod_sandbox(pod_sandbox_id),
        )
        .await
    }

    async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<()> {
        timed(
            "remove_podsandbox",
            self.inner.remove_pod_sandbox(pod_sandbox_id),
        )
        .await
    }

    async fn pod_sandbox_status(
        &self,
        pod_sandbox_id: &str,
        verbose: bool,
    ) -> Result<api::PodSandboxStatusResponse> {
        timed(
            "podsandbox_status",
            self.inner.pod_sandbox_status(pod_sandbox_id, verbose),
        )
        .await
    }

    async fn list_pod_sandbox(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>> {
        timed("list_podsandbox", self.inner.list_pod_sandbox(filter)).await
    }

    async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: &api::ContainerConfig,
        sandbox_config: &api::PodSandboxConfig,
    ) -> Result<String> {
        timed(
            "create_container",
            self.inner
                .create_container(pod_sandbox_id, config, sandbox_config),
        )
        .await
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        timed("start_container", self.inner.start_container(container_id)).await
    }

    async fn stop_container(&self, container_id: &str, timeout: Duration) -> Result<()> {
        timed(
            "stop_container",
            self.inner.stop_container(container_id, timeout),
        )
        .await
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        timed(
            "remove_container",
            self.inner.remove_container(container_id),
        )
        .await
    }

    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>> {
        timed("list_containers", self.inner.list_containers(filter)).await
    }

    async fn container_status(
        &self,
        container_id: &str,
        verbose: bool,
    ) -> Result<api::ContainerStatusResponse> {
        timed(
            "container_status",
            self.inner.container_status(container_id, verbose),
        )
        .await
    }

    async fn update_container_resources(
        &self,
        container_id: &str,
        linux: Option<api::LinuxContainerResources>,
    ) -> Result<()> {
        timed(
            "update_container",
            self.inner.update_container_resources(container_id, linux),
        )
        .await
    }

    async fn reopen_container_log(&self, container_id: &str) -> Result<()> {
        timed(
            "reopen_container_log",
            self.inner.reopen_container_log(container_id),
        )
        .await
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<api::ExecSyncResponse> {
        timed(
            "exec_sync",
            self.inner.exec_sync(container_id, cmd, timeout),
        )
        .await
    }

    async fn exec(&self, request: api::ExecRequest) -> Result<String> {
        timed("exec", self.inner.exec(request)).await
    }

    async fn attach(&self, request: api::AttachRequest) -> Result<String> {
        timed("attach", self.inner.attach(request)).await
    }

    async fn port_forward(&self, request: api::PortForwardRequest) -> Result<String> {
        timed("port_forward", self.inner.port_forward(request)).await
    }

    async fn container_stats(&self, container_id: &str) -> Result<api::ContainerStats> {
        timed("container_stats", self.inner.container_stats(container_id)).await
    }

    async fn list_container_stats(
        &self,
        filter: Option<api::ContainerStatsFilter>,
    ) -> Result<Vec<api::ContainerStats>> {
        timed(
            "list_container_stats",
            self.inner.list_container_stats(filter),
        )
        .await
    }

    async fn pod_sandbox_stats(&self, pod_sandbox_id: &str) -> Result<api::PodSandboxStats> {
        timed(
            "pod_sandbox_stats",
            self.inner.pod_sandbox_stats(pod_sandbox_id),
        )
        .await
    }

    async fn list_pod_sandbox_stats(
        &self,
        filter: Option<api::PodSandboxStatsFilter>,
    ) -> Result<Vec<api::PodSandboxStats>> {
        timed(
            "list_podsandbox_stats",
            self.inner.list_pod_sandbox_stats(filter),
        )
        .await
    }

    async fn update_runtime_config(&self, runtime_config: api::RuntimeConfig) -> Result<()> {
        timed(
            "update_runtime_config",
            self.inner.update_runtime_config(runtime_config),
        )
        .await
    }

    async fn runtime_config(&self) -> Result<api::RuntimeConfigResponse> {
        timed("runtime_config", self.inner.runtime_config()).await
    }

    async fn get_container_events(&self) -> Result<ContainerEventStream> {
        timed("get_container_events", self.inner.get_container_events()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolet_cri::fake::FakeRuntime;

    #[tokio::test]
    async fn calls_are_counted_with_their_errors() {
        let metrics = super::super::kubelet_metrics();
        let runtime = InstrumentedRuntime::new(Arc::new(FakeRuntime::new()));
        let calls = metrics
            .runtime_operations
            .get(&["container_status"])
            .unwrap_or(0.0);
        let errors = metrics
            .runtime_operation_errors
            .get(&["container_status"])
            .unwrap_or(0.0);
        assert!(runtime.container_status("missing", false).await.is_err());
        assert_eq!(
            metrics.runtime_operations.get(&["container_status"]),
            Some(calls + 1.0)
        );
        assert_eq!(
            metrics.runtime_operation_errors.get(&["container_status"]),
            Some(errors + 1.0)
        );
        assert!(runtime.version().await.is_ok());
        assert!(metrics.runtime_operation_duration.count(&["version"]) >= 1);
    }
}

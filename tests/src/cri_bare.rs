//! The bare CRI client the benches measure against: the generated gRPC client over a plain
//! tonic channel to the runtime's unix socket, what any gRPC client would do, with nothing of
//! ferrolet's client (retries, version negotiation, timeouts) in between.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use ferrolet_cri::api;
use ferrolet_cri::api::runtime_service_client::RuntimeServiceClient;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::containerd_endpoint;

/// The bare client of hack/containerd's containerd.
pub async fn client() -> Result<RuntimeServiceClient<Channel>> {
    let path = containerd_endpoint().path().to_owned();
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .context("connecting the bare CRI client")?;
    Ok(RuntimeServiceClient::new(channel))
}

/// One pod through the bare client: `RunPodSandbox`, `CreateContainer`, `StartContainer`.
/// Returns the three call latencies and the sandbox's ID.
pub async fn start_pod(
    mut client: RuntimeServiceClient<Channel>,
    sandbox: api::PodSandboxConfig,
    container: api::ContainerConfig,
) -> Result<([Duration; 3], String)> {
    let t = Instant::now();
    let sandbox_id = client
        .run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(sandbox.clone()),
            runtime_handler: String::new(),
        })
        .await
        .context("RunPodSandbox")?
        .into_inner()
        .pod_sandbox_id;
    let run = t.elapsed();
    let t = Instant::now();
    let container_id = client
        .create_container(api::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.clone(),
            config: Some(container),
            sandbox_config: Some(sandbox),
        })
        .await
        .context("CreateContainer")?
        .into_inner()
        .container_id;
    let create = t.elapsed();
    let t = Instant::now();
    client
        .start_container(api::StartContainerRequest { container_id })
        .await
        .context("StartContainer")?;
    Ok(([run, create, t.elapsed()], sandbox_id))
}

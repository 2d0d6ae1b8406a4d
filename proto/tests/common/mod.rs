//! Shared by the round-trip tests: serve a tonic router on a unix socket in a fresh temp dir
//! (as the kubelet, plugins and runtimes do) and dial it the way ferrolet dials CRI/CSI sockets.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tempfile::TempDir;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::Router;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

/// A tonic server listening on `<tempdir>/plugin.sock`; the directory goes away on drop.
pub struct UnixServer {
    path: PathBuf,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    _dir: TempDir,
}

impl UnixServer {
    /// Binds the socket, then serves `router` on it in a background task.
    pub fn start(router: Router) -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        let path = dir.path().join("plugin.sock");
        let listener = UnixListener::bind(&path).expect("bind unix socket");
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(router.serve_with_incoming_shutdown(
            UnixListenerStream::new(listener),
            async {
                // Either an explicit stop or the sender being dropped ends the server.
                let _ = stopped.await;
            },
        ));
        Self {
            path,
            shutdown,
            task,
            _dir: dir,
        }
    }

    /// A client channel to this server over its unix socket.
    pub async fn channel(&self) -> Channel {
        connect(&self.path).await
    }

    /// Stops the server and checks that it ran without a transport error.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task
            .await
            .expect("server task panicked")
            .expect("server failed");
    }
}

/// Dials a unix socket with tonic's `Endpoint`; the URI is a placeholder that tonic needs but
/// the connector ignores.
pub async fn connect(path: &Path) -> Channel {
    let path = path.to_owned();
    Endpoint::try_from("http://[::]:50051")
        .expect("static endpoint URI")
        .connect_with_connector(service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .expect("connect over unix socket")
}

/// Sends one unary call on an explicit gRPC method path, bypassing the generated client, so a
/// test can pin the exact `/package.Service/Method` string the other side of the wire uses.
pub async fn raw_unary<Req, Resp>(
    channel: Channel,
    path: &'static str,
    request: Req,
) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let response = grpc
        .unary(
            tonic::Request::new(request),
            tonic::codegen::http::uri::PathAndQuery::from_static(path),
            tonic_prost::ProstCodec::<Req, Resp>::default(),
        )
        .await?;
    Ok(response.into_inner())
}

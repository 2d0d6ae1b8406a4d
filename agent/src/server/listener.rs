//! Accept loops: the HTTPS server (client certificates handed to the handlers) and the plain
//! read-only `/healthz` listener. HTTP/1.1 with upgrades, for the streaming endpoints.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::handlers::State;

async fn accept_loop<F, Fut>(listener: TcpListener, cancel: CancellationToken, each: F)
where
    F: Fn(tokio::net::TcpStream, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                connections.spawn(each(stream, cancel.clone()));
            }
            Err(err) => {
                tracing::warn!(%err, "kubelet server accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    connections.close();
}

async fn connection<I, S, Fut>(io: I, service: S, cancel: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: Fn(Request<hyper::body::Incoming>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let answer = service(request);
        async move { Ok::<_, std::convert::Infallible>(answer.await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%err, "kubelet server connection ended with an error");
            }
        }
        () = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
        }
    }
}

/// The HTTPS server.
pub(super) async fn serve(
    state: Arc<State>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    cancel: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    accept_loop(listener, cancel, move |stream, cancel| {
        let acceptor = acceptor.clone();
        let state = state.clone();
        async move {
            let tls = match acceptor.accept(stream).await {
                Ok(tls) => tls,
                Err(err) => {
                    tracing::debug!(%err, "kubelet server TLS handshake failed");
                    return;
                }
            };
            let certificates: Arc<Vec<Vec<u8>>> = Arc::new(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .map(|chain| chain.iter().map(|c| c.as_ref().to_vec()).collect())
                    .unwrap_or_default(),
            );
            let service = move |request: Request<hyper::body::Incoming>| {
                let state = state.clone();
                let certificates = certificates.clone();
                async move { state.handle(request.map(Body::new), &certificates).await }
            };
            connection(TokioIo::new(tls), service, cancel).await;
        }
    })
    .await;
}

/// The read-only `/healthz`.
pub(super) async fn serve_healthz(
    state: Arc<State>,
    listener: TcpListener,
    cancel: CancellationToken,
) {
    accept_loop(listener, cancel, move |stream, cancel| {
        let state = state.clone();
        async move {
            let service = move |request: Request<hyper::body::Incoming>| {
                let state = state.clone();
                async move {
                    if request.uri().path() == "/healthz" {
                        state.healthz()
                    } else {
                        let mut response = Response::new(Body::from("404 page not found\n"));
                        *response.status_mut() = StatusCode::NOT_FOUND;
                        response
                    }
                }
            };
            connection(TokioIo::new(stream), service, cancel).await;
        }
    })
    .await;
}

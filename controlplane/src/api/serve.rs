//! The listener: accepts connections (TLS with optional client certificates, or plain TCP
//! for tests), speaks HTTP/1.1 and HTTP/2, and hands each request to [`ApiServer::handle`]
//! with the connection's peer certificate in the request extensions.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::server::ApiServer;

/// The DER certificate chain a client presented, if any.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificates(pub Vec<Vec<u8>>);

/// Serves `server` on `listener` until `cancel`.
pub async fn serve(
    server: Arc<ApiServer>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    cancel: CancellationToken,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        let acceptor = acceptor.clone();
        let cancel = cancel.clone();
        connections.spawn(async move {
            match acceptor {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls) => {
                        let certs = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .map(|chain| chain.iter().map(|c| c.as_ref().to_vec()).collect())
                            .unwrap_or_default();
                        connection(
                            server,
                            TokioIo::new(tls),
                            peer,
                            PeerCertificates(certs),
                            cancel,
                        )
                        .await;
                    }
                    Err(err) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                },
                None => {
                    connection(
                        server,
                        TokioIo::new(stream),
                        peer,
                        PeerCertificates::default(),
                        cancel,
                    )
                    .await;
                }
            }
        });
    }
    connections.close();
}

async fn connection<I>(
    server: Arc<ApiServer>,
    io: I,
    peer: SocketAddr,
    certs: PeerCertificates,
    cancel: CancellationToken,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        let server = server.clone();
        request.extensions_mut().insert(certs.clone());
        request.extensions_mut().insert(peer);
        async move {
            let request = request.map(Body::new);
            Ok::<_, std::convert::Infallible>(server.handle(request).await)
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%peer, %err, "connection ended with an error");
            }
        }
        () = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), connection).await;
        }
    }
}

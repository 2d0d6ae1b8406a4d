//! Development aid: the API server on plain HTTP over an in-memory store.
use ferrolet_controlplane::api::{ApiConfig, ApiServer};
use ferrolet_controlplane::store::memory::MemoryStore;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    tracing_subscriber_init();
    let cancel = CancellationToken::new();
    let server = ApiServer::new(
        Arc::new(MemoryStore::new()),
        ApiConfig::default(),
        None,
        cancel.clone(),
    )
    .await
    .unwrap();
    server.bootstrap().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:18080")
        .await
        .unwrap();
    ferrolet_controlplane::api::serve::serve(server, listener, None, cancel).await;
}

fn tracing_subscriber_init() {}

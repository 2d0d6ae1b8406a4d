//! The load besides the nodes' heartbeats: the pod creator and the periodic lister.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt as _, stream};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::fake_node::{self, CONTAINER, IMAGE};
use super::metrics::{Figure, REQUEST_TIMEOUT, Recorder};
use super::workload::Settings;

/// The namespace of the bench pods.
pub const NAMESPACE: &str = "bench";

/// The pods the creator made.
#[derive(Debug, Default)]
pub struct Created {
    /// Pod name → when its create was acknowledged.
    pub acks: HashMap<String, Instant>,
    pub first_start: Option<Instant>,
    pub last_ack: Option<Instant>,
}

/// Creates the pods, `pod_concurrency` in flight, started at `pod_rate` if set, until done
/// or `cancel`.
pub async fn create_pods(
    client: Client,
    settings: Settings,
    recorder: Arc<Recorder>,
    count: Arc<AtomicUsize>,
    cancel: CancellationToken,
) -> Created {
    let api = Api::<Pod>::namespaced(client, NAMESPACE);
    let ticker = settings.pod_rate.map(|rate| {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker
    });
    let total = settings.pods;
    let indices = stream::unfold((0, ticker), move |(i, mut ticker)| async move {
        if i >= total {
            return None;
        }
        if let Some(ticker) = ticker.as_mut() {
            ticker.tick().await;
        }
        Some((i, (i + 1, ticker)))
    });
    let mut created = Created {
        first_start: Some(Instant::now()),
        ..Created::default()
    };
    let mut in_flight = std::pin::pin!(
        indices
            .map(|i| {
                let (api, recorder) = (&api, &recorder);
                async move {
                    let pod = bench_pod(i);
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let made = recorder
                        .write(
                            Figure::PodCreate,
                            || format!("creating pod {NAMESPACE}/{name}"),
                            api.create(&PostParams::default(), &pod),
                        )
                        .await;
                    made.map(|_| (name, Instant::now()))
                }
            })
            .buffer_unordered(settings.pod_concurrency.max(1))
    );
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => break,
            next = in_flight.next() => next,
        };
        match next {
            Some(Some((name, acked))) => {
                created.last_ack = created.last_ack.max(Some(acked));
                created.acks.insert(name, acked);
                count.fetch_add(1, Ordering::Relaxed);
            }
            Some(None) => {}
            None => break,
        }
    }
    created
}

/// Bench pod `i`: one small container, so thousands fit.
fn bench_pod(i: usize) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("bench-pod-{i:06}"),
            "namespace": NAMESPACE,
            "labels": { "app": "bench" },
        },
        "spec": {
            "containers": [{
                "name": CONTAINER,
                "image": IMAGE,
                "resources": { "requests": { "cpu": "1m", "memory": "1Mi" } },
            }],
            "enableServiceLinks": false,
        },
    }))
    .unwrap_or_default()
}

/// Every `interval`: all pods, the pods of one node (field selector), all nodes; until
/// `cancel`.
pub async fn list_periodically(
    client: Client,
    nodes: usize,
    interval: Duration,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for round in 0_usize.. {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // A different node each round (7919 is prime, so this visits them all).
        let node = fake_node::node_name(round.wrapping_mul(7919) % nodes.max(1));
        let lists = [
            (Figure::ListPodsAll, "/api/v1/pods".to_owned()),
            (
                Figure::ListPodsNode,
                format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"),
            ),
            (Figure::ListNodes, "/api/v1/nodes".to_owned()),
        ];
        for (figure, path) in lists {
            let request = match http::Request::get(path.as_str()).body(Vec::new()) {
                Ok(request) => request,
                Err(err) => {
                    recorder.error(format!("building GET {path}: {err}"));
                    continue;
                }
            };
            let started = Instant::now();
            // The whole body is read: time to the last byte, as a client sees it.
            match tokio::time::timeout(REQUEST_TIMEOUT, client.request_text(request)).await {
                Ok(Ok(_)) => recorder.sample(figure, started.elapsed()),
                Ok(Err(err)) => recorder.error(format!("GET {path}: {err}")),
                Err(_) => {
                    recorder.error(format!("GET {path}: no answer within {REQUEST_TIMEOUT:?}"));
                }
            }
        }
    }
}

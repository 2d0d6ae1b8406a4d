//! The kubelet's own metrics, served as Prometheus text on `/metrics`: pod start latency,
//! PLEG relist duration, CRI operation latency and errors (through [`InstrumentedRuntime`]),
//! running pods and containers (counted at each scrape), and probe results.
//!
//! Like the kubelet's (which registers into Prometheus' default registry) they are one
//! process-wide set, [`kubelet_metrics`], so that the PLEG, the pod workers and the probers
//! record into it without being handed a handle.

mod registry;
mod runtime;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use registry::{HistogramVec, ValueVec};
pub use runtime::InstrumentedRuntime;

/// Prometheus' default buckets.
const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// `kubelet_pod_start_duration_seconds`' buckets, as the kubelet has them.
const POD_START_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

/// The labels of one probe result (`prober_probe_total`).
#[derive(Debug, Clone, Copy)]
pub struct ProbeResult<'a> {
    /// `Liveness`, `Readiness` or `Startup`.
    pub probe_type: &'a str,
    /// `successful`, `failed` or `unknown`.
    pub result: &'a str,
    pub container: &'a str,
    pub pod: &'a str,
    pub namespace: &'a str,
    pub pod_uid: &'a str,
}

/// Every metric of the kubelet.
#[derive(Debug)]
pub struct KubeletMetrics {
    pub pod_start_duration: HistogramVec,
    pub pleg_relist_duration: HistogramVec,
    pub runtime_operations: ValueVec,
    pub runtime_operation_errors: ValueVec,
    pub runtime_operation_duration: HistogramVec,
    pub running_pods: ValueVec,
    pub running_containers: ValueVec,
    pub probe_results: ValueVec,
    /// When each pod not yet running was first seen (by UID); `None` once observed.
    pods_starting: Mutex<BTreeMap<String, Option<Instant>>>,
}

static KUBELET_METRICS: KubeletMetrics = KubeletMetrics {
    pod_start_duration: HistogramVec::new(
        "kubelet_pod_start_duration_seconds",
        "Duration in seconds from the kubelet seeing a pod for the first time to the pod starting to run.",
        &[],
        POD_START_BUCKETS,
    ),
    pleg_relist_duration: HistogramVec::new(
        "kubelet_pleg_relist_duration_seconds",
        "Duration in seconds for relisting pods in PLEG.",
        &[],
        DEFAULT_BUCKETS,
    ),
    runtime_operations: ValueVec::counter(
        "kubelet_runtime_operations_total",
        "Cumulative number of runtime operations by operation type.",
        &["operation_type"],
    ),
    runtime_operation_errors: ValueVec::counter(
        "kubelet_runtime_operations_errors_total",
        "Cumulative number of runtime operation errors by operation type.",
        &["operation_type"],
    ),
    runtime_operation_duration: HistogramVec::new(
        "kubelet_runtime_operations_duration_seconds",
        "Duration in seconds of runtime operations. Broken down by operation type.",
        &["operation_type"],
        DEFAULT_BUCKETS,
    ),
    running_pods: ValueVec::gauge(
        "kubelet_running_pods",
        "Number of pods that have a running pod sandbox.",
        &[],
    ),
    running_containers: ValueVec::gauge(
        "kubelet_running_containers",
        "Number of containers currently running.",
        &["container_state"],
    ),
    probe_results: ValueVec::counter(
        "prober_probe_total",
        "Cumulative number of a liveness, readiness or startup probe for a container by result.",
        &[
            "probe_type",
            "result",
            "container",
            "pod",
            "namespace",
            "pod_uid",
        ],
    ),
    pods_starting: Mutex::new(BTreeMap::new()),
};

/// The process' kubelet metrics.
#[must_use]
pub fn kubelet_metrics() -> &'static KubeletMetrics {
    &KUBELET_METRICS
}

impl KubeletMetrics {
    fn starting(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<Instant>>> {
        self.pods_starting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A pod worker saw a pod for the first time; `already_running` (an agent restart found
    /// it running) keeps it out of the start latency.
    pub fn pod_seen(&self, uid: &str, already_running: bool) {
        self.starting()
            .entry(uid.to_owned())
            .or_insert_with(|| (!already_running).then(Instant::now));
    }

    /// A pod's status says Running: its start latency is observed the first time.
    pub fn pod_running(&self, uid: &str) {
        let mut starting = self.starting();
        if let Some(slot) = starting.get_mut(uid)
            && let Some(seen) = slot.take()
        {
            self.pod_start_duration
                .observe_duration(&[], seen.elapsed());
        }
    }

    /// A pod is gone.
    pub fn pod_forgotten(&self, uid: &str) {
        self.starting().remove(uid);
    }

    /// One PLEG relist took `elapsed`.
    pub fn observe_relist(&self, elapsed: Duration) {
        self.pleg_relist_duration.observe_duration(&[], elapsed);
    }

    /// One CRI call.
    pub fn observe_runtime_operation(&self, operation: &str, elapsed: Duration, ok: bool) {
        self.runtime_operations.add(&[operation], 1.0);
        self.runtime_operation_duration
            .observe_duration(&[operation], elapsed);
        if !ok {
            self.runtime_operation_errors.add(&[operation], 1.0);
        }
    }

    /// One probe result: the hook for the probers.
    pub fn record_probe(&self, probe: ProbeResult<'_>) {
        self.probe_results.add(
            &[
                probe.probe_type,
                probe.result,
                probe.container,
                probe.pod,
                probe.namespace,
                probe.pod_uid,
            ],
            1.0,
        );
    }

    /// Forgets the probe series of a pod that is gone.
    pub fn forget_probes(&self, pod_uid: &str) {
        self.probe_results.retain(|labels| labels[5] != pod_uid);
    }

    /// The text exposition of every metric.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.pod_start_duration.encode(&mut out);
        self.pleg_relist_duration.encode(&mut out);
        self.runtime_operations.encode(&mut out);
        self.runtime_operation_errors.encode(&mut out);
        self.runtime_operation_duration.encode(&mut out);
        self.running_pods.encode(&mut out);
        self.running_containers.encode(&mut out);
        self.probe_results.encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_start_is_observed_once_and_not_for_running_pods() {
        let metrics = kubelet_metrics();
        let before = metrics.pod_start_duration.count(&[]);
        metrics.pod_seen("metrics-test-new", false);
        metrics.pod_seen("metrics-test-old", true);
        metrics.pod_running("metrics-test-new");
        metrics.pod_running("metrics-test-new");
        metrics.pod_running("metrics-test-old");
        assert_eq!(metrics.pod_start_duration.count(&[]), before + 1);
        metrics.pod_forgotten("metrics-test-new");
        metrics.pod_forgotten("metrics-test-old");
    }

    #[test]
    fn probe_results_are_counted_and_forgotten() {
        let metrics = kubelet_metrics();
        let probe = ProbeResult {
            probe_type: "Liveness",
            result: "successful",
            container: "c",
            pod: "p",
            namespace: "ns",
            pod_uid: "metrics-test-uid",
        };
        metrics.record_probe(probe);
        metrics.record_probe(probe);
        let labels = ["Liveness", "successful", "c", "p", "ns", "metrics-test-uid"];
        assert_eq!(metrics.probe_results.get(&labels), Some(2.0));
        assert!(metrics.encode().contains(
            "prober_probe_total{probe_type=\"Liveness\",result=\"successful\",container=\"c\",pod=\"p\",namespace=\"ns\",pod_uid=\"metrics-test-uid\"} 2"
        ));
        metrics.forget_probes("metrics-test-uid");
        assert_eq!(metrics.probe_results.get(&labels), None);
    }
}

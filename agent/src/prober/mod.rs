//! Container probes, as the kubelet's prober does them: liveness, readiness and startup, each
//! with an exec, httpGet, tcpSocket or grpc check.
//!
//! | here | upstream (`pkg/kubelet/prober`, `pkg/probe`) |
//! | --- | --- |
//! | [`state`] | `worker.go` `doProbe`: thresholds, startup gating, hold after a kill |
//! | [`results`] | `results/results_manager.go` |
//! | [`manager`] | `prober_manager.go`: one worker per container and probe kind |
//! | [`worker`] | `worker.go` `run`: the periodic loop |
//! | [`check`] | `prober.go` `runProbe`, `probe/exec`, `probe/tcp`, `probe/grpc` |
//! | [`http`] | `probe/http/http.go` (shared with the httpGet lifecycle hooks) |
//!
//! The pod worker tells the [`ProbeManager`] after each sync which container instance runs;
//! the probe workers report results into the [`ResultsStore`] and wake the pod worker when a
//! result changes. The pod worker reads the results for its decisions (a liveness or startup
//! failure kills and restarts the container) and for the status (`started`, `ready`, and so
//! the pod's `Ready` and `ContainersReady` conditions).

pub mod check;
pub mod http;
pub mod manager;
pub mod results;
pub mod state;
pub mod worker;

pub use manager::ProbeManager;
pub use results::{ProbeResult, ResultsStore};

use k8s_openapi::api::core::v1::{Container, Probe};

/// The three kinds of probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    /// All kinds.
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Liveness,
        ProbeKind::Readiness,
        ProbeKind::Startup,
    ];

    /// The capitalized name upstream's events use (`Liveness probe failed: ...`).
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }

    /// The container's probe of this kind.
    #[must_use]
    pub fn of(self, container: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Liveness => container.liveness_probe.as_ref(),
            ProbeKind::Readiness => container.readiness_probe.as_ref(),
            ProbeKind::Startup => container.startup_probe.as_ref(),
        }
    }

    /// The result a new container instance starts with: not ready, alive, not started.
    #[must_use]
    pub fn initial(self) -> ProbeResult {
        match self {
            ProbeKind::Liveness => ProbeResult::Success,
            ProbeKind::Readiness => ProbeResult::Failure,
            ProbeKind::Startup => ProbeResult::Unknown,
        }
    }
}

/// A probe's timing and thresholds with the API's defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTiming {
    pub initial_delay: std::time::Duration,
    pub period: std::time::Duration,
    pub timeout: std::time::Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeTiming {
    /// The timing of `probe`: period 10 s, timeout 1 s, thresholds 1 and 3 by default.
    /// Liveness and startup probes need one success whatever the spec says.
    #[must_use]
    pub fn of(probe: &Probe, kind: ProbeKind) -> Self {
        let seconds = |v: Option<i32>, default: u64, min: u64| {
            std::time::Duration::from_secs(
                v.map_or(default, |v| u64::try_from(v).unwrap_or(0))
                    .max(min),
            )
        };
        let count = |v: Option<i32>, default: u32| {
            v.map_or(default, |v| u32::try_from(v).unwrap_or(1).max(1))
        };
        Self {
            initial_delay: seconds(probe.initial_delay_seconds, 0, 0),
            period: seconds(probe.period_seconds, 10, 1),
            timeout: seconds(probe.timeout_seconds, 1, 1),
            success_threshold: if kind == ProbeKind::Readiness {
                count(probe.success_threshold, 1)
            } else {
                1
            },
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

//! One probe worker's decisions, without I/O or a clock: whether to probe now, and which
//! result a run of probe outcomes amounts to (upstream `worker.go` `doProbe`).

use std::time::Duration;

use jiff::Timestamp;

use super::{ProbeKind, ProbeResult, ProbeTiming};

/// What the probe worker knows of its container from the pod worker's last sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerView {
    /// The runtime ID of the container's newest instance.
    pub container_id: Option<String>,
    /// That instance runs.
    pub running: bool,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// The pod's IP (the default host of httpGet and tcpSocket, the host of grpc).
    pub pod_ip: Option<String>,
    /// The pod is being deleted.
    pub terminating: bool,
}

/// What the worker does at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing this time.
    Skip,
    /// Run the probe.
    Probe,
    /// Run it once the initial delay has passed, this long from now.
    Delay(Duration),
}

/// A change to the results store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// A new instance is probed: forget the old one's result, start the new one at the
    /// kind's initial result (unless one was seeded for it).
    Switch { old: Option<String>, new: String },
    /// The current instance's result.
    Set(ProbeResult),
}

/// The state of one (container, kind) worker.
#[derive(Debug, Clone)]
pub struct ProbeState {
    kind: ProbeKind,
    timing: ProbeTiming,
    container_id: Option<String>,
    /// The last raw outcome and how many times in a row it came.
    last: Option<ProbeResult>,
    run: u32,
    /// A liveness or startup failure was reported: no more probes until a new instance.
    on_hold: bool,
}

impl ProbeState {
    #[must_use]
    pub fn new(kind: ProbeKind, timing: ProbeTiming) -> Self {
        Self {
            kind,
            timing,
            container_id: None,
            last: None,
            run: 0,
            on_hold: false,
        }
    }

    /// The probed instance.
    #[must_use]
    pub fn container_id(&self) -> Option<&str> {
        self.container_id.as_deref()
    }

    /// A tick: `started` is whether the instance passed its startup probe (true without one).
    pub fn tick(
        &mut self,
        view: &ContainerView,
        started: bool,
        now: Timestamp,
    ) -> (Vec<Update>, Step) {
        let mut updates = Vec::new();
        if let Some(id) = &view.container_id
            && self.container_id.as_ref() != Some(id)
        {
            updates.push(Update::Switch {
                old: self.container_id.replace(id.clone()),
                new: id.clone(),
            });
            self.on_hold = false;
            self.last = None;
            self.run = 0;
        }
        if self.container_id.is_none() {
            return (updates, Step::Skip);
        }
        if !view.running {
            updates.push(Update::Set(ProbeResult::Failure));
            return (updates, Step::Skip);
        }
        if view.terminating && self.kind != ProbeKind::Readiness {
            // A pod on its way out is not restarted for failing a probe.
            updates.push(Update::Set(ProbeResult::Success));
            return (updates, Step::Skip);
        }
        let gated = match self.kind {
            ProbeKind::Startup => started,
            ProbeKind::Liveness | ProbeKind::Readiness => !started,
        };
        if gated || self.on_hold {
            return (updates, Step::Skip);
        }
        if let Some(started_at) = view.started_at {
            let ready_at = started_at
                + jiff::SignedDuration::try_from(self.timing.initial_delay).unwrap_or_default();
            if let Ok(left) = Duration::try_from(ready_at.duration_since(now))
                && !left.is_zero()
            {
                return (updates, Step::Delay(left));
            }
        }
        (updates, Step::Probe)
    }

    /// A probe's outcome (`None` for an error, which counts for nothing); the result to
    /// report once a threshold is reached.
    pub fn record(&mut self, outcome: Option<ProbeResult>) -> Option<ProbeResult> {
        let outcome = outcome?;
        if self.last == Some(outcome) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(outcome);
            self.run = 1;
        }
        let threshold = match outcome {
            ProbeResult::Failure => self.timing.failure_threshold,
            ProbeResult::Success => self.timing.success_threshold,
            ProbeResult::Unknown => return None,
        };
        if self.run < threshold {
            return None;
        }
        if outcome == ProbeResult::Failure && self.kind != ProbeKind::Readiness {
            // The container will be killed; wait for its next instance.
            self.on_hold = true;
            self.run = 0;
        }
        Some(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(delay: u64, success: u32, failure: u32) -> ProbeTiming {
        ProbeTiming {
            initial_delay: Duration::from_secs(delay),
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn running(id: &str) -> ContainerView {
        ContainerView {
            container_id: Some(id.into()),
            running: true,
            started_at: Some(at(0)),
            pod_ip: Some("10.0.0.2".into()),
            terminating: false,
        }
    }

    #[test]
    fn failure_threshold_then_hold_until_a_new_instance() {
        let mut state = ProbeState::new(ProbeKind::Liveness, timing(0, 1, 3));
        let (updates, step) = state.tick(&running("a"), true, at(1));
        assert_eq!(
            updates,
            [Update::Switch {
                old: None,
                new: "a".into()
            }]
        );
        assert_eq!(step, Step::Probe);
        assert_eq!(state.record(Some(ProbeResult::Failure)), None);
        assert_eq!(state.record(Some(ProbeResult::Failure)), None);
        // An error in between counts for nothing.
        assert_eq!(state.record(None), None);
        assert_eq!(
            state.record(Some(ProbeResult::Failure)),
            Some(ProbeResult::Failure)
        );
        assert_eq!(
            state.tick(&running("a"), true, at(5)).1,
            Step::Skip,
            "on hold"
        );
        let (updates, step) = state.tick(&running("b"), true, at(6));
        assert_eq!(
            updates,
            [Update::Switch {
                old: Some("a".into()),
                new: "b".into()
            }]
        );
        assert_eq!(step, Step::Probe);
        // A success in between starts the count again.
        assert_eq!(state.record(Some(ProbeResult::Failure)), None);
        assert_eq!(
            state.record(Some(ProbeResult::Success)),
            Some(ProbeResult::Success)
        );
        assert_eq!(state.record(Some(ProbeResult::Failure)), None);
        assert_eq!(state.record(Some(ProbeResult::Failure)), None);
    }

    #[test]
    fn readiness_needs_its_success_threshold_and_is_never_held() {
        let mut state = ProbeState::new(ProbeKind::Readiness, timing(0, 2, 1));
        state.tick(&running("a"), true, at(1));
        assert_eq!(state.record(Some(ProbeResult::Success)), None);
        assert_eq!(
            state.record(Some(ProbeResult::Success)),
            Some(ProbeResult::Success)
        );
        assert_eq!(
            state.record(Some(ProbeResult::Failure)),
            Some(ProbeResult::Failure)
        );
        assert_eq!(state.tick(&running("a"), true, at(2)).1, Step::Probe);
    }

    #[test]
    fn startup_gates_liveness_and_readiness() {
        let mut liveness = ProbeState::new(ProbeKind::Liveness, timing(0, 1, 1));
        let mut startup = ProbeState::new(ProbeKind::Startup, timing(0, 1, 1));
        assert_eq!(liveness.tick(&running("a"), false, at(1)).1, Step::Skip);
        assert_eq!(startup.tick(&running("a"), false, at(1)).1, Step::Probe);
        assert_eq!(
            startup.record(Some(ProbeResult::Success)),
            Some(ProbeResult::Success)
        );
        assert_eq!(startup.tick(&running("a"), true, at(2)).1, Step::Skip);
        assert_eq!(liveness.tick(&running("a"), true, at(2)).1, Step::Probe);
    }

    #[test]
    fn initial_delay_counts_from_the_container_start() {
        let mut state = ProbeState::new(ProbeKind::Readiness, timing(10, 1, 1));
        assert_eq!(
            state.tick(&running("a"), true, at(3)).1,
            Step::Delay(Duration::from_secs(7))
        );
        assert_eq!(state.tick(&running("a"), true, at(10)).1, Step::Probe);
    }

    #[test]
    fn stopped_and_terminating_containers() {
        let mut state = ProbeState::new(ProbeKind::Liveness, timing(0, 1, 1));
        let (updates, step) = state.tick(&ContainerView::default(), true, at(1));
        assert!(updates.is_empty());
        assert_eq!(step, Step::Skip);
        let mut stopped = running("a");
        stopped.running = false;
        let (updates, step) = state.tick(&stopped, true, at(1));
        assert_eq!(updates.last(), Some(&Update::Set(ProbeResult::Failure)));
        assert_eq!(step, Step::Skip);
        let mut terminating = running("a");
        terminating.terminating = true;
        let (updates, step) = state.tick(&terminating, true, at(2));
        assert_eq!(updates, [Update::Set(ProbeResult::Success)]);
        assert_eq!(step, Step::Skip);
        let mut readiness = ProbeState::new(ProbeKind::Readiness, timing(0, 1, 1));
        assert_eq!(readiness.tick(&terminating, true, at(2)).1, Step::Probe);
    }
}

//! Exponential back-off for restarting crashed containers and for retrying image pulls.
//!
//! Upstream: `k8s.io/client-go/util/flowcontrol` `Backoff` (per-key delay that doubles on each
//! `Next`, capped, and forgotten once the key stayed quiet for twice the cap), used by
//! `kuberuntime_manager.go` `doBackOff` with 10 s doubling to 300 s for container restarts and
//! by `images/image_manager.go` `EnsureImageExists` for image pulls. The kubelet creates both
//! with no jitter. Time is always passed in.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use super::pod::WaitingReason;
use super::time::{elapsed, go_duration};
/// The pod as upstream's `format.Pod` prints it, re-exported where the back-off messages
/// that carry it are built.
pub use crate::kuberuntime::format_pod;
use crate::kuberuntime::pod_uid;

/// The first delay after a failure (`backOffPeriod` in the kubelet).
pub const INITIAL_DELAY: Duration = Duration::from_secs(10);

/// The longest delay (`MaxContainerBackOff`, `MaxImageBackOff`).
pub const MAX_DELAY: Duration = Duration::from_mins(5);

/// One key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    delay: Duration,
    last_update: Timestamp,
}

/// Per-key exponential back-off, a port of `flowcontrol.Backoff` without jitter.
#[derive(Debug, Clone)]
pub struct Backoff<K> {
    initial: Duration,
    max: Duration,
    entries: HashMap<K, Entry>,
}

impl<K: Eq + Hash + Clone> Backoff<K> {
    /// A back-off that starts at `initial` and doubles up to `max`.
    #[must_use]
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    /// The current delay of a key (zero when it has none).
    #[must_use]
    pub fn delay(&self, key: &K) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.delay)
    }

    /// Records a retry: the first one (or the first after the key stayed quiet for twice the
    /// cap, measured from the last retry to `event_time`) gets the initial delay, every later
    /// one doubles it up to the cap. Returns the new delay.
    pub fn next(&mut self, key: K, event_time: Timestamp, now: Timestamp) -> Duration {
        let delay = match self.entries.get(&key) {
            Some(entry) if !self.expired(event_time, entry.last_update) => {
                entry.delay.saturating_mul(2).min(self.max)
            }
            _ => self.initial,
        };
        self.entries.insert(
            key,
            Entry {
                delay,
                last_update: now,
            },
        );
        delay
    }

    /// How much longer the key must wait when the delay counts from `event_time` (for a
    /// container: when its last instance finished); `None` when it may go ahead. Upstream:
    /// `IsInBackOffSince`.
    #[must_use]
    pub fn remaining_since(
        &self,
        key: &K,
        event_time: Timestamp,
        now: Timestamp,
    ) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        if self.expired(event_time, entry.last_update) {
            return None;
        }
        entry
            .delay
            .checked_sub(elapsed(event_time, now))
            .filter(|d| !d.is_zero())
    }

    /// How much longer the key must wait when the delay counts from its last retry; `None` when
    /// it may go ahead. Upstream: `IsInBackOffSinceUpdate`.
    #[must_use]
    pub fn remaining_since_update(&self, key: &K, now: Timestamp) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        if self.expired(now, entry.last_update) {
            return None;
        }
        entry
            .delay
            .checked_sub(elapsed(entry.last_update, now))
            .filter(|d| !d.is_zero())
    }

    /// Forgets a key.
    pub fn reset(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Forgets keys that have been quiet for more than twice the cap.
    pub fn gc(&mut self, now: Timestamp) {
        let horizon = self.max.saturating_mul(2);
        self.entries
            .retain(|_, entry| elapsed(entry.last_update, now) <= horizon);
    }

    /// The key stayed quiet long enough to start over (strictly more than twice the cap).
    fn expired(&self, event_time: Timestamp, last_update: Timestamp) -> bool {
        elapsed(last_update, event_time) > self.max.saturating_mul(2)
    }
}

/// Identifies one container of one pod for restart back-off. Upstream's key also includes the
/// spec hash (so an edited container starts over); here a changed spec is handled by
/// [`ContainerBackoff::reset`] from the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerKey {
    /// The pod's UID.
    pub pod_uid: String,
    /// The container's name.
    pub container_name: String,
}

impl ContainerKey {
    /// The key of a container of a pod.
    #[must_use]
    pub fn new(pod_uid: impl Into<String>, container_name: impl Into<String>) -> Self {
        Self {
            pod_uid: pod_uid.into(),
            container_name: container_name.into(),
        }
    }
}

/// Restart back-off of crashed containers: 10 s doubling to 300 s, starting over once a
/// container ran for more than 10 minutes.
#[derive(Debug, Clone)]
pub struct ContainerBackoff {
    inner: Backoff<ContainerKey>,
}

impl Default for ContainerBackoff {
    fn default() -> Self {
        Self {
            inner: Backoff::new(INITIAL_DELAY, MAX_DELAY),
        }
    }
}

impl ContainerBackoff {
    /// The kubelet's default restart back-off.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How much longer a container whose last instance finished at `finished_at` must wait
    /// before it is restarted; `None` when it may restart now.
    #[must_use]
    pub fn in_backoff(
        &self,
        key: &ContainerKey,
        finished_at: Timestamp,
        now: Timestamp,
    ) -> Option<Duration> {
        self.inner.remaining_since(key, finished_at, now)
    }

    /// Records that the container is being restarted now after an instance that finished at
    /// `finished_at`, and returns the delay that will apply to its next crash.
    pub fn next_delay(
        &mut self,
        key: ContainerKey,
        finished_at: Timestamp,
        now: Timestamp,
    ) -> Duration {
        self.inner.next(key, finished_at, now)
    }

    /// The current delay (what the `CrashLoopBackOff` message shows).
    #[must_use]
    pub fn delay(&self, key: &ContainerKey) -> Duration {
        self.inner.delay(key)
    }

    /// The gate the worker passes before starting a container (upstream `doBackOff`): when the
    /// newest instance exited at `last_finished` and is still in back-off, the start is refused
    /// with the `CrashLoopBackOff` waiting reason to report; otherwise the restart is recorded.
    /// A container that never exited (`last_finished` is `None`) always starts.
    pub fn admit(
        &mut self,
        pod: &Pod,
        container_name: &str,
        last_finished: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), WaitingReason> {
        let Some(finished_at) = last_finished else {
            return Ok(());
        };
        let key = ContainerKey::new(pod_uid(pod), container_name);
        if self.in_backoff(&key, finished_at, now).is_some() {
            return Err(crash_loop_back_off(pod, container_name, self.delay(&key)));
        }
        self.next_delay(key, finished_at, now);
        Ok(())
    }

    /// Forgets a container (for instance after its spec changed).
    pub fn reset(&mut self, key: &ContainerKey) {
        self.inner.reset(key);
    }

    /// Forgets containers that have been quiet for more than 10 minutes.
    pub fn gc(&mut self, now: Timestamp) {
        self.inner.gc(now);
    }
}

/// Identifies one image pull of one pod (upstream key `<pod uid>_<image>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageKey {
    /// The pod's UID.
    pub pod_uid: String,
    /// The image as written in the container spec.
    pub image: String,
}

impl ImageKey {
    /// The key of an image pulled for a pod.
    #[must_use]
    pub fn new(pod_uid: impl Into<String>, image: impl Into<String>) -> Self {
        Self {
            pod_uid: pod_uid.into(),
            image: image.into(),
        }
    }
}

/// Back-off of failed image pulls: 10 s doubling to 300 s, counted from the last failure.
#[derive(Debug, Clone)]
pub struct ImagePullBackoff {
    inner: Backoff<ImageKey>,
}

impl Default for ImagePullBackoff {
    fn default() -> Self {
        Self {
            inner: Backoff::new(INITIAL_DELAY, MAX_DELAY),
        }
    }
}

impl ImagePullBackoff {
    /// The kubelet's default image pull back-off.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How much longer the pull must wait; `None` when it may be tried now.
    #[must_use]
    pub fn in_backoff(&self, key: &ImageKey, now: Timestamp) -> Option<Duration> {
        self.inner.remaining_since_update(key, now)
    }

    /// Records a failed pull and returns the delay before the next try. The waiting reason to
    /// report for the failure itself is [`err_image_pull`].
    pub fn record_failure(&mut self, key: ImageKey, now: Timestamp) -> Duration {
        self.inner.next(key, now, now)
    }

    /// The gate before a pull: refused with `ImagePullBackOff` while in back-off.
    pub fn admit(&self, key: &ImageKey, now: Timestamp) -> Result<(), WaitingReason> {
        match self.in_backoff(key, now) {
            Some(_) => Err(image_pull_back_off(&key.image)),
            None => Ok(()),
        }
    }

    /// Forgets pulls that have been quiet for more than 10 minutes (upstream runs this after a
    /// successful pull).
    pub fn gc(&mut self, now: Timestamp) {
        self.inner.gc(now);
    }
}

/// `CrashLoopBackOff` with upstream's message:
/// `back-off 20s restarting failed container=app pod=web_default(<uid>)`.
#[must_use]
pub fn crash_loop_back_off(pod: &Pod, container_name: &str, delay: Duration) -> WaitingReason {
    WaitingReason::new(
        "CrashLoopBackOff",
        format!(
            "back-off {} restarting failed container={container_name} pod={}",
            go_duration(delay),
            format_pod(pod)
        ),
    )
}

/// `ImagePullBackOff` with upstream's message `Back-off pulling image "<image>"`.
#[must_use]
pub fn image_pull_back_off(image: &str) -> WaitingReason {
    WaitingReason::new(
        "ImagePullBackOff",
        format!("Back-off pulling image {image:?}"),
    )
}

/// `ErrImagePull` with the pull error as message.
#[must_use]
pub fn err_image_pull(message: impl Into<String>) -> WaitingReason {
    WaitingReason::new("ErrImagePull", message)
}

//! Events the agent records about pods and its node (Pulling, Pulled, Created, Started,
//! Killing, `BackOff`, Failed, ...), as core/v1 Events from the `kubelet` component.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Posts events; sending never blocks the caller and a failure is only logged.
#[derive(Clone)]
pub struct EventRecorder {
    client: Option<kube::Client>,
    node: Arc<str>,
    seen: Arc<Mutex<Seen>>,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// A reference to a pod, or to one of its containers with `field_path`
/// (`spec.containers{app}`), as the kubelet writes `involvedObject`.
#[must_use]
pub fn pod_reference(pod: &Pod, field_path: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path,
    }
}

/// `spec.containers{name}` or `spec.initContainers{name}`.
#[must_use]
pub fn container_field_path(pod: &Pod, container: &str) -> String {
    let init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.name == container));
    if init {
        format!("spec.initContainers{{{container}}}")
    } else {
        format!("spec.containers{{{container}}}")
    }
}

/// What makes two events the same for aggregation, as client-go's `EventCorrelator` keys them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EventKey {
    uid: String,
    field_path: String,
    namespace: String,
    kind: &'static str,
    reason: String,
    message: String,
}

/// An event already posted: repeats patch its count instead of creating another object.
#[derive(Debug, Clone)]
struct Posted {
    name: String,
    count: i32,
    /// Insertion order, for evicting the oldest entries.
    serial: u64,
}

/// How many distinct events are remembered for aggregation (client-go keeps 4096).
const CACHE_SIZE: usize = 4096;

#[derive(Debug, Default)]
struct Seen {
    events: HashMap<EventKey, Posted>,
    serial: u64,
}

impl Seen {
    /// Returns the event's name and its new count (1 for a new event).
    fn observe(&mut self, key: EventKey, object_name: &str, now: jiff::Timestamp) -> (String, i32) {
        self.serial += 1;
        let serial = self.serial;
        if let Some(posted) = self.events.get_mut(&key) {
            posted.count += 1;
            posted.serial = serial;
            return (posted.name.clone(), posted.count);
        }
        if self.events.len() >= CACHE_SIZE {
            let oldest = self
                .events
                .iter()
                .min_by_key(|(_, p)| p.serial)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.events.remove(&oldest);
            }
        }
        // `<object>.<unix nanoseconds in hex>`, as client-go names events.
        let name = format!("{object_name}.{:x}", now.as_nanosecond());
        self.events.insert(
            key,
            Posted {
                name: name.clone(),
                count: 1,
                serial,
            },
        );
        (name, 1)
    }
}

impl EventRecorder {
    /// A recorder posting through `client`; `None` only logs (unit tests).
    #[must_use]
    pub fn new(client: Option<kube::Client>, node: &str) -> Self {
        EventRecorder {
            client,
            node: node.into(),
            seen: Arc::default(),
        }
    }

    /// Records an event about `object`. A repeat of an event already posted (same object,
    /// reason, message and type) raises its `count` and `lastTimestamp` instead, as the
    /// kubelet's event correlator does.
    pub fn record(&self, object: ObjectReference, kind: EventType, reason: &str, message: String) {
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let object_name = object.name.clone().unwrap_or_default();
        tracing::info!(
            object = %format!("{namespace}/{object_name}"),
            reason,
            message = %message,
            "event"
        );
        let Some(client) = self.client.clone() else {
            return;
        };
        let type_ = match kind {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        let now = jiff::Timestamp::now();
        let key = EventKey {
            uid: object.uid.clone().unwrap_or_default(),
            field_path: object.field_path.clone().unwrap_or_default(),
            namespace: namespace.clone(),
            kind: type_,
            reason: reason.to_owned(),
            message: message.clone(),
        };
        let (name, count) = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .observe(key, &object_name, now);
        let api: Api<Event> = Api::namespaced(client, &namespace);
        if count > 1 {
            let patch = serde_json::json!({
                "count": count,
                "lastTimestamp": Time(now),
                "message": message,
            });
            tokio::spawn(async move {
                if let Err(err) = api
                    .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                    .await
                {
                    tracing::debug!(event = %name, %err, "update event count");
                }
            });
            return;
        }
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: object,
            reason: Some(reason.to_owned()),
            message: Some(message),
            type_: Some(type_.to_owned()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.to_string()),
            }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.to_string()),
            ..Default::default()
        };
        tokio::spawn(async move {
            if let Err(err) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(%err, "post event");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(reason: &str) -> EventKey {
        EventKey {
            uid: "u1".into(),
            field_path: "spec.containers{c}".into(),
            namespace: "default".into(),
            kind: "Normal",
            reason: reason.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn repeats_share_a_name_and_count_up() {
        let mut seen = Seen::default();
        let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let (first, n1) = seen.observe(key("Pulled"), "p", now);
        let (again, n2) = seen.observe(key("Pulled"), "p", now);
        let (other, n3) = seen.observe(
            key("Started"),
            "p",
            now + jiff::SignedDuration::from_nanos(1),
        );
        assert_eq!((n1, n2, n3), (1, 2, 1));
        assert_eq!(first, again);
        assert_ne!(first, other);
        assert!(first.starts_with("p."), "{first}");
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut seen = Seen::default();
        let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        for i in 0..CACHE_SIZE + 10 {
            seen.observe(key(&format!("r{i}")), "p", now);
        }
        assert_eq!(seen.events.len(), CACHE_SIZE);
        // The oldest went first: r0 is new again.
        assert_eq!(seen.observe(key("r0"), "p", now).1, 1);
    }
}

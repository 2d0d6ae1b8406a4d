//! Events the agent records about pods and its node (Pulling, Pulled, Created, Started,
//! Killing, `BackOff`, Failed, ...), as core/v1 Events from the `kubelet` component.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::PostParams;

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

impl EventRecorder {
    /// A recorder posting through `client`; `None` only logs (unit tests).
    #[must_use]
    pub fn new(client: Option<kube::Client>, node: &str) -> Self {
        EventRecorder {
            client,
            node: node.into(),
        }
    }

    /// Records an event about `object`.
    pub fn record(&self, object: ObjectReference, kind: EventType, reason: &str, message: String) {
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        tracing::info!(
            object = %format!("{}/{}", namespace, object.name.clone().unwrap_or_default()),
            reason,
            message = %message,
            "event"
        );
        let Some(client) = self.client.clone() else {
            return;
        };
        let now = Time(jiff::Timestamp::now());
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", object.name.clone().unwrap_or_default())),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: object,
            reason: Some(reason.to_owned()),
            message: Some(message),
            type_: Some(match kind {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
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
            let api: Api<Event> = Api::namespaced(client, &namespace);
            if let Err(err) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(%err, "post event");
            }
        });
    }
}

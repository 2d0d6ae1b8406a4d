//! The API objects the scheduler writes: the `Binding`, the `PodScheduled` condition patch and
//! the core/v1 `Event`s (`Scheduled`, `FailedScheduling`), built without I/O so that their
//! content is unit-tested.

use k8s_openapi::api::core::v1::{Binding, Event, EventSource, ObjectReference, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::fit_error::{NOTE_LENGTH_LIMIT, truncate_message};

/// The `PodScheduled` pod condition type.
pub const POD_SCHEDULED: &str = "PodScheduled";
/// Event reason of a successful binding.
pub const EVENT_SCHEDULED: &str = "Scheduled";
/// Event reason of a failed scheduling attempt.
pub const EVENT_FAILED_SCHEDULING: &str = "FailedScheduling";

/// The binding of a pod to a node, as kube-scheduler's `DefaultBinder` posts it to
/// `pods/{name}/binding`.
#[must_use]
pub fn binding(pod: &Pod, node: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..ObjectReference::default()
        },
    }
}

/// The merge patch for `pods/{name}/status` that sets `PodScheduled=False` with `reason` and
/// `message`, or `None` when the pod already carries exactly that condition. The patch carries
/// the whole condition list (a JSON merge patch replaces lists), keeping the others as they
/// are and the transition time when the status does not change.
#[must_use]
pub fn unschedulable_condition_patch(
    pod: &Pod,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Option<serde_json::Value> {
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let existing = conditions.iter().find(|c| c.type_ == POD_SCHEDULED);
    if existing.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message)
    }) {
        return None;
    }
    let transition = match existing {
        Some(c) if c.status == "False" => c.last_transition_time.clone(),
        _ => None,
    }
    .unwrap_or(Time(now));
    let condition = PodCondition {
        type_: POD_SCHEDULED.into(),
        status: "False".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(transition),
        last_probe_time: None,
        observed_generation: None,
    };
    let mut updated: Vec<PodCondition> = conditions
        .into_iter()
        .filter(|c| c.type_ != POD_SCHEDULED)
        .collect();
    updated.push(condition);
    Some(json!({ "status": { "conditions": updated } }))
}

/// Who writes an event: `source.component` / `reportingComponent`, and the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventReporter {
    /// `default-scheduler`, `node-controller`, ...
    pub component: String,
    /// `reportingInstance`, e.g. the host's name.
    pub instance: String,
}

/// A core/v1 event about a pod, named `<pod>.<hex nanoseconds>` as client-go names them; the
/// message is cut to the API server's note limit.
#[must_use]
pub fn pod_event(
    pod: &Pod,
    type_: &str,
    reason: &str,
    action: &str,
    message: &str,
    reporter: &EventReporter,
    now: Timestamp,
) -> Event {
    let name = pod.metadata.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: pod.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            field_path: None,
        },
        type_: Some(type_.into()),
        reason: Some(reason.into()),
        action: Some(action.into()),
        message: Some(truncate_message(message, NOTE_LENGTH_LIMIT)),
        source: Some(EventSource {
            component: Some(reporter.component.clone()),
            host: None,
        }),
        reporting_component: Some(reporter.component.clone()),
        reporting_instance: Some(reporter.instance.clone()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        event_time: None,
        related: None,
        series: None,
    }
}

/// The `Scheduled` event of a bound pod: `Successfully assigned default/nginx to node1`.
#[must_use]
pub fn scheduled_event(pod: &Pod, node: &str, reporter: &EventReporter, now: Timestamp) -> Event {
    let message = format!(
        "Successfully assigned {}/{} to {node}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    pod_event(
        pod,
        "Normal",
        EVENT_SCHEDULED,
        "Binding",
        &message,
        reporter,
        now,
    )
}

/// The `FailedScheduling` warning of a pod that could not be placed.
#[must_use]
pub fn failed_scheduling_event(
    pod: &Pod,
    message: &str,
    reporter: &EventReporter,
    now: Timestamp,
) -> Event {
    pod_event(
        pod,
        "Warning",
        EVENT_FAILED_SCHEDULING,
        "Scheduling",
        message,
        reporter,
        now,
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodStatus;

    use super::*;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("nginx".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                resource_version: Some("7".into()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    fn reporter() -> EventReporter {
        EventReporter {
            component: "default-scheduler".into(),
            instance: "host1".into(),
        }
    }

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn binding_targets_the_node() {
        let b = binding(&pod(), "node1");
        assert_eq!(b.metadata.name.as_deref(), Some("nginx"));
        assert_eq!(b.metadata.uid.as_deref(), Some("u1"));
        assert_eq!(b.target.kind.as_deref(), Some("Node"));
        assert_eq!(b.target.name.as_deref(), Some("node1"));
    }

    #[test]
    fn scheduled_event_reads_like_kube_scheduler() {
        let e = scheduled_event(&pod(), "node1", &reporter(), ts(100));
        assert_eq!(
            e.message.as_deref(),
            Some("Successfully assigned default/nginx to node1")
        );
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(e.reason.as_deref(), Some("Scheduled"));
        assert_eq!(e.involved_object.uid.as_deref(), Some("u1"));
        assert_eq!(e.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(e.metadata.name.as_deref(), Some("nginx.174876e800"));
        assert_eq!(
            e.source.and_then(|s| s.component).as_deref(),
            Some("default-scheduler")
        );
        assert_eq!(e.reporting_component.as_deref(), Some("default-scheduler"));
    }

    #[test]
    fn failed_scheduling_event_is_a_warning_with_a_bounded_message() {
        let long = "x".repeat(5000);
        let e = failed_scheduling_event(&pod(), &long, &reporter(), ts(1));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.reason.as_deref(), Some("FailedScheduling"));
        assert_eq!(e.message.map(|m| m.len()), Some(NOTE_LENGTH_LIMIT));
    }

    #[test]
    fn condition_patch_sets_pod_scheduled_false_and_keeps_other_conditions() {
        let mut p = pod();
        p.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Custom".into(),
                status: "True".into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        let patch = unschedulable_condition_patch(&p, "Unschedulable", "0/1 nodes", ts(5))
            .expect("a patch");
        let conditions = &patch["status"]["conditions"];
        assert_eq!(conditions[0]["type"], "Custom");
        assert_eq!(conditions[1]["type"], "PodScheduled");
        assert_eq!(conditions[1]["status"], "False");
        assert_eq!(conditions[1]["reason"], "Unschedulable");
        assert_eq!(conditions[1]["message"], "0/1 nodes");
        assert_eq!(conditions[1]["lastTransitionTime"], "1970-01-01T00:00:05Z");
    }

    #[test]
    fn condition_patch_is_skipped_when_nothing_changes_and_keeps_the_transition_time() {
        let mut p = pod();
        p.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: POD_SCHEDULED.into(),
                status: "False".into(),
                reason: Some("Unschedulable".into()),
                message: Some("old".into()),
                last_transition_time: Some(Time(ts(1))),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        assert!(unschedulable_condition_patch(&p, "Unschedulable", "old", ts(9)).is_none());
        let patch =
            unschedulable_condition_patch(&p, "Unschedulable", "new", ts(9)).expect("a patch");
        assert_eq!(
            patch["status"]["conditions"][0]["lastTransitionTime"],
            "1970-01-01T00:00:01Z"
        );
    }
}

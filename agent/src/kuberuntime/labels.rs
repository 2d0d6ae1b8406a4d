//! The labels and annotations the kubelet puts on sandboxes and containers (`labels.go`).
//! They let a restarted agent rebuild what it needs from the runtime alone: which pod a
//! container belongs to, its restart count, its spec hash, how to stop it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::{pod_name, pod_namespace, pod_uid};

/// Label with the pod's name.
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
/// Label with the pod's namespace.
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Label with the pod's UID.
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
/// Label with the container's name.
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";

/// Annotation with the pod's `deletionGracePeriodSeconds`.
pub const POD_DELETION_GRACE_PERIOD_ANNOTATION: &str = "io.kubernetes.pod.deletionGracePeriod";
/// Annotation with the pod's `terminationGracePeriodSeconds`.
pub const POD_TERMINATION_GRACE_PERIOD_ANNOTATION: &str =
    "io.kubernetes.pod.terminationGracePeriod";
/// Annotation with [`container_hash`] in hex.
pub const CONTAINER_HASH_ANNOTATION: &str = "io.kubernetes.container.hash";
/// Annotation with the container's restart count (the CRI attempt).
pub const CONTAINER_RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";
/// Annotation with `terminationMessagePath`.
pub const CONTAINER_TERMINATION_MESSAGE_PATH_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePath";
/// Annotation with `terminationMessagePolicy`.
pub const CONTAINER_TERMINATION_MESSAGE_POLICY_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePolicy";
/// Annotation with the preStop handler as JSON.
pub const CONTAINER_PRE_STOP_HANDLER_ANNOTATION: &str = "io.kubernetes.container.preStopHandler";
/// Annotation with the container's ports as JSON.
pub const CONTAINER_PORTS_ANNOTATION: &str = "io.kubernetes.container.ports";

/// Sandbox labels: the pod's labels plus name, namespace and UID (`newPodLabels`).
#[must_use]
pub fn pod_labels(pod: &Pod) -> BTreeMap<String, String> {
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    labels.insert(POD_NAME_LABEL.to_owned(), pod_name(pod).to_owned());
    labels.insert(
        POD_NAMESPACE_LABEL.to_owned(),
        pod_namespace(pod).to_owned(),
    );
    labels.insert(POD_UID_LABEL.to_owned(), pod_uid(pod).to_owned());
    labels
}

/// Sandbox annotations: the pod's annotations (`newPodAnnotations`).
#[must_use]
pub fn pod_annotations(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.annotations.clone().unwrap_or_default()
}

/// Container labels: pod name, namespace, UID and container name (`newContainerLabels`).
#[must_use]
pub fn container_labels(pod: &Pod, container: &Container) -> BTreeMap<String, String> {
    BTreeMap::from([
        (POD_NAME_LABEL.to_owned(), pod_name(pod).to_owned()),
        (
            POD_NAMESPACE_LABEL.to_owned(),
            pod_namespace(pod).to_owned(),
        ),
        (POD_UID_LABEL.to_owned(), pod_uid(pod).to_owned()),
        (CONTAINER_NAME_LABEL.to_owned(), container.name.clone()),
    ])
}

/// Container annotations (`newContainerAnnotations`): hash, restart count, termination
/// message path and policy, the pod's grace periods when set, and the preStop handler and
/// ports as JSON when present.
#[must_use]
pub fn container_annotations(
    pod: &Pod,
    container: &Container,
    restart_count: u32,
) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::from([
        (
            CONTAINER_HASH_ANNOTATION.to_owned(),
            format!("{:x}", container_hash(container)),
        ),
        (
            CONTAINER_RESTART_COUNT_ANNOTATION.to_owned(),
            restart_count.to_string(),
        ),
        (
            CONTAINER_TERMINATION_MESSAGE_PATH_ANNOTATION.to_owned(),
            container
                .termination_message_path
                .clone()
                .unwrap_or_default(),
        ),
        (
            CONTAINER_TERMINATION_MESSAGE_POLICY_ANNOTATION.to_owned(),
            container
                .termination_message_policy
                .clone()
                .unwrap_or_default(),
        ),
    ]);
    if let Some(grace) = pod.metadata.deletion_grace_period_seconds {
        annotations.insert(
            POD_DELETION_GRACE_PERIOD_ANNOTATION.to_owned(),
            grace.to_string(),
        );
    }
    if let Some(grace) = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
    {
        annotations.insert(
            POD_TERMINATION_GRACE_PERIOD_ANNOTATION.to_owned(),
            grace.to_string(),
        );
    }
    if let Some(pre_stop) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        && let Ok(json) = serde_json::to_string(pre_stop)
    {
        annotations.insert(CONTAINER_PRE_STOP_HANDLER_ANNOTATION.to_owned(), json);
    }
    if let Some(ports) = container.ports.as_ref().filter(|p| !p.is_empty())
        && let Ok(json) = serde_json::to_string(ports)
    {
        annotations.insert(CONTAINER_PORTS_ANNOTATION.to_owned(), json);
    }
    annotations
}

/// A stable hash of the container fields whose change requires a restart. Upstream
/// (`HashContainer`, since 1.29) hashes only `name` and `image`, the only fields of a running
/// pod's container that can change and need a new container (resources resize in place);
/// ferrolet does the same with 32-bit FNV-1a over `{"image":…,"name":…}`. The value differs
/// from the kubelet's (which hashes Go's debug dump of that JSON), so it is only comparable
/// with hashes ferrolet wrote.
#[must_use]
pub fn container_hash(container: &Container) -> u64 {
    // Written by hand so the key order cannot depend on serde_json's `preserve_order`.
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let canonical = format!(
        "{{\"image\":{},\"name\":{}}}",
        quote(container.image.as_deref().unwrap_or_default()),
        quote(&container.name)
    );
    let mut hash: u32 = 0x811c_9dc5;
    for byte in canonical.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    u64::from(hash)
}

//! The patch strategies of the kinds the control plane serves.
//!
//! Every entry mirrors a `patchStrategy`/`patchMergeKey` struct tag of `k8s.io/api` (Kubernetes
//! 1.33, the API level of `k8s-openapi`'s `v1_33` feature) and was checked against the upstream
//! Go types: `staging/src/k8s.io/api/core/v1/types.go`,
//! `staging/src/k8s.io/api/storage/v1/types.go` and
//! `staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go`, and against the struct tags
//! compiled into kubectl v1.32.4. A field that is not listed has no strategy upstream either.
//!
//! Some lists that look mergeable are atomic upstream and are therefore replaced whole by a
//! strategic merge patch: `status.containerStatuses`, `initContainerStatuses` and
//! `ephemeralContainerStatuses` (the kubelet always sends the full list), `spec.tolerations`,
//! `spec.readinessGates`, container `resizePolicy` and `envFrom`, `Node.spec.taints`,
//! `Node.status.images`/`volumesAttached`/`volumesInUse`, `Namespace.spec.finalizers`,
//! `ServiceAccount.imagePullSecrets` and `Endpoints.subsets`.

use super::schema::{FieldSchema, merge_by, merge_by_retaining_keys, object, set};

/// `metav1.ObjectMeta`: `ownerReferences` merge by `uid`, `finalizers` merge as a set;
/// `managedFields` has no strategy.
const OBJECT_META: FieldSchema = object(
    "metadata",
    &[merge_by("ownerReferences", "uid", &[]), set("finalizers")],
);

/// `Container` and `EphemeralContainerCommon` (identical tags).
const CONTAINER: &[FieldSchema] = &[
    merge_by("ports", "containerPort", &[]),
    merge_by("env", "name", &[]),
    merge_by("volumeMounts", "mountPath", &[]),
    merge_by("volumeDevices", "devicePath", &[]),
];

/// `PodSpec`.
const POD_SPEC: &[FieldSchema] = &[
    merge_by_retaining_keys("volumes", "name", &[]),
    merge_by("initContainers", "name", CONTAINER),
    merge_by("containers", "name", CONTAINER),
    merge_by("ephemeralContainers", "name", CONTAINER),
    merge_by("imagePullSecrets", "name", &[]),
    merge_by("hostAliases", "ip", &[]),
    merge_by("topologySpreadConstraints", "topologyKey", &[]),
    merge_by("schedulingGates", "name", &[]),
    merge_by_retaining_keys("resourceClaims", "name", &[]),
];

/// `PodStatus`. The container status lists are atomic, so the strategies inside
/// `ContainerStatus` (`volumeMounts`, `allocatedResourcesStatus`) are never reached.
const POD_STATUS: &[FieldSchema] = &[
    merge_by("conditions", "type", &[]),
    merge_by("hostIPs", "ip", &[]),
    merge_by("podIPs", "ip", &[]),
    merge_by_retaining_keys("resourceClaimStatuses", "name", &[]),
];

const POD: &[FieldSchema] = &[
    OBJECT_META,
    object("spec", POD_SPEC),
    object("status", POD_STATUS),
];

/// `PodTemplate`: the template's own metadata and pod spec.
const POD_TEMPLATE: &[FieldSchema] = &[
    OBJECT_META,
    object("template", &[OBJECT_META, object("spec", POD_SPEC)]),
];

const NODE: &[FieldSchema] = &[
    OBJECT_META,
    object("spec", &[set("podCIDRs")]),
    object(
        "status",
        &[
            merge_by("conditions", "type", &[]),
            merge_by("addresses", "type", &[]),
        ],
    ),
];

const SERVICE: &[FieldSchema] = &[
    OBJECT_META,
    object("spec", &[merge_by("ports", "port", &[])]),
    object("status", &[merge_by("conditions", "type", &[])]),
];

const NAMESPACE: &[FieldSchema] = &[
    OBJECT_META,
    object("status", &[merge_by("conditions", "type", &[])]),
];

const PERSISTENT_VOLUME_CLAIM: &[FieldSchema] = &[
    OBJECT_META,
    object("status", &[merge_by("conditions", "type", &[])]),
];

const SERVICE_ACCOUNT: &[FieldSchema] = &[OBJECT_META, merge_by("secrets", "name", &[])];

const CSI_NODE: &[FieldSchema] = &[
    OBJECT_META,
    object("spec", &[merge_by("drivers", "name", &[])]),
];

/// Kinds whose only strategies are those of `ObjectMeta`.
const METADATA_ONLY: &[FieldSchema] = &[OBJECT_META];

/// One row of the table: a group, version and kind, and the metadata of its top-level fields.
#[derive(Debug)]
struct KindSchema {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    fields: &'static [FieldSchema],
}

const fn row(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    fields: &'static [FieldSchema],
) -> KindSchema {
    KindSchema {
        group,
        version,
        kind,
        fields,
    }
}

static KINDS: &[KindSchema] = &[
    row("", "v1", "Pod", POD),
    row("", "v1", "PodTemplate", POD_TEMPLATE),
    row("", "v1", "Node", NODE),
    row("", "v1", "Service", SERVICE),
    row("", "v1", "Namespace", NAMESPACE),
    row("", "v1", "Endpoints", METADATA_ONLY),
    row("", "v1", "ConfigMap", METADATA_ONLY),
    row("", "v1", "Secret", METADATA_ONLY),
    row("", "v1", "ServiceAccount", SERVICE_ACCOUNT),
    row("", "v1", "Event", METADATA_ONLY),
    row("", "v1", "PersistentVolume", METADATA_ONLY),
    row("", "v1", "PersistentVolumeClaim", PERSISTENT_VOLUME_CLAIM),
    row("events.k8s.io", "v1", "Event", METADATA_ONLY),
    row("coordination.k8s.io", "v1", "Lease", METADATA_ONLY),
    row("storage.k8s.io", "v1", "CSINode", CSI_NODE),
    row("storage.k8s.io", "v1", "CSIDriver", METADATA_ONLY),
];

/// The patch metadata of the top-level fields of `api_version`/`kind`, or `None` for a kind
/// without a table (kube-apiserver refuses strategic merge patches for those, as it does for
/// custom resources).
#[must_use]
pub fn fields_of(api_version: &str, kind: &str) -> Option<&'static [FieldSchema]> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    KINDS
        .iter()
        .find(|row| row.group == group && row.version == version && row.kind == kind)
        .map(|row| row.fields)
}

/// Every kind with a table, as (`apiVersion`, `kind`) pairs.
pub fn known_kinds() -> impl Iterator<Item = (String, &'static str)> {
    KINDS.iter().map(|row| {
        let api_version = if row.group.is_empty() {
            row.version.to_owned()
        } else {
            format!("{}/{}", row.group, row.version)
        };
        (api_version, row.kind)
    })
}

#[cfg(test)]
mod tests {
    use super::super::schema::PatchStrategy;
    use super::*;

    #[test]
    fn kinds_are_found_by_group_version_and_kind() {
        assert!(fields_of("v1", "Pod").is_some());
        assert!(fields_of("storage.k8s.io/v1", "CSINode").is_some());
        assert!(fields_of("events.k8s.io/v1", "Event").is_some());
        assert!(fields_of("v1beta1", "Pod").is_none());
        assert!(fields_of("apps/v1", "Deployment").is_none());
        assert!(fields_of("example.com/v1", "Pod").is_none());
        assert!(known_kinds().any(|(v, k)| v == "coordination.k8s.io/v1" && k == "Lease"));
    }

    #[test]
    fn pod_strategies_match_upstream_tags() {
        let pod = FieldSchema {
            name: "",
            strategy: PatchStrategy::Unspecified,
            retain_keys: false,
            fields: fields_of("v1", "Pod").expect("pod"),
        };
        let spec = pod.child("spec");
        let containers = spec.child("containers");
        assert_eq!(containers.strategy, PatchStrategy::MergeByKey("name"));
        assert_eq!(
            containers.child("ports").strategy,
            PatchStrategy::MergeByKey("containerPort")
        );
        assert_eq!(
            spec.child("ephemeralContainers").child("env").merge_key(),
            Some("name")
        );
        assert!(spec.child("volumes").retain_keys);
        assert_eq!(
            spec.child("tolerations").strategy,
            PatchStrategy::Unspecified
        );
        assert_eq!(
            pod.child("status").child("containerStatuses").strategy,
            PatchStrategy::Unspecified
        );
        assert_eq!(
            pod.child("metadata").child("finalizers").strategy,
            PatchStrategy::MergeSet
        );
        assert_eq!(
            pod.child("nonexistent").child("x").strategy,
            PatchStrategy::Unspecified
        );
    }
}

//! The Kubernetes API wire schemas (the `generated.proto` files of `k8s.io/api` and
//! `k8s.io/apimachinery`, Kubernetes v1.33.1), for decoding the protobuf encoding that
//! `kubectl`, client-go and the kubelet send (`application/vnd.kubernetes.protobuf`).
//!
//! Only descriptors are provided, no Rust types: the control plane decodes these messages
//! reflectively (with `prost-reflect`) into the JSON it stores. What the published `.proto`
//! files cannot say about the Go types behind them, and Go's JSON depends on, is answered by
//! [`is_go_pointer_field`], [`is_inline_field`] and [`json_name`].

// Generated from kubectl's descriptors and Go struct tags by `hack/k8s-protos-from-kubectl.py`;
// one entry a line so that `--check` can compare it byte for byte.
#[rustfmt::skip]
mod go_fields;

/// The Kubernetes release whose schemas are vendored under `vendor/k8s.io/`.
pub const KUBERNETES_VERSION: &str = "v1.33.1";

/// An encoded `google.protobuf.FileDescriptorSet` with every vendored Kubernetes API file
/// (core/v1, apps/v1, authentication/v1, authorization/v1, autoscaling/v1, batch/v1,
/// certificates/v1, coordination/v1, discovery/v1, events/v1, networking/v1, node/v1,
/// policy/v1, rbac/v1, scheduling/v1, storage/v1) and their apimachinery imports (meta/v1,
/// runtime, runtime/schema, api/resource, util/intstr). Packages are upstream's
/// (`k8s.io.api.core.v1`, `k8s.io.apimachinery.pkg.apis.meta.v1`, ...).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kubernetes.fds"));

/// Whether `field` of `message` (fully qualified, e.g. `k8s.io.api.core.v1.PodSpec`) is a
/// singular scalar that Kubernetes' Go types hold behind a pointer (`*int64`, `*string`, ...).
///
/// Why it matters: Kubernetes' protobuf marshaller writes every Go *value* field, so a value
/// field on the wire holding `""`, `0` or `false` is simply unset (Go's JSON leaves it out).
/// A pointer field is written only when set, and then its zero value means something:
/// `DeleteOptions.gracePeriodSeconds: 0` deletes at once, `PodSpec.automountServiceAccountToken:
/// false` turns the mount off. Message, repeated, map and bytes fields are not listed: their
/// presence on the wire already matches their presence in JSON.
#[must_use]
pub fn is_go_pointer_field(message: &str, field: &str) -> bool {
    go_fields::GO_POINTER_FIELDS
        .binary_search_by(|&(m, f)| (m, f).cmp(&(message, field)))
        .is_ok()
}

/// Every `(message, field)` for which [`is_go_pointer_field`] is true, sorted.
#[must_use]
pub fn go_pointer_fields() -> &'static [(&'static str, &'static str)] {
    go_fields::GO_POINTER_FIELDS
}

/// Whether `field` of `message` is a Go struct embedded with `json:",inline"`: one proto field
/// (`Volume.volumeSource`, `Probe.handler`, `SecretKeySelector.localObjectReference`) whose
/// own fields appear directly in the parent's JSON object (`{"name": "v", "emptyDir": {}}`).
#[must_use]
pub fn is_inline_field(message: &str, field: &str) -> bool {
    go_fields::INLINE_FIELDS
        .binary_search_by(|&(m, f)| (m, f).cmp(&(message, field)))
        .is_ok()
}

/// Every `(message, field)` for which [`is_inline_field`] is true, sorted.
#[must_use]
pub fn inline_fields() -> &'static [(&'static str, &'static str)] {
    go_fields::INLINE_FIELDS
}

/// The JSON name of `field` of `message`: the proto field name, except where Go's `json`
/// tag says otherwise (`BoundObjectReference.uID` is `uid`, `aPIGroup` is `apiGroup`).
#[must_use]
pub fn json_name<'a>(message: &str, field: &'a str) -> &'a str {
    go_fields::JSON_NAMES
        .binary_search_by(|&(m, f, _)| (m, f).cmp(&(message, field)))
        .map_or(field, |i| go_fields::JSON_NAMES[i].2)
}

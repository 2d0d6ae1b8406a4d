//! The Kubernetes API descriptor set: every vendored file is in it, self-contained, with the
//! field numbers Kubernetes v1.33.1 puts on the wire for the types the control plane decodes.

use std::collections::HashSet;

use ferrolet_proto::kubernetes::{FILE_DESCRIPTOR_SET, KUBERNETES_VERSION};
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("FILE_DESCRIPTOR_SET decodes")
}

/// The message `name` (fully qualified, without the leading dot).
fn message(set: &FileDescriptorSet, name: &str) -> DescriptorProto {
    set.file
        .iter()
        .flat_map(|file| {
            file.message_type
                .iter()
                .map(move |m| (format!("{}.{}", file.package(), m.name()), m))
        })
        .find(|(full, _)| full == name)
        .map_or_else(
            || panic!("{name} is not in the descriptor set"),
            |(_, m)| m.clone(),
        )
}

/// (number, label, type, type name) of `field` in `message`.
fn field(set: &FileDescriptorSet, message_name: &str, field: &str) -> (i32, Label, Type, String) {
    let m = message(set, message_name);
    let f = m
        .field
        .iter()
        .find(|f| f.name() == field)
        .unwrap_or_else(|| panic!("{message_name} has no field {field}"));
    (f.number(), f.label(), f.r#type(), f.type_name().to_string())
}

#[test]
fn version_is_kubernetes_1_33() {
    assert_eq!(KUBERNETES_VERSION, "v1.33.1");
}

#[test]
fn every_vendored_file_and_its_imports_are_in_the_set() {
    let set = descriptor_set();
    let names: HashSet<&str> = set
        .file
        .iter()
        .map(prost_types::FileDescriptorProto::name)
        .collect();
    for group in [
        "core/v1",
        "apps/v1",
        "authentication/v1",
        "authorization/v1",
        "autoscaling/v1",
        "batch/v1",
        "certificates/v1",
        "coordination/v1",
        "discovery/v1",
        "events/v1",
        "networking/v1",
        "node/v1",
        "policy/v1",
        "rbac/v1",
        "scheduling/v1",
        "storage/v1",
    ] {
        let name = format!("k8s.io/api/{group}/generated.proto");
        assert!(names.contains(name.as_str()), "{name} missing");
    }
    for file in &set.file {
        for dependency in &file.dependency {
            assert!(
                names.contains(dependency.as_str()),
                "{} imports {dependency}, which is not in the set",
                file.name()
            );
        }
        assert!(
            !file.dependency.iter().any(|d| d.contains("gogo")),
            "{}: gogoproto must not be imported",
            file.name()
        );
    }
    assert_eq!(set.file.len(), 21);
}

#[test]
fn message_counts_match_kubernetes_1_33() {
    // Counted in the descriptors compiled into kubectl v1.33.1.
    let set = descriptor_set();
    let count = |name: &str| {
        set.file
            .iter()
            .find(|f| f.name() == name)
            .map_or(0, |f| f.message_type.len())
    };
    assert_eq!(count("k8s.io/api/core/v1/generated.proto"), 231);
    assert_eq!(
        count("k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto"),
        45
    );
    assert_eq!(count("k8s.io/api/coordination/v1/generated.proto"), 3);
    assert_eq!(count("k8s.io/api/storage/v1/generated.proto"), 19);
    assert_eq!(count("k8s.io/api/authentication/v1/generated.proto"), 11);
    assert_eq!(count("k8s.io/api/authorization/v1/generated.proto"), 16);
    assert_eq!(count("k8s.io/api/certificates/v1/generated.proto"), 6);
    assert_eq!(count("k8s.io/api/policy/v1/generated.proto"), 5);
}

#[test]
fn envelope_and_special_types_have_upstream_numbers() {
    let set = descriptor_set();
    let unknown = "k8s.io.apimachinery.pkg.runtime.Unknown";
    assert_eq!(
        field(&set, unknown, "typeMeta"),
        (
            1,
            Label::Optional,
            Type::Message,
            ".k8s.io.apimachinery.pkg.runtime.TypeMeta".into()
        )
    );
    assert_eq!(field(&set, unknown, "raw").0, 2);
    assert_eq!(field(&set, unknown, "contentEncoding").0, 3);
    assert_eq!(field(&set, unknown, "contentType").0, 4);

    let time = "k8s.io.apimachinery.pkg.apis.meta.v1.Time";
    assert_eq!(field(&set, time, "seconds").0, 1);
    assert_eq!(field(&set, time, "seconds").2, Type::Int64);
    assert_eq!(field(&set, time, "nanos").0, 2);
    assert_eq!(
        field(
            &set,
            "k8s.io.apimachinery.pkg.apis.meta.v1.Duration",
            "duration"
        )
        .2,
        Type::Int64
    );
    let intstr = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
    assert_eq!(field(&set, intstr, "type").2, Type::Int64);
    assert_eq!(field(&set, intstr, "intVal").0, 2);
    assert_eq!(field(&set, intstr, "strVal").0, 3);
    assert_eq!(
        field(
            &set,
            "k8s.io.apimachinery.pkg.api.resource.Quantity",
            "string"
        )
        .0,
        1
    );
}

#[test]
fn pod_lease_and_delete_options_have_upstream_numbers() {
    let set = descriptor_set();
    let pod = "k8s.io.api.core.v1.Pod";
    assert_eq!(field(&set, pod, "metadata").0, 1);
    assert_eq!(field(&set, pod, "spec").0, 2);
    assert_eq!(field(&set, pod, "status").0, 3);
    let container = "k8s.io.api.core.v1.Container";
    assert_eq!(field(&set, container, "ports").0, 6);
    assert_eq!(field(&set, container, "ports").1, Label::Repeated);
    assert_eq!(field(&set, container, "resources").0, 8);
    assert_eq!(
        field(&set, "k8s.io.api.core.v1.ContainerPort", "containerPort"),
        (3, Label::Optional, Type::Int32, String::new())
    );
    assert_eq!(
        field(&set, "k8s.io.api.core.v1.ServicePort", "targetPort").3,
        ".k8s.io.apimachinery.pkg.util.intstr.IntOrString"
    );
    let lease = "k8s.io.api.coordination.v1.LeaseSpec";
    assert_eq!(
        field(&set, lease, "renewTime"),
        (
            4,
            Label::Optional,
            Type::Message,
            ".k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime".into()
        )
    );
    assert_eq!(
        field(
            &set,
            "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            "gracePeriodSeconds"
        ),
        (1, Label::Optional, Type::Int64, String::new())
    );
    // Secret.data is map<string, bytes>: a repeated nested map entry.
    let secret = message(&set, "k8s.io.api.core.v1.Secret");
    let entry = secret
        .nested_type
        .iter()
        .find(|n| n.name() == "DataEntry")
        .expect("Secret.DataEntry");
    assert!(
        entry
            .options
            .as_ref()
            .is_some_and(prost_types::MessageOptions::map_entry)
    );
    assert_eq!(entry.field[1].r#type(), Type::Bytes);
}

#[test]
fn go_pointer_fields_are_sorted_and_name_real_scalar_fields() {
    let set = descriptor_set();
    let fields = ferrolet_proto::kubernetes::go_pointer_fields();
    assert_eq!(fields.len(), 212, "count in kubectl v1.33.1's descriptors");
    assert!(fields.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    for &(message_name, field_name) in fields {
        let (_, label, kind, _) = field(&set, message_name, field_name);
        assert_eq!(label, Label::Optional, "{message_name}.{field_name}");
        assert!(
            !matches!(kind, Type::Message | Type::Bytes | Type::Group),
            "{message_name}.{field_name} is {kind:?}"
        );
    }
}

#[test]
fn pointer_fields_are_told_apart_from_value_fields() {
    use ferrolet_proto::kubernetes::is_go_pointer_field;
    let meta = "k8s.io.apimachinery.pkg.apis.meta.v1";
    assert!(is_go_pointer_field(
        &format!("{meta}.DeleteOptions"),
        "gracePeriodSeconds"
    ));
    assert!(is_go_pointer_field(
        &format!("{meta}.ObjectMeta"),
        "deletionGracePeriodSeconds"
    ));
    assert!(is_go_pointer_field(
        "k8s.io.api.core.v1.PodSpec",
        "automountServiceAccountToken"
    ));
    assert!(is_go_pointer_field(
        "k8s.io.api.coordination.v1.LeaseSpec",
        "leaseDurationSeconds"
    ));
    assert!(!is_go_pointer_field(&format!("{meta}.ObjectMeta"), "name"));
    assert!(!is_go_pointer_field(
        &format!("{meta}.ObjectMeta"),
        "generation"
    ));
    assert!(!is_go_pointer_field(
        "k8s.io.api.core.v1.ContainerPort",
        "containerPort"
    ));
    assert!(!is_go_pointer_field(
        "k8s.io.api.core.v1.NamespaceStatus",
        "phase"
    ));
    assert!(!is_go_pointer_field("no.such.Message", "field"));
}

#[test]
fn inline_fields_are_embedded_messages() {
    use ferrolet_proto::kubernetes::{inline_fields, is_inline_field};
    let set = descriptor_set();
    let fields = inline_fields();
    assert!(fields.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    for &(message_name, field_name) in fields {
        let (_, label, kind, _) = field(&set, message_name, field_name);
        assert_eq!((label, kind), (Label::Optional, Type::Message));
    }
    // Go: `VolumeSource `json:",inline"``, `ProbeHandler `json:",inline"``, ...
    let core = "k8s.io.api.core.v1";
    for (message_name, field_name) in [
        ("Volume", "volumeSource"),
        ("Probe", "handler"),
        ("PersistentVolumeSpec", "persistentVolumeSource"),
        ("EphemeralContainer", "ephemeralContainerCommon"),
        ("SecretKeySelector", "localObjectReference"),
        ("ConfigMapVolumeSource", "localObjectReference"),
    ] {
        assert!(
            is_inline_field(&format!("{core}.{message_name}"), field_name),
            "{message_name}.{field_name}"
        );
    }
    assert!(is_inline_field(
        "k8s.io.api.networking.v1.IngressRule",
        "ingressRuleValue"
    ));
    // Embedded but named (`json:"metadata"`), or a plain field named like its type.
    assert!(!is_inline_field(&format!("{core}.Pod"), "metadata"));
    assert!(!is_inline_field(
        &format!("{core}.Affinity"),
        "nodeAffinity"
    ));
    assert!(!is_inline_field(
        "k8s.io.api.authorization.v1.SubjectAccessReviewSpec",
        "resourceAttributes"
    ));
    assert_eq!(fields.len(), 13);
}

#[test]
fn json_names_differ_from_proto_names_only_where_go_says_so() {
    use ferrolet_proto::kubernetes::json_name;
    assert_eq!(
        json_name("k8s.io.api.authentication.v1.BoundObjectReference", "uID"),
        "uid"
    );
    assert_eq!(
        json_name(
            "k8s.io.api.networking.v1.IngressClassParametersReference",
            "aPIGroup"
        ),
        "apiGroup"
    );
    assert_eq!(json_name("k8s.io.api.core.v1.Pod", "metadata"), "metadata");
    assert_eq!(
        json_name("k8s.io.api.core.v1.DaemonEndpoint", "Port"),
        "Port"
    );
}

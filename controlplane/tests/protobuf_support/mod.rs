//! Shared by the protobuf tests: build messages from the Kubernetes descriptor pool and wrap
//! them in the envelope client-go sends.

// Each test crate that includes this module uses a different part of it.
#![allow(dead_code)]

use ferrolet_controlplane::api::protobuf::{MAGIC, decode_request, descriptor_pool, message_type};
use prost::Message as _;
use prost_reflect::{DynamicMessage, Kind, MapKey, MessageDescriptor, Value};
use serde_json::{Value as Json, json};

/// A message of type `descriptor` with exactly the fields named in `fields` set. Bytes are
/// given as text (their UTF-8 bytes); message fields as nested objects.
pub fn build(descriptor: &MessageDescriptor, fields: &Json) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    let object = fields.as_object().expect("fields are a JSON object");
    for (name, json) in object {
        let field = descriptor
            .get_field_by_name(name)
            .unwrap_or_else(|| panic!("{} has no field {name}", descriptor.full_name()));
        let value = if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                panic!("map entry of {name}")
            };
            let value_kind = entry.map_entry_value_field().kind();
            let entries = json.as_object().expect("map as object");
            Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| (MapKey::String(k.clone()), single(&value_kind, v)))
                    .collect(),
            )
        } else if field.is_list() {
            let items = json.as_array().expect("list as array");
            Value::List(items.iter().map(|v| single(&field.kind(), v)).collect())
        } else {
            single(&field.kind(), json)
        };
        message.set_field(&field, value);
    }
    message
}

pub fn single(kind: &Kind, json: &Json) -> Value {
    match kind {
        Kind::Message(descriptor) => Value::Message(build(descriptor, json)),
        Kind::String => Value::String(json.as_str().expect("string").to_owned()),
        Kind::Bytes => Value::Bytes(
            json.as_str()
                .expect("bytes as text")
                .as_bytes()
                .to_vec()
                .into(),
        ),
        Kind::Bool => Value::Bool(json.as_bool().expect("bool")),
        Kind::Int32 => Value::I32(i32::try_from(json.as_i64().expect("int")).expect("int32")),
        Kind::Int64 => Value::I64(json.as_i64().expect("int")),
        other => panic!("no test encoding for {other:?}"),
    }
}

/// The body client-go sends: `k8s\0` and a `runtime.Unknown` around the encoded object.
pub fn envelope(api_version: &str, kind: &str, object: &DynamicMessage) -> Vec<u8> {
    let unknown = descriptor_pool()
        .expect("pool")
        .get_message_by_name("k8s.io.apimachinery.pkg.runtime.Unknown")
        .expect("runtime.Unknown");
    let mut envelope = build(
        &unknown,
        &json!({
            "typeMeta": {"apiVersion": api_version, "kind": kind},
            "contentEncoding": "",
            "contentType": "",
        }),
    );
    envelope.set_field_by_name("raw", Value::Bytes(object.encode_to_vec().into()));
    [MAGIC.as_slice(), &envelope.encode_to_vec()].concat()
}

pub fn encode(api_version: &str, kind: &str, fields: &Json) -> Vec<u8> {
    let descriptor = message_type(api_version, kind).expect("known type");
    envelope(api_version, kind, &build(&descriptor, fields))
}

pub fn decode(api_version: &str, kind: &str, fields: &Json) -> Json {
    decode_request(&encode(api_version, kind, fields)).expect("decodes")
}

/// `ObjectMeta` as gogo-protobuf writes it: every Go value field, zero or not, and the zero
/// creation time as an empty message.
pub fn meta(name: &str, namespace: &str) -> Json {
    json!({
        "name": name, "generateName": "", "namespace": namespace, "selfLink": "", "uid": "",
        "resourceVersion": "", "generation": 0, "creationTimestamp": {},
    })
}

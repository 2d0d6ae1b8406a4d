//! Request bodies in the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`).
//!
//! `kubectl`, client-go's typed clients and the kubelet send built-in objects in protobuf. The
//! API server stores and answers JSON, so [`decode_request`] turns such a body into the JSON a
//! JSON client would have sent for the same object, using the Kubernetes v1.33.1 schemas from
//! [`ferrolet_proto::kubernetes`] and `prost-reflect`. Responses stay JSON: clients list
//! `application/json` as a fallback in `Accept` and pick their decoder by the response's
//! `Content-Type`.
//!
//! The body is an envelope (`k8s\0`, then a `runtime.Unknown` holding `typeMeta`, `raw`,
//! `contentEncoding`, `contentType`); `raw` is the object's message, whose type follows from
//! `typeMeta` (`v1`/`Pod` is `k8s.io.api.core.v1.Pod`). The JSON follows Go's encoding of the
//! same object (see [`to_json`] for the rules).

use std::sync::LazyLock;

use base64::Engine as _;
use ferrolet_proto::kubernetes::{
    FILE_DESCRIPTOR_SET, is_go_pointer_field, is_inline_field, json_name,
};
use http::StatusCode;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, MapKey, MessageDescriptor, ReflectMessage,
    Value,
};
use serde_json::{Map, Number, Value as Json};

/// The media type of the Kubernetes protobuf encoding.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Embedded objects (a `RawExtension` holding another envelope) nest at most this deep.
const MAX_ENVELOPE_DEPTH: usize = 8;

const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
const META_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

/// Go's zero `time.Time` (January 1, year 1, UTC) in Unix seconds: Go encodes it as null.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// API group → proto package prefix (the version is appended) for the vendored groups.
const GROUP_PACKAGES: &[(&str, &str)] = &[
    ("", "k8s.io.api.core"),
    ("apps", "k8s.io.api.apps"),
    ("authentication.k8s.io", "k8s.io.api.authentication"),
    ("authorization.k8s.io", "k8s.io.api.authorization"),
    ("autoscaling", "k8s.io.api.autoscaling"),
    ("batch", "k8s.io.api.batch"),
    ("certificates.k8s.io", "k8s.io.api.certificates"),
    ("coordination.k8s.io", "k8s.io.api.coordination"),
    ("discovery.k8s.io", "k8s.io.api.discovery"),
    ("events.k8s.io", "k8s.io.api.events"),
    ("networking.k8s.io", "k8s.io.api.networking"),
    ("node.k8s.io", "k8s.io.api.node"),
    ("policy", "k8s.io.api.policy"),
    ("rbac.authorization.k8s.io", "k8s.io.api.rbac"),
    ("scheduling.k8s.io", "k8s.io.api.scheduling"),
    ("storage.k8s.io", "k8s.io.api.storage"),
    ("meta.k8s.io", "k8s.io.apimachinery.pkg.apis.meta"),
];

/// Kinds every group version carries from `meta.k8s.io/v1` (`metav1.AddToGroupVersion`), so
/// `v1`/`DeleteOptions` and `apps/v1`/`DeleteOptions` are both `meta.v1.DeleteOptions`.
const META_KINDS: &[&str] = &[
    "CreateOptions",
    "DeleteOptions",
    "GetOptions",
    "ListOptions",
    "PatchOptions",
    "Status",
    "UpdateOptions",
    "WatchEvent",
];

/// Why a protobuf request body could not be turned into JSON.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("request body is not a Kubernetes protobuf envelope: it does not start with k8s\\0")]
    NotAnEnvelope,
    /// The bytes after the magic are not a `runtime.Unknown` message.
    #[error("decoding the runtime.Unknown envelope of the protobuf request body: {0}")]
    EnvelopeDecodeFailed(#[source] prost::DecodeError),
    /// The envelope's `typeMeta` lacks `apiVersion` or `kind`.
    #[error("the protobuf envelope does not name the object's apiVersion and kind")]
    MissingTypeMeta,
    /// No vendored message type belongs to `apiVersion`/`kind`.
    #[error("no protobuf message type is known for {api_version}/{kind}")]
    UnknownType {
        /// `apiVersion` from the envelope.
        api_version: String,
        /// `kind` from the envelope.
        kind: String,
    },
    /// The envelope says `raw` is compressed or otherwise encoded.
    #[error("protobuf envelope content encoding {0:?} is not supported")]
    UnsupportedContentEncoding(String),
    /// The envelope says `raw` is not protobuf.
    #[error("protobuf envelope content type {0:?} is not supported")]
    UnsupportedContentType(String),
    /// `raw` is not a valid message of the type `typeMeta` names.
    #[error("decoding the protobuf body of {api_version}/{kind} as {message_type}: {source}")]
    DecodeFailed {
        /// `apiVersion` from the envelope.
        api_version: String,
        /// `kind` from the envelope.
        kind: String,
        /// The fully qualified message type (`k8s.io.api.core.v1.Pod`).
        message_type: String,
        /// prost's description of the failure.
        #[source]
        source: prost::DecodeError,
    },
    /// A decoded value has no JSON form Kubernetes would accept.
    #[error("converting {message_type} to JSON: {reason}")]
    InvalidValue {
        /// The message holding the value (`k8s.io.apimachinery.pkg.apis.meta.v1.Time`).
        message_type: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The compiled-in descriptor set does not load (a build defect, not a client error).
    #[error("loading the Kubernetes protobuf descriptor set: {0}")]
    DescriptorSet(String),
}

impl ProtobufError {
    /// The HTTP status the API server answers with: 415 Unsupported Media Type when the body
    /// names a type or encoding this server cannot decode, 500 for a broken descriptor set,
    /// 400 Bad Request otherwise.
    #[must_use]
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::UnknownType { .. }
            | Self::UnsupportedContentEncoding(_)
            | Self::UnsupportedContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::DescriptorSet(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Whether a `Content-Type` header value is the Kubernetes protobuf encoding (parameters such
/// as `; charset=...` are allowed; the media type is compared case-insensitively).
#[must_use]
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

/// The Kubernetes API schemas, loaded once from [`FILE_DESCRIPTOR_SET`].
pub fn descriptor_pool() -> Result<&'static DescriptorPool, ProtobufError> {
    static POOL: LazyLock<Result<DescriptorPool, String>> =
        LazyLock::new(|| DescriptorPool::decode(FILE_DESCRIPTOR_SET).map_err(|e| e.to_string()));
    POOL.as_ref()
        .map_err(|reason| ProtobufError::DescriptorSet(reason.clone()))
}

/// The message type of `kind` in `api_version` (`v1`, `coordination.k8s.io/v1`), e.g.
/// `k8s.io.api.coordination.v1.Lease`; the shared option kinds (`DeleteOptions`, `Status`,
/// ...) resolve to `meta.k8s.io/v1`'s in every served group version.
pub fn message_type(api_version: &str, kind: &str) -> Result<MessageDescriptor, ProtobufError> {
    let unknown = || ProtobufError::UnknownType {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let valid_name = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    if !valid_name(version) || !valid_name(kind) {
        return Err(unknown());
    }
    let package = GROUP_PACKAGES
        .iter()
        .find(|(g, _)| *g == group)
        .map(|(_, package)| *package)
        .ok_or_else(unknown)?;
    let pool = descriptor_pool()?;
    pool.get_message_by_name(&format!("{package}.{version}.{kind}"))
        .or_else(|| {
            META_KINDS
                .contains(&kind)
                .then(|| pool.get_message_by_name(&format!("{META_V1}.{kind}")))
                .flatten()
        })
        .ok_or_else(unknown)
}

/// Decodes a protobuf request body into the JSON object Kubernetes would produce for it,
/// with `apiVersion` and `kind` from the envelope.
pub fn decode_request(body: &[u8]) -> Result<Json, ProtobufError> {
    decode_envelope(body, 0)
}

fn decode_envelope(body: &[u8], depth: usize) -> Result<Json, ProtobufError> {
    let message = body
        .strip_prefix(MAGIC)
        .ok_or(ProtobufError::NotAnEnvelope)?;
    let pool = descriptor_pool()?;
    let unknown_type = pool
        .get_message_by_name(UNKNOWN)
        .ok_or_else(|| ProtobufError::DescriptorSet(format!("{UNKNOWN} is missing")))?;
    let envelope = DynamicMessage::decode(unknown_type, message)
        .map_err(ProtobufError::EnvelopeDecodeFailed)?;

    let type_meta = envelope.get_field_by_name("typeMeta");
    let type_meta = type_meta.as_deref().and_then(Value::as_message);
    let text = |message: Option<&DynamicMessage>, name: &str| {
        message
            .and_then(|m| m.get_field_by_name(name))
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let api_version = text(type_meta, "apiVersion");
    let kind = text(type_meta, "kind");
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    let encoding = text(Some(&envelope), "contentEncoding");
    if !encoding.is_empty() {
        return Err(ProtobufError::UnsupportedContentEncoding(encoding));
    }
    let content_type = text(Some(&envelope), "contentType");
    if !content_type.is_empty() && !is_protobuf(&content_type) {
        return Err(ProtobufError::UnsupportedContentType(content_type));
    }

    let descriptor = message_type(&api_version, &kind)?;
    let raw = envelope.get_field_by_name("raw");
    let raw = raw
        .as_deref()
        .and_then(Value::as_bytes)
        .cloned()
        .unwrap_or_default();
    let object = DynamicMessage::decode(descriptor.clone(), raw).map_err(|source| {
        ProtobufError::DecodeFailed {
            api_version: api_version.clone(),
            kind: kind.clone(),
            message_type: descriptor.full_name().to_owned(),
            source,
        }
    })?;

    let mut json = Map::new();
    json.insert("apiVersion".into(), Json::String(api_version));
    json.insert("kind".into(), Json::String(kind));
    match message_json(&object, depth)? {
        Json::Object(fields) => json.extend(fields),
        other => {
            return Err(invalid(
                &descriptor,
                format!("a top-level object must be a JSON object, not {other}"),
            ));
        }
    }
    Ok(Json::Object(json))
}

/// Converts one decoded message to the JSON Go's `encoding/json` writes for the same value.
///
/// - Field names are the proto field names, which are the JSON names in Kubernetes' files
///   except where [`json_name`] says otherwise; a field of an embedded Go struct with
///   `json:",inline"` ([`is_inline_field`]: `Volume.volumeSource`, `Probe.handler`) puts its
///   fields into the enclosing object.
/// - A singular scalar field that is a Go value (not a pointer, see
///   [`is_go_pointer_field`]) is left out when it holds `""`, `0` or `false`: gogo-protobuf
///   writes value fields unconditionally, and that zero means "unset" (Go's `omitempty`). A
///   pointer field is written whenever it is present, zero included. The one difference from
///   Go: a value field *without* `omitempty` (`PodDisruptionBudgetStatus.currentHealthy`,
///   `ContainerStatus.restartCount`) is written by Go as `0`/`""`/`false` but left out here,
///   since neither the wire nor the schema says which fields those are; every Go or
///   k8s-openapi reader takes a missing field as that zero value.
/// - Message fields are written when present (`"spec": {}` as Go writes a value struct);
///   repeated fields as arrays and maps as objects with sorted keys, when non-empty.
/// - Integers are JSON numbers (int64 too, as Go writes them), bytes are base64 strings.
/// - apimachinery's special types: `resource.Quantity` is its string; `meta.v1.Time` is
///   RFC 3339 UTC in seconds and `meta.v1.MicroTime` with 6 fractional digits, both null when
///   empty (Go's zero time); `meta.v1.Duration` is Go's `time.Duration.String()`;
///   `intstr.IntOrString` is a number or a string by its `type`; `runtime.RawExtension` and
///   `meta.v1.FieldsV1` are the JSON they carry (a nested protobuf envelope is decoded);
///   `meta.v1.Verbs` and the `ExtraValue`s are arrays of strings.
pub fn to_json(message: &DynamicMessage) -> Result<Json, ProtobufError> {
    message_json(message, 0)
}

fn message_json(message: &DynamicMessage, depth: usize) -> Result<Json, ProtobufError> {
    let descriptor = message.descriptor();
    match descriptor.full_name() {
        "k8s.io.apimachinery.pkg.apis.meta.v1.Time" => time_json(message, false),
        "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime" => time_json(message, true),
        "k8s.io.apimachinery.pkg.apis.meta.v1.Duration" => {
            Ok(Json::String(go_duration(int_field(message, "duration"))))
        }
        "k8s.io.apimachinery.pkg.api.resource.Quantity"
        | "k8s.io.apimachinery.pkg.api.resource.QuantityValue" => Ok(Json::String(
            string_field(message, "string").unwrap_or_else(|| "0".into()),
        )),
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => int_or_string_json(message),
        "k8s.io.apimachinery.pkg.runtime.RawExtension" => raw_json(message, "raw", depth),
        "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1" => raw_json(message, "Raw", depth),
        "k8s.io.apimachinery.pkg.apis.meta.v1.Verbs"
        | "k8s.io.api.authentication.v1.ExtraValue"
        | "k8s.io.api.authorization.v1.ExtraValue"
        | "k8s.io.api.certificates.v1.ExtraValue" => Ok(message
            .get_field_by_name("items")
            .map_or(Json::Array(Vec::new()), |items| {
                value_json_infallible(&items)
            })),
        _ => object_json(message, depth),
    }
}

fn object_json(message: &DynamicMessage, depth: usize) -> Result<Json, ProtobufError> {
    let descriptor = message.descriptor();
    let mut object = Map::new();
    for (field, value) in message.fields() {
        let Some(json) = field_json(&descriptor, &field, value, depth)? else {
            continue;
        };
        if is_inline_field(descriptor.full_name(), field.name()) {
            // An embedded Go struct (`json:",inline"`): its fields join this object.
            match json {
                Json::Object(fields) => object.extend(fields),
                Json::Null => {}
                other => {
                    return Err(invalid(
                        &descriptor,
                        format!("inline field {} is not an object: {other}", field.name()),
                    ));
                }
            }
        } else {
            let name = json_name(descriptor.full_name(), field.name());
            object.insert(name.to_owned(), json);
        }
    }
    Ok(Json::Object(object))
}

/// The JSON of one present field, or `None` where Go's JSON leaves it out.
fn field_json(
    message: &MessageDescriptor,
    field: &FieldDescriptor,
    value: &Value,
    depth: usize,
) -> Result<Option<Json>, ProtobufError> {
    match value {
        Value::List(items) if items.is_empty() => Ok(None),
        Value::List(items) => {
            let items: Result<Vec<_>, _> = items.iter().map(|v| value_json(v, depth)).collect();
            Ok(Some(Json::Array(items?)))
        }
        Value::Map(entries) if entries.is_empty() => Ok(None),
        Value::Map(entries) => {
            let mut sorted: Vec<_> = entries.iter().map(|(k, v)| (map_key(k), v)).collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let mut object = Map::new();
            for (key, v) in sorted {
                object.insert(key, value_json(v, depth)?);
            }
            Ok(Some(Json::Object(object)))
        }
        Value::Message(_) | Value::Bytes(_) => value_json(value, depth).map(Some),
        scalar => {
            let go_value = !is_go_pointer_field(message.full_name(), field.name());
            if go_value && scalar.is_default(&field.kind()) {
                return Ok(None);
            }
            value_json(scalar, depth).map(Some)
        }
    }
}

fn value_json(value: &Value, depth: usize) -> Result<Json, ProtobufError> {
    match value {
        Value::Message(message) => message_json(message, depth),
        Value::F32(f) => float_json(f64::from(*f)),
        Value::F64(f) => float_json(*f),
        other => Ok(value_json_infallible(other)),
    }
}

/// Scalars, bytes and lists of them; messages and floats go through [`value_json`].
fn value_json_infallible(value: &Value) -> Json {
    match value {
        Value::Bool(b) => Json::Bool(*b),
        Value::I32(n) | Value::EnumNumber(n) => Json::from(*n),
        Value::I64(n) => Json::from(*n),
        Value::U32(n) => Json::from(*n),
        Value::U64(n) => Json::from(*n),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::List(items) => Json::Array(items.iter().map(value_json_infallible).collect()),
        Value::F32(f) => Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number),
        Value::F64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Map(_) | Value::Message(_) => Json::Null,
    }
}

fn float_json(f: f64) -> Result<Json, ProtobufError> {
    Number::from_f64(f)
        .map(Json::Number)
        .ok_or_else(|| ProtobufError::InvalidValue {
            message_type: "double".into(),
            reason: format!("{f} has no JSON representation"),
        })
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

/// `meta.v1.Time` (whole seconds, as Go keeps only those when decoding) or `MicroTime`.
fn time_json(message: &DynamicMessage, micro: bool) -> Result<Json, ProtobufError> {
    // Go marshals the zero time as an empty message and writes it to JSON as null.
    if message.fields().next().is_none() {
        return Ok(Json::Null);
    }
    let seconds = int_field(message, "seconds");
    let nanos = if micro {
        int_field(message, "nanos")
    } else {
        0
    };
    if seconds == GO_ZERO_TIME_UNIX && nanos == 0 {
        return Ok(Json::Null);
    }
    let instant = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    let timestamp = jiff::Timestamp::from_nanosecond(instant).map_err(|e| {
        invalid(
            &message.descriptor(),
            format!("{seconds}s {nanos}ns is out of range: {e}"),
        )
    })?;
    let utc = jiff::tz::Offset::UTC.to_datetime(timestamp);
    if utc.year() < 0 {
        return Err(invalid(
            &message.descriptor(),
            format!("year {} is outside [0,9999]", utc.year()),
        ));
    }
    // Go's RFC3339Micro layout truncates to microseconds and always prints 6 digits.
    let fraction = if micro {
        format!(".{:06}", utc.subsec_nanosecond() / 1_000)
    } else {
        String::new()
    };
    Ok(Json::String(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}Z",
        utc.year(),
        utc.month(),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    )))
}

fn int_or_string_json(message: &DynamicMessage) -> Result<Json, ProtobufError> {
    match int_field(message, "type") {
        0 => Ok(Json::from(int_field(message, "intVal"))),
        1 => Ok(Json::String(
            string_field(message, "strVal").unwrap_or_default(),
        )),
        other => Err(invalid(
            &message.descriptor(),
            format!("type {other} is neither 0 (int) nor 1 (string)"),
        )),
    }
}

/// The JSON held in a bytes field (`RawExtension.raw`, `FieldsV1.Raw`); null when absent.
fn raw_json(message: &DynamicMessage, field: &str, depth: usize) -> Result<Json, ProtobufError> {
    let value = message.get_field_by_name(field);
    let Some(raw) = value.as_deref().and_then(Value::as_bytes) else {
        return Ok(Json::Null);
    };
    if raw.is_empty() {
        return Ok(Json::Null);
    }
    if raw.starts_with(MAGIC) {
        if depth >= MAX_ENVELOPE_DEPTH {
            return Err(invalid(
                &message.descriptor(),
                format!("embedded objects nest deeper than {MAX_ENVELOPE_DEPTH} levels"),
            ));
        }
        return decode_envelope(raw, depth + 1);
    }
    serde_json::from_slice(raw)
        .map_err(|e| invalid(&message.descriptor(), format!("{field} is not JSON: {e}")))
}

/// A signed integer field (int32 or int64) as i64; 0 when unset.
fn int_field(message: &DynamicMessage, name: &str) -> i64 {
    message
        .get_field_by_name(name)
        .and_then(|v| v.as_i64().or_else(|| v.as_i32().map(i64::from)))
        .unwrap_or(0)
}

/// A string field, `None` when unset.
fn string_field(message: &DynamicMessage, name: &str) -> Option<String> {
    message
        .has_field_by_name(name)
        .then(|| message.get_field_by_name(name))
        .flatten()
        .and_then(|v| v.as_str().map(str::to_owned))
}

fn invalid(message: &MessageDescriptor, reason: String) -> ProtobufError {
    ProtobufError::InvalidValue {
        message_type: message.full_name().to_owned(),
        reason,
    }
}

/// Go's `time.Duration.String()`: `1h2m3s`, `1.5s`, `500ms`, `1µs`, `0s`, `-1m0s`.
#[must_use]
pub fn go_duration(nanoseconds: i64) -> String {
    const SECOND: u64 = 1_000_000_000;
    let u = nanoseconds.unsigned_abs();
    if u == 0 {
        return "0s".into();
    }
    let text = if u < SECOND {
        // Below a second Go switches to the largest unit that keeps an integer part.
        let (precision, unit) = match u {
            ..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let (fraction, whole) = go_fraction(u, precision);
        format!("{whole}{fraction}{unit}")
    } else {
        let (fraction, whole_seconds) = go_fraction(u, 9);
        let seconds = format!("{}{fraction}s", whole_seconds % 60);
        let minutes = whole_seconds / 60;
        match (minutes / 60, minutes % 60) {
            _ if minutes == 0 => seconds,
            (0, m) => format!("{m}m{seconds}"),
            (h, m) => format!("{h}h{m}m{seconds}"),
        }
    };
    if nanoseconds < 0 {
        format!("-{text}")
    } else {
        text
    }
}

/// Go's `fmtFrac`: the fraction of `v / 10^precision` as `.123` without trailing zeros (empty
/// when zero), and the integer part.
fn go_fraction(v: u64, precision: u32) -> (String, u64) {
    let divisor = 10_u64.pow(precision);
    let fraction = v % divisor;
    if fraction == 0 {
        return (String::new(), v / divisor);
    }
    let digits = format!("{fraction:0width$}", width = precision as usize);
    (format!(".{}", digits.trim_end_matches('0')), v / divisor)
}

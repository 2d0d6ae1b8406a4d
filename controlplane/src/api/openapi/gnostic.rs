//! The Swagger 2.0 document in protobuf, as gnostic's `openapi.v2.Document` message
//! (`openapiv2/OpenAPIv2.proto` of google/gnostic): the only form client-go's
//! `DiscoveryClient.OpenAPISchema` accepts (`Accept:
//! application/com.github.proto-openapi.spec.v2@v1.0+protobuf`). Written field by field from
//! the JSON document, as gnostic's compiler reads one: vendor extensions (`x-...`) and other
//! free-form values (`default`, `enum`, `example`) become an `Any` holding their YAML, for
//! which their JSON text serves (YAML is a superset of JSON). Only the parts of a document
//! that `/openapi/v2` uses are written: info, paths with their operations, parameters and
//! responses, and definitions.

use serde_json::{Map, Value};

/// A protobuf message being written.
#[derive(Default)]
struct Message(Vec<u8>);

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LENGTH_DELIMITED: u32 = 2;

impl Message {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            // Truncation intended: the low seven bits, with the continuation bit.
            #[allow(clippy::cast_possible_truncation)]
            self.0.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        #[allow(clippy::cast_possible_truncation)]
        self.0.push(value as u8);
    }

    fn key(&mut self, field: u32, wire_type: u32) {
        self.varint(u64::from(field << 3 | wire_type));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, LENGTH_DELIMITED);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    /// A `string` field; proto3 leaves out the empty string.
    fn string(&mut self, field: u32, value: &Value) {
        if let Some(text) = value.as_str().filter(|t| !t.is_empty()) {
            self.bytes(field, text.as_bytes());
        }
    }

    /// A `repeated string` field, from a JSON array (or a single string).
    fn strings(&mut self, field: u32, value: &Value) {
        match value {
            Value::Array(items) => {
                for text in items.iter().filter_map(Value::as_str) {
                    self.bytes(field, text.as_bytes());
                }
            }
            Value::String(text) => self.bytes(field, text.as_bytes()),
            _ => {}
        }
    }

    fn bool(&mut self, field: u32, value: &Value) {
        if value.as_bool() == Some(true) {
            self.key(field, VARINT);
            self.varint(1);
        }
    }

    fn int64(&mut self, field: u32, value: &Value) {
        if let Some(number) = value.as_i64().filter(|n| *n != 0) {
            self.key(field, VARINT);
            // Two's complement, as protobuf encodes a negative int64.
            #[allow(clippy::cast_sign_loss)]
            self.varint(number as u64);
        }
    }

    fn double(&mut self, field: u32, value: &Value) {
        if let Some(number) = value.as_f64().filter(|n| *n != 0.0) {
            self.key(field, FIXED64);
            self.0.extend_from_slice(&number.to_le_bytes());
        }
    }

    fn message(&mut self, field: u32, message: &Message) {
        self.bytes(field, &message.0);
    }

    /// An `Any` (gnostic's, holding YAML) field for a free-form value, if present.
    fn any(&mut self, field: u32, value: &Value) {
        if !value.is_null() {
            self.message(field, &any(value));
        }
    }

    /// The `repeated NamedAny vendor_extension` field: every `x-` key of `object`.
    fn extensions(&mut self, field: u32, object: &Value) {
        for (name, value) in object.as_object().into_iter().flatten() {
            if name.starts_with("x-") {
                let mut named = Message::default();
                named.bytes(1, name.as_bytes());
                named.message(2, &any(value));
                self.message(field, &named);
            }
        }
    }

    /// A repeated `Named...` field (`name = 1`, `value = 2`) from the entries of a JSON
    /// object, each value written by `write`.
    fn named(&mut self, field: u32, object: &Value, write: impl Fn(&Value) -> Message) {
        for (name, value) in object.as_object().into_iter().flatten() {
            let mut named = Message::default();
            named.bytes(1, name.as_bytes());
            named.message(2, &write(value));
            self.message(field, &named);
        }
    }
}

/// gnostic's `Any`: `yaml = 2` holds the value's YAML (here its JSON text).
fn any(value: &Value) -> Message {
    let mut message = Message::default();
    let text = serde_json::to_string(value).unwrap_or_default();
    message.bytes(2, text.as_bytes());
    message
}

/// `openapi.v2.Document`.
pub(super) fn document(doc: &Value) -> Vec<u8> {
    let mut m = Message::default();
    m.string(1, &doc["swagger"]);
    if doc["info"].is_object() {
        let info = &doc["info"];
        let mut i = Message::default();
        i.string(1, &info["title"]);
        i.string(2, &info["version"]);
        i.string(3, &info["description"]);
        i.extensions(7, info);
        m.message(2, &i);
    }
    m.string(3, &doc["host"]);
    m.string(4, &doc["basePath"]);
    m.strings(5, &doc["schemes"]);
    m.strings(6, &doc["consumes"]);
    m.strings(7, &doc["produces"]);
    if doc["paths"].is_object() {
        let mut paths = Message::default();
        paths.extensions(1, &doc["paths"]);
        let items: Map<String, Value> = doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(name, _)| !name.starts_with("x-"))
            .map(|(name, item)| (name.clone(), item.clone()))
            .collect();
        paths.named(2, &Value::Object(items), path_item);
        m.message(8, &paths);
    }
    if doc["definitions"].is_object() {
        let mut definitions = Message::default();
        definitions.named(1, &doc["definitions"], schema);
        m.message(9, &definitions);
    }
    m.extensions(16, doc);
    m.0
}

/// `PathItem`.
fn path_item(item: &Value) -> Message {
    let mut m = Message::default();
    m.string(1, &item["$ref"]);
    for (field, method) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ] {
        if item[method].is_object() {
            m.message(field, &operation(&item[method]));
        }
    }
    for parameter in item["parameters"].as_array().into_iter().flatten() {
        m.message(9, &parameters_item(parameter));
    }
    m.extensions(10, item);
    m
}

/// `Operation`.
fn operation(op: &Value) -> Message {
    let mut m = Message::default();
    m.strings(1, &op["tags"]);
    m.string(2, &op["summary"]);
    m.string(3, &op["description"]);
    m.string(5, &op["operationId"]);
    m.strings(6, &op["produces"]);
    m.strings(7, &op["consumes"]);
    for parameter in op["parameters"].as_array().into_iter().flatten() {
        m.message(8, &parameters_item(parameter));
    }
    if op["responses"].is_object() {
        let mut responses = Message::default();
        let codes: Map<String, Value> = op["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(code, _)| !code.starts_with("x-"))
            .map(|(code, response)| (code.clone(), response.clone()))
            .collect();
        responses.named(1, &Value::Object(codes), response_value);
        responses.extensions(2, &op["responses"]);
        m.message(9, &responses);
    }
    m.strings(10, &op["schemes"]);
    m.bool(11, &op["deprecated"]);
    m.extensions(13, op);
    m
}

/// `ResponseValue` holding a `Response` (or a `JsonReference`).
fn response_value(response: &Value) -> Message {
    let mut m = Message::default();
    if let Some(reference) = response["$ref"].as_str() {
        let mut r = Message::default();
        r.bytes(1, reference.as_bytes());
        m.message(2, &r);
        return m;
    }
    let mut r = Message::default();
    r.string(1, &response["description"]);
    if response["schema"].is_object() {
        let mut item = Message::default();
        item.message(1, &schema(&response["schema"]));
        r.message(2, &item);
    }
    r.extensions(5, response);
    m.message(1, &r);
    m
}

/// `ParametersItem`: a `Parameter` (body, or query/path/header) or a `JsonReference`.
fn parameters_item(parameter: &Value) -> Message {
    let mut item = Message::default();
    if let Some(reference) = parameter["$ref"].as_str() {
        let mut r = Message::default();
        r.bytes(1, reference.as_bytes());
        item.message(2, &r);
        return item;
    }
    let mut p = Message::default();
    let location = parameter["in"].as_str().unwrap_or_default();
    if location == "body" {
        let mut body = Message::default();
        body.string(1, &parameter["description"]);
        body.string(2, &parameter["name"]);
        body.string(3, &parameter["in"]);
        body.bool(4, &parameter["required"]);
        if parameter["schema"].is_object() {
            body.message(5, &schema(&parameter["schema"]));
        }
        body.extensions(6, parameter);
        p.message(1, &body);
    } else {
        // Query and form parameters have `allowEmptyValue` at 5, which shifts the rest by one.
        let (variant, shift) = match location {
            "header" => (1, 0),
            "formData" => (2, 1),
            "query" => (3, 1),
            _ => (4, 0),
        };
        let mut sub = Message::default();
        sub.bool(1, &parameter["required"]);
        sub.string(2, &parameter["in"]);
        sub.string(3, &parameter["description"]);
        sub.string(4, &parameter["name"]);
        if shift == 1 {
            sub.bool(5, &parameter["allowEmptyValue"]);
        }
        sub.string(5 + shift, &parameter["type"]);
        sub.string(6 + shift, &parameter["format"]);
        sub.string(8 + shift, &parameter["collectionFormat"]);
        sub.any(9 + shift, &parameter["default"]);
        sub.bool(19 + shift, &parameter["uniqueItems"]);
        sub.extensions(22 + shift, parameter);
        let mut non_body = Message::default();
        non_body.message(variant, &sub);
        p.message(2, &non_body);
    }
    item.message(1, &p);
    item
}

/// `Schema`.
fn schema(s: &Value) -> Message {
    let mut m = Message::default();
    m.string(1, &s["$ref"]);
    m.string(2, &s["format"]);
    m.string(3, &s["title"]);
    m.string(4, &s["description"]);
    m.any(5, &s["default"]);
    m.double(6, &s["multipleOf"]);
    m.double(7, &s["maximum"]);
    m.bool(8, &s["exclusiveMaximum"]);
    m.double(9, &s["minimum"]);
    m.bool(10, &s["exclusiveMinimum"]);
    m.int64(11, &s["maxLength"]);
    m.int64(12, &s["minLength"]);
    m.string(13, &s["pattern"]);
    m.int64(14, &s["maxItems"]);
    m.int64(15, &s["minItems"]);
    m.bool(16, &s["uniqueItems"]);
    m.int64(17, &s["maxProperties"]);
    m.int64(18, &s["minProperties"]);
    m.strings(19, &s["required"]);
    for value in s["enum"].as_array().into_iter().flatten() {
        m.message(20, &any(value));
    }
    match &s["additionalProperties"] {
        Value::Object(_) => {
            let mut item = Message::default();
            item.message(1, &schema(&s["additionalProperties"]));
            m.message(21, &item);
        }
        Value::Bool(allowed) => {
            let mut item = Message::default();
            item.key(2, VARINT);
            item.varint(u64::from(*allowed));
            m.message(21, &item);
        }
        _ => {}
    }
    if !s["type"].is_null() {
        let mut types = Message::default();
        types.strings(1, &s["type"]);
        m.message(22, &types);
    }
    match &s["items"] {
        Value::Object(_) => {
            let mut items = Message::default();
            items.message(1, &schema(&s["items"]));
            m.message(23, &items);
        }
        Value::Array(list) => {
            let mut items = Message::default();
            for item in list {
                items.message(1, &schema(item));
            }
            m.message(23, &items);
        }
        _ => {}
    }
    for part in s["allOf"].as_array().into_iter().flatten() {
        m.message(24, &schema(part));
    }
    if s["properties"].is_object() {
        let mut properties = Message::default();
        properties.named(1, &s["properties"], schema);
        m.message(25, &properties);
    }
    m.string(26, &s["discriminator"]);
    m.bool(27, &s["readOnly"]);
    m.any(30, &s["example"]);
    m.extensions(31, s);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_written_with_their_numbers_and_wire_types() {
        let bytes = document(&json!({"swagger": "2.0", "info": {"title": "K", "version": "v1"}}));
        assert_eq!(
            bytes,
            [
                0x0a, 3, b'2', b'.', b'0', // swagger = 1
                0x12, 7, 0x0a, 1, b'K', 0x12, 2, b'v', b'1', // info = 2 { title, version }
            ]
        );
    }

    #[test]
    fn extensions_hold_their_value_as_yaml_text() {
        let m = schema(&json!({"x-kubernetes-patch-strategy": "merge"}));
        let name = b"x-kubernetes-patch-strategy";
        let yaml = b"\"merge\"";
        let mut expected = vec![0xfa, 0x01]; // vendor_extension = 31, length-delimited
        expected.push(u8::try_from(2 + name.len() + 2 + 2 + yaml.len()).unwrap());
        expected.extend([0x0a, u8::try_from(name.len()).unwrap()]);
        expected.extend(name);
        expected.extend([0x12, u8::try_from(2 + yaml.len()).unwrap()]);
        expected.extend([0x12, u8::try_from(yaml.len()).unwrap()]);
        expected.extend(yaml);
        assert_eq!(m.0, expected);
    }

    #[test]
    fn long_fields_use_multi_byte_lengths() {
        let description = "d".repeat(300);
        let m = schema(&json!({ "description": description }));
        assert_eq!(&m.0[..3], [0x22, 0xac, 0x02]);
        assert_eq!(m.0.len(), 3 + 300);
    }
}

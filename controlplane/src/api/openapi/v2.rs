//! `/openapi/v2`: the Swagger 2.0 document of every served kind, made from the same annotated
//! schemas as the v3 documents. Served as JSON (`Accept: application/json`, the default) and
//! as gnostic protobuf, the only form client-go's discovery client reads
//! (`OpenAPISchema`: kubectl's `explain -o plaintext-openapiv2`, and its fallbacks when a
//! server has no v3), built once and answered with an `ETag`, as kube-apiserver does.

use std::sync::OnceLock;

use axum::body::Body;
use axum::response::Response;
use http::{Request, StatusCode, header};
use serde_json::{Map, Value, json};

use super::{annotated_schemas, gnostic, group_versions, hash_of};
use crate::api::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;

/// The protobuf media type clients ask for (client-go's `openAPIV2mimePb`).
pub(crate) const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The same with a dot: what kube-openapi labels the response with, since `@` is not a
/// token character and client-go's `mime.ParseMediaType` refuses it.
const PROTOBUF_DOTTED: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

const DEFINITIONS: &str = "#/definitions/";

/// A representation of the document, with its `ETag`.
struct Encoded {
    body: Vec<u8>,
    etag: String,
}

struct Served {
    json: Encoded,
    protobuf: Encoded,
}

fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let doc = document();
        let encode = |body: Vec<u8>| {
            let etag = format!("\"{}\"", hash_of(&body));
            Encoded { body, etag }
        };
        Served {
            json: encode(serde_json::to_vec(&doc).unwrap_or_default()),
            protobuf: encode(gnostic::document(&doc)),
        }
    })
}

/// Which representation an `Accept` header asks for: the first acceptable media range wins;
/// none (or no header) means JSON.
fn negotiate(accept: Option<&str>) -> Option<&'static str> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some("application/json");
    };
    accept.split(',').find_map(|range| {
        let media = range.split(';').next().unwrap_or_default().trim();
        match media {
            "application/json" | "application/*" | "*/*" => Some("application/json"),
            PROTOBUF | PROTOBUF_DOTTED => Some(PROTOBUF_DOTTED),
            _ => None,
        }
    })
}

pub(super) fn handle(request: &Request<Body>) -> ApiResult<Response> {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let media = negotiate(accept).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            format!("only the following media types are accepted: application/json, {PROTOBUF}"),
        )
    })?;
    let encoded = if media == PROTOBUF_DOTTED {
        &served().protobuf
    } else {
        &served().json
    };
    let unchanged = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == encoded.etag));
    let mut response = if unchanged {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Body::from(encoded.body.clone()))
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, http::HeaderValue::from_static(media));
    headers.insert(header::VARY, http::HeaderValue::from_static("Accept"));
    if let Ok(etag) = http::HeaderValue::from_str(&encoded.etag) {
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}

/// The Swagger 2.0 document.
pub(crate) fn document() -> Value {
    let mut definitions = Map::new();
    let mut paths = Map::new();
    for (group, version) in group_versions() {
        let (schemas, kinds) = annotated_schemas(group, version);
        for (name, schema) in schemas {
            definitions.entry(name).or_insert(schema);
        }
        for (schema, resource) in &kinds {
            paths.extend(paths_for(resource, schema));
        }
    }
    for schema in definitions.values_mut() {
        to_swagger(schema);
    }
    definitions.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
        json!({
            "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
            "type": "object",
        }),
    );
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": crate::api::discovery::KUBERNETES_VERSION},
        "paths": paths,
        "definitions": definitions,
    })
}

/// Turns an `OpenAPI` 3.0 schema into a Swagger 2.0 one: references point into
/// `#/definitions/`, and sit beside their description rather than in an `allOf` (kubectl's
/// v2 reader takes a schema with `$ref` as the reference, and one with `allOf` as untyped);
/// `nullable`, `oneOf` and `anyOf` do not exist in 2.0.
fn to_swagger(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    let single_ref = match map.get("allOf") {
        Some(Value::Array(parts)) if parts.len() == 1 && !map.contains_key("$ref") => {
            parts[0].get("$ref").cloned()
        }
        _ => None,
    };
    if let Some(reference) = single_ref {
        map.remove("allOf");
        map.insert("$ref".into(), reference);
    }
    if let Some(Value::String(reference)) = map.get_mut("$ref")
        && let Some(name) = reference.strip_prefix("#/components/schemas/")
    {
        *reference = format!("{DEFINITIONS}{name}");
    }
    for keyword in ["nullable", "oneOf", "anyOf"] {
        map.remove(keyword);
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(to_swagger);
    }
    if let Some(Value::Array(parts)) = map.get_mut("allOf") {
        parts.iter_mut().for_each(to_swagger);
    }
    for keyword in ["items", "additionalProperties"] {
        match map.get_mut(keyword) {
            Some(Value::Array(items)) => items.iter_mut().for_each(to_swagger),
            Some(item @ Value::Object(_)) => to_swagger(item),
            _ => {}
        }
    }
}

fn query_parameter(name: &str, description: &str) -> Value {
    json!({"uniqueItems": true, "type": "string", "description": description, "name": name, "in": "query"})
}

fn path_parameter(name: &str, description: &str) -> Value {
    json!({"uniqueItems": true, "type": "string", "description": description, "name": name, "in": "path", "required": true})
}

fn write_parameters(body: &Value) -> Vec<Value> {
    vec![
        json!({"name": "body", "in": "body", "required": true, "schema": body}),
        query_parameter(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ),
        query_parameter(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query_parameter(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn (the default) - Strict.",
        ),
    ]
}

fn operation(
    resource: &ResourceInfo,
    action: &str,
    verb_id: &str,
    schema: &str,
    parameters: &[Value],
) -> Value {
    let tag = if resource.group.is_empty() {
        format!("core_{}", resource.version)
    } else {
        format!("{}_{}", resource.group.replace('.', "_"), resource.version)
    };
    let consumes = if action == "patch" {
        json!([
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json"
        ])
    } else {
        json!(["*/*"])
    };
    json!({
        "consumes": consumes,
        "produces": ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
        "schemes": ["https"],
        "tags": [tag],
        "operationId": format!("{verb_id}{}", resource.kind),
        "parameters": parameters,
        "responses": {
            "200": {"description": "OK", "schema": {"$ref": format!("{DEFINITIONS}{schema}")}},
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
    })
}

fn paths_for(resource: &ResourceInfo, schema: &str) -> Map<String, Value> {
    let root = if resource.group.is_empty() {
        format!("/api/{}", resource.version)
    } else {
        format!("/apis/{}/{}", resource.group, resource.version)
    };
    let scope = if resource.namespaced {
        format!("{root}/namespaces/{{namespace}}")
    } else {
        root
    };
    let object = json!({"$ref": format!("{DEFINITIONS}{schema}")});
    let patch = json!({"$ref": format!("{DEFINITIONS}io.k8s.apimachinery.pkg.apis.meta.v1.Patch")});
    let namespace = path_parameter(
        "namespace",
        "object name and auth scope, such as for teams and projects",
    );
    let mut collection_params = Vec::new();
    if resource.namespaced {
        collection_params.push(namespace.clone());
    }
    let mut object_params = vec![path_parameter(
        "name",
        &format!("name of the {}", resource.kind),
    )];
    object_params.extend(collection_params.iter().cloned());
    let mut paths = Map::new();
    paths.insert(
        format!("{scope}/{}", resource.plural),
        json!({
            "get": operation(resource, "list", "list", schema, &[]),
            "post": operation(resource, "post", "create", schema, &write_parameters(&object)),
            "delete": operation(resource, "deletecollection", "deleteCollection", schema, &[]),
            "parameters": collection_params,
        }),
    );
    paths.insert(
        format!("{scope}/{}/{{name}}", resource.plural),
        json!({
            "get": operation(resource, "get", "read", schema, &[]),
            "put": operation(resource, "put", "replace", schema, &write_parameters(&object)),
            "patch": operation(resource, "patch", "patch", schema, &write_parameters(&patch)),
            "delete": operation(resource, "delete", "delete", schema, &[]),
            "parameters": object_params.clone(),
        }),
    );
    if resource.has_status() {
        paths.insert(
            format!("{scope}/{}/{{name}}/status", resource.plural),
            json!({
                "get": operation(resource, "get", "readStatus", schema, &[]),
                "put": operation(resource, "put", "replaceStatus", schema, &write_parameters(&object)),
                "patch": operation(resource, "patch", "patchStatus", schema, &write_parameters(&patch)),
                "parameters": object_params,
            }),
        );
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_to_a_definition() {
        let doc: Value = serde_json::from_slice(&served().json.body).unwrap();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 100, "{}", all.len());
        for reference in all {
            let name = reference
                .strip_prefix(DEFINITIONS)
                .unwrap_or_else(|| panic!("{reference} is not a definition"));
            assert!(
                doc["definitions"][name].is_object(),
                "{reference} is missing"
            );
        }
    }

    #[test]
    fn swagger_has_no_openapi3_keywords() {
        let text = String::from_utf8(served().json.body.clone()).unwrap();
        for keyword in [
            "\"allOf\"",
            "\"nullable\"",
            "\"oneOf\"",
            "\"anyOf\"",
            "#/components/",
        ] {
            assert!(!text.contains(keyword), "{keyword} in the v2 document");
        }
    }

    #[test]
    fn references_keep_their_descriptions_beside_them() {
        let doc = document();
        let spec = &doc["definitions"]["io.k8s.api.core.v1.Pod"]["properties"]["spec"];
        assert_eq!(spec["$ref"], "#/definitions/io.k8s.api.core.v1.PodSpec");
        assert!(spec["description"].as_str().unwrap().contains("behavior"));
    }

    #[test]
    fn accept_headers_pick_a_representation() {
        assert_eq!(negotiate(None), Some("application/json"));
        assert_eq!(
            negotiate(Some("application/json")),
            Some("application/json")
        );
        assert_eq!(negotiate(Some(PROTOBUF)), Some(PROTOBUF_DOTTED));
        assert_eq!(
            negotiate(Some(&format!("{PROTOBUF_DOTTED}, application/json;q=0.5"))),
            Some(PROTOBUF_DOTTED)
        );
        assert_eq!(negotiate(Some("*/*")), Some("application/json"));
        assert_eq!(negotiate(Some("text/html")), None);
    }
}

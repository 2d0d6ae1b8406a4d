//! `OpenAPI` documents generated from the k8s-openapi types' JSON schemas: v3 (`/openapi/v3` and
//! one per group-version) and v2 (`/openapi/v2`, [`v2`]), what `kubectl explain` reads, and what
//! kubectl checks to leave field validation to the server (`fieldValidation` on each PATCH
//! operation).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::body::Body;
use axum::response::Response;
use http::{Request, StatusCode, header};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiResult};
use super::request::RequestInfo;
use super::server::json_response;
use crate::patch::{FieldSchema, PatchStrategy};
use crate::resources::{RESOURCES, ResourceInfo};

mod gnostic;
mod v2;

/// One group-version document and its hash.
struct Document {
    body: Vec<u8>,
    hash: String,
}

fn documents() -> &'static BTreeMap<String, Document> {
    static DOCUMENTS: OnceLock<BTreeMap<String, Document>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(group, version)| {
                let path = if group.is_empty() {
                    format!("api/{version}")
                } else {
                    format!("apis/{group}/{version}")
                };
                let body =
                    serde_json::to_vec(&group_version_document(group, version)).unwrap_or_default();
                let hash = hash_of(&body);
                (path, Document { body, hash })
            })
            .collect()
    })
}

pub(crate) fn handle(info: &RequestInfo, request: &Request<Body>) -> ApiResult<Response> {
    let parts: Vec<&str> = info.parts.iter().map(String::as_str).collect();
    match parts.as_slice() {
        ["openapi", "v3"] => {
            let paths: Map<String, Value> = documents()
                .iter()
                .map(|(path, doc)| {
                    (path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", doc.hash)}))
                })
                .collect();
            Ok(json_response(StatusCode::OK, &json!({"paths": paths})))
        }
        ["openapi", "v3", rest @ ..] => {
            let path = rest.join("/");
            let doc = documents()
                .get(&path)
                .ok_or_else(|| ApiError::path_not_found(&info.path))?;
            let mut response = Response::new(Body::from(doc.body.clone()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            if let Ok(etag) = http::HeaderValue::from_str(&format!("\"{}\"", doc.hash)) {
                response.headers_mut().insert(header::ETAG, etag);
            }
            Ok(response)
        }
        ["openapi", "v2"] => v2::handle(request),
        _ => Err(ApiError::path_not_found(&info.path)),
    }
}

/// Collects the schema of a served kind.
fn kind_schema(
    generator: &mut schemars::SchemaGenerator,
    kind: &str,
    group: &str,
) -> Option<String> {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1 as core;
    use k8s_openapi::api::storage::v1 as storage;
    fn add<T: JsonSchema>(generator: &mut schemars::SchemaGenerator) -> String {
        generator.subschema_for::<T>();
        T::schema_name().into_owned()
    }
    Some(match (group, kind) {
        ("", "Namespace") => add::<core::Namespace>(generator),
        ("", "Pod") => add::<core::Pod>(generator),
        ("", "Node") => add::<core::Node>(generator),
        ("", "Event") => add::<core::Event>(generator),
        ("", "ConfigMap") => add::<core::ConfigMap>(generator),
        ("", "Secret") => add::<core::Secret>(generator),
        ("", "Service") => add::<core::Service>(generator),
        ("", "Endpoints") => add::<core::Endpoints>(generator),
        ("", "ServiceAccount") => add::<core::ServiceAccount>(generator),
        ("", "PersistentVolume") => add::<core::PersistentVolume>(generator),
        ("", "PersistentVolumeClaim") => add::<core::PersistentVolumeClaim>(generator),
        ("coordination.k8s.io", "Lease") => add::<Lease>(generator),
        ("storage.k8s.io", "CSIDriver") => add::<storage::CSIDriver>(generator),
        ("storage.k8s.io", "CSINode") => add::<storage::CSINode>(generator),
        ("storage.k8s.io", "StorageClass") => add::<storage::StorageClass>(generator),
        _ => return None,
    })
}

/// `OpenAPI` 3.0 puts nothing beside a `$ref`; kube-apiserver wraps such references in `allOf`
/// so that their descriptions and defaults survive.
fn wrap_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.len() > 1
                && let Some(reference) = map.remove("$ref")
            {
                map.insert("allOf".into(), json!([{"$ref": reference}]));
            }
            for child in map.values_mut() {
                wrap_refs(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(wrap_refs),
        _ => {}
    }
}

/// The schema a (possibly `allOf`-wrapped) reference points to, by definition name.
fn referenced(schema: &Value) -> Option<String> {
    let reference = schema["$ref"]
        .as_str()
        .or_else(|| schema["allOf"][0]["$ref"].as_str())?;
    reference
        .strip_prefix("#/components/schemas/")
        .map(str::to_owned)
}

/// Adds kube-apiserver's patch extensions (`x-kubernetes-patch-strategy`,
/// `x-kubernetes-patch-merge-key`, list types) to the properties of `definition`, walking the
/// strategic-merge table of a kind: kubectl computes `apply` patches from them, and without
/// them it replaces merged lists whole.
fn annotate_patch_strategies(
    schemas: &mut Map<String, Value>,
    definition: &str,
    fields: &'static [FieldSchema],
    seen: &mut std::collections::BTreeSet<String>,
) {
    if !seen.insert(definition.to_owned()) {
        return;
    }
    for field in fields {
        let Some(property) = schemas
            .get(definition)
            .and_then(|d| d["properties"].get(field.name))
            .cloned()
        else {
            continue;
        };
        let mut annotated = property.clone();
        let strategy = match field.strategy {
            PatchStrategy::MergeByKey(key) => {
                annotated["x-kubernetes-patch-merge-key"] = json!(key);
                annotated["x-kubernetes-list-type"] = json!("map");
                annotated["x-kubernetes-list-map-keys"] = json!([key]);
                Some("merge")
            }
            PatchStrategy::MergeSet => {
                annotated["x-kubernetes-list-type"] = json!("set");
                Some("merge")
            }
            PatchStrategy::Replace => Some("replace"),
            PatchStrategy::Unspecified => None,
        };
        let tag = match (strategy, field.retain_keys) {
            (Some(s), true) => Some(format!("{s},retainKeys")),
            (Some(s), false) => Some(s.to_owned()),
            (None, true) => Some("retainKeys".to_owned()),
            (None, false) => None,
        };
        if let Some(tag) = tag {
            annotated["x-kubernetes-patch-strategy"] = json!(tag);
        }
        if let Some(d) = schemas.get_mut(definition) {
            d["properties"][field.name] = annotated;
        }
        if !field.fields.is_empty() {
            let child = referenced(&property).or_else(|| referenced(&property["items"]));
            if let Some(child) = child {
                annotate_patch_strategies(schemas, &child, field.fields, seen);
            }
        }
    }
}

fn parameter(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_parameters() -> Vec<Value> {
    vec![
        parameter(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ),
        parameter(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        parameter(
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
    extra: &[Value],
) -> Value {
    let reference = json!({"$ref": format!("#/components/schemas/{schema}")});
    let mut op = json!({
        "tags": [if resource.group.is_empty() { format!("core_{}", resource.version) } else { format!("{}_{}", resource.group.replace('.', "_"), resource.version) }],
        "operationId": format!("{verb_id}{}", resource.kind),
        "parameters": extra,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
    });
    if matches!(action, "post" | "put" | "patch") {
        let content = if action == "patch" {
            json!({
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/strategic-merge-patch+json": {"schema": {"type": "object"}},
            })
        } else {
            json!({"*/*": {"schema": reference}})
        };
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
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
        root.clone()
    };
    let name_param = json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}});
    let ns_param = json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}});
    let mut path_params = vec![name_param];
    if resource.namespaced {
        path_params.push(ns_param.clone());
    }
    let mut paths = Map::new();
    let collection_params: Vec<Value> = if resource.namespaced {
        vec![ns_param]
    } else {
        Vec::new()
    };
    paths.insert(
        format!("{scope}/{}", resource.plural),
        json!({
            "get": operation(resource, "list", "list", schema, &[]),
            "post": operation(resource, "post", "create", schema, &write_parameters()),
            "delete": operation(resource, "deletecollection", "deleteCollection", schema, &[]),
            "parameters": collection_params,
        }),
    );
    paths.insert(
        format!("{scope}/{}/{{name}}", resource.plural),
        json!({
            "get": operation(resource, "get", "read", schema, &[]),
            "put": operation(resource, "put", "replace", schema, &write_parameters()),
            "patch": operation(resource, "patch", "patch", schema, &write_parameters()),
            "delete": operation(resource, "delete", "delete", schema, &[]),
            "parameters": path_params.clone(),
        }),
    );
    if resource.has_status() {
        paths.insert(
            format!("{scope}/{}/{{name}}/status", resource.plural),
            json!({
                "get": operation(resource, "get", "readStatus", schema, &[]),
                "put": operation(resource, "put", "replaceStatus", schema, &write_parameters()),
                "patch": operation(resource, "patch", "patchStatus", schema, &write_parameters()),
                "parameters": path_params,
            }),
        );
    }
    paths
}

/// The schemas of the kinds served in one group-version, keyed by definition name, with
/// kube-apiserver's extensions (`x-kubernetes-group-version-kind`, patch strategies), their
/// references pointing into `#/components/schemas/`; and each served kind's definition name.
/// Both the v3 and the v2 documents are made from these.
pub(super) fn annotated_schemas(
    group: &str,
    version: &str,
) -> (Map<String, Value>, Vec<(String, &'static ResourceInfo)>) {
    let mut settings = SchemaSettings::openapi3();
    settings.definitions_path = "#/components/schemas/".into();
    let mut generator = settings.into_generator();
    let mut kinds = Vec::new();
    for resource in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        if let Some(schema) = kind_schema(&mut generator, resource.kind, resource.group) {
            kinds.push((schema, resource));
        }
    }
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    for (schema, resource) in &kinds {
        if let Some(fields) =
            crate::patch::strategic::kinds::fields_of(&resource.api_version(), resource.kind)
        {
            annotate_patch_strategies(
                &mut schemas,
                schema,
                fields,
                &mut std::collections::BTreeSet::new(),
            );
        }
    }
    for (schema, resource) in &kinds {
        if let Some(Value::Object(definition)) = schemas.get_mut(schema) {
            definition.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": resource.group, "kind": resource.kind, "version": resource.version}]),
            );
        }
    }
    (schemas, kinds)
}

/// The group-versions served, in the order of [`RESOURCES`].
pub(super) fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut gvs: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !gvs.contains(&(r.group, r.version)) {
            gvs.push((r.group, r.version));
        }
    }
    gvs
}

fn group_version_document(group: &str, version: &str) -> Value {
    let (schemas, kinds) = annotated_schemas(group, version);
    let mut paths = Map::new();
    for (schema, resource) in &kinds {
        paths.extend(paths_for(resource, schema));
    }
    let mut schemas = Value::Object(schemas);
    wrap_refs(&mut schemas);
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::discovery::KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// The hex SHA-256 of a document, as kube-apiserver names its versions and `ETag`s.
pub(super) fn hash_of(body: &[u8]) -> String {
    Sha256::digest(body).iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02X}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_document_has_pod_schema_with_gvk_and_patch_parameters() {
        let doc: Value = serde_json::from_slice(&documents()["api/v1"].body).unwrap();
        let pod = &doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        assert!(
            pod["description"]
                .as_str()
                .unwrap()
                .starts_with("Pod is a collection of containers")
        );
        let spec = &pod["properties"]["spec"];
        assert_eq!(
            spec["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.PodSpec"
        );
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(doc["paths"]["/api/v1/nodes/{name}/status"].is_object());
        let containers =
            &doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        let env =
            &doc["components"]["schemas"]["io.k8s.api.core.v1.Container"]["properties"]["env"];
        assert_eq!(env["x-kubernetes-patch-merge-key"], "name");
        let finalizers = &doc["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
            ["properties"]["finalizers"];
        assert_eq!(finalizers["x-kubernetes-patch-strategy"], "merge");
        let container = &doc["components"]["schemas"]["io.k8s.api.core.v1.Container"];
        assert!(
            container["properties"]["image"]["description"]
                .as_str()
                .unwrap()
                .contains("Container image name")
        );
    }

    #[test]
    fn index_lists_every_group_version() {
        let keys: Vec<&String> = documents().keys().collect();
        assert_eq!(
            keys,
            [
                "api/v1",
                "apis/coordination.k8s.io/v1",
                "apis/storage.k8s.io/v1"
            ]
        );
    }
}

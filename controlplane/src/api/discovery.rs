//! Everything that is not a resource: `/version`, health checks, and API discovery — the
//! legacy documents (`/api`, `/apis`, `/api/v1`, ...) and aggregated discovery
//! (`apidiscovery.k8s.io/v2`), which kubectl asks for first.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode, header};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::request::RequestInfo;
use super::server::{ApiServer, json_response};
use crate::resources::{self, RESOURCES, ResourceInfo};

/// The Kubernetes version the API server reports (the API it serves follows it).
pub const KUBERNETES_VERSION: &str = "v1.33.0";

const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

pub(crate) fn handle(
    server: &ApiServer,
    info: &RequestInfo,
    request: &Request<Body>,
) -> ApiResult<Response> {
    let parts: Vec<&str> = info.parts.iter().map(String::as_str).collect();
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match parts.as_slice() {
        ["version"] => Ok(json_response(StatusCode::OK, &version())),
        ["healthz" | "livez" | "readyz", ..] => Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => match aggregated(accept) {
            Some(v) => Ok(aggregated_response(v, &aggregated_core(v))),
            None => Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server.config.advertise_address}],
                }),
            )),
        },
        ["apis"] => match aggregated(accept) {
            Some(v) => Ok(aggregated_response(v, &aggregated_groups(v))),
            None => Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": resources::groups().iter().map(|(g, v)| group(g, v)).collect::<Vec<_>>(),
                }),
            )),
        },
        ["api", "v1"] => Ok(json_response(StatusCode::OK, &resource_list("", "v1"))),
        ["apis", name] => {
            let (g, v) = resources::groups()
                .into_iter()
                .find(|(g, _)| g == name)
                .ok_or_else(|| ApiError::path_not_found(&info.path))?;
            let mut doc = group(g, v);
            doc["kind"] = json!("APIGroup");
            doc["apiVersion"] = json!("v1");
            Ok(json_response(StatusCode::OK, &doc))
        }
        ["apis", g, v] if resources::groups().contains(&(*g, *v)) => {
            Ok(json_response(StatusCode::OK, &resource_list(g, v)))
        }
        ["openapi", ..] => super::openapi::handle(info, request),
        _ => Err(ApiError::path_not_found(&info.path)),
    }
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": format!("{KUBERNETES_VERSION}-ferrolet.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("linux/{}", std::env::consts::ARCH),
    })
}

fn group(name: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{name}/{version}"), "version": version});
    json!({"name": name, "versions": [gv], "preferredVersion": gv})
}

/// The verbs of a resource, as discovery lists them.
fn verbs(_resource: &ResourceInfo) -> Vec<&'static str> {
    vec!["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
}

fn subresource_verbs(subresource: &str) -> Vec<&'static str> {
    match subresource {
        "status" => vec!["get", "patch", "update"],
        "binding" | "eviction" | "token" => vec!["create"],
        "finalize" => vec!["update"],
        "exec" | "attach" | "portforward" | "proxy" => vec!["create", "get"],
        // log and anything read-only
        _ => vec!["get"],
    }
}

fn subresource_kind(
    resource: &ResourceInfo,
    subresource: &str,
) -> (&'static str, &'static str, String) {
    match subresource {
        "binding" => ("", "v1", "Binding".into()),
        "eviction" => ("policy", "v1", "Eviction".into()),
        "token" => ("authentication.k8s.io", "v1", "TokenRequest".into()),
        "exec" => ("", "v1", "PodExecOptions".into()),
        "attach" => ("", "v1", "PodAttachOptions".into()),
        "portforward" => ("", "v1", "PodPortForwardOptions".into()),
        "proxy" => ("", "v1", format!("{}ProxyOptions", resource.kind)),
        _ => (resource.group, resource.version, resource.kind.to_owned()),
    }
}

fn resource_list(group: &str, version: &str) -> Value {
    let mut entries = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular_name(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs(r),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        entries.push(entry);
        for sub in r.subresources {
            let (g, v, kind) = subresource_kind(r, sub);
            let mut entry = json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": subresource_verbs(sub),
            });
            if g != group || v != version {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            entries.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries})
}

/// Which aggregated discovery version the client accepts, if any.
fn aggregated(accept: &str) -> Option<&'static str> {
    for choice in accept.split(',') {
        let params: Vec<&str> = choice.split(';').map(str::trim).collect();
        if params.contains(&"g=apidiscovery.k8s.io") && params.contains(&"as=APIGroupDiscoveryList")
        {
            if params.contains(&"v=v2") {
                return Some("v2");
            }
            if params.contains(&"v=v2beta1") {
                return Some("v2beta1");
            }
        }
    }
    None
}

fn aggregated_response(version: &str, body: &Value) -> Response {
    let content_type = if version == "v2" {
        AGGREGATED_V2
    } else {
        AGGREGATED_V2BETA1
    };
    let mut response = json_response(StatusCode::OK, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

fn discovery_version(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            let mut entry = json!({
                "resource": r.plural,
                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular_name(),
                "verbs": verbs(r),
            });
            if !r.short_names.is_empty() {
                entry["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                entry["categories"] = json!(r.categories);
            }
            let subresources: Vec<Value> = r
                .subresources
                .iter()
                .map(|sub| {
                    let (g, v, kind) = subresource_kind(r, sub);
                    json!({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": kind}, "verbs": subresource_verbs(sub)})
                })
                .collect();
            if !subresources.is_empty() {
                entry["subresources"] = json!(subresources);
            }
            entry
        })
        .collect();
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

fn discovery_list(version: &str, items: &[Value]) -> Value {
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{version}"), "metadata": {}, "items": items})
}

fn aggregated_core(version: &str) -> Value {
    discovery_list(
        version,
        &[
            json!({"metadata": {"creationTimestamp": null}, "versions": [discovery_version("", "v1")]}),
        ],
    )
}

fn aggregated_groups(version: &str) -> Value {
    let items: Vec<Value> = resources::groups()
        .into_iter()
        .map(|(g, v)| json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": [discovery_version(g, v)]}))
        .collect();
    discovery_list(version, &items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resource_list_has_pods_and_subresources() {
        let list = resource_list("", "v1");
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods"));
        assert!(names.contains(&"pods/status"));
        assert!(names.contains(&"pods/binding"));
        let pods = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["namespaced"], true);
        let eviction = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .unwrap();
        assert_eq!(eviction["group"], "policy");
    }

    #[test]
    fn aggregated_discovery_is_negotiated() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated(kubectl), Some("v2"));
        assert_eq!(aggregated("application/json"), None);
        let groups = aggregated_groups("v2");
        assert_eq!(
            groups["items"][0]["metadata"]["name"],
            "coordination.k8s.io"
        );
        let leases = &groups["items"][0]["versions"][0]["resources"][0];
        assert_eq!(leases["scope"], "Namespaced");
    }
}

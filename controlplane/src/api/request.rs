//! What a request is about: kube-apiserver's `RequestInfo` (verb, group, version, namespace,
//! resource, name, subresource) parsed from the method, path and query.

use http::Method;

/// The parsed target of a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// False for `/version`, `/healthz`, `/openapi/...`, discovery documents.
    pub is_resource_request: bool,
    pub path: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or
    /// the lowercase method for non-resource requests.
    pub verb: String,
    /// `api` or `apis`.
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub subresource: Option<String>,
    pub name: Option<String>,
    /// Segments below `/api` or `/apis` when they name no resource (discovery paths).
    pub parts: Vec<String>,
}

impl RequestInfo {
    /// Parses a request line; `watch` is whether the query says `watch=true` (or `1`).
    #[must_use]
    pub fn parse(method: &Method, path: &str, watch: bool) -> Self {
        let mut info = RequestInfo {
            path: path.to_owned(),
            verb: method.as_str().to_ascii_lowercase(),
            ..Default::default()
        };
        let segments: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let Some((&prefix, rest)) = segments.split_first() else {
            return info;
        };
        let rest: Vec<&str> = match prefix {
            "api" if !rest.is_empty() => {
                rest[0].clone_into(&mut info.api_version);
                rest[1..].to_vec()
            }
            "apis" if rest.len() >= 2 => {
                rest[0].clone_into(&mut info.api_group);
                rest[1].clone_into(&mut info.api_version);
                rest[2..].to_vec()
            }
            _ => {
                info.parts = segments.iter().map(|s| (*s).to_owned()).collect();
                return info;
            }
        };
        prefix.clone_into(&mut info.api_prefix);
        if rest.is_empty() {
            info.parts = segments.iter().map(|s| (*s).to_owned()).collect();
            return info;
        }
        info.is_resource_request = true;
        // The legacy `/watch/` path form.
        let (rest, watch) = match rest.split_first() {
            Some((&"watch", tail)) if !tail.is_empty() => (tail.to_vec(), true),
            _ => (rest, watch),
        };
        let rest: Vec<&str> = if rest[0] == "namespaces" {
            if rest.len() > 1 {
                info.namespace = Some(rest[1].to_owned());
                if rest.len() > 2 {
                    rest[2..].to_vec()
                } else {
                    // The namespace object itself.
                    vec!["namespaces", rest[1]]
                }
            } else {
                rest
            }
        } else {
            rest
        };
        // /api/v1/namespaces/{ns}/status and /finalize address the namespace object.
        let rest = if info.namespace.is_some()
            && rest.len() == 1
            && (rest[0] == "status" || rest[0] == "finalize")
        {
            vec![
                "namespaces",
                info.namespace.as_deref().unwrap_or_default(),
                rest[0],
            ]
        } else {
            rest
        };
        rest[0].clone_into(&mut info.resource);
        info.name = rest.get(1).map(|s| (*s).to_owned());
        info.subresource = rest.get(2).map(|s| (*s).to_owned());
        if info.resource == "namespaces" {
            // A namespace is cluster-scoped: its own name is not its namespace.
            info.namespace = None;
        }
        let verb = match *method {
            Method::GET | Method::HEAD if watch => "watch",
            Method::GET | Method::HEAD if info.name.is_none() => "list",
            Method::GET | Method::HEAD => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if info.name.is_none() => "deletecollection",
            Method::DELETE => "delete",
            _ => "unknown",
        };
        verb.clone_into(&mut info.verb);
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: &Method, path: &str) -> RequestInfo {
        RequestInfo::parse(method, path, false)
    }

    #[test]
    fn namespaced_resources_names_and_subresources() {
        let info = parse(
            &Method::PATCH,
            "/api/v1/namespaces/default/pods/nginx/status",
        );
        assert!(info.is_resource_request);
        assert_eq!(
            (
                info.verb.as_str(),
                info.api_group.as_str(),
                info.api_version.as_str()
            ),
            ("patch", "", "v1")
        );
        assert_eq!(info.namespace.as_deref(), Some("default"));
        assert_eq!(info.resource, "pods");
        assert_eq!(info.name.as_deref(), Some("nginx"));
        assert_eq!(info.subresource.as_deref(), Some("status"));

        let lease = parse(
            &Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
        );
        assert_eq!(lease.api_group, "coordination.k8s.io");
        assert_eq!(
            (lease.verb.as_str(), lease.resource.as_str()),
            ("update", "leases")
        );
    }

    #[test]
    fn verbs_follow_method_name_and_watch() {
        assert_eq!(parse(&Method::GET, "/api/v1/pods").verb, "list");
        assert_eq!(
            parse(&Method::GET, "/api/v1/namespaces/a/pods/b").verb,
            "get"
        );
        assert_eq!(
            RequestInfo::parse(&Method::GET, "/api/v1/pods", true).verb,
            "watch"
        );
        assert_eq!(
            parse(&Method::GET, "/api/v1/watch/namespaces/a/pods").verb,
            "watch"
        );
        assert_eq!(
            parse(&Method::DELETE, "/api/v1/namespaces/a/pods").verb,
            "deletecollection"
        );
        assert_eq!(
            parse(&Method::POST, "/api/v1/namespaces/a/pods/b/binding").verb,
            "create"
        );
    }

    #[test]
    fn namespaces_are_cluster_scoped() {
        let ns = parse(&Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!(
            (
                ns.resource.as_str(),
                ns.name.as_deref(),
                ns.namespace.as_deref()
            ),
            ("namespaces", Some("kube-system"), None)
        );
        let status = parse(&Method::PUT, "/api/v1/namespaces/kube-system/status");
        assert_eq!(status.resource, "namespaces");
        assert_eq!(status.name.as_deref(), Some("kube-system"));
        assert_eq!(status.subresource.as_deref(), Some("status"));
        assert_eq!(status.namespace, None);
        assert_eq!(parse(&Method::GET, "/api/v1/namespaces").verb, "list");
    }

    #[test]
    fn discovery_and_other_paths_are_not_resource_requests() {
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/storage.k8s.io",
            "/apis/storage.k8s.io/v1",
            "/version",
            "/openapi/v3/api/v1",
        ] {
            let info = parse(&Method::GET, path);
            assert!(!info.is_resource_request, "{path}");
        }
        assert_eq!(
            parse(&Method::GET, "/apis/storage.k8s.io/v1").parts,
            ["apis", "storage.k8s.io", "v1"]
        );
    }
}

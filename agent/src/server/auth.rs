//! Who is calling the kubelet server, and may they: client certificates (verified by TLS
//! against `clientCAFile`; CN is the user, O the groups), bearer tokens checked with a
//! `TokenReview`, anonymous requests when enabled; then a `SubjectAccessReview` for the
//! `nodes/<subresource>` the path maps to, as the kubelet's `KubeletAuth` does. Answers are
//! cached for the configured TTLs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method};
use serde_json::{Value, json};

use crate::config::{AuthorizationMode, KubeletAuthentication, KubeletAuthorization};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No (valid) credentials: 401.
    #[error("Unauthorized")]
    Unauthenticated,
    /// Not allowed: 403 with the kubelet's message.
    #[error("{0}")]
    Forbidden(String),
    /// The API server could not be asked: 500.
    #[error("{0}")]
    ReviewFailed(String),
}

/// What a request asks to do, as a `SubjectAccessReview` names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestAttributes {
    pub verb: &'static str,
    pub subresource: &'static str,
}

/// The verb and `nodes` subresource of a request, as the kubelet maps them.
#[must_use]
pub fn request_attributes(method: &Method, path: &str) -> RequestAttributes {
    let verb = match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "get",
    };
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    let subresource = if under("/stats") {
        "stats"
    } else if under("/metrics") {
        "metrics"
    } else if under("/logs") {
        "log"
    } else if under("/spec") {
        "spec"
    } else {
        "proxy"
    };
    RequestAttributes { verb, subresource }
}

/// The user and groups of a verified client certificate: CN and O.
#[must_use]
pub fn certificate_identity(der: &[u8]) -> Option<Identity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some(Identity {
        name,
        groups,
        ..Identity::default()
    })
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

type Cache<K, V> = Mutex<HashMap<K, (Instant, V)>>;

fn cached<K: std::hash::Hash + Eq, V: Clone>(cache: &Cache<K, V>, key: &K) -> Option<V> {
    let cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .get(key)
        .filter(|(until, _)| Instant::now() < *until)
        .map(|(_, v)| v.clone())
}

fn remember<K: std::hash::Hash + Eq, V>(cache: &Cache<K, V>, key: K, value: V, ttl: Duration) {
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() > 4096 {
        let now = Instant::now();
        cache.retain(|_, (until, _)| now < *until);
    }
    cache.insert(key, (Instant::now() + ttl, value));
}

/// Authentication and authorization of the kubelet server.
pub struct KubeletAuth {
    client: Option<kube::Client>,
    node_name: String,
    authentication: KubeletAuthentication,
    authorization: KubeletAuthorization,
    tokens: Cache<String, Option<Identity>>,
    decisions: Cache<(String, Vec<String>, RequestAttributes), Result<(), String>>,
}

impl std::fmt::Debug for KubeletAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletAuth")
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

impl KubeletAuth {
    /// Reviews go to the API server through `client` (`None`: tokens are refused and, with
    /// the Webhook mode, every request).
    #[must_use]
    pub fn new(
        client: Option<kube::Client>,
        node_name: &str,
        authentication: KubeletAuthentication,
        authorization: KubeletAuthorization,
    ) -> Self {
        KubeletAuth {
            client,
            node_name: node_name.to_owned(),
            authentication,
            authorization,
            tokens: Mutex::new(HashMap::new()),
            decisions: Mutex::new(HashMap::new()),
        }
    }

    /// The caller: its verified client certificate, else its bearer token, else anonymous
    /// when that is enabled.
    pub async fn authenticate(
        &self,
        peer_certificates: &[Vec<u8>],
        headers: &HeaderMap,
    ) -> Result<Identity, Denied> {
        if self.authentication.x509.client_ca_file.is_some()
            && let Some(identity) = peer_certificates
                .first()
                .and_then(|der| certificate_identity(der))
        {
            return Ok(identity);
        }
        if let Some(token) = bearer_token(headers) {
            if !self.authentication.webhook.enabled {
                return Err(Denied::Unauthenticated);
            }
            return self
                .review_token(token)
                .await?
                .ok_or(Denied::Unauthenticated);
        }
        if self.authentication.anonymous.enabled {
            return Ok(Identity {
                name: "system:anonymous".into(),
                groups: vec!["system:unauthenticated".into()],
                ..Identity::default()
            });
        }
        Err(Denied::Unauthenticated)
    }

    async fn review_token(&self, token: &str) -> Result<Option<Identity>, Denied> {
        if let Some(known) = cached(&self.tokens, &token.to_owned()) {
            return Ok(known);
        }
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| Denied::ReviewFailed("no API server to review tokens".into()))?;
        let review = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        });
        let answer = post(
            client,
            "/apis/authentication.k8s.io/v1/tokenreviews",
            &review,
        )
        .await?;
        let status = &answer["status"];
        let identity = (status["authenticated"] == true).then(|| {
            let user = &status["user"];
            let strings = |v: &Value| -> Vec<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            };
            Identity {
                name: user["username"].as_str().unwrap_or_default().to_owned(),
                uid: user["uid"].as_str().unwrap_or_default().to_owned(),
                groups: strings(&user["groups"]),
                extra: user["extra"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), strings(v)))
                    .collect(),
            }
        });
        remember(
            &self.tokens,
            token.to_owned(),
            identity.clone(),
            self.authentication.webhook.cache_ttl.0,
        );
        Ok(identity)
    }

    /// Whether `identity` may do `attributes` on this node.
    pub async fn authorize(
        &self,
        identity: &Identity,
        attributes: &RequestAttributes,
    ) -> Result<(), Denied> {
        if self.authorization.mode == AuthorizationMode::AlwaysAllow {
            return Ok(());
        }
        let key = (
            identity.name.clone(),
            identity.groups.clone(),
            attributes.clone(),
        );
        let forbidden = |reason: &str| {
            Denied::Forbidden(format!(
                "Forbidden (user={}, verb={}, resource=nodes, subresource={}){}",
                identity.name,
                attributes.verb,
                attributes.subresource,
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                }
            ))
        };
        if let Some(decision) = cached(&self.decisions, &key) {
            return decision.map_err(|reason| forbidden(&reason));
        }
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| Denied::ReviewFailed("no API server to authorize with".into()))?;
        let review = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": identity.name,
                "uid": identity.uid,
                "groups": identity.groups,
                "extra": identity.extra,
                "resourceAttributes": {
                    "verb": attributes.verb,
                    "version": "v1",
                    "resource": "nodes",
                    "subresource": attributes.subresource,
                    "name": self.node_name,
                },
            },
        });
        let answer = post(
            client,
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &review,
        )
        .await?;
        let decision = if answer["status"]["allowed"] == true {
            Ok(())
        } else {
            Err(answer["status"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned())
        };
        let ttl = if decision.is_ok() {
            self.authorization.webhook.cache_authorized_ttl.0
        } else {
            self.authorization.webhook.cache_unauthorized_ttl.0
        };
        remember(&self.decisions, key, decision.clone(), ttl);
        decision.map_err(|reason| forbidden(&reason))
    }
}

async fn post(client: &kube::Client, path: &str, body: &Value) -> Result<Value, Denied> {
    let request = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body).unwrap_or_default())
        .map_err(|e| Denied::ReviewFailed(e.to_string()))?;
    client
        .request::<Value>(request)
        .await
        .map_err(|e| Denied::ReviewFailed(format!("POST {path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_node_subresources() {
        let get = |p| request_attributes(&Method::GET, p);
        assert_eq!(get("/stats/summary").subresource, "stats");
        assert_eq!(get("/metrics").subresource, "metrics");
        assert_eq!(get("/metrics/resource").subresource, "metrics");
        assert_eq!(get("/metricsfoo").subresource, "proxy");
        assert_eq!(get("/containerLogs/a/b/c").subresource, "proxy");
        assert_eq!(get("/pods").verb, "get");
        assert_eq!(
            request_attributes(&Method::POST, "/exec/a/b/c").verb,
            "create"
        );
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }

    #[tokio::test]
    async fn without_credentials_only_anonymous_passes() {
        let mut authentication = KubeletAuthentication::default();
        let auth = KubeletAuth::new(
            None,
            "n",
            authentication.clone(),
            KubeletAuthorization::default(),
        );
        assert_eq!(
            auth.authenticate(&[], &HeaderMap::new()).await,
            Err(Denied::Unauthenticated)
        );
        authentication.anonymous.enabled = true;
        let auth = KubeletAuth::new(None, "n", authentication, KubeletAuthorization::default());
        let anonymous = auth.authenticate(&[], &HeaderMap::new()).await.unwrap();
        assert_eq!(anonymous.name, "system:anonymous");
        // Webhook authorization without an API server refuses.
        assert!(matches!(
            auth.authorize(&anonymous, &request_attributes(&Method::GET, "/pods"))
                .await,
            Err(Denied::ReviewFailed(_))
        ));
    }

    #[test]
    fn certificate_identity_is_cn_and_organizations() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver-kubelet-client");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let identity = certificate_identity(cert.der()).unwrap();
        assert_eq!(identity.name, "kube-apiserver-kubelet-client");
        assert_eq!(identity.groups, ["system:masters"]);
    }
}

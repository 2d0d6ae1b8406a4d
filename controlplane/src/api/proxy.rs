//! `pods/log`, `pods/exec`, `pods/attach`, `pods/portforward` and `nodes/proxy`: proxied to
//! the kubelet of the pod's node, at the address and port its Node status publishes, with
//! the API server's kubelet-client certificate. Upgrades (SPDY and WebSocket streams of
//! `kubectl exec`, `attach`, `port-forward`) are passed through byte for byte.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::handlers::decode_stored;
use super::options::percent_decode;
use super::request::RequestInfo;
use super::server::ApiServer;
use crate::resources;

/// Subresources served by the kubelet.
#[must_use]
pub(crate) fn is_proxied(info: &RequestInfo) -> bool {
    matches!(
        (info.resource.as_str(), info.subresource.as_deref()),
        ("pods", Some("log" | "exec" | "attach" | "portforward")) | ("nodes", Some("proxy"))
    )
}

/// How the API server reaches kubelets: TLS with its client certificate. Kubelet serving
/// certificates are not verified, as kube-apiserver does without
/// `--kubelet-certificate-authority` (kubelets usually serve self-signed certificates).
#[derive(Debug, Clone)]
pub struct KubeletClient {
    pub tls: Arc<rustls::ClientConfig>,
}

#[derive(Debug)]
struct AcceptAnyServerCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl KubeletClient {
    /// A client presenting `certificate_pem`/`key_pem`.
    pub fn new(certificate_pem: &str, key_pem: &str) -> Result<Self, String> {
        let certs: Vec<_> = rustls_pemfile::certs(&mut certificate_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("kubelet client certificate: {e}"))?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(|e| format!("kubelet client key: {e}"))?
            .ok_or("kubelet client key: no key in PEM")?;
        let provider = crate::auth::pki::tls::crypto_provider();
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCertificate(provider)))
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("kubelet client certificate: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            tls: Arc::new(config),
        })
    }
}

/// The kubelet's address and port from a Node object (`InternalIP` first, as reachable in
/// the clusters ferrolet makes; then the other address types kube-apiserver prefers).
fn kubelet_address(node: &Value) -> Option<(String, u16)> {
    let addresses = node["status"]["addresses"].as_array()?;
    let address = [
        "InternalIP",
        "Hostname",
        "InternalDNS",
        "ExternalIP",
        "ExternalDNS",
    ]
    .iter()
    .find_map(|kind| addresses.iter().find(|a| a["type"] == *kind))?["address"]
        .as_str()?
        .to_owned();
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(10250);
    Some((address, port))
}

async fn object(
    server: &ApiServer,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Value> {
    let resource = resources::lookup("", "v1", plural)
        .ok_or_else(|| ApiError::internal("core resources missing"))?;
    let kv = server
        .store
        .get(&resource.key(namespace, name))
        .await?
        .ok_or_else(|| ApiError::not_found(resource, name))?;
    decode_stored(&kv)
}

/// The query without the parameters the API server consumes, and the container asked for.
fn split_query(query: Option<&str>) -> (Vec<(String, String)>, Option<String>) {
    let mut rest = Vec::new();
    let mut container = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "container" {
            container = Some(percent_decode(value));
        } else {
            rest.push((key.to_owned(), value.to_owned()));
        }
    }
    (rest, container)
}

fn choose_container(pod: &Value, asked: Option<String>) -> ApiResult<String> {
    if let Some(name) = asked.filter(|c| !c.is_empty()) {
        return Ok(name);
    }
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match containers.as_slice() {
        [one] => Ok((*one).to_owned()),
        many => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {}, choose one of: [{}]",
            pod["metadata"]["name"].as_str().unwrap_or_default(),
            many.join(" ")
        ))),
    }
}

/// Proxies the request to the kubelet and returns its answer (or the upgraded stream).
pub(crate) async fn handle(
    server: &Arc<ApiServer>,
    info: &RequestInfo,
    request: Request<Body>,
) -> ApiResult<Response> {
    let client = server.kubelet_client.clone().ok_or_else(|| {
        ApiError::unavailable("this API server has no kubelet client credentials")
    })?;
    let (query, container) = split_query(request.uri().query());
    let name = info.name.clone().unwrap_or_default();
    let namespace = info.namespace.clone().unwrap_or_default();
    let (node_name, path) = if info.resource == "nodes" {
        // nodes/{name}/proxy/{path...}
        let tail = info
            .path
            .split_once("/proxy")
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_default();
        (
            name.clone(),
            if tail.is_empty() {
                "/".to_owned()
            } else {
                tail
            },
        )
    } else {
        let pod = object(server, "pods", Some(&namespace), &name).await?;
        let node = pod["spec"]["nodeName"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(format!("pod {name} does not have a host assigned"))
            })?;
        let path = match info.subresource.as_deref() {
            Some("log") => format!(
                "/containerLogs/{namespace}/{name}/{}",
                choose_container(&pod, container)?
            ),
            Some("exec") => format!(
                "/exec/{namespace}/{name}/{}",
                choose_container(&pod, container)?
            ),
            Some("attach") => format!(
                "/attach/{namespace}/{name}/{}",
                choose_container(&pod, container)?
            ),
            _ => format!("/portForward/{namespace}/{name}"),
        };
        (node.to_owned(), path)
    };
    let node = object(server, "nodes", None, &node_name).await?;
    let (address, port) = kubelet_address(&node).ok_or_else(|| {
        ApiError::unavailable(format!(
            "node {node_name:?} publishes no address for its kubelet"
        ))
    })?;
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let target = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    forward(&client, &address, port, &target, request).await
}

async fn connect(
    client: &KubeletClient,
    address: &str,
    port: u16,
) -> ApiResult<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "InternalError",
            format!("error dialing kubelet at {address}:{port}: {e}"),
        )
    };
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((address, port)),
    )
    .await
    .map_err(|e| unreachable(&e))?
    .map_err(|e| unreachable(&e))?;
    let name = ServerName::try_from(address.to_owned()).map_err(|e| unreachable(&e))?;
    tokio_rustls::TlsConnector::from(client.tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| unreachable(&e))
}

/// Headers that belong to one hop only.
fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, upgrading: bool) {
    for (name, value) in from {
        let hop = matches!(
            name.as_str(),
            "host"
                | "authorization"
                | "proxy-authorization"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "keep-alive"
                | "proxy-connection"
                | "content-length"
        );
        let upgrade_header = name == header::CONNECTION || name == header::UPGRADE;
        if !hop && (!upgrade_header || upgrading) {
            to.append(name.clone(), value.clone());
        }
    }
}

async fn forward(
    client: &KubeletClient,
    address: &str,
    port: u16,
    target: &str,
    mut request: Request<Body>,
) -> ApiResult<Response> {
    let upgrading = request.headers().get(header::UPGRADE).is_some();
    let tls = connect(client, address, port).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "InternalError",
                format!("kubelet at {address}:{port}: {e}"),
            )
        })?;
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(%err, "kubelet connection ended");
        }
    });
    let mut outgoing = Request::builder()
        .method(request.method().clone())
        .uri(target)
        .header(header::HOST, format!("{address}:{port}"));
    if let Some(headers) = outgoing.headers_mut() {
        copy_headers(request.headers(), headers, upgrading);
    }
    let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut request));
    let body = if upgrading {
        Body::empty()
    } else {
        std::mem::take(request.body_mut())
    };
    let outgoing = outgoing
        .body(body)
        .map_err(|e| ApiError::internal(format!("build kubelet request: {e}")))?;
    let mut answer = sender.send_request(outgoing).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "InternalError",
            format!("kubelet at {address}:{port}: {e}"),
        )
    })?;
    let mut response = Response::builder().status(answer.status());
    if let Some(headers) = response.headers_mut() {
        copy_headers(
            answer.headers(),
            headers,
            answer.status() == StatusCode::SWITCHING_PROTOCOLS,
        );
    }
    if answer.status() == StatusCode::SWITCHING_PROTOCOLS {
        let kubelet_upgrade = hyper::upgrade::on(&mut answer);
        if let Some(client_upgrade) = client_upgrade {
            tokio::spawn(async move {
                match (client_upgrade.await, kubelet_upgrade.await) {
                    (Ok(client), Ok(kubelet)) => {
                        let (mut client, mut kubelet) =
                            (TokioIo::new(client), TokioIo::new(kubelet));
                        if let Err(err) =
                            tokio::io::copy_bidirectional(&mut client, &mut kubelet).await
                        {
                            tracing::debug!(%err, "proxied stream ended");
                        }
                    }
                    (client, kubelet) => tracing::warn!(
                        client_ok = client.is_ok(),
                        kubelet_ok = kubelet.is_ok(),
                        "upgrade failed"
                    ),
                }
            });
        }
        return response
            .body(Body::empty())
            .map_err(|e| ApiError::internal(format!("build response: {e}")));
    }
    response
        .body(Body::new(answer.into_body()))
        .map_err(|e| ApiError::internal(format!("build response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubelet_address_prefers_internal_ip_and_published_port() {
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.2"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": 11250}}}});
        assert_eq!(kubelet_address(&node), Some(("10.0.0.2".into(), 11250)));
        let bare = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(kubelet_address(&bare), Some(("n1".into(), 10250)));
        assert_eq!(kubelet_address(&json!({})), None);
    }

    #[test]
    fn container_defaults_to_the_only_one() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(choose_container(&one, None).unwrap(), "a");
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let err = choose_container(&two, None).unwrap_err();
        assert_eq!(
            err.message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(choose_container(&two, Some("b".into())).unwrap(), "b");
    }

    #[test]
    fn query_keeps_everything_but_the_container() {
        let (rest, container) =
            split_query(Some("container=app&follow=true&command=ls&command=-l"));
        assert_eq!(container.as_deref(), Some("app"));
        assert_eq!(
            rest,
            [
                ("follow".into(), "true".into()),
                ("command".into(), "ls".into()),
                ("command".into(), "-l".into())
            ]
        );
    }
}

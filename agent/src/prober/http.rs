//! The HTTP GET of httpGet probes and lifecycle hooks, as the kubelet makes it: no keep-alive,
//! `User-Agent: kube-probe/<version>`, HTTPS without certificate verification, redirects
//! followed (up to 10) only while they stay on the same host, and at most 10 KiB of the body
//! read (upstream `pkg/probe/http`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How much of a response body is kept.
pub const MAX_BODY: usize = 10 * 1024;
/// The kubelet's probe user agent (its minor version).
pub const USER_AGENT: &str = "kube-probe/1.33";
const MAX_REDIRECTS: usize = 10;

/// Where a GET goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Target {
    /// The URL, as messages show it.
    #[must_use]
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "{}://{host}:{}{}",
            if self.https { "https" } else { "http" },
            self.port,
            self.path
        )
    }

    /// Where a `Location` header leads from here.
    fn follow(&self, location: &str) -> Option<Target> {
        let (https, rest) = if let Some(rest) = location.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = location.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = location.strip_prefix("//") {
            (self.https, rest)
        } else {
            let path = if location.starts_with('/') {
                location.to_owned()
            } else {
                let base = self.path.split('?').next().unwrap_or("/");
                let dir = &base[..=base.rfind('/').unwrap_or(0)];
                format!("{dir}{location}")
            };
            return Some(Target {
                path,
                ..self.clone()
            });
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        let authority: http::uri::Authority = authority.parse().ok()?;
        let default_port = if https { 443 } else { 80 };
        Some(Target {
            https,
            host: authority.host().trim_matches(['[', ']']).to_owned(),
            port: authority.port_u16().unwrap_or(default_port),
            path,
        })
    }
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The first [`MAX_BODY`] bytes of the body.
    pub body: String,
    /// A redirect to another host was not followed: this is that redirect.
    pub redirect_to_other_host: bool,
}

/// GETs `target` with `headers` (a `Host` header sets the request's host) within `timeout`,
/// following same-host redirects. The error is Go's `Get "<url>": <cause>` text.
pub async fn get(
    target: &Target,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<Response, String> {
    let first = target.url();
    match tokio::time::timeout(timeout, follow(target, headers)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "Get \"{first}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

async fn follow(target: &Target, headers: &[(String, String)]) -> Result<Response, String> {
    let mut current = target.clone();
    let mut redirects = 0;
    loop {
        let url = current.url();
        let (status, location, body) = request(&current, headers)
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        let Some(location) = location.filter(|_| (300..400).contains(&status)) else {
            return Ok(Response {
                status,
                body,
                redirect_to_other_host: false,
            });
        };
        let Some(next) = current.follow(&location) else {
            return Err(format!(
                "Get \"{url}\": invalid redirect location {location:?}"
            ));
        };
        if next.host != target.host {
            return Ok(Response {
                status,
                body,
                redirect_to_other_host: true,
            });
        }
        redirects += 1;
        if redirects > MAX_REDIRECTS {
            return Err(format!(
                "Get \"{}\": stopped after {MAX_REDIRECTS} redirects",
                next.url()
            ));
        }
        current = next;
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// One request: status, `Location`, and the start of the body.
async fn request(
    target: &Target,
    headers: &[(String, String)],
) -> Result<(u16, Option<String>, String), String> {
    let address = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let tcp = TcpStream::connect(&address)
        .await
        .map_err(|e| format!("dial tcp {address}: connect: {}", io_cause(&e)))?;
    let stream: Box<dyn Io> = if target.https {
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| format!("tls: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(insecure_tls())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let default_host = if target.port == if target.https { 443 } else { 80 } {
        target.host.clone()
    } else {
        address.clone()
    };
    let mut builder = http::Request::get(target.path.as_str())
        .header(http::header::USER_AGENT, USER_AGENT)
        .header(http::header::ACCEPT, "*/*")
        .header(http::header::CONNECTION, "close");
    let mut host = default_host;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("host") {
            host.clone_from(value);
        } else {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    let request = builder
        .header(http::header::HOST, host)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = response.into_body();
    let mut data = Vec::new();
    while data.len() < MAX_BODY {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(chunk) = frame.data_ref() {
                    data.extend_from_slice(chunk);
                }
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => break,
        }
    }
    data.truncate(MAX_BODY);
    driver.abort();
    Ok((
        status,
        location,
        String::from_utf8_lossy(&data).into_owned(),
    ))
}

/// The cause as Go words it (`connection refused`), without Rust's `(os error N)`.
pub(crate) fn io_cause(error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

/// TLS that accepts any server certificate (the kubelet's probes skip verification) but
/// still checks the handshake's signatures.
fn insecure_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports TLS 1.2 and 1.3")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        Target {
            https: false,
            host: "10.0.0.5".into(),
            port: 8080,
            path: path.into(),
        }
    }

    #[test]
    fn redirect_locations_resolve_against_the_request() {
        let t = target("/a/b?x=1");
        assert_eq!(t.follow("/c").unwrap().path, "/c");
        assert_eq!(t.follow("c?y").unwrap().path, "/a/c?y");
        assert_eq!(
            t.follow("http://10.0.0.5:9090").unwrap(),
            Target {
                port: 9090,
                path: "/".into(),
                ..t.clone()
            }
        );
        let other = t.follow("https://example.com/x").unwrap();
        assert_eq!(
            (other.https, other.host.as_str(), other.port),
            (true, "example.com", 443)
        );
        assert_eq!(t.url(), "http://10.0.0.5:8080/a/b?x=1");
        let v6 = Target {
            host: "fd00::1".into(),
            ..t
        };
        assert_eq!(v6.url(), "http://[fd00::1]:8080/a/b?x=1");
    }

    #[test]
    fn io_causes_read_like_go() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let text = io_cause(&std::io::Error::from_raw_os_error(111));
        assert_eq!(text, "connection refused", "{e}");
    }
}

//! The API server's TLS configuration.
//!
//! Like kube-apiserver with `--client-ca-file`, the server asks every client for a certificate
//! but does not require one: kubectl with the admin kubeconfig and kubelets present one,
//! service accounts and bootstrap tokens come with a bearer token instead. A certificate that
//! is presented must chain to the cluster CA and allow client authentication, or the handshake
//! fails. The application layer reads the verified certificate from the connection
//! (`ServerConnection::peer_certificates`) and turns it into a user with
//! [`UserInfo::from_client_certificate`](crate::auth::UserInfo::from_client_certificate).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::{ClusterPki, PkiError};

/// The ALPN protocols the API server speaks, preferred first (kubectl uses HTTP/2 where it can;
/// `exec`, `attach` and `port-forward` upgrade over HTTP/1.1).
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The crypto provider of all TLS in the control plane: ring, named explicitly because other
/// crates in the process may enable a second provider, and then rustls has no default.
#[must_use]
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(super) fn server_config(pki: &ClusterPki) -> Result<rustls::ServerConfig, PkiError> {
    let provider = crypto_provider();
    let mut roots = RootCertStore::empty();
    roots
        .add(pki.ca_certificate_der().clone())
        .map_err(PkiError::TlsConfig)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(PkiError::ClientVerifier)?;
    let chain = CertificateDer::pem_slice_iter(pki.serving().certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::ParseCertificate {
            path: pki.dir().join(super::file_names::SERVING_CERT),
            reason: e.to_string(),
        })?;
    let key = PrivateKeyDer::from_pem_slice(pki.serving().key_pem.as_bytes()).map_err(|e| {
        PkiError::ParseCertificate {
            path: pki.dir().join(super::file_names::SERVING_KEY),
            reason: e.to_string(),
        }
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(PkiError::TlsConfig)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(PkiError::TlsConfig)?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

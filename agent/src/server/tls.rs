//! The kubelet server's TLS: its serving certificate (`tlsCertFile`/`tlsPrivateKeyFile`, or
//! a self-signed one kept in `<root-dir>/pki` as the kubelet makes when it has none) and the
//! client certificates it accepts (signed by `authentication.x509.clientCAFile`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Errors setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no {what} in PEM", path.display())]
    Pem { path: PathBuf, what: &'static str },
    #[error("generate the self-signed serving certificate")]
    Generate(#[source] rcgen::Error),
    #[error("TLS configuration")]
    Config(#[source] rustls::Error),
    #[error("client CA {}", path.display())]
    ClientCa {
        path: PathBuf,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::Pem {
            path: path.to_owned(),
            what: "private key",
        })
}

/// Where the serving certificate and key are: the configured files, or
/// `<root-dir>/pki/kubelet.{crt,key}`, made self-signed (for the host name and node IP) when
/// missing.
pub fn serving_files(
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    root_dir: &Path,
    host_name: &str,
    node_ip: IpAddr,
) -> Result<(PathBuf, PathBuf), TlsError> {
    if let (Some(cert), Some(key)) = (cert_file, key_file) {
        return Ok((cert.to_owned(), key.to_owned()));
    }
    let dir = root_dir.join("pki");
    let cert = dir.join("kubelet.crt");
    let key = dir.join("kubelet.key");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Write { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    let mut names = vec![host_name.to_owned(), "localhost".to_owned()];
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names).map_err(TlsError::Generate)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{host_name}@ferrolet"));
    for ip in [node_ip, IpAddr::from([127, 0, 0, 1])] {
        params.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
    }
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let key_pair = rcgen::KeyPair::generate().map_err(TlsError::Generate)?;
    let certificate = params.self_signed(&key_pair).map_err(TlsError::Generate)?;
    std::fs::write(&key, key_pair.serialize_pem()).map_err(write_err(&key))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .map_err(write_err(&key))?;
    }
    std::fs::write(&cert, certificate.pem()).map_err(write_err(&cert))?;
    tracing::info!(cert = %cert.display(), "generated a self-signed serving certificate");
    Ok((cert, key))
}

/// The server's TLS configuration: the serving certificate, and client certificates
/// verified against `client_ca` when given (optional: bearer tokens authenticate too).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?;
    let builder = match client_ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in certificates(path)? {
                roots.add(ca).map_err(TlsError::Config)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|source| TlsError::ClientCa {
                        path: path.to_owned(),
                        source,
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certificates(cert)?, private_key(key)?)
        .map_err(TlsError::Config)?;
    // HTTP/1.1 only: the streaming upgrades (SPDY, WebSocket) need it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_is_made_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let (cert, key) = serving_files(None, None, dir.path(), "node-a", ip).unwrap();
        assert_eq!(cert, dir.path().join("pki/kubelet.crt"));
        let first = std::fs::read(&cert).unwrap();
        let again = serving_files(None, None, dir.path(), "node-a", ip).unwrap();
        assert_eq!(again.0, cert);
        assert_eq!(std::fs::read(&cert).unwrap(), first);
        server_config(&cert, &key, None).unwrap();
        // Its own certificate as a client CA parses too.
        server_config(&cert, &key, Some(&cert)).unwrap();
        let missing = server_config(&cert, &key, Some(&dir.path().join("none.crt")));
        assert!(matches!(missing, Err(TlsError::Read { .. })));
    }
}

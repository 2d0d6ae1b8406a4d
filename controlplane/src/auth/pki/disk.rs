//! Loading the PKI from its directory and writing what is made or renewed.

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use rcgen::{Issuer, KeyPair, PublicKeyData as _};
use rustls::pki_types::CertificateDer;

use super::certs::{self, CertificateFacts};
use super::{
    CA_COMMON_NAME, CA_VALIDITY, IssuedCertificate, LEAF_VALIDITY, PkiError, RENEW_BEFORE, Result,
    SERVING_COMMON_NAME, file_names,
};
use crate::auth::files::{self, PRIVATE_MODE, PUBLIC_MODE};

/// The loaded CA: what signs, and what leaf certificates must point at.
#[derive(Clone, Copy)]
pub(super) struct CaRef<'a> {
    pub issuer: &'a Issuer<'static, KeyPair>,
    pub facts: &'a CertificateFacts,
}

/// What a leaf certificate must say to be kept.
pub(super) enum LeafSpec<'a> {
    Serving {
        dns_names: &'a BTreeSet<String>,
        ip_addresses: &'a BTreeSet<IpAddr>,
    },
    Client {
        common_name: &'a str,
        organizations: &'a [&'a str],
    },
}

impl LeafSpec<'_> {
    fn what(&self) -> &str {
        match self {
            Self::Serving { .. } => SERVING_COMMON_NAME,
            Self::Client { common_name, .. } => common_name,
        }
    }

    fn matches(&self, facts: &CertificateFacts) -> bool {
        match self {
            Self::Serving {
                dns_names,
                ip_addresses,
            } => facts.dns_names == **dns_names && facts.ip_addresses == **ip_addresses,
            Self::Client {
                common_name,
                organizations,
            } => {
                facts.common_name.as_deref() == Some(*common_name)
                    && facts
                        .organizations
                        .iter()
                        .map(String::as_str)
                        .eq(organizations.iter().copied())
            }
        }
    }

    fn params(&self, now: Timestamp) -> Result<rcgen::CertificateParams> {
        match self {
            Self::Serving {
                dns_names,
                ip_addresses,
            } => certs::serving_params(
                SERVING_COMMON_NAME,
                dns_names,
                ip_addresses,
                now,
                LEAF_VALIDITY,
            ),
            Self::Client {
                common_name,
                organizations,
            } => certs::client_params(common_name, organizations, now, LEAF_VALIDITY),
        }
    }
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::ReadFile {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<()> {
    files::write_atomic(path, contents.as_bytes(), mode).map_err(|source| PkiError::WriteFile {
        path: path.to_owned(),
        source,
    })
}

fn parse_key(path: &Path, pem: &str) -> Result<KeyPair> {
    KeyPair::from_pem(pem).map_err(|source| PkiError::ParseKey {
        path: path.to_owned(),
        source,
    })
}

fn generate_key(what: &str) -> Result<KeyPair> {
    KeyPair::generate().map_err(|source| PkiError::GenerateKey {
        what: what.to_owned(),
        source,
    })
}

pub(super) type LoadedCa = (
    String,
    CertificateDer<'static>,
    CertificateFacts,
    Issuer<'static, KeyPair>,
);

pub(super) fn load_or_create_ca(dir: &Path, now: Timestamp) -> Result<LoadedCa> {
    let cert_path = dir.join(file_names::CA_CERT);
    let key_path = dir.join(file_names::CA_KEY);
    let (cert_pem, key) = match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (Some(cert_pem), Some(key_pem)) => (cert_pem, parse_key(&key_path, &key_pem)?),
        (None, None) => {
            let key = generate_key(CA_COMMON_NAME)?;
            let cert = certs::ca_params(CA_COMMON_NAME, now, CA_VALIDITY)?
                .self_signed(&key)
                .map_err(|source| PkiError::SignCertificate {
                    what: CA_COMMON_NAME.to_owned(),
                    source,
                })?;
            write(&key_path, &key.serialize_pem(), PRIVATE_MODE)?;
            write(&cert_path, &cert.pem(), PUBLIC_MODE)?;
            tracing::info!(path = %cert_path.display(), "created cluster CA");
            (cert.pem(), key)
        }
        (Some(_), None) => {
            return Err(PkiError::IncompleteCa {
                present: cert_path,
                missing: key_path,
            });
        }
        (None, Some(_)) => {
            return Err(PkiError::IncompleteCa {
                present: key_path,
                missing: cert_path,
            });
        }
    };
    let (der, facts) =
        CertificateFacts::from_pem(&cert_pem).map_err(|reason| PkiError::ParseCertificate {
            path: cert_path.clone(),
            reason,
        })?;
    if facts.spki != key.subject_public_key_info() {
        return Err(PkiError::CaKeyMismatch {
            cert: cert_path,
            key: key_path,
        });
    }
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(PkiError::LoadIssuer)?;
    Ok((cert_pem, der, facts, issuer))
}

/// Loads a leaf certificate and its key, issuing the certificate again (and making the key,
/// if missing) when it no longer fits.
pub(super) fn ensure_leaf(
    dir: &Path,
    cert_file: &str,
    key_file: &str,
    spec: &LeafSpec<'_>,
    ca: CaRef<'_>,
    now: Timestamp,
) -> Result<IssuedCertificate> {
    let cert_path = dir.join(cert_file);
    let key_path = dir.join(key_file);
    let (key, key_pem, key_is_new) = if let Some(pem) = read_optional(&key_path)? {
        (parse_key(&key_path, &pem)?, pem, false)
    } else {
        let key = generate_key(spec.what())?;
        let pem = key.serialize_pem();
        (key, pem, true)
    };
    if !key_is_new && let Some(cert_pem) = read_optional(&cert_path)? {
        let keep = match CertificateFacts::from_pem(&cert_pem) {
            Ok((_, facts)) => {
                let renew_at = facts.not_after.saturating_sub(duration_secs(RENEW_BEFORE));
                facts.spki == key.subject_public_key_info()
                    && facts.authority_key_id.is_some()
                    && facts.authority_key_id == ca.facts.subject_key_id
                    && now.as_second() < renew_at
                    && spec.matches(&facts)
            }
            Err(reason) => {
                tracing::warn!(path = %cert_path.display(), %reason, "unreadable certificate, issuing it again");
                false
            }
        };
        if keep {
            return Ok(IssuedCertificate {
                certificate_pem: cert_pem,
                key_pem,
            });
        }
    }
    let cert = spec
        .params(now)?
        .signed_by(&key, ca.issuer)
        .map_err(|source| PkiError::SignCertificate {
            what: spec.what().to_owned(),
            source,
        })?;
    if key_is_new {
        write(&key_path, &key_pem, PRIVATE_MODE)?;
    }
    let certificate_pem = cert.pem();
    write(&cert_path, &certificate_pem, PUBLIC_MODE)?;
    tracing::info!(path = %cert_path.display(), "issued certificate");
    Ok(IssuedCertificate {
        certificate_pem,
        key_pem,
    })
}

fn duration_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

pub(super) fn load_or_create_service_account_key(dir: &Path) -> Result<String> {
    let key_path = dir.join(file_names::SERVICE_ACCOUNT_KEY);
    let pub_path = dir.join(file_names::SERVICE_ACCOUNT_PUB);
    let (key, key_pem) = if let Some(pem) = read_optional(&key_path)? {
        (parse_key(&key_path, &pem)?, pem)
    } else {
        let key = generate_key("service account tokens")?;
        let pem = key.serialize_pem();
        write(&key_path, &pem, PRIVATE_MODE)?;
        (key, pem)
    };
    if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
        return Err(PkiError::UnsupportedServiceAccountKey { path: key_path });
    }
    let public_pem = key.public_key_pem();
    if read_optional(&pub_path)?.as_deref() != Some(public_pem.as_str()) {
        write(&pub_path, &public_pem, PUBLIC_MODE)?;
    }
    Ok(key_pem)
}

//! The cluster's PKI, kubeadm style: one CA signs the API server's serving certificate and
//! every client certificate (the admin's, each node's); a separate key signs service-account
//! tokens. Everything is made on the first start and loaded on later ones, so that kubeconfigs
//! and node certificates handed out stay valid across restarts.
//!
//! Files in the PKI directory (0700), keys 0600, certificates 0644, all PEM, ECDSA P-256:
//!
//! | file | what |
//! | --- | --- |
//! | `ca.crt`, `ca.key` | cluster CA, `CN=ferrolet-ca`, 10 years |
//! | `apiserver.crt`, `apiserver.key` | serving certificate, `CN=kube-apiserver`, 1 year |
//! | `admin.crt`, `admin.key` | `CN=kubernetes-admin, O=system:masters`, client auth, 1 year |
//! | `sa.key`, `sa.pub` | service-account token signing key (PKCS#8) and its public key |
//!
//! On a later start the CA and the service-account key are loaded as they are; the serving
//! and admin certificates are issued again (with their keys kept) when their names changed,
//! when they are not signed by the CA on disk, or when they expire within 90 days (as k3s
//! renews its certificates on start).

mod certs;
mod disk;
pub mod tls;

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rcgen::{CertificateSigningRequestParams, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};
use x509_parser::prelude::{FromDer as _, X509CertificationRequest};

use self::disk::{
    CaRef, LeafSpec, ensure_leaf, load_or_create_ca, load_or_create_service_account_key,
};
use super::files;
use super::user::SYSTEM_MASTERS;

/// The common name of the cluster CA.
pub const CA_COMMON_NAME: &str = "ferrolet-ca";
/// The common name of the API server's serving certificate.
pub const SERVING_COMMON_NAME: &str = "kube-apiserver";
/// The user name of the admin client certificate.
pub const ADMIN_COMMON_NAME: &str = "kubernetes-admin";
/// DNS names every serving certificate carries: how clients inside and outside the cluster
/// address the API server.
pub const DEFAULT_SERVING_DNS_NAMES: [&str; 5] = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];
/// How long the CA is valid (kubeadm: 10 years).
pub const CA_VALIDITY: Duration = Duration::from_hours(10 * 365 * 24);
/// How long the serving and admin certificates are valid (kubeadm: 1 year).
pub const LEAF_VALIDITY: Duration = Duration::from_hours(365 * 24);
/// Serving and admin certificates closer than this to their end are issued again on start.
pub const RENEW_BEFORE: Duration = Duration::from_hours(90 * 24);

/// File names in the PKI directory.
pub mod file_names {
    /// The CA certificate.
    pub const CA_CERT: &str = "ca.crt";
    /// The CA key.
    pub const CA_KEY: &str = "ca.key";
    /// The API server's serving certificate.
    pub const SERVING_CERT: &str = "apiserver.crt";
    /// The API server's serving key.
    pub const SERVING_KEY: &str = "apiserver.key";
    /// The admin client certificate.
    pub const ADMIN_CERT: &str = "admin.crt";
    /// The admin client key.
    pub const ADMIN_KEY: &str = "admin.key";
    /// The service-account token signing key.
    pub const SERVICE_ACCOUNT_KEY: &str = "sa.key";
    /// The service-account token verification key.
    pub const SERVICE_ACCOUNT_PUB: &str = "sa.pub";
}

/// The names under which the API server is reached; the serving certificate carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServingIdentity {
    /// DNS names besides [`DEFAULT_SERVING_DNS_NAMES`], e.g. the host name.
    pub dns_names: Vec<String>,
    /// IP addresses besides 127.0.0.1; include the `kubernetes` Service's cluster IP (the first
    /// address of the service CIDR, e.g. 10.96.0.1) and the host's addresses.
    pub ip_addresses: Vec<IpAddr>,
}

impl ServingIdentity {
    /// The identity of an API server behind the `kubernetes` Service at `service_ip`.
    #[must_use]
    pub fn for_service_ip(service_ip: IpAddr) -> Self {
        Self {
            dns_names: Vec::new(),
            ip_addresses: vec![service_ip],
        }
    }

    /// All DNS names and IP addresses of the serving certificate, defaults included.
    #[must_use]
    pub fn subject_alt_names(&self) -> (BTreeSet<String>, BTreeSet<IpAddr>) {
        let dns = DEFAULT_SERVING_DNS_NAMES
            .iter()
            .map(|s| (*s).to_owned())
            .chain(self.dns_names.iter().cloned())
            .collect();
        let ips = std::iter::once(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .chain(self.ip_addresses.iter().copied())
            .collect();
        (dns, ips)
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("certificate_pem", &self.certificate_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// Errors of the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("creating pki directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {path}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{present} exists but {missing} does not: refusing to replace half of the CA")]
    IncompleteCa { present: PathBuf, missing: PathBuf },
    #[error("parsing private key {path}")]
    ParseKey {
        path: PathBuf,
        #[source]
        source: rcgen::Error,
    },
    #[error("parsing certificate {path}: {reason}")]
    ParseCertificate { path: PathBuf, reason: String },
    #[error("CA key {key} does not belong to CA certificate {cert}")]
    CaKeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("service account key {path} is not an ECDSA P-256 key")]
    UnsupportedServiceAccountKey { path: PathBuf },
    #[error("generating key pair for {what}")]
    GenerateKey {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("signing certificate for {what}")]
    SignCertificate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("loading CA certificate as issuer")]
    LoadIssuer(#[source] rcgen::Error),
    #[error("invalid subject alternative name {value:?}")]
    InvalidName {
        value: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("a certificate subject holds at most two organizations, got {count}")]
    TooManyOrganizations { count: usize },
    #[error("certificate validity {validity:?} is not between zero and 100 years")]
    InvalidValidity { validity: Duration },
    #[error("the system clock is before 1970")]
    ClockBeforeEpoch,
    #[error("parsing certificate signing request: {reason}")]
    ParseCsr { reason: String },
    #[error("verifying certificate signing request")]
    VerifyCsr(#[source] rcgen::Error),
    #[error("certificate signing request has no common name")]
    CsrWithoutCommonName,
    #[error("unsupported key usage {usage:?}")]
    UnsupportedUsage { usage: String },
    #[error("building TLS server configuration")]
    TlsConfig(#[source] rustls::Error),
    #[error("building TLS client certificate verifier")]
    ClientVerifier(#[source] rustls::server::VerifierBuilderError),
}

type Result<T, E = PkiError> = std::result::Result<T, E>;

/// The cluster CA with everything it signed at start, and the service-account key.
pub struct ClusterPki {
    dir: PathBuf,
    ca_certificate_pem: String,
    ca_certificate_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    serving: IssuedCertificate,
    admin: IssuedCertificate,
    service_account_key_pem: String,
}

impl fmt::Debug for ClusterPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterPki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ClusterPki {
    /// Loads the PKI from `dir`, creating what is missing and issuing the serving and admin
    /// certificates again where needed (see the module documentation).
    pub fn load_or_create(dir: &Path, serving: &ServingIdentity) -> Result<Self> {
        files::create_private_dir(dir).map_err(|source| PkiError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let now = Timestamp::now();
        let (ca_certificate_pem, ca_certificate_der, ca_facts, issuer) =
            load_or_create_ca(dir, now)?;
        let ca = CaRef {
            issuer: &issuer,
            facts: &ca_facts,
        };
        let (dns_names, ip_addresses) = serving.subject_alt_names();
        let serving = ensure_leaf(
            dir,
            file_names::SERVING_CERT,
            file_names::SERVING_KEY,
            &LeafSpec::Serving {
                dns_names: &dns_names,
                ip_addresses: &ip_addresses,
            },
            ca,
            now,
        )?;
        let admin = ensure_leaf(
            dir,
            file_names::ADMIN_CERT,
            file_names::ADMIN_KEY,
            &LeafSpec::Client {
                common_name: ADMIN_COMMON_NAME,
                organizations: &[SYSTEM_MASTERS],
            },
            ca,
            now,
        )?;
        let service_account_key_pem = load_or_create_service_account_key(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            ca_certificate_pem,
            ca_certificate_der,
            issuer,
            serving,
            admin,
            service_account_key_pem,
        })
    }

    /// The PKI directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate, PEM: the `certificate-authority-data` of kubeconfigs and the
    /// `ca.crt` of service-account token volumes.
    #[must_use]
    pub fn ca_certificate_pem(&self) -> &str {
        &self.ca_certificate_pem
    }

    /// The CA certificate, DER.
    #[must_use]
    pub fn ca_certificate_der(&self) -> &CertificateDer<'static> {
        &self.ca_certificate_der
    }

    /// The API server's serving certificate and key.
    #[must_use]
    pub fn serving(&self) -> &IssuedCertificate {
        &self.serving
    }

    /// The admin client certificate and key (`CN=kubernetes-admin, O=system:masters`).
    #[must_use]
    pub fn admin(&self) -> &IssuedCertificate {
        &self.admin
    }

    /// The service-account token signing key, PKCS#8 PEM (ECDSA P-256).
    #[must_use]
    pub fn service_account_key_pem(&self) -> &str {
        &self.service_account_key_pem
    }

    /// Issues a client certificate with a new key for `CN=<common_name>, O=<organizations>`,
    /// e.g. a node's `CN=system:node:<name>, O=system:nodes`.
    pub fn issue_client_certificate<S: AsRef<str>>(
        &self,
        common_name: &str,
        organizations: &[S],
        validity: Duration,
    ) -> Result<IssuedCertificate> {
        let params = certs::client_params(common_name, organizations, Timestamp::now(), validity)?;
        let key = KeyPair::generate().map_err(|source| PkiError::GenerateKey {
            what: common_name.to_owned(),
            source,
        })?;
        let cert =
            params
                .signed_by(&key, &self.issuer)
                .map_err(|source| PkiError::SignCertificate {
                    what: common_name.to_owned(),
                    source,
                })?;
        Ok(IssuedCertificate {
            certificate_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs the PEM certificate signing request of a `CertificateSigningRequest` object: the
    /// subject (common name, organizations) and the DNS and IP names come from the request,
    /// the usages are the object's `spec.usages` (e.g. `["digital signature", "client auth"]`)
    /// and the validity is the signer's choice. Whether the request may be signed at all
    /// (approval, the signer's rules for the subject) is the CSR controller's decision.
    pub fn sign_csr<S: AsRef<str>>(
        &self,
        csr_pem: &str,
        usages: &[S],
        validity: Duration,
    ) -> Result<String> {
        let der =
            CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes()).map_err(|e| {
                PkiError::ParseCsr {
                    reason: e.to_string(),
                }
            })?;
        // rcgen verifies the request's signature and yields its public key ...
        let requested =
            CertificateSigningRequestParams::from_der(&der).map_err(PkiError::VerifyCsr)?;
        // ... and the subject is read here, because rcgen keeps one organization only.
        let (_, csr) =
            X509CertificationRequest::from_der(&der).map_err(|e| PkiError::ParseCsr {
                reason: e.to_string(),
            })?;
        let subject = &csr.certification_request_info.subject;
        let common_name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .ok_or(PkiError::CsrWithoutCommonName)?;
        let organizations: Vec<&str> = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .collect();
        let mut params =
            certs::client_params(common_name, &organizations, Timestamp::now(), validity)?;
        params.key_usages.clear();
        params.extended_key_usages.clear();
        for usage in usages {
            certs::apply_usage(&mut params, usage.as_ref())?;
        }
        params.subject_alt_names = requested
            .params
            .subject_alt_names
            .into_iter()
            .filter(|san| {
                matches!(
                    san,
                    rcgen::SanType::DnsName(_) | rcgen::SanType::IpAddress(_)
                )
            })
            .collect();
        let cert = params
            .signed_by(&requested.public_key, &self.issuer)
            .map_err(|source| PkiError::SignCertificate {
                what: common_name.to_owned(),
                source,
            })?;
        Ok(cert.pem())
    }

    /// The TLS configuration of the API server; see [`tls`].
    pub fn server_config(&self) -> Result<rustls::ServerConfig> {
        tls::server_config(self)
    }
}

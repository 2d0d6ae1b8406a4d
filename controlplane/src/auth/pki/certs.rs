//! Certificate parameters of each kind of certificate the cluster issues, and reading back
//! the facts of an existing certificate that decide whether it can be kept.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use jiff::Timestamp;
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::PkiError;

/// The object identifier of the organization (O) attribute.
const ORGANIZATION_OID: [u64; 4] = [2, 5, 4, 10];
/// Certificates start this much before they were made, so that a node whose clock runs a
/// little behind accepts them (kubeadm backdates by the same amount).
const BACKDATE: Duration = Duration::from_mins(5);
/// The longest validity the PKI issues; it keeps all dates far from any overflow.
const MAX_VALIDITY: Duration = Duration::from_hours(100 * 365 * 24);

/// A subject `O=<organizations>, CN=<common_name>`.
///
/// rcgen keeps one value per attribute type; a second organization is written under the
/// attribute's numeric type, which encodes the same as `O`, so a subject can carry two
/// organizations. Kubernetes identities carry one (`system:nodes`, `system:masters`).
pub(super) fn subject<S: AsRef<str>>(
    common_name: &str,
    organizations: &[S],
) -> Result<DistinguishedName, PkiError> {
    let mut dn = DistinguishedName::new();
    match organizations {
        [] => {}
        [one] => dn.push(DnType::OrganizationName, one.as_ref()),
        [first, second] => {
            dn.push(DnType::OrganizationName, first.as_ref());
            dn.push(
                DnType::CustomDnType(ORGANIZATION_OID.to_vec()),
                second.as_ref(),
            );
        }
        more => {
            return Err(PkiError::TooManyOrganizations { count: more.len() });
        }
    }
    dn.push(DnType::CommonName, common_name);
    Ok(dn)
}

/// Sets a validity of `validity` from `now` (backdated a little) and a random serial number.
pub(super) fn set_validity_and_serial(
    params: &mut CertificateParams,
    now: Timestamp,
    validity: Duration,
) -> Result<(), PkiError> {
    if validity.is_zero() || validity > MAX_VALIDITY {
        return Err(PkiError::InvalidValidity { validity });
    }
    let now_secs = u64::try_from(now.as_second()).map_err(|_| PkiError::ClockBeforeEpoch)?;
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(now_secs.saturating_sub(BACKDATE.as_secs()));
    params.not_after = epoch + Duration::from_secs(now_secs) + validity;
    let mut serial: [u8; 16] = rand::random();
    // A positive serial number without a leading zero byte.
    serial[0] = (serial[0] & 0x7f) | 0x01;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(())
}

/// The parameters of the self-signed cluster CA.
pub(super) fn ca_params(
    common_name: &str,
    now: Timestamp,
    validity: Duration,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject::<&str>(common_name, &[])?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    set_validity_and_serial(&mut params, now, validity)?;
    Ok(params)
}

/// The parameters of a leaf certificate signed by the CA, without usages yet.
fn leaf_params(
    distinguished_name: DistinguishedName,
    now: Timestamp,
    validity: Duration,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name;
    // CA:FALSE, and with it a subject key identifier, as Go's x509 writes them.
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    set_validity_and_serial(&mut params, now, validity)?;
    Ok(params)
}

/// The parameters of a TLS server certificate for the given names.
pub(super) fn serving_params(
    common_name: &str,
    dns_names: &BTreeSet<String>,
    ip_addresses: &BTreeSet<IpAddr>,
    now: Timestamp,
    validity: Duration,
) -> Result<CertificateParams, PkiError> {
    let mut params = leaf_params(subject::<&str>(common_name, &[])?, now, validity)?;
    for name in dns_names {
        let dns = Ia5String::try_from(name.as_str()).map_err(|source| PkiError::InvalidName {
            value: name.clone(),
            source,
        })?;
        params.subject_alt_names.push(SanType::DnsName(dns));
    }
    params
        .subject_alt_names
        .extend(ip_addresses.iter().copied().map(SanType::IpAddress));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

/// The parameters of a TLS client certificate for `CN=<common_name>, O=<organizations>`.
pub(super) fn client_params<S: AsRef<str>>(
    common_name: &str,
    organizations: &[S],
    now: Timestamp,
    validity: Duration,
) -> Result<CertificateParams, PkiError> {
    let mut params = leaf_params(subject(common_name, organizations)?, now, validity)?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

/// Applies one key usage of a `CertificateSigningRequest` (`spec.usages`, the names of
/// certificates.k8s.io/v1) to `params`.
pub(super) fn apply_usage(params: &mut CertificateParams, usage: &str) -> Result<(), PkiError> {
    let key_usage = match usage {
        "signing" | "digital signature" => Some(KeyUsagePurpose::DigitalSignature),
        "content commitment" => Some(KeyUsagePurpose::ContentCommitment),
        "key encipherment" => Some(KeyUsagePurpose::KeyEncipherment),
        "key agreement" => Some(KeyUsagePurpose::KeyAgreement),
        "data encipherment" => Some(KeyUsagePurpose::DataEncipherment),
        "encipher only" => Some(KeyUsagePurpose::EncipherOnly),
        "decipher only" => Some(KeyUsagePurpose::DecipherOnly),
        _ => None,
    };
    let extended = match usage {
        "server auth" => Some(ExtendedKeyUsagePurpose::ServerAuth),
        "client auth" => Some(ExtendedKeyUsagePurpose::ClientAuth),
        "code signing" => Some(ExtendedKeyUsagePurpose::CodeSigning),
        "email protection" | "s/mime" => Some(ExtendedKeyUsagePurpose::EmailProtection),
        "timestamping" => Some(ExtendedKeyUsagePurpose::TimeStamping),
        "ocsp signing" => Some(ExtendedKeyUsagePurpose::OcspSigning),
        "any" => Some(ExtendedKeyUsagePurpose::Any),
        _ => None,
    };
    match (key_usage, extended) {
        (Some(ku), _) => {
            if !params.key_usages.contains(&ku) {
                params.key_usages.push(ku);
            }
        }
        (None, Some(eku)) => params.insert_extended_key_usage(eku),
        // "cert sign" and "crl sign" would make a CA; the rest have no use in a cluster.
        (None, None) => {
            return Err(PkiError::UnsupportedUsage {
                usage: usage.to_owned(),
            });
        }
    }
    Ok(())
}

/// What the PKI needs to know of a certificate it finds on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CertificateFacts {
    /// The DER of the `SubjectPublicKeyInfo`, to match the certificate with its key.
    pub spki: Vec<u8>,
    /// The subject key identifier, if present.
    pub subject_key_id: Option<Vec<u8>>,
    /// The authority key identifier, if present.
    pub authority_key_id: Option<Vec<u8>>,
    /// The end of validity, in seconds since the epoch.
    pub not_after: i64,
    pub common_name: Option<String>,
    pub organizations: Vec<String>,
    pub dns_names: BTreeSet<String>,
    pub ip_addresses: BTreeSet<IpAddr>,
}

impl CertificateFacts {
    /// Reads the first certificate of a PEM text.
    pub fn from_pem(pem: &str) -> Result<(CertificateDer<'static>, Self), String> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| e.to_string())?;
        let facts = Self::from_der(&der)?;
        Ok((der, facts))
    }

    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
        let mut facts = Self {
            spki: cert.public_key().raw.to_vec(),
            subject_key_id: None,
            authority_key_id: None,
            not_after: cert.validity().not_after.timestamp(),
            common_name: cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_owned),
            organizations: cert
                .subject()
                .iter_organization()
                .filter_map(|o| o.as_str().ok())
                .map(str::to_owned)
                .collect(),
            dns_names: BTreeSet::new(),
            ip_addresses: BTreeSet::new(),
        };
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => {
                    facts.subject_key_id = Some(id.0.to_vec());
                }
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    facts.authority_key_id = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
                }
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(dns) => {
                                facts.dns_names.insert((*dns).to_owned());
                            }
                            GeneralName::IPAddress(bytes) => {
                                if let Some(ip) = ip_from_bytes(bytes) {
                                    facts.ip_addresses.insert(ip);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(facts)
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

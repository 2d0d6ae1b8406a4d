//! Kubeconfig files, as kubeadm writes `admin.conf`: one cluster (server URL and CA data), one
//! user (client certificate and key, or a bearer token), one context naming both, current.
//!
//! The YAML is written by hand: the structure is fixed and every scalar is written as a
//! double-quoted JSON string, which YAML reads unchanged, so no value can break the document.

use std::fmt::{self, Write as _};
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::files::{self, PRIVATE_MODE};
use super::pki::{ADMIN_COMMON_NAME, ClusterPki, IssuedCertificate};

/// The cluster name in kubeconfigs written by ferrolet.
pub const DEFAULT_CLUSTER_NAME: &str = "ferrolet";

/// How the kubeconfig's user proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum KubeconfigCredentials {
    /// A client certificate and its key, PEM.
    ClientCertificate {
        certificate_pem: String,
        key_pem: String,
    },
    /// A bearer token (a static token, a bootstrap token or a service-account token).
    Token(String),
}

impl fmt::Debug for KubeconfigCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientCertificate {
                certificate_pem, ..
            } => f
                .debug_struct("ClientCertificate")
                .field("certificate_pem", certificate_pem)
                .field("key_pem", &"[redacted]")
                .finish(),
            Self::Token(_) => f.debug_tuple("Token").field(&"[redacted]").finish(),
        }
    }
}

/// A kubeconfig with one cluster, one user and one context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubeconfig {
    /// The cluster's name, e.g. [`DEFAULT_CLUSTER_NAME`].
    pub cluster_name: String,
    /// The API server URL, e.g. `https://127.0.0.1:6443`.
    pub server: String,
    /// The CA that signed the API server's certificate, PEM.
    pub certificate_authority_pem: String,
    /// The user's name in the kubeconfig (for certificates, their common name).
    pub user_name: String,
    /// The user's credentials.
    pub credentials: KubeconfigCredentials,
    /// The context's default namespace, if any.
    pub namespace: Option<String>,
}

/// Errors of writing a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("writing kubeconfig {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Kubeconfig {
    /// The admin kubeconfig: the admin client certificate (`O=system:masters`).
    #[must_use]
    pub fn admin(pki: &ClusterPki, server: &str) -> Self {
        Self::for_client_certificate(pki, server, ADMIN_COMMON_NAME, pki.admin())
    }

    /// A kubeconfig for a client certificate issued by the cluster CA, e.g. a node's.
    #[must_use]
    pub fn for_client_certificate(
        pki: &ClusterPki,
        server: &str,
        user_name: &str,
        certificate: &IssuedCertificate,
    ) -> Self {
        Self {
            cluster_name: DEFAULT_CLUSTER_NAME.to_owned(),
            server: server.to_owned(),
            certificate_authority_pem: pki.ca_certificate_pem().to_owned(),
            user_name: user_name.to_owned(),
            credentials: KubeconfigCredentials::ClientCertificate {
                certificate_pem: certificate.certificate_pem.clone(),
                key_pem: certificate.key_pem.clone(),
            },
            namespace: None,
        }
    }

    /// A kubeconfig for a bearer token.
    #[must_use]
    pub fn for_token(pki: &ClusterPki, server: &str, user_name: &str, token: &str) -> Self {
        Self {
            cluster_name: DEFAULT_CLUSTER_NAME.to_owned(),
            server: server.to_owned(),
            certificate_authority_pem: pki.ca_certificate_pem().to_owned(),
            user_name: user_name.to_owned(),
            credentials: KubeconfigCredentials::Token(token.to_owned()),
            namespace: None,
        }
    }

    /// The name of the one context: `<user>@<cluster>`, as kubeadm names it.
    #[must_use]
    pub fn context_name(&self) -> String {
        format!("{}@{}", self.user_name, self.cluster_name)
    }

    /// The kubeconfig as YAML.
    #[must_use]
    pub fn to_yaml(&self) -> String {
        let context = self.context_name();
        let mut out = String::new();
        out.push_str("apiVersion: v1\nkind: Config\n");
        out.push_str("clusters:\n");
        line(&mut out, "- name", &self.cluster_name);
        out.push_str("  cluster:\n");
        line(&mut out, "    server", &self.server);
        line(
            &mut out,
            "    certificate-authority-data",
            &STANDARD.encode(&self.certificate_authority_pem),
        );
        out.push_str("users:\n");
        line(&mut out, "- name", &self.user_name);
        out.push_str("  user:\n");
        match &self.credentials {
            KubeconfigCredentials::ClientCertificate {
                certificate_pem,
                key_pem,
            } => {
                line(
                    &mut out,
                    "    client-certificate-data",
                    &STANDARD.encode(certificate_pem),
                );
                line(&mut out, "    client-key-data", &STANDARD.encode(key_pem));
            }
            KubeconfigCredentials::Token(token) => line(&mut out, "    token", token),
        }
        out.push_str("contexts:\n");
        line(&mut out, "- name", &context);
        out.push_str("  context:\n");
        line(&mut out, "    cluster", &self.cluster_name);
        line(&mut out, "    user", &self.user_name);
        if let Some(namespace) = &self.namespace {
            line(&mut out, "    namespace", namespace);
        }
        line(&mut out, "current-context", &context);
        out.push_str("preferences: {}\n");
        out
    }

    /// Writes the kubeconfig to `path` with mode 0600, replacing any file there atomically.
    pub fn write_to(&self, path: &Path) -> Result<(), KubeconfigError> {
        files::write_atomic(path, self.to_yaml().as_bytes(), PRIVATE_MODE).map_err(|source| {
            KubeconfigError::Write {
                path: path.to_owned(),
                source,
            }
        })
    }
}

/// Appends `key: "value"` with the value quoted as a JSON (and so YAML) string.
fn line(out: &mut String, key: &str, value: &str) {
    // Serializing a &str to JSON cannot fail; fall back to an empty string regardless.
    let quoted = serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_owned());
    let _ = writeln!(out, "{key}: {quoted}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_quotes_every_scalar() {
        let config = Kubeconfig {
            cluster_name: "c".into(),
            server: "https://127.0.0.1:6443".into(),
            certificate_authority_pem: "CA".into(),
            user_name: "system:node:n1".into(),
            credentials: KubeconfigCredentials::Token("a\"b".into()),
            namespace: Some("kube-system".into()),
        };
        let yaml = config.to_yaml();
        assert!(yaml.contains("    token: \"a\\\"b\"\n"), "{yaml}");
        assert!(
            yaml.contains("current-context: \"system:node:n1@c\"\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("    certificate-authority-data: \"Q0E=\"\n"),
            "{yaml}"
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let creds = KubeconfigCredentials::Token("secret-token".into());
        assert!(!format!("{creds:?}").contains("secret-token"));
    }
}

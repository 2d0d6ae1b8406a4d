//! The authenticated identity of a request (kube-apiserver's `user.Info`) and the well-known
//! user and group names of Kubernetes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::digest::{hex, sha256};

/// Members may do everything (the group of the admin kubeconfig).
pub const SYSTEM_MASTERS: &str = "system:masters";
/// Added to every authenticated user.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// The group of the anonymous user.
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user of a request without credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of kubelets.
pub const NODES_GROUP: &str = "system:nodes";
/// The prefix of a kubelet's user name, followed by its node name.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The group of all service accounts.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// The prefix of a service account's user name, followed by `<namespace>:<name>`.
pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";
/// The extra key that names the credential a request was authenticated with.
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// Who made a request: kube-apiserver's `user.Info`, as a `TokenReview` or `SubjectAccessReview`
/// carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user name, e.g. `kubernetes-admin`, `system:node:n1`,
    /// `system:serviceaccount:default:builder`.
    pub name: String,
    /// A unique id of the user, when the authenticator knows one (service accounts, static
    /// tokens); empty otherwise.
    pub uid: String,
    /// The groups, including `system:authenticated` or `system:unauthenticated`.
    pub groups: Vec<String>,
    /// Additional attributes, e.g. the credential id or the pod a token is bound to.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Errors of reading a client certificate.
#[derive(Debug, thiserror::Error)]
pub enum ClientCertificateError {
    #[error("parsing client certificate: {reason}")]
    Parse { reason: String },
    #[error("client certificate subject has an attribute that is not a string")]
    SubjectAttribute,
}

impl UserInfo {
    /// The user of a request that presented no credentials.
    #[must_use]
    pub fn anonymous() -> Self {
        Self {
            name: ANONYMOUS.to_owned(),
            groups: vec![ALL_UNAUTHENTICATED.to_owned()],
            ..Self::default()
        }
    }

    /// The user named by a client certificate that the TLS layer has verified against the
    /// cluster CA: common name → name, organizations → groups, plus `system:authenticated`,
    /// and the certificate's SHA-256 as credential id (as kube-apiserver's x509
    /// authenticator). `None` if the certificate has no common name: kube-apiserver then
    /// ignores the certificate and tries the other credentials.
    pub fn from_client_certificate(der: &[u8]) -> Result<Option<Self>, ClientCertificateError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| ClientCertificateError::Parse {
                reason: e.to_string(),
            })?;
        let subject = cert.subject();
        let name = match subject.iter_common_name().next() {
            Some(cn) => cn
                .as_str()
                .map_err(|_| ClientCertificateError::SubjectAttribute)?
                .to_owned(),
            None => return Ok(None),
        };
        if name.is_empty() {
            return Ok(None);
        }
        let groups = subject
            .iter_organization()
            .map(|o| o.as_str().map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ClientCertificateError::SubjectAttribute)?;
        let mut extra = BTreeMap::new();
        extra.insert(
            EXTRA_CREDENTIAL_ID.to_owned(),
            vec![format!("X509SHA256={}", hex(&sha256(der)))],
        );
        Ok(Some(
            Self {
                name,
                uid: String::new(),
                groups,
                extra,
            }
            .with_authenticated_group(),
        ))
    }

    /// Adds `system:authenticated` unless the user is anonymous or already has it
    /// (kube-apiserver's `AuthenticatedGroupAdder`).
    #[must_use]
    pub fn with_authenticated_group(mut self) -> Self {
        let unauthenticated = self.name == ANONYMOUS
            || self
                .groups
                .iter()
                .any(|g| g == ALL_UNAUTHENTICATED || g == ALL_AUTHENTICATED);
        if !unauthenticated {
            self.groups.push(ALL_AUTHENTICATED.to_owned());
        }
        self
    }

    /// Whether the user is a member of `group`.
    #[must_use]
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Whether the request came without credentials.
    #[must_use]
    pub fn is_anonymous(&self) -> bool {
        self.name == ANONYMOUS || self.in_group(ALL_UNAUTHENTICATED)
    }

    /// The node a kubelet acts for: `Some(name)` for a user `system:node:<name>` in the group
    /// `system:nodes` (kube-apiserver's `NodeIdentity`); the name may be empty, which the
    /// Node authorizer refuses. `None` for everyone else.
    #[must_use]
    pub fn node_name(&self) -> Option<&str> {
        if !self.in_group(NODES_GROUP) {
            return None;
        }
        self.name.strip_prefix(NODE_USER_PREFIX)
    }
}

/// The user name of service account `namespace/name`.
#[must_use]
pub fn service_account_user_name(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}")
}

/// The user name of the kubelet of node `node_name`.
#[must_use]
pub fn node_user_name(node_name: &str) -> String {
    format!("{NODE_USER_PREFIX}{node_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_identity_needs_prefix_and_group() {
        let node = UserInfo {
            name: "system:node:n1".into(),
            groups: vec![NODES_GROUP.into()],
            ..UserInfo::default()
        };
        assert_eq!(node.node_name(), Some("n1"));
        let no_group = UserInfo {
            name: "system:node:n1".into(),
            ..UserInfo::default()
        };
        assert_eq!(no_group.node_name(), None);
        let other = UserInfo {
            name: "bob".into(),
            groups: vec![NODES_GROUP.into()],
            ..UserInfo::default()
        };
        assert_eq!(other.node_name(), None);
    }

    #[test]
    fn authenticated_group_is_added_once() {
        let user = UserInfo {
            name: "alice".into(),
            ..UserInfo::default()
        }
        .with_authenticated_group()
        .with_authenticated_group();
        assert_eq!(user.groups, vec![ALL_AUTHENTICATED.to_owned()]);
        assert_eq!(
            UserInfo::anonymous().with_authenticated_group().groups,
            vec![ALL_UNAUTHENTICATED.to_owned()]
        );
    }
}

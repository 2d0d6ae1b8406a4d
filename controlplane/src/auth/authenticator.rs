//! Authentication of a request, in kube-apiserver's order: the client certificate (already
//! verified against the cluster CA by the TLS layer), then the bearer token (static tokens,
//! then service-account tokens), then anonymous. Credentials that are presented but wrong
//! fail the request with 401; they never fall back to anonymous.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::lookup::ObjectLookup;
use super::service_account::{ServiceAccountClaims, ServiceAccountTokenIssuer, TokenError};
use super::token_file::StaticTokens;
use super::user::{
    ClientCertificateError, EXTRA_CREDENTIAL_ID, SERVICE_ACCOUNTS_GROUP, UserInfo,
    service_account_user_name,
};

/// Extra keys of service-account users, as kube-apiserver sets them.
pub mod extra {
    /// The name of the pod a token is bound to.
    pub const POD_NAME: &str = "authentication.kubernetes.io/pod-name";
    /// The uid of the pod a token is bound to.
    pub const POD_UID: &str = "authentication.kubernetes.io/pod-uid";
    /// The name of the node a token is bound to.
    pub const NODE_NAME: &str = "authentication.kubernetes.io/node-name";
    /// The uid of the node a token is bound to.
    pub const NODE_UID: &str = "authentication.kubernetes.io/node-uid";
}

/// Why a request could not be authenticated: the API server answers 401 Unauthorized.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticationError {
    #[error("reading client certificate")]
    ClientCertificate(#[from] ClientCertificateError),
    #[error("invalid bearer token")]
    InvalidBearerToken,
    #[error("verifying service account token")]
    ServiceAccountToken(#[source] TokenError),
    #[error("service account {namespace}/{name} does not exist")]
    ServiceAccountNotFound { namespace: String, name: String },
    #[error("service account UID ({current}) does not match claim ({claimed})")]
    ServiceAccountUidMismatch { current: String, claimed: String },
    #[error("service account token has been invalidated")]
    BoundPodGone,
    #[error("pod UID ({current}) does not match service account pod ref claim ({claimed})")]
    BoundPodUidMismatch { current: String, claimed: String },
    #[error("anonymous requests are disabled")]
    AnonymousDisabled,
}

/// Authenticates requests.
#[derive(Debug, Clone)]
pub struct Authenticator {
    static_tokens: StaticTokens,
    service_accounts: Option<Arc<ServiceAccountTokenIssuer>>,
    anonymous: bool,
}

impl Authenticator {
    /// An authenticator for client certificates and the given token sources;
    /// `anonymous` allows requests without credentials (`--anonymous-auth`, on by default).
    #[must_use]
    pub fn new(
        static_tokens: StaticTokens,
        service_accounts: Option<Arc<ServiceAccountTokenIssuer>>,
        anonymous: bool,
    ) -> Self {
        Self {
            static_tokens,
            service_accounts,
            anonymous,
        }
    }

    /// The user of a request: `client_certificate` is the DER of the leaf certificate the TLS
    /// layer verified, `authorization` the value of the `Authorization` header.
    pub fn authenticate(
        &self,
        client_certificate: Option<&[u8]>,
        authorization: Option<&str>,
        lookup: &dyn ObjectLookup,
    ) -> Result<UserInfo, AuthenticationError> {
        if let Some(der) = client_certificate
            && let Some(user) = UserInfo::from_client_certificate(der)?
        {
            return Ok(user);
        }
        if let Some(header) = authorization
            && let Some(token) = bearer_token(header)?
        {
            return self.authenticate_token(token, lookup);
        }
        if self.anonymous {
            Ok(UserInfo::anonymous())
        } else {
            Err(AuthenticationError::AnonymousDisabled)
        }
    }

    /// The user of a bearer token (also what a `TokenReview` asks).
    pub fn authenticate_token(
        &self,
        token: &str,
        lookup: &dyn ObjectLookup,
    ) -> Result<UserInfo, AuthenticationError> {
        if let Some(user) = self.static_tokens.authenticate(token) {
            return Ok(user);
        }
        let Some(issuer) = &self.service_accounts else {
            return Err(AuthenticationError::InvalidBearerToken);
        };
        let claims = issuer
            .verify(token)
            .map_err(AuthenticationError::ServiceAccountToken)?;
        check_still_valid(&claims, lookup)?;
        Ok(service_account_user(&claims))
    }
}

impl Authenticator {
    /// The user of a token for a `TokenReview` naming audiences: a service-account token
    /// must be meant for one of them (static tokens have no audience).
    pub fn authenticate_token_for_audiences(
        &self,
        token: &str,
        audiences: &[String],
        lookup: &dyn ObjectLookup,
    ) -> Result<UserInfo, AuthenticationError> {
        if audiences.is_empty() {
            return self.authenticate_token(token, lookup);
        }
        let Some(issuer) = &self.service_accounts else {
            return Err(AuthenticationError::InvalidBearerToken);
        };
        let claims = issuer
            .verify_for_audiences(token, audiences)
            .map_err(AuthenticationError::ServiceAccountToken)?;
        check_still_valid(&claims, lookup)?;
        Ok(service_account_user(&claims))
    }
}

/// The token of an `Authorization: Bearer <token>` header; `None` for other schemes.
pub fn bearer_token(header: &str) -> Result<Option<&str>, AuthenticationError> {
    // As kube-apiserver: "Bearer" without a token is no bearer header at all, "Bearer " with
    // an empty token is an invalid one.
    let mut parts = header.trim().splitn(3, ' ');
    match (parts.next(), parts.next()) {
        (Some(scheme), Some(token)) if scheme.eq_ignore_ascii_case("bearer") => {
            if token.is_empty() {
                Err(AuthenticationError::InvalidBearerToken)
            } else {
                Ok(Some(token))
            }
        }
        _ => Ok(None),
    }
}

/// A token is valid only while its service account (and bound pod) exist with the uids it
/// names, as kube-apiserver's service-account token validator checks.
fn check_still_valid(
    claims: &ServiceAccountClaims,
    lookup: &dyn ObjectLookup,
) -> Result<(), AuthenticationError> {
    let k = &claims.kubernetes;
    let current = lookup
        .service_account_uid(&k.namespace, &k.serviceaccount.name)
        .ok_or_else(|| AuthenticationError::ServiceAccountNotFound {
            namespace: k.namespace.clone(),
            name: k.serviceaccount.name.clone(),
        })?;
    if current != k.serviceaccount.uid {
        return Err(AuthenticationError::ServiceAccountUidMismatch {
            current,
            claimed: k.serviceaccount.uid.clone(),
        });
    }
    if let Some(pod) = &k.pod {
        let binding = lookup
            .pod(&k.namespace, &pod.name)
            .ok_or(AuthenticationError::BoundPodGone)?;
        if binding.uid != pod.uid {
            return Err(AuthenticationError::BoundPodUidMismatch {
                current: binding.uid,
                claimed: pod.uid.clone(),
            });
        }
    }
    Ok(())
}

/// The user of verified service-account claims.
#[must_use]
pub fn service_account_user(claims: &ServiceAccountClaims) -> UserInfo {
    let k = &claims.kubernetes;
    let mut extra = BTreeMap::new();
    if let Some(jti) = claims.jti.as_deref().filter(|j| !j.is_empty()) {
        extra.insert(EXTRA_CREDENTIAL_ID.to_owned(), vec![format!("JTI={jti}")]);
    }
    let mut put = |key: &str, value: &str| {
        if !value.is_empty() {
            extra.insert(key.to_owned(), vec![value.to_owned()]);
        }
    };
    if let Some(pod) = &k.pod {
        put(extra::POD_NAME, &pod.name);
        put(extra::POD_UID, &pod.uid);
    }
    if let Some(node) = &k.node {
        put(extra::NODE_NAME, &node.name);
        put(extra::NODE_UID, &node.uid);
    }
    UserInfo {
        name: service_account_user_name(&k.namespace, &k.serviceaccount.name),
        uid: k.serviceaccount.uid.clone(),
        groups: vec![
            SERVICE_ACCOUNTS_GROUP.to_owned(),
            format!("{SERVICE_ACCOUNTS_GROUP}:{}", k.namespace),
        ],
        extra,
    }
    .with_authenticated_group()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_forms() {
        assert_eq!(bearer_token("Bearer abc").ok().flatten(), Some("abc"));
        assert_eq!(bearer_token("bearer abc").ok().flatten(), Some("abc"));
        assert_eq!(bearer_token("Basic Zm9vOmJhcg==").ok().flatten(), None);
        assert_eq!(bearer_token("Bearer").ok().flatten(), None);
        assert!(
            bearer_token("Bearer  abc").is_err(),
            "an empty token is invalid"
        );
    }
}

//! Service-account tokens, as kube-apiserver issues them for the `TokenRequest` API
//! (`serviceaccounts/<name>/token`, what kubelets mount into pods) and verifies them on
//! every request: JWTs signed with the cluster's service-account key, ES256 with a `kid`.
//!
//! kube-apiserver signs with RS256 for RSA keys and ES256/ES384/ES512 for ECDSA keys
//! (`pkg/serviceaccount/jwt.go`); ferrolet's key is P-256, so ES256. The key id is, as
//! upstream, the unpadded base64url SHA-256 of the public key's DER. The claims are
//! upstream's (`pkg/serviceaccount/claims.go`):
//!
//! ```json
//! {"aud":["https://kubernetes.default.svc.cluster.local"],"exp":1700003600,"iat":1700000000,
//!  "iss":"https://kubernetes.default.svc.cluster.local","jti":"…","nbf":1700000000,
//!  "sub":"system:serviceaccount:default:builder",
//!  "kubernetes.io":{"namespace":"default","serviceaccount":{"name":"builder","uid":"…"},
//!                   "pod":{"name":"web-0","uid":"…"},"node":{"name":"n1","uid":"…"}}}
//! ```
//!
//! The public key is published as a JWKS at `/openid/v1/jwks` next to an OIDC discovery
//! document at `/.well-known/openid-configuration`, so that outside parties can verify
//! tokens. Not done: the one-year extension of kubelet tokens asking for 3607 seconds
//! (`--service-account-extend-token-expiration`), legacy secret-based tokens, RSA keys.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rcgen::{KeyPair, PublicKeyData as _};
use serde::{Deserialize, Deserializer, Serialize};

use super::clock::Clock;
use super::digest::sha256;
use super::user::service_account_user_name;

/// The issuer of kube-apiserver's default `--service-account-issuer`.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The path of the JWKS.
pub const JWKS_PATH: &str = "/openid/v1/jwks";
/// The path of the OIDC discovery document.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// The lifetime of a token whose request does not say (the `TokenRequest` API's default).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a token may be requested for (10 minutes, as the API validates).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Clock skew tolerated when checking `exp` and `nbf` (go-jose's default leeway).
pub const LEEWAY_SECONDS: i64 = 60;

/// How the issuer names itself and whom its tokens are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountIssuerConfig {
    /// `iss` of issued tokens (`--service-account-issuer`).
    pub issuer: String,
    /// Audiences the API server accepts (`--api-audiences`); empty means the issuer.
    pub api_audiences: Vec<String>,
    /// The JWKS URL in the discovery document; `None` means `<issuer>/openid/v1/jwks`.
    pub jwks_uri: Option<String>,
    /// Longest lifetime of a token (`--service-account-max-token-expiration`), if limited.
    pub max_expiration_seconds: Option<i64>,
}

impl Default for ServiceAccountIssuerConfig {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            api_audiences: Vec::new(),
            jwks_uri: None,
            max_expiration_seconds: None,
        }
    }
}

/// A name and uid, as token claims refer to objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// What a token is requested for: the service account, and like a `TokenRequest`'s spec,
/// audiences, lifetime and the objects the token is bound to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAccountTokenRequest {
    pub namespace: String,
    pub service_account_name: String,
    pub service_account_uid: String,
    /// `spec.audiences`; empty means the API server's audiences.
    pub audiences: Vec<String>,
    /// `spec.expirationSeconds`; `None` means an hour.
    pub expiration_seconds: Option<i64>,
    /// The pod the token is bound to (`spec.boundObjectRef` of kind Pod).
    pub bound_pod: Option<ObjectRef>,
    /// The node the token is bound to, or the node of the bound pod.
    pub bound_node: Option<ObjectRef>,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// The claims of a service-account token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountClaims {
    pub iss: String,
    pub sub: String,
    #[serde(deserialize_with = "string_or_list")]
    pub aud: Vec<String>,
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
    #[serde(default)]
    pub nbf: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// `aud` may be one string or a list (RFC 7519).
fn string_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// One key of a JSON Web Key Set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonWebKey {
    #[serde(rename = "use")]
    pub use_: String,
    pub kty: String,
    pub kid: String,
    pub crv: String,
    pub alg: String,
    pub x: String,
    pub y: String,
}

/// The document at `/openid/v1/jwks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonWebKeySet {
    pub keys: Vec<JsonWebKey>,
}

/// The document at `/.well-known/openid-configuration`, the fields kube-apiserver serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenIdConfiguration {
    pub issuer: String,
    pub jwks_uri: String,
    pub response_types_supported: Vec<String>,
    pub subject_types_supported: Vec<String>,
    pub id_token_signing_alg_values_supported: Vec<String>,
}

/// Errors of issuing and verifying service-account tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("loading service account signing key")]
    LoadKey(#[source] rcgen::Error),
    #[error("loading service account signing key: not an ECDSA P-256 key")]
    UnsupportedKey,
    #[error("loading service account signing key into the JWT signer")]
    LoadSigner(#[source] jsonwebtoken::errors::Error),
    #[error("invalid token request: {reason}")]
    InvalidRequest { reason: String },
    #[error("signing service account token")]
    Sign(#[source] jsonwebtoken::errors::Error),
    #[error("token is not a valid JWT")]
    Malformed(#[source] jsonwebtoken::errors::Error),
    #[error("token signature is invalid")]
    InvalidSignature,
    #[error("token issuer {issuer:?} is not {expected:?}")]
    UnknownIssuer { issuer: String, expected: String },
    #[error("service account token has expired")]
    Expired,
    #[error("service account token is not valid yet")]
    NotYetValid,
    #[error("token audiences {token:?} is invalid for the target audiences {expected:?}")]
    InvalidAudience {
        token: Vec<String>,
        expected: Vec<String>,
    },
    #[error("token subject {subject:?} does not name its service account")]
    InvalidSubject { subject: String },
}

/// Issues and verifies the cluster's service-account tokens.
pub struct ServiceAccountTokenIssuer {
    config: ServiceAccountIssuerConfig,
    api_audiences: Vec<String>,
    encoding_key: EncodingKey,
    decoding_key: DecodingKey,
    key_id: String,
    jwk: JsonWebKey,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ServiceAccountTokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountTokenIssuer")
            .field("config", &self.config)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountTokenIssuer {
    /// An issuer signing with `key_pem` (PKCS#8, ECDSA P-256, as
    /// [`ClusterPki::service_account_key_pem`](super::pki::ClusterPki::service_account_key_pem)).
    pub fn new(
        key_pem: &str,
        config: ServiceAccountIssuerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, TokenError> {
        let key = KeyPair::from_pem(key_pem).map_err(TokenError::LoadKey)?;
        if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(TokenError::UnsupportedKey);
        }
        // An uncompressed P-256 point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = key.public_key_raw();
        let (x, y) = match point {
            [0x04, xy @ ..] if xy.len() == 64 => xy.split_at(32),
            _ => return Err(TokenError::UnsupportedKey),
        };
        let key_id = URL_SAFE_NO_PAD.encode(sha256(&key.subject_public_key_info()));
        let jwk = JsonWebKey {
            use_: "sig".to_owned(),
            kty: "EC".to_owned(),
            kid: key_id.clone(),
            crv: "P-256".to_owned(),
            alg: "ES256".to_owned(),
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
        };
        let encoding_key =
            EncodingKey::from_ec_pem(key_pem.as_bytes()).map_err(TokenError::LoadSigner)?;
        let decoding_key = DecodingKey::from_ec_der(point);
        let api_audiences = if config.api_audiences.is_empty() {
            vec![config.issuer.clone()]
        } else {
            config.api_audiences.clone()
        };
        Ok(Self {
            config,
            api_audiences,
            encoding_key,
            decoding_key,
            key_id,
            jwk,
            clock,
        })
    }

    /// The issuer URL (`iss`).
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The audiences the API server accepts.
    #[must_use]
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// The key id (`kid`) of issued tokens.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Issues a token; returns it with its expiration time.
    pub fn issue(
        &self,
        request: &ServiceAccountTokenRequest,
    ) -> Result<(String, Timestamp), TokenError> {
        let invalid = |reason: &str| TokenError::InvalidRequest {
            reason: reason.to_owned(),
        };
        if request.namespace.is_empty() || request.service_account_name.is_empty() {
            return Err(invalid("namespace and service account name are required"));
        }
        let mut expiration = request
            .expiration_seconds
            .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
        if expiration < MIN_EXPIRATION_SECONDS {
            return Err(invalid("may not specify a duration less than 10 minutes"));
        }
        if expiration > i64::from(u32::MAX) {
            return Err(invalid(
                "may not specify a duration larger than 2^32 seconds",
            ));
        }
        if let Some(max) = self.config.max_expiration_seconds {
            expiration = expiration.min(max);
        }
        let now = self.clock.now().as_second();
        let exp = now + expiration;
        let audiences = if request.audiences.is_empty() {
            self.api_audiences.clone()
        } else {
            request.audiences.clone()
        };
        let claims = ServiceAccountClaims {
            iss: self.config.issuer.clone(),
            sub: service_account_user_name(&request.namespace, &request.service_account_name),
            aud: audiences,
            exp,
            iat: now,
            nbf: now,
            jti: Some(uuid::Uuid::new_v4().to_string()),
            kubernetes: KubernetesClaims {
                namespace: request.namespace.clone(),
                serviceaccount: ObjectRef {
                    name: request.service_account_name.clone(),
                    uid: request.service_account_uid.clone(),
                },
                pod: request.bound_pod.clone(),
                node: request.bound_node.clone(),
                secret: None,
                warnafter: None,
            },
        };
        let mut header = Header::new(Algorithm::ES256);
        // go-jose writes only alg and kid.
        header.typ = None;
        header.kid = Some(self.key_id.clone());
        let token =
            jsonwebtoken::encode(&header, &claims, &self.encoding_key).map_err(TokenError::Sign)?;
        let expiration =
            Timestamp::from_second(exp).map_err(|_| invalid("expiration out of range"))?;
        Ok((token, expiration))
    }

    /// Verifies a token for the API server's audiences: signature, issuer, lifetime,
    /// audience and subject. Whether the service account and bound pod still exist is the
    /// [`Authenticator`](super::Authenticator)'s check.
    pub fn verify(&self, token: &str) -> Result<ServiceAccountClaims, TokenError> {
        self.verify_for_audiences(token, &self.api_audiences)
    }

    /// Verifies a token for the given audiences (a `TokenReview`'s `spec.audiences`); the token
    /// must name at least one of them.
    pub fn verify_for_audiences(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<ServiceAccountClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(TokenError::Malformed)?;
        if header.kid.as_deref().is_some_and(|kid| kid != self.key_id) {
            return Err(TokenError::InvalidSignature);
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims =
            jsonwebtoken::decode::<ServiceAccountClaims>(token, &self.decoding_key, &validation)
                .map_err(|e| match e.kind() {
                    ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                        TokenError::InvalidSignature
                    }
                    _ => TokenError::Malformed(e),
                })?
                .claims;
        if claims.iss != self.config.issuer {
            return Err(TokenError::UnknownIssuer {
                issuer: claims.iss,
                expected: self.config.issuer.clone(),
            });
        }
        let now = self.clock.now().as_second();
        if now > claims.exp.saturating_add(LEEWAY_SECONDS) {
            return Err(TokenError::Expired);
        }
        if claims.nbf.saturating_sub(LEEWAY_SECONDS) > now {
            return Err(TokenError::NotYetValid);
        }
        if !claims.aud.iter().any(|a| audiences.contains(a)) {
            return Err(TokenError::InvalidAudience {
                token: claims.aud,
                expected: audiences.to_vec(),
            });
        }
        let k = &claims.kubernetes;
        if k.namespace.is_empty()
            || k.serviceaccount.name.is_empty()
            || claims.sub != service_account_user_name(&k.namespace, &k.serviceaccount.name)
        {
            return Err(TokenError::InvalidSubject {
                subject: claims.sub,
            });
        }
        Ok(claims)
    }

    /// The public key as a JWKS, served at [`JWKS_PATH`].
    #[must_use]
    pub fn jwks(&self) -> JsonWebKeySet {
        JsonWebKeySet {
            keys: vec![self.jwk.clone()],
        }
    }

    /// The OIDC discovery document, served at [`OPENID_CONFIGURATION_PATH`].
    #[must_use]
    pub fn openid_configuration(&self) -> OpenIdConfiguration {
        let jwks_uri =
            self.config.jwks_uri.clone().unwrap_or_else(|| {
                format!("{}{JWKS_PATH}", self.config.issuer.trim_end_matches('/'))
            });
        OpenIdConfiguration {
            issuer: self.config.issuer.clone(),
            jwks_uri,
            response_types_supported: vec!["id_token".to_owned()],
            subject_types_supported: vec!["public".to_owned()],
            id_token_signing_alg_values_supported: vec!["ES256".to_owned()],
        }
    }
}

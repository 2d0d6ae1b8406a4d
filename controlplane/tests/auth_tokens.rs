//! Bearer tokens: the static token file, service-account JWTs (issue, verify, JWKS), and the
//! authenticator that turns credentials into users.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ferrolet_controlplane::auth::pki::ServingIdentity;
use ferrolet_controlplane::auth::service_account::{DEFAULT_ISSUER, ObjectRef};
use ferrolet_controlplane::auth::{
    AuthenticationError, Authenticator, ClusterPki, FixedClock, InMemoryObjectLookup, PodBinding,
    ServiceAccountIssuerConfig, ServiceAccountTokenIssuer, ServiceAccountTokenRequest,
    StaticTokens, TokenError, TokenFileError, UserInfo,
};
use jiff::{SignedDuration, Timestamp};

const NOW: i64 = 1_750_000_000;
const SA_UID: &str = "5c0e3f9a-4b8c-4a51-9d5c-6c3f1c0e2a11";
const POD_UID: &str = "0b7e6a4e-2f0c-4d1e-8a8b-1c2d3e4f5a6b";

fn key_pem() -> String {
    rcgen::KeyPair::generate().expect("key").serialize_pem()
}

fn issuer_with(key_pem: &str, clock: Arc<FixedClock>) -> ServiceAccountTokenIssuer {
    ServiceAccountTokenIssuer::new(key_pem, ServiceAccountIssuerConfig::default(), clock)
        .expect("issuer")
}

fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::new(
        Timestamp::from_second(NOW).expect("timestamp"),
    ))
}

fn request() -> ServiceAccountTokenRequest {
    ServiceAccountTokenRequest {
        namespace: "default".into(),
        service_account_name: "builder".into(),
        service_account_uid: SA_UID.into(),
        bound_pod: Some(ObjectRef {
            name: "web-0".into(),
            uid: POD_UID.into(),
        }),
        bound_node: Some(ObjectRef {
            name: "n1".into(),
            uid: "node-uid-1".into(),
        }),
        ..ServiceAccountTokenRequest::default()
    }
}

fn segment(token: &str, index: usize) -> serde_json::Value {
    let part = token.split('.').nth(index).expect("JWT segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

#[test]
fn token_round_trip_has_upstream_claims() {
    let clock = clock();
    let issuer = issuer_with(&key_pem(), clock.clone());
    let (token, expires) = issuer.issue(&request()).expect("issue");
    assert_eq!(expires.as_second(), NOW + 3600, "an hour by default");

    let header = segment(&token, 0);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], issuer.key_id());
    assert!(
        header.get("typ").is_none(),
        "go-jose writes alg and kid only"
    );

    let payload = segment(&token, 1);
    assert_eq!(payload["iss"], DEFAULT_ISSUER);
    assert_eq!(payload["sub"], "system:serviceaccount:default:builder");
    assert_eq!(payload["aud"], serde_json::json!([DEFAULT_ISSUER]));
    assert_eq!(payload["iat"], NOW);
    assert_eq!(payload["nbf"], NOW);
    assert_eq!(payload["exp"], NOW + 3600);
    assert!(payload["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert_eq!(
        payload["kubernetes.io"],
        serde_json::json!({
            "namespace": "default",
            "serviceaccount": {"name": "builder", "uid": SA_UID},
            "pod": {"name": "web-0", "uid": POD_UID},
            "node": {"name": "n1", "uid": "node-uid-1"},
        })
    );

    let claims = issuer.verify(&token).expect("verify");
    assert_eq!(claims.sub, "system:serviceaccount:default:builder");
    assert_eq!(claims.kubernetes.serviceaccount.uid, SA_UID);
}

#[test]
fn expired_and_early_tokens_are_rejected() {
    let clock = clock();
    let issuer = issuer_with(&key_pem(), clock.clone());
    let (token, _) = issuer
        .issue(&ServiceAccountTokenRequest {
            expiration_seconds: Some(600),
            ..request()
        })
        .expect("issue");
    clock.advance(SignedDuration::from_secs(600 + 59));
    issuer
        .verify(&token)
        .expect("within the leeway of a minute");
    clock.advance(SignedDuration::from_secs(2));
    assert!(matches!(issuer.verify(&token), Err(TokenError::Expired)));
    assert_eq!(
        TokenError::Expired.to_string(),
        "service account token has expired"
    );

    clock.set(Timestamp::from_second(NOW - 120).expect("timestamp"));
    assert!(matches!(
        issuer.verify(&token),
        Err(TokenError::NotYetValid)
    ));
}

#[test]
fn wrong_signature_is_rejected() {
    let clock = clock();
    let issuer = issuer_with(&key_pem(), clock.clone());
    let other = issuer_with(&key_pem(), clock.clone());
    let (foreign, _) = other.issue(&request()).expect("issue");
    assert!(
        matches!(issuer.verify(&foreign), Err(TokenError::InvalidSignature)),
        "a token of another key (and kid)"
    );

    // The same payload with a changed subject, under the original signature.
    let (token, _) = issuer.issue(&request()).expect("issue");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload = segment(&token, 1);
    payload["sub"] = "system:serviceaccount:kube-system:admin".into();
    payload["kubernetes.io"]["namespace"] = "kube-system".into();
    payload["kubernetes.io"]["serviceaccount"]["name"] = "admin".into();
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    let forged = parts.join(".");
    assert!(matches!(
        issuer.verify(&forged),
        Err(TokenError::InvalidSignature)
    ));

    assert!(matches!(
        issuer.verify("not.a.jwt"),
        Err(TokenError::Malformed(_))
    ));
}

#[test]
fn wrong_audience_is_rejected() {
    let issuer = issuer_with(&key_pem(), clock());
    let (vault, _) = issuer
        .issue(&ServiceAccountTokenRequest {
            audiences: vec!["vault".into()],
            ..request()
        })
        .expect("issue");
    let err = issuer.verify(&vault).expect_err("not for the API server");
    assert!(matches!(err, TokenError::InvalidAudience { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "token audiences [\"vault\"] is invalid for the target audiences [\"https://kubernetes.default.svc.cluster.local\"]"
    );
    issuer
        .verify_for_audiences(&vault, &["vault".to_owned()])
        .expect("valid for its own audience");
}

#[test]
fn token_requests_are_validated_and_capped() {
    let clock = clock();
    let issuer = ServiceAccountTokenIssuer::new(
        &key_pem(),
        ServiceAccountIssuerConfig {
            max_expiration_seconds: Some(7200),
            ..ServiceAccountIssuerConfig::default()
        },
        clock,
    )
    .expect("issuer");
    let short = issuer.issue(&ServiceAccountTokenRequest {
        expiration_seconds: Some(599),
        ..request()
    });
    assert!(matches!(short, Err(TokenError::InvalidRequest { .. })));
    let (_, expires) = issuer
        .issue(&ServiceAccountTokenRequest {
            expiration_seconds: Some(48 * 3600),
            ..request()
        })
        .expect("issue");
    assert_eq!(expires.as_second(), NOW + 7200, "capped at the maximum");
}

#[test]
fn jwks_and_discovery_verify_issued_tokens() {
    let issuer = issuer_with(&key_pem(), clock());
    let (token, _) = issuer.issue(&request()).expect("issue");
    let jwks = serde_json::to_value(issuer.jwks()).expect("JWKS JSON");
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"], issuer.key_id());

    // A relying party verifies with nothing but the published key.
    let decoding = jsonwebtoken::DecodingKey::from_ec_components(
        key["x"].as_str().expect("x"),
        key["y"].as_str().expect("y"),
    )
    .expect("key from JWKS");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.validate_exp = false;
    validation.set_audience(&[DEFAULT_ISSUER]);
    jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation)
        .expect("the JWKS verifies the token");

    let discovery = serde_json::to_value(issuer.openid_configuration()).expect("JSON");
    assert_eq!(
        discovery,
        serde_json::json!({
            "issuer": DEFAULT_ISSUER,
            "jwks_uri": "https://kubernetes.default.svc.cluster.local/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    );
}

#[test]
fn issuer_uses_the_pki_service_account_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = ClusterPki::load_or_create(dir.path(), &ServingIdentity::default()).expect("pki");
    let first = issuer_with(pki.service_account_key_pem(), clock());
    let reloaded =
        ClusterPki::load_or_create(dir.path(), &ServingIdentity::default()).expect("pki");
    let second = issuer_with(reloaded.service_account_key_pem(), clock());
    let (token, _) = first.issue(&request()).expect("issue");
    second
        .verify(&token)
        .expect("tokens survive an API server restart");
    assert_eq!(first.key_id(), second.key_id());
}

// ----- token file ------------------------------------------------------------------------

#[test]
fn token_file_parses_like_kube_apiserver() {
    let file = "\
token1,alice,1001,\"dev,ops\"
token2,bob,1002
token3,carol,1003,viewers

,nobody,0
token2,bob-again,1004,\"a \"\"quoted\"\" group\"
";
    let tokens = StaticTokens::parse(file).expect("token file");
    assert_eq!(
        tokens.len(),
        3,
        "the empty token is skipped, the duplicate replaces"
    );
    let alice = tokens.authenticate("token1").expect("alice");
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.uid, "1001");
    assert_eq!(alice.groups, ["dev", "ops", "system:authenticated"]);
    let carol = tokens.authenticate("token3").expect("carol");
    assert_eq!(carol.groups, ["viewers", "system:authenticated"]);
    let bob = tokens.authenticate("token2").expect("bob");
    assert_eq!(bob.name, "bob-again");
    assert_eq!(bob.groups, ["a \"quoted\" group", "system:authenticated"]);
    assert!(tokens.authenticate("token4").is_none());

    let err = StaticTokens::parse("token1,alice\n").expect_err("two columns");
    assert!(
        matches!(err, TokenFileError::TooFewColumns { line: 1, found: 2 }),
        "{err}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokens.csv");
    std::fs::write(&path, "t,u,1\n").expect("write");
    assert_eq!(StaticTokens::load(&path).expect("load").len(), 1);
    assert!(matches!(
        StaticTokens::load(&dir.path().join("missing.csv")),
        Err(TokenFileError::Read { .. })
    ));
}

// ----- authenticator ---------------------------------------------------------------------

struct Fixture {
    issuer: Arc<ServiceAccountTokenIssuer>,
    authenticator: Authenticator,
    lookup: InMemoryObjectLookup,
}

fn fixture() -> Fixture {
    let issuer = Arc::new(issuer_with(&key_pem(), clock()));
    let tokens = StaticTokens::parse("static-token,alice,1001,\"dev,ops\"\n").expect("tokens");
    let authenticator = Authenticator::new(tokens, Some(issuer.clone()), true);
    let lookup = InMemoryObjectLookup::new();
    lookup.put_service_account("default", "builder", SA_UID);
    lookup.put_pod(
        "default",
        "web-0",
        PodBinding {
            uid: POD_UID.into(),
            node_name: "n1".into(),
            service_account_name: "builder".into(),
        },
    );
    Fixture {
        issuer,
        authenticator,
        lookup,
    }
}

#[test]
fn service_account_token_authenticates_the_service_account() {
    let f = fixture();
    let (token, _) = f.issuer.issue(&request()).expect("issue");
    let user = f
        .authenticator
        .authenticate(None, Some(&format!("Bearer {token}")), &f.lookup)
        .expect("authenticate");
    assert_eq!(user.name, "system:serviceaccount:default:builder");
    assert_eq!(user.uid, SA_UID);
    assert_eq!(
        user.groups,
        [
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ]
    );
    let jti = segment(&token, 1)["jti"].as_str().expect("jti").to_owned();
    let extra = |k: &str| user.extra.get(k).cloned().unwrap_or_default();
    assert_eq!(
        extra("authentication.kubernetes.io/credential-id"),
        [format!("JTI={jti}")]
    );
    assert_eq!(extra("authentication.kubernetes.io/pod-name"), ["web-0"]);
    assert_eq!(extra("authentication.kubernetes.io/pod-uid"), [POD_UID]);
    assert_eq!(extra("authentication.kubernetes.io/node-name"), ["n1"]);
    assert_eq!(
        extra("authentication.kubernetes.io/node-uid"),
        ["node-uid-1"]
    );
}

#[test]
fn tokens_of_deleted_objects_are_rejected() {
    let f = fixture();
    let (token, _) = f.issuer.issue(&request()).expect("issue");
    f.lookup.put_pod(
        "default",
        "web-0",
        PodBinding {
            uid: "recreated".into(),
            ..PodBinding::default()
        },
    );
    assert!(matches!(
        f.authenticator.authenticate_token(&token, &f.lookup),
        Err(AuthenticationError::BoundPodUidMismatch { .. })
    ));
    f.lookup.remove_pod("default", "web-0");
    assert!(matches!(
        f.authenticator.authenticate_token(&token, &f.lookup),
        Err(AuthenticationError::BoundPodGone)
    ));
    f.lookup.remove_service_account("default", "builder");
    assert!(matches!(
        f.authenticator.authenticate_token(&token, &f.lookup),
        Err(AuthenticationError::ServiceAccountNotFound { .. })
    ));
}

#[test]
fn credentials_in_kube_apiserver_order() {
    let f = fixture();
    let user = f
        .authenticator
        .authenticate(None, Some("Bearer static-token"), &f.lookup)
        .expect("static token");
    assert_eq!(user.name, "alice");
    assert_eq!(user.groups, ["dev", "ops", "system:authenticated"]);

    let anonymous = f
        .authenticator
        .authenticate(None, None, &f.lookup)
        .expect("anonymous");
    assert_eq!(anonymous, UserInfo::anonymous());
    assert_eq!(anonymous.name, "system:anonymous");
    assert_eq!(anonymous.groups, ["system:unauthenticated"]);
    let basic = f
        .authenticator
        .authenticate(None, Some("Basic YWxpY2U6cHc="), &f.lookup)
        .expect("not a bearer header: anonymous");
    assert!(basic.is_anonymous());

    let wrong = f
        .authenticator
        .authenticate(None, Some("Bearer wrong"), &f.lookup);
    assert!(
        matches!(wrong, Err(AuthenticationError::ServiceAccountToken(_))),
        "a wrong token fails, it does not fall back to anonymous: {wrong:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let pki = ClusterPki::load_or_create(dir.path(), &ServingIdentity::default()).expect("pki");
    let der =
        rustls::pki_types::pem::PemObject::from_pem_slice(pki.admin().certificate_pem.as_bytes())
            .map(|d: rustls::pki_types::CertificateDer<'_>| d.to_vec())
            .expect("admin certificate");
    let admin = f
        .authenticator
        .authenticate(Some(&der), Some("Bearer static-token"), &f.lookup)
        .expect("certificate");
    assert_eq!(
        admin.name, "kubernetes-admin",
        "the certificate comes first"
    );

    let strict = Authenticator::new(StaticTokens::default(), None, false);
    assert!(matches!(
        strict.authenticate(None, None, &f.lookup),
        Err(AuthenticationError::AnonymousDisabled)
    ));
    assert!(matches!(
        strict.authenticate(None, Some("Bearer x"), &f.lookup),
        Err(AuthenticationError::InvalidBearerToken)
    ));
}

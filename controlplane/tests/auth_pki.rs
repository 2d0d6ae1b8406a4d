//! The cluster PKI: files on disk, certificates as rustls/webpki verifies them, and TLS
//! handshakes against the API server's `ServerConfig` with and without client certificates.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferrolet_controlplane::auth::pki::{ServingIdentity, file_names, tls};
use ferrolet_controlplane::auth::{ClusterPki, IssuedCertificate, PkiError, UserInfo};
use rcgen::PublicKeyData as _;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const SERVICE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1));

fn identity() -> ServingIdentity {
    ServingIdentity::for_service_ip(SERVICE_IP)
}

fn pki_in(dir: &Path) -> ClusterPki {
    ClusterPki::load_or_create(dir, &identity()).expect("load or create pki")
}

fn roots(pki: &ClusterPki) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots
        .add(pki.ca_certificate_der().clone())
        .expect("add CA to roots");
    Arc::new(roots)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn leaf_der(cert: &IssuedCertificate) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(cert.certificate_pem.as_bytes()).expect("certificate pem")
}

#[test]
fn create_then_load_gives_the_same_ca_and_keeps_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki_dir = dir.path().join("pki");
    let first = pki_in(&pki_dir);
    let second = pki_in(&pki_dir);
    assert_eq!(first.ca_certificate_pem(), second.ca_certificate_pem());
    assert_eq!(
        first.serving(),
        second.serving(),
        "unchanged names keep the serving certificate"
    );
    assert_eq!(first.admin(), second.admin());
    assert_eq!(
        first.service_account_key_pem(),
        second.service_account_key_pem()
    );

    assert_eq!(mode(&pki_dir), 0o700);
    for key in [
        file_names::CA_KEY,
        file_names::SERVING_KEY,
        file_names::ADMIN_KEY,
        file_names::SERVICE_ACCOUNT_KEY,
    ] {
        assert_eq!(mode(&pki_dir.join(key)), 0o600, "{key}");
    }
    for cert in [
        file_names::CA_CERT,
        file_names::SERVING_CERT,
        file_names::ADMIN_CERT,
        file_names::SERVICE_ACCOUNT_PUB,
    ] {
        assert_eq!(mode(&pki_dir.join(cert)), 0o644, "{cert}");
    }
    let ca_pem = std::fs::read_to_string(pki_dir.join(file_names::CA_CERT)).expect("read ca.crt");
    assert_eq!(ca_pem, first.ca_certificate_pem());
}

#[test]
fn changed_names_renew_the_serving_certificate_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pki_in(dir.path());
    let mut wider = identity();
    wider.dns_names.push("api.example.test".to_owned());
    let second = ClusterPki::load_or_create(dir.path(), &wider).expect("reload with new name");
    assert_eq!(first.ca_certificate_pem(), second.ca_certificate_pem());
    assert_ne!(
        first.serving().certificate_pem,
        second.serving().certificate_pem
    );
    assert_eq!(
        first.serving().key_pem,
        second.serving().key_pem,
        "the key is kept"
    );
    assert_eq!(first.admin(), second.admin());

    let verifier =
        WebPkiServerVerifier::builder_with_provider(roots(&second), tls::crypto_provider())
            .build()
            .expect("verifier");
    let name = ServerName::try_from("api.example.test").expect("server name");
    verifier
        .verify_server_cert(
            &leaf_der(second.serving()),
            &[],
            &name,
            &[],
            UnixTime::now(),
        )
        .expect("the new name is in the renewed certificate");
}

#[test]
fn half_a_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    pki_in(dir.path());
    std::fs::remove_file(dir.path().join(file_names::CA_KEY)).expect("remove ca.key");
    let err = ClusterPki::load_or_create(dir.path(), &identity()).expect_err("no CA key");
    assert!(matches!(err, PkiError::IncompleteCa { .. }), "{err}");
}

/// Writes an admin certificate (same key, same CA) that ends `days` from now.
fn replace_admin_certificate(dir: &Path, days: u64) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("read pki file");
    let ca_key = rcgen::KeyPair::from_pem(&read(file_names::CA_KEY)).expect("ca key");
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&read(file_names::CA_CERT), ca_key).expect("issuer");
    let admin_key = rcgen::KeyPair::from_pem(&read(file_names::ADMIN_KEY)).expect("admin key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:masters");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kubernetes-admin");
    params.use_authority_key_identifier_extension = true;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + now - Duration::from_hours(1);
    params.not_after = epoch + now + Duration::from_hours(24 * days);
    let pem = params.signed_by(&admin_key, &issuer).expect("sign").pem();
    std::fs::write(dir.join(file_names::ADMIN_CERT), &pem).expect("write admin.crt");
    pem
}

#[test]
fn certificates_close_to_their_end_are_renewed_on_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pki_in(dir.path());

    let lasting = replace_admin_certificate(dir.path(), 200);
    let kept = pki_in(dir.path());
    assert_eq!(kept.admin().certificate_pem, lasting, "200 days left: kept");

    let ending = replace_admin_certificate(dir.path(), 10);
    let renewed = pki_in(dir.path());
    assert_ne!(
        renewed.admin().certificate_pem,
        ending,
        "10 days left: renewed"
    );
    assert_eq!(
        renewed.admin().key_pem,
        first.admin().key_pem,
        "the key is kept"
    );
    assert_eq!(renewed.ca_certificate_pem(), first.ca_certificate_pem());
    let user = UserInfo::from_client_certificate(&leaf_der(renewed.admin()))
        .expect("parse")
        .expect("common name");
    assert_eq!(user.name, "kubernetes-admin");
}

#[test]
fn a_ca_key_of_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    pki_in(dir.path());
    let stranger = rcgen::KeyPair::generate().expect("key").serialize_pem();
    std::fs::write(dir.path().join(file_names::CA_KEY), stranger).expect("write ca.key");
    let err = ClusterPki::load_or_create(dir.path(), &identity()).expect_err("mismatched key");
    assert!(matches!(err, PkiError::CaKeyMismatch { .. }), "{err}");
}

#[test]
fn serving_certificate_verifies_for_its_names_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki_in(dir.path());
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(&pki), tls::crypto_provider())
        .build()
        .expect("verifier");
    let leaf = leaf_der(pki.serving());
    let verify = |name: &str| {
        let server_name = ServerName::try_from(name.to_owned()).expect("server name");
        verifier.verify_server_cert(&leaf, &[], &server_name, &[], UnixTime::now())
    };
    for name in [
        "localhost",
        "127.0.0.1",
        "10.96.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        verify(name).unwrap_or_else(|e| panic!("{name} must verify: {e}"));
    }
    for name in ["example.com", "127.0.0.2", "kubernetes.default.svc.cluster"] {
        let err = verify(name).expect_err(name);
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(_)),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn admin_and_node_certificates_name_their_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki_in(dir.path());
    let admin = UserInfo::from_client_certificate(&leaf_der(pki.admin()))
        .expect("parse admin certificate")
        .expect("admin certificate has a common name");
    assert_eq!(admin.name, "kubernetes-admin");
    assert_eq!(admin.groups, ["system:masters", "system:authenticated"]);
    let credential = &admin.extra["authentication.kubernetes.io/credential-id"];
    assert!(credential[0].starts_with("X509SHA256="), "{credential:?}");

    let node = pki
        .issue_client_certificate(
            "system:node:n1",
            &["system:nodes"],
            Duration::from_hours(24),
        )
        .expect("issue node certificate");
    let user = UserInfo::from_client_certificate(&leaf_der(&node))
        .expect("parse node certificate")
        .expect("common name");
    assert_eq!(user.name, "system:node:n1");
    assert_eq!(user.groups, ["system:nodes", "system:authenticated"]);
    assert_eq!(user.node_name(), Some("n1"));

    let two = pki
        .issue_client_certificate("alice", &["dev", "ops"], Duration::from_hours(1))
        .expect("two organizations");
    let alice = UserInfo::from_client_certificate(&leaf_der(&two))
        .expect("parse")
        .expect("common name");
    assert_eq!(alice.groups, ["dev", "ops", "system:authenticated"]);
    let err = pki
        .issue_client_certificate("bob", &["a", "b", "c"], Duration::from_hours(1))
        .expect_err("three organizations");
    assert!(
        matches!(err, PkiError::TooManyOrganizations { count: 3 }),
        "{err}"
    );
}

#[test]
fn sign_csr_keeps_the_requested_subject_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki_in(dir.path());
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "system:node:n2");
    let csr = params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("csr pem");

    let cert_pem = pki
        .sign_csr(
            &csr,
            &["digital signature", "client auth"],
            Duration::from_hours(24),
        )
        .expect("sign csr");
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("cert pem");
    let user = UserInfo::from_client_certificate(&der)
        .expect("parse")
        .expect("common name");
    assert_eq!(user.name, "system:node:n2");
    assert_eq!(user.groups, ["system:nodes", "system:authenticated"]);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
    assert_eq!(
        cert.public_key().raw,
        key.subject_public_key_info().as_slice()
    );
    let eku = cert
        .extended_key_usage()
        .expect("eku extension")
        .expect("eku present")
        .value;
    assert!(eku.client_auth && !eku.server_auth);
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert!(
        (24 * 3600..=24 * 3600 + 600).contains(&lifetime),
        "a day, backdated a little: {lifetime}"
    );

    let err = pki
        .sign_csr(&csr, &["cert sign"], Duration::from_hours(1))
        .expect_err("no CA certificates");
    assert!(matches!(err, PkiError::UnsupportedUsage { .. }), "{err}");
    // The same request claiming another node: the signature no longer matches.
    let tampered = tamper(&csr, b"system:node:n2", b"system:node:n3");
    let err = pki
        .sign_csr(&tampered, &["client auth"], Duration::from_hours(1))
        .expect_err("tampered request");
    assert!(matches!(err, PkiError::VerifyCsr(_)), "{err}");
}

/// Replaces `from` by `to` (same length) in the DER of a PEM text.
fn tamper(pem: &str, from: &[u8], to: &[u8]) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut der = STANDARD.decode(body).expect("base64");
    let at = der
        .windows(from.len())
        .position(|w| w == from)
        .expect("subject in request");
    der[at..at + to.len()].copy_from_slice(to);
    let encoded = STANDARD.encode(der);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        lines.join("\n")
    )
}

// ----- TLS handshakes -------------------------------------------------------------------

/// What the server saw of one connection.
#[derive(Debug)]
enum ServerSaw {
    /// The handshake completed; the user of the client certificate, if any.
    Connected(Option<UserInfo>),
    /// The handshake failed.
    Failed(String),
}

/// Runs one connection between the API server's TLS config and a client config.
async fn handshake(pki: &ClusterPki, client: ClientConfig) -> (ServerSaw, Result<String, String>) {
    let acceptor = TlsAcceptor::from(Arc::new(pki.server_config().expect("server config")));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        match acceptor.accept(tcp).await {
            Ok(mut tls) => {
                let (_, conn) = tls.get_ref();
                let user = conn.peer_certificates().and_then(|chain| {
                    UserInfo::from_client_certificate(&chain[0])
                        .expect("verified certificate parses")
                });
                assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]), "h2 is preferred");
                let _ = tls.write_all(b"hello").await;
                let _ = tls.shutdown().await;
                ServerSaw::Connected(user)
            }
            Err(e) => ServerSaw::Failed(e.to_string()),
        }
    });
    let connector = TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    let client_result = async {
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut received = String::new();
        tls.read_to_string(&mut received)
            .await
            .map_err(|e| e.to_string())?;
        Ok(received)
    }
    .await;
    let saw = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server finishes")
        .expect("server task");
    (saw, client_result)
}

fn client_config(pki: &ClusterPki, identity: Option<&IssuedCertificate>) -> ClientConfig {
    let builder = ClientConfig::builder_with_provider(tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots(pki));
    let mut config = match identity {
        Some(cert) => {
            let chain = CertificateDer::pem_slice_iter(cert.certificate_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("chain");
            let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

#[tokio::test]
async fn admin_certificate_handshake_identifies_the_admin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki_in(dir.path());
    let (saw, client) = handshake(&pki, client_config(&pki, Some(pki.admin()))).await;
    assert_eq!(client.as_deref(), Ok("hello"));
    let ServerSaw::Connected(Some(user)) = saw else {
        panic!("expected a verified client certificate, got {saw:?}");
    };
    assert_eq!(user.name, "kubernetes-admin");
    assert_eq!(user.groups, ["system:masters", "system:authenticated"]);
    assert_eq!(user.uid, "");
    assert_eq!(
        user.extra.keys().collect::<Vec<_>>(),
        [&"authentication.kubernetes.io/credential-id".to_owned()]
    );
}

#[tokio::test]
async fn client_without_certificate_connects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki_in(dir.path());
    let (saw, client) = handshake(&pki, client_config(&pki, None)).await;
    assert_eq!(client.as_deref(), Ok("hello"));
    assert!(matches!(saw, ServerSaw::Connected(None)), "{saw:?}");
}

#[tokio::test]
async fn client_certificate_of_another_ca_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki_in(dir.path());
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = pki_in(other_dir.path());
    let (saw, client) = handshake(&pki, client_config(&pki, Some(other.admin()))).await;
    assert!(matches!(saw, ServerSaw::Failed(_)), "{saw:?}");
    assert!(
        client.is_err(),
        "the client sees the handshake fail: {client:?}"
    );
}

#[tokio::test]
async fn serving_certificate_is_no_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki_in(dir.path());
    let (saw, client) = handshake(&pki, client_config(&pki, Some(pki.serving()))).await;
    assert!(
        matches!(&saw, ServerSaw::Failed(e) if e.contains("ExtendedKeyUsage") || e.contains("usage") || e.contains("Usage")),
        "server-auth only certificates cannot authenticate clients: {saw:?}"
    );
    assert!(client.is_err());
}

#[test]
fn user_info_round_trips_json() {
    // UserInfo is what TokenReview and SubjectAccessReview carry: it must round-trip JSON.
    let user = UserInfo {
        name: "system:node:n1".into(),
        uid: String::new(),
        groups: vec!["system:nodes".into(), "system:authenticated".into()],
        extra: BTreeMap::from([("k".to_owned(), vec!["v".to_owned()])]),
    };
    let json = serde_json::to_string(&user).expect("serialize");
    let back: UserInfo = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, user);
}

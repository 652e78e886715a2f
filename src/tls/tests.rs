//! End-to-end tests: certificates come from rcgen, handshakes run in memory
//! by pumping bytes between a ClientConnection and a ServerConnection.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ClientSessionMemoryCache;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, RootCertStore,
    ServerConnection, SignatureScheme,
};

use crate::tls::*;

// ---------------------------------------------------------------- fixtures

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Leaf {
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.der.clone()]
    }
    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap()
    }
}

/// `dn` is written in ASN.1 order (most general first).
fn leaf(ca: &Ca, sans: &[&str], dn: &[(DnType, &str)], expired: bool) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (t, v) in dn {
        params.distinguished_name.push(t.clone(), *v);
    }
    if expired {
        params.not_before = date_time_ymd(2019, 1, 1);
        params.not_after = date_time_ymd(2020, 1, 1);
    }
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

struct Pki {
    ca: Ca,
    example: Leaf,
    api: Leaf,
    wild: Leaf,
    alice: Leaf,
    expired_client: Leaf,
    stranger: Leaf,
    files: HashMap<PathBuf, Vec<u8>>,
}

fn pki() -> Pki {
    let ca = new_ca("Test Root");
    let other = new_ca("Other Root");
    let example = leaf(
        &ca,
        &["example.com"],
        &[(DnType::CommonName, "example")],
        false,
    );
    let api = leaf(&ca, &["api.example.com"], &[], false);
    let wild = leaf(&ca, &["*.wild.example.com"], &[], false);
    let client_dn = [
        (DnType::OrganizationName, "Example Corp"),
        (DnType::CommonName, "alice"),
    ];
    let alice = leaf(&ca, &[], &client_dn, false);
    let expired_client = leaf(&ca, &[], &[(DnType::CommonName, "old")], true);
    let stranger = leaf(&other, &[], &[(DnType::CommonName, "mallory")], false);
    let expired_server = leaf(&ca, &["old.example.com"], &[], true);
    let mut files = HashMap::new();
    let mut put = |name: &str, data: &str| {
        files.insert(PathBuf::from(name), data.as_bytes().to_vec());
    };
    put("ca.pem", &ca.pem);
    put("empty.pem", "");
    for (name, l) in [
        ("example", &example),
        ("api", &api),
        ("wild", &wild),
        ("expired", &expired_server),
    ] {
        put(&format!("{name}.crt"), &l.cert_pem);
        put(&format!("{name}.key"), &l.key_pem);
    }
    put("two.key", &format!("{}{}", example.key_pem, api.key_pem));
    // An EC key relabelled as PKCS#1 RSA: parses as PEM, but no signer takes it.
    put(
        "bogus.key",
        &example.key_pem.replace("PRIVATE KEY", "RSA PRIVATE KEY"),
    );
    Pki {
        ca,
        example,
        api,
        wild,
        alice,
        expired_client,
        stranger,
        files,
    }
}

impl Pki {
    fn reader(&self) -> impl FnMut(&Path) -> Result<Vec<u8>, String> + '_ {
        |p: &Path| {
            self.files
                .get(p)
                .cloned()
                .ok_or_else(|| format!("{}: No such file or directory", p.display()))
        }
    }

    fn server(&self, spec: &ServerSpec) -> Arc<rustls::ServerConfig> {
        build_server_config(spec, &mut self.reader()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn errors(&self, spec: &ServerSpec) -> Vec<TlsConfigError> {
        match build_server_config(spec, &mut self.reader()) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e,
        }
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca.pem.as_bytes()).unwrap())
            .unwrap();
        Arc::new(roots)
    }
}

fn pair(name: &str) -> CertPair {
    CertPair {
        cert: format!("{name}.crt").into(),
        key: format!("{name}.key").into(),
    }
}

fn spec(names: &[&str]) -> ServerSpec {
    ServerSpec {
        certificates: names.iter().map(|n| pair(n)).collect(),
        min_version: MinVersion::Tls12,
        alpn: vec!["http/1.1".into()],
        client_auth: None,
        resumption: true,
    }
}

fn mtls(names: &[&str], required: bool) -> ServerSpec {
    ServerSpec {
        client_auth: Some(ClientAuthSpec {
            ca: "ca.pem".into(),
            required,
        }),
        ..spec(names)
    }
}

// ------------------------------------------------------------- handshakes

/// Accepts any server certificate: the SNI tests only look at which
/// certificate was presented, not whether it fits the name.
#[derive(Debug)]
struct AcceptAll;

impl ServerCertVerifier for AcceptAll {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn client_builder(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
}

fn any_server_client() -> Arc<ClientConfig> {
    let mut cfg = client_builder(rustls::ALL_VERSIONS)
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAll))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// Client that verifies against the test CA and presents `cert` if given.
fn mtls_client(pki: &Pki, cert: Option<&Leaf>) -> Arc<ClientConfig> {
    let b = client_builder(rustls::ALL_VERSIONS).with_root_certificates(pki.roots());
    Arc::new(match cert {
        Some(l) => b.with_client_auth_cert(l.chain(), l.key()).unwrap(),
        None => b.with_no_client_auth(),
    })
}

#[derive(Debug, Default)]
struct Outcome {
    client: Option<rustls::Error>,
    server: Option<rustls::Error>,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.client.is_none() && self.server.is_none()
    }
    fn server_reason(&self) -> &'static str {
        handshake_failure_reason(self.server.as_ref().expect("server error"))
    }
}

/// Moves everything `from` wants to send into `to`; returns false once `to`
/// has failed (its error is stored in `err`).
fn transfer(
    from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
    to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
    err: &mut Option<rustls::Error>,
) {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rd = &buf[..];
    while err.is_none() && !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
        if let Err(e) = to.process_new_packets() {
            *err = Some(e);
        }
    }
}

fn pump(c: &mut ClientConnection, s: &mut ServerConnection) -> Outcome {
    let mut out = Outcome::default();
    for _ in 0..20 {
        transfer(c, s, &mut out.server);
        transfer(s, c, &mut out.client);
        let idle = !c.wants_write() && !s.wants_write();
        if idle {
            break;
        }
    }
    if out.ok() {
        assert!(!c.is_handshaking() && !s.is_handshaking(), "stalled");
    }
    out
}

fn connect(
    client: &Arc<ClientConfig>,
    server: &Arc<rustls::ServerConfig>,
    name: &str,
) -> (ClientConnection, ServerConnection, Outcome) {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut c = ClientConnection::new(Arc::clone(client), name).unwrap();
    let mut s = ServerConnection::new(Arc::clone(server)).unwrap();
    let out = pump(&mut c, &mut s);
    (c, s, out)
}

fn presented(
    client: &Arc<ClientConfig>,
    server: &Arc<rustls::ServerConfig>,
    name: &str,
) -> Vec<u8> {
    let (c, _, out) = connect(client, server, name);
    assert!(out.ok(), "{name}: {out:?}");
    c.peer_certificates().unwrap()[0].to_vec()
}

// ------------------------------------------------------------------ tests

#[test]
fn sni_selection() {
    let pki = pki();
    let server = pki.server(&spec(&["example", "api", "wild"]));
    let client = any_server_client();
    let cases: [(&str, &Leaf); 6] = [
        ("api.example.com", &pki.api),
        ("EXAMPLE.com", &pki.example),
        ("x.wild.example.com", &pki.wild),
        ("a.b.wild.example.com", &pki.example),
        ("unknown.test", &pki.example),
        ("127.0.0.1", &pki.example), // IP: the client sends no SNI
    ];
    for (name, want) in cases {
        assert_eq!(
            presented(&client, &server, name),
            want.der.to_vec(),
            "{name}"
        );
    }
}

#[test]
fn cn_fallback_when_no_san() {
    let pki = pki();
    let mut files = pki.files.clone();
    let cn_only = leaf(&pki.ca, &[], &[(DnType::CommonName, "Legacy.Test")], false);
    files.insert("cn.crt".into(), cn_only.cert_pem.clone().into_bytes());
    files.insert("cn.key".into(), cn_only.key_pem.clone().into_bytes());
    let mut read = |p: &Path| files.get(p).cloned().ok_or_else(|| "missing".to_string());
    let server = build_server_config(&spec(&["example", "cn"]), &mut read).unwrap();
    let got = presented(&any_server_client(), &server, "legacy.test");
    assert_eq!(got, cn_only.der.to_vec());
}

#[test]
fn alpn_negotiated() {
    let pki = pki();
    let server = pki.server(&spec(&["example"]));
    let (c, s, out) = connect(&any_server_client(), &server, "example.com");
    assert!(out.ok(), "{out:?}");
    assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(s.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[test]
fn min_version_tls13_rejects_tls12_client() {
    let pki = pki();
    let mut sp = spec(&["example"]);
    let client12 = Arc::new(
        client_builder(&[&rustls::version::TLS12])
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAll))
            .with_no_client_auth(),
    );
    // Sanity: the same client works against a TLS 1.2+ listener.
    let server = pki.server(&sp);
    let (c, _, out) = connect(&client12, &server, "example.com");
    assert!(out.ok(), "{out:?}");
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));

    sp.min_version = MinVersion::Tls13;
    let server = pki.server(&sp);
    let (_, _, out) = connect(&client12, &server, "example.com");
    assert_eq!(out.server_reason(), "protocol_version");
    assert_eq!(
        handshake_failure_reason(out.client.as_ref().unwrap()),
        "alert_received"
    );
}

#[test]
fn mtls_required() {
    let pki = pki();
    let server = pki.server(&mtls(&["api"], true));

    let (_, s, out) = connect(
        &mtls_client(&pki, Some(&pki.alice)),
        &server,
        "api.example.com",
    );
    assert!(out.ok(), "{out:?}");
    assert_eq!(
        client_subject(&s).as_deref(),
        Some("CN=alice,O=Example Corp")
    );

    let cases = [
        (Some(&pki.expired_client), "cert_expired"),
        (Some(&pki.stranger), "unknown_ca"),
        (None, "no_client_cert"),
    ];
    for (cert, reason) in cases {
        let (_, _, out) = connect(&mtls_client(&pki, cert), &server, "api.example.com");
        assert_eq!(out.server_reason(), reason, "{out:?}");
    }
}

#[test]
fn mtls_optional() {
    let pki = pki();
    let server = pki.server(&mtls(&["api"], false));
    let (_, s, out) = connect(&mtls_client(&pki, None), &server, "api.example.com");
    assert!(out.ok(), "{out:?}");
    assert_eq!(client_subject(&s), None);
    // A presented certificate must still verify.
    let (_, s, out) = connect(
        &mtls_client(&pki, Some(&pki.alice)),
        &server,
        "api.example.com",
    );
    assert!(out.ok(), "{out:?}");
    assert!(client_subject(&s).unwrap().starts_with("CN=alice"));
    let (_, _, out) = connect(
        &mtls_client(&pki, Some(&pki.stranger)),
        &server,
        "api.example.com",
    );
    assert_eq!(out.server_reason(), "unknown_ca");
}

#[test]
fn subject_is_header_safe() {
    let pki = pki();
    let evil = leaf(
        &pki.ca,
        &[],
        &[
            (DnType::OrganizationName, "A, B+C"),
            (DnType::CommonName, "bob\r\nX-Admin: 1\0"),
        ],
        false,
    );
    let server = pki.server(&mtls(&["api"], true));
    let (_, s, out) = connect(&mtls_client(&pki, Some(&evil)), &server, "api.example.com");
    assert!(out.ok(), "{out:?}");
    let dn = client_subject(&s).unwrap();
    assert_eq!(dn, "CN=bob\\0D\\0AX-Admin: 1\\00,O=A\\, B\\+C");
    assert!(dn.bytes().all(|b| (0x20..0x7f).contains(&b)));
}

#[test]
fn key_mismatch_detected() {
    let pki = pki();
    let sp = ServerSpec {
        certificates: vec![CertPair {
            cert: "example.crt".into(),
            key: "api.key".into(),
        }],
        ..spec(&[])
    };
    let errs = pki.errors(&sp);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].field, "certificates[0].key");
    assert!(errs[0].message.contains("does not match"), "{errs:?}");
}

#[test]
fn all_errors_collected() {
    let pki = pki();
    let sp = ServerSpec {
        certificates: vec![
            CertPair {
                cert: "example.crt".into(),
                key: "api.key".into(),
            },
            pair("expired"),
            CertPair {
                cert: "nope.crt".into(),
                key: "two.key".into(),
            },
            CertPair {
                cert: "empty.pem".into(),
                key: "bogus.key".into(),
            },
            CertPair {
                cert: "api.crt".into(),
                key: "empty.pem".into(),
            },
        ],
        min_version: MinVersion::Tls12,
        alpn: vec![String::new(), "x".repeat(256), "http/1.1".into()],
        client_auth: Some(ClientAuthSpec {
            ca: "empty.pem".into(),
            required: true,
        }),
        resumption: true,
    };
    let errs = pki.errors(&sp);
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "certificates[0].key",
            "certificates[1].cert",
            "certificates[2].cert",
            "certificates[2].key",
            "certificates[3].cert",
            "certificates[3].key",
            "certificates[4].key",
            "alpn[0]",
            "alpn[1]",
            "client_auth.ca",
        ],
        "{errs:#?}"
    );
    let msg = |i: usize| errs[i].message.as_str();
    assert!(msg(1).contains("expired") && msg(1).contains("expired.crt"));
    assert!(msg(2).contains("nope.crt"));
    assert!(msg(3).contains("2 private keys"));
    assert!(msg(4).contains("no certificate"));
    assert!(msg(5).contains("unsupported private key"));
    assert!(msg(6).contains("no private key"));
    assert!(msg(9).contains("empty.pem"));

    let empty = ServerSpec {
        certificates: vec![],
        ..spec(&[])
    };
    assert_eq!(pki.errors(&empty)[0].field, "certificates");
    let no_ca = mtls(&["api"], true);
    let mut files = pki.files.clone();
    files.remove(Path::new("ca.pem"));
    let mut read = |p: &Path| files.get(p).cloned().ok_or_else(|| p.display().to_string());
    let errs = build_server_config(&no_ca, &mut read).unwrap_err();
    assert_eq!(
        errs,
        [TlsConfigError {
            field: "client_auth.ca".into(),
            message: "ca.pem".into()
        }]
    );
}

#[test]
fn read_pem_file_rules() {
    let dir = std::env::temp_dir().join(format!("ringway-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let missing = dir.join("missing.pem");
    let err = read_pem_file(&missing).unwrap_err();
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("No such file"), "{err}");

    let start = Instant::now();
    let err = read_pem_file(Path::new("/dev/zero")).unwrap_err();
    assert!(err.contains("not a regular file"), "{err}");
    assert!(err.contains("/dev/zero"), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    let err = read_pem_file(&dir).unwrap_err();
    assert!(err.contains("not a regular file"), "{err}");

    // A FIFO without writer must not block the open.
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.map(|s| s.success()).unwrap_or(false) {
        let err = read_pem_file(&fifo).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }
    assert!(start.elapsed() < Duration::from_secs(2));

    let big = dir.join("big.pem");
    std::fs::write(&big, vec![b'a'; 1024 * 1024 + 1]).unwrap();
    assert!(read_pem_file(&big).unwrap_err().contains("larger than"));
    let ok = dir.join("ok.pem");
    std::fs::write(&ok, b"hello").unwrap();
    assert_eq!(read_pem_file(&ok).unwrap(), b"hello");

    // Production wiring: missing files surface with their path.
    let sp = ServerSpec {
        certificates: vec![CertPair {
            cert: dir.join("none.crt"),
            key: dir.join("none.key"),
        }],
        ..spec(&[])
    };
    let errs = build_server_config(&sp, &mut read_pem_file).unwrap_err();
    assert_eq!(errs.len(), 2);
    assert!(errs[0].message.contains("none.crt"));
    assert!(errs[1].message.contains("none.key"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn client_config_verifies_backend() {
    let pki = pki();
    let server = pki.server(&spec(&["api"]));
    let client = build_client_config(Path::new("ca.pem"), &mut pki.reader()).unwrap();
    assert_eq!(client.alpn_protocols, [b"http/1.1".to_vec()]);

    let name = server_name("api.example.com").unwrap();
    let mut c = ClientConnection::new(Arc::clone(&client), name).unwrap();
    let mut s = ServerConnection::new(Arc::clone(&server)).unwrap();
    let out = pump(&mut c, &mut s);
    assert!(out.ok(), "{out:?}");
    assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));

    let (_, _, out) = connect(&client, &server, "wrong.test");
    let err = out.client.as_ref().expect("client must reject");
    assert_eq!(handshake_failure_reason(err), "bad_certificate");

    // Backend with a certificate from another CA.
    let other = new_ca("Elsewhere");
    let foreign = leaf(&other, &["api.example.com"], &[], false);
    let mut files = pki.files.clone();
    files.insert("f.crt".into(), foreign.cert_pem.into_bytes());
    files.insert("f.key".into(), foreign.key_pem.into_bytes());
    let mut read = |p: &Path| files.get(p).cloned().ok_or_else(|| "missing".to_string());
    let server = build_server_config(&spec(&["f"]), &mut read).unwrap();
    // Fresh client: the first one holds a ticket for api.example.com, and the
    // process-wide ticketer would let it resume without any certificate.
    let client = build_client_config(Path::new("ca.pem"), &mut pki.reader()).unwrap();
    let (_, _, out) = connect(&client, &server, "api.example.com");
    assert_eq!(
        handshake_failure_reason(out.client.as_ref().unwrap()),
        "unknown_ca"
    );

    let errs = build_client_config(Path::new("missing.pem"), &mut pki.reader()).unwrap_err();
    assert_eq!(errs[0].field, "ca");
    let errs = build_client_config(Path::new("api.key"), &mut pki.reader()).unwrap_err();
    assert!(errs[0].message.contains("no certificate"), "{errs:?}");
}

#[test]
fn server_name_validation() {
    assert!(matches!(
        server_name("backend.internal"),
        Ok(ServerName::DnsName(_))
    ));
    assert!(matches!(
        server_name("10.0.0.1"),
        Ok(ServerName::IpAddress(_))
    ));
    assert!(matches!(server_name("::1"), Ok(ServerName::IpAddress(_))));
    for bad in ["", "has space", "a/b", "a..b", "-", "x:y"] {
        let err = server_name(bad).unwrap_err();
        assert!(err.contains("valid DNS name"), "{bad}: {err}");
    }
}

#[test]
fn resumption_survives_reload() {
    let pki = pki();
    let sp = spec(&["example", "api"]);
    let first = pki.server(&sp);
    let reloaded = pki.server(&sp);
    let client = build_client_config(Path::new("ca.pem"), &mut pki.reader()).unwrap();

    let (c, _, out) = connect(&client, &first, "api.example.com");
    assert!(out.ok(), "{out:?}");
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
    let (c, _, out) = connect(&client, &first, "api.example.com");
    assert!(out.ok(), "{out:?}");
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Resumed));
    let (c, _, out) = connect(&client, &reloaded, "api.example.com");
    assert!(out.ok(), "{out:?}");
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Resumed));
}

#[test]
fn resumption_can_be_turned_off() {
    let pki = pki();
    let sp = ServerSpec {
        resumption: false,
        ..spec(&["example", "api"])
    };
    let server = pki.server(&sp);
    let client = build_client_config(Path::new("ca.pem"), &mut pki.reader()).unwrap();
    for _ in 0..2 {
        let (c, _, out) = connect(&client, &server, "api.example.com");
        assert!(out.ok(), "{out:?}");
        assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
    }
}

#[test]
fn tls12_resumption_survives_reload() {
    let pki = pki();
    let sp = spec(&["api"]);
    let mut cfg = client_builder(&[&rustls::version::TLS12])
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    cfg.resumption = rustls::client::Resumption::store(Arc::new(ClientSessionMemoryCache::new(8)));
    let client = Arc::new(cfg);
    let (c, _, out) = connect(&client, &pki.server(&sp), "api.example.com");
    assert!(out.ok(), "{out:?}");
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
    let (c, _, out) = connect(&client, &pki.server(&sp), "api.example.com");
    assert!(out.ok(), "{out:?}");
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Resumed));
}

#[test]
fn ticketer_is_shared() {
    assert!(Arc::ptr_eq(&ticketer(), &ticketer()));
    assert!(ticketer().enabled());
}

#[test]
fn failure_reasons_are_known_labels() {
    use rustls::{AlertDescription, CertificateError, Error, PeerIncompatible};
    let cases = [
        (
            Error::InvalidCertificate(CertificateError::Expired),
            "cert_expired",
        ),
        (
            Error::InvalidCertificate(CertificateError::NotValidYet),
            "cert_not_yet_valid",
        ),
        (
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
            "unknown_ca",
        ),
        (
            Error::InvalidCertificate(CertificateError::BadSignature),
            "bad_certificate",
        ),
        (Error::NoCertificatesPresented, "no_client_cert"),
        (
            Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon),
            "no_shared_cipher",
        ),
        (
            Error::PeerIncompatible(PeerIncompatible::NullCompressionRequired),
            "incompatible",
        ),
        (
            Error::AlertReceived(AlertDescription::HandshakeFailure),
            "alert_received",
        ),
        (
            Error::InvalidMessage(rustls::InvalidMessage::MessageTooShort),
            "peer_misbehaved",
        ),
        (
            Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
            "not_tls",
        ),
        (Error::DecryptError, "decrypt_error"),
        (Error::NoApplicationProtocol, "no_alpn"),
        (Error::General("x".into()), "other"),
    ];
    for (err, want) in cases {
        let got = handshake_failure_reason(&err);
        assert_eq!(got, want, "{err:?}");
        assert!(HANDSHAKE_FAILURE_REASONS.contains(&got));
    }
}

#[test]
fn mtls_resumption_keeps_subject() {
    let pki = pki();
    let sp = mtls(&["api"], true);
    let client = mtls_client(&pki, Some(&pki.alice));
    let (c, _, out) = connect(&client, &pki.server(&sp), "api.example.com");
    assert!(out.ok(), "{out:?}");
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
    // Resumed against a reloaded config: the subject comes from the ticket.
    let (c, s, out) = connect(&client, &pki.server(&sp), "api.example.com");
    assert!(out.ok(), "{out:?}");
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Resumed));
    assert_eq!(
        client_subject(&s).as_deref(),
        Some("CN=alice,O=Example Corp")
    );
}

#[test]
fn tickets_do_not_cross_client_auth_policies() {
    let pki = pki();
    // Same certificate and SNI on both listeners; only client auth differs.
    let open = pki.server(&spec(&["api"]));
    let guarded = pki.server(&mtls(&["api"], true));
    let optional = pki.server(&mtls(&["api"], false));
    let client = mtls_client(&pki, None);
    let (_, _, out) = connect(&client, &open, "api.example.com");
    assert!(out.ok(), "{out:?}");
    // Resuming the open listener's ticket must not skip the certificate.
    let (_, _, out) = connect(&client, &guarded, "api.example.com");
    assert_eq!(out.server_reason(), "no_client_cert");
    let (c, _, out) = connect(&client, &optional, "api.example.com");
    assert!(out.ok(), "{out:?}");
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));

    // A reload that changes the CA bundle invalidates earlier tickets too.
    let alice = mtls_client(&pki, Some(&pki.alice));
    let (_, _, out) = connect(&alice, &guarded, "api.example.com");
    assert!(out.ok(), "{out:?}");
    let mut files = pki.files.clone();
    let extra = new_ca("Second Root");
    let bundle = format!("{}{}", pki.ca.pem, extra.pem);
    files.insert("ca.pem".into(), bundle.into_bytes());
    let mut read = |p: &Path| files.get(p).cloned().ok_or_else(|| "missing".to_string());
    let changed = build_server_config(&mtls(&["api"], true), &mut read).unwrap();
    let (c, _, out) = connect(&alice, &changed, "api.example.com");
    assert!(out.ok(), "{out:?}");
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
}

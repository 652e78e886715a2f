//! Certificates generated per test run (a CA, server and client certificates, written as
//! PEM files the proxy's config points at) and a blocking TLS HTTP client.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use super::http_backend::{read_response_from, Response};

const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A certificate and key on disk, and the certificate's DER for comparing.
#[derive(Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
    pub key_der: Vec<u8>,
}

impl CertFiles {
    /// The chain and key as rustls takes them (for test servers and clients).
    pub fn rustls_pair(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        (vec![CertificateDer::from(self.der.clone())], key)
    }
}

/// A certificate authority that signs the test's certificates, with its files in `dir`.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    ca_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// A new CA called `name` writing into `dir`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        let ca = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca, cert.pem()).unwrap();
        Pki {
            dir: dir.to_path_buf(),
            ca,
            ca_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (DNS names or IP literals), saved as
    /// `<file>.pem` and `<file>.key`.
    pub fn server(&self, file: &str, names: &[&str]) -> CertFiles {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(file, params)
    }

    /// A client certificate with subject `CN=<cn>,O=ringway tests`; `expired` makes it
    /// one that stopped being valid a year ago.
    pub fn client(&self, file: &str, cn: &str, expired: bool) -> CertFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationName, "ringway tests");
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        self.sign(file, params)
    }

    fn sign(&self, file: &str, params: CertificateParams) -> CertFiles {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        CertFiles {
            cert: cert_path,
            key: key_path,
            der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }

    /// A client configuration trusting this CA, offering `http/1.1`, presenting
    /// `identity` when given.
    pub fn client_config(&self, identity: Option<&CertFiles>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca_der.clone()))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            Some(id) => {
                let (chain, key) = id.rustls_pair();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A server configuration presenting `cert` (for TLS backends).
    pub fn server_config(&self, cert: &CertFiles) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (chain, key) = cert.rustls_pair();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }
}

/// A blocking TLS connection, handshake done.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connect to `addr` and complete a handshake naming `sni` (a DNS name, or an IP literal
/// to send no SNI).
pub fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    sni: &str,
) -> io::Result<TlsStream> {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let name = ServerName::try_from(sni.to_string()).map_err(io::Error::other)?;
    let conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The leaf certificate the server presented.
pub fn peer_leaf(stream: &TlsStream) -> Vec<u8> {
    stream
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default()
}

/// A keep-alive HTTP/1.1 client over TLS.
pub struct TlsClient {
    pub stream: TlsStream,
    buf: Vec<u8>,
}

impl TlsClient {
    pub fn new(stream: TlsStream) -> TlsClient {
        TlsClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// Write `bytes` as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write over TLS");
        self.stream.flush().expect("flush TLS");
    }

    /// `GET target` with Host `host`, then read the response.
    pub fn get(&mut self, host: &str, target: &str) -> Response {
        self.send_raw(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        self.read_response(false)
    }

    pub fn read_response(&mut self, head_request: bool) -> Response {
        self.try_read_response(head_request)
            .unwrap_or_else(|e| panic!("reading response over TLS: {e}"))
    }

    pub fn try_read_response(&mut self, head_request: bool) -> io::Result<Response> {
        read_response_from(&mut self.stream, &mut self.buf, head_request)
    }

    /// Read until the server closes (close_notify or end of stream), or `limit` passes;
    /// true when it closed.
    pub fn is_closed_within(&mut self, limit: Duration) -> bool {
        self.stream.sock.set_read_timeout(Some(limit)).unwrap();
        let mut block = [0u8; 4096];
        let closed = loop {
            match self.stream.read(&mut block) {
                Ok(0) => break true,
                Ok(n) => self.buf.extend_from_slice(&block[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => break false,
                Err(_) => break true,
            }
        };
        self.stream.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        closed
    }
}

impl TlsClient {
    /// Bytes read past the last response (e.g. data right after a 101).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// A certificate verifier that accepts any certificate, so a test can see which one a
/// server presents for a name the certificate does not carry. Signatures are still
/// checked.
#[derive(Debug)]
pub struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

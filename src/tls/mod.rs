//! TLS configuration: builds rustls server configs (listeners) and client
//! configs (pools talking TLS to their backends) from PEM files named in the
//! config, and offers the small helpers the proxy needs around handshakes
//! (peer subject for headers, failure reasons for metrics).
//!
//! Everything here uses the ring crypto provider explicitly, so nothing depends
//! on which process-wide default provider (if any) was installed.

mod certinfo;
mod resolver;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, Error, InconsistentKeys, PeerIncompatible, RootCertStore,
    SupportedProtocolVersion,
};

use crate::tls::resolver::SniResolver;

/// Largest PEM file we accept. Real chains are a few KiB; the cap stops a
/// mistyped path (a log file, a disk image) from being slurped into memory.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Server-side session-ID cache entries (TLS 1.2 resumption without tickets).
const SESSION_CACHE_SIZE: usize = 4096;

/// A certificate chain file and its private key file, as written in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// PEM file holding the leaf certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM file holding exactly one private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Lowest TLS protocol version a listener accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinVersion {
    /// TLS 1.2 and TLS 1.3.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// mTLS: verify client certificates against the CA bundle in `ca`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuthSpec {
    /// PEM bundle of the CAs that may issue client certificates.
    pub ca: PathBuf,
    /// When false, clients without a certificate are let in too (but a
    /// certificate that is presented must still verify).
    pub required: bool,
}

/// A listener's `tls: (...)` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// Certificates to serve; the first one is the default for unknown or
    /// missing SNI.
    pub certificates: Vec<CertPair>,
    /// Lowest protocol version accepted.
    pub min_version: MinVersion,
    /// ALPN protocol names in order of preference (e.g. `"http/1.1"`).
    pub alpn: Vec<String>,
    /// Client certificate verification, if any.
    pub client_auth: Option<ClientAuthSpec>,
    /// Session resumption (tickets and a session cache); on unless turned off, e.g.
    /// to measure full handshakes.
    pub resumption: bool,
}

/// One problem, `field` relative to the `tls` block, e.g. `"certificates[1].key"`,
/// `"client_auth.ca"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfigError {
    /// Path of the offending field inside the `tls` block.
    pub field: String,
    /// Human-readable description, naming the file where one is involved.
    pub message: String,
}

impl TlsConfigError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Reads a PEM file for the config builders.
///
/// The file must be a regular file (FIFOs and devices such as `/dev/zero` are
/// refused without reading) of at most 1 MiB. Error messages start with the
/// path, followed by the io error or the rule broken.
pub fn read_pem_file(path: &Path) -> Result<Vec<u8>, String> {
    let fail = |what: &str| format!("{}: {what}", path.display());
    // O_NONBLOCK: opening a FIFO without a writer would otherwise hang the
    // (re)load forever. It has no effect on regular files. Checking the type
    // on the opened descriptor (not a prior stat) leaves no race window.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| fail(&e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(&e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file"));
    }
    if meta.len() > MAX_PEM_BYTES {
        return Err(fail(&format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    read_capped(file).map_err(|e| fail(&e))
}

/// Reads at most `MAX_PEM_BYTES`, failing (rather than truncating) if the
/// file grew past the limit after it was stat'ed.
fn read_capped(file: File) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    if buf.len() as u64 > MAX_PEM_BYTES {
        return Err(format!("larger than {MAX_PEM_BYTES} bytes"));
    }
    Ok(buf)
}

/// Builds the server config for a listener.
///
/// `read` returns file contents (tests pass an in-memory map, production
/// passes [`read_pem_file`]); its error message is reported as is, so it
/// should name the path. Every problem is collected, not just the first:
/// unreadable files, missing/extra/unsupported keys, keys not matching their
/// certificate, certificates outside their validity period, bad ALPN names,
/// unusable CA bundles.
///
/// The config serves TLS 1.2+1.3 (or 1.3 only), picks the certificate by SNI
/// (exact name, then `*.` wildcard, then the first pair), offers `alpn` in
/// order, verifies client certificates when `client_auth` is set, and resumes
/// sessions through a server-side cache and tickets from [`ticketer`].
/// Tickets are bound to the client-auth policy (required flag + CA bundle):
/// they survive reloads that keep it, but never let a client resume into a
/// listener with a stricter (or different) policy without its certificate
/// being checked.
pub fn build_server_config(
    spec: &ServerSpec,
    read: &mut dyn FnMut(&Path) -> Result<Vec<u8>, String>,
) -> Result<Arc<rustls::ServerConfig>, Vec<TlsConfigError>> {
    let provider = provider();
    let mut errors = Vec::new();

    if spec.certificates.is_empty() {
        errors.push(TlsConfigError::new(
            "certificates",
            "at least one certificate is required",
        ));
    }
    let mut loaded = Vec::with_capacity(spec.certificates.len());
    for (i, pair) in spec.certificates.iter().enumerate() {
        if let Some(entry) = load_pair(i, pair, &provider, read, &mut errors) {
            loaded.push(entry);
        }
    }

    for (i, proto) in spec.alpn.iter().enumerate() {
        // The wire format has a one-byte length and forbids empty names.
        if proto.is_empty() || proto.len() > 255 {
            errors.push(TlsConfigError::new(
                format!("alpn[{i}]"),
                "protocol name must be 1 to 255 bytes long",
            ));
        }
    }

    let mut scope_roots = Vec::new();
    let verifier = match &spec.client_auth {
        None => None,
        Some(auth) => match load_roots(&auth.ca, read) {
            Err(message) => {
                errors.push(TlsConfigError::new("client_auth.ca", message));
                None
            }
            Ok((roots, ders)) => {
                scope_roots = ders;
                let mut builder =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                if !auth.required {
                    builder = builder.allow_unauthenticated();
                }
                builder
                    .build()
                    .map_err(|e| errors.push(TlsConfigError::new("client_auth.ca", e.to_string())))
                    .ok()
            }
        },
    };

    if !errors.is_empty() {
        return Err(errors);
    }
    let resolver = SniResolver::new(loaded).ok_or_else(|| {
        vec![TlsConfigError::new(
            "certificates",
            "at least one certificate is required",
        )]
    })?;

    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions(spec.min_version))
        .map_err(|e| vec![TlsConfigError::new("min_version", e.to_string())])?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = spec.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // Tickets cover TLS 1.3 and stateless TLS 1.2 resumption; the shared
    // ticketer keeps them valid across reloads. The cache serves TLS 1.2
    // clients that only do session IDs.
    let scope = ticket_scope(&provider, spec.client_auth.as_ref(), &scope_roots);
    config.ticketer = match scope {
        Some(scope) if spec.resumption => Arc::new(ScopedTicketer {
            inner: ticketer(),
            scope,
        }),
        _ => Arc::new(NoTickets),
    };
    if spec.resumption {
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
    } else {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(Arc::new(config))
}

/// Backend (origin) side: a pool's `tls: (sni: ..., ca: ...)`.
///
/// Verifies the backend's certificate against the CA bundle `ca` (there are no
/// system roots to fall back on, hence it is mandatory), offers ALPN
/// `http/1.1` and keeps rustls's default in-memory client session cache so
/// reconnects resume. Errors carry the field `"ca"`.
pub fn build_client_config(
    ca: &Path,
    read: &mut dyn FnMut(&Path) -> Result<Vec<u8>, String>,
) -> Result<Arc<rustls::ClientConfig>, Vec<TlsConfigError>> {
    let err = |message: String| vec![TlsConfigError::new("ca", message)];
    let (roots, _) = load_roots(ca, read).map_err(err)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(MinVersion::Tls12))
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // `resumption` stays at its default: an in-memory session cache.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Validates a pool's `sni` string into a ServerName<'static> (DNS name or IP literal); error message for invalid ones.
pub fn server_name(sni: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(sni.to_owned())
        .map_err(|_| format!("{sni:?} is neither a valid DNS name nor an IP address"))
}

/// The RFC 4514-style subject DN ("CN=alice,O=Example") of the peer's leaf
/// certificate on an established server connection, or None when the client
/// sent none (or it cannot be parsed, which verification makes unlikely).
///
/// Everything outside printable ASCII is escaped as `\XX`, so the result is
/// safe to put into an HTTP header (no CR, LF, NUL or other control bytes).
pub fn client_subject(conn: &rustls::ServerConnection) -> Option<String> {
    let leaf = conn.peer_certificates()?.first()?;
    certinfo::subject_dn(leaf)
}

/// Process-wide ticket key producer (rustls::crypto::ring::Ticketer), created
/// once so tickets stay valid across config reloads.
pub fn ticketer() -> Arc<dyn ProducesTickets> {
    static TICKETER: OnceLock<Arc<dyn ProducesTickets>> = OnceLock::new();
    if let Some(t) = TICKETER.get() {
        return Arc::clone(t);
    }
    match rustls::crypto::ring::Ticketer::new() {
        // A racing thread may have won; get_or_init hands back the winner so
        // all configs still share one key set.
        Ok(t) => Arc::clone(TICKETER.get_or_init(|| t)),
        // Only fails when the OS has no randomness; serve without tickets
        // (the session cache still resumes) and try again next reload.
        Err(_) => Arc::new(NoTickets),
    }
}

/// Digest of a listener's client-auth policy (required flag and CA bundle).
///
/// rustls only checks SNI and cipher suite when resuming, so with one
/// process-wide ticket key a ticket from a listener without mTLS would let a
/// client skip the certificate check on a listener that requires it. Binding
/// tickets to this scope prevents that, while a reload with an unchanged
/// policy keeps the same scope and so still resumes. None only if the
/// provider has no TLS 1.3 suite to borrow a hash from.
fn ticket_scope(
    provider: &CryptoProvider,
    auth: Option<&ClientAuthSpec>,
    roots: &[CertificateDer<'_>],
) -> Option<Vec<u8>> {
    let suite = provider.cipher_suites.iter().find_map(|s| s.tls13())?;
    let mut ctx = suite.common.hash_provider.start();
    ctx.update(b"ringway ticket scope v1");
    match auth {
        None => ctx.update(&[0]),
        Some(auth) => {
            ctx.update(&[1, u8::from(auth.required)]);
            for root in roots {
                ctx.update(&(root.len() as u64).to_be_bytes());
                ctx.update(root);
            }
        }
    }
    Some(ctx.finish().as_ref().to_vec())
}

/// The shared ticketer with the plaintext prefixed by a scope digest; tickets
/// from another scope decrypt fine but are refused (full handshake instead).
#[derive(Debug)]
struct ScopedTicketer {
    inner: Arc<dyn ProducesTickets>,
    scope: Vec<u8>,
}

impl ProducesTickets for ScopedTicketer {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }
    fn lifetime(&self) -> u32 {
        self.inner.lifetime()
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut scoped = Vec::with_capacity(self.scope.len() + plain.len());
        scoped.extend_from_slice(&self.scope);
        scoped.extend_from_slice(plain);
        self.inner.encrypt(&scoped)
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let plain = self.inner.decrypt(cipher)?;
        plain
            .strip_prefix(self.scope.as_slice())
            .map(<[u8]>::to_vec)
    }
}

/// Ticket producer that is switched off, used if key generation failed.
#[derive(Debug)]
struct NoTickets;

impl ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// Every reason a handshake can fail for, as labelled in metrics: what
/// [`handshake_failure_reason`] returns for rustls's errors, plus the ones the
/// connection itself decides (`not_tls`: the first bytes were no TLS record, e.g.
/// plain HTTP to an HTTPS port; `io`; `timeout`). `other` is last, for anything else.
pub const HANDSHAKE_FAILURE_REASONS: &[&str] = &[
    "no_shared_cipher",
    "protocol_version",
    "incompatible",
    "bad_certificate",
    "unknown_ca",
    "cert_expired",
    "cert_not_yet_valid",
    "no_client_cert",
    "no_alpn",
    "decrypt_error",
    "peer_misbehaved",
    "alert_received",
    "not_tls",
    "io",
    "timeout",
    "other",
];

/// Short, stable reason label for a handshake error, for metrics. Always one
/// of [`HANDSHAKE_FAILURE_REASONS`].
pub fn handshake_failure_reason(err: &Error) -> &'static str {
    use CertificateError as C;
    use PeerIncompatible as P;
    match err {
        Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "cert_expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "cert_not_yet_valid",
            C::UnknownIssuer => "unknown_ca",
            _ => "bad_certificate",
        },
        Error::NoCertificatesPresented => "no_client_cert",
        Error::PeerIncompatible(p) => match p {
            P::NoCipherSuitesInCommon | P::NoKxGroupsInCommon => "no_shared_cipher",
            P::ServerDoesNotSupportTls12Or13
            | P::ServerTlsVersionIsDisabledByOurConfig
            | P::SupportedVersionsExtensionRequired
            | P::Tls12NotOffered
            | P::Tls12NotOfferedOrEnabled
            | P::Tls13RequiredForQuic => "protocol_version",
            _ => "incompatible",
        },
        Error::InvalidMessage(rustls::InvalidMessage::UnknownProtocolVersion) => "protocol_version",
        // A first record type that is none of TLS's: not TLS at all.
        Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => "not_tls",
        Error::NoApplicationProtocol => "no_alpn",
        Error::DecryptError => "decrypt_error",
        Error::InvalidMessage(_)
        | Error::PeerMisbehaved(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. }
        | Error::PeerSentOversizedRecord => "peer_misbehaved",
        Error::AlertReceived(_) => "alert_received",
        _ => "other",
    }
}

/// The ring provider, always passed explicitly (see module docs).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
static TLS12_AND_13: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn versions(min: MinVersion) -> &'static [&'static SupportedProtocolVersion] {
    match min {
        MinVersion::Tls13 => TLS13_ONLY,
        MinVersion::Tls12 => TLS12_AND_13,
    }
}

/// Loads one certificate/key pair, pushing every problem found into `errors`.
/// Returns the key with the DNS names it serves (lowercased, from SAN or CN).
fn load_pair(
    i: usize,
    pair: &CertPair,
    provider: &CryptoProvider,
    read: &mut dyn FnMut(&Path) -> Result<Vec<u8>, String>,
    errors: &mut Vec<TlsConfigError>,
) -> Option<(Arc<CertifiedKey>, Vec<String>)> {
    let cert_field = format!("certificates[{i}].cert");
    let key_field = format!("certificates[{i}].key");
    let mut report = |field: &str, message: String| {
        errors.push(TlsConfigError::new(field, message));
    };

    // Certificate chain: readable, parseable, currently valid.
    let chain = read(&pair.cert)
        .and_then(|pem| parse_certs(&pair.cert, &pem))
        .and_then(|chain| {
            let names = certinfo::check_chain(&chain).map_err(|e| cert_msg(pair, &e))?;
            Ok((chain, names))
        })
        .map_err(|e| report(&cert_field, e))
        .ok();

    // Private key: exactly one, of a type the provider can sign with.
    let key = read(&pair.key)
        .and_then(|pem| parse_key(&pair.key, &pem))
        .and_then(|key| {
            provider
                .key_provider
                .load_private_key(key)
                .map_err(|e| format!("{}: unsupported private key: {e}", pair.key.display()))
        })
        .map_err(|e| report(&key_field, e))
        .ok();

    let ((chain, names), key) = (chain?, key?);
    let certified = CertifiedKey::new(chain, key);
    // rustls would happily serve a mismatched pair and every handshake would
    // then fail with a signature error; catch it at load time instead.
    match certified.keys_match() {
        Ok(()) => Some((Arc::new(certified), names)),
        Err(e) => {
            let why = match e {
                Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => "does not match".into(),
                other => format!("cannot be checked against ({other})"),
            };
            let (key, cert) = (pair.key.display(), pair.cert.display());
            report(
                &key_field,
                format!("{key}: private key {why} the certificate in {cert}"),
            );
            None
        }
    }
}

fn cert_msg(pair: &CertPair, problem: &str) -> String {
    format!("{}: {problem}", pair.cert.display())
}

/// All certificates in a PEM blob (other sections, e.g. a key, are skipped).
fn parse_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: invalid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

/// Exactly one private key; several would make the choice ambiguous.
fn parse_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    let mut keys = PrivateKeyDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: invalid PEM: {e}", path.display()))?;
    match keys.len() {
        0 => Err(format!(
            "{}: no private key found (PKCS#8, PKCS#1 or SEC1 PEM expected; encrypted keys are not supported)",
            path.display()
        )),
        1 => keys.pop().ok_or_else(|| format!("{}: no private key found", path.display())),
        n => Err(format!(
            "{}: {n} private keys found, expected exactly one",
            path.display()
        )),
    }
}

/// A CA bundle as a root store; certificates webpki cannot use are skipped,
/// but a bundle with none usable is an error.
/// Also returns the certificates as read, for [`ticket_scope`].
fn load_roots(
    path: &Path,
    read: &mut dyn FnMut(&Path) -> Result<Vec<u8>, String>,
) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), String> {
    let pem = read(path)?;
    let certs = parse_certs(path, &pem)?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs.iter().cloned());
    if added == 0 {
        return Err(format!("{}: no usable CA certificate", path.display()));
    }
    Ok((roots, certs))
}

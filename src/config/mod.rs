//! Configuration: parse a RON file into a validated [`Config`].
//!
//! Parsing happens in two steps. RON text is first deserialized into loose `raw`
//! types, where addresses and durations are still strings; only syntax errors, unknown
//! fields and wrong types stop there (one error, with its line and column). The raw
//! tree is then validated into [`Config`], and *every* problem found is reported with
//! the path of the field it is in, so a user can fix a file in one pass.
//!
//! ```ron
//! (
//!     workers: 2,
//!     listeners: [
//!         (name: "db", bind: "127.0.0.1:15432", protocol: Tcp(pool: "pg"),
//!          timeouts: (connect: "1s", idle: "5m")),
//!     ],
//!     pools: [
//!         (name: "pg", balance: RoundRobin, backends: [
//!             (addr: "127.0.0.1:25432", weight: 3),
//!             (addr: "127.0.0.1:25433"),
//!         ]),
//!     ],
//! )
//! ```
//!
//! Optional fields are written bare (`weight: 3`, not `weight: Some(3)`): RON's
//! `IMPLICIT_SOME` extension is always on.

mod duration;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ron::extensions::Extensions;
use serde::Deserialize;

pub use duration::parse_duration;

/// Highest accepted `workers` value; more threads than this is surely a typo.
pub const MAX_WORKERS: usize = 1024;
/// `timeouts.connect` when not given.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// `timeouts.idle` when not given.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Passive ejection default, used when `passive: (...)` is present but the field is not.
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
/// Default length of a first passive ejection.
pub const DEFAULT_EJECT_FOR: Duration = Duration::from_secs(30);
/// Default panic threshold, in percent of a pool's backends.
pub const DEFAULT_PANIC_THRESHOLD: u8 = 50;
/// How long SIGTERM waits for in-flight work when `shutdown_grace` is absent.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Longest accepted timeout (one year). Anything longer means "never" in practice,
/// and the cap guarantees `Instant::now() + timeout` cannot overflow.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3_600);
/// `tuning.pipe_bytes` when not given: 1 MiB.
pub const DEFAULT_PIPE_BYTES: usize = 1024 * 1024;
/// `tuning.copy_buffer_bytes` when not given: 64 KiB.
pub const DEFAULT_COPY_BUFFER_BYTES: usize = 64 * 1024;
/// `tuning.busy_poll` when not given: 50 µs. Long enough to bridge the gaps between a
/// loaded worker's bursts and a nearby backend's turnaround (one sequential client's p50
/// through the proxy went from 72 to 54 µs in `bench/busy_poll.sh`); short enough that
/// sparse traffic costs little (under one point of a core at 1000 requests/s in the same
/// run). Seastar's reactor makes the same trade by default, for longer (200 µs).
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(50);

/// A complete, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Worker thread count; `None` means one per usable core, decided by the caller.
    /// When present it is in `1..=MAX_WORKERS`.
    pub workers: Option<usize>,
    /// Sockets to accept on; never empty.
    pub listeners: Vec<Listener>,
    /// Backend groups that listeners relay to, referred to by index.
    pub pools: Vec<Pool>,
    /// Buffer sizes for the data path.
    pub tuning: Tuning,
    /// How long a graceful stop (SIGTERM) lets in-flight work finish.
    pub shutdown_grace: Duration,
    /// Where the admin endpoint (metrics, stats, reload) listens, if anywhere.
    pub admin: Option<SocketAddr>,
}

/// Buffer sizes for relaying bytes, and how long an idle worker polls before it sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Capacity requested for each splice pipe (`F_SETPIPE_SZ`); a power of two in
    /// 4096..=16777216. The kernel rounds it to whole pages anyway.
    pub pipe_bytes: usize,
    /// Size of each user-space buffer in [`RelayMode::Buffered`]; 1024..=16777216.
    pub copy_buffer_bytes: usize,
    /// How long a worker on io_uring keeps polling for events after its last activity
    /// before it sleeps (zero: it sleeps at once); [`DEFAULT_BUSY_POLL`] when not given,
    /// at most [`MAX_BUSY_POLL`].
    pub busy_poll: Duration,
}

/// Upper bound for `tuning.busy_poll`: past this, polling is no longer a bridge between
/// bursts but a core kept busy for nothing.
pub const MAX_BUSY_POLL: Duration = Duration::from_millis(100);

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            pipe_bytes: DEFAULT_PIPE_BYTES,
            copy_buffer_bytes: DEFAULT_COPY_BUFFER_BYTES,
            busy_poll: DEFAULT_BUSY_POLL,
        }
    }
}

/// One listening socket and what to do with its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Unique, non-empty name used in logs and metrics.
    pub name: String,
    /// Address to bind; unique among listeners (except port 0, which is ephemeral).
    pub bind: SocketAddr,
    /// How connections are handled.
    pub protocol: Protocol,
    /// Connection timeouts.
    pub timeouts: Timeouts,
    /// Which PROXY protocol header clients must send first (`None`: no header).
    pub proxy_protocol: ProxyAccept,
    /// Most UDP flows one worker keeps; beyond it the least recently active goes.
    pub max_flows: usize,
    /// Most client connections open at once; further ones wait in the accept backlog.
    pub max_connections: Option<usize>,
    /// Per-client-IP rate limit: over it, TCP connections are closed, UDP datagrams
    /// dropped, HTTP requests answered 429.
    pub rate_limit: Option<RateLimit>,
    /// Access log of an HTTP listener (`Off` for the other protocols).
    pub access_log: AccessLogFormat,
    /// TLS termination (HTTP listeners only); `None` serves plaintext.
    pub tls: Option<ListenerTls>,
}

/// A listener's `tls: (certificates: [...], min_version: "1.2", alpn: [...],
/// client_auth: ...)`, with its files loaded and checked.
#[derive(Clone)]
pub struct ListenerTls {
    /// As written (paths relative to the working directory).
    pub spec: crate::tls::ServerSpec,
    /// A digest of every file read, so a reload notices a certificate replaced in place.
    pub files_digest: u64,
    /// The rustls configuration new connections are accepted with.
    pub server: std::sync::Arc<rustls::ServerConfig>,
}

impl PartialEq for ListenerTls {
    /// Equal when written the same and built from the same file contents.
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec && self.files_digest == other.files_digest
    }
}

impl Eq for ListenerTls {}

impl fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerTls")
            .field("spec", &self.spec)
            .field("files_digest", &self.files_digest)
            .finish_non_exhaustive()
    }
}

/// A pool's `tls: (sni: "backend.internal", ca: "conf/certs/ca.pem")`: ringway speaks
/// TLS to its backends and verifies them against `ca`.
#[derive(Clone)]
pub struct PoolTls {
    /// The name sent in SNI and verified in the backend's certificate; `None` uses
    /// each backend's IP address.
    pub sni: Option<String>,
    /// The CA bundle backends are verified against.
    pub ca: std::path::PathBuf,
    /// A digest of the CA bundle's contents.
    pub files_digest: u64,
    /// Tells TLS settings apart (never 0, which stands for plain TCP): idle upstream
    /// connections made under one are not reused under another, so a reload that
    /// changes the CA verifies again. Worked out once here, not per request.
    pub identity: u64,
    /// `sni` parsed.
    pub server_name: Option<rustls::pki_types::ServerName<'static>>,
    /// The rustls configuration backend connections are made with.
    pub client: std::sync::Arc<rustls::ClientConfig>,
}

impl PartialEq for PoolTls {
    fn eq(&self, other: &Self) -> bool {
        self.sni == other.sni && self.ca == other.ca && self.files_digest == other.files_digest
    }
}

impl Eq for PoolTls {}

impl fmt::Debug for PoolTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolTls")
            .field("sni", &self.sni)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

/// Access log format of a listener: `access_log: Off | Combined | Json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
pub enum AccessLogFormat {
    /// No access log (the default).
    #[default]
    Off,
    /// The Apache/nginx "combined" line.
    Combined,
    /// One JSON object per line.
    Json,
}

/// A token bucket per client IP: `per_ip` tokens every `per`, holding at most `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Connections (TCP) or datagrams (UDP) allowed per `per`.
    pub per_ip: u32,
    /// The refill period (default 1s).
    pub per: Duration,
    /// Bucket size: how many may come at once (default `per_ip`).
    pub burst: u32,
}

/// Default for `limits.max_flows`.
pub const DEFAULT_MAX_FLOWS: usize = 100_000;
/// Idle timeout of a UDP flow when `timeouts.idle` is not set.
pub const DEFAULT_UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// PROXY protocol versions a listener accepts from a fronting balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
pub enum ProxyAccept {
    /// Version 1 (text) only.
    V1,
    /// Version 2 (binary) only.
    V2,
    /// Either version, detected from the first bytes.
    Any,
    /// No header: clients connect directly (the default).
    #[default]
    None,
}

/// PROXY protocol header sent to a pool's backends, so they see the original client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
pub enum SendProxy {
    /// Version 1 (text).
    V1,
    /// Version 2 (binary).
    V2,
    /// No header (the default).
    #[default]
    None,
}

/// What a listener speaks. Written in the file as `Tcp(pool: "name", relay: Splice)`.
///
/// Later protocols (`Http(routes: [...])`, `Udp(pool: ...)`) will be further
/// variants, so match on it exhaustively rather than assuming TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// Relay raw TCP byte streams to a backend of one pool.
    Tcp {
        /// Index into [`Config::pools`].
        pool: usize,
        /// How bytes are moved between the two sockets.
        relay: RelayMode,
    },
    /// Relay UDP datagrams: one flow per client address, each with its own connected
    /// upstream socket to a backend of the pool.
    Udp {
        /// Index into [`Config::pools`].
        pool: usize,
    },
    /// Proxy HTTP/1.1 requests, routed per request.
    Http(Box<HttpSettings>),
}

/// What an `Http` listener does with requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// The routes, compiled; first match wins, no match answers 404.
    pub routes: HttpRoutes,
    /// Parser limits (head size, header count, URI length, body size).
    pub limits: crate::http1::Limits,
    /// HTTP time limits.
    pub timeouts: HttpTimeouts,
}

/// HTTP time limits of a listener (`timeouts: (client_header, client_idle,
/// upstream_response)`), next to the listener's `connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// Longest time from the first byte of a request head to its end (408 after it):
    /// what stops a slowloris client holding a connection with a trickle of bytes.
    pub client_header: Duration,
    /// Longest wait for the next request on an idle keep-alive client connection.
    pub client_idle: Duration,
    /// Longest wait for the response head once the request is sent (504 after it).
    pub upstream_response: Duration,
}

/// `timeouts.client_header` when not given.
pub const DEFAULT_CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `timeouts.client_idle` when not given.
pub const DEFAULT_CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `timeouts.upstream_response` when not given.
pub const DEFAULT_UPSTREAM_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for HttpTimeouts {
    fn default() -> Self {
        HttpTimeouts {
            client_header: DEFAULT_CLIENT_HEADER_TIMEOUT,
            client_idle: DEFAULT_CLIENT_IDLE_TIMEOUT,
            upstream_response: DEFAULT_UPSTREAM_RESPONSE_TIMEOUT,
        }
    }
}

/// A listener's routes: as written (for comparing configs) and compiled (for matching).
#[derive(Clone)]
pub struct HttpRoutes {
    /// The routes as written, pools resolved to indices.
    pub specs: Vec<crate::route::RouteSpec>,
    /// Metric and log label of each route: its `name`, or its index.
    pub names: Vec<String>,
    /// The compiled table; each worker core matches with its own clone.
    pub table: crate::route::RouteTable,
}

impl PartialEq for HttpRoutes {
    /// Two route lists are equal when written the same: the compiled table follows.
    fn eq(&self, other: &Self) -> bool {
        self.specs == other.specs && self.names == other.names
    }
}

impl Eq for HttpRoutes {}

impl fmt::Debug for HttpRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRoutes")
            .field("specs", &self.specs)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Protocol {
    /// The pool of an L4 listener (TCP or UDP); `None` for HTTP, which routes each
    /// request to a pool of its own choosing.
    pub fn pool(&self) -> Option<usize> {
        match self {
            Protocol::Tcp { pool, .. } | Protocol::Udp { pool } => Some(*pool),
            Protocol::Http(_) => None,
        }
    }

    /// The HTTP settings of an `Http` listener.
    pub fn http(&self) -> Option<&HttpSettings> {
        match self {
            Protocol::Http(h) => Some(h),
            _ => None,
        }
    }

    /// Whether the listener binds a UDP socket (else TCP).
    pub fn is_udp(&self) -> bool {
        matches!(self, Protocol::Udp { .. })
    }
}

/// How a TCP relay moves bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
pub enum RelayMode {
    /// Zero-copy through a kernel pipe with `splice(2)` (the default).
    #[default]
    Splice,
    /// Read into and write from a user-space buffer of
    /// [`Tuning::copy_buffer_bytes`]; slower but works for any socket pair.
    Buffered,
}

/// Per-connection time limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest wait for a backend connection to be established; default 3s.
    pub connect: Duration,
    /// Longest time a connection may carry no bytes in either direction; default 5m.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: DEFAULT_CONNECT_TIMEOUT,
            idle: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// A named group of interchangeable backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Unique, non-empty name that listeners refer to.
    pub name: String,
    /// How a backend is chosen for each connection.
    pub balance: Balance,
    /// Never empty; addresses are unique within the pool.
    pub backends: Vec<Backend>,
    /// Active health checking, if configured.
    pub health: Option<HealthCheck>,
    /// Passive ejection; `consecutive_failures == 0` means off.
    pub passive: Passive,
    /// How long a recovered backend takes to reach its full weight; zero means off.
    pub slow_start: Duration,
    /// Below this percentage of usable backends, health is ignored (panic mode).
    pub panic_threshold: u8,
    /// PROXY protocol header to send to backends before the client's bytes.
    pub send_proxy: SendProxy,
    /// HTTP session affinity: the cookie that pins a client to a backend.
    pub sticky: Option<Sticky>,
    /// Idle upstream HTTP connections kept per backend on each worker core.
    pub keepalive: Keepalive,
    /// TLS to the backends (HTTP listeners only).
    pub tls: Option<PoolTls>,
}

/// HTTP session affinity of a pool: `sticky: Cookie(name: "rw_srv")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    /// ringway sets this cookie on the first response and routes later requests that
    /// carry it to the same backend while that backend is usable.
    Cookie {
        /// Cookie name (an RFC 6265 token).
        name: String,
    },
}

/// Upstream keep-alive of a pool: `keepalive: (max_idle: 32, idle: "60s")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle connections kept per backend per worker core; 0 turns reuse off.
    pub max_idle: usize,
    /// How long an idle connection is kept before it is closed.
    pub idle: Duration,
}

/// `keepalive.max_idle` when not given.
pub const DEFAULT_KEEPALIVE_MAX_IDLE: usize = 64;
/// `keepalive.idle` when not given: below the common server defaults (nginx 75 s,
/// Node 5 s is the outlier a user should configure), so we close first.
pub const DEFAULT_KEEPALIVE_IDLE: Duration = Duration::from_secs(4);

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            max_idle: DEFAULT_KEEPALIVE_MAX_IDLE,
            idle: DEFAULT_KEEPALIVE_IDLE,
        }
    }
}

/// Active health checking of a pool's backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// What a probe does.
    pub check: CheckKind,
    /// Time between probes of one backend (default 2s).
    pub interval: Duration,
    /// Longest a probe may take (default 1s).
    pub timeout: Duration,
    /// Consecutive successes that bring a down backend up (default 2).
    pub rise: u32,
    /// Consecutive failures that take an up backend down (default 3).
    pub fall: u32,
}

/// What one probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// Connect, then close.
    Tcp,
    /// `GET path` over a fresh connection; success is the expected status.
    Http {
        /// Request target, starting with `/`.
        path: String,
        /// Status that counts as healthy (default 200).
        expect: u16,
        /// Host header to send (default: the backend address).
        host: Option<String>,
    },
}

/// Passive ejection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passive {
    /// Failures in a row that eject a backend; 0 turns passive ejection off.
    pub consecutive_failures: u32,
    /// How long the first ejection lasts (doubling on repeats).
    pub eject_for: Duration,
}

/// Backend selection algorithm, written as the bare variant name, e.g. `Maglev`. It is
/// the balancer's own enum, so the config and the data path cannot drift apart.
pub use crate::lb::Algorithm as Balance;

/// One backend server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    /// Where to connect; an IP address and a non-zero port.
    pub addr: SocketAddr,
    /// Relative share of traffic; at least 1, default 1.
    pub weight: u32,
    /// Used only while no primary backend of its pool is usable.
    pub backup: bool,
    /// Most connections (or UDP flows) open to it at once; `None` is unlimited.
    pub max_connections: Option<u32>,
}

/// One problem in a config file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the problem is.
    pub location: Location,
    /// What is wrong, quoting the offending value.
    pub message: String,
}

/// Where a [`ConfigError`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A place in the text (1-based), for syntax and type errors found while parsing.
    Position {
        /// Line number, starting at 1.
        line: usize,
        /// Column number, starting at 1.
        column: usize,
    },
    /// A field path such as `pools[1].backends[0].addr`, for validation errors; for
    /// an unreadable file, the file's path.
    Path(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Position { line, column } => write!(f, "{line}:{column}"),
            Location::Path(path) => f.write_str(path),
        }
    }
}

impl fmt::Display for ConfigError {
    /// `3:14: expected ...` or `pools[1].backends[0].addr: invalid socket address ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parse and validate RON text; every validation error is collected (not just the
    /// first).
    ///
    /// # Errors
    ///
    /// A syntax error, unknown field or wrong type is a single error at a line and
    /// column. Otherwise, every validation problem is returned, in file order within
    /// each section, each with its field path.
    pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
        let raw = ron::Options::default()
            .with_default_extension(Extensions::IMPLICIT_SOME)
            .from_str::<raw::RawConfig>(text)
            .map_err(|e| vec![syntax_error(text, &e)])?;
        validate::validate(&raw)
    }

    /// Read a file and parse it. An unreadable file is one error whose message names
    /// the io error.
    ///
    /// # Errors
    ///
    /// As [`Config::parse`], plus one error located at the file's path when it cannot
    /// be read (missing, unreadable, not UTF-8).
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError {
                location: Location::Path(path.display().to_string()),
                message: format!("cannot read config file: {e}"),
            }]
        })?;
        Config::parse(&text)
    }
}

/// Convert RON's error to ours, located at the start of its span.
fn syntax_error(text: &str, e: &ron::error::SpannedError) -> ConfigError {
    let (line, column) = skip_whitespace(text, e.span.start.line, e.span.start.col);
    ConfigError {
        location: Location::Position { line, column },
        message: lowercase_first(&e.code.to_string()),
    }
}

/// RON sometimes starts a span at the whitespace before the offending token (after a
/// `:` for a value of the wrong type); move a 1-based `line:column` forward to the
/// token itself so the position points at what is wrong.
fn skip_whitespace(text: &str, line: usize, column: usize) -> (usize, usize) {
    let Some(line_text) = text.split('\n').nth(line.saturating_sub(1)) else {
        return (line, column);
    };
    let rest_of_line = line_text.chars().skip(column.saturating_sub(1));
    let mut position = (line, column);
    for c in rest_of_line {
        if !c.is_whitespace() {
            return position;
        }
        position.1 += 1;
    }
    // Only whitespace up to the end of the line: the token is further down, or
    // this is the end of the text; either way the original place is the clearest.
    (line, column)
}

/// RON capitalises its messages; ours follow a `location: ` prefix, so start lower.
fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

//! The config file exactly as written, before validation.
//!
//! Everything that can be wrong in more than one place at once (addresses, durations,
//! numeric ranges, references between sections) is kept loose here, as `String` or a
//! wide integer, so a bad value does not stop deserialization. `validate` then checks
//! the whole tree and reports every problem, not just the first. Only what RON itself
//! rejects (syntax, unknown fields, wrong types) ends the parse early.
//!
//! Each type is renamed to the name a user would recognise, because RON puts that
//! name in its messages ("unexpected field named `x` in `Listener`") and accepts it as
//! an optional prefix (`Listener(name: ...)`).

use serde::Deserialize;

use super::{AccessLogFormat, Balance, ProxyAccept, RelayMode, SendProxy};

/// The top-level `( ... )` of the file.
#[derive(Debug, Deserialize)]
#[serde(rename = "Config", deny_unknown_fields)]
pub(super) struct RawConfig {
    pub workers: Option<usize>,
    /// Defaulted so that a missing list is reported by validation ("at least one
    /// listener is required") alongside every other problem.
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    #[serde(default)]
    pub pools: Vec<RawPool>,
    pub tuning: Option<RawTuning>,
    /// `shutdown_grace: "30s"`: how long SIGTERM waits for in-flight work.
    pub shutdown_grace: Option<String>,
    /// `admin: "127.0.0.1:9901"`: the admin/metrics listener; none when absent.
    pub admin: Option<String>,
}

/// `tuning: (pipe_bytes: ..., copy_buffer_bytes: ..., busy_poll: "50us")`.
#[derive(Debug, Deserialize)]
#[serde(rename = "Tuning", deny_unknown_fields)]
pub(super) struct RawTuning {
    pub pipe_bytes: Option<usize>,
    pub copy_buffer_bytes: Option<usize>,
    pub busy_poll: Option<String>,
}

/// One entry of `listeners: [...]`.
#[derive(Debug, Deserialize)]
#[serde(rename = "Listener", deny_unknown_fields)]
pub(super) struct RawListener {
    pub name: String,
    pub bind: String,
    pub protocol: RawProtocol,
    pub timeouts: Option<RawTimeouts>,
    /// `proxy_protocol: (accept: Any)`: read a PROXY protocol header from each client.
    pub proxy_protocol: Option<RawProxyProtocol>,
    /// `limits: (max_flows: 100000, max_connections: 10000)`.
    pub limits: Option<RawLimits>,
    /// Per-client-IP rate limit.
    pub rate_limit: Option<RawRateLimit>,
    /// `access_log: Off | Combined | Json` (HTTP listeners).
    pub access_log: Option<AccessLogFormat>,
    /// `tls: (certificates: [...], ...)`: terminate TLS (HTTP listeners).
    pub tls: Option<RawListenerTls>,
}

/// `tls: (certificates: [(cert: "a.pem", key: "a.key")], min_version: "1.2",
/// alpn: ["http/1.1"], client_auth: (ca: "ca.pem", required: true))`.
#[derive(Debug, Deserialize)]
#[serde(rename = "Tls", deny_unknown_fields)]
pub(super) struct RawListenerTls {
    #[serde(default)]
    pub certificates: Vec<RawCertPair>,
    pub min_version: Option<String>,
    pub alpn: Option<Vec<String>>,
    pub client_auth: Option<RawClientAuth>,
    pub resumption: Option<bool>,
}

/// `(cert: "example.com.pem", key: "example.com.key")`.
#[derive(Debug, Deserialize)]
#[serde(rename = "Certificate", deny_unknown_fields)]
pub(super) struct RawCertPair {
    pub cert: String,
    pub key: String,
}

/// `client_auth: (ca: "ca.pem", required: true)`.
#[derive(Debug, Deserialize)]
#[serde(rename = "ClientAuth", deny_unknown_fields)]
pub(super) struct RawClientAuth {
    pub ca: String,
    pub required: Option<bool>,
}

/// A pool's `tls: (sni: "backend.internal", ca: "ca.pem")`.
#[derive(Debug, Deserialize)]
#[serde(rename = "PoolTls", deny_unknown_fields)]
pub(super) struct RawPoolTls {
    pub sni: Option<String>,
    pub ca: String,
}

/// `limits: (max_flows: 100000)`.
#[derive(Debug, Deserialize)]
#[serde(rename = "Limits", deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_flows: Option<u64>,
    pub max_connections: Option<u64>,
    /// HTTP: largest request head.
    pub max_head_bytes: Option<u64>,
    /// HTTP: most header fields in a request.
    pub max_headers: Option<u64>,
    /// HTTP: longest request-target.
    pub max_uri_bytes: Option<u64>,
    /// HTTP: largest request body; `None` (or absent) means no limit.
    pub max_body_bytes: Option<u64>,
}

/// `rate_limit: (per_ip: 100, per: "1s", burst: 200)`.
#[derive(Debug, Deserialize)]
#[serde(rename = "RateLimit", deny_unknown_fields)]
pub(super) struct RawRateLimit {
    pub per_ip: u64,
    pub per: Option<String>,
    pub burst: Option<u64>,
}

/// `proxy_protocol: (accept: V1|V2|Any|None)`.
#[derive(Debug, Deserialize)]
#[serde(rename = "ProxyProtocol", deny_unknown_fields)]
pub(super) struct RawProxyProtocol {
    pub accept: ProxyAccept,
}

/// What a listener speaks. New protocols (`Http(routes: [...])`, `Udp(pool: ...)`)
/// become new variants here and in [`super::Protocol`].
#[derive(Debug, Deserialize)]
#[serde(rename = "Protocol", deny_unknown_fields)]
pub(super) enum RawProtocol {
    /// `Tcp(pool: "name", relay: Splice)`.
    Tcp {
        pool: String,
        relay: Option<RelayMode>,
    },
    /// `Udp(pool: "name")`.
    Udp { pool: String },
    /// `Http(routes: [...])`.
    Http {
        #[serde(default)]
        routes: Vec<RawRoute>,
    },
}

/// One entry of `Http(routes: [...])`: conditions, then what to do.
#[derive(Debug, Deserialize)]
#[serde(rename = "Route", deny_unknown_fields)]
pub(super) struct RawRoute {
    /// Label in metrics and logs; defaults to the route's index.
    pub name: Option<String>,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub path_exact: Option<String>,
    pub path_regex: Option<String>,
    pub method: Option<String>,
    pub header: Option<(String, String)>,
    pub cookie: Option<(String, String)>,
    /// Proxy to this pool ...
    pub pool: Option<String>,
    /// ... or answer directly.
    pub respond: Option<RawRespond>,
    pub set_request_headers: Option<Vec<(String, String)>>,
    pub remove_request_headers: Option<Vec<String>>,
    pub set_response_headers: Option<Vec<(String, String)>>,
    pub remove_response_headers: Option<Vec<String>>,
    /// Header that carries the verified client certificate's subject to the backend.
    pub client_subject_header: Option<String>,
}

/// `respond: (status: 200, body: "ok\n", content_type: "text/plain")`.
#[derive(Debug, Deserialize)]
#[serde(rename = "Respond", deny_unknown_fields)]
pub(super) struct RawRespond {
    pub status: u64,
    pub body: Option<String>,
    pub content_type: Option<String>,
}

/// `timeouts: (connect: "3s", idle: "5m")`; durations stay strings until validation.
#[derive(Debug, Deserialize)]
#[serde(rename = "Timeouts", deny_unknown_fields)]
pub(super) struct RawTimeouts {
    pub connect: Option<String>,
    pub idle: Option<String>,
    /// HTTP: longest time to receive a request head once it has started.
    pub client_header: Option<String>,
    /// HTTP: longest wait for the next request on a keep-alive client connection.
    pub client_idle: Option<String>,
    /// HTTP: longest wait for the response head after the request was sent.
    pub upstream_response: Option<String>,
}

/// One entry of `pools: [...]`.
#[derive(Debug, Deserialize)]
#[serde(rename = "Pool", deny_unknown_fields)]
pub(super) struct RawPool {
    pub name: String,
    pub balance: Option<Balance>,
    /// Defaulted so a missing list gets the same "needs at least one backend" error as
    /// an empty one.
    #[serde(default)]
    pub backends: Vec<RawBackend>,
    /// Active health checks; none when absent.
    pub health: Option<RawHealth>,
    /// Passive ejection on failures seen by the data path; off when absent.
    pub passive: Option<RawPassive>,
    /// Ramp a recovered backend's weight up over this long; off when absent.
    pub slow_start: Option<String>,
    /// `send_proxy: V1|V2|None`: send a PROXY protocol header to backends.
    pub send_proxy: Option<SendProxy>,
    /// Percentage of a pool that must stay usable before ringway ignores health and
    /// uses every backend (panic mode); default 50.
    pub panic_threshold: Option<u64>,
    /// `sticky: Cookie(name: "rw_srv")`: HTTP session affinity.
    pub sticky: Option<RawSticky>,
    /// `keepalive: (max_idle: 32, idle: "60s")`: idle upstream HTTP connections kept.
    pub keepalive: Option<RawKeepalive>,
    /// `tls: (sni: ..., ca: ...)`: speak TLS to the backends.
    pub tls: Option<RawPoolTls>,
}

/// `sticky: Cookie(name: "rw_srv")`.
#[derive(Debug, Deserialize)]
#[serde(rename = "Sticky", deny_unknown_fields)]
pub(super) enum RawSticky {
    Cookie { name: String },
}

/// `keepalive: (max_idle: 32, idle: "60s")`.
#[derive(Debug, Deserialize)]
#[serde(rename = "Keepalive", deny_unknown_fields)]
pub(super) struct RawKeepalive {
    pub max_idle: Option<u64>,
    pub idle: Option<String>,
}

/// `health: (check: Http(path: "/healthz", expect: 200), interval: "1s", ...)`.
#[derive(Debug, Deserialize)]
#[serde(rename = "Health", deny_unknown_fields)]
pub(super) struct RawHealth {
    pub check: RawCheck,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<u64>,
    pub fall: Option<u64>,
}

/// The probe: `Tcp` (a connect) or `Http(path: "/healthz", expect: 200, host: "x")`.
#[derive(Debug, Deserialize)]
#[serde(rename = "Check", deny_unknown_fields)]
pub(super) enum RawCheck {
    Tcp,
    Http {
        path: String,
        expect: Option<u64>,
        host: Option<String>,
    },
}

/// `passive: (consecutive_failures: 5, eject_for: "30s")`.
#[derive(Debug, Deserialize)]
#[serde(rename = "Passive", deny_unknown_fields)]
pub(super) struct RawPassive {
    pub consecutive_failures: Option<u64>,
    pub eject_for: Option<String>,
}

/// One entry of `backends: [...]`.
#[derive(Debug, Deserialize)]
#[serde(rename = "Backend", deny_unknown_fields)]
pub(super) struct RawBackend {
    pub addr: String,
    /// Wider than the validated `u32` so an oversized weight is a collected
    /// validation error rather than a parse stop.
    pub weight: Option<u64>,
    /// Used only while no primary backend of the pool is usable.
    pub backup: Option<bool>,
    /// Most connections (or UDP flows) open to this backend at once.
    pub max_connections: Option<u64>,
}

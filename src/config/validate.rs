//! Turn the raw tree into a [`Config`], collecting every problem with its field path.
//!
//! Each check pushes its errors and returns `Option<T>`, `None` only after pushing
//! an error. Callers evaluate all of an item's checks before combining the options
//! with `?`, so one bad field never hides the next. Sections are checked in schema order (workers, listeners, pools,
//! tuning) and items in file order, which keeps the error list in a readable order.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::raw::{
    RawBackend, RawCheck, RawConfig, RawHealth, RawKeepalive, RawLimits, RawListener,
    RawListenerTls, RawPassive, RawPool, RawPoolTls, RawProtocol, RawRateLimit, RawRoute,
    RawSticky, RawTimeouts, RawTuning,
};
use super::{
    parse_duration, AccessLogFormat, Backend, CheckKind, Config, ConfigError, HealthCheck,
    HttpRoutes, HttpSettings, HttpTimeouts, Keepalive, Listener, ListenerTls, Location, Passive,
    Pool, PoolTls, Protocol, ProxyAccept, RateLimit, RelayMode, Sticky, Timeouts, Tuning,
    DEFAULT_CLIENT_HEADER_TIMEOUT, DEFAULT_CLIENT_IDLE_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_CONSECUTIVE_FAILURES, DEFAULT_EJECT_FOR, DEFAULT_IDLE_TIMEOUT, DEFAULT_KEEPALIVE_IDLE,
    DEFAULT_KEEPALIVE_MAX_IDLE, DEFAULT_MAX_FLOWS, DEFAULT_PANIC_THRESHOLD, DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_UDP_IDLE_TIMEOUT, DEFAULT_UPSTREAM_RESPONSE_TIMEOUT, MAX_BUSY_POLL, MAX_TIMEOUT,
    MAX_WORKERS,
};

/// Inclusive bounds for `tuning.pipe_bytes`: one page up to 16 MiB.
const PIPE_BYTES_RANGE: (usize, usize) = (4_096, 16 * 1024 * 1024);
/// Inclusive bounds for `tuning.copy_buffer_bytes`.
const COPY_BUFFER_BYTES_RANGE: (usize, usize) = (1_024, 16 * 1024 * 1024);

/// Validate a whole raw config.
///
/// Every check that rejects something records an error first, so when no errors
/// were recorded nothing was left out of the output.
pub(super) fn validate(raw: &RawConfig) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Errors::default();
    let workers = check_workers(raw.workers, &mut errors);
    let pool_names = pool_index(&raw.pools);
    let listeners = check_listeners(&raw.listeners, &pool_names, &mut errors);
    let pools = check_pools(&raw.pools, &mut errors);
    tls_pools_on_l4_listeners(&raw.listeners, &raw.pools, &mut errors);
    let tuning = check_tuning(raw.tuning.as_ref(), &mut errors);
    let admin = raw
        .admin
        .as_deref()
        .and_then(|a| check_socket_addr("admin", a, &mut errors));
    let shutdown_grace = check_timeout(
        "shutdown_grace",
        raw.shutdown_grace.as_deref(),
        DEFAULT_SHUTDOWN_GRACE,
        &mut errors,
    );
    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    Ok(Config {
        workers,
        listeners,
        pools,
        tuning,
        shutdown_grace: shutdown_grace.unwrap_or(DEFAULT_SHUTDOWN_GRACE),
        admin,
    })
}

/// The errors found so far.
#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            location: Location::Path(path.into()),
            message: message.into(),
        });
    }
}

/// Remembers the first path at which each key was seen, to report later duplicates
/// with a pointer to the original.
struct FirstSeen<K>(HashMap<K, String>);

impl<K: Eq + Hash> FirstSeen<K> {
    fn new() -> Self {
        FirstSeen(HashMap::new())
    }

    /// Record `key` at `path`; if it was already recorded return the earlier path.
    fn earlier(&mut self, key: K, path: &str) -> Option<&str> {
        use std::collections::hash_map::Entry;
        match self.0.entry(key) {
            Entry::Occupied(first) => Some(first.into_mut().as_str()),
            Entry::Vacant(slot) => {
                slot.insert(path.to_string());
                None
            }
        }
    }
}

/// `workers`, when present, must be a sane thread count.
fn check_workers(workers: Option<usize>, errors: &mut Errors) -> Option<usize> {
    if let Some(n) = workers {
        if !(1..=MAX_WORKERS).contains(&n) {
            errors.push(
                "workers",
                format!(
                    "must be between 1 and {MAX_WORKERS}, got {n} \
                     (leave it out to run one worker per core)"
                ),
            );
        }
    }
    workers
}

/// Map each pool name to the index of its first definition, so listeners can refer
/// to pools by name. Empty names are left out: they are an error of their own and
/// must not make `pool: ""` look valid.
fn pool_index(pools: &[RawPool]) -> HashMap<&str, usize> {
    let mut index = HashMap::new();
    for (i, pool) in pools.iter().enumerate() {
        if !pool.name.trim().is_empty() {
            index.entry(pool.name.as_str()).or_insert(i);
        }
    }
    index
}

/// Check every listener, and that their names and bind addresses are unique.
fn check_listeners(
    raw: &[RawListener],
    pools: &HashMap<&str, usize>,
    errors: &mut Errors,
) -> Vec<Listener> {
    if raw.is_empty() {
        errors.push("listeners", "at least one listener is required");
    }
    let mut seen = ListenersSeen {
        names: FirstSeen::new(),
        binds: FirstSeen::new(),
    };
    let mut listeners = Vec::with_capacity(raw.len());
    for (i, listener) in raw.iter().enumerate() {
        let path = format!("listeners[{i}]");
        listeners.extend(check_listener(&path, listener, pools, &mut seen, errors));
    }
    listeners
}

/// Names and bind addresses of the listeners checked so far.
struct ListenersSeen {
    names: FirstSeen<String>,
    binds: FirstSeen<SocketAddr>,
}

/// Check one listener at `path` (`listeners[i]`), recording its name and bind.
fn check_listener(
    path: &str,
    raw: &RawListener,
    pools: &HashMap<&str, usize>,
    seen: &mut ListenersSeen,
    errors: &mut Errors,
) -> Option<Listener> {
    let name_path = format!("{path}.name");
    let name = check_name(&name_path, &raw.name, errors);
    if let Some(name) = &name {
        if let Some(first) = seen.names.earlier(name.clone(), path) {
            errors.push(
                name_path,
                format!("duplicate listener name {name:?} (also used by {first})"),
            );
        }
    }
    let bind_path = format!("{path}.bind");
    let bind = check_socket_addr(&bind_path, &raw.bind, errors);
    // Port 0 asks the kernel for a fresh ephemeral port each time, so two such
    // listeners never collide.
    if let Some(bind) = bind.filter(|b| b.port() != 0) {
        if let Some(first) = seen.binds.earlier(bind, path) {
            errors.push(
                bind_path,
                format!("duplicate bind address \"{bind}\" (also used by {first})"),
            );
        }
    }
    let protocol = check_protocol(path, raw, pools, errors);
    let mut timeouts = check_timeouts(&format!("{path}.timeouts"), raw.timeouts.as_ref(), errors);
    // UDP has no close: a flow ends by going quiet, so its default idle is much shorter.
    let udp = matches!(raw.protocol, RawProtocol::Udp { .. });
    if let Some(t) = timeouts.as_mut().filter(|_| udp) {
        if raw.timeouts.as_ref().is_none_or(|r| r.idle.is_none()) {
            t.idle = DEFAULT_UDP_IDLE_TIMEOUT;
        }
    }
    let max_flows = check_range(
        &format!("{path}.limits.max_flows"),
        raw.limits.as_ref().and_then(|l| l.max_flows),
        DEFAULT_MAX_FLOWS as u64,
        1..=10_000_000,
        errors,
    );
    let max_connections = match raw.limits.as_ref().and_then(|l| l.max_connections) {
        None => Some(None),
        Some(n) => check_range(
            &format!("{path}.limits.max_connections"),
            Some(n),
            0,
            1..=10_000_000,
            errors,
        )
        .map(|n| Some(n as usize)),
    };
    let rate_limit = match &raw.rate_limit {
        None => Some(None),
        Some(r) => check_rate_limit(&format!("{path}.rate_limit"), r, errors).map(Some),
    };
    if udp
        && !matches!(
            raw.proxy_protocol.as_ref().map(|p| p.accept),
            None | Some(ProxyAccept::None)
        )
    {
        errors.push(
            format!("{path}.proxy_protocol"),
            "PROXY protocol headers are only read on TCP listeners",
        );
    }
    let http = matches!(raw.protocol, RawProtocol::Http { .. });
    if !http {
        http_only_fields(path, raw, errors);
    }
    let tls = match &raw.tls {
        None => Some(None),
        Some(t) => check_listener_tls(&format!("{path}.tls"), t, errors).map(Some),
    };
    let client_auth = raw.tls.as_ref().is_some_and(|t| t.client_auth.is_some());
    if let (RawProtocol::Http { routes }, false) = (&raw.protocol, client_auth) {
        subject_header_without_client_auth(path, routes, errors);
    }
    Some(Listener {
        name: name?,
        bind: bind?,
        protocol: protocol?,
        timeouts: timeouts?,
        proxy_protocol: raw
            .proxy_protocol
            .as_ref()
            .map_or(ProxyAccept::None, |p| p.accept),
        max_flows: max_flows? as usize,
        max_connections: max_connections?,
        rate_limit: rate_limit?,
        access_log: raw.access_log.unwrap_or_default(),
        tls: tls?,
    })
}

/// TLS to backends is spoken by the HTTP path only; a TCP or UDP listener relays its
/// client's bytes as they are, so a TLS pool there would silently not be TLS.
fn tls_pools_on_l4_listeners(listeners: &[RawListener], pools: &[RawPool], errors: &mut Errors) {
    for (i, listener) in listeners.iter().enumerate() {
        let name = match &listener.protocol {
            RawProtocol::Tcp { pool, .. } | RawProtocol::Udp { pool } => pool,
            RawProtocol::Http { .. } => continue,
        };
        if pools.iter().any(|p| p.name == *name && p.tls.is_some()) {
            errors.push(
                format!("listeners[{i}].protocol.pool"),
                format!(
                    "pool {name:?} speaks TLS to its backends, which only Http listeners \
                     do; a TCP or UDP listener relays its clients' bytes unchanged"
                ),
            );
        }
    }
}

/// A route that passes on the client certificate's subject on a listener that asks
/// for no client certificate would never send it: say so instead of ignoring it.
fn subject_header_without_client_auth(path: &str, routes: &[RawRoute], errors: &mut Errors) {
    for (i, route) in routes.iter().enumerate() {
        if route.client_subject_header.is_some() {
            errors.push(
                format!("{path}.protocol.routes[{i}].client_subject_header"),
                "needs tls.client_auth on the listener (there is no client certificate)",
            );
        }
    }
}

/// Read a TLS file for validation, adding its contents to `digest`.
fn read_tls_file(path: &Path, digest: &mut DefaultHasher) -> Result<Vec<u8>, String> {
    let bytes = crate::tls::read_pem_file(path)?;
    digest.write(&bytes);
    Ok(bytes)
}

/// A listener's `tls`: load every certificate and key, check they belong together,
/// and build the server configuration.
fn check_listener_tls(
    path: &str,
    raw: &RawListenerTls,
    errors: &mut Errors,
) -> Option<ListenerTls> {
    use crate::tls::{CertPair, ClientAuthSpec, MinVersion, ServerSpec};
    let min_version = match raw.min_version.as_deref() {
        None | Some("1.2") => Some(MinVersion::Tls12),
        Some("1.3") => Some(MinVersion::Tls13),
        Some(other) => {
            errors.push(
                format!("{path}.min_version"),
                format!("{other:?} is not a supported TLS version: \"1.2\" or \"1.3\""),
            );
            None
        }
    };
    let alpn = raw
        .alpn
        .clone()
        .unwrap_or_else(|| vec!["http/1.1".to_string()]);
    let mut alpn_ok = true;
    for (i, proto) in alpn.iter().enumerate() {
        if proto != "http/1.1" && proto != "http/1.0" {
            errors.push(
                format!("{path}.alpn[{i}]"),
                format!("{proto:?}: ringway speaks HTTP/1.x only (\"http/1.1\", \"http/1.0\")"),
            );
            alpn_ok = false;
        }
    }
    let spec = ServerSpec {
        certificates: raw
            .certificates
            .iter()
            .map(|c| CertPair {
                cert: c.cert.clone().into(),
                key: c.key.clone().into(),
            })
            .collect(),
        min_version: min_version?,
        alpn,
        client_auth: raw.client_auth.as_ref().map(|c| ClientAuthSpec {
            ca: c.ca.clone().into(),
            required: c.required.unwrap_or(true),
        }),
        resumption: raw.resumption.unwrap_or(true),
    };
    if !alpn_ok {
        return None;
    }
    let mut digest = DefaultHasher::new();
    match crate::tls::build_server_config(&spec, &mut |p| read_tls_file(p, &mut digest)) {
        Ok(server) => Some(ListenerTls {
            spec,
            files_digest: digest.finish(),
            server,
        }),
        Err(list) => {
            for e in list {
                errors.push(format!("{path}.{}", e.field), e.message);
            }
            None
        }
    }
}

/// A pool's `tls`: the CA bundle backends are verified against, and the SNI name.
fn check_pool_tls(path: &str, raw: &RawPoolTls, errors: &mut Errors) -> Option<PoolTls> {
    let server_name = match raw.sni.as_deref() {
        None => Some(None),
        Some(sni) => match crate::tls::server_name(sni) {
            Ok(name) => Some(Some(name)),
            Err(m) => {
                errors.push(format!("{path}.sni"), m);
                None
            }
        },
    };
    let ca = std::path::PathBuf::from(&raw.ca);
    let mut digest = DefaultHasher::new();
    let client = match crate::tls::build_client_config(&ca, &mut |p| read_tls_file(p, &mut digest))
    {
        Ok(client) => Some(client),
        Err(list) => {
            for e in list {
                errors.push(format!("{path}.{}", e.field), e.message);
            }
            None
        }
    };
    let files_digest = digest.finish();
    let mut identity = DefaultHasher::new();
    (&raw.sni, &ca, files_digest).hash(&mut identity);
    Some(PoolTls {
        identity: identity.finish() | 1,
        sni: raw.sni.clone(),
        ca,
        files_digest,
        server_name: server_name?,
        client: client?,
    })
}

/// Fields that only mean something on an `Http` listener: report each one set elsewhere,
/// rather than silently ignoring what the user thought they configured.
fn http_only_fields(path: &str, raw: &RawListener, errors: &mut Errors) {
    let mut set = Vec::new();
    if let Some(t) = &raw.timeouts {
        for (field, value) in [
            ("client_header", &t.client_header),
            ("client_idle", &t.client_idle),
            ("upstream_response", &t.upstream_response),
        ] {
            if value.is_some() {
                set.push(format!("{path}.timeouts.{field}"));
            }
        }
    }
    if let Some(l) = &raw.limits {
        for (field, value) in [
            ("max_head_bytes", l.max_head_bytes),
            ("max_headers", l.max_headers),
            ("max_uri_bytes", l.max_uri_bytes),
            ("max_body_bytes", l.max_body_bytes),
        ] {
            if value.is_some() {
                set.push(format!("{path}.limits.{field}"));
            }
        }
    }
    if raw.access_log.is_some_and(|f| f != AccessLogFormat::Off) {
        set.push(format!("{path}.access_log"));
    }
    if raw.tls.is_some() {
        set.push(format!("{path}.tls"));
    }
    for field in set {
        errors.push(field, "only applies to Http listeners");
    }
}

/// `rate_limit: (per_ip, per, burst)`: positive numbers, `burst` defaulting to `per_ip`.
fn check_rate_limit(path: &str, raw: &RawRateLimit, errors: &mut Errors) -> Option<RateLimit> {
    let per_ip = check_range(
        &format!("{path}.per_ip"),
        Some(raw.per_ip),
        0,
        1..=u64::from(u32::MAX),
        errors,
    );
    let burst = check_range(
        &format!("{path}.burst"),
        raw.burst,
        raw.per_ip.max(1),
        1..=u64::from(u32::MAX),
        errors,
    );
    let per = check_timeout(
        &format!("{path}.per"),
        raw.per.as_deref(),
        Duration::from_secs(1),
        errors,
    );
    Some(RateLimit {
        per_ip: per_ip? as u32,
        per: per?,
        burst: burst? as u32,
    })
}

/// Check a listener's protocol and resolve the pools it names to indices.
fn check_protocol(
    listener_path: &str,
    listener: &RawListener,
    pools: &HashMap<&str, usize>,
    errors: &mut Errors,
) -> Option<Protocol> {
    let path = &format!("{listener_path}.protocol");
    match &listener.protocol {
        RawProtocol::Http { routes } => {
            let routes = check_routes(path, routes, pools, errors);
            let limits = check_http_limits(listener_path, listener.limits.as_ref(), errors);
            let timeouts = check_http_timeouts(listener_path, listener.timeouts.as_ref(), errors);
            Some(Protocol::Http(Box::new(HttpSettings {
                routes: routes?,
                limits: limits?,
                timeouts: timeouts?,
            })))
        }
        RawProtocol::Tcp { pool, relay } => {
            let pool = resolve_pool(&format!("{path}.pool"), pool, pools, errors)?;
            Some(Protocol::Tcp {
                pool,
                relay: relay.unwrap_or(RelayMode::Splice),
            })
        }
        RawProtocol::Udp { pool } => {
            let pool = resolve_pool(&format!("{path}.pool"), pool, pools, errors)?;
            Some(Protocol::Udp { pool })
        }
    }
}

/// Check an `Http` listener's routes: each one proxies to a known pool or responds,
/// never both; then compile them, turning the route table's errors into field paths.
fn check_routes(
    path: &str,
    raw: &[RawRoute],
    pools: &HashMap<&str, usize>,
    errors: &mut Errors,
) -> Option<HttpRoutes> {
    use crate::route::{ActionSpec, PathMatch, RouteSpec, RouteTable};
    let mut specs = Vec::with_capacity(raw.len());
    let mut names = Vec::with_capacity(raw.len());
    let mut seen_names = FirstSeen::new();
    let mut ok = true;
    for (i, route) in raw.iter().enumerate() {
        let item = format!("{path}.routes[{i}]");
        let name = match &route.name {
            Some(n) => check_name(&format!("{item}.name"), n, errors),
            None => Some(i.to_string()),
        };
        if let Some(name) = &name {
            if let Some(first) = seen_names.earlier(name.clone(), &item) {
                errors.push(
                    format!("{item}.name"),
                    format!("duplicate route name {name:?} (also used by {first})"),
                );
                ok = false;
            }
        }
        let path_match = PathMatch::one_of(
            route.path_prefix.clone(),
            route.path_exact.clone(),
            route.path_regex.clone(),
        )
        .map_err(|m| errors.push(format!("{item}.path_prefix"), m))
        .ok();
        let edits_given = route.set_request_headers.is_some()
            || route.client_subject_header.is_some()
            || route.remove_request_headers.is_some()
            || route.set_response_headers.is_some()
            || route.remove_response_headers.is_some();
        let action =
            match (&route.pool, &route.respond) {
                (Some(pool), None) => resolve_pool(&format!("{item}.pool"), pool, pools, errors)
                    .map(|pool| ActionSpec::Proxy {
                        pool,
                        set_request_headers: route.set_request_headers.clone().unwrap_or_default(),
                        remove_request_headers: route
                            .remove_request_headers
                            .clone()
                            .unwrap_or_default(),
                        set_response_headers: route
                            .set_response_headers
                            .clone()
                            .unwrap_or_default(),
                        remove_response_headers: route
                            .remove_response_headers
                            .clone()
                            .unwrap_or_default(),
                        client_subject_header: route.client_subject_header.clone(),
                    }),
                (None, Some(respond)) => {
                    if edits_given {
                        errors.push(
                            item.clone(),
                            "header edits only apply to routes with a pool, not to respond",
                        );
                        None
                    } else {
                        let status = u16::try_from(respond.status).unwrap_or(0);
                        Some(ActionSpec::Respond {
                            status,
                            body: respond.body.clone().unwrap_or_default(),
                            content_type: respond.content_type.clone(),
                        })
                    }
                }
                (Some(_), Some(_)) => {
                    errors.push(item.clone(), "a route has either pool or respond, not both");
                    None
                }
                (None, None) => {
                    errors.push(
                        item.clone(),
                        "a route needs pool: \"name\" or respond: (status: ..., body: ...)",
                    );
                    None
                }
            };
        let (Some(name), Some(path_match), Some(action)) = (name, path_match, action) else {
            ok = false;
            continue;
        };
        names.push(name);
        specs.push(RouteSpec {
            host: route.host.clone(),
            path: path_match,
            method: route.method.clone(),
            header: route.header.clone(),
            cookie: route.cookie.clone(),
            action,
        });
    }
    if !ok {
        return None;
    }
    match RouteTable::build(&specs) {
        Ok(table) => Some(HttpRoutes {
            specs,
            names,
            table,
        }),
        Err(list) => {
            for e in list {
                let field = match e.field {
                    "status" | "body" | "content_type" => format!("respond.{}", e.field),
                    other => other.to_string(),
                };
                errors.push(format!("{path}.routes[{}].{field}", e.route), e.message);
            }
            None
        }
    }
}

/// Largest accepted `max_head_bytes`: heads are buffered whole, per connection.
const MAX_HEAD_BYTES: u64 = 1024 * 1024;

/// Check the HTTP parser limits of a listener, filling in defaults.
fn check_http_limits(
    path: &str,
    raw: Option<&RawLimits>,
    errors: &mut Errors,
) -> Option<crate::http1::Limits> {
    let defaults = crate::http1::Limits::default();
    let field = |f: fn(&RawLimits) -> Option<u64>| raw.and_then(f);
    let head = check_range(
        &format!("{path}.limits.max_head_bytes"),
        field(|l| l.max_head_bytes),
        defaults.max_head_bytes as u64,
        1024..=MAX_HEAD_BYTES,
        errors,
    );
    let headers = check_range(
        &format!("{path}.limits.max_headers"),
        field(|l| l.max_headers),
        defaults.max_headers as u64,
        1..=crate::http1::MAX_HEADERS_LIMIT as u64,
        errors,
    );
    let uri = check_range(
        &format!("{path}.limits.max_uri_bytes"),
        field(|l| l.max_uri_bytes),
        defaults.max_uri_bytes as u64,
        16..=MAX_HEAD_BYTES,
        errors,
    );
    let body: Option<Option<u64>> = Some(field(|l| l.max_body_bytes));
    Some(crate::http1::Limits {
        max_head_bytes: head? as usize,
        max_headers: headers? as usize,
        max_uri_bytes: uri? as usize,
        max_body_bytes: body?,
        ..defaults
    })
}

/// Check the HTTP timeouts of a listener, filling in defaults.
fn check_http_timeouts(
    path: &str,
    raw: Option<&RawTimeouts>,
    errors: &mut Errors,
) -> Option<HttpTimeouts> {
    let field = |f: fn(&RawTimeouts) -> &Option<String>| raw.and_then(|t| f(t).as_deref());
    let client_header = check_timeout(
        &format!("{path}.timeouts.client_header"),
        field(|t| &t.client_header),
        DEFAULT_CLIENT_HEADER_TIMEOUT,
        errors,
    );
    let client_idle = check_timeout(
        &format!("{path}.timeouts.client_idle"),
        field(|t| &t.client_idle),
        DEFAULT_CLIENT_IDLE_TIMEOUT,
        errors,
    );
    let upstream_response = check_timeout(
        &format!("{path}.timeouts.upstream_response"),
        field(|t| &t.upstream_response),
        DEFAULT_UPSTREAM_RESPONSE_TIMEOUT,
        errors,
    );
    Some(HttpTimeouts {
        client_header: client_header?,
        client_idle: client_idle?,
        upstream_response: upstream_response?,
    })
}

/// `sticky: Cookie(name: ...)`: the name must be a cookie-name token.
fn check_sticky(
    path: &str,
    raw: Option<&RawSticky>,
    errors: &mut Errors,
) -> Option<Option<Sticky>> {
    match raw {
        None => Some(None),
        Some(RawSticky::Cookie { name }) => {
            if crate::route::is_valid_cookie_name(name) {
                Some(Some(Sticky::Cookie { name: name.clone() }))
            } else {
                errors.push(
                    format!("{path}.sticky.name"),
                    format!("{name:?} is not a valid cookie name (RFC 6265 token)"),
                );
                None
            }
        }
    }
}

/// `keepalive: (max_idle, idle)`, defaults filled in.
fn check_keepalive(
    path: &str,
    raw: Option<&RawKeepalive>,
    errors: &mut Errors,
) -> Option<Keepalive> {
    let max_idle = check_range(
        &format!("{path}.keepalive.max_idle"),
        raw.and_then(|k| k.max_idle),
        DEFAULT_KEEPALIVE_MAX_IDLE as u64,
        0..=100_000,
        errors,
    );
    let idle = check_timeout(
        &format!("{path}.keepalive.idle"),
        raw.and_then(|k| k.idle.as_deref()),
        DEFAULT_KEEPALIVE_IDLE,
        errors,
    );
    Some(Keepalive {
        max_idle: max_idle? as usize,
        idle: idle?,
    })
}

/// Find a pool by name, listing the defined pools when it is not there.
fn resolve_pool(
    path: &str,
    name: &str,
    pools: &HashMap<&str, usize>,
    errors: &mut Errors,
) -> Option<usize> {
    if let Some(&index) = pools.get(name) {
        return Some(index);
    }
    let mut known: Vec<(&str, usize)> = pools.iter().map(|(&n, &i)| (n, i)).collect();
    known.sort_by_key(|&(_, i)| i);
    let hint = if known.is_empty() {
        "no pools are defined".to_string()
    } else {
        let names: Vec<String> = known.iter().map(|(n, _)| format!("{n:?}")).collect();
        format!("defined pools: {}", names.join(", "))
    };
    errors.push(path, format!("unknown pool {name:?} ({hint})"));
    None
}

/// Check the optional `timeouts` block, filling in defaults.
fn check_timeouts(path: &str, raw: Option<&RawTimeouts>, errors: &mut Errors) -> Option<Timeouts> {
    let (connect, idle) = raw.map_or((None, None), |t| (t.connect.as_deref(), t.idle.as_deref()));
    let connect = check_timeout(
        &format!("{path}.connect"),
        connect,
        DEFAULT_CONNECT_TIMEOUT,
        errors,
    );
    let idle = check_timeout(&format!("{path}.idle"), idle, DEFAULT_IDLE_TIMEOUT, errors);
    Some(Timeouts {
        connect: connect?,
        idle: idle?,
    })
}

/// A timeout must parse, be positive (a zero timeout would fail every connection),
/// and be at most [`MAX_TIMEOUT`] so adding it to an `Instant` cannot overflow.
fn check_timeout(
    path: &str,
    raw: Option<&str>,
    default: Duration,
    errors: &mut Errors,
) -> Option<Duration> {
    let Some(text) = raw else {
        return Some(default);
    };
    let limit = || format!("at most {} hours", MAX_TIMEOUT.as_secs() / 3_600);
    check_duration(path, text, false, MAX_TIMEOUT, limit, errors)
}

/// Parse the duration `text` written at `path` and check it: positive unless `zero_ok`,
/// and at most `max` (`limit` says so in the message).
fn check_duration(
    path: &str,
    text: &str,
    zero_ok: bool,
    max: Duration,
    limit: impl FnOnce() -> String,
    errors: &mut Errors,
) -> Option<Duration> {
    let problem = match parse_duration(text) {
        Err(reason) => reason,
        Ok(d) if d.is_zero() && !zero_ok => format!("must be greater than zero, got {text:?}"),
        Ok(d) if d > max => format!("{text:?} is too long ({})", limit()),
        Ok(d) => return Some(d),
    };
    errors.push(path, problem);
    None
}

/// Check every pool, and that pool names are unique.
fn check_pools(raw: &[RawPool], errors: &mut Errors) -> Vec<Pool> {
    let mut names = FirstSeen::new();
    let mut pools = Vec::with_capacity(raw.len());
    for (i, pool) in raw.iter().enumerate() {
        let path = format!("pools[{i}]");
        let name = check_name(&format!("{path}.name"), &pool.name, errors);
        if let Some(name) = &name {
            if let Some(first) = names.earlier(name.clone(), &path) {
                errors.push(
                    format!("{path}.name"),
                    format!("duplicate pool name {name:?} (also used by {first})"),
                );
            }
        }
        let backends = check_backends(&format!("{path}.backends"), &pool.backends, errors);
        let health = pool
            .health
            .as_ref()
            .and_then(|h| check_health(&format!("{path}.health"), h, errors));
        let passive = check_passive(&format!("{path}.passive"), pool.passive.as_ref(), errors);
        let slow_start = match pool.slow_start.as_deref() {
            None => Some(Duration::ZERO),
            Some(text) => check_timeout(
                &format!("{path}.slow_start"),
                Some(text),
                Duration::ZERO,
                errors,
            ),
        };
        let panic_threshold = check_range(
            &format!("{path}.panic_threshold"),
            pool.panic_threshold,
            u64::from(DEFAULT_PANIC_THRESHOLD),
            0..=100,
            errors,
        );
        let sticky = check_sticky(&path, pool.sticky.as_ref(), errors);
        let keepalive = check_keepalive(&path, pool.keepalive.as_ref(), errors);
        let tls = match &pool.tls {
            None => Some(None),
            Some(t) => check_pool_tls(&format!("{path}.tls"), t, errors).map(Some),
        };
        let (
            Some(passive),
            Some(slow_start),
            Some(panic_threshold),
            Some(sticky),
            Some(keepalive),
            Some(tls),
        ) = (passive, slow_start, panic_threshold, sticky, keepalive, tls)
        else {
            continue;
        };
        pools.extend(name.map(|name| Pool {
            name,
            balance: pool.balance.unwrap_or_default(),
            backends,
            health,
            passive,
            slow_start,
            panic_threshold: panic_threshold as u8,
            send_proxy: pool.send_proxy.unwrap_or_default(),
            sticky,
            keepalive,
            tls,
        }));
    }
    pools
}

/// Check a pool's backend list: not empty, each backend valid, addresses unique.
fn check_backends(path: &str, raw: &[RawBackend], errors: &mut Errors) -> Vec<Backend> {
    if raw.is_empty() {
        errors.push(path, "a pool needs at least one backend");
    }
    let mut addrs = FirstSeen::new();
    let mut backends = Vec::with_capacity(raw.len());
    for (i, backend) in raw.iter().enumerate() {
        let item = format!("{path}[{i}]");
        backends.extend(check_backend(&item, backend, &mut addrs, errors));
    }
    backends
}

/// Check one backend at `path` (`pools[i].backends[j]`), recording its address.
fn check_backend(
    path: &str,
    raw: &RawBackend,
    seen_addrs: &mut FirstSeen<SocketAddr>,
    errors: &mut Errors,
) -> Option<Backend> {
    let addr_path = format!("{path}.addr");
    let addr = match check_socket_addr(&addr_path, &raw.addr, errors) {
        // Nothing listens on port 0; connecting there always fails.
        Some(addr) if addr.port() == 0 => {
            let message = format!(
                "backend address {:?} has port 0, which cannot be connected to",
                raw.addr
            );
            errors.push(&addr_path, message);
            None
        }
        other => other,
    };
    if let Some(addr) = addr {
        if let Some(first) = seen_addrs.earlier(addr, path) {
            errors.push(
                addr_path,
                format!("duplicate backend address \"{addr}\" (also used by {first})"),
            );
        }
    }
    let weight = check_weight(&format!("{path}.weight"), raw.weight, errors);
    Some(Backend {
        addr: addr?,
        weight: weight?,
        backup: raw.backup.unwrap_or(false),
        max_connections: match raw.max_connections {
            None => None,
            Some(n) => Some(check_range(
                &format!("{path}.max_connections"),
                Some(n),
                0,
                1..=u64::from(u32::MAX),
                errors,
            )? as u32),
        },
    })
}

/// A count or percentage in `range`, defaulting when absent.
fn check_range(
    path: &str,
    raw: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    errors: &mut Errors,
) -> Option<u64> {
    let value = raw.unwrap_or(default);
    if range.contains(&value) {
        Some(value)
    } else {
        errors.push(
            path,
            format!(
                "must be between {} and {}, got {value}",
                range.start(),
                range.end()
            ),
        );
        None
    }
}

/// `health: (check: ..., interval, timeout, rise, fall)`.
fn check_health(path: &str, raw: &RawHealth, errors: &mut Errors) -> Option<HealthCheck> {
    let check = match &raw.check {
        RawCheck::Tcp => Some(CheckKind::Tcp),
        RawCheck::Http {
            path: target,
            expect,
            host,
        } => {
            let target_ok = target.starts_with('/') && target.bytes().all(|b| b.is_ascii_graphic());
            if !target_ok {
                errors.push(
                    format!("{path}.check.path"),
                    format!("must start with '/' and contain no spaces or control characters, got {target:?}"),
                );
            }
            let expect = check_range(
                &format!("{path}.check.expect"),
                *expect,
                200,
                100..=599,
                errors,
            );
            let host_ok = host
                .as_deref()
                .is_none_or(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()));
            if !host_ok {
                errors.push(
                    format!("{path}.check.host"),
                    format!("invalid Host value {host:?}"),
                );
            }
            match (target_ok && host_ok, expect) {
                (true, Some(expect)) => Some(CheckKind::Http {
                    path: target.clone(),
                    expect: expect as u16,
                    host: host.clone(),
                }),
                _ => None,
            }
        }
    };
    let interval = check_timeout(
        &format!("{path}.interval"),
        raw.interval.as_deref(),
        Duration::from_secs(2),
        errors,
    );
    let timeout = check_timeout(
        &format!("{path}.timeout"),
        raw.timeout.as_deref(),
        Duration::from_secs(1),
        errors,
    );
    let rise = check_range(&format!("{path}.rise"), raw.rise, 2, 1..=1000, errors);
    let fall = check_range(&format!("{path}.fall"), raw.fall, 3, 1..=1000, errors);
    Some(HealthCheck {
        check: check?,
        interval: interval?,
        timeout: timeout?,
        rise: rise? as u32,
        fall: fall? as u32,
    })
}

/// `passive: (consecutive_failures, eject_for)`; absent means off.
fn check_passive(path: &str, raw: Option<&RawPassive>, errors: &mut Errors) -> Option<Passive> {
    let Some(raw) = raw else {
        return Some(Passive {
            consecutive_failures: 0,
            eject_for: DEFAULT_EJECT_FOR,
        });
    };
    let failures = check_range(
        &format!("{path}.consecutive_failures"),
        raw.consecutive_failures,
        u64::from(DEFAULT_CONSECUTIVE_FAILURES),
        1..=1_000_000,
        errors,
    );
    let eject_for = check_timeout(
        &format!("{path}.eject_for"),
        raw.eject_for.as_deref(),
        DEFAULT_EJECT_FOR,
        errors,
    );
    Some(Passive {
        consecutive_failures: failures? as u32,
        eject_for: eject_for?,
    })
}

/// Weights default to 1; 0 would make a backend unreachable, which is what
/// removing it from the list is for.
fn check_weight(path: &str, raw: Option<u64>, errors: &mut Errors) -> Option<u32> {
    let weight = raw.unwrap_or(1);
    if weight == 0 {
        errors.push(path, "weight must be at least 1, got 0");
        return None;
    }
    let fitting = u32::try_from(weight).ok();
    if fitting.is_none() {
        errors.push(
            path,
            format!("weight {weight} is too large (at most {})", u32::MAX),
        );
    }
    fitting
}

/// Check `tuning`, filling in defaults for what is absent.
fn check_tuning(raw: Option<&RawTuning>, errors: &mut Errors) -> Tuning {
    let defaults = Tuning::default();
    let pipe_bytes = raw
        .and_then(|t| t.pipe_bytes)
        .unwrap_or(defaults.pipe_bytes);
    let copy_buffer_bytes = raw
        .and_then(|t| t.copy_buffer_bytes)
        .unwrap_or(defaults.copy_buffer_bytes);
    let (pipe_min, pipe_max) = PIPE_BYTES_RANGE;
    if !(pipe_bytes.is_power_of_two() && (pipe_min..=pipe_max).contains(&pipe_bytes)) {
        // The kernel rounds pipe sizes itself; requiring a power of two just makes
        // the configured value the one actually used.
        errors.push(
            "tuning.pipe_bytes",
            format!("must be a power of two between {pipe_min} and {pipe_max}, got {pipe_bytes}"),
        );
    }
    let (copy_min, copy_max) = COPY_BUFFER_BYTES_RANGE;
    if !(copy_min..=copy_max).contains(&copy_buffer_bytes) {
        errors.push(
            "tuning.copy_buffer_bytes",
            format!("must be between {copy_min} and {copy_max}, got {copy_buffer_bytes}"),
        );
    }
    let busy_poll = raw
        .and_then(|t| t.busy_poll.as_deref())
        .and_then(|text| {
            let limit = || {
                format!(
                    "at most {}ms; \"0s\" turns it off",
                    MAX_BUSY_POLL.as_millis()
                )
            };
            check_duration("tuning.busy_poll", text, true, MAX_BUSY_POLL, limit, errors)
        })
        .unwrap_or(defaults.busy_poll);
    Tuning {
        pipe_bytes,
        copy_buffer_bytes,
        busy_poll,
    }
}

/// Names identify listeners and pools in references and logs, so they must say
/// something.
fn check_name(path: &str, name: &str, errors: &mut Errors) -> Option<String> {
    if name.trim().is_empty() {
        errors.push(path, format!("name must not be empty, got {name:?}"));
        return None;
    }
    Some(name.to_string())
}

/// Parse an `ip:port`. Host names are rejected on purpose: resolving them would make
/// loading a config depend on DNS, and the result could change behind our back.
fn check_socket_addr(path: &str, text: &str, errors: &mut Errors) -> Option<SocketAddr> {
    let parsed = text.parse::<SocketAddr>().ok();
    if parsed.is_none() {
        let why = explain_bad_socket_addr(text);
        errors.push(path, format!("invalid socket address {text:?}: {why}"));
    }
    parsed
}

/// Say why `text` is not an `ip:port`, for the common mistakes.
fn explain_bad_socket_addr(text: &str) -> String {
    const EXPECTED: &str = "expected IP:port, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"";
    if text.trim().is_empty() {
        return format!("it is empty ({EXPECTED})");
    }
    if text.trim() != text {
        return "it has leading or trailing whitespace".into();
    }
    let unbracketed = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    if unbracketed.is_some_and(|ip| ip.parse::<IpAddr>().is_ok()) {
        return format!("missing port, e.g. \"{text}:8080\"");
    }
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => return format!("missing port, e.g. \"{text}:8080\""),
        Ok(IpAddr::V6(_)) => {
            return format!("missing port; IPv6 needs brackets, e.g. \"[{text}]:8080\"")
        }
        Err(_) => {}
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return EXPECTED.into();
    };
    if port.parse::<u16>().is_err() {
        return format!("port {port:?} is not a number from 0 to 65535");
    }
    let bare_host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare_host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) if bare_host == host => {
            "IPv6 addresses need brackets, e.g. \"[::1]:8080\"".into()
        }
        Ok(IpAddr::V4(_)) if bare_host != host => {
            "IPv4 addresses are written without brackets, e.g. \"127.0.0.1:8080\"".into()
        }
        Ok(_) => EXPECTED.into(),
        Err(_) => format!("{host:?} is not an IP address (host names are not resolved)"),
    }
}

#[cfg(test)]
mod tests {
    use super::explain_bad_socket_addr;

    #[test]
    fn bad_socket_addresses_are_explained() {
        // (input, fragment of the explanation)
        let cases = [
            ("", "it is empty"),
            (" 10.0.0.1:80", "whitespace"),
            ("10.0.0.1", "missing port, e.g. \"10.0.0.1:8080\""),
            ("::1", "IPv6 needs brackets, e.g. \"[::1]:8080\""),
            ("[::1]", "missing port, e.g. \"[::1]:8080\""),
            (
                "[10.0.0.1]:80",
                "IPv4 addresses are written without brackets",
            ),
            ("10.0.0.1:", "port \"\" is not a number"),
            ("10.0.0.1:http", "port \"http\" is not a number"),
            ("10.0.0.1:65536", "port \"65536\""),
            ("localhost:80", "\"localhost\" is not an IP address"),
            ("[fe80::1%eth0]:80", "is not an IP address"),
            ("10.0.0.1/80", "expected IP:port"),
        ];
        for (input, fragment) in cases {
            assert!(input.parse::<std::net::SocketAddr>().is_err(), "{input:?}");
            let why = explain_bad_socket_addr(input);
            assert!(
                why.contains(fragment),
                "{input:?}: {why:?} lacks {fragment:?}"
            );
        }
    }
}

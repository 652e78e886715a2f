//! HTTP routing: which route a request takes, decided from its method, Host, path,
//! header fields and cookies.
//!
//! Sans-IO, in the style of the rest of the pure core: [`RouteTable::build`] validates
//! and compiles a listener's routes once per config (collecting every error, each with
//! its route index and field), and [`RouteTable::find`] then answers per request from
//! slices borrowed from the request buffer ([`RequestView`]) without allocating or
//! locking. The table is immutable, `Send + Sync`, and travels in the snapshot.
//!
//! # Matching
//!
//! Routes are tried in order and the first whose conditions all hold wins; a route
//! without conditions matches everything, and no match means the caller answers 404.
//!
//! | condition | holds when |
//! | --- | --- |
//! | `host` | the Host, without port and trailing dot, equals it (ASCII case-insensitive); `*.example.com` wants one or more labels before `example.com`; IPv6 literals compare as addresses |
//! | `path_prefix` / `path_exact` | the path (target without `?query`) starts with / equals it, byte for byte |
//! | `path_regex` | the regex finds a match in the path (unanchored unless it says `^`/`$`) |
//! | `method` | the method token equals it, case-sensitively (RFC 9110 §9.1) |
//! | `header` | some field of that name (case-insensitive) has exactly that value, trimmed; lists are not split |
//! | `cookie` | some cookie of that name (case-sensitive) in any Cookie field has that value, unquoted |
//!
//! Paths are compared as received: no percent-decoding and no dot-segment removal, so
//! `/api/../admin` does not start with `/admin`. Routes choose a destination; they are
//! not an access-control layer unless the request parser rejects such paths.
//!
//! # Regexes and threads
//!
//! A `regex` value keeps scratch space in a pool that the first thread to use it owns
//! without synchronization; other threads go through a mutex-guarded stack. So that
//! `find` never takes a lock, each worker core should route through its own
//! [`Clone`] of the table (cheap: the routes are shared behind an `Arc`, only the
//! compiled regexes' scratch pools are new). The regex engine also grows that scratch
//! space (a lazy DFA cache, bounded) the first times it sees new kinds of input; after
//! warm-up, matching allocates nothing. Every other condition never allocates.
//!
//! ```
//! use ringway::route::{ActionSpec, PathMatch, RequestView, RouteSpec, RouteTable};
//!
//! let health = RouteSpec {
//!     path: Some(PathMatch::Exact("/healthz".into())),
//!     ..RouteSpec::new(ActionSpec::respond(200, "ok\n"))
//! };
//! let api = RouteSpec {
//!     host: Some("api.example.com".into()),
//!     ..RouteSpec::new(ActionSpec::proxy(0))
//! };
//! let table = RouteTable::build(&[health, api]).unwrap();
//!
//! let headers = [("accept", "*/*")];
//! let req = RequestView {
//!     method: b"GET",
//!     host: Some(b"API.example.com:8080"),
//!     target: b"/v1/users?limit=10",
//!     headers: &headers,
//! };
//! assert_eq!(table.find(&req), Some(1));
//! ```

mod cookie;
mod headers;
mod host;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use regex::bytes::Regex;

pub use cookie::{
    cookie_value, is_valid_cookie_name, sticky_set_cookie, sticky_token, sticky_token_keyed,
};
pub use headers::{HeaderSource, IterHeaders, NoHeaders};

use host::HostPattern;

/// `Content-Type` of a [`Action::Respond`] whose route gives none.
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Fields the proxy itself manages for framing and the connection (RFC 9110 §7.6.1,
/// RFC 9112 §6): a route may neither set nor remove them, since a rewrite would change
/// how the next hop delimits the message (the stuff of request smuggling).
const MANAGED_FIELDS: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

// ---------------------------------------------------------------------------------
// Input: what the config layer hands over.
// ---------------------------------------------------------------------------------

/// One route as written in the config (`Http(routes: [...])`), conditions unparsed.
///
/// Every condition present must hold; a route with none matches every request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// `host: "api.example.com"` or `"*.example.com"`.
    pub host: Option<String>,
    /// `path_prefix`, `path_exact` or `path_regex` (at most one; see
    /// [`PathMatch::one_of`]).
    pub path: Option<PathMatch>,
    /// `method: "POST"`.
    pub method: Option<String>,
    /// `header: ("x-canary", "1")`: name and exact value.
    pub header: Option<(String, String)>,
    /// `cookie: ("tier", "beta")`: name and exact value.
    pub cookie: Option<(String, String)>,
    /// What to do with a matching request.
    pub action: ActionSpec,
}

impl RouteSpec {
    /// A route with no conditions (a catch-all) doing `action`; set conditions with
    /// struct update syntax: `RouteSpec { method: Some("POST".into()), ..RouteSpec::new(a) }`.
    pub fn new(action: ActionSpec) -> RouteSpec {
        RouteSpec {
            host: None,
            path: None,
            method: None,
            header: None,
            cookie: None,
            action,
        }
    }
}

/// A path condition, matched against the request path without its query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// `path_prefix`: the path starts with these bytes (`/v1/` does not match `/v1`).
    Prefix(String),
    /// `path_exact`: the path is exactly this.
    Exact(String),
    /// `path_regex`: the `regex` crate's syntax, searched in the path (not anchored
    /// unless the pattern uses `^` and `$`).
    Regex(String),
}

impl PathMatch {
    /// The single path condition from the config's three optional fields.
    ///
    /// # Errors
    /// A message naming the fields when more than one is given; the config layer
    /// reports it as `RouteError { field: "path", .. }` of its route.
    pub fn one_of(
        prefix: Option<String>,
        exact: Option<String>,
        regex: Option<String>,
    ) -> Result<Option<PathMatch>, String> {
        match (prefix, exact, regex) {
            (None, None, None) => Ok(None),
            (Some(p), None, None) => Ok(Some(PathMatch::Prefix(p))),
            (None, Some(e), None) => Ok(Some(PathMatch::Exact(e))),
            (None, None, Some(r)) => Ok(Some(PathMatch::Regex(r))),
            (p, e, r) => {
                let given: Vec<&str> = [
                    p.map(|_| "path_prefix"),
                    e.map(|_| "path_exact"),
                    r.map(|_| "path_regex"),
                ]
                .into_iter()
                .flatten()
                .collect();
                Err(format!(
                    "at most one of path_prefix, path_exact, path_regex per route; got {}",
                    given.join(" and ")
                ))
            }
        }
    }

    /// The config field this condition came from, as used in [`RouteError::field`].
    pub fn field(&self) -> &'static str {
        match self {
            PathMatch::Prefix(_) => "path_prefix",
            PathMatch::Exact(_) => "path_exact",
            PathMatch::Regex(_) => "path_regex",
        }
    }
}

/// What a route does, as written in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionSpec {
    /// Forward to a pool, editing header fields on the way.
    Proxy {
        /// Index of the pool in the config (the config layer resolves the name).
        pool: usize,
        /// Fields added to the upstream request, replacing any of the same name.
        set_request_headers: Vec<(String, String)>,
        /// Fields removed from the upstream request.
        remove_request_headers: Vec<String>,
        /// Fields added to the downstream response, replacing any of the same name.
        set_response_headers: Vec<(String, String)>,
        /// Fields removed from the downstream response.
        remove_response_headers: Vec<String>,
        /// `client_subject_header: "x-client-subject"`: the field that carries the
        /// subject of the client's verified TLS certificate to the backend. A field of
        /// that name sent by the client is always removed, so it cannot be forged.
        client_subject_header: Option<String>,
    },
    /// Answer directly without contacting a backend.
    Respond {
        /// Final status code, 200..=599.
        status: u16,
        /// Response body.
        body: String,
        /// `Content-Type`; [`DEFAULT_CONTENT_TYPE`] when `None`.
        content_type: Option<String>,
    },
}

impl ActionSpec {
    /// Proxy to `pool` without header edits.
    pub fn proxy(pool: usize) -> ActionSpec {
        ActionSpec::Proxy {
            pool,
            set_request_headers: Vec::new(),
            remove_request_headers: Vec::new(),
            set_response_headers: Vec::new(),
            remove_response_headers: Vec::new(),
            client_subject_header: None,
        }
    }

    /// Respond with `status` and a plain-text `body`.
    pub fn respond(status: u16, body: &str) -> ActionSpec {
        ActionSpec::Respond {
            status,
            body: body.into(),
            content_type: None,
        }
    }
}

/// One problem with one route, found by [`RouteTable::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    /// Index of the route in the list given to `build`.
    pub route: usize,
    /// The config field at fault: `host`, `path_prefix`, `path_exact`, `path_regex`,
    /// `method`, `header`, `cookie`, `set_request_headers`, `remove_request_headers`,
    /// `set_response_headers`, `remove_response_headers`, `status`, `body` or
    /// `content_type`.
    pub field: &'static str,
    /// What is wrong, quoting the offending value.
    pub message: String,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "routes[{}].{}: {}", self.route, self.field, self.message)
    }
}

impl std::error::Error for RouteError {}

// ---------------------------------------------------------------------------------
// Output: the compiled table.
// ---------------------------------------------------------------------------------

/// What a matched route does, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Forward to a pool.
    Proxy {
        /// Index of the pool in the config.
        pool: usize,
        /// Edits to the request sent upstream.
        request: HeaderEdits,
        /// Edits to the response sent downstream.
        response: HeaderEdits,
        /// Lower-case name of the field carrying the client certificate's subject.
        client_subject: Option<Box<str>>,
    },
    /// Answer directly.
    Respond {
        /// Final status code, 200..=599; never 204, 205 or 304 with a body.
        status: u16,
        /// Response body.
        body: Box<str>,
        /// `Content-Type` value ([`DEFAULT_CONTENT_TYPE`] unless the route gave one).
        content_type: Box<str>,
    },
}

/// Validated header edits for one direction of a proxied exchange.
///
/// Names are lower-case tokens and never a framing or connection field; values are
/// valid field values (no CR, LF, NUL or other control characters, no surrounding
/// whitespace). A rewriter copies each received field unless [`drops`](Self::drops)
/// says otherwise, then appends [`set`](Self::set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// Fields to add, each replacing every received field of the same name; names
    /// are distinct.
    pub set: Box<[(Box<str>, Box<str>)]>,
    /// Names of fields to leave out.
    pub remove: Box<[Box<str>]>,
}

impl HeaderEdits {
    /// Whether a received field called `name` (any case) must not be forwarded:
    /// it is removed, or replaced by a [`set`](Self::set) entry.
    pub fn drops(&self, name: &[u8]) -> bool {
        self.remove
            .iter()
            .any(|r| name.eq_ignore_ascii_case(r.as_bytes()))
            || self
                .set
                .iter()
                .any(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
    }

    /// No edits at all, so a rewriter can take its plain path.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// What the matcher needs from a request; borrowed, built by the caller without
/// allocation.
///
/// `headers` is any [`HeaderSource`]: a stack array of pairs, or the HTTP/1 parser's
/// field iterator through [`IterHeaders`]. Every field is borrowed for `'a`, the
/// lifetime of the request buffer.
#[derive(Clone, Copy)]
pub struct RequestView<'a> {
    /// The method token, as received.
    pub method: &'a [u8],
    /// The Host value (for an absolute-form target, its authority), port included;
    /// `None` when the request has none, which fails every `host` condition.
    pub host: Option<&'a [u8]>,
    /// The request target: origin-form path and optional `?query` (the usual case).
    /// An absolute-form target (`http://a/p?q`) is reduced to its path too.
    pub target: &'a [u8],
    /// All header fields in order, Cookie fields included.
    pub headers: &'a dyn HeaderSource<'a>,
}

impl<'a> RequestView<'a> {
    /// The path the path conditions see: the target without query (and fragment), and
    /// without scheme and authority for an absolute-form target; `/` if that leaves
    /// nothing (`http://a?x`). `*` (asterisk-form) stays `*`.
    pub fn path(&self) -> &'a [u8] {
        path_of(self.target)
    }

    /// Value of cookie `name`, as [`cookie_value`] finds it.
    pub fn cookie(&self, name: &str) -> Option<&'a [u8]> {
        cookie_value(self.headers, name)
    }

    /// Trimmed value of the first field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        headers::first_header(self.headers, name.as_bytes())
    }
}

impl fmt::Debug for RequestView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestView")
            .field("method", &String::from_utf8_lossy(self.method))
            .field("host", &self.host.map(String::from_utf8_lossy))
            .field("target", &String::from_utf8_lossy(self.target))
            .finish_non_exhaustive()
    }
}

/// See [`RequestView::path`].
fn path_of(target: &[u8]) -> &[u8] {
    let rest = match target.first() {
        Some(b'/' | b'*') | None => target,
        Some(_) => strip_scheme_authority(target),
    };
    let end = rest
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    match &rest[..end] {
        b"" => b"/",
        path => path,
    }
}

/// `scheme://authority` removed from an absolute-form target; anything else unchanged
/// (it then matches no path condition that starts with `/`, which is the safe side).
fn strip_scheme_authority(target: &[u8]) -> &[u8] {
    let Some(sep) = target.windows(3).position(|w| w == b"://") else {
        return target;
    };
    let scheme = &target[..sep];
    let is_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !is_scheme {
        return target;
    }
    let rest = &target[sep + 3..];
    let auth_end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    &rest[auth_end..]
}

/// A compiled path condition.
#[derive(Clone, Debug)]
enum PathCond {
    Prefix(Box<[u8]>),
    Exact(Box<[u8]>),
    /// Index into [`RouteTable::regexes`], which each clone owns (see the module docs).
    Regex(usize),
}

/// A compiled name and exact value of a header or cookie condition.
type NameValue = (Box<[u8]>, Box<[u8]>);

/// One compiled route. Conditions are checked cheapest first (method, host, path,
/// then the header scans); the order does not change the outcome.
#[derive(Debug)]
struct Route {
    method: Option<Box<[u8]>>,
    host: Option<HostPattern>,
    path: Option<PathCond>,
    /// Lower-case name, exact value.
    header: Option<NameValue>,
    /// Name, exact value.
    cookie: Option<NameValue>,
    action: Action,
}

impl Route {
    /// Whether every condition holds. `host` is already normalized and `path`
    /// already cut from the target, once per request rather than once per route.
    fn matches(
        &self,
        regexes: &[Regex],
        req: &RequestView<'_>,
        host: Option<&[u8]>,
        path: &[u8],
    ) -> bool {
        self.method.as_deref().is_none_or(|m| m == req.method)
            && self
                .host
                .as_ref()
                .is_none_or(|p| host.is_some_and(|h| p.matches(h)))
            && self.path.as_ref().is_none_or(|p| match p {
                PathCond::Prefix(prefix) => path.starts_with(prefix),
                PathCond::Exact(exact) => path == &**exact,
                PathCond::Regex(i) => regexes[*i].is_match(path),
            })
            && self
                .header
                .as_ref()
                .is_none_or(|(n, v)| headers::has_header(req.headers, n, v))
            && self
                .cookie
                .as_ref()
                .is_none_or(|(n, v)| cookie::has_cookie(req.headers, n, v))
    }
}

/// A listener's compiled routes: immutable, `Send + Sync`, queried per request.
///
/// Clone it once per worker core (see the module docs on regexes); clones share the
/// routes and actions.
#[derive(Clone, Debug)]
pub struct RouteTable {
    routes: Arc<[Route]>,
    /// The path regexes, per clone, so each core owns its regex scratch space.
    regexes: Box<[Regex]>,
}

impl RouteTable {
    /// Compile; collect every error (don't stop at the first).
    ///
    /// # Errors
    /// Every invalid field of every route, in route order and within a route in field
    /// order (conditions, then the action). The table is all or nothing.
    pub fn build(routes: &[RouteSpec]) -> Result<RouteTable, Vec<RouteError>> {
        let mut errors = Vec::new();
        let mut regexes = Vec::new();
        let mut compiled = Vec::with_capacity(routes.len());
        for (i, spec) in routes.iter().enumerate() {
            let mut e = Errors {
                route: i,
                list: &mut errors,
                found: false,
            };
            let method = spec
                .method
                .as_deref()
                .map(|m| e.check("method", check_method(m)));
            let host = spec
                .host
                .as_deref()
                .map(|h| e.check("host", HostPattern::parse(h)));
            let path = spec
                .path
                .as_ref()
                .map(|p| e.check(p.field(), check_path(p, &mut regexes)));
            let header = spec
                .header
                .as_ref()
                .map(|(n, v)| e.check("header", check_header_condition(n, v)));
            let cookie = spec
                .cookie
                .as_ref()
                .map(|(n, v)| e.check("cookie", check_cookie_condition(n, v)));
            let action = check_action(&spec.action, &mut e);
            // Any error in this route: `build` fails, so the partial route (with a
            // `Some(None)` for each bad field) is never assembled.
            if e.found {
                continue;
            }
            if let Some(action) = action {
                compiled.push(Route {
                    method: method.flatten(),
                    host: host.flatten(),
                    path: path.flatten(),
                    header: header.flatten(),
                    cookie: cookie.flatten(),
                    action,
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RouteTable {
            routes: compiled.into(),
            regexes: regexes.into(),
        })
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no routes (then every request gets 404).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// First matching route's index, or None.
    ///
    /// Borrows everything from `req`; allocates nothing and takes no lock (for regex
    /// routes, once warmed up on this table clone's thread: see the module docs).
    pub fn find(&self, req: &RequestView<'_>) -> Option<usize> {
        let host = req.host.map(host::normalize);
        let path = req.path();
        self.routes
            .iter()
            .position(|r| r.matches(&self.regexes, req, host, path))
    }

    /// The matching route's index and action, or None (404).
    pub fn lookup(&self, req: &RequestView<'_>) -> Option<(usize, &Action)> {
        self.find(req).map(|i| (i, &self.routes[i].action))
    }

    /// The action of route `route`.
    ///
    /// # Panics
    /// If `route >= self.len()`.
    pub fn action(&self, route: usize) -> &Action {
        &self.routes[route].action
    }
}

// ---------------------------------------------------------------------------------
// Validation.
// ---------------------------------------------------------------------------------

/// Collects one route's errors into the shared list.
struct Errors<'e> {
    route: usize,
    list: &'e mut Vec<RouteError>,
    /// Whether this route had any error.
    found: bool,
}

impl Errors<'_> {
    fn push(&mut self, field: &'static str, message: String) {
        self.found = true;
        self.list.push(RouteError {
            route: self.route,
            field,
            message,
        });
    }

    /// `Some(value)`, or `None` after recording the error.
    fn check<T>(&mut self, field: &'static str, result: Result<T, String>) -> Option<T> {
        result.map_err(|m| self.push(field, m)).ok()
    }
}

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `token = 1*tchar`: method and field names.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// A valid field value (RFC 9110 §5.5): visible ASCII, obs-text, and inner SP/HTAB
/// only. CR, LF and NUL above all: a value with them would let a config inject
/// field lines.
fn check_field_value(what: &str, value: &str) -> Result<(), String> {
    if let Some(b) = value
        .bytes()
        .find(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(format!(
            "{what} {value:?} contains the control character {:?}",
            char::from(b)
        ));
    }
    if value.trim_matches([' ', '\t']) != value {
        return Err(format!(
            "{what} {value:?} has surrounding whitespace, which field values never carry"
        ));
    }
    Ok(())
}

fn check_method(method: &str) -> Result<Box<[u8]>, String> {
    if !is_token(method.as_bytes()) {
        return Err(format!("{method:?} is not a method token"));
    }
    // Legal but surely a typo: methods are case-sensitive, so `post` would never see
    // the `POST` that every client sends.
    const STANDARD: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    if let Some(std) = STANDARD
        .iter()
        .find(|s| s.eq_ignore_ascii_case(method) && **s != method)
    {
        return Err(format!(
            "{method:?}: methods are case-sensitive; write {std:?}"
        ));
    }
    Ok(method.as_bytes().into())
}

fn check_path(path: &PathMatch, regexes: &mut Vec<Regex>) -> Result<PathCond, String> {
    match path {
        PathMatch::Prefix(p) => check_literal_path(p, false).map(PathCond::Prefix),
        PathMatch::Exact(p) => check_literal_path(p, true).map(PathCond::Exact),
        PathMatch::Regex(r) => {
            let regex = Regex::new(r).map_err(|e| format!("{r:?} is not a valid regex: {e}"))?;
            regexes.push(regex);
            Ok(PathCond::Regex(regexes.len() - 1))
        }
    }
}

/// A literal path must be able to match some request path: start with `/` (or be
/// `*` for `OPTIONS *`, exact only), and hold no query, fragment, space or control
/// character, which never reach the path.
fn check_literal_path(p: &str, exact: bool) -> Result<Box<[u8]>, String> {
    if !(p.starts_with('/') || (exact && p == "*")) {
        return Err(format!("{p:?} must start with '/'"));
    }
    if let Some(c) = p
        .chars()
        .find(|&c| matches!(c, '?' | '#') || c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err(format!(
            "{p:?} contains {c:?}, which is never part of a request path (the query is not matched)"
        ));
    }
    Ok(p.as_bytes().into())
}

/// A header condition: a field name and the exact value.
fn check_header_condition(name: &str, value: &str) -> Result<NameValue, String> {
    if !is_token(name.as_bytes()) {
        return Err(format!("{name:?} is not a valid field name"));
    }
    check_field_value("value", value)?;
    Ok((
        name.to_ascii_lowercase().into_bytes().into(),
        value.as_bytes().into(),
    ))
}

/// A cookie condition: a cookie name and the exact (unquoted) value.
fn check_cookie_condition(name: &str, value: &str) -> Result<NameValue, String> {
    if !is_valid_cookie_name(name) {
        return Err(format!("{name:?} is not a valid cookie name"));
    }
    if !value.bytes().all(cookie::is_cookie_octet) {
        return Err(format!(
            "{value:?} is not a cookie value: no spaces, quotes, commas, semicolons, \
             backslashes or control characters (quoted request values are unquoted \
             before comparing)"
        ));
    }
    Ok((name.as_bytes().into(), value.as_bytes().into()))
}

fn check_action(spec: &ActionSpec, e: &mut Errors<'_>) -> Option<Action> {
    match spec {
        ActionSpec::Proxy {
            pool,
            set_request_headers,
            remove_request_headers,
            set_response_headers,
            remove_response_headers,
            client_subject_header,
        } => {
            let client_subject = match client_subject_header {
                None => Some(None),
                Some(name) => e.check(
                    "client_subject_header",
                    field_name_problem(name)
                        .map_or_else(|| Ok(Some(name.to_ascii_lowercase().into_boxed_str())), Err),
                ),
            };
            let request = check_edits(
                ("set_request_headers", set_request_headers),
                ("remove_request_headers", remove_request_headers),
                // Without Host an HTTP/1.1 request is invalid (RFC 9112 §3.2); setting
                // it (a virtual-host rewrite) stays allowed.
                &["host"],
                e,
            );
            let response = check_edits(
                ("set_response_headers", set_response_headers),
                ("remove_response_headers", remove_response_headers),
                &[],
                e,
            );
            Some(Action::Proxy {
                pool: *pool,
                request: request?,
                response: response?,
                client_subject: client_subject?,
            })
        }
        ActionSpec::Respond {
            status,
            body,
            content_type,
        } => {
            // 1xx are interim responses: the client would wait for a final one.
            let status = e.check(
                "status",
                if (200..=599).contains(status) {
                    Ok(*status)
                } else {
                    Err(format!("{status} is not a final status code (200..=599)"))
                },
            );
            // RFC 9110 §15.3.5, §15.3.6, §15.4.5: these responses never have content.
            let body_ok = match status {
                Some(s @ (204 | 205 | 304)) if !body.is_empty() => {
                    e.push("body", format!("a {s} response has no body; remove it"));
                    false
                }
                _ => true,
            };
            let content_type = match content_type {
                None => Some(DEFAULT_CONTENT_TYPE.into()),
                Some(ct) if ct.is_empty() => {
                    e.push(
                        "content_type",
                        "is empty; leave it out for text/plain".into(),
                    );
                    None
                }
                Some(ct) => e.check(
                    "content_type",
                    check_field_value("content_type", ct).map(|()| ct.as_str().into()),
                ),
            };
            if !body_ok {
                return None;
            }
            Some(Action::Respond {
                status: status?,
                body: body.as_str().into(),
                content_type: content_type?,
            })
        }
    }
}

/// What is wrong with a field name a route sets or removes, if anything.
fn field_name_problem(name: &str) -> Option<String> {
    if !is_token(name.as_bytes()) {
        Some(format!("{name:?} is not a valid field name"))
    } else if MANAGED_FIELDS.iter().any(|m| m.eq_ignore_ascii_case(name)) {
        Some(format!(
            "{name:?} is managed by the proxy (framing and connection fields)"
        ))
    } else {
        None
    }
}

/// One direction's set and remove lists.
fn check_edits(
    (set_field, set): (&'static str, &[(String, String)]),
    (remove_field, remove): (&'static str, &[String]),
    not_removable: &[&str],
    e: &mut Errors<'_>,
) -> Option<HeaderEdits> {
    let errors_before = e.list.len();
    let name_problem = field_name_problem;
    let mut set_out: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(set.len());
    for (name, value) in set {
        if let Some(m) = name_problem(name) {
            e.push(set_field, m);
            continue;
        }
        if let Err(m) = check_field_value(&format!("value of {name:?}"), value) {
            e.push(set_field, m);
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if set_out.iter().any(|(n, _)| **n == *lower) {
            e.push(set_field, format!("{name:?} is set twice"));
            continue;
        }
        set_out.push((lower.into(), value.as_str().into()));
    }
    let mut remove_out: Vec<Box<str>> = Vec::with_capacity(remove.len());
    for name in remove {
        let problem = name_problem(name).or_else(|| {
            not_removable
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
                .then(|| format!("{name:?} is required and cannot be removed"))
        });
        if let Some(m) = problem {
            e.push(remove_field, m);
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if set_out.iter().any(|(n, _)| **n == *lower) {
            e.push(
                remove_field,
                format!("{name:?} is also in {set_field}; a set already replaces it"),
            );
            continue;
        }
        // A repeated removal is harmless; keep the list minimal.
        if !remove_out.iter().any(|r| **r == *lower) {
            remove_out.push(lower.into());
        }
    }
    (e.list.len() == errors_before).then(|| HeaderEdits {
        set: set_out.into(),
        remove: remove_out.into(),
    })
}

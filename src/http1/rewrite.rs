//! The request head sent upstream: a pure function of the parsed head, the client's
//! buffer and the options, writing into a reused `Vec<u8>`.

use std::io::Write as _;
use std::net::IpAddr;

use super::syntax::{connection_names, eq_ci, is_field_vchar, is_ows, is_token, is_valid_host};
use super::{BodyFraming, RequestHead, ResponseHead, TargetForm};
use crate::route::HeaderEdits;

/// The scheme the client used to reach the proxy, sent as X-Forwarded-Proto.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardedProto {
    /// `http`
    Http,
    /// `https`
    Https,
}

impl ForwardedProto {
    fn as_bytes(self) -> &'static [u8] {
        match self {
            ForwardedProto::Http => b"http",
            ForwardedProto::Https => b"https",
        }
    }
}

/// How [`write_upstream_request`] rewrites a request head.
#[derive(Clone, Copy, Debug)]
pub struct RewriteOptions<'a> {
    /// Appended to X-Forwarded-For (joined after any values the client sent); `None`
    /// leaves X-Forwarded-For as received.
    pub client_addr: Option<IpAddr>,
    /// Sets X-Forwarded-Proto (replacing any the client sent); `None` leaves it as received.
    pub proto: Option<ForwardedProto>,
    /// Host sent when the request carries none (an HTTP/1.0 request: upstream requests
    /// are HTTP/1.1, which requires Host). Should be a valid `host[:port]`.
    pub default_host: &'a str,
    /// Fields to set: every received field of that name is replaced by this one.
    /// Entries with an invalid name or value, or naming a framing or hop-by-hop field,
    /// are skipped (see [`validate`](Self::validate)). `Host` may be set.
    pub set_headers: &'a [(&'a str, &'a str)],
    /// Fields to remove. Framing, hop-by-hop fields and Host can not be removed here.
    pub remove_headers: &'a [&'a str],
    /// Send `Connection: close` upstream (no reuse of the upstream connection).
    pub connection_close: bool,
    /// A route's validated edits, applied like `set_headers` / `remove_headers`.
    pub edits: Option<&'a HeaderEdits>,
}

impl Default for RewriteOptions<'_> {
    fn default() -> Self {
        RewriteOptions {
            client_addr: None,
            proto: None,
            default_host: "localhost",
            set_headers: &[],
            remove_headers: &[],
            connection_close: false,
            edits: None,
        }
    }
}

/// Fields the rewriter owns: hop-by-hop fields (RFC 9110 §7.6.1) and the framing
/// fields it re-emits canonically. Proxy-Authorization / Proxy-Authenticate are
/// credentials for this hop: never passed to the server.
const HOP_BY_HOP: &[&[u8]] = &[
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"content-length",
    b"upgrade",
    b"proxy-authorization",
    b"proxy-authenticate",
];

fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP.iter().any(|h| eq_ci(name, h))
}

/// Whether a configured field value can be sent as is: field-value bytes only, no
/// leading or trailing whitespace (which a reparse would trim).
fn is_clean_value(v: &[u8]) -> bool {
    v.iter().all(|&b| is_field_vchar(b))
        && !v.first().is_some_and(|&b| is_ows(b))
        && !v.last().is_some_and(|&b| is_ows(b))
}

/// Whether a `set_headers` entry is used.
fn settable(name: &str, value: &str) -> bool {
    let (n, v) = (name.as_bytes(), value.as_bytes());
    is_token(n)
        && !is_hop_by_hop(n)
        && is_clean_value(v)
        && (!eq_ci(n, b"host") || is_valid_host(v))
}

impl RewriteOptions<'_> {
    /// Checks the configured lists; call when loading configuration so that entries
    /// the writer would skip are reported instead.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !is_valid_host(self.default_host.as_bytes()) {
            return Err("default_host is not a valid host[:port]");
        }
        for (n, v) in self.set_headers {
            if !settable(n, v) {
                return Err(
                    "set_headers entry has an invalid or protected name, or an invalid value",
                );
            }
        }
        for n in self.remove_headers {
            let n = n.as_bytes();
            if !is_token(n) || is_hop_by_hop(n) || eq_ci(n, b"host") {
                return Err("remove_headers entry is invalid or protected");
            }
        }
        Ok(())
    }

    fn is_set(&self, name: &[u8]) -> bool {
        self.set_headers
            .iter()
            .any(|(n, v)| eq_ci(name, n.as_bytes()) && settable(n, v))
            || self.edit_set(name).is_some()
    }

    fn is_removed(&self, name: &[u8]) -> bool {
        !eq_ci(name, b"host")
            && (self
                .remove_headers
                .iter()
                .any(|n| eq_ci(name, n.as_bytes()))
                || self
                    .edits
                    .is_some_and(|e| e.remove.iter().any(|n| eq_ci(name, n.as_bytes()))))
    }

    /// The value a route edit sets for `name`, if any (edits are validated at load).
    fn edit_set(&self, name: &[u8]) -> Option<&str> {
        self.edits?
            .set
            .iter()
            .find(|(n, v)| eq_ci(name, n.as_bytes()) && settable(n, v))
            .map(|(_, v)| &**v)
    }
}

/// Appends the request head for the upstream to `out` (the caller clears it; no
/// allocation once its capacity is warm). `head` must come from parsing `buf`.
///
/// The head is rebuilt rather than patched:
/// - request-line: method, origin-form target (absolute-form is reduced to its path,
///   RFC 9112 §3.2.2), `HTTP/1.1`;
/// - `Host` first: the received one, a `set_headers` override, or `default_host`;
/// - received fields in order, minus hop-by-hop ones (Connection and every field it
///   names, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade unless upgrading,
///   Proxy-Authorization/-Authenticate; RFC 9110 §7.6.1), minus fields replaced or
///   removed by the options, minus an Expect the head ignored;
/// - framing re-emitted canonically from the validated head (one `Content-Length` or
///   `Transfer-Encoding: chunked`), so the upstream can not read it differently;
/// - X-Forwarded-For (received values joined, then the client address),
///   X-Forwarded-Proto, the `set_headers` fields, and Connection (`upgrade` or `close`).
pub fn write_upstream_request(
    head: &RequestHead,
    buf: &[u8],
    out: &mut Vec<u8>,
    opts: &RewriteOptions<'_>,
) {
    out.extend_from_slice(head.method_span.get(buf));
    out.push(b' ');
    let path = head.path.get(buf);
    if head.target_form == TargetForm::Absolute && !path.starts_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\n");

    let host_override = opts
        .set_headers
        .iter()
        .find(|(n, v)| eq_ci(n.as_bytes(), b"host") && settable(n, v))
        .map(|(_, v)| *v)
        .or_else(|| opts.edit_set(b"host"));
    out.extend_from_slice(b"Host: ");
    match (host_override, head.host) {
        (Some(v), _) => out.extend_from_slice(v.as_bytes()),
        (None, Some(h)) => out.extend_from_slice(h.get(buf)),
        (None, None) => out.extend_from_slice(opts.default_host.as_bytes()),
    }
    out.extend_from_slice(b"\r\n");

    let mut has_xff = false;
    for field in head.headers(buf) {
        let name = field.name;
        if eq_ci(name, b"x-forwarded-for") && !field.value.is_empty() {
            has_xff = true;
        }
        let drop = eq_ci(name, b"host")
            || (is_hop_by_hop(name) && !(head.upgrade && eq_ci(name, b"upgrade")))
            || (!(head.upgrade && eq_ci(name, b"upgrade"))
                && connection_names(buf, &head.fields, head.headers_span, name))
            || (eq_ci(name, b"expect") && !head.expect_continue)
            || (opts.client_addr.is_some() && eq_ci(name, b"x-forwarded-for"))
            || (opts.proto.is_some() && eq_ci(name, b"x-forwarded-proto"))
            || opts.is_set(name)
            || opts.is_removed(name);
        if !drop {
            write_field(out, name, field.value);
        }
    }

    write_framing(out, head.framing, true);

    if let Some(addr) = opts.client_addr {
        out.extend_from_slice(b"X-Forwarded-For: ");
        if has_xff && !opts.is_removed(b"x-forwarded-for") {
            let received = head
                .headers(buf)
                .filter(|f| eq_ci(f.name, b"x-forwarded-for") && !f.value.is_empty());
            for f in received {
                out.extend_from_slice(f.value);
                out.extend_from_slice(b", ");
            }
        }
        write_ip(out, addr);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(proto) = opts.proto {
        write_field(out, b"X-Forwarded-Proto", proto.as_bytes());
    }
    for (n, v) in opts.set_headers {
        if settable(n, v) && !eq_ci(n.as_bytes(), b"host") {
            write_field(out, n.as_bytes(), v.as_bytes());
        }
    }
    for (n, v) in opts.edits.map_or(&[][..], |e| &e.set[..]) {
        if settable(n, v) && !eq_ci(n.as_bytes(), b"host") {
            write_field(out, n.as_bytes(), v.as_bytes());
        }
    }
    if head.upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if opts.connection_close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How [`write_client_response`] rewrites a response head for the client.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResponseRewrite<'a> {
    /// The route's response edits.
    pub edits: Option<&'a HeaderEdits>,
    /// A `Set-Cookie` value to add (the sticky-session cookie).
    pub set_cookie: Option<&'a [u8]>,
    /// The request was HEAD: the received framing fields describe the body a GET would
    /// have had and are passed on as they are.
    pub head_request: bool,
    /// The client connection closes after this response: say `Connection: close`.
    pub connection_close: bool,
    /// An HTTP/1.0 client that asked for keep-alive: say `Connection: keep-alive`, which
    /// HTTP/1.0 needs to keep the connection (RFC 9112 §9.3).
    pub keep_alive_1_0: bool,
    /// The body is re-framed for the client (a chunked body sent to an HTTP/1.0
    /// client as raw bytes ending at close): leave out Transfer-Encoding.
    pub dechunk: bool,
}

/// Appends the response head for the client to `out` (the caller clears it).
///
/// As for requests, the head is rebuilt: status-line as `HTTP/1.1 <status> <reason>`;
/// received fields in order minus hop-by-hop ones (Connection and what it names,
/// Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade unless switching protocols,
/// Proxy-Authenticate) and minus the route's removals and replacements; framing re-emitted
/// from the validated head (for HEAD and 304 the received Content-Length is passed on,
/// being information about the representation, RFC 9110 §8.6; for 1xx and 204 it is
/// dropped); then the route's set fields, the sticky cookie and Connection.
pub fn write_client_response(
    head: &ResponseHead,
    buf: &[u8],
    out: &mut Vec<u8>,
    opts: &ResponseRewrite<'_>,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    write_u64(out, u64::from(head.status));
    out.push(b' ');
    out.extend_from_slice(head.reason.get(buf));
    out.extend_from_slice(b"\r\n");
    let switching = head.is_switching_protocols();
    let informational_length =
        head.framing == BodyFraming::None && (opts.head_request || head.status == 304);
    let edits = opts.edits;
    for field in head.headers(buf) {
        let name = field.name;
        let framing_field = eq_ci(name, b"content-length") || eq_ci(name, b"transfer-encoding");
        let drop = if framing_field {
            !informational_length
        } else {
            (is_hop_by_hop(name) && !(switching && eq_ci(name, b"upgrade")))
                || (!switching && connection_names(buf, &head.fields, head.headers_span, name))
                || edits.is_some_and(|e| e.drops(name))
        };
        if !drop {
            write_field(out, name, field.value);
        }
    }
    write_framing(out, head.framing, !opts.dechunk);
    for (n, v) in edits.map_or(&[][..], |e| &e.set[..]) {
        write_field(out, n.as_bytes(), v.as_bytes());
    }
    if let Some(cookie) = opts.set_cookie {
        write_field(out, b"Set-Cookie", cookie);
    }
    if switching {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if opts.connection_close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if opts.keep_alive_1_0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The framing field of a validated head, written canonically: one Content-Length, or
/// `Transfer-Encoding: chunked` when `chunked_as_is` (else the body is re-framed).
fn write_framing(out: &mut Vec<u8>, framing: BodyFraming, chunked_as_is: bool) {
    match framing {
        BodyFraming::ContentLength(n) => {
            out.extend_from_slice(b"Content-Length: ");
            write_u64(out, n);
            out.extend_from_slice(b"\r\n");
        }
        BodyFraming::Chunked if chunked_as_is => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n")
        }
        _ => {}
    }
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `addr` as text, as `Display` writes it. Every proxied request carries the
/// client's address, so IPv4 is written octet by octet: going through `Display` and
/// `fmt::Write` costs several times as much.
pub(crate) fn write_ip(out: &mut Vec<u8>, addr: IpAddr) {
    match addr {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_u64(out, u64::from(octet));
            }
        }
        // Writing to a Vec can not fail; Ipv6Addr's Display does not allocate.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Decimal digits of `n` without going through `fmt`.
pub(crate) fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or(&[]));
}

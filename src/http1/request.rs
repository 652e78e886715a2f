//! Request heads: `httparse` with every lenient option off finds the end of the head and
//! checks the token grammar; the checks here add what it leaves out (bare LF, Host,
//! request-target, and the framing rules of RFC 9112 §6).

use super::syntax::{
    diagnose, eq_ci, is_tchar, is_valid_host, is_valid_path_query, list_elements, scan_raw,
    FieldLines, FramingFields, Headers, TeOutcome,
};
use super::{BodyFraming, HeadStatus, Limits, RequestError, Span, Why};

/// The request method, classified; the exact bytes are at [`RequestHead::method_span`].
/// Methods are case-sensitive (RFC 9110 §9.1): `get` is [`Method::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`: the response never has a body.
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `OPTIONS`: the only method allowed with the asterisk-form target `*`.
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// `CONNECT`: refused by [`parse_request_head`] (501), listed so responses can be
    /// framed for it ([`parse_response_head_for`](super::parse_response_head_for)).
    Connect,
    /// Any other valid method token.
    Other,
}

impl Method {
    /// Classifies a method token.
    pub fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }
}

/// The form of the request-target (RFC 9112 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetForm {
    /// `/path?query`, the usual form.
    Origin,
    /// `http://authority/path?query`; the authority must equal Host.
    Absolute,
    /// `*`, only with OPTIONS.
    Asterisk,
}

/// A parsed, validated request head: offsets into the caller's buffer, cheap to keep
/// (it is `Copy`) while the request is forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, classified.
    pub method: Method,
    /// The method token.
    pub method_span: Span,
    /// The request-target exactly as received.
    pub target: Span,
    /// The form of the request-target.
    pub target_form: TargetForm,
    /// Path and query to send upstream in origin-form. For the absolute-form it is what
    /// follows the authority and may be empty or start with `?` (then a `/` is implied);
    /// for the asterisk-form it is `*`.
    pub path: Span,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// Length of the head including leading empty lines and the final CRLF: the body (or
    /// the next pipelined request) starts at this offset.
    pub head_len: usize,
    /// The field lines (from after the request-line through the final empty line).
    pub headers_span: Span,
    /// Number of field lines.
    pub header_count: usize,
    /// How the body is framed: `None`, `ContentLength` or `Chunked` (never `UntilClose`).
    pub framing: BodyFraming,
    /// The Host value (or, for an absolute-form target without Host, its authority).
    pub host: Option<Span>,
    /// Whether the client connection may stay open after this exchange: HTTP/1.1
    /// unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`
    /// (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// `Expect: 100-continue` in an HTTP/1.1 request (ignored in HTTP/1.0, RFC 9110
    /// §10.1.1).
    pub expect_continue: bool,
    /// An HTTP/1.1 upgrade request: `Connection: upgrade` and an Upgrade field
    /// (RFC 9110 §7.8). The proxy decides whether it allows the protocol.
    pub upgrade: bool,
    /// Connection options, kept for the rewriter.
    pub(crate) fields: FramingFields,
}

impl RequestHead {
    /// The method token.
    pub fn method_bytes<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.method_span.get(buf)
    }

    /// The request-target as received.
    pub fn target_bytes<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.target.get(buf)
    }

    /// The Host value, if any (see [`host`](Self::host)).
    pub fn host_bytes<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        self.host.map(|s| s.get(buf))
    }

    /// The field lines, in order.
    pub fn headers<'a>(&self, buf: &'a [u8]) -> Headers<'a> {
        Headers::new(buf, self.headers_span)
    }

    /// The value of the first field named `name` (case-insensitive).
    pub fn header<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        self.headers(buf).first(name)
    }

    /// Where the body starts in the buffer (same as [`head_len`](Self::head_len)).
    pub fn body_start(&self) -> usize {
        self.head_len
    }
}

/// The strict `httparse` configuration: every lenient option is off (these are also
/// the defaults, spelled out so a future default change can not loosen us). Requests
/// never get obs-fold or space-before-colon leniency in `httparse` 1.10 at all.
pub(crate) fn strict_config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(false)
        .allow_obsolete_multiline_headers_in_responses(false)
        .allow_multiple_spaces_in_request_line_delimiters(false)
        .allow_multiple_spaces_in_response_status_delimiters(false)
        .allow_space_before_first_header_name(false)
        .ignore_invalid_headers_in_responses(false)
        .ignore_invalid_headers_in_requests(false);
    c
}

/// Looks at the bytes buffered so far for a request head.
///
/// `scratch` is working space for `httparse` (e.g. `[httparse::EMPTY_HEADER; 100]` on the
/// stack); at most `min(scratch.len(), limits.max_headers)` fields are accepted. On
/// `Complete`, the returned head describes `buf[..head.head_len]`; pipelined bytes after
/// the body are untouched. On any error the proxy answers `err.status()` and closes.
///
/// Check-parse-advance: call again with more bytes after `Partial`; the work is redone
/// from the start of `buf`, which is bounded by `limits.max_head_bytes`.
pub fn parse_request_head<'b>(
    buf: &'b [u8],
    limits: &Limits,
    scratch: &mut [httparse::Header<'b>],
) -> Result<HeadStatus<RequestHead>, RequestError> {
    // Never let httparse look past the head limit: a complete head is then within it.
    let view = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    let slots = limits.max_headers.min(scratch.len());
    let scratch = match scratch.get_mut(..slots) {
        Some(s) => s,
        None => return Err(RequestError::TooManyHeaders),
    };
    let mut req = httparse::Request::new(scratch);
    match strict_config().parse_request(&mut req, view) {
        Ok(httparse::Status::Complete(head_len)) => {
            let minor = req.version.unwrap_or(1);
            let count = req.headers.len();
            finish(buf, head_len, minor, count, limits).map(HeadStatus::Complete)
        }
        Ok(httparse::Status::Partial) => {
            // RFC 9112 §3: a server SHOULD answer 414 to a target longer than it
            // accepts; detect it as soon as the target alone is too long, so a client
            // can not make us buffer a huge request-line first.
            if partial_target_len(view) > limits.max_uri_bytes {
                Err(RequestError::UriTooLong)
            } else if buf.len() >= limits.max_head_bytes {
                Err(RequestError::HeadTooLarge)
            } else {
                Ok(HeadStatus::Partial)
            }
        }
        Err(e) => Err(map_httparse_error(view, e)),
    }
}

fn map_httparse_error(view: &[u8], e: httparse::Error) -> RequestError {
    let fallback = match e {
        httparse::Error::TooManyHeaders => return RequestError::TooManyHeaders,
        httparse::Error::Token => token_error(view),
        httparse::Error::Version => Why::Version,
        httparse::Error::HeaderName => Why::HeaderName,
        httparse::Error::HeaderValue => Why::HeaderValue,
        httparse::Error::NewLine | httparse::Error::Status => Why::StartLine,
    };
    RequestError::Malformed(diagnose(view, fallback))
}

/// `httparse` reports a bad method and a bad target alike; tell them apart.
fn token_error(view: &[u8]) -> Why {
    let line = skip_leading_crlf(view);
    let method_len = line.iter().take_while(|&&b| is_tchar(b)).count();
    match (method_len, line.get(method_len), line.get(method_len + 1)) {
        (0, _, _) => Why::Method,
        (_, Some(b' '), Some(b' ')) => Why::StartLine,
        (_, Some(b' '), _) => Why::Target,
        _ => Why::Method,
    }
}

/// RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the
/// request-line (left over after a body by old clients). Only CRLF is skipped; a bare
/// LF is caught later as [`Why::BareLf`].
fn skip_leading_crlf(buf: &[u8]) -> &[u8] {
    let mut rest = buf;
    while let Some(r) = rest.strip_prefix(b"\r\n") {
        rest = r;
    }
    rest
}

/// Length of the request-target seen so far in an incomplete head (0 if the method is
/// not complete yet).
fn partial_target_len(view: &[u8]) -> usize {
    let line = skip_leading_crlf(view);
    let Some(sp) = line.iter().position(|&b| b == b' ') else {
        return 0;
    };
    let target = line.get(sp + 1..).unwrap_or(&[]);
    target
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .unwrap_or(target.len())
}

/// Validates a head `httparse` accepted and derives its framing.
fn finish(
    buf: &[u8],
    head_len: usize,
    minor: u8,
    header_count: usize,
    limits: &Limits,
) -> Result<RequestHead, RequestError> {
    let bad = RequestError::Malformed;
    let head = buf.get(..head_len).ok_or(bad(Why::StartLine))?;
    scan_raw(head).map_err(bad)?;

    // The request-line, located structurally: httparse accepted single-SP delimiters
    // only, and the raw scan guarantees CRLF line endings.
    let line_start = head_len.saturating_sub(skip_leading_crlf(head).len());
    let line = head.get(line_start..).unwrap_or(&[]);
    let sp1 = memchr::memchr(b' ', line).ok_or(bad(Why::StartLine))?;
    let after = line.get(sp1 + 1..).unwrap_or(&[]);
    let sp2 = memchr::memchr(b' ', after).ok_or(bad(Why::StartLine))?;
    let method_span = Span::new(line_start, line_start + sp1);
    let target = Span::new(method_span.end + 1, method_span.end + 1 + sp2);
    // "HTTP/1.x" then CRLF.
    let headers_start = target.end + 1 + 8 + 2;
    if head.get(target.end + 1 + 8..headers_start) != Some(&b"\r\n"[..]) {
        return Err(bad(Why::StartLine));
    }
    let headers_span = Span::new(headers_start, head_len);

    let method = Method::from_bytes(method_span.get(buf));
    if method == Method::Connect {
        return Err(RequestError::UnsupportedMethod);
    }
    if target.len() > limits.max_uri_bytes {
        return Err(RequestError::UriTooLong);
    }
    let (target_form, path, authority) = classify_target(method, target.get(buf)).map_err(bad)?;
    let path = path.shift(target.start);
    let authority = authority.map(|a| a.shift(target.start));

    let mut fields = FramingFields::default();
    let mut host: Option<Span> = None;
    let mut host_lines = 0usize;
    let mut expect_continue = false;
    let mut upgrade_field = false;
    for (name_span, value_span) in FieldLines::new(buf, headers_span) {
        let name = name_span.get(buf);
        let value = value_span.get(buf);
        if eq_ci(name, b"host") {
            host_lines += 1;
            host = Some(value_span);
        } else if eq_ci(name, b"expect") {
            // RFC 9110 §10.1.1: only 100-continue is defined; 417 for anything else.
            for e in list_elements(value).filter(|e| !e.is_empty()) {
                if !eq_ci(e, b"100-continue") {
                    return Err(RequestError::ExpectationFailed);
                }
                expect_continue = minor == 1;
            }
        } else if eq_ci(name, b"upgrade") {
            upgrade_field = true;
        }
        fields.fold(name, value, value_span).map_err(bad)?;
    }

    // Host: RFC 9112 §3.2 — an HTTP/1.1 request without Host, or with several, MUST be
    // answered with 400; the value must be a valid authority.
    if host_lines > 1 {
        return Err(bad(Why::DuplicateHost));
    }
    if let Some(h) = host {
        if !is_valid_host(h.get(buf)) {
            return Err(bad(Why::InvalidHost));
        }
    }
    if let Some(a) = authority {
        // RFC 9112 §3.2.2 has the server ignore Host for an absolute-form target; a proxy
        // routing on one and a server on the other disagree, so demand they match.
        match host {
            Some(h) if !eq_ci(h.get(buf), a.get(buf)) => return Err(bad(Why::HostMismatch)),
            Some(_) => {}
            None if minor == 1 => return Err(bad(Why::MissingHost)),
            None => host = Some(a),
        }
    } else if host.is_none() && minor == 1 {
        return Err(bad(Why::MissingHost));
    }

    // Framing, RFC 9112 §6.1 and §6.3.
    let te = fields.transfer_encoding();
    if fields.te_present && minor == 0 {
        return Err(bad(Why::TransferEncodingInHttp10));
    }
    if fields.te_present && fields.content_length.is_some() {
        return Err(bad(Why::ContentLengthWithTransferEncoding));
    }
    let framing = match te.map_err(bad)? {
        TeOutcome::Unsupported => return Err(RequestError::UnsupportedTransferCoding),
        TeOutcome::Chunked => BodyFraming::Chunked,
        TeOutcome::Absent => match fields.content_length {
            Some(n) => {
                if limits.max_body_bytes.is_some_and(|max| n > max) {
                    return Err(RequestError::BodyTooLarge);
                }
                BodyFraming::ContentLength(n)
            }
            // Rule 7: a request without either has no body.
            None => BodyFraming::None,
        },
    };

    let keep_alive = if minor == 1 {
        !fields.close
    } else {
        fields.keep_alive && !fields.close
    };
    // RFC 9110 §7.8: Upgrade in an HTTP/1.0 request MUST be ignored.
    let upgrade = minor == 1 && fields.conn_upgrade && upgrade_field;

    Ok(RequestHead {
        method,
        method_span,
        target,
        target_form,
        path,
        version_minor: minor,
        head_len,
        headers_span,
        header_count,
        framing,
        host,
        keep_alive,
        expect_continue,
        upgrade,
        fields,
    })
}

/// Splits a request-target into its form, the path-and-query and (absolute-form) the
/// authority; spans are relative to `t`.
fn classify_target(method: Method, t: &[u8]) -> Result<(TargetForm, Span, Option<Span>), Why> {
    let all = Span::new(0, t.len());
    if t == b"*" {
        // RFC 9112 §3.2.4: asterisk-form only for a server-wide OPTIONS.
        return if method == Method::Options {
            Ok((TargetForm::Asterisk, all, None))
        } else {
            Err(Why::Target)
        };
    }
    if t.first() == Some(&b'/') {
        return if is_valid_path_query(t) {
            Ok((TargetForm::Origin, all, None))
        } else {
            Err(Why::Target)
        };
    }
    // RFC 9112 §3.2.2: a server MUST accept the absolute-form. Only http(s) URIs make
    // sense for a reverse proxy.
    let scheme_len = if t.len() >= 7 && eq_ci(t.get(..7).unwrap_or(&[]), b"http://") {
        7
    } else if t.len() >= 8 && eq_ci(t.get(..8).unwrap_or(&[]), b"https://") {
        8
    } else {
        return Err(Why::Target);
    };
    let rest = t.get(scheme_len..).unwrap_or(&[]);
    let auth_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = Span::new(scheme_len, scheme_len + auth_len);
    if !is_valid_host(authority.get(t)) {
        return Err(Why::Target);
    }
    let path = Span::new(authority.end, t.len());
    if !is_valid_path_query(path.get(t)) {
        return Err(Why::Target);
    }
    Ok((TargetForm::Absolute, path, Some(authority)))
}

//! Response heads from the upstream: the same strict grammar and framing rules as
//! requests, plus the rules that make the body length depend on the request method and
//! the status (RFC 9112 §6.3 rules 1 and 2).

use super::request::strict_config;
use super::syntax::{diagnose, scan_raw, FieldLines, FramingFields, Headers, TeOutcome};
use super::{BodyFraming, HeadStatus, Limits, Method, ResponseError, Span, Why};

/// A parsed, validated response head: offsets into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code, 100..=599.
    pub status: u16,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// The reason phrase (possibly empty).
    pub reason: Span,
    /// Length of the head including the final CRLF: the body starts here.
    pub head_len: usize,
    /// The field lines (from after the status-line through the final empty line).
    pub headers_span: Span,
    /// Number of field lines.
    pub header_count: usize,
    /// How the body is framed. `None` for HEAD, 1xx, 204, 304 and 2xx-to-CONNECT
    /// whatever the fields say; `UntilClose` when nothing gives a length.
    pub framing: BodyFraming,
    /// Whether the upstream connection may be reused after this response: HTTP/1.1
    /// unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`, and
    /// never for an `UntilClose` body (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// Connection options, kept for a rewriter.
    pub(crate) fields: FramingFields,
}

impl ResponseHead {
    /// 1xx other than 101: an interim response; the final response follows on the same
    /// connection (RFC 9110 §15.2).
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    /// 101 Switching Protocols: after this head the connection carries the new protocol
    /// (RFC 9110 §15.2.2); the proxy switches to relaying bytes both ways.
    pub fn is_switching_protocols(&self) -> bool {
        self.status == 101
    }

    /// The field lines, in order.
    pub fn headers<'a>(&self, buf: &'a [u8]) -> Headers<'a> {
        Headers::new(buf, self.headers_span)
    }

    /// The value of the first field named `name` (case-insensitive).
    pub fn header<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        self.headers(buf).first(name)
    }

    /// Whether a Connection option of this response names `field` (hop-by-hop).
    pub fn connection_names(&self, buf: &[u8], field: &str) -> bool {
        super::syntax::connection_names(buf, &self.fields, self.headers_span, field.as_bytes())
    }
}

/// Looks at the bytes buffered so far for a response head, for a request whose method
/// was HEAD (`request_method_is_head`) or anything else but CONNECT. See
/// [`parse_response_head_for`].
pub fn parse_response_head<'b>(
    buf: &'b [u8],
    request_method_is_head: bool,
    limits: &Limits,
    scratch: &mut [httparse::Header<'b>],
) -> Result<HeadStatus<ResponseHead>, ResponseError> {
    let method = if request_method_is_head {
        Method::Head
    } else {
        Method::Get
    };
    parse_response_head_for(buf, method, limits, scratch)
}

/// Looks at the bytes buffered so far for the response to a request with
/// `request_method`. `scratch` and limits work as for
/// [`parse_request_head`](super::parse_request_head); every error means 502 for the
/// client and closing the upstream connection.
pub fn parse_response_head_for<'b>(
    buf: &'b [u8],
    request_method: Method,
    limits: &Limits,
    scratch: &mut [httparse::Header<'b>],
) -> Result<HeadStatus<ResponseHead>, ResponseError> {
    let bad = ResponseError::Malformed;
    // Only requests may be preceded by empty lines (RFC 9112 §2.2); on a response they
    // mean the previous body was longer than its framing said: the stream is out of
    // sync.
    if matches!(buf.first(), Some(b'\r' | b'\n')) {
        return Err(bad(Why::LeadingEmptyLine));
    }
    let view = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    let slots = limits.max_headers.min(scratch.len());
    let scratch = match scratch.get_mut(..slots) {
        Some(s) => s,
        None => return Err(ResponseError::TooManyHeaders),
    };
    let mut res = httparse::Response::new(scratch);
    let (head_len, minor, status) = match strict_config().parse_response(&mut res, view) {
        Ok(httparse::Status::Complete(n)) => (n, res.version.unwrap_or(1), res.code.unwrap_or(0)),
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= limits.max_head_bytes {
                Err(ResponseError::HeadTooLarge)
            } else {
                Ok(HeadStatus::Partial)
            };
        }
        Err(e) => {
            let fallback = match e {
                httparse::Error::TooManyHeaders => return Err(ResponseError::TooManyHeaders),
                httparse::Error::Version => Why::Version,
                httparse::Error::Status => Why::Status,
                httparse::Error::HeaderName => Why::HeaderName,
                httparse::Error::HeaderValue => Why::HeaderValue,
                httparse::Error::Token | httparse::Error::NewLine => Why::StartLine,
            };
            return Err(bad(diagnose(view, fallback)));
        }
    };
    let header_count = res.headers.len();

    let head = buf.get(..head_len).ok_or(bad(Why::StartLine))?;
    scan_raw(head).map_err(bad)?;
    // RFC 9110 §15: valid status codes are 100..=599.
    if !(100..=599).contains(&status) {
        return Err(bad(Why::Status));
    }
    // scan_raw passed, so every LF follows a CR: the first LF ends the status line.
    let line_end = memchr::memchr(b'\n', head)
        .and_then(|lf| lf.checked_sub(1))
        .ok_or(bad(Why::StartLine))?;
    // "HTTP/1.1 200 " is 13 bytes; the reason may be absent.
    let reason = Span::new(13.min(line_end), line_end);
    let headers_span = Span::new(line_end + 2, head_len);

    let mut fields = FramingFields::default();
    for (name, value) in FieldLines::new(buf, headers_span) {
        fields
            .fold(name.get(buf), value.get(buf), value)
            .map_err(bad)?;
    }
    // Same framing rules as requests (RFC 9112 §6.1, §6.3), applied even where the
    // status means no body: a response that states contradictory framing is not one to
    // trust with the rest of the connection.
    if fields.te_present && minor == 0 {
        return Err(bad(Why::TransferEncodingInHttp10));
    }
    if fields.te_present && fields.content_length.is_some() {
        return Err(bad(Why::ContentLengthWithTransferEncoding));
    }
    let te = match fields.transfer_encoding().map_err(bad)? {
        TeOutcome::Unsupported => return Err(ResponseError::UnsupportedTransferCoding),
        te => te,
    };

    // RFC 9112 §6.3 rules 1 and 2: no body for HEAD, 1xx, 204, 304, and a 2xx to
    // CONNECT (the connection becomes a tunnel), whatever the fields say.
    let no_body = request_method == Method::Head
        || (100..200).contains(&status)
        || status == 204
        || status == 304
        || (request_method == Method::Connect && (200..300).contains(&status));
    let framing = if no_body {
        BodyFraming::None
    } else if te == TeOutcome::Chunked {
        BodyFraming::Chunked
    } else if let Some(n) = fields.content_length {
        if limits.max_body_bytes.is_some_and(|max| n > max) {
            return Err(ResponseError::BodyTooLarge);
        }
        BodyFraming::ContentLength(n)
    } else {
        // Rule 8: the body ends when the server closes the connection.
        BodyFraming::UntilClose
    };
    let keep_alive = framing != BodyFraming::UntilClose
        && if minor == 1 {
            !fields.close
        } else {
            fields.keep_alive && !fields.close
        };

    Ok(HeadStatus::Complete(ResponseHead {
        status,
        version_minor: minor,
        reason,
        head_len,
        headers_span,
        header_count,
        framing,
        keep_alive,
        fields,
    }))
}

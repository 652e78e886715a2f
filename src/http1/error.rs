//! Small `Copy` error enums. Every error means "close the connection after answering":
//! once framing is in doubt nothing that follows on the connection can be trusted
//! (RFC 9112 §11.2).

use std::fmt;

/// Why a message was malformed: the detail behind a 400 (requests) or 502 (responses).
///
/// Only for logs and tests; the status code does not depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The request-line or status-line does not follow RFC 9112 §3 / §4 (e.g. several
    /// spaces, missing parts, trailing space).
    StartLine,
    /// The method is not a token (RFC 9110 §9.1).
    Method,
    /// The request-target is not a valid origin-, absolute- or asterisk-form
    /// (RFC 9112 §3.2), or contains bytes outside the accepted set.
    Target,
    /// The HTTP version is not `HTTP/1.0` or `HTTP/1.1` (this includes the HTTP/2
    /// connection preface `PRI * HTTP/2.0`).
    Version,
    /// The response status code is not three digits in 100..=599 (RFC 9110 §15).
    Status,
    /// Empty lines before a status-line (only requests may be preceded by CRLFs,
    /// RFC 9112 §2.2).
    LeadingEmptyLine,
    /// A field name is empty or not a token, or a field line has no colon.
    HeaderName,
    /// A field value holds a byte that is not allowed (RFC 9110 §5.5).
    HeaderValue,
    /// Whitespace between a field name and the colon (RFC 9112 §5.1: MUST reject).
    WhitespaceBeforeColon,
    /// A field line starting with SP / HTAB, i.e. obs-fold (RFC 9112 §5.2).
    ObsFold,
    /// A LF not preceded by CR (RFC 9112 §2.2 allows it; we do not).
    BareLf,
    /// A CR not followed by LF (RFC 9112 §2.2: MUST be rejected or replaced).
    BareCr,
    /// A NUL byte in the head (RFC 9110 §5.5).
    Nul,
    /// An HTTP/1.1 request without a Host field (RFC 9112 §3.2: MUST answer 400).
    MissingHost,
    /// More than one Host field line (RFC 9112 §3.2: MUST answer 400).
    DuplicateHost,
    /// The Host value is not `host[:port]` (RFC 9112 §3.2).
    InvalidHost,
    /// An absolute-form target whose authority differs from the Host field: the proxy
    /// and the server could route the request differently (RFC 9112 §3.2.2).
    HostMismatch,
    /// A Content-Length value that is not one or more digits fitting in `u64`
    /// (RFC 9110 §8.6).
    InvalidContentLength,
    /// Several Content-Length values that differ (RFC 9112 §6.3 rule 5).
    ConflictingContentLength,
    /// Content-Length and Transfer-Encoding together (RFC 9112 §6.3 rule 3: "ought to
    /// be handled as an error").
    ContentLengthWithTransferEncoding,
    /// A Transfer-Encoding list whose final coding is not `chunked`, that repeats
    /// `chunked`, or that is not a list of tokens (RFC 9112 §6.3 rule 4, §7).
    InvalidTransferEncoding,
    /// Transfer-Encoding in an HTTP/1.0 message (RFC 9112 §6.1: framing is faulty).
    TransferEncodingInHttp10,
    /// A Connection option naming a field that carries framing or routing
    /// (Content-Length, Transfer-Encoding, Host): dropping it as hop-by-hop would change
    /// how the next hop frames or routes the message (RFC 9110 §7.6.1).
    ConnectionOption,
    /// A field name equal to Content-Length or Transfer-Encoding once `_` is read
    /// as `-`: some servers (CGI-style gateways) normalise it and would frame the message
    /// differently from us.
    AmbiguousHeaderName,
    /// The chunked body is malformed.
    Chunked(ChunkError),
}

impl Why {
    /// A short description for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::StartLine => "malformed start line",
            Why::Method => "invalid method",
            Why::Target => "invalid request target",
            Why::Version => "unsupported HTTP version",
            Why::Status => "invalid status code",
            Why::LeadingEmptyLine => "empty line before status line",
            Why::HeaderName => "invalid header name",
            Why::HeaderValue => "invalid header value",
            Why::WhitespaceBeforeColon => "whitespace between header name and colon",
            Why::ObsFold => "obsolete line folding",
            Why::BareLf => "bare LF",
            Why::BareCr => "bare CR",
            Why::Nul => "NUL byte",
            Why::MissingHost => "missing Host",
            Why::DuplicateHost => "duplicate Host",
            Why::InvalidHost => "invalid Host",
            Why::HostMismatch => "Host differs from absolute-form authority",
            Why::InvalidContentLength => "invalid Content-Length",
            Why::ConflictingContentLength => "conflicting Content-Length values",
            Why::ContentLengthWithTransferEncoding => "Content-Length with Transfer-Encoding",
            Why::InvalidTransferEncoding => "invalid Transfer-Encoding",
            Why::TransferEncodingInHttp10 => "Transfer-Encoding in HTTP/1.0",
            Why::ConnectionOption => "Connection names a framing field",
            Why::AmbiguousHeaderName => "header name ambiguous with a framing field",
            Why::Chunked(e) => e.as_str(),
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was refused; maps to the status the proxy answers with before closing
/// the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// 400: the request is malformed or its framing is ambiguous.
    Malformed(Why),
    /// 431: no complete head within `Limits::max_head_bytes`.
    HeadTooLarge,
    /// 431: more than `Limits::max_headers` fields.
    TooManyHeaders,
    /// 414: request-target longer than `Limits::max_uri_bytes`.
    UriTooLong,
    /// 413: body longer than `Limits::max_body_bytes`.
    BodyTooLarge,
    /// 501: a transfer coding other than `chunked` (RFC 9112 §6.1: a server "SHOULD
    /// respond with 501" to codings it does not understand).
    UnsupportedTransferCoding,
    /// 501: the method is recognised but not implemented here (CONNECT: this is a
    /// reverse proxy, not a tunnel; RFC 9110 §15.6.2).
    UnsupportedMethod,
    /// 417: an Expect value other than `100-continue` (RFC 9110 §10.1.1).
    ExpectationFailed,
}

impl RequestError {
    /// The status code the proxy answers with.
    pub fn status(self) -> u16 {
        match self {
            RequestError::Malformed(_) => 400,
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => 431,
            RequestError::UriTooLong => 414,
            RequestError::BodyTooLarge => 413,
            RequestError::UnsupportedTransferCoding | RequestError::UnsupportedMethod => 501,
            RequestError::ExpectationFailed => 417,
        }
    }

    /// The reason phrase for [`status`](Self::status) (RFC 9110 §15).
    pub fn reason(self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            413 => "Content Too Large",
            414 => "URI Too Long",
            417 => "Expectation Failed",
            431 => "Request Header Fields Too Large",
            _ => "Not Implemented",
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Malformed(why) => write!(f, "400 Bad Request: {why}"),
            other => write!(f, "{} {}", other.status(), other.reason()),
        }
    }
}

impl std::error::Error for RequestError {}

impl From<BodyError> for RequestError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => RequestError::BodyTooLarge,
            other => RequestError::Malformed(Why::Chunked(other)),
        }
    }
}

/// Why an upstream response was refused; the client gets 502 Bad Gateway and the
/// upstream connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseError {
    /// The response is malformed or its framing is ambiguous.
    Malformed(Why),
    /// No complete head within `Limits::max_head_bytes`.
    HeadTooLarge,
    /// More than `Limits::max_headers` fields.
    TooManyHeaders,
    /// A transfer coding list other than exactly `chunked`.
    UnsupportedTransferCoding,
    /// Body longer than `Limits::max_body_bytes`.
    BodyTooLarge,
}

impl ResponseError {
    /// The status code answered to the client: always 502.
    pub fn status(self) -> u16 {
        502
    }

    /// The reason phrase for [`status`](Self::status).
    pub fn reason(self) -> &'static str {
        "Bad Gateway"
    }
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Malformed(why) => write!(f, "bad upstream response: {why}"),
            ResponseError::HeadTooLarge => f.write_str("upstream response head too large"),
            ResponseError::TooManyHeaders => f.write_str("too many upstream response headers"),
            ResponseError::UnsupportedTransferCoding => {
                f.write_str("unsupported upstream transfer coding")
            }
            ResponseError::BodyTooLarge => f.write_str("upstream response body too large"),
        }
    }
}

impl std::error::Error for ResponseError {}

impl From<BodyError> for ResponseError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => ResponseError::BodyTooLarge,
            other => ResponseError::Malformed(Why::Chunked(other)),
        }
    }
}

/// Why a body could not be framed: a malformed chunked coding, or a body over the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The chunk size is empty, not hex, or followed by junk (e.g. `0x5`, ` 5`, `5 `).
    InvalidChunkSize,
    /// The chunk size has more than 16 hex digits (does not fit `u64`).
    ChunkSizeTooLong,
    /// A chunk extension holds a byte outside VCHAR / SP / HTAB / obs-text.
    InvalidExtension,
    /// A chunk extension longer than `Limits::max_chunk_ext_bytes`.
    ExtensionTooLong,
    /// CRLF missing where RFC 9112 §7.1 requires it (after a size line or chunk data,
    /// or a CR not followed by LF).
    MissingCrlf,
    /// A LF not preceded by CR.
    BareLf,
    /// A malformed trailer field line, or one naming a framing/routing field.
    InvalidTrailer,
    /// The trailer section is longer than `Limits::max_trailer_bytes`.
    TrailersTooLarge,
    /// The body is longer than `Limits::max_body_bytes`.
    TooLarge,
}

/// The brief's name for [`BodyError`] as returned by [`ChunkedDecoder`](super::ChunkedDecoder).
pub type ChunkError = BodyError;

impl BodyError {
    /// A short description for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyError::InvalidChunkSize => "invalid chunk size",
            BodyError::ChunkSizeTooLong => "chunk size too long",
            BodyError::InvalidExtension => "invalid chunk extension",
            BodyError::ExtensionTooLong => "chunk extension too long",
            BodyError::MissingCrlf => "missing CRLF in chunked body",
            BodyError::BareLf => "bare LF in chunked body",
            BodyError::InvalidTrailer => "invalid trailer field",
            BodyError::TrailersTooLarge => "trailers too large",
            BodyError::TooLarge => "body too large",
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for BodyError {}

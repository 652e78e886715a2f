//! Sans-IO HTTP/1.1 message framing (RFC 9112) for the proxy.
//!
//! Nothing in this module touches a socket or a clock. The per-connection loop feeds
//! the bytes it has buffered and gets decisions back, in the style of `httparse` and
//! `quinn-proto`:
//!
//! 1. [`parse_request_head`] / [`parse_response_head`] look at the buffered bytes and
//!    answer [`HeadStatus::Partial`] (read more), [`HeadStatus::Complete`] (a validated
//!    head, described by offsets into the caller's buffer) or an error that maps to the
//!    status code the proxy answers with.
//! 2. [`BodyTracker`] (built from the head's [`BodyFraming`]) tells where the body ends
//!    while the bytes are streamed through unchanged; [`ChunkedDecoder`] validates the
//!    chunked coding and can expose the data ranges for re-framing.
//! 3. [`write_upstream_request`] writes the head sent upstream into a reused `Vec<u8>`:
//!    hop-by-hop fields dropped, forwarding fields added, framing re-emitted canonically.
//!
//! # Why so strict
//!
//! A proxy and the server behind it must agree on where every message ends; when they
//! do not, an attacker can hide a second request inside the first one (request
//! smuggling, RFC 9112 §11.2). The rules here therefore reject every message whose
//! framing another implementation could read differently instead of guessing:
//! Content-Length together with Transfer-Encoding, differing or malformed
//! Content-Length values, any transfer coding list other than exactly `chunked`, obs-fold,
//! whitespace before the colon, bare CR / bare LF / NUL, malformed chunk sizes, missing or
//! repeated Host. Version policy: only `HTTP/1.0` and `HTTP/1.1` are accepted; every
//! other version (including the HTTP/2 connection preface `PRI * HTTP/2.0`) is answered
//! with 400, since a client speaking another version can not read an HTTP/1.1 505 anyway.
//!
//! # Allocation
//!
//! Parsing never allocates: heads are [`Span`]s into the caller's buffer, errors are
//! small `Copy` enums, and header lines are re-read from the buffer on demand
//! ([`RequestHead::headers`]). [`write_upstream_request`] only grows the caller's
//! `Vec` until it is warm.

mod chunked;
mod error;
mod framing;
pub mod fuzzing;
mod request;
mod response;
mod rewrite;
mod syntax;

#[cfg(test)]
mod tests;

pub use chunked::{ChunkProgress, ChunkedDecoder};
pub use error::{BodyError, ChunkError, RequestError, ResponseError, Why};
pub use framing::BodyTracker;
pub use request::{parse_request_head, Method, RequestHead, TargetForm};
pub use response::{parse_response_head, parse_response_head_for, ResponseHead};
pub use rewrite::{
    write_client_response, write_upstream_request, ForwardedProto, ResponseRewrite, RewriteOptions,
};
pub use syntax::{HeaderField, Headers};

/// How the length of a message body is determined (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// The message has no body (requests without Content-Length / Transfer-Encoding,
    /// responses to HEAD, 1xx / 204 / 304 responses, 2xx responses to CONNECT).
    None,
    /// Exactly this many body bytes follow the head.
    ContentLength(u64),
    /// The body uses the chunked transfer coding (RFC 9112 §7.1).
    Chunked,
    /// Responses only: the body runs until the server closes the connection
    /// (RFC 9112 §6.3 rule 8).
    UntilClose,
}

/// Size limits applied while parsing; every one of them bounds memory or work done for
/// a peer before the proxy commits to the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest head (request/status line, fields and the empty line) accepted; a head
    /// not complete within this many bytes is refused (431 for requests).
    pub max_head_bytes: usize,
    /// Most header fields accepted (431 for requests). The effective limit is also
    /// bounded by the length of the scratch slice given to the parser.
    pub max_headers: usize,
    /// Longest request-target accepted (414), checked even before the head is complete.
    pub max_uri_bytes: usize,
    /// Largest body accepted, or `None` for no limit (413 for requests).
    pub max_body_bytes: Option<u64>,
    /// Longest chunk extension (from the first byte after the size to the CR) accepted.
    pub max_chunk_ext_bytes: usize,
    /// Largest trailer section (all trailer field lines together) accepted.
    pub max_trailer_bytes: usize,
}

/// The default number of header fields accepted; a good length for the scratch array.
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// The most header fields a configuration may allow (`limits.max_headers`). Bounded so
/// the parser's scratch space can live on the stack whatever the setting.
pub const MAX_HEADERS_LIMIT: usize = 1000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 16 * 1024,
            max_headers: DEFAULT_MAX_HEADERS,
            max_uri_bytes: 8 * 1024,
            max_body_bytes: None,
            max_chunk_ext_bytes: 1024,
            max_trailer_bytes: 8 * 1024,
        }
    }
}

/// Result of looking at the bytes buffered so far for a message head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadStatus<T> {
    /// The head is not complete yet (and nothing seen so far is invalid): read more.
    Partial,
    /// The head is complete and valid.
    Complete(T),
}

impl<T> HeadStatus<T> {
    /// The completed value, if any.
    pub fn complete(self) -> Option<T> {
        match self {
            HeadStatus::Complete(t) => Some(t),
            HeadStatus::Partial => None,
        }
    }
}

/// A byte range `start..end` into the buffer a head was parsed from.
///
/// Kept as plain offsets (not slices) so a parsed head can be stored next to the buffer
/// it describes without borrowing it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    pub const fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// Number of bytes covered.
    pub const fn len(self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the span covers no byte.
    pub const fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The bytes of `buf` covered by this span, or an empty slice if the span does not
    /// fit `buf` (never panics, even with a span from another buffer).
    pub fn get(self, buf: &[u8]) -> &[u8] {
        buf.get(self.start..self.end).unwrap_or(&[])
    }

    /// This span moved `by` bytes to the right (saturating).
    pub(crate) const fn shift(self, by: usize) -> Self {
        Span {
            start: self.start.saturating_add(by),
            end: self.end.saturating_add(by),
        }
    }
}

/// The reason phrase of a status code ringway generates (RFC 9110 §15), for the proxy's
/// own responses and the admin endpoint; `"Unknown"` for others.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

//! Where a body ends, for bodies streamed through unchanged.

use super::{BodyError, BodyFraming, ChunkedDecoder, Limits};

#[derive(Clone, Debug)]
enum Kind {
    /// No body left.
    Done,
    /// Content-Length: this many bytes left (> 0).
    Length(u64),
    /// Chunked: the decoder validates while the bytes pass.
    Chunked(ChunkedDecoder),
    /// Until the connection closes; counts bytes against the limit.
    UntilClose { seen: u64, max: Option<u64> },
}

/// Tracks a body of known [`BodyFraming`] while the proxy forwards its bytes
/// unchanged: [`feed`](Self::feed) says how many of the offered bytes belong to the body
/// and whether it has ended. Bytes after the end (a pipelined request, or the next
/// response) are never consumed.
#[derive(Clone, Debug)]
pub struct BodyTracker {
    kind: Kind,
}

impl BodyTracker {
    /// A tracker for a body framed as `framing`. `limits.max_body_bytes` applies to
    /// chunked and until-close bodies (a Content-Length is checked against it when the
    /// head is parsed).
    pub fn new(framing: BodyFraming, limits: &Limits) -> Self {
        let kind = match framing {
            BodyFraming::None | BodyFraming::ContentLength(0) => Kind::Done,
            BodyFraming::ContentLength(n) => Kind::Length(n),
            BodyFraming::Chunked => Kind::Chunked(ChunkedDecoder::with_limits(limits)),
            BodyFraming::UntilClose => Kind::UntilClose {
                seen: 0,
                max: limits.max_body_bytes,
            },
        };
        BodyTracker { kind }
    }

    /// Offers the next bytes of the stream; returns `(consumed, done)`: the first
    /// `consumed` bytes belong to the body, and `done` says the body ended with them.
    /// Errors (malformed chunked coding, body too large) mean the connection must be
    /// closed.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, bool), BodyError> {
        match &mut self.kind {
            Kind::Done => Ok((0, true)),
            Kind::Length(remaining) => {
                let n = usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
                *remaining = remaining.saturating_sub(n as u64);
                if *remaining == 0 {
                    self.kind = Kind::Done;
                    return Ok((n, true));
                }
                Ok((n, false))
            }
            Kind::Chunked(dec) => {
                let mut pos = 0;
                loop {
                    let rest = input.get(pos..).unwrap_or(&[]);
                    let p = dec.feed(rest)?;
                    pos += p.consumed;
                    if p.done {
                        self.kind = Kind::Done;
                        return Ok((pos, true));
                    }
                    if p.consumed == 0 || pos >= input.len() {
                        return Ok((pos, false));
                    }
                }
            }
            Kind::UntilClose { seen, max } => {
                *seen = seen.saturating_add(input.len() as u64);
                if max.is_some_and(|m| *seen > m) {
                    return Err(BodyError::TooLarge);
                }
                Ok((input.len(), false))
            }
        }
    }

    /// Bytes still to come of a body of known length (0 once done); `None` for chunked
    /// and until-close bodies, whose end is only known when it is seen.
    pub fn remaining_length(&self) -> Option<u64> {
        match self.kind {
            Kind::Done => Some(0),
            Kind::Length(n) => Some(n),
            Kind::Chunked(_) | Kind::UntilClose { .. } => None,
        }
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        matches!(self.kind, Kind::Done)
    }

    /// The peer closed the connection. Returns whether the body was complete: an
    /// until-close body ends here; any other unfinished body was truncated and must not
    /// be passed off as complete (RFC 9112 §8).
    pub fn eof(&mut self) -> bool {
        if matches!(self.kind, Kind::UntilClose { .. }) {
            self.kind = Kind::Done;
        }
        self.is_done()
    }
}

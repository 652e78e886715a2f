//! Incremental validator/decoder for the chunked transfer coding (RFC 9112 §7.1):
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! trailer-section = *( field-line CRLF )
//! ```
//!
//! A byte-at-a-time state machine: every decision depends only on the state and the
//! current byte, so the outcome is the same whatever the split of the input (this is
//! what [`fuzz_chunked`](super::fuzzing::fuzz_chunked) checks). Chunk data is passed
//! over in one step, not byte by byte.

use super::syntax::{eq_loose, is_field_vchar, is_tchar};
use super::{BodyError, Limits, Span};

/// Longest trailer name remembered to check it against the forbidden names.
const NAME_BUF: usize = 17;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the first hex digit of a chunk size.
    SizeStart,
    /// Inside the hex digits.
    Size,
    /// BWS after the size: only more BWS or `;` may follow.
    SizeWs,
    /// Inside chunk extensions, up to the CR.
    Ext,
    /// After the CR of a size line.
    SizeLf,
    /// Inside chunk data (`remaining` > 0 bytes left).
    Data,
    /// After chunk data, expecting CR.
    DataCr,
    /// After chunk data and CR, expecting LF.
    DataLf,
    /// At the start of a trailer line or of the final CRLF.
    TrailerStart,
    /// Inside a trailer field name.
    TrailerName,
    /// Inside a trailer field value.
    TrailerValue,
    /// After the CR of a trailer line.
    TrailerLf,
    /// After the CR of the final empty line.
    FinalLf,
    /// The body is complete.
    Done,
    /// An error was returned; it is returned again.
    Failed(BodyError),
}

/// What one [`ChunkedDecoder::feed`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkProgress {
    /// Bytes of the input consumed (framing and data). Bytes after the end of the body
    /// are never consumed: they belong to the next message.
    pub consumed: usize,
    /// Chunk data found in this call, as a range of the input (for re-framing). At most
    /// one range is reported per call; call again with the rest of the input.
    pub data: Option<Span>,
    /// The whole body, including trailers and the final CRLF, has been consumed.
    pub done: bool,
}

/// Resumable chunked-body decoder: feed bytes as they arrive, in pieces of any size.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// Value of the size being read.
    size: u64,
    /// Hex digits read for the size.
    digits: u8,
    /// Bytes of the current size line after the digits.
    ext_len: usize,
    /// Data bytes left in the current chunk.
    remaining: u64,
    /// Data bytes announced so far, all chunks together.
    total: u64,
    /// Bytes of the trailer section so far.
    trailer_len: usize,
    /// Current trailer name (first `NAME_BUF` bytes) and its full length.
    name: [u8; NAME_BUF],
    name_len: usize,
    max_body: Option<u64>,
    max_ext: usize,
    max_trailer: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder with the default [`Limits`] (no body limit).
    pub fn new() -> Self {
        Self::with_limits(&Limits::default())
    }

    /// A decoder enforcing `limits.max_body_bytes`, `max_chunk_ext_bytes` and
    /// `max_trailer_bytes`.
    pub fn with_limits(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::SizeStart,
            size: 0,
            digits: 0,
            ext_len: 0,
            remaining: 0,
            total: 0,
            trailer_len: 0,
            name: [0; NAME_BUF],
            name_len: 0,
            max_body: limits.max_body_bytes,
            max_ext: limits.max_chunk_ext_bytes,
            max_trailer: limits.max_trailer_bytes,
        }
    }

    /// Whether the whole body has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Total chunk data announced so far (all chunk sizes read, added up).
    pub fn total_data(&self) -> u64 {
        self.total
    }

    /// Consumes input until the body ends, the input runs out, or one range of chunk
    /// data has been found. If `input` is not empty and the body is not done, at least
    /// one byte is consumed, so a caller looping until `consumed == input.len()` or
    /// `done` always terminates. After an error every call returns the same error.
    pub fn feed(&mut self, input: &[u8]) -> Result<ChunkProgress, BodyError> {
        let mut pos = 0;
        while let Some(&b) = input.get(pos) {
            match self.state {
                State::Done => break,
                State::Failed(e) => return Err(e),
                State::Data => {
                    let avail = input.len() - pos;
                    let n = usize::try_from(self.remaining).map_or(avail, |r| r.min(avail));
                    let start = pos;
                    pos += n;
                    // n <= remaining by construction.
                    self.remaining = self.remaining.saturating_sub(n as u64);
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(ChunkProgress {
                        consumed: pos,
                        data: Some(Span::new(start, pos)),
                        done: false,
                    });
                }
                _ => {
                    if let Err(e) = self.step(b) {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                    pos += 1;
                }
            }
        }
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        Ok(ChunkProgress {
            consumed: pos,
            data: None,
            done: self.state == State::Done,
        })
    }

    /// Advances the state machine by one framing byte (never in `Data`).
    fn step(&mut self, b: u8) -> Result<(), BodyError> {
        use BodyError as E;
        self.state = match self.state {
            State::SizeStart => match hex_val(b) {
                // No leading whitespace, no empty size, no "0x" prefix: only HEXDIG.
                Some(d) => {
                    self.size = u64::from(d);
                    self.digits = 1;
                    self.ext_len = 0;
                    State::Size
                }
                None if b == b'\n' => return Err(E::BareLf),
                None => return Err(E::InvalidChunkSize),
            },
            State::Size => match hex_val(b) {
                Some(d) => {
                    // 16 hex digits fill a u64; more can only overflow (leading zeros
                    // included: nobody needs them, and they are a classic parser split).
                    self.digits = self.digits.saturating_add(1);
                    if self.digits > 16 {
                        return Err(E::ChunkSizeTooLong);
                    }
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(u64::from(d)))
                        .ok_or(E::ChunkSizeTooLong)?;
                    State::Size
                }
                None => match b {
                    b'\r' => State::SizeLf,
                    b';' => self.ext_byte(State::Ext)?,
                    b' ' | b'\t' => self.ext_byte(State::SizeWs)?,
                    b'\n' => return Err(E::BareLf),
                    _ => return Err(E::InvalidChunkSize),
                },
            },
            // BWS is only allowed before a `;`: "5 \r\n" is not a chunk-size line.
            State::SizeWs => match b {
                b' ' | b'\t' => self.ext_byte(State::SizeWs)?,
                b';' => self.ext_byte(State::Ext)?,
                _ => return Err(E::InvalidChunkSize),
            },
            // Extensions are skipped, not interpreted; they are checked to hold only
            // field-value bytes, so no CTL (and no bare CR / LF) can hide in them.
            State::Ext => match b {
                b'\r' => State::SizeLf,
                b'\n' => return Err(E::BareLf),
                b if is_field_vchar(b) => self.ext_byte(State::Ext)?,
                _ => return Err(E::InvalidExtension),
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(E::MissingCrlf);
                }
                if self.size == 0 {
                    State::TrailerStart
                } else {
                    self.total = self.total.checked_add(self.size).ok_or(E::TooLarge)?;
                    // Refuse as soon as the announced size passes the limit, before any
                    // of the data is forwarded.
                    if self.max_body.is_some_and(|max| self.total > max) {
                        return Err(E::TooLarge);
                    }
                    self.remaining = self.size;
                    State::Data
                }
            }
            State::Data => State::Data,
            State::DataCr => match b {
                b'\r' => State::DataLf,
                b'\n' => return Err(E::BareLf),
                _ => return Err(E::MissingCrlf),
            },
            State::DataLf => match b {
                b'\n' => State::SizeStart,
                _ => return Err(E::MissingCrlf),
            },
            State::TrailerStart => match b {
                b'\r' => self.trailer_byte(State::FinalLf)?,
                b'\n' => return Err(E::BareLf),
                b if is_tchar(b) => {
                    self.name_len = 0;
                    self.push_name(b);
                    self.trailer_byte(State::TrailerName)?
                }
                // Includes SP / HTAB: obs-fold is not allowed in trailers either.
                _ => return Err(E::InvalidTrailer),
            },
            State::TrailerName => match b {
                b if is_tchar(b) => {
                    self.push_name(b);
                    self.trailer_byte(State::TrailerName)?
                }
                b':' => {
                    if self.forbidden_name() {
                        return Err(E::InvalidTrailer);
                    }
                    self.trailer_byte(State::TrailerValue)?
                }
                // Includes whitespace before the colon.
                _ => return Err(E::InvalidTrailer),
            },
            State::TrailerValue => match b {
                b'\r' => self.trailer_byte(State::TrailerLf)?,
                b'\n' => return Err(E::BareLf),
                b if is_field_vchar(b) => self.trailer_byte(State::TrailerValue)?,
                _ => return Err(E::InvalidTrailer),
            },
            State::TrailerLf => match b {
                b'\n' => self.trailer_byte(State::TrailerStart)?,
                _ => return Err(E::MissingCrlf),
            },
            State::FinalLf => match b {
                b'\n' => State::Done,
                _ => return Err(E::MissingCrlf),
            },
            State::Done => State::Done,
            State::Failed(e) => return Err(e),
        };
        Ok(())
    }

    /// Counts one size-line byte after the digits against the extension limit.
    fn ext_byte(&mut self, next: State) -> Result<State, BodyError> {
        self.ext_len = self.ext_len.saturating_add(1);
        if self.ext_len > self.max_ext {
            return Err(BodyError::ExtensionTooLong);
        }
        Ok(next)
    }

    /// Counts one trailer byte against the trailer limit.
    fn trailer_byte(&mut self, next: State) -> Result<State, BodyError> {
        self.trailer_len = self.trailer_len.saturating_add(1);
        if self.trailer_len > self.max_trailer {
            return Err(BodyError::TrailersTooLarge);
        }
        Ok(next)
    }

    fn push_name(&mut self, b: u8) {
        if let Some(slot) = self.name.get_mut(self.name_len) {
            *slot = b;
        }
        self.name_len = self.name_len.saturating_add(1);
    }

    /// RFC 9110 §6.5.1: framing, routing and control fields must not be sent as
    /// trailers. A server that merges trailers into the header section would act on
    /// them, so they are refused rather than forwarded.
    fn forbidden_name(&self) -> bool {
        let Some(name) = self.name.get(..self.name_len) else {
            return false;
        };
        [
            &b"content-length"[..],
            b"transfer-encoding",
            b"host",
            b"trailer",
        ]
        .iter()
        .any(|f| eq_loose(name, f))
    }
}

/// The value of a hex digit.
fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

//! Byte-level grammar shared by requests, responses and the rewriter: field-line
//! iteration over an already validated head, list parsing for Content-Length /
//! Transfer-Encoding / Connection, Host and request-target checks, and the raw CR/LF/NUL
//! scan that backs up `httparse` (which accepts bare LF as a line ending).

use super::{Span, Why};

/// `tchar` from RFC 9110 §5.6.2.
pub(crate) fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+'
        | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// `token = 1*tchar` (RFC 9110 §5.6.2).
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Optional whitespace, `OWS = *( SP / HTAB )` (RFC 9110 §5.6.3).
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A byte allowed inside a field value: VCHAR / SP / HTAB / obs-text (RFC 9110 §5.5).
pub(crate) fn is_field_vchar(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// `s` without leading and trailing OWS.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or(&[])
}

/// ASCII case-insensitive equality (field names and codings are case-insensitive,
/// RFC 9110 §5.1, §7.8).
pub(crate) fn eq_ci(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Case-insensitive equality that also reads `_` in `name` as `-`, to catch names that
/// CGI-style servers would normalise into a framing field.
pub(crate) fn eq_loose(name: &[u8], target: &[u8]) -> bool {
    name.len() == target.len()
        && name
            .iter()
            .zip(target)
            .all(|(&a, &b)| a.eq_ignore_ascii_case(&b) || (a == b'_' && b == b'-'))
}

/// The elements of a comma-separated list with OWS trimmed (RFC 9110 §5.6.1). Quoted
/// strings are not understood: none of the lists parsed here may contain them, and the
/// token checks reject the `"`.
pub(crate) fn list_elements(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(trim_ows)
}

/// Parses `1*DIGIT` into a `u64`; `None` for anything else, including overflow.
pub(crate) fn parse_u64_digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Checks the raw head bytes for line endings and bytes `httparse` lets through: every
/// LF must follow a CR (RFC 9112 §2.2 permits bare LF; a proxy accepting it while the
/// server does not, or the reverse, desynchronises them), every CR must precede a LF,
/// and no NUL may appear.
pub(crate) fn scan_raw(head: &[u8]) -> Result<(), Why> {
    // Only CR, LF and NUL can be wrong, and a head is mostly other bytes: jump from one
    // of them to the next (memchr looks at 16 or 32 bytes per step) rather than
    // testing every byte.
    for i in memchr::memchr3_iter(b'\r', b'\n', 0, head) {
        match head.get(i) {
            Some(b'\n') if i == 0 || head.get(i - 1) != Some(&b'\r') => return Err(Why::BareLf),
            Some(b'\r') if head.get(i + 1) != Some(&b'\n') => return Err(Why::BareCr),
            Some(0) => return Err(Why::Nul),
            _ => {}
        }
    }
    Ok(())
}

/// After `httparse` refused a head, find the most precise reason (for logs and tests):
/// NUL, bare CR, obs-fold or whitespace before a colon, else `fallback`. Only runs on
/// the error path.
pub(crate) fn diagnose(buf: &[u8], fallback: Why) -> Why {
    let len = buf.len();
    for (i, &b) in buf.iter().enumerate() {
        if b == 0 {
            return Why::Nul;
        }
        // A CR as the very last buffered byte may still be followed by LF.
        if b == b'\r' && i + 1 < len && buf.get(i + 1) != Some(&b'\n') {
            return Why::BareCr;
        }
    }
    // Skip the start line (and any leading empty lines), then look at field lines.
    let mut lines = buf
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    for l in lines.by_ref() {
        if !l.is_empty() {
            break;
        }
    }
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.first().is_some_and(|&b| is_ows(b)) {
            return Why::ObsFold;
        }
        let name_end = line
            .iter()
            .position(|&b| !is_tchar(b))
            .unwrap_or(line.len());
        let rest = line.get(name_end..).unwrap_or(&[]);
        if rest.first().is_some_and(|&b| is_ows(b)) {
            let after = rest.iter().position(|&b| !is_ows(b));
            if after.and_then(|i| rest.get(i)) == Some(&b':') {
                return Why::WhitespaceBeforeColon;
            }
        }
    }
    fallback
}

/// Iterates the field lines of a validated head as `(name, value)` spans; the value has
/// OWS trimmed like `httparse` does. Stops at the empty line. Robust against any input
/// (lines without a colon are skipped), but only meaningful on a validated head.
#[derive(Clone, Debug)]
pub(crate) struct FieldLines<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> FieldLines<'a> {
    /// Field lines within `span` of `buf`.
    pub(crate) fn new(buf: &'a [u8], span: Span) -> Self {
        FieldLines {
            buf,
            pos: span.start,
            end: span.end.min(buf.len()),
        }
    }
}

impl Iterator for FieldLines<'_> {
    type Item = (Span, Span);

    fn next(&mut self) -> Option<(Span, Span)> {
        loop {
            if self.pos >= self.end {
                return None;
            }
            let rest = self.buf.get(self.pos..self.end)?;
            // memchr, not a byte loop: every field line of every message passes here,
            // often several times per message (framing, routing, rewriting).
            let (line_len, step) = match memchr::memchr(b'\n', rest) {
                Some(i) => (i, i + 1),
                None => (rest.len(), rest.len()),
            };
            let line = rest.get(..line_len)?;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let start = self.pos;
            self.pos = self.pos.saturating_add(step);
            if line.is_empty() {
                // The empty line ends the field section.
                self.pos = self.end;
                return None;
            }
            let Some(colon) = memchr::memchr(b':', line) else {
                continue;
            };
            let raw_value = line.get(colon + 1..).unwrap_or(&[]);
            let lead = raw_value
                .iter()
                .position(|&b| !is_ows(b))
                .unwrap_or(raw_value.len());
            let trimmed = trim_ows(raw_value);
            let vstart = start + colon + 1 + lead;
            return Some((
                Span::new(start, start + colon),
                Span::new(vstart, vstart + trimmed.len()),
            ));
        }
    }
}

/// One field line of a parsed head, borrowed from the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderField<'a> {
    /// The field name as received (compare case-insensitively).
    pub name: &'a [u8],
    /// The field value, without leading and trailing whitespace.
    pub value: &'a [u8],
}

/// Iterator over the field lines of a parsed head, in order; see
/// [`RequestHead::headers`](super::RequestHead::headers).
#[derive(Clone, Debug)]
pub struct Headers<'a> {
    pub(crate) lines: FieldLines<'a>,
}

impl<'a> Headers<'a> {
    /// The field lines of the head whose header block is `span` in `buf`.
    pub(crate) fn new(buf: &'a [u8], span: Span) -> Headers<'a> {
        Headers {
            lines: FieldLines::new(buf, span),
        }
    }

    /// The value of the first field named `name` (case-insensitive).
    pub fn first(self, name: &str) -> Option<&'a [u8]> {
        let mut fields = self;
        fields
            .find(|f| eq_ci(f.name, name.as_bytes()))
            .map(|f| f.value)
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = HeaderField<'a>;

    fn next(&mut self) -> Option<HeaderField<'a>> {
        let buf = self.lines.buf;
        self.lines.next().map(|(n, v)| HeaderField {
            name: n.get(buf),
            value: v.get(buf),
        })
    }
}

/// Running state of the Content-Length / Transfer-Encoding / Connection fields seen in
/// one head, folded line by line so that repeated field lines are read as one list
/// (RFC 9110 §5.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FramingFields {
    /// The Content-Length value, once at least one was seen.
    pub content_length: Option<u64>,
    /// Some Transfer-Encoding line was seen.
    pub te_present: bool,
    /// `chunked` was seen (and must then be the last coding).
    pub te_chunked: bool,
    /// A coding other than `chunked` was seen.
    pub te_other: bool,
    /// `Connection: close`.
    pub close: bool,
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
    /// `Connection: upgrade`.
    pub conn_upgrade: bool,
    /// Number of Connection field lines.
    pub connection_lines: usize,
    /// Value of the first Connection field line.
    pub connection: Option<Span>,
}

/// The outcome of the Transfer-Encoding fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TeOutcome {
    /// No Transfer-Encoding field.
    Absent,
    /// Exactly `chunked`.
    Chunked,
    /// `chunked` last, preceded by other codings we do not implement.
    Unsupported,
}

impl FramingFields {
    /// Folds one field line into the state. Names are matched case-insensitively; a
    /// name that only matches a framing field when `_` is read as `-` is refused.
    pub(crate) fn fold(&mut self, name: &[u8], value: &[u8], value_span: Span) -> Result<(), Why> {
        if eq_ci(name, b"content-length") {
            self.fold_content_length(value)
        } else if eq_ci(name, b"transfer-encoding") {
            self.fold_transfer_encoding(value)
        } else if eq_ci(name, b"connection") {
            self.connection_lines += 1;
            if self.connection.is_none() {
                self.connection = Some(value_span);
            }
            self.fold_connection(value)
        } else if eq_loose(name, b"content-length") || eq_loose(name, b"transfer-encoding") {
            Err(Why::AmbiguousHeaderName)
        } else {
            Ok(())
        }
    }

    /// RFC 9110 §8.6: `Content-Length = 1*DIGIT`; a list of identical values (from
    /// repeated lines or a comma list) MAY be read as one value, anything else is an
    /// unrecoverable framing error (RFC 9112 §6.3 rule 5).
    fn fold_content_length(&mut self, value: &[u8]) -> Result<(), Why> {
        for elem in list_elements(value) {
            let n = parse_u64_digits(elem).ok_or(Why::InvalidContentLength)?;
            match self.content_length {
                Some(prev) if prev != n => return Err(Why::ConflictingContentLength),
                _ => self.content_length = Some(n),
            }
        }
        Ok(())
    }

    /// RFC 9112 §6.1 / §7: a list of transfer codings, applied in order; `chunked` must
    /// be the last one and appear once (§6.3 rule 4). Empty elements are refused too:
    /// nothing legitimate sends them and parsers disagree on them.
    fn fold_transfer_encoding(&mut self, value: &[u8]) -> Result<(), Why> {
        self.te_present = true;
        for elem in list_elements(value) {
            if self.te_chunked {
                // Anything after `chunked` (another coding or a second `chunked`).
                return Err(Why::InvalidTransferEncoding);
            }
            let (name, params) = match elem.iter().position(|&b| b == b';') {
                Some(i) => (
                    trim_ows(elem.get(..i).unwrap_or(&[])),
                    elem.get(i..).unwrap_or(&[]),
                ),
                None => (elem, &[][..]),
            };
            if !is_token(name) {
                return Err(Why::InvalidTransferEncoding);
            }
            if eq_ci(name, b"chunked") {
                if !params.is_empty() {
                    // `chunked` takes no parameters (RFC 9112 §7.1).
                    return Err(Why::InvalidTransferEncoding);
                }
                self.te_chunked = true;
            } else {
                if !params
                    .iter()
                    .all(|&b| is_tchar(b) || is_ows(b) || b == b';' || b == b'=' || b == b'"')
                {
                    return Err(Why::InvalidTransferEncoding);
                }
                self.te_other = true;
            }
        }
        Ok(())
    }

    /// RFC 9110 §7.6.1: `Connection = #connection-option`. `close` and `keep-alive`
    /// decide persistence, `upgrade` an upgrade. Options naming Content-Length,
    /// Transfer-Encoding or Host are refused: honouring them would strip the framing or
    /// routing field before the next hop.
    fn fold_connection(&mut self, value: &[u8]) -> Result<(), Why> {
        for elem in list_elements(value) {
            if elem.is_empty() {
                // RFC 9110 §5.6.1: empty list elements are ignored.
                continue;
            }
            if !is_token(elem) {
                return Err(Why::ConnectionOption);
            }
            if eq_ci(elem, b"close") {
                self.close = true;
            } else if eq_ci(elem, b"keep-alive") {
                self.keep_alive = true;
            } else if eq_ci(elem, b"upgrade") {
                self.conn_upgrade = true;
            } else if eq_loose(elem, b"content-length")
                || eq_loose(elem, b"transfer-encoding")
                || eq_loose(elem, b"host")
            {
                return Err(Why::ConnectionOption);
            }
        }
        Ok(())
    }

    /// The Transfer-Encoding verdict once all lines are folded.
    pub(crate) fn transfer_encoding(&self) -> Result<TeOutcome, Why> {
        if !self.te_present {
            Ok(TeOutcome::Absent)
        } else if !self.te_chunked {
            // Final coding is not chunked, or the value was empty: the length can not be
            // determined (RFC 9112 §6.3 rule 4: MUST respond 400 to such a request).
            Err(Why::InvalidTransferEncoding)
        } else if self.te_other {
            Ok(TeOutcome::Unsupported)
        } else {
            Ok(TeOutcome::Chunked)
        }
    }
}

/// Whether the Connection field values in `head_fields` name `field` (so it is
/// hop-by-hop and must not be forwarded, RFC 9110 §7.6.1).
pub(crate) fn connection_names(
    buf: &[u8],
    fields: &FramingFields,
    headers_span: Span,
    field: &[u8],
) -> bool {
    let in_value = |v: &[u8]| list_elements(v).any(|e| eq_ci(e, field));
    match (fields.connection_lines, fields.connection) {
        (0, _) | (_, None) => false,
        (1, Some(span)) => in_value(span.get(buf)),
        _ => FieldLines::new(buf, headers_span)
            .filter(|(n, _)| eq_ci(n.get(buf), b"connection"))
            .any(|(_, v)| in_value(v.get(buf))),
    }
}

/// `uri-host [ ":" port ]` as RFC 9112 §3.2 requires of Host, strictly: a reg-name of
/// letters, digits, `-`, `.`, `_`, `~` (no percent-encoding or sub-delims, which
/// servers decode differently), an IPv4 address (a reg-name syntactically) or an
/// IPv6 literal in brackets; the port, if present, 1 to 5 digits up to 65535. Empty,
/// userinfo (`@`), paths (`/`), lists (`,`) and whitespace are all refused.
pub(crate) fn is_valid_host(v: &[u8]) -> bool {
    if let Some(rest) = v.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = rest.get(..close).unwrap_or(&[]);
        let inner_ok = !inner.is_empty()
            && inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        return inner_ok
            && match rest.get(close + 1..) {
                None | Some([]) => true,
                Some([b':', port @ ..]) => is_valid_port(port),
                Some(_) => false,
            };
    }
    let (host, port) = match v.iter().position(|&b| b == b':') {
        Some(i) => (v.get(..i).unwrap_or(&[]), v.get(i + 1..)),
        None => (v, None),
    };
    !host.is_empty()
        && host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        && port.is_none_or(is_valid_port)
}

/// `port = 1*5DIGIT` up to 65535 (an empty port is refused).
fn is_valid_port(p: &[u8]) -> bool {
    p.len() <= 5 && parse_u64_digits(p).is_some_and(|n| n <= 65535)
}

/// Whether every byte of a path-and-query is acceptable: visible ASCII except `"`, `#`
/// (a fragment is never sent, RFC 9112 §3.2), `<`, `>` and `\` (which some servers
/// read as `/`), with every `%` followed by two hex digits. Browsers percent-encode
/// all of these, so refusing them costs nothing and removes inputs that servers
/// normalise differently.
pub(crate) fn is_valid_path_query(p: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = p.get(i) {
        match b {
            b'%' => {
                let ok = p.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && p.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
                if !ok {
                    return false;
                }
                i += 3;
            }
            b'"' | b'#' | b'<' | b'>' | b'\\' => return false,
            0x21..=0x7e => i += 1,
            _ => return false,
        }
    }
    true
}

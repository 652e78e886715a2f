//! PROXY protocol (HAProxy spec, versions 1 and 2): a pure codec, no IO.
//!
//! [`parse`] reads a header from the front of a receive buffer and says how many bytes it
//! took; it is incremental (`Ok(None)` = valid so far, need more bytes) and strict, and it
//! rejects bytes that cannot start an accepted header as soon as they arrive, so a plain
//! client that sends no header is refused at once rather than waited on. Every proper
//! prefix of a header that [`parse`] accepts parses as `Ok(None)`.
//! [`encode`] writes the header ringway sends to a backend.
//!
//! Choices beyond the spec text:
//! - v1 is parsed strictly: single spaces, no leading zeros in ports (except `0`), dotted
//!   quads without leading zeros, CRLF within 107 bytes. After `UNKNOWN` anything but CR/LF
//!   may follow up to CRLF (the spec says receivers ignore it).
//! - v2 family/protocol bytes: 0x11/0x12 (IPv4 stream/datagram) and 0x21/0x22 (IPv6) give
//!   addresses; 0x00 (UNSPEC) and 0x31/0x32 (AF_UNIX) give [`Addresses::Unknown`]; any other
//!   value is rejected as the spec requires. With the LOCAL command the family byte and
//!   address block are ignored. TLVs are skipped, but their framing must exactly fill the
//!   header (as HAProxy checks); CRC32C TLVs are not verified.
//! - v2 headers longer than [`MAX_V2_LEN`] are refused as [`Error::TooLong`] as soon as the
//!   length field is read.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Which versions a listener accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    V1,
    V2,
    Any,
}

/// Which version to send to a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// What a header said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addresses {
    /// The original client (`source`) and the address it connected to (`destination`).
    Tcp {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v1 "UNKNOWN" or v2 LOCAL command / AF_UNSPEC / AF_UNIX: use the real connection
    /// addresses.
    Unknown,
}

/// Why a header was rejected. The caller closes the connection and counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The bytes cannot start a PROXY header of any version (e.g. a plain client).
    NotProxyProtocol,
    /// A header (or the start of one) of a version this listener does not accept.
    WrongVersion,
    /// Starts like a header of an accepted version but breaks the grammar.
    Malformed(&'static str),
    /// v1: no CRLF within 107 bytes; v2: declared length over [`MAX_V2_LEN`].
    TooLong,
    /// v2 command nibble other than LOCAL (0) or PROXY (1).
    UnsupportedCommand,
}

impl Error {
    /// A short stable label, e.g. for a metrics counter.
    pub fn label(&self) -> &'static str {
        match self {
            Error::NotProxyProtocol => "not_proxy_protocol",
            Error::WrongVersion => "wrong_version",
            Error::Malformed(_) => "malformed",
            Error::TooLong => "too_long",
            Error::UnsupportedCommand => "unsupported_command",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotProxyProtocol => f.write_str("not a PROXY protocol header"),
            Error::WrongVersion => f.write_str("PROXY protocol version not accepted here"),
            Error::Malformed(why) => write!(f, "malformed PROXY protocol header: {why}"),
            Error::TooLong => f.write_str("PROXY protocol header too long"),
            Error::UnsupportedCommand => f.write_str("unsupported PROXY protocol v2 command"),
        }
    }
}

impl std::error::Error for Error {}

/// Longest v1 header, CRLF included (spec).
pub const MAX_V1_LEN: usize = 107;
/// Longest v2 header we accept: 16-byte fixed part plus up to 1024 bytes of addresses and
/// TLVs.
pub const MAX_V2_LEN: usize = 16 + 1024;
/// Longest header we will wait for, either version.
pub const MAX_HEADER_LEN: usize = if MAX_V1_LEN > MAX_V2_LEN {
    MAX_V1_LEN
} else {
    MAX_V2_LEN
};

const V1_SIG: &[u8] = b"PROXY ";
const V2_SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// Parse a header at the start of `buf`. `Ok(None)` = need more bytes (incomplete but so far
/// valid); `Ok(Some((addresses, consumed)))` = complete, `consumed` bytes belong to the
/// header; `Err` = reject.
///
/// Bytes that can no longer become an accepted header are rejected immediately: as
/// [`Error::WrongVersion`] when they are (a prefix of) the other version's signature, else
/// [`Error::NotProxyProtocol`].
pub fn parse(buf: &[u8], accept: Accept) -> Result<Option<(Addresses, usize)>, Error> {
    if buf.is_empty() {
        return Ok(None);
    }
    if starts_like(buf, V1_SIG) {
        if accept == Accept::V2 {
            return Err(Error::WrongVersion);
        }
        parse_v1(buf)
    } else if starts_like(buf, V2_SIG) {
        if accept == Accept::V1 {
            return Err(Error::WrongVersion);
        }
        parse_v2(buf)
    } else {
        Err(Error::NotProxyProtocol)
    }
}

/// `buf` and `sig` agree on their common prefix.
fn starts_like(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf[..n] == sig[..n]
}

// ---------------------------------------------------------------------------------------
// Version 1
// ---------------------------------------------------------------------------------------

fn parse_v1(buf: &[u8]) -> Result<Option<(Addresses, usize)>, Error> {
    if buf.len() < V1_SIG.len() {
        return Ok(None);
    }
    let window = &buf[..buf.len().min(MAX_V1_LEN)];
    match window.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            // The signature holds no LF, so lf >= V1_SIG.len().
            if window[lf - 1] != b'\r' {
                return Err(Error::Malformed("v1: line not terminated by CRLF"));
            }
            let rest = &window[V1_SIG.len()..lf - 1];
            match check_v1(rest, true)? {
                Some(addresses) => Ok(Some((addresses, lf + 1))),
                None => Err(Error::Malformed("v1: incomplete line")), // unreachable
            }
        }
        None if window.len() >= MAX_V1_LEN => Err(Error::TooLong),
        None => {
            let rest = &window[V1_SIG.len()..];
            match rest.split_last() {
                // Only the LF is missing: the line itself must already be complete.
                Some((b'\r', line)) => check_v1(line, true).map(|_| None),
                _ => check_v1(rest, false).map(|_| None),
            }
        }
    }
}

#[derive(Clone, Copy)]
enum V1Field {
    Ip4,
    Ip6,
    Port,
}

/// Checks the part of a v1 line after `"PROXY "` (CRLF excluded). With `complete` the line
/// is whole and its addresses are returned; otherwise it is a prefix and only has to be
/// able to grow into a valid line (returns `Ok(None)`).
fn check_v1(rest: &[u8], complete: bool) -> Result<Option<Addresses>, Error> {
    if rest.contains(&b'\r') {
        return Err(Error::Malformed("v1: stray CR"));
    }
    let (proto, tail) = match rest.iter().position(|&b| b == b' ') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let ip_kind = match proto {
        b"TCP4" => V1Field::Ip4,
        b"TCP6" => V1Field::Ip6,
        b"UNKNOWN" => return Ok(complete.then_some(Addresses::Unknown)),
        p if tail.is_none()
            && !complete
            && [&b"TCP4"[..], b"TCP6", b"UNKNOWN"]
                .iter()
                .any(|name| name.starts_with(p)) =>
        {
            return Ok(None)
        }
        _ => return Err(Error::Malformed("v1: unknown protocol")),
    };
    let Some(tail) = tail else {
        return if complete {
            Err(Error::Malformed("v1: missing addresses"))
        } else {
            Ok(None)
        };
    };

    let count = tail.split(|&b| b == b' ').count();
    if complete && count < 4 {
        return Err(Error::Malformed("v1: missing fields"));
    }
    let mut ips = [None; 2];
    let mut ports = [0u16; 2];
    for (i, field) in tail.split(|&b| b == b' ').enumerate() {
        if i >= 4 {
            return Err(Error::Malformed("v1: too many fields"));
        }
        let whole = complete || i + 1 < count;
        if whole && field.is_empty() {
            return Err(Error::Malformed("v1: empty field (double space?)"));
        }
        let kind = if i < 2 { ip_kind } else { V1Field::Port };
        if !field_prefix_ok(kind, field) {
            return Err(match kind {
                V1Field::Port => Error::Malformed("v1: bad port"),
                _ => Error::Malformed("v1: bad address"),
            });
        }
        if !whole {
            continue;
        }
        // Only ASCII passed field_prefix_ok.
        let text = std::str::from_utf8(field).map_err(|_| Error::Malformed("v1: not ASCII"))?;
        match kind {
            V1Field::Ip4 => {
                let ip: Ipv4Addr = text
                    .parse()
                    .map_err(|_| Error::Malformed("v1: bad IPv4 address"))?;
                ips[i] = Some(IpAddr::V4(ip));
            }
            V1Field::Ip6 => {
                let ip: Ipv6Addr = text
                    .parse()
                    .map_err(|_| Error::Malformed("v1: bad IPv6 address"))?;
                ips[i] = Some(IpAddr::V6(ip));
            }
            V1Field::Port => {
                ports[i - 2] = text.parse().map_err(|_| Error::Malformed("v1: bad port"))?;
            }
        }
    }
    if !complete {
        return Ok(None);
    }
    match ips {
        [Some(src), Some(dst)] => Ok(Some(Addresses::Tcp {
            source: SocketAddr::new(src, ports[0]),
            destination: SocketAddr::new(dst, ports[1]),
        })),
        _ => Err(Error::Malformed("v1: missing fields")), // unreachable: count == 4
    }
}

/// Whether `field` can be (a prefix of) a valid field of this kind. Also enforced on whole
/// fields, so every prefix of a valid line passes.
fn field_prefix_ok(kind: V1Field, field: &[u8]) -> bool {
    match kind {
        V1Field::Ip4 => field.len() <= 15 && field.iter().all(|&b| b.is_ascii_digit() || b == b'.'),
        V1Field::Ip6 => {
            field.len() <= 45
                && field
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        V1Field::Port => {
            field.len() <= 5
                && field.iter().all(u8::is_ascii_digit)
                && !(field.len() > 1 && field[0] == b'0')
                && field
                    .iter()
                    .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'))
                    <= 65535
        }
    }
}

// ---------------------------------------------------------------------------------------
// Version 2
// ---------------------------------------------------------------------------------------

fn parse_v2(buf: &[u8]) -> Result<Option<(Addresses, usize)>, Error> {
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(None);
    };
    if ver_cmd >> 4 != 2 {
        return Err(Error::Malformed("v2: unsupported version"));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(Error::UnsupportedCommand),
    };
    let Some(&fam) = buf.get(13) else {
        return Ok(None);
    };
    // Length of the address block for this family; LOCAL ignores the family entirely.
    let addr_len = if local {
        0
    } else {
        match fam {
            0x00 => 0,
            0x11 | 0x12 => 12,
            0x21 | 0x22 => 36,
            0x31 | 0x32 => 216,
            _ => return Err(Error::Malformed("v2: invalid family/protocol")),
        }
    };
    if buf.len() < 16 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = 16 + len;
    if total > MAX_V2_LEN {
        return Err(Error::TooLong);
    }
    if len < addr_len {
        return Err(Error::Malformed("v2: length shorter than address block"));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[16..total];
    if local || fam == 0x00 {
        return Ok(Some((Addresses::Unknown, total)));
    }
    check_tlvs(&body[addr_len..])?;
    let addresses = match fam {
        0x11 | 0x12 => {
            let ip = |at: usize| Ipv4Addr::new(body[at], body[at + 1], body[at + 2], body[at + 3]);
            Addresses::Tcp {
                source: SocketAddr::new(IpAddr::V4(ip(0)), port(body, 8)),
                destination: SocketAddr::new(IpAddr::V4(ip(4)), port(body, 10)),
            }
        }
        0x21 | 0x22 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&body[at..at + 16]);
                Ipv6Addr::from(octets)
            };
            Addresses::Tcp {
                source: SocketAddr::new(IpAddr::V6(ip(0)), port(body, 32)),
                destination: SocketAddr::new(IpAddr::V6(ip(16)), port(body, 34)),
            }
        }
        _ => Addresses::Unknown, // AF_UNIX
    };
    Ok(Some((addresses, total)))
}

fn port(body: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([body[at], body[at + 1]])
}

/// TLVs (type, 2-byte big-endian length, value) must exactly fill the rest of the header.
fn check_tlvs(mut tlvs: &[u8]) -> Result<(), Error> {
    while !tlvs.is_empty() {
        if tlvs.len() < 3 {
            return Err(Error::Malformed("v2: truncated TLV header"));
        }
        let len = usize::from(u16::from_be_bytes([tlvs[1], tlvs[2]]));
        if tlvs.len() < 3 + len {
            return Err(Error::Malformed("v2: TLV overruns header"));
        }
        tlvs = &tlvs[3 + len..];
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

/// Append a header for `source` -> `destination` to `out`. When the families differ the
/// IPv4 side is converted to its IPv4-mapped IPv6 form and a TCP6 / AF_INET6 header is sent.
/// IPv6 flow info and scope ids are not representable and are dropped.
pub fn encode(version: Version, source: SocketAddr, destination: SocketAddr, out: &mut Vec<u8>) {
    let (src, dst) = match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (IpAddr::V4(s), IpAddr::V4(d)),
        (s, d) => (IpAddr::V6(to_v6(s)), IpAddr::V6(to_v6(d))),
    };
    let (sport, dport) = (source.port(), destination.port());
    match version {
        Version::V1 => {
            use std::io::Write;
            let proto = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            // Writing to a Vec cannot fail.
            let _ = write!(out, "PROXY {proto} {src} {dst} {sport} {dport}\r\n");
        }
        Version::V2 => {
            out.extend_from_slice(V2_SIG);
            out.push(0x21); // version 2, PROXY
            match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.extend_from_slice(&[0x11, 0, 12]);
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    out.extend_from_slice(&[0x21, 0, 36]);
                    out.extend_from_slice(&to_v6(s).octets());
                    out.extend_from_slice(&to_v6(d).octets());
                }
            }
            out.extend_from_slice(&sport.to_be_bytes());
            out.extend_from_slice(&dport.to_be_bytes());
        }
    }
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Outcome = Result<Option<(Addresses, usize)>, Error>;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn tcp(src: &str, dst: &str) -> Addresses {
        Addresses::Tcp {
            source: sa(src),
            destination: sa(dst),
        }
    }

    /// A v2 header with the given version/command and family bytes and body.
    fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.push(ver_cmd);
        h.push(fam);
        h.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn v4_body() -> Vec<u8> {
        vec![192, 0, 2, 1, 198, 51, 100, 7, 0x30, 0x39, 0x01, 0xbb] // :12345 -> :443
    }

    fn v6_body() -> Vec<u8> {
        let mut b = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)
            .octets()
            .to_vec();
        b.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets());
        b.extend_from_slice(&[0, 80, 0x1f, 0x90]); // :80 -> :8080
        b
    }

    /// Every valid header, with what it says, for the shared checks below.
    fn valid_headers() -> Vec<(&'static str, Vec<u8>, Addresses)> {
        let v4 = tcp("192.0.2.1:12345", "198.51.100.7:443");
        let v6 = tcp("[2001:db8::1]:80", "[2001:db8::2]:8080");
        let mut v4_tlvs = v4_body();
        v4_tlvs.extend_from_slice(&[0x04, 0, 0]); // NOOP, empty
        v4_tlvs.extend_from_slice(&[0x02, 0, 3, b'a', b'.', b'b']); // AUTHORITY "a.b"
        let mut unix = vec![0u8; 216];
        unix[0] = b'/';
        vec![
            (
                "v1 tcp4",
                b"PROXY TCP4 192.0.2.1 198.51.100.7 12345 443\r\n".to_vec(),
                v4,
            ),
            (
                "v1 tcp6",
                b"PROXY TCP6 2001:db8::1 2001:db8::2 80 8080\r\n".to_vec(),
                v6,
            ),
            (
                "v1 tcp6 mapped",
                b"PROXY TCP6 ::ffff:1.2.3.4 ::FFFF:5.6.7.8 0 65535\r\n".to_vec(),
                tcp("[::ffff:1.2.3.4]:0", "[::ffff:5.6.7.8]:65535"),
            ),
            (
                "v1 unknown",
                b"PROXY UNKNOWN\r\n".to_vec(),
                Addresses::Unknown,
            ),
            (
                "v1 unknown with junk",
                b"PROXY UNKNOWN ffff:f...f:ffff 1 2\r\n".to_vec(),
                Addresses::Unknown,
            ),
            (
                "v1 max length",
                format!("PROXY UNKNOWN {}\r\n", "x".repeat(MAX_V1_LEN - 16)).into_bytes(),
                Addresses::Unknown,
            ),
            ("v2 tcp4", v2(0x21, 0x11, &v4_body()), v4),
            ("v2 udp4", v2(0x21, 0x12, &v4_body()), v4),
            ("v2 tcp6", v2(0x21, 0x21, &v6_body()), v6),
            ("v2 udp6", v2(0x21, 0x22, &v6_body()), v6),
            ("v2 tcp4 tlvs", v2(0x21, 0x11, &v4_tlvs), v4),
            ("v2 local", v2(0x20, 0x00, &[]), Addresses::Unknown),
            (
                "v2 local ignores family and body",
                v2(0x20, 0xff, &[1, 2, 3]),
                Addresses::Unknown,
            ),
            ("v2 unspec", v2(0x21, 0x00, &[9, 9]), Addresses::Unknown),
            ("v2 unix", v2(0x21, 0x31, &unix), Addresses::Unknown),
            (
                "v2 max length",
                v2(0x21, 0x11, &{
                    let mut b = v4_body();
                    b.extend_from_slice(&[0x04, 0x03, 0xf1]);
                    b.resize(1024, 0);
                    b
                }),
                v4,
            ),
        ]
    }

    #[test]
    fn valid_headers_parse_and_consume_exactly() {
        for (name, header, want) in valid_headers() {
            let mut buf = header.clone();
            buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            assert_eq!(
                parse(&buf, Accept::Any),
                Ok(Some((want, header.len()))),
                "{name}"
            );
            let accept = if header[0] == b'P' {
                Accept::V1
            } else {
                Accept::V2
            };
            assert_eq!(
                parse(&header, accept),
                Ok(Some((want, header.len()))),
                "{name}"
            );
        }
    }

    #[test]
    fn every_prefix_of_a_valid_header_needs_more() {
        for (name, header, _) in valid_headers() {
            for accept in [Accept::Any, Accept::V1, Accept::V2] {
                let is_v1 = header[0] == b'P';
                if (accept == Accept::V1 && !is_v1) || (accept == Accept::V2 && is_v1) {
                    continue;
                }
                for split in 0..header.len() {
                    assert_eq!(
                        parse(&header[..split], accept),
                        Ok(None),
                        "{name} split at {split}"
                    );
                }
            }
        }
    }

    #[test]
    fn malformed_v1_rejected() {
        let bad = |why| Error::Malformed(why);
        let rows: Vec<(&str, Vec<u8>, Error)> = vec![
            (
                "lowercase",
                b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
                Error::NotProxyProtocol,
            ),
            (
                "lowercase proto",
                b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
                bad("v1: unknown protocol"),
            ),
            (
                "double space",
                b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n".to_vec(),
                bad("v1: empty field (double space?)"),
            ),
            (
                "double space after PROXY",
                b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
                bad("v1: unknown protocol"),
            ),
            (
                "trailing space",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n".to_vec(),
                bad("v1: too many fields"),
            ),
            (
                "bad ip",
                b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n".to_vec(),
                bad("v1: bad IPv4 address"),
            ),
            (
                "ip leading zero",
                b"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n".to_vec(),
                bad("v1: bad IPv4 address"),
            ),
            (
                "ip letters",
                b"PROXY TCP4 1.2.3.x 5.6.7.8 1 2\r\n".to_vec(),
                bad("v1: bad address"),
            ),
            (
                "port 65536",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n".to_vec(),
                bad("v1: bad port"),
            ),
            (
                "leading zero port",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 080\r\n".to_vec(),
                bad("v1: bad port"),
            ),
            (
                "signed port",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n".to_vec(),
                bad("v1: bad port"),
            ),
            (
                "missing port",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n".to_vec(),
                bad("v1: missing fields"),
            ),
            (
                "missing addresses",
                b"PROXY TCP4\r\n".to_vec(),
                bad("v1: missing addresses"),
            ),
            (
                "empty proto",
                b"PROXY \r\n".to_vec(),
                bad("v1: unknown protocol"),
            ),
            (
                "LF only",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n".to_vec(),
                bad("v1: line not terminated by CRLF"),
            ),
            (
                "CR without LF",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\r\n".to_vec(),
                bad("v1: stray CR"),
            ),
            (
                "tcp4 with ipv6",
                b"PROXY TCP4 ::1 ::1 1 2\r\n".to_vec(),
                bad("v1: bad address"),
            ),
            (
                "tcp6 with ipv4",
                b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
                bad("v1: bad IPv6 address"),
            ),
            (
                "tcp6 bracketed",
                b"PROXY TCP6 [::1] ::1 1 2\r\n".to_vec(),
                bad("v1: bad address"),
            ),
            (
                "unknown glued",
                b"PROXY UNKNOWNX\r\n".to_vec(),
                bad("v1: unknown protocol"),
            ),
            (
                "missing CRLF in 107 bytes",
                format!("PROXY UNKNOWN {}", "x".repeat(200)).into_bytes(),
                Error::TooLong,
            ),
            (
                "CRLF at byte 108",
                format!("PROXY UNKNOWN {}\r\n", "x".repeat(MAX_V1_LEN - 15)).into_bytes(),
                Error::TooLong,
            ),
        ];
        for (name, input, want) in rows {
            assert_eq!(parse(&input, Accept::Any), Err(want), "{name}");
            assert_eq!(parse(&input, Accept::V1), Err(want), "{name} (V1)");
        }
    }

    #[test]
    fn malformed_v1_rejected_before_the_line_ends() {
        let rows: [&[u8]; 7] = [
            b"PROXY TCP5",
            b"PROXY TCP4 1.2.3.4  ",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rx",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r",
        ];
        // The last row is one LF short of valid: it must wait, the others must fail now.
        for (i, input) in rows.iter().enumerate() {
            let got = parse(input, Accept::Any);
            if i == rows.len() - 1 {
                assert_eq!(got, Ok(None), "{:?}", String::from_utf8_lossy(input));
            } else {
                assert!(
                    got.is_err(),
                    "{:?}: {got:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn malformed_v2_rejected() {
        let mut tlv_overrun = v4_body();
        tlv_overrun.extend_from_slice(&[0x02, 0, 5, b'a']);
        let mut tlv_truncated = v4_body();
        tlv_truncated.extend_from_slice(&[0x02, 0]);
        let mut too_long = v2(0x21, 0x11, &v4_body());
        too_long[14..16].copy_from_slice(&1025u16.to_be_bytes());
        let rows: Vec<(&str, Vec<u8>, Error)> = vec![
            (
                "version 1",
                v2(0x11, 0x11, &v4_body()),
                Error::Malformed("v2: unsupported version"),
            ),
            (
                "version 3",
                v2(0x31, 0x11, &v4_body()),
                Error::Malformed("v2: unsupported version"),
            ),
            (
                "command 2",
                v2(0x22, 0x11, &v4_body()),
                Error::UnsupportedCommand,
            ),
            (
                "family 4",
                v2(0x21, 0x41, &v4_body()),
                Error::Malformed("v2: invalid family/protocol"),
            ),
            (
                "protocol 3",
                v2(0x21, 0x13, &v4_body()),
                Error::Malformed("v2: invalid family/protocol"),
            ),
            (
                "v4 short",
                v2(0x21, 0x11, &v4_body()[..11]),
                Error::Malformed("v2: length shorter than address block"),
            ),
            (
                "v6 short",
                v2(0x21, 0x21, &v4_body()),
                Error::Malformed("v2: length shorter than address block"),
            ),
            (
                "tlv overrun",
                v2(0x21, 0x11, &tlv_overrun),
                Error::Malformed("v2: TLV overruns header"),
            ),
            (
                "tlv truncated",
                v2(0x21, 0x11, &tlv_truncated),
                Error::Malformed("v2: truncated TLV header"),
            ),
            ("too long", too_long.clone(), Error::TooLong),
            // Rejected from the 16 fixed bytes alone, without waiting for the body.
            ("too long early", too_long[..16].to_vec(), Error::TooLong),
            (
                "short early",
                v2(0x21, 0x21, &v4_body())[..16].to_vec(),
                Error::Malformed("v2: length shorter than address block"),
            ),
            (
                "bad version early",
                v2(0x11, 0x11, &[])[..13].to_vec(),
                Error::Malformed("v2: unsupported version"),
            ),
        ];
        for (name, input, want) in rows {
            assert_eq!(parse(&input, Accept::Any), Err(want), "{name}");
            assert_eq!(parse(&input, Accept::V2), Err(want), "{name} (V2)");
        }
    }

    #[test]
    fn accept_modes() {
        let h1 = b"PROXY UNKNOWN\r\n".to_vec();
        let h2 = v2(0x20, 0x00, &[]);
        let ok1 = Ok(Some((Addresses::Unknown, h1.len())));
        let ok2 = Ok(Some((Addresses::Unknown, h2.len())));
        let rows: Vec<(&[u8], Accept, Outcome)> = vec![
            (&h1, Accept::V1, ok1),
            (&h1, Accept::Any, ok1),
            (&h1, Accept::V2, Err(Error::WrongVersion)),
            (&h2, Accept::V2, ok2),
            (&h2, Accept::Any, ok2),
            (&h2, Accept::V1, Err(Error::WrongVersion)),
            // Rejected from the first byte, not waited on.
            (b"P", Accept::V2, Err(Error::WrongVersion)),
            (b"\r", Accept::V1, Err(Error::WrongVersion)),
            (b"G", Accept::Any, Err(Error::NotProxyProtocol)),
            (b"G", Accept::V1, Err(Error::NotProxyProtocol)),
            (b"G", Accept::V2, Err(Error::NotProxyProtocol)),
            (b"\x16\x03\x01", Accept::Any, Err(Error::NotProxyProtocol)),
            (
                b"POST / HTTP/1.1\r\n",
                Accept::Any,
                Err(Error::NotProxyProtocol),
            ),
            (b"PO", Accept::V1, Err(Error::NotProxyProtocol)),
            (b"\r\n\r\n\r", Accept::Any, Err(Error::NotProxyProtocol)),
            (b"", Accept::Any, Ok(None)),
        ];
        for (input, accept, want) in rows {
            assert_eq!(parse(input, accept), want, "{input:?} {accept:?}");
        }
    }

    #[test]
    fn encode_parse_round_trip() {
        let rows = [
            ("192.0.2.1:12345", "198.51.100.7:443", None),
            ("0.0.0.0:0", "255.255.255.255:65535", None),
            ("[2001:db8::1]:80", "[2001:db8::2]:8080", None),
            (
                "[::]:0",
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                None,
            ),
            // Mixed families: the IPv4 side becomes IPv4-mapped IPv6.
            (
                "192.0.2.1:1",
                "[2001:db8::2]:2",
                Some(("[::ffff:192.0.2.1]:1", "[2001:db8::2]:2")),
            ),
            (
                "[2001:db8::1]:1",
                "192.0.2.2:2",
                Some(("[2001:db8::1]:1", "[::ffff:192.0.2.2]:2")),
            ),
        ];
        for (src, dst, mapped) in rows {
            let want = match mapped {
                Some((s, d)) => tcp(s, d),
                None => tcp(src, dst),
            };
            for version in [Version::V1, Version::V2] {
                let mut out = b"prefix".to_vec();
                encode(version, sa(src), sa(dst), &mut out);
                let header = &out[6..];
                assert_eq!(&out[..6], b"prefix", "encode must append");
                let accept = match version {
                    Version::V1 => Accept::V1,
                    Version::V2 => Accept::V2,
                };
                assert_eq!(
                    parse(header, accept),
                    Ok(Some((want, header.len()))),
                    "{src} -> {dst} {version:?}"
                );
                if version == Version::V1 {
                    assert!(header.len() <= MAX_V1_LEN);
                }
            }
        }
    }

    #[test]
    fn encode_exact_bytes() {
        let mut out = Vec::new();
        encode(
            Version::V1,
            sa("192.0.2.1:12345"),
            sa("198.51.100.7:443"),
            &mut out,
        );
        assert_eq!(out, b"PROXY TCP4 192.0.2.1 198.51.100.7 12345 443\r\n");
        out.clear();
        encode(
            Version::V2,
            sa("192.0.2.1:12345"),
            sa("198.51.100.7:443"),
            &mut out,
        );
        assert_eq!(out, v2(0x21, 0x11, &v4_body()));
        out.clear();
        encode(
            Version::V2,
            sa("[2001:db8::1]:80"),
            sa("[2001:db8::2]:8080"),
            &mut out,
        );
        assert_eq!(out, v2(0x21, 0x21, &v6_body()));
    }
}

//! Cookie conditions and the sticky-session cookie helpers.

use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;

use super::headers::{trim_ows, HeaderSource};

/// Key of [`sticky_token`]. Fixed so that every core, every process and every restart
/// encodes a backend the same way; changing it moves every sticky client once.
const STICKY_KEY: [u8; 16] = *b"ringway-sticky-1";

/// Calls `f` with each `name=value` pair of every Cookie field, in order (RFC 6265
/// §5.4 sends one field; HTTP/2 and some clients split it, so all are read).
///
/// Read leniently, as servers do: whitespace around names and values is dropped, a
/// value in double quotes is unquoted, and a piece without `=` is skipped.
fn for_each_cookie<'a>(
    headers: &dyn HeaderSource<'a>,
    f: &mut dyn FnMut(&'a [u8], &'a [u8]) -> ControlFlow<()>,
) -> ControlFlow<()> {
    headers.for_each_header(&mut |name, value| {
        if !name.eq_ignore_ascii_case(b"cookie") {
            return ControlFlow::Continue(());
        }
        for pair in value.split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            f(trim_ows(&pair[..eq]), unquote(trim_ows(&pair[eq + 1..])))?;
        }
        ControlFlow::Continue(())
    })
}

/// `"v"` → `v` (RFC 6265 §4.1.1 allows a quoted cookie-value; the quotes are not
/// part of the value a route or a sticky lookup compares).
fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

/// Value of cookie `name` in the request's Cookie header(s), if present.
///
/// The name is case-sensitive; the first occurrence wins (browsers send the cookie
/// with the most specific path first). The value is returned without surrounding
/// double quotes. Borrowed from the request; nothing is allocated.
pub fn cookie_value<'a>(headers: &dyn HeaderSource<'a>, name: &str) -> Option<&'a [u8]> {
    let mut found = None;
    let _ = for_each_cookie(headers, &mut |n, v| {
        if n == name.as_bytes() {
            found = Some(v);
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    found
}

/// Whether any cookie named `name` has exactly `value` (any occurrence, like header
/// conditions: a client holding two `tier` cookies for different paths matches a
/// route on either).
pub(super) fn has_cookie(headers: &dyn HeaderSource<'_>, name: &[u8], value: &[u8]) -> bool {
    for_each_cookie(headers, &mut |n, v| {
        if n == name && v == value {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

/// `cookie-octet` (RFC 6265 §4.1.1): printable ASCII except space, `"`, `,`, `;`, `\`.
pub(super) fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// Whether `name` can be a cookie name (an HTTP token, RFC 6265 §4.1.1), e.g. for the
/// config layer to check a sticky cookie's name before [`sticky_set_cookie`] uses it.
pub fn is_valid_cookie_name(name: &str) -> bool {
    super::is_token(name.as_bytes())
}

/// Encode a backend identity for a sticky cookie: stable across processes (hash of the
/// backend address, hex), not the raw address (don't leak internal IPs).
///
/// SipHash-2-4 of the address under a fixed key, as 16 lower-case hex digits. Every
/// core and process, and every version of ringway, computes the same token for the
/// same address (the hash is implemented here, not taken from `std`, whose hasher may
/// change between Rust releases). An IPv4-mapped IPv6 address gives the same token as
/// the IPv4 address.
///
/// The key is public, so the token hides the address from a casual look only: a client
/// could hash every address of a private range to find its backend. Where that
/// matters, use [`sticky_token_keyed`] with a secret key from the config.
pub fn sticky_token(addr: SocketAddr) -> [u8; 16] {
    sticky_token_keyed(addr, &STICKY_KEY)
}

/// [`sticky_token`] under the caller's 16-byte key: with a secret key the token reveals
/// nothing about the address. Every process sharing the key agrees on the tokens.
pub fn sticky_token_keyed(addr: SocketAddr, key: &[u8; 16]) -> [u8; 16] {
    // family tag, address, port: tags keep a v4 and a v6 address whose bytes happen
    // to line up from hashing alike.
    let mut msg = [0u8; 1 + 16 + 2];
    let len = match addr.ip().to_canonical() {
        IpAddr::V4(ip) => {
            msg[0] = 4;
            msg[1..5].copy_from_slice(&ip.octets());
            5
        }
        IpAddr::V6(ip) => {
            msg[0] = 6;
            msg[1..17].copy_from_slice(&ip.octets());
            17
        }
    };
    msg[len..len + 2].copy_from_slice(&addr.port().to_be_bytes());
    hex16(siphash24(key, &msg[..len + 2]))
}

/// `Set-Cookie` value for the sticky cookie: `name=token; Path=/; HttpOnly; SameSite=Lax`.
///
/// Appended to `out` (which is not cleared), so a response writer can build the whole
/// field line in its own buffer. `name` must be a valid cookie name
/// ([`is_valid_cookie_name`]); the config layer checks it once at load.
///
/// A session cookie (no `Max-Age`): stickiness lasts as long as the browser session.
/// `HttpOnly` because no script needs it; `SameSite=Lax` keeps it on top-level
/// navigations from other sites, where stickiness still matters.
pub fn sticky_set_cookie(name: &str, token: &[u8; 16], out: &mut Vec<u8>) {
    debug_assert!(is_valid_cookie_name(name), "invalid cookie name {name:?}");
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    out.extend_from_slice(token);
    out.extend_from_slice(b"; Path=/; HttpOnly; SameSite=Lax");
}

/// `v` as 16 lower-case hex digits, most significant first.
fn hex16(v: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// SipHash-2-4 (Aumasson & Bernstein), 64-bit output: a keyed PRF, so tokens under a
/// secret key cannot be inverted by enumerating addresses.
pub(super) fn siphash24(key: &[u8; 16], msg: &[u8]) -> u64 {
    let k0 = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
    let k1 = u64::from_le_bytes(key[8..].try_into().expect("8 bytes"));
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = msg.chunks_exact(8);
    for chunk in &mut chunks {
        let m = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        v[3] ^= m;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= m;
    }
    // Last block: the remaining bytes, and the length's low byte on top.
    let mut last = (msg.len() as u64) << 56;
    for (i, &b) in chunks.remainder().iter().enumerate() {
        last |= u64::from(b) << (8 * i);
    }
    v[3] ^= last;
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^= last;
    v[2] ^= 0xff;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

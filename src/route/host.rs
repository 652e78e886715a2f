//! Host conditions: patterns from the config, and the request's Host reduced to what
//! they are compared with.

use std::net::Ipv6Addr;

use super::headers::trim_ows;

/// Longest DNS name (RFC 1035 §2.3.4, without the trailing dot).
const MAX_NAME: usize = 253;
/// Longest DNS label.
const MAX_LABEL: usize = 63;

/// A compiled `host` condition. Matched against [`normalize`]d request hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum HostPattern {
    /// A name or IPv4 literal, lower-case, without a trailing dot.
    Exact(Box<[u8]>),
    /// `*.example.com`, stored as the suffix `.example.com`.
    Suffix(Box<[u8]>),
    /// An IPv6 literal, compared as an address so that `[::1]` also matches a client
    /// that writes `[0:0::1]`.
    Ipv6(Ipv6Addr),
}

impl HostPattern {
    /// Validates a configured pattern: a DNS name (letters, digits, `-`, `_`), an IPv4
    /// literal, an IPv6 literal with or without brackets, or `*.` and a name. A
    /// trailing dot is accepted and dropped, as in requests.
    pub(super) fn parse(pattern: &str) -> Result<HostPattern, String> {
        let lower = pattern.to_ascii_lowercase();
        let s = lower.strip_suffix('.').unwrap_or(&lower);
        if s.is_empty() {
            return Err(format!(
                "{pattern:?} is empty; leave `host` out to match any host"
            ));
        }
        if let Some(inner) = s.strip_prefix('[') {
            return match inner.strip_suffix(']').map(str::parse::<Ipv6Addr>) {
                Some(Ok(ip)) => Ok(HostPattern::Ipv6(ip)),
                _ => Err(format!(
                    "{pattern:?} is not an IPv6 literal such as \"[::1]\""
                )),
            };
        }
        if s.contains(':') {
            if let Ok(ip) = s.parse::<Ipv6Addr>() {
                return Ok(HostPattern::Ipv6(ip));
            }
            return Err(format!(
                "{pattern:?} has a port: the request's port is ignored, so give the host only"
            ));
        }
        if s == "*" {
            return Err(format!("{pattern:?}: leave `host` out to match any host"));
        }
        if let Some(rest) = s.strip_prefix("*.") {
            check_name(pattern, rest)?;
            // Keep the dot: the suffix `.example.com` also rules out `badexample.com`.
            return Ok(HostPattern::Suffix(s.as_bytes()[1..].into()));
        }
        if s.contains('*') {
            return Err(format!(
                "{pattern:?}: only a leading `*.` wildcard is supported (\"*.example.com\")"
            ));
        }
        check_name(pattern, s)?;
        Ok(HostPattern::Exact(s.as_bytes().into()))
    }

    /// Whether a normalized request host (see [`normalize`]) satisfies the pattern.
    pub(super) fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name),
            // Strictly longer than the suffix: `*.example.com` wants at least one label
            // in front, so the apex `example.com` (one byte shorter) never matches.
            HostPattern::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
            HostPattern::Ipv6(ip) => host
                .strip_prefix(b"[")
                .and_then(|h| h.strip_suffix(b"]"))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| h.parse::<Ipv6Addr>().ok())
                .is_some_and(|h| h == *ip),
        }
    }
}

/// Checks that `name` is a DNS name in the lenient form proxies see in practice
/// (underscores allowed), so a typo is caught at load instead of never matching.
fn check_name(pattern: &str, name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME {
        return Err(format!("{pattern:?} is longer than {MAX_NAME} characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!("{pattern:?} has an empty label"));
        }
        if label.len() > MAX_LABEL {
            return Err(format!(
                "{pattern:?} has a label longer than {MAX_LABEL} characters"
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "{pattern:?} has {c:?}: use letters, digits, '-', '_' \
                 (internationalized names in punycode, \"xn--...\")"
            ));
        }
    }
    Ok(())
}

/// The request's Host value reduced to the host: surrounding whitespace, the port and
/// one trailing dot removed. Borrowed, never allocated; case is left alone (patterns
/// compare case-insensitively).
///
/// `[v6]:port` keeps the bracketed literal. A value with several colons and no
/// brackets is not valid Host syntax; it is kept whole rather than cut at a colon that
/// is not a port separator.
pub(super) fn normalize(raw: &[u8]) -> &[u8] {
    let raw = trim_ows(raw);
    if raw.first() == Some(&b'[') {
        return match raw.iter().position(|&b| b == b']') {
            Some(end) => &raw[..=end],
            None => raw,
        };
    }
    let host = match raw.iter().rposition(|&b| b == b':') {
        Some(colon) if !raw[..colon].contains(&b':') => &raw[..colon],
        _ => raw,
    };
    host.strip_suffix(b".").unwrap_or(host)
}

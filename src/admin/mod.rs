//! The admin endpoint's protocol logic, without IO: parse one HTTP/1.1 request head,
//! route it, and serialize responses. The control thread does the socket work.
//!
//! Routes:
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | GET, HEAD | `/metrics` | Prometheus text |
//! | GET, HEAD | `/stats` | JSON |
//! | GET, HEAD | `/live` | the process answers |
//! | GET, HEAD | `/ready` | 200, or 503 while draining |
//! | POST | `/reload` | re-read the config file |
//! | POST | `/backends/{pool}/{addr}/drain` | no new traffic to a backend |
//! | POST | `/backends/{pool}/{addr}/enable` | undo a drain |
//!
//! A known path with the wrong method is 405 with `Allow`; anything else is 404.

use std::net::SocketAddr;

/// Largest request head the admin endpoint reads; larger is a bad request.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// A routed admin request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminRequest {
    /// `GET /metrics`.
    Metrics,
    /// `GET /stats`.
    Stats,
    /// `GET /live`.
    Live,
    /// `GET /ready`.
    Ready,
    /// `POST /reload`.
    Reload,
    /// `POST /backends/{pool}/{addr}/drain`.
    Drain {
        /// Pool name.
        pool: String,
        /// Backend address.
        backend: SocketAddr,
    },
    /// `POST /backends/{pool}/{addr}/enable`.
    Enable {
        /// Pool name.
        pool: String,
        /// Backend address.
        backend: SocketAddr,
    },
}

/// The outcome of routing a complete head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routed {
    /// A request to serve.
    Request(AdminRequest),
    /// No such path: 404.
    NotFound,
    /// The path exists but not for this method: 405 with this `Allow` value.
    MethodNotAllowed {
        /// Methods the path accepts.
        allow: &'static str,
    },
    /// Unparsable or oversized head: 400 with a reason.
    BadRequest(&'static str),
}

/// Result of looking at the bytes received so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet; read more.
    Partial,
    /// The head is complete (or hopeless) and routed.
    Complete {
        /// What to do.
        routed: Routed,
        /// Length of the head in bytes (0 when the head was rejected before its end).
        head_len: usize,
        /// The method was HEAD: answer with the headers only.
        is_head: bool,
    },
}

/// Parse a request head from `buf` and route it.
pub fn parse_and_route(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => Parsed::Complete {
            routed: Routed::BadRequest("request head too large"),
            head_len: 0,
            is_head: false,
        },
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(_) => Parsed::Complete {
            routed: Routed::BadRequest("malformed request"),
            head_len: 0,
            is_head: false,
        },
        // A head that arrived whole in one read is held to the same limit.
        Ok(httparse::Status::Complete(head_len)) if head_len > MAX_HEAD_BYTES => Parsed::Complete {
            routed: Routed::BadRequest("request head too large"),
            head_len,
            is_head: false,
        },
        Ok(httparse::Status::Complete(head_len)) => {
            let (Some(method), Some(target)) = (request.method, request.path) else {
                return Parsed::Complete {
                    routed: Routed::BadRequest("malformed request"),
                    head_len,
                    is_head: false,
                };
            };
            Parsed::Complete {
                routed: route(method, target),
                head_len,
                is_head: method == "HEAD",
            }
        }
    }
}

/// Route a method and request target (query string ignored).
pub fn route(method: &str, target: &str) -> Routed {
    let path = target.split('?').next().unwrap_or("");
    const READ: &str = "GET, HEAD";
    const WRITE: &str = "POST";
    let read = matches!(method, "GET" | "HEAD");
    let write = method == "POST";
    let fixed = match path {
        "/metrics" => Some((AdminRequest::Metrics, read, READ)),
        "/stats" => Some((AdminRequest::Stats, read, READ)),
        "/live" => Some((AdminRequest::Live, read, READ)),
        "/ready" => Some((AdminRequest::Ready, read, READ)),
        "/reload" => Some((AdminRequest::Reload, write, WRITE)),
        _ => None,
    };
    if let Some((request, allowed, allow)) = fixed {
        return if allowed {
            Routed::Request(request)
        } else {
            Routed::MethodNotAllowed { allow }
        };
    }
    let Some(rest) = path.strip_prefix("/backends/") else {
        return Routed::NotFound;
    };
    let mut parts = rest.split('/');
    let (Some(pool), Some(addr), Some(verb), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Routed::NotFound;
    };
    if verb != "drain" && verb != "enable" {
        return Routed::NotFound;
    }
    if !write {
        return Routed::MethodNotAllowed { allow: WRITE };
    }
    let (Some(pool), Some(addr)) = (percent_decode(pool), percent_decode(addr)) else {
        return Routed::BadRequest("bad percent-encoding in path");
    };
    let Ok(backend) = addr.parse::<SocketAddr>() else {
        return Routed::BadRequest("backend must be an address like 127.0.0.1:8001");
    };
    Routed::Request(if verb == "drain" {
        AdminRequest::Drain { pool, backend }
    } else {
        AdminRequest::Enable { pool, backend }
    })
}

/// Decode `%XX` escapes (so `[::1]:80` may be written `%5B%3A%3A1%5D%3A80`).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Exactly two hex digits: `u8::from_str_radix` alone would also take "+F".
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Serialize a complete response with `Content-Length` and `Connection: close`.
pub fn response(
    status: u16,
    content_type: &str,
    body: &str,
    extra_headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
            crate::http1::reason_phrase(status),
            body.len()
        )
        .as_bytes(),
    );
    for (name, value) in extra_headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, target: &str) -> Routed {
        let raw = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        match parse_and_route(raw.as_bytes()) {
            Parsed::Complete {
                routed,
                head_len,
                is_head,
            } => {
                assert_eq!(head_len, raw.len());
                assert_eq!(is_head, *method == *"HEAD");
                routed
            }
            Parsed::Partial => panic!("partial"),
        }
    }

    #[test]
    fn routes_table() {
        let b: SocketAddr = "127.0.0.1:8001".parse().unwrap();
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        let cases: &[(&str, &str, Routed)] = &[
            ("GET", "/metrics", Routed::Request(AdminRequest::Metrics)),
            ("HEAD", "/metrics", Routed::Request(AdminRequest::Metrics)),
            (
                "GET",
                "/metrics?x=1",
                Routed::Request(AdminRequest::Metrics),
            ),
            ("GET", "/stats", Routed::Request(AdminRequest::Stats)),
            ("GET", "/live", Routed::Request(AdminRequest::Live)),
            ("GET", "/ready", Routed::Request(AdminRequest::Ready)),
            ("POST", "/reload", Routed::Request(AdminRequest::Reload)),
            ("GET", "/reload", Routed::MethodNotAllowed { allow: "POST" }),
            (
                "POST",
                "/metrics",
                Routed::MethodNotAllowed { allow: "GET, HEAD" },
            ),
            (
                "POST",
                "/backends/web/127.0.0.1:8001/drain",
                Routed::Request(AdminRequest::Drain {
                    pool: "web".into(),
                    backend: b,
                }),
            ),
            (
                "POST",
                "/backends/web/127.0.0.1:8001/enable",
                Routed::Request(AdminRequest::Enable {
                    pool: "web".into(),
                    backend: b,
                }),
            ),
            (
                "POST",
                "/backends/web/%5B%3A%3A1%5D%3A80/drain",
                Routed::Request(AdminRequest::Drain {
                    pool: "web".into(),
                    backend: v6,
                }),
            ),
            (
                "GET",
                "/backends/web/127.0.0.1:8001/drain",
                Routed::MethodNotAllowed { allow: "POST" },
            ),
            (
                "POST",
                "/backends/web/127.0.0.1:8001/explode",
                Routed::NotFound,
            ),
            (
                "POST",
                "/backends/web/127.0.0.1:8001/drain/x",
                Routed::NotFound,
            ),
            (
                "POST",
                "/backends/web/nonsense/drain",
                Routed::BadRequest("backend must be an address like 127.0.0.1:8001"),
            ),
            (
                "POST",
                "/backends/web/%zz/drain",
                Routed::BadRequest("bad percent-encoding in path"),
            ),
            (
                "POST",
                "/backends/w%+Fb/127.0.0.1:1/drain",
                Routed::BadRequest("bad percent-encoding in path"),
            ),
            ("GET", "/", Routed::NotFound),
            ("GET", "/metricsx", Routed::NotFound),
        ];
        for (method, target, want) in cases {
            assert_eq!(&req(method, target), want, "{method} {target}");
        }
    }

    #[test]
    fn partial_oversized_and_garbage_heads() {
        assert_eq!(
            parse_and_route(b"GET /metrics HTTP/1.1\r\nHo"),
            Parsed::Partial
        );
        let huge = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(
            parse_and_route(&huge.as_bytes()[..MAX_HEAD_BYTES]),
            Parsed::Complete {
                routed: Routed::BadRequest("request head too large"),
                head_len: 0,
                is_head: false
            }
        );
        let whole = format!(
            "GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(MAX_HEAD_BYTES)
        );
        assert!(matches!(
            parse_and_route(whole.as_bytes()),
            Parsed::Complete {
                routed: Routed::BadRequest("request head too large"),
                ..
            }
        ));
        assert_eq!(
            parse_and_route(b"\x00\x01garbage\r\n\r\n"),
            Parsed::Complete {
                routed: Routed::BadRequest("malformed request"),
                head_len: 0,
                is_head: false
            }
        );
    }

    #[test]
    fn responses_are_framed() {
        let r = response(405, "text/plain", "no\n", &[("Allow", "POST")]);
        let text = String::from_utf8(r).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nContent-Length: 3\r\n"), "{text}");
        assert!(text.contains("\r\nAllow: POST\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nno\n"), "{text}");
    }
}

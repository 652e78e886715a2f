//! Entry points for `cargo fuzz` targets (and the unit tests): each runs the parsers on
//! arbitrary bytes and panics only if an invariant breaks. They allocate freely; they
//! are not on the proxy's path.
//!
//! Invariants:
//! - no input panics a parser;
//! - an accepted head depends only on its own bytes (reparsing `buf[..head_len]` gives
//!   the same head; one byte less is `Partial`);
//! - an accepted request, rewritten with [`write_upstream_request`] and parsed again,
//!   keeps its method, path, framing, upgrade and expect-continue;
//! - the chunked decoder gives the same data and outcome whatever the input split.

use std::net::{IpAddr, Ipv4Addr};

use super::{
    parse_request_head, parse_response_head_for, write_upstream_request, BodyError, BodyFraming,
    BodyTracker, ChunkedDecoder, ForwardedProto, HeadStatus, Limits, Method, RequestError,
    RequestHead, ResponseError, ResponseHead, RewriteOptions, TargetForm,
};

/// Limits small enough for a fuzzer to reach every one of them.
fn fuzz_limits() -> Limits {
    Limits {
        max_head_bytes: 2048,
        max_headers: 16,
        max_uri_bytes: 512,
        max_body_bytes: Some(4096),
        max_chunk_ext_bytes: 32,
        max_trailer_bytes: 64,
    }
}

fn parse_req(buf: &[u8], limits: &Limits) -> Result<HeadStatus<RequestHead>, RequestError> {
    let mut scratch = [httparse::EMPTY_HEADER; 64];
    parse_request_head(buf, limits, &mut scratch)
}

fn parse_res(
    buf: &[u8],
    method: Method,
    limits: &Limits,
) -> Result<HeadStatus<ResponseHead>, ResponseError> {
    let mut scratch = [httparse::EMPTY_HEADER; 64];
    parse_response_head_for(buf, method, limits, &mut scratch)
}

/// The origin-form path a head will be forwarded with.
fn forwarded_path(head: &RequestHead, buf: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    let path = head.path.get(buf);
    if head.target_form == TargetForm::Absolute && !path.starts_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(path);
    p
}

/// Parses `data` as a request head (then its body) and checks the invariants.
pub fn fuzz_request(data: &[u8]) {
    let limits = fuzz_limits();
    let first = parse_req(data, &limits);
    assert_eq!(first, parse_req(data, &limits), "parsing is deterministic");
    let head = match first {
        Ok(HeadStatus::Complete(h)) => h,
        Ok(HeadStatus::Partial) => {
            assert!(
                data.len() < limits.max_head_bytes,
                "partial beyond the head limit"
            );
            return;
        }
        Err(e) => {
            assert!(matches!(e.status(), 400 | 413 | 414 | 417 | 431 | 501));
            return;
        }
    };
    assert!(head.head_len <= data.len() && head.head_len <= limits.max_head_bytes);
    assert_ne!(
        head.framing,
        BodyFraming::UntilClose,
        "requests are never until-close"
    );
    assert_eq!(head.header_count, head.headers(data).count());
    if let BodyFraming::ContentLength(n) = head.framing {
        if let Some(max) = limits.max_body_bytes {
            assert!(n <= max);
        }
    }

    // The head depends only on its own bytes.
    let own = data.get(..head.head_len).unwrap_or_default();
    assert_eq!(parse_req(own, &limits), Ok(HeadStatus::Complete(head)));
    let shorter = data
        .get(..head.head_len.saturating_sub(1))
        .unwrap_or_default();
    assert_eq!(parse_req(shorter, &limits), Ok(HeadStatus::Partial));

    // Rewrite, reparse: the upstream must frame and route it the same way.
    let set = [("X-Added", "1")];
    let remove = ["X-Removed"];
    let opts = RewriteOptions {
        edits: None,
        client_addr: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
        proto: Some(ForwardedProto::Https),
        default_host: "backend:8080",
        set_headers: &set,
        remove_headers: &remove,
        connection_close: data.last().is_some_and(|b| b & 1 == 0),
    };
    let mut out = Vec::new();
    write_upstream_request(&head, data, &mut out, &opts);
    let relaxed = Limits {
        max_head_bytes: usize::MAX,
        max_headers: 64,
        max_uri_bytes: usize::MAX,
        ..limits
    };
    let again = match parse_req(&out, &relaxed) {
        Ok(HeadStatus::Complete(h)) => h,
        other => panic!(
            "rewritten request not accepted: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(again.head_len, out.len());
    assert_eq!(again.method, head.method);
    assert_eq!(again.method_bytes(&out), head.method_bytes(data));
    assert_eq!(again.target_bytes(&out), forwarded_path(&head, data));
    assert_eq!(again.framing, head.framing);
    assert_eq!(again.upgrade, head.upgrade);
    assert_eq!(again.expect_continue, head.expect_continue);
    assert_eq!(again.version_minor, 1);
    assert_eq!(again.keep_alive, !opts.connection_close || head.upgrade);

    check_body(
        head.framing,
        data.get(head.head_len..).unwrap_or_default(),
        &limits,
    );
}

/// Parses `data` as a response head for a GET, HEAD and CONNECT request and checks the
/// invariants.
pub fn fuzz_response(data: &[u8]) {
    let limits = fuzz_limits();
    for method in [Method::Get, Method::Head, Method::Connect] {
        let first = parse_res(data, method, &limits);
        assert_eq!(first, parse_res(data, method, &limits));
        let Ok(HeadStatus::Complete(head)) = first else {
            continue;
        };
        assert!(head.head_len <= data.len());
        assert!((100..=599).contains(&head.status));
        assert_eq!(head.header_count, head.headers(data).count());
        let no_body = method == Method::Head
            || head.status < 200
            || head.status == 204
            || head.status == 304
            || (method == Method::Connect && head.status < 300);
        if no_body {
            assert_eq!(head.framing, BodyFraming::None);
        } else {
            assert_ne!(head.framing, BodyFraming::None);
        }
        if head.framing == BodyFraming::UntilClose {
            assert!(!head.keep_alive);
        }
        let own = data.get(..head.head_len).unwrap_or_default();
        assert_eq!(
            parse_res(own, method, &limits),
            Ok(HeadStatus::Complete(head))
        );
        let shorter = data
            .get(..head.head_len.saturating_sub(1))
            .unwrap_or_default();
        assert_eq!(parse_res(shorter, method, &limits), Ok(HeadStatus::Partial));

        // What the client is sent must parse again, framed exactly as received (the
        // proxy passes the body through unchanged), with the same status.
        let rewrite = super::ResponseRewrite {
            head_request: method == Method::Head,
            connection_close: !head.keep_alive,
            ..Default::default()
        };
        let mut out = Vec::new();
        super::write_client_response(&head, data, &mut out, &rewrite);
        // The rewrite may add a field (Connection) and its bytes: reparse with that room.
        let roomier = Limits {
            max_headers: limits.max_headers + 2,
            max_head_bytes: limits.max_head_bytes + 256,
            ..limits
        };
        match parse_res(&out, method, &roomier) {
            Ok(HeadStatus::Complete(again)) => {
                assert_eq!(again.status, head.status);
                assert_eq!(again.head_len, out.len());
                if head.status != 101 {
                    assert_eq!(
                        again.framing,
                        head.framing,
                        "{:?}",
                        String::from_utf8_lossy(&out)
                    );
                }
            }
            other => panic!(
                "rewritten response does not reparse: {other:?}\n{:?}",
                String::from_utf8_lossy(&out)
            ),
        }
        check_body(
            head.framing,
            data.get(head.head_len..).unwrap_or_default(),
            &limits,
        );
    }
}

/// Decodes `data` as a chunked body whole, one byte at a time and in pieces sized by
/// the first byte, and checks that all agree.
pub fn fuzz_chunked(data: &[u8]) {
    let limits = fuzz_limits();
    let whole = decode_chunked(data, usize::MAX, &limits);
    let bytewise = decode_chunked(data, 1, &limits);
    assert_eq!(whole, bytewise, "byte-at-a-time decoding differs");
    let step = usize::from(data.first().copied().unwrap_or(0) % 7) + 2;
    assert_eq!(whole, decode_chunked(data, step, &limits));
    if let (_, Ok((consumed, _))) = &whole {
        assert!(*consumed <= data.len());
    }
}

/// Chunk data and outcome (`consumed`, `done`) of decoding `data` fed in pieces of
/// `step` bytes.
pub fn decode_chunked(
    data: &[u8],
    step: usize,
    limits: &Limits,
) -> (Vec<u8>, Result<(usize, bool), BodyError>) {
    let mut dec = ChunkedDecoder::with_limits(limits);
    let mut body = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let end = pos.saturating_add(step).min(data.len());
        let mut piece = data.get(pos..end).unwrap_or_default();
        while !piece.is_empty() {
            let p = match dec.feed(piece) {
                Ok(p) => p,
                Err(e) => return (body, Err(e)),
            };
            if let Some(span) = p.data {
                body.extend_from_slice(span.get(piece));
            }
            assert!(p.consumed <= piece.len());
            assert!(p.consumed > 0 || p.done, "no progress on non-empty input");
            pos += p.consumed;
            piece = piece.get(p.consumed..).unwrap_or_default();
            if p.done {
                assert!(dec.is_done());
                return (body, Ok((pos, true)));
            }
        }
    }
    (body, Ok((pos, dec.is_done())))
}

/// Runs a body tracker over `rest` whole and in two pieces; both must agree.
fn check_body(framing: BodyFraming, rest: &[u8], limits: &Limits) {
    let run = |split: usize| {
        let mut t = BodyTracker::new(framing, limits);
        let (a, b) = rest.split_at(split.min(rest.len()));
        let (n1, done1) = t.feed(a)?;
        assert!(n1 <= a.len());
        if n1 < a.len() {
            assert!(done1, "bytes left over but the body is not done");
        }
        if done1 {
            return Ok((n1, true));
        }
        let (n2, done2) = t.feed(b)?;
        assert!(n2 <= b.len());
        assert_eq!(done2, t.is_done());
        Ok::<_, BodyError>((n1 + n2, done2))
    };
    let whole = run(rest.len());
    assert_eq!(whole, run(rest.len() / 2));
    if framing == BodyFraming::Chunked {
        let (_, dec) = decode_chunked(rest, usize::MAX, limits);
        assert_eq!(whole, dec);
    }
}

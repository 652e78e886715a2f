//! The L7 path end to end: the real binary, real HTTP backends, real sockets on loopback.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::http_backend::{
    chunked_body, parse_response, pattern_bytes, raw_exchange, stream_checksum, websocket_accept,
    HttpBackend, HttpBehaviour, HttpClient, StreamSum,
};
use common::{dead_addr, Proxy};

fn hello(id: &str) -> HttpBackend {
    HttpBackend::start(HttpBehaviour::Hello { id: id.into() })
}

/// A one-worker proxy with one `Http` listener called `web` (`listener_extra` is added to
/// the listener, e.g. timeouts) and the given pools (`(name: ..., backends: [...])`).
fn http_proxy(routes: &str, listener_extra: &str, pools: &str) -> Proxy {
    let config = format!(
        "(workers: 1, admin: \"127.0.0.1:0\",\n listeners: [(name: \"web\", bind: \"127.0.0.1:0\", protocol: Http(routes: [{routes}]){listener_extra})],\n pools: [{pools}])\n"
    );
    Proxy::start(&config, &[])
}

fn pool(name: &str, backends: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|a| format!("(addr: \"{a}\")"))
        .collect();
    format!("(name: \"{name}\", backends: [{}]{extra})", list.join(", "))
}

/// The status code of a raw response.
fn status_of(raw: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(raw);
    text.get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"))
}

#[test]
fn each_route_kind_reaches_its_pool_with_header_edits() {
    let api = hello("api");
    let canary = hello("canary");
    let web = HttpBackend::start(HttpBehaviour::Fixed {
        status: 200,
        headers: vec![
            ("server".into(), "origin/1.0".into()),
            ("x-origin".into(), "yes".into()),
        ],
        body: b"web\n".to_vec(),
    });
    let routes = r#"
        (host: "api.example.com", path_prefix: "/v1/", pool: "api"),
        (host: "*.wild.example", pool: "api"),
        (path_exact: "/healthz", respond: (status: 200, body: "ok\n")),
        (header: ("x-canary", "1"), pool: "canary"),
        (cookie: ("tier", "beta"), pool: "canary"),
        (method: "POST", path_regex: "^/upload/[0-9]+$", pool: "api"),
        (path_prefix: "/", pool: "web",
         set_request_headers: [("x-env", "prod")], remove_response_headers: ["server"]),
    "#;
    let pools = [
        pool("api", &[api.addr()], ""),
        pool("canary", &[canary.addr()], ""),
        pool("web", &[web.addr()], ""),
    ]
    .join(", ");
    let proxy = http_proxy(routes, "", &pools);
    let mut c = HttpClient::connect(proxy.addr("web"));

    let r = c.request("GET", "/v1/users", &[("host", "API.Example.com:8080")], b"");
    assert_eq!((r.status, r.text()), (200, "api GET /v1/users\n".into()));
    let r = c.request("GET", "/x", &[("host", "a.b.wild.example")], b"");
    assert_eq!(r.text(), "api GET /x\n", "wildcard host");
    let r = c.request("GET", "/healthz", &[], b"");
    assert_eq!(
        (r.status, r.text()),
        (200, "ok\n".into()),
        "direct response"
    );
    let r = c.request("GET", "/page", &[("x-canary", "1")], b"");
    assert_eq!(r.text(), "canary GET /page\n", "header route");
    let r = c.request("GET", "/page", &[("cookie", "a=1; tier=beta")], b"");
    assert_eq!(r.text(), "canary GET /page\n", "cookie route");
    let r = c.request("POST", "/upload/42", &[], b"data");
    assert_eq!(r.text(), "api POST /upload/42\n", "method + regex route");
    let r = c.request("POST", "/upload/x", &[], b"data");
    assert_eq!(
        r.text(),
        "web\n",
        "regex does not match: falls to the catch-all"
    );

    // The catch-all route's edits: the backend sees x-env, the client misses server.
    let r = c.request("GET", "/index.html", &[("x-env", "dev")], b"");
    assert_eq!(r.header("server"), None, "{r:?}");
    assert_eq!(r.header("x-origin"), Some("yes"));
    let seen = web.last_request().expect("web saw the request");
    assert_eq!(seen.header_all("x-env"), ["prod"]);
    // Forwarding fields.
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
}

#[test]
fn no_matching_route_is_404_and_the_connection_goes_on() {
    let api = hello("api");
    let proxy = http_proxy(
        r#"(path_prefix: "/api/", pool: "api")"#,
        "",
        &pool("api", &[api.addr()], ""),
    );
    let mut c = HttpClient::connect(proxy.addr("web"));
    let r = c.request("GET", "/other", &[], b"");
    assert_eq!(r.status, 404);
    let r = c.request("GET", "/api/x", &[], b"");
    assert_eq!(r.text(), "api GET /api/x\n");
    assert_eq!(api.requests(), 1);
}

#[test]
fn sticky_cookie_pins_a_client_to_its_backend() {
    let a = hello("a");
    let b = hello("b");
    let proxy = http_proxy(
        r#"(pool: "p")"#,
        "",
        &pool(
            "p",
            &[a.addr(), b.addr()],
            r#", balance: RoundRobin, sticky: Cookie(name: "rw_srv")"#,
        ),
    );
    let mut c = HttpClient::connect(proxy.addr("web"));
    let first = c.request("GET", "/", &[], b"");
    let set = first
        .header("set-cookie")
        .expect("the first response sets the cookie");
    assert!(
        set.starts_with("rw_srv=") && set.contains("HttpOnly"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let pinned = first.header("x-backend").unwrap().to_string();
    for _ in 0..20 {
        let r = c.request("GET", "/", &[("cookie", &cookie)], b"");
        assert_eq!(r.header("x-backend"), Some(pinned.as_str()));
        assert_eq!(r.header("set-cookie"), None, "no new cookie while pinned");
    }
    // Without the cookie, round robin alternates between both backends.
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..4 {
        ids.insert(
            c.request("GET", "/", &[], b"")
                .header("x-backend")
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(ids.len(), 2, "{ids:?}");
}

#[test]
fn keep_alive_reuses_one_upstream_connection_for_1000_requests() {
    let backend = hello("k");
    let proxy = http_proxy(r#"(pool: "p")"#, "", &pool("p", &[backend.addr()], ""));
    let mut c = HttpClient::connect(proxy.addr("web"));
    for i in 0..1000 {
        let target = format!("/r/{i}");
        let r = c.request("GET", &target, &[], b"");
        assert_eq!(r.text(), format!("k GET {target}\n"));
    }
    assert_eq!(backend.requests(), 1000);
    assert_eq!(
        backend.accepts(),
        1,
        "one upstream connection carried every request"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let backend = hello("p");
    let proxy = http_proxy(r#"(pool: "p")"#, "", &pool("p", &[backend.addr()], ""));
    let mut c = HttpClient::connect(proxy.addr("web"));
    let mut burst = Vec::new();
    for i in 0..100 {
        burst.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    c.send_raw(&burst);
    for i in 0..100 {
        let r = c.read_response(false);
        assert_eq!(r.text(), format!("p GET /{i}\n"));
    }
    assert_eq!(
        backend.requests(),
        100,
        "the backend saw exactly what the client sent"
    );
}

#[test]
fn chunked_bodies_pass_both_ways() {
    let upload = HttpBackend::start(HttpBehaviour::Upload);
    let chunky = HttpBackend::start(HttpBehaviour::Chunked {
        id: "c".into(),
        chunks: 50,
        chunk_len: 1000,
    });
    let routes = r#"(path_prefix: "/up", pool: "up"), (pool: "down")"#;
    let pools = [
        pool("up", &[upload.addr()], ""),
        pool("down", &[chunky.addr()], ""),
    ]
    .join(", ");
    let proxy = http_proxy(routes, "", &pools);
    let mut c = HttpClient::connect(proxy.addr("web"));

    // Upload in chunks of odd sizes, with a trailer.
    let data = pattern_bytes(300_001, 7);
    let mut body = Vec::new();
    for piece in data.chunks(7_777) {
        body.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        body.extend_from_slice(piece);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\nx-sum: 1\r\n\r\n");
    let r = c.request("POST", "/up", &[("transfer-encoding", "chunked")], &body);
    assert_eq!(
        r.text(),
        format!("{} {}\n", data.len(), stream_checksum(&data))
    );
    let seen = upload.last_request().unwrap();
    assert!(seen.chunked, "chunked upstream as received");

    // Download: passed through chunked, same data.
    let r = c.request("GET", "/d", &[], b"");
    assert!(r.chunked, "the response stays chunked");
    assert_eq!(r.body, chunked_body("c", "GET", "/d", 50, 1000));

    // An HTTP/1.0 client can not read chunked: it gets the raw data, ended by close.
    let raw = raw_exchange(proxy.addr("web"), b"GET /d HTTP/1.0\r\nHost: x\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    let split = text.find("\r\n\r\n").expect("a head");
    assert!(
        !text[..split]
            .to_ascii_lowercase()
            .contains("transfer-encoding"),
        "{text}"
    );
    assert_eq!(
        &raw[split + 4..],
        &chunked_body("c", "GET", "/d", 50, 1000)[..]
    );
}

/// VmRSS of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn a_256_mib_upload_streams_in_bounded_memory() {
    let upload = HttpBackend::start(HttpBehaviour::Upload);
    let proxy = http_proxy(r#"(pool: "p")"#, "", &pool("p", &[upload.addr()], ""));
    let total: u64 = 256 * 1024 * 1024;
    let mut c = HttpClient::connect(proxy.addr("web"));
    c.send_raw(
        format!("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n").as_bytes(),
    );
    let block = pattern_bytes(1 << 20, 3);
    let mut sum = StreamSum::new();
    let mut peak = 0;
    for i in 0..256 {
        c.send_raw(&block);
        sum.update(&block);
        if i % 16 == 0 {
            peak = peak.max(rss(proxy.pid()));
        }
    }
    let r = c.read_response(false);
    peak = peak.max(rss(proxy.pid()));
    assert_eq!(r.text(), format!("{total} {}\n", sum.value()));
    assert!(peak < 64 * 1024 * 1024, "proxy RSS peaked at {peak} bytes");
}

#[test]
fn websocket_upgrade_becomes_a_byte_relay() {
    let ws = HttpBackend::start(HttpBehaviour::WebSocketEcho);
    let proxy = http_proxy(r#"(pool: "p")"#, "", &pool("p", &[ws.addr()], ""));
    let mut c = HttpClient::connect(proxy.addr("web"));
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    c.send_raw(
        format!(
            "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    );
    let r = c.read_response(false);
    assert_eq!(r.status, 101);
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some(websocket_accept(key).as_str())
    );
    assert_eq!(
        r.header("upgrade").map(str::to_ascii_lowercase),
        Some("websocket".into())
    );
    let (mut stream, buffered) = c.into_stream();
    assert!(buffered.is_empty());
    for round in 0..10 {
        let msg = pattern_bytes(10_000 + round, round as u64);
        stream.write_all(&msg).unwrap();
        let mut echo = vec![0u8; msg.len()];
        stream.read_exact(&mut echo).unwrap();
        assert_eq!(echo, msg);
    }
}

#[test]
fn interim_100_continue_is_forwarded_before_the_body() {
    let backend = HttpBackend::start(HttpBehaviour::Continue);
    let proxy = http_proxy(r#"(pool: "p")"#, "", &pool("p", &[backend.addr()], ""));
    let mut s = common::connect(proxy.addr("web"));
    s.write_all(
        b"POST /u HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    // The client sends nothing more until it sees the interim response.
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let r = parse_response(&raw, false).unwrap();
    assert_eq!(r.text(), format!("5 {}\n", stream_checksum(b"hello")));
}

#[test]
fn no_body_responses_have_no_body_whatever_their_headers_say() {
    let lying = HttpBackend::start(HttpBehaviour::Fixed {
        status: 204,
        headers: vec![("content-length".into(), "5".into())],
        body: b"hello".to_vec(),
    });
    let plain = hello("h");
    let routes = r#"(path_prefix: "/204", pool: "lying"), (pool: "plain")"#;
    let pools = [
        pool("lying", &[lying.addr()], ""),
        pool("plain", &[plain.addr()], ""),
    ]
    .join(", ");
    let proxy = http_proxy(routes, "", &pools);
    let mut c = HttpClient::connect(proxy.addr("web"));
    let r = c.request("GET", "/204", &[], b"");
    assert_eq!((r.status, r.body.len()), (204, 0));
    assert_eq!(r.header("content-length"), None);
    // The stray bytes were not passed on: the next response on this connection is intact.
    let r = c.request("GET", "/next", &[], b"");
    assert_eq!(r.text(), "h GET /next\n");
    // HEAD keeps the length, sends no body.
    let r = c.request("HEAD", "/x", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("10"));
    let r = c.request("GET", "/after-head", &[], b"");
    assert_eq!(r.text(), "h GET /after-head\n");
}

#[test]
fn a_stale_pooled_connection_is_retried_once_for_a_safe_request() {
    let backend = HttpBackend::start(HttpBehaviour::CloseOnSecond { id: "s".into() });
    let proxy = http_proxy(r#"(pool: "p")"#, "", &pool("p", &[backend.addr()], ""));
    let mut c = HttpClient::connect(proxy.addr("web"));
    for i in 0..5 {
        let target = format!("/{i}");
        let r = c.request("GET", &target, &[], b"");
        assert_eq!(r.text(), format!("s GET {target}\n"), "request {i}");
    }
    // Every reuse found the connection closed under it (the backend read the head and
    // hung up) and went again on a fresh one: one connection per answered request.
    assert_eq!(backend.accepts(), 5);
    let dropped = backend.seen().iter().filter(|r| r.dropped).count();
    assert_eq!(
        dropped, 4,
        "each of requests 1..4 first met a stale connection"
    );
}

#[test]
fn malformed_and_oversized_requests_get_their_status_and_close() {
    let backend = hello("b");
    let proxy = http_proxy(
        r#"(pool: "p")"#,
        r#", limits: (max_head_bytes: 4096, max_uri_bytes: 1024, max_body_bytes: 100)"#,
        &pool("p", &[backend.addr()], ""),
    );
    let addr = proxy.addr("web");
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(2000));
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(5000)
    );
    let cases: &[(&[u8], u16)] = &[
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
        ),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
        (b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
        // Final coding not chunked: the length can not be known (RFC 9112 §6.3).
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
        ),
        // A coding we do not implement before chunked: 501.
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: x-custom, chunked\r\n\r\n",
            501,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            400,
        ),
        (long_uri.as_bytes(), 414),
        (big_header.as_bytes(), 431),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n",
            413,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n",
            413,
        ),
    ];
    for (request, want) in cases {
        let raw = raw_exchange(addr, request);
        assert_eq!(
            status_of(&raw),
            *want,
            "for {:?}: {:?}",
            String::from_utf8_lossy(&request[..request.len().min(80)]),
            String::from_utf8_lossy(&raw)
        );
        let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        assert!(text.contains("connection: close"), "{text}");
    }
    assert_eq!(
        backend.requests(),
        0,
        "no rejected request reached the backend"
    );
}

#[test]
fn a_slowloris_client_gets_408() {
    let backend = hello("b");
    let proxy = http_proxy(
        r#"(pool: "p")"#,
        r#", timeouts: (client_header: "500ms")"#,
        &pool("p", &[backend.addr()], ""),
    );
    let mut s = common::connect(proxy.addr("web"));
    let started = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    // Keep trickling header lines: the deadline counts from the first byte, not the
    // last, so the answer comes however busy the client keeps the connection.
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut raw = Vec::new();
    let mut block = [0u8; 512];
    for i in 0..50 {
        if s.write_all(format!("X-{i}: y\r\n").as_bytes()).is_err() {
            break;
        }
        match s.read(&mut block) {
            Ok(n) if n > 0 => {
                raw.extend_from_slice(&block[..n]);
                break;
            }
            Ok(_) => break,
            Err(_) => {}
        }
    }
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.read_to_end(&mut raw);
    assert_eq!(status_of(&raw), 408, "{:?}", String::from_utf8_lossy(&raw));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(backend.requests(), 0);
}

#[test]
fn upstream_failures_get_502_503_504() {
    let garbage = HttpBackend::start(HttpBehaviour::Raw {
        bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec(),
        close_after: false,
    });
    let slow = HttpBackend::start(HttpBehaviour::Slow {
        id: "slow".into(),
        delay: Duration::from_secs(2),
    });
    let hangs_up = HttpBackend::start(HttpBehaviour::CloseWithoutResponse);
    let routes = r#"
        (path_prefix: "/dead", pool: "dead"),
        (path_prefix: "/garbage", pool: "garbage"),
        (path_prefix: "/slow", pool: "slow"),
        (path_prefix: "/hangup", pool: "hangup"),
        (path_prefix: "/full", pool: "full"),
    "#;
    let pools = [
        pool("dead", &[dead_addr()], ""),
        pool("garbage", &[garbage.addr()], ""),
        pool("slow", &[slow.addr()], ""),
        pool("hangup", &[hangs_up.addr()], ""),
        format!(
            "(name: \"full\", backends: [(addr: \"{}\", max_connections: 1)])",
            slow.addr()
        ),
    ]
    .join(", ");
    let proxy = http_proxy(
        routes,
        r#", timeouts: (connect: "300ms", upstream_response: "500ms")"#,
        &pools,
    );
    let addr = proxy.addr("web");
    for (path, want) in [
        ("/dead", 502),
        ("/garbage", 502),
        ("/slow", 504),
        ("/hangup", 502),
    ] {
        let started = Instant::now();
        let mut c = HttpClient::connect(addr);
        let r = c.request("GET", path, &[], b"");
        assert_eq!(r.status, want, "{path}: {r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path} took {:?}",
            started.elapsed()
        );
    }

    // The only backend of "full" is busy with one request (its limit): a second one waits
    // for the connect timeout, then gets 503.
    let before = slow.requests();
    let busy = std::thread::spawn(move || {
        let mut c = HttpClient::connect(addr);
        c.request("GET", "/full/1", &[], b"").status
    });
    assert!(slow.wait_requests(before + 1, Duration::from_secs(10)));
    let mut c = HttpClient::connect(addr);
    let started = Instant::now();
    let r = c.request("GET", "/full/2", &[], b"");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    // The slow request itself took longer than upstream_response: 504.
    assert_eq!(busy.join().unwrap(), 504);
}

/// A backend whose handshake never completes: its accept queue (backlog 0 holds one
/// connection) is full and nothing accepts, so the kernel drops every further SYN. The
/// listener and the connection filling it live as long as the returned pair.
fn unanswering_backend() -> (socket2::Socket, std::net::TcpStream, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let filler = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    // The queue is full once a second handshake cannot complete.
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
        "the backlog admitted a second connection"
    );
    (listener, filler, addr)
}

#[test]
fn a_backend_that_never_completes_the_handshake_gets_502_at_the_connect_timeout() {
    let (_listener, _filler, hole) = unanswering_backend();
    let proxy = http_proxy(
        r#"(pool: "hole")"#,
        r#", timeouts: (connect: "300ms")"#,
        &pool("hole", &[hole], ""),
    );
    for _ in 0..2 {
        let mut c = HttpClient::connect(proxy.addr("web"));
        let started = Instant::now();
        let r = c.request("GET", "/", &[], b"");
        let took = started.elapsed();
        assert_eq!(r.status, 502, "{r:?}");
        assert!(
            took >= Duration::from_millis(250),
            "answered early: {took:?}"
        );
        assert!(took < Duration::from_secs(3), "answered late: {took:?}");
    }
    // Counted as failed connects of that backend, not as answers.
    let metrics = common::http_request(proxy.admin_addr(), "GET", "/metrics").body;
    let failures = common::metric(
        &metrics,
        &format!("ringway_backend_connect_failures_total{{pool=\"hole\",backend=\"{hole}\"}}"),
    );
    assert_eq!(failures, Some(2.0), "{metrics}");
}

#[test]
fn rate_limited_requests_get_429() {
    let backend = hello("b");
    let proxy = http_proxy(
        r#"(pool: "p")"#,
        r#", rate_limit: (per_ip: 1, per: "1h", burst: 3)"#,
        &pool("p", &[backend.addr()], ""),
    );
    let mut c = HttpClient::connect(proxy.addr("web"));
    let statuses: Vec<u16> = (0..5)
        .map(|_| c.request("GET", "/", &[], b"").status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(backend.requests(), 3);
    let metrics = common::http_request(proxy.admin_addr(), "GET", "/metrics").body;
    assert_eq!(
        common::metric(&metrics, "ringway_rate_limited_total{listener=\"web\"}"),
        Some(2.0),
        "{metrics}"
    );
}

#[test]
fn metrics_count_requests_by_route_and_code() {
    let backend = hello("b");
    let proxy = http_proxy(
        r#"(name: "api", path_prefix: "/api/", pool: "p"), (name: "ok", path_exact: "/ok", respond: (status: 200))"#,
        "",
        &pool("p", &[backend.addr()], ""),
    );
    let mut c = HttpClient::connect(proxy.addr("web"));
    for _ in 0..7 {
        assert_eq!(c.request("GET", "/api/x", &[], b"").status, 200);
    }
    for _ in 0..3 {
        assert_eq!(c.request("GET", "/ok", &[], b"").status, 200);
    }
    for _ in 0..2 {
        assert_eq!(c.request("GET", "/missing", &[], b"").status, 404);
    }
    let metrics = common::http_request(proxy.admin_addr(), "GET", "/metrics").body;
    let count = |route: &str, code: &str| {
        common::metric(
            &metrics,
            &format!(
                "ringway_http_requests_total{{listener=\"web\",route=\"{route}\",code=\"{code}\"}}"
            ),
        )
    };
    assert_eq!(count("api", "200"), Some(7.0), "{metrics}");
    assert_eq!(count("ok", "200"), Some(3.0), "{metrics}");
    assert_eq!(count("none", "404"), Some(2.0), "{metrics}");
    // Request durations reach the histogram once the worker ships its batch (every
    // 500 ms): poll the scrape, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = common::http_request(proxy.admin_addr(), "GET", "/metrics").body;
        let n = common::metric(
            &metrics,
            "ringway_request_duration_seconds_count{listener=\"web\"}",
        );
        if n == Some(12.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "duration count {n:?} in {metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn proxy_protocol_address_feeds_x_forwarded_for_and_the_access_log() {
    let backend = hello("b");
    let log_path = common::scratch_dir("access").join("access.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let config = format!(
        "(workers: 1, listeners: [(name: \"web\", bind: \"127.0.0.1:0\", protocol: Http(routes: [(name: \"all\", pool: \"p\")]),
           proxy_protocol: (accept: V1), access_log: Json)],
          pools: [{}])",
        pool("p", &[backend.addr()], "")
    );
    let mut proxy = Proxy::start_with_stdout(&config, log);
    let mut s = common::connect(proxy.addr("web"));
    s.write_all(
        b"PROXY TCP4 198.51.100.7 203.0.113.1 40000 80\r\nGET /logged?q=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t\"est\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert_eq!(status_of(&raw), 200);
    let seen = backend.last_request().unwrap();
    assert_eq!(seen.header("x-forwarded-for"), Some("198.51.100.7"));
    // The log is written by a separate thread and flushed at exit: stop the proxy first.
    proxy.signal(libc::SIGTERM);
    assert_eq!(proxy.wait_exit(Duration::from_secs(10)), Some(0));
    let text = std::fs::read_to_string(&log_path).unwrap();
    let line = text
        .lines()
        .next()
        .unwrap_or_else(|| panic!("empty access log"));
    for want in [
        "\"client\":\"198.51.100.7\"",
        "\"listener\":\"web\"",
        "\"route\":\"all\"",
        "\"method\":\"GET\"",
        "\"target\":\"/logged?q=1\"",
        "\"status\":200",
        "\"user_agent\":\"t\\\"est\"",
        &format!("\"upstream\":\"{}\"", backend.addr()),
    ] {
        assert!(line.contains(want), "{want} not in {line}");
    }
}

/// Large bodies of known length are spliced; afterwards both connections must be exactly
/// where HTTP says (no byte of the next message taken) and usable by the runtime again.
fn large_bodies_keep_both_connections_usable(driver: &str) {
    let big = HttpBackend::start(HttpBehaviour::Big {
        len: 3 * 1024 * 1024 + 17,
        seed: 11,
    });
    let upload = HttpBackend::start(HttpBehaviour::Upload);
    let config = format!(
        "(workers: 1, listeners: [(name: \"web\", bind: \"127.0.0.1:0\", protocol: Http(routes: [(path_prefix: \"/up\", pool: \"up\"), (pool: \"big\")]))],
          pools: [{}, {}])",
        pool("big", &[big.addr()], ""),
        pool("up", &[upload.addr()], "")
    );
    let proxy = Proxy::start(&config, &[("RINGWAY_DRIVER", driver)]);
    let mut c = HttpClient::connect(proxy.addr("web"));
    let want = pattern_bytes(3 * 1024 * 1024 + 17, 11);
    for round in 0..3 {
        let r = c.request("GET", "/big", &[], b"");
        assert_eq!(r.status, 200);
        assert!(
            r.body == want,
            "round {round}: body differs ({} bytes)",
            r.body.len()
        );
        let data = pattern_bytes(2 * 1024 * 1024 + round, round as u64);
        let r = c.request("POST", "/up", &[], &data);
        assert_eq!(
            r.text(),
            format!("{} {}\n", data.len(), stream_checksum(&data))
        );
    }
    assert_eq!(
        big.accepts(),
        1,
        "the upstream connection was reused after each splice"
    );
    assert_eq!(upload.accepts(), 1);
}

#[test]
fn large_bodies_leave_both_connections_usable_on_io_uring() {
    large_bodies_keep_both_connections_usable("auto");
}

#[test]
fn large_bodies_leave_both_connections_usable_on_epoll() {
    large_bodies_keep_both_connections_usable("legacy");
}

#[test]
fn a_raised_header_limit_admits_more_fields_and_still_bounds_them() {
    let backend = hello("b");
    let proxy = http_proxy(
        r#"(pool: "p")"#,
        r#", limits: (max_headers: 300)"#,
        &pool("p", &[backend.addr()], ""),
    );
    let head = |n: usize| {
        let mut req = String::from("GET /many HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
        for i in 0..n {
            req.push_str(&format!("X-{i}: v\r\n"));
        }
        req + "\r\n"
    };
    let raw = raw_exchange(proxy.addr("web"), head(250).as_bytes());
    assert_eq!(status_of(&raw), 200, "{}", String::from_utf8_lossy(&raw));
    assert_eq!(backend.last_request().unwrap().header("x-249"), Some("v"));
    let raw = raw_exchange(proxy.addr("web"), head(400).as_bytes());
    assert_eq!(status_of(&raw), 431);
}

#[test]
fn bodies_of_requests_answered_without_a_backend_are_skipped_and_the_connection_goes_on() {
    let api = hello("api");
    let proxy = http_proxy(
        r#"(path_exact: "/direct", respond: (status: 200, body: "d\n")),
           (path_prefix: "/api/", pool: "api")"#,
        "",
        &pool("api", &[api.addr()], ""),
    );
    let mut c = HttpClient::connect(proxy.addr("web"));
    // A 404 for a POST with a body, a direct response to a chunked POST, then a proxied
    // request: one connection throughout, each body read and dropped.
    let r = c.request("POST", "/nowhere", &[], &[b'x'; 1000]);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("connection"), None);
    let chunked = [("transfer-encoding", "chunked")];
    let r = c.request("POST", "/direct", &chunked, b"5\r\nhello\r\n0\r\n\r\n");
    assert_eq!((r.status, r.text()), (200, "d\n".into()));
    assert_eq!(r.header("connection"), None);
    let r = c.request("GET", "/api/x", &[], b"");
    assert_eq!(r.text(), "api GET /api/x\n");
    assert_eq!(
        api.requests(),
        1,
        "no dropped body reached the backend as a request"
    );

    // A body too long to be worth reading: answered with Connection: close, then closed.
    let mut c = HttpClient::connect(proxy.addr("web"));
    c.send_raw(b"POST /nowhere HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1000000\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());
}

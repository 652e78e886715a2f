//! TLS termination and origination end to end: the real binary, certificates generated
//! by the test, real handshakes on loopback checked from the client's side.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::http_backend::{pattern_bytes, stream_checksum, HttpBackend, HttpBehaviour, StreamSum};
use common::tls::{peer_leaf, tls_connect, CertFiles, Pki, TlsClient};
use common::{metric, scratch_dir, Proxy};

fn hello(id: &str) -> HttpBackend {
    HttpBackend::start(HttpBehaviour::Hello { id: id.into() })
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// `(cert: ..., key: ...)` for a config.
fn pair(c: &CertFiles) -> String {
    format!("(cert: \"{}\", key: \"{}\")", path(&c.cert), path(&c.key))
}

/// A one-worker proxy with an HTTPS listener `web` (`tls` is the inside of `tls: (...)`)
/// routing everything to pool `p` at `backend` (`pool_extra` is added to the pool).
fn config(tls: &str, routes: &str, backend: SocketAddr, pool_extra: &str) -> String {
    format!(
        "(workers: 1, admin: \"127.0.0.1:0\",
          listeners: [(name: \"web\", bind: \"127.0.0.1:0\", protocol: Http(routes: [{routes}]),
                       tls: ({tls}))],
          pools: [(name: \"p\", backends: [(addr: \"{backend}\")]{pool_extra})])"
    )
}

/// An HTTPS origin behaving as `behaviour`, its certificate for `backend.internal` signed
/// by a CA of its own (in `dir/back`).
fn tls_origin(dir: &Path, behaviour: HttpBehaviour) -> (Pki, HttpBackend) {
    let pki = Pki::new(&dir.join("back"), "back");
    let cert = pki.server("origin", &["backend.internal"]);
    let origin = HttpBackend::start_tls(behaviour, pki.server_config(&cert));
    (pki, origin)
}

const ALL_TO_P: &str = "(path_prefix: \"/\", pool: \"p\")";

/// Write `config` over the proxy's file, send SIGHUP, and wait for `expect` in the log.
fn reload(proxy: &Proxy, config: &str, expect: &str) -> String {
    std::fs::write(&proxy.config_path, config).unwrap();
    proxy.signal(libc::SIGHUP);
    proxy.wait_log(expect, Duration::from_secs(10))
}

fn admin_metrics(proxy: &Proxy) -> String {
    let r = common::http_request(proxy.admin_addr(), "GET", "/metrics");
    assert_eq!(r.status, 200);
    r.body
}

/// The metrics once `ready` holds for them, or after 5 s (the caller's assert then says
/// what was missing). A failed handshake is counted just after its connection's last
/// byte, so a client that saw the close can be a moment ahead of the counter.
fn admin_metrics_when(proxy: &Proxy, ready: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = admin_metrics(proxy);
        if ready(&m) || std::time::Instant::now() >= deadline {
            return m;
        }
        std::thread::yield_now();
    }
}

#[test]
fn sni_picks_the_certificate_and_unknown_names_get_the_default() {
    let dir = scratch_dir("tls-sni");
    let pki = Pki::new(&dir, "sni");
    let example = pki.server("example.com", &["example.com", "www.example.com"]);
    let api = pki.server("api.example.com", &["api.example.com"]);
    let wild = pki.server("wild", &["*.wild.example"]);
    let backend = hello("b");
    let tls = format!(
        "certificates: [{}, {}, {}], min_version: \"1.2\", alpn: [\"http/1.1\"], client_auth: None",
        pair(&example),
        pair(&api),
        pair(&wild)
    );
    let proxy = Proxy::start(&config(&tls, ALL_TO_P, backend.addr(), ""), &[]);
    let addr = proxy.addr("web");
    let client = pki.client_config(None);

    // Which certificate comes back is read from the client side of each handshake.
    for (sni, expected) in [
        ("api.example.com", &api),
        ("API.Example.COM", &api),
        ("www.example.com", &example),
        ("x.wild.example", &wild),
    ] {
        let stream = tls_connect(addr, client.clone(), sni).unwrap();
        assert!(peer_leaf(&stream) == expected.der, "SNI {sni}");
        assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        let mut c = TlsClient::new(stream);
        let r = c.get(sni, "/hello");
        assert_eq!(
            (r.status, r.text()),
            (200, "b GET /hello\n".into()),
            "SNI {sni}"
        );
    }
    // A name no certificate has, or none at all (an IP address sends no SNI): the first.
    // The client then rejects it as not its name, which is the client's call to make.
    for sni in ["unknown.test", "127.0.0.1", "a.b.wild.example"] {
        let mut config = (*pki.client_config(None)).clone();
        config
            .dangerous()
            .set_certificate_verifier(std::sync::Arc::new(common::tls::AcceptAny));
        let stream = tls_connect(addr, std::sync::Arc::new(config), sni).unwrap();
        assert!(peer_leaf(&stream) == example.der, "default for {sni}");
    }
    // Verified against its name, a wrong one fails on the client side.
    assert!(tls_connect(addr, client, "unknown.test").is_err());
    let m = admin_metrics(&proxy);
    assert!(metric(&m, "ringway_tls_handshakes_total{listener=\"web\"}").unwrap() >= 7.0);
}

#[test]
fn forwarded_proto_is_https_and_keep_alive_and_pipelining_work_over_tls() {
    let dir = scratch_dir("tls-ka");
    let pki = Pki::new(&dir, "ka");
    let cert = pki.server("site", &["site.test"]);
    let backend = hello("b");
    let tls = format!("certificates: [{}]", pair(&cert));
    let proxy = Proxy::start(&config(&tls, ALL_TO_P, backend.addr(), ""), &[]);
    let client = pki.client_config(None);
    let stream = tls_connect(proxy.addr("web"), client.clone(), "site.test").unwrap();
    assert_eq!(
        stream.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    let mut c = TlsClient::new(stream);
    for i in 0..200 {
        let r = c.get("site.test", &format!("/k{i}"));
        assert_eq!(r.text(), format!("b GET /k{i}\n"));
    }
    let seen = backend.last_request().unwrap();
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(
        backend.accepts(),
        1,
        "one upstream connection for 200 requests"
    );

    // Session resumption is on: a second connection skips the full handshake.
    let again = tls_connect(proxy.addr("web"), client, "site.test").unwrap();
    assert_eq!(
        again.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    assert_eq!(TlsClient::new(again).get("site.test", "/r").status, 200);

    // 50 requests in one write, answered in order.
    let mut batch = Vec::new();
    for i in 0..50 {
        batch
            .extend_from_slice(format!("GET /p{i} HTTP/1.1\r\nHost: site.test\r\n\r\n").as_bytes());
    }
    c.send_raw(&batch);
    for i in 0..50 {
        let r = c.read_response(false);
        assert_eq!(r.text(), format!("b GET /p{i}\n"));
    }
    // The client asks to close: the response is followed by close_notify.
    c.send_raw(b"GET /bye HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    assert_eq!(c.read_response(false).text(), "b GET /bye\n");
    assert!(c.is_closed_within(Duration::from_secs(5)));
}

#[test]
fn a_64_mib_body_goes_both_ways_over_tls_on_io_uring() {
    body_both_ways_over_tls(&[]);
}

#[test]
fn a_64_mib_body_goes_both_ways_over_tls_on_epoll() {
    body_both_ways_over_tls(&[("RINGWAY_DRIVER", "legacy")]);
}

fn body_both_ways_over_tls(env: &[(&str, &str)]) {
    const LEN: u64 = 64 * 1024 * 1024;
    let dir = scratch_dir("tls-big");
    let pki = Pki::new(&dir, "big");
    let cert = pki.server("site", &["site.test"]);
    let upload = HttpBackend::start(HttpBehaviour::Upload);
    let download = HttpBackend::start(HttpBehaviour::Big { len: LEN, seed: 7 });
    let tls = format!("certificates: [{}]", pair(&cert));
    let routes = "(method: \"POST\", pool: \"up\"), (path_prefix: \"/\", pool: \"p\")";
    let pool_extra = format!(
        "), (name: \"up\", backends: [(addr: \"{}\")]",
        upload.addr()
    );
    let proxy = Proxy::start(&config(&tls, routes, download.addr(), &pool_extra), env);
    let stream = tls_connect(proxy.addr("web"), pki.client_config(None), "site.test").unwrap();
    let mut c = TlsClient::new(stream);

    // Upload: streamed in 1 MiB pieces, checksummed by the backend.
    let head = format!("POST /up HTTP/1.1\r\nHost: site.test\r\nContent-Length: {LEN}\r\n\r\n");
    c.send_raw(head.as_bytes());
    let body = pattern_bytes(LEN as usize, 3);
    for piece in body.chunks(1024 * 1024) {
        c.stream.write_all(piece).unwrap();
    }
    c.stream.flush().unwrap();
    let r = c.read_response(false);
    assert_eq!(r.text(), format!("{LEN} {}\n", stream_checksum(&body)));
    drop(body);

    // Download on the same connection, checked as it streams.
    c.send_raw(b"GET /big HTTP/1.1\r\nHost: site.test\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as u64, LEN);
    let mut sum = StreamSum::new();
    sum.update(&r.body);
    assert_eq!(
        sum.value(),
        stream_checksum(&pattern_bytes(LEN as usize, 7))
    );
}

#[test]
fn mutual_tls_refuses_bad_client_certificates_and_passes_the_subject() {
    let dir = scratch_dir("tls-mtls");
    let pki = Pki::new(&dir, "mtls");
    let other = Pki::new(&dir.join("other"), "other");
    let cert = pki.server("site", &["site.test"]);
    let good = pki.client("alice", "alice", false);
    let expired = pki.client("old", "old", true);
    let stranger = other.client("mallory", "mallory", false);
    let backend = hello("b");
    let tls = format!(
        "certificates: [{}], client_auth: (ca: \"{}\")",
        pair(&cert),
        path(&pki.ca)
    );
    let routes = "(path_prefix: \"/\", pool: \"p\", client_subject_header: \"x-client-subject\")";
    let proxy = Proxy::start(&config(&tls, routes, backend.addr(), ""), &[]);
    let addr = proxy.addr("web");

    // A good certificate: the backend learns who it was, and a forged header is gone.
    let stream = tls_connect(addr, pki.client_config(Some(&good)), "site.test").unwrap();
    let mut c = TlsClient::new(stream);
    c.send_raw(b"GET /me HTTP/1.1\r\nHost: site.test\r\nX-Client-Subject: CN=admin\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200);
    let seen = backend.last_request().unwrap();
    let subjects = seen.header_all("x-client-subject");
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert!(subjects[0].contains("CN=alice"), "{subjects:?}");

    // Expired, from another CA, or none at all: no request gets through. (In TLS 1.3 the
    // client finishes first, so the refusal may only show on its first read.)
    for (what, identity) in [
        ("expired", Some(&expired)),
        ("untrusted", Some(&stranger)),
        ("none", None),
    ] {
        let before = backend.requests();
        let refused = match tls_connect(addr, pki.client_config(identity), "site.test") {
            Err(_) => true,
            Ok(stream) => {
                let mut c = TlsClient::new(stream);
                c.stream
                    .write_all(b"GET /x HTTP/1.1\r\nHost: site.test\r\n\r\n")
                    .and_then(|()| c.stream.flush())
                    .is_err()
                    || c.try_read_response(false).is_err()
            }
        };
        assert!(refused, "{what} client certificate accepted");
        assert_eq!(
            backend.requests(),
            before,
            "{what}: a request reached the backend"
        );
    }
    let m = admin_metrics_when(&proxy, |m| ringway_failures(m) >= 3.0);
    let failures = |reason: &str| {
        metric(
            &m,
            &format!(
                "ringway_tls_handshake_failures_total{{listener=\"web\",reason=\"{reason}\"}}"
            ),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(failures("cert_expired"), 1.0, "{m}");
    assert_eq!(failures("unknown_ca"), 1.0, "{m}");
    assert_eq!(failures("no_client_cert"), 1.0, "{m}");
    proxy.wait_log("TLS handshake failed", Duration::from_secs(5));
}

#[test]
fn reload_swaps_the_certificate_while_an_old_connection_keeps_working() {
    let dir = scratch_dir("tls-reload");
    let pki = Pki::new(&dir, "reload");
    let first = pki.server("first", &["site.test"]);
    let second = pki.server("second", &["site.test"]);
    let backend = hello("b");
    let tls = |c: &CertFiles| format!("certificates: [{}]", pair(c));
    let proxy = Proxy::start(&config(&tls(&first), ALL_TO_P, backend.addr(), ""), &[]);
    let addr = proxy.addr("web");
    let client = pki.client_config(None);
    let old = tls_connect(addr, client.clone(), "site.test").unwrap();
    assert!(peer_leaf(&old) == first.der);
    let mut old = TlsClient::new(old);
    assert_eq!(old.get("site.test", "/1").status, 200);

    reload(
        &proxy,
        &config(&tls(&second), ALL_TO_P, backend.addr(), ""),
        "reload: ",
    );
    // A fresh client config: a resumed session would not show the certificate again.
    let client = pki.client_config(None);
    let new = tls_connect(addr, client.clone(), "site.test").unwrap();
    assert!(
        peer_leaf(&new) == second.der,
        "new connections get the new certificate"
    );
    assert_eq!(
        old.get("site.test", "/2").text(),
        "b GET /2\n",
        "old connection"
    );

    // A key that does not belong to its certificate is refused; the old pair stays.
    let mismatched = CertFiles {
        key: first.key.clone(),
        ..second.clone()
    };
    let line = reload(
        &proxy,
        &config(&tls(&mismatched), ALL_TO_P, backend.addr(), ""),
        "reload rejected",
    );
    assert!(line.contains("certificates[0]"), "{line}");
    let after = tls_connect(addr, pki.client_config(None), "site.test").unwrap();
    assert!(peer_leaf(&after) == second.der);
    assert_eq!(TlsClient::new(after).get("site.test", "/3").status, 200);
}

#[test]
fn tls_to_a_tls_backend_is_verified_against_the_pool_ca() {
    let dir = scratch_dir("tls-origin");
    let pki = Pki::new(&dir, "front");
    let front = pki.server("front", &["site.test"]);
    let (backend_pki, origin) = tls_origin(&dir, HttpBehaviour::Hello { id: "tls".into() });
    let tls = format!("certificates: [{}]", pair(&front));
    let pool_tls = format!(
        ", tls: (sni: \"backend.internal\", ca: \"{}\")",
        path(&backend_pki.ca)
    );
    let proxy = Proxy::start(&config(&tls, ALL_TO_P, origin.addr(), &pool_tls), &[]);
    let stream = tls_connect(proxy.addr("web"), pki.client_config(None), "site.test").unwrap();
    let mut c = TlsClient::new(stream);
    for i in 0..20 {
        assert_eq!(
            c.get("site.test", &format!("/o{i}")).text(),
            format!("tls GET /o{i}\n")
        );
    }
    assert_eq!(origin.accepts(), 1, "the TLS upstream connection is reused");

    // The same backend checked against the wrong CA (or name) is not used: 502.
    let wrong = format!(
        ", tls: (sni: \"backend.internal\", ca: \"{}\")",
        path(&pki.ca)
    );
    reload(
        &proxy,
        &config(&tls, ALL_TO_P, origin.addr(), &wrong),
        "reload: ",
    );
    let stream = tls_connect(proxy.addr("web"), pki.client_config(None), "site.test").unwrap();
    let r = TlsClient::new(stream).get("site.test", "/bad");
    assert_eq!(r.status, 502);
    assert_eq!(
        origin.requests(),
        20,
        "no request went to the unverified backend"
    );
}

#[test]
fn websocket_upgrade_relays_over_tls() {
    let dir = scratch_dir("tls-ws");
    let pki = Pki::new(&dir, "ws");
    let cert = pki.server("site", &["site.test"]);
    let backend = HttpBackend::start(HttpBehaviour::WebSocketEcho);
    let tls = format!("certificates: [{}]", pair(&cert));
    let proxy = Proxy::start(&config(&tls, ALL_TO_P, backend.addr(), ""), &[]);
    let stream = tls_connect(proxy.addr("web"), pki.client_config(None), "site.test").unwrap();
    let mut c = TlsClient::new(stream);
    c.send_raw(
        b"GET /chat HTTP/1.1\r\nHost: site.test\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    let r = c.read_response(false);
    assert_eq!(r.status, 101);
    let payload = pattern_bytes(300_000, 9);
    c.stream.write_all(&payload).unwrap();
    c.stream.flush().unwrap();
    let mut echoed = c.take_buffered();
    let mut block = vec![0u8; 65536];
    while echoed.len() < payload.len() {
        let n = c.stream.read(&mut block).unwrap();
        assert!(n > 0, "closed after {} echoed bytes", echoed.len());
        echoed.extend_from_slice(&block[..n]);
    }
    assert!(echoed == payload, "echo differs");
}

#[test]
fn plain_http_to_a_tls_listener_is_told_to_use_https_and_never_reaches_a_backend() {
    let dir = scratch_dir("tls-plain");
    let pki = Pki::new(&dir, "plain");
    let cert = pki.server("site", &["site.test"]);
    let backend = hello("b");
    let tls = format!("certificates: [{}]", pair(&cert));
    let proxy = Proxy::start(&config(&tls, ALL_TO_P, backend.addr(), ""), &[]);
    let raw = common::http_backend::raw_exchange(
        proxy.addr("web"),
        b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n",
    );
    let r = common::http_backend::parse_response(&raw, false).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("https://"), "{}", r.text());
    assert_eq!(backend.requests(), 0);
    let not_tls = "ringway_tls_handshake_failures_total{listener=\"web\",reason=\"not_tls\"}";
    let m = admin_metrics_when(&proxy, |m| metric(m, not_tls).is_some());
    assert_eq!(metric(&m, not_tls), Some(1.0), "{m}");
    assert_eq!(ringway_failures(&m), 1.0, "{m}");
    // A real client still gets TLS on the same port.
    let stream = tls_connect(proxy.addr("web"), pki.client_config(None), "site.test").unwrap();
    assert_eq!(TlsClient::new(stream).get("site.test", "/ok").status, 200);
}

/// Every `ringway_tls_handshake_failures_total` sample of listener `web`, summed.
fn ringway_failures(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("ringway_tls_handshake_failures_total{listener=\"web\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn http_health_checks_speak_tls_to_a_tls_pool() {
    let dir = scratch_dir("tls-health");
    let pki = Pki::new(&dir, "front");
    let front = pki.server("front", &["site.test"]);
    let (backend_pki, origin) = tls_origin(&dir, HttpBehaviour::Hello { id: "tls".into() });
    let tls = format!("certificates: [{}]", pair(&front));
    let pool = |ca: &Path| {
        format!(
            ", tls: (sni: \"backend.internal\", ca: \"{}\"),
             health: (check: Http(path: \"/healthz\"), interval: \"50ms\", timeout: \"1s\",
                      rise: 1, fall: 1), panic_threshold: 0",
            path(ca)
        )
    };
    let series = format!(
        "ringway_backend_up{{pool=\"p\",backend=\"{}\"}}",
        origin.addr()
    );
    let proxy = Proxy::start(
        &config(&tls, ALL_TO_P, origin.addr(), &pool(&backend_pki.ca)),
        &[],
    );
    // Probes are real HTTPS requests: the backend sees them arrive.
    assert!(origin.wait_requests(3, Duration::from_secs(10)));
    let probe = origin.last_request().unwrap();
    assert_eq!(probe.target, "/healthz");
    assert_eq!(metric(&admin_metrics(&proxy), &series), Some(1.0));

    // Checked against the wrong CA, the probes fail and the backend goes down: 503.
    reload(
        &proxy,
        &config(&tls, ALL_TO_P, origin.addr(), &pool(&pki.ca)),
        "reload: ",
    );
    proxy.wait_log("-> down", Duration::from_secs(10));
    assert_eq!(metric(&admin_metrics(&proxy), &series), Some(0.0));
    let stream = tls_connect(proxy.addr("web"), pki.client_config(None), "site.test").unwrap();
    assert_eq!(TlsClient::new(stream).get("site.test", "/x").status, 503);
}

#[test]
fn the_https_example_serves_with_certificates_from_the_script() {
    let dir = scratch_dir("tls-example");
    let certs = dir.join("conf/certs");
    let manifest = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("bash")
        .arg(format!("{manifest}/scripts/gen-certs.sh"))
        .arg(&certs)
        .output()
        .expect("run scripts/gen-certs.sh");
    assert!(
        out.status.success(),
        "gen-certs.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let example = std::fs::read_to_string(format!("{manifest}/conf/https.ron")).unwrap();
    let config = example
        .replace("\"conf/certs/", &format!("\"{}/", certs.display()))
        .replace("127.0.0.1:8443", "127.0.0.1:0");
    let proxy = Proxy::start(&config, &[]);

    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(certs.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = std::sync::Arc::new(client);
    for name in ["localhost", "api.example.com", "www.example.com"] {
        let stream = tls_connect(proxy.addr("https"), client.clone(), name).unwrap();
        let r = TlsClient::new(stream).get(name, "/");
        assert_eq!(
            (r.status, r.text()),
            (200, "ringway over TLS\n".into()),
            "{name}"
        );
    }
}

#[test]
fn websocket_to_a_tls_backend_streams_both_ways_at_once() {
    // A plain client, a TLS backend that echoes while the client is still sending: 32 MiB
    // each way at once through the buffered relay, TLS on the backend side only.
    const LEN: usize = 32 * 1024 * 1024;
    let dir = scratch_dir("tls-ws-origin");
    let (backend_pki, origin) = tls_origin(&dir, HttpBehaviour::WebSocketEcho);
    let config = format!(
        "(workers: 1, listeners: [(name: \"web\", bind: \"127.0.0.1:0\",
            protocol: Http(routes: [(path_prefix: \"/\", pool: \"p\")]))],
          pools: [(name: \"p\", backends: [(addr: \"{}\")],
                   tls: (sni: \"backend.internal\", ca: \"{}\"))])",
        origin.addr(),
        path(&backend_pki.ca)
    );
    let proxy = Proxy::start(&config, &[]);
    let mut c = common::http_backend::HttpClient::connect(proxy.addr("web"));
    c.send_raw(
        b"GET /chat HTTP/1.1\r\nHost: site.test\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(c.read_response(false).status, 101);
    let (mut stream, early) = c.into_stream();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let payload = pattern_bytes(LEN, 11);
        for piece in payload.chunks(256 * 1024) {
            writer.write_all(piece).unwrap();
        }
    });
    let mut sum = StreamSum::new();
    sum.update(&early);
    let mut got = early.len();
    let mut block = vec![0u8; 256 * 1024];
    while got < LEN {
        let n = stream.read(&mut block).expect("echo stalled");
        assert!(n > 0, "closed after {got} echoed bytes");
        sum.update(&block[..n]);
        got += n;
    }
    sender.join().unwrap();
    assert_eq!(sum.value(), stream_checksum(&pattern_bytes(LEN, 11)));
}

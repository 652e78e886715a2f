//! The admin endpoint over real sockets: metrics that match the traffic sent, stats
//! percentiles that match the latency a backend injected, health and drain controls.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

fn admin_proxy(
    backends: &[(std::net::SocketAddr, u32)],
    extra_listener: Option<std::net::SocketAddr>,
) -> Proxy {
    let list: Vec<String> = backends
        .iter()
        .map(|(a, w)| format!("(addr: \"{a}\", weight: {w})"))
        .collect();
    let slow = extra_listener.map_or(String::new(), |_| {
        "(name: \"slow\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"s\")),".to_string()
    });
    let slow_pool = extra_listener.map_or(String::new(), |addr| {
        format!("(name: \"s\", backends: [(addr: \"{addr}\")]),")
    });
    let config = format!(
        "(workers: 2, admin: \"127.0.0.1:0\",
          listeners: [(name: \"l4\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"p\")), {slow}],
          pools: [(name: \"p\", balance: RoundRobin, backends: [{}]), {slow_pool}])",
        list.join(", ")
    );
    Proxy::start(&config, &[])
}

/// Scrape until `check` accepts the metrics text, within a deadline (counters are read
/// live, but a closing connection's gauge drops a moment after the client sees EOF).
fn scrape_until(proxy: &Proxy, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = http_request(proxy.admin_addr(), "GET", "/metrics");
        assert_eq!(response.status, 200);
        if check(&response.body) {
            return response.body;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never held; last scrape:\n{}",
            response.body
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_count_exactly_the_traffic_sent() {
    let echo = Backend::start(Behaviour::Echo);
    let proxy = admin_proxy(&[(echo.addr, 1)], None);
    let connections = 50;
    let size = 1000;
    for i in 0..connections {
        let mut s = connect(proxy.addr("l4"));
        let msg = pattern(size, i);
        s.write_all(&msg).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    let text = scrape_until(&proxy, "all connections closed", |t| {
        metric(t, "ringway_active_connections{listener=\"l4\"}") == Some(0.0)
    });
    let total = (connections as usize * size) as f64;
    assert_eq!(
        metric(&text, "ringway_connections_total{listener=\"l4\"}"),
        Some(connections as f64)
    );
    assert_eq!(
        metric(
            &text,
            "ringway_bytes_total{listener=\"l4\",direction=\"in\"}"
        ),
        Some(total)
    );
    assert_eq!(
        metric(
            &text,
            "ringway_bytes_total{listener=\"l4\",direction=\"out\"}"
        ),
        Some(total)
    );
    let backend = format!("{{pool=\"p\",backend=\"{}\"}}", echo.addr);
    assert_eq!(
        metric(&text, &format!("ringway_backend_up{backend}")),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            &format!("ringway_backend_connections_total{backend}")
        ),
        Some(connections as f64)
    );
    assert_eq!(
        metric(&text, "ringway_health_events_dropped_total"),
        Some(0.0)
    );
    for family in [
        "ringway_connections_total",
        "ringway_upstream_connect_seconds",
        "ringway_config_reloads_total",
    ] {
        assert_eq!(
            text.matches(&format!("# TYPE {family} ")).count(),
            1,
            "{family}"
        );
    }
    // Histograms arrive from the workers about twice a second.
    scrape_until(&proxy, "connect histogram count", |t| {
        metric(t, "ringway_upstream_connect_seconds_count{pool=\"p\"}") == Some(connections as f64)
    });
}

/// p50 of `connection_duration_seconds` for `listener` in the /stats JSON.
fn duration_p50(json: &str, listener: &str) -> Option<f64> {
    let at = json.find(&format!("{{\"name\":\"{listener}\""))?;
    let rest = &json[at..];
    let hist = rest.find("\"connection_duration_seconds\":")?;
    let rest = &rest[hist..];
    let p50 = rest.find("\"p50\":")? + "\"p50\":".len();
    let end = rest[p50..].find([',', '}'])?;
    rest[p50..p50 + end].parse().ok()
}

#[test]
fn stats_percentiles_match_the_injected_latency() {
    let delay = Duration::from_millis(300);
    let slow = Backend::start(Behaviour::SlowReply { delay });
    let echo = Backend::start(Behaviour::Echo);
    let proxy = admin_proxy(&[(echo.addr, 1)], Some(slow.addr));
    for _ in 0..6 {
        let mut s = connect(proxy.addr("slow"));
        s.write_all(b"go\n").unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"first\nsecond\n");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let p50 = loop {
        let stats = http_request(proxy.admin_addr(), "GET", "/stats");
        assert_eq!(stats.status, 200);
        if let Some(p50) = duration_p50(&stats.body, "slow") {
            break p50;
        }
        assert!(Instant::now() < deadline, "no p50 in {}", stats.body);
        std::thread::sleep(Duration::from_millis(50));
    };
    // The connection lasts the injected delay plus loopback handshakes and scheduling.
    // The histogram keeps 3 significant figures, so 0.1% is its own error.
    assert!(
        p50 >= 0.300 * 0.999,
        "p50 {p50}s is below the injected 300ms"
    );
    assert!(
        p50 <= 0.300 + 0.150,
        "p50 {p50}s is far above the injected 300ms"
    );
}

#[test]
fn admin_routes_health_and_drain() {
    let a = Backend::start(Behaviour::SayId(b'a'));
    let b = Backend::start(Behaviour::SayId(b'b'));
    let proxy = admin_proxy(&[(a.addr, 1), (b.addr, 1)], None);
    let admin = proxy.admin_addr();
    assert_eq!(http_request(admin, "GET", "/live").status, 200);
    assert_eq!(http_request(admin, "GET", "/ready").status, 200);
    assert_eq!(http_request(admin, "GET", "/nope").status, 404);
    let head = http_request(admin, "HEAD", "/metrics");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD must not carry a body: {head:?}");
    let length = head
        .headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.clone());
    assert!(
        length.is_some_and(|l| l.parse::<usize>().unwrap_or(0) > 0),
        "{head:?}"
    );
    let wrong = http_request(admin, "GET", "/reload");
    assert_eq!(wrong.status, 405);
    assert!(
        wrong
            .headers
            .iter()
            .any(|(k, v)| k == "allow" && v.contains("POST")),
        "{wrong:?}"
    );
    assert_eq!(
        http_request(admin, "POST", &format!("/backends/p/{}/drain", dead_addr())).status,
        404
    );

    let drained = http_request(admin, "POST", &format!("/backends/p/{}/drain", b.addr));
    assert_eq!(drained.status, 200, "{drained:?}");
    let ids: Vec<u8> = (0..20).map(|_| say_id(proxy.addr("l4"))).collect();
    assert!(
        ids.iter().all(|&x| x == b'a'),
        "a drained backend got traffic: {ids:?}"
    );
    let text = http_request(admin, "GET", "/metrics").body;
    assert_eq!(
        metric(
            &text,
            &format!("ringway_backend_up{{pool=\"p\",backend=\"{}\"}}", b.addr)
        ),
        Some(0.0)
    );

    assert_eq!(
        http_request(admin, "POST", &format!("/backends/p/{}/enable", b.addr)).status,
        200
    );
    let ids: Vec<u8> = (0..20).map(|_| say_id(proxy.addr("l4"))).collect();
    assert!(
        ids.contains(&b'b'),
        "an enabled backend gets traffic again: {ids:?}"
    );

    let reloaded = http_request(admin, "POST", "/reload");
    assert_eq!(reloaded.status, 200, "{reloaded:?}");
    std::fs::write(&proxy.config_path, "(listeners: [").unwrap();
    let rejected = http_request(admin, "POST", "/reload");
    assert_eq!(rejected.status, 400, "{rejected:?}");
    let text = http_request(admin, "GET", "/metrics").body;
    assert_eq!(
        metric(&text, "ringway_config_reloads_total{result=\"success\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "ringway_config_reloads_total{result=\"failure\"}"),
        Some(1.0)
    );
}

fn say_id(addr: std::net::SocketAddr) -> u8 {
    let mut s = connect(addr);
    let mut id = Vec::new();
    s.read_to_end(&mut id).unwrap();
    assert_eq!(id.len(), 1, "{id:?}");
    id[0]
}

#[test]
fn ready_turns_503_while_draining() {
    let slow = Backend::start(Behaviour::SlowReply {
        delay: Duration::from_millis(1500),
    });
    let proxy = admin_proxy(&[(slow.addr, 1)], None);
    let admin = proxy.admin_addr();
    let mut client = connect(proxy.addr("l4"));
    client.write_all(b"hold\n").unwrap();
    let mut first = [0u8; 6];
    client.read_exact(&mut first).unwrap();
    proxy.signal(libc::SIGTERM);
    proxy.wait_log("draining", Duration::from_secs(5));
    let ready = http_request(admin, "GET", "/ready");
    assert_eq!(ready.status, 503, "{ready:?}");
    assert_eq!(http_request(admin, "GET", "/live").status, 200);
}

//! The control plane on the L7 path: a backend dying under HTTP traffic, reloads that
//! change routes, and a graceful stop with an HTTP response in flight.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::http_backend::{HttpBackend, HttpBehaviour, HttpClient};
use common::Proxy;

fn hello(id: &str) -> HttpBackend {
    HttpBackend::start(HttpBehaviour::Hello { id: id.into() })
}

/// Write `config` over the proxy's config file and send SIGHUP; returns the log line.
fn reload(proxy: &Proxy, config: &str, expect: &str) -> String {
    std::fs::write(&proxy.config_path, config).unwrap();
    proxy.signal(libc::SIGHUP);
    proxy.wait_log(expect, Duration::from_secs(10))
}

#[test]
fn two_thousand_gets_succeed_while_a_backend_dies() {
    let a = hello("a");
    let b = hello("b");
    let config = format!(
        "(workers: 2, listeners: [(name: \"web\", bind: \"127.0.0.1:0\", protocol: Http(routes: [(pool: \"p\")]))],
          pools: [(name: \"p\", balance: RoundRobin, backends: [(addr: \"{}\"), (addr: \"{}\")],
                   health: (check: Http(path: \"/healthz\"), interval: \"100ms\", timeout: \"100ms\", rise: 2, fall: 2),
                   passive: (consecutive_failures: 3, eject_for: \"10s\"))])",
        a.addr(),
        b.addr()
    );
    let proxy = Proxy::start(&config, &[]);
    let addr = proxy.addr("web");
    let mut b = Some(b);
    let mut clients: Vec<HttpClient> = (0..4).map(|_| HttpClient::connect(addr)).collect();
    let mut ok = 0;
    for i in 0..2000 {
        if i == 500 {
            drop(b.take()); // the backend goes away mid-run
        }
        let c = &mut clients[i % 4];
        let r = c.request("GET", &format!("/{i}"), &[], b"");
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        ok += 1;
    }
    assert_eq!(ok, 2000);
    assert!(
        a.requests() >= 1500,
        "the survivor carried the rest: {}",
        a.requests()
    );
}

fn two_route_config(a: &HttpBackend, b: Option<&HttpBackend>) -> String {
    let (route_b, pool_b) = match b {
        Some(b) => (
            r#", (path_prefix: "/b/", pool: "b")"#.to_string(),
            format!(r#", (name: "b", backends: [(addr: "{}")])"#, b.addr()),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        r#"(workers: 2, listeners: [(name: "web", bind: "127.0.0.1:0", protocol: Http(routes: [
            (path_prefix: "/a/", pool: "a"){route_b}]), timeouts: (upstream_response: "10s"))],
           pools: [(name: "a", backends: [(addr: "{}")]){pool_b}])"#,
        a.addr()
    )
}

#[test]
fn reload_adds_a_route_and_pool_while_a_slow_response_finishes() {
    let a = HttpBackend::start(HttpBehaviour::Slow {
        id: "a".into(),
        delay: Duration::from_millis(1500),
    });
    let b = hello("b");
    let proxy = Proxy::start(&two_route_config(&a, None), &[]);
    let addr = proxy.addr("web");
    let mut c = HttpClient::connect(addr);
    assert_eq!(
        c.request("GET", "/b/x", &[], b"").status,
        404,
        "no route yet"
    );

    // A slow response is in flight across the reload.
    let slow = std::thread::spawn(move || {
        let mut c = HttpClient::connect(addr);
        c.request("GET", "/a/slow", &[], b"")
    });
    assert!(a.wait_requests(1, Duration::from_secs(10)));
    // A broken file changes nothing.
    reload(&proxy, "(listeners: [", "reload rejected");
    assert_eq!(c.request("GET", "/b/x", &[], b"").status, 404);
    reload(&proxy, &two_route_config(&a, Some(&b)), "reload: ");
    // The same keep-alive client connection sees the new route on its next request.
    let r = c.request("GET", "/b/x", &[], b"");
    assert_eq!((r.status, r.text()), (200, "b GET /b/x\n".into()));
    let r = slow.join().unwrap();
    assert_eq!((r.status, r.text()), (200, "a GET /a/slow\n".into()));
}

#[test]
fn sigterm_lets_a_3s_http_response_finish_then_exits_zero() {
    let a = HttpBackend::start(HttpBehaviour::Slow {
        id: "a".into(),
        delay: Duration::from_secs(3),
    });
    let config = format!(
        r#"(workers: 2, shutdown_grace: "20s",
            listeners: [(name: "web", bind: "127.0.0.1:0", protocol: Http(routes: [(pool: "a")]))],
            pools: [(name: "a", backends: [(addr: "{}")])])"#,
        a.addr()
    );
    let mut proxy = Proxy::start(&config, &[]);
    let addr = proxy.addr("web");
    // An idle keep-alive connection must not hold the stop up.
    let mut idle = HttpClient::connect(addr);
    let _ = idle.request("GET", "/warm", &[], b"");
    let before = a.requests();
    let in_flight = std::thread::spawn(move || {
        let mut c = HttpClient::connect(addr);
        c.request("GET", "/slow", &[], b"")
    });
    assert!(a.wait_requests(before + 1, Duration::from_secs(10)));
    let started = Instant::now();
    proxy.signal(libc::SIGTERM);
    proxy.wait_log("draining", Duration::from_secs(5));
    // New connections are refused once the drain begins.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        idle.is_closed(),
        "the idle keep-alive connection was closed"
    );
    let r = in_flight.join().unwrap();
    assert_eq!((r.status, r.text()), (200, "a GET /slow\n".into()));
    assert_eq!(r.header("connection"), Some("close"));
    let code = proxy.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

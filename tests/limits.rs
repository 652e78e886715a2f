//! Connection limits and rate limits on the L4 path, hit and released under concurrent
//! load, with their counts visible in /metrics.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

fn proxy(listener_extra: &str, backend: &str) -> Proxy {
    let config = format!(
        "(workers: 1, admin: \"127.0.0.1:0\",
          listeners: [(name: \"l4\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"p\"), {listener_extra})],
          pools: [(name: \"p\", backends: [{backend}])])"
    );
    Proxy::start(&config, &[])
}

/// An echo round trip on an open connection; false if the proxy closed it instead.
fn echoes(s: &mut TcpStream, msg: &[u8]) -> bool {
    if s.write_all(msg).is_err() {
        return false;
    }
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).is_ok() && back == msg
}

fn scrape(proxy: &Proxy, series: &str) -> Option<f64> {
    metric(
        &http_request(proxy.admin_addr(), "GET", "/metrics").body,
        series,
    )
}

#[test]
fn a_backend_at_its_connection_limit_is_skipped_and_freed_again() {
    let echo = Backend::start(Behaviour::Echo);
    let proxy = proxy(
        "",
        &format!("(addr: \"{}\", max_connections: 2)", echo.addr),
    );
    let addr = proxy.addr("l4");
    let mut first = connect(addr);
    let mut second = connect(addr);
    assert!(echoes(&mut first, b"one") && echoes(&mut second, b"two"));
    // The only backend is full: the third client is closed, not queued.
    let mut third = connect(addr);
    assert!(
        !echoes(&mut third, b"three"),
        "a full backend must not take a third connection"
    );
    assert_eq!(
        scrape(&proxy, "ringway_refused_connections_total{listener=\"l4\"}"),
        Some(1.0)
    );
    // Closing one frees a slot.
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect(addr);
        if echoes(&mut again, b"four") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the freed slot was never reused"
        );
    }
    assert!(echoes(&mut second, b"still here"));
}

#[test]
fn a_listener_at_its_limit_leaves_new_clients_waiting_in_the_backlog() {
    let echo = Backend::start(Behaviour::Echo);
    let proxy = proxy(
        "limits: (max_connections: 2)",
        &format!("(addr: \"{}\")", echo.addr),
    );
    let addr = proxy.addr("l4");
    let mut first = connect(addr);
    let mut second = connect(addr);
    assert!(echoes(&mut first, b"one") && echoes(&mut second, b"two"));
    // The third connects (the kernel queues it) but is not served while two are open.
    let mut third = connect(addr);
    third.write_all(b"waiting").unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 7];
    let err = third
        .read_exact(&mut buf)
        .expect_err("served beyond max_connections");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    assert_eq!(
        scrape(&proxy, "ringway_active_connections{listener=\"l4\"}"),
        Some(2.0)
    );
    // When one closes, the waiting client is accepted and gets its bytes back.
    drop(first);
    third.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    third.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"waiting");
    assert!(echoes(&mut second, b"two again"));
}

#[test]
fn clients_over_their_rate_are_closed_and_counted() {
    let echo = Backend::start(Behaviour::Echo);
    let proxy = proxy(
        "rate_limit: (per_ip: 5, per: \"60s\", burst: 5)",
        &format!("(addr: \"{}\")", echo.addr),
    );
    let addr = proxy.addr("l4");
    // Twenty clients at once from one IP: the burst of five is served, fifteen are closed.
    let threads: Vec<_> = (0..20)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                echoes(&mut s, format!("client {i}").as_bytes())
            })
        })
        .collect();
    let served = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|&ok| ok)
        .count();
    assert_eq!(served, 5);
    assert_eq!(
        scrape(&proxy, "ringway_rate_limited_total{listener=\"l4\"}"),
        Some(15.0)
    );
    assert_eq!(
        scrape(&proxy, "ringway_connections_total{listener=\"l4\"}"),
        Some(20.0)
    );
}

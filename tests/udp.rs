//! The L4 UDP path: datagrams relayed both ways through per-client flows, flows sticking
//! to one backend, idle expiry and the flow-table bound.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

/// A UDP backend that answers every datagram with its one-byte id followed by the payload.
struct UdpBackend {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpBackend {
    fn start(id: u8) -> UdpBackend {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let mut reply = vec![id];
                    reply.extend_from_slice(&buf[..n]);
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        UdpBackend {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for UdpBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn udp_proxy(backends: &[&UdpBackend], extra: &str) -> Proxy {
    let list: Vec<String> = backends
        .iter()
        .map(|b| format!("(addr: \"{}\")", b.addr))
        .collect();
    let config = format!(
        "(workers: 2, admin: \"127.0.0.1:0\",
          listeners: [(name: \"dns\", bind: \"127.0.0.1:0\", protocol: Udp(pool: \"p\"), {extra})],
          pools: [(name: \"p\", balance: RoundRobin, backends: [{}])])",
        list.join(", ")
    );
    Proxy::start(&config, &[])
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// One request/response through the proxy; returns the backend id that answered.
fn ask(socket: &UdpSocket, proxy: SocketAddr, payload: &[u8]) -> u8 {
    socket.send_to(payload, proxy).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = socket
        .recv_from(&mut buf)
        .expect("a reply through the proxy");
    assert_eq!(from, proxy, "replies come from the proxy's address");
    assert_eq!(&buf[1..n], payload, "the payload comes back unchanged");
    buf[0]
}

#[test]
fn a_thousand_client_ports_each_stick_to_one_backend() {
    let (a, b) = (UdpBackend::start(b'a'), UdpBackend::start(b'b'));
    let proxy = udp_proxy(&[&a, &b], "timeouts: (idle: \"30s\")");
    let target = proxy.addr("dns");
    let clients: Vec<UdpSocket> = (0..1000).map(|_| client()).collect();
    let mut first = Vec::with_capacity(clients.len());
    for (i, c) in clients.iter().enumerate() {
        first.push(ask(c, target, format!("query {i}").as_bytes()));
    }
    for (i, c) in clients.iter().enumerate() {
        let again = ask(c, target, format!("query {i} again").as_bytes());
        assert_eq!(again, first[i], "client {i} moved to another backend");
    }
    let on_a = first.iter().filter(|&&id| id == b'a').count();
    assert!(
        (400..=600).contains(&on_a),
        "round robin spreads flows: {on_a} of 1000 on a"
    );
    let text = http_request(proxy.admin_addr(), "GET", "/metrics").body;
    assert_eq!(
        metric(&text, "ringway_connections_total{listener=\"dns\"}"),
        Some(1000.0)
    );
    assert_eq!(
        metric(&text, "ringway_active_connections{listener=\"dns\"}"),
        Some(1000.0)
    );
}

#[test]
fn idle_flows_expire_and_the_table_is_bounded() {
    let a = UdpBackend::start(b'a');
    let proxy = udp_proxy(&[&a], "timeouts: (idle: \"300ms\"), limits: (max_flows: 2)");
    let target = proxy.addr("dns");
    let admin = proxy.admin_addr();
    let gauge = "ringway_active_connections{listener=\"dns\"}";
    let total = "ringway_connections_total{listener=\"dns\"}";

    let c = client();
    assert_eq!(ask(&c, target, b"hello"), b'a');
    // Silence longer than the idle timeout ends the flow.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = http_request(admin, "GET", "/metrics").body;
        if metric(&text, gauge) == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the idle flow never expired:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The same client starts a new flow.
    assert_eq!(ask(&c, target, b"hello again"), b'a');
    let text = http_request(admin, "GET", "/metrics").body;
    assert_eq!(metric(&text, total), Some(2.0));

    // Several clients on one worker: the table never holds more than max_flows per worker.
    let clients: Vec<UdpSocket> = (0..12).map(|_| client()).collect();
    for c in &clients {
        assert_eq!(ask(c, target, b"x"), b'a');
    }
    let text = http_request(admin, "GET", "/metrics").body;
    let active = metric(&text, gauge).unwrap();
    // Two workers, two flows each at most (evicted flows' tasks may take a moment to end).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut active = active;
    while active > 4.0 {
        assert!(
            Instant::now() < deadline,
            "more than max_flows flows per worker: {active}"
        );
        std::thread::sleep(Duration::from_millis(50));
        active = metric(&http_request(admin, "GET", "/metrics").body, gauge).unwrap();
    }
}

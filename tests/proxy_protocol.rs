//! PROXY protocol on the L4 path: headers read from clients, headers sent to backends,
//! and clients without a valid header turned away before any backend sees them.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};

use common::*;
use ringway::proxy_protocol::{self, Accept, Addresses};

fn config(accept: &str, send: &str, backend: SocketAddr) -> String {
    format!(
        "(workers: 2, admin: \"127.0.0.1:0\",
          listeners: [(name: \"l4\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"p\"),
                       proxy_protocol: (accept: {accept}))],
          pools: [(name: \"p\", backends: [(addr: \"{backend}\")], send_proxy: {send})])"
    )
}

/// Send `data`, half-close, and return everything the echo backend sent back.
fn through(proxy: &Proxy, data: &[u8]) -> Vec<u8> {
    let mut s = connect(proxy.addr("l4"));
    s.write_all(data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    back
}

#[test]
fn v1_from_the_client_is_passed_on_as_v1_and_v2() {
    let echo = Backend::start(Behaviour::Echo);
    let header = b"PROXY TCP4 203.0.113.7 198.51.100.1 5555 443\r\n";
    let mut sent = header.to_vec();
    sent.extend_from_slice(b"hello after the header");

    let proxy = Proxy::start(&config("V1", "V1", echo.addr), &[]);
    assert_eq!(
        through(&proxy, &sent),
        sent,
        "the backend sees the client's addresses, then its bytes"
    );

    let proxy = Proxy::start(&config("Any", "V2", echo.addr), &[]);
    let back = through(&proxy, &sent);
    let (addresses, consumed) = proxy_protocol::parse(&back, Accept::V2)
        .expect("a valid v2 header")
        .expect("a complete v2 header");
    assert_eq!(
        addresses,
        Addresses::Tcp {
            source: "203.0.113.7:5555".parse().unwrap(),
            destination: "198.51.100.1:443".parse().unwrap(),
        }
    );
    assert_eq!(&back[consumed..], b"hello after the header");
}

#[test]
fn a_direct_client_is_announced_to_the_backend_with_its_real_address() {
    let echo = Backend::start(Behaviour::Echo);
    let proxy = Proxy::start(&config("None", "V2", echo.addr), &[]);
    let mut s = connect(proxy.addr("l4"));
    let me = s.local_addr().unwrap();
    s.write_all(b"payload").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    let (addresses, consumed) = proxy_protocol::parse(&back, Accept::V2).unwrap().unwrap();
    assert_eq!(
        addresses,
        Addresses::Tcp {
            source: me,
            destination: proxy.addr("l4"),
        }
    );
    assert_eq!(&back[consumed..], b"payload");
}

#[test]
fn clients_without_a_valid_header_are_closed_and_counted() {
    let echo = Backend::start(Behaviour::Echo);
    let proxy = Proxy::start(&config("V1", "None", echo.addr), &[]);
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n"[..],
        &b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"[..], // v2 on a v1-only listener
    ] {
        // The proxy may close before the client is done writing: ignore write errors.
        let mut s = connect(proxy.addr("l4"));
        let _ = s.write_all(bad);
        let _ = s.shutdown(Shutdown::Write);
        let mut back = Vec::new();
        let _ = s.read_to_end(&mut back);
        assert!(back.is_empty(), "{bad:?} got {back:?}");
    }
    assert_eq!(echo.accepts(), 0, "no backend may see a rejected client");
    let text = http_request(proxy.admin_addr(), "GET", "/metrics").body;
    assert_eq!(
        metric(
            &text,
            "ringway_proxy_protocol_rejected_total{listener=\"l4\"}"
        ),
        Some(3.0)
    );
}

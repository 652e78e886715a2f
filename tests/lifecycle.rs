//! Process lifecycle over real sockets: graceful stop on SIGTERM, fast stop on SIGINT.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn slow_proxy(grace: &str, delay: Duration) -> (Backend, Proxy) {
    let backend = Backend::start(Behaviour::SlowReply { delay });
    let config = tcp_config(2, "Splice", "RoundRobin", &[(backend.addr, 1)], "").replacen(
        "(\n",
        &format!("(\n  shutdown_grace: \"{grace}\",\n"),
        1,
    );
    let proxy = Proxy::start(&config, &[]);
    (backend, proxy)
}

/// Start a request whose reply is in flight: the first half has arrived.
fn request_in_flight(proxy: &Proxy) -> TcpStream {
    let mut client = connect(proxy.addr("l4"));
    client.write_all(b"hello\n").unwrap();
    let mut first = [0u8; 6];
    client.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"first\n");
    client
}

/// Poll until a new connection through the proxy fails, within `limit`.
fn wait_until_refused(proxy: &Proxy, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        match TcpStream::connect_timeout(&proxy.addr("l4"), Duration::from_millis(500)) {
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                    ),
                    "unexpected connect error {e}"
                );
                return;
            }
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "still accepting {limit:?} after SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[test]
fn sigterm_drains_in_flight_relay_then_exits_zero() {
    // A 3 s response in flight when SIGTERM arrives.
    let (_backend, mut proxy) = slow_proxy("10s", Duration::from_secs(3));
    let mut client = request_in_flight(&proxy);
    let started = Instant::now();
    proxy.signal(libc::SIGTERM);
    wait_until_refused(&proxy, Duration::from_secs(2));
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"second\n", "the in-flight reply must arrive whole");
    // The client closes its side too; with both directions done the relay is finished.
    drop(client);
    let code = proxy.wait_exit(Duration::from_secs(8));
    assert_eq!(code, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "exited only after the grace period"
    );
}

#[test]
fn sigterm_cuts_what_is_left_when_grace_ends() {
    let (_backend, mut proxy) = slow_proxy("300ms", Duration::from_millis(1500));
    let mut client = request_in_flight(&proxy);
    let started = Instant::now();
    proxy.signal(libc::SIGTERM);
    let code = proxy.wait_exit(Duration::from_secs(5));
    assert_eq!(code, Some(0));
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(1400),
        "waited {waited:?}, grace was 300ms"
    );
    // The relay was cut before the backend's second half: the client sees the close.
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    assert!(rest.is_empty(), "got {rest:?} after the cut");
}

#[test]
fn sigint_and_second_sigterm_stop_at_once() {
    for signals in [&[libc::SIGINT][..], &[libc::SIGTERM, libc::SIGTERM][..]] {
        let (_backend, mut proxy) = slow_proxy("30s", Duration::from_millis(1500));
        let _client = request_in_flight(&proxy);
        let started = Instant::now();
        for (i, &sig) in signals.iter().enumerate() {
            if i > 0 {
                // Standard signals do not queue: wait until the first one was handled.
                proxy.wait_log("draining", Duration::from_secs(5));
            }
            proxy.signal(sig);
        }
        let code = proxy.wait_exit(Duration::from_secs(5));
        assert_eq!(code, Some(0), "signals {signals:?}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{signals:?} took {:?}",
            started.elapsed()
        );
    }
}

/// However ringway stops, its ports are closed by the time the process is gone. Each
/// worker's listener has an accept in flight on its ring, which keeps the socket open
/// until the kernel tears the ring down; before the listeners were stopped explicitly,
/// the port went on completing handshakes for 5-15 ms after the exit (connections
/// nobody would accept), and so would have taken clients from a ringway started at once.
#[test]
fn no_port_outlives_the_process() {
    for signals in [&[libc::SIGINT][..], &[libc::SIGTERM][..]] {
        let (_backend, mut proxy) = slow_proxy("10s", Duration::from_millis(1));
        let addr = proxy.addr("l4");
        // A relayed exchange first: the workers are serving, not starting up.
        let mut client = request_in_flight(&proxy);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"second\n");
        drop(client);
        proxy.signal(signals[0]);
        assert_eq!(proxy.wait_exit(Duration::from_secs(5)), Some(0));
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{signals:?}: {e}"),
            Ok(_) => panic!("{signals:?}: {addr} still accepted a connection after the exit"),
        }
        // Taking the listeners off their ports is part of stopping, not a failure to log.
        let log = proxy.log_to_end(Duration::from_secs(2));
        assert!(
            !log.iter().any(|l| l.contains("accept failed")),
            "{signals:?}: {log:?}"
        );
    }
}

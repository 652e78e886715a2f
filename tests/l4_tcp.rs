//! The L4 TCP path end to end: the real binary, real backends, real loopback sockets.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const EIGHT_MIB: usize = 8 * 1024 * 1024;

/// 8 MiB of random bytes each way, for every combination of driver and relay mode.
fn eight_mib_each_way(driver: &str, relay: &str) {
    let echo = Backend::start(Behaviour::Echo);
    let config = tcp_config(
        2,
        relay,
        "RoundRobin",
        &[(echo.addr, 1)],
        "connect: \"1s\", idle: \"30s\"",
    );
    let proxy = Proxy::start(&config, &[("RINGWAY_DRIVER", driver)]);
    let data = Arc::new(pattern(EIGHT_MIB, 42));
    let got = send_and_receive_all(connect(proxy.addr("l4")), data.clone());
    assert_eq!(got.len(), data.len(), "{driver}/{relay}: length");
    assert_eq!(
        checksum(&got),
        checksum(&data),
        "{driver}/{relay}: checksum"
    );
    assert!(got == *data, "{driver}/{relay}: content differs");
}

#[test]
fn eight_mib_each_way_splice_uring() {
    eight_mib_each_way("uring", "Splice");
}

#[test]
fn eight_mib_each_way_splice_legacy() {
    eight_mib_each_way("legacy", "Splice");
}

#[test]
fn eight_mib_each_way_buffered_uring() {
    eight_mib_each_way("uring", "Buffered");
}

#[test]
fn eight_mib_each_way_buffered_legacy() {
    eight_mib_each_way("legacy", "Buffered");
}

/// The splice relay must run on the worker's own core: io_uring's SPLICE op would spawn
/// io-wq kernel threads (`iou-wrk-*`) that escape pinning. After a transfer, the proxy
/// process must have none.
#[test]
fn splice_relay_spawns_no_io_wq_threads() {
    let echo = Backend::start(Behaviour::Echo);
    let config = tcp_config(1, "Splice", "RoundRobin", &[(echo.addr, 1)], "");
    let proxy = Proxy::start(&config, &[("RINGWAY_DRIVER", "uring")]);
    let data = Arc::new(pattern(4 * 1024 * 1024, 9));
    let got = send_and_receive_all(connect(proxy.addr("l4")), data.clone());
    assert!(got == *data);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", proxy.pid())).unwrap();
    let names: Vec<String> = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("ringway-w")),
        "threads: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("iou-wrk")),
        "io-wq threads found: {names:?}"
    );
}

#[test]
fn half_close_client_still_receives_full_reply() {
    for (driver, relay) in [
        ("uring", "Splice"),
        ("legacy", "Splice"),
        ("uring", "Buffered"),
    ] {
        let backend = Backend::start(Behaviour::ReplyAfterEof { extra: 1 << 20 });
        let config = tcp_config(1, relay, "RoundRobin", &[(backend.addr, 1)], "");
        let proxy = Proxy::start(&config, &[("RINGWAY_DRIVER", driver)]);
        let mut s = connect(proxy.addr("l4"));
        s.write_all(&pattern(100_000, 3)).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        let header = b"100000 bytes\n";
        assert!(
            reply.starts_with(header),
            "{driver}/{relay}: reply starts {:?}",
            &reply[..reply.len().min(20)]
        );
        assert_eq!(
            &reply[header.len()..],
            &pattern(1 << 20, 7)[..],
            "{driver}/{relay}: body"
        );
    }
}

#[test]
fn three_hundred_concurrent_round_trips() {
    let echo = Backend::start(Behaviour::Echo);
    let config = tcp_config(2, "Splice", "LeastConnections", &[(echo.addr, 1)], "");
    let proxy = Proxy::start(&config, &[]);
    let addr = proxy.addr("l4");
    // Open all 300 first, so they are truly concurrent inside the proxy.
    let streams: Vec<_> = (0..300).map(|_| connect(addr)).collect();
    let threads: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            std::thread::spawn(move || {
                let msg = pattern(4096, i as u64 + 1);
                s.write_all(&msg).unwrap();
                let mut back = vec![0u8; msg.len()];
                s.read_exact(&mut back).unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).unwrap();
                back == msg && rest.is_empty()
            })
        })
        .collect();
    let ok = threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .filter(|&matched| matched)
        .count();
    assert_eq!(ok, 300, "every connection must get its own bytes back");
    assert!(echo.accepts() >= 300);
}

#[test]
fn weighted_round_robin_distribution_is_exact() {
    let a = Backend::start(Behaviour::SayId(b'a'));
    let b = Backend::start(Behaviour::SayId(b'b'));
    let c = Backend::start(Behaviour::SayId(b'c'));
    // One worker: round robin state is per core, so exact totals need a single core.
    let config = tcp_config(
        1,
        "Splice",
        "RoundRobin",
        &[(a.addr, 5), (b.addr, 1), (c.addr, 1)],
        "",
    );
    let proxy = Proxy::start(&config, &[]);
    let addr = proxy.addr("l4");
    let mut seq = Vec::with_capacity(700);
    for _ in 0..700 {
        let mut s = connect(addr);
        let mut id = Vec::new();
        s.read_to_end(&mut id).unwrap();
        assert_eq!(id.len(), 1, "one id byte per connection");
        seq.push(id[0]);
    }
    let count = |x: u8| seq.iter().filter(|&&y| y == x).count();
    assert_eq!((count(b'a'), count(b'b'), count(b'c')), (500, 100, 100));
    assert_eq!((a.accepts(), b.accepts(), c.accepts()), (500, 100, 100));
    // Smooth: never five a's in a row, since b and c are interleaved.
    assert!(
        !seq.windows(5).any(|w| w.iter().all(|&x| x == b'a')),
        "not smooth: {:?}",
        std::str::from_utf8(&seq[..14])
    );
}

#[test]
fn dead_backend_is_skipped_for_every_connection() {
    let live = Backend::start(Behaviour::SayId(b'l'));
    let dead = dead_addr();
    for balance in [
        "RoundRobin",
        "LeastConnections",
        "SourceHash",
        "Maglev",
        "PowerOfTwo",
        "Random",
    ] {
        let config = tcp_config(
            2,
            "Splice",
            balance,
            &[(dead, 1), (live.addr, 1)],
            "connect: \"1s\"",
        );
        let proxy = Proxy::start(&config, &[]);
        for i in 0..40 {
            let mut s = connect(proxy.addr("l4"));
            let mut id = Vec::new();
            s.read_to_end(&mut id).unwrap();
            assert_eq!(
                id, b"l",
                "{balance}: connection {i} did not reach the live backend"
            );
        }
    }
}

#[test]
fn all_backends_dead_closes_client_within_connect_timeout() {
    let config = tcp_config(
        1,
        "Splice",
        "RoundRobin",
        &[(dead_addr(), 1), (dead_addr(), 2)],
        "connect: \"1s\"",
    );
    let proxy = Proxy::start(&config, &[]);
    let started = Instant::now();
    let mut s = connect(proxy.addr("l4"));
    let mut buf = [0u8; 16];
    let n = match s.read(&mut buf) {
        Ok(n) => n,
        // A reset is also a close; what matters is that the client is not left hanging.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
        Err(e) => panic!("expected a close, got {e}"),
    };
    assert_eq!(n, 0);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn idle_connection_is_closed_after_idle_timeout() {
    let echo = Backend::start(Behaviour::Echo);
    for relay in ["Splice", "Buffered"] {
        let config = tcp_config(1, relay, "RoundRobin", &[(echo.addr, 1)], "idle: \"300ms\"");
        let proxy = Proxy::start(&config, &[]);
        let mut s = connect(proxy.addr("l4"));
        // Traffic keeps it alive past one idle period...
        for round in 0..4 {
            if round > 0 {
                // Pauses shorter than the idle timeout, four of them longer in total.
                std::thread::sleep(Duration::from_millis(100));
            }
            s.write_all(b"ping").unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"ping");
        }
        // ...silence closes it.
        let started = Instant::now();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(250),
            "{relay}: closed too early: {waited:?}"
        );
        assert!(
            waited < Duration::from_secs(5),
            "{relay}: not closed: {waited:?}"
        );
    }
}

#[test]
fn relays_over_ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("this machine has no IPv6 loopback; IPv6 relay not exercised");
        return;
    }
    let echo = Backend::start_on("[::1]:0", Behaviour::Echo);
    let config =
        tcp_config(1, "Splice", "Maglev", &[(echo.addr, 1)], "").replace("127.0.0.1:0", "[::1]:0");
    let proxy = Proxy::start(&config, &[]);
    let addr = proxy.addr("l4");
    assert!(addr.is_ipv6(), "{addr}");
    let data = Arc::new(pattern(1 << 20, 5));
    let got = send_and_receive_all(connect(addr), data.clone());
    assert!(got == *data);
}

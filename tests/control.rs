//! The control plane over real sockets: active health checks, passive ejection, live
//! reload (SIGHUP) and systemd notifications.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// One traffic round trip through an L4 listener to a `Checked` backend: returns its id.
fn traffic(addr: SocketAddr) -> u8 {
    let mut s = connect(addr);
    s.write_all(b"traffic, not a probe\n").unwrap();
    let mut id = Vec::new();
    s.read_to_end(&mut id).unwrap();
    assert_eq!(id.len(), 1, "expected one id byte, got {id:?}");
    id[0]
}

/// Scheduling slack for timing bounds on a small, busy CI machine.
const SLACK_MS: u64 = 1500;

fn leak_flag() -> &'static AtomicBool {
    Box::leak(Box::new(AtomicBool::new(false)))
}

fn leak_counter() -> &'static AtomicUsize {
    Box::leak(Box::new(AtomicUsize::new(0)))
}

#[test]
fn failing_health_check_takes_a_backend_out_and_back() {
    let (sick_a, sick_b) = (leak_flag(), leak_flag());
    let (traffic_a, traffic_b) = (leak_counter(), leak_counter());
    let a = Backend::start(Behaviour::Checked {
        id: b'a',
        sick: sick_a,
        traffic: traffic_a,
    });
    let b = Backend::start(Behaviour::Checked {
        id: b'b',
        sick: sick_b,
        traffic: traffic_b,
    });
    let (interval, timeout, fall, rise) = (200u64, 200u64, 2u64, 2u64);
    let config = format!(
        "(workers: 2, listeners: [(name: \"l4\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"p\"))],
          pools: [(name: \"p\", balance: RoundRobin, backends: [(addr: \"{}\"), (addr: \"{}\")],
                   health: (check: Http(path: \"/healthz\", expect: 200), interval: \"{interval}ms\",
                            timeout: \"{timeout}ms\", rise: {rise}, fall: {fall}))])",
        a.addr, b.addr
    );
    let proxy = Proxy::start(&config, &[]);
    let addr = proxy.addr("l4");
    // Both serve while healthy.
    let ids: Vec<u8> = (0..20).map(|_| traffic(addr)).collect();
    assert!(ids.contains(&b'a') && ids.contains(&b'b'), "{ids:?}");

    sick_b.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let line = proxy.wait_log(
        &format!("backend {}: up -> down", b.addr),
        Duration::from_secs(5),
    );
    // One interval of phase, `fall` probes, the last one's timeout, and slack for a busy machine.
    let bound = Duration::from_millis((fall + 1) * interval + timeout + SLACK_MS);
    assert!(
        started.elapsed() <= bound,
        "down after {:?} (bound {bound:?}): {line}",
        started.elapsed()
    );
    let before = traffic_b.load(Ordering::SeqCst);
    for _ in 0..40 {
        assert_eq!(traffic(addr), b'a');
    }
    assert_eq!(
        traffic_b.load(Ordering::SeqCst),
        before,
        "no traffic may reach a down backend"
    );

    sick_b.store(false, Ordering::SeqCst);
    let started = Instant::now();
    proxy.wait_log(
        &format!("backend {}: down -> up", b.addr),
        Duration::from_secs(5),
    );
    let bound = Duration::from_millis((rise + 1) * interval + SLACK_MS);
    assert!(
        started.elapsed() <= bound,
        "up after {:?} (bound {bound:?})",
        started.elapsed()
    );
    let ids: Vec<u8> = (0..20).map(|_| traffic(addr)).collect();
    assert!(ids.contains(&b'b'), "b must get traffic again: {ids:?}");
}

#[test]
fn refused_connections_eject_a_backend_passively() {
    let live = Backend::start(Behaviour::SayId(b'l'));
    let dead = dead_addr();
    let config = format!(
        "(workers: 1, listeners: [(name: \"l4\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"p\"))],
          pools: [(name: \"p\", balance: RoundRobin, backends: [(addr: \"{dead}\"), (addr: \"{}\")],
                   passive: (consecutive_failures: 3, eject_for: \"30s\"))])",
        live.addr
    );
    let proxy = Proxy::start(&config, &[]);
    let addr = proxy.addr("l4");
    let mut ejected = false;
    for i in 0..200 {
        let mut s = connect(addr);
        let mut id = Vec::new();
        s.read_to_end(&mut id).unwrap();
        assert_eq!(id, b"l", "connection {i}");
        if proxy
            .drain_log()
            .iter()
            .any(|l| l.contains(&format!("backend {dead}: up -> ejected")))
        {
            ejected = true;
            break;
        }
    }
    assert!(ejected, "the dead backend was never ejected");
}

/// Write `config` over the proxy's config file and send SIGHUP; returns the log line.
fn reload(proxy: &Proxy, config: &str, expect: &str) -> String {
    std::fs::write(&proxy.config_path, config).unwrap();
    proxy.signal(libc::SIGHUP);
    proxy.wait_log(expect, Duration::from_secs(10))
}

fn listener_addr_from(line: &str, name: &str) -> SocketAddr {
    let key = format!("{name}=");
    let start = line
        .find(&key)
        .unwrap_or_else(|| panic!("{name} not in {line}"))
        + key.len();
    let rest = &line[start..];
    let end = rest.find([' ', ']']).unwrap_or(rest.len());
    rest[..end].parse().unwrap()
}

#[test]
fn reload_adds_and_removes_listeners_pools_and_backends_without_cutting_relays() {
    let a = Backend::start(Behaviour::SayId(b'a'));
    let b = Backend::start(Behaviour::SayId(b'b'));
    let c = Backend::start(Behaviour::SayId(b'c'));
    let echo = Backend::start(Behaviour::Echo);
    let slow = Backend::start(Behaviour::SlowReply {
        delay: Duration::from_secs(2),
    });
    let v1 = format!(
        "(workers: 2, listeners: [
            (name: \"l4\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"p\")),
            (name: \"echo\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"e\")),
            (name: \"slow\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"s\")),
          ],
          pools: [(name: \"p\", backends: [(addr: \"{}\")]), (name: \"e\", backends: [(addr: \"{}\")]),
                  (name: \"s\", backends: [(addr: \"{}\")])])",
        a.addr, echo.addr, slow.addr
    );
    let proxy = Proxy::start(&v1, &[]);
    let l4 = proxy.addr("l4");
    // Listeners keep their OS-chosen ports across reloads when the file still says port 0.
    assert_eq!(traffic_id(l4), b'a');

    // 200 long-lived relays, open across the reloads.
    let mut relays: Vec<TcpStream> = (0..200).map(|_| connect(proxy.addr("echo"))).collect();
    for (i, s) in relays.iter_mut().enumerate() {
        round_trip(s, i);
    }
    // And a slow response in flight across the reloads: its first half has arrived.
    let mut slow_client = connect(proxy.addr("slow"));
    slow_client.write_all(b"go\n").unwrap();
    let mut first = [0u8; 6];
    slow_client.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"first\n");

    // v2: pool p gains backend c, a new pool q and a new listener l4b in front of it.
    let v2 = v1
        .replace(&format!("(name: \"p\", backends: [(addr: \"{}\")])", a.addr), &format!(
            "(name: \"p\", backends: [(addr: \"{}\"), (addr: \"{}\")]), (name: \"q\", backends: [(addr: \"{}\")])",
            a.addr, c.addr, b.addr
        ))
        .replace(
            "(name: \"echo\"",
            "(name: \"l4b\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"q\")),\n            (name: \"echo\"",
        );
    let line = reload(&proxy, &v2, "reload: ");
    let l4b = listener_addr_from(&line, "l4b");
    assert_eq!(traffic_id(l4b), b'b');
    // Round robin alternates a and c within each of the two workers, so out of 20
    // connections each backend gets at least 9 whatever the kernel's split.
    let ids: Vec<u8> = (0..20).map(|_| traffic_id(l4)).collect();
    assert!(ids.iter().filter(|&&x| x == b'c').count() >= 9, "{ids:?}");
    assert!(ids.iter().filter(|&&x| x == b'a').count() >= 9, "{ids:?}");

    // A broken file changes nothing.
    reload(&proxy, "(listeners: [", "reload rejected");
    assert_eq!(traffic_id(l4b), b'b');

    // v1 again: l4b goes away and stops accepting; pool p is back to a alone.
    reload(&proxy, &v1, "reload: ");
    let deadline = Instant::now() + Duration::from_secs(3);
    while TcpStream::connect_timeout(&l4b, Duration::from_millis(300)).is_ok() {
        assert!(Instant::now() < deadline, "removed listener still accepts");
        std::thread::sleep(Duration::from_millis(10));
    }
    for _ in 0..5 {
        assert_eq!(traffic_id(l4), b'a');
    }
    // Every relay opened before the reloads still works, and the slow response completes.
    for (i, s) in relays.iter_mut().enumerate() {
        round_trip(s, i + 1000);
    }
    let mut rest = Vec::new();
    slow_client.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"second\n");
}

fn traffic_id(addr: SocketAddr) -> u8 {
    let mut s = connect(addr);
    let mut id = Vec::new();
    s.read_to_end(&mut id).unwrap();
    assert_eq!(id.len(), 1, "{id:?}");
    id[0]
}

fn round_trip(s: &mut TcpStream, seed: usize) {
    let msg = pattern(512, seed as u64 + 1);
    s.write_all(&msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn systemd_is_told_ready_reloading_and_stopping() {
    let dir = scratch_dir("notify");
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let echo = Backend::start(Behaviour::Echo);
    let config = tcp_config(1, "Splice", "RoundRobin", &[(echo.addr, 1)], "");
    let mut proxy = Proxy::start(&config, &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let next = || {
        let mut buf = [0u8; 128];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(next(), "READY=1");
    proxy.signal(libc::SIGHUP);
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), "READY=1");
    proxy.signal(libc::SIGTERM);
    assert_eq!(next(), "STOPPING=1");
    assert_eq!(proxy.wait_exit(Duration::from_secs(10)), Some(0));
}

/// A backend dies in the middle of a run: every one of 2000 round trips still succeeds,
/// because a refused connect moves on to the next backend and the dead one is ejected.
#[test]
fn two_thousand_round_trips_succeed_while_a_backend_dies() {
    let a = Backend::start(Behaviour::Echo);
    let b = Backend::start(Behaviour::Echo);
    let config = format!(
        "(workers: 2, listeners: [(name: \"l4\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"p\"))],
          pools: [(name: \"p\", balance: LeastConnections, backends: [(addr: \"{}\"), (addr: \"{}\")],
                   health: (check: Tcp, interval: \"100ms\", timeout: \"100ms\", rise: 2, fall: 2),
                   passive: (consecutive_failures: 3, eject_for: \"10s\"))])",
        a.addr, b.addr
    );
    let proxy = Proxy::start(&config, &[]);
    let addr = proxy.addr("l4");
    let mut b = Some(b);
    let mut ok = 0;
    for i in 0..2000 {
        if i == 500 {
            drop(b.take()); // the backend goes away mid-run
        }
        let mut s = connect(addr);
        round_trip(&mut s, i);
        ok += 1;
    }
    assert_eq!(ok, 2000);
    assert!(
        a.accepts() >= 1500,
        "the survivor carried the rest: {}",
        a.accepts()
    );
}

/// Removing a listener while clients keep connecting to it must not disturb the worker:
/// its accept loop ends, and every other listener keeps serving.
#[test]
fn removing_a_busy_listener_leaves_the_workers_serving() {
    let echo = Backend::start(Behaviour::Echo);
    let listeners = |with_busy: bool| {
        let busy = if with_busy {
            "(name: \"busy\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"e\")),"
        } else {
            ""
        };
        format!(
            "(workers: 2, listeners: [
                (name: \"l4\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"e\")), {busy}
              ],
              pools: [(name: \"e\", backends: [(addr: \"{}\")])])",
            echo.addr
        )
    };
    let proxy = Proxy::start(&listeners(true), &[]);
    let (l4, busy) = (proxy.addr("l4"), proxy.addr("busy"));
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let hammer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut refused = false;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match TcpStream::connect_timeout(&busy, Duration::from_millis(500)) {
                    Ok(mut s) => {
                        let _ = s.write_all(b"x");
                    }
                    Err(_) => refused = true,
                }
            }
            refused
        })
    };
    reload(&proxy, &listeners(false), "reload: ");
    // Keep the hammer going a little past the reload, then check every worker still serves.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut served = 0;
    while Instant::now() < deadline && served < 200 {
        let mut s = connect(l4);
        round_trip(&mut s, served);
        served += 1;
    }
    stop.store(true, Ordering::Relaxed);
    assert!(
        hammer.join().unwrap(),
        "the removed listener kept accepting"
    );
    assert_eq!(served, 200);
    assert!(
        !proxy.drain_log().iter().any(|l| l.contains("panicked")),
        "a worker panicked"
    );
}

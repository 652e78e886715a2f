//! What the process sets up for itself at startup: started with a low soft open-file limit
//! (a service manager's usual default), the real binary raises it to the hard limit,
//! reserves its descriptor table before its threads start, and serves more connections than
//! the old limit allowed; and it runs without transparent huge pages.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// The soft limit the proxy is started with.
const INHERITED_SOFT: u64 = 256;

/// `(soft, hard)` "Max open files" of process `pid` (`self` for this one).
fn open_file_limits(pid: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files line");
    let fields: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    let parse = |s: &str| {
        if s == "unlimited" {
            u64::MAX
        } else {
            s.parse().expect("limit")
        }
    };
    (parse(fields[0]), parse(fields[1]))
}

/// Slots in the descriptor table of process `pid` (`FDSize` in its status).
fn fd_table_size(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = text
        .lines()
        .find(|l| l.starts_with("FDSize:"))
        .expect("FDSize line");
    line["FDSize:".len()..].trim().parse().expect("FDSize")
}

#[test]
fn a_low_soft_limit_is_raised_and_the_table_reserved() {
    let (_, hard) = open_file_limits("self");
    assert!(
        hard > 2 * INHERITED_SOFT,
        "this test needs a hard open-file limit above {}, the machine has {hard}",
        2 * INHERITED_SOFT
    );
    let echo = Backend::start(Behaviour::Echo);
    let config = tcp_config(1, "Splice", "RoundRobin", &[(echo.addr, 1)], "");
    let proxy = Proxy::start_with_soft_nofile(&config, INHERITED_SOFT);
    let pid = proxy.pid();

    assert_eq!(open_file_limits(&pid.to_string()), (hard, hard));
    let said = format!("open file limit raised from {INHERITED_SOFT} to {hard}");
    assert!(
        proxy.startup_log.iter().any(|l| l.contains(&said)),
        "no {said:?} in {:#?}",
        proxy.startup_log
    );
    let reserved = hard.min(65_536);
    assert!(
        fd_table_size(pid) >= reserved,
        "descriptor table {} slots, wanted at least {reserved}",
        fd_table_size(pid)
    );

    // Each relayed connection holds two descriptors in the proxy, so this many at once
    // would not fit under the inherited limit.
    let conns = usize::try_from(((hard - 64) / 2).min(300)).unwrap();
    assert!(2 * conns as u64 > INHERITED_SOFT);
    let mut open: Vec<TcpStream> = (0..conns).map(|_| connect(proxy.addr("l4"))).collect();
    for (i, stream) in open.iter_mut().enumerate() {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let byte = [i as u8];
        stream.write_all(&byte).expect("write");
        let mut back = [0u8; 1];
        stream
            .read_exact(&mut back)
            .unwrap_or_else(|e| panic!("connection {i} of {conns}: {e}"));
        assert_eq!(back, byte, "connection {i}");
    }
}

#[test]
fn the_proxy_runs_without_transparent_huge_pages() {
    let echo = Backend::start(Behaviour::Echo);
    let proxy = Proxy::start(
        &tcp_config(1, "Splice", "RoundRobin", &[(echo.addr, 1)], ""),
        &[],
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("THP_enabled:"))
        .expect("THP_enabled in status (kernel 5.0 or later)");
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}

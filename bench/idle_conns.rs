//! Client for bench/idle_memory.sh (std only): open N keep-alive HTTP/1.1 connections to
//! one address, make one request on each, read its response whole, then hold every
//! connection open and idle until standard input closes.
//!
//!     idle_conns ADDR N [PATH]
//!
//! Prints `ready N` once all N responses are in, so the script can read the proxy's memory
//! with exactly N idle client connections behind it. Exits non-zero (with the reason on
//! standard error) if a connection or a response fails; every socket has a 10 s timeout.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: idle_conns ADDR N [PATH]");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[1]
        .parse()
        .unwrap_or_else(|e| fail(&format!("ADDR: {e}")));
    let n: usize = args[2].parse().unwrap_or_else(|e| fail(&format!("N: {e}")));
    let path = args.get(3).map_or("/small", String::as_str);
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");

    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)
            .unwrap_or_else(|e| fail(&format!("connection {i}: connect: {e}")));
        s.set_read_timeout(Some(TIMEOUT)).ok();
        s.set_write_timeout(Some(TIMEOUT)).ok();
        s.write_all(request.as_bytes())
            .unwrap_or_else(|e| fail(&format!("connection {i}: write: {e}")));
        conns.push(s);
    }
    // Responses after all requests are out: the proxy holds all N at once.
    let mut buf = vec![0u8; 64 * 1024];
    for (i, s) in conns.iter_mut().enumerate() {
        read_response(s, &mut buf).unwrap_or_else(|e| fail(&format!("connection {i}: {e}")));
    }
    println!("ready {n}");
    std::io::stdout().flush().ok();
    // Hold until the script closes our standard input.
    let mut line = String::new();
    while std::io::stdin()
        .lock()
        .read_line(&mut line)
        .is_ok_and(|k| k > 0)
    {
        line.clear();
    }
    drop(conns);
}

/// Read one response with a Content-Length body (what the origin sends), whole.
fn read_response(s: &mut TcpStream, buf: &mut [u8]) -> Result<(), String> {
    let mut have = 0;
    loop {
        let k = s.read(&mut buf[have..]).map_err(|e| format!("read: {e}"))?;
        if k == 0 {
            return Err("closed before the response ended".into());
        }
        have += k;
        let data = &buf[..have];
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            if have == buf.len() {
                return Err("response head too large".into());
            }
            continue;
        };
        let head = String::from_utf8_lossy(&data[..end]);
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("not a 200: {}", head.lines().next().unwrap_or("")));
        }
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .ok_or("no Content-Length")?;
        if have >= end + 4 + length {
            return Ok(());
        }
    }
}

fn fail(why: &str) -> ! {
    eprintln!("idle_conns: {why}");
    std::process::exit(1);
}

//! l4load: a std-only TCP load generator and backend for ringway's L4 benchmark (bench/l4.sh).
//!
//! Backends (thread per connection, run until killed or until `--exit-after` seconds):
//!   l4load sink --listen 127.0.0.1:22000   read and discard everything, close on EOF
//!   l4load echo --listen 127.0.0.1:22001   write back everything read, close on EOF
//!
//! Clients (one thread per connection, print one machine-readable line on stdout):
//!   l4load stream --to ADDR --conns N --bytes TOTAL
//!       N connections each send TOTAL/N bytes as fast as possible (64 KiB writes from a
//!       pre-filled buffer), then shutdown(Write) and wait for the server's close.
//!       Throughput = bytes / wall time from the first connect to the last close.
//!       -> `stream conns=16 bytes=1073741824 secs=0.812 MBps=1322.4 Gbps=10.58`
//!   l4load rr --to ADDR --conns N --secs S --size 64
//!       N connections each do round trips (write `size` bytes, read `size` bytes back from an
//!       echo backend) for S seconds; every round trip's latency is recorded and sorted.
//!       -> `rr conns=16 secs=5 size=64 trips=617280 rps=123456 p50_us=80.1 p99_us=210.4 ...`
//!       (conn_trips_min/max: round trips of the least and most served connection, a
//!       fairness check: a proxy that starves some connections shows a wide gap)
//!
//! MB = 10^6 bytes. Every client is bounded: `--timeout SECS` (default 120) caps any single
//! socket read or write and the whole run; on error or timeout the tool prints the reason on
//! stderr and exits 1.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::exit;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const WRITE_CHUNK: usize = 64 * 1024;
const READ_BUF: usize = 256 * 1024;

fn usage() -> ! {
    eprintln!(
        "usage:
  l4load sink   --listen ADDR [--exit-after SECS]
  l4load echo   --listen ADDR [--exit-after SECS]
  l4load stream --to ADDR --conns N --bytes TOTAL [--timeout SECS]
  l4load rr     --to ADDR --conns N --secs S [--size BYTES] [--timeout SECS]

TOTAL accepts suffixes K, M, G (powers of 1024), e.g. 1G."
    );
    exit(2)
}

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("l4load: {msg}");
    exit(1)
}

struct Args {
    pairs: Vec<(String, String)>,
}

impl Args {
    fn parse(rest: &[String]) -> Args {
        let mut pairs = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            let k = &rest[i];
            if !k.starts_with("--") {
                die(format!("unexpected argument {k:?}"));
            }
            let (key, val) = match k.split_once('=') {
                Some((key, val)) => (key.to_string(), val.to_string()),
                None => {
                    i += 1;
                    let v = rest
                        .get(i)
                        .unwrap_or_else(|| die(format!("{k} needs a value")));
                    (k.clone(), v.clone())
                }
            };
            pairs.push((key.trim_start_matches("--").to_string(), val));
            i += 1;
        }
        Args { pairs }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn req(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| die(format!("missing --{key}")))
    }

    fn num(&self, key: &str, default: Option<u64>) -> u64 {
        match self.get(key) {
            Some(v) => {
                parse_size(v).unwrap_or_else(|| die(format!("bad number for --{key}: {v:?}")))
            }
            None => default.unwrap_or_else(|| die(format!("missing --{key}"))),
        }
    }

    fn float(&self, key: &str, default: Option<f64>) -> f64 {
        match self.get(key) {
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| die(format!("bad number for --{key}: {v:?}"))),
            None => default.unwrap_or_else(|| die(format!("missing --{key}"))),
        }
    }

    fn check_known(&self, known: &[&str]) {
        for (k, _) in &self.pairs {
            if !known.contains(&k.as_str()) {
                die(format!("unknown option --{k}"));
            }
        }
    }
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

fn resolve(addr: &str) -> SocketAddr {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| die(format!("bad address {addr:?}")))
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let cmd = argv.get(1).map(String::as_str).unwrap_or_else(|| usage());
    let args = Args::parse(&argv[2..]);
    match cmd {
        "sink" | "echo" => {
            args.check_known(&["listen", "exit-after"]);
            serve(
                cmd == "echo",
                args.req("listen"),
                args.get("exit-after")
                    .map(|_| args.float("exit-after", None)),
            )
        }
        "stream" => {
            args.check_known(&["to", "conns", "bytes", "timeout"]);
            let conns = args.num("conns", Some(1)).max(1) as usize;
            let bytes = args.num("bytes", None);
            let timeout = Duration::from_secs_f64(args.float("timeout", Some(120.0)));
            stream(resolve(args.req("to")), conns, bytes, timeout)
        }
        "rr" => {
            args.check_known(&["to", "conns", "secs", "size", "timeout"]);
            let conns = args.num("conns", Some(1)).max(1) as usize;
            let secs = args.float("secs", Some(5.0));
            let size = args.num("size", Some(64)).max(1) as usize;
            let timeout = Duration::from_secs_f64(args.float("timeout", Some(120.0)));
            rr(resolve(args.req("to")), conns, secs, size, timeout)
        }
        "-h" | "--help" | "help" => usage(),
        other => die(format!("unknown subcommand {other:?} (try --help)")),
    }
}

// ---------------------------------------------------------------------------------------
// Backends

fn serve(echo: bool, listen: &str, exit_after: Option<f64>) -> ! {
    let listener =
        TcpListener::bind(resolve(listen)).unwrap_or_else(|e| die(format!("bind {listen}: {e}")));
    if let Some(secs) = exit_after {
        thread::spawn(move || {
            thread::sleep(Duration::from_secs_f64(secs));
            exit(0)
        });
    }
    eprintln!(
        "l4load {} listening on {}",
        if echo { "echo" } else { "sink" },
        listener.local_addr().unwrap()
    );
    loop {
        let (sock, _) = match listener.accept() {
            Ok(x) => x,
            Err(e)
                if e.kind() == ErrorKind::Interrupted
                    || e.kind() == ErrorKind::ConnectionAborted =>
            {
                continue
            }
            Err(e) => {
                // e.g. EMFILE: back off instead of spinning.
                eprintln!("l4load: accept: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        thread::spawn(move || {
            if echo {
                echo_conn(sock)
            } else {
                sink_conn(sock)
            }
        });
    }
}

fn sink_conn(mut sock: TcpStream) {
    let mut buf = vec![0u8; READ_BUF];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    // Dropping the socket closes it: the client sees EOF once everything it sent arrived.
}

fn echo_conn(mut sock: TcpStream) {
    let mut buf = vec![0u8; READ_BUF];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if sock.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Clients

fn connect(to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&to, timeout.min(Duration::from_secs(10)))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}

/// An I/O error for the report; a socket timeout shows as EAGAIN, so name it.
fn why(e: std::io::Error, timeout: Duration) -> String {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!("no progress for {:.0}s (timeout)", timeout.as_secs_f64())
        }
        _ => e.to_string(),
    }
}

/// Kills the process if the run outlives its deadline (a hung proxy must not hang the bench).
fn watchdog(what: &'static str, limit: Duration) {
    thread::spawn(move || {
        thread::sleep(limit);
        die(format!(
            "{what}: run exceeded its {:.0}s deadline",
            limit.as_secs_f64()
        ))
    });
}

fn stream(to: SocketAddr, conns: usize, total: u64, timeout: Duration) {
    watchdog("stream", timeout + Duration::from_secs(5));
    let per = total / conns as u64;
    let extra = total % conns as u64;
    let chunk: Arc<Vec<u8>> = Arc::new((0..WRITE_CHUNK).map(|i| (i * 31 + 7) as u8).collect());
    let start_line = Arc::new(Barrier::new(conns + 1));
    let mut handles = Vec::with_capacity(conns);
    for i in 0..conns {
        let chunk = chunk.clone();
        let start_line = start_line.clone();
        let mine = per + u64::from((i as u64) < extra);
        handles.push(thread::spawn(move || -> Result<(Instant, u64), String> {
            start_line.wait();
            let mut s = connect(to, timeout).map_err(|e| format!("conn {i}: connect: {e}"))?;
            let mut left = mine;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                s.write_all(&chunk[..n]).map_err(|e| {
                    format!(
                        "conn {i}: write ({} of {mine} bytes sent): {}",
                        mine - left,
                        why(e, timeout)
                    )
                })?;
                left -= n as u64;
            }
            s.shutdown(Shutdown::Write)
                .map_err(|e| format!("conn {i}: shutdown: {e}"))?;
            // Wait for the far end to close: that is when all our bytes have been consumed.
            let mut buf = [0u8; 4096];
            let mut got = 0u64;
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got += n as u64,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                    Err(e) => {
                        return Err(format!("conn {i}: waiting for close: {}", why(e, timeout)))
                    }
                }
            }
            Ok((Instant::now(), got))
        }));
    }
    start_line.wait();
    let t0 = Instant::now();
    let mut last = t0;
    let mut received = 0u64;
    for h in handles {
        match h.join() {
            Ok(Ok((end, got))) => {
                last = last.max(end);
                received += got;
            }
            Ok(Err(e)) => die(e),
            Err(_) => die("connection thread panicked"),
        }
    }
    let secs = (last - t0).as_secs_f64();
    let bps = total as f64 / secs;
    println!(
        "stream conns={conns} bytes={total} secs={secs:.3} MBps={:.1} Gbps={:.2}{}",
        bps / 1e6,
        bps * 8.0 / 1e9,
        if received > 0 {
            format!(" received={received}")
        } else {
            String::new()
        }
    );
}

fn rr(to: SocketAddr, conns: usize, secs: f64, size: usize, timeout: Duration) {
    let run = Duration::from_secs_f64(secs);
    watchdog("rr", run + timeout + Duration::from_secs(5));
    let ready = Arc::new(Barrier::new(conns + 1));
    let go = Arc::new(Barrier::new(conns + 1));
    let deadline = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut handles = Vec::with_capacity(conns);
    for i in 0..conns {
        let (ready, go, deadline) = (ready.clone(), go.clone(), deadline.clone());
        handles.push(thread::spawn(move || -> Result<Vec<u32>, String> {
            // Connect (and prove the path works) before the clock starts.
            let conn = connect(to, timeout).and_then(|s| s.set_nodelay(true).map(|_| s));
            ready.wait();
            let mut s = conn.map_err(|e| format!("conn {i}: connect: {e}"))?;
            go.wait();
            let end = *deadline.get().unwrap();
            let req: Vec<u8> = (0..size).map(|j| (i * 131 + j) as u8).collect();
            let mut resp = vec![0u8; size];
            let mut samples: Vec<u32> = Vec::with_capacity(1 << 16);
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                s.write_all(&req)
                    .map_err(|e| format!("conn {i}: write: {}", why(e, timeout)))?;
                s.read_exact(&mut resp)
                    .map_err(|e| format!("conn {i}: read: {}", why(e, timeout)))?;
                let ns = t.elapsed().as_nanos().min(u32::MAX as u128) as u32;
                if samples.is_empty() && resp != req {
                    return Err(format!("conn {i}: echo returned different bytes"));
                }
                samples.push(ns);
            }
            let _ = s.shutdown(Shutdown::Both);
            Ok(samples)
        }));
    }
    ready.wait();
    let t0 = Instant::now();
    deadline.set(t0 + run).unwrap();
    go.wait();
    let mut all: Vec<u32> = Vec::new();
    let (mut conn_min, mut conn_max) = (usize::MAX, 0usize);
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => {
                conn_min = conn_min.min(s.len());
                conn_max = conn_max.max(s.len());
                all.extend(s)
            }
            Ok(Err(e)) => die(e),
            Err(_) => die("connection thread panicked"),
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    if all.is_empty() {
        die("no round trip completed");
    }
    all.sort_unstable();
    let pct = |p: f64| {
        let idx = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        all[idx] as f64 / 1000.0
    };
    let mean = all.iter().map(|&x| x as f64).sum::<f64>() / all.len() as f64 / 1000.0;
    println!(
        "rr conns={conns} secs={secs} size={size} trips={} rps={:.0} mean_us={mean:.1} p50_us={:.1} p90_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} conn_trips_min={conn_min} conn_trips_max={conn_max}",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        *all.last().unwrap() as f64 / 1000.0,
    );
}

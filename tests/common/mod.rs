//! Shared helpers for the integration tests: start the real `ringway` binary on a config
//! the test writes, and start real backends on loopback.
//!
//! Everything is bounded in time: waits use deadlines, sockets have read/write timeouts,
//! and the proxy process is killed (by its own PID, through `Child`) when the test ends.

#![allow(dead_code)]

pub mod http_backend;
pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Upper bound for any single socket operation in a test.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the proxy may take to report that it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A unique scratch directory for one test.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ringway-test-{}-{}-{}",
        std::process::id(),
        tag,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Path of the binary under test, built by cargo for integration tests.
pub fn ringway_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ringway")
}

/// A running `ringway run` process.
pub struct Proxy {
    child: Child,
    /// The config file the proxy was started with (tests rewrite it to test reloads).
    pub config_path: PathBuf,
    /// Listener name -> actual bound address, from the ready line.
    pub listeners: Vec<(String, SocketAddr)>,
    /// Lines logged before the ready line.
    pub startup_log: Vec<String>,
    /// Lines the proxy wrote to stderr after the ready line (collected in the background).
    log: mpsc::Receiver<String>,
}

impl Proxy {
    /// Write `config` to a file and start the proxy on it with extra environment.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Proxy {
        Proxy::start_with_args(config, &[], env)
    }

    /// Like [`Proxy::start`], with extra command-line arguments after `run -c FILE`.
    pub fn start_with_args(config: &str, args: &[&str], env: &[(&str, &str)]) -> Proxy {
        Proxy::start_inner(config, args, env, Stdio::null(), None)
    }

    /// Like [`Proxy::start`], started by a shell that first lowers the soft open-file
    /// limit to `soft` (as a service manager's default would), then execs the proxy.
    pub fn start_with_soft_nofile(config: &str, soft: u64) -> Proxy {
        Proxy::start_inner(config, &[], &[], Stdio::null(), Some(soft))
    }

    /// Like [`Proxy::start`], with the proxy's stdout (the access log) going to `stdout`.
    pub fn start_with_stdout(config: &str, stdout: std::fs::File) -> Proxy {
        Proxy::start_inner(config, &[], &[], Stdio::from(stdout), None)
    }

    fn start_inner(
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdout: Stdio,
        soft_nofile: Option<u64>,
    ) -> Proxy {
        let dir = scratch_dir("proxy");
        let path = dir.join("ringway.ron");
        std::fs::write(&path, config).expect("write config");
        let mut cmd = match soft_nofile {
            None => Command::new(ringway_bin()),
            Some(soft) => {
                // exec: the shell becomes the proxy, so the child's PID is the proxy's.
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -Sn {soft} && exec \"$0\" \"$@\""))
                    .arg(ringway_bin());
                sh
            }
        };
        cmd.arg("run")
            .arg("-c")
            .arg(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn ringway");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(pos) = line.find("listeners: ") {
                        if line.contains(" ready: ") {
                            let listeners = parse_listeners(&line[pos + "listeners: ".len()..]);
                            return Proxy {
                                child,
                                config_path: path,
                                listeners,
                                startup_log: seen,
                                log: rx,
                            };
                        }
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("ringway did not become ready; stderr:\n{}", seen.join("\n"));
                }
            }
        }
    }

    /// Address of the listener called `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no listener {name} in {:?}", self.listeners))
            .1
    }

    /// The admin endpoint's address, from its startup log line.
    pub fn admin_addr(&self) -> SocketAddr {
        let line = self
            .startup_log
            .iter()
            .find(|l| l.contains("admin listening on "))
            .unwrap_or_else(|| panic!("no admin line in {:?}", self.startup_log));
        let addr = line.rsplit(' ').next().unwrap_or_default();
        addr.parse()
            .unwrap_or_else(|_| panic!("bad admin address in {line}"))
    }

    /// PID of the proxy process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `signal` (e.g. `libc::SIGTERM`) to the proxy process.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid fits i32");
        // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Wait up to `limit` for the proxy to exit; returns its exit code (None: by signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            if Instant::now() >= deadline {
                panic!(
                    "ringway did not exit within {limit:?}; log: {:?}",
                    self.drain_log()
                );
            }
            // Short: a test may check what is left right after the exit (its ports).
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Wait up to `limit` for a stderr line containing `fragment`; returns it.
    pub fn wait_log(&self, fragment: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(fragment) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {fragment:?} within {limit:?}"),
            }
        }
    }

    /// Stderr lines received so far after the ready line.
    pub fn drain_log(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    /// After the proxy exited: every stderr line not read yet, up to the end of its
    /// output (or `limit`, whichever comes first).
    pub fn log_to_end(&self, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut lines = Vec::new();
        while let Ok(line) = self
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            lines.push(line);
        }
        lines
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_listeners(s: &str) -> Vec<(String, SocketAddr)> {
    s.split_whitespace()
        .filter_map(|item| {
            let (name, addr) = item.split_once('=')?;
            Some((name.to_string(), addr.parse().ok()?))
        })
        .collect()
}

/// Connect to `addr` with the test's IO timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to proxy");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// What a test backend does with each accepted connection.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Echo every byte back until the client half-closes, then half-close too.
    Echo,
    /// Read until end-of-stream, then send `"<n> bytes\n"` followed by `extra` bytes of
    /// deterministic data, then close. Shows half-close is honoured.
    ReplyAfterEof { extra: usize },
    /// Send this backend's id (one byte) and close.
    SayId(u8),
    /// An HTTP health endpoint plus traffic: a connection whose first line starts with
    /// `GET /healthz` gets 200 (or 503 while the `sick` flag is set); any other connection
    /// is traffic: it gets the id byte and is counted in `traffic`.
    Checked {
        id: u8,
        sick: &'static AtomicBool,
        traffic: &'static AtomicUsize,
    },
    /// Read one line, answer `"first\n"`, wait `delay`, answer `"second\n"`, close: a
    /// response that is in flight for `delay`.
    SlowReply { delay: Duration },
}

/// A backend server on 127.0.0.1 with an OS-chosen port, one thread per connection.
pub struct Backend {
    pub addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    /// Start a backend with `behaviour` on 127.0.0.1.
    pub fn start(behaviour: Behaviour) -> Backend {
        Backend::start_on("127.0.0.1:0", behaviour)
    }

    /// Start a backend with `behaviour` on `bind` (e.g. `"[::1]:0"`).
    pub fn start_on(bind: &str, behaviour: Behaviour) -> Backend {
        let listener = TcpListener::bind(bind).expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepts.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                a.fetch_add(1, Ordering::Relaxed);
                std::thread::spawn(move || serve(conn, behaviour));
            }
        });
        Backend {
            addr,
            accepts,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::Relaxed)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, behaviour: Behaviour) {
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    conn.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    match behaviour {
        Behaviour::Echo => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = conn.shutdown(Shutdown::Write);
        }
        Behaviour::ReplyAfterEof { extra } => {
            let mut got = Vec::new();
            if conn.read_to_end(&mut got).is_err() {
                return;
            }
            let _ = writeln!(conn, "{} bytes", got.len());
            let _ = conn.write_all(&pattern(extra, 7));
        }
        Behaviour::SayId(id) => {
            let _ = conn.write_all(&[id]);
        }
        Behaviour::Checked { id, sick, traffic } => {
            let mut first = [0u8; 12];
            if conn.read_exact(&mut first).is_err() {
                return;
            }
            if &first == b"GET /healthz" {
                let status = if sick.load(Ordering::SeqCst) {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            } else {
                traffic.fetch_add(1, Ordering::SeqCst);
                let _ = conn.write_all(&[id]);
            }
        }
        Behaviour::SlowReply { delay } => {
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while conn.read(&mut byte).is_ok_and(|n| n == 1) && byte[0] != b'\n' {
                line.push(byte[0]);
            }
            let _ = conn.write_all(b"first\n");
            std::thread::sleep(delay);
            let _ = conn.write_all(b"second\n");
        }
    }
}

/// An address on loopback where nothing listens (bound then released).
pub fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Deterministic pseudo-random bytes (xorshift64*), so tests need no RNG crate and a
/// failure reproduces exactly.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Send `data` and read everything back until end-of-stream, concurrently (so neither side
/// blocks on a full socket buffer). Returns the bytes received.
pub fn send_and_receive_all(stream: TcpStream, data: Arc<Vec<u8>>) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(&data).expect("write through proxy");
        writer.shutdown(Shutdown::Write).expect("half-close");
    });
    let mut reader = stream;
    let mut got = Vec::new();
    reader.read_to_end(&mut got).expect("read through proxy");
    sender.join().expect("sender thread");
    got
}

/// FNV-1a over a byte slice: a cheap checksum to compare large payloads in messages.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A minimal L4 config: one TCP listener on an OS-chosen port in front of one pool.
pub fn tcp_config(
    workers: usize,
    relay: &str,
    balance: &str,
    backends: &[(SocketAddr, u32)],
    timeouts: &str,
) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|(a, w)| format!("(addr: \"{a}\", weight: {w})"))
        .collect();
    format!(
        "(\n  workers: {workers},\n  listeners: [\n    (name: \"l4\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"p\", relay: {relay}), timeouts: ({timeouts})),\n  ],\n  pools: [\n    (name: \"p\", balance: {balance}, backends: [{}]),\n  ],\n)\n",
        list.join(", ")
    )
}

/// A parsed HTTP/1.1 response from [`http_request`].
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Send one raw HTTP/1.1 request (`Connection: close`) and read the whole response.
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> HttpResponse {
    let mut s = connect(addr);
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head end in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The value of the Prometheus sample `name{labels}` (labels exactly as rendered).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

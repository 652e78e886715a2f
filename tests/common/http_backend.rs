//! A real HTTP/1.1 origin server and a keep-alive client for the L7 integration tests,
//! std only but for rustls, which lets the same server speak HTTPS.
//!
//! The server is deliberately strict (RFC 9112): a request the proxy forwards with broken
//! framing gets a 400 here instead of being guessed at, so a proxy bug fails loudly.
//! Everything is bounded in time: every socket has read/write timeouts, waits use
//! deadlines, and dropping an [`HttpBackend`] shuts its connections down so no thread
//! outlives the test by more than one socket operation.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Upper bound for any single socket operation (same value as `common::IO_TIMEOUT`; kept
/// private so `use common::*` and `use common::http_backend::*` do not clash).
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest head accepted, and longest chunk-size or trailer line.
const HEAD_LIMIT: usize = 64 * 1024;
/// Requests kept for [`HttpBackend::seen`]; older ones are forgotten (counts stay exact).
const SEEN_CAP: usize = 10_000;
/// Read and write block size for bodies; a multiple of 8 so [`HttpBehaviour::Big`] cuts
/// an 8-byte pattern word only at the very end.
const BLOCK: usize = 64 * 1024;
/// How long a closing connection keeps draining what the peer still sends: closing with
/// unread input sends RST, which can destroy the response before the peer read it.
const LINGER: Duration = Duration::from_secs(2);

/// What an [`HttpBackend`] does with each request. Every behaviour reads the whole
/// request body (streaming) before answering, unless said otherwise.
#[derive(Clone, Debug)]
pub enum HttpBehaviour {
    /// 200 with body [`hello_body`] (`"<id> <method> <target>\n"`, Content-Length) and
    /// header `x-backend: <id>`; keep-alive unless the request asks to close.
    Hello { id: String },
    /// Like `Hello` but chunked: `chunks` chunks of `chunk_len` bytes, one write each,
    /// then the last chunk and an empty trailer section; the data is [`chunked_body`].
    /// HTTP/1.0 requests get the same data with Content-Length.
    Chunked {
        id: String,
        chunks: usize,
        chunk_len: usize,
    },
    /// 200 with `len` bytes of [`pattern_bytes`]`(len, seed)`, generated while sending.
    Big { len: u64, seed: u64 },
    /// 200 with `"<len> <checksum>\n"` of the request body (never held in memory),
    /// checksum = [`stream_checksum`] (= `common::checksum`).
    Upload,
    /// Waits `delay` after reading the request, then answers like `Hello`.
    Slow { id: String, delay: Duration },
    /// Answers every request with exactly `bytes` (garbage / malformed responses), then
    /// reads the next request, or closes if `close_after`.
    Raw { bytes: Vec<u8>, close_after: bool },
    /// Reads the request head, then closes without answering (body left unread).
    CloseWithoutResponse,
    /// Answers the first request of each connection like `Hello`, then closes right after
    /// reading the next request's head without answering: a pooled connection that went
    /// stale exactly when it was reused.
    CloseOnSecond { id: String },
    /// Answers the first request like `Hello` (no `Connection: close`, so it looks
    /// reusable) and closes right after: a server keep-alive timeout of ~0.
    CloseIdleAfterFirst { id: String },
    /// A request with `Upgrade: websocket`, `Connection: upgrade` and `Sec-WebSocket-Key`
    /// gets `101 Switching Protocols` with the RFC 6455 accept value, then every raw byte
    /// is echoed until EOF. `Upgrade: websocket` without the other two gets 400; other
    /// requests get `Hello` with id `"ws"`.
    WebSocketEcho,
    /// On `Expect: 100-continue` sends `HTTP/1.1 100 Continue` first; then like `Upload`.
    Continue,
    /// Status, headers and body written verbatim, even when wrong (a body on a 204, 304
    /// or HEAD response), so tests can check what the proxy forwards. Content-Length is
    /// added only when `headers` have no framing and the status allows a body; the
    /// Connection field the request calls for only when `headers` have none. A
    /// `Connection: close` in `headers` makes the backend close after the response.
    Fixed {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
}

/// One request as the backend read it.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub method: String,
    pub target: String,
    pub version: String,
    /// In order, names as received.
    pub headers: Vec<(String, String)>,
    /// Body bytes after de-chunking (0 when `dropped`).
    pub body_len: u64,
    /// [`stream_checksum`] of the body bytes.
    pub body_checksum: u64,
    /// The body used the chunked transfer coding.
    pub chunked: bool,
    /// Trailer fields of a chunked body, in order.
    pub trailers: Vec<(String, String)>,
    /// The accepted connection that carried it: 1 for the first, as counted by
    /// [`HttpBackend::accepts`].
    pub conn_id: usize,
    /// Closed after the head without reading the body or answering
    /// (`CloseWithoutResponse`, the second request under `CloseOnSecond`).
    pub dropped: bool,
}

impl SeenRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// All values of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        find_all(&self.headers, name)
    }
}

/// A loopback HTTP/1.1 origin server, one thread per connection; stops when dropped.
pub struct HttpBackend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

struct Shared {
    /// Set: every accepted connection is TLS with this configuration.
    tls: Option<Arc<rustls::ServerConfig>>,
    behaviour: HttpBehaviour,
    state: Mutex<State>,
    /// Signalled on every accept, request and on stop: tests wait for counts and `Slow`
    /// waits for its delay without polling, and Drop cuts delays short.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    accepts: usize,
    requests: usize,
    seen: VecDeque<SeenRequest>,
    stopping: bool,
    /// Clones of the open connections, so Drop can shut them down and their threads end
    /// now instead of after a read timeout.
    open: HashMap<usize, TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until `done(state)` or `limit` passed; returns the last `done` value.
    fn wait(&self, limit: Duration, done: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        let mut state = self.state();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if done(&state) || left.is_zero() {
                return done(&state);
            }
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
    }

    fn record(&self, request: SeenRequest) {
        let mut state = self.state();
        if state.seen.len() == SEEN_CAP {
            state.seen.pop_front();
        }
        state.seen.push_back(request);
        state.requests += 1;
        self.changed.notify_all();
    }
}

impl HttpBackend {
    /// Start a backend with `behaviour` on 127.0.0.1 with an OS-chosen port.
    pub fn start(behaviour: HttpBehaviour) -> HttpBackend {
        HttpBackend::start_on("127.0.0.1:0", behaviour)
    }

    /// Start a backend with `behaviour` on `bind` (e.g. `"[::1]:0"`).
    pub fn start_on(bind: &str, behaviour: HttpBehaviour) -> HttpBackend {
        HttpBackend::start_inner(bind, behaviour, None)
    }

    /// Start an HTTPS backend on an ephemeral loopback port: the same server behind a
    /// TLS handshake with `tls`.
    pub fn start_tls(behaviour: HttpBehaviour, tls: Arc<rustls::ServerConfig>) -> HttpBackend {
        HttpBackend::start_inner("127.0.0.1:0", behaviour, Some(tls))
    }

    fn start_inner(
        bind: &str,
        behaviour: HttpBehaviour,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> HttpBackend {
        let listener = TcpListener::bind(bind).expect("bind http backend");
        let addr = listener.local_addr().unwrap();
        let (state, changed) = (Mutex::default(), Condvar::new());
        let shared = Arc::new(Shared {
            tls,
            behaviour,
            state,
            changed,
        });
        let s = shared.clone();
        let accept_thread = Some(std::thread::spawn(move || accept_loop(listener, s)));
        HttpBackend {
            addr,
            shared,
            accept_thread,
        }
    }

    /// The address the backend listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.shared.state().accepts
    }

    /// Requests read so far, `dropped` ones included. A request is recorded before its
    /// response is sent, so a client holding a response finds its request counted.
    pub fn requests(&self) -> usize {
        self.shared.state().requests
    }

    /// The most recent request.
    pub fn last_request(&self) -> Option<SeenRequest> {
        self.shared.state().seen.back().cloned()
    }

    /// All requests in the order they were read (the last 10 000).
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.shared.state().seen.iter().cloned().collect()
    }

    /// Wait up to `limit` until at least `n` connections were accepted; true if so (a
    /// client's connect returns before the backend's accept ran).
    pub fn wait_accepts(&self, n: usize, limit: Duration) -> bool {
        self.shared.wait(limit, |s| s.accepts >= n)
    }

    /// Wait up to `limit` until at least `n` requests were read; true if so.
    pub fn wait_requests(&self, n: usize, limit: Duration) -> bool {
        self.shared.wait(limit, |s| s.requests >= n)
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.shared.state().stopping = true;
        self.shared.changed.notify_all();
        // Wake the accept loop so it sees `stopping` (and drops the listener).
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        // The accept loop is gone, so every connection is registered by now.
        let threads = {
            let mut state = self.shared.state();
            for s in state.open.values() {
                let _ = s.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut state.threads)
        };
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let mut state = shared.state();
        if state.stopping {
            break;
        }
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_nodelay(true);
        state.accepts += 1;
        let id = state.accepts;
        if let Ok(clone) = stream.try_clone() {
            state.open.insert(id, clone);
        }
        let s = shared.clone();
        let stream = match &shared.tls {
            None => ConnStream::Plain(stream),
            Some(config) => match rustls::ServerConnection::new(config.clone()) {
                // The handshake happens on the connection's thread, at its first read.
                Ok(tls) => ConnStream::Tls(Box::new(rustls::StreamOwned::new(tls, stream))),
                Err(_) => continue,
            },
        };
        let conn = Conn {
            stream,
            buf: Vec::new(),
            id,
            shared: shared.clone(),
        };
        state.threads.retain(|t| !t.is_finished());
        state.threads.push(std::thread::spawn(move || {
            conn.serve();
            s.state().open.remove(&id);
        }));
        shared.changed.notify_all();
    }
}

/// A parsed, validated request head.
struct Request {
    /// What gets recorded; body fields filled in once the body was read.
    seen: SeenRequest,
    framing: Framing,
    /// The connection ends after this request (`Connection: close`, or HTTP/1.0 without
    /// keep-alive).
    close: bool,
    expect_continue: bool,
}

impl std::ops::Deref for Request {
    type Target = SeenRequest;
    fn deref(&self) -> &SeenRequest {
        &self.seen
    }
}

/// How a connection goes on after a response.
enum Next {
    /// Read the next request.
    Again,
    /// Half-close and drain briefly, like a real server closing politely.
    Linger,
    /// Close at once (misbehaviours, errors, finished upgrades).
    Drop,
}

/// An accepted connection's byte stream: plain, or TLS over it.
enum ConnStream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl ConnStream {
    fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        match self {
            ConnStream::Plain(s) => s.shutdown(how),
            ConnStream::Tls(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
                s.sock.shutdown(how)
            }
        }
    }

    fn set_read_timeout(&self, limit: Option<Duration>) -> io::Result<()> {
        match self {
            ConnStream::Plain(s) => s.set_read_timeout(limit),
            ConnStream::Tls(s) => s.sock.set_read_timeout(limit),
        }
    }
}

impl Read for ConnStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ConnStream::Plain(s) => s.read(buf),
            ConnStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for ConnStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ConnStream::Plain(s) => s.write(buf),
            ConnStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ConnStream::Plain(s) => s.flush(),
            ConnStream::Tls(s) => s.flush(),
        }
    }
}

/// One accepted connection; `buf` holds bytes read but not consumed yet (pipelining).
struct Conn {
    stream: ConnStream,
    buf: Vec<u8>,
    id: usize,
    shared: Arc<Shared>,
}

impl Conn {
    fn serve(mut self) {
        let mut answered = 0;
        loop {
            match self.exchange(answered) {
                Ok(Next::Again) => answered += 1,
                Ok(Next::Linger) => return self.linger(),
                Ok(Next::Drop) => return,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    let bad = "HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\n\
                               Connection: close\r\n\r\nbad request\n";
                    let _ = self.stream.write_all(bad.as_bytes());
                    return self.linger();
                }
                // Timeout, reset, or end of stream inside a request.
                Err(_) => return,
            }
        }
    }

    /// Read one request and answer it. `InvalidData` errors mean "answer 400".
    fn exchange(&mut self, answered: usize) -> io::Result<Next> {
        let Some(head) = read_head(&mut self.stream, &mut self.buf)? else {
            return Ok(Next::Drop); // the client closed between requests
        };
        let mut req = parse_request(&head).map_err(invalid)?;
        req.seen.conn_id = self.id;
        let shared = self.shared.clone();
        let behaviour = &shared.behaviour;
        if matches!(behaviour, HttpBehaviour::CloseWithoutResponse)
            || (matches!(behaviour, HttpBehaviour::CloseOnSecond { .. }) && answered > 0)
        {
            req.seen.dropped = true;
            shared.record(req.seen);
            return Ok(Next::Drop);
        }
        if req.expect_continue && matches!(behaviour, HttpBehaviour::Continue) {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let (mut len, mut sum) = (0u64, StreamSum::new());
        let mut sink = |data: &[u8]| {
            len += data.len() as u64;
            sum.update(data);
        };
        let trailers = read_body(&mut self.stream, &mut self.buf, req.framing, &mut sink)?;
        (req.seen.body_len, req.seen.body_checksum) = (len, sum.value());
        req.seen.trailers = trailers;
        shared.record(req.seen.clone());
        let next = if req.close { Next::Linger } else { Next::Again };
        match behaviour {
            HttpBehaviour::Hello { id } | HttpBehaviour::CloseOnSecond { id } => {
                self.hello(&req, id)?
            }
            HttpBehaviour::Slow { id, delay } => {
                if shared.wait(*delay, |s| s.stopping) {
                    return Ok(Next::Drop); // the backend is being dropped
                }
                self.hello(&req, id)?
            }
            HttpBehaviour::CloseIdleAfterFirst { id } => {
                self.hello(&req, id)?;
                return Ok(Next::Drop);
            }
            HttpBehaviour::Chunked {
                id,
                chunks,
                chunk_len,
            } => self.chunked(&req, id, *chunks, *chunk_len)?,
            HttpBehaviour::Big { len, seed } => self.big(&req, *len, *seed)?,
            HttpBehaviour::Upload | HttpBehaviour::Continue => {
                let text = format!("{len} {}\n", sum.value());
                self.reply(&req, 200, &[TEXT], text.as_bytes())?
            }
            HttpBehaviour::Raw { bytes, close_after } => {
                self.stream.write_all(bytes)?;
                if *close_after {
                    return Ok(Next::Linger);
                }
            }
            HttpBehaviour::WebSocketEcho => return self.websocket(&req),
            HttpBehaviour::Fixed {
                status,
                headers,
                body,
            } => {
                let has = |name: &str| find_header(headers, name).is_some();
                let mut fields: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let bodyless = (100..200).contains(status) || *status == 204 || *status == 304;
                let cl = body.len().to_string();
                if !has("content-length") && !has("transfer-encoding") && !bodyless {
                    fields.push(("Content-Length", &cl));
                }
                // Verbatim, even for HEAD / 204 / 304: see `Fixed`.
                let mut out = response_head(&req, *status, &fields);
                out.extend_from_slice(body);
                self.stream.write_all(&out)?;
                if has_token(headers, "connection", "close") {
                    return Ok(Next::Linger);
                }
            }
            HttpBehaviour::CloseWithoutResponse => return Ok(Next::Drop), // handled above
        }
        Ok(next)
    }

    /// A complete response with Content-Length, in one write; no body bytes for HEAD.
    fn reply(
        &mut self,
        req: &Request,
        status: u16,
        fields: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let cl = body.len().to_string();
        let mut fields = fields.to_vec();
        fields.push(("Content-Length", &cl));
        let mut out = response_head(req, status, &fields);
        if req.method != "HEAD" {
            out.extend_from_slice(body);
        }
        self.stream.write_all(&out)
    }

    fn hello(&mut self, req: &Request, id: &str) -> io::Result<()> {
        let body = hello_body(id, &req.method, &req.target);
        self.reply(req, 200, &[TEXT, ("x-backend", id)], body.as_bytes())
    }

    fn chunked(&mut self, req: &Request, id: &str, chunks: usize, len: usize) -> io::Result<()> {
        let body = chunked_body(id, &req.method, &req.target, chunks, len);
        if req.version == "HTTP/1.0" {
            // An HTTP/1.0 recipient does not know the chunked coding (RFC 9112 §6.1).
            return self.reply(req, 200, &[TEXT, ("x-backend", id)], &body);
        }
        let fields = [TEXT, ("x-backend", id), ("Transfer-Encoding", "chunked")];
        self.stream.write_all(&response_head(req, 200, &fields))?;
        if req.method == "HEAD" {
            return Ok(());
        }
        // One write per chunk, so the proxy sees them arrive separately.
        for piece in body.chunks(len.max(1)) {
            let mut out = format!("{:x}\r\n", piece.len()).into_bytes();
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
            self.stream.write_all(&out)?;
        }
        self.stream.write_all(b"0\r\n\r\n")
    }

    fn big(&mut self, req: &Request, len: u64, seed: u64) -> io::Result<()> {
        let cl = len.to_string();
        let fields = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", &cl),
        ];
        self.stream.write_all(&response_head(req, 200, &fields))?;
        let mut left = if req.method == "HEAD" { 0 } else { len };
        let (mut gen, mut block) = (Pattern::new(seed), Vec::with_capacity(BLOCK + 8));
        while left > 0 {
            let n = left.min(BLOCK as u64) as usize;
            block.clear();
            gen.fill(&mut block, n);
            self.stream.write_all(&block)?;
            left -= n as u64;
        }
        Ok(())
    }

    fn websocket(&mut self, req: &Request) -> io::Result<Next> {
        if !has_token(&req.headers, "upgrade", "websocket") {
            self.hello(req, "ws")?;
            return Ok(if req.close { Next::Linger } else { Next::Again });
        }
        let key = find_header(&req.headers, "sec-websocket-key");
        let (Some(key), true) = (key, has_token(&req.headers, "connection", "upgrade")) else {
            return Err(invalid(
                "websocket upgrade without key or Connection: upgrade",
            ));
        };
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            websocket_accept(key)
        );
        self.stream.write_all(head.as_bytes())?;
        // Bytes the client sent right behind the head belong to the upgraded stream.
        loop {
            self.stream.write_all(&self.buf)?;
            self.buf.clear();
            if fill(&mut self.stream, &mut self.buf)? == 0 {
                let _ = self.stream.shutdown(Shutdown::Write);
                return Ok(Next::Drop);
            }
        }
    }

    /// Half-close, then drain what the peer still sends for a bounded time.
    fn linger(mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let mut sink = [0u8; 4096];
        let deadline = Instant::now() + LINGER;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let _ = self
                .stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match self.stream.read(&mut sink) {
                Ok(0) => return,
                Err(e) if e.kind() != io::ErrorKind::Interrupted => return,
                _ => {}
            }
        }
    }
}

const TEXT: (&str, &str) = ("Content-Type", "text/plain");

/// Status line, `fields`, and the Connection field the request calls for (unless `fields`
/// have one), up to the empty line.
fn response_head(req: &Request, status: u16, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in fields {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    if !fields
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("connection"))
    {
        if req.close {
            out.push_str("Connection: close\r\n");
        } else if req.version == "HTTP/1.0" {
            // HTTP/1.0 closes by default: say that this connection stays open.
            out.push_str("Connection: keep-alive\r\n");
        }
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// The body `Hello`-style behaviours answer with.
pub fn hello_body(id: &str, method: &str, target: &str) -> String {
    format!("{id} {method} {target}\n")
}

/// The de-chunked body of [`HttpBehaviour::Chunked`]: [`hello_body`] repeated and cut to
/// `chunks * chunk_len` bytes.
pub fn chunked_body(
    id: &str,
    method: &str,
    target: &str,
    chunks: usize,
    chunk_len: usize,
) -> Vec<u8> {
    let hello = hello_body(id, method, target);
    hello.bytes().cycle().take(chunks * chunk_len).collect()
}

// ---------------------------------------------------------------------------------------
// Parsing shared by server and client; `buf` holds bytes read but not consumed yet.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}

/// Read more bytes onto `buf`; returns how many (0 at end of stream).
fn fill<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<usize> {
    let old = buf.len();
    buf.resize(old + BLOCK, 0);
    let result = loop {
        match r.read(&mut buf[old..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => break other,
        }
    };
    buf.truncate(old + *result.as_ref().unwrap_or(&0));
    result
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The next head without its final empty line, skipping empty lines before it (RFC 9112
/// §2.2). `Ok(None)`: clean end of stream before any byte of a head.
fn read_head<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    let mut scanned = 0;
    loop {
        while buf.starts_with(b"\r\n") {
            buf.drain(..2);
            scanned = 0;
        }
        if let Some(pos) = find(&buf[scanned..], b"\r\n\r\n") {
            let head = buf[..scanned + pos].to_vec();
            buf.drain(..scanned + pos + 4);
            return Ok(Some(head));
        }
        if buf.len() > HEAD_LIMIT {
            return Err(invalid("head too large"));
        }
        scanned = buf.len().saturating_sub(3);
        if fill(r, buf)? == 0 {
            return match buf.is_empty() {
                true => Ok(None),
                false => Err(io::ErrorKind::UnexpectedEof.into()),
            };
        }
    }
}

/// The next CRLF-terminated line, without the CRLF.
fn read_line<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    loop {
        if let Some(pos) = find(buf, b"\r\n") {
            let line = buf[..pos].to_vec();
            buf.drain(..pos + 2);
            return Ok(line);
        }
        if buf.len() > HEAD_LIMIT {
            return Err(invalid("line too long"));
        }
        if fill(r, buf)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

type Sink<'a> = &'a mut dyn FnMut(&[u8]);

/// Pass exactly `n` bytes to `sink`, streaming.
fn take<R: Read>(r: &mut R, buf: &mut Vec<u8>, mut n: u64, sink: Sink) -> io::Result<()> {
    while n > 0 {
        if buf.is_empty() && fill(r, buf)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let k = n.min(buf.len() as u64) as usize;
        sink(&buf[..k]);
        buf.drain(..k);
        n -= k as u64;
    }
    Ok(())
}

type Fields = Vec<(String, String)>;

/// Read a body with `framing`, passing the (de-chunked) data to `sink`; returns trailers.
fn read_body<R: Read>(
    r: &mut R,
    buf: &mut Vec<u8>,
    framing: Framing,
    sink: Sink,
) -> io::Result<Fields> {
    match framing {
        Framing::Length(n) => take(r, buf, n, sink)?,
        Framing::UntilClose => loop {
            sink(buf);
            buf.clear();
            if fill(r, buf)? == 0 {
                break;
            }
        },
        Framing::Chunked => loop {
            let line = read_line(r, buf)?;
            let size = parse_chunk_size(&line).ok_or_else(|| invalid("bad chunk size"))?;
            if size == 0 {
                let mut lines = Vec::new();
                loop {
                    match read_line(r, buf)? {
                        line if line.is_empty() => break,
                        line => lines.push(line),
                    }
                }
                return parse_fields(lines.iter().map(Vec::as_slice)).map_err(invalid);
            }
            take(r, buf, size, sink)?;
            if !read_line(r, buf)?.is_empty() {
                return Err(invalid("chunk data not followed by CRLF"));
            }
        },
    }
    Ok(Vec::new())
}

/// `chunk-size [BWS] [; chunk-ext]`: 1 to 16 hex digits; the extension is ignored.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let (digits, ext) = line.split_at(end);
    let digits = trim_ows(digits);
    // Checked by hand: from_str_radix alone would accept a leading '+'.
    let hex = digits.iter().all(u8::is_ascii_hexdigit);
    if !hex || digits.is_empty() || digits.len() > 16 || ext.iter().any(|&b| is_ctl(b)) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn split_lines(head: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut rest = head;
    while let Some(pos) = find(rest, b"\r\n") {
        lines.push(&rest[..pos]);
        rest = &rest[pos + 2..];
    }
    lines.push(rest);
    lines
}

/// Field lines, strictly: no obs-fold, no whitespace before the colon, token names, no
/// control characters (so a bare CR or LF inside a line is refused).
fn parse_fields<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Result<Fields, &'static str> {
    let mut fields = Vec::new();
    for line in lines {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or("field line without colon")?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err("bad field name (obs-fold or whitespace before the colon?)");
        }
        if value.iter().any(|&b| is_ctl(b)) {
            return Err("control character in field value");
        }
        let text = |s: &[u8]| String::from_utf8_lossy(s).into_owned();
        fields.push((text(name), text(value)));
    }
    Ok(fields)
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    find_all(headers, name).into_iter().next()
}

fn find_all<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    let matching = headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name));
    matching.map(|(_, v)| v.as_str()).collect()
}

/// Comma-separated list elements of all `name` fields, trimmed, empty ones skipped.
fn list_items<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    let items = find_all(headers, name)
        .into_iter()
        .flat_map(|v| v.split(','));
    items.map(str::trim).filter(|s| !s.is_empty()).collect()
}

fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    list_items(headers, name)
        .iter()
        .any(|t| t.eq_ignore_ascii_case(token))
}

/// Content-Length: every value of every field must be digits, and all must agree.
fn content_length(headers: &[(String, String)]) -> Result<Option<u64>, &'static str> {
    let mut length = None;
    for item in find_all(headers, "content-length")
        .iter()
        .flat_map(|v| v.split(','))
    {
        let item = item.trim();
        if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
            return Err("bad Content-Length");
        }
        let n: u64 = item.parse().map_err(|_| "Content-Length overflow")?;
        if length.is_some_and(|l| l != n) {
            return Err("differing Content-Length values");
        }
        length = Some(n);
    }
    Ok(length)
}

fn parse_request(head: &[u8]) -> Result<Request, &'static str> {
    let lines = split_lines(head);
    let line = std::str::from_utf8(lines[0]).map_err(|_| "request line not UTF-8")?;
    let [method, target, version] = line.split(' ').collect::<Vec<_>>()[..] else {
        return Err("request line is not METHOD SP target SP version");
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err("bad method");
    }
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("bad request target");
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err("unsupported version");
    }
    let headers = parse_fields(lines[1..].iter().copied())?;
    let hosts = find_all(&headers, "host").len();
    if hosts > 1 || (version == "HTTP/1.1" && hosts == 0) {
        return Err("missing or repeated Host");
    }
    let codings = list_items(&headers, "transfer-encoding");
    let length = content_length(&headers)?;
    let chunked = |c: &&&str| c.eq_ignore_ascii_case("chunked");
    let framing = match (codings.last(), length) {
        (None, length) => Framing::Length(length.unwrap_or(0)),
        // RFC 9112 §6.3 allows rejecting this; it is the request-smuggling combination.
        (Some(_), Some(_)) => return Err("both Transfer-Encoding and Content-Length"),
        (Some(last), None) if chunked(&last) && codings.iter().filter(chunked).count() == 1 => {
            Framing::Chunked
        }
        (Some(_), None) => return Err("transfer codings do not end in one chunked"),
    };
    let close = has_token(&headers, "connection", "close")
        || (version == "HTTP/1.0" && !has_token(&headers, "connection", "keep-alive"));
    let expect = find_header(&headers, "expect");
    let expect_continue =
        version == "HTTP/1.1" && expect.is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    Ok(Request {
        seen: SeenRequest {
            method: method.into(),
            target: target.into(),
            version: version.into(),
            headers,
            body_len: 0,
            body_checksum: stream_checksum(b""),
            chunked: framing == Framing::Chunked,
            trailers: Vec::new(),
            conn_id: 0,
            dropped: false,
        },
        framing,
        close,
        expect_continue,
    })
}

// ---------------------------------------------------------------------------------------
// Client side.

/// A response as a client read it.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub version: String,
    /// In order, names as received.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when `chunked`.
    pub body: Vec<u8>,
    pub chunked: bool,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// Status codes of the 1xx interim responses read before this one (101 is final).
    pub interim: Vec<u16>,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// All values of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        find_all(&self.headers, name)
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Read one final response (see [`HttpClient::read_response`]).
pub fn read_response_from<R: Read>(
    r: &mut R,
    buf: &mut Vec<u8>,
    head_only: bool,
) -> io::Result<Response> {
    let mut interim = Vec::new();
    loop {
        let head = read_head(r, buf)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        let lines = split_lines(&head);
        let line = String::from_utf8_lossy(lines[0]);
        let (version, rest) = line
            .split_once(' ')
            .ok_or_else(|| invalid("bad status line"))?;
        let (code, reason) = rest
            .split_at_checked(3)
            .ok_or_else(|| invalid("bad status"))?;
        let status = code
            .parse()
            .ok()
            .filter(|_| code.bytes().all(|b| b.is_ascii_digit()));
        let status: u16 = status.ok_or_else(|| invalid("bad status code"))?;
        if !version.starts_with("HTTP/1.") || !(reason.is_empty() || reason.starts_with(' ')) {
            return Err(invalid("bad status line"));
        }
        let headers = parse_fields(lines[1..].iter().copied()).map_err(invalid)?;
        if (100..200).contains(&status) && status != 101 {
            interim.push(status);
            continue;
        }
        let codings = list_items(&headers, "transfer-encoding");
        let framing = if head_only || matches!(status, 101 | 204 | 304) {
            Framing::Length(0)
        } else if let Some(last) = codings.last() {
            match last.eq_ignore_ascii_case("chunked") {
                true => Framing::Chunked,
                false => Framing::UntilClose,
            }
        } else {
            let length = content_length(&headers).map_err(invalid)?;
            length.map_or(Framing::UntilClose, Framing::Length)
        };
        let mut body = Vec::new();
        let trailers = read_body(r, buf, framing, &mut |d| body.extend_from_slice(d))?;
        let (version, chunked) = (version.to_string(), framing == Framing::Chunked);
        return Ok(Response {
            status,
            version,
            headers,
            body,
            chunked,
            trailers,
            interim,
        });
    }
}

/// Parse one response from raw bytes (e.g. from [`raw_exchange`]); an until-close body
/// runs to the end of `raw`.
pub fn parse_response(raw: &[u8], head_request: bool) -> io::Result<Response> {
    let mut reader = raw;
    read_response_from(&mut reader, &mut Vec::new(), head_request)
}

fn connect_stream(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let _ = s.set_nodelay(true);
    s
}

/// Read into `out` until end of stream or reset (true) or until `limit` passed (false).
fn read_to_close(s: &mut TcpStream, out: &mut Vec<u8>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut block = [0u8; 4096];
    let closed = loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break false;
        };
        let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match s.read(&mut block) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&block[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break false
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break true,
        }
    };
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    closed
}

/// A keep-alive HTTP/1.1 client on one connection. Methods panic on I/O errors (it is a
/// test helper), except `try_read_response` and the `is_closed` ones.
pub struct HttpClient {
    stream: TcpStream,
    /// Bytes read but not consumed yet (a pipelined response, upgraded data).
    buf: Vec<u8>,
}

impl HttpClient {
    /// Connect to `addr` with the test's IO timeouts set.
    pub fn connect(addr: SocketAddr) -> HttpClient {
        HttpClient {
            stream: connect_stream(addr),
            buf: Vec::new(),
        }
    }

    /// Write `bytes` as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    /// Write `METHOD target HTTP/1.1`, `Host: example.com` (unless `headers` have a Host),
    /// `headers` and `body`. Content-Length is added when the body is non-empty or the
    /// method is POST/PUT, unless `headers` carry Content-Length or Transfer-Encoding: then
    /// `body` is sent as it is (framed by the caller). Does not read, so it can pipeline.
    pub fn send_request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        let mut out = format!("{method} {target} HTTP/1.1\r\n");
        if !has("host") {
            out.push_str("Host: example.com\r\n");
        }
        for (k, v) in headers {
            let _ = write!(out, "{k}: {v}\r\n");
        }
        let framed = has("content-length") || has("transfer-encoding");
        if !framed && (!body.is_empty() || method == "POST" || method == "PUT") {
            let _ = write!(out, "Content-Length: {}\r\n", body.len());
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes);
    }

    /// [`HttpClient::send_request`], then read the response (no body for HEAD).
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.send_request(method, target, headers, body);
        self.read_response(method.eq_ignore_ascii_case("HEAD"))
    }

    /// Read one final response: Content-Length, chunked (de-chunked, `chunked = true`) or
    /// until-close bodies; no body when `head_request` or for 101/204/304. 1xx interim
    /// responses are skipped and listed in `interim`. After a 101 the bytes that followed
    /// stay buffered: get them with [`HttpClient::into_stream`]. Panics on errors.
    pub fn read_response(&mut self, head_request: bool) -> Response {
        self.try_read_response(head_request).unwrap_or_else(|e| {
            let buffered = String::from_utf8_lossy(&self.buf);
            panic!("reading response: {e} (buffered: {buffered:?})")
        })
    }

    /// [`HttpClient::read_response`] returning errors (e.g. the peer closed instead).
    pub fn try_read_response(&mut self, head_request: bool) -> io::Result<Response> {
        read_response_from(&mut self.stream, &mut self.buf, head_request)
    }

    /// True when the server closed the connection (end of stream or reset) within
    /// `IO_TIMEOUT`; bytes arriving meanwhile are buffered. Returns at once when closed but
    /// takes the whole timeout when not: to check that a connection stays open use
    /// [`HttpClient::is_closed_within`] with a short limit.
    pub fn is_closed(&mut self) -> bool {
        self.is_closed_within(IO_TIMEOUT)
    }

    /// Like [`HttpClient::is_closed`], waiting at most `limit`.
    pub fn is_closed_within(&mut self, limit: Duration) -> bool {
        read_to_close(&mut self.stream, &mut self.buf, limit)
    }

    /// The socket and the bytes already read from it but not consumed (e.g. the first
    /// echoed bytes after a 101).
    pub fn into_stream(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.buf)
    }
}

/// Connect, write `request`, and return everything read until end of stream, reset, or
/// `IO_TIMEOUT` in total (for error statuses after which the proxy closes).
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = connect_stream(addr);
    // A failed write (the peer closed early) still leaves its answer to read.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    read_to_close(&mut s, &mut out, IO_TIMEOUT);
    out
}

// ---------------------------------------------------------------------------------------
// Deterministic data, checksums, the WebSocket accept value.

/// `common::pattern` (xorshift64*): deterministic bytes tests can compare.
pub fn pattern_bytes(len: usize, seed: u64) -> Vec<u8> {
    super::pattern(len, seed)
}

/// The [`pattern_bytes`] generator, resumable, so `Big` never holds the whole body.
struct Pattern(u64);

impl Pattern {
    fn new(seed: u64) -> Pattern {
        Pattern(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Append the next `n` bytes; `n` must be a multiple of 8 except in the last call.
    fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        let (end, x) = (out.len() + n, &mut self.0);
        while out.len() < end {
            *x ^= *x >> 12;
            *x ^= *x << 25;
            *x ^= *x >> 27;
            out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        out.truncate(end);
    }
}

/// FNV-1a computed incrementally; equals `common::checksum` of everything fed (FNV-1a
/// goes byte by byte, so streaming and one-shot agree by construction).
#[derive(Clone, Copy, Debug)]
pub struct StreamSum(u64);

impl StreamSum {
    /// Nothing fed yet (the FNV-1a offset basis).
    pub fn new() -> StreamSum {
        StreamSum(0xcbf2_9ce4_8422_2325)
    }

    /// Feed the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The checksum of everything fed so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

impl Default for StreamSum {
    fn default() -> Self {
        StreamSum::new()
    }
}

/// One-shot [`StreamSum`]: the same value as `common::checksum`.
pub fn stream_checksum(data: &[u8]) -> u64 {
    let mut sum = StreamSum::new();
    sum.update(data);
    sum.value()
}

/// `Sec-WebSocket-Accept` for `key` (RFC 6455 §4.2.2): base64(SHA-1(key + GUID)).
pub fn websocket_accept(key: &str) -> String {
    base64(&sha1(
        format!("{}258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key.trim()).as_bytes(),
    ))
}

/// SHA-1 (FIPS 180-4), only for the WebSocket handshake.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    msg.resize(
        msg.len().next_multiple_of(64) + if msg.len() % 64 > 56 { 64 } else { 0 },
        0,
    );
    let bits = (data.len() as u64).wrapping_mul(8).to_be_bytes();
    let at = msg.len() - 8;
    msg[at..].copy_from_slice(&bits);
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, &wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e);
            (e, d, c, b, a) = (
                d,
                c,
                b.rotate_left(30),
                a,
                t.wrapping_add(k).wrapping_add(wi),
            );
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let n =
            (group.iter().enumerate()).fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            match i <= group.len() {
                true => out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize])),
                false => out.push('='),
            }
        }
    }
    out
}

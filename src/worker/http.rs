//! The L7 path: one task per client connection, proxying HTTP/1.1 requests one at a time.
//!
//! This is the thin IO shell around the pure core: [`crate::http1`] decides where every
//! message starts and ends and what its rewritten head is, [`crate::route`] picks the
//! route, [`crate::lb`] the backend. The loop here only reads, writes and waits:
//!
//! 1. read until [`parse_request_head`] has a complete head (`client_idle` for the first
//!    byte, then `client_header` for the rest: a slowloris client gets 408);
//! 2. route it; answer directly, or take a backend: the sticky cookie's, else the
//!    balancer's; reuse an idle keep-alive connection from this core's [`IdlePool`] or
//!    connect (each backend tried at most once);
//! 3. send the rewritten head and stream the body through a [`BodyTracker`], so memory
//!    stays bounded whatever the body size;
//! 4. read the response head (`upstream_response`, else 504), forward interim 1xx,
//!    switch to a byte relay on `101`, rewrite and stream the final response;
//! 5. park the upstream connection if it can carry another request, and loop for the
//!    next (possibly already pipelined) request unless either side asked to close.
//!
//! Requests on one connection are handled strictly in order, one at a time, so pipelined
//! requests are answered in order and a backend never sees more requests than the client
//! sent. Every failure ends in a generated response when nothing of the response has
//! been sent yet, and in closing the connection otherwise; none of them panics.
//!
//! [`IdlePool`]: super::upstream::IdlePool

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::core::{ActiveGuard, Core, CoreView, HttpRuntime, Tried};
use super::deadline::Deadline;
use super::read_buffers;
use super::stream::{splice_pair, Stream, TlsStream};
use super::tcp::{BackendConnect, ConnectError};
use super::upstream::IdleKey;
use crate::access_log::Entry;
use crate::config::{AccessLogFormat, HttpSettings, Listener, Sticky};
use crate::health::Passive;
use crate::http1::{
    parse_request_head, parse_response_head_for, write_client_response, write_upstream_request,
    BodyError, BodyFraming, BodyTracker, ChunkedDecoder, ForwardedProto, HeadStatus, Limits,
    Method, RequestError, RequestHead, ResponseHead, ResponseRewrite, RewriteOptions,
};
use crate::lb::hash_ip;
use crate::metrics::{ListenerStats, RouteStats};
use crate::route::{Action, IterHeaders, RequestView};

/// Spare room asked for before each read: a lent buffer's size.
const READ_CHUNK: usize = read_buffers::READ_BUFFER;
/// Room for each read of a body: larger than for heads, since bulk transfers cost a
/// system call per read. Only connections that stream a body grow to it.
const BODY_CHUNK: usize = 64 * 1024;
/// Bodies of known length at least this long are spliced (zero-copy) rather than read
/// through user space: below it the pipe setup costs more than the copy it saves.
const SPLICE_MIN: u64 = 64 * 1024;
/// Longest body of a request answered without a backend (404, 429, a direct response)
/// that is read and dropped to keep the connection; longer ones close it.
const DISCARD_MAX: u64 = 64 * 1024;
/// Body bytes already buffered behind a head that are sent with it in one write.
const COALESCE_MAX: usize = 16 * 1024;
/// Limits for response heads from backends: they are trusted more than clients, but a
/// broken one must not make us buffer without end.
const UPSTREAM_LIMITS: Limits = Limits {
    max_head_bytes: 64 * 1024,
    max_headers: crate::http1::DEFAULT_MAX_HEADERS,
    max_uri_bytes: 8 * 1024,
    max_body_bytes: None,
    max_chunk_ext_bytes: 1024,
    max_trailer_bytes: 8 * 1024,
};

/// Bytes read from one socket and not consumed yet: `buf[pos..]`.
///
/// Owned buffers, because io_uring writes into memory the kernel holds until the
/// operation completes: each read or write hands the `Vec` over and gets it back. The
/// buffer is the worker's, lent ([`read_buffers::LentBuf`]): given back by [`release`]
/// (Self::release) once an exchange leaves it empty, and when the connection ends.
struct Inbound {
    buf: read_buffers::LentBuf,
    pos: usize,
}

impl Inbound {
    /// Starting with `early` (bytes read before the HTTP driver began: past a PROXY
    /// header), or with no buffer at all until the first read brings data.
    fn new(early: Vec<u8>) -> Inbound {
        Inbound {
            buf: early.into(),
            pos: 0,
        }
    }

    /// Give the buffer back to the worker if nothing in it is left to consume: between
    /// exchanges a keep-alive connection then holds no buffer while it waits.
    fn release(&mut self) {
        if self.is_empty() {
            self.buf.give_back();
            self.pos = 0;
        }
    }

    fn data(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Forget every buffered byte (a connection whose stream can not be trusted).
    fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }

    /// Mark the first `n` buffered bytes as used.
    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            // Everything used: start over at the front, so the buffer never creeps.
            self.clear();
        }
    }

    /// Read once from `stream`, appending. `Ok(0)` is end of stream.
    async fn read_more(&mut self, stream: &mut Stream) -> io::Result<usize> {
        self.read_up_to(stream, READ_CHUNK).await
    }

    /// Read once, with room for about `room` bytes. Bodies are read in larger pieces
    /// than heads: fewer system calls per byte where bytes are many.
    async fn read_up_to(&mut self, stream: &mut Stream, room: usize) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            // No buffer (released between exchanges, or never had one): read into one
            // lent for the read, which a readiness-driven socket holds only once its
            // data is there.
            let (res, buf) = stream.read_lent().await;
            *self.buf = buf;
            self.pos = 0;
            return res;
        }
        if self.pos > 0 {
            // Move the unconsumed tail to the front (a head in progress, usually short)
            // so the buffer's spare room is at the end where the kernel writes.
            self.buf.copy_within(self.pos.., 0);
            let kept = self.buf.len() - self.pos;
            self.buf.truncate(kept);
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < room / 2 {
            self.buf.reserve(room);
        }
        let buf = std::mem::take(&mut *self.buf);
        let (res, buf) = stream.read_spare(buf).await;
        *self.buf = buf;
        res
    }

    /// Write `range` of the buffered bytes (relative to [`data`](Self::data)) to `to`
    /// without copying them, consuming nothing.
    async fn write_range(
        &mut self,
        range: std::ops::Range<usize>,
        to: &mut Stream,
    ) -> io::Result<()> {
        let (start, end) = (self.pos + range.start, self.pos + range.end);
        let buf = std::mem::take(&mut *self.buf);
        let (res, buf) = to.write_range(buf, start..end).await;
        *self.buf = buf;
        res
    }

    /// Write the first `n` buffered bytes to `to` and consume them.
    async fn forward(&mut self, n: usize, to: &mut Stream) -> io::Result<()> {
        self.write_range(0..n, to).await?;
        self.consume(n);
        Ok(())
    }
}

/// Write all of `out` to `stream`, handing the buffer back for reuse.
async fn write_out(stream: &mut Stream, out: &mut Vec<u8>) -> io::Result<()> {
    let buf = std::mem::take(out);
    let len = buf.len();
    let (res, buf) = stream.write_range(buf, 0..len).await;
    *out = buf;
    res
}

/// Whether the client connection goes on after an exchange.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Next {
    KeepAlive,
    Close,
}

/// What one exchange did, for metrics and the access log.
struct Outcome {
    status: u16,
    bytes_sent: u64,
    upstream: Option<SocketAddr>,
    /// Why ringway generated the response itself, when it did.
    reason: Option<&'static str>,
}

impl Outcome {
    fn local(status: u16, reason: Option<&'static str>) -> Outcome {
        Outcome {
            status,
            bytes_sent: 0,
            upstream: None,
            reason,
        }
    }
}

/// One client connection's buffers and settings, reused by every request on it.
struct Conn<'a> {
    core: &'a Core,
    name: &'a str,
    /// Plain TCP, or TLS that ringway terminated.
    client: Stream,
    /// The real client (after a PROXY protocol header): X-Forwarded-For, rate limits,
    /// source hashing.
    source: SocketAddr,
    cin: Inbound,
    /// The current upstream connection's unread bytes. Kept per client connection: an
    /// upstream connection is only parked when nothing of it is buffered.
    uin: Inbound,
    /// Heads written for either side, in a buffer lent by the worker for the length of
    /// an exchange: an idle connection holds none.
    out: read_buffers::LentBuf,
    stats: &'a ListenerStats,
    /// The current request's fields for the access log (when the listener has one).
    meta: LogMeta,
    /// The sticky-session `Set-Cookie` value for the current response.
    cookie: Vec<u8>,
    /// The subject of the client's verified TLS certificate (`Some(None)`: none sent),
    /// once a route asked for it.
    subject: Option<Option<String>>,
    /// Bounds every wait of this connection, on either side.
    timer: Deadline,
}

/// The request fields an access log line needs, copied out of the client buffer when
/// the head is parsed (streaming the body reuses that buffer). The copy goes into one
/// `Vec` kept for the connection's life, so it allocates nothing once warm.
#[derive(Default)]
struct LogMeta {
    buf: Vec<u8>,
    method: std::ops::Range<usize>,
    target: std::ops::Range<usize>,
    host: Option<std::ops::Range<usize>>,
    referer: Option<std::ops::Range<usize>>,
    user_agent: Option<std::ops::Range<usize>>,
    version_minor: u8,
    time: Option<std::time::SystemTime>,
}

impl LogMeta {
    fn clear(&mut self) {
        self.buf.clear();
        self.method = 0..0;
        self.target = 0..0;
        self.host = None;
        self.referer = None;
        self.user_agent = None;
        self.version_minor = 1;
        self.time = Some(std::time::SystemTime::now());
    }

    fn push(&mut self, bytes: &[u8]) -> std::ops::Range<usize> {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        start..self.buf.len()
    }

    fn record(&mut self, head: &RequestHead, data: &[u8]) {
        self.clear();
        self.method = self.push(head.method_bytes(data));
        self.target = self.push(head.target_bytes(data));
        self.host = head.host_bytes(data).map(|h| self.push(h));
        self.referer = head.header(data, "referer").map(|v| self.push(v));
        self.user_agent = head.header(data, "user-agent").map(|v| self.push(v));
        self.version_minor = head.version_minor;
    }

    fn get(&self, range: &std::ops::Range<usize>) -> &[u8] {
        self.buf.get(range.clone()).unwrap_or(&[])
    }
}

/// Serve HTTP/1.1 on an accepted client connection until it closes, as a task of its
/// own: everything it needs is owned, including what counts the connection as open
/// (`_open`, and the listener's gauge `active`), dropped after the socket.
///
/// `early` holds bytes already read (after a PROXY protocol header).
pub async fn serve(
    core: Core,
    name: Rc<str>,
    client: Stream,
    source: SocketAddr,
    early: Vec<u8>,
    _open: super::core::OpenGuard,
    active: super::tcp::OpenGauge,
) {
    // The arguments are dropped after the connection, in reverse order: the listener's
    // gauge is down before `_open` wakes a paused accept loop. None is rebound here:
    // every local kept across a wait is stored again in the connection's task.
    let mut conn = Conn {
        core: &core,
        name: &name,
        client,
        source,
        cin: Inbound::new(early),
        uin: Inbound::new(Vec::new()),
        out: read_buffers::LentBuf::default(),
        stats: &active,
        meta: LogMeta::default(),
        cookie: Vec::new(),
        subject: None,
        timer: Deadline::default(),
    };
    loop {
        let head = {
            let view = core.view();
            let Some((_, listener, settings, runtime)) = http_listener(&view, &name) else {
                return; // the listener is gone, or changed protocol, after a reload
            };
            match conn.read_head(settings).await {
                Ok(head) => head,
                Err(NoHead::Quiet) => break,
                Err(NoHead::Reject(status, why)) => {
                    conn.log_debug(listener, format_args!("{status}: {why}"));
                    conn.respond_error(status, true).await;
                    conn.meta.clear();
                    let outcome = Outcome::local(status, Some(why));
                    conn.finish(listener, runtime, None, Instant::now(), &outcome);
                    break;
                }
            }
        };
        // The view after the head arrived: waiting for it may have spanned a reload or a
        // health change, which this request must see (a keep-alive connection can live
        // much longer than one config).
        let view = core.view();
        let Some((index, listener, settings, runtime)) = http_listener(&view, &name) else {
            return;
        };
        match conn
            .exchange(&head, &view, index, listener, settings, runtime)
            .await
        {
            Next::KeepAlive if !core.is_draining() => {
                // Waiting for the next request needs no buffer (unless it is already
                // partly here, pipelined): the worker lends one when it arrives.
                conn.cin.release();
                conn.uin.release();
                conn.out.give_back();
            }
            _ => break,
        }
    }
    // Tell the client we are done writing before the socket closes, so a response it
    // has not read yet is not cut short by a reset.
    conn.client.close().await;
}

/// The `Http` listener called `name` in `view`, with its settings and this core's
/// runtime objects.
fn http_listener<'v>(
    view: &'v CoreView,
    name: &str,
) -> Option<(usize, &'v Listener, &'v HttpSettings, &'v HttpRuntime)> {
    let index = view.snapshot.listener_index(name)?;
    let listener = &view.snapshot.config.listeners[index];
    let settings = listener.protocol.http()?;
    let runtime = view.http.get(index)?.as_ref()?;
    Some((index, listener, settings, runtime))
}

/// A parsed request head with the scratch space `httparse` needs. Kept in a small
/// function so the scratch array lives on the stack only while parsing.
fn parse_head(data: &[u8], limits: &Limits) -> Result<HeadStatus<RequestHead>, RequestError> {
    if limits.max_headers <= crate::http1::DEFAULT_MAX_HEADERS {
        let mut scratch = [httparse::EMPTY_HEADER; crate::http1::DEFAULT_MAX_HEADERS];
        parse_request_head(data, limits, &mut scratch)
    } else {
        // Only listeners configured above the default pay for the larger array; it is
        // on the stack either way, so no request allocates.
        let mut scratch = [httparse::EMPTY_HEADER; crate::http1::MAX_HEADERS_LIMIT];
        parse_request_head(data, limits, &mut scratch)
    }
}

/// How reading a request head ended without a head.
enum NoHead {
    /// The client closed, or went quiet between requests: close without a word.
    Quiet,
    /// The head is invalid or incomplete in time: answer this status, then close.
    Reject(u16, &'static str),
}

impl Conn<'_> {
    /// Read the next request head; `Ok` holds the head, parsed from `cin.data()`.
    async fn read_head(&mut self, settings: &HttpSettings) -> Result<RequestHead, NoHead> {
        let mut header_deadline = None;
        loop {
            // Check: a complete head may already be buffered (pipelining).
            match parse_head(self.cin.data(), &settings.limits) {
                Ok(HeadStatus::Complete(head)) => return Ok(head),
                Ok(HeadStatus::Partial) => {}
                Err(e) => return Err(NoHead::Reject(e.status(), e.reason())),
            }
            // Parse needs more: between requests the client has `client_idle` to start,
            // then `client_header` for the whole head, however slowly it trickles.
            let now = Instant::now();
            let deadline = if self.cin.is_empty() {
                now + settings.timeouts.client_idle
            } else {
                *header_deadline.get_or_insert(now + settings.timeouts.client_header)
            };
            let started = !self.cin.is_empty();
            let read = {
                let core = self.core;
                let read = self
                    .timer
                    .until(deadline, self.cin.read_more(&mut self.client));
                if started {
                    read.await
                } else {
                    // An idle keep-alive connection closes as soon as a drain begins.
                    monoio::select! {
                        r = read => r,
                        _ = core.drained() => return Err(NoHead::Quiet),
                    }
                }
            };
            match read {
                Ok(0) => return Err(NoHead::Quiet),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut && started => {
                    return Err(NoHead::Reject(408, "request head not received in time"));
                }
                Err(_) => return Err(NoHead::Quiet),
            }
        }
    }

    /// Handle one request from head to the end of its response.
    async fn exchange(
        &mut self,
        head: &RequestHead,
        view: &Rc<CoreView>,
        index: usize,
        listener: &Listener,
        settings: &HttpSettings,
        runtime: &HttpRuntime,
    ) -> Next {
        let logging = listener.access_log != AccessLogFormat::Off;
        let started = Instant::now();
        if logging {
            self.meta.record(head, self.cin.data());
        }

        // Rate limit per request: one client may not flood the backends by reusing a
        // single keep-alive connection.
        if let Some(limiter) = &view.rate_limiters[index] {
            if !limiter.borrow_mut().allow(self.source.ip(), started) {
                self.stats
                    .rate_limited_total
                    .fetch_add(1, Ordering::Relaxed);
                self.cin.consume(head.head_len);
                let close = !self.discard_body(head, settings).await;
                self.respond_error(429, close).await;
                let outcome = Outcome::local(429, Some("client over its rate limit"));
                self.finish(listener, runtime, None, started, &outcome);
                return if close { Next::Close } else { Next::KeepAlive };
            }
        }

        // Routed in a block: the view of the request the routes read is not needed once
        // the route (and the sticky backend it implies) is known, and a local still in
        // scope at a wait is stored in the connection's task.
        let routed = {
            let data = self.cin.data();
            let headers = IterHeaders(head.headers(data).map(|f| (f.name, f.value)));
            let request = RequestView {
                method: head.method_bytes(data),
                host: head.host_bytes(data),
                target: head.target_bytes(data),
                headers: &headers,
            };
            runtime.routes.lookup(&request).map(|(route, action)| {
                let sticky = match action {
                    Action::Proxy { pool, .. } => sticky_backend(view, *pool, &request),
                    Action::Respond { .. } => None,
                };
                (route, action, sticky)
            })
        };
        let Some((route, action, sticky)) = routed else {
            self.cin.consume(head.head_len);
            let close = !self.discard_body(head, settings).await;
            self.respond_error(404, close).await;
            self.finish(
                listener,
                runtime,
                None,
                started,
                &Outcome::local(404, Some("no route")),
            );
            return if close { Next::Close } else { Next::KeepAlive };
        };
        match action {
            Action::Respond {
                status,
                body,
                content_type,
            } => {
                let is_head = head.method == Method::Head;
                self.cin.consume(head.head_len);
                let close = !self.discard_body(head, settings).await;
                self.out.start();
                write_direct(&mut self.out, *status, content_type, body, close, is_head);
                let ok = self
                    .timer
                    .within(
                        settings.timeouts.client_idle,
                        write_out(&mut self.client, &mut self.out),
                    )
                    .await
                    .is_ok();
                let sent = if is_head { 0 } else { body.len() as u64 };
                let outcome = Outcome {
                    status: *status,
                    bytes_sent: sent,
                    upstream: None,
                    reason: None,
                };
                self.finish(listener, runtime, Some(route), started, &outcome);
                if close || !ok {
                    Next::Close
                } else {
                    Next::KeepAlive
                }
            }
            Action::Proxy {
                pool,
                request: request_edits,
                response: response_edits,
                client_subject,
            } => {
                let exchange = Proxied {
                    head,
                    pool: *pool,
                    sticky,
                    request_edits,
                    response_edits,
                    subject_header: client_subject.as_deref(),
                };
                let (next, outcome) = self.proxy(view, listener, settings, &exchange).await;
                self.finish(listener, runtime, Some(route), started, &outcome);
                next
            }
        }
    }

    /// Read and drop the body of a request answered without a backend (head already
    /// consumed), so the connection can carry the next request. True when the connection
    /// may go on: the client keeps it alive and the body, if any, was at most
    /// [`DISCARD_MAX`] bytes, well framed and sent in time. Otherwise the caller answers
    /// with `Connection: close` and closes: reading a large body only to drop it would be
    /// work for nothing, and a client waiting on `100-continue` sends none.
    async fn discard_body(&mut self, head: &RequestHead, settings: &HttpSettings) -> bool {
        if !head.keep_alive || head.expect_continue {
            return false;
        }
        let mut tracker = BodyTracker::new(head.framing, &settings.limits);
        if tracker.remaining_length().is_some_and(|n| n > DISCARD_MAX) {
            return false;
        }
        let deadline = Instant::now() + settings.timeouts.client_header;
        let mut dropped = 0u64;
        loop {
            if !self.cin.is_empty() || tracker.is_done() {
                match tracker.feed(self.cin.data()) {
                    Ok((n, done)) => {
                        self.cin.consume(n);
                        dropped += n as u64;
                        if done {
                            return true;
                        }
                    }
                    Err(_) => return false,
                }
            }
            if dropped > DISCARD_MAX {
                return false; // a long chunked body
            }
            match self
                .timer
                .until(deadline, self.cin.read_more(&mut self.client))
                .await
            {
                Ok(n) if n > 0 => {}
                _ => return false,
            }
        }
    }

    /// Record one finished exchange: per-route counters, the latency histogram, and the
    /// access log.
    fn finish(
        &self,
        listener: &Listener,
        runtime: &HttpRuntime,
        route: Option<usize>,
        started: Instant,
        outcome: &Outcome,
    ) {
        let stats: &RouteStats = match route.and_then(|r| runtime.route_stats.get(r)) {
            Some(s) => s,
            None => &runtime.unrouted,
        };
        stats.count(outcome.status);
        let elapsed = started.elapsed();
        self.core.record_request(runtime.request_slot, elapsed);
        if listener.access_log == AccessLogFormat::Off {
            return;
        }
        let meta = &self.meta;
        let route_label = match (route, listener.protocol.http()) {
            (Some(r), Some(h)) => h.routes.names.get(r).map_or("", String::as_str),
            _ => "",
        };
        let entry = Entry {
            client: self.source.ip(),
            time: meta.time.unwrap_or_else(std::time::SystemTime::now),
            method: meta.get(&meta.method),
            target: meta.get(&meta.target),
            version_minor: meta.version_minor,
            status: outcome.status,
            bytes_sent: outcome.bytes_sent,
            referer: meta.referer.as_ref().map(|r| meta.get(r)),
            user_agent: meta.user_agent.as_ref().map(|r| meta.get(r)),
            host: meta.host.as_ref().map(|r| meta.get(r)),
            listener: &listener.name,
            route: route_label,
            upstream: outcome.upstream,
            duration: elapsed,
            reason: outcome.reason,
        };
        self.core.access_log().log(listener.access_log, &entry);
    }

    fn log_debug(&self, listener: &Listener, what: std::fmt::Arguments<'_>) {
        crate::log::debug(format_args!(
            "listener {}: {}: {what}",
            listener.name, self.source
        ));
    }

    /// Send a generated error response; failures to write are ignored (the client is
    /// going away, or is about to be closed anyway).
    async fn respond_error(&mut self, status: u16, close: bool) {
        self.out.start();
        write_error(&mut self.out, status, close);
        let _ = self
            .timer
            .within(
                Duration::from_secs(5),
                write_out(&mut self.client, &mut self.out),
            )
            .await;
    }
}

/// The parts of a routed request that the proxying steps need.
struct Proxied<'r> {
    /// Borrowed, not copied: a copy would be stored again in every connection's task.
    head: &'r RequestHead,
    pool: usize,
    /// The backend the request's sticky cookie names, if usable.
    sticky: Option<StickyChoice>,
    request_edits: &'r crate::route::HeaderEdits,
    response_edits: &'r crate::route::HeaderEdits,
    /// The field that carries the client certificate's subject, if the route sends it.
    subject_header: Option<&'r str>,
}

/// What the sticky cookie said.
#[derive(Clone, Copy)]
struct StickyChoice {
    /// The backend it names, when that backend can take the request.
    backend: Option<usize>,
}

/// The sticky state of a request to `pool`: `None` when the pool is not sticky.
fn sticky_backend(view: &CoreView, pool: usize, request: &RequestView<'_>) -> Option<StickyChoice> {
    let Some(Sticky::Cookie { name }) = &view.snapshot.config.pools[pool].sticky else {
        return None;
    };
    let runtime = &view.pools[pool];
    let state = &view.snapshot.pools[pool];
    let backend = request.cookie(name).and_then(|value| {
        let i = runtime.tokens.iter().position(|t| t[..] == *value)?;
        (state.usable[i] && runtime.active[i].get() < runtime.caps[i]).then_some(i)
    });
    Some(StickyChoice { backend })
}

/// Write into `out` the `Set-Cookie` value pinning the client to `backend`, when the
/// pool is sticky and the request did not already carry the right cookie; says whether
/// it did. `out` is the connection's own buffer, so this allocates nothing once warm.
fn sticky_cookie(view: &CoreView, req: &Proxied<'_>, backend: usize, out: &mut Vec<u8>) -> bool {
    let Some(sticky) = req.sticky else {
        return false;
    };
    let Some(Sticky::Cookie { name }) = &view.snapshot.config.pools[req.pool].sticky else {
        return false;
    };
    if sticky.backend == Some(backend) {
        return false;
    }
    out.clear();
    crate::route::sticky_set_cookie(name, &view.pools[req.pool].tokens[backend], out);
    true
}

/// A backend connection held for one exchange.
///
/// No `Drop` of its own, so the stream can be moved out (to the idle pool, or into a
/// relay) while the guards still end the exchange's load when the rest is dropped.
struct Lease {
    /// Counts the exchange as load on its backend (least connections, connection
    /// limits). Declared before `end`, so it is released before queued requests wake.
    load: ActiveGuard,
    _end: LeaseEnd,
    addr: SocketAddr,
    stream: Stream,
    /// Taken from the idle pool rather than freshly connected.
    reused: bool,
}

impl Lease {
    fn report(&self, core: &Core, event: Passive) {
        self.load.report(core, event);
    }
}

/// The end of a lease: the backend's open-connections gauge goes down, and requests
/// queued because every backend was at its limit may go on.
struct LeaseEnd {
    core: Core,
    view: Rc<CoreView>,
    pool: usize,
    backend: usize,
}

impl LeaseEnd {
    fn new(core: &Core, view: &Rc<CoreView>, pool: usize, backend: usize) -> LeaseEnd {
        // Relaxed: only this core writes the gauge.
        let gauge = &view.pools[pool].stats[backend].active_connections;
        gauge.fetch_add(1, Ordering::Relaxed);
        LeaseEnd {
            core: core.clone(),
            view: view.clone(),
            pool,
            backend,
        }
    }
}

impl Drop for LeaseEnd {
    fn drop(&mut self) {
        let gauge = &self.view.pools[self.pool].stats[self.backend].active_connections;
        gauge.fetch_sub(1, Ordering::Relaxed);
        self.core.wake_slot_waiters();
    }
}

/// Whether a request may go over a parked keep-alive connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reuse {
    /// Yes, without checking it first (the request can be retried if it was stale).
    Trusted,
    /// Yes, once a peek shows the server has not closed it.
    Checked,
    /// No: a new connection (the retry after a stale one).
    Fresh,
}

/// Why no backend connection could be had.
enum NoBackend {
    /// None usable (down, drained, or all at their limit past the queue time): 503.
    Unavailable,
    /// Every usable backend was tried and none answered: 502.
    Failed,
}

/// How reading a response head ended without one.
enum NoResponse {
    /// Nothing arrived within `upstream_response`: 504.
    Timeout,
    /// The connection ended (or failed) before a complete head; `nothing` when not a
    /// byte of the response had arrived (a stale keep-alive connection looks like this).
    Closed { nothing: bool },
    /// The head is malformed: 502, and the connection is not reused.
    Malformed,
}

impl Conn<'_> {
    /// Get a connection to a backend of `pool`: the sticky one first, else the
    /// balancer's choice; an idle parked connection when one is fit, else a new one.
    async fn acquire(
        &mut self,
        view: &Rc<CoreView>,
        listener: &Listener,
        pool: usize,
        preferred: Option<usize>,
        tried: &mut Tried,
        reuse: Reuse,
    ) -> Result<Lease, NoBackend> {
        let key = hash_ip(self.source.ip());
        let backends = &view.snapshot.config.pools[pool].backends;
        let connect_timeout = listener.timeouts.connect;
        let queue_deadline = Instant::now() + connect_timeout;
        let mut preferred = preferred.filter(|&i| !tried.contains(i));
        let mut attempted = false;
        loop {
            let index = match preferred.take() {
                Some(i) => {
                    tried.insert(i);
                    i
                }
                None => match view.pick(pool, key, tried) {
                    Some(i) => i,
                    None if !attempted && self.all_full(view, pool, tried) => {
                        // Every usable backend is at its connection limit: wait in line
                        // for a slot rather than failing at once, up to the connect
                        // timeout, then 503.
                        let core = self.core;
                        let freed = async {
                            core.backend_slot_freed().await;
                            Ok(())
                        };
                        if Instant::now() >= queue_deadline
                            || self.timer.until(queue_deadline, freed).await.is_err()
                        {
                            return Err(NoBackend::Unavailable);
                        }
                        continue;
                    }
                    None if attempted => return Err(NoBackend::Failed),
                    None => return Err(NoBackend::Unavailable),
                },
            };
            attempted = true;
            // Counted as load from the first attempt, so concurrent requests on this
            // core see it while the handshake is in flight.
            let load = ActiveGuard::new(view.clone(), pool, index);
            let addr = backends[index].addr;
            let key = IdleKey {
                addr,
                tls: view.snapshot.config.pools[pool]
                    .tls
                    .as_ref()
                    .map_or(0, |t| t.identity),
            };
            let parked = match reuse {
                Reuse::Fresh => None,
                Reuse::Trusted => self.core.idle_pool().take(key, Instant::now(), false),
                Reuse::Checked => self.core.idle_pool().take(key, Instant::now(), true),
            };
            let (stream, reused) = match parked {
                Some(stream) => (stream, true),
                None => {
                    // Timed with the connection's timer: a timeout of its own would put
                    // a timer entry (640 bytes) in every connection's future.
                    let attempt = BackendConnect::start(view, pool, index, connect_timeout);
                    let result = self
                        .timer
                        .within(
                            connect_timeout,
                            monoio::net::TcpStream::connect_addr(attempt.addr),
                        )
                        .await
                        .map_err(ConnectError::from_timed);
                    let Some(tcp) = attempt.settle(self.core, view, result) else {
                        continue;
                    };
                    match upstream_stream(self.core, view, pool, index, tcp, connect_timeout).await
                    {
                        Some(stream) => (stream, false),
                        None => continue,
                    }
                }
            };
            return Ok(Lease {
                load,
                _end: LeaseEnd::new(self.core, view, pool, index),
                addr,
                stream,
                reused,
            });
        }
    }

    /// Whether some backend of `pool` would be usable but for its connection limit.
    fn all_full(&self, view: &CoreView, pool: usize, tried: &Tried) -> bool {
        let runtime = &view.pools[pool];
        let state = &view.snapshot.pools[pool];
        (0..state.usable.len()).any(|i| {
            state.usable[i] && !tried.contains(i) && runtime.active[i].get() >= runtime.caps[i]
        })
    }

    /// Read from the upstream until a complete response head is buffered in `uin`.
    async fn read_response_head(
        &mut self,
        lease: &mut Lease,
        method: Method,
        deadline: Instant,
    ) -> Result<ResponseHead, NoResponse> {
        let mut got_any = !self.uin.is_empty();
        loop {
            if !self.uin.is_empty() {
                let mut scratch = [httparse::EMPTY_HEADER; crate::http1::DEFAULT_MAX_HEADERS];
                match parse_response_head_for(
                    self.uin.data(),
                    method,
                    &UPSTREAM_LIMITS,
                    &mut scratch,
                ) {
                    Ok(HeadStatus::Complete(head)) => return Ok(head),
                    Ok(HeadStatus::Partial) => {}
                    Err(_) => return Err(NoResponse::Malformed),
                }
            }
            match self
                .timer
                .until(deadline, self.uin.read_more(&mut lease.stream))
                .await
            {
                Ok(0) => return Err(NoResponse::Closed { nothing: !got_any }),
                Ok(_) => got_any = true,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(NoResponse::Timeout),
                Err(_) => return Err(NoResponse::Closed { nothing: !got_any }),
            }
        }
    }

    /// Write the request head as the upstream gets it into `out` (hop-by-hop headers
    /// removed, forwarding headers and the route's edits applied), consume it from the
    /// client's bytes, and return its length.
    ///
    /// A plain function, not inline in `proxy`: the rewrite's options and the borrowed
    /// header lists it needs would otherwise be stored in `proxy`'s future across all of
    /// its waits, and so in every connection's task.
    fn write_request_head(&mut self, req: &Proxied<'_>) -> usize {
        let head = req.head;
        self.out.start();
        let proto = if self.client.is_tls() {
            ForwardedProto::Https
        } else {
            ForwardedProto::Http
        };
        // The client certificate's subject: whatever the client sent under that name is
        // removed either way, so only a verified certificate can put it there.
        if req.subject_header.is_some() && self.subject.is_none() {
            // Worked out once per connection: the certificate can not change.
            let server = self.client.tls().and_then(TlsStream::server);
            self.subject = Some(server.and_then(crate::tls::client_subject));
        }
        let subject = self.subject.as_ref().and_then(|s| s.as_deref());
        let subject_set;
        let subject_remove;
        let (set_headers, remove_headers): (&[(&str, &str)], &[&str]) =
            match (req.subject_header, subject) {
                (Some(name), Some(value)) => {
                    subject_set = [(name, value)];
                    subject_remove = [name];
                    (&subject_set, &subject_remove)
                }
                (Some(name), None) => {
                    subject_remove = [name];
                    (&[], &subject_remove)
                }
                (None, _) => (&[], &[]),
            };
        let opts = RewriteOptions {
            client_addr: Some(self.source.ip()),
            proto: Some(proto),
            default_host: "localhost",
            set_headers,
            remove_headers,
            connection_close: false,
            edits: Some(req.request_edits),
        };
        write_upstream_request(head, self.cin.data(), &mut self.out, &opts);
        self.cin.consume(head.head_len);
        self.out.len()
    }

    /// Proxy one routed request to its pool and stream the response back.
    async fn proxy(
        &mut self,
        view: &Rc<CoreView>,
        listener: &Listener,
        settings: &HttpSettings,
        req: &Proxied<'_>,
    ) -> (Next, Outcome) {
        let head = req.head;
        let idle = listener.timeouts.idle;
        let client_keep_alive = head.keep_alive;
        let has_body = head.framing != BodyFraming::None;
        // A request may be sent again on a fresh connection only when nothing of it can
        // have been acted on: a safe method without a body (RFC 9110 §9.2.2).
        let retryable = !has_body
            && matches!(
                head.method,
                Method::Get | Method::Head | Method::Options | Method::Trace
            );

        // The rewritten head goes into `out` once; a retry resends the same bytes.
        let head_len = self.write_request_head(req);

        let mut tracker = BodyTracker::new(head.framing, &settings.limits);
        let mut tried = Tried::default();
        // A retryable request can trust a parked connection: if it went stale, the request
        // goes again on a fresh one. Others have it checked first.
        let mut reuse = if retryable {
            Reuse::Trusted
        } else {
            Reuse::Checked
        };
        let preferred = req.sticky.and_then(|s| s.backend);
        // One `lease` slot for every attempt, not one per attempt and one for the loop's
        // result: a future keeps each such local, and so does every connection's task.
        let mut lease: Lease;
        let mut response = loop {
            lease = match self
                .acquire(view, listener, req.pool, preferred, &mut tried, reuse)
                .await
            {
                Ok(lease) => lease,
                Err(NoBackend::Unavailable) => {
                    return self
                        .fail(503, "no backend available", has_body || !client_keep_alive)
                        .await
                }
                Err(NoBackend::Failed) => {
                    return self
                        .fail(502, "no backend answered", has_body || !client_keep_alive)
                        .await
                }
            };
            // Body bytes that came with the head go out in the same write.
            self.out.truncate(head_len);
            let mut body_done = tracker.is_done();
            if !body_done && !self.cin.is_empty() {
                match tracker.feed(self.cin.data()) {
                    Ok((n, done)) if n <= COALESCE_MAX => {
                        self.out.extend_from_slice(&self.cin.data()[..n]);
                        self.cin.consume(n);
                        body_done = done;
                    }
                    Ok(_) => {
                        // Too much to copy: restart the tracker and stream it below.
                        tracker = BodyTracker::new(head.framing, &settings.limits);
                    }
                    Err(e) => return self.reject_body(e).await,
                }
            }
            // A new upstream connection (or a retry) starts with nothing read from it.
            self.uin.clear();
            let sent = self
                .timer
                .within(idle, write_out(&mut lease.stream, &mut self.out))
                .await;
            if sent.is_err() {
                if lease.reused && retryable {
                    reuse = Reuse::Fresh;
                    tried = Tried::default();
                    // Closed before the next connection is chosen, as it always was.
                    drop(lease);
                    continue;
                }
                lease.report(self.core, Passive::Reset);
                return self.fail(502, "upstream write failed", true).await;
            }
            if !body_done {
                // `Expect: 100-continue` with the body not sent yet: the backend answers
                // first, either 100 (send the body) or a final status (don't).
                if head.expect_continue && self.cin.is_empty() {
                    let deadline = Instant::now() + settings.timeouts.upstream_response;
                    match self
                        .read_response_head(&mut lease, head.method, deadline)
                        .await
                    {
                        Ok(resp) if resp.is_interim() => {
                            if self.forward_interim(&resp, idle).await.is_err() {
                                return (Next::Close, Outcome::local(499, Some("client gone")));
                            }
                        }
                        Ok(resp) => break Ok((resp, false)),
                        Err(e) => break Err(e),
                    }
                }
                if let Err(outcome) = self
                    .stream_request_body(&mut lease, &mut tracker, idle)
                    .await
                {
                    return outcome;
                }
            }
            let deadline = Instant::now() + settings.timeouts.upstream_response;
            match self
                .read_response_head(&mut lease, head.method, deadline)
                .await
            {
                Err(NoResponse::Closed { nothing: true }) if lease.reused && retryable => {
                    // A parked connection the server had closed: try once more, fresh.
                    reuse = Reuse::Fresh;
                    tried = Tried::default();
                    drop(lease);
                    continue;
                }
                res => break res.map(|r| (r, true)),
            }
        };

        // Interim responses first, then the final one.
        let (resp, body_sent) = loop {
            match response {
                Ok((resp, sent)) if resp.is_interim() => {
                    if self.forward_interim(&resp, idle).await.is_err() {
                        return (Next::Close, Outcome::local(499, Some("client gone")));
                    }
                    let deadline = Instant::now() + settings.timeouts.upstream_response;
                    response = self
                        .read_response_head(&mut lease, head.method, deadline)
                        .await
                        .map(|r| (r, sent));
                }
                Ok(final_response) => break final_response,
                Err(NoResponse::Timeout) => {
                    lease.report(self.core, Passive::Timeout);
                    return self.fail(504, "upstream response timed out", true).await;
                }
                Err(NoResponse::Closed { .. }) => {
                    lease.report(self.core, Passive::Reset);
                    return self
                        .fail(502, "upstream closed without a response", true)
                        .await;
                }
                Err(NoResponse::Malformed) => {
                    lease.report(self.core, Passive::Reset);
                    return self.fail(502, "malformed upstream response", true).await;
                }
            }
        };
        lease.report(
            self.core,
            if resp.status >= 500 {
                Passive::Upstream5xx
            } else {
                Passive::Success
            },
        );

        if resp.is_switching_protocols() {
            // Boxed: the relay's future is large, and inline it would make every
            // request's future as large, copied as it moves into place.
            return Box::pin(self.upgrade(lease, &resp, head.upgrade, idle, listener)).await;
        }

        // The client's connection goes on unless it asked to close, its request body was
        // not read whole, the response body ends at close, or we are stopping.
        let dechunk = head.version_minor == 0 && resp.framing == BodyFraming::Chunked;
        let close = !client_keep_alive
            || !body_sent
            || resp.framing == BodyFraming::UntilClose
            || dechunk
            || self.core.is_draining();
        let set_cookie = sticky_cookie(view, req, lease.load.backend(), &mut self.cookie)
            .then_some(&self.cookie[..]);
        self.out.start();
        let rewrite = ResponseRewrite {
            edits: Some(req.response_edits),
            set_cookie,
            head_request: head.method == Method::Head,
            connection_close: close,
            keep_alive_1_0: !close && head.version_minor == 0,
            dechunk,
        };
        write_client_response(&resp, self.uin.data(), &mut self.out, &rewrite);
        self.uin.consume(resp.head_len);
        let status = resp.status;
        let upstream = Some(lease.addr);
        let streamed = self
            .stream_response_body(&mut lease, resp.framing, dechunk, idle)
            .await;
        let (complete, bytes_sent) = match streamed {
            Ok(n) => (true, n),
            Err(n) => (false, n),
        };
        // Park the upstream connection when it can carry another request: the response
        // was read whole, the backend keeps it open, and nothing else arrived.
        let pool_cfg = &view.snapshot.config.pools[req.pool];
        if complete && resp.keep_alive && body_sent && self.uin.is_empty() {
            {
                let key = IdleKey {
                    addr: lease.addr,
                    tls: pool_cfg.tls.as_ref().map_or(0, |t| t.identity),
                };
                self.core.idle_pool().put(
                    key,
                    lease.stream,
                    Instant::now(),
                    pool_cfg.keepalive.idle,
                    pool_cfg.keepalive.max_idle,
                );
            }
        } else {
            self.uin.clear();
        }
        let next = if close || !complete {
            Next::Close
        } else {
            Next::KeepAlive
        };
        (
            next,
            Outcome {
                status,
                bytes_sent,
                upstream,
                reason: None,
            },
        )
    }

    /// Stream the rest of the request body from the client to the upstream.
    async fn stream_request_body(
        &mut self,
        lease: &mut Lease,
        tracker: &mut BodyTracker,
        idle: Duration,
    ) -> Result<(), (Next, Outcome)> {
        loop {
            if !self.cin.is_empty() {
                let (n, done) = match tracker.feed(self.cin.data()) {
                    Ok(v) => v,
                    Err(e) => return Err(self.reject_body(e).await),
                };
                if n > 0 {
                    let written = self
                        .timer
                        .within(idle, self.cin.forward(n, &mut lease.stream))
                        .await;
                    self.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    if written.is_err() {
                        lease.report(self.core, Passive::Reset);
                        return Err(self.fail(502, "upstream write failed", true).await);
                    }
                }
                if done {
                    return Ok(());
                }
            }
            // Nothing buffered and a large part of a body of known length still to come:
            // move it inside the kernel (socket, pipe, socket) instead of through user
            // space.
            if let Some(left) = tracker.remaining_length().filter(|&n| n >= SPLICE_MIN) {
                let (client, upstream, moved) =
                    (&mut self.client, &mut lease.stream, &self.stats.bytes_in);
                let timer = &mut self.timer;
                let spliced =
                    splice_body(self.core, client, upstream, left, idle, timer, moved).await;
                match spliced {
                    Some(Ok(())) => {
                        *tracker = BodyTracker::new(BodyFraming::None, &UPSTREAM_LIMITS);
                        return Ok(());
                    }
                    // Either side may have failed; the exchange can not go on. If it was
                    // the backend, the client still hears why.
                    Some(Err(_)) => {
                        return Err(self.fail(502, "request body relay failed", true).await)
                    }
                    None => {}
                }
            }
            match self
                .timer
                .within(idle, self.cin.read_up_to(&mut self.client, BODY_CHUNK))
                .await
            {
                Ok(n) if n > 0 => self.client.push_ack(),
                _ => {
                    // The client went away (or stalled) mid-body: nothing to answer.
                    return Err((
                        Next::Close,
                        Outcome::local(400, Some("client body incomplete")),
                    ));
                }
            }
        }
    }

    /// Stream the response body to the client. `Ok(bytes)` when it was read whole,
    /// `Err(bytes)` when either side failed midway (the client is then closed).
    async fn stream_response_body(
        &mut self,
        lease: &mut Lease,
        framing: BodyFraming,
        dechunk: bool,
        idle: Duration,
    ) -> Result<u64, u64> {
        let mut sent = 0u64;
        let mut tracker = BodyTracker::new(framing, &UPSTREAM_LIMITS);
        let mut decoder = dechunk.then(ChunkedDecoder::new);
        // Body bytes already read with the head go out with it, in one write.
        if !dechunk && !tracker.is_done() && !self.uin.is_empty() {
            if let Ok((n, _)) = tracker.clone().feed(self.uin.data()) {
                if n <= COALESCE_MAX {
                    let (n, _) = tracker.feed(self.uin.data()).map_err(|_| sent)?;
                    self.out.extend_from_slice(&self.uin.data()[..n]);
                    self.uin.consume(n);
                    sent += n as u64;
                }
            }
        }
        if self
            .timer
            .within(idle, write_out(&mut self.client, &mut self.out))
            .await
            .is_err()
        {
            return Err(sent);
        }
        self.stats
            .bytes_out
            .fetch_add(self.out.len() as u64, Ordering::Relaxed);
        loop {
            if let Some(decoder) = decoder.as_mut() {
                if decoder.is_done() {
                    return Ok(sent);
                }
            } else if tracker.is_done() {
                return Ok(sent);
            }
            if !self.uin.is_empty() {
                if let Some(decoder) = decoder.as_mut() {
                    let progress = decoder.feed(self.uin.data()).map_err(|_| sent)?;
                    if let Some(span) = progress.data {
                        self.timer
                            .within(
                                idle,
                                self.uin.write_range(span.start..span.end, &mut self.client),
                            )
                            .await
                            .map_err(|_| sent)?;
                        sent += span.len() as u64;
                    }
                    self.uin.consume(progress.consumed);
                    if progress.consumed > 0 || progress.done {
                        continue;
                    }
                } else {
                    let (n, _) = tracker.feed(self.uin.data()).map_err(|_| sent)?;
                    if n > 0 {
                        self.timer
                            .within(idle, self.uin.forward(n, &mut self.client))
                            .await
                            .map_err(|_| sent)?;
                        sent += n as u64;
                        self.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                        continue;
                    }
                }
            }
            let long = tracker.remaining_length().filter(|&n| n >= SPLICE_MIN);
            if let (None, Some(left)) = (&decoder, long) {
                let (upstream, client, moved) =
                    (&mut lease.stream, &mut self.client, &self.stats.bytes_out);
                let timer = &mut self.timer;
                match splice_body(self.core, upstream, client, left, idle, timer, moved).await {
                    Some(Ok(())) => return Ok(sent + left),
                    Some(Err(_)) => {
                        lease.report(self.core, Passive::Reset);
                        return Err(sent);
                    }
                    None => {}
                }
            }
            match self
                .timer
                .within(idle, self.uin.read_up_to(&mut lease.stream, BODY_CHUNK))
                .await
            {
                Ok(0) => {
                    // End of stream: the end of an until-close body, else a truncation.
                    return if decoder.is_none() && tracker.eof() {
                        Ok(sent)
                    } else {
                        lease.report(self.core, Passive::Reset);
                        Err(sent)
                    };
                }
                Ok(_) => lease.stream.push_ack(),
                Err(_) => return Err(sent),
            }
        }
    }

    /// Forward an interim (1xx) response head as received; it has no body.
    async fn forward_interim(&mut self, resp: &ResponseHead, idle: Duration) -> io::Result<()> {
        let n = resp.head_len;
        self.timer
            .within(idle, self.uin.forward(n, &mut self.client))
            .await
    }

    /// A `101 Switching Protocols`: pass it on, then relay raw bytes both ways.
    async fn upgrade(
        &mut self,
        mut lease: Lease,
        resp: &ResponseHead,
        requested: bool,
        idle: Duration,
        listener: &Listener,
    ) -> (Next, Outcome) {
        if !requested {
            // A switch nobody asked for: the stream is no longer HTTP we can follow.
            lease.report(self.core, Passive::Reset);
            return self
                .fail(502, "upstream switched protocols unasked", true)
                .await;
        }
        self.out.start();
        write_client_response(
            resp,
            self.uin.data(),
            &mut self.out,
            &ResponseRewrite::default(),
        );
        self.uin.consume(resp.head_len);
        // Bytes either side sent right after the switch belong to the new protocol.
        self.out.extend_from_slice(self.uin.data());
        self.uin.consume(self.uin.data().len());
        let outcome = Outcome {
            status: 101,
            bytes_sent: 0,
            upstream: Some(lease.addr),
            reason: None,
        };
        if self
            .timer
            .within(idle, write_out(&mut self.client, &mut self.out))
            .await
            .is_err()
        {
            return (Next::Close, outcome);
        }
        if !self.cin.is_empty() {
            let n = self.cin.data().len();
            if self
                .timer
                .within(idle, self.cin.forward(n, &mut lease.stream))
                .await
                .is_err()
            {
                return (Next::Close, outcome);
            }
        }
        let relayed = match splice_pair(&mut self.client, &mut lease.stream) {
            // From here on the pair is an L4 relay: splice both ways, as on a TCP listener.
            Some((client, upstream)) => {
                let client_fd = std::os::fd::AsRawFd::as_raw_fd(client);
                let upstream_fd = std::os::fd::AsRawFd::as_raw_fd(upstream);
                match crate::sys::set_nonblocking(client_fd)
                    .and_then(|()| crate::sys::set_nonblocking(upstream_fd))
                {
                    Ok(()) => {
                        let pipe = self.core.view().snapshot.config.tuning.pipe_bytes;
                        super::relay::splice_relay(
                            self.core, client, upstream, pipe, idle, self.stats,
                        )
                        .await
                        .map(|_| ())
                    }
                    Err(e) => Err(e),
                }
            }
            // TLS on either side: the bytes pass through user space to be decrypted or
            // encrypted, so relay them through buffers, both directions at once.
            None => {
                let buffer = self.core.view().snapshot.config.tuning.copy_buffer_bytes;
                let (client, upstream) = (self.client.take(), lease.stream.take());
                super::relay::stream_relay(client, upstream, buffer, idle, self.stats)
                    .await
                    .map(|_| ())
            }
        };
        if let Err(e) = relayed {
            crate::log::debug(format_args!(
                "listener {}: {}: upgraded relay ended: {e}",
                listener.name, self.source
            ));
        }
        (Next::Close, outcome)
    }

    /// Answer `status` ourselves (nothing of a response was sent yet) and end the
    /// exchange; `close` when the connection can not go on.
    async fn fail(&mut self, status: u16, why: &'static str, close: bool) -> (Next, Outcome) {
        crate::log::debug(format_args!(
            "{}: {}: {status}: {why}",
            self.name, self.source
        ));
        self.uin.clear();
        self.respond_error(status, close).await;
        let next = if close { Next::Close } else { Next::KeepAlive };
        (next, Outcome::local(status, Some(why)))
    }

    /// A request body the framing rules reject: 413 when too large, else 400.
    async fn reject_body(&mut self, e: BodyError) -> (Next, Outcome) {
        let status = if e == BodyError::TooLarge { 413 } else { 400 };
        self.fail(status, e.as_str(), true).await
    }
}

/// The stream to backend `index` of `pool` over a freshly connected socket: TLS when
/// the pool says so (the backend's certificate verified against the pool's CA), else
/// the socket itself. A failed handshake counts as a failed connection attempt.
async fn upstream_stream(
    core: &Core,
    view: &CoreView,
    pool: usize,
    index: usize,
    tcp: monoio::net::TcpStream,
    limit: Duration,
) -> Option<Stream> {
    let Some(tls) = &view.snapshot.config.pools[pool].tls else {
        return Some(Stream::readiness(tcp));
    };
    let addr = view.snapshot.config.pools[pool].backends[index].addr;
    let name = match &tls.server_name {
        Some(name) => name.clone(),
        None => rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
    };
    // Boxed, once per new connection: the handshake's future is large.
    match Box::pin(TlsStream::connect(tcp, tls.client.clone(), name, limit)).await {
        Ok(stream) => Some(Stream::Tls(Box::new(stream))),
        Err(e) => {
            let stats = &view.pools[pool].stats[index];
            stats.connect_failures_total.fetch_add(1, Ordering::Relaxed);
            core.report(view, pool, index, Passive::ConnectFailure);
            crate::log::warn(format_args!(
                "upstream {addr}: TLS handshake failed ({}): {e}",
                e.reason()
            ));
            None
        }
    }
}

/// Splice `len` body bytes from `src` to `dst` with a pipe of the configured size.
/// `None` when the two cannot be spliced (TLS), both left as they were. After a body
/// spliced whole both are readiness-driven again, for the next exchange; after a failure
/// the exchange cannot go on, and they are left as they are. Its idle timeout runs on
/// the connection's `timer`.
async fn splice_body(
    core: &Core,
    src: &mut Stream,
    dst: &mut Stream,
    len: u64,
    idle: Duration,
    timer: &mut Deadline,
    moved: &std::sync::atomic::AtomicU64,
) -> Option<io::Result<()>> {
    let (from, to) = splice_pair(src, dst)?;
    let pipe = core.view().snapshot.config.tuning.pipe_bytes;
    let timer = timer.aimed_at(Instant::now() + idle);
    let spliced = super::relay::splice_exact(core, from, to, len, pipe, idle, timer, moved).await;
    if spliced.is_ok() {
        src.back_to_readiness();
        dst.back_to_readiness();
    }
    Some(spliced)
}

/// A generated error response: a short plain-text body naming the status.
fn write_error(out: &mut Vec<u8>, status: u16, close: bool) {
    let reason = crate::http1::reason_phrase(status);
    let body_len = 3 + 1 + reason.len() + 1;
    use std::io::Write as _;
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {body_len}\r\n"
    );
    if matches!(status, 429 | 503) {
        out.extend_from_slice(b"retry-after: 1\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    let _ = write!(out, "\r\n{status} {reason}\n");
}

/// A route's direct response.
fn write_direct(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    body: &str,
    close: bool,
    head_request: bool,
) {
    use std::io::Write as _;
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
        crate::http1::reason_phrase(status),
        body.len()
    );
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_request {
        out.extend_from_slice(body.as_bytes());
    }
}

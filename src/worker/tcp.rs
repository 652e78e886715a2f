//! The L4 TCP path: accept, pick a backend, connect with fallback, then relay.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::{TcpListener, TcpStream};

use super::core::{ActiveGuard, Core, CoreView, GaugeGuard, Tried};
use super::relay::{self, RelayOutcome};
use super::stream::{Stream, TlsStream};
use crate::config::{Protocol, ProxyAccept, RelayMode, SendProxy};
use crate::health::Passive;
use crate::lb::hash_ip;
use crate::metrics::ListenerStats;
use crate::proxy_protocol::{self, Accept, Addresses, Version};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

/// How long to back off when `accept` fails for lack of resources (EMFILE, ENOBUFS),
/// so the loop does not spin while connections wait in the backlog.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Accept connections on one listener forever, one task per connection.
pub async fn accept_loop(core: Core, name: Rc<str>, listener: TcpListener) {
    // Whether the runtime's accept returns non-blocking sockets (the epoll driver) or
    // not (io_uring): connections taken in a batch are made the same way.
    let mut accepts_nonblocking: Option<bool> = None;
    loop {
        let view = core.view();
        let Some(index) = view.snapshot.listener_index(&name) else {
            return; // removed by a reload; the worker drops this loop on its next tick
        };
        let stats = view.listener_stats[index].clone();
        let cap = view.connection_caps[index];
        drop(view);
        // At the connection limit, stop accepting: new clients wait in the kernel's
        // backlog (not refused) until a connection on this core closes.
        if cap != usize::MAX {
            core.below_cap(&stats.active_connections, cap).await;
        }
        match listener.accept().await {
            Ok((stream, peer)) => {
                super::busy_poll::note_activity();
                let nonblocking = *accepts_nonblocking.get_or_insert_with(|| {
                    crate::sys::is_nonblocking(stream.as_raw_fd()).unwrap_or(false)
                });
                start_connection(&core, &name, &stats, stream, peer);
                // Then whatever else the kernel has queued, without waiting. One accept
                // per turn of the event loop, each turn as long as every ready
                // connection's work, made the last of a burst of 150 new clients wait
                // 50-150 ms.
                for _ in 0..ACCEPT_BATCH {
                    if super::core::at_cap(&stats.active_connections, cap) {
                        break;
                    }
                    let accepted = crate::sys::try_accept(listener.as_raw_fd(), nonblocking)
                        .and_then(|next| {
                            next.map(|(std, peer)| Ok((TcpStream::from_std(std)?, peer)))
                                .transpose()
                        });
                    match accepted {
                        Ok(Some((stream, peer))) => {
                            start_connection(&core, &name, &stats, stream, peer)
                        }
                        Ok(None) => break,
                        // The awaited accept above meets the error again and backs off.
                        Err(_) => break,
                    }
                }
            }
            Err(_) if !crate::sys::is_listening(listener.as_raw_fd()) => {
                // Taken off its port for a stop at once (`sys::stop_all_listening`): the
                // accept in flight fails with EINVAL, and there is nothing left to accept
                // or to report.
                return;
            }
            Err(e) => {
                crate::log::warn(format_args!("worker {}: accept failed: {e}", core.index()));
                monoio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Connections one wake-up of the accept loop takes beyond the first, if queued.
const ACCEPT_BATCH: usize = 64;

/// Count an accepted connection and start serving it on its own task.
fn start_connection(
    core: &Core,
    name: &Rc<str>,
    stats: &Arc<ListenerStats>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    // Counted here, before the task runs, so the limit check sees every accepted
    // connection even if its task has not started yet. Relaxed: each counter has one
    // writer (this core).
    stats.connections_total.fetch_add(1, Ordering::Relaxed);
    let active = OpenGauge::new(stats.clone());
    monoio::spawn(serve_connection(
        core.clone(),
        name.clone(),
        stream,
        peer,
        active,
    ));
}

/// A listener's active-connection gauge, held by a connection from accept to close.
pub(super) struct OpenGauge(Arc<ListenerStats>);

impl OpenGauge {
    fn new(stats: Arc<ListenerStats>) -> OpenGauge {
        stats.active_connections.fetch_add(1, Ordering::Relaxed);
        OpenGauge(stats)
    }
}

impl std::ops::Deref for OpenGauge {
    type Target = ListenerStats;
    fn deref(&self) -> &ListenerStats {
        &self.0
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serve one client connection from connect to close. Every failure ends in closing the
/// client; none of them may panic or stall the worker.
async fn serve_connection(
    core: Core,
    name: Rc<str>,
    mut client: TcpStream,
    peer: SocketAddr,
    active: OpenGauge,
) {
    // Dropped last (declared first): the gauge is down before paused accepts wake.
    let _open = core.connection_opened();
    let active = active;
    let view = core.view();
    // Looked up by name: a reload may have reordered, changed or removed the listener
    // since this connection was accepted.
    let Some(listener_index) = view.snapshot.listener_index(&name) else {
        return;
    };
    let listener = &view.snapshot.config.listeners[listener_index];
    let started = Instant::now();
    let stats: &ListenerStats = &active.0;
    let l4 = match listener.protocol {
        Protocol::Tcp { pool, relay } => Some((pool, relay)),
        Protocol::Http(_) => None,
        Protocol::Udp { .. } => return, // never: UDP sockets have no accept loop
    };
    let timeouts = listener.timeouts;
    // Small writes (handshakes, RPCs) must not wait for Nagle's delayed-ACK dance.
    let _ = client.set_nodelay(true);

    // Who the client really is: the socket's peer, or what a fronting balancer's PROXY
    // header says. `early` holds client bytes read past that header.
    let mut source = peer;
    let mut destination = client.local_addr().unwrap_or(listener.bind);
    let mut early = Vec::new();
    if let Some(accept) = proxy_accept(listener.proxy_protocol) {
        let header = read_proxy_header(&mut client, accept);
        // Boxed, as the upstream connect and the relays below: every connection's task is
        // as large as the largest thing it may await, and an HTTP connection, which
        // awaits none of these, should not carry their timers and relay state.
        let outcome = match Box::pin(monoio::time::timeout(PROXY_HEADER_TIMEOUT, header)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no header within {PROXY_HEADER_TIMEOUT:?}")),
        };
        match outcome {
            Ok((addresses, rest)) => {
                if let Addresses::Tcp {
                    source: s,
                    destination: d,
                } = addresses
                {
                    (source, destination) = (s, d);
                }
                early = rest;
            }
            Err(why) => {
                stats
                    .proxy_protocol_rejected_total
                    .fetch_add(1, Ordering::Relaxed);
                crate::log::warn(format_args!(
                    "listener {}: {peer}: PROXY protocol header rejected: {why}; closing",
                    listener.name
                ));
                return;
            }
        }
    }

    let Some((pool, mode)) = l4 else {
        // HTTP: rate limits apply per request there (answered with 429).
        let tls = listener.tls.as_ref().map(|t| t.server.clone());
        let handshake_limit = listener
            .protocol
            .http()
            .map_or(crate::config::DEFAULT_CLIENT_HEADER_TIMEOUT, |h| {
                h.timeouts.client_header
            });
        let listener_name = listener.name.clone();
        drop(view);
        let (stream, early) = match tls {
            None => (Stream::client(client, core.on_ring()), early),
            // The handshake has the head's time limit: a client that trickles it is
            // the same slowloris as one that trickles a request head.
            // Boxed, once per connection: the handshake's future is large, and inline it
            // would make every connection's future as large.
            Some(config) => {
                match Box::pin(TlsStream::accept(client, config, early, handshake_limit)).await {
                    Ok(tls) => {
                        stats.tls_handshakes_total.fetch_add(1, Ordering::Relaxed);
                        (Stream::Tls(Box::new(tls)), Vec::new())
                    }
                    Err(e) => {
                        stats.tls_handshake_failed(e.reason());
                        log_handshake_failure(&listener_name, source, &e);
                        return;
                    }
                }
            }
        };
        // A task of its own, started as this one ends: the HTTP driver's future is the
        // whole of it, so an idle keep-alive connection costs one 4 KiB allocation,
        // not this future's PROXY, TLS and L4 state on top.
        monoio::spawn(super::http::serve(
            core.clone(),
            name,
            stream,
            source,
            early,
            _open,
            active,
        ));
        return;
    };

    if let Some(limiter) = &view.rate_limiters[listener_index] {
        if !limiter.borrow_mut().allow(source.ip(), Instant::now()) {
            stats.rate_limited_total.fetch_add(1, Ordering::Relaxed);
            crate::log::debug(format_args!(
                "listener {}: {source} over its rate limit; closing",
                listener.name
            ));
            return;
        }
    }

    let Some((mut backend, _guard, _backend_active)) = Box::pin(connect_upstream(
        &core,
        &view,
        pool,
        source,
        timeouts.connect,
    ))
    .await
    else {
        stats.refused_total.fetch_add(1, Ordering::Relaxed);
        crate::log::debug(format_args!(
            "listener {}: no backend of pool {} answered for {peer}; closing",
            listener.name, view.snapshot.config.pools[pool].name
        ));
        return;
    };
    // The backend first gets our PROXY header (if the pool asks for one), then any client
    // bytes that arrived with the client's own header, then the relay takes over.
    let send = view.snapshot.config.pools[pool].send_proxy;
    if send != SendProxy::None || !early.is_empty() {
        let mut preamble = Vec::with_capacity(proxy_protocol::MAX_HEADER_LEN + early.len());
        match send {
            SendProxy::V1 => {
                proxy_protocol::encode(Version::V1, source, destination, &mut preamble)
            }
            SendProxy::V2 => {
                proxy_protocol::encode(Version::V2, source, destination, &mut preamble)
            }
            SendProxy::None => {}
        }
        preamble.extend_from_slice(&early);
        let (written, _) = backend.write_all(preamble).await;
        if let Err(e) = written {
            crate::log::debug(format_args!(
                "listener {}: {peer}: upstream write failed: {e}",
                listener.name
            ));
            return;
        }
    }

    let tuning = view.snapshot.config.tuning;
    let outcome = match mode {
        RelayMode::Splice => match prepare_splice(&client, &backend) {
            Ok(()) => {
                let (pipe, idle) = (tuning.pipe_bytes, timeouts.idle);
                Box::pin(relay::splice_relay(
                    &core, &client, &backend, pipe, idle, stats,
                ))
                .await
            }
            Err(e) => Err(e),
        },
        RelayMode::Buffered => {
            let (buffer, idle) = (tuning.copy_buffer_bytes, timeouts.idle);
            Box::pin(relay::buffered_relay(client, backend, buffer, idle, stats)).await
        }
    };
    core.record_duration(&view, listener_index, started.elapsed());
    match outcome {
        Ok(RelayOutcome::Finished) => {}
        Ok(RelayOutcome::IdleTimeout) => crate::log::debug(format_args!(
            "listener {}: {peer} idle for {:?}; closed",
            listener.name, timeouts.idle
        )),
        Err(e) => crate::log::debug(format_args!(
            "listener {}: {peer}: relay ended: {e}",
            listener.name
        )),
    }
}

/// Log a failed client handshake, at most one line a second per core: handshakes fail
/// by the thousand under a scan or a misconfigured client, and a worker must not spend
/// its time writing to stderr. The next line says how many were left out; the metrics
/// count every one.
fn log_handshake_failure(listener: &str, source: SocketAddr, e: &super::stream::HandshakeError) {
    thread_local! {
        static LAST: std::cell::Cell<(Option<Instant>, u64)> =
            const { std::cell::Cell::new((None, 0)) };
    }
    LAST.with(|last| {
        let (at, left_out) = last.get();
        let now = Instant::now();
        if at.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            last.set((at, left_out + 1));
            return;
        }
        last.set((Some(now), 0));
        let reason = e.reason();
        if left_out == 0 {
            crate::log::info(format_args!(
                "listener {listener}: {source}: TLS handshake failed ({reason}): {e}"
            ));
        } else {
            crate::log::info(format_args!(
                "listener {listener}: {source}: TLS handshake failed ({reason}): {e} \
                 ({left_out} more failures since the last such line)"
            ));
        }
    });
}

/// How long a client on a PROXY-protocol listener has to send its header.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

fn proxy_accept(accept: ProxyAccept) -> Option<Accept> {
    match accept {
        ProxyAccept::V1 => Some(Accept::V1),
        ProxyAccept::V2 => Some(Accept::V2),
        ProxyAccept::Any => Some(Accept::Any),
        ProxyAccept::None => None,
    }
}

/// Read a PROXY protocol header from `client`. Returns what it said and any bytes that
/// were read past its end (they belong to the client's stream).
async fn read_proxy_header(
    client: &mut TcpStream,
    accept: Accept,
) -> Result<(Addresses, Vec<u8>), String> {
    let mut buf: Vec<u8> = Vec::with_capacity(proxy_protocol::MAX_HEADER_LEN);
    loop {
        // Read at most what a header can still need, so little payload is read early.
        let want = proxy_protocol::MAX_HEADER_LEN
            .saturating_sub(buf.len())
            .max(1);
        let (res, chunk) = client.read(Vec::with_capacity(want)).await;
        match res {
            Ok(0) => return Err("the client closed before sending a header".into()),
            Ok(_) => buf.extend_from_slice(&chunk),
            Err(e) => return Err(e.to_string()),
        }
        match proxy_protocol::parse(&buf, accept) {
            Ok(Some((addresses, consumed))) => return Ok((addresses, buf.split_off(consumed))),
            Ok(None) if buf.len() < proxy_protocol::MAX_HEADER_LEN => continue,
            Ok(None) => return Err("header too long".into()),
            Err(e) => return Err(format!("{e:?}")),
        }
    }
}

/// The splice path drives the sockets itself with non-blocking syscalls, so both must be
/// `O_NONBLOCK`: a blocking socket would stall every connection on this core.
fn prepare_splice(client: &TcpStream, backend: &TcpStream) -> io::Result<()> {
    crate::sys::set_nonblocking(client.as_raw_fd())?;
    crate::sys::set_nonblocking(backend.as_raw_fd())
}

/// Pick a backend and connect, trying each usable backend at most once. Returns the
/// connection and a guard that counts it against the backend while it lives.
async fn connect_upstream<'v>(
    core: &Core,
    view: &'v Rc<CoreView>,
    pool: usize,
    peer: SocketAddr,
    connect_timeout: Duration,
) -> Option<(TcpStream, ActiveGuard, GaugeGuard<'v>)> {
    let key = hash_ip(peer.ip());
    let mut tried = Tried::default();
    loop {
        let index = view.pick(pool, key, &mut tried)?;
        // Count the attempt as load right away, so concurrent connections on this core
        // see it while the handshake is in flight (least-connections fairness).
        let guard = ActiveGuard::new(view.clone(), pool, index);
        if let Some(stream) = connect_backend(core, view, pool, index, connect_timeout).await {
            // For a byte relay the connect is all we learn about the backend's health.
            core.report(view, pool, index, Passive::Success);
            let stats = &view.pools[pool].stats[index];
            return Some((stream, guard, GaugeGuard::new(&stats.active_connections)));
        }
    }
}

/// Connect to backend `index` of `pool` within `connect_timeout`, with `TCP_NODELAY`
/// set. Counts the attempt, records the connect time, and reports a refusal or timeout
/// to the control thread (a success is the caller's to report: for HTTP it is the
/// response that tells, not the handshake).
pub(super) async fn connect_backend(
    core: &Core,
    view: &CoreView,
    pool: usize,
    index: usize,
    connect_timeout: Duration,
) -> Option<TcpStream> {
    let attempt = BackendConnect::start(view, pool, index, connect_timeout);
    let result = monoio::time::timeout(connect_timeout, TcpStream::connect_addr(attempt.addr))
        .await
        .map_err(|_| ConnectError::TimedOut);
    attempt.settle(
        core,
        view,
        result.and_then(|r| r.map_err(ConnectError::Failed)),
    )
}

/// Why a connect to a backend did not give a stream.
pub(super) enum ConnectError {
    /// The kernel refused or failed it (refused, unreachable, reset).
    Failed(io::Error),
    /// Nothing came within the connect timeout.
    TimedOut,
}

impl ConnectError {
    /// From the result of a wait on a [`super::deadline::Deadline`]: its own timeout
    /// is a `TimedOut` error with no OS error code; anything else is the connect's.
    pub(super) fn from_timed(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::TimedOut && e.raw_os_error().is_none() {
            ConnectError::TimedOut
        } else {
            ConnectError::Failed(e)
        }
    }
}

/// One connect attempt to a backend, timed by the caller: `connect_backend` with
/// its own timer, the HTTP path with its connection's (whose timer is already
/// allocated, so the connect adds none to the connection's future).
pub(super) struct BackendConnect {
    /// Where to connect.
    pub(super) addr: SocketAddr,
    pool: usize,
    index: usize,
    connect_timeout: Duration,
    started: Instant,
}

impl BackendConnect {
    /// Start timing a connect to backend `index` of `pool`.
    pub(super) fn start(
        view: &CoreView,
        pool: usize,
        index: usize,
        connect_timeout: Duration,
    ) -> Self {
        BackendConnect {
            addr: view.snapshot.config.pools[pool].backends[index].addr,
            pool,
            index,
            connect_timeout,
            started: Instant::now(),
        }
    }

    /// Count the attempt's outcome and report a failure, as `connect_backend` says.
    pub(super) fn settle(
        self,
        core: &Core,
        view: &CoreView,
        result: Result<TcpStream, ConnectError>,
    ) -> Option<TcpStream> {
        let runtime = &view.pools[self.pool];
        let stats = &runtime.stats[self.index];
        let (event, why) = match result {
            Ok(stream) => {
                core.record_connect(runtime, self.started.elapsed());
                stats.connections_total.fetch_add(1, Ordering::Relaxed);
                // Small writes (heads, handshakes, RPCs) must not wait on Nagle.
                let _ = stream.set_nodelay(true);
                return Some(stream);
            }
            Err(ConnectError::Failed(e)) => {
                (Passive::ConnectFailure, format!("connect failed: {e}"))
            }
            Err(ConnectError::TimedOut) => (
                Passive::Timeout,
                format!("connect timed out after {:?}", self.connect_timeout),
            ),
        };
        stats.connect_failures_total.fetch_add(1, Ordering::Relaxed);
        core.report(view, self.pool, self.index, event);
        crate::log::debug(format_args!("upstream {}: {why}", self.addr));
        None
    }
}

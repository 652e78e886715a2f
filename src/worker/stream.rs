//! A byte stream the L7 driver, the buffered relay and the health probes read and
//! write: plain TCP, or TLS over TCP. It splits into a read and a write half for relays
//! that move both directions at once.
//!
//! The TLS side is our own thin adapter over rustls's buffered [`rustls::Connection`]
//! (server or client) rather than an existing monoio wrapper, for one reason that
//! matters to a proxy: **cancellation**. The driver bounds reads with timeouts and
//! stops waiting when a drain begins; a future dropped mid-read must leave the stream
//! usable (or at worst cleanly broken), never panicking on a buffer that was moved into
//! the cancelled operation. Here every buffer handed to the kernel is taken with
//! `mem::take` and simply re-created if it does not come back.
//!
//! Plaintext goes through rustls's own buffers (one copy each way on top of the
//! encryption); ciphertext is read into and written from one `Vec` each, kept for the
//! connection's life.
//!
//! A plain HTTP connection is read and written by **readiness** ([`Stream::Polled`]):
//! its socket joins an epoll set that the worker's ring polls (monoio's `poll-io`), and
//! each read or write is a direct system call once the socket is ready. A completion
//! read (`IORING_OP_RECV`) costs more for small requests and responses: the kernel first
//! tries it inline, finds nothing (the next request or the response is not there yet),
//! then arms a one-shot poll, wakes, and tries again, twice per proxied request. The
//! epoll set keeps each socket registered once, and one ring completion hands the
//! worker every ready socket at once. Measured on one worker core (small responses, 50
//! connections, wrk and the origin on the other core): 8–10% more requests/s, and
//! inter-processor interrupts to the worker's core down from 0.19 to 0.07 per request.
//! Splicing a body still waits through the ring ([`splice_pair`] switches both sockets
//! back, [`Stream::back_to_readiness`] again after), and so does TLS, whose cost is the
//! cryptography.
//!
//! A client connection's **sends** go through the ring ([`SendMode::Ring`]) while its
//! reads stay on readiness. A ring send is queued, not made: the kernel makes every send
//! queued in a pass over the worker's ready connections when the worker next enters it,
//! one after the other. So the responses of one pass reach their clients together, and a
//! client woken by the first finds the others there, where direct sends would trickle out
//! through the pass and wake it for one or two each. Upstream sends stay direct: the
//! backend's turnaround is on every request's path, and a request held to the end of the
//! pass waits for it. The ring needs a descriptor it can own, so the send side is a
//! duplicate of the socket, made at the connection's first response. Measured (small
//! responses, 50 connections, one worker core, wrk and the origin on the other core;
//! two sets of 8 alternating rounds, medians of the ratios to HAProxy in the same
//! round): requests/s 0.956–0.966x with direct sends, 0.983–1.000x with client sends
//! through the ring; p99 1.09–1.25x and 1.00–1.10x; with h2load, 0.961x and 0.983x.
//! This is HAProxy's own shape: its loop receives from every ready connection, then
//! sends to every one.

use std::cell::RefCell;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::poll_io::{AsyncReadExt as _, AsyncWriteExt as _};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use monoio::net::TcpStream;

use super::read_buffers;

/// Ciphertext read per system call: a little over one full TLS record (16 KiB plus
/// header and tag), so a record never needs two reads.
const TLS_READ: usize = 17 * 1024;

/// What a client that sent plain HTTP to a TLS listener is told.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
content-type: text/plain; charset=utf-8\r\ncontent-length: 49\r\nconnection: close\r\n\r\n\
This port speaks HTTPS: use https:// to connect.\n";

/// How a plain socket's writes reach the kernel.
pub(crate) enum SendMode {
    /// A send system call as soon as the socket is writable.
    Direct,
    /// A send queued on the ring, made when the worker next enters the kernel, on a
    /// duplicate of the socket (`None` until the first write makes it). See the module
    /// documentation for why client connections send this way.
    Ring(Option<TcpStream>),
}

impl SendMode {
    /// The ring-side duplicate of `fd`'s socket, made on first use. `None` for
    /// [`SendMode::Direct`], or when the duplicate can not be made (out of descriptors):
    /// then the stream sends directly from now on, which works as well.
    fn ring_sender(&mut self, fd: RawFd) -> Option<&mut TcpStream> {
        if let SendMode::Ring(None) = self {
            match duplicate(fd) {
                Ok(twin) => *self = SendMode::Ring(Some(twin)),
                Err(_) => *self = SendMode::Direct,
            }
        }
        match self {
            SendMode::Ring(twin) => twin.as_mut(),
            SendMode::Direct => None,
        }
    }
}

/// A second descriptor for `fd`'s socket, owned by a completion-driven stream.
fn duplicate(fd: RawFd) -> io::Result<TcpStream> {
    // SAFETY: `fd` belongs to a stream the caller holds, open for the whole call; the
    // borrow ends with it (the duplicate is a new descriptor of its own).
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned = borrowed.try_clone_to_owned()?;
    TcpStream::from_std(std::net::TcpStream::from(owned))
}

/// A client or upstream connection.
pub(crate) enum Stream {
    /// Bytes as they are on the socket, read and written by completion (the ring). The
    /// send mode is kept for when the socket goes back to readiness.
    Plain(TcpStream, SendMode),
    /// Bytes as they are on the socket, read by readiness and written as the send mode
    /// says (see the module documentation): how plain HTTP connections are driven.
    Polled(TcpStreamPoll, SendMode),
    /// TLS terminated (client side) or originated (upstream side) by ringway.
    Tls(Box<TlsStream>),
    /// Handed over to a relay ([`Stream::take`]): every operation fails.
    Detached,
}

impl Stream {
    /// An upstream socket driven by readiness, sending directly; by completion if the
    /// runtime can not register it (the socket works either way).
    pub(crate) fn readiness(tcp: TcpStream) -> Stream {
        Stream::readiness_sending(tcp, SendMode::Direct)
    }

    /// A plain socket read and written by completion (the ring), as relays and health
    /// probes use it.
    pub(crate) fn completion(tcp: TcpStream) -> Stream {
        Stream::Plain(tcp, SendMode::Direct)
    }

    /// A client socket driven by readiness, sending through the ring when the runtime is
    /// io_uring's (`on_ring`; see the module documentation). On epoll a ring send would
    /// be a readiness send on a second registered descriptor: no gain.
    pub(crate) fn client(tcp: TcpStream, on_ring: bool) -> Stream {
        let sends = if on_ring {
            SendMode::Ring(None)
        } else {
            SendMode::Direct
        };
        Stream::readiness_sending(tcp, sends)
    }

    fn readiness_sending(tcp: TcpStream, sends: SendMode) -> Stream {
        match tcp.try_into_poll_io() {
            Ok(polled) => Stream::Polled(polled, sends),
            Err((_, tcp)) => Stream::Plain(tcp, sends),
        }
    }

    /// Switch a readiness-driven socket to completion IO, in place: it leaves the epoll
    /// set. It stays readiness-driven if the switch fails (it works either way).
    fn leave_readiness(&mut self) {
        if matches!(self, Stream::Polled(..)) {
            if let Stream::Polled(tcp, sends) = self.take() {
                *self = match tcp.try_into_comp_io() {
                    Ok(tcp) => Stream::Plain(tcp, sends),
                    Err((_, tcp)) => Stream::Polled(tcp, sends),
                };
            }
        }
    }

    /// Drive a plain socket by readiness again (after a splice), sending as before.
    pub(crate) fn back_to_readiness(&mut self) {
        if matches!(self, Stream::Plain(..)) {
            if let Stream::Plain(tcp, sends) = self.take() {
                *self = Stream::readiness_sending(tcp, sends);
            }
        }
    }

    /// Move the stream out (to split it for a relay), leaving [`Stream::Detached`].
    pub(crate) fn take(&mut self) -> Stream {
        std::mem::replace(self, Stream::Detached)
    }

    /// Split into a receiving and a sending half that two tasks can use at once (a
    /// relay must read either side while it writes to the other). `None` when detached.
    pub(crate) fn into_split(mut self) -> Option<(ReadHalf, WriteHalf)> {
        // The halves read and write through the ring.
        self.leave_readiness();
        match self {
            Stream::Polled(..) => None,
            // The ring-side duplicate, if any, closes here: the halves send on the socket.
            Stream::Plain(tcp, _) => {
                let (r, w) = tcp.into_split();
                Some((ReadHalf::Plain(r), WriteHalf::Plain(w)))
            }
            Stream::Tls(tls) => {
                let TlsStream {
                    tcp,
                    conn,
                    incoming,
                    wbuf,
                    ..
                } = *tls;
                // Plaintext already decrypted stays in the session, where the read half
                // finds it first.
                let (r, w) = tcp.into_split();
                let conn = Rc::new(RefCell::new(conn));
                let read = TlsReadHalf {
                    tcp: r,
                    conn: conn.clone(),
                    incoming,
                };
                Some((
                    ReadHalf::Tls(Box::new(read)),
                    WriteHalf::Tls(Box::new(TlsWriteHalf { tcp: w, conn, wbuf })),
                ))
            }
            Stream::Detached => None,
        }
    }

    /// Whether this is a TLS connection.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// The TLS connection state (for the peer's certificate), if TLS.
    pub(crate) fn tls(&self) -> Option<&TlsStream> {
        match self {
            Stream::Plain(..) | Stream::Polled(..) | Stream::Detached => None,
            Stream::Tls(tls) => Some(tls),
        }
    }

    /// Read once into the spare capacity of `buf` (after its length), appending.
    /// `Ok(0)` is the end of the stream.
    pub(crate) async fn read_spare(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        // A connection reads after it has done something (accepted, parsed, forwarded):
        // that is the progress that keeps busy polling on.
        super::busy_poll::note_activity();
        match self {
            Stream::Plain(tcp, _) => {
                let len = buf.len();
                let (res, slice) = tcp.read(buf.slice_mut(len..)).await;
                (res, slice.into_inner())
            }
            Stream::Polled(tcp, _) => {
                // Into the spare capacity, as above; no initialising of it first.
                let mut buf = buf;
                let res = tcp.read_buf(&mut buf).await;
                (res, buf)
            }
            Stream::Tls(tls) => {
                let mut buf = buf;
                let res = tls.read_spare(&mut buf).await;
                (res, buf)
            }
            Stream::Detached => (Err(detached()), buf),
        }
    }

    /// Read once into a buffer lent by the worker ([`super::read_buffers`]), returned
    /// with what was read. A socket driven by readiness borrows it only for the read
    /// attempt itself and gives it back while it waits, so a connection waiting for its
    /// next request holds no buffer; other streams hold it for the read.
    pub(crate) async fn read_lent(&mut self) -> (io::Result<usize>, Vec<u8>) {
        let Stream::Polled(tcp, _) = self else {
            return self.read_spare(read_buffers::take()).await;
        };
        super::busy_poll::note_activity();
        let mut lent = Vec::new();
        let res = std::future::poll_fn(|cx| {
            let mut buf = read_buffers::take();
            // One attempt per poll: a read that would block has read nothing (the
            // runtime registers for readiness and wakes this task), so its future can
            // be dropped and the buffer given back until the socket is ready.
            let attempt = std::future::Future::poll(std::pin::pin!(tcp.read_buf(&mut buf)), cx);
            match attempt {
                std::task::Poll::Pending => {
                    read_buffers::give(buf);
                    std::task::Poll::Pending
                }
                std::task::Poll::Ready(res) => {
                    lent = buf;
                    std::task::Poll::Ready(res)
                }
            }
        })
        .await;
        (res, lent)
    }

    /// Write `buf[range]` whole.
    pub(crate) async fn write_range(
        &mut self,
        buf: Vec<u8>,
        range: std::ops::Range<usize>,
    ) -> (io::Result<()>, Vec<u8>) {
        // Checked once here, so each arm below can slice without a failure of its own.
        if range.start > range.end || range.end > buf.len() {
            return (Err(io::ErrorKind::InvalidInput.into()), buf);
        }
        match self {
            Stream::Plain(tcp, _) => {
                let (res, slice) = tcp.write_all(buf.slice(range)).await;
                (res.map(|_| ()), slice.into_inner())
            }
            Stream::Polled(tcp, sends) => {
                if let Some(ring) = sends.ring_sender(tcp.as_raw_fd()) {
                    let (res, slice) = ring.write_all(buf.slice(range)).await;
                    return (res.map(|_| ()), slice.into_inner());
                }
                let res = tcp.write_all(&buf[range]).await;
                (res, buf)
            }
            Stream::Tls(tls) => {
                let res = tls.write_all(&buf[range]).await;
                (res, buf)
            }
            Stream::Detached => (Err(detached()), buf),
        }
    }

    /// End our side of the conversation: a TLS `close_notify` (so the peer can tell a
    /// complete response from a cut one), then a TCP half-close.
    pub(crate) async fn close(&mut self) {
        let fd = match self {
            Stream::Plain(tcp, _) => tcp.as_raw_fd(),
            Stream::Polled(tcp, _) => tcp.as_raw_fd(),
            Stream::Tls(tls) => {
                tls.conn.send_close_notify();
                // Boxed, once per TLS connection: a timer entry inline would make every
                // connection's future, plain ones too, 640 bytes larger.
                let _ = Box::pin(monoio::time::timeout(Duration::from_secs(1), tls.flush())).await;
                tls.tcp.as_raw_fd()
            }
            Stream::Detached => return,
        };
        let _ = crate::sys::shutdown_write(fd);
    }

    /// The socket's descriptor; `None` when detached.
    pub(crate) fn fd(&self) -> Option<RawFd> {
        match self {
            Stream::Plain(tcp, _) => Some(tcp.as_raw_fd()),
            Stream::Polled(tcp, _) => Some(tcp.as_raw_fd()),
            Stream::Tls(tls) => Some(tls.tcp.as_raw_fd()),
            Stream::Detached => None,
        }
    }

    /// After reading part of a body: send the ACK for it now rather than when the
    /// kernel's delayed-ACK timer fires (see [`crate::sys::push_ack`]).
    pub(crate) fn push_ack(&self) {
        if let Some(fd) = self.fd() {
            crate::sys::push_ack(fd);
        }
    }
}

/// The two sockets, for splicing between them, when bytes on both are the payload (not
/// TLS records). Splicing waits for readiness through the ring, so both leave the epoll
/// set first; [`Stream::back_to_readiness`] brings each back after. `None`, with both
/// left as they were, for TLS, when detached, or if a socket could not be switched.
pub(crate) fn splice_pair<'a>(
    a: &'a mut Stream,
    b: &'a mut Stream,
) -> Option<(&'a TcpStream, &'a TcpStream)> {
    let plain = |s: &Stream| matches!(s, Stream::Plain(..) | Stream::Polled(..));
    if !(plain(a) && plain(b)) {
        return None;
    }
    a.leave_readiness();
    b.leave_readiness();
    match (a, b) {
        (Stream::Plain(a, _), Stream::Plain(b, _)) => Some((a, b)),
        (a, b) => {
            a.back_to_readiness();
            b.back_to_readiness();
            None
        }
    }
}

fn detached() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "stream handed over to a relay")
}

/// The receiving half of a split [`Stream`].
pub(crate) enum ReadHalf {
    /// The socket's receiving side.
    Plain(OwnedReadHalf<TcpStream>),
    /// Decrypting from the socket's receiving side.
    Tls(Box<TlsReadHalf>),
}

/// The sending half of a split [`Stream`].
pub(crate) enum WriteHalf {
    /// The socket's sending side.
    Plain(OwnedWriteHalf<TcpStream>),
    /// Encrypting into the socket's sending side.
    Tls(Box<TlsWriteHalf>),
}

/// Receiving TLS: ciphertext from the socket, plaintext out of the shared session.
pub(crate) struct TlsReadHalf {
    tcp: OwnedReadHalf<TcpStream>,
    /// Shared with the sending half; never borrowed across an await, so the two
    /// halves' tasks can not collide.
    conn: Rc<RefCell<rustls::Connection>>,
    incoming: Incoming,
}

/// Sending TLS: plaintext into the shared session, records out to the socket.
pub(crate) struct TlsWriteHalf {
    tcp: OwnedWriteHalf<TcpStream>,
    conn: Rc<RefCell<rustls::Connection>>,
    wbuf: Vec<u8>,
}

impl ReadHalf {
    /// Read once into `buf` (cleared first); `Ok(0)` is the end of the stream.
    pub(crate) async fn read(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let mut buf = buf;
        buf.clear();
        match self {
            ReadHalf::Plain(tcp) => tcp.read(buf).await,
            ReadHalf::Tls(tls) => {
                let room = buf.capacity().max(TLS_READ);
                buf.resize(room, 0);
                let res = tls.read_plain(&mut buf).await;
                buf.truncate(*res.as_ref().unwrap_or(&0));
                (res, buf)
            }
        }
    }
}

impl TlsReadHalf {
    async fn read_plain(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.borrow_mut().reader().read(dst) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if self.incoming.is_drained() && self.incoming.eof {
                return Ok(0);
            }
            self.incoming.refill(&mut self.tcp).await?;
            let mut conn = self.conn.borrow_mut();
            self.incoming.feed(&mut conn)?;
            // Anything this queues to send (a key update reply) goes out with the
            // sending half's next write.
            conn.process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
    }
}

impl WriteHalf {
    /// Send all of `bytes`.
    pub(crate) async fn write_all(&mut self, bytes: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        match self {
            WriteHalf::Plain(tcp) => {
                let (res, bytes) = tcp.write_all(bytes).await;
                (res.map(|_| ()), bytes)
            }
            WriteHalf::Tls(tls) => {
                let res = tls.write_all(&bytes).await;
                (res, bytes)
            }
        }
    }

    /// End this direction: `close_notify` for TLS, then a TCP half-close.
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            WriteHalf::Plain(tcp) => tcp.shutdown().await,
            WriteHalf::Tls(tls) => {
                tls.conn.borrow_mut().send_close_notify();
                tls.write_all(&[]).await?;
                tls.tcp.shutdown().await
            }
        }
    }
}

impl TlsWriteHalf {
    async fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        loop {
            let mut buf = std::mem::take(&mut self.wbuf);
            buf.clear();
            {
                let mut conn = self.conn.borrow_mut();
                if !bytes.is_empty() {
                    let n = conn.writer().write(bytes)?;
                    bytes = &bytes[n..];
                }
                while conn.wants_write() {
                    conn.write_tls(&mut buf)?;
                }
            }
            if !buf.is_empty() {
                let (res, buf) = self.tcp.write_all(buf).await;
                self.wbuf = buf;
                res?;
            } else {
                self.wbuf = buf;
            }
            if bytes.is_empty() {
                return Ok(());
            }
        }
    }
}

/// Ciphertext read from a socket and not yet handed to rustls: `buf[pos..]`.
struct Incoming {
    buf: Vec<u8>,
    pos: usize,
    /// The socket reached its end.
    eof: bool,
}

impl Incoming {
    /// Everything read so far was handed to rustls.
    fn is_drained(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Read once from `tcp` if everything read so far was handed over (and the socket
    /// has not ended). The buffer is taken for the read, so a cancelled read leaves an
    /// empty buffer rather than none.
    async fn refill<R: AsyncReadRent>(&mut self, tcp: &mut R) -> io::Result<()> {
        if !self.is_drained() || self.eof {
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if buf.capacity() < TLS_READ {
            buf.reserve(TLS_READ);
        }
        let (res, buf) = tcp.read(buf).await;
        self.buf = buf;
        self.pos = 0;
        if res? == 0 {
            self.eof = true;
        }
        Ok(())
    }

    /// Hand rustls what is buffered, or tell it the socket ended (an empty read).
    fn feed(&mut self, conn: &mut rustls::Connection) -> io::Result<()> {
        if self.is_drained() {
            if self.eof {
                let _ = conn.read_tls(&mut io::empty());
            }
            return Ok(());
        }
        let mut pending = self.buf.get(self.pos..).unwrap_or_default();
        let before = pending.len();
        match conn.read_tls(&mut pending) {
            Ok(_) => {}
            // rustls's plaintext buffer is full: the caller reads it before more comes.
            Err(e) if e.kind() == io::ErrorKind::Other => {}
            Err(e) => return Err(e),
        }
        self.pos += before - pending.len();
        Ok(())
    }
}

/// Why a TLS handshake did not complete.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// The peer broke the protocol or failed verification; rustls says how.
    Tls(rustls::Error),
    /// The connection failed or closed mid-handshake.
    Io(io::Error),
    /// The handshake did not finish in time.
    Timeout,
    /// The client spoke plain HTTP to the TLS port (it was told so in a 400).
    NotTls,
}

impl HandshakeError {
    /// A short, fixed label for metrics.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            HandshakeError::Tls(e) => crate::tls::handshake_failure_reason(e),
            HandshakeError::Io(_) => "io",
            HandshakeError::Timeout => "timeout",
            HandshakeError::NotTls => "not_tls",
        }
    }
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Tls(e) => write!(f, "{e}"),
            HandshakeError::Io(e) => write!(f, "{e}"),
            HandshakeError::Timeout => f.write_str("handshake timed out"),
            HandshakeError::NotTls => f.write_str("plain HTTP sent to the TLS port; answered 400"),
        }
    }
}

/// TLS over a TCP socket, either side.
pub(crate) struct TlsStream {
    tcp: TcpStream,
    conn: rustls::Connection,
    /// Ciphertext read from the socket and not yet handed to rustls.
    incoming: Incoming,
    /// Ciphertext on its way to the socket.
    wbuf: Vec<u8>,
    /// Decrypted bytes waiting in rustls.
    plaintext: usize,
    /// The peer sent close_notify.
    peer_closed: bool,
    /// The last protocol error rustls reported, kept for the handshake's caller.
    error: Option<rustls::Error>,
}

impl TlsStream {
    /// Complete a server-side handshake on an accepted socket. `early` holds bytes
    /// already read from it (after a PROXY protocol header): the start of the
    /// ClientHello.
    pub(crate) async fn accept(
        tcp: TcpStream,
        config: Arc<rustls::ServerConfig>,
        early: Vec<u8>,
        limit: Duration,
    ) -> Result<TlsStream, HandshakeError> {
        let conn = rustls::ServerConnection::new(config).map_err(HandshakeError::Tls)?;
        let mut tls = TlsStream::new(tcp, conn.into(), early);
        tls.handshake(limit).await?;
        Ok(tls)
    }

    /// Complete a client-side handshake to a backend.
    pub(crate) async fn connect(
        tcp: TcpStream,
        config: Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
        limit: Duration,
    ) -> Result<TlsStream, HandshakeError> {
        let conn = rustls::ClientConnection::new(config, name).map_err(HandshakeError::Tls)?;
        let mut tls = TlsStream::new(tcp, conn.into(), Vec::new());
        tls.handshake(limit).await?;
        Ok(tls)
    }

    fn new(tcp: TcpStream, conn: rustls::Connection, early: Vec<u8>) -> TlsStream {
        TlsStream {
            tcp,
            conn,
            incoming: Incoming {
                buf: early,
                pos: 0,
                eof: false,
            },
            wbuf: Vec::new(),
            plaintext: 0,
            peer_closed: false,
            error: None,
        }
    }

    /// The server side's connection (for the client's certificate), if this is one.
    pub(crate) fn server(&self) -> Option<&rustls::ServerConnection> {
        match &self.conn {
            rustls::Connection::Server(s) => Some(s),
            rustls::Connection::Client(_) => None,
        }
    }

    async fn handshake(&mut self, limit: Duration) -> Result<(), HandshakeError> {
        let mut plain_http = false;
        let run = async {
            // A server's first byte tells a ClientHello (a TLS record, type 22) from an
            // HTTP request (a method, in capitals): someone who typed http:// for an
            // https:// address gets an answer they can read instead of TLS garbage.
            if self.server().is_some()
                && self
                    .first_byte()
                    .await?
                    .is_some_and(|b| b.is_ascii_uppercase())
            {
                plain_http = true;
                let (res, _) = self.tcp.write_all(PLAIN_HTTP_ANSWER).await;
                res?;
                let _ = crate::sys::shutdown_write(self.tcp.as_raw_fd());
                return Err(io::Error::from(io::ErrorKind::InvalidData));
            }
            while self.conn.is_handshaking() {
                if self.conn.wants_write() {
                    self.flush().await?;
                    continue;
                }
                self.fill().await?;
                if self.incoming.eof && self.conn.is_handshaking() {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                }
            }
            // The last flight (server Finished, tickets) goes out before any request.
            self.flush().await
        };
        let outcome = monoio::time::timeout(limit, run).await;
        if plain_http {
            return Err(HandshakeError::NotTls);
        }
        match outcome {
            Err(_) => Err(HandshakeError::Timeout),
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(match self.error.take() {
                Some(tls) => HandshakeError::Tls(tls),
                None => HandshakeError::Io(e),
            }),
        }
    }

    /// The first byte the peer sent (waiting for it), left buffered for rustls; `None`
    /// when the connection ended first.
    async fn first_byte(&mut self) -> io::Result<Option<u8>> {
        self.incoming.refill(&mut self.tcp).await?;
        Ok(self.incoming.buf.get(self.incoming.pos).copied())
    }

    /// Read plaintext into the spare capacity of `buf` (at least `TLS_READ` of it).
    async fn read_spare(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        loop {
            // Check: decrypted bytes are waiting. Copy exactly those (rustls copies into
            // an initialised slice, so the room is zeroed first: only as much as will be
            // filled, not the whole spare capacity, which small requests would pay for).
            if self.plaintext > 0 {
                let len = buf.len();
                let room = (buf.capacity() - len).max(TLS_READ).min(self.plaintext);
                buf.resize(len + room, 0);
                let read = self.conn.reader().read(&mut buf[len..]);
                let n = *read.as_ref().unwrap_or(&0);
                buf.truncate(len + n);
                self.plaintext -= n.min(self.plaintext);
                return read;
            }
            // Nothing decrypted: the peer said it is done (close_notify) or the socket
            // ended; for HTTP a cut message is the framing code's call, as on plain TCP.
            if self.peer_closed || self.incoming.eof {
                return Ok(0);
            }
            // Need more: one read of ciphertext, decrypted into rustls's buffer.
            self.fill().await?;
        }
    }

    /// Hand rustls more ciphertext: what is left buffered, else one read from the
    /// socket. Anything rustls wants to send in reply (alerts, key updates) goes out.
    async fn fill(&mut self) -> io::Result<()> {
        if self.incoming.is_drained() && self.incoming.eof {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.incoming.refill(&mut self.tcp).await?;
        self.incoming.feed(&mut self.conn)?;
        self.process().await
    }

    async fn process(&mut self) -> io::Result<()> {
        match self.conn.process_new_packets() {
            Ok(state) => {
                self.plaintext = state.plaintext_bytes_to_read();
                self.peer_closed = state.peer_has_closed();
                if self.conn.wants_write() {
                    self.flush().await?;
                }
                Ok(())
            }
            Err(e) => {
                // rustls queued an alert that tells the peer why; send it if we can.
                // Boxed: a timer inline would make every read's future larger.
                let _ = Box::pin(monoio::time::timeout(Duration::from_secs(1), self.flush())).await;
                let err = io::Error::new(io::ErrorKind::InvalidData, e.clone());
                self.error = Some(e);
                Err(err)
            }
        }
    }

    /// Send every record rustls has ready.
    async fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            let mut buf = std::mem::take(&mut self.wbuf);
            buf.clear();
            while self.conn.wants_write() {
                self.conn.write_tls(&mut buf)?;
            }
            let (res, buf) = self.tcp.write_all(buf).await;
            self.wbuf = buf;
            res?;
        }
        Ok(())
    }

    /// Encrypt and send all of `bytes`.
    async fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = self.conn.writer().write(bytes)?;
            bytes = &bytes[n..];
            // rustls buffers a bounded amount: send what it has before giving it more.
            self.flush().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_plain_http_answer_is_one_well_framed_response() {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(super::PLAIN_HTTP_ANSWER) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("{other:?}"),
        };
        assert_eq!(response.code, Some(400));
        let length = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok());
        assert_eq!(length, Some(super::PLAIN_HTTP_ANSWER.len() - head));
    }
}

/// A plain stream switched between readiness and completion (as around a splice) keeps
/// working in both, on both of the worker's runtimes, over real loopback sockets.
#[cfg(test)]
mod switching_tests {
    use super::*;
    use std::time::Duration;

    /// What `b` receives of `a`'s next write, or the read's error; bounded in time.
    async fn exchange(a: &mut Stream, b: &mut Stream, bytes: &[u8]) -> io::Result<Vec<u8>> {
        let (res, _) = a.write_range(bytes.to_vec(), 0..bytes.len()).await;
        res?;
        let mut got = Vec::with_capacity(64);
        while got.len() < bytes.len() {
            let (res, buf) = b.read_spare(got).await;
            got = buf;
            if res? == 0 {
                break;
            }
        }
        Ok(got)
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connect = TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        (connect, accepted)
    }

    async fn switch_back_and_forth() {
        let (a, b) = pair().await;
        let (mut a, mut b) = (Stream::readiness(a), Stream::readiness(b));
        assert!(
            matches!(a, Stream::Polled(_, SendMode::Direct)),
            "readiness-driven from the start"
        );
        assert_eq!(exchange(&mut a, &mut b, b"one").await.unwrap(), b"one");
        assert_eq!(exchange(&mut b, &mut a, b"two").await.unwrap(), b"two");

        // As for a splice: completion IO, then back to readiness.
        assert!(splice_pair(&mut a, &mut b).is_some());
        assert!(matches!(a, Stream::Plain(..)) && matches!(b, Stream::Plain(..)));
        assert_eq!(exchange(&mut a, &mut b, b"three").await.unwrap(), b"three");
        // Bytes that arrive while the socket is on completion IO are read after the
        // switch back: the readiness already there is not lost with the switch.
        let (res, _) = b.write_range(b"four".to_vec(), 0..4).await;
        res.unwrap();
        a.back_to_readiness();
        assert!(matches!(a, Stream::Polled(..)));
        let (res, got) = a.read_spare(Vec::with_capacity(16)).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(got, b"four");
        // One side readiness-driven, the other on completion IO, then both back.
        assert_eq!(exchange(&mut a, &mut b, b"five").await.unwrap(), b"five");
        b.back_to_readiness();
        assert_eq!(exchange(&mut b, &mut a, b"six").await.unwrap(), b"six");

        // The peer's close reads as the end of the stream.
        drop(b);
        let (res, _) = a.read_spare(Vec::with_capacity(16)).await;
        assert_eq!(res.unwrap(), 0);
    }

    /// A runtime on monoio's epoll driver, as a worker gets where io_uring is refused.
    fn epoll_runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
    }

    async fn bounded(fut: impl std::future::Future<Output = ()>) {
        monoio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("the exchange took more than 10 s");
    }

    #[test]
    fn switching_keeps_a_stream_usable_on_io_uring() {
        let Ok(mut rt) = crate::worker::build_uring() else {
            // No io_uring here (old kernel or seccomp): the epoll test below still runs.
            return;
        };
        rt.block_on(bounded(switch_back_and_forth()));
    }

    /// A client stream made as a worker on io_uring makes it, and its upstream-like peer.
    async fn ring_client_pair() -> (Stream, Stream) {
        let (a, b) = pair().await;
        (Stream::client(a, true), Stream::readiness(b))
    }

    /// A client stream on io_uring: its sends go through the ring on a duplicate
    /// descriptor, made at the first send and kept across a splice's switch; the bytes
    /// arrive whole and in order, small or larger than the socket buffers.
    async fn client_sends_through_the_ring() {
        let (mut a, mut b) = ring_client_pair().await;
        assert!(matches!(a, Stream::Polled(_, SendMode::Ring(None))));
        assert_eq!(exchange(&mut a, &mut b, b"one").await.unwrap(), b"one");
        assert!(
            matches!(a, Stream::Polled(_, SendMode::Ring(Some(_)))),
            "the first send made the ring-side duplicate"
        );
        assert_eq!(exchange(&mut b, &mut a, b"two").await.unwrap(), b"two");

        // 4 MiB (more than loopback's socket buffers hold): short sends are resumed,
        // while the peer reads concurrently.
        let big: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
        let expected = big.clone();
        let reader = monoio::spawn(async move {
            let mut got = Vec::with_capacity(64 << 10);
            while got.len() < expected.len() {
                if got.capacity() - got.len() < 16 << 10 {
                    got.reserve(64 << 10);
                }
                let (res, buf) = b.read_spare(got).await;
                got = buf;
                if res.expect("read") == 0 {
                    break;
                }
            }
            assert!(got == expected, "the peer received the bytes in order");
            b
        });
        let len = big.len();
        let (res, _) = a.write_range(big, 0..len).await;
        res.unwrap();
        let mut b = reader.await;

        // Around a splice the mode and its duplicate stay with the stream.
        assert!(splice_pair(&mut a, &mut b).is_some());
        assert!(matches!(a, Stream::Plain(_, SendMode::Ring(Some(_)))));
        a.back_to_readiness();
        b.back_to_readiness();
        assert!(matches!(a, Stream::Polled(_, SendMode::Ring(Some(_)))));
        assert_eq!(exchange(&mut a, &mut b, b"three").await.unwrap(), b"three");

        // Dropped, the stream closes both of its descriptors: the peer reads the end of
        // the stream, which it would not while the duplicate stayed open.
        drop(a);
        let (res, _) = b.read_spare(Vec::with_capacity(16)).await;
        assert_eq!(res.unwrap(), 0);
    }

    /// A ring send cut short (its future dropped while the peer reads nothing) leaves no
    /// descriptor behind: once the stream is dropped too, the peer reads to the end.
    async fn a_cancelled_ring_send_closes_with_the_stream() {
        let (mut a, mut b) = ring_client_pair().await;
        let big = vec![7u8; 16 << 20];
        let len = big.len();
        let sent = monoio::time::timeout(Duration::from_millis(50), a.write_range(big, 0..len));
        assert!(sent.await.is_err(), "16 MiB to a peer that reads nothing");
        drop(a);
        let mut total = 0usize;
        let mut buf = Vec::with_capacity(256 << 10);
        loop {
            buf.clear();
            let (res, back) = b.read_spare(buf).await;
            buf = back;
            match res.expect("read") {
                0 => break,
                n => total += n,
            }
        }
        assert!(
            total < len,
            "the send was cut short ({total} bytes arrived)"
        );
    }

    #[test]
    fn client_sends_go_through_the_ring_on_io_uring() {
        let Ok(mut rt) = crate::worker::build_uring() else {
            return; // no io_uring here: client streams send directly (next test)
        };
        rt.block_on(bounded(client_sends_through_the_ring()));
        rt.block_on(bounded(a_cancelled_ring_send_closes_with_the_stream()));
    }

    #[test]
    fn client_sends_are_direct_on_epoll() {
        let mut rt = epoll_runtime();
        rt.block_on(bounded(async {
            let (a, b) = pair().await;
            let (mut a, mut b) = (Stream::client(a, false), Stream::readiness(b));
            assert_eq!(exchange(&mut a, &mut b, b"one").await.unwrap(), b"one");
            assert!(matches!(a, Stream::Polled(_, SendMode::Direct)));
        }));
    }

    /// A readiness-driven read that has to wait gives its lent buffer back while it
    /// waits (so an idle connection holds none), and reads into one when data comes.
    async fn a_waiting_lent_read_holds_no_buffer() {
        let (a, b) = pair().await;
        let (mut a, mut b) = (Stream::readiness(a), Stream::readiness(b));
        let spare = read_buffers::spare_count();
        let mut read = std::pin::pin!(b.read_lent());
        // Polled once with nothing sent yet: the read must wait.
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(read.as_mut(), cx))
        })
        .await;
        assert!(first.is_pending(), "read with nothing sent");
        assert_eq!(
            read_buffers::spare_count(),
            spare + 1,
            "the waiting read kept its buffer"
        );
        let (res, _) = a.write_range(b"hello".to_vec(), 0..5).await;
        res.unwrap();
        let (res, buf) = read.await;
        assert_eq!(&buf[..res.unwrap()], b"hello");
        assert!(buf.capacity() >= read_buffers::READ_BUFFER);
        assert_eq!(
            read_buffers::spare_count(),
            spare,
            "the read took the spare buffer"
        );
    }

    #[test]
    fn a_waiting_lent_read_holds_no_buffer_on_epoll_and_io_uring() {
        let mut rt = epoll_runtime();
        rt.block_on(bounded(a_waiting_lent_read_holds_no_buffer()));
        if let Ok(mut rt) = crate::worker::build_uring() {
            rt.block_on(bounded(a_waiting_lent_read_holds_no_buffer()));
        }
    }

    #[test]
    fn switching_keeps_a_stream_usable_on_epoll() {
        let mut rt = epoll_runtime();
        rt.block_on(bounded(switch_back_and_forth()));
    }
}

//! Moving bytes between a client and a backend: the zero-copy `splice(2)` relay and the
//! buffered copy relay kept beside it for comparison and for sockets splice cannot serve.
//!
//! Both honour half-close (end-of-stream from one side becomes `shutdown(SHUT_WR)` on the
//! other, and the opposite direction keeps flowing) and an idle timeout shared by the two
//! directions.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use monoio::time::Sleep;

use super::core::Core;
use super::stream::{ReadHalf, Stream, WriteHalf};
use crate::metrics::ListenerStats;
use crate::sys::{self, Pipe};
use std::sync::atomic::{AtomicU64, Ordering};

/// A read shorter than this is taken to mean the socket's receive queue is now empty.
const SMALL_READ: usize = 16 * 1024;

/// How a relay ended when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayOutcome {
    /// Both directions reached end-of-stream and were shut down in order.
    Finished,
    /// Neither side sent a byte for the idle timeout.
    IdleTimeout,
}

/// Relay with splice: socket -> pipe -> socket in each direction, all inside the kernel.
///
/// Both sockets must already be `O_NONBLOCK`. Readiness is awaited through the runtime
/// (io_uring poll or epoll) and the splice calls run right here on the worker's core;
/// io_uring's own SPLICE op is avoided because it runs on io-wq kernel threads that
/// escape core pinning.
pub async fn splice_relay(
    core: &Core,
    client: &TcpStream,
    backend: &TcpStream,
    pipe_bytes: usize,
    idle: Duration,
    stats: &ListenerStats,
) -> io::Result<RelayOutcome> {
    let upstream_pipe = core.take_pipe(pipe_bytes)?;
    let downstream_pipe = core.take_pipe(pipe_bytes)?;
    let activity = Cell::new(Instant::now());
    let upstream = splice_direction(client, backend, &upstream_pipe, &activity, &stats.bytes_in);
    let downstream = splice_direction(
        backend,
        client,
        &downstream_pipe,
        &activity,
        &stats.bytes_out,
    );
    let timer = pin!(monoio::time::sleep(idle));
    let outcome = race_idle(both(upstream, downstream), &activity, idle, timer).await;
    // Only a relay that finished cleanly is known to leave its pipes empty; any other
    // ending may leave bytes inside, so those pipes are closed, never reused.
    if let Ok(RelayOutcome::Finished) = outcome {
        core.recycle_pipe(upstream_pipe);
        core.recycle_pipe(downstream_pipe);
    }
    outcome
}

/// One direction of the splice relay, until end-of-stream has been passed on.
async fn splice_direction(
    src: &TcpStream,
    dst: &TcpStream,
    pipe: &Pipe,
    activity: &Cell<Instant>,
    moved: &AtomicU64,
) -> io::Result<()> {
    let (src_fd, dst_fd) = (src.as_raw_fd(), dst.as_raw_fd());
    let capacity = pipe.capacity();
    // Bytes sitting in the pipe, read from `src` but not yet written to `dst`.
    let mut buffered = 0usize;
    let mut eof = false;
    // Set after a small read: the source socket is very likely empty now, so the next
    // fill waits for readiness first instead of spending a splice call on EAGAIN. For
    // request/response traffic that speculative call was a third of all splices; for
    // bulk streams reads are large and the speculative call usually moves data.
    let mut probably_empty = false;
    let mut share = FairShare::default();
    loop {
        if probably_empty && buffered == 0 && !eof {
            // Readiness waits are level-triggered (io_uring poll, or epoll plus a poll
            // check), so waiting here never misses bytes that are already queued.
            src.readable(false).await?;
            probably_empty = false;
        }
        // Fill: pull what the source has into the free part of the pipe. A full pipe
        // means `dst` is slower than `src`; we stop reading, which pushes back on `src`.
        if !eof && buffered < capacity {
            match fill(src_fd, pipe, capacity - buffered)? {
                Some(0) => eof = true,
                Some(n) => {
                    buffered += n;
                    probably_empty = n < SMALL_READ;
                    if !probably_empty {
                        // A bulk stream: its sender may be waiting for this ACK (see
                        // `push_ack`). Small reads are request/response traffic, where
                        // the ACK rides on the reply and an extra call would cost.
                        sys::push_ack(src_fd);
                    }
                    activity.set(Instant::now());
                }
                None if buffered == 0 => {
                    // Nothing to read and nothing to write: wait for the source.
                    src.readable(false).await?;
                    continue;
                }
                None => {}
            }
        }
        // Drain: push the pipe's bytes to the destination.
        if buffered > 0 {
            let n = drain(pipe, dst, buffered, moved, activity).await?;
            buffered -= n;
            // A stream whose two sides are always ready never waits above; without a
            // turn now and then it would keep the core from every other connection.
            if !(eof && buffered == 0) {
                take_turn(share.moved(n), src, dst, buffered).await?;
            }
        }
        if eof && buffered == 0 {
            // Pass the half-close on: the other side reads end-of-stream but may still
            // send its reply through the opposite direction.
            return shutdown_write(dst_fd);
        }
    }
}

/// Move exactly `len` bytes from `src` to `dst` through a pipe, zero-copy: an HTTP body
/// of known length. Never reads past `len`, so whatever follows on `src` (the next
/// response on a keep-alive connection) stays there.
///
/// The sockets are switched to `O_NONBLOCK` for the splice calls and put back as they
/// were afterwards, so the runtime's own operations on them behave as before. Ends with
/// an error when `src` closes early (a truncated body) or nothing moves for `idle`,
/// timed with `timer` (the HTTP connection's own, so this adds no timer entry to the
/// connection's future).
#[allow(clippy::too_many_arguments)]
pub async fn splice_exact(
    core: &Core,
    src: &TcpStream,
    dst: &TcpStream,
    len: u64,
    pipe_bytes: usize,
    idle: Duration,
    timer: Pin<&mut Sleep>,
    moved: &AtomicU64,
) -> io::Result<()> {
    let (src_fd, dst_fd) = (src.as_raw_fd(), dst.as_raw_fd());
    let src_was = sys::replace_nonblocking(src_fd, true)?;
    let dst_was = match sys::replace_nonblocking(dst_fd, true) {
        Ok(was) => was,
        Err(e) => {
            let _ = sys::replace_nonblocking(src_fd, src_was);
            return Err(e);
        }
    };
    let pipe = core.take_pipe(pipe_bytes);
    let result = match &pipe {
        Ok(pipe) => {
            let activity = Cell::new(Instant::now());
            let copy = splice_len(src, dst, pipe, len, &activity, moved);
            match race_idle(copy, &activity, idle, timer).await {
                Ok(RelayOutcome::Finished) => Ok(()),
                Ok(RelayOutcome::IdleTimeout) => Err(io::ErrorKind::TimedOut.into()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
    };
    let restored = sys::replace_nonblocking(src_fd, src_was)
        .and_then(|_| sys::replace_nonblocking(dst_fd, dst_was));
    // Only a pipe that moved everything is known to be empty.
    if let (Ok(()), Ok(pipe)) = (&result, pipe) {
        core.recycle_pipe(pipe);
    }
    result.and(restored.map(|_| ()))
}

/// The copy loop of [`splice_exact`]: fill the pipe with at most what is left of the
/// body, drain it, until `len` bytes have been written.
async fn splice_len(
    src: &TcpStream,
    dst: &TcpStream,
    pipe: &Pipe,
    len: u64,
    activity: &Cell<Instant>,
    moved: &AtomicU64,
) -> io::Result<()> {
    let src_fd = src.as_raw_fd();
    // At most a fair share in the pipe at once, and a turn for the other tasks on this
    // core after each share: a big pipe would otherwise let one body go out whole while
    // every other connection of the core waits (low median, long tail).
    let capacity = pipe.capacity().min(FAIR_SHARE);
    let (mut unread, mut buffered) = (len, 0usize);
    let mut share = FairShare::default();
    while unread > 0 || buffered > 0 {
        if unread > 0 && buffered < capacity {
            let want = (capacity - buffered).min(usize::try_from(unread).unwrap_or(usize::MAX));
            match fill(src_fd, pipe, want)? {
                Some(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Some(n) => {
                    // We read at the destination's pace; the sender of a long body may
                    // be waiting for the ACK the kernel would otherwise delay.
                    sys::push_ack(src_fd);
                    buffered += n;
                    unread -= n as u64;
                    activity.set(Instant::now());
                }
                None if buffered == 0 => {
                    src.readable(false).await?;
                    continue;
                }
                None => {}
            }
        }
        if buffered > 0 {
            let n = drain(pipe, dst, buffered, moved, activity).await?;
            buffered -= n;
            if unread > 0 || buffered > 0 {
                take_turn(share.moved(n), src, dst, buffered).await?;
            }
        }
    }
    Ok(())
}

/// Bytes one splice loop moves before letting the other tasks of its core run.
const FAIR_SHARE: usize = 128 * 1024;

/// Fair shares between two turns through the ring: 512 KiB, a fraction of a millisecond
/// of splicing on loopback.
const RING_TURN_SHARES: u32 = 4;

/// The turn a splice loop owes its core after moving some bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Turn {
    /// Within its share: go on.
    None,
    /// A share used: let every other ready task run once.
    Yield,
    /// Every few shares: yield, and wait once through the ring as well (see `take_turn`).
    Ring,
}

/// Counts what a splice loop moves and says when a turn is due: a loop whose sockets are
/// always ready never waits, so without turns one stream would keep the core to itself
/// (the other connections' latency, not this one's, pays).
#[derive(Debug, Default)]
struct FairShare {
    since_turn: usize,
    shares: u32,
}

impl FairShare {
    /// Count `n` bytes moved; the turn due now.
    fn moved(&mut self, n: usize) -> Turn {
        self.since_turn += n;
        if self.since_turn < FAIR_SHARE {
            return Turn::None;
        }
        self.since_turn = 0;
        // Wrapping: 2^32 shares is 512 TiB in one stream, but it must not panic.
        self.shares = self.shares.wrapping_add(1);
        if self.shares % RING_TURN_SHARES == 0 {
            Turn::Ring
        } else {
            Turn::Yield
        }
    }
}

/// Take `turn`. The ring turn matters on io_uring: the sockets the core drives by
/// readiness (plain HTTP connections) are polled only when the runtime goes to the kernel
/// to wait, which a task that is always runnable puts off. The wait is for what the loop
/// does next anyway (write if the pipe holds bytes, else read); it costs a round trip
/// through the ring, so not after every share.
async fn take_turn(
    turn: Turn,
    src: &TcpStream,
    dst: &TcpStream,
    buffered: usize,
) -> io::Result<()> {
    if turn == Turn::None {
        return Ok(());
    }
    yield_now().await;
    if turn == Turn::Ring {
        if buffered > 0 {
            dst.writable(false).await?;
        } else {
            src.readable(false).await?;
        }
    }
    Ok(())
}

/// Let every other ready task on this core run once, then go on: a task that never
/// waits (its sockets always ready) would otherwise keep the core to itself.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// One splice from the source socket into the pipe: `Some(n)` bytes moved (`Some(0)`:
/// end of stream), `None` when nothing can be read right now.
fn fill(src_fd: std::os::fd::RawFd, pipe: &Pipe, want: usize) -> io::Result<Option<usize>> {
    match sys::splice(src_fd, pipe.write_fd(), want) {
        Ok(n) => {
            super::busy_poll::note_activity();
            Ok(Some(n))
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// One splice from the pipe to the destination socket, counted in `moved`; when it can
/// take nothing now, wait until it is writable and report 0 bytes.
async fn drain(
    pipe: &Pipe,
    dst: &TcpStream,
    buffered: usize,
    moved: &AtomicU64,
    activity: &Cell<Instant>,
) -> io::Result<usize> {
    match sys::splice(pipe.read_fd(), dst.as_raw_fd(), buffered) {
        Ok(n) => {
            moved.fetch_add(n as u64, Ordering::Relaxed);
            activity.set(Instant::now());
            Ok(n)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            dst.writable(false).await?;
            Ok(0)
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// `shutdown(SHUT_WR)`, where a peer that already went away is not an error: its
/// direction is over either way.
fn shutdown_write(fd: std::os::fd::RawFd) -> io::Result<()> {
    match sys::shutdown_write(fd) {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// Relay through user-space buffers with the runtime's own read/write operations.
pub async fn buffered_relay(
    client: TcpStream,
    backend: TcpStream,
    buffer_bytes: usize,
    idle: Duration,
    stats: &ListenerStats,
) -> io::Result<RelayOutcome> {
    let (client, backend) = (Stream::completion(client), Stream::completion(backend));
    stream_relay(client, backend, buffer_bytes, idle, stats).await
}

/// Relay between two streams of any kind (TLS on either side included) through
/// user-space buffers, both directions at once: each has its own task-like future, so
/// a side that is slow to read never stops the other direction.
pub(crate) async fn stream_relay(
    client: Stream,
    backend: Stream,
    buffer_bytes: usize,
    idle: Duration,
    stats: &ListenerStats,
) -> io::Result<RelayOutcome> {
    let activity = Cell::new(Instant::now());
    let detached = || io::Error::new(io::ErrorKind::NotConnected, "stream already relayed");
    // The halves do not expose their socket; `push_ack` needs it.
    let (client_fd, backend_fd) = (client.fd(), backend.fd());
    let (client_read, client_write) = client.into_split().ok_or_else(detached)?;
    let (backend_read, backend_write) = backend.into_split().ok_or_else(detached)?;
    let upstream = copy_direction(
        client_read,
        client_fd,
        backend_write,
        buffer_bytes,
        &activity,
        &stats.bytes_in,
    );
    let downstream = copy_direction(
        backend_read,
        backend_fd,
        client_write,
        buffer_bytes,
        &activity,
        &stats.bytes_out,
    );
    let timer = pin!(monoio::time::sleep(idle));
    race_idle(both(upstream, downstream), &activity, idle, timer).await
}

/// One direction of [`stream_relay`]: read, write it all, until end-of-stream has been
/// passed on. `src_fd` is `src`'s socket, for [`sys::push_ack`].
async fn copy_direction(
    mut src: ReadHalf,
    src_fd: Option<std::os::fd::RawFd>,
    mut dst: WriteHalf,
    buffer_bytes: usize,
    activity: &Cell<Instant>,
    moved: &AtomicU64,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(buffer_bytes);
    loop {
        let (res, b) = src.read(buf).await;
        buf = b;
        super::busy_poll::note_activity();
        match res {
            Ok(0) => return dst.shutdown().await,
            Ok(n) => {
                if let Some(fd) = src_fd.filter(|_| n >= SMALL_READ) {
                    // As in the splice relay: a bulk sender may be waiting for this ACK.
                    sys::push_ack(fd);
                }
                activity.set(Instant::now());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let (res, b) = dst.write_all(buf).await;
        buf = b;
        res?;
        moved.fetch_add(buf.len() as u64, Ordering::Relaxed);
        activity.set(Instant::now());
    }
}

/// Run two directions together: done when both are done, failed as soon as either fails
/// (a reset on one side ends the whole connection; the other side is then closed).
async fn both<A, B>(a: A, b: B) -> io::Result<()>
where
    A: Future<Output = io::Result<()>>,
    B: Future<Output = io::Result<()>>,
{
    let mut a = pin!(a);
    let mut b = pin!(b);
    let (mut a_done, mut b_done) = (false, false);
    std::future::poll_fn(|cx| {
        if !a_done {
            if let Poll::Ready(r) = a.as_mut().poll(cx) {
                r?;
                a_done = true;
            }
        }
        if !b_done {
            if let Poll::Ready(r) = b.as_mut().poll(cx) {
                r?;
                b_done = true;
            }
        }
        if a_done && b_done {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Run `relay` until it ends or until `activity` is older than `idle`.
///
/// The timer is re-armed to the last activity instead of on every byte, so a busy
/// connection costs one timer wake-up per idle period, not one per transfer.
async fn race_idle<F>(
    relay: F,
    activity: &Cell<Instant>,
    idle: Duration,
    mut timer: Pin<&mut Sleep>,
) -> io::Result<RelayOutcome>
where
    F: Future<Output = io::Result<()>>,
{
    let watchdog = async move {
        loop {
            let deadline = activity.get() + idle;
            if Instant::now() >= deadline {
                return;
            }
            timer.as_mut().reset(deadline.into());
            timer.as_mut().await;
        }
    };
    let mut relay = pin!(relay);
    let mut watchdog = pin!(watchdog);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = relay.as_mut().poll(cx) {
            return Poll::Ready(r.map(|()| RelayOutcome::Finished));
        }
        if watchdog.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(RelayOutcome::IdleTimeout));
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (bytes moved by one drain, turn due after it), in sequence on one counter.
    const DRAINS: &[(usize, Turn)] = &[
        (0, Turn::None),
        (FAIR_SHARE - 1, Turn::None),
        (1, Turn::Yield), // share 1: exactly a share
        (FAIR_SHARE / 2, Turn::None),
        (FAIR_SHARE, Turn::Yield), // share 2: over a share; the excess is not carried
        (FAIR_SHARE, Turn::Yield), // share 3
        (FAIR_SHARE, Turn::Ring),  // share 4: every RING_TURN_SHARES-th
        (10 * FAIR_SHARE, Turn::Yield), // one huge drain is still one share
        (1, Turn::None),
    ];

    #[test]
    fn fair_share_turns_after_each_share_and_through_the_ring_every_few() {
        assert_eq!(
            RING_TURN_SHARES, 4,
            "the table assumes a ring turn every 4th share"
        );
        let mut share = FairShare::default();
        for (i, &(n, turn)) in DRAINS.iter().enumerate() {
            assert_eq!(share.moved(n), turn, "drain {i} of {n} bytes");
        }
    }

    #[test]
    fn fair_share_count_wraps_instead_of_overflowing() {
        let mut share = FairShare {
            since_turn: 0,
            shares: u32::MAX,
        };
        // u32::MAX + 1 wraps to 0, a multiple of RING_TURN_SHARES.
        assert_eq!(share.moved(FAIR_SHARE), Turn::Ring);
        assert_eq!(share.moved(FAIR_SHARE), Turn::Yield);
    }
}

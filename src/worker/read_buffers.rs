//! The worker's spare buffers, lent to HTTP connections for as long as they hold
//! unconsumed bytes (reads) or an exchange is under way (the heads they write).
//!
//! Why: most keep-alive connections are idle most of the time, and an idle connection
//! needs no buffer. A connection that owned a 16 KiB read buffer for its whole life, one
//! for its client and one for its upstream, made an idle keep-alive connection cost the
//! proxy about 18 kB (`bench/idle_memory.sh`), against 1–2 kB for HAProxy and nginx,
//! which also take buffers from a pool only when data arrives. Here a connection gives
//! its buffers back when an exchange ends with nothing left in them, and a socket driven
//! by readiness borrows one only for the instant of a read that finds data
//! ([`super::stream::Stream::read_lent`]), so a connection waiting for its next request
//! holds none.
//!
//! The pool is per worker thread (thread-per-core: nothing shared, no lock), and taking
//! or giving a buffer is a push or pop on a vector: no allocation per request once the
//! worker has as many buffers as it has connections with bytes in flight. It keeps at
//! most [`KEEP_MAX`] buffers; beyond that, and for buffers grown past [`CAPACITY_MAX`]
//! by a large body, a returned buffer is freed.

use std::cell::RefCell;

/// The capacity of a new buffer: room for a typical request or response head, and for
/// each read of a head.
pub(crate) const READ_BUFFER: usize = 16 * 1024;
/// Buffers kept per worker (at most 4 MiB at [`READ_BUFFER`] each, more only for buffers
/// that grew): enough for every connection of a busy worker that is mid-exchange.
const KEEP_MAX: usize = 256;
/// Buffers that grew larger than this (bodies read in big pieces) are freed, not kept:
/// the pool should not hold on to the peak of one large transfer.
const CAPACITY_MAX: usize = 128 * 1024;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with at least [`READ_BUFFER`] bytes of capacity: a spare one if the
/// worker has one, else a new one.
pub(crate) fn take() -> Vec<u8> {
    SPARE
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(READ_BUFFER))
}

/// Give a buffer back (its contents are dropped). Kept for the next [`take`] unless
/// the pool is full or the buffer is too small or too large to be worth keeping.
pub(crate) fn give(mut buf: Vec<u8>) {
    if !(READ_BUFFER..=CAPACITY_MAX).contains(&buf.capacity()) {
        return;
    }
    buf.clear();
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < KEEP_MAX {
            spare.push(buf);
        }
    });
}

/// A buffer taken from the pool on first use ([`LentBuf::start`]) and given back by
/// [`LentBuf::give_back`] or when dropped: for bytes a connection needs only while they
/// are in flight, such as what it has read and not consumed, and the heads it writes.
#[derive(Default)]
pub(crate) struct LentBuf(Vec<u8>);

impl LentBuf {
    /// The buffer, emptied, taken from the pool if this holds none.
    pub(crate) fn start(&mut self) -> &mut Vec<u8> {
        if self.0.capacity() == 0 {
            self.0 = take();
        }
        self.0.clear();
        &mut self.0
    }

    /// Give the buffer back to the pool; the next [`start`](Self::start) takes one again.
    pub(crate) fn give_back(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

impl From<Vec<u8>> for LentBuf {
    /// Holding `buf` (bytes already read, say), given to the pool like a lent one.
    fn from(buf: Vec<u8>) -> Self {
        LentBuf(buf)
    }
}

impl Drop for LentBuf {
    fn drop(&mut self) {
        self.give_back();
    }
}

impl std::ops::Deref for LentBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for LentBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

/// How many spare buffers this worker holds (for tests).
#[cfg(test)]
pub(crate) fn spare_count() -> usize {
    SPARE.with(|spare| spare.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_taken_again_empty_with_its_capacity() {
        let mut buf = take();
        assert!(buf.is_empty());
        assert!(buf.capacity() >= READ_BUFFER);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let ptr = buf.as_ptr();
        let before = spare_count();
        give(buf);
        assert_eq!(spare_count(), before + 1);
        let again = take();
        assert_eq!(again.as_ptr(), ptr, "the spare buffer was not reused");
        assert!(again.is_empty());
        assert_eq!(spare_count(), before);
    }

    /// (capacity of the returned buffer, kept)
    const SIZES: &[(usize, bool)] = &[
        (0, false),
        (READ_BUFFER - 1, false),
        (READ_BUFFER, true),
        (64 * 1024, true),
        (CAPACITY_MAX, true),
        (CAPACITY_MAX + 1, false),
        (1 << 20, false),
    ];

    #[test]
    fn only_buffers_of_a_useful_size_are_kept() {
        for &(capacity, kept) in SIZES {
            let before = spare_count();
            give(Vec::with_capacity(capacity));
            let after = spare_count();
            assert_eq!(after == before + 1, kept, "capacity {capacity}");
            if kept {
                let _ = take();
            }
        }
    }

    #[test]
    fn a_lent_buffer_is_taken_on_start_and_given_back_when_done() {
        // A thread of its own, so the pool starts empty and the counts are exact.
        std::thread::spawn(|| {
            give(Vec::with_capacity(READ_BUFFER));
            let mut lent = LentBuf::default();
            assert_eq!(lent.capacity(), 0, "a new LentBuf holds no buffer");
            lent.start().extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            assert_eq!(spare_count(), 0, "start took the spare buffer");
            assert!(lent.start().is_empty(), "start empties the buffer it holds");
            assert_eq!(spare_count(), 0, "a second start takes no other buffer");
            lent.give_back();
            assert_eq!((lent.capacity(), spare_count()), (0, 1));
            lent.start();
            drop(lent);
            assert_eq!(spare_count(), 1, "dropping gives the buffer back");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_pool_is_bounded() {
        // A thread of its own: the pool is per thread, and this one starts empty.
        std::thread::spawn(|| {
            for _ in 0..KEEP_MAX + 10 {
                give(Vec::with_capacity(READ_BUFFER));
            }
            assert_eq!(spare_count(), KEEP_MAX);
        })
        .join()
        .unwrap();
    }
}

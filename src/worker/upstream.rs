//! A worker core's idle keep-alive upstream HTTP connections, by backend address.
//!
//! Per core and unshared like everything else on the data path: a connection opened by
//! this core is only ever reused by this core, so taking one is a hash lookup and a
//! `pop`, with no lock and no atomic. Keyed by address rather than by pool index so a
//! reload that reorders pools or backends keeps every warm connection usable.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::time::Instant;

use super::stream::Stream;

/// What an idle connection is for: a backend address, and the TLS settings it was made
/// with (a backend reached by a plain pool and a TLS pool gets two lists, so a request
/// never goes out in the wrong one, and a reload that changes how backends are verified
/// does not reuse connections verified the old way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdleKey {
    /// The backend's address.
    pub addr: SocketAddr,
    /// [`PoolTls::identity`](crate::config::PoolTls::identity), or 0 for plain TCP.
    pub tls: u64,
}

/// One idle connection and when it stops being worth keeping.
struct Idle {
    stream: Stream,
    expires: Instant,
}

/// Idle upstream connections of one core.
#[derive(Default)]
pub struct IdlePool {
    /// Looked up twice per proxied request. The keys come from the config, never from a
    /// client, so a flooding-resistant hash (SipHash, the default) buys nothing here;
    /// FxHash costs a few instructions instead of a few hundred.
    by_backend: HashMap<IdleKey, VecDeque<Idle>, BuildHasherDefault<rustc_hash::FxHasher>>,
    /// Connections held, all backends together (for sweeping cheaply when zero).
    held: usize,
}

impl IdlePool {
    /// The most recently parked, still fit connection to `addr`, if any.
    ///
    /// Most recent first: it is the least likely to have hit the server's own idle
    /// timeout, and leaving the older ones to expire lets the pool shrink after a burst.
    /// Expired and unfit ones met on the way are closed.
    ///
    /// `peek` checks that the server has not closed it meanwhile (a system call). A
    /// request that may be sent again on a fresh connection skips it: a stale connection
    /// then fails before any response byte and the request is retried, so the check
    /// would only cost a system call on every request of a busy connection.
    pub(super) fn take(&mut self, key: IdleKey, now: Instant, peek: bool) -> Option<Stream> {
        let list = self.by_backend.get_mut(&key)?;
        while let Some(idle) = list.pop_back() {
            self.held -= 1;
            let fit = idle.expires > now
                && (!peek
                    || idle
                        .stream
                        .fd()
                        .is_some_and(crate::sys::idle_connection_fit));
            if fit {
                return Some(idle.stream);
            }
        }
        None
    }

    /// Park `stream` (whose last response was read whole and nothing more arrived) for
    /// reuse until `now + idle`; beyond `max_idle` for this backend the oldest one goes.
    pub(super) fn put(
        &mut self,
        key: IdleKey,
        stream: Stream,
        now: Instant,
        idle: std::time::Duration,
        max_idle: usize,
    ) {
        if max_idle == 0 {
            return;
        }
        let list = self.by_backend.entry(key).or_default();
        while list.len() >= max_idle {
            list.pop_front();
            self.held -= 1;
        }
        list.push_back(Idle {
            stream,
            expires: now + idle,
        });
        self.held += 1;
    }

    /// Close every connection whose idle time is over, so backends are not held open by
    /// a proxy that no longer sends them traffic. Called on the worker's tick.
    pub fn sweep(&mut self, now: Instant) {
        if self.held == 0 {
            return;
        }
        let mut held = 0;
        for list in self.by_backend.values_mut() {
            // Parked in time order, so the expired ones are at the front.
            while list.front().is_some_and(|i| i.expires <= now) {
                list.pop_front();
            }
            held += list.len();
        }
        self.held = held;
    }

    /// Close every idle connection (a graceful stop).
    pub fn clear(&mut self) {
        self.by_backend.clear();
        self.held = 0;
    }
}

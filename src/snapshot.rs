//! What the control thread publishes and every worker reads: an immutable view of the
//! validated config plus each backend's state.
//!
//! Workers never lock to read it: [`SharedSnapshot::load_if_changed`] costs one atomic
//! load when nothing changed (the usual case), and a new snapshot is only cloned into a
//! worker's own memory when the generation moves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;

/// Whether the balancer may send new traffic to a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendState {
    /// Healthy: receives new connections.
    Usable,
    /// Failed its checks or was ejected: receives nothing new.
    Down,
}

/// Per-pool state in a snapshot, indexed like `Config::pools[i].backends`.
#[derive(Clone, Debug)]
pub struct PoolState {
    /// State of each backend, same order as the config's backends.
    pub backends: Box<[BackendState]>,
}

/// One immutable, published view of the world.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every publication; workers compare it to notice changes.
    pub generation: u64,
    /// The validated configuration in force.
    pub config: Arc<Config>,
    /// Backend states, indexed like `config.pools`.
    pub pools: Box<[PoolState]>,
}

impl Snapshot {
    /// The first snapshot for a config: every backend usable until a check says otherwise.
    pub fn initial(config: Arc<Config>) -> Snapshot {
        let pools = config
            .pools
            .iter()
            .map(|p| PoolState {
                backends: vec![BackendState::Usable; p.backends.len()].into_boxed_slice(),
            })
            .collect();
        Snapshot {
            generation: 1,
            config,
            pools,
        }
    }
}

/// The publication point shared by the control thread (writer) and the workers (readers).
#[derive(Debug)]
pub struct SharedSnapshot {
    current: ArcSwap<Snapshot>,
    generation: AtomicU64,
}

impl SharedSnapshot {
    /// Start publishing `first`.
    pub fn new(first: Snapshot) -> SharedSnapshot {
        let generation = AtomicU64::new(first.generation);
        SharedSnapshot {
            current: ArcSwap::from_pointee(first),
            generation,
        }
    }

    /// Replace the published snapshot. Readers see either the old or the new one, whole.
    pub fn publish(&self, mut next: Snapshot) {
        next.generation = self.generation.load(Ordering::Relaxed) + 1;
        let generation = next.generation;
        self.current.store(Arc::new(next));
        // Release pairs with the Acquire in `load_if_changed`: a reader that sees the new
        // generation also sees the snapshot stored before it.
        self.generation.store(generation, Ordering::Release);
    }

    /// The current snapshot (clones the `Arc`: for slow paths and the control thread).
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The current snapshot if its generation differs from `seen`, else `None`.
    ///
    /// This is the per-connection read on the data path: one atomic load of a counter
    /// that only changes on publication, so the cache line stays shared across cores
    /// and no reference count is touched in the common case.
    pub fn load_if_changed(&self, seen: u64) -> Option<Arc<Snapshot>> {
        if self.generation.load(Ordering::Acquire) == seen {
            None
        } else {
            Some(self.current.load_full())
        }
    }
}

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

/// Per-pool state in a snapshot, indexed like `Config::pools[i].backends`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolState {
    /// Whether each backend may receive new connections (health, ejection, drain,
    /// backup and panic mode already folded in by the control thread).
    pub usable: Box<[bool]>,
    /// Effective weight of each backend (slow start ramps it up after recovery).
    pub weights: Box<[u32]>,
    /// True when too few backends are healthy and health is being ignored.
    pub panic: bool,
}

impl PoolState {
    /// Every primary backend usable at its configured weight; backups idle.
    pub fn all_usable(pool: &crate::config::Pool) -> PoolState {
        let any_primary = pool.backends.iter().any(|b| !b.backup);
        PoolState {
            usable: pool
                .backends
                .iter()
                .map(|b| !b.backup || !any_primary)
                .collect(),
            weights: pool.backends.iter().map(|b| b.weight).collect(),
            panic: false,
        }
    }
}

/// One immutable, published view of the world.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every publication; workers compare it to notice changes.
    pub generation: u64,
    /// Increases only when a new config is loaded; passive events carry it so the
    /// control thread can ignore events about indices of an older config.
    pub config_generation: u64,
    /// The validated configuration in force.
    pub config: Arc<Config>,
    /// Backend states, indexed like `config.pools`.
    pub pools: Box<[PoolState]>,
}

impl Snapshot {
    /// The first snapshot for a config: every primary usable until a check says otherwise.
    pub fn initial(config: Arc<Config>) -> Snapshot {
        let pools = config.pools.iter().map(PoolState::all_usable).collect();
        Snapshot {
            generation: 1,
            config_generation: 1,
            config,
            pools,
        }
    }

    /// Index of the listener called `name` in this snapshot's config.
    pub fn listener_index(&self, name: &str) -> Option<usize> {
        self.config.listeners.iter().position(|l| l.name == name)
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

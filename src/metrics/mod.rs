//! Metrics that cost the data path nothing but uncontended atomic adds.
//!
//! * **Counters and gauges** live in per-core, per-object structs ([`ListenerStats`],
//!   [`BackendStats`]) whose atomics exactly one core writes (`Relaxed` `fetch_add`, never
//!   contended, never sharing a written cache line with another core's object). The control
//!   thread reads and sums them over cores when scraped.
//! * **Histograms** are recorded core-locally with plain `&mut` ([`CoreHistograms`]) and
//!   shipped to the control thread about once a second as a [`HistogramBatch`], where
//!   [`Registry::merge`] folds them in.
//! * **Registration** ([`Registry::listener`], [`Registry::backend`]) happens when a worker
//!   builds its view of the config, never per connection, so it may take the registry's
//!   mutex. The same name on the same core yields the same `Arc`, which is what keeps
//!   counters monotonic across config reloads.
//!
//! The control thread renders everything as Prometheus text ([`Registry::render_prometheus`])
//! or JSON ([`Registry::render_stats_json`]).

mod histograms;
mod render;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use self::histograms::Merged;
pub use self::histograms::{
    new_histogram, CoreHistograms, HistogramBatch, HistogramKind, HIGHEST_MICROS, LOWEST_MICROS,
    SIGNIFICANT_FIGURES,
};

/// Counters for one listener on one core. Written only by that core.
///
/// Aligned to 128 bytes (two cache lines, the unit adjacent-line prefetchers pull in) so
/// that two cores' objects, allocated next to each other at registration, never share a
/// line and one core's increments never invalidate another core's cache.
#[derive(Default, Debug)]
#[repr(align(128))]
pub struct ListenerStats {
    /// Client connections accepted.
    pub connections_total: AtomicU64,
    /// Client connections currently open (incremented on accept, decremented on close).
    pub active_connections: AtomicI64,
    /// Bytes relayed from clients to backends.
    pub bytes_in: AtomicU64,
    /// Bytes relayed from backends to clients.
    pub bytes_out: AtomicU64,
    /// Client connections closed because no backend was usable or none answered.
    pub refused_total: AtomicU64,
    /// Client connections closed for a missing or malformed PROXY protocol header.
    pub proxy_protocol_rejected_total: AtomicU64,
    /// Client connections closed (TCP) or datagrams dropped (UDP) over the rate limit.
    pub rate_limited_total: AtomicU64,
}

/// Counters for one backend on one core. Written only by that core.
///
/// Aligned like [`ListenerStats`], for the same reason.
#[derive(Default, Debug)]
#[repr(align(128))]
pub struct BackendStats {
    /// Upstream connections established to this backend.
    pub connections_total: AtomicU64,
    /// Upstream connection attempts that failed (refused, timed out, reset).
    pub connect_failures_total: AtomicU64,
    /// Upstream connections currently open.
    pub active_connections: AtomicI64,
}

/// What the control thread currently knows about one backend, passed in at render time
/// (health state is owned by the control thread, not by the registry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendStatus {
    /// Name of the pool the backend belongs to.
    pub pool: String,
    /// The backend's address.
    pub addr: SocketAddr,
    /// Health state as reported by `health::State::as_str` (`"up"`, `"down"`, `"draining"`,
    /// `"ejected"`). Only `"up"` counts as up for `ringway_backend_up`.
    pub state: &'static str,
    /// Current effective weight.
    pub weight: u32,
}

/// Per-core stats objects of one name, keyed by core index.
type PerCore<T> = BTreeMap<usize, Arc<T>>;

/// Everything behind the registry's mutex. `BTreeMap`s keep the rendered output in a stable,
/// sorted order, which makes scrapes diffable and tests exact.
#[derive(Default)]
struct Inner {
    listeners: BTreeMap<String, PerCore<ListenerStats>>,
    /// pool -> backend address -> core -> stats.
    backends: BTreeMap<String, BTreeMap<SocketAddr, PerCore<BackendStats>>>,
    histograms: BTreeMap<(HistogramKind, String), Merged>,
}

/// Shared between workers (registration) and the control thread (merging, scraping).
/// Lives in an `Arc`.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    health_events_dropped: AtomicU64,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock, but if something ever did, metrics are
        // still worth serving: the maps are never left half-updated.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Get or create the stats object for (core, listener name). Repeated calls return the
    /// same `Arc`, so counters survive config reloads that keep the name.
    pub fn listener(&self, core: usize, listener: &str) -> Arc<ListenerStats> {
        let mut inner = self.lock();
        // Look up by `&str` first so the common case (a reload) allocates nothing.
        if let Some(stats) = inner.listeners.get(listener).and_then(|m| m.get(&core)) {
            return Arc::clone(stats);
        }
        let stats = Arc::new(ListenerStats::default());
        inner
            .listeners
            .entry(listener.to_owned())
            .or_default()
            .insert(core, Arc::clone(&stats));
        stats
    }

    /// Get or create the stats object for (core, pool name, backend address). Repeated
    /// calls return the same `Arc`.
    pub fn backend(&self, core: usize, pool: &str, backend: SocketAddr) -> Arc<BackendStats> {
        let mut inner = self.lock();
        if let Some(stats) = inner
            .backends
            .get(pool)
            .and_then(|m| m.get(&backend))
            .and_then(|m| m.get(&core))
        {
            return Arc::clone(stats);
        }
        let stats = Arc::new(BackendStats::default());
        inner
            .backends
            .entry(pool.to_owned())
            .or_default()
            .entry(backend)
            .or_default()
            .insert(core, Arc::clone(&stats));
        stats
    }

    /// Merge a worker's histogram batch (called by the control thread). Merged histograms
    /// accumulate for the life of the process, as Prometheus histograms must.
    pub fn merge(&self, batch: HistogramBatch) {
        let mut inner = self.lock();
        for entry in batch.entries {
            inner
                .histograms
                .entry((entry.kind, String::from(&*entry.name)))
                .or_insert_with(Merged::new)
                .add(&entry.hist, entry.sum_micros);
        }
    }

    /// Count a configuration reload attempt and whether it was applied.
    pub fn config_reload(&self, ok: bool) {
        let counter = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Count `n` health events dropped because the channel to the control thread was full.
    pub fn health_event_dropped(&self, n: u64) {
        self.health_events_dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Health events dropped so far.
    pub fn health_events_dropped(&self) -> u64 {
        self.health_events_dropped.load(Ordering::Relaxed)
    }

    /// Forget stats objects no worker holds any more (every core's `Arc` for the name is
    /// only referenced by the registry), and merged histograms whose listener or pool has
    /// no stats left. Returns how many listener and backend entries were removed.
    ///
    /// Without this, names removed by reloads would be exported forever. The control
    /// thread should call it after every worker has switched to a new view; a name that
    /// comes back later simply starts from zero again, which Prometheus treats as a counter
    /// reset.
    pub fn prune(&self) -> usize {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut removed = 0;
        // Strong count 1 means only this map holds it: no worker can write to it any
        // more. New references are only created under this same lock, so the check
        // cannot race with a registration.
        fn unused<T>(per_core: &PerCore<T>) -> bool {
            per_core.values().all(|a| Arc::strong_count(a) == 1)
        }
        inner.listeners.retain(|_, per_core| {
            let keep = !unused(per_core);
            removed += usize::from(!keep);
            keep
        });
        for addrs in inner.backends.values_mut() {
            addrs.retain(|_, per_core| {
                let keep = !unused(per_core);
                removed += usize::from(!keep);
                keep
            });
        }
        inner.backends.retain(|_, addrs| !addrs.is_empty());
        let (listeners, backends) = (&inner.listeners, &inner.backends);
        inner.histograms.retain(|(kind, name), _| match kind {
            HistogramKind::UpstreamConnect => backends.contains_key(name),
            HistogramKind::ConnectionDuration | HistogramKind::RequestDuration => {
                listeners.contains_key(name)
            }
        });
        removed
    }

    /// Prometheus text exposition format 0.0.4. Sums each listener's and backend's counters
    /// over cores. `backends` is the control thread's current view of backend health.
    pub fn render_prometheus(&self, backends: &[BackendStatus]) -> String {
        let inner = self.lock();
        let snap = render::Snapshot::collect(&inner, backends, self.globals());
        render::prometheus(&snap)
    }

    /// JSON for `/stats`: per listener and per pool, the counters plus p50/p90/p99/p99.9 in
    /// seconds from the merged histograms (lifetime of the process), plus every backend
    /// with its state and weight.
    pub fn render_stats_json(&self, backends: &[BackendStatus]) -> String {
        let inner = self.lock();
        let snap = render::Snapshot::collect(&inner, backends, self.globals());
        render::json(&snap)
    }

    fn globals(&self) -> render::Globals {
        render::Globals {
            reloads_ok: self.reloads_ok.load(Ordering::Relaxed),
            reloads_failed: self.reloads_failed.load(Ordering::Relaxed),
            health_events_dropped: self.health_events_dropped.load(Ordering::Relaxed),
        }
    }
}

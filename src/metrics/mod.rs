//! Metrics that cost the data path nothing but uncontended atomic adds.
//!
//! * **Counters and gauges** live in per-core, per-object structs ([`ListenerStats`],
//!   [`BackendStats`], [`RouteStats`]) whose atomics exactly one core writes (`Relaxed`
//!   `fetch_add`, never contended, never sharing a written cache line with another core's
//!   object). The control thread reads and sums them over cores when scraped.
//! * **Histograms** are recorded core-locally with plain `&mut` ([`CoreHistograms`]) and
//!   shipped to the control thread about once a second as a [`HistogramBatch`], where
//!   [`Registry::merge`] folds them in.
//! * **Registration** ([`Registry::listener`], [`Registry::backend`], [`Registry::route`])
//!   happens when a worker builds its view of the config, never per connection or request,
//!   so it may take the registry's mutex. The same name on the same core yields the same
//!   `Arc`, which is what keeps counters monotonic across config reloads.
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
    /// TLS handshakes completed (TLS listeners).
    pub tls_handshakes_total: AtomicU64,
    /// TLS handshakes that failed, by [`TLS_FAILURE_REASONS`] index.
    pub tls_handshake_failures: [AtomicU64; TLS_FAILURE_REASONS.len()],
}

/// The `reason` label values of `ringway_tls_handshake_failures_total`.
pub use crate::tls::HANDSHAKE_FAILURE_REASONS as TLS_FAILURE_REASONS;

impl ListenerStats {
    /// Count a failed TLS handshake under `reason` (one of [`TLS_FAILURE_REASONS`]).
    pub fn tls_handshake_failed(&self, reason: &str) {
        let slot = TLS_FAILURE_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(TLS_FAILURE_REASONS.len() - 1);
        self.tls_handshake_failures[slot].fetch_add(1, Ordering::Relaxed);
    }
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

/// Lowest HTTP status code [`RouteStats`] counts individually.
const FIRST_STATUS: u16 = 100;
/// Highest HTTP status code [`RouteStats`] counts individually.
const LAST_STATUS: u16 = 599;
/// Counters indexed by `status - FIRST_STATUS`, plus one for codes outside the range.
const STATUS_SLOTS: usize = (LAST_STATUS - FIRST_STATUS + 1) as usize;
/// Index of the counter for status codes outside `100..=599`.
const OTHER_STATUS: usize = STATUS_SLOTS;

/// Counters of HTTP responses sent for one route of one listener on one core, by status
/// code. Written only by that core.
///
/// One counter per code in `100..=599`, so counting is a single indexed `fetch_add` with
/// no lookup or branch on which codes are "interesting" (501 counters, 4 KiB per route per
/// core, which is cheap next to a connection's buffers). A status outside `100..=599`,
/// which the proxy itself never produces but a misbehaving backend could send, is counted
/// in one separate counter exported as `code="other"`: folding it into a real code such as
/// 500 or 599 would report a response that never had that status.
///
/// Aligned like [`ListenerStats`], for the same reason.
#[repr(align(128))]
pub struct RouteStats {
    /// `by_status[s - 100]` counts status `s`; `by_status[OTHER_STATUS]` everything else.
    by_status: [AtomicU64; STATUS_SLOTS + 1],
}

impl Default for RouteStats {
    fn default() -> Self {
        RouteStats {
            by_status: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl std::fmt::Debug for RouteStats {
    /// Only the non-zero counters: 501 mostly-zero fields would bury them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (index, counter) in self.by_status.iter().enumerate() {
            let n = counter.load(Ordering::Relaxed);
            if n != 0 {
                match status_of_index(index) {
                    Some(status) => map.entry(&status, &n),
                    None => map.entry(&"other", &n),
                };
            }
        }
        map.finish()
    }
}

/// The counter index for `status`: its offset from 100, or [`OTHER_STATUS`].
#[inline]
fn status_index(status: u16) -> usize {
    if (FIRST_STATUS..=LAST_STATUS).contains(&status) {
        usize::from(status - FIRST_STATUS)
    } else {
        OTHER_STATUS
    }
}

/// The status code a counter index stands for; `None` for the `other` counter.
fn status_of_index(index: usize) -> Option<u16> {
    u16::try_from(index)
        .ok()
        .filter(|&i| usize::from(i) < STATUS_SLOTS)
        .map(|i| i + FIRST_STATUS)
}

impl RouteStats {
    /// Count one response with `status`. Codes outside `100..=599` are counted together
    /// under `code="other"`.
    #[inline]
    pub fn count(&self, status: u16) {
        self.by_status[status_index(status)].fetch_add(1, Ordering::Relaxed);
    }

    /// Responses counted with `status` on this core (tests). For a code outside
    /// `100..=599` this is the shared `other` count.
    pub fn get(&self, status: u16) -> u64 {
        self.by_status[status_index(status)].load(Ordering::Relaxed)
    }
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
    /// listener -> route label -> core -> stats.
    routes: BTreeMap<String, BTreeMap<String, PerCore<RouteStats>>>,
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
    /// Access log batches lost (the writer fell behind or failed); shared with the sink.
    access_log_dropped: Arc<AtomicU64>,
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

    /// Get or create the HTTP response counters for (core, listener name, route label).
    /// `route` is the route's name, or `"none"` for requests that matched no route (the
    /// caller passes the label). Repeated calls return the same `Arc`, so counters survive
    /// config reloads that keep both names.
    ///
    /// Call when building a view, not per request: it takes the registry's mutex.
    pub fn route(&self, core: usize, listener: &str, route: &str) -> Arc<RouteStats> {
        let mut inner = self.lock();
        if let Some(stats) = inner
            .routes
            .get(listener)
            .and_then(|m| m.get(route))
            .and_then(|m| m.get(&core))
        {
            return Arc::clone(stats);
        }
        let stats = Arc::new(RouteStats::default());
        inner
            .routes
            .entry(listener.to_owned())
            .or_default()
            .entry(route.to_owned())
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

    /// The counter the access log sink adds lost batches to.
    pub fn access_log_dropped(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.access_log_dropped)
    }

    /// Health events dropped so far.
    pub fn health_events_dropped(&self) -> u64 {
        self.health_events_dropped.load(Ordering::Relaxed)
    }

    /// Forget stats objects no worker holds any more (every core's `Arc` for the name is
    /// only referenced by the registry), and merged histograms whose listener or pool has
    /// no stats left. Returns how many listener, backend and (listener, route) entries
    /// were removed.
    ///
    /// Route counters go by the same rule as the rest, which covers both a route removed
    /// from a listener and a removed listener: its workers drop the listener's route
    /// counters together with its other stats. Route counters still held (say by a
    /// connection still being served under the old config) are kept even if their listener
    /// was already pruned, so that nothing they count is lost and they stay monotonic.
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
        for routes in inner.routes.values_mut() {
            routes.retain(|_, per_core| {
                let keep = !unused(per_core);
                removed += usize::from(!keep);
                keep
            });
        }
        inner.routes.retain(|_, routes| !routes.is_empty());
        let (listeners, backends, routes) = (&inner.listeners, &inner.backends, &inner.routes);
        inner.histograms.retain(|(kind, name), _| match kind {
            HistogramKind::UpstreamConnect => backends.contains_key(name),
            // A listener still rendered because of its route counters keeps its
            // histograms too, rather than having them restart from zero under it.
            HistogramKind::ConnectionDuration | HistogramKind::RequestDuration => {
                listeners.contains_key(name) || routes.contains_key(name)
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
            access_log_dropped: self.access_log_dropped.load(Ordering::Relaxed),
        }
    }
}

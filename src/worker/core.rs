//! A worker's core-local state: its view of the published snapshot, its balancers, its
//! per-backend connection counts and its pool of splice pipes.
//!
//! Everything here is `Rc`/`Cell`/`RefCell`: it never leaves the worker's thread, so
//! reading or updating it costs no atomic operation and touches no other core's memory.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crate::config::RateLimit;
use crate::control::{PassiveEvent, PassiveSender};
use crate::health::Passive;
use crate::lb::{BackendView, Balancer};
use crate::metrics::{
    BackendStats, CoreHistograms, HistogramBatch, ListenerStats, Registry, RouteStats,
};
use crate::rate_limit::RateLimiter;
use crate::snapshot::{PoolState, SharedSnapshot, Snapshot};
use crate::sys::Pipe;

use super::upstream::IdlePool;

/// Idle pipes kept per core; beyond this a finished connection's pipes are closed.
const MAX_IDLE_PIPES: usize = 1024;

/// Handle to a worker's core-local state; cheap to clone into every connection task.
#[derive(Clone)]
pub struct Core(Rc<CoreInner>);

struct CoreInner {
    index: usize,
    /// The runtime is on io_uring: client sends go through the ring and busy polling is
    /// possible (both need it; see `stream` and `busy_poll`).
    on_ring: bool,
    shared: Arc<SharedSnapshot>,
    passive: PassiveSender,
    registry: Arc<Registry>,
    /// Latency histograms recorded on this core, shipped to the control thread each second.
    histograms: RefCell<CoreHistograms>,
    /// Worker count: per-core shares of listener, backend and rate limits divide by it.
    workers: usize,
    /// Accept loops paused at their connection limit, woken when a connection closes.
    paused: RefCell<Vec<std::task::Waker>>,
    /// Rate limiters by listener name, kept across view rebuilds while their settings hold.
    limiters: RefCell<std::collections::HashMap<String, (RateLimit, SharedLimiter)>>,
    view: RefCell<Rc<CoreView>>,
    pipes: RefCell<Vec<Pipe>>,
    /// Client connections open on this core, for draining.
    open: Cell<usize>,
    /// Idle keep-alive upstream HTTP connections, by backend address.
    idle: RefCell<IdlePool>,
    /// A graceful stop has begun: HTTP connections close after their current exchange.
    draining: Cell<bool>,
    /// HTTP connections waiting for a next request, woken when draining begins.
    drain_waiters: RefCell<WakerSlab>,
    /// HTTP requests waiting for a backend below its connection limit.
    slot_waiters: RefCell<Vec<std::task::Waker>>,
    /// This core's batch of access log lines.
    access_log: RefCell<crate::access_log::CoreLog>,
}

/// This core's runtime objects for one snapshot generation.
pub struct CoreView {
    /// The snapshot these objects were built from.
    pub snapshot: Arc<Snapshot>,
    /// Balancer and load counters per pool, indexed like `snapshot.config.pools`.
    pub pools: Box<[PoolRuntime]>,
    /// This core's counters per listener, indexed like `snapshot.config.listeners`.
    pub listener_stats: Box<[Arc<ListenerStats>]>,
    /// This core's histogram slot for connection durations, per listener.
    pub duration_slots: Box<[usize]>,
    /// This core's rate limiter per listener, if it has one.
    pub rate_limiters: Box<[Option<SharedLimiter>]>,
    /// This core's share of each listener's `max_connections` (`usize::MAX`: none).
    pub connection_caps: Box<[usize]>,
    /// Per-core HTTP state of each `Http` listener (`None` for the other protocols).
    pub http: Box<[Option<HttpRuntime>]>,
}

/// One `Http` listener's per-core objects.
pub struct HttpRuntime {
    /// This core's clone of the route table (its own regex scratch space: no lock).
    pub routes: crate::route::RouteTable,
    /// Response counters of each route, indexed like the routes.
    pub route_stats: Box<[Arc<RouteStats>]>,
    /// Response counters of requests no route took (404, and errors found before routing).
    pub unrouted: Arc<RouteStats>,
    /// This core's histogram slot for request durations on this listener.
    pub request_slot: usize,
}

/// Label of requests that matched no route, in metrics and logs.
pub const UNROUTED: &str = "none";

/// One pool's balancer and this core's per-backend bookkeeping.
pub struct PoolRuntime {
    /// Selection state (round-robin position, RNG) for this core.
    pub balancer: RefCell<Balancer>,
    /// Connections this core has open to each backend (LeastConnections, PowerOfTwo).
    /// Shared with the previous view when the pool's backends did not change, so a
    /// reload or health change does not forget connections in flight.
    pub active: Rc<[Cell<u32>]>,
    /// Whether this core last saw a failure on each backend; a success is reported to
    /// the control thread only after a failure, so healthy traffic sends no messages.
    pub failing: Rc<[Cell<bool>]>,
    /// The weights the balancer was built with, to know when it must be rebuilt.
    weights: Box<[u32]>,
    /// This core's counters per backend.
    pub stats: Box<[Arc<BackendStats>]>,
    /// This core's histogram slot for upstream connect latency in this pool.
    pub connect_slot: usize,
    /// This core's share of each backend's `max_connections` (`u32::MAX`: none).
    pub caps: Box<[u32]>,
    /// Sticky-cookie token of each backend (computed once, compared per request).
    pub tokens: Box<[[u8; 16]]>,
}

/// A listener's rate limiter on this core, shared by the views that use it.
type SharedLimiter = Rc<RefCell<RateLimiter>>;

/// Clients tracked per listener per core by a rate limiter (least recent evicted beyond).
const RATE_LIMIT_CLIENTS: usize = 65_536;

fn new_limiter(limit: RateLimit, workers: usize) -> SharedLimiter {
    Rc::new(RefCell::new(RateLimiter::per_core(
        limit.per_ip,
        limit.per,
        limit.burst,
        workers,
        RATE_LIMIT_CLIENTS,
    )))
}

/// This core's share of a process-wide limit: the limit divided by the worker count,
/// rounded down so the workers together never exceed it, but at least 1.
fn share(limit: usize, workers: usize) -> usize {
    (limit / workers.max(1)).max(1)
}

impl CoreView {
    /// Build this core's objects for `snapshot`, reusing what `previous` had for pools
    /// whose backends are unchanged: balancer state (when weights are equal too) and
    /// the connection counters.
    fn build(snapshot: Arc<Snapshot>, previous: Option<&CoreView>, core: &CoreInner) -> CoreView {
        let seed = core.index as u64 + 1;
        let mut histograms = core.histograms.borrow_mut();
        let pools = snapshot
            .config
            .pools
            .iter()
            .zip(snapshot.pools.iter())
            .map(|(pool, state)| {
                let same = previous.and_then(|prev| {
                    let i = prev
                        .snapshot
                        .config
                        .pools
                        .iter()
                        .position(|p| p.name == pool.name)?;
                    let old = &prev.snapshot.config.pools[i];
                    let unchanged = old.balance == pool.balance
                        && old.backends.len() == pool.backends.len()
                        && old
                            .backends
                            .iter()
                            .zip(&pool.backends)
                            .all(|(a, b)| a.addr == b.addr);
                    unchanged.then(|| &prev.pools[i])
                });
                let stats = pool
                    .backends
                    .iter()
                    .map(|b| core.registry.backend(core.index, &pool.name, b.addr))
                    .collect();
                let connect_slot = histograms.pool_slot(&pool.name);
                let caps: Box<[u32]> = pool
                    .backends
                    .iter()
                    .map(|b| {
                        b.max_connections
                            .map_or(u32::MAX, |m| share(m as usize, core.workers) as u32)
                    })
                    .collect();
                let tokens: Box<[[u8; 16]]> = pool
                    .backends
                    .iter()
                    .map(|b| crate::route::sticky_token(b.addr))
                    .collect();
                match same {
                    Some(old) => PoolRuntime {
                        balancer: RefCell::new(if old.weights == state.weights {
                            old.balancer.borrow().clone()
                        } else {
                            Balancer::new(pool.balance, &state.weights, seed)
                        }),
                        active: old.active.clone(),
                        failing: old.failing.clone(),
                        weights: state.weights.clone(),
                        stats,
                        connect_slot,
                        caps: caps.clone(),
                        tokens: tokens.clone(),
                    },
                    None => PoolRuntime {
                        balancer: RefCell::new(Balancer::new(pool.balance, &state.weights, seed)),
                        active: pool.backends.iter().map(|_| Cell::new(0)).collect(),
                        failing: pool.backends.iter().map(|_| Cell::new(false)).collect(),
                        weights: state.weights.clone(),
                        stats,
                        connect_slot,
                        caps: caps.clone(),
                        tokens,
                    },
                }
            })
            .collect();
        let listeners = &snapshot.config.listeners;
        let listener_stats = listeners
            .iter()
            .map(|l| core.registry.listener(core.index, &l.name))
            .collect();
        let duration_slots = listeners
            .iter()
            .map(|l| histograms.listener_slot(&l.name))
            .collect();
        let rate_limiters = listeners
            .iter()
            .map(|l| {
                let limit = l.rate_limit?;
                let mut limiters = core.limiters.borrow_mut();
                let entry = limiters
                    .entry(l.name.clone())
                    .or_insert_with(|| (limit, new_limiter(limit, core.workers)));
                if entry.0 != limit {
                    *entry = (limit, new_limiter(limit, core.workers));
                }
                Some(entry.1.clone())
            })
            .collect();
        let connection_caps = listeners
            .iter()
            .map(|l| {
                l.max_connections
                    .map_or(usize::MAX, |m| share(m, core.workers))
            })
            .collect();
        let http = listeners
            .iter()
            .map(|l| {
                let settings = l.protocol.http()?;
                let routes = &settings.routes;
                Some(HttpRuntime {
                    routes: routes.table.clone(),
                    route_stats: routes
                        .names
                        .iter()
                        .map(|r| core.registry.route(core.index, &l.name, r))
                        .collect(),
                    unrouted: core.registry.route(core.index, &l.name, UNROUTED),
                    request_slot: histograms.request_slot(&l.name),
                })
            })
            .collect();
        CoreView {
            snapshot,
            pools,
            listener_stats,
            duration_slots,
            rate_limiters,
            connection_caps,
            http,
        }
    }

    /// Pick the next backend of `pool` for a client whose address hashes to `key`,
    /// skipping unusable, full and already `tried` ones, and mark it tried.
    pub fn pick(&self, pool: usize, key: u64, tried: &mut Tried) -> Option<usize> {
        let runtime = &self.pools[pool];
        let attempt = AttemptView {
            state: &self.snapshot.pools[pool],
            active: &runtime.active,
            tried,
            caps: &runtime.caps,
        };
        let index = runtime.balancer.borrow_mut().pick(key, &attempt)?;
        tried.insert(index);
        Some(index)
    }

    /// Tell the control thread what a connection attempt to `backend` of `pool` showed.
    fn report(&self, passive: &PassiveSender, pool: usize, backend: usize, event: Passive) {
        let failing = &self.pools[pool].failing[backend];
        let failed = event.is_failure();
        // Successes matter only to end a run of failures; skipping the rest keeps the
        // channel (shared by all cores) off the path of healthy traffic.
        if !failed && !failing.get() {
            return;
        }
        failing.set(failed);
        passive.send(PassiveEvent {
            config_generation: self.snapshot.config_generation,
            pool: pool as u32,
            backend: backend as u32,
            event,
        });
    }
}

impl Core {
    /// Build the core-local state from the currently published snapshot.
    pub fn new(
        index: usize,
        on_ring: bool,
        workers: usize,
        shared: Arc<SharedSnapshot>,
        passive: PassiveSender,
        registry: Arc<Registry>,
        access_log: &crate::access_log::AccessLogSink,
    ) -> Core {
        let first = shared.load();
        let mut inner = CoreInner {
            index,
            on_ring,
            shared,
            passive,
            registry,
            histograms: RefCell::new(CoreHistograms::new()),
            workers,
            paused: RefCell::new(Vec::new()),
            limiters: RefCell::new(std::collections::HashMap::new()),
            view: RefCell::new(Rc::new(CoreView {
                snapshot: first.clone(),
                pools: Box::new([]),
                listener_stats: Box::new([]),
                duration_slots: Box::new([]),
                rate_limiters: Box::new([]),
                connection_caps: Box::new([]),
                http: Box::new([]),
            })),
            pipes: RefCell::new(Vec::new()),
            open: Cell::new(0),
            idle: RefCell::new(IdlePool::default()),
            draining: Cell::new(false),
            drain_waiters: RefCell::new(WakerSlab::default()),
            slot_waiters: RefCell::new(Vec::new()),
            access_log: RefCell::new(crate::access_log::CoreLog::new(access_log)),
        };
        let view = CoreView::build(first, None, &inner);
        inner.view = RefCell::new(Rc::new(view));
        Core(Rc::new(inner))
    }

    /// Record how long an upstream connect took for the pool of `runtime`.
    pub fn record_connect(&self, runtime: &PoolRuntime, elapsed: std::time::Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.0
            .histograms
            .borrow_mut()
            .record_connect(runtime.connect_slot, micros);
    }

    /// Record how long a client connection lasted on listener `listener` of `view`.
    pub fn record_duration(&self, view: &CoreView, listener: usize, elapsed: std::time::Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.0
            .histograms
            .borrow_mut()
            .record_duration(view.duration_slots[listener], micros);
    }

    /// Record how long one HTTP request took, in histogram slot `slot`.
    pub fn record_request(&self, slot: usize, elapsed: std::time::Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.0.histograms.borrow_mut().record_request(slot, micros);
    }

    /// Everything recorded since the last call, for the control thread to merge.
    pub fn take_histograms(&self) -> HistogramBatch {
        self.0.histograms.borrow_mut().take()
    }

    /// This worker's index.
    pub fn index(&self) -> usize {
        self.0.index
    }

    /// Whether this worker's runtime is on io_uring (else on epoll).
    pub fn on_ring(&self) -> bool {
        self.0.on_ring
    }

    /// The current view, rebuilt first if the control thread published a new snapshot.
    ///
    /// Called once per new connection: one atomic load in the common case.
    pub fn view(&self) -> Rc<CoreView> {
        let seen = self.0.view.borrow().snapshot.generation;
        if let Some(next) = self.0.shared.load_if_changed(seen) {
            let rebuilt = {
                let previous = self.0.view.borrow();
                CoreView::build(next, Some(&previous), &self.0)
            };
            *self.0.view.borrow_mut() = Rc::new(rebuilt);
        }
        self.0.view.borrow().clone()
    }

    /// Report a passive health observation about `backend` of `pool` in `view`.
    pub fn report(&self, view: &CoreView, pool: usize, backend: usize, event: Passive) {
        view.report(&self.0.passive, pool, backend, event);
    }

    /// Wait until `gauge` (a listener's open connections on this core) is below `cap`.
    /// Woken by connection closes on this core, so a paused accept loop costs nothing.
    pub async fn below_cap(&self, gauge: &std::sync::atomic::AtomicI64, cap: usize) {
        std::future::poll_fn(|cx| {
            if !at_cap(gauge, cap) {
                std::task::Poll::Ready(())
            } else {
                self.0.paused.borrow_mut().push(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await
    }

    /// Client connections currently open on this core.
    pub fn open_connections(&self) -> usize {
        self.0.open.get()
    }

    /// Count a client connection as open until the returned guard is dropped.
    pub fn connection_opened(&self) -> OpenGuard {
        self.0.open.set(self.0.open.get() + 1);
        OpenGuard(self.clone())
    }

    /// This core's access log batch.
    pub fn access_log(&self) -> std::cell::RefMut<'_, crate::access_log::CoreLog> {
        self.0.access_log.borrow_mut()
    }

    /// This core's pool of idle upstream HTTP connections.
    pub fn idle_pool(&self) -> std::cell::RefMut<'_, IdlePool> {
        self.0.idle.borrow_mut()
    }

    /// Start a graceful stop: idle HTTP connections waiting for a request close now, busy
    /// ones after their current exchange.
    pub fn begin_drain(&self) {
        self.0.draining.set(true);
        self.0.drain_waiters.borrow_mut().wake_all();
    }

    /// Whether a graceful stop has begun.
    pub fn is_draining(&self) -> bool {
        self.0.draining.get()
    }

    /// Completes once a graceful stop begins (immediately if it has). Dropping it
    /// unregisters it, so the many short waits of keep-alive connections leave nothing
    /// behind.
    pub fn drained(&self) -> Drained<'_> {
        Drained {
            core: self,
            slot: None,
        }
    }

    /// Wait until some backend connection on this core ends (a chance for a backend at
    /// its connection limit to take another request). Spurious wake-ups are possible.
    pub async fn backend_slot_freed(&self) {
        let mut registered = false;
        std::future::poll_fn(|cx| {
            if registered {
                std::task::Poll::Ready(())
            } else {
                registered = true;
                self.0.slot_waiters.borrow_mut().push(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await
    }

    /// Wake requests queued for a backend slot (called when a backend connection ends).
    pub fn wake_slot_waiters(&self) {
        for waker in self.0.slot_waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// A pipe from this core's pool, or a new one of `capacity` bytes.
    pub fn take_pipe(&self, capacity: usize) -> std::io::Result<Pipe> {
        match self.0.pipes.borrow_mut().pop() {
            Some(pipe) => Ok(pipe),
            None => Pipe::new(capacity),
        }
    }

    /// Return an *empty* pipe for reuse. A pipe that may still hold bytes must be dropped
    /// instead, or the next connection would receive someone else's data.
    pub fn recycle_pipe(&self, pipe: Pipe) {
        let mut pipes = self.0.pipes.borrow_mut();
        if pipes.len() < MAX_IDLE_PIPES {
            pipes.push(pipe);
        }
    }
}

/// Wakers in reusable slots: register once, update in place, free on drop; O(1) each.
#[derive(Default)]
pub struct WakerSlab {
    slots: Vec<Option<std::task::Waker>>,
    free: Vec<usize>,
}

impl WakerSlab {
    fn insert(&mut self, waker: std::task::Waker) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(waker);
                i
            }
            None => {
                self.slots.push(Some(waker));
                self.slots.len() - 1
            }
        }
    }

    fn update(&mut self, slot: usize, waker: &std::task::Waker) {
        if let Some(entry) = self.slots.get_mut(slot) {
            match entry {
                Some(w) if w.will_wake(waker) => {}
                _ => *entry = Some(waker.clone()),
            }
        }
    }

    fn remove(&mut self, slot: usize) {
        if let Some(entry) = self.slots.get_mut(slot) {
            if entry.take().is_some() {
                self.free.push(slot);
            }
        }
    }

    /// Wake every registered waiter; each slot stays taken until its future is dropped,
    /// so a slot is never freed twice or reused while its owner still holds it.
    fn wake_all(&self) {
        for waker in self.slots.iter().flatten() {
            waker.wake_by_ref();
        }
    }
}

/// Future of [`Core::drained`].
pub struct Drained<'c> {
    core: &'c Core,
    slot: Option<usize>,
}

impl std::future::Future for Drained<'_> {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let inner = &self.core.0;
        if inner.draining.get() {
            return std::task::Poll::Ready(());
        }
        let mut waiters = inner.drain_waiters.borrow_mut();
        match self.slot {
            Some(slot) => waiters.update(slot, cx.waker()),
            None => {
                let slot = waiters.insert(cx.waker().clone());
                drop(waiters);
                self.slot = Some(slot);
            }
        }
        std::task::Poll::Pending
    }
}

impl Drop for Drained<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.core.0.drain_waiters.borrow_mut().remove(slot);
        }
    }
}

/// Keeps a gauge incremented while it lives (active connections in the metrics).
pub struct GaugeGuard<'a>(&'a std::sync::atomic::AtomicI64);

impl<'a> GaugeGuard<'a> {
    /// Increment `gauge` now and decrement it on drop.
    pub fn new(gauge: &'a std::sync::atomic::AtomicI64) -> GaugeGuard<'a> {
        // Relaxed: only this core writes the counter; readers only need a recent value.
        gauge.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Keeps a client connection counted in [`Core::open_connections`] while it lives.
pub struct OpenGuard(Core);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let open = &self.0 .0.open;
        open.set(open.get().saturating_sub(1));
        // A closed connection may let a paused accept loop go on.
        for waker in self.0 .0.paused.borrow_mut().drain(..) {
            waker.wake();
        }
    }
}

/// What the balancer sees of one pool for one connection attempt: the snapshot's
/// backend states, this core's loads, and the backends this connection already tried.
pub struct AttemptView<'a> {
    /// Health of each backend, from the snapshot.
    pub state: &'a PoolState,
    /// This core's active connections per backend.
    pub active: &'a [Cell<u32>],
    /// Backends that already failed for this connection.
    pub tried: &'a Tried,
    /// This core's share of each backend's connection limit.
    pub caps: &'a [u32],
}

impl BackendView for AttemptView<'_> {
    fn len(&self) -> usize {
        self.state.usable.len()
    }

    fn usable(&self, i: usize) -> bool {
        // A backend at its connection limit is skipped like an unusable one.
        self.state.usable[i] && !self.tried.contains(i) && self.active[i].get() < self.caps[i]
    }

    fn load(&self, i: usize) -> u32 {
        self.active[i].get()
    }
}

/// The set of backends one connection already tried, so a retry never repeats one.
///
/// The first 128 backends fit in a bitmask; the spill vector is only touched for larger
/// pools, and only after failures, so the usual connection allocates nothing.
#[derive(Default)]
pub struct Tried {
    mask: u128,
    spill: Vec<usize>,
}

impl Tried {
    /// Remember that backend `i` was tried.
    pub fn insert(&mut self, i: usize) {
        if i < 128 {
            self.mask |= 1u128 << i;
        } else {
            self.spill.push(i);
        }
    }

    /// Whether backend `i` was tried.
    pub fn contains(&self, i: usize) -> bool {
        if i < 128 {
            self.mask & (1u128 << i) != 0
        } else {
            self.spill.contains(&i)
        }
    }
}

/// Counts a connection against a backend for as long as it lives.
pub struct ActiveGuard {
    view: Rc<CoreView>,
    pool: usize,
    backend: usize,
}

impl ActiveGuard {
    /// Count one more connection to `backend` of `pool` in `view`.
    pub fn new(view: Rc<CoreView>, pool: usize, backend: usize) -> ActiveGuard {
        let cell = &view.pools[pool].active[backend];
        cell.set(cell.get() + 1);
        ActiveGuard {
            view,
            pool,
            backend,
        }
    }
}

impl ActiveGuard {
    /// Report a passive health observation about the backend this guard counts.
    pub fn report(&self, core: &Core, event: Passive) {
        core.report(&self.view, self.pool, self.backend, event);
    }

    /// Index of the backend this guard counts, in its pool.
    pub fn backend(&self) -> usize {
        self.backend
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let cell = &self.view.pools[self.pool].active[self.backend];
        cell.set(cell.get().saturating_sub(1));
    }
}

/// Whether `gauge` (a listener's open connections on this core) has reached `cap`.
pub fn at_cap(gauge: &std::sync::atomic::AtomicI64, cap: usize) -> bool {
    gauge.load(std::sync::atomic::Ordering::Relaxed).max(0) as usize >= cap
}

#[cfg(test)]
mod tests {
    use super::{Tried, WakerSlab};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn waker_slab_reuses_freed_slots_and_wakes_only_registered_waiters() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut slab = WakerSlab::default();
        let a = slab.insert(waker.clone());
        let b = slab.insert(waker.clone());
        slab.remove(a);
        slab.remove(a); // a second remove of the same slot frees nothing more
        let c = slab.insert(waker.clone());
        assert_eq!(c, a, "the freed slot is reused");
        let d = slab.insert(waker.clone());
        assert_ne!(d, b);
        slab.update(b, &waker);
        slab.remove(d);
        slab.wake_all();
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            2,
            "b and c were registered"
        );
        // Many short registrations leave the slab at its high-water mark.
        for _ in 0..1000 {
            let s = slab.insert(waker.clone());
            slab.remove(s);
        }
        assert!(slab.slots.len() <= 4, "{}", slab.slots.len());
    }

    #[test]
    fn tried_set_covers_small_and_large_indices() {
        let mut tried = Tried::default();
        for i in [0, 5, 127, 128, 1000] {
            assert!(!tried.contains(i));
            tried.insert(i);
            assert!(tried.contains(i));
        }
        assert!(!tried.contains(1));
        assert!(!tried.contains(129));
    }
}

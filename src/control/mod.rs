//! The control thread: everything slow lives here, off the data path. It owns the health
//! state of every pool, runs the active probes, takes passive events from the workers,
//! applies reloads and publishes immutable snapshots for the workers to read.
//!
//! It runs its own monoio runtime (epoll driver, not pinned) so probes are plain async
//! code with timeouts; commands and passive events arrive over crossbeam channels that
//! it drains on a short tick, because a worker must never block on this thread.

mod admin_server;
mod probe;
mod reload;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::config::{Config, Pool};
use crate::health::{BackendSpec, HealthSettings, Passive, PoolHealth, Probe, ProbeScheduler};
use crate::lifecycle::Lifecycle;
use crate::metrics::{HistogramBatch, Registry};
use crate::snapshot::{PoolState, SharedSnapshot, Snapshot};

pub use reload::{bind_for_workers, BoundSocket, ListenerSockets, ReloadOutcome};

/// How often the control loop drains its channels and advances time-based health state.
const TICK: Duration = Duration::from_millis(20);

/// How often the control thread drops metrics of objects no longer in use.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// Capacity of the passive-event channel; when full, events are dropped and counted.
const PASSIVE_CAPACITY: usize = 4096;

/// What a worker saw on real traffic to a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassiveEvent {
    /// The snapshot's `config_generation` the indices refer to.
    pub config_generation: u64,
    /// Pool index in that config.
    pub pool: u32,
    /// Backend index in that pool.
    pub backend: u32,
    /// What happened.
    pub event: Passive,
}

/// The workers' end of the passive-event channel. Sending never blocks.
#[derive(Clone, Debug)]
pub struct PassiveSender {
    tx: Sender<PassiveEvent>,
    dropped: Arc<AtomicU64>,
}

impl PassiveSender {
    /// Queue an event; if the control thread is behind, drop it and count the drop.
    pub fn send(&self, event: PassiveEvent) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(event)
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Requests to the control thread.
pub enum Command {
    /// Re-read the config file and apply it; the outcome is sent back.
    Reload(Sender<ReloadOutcome>),
    /// Stop sending traffic to a backend (admin).
    Drain {
        pool: String,
        backend: std::net::SocketAddr,
        reply: Sender<bool>,
    },
    /// Undo a drain (admin).
    Enable {
        pool: String,
        backend: std::net::SocketAddr,
        reply: Sender<bool>,
    },
}

/// Handles the rest of the process keeps to talk to the control thread.
#[derive(Clone)]
pub struct ControlHandle {
    /// Commands in.
    pub commands: Sender<Command>,
    /// Passive events dropped because the channel was full.
    pub dropped_events: Arc<AtomicU64>,
}

/// Everything the control thread needs to start.
pub struct ControlSpec {
    /// The config file, re-read on reload.
    pub path: PathBuf,
    /// The publication point.
    pub shared: Arc<SharedSnapshot>,
    /// Per-worker channels for new listener sockets on reload.
    pub worker_sockets: Vec<Sender<ListenerSockets>>,
    /// Worker count (sockets are bound once per worker).
    pub workers: usize,
    /// Where workers registered their counters; rendered by the admin endpoint.
    pub registry: Arc<Registry>,
    /// Histogram batches from the workers.
    pub histograms: Receiver<HistogramBatch>,
    /// Drain state, for `/ready`.
    pub lifecycle: Arc<Lifecycle>,
    /// The admin listener, already bound, if configured.
    pub admin: Option<std::net::TcpListener>,
}

/// Create the passive-event channel: the sender for workers, the receiver for control.
pub fn passive_channel() -> (PassiveSender, Receiver<PassiveEvent>, Arc<AtomicU64>) {
    let (tx, rx) = crossbeam_channel::bounded(PASSIVE_CAPACITY);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        PassiveSender {
            tx,
            dropped: dropped.clone(),
        },
        rx,
        dropped,
    )
}

/// Start the control thread.
pub fn spawn(
    spec: ControlSpec,
    events: Receiver<PassiveEvent>,
    dropped: Arc<AtomicU64>,
) -> std::io::Result<ControlHandle> {
    let (commands, command_rx) = crossbeam_channel::unbounded();
    let dropped_for_run = dropped.clone();
    let handle = ControlHandle {
        commands,
        dropped_events: dropped,
    };
    std::thread::Builder::new()
        .name("ringway-ctl".into())
        .spawn(move || {
            let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build();
            match runtime {
                Ok(mut rt) => rt.block_on(run(spec, events, command_rx, dropped_for_run)),
                Err(e) => crate::log::error(format_args!("control thread cannot start: {e}")),
            }
        })?;
    Ok(handle)
}

/// Health settings for the pure state machine from a pool's config.
fn settings(pool: &Pool) -> HealthSettings {
    let defaults = HealthSettings::default();
    HealthSettings {
        rise: pool.health.as_ref().map_or(defaults.rise, |h| h.rise),
        fall: pool.health.as_ref().map_or(defaults.fall, |h| h.fall),
        consecutive_failures: pool.passive.consecutive_failures,
        eject_for: pool.passive.eject_for,
        slow_start: pool.slow_start,
        min_usable_percent: pool.panic_threshold,
    }
}

fn specs(pool: &Pool) -> Vec<BackendSpec> {
    pool.backends
        .iter()
        .map(|b| BackendSpec {
            weight: b.weight,
            backup: b.backup,
        })
        .collect()
}

/// The control thread's state, shared by its tasks (all on this one thread).
pub(crate) struct State {
    config: Arc<Config>,
    config_generation: u64,
    health: Vec<PoolHealth>,
    published: Vec<PoolState>,
    /// Bumped on reload so probe tasks of the old config stop.
    probe_epoch: u64,
    shared: Arc<SharedSnapshot>,
}

impl State {
    fn pool_states(&self, now: Instant) -> Vec<PoolState> {
        self.health
            .iter()
            .map(|h| {
                let view = h.view(now);
                PoolState {
                    usable: view.usable.into_boxed_slice(),
                    weights: view.weights.into_boxed_slice(),
                    panic: view.panic,
                }
            })
            .collect()
    }

    /// Publish a new snapshot if what workers should use changed (or `force`).
    fn publish_if_changed(&mut self, now: Instant, force: bool) {
        let states = self.pool_states(now);
        if !force && states == self.published {
            return;
        }
        for (pool, (new, old)) in self
            .config
            .pools
            .iter()
            .zip(states.iter().zip(&self.published))
        {
            if new.panic && !old.panic {
                crate::log::warn(format_args!(
                    "pool {}: fewer than {}% of backends usable; panic mode: using all of them",
                    pool.name, pool.panic_threshold
                ));
            }
        }
        self.published = states.clone();
        self.shared.publish(Snapshot {
            generation: 0, // set by publish
            config_generation: self.config_generation,
            config: self.config.clone(),
            pools: states.into_boxed_slice(),
        });
    }

    fn log_transition(&self, pool: usize, t: crate::health::Transition) {
        let pool = &self.config.pools[pool];
        let addr = pool
            .backends
            .get(t.backend)
            .map(|b| b.addr.to_string())
            .unwrap_or_default();
        crate::log::info(format_args!(
            "pool {} backend {addr}: {} -> {} ({})",
            pool.name,
            t.from.as_str(),
            t.to.as_str(),
            t.reason
        ));
    }
}

async fn run(
    spec: ControlSpec,
    events: Receiver<PassiveEvent>,
    commands: Receiver<Command>,
    dropped: Arc<AtomicU64>,
) {
    let first = spec.shared.load();
    let now = Instant::now();
    let state = Rc::new(RefCell::new(State {
        config: first.config.clone(),
        config_generation: first.config_generation,
        health: first
            .config
            .pools
            .iter()
            .map(|p| PoolHealth::new(settings(p), &specs(p), now))
            .collect(),
        published: first.pools.to_vec(),
        probe_epoch: 0,
        shared: spec.shared.clone(),
    }));
    state.borrow_mut().publish_if_changed(now, false);
    spawn_probes(&state);
    let registry = spec.registry.clone();
    let reloader = Rc::new(reload::Reloader::new(
        spec.path,
        spec.worker_sockets,
        spec.workers,
        registry.clone(),
    ));
    if let Some(admin) = spec.admin {
        match monoio::net::TcpListener::from_std(admin) {
            Ok(listener) => {
                let ctx = Rc::new(admin_server::AdminContext {
                    state: state.clone(),
                    registry: registry.clone(),
                    lifecycle: spec.lifecycle.clone(),
                    reloader: reloader.clone(),
                });
                monoio::spawn(admin_server::serve(listener, ctx));
            }
            Err(e) => crate::log::error(format_args!("admin listener: {e}")),
        }
    }
    let mut last_prune = Instant::now();
    loop {
        monoio::time::sleep(TICK).await;
        let now = Instant::now();
        // Stats of listeners and backends that reloads removed disappear from /metrics
        // once no worker view or connection holds them any more.
        if now.duration_since(last_prune) >= PRUNE_EVERY {
            last_prune = now;
            registry.prune();
        }
        for batch in spec.histograms.try_iter() {
            registry.merge(batch);
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            registry.health_event_dropped(lost);
        }
        {
            let mut st = state.borrow_mut();
            let generation = st.config_generation;
            for ev in events.try_iter() {
                if ev.config_generation != generation {
                    continue; // indices of an older config
                }
                let pool = ev.pool as usize;
                if let Some(t) = st
                    .health
                    .get_mut(pool)
                    .and_then(|h| h.on_passive(ev.backend as usize, ev.event, now))
                {
                    st.log_transition(pool, t);
                }
            }
            for pool in 0..st.health.len() {
                for t in st.health[pool].tick(now) {
                    st.log_transition(pool, t);
                }
            }
            st.publish_if_changed(now, false);
        }
        for command in commands.try_iter() {
            match command {
                Command::Reload(reply) => {
                    let outcome = reloader.reload(&state);
                    if outcome.ok {
                        spawn_probes(&state);
                    }
                    let _ = reply.send(outcome);
                }
                Command::Drain {
                    pool,
                    backend,
                    reply,
                } => {
                    let _ = reply.send(set_drain(&state, &pool, backend, true));
                }
                Command::Enable {
                    pool,
                    backend,
                    reply,
                } => {
                    let _ = reply.send(set_drain(&state, &pool, backend, false));
                }
            }
        }
    }
}

fn set_drain(
    state: &Rc<RefCell<State>>,
    pool: &str,
    backend: std::net::SocketAddr,
    drain: bool,
) -> bool {
    let mut st = state.borrow_mut();
    let now = Instant::now();
    let Some(p) = st.config.pools.iter().position(|x| x.name == pool) else {
        return false;
    };
    let Some(b) = st.config.pools[p]
        .backends
        .iter()
        .position(|x| x.addr == backend)
    else {
        return false;
    };
    let t = if drain {
        st.health[p].drain(b)
    } else {
        st.health[p].enable(b, now)
    };
    if let Some(t) = t {
        st.log_transition(p, t);
    }
    st.publish_if_changed(now, false);
    true
}

/// Start one probe task per backend of every pool with active checks.
fn spawn_probes(state: &Rc<RefCell<State>>) {
    let st = state.borrow();
    let epoch = st.probe_epoch;
    for (p, pool) in st.config.pools.iter().enumerate() {
        let Some(check) = pool.health.clone() else {
            continue;
        };
        let tls = pool.tls.clone();
        let scheduler = ProbeScheduler::new(Instant::now(), check.interval, p as u64 + 1);
        for (b, backend) in pool.backends.iter().enumerate() {
            let state = state.clone();
            let check = check.clone();
            let tls = tls.clone();
            let addr = backend.addr;
            monoio::spawn(async move {
                loop {
                    let at = scheduler.next_probe_at(b, Instant::now());
                    monoio::time::sleep_until(monoio::time::Instant::from_std(at)).await;
                    if state.borrow().probe_epoch != epoch {
                        return; // a reload replaced this pool's probes
                    }
                    let healthy = probe::run(&check, addr, tls.as_ref()).await;
                    let mut st = state.borrow_mut();
                    if st.probe_epoch != epoch {
                        return;
                    }
                    let now = Instant::now();
                    let verdict = if healthy {
                        Probe::Success
                    } else {
                        Probe::Failure
                    };
                    let t = st.health[p].on_probe(b, verdict, now);
                    st.publish_if_changed(now, false);
                    if let Some(t) = t {
                        st.log_transition(p, t);
                    }
                }
            });
        }
    }
}

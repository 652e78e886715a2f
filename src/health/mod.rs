//! Backend health: the pure (sans-IO) state machine behind active checks, passive
//! ejection, slow start and panic mode.
//!
//! Like `quinn-proto`, nothing here touches a socket or a clock. The control thread owns
//! one [`PoolHealth`] per pool, performs the active probes itself (a TCP connect, or an
//! HTTP request whose status it compares with the expected one), and feeds the verdicts
//! in with [`PoolHealth::on_probe`]. Workers report what they saw on real traffic over a
//! channel, which the control thread feeds in with [`PoolHealth::on_passive`]. Time is
//! always an argument (`now`), so tests drive a simulated clock.
//!
//! After any call, [`PoolHealth::view`] says what the workers should use, and
//! [`PoolHealth::next_deadline`] says when the view can next change on its own (an
//! ejection expiring, a slow-start step), so the control loop is:
//!
//! ```text
//! loop {
//!     feed probe verdicts and passive events (on_probe / on_passive)
//!     log the transitions they and tick(now) return
//!     publish view(now) in the snapshot
//!     sleep until min(next probe, next_deadline(), next event)
//! }
//! ```
//!
//! # Model
//!
//! Each backend has three independent pieces of state, combined into one [`State`]:
//!
//! * the active verdict (rise/fall over consecutive probe results),
//! * an optional passive ejection with its expiry time,
//! * the admin drain flag.
//!
//! They are kept apart rather than folded into one enum because they end independently:
//! an ejection expires by time even if probes kept failing meanwhile, and enabling a
//! drained backend must reveal whatever the probes decided while it was drained. The
//! reported state picks the most deliberate cause: `Draining` (an operator said so) over
//! `Down` (probes fail) over `Ejected` (real traffic failed) over `Up`.
//!
//! Index arguments out of range are ignored (`None`, no change), never a panic: the
//! control thread may race a reload against a late probe result.

mod jitter;
#[cfg(test)]
mod tests;

pub use jitter::{probe_offset, ProbeScheduler, MIN_PROBE_INTERVAL};

use std::time::{Duration, Instant};

/// Cap on the passive-ejection back-off, as a multiple of `eject_for`.
///
/// The n-th ejection in a row lasts `eject_for * 2^(n-1)`, at most this many times
/// `eject_for`: 30 s, 60 s, 120 s, 240 s, then 300 s (5 minutes) for the default 30 s.
/// A cap relative to `eject_for` (rather than an absolute one) keeps an operator's choice
/// of a short or long `eject_for` meaningful at every step; 10x keeps a flapping backend
/// mostly out of rotation while still retrying it every few minutes.
pub const MAX_EJECTION_MULTIPLIER: u32 = 10;

/// How long a backend must stay out of ejection, as a multiple of `eject_for`, for one
/// previous ejection to be forgiven (the back-off exponent drops by one per period).
///
/// Using the back-off cap as the period means a backend that was ejected once and then
/// behaves for 5 minutes (default settings) starts from a plain `eject_for` again, while
/// one that keeps failing every minute or two stays at long ejections.
pub const EJECTION_DECAY_MULTIPLIER: u32 = MAX_EJECTION_MULTIPLIER;

/// Number of equal time steps of the slow-start ramp.
///
/// The effective weight is a step function of time rather than a continuous one so that
/// [`PoolHealth::view`] only changes at instants [`PoolHealth::next_deadline`] reports:
/// the control thread republishes 20 snapshots per ramp instead of one per weight unit.
pub const SLOW_START_STEPS: u32 = 20;

/// Share of its configured weight (in percent) a backend gets at the start of slow start.
pub const SLOW_START_INITIAL_PERCENT: u32 = 10;

/// The health of one backend, as reported to logs, the admin endpoint and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Healthy: receives traffic (possibly at a reduced, slow-start weight).
    Up,
    /// Active checks failed `fall` times in a row; back after `rise` successes.
    Down,
    /// Passively ejected after too many failures on real traffic; back when the ejection
    /// expires (see [`PoolHealth::tick`]).
    Ejected,
    /// Taken out of rotation by an operator ([`PoolHealth::drain`]): no new traffic
    /// until [`PoolHealth::enable`], whatever the checks say.
    Draining,
}

impl State {
    /// Lower-case name for logs and the admin endpoint (`"up"`, `"down"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Ejected => "ejected",
            State::Draining => "draining",
        }
    }
}

/// Health settings of one pool, already validated and converted from the config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthSettings {
    /// Consecutive successful probes that bring a `Down` backend back. 0 is treated as 1.
    pub rise: u32,
    /// Consecutive failed probes that take an `Up` backend down. 0 is treated as 1.
    pub fall: u32,
    /// Consecutive passive failures that eject a backend; 0 turns passive ejection off.
    pub consecutive_failures: u32,
    /// Length of a first ejection; repeated ones back off (see
    /// [`MAX_EJECTION_MULTIPLIER`]). `ZERO` ejects until the next [`PoolHealth::tick`].
    pub eject_for: Duration,
    /// Length of the slow-start ramp; `ZERO` turns slow start off.
    pub slow_start: Duration,
    /// Panic threshold: if fewer than this percentage of the pool's backends are healthy,
    /// all of them are used anyway. Values above 100 act as 100; 0 turns panic mode off
    /// (a pool with no healthy backend then has nothing usable).
    pub min_usable_percent: u8,
}

impl Default for HealthSettings {
    /// The defaults the config uses for fields not given: `rise: 2, fall: 3`,
    /// `consecutive_failures: 5, eject_for: 30s`, `slow_start: 10s`,
    /// `min_usable_percent: 50` (Envoy's panic threshold is 50% too).
    fn default() -> Self {
        HealthSettings {
            rise: 2,
            fall: 3,
            consecutive_failures: 5,
            eject_for: Duration::from_secs(30),
            slow_start: Duration::from_secs(10),
            min_usable_percent: 50,
        }
    }
}

/// The verdict of one active probe (a TCP connect, or an HTTP check whose status was
/// compared with the expected one; a probe that timed out is a `Failure`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Probe {
    /// The check passed.
    Success,
    /// The check failed or timed out.
    Failure,
}

/// What a worker observed while using a backend for real traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Passive {
    /// A connection or request completed normally; resets the failure count.
    Success,
    /// The connect was refused or failed.
    ConnectFailure,
    /// The connect or the response timed out.
    Timeout,
    /// The upstream answered with a 5xx status.
    Upstream5xx,
    /// The upstream reset the connection.
    Reset,
}

impl Passive {
    /// True for every event that counts towards passive ejection.
    pub fn is_failure(self) -> bool {
        !matches!(self, Passive::Success)
    }
}

/// The health-relevant part of one backend's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendSpec {
    /// Configured weight. A weight of 0 means the backend can never be picked, so it is
    /// never usable and does not count in the panic threshold.
    pub weight: u32,
    /// A backup is used only while no primary (non-backup) backend is usable.
    pub backup: bool,
}

/// A change of one backend's [`State`], for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Index of the backend in the pool.
    pub backend: usize,
    /// State before the event.
    pub from: State,
    /// State after the event.
    pub to: State,
    /// Why: one of the `Transition::*` reason constants.
    pub reason: &'static str,
}

impl Transition {
    /// An active probe succeeded (rise reached, or a step towards it changed the state).
    pub const PROBE_PASSED: &'static str = "health check passed";
    /// An active probe failed (fall reached).
    pub const PROBE_FAILED: &'static str = "health check failed";
    /// `consecutive_failures` passive failures in a row.
    pub const PASSIVE_FAILURES: &'static str = "consecutive passive failures";
    /// A passive ejection ran out.
    pub const EJECTION_EXPIRED: &'static str = "ejection expired";
    /// [`PoolHealth::drain`].
    pub const DRAINED: &'static str = "drained by admin";
    /// [`PoolHealth::enable`].
    pub const ENABLED: &'static str = "enabled by admin";
}

/// What workers should use right now, one entry per backend (same indices as the pool).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolView {
    /// Whether the backend may receive new traffic.
    pub usable: Vec<bool>,
    /// Effective weight for the balancer: 0 when not usable, otherwise at least 1 and at
    /// most the configured weight (less while slow start ramps it up).
    pub weights: Vec<u32>,
    /// Panic mode: too few backends were healthy, so unhealthy ones are used as well.
    pub panic: bool,
}

/// Per-backend bookkeeping. Private: the outside sees [`State`] and [`PoolView`].
#[derive(Clone, Debug)]
struct Backend {
    spec: BackendSpec,
    /// Active verdict: true once `rise` successes were seen, false after `fall` failures.
    active_up: bool,
    /// Consecutive successful probes (reset by a failure).
    probe_successes: u32,
    /// Consecutive failed probes (reset by a success).
    probe_failures: u32,
    /// Consecutive passive failures while `Up` (reset by a passive success or ejection).
    passive_failures: u32,
    /// Passive ejection in force until this instant.
    ejected_until: Option<Instant>,
    /// Ejections not yet forgiven: the back-off exponent.
    ejections: u32,
    /// Start of the healthy time that forgives ejections (when the last one ended).
    decay_anchor: Instant,
    /// Admin drain flag.
    draining: bool,
    /// Start of the slow-start ramp, while one is running and the backend is `Up`.
    ramp_start: Option<Instant>,
}

impl Backend {
    fn new(spec: BackendSpec, now: Instant) -> Backend {
        Backend {
            spec,
            active_up: true,
            probe_successes: 0,
            probe_failures: 0,
            passive_failures: 0,
            ejected_until: None,
            ejections: 0,
            decay_anchor: now,
            draining: false,
            ramp_start: None,
        }
    }

    /// Combine the three independent causes, most deliberate first (see module docs).
    fn state(&self) -> State {
        if self.draining {
            State::Draining
        } else if !self.active_up {
            State::Down
        } else if self.ejected_until.is_some() {
            State::Ejected
        } else {
            State::Up
        }
    }

    /// Healthy and able to take traffic on its own merits (not only in panic mode).
    fn healthy(&self) -> bool {
        self.spec.weight > 0 && self.state() == State::Up
    }

    /// Counts in the panic threshold: could take traffic at all. A drained backend is
    /// left out because an operator removed it on purpose, which is no reason to panic
    /// (and panic mode must never send it traffic again).
    fn member(&self) -> bool {
        self.spec.weight > 0 && !self.draining
    }

    /// Forgive one ejection per full decay period spent since the last one ended.
    fn decay_ejections(&mut self, now: Instant, eject_for: Duration) {
        if self.ejections == 0 {
            return;
        }
        let period = eject_for
            .saturating_mul(EJECTION_DECAY_MULTIPLIER)
            .as_nanos();
        if period == 0 {
            // Zero-length ejections have nothing to back off from.
            self.ejections = 0;
            return;
        }
        let healthy = now.saturating_duration_since(self.decay_anchor).as_nanos();
        let steps = healthy / period;
        self.ejections = self
            .ejections
            .saturating_sub(u32::try_from(steps).unwrap_or(u32::MAX));
        // Keep partial progress towards the next step, without counting this time twice.
        self.decay_anchor = add_saturating(self.decay_anchor, nanos_to_duration(steps * period));
    }
}

/// The health of every backend of one pool.
#[derive(Clone, Debug)]
pub struct PoolHealth {
    settings: HealthSettings,
    backends: Vec<Backend>,
    /// Latest `now` any mutating call has seen; [`PoolHealth::next_deadline`] takes no
    /// time argument, so it computes the next slow-start step after this instant.
    last_now: Instant,
}

impl PoolHealth {
    /// A pool whose backends all start `Up`, at full weight.
    ///
    /// Starting `Up` rather than `Down` means a freshly started proxy serves at once
    /// instead of answering 503 for `rise * interval` while the first checks run (and
    /// forever, for a pool without active checks); a dead backend is found by its first
    /// `fall` probes or by passive ejection, whichever comes first. There is no slow
    /// start at startup: weights are relative, so ramping every backend together would
    /// change nothing but rounding.
    pub fn new(settings: HealthSettings, backends: &[BackendSpec], now: Instant) -> PoolHealth {
        PoolHealth {
            settings,
            backends: backends.iter().map(|s| Backend::new(*s, now)).collect(),
            last_now: now,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> HealthSettings {
        self.settings
    }

    /// Number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// True for a pool without backends.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// The state of one backend; an index out of range reads as `Down` (it cannot be
    /// used).
    pub fn state(&self, backend: usize) -> State {
        self.backends
            .get(backend)
            .map_or(State::Down, Backend::state)
    }

    /// Feed one active probe verdict. Returns the transition if the state changed.
    ///
    /// A success resets the failure streak and a failure the success streak, so only
    /// uninterrupted runs of `rise` (or `fall`) results flip the active verdict. Probes
    /// keep counting while the backend is ejected or drained, so the right state shows
    /// as soon as those end.
    pub fn on_probe(&mut self, backend: usize, result: Probe, now: Instant) -> Option<Transition> {
        self.observe(now);
        let rise = self.settings.rise.max(1);
        let fall = self.settings.fall.max(1);
        let reason = match result {
            Probe::Success => Transition::PROBE_PASSED,
            Probe::Failure => Transition::PROBE_FAILED,
        };
        self.update(backend, now, reason, |b| match result {
            Probe::Success => {
                b.probe_failures = 0;
                b.probe_successes = b.probe_successes.saturating_add(1);
                if !b.active_up && b.probe_successes >= rise {
                    b.active_up = true;
                }
            }
            Probe::Failure => {
                b.probe_successes = 0;
                b.probe_failures = b.probe_failures.saturating_add(1);
                if b.active_up && b.probe_failures >= fall {
                    b.active_up = false;
                    // Failures seen before going down say nothing about it once back.
                    b.passive_failures = 0;
                }
            }
        })
    }

    /// Feed one passive event. Returns the transition if the backend got ejected.
    ///
    /// Failures count only while the backend is `Up`: events from a backend already
    /// out of rotation (in-flight requests, or panic-mode traffic) must not extend or
    /// stack ejections. Any success resets the streak. Ignored entirely when
    /// `consecutive_failures` is 0.
    pub fn on_passive(
        &mut self,
        backend: usize,
        event: Passive,
        now: Instant,
    ) -> Option<Transition> {
        self.observe(now);
        let settings = self.settings;
        if settings.consecutive_failures == 0 {
            return None;
        }
        let b = self.backends.get_mut(backend)?;
        if !event.is_failure() {
            b.passive_failures = 0;
            return None;
        }
        if b.state() != State::Up {
            return None;
        }
        self.update(backend, now, Transition::PASSIVE_FAILURES, |b| {
            b.passive_failures = b.passive_failures.saturating_add(1);
            if b.passive_failures >= settings.consecutive_failures {
                b.passive_failures = 0;
                b.decay_ejections(now, settings.eject_for);
                b.ejections = b.ejections.saturating_add(1);
                let length = ejection_length(settings.eject_for, b.ejections);
                b.ejected_until = Some(add_saturating(now, length));
            }
        })
    }

    /// Advance time: end ejections that ran out and forget finished slow-start ramps.
    /// Returns the resulting transitions (`Ejected -> Up` typically; `Down` or
    /// `Draining` backends change nothing visible).
    pub fn tick(&mut self, now: Instant) -> Vec<Transition> {
        self.observe(now);
        let slow_start = self.settings.slow_start;
        let mut out = Vec::new();
        for i in 0..self.backends.len() {
            let expired = matches!(self.backends[i].ejected_until, Some(until) if until <= now);
            if expired {
                let t = self.update(i, now, Transition::EJECTION_EXPIRED, |b| {
                    b.ejected_until = None;
                    b.decay_anchor = now;
                });
                out.extend(t);
            }
            let b = &mut self.backends[i];
            if matches!(b.ramp_start, Some(start) if now.saturating_duration_since(start) >= slow_start)
            {
                b.ramp_start = None;
            }
        }
        out
    }

    /// Admin: stop sending new traffic to a backend (state `Draining`) until
    /// [`enable`](Self::enable). Probes keep being counted meanwhile. Returns the
    /// transition, or `None` if already draining or out of range.
    pub fn drain(&mut self, backend: usize) -> Option<Transition> {
        let now = self.last_now;
        self.update(backend, now, Transition::DRAINED, |b| b.draining = true)
    }

    /// Admin: put a backend back into service. Clears the drain flag and any passive
    /// ejection (the operator vouches for it, and renewed failures eject it again), but
    /// not a `Down` verdict: probes are evidence, and `rise` successes bring it back. A
    /// backend that becomes `Up` goes through slow start. Returns the transition, if any.
    pub fn enable(&mut self, backend: usize, now: Instant) -> Option<Transition> {
        self.observe(now);
        self.update(backend, now, Transition::ENABLED, |b| {
            b.draining = false;
            b.passive_failures = 0;
            if b.ejected_until.take().is_some() {
                b.decay_anchor = now;
            }
        })
    }

    /// What workers should use now: per backend (usable, effective weight), plus the
    /// panic flag. Call after [`tick`](Self::tick): expired ejections end there.
    ///
    /// Selection works on one tier at a time. The primaries are the tier while any of
    /// them is healthy; otherwise the backups are, if any backup is healthy; otherwise
    /// (nothing healthy anywhere) the primaries again, or the backups for a pool
    /// without primaries. Within the tier, healthy backends are usable; if they are
    /// fewer than `min_usable_percent` of the tier's members (non-drained, weight > 0),
    /// the tier panics: every member is usable, at its full configured weight, and
    /// `panic` is set. Backups therefore never dilute or inflate the primaries' share,
    /// and never get traffic while a primary is usable; drained backends never get any.
    ///
    /// Outside panic mode a healthy backend's weight follows its slow-start ramp: from
    /// [`SLOW_START_INITIAL_PERCENT`] of its weight (at least 1) up to all of it over
    /// `slow_start`, in [`SLOW_START_STEPS`] steps.
    pub fn view(&self, now: Instant) -> PoolView {
        let n = self.backends.len();
        let mut view = PoolView {
            usable: vec![false; n],
            weights: vec![0; n],
            panic: false,
        };
        let any_healthy = |backup: bool| {
            self.backends
                .iter()
                .any(|b| b.spec.backup == backup && b.healthy())
        };
        let tier_is_backup = if any_healthy(false) {
            false
        } else if any_healthy(true) {
            true
        } else {
            !self.backends.iter().any(|b| !b.spec.backup && b.member())
        };
        let tier = || {
            self.backends
                .iter()
                .enumerate()
                .filter(move |(_, b)| b.spec.backup == tier_is_backup && b.member())
        };
        let members = tier().count() as u128;
        let healthy = tier().filter(|(_, b)| b.healthy()).count() as u128;
        let percent = u128::from(self.settings.min_usable_percent.min(100));
        view.panic = members > 0 && healthy * 100 < percent * members;
        for (i, b) in tier() {
            if view.panic {
                view.usable[i] = true;
                view.weights[i] = b.spec.weight;
            } else if b.healthy() {
                view.usable[i] = true;
                view.weights[i] =
                    ramped_weight(b.spec.weight, b.ramp_start, now, self.settings.slow_start);
            }
        }
        view
    }

    /// The next instant at which the view changes by itself: the earliest ejection
    /// expiry or slow-start step after the latest `now` passed to any method taking one.
    /// `None` if nothing is pending. The result may lie in the past (an ejection that
    /// expired but was not yet [`tick`](Self::tick)ed): tick right away then. It is
    /// never late, but may be early (a step that panic mode hides, an ejection of a
    /// backend that is also down), which costs only a spurious wake-up.
    pub fn next_deadline(&self) -> Option<Instant> {
        let slow_start = self.settings.slow_start;
        self.backends
            .iter()
            .flat_map(|b| {
                let step = match b.ramp_start {
                    Some(start) if b.state() == State::Up => {
                        next_ramp_step(start, self.last_now, slow_start)
                    }
                    _ => None,
                };
                [b.ejected_until, step]
            })
            .flatten()
            .min()
    }

    /// Apply a new configuration after a reload.
    ///
    /// `keep(new_index)` names the old index of a backend that survives the reload (same
    /// address); survivors keep everything (state, streaks, ejection and its back-off,
    /// drain flag, ramp) and take their new weight and backup flag. Backends without a
    /// valid old index are new: they start `Up` and, unlike at startup, go through slow
    /// start, because the established backends are at full weight and a cold one should
    /// not take its full share at once. Ejections in force keep their expiry even if
    /// `eject_for` changed. No transitions are produced: no survivor changes state.
    pub fn reconfigure(
        &mut self,
        settings: HealthSettings,
        backends: &[BackendSpec],
        keep: impl Fn(usize) -> Option<usize>,
        now: Instant,
    ) {
        self.observe(now);
        let old = std::mem::take(&mut self.backends);
        self.backends = backends
            .iter()
            .enumerate()
            .map(|(i, spec)| match keep(i).and_then(|o| old.get(o)) {
                Some(previous) => Backend {
                    spec: *spec,
                    ..previous.clone()
                },
                None => Backend {
                    ramp_start: (!settings.slow_start.is_zero()).then_some(now),
                    ..Backend::new(*spec, now)
                },
            })
            .collect();
        self.settings = settings;
    }

    /// Remember the latest time seen; calls slightly out of order must not move it back.
    fn observe(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
    }

    /// Mutate one backend and report the state change, if any. The one place that
    /// starts a slow-start ramp (on becoming `Up` from anything else) and drops it (on
    /// leaving `Up`), so every path back into rotation ramps alike.
    fn update(
        &mut self,
        backend: usize,
        now: Instant,
        reason: &'static str,
        change: impl FnOnce(&mut Backend),
    ) -> Option<Transition> {
        let slow_start = self.settings.slow_start;
        let b = self.backends.get_mut(backend)?;
        let from = b.state();
        change(b);
        let to = b.state();
        if from == to {
            return None;
        }
        b.ramp_start = if to == State::Up && !slow_start.is_zero() {
            Some(now)
        } else {
            None
        };
        Some(Transition {
            backend,
            from,
            to,
            reason,
        })
    }
}

/// Length of the `n`-th ejection in a row (n >= 1): `eject_for * 2^(n-1)`, capped.
fn ejection_length(eject_for: Duration, n: u32) -> Duration {
    let doubling = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
    eject_for.saturating_mul(doubling.min(MAX_EJECTION_MULTIPLIER))
}

/// Current slow-start step: `k` of [`SLOW_START_STEPS`], or `None` once complete.
fn ramp_step(start: Instant, now: Instant, slow_start: Duration) -> Option<u128> {
    let total = slow_start.as_nanos();
    let elapsed = now.saturating_duration_since(start).as_nanos();
    if elapsed >= total {
        return None;
    }
    Some(elapsed * u128::from(SLOW_START_STEPS) / total)
}

/// Effective weight under a slow-start ramp (the full weight without one).
fn ramped_weight(weight: u32, start: Option<Instant>, now: Instant, slow_start: Duration) -> u32 {
    let Some(step) = start.and_then(|s| ramp_step(s, now, slow_start)) else {
        return weight;
    };
    // weight * (initial + (100 - initial) * step / steps) / 100, in integers.
    let steps = u128::from(SLOW_START_STEPS);
    let initial = u128::from(SLOW_START_INITIAL_PERCENT);
    let scaled = u128::from(weight) * (initial * steps + (100 - initial) * step) / (100 * steps);
    // At least 1 so a ramping backend is actually tried; never above the weight.
    u32::try_from(scaled)
        .unwrap_or(weight)
        .clamp(1.min(weight), weight)
}

/// The instant the ramp reaches its next step (the last one is the ramp's end).
fn next_ramp_step(start: Instant, now: Instant, slow_start: Duration) -> Option<Instant> {
    let step = ramp_step(start, now, slow_start)?;
    let steps = u128::from(SLOW_START_STEPS);
    // Rounded up, so that at the returned instant `ramp_step` already yields step + 1.
    let offset = (slow_start.as_nanos() * (step + 1)).div_ceil(steps);
    Some(add_saturating(start, nanos_to_duration(offset)))
}

/// `Duration` from a nanosecond count, saturating instead of overflowing.
fn nanos_to_duration(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder is below 10^9, so the conversion cannot fail.
    let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Duration::new(secs, sub)
}

/// `at + d`, clamped instead of panicking when the platform's `Instant` cannot
/// represent the sum (possible with absurd configured durations): halves `d` until it
/// fits, which still lands centuries away for any realistic clock.
fn add_saturating(at: Instant, d: Duration) -> Instant {
    let mut d = d;
    loop {
        if let Some(t) = at.checked_add(d) {
            return t;
        }
        if d.is_zero() {
            return at;
        }
        d /= 2;
    }
}

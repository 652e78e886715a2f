//! Spreading active probes over the interval.
//!
//! If every backend were probed at the same instant, a pool of N backends would see a
//! burst of N checks per interval (and many proxies started together would hit one
//! backend in lockstep). Instead each backend gets a fixed phase in `[0, interval)`,
//! derived from a seed and its index, and is probed at `epoch + phase + k * interval`.
//!
//! Phases follow a golden-ratio (Weyl) sequence started at a seed-dependent point:
//! `frac(start(seed) + i * 0.618...)`. Multiplying by an odd 64-bit constant is a
//! bijection modulo 2^64, so distinct backends always get distinct phases (down to
//! nanosecond rounding), and each new backend lands in one of the largest remaining
//! gaps, so the probes stay evenly spread for any pool size — better than independent
//! random phases, which cluster. A per-instance seed keeps proxies apart.
//!
//! Everything is deterministic for a given seed, so tests and reproductions can replay
//! a schedule exactly.

use std::time::{Duration, Instant};

use super::{add_saturating, nanos_to_duration};

/// Shortest interval a [`ProbeScheduler`] accepts; shorter ones (including zero, which
/// would mean probing in a busy loop) are raised to it.
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(1);

/// 2^64 / golden ratio, odd: the step of the Weyl sequence.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 finalizer: turns similar seeds (0, 1, 2...) into unrelated start points.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The phase of `backend`'s probes within `interval`: always in `[0, interval)` (zero
/// for a zero interval), distinct for distinct backends, deterministic for a seed.
pub fn probe_offset(interval: Duration, backend: usize, seed: u64) -> Duration {
    // Intervals beyond u64 nanoseconds (584 years) are clamped so the product below
    // fits in u128; the offset then stays within the clamped, hence the real, interval.
    let span = u128::from(u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX));
    let point = mix(seed).wrapping_add((backend as u64).wrapping_mul(GOLDEN));
    // point / 2^64 is a fraction in [0, 1); scale it to the interval.
    nanos_to_duration((u128::from(point) * span) >> 64)
}

/// Probe times for the backends of one pool: backend `i` is probed at
/// `epoch + probe_offset(interval, i, seed) + k * interval` for k = 0, 1, 2, ...
///
/// Create one per pool (again on reload if the interval changes), then after each probe
/// of a backend ask for its next time with [`next_probe_at`](Self::next_probe_at). The
/// grid is fixed to the epoch rather than to when the last probe finished, so slow
/// probes do not make the schedule drift and backends keep their spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeScheduler {
    epoch: Instant,
    interval: Duration,
    seed: u64,
}

impl ProbeScheduler {
    /// A schedule starting at `epoch` (typically the control thread's start or reload
    /// time). `interval` below [`MIN_PROBE_INTERVAL`] is raised to it.
    pub fn new(epoch: Instant, interval: Duration, seed: u64) -> ProbeScheduler {
        ProbeScheduler {
            epoch,
            interval: interval.max(MIN_PROBE_INTERVAL),
            seed,
        }
    }

    /// The probe interval in force.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The phase of `backend` within the interval (see [`probe_offset`]).
    pub fn offset(&self, backend: usize) -> Duration {
        probe_offset(self.interval, backend, self.seed)
    }

    /// The first probe time of `backend` strictly after `now`. Strictly, so that
    /// calling it at the very instant of a probe yields the following one. If the
    /// caller fell behind by several intervals, missed probes are skipped rather than
    /// fired in a burst.
    pub fn next_probe_at(&self, backend: usize, now: Instant) -> Instant {
        let first = add_saturating(self.epoch, self.offset(backend));
        if now < first {
            return first;
        }
        let interval = self.interval.as_nanos();
        let since = now.saturating_duration_since(first).as_nanos();
        let periods = since / interval + 1;
        add_saturating(first, nanos_to_duration(periods.saturating_mul(interval)))
    }
}

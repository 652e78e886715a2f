//! Process-wide lifecycle flags the control side sets and the workers poll.
//!
//! Workers sit in io_uring waits that another thread cannot interrupt without monoio's
//! cross-thread wake-up machinery, so each worker polls these flags on a short timer
//! instead (see [`POLL_INTERVAL`]). Reading an atomic every few tens of milliseconds per
//! core costs nothing measurable and keeps the data path free of cross-core wake-ups.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a worker checks the lifecycle flags.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Shared between the control side (writer) and every worker (readers).
#[derive(Debug)]
pub struct Lifecycle {
    draining: AtomicBool,
    /// Grace deadline as nanoseconds after `epoch`; meaningful once `draining` is set.
    grace_deadline_nanos: AtomicU64,
    epoch: Instant,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

impl Lifecycle {
    /// A lifecycle in the serving state.
    pub fn new() -> Lifecycle {
        Lifecycle {
            draining: AtomicBool::new(false),
            grace_deadline_nanos: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
        }
    }

    /// Begin a graceful stop: workers stop accepting and finish what is in flight until
    /// `now + grace`, then their connections are cut.
    pub fn start_draining(&self, now: Instant, grace: Duration) {
        let deadline = now.saturating_duration_since(self.epoch) + grace;
        let nanos = u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX);
        self.grace_deadline_nanos.store(nanos, Ordering::Relaxed);
        // Release: a worker that sees `draining` also sees the deadline stored above.
        self.draining.store(true, Ordering::Release);
    }

    /// Whether a graceful stop has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// When in-flight work is cut, if draining.
    pub fn grace_deadline(&self) -> Option<Instant> {
        if !self.is_draining() {
            return None;
        }
        let nanos = self.grace_deadline_nanos.load(Ordering::Relaxed);
        self.epoch.checked_add(Duration::from_nanos(nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_sets_a_deadline_after_now() {
        let life = Lifecycle::new();
        assert!(!life.is_draining());
        assert_eq!(life.grace_deadline(), None);
        let now = Instant::now();
        life.start_draining(now, Duration::from_secs(30));
        assert!(life.is_draining());
        let deadline = life.grace_deadline().unwrap();
        let grace = deadline.duration_since(now);
        assert!(
            grace <= Duration::from_secs(30) && grace > Duration::from_secs(29),
            "{grace:?}"
        );
    }
}

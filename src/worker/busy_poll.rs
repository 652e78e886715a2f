//! Busy polling (`tuning.busy_poll`): after a burst of work, the worker keeps polling for
//! new events for a short while instead of going to sleep in the kernel.
//!
//! Why: a worker that sleeps must be woken. The core whose packet wakes it pays for the
//! wake-up (and an inter-processor interrupt), and the sleeping core pays for leaving its
//! idle state: several microseconds on a virtual machine, on the path of every request
//! that finds the worker asleep. Under load the gaps between a worker's bursts are short,
//! so polling through them trades some of the worker's idle time for lower latency and
//! less work on the cores that would wake it (clients and backends on the same host, the
//! load generator and origin in a benchmark). HAProxy's `busy-polling` and Seastar's idle
//! polling are the same trade; unlike HAProxy's, this one ends `budget` after the last
//! activity, so an idle worker still sleeps.
//!
//! On by default ([`crate::config::DEFAULT_BUSY_POLL`], 50 µs), as Seastar's reactor polls
//! 200 µs before it sleeps unless told the host is shared: ringway is for latency-critical
//! hosts, and most of a proxied request's latency at low load is wake-ups (client to
//! proxy, proxy to backend and back). `bench/busy_poll.sh` measures both sides: on a
//! 2-vCPU VM one sequential client's p50 went from 72 to 54 µs, for under one point of a
//! core more at 1000 requests/s. `"0s"` turns it off for hosts where cores are shared.
//!
//! How: a spinner task waits, again and again, on a socket that is always readable. On
//! io_uring that wait is a poll that completes as soon as it is submitted, so each turn
//! of the spinner is one non-blocking trip through the runtime's park: it submits what is
//! queued, reaps completions, runs due timers and re-arms the readiness set, exactly as a
//! sleeping park does, without the sleep. Connections call [`note_activity`] when they
//! make progress; after `budget` without any, the spinner stops until the next.
//!
//! Only on io_uring: monoio's epoll driver would complete that wait without going through
//! its park (the task would never yield, and timers would not run), so workers on epoll
//! ignore the setting.

use std::cell::Cell;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::Core;

thread_local! {
    /// This worker's progress counter and its stopped spinner, if any.
    static ACTIVITY: Activity = const {
        Activity { count: Cell::new(0), stopped: Cell::new(None) }
    };
}

struct Activity {
    /// Bumped by the worker's connections each time they make progress.
    count: Cell<u64>,
    /// The spinner's waker while it is stopped for lack of activity.
    stopped: Cell<Option<Waker>>,
}

/// Note that this worker made progress (accepted, read or relayed something): keeps the
/// spinner polling, or restarts it. With busy polling off it costs a thread-local
/// increment and a look for a waker that is not there: no allocation, no system call.
#[inline]
pub(crate) fn note_activity() {
    ACTIVITY.with(|a| {
        a.count.set(a.count.get().wrapping_add(1));
        if let Some(spinner) = a.stopped.take() {
            spinner.wake();
        }
    });
}

fn activity_count() -> u64 {
    ACTIVITY.with(|a| a.count.get())
}

/// The spinner's decision, kept apart from IO and clocks so it can be tested with time
/// passed in: keep polling while there was activity within `budget`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpinWindow {
    budget: Duration,
    seen: u64,
    last: Instant,
}

impl SpinWindow {
    /// A window that opens at `now`, having seen activity count `seen`.
    pub(crate) fn new(budget: Duration, seen: u64, now: Instant) -> Self {
        SpinWindow {
            budget,
            seen,
            last: now,
        }
    }

    /// After one turn of polling, with the activity counter at `count`: whether to poll
    /// again. New activity moves the window's start to `now`.
    pub(crate) fn keep_polling(&mut self, count: u64, now: Instant) -> bool {
        if count != self.seen {
            self.seen = count;
            self.last = now;
            return true;
        }
        now.saturating_duration_since(self.last) < self.budget
    }
}

/// Whether a spinner runs on this worker; the worker's tick starts one when the config
/// asks for busy polling and none runs.
#[derive(Clone, Default)]
pub(crate) struct Spinner(Rc<Cell<bool>>);

impl Spinner {
    /// Start the spinner if `budget` is positive, it is not running and the core is on
    /// io_uring (see the module documentation).
    pub(crate) fn ensure(&self, core: &Core, budget: Duration) {
        if budget.is_zero() || self.0.get() || !core.on_ring() {
            return;
        }
        // The always-readable socket: one byte written and never read.
        let ready = match always_readable() {
            Ok(ready) => ready,
            Err(e) => {
                crate::log::warn(format_args!(
                    "worker {}: busy polling off: {e}",
                    core.index()
                ));
                return;
            }
        };
        self.0.set(true);
        monoio::spawn(spin(core.clone(), self.clone(), ready));
    }
}

fn always_readable() -> std::io::Result<monoio::net::UnixStream> {
    let (ready, mut writer) = std::os::unix::net::UnixStream::pair()?;
    std::io::Write::write_all(&mut writer, &[1])?;
    monoio::net::UnixStream::from_std(ready)
}

/// Poll through the runtime while activity continues, stopping `budget` after the last of
/// it; ends when the config turns busy polling off.
async fn spin(core: Core, running: Spinner, ready: monoio::net::UnixStream) {
    loop {
        // The budget is read once per burst, so a reload applies from the next burst.
        let budget = core.view().snapshot.config.tuning.busy_poll;
        if budget.is_zero() {
            break;
        }
        let mut window = SpinWindow::new(budget, activity_count(), Instant::now());
        loop {
            if ready.readable(false).await.is_err() {
                running.0.set(false);
                return;
            }
            if !window.keep_polling(activity_count(), Instant::now()) {
                break;
            }
        }
        // Quiet for a whole budget: sleep with the runtime until a connection moves.
        let seen = activity_count();
        std::future::poll_fn(|cx| {
            if activity_count() != seen {
                return Poll::Ready(());
            }
            ACTIVITY.with(|a| a.stopped.set(Some(cx.waker().clone())));
            Poll::Pending
        })
        .await;
    }
    running.0.set(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (activity count after the turn, microseconds since the window opened, keep polling)
    /// in sequence on one window with a 50 µs budget that opened at 0 having seen count 7.
    const TURNS: &[(u64, u64, bool)] = &[
        (7, 0, true),   // no activity yet, just opened
        (7, 49, true),  // still inside the budget
        (7, 50, false), // a whole budget without activity
        (8, 60, true),  // activity reopens the window at 60
        (8, 109, true), // 49 µs after it
        (8, 110, false),
        (9, 500, true), // any change counts, however late
        (9, 500, true),
        (u64::MAX, 520, true), // the counter may wrap: still a change
        (0, 540, true),
        (0, 590, false),
    ];

    #[test]
    fn window_keeps_polling_until_a_budget_passes_without_activity() {
        let start = Instant::now();
        let mut window = SpinWindow::new(Duration::from_micros(50), 7, start);
        for (i, &(count, at, expected)) in TURNS.iter().enumerate() {
            let now = start + Duration::from_micros(at);
            assert_eq!(
                window.keep_polling(count, now),
                expected,
                "turn {i}: count {count} at {at} µs"
            );
        }
    }

    #[test]
    fn a_clock_that_steps_back_does_not_stop_polling_early() {
        let start = Instant::now();
        let later = start + Duration::from_micros(40);
        let mut window = SpinWindow::new(Duration::from_micros(50), 0, later);
        assert!(window.keep_polling(0, start));
    }

    #[test]
    fn activity_wakes_a_stopped_spinner_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use std::task::Wake;

        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let before = activity_count();
        ACTIVITY.with(|a| a.stopped.set(Some(Waker::from(wakes.clone()))));
        note_activity();
        note_activity();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(activity_count(), before.wrapping_add(2));
    }
}

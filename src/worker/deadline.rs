//! A connection's one timer, aimed anew at the deadline of each wait.
//!
//! Every read and write of a connection is bounded in time, and almost every one ends
//! long before its bound. A fresh `monoio::time::Sleep` per wait costs, each time, a
//! timer entry built inside the wait's future (640 bytes), an insert into the runtime's
//! timer wheel and a removal from it. [`Deadline`] keeps one timer for the connection's
//! life and moves it with `Sleep::reset`: moving it later only records the new time
//! (the wheel looks at the entry again only if its old time comes, and then files it
//! under the new one), so the wheel is touched when a deadline moves earlier, which is
//! at most once or twice per request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::time::Sleep;

/// The timer that bounds a connection's waits, one wait at a time.
#[derive(Default)]
pub(super) struct Deadline {
    /// Made on the first wait: a connection closed before it ever waits needs none.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// Wait for `fut` for at most `limit` from now (from this call: callers await at
    /// once). `limit` is a validated timeout (at most `MAX_TIMEOUT`, so the sum cannot
    /// overflow) or a constant.
    pub(super) fn within<T, F>(&mut self, limit: Duration, fut: F) -> Until<'_, F>
    where
        F: Future<Output = io::Result<T>>,
    {
        self.until(Instant::now() + limit, fut)
    }

    /// Wait for `fut` until `deadline`. Past it `fut` is dropped, which cancels its I/O,
    /// and the result is `ErrorKind::TimedOut`.
    ///
    /// A plain function returning [`Until`], not an `async fn`: an `async fn` keeps its
    /// argument `fut` in its state and then a pinned copy of it beside, so its future is
    /// twice the operation's size, and the first poll copies the operation from one to
    /// the other. Every read and write of a connection goes through here, and the
    /// enclosing futures (the whole connection's, in the end) are sized by it.
    pub(super) fn until<T, F>(&mut self, deadline: Instant, fut: F) -> Until<'_, F>
    where
        F: Future<Output = io::Result<T>>,
    {
        Until {
            fut,
            sleep: self.aimed_at(deadline),
        }
        // The timer stays armed when the wait ends early. If its time comes before the
        // next wait moves it, it wakes the connection's task once, which then finds
        // nothing to do: cheaper than taking it out of the wheel after every wait.
    }

    /// The connection's timer itself, aimed at `deadline`, for a wait that moves its
    /// own deadline as it goes (a body splice's idle timeout).
    pub(super) fn aimed_at(&mut self, deadline: Instant) -> Pin<&mut Sleep> {
        let fresh = self.sleep.is_none();
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(monoio::time::sleep_until(deadline.into())));
        if !fresh {
            sleep.as_mut().reset(deadline.into());
        }
        sleep.as_mut()
    }
}

pin_project_lite::pin_project! {
    /// One wait of [`Deadline::until`]: the operation, held in place, and the
    /// connection's timer, already aimed at this wait's deadline.
    pub(super) struct Until<'a, F> {
        #[pin]
        fut: F,
        sleep: Pin<&'a mut Sleep>,
    }
}

impl<T, F> Future for Until<'_, F>
where
    F: Future<Output = io::Result<T>>,
{
    type Output = io::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The operation first: a result that is ready wins over a deadline that has just
        // passed, as with `monoio::time::timeout`.
        if let Poll::Ready(res) = this.fut.poll(cx) {
            return Poll::Ready(res);
        }
        this.sleep
            .as_mut()
            .poll(cx)
            .map(|()| Err(io::ErrorKind::TimedOut.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
    }

    /// A future that stays pending until `at`, then yields `value`: a stand-in for an
    /// operation whose result comes at a known time, with no socket involved.
    async fn ready_at(at: Instant, value: u32) -> io::Result<u32> {
        monoio::time::sleep_until(at.into()).await;
        Ok(value)
    }

    /// The wait ended on its deadline, not with the operation's result.
    fn assert_timed_out(res: io::Result<u32>) {
        match res {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            Ok(v) => panic!("the operation won with {v}; the deadline should have"),
        }
    }

    #[test]
    fn the_operation_wins_when_it_ends_before_the_deadline() {
        runtime().block_on(async {
            let mut deadline = Deadline::default();
            let start = Instant::now();
            let res = deadline
                .within(
                    Duration::from_secs(5),
                    ready_at(start + Duration::from_millis(5), 7),
                )
                .await;
            assert_eq!(res.unwrap(), 7);
            assert!(start.elapsed() < Duration::from_secs(5));
        });
    }

    #[test]
    fn the_deadline_wins_when_the_operation_is_slower() {
        runtime().block_on(async {
            let mut deadline = Deadline::default();
            let start = Instant::now();
            let slow = ready_at(start + Duration::from_secs(30), 1);
            assert_timed_out(deadline.within(Duration::from_millis(20), slow).await);
            let took = start.elapsed();
            assert!(took >= Duration::from_millis(20), "ended early: {took:?}");
            assert!(took < Duration::from_secs(5), "ended late: {took:?}");
        });
    }

    /// The timer is reused: moving it later after a wait that ended early must not let
    /// the old, earlier time end the next wait; moving it earlier must take effect.
    #[test]
    fn each_wait_is_held_to_its_own_deadline() {
        runtime().block_on(async {
            let mut deadline = Deadline::default();
            let start = Instant::now();
            // A short limit, met.
            let quick = ready_at(start + Duration::from_millis(1), 1);
            assert_eq!(
                deadline
                    .within(Duration::from_millis(30), quick)
                    .await
                    .unwrap(),
                1
            );
            // A longer limit for a wait that outlives the first limit: it must succeed.
            let later = ready_at(Instant::now() + Duration::from_millis(60), 2);
            assert_eq!(
                deadline
                    .within(Duration::from_secs(10), later)
                    .await
                    .unwrap(),
                2
            );
            // Now a short limit again, for a wait that would take long: it times out
            // near the short limit, not the long one set before.
            let begun = Instant::now();
            let slow = ready_at(begun + Duration::from_secs(30), 3);
            assert_timed_out(deadline.within(Duration::from_millis(20), slow).await);
            assert!(begun.elapsed() < Duration::from_secs(5));
        });
    }

    #[test]
    fn a_deadline_already_past_times_out_a_pending_wait() {
        runtime().block_on(async {
            let mut deadline = Deadline::default();
            let past = Instant::now();
            let slow = ready_at(past + Duration::from_secs(30), 1);
            assert_timed_out(deadline.until(past, slow).await);
        });
    }
}

//! Per-client-IP token buckets, one set per worker core.
//!
//! Config `rate_limit: (per_ip: 100, per: "1s", burst: 200)` gives each client IP `per_ip`
//! tokens per `per`, with a bucket of `burst` tokens; each accepted connection (L4) or
//! request (L7) takes one token, and an empty bucket means refuse (L7 answers 429, L4
//! closes).
//!
//! # Per-core approximation
//!
//! Workers share nothing, so there is no global bucket per IP. Instead each worker enforces
//! `per_ip / workers` tokens per `per` with a bucket of `burst / workers` (each at least 1;
//! see [`RateLimiter::per_core`]). The kernel's `SO_REUSEPORT` group hashes each new
//! connection by its 4-tuple, so a client opening many connections (varying source ports)
//! spreads them evenly over workers on average and sees roughly the configured aggregate
//! limit. The approximation errs in both directions:
//!
//! * A client whose traffic all lands on one worker (a single keep-alive connection, or a
//!   UDP client with one source port) is held to the per-core share, i.e. stricter than
//!   configured.
//! * The `max(1)` floors and hash imbalance can let a client slightly exceed the aggregate
//!   when `per_ip` or `burst` is small relative to the worker count.
//!
//! Both are accepted in exchange for a lock-free, allocation-free hot path.
//!
//! # Exact arithmetic
//!
//! Token counts are kept scaled by the period in nanoseconds: a token is worth `per_ns`
//! units and every elapsed nanosecond adds `rate` units. Refill is therefore an exact
//! integer product with no rounding, so long runs do not drift from the configured rate.
//!
//! # Bounded memory
//!
//! At most `max_clients` buckets are kept (in a [`FlowTable`] keyed by `IpAddr`); a new IP
//! arriving when full evicts the least recently seen one. An evicted client comes back with
//! a full bucket, which is lenient but safe: the bound protects memory, not the limit.
//!
//! Sans-IO: time is always passed in as `now`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::flow_table::FlowTable;

/// One client's bucket. Tokens are in units of `1 / per_ns` token (see module docs).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    units: u128,
    /// Time up to which refill has been credited.
    refilled_at: Instant,
}

/// Token-bucket limiter for the clients one worker sees, keyed by client IP.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: FlowTable<Bucket, IpAddr>,
    /// Units added per elapsed nanosecond (= tokens per period).
    rate: u128,
    /// Units per token (= period in nanoseconds).
    per_ns: u128,
    /// Bucket size in units.
    cap_units: u128,
    /// Time for an empty bucket to refill completely; a client idle this long is
    /// indistinguishable from a new one, so its bucket can be dropped.
    full_after: Duration,
}

impl RateLimiter {
    /// `rate` tokens per `per`, bucket `burst`, already divided per core by the caller or by
    /// [`RateLimiter::per_core`]; at most `max_clients` IPs are tracked.
    ///
    /// Degenerate settings are raised to the smallest meaningful value rather than
    /// rejected (config validation is the place to refuse them): `rate` and `burst` to 1,
    /// `per` to 1 ns, `max_clients` to 1.
    pub fn new(rate: u32, per: Duration, burst: u32, max_clients: usize) -> Self {
        let rate = u128::from(rate.max(1));
        let per_ns = per.as_nanos().max(1);
        let cap_units = u128::from(burst.max(1)) * per_ns;
        // ceil(cap_units / rate) nanoseconds; saturate for absurdly long periods.
        let full_ns = cap_units.div_ceil(rate);
        let full_after = u64::try_from(full_ns).map_or(Duration::MAX, Duration::from_nanos);
        Self {
            buckets: FlowTable::new(max_clients),
            rate,
            per_ns,
            cap_units,
            full_after,
        }
    }

    /// Per-core share: divides `rate` and `burst` by `workers` (each at least 1; `workers`
    /// of 0 counts as 1). See the module docs for why this approximates a global limit.
    pub fn per_core(
        rate: u32,
        per: Duration,
        burst: u32,
        workers: usize,
        max_clients: usize,
    ) -> Self {
        let w = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
        Self::new((rate / w).max(1), per, (burst / w).max(1), max_clients)
    }

    /// Take one token for `ip` at `now`; false = over the limit (L7 answers 429, L4 closes).
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let Some(b) = self.buckets.touch(&ip, now) else {
            // First sight (or evicted earlier): a full bucket, minus this request.
            let fresh = Bucket {
                units: self.cap_units - self.per_ns,
                refilled_at: now,
            };
            self.buckets.insert(ip, fresh, now);
            return true;
        };
        // A `now` older than the last refill (callers' timestamps may be slightly out of
        // order) credits nothing and does not move the refill point backwards.
        let elapsed = now.saturating_duration_since(b.refilled_at).as_nanos();
        if elapsed > 0 {
            // Saturating: after very long idle periods the product may exceed u128, but the
            // bucket is capped anyway.
            let credit = elapsed.saturating_mul(self.rate);
            b.units = b.units.saturating_add(credit).min(self.cap_units);
            b.refilled_at = now;
        }
        if b.units >= self.per_ns {
            b.units -= self.per_ns;
            true
        } else {
            false
        }
    }

    /// Drop buckets of clients idle long enough to have refilled completely, returning how
    /// many were dropped. Behaviour is unchanged (a returning client starts full either
    /// way); this only returns memory, and costs O(dropped).
    pub fn forget_idle(&mut self, now: Instant) -> usize {
        self.buckets.expire(now, self.full_after).len()
    }

    /// Number of client IPs currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Maximum number of client IPs tracked before the least recently seen is evicted.
    pub fn max_clients(&self) -> usize {
        self.buckets.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn burst_then_deny() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(100, Duration::from_secs(1), 200, 16);
        for i in 0..200 {
            assert!(rl.allow(ip(1), t0), "token {i}");
        }
        assert!(!rl.allow(ip(1), t0));
        assert!(!rl.allow(ip(1), t0));
    }

    #[test]
    fn refill_after_exactly_one_interval() {
        let t0 = Instant::now();
        // 3 per second: one token every 333_333_333.33.. ns, which is not a whole number of
        // nanoseconds, so this also checks the exact arithmetic. Burst 2 so the cap never
        // discards a fraction of a token while we walk the boundaries.
        let mut rl = RateLimiter::new(3, Duration::from_secs(1), 2, 16);
        assert!(rl.allow(ip(1), t0));
        assert!(rl.allow(ip(1), t0));
        assert!(!rl.allow(ip(1), t0));
        assert!(!rl.allow(ip(1), t0 + Duration::from_nanos(333_333_333)));
        assert!(rl.allow(ip(1), t0 + Duration::from_nanos(333_333_334)));
        assert!(!rl.allow(ip(1), t0 + Duration::from_nanos(333_333_334)));
        // Three tokens in exactly one second, no more.
        assert!(!rl.allow(ip(1), t0 + Duration::from_nanos(666_666_666)));
        assert!(rl.allow(ip(1), t0 + Duration::from_nanos(666_666_667)));
        assert!(!rl.allow(ip(1), t0 + Duration::from_nanos(999_999_999)));
        assert!(rl.allow(ip(1), t0 + Duration::from_secs(1)));

        let mut rl = RateLimiter::new(100, Duration::from_secs(1), 200, 16);
        for _ in 0..200 {
            assert!(rl.allow(ip(1), t0));
        }
        let step = Duration::from_millis(10); // per / rate
        assert!(!rl.allow(ip(1), t0 + step - Duration::from_nanos(1)));
        assert!(rl.allow(ip(1), t0 + step));
        assert!(!rl.allow(ip(1), t0 + step));
    }

    #[test]
    fn steady_rate_over_ten_seconds() {
        let t0 = Instant::now();
        for &(rate, burst) in &[(100u32, 200u32), (7, 3), (1000, 1), (3, 50)] {
            let mut rl = RateLimiter::new(rate, Duration::from_secs(1), burst, 16);
            // Hammer far faster than the rate: every 100 us for 10 s.
            let mut admitted = 0u64;
            for tick in 0..=100_000u64 {
                if rl.allow(ip(1), t0 + Duration::from_micros(tick * 100)) {
                    admitted += 1;
                }
            }
            let expect = u64::from(rate) * 10 + u64::from(burst);
            assert!(
                admitted.abs_diff(expect) <= 1,
                "rate {rate} burst {burst}: admitted {admitted}, expected {expect}"
            );
        }
    }

    #[test]
    fn no_drift_over_long_run() {
        let t0 = Instant::now();
        // 7 per 3 s: period per token is 428_571_428.57.. ns. Burst 2 so polling lag never
        // overflows the bucket (with burst 1 the cap would rightly discard credit).
        let mut rl = RateLimiter::new(7, Duration::from_secs(3), 2, 4);
        let mut admitted = 0u64;
        // Poll every 100 ms for one simulated day; per-poll rounding would show up here.
        let day_ms = 86_400_000u64;
        for t in (0..=day_ms).step_by(100) {
            if rl.allow(ip(1), t0 + Duration::from_millis(t)) {
                admitted += 1;
            }
        }
        let expect = day_ms / 1000 * 7 / 3 + 2;
        assert!(admitted.abs_diff(expect) <= 1, "{admitted} vs {expect}");
    }

    #[test]
    fn independent_ips() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(1, Duration::from_secs(1), 2, 16);
        assert!(rl.allow(ip(1), t0));
        assert!(rl.allow(ip(1), t0));
        assert!(!rl.allow(ip(1), t0));
        assert!(rl.allow(ip(2), t0));
        assert!(rl.allow(ip(2), t0));
        assert!(!rl.allow(ip(2), t0));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(rl.allow(v6, t0));
        assert_eq!(rl.tracked(), 3);
    }

    #[test]
    fn eviction_bounds_memory_and_evicted_client_starts_full() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(1, Duration::from_secs(60), 3, 4);
        for _ in 0..3 {
            assert!(rl.allow(ip(0), t0));
        }
        assert!(!rl.allow(ip(0), t0));
        for n in 1..1000 {
            rl.allow(ip(n), t0);
            assert!(rl.tracked() <= 4);
        }
        assert_eq!(rl.tracked(), 4);
        assert_eq!(rl.max_clients(), 4);
        // ip(0) was evicted long ago, so it is back with a full bucket despite no refill.
        for _ in 0..3 {
            assert!(rl.allow(ip(0), t0));
        }
        assert!(!rl.allow(ip(0), t0));
    }

    #[test]
    fn recently_seen_client_survives_eviction() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(1, Duration::from_secs(60), 1, 2);
        assert!(rl.allow(ip(0), t0));
        assert!(rl.allow(ip(1), t0));
        assert!(!rl.allow(ip(0), t0)); // ip(0) is now most recent
        assert!(rl.allow(ip(2), t0)); // evicts ip(1)
        assert!(!rl.allow(ip(0), t0)); // still tracked, still empty
    }

    #[test]
    fn forget_idle_drops_only_refilled_clients() {
        let t0 = Instant::now();
        // Empty-to-full takes 4 tokens / 2 per s = 2 s.
        let mut rl = RateLimiter::new(2, Duration::from_secs(1), 4, 16);
        rl.allow(ip(1), t0);
        rl.allow(ip(2), t0 + Duration::from_secs(1));
        assert_eq!(rl.forget_idle(t0 + Duration::from_millis(1999)), 0);
        assert_eq!(rl.forget_idle(t0 + Duration::from_secs(2)), 1);
        assert_eq!(rl.tracked(), 1);
    }

    #[test]
    fn per_core_division() {
        let t0 = Instant::now();
        let per = Duration::from_secs(1);
        // 100/s, burst 200 over 4 workers: 25/s, burst 50 here.
        let mut rl = RateLimiter::per_core(100, per, 200, 4, 16);
        assert_eq!((0..1000).filter(|_| rl.allow(ip(1), t0)).count(), 50);
        let later = t0 + Duration::from_millis(40); // 1/25 s
        assert!(rl.allow(ip(1), later));
        assert!(!rl.allow(ip(1), later));
        // Floors at 1 token per period and a bucket of 1.
        let mut rl = RateLimiter::per_core(3, per, 2, 8, 16);
        assert!(rl.allow(ip(1), t0));
        assert!(!rl.allow(ip(1), t0));
        assert!(!rl.allow(ip(1), t0 + per - Duration::from_nanos(1)));
        assert!(rl.allow(ip(1), t0 + per));
        // Zero workers behaves as one.
        let mut rl = RateLimiter::per_core(5, per, 5, 0, 16);
        assert_eq!((0..10).filter(|_| rl.allow(ip(1), t0)).count(), 5);
    }

    #[test]
    fn out_of_order_now_credits_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut rl = RateLimiter::new(1, Duration::from_secs(1), 1, 4);
        assert!(rl.allow(ip(1), t0));
        assert!(!rl.allow(ip(1), t0 - Duration::from_secs(5)));
        assert!(rl.allow(ip(1), t0 + Duration::from_secs(1)));
    }
}

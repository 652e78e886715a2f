//! Tests on a simulated clock: one real `Instant` as the origin, then Durations added.

use super::*;
use std::time::{Duration, Instant};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// Defaults from the issue: rise 2, fall 3, 5 passive failures, 30 s, 10 s, 50 %.
fn settings() -> HealthSettings {
    HealthSettings::default()
}

fn primaries(n: usize) -> Vec<BackendSpec> {
    vec![
        BackendSpec {
            weight: 100,
            backup: false
        };
        n
    ]
}

fn pool(n: usize) -> (PoolHealth, Instant) {
    let t0 = Instant::now();
    (PoolHealth::new(settings(), &primaries(n), t0), t0)
}

/// Feed `n` passive failures; returns the transition of the last one.
fn fail_passive(p: &mut PoolHealth, backend: usize, n: u32, now: Instant) -> Option<Transition> {
    let mut last = None;
    for _ in 0..n {
        last = p.on_passive(backend, Passive::ConnectFailure, now);
    }
    last
}

fn fail_probes(p: &mut PoolHealth, backend: usize, n: u32, now: Instant) {
    for _ in 0..n {
        p.on_probe(backend, Probe::Failure, now);
    }
}

#[test]
fn defaults_match_the_issue() {
    let s = HealthSettings::default();
    assert_eq!((s.rise, s.fall, s.consecutive_failures), (2, 3, 5));
    assert_eq!((s.eject_for, s.slow_start), (secs(30), secs(10)));
    assert_eq!(s.min_usable_percent, 50);
}

#[test]
fn backends_start_up_at_full_weight() {
    let (p, t0) = pool(3);
    assert_eq!(p.len(), 3);
    for i in 0..3 {
        assert_eq!(p.state(i), State::Up);
    }
    let v = p.view(t0);
    assert_eq!(v.usable, vec![true; 3]);
    assert_eq!(v.weights, vec![100; 3], "no slow start at startup");
    assert!(!v.panic);
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn rise_and_fall_thresholds_are_exact() {
    // (rise, fall, probes as S/F, state after each probe as U/D)
    let cases: &[(u32, u32, &str, &str)] = &[
        (2, 3, "FF", "UU"),                 // fall - 1 failures keep it up
        (2, 3, "FFF", "UUD"),               // fall failures take it down
        (2, 3, "FFSFF", "UUUUU"),           // a success in between resets
        (2, 3, "FFSFFF", "UUUUUD"),         // ...and the count starts over
        (2, 3, "FFFS", "UUDD"),             // rise - 1 successes keep it down
        (2, 3, "FFFSS", "UUDDU"),           // rise successes bring it up
        (2, 3, "FFFSFSS", "UUDDDDU"),       // a failure in between resets
        (1, 1, "FSFS", "DUDU"),             // thresholds of 1 flip every time
        (0, 0, "FS", "DU"),                 // 0 acts as 1
        (3, 2, "FFSSFSSS", "UDDDDDDU"),     // asymmetric thresholds
        (2, 3, "SSSSFFSFFF", "UUUUUUUUUD"), // long success runs change nothing
    ];
    for &(rise, fall, probes, expected) in cases {
        let t0 = Instant::now();
        let s = HealthSettings {
            rise,
            fall,
            ..settings()
        };
        let mut p = PoolHealth::new(s, &primaries(1), t0);
        let mut previous = State::Up;
        for (step, (probe, want)) in probes.chars().zip(expected.chars()).enumerate() {
            let probe = if probe == 'S' {
                Probe::Success
            } else {
                Probe::Failure
            };
            let t = p.on_probe(0, probe, t0 + secs(step as u64));
            let want = if want == 'U' { State::Up } else { State::Down };
            let ctx = format!("rise {rise} fall {fall} {probes} step {step}");
            assert_eq!(p.state(0), want, "{ctx}");
            // A transition is reported exactly when the state changed.
            assert_eq!(t.is_some(), want != previous, "{ctx}");
            if let Some(t) = t {
                assert_eq!((t.backend, t.from, t.to), (0, previous, want), "{ctx}");
                let reason = if want == State::Up {
                    Transition::PROBE_PASSED
                } else {
                    Transition::PROBE_FAILED
                };
                assert_eq!(t.reason, reason, "{ctx}");
            }
            previous = want;
        }
    }
}

#[test]
fn passive_ejection_after_consecutive_failures() {
    let kinds = [
        Passive::ConnectFailure,
        Passive::Timeout,
        Passive::Upstream5xx,
        Passive::Reset,
    ];
    for kind in kinds {
        let (mut p, t0) = pool(4);
        for n in 1..5 {
            assert_eq!(p.on_passive(1, kind, t0), None, "{kind:?} failure {n}");
            assert_eq!(p.state(1), State::Up);
        }
        let t = p.on_passive(1, kind, t0).expect("5th failure ejects");
        assert_eq!((t.backend, t.from, t.to), (1, State::Up, State::Ejected));
        assert_eq!(t.reason, Transition::PASSIVE_FAILURES);
        assert!(!p.view(t0).usable[1]);
        assert_eq!(p.next_deadline(), Some(t0 + secs(30)));
    }
}

#[test]
fn passive_success_resets_the_streak() {
    let (mut p, t0) = pool(4);
    fail_passive(&mut p, 0, 4, t0);
    p.on_passive(0, Passive::Success, t0);
    assert_eq!(fail_passive(&mut p, 0, 4, t0), None);
    assert_eq!(p.state(0), State::Up, "4 + success + 4 is not 5 in a row");
    assert!(fail_passive(&mut p, 0, 1, t0).is_some());
    assert_eq!(p.state(0), State::Ejected);
}

#[test]
fn passive_off_and_failures_while_not_up_are_ignored() {
    let t0 = Instant::now();
    let off = HealthSettings {
        consecutive_failures: 0,
        ..settings()
    };
    let mut p = PoolHealth::new(off, &primaries(2), t0);
    assert_eq!(fail_passive(&mut p, 0, 100, t0), None);
    assert_eq!(p.state(0), State::Up);

    // A down backend's failures (panic-mode traffic) do not stack an ejection on top.
    let (mut p, t0) = pool(2);
    fail_probes(&mut p, 0, 3, t0);
    assert_eq!(fail_passive(&mut p, 0, 10, t0), None);
    p.on_probe(0, Probe::Success, t0);
    p.on_probe(0, Probe::Success, t0);
    assert_eq!(p.state(0), State::Up, "no hidden ejection");
}

#[test]
fn ejection_ends_after_eject_for() {
    let (mut p, t0) = pool(4);
    fail_passive(&mut p, 2, 5, t0);
    assert!(p.tick(t0 + secs(30) - Duration::from_nanos(1)).is_empty());
    assert_eq!(p.state(2), State::Ejected);
    let ts = p.tick(t0 + secs(30));
    assert_eq!(ts.len(), 1);
    assert_eq!(
        (ts[0].backend, ts[0].from, ts[0].to),
        (2, State::Ejected, State::Up)
    );
    assert_eq!(ts[0].reason, Transition::EJECTION_EXPIRED);
    assert_eq!(p.state(2), State::Up);
    assert!(p.view(t0 + secs(30)).usable[2]);
    assert!(p.tick(t0 + secs(31)).is_empty(), "reported once");
}

/// Eject backend 0 as soon as it is back, `n` times; returns each ejection's length.
fn back_to_back_ejections(
    p: &mut PoolHealth,
    start: Instant,
    n: usize,
) -> (Vec<Duration>, Instant) {
    let mut now = start;
    let mut lengths = Vec::new();
    for _ in 0..n {
        assert!(fail_passive(p, 0, 5, now).is_some());
        let until = p.next_deadline().expect("ejection deadline");
        lengths.push(until - now);
        assert!(p.tick(until - Duration::from_nanos(1)).is_empty());
        assert_eq!(p.tick(until).len(), 1);
        now = until;
    }
    (lengths, now)
}

#[test]
fn ejection_back_off_doubles_and_is_capped() {
    let (mut p, t0) = pool(4);
    let (lengths, _) = back_to_back_ejections(&mut p, t0, 7);
    let want: Vec<Duration> = [30, 60, 120, 240, 300, 300, 300].map(secs).to_vec();
    assert_eq!(lengths, want);
}

#[test]
fn ejection_back_off_decays_with_health() {
    // One ejection forgiven per 10 x eject_for (300 s) after returning.
    let cases: &[(u64, Duration)] = &[
        (0, secs(240)),   // straight away: 4th in a row
        (299, secs(240)), // just short of one period
        (300, secs(120)), // one forgiven
        (600, secs(60)),  // two forgiven
        (900, secs(30)),  // all three forgiven
        (9000, secs(30)), // never below the base
    ];
    for &(healthy_secs, want) in cases {
        let (mut p, t0) = pool(4);
        let (_, back) = back_to_back_ejections(&mut p, t0, 3); // 30 + 60 + 120
        let now = back + secs(healthy_secs);
        fail_passive(&mut p, 0, 5, now);
        assert_eq!(
            p.next_deadline(),
            Some(now + want),
            "healthy for {healthy_secs}s"
        );
    }
}

#[test]
fn slow_start_ramps_linearly_in_steps() {
    // (weight, seconds after coming back, expected effective weight)
    let cases: &[(u32, f64, u32)] = &[
        (100, 0.0, 10),
        (100, 0.49, 10),  // still the first of 20 steps
        (100, 0.5, 14),   // 10 + 90 * 1/20 = 14.5
        (100, 5.0, 55),   // halfway
        (100, 9.99, 95),  // last step
        (100, 10.0, 100), // done
        (100, 60.0, 100),
        (1000, 2.5, 325),
        (5, 0.0, 1), // 10 % of 5 rounds down to 0, but at least 1
        (1, 5.0, 1),
        (7, 10.0, 7),
    ];
    for &(weight, after, want) in cases {
        let t0 = Instant::now();
        let spec = [BackendSpec {
            weight,
            backup: false,
        }];
        let mut p = PoolHealth::new(settings(), &spec, t0);
        fail_probes(&mut p, 0, 3, t0);
        p.on_probe(0, Probe::Success, t0);
        let back = t0 + secs(1);
        assert!(p.on_probe(0, Probe::Success, back).is_some());
        let at = back + Duration::from_secs_f64(after);
        assert_eq!(p.view(at).weights[0], want, "weight {weight} at +{after}s");
    }
}

#[test]
fn slow_start_applies_after_ejection_and_is_monotonic() {
    let (mut p, t0) = pool(2);
    fail_passive(&mut p, 0, 5, t0);
    let back = t0 + secs(30);
    p.tick(back);
    let mut last = 0;
    for tenth in 0..=120 {
        let w = p.view(back + ms(tenth * 100)).weights[0];
        assert!(w >= last, "weight went down at {tenth}");
        last = w;
    }
    assert_eq!(p.view(back).weights[0], 10);
    assert_eq!(p.view(back + secs(5)).weights[0], 55);
    assert_eq!(last, 100);
    // The other backend never left and stays at full weight.
    assert_eq!(p.view(back).weights[1], 100);
}

#[test]
fn slow_start_zero_is_off() {
    let t0 = Instant::now();
    let s = HealthSettings {
        slow_start: Duration::ZERO,
        ..settings()
    };
    let mut p = PoolHealth::new(s, &primaries(2), t0);
    fail_passive(&mut p, 0, 5, t0);
    p.tick(t0 + secs(30));
    assert_eq!(p.view(t0 + secs(30)).weights[0], 100);
    assert_eq!(p.next_deadline(), None);
}

fn spec(weight: u32, backup: bool) -> BackendSpec {
    BackendSpec { weight, backup }
}

#[test]
fn backups_only_when_no_primary_is_usable() {
    let t0 = Instant::now();
    let specs = [spec(10, false), spec(10, false), spec(10, true)];
    let mut p = PoolHealth::new(settings(), &specs, t0);
    let v = p.view(t0);
    assert_eq!(v.usable, vec![true, true, false]);
    assert_eq!(v.weights, vec![10, 10, 0]);

    fail_probes(&mut p, 0, 3, t0);
    // One primary of two is 50 %: not below the threshold, the backup stays idle.
    let v = p.view(t0);
    assert_eq!(v.usable, vec![false, true, false]);
    assert!(!v.panic);

    fail_probes(&mut p, 1, 3, t0);
    let v = p.view(t0);
    assert_eq!(v.usable, vec![false, false, true], "backup takes over");
    assert!(!v.panic, "a healthy backup is not a panic");

    // A primary comes back: the backup is idle again.
    p.on_probe(1, Probe::Success, t0);
    p.on_probe(1, Probe::Success, t0);
    assert_eq!(p.view(t0).usable, vec![false, true, false]);
}

#[test]
fn backups_do_not_skew_the_panic_share() {
    let t0 = Instant::now();
    // 2 primaries (one down) + 4 backups. Counting idle backups as unusable would give
    // 1/6 < 50 % and panic; counting them as usable would hide a real panic below.
    let mut specs = vec![spec(1, false); 2];
    specs.extend(vec![spec(1, true); 4]);
    let mut p = PoolHealth::new(settings(), &specs, t0);
    fail_probes(&mut p, 0, 3, t0);
    let v = p.view(t0);
    assert!(!v.panic);
    assert_eq!(v.usable, vec![false, true, false, false, false, false]);

    // 4 primaries, 3 down, plus healthy backups: the primaries are still the tier
    // (one is usable), and 1/4 < 50 % panics among them, backups stay out.
    let mut specs = vec![spec(1, false); 4];
    specs.extend(vec![spec(1, true); 4]);
    let mut p = PoolHealth::new(settings(), &specs, t0);
    for i in 0..3 {
        fail_probes(&mut p, i, 3, t0);
    }
    let v = p.view(t0);
    assert!(v.panic);
    assert_eq!(v.usable[..4], [true; 4]);
    assert_eq!(v.usable[4..], [false; 4]);
}

#[test]
fn backup_tier_can_panic_on_its_own() {
    let t0 = Instant::now();
    let specs = [spec(1, false), spec(1, true), spec(1, true), spec(1, true)];
    let mut p = PoolHealth::new(settings(), &specs, t0);
    fail_probes(&mut p, 0, 3, t0);
    fail_probes(&mut p, 1, 3, t0);
    fail_probes(&mut p, 2, 3, t0);
    // Backups: 1 of 3 healthy < 50 %.
    let v = p.view(t0);
    assert!(v.panic);
    assert_eq!(v.usable, vec![false, true, true, true]);
    // Nothing healthy anywhere: the primaries are used.
    fail_probes(&mut p, 3, 3, t0);
    let v = p.view(t0);
    assert!(v.panic);
    assert_eq!(v.usable, vec![true, false, false, false]);
}

#[test]
fn panic_mode_threshold() {
    // (pool size, backends down, min_usable_percent, expect panic)
    let cases: &[(usize, usize, u8, bool)] = &[
        (4, 0, 50, false),
        (4, 1, 50, false),
        (4, 2, 50, false), // exactly 50 % is enough
        (4, 3, 50, true),  // 3 of 4 down: panic
        (4, 4, 50, true),
        (4, 1, 80, true), // 75 % < 80 %
        (4, 1, 75, false),
        (4, 1, 100, true),
        (4, 1, 255, true), // above 100 acts as 100
        (4, 3, 0, false),  // 0 turns panic off
        (4, 4, 0, false),
        (1, 1, 50, true),
        (3, 2, 34, true), // 33.3 % < 34 %
        (3, 2, 33, false),
    ];
    for &(n, down, percent, want_panic) in cases {
        let t0 = Instant::now();
        let s = HealthSettings {
            min_usable_percent: percent,
            ..settings()
        };
        let mut p = PoolHealth::new(s, &primaries(n), t0);
        for i in 0..down {
            fail_probes(&mut p, i, 3, t0);
        }
        let v = p.view(t0);
        let ctx = format!("{down} of {n} down at {percent}%");
        assert_eq!(v.panic, want_panic, "{ctx}");
        for i in 0..n {
            let want_usable = want_panic || i >= down;
            assert_eq!(v.usable[i], want_usable, "{ctx}: backend {i}");
            assert_eq!(
                v.weights[i],
                if want_usable { 100 } else { 0 },
                "{ctx}: backend {i}"
            );
        }
    }
}

#[test]
fn panic_mode_uses_full_weights_even_while_ramping() {
    let (mut p, t0) = pool(4);
    fail_passive(&mut p, 0, 5, t0);
    let back = t0 + secs(30);
    p.tick(back);
    assert_eq!(p.view(back).weights, vec![10, 100, 100, 100]);
    fail_probes(&mut p, 1, 3, back);
    fail_probes(&mut p, 2, 3, back);
    fail_probes(&mut p, 3, 3, back);
    // 1 of 4 healthy: everyone shares the load by configured weight, including the
    // one healthy backend that would otherwise still be at 10 %.
    let v = p.view(back);
    assert!(v.panic);
    assert_eq!(v.weights, vec![100; 4]);
}

#[test]
fn panic_counts_ejected_backends_too() {
    let (mut p, t0) = pool(4);
    fail_passive(&mut p, 0, 5, t0);
    fail_passive(&mut p, 1, 5, t0);
    assert!(!p.view(t0).panic);
    fail_probes(&mut p, 2, 3, t0);
    let v = p.view(t0);
    assert!(v.panic);
    assert_eq!(v.usable, vec![true; 4]);
}

#[test]
fn drain_and_enable() {
    let (mut p, t0) = pool(3);
    let t = p.drain(1).expect("transition");
    assert_eq!(
        (t.from, t.to, t.reason),
        (State::Up, State::Draining, Transition::DRAINED)
    );
    assert_eq!(p.drain(1), None, "already draining");
    assert_eq!(p.state(1), State::Draining);
    let v = p.view(t0);
    assert_eq!(v.usable, vec![true, false, true]);
    assert_eq!(v.weights[1], 0);

    // Probes still count while draining; enabling reveals their verdict.
    fail_probes(&mut p, 1, 3, t0);
    assert_eq!(p.state(1), State::Draining);
    let t = p.enable(1, t0 + secs(1)).expect("transition");
    assert_eq!(
        (t.from, t.to, t.reason),
        (State::Draining, State::Down, Transition::ENABLED)
    );

    // A healthy drained backend comes back Up, through slow start.
    p.drain(0);
    let back = t0 + secs(2);
    let t = p.enable(0, back).expect("transition");
    assert_eq!((t.from, t.to), (State::Draining, State::Up));
    assert_eq!(p.view(back).weights[0], 10);
    assert_eq!(p.enable(0, back), None, "already enabled");
}

#[test]
fn drained_backends_are_never_used_even_in_panic() {
    let (mut p, t0) = pool(4);
    p.drain(0);
    p.drain(1);
    // 2 of 2 remaining members healthy: drained ones do not count, no panic.
    assert!(!p.view(t0).panic);
    fail_probes(&mut p, 2, 3, t0);
    fail_probes(&mut p, 3, 3, t0);
    let v = p.view(t0);
    assert!(v.panic);
    assert_eq!(v.usable, vec![false, false, true, true]);
    // Everything drained: nothing usable, and that is no panic either.
    p.drain(2);
    p.drain(3);
    let v = p.view(t0);
    assert_eq!(v.usable, vec![false; 4]);
    assert!(!v.panic);
}

#[test]
fn enable_clears_an_ejection() {
    let (mut p, t0) = pool(2);
    fail_passive(&mut p, 0, 5, t0);
    let t = p.enable(0, t0 + secs(1)).expect("transition");
    assert_eq!((t.from, t.to), (State::Ejected, State::Up));
    assert!(p.tick(t0 + secs(30)).is_empty(), "old expiry is gone");
}

#[test]
fn state_precedence_combines_causes() {
    let (mut p, t0) = pool(2);
    fail_passive(&mut p, 0, 5, t0);
    fail_probes(&mut p, 0, 2, t0);
    let t = p
        .on_probe(0, Probe::Failure, t0)
        .expect("down beats ejected");
    assert_eq!((t.from, t.to), (State::Ejected, State::Down));
    // The ejection expires while down: nothing visible changes.
    assert!(p.tick(t0 + secs(30)).is_empty());
    assert_eq!(p.state(0), State::Down);
    // And it is really gone: rise brings it straight Up.
    p.on_probe(0, Probe::Success, t0 + secs(31));
    let t = p.on_probe(0, Probe::Success, t0 + secs(32)).expect("up");
    assert_eq!((t.from, t.to), (State::Down, State::Up));

    // Probes rising while still ejected show Ejected, then Up at expiry.
    let (mut p, t0) = pool(2);
    fail_probes(&mut p, 0, 3, t0);
    p.on_probe(0, Probe::Success, t0);
    p.on_probe(0, Probe::Success, t0);
    fail_passive(&mut p, 0, 5, t0);
    fail_probes(&mut p, 0, 3, t0);
    p.on_probe(0, Probe::Success, t0);
    let t = p.on_probe(0, Probe::Success, t0).expect("rise");
    assert_eq!((t.from, t.to), (State::Down, State::Ejected));
}

#[test]
fn jitter_spreads_offsets_within_the_interval() {
    let interval = secs(1);
    for seed in [0, 1, 42, u64::MAX] {
        for n in 2..=64usize {
            let mut offsets: Vec<u128> = (0..n)
                .map(|i| probe_offset(interval, i, seed).as_nanos())
                .collect();
            assert!(offsets.iter().all(|&o| o < interval.as_nanos()));
            offsets.sort_unstable();
            // Smallest gap on the circle: golden-ratio phases stay within a small
            // factor of the ideal 1/n, where random ones would often collide.
            let mut min_gap = interval.as_nanos() - offsets[n - 1] + offsets[0];
            for w in offsets.windows(2) {
                min_gap = min_gap.min(w[1] - w[0]);
            }
            let ideal = interval.as_nanos() / n as u128;
            assert!(
                min_gap * 3 > ideal,
                "seed {seed} n {n}: gap {min_gap} vs {ideal}"
            );
        }
    }
}

#[test]
fn jitter_is_deterministic_per_seed() {
    let interval = ms(1500);
    let a: Vec<_> = (0..16).map(|i| probe_offset(interval, i, 7)).collect();
    let b: Vec<_> = (0..16).map(|i| probe_offset(interval, i, 7)).collect();
    let c: Vec<_> = (0..16).map(|i| probe_offset(interval, i, 8)).collect();
    assert_eq!(a, b);
    assert_ne!(a, c, "another seed gives another schedule");
    assert_eq!(probe_offset(Duration::ZERO, 3, 7), Duration::ZERO);
    assert!(probe_offset(Duration::MAX, 3, 7) < Duration::MAX);
}

#[test]
fn probe_scheduler_follows_a_fixed_grid() {
    let t0 = Instant::now();
    let s = ProbeScheduler::new(t0, secs(1), 99);
    for backend in 0..8 {
        let off = s.offset(backend);
        assert!(off < secs(1));
        assert_eq!(
            s.next_probe_at(backend, t0),
            t0 + off
                + if off.is_zero() {
                    secs(1)
                } else {
                    Duration::ZERO
                }
        );
        let first = t0 + off;
        // Strictly after now: asking at probe time yields the next one.
        assert_eq!(s.next_probe_at(backend, first), first + secs(1));
        assert_eq!(s.next_probe_at(backend, first + ms(1)), first + secs(1));
        // Falling behind skips missed probes instead of bursting.
        assert_eq!(s.next_probe_at(backend, first + ms(5500)), first + secs(6));
    }
    let times: Vec<_> = (0..8).map(|b| s.next_probe_at(b, t0 + secs(10))).collect();
    let mut distinct = times.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 8, "no two backends probed in lockstep");
    assert!(times
        .iter()
        .all(|&t| t > t0 + secs(10) && t <= t0 + secs(11)));
    assert_eq!(
        ProbeScheduler::new(t0, Duration::ZERO, 1).interval(),
        MIN_PROBE_INTERVAL
    );
}

#[test]
fn next_deadline_tracks_ejections_and_ramp_steps() {
    let (mut p, t0) = pool(3);
    assert_eq!(p.next_deadline(), None);
    fail_passive(&mut p, 0, 5, t0);
    assert_eq!(p.next_deadline(), Some(t0 + secs(30)));
    let t1 = t0 + secs(20);
    fail_passive(&mut p, 1, 5, t1);
    assert_eq!(p.next_deadline(), Some(t0 + secs(30)), "earliest first");

    // Backend 0 returns; now the ramp's first step (10 s / 20 = 500 ms) comes first.
    let back = t0 + secs(30);
    p.tick(back);
    assert_eq!(p.next_deadline(), Some(back + ms(500)));
    p.tick(back + ms(500));
    assert_eq!(p.next_deadline(), Some(back + ms(1000)));
    p.tick(back + ms(9700));
    assert_eq!(p.next_deadline(), Some(back + secs(10)), "the ramp's end");
    p.tick(back + secs(10));
    // Ramp done; only backend 1's ejection is left.
    assert_eq!(p.next_deadline(), Some(t1 + secs(30)));
    p.tick(t1 + secs(30));
    // A finished ramp has no deadline even before a tick forgets it.
    p.on_probe(2, Probe::Success, t1 + secs(45));
    assert_eq!(p.next_deadline(), None, "both ramps done");
    p.tick(t1 + secs(45));
    assert_eq!(p.next_deadline(), None);

    // An expired but un-ticked ejection is reported (in the past): tick now.
    fail_passive(&mut p, 2, 5, t1 + secs(40));
    p.on_probe(0, Probe::Success, t1 + secs(100));
    assert_eq!(p.next_deadline(), Some(t1 + secs(70)));
}

#[test]
fn view_changes_only_at_reported_deadlines() {
    // Walk a busy scenario in 10 ms steps; between deadlines the view must not move.
    let (mut p, t0) = pool(4);
    fail_passive(&mut p, 0, 5, t0);
    fail_passive(&mut p, 1, 5, t0 + secs(3));
    let mut now = t0;
    let mut view = p.view(now);
    let mut deadline = p.next_deadline();
    let mut changes = 0;
    while now < t0 + secs(60) {
        now += ms(10);
        p.tick(now);
        let v = p.view(now);
        if v != view {
            changes += 1;
            assert!(
                deadline.is_some_and(|d| d <= now),
                "unannounced change at {:?}",
                now - t0
            );
            view = v;
        }
        deadline = p.next_deadline();
    }
    // 2 returns + 20 steps for each ramp, give or take merged ones.
    assert!(changes >= 20, "only {changes} changes");
}

#[test]
fn reconfigure_keeps_surviving_state() {
    let t0 = Instant::now();
    let old_specs = primaries(4);
    let mut p = PoolHealth::new(settings(), &old_specs, t0);
    fail_probes(&mut p, 0, 3, t0); // Down
    fail_passive(&mut p, 1, 5, t0); // Ejected until t0 + 30 s
    p.drain(2); // Draining
    fail_probes(&mut p, 3, 2, t0); // Up, two failures into its fall streak

    // New pool: [old 3, new, old 1, old 0, old 2 with new weight]; `keep` maps new -> old.
    let new_specs = [
        spec(100, false),
        spec(50, false),
        spec(100, false),
        spec(100, true),
        spec(7, false),
    ];
    let map = [Some(3), None, Some(1), Some(0), Some(2)];
    let now = t0 + secs(5);
    let new_settings = HealthSettings {
        fall: 4,
        ..settings()
    };
    p.reconfigure(
        new_settings,
        &new_specs,
        |i| map.get(i).copied().flatten(),
        now,
    );

    assert_eq!(p.len(), 5);
    assert_eq!(p.settings(), new_settings);
    let states: Vec<_> = (0..5).map(|i| p.state(i)).collect();
    assert_eq!(
        states,
        [
            State::Up,
            State::Up,
            State::Ejected,
            State::Down,
            State::Draining
        ]
    );
    // The ejection kept its expiry; the new backend ramps from the reload.
    assert_eq!(p.next_deadline(), Some(now + ms(500)));
    assert_eq!(p.view(now).weights[1], 5);
    assert_eq!(p.view(now + secs(5)).weights[1], 27);
    assert_eq!(p.view(now + secs(10)).weights[1], 50);
    let ts = p.tick(t0 + secs(30));
    assert_eq!(ts.len(), 1);
    assert_eq!((ts[0].backend, ts[0].to), (2, State::Up));
    // The failure streak survived: two more failures reach the new fall of 4.
    assert_eq!(p.on_probe(0, Probe::Failure, now), None);
    assert!(p.on_probe(0, Probe::Failure, now).is_some());
    // Old backend 2's new weight shows once enabled (with slow start).
    p.enable(4, now);
    assert_eq!(p.view(now + secs(10)).weights[4], 7);
}

#[test]
fn reconfigure_treats_bad_old_indices_as_new() {
    let (mut p, t0) = pool(2);
    fail_probes(&mut p, 0, 3, t0);
    p.reconfigure(settings(), &primaries(2), |i| Some(i + 5), t0);
    assert_eq!(p.state(0), State::Up);
    assert_eq!(p.view(t0).weights, vec![10, 10]);
}

#[test]
fn out_of_range_indices_are_ignored() {
    let (mut p, t0) = pool(2);
    assert_eq!(p.on_probe(2, Probe::Failure, t0), None);
    assert_eq!(p.on_passive(usize::MAX, Passive::Reset, t0), None);
    assert_eq!(p.drain(9), None);
    assert_eq!(p.enable(9, t0), None);
    assert_eq!(p.state(9), State::Down);
    assert_eq!(p.view(t0).usable, vec![true, true]);

    let empty = PoolHealth::new(settings(), &[], t0);
    assert!(empty.is_empty());
    assert_eq!(empty.view(t0), PoolView::default());
}

#[test]
fn extreme_durations_do_not_panic() {
    let t0 = Instant::now();
    for d in [Duration::ZERO, Duration::from_nanos(1), Duration::MAX] {
        let s = HealthSettings {
            eject_for: d,
            slow_start: d,
            ..settings()
        };
        let mut p = PoolHealth::new(s, &primaries(2), t0);
        for round in 0..40u64 {
            let now = t0 + secs(round);
            fail_passive(&mut p, 0, 5, now);
            p.tick(now);
            let _ = p.view(now);
            let _ = p.next_deadline();
        }
        let w = p.view(t0 + secs(40)).weights[0];
        assert!(w <= 100);
    }
    let zero_weight = [spec(0, false), spec(3, false)];
    let mut p = PoolHealth::new(settings(), &zero_weight, t0);
    let v = p.view(t0);
    assert_eq!(v.usable, vec![false, true], "weight 0 is never usable");
    assert!(!v.panic, "and not counted as unhealthy");
    fail_probes(&mut p, 1, 3, t0);
    assert_eq!(p.view(t0).weights, vec![0, 3]);
}

/// Random operations (fixed seed) checking invariants no single scenario covers.
#[test]
fn random_operations_keep_invariants() {
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let t0 = Instant::now();
    let specs = [
        spec(5, false),
        spec(1, false),
        spec(100, false),
        spec(3, true),
        spec(0, true),
    ];
    let mut p = PoolHealth::new(settings(), &specs, t0);
    let mut now = t0;
    // Latest time given to a method that takes one (drain does not).
    let mut observed = t0;
    for _ in 0..20_000 {
        now += ms(next() % 2_000);
        let b = (next() % 7) as usize; // includes out-of-range indices
        let before = p.state(b);
        let op = next() % 8;
        let draining = op == 6 && next() % 4 == 0;
        if !draining {
            observed = now;
        }
        let t = match op {
            0 | 1 => p.on_probe(b, Probe::Failure, now),
            2 | 3 => p.on_probe(b, Probe::Success, now),
            4 => p.on_passive(b, Passive::Timeout, now),
            5 => p.on_passive(b, Passive::Success, now),
            6 if draining => p.drain(b),
            6 => p.enable(b, now),
            _ => {
                for t in p.tick(now) {
                    assert_ne!(t.from, t.to);
                }
                None
            }
        };
        if let Some(t) = t {
            assert_eq!((t.backend, t.from, t.to), (b, before, p.state(b)));
            assert_ne!(t.from, t.to);
        }
        let v = p.view(now);
        assert_eq!(v.usable.len(), specs.len());
        for (i, s) in specs.iter().enumerate() {
            let w = v.weights[i];
            assert_eq!(v.usable[i], w > 0, "usable iff weighted");
            assert!(w <= s.weight);
            if p.state(i) == State::Draining {
                assert!(!v.usable[i]);
            }
            if !v.panic && v.usable[i] {
                assert_eq!(p.state(i), State::Up);
            }
        }
        let primary_usable = (0..3).any(|i| v.usable[i]);
        let backup_usable = (3..5).any(|i| v.usable[i]);
        assert!(!(primary_usable && backup_usable), "tiers never mix");
        if let Some(d) = p.next_deadline() {
            // Pending deadlines are either in the future or overdue ejections.
            assert!(d > observed || (0..5).any(|i| p.state(i) != State::Up));
        }
    }
}

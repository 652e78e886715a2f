use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::maglev::is_prime;
use super::{hash_ip, Algorithm, BackendView, Balancer, DEFAULT_MAGLEV_SIZE};

/// A plain backend view: health/"tried" as a bool per backend, and loads.
struct TestView {
    usable: Vec<bool>,
    load: Vec<u32>,
}

impl TestView {
    /// `n` usable, idle backends.
    fn all(n: usize) -> TestView {
        TestView {
            usable: vec![true; n],
            load: vec![0; n],
        }
    }

    /// Usable per `usable`, all idle.
    fn with_usable(usable: &[bool]) -> TestView {
        TestView {
            usable: usable.to_vec(),
            load: vec![0; usable.len()],
        }
    }

    /// All usable, with these loads.
    fn with_load(load: &[u32]) -> TestView {
        TestView {
            usable: vec![true; load.len()],
            load: load.to_vec(),
        }
    }
}

impl BackendView for TestView {
    fn len(&self) -> usize {
        self.usable.len()
    }

    fn usable(&self, i: usize) -> bool {
        self.usable[i]
    }

    fn load(&self, i: usize) -> u32 {
        self.load[i]
    }
}

/// The key of the `i`-th test client, as the worker would compute it.
fn client(i: u32) -> u64 {
    hash_ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
}

/// How many of `picks` picks went to each backend.
fn counts(balancer: &mut Balancer, view: &TestView, picks: u32) -> Vec<u32> {
    let mut counts = vec![0; view.len()];
    for i in 0..picks {
        counts[balancer.pick(client(i), view).unwrap()] += 1;
    }
    counts
}

/// Assert each backend's share of `counts` is its share of `weights` within `tolerance`
/// (absolute, as a fraction of all picks).
fn assert_proportional(label: &str, counts: &[u32], weights: &[u32], tolerance: f64) {
    let picks: u32 = counts.iter().sum();
    let total: u32 = weights.iter().sum();
    for (i, (&count, &weight)) in counts.iter().zip(weights).enumerate() {
        let got = f64::from(count) / f64::from(picks);
        let want = f64::from(weight) / f64::from(total);
        assert!(
            (got - want).abs() <= tolerance,
            "{label}: backend {i} got {got:.4} of picks, want {want:.4} ± {tolerance} ({counts:?})"
        );
    }
}

#[test]
fn algorithm_all_lists_each_variant_once() {
    for (i, a) in Algorithm::ALL.iter().enumerate() {
        assert!(!Algorithm::ALL[..i].contains(a), "{a:?} listed twice");
        assert_eq!(Balancer::new(*a, &[1], 0).algorithm(), *a);
    }
}

#[test]
fn hash_ip_is_stable_and_ignores_ipv4_mapping() {
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    // Golden values: a change here would move every SourceHash/Maglev client of every
    // deployed proxy on upgrade, so it must be deliberate.
    assert_eq!(hash_ip(v4), 0x739a_5758_cdd3_6ae1);
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    assert_eq!(hash_ip(v6), 0xe669_f80a_5808_2337);
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    assert_eq!(hash_ip(mapped), hash_ip(v4));
    assert_ne!(
        hash_ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8))),
        hash_ip(v4)
    );
    // IPv4-compatible (not mapped) addresses are distinct IPv6 addresses.
    let compatible = IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0xc000, 0x0207));
    assert_ne!(hash_ip(compatible), hash_ip(v4));
}

#[test]
fn round_robin_5_1_1_is_smooth() {
    let mut rr = Balancer::new(Algorithm::RoundRobin, &[5, 1, 1], 0);
    let view = TestView::all(3);
    let sequence: Vec<usize> = (0..7).map(|_| rr.pick(0, &view).unwrap()).collect();
    assert_eq!(sequence, [0, 0, 1, 0, 2, 0, 0]);
    // Every window of 7 consecutive picks is exactly 5/1/1, and so are 700 picks.
    let mut window = sequence;
    for _ in 0..700 {
        window.remove(0);
        window.push(rr.pick(0, &view).unwrap());
        let c = |b| window.iter().filter(|&&x| x == b).count();
        assert_eq!([c(0), c(1), c(2)], [5, 1, 1]);
    }
    let mut rr = Balancer::new(Algorithm::RoundRobin, &[5, 1, 1], 0);
    assert_eq!(counts(&mut rr, &view, 700), [500, 100, 100]);
}

#[test]
fn round_robin_counts_table() {
    /// (weights, usable, picks, expected counts)
    type Case<'a> = (&'a [u32], &'a [bool], u32, &'a [u32]);
    let cases: &[Case] = &[
        (&[1, 1, 1], &[true, true, true], 3, &[1, 1, 1]),
        (&[1, 1, 1], &[true, true, true], 300, &[100, 100, 100]),
        (&[5, 1, 1], &[true, false, true], 6, &[5, 0, 1]),
        (&[5, 1, 1], &[false, true, true], 10, &[0, 5, 5]),
        (&[3, 2], &[true, true], 500, &[300, 200]),
        (
            &[1, 2, 3, 4],
            &[true, true, false, true],
            700,
            &[100, 200, 0, 400],
        ),
        (&[7], &[true], 5, &[5]),
        (&[u32::MAX, 1], &[true, true], 10, &[10, 0]),
    ];
    for &(weights, usable, picks, expected) in cases {
        let mut rr = Balancer::new(Algorithm::RoundRobin, weights, 0);
        let got = counts(&mut rr, &TestView::with_usable(usable), picks);
        assert_eq!(got, expected, "weights {weights:?} usable {usable:?}");
    }
}

#[test]
fn round_robin_resumes_after_a_backend_returns() {
    let mut rr = Balancer::new(Algorithm::RoundRobin, &[1, 1, 1], 0);
    let up = TestView::all(3);
    let one_down = TestView::with_usable(&[true, false, true]);
    for _ in 0..5 {
        rr.pick(0, &one_down).unwrap();
    }
    // Back to all usable: the next 300 picks are exactly even again.
    assert_eq!(counts(&mut rr, &up, 300), [100, 100, 100]);
}

#[test]
fn every_algorithm_picks_only_usable_backends() {
    let weights = [1, 2, 3, 1];
    let loads = [4, 0, 7, 1];
    for algorithm in Algorithm::ALL {
        let mut balancer = Balancer::with_maglev_size(algorithm, &weights, 7, 1009);
        for mask in 0u32..16 {
            let view = TestView {
                usable: (0..4).map(|i| mask & (1 << i) != 0).collect(),
                load: loads.to_vec(),
            };
            for i in 0..200 {
                match balancer.pick(client(i), &view) {
                    Some(b) => assert!(view.usable[b], "{algorithm:?} mask {mask:04b} gave {b}"),
                    None => assert_eq!(mask, 0, "{algorithm:?} mask {mask:04b} gave None"),
                }
            }
        }
    }
}

#[test]
fn every_algorithm_returns_none_when_nothing_is_usable() {
    for algorithm in Algorithm::ALL {
        let mut balancer = Balancer::with_maglev_size(algorithm, &[1, 2, 3], 1, 101);
        let view = TestView::with_usable(&[false; 3]);
        for i in 0..50 {
            assert_eq!(balancer.pick(client(i), &view), None, "{algorithm:?}");
        }
        // An empty pool, and a view with no backends, are the same.
        let mut empty = Balancer::new(algorithm, &[], 1);
        assert_eq!(empty.pick(1, &TestView::all(0)), None, "{algorithm:?}");
        assert_eq!(balancer.pick(1, &TestView::all(0)), None, "{algorithm:?}");
    }
}

#[test]
fn every_algorithm_returns_the_single_usable_backend() {
    for algorithm in Algorithm::ALL {
        for only in 0..5 {
            let mut balancer = Balancer::with_maglev_size(algorithm, &[3, 1, 4, 1, 5], 2, 211);
            let mut usable = [false; 5];
            usable[only] = true;
            let view = TestView {
                usable: usable.to_vec(),
                load: vec![100; 5],
            };
            for i in 0..50 {
                assert_eq!(balancer.pick(client(i), &view), Some(only), "{algorithm:?}");
            }
        }
        let mut single = Balancer::new(algorithm, &[9], 2);
        assert_eq!(single.pick(42, &TestView::all(1)), Some(0), "{algorithm:?}");
    }
}

#[test]
fn retry_loop_tries_each_backend_exactly_once() {
    // The worker's fallback: mark each pick as tried and ask again until None.
    for algorithm in Algorithm::ALL {
        let mut balancer = Balancer::with_maglev_size(algorithm, &[2, 1, 1, 3, 1], 3, 503);
        for key in 0..20 {
            let mut view = TestView::with_load(&[1, 0, 2, 5, 0]);
            let mut order = Vec::new();
            while let Some(b) = balancer.pick(client(key), &view) {
                assert!(view.usable[b], "{algorithm:?} repeated {b}");
                view.usable[b] = false;
                order.push(b);
            }
            order.sort_unstable();
            assert_eq!(order, [0, 1, 2, 3, 4], "{algorithm:?}");
        }
    }
}

#[test]
fn zero_weight_is_treated_as_one() {
    let mut rr = Balancer::new(Algorithm::RoundRobin, &[0, 1], 0);
    assert_eq!(counts(&mut rr, &TestView::all(2), 10), [5, 5]);
}

#[test]
fn view_length_mismatch_is_harmless() {
    // A view shorter than the pool: indices past its end are never offered to it.
    for algorithm in Algorithm::ALL {
        let mut balancer = Balancer::with_maglev_size(algorithm, &[1; 6], 4, 101);
        let view = TestView::all(3);
        for i in 0..100 {
            assert!(
                balancer.pick(client(i), &view).unwrap() < 3,
                "{algorithm:?}"
            );
        }
        // And a longer one: only the pool's backends are picked.
        let mut balancer = Balancer::with_maglev_size(algorithm, &[1; 2], 4, 101);
        let view = TestView::all(5);
        for i in 0..100 {
            assert!(
                balancer.pick(client(i), &view).unwrap() < 2,
                "{algorithm:?}"
            );
        }
    }
}

#[test]
fn least_connections_picks_lowest_weighted_load() {
    /// (weights, loads, usable, expected)
    type Case<'a> = (&'a [u32], &'a [u32], &'a [bool], usize);
    let cases: &[Case] = &[
        (&[1, 1, 1], &[3, 1, 2], &[true; 3], 1),
        (&[1, 1, 1], &[3, 1, 2], &[true, false, true], 2),
        // 3/4 < 1/1.
        (&[4, 1], &[3, 1], &[true; 2], 0),
        // 5/4 > 1/1.
        (&[4, 1], &[5, 1], &[true; 2], 1),
        // 4/4 == 1/1: the heavier backend has more headroom.
        (&[4, 1], &[4, 1], &[true; 2], 0),
        (&[1, 4], &[1, 4], &[true; 2], 1),
        // Large values must not overflow or lose precision.
        (&[u32::MAX, 1], &[u32::MAX, 2], &[true; 2], 0),
        (&[1, u32::MAX], &[1, u32::MAX - 1], &[true; 2], 1),
    ];
    for &(weights, loads, usable, expected) in cases {
        let mut lc = Balancer::new(Algorithm::LeastConnections, weights, 0);
        let view = TestView {
            usable: usable.to_vec(),
            load: loads.to_vec(),
        };
        assert_eq!(
            lc.pick(0, &view),
            Some(expected),
            "weights {weights:?} loads {loads:?} usable {usable:?}"
        );
    }
}

#[test]
fn least_connections_spreads_ties() {
    let mut lc = Balancer::new(Algorithm::LeastConnections, &[1, 1, 1, 1], 0);
    // Idle, equal backends take turns rather than all going to backend 0.
    let idle = TestView::all(4);
    let sequence: Vec<usize> = (0..8).map(|_| lc.pick(0, &idle).unwrap()).collect();
    assert_eq!(sequence, [0, 1, 2, 3, 0, 1, 2, 3]);
    // Same with a gap: no backend gets a double share because its neighbour is down.
    let gap = TestView::with_usable(&[true, false, true, true]);
    assert_eq!(counts(&mut lc, &gap, 300), [100, 0, 100, 100]);
    // Feeding the picks back as load (as the worker does) also stays even.
    let mut view = TestView::all(4);
    for _ in 0..40 {
        let b = lc.pick(0, &view).unwrap();
        view.load[b] += 1;
    }
    assert_eq!(view.load, [10, 10, 10, 10]);
    // With weights 3:1, loads settle at 3:1.
    let mut lc = Balancer::new(Algorithm::LeastConnections, &[3, 1], 0);
    let mut view = TestView::all(2);
    for _ in 0..40 {
        let b = lc.pick(0, &view).unwrap();
        view.load[b] += 1;
    }
    assert_eq!(view.load, [30, 10]);
}

#[test]
fn source_hash_is_stable_across_instances_and_calls() {
    for weights in [&[1u32, 1, 1, 1, 1][..], &[1, 2, 3, 4, 5][..]] {
        let mut a = Balancer::new(Algorithm::SourceHash, weights, 1);
        let mut b = Balancer::new(Algorithm::SourceHash, weights, 99);
        let view = TestView::with_load(&[0, 5, 1, 9, 2]);
        for i in 0..2000 {
            let first = a.pick(client(i), &view);
            assert_eq!(first, b.pick(client(i), &view));
            assert_eq!(first, a.pick(client(i), &view));
        }
    }
}

#[test]
fn source_hash_removal_moves_only_the_removed_backends_keys() {
    const N: usize = 10;
    const KEYS: u32 = 10_000;
    for weights in [vec![1u32; N], (1..=N as u32).collect()] {
        let mut full = Balancer::new(Algorithm::SourceHash, &weights, 0);
        let mut rebuilt = Balancer::new(Algorithm::SourceHash, &weights[..N - 1], 0);
        let all = TestView::all(N);
        let without_last = TestView::all(N - 1);
        let mut down = TestView::all(N);
        down.usable[3] = false;
        let (mut on_last, mut on_3) = (0, 0);
        for i in 0..KEYS {
            let key = client(i);
            let before = full.pick(key, &all).unwrap();
            // Rebuilt without the last backend.
            let after = rebuilt.pick(key, &without_last).unwrap();
            if before == N - 1 {
                on_last += 1;
            } else {
                assert_eq!(after, before, "key {i} moved on rebuild");
            }
            // Backend 3 marked unusable.
            let after = full.pick(key, &down).unwrap();
            if before == 3 {
                on_3 += 1;
            } else {
                assert_eq!(after, before, "key {i} moved when 3 went down");
            }
        }
        // And the removed backends did own their weight's share of keys.
        let total: u32 = weights.iter().sum();
        let share = |b: usize| f64::from(weights[b]) / f64::from(total);
        let moved_last = f64::from(on_last) / f64::from(KEYS);
        let moved_3 = f64::from(on_3) / f64::from(KEYS);
        assert!((moved_last - share(N - 1)).abs() < 0.02, "{moved_last}");
        assert!((moved_3 - share(3)).abs() < 0.02, "{moved_3}");
    }
}

#[test]
fn source_hash_follows_weights() {
    for weights in [&[1u32, 1, 1, 1][..], &[2, 1, 1][..], &[1, 2, 3, 4][..]] {
        let mut sh = Balancer::new(Algorithm::SourceHash, weights, 0);
        let got = counts(&mut sh, &TestView::all(weights.len()), 40_000);
        assert_proportional("SourceHash", &got, weights, 0.01);
    }
}

#[test]
fn maglev_table_size_is_prime() {
    let maglev = Balancer::new(Algorithm::Maglev, &[1, 1, 1], 0);
    assert_eq!(maglev.table.len(), DEFAULT_MAGLEV_SIZE);
    assert!(is_prime(DEFAULT_MAGLEV_SIZE));
    // (requested, built)
    for (requested, built) in [
        (0, 2),
        (1, 2),
        (2, 2),
        (100, 101),
        (1000, 1009),
        (65537, 65537),
    ] {
        let maglev = Balancer::with_maglev_size(Algorithm::Maglev, &[1, 2], 0, requested);
        assert_eq!(maglev.table.len(), built, "requested {requested}");
        assert!(is_prime(maglev.table.len()));
    }
    assert!(!is_prime(1) && !is_prime(9) && !is_prime(65535) && is_prime(7919));
    // Other algorithms carry no table at all.
    assert!(Balancer::new(Algorithm::RoundRobin, &[1; 3], 0)
        .table
        .is_empty());
}

/// How many table slots each backend owns.
fn slot_counts(balancer: &Balancer, n: usize) -> Vec<u32> {
    let mut counts = vec![0; n];
    for &b in balancer.table.iter() {
        counts[b as usize] += 1;
    }
    counts
}

#[test]
fn maglev_balances_equal_weights() {
    const N: usize = 10;
    let mut maglev = Balancer::new(Algorithm::Maglev, &[1; N], 0);
    // Slots: each backend owns floor(M/N) or ceil(M/N).
    let slots = slot_counts(&maglev, N);
    let floor = (DEFAULT_MAGLEV_SIZE / N) as u32;
    assert!(
        slots.iter().all(|&s| s == floor || s == floor + 1),
        "{slots:?}"
    );
    // Keys: within a few percent of even.
    let got = counts(&mut maglev, &TestView::all(N), 100_000);
    assert_proportional("Maglev", &got, &[1; N], 0.004);
}

#[test]
fn maglev_follows_weights() {
    // Weights, including ones whose single weight exceeds the table size.
    let cases: &[&[u32]] = &[
        &[2, 1],
        &[1, 2, 3, 4],
        &[10, 10, 20],
        &[1_000_000, 1, 1_000_000],
    ];
    for &weights in cases {
        let mut maglev = Balancer::new(Algorithm::Maglev, weights, 0);
        let slots = slot_counts(&maglev, weights.len());
        assert_proportional("Maglev slots", &slots, weights, 0.0001);
        let got = counts(&mut maglev, &TestView::all(weights.len()), 50_000);
        assert_proportional("Maglev keys", &got, weights, 0.01);
    }
}

#[test]
fn maglev_rebuild_without_one_backend_moves_about_one_nth() {
    const N: usize = 10;
    const KEYS: u32 = 100_000;
    let mut full = Balancer::new(Algorithm::Maglev, &[1; N], 0);
    let mut rebuilt = Balancer::new(Algorithm::Maglev, &[1; N - 1], 0);
    let (all, fewer) = (TestView::all(N), TestView::all(N - 1));
    let mut moved = 0;
    for i in 0..KEYS {
        let key = client(i);
        let before = full.pick(key, &all).unwrap();
        let after = rebuilt.pick(key, &fewer).unwrap();
        if before != after {
            moved += 1;
        }
    }
    let fraction = f64::from(moved) / f64::from(KEYS);
    assert!((0.08..=0.13).contains(&fraction), "moved {fraction}");
}

#[test]
fn maglev_unusable_backend_moves_only_its_keys_and_spreads_them() {
    const N: usize = 10;
    const KEYS: u32 = 100_000;
    let mut maglev = Balancer::new(Algorithm::Maglev, &[1; N], 0);
    let all = TestView::all(N);
    let mut down = TestView::all(N);
    down.usable[4] = false;
    let mut moved_to = [0u32; N];
    for i in 0..KEYS {
        let key = client(i);
        let before = maglev.pick(key, &all).unwrap();
        let after = maglev.pick(key, &down).unwrap();
        if before == 4 {
            moved_to[after] += 1;
        } else {
            assert_eq!(after, before, "key {i} moved although its backend is up");
        }
    }
    let moved: u32 = moved_to.iter().sum();
    let fraction = f64::from(moved) / f64::from(KEYS);
    assert!((0.08..=0.12).contains(&fraction), "moved {fraction}");
    // The orphaned keys spread over the survivors instead of all landing on one.
    let fair = moved / (N as u32 - 1);
    for (b, &count) in moved_to.iter().enumerate().filter(|&(b, _)| b != 4) {
        assert!(
            count > fair / 2 && count < fair * 2,
            "backend {b} took {count} of {moved}"
        );
    }
}

#[test]
fn maglev_is_deterministic_across_instances() {
    let weights = [3, 1, 2, 2, 1];
    let mut a = Balancer::with_maglev_size(Algorithm::Maglev, &weights, 1, 5003);
    let mut b = Balancer::with_maglev_size(Algorithm::Maglev, &weights, 12345, 5003);
    assert_eq!(a.table, b.table);
    let view = TestView::with_usable(&[true, false, true, true, true]);
    for i in 0..5000 {
        assert_eq!(a.pick(client(i), &view), b.pick(client(i), &view));
    }
    // Golden slots: the table must not change between builds or releases, or every
    // proxy of a fleet running mixed versions would disagree about where clients go.
    assert_eq!(&a.table[..8], &[0, 0, 3, 3, 0, 1, 4, 0]);
}

#[test]
fn power_of_two_avoids_the_loaded_backend() {
    // Two usable backends: the two distinct choices are always both of them, so the
    // loaded one is never picked.
    let mut p2c = Balancer::new(Algorithm::PowerOfTwo, &[1, 1], 5);
    assert_eq!(
        counts(&mut p2c, &TestView::with_load(&[0, 100]), 10_000),
        [10_000, 0]
    );
    // Three: the most loaded one loses every comparison it takes part in.
    let mut p2c = Balancer::new(Algorithm::PowerOfTwo, &[1, 1, 1], 5);
    let got = counts(&mut p2c, &TestView::with_load(&[0, 100, 0]), 30_000);
    assert_eq!(got[1], 0, "{got:?}");
    // Middle load: picked only against the loaded one, i.e. about 1/3 of the time
    // (both choices are {1, 2} with probability 1/3).
    let got = counts(&mut p2c, &TestView::with_load(&[0, 100, 50]), 30_000);
    assert_eq!(got[1], 0, "{got:?}");
    assert!((9_000..11_000).contains(&got[2]), "{got:?}");
    // Load is relative to weight: 10 connections on weight 10 beat 2 on weight 1.
    let mut p2c = Balancer::new(Algorithm::PowerOfTwo, &[10, 1], 5);
    assert_eq!(
        counts(&mut p2c, &TestView::with_load(&[10, 2]), 1_000),
        [1_000, 0]
    );
}

#[test]
fn random_and_power_of_two_follow_weights() {
    // (algorithm, weights, usable)
    let cases: &[(Algorithm, &[u32], &[bool])] = &[
        (Algorithm::Random, &[1, 2, 3, 4], &[true; 4]),
        (Algorithm::Random, &[1, 2, 3, 4], &[true, false, true, true]),
        (Algorithm::PowerOfTwo, &[1, 2, 3, 4], &[true; 4]),
        (Algorithm::PowerOfTwo, &[3, 1], &[true; 2]),
    ];
    for &(algorithm, weights, usable) in cases {
        let mut balancer = Balancer::new(algorithm, weights, 42);
        // Equal loads, so PowerOfTwo's comparison always ties and its first
        // (weighted) choice decides.
        let got = counts(&mut balancer, &TestView::with_usable(usable), 100_000);
        let effective: Vec<u32> = weights
            .iter()
            .zip(usable)
            .map(|(&w, &u)| if u { w } else { 0 })
            .collect();
        assert_proportional(&format!("{algorithm:?}"), &got, &effective, 0.01);
    }
}

#[test]
fn cores_with_different_seeds_draw_differently() {
    let view = TestView::all(8);
    let mut a = Balancer::new(Algorithm::Random, &[1; 8], 1);
    let mut b = Balancer::new(Algorithm::Random, &[1; 8], 2);
    let sa: Vec<_> = (0..32).map(|_| a.pick(0, &view)).collect();
    let sb: Vec<_> = (0..32).map(|_| b.pick(0, &view)).collect();
    assert_ne!(sa, sb);
    // Same seed, same sequence: runs are reproducible.
    let mut c = Balancer::new(Algorithm::Random, &[1; 8], 1);
    let sc: Vec<_> = (0..32).map(|_| c.pick(0, &view)).collect();
    assert_eq!(sa, sc);
}

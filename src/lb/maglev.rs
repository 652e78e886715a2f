//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), with weights.
//!
//! Each backend has a preference list: a permutation of the table's slots given by
//! `offset + j * skip (mod M)`, with `offset` and `skip` from two hashes of the backend's
//! index and a fixed salt (so every core and every process builds the same table). The
//! backends take turns claiming their next still-free preferred slot until the table is
//! full. Because `M` is prime and `skip` is in `[1, M)`, every preference list visits
//! every slot, so each turn always finds a slot.
//!
//! With equal weights the turns go round robin, as in the paper, and every backend ends
//! up with `floor(M / N)` or `ceil(M / N)` slots. With weights, a backend of weight `w`
//! gets `w` turns per round of `sum(w)` turns; the turns are ordered by smooth weighted
//! round robin, so they interleave (a heavy backend never claims a long run of its
//! preferences while the others wait) and every backend's share of the table is its
//! weight's share, to within a slot or two, even when single weights exceed `M`.
//!
//! Removing a backend only frees its slots and lets the others' preference lists run a
//! little further, which is why only about `1/N` of the keys move.

use super::{mix64, BackendView};

/// Salts for the two hashes of a backend index (offset and skip).
const OFFSET_SALT: u64 = 0x6d61_676c_6576_3031;
const SKIP_SALT: u64 = 0x6d61_676c_6576_3032;

/// Marks a slot no backend has claimed yet while the table is being built.
const EMPTY: u32 = u32::MAX;

/// Whether `n` is prime (trial division: only run at build time, on table sizes).
pub(super) fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let mut d = 3;
    while d <= n / d {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// The smallest prime `>= n` (and `>= 2`).
pub(super) fn next_prime(n: usize) -> usize {
    let mut candidate = n.max(2);
    while !is_prime(candidate) {
        candidate += 1;
    }
    candidate
}

/// Greatest common divisor, to reduce the weights: 10:10:20 schedules the same turns as
/// 1:1:2 but with shorter rounds.
fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Build the lookup table of prime size `size` for backends with these weights (each
/// at least 1). Empty if there are no backends. This is the only place the Maglev
/// balancer allocates, once per pool per core.
///
/// Cost: O(M log M) slot probes, plus O(N) per turn for unequal weights (the smooth
/// round-robin scheduler), i.e. O(N * M) — a few milliseconds for typical pools,
/// paid only when a new configuration is published.
pub(super) fn build(weights: &[u32], size: usize) -> Box<[u32]> {
    let n = weights.len();
    if n == 0 {
        return Box::default();
    }
    debug_assert!(is_prime(size), "Maglev table size must be prime");
    debug_assert!(n < EMPTY as usize, "too many backends for a Maglev table");
    let m = size as u64;

    // Each backend's current position in its preference list; advancing by `skip`
    // (mod M) instead of computing `offset + j * skip` avoids any overflow.
    let mut position = Vec::with_capacity(n);
    let mut skip = Vec::with_capacity(n);
    for i in 0..n {
        position.push((mix64(i as u64 ^ OFFSET_SALT) % m) as usize);
        skip.push((mix64(i as u64 ^ SKIP_SALT) % (m - 1) + 1) as usize);
    }

    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    let reduced: Vec<i64> = weights.iter().map(|&w| i64::from(w / divisor)).collect();
    let total: i64 = reduced.iter().sum();
    let equal = reduced.iter().all(|&w| w == 1);
    let mut current = vec![0i64; n];

    let mut table = vec![EMPTY; size];
    for turn in 0..size {
        let backend = if equal {
            turn % n
        } else {
            // Smooth weighted round robin, as in `Balancer::round_robin`.
            let mut best = 0;
            for i in 0..n {
                current[i] += reduced[i];
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            best
        };
        // Claim this backend's next preferred slot that is still free. One exists: only
        // `turn` of the `M` slots are taken, and the preference list covers them all.
        let mut slot = position[backend];
        while table[slot] != EMPTY {
            slot += skip[backend];
            if slot >= size {
                slot -= size;
            }
        }
        table[slot] = backend as u32;
        position[backend] = slot;
    }
    table.into_boxed_slice()
}

/// `table[key % M]`, or if that backend is unusable the next usable one walking forward
/// through the table. A key whose backend is usable therefore never moves when others
/// fail, and the keys of a failed backend spread over the others in proportion to their
/// slots (the walk lands on effectively random neighbours).
pub(super) fn pick(table: &[u32], n: usize, key: u64, view: &impl BackendView) -> Option<usize> {
    let size = table.len();
    if size == 0 {
        return None;
    }
    let usable = |b: u32| (b as usize) < n && view.usable(b as usize);
    let mut slot = (key % size as u64) as usize;
    if usable(table[slot]) {
        return Some(table[slot] as usize);
    }
    // Rare path. Without this check a pool with nothing usable would walk the whole
    // table (65537 steps) on every attempt.
    if !(0..n).any(|i| view.usable(i)) {
        return None;
    }
    for _ in 1..size {
        slot += 1;
        if slot == size {
            slot = 0;
        }
        if usable(table[slot]) {
            return Some(table[slot] as usize);
        }
    }
    // Usable backends exist but own no slot (more backends than slots).
    None
}

//! Backend selection: which backend of a pool gets the next connection.
//!
//! Pure code in the style of pingora's selection: nothing here does IO, reads a clock,
//! takes a lock or allocates per pick. A [`Balancer`] is built once per pool per core
//! from the backends' weights (for Maglev that is when the lookup table is built), and
//! [`Balancer::pick`] then only mutates this core's small state: the smooth round-robin
//! counters, the least-connections cursor and a SplitMix64 RNG.
//!
//! Everything the balancer may look at per backend at pick time (health, "already
//! tried" for this connection, this core's active connection count) comes through the
//! [`BackendView`] trait, so the worker supplies its snapshot without copying it and the
//! tests supply a plain vector.
//!
//! # Fallback
//!
//! When a connect fails the caller marks that backend as tried and calls `pick` again
//! with a view whose [`BackendView::usable`] excludes it. Every algorithm therefore
//! honours `usable` on every call and never returns an unusable index, so a retry loop
//! visits each usable backend at most once and ends with `None`.
//!
//! # Backend identity
//!
//! A backend is its index in the pool. The hashing algorithms (SourceHash, Maglev) hash
//! the index with a fixed salt, so every core and every process agree on where a client
//! goes without exchanging anything. The flip side: removing a backend from the *middle*
//! of the config renumbers the ones after it, which moves more clients than the minimum.
//! Health changes (the common case) never renumber: an unhealthy backend is only
//! unusable, and only its own clients move.

mod maglev;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

/// Default Maglev lookup table size: a prime, and large enough (the paper recommends
/// at least 100 entries per backend) for pools of several hundred backends.
pub const DEFAULT_MAGLEV_SIZE: usize = 65537;

/// Which algorithm a pool uses; the config's `balance` field deserializes into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename = "Balance")]
pub enum Algorithm {
    /// Smooth weighted round robin (nginx's): interleaves backends in proportion to
    /// their weights instead of sending bursts to the heaviest (the default).
    #[default]
    RoundRobin,
    /// Fewest active connections on this core relative to weight.
    LeastConnections,
    /// Weighted rendezvous hashing of the client address: a client keeps its backend,
    /// and removing a backend moves only that backend's clients.
    SourceHash,
    /// Maglev consistent hashing of the client address through a prime-sized lookup
    /// table: O(1) picks, near-perfect balance, near-minimal disruption.
    Maglev,
    /// Power of two choices: two distinct weighted-random backends, the less loaded wins.
    PowerOfTwo,
    /// Weighted random choice.
    Random,
}

impl Algorithm {
    /// Every algorithm, in declaration order (handy for exhaustive tests and listings).
    pub const ALL: [Algorithm; 6] = [
        Algorithm::RoundRobin,
        Algorithm::LeastConnections,
        Algorithm::SourceHash,
        Algorithm::Maglev,
        Algorithm::PowerOfTwo,
        Algorithm::Random,
    ];
}

/// What the balancer may look at for each backend at pick time. Implemented by the worker
/// (health snapshot + per-core active connection counts + "already tried" set).
pub trait BackendView {
    /// Number of backends in the pool (indices 0..len).
    fn len(&self) -> usize;
    /// Whether the pool has no backends at all. Provided, so implementors need only `len`.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether backend `i` may be picked now (healthy and not already tried for this connection).
    fn usable(&self, i: usize) -> bool;
    /// Current load of backend `i` on this core (active connections).
    fn load(&self, i: usize) -> u32;
}

/// A per-core balancer for one pool. Built once from the weights; `pick` mutates only
/// this core's state (round robin cursor, RNG).
///
/// The pool's backends are `0..weights.len()`. Should a view report a different length,
/// only the indices both know about are considered, so a stale view can never make the
/// balancer index out of bounds.
#[derive(Clone)]
pub struct Balancer {
    algorithm: Algorithm,
    /// Weight per backend, at least 1.
    weights: Box<[u32]>,
    /// All weights are equal: SourceHash can then compare raw hashes (exact integer
    /// comparison, no logarithm) and get the same ranking the weighted formula would.
    uniform: bool,
    /// Smooth round robin's per-backend `current` counters; empty for other algorithms.
    current: Box<[i64]>,
    /// Where LeastConnections starts scanning, so ties rotate instead of piling onto
    /// the lowest index.
    cursor: usize,
    /// This core's random source (PowerOfTwo, Random).
    rng: SplitMix64,
    /// Maglev lookup table (slot -> backend index); empty for other algorithms.
    table: Box<[u32]>,
}

impl Balancer {
    /// `weights[i]` is backend i's weight (>= 1). `seed` seeds the per-core RNG (use e.g. the core id).
    ///
    /// A weight of 0 (which the config rejects) is treated as 1 rather than panicking.
    /// Maglev uses a table of [`DEFAULT_MAGLEV_SIZE`] entries.
    pub fn new(algorithm: Algorithm, weights: &[u32], seed: u64) -> Balancer {
        Balancer::with_maglev_size(algorithm, weights, seed, DEFAULT_MAGLEV_SIZE)
    }

    /// Like [`Balancer::new`], with a chosen Maglev table size.
    ///
    /// Maglev needs a prime size (so every backend's probe sequence visits every slot);
    /// `size` is rounded up to the next prime, and to at least 2. Other algorithms ignore
    /// it. Keep it well above the number of backends, ideally 100 times or more: a
    /// backend's share of the table can only be as fine-grained as one slot.
    pub fn with_maglev_size(
        algorithm: Algorithm,
        weights: &[u32],
        seed: u64,
        size: usize,
    ) -> Balancer {
        let weights: Box<[u32]> = weights.iter().map(|&w| w.max(1)).collect();
        let uniform = weights.windows(2).all(|pair| pair[0] == pair[1]);
        let current = match algorithm {
            Algorithm::RoundRobin => vec![0; weights.len()].into_boxed_slice(),
            _ => Box::default(),
        };
        let table = match algorithm {
            Algorithm::Maglev => maglev::build(&weights, maglev::next_prime(size)),
            _ => Box::default(),
        };
        Balancer {
            algorithm,
            weights,
            uniform,
            current,
            cursor: 0,
            rng: SplitMix64::new(seed),
            table,
        }
    }

    /// The algorithm this balancer was built for.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Pick a usable backend. `key` is the hash of the client's source IP (use `hash_ip`)
    /// and is used by SourceHash and Maglev; others ignore it. None if no backend is usable.
    pub fn pick(&mut self, key: u64, view: &impl BackendView) -> Option<usize> {
        let n = self.weights.len().min(view.len());
        if n == 0 {
            return None;
        }
        match self.algorithm {
            Algorithm::RoundRobin => self.round_robin(n, view),
            Algorithm::LeastConnections => self.least_connections(n, view),
            Algorithm::SourceHash => self.source_hash(n, key, view),
            Algorithm::Maglev => maglev::pick(&self.table, n, key, view),
            Algorithm::PowerOfTwo => self.power_of_two(n, view),
            Algorithm::Random => weighted_random(&self.weights[..n], &mut self.rng, None, view),
        }
    }

    /// nginx's smooth weighted round robin over the usable backends: each pick adds every
    /// usable backend's weight to its counter, takes the highest counter and charges it
    /// the total. Over any window of `total` picks each backend is chosen exactly
    /// `weight` times, spread out (5:1:1 gives a a b a c a a, not a a a a a b c).
    ///
    /// Unusable backends keep their counters frozen, so a backend that was briefly
    /// skipped resumes where it was instead of being starved or flooded.
    fn round_robin(&mut self, n: usize, view: &impl BackendView) -> Option<usize> {
        let mut total: i64 = 0;
        let mut best: Option<usize> = None;
        for i in 0..n {
            if !view.usable(i) {
                continue;
            }
            let weight = i64::from(self.weights[i]);
            total += weight;
            // Saturating: the counters stay within a few totals of zero in practice,
            // but a pick must never be able to panic.
            self.current[i] = self.current[i].saturating_add(weight);
            // Strictly greater: the first of equal counters wins, which is what makes
            // equal weights cycle 0, 1, 2, ... in order.
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        self.current[best] = self.current[best].saturating_sub(total);
        Some(best)
    }

    /// Lowest `load / weight`, compared as `load(a) * weight(b)` vs `load(b) * weight(a)`
    /// in u64 (exact; both factors fit in 32 bits). Ties go to the heavier backend (it
    /// has more headroom at equal relative load), then to the first one found scanning
    /// from a cursor that moves past each pick, so idle equal backends take turns.
    fn least_connections(&mut self, n: usize, view: &impl BackendView) -> Option<usize> {
        let start = self.cursor % n;
        // (index, load, weight) of the best so far.
        let mut best: Option<(usize, u64, u64)> = None;
        for step in 0..n {
            let i = if start + step < n {
                start + step
            } else {
                start + step - n
            };
            if !view.usable(i) {
                continue;
            }
            let load = u64::from(view.load(i));
            let weight = u64::from(self.weights[i]);
            let better = match best {
                None => true,
                Some((_, best_load, best_weight)) => {
                    let mine = load * best_weight;
                    let theirs = best_load * weight;
                    mine < theirs || (mine == theirs && weight > best_weight)
                }
            };
            if better {
                best = Some((i, load, weight));
            }
        }
        let (chosen, _, _) = best?;
        self.cursor = chosen + 1;
        Some(chosen)
    }

    /// Weighted rendezvous (highest random weight) hashing: every usable backend gets a
    /// score `weight / -ln(u)` with `u` uniform in (0, 1) from `hash(key, index)`, and the
    /// highest score wins. A backend's score does not depend on the others, so removing
    /// one (or marking it unusable) only moves the keys it was winning, and each backend
    /// wins a share of keys proportional to its weight.
    ///
    /// Cost is one hash (and, for unequal weights, one logarithm) per backend per pick,
    /// fine for the pool sizes this is meant for; Maglev is the O(1) alternative.
    fn source_hash(&self, n: usize, key: u64, view: &impl BackendView) -> Option<usize> {
        if self.uniform {
            // Equal weights: `w / -ln(u)` is increasing in `u`, so the largest hash wins.
            // Integer comparison keeps the result bit-exact on every platform.
            let mut best: Option<(usize, u64)> = None;
            for i in 0..n {
                if view.usable(i) {
                    let h = rendezvous_hash(key, i);
                    if best.is_none_or(|(_, b)| h > b) {
                        best = Some((i, h));
                    }
                }
            }
            return best.map(|(i, _)| i);
        }
        // Minimize `-ln(u) / w`, the same ranking as maximizing `w / -ln(u)` without
        // dividing by something that could be tiny.
        let mut best: Option<(usize, f64)> = None;
        for i in 0..n {
            if view.usable(i) {
                let u = unit_interval(rendezvous_hash(key, i));
                let cost = -u.ln() / f64::from(self.weights[i]);
                if best.is_none_or(|(_, b)| cost < b) {
                    best = Some((i, cost));
                }
            }
        }
        best.map(|(i, _)| i)
    }

    /// Two distinct weighted-random choices; the one with the lower `load / weight` wins,
    /// and on a tie the first, which keeps the picks proportional to weight when loads
    /// are equal. Comparing just two backends avoids least-connections' herding (every
    /// core hammering the same momentarily idlest backend) at O(n) without sorting.
    fn power_of_two(&mut self, n: usize, view: &impl BackendView) -> Option<usize> {
        let weights = &self.weights[..n];
        let first = weighted_random(weights, &mut self.rng, None, view)?;
        let Some(second) = weighted_random(weights, &mut self.rng, Some(first), view) else {
            return Some(first);
        };
        let first_cost = u64::from(view.load(first)) * u64::from(weights[second]);
        let second_cost = u64::from(view.load(second)) * u64::from(weights[first]);
        Some(if second_cost < first_cost {
            second
        } else {
            first
        })
    }
}

/// Summarized rather than derived: a derived `Debug` would print all 65537 Maglev slots.
impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("algorithm", &self.algorithm)
            .field("weights", &self.weights)
            .field("current", &self.current)
            .field("cursor", &self.cursor)
            .field("table_len", &self.table.len())
            .finish_non_exhaustive()
    }
}

/// Stable 64-bit hash of an IP address (not of the port), identical on every core and every
/// process/run (no RandomState): e.g. FNV-1a or a splitmix over the octets.
///
/// FNV-1a over a family tag and the octets, then a SplitMix64 finalizer so that every
/// bit of the result depends on every octet (FNV alone leaves the low bits weak, and
/// Maglev reduces the key modulo the table size). An IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`, what a dual-stack listener reports) hashes like the plain IPv4
/// address, so a client keeps its backend whichever socket it arrived on.
pub fn hash_ip(ip: IpAddr) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    fn fnv(hash: u64, bytes: &[u8]) -> u64 {
        bytes
            .iter()
            .fold(hash, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
    }
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let hash = match ip {
        IpAddr::V4(v4) => fnv(fnv(FNV_OFFSET, &[4]), &v4.octets()),
        IpAddr::V6(v6) => fnv(fnv(FNV_OFFSET, &[6]), &v6.octets()),
    };
    mix64(hash)
}

/// Salt for rendezvous scores, so they are unrelated to Maglev's permutations.
const RENDEZVOUS_SALT: u64 = 0x7265_6e64_657a_766f;

/// SplitMix64's finalizer: a bijection on u64 with full avalanche.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The pseudo-random value backend `index` draws for client `key`: fixed per pair,
/// independent across backends.
fn rendezvous_hash(key: u64, index: usize) -> u64 {
    mix64(key ^ mix64(index as u64 ^ RENDEZVOUS_SALT))
}

/// Map a hash to a float strictly inside (0, 1): the top 53 bits plus half a step, so
/// neither 0 (infinite `-ln`) nor 1 (zero `-ln`) can occur.
fn unit_interval(hash: u64) -> f64 {
    ((hash >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// Weighted random choice among the usable backends other than `exclude`, without
/// allocating: sum the usable weights, draw `r` in `[0, total)`, scan.
fn weighted_random(
    weights: &[u32],
    rng: &mut SplitMix64,
    exclude: Option<usize>,
    view: &impl BackendView,
) -> Option<usize> {
    let eligible = |i: usize| Some(i) != exclude && view.usable(i);
    // u64: at most 2^32 backends' worth of u32 weights cannot overflow in practice.
    let total: u64 = (0..weights.len())
        .filter(|&i| eligible(i))
        .map(|i| u64::from(weights[i]))
        .sum();
    if total == 0 {
        return None;
    }
    let mut r = rng.below(total);
    let mut last = None;
    for (i, &weight) in weights.iter().enumerate() {
        if !eligible(i) {
            continue;
        }
        let weight = u64::from(weight);
        if r < weight {
            return Some(i);
        }
        r -= weight;
        last = Some(i);
    }
    // Only reachable if `usable` changed between the two passes; any usable one will do.
    last
}

/// SplitMix64: a tiny, fast, well-distributed generator; one u64 of state per core.
#[derive(Clone, Copy, Debug)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// Seeds are mixed first so that neighbouring core ids give unrelated streams.
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64 {
            state: mix64(seed ^ 0x6a09_e667_f3bc_c908),
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// Uniform in `[0, bound)` by multiply-shift (Lemire) without the rejection step:
    /// the bias is below `bound / 2^64`, far under anything measurable here, and the
    /// draw never loops.
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

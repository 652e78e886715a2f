//! Bounded, recency-ordered table of flows, owned by one worker core.
//!
//! A UDP proxy has no connection to tell it when a client is gone, so each worker keeps one
//! entry per client address and forgets it after a period of silence (or when the table is
//! full and a newer client needs the slot). Both policies want "least recently active
//! first", so entries live on an intrusive doubly linked list ordered by last activity:
//! eviction takes the head, and an idle sweep pops from the head until it meets an entry
//! that is still fresh, which makes a sweep O(expired) rather than O(table).
//!
//! Layout: a `HashMap<K, usize>` indexes a slab `Vec` of nodes; freed slots are chained on a
//! free list and reused, so once the table has been full once no operation allocates.
//!
//! The table is generic over the key so the same structure serves the UDP flow table (keyed
//! by client `SocketAddr`, the default) and the per-IP rate limiter (keyed by `IpAddr`).
//!
//! Sans-IO: every operation that changes recency takes `now`; the table never reads a clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Sentinel for "no node" in the intrusive links (slab indices are never this large).
const NIL: usize = usize::MAX;

/// One slab slot. `entry` is `None` while the slot sits on the free list; the free list
/// reuses `next` so a free slot costs no extra space.
struct Node<K, V> {
    entry: Option<(K, V)>,
    last: Instant,
    prev: usize,
    next: usize,
}

/// A bounded map from flow key to `V`, ordered by last activity (least recent first).
///
/// `V` comes first and the key defaults to `SocketAddr` so `FlowTable<V>` is the UDP flow
/// table; other users (the rate limiter) name the key explicitly: `FlowTable<V, IpAddr>`.
pub struct FlowTable<V, K = SocketAddr> {
    index: HashMap<K, usize>,
    nodes: Vec<Node<K, V>>,
    /// Least recently active live node.
    head: usize,
    /// Most recently active live node.
    tail: usize,
    /// First free slot in `nodes`, chained through `Node::next`.
    free: usize,
    capacity: usize,
}

impl<V, K: Hash + Eq + Copy> FlowTable<V, K> {
    /// An empty table holding at most `capacity` flows (a capacity of 0 is raised to 1,
    /// because a table that cannot hold the flow being inserted is useless).
    ///
    /// Storage grows on demand up to `capacity` rather than being reserved up front, so a
    /// generously configured limit costs nothing until traffic actually needs it.
    pub fn new(capacity: usize) -> Self {
        Self {
            index: HashMap::new(),
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            free: NIL,
            capacity: capacity.max(1),
        }
    }

    /// Number of live flows.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no flow is live.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Maximum number of live flows before inserts start evicting.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// True when `key` has a live flow (does not change recency).
    pub fn contains_key(&self, key: &K) -> bool {
        self.index.contains_key(key)
    }

    /// Look up a flow without marking it active (for inspection, not for traffic).
    pub fn get(&self, key: &K) -> Option<&V> {
        let &i = self.index.get(key)?;
        self.nodes[i].entry.as_ref().map(|(_, v)| v)
    }

    /// Look up and mark active at `now` (moves to most-recent).
    pub fn touch(&mut self, key: &K, now: Instant) -> Option<&mut V> {
        let &i = self.index.get(key)?;
        self.unlink(i);
        self.push_back(i, now);
        self.nodes[i].entry.as_mut().map(|(_, v)| v)
    }

    /// Insert a new flow (or replace an existing one), active at `now`.
    ///
    /// Returns the entry this insert displaced, so the caller can release whatever it owns
    /// (e.g. close that flow's upstream socket): the previous value under the same `key`
    /// when replacing, otherwise the least recently active flow when the table was full.
    /// Compare the returned key with `key` to tell the two apart.
    pub fn insert(&mut self, key: K, value: V, now: Instant) -> Option<(K, V)> {
        if let Some(&i) = self.index.get(&key) {
            self.unlink(i);
            self.push_back(i, now);
            let old = self.nodes[i].entry.replace((key, value));
            return old;
        }
        let evicted = if self.index.len() >= self.capacity {
            self.pop_front()
        } else {
            None
        };
        let i = self.alloc((key, value), now);
        self.index.insert(key, i);
        self.push_back(i, now);
        evicted
    }

    /// Remove a flow, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.index.remove(key)?;
        self.unlink(i);
        self.release(i).map(|(_, v)| v)
    }

    /// Remove and return flows idle for at least `idle` at `now`, least recent first.
    ///
    /// Stops at the first flow that is still fresh: the list is in activity order, so
    /// everything after it is fresher too.
    pub fn expire(&mut self, now: Instant, idle: Duration) -> Vec<(K, V)> {
        let mut out = Vec::new();
        while self.head != NIL && now.saturating_duration_since(self.nodes[self.head].last) >= idle
        {
            if let Some(e) = self.pop_front() {
                out.push(e);
            }
        }
        out
    }

    /// When the least recent flow will become idle-expired (for scheduling the next sweep).
    ///
    /// `None` when the table is empty, or when that instant is too far in the future to be
    /// represented (i.e. never, for practical purposes).
    pub fn next_expiry(&self, idle: Duration) -> Option<Instant> {
        if self.head == NIL {
            return None;
        }
        self.nodes[self.head].last.checked_add(idle)
    }

    /// Last-activity time of the least recently active flow, if any.
    pub fn oldest_activity(&self) -> Option<Instant> {
        (self.head != NIL).then(|| self.nodes[self.head].last)
    }

    /// Take a slot (reusing the free list first) and fill it; links are set by the caller.
    fn alloc(&mut self, entry: (K, V), now: Instant) -> usize {
        if self.free != NIL {
            let i = self.free;
            let node = &mut self.nodes[i];
            self.free = node.next;
            node.entry = Some(entry);
            node.last = now;
            i
        } else {
            self.nodes.push(Node {
                entry: Some(entry),
                last: now,
                prev: NIL,
                next: NIL,
            });
            self.nodes.len() - 1
        }
    }

    /// Put an unlinked slot on the free list and hand back its entry.
    fn release(&mut self, i: usize) -> Option<(K, V)> {
        let node = &mut self.nodes[i];
        node.prev = NIL;
        node.next = self.free;
        self.free = i;
        node.entry.take()
    }

    /// Detach node `i` from the activity list (it stays allocated).
    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.nodes[i].prev, self.nodes[i].next);
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next].prev = prev;
        }
        self.nodes[i].prev = NIL;
        self.nodes[i].next = NIL;
    }

    /// Append node `i` as most recent, active at `now`.
    ///
    /// Callers may hand in instants slightly out of order (e.g. a batch timestamp taken
    /// before another); the stamp is clamped to the current tail's so the list stays sorted
    /// by time, which `expire` relies on to stop early.
    fn push_back(&mut self, i: usize, now: Instant) {
        let last = if self.tail == NIL {
            now
        } else {
            now.max(self.nodes[self.tail].last)
        };
        let node = &mut self.nodes[i];
        node.last = last;
        node.prev = self.tail;
        node.next = NIL;
        if self.tail == NIL {
            self.head = i;
        } else {
            self.nodes[self.tail].next = i;
        }
        self.tail = i;
    }

    /// Remove the least recently active flow.
    fn pop_front(&mut self) -> Option<(K, V)> {
        let i = self.head;
        if i == NIL {
            return None;
        }
        self.unlink(i);
        let entry = self.release(i);
        if let Some((k, _)) = &entry {
            self.index.remove(k);
        }
        entry
    }
}

impl<V, K> std::fmt::Debug for FlowTable<V, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTable")
            .field("len", &self.index.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], n))
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// Keys in activity order, least recent first, walking the intrusive list (and checking
    /// the back links and the index agree with it).
    fn order<V>(t: &FlowTable<V>) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        let (mut i, mut prev) = (t.head, NIL);
        while i != NIL {
            assert_eq!(t.nodes[i].prev, prev);
            let k = t.nodes[i].entry.as_ref().unwrap().0;
            assert_eq!(t.index[&k], i);
            out.push(k);
            prev = i;
            i = t.nodes[i].next;
        }
        assert_eq!(t.tail, prev);
        assert_eq!(out.len(), t.len());
        out
    }

    #[test]
    fn lru_eviction_follows_touches() {
        let t0 = Instant::now();
        let mut t = FlowTable::new(3);
        assert!(t.insert(addr(1), 'a', ms(t0, 0)).is_none());
        assert!(t.insert(addr(2), 'b', ms(t0, 1)).is_none());
        assert!(t.insert(addr(3), 'c', ms(t0, 2)).is_none());
        // 1 becomes most recent, so 2 is now the eviction victim.
        assert_eq!(t.touch(&addr(1), ms(t0, 3)).copied(), Some('a'));
        assert_eq!(t.insert(addr(4), 'd', ms(t0, 4)), Some((addr(2), 'b')));
        assert_eq!(t.insert(addr(5), 'e', ms(t0, 5)), Some((addr(3), 'c')));
        assert_eq!(t.insert(addr(6), 'f', ms(t0, 6)), Some((addr(1), 'a')));
        assert_eq!(order(&t), vec![addr(4), addr(5), addr(6)]);
        assert_eq!(t.len(), 3);
        assert!(t.touch(&addr(2), ms(t0, 7)).is_none());
    }

    #[test]
    fn touch_returns_mutable_value() {
        let t0 = Instant::now();
        let mut t = FlowTable::new(2);
        t.insert(addr(1), 10u32, t0);
        *t.touch(&addr(1), t0).unwrap() += 5;
        assert_eq!(t.get(&addr(1)), Some(&15));
    }

    #[test]
    fn get_does_not_change_recency() {
        let t0 = Instant::now();
        let mut t = FlowTable::new(2);
        t.insert(addr(1), 1, ms(t0, 0));
        t.insert(addr(2), 2, ms(t0, 1));
        assert_eq!(t.get(&addr(1)), Some(&1));
        assert_eq!(t.insert(addr(3), 3, ms(t0, 2)), Some((addr(1), 1)));
    }

    #[test]
    fn expire_removes_exactly_idle_in_order() {
        let t0 = Instant::now();
        let mut t = FlowTable::new(10);
        for n in 0..5u16 {
            t.insert(addr(n), n, ms(t0, u64::from(n) * 10));
        }
        t.touch(&addr(0), ms(t0, 45)); // 0 is fresh again
        let idle = Duration::from_millis(30);
        assert_eq!(t.next_expiry(idle), Some(ms(t0, 40)));
        // At 50: 1 (last 10) and 2 (last 20, exactly 30 idle) expire; 3 (last 30) does not.
        let gone = t.expire(ms(t0, 50), idle);
        assert_eq!(gone, vec![(addr(1), 1), (addr(2), 2)]);
        assert_eq!(order(&t), vec![addr(3), addr(4), addr(0)]);
        assert_eq!(t.next_expiry(idle), Some(ms(t0, 60)));
        assert!(t.expire(ms(t0, 59), idle).is_empty());
        let gone = t.expire(ms(t0, 1000), idle);
        assert_eq!(gone, vec![(addr(3), 3), (addr(4), 4), (addr(0), 0)]);
        assert!(t.is_empty());
        assert_eq!(t.next_expiry(idle), None);
        assert_eq!(t.oldest_activity(), None);
    }

    #[test]
    fn replace_existing_key_returns_old_value_and_refreshes() {
        let t0 = Instant::now();
        let mut t = FlowTable::new(2);
        t.insert(addr(1), "old", ms(t0, 0));
        t.insert(addr(2), "two", ms(t0, 1));
        assert_eq!(t.insert(addr(1), "new", ms(t0, 2)), Some((addr(1), "old")));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&addr(1)), Some(&"new"));
        // Replacing refreshed 1, so 2 is the LRU victim.
        assert_eq!(
            t.insert(addr(3), "three", ms(t0, 3)),
            Some((addr(2), "two"))
        );
    }

    #[test]
    fn remove_head_middle_tail() {
        let t0 = Instant::now();
        let mut t = FlowTable::new(8);
        for n in 0..5u16 {
            t.insert(addr(n), n, ms(t0, u64::from(n)));
        }
        assert_eq!(t.remove(&addr(2)), Some(2)); // middle
        assert_eq!(order(&t), vec![addr(0), addr(1), addr(3), addr(4)]);
        assert_eq!(t.remove(&addr(0)), Some(0)); // head
        assert_eq!(order(&t), vec![addr(1), addr(3), addr(4)]);
        assert_eq!(t.remove(&addr(4)), Some(4)); // tail
        assert_eq!(order(&t), vec![addr(1), addr(3)]);
        assert_eq!(t.remove(&addr(4)), None);
        // Freed slots are reused rather than growing the slab.
        let slab = t.nodes.len();
        for n in 10..13u16 {
            t.insert(addr(n), n, ms(t0, 100));
        }
        assert_eq!(t.nodes.len(), slab);
        assert_eq!(
            order(&t),
            vec![addr(1), addr(3), addr(10), addr(11), addr(12)]
        );
    }

    #[test]
    fn capacity_one() {
        let t0 = Instant::now();
        let mut t = FlowTable::new(1);
        assert_eq!(t.capacity(), 1);
        assert!(t.insert(addr(1), 1, t0).is_none());
        assert_eq!(t.insert(addr(2), 2, t0), Some((addr(1), 1)));
        assert_eq!(t.insert(addr(2), 3, t0), Some((addr(2), 2)));
        assert_eq!(order(&t), vec![addr(2)]);
        assert_eq!(t.remove(&addr(2)), Some(3));
        assert!(t.is_empty());
        assert!(t.insert(addr(3), 4, t0).is_none());
        assert_eq!(t.nodes.len(), 1);
        assert_eq!(FlowTable::<()>::new(0).capacity(), 1);
    }

    #[test]
    fn out_of_order_timestamps_keep_list_sorted() {
        let t0 = Instant::now();
        let mut t = FlowTable::new(4);
        t.insert(addr(1), 1, ms(t0, 100));
        // An older stamp arriving later is clamped, so expire still sees a sorted list.
        t.insert(addr(2), 2, ms(t0, 50));
        let idle = Duration::from_millis(10);
        assert!(t.expire(ms(t0, 105), idle).is_empty());
        assert_eq!(t.expire(ms(t0, 110), idle).len(), 2);
    }

    #[test]
    fn generic_key() {
        use std::net::IpAddr;
        let t0 = Instant::now();
        let mut t: FlowTable<u8, IpAddr> = FlowTable::new(1);
        let a = IpAddr::from([1, 1, 1, 1]);
        let b = IpAddr::from([2, 2, 2, 2]);
        t.insert(a, 1, t0);
        assert_eq!(t.insert(b, 2, t0), Some((a, 1)));
        assert!(t.contains_key(&b));
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Obviously correct reference: a Vec in activity order, least recent first.
    struct Model {
        cap: usize,
        v: Vec<(SocketAddr, u64, Instant)>,
    }
    impl Model {
        fn pos(&self, k: &SocketAddr) -> Option<usize> {
            self.v.iter().position(|(key, _, _)| key == k)
        }
        fn touch(&mut self, k: &SocketAddr, now: Instant) -> Option<u64> {
            let p = self.pos(k)?;
            let (k, val, _) = self.v.remove(p);
            self.v.push((k, val, now));
            Some(val)
        }
        fn insert(&mut self, k: SocketAddr, val: u64, now: Instant) -> Option<(SocketAddr, u64)> {
            if let Some(p) = self.pos(&k) {
                let (_, old, _) = self.v.remove(p);
                self.v.push((k, val, now));
                return Some((k, old));
            }
            let ev = (self.v.len() >= self.cap).then(|| {
                let (k, v, _) = self.v.remove(0);
                (k, v)
            });
            self.v.push((k, val, now));
            ev
        }
        fn remove(&mut self, k: &SocketAddr) -> Option<u64> {
            let p = self.pos(k)?;
            Some(self.v.remove(p).1)
        }
        fn expire(&mut self, now: Instant, idle: Duration) -> Vec<(SocketAddr, u64)> {
            let n = self
                .v
                .iter()
                .take_while(|(_, _, t)| now.duration_since(*t) >= idle)
                .count();
            self.v.drain(..n).map(|(k, v, _)| (k, v)).collect()
        }
    }

    #[test]
    fn randomized_against_model() {
        let t0 = Instant::now();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let cap = 8;
        let mut t = FlowTable::new(cap);
        let mut m = Model { cap, v: Vec::new() };
        let mut clock = 0u64;
        let idle = Duration::from_millis(40);
        let (mut evictions, mut expired) = (0usize, 0usize);
        for step in 0..10_000u64 {
            clock += rng.below(5);
            let now = ms(t0, clock);
            let k = addr(rng.below(14) as u16);
            match rng.below(10) {
                0..=2 => {
                    let got = t.insert(k, step, now);
                    evictions += usize::from(got.is_some_and(|(gk, _)| gk != k));
                    assert_eq!(got, m.insert(k, step, now));
                }
                3..=5 => assert_eq!(t.touch(&k, now).copied(), m.touch(&k, now)),
                6 => assert_eq!(t.remove(&k), m.remove(&k)),
                7 => assert_eq!(t.get(&k).copied(), m.pos(&k).map(|p| m.v[p].1)),
                8 => {
                    let got = t.expire(now, idle);
                    expired += got.len();
                    assert_eq!(got, m.expire(now, idle));
                }
                _ => assert_eq!(
                    t.next_expiry(idle),
                    m.v.first().map(|(_, _, at)| *at + idle)
                ),
            }
            let keys: Vec<_> = m.v.iter().map(|(k, _, _)| *k).collect();
            assert_eq!(order(&t), keys, "step {step}");
            assert!(t.nodes.len() <= cap);
        }
        // The mix must actually exercise both removal paths, not just lookups.
        assert!(evictions > 100 && expired > 100, "{evictions} {expired}");
    }
}

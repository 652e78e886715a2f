//! Core-local latency histograms and the batches that carry them to the control thread.
//!
//! A worker records into plain `hdrhistogram::Histogram<u64>`s through `&mut` (no atomics,
//! no sharing) and about once a second calls [`CoreHistograms::take`], which swaps fresh
//! histograms in and hands the filled ones over as a [`HistogramBatch`]. The control thread
//! merges batches into the [`Registry`](super::Registry) with `Histogram::add`.

use std::fmt::Write as _;
use std::sync::Arc;

use hdrhistogram::Histogram;

/// Lowest value (in microseconds) the histograms distinguish from zero.
pub const LOWEST_MICROS: u64 = 1;
/// Highest value (in microseconds) the histograms track: one hour. Larger values are
/// clamped to this, which only matters for pathological connection durations.
pub const HIGHEST_MICROS: u64 = 3_600 * 1_000_000;
/// Significant decimal digits kept: values are exact to within 0.1%.
pub const SIGNIFICANT_FIGURES: u8 = 3;

/// Upper bounds of the Prometheus `_bucket` series, in microseconds, with their `le` label
/// spelled in seconds. The label strings are written out rather than formatted from floats
/// so that they are stable and exact (`0.00025`, never `0.00025000000000000006`).
pub(crate) const BUCKETS: [(u64, &str); 16] = [
    (100, "0.0001"),
    (250, "0.00025"),
    (500, "0.0005"),
    (1_000, "0.001"),
    (2_500, "0.0025"),
    (5_000, "0.005"),
    (10_000, "0.01"),
    (25_000, "0.025"),
    (50_000, "0.05"),
    (100_000, "0.1"),
    (250_000, "0.25"),
    (500_000, "0.5"),
    (1_000_000, "1"),
    (2_500_000, "2.5"),
    (5_000_000, "5"),
    (10_000_000, "10"),
];

/// Which latency a histogram measures; also decides the metric family it is exported as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HistogramKind {
    /// Time to establish an upstream connection, per pool
    /// (`ringway_upstream_connect_seconds{pool}`).
    UpstreamConnect,
    /// Lifetime of a client connection, per listener
    /// (`ringway_connection_duration_seconds{listener}`).
    ConnectionDuration,
    /// Time to serve one HTTP request, per listener
    /// (`ringway_request_duration_seconds{listener}`).
    RequestDuration,
}

/// A fresh, empty histogram with the crate-wide bounds (1 µs .. 1 h, 3 significant figures).
///
/// All histograms share these bounds so that `Histogram::add` never has to resize or fail.
pub fn new_histogram() -> Histogram<u64> {
    // The arguments are constants that satisfy every precondition (low >= 1,
    // high >= 2 * low, sigfig <= 5), so this cannot fail whatever the program's input is;
    // `tests::histogram_bounds_are_valid` pins that down.
    Histogram::new_with_bounds(LOWEST_MICROS, HIGHEST_MICROS, SIGNIFICANT_FIGURES)
        .expect("constant histogram bounds are valid")
}

/// One named histogram slot of one kind on one core.
struct Slot {
    /// Shared so that `take` can label a batch entry without allocating a new string.
    name: Arc<str>,
    hist: Histogram<u64>,
    /// Exact sum of recorded values; hdrhistogram only keeps bucketed values, and
    /// Prometheus' `_sum` should not inherit that rounding.
    sum_micros: u64,
}

/// The slots of one [`HistogramKind`], indexed by the small integers workers hold.
#[derive(Default)]
struct Family {
    slots: Vec<Slot>,
}

impl Family {
    fn slot(&mut self, name: &str) -> usize {
        // Linear search: this runs only when a worker builds its view of the config and
        // a core has a handful of pools and listeners.
        if let Some(i) = self.slots.iter().position(|s| &*s.name == name) {
            return i;
        }
        self.slots.push(Slot {
            name: Arc::from(name),
            hist: new_histogram(),
            sum_micros: 0,
        });
        self.slots.len() - 1
    }

    #[inline]
    fn record(&mut self, slot: usize, micros: u64) {
        // An unknown slot is a caller bug, but the data path must not panic over a metric.
        if let Some(s) = self.slots.get_mut(slot) {
            // Clamps values beyond one hour instead of failing or resizing (which would
            // allocate on the data path).
            s.hist.saturating_record(micros);
            s.sum_micros = s.sum_micros.saturating_add(micros);
        }
    }

    fn take_into(&mut self, kind: HistogramKind, out: &mut Vec<BatchEntry>) {
        for s in &mut self.slots {
            // Idle slots ship nothing and, more importantly, allocate nothing.
            if s.hist.is_empty() {
                continue;
            }
            let hist = std::mem::replace(&mut s.hist, new_histogram());
            out.push(BatchEntry {
                kind,
                name: Arc::clone(&s.name),
                hist,
                sum_micros: std::mem::take(&mut s.sum_micros),
            });
        }
    }
}

/// Latency histograms owned by one worker core, recorded without atomics or locks.
///
/// Slots are resolved by name once (when the worker builds its view of the config) and then
/// addressed by index on the data path. A slot lives as long as the `CoreHistograms`, so
/// indices stay valid across config reloads and a reload that keeps a name keeps its slot.
pub struct CoreHistograms {
    connect: Family,
    duration: Family,
    request: Family,
}

impl Default for CoreHistograms {
    fn default() -> Self {
        Self::new()
    }
}

impl CoreHistograms {
    /// No slots yet; nothing is allocated until a slot is resolved.
    pub fn new() -> Self {
        CoreHistograms {
            connect: Family::default(),
            duration: Family::default(),
            request: Family::default(),
        }
    }

    /// The slot for upstream connect latency of `pool`, created on first use.
    /// Call when building a view, not per connection (creating a slot allocates).
    pub fn pool_slot(&mut self, pool: &str) -> usize {
        self.connect.slot(pool)
    }

    /// The slot for connection durations of `listener`, created on first use.
    /// Call when building a view, not per connection (creating a slot allocates).
    pub fn listener_slot(&mut self, listener: &str) -> usize {
        self.duration.slot(listener)
    }

    /// The slot for HTTP request durations of `listener`, created on first use. Separate
    /// from [`listener_slot`](Self::listener_slot) so that plain TCP listeners, which
    /// never record requests, do not carry an unused histogram.
    pub fn request_slot(&mut self, listener: &str) -> usize {
        self.request.slot(listener)
    }

    /// Record an upstream connect latency. Unknown slots are ignored.
    #[inline]
    pub fn record_connect(&mut self, pool_slot: usize, micros: u64) {
        self.connect.record(pool_slot, micros);
    }

    /// Record the duration of a finished client connection. Unknown slots are ignored.
    #[inline]
    pub fn record_duration(&mut self, listener_slot: usize, micros: u64) {
        self.duration.record(listener_slot, micros);
    }

    /// Record the duration of one HTTP request. Unknown slots are ignored.
    #[inline]
    pub fn record_request(&mut self, request_slot: usize, micros: u64) {
        self.request.record(request_slot, micros);
    }

    /// Take everything recorded since the last take, leaving empty histograms in the same
    /// slots. Only slots that recorded something are shipped (and replaced), so an idle
    /// core allocates nothing here.
    pub fn take(&mut self) -> HistogramBatch {
        let mut entries = Vec::new();
        self.connect
            .take_into(HistogramKind::UpstreamConnect, &mut entries);
        self.duration
            .take_into(HistogramKind::ConnectionDuration, &mut entries);
        self.request
            .take_into(HistogramKind::RequestDuration, &mut entries);
        HistogramBatch { entries }
    }
}

/// One histogram of a batch with its kind, name and exact sum.
pub(crate) struct BatchEntry {
    pub(crate) kind: HistogramKind,
    pub(crate) name: Arc<str>,
    pub(crate) hist: Histogram<u64>,
    pub(crate) sum_micros: u64,
}

/// Histograms recorded by one core over one period, on their way to the control thread.
///
/// Holds (kind, name, histogram) triples: connect latency by pool name, connection and
/// request durations by listener name. It is `Send` and contains no shared mutable state.
pub struct HistogramBatch {
    pub(crate) entries: Vec<BatchEntry>,
}

impl HistogramBatch {
    /// True when nothing was recorded in the period (the worker may skip sending it).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of histograms in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The histograms in the batch, for inspection: kind, name and histogram (microseconds).
    pub fn iter(&self) -> impl Iterator<Item = (HistogramKind, &str, &Histogram<u64>)> + '_ {
        self.entries.iter().map(|e| (e.kind, &*e.name, &e.hist))
    }
}

/// A histogram merged from many batches, plus the exact sum of its values.
pub(crate) struct Merged {
    pub(crate) hist: Histogram<u64>,
    pub(crate) sum_micros: u64,
}

impl Merged {
    pub(crate) fn new() -> Self {
        Merged {
            hist: new_histogram(),
            sum_micros: 0,
        }
    }

    pub(crate) fn add(&mut self, hist: &Histogram<u64>, sum_micros: u64) {
        if self.hist.add(hist).is_err() {
            // Only reachable if a batch histogram was built with other bounds than
            // `new_histogram`'s; re-record its values (clamped) instead of losing them.
            for v in hist.iter_recorded() {
                self.hist
                    .saturating_record_n(v.value_iterated_to(), v.count_since_last_iteration());
            }
        }
        self.sum_micros = self.sum_micros.saturating_add(sum_micros);
    }

    /// Cumulative counts for each bound of [`BUCKETS`]; `+Inf` is `hist.len()`.
    pub(crate) fn cumulative_buckets(&self) -> [u64; BUCKETS.len()] {
        let mut counts = [0u64; BUCKETS.len()];
        // One pass over the non-empty bins instead of one `count_between` per bound.
        for v in self.hist.iter_recorded() {
            // A bin holding `bound` is counted as `<= bound`: the bin's lowest value
            // decides. The error is within the histogram's 0.1% precision.
            let low = self.hist.lowest_equivalent(v.value_iterated_to());
            if let Some(i) = BUCKETS.iter().position(|&(bound, _)| low <= bound) {
                counts[i] = counts[i].saturating_add(v.count_since_last_iteration());
            }
        }
        let mut running = 0u64;
        for c in &mut counts {
            running = running.saturating_add(*c);
            *c = running;
        }
        counts
    }
}

/// Write a whole number of microseconds as decimal seconds, exactly and without exponent
/// (`1500000` -> `1.5`, `1` -> `0.000001`, `0` -> `0`). Valid in both Prometheus text and JSON.
pub(crate) fn write_seconds(out: &mut String, micros: u64) {
    let whole = micros / 1_000_000;
    let frac = micros % 1_000_000;
    if frac == 0 {
        let _ = write!(out, "{whole}");
        return;
    }
    let digits = format!("{frac:06}");
    let _ = write!(out, "{whole}.{}", digits.trim_end_matches('0'));
}

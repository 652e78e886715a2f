//! Rendering of a registry snapshot as Prometheus text and as `/stats` JSON.
//!
//! Both formats are written by hand: the registry knows exactly which families exist, and
//! pulling in a serializer for two fixed shapes would cost more than the escaping rules.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use super::histograms::{write_seconds, HistogramKind, Merged, BUCKETS};
use super::{status_of_index, BackendStatus, Inner, STATUS_SLOTS};

/// Registry-wide counters that live outside the mutex.
pub(super) struct Globals {
    pub(super) reloads_ok: u64,
    pub(super) reloads_failed: u64,
    pub(super) health_events_dropped: u64,
    pub(super) access_log_dropped: u64,
}

/// Add one core's counter to a sum. Wrapping, like the counters themselves: a counter
/// that wrapped is still monotonic modulo 2^64, which is what rate() expects.
fn add(sum: &mut u64, counter: &std::sync::atomic::AtomicU64) {
    *sum = sum.wrapping_add(counter.load(Ordering::Relaxed));
}

/// Add one core's gauge to a sum. Wrapping so that a scrape racing with updates can never
/// panic on overflow in a debug build.
fn add_signed(sum: &mut i64, gauge: &std::sync::atomic::AtomicI64) {
    *sum = sum.wrapping_add(gauge.load(Ordering::Relaxed));
}

/// A listener's counters summed over cores.
#[derive(Default)]
struct ListenerSums {
    connections_total: u64,
    active_connections: i64,
    bytes_in: u64,
    bytes_out: u64,
    refused_total: u64,
    proxy_protocol_rejected_total: u64,
    rate_limited_total: u64,
    tls_handshakes_total: u64,
    tls_handshake_failures: [u64; super::TLS_FAILURE_REASONS.len()],
}

/// A backend's counters summed over cores.
#[derive(Default)]
struct BackendSums {
    connections_total: u64,
    connect_failures_total: u64,
    active_connections: i64,
}

/// A route's response counts summed over cores: (counter index, count) for the non-zero
/// counters only, in index order, which is ascending status code with `other` last.
type RouteSums = Vec<(usize, u64)>;

#[derive(Default)]
struct ListenerRow<'a> {
    sums: ListenerSums,
    duration: Option<&'a Merged>,
    request: Option<&'a Merged>,
    /// Route label -> response counts, for every route registered on the listener.
    requests: BTreeMap<&'a str, RouteSums>,
}

/// The `code` label (and `/stats` key) of a counter index: the status code, or `other`.
fn code_label(index: usize) -> String {
    status_of_index(index).map_or_else(|| "other".to_owned(), |status| status.to_string())
}

#[derive(Default)]
struct BackendRow<'a> {
    /// `None` when a worker registered the backend but the control thread's view does not
    /// list it (e.g. removed by a reload while connections to it still run).
    status: Option<&'a BackendStatus>,
    sums: BackendSums,
}

#[derive(Default)]
struct PoolRow<'a> {
    connect: Option<&'a Merged>,
    backends: BTreeMap<SocketAddr, BackendRow<'a>>,
}

/// Everything a render needs, summed and joined, borrowing from the locked registry.
pub(super) struct Snapshot<'a> {
    listeners: BTreeMap<&'a str, ListenerRow<'a>>,
    pools: BTreeMap<&'a str, PoolRow<'a>>,
    globals: Globals,
}

impl<'a> Snapshot<'a> {
    /// Join registered stats, merged histograms and the control thread's backend view.
    /// A name known from any of them is rendered, with zeros for what the others lack,
    /// so that series exist from the moment a listener or backend is configured.
    pub(super) fn collect(
        inner: &'a Inner,
        statuses: &'a [BackendStatus],
        globals: Globals,
    ) -> Snapshot<'a> {
        let mut listeners: BTreeMap<&str, ListenerRow> = BTreeMap::new();
        for (name, per_core) in &inner.listeners {
            let s = &mut listeners.entry(name.as_str()).or_default().sums;
            for stats in per_core.values() {
                add(&mut s.connections_total, &stats.connections_total);
                add_signed(&mut s.active_connections, &stats.active_connections);
                add(&mut s.bytes_in, &stats.bytes_in);
                add(&mut s.bytes_out, &stats.bytes_out);
                add(&mut s.refused_total, &stats.refused_total);
                add(
                    &mut s.proxy_protocol_rejected_total,
                    &stats.proxy_protocol_rejected_total,
                );
                add(&mut s.rate_limited_total, &stats.rate_limited_total);
                add(&mut s.tls_handshakes_total, &stats.tls_handshakes_total);
                for (sum, counter) in s
                    .tls_handshake_failures
                    .iter_mut()
                    .zip(&stats.tls_handshake_failures)
                {
                    add(sum, counter);
                }
            }
        }

        for (listener, routes) in &inner.routes {
            let row = listeners.entry(listener.as_str()).or_default();
            for (route, per_core) in routes {
                let mut sums = [0u64; STATUS_SLOTS + 1];
                for stats in per_core.values() {
                    for (sum, counter) in sums.iter_mut().zip(&stats.by_status) {
                        add(sum, counter);
                    }
                }
                let nonzero = sums
                    .iter()
                    .enumerate()
                    .filter(|&(_, &n)| n != 0)
                    .map(|(index, &n)| (index, n))
                    .collect();
                row.requests.insert(route.as_str(), nonzero);
            }
        }

        let mut pools: BTreeMap<&str, PoolRow> = BTreeMap::new();
        for (pool, addrs) in &inner.backends {
            let row = pools.entry(pool.as_str()).or_default();
            for (addr, per_core) in addrs {
                let s = &mut row.backends.entry(*addr).or_default().sums;
                for stats in per_core.values() {
                    add(&mut s.connections_total, &stats.connections_total);
                    add(&mut s.connect_failures_total, &stats.connect_failures_total);
                    add_signed(&mut s.active_connections, &stats.active_connections);
                }
            }
        }
        for status in statuses {
            let backend = pools
                .entry(status.pool.as_str())
                .or_default()
                .backends
                .entry(status.addr)
                .or_default();
            // A duplicate entry would produce a duplicate Prometheus series; first wins.
            if backend.status.is_none() {
                backend.status = Some(status);
            }
        }

        for ((kind, name), merged) in &inner.histograms {
            match kind {
                HistogramKind::UpstreamConnect => {
                    pools.entry(name.as_str()).or_default().connect = Some(merged);
                }
                HistogramKind::ConnectionDuration => {
                    listeners.entry(name.as_str()).or_default().duration = Some(merged);
                }
                HistogramKind::RequestDuration => {
                    listeners.entry(name.as_str()).or_default().request = Some(merged);
                }
            }
        }

        Snapshot {
            listeners,
            pools,
            globals,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Prometheus text format 0.0.4
// ---------------------------------------------------------------------------------------

/// Write `# HELP` and `# TYPE` for a family. Every family is announced exactly once, even
/// when it has no samples yet, which the format allows and which keeps scrapes uniform.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Append a label value escaped as the text format requires: `\` `"` and newline.
fn escape_label_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn labels(out: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        escape_label_into(out, v);
        out.push('"');
    }
    out.push('}');
}

fn sample(out: &mut String, name: &str, label_set: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    labels(out, label_set);
    let _ = writeln!(out, " {value}");
}

/// Write the `_bucket`, `_sum` and `_count` series of one histogram; `None` renders an
/// empty histogram (all zeros) so the series exist before the first observation.
fn histogram(out: &mut String, name: &str, label: (&str, &str), merged: Option<&Merged>) {
    let (cumulative, count, sum) = match merged {
        Some(m) => (m.cumulative_buckets(), m.hist.len(), m.sum_micros),
        None => ([0; BUCKETS.len()], 0, 0),
    };
    let bucket = format!("{name}_bucket");
    for ((_, le), c) in BUCKETS.iter().zip(cumulative) {
        sample(out, &bucket, &[label, ("le", le)], c);
    }
    // `+Inf` is the total count by definition, including values above the last bound
    // and values clamped at the histogram's one-hour ceiling.
    sample(out, &bucket, &[label, ("le", "+Inf")], count);
    out.push_str(name);
    out.push_str("_sum");
    labels(out, &[label]);
    out.push(' ');
    write_seconds(out, sum);
    out.push('\n');
    sample(out, &format!("{name}_count"), &[label], count);
}

pub(super) fn prometheus(snap: &Snapshot<'_>) -> String {
    let mut out = String::with_capacity(4096);
    let listeners = &snap.listeners;

    family(
        &mut out,
        "ringway_connections_total",
        "counter",
        "Client connections accepted.",
    );
    for (name, row) in listeners {
        sample(
            &mut out,
            "ringway_connections_total",
            &[("listener", name)],
            row.sums.connections_total,
        );
    }
    family(
        &mut out,
        "ringway_active_connections",
        "gauge",
        "Client connections currently open.",
    );
    for (name, row) in listeners {
        sample(
            &mut out,
            "ringway_active_connections",
            &[("listener", name)],
            row.sums.active_connections,
        );
    }
    family(
        &mut out,
        "ringway_bytes_total",
        "counter",
        "Bytes relayed: in is client to backend, out is backend to client.",
    );
    for (name, row) in listeners {
        for (direction, value) in [("in", row.sums.bytes_in), ("out", row.sums.bytes_out)] {
            sample(
                &mut out,
                "ringway_bytes_total",
                &[("listener", name), ("direction", direction)],
                value,
            );
        }
    }
    family(
        &mut out,
        "ringway_refused_connections_total",
        "counter",
        "Client connections closed because no backend was usable or answered.",
    );
    for (name, row) in listeners {
        sample(
            &mut out,
            "ringway_refused_connections_total",
            &[("listener", name)],
            row.sums.refused_total,
        );
    }
    family(
        &mut out,
        "ringway_proxy_protocol_rejected_total",
        "counter",
        "Client connections closed for a missing or malformed PROXY protocol header.",
    );
    for (name, row) in listeners {
        sample(
            &mut out,
            "ringway_proxy_protocol_rejected_total",
            &[("listener", name)],
            row.sums.proxy_protocol_rejected_total,
        );
    }
    family(
        &mut out,
        "ringway_rate_limited_total",
        "counter",
        "Client connections closed or datagrams dropped over the per-IP rate limit.",
    );
    for (name, row) in listeners {
        sample(
            &mut out,
            "ringway_rate_limited_total",
            &[("listener", name)],
            row.sums.rate_limited_total,
        );
    }
    family(
        &mut out,
        "ringway_tls_handshakes_total",
        "counter",
        "TLS handshakes completed with clients.",
    );
    for (name, row) in listeners {
        sample(
            &mut out,
            "ringway_tls_handshakes_total",
            &[("listener", name)],
            row.sums.tls_handshakes_total,
        );
    }
    family(
        &mut out,
        "ringway_tls_handshake_failures_total",
        "counter",
        "TLS handshakes with clients that failed, by reason (only reasons seen are listed).",
    );
    for (name, row) in listeners {
        let failures = super::TLS_FAILURE_REASONS
            .iter()
            .zip(row.sums.tls_handshake_failures);
        for (reason, n) in failures.filter(|&(_, n)| n > 0) {
            sample(
                &mut out,
                "ringway_tls_handshake_failures_total",
                &[("listener", name), ("reason", reason)],
                n,
            );
        }
    }
    family(
        &mut out,
        "ringway_connection_duration_seconds",
        "histogram",
        "Lifetime of client connections.",
    );
    for (name, row) in listeners {
        histogram(
            &mut out,
            "ringway_connection_duration_seconds",
            ("listener", name),
            row.duration,
        );
    }
    family(
        &mut out,
        "ringway_request_duration_seconds",
        "histogram",
        "Time to serve one HTTP request.",
    );
    // Only listeners that ever recorded a request: plain TCP listeners have none, and an
    // all-zero request histogram for them would suggest otherwise.
    for (name, row) in listeners {
        if let Some(m) = row.request {
            histogram(
                &mut out,
                "ringway_request_duration_seconds",
                ("listener", name),
                Some(m),
            );
        }
    }
    family(
        &mut out,
        "ringway_http_requests_total",
        "counter",
        "HTTP responses sent, by listener, route (none: no route matched) and status code.",
    );
    // Only non-zero counts: 501 possible codes per route would otherwise flood the
    // scrape with series that never move. A series appearing at its first response is
    // what Prometheus expects of labelled counters.
    for (name, row) in listeners {
        for (route, codes) in &row.requests {
            for &(index, n) in codes {
                sample(
                    &mut out,
                    "ringway_http_requests_total",
                    &[
                        ("listener", name),
                        ("route", route),
                        ("code", &code_label(index)),
                    ],
                    n,
                );
            }
        }
    }

    family(
        &mut out,
        "ringway_backend_up",
        "gauge",
        "Whether the backend is up (1) or down, draining or ejected (0).",
    );
    let backends = || {
        snap.pools.iter().flat_map(|(pool, row)| {
            row.backends
                .iter()
                .map(move |(addr, b)| (*pool, addr.to_string(), b))
        })
    };
    for (pool, addr, b) in backends() {
        // Only backends in the control thread's view have a state to report.
        if let Some(status) = b.status {
            let up = u8::from(status.state == "up");
            sample(
                &mut out,
                "ringway_backend_up",
                &[("pool", pool), ("backend", &addr)],
                up,
            );
        }
    }
    family(
        &mut out,
        "ringway_backend_connections_total",
        "counter",
        "Upstream connections established.",
    );
    for (pool, addr, b) in backends() {
        sample(
            &mut out,
            "ringway_backend_connections_total",
            &[("pool", pool), ("backend", &addr)],
            b.sums.connections_total,
        );
    }
    family(
        &mut out,
        "ringway_backend_connect_failures_total",
        "counter",
        "Upstream connection attempts that failed.",
    );
    for (pool, addr, b) in backends() {
        sample(
            &mut out,
            "ringway_backend_connect_failures_total",
            &[("pool", pool), ("backend", &addr)],
            b.sums.connect_failures_total,
        );
    }
    family(
        &mut out,
        "ringway_backend_active_connections",
        "gauge",
        "Upstream connections currently open.",
    );
    for (pool, addr, b) in backends() {
        sample(
            &mut out,
            "ringway_backend_active_connections",
            &[("pool", pool), ("backend", &addr)],
            b.sums.active_connections,
        );
    }
    family(
        &mut out,
        "ringway_upstream_connect_seconds",
        "histogram",
        "Time to establish upstream connections.",
    );
    for (pool, row) in &snap.pools {
        histogram(
            &mut out,
            "ringway_upstream_connect_seconds",
            ("pool", pool),
            row.connect,
        );
    }

    family(
        &mut out,
        "ringway_config_reloads_total",
        "counter",
        "Configuration reload attempts by result.",
    );
    sample(
        &mut out,
        "ringway_config_reloads_total",
        &[("result", "success")],
        snap.globals.reloads_ok,
    );
    sample(
        &mut out,
        "ringway_config_reloads_total",
        &[("result", "failure")],
        snap.globals.reloads_failed,
    );
    family(
        &mut out,
        "ringway_health_events_dropped_total",
        "counter",
        "Health events dropped because the control thread's queue was full.",
    );
    sample(
        &mut out,
        "ringway_health_events_dropped_total",
        &[],
        snap.globals.health_events_dropped,
    );
    family(
        &mut out,
        "ringway_access_log_dropped_batches_total",
        "counter",
        "Access log batches lost because the writer fell behind or could not write.",
    );
    sample(
        &mut out,
        "ringway_access_log_dropped_batches_total",
        &[],
        snap.globals.access_log_dropped,
    );
    out
}

// ---------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------

/// Append `s` as a JSON string literal (RFC 8259: quote, backslash and all control
/// characters escaped; everything else is valid UTF-8 already).
pub(crate) fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Quantiles reported in `/stats`, with their JSON keys.
const QUANTILES: [(f64, &str); 4] = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p999")];

/// `{"count":N,"sum":S,"p50":..,"p90":..,"p99":..,"p999":..}` in seconds; quantiles are
/// `null` while nothing has been recorded (0 would read as "instant").
fn json_summary(out: &mut String, merged: Option<&Merged>) {
    let count = merged.map_or(0, |m| m.hist.len());
    let _ = write!(out, "{{\"count\":{count},\"sum\":");
    write_seconds(out, merged.map_or(0, |m| m.sum_micros));
    for (q, key) in QUANTILES {
        let _ = write!(out, ",\"{key}\":");
        match merged {
            Some(m) if count > 0 => write_seconds(out, m.hist.value_at_quantile(q)),
            _ => out.push_str("null"),
        }
    }
    out.push('}');
}

pub(super) fn json(snap: &Snapshot<'_>) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str("{\"listeners\":[");
    for (i, (name, row)) in snap.listeners.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_string(&mut out, name);
        let s = &row.sums;
        let _ = write!(
            out,
            ",\"connections_total\":{},\"active_connections\":{},\"bytes_in\":{},\
             \"bytes_out\":{},\"refused_total\":{},\"proxy_protocol_rejected_total\":{},\
             \"rate_limited_total\":{},\"connection_duration_seconds\":",
            s.connections_total,
            s.active_connections,
            s.bytes_in,
            s.bytes_out,
            s.refused_total,
            s.proxy_protocol_rejected_total,
            s.rate_limited_total
        );
        json_summary(&mut out, row.duration);
        out.push_str(",\"request_duration_seconds\":");
        json_summary(&mut out, row.request);
        // Every registered route, even with nothing counted yet (`{}`), so that the
        // object shows which routes exist; codes only where the count is non-zero, as in
        // the Prometheus output.
        out.push_str(",\"requests\":{");
        for (j, (route, codes)) in row.requests.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            json_string(&mut out, route);
            out.push_str(":{");
            for (k, &(index, n)) in codes.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                json_string(&mut out, &code_label(index));
                let _ = write!(out, ":{n}");
            }
            out.push('}');
        }
        out.push_str("}}");
    }
    out.push_str("],\"pools\":[");
    for (i, (name, row)) in snap.pools.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_string(&mut out, name);
        out.push_str(",\"upstream_connect_seconds\":");
        json_summary(&mut out, row.connect);
        out.push_str(",\"backends\":[");
        for (j, (addr, b)) in row.backends.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"addr\":");
            json_string(&mut out, &addr.to_string());
            out.push_str(",\"state\":");
            match b.status {
                Some(st) => {
                    json_string(&mut out, st.state);
                    let _ = write!(out, ",\"weight\":{}", st.weight);
                }
                None => out.push_str("null,\"weight\":null"),
            }
            let _ = write!(
                out,
                ",\"connections_total\":{},\"connect_failures_total\":{},\
                 \"active_connections\":{}}}",
                b.sums.connections_total, b.sums.connect_failures_total, b.sums.active_connections
            );
        }
        out.push_str("]}");
    }
    let g = &snap.globals;
    let _ = write!(
        out,
        "],\"config_reloads\":{{\"success\":{},\"failure\":{}}},\"health_events_dropped\":{}}}",
        g.reloads_ok, g.reloads_failed, g.health_events_dropped
    );
    out
}

// Test tables spell their row types out in full; aliases would hide what a row holds.
#![allow(clippy::type_complexity)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::histograms::{write_seconds, Merged, BUCKETS};
use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn status(pool: &str, a: &str, state: &'static str, weight: u32) -> BackendStatus {
    BackendStatus {
        pool: pool.to_string(),
        addr: addr(a),
        state,
        weight,
    }
}

// ---------------------------------------------------------------------------------------
// A small Prometheus text-format reader, strict enough to catch malformed output.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: String,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct Exposition {
    /// family name -> (help count, type, type count)
    help: BTreeMap<String, usize>,
    types: BTreeMap<String, (String, usize)>,
    samples: Vec<Sample>,
}

/// The family a sample belongs to, given the declared types.
fn family_of(name: &str, types: &BTreeMap<String, (String, usize)>) -> Option<String> {
    if types.contains_key(name) {
        return Some(name.to_string());
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).map(|(t, _)| t.as_str()) == Some("histogram") {
                return Some(base.to_string());
            }
        }
    }
    None
}

fn parse_exposition(text: &str) -> Exposition {
    assert!(text.ends_with('\n'), "exposition must end with a newline");
    let mut exp = Exposition::default();
    let mut seen_families: Vec<String> = Vec::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "blank line in exposition");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has text");
            assert!(!help.is_empty());
            *exp.help.entry(name.to_string()).or_default() += 1;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("TYPE has a type");
            assert!(["counter", "gauge", "histogram"].contains(&ty), "type {ty}");
            let e = exp
                .types
                .entry(name.to_string())
                .or_insert((ty.to_string(), 0));
            e.1 += 1;
            // Family samples must be contiguous: a TYPE line after the family's samples
            // started elsewhere would split it.
            assert!(
                !seen_families.contains(&name.to_string()),
                "family {name} declared after its samples"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let s = parse_sample(line);
        let fam = family_of(&s.name, &exp.types)
            .unwrap_or_else(|| panic!("sample {} has no TYPE before it", s.name));
        if seen_families.last() != Some(&fam) {
            assert!(
                !seen_families.contains(&fam),
                "samples of {fam} are not contiguous"
            );
            seen_families.push(fam);
        }
        exp.samples.push(s);
    }
    exp
}

fn parse_sample(line: &str) -> Sample {
    let bytes: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut name = String::new();
    while i < bytes.len()
        && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '_' || bytes[i] == ':')
    {
        name.push(bytes[i]);
        i += 1;
    }
    assert!(!name.is_empty(), "no metric name in {line:?}");
    let mut labels = Vec::new();
    if bytes.get(i) == Some(&'{') {
        i += 1;
        loop {
            let mut key = String::new();
            while bytes[i] != '=' {
                assert!(bytes[i].is_ascii_alphanumeric() || bytes[i] == '_');
                key.push(bytes[i]);
                i += 1;
            }
            i += 1;
            assert_eq!(bytes[i], '"', "label value must be quoted in {line:?}");
            i += 1;
            let mut value = String::new();
            loop {
                match bytes[i] {
                    '\\' => {
                        i += 1;
                        match bytes[i] {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            c => panic!("bad escape \\{c} in {line:?}"),
                        }
                    }
                    '"' => break,
                    '\n' => panic!("raw newline in label"),
                    c => value.push(c),
                }
                i += 1;
            }
            i += 1;
            assert!(
                !labels.iter().any(|(k, _): &(String, String)| *k == key),
                "duplicate label {key}"
            );
            labels.push((key, value));
            match bytes[i] {
                ',' => i += 1,
                '}' => {
                    i += 1;
                    break;
                }
                c => panic!("unexpected {c:?} in labels of {line:?}"),
            }
        }
    }
    assert_eq!(
        bytes.get(i),
        Some(&' '),
        "one space before the value in {line:?}"
    );
    let value: String = bytes[i + 1..].iter().collect();
    assert!(
        value.parse::<f64>().is_ok() || value == "+Inf",
        "bad value {value:?}"
    );
    Sample {
        name,
        labels,
        value,
    }
}

/// Check what every exposition must satisfy: HELP and TYPE exactly once per family, and
/// each histogram's buckets cumulative with `+Inf == _count`. Returns the parse.
fn check_exposition(text: &str) -> Exposition {
    let exp = parse_exposition(text);
    for (name, (ty, n)) in &exp.types {
        assert_eq!(*n, 1, "TYPE of {name} appears {n} times");
        assert_eq!(exp.help.get(name), Some(&1), "HELP of {name} ({ty})");
    }
    for name in exp.help.keys() {
        assert!(exp.types.contains_key(name), "HELP without TYPE: {name}");
    }
    // No duplicate series.
    let mut series: Vec<(&str, &Vec<(String, String)>)> = exp
        .samples
        .iter()
        .map(|s| (s.name.as_str(), &s.labels))
        .collect();
    series.sort();
    let before = series.len();
    series.dedup();
    assert_eq!(before, series.len(), "duplicate series");

    for (name, (ty, _)) in &exp.types {
        if ty != "histogram" {
            continue;
        }
        let bucket_name = format!("{name}_bucket");
        // Group buckets by their labels minus `le`.
        let mut groups: BTreeMap<Vec<(String, String)>, Vec<(String, u64)>> = BTreeMap::new();
        for s in exp.samples.iter().filter(|s| s.name == bucket_name) {
            let rest: Vec<_> = s
                .labels
                .iter()
                .filter(|(k, _)| k != "le")
                .cloned()
                .collect();
            let le = s.label("le").expect("bucket has le").to_string();
            groups
                .entry(rest)
                .or_default()
                .push((le, s.value.parse().unwrap()));
        }
        for (group, buckets) in groups {
            let les: Vec<&str> = buckets.iter().map(|(le, _)| le.as_str()).collect();
            let mut want: Vec<&str> = BUCKETS.iter().map(|(_, le)| *le).collect();
            want.push("+Inf");
            assert_eq!(les, want, "bucket bounds of {name}{group:?}");
            let mut prev_bound = 0.0f64;
            for (le, _) in &buckets[..buckets.len() - 1] {
                let b: f64 = le.parse().unwrap();
                assert!(b > prev_bound, "bounds ascending");
                prev_bound = b;
            }
            for w in buckets.windows(2) {
                assert!(w[0].1 <= w[1].1, "{name}{group:?} buckets not cumulative");
            }
            let count = exp
                .samples
                .iter()
                .find(|s| s.name == format!("{name}_count") && s.labels == group)
                .expect("_count present");
            let inf = buckets.last().unwrap().1;
            assert_eq!(count.value.parse::<u64>().unwrap(), inf, "+Inf != _count");
            assert!(
                exp.samples
                    .iter()
                    .any(|s| s.name == format!("{name}_sum") && s.labels == group),
                "_sum present"
            );
        }
    }
    exp
}

fn value_of(exp: &Exposition, name: &str, labels: &[(&str, &str)]) -> Option<String> {
    exp.samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.label(k) == Some(v))
        })
        .map(|s| s.value.clone())
}

// ---------------------------------------------------------------------------------------
// A small JSON parser, to check `/stats` structurally rather than by string matching.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(fields) => {
                let matches: Vec<_> = fields.iter().filter(|(k, _)| k == key).collect();
                assert_eq!(matches.len(), 1, "key {key:?} must appear once in {self:?}");
                &matches[0].1
            }
            other => panic!("not an object: {other:?}"),
        }
    }
    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            other => panic!("not an array: {other:?}"),
        }
    }
    fn num(&self) -> f64 {
        match self {
            Json::Num(n) => *n,
            other => panic!("not a number: {other:?}"),
        }
    }
    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }
    /// The element of an array of objects whose `key` is the string `value`.
    fn find(&self, key: &str, value: &str) -> &Json {
        self.arr()
            .iter()
            .find(|o| o.get(key).str() == value)
            .unwrap_or_else(|| panic!("no element with {key}={value:?}"))
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

fn parse_json(text: &str) -> Json {
    let mut p = JsonParser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value();
    p.ws();
    assert_eq!(p.i, p.s.len(), "trailing data after JSON value");
    v
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && b" \t\r\n".contains(&self.s[self.i]) {
            self.i += 1;
        }
    }
    fn eat(&mut self, b: u8) {
        self.ws();
        assert_eq!(
            self.s.get(self.i),
            Some(&b),
            "expected {:?} at {}",
            b as char,
            self.i
        );
        self.i += 1;
    }
    fn lit(&mut self, word: &str, v: Json) -> Json {
        assert!(self.s[self.i..].starts_with(word.as_bytes()));
        self.i += word.len();
        v
    }
    fn value(&mut self) -> Json {
        self.ws();
        match self.s[self.i] {
            b'{' => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s[self.i] == b'}' {
                    self.i += 1;
                    return Json::Obj(fields);
                }
                loop {
                    self.ws();
                    let k = self.string();
                    self.eat(b':');
                    let v = self.value();
                    fields.push((k, v));
                    self.ws();
                    match self.s[self.i] {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Json::Obj(fields);
                        }
                        c => panic!("unexpected {:?} in object", c as char),
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s[self.i] == b']' {
                    self.i += 1;
                    return Json::Arr(items);
                }
                loop {
                    items.push(self.value());
                    self.ws();
                    match self.s[self.i] {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Json::Arr(items);
                        }
                        c => panic!("unexpected {:?} in array", c as char),
                    }
                }
            }
            b'"' => Json::Str(self.string()),
            b'n' => self.lit("null", Json::Null),
            b't' => self.lit("true", Json::Bool(true)),
            b'f' => self.lit("false", Json::Bool(false)),
            _ => {
                let start = self.i;
                while self.i < self.s.len() && b"-+.eE0123456789".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                // JSON forbids leading zeros, a leading '+' or a bare '.'.
                let digits = text.trim_start_matches('-');
                assert!(
                    !digits.starts_with('.') && !digits.starts_with('+'),
                    "bad number {text}"
                );
                assert!(
                    !(digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.")),
                    "leading zero in {text}"
                );
                Json::Num(text.parse().unwrap_or_else(|_| panic!("bad number {text}")))
            }
        }
    }
    fn string(&mut self) -> String {
        assert_eq!(self.s[self.i], b'"');
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = self.s[self.i];
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.s[self.i];
                    self.i += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
                            self.i += 4;
                            let cp = u32::from_str_radix(hex, 16).unwrap();
                            let ch = char::from_u32(cp).expect("no surrogates expected");
                            let mut buf = [0; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        e => panic!("bad escape {:?}", e as char),
                    }
                }
                c if c < 0x20 => panic!("raw control character in JSON string"),
                c => out.push(c),
            }
        }
        String::from_utf8(out).unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------

#[test]
fn registration_returns_the_same_arc_per_core_and_name() {
    let reg = Registry::new();
    let a = reg.listener(0, "web");
    let b = reg.listener(0, "web");
    let other_core = reg.listener(1, "web");
    let other_name = reg.listener(0, "api");
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &other_core));
    assert!(!Arc::ptr_eq(&a, &other_name));

    let p = addr("10.0.0.1:80");
    let q = addr("10.0.0.2:80");
    let x = reg.backend(0, "pool", p);
    assert!(Arc::ptr_eq(&x, &reg.backend(0, "pool", p)));
    assert!(!Arc::ptr_eq(&x, &reg.backend(1, "pool", p)));
    assert!(!Arc::ptr_eq(&x, &reg.backend(0, "pool", q)));
    assert!(!Arc::ptr_eq(&x, &reg.backend(0, "other", p)));

    // Counters written through one handle are visible through the other, i.e. a reload
    // that re-registers keeps counting where it left off.
    a.connections_total.fetch_add(5, Relaxed);
    assert_eq!(b.connections_total.load(Relaxed), 5);
}

#[test]
fn stats_objects_do_not_share_cache_lines() {
    assert!(std::mem::align_of::<ListenerStats>() >= 128);
    assert!(std::mem::align_of::<BackendStats>() >= 128);
    let reg = Registry::new();
    let a = reg.listener(0, "web");
    let b = reg.listener(1, "web");
    let (pa, pb) = (Arc::as_ptr(&a) as usize, Arc::as_ptr(&b) as usize);
    assert!(pa.abs_diff(pb) >= 128);
}

#[test]
fn prune_forgets_only_objects_no_worker_holds() {
    let reg = Registry::new();
    let kept = reg.listener(0, "kept");
    let dropped = reg.listener(0, "gone");
    let half = reg.listener(0, "half");
    drop(reg.listener(1, "half")); // core 1 no longer uses it, core 0 still does
    let be = reg.backend(0, "pool", addr("10.0.0.1:80"));
    drop(reg.backend(0, "pool", addr("10.0.0.2:80")));
    drop(reg.backend(0, "empty", addr("10.0.0.3:80")));
    let mut h = CoreHistograms::new();
    let gone_slot = h.listener_slot("gone");
    let empty_slot = h.pool_slot("empty");
    h.record_duration(gone_slot, 1);
    h.record_connect(empty_slot, 1);
    reg.merge(h.take());
    drop(dropped);

    assert_eq!(reg.prune(), 3);
    let text = reg.render_prometheus(&[]);
    assert!(text.contains("ringway_connections_total{listener=\"kept\"} 0"));
    assert!(text.contains("ringway_connections_total{listener=\"half\"} 0"));
    assert!(!text.contains("\"gone\""), "{text}");
    assert!(text.contains("backend=\"10.0.0.1:80\""));
    assert!(!text.contains("10.0.0.2:80"));
    assert!(!text.contains("\"empty\""), "{text}");
    assert_eq!(reg.prune(), 0);
    drop((kept, half, be));
}

// ---------------------------------------------------------------------------------------
// Histograms
// ---------------------------------------------------------------------------------------

#[test]
fn histogram_bounds_are_valid() {
    let h = new_histogram();
    assert_eq!(h.low(), LOWEST_MICROS);
    assert!(h.high() >= HIGHEST_MICROS);
    assert_eq!(h.sigfig(), SIGNIFICANT_FIGURES);
}

#[test]
fn batches_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<HistogramBatch>();
    assert_send::<Registry>();
    fn assert_sync<T: Sync>() {}
    assert_sync::<Registry>();
}

#[test]
fn slots_are_stable_per_name() {
    let mut h = CoreHistograms::new();
    let a = h.pool_slot("a");
    let b = h.pool_slot("b");
    assert_ne!(a, b);
    assert_eq!(h.pool_slot("a"), a);
    // Families are separate namespaces: a listener named like a pool is its own slot.
    let l = h.listener_slot("a");
    assert_eq!(h.listener_slot("a"), l);
    let r = h.request_slot("a");
    assert_eq!(h.request_slot("a"), r);
}

#[test]
fn take_resets_and_keeps_slots() {
    let mut h = CoreHistograms::new();
    let pool = h.pool_slot("api");
    let web = h.listener_slot("web");
    let idle = h.listener_slot("idle");
    h.record_connect(pool, 150);
    h.record_connect(pool, 250);
    h.record_duration(web, 1_000_000);

    let batch = h.take();
    assert_eq!(batch.len(), 2, "idle slots ship nothing");
    let entries: Vec<_> = batch
        .iter()
        .map(|(k, n, h)| (k, n.to_string(), h.len()))
        .collect();
    assert_eq!(
        entries,
        vec![
            (HistogramKind::UpstreamConnect, "api".to_string(), 2),
            (HistogramKind::ConnectionDuration, "web".to_string(), 1),
        ]
    );

    let again = h.take();
    assert!(again.is_empty(), "take must leave empty histograms");

    // Same slots after a take, and the sum restarted from zero.
    assert_eq!(h.pool_slot("api"), pool);
    assert_eq!(h.listener_slot("idle"), idle);
    h.record_connect(pool, 7);
    let third = h.take();
    let (kind, name, hist) = third.iter().next().unwrap();
    assert_eq!(
        (kind, name, hist.len(), hist.max()),
        (HistogramKind::UpstreamConnect, "api", 1, 7)
    );
    assert_eq!(third.entries[0].sum_micros, 7);
}

#[test]
fn unknown_slots_and_extreme_values_do_not_panic() {
    let mut h = CoreHistograms::new();
    h.record_connect(3, 10);
    h.record_duration(usize::MAX, 10);
    h.record_request(0, 10);
    assert!(h.take().is_empty());

    let s = h.listener_slot("web");
    h.record_duration(s, 0);
    h.record_duration(s, u64::MAX); // clamped to one hour, sum saturates
    let batch = h.take();
    let (_, _, hist) = batch.iter().next().unwrap();
    assert_eq!(hist.len(), 2);
    assert!(hist.max() >= HIGHEST_MICROS && hist.max() <= HIGHEST_MICROS + HIGHEST_MICROS / 500);
    assert_eq!(batch.entries[0].sum_micros, u64::MAX);
}

#[test]
fn seconds_are_formatted_exactly() {
    let cases: &[(u64, &str)] = &[
        (0, "0"),
        (1, "0.000001"),
        (10, "0.00001"),
        (250, "0.00025"),
        (500_000, "0.5"),
        (1_000_000, "1"),
        (1_500_000, "1.5"),
        (3_600_000_000, "3600"),
        (123_456_789, "123.456789"),
        (u64::MAX, "18446744073709.551615"),
    ];
    for &(micros, want) in cases {
        let mut s = String::new();
        write_seconds(&mut s, micros);
        assert_eq!(s, want, "{micros} µs");
    }
}

#[test]
fn bucket_bounds_match_their_labels() {
    for (micros, le) in BUCKETS {
        let mut s = String::new();
        write_seconds(&mut s, micros);
        assert_eq!(s, le);
    }
}

#[test]
fn bucket_counts_are_cumulative_at_the_bounds() {
    // (values recorded in µs, expected cumulative count per bound of BUCKETS)
    let cases: &[(&[u64], [u64; 16])] = &[
        (&[], [0; 16]),
        // Bounds are inclusive: exactly 100 µs is `le="0.0001"`, 101 µs is not.
        (&[100], [1; 16]),
        (&[101], [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
        (
            &[50, 100, 300, 2_000_000, 7_200_000_000],
            [2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4],
        ),
        // Above the last bound: only in +Inf.
        (&[20_000_000], [0; 16]),
    ];
    for (values, want) in cases {
        let mut m = Merged::new();
        let mut h = new_histogram();
        for &v in *values {
            h.saturating_record(v);
        }
        m.add(&h, values.iter().sum());
        assert_eq!(&m.cumulative_buckets(), want, "values {values:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Prometheus output
// ---------------------------------------------------------------------------------------

/// A registry with two cores' worth of counters and one merged batch per core.
fn two_core_registry() -> Registry {
    let reg = Registry::new();
    let web = [reg.listener(0, "web"), reg.listener(1, "web")];
    for (core, stats) in web.iter().enumerate() {
        let n = core as u64 + 1;
        stats.connections_total.fetch_add(10 * n, Relaxed); // 10 + 20
        stats.active_connections.fetch_add(n as i64, Relaxed); // 1 + 2
        stats.bytes_in.fetch_add(100 * n, Relaxed); // 100 + 200
        stats.bytes_out.fetch_add(1000 * n, Relaxed); // 1000 + 2000
        stats.refused_total.fetch_add(n, Relaxed); // 1 + 2
    }
    let a = addr("10.0.0.1:8080");
    let b = addr("[::1]:9000");
    for core in 0..2 {
        let s = reg.backend(core, "api", a);
        s.connections_total.fetch_add(5, Relaxed);
        s.connect_failures_total.fetch_add(core as u64, Relaxed);
        s.active_connections.fetch_add(1, Relaxed);
    }
    reg.backend(1, "api", b)
        .connections_total
        .fetch_add(4, Relaxed);

    for core in 0..2u64 {
        let mut h = CoreHistograms::new();
        let api = h.pool_slot("api");
        let web = h.listener_slot("web");
        h.record_connect(api, 200 + core * 1000); // 200 µs and 1200 µs
        h.record_duration(web, 3_000_000);
        reg.merge(h.take());
    }
    reg.config_reload(true);
    reg.config_reload(true);
    reg.config_reload(false);
    reg.health_event_dropped(3);
    reg.health_event_dropped(4);
    // Keep the stats alive as a worker would (not needed for rendering, but realistic).
    std::mem::forget(web);
    reg
}

#[test]
fn prometheus_sums_cores() {
    let reg = two_core_registry();
    let statuses = [
        status("api", "10.0.0.1:8080", "up", 10),
        status("api", "[::1]:9000", "draining", 5),
    ];
    let text = reg.render_prometheus(&statuses);
    let exp = check_exposition(&text);
    let web = [("listener", "web")];
    let a = [("pool", "api"), ("backend", "10.0.0.1:8080")];
    let b = [("pool", "api"), ("backend", "[::1]:9000")];
    let cases: &[(&str, &[(&str, &str)], &str)] = &[
        ("ringway_connections_total", &web, "30"),
        ("ringway_active_connections", &web, "3"),
        (
            "ringway_bytes_total",
            &[("listener", "web"), ("direction", "in")],
            "300",
        ),
        (
            "ringway_bytes_total",
            &[("listener", "web"), ("direction", "out")],
            "3000",
        ),
        ("ringway_refused_connections_total", &web, "3"),
        ("ringway_backend_up", &a, "1"),
        ("ringway_backend_up", &b, "0"),
        ("ringway_backend_connections_total", &a, "10"),
        ("ringway_backend_connections_total", &b, "4"),
        ("ringway_backend_connect_failures_total", &a, "1"),
        ("ringway_backend_connect_failures_total", &b, "0"),
        ("ringway_backend_active_connections", &a, "2"),
        ("ringway_backend_active_connections", &b, "0"),
        (
            "ringway_upstream_connect_seconds_count",
            &[("pool", "api")],
            "2",
        ),
        (
            "ringway_upstream_connect_seconds_sum",
            &[("pool", "api")],
            "0.0014",
        ),
        (
            "ringway_upstream_connect_seconds_bucket",
            &[("pool", "api"), ("le", "0.00025")],
            "1",
        ),
        (
            "ringway_upstream_connect_seconds_bucket",
            &[("pool", "api"), ("le", "0.001")],
            "1",
        ),
        (
            "ringway_upstream_connect_seconds_bucket",
            &[("pool", "api"), ("le", "0.0025")],
            "2",
        ),
        ("ringway_connection_duration_seconds_count", &web, "2"),
        ("ringway_connection_duration_seconds_sum", &web, "6"),
        (
            "ringway_connection_duration_seconds_bucket",
            &[("listener", "web"), ("le", "2.5")],
            "0",
        ),
        (
            "ringway_connection_duration_seconds_bucket",
            &[("listener", "web"), ("le", "5")],
            "2",
        ),
        (
            "ringway_config_reloads_total",
            &[("result", "success")],
            "2",
        ),
        (
            "ringway_config_reloads_total",
            &[("result", "failure")],
            "1",
        ),
        ("ringway_health_events_dropped_total", &[], "7"),
    ];
    for (name, labels, want) in cases {
        assert_eq!(
            value_of(&exp, name, labels).as_deref(),
            Some(*want),
            "{name}{labels:?}\n{text}"
        );
    }
    assert_eq!(reg.health_events_dropped(), 7);
}

#[test]
fn prometheus_declares_every_family_once_with_the_right_type() {
    let reg = two_core_registry();
    let exp = check_exposition(&reg.render_prometheus(&[]));
    let want = [
        ("ringway_connections_total", "counter"),
        ("ringway_active_connections", "gauge"),
        ("ringway_bytes_total", "counter"),
        ("ringway_refused_connections_total", "counter"),
        ("ringway_proxy_protocol_rejected_total", "counter"),
        ("ringway_rate_limited_total", "counter"),
        ("ringway_tls_handshakes_total", "counter"),
        ("ringway_tls_handshake_failures_total", "counter"),
        ("ringway_connection_duration_seconds", "histogram"),
        ("ringway_request_duration_seconds", "histogram"),
        ("ringway_http_requests_total", "counter"),
        ("ringway_backend_up", "gauge"),
        ("ringway_backend_connections_total", "counter"),
        ("ringway_backend_connect_failures_total", "counter"),
        ("ringway_backend_active_connections", "gauge"),
        ("ringway_upstream_connect_seconds", "histogram"),
        ("ringway_config_reloads_total", "counter"),
        ("ringway_health_events_dropped_total", "counter"),
        ("ringway_access_log_dropped_batches_total", "counter"),
    ];
    let got: BTreeMap<&str, &str> = exp
        .types
        .iter()
        .map(|(k, (t, _))| (k.as_str(), t.as_str()))
        .collect();
    assert_eq!(got, want.into_iter().collect::<BTreeMap<_, _>>());
    // No backend statuses given: no `ringway_backend_up` samples, but counters remain.
    assert!(!exp.samples.iter().any(|s| s.name == "ringway_backend_up"));
    assert!(exp
        .samples
        .iter()
        .any(|s| s.name == "ringway_backend_connections_total"));
}

#[test]
fn prometheus_of_an_empty_registry_is_valid() {
    let reg = Registry::new();
    let exp = check_exposition(&reg.render_prometheus(&[]));
    assert_eq!(exp.types.len(), 19);
    assert_eq!(
        value_of(
            &exp,
            "ringway_config_reloads_total",
            &[("result", "failure")]
        )
        .as_deref(),
        Some("0")
    );
}

#[test]
fn prometheus_escapes_label_values() {
    let reg = Registry::new();
    let names = ["we\"b", "back\\slash", "new\nline", "all\\\"\n\\n", "ünï"];
    let _held: Vec<_> = names.iter().map(|n| reg.listener(0, n)).collect();
    let text = reg.render_prometheus(&[status("p\"\n", "127.0.0.1:1", "up", 1)]);
    for (raw, escaped) in [
        ("we\"b", r#"listener="we\"b""#),
        ("back\\slash", r#"listener="back\\slash""#),
        ("new\nline", r#"listener="new\nline""#),
        ("all\\\"\n\\n", r#"listener="all\\\"\n\\n""#),
        ("ünï", r#"listener="ünï""#),
    ] {
        assert!(
            text.contains(&format!("ringway_connections_total{{{escaped}}} 0\n")),
            "{raw:?} not escaped as {escaped}:\n{text}"
        );
    }
    // And the escaping round-trips through a strict reader.
    let exp = check_exposition(&text);
    for n in names {
        assert_eq!(
            value_of(&exp, "ringway_connections_total", &[("listener", n)]).as_deref(),
            Some("0"),
            "{n:?}"
        );
    }
    assert_eq!(
        value_of(
            &exp,
            "ringway_backend_up",
            &[("pool", "p\"\n"), ("backend", "127.0.0.1:1")]
        )
        .as_deref(),
        Some("1")
    );
}

#[test]
fn prometheus_series_exist_before_traffic() {
    let reg = Registry::new();
    let _w = reg.listener(0, "web");
    let _b = reg.backend(0, "api", addr("10.0.0.1:80"));
    let exp = check_exposition(&reg.render_prometheus(&[status("api", "10.0.0.1:80", "down", 1)]));
    let web = [("listener", "web")];
    for (name, labels, want) in [
        ("ringway_connection_duration_seconds_count", &web[..], "0"),
        ("ringway_connection_duration_seconds_sum", &web[..], "0"),
        (
            "ringway_upstream_connect_seconds_count",
            &[("pool", "api")][..],
            "0",
        ),
        (
            "ringway_backend_up",
            &[("pool", "api"), ("backend", "10.0.0.1:80")][..],
            "0",
        ),
    ] {
        assert_eq!(
            value_of(&exp, name, labels).as_deref(),
            Some(want),
            "{name}"
        );
    }
    // Request histograms only appear for listeners that served requests.
    assert!(!exp
        .samples
        .iter()
        .any(|s| s.name.starts_with("ringway_request_duration_seconds")));
    let mut h = CoreHistograms::new();
    let r = h.request_slot("web");
    h.record_request(r, 1234);
    reg.merge(h.take());
    let exp = check_exposition(&reg.render_prometheus(&[]));
    assert_eq!(
        value_of(&exp, "ringway_request_duration_seconds_sum", &web).as_deref(),
        Some("0.001234")
    );
}

#[test]
fn duplicate_statuses_do_not_duplicate_series() {
    let reg = Registry::new();
    let statuses = [
        status("api", "10.0.0.1:80", "up", 1),
        status("api", "10.0.0.1:80", "down", 1),
    ];
    // check_exposition rejects duplicate series.
    let exp = check_exposition(&reg.render_prometheus(&statuses));
    assert_eq!(
        value_of(
            &exp,
            "ringway_backend_up",
            &[("pool", "api"), ("backend", "10.0.0.1:80")]
        )
        .as_deref(),
        Some("1")
    );
}

// ---------------------------------------------------------------------------------------
// JSON output
// ---------------------------------------------------------------------------------------

#[test]
fn stats_json_has_counters_states_and_percentiles() {
    let reg = two_core_registry();
    // 1..=1000 ms: 1..=500 recorded by core 0, 501..=1000 by core 1, merged separately.
    for range in [1..=500u64, 501..=1000] {
        let mut h = CoreHistograms::new();
        let web = h.listener_slot("web");
        for ms in range {
            h.record_duration(web, ms * 1000);
        }
        reg.merge(h.take());
    }
    let statuses = [status("api", "10.0.0.1:8080", "up", 10)];
    let text = reg.render_stats_json(&statuses);
    let json = parse_json(&text);

    let web = json.get("listeners").find("name", "web");
    for (key, want) in [
        ("connections_total", 30.0),
        ("active_connections", 3.0),
        ("bytes_in", 300.0),
        ("bytes_out", 3000.0),
        ("refused_total", 3.0),
    ] {
        assert_eq!(web.get(key).num(), want, "{key}");
    }
    let d = web.get("connection_duration_seconds");
    // Two 3 s connections from `two_core_registry` plus the 1000 values.
    assert_eq!(d.get("count").num(), 1002.0);
    assert!((d.get("sum").num() - (6.0 + 500.5)).abs() < 1e-9);
    // The two 3 s values shift the lower quantiles by at most two ranks (2 ms), and the
    // histogram itself is within 0.1%. p99.9 is rank 1001 of 1002: one of the 3 s values.
    for (key, want) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 3.0)] {
        let got = d.get(key).num();
        assert!(
            (got - want).abs() <= want * 0.001 + 0.0021,
            "{key}: {got} vs {want}"
        );
    }
    assert_eq!(
        web.get("request_duration_seconds").get("p50"),
        &Json::Null,
        "no requests recorded"
    );

    let api = json.get("pools").find("name", "api");
    let c = api.get("upstream_connect_seconds");
    assert_eq!(c.get("count").num(), 2.0);
    assert!((c.get("p50").num() - 0.0002).abs() < 1e-6);
    assert!((c.get("p999").num() - 0.0012).abs() < 2e-6);
    let a = api.get("backends").find("addr", "10.0.0.1:8080");
    assert_eq!(a.get("state").str(), "up");
    assert_eq!(a.get("weight").num(), 10.0);
    assert_eq!(a.get("connections_total").num(), 10.0);
    assert_eq!(a.get("connect_failures_total").num(), 1.0);
    assert_eq!(a.get("active_connections").num(), 2.0);
    // Registered but not in the control thread's view: no state to report.
    let b = api.get("backends").find("addr", "[::1]:9000");
    assert_eq!(b.get("state"), &Json::Null);
    assert_eq!(b.get("weight"), &Json::Null);
    assert_eq!(b.get("connections_total").num(), 4.0);

    assert_eq!(json.get("config_reloads").get("success").num(), 2.0);
    assert_eq!(json.get("config_reloads").get("failure").num(), 1.0);
    assert_eq!(json.get("health_events_dropped").num(), 7.0);
}

#[test]
fn stats_json_of_an_empty_registry_is_exact() {
    let reg = Registry::new();
    assert_eq!(
        reg.render_stats_json(&[]),
        r#"{"listeners":[],"pools":[],"config_reloads":{"success":0,"failure":0},"health_events_dropped":0}"#
    );
    let _w = reg.listener(0, "w");
    assert_eq!(
        reg.render_stats_json(&[status("p", "1.2.3.4:5", "ejected", 0)]),
        concat!(
            r#"{"listeners":[{"name":"w","connections_total":0,"active_connections":0,"#,
            r#""bytes_in":0,"bytes_out":0,"refused_total":0,"#,
            r#""proxy_protocol_rejected_total":0,"rate_limited_total":0,"#,
            r#""connection_duration_seconds":{"count":0,"sum":0,"p50":null,"p90":null,"p99":null,"p999":null},"#,
            r#""request_duration_seconds":{"count":0,"sum":0,"p50":null,"p90":null,"p99":null,"p999":null},"#,
            r#""requests":{}}],"#,
            r#""pools":[{"name":"p","upstream_connect_seconds":{"count":0,"sum":0,"p50":null,"p90":null,"p99":null,"p999":null},"#,
            r#""backends":[{"addr":"1.2.3.4:5","state":"ejected","weight":0,"connections_total":0,"connect_failures_total":0,"active_connections":0}]}],"#,
            r#""config_reloads":{"success":0,"failure":0},"health_events_dropped":0}"#
        )
    );
}

#[test]
fn stats_json_escapes_names() {
    let reg = Registry::new();
    let names = [
        "quote\"",
        "back\\slash",
        "nl\n cr\r tab\t",
        "ctl\u{1}\u{1f}",
        "del\u{7f} ünï 🦀",
        "</script>",
    ];
    let _held: Vec<_> = names.iter().map(|n| reg.listener(0, n)).collect();
    let text = reg.render_stats_json(&[]);
    let json = parse_json(&text);
    let got: Vec<&str> = json
        .get("listeners")
        .arr()
        .iter()
        .map(|l| l.get("name").str())
        .collect();
    let mut want = names.to_vec();
    want.sort();
    assert_eq!(got, want);
    assert!(text.contains(r#""ctl\u0001\u001f""#));
}

// ---------------------------------------------------------------------------------------
// HTTP requests by listener, route and status code
// ---------------------------------------------------------------------------------------

/// The `ringway_http_requests_total` samples of an exposition, in output order.
fn http_request_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("ringway_http_requests_total{"))
        .collect()
}

/// The fields of a JSON object, in order.
fn fields(j: &Json) -> &[(String, Json)] {
    match j {
        Json::Obj(f) => f,
        other => panic!("not an object: {other:?}"),
    }
}

#[test]
fn route_registration_returns_the_same_arc_per_core_listener_and_route() {
    let reg = Registry::new();
    let a = reg.route(0, "web", "api");
    assert!(Arc::ptr_eq(&a, &reg.route(0, "web", "api")));
    assert!(!Arc::ptr_eq(&a, &reg.route(1, "web", "api")));
    assert!(!Arc::ptr_eq(&a, &reg.route(0, "admin", "api")));
    assert!(!Arc::ptr_eq(&a, &reg.route(0, "web", "none")));
    // A route named like its listener, or like another listener's route, is its own key.
    assert!(!Arc::ptr_eq(&a, &reg.route(0, "api", "web")));

    // Counting through one handle shows through a re-registration (a reload).
    a.count(200);
    a.count(200);
    a.count(404);
    let again = reg.route(0, "web", "api");
    assert_eq!((again.get(200), again.get(404), again.get(500)), (2, 1, 0));

    // Both ends of the range have their own counters; everything outside shares `other`.
    for status in [100, 599] {
        a.count(status);
        assert_eq!(a.get(status), 1, "{status}");
    }
    for status in [0, 99, 600, 1000, u16::MAX] {
        a.count(status);
    }
    assert_eq!(a.get(0), 5);
    assert_eq!(a.get(u16::MAX), 5);
    assert_eq!(a.get(101), 0);
    assert_eq!(a.get(598), 0);
    assert_eq!(
        format!("{a:?}"),
        r#"{100: 1, 200: 2, 404: 1, 599: 1, "other": 5}"#
    );

    // Two cores' objects never share a cache line.
    assert!(std::mem::align_of::<RouteStats>() >= 128);
    let b = reg.route(1, "web", "api");
    assert!((Arc::as_ptr(&a) as usize).abs_diff(Arc::as_ptr(&b) as usize) >= 128);
}

#[test]
fn http_requests_sum_cores_and_render_non_zero_rows_in_order() {
    let reg = Registry::new();
    // Registered in an order unlike the rendered one, to show the output is sorted.
    let web_static = reg.route(0, "web", "static");
    let web_none = reg.route(1, "web", "none");
    let web_api = [reg.route(1, "web", "api"), reg.route(0, "web", "api")];
    let admin = reg.route(0, "admin", "api");
    for _ in 0..3 {
        web_api[1].count(200);
    }
    web_api[1].count(404);
    web_api[0].count(503);
    web_api[0].count(200);
    web_api[0].count(200);
    web_none.count(404);
    web_none.count(404);
    for status in [599, 100, 99, 600, 0] {
        admin.count(status);
    }

    let text = reg.render_prometheus(&[]);
    let exp = check_exposition(&text);
    assert_eq!(
        exp.types.get("ringway_http_requests_total"),
        Some(&("counter".to_string(), 1))
    );
    assert_eq!(
        http_request_lines(&text),
        [
            r#"ringway_http_requests_total{listener="admin",route="api",code="100"} 1"#,
            r#"ringway_http_requests_total{listener="admin",route="api",code="599"} 1"#,
            r#"ringway_http_requests_total{listener="admin",route="api",code="other"} 3"#,
            r#"ringway_http_requests_total{listener="web",route="api",code="200"} 5"#,
            r#"ringway_http_requests_total{listener="web",route="api",code="404"} 1"#,
            r#"ringway_http_requests_total{listener="web",route="api",code="503"} 1"#,
            r#"ringway_http_requests_total{listener="web",route="none",code="404"} 2"#,
        ],
        "{text}"
    );
    // `static` is registered but served nothing: no series for it.
    assert!(!text.contains("route=\"static\""), "{text}");
    // Its series appears with its first response.
    web_static.count(304);
    assert!(reg.render_prometheus(&[]).contains(
        "ringway_http_requests_total{listener=\"web\",route=\"static\",code=\"304\"} 1\n"
    ));
}

#[test]
fn http_requests_without_responses_render_no_rows() {
    let reg = Registry::new();
    let _held = [reg.route(0, "web", "api"), reg.route(1, "web", "none")];
    let text = reg.render_prometheus(&[]);
    let exp = check_exposition(&text);
    // Announced, with no samples; the listener itself is still exported.
    assert!(exp.types.contains_key("ringway_http_requests_total"));
    assert!(http_request_lines(&text).is_empty(), "{text}");
    assert_eq!(
        value_of(&exp, "ringway_connections_total", &[("listener", "web")]).as_deref(),
        Some("0")
    );
}

#[test]
fn http_requests_escape_route_labels() {
    let reg = Registry::new();
    let routes = ["quo\"te", "back\\slash", "both\\\"", "new\nline"];
    let held: Vec<_> = routes.iter().map(|r| reg.route(0, "we\"b", r)).collect();
    for stats in &held {
        stats.count(200);
    }
    let text = reg.render_prometheus(&[]);
    for escaped in [
        r#"route="quo\"te""#,
        r#"route="back\\slash""#,
        r#"route="both\\\"""#,
        r#"route="new\nline""#,
    ] {
        let line =
            format!(r#"ringway_http_requests_total{{listener="we\"b",{escaped},code="200"}} 1"#);
        assert!(
            text.contains(&format!("{line}\n")),
            "{line} missing:\n{text}"
        );
    }
    let exp = check_exposition(&text);
    for route in routes {
        assert_eq!(
            value_of(
                &exp,
                "ringway_http_requests_total",
                &[("listener", "we\"b"), ("route", route), ("code", "200")]
            )
            .as_deref(),
            Some("1"),
            "{route:?}"
        );
    }
    // The same names survive the JSON escaping.
    let json = parse_json(&reg.render_stats_json(&[]));
    let requests = json.get("listeners").find("name", "we\"b").get("requests");
    let mut want = routes.to_vec();
    want.sort();
    let got: Vec<&str> = fields(requests).iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(got, want);
}

#[test]
fn stats_json_has_requests_per_listener_route_and_code() {
    let reg = two_core_registry();
    let api = [reg.route(0, "web", "api"), reg.route(1, "web", "api")];
    let _idle = reg.route(1, "web", "idle");
    let none = reg.route(0, "web", "none");
    api[0].count(200);
    api[1].count(200);
    api[1].count(502);
    none.count(404);
    none.count(1000);

    let text = reg.render_stats_json(&[]);
    // The key sits after the existing ones, which are unchanged.
    assert!(
        text.contains(concat!(
            r#""requests":{"api":{"200":2,"502":1},"idle":{},"#,
            r#""none":{"404":1,"other":1}}}"#
        )),
        "{text}"
    );
    let json = parse_json(&text);
    let web = json.get("listeners").find("name", "web");
    assert_eq!(web.get("connections_total").num(), 30.0);
    let keys: Vec<&str> = fields(web).iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "name",
            "connections_total",
            "active_connections",
            "bytes_in",
            "bytes_out",
            "refused_total",
            "proxy_protocol_rejected_total",
            "rate_limited_total",
            "connection_duration_seconds",
            "request_duration_seconds",
            "requests",
        ]
    );
    let requests = web.get("requests");
    assert_eq!(requests.get("api").get("200").num(), 2.0);
    assert_eq!(requests.get("api").get("502").num(), 1.0);
    assert!(fields(requests.get("idle")).is_empty());
    assert_eq!(requests.get("none").get("other").num(), 1.0);
    // A listener with a route only (no listener stats registered) still gets a row.
    let _lone = reg.route(0, "solo", "r");
    let json = parse_json(&reg.render_stats_json(&[]));
    let solo = json.get("listeners").find("name", "solo");
    assert_eq!(solo.get("connections_total").num(), 0.0);
    assert!(fields(solo.get("requests").get("r")).is_empty());
}

#[test]
fn prune_forgets_routes_of_removed_listeners_and_removed_routes() {
    let reg = Registry::new();
    let web = reg.listener(0, "web");
    let web_api = reg.route(0, "web", "api");
    let removed = reg.route(0, "web", "removed");
    let old = reg.listener(0, "old");
    let old_api = [reg.route(0, "old", "api"), reg.route(1, "old", "api")];
    web_api.count(200);
    removed.count(500);
    old_api[1].count(201);
    let mut h = CoreHistograms::new();
    for name in ["web", "old"] {
        let slot = h.request_slot(name);
        h.record_request(slot, 1000);
    }
    reg.merge(h.take());
    // A reload removes listener "old" and route "removed"; workers drop their views.
    drop((removed, old, old_api));

    // Listener "old", route "old"/"api" (both cores) and route "web"/"removed".
    assert_eq!(reg.prune(), 3);
    let text = reg.render_prometheus(&[]);
    check_exposition(&text);
    assert_eq!(
        http_request_lines(&text),
        [r#"ringway_http_requests_total{listener="web",route="api",code="200"} 1"#],
        "{text}"
    );
    assert!(!text.contains("\"old\""), "{text}");
    assert!(!text.contains("removed"), "{text}");
    assert!(text.contains("ringway_request_duration_seconds_count{listener=\"web\"} 1"));
    let json = parse_json(&reg.render_stats_json(&[]));
    let listeners = json.get("listeners").arr();
    assert_eq!(listeners.len(), 1);
    let routes: Vec<&str> = fields(listeners[0].get("requests"))
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(routes, ["api"]);
    assert_eq!(reg.prune(), 0);

    // Route counters a worker still holds outlive their listener's own stats (a
    // connection still served under the old config keeps counting), and go with the
    // next prune once released.
    let gone = reg.listener(1, "gone");
    let lingering = reg.route(1, "gone", "api");
    drop(gone);
    assert_eq!(reg.prune(), 1);
    lingering.count(200);
    assert!(reg
        .render_prometheus(&[])
        .contains("ringway_http_requests_total{listener=\"gone\",route=\"api\",code=\"200\"} 1\n"));
    drop(lingering);
    assert_eq!(reg.prune(), 1);
    assert!(!reg.render_prometheus(&[]).contains("\"gone\""));
    drop((web, web_api));
}

#[test]
fn request_duration_histogram_renders_buckets_and_quantiles() {
    let reg = Registry::new();
    let _web = reg.listener(0, "web");
    // 1..=1000 ms, split over two cores' batches.
    for range in [1..=400u64, 401..=1000] {
        let mut h = CoreHistograms::new();
        let slot = h.request_slot("web");
        for ms in range {
            h.record_request(slot, ms * 1000);
        }
        reg.merge(h.take());
    }
    let text = reg.render_prometheus(&[]);
    let exp = check_exposition(&text);
    let web = [("listener", "web")];
    assert_eq!(
        value_of(&exp, "ringway_request_duration_seconds_count", &web).as_deref(),
        Some("1000")
    );
    assert_eq!(
        value_of(&exp, "ringway_request_duration_seconds_sum", &web).as_deref(),
        Some("500.5")
    );
    // Cumulative counts per `le` bound: the values are whole milliseconds and each bound
    // is one of them, so each bucket holds exactly the values up to it.
    let want: [(&str, &str); 17] = [
        ("0.0001", "0"),
        ("0.00025", "0"),
        ("0.0005", "0"),
        ("0.001", "1"),
        ("0.0025", "2"),
        ("0.005", "5"),
        ("0.01", "10"),
        ("0.025", "25"),
        ("0.05", "50"),
        ("0.1", "100"),
        ("0.25", "250"),
        ("0.5", "500"),
        ("1", "1000"),
        ("2.5", "1000"),
        ("5", "1000"),
        ("10", "1000"),
        ("+Inf", "1000"),
    ];
    for (le, count) in want {
        assert_eq!(
            value_of(
                &exp,
                "ringway_request_duration_seconds_bucket",
                &[("listener", "web"), ("le", le)]
            )
            .as_deref(),
            Some(count),
            "le={le}"
        );
    }

    let json = parse_json(&reg.render_stats_json(&[]));
    let r = json
        .get("listeners")
        .find("name", "web")
        .get("request_duration_seconds");
    assert_eq!(r.get("count").num(), 1000.0);
    assert!((r.get("sum").num() - 500.5).abs() < 1e-9);
    for (key, want) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
        let got = r.get(key).num();
        assert!((got - want).abs() <= want * 0.001, "{key}: {got} vs {want}");
    }
}

#[test]
fn tls_failure_reasons_are_counted_apart_and_unknown_ones_as_other() {
    let stats = ListenerStats::default();
    stats.tls_handshake_failed("unknown_ca");
    stats.tls_handshake_failed("no such reason");
    let slot = |r: &str| TLS_FAILURE_REASONS.iter().position(|x| *x == r).unwrap();
    let count = |r: &str| stats.tls_handshake_failures[slot(r)].load(Ordering::Relaxed);
    assert_eq!((count("unknown_ca"), count("other")), (1, 1));
    assert_eq!(TLS_FAILURE_REASONS.last(), Some(&"other"));
}

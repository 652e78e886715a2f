//! Per-listener HTTP access logging that never blocks a worker and, in steady state, never
//! allocates per request.
//!
//! Workers are single-threaded event loops, so a blocking `write(2)` to a slow stdout (a
//! pipe into a stalled log shipper, a full terminal) would stall every connection on that
//! core. Instead each worker owns a [`CoreLog`] that formats lines into a batch buffer it
//! owns. When the batch passes [`BATCH_BYTES`] (or on the worker's tick, via
//! [`CoreLog::flush`]) the whole `Vec<u8>` is moved, not copied, to the writer thread of an
//! [`AccessLogSink`] through a bounded channel with `try_send`. If the writer has fallen
//! behind and the channel is full, the batch is dropped and counted: losing log lines is
//! better than adding latency to live traffic, and the counter makes the loss visible.
//!
//! The writer thread clears each batch after writing it and sends the empty `Vec` back over a
//! second bounded channel; a `CoreLog` takes its next buffer from there before allocating.
//! After warm-up the same few buffers circulate, so logging costs formatting only.
//!
//! Request bytes come from the network and are escaped in both formats, so a log line is
//! always one line of ASCII, whatever a client sends.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};

use crate::log::civil_from_days;

/// A batch is handed to the writer once it holds at least this many bytes: large enough
/// that one `write(2)` carries hundreds of lines, small enough to bound memory per core.
pub const BATCH_BYTES: usize = 32 * 1024;
/// Capacity of a fresh batch buffer: the threshold plus room for the line that crosses it,
/// so a typical batch never reallocates.
const BATCH_CAPACITY: usize = BATCH_BYTES + 16 * 1024;
/// Batches that may wait for the writer (about 2 MiB); beyond this, batches are dropped.
const QUEUE_BATCHES: usize = 64;
/// Emptied buffers kept for reuse; extra ones are freed instead of hoarded.
const RECYCLE_BATCHES: usize = 64;

pub use crate::config::AccessLogFormat;

/// One finished exchange, borrowed from the worker's buffers so logging copies nothing
/// until the line is formatted.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    /// Real client address (after PROXY protocol).
    pub client: IpAddr,
    /// When the request head was received.
    pub time: SystemTime,
    /// Request method, as received.
    pub method: &'a [u8],
    /// Request-target, as received.
    pub target: &'a [u8],
    /// Minor version of HTTP/1.x.
    pub version_minor: u8,
    /// Response status code sent to the client.
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes_sent: u64,
    /// `Referer` header value, if present.
    pub referer: Option<&'a [u8]>,
    /// `User-Agent` header value, if present.
    pub user_agent: Option<&'a [u8]>,
    /// `Host` header value, if present.
    pub host: Option<&'a [u8]>,
    /// Name of the listener that accepted the connection.
    pub listener: &'a str,
    /// Route label, `""` when no route matched.
    pub route: &'a str,
    /// Backend that answered, if any.
    pub upstream: Option<SocketAddr>,
    /// Time from head received to last response byte sent.
    pub duration: Duration,
    /// Why ringway generated an error response itself, e.g. "upstream connect failed".
    pub reason: Option<&'static str>,
}

/// Append one line (ending in '\n') to `out`; nothing for [`AccessLogFormat::Off`].
/// Never allocates beyond growing `out`.
pub fn format_entry(format: AccessLogFormat, e: &Entry<'_>, out: &mut Vec<u8>) {
    match format {
        AccessLogFormat::Off => {}
        AccessLogFormat::Combined => format_combined(e, out),
        AccessLogFormat::Json => format_json(e, out),
    }
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `127.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "GET /path HTTP/1.1" 200 1234 "ref" "ua"`
fn format_combined(e: &Entry<'_>, out: &mut Vec<u8>) {
    let t = Utc::from(e.time);
    push_display(out, &e.client);
    out.extend_from_slice(b" - - [");
    push_padded(out, u64::from(t.day), 2);
    out.push(b'/');
    out.extend_from_slice(MONTHS[(t.month - 1) as usize]);
    out.push(b'/');
    push_padded(out, t.year, 4);
    out.push(b':');
    push_clock(out, &t);
    out.extend_from_slice(b" +0000] \"");
    push_combined_escaped(out, e.method);
    out.push(b' ');
    push_combined_escaped(out, e.target);
    out.extend_from_slice(b" HTTP/1.");
    push_padded(out, u64::from(e.version_minor), 1);
    out.extend_from_slice(b"\" ");
    push_padded(out, u64::from(e.status), 1);
    out.push(b' ');
    push_padded(out, e.bytes_sent, 1);
    for value in [e.referer, e.user_agent] {
        out.extend_from_slice(b" \"");
        match value {
            Some(v) => push_combined_escaped(out, v),
            None => out.push(b'-'),
        }
        out.push(b'"');
    }
    out.push(b'\n');
}

/// One flat JSON object; keys in a fixed order so lines diff and grep well.
fn format_json(e: &Entry<'_>, out: &mut Vec<u8>) {
    let t = Utc::from(e.time);
    out.extend_from_slice(b"{\"time\":\"");
    push_padded(out, t.year, 4);
    out.push(b'-');
    push_padded(out, u64::from(t.month), 2);
    out.push(b'-');
    push_padded(out, u64::from(t.day), 2);
    out.push(b'T');
    push_clock(out, &t);
    out.push(b'.');
    push_padded(out, u64::from(t.millis), 3);
    out.extend_from_slice(b"Z\",\"client\":\"");
    push_display(out, &e.client);
    out.extend_from_slice(b"\",\"listener\":");
    push_json_str(out, e.listener);
    out.extend_from_slice(b",\"route\":");
    push_json_str(out, e.route);
    out.extend_from_slice(b",\"method\":");
    push_json_bytes(out, e.method);
    out.extend_from_slice(b",\"target\":");
    push_json_bytes(out, e.target);
    out.extend_from_slice(b",\"version\":\"HTTP/1.");
    push_padded(out, u64::from(e.version_minor), 1);
    out.extend_from_slice(b"\",\"status\":");
    push_padded(out, u64::from(e.status), 1);
    out.extend_from_slice(b",\"bytes_sent\":");
    push_padded(out, e.bytes_sent, 1);
    out.extend_from_slice(b",\"duration_us\":");
    // u64 microseconds cover 584,000 years; saturate rather than wrap past that.
    let micros = u64::try_from(e.duration.as_micros()).unwrap_or(u64::MAX);
    push_padded(out, micros, 1);
    out.extend_from_slice(b",\"upstream\":");
    match &e.upstream {
        Some(addr) => {
            out.push(b'"');
            push_display(out, addr);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    for (key, value) in [
        (&b",\"host\":"[..], e.host),
        (b",\"referer\":", e.referer),
        (b",\"user_agent\":", e.user_agent),
    ] {
        out.extend_from_slice(key);
        match value {
            Some(v) => push_json_bytes(out, v),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(b",\"reason\":");
    match e.reason {
        Some(reason) => push_json_str(out, reason),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
}

/// A UTC civil time, computed by hand so the hot path needs no date crate.
struct Utc {
    year: u64,
    month: u32,
    day: u32,
    secs_of_day: u32,
    millis: u32,
}

impl From<SystemTime> for Utc {
    fn from(time: SystemTime) -> Utc {
        // A clock set before 1970 is a broken clock; log the epoch rather than fail.
        let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = since.as_secs();
        // u64 seconds / 86400 < 2^48, so the day count always fits an i64.
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        Utc {
            year: year.max(0) as u64,
            month,
            day,
            secs_of_day: (secs % 86_400) as u32,
            millis: since.subsec_millis(),
        }
    }
}

/// `HH:MM:SS`, shared by both formats.
fn push_clock(out: &mut Vec<u8>, t: &Utc) {
    let s = u64::from(t.secs_of_day);
    push_padded(out, s / 3600, 2);
    out.push(b':');
    push_padded(out, s / 60 % 60, 2);
    out.push(b':');
    push_padded(out, s % 60, 2);
}

/// Decimal `v`, zero-padded to at least `width` digits, without going through `fmt`.
fn push_padded(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let start = i.min(digits.len() - width.min(digits.len()));
    out.extend_from_slice(&digits[start..]);
}

/// Addresses go through `Display` (IPv6 zero compression is fiddly); writing to a `Vec`
/// through `io::Write` formats on the stack and cannot fail.
fn push_display(out: &mut Vec<u8>, v: &dyn std::fmt::Display) {
    let _ = write!(out, "{v}");
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

fn hex_pair(b: u8, digits: &[u8; 16]) -> [u8; 2] {
    [digits[usize::from(b >> 4)], digits[usize::from(b & 15)]]
}

/// nginx-style escaping: `"`, `\`, controls and non-ASCII become `\xHH`, so a quoted field
/// can neither end early nor smuggle a newline into the log.
fn push_combined_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(b, b'"' | b'\\' | 0..=0x1f | 0x7f..=0xff) {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(b"\\x");
            out.extend_from_slice(&hex_pair(b, HEX_UPPER));
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Quoted JSON string from raw bytes. Bytes are not assumed to be UTF-8: DEL and every
/// byte from 0x80 up become `\u00XX`, so the output is always valid ASCII JSON and a reader
/// can recover the exact bytes (each code point below 256 is one input byte).
fn push_json_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    push_json_escaped(out, bytes);
    out.push(b'"');
}

/// The inside of a JSON string: RFC 8259 escapes, plus `\u00XX` for DEL and non-ASCII bytes.
fn push_json_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let mut hex = *b"\\u00XX";
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0..=0x1f | 0x7f..=0xff => {
                hex[4..].copy_from_slice(&hex_pair(b, HEX_LOWER));
                &hex
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Quoted JSON string from config text (listener, route, reason). These are real UTF-8,
/// so non-ASCII characters are escaped as UTF-16 `\uXXXX` units: the line stays ASCII and
/// decodes back to the same text.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        if c.is_ascii() {
            push_json_escaped(out, &[c as u8]);
            continue;
        }
        for unit in c.encode_utf16(&mut [0u16; 2]).iter() {
            out.extend_from_slice(b"\\u");
            for shift in [12, 8, 4, 0] {
                out.push(HEX_LOWER[usize::from((unit >> shift) & 15)]);
            }
        }
    }
    out.push(b'"');
}

/// What travels to the writer thread.
enum Msg {
    /// Complete lines to write; the emptied buffer comes back for reuse.
    Batch(Vec<u8>),
    /// Write what is queued, flush, and exit.
    Stop,
}

/// State every [`CoreLog`] shares with its sink. It holds no thread handle, so live
/// `CoreLog`s never keep the writer thread from being shut down.
struct Shared {
    batches: Sender<Msg>,
    recycled: Receiver<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl Shared {
    /// A recycled empty buffer, or a new one while the pool is still warming up.
    fn buffer(&self) -> Vec<u8> {
        self.recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH_CAPACITY))
    }
}

/// Owns the writer thread; dropping the last sink handle shuts it down cleanly.
struct Writer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    fn stop(&self) {
        // Holding the lock while joining makes concurrent callers wait for the same flush.
        let mut thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = thread.take() {
            // A blocking send is fine here: shutdown runs off the worker threads, and
            // "wait for queued batches" is the point.
            let _ = self.shared.batches.send(Msg::Stop);
            // A writer that panicked has nothing left to flush; nothing to report either.
            let _ = handle.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The writer side: owns a std thread that writes batches to stdout (or any writer given
/// to [`AccessLogSink::with_writer`]). Cheap to clone; all clones share one thread.
#[derive(Clone)]
pub struct AccessLogSink {
    inner: Arc<Writer>,
}

impl AccessLogSink {
    /// A sink writing to the process's stdout, where container log collectors look,
    /// counting lost batches in `dropped` (the metrics registry's counter).
    pub fn stdout(dropped: Arc<AtomicU64>) -> AccessLogSink {
        AccessLogSink::with_writer_counting(Box::new(std::io::stdout()), dropped)
    }

    /// A sink writing to `w` on a dedicated thread (tests, or a file). If the thread cannot
    /// be spawned, every batch is counted in [`dropped`](Self::dropped) instead of panicking.
    pub fn with_writer(w: Box<dyn Write + Send>) -> AccessLogSink {
        AccessLogSink::with_writer_counting(w, Arc::new(AtomicU64::new(0)))
    }

    /// [`with_writer`](Self::with_writer), counting lost batches in `dropped`.
    pub fn with_writer_counting(
        w: Box<dyn Write + Send>,
        dropped: Arc<AtomicU64>,
    ) -> AccessLogSink {
        let (batches, batch_rx) = crossbeam_channel::bounded(QUEUE_BATCHES);
        let (recycle_tx, recycled) = crossbeam_channel::bounded(RECYCLE_BATCHES);
        let thread_dropped = Arc::clone(&dropped);
        let thread = std::thread::Builder::new()
            .name("ringway-access-log".into())
            .spawn(move || run_writer(w, &batch_rx, &recycle_tx, &thread_dropped))
            .ok();
        let shared = Arc::new(Shared {
            batches,
            recycled,
            dropped,
        });
        AccessLogSink {
            inner: Arc::new(Writer {
                shared,
                thread: Mutex::new(thread),
            }),
        }
    }

    /// Batches lost because the writer fell behind (bounded queue full), failed to write,
    /// or was already shut down. Worth exporting as a metric: nonzero means missing lines.
    pub fn dropped(&self) -> u64 {
        self.inner.shared.dropped.load(Ordering::Relaxed)
    }

    /// Write every queued batch, flush, and stop the thread; idempotent. Call it after the
    /// workers have flushed their `CoreLog`s: batches handed over later are dropped.
    pub fn shutdown(&self) {
        self.inner.stop();
    }
}

/// The writer thread: write batches in arrival order, hand the buffers back, flush
/// whenever the queue runs dry so lines never sit in a userspace buffer while idle.
fn run_writer(
    mut w: Box<dyn Write + Send>,
    batches: &Receiver<Msg>,
    recycle: &Sender<Vec<u8>>,
    dropped: &AtomicU64,
) {
    let write_batch = |w: &mut Box<dyn Write + Send>, mut batch: Vec<u8>| {
        if w.write_all(&batch).is_err() {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
        batch.clear();
        // Pool full: let this buffer go rather than hoard memory.
        let _ = recycle.try_send(batch);
    };
    while let Ok(msg) = batches.recv() {
        match msg {
            Msg::Batch(batch) => write_batch(&mut w, batch),
            Msg::Stop => {
                // A worker that raced with shutdown may have queued behind Stop: write
                // those too instead of discarding lines that were accepted.
                while let Ok(Msg::Batch(batch)) = batches.try_recv() {
                    write_batch(&mut w, batch);
                }
                break;
            }
        }
        if batches.is_empty() {
            let _ = w.flush();
        }
    }
    let _ = w.flush();
}

/// A per-core batching handle; lives on one worker thread, so `log` takes no lock.
pub struct CoreLog {
    /// Lines not yet handed to the writer.
    buf: Vec<u8>,
    shared: Arc<Shared>,
}

impl CoreLog {
    /// A handle feeding `sink`; one per worker thread.
    pub fn new(sink: &AccessLogSink) -> CoreLog {
        let shared = Arc::clone(&sink.inner.shared);
        CoreLog {
            buf: shared.buffer(),
            shared,
        }
    }

    /// Format and buffer `e`; when the batch passes [`BATCH_BYTES`] it is handed to the
    /// writer thread. Never blocks; `Off` costs one comparison.
    pub fn log(&mut self, format: AccessLogFormat, e: &Entry<'_>) {
        if format == AccessLogFormat::Off {
            return;
        }
        format_entry(format, e, &mut self.buf);
        if self.buf.len() >= BATCH_BYTES {
            self.hand_off();
        }
    }

    /// Hand any buffered lines to the writer. Workers call this on their 25 ms tick (so a
    /// quiet listener's lines still appear promptly) and before exiting.
    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.hand_off();
        }
    }

    fn hand_off(&mut self) {
        let batch = std::mem::take(&mut self.buf);
        match self.shared.batches.try_send(Msg::Batch(batch)) {
            Ok(()) => self.buf = self.shared.buffer(),
            Err(err) => {
                // Queue full (writer behind) or writer gone: drop these lines, never wait.
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                if let Msg::Batch(mut batch) = err.into_inner() {
                    batch.clear();
                    self.buf = batch;
                }
            }
        }
    }
}

impl Drop for CoreLog {
    /// A worker that exits without flushing still gets its last lines written.
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;

    /// 2026-11-23T10:00:00Z.
    const NOV_23_2026: u64 = 1_795_428_000;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    fn entry() -> Entry<'static> {
        Entry {
            client: IpAddr::from([127, 0, 0, 1]),
            time: at(NOV_23_2026, 123),
            method: b"GET",
            target: b"/path",
            version_minor: 1,
            status: 200,
            bytes_sent: 1234,
            referer: Some(b"http://a/"),
            user_agent: Some(b"curl/8.5"),
            host: Some(b"example.com"),
            listener: "web",
            route: "api",
            upstream: Some(SocketAddr::from(([10, 0, 0, 2], 8080))),
            duration: Duration::from_micros(1500),
            reason: None,
        }
    }

    type Edit = fn(&mut Entry<'static>);

    fn line(format: AccessLogFormat, e: &Entry<'_>) -> String {
        let mut out = Vec::new();
        format_entry(format, e, &mut out);
        String::from_utf8(out).expect("log lines are ASCII")
    }

    #[test]
    fn civil_dates() {
        for (secs, want) in [
            (0, (1970, 1, 1)),
            (951_868_800, (2000, 3, 1)),
            (1_709_251_199, (2024, 2, 29)),
            (1_735_689_599, (2024, 12, 31)),
            (4_107_501_296, (2100, 2, 28)),
            (NOV_23_2026, (2026, 11, 23)),
        ] {
            let t = Utc::from(at(secs, 0));
            assert_eq!((t.year, t.month, t.day), want, "secs {secs}");
        }
    }

    #[test]
    fn combined_lines() {
        let cases: [(Edit, &str); 4] = [
            (
                |_| {},
                r#"127.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "GET /path HTTP/1.1" 200 1234 "http://a/" "curl/8.5""#,
            ),
            (
                |e| {
                    (e.time, e.referer, e.user_agent, e.bytes_sent) =
                        (at(1_709_251_199, 999), None, None, 0)
                },
                r#"127.0.0.1 - - [29/Feb/2024:23:59:59 +0000] "GET /path HTTP/1.1" 200 0 "-" "-""#,
            ),
            (
                |e| {
                    (e.client, e.version_minor, e.status) = ("2001:db8::1".parse().unwrap(), 0, 502)
                },
                r#"2001:db8::1 - - [23/Nov/2026:10:00:00 +0000] "GET /path HTTP/1.0" 502 1234 "http://a/" "curl/8.5""#,
            ),
            (
                |e| {
                    (e.target, e.user_agent) =
                        (b"/a\"b\\c\r\nX: 1", Some(&b"\xe2\x9c\x93\x7f\t"[..]))
                },
                r#"127.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "GET /a\x22b\x5Cc\x0D\x0AX: 1 HTTP/1.1" 200 1234 "http://a/" "\xE2\x9C\x93\x7F\x09""#,
            ),
        ];
        for (edit, want) in cases {
            let mut e = entry();
            edit(&mut e);
            assert_eq!(line(AccessLogFormat::Combined, &e), format!("{want}\n"));
        }
    }

    #[test]
    fn json_lines() {
        let cases: [(Edit, &str); 3] = [
            (
                |_| {},
                r#"{"time":"2026-11-23T10:00:00.123Z","client":"127.0.0.1","listener":"web","route":"api","method":"GET","target":"/path","version":"HTTP/1.1","status":200,"bytes_sent":1234,"duration_us":1500,"upstream":"10.0.0.2:8080","host":"example.com","referer":"http://a/","user_agent":"curl/8.5","reason":null}"#,
            ),
            (
                |e| {
                    (e.time, e.route, e.upstream, e.host, e.referer, e.user_agent) =
                        (at(1_709_251_199, 7), "", None, None, None, None);
                    (e.client, e.status, e.bytes_sent, e.reason) = (
                        "::1".parse().unwrap(),
                        502,
                        0,
                        Some("upstream connect failed"),
                    );
                },
                r#"{"time":"2024-02-29T23:59:59.007Z","client":"::1","listener":"web","route":"","method":"GET","target":"/path","version":"HTTP/1.1","status":502,"bytes_sent":0,"duration_us":1500,"upstream":null,"host":null,"referer":null,"user_agent":null,"reason":"upstream connect failed"}"#,
            ),
            (
                |e| {
                    (e.target, e.host, e.listener, e.upstream) = (
                        b"/\"\\\n\x00\xff",
                        Some(&b"h\x7f"[..]),
                        "caf\u{e9} \u{1f600}",
                        Some("[2001:db8::2]:443".parse().unwrap()),
                    )
                },
                r#"{"time":"2026-11-23T10:00:00.123Z","client":"127.0.0.1","listener":"caf\u00e9 \ud83d\ude00","route":"api","method":"GET","target":"/\"\\\u000a\u0000\u00ff","version":"HTTP/1.1","status":200,"bytes_sent":1234,"duration_us":1500,"upstream":"[2001:db8::2]:443","host":"h\u007f","referer":"http://a/","user_agent":"curl/8.5","reason":null}"#,
            ),
        ];
        for (edit, want) in cases {
            let mut e = entry();
            edit(&mut e);
            assert_eq!(line(AccessLogFormat::Json, &e), format!("{want}\n"));
        }
    }

    /// A JSON value as the tiny checker below understands it: strings as UTF-16 units.
    #[derive(Debug, PartialEq)]
    enum Val {
        Str(Vec<u16>),
        Num(u64),
        Null,
    }

    /// Strict parser for one flat JSON object followed by '\n'; rejects raw control and
    /// non-ASCII bytes, so passing means valid, single-line, ASCII JSON.
    fn parse_flat(s: &[u8]) -> Result<Vec<(String, Val)>, String> {
        let mut i = 0;
        let expect = |i: &mut usize, b: u8| match s.get(*i) {
            Some(&c) if c == b => {
                *i += 1;
                Ok(())
            }
            other => Err(format!("want {:?} at {i}, got {other:?}", b as char)),
        };
        fn string(s: &[u8], i: &mut usize) -> Result<Vec<u16>, String> {
            let mut units = Vec::new();
            loop {
                let b = *s.get(*i).ok_or("unterminated")?;
                *i += 1;
                match b {
                    b'"' => return Ok(units),
                    b'\\' => {
                        let e = *s.get(*i).ok_or("bad escape")?;
                        *i += 1;
                        units.push(match e {
                            b'"' | b'\\' | b'/' => u16::from(e),
                            b'n' => 10,
                            b'u' => {
                                let hex = s.get(*i..*i + 4).ok_or("short \\u")?;
                                *i += 4;
                                u16::from_str_radix(
                                    std::str::from_utf8(hex).map_err(|e| e.to_string())?,
                                    16,
                                )
                                .map_err(|e| e.to_string())?
                            }
                            _ => return Err(format!("escape {e}")),
                        });
                    }
                    0x20..=0x7e => units.push(u16::from(b)),
                    _ => return Err(format!("raw byte {b:#x} in string")),
                }
            }
        }
        let mut fields = Vec::new();
        expect(&mut i, b'{')?;
        loop {
            expect(&mut i, b'"')?;
            let key = String::from_utf16(&string(s, &mut i)?).map_err(|e| e.to_string())?;
            expect(&mut i, b':')?;
            let val = match s.get(i) {
                Some(b'"') => {
                    i += 1;
                    Val::Str(string(s, &mut i)?)
                }
                Some(b'n') if s[i..].starts_with(b"null") => {
                    i += 4;
                    Val::Null
                }
                _ => {
                    let n = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
                    let v = std::str::from_utf8(&s[i..i + n])
                        .map_err(|e| e.to_string())?
                        .parse()
                        .map_err(|e| format!("{e}"))?;
                    i += n;
                    Val::Num(v)
                }
            };
            fields.push((key, val));
            if expect(&mut i, b',').is_err() {
                break;
            }
        }
        expect(&mut i, b'}')?;
        expect(&mut i, b'\n')?;
        if i == s.len() {
            Ok(fields)
        } else {
            Err("trailing bytes".into())
        }
    }

    #[test]
    fn json_is_valid_and_round_trips_every_byte() {
        let hostile: Vec<u8> = (0..=255).collect();
        let mut e = entry();
        (e.target, e.user_agent, e.route, e.reason) = (
            &hostile,
            Some(&hostile[..]),
            "r\u{10348}\"",
            Some("bad \"gateway\"\n"),
        );
        let mut out = Vec::new();
        format_entry(AccessLogFormat::Json, &e, &mut out);
        let fields = parse_flat(&out).expect("valid JSON");
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        let want = "time client listener route method target version status bytes_sent \
                    duration_us upstream host referer user_agent reason";
        assert_eq!(keys, want.split_whitespace().collect::<Vec<_>>());
        let get = |k: &str| &fields.iter().find(|(key, _)| key == k).expect("key").1;
        let bytes: Vec<u16> = hostile.iter().map(|&b| u16::from(b)).collect();
        assert_eq!(get("target"), &Val::Str(bytes.clone()));
        assert_eq!(get("user_agent"), &Val::Str(bytes));
        assert_eq!(
            get("route"),
            &Val::Str("r\u{10348}\"".encode_utf16().collect())
        );
        assert_eq!(
            get("reason"),
            &Val::Str("bad \"gateway\"\n".encode_utf16().collect())
        );
        assert_eq!(get("status"), &Val::Num(200));
        // The combined line of the same entry is one ASCII line too: no log injection.
        let combined = line(AccessLogFormat::Combined, &e);
        assert!(combined
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) || b == b'\n'));
        assert_eq!(combined.matches('\n').count(), 1);
        assert!(line(AccessLogFormat::Off, &e).is_empty());
    }

    /// A writer appending to a shared buffer; `flushed` reports each flush, which the
    /// writer thread performs only after it has written and recycled every queued batch.
    struct Capture {
        out: Arc<Mutex<Vec<u8>>>,
        flushed: Option<Sender<()>>,
        /// First write announces itself, then waits until the test drops the gate's sender.
        gate: Option<(Sender<()>, Receiver<()>)>,
    }

    impl Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Some((entered, release)) = self.gate.take() {
                let _ = entered.send(());
                let _ = release.recv();
            }
            self.out.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            if let Some(tx) = &self.flushed {
                let _ = tx.send(());
            }
            Ok(())
        }
    }

    fn capture(
        flushed: Option<Sender<()>>,
        gate: Option<(Sender<()>, Receiver<()>)>,
    ) -> (AccessLogSink, Arc<Mutex<Vec<u8>>>) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let w = Capture {
            out: Arc::clone(&out),
            flushed,
            gate,
        };
        (AccessLogSink::with_writer(Box::new(w)), out)
    }

    /// The targets of the combined lines written, in order.
    fn targets(out: &Mutex<Vec<u8>>) -> Vec<String> {
        let out = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        out.lines()
            .map(|l| l.split(' ').nth(6).unwrap().to_string())
            .collect()
    }

    fn log_target(core: &mut CoreLog, target: &str) {
        let mut e = entry();
        e.target = target.as_bytes();
        core.log(AccessLogFormat::Combined, &e);
    }

    #[test]
    fn sink_writes_all_lines_in_order() {
        let (sink, out) = capture(None, None);
        let mut core = CoreLog::new(&sink);
        let want: Vec<String> = (0..3000).map(|i| format!("/{i}")).collect();
        for t in &want {
            log_target(&mut core, t);
            core.log(AccessLogFormat::Off, &entry());
        }
        // 3000 lines of ~100 bytes span several batches, but fewer than the queue holds.
        core.flush();
        sink.shutdown();
        assert_eq!(targets(&out), want);
        assert_eq!(sink.dropped(), 0);
    }

    #[test]
    fn stalled_writer_drops_batches_instead_of_blocking() {
        let (entered_tx, entered) = unbounded();
        let (release, release_rx) = unbounded::<()>();
        let (sink, out) = capture(None, Some((entered_tx, release_rx)));
        let mut core = CoreLog::new(&sink);
        log_target(&mut core, "/0");
        core.flush();
        entered.recv().unwrap(); // the writer now holds batch 0 and waits: queue is empty
        for i in 1..=QUEUE_BATCHES {
            log_target(&mut core, &format!("/{i}"));
            core.flush();
        }
        assert_eq!(sink.dropped(), 0);
        for i in 0..5 {
            log_target(&mut core, &format!("/lost{i}"));
            let ptr = core.buf.as_ptr();
            core.flush(); // returns at once; the dropped batch's buffer is kept for reuse
            assert_eq!((core.buf.as_ptr(), core.buf.len()), (ptr, 0));
        }
        assert_eq!(sink.dropped(), 5);
        drop(release);
        sink.shutdown();
        let want: Vec<String> = (0..=QUEUE_BATCHES).map(|i| format!("/{i}")).collect();
        assert_eq!(targets(&out), want);
    }

    #[test]
    fn buffers_are_recycled_without_allocating() {
        let (flushed_tx, flushed) = unbounded();
        let (sink, _out) = capture(Some(flushed_tx), None);
        let mut core = CoreLog::new(&sink);
        let e = entry();
        let mut pool = vec![core.buf.as_ptr()];
        for round in 0..50 {
            let (ptr, cap) = (core.buf.as_ptr(), core.buf.capacity());
            loop {
                core.log(AccessLogFormat::Json, &e);
                if core.buf.is_empty() {
                    break; // handed off
                }
                // Within a batch the buffer never reallocates.
                assert_eq!((core.buf.as_ptr(), core.buf.capacity()), (ptr, cap));
            }
            flushed.recv().unwrap(); // the batch is written and its buffer is back in the pool
            if !pool.contains(&core.buf.as_ptr()) {
                pool.push(core.buf.as_ptr());
            }
            // Only the first hand-off may allocate (the pool starts empty); then two
            // buffers alternate forever.
            assert!(pool.len() <= 2, "round {round}: new buffer allocated");
            assert!(core.buf.capacity() >= BATCH_CAPACITY);
        }
        assert_eq!(sink.dropped(), 0);
    }

    #[test]
    fn shutdown_is_idempotent_and_later_batches_are_dropped() {
        fn shareable<T: Clone + Send + Sync>(_: &T) {}
        let (sink, out) = capture(None, None);
        shareable(&sink);
        let mut core = CoreLog::new(&sink);
        log_target(&mut core, "/kept");
        core.flush();
        let other = sink.clone();
        std::thread::spawn(move || other.shutdown()).join().unwrap();
        sink.shutdown();
        log_target(&mut core, "/late");
        core.flush();
        assert_eq!(sink.dropped(), 1);
        assert_eq!(targets(&out), ["/kept"]);
    }

    #[test]
    fn lost_batches_count_in_the_metrics_registry() {
        let registry = crate::metrics::Registry::new();
        let sink = AccessLogSink::with_writer_counting(
            Box::new(std::io::sink()),
            registry.access_log_dropped(),
        );
        let mut core = CoreLog::new(&sink);
        sink.shutdown();
        log_target(&mut core, "/late");
        core.flush();
        assert_eq!(sink.dropped(), 1);
        let text = registry.render_prometheus(&[]);
        assert!(
            text.contains("\nringway_access_log_dropped_batches_total 1\n"),
            "{text}"
        );
    }
}

//! Micro benchmark: the cost of a worker's per-connection snapshot read, with the control
//! thread idle and with it publishing 1000 snapshots per second.
//!
//!     cargo bench --bench snapshot
//!
//! Readers call `SharedSnapshot::load_if_changed` exactly as `worker::Core::view` does
//! (one atomic load; an `Arc` clone only when the generation moved). If the read took a
//! lock, or contended with the publisher, the "publishing" column would be much slower
//! than the "idle" one.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringway::config::Config;
use ringway::snapshot::{SharedSnapshot, Snapshot};

const CONFIG: &str = r#"(
    listeners: [(name: "l", bind: "127.0.0.1:1", protocol: Tcp(pool: "p"))],
    pools: [(name: "p", backends: [(addr: "127.0.0.1:2"), (addr: "127.0.0.1:3")])],
)"#;

/// Reads per second of one reader thread over `window`, optionally with a publisher.
fn reads_per_second(
    shared: &Arc<SharedSnapshot>,
    publish_per_sec: u32,
    window: Duration,
) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = (publish_per_sec > 0).then(|| {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            let period = Duration::from_secs(1) / publish_per_sec;
            let mut next = Instant::now();
            let mut published = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let current = shared.load();
                shared.publish(Snapshot {
                    generation: 0,
                    config_generation: current.config_generation,
                    config: current.config.clone(),
                    pools: current.pools.clone(),
                });
                published += 1;
                next += period;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            published
        })
    });
    let mut seen = shared.load().generation;
    let mut reads = 0u64;
    let started = Instant::now();
    while started.elapsed() < window {
        // A batch between clock reads, so the clock does not dominate the measurement.
        for _ in 0..1024 {
            if let Some(next) = shared.load_if_changed(seen) {
                seen = next.generation;
                black_box(&next);
            }
            reads += 1;
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let published = publisher.map_or(0, |p| p.join().unwrap());
    (reads as f64 / elapsed.as_secs_f64(), published)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let config = Arc::new(Config::parse(CONFIG).expect("bench config"));
    let shared = Arc::new(SharedSnapshot::new(Snapshot::initial(config)));
    let window = Duration::from_millis(500);
    let runs = 5;
    let mut idle = Vec::new();
    let mut busy = Vec::new();
    let mut published = 0;
    for _ in 0..runs {
        idle.push(reads_per_second(&shared, 0, window).0);
        let (rate, n) = reads_per_second(&shared, 1000, window);
        busy.push(rate);
        published += n;
    }
    let (idle, busy) = (median(idle), median(busy));
    println!("snapshot reads, one reader, median of {runs} runs of {window:?}:");
    println!(
        "  control thread idle:             {:>8.2} ns/read ({:.0} M reads/s)",
        1e9 / idle,
        idle / 1e6
    );
    println!(
        "  publishing 1000 snapshots/s:     {:>8.2} ns/read ({:.0} M reads/s, {} published)",
        1e9 / busy,
        busy / 1e6,
        published
    );
    println!("  slowdown while publishing:       {:>8.3}x", idle / busy);
}

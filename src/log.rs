//! Minimal leveled logging to stderr.
//!
//! Log lines are rare (start-up, reloads, failures that an operator must see), so a plain
//! locked write to stderr is enough; nothing on the per-request path logs at the default
//! level. `RINGWAY_LOG=error|warn|info|debug` picks the level (default `info`).

use std::fmt::Arguments;
use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Severity of a log line, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed and an operator should act.
    Error,
    /// Something degraded but ringway carries on.
    Warn,
    /// Lifecycle events: start, ready, reload, stop.
    Info,
    /// Per-connection detail, for debugging only.
    Debug,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

fn max_level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| match std::env::var("RINGWAY_LOG").as_deref() {
        Ok("error") => Level::Error,
        Ok("warn") => Level::Warn,
        Ok("debug") => Level::Debug,
        _ => Level::Info,
    })
}

/// Whether lines at `level` are written; lets callers skip formatting work.
pub fn enabled(level: Level) -> bool {
    level <= max_level()
}

/// Write one line at `level`: `2026-11-23T11:35:01.123Z INFO message`.
pub fn write(level: Level, args: Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, millis) = (now.as_secs(), now.subsec_millis());
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let days = secs / 86_400;
    let (y, mo, d) = civil_from_days(days as i64);
    let mut err = std::io::stderr().lock();
    // A failed write to stderr has nowhere better to be reported; ignore it.
    let _ = writeln!(
        err,
        "{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z {} {args}",
        level.label()
    );
}

/// Convert days since 1970-01-01 to a (year, month, day) civil date (Howard Hinnant's
/// algorithm), so log timestamps need no date crate.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Log at error level.
pub fn error(args: Arguments<'_>) {
    write(Level::Error, args)
}

/// Log at warn level.
pub fn warn(args: Arguments<'_>) {
    write(Level::Warn, args)
}

/// Log at info level.
pub fn info(args: Arguments<'_>) {
    write(Level::Info, args)
}

/// Log at debug level.
pub fn debug(args: Arguments<'_>) {
    write(Level::Debug, args)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn civil_dates() {
        for (days, want) in [
            (0, (1970, 1, 1)),
            (59, (1970, 3, 1)),
            (11_016, (2000, 2, 29)),
            (20_780, (2026, 11, 23)),
        ] {
            assert_eq!(civil_from_days(days), want, "days {days}");
        }
    }
}

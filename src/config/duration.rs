//! Human-written durations such as `"250ms"`, `"1.5s"` or `"5m"`.
//!
//! The arithmetic is done in whole nanoseconds with integers (never floats), so
//! `"0.1s"` is exactly 100 ms and every rejection can say precisely why.

use std::time::Duration;

/// Accepted units and their length in nanoseconds. Listed in the order the error
/// message suggests them.
const UNITS: &[(&str, u128)] = &[
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
];

/// Shown whenever the unit is missing or wrong.
const UNIT_HINT: &str = "expected one of us, ms, s, m, h";

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parse a duration string like `"250ms"`, `"1.5s"`, `"5m"`.
///
/// The format is a non-negative integer or decimal number immediately followed by a
/// unit: `us`, `ms`, `s`, `m` or `h`. Zero (`"0s"`) is a valid duration here; callers
/// that need a positive value check that themselves.
///
/// # Errors
///
/// Returns a message quoting the input and saying what is wrong: empty input,
/// surrounding whitespace, a negative or malformed number, a missing or unknown unit,
/// precision finer than one nanosecond, or a value too large for [`Duration`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_nanos(s)
        .and_then(nanos_to_duration)
        .map_err(|why| format!("invalid duration {s:?}: {why}"))
}

/// The whole parse, returning total nanoseconds or the reason (without the input,
/// which [`parse_duration`] adds).
fn parse_nanos(s: &str) -> Result<u128, String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.trim() != s {
        return Err("it has leading or trailing whitespace".into());
    }
    let (number, unit) = split_number_unit(s);
    if number.is_empty() {
        return Err(if s.starts_with('-') {
            "negative durations are not allowed".into()
        } else {
            "it must start with a number, e.g. \"250ms\"".into()
        });
    }
    let unit_nanos = unit_nanos(unit)?;
    let (int_part, frac_part) = split_decimal(number)?;
    let whole = int_part
        .parse::<u128>()
        .ok()
        .and_then(|n| n.checked_mul(unit_nanos))
        .ok_or_else(|| "it is too large".to_string())?;
    let fraction = fraction_nanos(frac_part, unit_nanos)?;
    whole
        .checked_add(fraction)
        .ok_or_else(|| "it is too large".to_string())
}

/// Split `"1.5ms"` into `("1.5", "ms")`: the number is the leading run of digits and
/// dots, the unit is everything after it.
fn split_number_unit(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    s.split_at(end)
}

/// Look up a unit's length, explaining a missing or unknown unit.
fn unit_nanos(unit: &str) -> Result<u128, String> {
    if unit.is_empty() {
        return Err(format!("missing unit ({UNIT_HINT})"));
    }
    if unit.starts_with(char::is_whitespace) {
        return Err("there must be no space between the number and the unit".into());
    }
    UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|&(_, nanos)| nanos)
        .ok_or_else(|| format!("unknown unit {unit:?} ({UNIT_HINT})"))
}

/// Split a number made of digits and dots into integer and fractional digits,
/// rejecting forms like `"1."`, `".5"` and `"1.2.3"` that are probably typos.
fn split_decimal(number: &str) -> Result<(&str, &str), String> {
    let Some((int_part, frac_part)) = number.split_once('.') else {
        return Ok((number, ""));
    };
    if frac_part.contains('.') {
        return Err(format!("{number:?} is not a number"));
    }
    if int_part.is_empty() {
        return Err("a digit is required before the decimal point".into());
    }
    if frac_part.is_empty() {
        return Err("a digit is required after the decimal point".into());
    }
    Ok((int_part, frac_part))
}

/// Convert the fractional digits of a number in a unit of `unit_nanos` to whole
/// nanoseconds. Fractions that do not land on a whole nanosecond are rejected rather
/// than silently truncated (which could turn a tiny positive value into zero).
fn fraction_nanos(frac_digits: &str, unit_nanos: u128) -> Result<u128, String> {
    // Trailing zeros carry no value; dropping them keeps the numbers small.
    let digits = frac_digits.trim_end_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    // No unit is longer than 10^13 ns, so more than 20 significant fractional digits
    // can never be a whole number of nanoseconds; this also bounds the u128 maths.
    let too_precise = || "it is more precise than one nanosecond".to_string();
    if digits.len() > 20 {
        return Err(too_precise());
    }
    let numerator = digits.parse::<u128>().map_err(|_| too_precise())? * unit_nanos;
    // At most 20 digits (checked above), so the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    let denominator = 10u128.pow(digits.len() as u32);
    if numerator % denominator != 0 {
        return Err(too_precise());
    }
    Ok(numerator / denominator)
}

/// Build a [`Duration`], failing if the seconds do not fit its `u64`.
fn nanos_to_duration(nanos: u128) -> Result<Duration, String> {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| "it is too large".to_string())?;
    // The remainder is below 10^9, so it always fits in a u32.
    let subsec = (nanos % NANOS_PER_SEC) as u32;
    Ok(Duration::new(secs, subsec))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn valid_durations() {
        let cases: &[(&str, Duration)] = &[
            ("250ms", Duration::from_millis(250)),
            ("2s", Duration::from_secs(2)),
            ("1m", Duration::from_secs(60)),
            ("5m", Duration::from_secs(300)),
            ("2h", Duration::from_secs(7_200)),
            ("1.5s", Duration::from_millis(1_500)),
            ("0.1s", Duration::from_millis(100)),
            ("0.5m", Duration::from_secs(30)),
            ("1.25h", Duration::from_secs(4_500)),
            ("750us", Duration::from_micros(750)),
            ("0.001us", Duration::from_nanos(1)),
            (
                "1.500000000000000000000000000s",
                Duration::from_millis(1_500),
            ),
            ("007s", Duration::from_secs(7)),
            ("0s", Duration::ZERO),
            ("0.0ms", Duration::ZERO),
            // The largest value a Duration can hold, spelled in seconds.
            ("18446744073709551615s", Duration::from_secs(u64::MAX)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input), Ok(*expected), "input {input:?}");
        }
    }

    #[test]
    fn invalid_durations() {
        // (input, fragment the error message must contain)
        let cases: &[(&str, &str)] = &[
            ("", "it is empty"),
            ("5", "missing unit"),
            ("1.5", "missing unit"),
            ("-1s", "negative"),
            ("-0s", "negative"),
            ("s", "must start with a number"),
            ("+1s", "must start with a number"),
            ("10x", "unknown unit \"x\""),
            ("10sec", "unknown unit \"sec\""),
            ("10S", "unknown unit \"S\""),
            ("1d", "unknown unit \"d\""),
            ("1s5", "unknown unit \"s5\""),
            ("1 s", "no space"),
            (" 1s", "whitespace"),
            ("1s ", "whitespace"),
            ("1.s", "after the decimal point"),
            (".5s", "before the decimal point"),
            ("1.2.3s", "is not a number"),
            ("0.0001us", "more precise than one nanosecond"),
            ("1.0000000001s", "more precise than one nanosecond"),
            ("0.000000000000000000000000000001h", "more precise"),
            ("18446744073709551616s", "too large"),
            ("99999999999999999999999999999999999999999h", "too large"),
            ("5124095576030432h", "too large"),
        ];
        for (input, fragment) in cases {
            let err = parse_duration(input).expect_err(input);
            assert!(
                err.contains(fragment),
                "input {input:?}: error {err:?} lacks {fragment:?}"
            );
            assert!(
                err.starts_with(&format!("invalid duration {input:?}")),
                "input {input:?}: error {err:?} does not quote the input"
            );
        }
    }
}

//! Durations as Go writes them (`metav1.Duration`): `"10s"`, `"1m30s"`, `"500ms"`, `"2h"`.
//!
//! The kubelet's configuration file and its messages (`pleg was last seen active 3m0s ago`)
//! use Go's `time.ParseDuration` and `Duration.String`; [`parse_go_duration`] and
//! [`format_go_duration`] follow them, so a file written for the kubelet reads the same here
//! and a message reads the same in `kubectl describe node`.

use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Go's `time.Duration` is an `int64` of nanoseconds: nothing longer parses.
const MAX_NANOS: u128 = i64::MAX as u128;

/// A duration read from or written to the configuration in Go's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    /// A duration of `secs` seconds.
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        GoDuration(Duration::from_secs(secs))
    }

    /// The duration as a [`std::time::Duration`].
    #[must_use]
    pub const fn get(self) -> Duration {
        self.0
    }

    /// Whether it is zero, which the kubelet reads as "not set".
    #[must_use]
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<Duration> for GoDuration {
    fn from(d: Duration) -> Self {
        GoDuration(d)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_go_duration(self.0))
    }
}

impl std::str::FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_go_duration(s).map(GoDuration)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_go_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A string that is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}{}", detail_suffix(*.detail))]
pub struct DurationError {
    /// The text as it was given.
    pub input: String,
    /// Why it was refused, when more can be said than "invalid".
    pub detail: Option<&'static str>,
}

fn detail_suffix(detail: Option<&'static str>) -> String {
    detail.map(|d| format!(": {d}")).unwrap_or_default()
}

/// Parses a Go duration: a sequence of decimal numbers, each with an optional fraction and a
/// unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), like `"1h15m30.5s"`; `"0"` alone needs no
/// unit. Negative durations are refused: no kubelet setting takes one.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = |detail: Option<&'static str>| DurationError {
        input: input.to_owned(),
        detail,
    };
    let mut rest = input;
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if rest.starts_with('-') {
        return Err(invalid(Some("negative durations are not allowed")));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid(None));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => {
                let n = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid(None));
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(invalid(Some("missing unit"))),
            _ => return Err(invalid(None)),
        };
        let too_long = || invalid(Some("too long"));
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| too_long())?
        };
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_long)?;
        // The fraction contributes unit * 0.digits, truncated to whole nanoseconds as Go does.
        let mut scale = unit_nanos;
        for digit in frac_part.bytes() {
            if scale < 10 {
                break;
            }
            scale /= 10;
            nanos += u128::from(digit - b'0') * scale;
        }
        total = total.checked_add(nanos).ok_or_else(too_long)?;
        if total > MAX_NANOS {
            return Err(too_long());
        }
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| invalid(Some("too long")))?;
    let subsec = u32::try_from(total % 1_000_000_000).map_err(|_| invalid(Some("too long")))?;
    Ok(Duration::new(secs, subsec))
}

/// Formats a duration as Go's `Duration.String` does: `"0s"`, `"1.5ms"`, `"10s"`, `"3m0s"`,
/// `"27h14m51.413818128s"`.
#[must_use]
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}\u{b5}s", fraction(nanos, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 6));
    }
    let secs = nanos / 1_000_000_000;
    let (hours, minutes, seconds) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    out.push_str(&fraction(
        seconds * 1_000_000_000 + nanos % 1_000_000_000,
        9,
    ));
    out.push('s');
    out
}

/// `value / 10^digits` with the fraction's trailing zeros (and a bare point) dropped.
fn fraction(value: u128, digits: u32) -> String {
    let scale = 10u128.pow(digits);
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_go_forms() {
        assert_eq!(parse_go_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_go_duration("2h"), Ok(Duration::from_hours(2)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_mins(90)));
        assert_eq!(parse_go_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("+5m"), Ok(Duration::from_mins(5)));
        assert_eq!(parse_go_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_go_duration("100µs"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_go_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(
            parse_go_duration("1h2m3.004s"),
            Ok(Duration::from_millis(3_723_004))
        );
    }

    #[test]
    fn refuses_what_go_refuses() {
        for bad in ["", "10 s", "10", "s", "1x", "1.s.", "-1s", "1h 2m", "."] {
            let err = parse_go_duration(bad).expect_err(bad);
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid duration {bad:?}")),
                "{err}"
            );
        }
        assert!(parse_go_duration("9999999999h").is_err());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        assert_eq!(format_go_duration(Duration::from_nanos(100)), "100ns");
        assert_eq!(format_go_duration(Duration::from_micros(1)), "1µs");
        assert_eq!(format_go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format_go_duration(ms(500)), "500ms");
        assert_eq!(format_go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_go_duration(Duration::from_mins(3)), "3m0s");
        assert_eq!(format_go_duration(Duration::from_hours(2)), "2h0m0s");
        assert_eq!(format_go_duration(ms(2500)), "2.5s");
        assert_eq!(
            format_go_duration(Duration::new(98_091, 413_818_128)),
            "27h14m51.413818128s"
        );
    }

    #[test]
    fn round_trips_through_serde() {
        let d: GoDuration = serde_json::from_str("\"1m30s\"").unwrap();
        assert_eq!(d.get(), Duration::from_secs(90));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1m30s\"");
        let err = serde_json::from_str::<GoDuration>("\"10 s\"").unwrap_err();
        assert!(
            err.to_string().contains("invalid duration \"10 s\""),
            "{err}"
        );
    }
}

//! Time as the Kubernetes API carries it: RFC 3339 with whole seconds.
//!
//! The API server stores `metav1.Time` at second precision, so the kubelet truncates every
//! timestamp before comparing statuses (`status_manager.go` `normalizeStatus`); otherwise a
//! status read back from the server would never equal the one the kubelet generated.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Truncates a timestamp to whole seconds, as the API server would store it.
#[must_use]
pub fn truncate_to_seconds(ts: Timestamp) -> Timestamp {
    Timestamp::from_second(ts.as_second()).unwrap_or(ts)
}

/// The API `Time` for a timestamp, truncated to whole seconds.
#[must_use]
pub fn api_time(ts: Timestamp) -> Time {
    Time(truncate_to_seconds(ts))
}

/// A CRI timestamp (nanoseconds since the Unix epoch) as a timestamp; CRI's "unset" value 0
/// (and anything out of range) is `None`.
#[must_use]
pub fn timestamp_from_unix_nanos(nanos: i64) -> Option<Timestamp> {
    if nanos == 0 {
        return None;
    }
    Timestamp::from_nanosecond(i128::from(nanos)).ok()
}

/// Formats a timestamp the way the API serializes `metav1.Time`: `2024-05-01T10:00:00Z`.
#[must_use]
pub fn format_rfc3339(ts: Timestamp) -> String {
    truncate_to_seconds(ts)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// How long `later` is after `earlier`, or zero when it is not after it.
#[must_use]
pub fn elapsed(earlier: Timestamp, later: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

/// Formats a duration like Go's `time.Duration.String()` does ("10s", "1m20s", "5m0s",
/// "1h0m0s", "1.5s", "250ms"), because upstream messages such as
/// `back-off 1m20s restarting failed container=...` embed that form.
#[must_use]
pub fn go_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    if d < Duration::from_secs(1) {
        let micros = d.as_micros();
        if micros == 0 {
            return format!("{}ns", d.as_nanos());
        }
        if d.as_millis() == 0 {
            return format!("{}µs", trim_fraction(d.as_nanos(), 1000));
        }
        return format!("{}ms", trim_fraction(d.as_nanos(), 1_000_000));
    }
    let total = d.as_secs();
    let (hours, minutes, seconds) = (total / 3600, (total % 3600) / 60, total % 60);
    let nanos = u128::from(d.subsec_nanos());
    let secs = if nanos == 0 {
        seconds.to_string()
    } else {
        trim_fraction(u128::from(seconds) * 1_000_000_000 + nanos, 1_000_000_000)
    };
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `value / unit` as a decimal without trailing zeros ("1.5", "2").
fn trim_fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

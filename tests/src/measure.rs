//! What the benches share: latency summaries (count, p50, p99), a process's memory and CPU
//! from `/proc`, and the number formats of their reports.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};

/// `/proc/<pid>/stat` counts CPU time in `USER_HZ` ticks, which Linux fixes at 100 for
/// user space on every architecture.
const USER_HZ: u64 = 100;

/// Count, median and p99 of one figure.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
}

impl Summary {
    /// `None` without samples.
    #[must_use]
    pub fn of(samples: &[Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Some(Self {
            count: sorted.len(),
            p50: percentile(&sorted, 0.5),
            p99: percentile(&sorted, 0.99),
        })
    }
}

/// Nearest-rank percentile of sorted, non-empty samples.
#[must_use]
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "sample counts are far below 2^52 and positive"
    )]
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Memory and CPU of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessUsage {
    /// `VmHWM`: the peak resident set, in KiB.
    pub peak_rss_kib: u64,
    /// `VmRSS`: the resident set now, in KiB.
    pub rss_kib: u64,
    /// User plus system CPU time.
    pub cpu: Duration,
}

impl ProcessUsage {
    /// The usage of process `pid` (`"self"` for this one).
    pub fn of(pid: &str) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let kib = |field: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("no {field} in /proc/{pid}/status"))
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat"))?;
        // The command name (field 2) may hold spaces; the fields after its `)` are plain.
        // utime and stime are fields 14 and 15, so 11th and 12th after the state (field 3).
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ticks: Vec<u64> = after_name
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|t| t.parse().ok())
            .collect();
        let [utime, stime] = ticks[..] else {
            bail!("unexpected /proc/{pid}/stat: {stat}");
        };
        Ok(Self {
            peak_rss_kib: kib("VmHWM:")?,
            rss_kib: kib("VmRSS:")?,
            cpu: Duration::from_millis((utime + stime) * 1000 / USER_HZ),
        })
    }
}

/// A duration in milliseconds (seconds from 10 s on).
#[must_use]
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 10_000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else if ms < 1.0 {
        format!("{ms:.2}ms")
    } else {
        format!("{ms:.1}ms")
    }
}

/// The ratio `value / base`, or `-` without a base.
#[must_use]
pub fn times(value: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{:.2}", value / base)
    } else {
        "-".to_owned()
    }
}

/// KiB as MiB.
#[must_use]
pub fn mib(kib: f64) -> String {
    format!("{:.1}MiB", kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let summary = Summary::of(&samples).unwrap();
        assert_eq!(summary.count, 100);
        assert_eq!(summary.p50, Duration::from_millis(50));
        assert_eq!(summary.p99, Duration::from_millis(99));
        let one = Summary::of(&[Duration::from_millis(7)]).unwrap();
        assert_eq!(
            (one.p50, one.p99),
            (Duration::from_millis(7), Duration::from_millis(7))
        );
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn this_process_has_memory_and_cpu() {
        let usage = ProcessUsage::of("self").unwrap();
        assert!(usage.rss_kib > 0 && usage.peak_rss_kib >= usage.rss_kib);
    }
}

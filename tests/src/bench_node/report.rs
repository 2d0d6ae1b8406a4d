//! The report: pod startup through the agent beside the CRI floor with the ratio
//! ferrolet / floor, and the agent's memory and CPU beside containerd's over the same
//! windows.

use std::fmt::Write as _;
use std::time::Duration;

use ferrolet_tests::measure::{ProcessUsage, Summary, mib, ms, times};

/// The goals the figures are read against (reported, never enforced).
pub const STARTUP_RATIO_GOAL: f64 = 1.3;
pub const RSS_GOAL_MIB: f64 = 40.0;
pub const CPU_GOAL_PERCENT: f64 = 2.0;

/// Startup latencies of one pod count.
#[derive(Debug)]
pub struct StartupRow {
    pub pods: usize,
    pub floor: Vec<Duration>,
    pub ferrolet: Vec<Duration>,
}

/// A process's usage over a window: its memory at the end, its CPU over the window.
#[derive(Debug, Clone, Copy)]
pub struct WindowUsage {
    pub end: ProcessUsage,
    /// CPU time over the window, in percent of one core.
    pub cpu_percent: f64,
}

impl WindowUsage {
    /// The usage between two readings `window` apart.
    #[must_use]
    pub fn between(before: ProcessUsage, after: ProcessUsage, window: Duration) -> Self {
        let cpu = after.cpu.saturating_sub(before.cpu);
        Self {
            end: after,
            cpu_percent: 100.0 * cpu.as_secs_f64() / window.as_secs_f64(),
        }
    }
}

/// The agent's and containerd's usage over one window.
#[derive(Debug)]
pub struct UsageRow {
    pub label: String,
    pub agent: WindowUsage,
    pub containerd: WindowUsage,
}

pub fn startup_table(rows: &[StartupRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6} {:>11} {:>11} {:>13} {:>13} {:>7} {:>7}",
        "pods", "floor p50", "floor p99", "ferrolet p50", "ferrolet p99", "x p50", "x p99"
    );
    for row in rows {
        let (Some(floor), Some(ferro)) = (Summary::of(&row.floor), Summary::of(&row.ferrolet))
        else {
            continue;
        };
        let _ = writeln!(
            out,
            "{:<6} {:>11} {:>11} {:>13} {:>13} {:>7} {:>7}",
            row.pods,
            ms(floor.p50),
            ms(floor.p99),
            ms(ferro.p50),
            ms(ferro.p99),
            times(ferro.p50.as_secs_f64(), floor.p50.as_secs_f64()),
            times(ferro.p99.as_secs_f64(), floor.p99.as_secs_f64()),
        );
    }
    out
}

#[allow(clippy::cast_precision_loss, reason = "KiB are far below 2^52")]
pub fn usage_table(rows: &[UsageRow], window: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>7} {:>7}",
        format!("over {}s", window.as_secs()),
        "agent RSS",
        "agent HWM",
        "agent CPU",
        "ctrd RSS",
        "ctrd HWM",
        "ctrd CPU",
        "x RSS",
        "x CPU"
    );
    for row in rows {
        let (a, c) = (&row.agent, &row.containerd);
        let _ = writeln!(
            out,
            "{:<22} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>7} {:>7}",
            row.label,
            mib(a.end.rss_kib as f64),
            mib(a.end.peak_rss_kib as f64),
            format!("{:.2}%", a.cpu_percent),
            mib(c.end.rss_kib as f64),
            mib(c.end.peak_rss_kib as f64),
            format!("{:.2}%", c.cpu_percent),
            times(a.end.rss_kib as f64, c.end.rss_kib as f64),
            times(a.cpu_percent, c.cpu_percent),
        );
    }
    out
}

/// One line per goal: the figure and whether it is met (informational).
#[allow(clippy::cast_precision_loss, reason = "KiB are far below 2^52")]
pub fn goals(startup: &[StartupRow], usage: &[UsageRow]) -> String {
    let mut out = String::new();
    for row in startup {
        if let (Some(floor), Some(ferro)) = (Summary::of(&row.floor), Summary::of(&row.ferrolet)) {
            let ratio = ferro.p50.as_secs_f64() / floor.p50.as_secs_f64();
            let _ = writeln!(
                out,
                "goal: startup ferrolet/floor p50 <= {STARTUP_RATIO_GOAL} at {} pods: {ratio:.2} ({})",
                row.pods,
                met(ratio <= STARTUP_RATIO_GOAL)
            );
        }
    }
    for row in usage {
        let rss = row.agent.end.rss_kib as f64 / 1024.0;
        let _ = writeln!(
            out,
            "goal: agent RSS < {RSS_GOAL_MIB} MiB, CPU < {CPU_GOAL_PERCENT}% of a core, {}: \
             {rss:.1} MiB, {:.2}% ({})",
            row.label,
            row.agent.cpu_percent,
            met(rss < RSS_GOAL_MIB && row.agent.cpu_percent < CPU_GOAL_PERCENT)
        );
    }
    out
}

fn met(yes: bool) -> &'static str {
    if yes { "met" } else { "NOT met" }
}

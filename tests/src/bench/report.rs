//! The report: the backends side by side, with the ratio etcd / embedded for every figure
//! when both ran, and the API latency SLO per backend.

use std::fmt::Write as _;
use std::time::Duration;

use ferrolet_tests::measure::{Summary, mib, ms, times};

use super::metrics::Figure;
use super::workload::Outcome;

/// The Kubernetes API call latency SLO for single-object mutating calls (p99, per resource
/// and verb).
pub const WRITE_SLO: Duration = Duration::from_secs(1);

/// The whole report for the outcomes (baseline first).
pub fn render(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let ratio = outcomes.len() == 2;
    let _ = write!(out, "{:<28}", "figure");
    for outcome in outcomes {
        let b = outcome.backend.to_string();
        let _ = write!(
            out,
            " {:>7} {:>10} {:>10}",
            "n",
            format!("{b} p50"),
            format!("{b} p99")
        );
    }
    if ratio {
        let _ = write!(out, " {:>7} {:>7}", "x p50", "x p99");
    }
    out.push('\n');
    for figure in Figure::ALL {
        let summaries: Vec<Option<&Summary>> =
            outcomes.iter().map(|o| o.figures.get(&figure)).collect();
        if summaries.iter().all(Option::is_none) {
            continue;
        }
        let _ = write!(out, "{:<28}", figure.label());
        for summary in &summaries {
            match summary {
                Some(s) => {
                    let _ = write!(out, " {:>7} {:>10} {:>10}", s.count, ms(s.p50), ms(s.p99));
                }
                None => {
                    let _ = write!(out, " {:>7} {:>10} {:>10}", 0, "-", "-");
                }
            }
        }
        if let [Some(base), Some(other)] = summaries[..] {
            let _ = write!(
                out,
                " {:>7} {:>7}",
                times(other.p50.as_secs_f64(), base.p50.as_secs_f64()),
                times(other.p99.as_secs_f64(), base.p99.as_secs_f64())
            );
        }
        out.push('\n');
    }
    out.push('\n');
    resources(&mut out, outcomes, ratio);
    out.push('\n');
    for outcome in outcomes {
        let _ = writeln!(out, "{}", slo_line(outcome));
    }
    for outcome in outcomes {
        problems(&mut out, outcome);
    }
    out
}

/// A row of the second table: its label, its value in an outcome, how to print the value.
type Row = (&'static str, fn(&Outcome) -> Option<f64>, fn(f64) -> String);

/// Memory, CPU, throughput and health rows.
fn resources(out: &mut String, outcomes: &[Outcome], ratio: bool) {
    let _ = write!(out, "{:<28}", "figure");
    for outcome in outcomes {
        let _ = write!(out, " {:>14}", outcome.backend.to_string());
    }
    if ratio {
        let _ = write!(out, " {:>7}", "x");
    }
    out.push('\n');
    #[allow(
        clippy::cast_precision_loss,
        reason = "KiB and counts are far below 2^52"
    )]
    let rows: [Row; 13] = [
        (
            "control plane peak RSS",
            |o| Some(o.control_plane.peak_rss_kib as f64),
            mib,
        ),
        (
            "control plane end RSS",
            |o| Some(o.control_plane.rss_kib as f64),
            mib,
        ),
        (
            "etcd peak RSS",
            |o| o.etcd.map(|e| e.peak_rss_kib as f64),
            mib,
        ),
        (
            "peak RSS, all processes",
            |o| Some((o.control_plane.peak_rss_kib + o.etcd.map_or(0, |e| e.peak_rss_kib)) as f64),
            mib,
        ),
        (
            "CPU: control plane",
            |o| Some(o.control_plane.cpu.as_secs_f64()),
            secs,
        ),
        ("CPU: etcd", |o| o.etcd.map(|e| e.cpu.as_secs_f64()), secs),
        (
            "CPU: bench clients",
            |o| Some(o.bench_cpu.as_secs_f64()),
            secs,
        ),
        ("pods created/s", |o| Some(o.create_rate), rate),
        ("pods bound/s", |o| Some(o.bind_rate), rate),
        ("pods created", |o| Some(o.pods_created as f64), count),
        ("pods seen Running", |o| Some(o.pods_running as f64), count),
        (
            "writes without watch event",
            |o| Some(o.unmatched_writes as f64),
            count,
        ),
        (
            "run time (from 1st create)",
            |o| Some(o.wall.as_secs_f64()),
            secs,
        ),
    ];
    for (label, value, format) in rows {
        let values: Vec<Option<f64>> = outcomes.iter().map(value).collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        let _ = write!(out, "{label:<28}");
        for v in &values {
            let _ = write!(out, " {:>14}", v.map_or_else(|| "-".to_owned(), format));
        }
        if let [Some(base), Some(other)] = values[..] {
            let _ = write!(out, " {:>7}", times(other, base));
        }
        out.push('\n');
    }
}

/// `p99 single-object write <= 1s: yes/no`, naming the slowest write figure. Failed writes
/// and pods that never ran are reported apart (and fail the run).
pub fn slo_line(outcome: &Outcome) -> String {
    let worst = Figure::ALL
        .into_iter()
        .filter(|f| f.is_write())
        .filter_map(|f| outcome.figures.get(&f).map(|s| (f, s.p99)))
        .max_by_key(|(_, p99)| *p99);
    match worst {
        Some((figure, p99)) => format!(
            "{}: p99 single-object write <= 1s: {} (slowest: {} p99 {})",
            outcome.backend,
            if p99 <= WRITE_SLO { "yes" } else { "no" },
            figure.label().trim_start_matches("write: "),
            ms(p99)
        ),
        None => format!(
            "{}: p99 single-object write <= 1s: no writes",
            outcome.backend
        ),
    }
}

/// Errors of the workload and recovered watch errors.
fn problems(out: &mut String, outcome: &Outcome) {
    for (what, (count, first)) in [
        ("errors", &outcome.errors),
        ("watch errors (recovered)", &outcome.watch_errors),
    ] {
        if *count == 0 {
            continue;
        }
        let _ = writeln!(out, "{}: {count} {what}, first ones:", outcome.backend);
        for message in first {
            let _ = writeln!(out, "  {message}");
        }
    }
}

fn secs(s: f64) -> String {
    format!("{s:.1}s")
}

fn rate(r: f64) -> String {
    format!("{r:.1}")
}

fn count(c: f64) -> String {
    format!("{c:.0}")
}

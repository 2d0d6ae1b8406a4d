//! The few Prometheus metric kinds the kubelet exposes (counters, gauges, histograms, each
//! with labels) and their text exposition format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Label values in the order of the metric's label names.
type LabelValues = Vec<String>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Escapes a label value (`\`, `"` and newlines).
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

/// `{a="x",b="y"}`, with `extra` appended (the `le` of histogram buckets); empty without labels.
fn label_set(names: &[&str], values: &[String], extra: Option<(&str, &str)>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some((name, value)) = extra {
        pairs.push(format!("{name}=\"{value}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

/// A float as Prometheus writes it.
fn number(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{value}")
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A counter or gauge with labels.
#[derive(Debug)]
pub struct ValueVec {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<LabelValues, f64>>,
}

impl ValueVec {
    #[must_use]
    pub const fn counter(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        ValueVec {
            name,
            help,
            kind: "counter",
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    #[must_use]
    pub const fn gauge(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        ValueVec {
            name,
            help,
            kind: "gauge",
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    fn key(&self, labels: &[&str]) -> LabelValues {
        debug_assert_eq!(labels.len(), self.labels.len(), "labels of {}", self.name);
        labels.iter().map(|l| (*l).to_owned()).collect()
    }

    /// Adds `by` to the series with these label values.
    pub fn add(&self, labels: &[&str], by: f64) {
        *lock(&self.values).entry(self.key(labels)).or_default() += by;
    }

    /// Sets the series with these label values.
    pub fn set(&self, labels: &[&str], value: f64) {
        lock(&self.values).insert(self.key(labels), value);
    }

    /// Drops every series (gauges recomputed at each scrape).
    pub fn reset(&self) {
        lock(&self.values).clear();
    }

    /// Keeps the series whose label values pass `keep`.
    pub fn retain(&self, keep: impl Fn(&[String]) -> bool) {
        lock(&self.values).retain(|labels, _| keep(labels));
    }

    /// The value of one series.
    #[must_use]
    pub fn get(&self, labels: &[&str]) -> Option<f64> {
        lock(&self.values).get(&self.key(labels)).copied()
    }

    /// Appends the text exposition.
    pub fn encode(&self, out: &mut String) {
        header(out, self.name, self.help, self.kind);
        for (values, value) in lock(&self.values).iter() {
            let _ = writeln!(
                out,
                "{}{} {}",
                self.name,
                label_set(self.labels, values, None),
                number(*value)
            );
        }
    }
}

#[derive(Debug, Clone, Default)]
struct HistogramState {
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A histogram with labels.
#[derive(Debug)]
pub struct HistogramVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    series: Mutex<BTreeMap<LabelValues, HistogramState>>,
}

impl HistogramVec {
    #[must_use]
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> Self {
        HistogramVec {
            name,
            help,
            labels,
            buckets,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one observation in seconds.
    pub fn observe(&self, labels: &[&str], value: f64) {
        let key: LabelValues = labels.iter().map(|l| (*l).to_owned()).collect();
        let mut series = lock(&self.series);
        let state = series.entry(key).or_insert_with(|| HistogramState {
            counts: vec![0; self.buckets.len() + 1],
            ..HistogramState::default()
        });
        let bucket = self
            .buckets
            .iter()
            .position(|le| value <= *le)
            .unwrap_or(self.buckets.len());
        state.counts[bucket] += 1;
        state.sum += value;
        state.count += 1;
    }

    /// Records a duration.
    pub fn observe_duration(&self, labels: &[&str], elapsed: Duration) {
        self.observe(labels, elapsed.as_secs_f64());
    }

    /// How many observations the series with these label values has.
    #[must_use]
    pub fn count(&self, labels: &[&str]) -> u64 {
        let key: LabelValues = labels.iter().map(|l| (*l).to_owned()).collect();
        lock(&self.series).get(&key).map_or(0, |s| s.count)
    }

    /// Appends the text exposition: cumulative buckets, `_sum` and `_count`.
    pub fn encode(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        for (values, state) in lock(&self.series).iter() {
            let mut cumulative = 0;
            for (i, count) in state.counts.iter().enumerate() {
                cumulative += count;
                let le = self
                    .buckets
                    .get(i)
                    .map_or("+Inf".to_owned(), |b| number(*b));
                let _ = writeln!(
                    out,
                    "{}_bucket{} {cumulative}",
                    self.name,
                    label_set(self.labels, values, Some(("le", &le)))
                );
            }
            let labels = label_set(self.labels, values, None);
            let _ = writeln!(out, "{}_sum{labels} {}", self.name, number(state.sum));
            let _ = writeln!(out, "{}_count{labels} {}", self.name, state.count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_encode_with_escaped_labels() {
        let counter = ValueVec::counter("c_total", "A counter.", &["op"]);
        counter.add(&["list"], 1.0);
        counter.add(&["list"], 2.0);
        counter.add(&["say \"hi\"\n"], 1.0);
        let mut out = String::new();
        counter.encode(&mut out);
        assert_eq!(
            out,
            "# HELP c_total A counter.\n# TYPE c_total counter\nc_total{op=\"list\"} 3\n\
             c_total{op=\"say \\\"hi\\\"\\n\"} 1\n"
        );
        let gauge = ValueVec::gauge("g", "A gauge.", &[]);
        gauge.set(&[], 4.5);
        let mut out = String::new();
        gauge.encode(&mut out);
        assert!(out.ends_with("# TYPE g gauge\ng 4.5\n"), "{out}");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = HistogramVec::new("h_seconds", "A histogram.", &["op"], &[0.1, 1.0]);
        histogram.observe(&["x"], 0.05);
        histogram.observe(&["x"], 0.5);
        histogram.observe(&["x"], 5.0);
        assert_eq!(histogram.count(&["x"]), 3);
        let mut out = String::new();
        histogram.encode(&mut out);
        let lines: Vec<&str> = out.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "h_seconds_bucket{op=\"x\",le=\"0.1\"} 1",
                "h_seconds_bucket{op=\"x\",le=\"1\"} 2",
                "h_seconds_bucket{op=\"x\",le=\"+Inf\"} 3",
                "h_seconds_sum{op=\"x\"} 5.55",
                "h_seconds_count{op=\"x\"} 3",
            ]
        );
    }
}

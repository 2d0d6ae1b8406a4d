//! The pod's quality of service class (`qosClass`).
//!
//! A port of upstream `pkg/apis/core/v1/helper/qos` `ComputePodQOS` (without pod-level
//! resources): `Guaranteed` when every container limits CPU and memory and requests equal
//! limits, `BestEffort` when nothing requests or limits CPU or memory, `Burstable` otherwise.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// `Guaranteed`.
pub const GUARANTEED: &str = "Guaranteed";
/// `Burstable`.
pub const BURSTABLE: &str = "Burstable";
/// `BestEffort`.
pub const BEST_EFFORT: &str = "BestEffort";

/// The resources that decide the class.
const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// The quality of service class of a pod, computed from its containers' resources.
#[must_use]
pub fn compute_qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return BEST_EFFORT;
    };
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for container in all {
        let resources = container.resources.as_ref();
        let positive = |list: Option<&BTreeMap<String, Quantity>>| -> Vec<(&'static str, i128)> {
            QOS_RESOURCES
                .iter()
                .filter_map(|name| {
                    let value = parse_quantity(&list?.get(*name)?.0)?;
                    (value > 0).then_some((*name, value))
                })
                .collect()
        };
        for (name, value) in positive(resources.and_then(|r| r.requests.as_ref())) {
            *requests.entry(name).or_default() += value;
        }
        let found = positive(resources.and_then(|r| r.limits.as_ref()));
        if found.len() < QOS_RESOURCES.len() {
            guaranteed = false;
        }
        for (name, value) in found {
            *limits.entry(name).or_default() += value;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return BEST_EFFORT;
    }
    if guaranteed
        && requests.len() == limits.len()
        && requests
            .iter()
            .all(|(name, req)| limits.get(name) == Some(req))
    {
        return GUARANTEED;
    }
    BURSTABLE
}

/// A resource quantity (`500m`, `1.5Gi`, `2e3`, `128974848`) in billionths of its unit;
/// `None` when it does not parse.
#[must_use]
pub fn parse_quantity(text: &str) -> Option<i128> {
    let text = text.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let number_end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let mantissa: i128 = digits.parse().ok()?;
    let decimals = u32::try_from(fraction.len()).ok()?;
    // value = mantissa * 10^-decimals * multiplier; in nano-units: * 10^9.
    let (binary_shift, decimal_exponent): (u32, i32) = match suffix {
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "" => (0, 0),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        other => {
            let exponent = other.strip_prefix(['e', 'E'])?;
            (0, exponent.parse().ok()?)
        }
    };
    let scaled = mantissa.checked_mul(1_i128.checked_shl(binary_shift)?)?;
    let exponent = decimal_exponent + 9 - i32::try_from(decimals).ok()?;
    let value = if exponent >= 0 {
        scaled.checked_mul(10_i128.checked_pow(exponent.unsigned_abs())?)?
    } else {
        // Round up like the API does for sub-nano precision.
        let divisor = 10_i128.checked_pow(exponent.unsigned_abs())?;
        (scaled + divisor - 1) / divisor
    };
    Some(if negative { -value } else { value })
}

//! Resource quantities (`100m`, `1.5Gi`, `2e3`) as exact decimals, with the rounding the
//! kubelet relies on: `Value()` and `MilliValue()` of `k8s.io/apimachinery/pkg/api/resource`
//! round up, away from zero.
//!
//! k8s-openapi keeps a quantity as its string, so the kubelet arithmetic (CPU shares, CFS
//! quota, memory limits, OOM score, downward API divisors, `QoS`) needs this parser.

use std::cmp::Ordering;

/// Why a quantity string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not of the form `<number><suffix>`.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    /// The suffix is not one Kubernetes knows.
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The value does not fit the exact representation used here.
    #[error("quantity is too large")]
    TooLarge,
}

/// An exact quantity: `mantissa / 10^scale`. Equality is numeric: `1` equals `1000m`.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    mantissa: i128,
    scale: u32,
}

/// Largest decimal exponent accepted; beyond it the value cannot be held exactly.
const MAX_EXPONENT: i32 = 30;

impl Quantity {
    /// The zero quantity.
    pub const ZERO: Self = Self {
        mantissa: 0,
        scale: 0,
    };

    /// An integer quantity.
    #[must_use]
    pub const fn from_int(value: i64) -> Self {
        Self {
            mantissa: value as i128,
            scale: 0,
        }
    }

    /// Parses the Kubernetes quantity syntax.
    pub fn parse(input: &str) -> Result<Self, QuantityError> {
        let bytes = input.as_bytes();
        let mut pos = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                pos += 1;
                true
            }
            Some(b'+') => {
                pos += 1;
                false
            }
            _ => false,
        };
        let mut mantissa: i128 = 0;
        let mut scale: u32 = 0;
        let mut digits = 0;
        let mut seen_point = false;
        while let Some(&byte) = bytes.get(pos) {
            match byte {
                b'0'..=b'9' => {
                    mantissa = mantissa
                        .checked_mul(10)
                        .and_then(|m| m.checked_add(i128::from(byte - b'0')))
                        .ok_or(QuantityError::TooLarge)?;
                    digits += 1;
                    if seen_point {
                        scale += 1;
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => break,
            }
            pos += 1;
        }
        if digits == 0 {
            return Err(QuantityError::Format);
        }
        let suffix = &input[pos..];
        let (binary_power, decimal_exponent) = parse_suffix(suffix)?;
        let mut quantity = Self { mantissa, scale };
        if binary_power > 0 {
            let factor = 1024_i128.pow(binary_power);
            quantity.mantissa = quantity
                .mantissa
                .checked_mul(factor)
                .ok_or(QuantityError::TooLarge)?;
        }
        quantity = quantity.with_exponent(decimal_exponent)?;
        if negative {
            quantity.mantissa = -quantity.mantissa;
        }
        Ok(quantity)
    }

    fn with_exponent(mut self, exponent: i32) -> Result<Self, QuantityError> {
        if exponent >= 0 {
            let factor = 10_i128
                .checked_pow(exponent.unsigned_abs())
                .ok_or(QuantityError::TooLarge)?;
            self.mantissa = self
                .mantissa
                .checked_mul(factor)
                .ok_or(QuantityError::TooLarge)?;
        } else {
            self.scale += exponent.unsigned_abs();
        }
        if self.scale > 38 {
            return Err(QuantityError::TooLarge);
        }
        Ok(self)
    }

    /// True for a zero quantity (of any spelling: `0`, `0m`, `0.0Gi`).
    #[must_use]
    pub const fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// The value rounded up to an integer (`Quantity.Value()`), saturating at `i64` bounds.
    #[must_use]
    pub fn value(&self) -> i64 {
        saturate(ceil_div(self.mantissa, pow10(self.scale)))
    }

    /// The value in thousandths rounded up (`Quantity.MilliValue()`), saturating.
    #[must_use]
    pub fn milli_value(&self) -> i64 {
        let milli = self.with_exponent(3).unwrap_or(Self {
            mantissa: if self.mantissa < 0 {
                i128::MIN
            } else {
                i128::MAX
            },
            scale: 0,
        });
        saturate(ceil_div(milli.mantissa, pow10(milli.scale)))
    }

    /// The sum of two quantities (saturating on overflow).
    #[must_use]
    pub fn add(&self, other: &Self) -> Self {
        let scale = self.scale.max(other.scale);
        let a = self.mantissa.saturating_mul(pow10(scale - self.scale));
        let b = other.mantissa.saturating_mul(pow10(scale - other.scale));
        Self {
            mantissa: a.saturating_add(b),
            scale,
        }
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        let scale = self.scale.max(other.scale);
        let a = self.mantissa.checked_mul(pow10(scale - self.scale));
        let b = other.mantissa.checked_mul(pow10(scale - other.scale));
        match (a, b) {
            (Some(a), Some(b)) => a.cmp(&b),
            // Only reachable for values near i128's range; the sign decides.
            _ => self.mantissa.signum().cmp(&other.mantissa.signum()),
        }
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Splits a suffix into a power of 1024 and a power of ten.
fn parse_suffix(suffix: &str) -> Result<(u32, i32), QuantityError> {
    let decimal = match suffix {
        "" => Some(0),
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(exponent) = decimal {
        return Ok((0, exponent));
    }
    let binary = match suffix {
        "Ki" => Some(1),
        "Mi" => Some(2),
        "Gi" => Some(3),
        "Ti" => Some(4),
        "Pi" => Some(5),
        "Ei" => Some(6),
        _ => None,
    };
    if let Some(power) = binary {
        return Ok((power, 0));
    }
    // Decimal exponent form: e3, E-2, e+6.
    let rest = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))
        .ok_or(QuantityError::Suffix)?;
    let unsigned = rest.trim_start_matches(['+', '-']);
    if unsigned.is_empty()
        || rest.len() - unsigned.len() > 1
        || !unsigned.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(QuantityError::Suffix);
    }
    let exponent: i32 = rest.parse().map_err(|_| QuantityError::TooLarge)?;
    if exponent.abs() > MAX_EXPONENT {
        return Err(QuantityError::TooLarge);
    }
    Ok((0, exponent))
}

fn pow10(exponent: u32) -> i128 {
    10_i128.saturating_pow(exponent)
}

/// Division rounding away from zero, as `Quantity.Value()` does.
fn ceil_div(numerator: i128, denominator: i128) -> i128 {
    let quotient = numerator / denominator;
    if numerator % denominator == 0 {
        quotient
    } else if numerator > 0 {
        quotient + 1
    } else {
        quotient - 1
    }
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).expect(s)
    }

    #[test]
    fn parses_decimal_binary_and_exponent_forms() {
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("1").milli_value(), 1000);
        assert_eq!(q("0.5").milli_value(), 500);
        assert_eq!(q(".5").milli_value(), 500);
        assert_eq!(q("2.").value(), 2);
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("1.5Gi").value(), 1_610_612_736);
        assert_eq!(q("128974848").value(), 128_974_848);
        assert_eq!(q("129e6").value(), 129_000_000);
        assert_eq!(q("129M").value(), 129_000_000);
        assert_eq!(q("123Mi").value(), 128_974_848);
        assert_eq!(q("1E").value(), 1_000_000_000_000_000_000);
        assert_eq!(q("1e-3").milli_value(), 1);
        assert_eq!(q("+3").value(), 3);
        assert_eq!(q("-3").value(), -3);
    }

    #[test]
    fn rounds_up_like_apimachinery() {
        assert_eq!(q("100m").value(), 1);
        assert_eq!(q("1n").milli_value(), 1);
        assert_eq!(q("1500u").milli_value(), 2);
        assert_eq!(q("0.1").value(), 1);
        assert_eq!(q("-100m").value(), -1);
    }

    #[test]
    fn rejects_malformed_quantities() {
        for bad in [
            "", "m", "1x", "1.2.3", "1e", "1e+-3", "1Kib", "abc", "1 Gi", "e3",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(Quantity::parse("1e99"), Err(QuantityError::TooLarge));
    }

    #[test]
    fn compares_and_adds_across_scales() {
        assert_eq!(q("1").cmp(&q("1000m")), Ordering::Equal);
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_ne!(q("1Gi"), q("1G"));
        assert_eq!(q("1Gi").cmp(&q("1G")), Ordering::Greater);
        assert!(q("0m").is_zero());
        assert_eq!(q("250m").add(&q("1")).milli_value(), 1250);
        assert_eq!(q("1Mi").max(q("2M")), q("2M"));
    }
}

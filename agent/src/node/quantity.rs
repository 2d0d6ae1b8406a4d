//! Resource quantities (`resource.Quantity`): `"2"`, `"100m"`, `"16384Ki"`, `"1.5Gi"`, `"1e3"`.
//!
//! The node's capacity and allocatable are written the way the kubelet writes them, because
//! clients compare and display those strings: CPUs as a plain count (`"2"`), memory and storage
//! in binary units (`"16374984Ki"`), and the canonical form apimachinery produces after
//! arithmetic (`"1900m"`, `"2k"`). Values are kept in nano-units, which covers every suffix a
//! quantity may carry.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANO: i128 = 1_000_000_000;

/// How a quantity is written back, as apimachinery's `resource.Format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityFormat {
    /// Powers of ten: `m`, `k`, `M`, `G`, … (and plain numbers).
    DecimalSI,
    /// Powers of two: `Ki`, `Mi`, `Gi`, … for byte counts.
    BinarySI,
    /// An exponent, `1e3`; written back in the `DecimalSI` form.
    DecimalExponent,
}

/// A resource quantity with its value and the format it is written in.
///
/// Equality and ordering compare values only: `"1Ki"` equals `"1024"`.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: QuantityFormat,
}

/// A string that is not a resource quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?}: {reason}")]
pub struct QuantityError {
    /// The text as it was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Quantity {
    /// The zero quantity.
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: QuantityFormat::DecimalSI,
    };

    /// A whole number in the given format (`NewQuantity`).
    #[must_use]
    pub fn from_int(value: i64, format: QuantityFormat) -> Self {
        Quantity {
            nanos: i128::from(value) * NANO,
            format,
        }
    }

    /// A byte count, written in binary units (`"16384Ki"`).
    #[must_use]
    pub fn from_bytes(bytes: u64) -> Self {
        Quantity {
            nanos: i128::from(bytes) * NANO,
            format: QuantityFormat::BinarySI,
        }
    }

    /// Parses a quantity as the API server does.
    pub fn parse(input: &str) -> Result<Self, QuantityError> {
        let err = |reason| QuantityError {
            input: input.to_owned(),
            reason,
        };
        let (negative, rest) = match input.as_bytes().first() {
            Some(b'-') => (true, &input[1..]),
            Some(b'+') => (false, &input[1..]),
            _ => (false, input),
        };
        let number_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (number, suffix) = rest.split_at(number_len);
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(err("a number is required"));
        }
        if frac.contains('.') {
            return Err(err("more than one decimal point"));
        }
        let digits = format!("{whole}{frac}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 30 {
            return Err(err("too many digits"));
        }
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| err("not a number"))?
        };
        let (format, numerator, denominator) =
            scale(suffix).ok_or_else(|| err("unknown suffix"))?;
        // value = mantissa / 10^frac_len * numerator / denominator, in nano-units, rounded up
        // as apimachinery rounds to its smallest scale.
        let frac_len = u32::try_from(frac.len()).map_err(|_| err("too many digits"))?;
        let den = 10i128
            .checked_pow(frac_len)
            .and_then(|d| d.checked_mul(denominator))
            .ok_or_else(|| err("too many digits"))?;
        let num = mantissa
            .checked_mul(numerator)
            .and_then(|n| n.checked_mul(NANO))
            .ok_or_else(|| err("too large"))?;
        let nanos = num / den + i128::from(num % den != 0);
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }

    /// The format it is written in.
    #[must_use]
    pub fn format(&self) -> QuantityFormat {
        self.format
    }

    /// The value rounded up to a whole number (`Quantity.Value`).
    #[must_use]
    pub fn value(&self) -> i128 {
        div_ceil(self.nanos, NANO)
    }

    /// The value in thousandths, rounded up (`Quantity.MilliValue`).
    #[must_use]
    pub fn milli_value(&self) -> i128 {
        div_ceil(self.nanos, 1_000_000)
    }

    /// Whether the value is below zero.
    #[must_use]
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// `self - other`, keeping `self`'s format (`Quantity.Sub`).
    #[must_use]
    pub fn saturating_sub(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
            format: self.format,
        }
    }

    /// The quantity, or zero in the same format if it is negative: allocatable resources are
    /// never reported below zero.
    #[must_use]
    pub fn clamp_non_negative(self) -> Quantity {
        Quantity {
            nanos: self.nanos.max(0),
            format: self.format,
        }
    }

    /// The canonical string as a Kubernetes API quantity.
    #[must_use]
    pub fn to_api(&self) -> k8s_openapi::apimachinery::pkg::api::resource::Quantity {
        k8s_openapi::apimachinery::pkg::api::resource::Quantity(self.to_string())
    }
}

fn div_ceil(value: i128, by: i128) -> i128 {
    let q = value / by;
    if value % by > 0 { q + 1 } else { q }
}

/// The format and the multiplier (`numerator / denominator`) a suffix stands for.
fn scale(suffix: &str) -> Option<(QuantityFormat, i128, i128)> {
    use QuantityFormat::{BinarySI, DecimalExponent, DecimalSI};
    let binary = |power: u32| Some((BinarySI, 1i128 << power, 1));
    let decimal = |exp: i32| {
        let pow = 10i128.pow(exp.unsigned_abs());
        if exp >= 0 {
            Some((DecimalSI, pow, 1))
        } else {
            Some((DecimalSI, 1, pow))
        }
    };
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let exp: i32 = exp.parse().ok()?;
            if !(-18..=18).contains(&exp) {
                return None;
            }
            let (_, num, den) = decimal(exp)?;
            Some((DecimalExponent, num, den))
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        if self.format == QuantityFormat::BinarySI
            && self.nanos % NANO == 0
            && self.nanos.abs() >= 1024 * NANO
        {
            // Whole bytes of 1Ki or more: the largest power of 1024 that divides them.
            let mut mantissa = self.nanos / NANO;
            let mut suffix = 0;
            while suffix < 6 && mantissa % 1024 == 0 {
                mantissa /= 1024;
                suffix += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][suffix];
            return write!(f, "{mantissa}{suffix}");
        }
        // Decimal: the largest power of 1000 that leaves a whole mantissa.
        let mut mantissa = self.nanos;
        let mut suffix = 0;
        while suffix < 9 && mantissa % 1000 == 0 {
            mantissa /= 1000;
            suffix += 1;
        }
        let suffix = ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"][suffix];
        write!(f, "{mantissa}{suffix}")
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
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
        self.nanos.cmp(&other.nanos)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    /// A string, or a number as YAML and JSON allow (`cpu: 1`).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Quantity;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity such as \"100m\" or \"512Mi\"")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                Quantity::parse(v).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity::from_int(v, QuantityFormat::DecimalSI))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                let v = i64::try_from(v).map_err(|_| E::custom("quantity too large"))?;
                Ok(Quantity::from_int(v, QuantityFormat::DecimalSI))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                Quantity::parse(&v.to_string()).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn parses_suffixes() {
        assert_eq!(q("2").value(), 2);
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("1.5Gi").value(), 1_610_612_736);
        assert_eq!(q("10Mi").value(), 10 * 1024 * 1024);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("0.5").milli_value(), 500);
        assert_eq!(q("-1").value(), -1);
        assert_eq!(q("1Ki"), q("1024"));
    }

    #[test]
    fn refuses_malformed() {
        for bad in ["", "1 Gi", "Gi", "1.2.3", "1Qi", "abc", "1e99", "."] {
            let err = Quantity::parse(bad).expect_err(bad);
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid quantity {bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(
            Quantity::from_int(2, QuantityFormat::DecimalSI).to_string(),
            "2"
        );
        assert_eq!(
            Quantity::from_int(110, QuantityFormat::DecimalSI).to_string(),
            "110"
        );
        assert_eq!(
            Quantity::from_int(2000, QuantityFormat::DecimalSI).to_string(),
            "2k"
        );
        assert_eq!(
            Quantity::from_bytes(16 * 1024 * 1024 * 1024).to_string(),
            "16Gi"
        );
        assert_eq!(
            Quantity::from_bytes(16_768_323_584).to_string(),
            "16375316Ki"
        );
        assert_eq!(Quantity::from_bytes(16384 * 1024).to_string(), "16Mi");
        assert_eq!(Quantity::from_bytes(1536).to_string(), "1536");
        assert_eq!(Quantity::from_bytes(1000).to_string(), "1k");
        assert_eq!(Quantity::from_bytes(0).to_string(), "0");
        assert_eq!(q("1.5").to_string(), "1500m");
        assert_eq!(q("100u").to_string(), "100u");
        assert_eq!(q("1500000").to_string(), "1500k");
        assert_eq!(q("1e3").to_string(), "1k");
    }

    #[test]
    fn subtraction_keeps_the_format_and_clamps() {
        let cpu = Quantity::from_int(2, QuantityFormat::DecimalSI);
        assert_eq!(cpu.saturating_sub(&q("100m")).to_string(), "1900m");
        let mem = Quantity::from_bytes(16_768_323_584);
        assert_eq!(mem.saturating_sub(&q("100Mi")).to_string(), "16272916Ki");
        assert_eq!(mem.saturating_sub(&q("1G")).to_string(), "15768323584");
        let less = Quantity::from_int(1, QuantityFormat::DecimalSI).saturating_sub(&q("3"));
        assert!(less.is_negative());
        assert_eq!(less.clamp_non_negative().to_string(), "0");
    }

    #[test]
    fn deserializes_strings_and_numbers() {
        let v: Quantity = serde_json::from_str("\"500Mi\"").unwrap();
        assert_eq!(v.value(), 500 * 1024 * 1024);
        let v: Quantity = serde_json::from_str("1").unwrap();
        assert_eq!(v.to_string(), "1");
        assert!(serde_json::from_str::<Quantity>("\"1 Gi\"").is_err());
    }
}

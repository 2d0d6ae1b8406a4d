//! Resource quantities (`resource.Quantity` of `k8s.io/apimachinery/pkg/api/resource`):
//! `"2"`, `"100m"`, `"16384Ki"`, `"1.5Gi"`, `"1e3"`.
//!
//! k8s-openapi keeps a quantity as its string; the kubelet needs the number: CPU shares and
//! CFS quota, memory limits, OOM scores, `QoS` classes, downward API values, emptyDir sizes,
//! and the node's capacity and allocatable. One type serves them all:
//!
//! - parsing follows apimachinery: the value is kept in nano-units, and a more precise value
//!   is rounded up (away from zero) to the next nano, as `ParseQuantity` does;
//! - equality and ordering are numeric: `"1"` equals `"1000m"`, `"1Ki"` equals `"1024"`;
//! - [`Quantity::value`] and [`Quantity::milli_value`] round away from zero like `Value()` and
//!   `MilliValue()`;
//! - a quantity is written back in the canonical form apimachinery produces (`"16374984Ki"`,
//!   `"1900m"`, `"2k"`), because clients compare and display the node's capacity strings.

use std::cmp::Ordering;
use std::fmt;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
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

/// Why a string is not a quantity; the messages are apimachinery's.
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
    /// The value does not fit the nano-unit representation used here (about ±1.7e29).
    #[error("quantity is too large")]
    TooLarge,
}

/// A resource quantity: its value, in nano-units, and the format it is written in.
///
/// Equality and ordering compare values only: `"1Ki"` equals `"1024"`.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: QuantityFormat,
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

    /// Parses a quantity as `ParseQuantity` does.
    pub fn parse(input: &str) -> Result<Self, QuantityError> {
        let (negative, rest) = match input.as_bytes().first() {
            Some(b'-') => (true, &input[1..]),
            Some(b'+') => (false, &input[1..]),
            _ => (false, input),
        };
        let mut mantissa: i128 = 0;
        let mut digits = 0_usize;
        let mut fraction_digits = 0_i64;
        let mut seen_point = false;
        let mut number_len = rest.len();
        for (pos, byte) in rest.bytes().enumerate() {
            match byte {
                b'0'..=b'9' => {
                    mantissa = mantissa
                        .checked_mul(10)
                        .and_then(|m| m.checked_add(i128::from(byte - b'0')))
                        .ok_or(QuantityError::TooLarge)?;
                    digits += 1;
                    if seen_point {
                        fraction_digits += 1;
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => {
                    number_len = pos;
                    break;
                }
            }
        }
        if digits == 0 {
            return Err(QuantityError::Format);
        }
        let (format, binary_power, decimal_exponent) = parse_suffix(&rest[number_len..])?;
        let scaled = mantissa
            .checked_mul(1_i128 << binary_power)
            .ok_or(QuantityError::TooLarge)?;
        // nanos = scaled * 10^(exponent - fraction digits + 9), the magnitude rounded up.
        let power = i64::from(decimal_exponent) - fraction_digits + 9;
        let pow10 = |exp: i64| u32::try_from(exp).ok().and_then(|e| 10_i128.checked_pow(e));
        let nanos = if scaled == 0 {
            0
        } else if power >= 0 {
            pow10(power)
                .and_then(|factor| scaled.checked_mul(factor))
                .ok_or(QuantityError::TooLarge)?
        } else {
            match pow10(-power) {
                Some(divisor) => scaled / divisor + i128::from(scaled % divisor != 0),
                // The divisor alone exceeds any mantissa: the value is a fraction of a nano.
                None => 1,
            }
        };
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }

    /// Parses a quantity of the API, ignoring surrounding white space as apimachinery's JSON
    /// decoding does.
    pub fn from_api(quantity: &ApiQuantity) -> Result<Self, QuantityError> {
        Quantity::parse(quantity.0.trim())
    }

    /// The canonical string as a Kubernetes API quantity.
    #[must_use]
    pub fn to_api(&self) -> ApiQuantity {
        ApiQuantity(self.to_string())
    }

    /// The format it is written in.
    #[must_use]
    pub fn format(&self) -> QuantityFormat {
        self.format
    }

    /// The value rounded away from zero to a whole number (`Quantity.Value()`), saturating at
    /// the `i64` bounds.
    #[must_use]
    pub fn value(&self) -> i64 {
        div_away_from_zero(self.nanos, NANO)
    }

    /// The value in thousandths, rounded away from zero (`Quantity.MilliValue()`), saturating
    /// at the `i64` bounds.
    #[must_use]
    pub fn milli_value(&self) -> i64 {
        div_away_from_zero(self.nanos, NANO / 1000)
    }

    /// True for a zero quantity (of any spelling: `0`, `0m`, `0.0Gi`).
    #[must_use]
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Whether the value is below zero.
    #[must_use]
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// `self + other`, keeping `self`'s format (`Quantity.Add`), saturating on overflow.
    #[must_use]
    pub fn saturating_add(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format: self.format,
        }
    }

    /// `self - other`, keeping `self`'s format (`Quantity.Sub`), saturating on overflow.
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
}

/// `value / by` rounded away from zero, saturated to `i64`.
fn div_away_from_zero(value: i128, by: i128) -> i64 {
    let quotient = value / by;
    let rounded = match (value % by).cmp(&0) {
        Ordering::Greater => quotient + 1,
        Ordering::Less => quotient - 1,
        Ordering::Equal => quotient,
    };
    i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX })
}

/// The format, power of two and power of ten a suffix stands for.
fn parse_suffix(suffix: &str) -> Result<(QuantityFormat, u32, i32), QuantityError> {
    use QuantityFormat::{BinarySI, DecimalExponent, DecimalSI};
    let decimal = |exponent| Ok((DecimalSI, 0, exponent));
    let binary = |power| Ok((BinarySI, power, 0));
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
            // Decimal exponent form: e3, E-2, e+6.
            let exponent = suffix
                .strip_prefix(['e', 'E'])
                .ok_or(QuantityError::Suffix)?;
            let unsigned = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QuantityError::Suffix);
            }
            let exponent: i32 = exponent.parse().map_err(|_| QuantityError::TooLarge)?;
            Ok((DecimalExponent, 0, exponent))
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
                Quantity::parse(v)
                    .map_err(|err| E::custom(format!("invalid quantity {v:?}: {err}")))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity::from_int(v, QuantityFormat::DecimalSI))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                let v = i64::try_from(v).map_err(|_| E::custom("quantity too large"))?;
                Ok(Quantity::from_int(v, QuantityFormat::DecimalSI))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).expect(s)
    }

    #[test]
    fn parses_decimal_binary_and_exponent_forms() {
        assert_eq!(q("2").value(), 2);
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("500m").milli_value(), 500);
        assert_eq!(q("1").milli_value(), 1000);
        assert_eq!(q("2").milli_value(), 2000);
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q("0.5").milli_value(), 500);
        assert_eq!(q(".5").milli_value(), 500);
        assert_eq!(q("2.").value(), 2);
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("10Mi").value(), 10 * 1024 * 1024);
        assert_eq!(q("64Mi").value(), 64 * 1024 * 1024);
        assert_eq!(q("1.5Gi").value(), 1_610_612_736);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("1k").value(), 1000);
        assert_eq!(q("128974848").value(), 128_974_848);
        assert_eq!(q("129e6").value(), 129_000_000);
        assert_eq!(q("129M").value(), 129_000_000);
        assert_eq!(q("123M").value(), 123_000_000);
        assert_eq!(q("123Mi").value(), 128_974_848);
        assert_eq!(q("1E").value(), 1_000_000_000_000_000_000);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("1e-3").milli_value(), 1);
        assert_eq!(q("+3").value(), 3);
        assert_eq!(q("-3").value(), -3);
        assert_eq!(q("-1").value(), -1);
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1Ki").format(), QuantityFormat::BinarySI);
        assert_eq!(q("1e3").format(), QuantityFormat::DecimalExponent);
        assert_eq!(q("1k").format(), QuantityFormat::DecimalSI);
    }

    #[test]
    fn rounds_up_like_apimachinery() {
        assert_eq!(q("100m").value(), 1);
        assert_eq!(q("500m").value(), 1);
        assert_eq!(q("0.1").value(), 1);
        assert_eq!(q("1n").milli_value(), 1);
        assert_eq!(q("0.1m").milli_value(), 1);
        assert_eq!(q("1500u").milli_value(), 2);
        assert_eq!(q("-100m").value(), -1);
        // Below a nano, ParseQuantity rounds up to 1n.
        assert_eq!(q("1e-12"), q("1n"));
        assert_eq!(q("0.0000000001"), q("1n"));
        assert_eq!(q("-1e-50"), q("-1n"));
        assert_eq!(q("1e-12").milli_value(), 1);
        // Value() of what does not fit an int64 saturates.
        assert_eq!(q("1e20").value(), i64::MAX);
        assert_eq!(q("-1e20").milli_value(), i64::MIN);
    }

    #[test]
    fn rejects_malformed_quantities() {
        for bad in [
            "", "m", "1x", "1.2.3", "1e", "1e+-3", "1Kib", "abc", "1 Gi", "e3", "Gi", "1Qi", "1Zi",
            ".", " 1",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(Quantity::parse("1e99"), Err(QuantityError::TooLarge));
        assert_eq!(Quantity::parse("."), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("1Qi"), Err(QuantityError::Suffix));
    }

    #[test]
    fn reads_api_quantities_with_surrounding_space() {
        let api = ApiQuantity(" 500m \n".to_owned());
        assert_eq!(Quantity::from_api(&api), Ok(q("500m")));
        assert_eq!(q("1.5Gi").to_api(), ApiQuantity("1536Mi".to_owned()));
    }

    #[test]
    fn compares_and_adds_across_scales() {
        assert_eq!(q("1").cmp(&q("1000m")), Ordering::Equal);
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_ne!(q("1Gi"), q("1G"));
        assert_eq!(q("1Gi").cmp(&q("1G")), Ordering::Greater);
        assert!(q("0m").is_zero());
        assert!(q("0.0Gi").is_zero());
        assert!(!q("0").is_negative());
        assert_eq!(q("250m").saturating_add(&q("1")).milli_value(), 1250);
        assert_eq!(q("1Mi").max(q("2M")), q("2M"));
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
        for bad in ["", "1 Gi", "Gi", "1.2.3", "1Qi", "abc", "1e99", "."] {
            let err = serde_json::from_str::<Quantity>(&format!("{bad:?}")).expect_err(bad);
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid quantity {bad:?}")),
                "{err}"
            );
        }
    }
}

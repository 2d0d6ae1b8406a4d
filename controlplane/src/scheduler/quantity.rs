//! Kubernetes resource quantities (`100m`, `1.5`, `128Mi`, `1G`, `1e3`), parsed exactly.
//!
//! k8s-openapi's `Quantity` is only the string; the scheduler needs the number. The grammar is
//! apimachinery's (`pkg/api/resource/quantity.go`):
//!
//! ```text
//! <quantity>        ::= <sign><digits>[.<digits>]<suffix>
//! <suffix>          ::= <binarySI> | <decimalSI> | <decimalExponent>
//! <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
//! <decimalExponent> ::= e<sign><digits> | E<sign><digits>
//! ```
//!
//! Values are kept as `mantissa × 10^exp10 × 2^exp2` so that nothing is lost before the final
//! rounding, which is apimachinery's: up, away from zero (`Value()`, `MilliValue()`).

use std::fmt;

/// Errors of quantity parsing and conversion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text is not a quantity.
    #[error("quantity {quantity:?} is invalid: {reason}")]
    Invalid {
        quantity: String,
        reason: &'static str,
    },
    /// The value does not fit the integer it is converted to.
    #[error("quantity {quantity:?} does not fit a 64-bit integer")]
    Overflow { quantity: String },
}

/// Result of quantity operations.
pub type Result<T, E = QuantityError> = std::result::Result<T, E>;

/// Significant decimal digits that a `u128` mantissa holds without overflow.
const MAX_MANTISSA_DIGITS: usize = 38;

/// An exactly parsed quantity: `(-1)^negative × mantissa × 10^exp10 × 2^exp2`.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedQuantity {
    text: String,
    negative: bool,
    mantissa: u128,
    exp10: i64,
    exp2: u32,
}

impl fmt::Debug for ParsedQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ParsedQuantity({:?})", self.text)
    }
}

impl ParsedQuantity {
    /// Parses a quantity string such as `250m`, `1.5Gi` or `2e3`.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason| QuantityError::Invalid {
            quantity: text.to_string(),
            reason,
        };
        let (negative, rest) = match text.as_bytes().first() {
            None => return Err(invalid("it is empty")),
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            Some(_) => (false, text),
        };
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, rest) = rest.split_at(int_len);
        let (frac_digits, suffix) = match rest.strip_prefix('.') {
            Some(after_dot) => {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                after_dot.split_at(frac_len)
            }
            None => ("", rest),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid("it has no digits"));
        }
        let (suffix_exp10, exp2) = parse_suffix(suffix).ok_or_else(|| invalid("unknown suffix"))?;

        // All digits form one integer mantissa; the fraction shifts the decimal exponent.
        let digits = format!("{int_digits}{frac_digits}");
        let significant = digits.trim_start_matches('0');
        let trimmed = significant.trim_end_matches('0');
        let trailing_zeros = significant.len() - trimmed.len();
        if trimmed.len() > MAX_MANTISSA_DIGITS {
            return Err(invalid("it has more than 38 significant digits"));
        }
        let mantissa = if trimmed.is_empty() {
            0
        } else {
            trimmed
                .parse::<u128>()
                .map_err(|_| invalid("its digits do not form a number"))?
        };
        let frac_len = i64::try_from(frac_digits.len()).map_err(|_| invalid("it is too long"))?;
        let trailing = i64::try_from(trailing_zeros).map_err(|_| invalid("it is too long"))?;
        let exp10 = suffix_exp10 + trailing - frac_len;
        Ok(Self {
            text: text.to_string(),
            negative: negative && mantissa != 0,
            mantissa,
            exp10,
            exp2,
        })
    }

    /// The value in whole units, rounded up away from zero (apimachinery's `Value()`):
    /// bytes for memory, a count for pods and extended resources.
    pub fn value(&self) -> Result<i64> {
        self.scaled(0)
    }

    /// The value in thousandths, rounded up away from zero (apimachinery's `MilliValue()`):
    /// millicores for cpu.
    pub fn milli_value(&self) -> Result<i64> {
        self.scaled(3)
    }

    /// `ceil(|value| × 10^extra_exp10)` with the sign applied afterwards.
    fn scaled(&self, extra_exp10: i64) -> Result<i64> {
        let overflow = || QuantityError::Overflow {
            quantity: self.text.clone(),
        };
        if self.mantissa == 0 {
            return Ok(0);
        }
        let numerator = 1u128
            .checked_shl(self.exp2)
            .and_then(|pow2| self.mantissa.checked_mul(pow2))
            .ok_or_else(overflow)?;
        let exp10 = self.exp10 + extra_exp10;
        let magnitude = if exp10 >= 0 {
            u32::try_from(exp10)
                .ok()
                .and_then(|e| 10u128.checked_pow(e))
                .and_then(|pow10| numerator.checked_mul(pow10))
                .ok_or_else(overflow)?
        } else {
            match u32::try_from(-exp10)
                .ok()
                .and_then(|e| 10u128.checked_pow(e))
            {
                Some(divisor) => numerator.div_ceil(divisor),
                // The divisor exceeds any u128 numerator: a non-zero value below one unit.
                None => 1,
            }
        };
        let magnitude = i64::try_from(magnitude).map_err(|_| overflow())?;
        Ok(if self.negative { -magnitude } else { magnitude })
    }
}

/// The decimal and binary exponents of a suffix, or `None` for an unknown suffix.
fn parse_suffix(suffix: &str) -> Option<(i64, u32)> {
    let decimal = |e| Some((e, 0));
    let binary = |e| Some((0, e));
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
            let exponent = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Exponents beyond this only overflow or round to one unit anyway.
            let value: i64 = exponent.parse().ok()?;
            (value.abs() <= 1_000).then_some((value, 0))
        }
    }
}

/// Millicores of a cpu quantity (`MilliValue()`).
pub fn parse_milli(text: &str) -> Result<i64> {
    ParsedQuantity::parse(text)?.milli_value()
}

/// Whole units of a quantity (`Value()`): bytes, counts.
pub fn parse_value(text: &str) -> Result<i64> {
    ParsedQuantity::parse(text)?.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> i64 {
        parse_value(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn milli(text: &str) -> i64 {
        parse_milli(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn cpu_forms_give_millicores() {
        assert_eq!(milli("100m"), 100);
        assert_eq!(milli("1"), 1000);
        assert_eq!(milli("1.5"), 1500);
        assert_eq!(milli("0.1"), 100);
        assert_eq!(milli(".5"), 500);
        assert_eq!(milli("2."), 2000);
        assert_eq!(milli("+250m"), 250);
        assert_eq!(milli("1e3"), 1_000_000);
        assert_eq!(milli("1E-3"), 1);
        assert_eq!(milli("1k"), 1_000_000);
        assert_eq!(milli("0"), 0);
        assert_eq!(milli("000"), 0);
    }

    #[test]
    fn memory_forms_give_bytes() {
        assert_eq!(value("128Mi"), 128 * 1024 * 1024);
        assert_eq!(value("2Ki"), 2048);
        assert_eq!(value("1Gi"), 1 << 30);
        assert_eq!(value("1.5Gi"), 3 << 29);
        assert_eq!(value("1G"), 1_000_000_000);
        assert_eq!(value("1M"), 1_000_000);
        assert_eq!(value("1k"), 1000);
        assert_eq!(value("1Ei"), 1 << 60);
        assert_eq!(value("1e3"), 1000);
        assert_eq!(value("1E3"), 1000);
        assert_eq!(value("1e+3"), 1000);
        assert_eq!(value("12345"), 12345);
        assert_eq!(
            value("1.00000000000000000000000000000000000000000000000"),
            1
        );
        assert_eq!(
            value("0.000000000000000000000000000000000000000000000001"),
            1
        );
    }

    #[test]
    fn fractions_round_up_away_from_zero() {
        assert_eq!(milli("1n"), 1);
        assert_eq!(milli("1u"), 1);
        assert_eq!(milli("1500u"), 2);
        assert_eq!(value("100m"), 1);
        assert_eq!(value("0.1Ki"), 103);
        assert_eq!(value("1e-30"), 1);
        assert_eq!(value("1e-1000"), 1);
        assert_eq!(value("-100m"), -1);
        assert_eq!(milli("-1.5"), -1500);
        assert_eq!(value("-0"), 0);
    }

    #[test]
    fn suffix_capital_e_is_exa_unless_digits_follow() {
        assert_eq!(value("1E"), 1_000_000_000_000_000_000);
        assert_eq!(value("2E2"), 200);
    }

    #[test]
    fn rejects_what_is_not_a_quantity() {
        for bad in [
            "", "-", "+", ".", "m", "1x", "1 m", " 1", "1K", "1mi", "1e", "1e+", "1e1.5", "1.2.3",
            "1Mi1", "Mi", "1,5", "0x10", "1ee3",
        ] {
            assert!(
                matches!(
                    ParsedQuantity::parse(bad),
                    Err(QuantityError::Invalid { .. })
                ),
                "{bad:?} parsed"
            );
        }
    }

    #[test]
    fn refuses_more_significant_digits_than_it_can_hold_exactly() {
        assert!(
            ParsedQuantity::parse("1.000000000000000000000000000000000000000000000001").is_err()
        );
    }

    #[test]
    fn reports_overflow_instead_of_wrapping() {
        assert!(matches!(
            parse_value("10E"),
            Err(QuantityError::Overflow { .. })
        ));
        assert!(matches!(
            parse_milli("1e20"),
            Err(QuantityError::Overflow { .. })
        ));
        assert!(matches!(
            parse_value("1e1000"),
            Err(QuantityError::Overflow { .. })
        ));
        assert_eq!(value("9223372036854775807"), i64::MAX);
        assert!(parse_value("9223372036854775808").is_err());
    }

    #[test]
    fn errors_name_the_quantity() {
        let err = parse_value("12q").unwrap_err();
        assert_eq!(
            err.to_string(),
            "quantity \"12q\" is invalid: unknown suffix"
        );
    }
}

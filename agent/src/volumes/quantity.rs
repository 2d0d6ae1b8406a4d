//! Exact parsing of Kubernetes resource quantities (`500m`, `1.5Gi`, `1e3`), enough for the
//! downward API's `resourceFieldRef` and emptyDir `sizeLimit`.

/// A quantity as an exact fraction `numerator / denominator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    numerator: i128,
    denominator: i128,
}

impl Quantity {
    /// Parses `[+-]digits[.digits][suffix]` where the suffix is a binary SI (`Ki`..`Ei`),
    /// decimal SI (`n`, `u`, `m`, `k`, `M`..`E`) or exponent (`e3`, `E-2`) one.
    #[must_use]
    pub fn parse(text: &str) -> Option<Quantity> {
        let text = text.trim();
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let mut numerator: i128 = 0;
        for digit in int_part.bytes().chain(frac_part.bytes()) {
            numerator = numerator
                .checked_mul(10)?
                .checked_add(i128::from(digit - b'0'))?;
        }
        let mut denominator: i128 = 10i128.checked_pow(u32::try_from(frac_part.len()).ok()?)?;
        let (mul, div) = suffix_factor(suffix)?;
        numerator = numerator.checked_mul(mul)?;
        denominator = denominator.checked_mul(div)?;
        if negative {
            numerator = -numerator;
        }
        Some(Quantity {
            numerator,
            denominator,
        })
    }

    /// The value rounded up to an integer (`Quantity.Value()`).
    #[must_use]
    pub fn value_ceil(self) -> i128 {
        div_ceil(self.numerator, self.denominator)
    }

    /// The value in thousandths, rounded up (`Quantity.MilliValue()`).
    #[must_use]
    pub fn milli_value_ceil(self) -> i128 {
        div_ceil(self.numerator.saturating_mul(1000), self.denominator)
    }

    /// Whether the quantity is greater than zero.
    #[must_use]
    pub fn is_positive(self) -> bool {
        self.numerator > 0
    }
}

fn div_ceil(numerator: i128, denominator: i128) -> i128 {
    let quotient = numerator / denominator;
    if numerator % denominator != 0 && (numerator > 0) == (denominator > 0) {
        quotient + 1
    } else {
        quotient
    }
}

/// The multiplier and divisor a suffix stands for.
fn suffix_factor(suffix: &str) -> Option<(i128, i128)> {
    let binary = |power: u32| Some((1i128 << (10 * power), 1));
    let decimal = |exp: i32| {
        let factor = 10i128.checked_pow(exp.unsigned_abs())?;
        Some(if exp >= 0 { (factor, 1) } else { (1, factor) })
    };
    match suffix {
        "" => Some((1, 1)),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            decimal(exp.parse().ok()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Quantity;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn parses_suffixes() {
        assert_eq!(q("500m").milli_value_ceil(), 500);
        assert_eq!(q("500m").value_ceil(), 1);
        assert_eq!(q("2").milli_value_ceil(), 2000);
        assert_eq!(q("1.5").milli_value_ceil(), 1500);
        assert_eq!(q("64Mi").value_ceil(), 64 * 1024 * 1024);
        assert_eq!(q("1.5Gi").value_ceil(), 1_610_612_736);
        assert_eq!(q("128974848").value_ceil(), 128_974_848);
        assert_eq!(q("129e6").value_ceil(), 129_000_000);
        assert_eq!(q("123M").value_ceil(), 123_000_000);
        assert_eq!(q("1k").value_ceil(), 1000);
        assert_eq!(q("0.1m").milli_value_ceil(), 1);
        assert_eq!(q(".5").milli_value_ceil(), 500);
        assert!(Quantity::parse("abc").is_none());
        assert!(Quantity::parse("1Zi").is_none());
        assert!(!q("0").is_positive());
    }
}

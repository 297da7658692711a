//! Kubernetes resource quantities (`k8s.io/apimachinery/pkg/api/resource.Quantity`), parsed exactly.
//!
//! A quantity is held as a whole number of nano-units (value × 10⁹) in an `i128`, so every value
//! the metrics API and `kubectl top` print (`329087452n`, `2748180Ki`, `250m`, `1.5Gi`) is
//! represented without floating point. Parsing follows apimachinery:
//!
//! - grammar: optional sign, digits with an optional `.` (`1.` and `.5` are valid, `.` is not),
//!   then a decimal SI suffix (`n u m "" k M G T P E`), a binary one (`Ki Mi Gi Ti Pi Ei`) or an
//!   exponent (`e`/`E` and a signed integer); suffixes are case-sensitive and no space is allowed;
//! - a value that is not a whole number of nano-units is rounded away from zero (`0.9n` → `1n`);
//! - a positive binary-suffixed value above 2⁶³−1 is capped there, as apimachinery does (`9Ei`).
//!
//! Where apimachinery falls back to arbitrary precision (more than 38 significant digits, or a
//! magnitude beyond about 1.7 × 10²⁹), this parser reports [`QuantityError::OutOfRange`] rather
//! than return an approximation.

use std::fmt;
use std::str::FromStr;

/// Nano-units per unit.
const NANO: i128 = 1_000_000_000;

/// apimachinery's cap for binary-suffixed quantities, 2⁶³−1 units, in nano-units.
const MAX_BINARY_NANOS: i128 = (i64::MAX as i128) * NANO;

/// An exact Kubernetes quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity {
    nanos: i128,
}

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty quantity")]
    Empty,
    #[error("no digits in quantity {0:?}")]
    NoDigits(String),
    #[error(
        "unknown suffix {suffix:?} in quantity {input:?} (expected one of n u m k M G T P E Ki Mi Gi Ti Pi Ei, or an exponent such as e3)"
    )]
    Suffix { input: String, suffix: String },
    #[error("quantity {0:?} is out of the supported range")]
    OutOfRange(String),
}

enum Scale {
    /// × 10^exp
    Decimal(i64),
    /// × 2^(10·k)
    Binary(u32),
}

impl Quantity {
    pub const ZERO: Quantity = Quantity { nanos: 0 };

    pub const fn from_nanos(nanos: i128) -> Self {
        Quantity { nanos }
    }

    /// Whole units, e.g. bytes or cores.
    pub const fn from_units(units: i64) -> Self {
        Quantity {
            nanos: units as i128 * NANO,
        }
    }

    /// The value × 10⁹.
    pub const fn nanos(self) -> i128 {
        self.nanos
    }

    pub const fn is_negative(self) -> bool {
        self.nanos < 0
    }

    /// The value in thousandths, rounded up (towards +∞), as `Quantity.MilliValue()` does.
    pub fn milli_value_ceil(self) -> i128 {
        self.nanos.div_euclid(1_000_000) + i128::from(self.nanos.rem_euclid(1_000_000) != 0)
    }

    /// The value in whole units, rounded up (towards +∞), as `Quantity.Value()` does.
    pub fn value_ceil(self) -> i128 {
        // i64 division is several times cheaper than i128's, and covers everything below
        // 9.2 × 10⁹ units (8.6 GiB of memory): the common case on top-parse's hot path.
        if let Ok(n) = i64::try_from(self.nanos) {
            let whole = n.div_euclid(1_000_000_000) + i64::from(n.rem_euclid(1_000_000_000) != 0);
            return i128::from(whole);
        }
        self.nanos.div_euclid(NANO) + i128::from(self.nanos.rem_euclid(NANO) != 0)
    }

    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.nanos
            .checked_add(other.nanos)
            .map(Quantity::from_nanos)
    }

    /// Parses a quantity string such as `250m`, `1.5Gi`, `329087452n` or `1e3`.
    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        parse_bytes(input.as_bytes()).map_err(|e| e.with_input(input))
    }
}

/// Error kinds without the input string, so the hot path does not allocate.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Empty,
    NoDigits,
    Suffix(usize),
    OutOfRange,
}

impl Fault {
    fn with_input(self, input: &str) -> QuantityError {
        match self {
            Fault::Empty => QuantityError::Empty,
            Fault::NoDigits => QuantityError::NoDigits(input.to_owned()),
            Fault::Suffix(at) => QuantityError::Suffix {
                input: input.to_owned(),
                suffix: input.get(at..).unwrap_or_default().to_owned(),
            },
            Fault::OutOfRange => QuantityError::OutOfRange(input.to_owned()),
        }
    }
}

/// The forms `kubectl top` and metrics-server print (`250m`, `180Mi`, `329087452n`, `2748180Ki`,
/// `2`), up to 18 digits: exact in u64/i128 without the general path's scaling.
fn parse_common(s: &[u8]) -> Option<Quantity> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 18 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in &s[..digits] {
        v = v * 10 + u64::from(b - b'0');
    }
    let v = i128::from(v);
    let nanos = match &s[digits..] {
        b"m" => v * 1_000_000,
        b"n" => v,
        b"" => v * NANO,
        b"u" => v * 1_000,
        b"Ki" => ((v << 10) * NANO).min(MAX_BINARY_NANOS),
        b"Mi" => ((v << 20) * NANO).min(MAX_BINARY_NANOS),
        b"Gi" => ((v << 30) * NANO).min(MAX_BINARY_NANOS),
        _ => return None,
    };
    Some(Quantity { nanos })
}

fn parse_bytes(s: &[u8]) -> Result<Quantity, Fault> {
    if let Some(q) = parse_common(s) {
        return Ok(q);
    }
    if s.is_empty() {
        return Err(Fault::Empty);
    }
    let mut i = 0;
    let negative = match s[0] {
        b'-' => {
            i = 1;
            true
        }
        b'+' => {
            i = 1;
            false
        }
        _ => false,
    };

    // Mantissa: significant digits accumulate in `mantissa`; zeros after the last non-zero digit
    // wait in `pending_zeros` so that trailing zeros never overflow the accumulator.
    let mut mantissa: u128 = 0;
    let mut significant: u32 = 0;
    let mut pending_zeros: u32 = 0;
    let mut frac_digits: i64 = 0;
    let mut any_digit = false;
    let mut overflow = false;
    let mut in_fraction = false;
    while i < s.len() {
        let b = s[i];
        if b.is_ascii_digit() {
            any_digit = true;
            if in_fraction {
                frac_digits += 1;
            }
            let d = u128::from(b - b'0');
            if d == 0 {
                if significant > 0 {
                    pending_zeros += 1;
                }
            } else {
                significant += pending_zeros + 1;
                if significant > 38 {
                    overflow = true;
                } else {
                    mantissa = mantissa * 10u128.pow(pending_zeros + 1) + d;
                }
                pending_zeros = 0;
            }
        } else if b == b'.' && !in_fraction {
            in_fraction = true;
        } else {
            break;
        }
        i += 1;
    }
    if !any_digit {
        return Err(Fault::NoDigits);
    }
    let suffix_at = i;
    let scale = parse_suffix(&s[suffix_at..]).ok_or(Fault::Suffix(suffix_at))?;
    if mantissa == 0 && !overflow {
        return Ok(Quantity::ZERO);
    }
    if overflow {
        return Err(Fault::OutOfRange);
    }

    // value × 10⁹ = mantissa × 10^pow10 × 2^bits
    let (dec_exp, bits) = match scale {
        Scale::Decimal(e) => (e, 0),
        Scale::Binary(k) => (0, 10 * k),
    };
    let pow10 = dec_exp + 9 - frac_digits + i64::from(pending_zeros);
    let binary = matches!(scale, Scale::Binary(_));

    let magnitude: Option<u128> = if pow10 >= 0 {
        u32::try_from(pow10)
            .ok()
            .and_then(|p| 10u128.checked_pow(p))
            .and_then(|f| mantissa.checked_mul(f))
            .and_then(|v| v.checked_mul(1u128 << bits))
    } else {
        let q = pow10.unsigned_abs();
        // mantissa < 10^significant and 2^bits ≤ 2^60 < 10^19, so a product below 10^q rounds
        // up to exactly one nano-unit.
        if u64::from(significant) + 19 <= q {
            Some(1)
        } else {
            match mantissa.checked_mul(1u128 << bits) {
                None => None,
                Some(n) => match u32::try_from(q).ok().and_then(|q| 10u128.checked_pow(q)) {
                    // n < 2^128 < 10^39 ≤ 10^q: a positive value below one nano-unit.
                    None => Some(1),
                    Some(div) => Some(n / div + u128::from(n % div != 0)),
                },
            }
        }
    };
    let nanos = match magnitude.and_then(|m| i128::try_from(m).ok()) {
        Some(m) if binary && !negative && m > MAX_BINARY_NANOS => MAX_BINARY_NANOS,
        Some(m) => m,
        // Too large for i128 but capped anyway.
        None if binary && !negative => MAX_BINARY_NANOS,
        None => return Err(Fault::OutOfRange),
    };
    Ok(Quantity::from_nanos(if negative { -nanos } else { nanos }))
}

fn parse_suffix(suffix: &[u8]) -> Option<Scale> {
    let scale = match suffix {
        b"" => Scale::Decimal(0),
        b"n" => Scale::Decimal(-9),
        b"u" => Scale::Decimal(-6),
        b"m" => Scale::Decimal(-3),
        b"k" => Scale::Decimal(3),
        b"M" => Scale::Decimal(6),
        b"G" => Scale::Decimal(9),
        b"T" => Scale::Decimal(12),
        b"P" => Scale::Decimal(15),
        b"E" => Scale::Decimal(18),
        b"Ki" => Scale::Binary(1),
        b"Mi" => Scale::Binary(2),
        b"Gi" => Scale::Binary(3),
        b"Ti" => Scale::Binary(4),
        b"Pi" => Scale::Binary(5),
        b"Ei" => Scale::Binary(6),
        [b'e' | b'E', rest @ ..] => Scale::Decimal(parse_exponent(rest)?),
        _ => return None,
    };
    Some(scale)
}

/// A signed decimal integer within ±(2³¹−1), as apimachinery's int32 scale allows.
fn parse_exponent(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        value = value.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
        if value > i64::from(i32::MAX) {
            return None;
        }
    }
    Some(if negative { -value } else { value })
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

/// Canonical decimal-SI form: the largest suffix that represents the value exactly
/// (`1500m` → `1500m`, `2000m` → `2`, `1073741824` → `1073741824`).
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SUFFIXES: [(i128, &str); 10] = [
            (NANO * 1_000_000_000_000_000_000, "E"),
            (NANO * 1_000_000_000_000_000, "P"),
            (NANO * 1_000_000_000_000, "T"),
            (NANO * 1_000_000_000, "G"),
            (NANO * 1_000_000, "M"),
            (NANO * 1_000, "k"),
            (NANO, ""),
            (1_000_000, "m"),
            (1_000, "u"),
            (1, "n"),
        ];
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let magnitude = self.nanos.unsigned_abs();
        let sign = if self.nanos < 0 { "-" } else { "" };
        for (factor, suffix) in SUFFIXES {
            let factor = factor.unsigned_abs();
            if magnitude.is_multiple_of(factor) {
                return write!(f, "{sign}{}{suffix}", magnitude / factor);
            }
        }
        unreachable!("every value is a whole number of nano-units")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(s: &str) -> i128 {
        Quantity::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .nanos()
    }

    /// Value × 10^exp in nano-units, as the apimachinery table's `decQuantity(v, exp, _)`.
    fn dec(v: i128, exp: i32) -> i128 {
        let e = exp + 9;
        if e >= 0 {
            v * 10i128.pow(e.unsigned_abs())
        } else {
            v / 10i128.pow(e.unsigned_abs())
        }
    }

    /// The valid inputs of apimachinery's TestQuantityParse, with their expected values.
    #[test]
    fn apimachinery_parse_table() {
        let max = MAX_BINARY_NANOS;
        let table: &[(&str, i128)] = &[
            ("0", 0),
            ("0n", 0),
            ("0u", 0),
            ("0m", 0),
            ("0Ki", 0),
            ("0k", 0),
            ("0Mi", 0),
            ("0M", 0),
            ("0Gi", 0),
            ("0G", 0),
            ("0Ti", 0),
            ("0T", 0),
            ("1", dec(1, 0)),
            ("1Ki", dec(1024, 0)),
            ("8Ki", dec(8 * 1024, 0)),
            ("7Mi", dec(7 * 1024 * 1024, 0)),
            ("6Gi", dec(6 * 1024 * 1024 * 1024, 0)),
            ("5Ti", dec(5 * (1 << 40), 0)),
            ("4Pi", dec(4 * (1 << 50), 0)),
            ("3Ei", dec(3 * (1 << 60), 0)),
            ("10Ti", dec(10 * (1 << 40), 0)),
            ("100Ti", dec(100 * (1 << 40), 0)),
            ("5n", dec(5, -9)),
            ("4u", dec(4, -6)),
            ("3m", dec(3, -3)),
            ("9", dec(9, 0)),
            ("8k", dec(8, 3)),
            ("50k", dec(5, 4)),
            ("7M", dec(7, 6)),
            ("6G", dec(6, 9)),
            ("5T", dec(5, 12)),
            ("40T", dec(4, 13)),
            ("300T", dec(3, 14)),
            ("2P", dec(2, 15)),
            ("1E", dec(1, 18)),
            ("1E-3", dec(1, -3)),
            ("1e3", dec(1, 3)),
            ("1E6", dec(1, 6)),
            ("1e9", dec(1, 9)),
            ("1E12", dec(1, 12)),
            ("1e15", dec(1, 15)),
            ("1E18", dec(1, 18)),
            ("1e14", dec(1, 14)),
            ("1e13", dec(1, 13)),
            ("100.035k", dec(100035, 0)),
            ("0.001", dec(1, -3)),
            ("0.0005k", dec(5, -1)),
            ("0.005", dec(5, -3)),
            ("0.05", dec(5, -2)),
            ("0.5", dec(5, -1)),
            ("0.00050k", dec(5, -1)),
            ("0.00500", dec(5, -3)),
            ("0.05000", dec(5, -2)),
            ("0.50000", dec(5, -1)),
            ("0.5e0", dec(5, -1)),
            ("0.5e-1", dec(5, -2)),
            ("0.5e-2", dec(5, -3)),
            ("10.035M", dec(10035, 3)),
            ("1.2e3", dec(12, 2)),
            ("1.3E+6", dec(13, 5)),
            ("1.40e9", dec(14, 8)),
            ("1.53E12", dec(153, 10)),
            ("1.6e15", dec(16, 14)),
            ("1.7E18", dec(17, 17)),
            ("9.01", dec(901, -2)),
            ("8.1k", dec(81, 2)),
            ("7.123456M", dec(7123456, 0)),
            ("6.987654321G", dec(6987654321, 0)),
            ("5.444T", dec(5444, 9)),
            ("40.1T", dec(401, 11)),
            ("300.2T", dec(3002, 11)),
            ("2.5P", dec(25, 14)),
            ("1.01E", dec(101, 16)),
            ("3.001n", dec(4, -9)),
            ("1.1E-9", dec(2, -9)),
            ("0.0000000001", dec(1, -9)),
            ("0.0000000005", dec(1, -9)),
            ("0.00000000050", dec(1, -9)),
            ("0.5e-9", dec(1, -9)),
            ("0.9n", dec(1, -9)),
            ("0.00000012345", dec(124, -9)),
            ("0.00000012354", dec(124, -9)),
            ("9Ei", max),
            ("9223372036854775807Ki", max),
            ("12E", dec(12, 18)),
            ("100.035Ki", dec(10243584, -2)),
            ("0.5Mi", dec(512 * 1024, 0)),
            ("0.05Gi", dec(536870912, -1)),
            ("0.025Ti", dec(274877906944, -1)),
            ("0.000000000001Ki", dec(2, -9)),
            (".001", dec(1, -3)),
            (".0001k", dec(100, -3)),
            ("1.", dec(1, 0)),
            ("1.G", dec(1, 9)),
        ];
        for &(input, want) in table {
            assert_eq!(n(input), want, "{input}");
            // apimachinery also checks every entry with an explicit sign.
            assert_eq!(n(&format!("+{input}")), want, "+{input}");
            let negated = if input.starts_with("9") && input.ends_with("i") && want == max {
                // the cap applies to positive values only
                continue;
            } else {
                -want
            };
            assert_eq!(n(&format!("-{input}")), negated, "-{input}");
        }
    }

    #[test]
    fn apimachinery_invalid_table() {
        for input in [
            "",
            "1.1.M",
            "1+1.0M",
            "0.1mi",
            "0.1am",
            "aoeu",
            ".5i",
            "1i",
            "-3.01i",
            "-3.01e-",
            "1e4294967297",
            " 1",
            "1 ",
            ".",
            "-.",
            "1e",
            "1K",
            "1ki",
            "1E+",
            "--1",
            "1m ",
            "m",
        ] {
            assert!(Quantity::parse(input).is_err(), "{input:?} parsed");
        }
    }

    #[test]
    fn exponent_bounds() {
        assert!(Quantity::parse("0e2147483647").is_ok());
        assert!(Quantity::parse("0e2147483648").is_err());
        assert!(matches!(
            Quantity::parse("1e2147483647"),
            Err(QuantityError::OutOfRange(_))
        ));
        // Far below a nano-unit: rounds up to one.
        assert_eq!(n("1e-2147483647"), 1);
    }

    #[test]
    fn metrics_server_values() {
        assert_eq!(n("329087452n"), 329_087_452);
        assert_eq!(n("2748180Ki"), 2_748_180 * 1024 * NANO);
        let q = Quantity::parse("329087452n").unwrap();
        assert_eq!(q.milli_value_ceil(), 330);
        assert_eq!(Quantity::parse("1.5").unwrap().value_ceil(), 2);
        assert_eq!(Quantity::parse("-1.5").unwrap().value_ceil(), -1);
    }

    #[test]
    fn out_of_range_is_an_error_not_a_wrong_number() {
        assert!(matches!(
            Quantity::parse("1e40"),
            Err(QuantityError::OutOfRange(_))
        ));
        let forty_digits = "1".repeat(40);
        assert!(matches!(
            Quantity::parse(&forty_digits),
            Err(QuantityError::OutOfRange(_))
        ));
        // Many trailing zeros are not significant digits.
        assert_eq!(n(&format!("1{}n", "0".repeat(20))), 10i128.pow(20));
    }

    #[test]
    fn display_is_canonical() {
        for (input, shown) in [
            ("0", "0"),
            ("1500m", "1500m"),
            ("2000m", "2"),
            ("1Ki", "1024"),
            ("329087452n", "329087452n"),
            ("1e3", "1k"),
            ("-0.5", "-500m"),
            ("1.5E", "1500P"),
        ] {
            assert_eq!(
                Quantity::parse(input).unwrap().to_string(),
                shown,
                "{input}"
            );
        }
    }

    #[test]
    fn error_messages_name_the_input() {
        let e = Quantity::parse("12Q").unwrap_err().to_string();
        assert!(e.contains("\"Q\"") && e.contains("12Q"), "{e}");
    }

    proptest! {
        #[test]
        fn display_round_trips(nanos in any::<i64>(), scale in 0u32..12) {
            let q = Quantity::from_nanos(i128::from(nanos) * 10i128.pow(scale));
            prop_assert_eq!(Quantity::parse(&q.to_string()).unwrap(), q);
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = Quantity::parse(&s);
        }

        #[test]
        fn never_panics_on_quantity_like_strings(s in "[+-]?[0-9]{0,45}(\\.[0-9]{0,45})?([numkMGTPE]|[KMGTPE]i|[eE][+-]?[0-9]{1,12})?") {
            let _ = Quantity::parse(&s);
        }

        #[test]
        fn common_forms_agree_with_the_general_path(v in 0u64..1_000_000_000_000_000_000, suffix in prop::sample::select(vec!["m", "n", "", "u", "Ki", "Mi", "Gi"])) {
            let text = format!("{v}{suffix}");
            // A leading `+` skips the fast path.
            prop_assert_eq!(n(&text), n(&format!("+{text}")));
        }

        #[test]
        fn decimal_millis_agree_with_integer_arithmetic(m in 0u64..10_000_000_000) {
            prop_assert_eq!(n(&format!("{m}m")), i128::from(m) * 1_000_000);
            prop_assert_eq!(n(&format!("{m}Mi")), i128::from(m) * 1_048_576 * NANO);
        }
    }
}

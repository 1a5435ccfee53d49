//! Filter arithmetic: exact while the numbers fit, binary floating point after.
//!
//! Integers and decimals travel as `unscaled × 10^-scale` in an i128, so that the decimals
//! operators write behave as written (`0.1 + 0.2 = 0.3`). An operation whose exact result
//! does not fit falls back to f64 instead of failing, because a filter must give an answer
//! for every row.

use std::cmp::Ordering;

use cdc_model::{Decimal, proto};

/// The largest scale an i128 can align to (10^38 still fits).
const MAX_SCALE: u32 = 38;
/// Division stays exact when the quotient has at most this many fractional digits.
const DIVISION_SCALE: u32 = 18;

/// A number: exact integer or decimal, or a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    /// `unscaled × 10^-scale`, scale at most 38.
    Exact {
        unscaled: i128,
        scale: u32,
    },
    Float(f64),
}

impl Num {
    /// An exact number; scales beyond 38 shed trailing zeros or become a float.
    pub(crate) fn exact(unscaled: i128, scale: u32) -> Num {
        let (mut unscaled, mut scale) = (unscaled, scale);
        while scale > MAX_SCALE && unscaled % 10 == 0 {
            unscaled /= 10;
            scale -= 1;
        }
        if scale > MAX_SCALE {
            Num::Float(exact_to_f64(unscaled, scale))
        } else {
            Num::Exact { unscaled, scale }
        }
    }

    /// A row's decimal; None when its bytes are malformed.
    pub(crate) fn from_proto(decimal: &proto::Decimal) -> Option<Num> {
        let decimal = Decimal::from_proto(decimal).ok()?;
        Some(Num::exact(decimal.unscaled(), decimal.scale()))
    }

    /// A literal whose shape the lexer validated: exponent forms are floats, others exact
    /// unless they exceed 38 digits.
    pub(crate) fn parse_literal(text: &str) -> Option<Num> {
        if !text.contains(['e', 'E'])
            && let Ok(decimal) = text.parse::<Decimal>()
        {
            return Some(Num::exact(decimal.unscaled(), decimal.scale()));
        }
        text.parse::<f64>().ok().map(Num::Float)
    }

    pub(crate) fn to_f64(self) -> f64 {
        match self {
            Num::Exact { unscaled, scale } => exact_to_f64(unscaled, scale),
            Num::Float(f) => f,
        }
    }

    fn is_zero(self) -> bool {
        match self {
            Num::Exact { unscaled, .. } => unscaled == 0,
            Num::Float(f) => f == 0.0,
        }
    }

    fn exact_pair(self, other: Num) -> Option<((i128, u32), (i128, u32))> {
        match (self, other) {
            (
                Num::Exact {
                    unscaled: a,
                    scale: sa,
                },
                Num::Exact {
                    unscaled: b,
                    scale: sb,
                },
            ) => Some(((a, sa), (b, sb))),
            _ => None,
        }
    }

    pub(crate) fn neg(self) -> Num {
        match self {
            Num::Exact { unscaled, scale } => {
                unscaled
                    .checked_neg()
                    .map_or(Num::Float(-exact_to_f64(unscaled, scale)), |n| Num::Exact {
                        unscaled: n,
                        scale,
                    })
            }
            Num::Float(f) => Num::Float(-f),
        }
    }

    pub(crate) fn add(self, other: Num) -> Num {
        self.additive(other, i128::checked_add, |a, b| a + b)
    }

    pub(crate) fn sub(self, other: Num) -> Num {
        self.additive(other, i128::checked_sub, |a, b| a - b)
    }

    fn additive(
        self,
        other: Num,
        exact: fn(i128, i128) -> Option<i128>,
        float: fn(f64, f64) -> f64,
    ) -> Num {
        if let Some((a, b)) = self.exact_pair(other)
            && let Some((a, b, scale)) = align(a, b)
            && let Some(result) = exact(a, b)
        {
            return Num::exact(result, scale);
        }
        Num::Float(float(self.to_f64(), other.to_f64()))
    }

    pub(crate) fn mul(self, other: Num) -> Num {
        if let Some(((a, sa), (b, sb))) = self.exact_pair(other)
            && let Some(product) = a.checked_mul(b)
        {
            return Num::exact(product, sa + sb);
        }
        Num::Float(self.to_f64() * other.to_f64())
    }

    /// True division (`7 / 2 = 3.5`); None when dividing by zero.
    pub(crate) fn div(self, other: Num) -> Option<Num> {
        if other.is_zero() {
            return None;
        }
        if let Some((a, b)) = self.exact_pair(other)
            && let Some(quotient) = exact_quotient(a, b)
        {
            return Some(quotient);
        }
        Some(Num::Float(self.to_f64() / other.to_f64()))
    }

    /// Remainder with the sign of the dividend, as T-SQL's `%`; None when dividing by zero.
    pub(crate) fn rem(self, other: Num) -> Option<Num> {
        if other.is_zero() {
            return None;
        }
        if let Some((a, b)) = self.exact_pair(other)
            && let Some((a, b, scale)) = align(a, b)
            && let Some(remainder) = a.checked_rem(b)
        {
            return Some(Num::exact(remainder, scale));
        }
        Some(Num::Float(self.to_f64() % other.to_f64()))
    }

    /// Numeric order; exact pairs compare exactly, any float pair compares as f64.
    pub(crate) fn compare(self, other: Num) -> Ordering {
        match self.exact_pair(other) {
            Some((a, b)) => compare_exact(a, b),
            None => compare_f64(self.to_f64(), other.to_f64()),
        }
    }
}

fn exact_to_f64(unscaled: i128, scale: u32) -> f64 {
    // Both operands are exact for the usual magnitudes, so the quotient is correctly rounded.
    unscaled as f64 / 10f64.powi(i32::try_from(scale).unwrap_or(i32::MAX))
}

fn pow10(exponent: u32) -> Option<i128> {
    10i128.checked_pow(exponent)
}

/// Both numbers at the larger scale, if that fits.
fn align((a, sa): (i128, u32), (b, sb): (i128, u32)) -> Option<(i128, i128, u32)> {
    if sa >= sb {
        Some((a, b.checked_mul(pow10(sa - sb)?)?, sa))
    } else {
        Some((a.checked_mul(pow10(sb - sa)?)?, b, sb))
    }
}

fn compare_exact(a: (i128, u32), b: (i128, u32)) -> Ordering {
    match align(a, b) {
        Some((a, b, _)) => a.cmp(&b),
        // Only the side scaled up can overflow, and then it is larger in magnitude than the
        // other, which fits: its sign decides.
        None if a.1 >= b.1 => 0.cmp(&b.0),
        None => a.0.cmp(&0),
    }
}

/// Like PostgreSQL: NaN equals NaN and sorts above every other number, so comparisons stay
/// a total order.
fn compare_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// `a ÷ b` exactly, if the quotient has at most 18 fractional digits (or the dividend's
/// scale, when larger) and the intermediate values fit.
fn exact_quotient((a, sa): (i128, u32), (b, sb): (i128, u32)) -> Option<Num> {
    let scale = DIVISION_SCALE.max(sa.saturating_sub(sb));
    let numerator = a.checked_mul(pow10((scale + sb).checked_sub(sa)?)?)?;
    if numerator.checked_rem(b)? != 0 {
        return None;
    }
    let (mut quotient, mut scale) = (numerator.checked_div(b)?, scale);
    // Shed the padding so later operations keep headroom before overflowing.
    while scale > 0 && quotient % 10 == 0 {
        quotient /= 10;
        scale -= 1;
    }
    Some(Num::exact(quotient, scale))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn n(text: &str) -> Num {
        Num::parse_literal(text).unwrap()
    }

    fn exact(unscaled: i128, scale: u32) -> Num {
        Num::Exact { unscaled, scale }
    }

    #[test]
    fn literals_are_exact_unless_written_with_an_exponent() {
        assert_eq!(n("12.50"), exact(1250, 2));
        assert_eq!(n(".5"), exact(5, 1));
        assert_eq!(n("7"), exact(7, 0));
        assert_eq!(n("1e3"), Num::Float(1000.0));
        let big = "123456789012345678901234567890123456789";
        assert!(matches!(n(big), Num::Float(_)));
    }

    #[test]
    fn exact_arithmetic_aligns_scales() {
        assert_eq!(n("0.1").add(n("0.2")).compare(n("0.3")), Ordering::Equal);
        assert_eq!(n("1.5").sub(n("0.25")), exact(125, 2));
        assert_eq!(n("1.5").mul(n("0.25")), exact(375, 3));
        assert_eq!(n("7").div(n("2")), Some(exact(35, 1)));
        assert_eq!(n("1").div(n("8")), Some(exact(125, 3)));
        assert_eq!(n("5.5").rem(n("2")), Some(exact(15, 1)));
        assert_eq!(n("-7").rem(n("3")), Some(exact(-1, 0)));
    }

    #[test]
    fn inexact_division_becomes_a_float() {
        assert_eq!(n("1").div(n("3")), Some(Num::Float(1.0 / 3.0)));
    }

    #[test]
    fn division_by_zero_is_none() {
        assert_eq!(n("1").div(n("0.00")), None);
        assert_eq!(n("1").rem(n("0")), None);
        assert_eq!(n("1").div(Num::Float(0.0)), None);
    }

    #[test]
    fn overflow_falls_back_to_float() {
        let max = exact(i128::MAX, 0);
        assert!(matches!(max.add(n("1")), Num::Float(_)));
        assert!(matches!(max.mul(n("2")), Num::Float(_)));
        assert!(matches!(exact(i128::MIN, 0).neg(), Num::Float(_)));
        assert!(matches!(
            exact(i128::MIN, 0).div(exact(-1, 0)),
            Some(Num::Float(f)) if f > 1.7e38
        ));
        assert!(matches!(
            exact(1, 30).mul(exact(1, 30)),
            Num::Float(f) if (f - 1e-60).abs() < 1e-70
        ));
    }

    #[test]
    fn exact_comparison_survives_alignment_overflow() {
        let huge = exact(10i128.pow(37), 0);
        let tiny = exact(1, 38);
        assert_eq!(huge.compare(tiny), Ordering::Greater);
        assert_eq!(tiny.compare(huge), Ordering::Less);
        assert_eq!(huge.neg().compare(tiny), Ordering::Less);
        assert_eq!(tiny.compare(huge.neg()), Ordering::Greater);
    }

    #[test]
    fn mixed_comparisons_go_through_f64() {
        assert_eq!(n("0.1").compare(Num::Float(0.1)), Ordering::Equal);
        assert_eq!(n("12").compare(Num::Float(12.5)), Ordering::Less);
        assert_eq!(Num::Float(f64::NAN).compare(n("1e308")), Ordering::Greater);
        assert_eq!(
            Num::Float(f64::NAN).compare(Num::Float(f64::NAN)),
            Ordering::Equal
        );
        assert_eq!(Num::Float(-0.0).compare(n("0")), Ordering::Equal);
    }
}

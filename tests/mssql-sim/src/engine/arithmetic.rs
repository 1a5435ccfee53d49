//! `+ - * / %` on numbers as SQL Server types and computes them: the result has the operand
//! type of higher precedence (decimal results get SQL Server's precision and scale, with its
//! reduction past 38 digits), integer arithmetic is checked against the result type, decimal
//! arithmetic is exact and rounds half away from zero. `+` on strings and binaries is
//! concatenation, compiled elsewhere.

use super::convert::rescale;
use super::datatype::{self, check_implicit, decimal_shape, precedence};
use super::error::{self, SqlError};
use super::expr::{Arithmetic, Node, Plan};
use crate::tds::types::{SqlType, SqlValue};

/// The types of an arithmetic node: its result, and what each operand is converted to first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typing {
    /// Result type.
    pub result: SqlType,
    /// Type of the left operand as computed.
    pub left: SqlType,
    /// Type of the right operand as computed.
    pub right: SqlType,
}

fn base_name(t: SqlType) -> String {
    let name = datatype::name(t);
    name.split('(').next().unwrap_or(&name).to_owned()
}

/// Types `left op right`: errors 8117 (an operator on a type it does not apply to), 206 and
/// 257 (an operand that does not convert to the other's type).
pub fn result_type(op: Arithmetic, left: &Plan, right: &Plan) -> Result<Typing, SqlError> {
    let (mut a, mut b) = (left.sql_type, right.sql_type);
    if left.is_null_literal() {
        a = if right.is_null_literal() {
            SqlType::Int
        } else {
            b
        };
    }
    if right.is_null_literal() {
        b = a;
    }
    let high = if precedence(a) >= precedence(b) { a } else { b };
    if !datatype::is_number(high) {
        return Err(error::invalid_operand(&base_name(high), op.name()));
    }
    // Operands that are not numbers convert to the other operand's type.
    let target = |t: SqlType| -> Result<SqlType, SqlError> {
        if datatype::is_number(t) {
            Ok(t)
        } else {
            check_implicit(t, high)?;
            Ok(high)
        }
    };
    let (a, b) = (target(a)?, target(b)?);
    if high == SqlType::Bit
        || (op == Arithmetic::Modulo && matches!(high, SqlType::Float | SqlType::Real))
    {
        return Err(error::invalid_operand(&base_name(high), op.name()));
    }
    let result = match high {
        SqlType::Decimal { .. } => {
            let shape = |plan: &Plan, t: SqlType| match (&plan.node, plan.literal) {
                // An integer literal takes part with the digits it has: 3 is decimal(1,0).
                (Node::Constant(SqlValue::Int(i)), true) => {
                    (i.unsigned_abs().to_string().len() as u8, 0)
                }
                _ => decimal_shape(t).unwrap_or((38, 0)),
            };
            decimal_result(op, shape(left, a), shape(right, b))
        }
        other => other,
    };
    Ok(Typing {
        result,
        left: a,
        right: b,
    })
}

/// The precision and scale of a decimal result (SQL Server 2016 and later).
pub fn decimal_result(op: Arithmetic, (p1, s1): (u8, u8), (p2, s2): (u8, u8)) -> SqlType {
    let (p1, s1, p2, s2) = (i32::from(p1), i32::from(s1), i32::from(p2), i32::from(s2));
    let integral_max = (p1 - s1).max(p2 - s2);
    let (mut precision, mut scale) = match op {
        Arithmetic::Add | Arithmetic::Subtract => {
            let scale = s1.max(s2);
            (integral_max + scale + 1, scale)
        }
        Arithmetic::Multiply => (p1 + p2 + 1, s1 + s2),
        Arithmetic::Divide => {
            let scale = 6.max(s1 + p2 + 1);
            (p1 - s1 + s2 + scale, scale)
        }
        Arithmetic::Modulo => {
            let scale = s1.max(s2);
            ((p1 - s1).min(p2 - s2) + scale, scale)
        }
    };
    if precision > 38 {
        match op {
            Arithmetic::Add | Arithmetic::Subtract | Arithmetic::Modulo => {
                scale = scale.min((38 - integral_max).max(0));
            }
            Arithmetic::Multiply | Arithmetic::Divide => {
                let integral = precision - scale;
                if integral < 32 {
                    scale = scale.min(38 - integral);
                } else {
                    scale = scale.min(6);
                }
            }
        }
        precision = 38;
    }
    SqlType::Decimal {
        precision: precision.clamp(1, 38) as u8,
        scale: scale.clamp(0, precision.clamp(1, 38)) as u8,
    }
}

/// Computes `a op b` for a node typed by [`result_type`].
pub fn apply(
    op: Arithmetic,
    a: SqlValue,
    b: SqlValue,
    result: SqlType,
) -> Result<SqlValue, SqlError> {
    if a == SqlValue::Null || b == SqlValue::Null {
        return Ok(SqlValue::Null);
    }
    match result {
        SqlType::Float | SqlType::Real => {
            let value = float(op, as_float(&a)?, as_float(&b)?)?;
            if !value.is_finite() {
                return Err(error::overflow(&base_name(result)));
            }
            Ok(SqlValue::Float(if result == SqlType::Real {
                f64::from(value as f32)
            } else {
                value
            }))
        }
        SqlType::Decimal { precision, scale } => {
            decimal(op, exact(&a)?, exact(&b)?, precision, scale, "numeric")
        }
        SqlType::Money => decimal(op, exact(&a)?, exact(&b)?, 19, 4, "money")
            .and_then(|v| in_range(v, |u| i64::try_from(u).is_ok(), "money")),
        SqlType::SmallMoney => decimal(op, exact(&a)?, exact(&b)?, 10, 4, "smallmoney")
            .and_then(|v| in_range(v, |u| i32::try_from(u).is_ok(), "smallmoney")),
        _ => {
            let (SqlValue::Int(x), SqlValue::Int(y)) = (int(&a), int(&b)) else {
                return Err(error::invalid_operand(&base_name(result), op.name()));
            };
            integer(op, x, y, result)
        }
    }
}

fn in_range(
    value: SqlValue,
    fits: impl Fn(i128) -> bool,
    name: &str,
) -> Result<SqlValue, SqlError> {
    match value {
        SqlValue::Decimal { unscaled, .. } if !fits(unscaled) => Err(error::overflow(name)),
        other => Ok(other),
    }
}

fn int(value: &SqlValue) -> SqlValue {
    match value {
        SqlValue::Bit(b) => SqlValue::Int(i64::from(*b)),
        other => other.clone(),
    }
}

/// Unary minus.
pub fn negate(value: SqlValue, sql_type: SqlType) -> Result<SqlValue, SqlError> {
    Ok(match value {
        SqlValue::Null => SqlValue::Null,
        SqlValue::Int(i) => {
            let negated = i
                .checked_neg()
                .ok_or_else(|| error::overflow(&base_name(sql_type)))?;
            check_integer(i128::from(negated), sql_type)?
        }
        SqlValue::Decimal { unscaled, scale } => SqlValue::Decimal {
            unscaled: -unscaled,
            scale,
        },
        SqlValue::Float(f) => SqlValue::Float(-f),
        _ => return Err(error::invalid_operand(&base_name(sql_type), "minus")),
    })
}

fn check_integer(value: i128, result: SqlType) -> Result<SqlValue, SqlError> {
    let fits = match result {
        SqlType::TinyInt => (0..=255).contains(&value),
        SqlType::SmallInt => i16::try_from(value).is_ok(),
        SqlType::Int => i32::try_from(value).is_ok(),
        _ => i64::try_from(value).is_ok(),
    };
    if fits {
        return Ok(SqlValue::Int(value as i64));
    }
    Err(match result {
        SqlType::TinyInt | SqlType::SmallInt => {
            error::arithmetic_overflow_value(&base_name(result), value)
        }
        _ => error::overflow(&base_name(result)),
    })
}

fn integer(op: Arithmetic, a: i64, b: i64, result: SqlType) -> Result<SqlValue, SqlError> {
    let (a, b) = (i128::from(a), i128::from(b));
    let value = match op {
        Arithmetic::Add => a + b,
        Arithmetic::Subtract => a - b,
        Arithmetic::Multiply => a * b,
        Arithmetic::Divide if b == 0 => return Err(error::divide_by_zero()),
        // Both truncate toward zero; the remainder takes the dividend's sign, as in T-SQL.
        Arithmetic::Divide => a / b,
        Arithmetic::Modulo if b == 0 => return Err(error::divide_by_zero()),
        Arithmetic::Modulo => a % b,
    };
    check_integer(value, result)
}

fn float(op: Arithmetic, a: f64, b: f64) -> Result<f64, SqlError> {
    Ok(match op {
        Arithmetic::Add => a + b,
        Arithmetic::Subtract => a - b,
        Arithmetic::Multiply => a * b,
        Arithmetic::Divide if b == 0.0 => return Err(error::divide_by_zero()),
        Arithmetic::Divide => a / b,
        Arithmetic::Modulo => return Err(error::invalid_operand("float", "modulo")),
    })
}

fn decimal(
    op: Arithmetic,
    (a, sa): (i128, u8),
    (b, sb): (i128, u8),
    precision: u8,
    scale: u8,
    name: &str,
) -> Result<SqlValue, SqlError> {
    let overflow = || error::overflow(name);
    let unscaled = match op {
        Arithmetic::Add | Arithmetic::Subtract => {
            // Exact at the wider scale, then rounded to the result's.
            let wide = sa.max(sb);
            let (a, b) = (
                rescale(a, sa, wide).ok_or_else(overflow)?,
                rescale(b, sb, wide).ok_or_else(overflow)?,
            );
            let sum = if op == Arithmetic::Add {
                a.checked_add(b)
            } else {
                a.checked_sub(b)
            }
            .ok_or_else(overflow)?;
            rescale(sum, wide, scale).ok_or_else(overflow)?
        }
        Arithmetic::Multiply => match a.checked_mul(b) {
            Some(product) => rescale(product, sa + sb, scale).ok_or_else(overflow)?,
            None => {
                // a × b ÷ 10^(sa+sb−scale) through 256 bits.
                let shift = (i32::from(sa) + i32::from(sb) - i32::from(scale)).max(0) as u32;
                let divisor = 10u128.checked_pow(shift).ok_or_else(overflow)?;
                let negative = (a < 0) != (b < 0);
                let magnitude = wide::mul_div_round(a.unsigned_abs(), b.unsigned_abs(), divisor)
                    .ok_or_else(overflow)?;
                let magnitude = i128::try_from(magnitude).map_err(|_| overflow())?;
                if negative { -magnitude } else { magnitude }
            }
        },
        Arithmetic::Divide => {
            if b == 0 {
                return Err(error::divide_by_zero());
            }
            // a/10^sa ÷ b/10^sb at `scale` digits = a × 10^(scale + sb − sa) ÷ b, rounded.
            let shift = i32::from(scale) + i32::from(sb) - i32::from(sa);
            let negative = (a < 0) != (b < 0);
            let magnitude = if shift >= 0 {
                let factor = 10u128.checked_pow(shift as u32).ok_or_else(overflow)?;
                wide::mul_div_round(a.unsigned_abs(), factor, b.unsigned_abs())
                    .ok_or_else(overflow)?
            } else {
                let factor = 10u128.pow((-shift) as u32);
                let divisor = b.unsigned_abs().checked_mul(factor).ok_or_else(overflow)?;
                wide::mul_div_round(a.unsigned_abs(), 1, divisor).ok_or_else(overflow)?
            };
            let magnitude = i128::try_from(magnitude).map_err(|_| overflow())?;
            if negative { -magnitude } else { magnitude }
        }
        Arithmetic::Modulo => {
            if b == 0 {
                return Err(error::divide_by_zero());
            }
            let wide = sa.max(sb);
            let (a, b) = (
                rescale(a, sa, wide).ok_or_else(overflow)?,
                rescale(b, sb, wide).ok_or_else(overflow)?,
            );
            rescale(a % b, wide, scale).ok_or_else(overflow)?
        }
    };
    if super::convert::pow10(u32::from(precision))
        .is_none_or(|limit| unscaled.unsigned_abs() >= limit.unsigned_abs())
    {
        return Err(overflow());
    }
    Ok(SqlValue::Decimal { unscaled, scale })
}

/// Unsigned 256-bit intermediate results for decimal multiplication and division.
mod wide {
    /// `a × b ÷ d`, rounded half up, or None if the quotient needs more than 128 bits.
    pub fn mul_div_round(a: u128, b: u128, d: u128) -> Option<u128> {
        if d == 0 {
            return None;
        }
        let (high, low) = mul(a, b);
        let (quotient_high, quotient_low, remainder) = div(high, low, d);
        if quotient_high != 0 {
            return None;
        }
        // Round half up: remainder ≥ d − remainder.
        if remainder >= d - remainder {
            quotient_low.checked_add(1)
        } else {
            Some(quotient_low)
        }
    }

    /// The full 256-bit product as (high, low).
    fn mul(a: u128, b: u128) -> (u128, u128) {
        let mask = u128::from(u64::MAX);
        let (a1, a0) = (a >> 64, a & mask);
        let (b1, b0) = (b >> 64, b & mask);
        let low = a0 * b0;
        let mid1 = a1 * b0;
        let mid2 = a0 * b1;
        let high = a1 * b1;
        let (mid, mid_carry) = mid1.overflowing_add(mid2);
        let (low_sum, low_carry) = low.overflowing_add(mid << 64);
        let high = high + (mid >> 64) + (u128::from(mid_carry) << 64) + u128::from(low_carry);
        (high, low_sum)
    }

    /// (high, low) ÷ d by shifting and subtracting: (quotient high, quotient low, remainder).
    fn div(high: u128, low: u128, d: u128) -> (u128, u128, u128) {
        let (mut qh, mut ql, mut r) = (0u128, 0u128, 0u128);
        for i in (0..256).rev() {
            let bit = if i >= 128 {
                (high >> (i - 128)) & 1
            } else {
                (low >> i) & 1
            };
            let overflow = r >> 127 == 1;
            r = (r << 1) | bit;
            if overflow || r >= d {
                r = r.wrapping_sub(d);
                if i >= 128 {
                    qh |= 1 << (i - 128);
                } else {
                    ql |= 1 << i;
                }
            }
        }
        (qh, ql, r)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn products_beyond_128_bits_divide_back() {
            let big = 10u128.pow(30);
            assert_eq!(mul_div_round(big, big, 10u128.pow(30)), Some(big));
            assert_eq!(mul_div_round(7, 1, 2), Some(4));
            assert_eq!(mul_div_round(5, 1, 2), Some(3));
            assert_eq!(mul_div_round(u128::MAX, u128::MAX, 1), None);
        }
    }
}

fn exact(value: &SqlValue) -> Result<(i128, u8), SqlError> {
    match value {
        SqlValue::Int(i) => Ok((i128::from(*i), 0)),
        SqlValue::Bit(b) => Ok((i128::from(*b), 0)),
        SqlValue::Decimal { unscaled, scale } => Ok((*unscaled, *scale)),
        _ => Err(error::not_implemented("arithmetic on this type")),
    }
}

fn as_float(value: &SqlValue) -> Result<f64, SqlError> {
    match value {
        SqlValue::Float(f) => Ok(*f),
        SqlValue::Int(i) => Ok(*i as f64),
        SqlValue::Bit(b) => Ok(f64::from(u8::from(*b))),
        SqlValue::Decimal { unscaled, scale } => {
            Ok(*unscaled as f64 / 10f64.powi(i32::from(*scale)))
        }
        _ => Err(error::not_implemented("arithmetic on this type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_results_follow_sql_servers_precision_and_scale() {
        let d = |p, s| SqlType::Decimal {
            precision: p,
            scale: s,
        };
        assert_eq!(decimal_result(Arithmetic::Add, (5, 2), (10, 0)), d(13, 2));
        assert_eq!(
            decimal_result(Arithmetic::Multiply, (5, 2), (4, 3)),
            d(10, 5)
        );
        // 1.0 / 3: decimal(2,1) ÷ decimal(1,0) is decimal(7,6).
        assert_eq!(decimal_result(Arithmetic::Divide, (2, 1), (1, 0)), d(7, 6));
        // Past 38 digits the scale gives way, keeping at least 6 for a large integral part.
        assert_eq!(
            decimal_result(Arithmetic::Multiply, (38, 10), (38, 10)),
            d(38, 6)
        );
        assert_eq!(
            decimal_result(Arithmetic::Divide, (38, 0), (38, 0)),
            d(38, 6)
        );
        assert_eq!(
            decimal_result(Arithmetic::Add, (38, 10), (38, 10)),
            d(38, 10)
        );
    }

    #[test]
    fn integer_overflow_names_the_type() {
        assert_eq!(
            integer(Arithmetic::Add, 200, 100, SqlType::TinyInt)
                .unwrap_err()
                .number,
            220
        );
        assert_eq!(
            integer(Arithmetic::Multiply, i64::from(i32::MAX), 2, SqlType::Int)
                .unwrap_err()
                .number,
            8115
        );
        assert_eq!(
            integer(Arithmetic::Modulo, -7, 3, SqlType::Int),
            Ok(SqlValue::Int(-1))
        );
    }

    #[test]
    fn decimal_arithmetic_is_exact_and_rounds_half_away_from_zero() {
        assert_eq!(
            decimal(Arithmetic::Divide, (20, 1), (3, 0), 7, 6, "numeric"),
            Ok(SqlValue::Decimal {
                unscaled: 666_667,
                scale: 6
            })
        );
        assert_eq!(
            decimal(Arithmetic::Divide, (-20, 1), (3, 0), 7, 6, "numeric"),
            Ok(SqlValue::Decimal {
                unscaled: -666_667,
                scale: 6
            })
        );
        // 10^10 × 10^10 at scale 20 each: the product's unscaled value needs 256 bits.
        let big = 10i128.pow(30);
        assert_eq!(
            decimal(Arithmetic::Multiply, (big, 20), (big, 20), 38, 6, "numeric"),
            Ok(SqlValue::Decimal {
                unscaled: 10i128.pow(26),
                scale: 6
            })
        );
    }
}

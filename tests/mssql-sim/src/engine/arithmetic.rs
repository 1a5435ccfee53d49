//! `+ - * / %` as SQL Server computes them: integer arithmetic checked against the result
//! type, exact decimal arithmetic, floats, and `+` as string concatenation.

use sqlparser::ast::BinaryOperator;

use super::convert::rescale;
use super::datatype;
use super::error::{self, SqlError};
use super::expr::Typed;
use crate::tds::types::{SqlType, SqlValue};

/// Applies an arithmetic operator.
pub fn apply(op: &BinaryOperator, left: Typed, right: Typed) -> Result<Typed, SqlError> {
    let result_type = result_type(op, left.sql_type, right.sql_type)?;
    if left.value == SqlValue::Null || right.value == SqlValue::Null {
        return Ok(Typed {
            sql_type: result_type,
            value: SqlValue::Null,
        });
    }
    let value = match (left.value, right.value) {
        (SqlValue::Text(a), SqlValue::Text(b)) if matches!(op, BinaryOperator::Plus) => {
            SqlValue::Text(a + &b)
        }
        (SqlValue::Int(a), SqlValue::Int(b)) => integer(op, a, b, result_type)?,
        (SqlValue::Float(a), b) => float(op, a, as_float(&b)?)?,
        (a, SqlValue::Float(b)) => float(op, as_float(&a)?, b)?,
        (a, b) => decimal(op, exact(&a)?, exact(&b)?, result_type)?,
    };
    Ok(Typed {
        sql_type: result_type,
        value,
    })
}

fn result_type(op: &BinaryOperator, left: SqlType, right: SqlType) -> Result<SqlType, SqlError> {
    use SqlType as T;
    let is_text = |t: SqlType| {
        matches!(
            t,
            T::Char { .. } | T::VarChar { .. } | T::NChar { .. } | T::NVarChar { .. }
        )
    };
    Ok(match (left, right) {
        (a, b) if is_text(a) && is_text(b) && matches!(op, BinaryOperator::Plus) => {
            if matches!(a, T::NChar { .. } | T::NVarChar { .. })
                || matches!(b, T::NChar { .. } | T::NVarChar { .. })
            {
                T::NVarChar { length: None }
            } else {
                T::VarChar { length: None }
            }
        }
        (T::Float | T::Real, _) | (_, T::Float | T::Real) => T::Float,
        (T::BigInt, T::TinyInt | T::SmallInt | T::Int | T::BigInt)
        | (T::TinyInt | T::SmallInt | T::Int, T::BigInt) => T::BigInt,
        (T::TinyInt | T::SmallInt | T::Int, T::TinyInt | T::SmallInt | T::Int) => T::Int,
        (
            T::Decimal { .. }
            | T::Money
            | T::SmallMoney
            | T::TinyInt
            | T::SmallInt
            | T::Int
            | T::BigInt,
            T::Decimal { .. }
            | T::Money
            | T::SmallMoney
            | T::TinyInt
            | T::SmallInt
            | T::Int
            | T::BigInt,
        ) => {
            let (s1, s2) = (scale_of(left), scale_of(right));
            let scale = match op {
                BinaryOperator::Multiply => (s1 + s2).min(38),
                BinaryOperator::Divide => s1.max(6),
                _ => s1.max(s2),
            };
            T::Decimal {
                precision: 38,
                scale,
            }
        }
        (a, b) => {
            return Err(error::conversion_not_allowed(
                &datatype::name(a),
                &datatype::name(b),
            ));
        }
    })
}

fn scale_of(sql_type: SqlType) -> u8 {
    match sql_type {
        SqlType::Decimal { scale, .. } => scale,
        SqlType::Money | SqlType::SmallMoney => 4,
        _ => 0,
    }
}

fn integer(
    op: &BinaryOperator,
    a: i64,
    b: i64,
    result_type: SqlType,
) -> Result<SqlValue, SqlError> {
    let overflow = || error::overflow(&datatype::name(result_type));
    let value = match op {
        BinaryOperator::Plus => a.checked_add(b),
        BinaryOperator::Minus => a.checked_sub(b),
        BinaryOperator::Multiply => a.checked_mul(b),
        BinaryOperator::Divide if b == 0 => return Err(error::divide_by_zero()),
        BinaryOperator::Divide => a.checked_div(b),
        BinaryOperator::Modulo if b == 0 => return Err(error::divide_by_zero()),
        BinaryOperator::Modulo => a.checked_rem(b),
        _ => None,
    }
    .ok_or_else(overflow)?;
    if result_type == SqlType::Int && i32::try_from(value).is_err() {
        return Err(overflow());
    }
    Ok(SqlValue::Int(value))
}

fn float(op: &BinaryOperator, a: f64, b: f64) -> Result<SqlValue, SqlError> {
    Ok(SqlValue::Float(match op {
        BinaryOperator::Plus => a + b,
        BinaryOperator::Minus => a - b,
        BinaryOperator::Multiply => a * b,
        BinaryOperator::Divide if b == 0.0 => return Err(error::divide_by_zero()),
        BinaryOperator::Divide => a / b,
        BinaryOperator::Modulo => a % b,
        _ => return Err(error::not_implemented("this operator on float")),
    }))
}

fn decimal(
    op: &BinaryOperator,
    (a, sa): (i128, u8),
    (b, sb): (i128, u8),
    result_type: SqlType,
) -> Result<SqlValue, SqlError> {
    let SqlType::Decimal { scale, .. } = result_type else {
        return Err(error::not_implemented("this decimal operation"));
    };
    let overflow = || error::overflow("numeric");
    let unscaled = match op {
        BinaryOperator::Plus | BinaryOperator::Minus => {
            let (a, b) = (
                rescale(a, sa, scale).ok_or_else(overflow)?,
                rescale(b, sb, scale).ok_or_else(overflow)?,
            );
            if matches!(op, BinaryOperator::Plus) {
                a.checked_add(b)
            } else {
                a.checked_sub(b)
            }
            .ok_or_else(overflow)?
        }
        BinaryOperator::Multiply => {
            rescale(a.checked_mul(b).ok_or_else(overflow)?, sa + sb, scale).ok_or_else(overflow)?
        }
        BinaryOperator::Divide => {
            if b == 0 {
                return Err(error::divide_by_zero());
            }
            // a/10^sa ÷ b/10^sb at `scale` digits = a × 10^(scale + sb − sa) ÷ b, rounded.
            let shift = i32::from(scale) + i32::from(sb) - i32::from(sa);
            let numerator = if shift >= 0 {
                a.checked_mul(10i128.checked_pow(shift as u32).ok_or_else(overflow)?)
            } else {
                Some(a / 10i128.pow((-shift) as u32))
            }
            .ok_or_else(overflow)?;
            let (quotient, remainder) = (numerator / b, numerator % b);
            if remainder.abs() * 2 >= b.abs() {
                quotient + numerator.signum() * b.signum()
            } else {
                quotient
            }
        }
        _ => return Err(error::not_implemented("% on decimals")),
    };
    if unscaled.abs() >= 10i128.pow(38) {
        return Err(overflow());
    }
    Ok(SqlValue::Decimal { unscaled, scale })
}

fn exact(value: &SqlValue) -> Result<(i128, u8), SqlError> {
    match value {
        SqlValue::Int(i) => Ok((i128::from(*i), 0)),
        SqlValue::Decimal { unscaled, scale } => Ok((*unscaled, *scale)),
        _ => Err(error::not_implemented("arithmetic on this type")),
    }
}

fn as_float(value: &SqlValue) -> Result<f64, SqlError> {
    match value {
        SqlValue::Float(f) => Ok(*f),
        SqlValue::Int(i) => Ok(*i as f64),
        SqlValue::Decimal { unscaled, scale } => {
            Ok(*unscaled as f64 / 10f64.powi(i32::from(*scale)))
        }
        _ => Err(error::not_implemented("arithmetic on this type")),
    }
}

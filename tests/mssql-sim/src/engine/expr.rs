//! Scalar expressions: literals typed as SQL Server types them, parameters, CAST, unary minus.

use std::collections::HashMap;

use sqlparser::ast::{CastKind, Expr, UnaryOperator, Value};

use super::convert::{convert, parse_decimal};
use super::datatype;
use super::error::{self, SqlError};
use crate::tds::types::{SqlType, SqlValue};

/// A typed value: what an expression evaluates to.
#[derive(Debug, Clone, PartialEq)]
pub struct Typed {
    /// The exact SQL Server type.
    pub sql_type: SqlType,
    /// The value.
    pub value: SqlValue,
}

/// Parameters of the statement, by lower-case name with `@`.
pub type Parameters = HashMap<String, Typed>;

/// Evaluates a constant expression (no column references).
pub fn evaluate(expr: &Expr, parameters: &Parameters) -> Result<Typed, SqlError> {
    match expr {
        Expr::Value(value) => literal(&value.value),
        Expr::Identifier(ident) if ident.value.starts_with('@') => parameters
            .get(&ident.value.to_lowercase())
            .cloned()
            .ok_or_else(|| error::undeclared_variable(&ident.value)),
        Expr::Identifier(ident) => Err(error::invalid_column(&ident.value)),
        Expr::Nested(inner) => evaluate(inner, parameters),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => negate(evaluate(expr, parameters)?),
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => evaluate(expr, parameters),
        Expr::Cast {
            kind: CastKind::Cast | CastKind::TryCast,
            expr,
            data_type,
            ..
        } => {
            let target = datatype::parse(&data_type.to_string())
                .ok_or_else(|| error::not_implemented(&format!("the type {data_type}")))?;
            let source = evaluate(expr, parameters)?;
            let value = convert(source.value, source.sql_type, target)?;
            Ok(Typed {
                sql_type: target,
                value,
            })
        }
        other => Err(error::not_implemented(&format!("the expression `{other}`"))),
    }
}

/// The type SQL Server gives a literal.
fn literal(value: &Value) -> Result<Typed, SqlError> {
    Ok(match value {
        Value::Null => Typed {
            sql_type: SqlType::Int,
            value: SqlValue::Null,
        },
        Value::Number(text, _) => number(text)?,
        Value::SingleQuotedString(text) => Typed {
            sql_type: SqlType::VarChar {
                length: Some(text.chars().count().clamp(1, 8000) as u16),
            },
            value: SqlValue::Text(text.clone()),
        },
        Value::NationalStringLiteral(text) => Typed {
            sql_type: SqlType::NVarChar {
                length: Some(text.chars().count().clamp(1, 4000) as u16),
            },
            value: SqlValue::Text(text.clone()),
        },
        Value::Boolean(b) => Typed {
            sql_type: SqlType::Bit,
            value: SqlValue::Bit(*b),
        },
        other => return Err(error::not_implemented(&format!("the literal `{other}`"))),
    })
}

/// Integers within `int` are `int`; other exact numbers are `numeric(p, s)`; exponents make `float`.
fn number(text: &str) -> Result<Typed, SqlError> {
    if text.contains(['e', 'E']) {
        let value = text.parse::<f64>().map_err(|_| error::syntax(text))?;
        return Ok(Typed {
            sql_type: SqlType::Float,
            value: SqlValue::Float(value),
        });
    }
    if let Ok(int) = text.parse::<i32>() {
        return Ok(Typed {
            sql_type: SqlType::Int,
            value: SqlValue::Int(i64::from(int)),
        });
    }
    let (unscaled, scale) = parse_decimal(text).ok_or_else(|| error::syntax(text))?;
    let digits = unscaled.unsigned_abs().to_string().len() as u8;
    let precision = digits.max(scale).max(1);
    if precision > 38 {
        return Err(error::overflow("numeric"));
    }
    Ok(Typed {
        sql_type: SqlType::Decimal { precision, scale },
        value: SqlValue::Decimal { unscaled, scale },
    })
}

fn negate(typed: Typed) -> Result<Typed, SqlError> {
    let value = match typed.value {
        SqlValue::Null => SqlValue::Null,
        SqlValue::Int(i) => SqlValue::Int(
            i.checked_neg()
                .ok_or_else(|| error::overflow(&datatype::name(typed.sql_type)))?,
        ),
        SqlValue::Decimal { unscaled, scale } => SqlValue::Decimal {
            unscaled: -unscaled,
            scale,
        },
        SqlValue::Float(f) => SqlValue::Float(-f),
        _ => return Err(error::not_implemented("unary minus on this type")),
    };
    Ok(Typed { value, ..typed })
}

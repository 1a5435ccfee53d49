//! Scalar expressions over an optional row: literals typed as SQL Server types them,
//! parameters, columns, CAST, arithmetic, comparisons with three-valued logic, IN, BETWEEN,
//! IS NULL.

use std::cmp::Ordering;
use std::collections::HashMap;

use sqlparser::ast::{BinaryOperator, CastKind, Expr, UnaryOperator, Value};

use super::catalog::{Column, Database};
use super::compare::compare;
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

impl Typed {
    fn bit(value: Option<bool>) -> Typed {
        Typed {
            sql_type: SqlType::Bit,
            value: value.map_or(SqlValue::Null, SqlValue::Bit),
        }
    }
}

/// Parameters of the statement, by lower-case name with `@`.
pub type Parameters = HashMap<String, Typed>;

/// What names in an expression refer to.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Statement parameters.
    pub parameters: &'a Parameters,
    /// The current row, if any: its columns and values.
    pub row: Option<(&'a [Column], &'a [SqlValue])>,
    /// Per column, the table name or alias that qualifies it (`ct.__$start_lsn`); may be empty.
    pub qualifiers: &'a [String],
    /// The session's database, for functions that read it (`sys.fn_cdc_get_max_lsn()`).
    pub database: Option<&'a Database>,
}

impl<'a> Scope<'a> {
    /// A scope with parameters only.
    pub fn constants(parameters: &'a Parameters) -> Scope<'a> {
        Scope {
            parameters,
            row: None,
            qualifiers: &[],
            database: None,
        }
    }

    /// A scope over one row.
    pub fn over(
        parameters: &'a Parameters,
        columns: &'a [Column],
        values: &'a [SqlValue],
    ) -> Scope<'a> {
        Scope {
            parameters,
            row: Some((columns, values)),
            qualifiers: &[],
            database: None,
        }
    }

    fn column(&self, qualifier: Option<&str>, name: &str) -> Result<Typed, SqlError> {
        let shown = qualifier.map_or_else(|| name.to_owned(), |q| format!("{q}.{name}"));
        let (columns, values) = self.row.ok_or_else(|| error::invalid_column(&shown))?;
        let qualified = |i: usize| {
            qualifier.is_none_or(|q| {
                self.qualifiers
                    .get(i)
                    .is_none_or(|own| own.eq_ignore_ascii_case(q))
            })
        };
        let index = (0..columns.len())
            .find(|i| columns[*i].name.eq_ignore_ascii_case(name) && qualified(*i))
            .ok_or_else(|| error::invalid_column(&shown))?;
        Ok(Typed {
            sql_type: columns[index].sql_type,
            value: values[index].clone(),
        })
    }
}

/// Evaluates `expr` in `scope`.
pub fn evaluate(expr: &Expr, scope: Scope<'_>) -> Result<Typed, SqlError> {
    match expr {
        Expr::Value(value) => literal(&value.value),
        Expr::Identifier(ident) if ident.value.starts_with('@') => scope
            .parameters
            .get(&ident.value.to_lowercase())
            .cloned()
            .ok_or_else(|| error::undeclared_variable(&ident.value)),
        Expr::Identifier(ident) => scope.column(None, &ident.value),
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [.., qualifier, name] => scope.column(Some(&qualifier.value), &name.value),
            [name] => scope.column(None, &name.value),
            [] => Err(error::syntax("")),
        },
        Expr::Nested(inner) => evaluate(inner, scope),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => negate(evaluate(expr, scope)?),
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => evaluate(expr, scope),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Ok(Typed::bit(truth(&evaluate(expr, scope)?).map(|b| !b))),
        Expr::IsNull(inner) => Ok(Typed::bit(Some(
            evaluate(inner, scope)?.value == SqlValue::Null,
        ))),
        Expr::IsNotNull(inner) => Ok(Typed::bit(Some(
            evaluate(inner, scope)?.value != SqlValue::Null,
        ))),
        Expr::Cast {
            kind: CastKind::Cast | CastKind::TryCast,
            expr,
            data_type,
            ..
        } => {
            let target = datatype::parse(&data_type.to_string())
                .ok_or_else(|| error::not_implemented(&format!("the type {data_type}")))?;
            let source = evaluate(expr, scope)?;
            Ok(Typed {
                sql_type: target,
                value: convert(source.value, source.sql_type, target)?,
            })
        }
        Expr::BinaryOp { left, op, right } => {
            binary(evaluate(left, scope)?, op, || evaluate(right, scope))
        }
        Expr::In {
            expr,
            target: sqlparser::ast::InTarget::List(list),
            negated,
            ..
        } => {
            let needle = evaluate(expr, scope)?;
            let mut result = Some(false);
            for item in list {
                match compare(&needle.value, &evaluate(item, scope)?.value) {
                    Some(Ordering::Equal) => {
                        result = Some(true);
                        break;
                    }
                    None => result = None,
                    Some(_) => {}
                }
            }
            Ok(Typed::bit(if *negated {
                result.map(|b| !b)
            } else {
                result
            }))
        }
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let value = evaluate(expr, scope)?;
            let above = compare(&value.value, &evaluate(low, scope)?.value).map(Ordering::is_ge);
            let below = compare(&value.value, &evaluate(high, scope)?.value).map(Ordering::is_le);
            let within = and(above, below);
            Ok(Typed::bit(if *negated {
                within.map(|b| !b)
            } else {
                within
            }))
        }
        Expr::Function(function) => super::functions::scalar(function, scope),
        Expr::Convert {
            expr,
            data_type: Some(data_type),
            styles,
            ..
        } => {
            let target = datatype::parse(&data_type.to_string())
                .ok_or_else(|| error::not_implemented(&format!("the type {data_type}")))?;
            let source = evaluate(expr, scope)?;
            let style = match styles.first() {
                Some(style) => match evaluate(style, scope)?.value {
                    SqlValue::Int(n) => Some(n),
                    _ => return Err(error::syntax(&style.to_string())),
                },
                None => None,
            };
            Ok(Typed {
                sql_type: target,
                value: super::convert::convert_with_style(
                    source.value,
                    source.sql_type,
                    target,
                    style,
                )?,
            })
        }
        other => Err(error::not_implemented(&format!("the expression `{other}`"))),
    }
}

/// Whether a predicate holds: Some(true), Some(false), or None for UNKNOWN.
pub fn truth(typed: &Typed) -> Option<bool> {
    match typed.value {
        SqlValue::Bit(b) => Some(b),
        SqlValue::Int(i) => Some(i != 0),
        _ => None,
    }
}

fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn binary(
    left: Typed,
    op: &BinaryOperator,
    right: impl FnOnce() -> Result<Typed, SqlError>,
) -> Result<Typed, SqlError> {
    use BinaryOperator as B;
    let right = right()?;
    let ordering = || compare(&left.value, &right.value);
    Ok(match op {
        B::And => Typed::bit(and(truth(&left), truth(&right))),
        B::Or => Typed::bit(or(truth(&left), truth(&right))),
        B::Eq => Typed::bit(ordering().map(Ordering::is_eq)),
        B::NotEq => Typed::bit(ordering().map(Ordering::is_ne)),
        B::Lt => Typed::bit(ordering().map(Ordering::is_lt)),
        B::LtEq => Typed::bit(ordering().map(Ordering::is_le)),
        B::Gt => Typed::bit(ordering().map(Ordering::is_gt)),
        B::GtEq => Typed::bit(ordering().map(Ordering::is_ge)),
        B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo => {
            super::arithmetic::apply(op, left, right)?
        }
        other => return Err(error::not_implemented(&format!("the operator {other}"))),
    })
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
        Value::HexStringLiteral(hex) => Typed {
            sql_type: SqlType::VarBinary {
                length: Some((hex.len() / 2).clamp(1, 8000) as u16),
            },
            value: SqlValue::Binary(decode_hex(hex).ok_or_else(|| error::syntax(hex))?),
        },
        Value::Boolean(b) => Typed {
            sql_type: SqlType::Bit,
            value: SqlValue::Bit(*b),
        },
        other => return Err(error::not_implemented(&format!("the literal `{other}`"))),
    })
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let hex = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_owned()
    };
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
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

//! SELECT over one table: projection (columns, `*`, expressions, aggregates), WHERE, ORDER BY,
//! TOP, OFFSET … FETCH.

use std::cmp::Ordering;

use sqlparser::ast::BinaryOperator;
use sqlparser::ast::{
    Expr, LimitClause, OrderByKind, Query, Select, SelectItem, TableFactor, TopQuantity,
};

use super::catalog::{Column, Row};
use super::compare::{compare, sort_order};
use super::error::{self, SqlError};
use super::expr::{Parameters, Scope, Typed, evaluate, truth};
use super::functions::{arguments, is_aggregate, name};
use crate::tds::token::ResultColumn;
use crate::tds::types::{SqlType, SqlValue};

/// A relation a query reads: columns and rows (already filtered to what the session sees).
pub struct Relation<'a> {
    /// Its columns.
    pub columns: &'a [Column],
    /// Per column, the table name or alias that qualifies it.
    pub qualifiers: &'a [String],
    /// Its rows.
    pub rows: Box<dyn Iterator<Item = &'a Row> + 'a>,
    /// The session's database, for functions that read it.
    pub database: Option<&'a super::catalog::Database>,
}

/// Runs `select` (with the ORDER BY and paging of `query`) over `relation`.
pub fn run(
    query: &Query,
    select: &Select,
    relation: Relation<'_>,
    parameters: &Parameters,
) -> Result<(Vec<ResultColumn>, Vec<Vec<SqlValue>>), SqlError> {
    let columns = relation.columns;
    let (qualifiers, database) = (relation.qualifiers, relation.database);
    let items = projection(&select.projection, columns)?;
    let predicate = select
        .selection
        .as_ref()
        .map(|p| Predicate::compile(p, columns, qualifiers, parameters, database))
        .transpose()?;
    let mut kept: Vec<&Row> = Vec::new();
    for row in relation.rows {
        let keep = match &predicate {
            None => true,
            Some(predicate) => {
                predicate.holds(row, scope(parameters, columns, row, qualifiers, database))?
            }
        };
        if keep {
            kept.push(row);
        }
    }
    if items
        .iter()
        .any(|(expr, _)| matches!(expr, Expr::Function(f) if is_aggregate(f)))
    {
        return aggregate(&items, columns, &kept, parameters, qualifiers, database);
    }
    if let Some(order_by) = &query.order_by
        && let OrderByKind::Expressions(keys) = &order_by.kind
    {
        let compiled: Vec<Operand<'_>> = keys
            .iter()
            .map(|k| Operand::compile(&k.expr, columns, qualifiers))
            .collect();
        let descending: Vec<bool> = keys
            .iter()
            .map(|k| matches!(k.options.sort, Some(sqlparser::ast::OrderBySort::Desc)))
            .collect();
        let direct: Option<Vec<usize>> = compiled
            .iter()
            .map(|k| match k {
                Operand::Column(i) => Some(*i),
                Operand::Expr(_) => None,
            })
            .collect();
        let in_order = |a: &Row, b: &Row, keys: &[usize]| {
            keys.iter()
                .zip(&descending)
                .map(|(&i, desc)| {
                    let order = sort_order(&a[i], &b[i]);
                    if *desc { order.reverse() } else { order }
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
                .is_le()
        };
        // Rows already in key order (a change table read in LSN order, a table in key order)
        // are checked by comparing columns in place, without building sort keys.
        let sorted = direct
            .as_ref()
            .is_some_and(|keys| kept.windows(2).all(|w| in_order(w[0], w[1], keys)));
        if !sorted {
            let mut keyed: Vec<(Vec<SqlValue>, &Row)> = Vec::with_capacity(kept.len());
            for row in kept {
                let scope = scope(parameters, columns, row, qualifiers, database);
                let values = compiled
                    .iter()
                    .map(|k| k.value(row, scope))
                    .collect::<Result<_, _>>()?;
                keyed.push((values, row));
            }
            // Stable and adaptive: rows already in key order (a change table read in LSN order)
            // sort in one pass.
            keyed.sort_by(|(a, _), (b, _)| {
                descending
                    .iter()
                    .zip(a.iter().zip(b))
                    .map(|(desc, (x, y))| {
                        if *desc {
                            sort_order(x, y).reverse()
                        } else {
                            sort_order(x, y)
                        }
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            });
            kept = keyed.into_iter().map(|(_, row)| row).collect();
        }
    }
    let (skip, take) = paging(query, select, parameters)?;
    let page = kept.into_iter().skip(skip).take(take.unwrap_or(usize::MAX));
    let outputs: Vec<Operand<'_>> = items
        .iter()
        .map(|(expr, _)| Operand::compile(expr, columns, qualifiers))
        .collect();
    let mut rows = Vec::new();
    for row in page {
        let scope = scope(parameters, columns, row, qualifiers, database);
        rows.push(
            outputs
                .iter()
                .map(|o| o.value(row, scope))
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    let null_row = vec![SqlValue::Null; columns.len()];
    let result_columns = items
        .iter()
        .map(|(expr, alias)| {
            let typed = evaluate(
                expr,
                scope(parameters, columns, &null_row, qualifiers, database),
            )?;
            Ok(ResultColumn {
                name: alias.clone(),
                sql_type: typed.sql_type,
                nullable: true,
            })
        })
        .collect::<Result<Vec<_>, SqlError>>()?;
    Ok((result_columns, rows))
}

/// An expression resolved once per query: a plain column reference becomes its position, so
/// reading it per row is an index, not a name lookup.
enum Operand<'e> {
    Column(usize),
    Expr(&'e Expr),
}

impl<'e> Operand<'e> {
    fn compile(expr: &'e Expr, columns: &[Column], qualifiers: &[String]) -> Operand<'e> {
        column_position(expr, columns, qualifiers).map_or(Operand::Expr(expr), Operand::Column)
    }

    fn value(&self, row: &[SqlValue], scope: Scope<'_>) -> Result<SqlValue, SqlError> {
        match self {
            Operand::Column(index) => Ok(row[*index].clone()),
            Operand::Expr(expr) => evaluate(expr, scope).map(|t| t.value),
        }
    }
}

/// The position of the column a plain (optionally qualified) reference names, if unambiguous.
fn column_position(expr: &Expr, columns: &[Column], qualifiers: &[String]) -> Option<usize> {
    let (qualifier, name) = match expr {
        Expr::Identifier(ident) if !ident.value.starts_with('@') => (None, &ident.value),
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
            (Some(&parts[0].value), &parts[1].value)
        }
        _ => return None,
    };
    let qualified = |i: usize| {
        qualifier.is_none_or(|q| {
            qualifiers
                .get(i)
                .is_none_or(|own| own.eq_ignore_ascii_case(q))
        })
    };
    let mut matches =
        (0..columns.len()).filter(|i| columns[*i].name.eq_ignore_ascii_case(name) && qualified(*i));
    let first = matches.next()?;
    matches.next().is_none().then_some(first)
}

/// A WHERE clause; `column <op> constant` is compiled to a direct comparison, and `AND`,
/// `OR` and parentheses over such comparisons (a keyset or change-table position predicate)
/// to a tree of them, so rows are not evaluated through name lookups.
enum Predicate<'e> {
    Compare {
        column: usize,
        op: BinaryOperator,
        constant: SqlValue,
    },
    And(Box<Predicate<'e>>, Box<Predicate<'e>>),
    Or(Box<Predicate<'e>>, Box<Predicate<'e>>),
    General(&'e Expr),
}

impl<'e> Predicate<'e> {
    fn compile(
        expr: &'e Expr,
        columns: &[Column],
        qualifiers: &[String],
        parameters: &Parameters,
        database: Option<&super::catalog::Database>,
    ) -> Result<Predicate<'e>, SqlError> {
        match expr {
            Expr::Nested(inner) => {
                return Predicate::compile(inner, columns, qualifiers, parameters, database);
            }
            Expr::BinaryOp {
                left,
                op: op @ (BinaryOperator::And | BinaryOperator::Or),
                right,
            } => {
                let left = Box::new(Predicate::compile(
                    left, columns, qualifiers, parameters, database,
                )?);
                let right = Box::new(Predicate::compile(
                    right, columns, qualifiers, parameters, database,
                )?);
                return Ok(if *op == BinaryOperator::And {
                    Predicate::And(left, right)
                } else {
                    Predicate::Or(left, right)
                });
            }
            _ => {}
        }
        if let Expr::BinaryOp { left, op, right } = expr
            && matches!(
                op,
                BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq
            )
            && let Some(column) = column_position(left, columns, qualifiers)
            && let Ok(constant) = evaluate(
                right,
                Scope {
                    parameters,
                    row: None,
                    qualifiers: &[],
                    database,
                },
            )
        {
            return Ok(Predicate::Compare {
                column,
                op: op.clone(),
                constant: constant.value,
            });
        }
        Ok(Predicate::General(expr))
    }

    fn holds(&self, row: &[SqlValue], scope: Scope<'_>) -> Result<bool, SqlError> {
        match self {
            Predicate::Compare {
                column,
                op,
                constant,
            } => Ok(compare(&row[*column], constant).is_some_and(|o| match op {
                BinaryOperator::Eq => o.is_eq(),
                BinaryOperator::NotEq => o.is_ne(),
                BinaryOperator::Lt => o.is_lt(),
                BinaryOperator::LtEq => o.is_le(),
                BinaryOperator::Gt => o.is_gt(),
                _ => o.is_ge(),
            })),
            // Whether a row is kept: NULL and false both drop it, so two-valued logic over
            // "holds" is SQL's for AND and OR (NOT is never compiled, where it would differ).
            Predicate::And(left, right) => Ok(left.holds(row, scope)? && right.holds(row, scope)?),
            Predicate::Or(left, right) => Ok(left.holds(row, scope)? || right.holds(row, scope)?),
            Predicate::General(expr) => Ok(truth(&evaluate(expr, scope)?) == Some(true)),
        }
    }
}

/// The SELECT list as (expression, output name), with `*` expanded.
fn projection(items: &[SelectItem], columns: &[Column]) -> Result<Vec<(Expr, String)>, SqlError> {
    let mut out = Vec::new();
    for item in items {
        match item {
            SelectItem::UnnamedExpr(expr) => {
                let name = match expr {
                    Expr::Identifier(ident) => ident.value.clone(),
                    Expr::CompoundIdentifier(parts) => {
                        parts.last().map(|p| p.value.clone()).unwrap_or_default()
                    }
                    _ => String::new(),
                };
                out.push((expr.clone(), name));
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                out.push((expr.clone(), alias.value.clone()))
            }
            SelectItem::ExprWithAliases { .. } => {
                return Err(error::not_implemented("multiple aliases"));
            }
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                for column in columns {
                    out.push((
                        Expr::Identifier(sqlparser::ast::Ident::new(column.name.clone())),
                        column.name.clone(),
                    ));
                }
            }
        }
    }
    Ok(out)
}

fn paging(
    query: &Query,
    select: &Select,
    parameters: &Parameters,
) -> Result<(usize, Option<usize>), SqlError> {
    let count = |expr: &Expr| -> Result<usize, SqlError> {
        match evaluate(expr, Scope::constants(parameters))?.value {
            SqlValue::Int(n) if n >= 0 => Ok(n as usize),
            _ => Err(error::syntax(&expr.to_string())),
        }
    };
    let mut take = None;
    if let Some(top) = &select.top
        && let Some(TopQuantity::Expr(expr)) = &top.quantity
    {
        take = Some(count(expr)?);
    }
    let mut skip = 0;
    if let Some(LimitClause::LimitOffset {
        offset: Some(offset),
        ..
    }) = &query.limit_clause
    {
        skip = count(&offset.value)?;
    }
    if let Some(fetch) = &query.fetch
        && let Some(quantity) = &fetch.quantity
    {
        take = Some(count(quantity)?);
    }
    Ok((skip, take))
}

fn aggregate(
    items: &[(Expr, String)],
    columns: &[Column],
    rows: &[&Row],
    parameters: &Parameters,
    qualifiers: &[String],
    database: Option<&super::catalog::Database>,
) -> Result<(Vec<ResultColumn>, Vec<Vec<SqlValue>>), SqlError> {
    let mut result_columns = Vec::new();
    let mut values = Vec::new();
    for (expr, alias) in items {
        let Expr::Function(function) = expr else {
            return Err(crate::tds::token::ServerMessage {
                number: 8120,
                state: 1,
                class: 16,
                text: format!(
                    "Column '{expr}' is invalid in the select list because it is not contained in either an aggregate function or the GROUP BY clause."
                ),
            });
        };
        let function_name = name(function);
        let argument = arguments(function).into_iter().next().flatten();
        let inputs: Vec<Typed> = match argument {
            None => Vec::new(),
            Some(arg) => rows
                .iter()
                .map(|row| evaluate(arg, scope(parameters, columns, row, qualifiers, database)))
                .collect::<Result<_, _>>()?,
        };
        let non_null = || inputs.iter().filter(|t| t.value != SqlValue::Null);
        let (sql_type, value) = match function_name.as_str() {
            "COUNT" | "COUNT_BIG" => {
                let n = if argument.is_none() {
                    rows.len()
                } else {
                    non_null().count()
                };
                (
                    if function_name == "COUNT" {
                        SqlType::Int
                    } else {
                        SqlType::BigInt
                    },
                    SqlValue::Int(n as i64),
                )
            }
            "MIN" | "MAX" => {
                let want = if function_name == "MIN" {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                let best = non_null().fold(None::<&Typed>, |best, t| match best {
                    Some(b) if compare(&t.value, &b.value) != Some(want) => Some(b),
                    _ => Some(t),
                });
                let sql_type = match argument {
                    Some(arg) => {
                        evaluate(
                            arg,
                            scope(
                                parameters,
                                columns,
                                &vec![SqlValue::Null; columns.len()],
                                qualifiers,
                                database,
                            ),
                        )?
                        .sql_type
                    }
                    None => SqlType::Int,
                };
                (sql_type, best.map_or(SqlValue::Null, |b| b.value.clone()))
            }
            other => return Err(error::not_implemented(&format!("the aggregate {other}"))),
        };
        result_columns.push(ResultColumn {
            name: alias.clone(),
            sql_type,
            nullable: true,
        });
        values.push(value);
    }
    Ok((result_columns, vec![values]))
}

/// The table a single-table FROM names, as `(schema, table)`.
pub fn from_table(select: &Select) -> Result<Option<sqlparser::ast::ObjectName>, SqlError> {
    match select.from.as_slice() {
        [] => Ok(None),
        [single] if single.joins.is_empty() => match &single.relation {
            TableFactor::Table { name, .. } => Ok(Some(name.clone())),
            _ => Err(error::not_implemented("this FROM clause")),
        },
        _ => Err(error::not_implemented("joins")),
    }
}

fn scope<'s>(
    parameters: &'s Parameters,
    columns: &'s [Column],
    row: &'s [SqlValue],
    qualifiers: &'s [String],
    database: Option<&'s super::catalog::Database>,
) -> Scope<'s> {
    Scope {
        parameters,
        row: Some((columns, row)),
        qualifiers,
        database,
    }
}

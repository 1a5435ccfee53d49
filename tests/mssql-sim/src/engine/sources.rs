//! The FROM clause: a user table, a `cdc` relation, or one JOIN of two of them (hash join on an
//! equality of one column from each side, nested loop otherwise).

use std::collections::BTreeMap;

use sqlparser::ast::{BinaryOperator, Expr, Join, JoinConstraint, JoinOperator, TableFactor};

use super::catalog::{Column, Database, Row, RowKey, Table};
use super::ddl::schema_and_table;
use super::error::{self, SqlError};
use super::expr::{Compiler, Env, Parameters, Scope, evaluate};
use super::relations::{CdcRelation, Materialised, cdc_relation};
use crate::tds::types::SqlValue;

/// One resolved FROM item.
pub enum Source<'a> {
    /// A user table, read in place.
    Table(&'a Table),
    /// A materialised relation.
    Rows(Materialised),
    /// Rows read in place (a change table).
    Borrowed {
        /// Its columns.
        columns: Vec<Column>,
        /// Its rows.
        rows: &'a [Row],
        /// The orders the rows are in, each a list of column positions.
        orders: Vec<Vec<usize>>,
    },
}

impl Source<'_> {
    /// The orders its rows are known to be in (none for most sources).
    pub fn orders(&self) -> &[Vec<usize>] {
        match self {
            Source::Borrowed { orders, .. } => orders,
            Source::Table(_) | Source::Rows(_) => &[],
        }
    }

    /// Its columns.
    pub fn columns(&self) -> &[Column] {
        match self {
            Source::Table(table) => &table.columns,
            Source::Rows(rows) => &rows.columns,
            Source::Borrowed { columns, .. } => columns,
        }
    }

    fn materialise(&self, session: u64) -> Materialised {
        match self {
            Source::Table(table) => Materialised {
                columns: table.columns.clone(),
                rows: table
                    .visible_rows(session)
                    .map(|(_, r)| r.clone())
                    .collect(),
            },
            Source::Rows(rows) => rows.clone(),
            Source::Borrowed { columns, rows, .. } => Materialised {
                columns: columns.clone(),
                rows: rows.to_vec(),
            },
        }
    }
}

/// Resolves a table factor to its source and the qualifier its columns answer to.
pub fn resolve<'a>(
    catalog: &'a super::catalog::Catalog,
    db: &'a Database,
    factor: &TableFactor,
    parameters: &Parameters,
) -> Result<(Source<'a>, String), SqlError> {
    let TableFactor::Table {
        name, alias, args, ..
    } = factor
    else {
        return Err(error::not_implemented("this FROM item"));
    };
    let (schema, table) = schema_and_table(name);
    let qualifier = alias
        .as_ref()
        .map_or_else(|| table.clone(), |a| a.name.value.clone());
    if schema.eq_ignore_ascii_case("cdc") {
        let relation = cdc_relation(db, &table, args.as_ref(), parameters)?
            .ok_or_else(|| error::invalid_object(&format!("cdc.{table}")))?;
        let source = match relation {
            CdcRelation::Rows(rows) => Source::Rows(rows),
            CdcRelation::ChangeTable {
                columns,
                rows,
                orders,
            } => Source::Borrowed {
                columns,
                rows,
                orders,
            },
        };
        return Ok((source, qualifier));
    }
    if schema.eq_ignore_ascii_case("sys")
        && let Some(view) = super::metadata::sys_view(catalog, db, &table)
    {
        return Ok((Source::Rows(view), qualifier));
    }
    if schema.eq_ignore_ascii_case("information_schema") {
        let view = super::metadata::information_schema(db, &table)
            .ok_or_else(|| error::invalid_object(&format!("INFORMATION_SCHEMA.{table}")))?;
        return Ok((Source::Rows(view), qualifier));
    }
    let found = db
        .table(&schema, &table)
        .ok_or_else(|| error::invalid_object(&format!("{schema}.{table}")))?;
    Ok((Source::Table(found), qualifier))
}

/// `left JOIN right ON …`, materialised with per-column qualifiers.
pub fn join(
    left: (Source<'_>, String),
    join: &Join,
    catalog: &super::catalog::Catalog,
    db: &Database,
    session: u64,
    parameters: &Parameters,
) -> Result<(Materialised, Vec<String>), SqlError> {
    let (outer, constraint) = match &join.join_operator {
        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (true, c),
        JoinOperator::Inner(c) | JoinOperator::Join(c) => (false, c),
        other => return Err(error::not_implemented(&format!("the join {other:?}"))),
    };
    let JoinConstraint::On(on) = constraint else {
        return Err(error::not_implemented("joins without ON"));
    };
    let (right, right_qualifier) = resolve(catalog, db, &join.relation, parameters)?;
    let (left_rows, right_rows) = (left.0.materialise(session), right.materialise(session));
    let mut columns = left_rows.columns.clone();
    columns.extend(right_rows.columns.iter().cloned());
    let mut qualifiers = vec![left.1.clone(); left_rows.columns.len()];
    qualifiers.extend(std::iter::repeat_n(
        right_qualifier.clone(),
        right_rows.columns.len(),
    ));
    let width = right_rows.columns.len();
    let hash_keys = equi_join_columns(
        on,
        &left_rows.columns,
        &left.1,
        &right_rows.columns,
        &right_qualifier,
    );
    let mut index: BTreeMap<RowKey, Vec<usize>> = BTreeMap::new();
    if let Some((_, right_column)) = hash_keys {
        for (i, row) in right_rows.rows.iter().enumerate() {
            if row[right_column] != SqlValue::Null {
                index
                    .entry(RowKey(vec![row[right_column].clone()]))
                    .or_default()
                    .push(i);
            }
        }
    }
    // The ON condition compiles once; equi-joins do not need it per pair.
    let condition = match hash_keys {
        Some(_) => None,
        None => Some(Compiler::over(&columns, &qualifiers, parameters, Some(db)).condition(on)?),
    };
    let mut rows = Vec::new();
    for left_row in &left_rows.rows {
        let candidates: Vec<usize> = match hash_keys {
            Some((left_column, _)) => index
                .get(&RowKey(vec![left_row[left_column].clone()]))
                .cloned()
                .unwrap_or_default(),
            None => (0..right_rows.rows.len()).collect(),
        };
        let mut matched = false;
        for i in candidates {
            let combined: Row = left_row
                .iter()
                .chain(&right_rows.rows[i])
                .cloned()
                .collect();
            let holds = match &condition {
                None => true,
                Some(condition) => condition.holds(&Env::row(&combined, Some(db)))?,
            };
            if holds {
                rows.push(combined);
                matched = true;
            }
        }
        if outer && !matched {
            rows.push(
                left_row
                    .iter()
                    .cloned()
                    .chain(std::iter::repeat_n(SqlValue::Null, width))
                    .collect(),
            );
        }
    }
    Ok((Materialised { columns, rows }, qualifiers))
}

/// For `a.x = b.y` with one column on each side, their positions in the left and right columns.
fn equi_join_columns(
    on: &Expr,
    left: &[Column],
    left_qualifier: &str,
    right: &[Column],
    right_qualifier: &str,
) -> Option<(usize, usize)> {
    let Expr::BinaryOp {
        left: a,
        op: BinaryOperator::Eq,
        right: b,
    } = on
    else {
        return None;
    };
    let position = |expr: &Expr, columns: &[Column], qualifier: &str| -> Option<usize> {
        let Expr::CompoundIdentifier(parts) = expr else {
            return None;
        };
        let [q, name] = parts.as_slice() else {
            return None;
        };
        if !q.value.eq_ignore_ascii_case(qualifier) {
            return None;
        }
        columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(&name.value))
    };
    match (
        position(a, left, left_qualifier),
        position(b, right, right_qualifier),
    ) {
        (Some(l), Some(r)) => Some((l, r)),
        _ => match (
            position(b, left, left_qualifier),
            position(a, right, right_qualifier),
        ) {
            (Some(l), Some(r)) => Some((l, r)),
            _ => None,
        },
    }
}

/// The rows of a change table that a `WHERE` can match, found the way SQL Server's clustered
/// index on `__$start_lsn` finds them: comparisons of `__$start_lsn` with a constant narrow
/// the (LSN-ordered) rows by binary search, through `AND` (both must hold) and `OR` (either
/// may: the range spanning both), so a reader resuming inside a transaction,
/// `lsn > @from OR (lsn = @from AND …)`, starts at `@from`, not at the first row. The whole
/// `WHERE` is still evaluated on what is left, so this only saves work, never changes a result.
pub fn seek_change_rows<'a>(
    rows: &'a [Row],
    selection: Option<&Expr>,
    parameters: &Parameters,
) -> &'a [Row] {
    let Some(selection) = selection else {
        return rows;
    };
    let (low, high) = lsn_range(rows, selection, parameters);
    if low >= high {
        &rows[..0]
    } else {
        &rows[low..high]
    }
}

/// The index range of `rows` (in `__$start_lsn` order) outside which `condition` cannot hold.
fn lsn_range(rows: &[Row], condition: &Expr, parameters: &Parameters) -> (usize, usize) {
    let everything = (0, rows.len());
    match condition {
        Expr::Nested(inner) => lsn_range(rows, inner, parameters),
        Expr::BinaryOp {
            left,
            op: op @ (BinaryOperator::And | BinaryOperator::Or),
            right,
        } => {
            let (a, b) = (
                lsn_range(rows, left, parameters),
                lsn_range(rows, right, parameters),
            );
            match (op, a.0 < a.1, b.0 < b.1) {
                // Both must hold: the ranges' overlap.
                (BinaryOperator::And, ..) => (a.0.max(b.0), a.1.min(b.1)),
                // Either may: the range spanning both; an empty side adds nothing.
                (_, false, _) => b,
                (_, _, false) => a,
                _ => (a.0.min(b.0), a.1.max(b.1)),
            }
        }
        Expr::BinaryOp { left, op, right } if is_start_lsn(left) => {
            let Ok(bound) = evaluate(right, Scope::constants(parameters)) else {
                return everything;
            };
            let SqlValue::Binary(bound) = bound.value else {
                return everything;
            };
            let at = |before: &dyn Fn(&[u8]) -> bool| {
                rows.partition_point(|row| before(super::cdc::start_lsn(row)))
            };
            let bound = bound.as_slice();
            match op {
                BinaryOperator::Gt => (at(&|lsn| lsn <= bound), rows.len()),
                BinaryOperator::GtEq => (at(&|lsn| lsn < bound), rows.len()),
                BinaryOperator::Lt => (0, at(&|lsn| lsn < bound)),
                BinaryOperator::LtEq => (0, at(&|lsn| lsn <= bound)),
                BinaryOperator::Eq => (at(&|lsn| lsn < bound), at(&|lsn| lsn <= bound)),
                _ => everything,
            }
        }
        _ => everything,
    }
}

fn is_start_lsn(expr: &Expr) -> bool {
    let name = match expr {
        Expr::Identifier(ident) => ident,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(ident) => ident,
            None => return false,
        },
        _ => return false,
    };
    name.value.eq_ignore_ascii_case("__$start_lsn")
}

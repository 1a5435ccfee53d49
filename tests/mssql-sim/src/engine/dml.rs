//! INSERT, UPDATE and DELETE, with SQL Server's checks: NULL into NOT NULL (515), values too
//! long for their column (2628), duplicate primary keys (2627), explicit identity values (544).

use sqlparser::ast::{
    AssignmentTarget, Delete, Expr, FromTable, Insert, SetExpr, TableFactor, TableObject, Update,
};

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

use super::catalog::{
    Catalog, Column, Row, RowAddress, RowKey, RowSlot, Table, TableAddress, write_row,
};
use super::convert::convert;
use super::ddl::schema_and_table;
use super::error::{self, SqlError};
use super::expr::{Comparison, Compiler, Env, Node, Parameters, Plan, Scope, evaluate};
use super::txn::{Change, ChangeKind, Transaction};
use crate::tds::types::{SqlType, SqlValue};

/// What a data statement works with.
pub struct Context<'a> {
    /// The server's catalog.
    pub catalog: &'a mut Catalog,
    /// The session's database.
    pub database: &'a str,
    /// The session.
    pub session: u64,
    /// The transaction the statement runs in.
    pub transaction: &'a mut Transaction,
    /// Statement parameters.
    pub parameters: &'a Parameters,
}

impl Context<'_> {
    /// The address of `schema.name` in the session's database.
    fn address(&self, schema: &str, name: &str) -> Arc<TableAddress> {
        TableAddress::new(self.database, schema, name)
    }

    fn table(&mut self, address: &TableAddress) -> Result<&mut Table, SqlError> {
        self.catalog.table_at(address).ok_or_else(|| {
            error::invalid_object(&format!("{}.{}", address.table.0, address.table.1))
        })
    }

    fn write(
        &mut self,
        address: &Arc<TableAddress>,
        key: RowKey,
        row: Option<Row>,
    ) -> Result<(), SqlError> {
        let session = self.session;
        let table = self.table(address)?;
        let previous = write_row(table, key.clone(), session, row)?;
        self.transaction.record(
            RowAddress {
                table: address.clone(),
                key,
            },
            previous,
        );
        Ok(())
    }

    fn change(&mut self, address: &Arc<TableAddress>, object_id: i32, kind: ChangeKind) {
        let command_id = self.transaction.command_id;
        self.transaction.changes.push(Change {
            table: address.clone(),
            object_id,
            kind,
            command_id,
        });
    }
}

/// INSERT … VALUES; returns the number of rows.
pub fn insert(context: &mut Context<'_>, insert: &Insert) -> Result<u64, SqlError> {
    let TableObject::TableName(name) = &insert.table else {
        return Err(error::not_implemented("INSERT into a table function"));
    };
    let (schema, table_name) = schema_and_table(name);
    let address = context.address(&schema, &table_name);
    let table = context.table(&address)?.clone_shape();
    let targets: Vec<usize> = if insert.columns.is_empty() {
        (0..table.columns.len())
            .filter(|i| !table.columns[*i].identity)
            .collect()
    } else {
        insert
            .columns
            .iter()
            .map(|c| {
                let column = c.to_string();
                table
                    .column_index(&column)
                    .ok_or_else(|| error::invalid_column(&column))
            })
            .collect::<Result<_, _>>()?
    };
    if targets.iter().any(|i| table.columns[*i].identity) {
        return Err(error::identity_insert(&table.qualified()));
    }
    let Some(source) = &insert.source else {
        return Err(error::not_implemented("INSERT without VALUES"));
    };
    let SetExpr::Values(values) = source.body.as_ref() else {
        return Err(error::not_implemented("INSERT … SELECT"));
    };
    let mut count = 0;
    for value_row in &values.rows {
        if value_row.len() != targets.len() {
            return Err(error::insert_value_count());
        }
        let mut row = vec![SqlValue::Null; table.columns.len()];
        for (expr, index) in value_row.iter().zip(&targets) {
            row[*index] = evaluate(expr, Scope::constants(context.parameters))
                .and_then(|typed| fit(&table, *index, typed.value, typed.sql_type))?;
        }
        let session = context.session;
        let live = context.table(&address)?;
        if let Some((next, increment)) = live.identity {
            let index = live.columns.iter().position(|c| c.identity).unwrap_or(0);
            row[index] = SqlValue::Int(next);
            live.identity = Some((next + increment, increment));
        }
        check_not_null(&table, &row, "INSERT")?;
        let key = live.key_of(&row);
        if live
            .rows
            .get(&key)
            .and_then(|slot| slot.visible(session))
            .is_some()
        {
            return Err(duplicate(&table, &key));
        }
        context.write(&address, key, Some(row.clone()))?;
        context.change(&address, table.object_id, ChangeKind::Insert(row));
        count += 1;
    }
    Ok(count)
}

/// UPDATE … SET … WHERE; returns the number of rows. A change of primary key moves the row.
pub fn update(context: &mut Context<'_>, update: &Update) -> Result<u64, SqlError> {
    let TableFactor::Table { name, .. } = &update.table.relation else {
        return Err(error::not_implemented("UPDATE of this target"));
    };
    let (schema, table_name) = schema_and_table(name);
    let address = context.address(&schema, &table_name);
    let table = context.table(&address)?.clone_shape();
    let assignments: Vec<(usize, &Expr)> = update
        .assignments
        .iter()
        .map(|a| {
            let AssignmentTarget::ColumnName(column) = &a.target else {
                return Err(error::not_implemented("tuple assignment"));
            };
            let column = column
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.clone())
                .unwrap_or_default();
            let index = table
                .column_index(&column)
                .ok_or_else(|| error::invalid_column(&column))?;
            if table.columns[index].identity {
                return Err(crate::tds::token::ServerMessage {
                    number: 8102,
                    state: 1,
                    class: 16,
                    text: format!("Cannot update identity column '{column}'."),
                });
            }
            Ok((index, &a.value))
        })
        .collect::<Result<_, _>>()?;
    let matches = matching_rows(context, &address, update.selection.as_ref())?;
    // Each SET expression compiles once for all rows.
    let plans = {
        let mut compiler = Compiler::over(&table.columns, &[], context.parameters, None);
        assignments
            .iter()
            .map(|(index, expr)| compiler.compile(expr).map(|plan| (*index, plan)))
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut updated = Vec::with_capacity(matches.len());
    for (key, before) in &matches {
        let env = Env::row(before, None);
        let mut after = before.clone();
        for (index, plan) in &plans {
            let value = plan.eval(&env)?;
            after[*index] = fit(&table, *index, value, plan.sql_type)?;
        }
        check_not_null(&table, &after, "UPDATE")?;
        updated.push((key.clone(), before.clone(), after));
    }
    // Remove every moved row first, so keys may be swapped within one statement.
    for (key, _, after) in &updated {
        let new_key = RowKey(
            table
                .primary_key
                .iter()
                .map(|i| after[*i].clone())
                .collect(),
        );
        if !table.primary_key.is_empty() && new_key != *key {
            context.write(&address, key.clone(), None)?;
        }
    }
    for (key, before, after) in updated.iter().cloned() {
        let new_key = if table.primary_key.is_empty() {
            key.clone()
        } else {
            RowKey(
                table
                    .primary_key
                    .iter()
                    .map(|i| after[*i].clone())
                    .collect(),
            )
        };
        if new_key != key {
            let session = context.session;
            let taken = context
                .table(&address)?
                .rows
                .get(&new_key)
                .and_then(|s| s.visible(session))
                .is_some();
            if taken {
                return Err(duplicate(&table, &new_key));
            }
        }
        context.write(&address, new_key, Some(after.clone()))?;
        context.change(
            &address,
            table.object_id,
            ChangeKind::Update { before, after },
        );
    }
    Ok(updated.len() as u64)
}

/// DELETE … WHERE; returns the number of rows.
pub fn delete(context: &mut Context<'_>, delete: &Delete) -> Result<u64, SqlError> {
    let from = match &delete.from {
        FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables) => tables,
    };
    let Some(TableFactor::Table { name, .. }) = from.first().map(|t| &t.relation) else {
        return Err(error::not_implemented("DELETE of this target"));
    };
    let (schema, table_name) = schema_and_table(name);
    let address = context.address(&schema, &table_name);
    let object_id = context.table(&address)?.object_id;
    let matches = matching_rows(context, &address, delete.selection.as_ref())?;
    for (key, before) in &matches {
        context.write(&address, key.clone(), None)?;
        context.change(&address, object_id, ChangeKind::Delete(before.clone()));
    }
    Ok(matches.len() as u64)
}

/// Visible rows of a table for which `selection` holds, with their keys.
pub fn matching_rows(
    context: &mut Context<'_>,
    address: &TableAddress,
    selection: Option<&Expr>,
) -> Result<Vec<(RowKey, Row)>, SqlError> {
    let session = context.session;
    let parameters = context.parameters;
    let table = context.table(address)?;
    let predicate = selection
        .map(|p| Compiler::over(&table.columns, &[], parameters, None).condition(p))
        .transpose()?;
    // A seek on the clustered key where SQL Server would plan one, otherwise a scan; the whole
    // predicate decides for each row either finds.
    let candidates: Box<dyn Iterator<Item = (&RowKey, &RowSlot)>> = match predicate
        .as_ref()
        .and_then(|p| key_seek(p, &table.primary_key))
    {
        Some(KeySeek::Point(key)) => Box::new(table.rows.get_key_value(&key).into_iter()),
        Some(KeySeek::Range(lower, upper)) if empty_range(&lower, &upper) => {
            Box::new(std::iter::empty())
        }
        Some(KeySeek::Range(lower, upper)) => Box::new(table.rows.range((lower, upper))),
        None => Box::new(table.rows.iter()),
    };
    let mut matches = Vec::new();
    for (key, row) in candidates.filter_map(|(key, slot)| slot.visible(session).map(|r| (key, r))) {
        let keep = match &predicate {
            None => true,
            Some(predicate) => predicate.holds(&Env::row(row, None))?,
        };
        if keep {
            matches.push((key.clone(), row.clone()));
        }
    }
    Ok(matches)
}

/// Where on the clustered key a predicate's rows can be, as SQL Server's plans seek it.
enum KeySeek {
    /// One key: every key column is equal to a number.
    Point(RowKey),
    /// A range of a one-column key, from bounds on it.
    Range(Bound<RowKey>, Bound<RowKey>),
}

/// The seek a predicate allows, when it is a conjunction (`… AND …`) holding an equality of
/// each key column with a number (`id = 5 AND line_no = @p2`), or, for a one-column key,
/// bounds on it (`id >= 10 AND id < 20`, `id BETWEEN 10 AND 20`); `None` for anything else,
/// which is then scanned. Only exact numbers: they compare as the key orders them, while a
/// string's equality depends on its collation. The whole predicate still decides which of
/// the sought rows match.
fn key_seek(predicate: &Plan, primary_key: &[usize]) -> Option<KeySeek> {
    /// `column op value` comparisons of a conjunction, the column on the left.
    fn comparisons<'p>(plan: &'p Plan, found: &mut Vec<(usize, Comparison, &'p SqlValue)>) {
        let number = |plan: &'p Plan| match &plan.node {
            Node::Constant(value @ (SqlValue::Int(_) | SqlValue::Decimal { .. })) => Some(value),
            _ => None,
        };
        match &plan.node {
            Node::And(left, right) => {
                comparisons(left, found);
                comparisons(right, found);
            }
            Node::Compare {
                op, left, right, ..
            } => match (&left.node, &right.node) {
                (Node::Column(column), _) => {
                    if let Some(value) = number(right) {
                        found.push((*column, *op, value));
                    }
                }
                (_, Node::Column(column)) => {
                    if let Some(value) = number(left) {
                        found.push((*column, op.mirrored(), value));
                    }
                }
                _ => {}
            },
            Node::Between {
                operand,
                low,
                high,
                negated: false,
                ..
            } => {
                if let (Node::Column(column), Some(low), Some(high)) =
                    (&operand.node, number(low), number(high))
                {
                    found.push((*column, Comparison::Ge, low));
                    found.push((*column, Comparison::Le, high));
                }
            }
            _ => {}
        }
    }
    if primary_key.is_empty() {
        return None;
    }
    let mut found = Vec::new();
    comparisons(predicate, &mut found);
    let point: Option<Vec<SqlValue>> = primary_key
        .iter()
        .map(|column| {
            found
                .iter()
                .find(|(c, op, _)| c == column && *op == Comparison::Eq)
                .map(|(_, _, value)| (*value).clone())
        })
        .collect();
    if let Some(values) = point {
        return Some(KeySeek::Point(RowKey(values)));
    }
    let [column] = primary_key else {
        return None;
    };
    let key = |value: &SqlValue| RowKey(vec![value.clone()]);
    let mut lower: Bound<RowKey> = Bound::Unbounded;
    let mut upper: Bound<RowKey> = Bound::Unbounded;
    for (_, op, value) in found.iter().filter(|(c, _, _)| c == column) {
        match op {
            Comparison::Gt => tighten(&mut lower, Bound::Excluded(key(value)), Ordering::Greater),
            Comparison::Ge => tighten(&mut lower, Bound::Included(key(value)), Ordering::Greater),
            Comparison::Lt => tighten(&mut upper, Bound::Excluded(key(value)), Ordering::Less),
            Comparison::Le => tighten(&mut upper, Bound::Included(key(value)), Ordering::Less),
            Comparison::Eq | Comparison::Ne => {}
        }
    }
    match (&lower, &upper) {
        (Bound::Unbounded, Bound::Unbounded) => None,
        _ => Some(KeySeek::Range(lower, upper)),
    }
}

/// Replaces `bound` with `candidate` when that excludes more: its key lies further `inward`
/// (`Greater` for a lower bound, `Less` for an upper one), or at the same key it is exclusive.
fn tighten(bound: &mut Bound<RowKey>, candidate: Bound<RowKey>, inward: Ordering) {
    let tighter = match (&*bound, &candidate) {
        (Bound::Unbounded, _) => true,
        (Bound::Included(old) | Bound::Excluded(old), Bound::Included(new)) => {
            new.cmp(old) == inward
        }
        (Bound::Included(old) | Bound::Excluded(old), Bound::Excluded(new)) => {
            new.cmp(old) != inward.reverse()
        }
        (_, Bound::Unbounded) => false,
    };
    if tighter {
        *bound = candidate;
    }
}

/// Whether a range from `lower` to `upper` holds no key (`BTreeMap::range` refuses those).
fn empty_range(lower: &Bound<RowKey>, upper: &Bound<RowKey>) -> bool {
    match (lower, upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u)) => {
            l >= u
        }
        _ => false,
    }
}

/// Converts a value to its column's type, refusing strings and binaries that would be cut (2628).
fn fit(table: &Table, index: usize, value: SqlValue, from: SqlType) -> Result<SqlValue, SqlError> {
    let column: &Column = &table.columns[index];
    let limit = match column.sql_type {
        SqlType::Char { length } | SqlType::NChar { length } | SqlType::Binary { length } => {
            Some(usize::from(length))
        }
        SqlType::VarChar { length }
        | SqlType::NVarChar { length }
        | SqlType::VarBinary { length } => length.map(usize::from),
        _ => None,
    };
    let too_long = match (&value, limit) {
        (SqlValue::Text(text), Some(limit)) => {
            super::convert::units(
                text.trim_end_matches(' '),
                column.sql_type,
                super::collation::CodePage::Cp1252,
            ) > limit
        }
        (SqlValue::Binary(bytes), Some(limit)) => bytes.len() > limit,
        _ => false,
    };
    if too_long {
        let shown: String = match &value {
            SqlValue::Text(text) => text.chars().take(limit.unwrap_or(0)).collect(),
            _ => String::new(),
        };
        return Err(error::truncation(&table.qualified(), &column.name, &shown));
    }
    convert(value, from, column.sql_type)
}

fn check_not_null(table: &Table, row: &Row, statement: &str) -> Result<(), SqlError> {
    for (column, value) in table.columns.iter().zip(row) {
        if !column.nullable && *value == SqlValue::Null {
            return Err(error::null_not_allowed(
                &column.name,
                &table.qualified(),
                statement,
            ));
        }
    }
    Ok(())
}

fn duplicate(table: &Table, key: &RowKey) -> SqlError {
    let shown: Vec<String> = key.0.iter().map(display).collect();
    error::primary_key_violation(
        &table.primary_key_name,
        &table.qualified(),
        &shown.join(", "),
    )
}

fn display(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "<NULL>".to_owned(),
        SqlValue::Int(i) => i.to_string(),
        SqlValue::Text(t) => t.clone(),
        other => convert(
            other.clone(),
            SqlType::NVarChar { length: None },
            SqlType::NVarChar { length: None },
        )
        .ok()
        .and_then(|v| {
            if let SqlValue::Text(t) = v {
                Some(t)
            } else {
                None
            }
        })
        .unwrap_or_default(),
    }
}

impl Table {
    /// The table without its rows: what statements need to know about its shape.
    pub fn clone_shape(&self) -> Table {
        Table {
            rows: Default::default(),
            ..self.clone_meta()
        }
    }

    fn clone_meta(&self) -> Table {
        Table {
            object_id: self.object_id,
            schema: self.schema.clone(),
            name: self.name.clone(),
            columns: self.columns.clone(),
            primary_key: self.primary_key.clone(),
            primary_key_name: self.primary_key_name.clone(),
            identity: self.identity,
            rows: Default::default(),
            next_row_id: self.next_row_id,
            next_column_id: self.next_column_id,
        }
    }
}

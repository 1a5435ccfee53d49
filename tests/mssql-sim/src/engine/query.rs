//! SELECT over one relation: projection (columns, `*`, expressions), WHERE, GROUP BY with
//! aggregates (COUNT, COUNT_BIG, SUM, AVG, MIN, MAX, DISTINCT in them), HAVING, DISTINCT,
//! ORDER BY (expressions, select-list aliases, positions), TOP, OFFSET … FETCH.
//!
//! Every expression of the statement is compiled once into a plan (see [`super::expr`]); a
//! subtree occurring more than once (the same encoding in `DATALENGTH(x)` and next to it) is
//! computed once per row.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, LimitClause, OrderByKind, Query, Select, SelectItem, TableFactor,
    TopQuantity, Value,
};

use super::catalog::{Column, Database, Row};
use super::collation::{CodePage, Folding};
use super::compare::{compare_folded, group_key};
use super::convert::rescale;
use super::datatype;
use super::error::{self, SqlError};
use super::expr::{Compiler, Env, Grouping, Node, Parameters, Plan, Scope, Slots, evaluate, share};
use super::functions::{AggregateCall, AggregateKind, is_aggregate};
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
    /// Orders the rows are known to come in, each a list of column positions (ascending).
    pub orders: &'a [Vec<usize>],
    /// The session's database, for functions that read it.
    pub database: Option<&'a Database>,
}

/// What a query returns: its columns and rows.
pub type ResultSet = (Vec<ResultColumn>, Vec<Vec<SqlValue>>);

/// An ORDER BY item: an output column (alias or position) or an expression.
enum OrderKey {
    Output(usize),
    Plan(Plan),
}

/// One group of a grouped query, once its rows are read.
struct Group {
    keys: Vec<SqlValue>,
    aggregates: Vec<SqlValue>,
}

/// Runs `select` (with the ORDER BY and paging of `query`) over `relation`.
pub fn run(
    query: &Query,
    select: &Select,
    relation: Relation<'_>,
    parameters: &Parameters,
) -> Result<ResultSet, SqlError> {
    let columns = relation.columns;
    let database = relation.database;
    let distinct = match &select.distinct {
        None => false,
        Some(Distinct::Distinct) => true,
        Some(_) => return Err(error::syntax("ON")),
    };
    if select
        .top
        .as_ref()
        .is_some_and(|t| t.percent || t.with_ties)
    {
        return Err(error::not_implemented("TOP … PERCENT / WITH TIES"));
    }
    let items = projection(&select.projection, columns)?;
    let mut compiler = Compiler::over(columns, relation.qualifiers, parameters, database);
    let mut predicate = select
        .selection
        .as_ref()
        .map(|p| compiler.condition(p))
        .transpose()?;
    let group_exprs: Vec<&Expr> = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(error::not_implemented("GROUP BY ROLLUP/CUBE/GROUPING SETS"));
            }
            exprs.iter().collect()
        }
        GroupByExpr::All(_) => return Err(error::not_implemented("GROUP BY ALL")),
    };
    let grouped = !group_exprs.is_empty()
        || select.having.is_some()
        || items.iter().any(|(expr, _)| contains_aggregate(expr));
    let mut keys = Vec::new();
    for expr in &group_exprs {
        keys.push(compiler.compile(expr)?);
    }
    if grouped {
        compiler.grouping = Some(Grouping {
            keys,
            aggregates: Vec::new(),
        });
    }
    let mut outputs = Vec::with_capacity(items.len());
    for (expr, _) in &items {
        outputs.push(compiler.compile(expr)?);
    }
    let mut having = select
        .having
        .as_ref()
        .map(|h| compiler.condition(h))
        .transpose()?;
    let mut order_by: Vec<(OrderKey, bool)> = match &query.order_by {
        Some(order_by) => match &order_by.kind {
            OrderByKind::Expressions(list) => list
                .iter()
                .map(|item| {
                    let descending =
                        matches!(item.options.sort, Some(sqlparser::ast::OrderBySort::Desc));
                    order_key(
                        &mut compiler,
                        &item.expr,
                        &items,
                        &outputs,
                        grouped,
                        distinct,
                    )
                    .map(|key| (key, descending))
                })
                .collect::<Result<_, _>>()?,
            OrderByKind::All(_) => return Err(error::syntax("ALL")),
        },
        None => Vec::new(),
    };
    let grouping = compiler.grouping.take().unwrap_or_default();
    let result_columns = items
        .iter()
        .zip(&outputs)
        .map(|((_, alias), plan)| result_column(alias, plan))
        .collect::<Result<Vec<_>, _>>()?;
    let (skip, take) = paging(query, select, parameters)?;

    if !grouped {
        // Everything is evaluated over rows: share repeated subtrees across all of it.
        let mut plans: Vec<&mut Plan> = predicate.iter_mut().collect();
        plans.extend(outputs.iter_mut());
        plans.extend(order_by.iter_mut().filter_map(|(key, _)| match key {
            OrderKey::Plan(plan) => Some(plan),
            OrderKey::Output(_) => None,
        }));
        let slots = Slots::new(share(&mut plans));
        // Without DISTINCT, TOP stops the scan early when the rows come in the ORDER BY's
        // order already (or there is no ORDER BY and no OFFSET): the first rows kept are
        // the ones wanted.
        let limit = if distinct {
            None
        } else if order_by.is_empty() {
            take.filter(|_| skip == 0)
        } else if comes_ordered(&order_by, relation.orders) {
            take.map(|take| take.saturating_add(skip))
        } else {
            None
        };
        let rows = filter_rows(relation.rows, predicate.as_ref(), database, &slots, limit)?;
        let envs: Vec<Env<'_>> = rows
            .iter()
            .map(|row| Env {
                row,
                database,
                keys: &[],
                aggregates: &[],
                slots: Some(&slots),
            })
            .collect();
        let rows = finish(&envs, &slots, &outputs, &order_by, distinct, skip, take)?;
        return Ok((result_columns, rows));
    }

    let Grouping {
        keys: mut key_plans,
        mut aggregates,
    } = grouping;
    let row_slots = {
        let mut plans: Vec<&mut Plan> = predicate.iter_mut().collect();
        plans.extend(key_plans.iter_mut());
        plans.extend(aggregates.iter_mut().filter_map(|a| a.argument.as_mut()));
        Slots::new(share(&mut plans))
    };
    let groups = aggregate(
        relation.rows,
        predicate.as_ref(),
        &key_plans,
        &aggregates,
        database,
        &row_slots,
    )?;
    let group_slots = {
        let mut plans: Vec<&mut Plan> = having.iter_mut().collect();
        plans.extend(outputs.iter_mut());
        plans.extend(order_by.iter_mut().filter_map(|(key, _)| match key {
            OrderKey::Plan(plan) => Some(plan),
            OrderKey::Output(_) => None,
        }));
        Slots::new(share(&mut plans))
    };
    let mut envs = Vec::with_capacity(groups.len());
    for group in &groups {
        let env = Env {
            row: &[],
            database,
            keys: &group.keys,
            aggregates: &group.aggregates,
            slots: Some(&group_slots),
        };
        group_slots.clear();
        if having.as_ref().map_or(Ok(true), |h| h.holds(&env))? {
            envs.push(env);
        }
    }
    let rows = finish(
        &envs,
        &group_slots,
        &outputs,
        &order_by,
        distinct,
        skip,
        take,
    )?;
    Ok((result_columns, rows))
}

/// Whether an ORDER BY of plain columns, all ascending, is a prefix of one of the orders the
/// rows are known to come in.
fn comes_ordered(order_by: &[(OrderKey, bool)], orders: &[Vec<usize>]) -> bool {
    let columns: Option<Vec<usize>> = order_by
        .iter()
        .map(|(key, descending)| match key {
            OrderKey::Plan(Plan {
                node: Node::Column(i),
                ..
            }) if !descending => Some(*i),
            _ => None,
        })
        .collect();
    columns.is_some_and(|columns| orders.iter().any(|order| order.starts_with(&columns)))
}

/// The rows the WHERE keeps (at most `limit` of them).
fn filter_rows<'a>(
    rows: Box<dyn Iterator<Item = &'a Row> + 'a>,
    predicate: Option<&Plan>,
    database: Option<&Database>,
    slots: &Slots,
    limit: Option<usize>,
) -> Result<Vec<&'a Row>, SqlError> {
    let mut kept = Vec::new();
    for row in rows {
        if limit.is_some_and(|limit| kept.len() >= limit) {
            break;
        }
        let keep = match predicate {
            None => true,
            Some(predicate) => {
                slots.clear();
                predicate.holds(&Env {
                    row,
                    database,
                    keys: &[],
                    aggregates: &[],
                    slots: Some(slots),
                })?
            }
        };
        if keep {
            kept.push(row);
        }
    }
    Ok(kept)
}

/// ORDER BY, DISTINCT, paging and the select list over rows or groups.
fn finish(
    envs: &[Env<'_>],
    slots: &Slots,
    outputs: &[Plan],
    order_by: &[(OrderKey, bool)],
    distinct: bool,
    skip: usize,
    take: Option<usize>,
) -> Result<Vec<Vec<SqlValue>>, SqlError> {
    let output_row = |env: &Env<'_>| -> Result<Vec<SqlValue>, SqlError> {
        slots.clear();
        outputs.iter().map(|plan| plan.eval(env)).collect()
    };
    let needs_outputs_first = distinct
        || order_by
            .iter()
            .any(|(key, _)| matches!(key, OrderKey::Output(_)));
    let mut order: Vec<usize> = (0..envs.len()).collect();
    let mut computed: Vec<Option<Vec<SqlValue>>> = vec![None; envs.len()];
    if needs_outputs_first {
        for (i, env) in envs.iter().enumerate() {
            computed[i] = Some(output_row(env)?);
        }
    }
    if distinct {
        let mut seen = HashSet::new();
        let mut key = Vec::new();
        order.retain(|i| {
            key.clear();
            if let Some(values) = &computed[*i] {
                for (value, plan) in values.iter().zip(outputs) {
                    group_key(value, folding_of(plan), &mut key);
                }
            }
            seen.insert(key.clone())
        });
    }
    if !order_by.is_empty() {
        let direct: Option<Vec<usize>> = order_by
            .iter()
            .map(|(key, _)| match key {
                OrderKey::Plan(Plan {
                    node: Node::Column(i),
                    ..
                }) => Some(*i),
                _ => None,
            })
            .collect();
        let foldings: Vec<Folding> = order_by
            .iter()
            .map(|(key, _)| match key {
                OrderKey::Plan(plan) => folding_of(plan),
                OrderKey::Output(i) => outputs.get(*i).map_or(Folding::Binary, folding_of),
            })
            .collect();
        let compare_keys = |a: &[&SqlValue], b: &[&SqlValue]| {
            a.iter()
                .zip(b)
                .zip(order_by.iter().zip(&foldings))
                .map(|((x, y), ((_, descending), folding))| {
                    let ordering = sort_order(x, y, *folding);
                    if *descending {
                        ordering.reverse()
                    } else {
                        ordering
                    }
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        };
        match direct {
            // Plain columns compare in place; rows already in order (a change table read in
            // LSN order) cost one pass of the stable sort.
            Some(columns) => {
                let values = |i: usize| -> Vec<&SqlValue> {
                    columns
                        .iter()
                        .map(|c| envs[i].row.get(*c).unwrap_or(&SqlValue::Null))
                        .collect()
                };
                let sorted = order
                    .windows(2)
                    .all(|w| compare_keys(&values(w[0]), &values(w[1])).is_le());
                if !sorted {
                    order.sort_by(|a, b| compare_keys(&values(*a), &values(*b)));
                }
            }
            None => {
                let mut keyed: Vec<(Vec<SqlValue>, usize)> = Vec::with_capacity(order.len());
                for i in order {
                    let mut key = Vec::with_capacity(order_by.len());
                    for (item, _) in order_by {
                        key.push(match item {
                            OrderKey::Output(o) => computed[i]
                                .as_ref()
                                .and_then(|values| values.get(*o).cloned())
                                .unwrap_or(SqlValue::Null),
                            OrderKey::Plan(plan) => {
                                slots.clear();
                                plan.eval(&envs[i])?
                            }
                        });
                    }
                    keyed.push((key, i));
                }
                keyed.sort_by(|(a, _), (b, _)| {
                    compare_keys(&a.iter().collect::<Vec<_>>(), &b.iter().collect::<Vec<_>>())
                });
                order = keyed.into_iter().map(|(_, i)| i).collect();
            }
        }
    }
    let page = order
        .into_iter()
        .skip(skip)
        .take(take.unwrap_or(usize::MAX));
    let mut rows = Vec::new();
    for i in page {
        rows.push(match computed[i].take() {
            Some(values) => values,
            None => output_row(&envs[i])?,
        });
    }
    Ok(rows)
}

/// NULLs first (as SQL Server sorts them), then values under the collation's folding.
fn sort_order(a: &SqlValue, b: &SqlValue, folding: Folding) -> Ordering {
    match (a, b) {
        (SqlValue::Null, SqlValue::Null) => Ordering::Equal,
        (SqlValue::Null, _) => Ordering::Less,
        (_, SqlValue::Null) => Ordering::Greater,
        _ => compare_folded(a, b, folding).unwrap_or(Ordering::Equal),
    }
}

fn folding_of(plan: &Plan) -> Folding {
    match &plan.collation {
        Some(collation) if datatype::is_character(plan.sql_type) => collation.folding,
        _ => Folding::Binary,
    }
}

fn order_key(
    compiler: &mut Compiler<'_>,
    expr: &Expr,
    items: &[(Expr, String)],
    outputs: &[Plan],
    grouped: bool,
    distinct: bool,
) -> Result<OrderKey, SqlError> {
    // An output that is a plain column sorts by that column: rows compare in place.
    let output = |index: usize| match outputs.get(index) {
        Some(plan) if matches!(plan.node, Node::Column(_)) && !distinct => {
            OrderKey::Plan(plan.clone())
        }
        _ => OrderKey::Output(index),
    };
    // A position in the select list.
    if let Expr::Value(value) = expr
        && let Value::Number(text, _) = &value.value
    {
        let position: i64 = text.parse().map_err(|_| error::syntax(text))?;
        if position < 1 || position as usize > items.len() {
            return Err(error::order_by_position(position));
        }
        return Ok(output(position as usize - 1));
    }
    // A select-list alias (aliases win over columns of the same name).
    if let Expr::Identifier(ident) = expr
        && let Some(index) = items
            .iter()
            .position(|(_, alias)| alias.eq_ignore_ascii_case(&ident.value))
    {
        return Ok(output(index));
    }
    let plan = compiler.compile(expr).map_err(|e| {
        if grouped && e.number == 8120 {
            let column = e.text.split('\'').nth(1).unwrap_or_default().to_owned();
            error::order_by_not_grouped(&column)
        } else {
            e
        }
    })?;
    if distinct {
        return match outputs.iter().position(|o| *o == plan) {
            Some(index) => Ok(OrderKey::Output(index)),
            None => Err(crate::tds::token::ServerMessage {
                number: 145,
                state: 1,
                class: 15,
                text:
                    "ORDER BY items must appear in the select list if SELECT DISTINCT is specified."
                        .to_owned(),
            }),
        };
    }
    Ok(OrderKey::Plan(plan))
}

fn result_column(alias: &str, plan: &Plan) -> Result<ResultColumn, SqlError> {
    if matches!(
        plan.sql_type,
        SqlType::Char { .. } | SqlType::VarChar { .. }
    ) && plan.code_page() == CodePage::Utf8
    {
        // SQL Server would send UTF-8 bytes under a UTF-8 collation's TYPE_INFO, which
        // tiberius reads as code page 1252; the simulator sends only code-page text.
        return Err(error::not_implemented(
            "a char/varchar result column in a UTF-8 collation",
        ));
    }
    Ok(ResultColumn {
        name: alias.to_owned(),
        sql_type: plan.sql_type,
        nullable: true,
    })
}

/// Whether an expression contains an aggregate call (outside subqueries).
fn contains_aggregate(expr: &Expr) -> bool {
    match expr {
        Expr::Function(function) => {
            is_aggregate(function)
                || super::functions::arguments(function)
                    .into_iter()
                    .flatten()
                    .any(contains_aggregate)
        }
        Expr::Nested(e)
        | Expr::UnaryOp { expr: e, .. }
        | Expr::Cast { expr: e, .. }
        | Expr::Convert { expr: e, .. }
        | Expr::Collate { expr: e, .. }
        | Expr::IsNull(e)
        | Expr::IsNotNull(e) => contains_aggregate(e),
        Expr::BinaryOp { left, right, .. } => contains_aggregate(left) || contains_aggregate(right),
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            contains_aggregate(expr)
                || substring_from.as_deref().is_some_and(contains_aggregate)
                || substring_for.as_deref().is_some_and(contains_aggregate)
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref().is_some_and(contains_aggregate)
                || conditions
                    .iter()
                    .any(|c| contains_aggregate(&c.condition) || contains_aggregate(&c.result))
                || else_result.as_deref().is_some_and(contains_aggregate)
        }
        Expr::In {
            expr,
            target: sqlparser::ast::InTarget::List(list),
            ..
        } => contains_aggregate(expr) || list.iter().any(contains_aggregate),
        Expr::Between {
            expr, low, high, ..
        } => contains_aggregate(expr) || contains_aggregate(low) || contains_aggregate(high),
        _ => false,
    }
}

/// Reads the rows into groups and their aggregates. Without GROUP BY there is exactly one
/// group, even over no rows.
fn aggregate<'a>(
    rows: Box<dyn Iterator<Item = &'a Row> + 'a>,
    predicate: Option<&Plan>,
    key_plans: &[Plan],
    calls: &[AggregateCall],
    database: Option<&Database>,
    slots: &Slots,
) -> Result<Vec<Group>, SqlError> {
    let foldings: Vec<Folding> = key_plans.iter().map(folding_of).collect();
    let mut index = KeyMap::default();
    // One integer key (a bucket number) is looked up as the integer itself.
    let integer_key = key_plans.len() == 1 && datatype::is_integer(key_plans[0].sql_type);
    let mut integer_index: HashMap<Option<i64>, usize, std::hash::BuildHasherDefault<KeyHasher>> =
        HashMap::default();
    let mut keys: Vec<Vec<SqlValue>> = Vec::new();
    let mut states: Vec<Vec<Accumulator>> = Vec::new();
    if key_plans.is_empty() {
        keys.push(Vec::new());
        states.push(calls.iter().map(Accumulator::new).collect());
    }
    let mut buffer = Vec::new();
    let mut values: Vec<SqlValue> = Vec::with_capacity(key_plans.len());
    for row in rows {
        slots.clear();
        let env = Env {
            row,
            database,
            keys: &[],
            aggregates: &[],
            slots: Some(slots),
        };
        if let Some(predicate) = predicate
            && !predicate.holds(&env)?
        {
            continue;
        }
        let group = if key_plans.is_empty() {
            0
        } else {
            values.clear();
            for plan in key_plans {
                values.push(plan.eval(&env)?);
            }
            if integer_key {
                let key = match values.first() {
                    Some(SqlValue::Int(i)) => Some(*i),
                    _ => None,
                };
                match integer_index.get(&key) {
                    Some(group) => *group,
                    None => {
                        integer_index.insert(key, keys.len());
                        keys.push(values.clone());
                        states.push(calls.iter().map(Accumulator::new).collect());
                        keys.len() - 1
                    }
                }
            } else {
                buffer.clear();
                for (value, folding) in values.iter().zip(&foldings) {
                    group_key(value, *folding, &mut buffer);
                }
                match index.get(buffer.as_slice()) {
                    Some(group) => *group,
                    None => {
                        index.insert(buffer.clone(), keys.len());
                        keys.push(values.clone());
                        states.push(calls.iter().map(Accumulator::new).collect());
                        keys.len() - 1
                    }
                }
            }
        };
        let Some(state) = states.get_mut(group) else {
            continue;
        };
        for (call, accumulator) in calls.iter().zip(state.iter_mut()) {
            let value = match &call.argument {
                Some(argument) => Some(argument.eval(&env)?),
                None => None,
            };
            accumulator.add(call, value)?;
        }
    }
    keys.into_iter()
        .zip(states)
        .map(|(keys, state)| {
            let aggregates = calls
                .iter()
                .zip(state)
                .map(|(call, accumulator)| accumulator.finish(call))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Group { keys, aggregates })
        })
        .collect()
}

/// 10^38: a decimal sum must stay below it.
const DECIMAL_LIMIT: u128 = 100_000_000_000_000_000_000_000_000_000_000_000_000;

/// A fast hasher for group keys (FNV-1a over the key bytes): SipHash's resistance to chosen
/// keys buys nothing here and costs a noticeable share of a per-row GROUP BY.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type KeyMap = HashMap<Vec<u8>, usize, std::hash::BuildHasherDefault<KeyHasher>>;

/// The running state of one aggregate over one group.
struct Accumulator {
    count: i64,
    /// Integer sums (exact), or decimal sums unscaled at the result's scale.
    exact: i128,
    float: f64,
    best: Option<SqlValue>,
    seen: Option<HashSet<Vec<u8>>>,
}

impl Accumulator {
    fn new(call: &AggregateCall) -> Accumulator {
        Accumulator {
            count: 0,
            exact: 0,
            float: 0.0,
            best: None,
            seen: call.distinct.then(HashSet::new),
        }
    }

    fn add(&mut self, call: &AggregateCall, value: Option<SqlValue>) -> Result<(), SqlError> {
        let Some(value) = value else {
            // COUNT(*) counts rows.
            self.count += 1;
            return Ok(());
        };
        if value == SqlValue::Null {
            return Ok(());
        }
        if let Some(seen) = &mut self.seen {
            let mut key = Vec::new();
            group_key(&value, call.folding, &mut key);
            if !seen.insert(key) {
                return Ok(());
            }
        }
        self.count += 1;
        match call.kind {
            AggregateKind::Count | AggregateKind::CountBig => {}
            AggregateKind::Sum | AggregateKind::Avg => match (&value, call.sql_type) {
                (SqlValue::Float(f), _) => self.float += f,
                (SqlValue::Int(i), _) => self.exact += i128::from(*i),
                (SqlValue::Decimal { unscaled, scale }, _) => {
                    let unscaled = if *scale == sum_scale(call) {
                        *unscaled
                    } else {
                        rescale(*unscaled, *scale, sum_scale(call))
                            .ok_or_else(|| error::overflow("numeric"))?
                    };
                    self.exact = self
                        .exact
                        .checked_add(unscaled)
                        .filter(|sum| sum.unsigned_abs() < DECIMAL_LIMIT)
                        .ok_or_else(|| error::overflow(&overflow_name(call.sql_type)))?;
                }
                _ => return Err(error::not_implemented("this aggregate over this type")),
            },
            AggregateKind::Min | AggregateKind::Max => {
                let want = if call.kind == AggregateKind::Min {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                let better = match &self.best {
                    None => true,
                    Some(best) => compare_folded(&value, best, call.folding) == Some(want),
                };
                if better {
                    self.best = Some(value);
                }
            }
        }
        Ok(())
    }

    fn finish(self, call: &AggregateCall) -> Result<SqlValue, SqlError> {
        let in_range = |value: i128| -> Result<SqlValue, SqlError> {
            let fits = match call.sql_type {
                SqlType::Int => i32::try_from(value).is_ok(),
                _ => i64::try_from(value).is_ok(),
            };
            if fits {
                Ok(SqlValue::Int(value as i64))
            } else {
                Err(error::overflow(&overflow_name(call.sql_type)))
            }
        };
        match call.kind {
            AggregateKind::Count | AggregateKind::CountBig => in_range(i128::from(self.count)),
            AggregateKind::Min | AggregateKind::Max => Ok(self.best.unwrap_or(SqlValue::Null)),
            _ if self.count == 0 => Ok(SqlValue::Null),
            AggregateKind::Sum => match call.sql_type {
                SqlType::Float => Ok(SqlValue::Float(self.float)),
                SqlType::Decimal { scale, .. } => Ok(SqlValue::Decimal {
                    unscaled: self.exact,
                    scale,
                }),
                SqlType::Money => Ok(SqlValue::Decimal {
                    unscaled: self.exact,
                    scale: 4,
                })
                .and_then(|v| {
                    if i64::try_from(self.exact).is_ok() {
                        Ok(v)
                    } else {
                        Err(error::overflow("money"))
                    }
                }),
                _ => in_range(self.exact),
            },
            AggregateKind::Avg => match call.sql_type {
                SqlType::Float => Ok(SqlValue::Float(self.float / self.count as f64)),
                SqlType::Decimal { .. } | SqlType::Money => {
                    let (from, to) = (sum_scale(call), target_scale(call.sql_type));
                    let numerator =
                        rescale(self.exact, from, to).ok_or_else(|| error::overflow("numeric"))?;
                    let count = i128::from(self.count);
                    let (quotient, remainder) = (numerator / count, numerator % count);
                    let rounded = if remainder.abs() * 2 >= count {
                        quotient + numerator.signum()
                    } else {
                        quotient
                    };
                    Ok(SqlValue::Decimal {
                        unscaled: rounded,
                        scale: to,
                    })
                }
                // Integer averages truncate, as SQL Server's do.
                _ => in_range(self.exact / i128::from(self.count)),
            },
        }
    }
}

/// The scale decimal sums run at: the argument's.
fn sum_scale(call: &AggregateCall) -> u8 {
    match call.argument.as_ref().map(|a| a.sql_type) {
        Some(SqlType::Decimal { scale, .. }) => scale,
        Some(SqlType::Money | SqlType::SmallMoney) => 4,
        _ => 0,
    }
}

fn target_scale(sql_type: SqlType) -> u8 {
    match sql_type {
        SqlType::Decimal { scale, .. } => scale,
        SqlType::Money | SqlType::SmallMoney => 4,
        _ => 0,
    }
}

fn overflow_name(sql_type: SqlType) -> String {
    match sql_type {
        SqlType::Decimal { .. } => "numeric".to_owned(),
        other => {
            let name = datatype::name(other);
            name.split('(').next().unwrap_or(&name).to_owned()
        }
    }
}

/// The SELECT list as (expression, output name), with `*` expanded. `alias = expression` is
/// T-SQL's other way to name an output.
fn projection(items: &[SelectItem], columns: &[Column]) -> Result<Vec<(Expr, String)>, SqlError> {
    let mut out = Vec::new();
    for item in items {
        match item {
            SelectItem::UnnamedExpr(Expr::BinaryOp {
                left,
                op: sqlparser::ast::BinaryOperator::Eq,
                right,
            }) if matches!(left.as_ref(), Expr::Identifier(i) if !i.value.starts_with('@')) => {
                let Expr::Identifier(alias) = left.as_ref() else {
                    continue;
                };
                out.push(((**right).clone(), alias.value.clone()));
            }
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

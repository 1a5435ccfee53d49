//! Scalar functions. Aggregates (COUNT, COUNT_BIG, MIN, MAX, SUM) are evaluated by the query
//! layer over a group of rows, not here.

use sqlparser::ast::{Function, FunctionArg, FunctionArgExpr, FunctionArguments};

use super::error::{self, SqlError};
use super::expr::{Scope, Typed, evaluate};
use crate::tds::types::SqlValue;

/// The function's name, upper-case, without a `sys.` or `dbo.` schema.
pub fn name(function: &Function) -> String {
    function
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_uppercase())
        .unwrap_or_default()
}

/// The plain argument expressions of a call (`*` is returned as None).
pub fn arguments(function: &Function) -> Vec<Option<&sqlparser::ast::Expr>> {
    match &function.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|arg| match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(expr))
                | FunctionArg::Named {
                    arg: FunctionArgExpr::Expr(expr),
                    ..
                } => Some(expr),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether the function is an aggregate.
pub fn is_aggregate(function: &Function) -> bool {
    matches!(
        name(function).as_str(),
        "COUNT" | "COUNT_BIG" | "MIN" | "MAX" | "SUM"
    )
}

/// Evaluates a scalar function call.
pub fn scalar(function: &Function, scope: Scope<'_>) -> Result<Typed, SqlError> {
    let name = name(function);
    let args: Vec<Typed> = arguments(function)
        .into_iter()
        .map(|arg| {
            arg.ok_or_else(|| error::syntax("*"))
                .and_then(|expr| evaluate(expr, scope))
        })
        .collect::<Result<_, _>>()?;
    match name.as_str() {
        "ISNULL" | "COALESCE" => {
            let first = args.first().cloned().ok_or_else(|| error::syntax(&name))?;
            let chosen = args
                .iter()
                .find(|a| a.value != SqlValue::Null)
                .cloned()
                .unwrap_or(first.clone());
            Ok(Typed {
                sql_type: first.sql_type,
                value: chosen.value,
            })
        }
        _ if is_aggregate(function) => Err(error::not_implemented(&format!(
            "{name} outside a SELECT list"
        ))),
        _ => match scope.database.and_then(|db| {
            super::relations::cdc_function(
                db,
                &name,
                &args.iter().map(|a| a.value.clone()).collect::<Vec<_>>(),
            )
        }) {
            Some(result) => result.map(|(sql_type, value)| Typed { sql_type, value }),
            None => Err(error::not_implemented(&format!("the function {name}"))),
        },
    }
}

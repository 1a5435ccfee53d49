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
        "HASHBYTES" => hashbytes(&args),
        "LOWER" | "UPPER" => {
            let arg = args.first().cloned().ok_or_else(|| error::syntax(&name))?;
            let value = match arg.value {
                SqlValue::Text(t) if name == "LOWER" => SqlValue::Text(t.to_lowercase()),
                SqlValue::Text(t) => SqlValue::Text(t.to_uppercase()),
                other => other,
            };
            Ok(Typed {
                sql_type: arg.sql_type,
                value,
            })
        }
        "LEN" => {
            let arg = args.first().ok_or_else(|| error::syntax(&name))?;
            let value = match &arg.value {
                // LEN ignores trailing spaces.
                SqlValue::Text(t) => SqlValue::Int(t.trim_end_matches(' ').chars().count() as i64),
                _ => SqlValue::Null,
            };
            Ok(Typed {
                sql_type: crate::tds::types::SqlType::Int,
                value,
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

/// `HASHBYTES(algorithm, input)`: the input's bytes as SQL Server stores them (UTF-16LE for
/// nvarchar, the code page for varchar), hashed. SHA2_256 and SHA2_512 are supported.
fn hashbytes(args: &[Typed]) -> Result<Typed, SqlError> {
    use crate::tds::types::SqlType;
    use sha2::Digest;
    let [algorithm, input] = args else {
        return Err(error::syntax("HASHBYTES"));
    };
    let SqlValue::Text(algorithm) = &algorithm.value else {
        return Err(error::syntax("HASHBYTES"));
    };
    let bytes: Vec<u8> = match (&input.value, input.sql_type) {
        (SqlValue::Null, _) => {
            return Ok(Typed {
                sql_type: SqlType::VarBinary { length: Some(8000) },
                value: SqlValue::Null,
            });
        }
        (SqlValue::Text(t), SqlType::NChar { .. } | SqlType::NVarChar { .. }) => {
            t.encode_utf16().flat_map(u16::to_le_bytes).collect()
        }
        (SqlValue::Text(t), _) => t
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect(),
        (SqlValue::Binary(b), _) => b.clone(),
        _ => {
            return Err(error::conversion_not_allowed(
                &super::datatype::name(input.sql_type),
                "varbinary",
            ));
        }
    };
    let digest = match algorithm.to_uppercase().as_str() {
        "SHA2_256" => sha2::Sha256::digest(&bytes).to_vec(),
        "SHA2_512" => sha2::Sha512::digest(&bytes).to_vec(),
        other => return Err(error::not_implemented(&format!("HASHBYTES with {other}"))),
    };
    Ok(Typed {
        sql_type: SqlType::VarBinary { length: Some(8000) },
        value: SqlValue::Binary(digest),
    })
}

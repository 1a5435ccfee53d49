//! Built-in functions: scalar ones compile to a [`Function`] node with their SQL Server result
//! type (arguments converted to what the function takes); aggregates (COUNT, COUNT_BIG, SUM,
//! AVG, MIN, MAX) compile to slots the query layer fills per group.

use sha2::Digest;
use sqlparser::ast::{
    DuplicateTreatment, Function as AstFunction, FunctionArg, FunctionArgExpr, FunctionArguments,
};

use super::collation::{self, CodePage, Folding};
use super::compare::compare_folded;
use super::datatype;
use super::error::{self, SqlError};
use super::expr::{Compiler, Env, Label, Node, Plan, resolve_collation};
use crate::tds::types::{SqlType, SqlValue};

/// The function's name, upper-case, without a `sys.` or `dbo.` schema.
pub fn name(function: &AstFunction) -> String {
    function
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_uppercase())
        .unwrap_or_default()
}

/// The plain argument expressions of a call (`*` is returned as None).
pub fn arguments(function: &AstFunction) -> Vec<Option<&sqlparser::ast::Expr>> {
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
pub fn is_aggregate(function: &AstFunction) -> bool {
    matches!(
        name(function).as_str(),
        "COUNT" | "COUNT_BIG" | "MIN" | "MAX" | "SUM" | "AVG"
    )
}

/// A scalar function.
#[derive(Debug, Clone, PartialEq)]
pub enum Function {
    /// `ISNULL(a, b)`.
    IsNull,
    /// `COALESCE(a, b, …)`.
    Coalesce,
    /// `NULLIF(a, b)`.
    NullIf(Folding),
    /// `HASHBYTES(algorithm, input)`.
    HashBytes,
    /// `LOWER(s)`.
    Lower,
    /// `UPPER(s)`.
    Upper,
    /// `LEN(s)`.
    Len,
    /// `DATALENGTH(x)`.
    DataLength,
    /// `SUBSTRING(x, start, length)`.
    Substring,
    /// `LEFT(s, n)`.
    Left,
    /// `RIGHT(s, n)`.
    Right,
    /// `LTRIM(s)`.
    LTrim,
    /// `RTRIM(s)`.
    RTrim,
    /// `CONCAT(a, b, …)`.
    Concat,
    /// `SWITCHOFFSET(datetimeoffset, offset)`.
    SwitchOffset,
    /// `sys.fn_cdc_*` functions of the session's database.
    Cdc(String),
}

const CDC_FUNCTIONS: [&str; 5] = [
    "FN_CDC_GET_MAX_LSN",
    "FN_CDC_GET_MIN_LSN",
    "FN_CDC_INCREMENT_LSN",
    "FN_CDC_DECREMENT_LSN",
    "FN_CDC_MAP_LSN_TO_TIME",
];

impl Function {
    /// Whether a call with constant arguments may be computed at compile time.
    pub fn is_foldable(&self) -> bool {
        !matches!(self, Function::Cdc(_))
    }

    /// Calls the function; `this` is the call's plan (its result type).
    pub fn call(&self, args: &[Plan], this: &Plan, env: &Env<'_>) -> Result<SqlValue, SqlError> {
        let arg = |i: usize| -> Result<SqlValue, SqlError> {
            args.get(i)
                .map_or(Ok(SqlValue::Null), |plan| plan.eval(env))
        };
        // Argument counts were checked when the call compiled; a missing one reads as NULL.
        let null = Plan::constant(SqlValue::Null, SqlType::Int);
        let first = args.first().unwrap_or(&null);
        match self {
            Function::IsNull => match arg(0)? {
                SqlValue::Null => arg(1),
                value => Ok(value),
            },
            Function::Coalesce => {
                for plan in args {
                    let value = plan.eval(env)?;
                    if value != SqlValue::Null {
                        return Ok(value);
                    }
                }
                Ok(SqlValue::Null)
            }
            Function::NullIf(folding) => {
                let (a, b) = (arg(0)?, arg(1)?);
                Ok(match compare_folded(&a, &b, *folding) {
                    Some(std::cmp::Ordering::Equal) => SqlValue::Null,
                    _ => a,
                })
            }
            Function::HashBytes => {
                let (Some(algorithm), Some(input)) = (args.first(), args.get(1)) else {
                    return Ok(SqlValue::Null);
                };
                algorithm.with_value(env, |algorithm| match algorithm {
                    SqlValue::Text(algorithm) => hashbytes(algorithm, input, env),
                    _ => Ok(SqlValue::Null),
                })
            }
            Function::DataLength => first.with_value(env, |value| {
                Ok(match value {
                    SqlValue::Null => SqlValue::Null,
                    value => SqlValue::Int(data_length(value, first) as i64),
                })
            }),
            Function::Lower | Function::Upper => Ok(match arg(0)? {
                SqlValue::Text(text) => SqlValue::Text(change_case(
                    text,
                    *self == Function::Upper,
                    !datatype::is_unicode(this.sql_type),
                    this.code_page(),
                )),
                other => other,
            }),
            Function::Len => Ok(match arg(0)? {
                SqlValue::Text(text) => {
                    SqlValue::Int(length_units(text.trim_end_matches(' '), first) as i64)
                }
                _ => SqlValue::Null,
            }),
            Function::Substring | Function::Left | Function::Right => {
                let value = arg(0)?;
                let integer = |i: usize| -> Result<Option<i64>, SqlError> {
                    match args.get(i) {
                        Some(plan) => plan.with_value(env, |v| {
                            Ok(match v {
                                SqlValue::Int(n) => Some(*n),
                                _ => None,
                            })
                        }),
                        None => Ok(None),
                    }
                };
                let (start, length) = match self {
                    Function::Substring => (integer(1)?, integer(2)?),
                    _ => (Some(1), integer(1)?),
                };
                let (Some(start), Some(length)) = (start, length) else {
                    return Ok(SqlValue::Null);
                };
                if length < 0 {
                    let shown = match self {
                        Function::Left => "LEFT",
                        Function::Right => "RIGHT",
                        _ => "substring",
                    };
                    return Err(error::invalid_length(shown));
                }
                if *self == Function::Right {
                    return Ok(right(value, length, first));
                }
                Ok(substring_value(value, start, length, first))
            }
            Function::LTrim | Function::RTrim => Ok(match arg(0)? {
                SqlValue::Text(text) if *self == Function::LTrim => {
                    SqlValue::Text(text.trim_start_matches(' ').to_owned())
                }
                SqlValue::Text(mut text) => {
                    let kept = text.trim_end_matches(' ').len();
                    text.truncate(kept);
                    SqlValue::Text(text)
                }
                other => other,
            }),
            Function::Concat => {
                let mut out = String::new();
                for plan in args {
                    if let SqlValue::Text(text) = plan.eval(env)? {
                        out.push_str(&text);
                    }
                }
                Ok(SqlValue::Text(out))
            }
            Function::SwitchOffset => {
                let (value, offset) = (arg(0)?, arg(1)?);
                let minutes = match offset {
                    SqlValue::Null => return Ok(SqlValue::Null),
                    SqlValue::Text(text) => {
                        super::temporal::parse_offset(&text).ok_or_else(error::invalid_offset)?
                    }
                    SqlValue::Int(minutes) if (-840..=840).contains(&minutes) => minutes as i16,
                    _ => return Err(error::invalid_offset()),
                };
                Ok(super::temporal::switch_offset(value, minutes))
            }
            Function::Cdc(name) => {
                let values = args
                    .iter()
                    .map(|a| a.eval(env))
                    .collect::<Result<Vec<_>, _>>()?;
                let Some(db) = env.database else {
                    return Err(error::not_implemented(&format!("the function {name} here")));
                };
                match super::relations::cdc_function(db, name, &values) {
                    Some(result) => result.map(|(_, value)| value),
                    None => Err(error::not_implemented(&format!("the function {name}"))),
                }
            }
        }
    }
}

/// `HASHBYTES`: the input's stored bytes (UTF-16LE for nvarchar, the collation's code page or
/// UTF-8 for varchar) hashed. SHA2_256 and SHA2_512; an algorithm SQL Server does not know
/// gives NULL. A binary input is built straight into one buffer.
fn hashbytes(algorithm: &str, input: &Plan, env: &Env<'_>) -> Result<SqlValue, SqlError> {
    thread_local! {
        // The input buffer, reused call after call (a nested HASHBYTES gets its own).
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut bytes) => {
            bytes.clear();
            hash_input(algorithm, input, env, &mut bytes)
        }
        Err(_) => hash_input(algorithm, input, env, &mut Vec::new()),
    })
}

fn hash_input(
    algorithm: &str,
    input: &Plan,
    env: &Env<'_>,
    bytes: &mut Vec<u8>,
) -> Result<SqlValue, SqlError> {
    let present = if datatype::is_binary(input.sql_type) {
        input.append_binary(env, bytes)?
    } else {
        input.with_value(env, |value| {
            Ok(match value {
                SqlValue::Null => false,
                SqlValue::Binary(b) => {
                    bytes.extend_from_slice(b);
                    true
                }
                SqlValue::Text(text) if datatype::is_unicode(input.sql_type) => {
                    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
                    true
                }
                SqlValue::Text(text) => {
                    bytes.extend_from_slice(&collation::encode(text.clone(), input.code_page()));
                    true
                }
                _ => false,
            })
        })?
    };
    if !present {
        return Ok(SqlValue::Null);
    }
    let algorithm = algorithm.trim();
    let digest = if algorithm.eq_ignore_ascii_case("SHA2_256") {
        sha2::Sha256::digest(bytes.as_slice()).to_vec()
    } else if algorithm.eq_ignore_ascii_case("SHA2_512") {
        sha2::Sha512::digest(bytes.as_slice()).to_vec()
    } else if ["MD2", "MD4", "MD5", "SHA", "SHA1"]
        .iter()
        .any(|known| algorithm.eq_ignore_ascii_case(known))
    {
        return Err(error::not_implemented(&format!(
            "HASHBYTES with {algorithm}"
        )));
    } else {
        return Ok(SqlValue::Null);
    };
    Ok(SqlValue::Binary(digest))
}

/// Upper or lower case, character by character; a character whose other case is not one
/// character (ß) or, in varchar, not in the code page stays as it is.
fn change_case(mut text: String, upper: bool, narrow: bool, page: CodePage) -> String {
    if text.is_ascii() {
        if upper {
            text.make_ascii_uppercase();
        } else {
            text.make_ascii_lowercase();
        }
        return text;
    }
    text.chars()
        .map(|c| {
            let mut mapped = if upper {
                c.to_uppercase().collect::<Vec<_>>()
            } else {
                c.to_lowercase().collect::<Vec<_>>()
            };
            match (mapped.len(), mapped.pop()) {
                (1, Some(m))
                    if !narrow || page == CodePage::Utf8 || collation::cp1252_byte(m).is_some() =>
                {
                    m
                }
                _ => c,
            }
        })
        .collect()
}

/// Whether character positions of `plan`'s text count UTF-16 code units (nvarchar in a
/// collation without supplementary character support) rather than characters.
fn counts_utf16_units(plan: &Plan) -> bool {
    datatype::is_unicode(plan.sql_type) && !plan.collation.as_ref().is_some_and(|c| c.supplementary)
}

fn length_units(text: &str, plan: &Plan) -> usize {
    if text.is_ascii() {
        text.len()
    } else if counts_utf16_units(plan) {
        text.encode_utf16().count()
    } else {
        text.chars().count()
    }
}

/// Bytes a value takes (`DATALENGTH`).
fn data_length(value: &SqlValue, plan: &Plan) -> usize {
    match value {
        SqlValue::Text(text)
            if datatype::is_unicode(plan.sql_type) || plan.sql_type == SqlType::Xml =>
        {
            2 * if text.is_ascii() {
                text.len()
            } else {
                text.encode_utf16().count()
            }
        }
        SqlValue::Text(text) => collation::encoded_len(text, plan.code_page()),
        SqlValue::Binary(bytes) => bytes.len(),
        _ => match plan.sql_type {
            SqlType::Bit | SqlType::TinyInt => 1,
            SqlType::SmallInt => 2,
            SqlType::Int | SqlType::Real | SqlType::SmallMoney | SqlType::SmallDateTime => 4,
            SqlType::BigInt | SqlType::Float | SqlType::Money | SqlType::DateTime => 8,
            SqlType::Decimal { precision, .. } => {
                usize::from(crate::tds::types::decimal_len(precision))
            }
            SqlType::Date => 3,
            SqlType::Time { scale } => usize::from(crate::tds::types::time_len(scale)),
            SqlType::DateTime2 { scale } => usize::from(crate::tds::types::time_len(scale)) + 3,
            SqlType::DateTimeOffset { scale } => {
                usize::from(crate::tds::types::time_len(scale)) + 5
            }
            SqlType::UniqueIdentifier => 16,
            _ => 0,
        },
    }
}

/// `SUBSTRING`: positions from 1; a start before 1 still counts toward the length.
fn substring_value(value: SqlValue, start: i64, length: i64, plan: &Plan) -> SqlValue {
    let first = start.max(1);
    let end = start.saturating_add(length); // exclusive, 1-based
    if end <= first {
        return match value {
            SqlValue::Binary(_) => SqlValue::Binary(Vec::new()),
            SqlValue::Null => SqlValue::Null,
            _ => SqlValue::Text(String::new()),
        };
    }
    let (skip, take) = ((first - 1) as usize, (end - first) as usize);
    match value {
        SqlValue::Binary(mut bytes) => {
            let skip = skip.min(bytes.len());
            bytes.drain(..skip);
            bytes.truncate(take);
            SqlValue::Binary(bytes)
        }
        SqlValue::Text(text) => SqlValue::Text(slice_text(&text, skip, take, plan)),
        other => other,
    }
}

fn slice_text(text: &str, skip: usize, take: usize, plan: &Plan) -> String {
    if text.is_ascii() {
        let start = skip.min(text.len());
        let end = start.saturating_add(take).min(text.len());
        return text[start..end].to_owned();
    }
    if counts_utf16_units(plan) {
        let units: Vec<u16> = text.encode_utf16().collect();
        let start = skip.min(units.len());
        let end = start.saturating_add(take).min(units.len());
        // A surrogate pair cut in half has no Rust string form; it becomes U+FFFD.
        return String::from_utf16_lossy(&units[start..end]);
    }
    text.chars().skip(skip).take(take).collect()
}

fn right(value: SqlValue, length: i64, plan: &Plan) -> SqlValue {
    let count = match &value {
        SqlValue::Text(text) => length_units(text, plan),
        SqlValue::Binary(bytes) => bytes.len(),
        _ => return value,
    } as i64;
    let start = (count - length).max(0) + 1;
    substring_value(value, start, length.min(count), plan)
}

/// Compiles a call to a built-in scalar function (aggregates go to [`compile_aggregate`]).
pub fn compile(compiler: &mut Compiler<'_>, function: &AstFunction) -> Result<Plan, SqlError> {
    if is_aggregate(function) {
        if compiler.grouping.is_some() {
            return compile_aggregate(compiler, function);
        }
        if compiler.in_aggregate {
            return Err(error::nested_aggregate());
        }
        return Err(error::aggregate_in_where());
    }
    if function.over.is_some() {
        return Err(error::not_implemented("window functions"));
    }
    let name = name(function);
    let lower = name.to_lowercase();
    let mut args = Vec::new();
    for arg in arguments(function) {
        let expr = arg.ok_or_else(|| error::syntax("*"))?;
        args.push(compiler.compile(expr)?);
    }
    let count = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(error::argument_count(&lower, n))
        }
    };
    let call = |function: Function, args: Vec<Plan>, sql_type: SqlType| Plan {
        node: Node::Call { function, args },
        sql_type,
        collation: None,
        label: Label::Coercible,
        literal: false,
    };
    match name.as_str() {
        "ISNULL" => {
            count(2)?;
            let second = args.pop().ok_or_else(|| error::argument_count(&lower, 2))?;
            let first = args.pop().ok_or_else(|| error::argument_count(&lower, 2))?;
            // The result has the first argument's type (the second's when the first is a
            // NULL literal); the second is converted to it, and cut to its length.
            let result_type = if first.is_null_literal() {
                second.sql_type
            } else {
                first.sql_type
            };
            let collation = if first.is_null_literal() {
                (second.collation.clone(), second.label)
            } else {
                (first.collation.clone(), first.label)
            };
            let first = compiler.to_result(first, result_type)?;
            let second = if second.sql_type == result_type || second.is_null_literal() {
                compiler.to_result(second, result_type)?
            } else {
                datatype::check_implicit(second.sql_type, result_type)?;
                compiler.explicit_cast(second, result_type, None, false)?
            };
            let mut plan = call(Function::IsNull, vec![first, second], result_type);
            (plan.collation, plan.label) = collation;
            Ok(plan)
        }
        "COALESCE" => {
            if args.len() < 2 {
                return Err(error::syntax(")"));
            }
            let refs: Vec<&Plan> = args.iter().collect();
            let result_type = compiler.result_type(&refs)?;
            let collation = character_collation(&args, result_type, "COALESCE")?;
            let args = args
                .into_iter()
                .map(|a| compiler.to_result(a, result_type))
                .collect::<Result<Vec<_>, _>>()?;
            let mut plan = call(Function::Coalesce, args, result_type);
            (plan.collation, plan.label) = collation;
            Ok(plan)
        }
        "NULLIF" => {
            count(2)?;
            let result_type = args[0].sql_type;
            let folding = if datatype::is_character(result_type) {
                let refs: Vec<&Plan> = args.iter().collect();
                resolve_collation(&refs, "NULLIF")?.0.folding
            } else {
                Folding::Binary
            };
            let (collation, label) = (args[0].collation.clone(), args[0].label);
            let second = args.pop().ok_or_else(|| error::argument_count(&lower, 2))?;
            let second = if second.sql_type == result_type
                || same_value_kind(second.sql_type, result_type)
            {
                second
            } else {
                compiler.implicit(second, result_type)?
            };
            args.push(second);
            let mut plan = call(Function::NullIf(folding), args, result_type);
            (plan.collation, plan.label) = (collation, label);
            Ok(plan)
        }
        "HASHBYTES" => {
            count(2)?;
            if !datatype::is_character(args[0].sql_type) && !args[0].is_null_literal() {
                return Err(error::invalid_argument(
                    &base_name(args[0].sql_type),
                    1,
                    "hashbytes",
                ));
            }
            let input = args[1].sql_type;
            if !(datatype::is_character(input)
                || datatype::is_binary(input)
                || args[1].is_null_literal())
            {
                return Err(error::invalid_argument(&base_name(input), 2, "hashbytes"));
            }
            Ok(call(
                Function::HashBytes,
                args,
                SqlType::VarBinary { length: Some(8000) },
            ))
        }
        "LOWER" | "UPPER" | "LTRIM" | "RTRIM" => {
            count(1)?;
            let arg = character_argument(compiler, args.remove(0))?;
            let sql_type = match arg.sql_type {
                SqlType::Char { length } => SqlType::VarChar {
                    length: Some(length),
                },
                SqlType::NChar { length } => SqlType::NVarChar {
                    length: Some(length),
                },
                other => other,
            };
            let sql_type = if matches!(name.as_str(), "LOWER" | "UPPER") {
                arg.sql_type
            } else {
                sql_type
            };
            let (collation, label) = (arg.collation.clone(), arg.label);
            let function = match name.as_str() {
                "LOWER" => Function::Lower,
                "UPPER" => Function::Upper,
                "LTRIM" => Function::LTrim,
                _ => Function::RTrim,
            };
            let mut plan = call(function, vec![arg], sql_type);
            (plan.collation, plan.label) = (collation, label);
            Ok(plan)
        }
        "LEN" => {
            count(1)?;
            let arg = character_argument(compiler, args.remove(0))?;
            let sql_type = if datatype::is_max(arg.sql_type) {
                SqlType::BigInt
            } else {
                SqlType::Int
            };
            Ok(call(Function::Len, vec![arg], sql_type))
        }
        "DATALENGTH" => {
            count(1)?;
            let sql_type = if datatype::is_max(args[0].sql_type) {
                SqlType::BigInt
            } else {
                SqlType::Int
            };
            Ok(call(Function::DataLength, args, sql_type))
        }
        "SUBSTRING" => {
            count(3)?;
            substring(args)
        }
        "LEFT" | "RIGHT" => {
            count(2)?;
            let length = args.pop().ok_or_else(|| error::argument_count(&lower, 2))?;
            let text = character_argument(compiler, args.remove(0))?;
            let length = integer_argument(compiler, length, 2, &lower)?;
            let sql_type = substring_type(text.sql_type);
            let (collation, label) = (text.collation.clone(), text.label);
            let function = if name == "LEFT" {
                Function::Left
            } else {
                Function::Right
            };
            let mut plan = call(function, vec![text, length], sql_type);
            (plan.collation, plan.label) = (collation, label);
            Ok(plan)
        }
        "CONCAT" => {
            if !(2..=254).contains(&args.len()) {
                return Err(error::argument_range("concat", 2, 254));
            }
            let unicode = args.iter().any(|a| datatype::is_unicode(a.sql_type));
            let mut total: Option<u32> = Some(0);
            let mut parts = Vec::new();
            for arg in args {
                let length = datatype::char_length(arg.sql_type);
                total = match (total, length) {
                    (Some(t), Some(l)) => Some(t + u32::from(l)),
                    _ => None,
                };
                let target = if unicode {
                    SqlType::NVarChar { length: None }
                } else {
                    SqlType::VarChar { length: None }
                };
                parts.push(if datatype::is_character(arg.sql_type) {
                    arg
                } else {
                    compiler.explicit_cast(arg, target, None, false)?
                });
            }
            let limit = if unicode { 4000 } else { 8000 };
            let length = total.filter(|t| *t <= limit).map(|t| t.max(1) as u16);
            let sql_type = if unicode {
                SqlType::NVarChar { length }
            } else {
                SqlType::VarChar { length }
            };
            let collation = character_collation(&parts, sql_type, "concat")?;
            let mut plan = call(Function::Concat, parts, sql_type);
            (plan.collation, plan.label) = collation;
            Ok(plan)
        }
        "SWITCHOFFSET" => {
            count(2)?;
            let offset = args.pop().ok_or_else(|| error::argument_count(&lower, 2))?;
            let value = args.remove(0);
            let scale = match value.sql_type {
                SqlType::DateTimeOffset { scale } | SqlType::DateTime2 { scale } => scale,
                SqlType::DateTime => 3,
                SqlType::SmallDateTime | SqlType::Date => 0,
                _ if value.is_null_literal() => 7,
                SqlType::Time { .. } => {
                    return Err(error::invalid_argument("time", 1, "switchoffset"));
                }
                other if datatype::is_character(other) => 7,
                other => {
                    return Err(error::invalid_argument(
                        &base_name(other),
                        1,
                        "switchoffset",
                    ));
                }
            };
            let sql_type = SqlType::DateTimeOffset { scale };
            let value = compiler.to_result(value, sql_type)?;
            if !(datatype::is_character(offset.sql_type)
                || datatype::is_integer(offset.sql_type)
                || offset.is_null_literal())
            {
                return Err(error::invalid_argument(
                    &base_name(offset.sql_type),
                    2,
                    "switchoffset",
                ));
            }
            Ok(call(Function::SwitchOffset, vec![value, offset], sql_type))
        }
        cdc if CDC_FUNCTIONS.contains(&cdc) => {
            let sql_type = if cdc == "FN_CDC_MAP_LSN_TO_TIME" {
                SqlType::DateTime
            } else {
                SqlType::Binary { length: 10 }
            };
            Ok(call(Function::Cdc(cdc.to_owned()), args, sql_type))
        }
        _ => Err(error::not_implemented(&format!("the function {name}"))),
    }
}

fn same_value_kind(a: SqlType, b: SqlType) -> bool {
    (datatype::is_number(a) && datatype::is_number(b))
        || (datatype::is_character(a) && datatype::is_character(b))
        || (datatype::is_binary(a) && datatype::is_binary(b))
}

fn base_name(t: SqlType) -> String {
    let name = datatype::name(t);
    name.split('(').next().unwrap_or(&name).to_owned()
}

/// The collation of a character result built from `plans`.
fn character_collation(
    plans: &[Plan],
    result: SqlType,
    operation: &str,
) -> Result<(Option<collation::Collation>, Label), SqlError> {
    if !datatype::is_character(result) {
        return Ok((None, Label::Coercible));
    }
    let refs: Vec<&Plan> = plans
        .iter()
        .filter(|p| datatype::is_character(p.sql_type))
        .collect();
    let (collation, label) = resolve_collation(&refs, operation)?;
    Ok((Some(collation), label))
}

/// A string function's argument: character types as they are, others converted to varchar
/// (`LEN(123)` is 3).
fn character_argument(compiler: &Compiler<'_>, arg: Plan) -> Result<Plan, SqlError> {
    if datatype::is_character(arg.sql_type) {
        return Ok(arg);
    }
    if arg.is_null_literal() {
        let mut arg = arg;
        arg.sql_type = SqlType::VarChar { length: Some(1) };
        arg.collation = Some(collation::Collation::server_default());
        return Ok(arg);
    }
    let length = datatype::char_length(arg.sql_type);
    compiler.implicit(arg, SqlType::VarChar { length })
}

fn integer_argument(
    compiler: &Compiler<'_>,
    arg: Plan,
    position: usize,
    function: &str,
) -> Result<Plan, SqlError> {
    if datatype::is_integer(arg.sql_type) || arg.is_null_literal() {
        return compiler.to_result(arg, SqlType::BigInt);
    }
    if datatype::is_character(arg.sql_type) || arg.sql_type == SqlType::Bit {
        return compiler.implicit(arg, SqlType::BigInt);
    }
    Err(error::invalid_argument(
        &base_name(arg.sql_type),
        position,
        function,
    ))
}

/// The result type of SUBSTRING, LEFT and RIGHT.
fn substring_type(input: SqlType) -> SqlType {
    match input {
        SqlType::Char { length } => SqlType::VarChar {
            length: Some(length),
        },
        SqlType::NChar { length } => SqlType::NVarChar {
            length: Some(length),
        },
        SqlType::Binary { length } => SqlType::VarBinary {
            length: Some(length),
        },
        other => other,
    }
}

/// `SUBSTRING(x, start, length)` over compiled arguments: character and binary input keeps
/// its kind (varbinary for binary), other types are read as varchar.
pub fn substring(mut args: Vec<Plan>) -> Result<Plan, SqlError> {
    let [value, start, length]: [Plan; 3] = std::mem::take(&mut args)
        .try_into()
        .map_err(|_| error::argument_count("substring", 3))?;
    let value = if datatype::is_character(value.sql_type) || datatype::is_binary(value.sql_type) {
        value
    } else if value.is_null_literal() {
        Plan {
            sql_type: SqlType::VarChar { length: Some(1) },
            ..value
        }
    } else if value.sql_type == SqlType::Xml
        || datatype::is_temporal(value.sql_type)
        || value.sql_type == SqlType::UniqueIdentifier
    {
        return Err(error::invalid_argument(
            &base_name(value.sql_type),
            1,
            "substring",
        ));
    } else {
        let length = datatype::char_length(value.sql_type);
        let page = value.code_page();
        Plan {
            node: super::expr::CastPlan::node(
                value,
                SqlType::VarChar { length },
                None,
                page,
                CodePage::Cp1252,
                false,
            ),
            sql_type: SqlType::VarChar { length },
            collation: Some(collation::Collation::server_default()),
            label: Label::Coercible,
            literal: false,
        }
    };
    let integer = |plan: Plan, position: usize| -> Result<Plan, SqlError> {
        if datatype::is_integer(plan.sql_type) || plan.is_null_literal() {
            return Ok(plan);
        }
        if datatype::is_character(plan.sql_type) {
            let page = plan.code_page();
            return Ok(Plan::typed(
                super::expr::CastPlan::node(plan, SqlType::BigInt, None, page, page, false),
                SqlType::BigInt,
            ));
        }
        Err(error::invalid_argument(
            &base_name(plan.sql_type),
            position,
            "substring",
        ))
    };
    let (start, length) = (integer(start, 2)?, integer(length, 3)?);
    let sql_type = substring_type(value.sql_type);
    let (collation, label) = (value.collation.clone(), value.label);
    Ok(Plan {
        node: Node::Call {
            function: Function::Substring,
            args: vec![value, start, length],
        },
        sql_type,
        collation,
        label,
        literal: false,
    })
}

/// Which aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateKind {
    /// COUNT
    Count,
    /// COUNT_BIG
    CountBig,
    /// SUM
    Sum,
    /// AVG
    Avg,
    /// MIN
    Min,
    /// MAX
    Max,
}

/// One aggregate of a grouped SELECT.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateCall {
    /// Which.
    pub kind: AggregateKind,
    /// Its argument over rows (None for `COUNT(*)`).
    pub argument: Option<Plan>,
    /// `DISTINCT`.
    pub distinct: bool,
    /// Result type.
    pub sql_type: SqlType,
    /// How MIN/MAX and DISTINCT compare strings.
    pub folding: Folding,
}

/// Compiles an aggregate call in a grouped query into a slot of the grouping.
pub fn compile_aggregate(
    compiler: &mut Compiler<'_>,
    function: &AstFunction,
) -> Result<Plan, SqlError> {
    if compiler.in_aggregate {
        return Err(error::nested_aggregate());
    }
    if function.over.is_some() {
        return Err(error::not_implemented("window functions"));
    }
    let name = name(function);
    let lower = name.to_lowercase();
    let kind = match name.as_str() {
        "COUNT" => AggregateKind::Count,
        "COUNT_BIG" => AggregateKind::CountBig,
        "SUM" => AggregateKind::Sum,
        "AVG" => AggregateKind::Avg,
        "MIN" => AggregateKind::Min,
        _ => AggregateKind::Max,
    };
    let distinct = matches!(
        &function.args,
        FunctionArguments::List(list) if list.duplicate_treatment == Some(DuplicateTreatment::Distinct)
    );
    let arguments = arguments(function);
    let [argument] = arguments.as_slice() else {
        return Err(error::argument_count(&lower, 1));
    };
    let argument = match argument {
        None if matches!(kind, AggregateKind::Count | AggregateKind::CountBig) && !distinct => None,
        None => return Err(error::syntax("*")),
        Some(expr) => {
            let grouping = compiler.grouping.take();
            compiler.in_aggregate = true;
            let plan = compiler.compile(expr);
            compiler.in_aggregate = false;
            compiler.grouping = grouping;
            Some(plan?)
        }
    };
    let arg_type = argument.as_ref().map(|a| a.sql_type);
    let invalid = |t: SqlType| error::invalid_operand(&base_name(t), &lower);
    let sql_type = match (kind, arg_type) {
        (AggregateKind::Count, _) => SqlType::Int,
        (AggregateKind::CountBig, _) => SqlType::BigInt,
        (AggregateKind::Sum | AggregateKind::Avg, Some(t)) => match t {
            SqlType::TinyInt | SqlType::SmallInt | SqlType::Int => SqlType::Int,
            SqlType::BigInt => SqlType::BigInt,
            SqlType::Decimal { scale, .. } => SqlType::Decimal {
                precision: 38,
                scale: if kind == AggregateKind::Avg {
                    scale.max(6)
                } else {
                    scale
                },
            },
            SqlType::Money | SqlType::SmallMoney => SqlType::Money,
            SqlType::Float | SqlType::Real => SqlType::Float,
            other => return Err(invalid(other)),
        },
        (AggregateKind::Min | AggregateKind::Max, Some(t)) => match t {
            SqlType::Bit | SqlType::Xml => return Err(invalid(t)),
            other => other,
        },
        (_, None) => return Err(error::syntax("*")),
    };
    let folding = argument
        .as_ref()
        .filter(|a| datatype::is_character(a.sql_type))
        .and_then(|a| a.collation.as_ref().map(|c| c.folding))
        .unwrap_or(Folding::Binary);
    let (collation, label) = match &argument {
        Some(a) if matches!(kind, AggregateKind::Min | AggregateKind::Max) => {
            (a.collation.clone(), a.label)
        }
        _ => (None, Label::Coercible),
    };
    let call = AggregateCall {
        kind,
        argument,
        distinct,
        sql_type,
        folding,
    };
    let Some(grouping) = compiler.grouping.as_mut() else {
        return Err(error::aggregate_in_where());
    };
    let index = match grouping.aggregates.iter().position(|a| *a == call) {
        Some(index) => index,
        None => {
            grouping.aggregates.push(call);
            grouping.aggregates.len() - 1
        }
    };
    Ok(Plan {
        node: Node::Aggregate(index),
        sql_type,
        collation,
        label,
        literal: false,
    })
}

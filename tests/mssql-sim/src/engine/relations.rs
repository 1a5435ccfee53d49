//! Relations a query can read besides user tables: change tables, `cdc.lsn_time_mapping`,
//! `cdc.change_tables`, `cdc.captured_columns`, `cdc.index_columns`, and the table-valued
//! function `cdc.fn_cdc_get_all_changes_<instance>`.

use sqlparser::ast::{FunctionArg, FunctionArgExpr, TableFunctionArgs};

use super::catalog::{Column, Database, Row};
use super::cdc::{self, CaptureInstance, cdc_error};
use super::datatype;
use super::error::{self, SqlError};
use super::expr::{Parameters, Scope, evaluate};
use crate::tds::types::{SqlType, SqlValue};

/// A `cdc` relation: materialised, or a change table read in place.
pub enum CdcRelation<'a> {
    /// Built for this query.
    Rows(Materialised),
    /// A change table's own rows.
    ChangeTable {
        /// Its columns.
        columns: Vec<Column>,
        /// Its rows, borrowed.
        rows: &'a [Row],
        /// The orders the rows are in (see [`cdc::change_table_orders`]).
        orders: Vec<Vec<usize>>,
    },
}

/// A relation materialised for a query.
#[derive(Debug, Clone, Default)]
pub struct Materialised {
    /// Columns.
    pub columns: Vec<Column>,
    /// Rows.
    pub rows: Vec<Row>,
}

/// A column of a system relation (nullable, no identity).
pub(crate) fn column(name: &str, sql_type: SqlType) -> Column {
    Column {
        name: name.to_owned(),
        sql_type,
        nullable: true,
        identity: false,
        column_id: 0,
    }
}

/// `sysname`, as SQL Server declares it.
pub(crate) const SYSNAME: SqlType = SqlType::NVarChar { length: Some(128) };
const LSN: SqlType = SqlType::Binary { length: 10 };

/// The `cdc` schema object `name` (with `args` for table-valued functions), if it is one.
pub fn cdc_relation<'a>(
    db: &'a Database,
    name: &str,
    args: Option<&TableFunctionArgs>,
    parameters: &Parameters,
) -> Result<Option<CdcRelation<'a>>, SqlError> {
    let lower = name.to_lowercase();
    let instances = &db.cdc.instances;
    Ok(Some(CdcRelation::Rows(match lower.as_str() {
        "lsn_time_mapping" => Materialised {
            columns: vec![
                column("start_lsn", LSN),
                column("tran_begin_time", SqlType::DateTime),
                column("tran_end_time", SqlType::DateTime),
                column("tran_id", SqlType::VarBinary { length: Some(10) }),
                column("tran_begin_lsn", LSN),
            ],
            rows: db
                .cdc
                .mapping
                .iter()
                .map(|m| {
                    vec![
                        SqlValue::Binary(m.start_lsn.to_vec()),
                        m.begin_time.clone(),
                        m.end_time.clone(),
                        SqlValue::Binary(m.tran_id.clone()),
                        SqlValue::Binary(m.start_lsn.to_vec()),
                    ]
                })
                .collect(),
        },
        "change_tables" => Materialised {
            columns: vec![
                column("object_id", SqlType::Int),
                column("version", SqlType::Int),
                column("source_object_id", SqlType::Int),
                column("capture_instance", SYSNAME),
                column("start_lsn", LSN),
                column("end_lsn", LSN),
                column("supports_net_changes", SqlType::Bit),
                column("has_drop_pending", SqlType::Bit),
                column("role_name", SYSNAME),
                column("index_name", SYSNAME),
                column("filegroup_name", SYSNAME),
                column("create_date", SqlType::DateTime),
                column("partition_switch", SqlType::Bit),
            ],
            rows: instances.iter().map(change_tables_row).collect(),
        },
        "captured_columns" => Materialised {
            columns: vec![
                column("object_id", SqlType::Int),
                column("column_name", SYSNAME),
                column("column_id", SqlType::Int),
                column("column_type", SYSNAME),
                column("column_ordinal", SqlType::Int),
                column("is_computed", SqlType::Bit),
                column("masking_function", SqlType::NVarChar { length: Some(4000) }),
            ],
            rows: instances
                .iter()
                .flat_map(|i| {
                    i.columns.iter().map(move |c| {
                        vec![
                            SqlValue::Int(i64::from(i.object_id)),
                            SqlValue::Text(c.name.clone()),
                            SqlValue::Int(i64::from(c.column_id)),
                            SqlValue::Text(type_name(c.sql_type)),
                            SqlValue::Int(i64::from(c.ordinal)),
                            SqlValue::Bit(false),
                            SqlValue::Null,
                        ]
                    })
                })
                .collect(),
        },
        "index_columns" => Materialised {
            columns: vec![
                column("object_id", SqlType::Int),
                column("column_name", SYSNAME),
                column("index_ordinal", SqlType::TinyInt),
                column("column_id", SqlType::Int),
            ],
            rows: instances
                .iter()
                .flat_map(|i| {
                    i.index_columns
                        .iter()
                        .enumerate()
                        .map(move |(n, (name, id))| {
                            vec![
                                SqlValue::Int(i64::from(i.object_id)),
                                SqlValue::Text(name.clone()),
                                SqlValue::Int(n as i64 + 1),
                                SqlValue::Int(i64::from(*id)),
                            ]
                        })
                })
                .collect(),
        },
        _ if lower.ends_with("_ct") => {
            return Ok(db.cdc.instance(&name[..name.len() - 3]).map(|instance| {
                CdcRelation::ChangeTable {
                    columns: cdc::change_table_columns(instance),
                    rows: &instance.rows,
                    orders: cdc::change_table_orders(instance),
                }
            }));
        }
        _ if lower.starts_with("fn_cdc_get_all_changes_") => {
            let instance_name = &name["fn_cdc_get_all_changes_".len()..];
            let instance = db
                .cdc
                .instance(instance_name)
                .ok_or_else(|| error::invalid_object(&format!("cdc.{name}")))?;
            all_changes(db, instance, &format!("cdc.{name}"), args, parameters)?
        }
        _ => return Ok(None),
    })))
}

fn change_tables_row(instance: &CaptureInstance) -> Row {
    vec![
        SqlValue::Int(i64::from(instance.object_id)),
        SqlValue::Int(0),
        SqlValue::Int(i64::from(instance.source_object_id)),
        SqlValue::Text(instance.name.clone()),
        SqlValue::Binary(instance.start_lsn.to_vec()),
        SqlValue::Null,
        SqlValue::Bit(instance.supports_net_changes),
        SqlValue::Bit(false),
        instance
            .role_name
            .clone()
            .map_or(SqlValue::Null, SqlValue::Text),
        SqlValue::Text(instance.index_name.clone()),
        SqlValue::Null,
        instance.create_date.clone(),
        SqlValue::Bit(false),
    ]
}

/// A type's name without parameters, as metadata views report it.
pub(crate) fn type_name(sql_type: SqlType) -> String {
    let name = datatype::name(sql_type);
    name.split('(').next().unwrap_or(&name).to_owned()
}

/// `cdc.fn_cdc_get_all_changes_<instance>(@from_lsn, @to_lsn, N'all' | N'all update old')`.
fn all_changes(
    db: &Database,
    instance: &CaptureInstance,
    function: &str,
    args: Option<&TableFunctionArgs>,
    parameters: &Parameters,
) -> Result<Materialised, SqlError> {
    let insufficient = || {
        cdc_error(
            313,
            format!(
                "An insufficient number of arguments were supplied for the procedure or function {function}."
            ),
        )
    };
    let values: Vec<SqlValue> = args
        .map(|a| {
            a.args
                .iter()
                .map(|arg| match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => evaluate(
                        expr,
                        Scope {
                            parameters,
                            row: None,
                            qualifiers: &[],
                            database: Some(db),
                        },
                    )
                    .map(|t| t.value),
                    _ => Err(error::syntax(&arg.to_string())),
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let [
        SqlValue::Binary(from),
        SqlValue::Binary(to),
        SqlValue::Text(filter),
    ] = values.as_slice()
    else {
        return Err(insufficient());
    };
    let include_old = match filter.to_lowercase().as_str() {
        "all" => false,
        "all update old" => true,
        _ => {
            return Err(cdc_error(
                313,
                format!(
                    "An insufficient number of arguments were supplied for the procedure or function {function}."
                ),
            ));
        }
    };
    // SQL Server rejects a range that starts below the instance's minimum, ends above the
    // maximum LSN, or is reversed, with error 313 (its way of saying the range is not valid).
    if from.as_slice() < instance.start_lsn.as_slice()
        || to.as_slice() > db.cdc.max_lsn.as_slice()
        || from > to
    {
        return Err(insufficient());
    }
    let mut columns = vec![
        column("__$start_lsn", LSN),
        column("__$seqval", LSN),
        column("__$operation", SqlType::Int),
        column("__$update_mask", SqlType::VarBinary { length: Some(128) }),
    ];
    columns.extend(instance.columns.iter().map(|c| column(&c.name, c.sql_type)));
    let rows = instance
        .rows
        .iter()
        .filter(|r| {
            let lsn = cdc::start_lsn(r);
            lsn >= from.as_slice()
                && lsn <= to.as_slice()
                && (include_old || cdc::operation(r) != 3)
        })
        .map(|r| {
            let captured = &r[cdc::position::FIRST_CAPTURED..r.len() - 1];
            let fixed = [
                cdc::position::START_LSN,
                cdc::position::SEQVAL,
                cdc::position::OPERATION,
                cdc::position::UPDATE_MASK,
            ];
            fixed
                .iter()
                .map(|i| r[*i].clone())
                .chain(captured.iter().cloned())
                .collect()
        })
        .collect();
    Ok(Materialised { columns, rows })
}

/// The `sys.fn_cdc_*` scalar functions of `db`; None for any other function name.
pub fn cdc_function(
    db: &Database,
    name: &str,
    args: &[SqlValue],
) -> Option<Result<(SqlType, SqlValue), SqlError>> {
    let lsn_arg = || match args.first() {
        Some(SqlValue::Binary(bytes)) => Some(cdc::from_lsn(bytes)),
        _ => None,
    };
    let binary = |value: u128| (LSN, SqlValue::Binary(cdc::to_lsn(value).to_vec()));
    Some(Ok(match name {
        "FN_CDC_GET_MAX_LSN" => (LSN, SqlValue::Binary(db.cdc.max_lsn.to_vec())),
        "FN_CDC_GET_MIN_LSN" => {
            let instance = match args.first() {
                Some(SqlValue::Text(name)) => db.cdc.instance(name),
                _ => None,
            };
            (
                LSN,
                SqlValue::Binary(instance.map_or(cdc::ZERO_LSN, |i| i.start_lsn).to_vec()),
            )
        }
        "FN_CDC_INCREMENT_LSN" => {
            lsn_arg().map_or((LSN, SqlValue::Null), |v| binary(v.saturating_add(1)))
        }
        "FN_CDC_DECREMENT_LSN" => {
            lsn_arg().map_or((LSN, SqlValue::Null), |v| binary(v.saturating_sub(1)))
        }
        "FN_CDC_MAP_LSN_TO_TIME" => {
            let time = lsn_arg()
                .and_then(|lsn| {
                    db.cdc
                        .mapping
                        .iter()
                        .rev()
                        .find(|m| cdc::from_lsn(&m.start_lsn) <= lsn)
                })
                .map(|m| m.end_time.clone());
            (SqlType::DateTime, time.unwrap_or(SqlValue::Null))
        }
        _ => return None,
    }))
}

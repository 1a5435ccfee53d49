//! Discovery: which captured tables to read, their capture instances, captured columns, key
//! columns and types, all from SQL Server's metadata.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cdc_model::proto::{ColumnSchema, TableId, TableSchema, Value};
use cdc_model::{Lsn, SqlServerType, TablePattern};
use tiberius::{ColumnData, Row};

use crate::config::{TablesConfig, WithoutKey};
use crate::sql::{self, SqlClient, SqlError};

/// One capture instance of a table, ready to read.
#[derive(Debug, Clone)]
pub struct CaptureInstance {
    /// Its name (`<schema>_<table>` by default).
    pub name: String,
    /// The first LSN it holds changes for.
    pub start_lsn: Lsn,
    /// The schema its events carry.
    pub schema: Arc<TableSchema>,
    /// The schema's fingerprint.
    pub schema_id: String,
    /// Positions of the key columns within `schema.columns`.
    pub key_indexes: Vec<usize>,
    /// The select list of its columns in schema order, each converted so that it reads
    /// exactly (money as decimal), prefixed with `alias.` when one is given.
    select_columns: Vec<(String, Option<&'static str>)>,
}

impl CaptureInstance {
    /// The key values of a row image in schema order, in key order.
    pub fn key_of(&self, image: &[Value]) -> Vec<Value> {
        self.key_indexes.iter().map(|&i| image[i].clone()).collect()
    }

    /// The select list, columns qualified by `alias`.
    pub fn select_list(&self, alias: &str) -> String {
        self.select_columns
            .iter()
            .map(|(name, cast)| {
                let column = format!("{alias}.{}", sql::quote(name));
                match cast {
                    Some(target) => format!("CAST({column} AS {target}) AS {}", sql::quote(name)),
                    None => column,
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A captured table: its capture instances, oldest first (two during a schema change).
#[derive(Debug, Clone)]
pub struct CapturedTable {
    /// The table.
    pub id: TableId,
    /// Its capture instances by start LSN.
    pub instances: Vec<CaptureInstance>,
}

impl CapturedTable {
    /// The instance named `name`.
    pub fn instance(&self, name: &str) -> Option<&CaptureInstance> {
        self.instances
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(name))
    }

    /// The newest instance.
    pub fn newest(&self) -> Option<&CaptureInstance> {
        self.instances.last()
    }
}

/// `database.schema.table`, as logs, metrics and errors name a table.
pub fn table_name(id: &TableId) -> String {
    format!("{}.{}.{}", id.database, id.schema, id.table)
}

/// What discovery refuses.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// SQL Server could not be asked.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// A table cannot be captured as configured.
    #[error("table {table}: {reason}")]
    Table {
        /// `database.schema.table`.
        table: String,
        /// Why.
        reason: String,
    },
    /// The database is not enabled for CDC.
    #[error(
        "database {database} has no change data capture (run `EXEC sys.sp_cdc_enable_db` in it): {detail}"
    )]
    NotEnabled {
        /// The database.
        database: String,
        /// SQL Server's answer.
        detail: String,
    },
}

impl DiscoveryError {
    /// Whether trying again later can help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DiscoveryError::Sql(e) if e.is_retryable())
    }
}

/// Which tables, and how their keys and columns are chosen.
pub struct Selection<'a> {
    /// Table filters and overrides.
    pub tables: &'a TablesConfig,
    /// The watermark table (`schema`, `table`): never captured itself.
    pub watermark: (&'a str, &'a str),
}

struct InstanceRow {
    name: String,
    source_object_id: i64,
    object_id: i64,
    start_lsn: Lsn,
}

struct SourceColumn {
    nullable: bool,
    sql_type: SqlServerType,
}

/// Discovers the captured tables of `database` that the selection includes.
pub async fn discover(
    client: &mut SqlClient,
    database: &str,
    selection: &Selection<'_>,
) -> Result<Vec<CapturedTable>, DiscoveryError> {
    let context = format!("reading the capture instances of {database}");
    let instances = match sql::simple_rows(
        client,
        "SELECT capture_instance, source_object_id, object_id, start_lsn FROM cdc.change_tables",
        &context,
    )
    .await
    {
        Ok(rows) => rows
            .iter()
            .map(|row| {
                Ok(InstanceRow {
                    name: sql::required::<&str>(row, 0, &context)?.to_owned(),
                    source_object_id: int_at(row, 1, &context)?,
                    object_id: int_at(row, 2, &context)?,
                    start_lsn: lsn_at(row, 3, &context)?,
                })
            })
            .collect::<Result<Vec<_>, SqlError>>()?,
        Err(e) if e.server_code() == Some(208) => {
            return Err(DiscoveryError::NotEnabled {
                database: database.to_owned(),
                detail: e.to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let tables = table_names(client, database).await?;
    let captured = captured_columns(client, database).await?;
    let index = index_columns(client, database).await?;
    let source_columns = source_columns(client, database).await?;
    let include = selection.tables.include_patterns();
    let exclude = selection.tables.exclude_patterns();

    let mut by_table: BTreeMap<(String, String), Vec<&InstanceRow>> = BTreeMap::new();
    for instance in &instances {
        if let Some((schema, table)) = tables.get(&instance.source_object_id) {
            by_table
                .entry((schema.clone(), table.clone()))
                .or_default()
                .push(instance);
        }
    }
    let mut found = Vec::new();
    for ((schema, table), mut rows) in by_table {
        let id = TableId {
            database: database.to_owned(),
            schema: schema.clone(),
            table: table.clone(),
        };
        let is_watermark = schema.eq_ignore_ascii_case(selection.watermark.0)
            && table.eq_ignore_ascii_case(selection.watermark.1);
        if is_watermark || !selected(&id, &include, &exclude) {
            continue;
        }
        rows.sort_by_key(|r| r.start_lsn);
        let mut built = Vec::new();
        let mut skipped = false;
        for row in rows {
            let columns = captured.get(&row.object_id).cloned().unwrap_or_default();
            let keys = index.get(&row.object_id).cloned().unwrap_or_default();
            match build_instance(&id, row, &columns, &keys, &source_columns, selection.tables) {
                Ok(instance) => built.push(instance),
                Err(reason)
                    if reason.without_key && selection.tables.without_key == WithoutKey::Skip =>
                {
                    tracing::warn!(table = %table_name(&id), reason = %reason.message, "table skipped: it has no key");
                    skipped = true;
                    break;
                }
                Err(reason) => {
                    return Err(DiscoveryError::Table {
                        table: table_name(&id),
                        reason: reason.message,
                    });
                }
            }
        }
        if !skipped && !built.is_empty() {
            found.push(CapturedTable {
                id,
                instances: built,
            });
        }
    }
    Ok(found)
}

fn selected(id: &TableId, include: &[TablePattern], exclude: &[TablePattern]) -> bool {
    include.iter().any(|p| p.matches(id)) && !exclude.iter().any(|p| p.matches(id))
}

struct Refusal {
    message: String,
    without_key: bool,
}

fn refuse(message: String) -> Refusal {
    Refusal {
        message,
        without_key: false,
    }
}

fn build_instance(
    id: &TableId,
    row: &InstanceRow,
    captured: &[String],
    index: &[String],
    source_columns: &HashMap<(String, String, String), SourceColumn>,
    config: &TablesConfig,
) -> Result<CaptureInstance, Refusal> {
    let name = table_name(id);
    let excluded = lookup(&config.exclude_columns, &name)
        .cloned()
        .unwrap_or_default();
    let mut columns = Vec::new();
    let mut select_columns = Vec::new();
    for column in captured {
        if excluded.iter().any(|e| e.eq_ignore_ascii_case(column)) {
            continue;
        }
        let source = source_columns
            .get(&(
                id.schema.to_lowercase(),
                id.table.to_lowercase(),
                column.to_lowercase(),
            ))
            .ok_or_else(|| {
                refuse(format!(
                    "capture instance {} captures column {column}, which the table no longer has; \
                     exclude it with tables.exclude_columns",
                    row.name
                ))
            })?;
        let column_type = cdc_model::typemap::logical_type(column, &source.sql_type)
            .map_err(|e| refuse(format!("{e} (or list it in tables.exclude_columns)")))?;
        let cast = match source.sql_type.name.to_ascii_lowercase().as_str() {
            "money" => Some("decimal(19,4)"),
            "smallmoney" => Some("decimal(10,4)"),
            _ => None,
        };
        select_columns.push((column.clone(), cast));
        columns.push(ColumnSchema {
            name: column.clone(),
            r#type: Some(column_type),
            nullable: source.nullable,
        });
    }
    let key_columns: Vec<String> = if index.is_empty() {
        match lookup(&config.keys, &name) {
            Some(keys) => keys.clone(),
            None => {
                return Err(Refusal {
                    message: format!(
                        "capture instance {} has no key (no primary key or @index_name); \
                         give one in tables.keys, or set tables.without_key = \"skip\"",
                        row.name
                    ),
                    without_key: true,
                });
            }
        }
    } else {
        index.to_vec()
    };
    let mut key_indexes = Vec::new();
    let mut key_names = Vec::new();
    for key in &key_columns {
        let position = columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(key))
            .ok_or_else(|| {
                refuse(format!(
                    "key column {key} is not among the columns capture instance {} carries",
                    row.name
                ))
            })?;
        key_indexes.push(position);
        key_names.push(columns[position].name.clone());
    }
    let schema = TableSchema {
        table: Some(id.clone()),
        capture_instance: row.name.clone(),
        columns,
        key_columns: key_names,
    };
    cdc_model::schema::validate(&schema).map_err(|e| refuse(e.to_string()))?;
    Ok(CaptureInstance {
        name: row.name.clone(),
        start_lsn: row.start_lsn,
        schema_id: cdc_model::schema::fingerprint(&schema),
        schema: Arc::new(schema),
        key_indexes,
        select_columns,
    })
}

#[cfg(test)]
impl CaptureInstance {
    /// An instance with no columns, for tests of code that only looks at which instance it is.
    pub(crate) fn named(name: &str, start_lsn: Lsn) -> CaptureInstance {
        CaptureInstance {
            name: name.to_owned(),
            start_lsn,
            schema: Arc::new(TableSchema::default()),
            schema_id: String::new(),
            key_indexes: Vec::new(),
            select_columns: Vec::new(),
        }
    }
}

/// A per-table setting, names compared without regard to case.
fn lookup<'a, T>(map: &'a BTreeMap<String, T>, table: &str) -> Option<&'a T> {
    map.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(table))
        .map(|(_, value)| value)
}

async fn table_names(
    client: &mut SqlClient,
    database: &str,
) -> Result<HashMap<i64, (String, String)>, SqlError> {
    let context = format!("reading the tables of {database}");
    let rows = sql::simple_rows(
        client,
        "SELECT s.name, t.name, t.object_id FROM sys.tables AS t \
         INNER JOIN sys.schemas AS s ON s.schema_id = t.schema_id",
        &context,
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                int_at(row, 2, &context)?,
                (
                    sql::required::<&str>(row, 0, &context)?.to_owned(),
                    sql::required::<&str>(row, 1, &context)?.to_owned(),
                ),
            ))
        })
        .collect()
}

async fn captured_columns(
    client: &mut SqlClient,
    database: &str,
) -> Result<HashMap<i64, Vec<String>>, SqlError> {
    names_by_object(
        client,
        "SELECT object_id, column_name, column_ordinal FROM cdc.captured_columns \
         ORDER BY object_id, column_ordinal",
        &format!("reading the captured columns of {database}"),
    )
    .await
}

async fn index_columns(
    client: &mut SqlClient,
    database: &str,
) -> Result<HashMap<i64, Vec<String>>, SqlError> {
    names_by_object(
        client,
        "SELECT object_id, column_name, index_ordinal FROM cdc.index_columns \
         ORDER BY object_id, index_ordinal",
        &format!("reading the key columns of capture instances in {database}"),
    )
    .await
}

/// Column names per capture instance object id, in the query's order.
async fn names_by_object(
    client: &mut SqlClient,
    query: &str,
    context: &str,
) -> Result<HashMap<i64, Vec<String>>, SqlError> {
    let rows = sql::simple_rows(client, query, context).await?;
    let mut columns: HashMap<i64, Vec<String>> = HashMap::new();
    for row in &rows {
        columns
            .entry(int_at(row, 0, context)?)
            .or_default()
            .push(sql::required::<&str>(row, 1, context)?.to_owned());
    }
    Ok(columns)
}

async fn source_columns(
    client: &mut SqlClient,
    database: &str,
) -> Result<HashMap<(String, String, String), SourceColumn>, SqlError> {
    let context = format!("reading the column types of {database}");
    let rows = sql::simple_rows(
        client,
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, IS_NULLABLE, DATA_TYPE, \
         CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION \
         FROM INFORMATION_SCHEMA.COLUMNS",
        &context,
    )
    .await?;
    let mut columns = HashMap::new();
    for row in &rows {
        let text = |i| sql::required::<&str>(row, i, &context).map(str::to_lowercase);
        let optional = |i| optional_int_at(row, i, &context);
        let data_type = sql::required::<&str>(row, 4, &context)?.to_owned();
        let lowered = data_type.to_ascii_lowercase();
        let is_time = matches!(lowered.as_str(), "time" | "datetime2" | "datetimeoffset");
        let scale = if is_time { optional(8)? } else { optional(7)? };
        columns.insert(
            (text(0)?, text(1)?, text(2)?),
            SourceColumn {
                nullable: sql::required::<&str>(row, 3, &context)?.eq_ignore_ascii_case("YES"),
                sql_type: SqlServerType {
                    name: data_type,
                    length: i32::try_from(optional(5)?.unwrap_or(0)).unwrap_or(-1),
                    precision: u32::try_from(optional(6)?.unwrap_or(0)).unwrap_or(0),
                    scale: u32::try_from(scale.unwrap_or(0)).unwrap_or(0),
                },
            },
        );
    }
    Ok(columns)
}

/// An integer column of any width.
pub fn optional_int_at(row: &Row, index: usize, context: &str) -> Result<Option<i64>, SqlError> {
    let data = row
        .get_column_data(index)
        .map_err(|e| SqlError::unexpected(context, format!("column {index}: {e}")))?;
    Ok(match data {
        ColumnData::U8(v) => v.map(i64::from),
        ColumnData::I16(v) => v.map(i64::from),
        ColumnData::I32(v) => v.map(i64::from),
        ColumnData::I64(v) => *v,
        other => {
            return Err(SqlError::unexpected(
                context,
                format!("column {index} is not an integer: {other:?}"),
            ));
        }
    })
}

/// An integer column that must not be NULL.
pub fn int_at(row: &Row, index: usize, context: &str) -> Result<i64, SqlError> {
    optional_int_at(row, index, context)?
        .ok_or_else(|| SqlError::unexpected(context, format!("column {index} is NULL")))
}

/// A `binary(10)` LSN column.
pub fn lsn_at(row: &Row, index: usize, context: &str) -> Result<Lsn, SqlError> {
    let bytes = sql::required::<&[u8]>(row, index, context)?;
    Lsn::from_bytes(bytes).map_err(|e| SqlError::unexpected(context, e.to_string()))
}

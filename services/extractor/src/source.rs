//! What the extractor asks SQL Server: LSN bounds, change rows after a position, snapshot
//! chunks in key order, and watermarks.

use std::borrow::Cow;

use cdc_model::calendar::FIRST_SQL_SERVER_DAY;
use cdc_model::proto::value::Kind;
use cdc_model::proto::{TableId, Value};
use cdc_model::{Decimal, Lsn, SourcePosition};
use tiberius::numeric::Numeric;
use tiberius::time::{Date, DateTime2, DateTimeOffset, Time};
use tiberius::{ColumnData, Query, Row};

use crate::discovery::{CaptureInstance, int_at, lsn_at, table_name};
use crate::sql::{self, SqlClient, SqlError};
use crate::values;

/// Columns before the captured ones in a change-row query.
const CHANGE_META_COLUMNS: usize = 4;

/// `sys.fn_cdc_get_max_lsn()`: the newest commit the capture job has processed.
pub async fn max_lsn(client: &mut SqlClient) -> Result<Option<Lsn>, SqlError> {
    let context = "reading sys.fn_cdc_get_max_lsn()";
    let rows = sql::simple_rows(client, "SELECT sys.fn_cdc_get_max_lsn()", context).await?;
    let Some(row) = rows.first() else {
        return Err(SqlError::unexpected(context, "no row"));
    };
    match sql::get::<&[u8]>(row, 0, context)? {
        Some(bytes) => Lsn::from_bytes(bytes)
            .map(Some)
            .map_err(|e| SqlError::unexpected(context, e.to_string())),
        None => Ok(None),
    }
}

/// `sys.fn_cdc_get_min_lsn(instance)`: the oldest change the instance still holds (zero when
/// SQL Server does not know the instance).
pub async fn min_lsn(client: &mut SqlClient, instance: &str) -> Result<Lsn, SqlError> {
    let context = format!("reading sys.fn_cdc_get_min_lsn of {instance}");
    let text = format!("SELECT sys.fn_cdc_get_min_lsn({})", sql::nliteral(instance));
    let rows = sql::simple_rows(client, &text, &context).await?;
    let row = rows
        .first()
        .ok_or_else(|| SqlError::unexpected(&context, "no row"))?;
    match sql::get::<&[u8]>(row, 0, &context)? {
        Some(bytes) => {
            Lsn::from_bytes(bytes).map_err(|e| SqlError::unexpected(&context, e.to_string()))
        }
        None => Ok(Lsn::ZERO),
    }
}

/// The names of the database's capture instances.
pub async fn capture_instances(
    client: &mut SqlClient,
) -> Result<std::collections::BTreeSet<String>, SqlError> {
    let context = "listing capture instances";
    let rows = sql::simple_rows(
        client,
        "SELECT capture_instance FROM cdc.change_tables",
        context,
    )
    .await?;
    rows.iter()
        .map(|row| sql::required::<&str>(row, 0, context).map(str::to_owned))
        .collect()
}

/// Whether changes after `resume` may have been removed, given the instance's minimum LSN
/// `min` (cleanup removed everything below it). LSNs are not dense, so this cannot tell a
/// removed change from an LSN nobody used: it errs on the side of reporting, because lost
/// history must never pass silently. `min` zero means SQL Server does not know the instance.
pub fn lost_before(resume: &SourcePosition, min: Lsn) -> bool {
    if min == Lsn::ZERO {
        return false;
    }
    if is_end_of_lsn(resume) {
        // Everything of `resume`'s LSN was read: the next change may sit at the next LSN.
        resume.commit_lsn.increment().is_some_and(|next| min > next)
    } else {
        // The rest of `resume`'s own LSN is still to read: it must still be there.
        min > resume.commit_lsn
    }
}

/// One row of a change table.
#[derive(Debug)]
pub struct ChangeRow {
    /// Its position.
    pub position: SourcePosition,
    /// The captured columns, in schema order.
    pub values: Vec<Value>,
    /// The commit time, microseconds since the epoch, when the mapping has it.
    pub commit_time_micros: Option<i64>,
}

/// A position after which every change of a commit LSN counts as read: the largest position
/// that LSN can have.
pub fn end_of(lsn: Lsn) -> SourcePosition {
    SourcePosition {
        commit_lsn: lsn,
        command_id: i32::MAX,
        seqval: Lsn::MAX,
        operation: 4,
    }
}

/// Whether `position` is the end of its LSN (as [`end_of`] makes it).
pub fn is_end_of_lsn(position: &SourcePosition) -> bool {
    position.command_id == i32::MAX && position.seqval == Lsn::MAX
}

/// Reads up to `limit` change rows of `instance` after `after` and at or before `to`, in
/// (start LSN, command id, seqval, operation) order, reading the change table directly.
pub async fn changes(
    client: &mut SqlClient,
    table: &TableId,
    instance: &CaptureInstance,
    after: &SourcePosition,
    to: Lsn,
    limit: usize,
) -> Result<Vec<ChangeRow>, SqlError> {
    let context = format!(
        "reading changes of {} from cdc.{}_CT",
        table_name(table),
        instance.name
    );
    // Past the end of an LSN only a greater LSN can follow: the cheap predicate suffices.
    let after_predicate = if is_end_of_lsn(after) {
        "ct.__$start_lsn > @P2"
    } else {
        "(ct.__$start_lsn > @P2 OR (ct.__$start_lsn = @P2 AND (ct.__$command_id > @P3 \
         OR (ct.__$command_id = @P3 AND (ct.__$seqval > @P4 \
         OR (ct.__$seqval = @P4 AND ct.__$operation > @P5))))))"
    };
    // Commit times come from cdc.lsn_time_mapping in a second, small query over the page's
    // LSN range, rather than joined to every change row: one row per transaction instead of
    // one per change.
    let text = format!(
        "SELECT TOP ({limit}) ct.__$start_lsn, ct.__$seqval, ct.__$operation, ct.__$command_id, \
         {columns} \
         FROM cdc.{change_table} AS ct \
         WHERE ct.__$start_lsn <= @P1 AND {after_predicate} \
         ORDER BY ct.__$start_lsn, ct.__$command_id, ct.__$seqval, ct.__$operation",
        columns = instance.select_list("ct"),
        change_table = sql::quote(&format!("{}_CT", instance.name)),
    );
    let mut query = Query::new(text);
    query.bind(to.as_bytes().to_vec());
    query.bind(after.commit_lsn.as_bytes().to_vec());
    if !is_end_of_lsn(after) {
        query.bind(after.command_id);
        query.bind(after.seqval.as_bytes().to_vec());
        query.bind(after.operation);
    }
    let mut changes: Vec<ChangeRow> = sql::map_rows(client, query, &context, |row| {
        change_row(row, table, instance, &context)
    })
    .await?;
    if let (Some(first), Some(last)) = (changes.first(), changes.last()) {
        let times =
            commit_times(client, first.position.commit_lsn, last.position.commit_lsn).await?;
        for change in &mut changes {
            change.commit_time_micros = times.get(&change.position.commit_lsn).copied();
        }
    }
    Ok(changes)
}

/// Commit times of the transactions with commit LSNs in `from..=to`, microseconds.
async fn commit_times(
    client: &mut SqlClient,
    from: Lsn,
    to: Lsn,
) -> Result<std::collections::HashMap<Lsn, i64>, SqlError> {
    let context = "reading commit times from cdc.lsn_time_mapping";
    let mut query = Query::new(
        "SELECT start_lsn, tran_end_time FROM cdc.lsn_time_mapping \
         WHERE start_lsn >= @P1 AND start_lsn <= @P2",
    );
    query.bind(from.as_bytes().to_vec());
    query.bind(to.as_bytes().to_vec());
    let rows = sql::rows(client, query, context).await?;
    let mut times = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let data = row
            .get_column_data(1)
            .map_err(|e| SqlError::unexpected(context, e.to_string()))?;
        if matches!(data, ColumnData::DateTime(Some(_))) {
            times.insert(lsn_at(row, 0, context)?, timestamp_micros(data));
        }
    }
    Ok(times)
}

fn change_row(
    row: &Row,
    table: &TableId,
    instance: &CaptureInstance,
    context: &str,
) -> Result<ChangeRow, SqlError> {
    let position = SourcePosition {
        commit_lsn: lsn_at(row, 0, context)?,
        seqval: lsn_at(row, 1, context)?,
        operation: i32::try_from(int_at(row, 2, context)?)
            .map_err(|_| SqlError::unexpected(context, "__$operation out of range"))?,
        command_id: i32::try_from(int_at(row, 3, context)?)
            .map_err(|_| SqlError::unexpected(context, "__$command_id out of range"))?,
    };
    Ok(ChangeRow {
        position,
        values: row_values(row, CHANGE_META_COLUMNS, table, instance, context)?,
        commit_time_micros: None,
    })
}

fn timestamp_micros(data: &ColumnData<'_>) -> i64 {
    let column = cdc_model::proto::ColumnSchema {
        name: "tran_end_time".to_owned(),
        r#type: Some(cdc_model::proto::ColumnType {
            logical: cdc_model::proto::LogicalType::Timestamp as i32,
            scale: 3,
            ..Default::default()
        }),
        nullable: true,
    };
    match values::to_value(data, &column).ok().and_then(|v| v.kind) {
        Some(Kind::Timestamp(ts)) => ts.seconds * 1_000_000 + i64::from(ts.nanos / 1_000),
        _ => 0,
    }
}

/// The captured columns of `row` from index `first` on, converted exactly.
fn row_values(
    row: &Row,
    first: usize,
    table: &TableId,
    instance: &CaptureInstance,
    context: &str,
) -> Result<Vec<Value>, SqlError> {
    instance
        .schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let data = row
                .get_column_data(first + i)
                .map_err(|e| SqlError::unexpected(context, e.to_string()))?;
            values::to_value(data, column).map_err(|e| {
                SqlError::unexpected(
                    context,
                    format!("{}.{}: {e}", table_name(table), column.name),
                )
            })
        })
        .collect()
}

/// Reads up to `limit` rows of the table in key order, after `after` (exclusive, none = from
/// the first row) and up to `up_to` (inclusive, none = to the last row), with the columns of
/// `instance`.
pub async fn chunk(
    client: &mut SqlClient,
    table: &TableId,
    instance: &CaptureInstance,
    after: Option<&[Value]>,
    up_to: Option<&[Value]>,
    limit: usize,
) -> Result<Vec<Vec<Value>>, SqlError> {
    let context = format!("reading a snapshot chunk of {}", table_name(table));
    let keys: Vec<String> = instance
        .key_indexes
        .iter()
        .map(|&i| format!("t.{}", sql::quote(&instance.schema.columns[i].name)))
        .collect();
    let mut parameters: Vec<ColumnData<'static>> = Vec::new();
    let mut predicates = Vec::new();
    if let Some(after) = after {
        predicates.push(keyset_predicate(
            &keys,
            after,
            ">",
            &mut parameters,
            &context,
        )?);
    }
    if let Some(up_to) = up_to {
        predicates.push(format!(
            "NOT {}",
            keyset_predicate(&keys, up_to, ">", &mut parameters, &context)?
        ));
    }
    let text = format!(
        "SELECT TOP ({limit}) {columns} FROM {schema}.{name} AS t{filter} ORDER BY {order}",
        columns = instance.select_list("t"),
        schema = sql::quote(&table.schema),
        name = sql::quote(&table.table),
        filter = if predicates.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", predicates.join(" AND "))
        },
        order = keys.join(", "),
    );
    let mut query = Query::new(text);
    for parameter in parameters {
        query.bind(parameter);
    }
    sql::map_rows(client, query, &context, |row| {
        row_values(row, 0, table, instance, &context)
    })
    .await
}

/// The rows with the given keys (a repair); keys the table does not hold are simply absent.
pub async fn rows_by_keys(
    client: &mut SqlClient,
    table: &TableId,
    instance: &CaptureInstance,
    keys: &[Vec<Value>],
) -> Result<Vec<Vec<Value>>, SqlError> {
    let context = format!("reading chosen rows of {}", table_name(table));
    let columns: Vec<String> = instance
        .key_indexes
        .iter()
        .map(|&i| format!("t.{}", sql::quote(&instance.schema.columns[i].name)))
        .collect();
    let mut parameters: Vec<ColumnData<'static>> = Vec::new();
    let mut alternatives = Vec::with_capacity(keys.len());
    for key in keys {
        if key.len() != columns.len() {
            return Err(SqlError::unexpected(
                &context,
                format!(
                    "a key of {} values for {} key columns",
                    key.len(),
                    columns.len()
                ),
            ));
        }
        let mut equal = Vec::with_capacity(key.len());
        for (column, value) in columns.iter().zip(key) {
            parameters.push(parameter(value).map_err(|e| SqlError::unexpected(&context, e))?);
            equal.push(format!("{column} = @P{}", parameters.len()));
        }
        alternatives.push(format!("({})", equal.join(" AND ")));
    }
    let text = format!(
        "SELECT {columns} FROM {schema}.{name} AS t WHERE {filter}",
        columns = instance.select_list("t"),
        schema = sql::quote(&table.schema),
        name = sql::quote(&table.table),
        filter = alternatives.join(" OR "),
    );
    let mut query = Query::new(text);
    for parameter in parameters {
        query.bind(parameter);
    }
    sql::map_rows(client, query, &context, |row| {
        row_values(row, 0, table, instance, &context)
    })
    .await
}

/// `(k1, k2, …) <op> (v1, v2, …)` in lexicographic order, expanded for T-SQL (which has no
/// row-value comparison): `k1 > v1 OR (k1 = v1 AND (k2 > v2 …))`.
fn keyset_predicate(
    keys: &[String],
    values: &[Value],
    op: &str,
    parameters: &mut Vec<ColumnData<'static>>,
    context: &str,
) -> Result<String, SqlError> {
    if keys.len() != values.len() {
        return Err(SqlError::unexpected(
            context,
            format!(
                "a key of {} values for {} key columns",
                values.len(),
                keys.len()
            ),
        ));
    }
    let mut names = Vec::new();
    for value in values {
        parameters.push(parameter(value).map_err(|e| SqlError::unexpected(context, e))?);
        names.push(format!("@P{}", parameters.len()));
    }
    let mut predicate = String::new();
    for (i, (key, name)) in keys.iter().zip(&names).enumerate().rev() {
        predicate = if i == keys.len() - 1 {
            format!("{key} {op} {name}")
        } else {
            format!("({key} {op} {name} OR ({key} = {name} AND {predicate}))")
        };
    }
    Ok(format!("({predicate})"))
}

/// A key value as a statement parameter.
pub fn parameter(value: &Value) -> Result<ColumnData<'static>, String> {
    const NANOS_PER_DAY: i64 = 86_400_000_000_000;
    let date = |days_since_epoch: i64| {
        u32::try_from(days_since_epoch - i64::from(FIRST_SQL_SERVER_DAY))
            .map(Date::new)
            .map_err(|_| "a date before 0001-01-01".to_owned())
    };
    let time = |nanos: i64| Time::new(u64::try_from(nanos / 100).unwrap_or(0), 7);
    let split = |seconds: i64, nanos: u32| {
        let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
        let days = i64::try_from(total.div_euclid(i128::from(NANOS_PER_DAY))).unwrap_or(0);
        let of_day = i64::try_from(total.rem_euclid(i128::from(NANOS_PER_DAY))).unwrap_or(0);
        Ok::<_, String>(DateTime2::new(date(days)?, time(of_day)))
    };
    Ok(match &value.kind {
        Some(Kind::Bool(v)) => ColumnData::Bit(Some(*v)),
        Some(Kind::Int64(v)) => ColumnData::I64(Some(*v)),
        Some(Kind::Float64(v)) => ColumnData::F64(Some(*v)),
        Some(Kind::Decimal(d)) => {
            let d = Decimal::from_proto(d).map_err(|e| e.to_string())?;
            let scale = u8::try_from(d.scale()).map_err(|_| "decimal scale over 255".to_owned())?;
            ColumnData::Numeric(Some(Numeric::new_with_scale(d.unscaled(), scale)))
        }
        Some(Kind::Text(v) | Kind::Json(v) | Kind::Xml(v)) => {
            ColumnData::String(Some(Cow::Owned(v.clone())))
        }
        Some(Kind::Bytes(v)) => ColumnData::Binary(Some(Cow::Owned(v.clone()))),
        Some(Kind::Uuid(v)) => ColumnData::Guid(Some(
            uuid::Uuid::from_slice(v).map_err(|e| format!("a uuid key: {e}"))?,
        )),
        Some(Kind::Date(days)) => ColumnData::Date(Some(date(i64::from(*days))?)),
        Some(Kind::TimeNanos(nanos)) => ColumnData::Time(Some(time(*nanos))),
        Some(Kind::Timestamp(ts)) => ColumnData::DateTime2(Some(split(ts.seconds, ts.nanos)?)),
        Some(Kind::Timestamptz(tz)) => ColumnData::DateTimeOffset(Some(DateTimeOffset::new(
            split(tz.utc_seconds, tz.nanos)?,
            i16::try_from(tz.offset_minutes).map_err(|_| "offset out of range".to_owned())?,
        ))),
        Some(Kind::Null(_)) | None => return Err("a NULL key value".to_owned()),
    })
}

/// Rows in the table now (an estimate of a snapshot's size).
pub async fn count(client: &mut SqlClient, table: &TableId) -> Result<u64, SqlError> {
    let context = format!("counting the rows of {}", table_name(table));
    let text = format!(
        "SELECT COUNT_BIG(*) FROM {}.{}",
        sql::quote(&table.schema),
        sql::quote(&table.table)
    );
    let rows = sql::simple_rows(client, &text, &context).await?;
    let row = rows
        .first()
        .ok_or_else(|| SqlError::unexpected(&context, "no row"))?;
    Ok(u64::try_from(int_at(row, 0, &context)?).unwrap_or(0))
}

/// The watermark table of one database: where snapshot watermarks are written, and the
/// capture instance that turns each into a commit LSN.
#[derive(Debug, Clone)]
pub struct Watermarks {
    schema: String,
    table: String,
    instance: String,
}

impl Watermarks {
    /// Finds the watermark table's capture instance, creating the table and enabling CDC on
    /// it when missing and allowed.
    pub async fn prepare(
        client: &mut SqlClient,
        database: &str,
        (schema, table): (&str, &str),
        create: bool,
    ) -> Result<Watermarks, SqlError> {
        let context = format!("preparing the watermark table {database}.{schema}.{table}");
        let object = format!(
            "SELECT t.object_id FROM sys.tables AS t \
             INNER JOIN sys.schemas AS s ON s.schema_id = t.schema_id \
             WHERE t.name = {} AND s.name = {}",
            sql::nliteral(table),
            sql::nliteral(schema)
        );
        let object_id = match sql::simple_rows(client, &object, &context).await?.first() {
            Some(row) => Some(int_at(row, 0, &context)?),
            None => None,
        };
        let mut existing = None;
        if let Some(object_id) = object_id {
            let find = format!(
                "SELECT capture_instance FROM cdc.change_tables WHERE source_object_id = {object_id} \
                 ORDER BY start_lsn DESC"
            );
            if let Some(row) = sql::simple_rows(client, &find, &context).await?.first() {
                existing = Some(sql::required::<&str>(row, 0, &context)?.to_owned());
            }
        }
        let instance = match existing {
            Some(instance) => instance,
            None if create => {
                if object_id.is_none() {
                    let create_table = format!(
                        "CREATE TABLE {}.{} (token uniqueidentifier NOT NULL PRIMARY KEY, \
                         table_name nvarchar(400) NOT NULL)",
                        sql::quote(schema),
                        sql::quote(table)
                    );
                    sql::execute(client, Query::new(create_table), &context).await?;
                }
                let instance = format!("{schema}_{table}");
                let enable = format!(
                    "EXEC sys.sp_cdc_enable_table @source_schema = {}, @source_name = {}, \
                     @role_name = NULL, @capture_instance = {}",
                    sql::nliteral(schema),
                    sql::nliteral(table),
                    sql::nliteral(&instance)
                );
                sql::execute(client, Query::new(enable), &context).await?;
                tracing::info!(database, schema, table, "created the watermark table");
                instance
            }
            None => {
                return Err(SqlError::unexpected(
                    context,
                    "it is missing or has no capture instance, and snapshot.create_watermark_table is false",
                ));
            }
        };
        Ok(Watermarks {
            schema: schema.to_owned(),
            table: table.to_owned(),
            instance,
        })
    }

    /// Writes a watermark for `table` and returns its token; its commit LSN is found later,
    /// once the capture job has read it ([`Watermarks::find`]).
    pub async fn write(
        &self,
        client: &mut SqlClient,
        table: &TableId,
    ) -> Result<uuid::Uuid, SqlError> {
        let token = uuid::Uuid::new_v4();
        let context = format!("writing a snapshot watermark for {}", table_name(table));
        let mut query = Query::new(format!(
            "INSERT INTO {}.{} (token, table_name) VALUES (@P1, @P2)",
            sql::quote(&self.schema),
            sql::quote(&self.table)
        ));
        query.bind(token);
        query.bind(table_name(table));
        sql::execute(client, query, &context).await?;
        Ok(token)
    }

    /// The commit LSN of watermark `token`, once the capture job has read it; the watermark
    /// row is then deleted.
    pub async fn find(
        &self,
        client: &mut SqlClient,
        token: uuid::Uuid,
    ) -> Result<Option<Lsn>, SqlError> {
        let context = "looking up a snapshot watermark";
        let mut query = Query::new(format!(
            "SELECT __$start_lsn FROM cdc.{} WHERE token = @P1 AND __$operation = 2",
            sql::quote(&format!("{}_CT", self.instance))
        ));
        query.bind(token);
        let rows = sql::rows(client, query, context).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let lsn = lsn_at(row, 0, context)?;
        let mut delete = Query::new(format!(
            "DELETE FROM {}.{} WHERE token = @P1",
            sql::quote(&self.schema),
            sql::quote(&self.table)
        ));
        delete.bind(token);
        sql::execute(client, delete, context).await?;
        Ok(Some(lsn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsn(n: u128) -> Lsn {
        Lsn::from_u128(n).unwrap_or(Lsn::ZERO)
    }

    #[test]
    fn history_is_lost_only_past_the_next_lsn_to_read() {
        let done = end_of(lsn(100));
        assert!(!lost_before(&done, lsn(100)), "cleanup below what was read");
        assert!(
            !lost_before(&done, lsn(101)),
            "the next LSN is the first one kept"
        );
        assert!(
            lost_before(&done, lsn(102)),
            "LSN 101 may have held changes"
        );
        assert!(!lost_before(&done, Lsn::ZERO), "an unknown instance");
        let midway = SourcePosition {
            commit_lsn: lsn(100),
            command_id: 3,
            seqval: lsn(7),
            operation: 2,
        };
        assert!(!lost_before(&midway, lsn(100)));
        assert!(
            lost_before(&midway, lsn(101)),
            "the rest of LSN 100 was removed"
        );
    }

    #[test]
    fn composite_keys_expand_to_a_lexicographic_predicate() {
        let keys = vec!["t.[a]".to_owned(), "t.[b]".to_owned()];
        let values = vec![
            cdc_model::value::of(Kind::Int64(1)),
            cdc_model::value::of(Kind::Text("x".to_owned())),
        ];
        let mut parameters = Vec::new();
        let predicate =
            keyset_predicate(&keys, &values, ">", &mut parameters, "test").unwrap_or_default();
        assert_eq!(
            predicate,
            "((t.[a] > @P1 OR (t.[a] = @P1 AND t.[b] > @P2)))"
        );
        assert_eq!(parameters.len(), 2);
    }
}

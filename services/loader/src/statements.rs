//! The SQL the loader runs, generated from names it quotes itself. Pure, so every statement is
//! unit-tested without a database.
//!
//! A batch of one table and one schema is COPYed (binary) into a temporary stage table, then
//! applied set-based: one `INSERT .. ON CONFLICT DO UPDATE` for every upsert, one `DELETE .. USING` for
//! every delete. Both compare the ordered source positions, so an older event never overwrites
//! a newer row, and a delete tombstone keeps a late snapshot read from bringing a row back.

use cdc_model::proto::{ColumnSchema, ColumnType, TableSchema};

use crate::naming::{TargetTable, quote_ident};
use crate::target::{COMMIT_TIME_COLUMN, DELETED_AT_COLUMN, POSITION_COLUMN, PgType};

/// Stage column: the ordered source position.
pub const STAGE_POSITION: &str = "_cdc_position";
/// Stage column: the commit time.
pub const STAGE_COMMIT_TIME: &str = "_cdc_commit_time";
/// Stage column: whether the row is a delete.
pub const STAGE_DELETE: &str = "_cdc_delete";
/// Stage column: the encoded row key (for tombstones).
pub const STAGE_ROW_KEY: &str = "_cdc_row_key";

/// The loader's own tables, in `state_schema`. Created at start-up under an advisory lock, so
/// several instances starting together do not race.
pub fn bootstrap(state_schema: &str) -> Vec<String> {
    let schema = quote_ident(state_schema);
    vec![
        format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.offsets (
  consumer_group text NOT NULL,
  topic text NOT NULL,
  partition integer NOT NULL,
  next_offset bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, partition)
)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.tombstones (
  target_table text NOT NULL,
  row_key bytea NOT NULL,
  position bytea NOT NULL,
  deleted_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (target_table, row_key)
)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.replayed_dead_letters (
  dlq_topic text NOT NULL,
  dlq_partition integer NOT NULL,
  dlq_offset bigint NOT NULL,
  replayed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset)
)"
        ),
    ]
}

/// Stored offsets of some partitions of one group, locked until the batch commits (two
/// instances never apply the same partition's batch at once). Binds: group, topics, partitions.
pub fn lock_offsets(state_schema: &str) -> String {
    format!(
        "SELECT topic, partition, next_offset FROM {}.offsets
WHERE consumer_group = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))
FOR UPDATE",
        quote_ident(state_schema)
    )
}

/// Stored offsets of some partitions, unlocked. Binds: group, topics, partitions.
pub fn read_offsets(state_schema: &str) -> String {
    format!(
        "SELECT topic, partition, next_offset FROM {}.offsets
WHERE consumer_group = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))",
        quote_ident(state_schema)
    )
}

/// Records the next offsets of partitions. Binds: group, topics, partitions, next offsets.
pub fn store_offsets(state_schema: &str) -> String {
    format!(
        "INSERT INTO {}.offsets AS o (consumer_group, topic, partition, next_offset)
SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])
ON CONFLICT (consumer_group, topic, partition)
DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        quote_ident(state_schema)
    )
}

/// Removes tombstones older than the retention. Binds: retention in hours.
pub fn prune_tombstones(state_schema: &str) -> String {
    format!(
        "DELETE FROM {}.tombstones WHERE deleted_at < now() - make_interval(hours => $1)",
        quote_ident(state_schema)
    )
}

/// The columns of one target table: `pg_type.typname`, `atttypmod`, nullability, and whether
/// the column is in the primary key (with its position). Binds: schema, table.
pub const DESCRIBE_TABLE: &str =
    "SELECT a.attname::text, t.typname::text, a.atttypmod, NOT a.attnotnull,
  array_position(i.indkey::int2[], a.attnum)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum";

/// Serialises DDL on one target table across loader instances, until the transaction ends.
/// Binds: the target table's name.
pub const LOCK_TABLE_DDL: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))";

/// Serialises the state bootstrap across loader instances.
pub const LOCK_BOOTSTRAP: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('cdc-loader-bootstrap', 7))";

/// Statements for one (target table, schema) pair.
#[derive(Debug, Clone)]
pub struct TableStatements {
    /// Creates the session's stage table (emptied at every commit).
    pub create_stage: String,
    /// COPY into the stage.
    pub copy: String,
    /// Applies the stage's upserts (and, for soft deletes, its deletes). Binds: target name.
    pub upsert: String,
    /// Applies the stage's hard deletes (absent in soft-delete mode).
    pub delete: Option<String>,
    /// Records the stage's hard deletes as tombstones. Binds: target name.
    pub tombstones: Option<String>,
}

/// What [`TableStatements::new`] needs to know.
pub struct StageSpec<'a> {
    /// The target table.
    pub target: &'a TargetTable,
    /// The schema of the staged rows.
    pub schema: &'a TableSchema,
    /// The stage table's name (unique per target and schema in a session).
    pub stage: &'a str,
    /// The loader's state schema.
    pub state_schema: &'a str,
    /// Soft deletes instead of hard ones.
    pub soft_delete: bool,
}

impl TableStatements {
    /// Generates every statement of one stage.
    pub fn new(spec: &StageSpec<'_>) -> TableStatements {
        let stage = quote_ident(spec.stage);
        let target = spec.target.quoted();
        let columns: Vec<String> = spec
            .schema
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect();
        let keys: Vec<String> = spec
            .schema
            .key_columns
            .iter()
            .map(|k| quote_ident(k))
            .collect();
        let tombstones = format!("{}.tombstones", quote_ident(spec.state_schema));
        let stage_columns: Vec<String> = spec
            .schema
            .columns
            .iter()
            .map(|c| format!("{} {}", quote_ident(&c.name), stage_type(c).ddl()))
            .chain([
                format!("{STAGE_POSITION} bytea NOT NULL"),
                format!("{STAGE_COMMIT_TIME} timestamptz NOT NULL"),
                format!("{STAGE_DELETE} boolean NOT NULL"),
                format!("{STAGE_ROW_KEY} bytea NOT NULL"),
            ])
            .collect();
        let create_stage = format!(
            "CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ({}) ON COMMIT DELETE ROWS",
            stage_columns.join(", ")
        );
        let copy_columns: Vec<String> = columns
            .iter()
            .cloned()
            .chain(
                [
                    STAGE_POSITION,
                    STAGE_COMMIT_TIME,
                    STAGE_DELETE,
                    STAGE_ROW_KEY,
                ]
                .map(String::from),
            )
            .collect();
        let copy = format!(
            "COPY {stage} ({}) FROM STDIN (FORMAT binary)",
            copy_columns.join(", ")
        );
        let upsert = upsert(spec, &stage, &target, &columns, &keys, &tombstones);
        let (delete, tombstone_insert) = if spec.soft_delete {
            (None, None)
        } else {
            let matches: Vec<String> = keys.iter().map(|k| format!("t.{k} = s.{k}")).collect();
            (
                Some(format!(
                    "DELETE FROM {target} AS t USING {stage} AS s
WHERE s.{STAGE_DELETE} AND {} AND t.{POSITION_COLUMN} < s.{STAGE_POSITION}",
                    matches.join(" AND ")
                )),
                Some(format!(
                    "INSERT INTO {tombstones} AS d (target_table, row_key, position)
SELECT $1, s.{STAGE_ROW_KEY}, s.{STAGE_POSITION} FROM {stage} AS s WHERE s.{STAGE_DELETE}
ON CONFLICT (target_table, row_key) DO UPDATE
SET position = EXCLUDED.position, deleted_at = now() WHERE d.position < EXCLUDED.position"
                )),
            )
        };
        TableStatements {
            create_stage,
            copy,
            upsert,
            delete,
            tombstones: tombstone_insert,
        }
    }
}

fn column_type(column: &ColumnSchema) -> ColumnType {
    column.r#type.clone().unwrap_or_default()
}

/// A column's type in the stage: its target type, but `text` for XML. PostgreSQL reads binary
/// XML in the encoding its declaration names, while the loader always sends UTF-8; as text it
/// is converted like any text, then parsed by the cast in the upsert.
pub fn stage_type(column: &ColumnSchema) -> PgType {
    match PgType::of(&column_type(column)) {
        PgType::Xml => PgType::Text,
        other => other,
    }
}

fn upsert(
    spec: &StageSpec<'_>,
    stage: &str,
    target: &str,
    columns: &[String],
    keys: &[String],
    tombstones: &str,
) -> String {
    let mut insert_columns = columns.to_vec();
    insert_columns.push(quote_ident(POSITION_COLUMN));
    insert_columns.push(quote_ident(COMMIT_TIME_COLUMN));
    // XML is staged as text (see `stage_type`) and parsed as it goes into the target.
    let mut selected: Vec<String> = columns
        .iter()
        .zip(&spec.schema.columns)
        .map(|(quoted, column)| match PgType::of(&column_type(column)) {
            PgType::Xml => format!("s.{quoted}::xml"),
            _ => format!("s.{quoted}"),
        })
        .collect();
    selected.push(format!("s.{STAGE_POSITION}"));
    selected.push(format!("s.{STAGE_COMMIT_TIME}"));
    if spec.soft_delete {
        insert_columns.push(quote_ident(DELETED_AT_COLUMN));
        selected.push(format!(
            "CASE WHEN s.{STAGE_DELETE} THEN s.{STAGE_COMMIT_TIME} END"
        ));
    }
    let updates: Vec<String> = insert_columns
        .iter()
        .filter(|c| !keys.contains(c))
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    let which = if spec.soft_delete {
        String::new()
    } else {
        format!(
            "NOT s.{STAGE_DELETE} AND NOT EXISTS (SELECT 1 FROM {tombstones} AS d
  WHERE d.target_table = $1 AND d.row_key = s.{STAGE_ROW_KEY} AND d.position >= s.{STAGE_POSITION})"
        )
    };
    let filter = if which.is_empty() {
        "$1::text IS NOT NULL".to_owned()
    } else {
        which
    };
    format!(
        "INSERT INTO {target} AS t ({})
SELECT {} FROM {stage} AS s
WHERE {filter}
ON CONFLICT ({}) DO UPDATE SET {}
WHERE t.{POSITION_COLUMN} < EXCLUDED.{POSITION_COLUMN}",
        insert_columns.join(", "),
        selected.join(", "),
        keys.join(", "),
        updates.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdc_model::proto::{ColumnSchema, ColumnType, LogicalType, TableId};

    fn schema() -> TableSchema {
        let column = |name: &str, logical: LogicalType| ColumnSchema {
            name: name.into(),
            r#type: Some(ColumnType {
                logical: logical as i32,
                ..Default::default()
            }),
            nullable: name != "id",
        };
        TableSchema {
            table: Some(TableId::default()),
            capture_instance: String::new(),
            columns: vec![
                column("id", LogicalType::Int64),
                column("we\"ird", LogicalType::Text),
            ],
            key_columns: vec!["id".into()],
        }
    }

    fn statements(soft_delete: bool) -> TableStatements {
        let schema = schema();
        let target = TargetTable {
            schema: "public".into(),
            name: "orders".into(),
        };
        TableStatements::new(&StageSpec {
            target: &target,
            schema: &schema,
            stage: "_cdc_stage_1",
            state_schema: "cdc_loader",
            soft_delete,
        })
    }

    #[test]
    fn hard_delete_statements_guard_by_position_and_tombstone() {
        let s = statements(false);
        assert_eq!(
            s.copy,
            "COPY \"_cdc_stage_1\" (\"id\", \"we\"\"ird\", _cdc_position, _cdc_commit_time, _cdc_delete, _cdc_row_key) FROM STDIN (FORMAT binary)"
        );
        assert!(
            s.upsert.contains(
                "ON CONFLICT (\"id\") DO UPDATE SET \"we\"\"ird\" = EXCLUDED.\"we\"\"ird\""
            )
        );
        assert!(
            s.upsert
                .contains("WHERE t._cdc_position < EXCLUDED._cdc_position")
        );
        assert!(s.upsert.contains("d.position >= s._cdc_position"));
        assert!(
            s.delete
                .as_deref()
                .unwrap()
                .contains("t.\"id\" = s.\"id\" AND t._cdc_position < s._cdc_position")
        );
        assert!(
            s.tombstones
                .as_deref()
                .unwrap()
                .contains("\"cdc_loader\".tombstones")
        );
        assert!(s.create_stage.contains("ON COMMIT DELETE ROWS"));
    }

    #[test]
    fn xml_is_staged_as_text_and_parsed_as_it_goes_into_the_target() {
        let mut schema = schema();
        schema.columns[1].r#type = Some(ColumnType {
            logical: LogicalType::Xml as i32,
            ..Default::default()
        });
        let target = TargetTable {
            schema: "public".into(),
            name: "docs".into(),
        };
        let s = TableStatements::new(&StageSpec {
            target: &target,
            schema: &schema,
            stage: "_cdc_stage_2",
            state_schema: "cdc_loader",
            soft_delete: false,
        });
        assert!(
            s.create_stage.contains("\"we\"\"ird\" text"),
            "{}",
            s.create_stage
        );
        assert!(
            s.upsert.contains("s.\"we\"\"ird\"::xml, s._cdc_position"),
            "{}",
            s.upsert
        );
    }

    #[test]
    fn soft_deletes_are_upserts_that_set_the_deleted_time() {
        let s = statements(true);
        assert!(s.delete.is_none() && s.tombstones.is_none());
        assert!(
            s.upsert
                .contains("\"_cdc_deleted_at\" = EXCLUDED.\"_cdc_deleted_at\"")
        );
        assert!(
            s.upsert
                .contains("CASE WHEN s._cdc_delete THEN s._cdc_commit_time END")
        );
    }
}

//! Target tables: their PostgreSQL column types, and the DDL that creates a table from a
//! published schema or evolves an existing one (new columns, safe widening, dropped columns).
//! Pure: the catalog is read elsewhere and handed in as a [`TableDef`].

use cdc_model::proto::{ColumnType, LogicalType, TableSchema};

use crate::config::{DeleteMode, DroppedColumns};
use crate::naming::{TargetTable, check_identifier, quote_ident};

/// The column holding the ordered source position that last wrote the row (the row guard).
pub const POSITION_COLUMN: &str = "_cdc_position";
/// The column holding the source commit time of that write.
pub const COMMIT_TIME_COLUMN: &str = "_cdc_commit_time";
/// The column set when a row is soft-deleted.
pub const DELETED_AT_COLUMN: &str = "_cdc_deleted_at";

/// PostgreSQL's limit on numeric precision.
const MAX_NUMERIC_PRECISION: u32 = 1000;

/// A PostgreSQL column type, as far as the loader creates or compares them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgType {
    /// boolean
    Bool,
    /// smallint
    Int2,
    /// integer
    Int4,
    /// bigint
    Int8,
    /// numeric(p,s); `None` = unconstrained numeric.
    Numeric(Option<(u32, u32)>),
    /// real
    Float4,
    /// double precision
    Float8,
    /// date
    Date,
    /// time(n)
    Time(u32),
    /// timestamp(n)
    Timestamp(u32),
    /// timestamptz(n)
    Timestamptz(u32),
    /// varchar(n)
    Varchar(u32),
    /// text (or unbounded varchar)
    Text,
    /// bytea
    Bytea,
    /// uuid
    Uuid,
    /// jsonb
    Jsonb,
    /// xml
    Xml,
    /// Anything else, by its `format_type` name.
    Other(String),
}

impl PgType {
    /// The type a logical column type maps to (the design's type map).
    pub fn of(column_type: &ColumnType) -> PgType {
        let sub_second = column_type.scale.min(6);
        match LogicalType::try_from(column_type.logical).unwrap_or(LogicalType::Unspecified) {
            LogicalType::Bool => PgType::Bool,
            LogicalType::Int16 => PgType::Int2,
            LogicalType::Int32 => PgType::Int4,
            LogicalType::Int64 => PgType::Int8,
            LogicalType::Decimal => {
                PgType::Numeric(Some((column_type.precision, column_type.scale)))
            }
            LogicalType::Float32 => PgType::Float4,
            LogicalType::Float64 => PgType::Float8,
            LogicalType::Date => PgType::Date,
            LogicalType::Time => PgType::Time(sub_second),
            LogicalType::Timestamp => PgType::Timestamp(sub_second),
            LogicalType::Timestamptz => PgType::Timestamptz(sub_second),
            LogicalType::Text if column_type.length > 0 => PgType::Varchar(column_type.length),
            LogicalType::Text | LogicalType::Unspecified => PgType::Text,
            LogicalType::Bytes => PgType::Bytea,
            LogicalType::Uuid => PgType::Uuid,
            LogicalType::Json => PgType::Jsonb,
            LogicalType::Xml => PgType::Xml,
        }
    }

    /// Reads a catalog type: `pg_type.typname` and `pg_attribute.atttypmod`.
    pub fn from_catalog(type_name: &str, type_modifier: i32) -> PgType {
        let modifier = u32::try_from(type_modifier).ok();
        let precision = || modifier.map_or(6, |m| m.min(6));
        match type_name {
            "bool" => PgType::Bool,
            "int2" => PgType::Int2,
            "int4" => PgType::Int4,
            "int8" => PgType::Int8,
            "numeric" => PgType::Numeric(
                modifier
                    .and_then(|m| m.checked_sub(4))
                    .map(|m| ((m >> 16) & 0xffff, m & 0xffff)),
            ),
            "float4" => PgType::Float4,
            "float8" => PgType::Float8,
            "date" => PgType::Date,
            "time" => PgType::Time(precision()),
            "timestamp" => PgType::Timestamp(precision()),
            "timestamptz" => PgType::Timestamptz(precision()),
            "varchar" => match modifier.and_then(|m| m.checked_sub(4)) {
                Some(length) => PgType::Varchar(length),
                None => PgType::Text,
            },
            "text" => PgType::Text,
            "bytea" => PgType::Bytea,
            "uuid" => PgType::Uuid,
            "jsonb" => PgType::Jsonb,
            "xml" => PgType::Xml,
            other => PgType::Other(other.to_owned()),
        }
    }

    /// The type as written in DDL.
    pub fn ddl(&self) -> String {
        match self {
            PgType::Bool => "boolean".to_owned(),
            PgType::Int2 => "smallint".to_owned(),
            PgType::Int4 => "integer".to_owned(),
            PgType::Int8 => "bigint".to_owned(),
            PgType::Numeric(Some((p, s))) => format!("numeric({p},{s})"),
            PgType::Numeric(None) => "numeric".to_owned(),
            PgType::Float4 => "real".to_owned(),
            PgType::Float8 => "double precision".to_owned(),
            PgType::Date => "date".to_owned(),
            PgType::Time(n) => format!("time({n})"),
            PgType::Timestamp(n) => format!("timestamp({n})"),
            PgType::Timestamptz(n) => format!("timestamptz({n})"),
            PgType::Varchar(n) => format!("varchar({n})"),
            PgType::Text => "text".to_owned(),
            PgType::Bytea => "bytea".to_owned(),
            PgType::Uuid => "uuid".to_owned(),
            PgType::Jsonb => "jsonb".to_owned(),
            PgType::Xml => "xml".to_owned(),
            PgType::Other(name) => name.clone(),
        }
    }

    fn integer_rank(&self) -> Option<(u8, u32)> {
        match self {
            PgType::Int2 => Some((1, 5)),
            PgType::Int4 => Some((2, 10)),
            PgType::Int8 => Some((3, 19)),
            _ => None,
        }
    }
}

/// How an existing target column relates to the type a schema now wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// Every value of the wanted type fits already.
    Holds,
    /// The column must be altered to this wider type first; existing values all fit it.
    Widen(PgType),
    /// No safe change exists.
    Incompatible,
}

/// Whether a column of type `existing` can take values of type `wanted`.
pub fn fit(existing: &PgType, wanted: &PgType) -> Fit {
    use PgType as T;
    if existing == wanted {
        return Fit::Holds;
    }
    match (existing, wanted) {
        (a, b) if a.integer_rank().is_some() && b.integer_rank().is_some() => {
            if a.integer_rank() >= b.integer_rank() {
                Fit::Holds
            } else {
                Fit::Widen(b.clone())
            }
        }
        (T::Numeric(None), b) if b.integer_rank().is_some() || matches!(b, T::Numeric(_)) => {
            Fit::Holds
        }
        (T::Numeric(Some((p, s))), b) if b.integer_rank().is_some() => {
            let digits = b.integer_rank().map_or(0, |(_, digits)| digits);
            if p - s >= digits {
                Fit::Holds
            } else {
                numeric_fit(*p, *s, digits, 0)
            }
        }
        (T::Numeric(Some((p1, s1))), T::Numeric(Some((p2, s2)))) => {
            numeric_fit(*p1, *s1, p2 - s2, *s2)
        }
        (T::Numeric(Some(_)), T::Numeric(None)) => Fit::Widen(T::Numeric(None)),
        (a, T::Numeric(Some((p, s)))) if a.integer_rank().is_some() => {
            let digits = a.integer_rank().map_or(0, |(_, digits)| digits);
            if p - s >= digits {
                Fit::Widen(wanted.clone())
            } else {
                numeric_fit(digits, 0, p - s, *s)
            }
        }
        (T::Float8, T::Float4) => Fit::Holds,
        (T::Float4, T::Float8) => Fit::Widen(T::Float8),
        (T::Text, T::Varchar(_)) => Fit::Holds,
        (T::Varchar(_), T::Text) => Fit::Widen(T::Text),
        (T::Varchar(n), T::Varchar(m)) => ordered_fit(*n, *m, wanted),
        (T::Time(n), T::Time(m))
        | (T::Timestamp(n), T::Timestamp(m))
        | (T::Timestamptz(n), T::Timestamptz(m)) => ordered_fit(*n, *m, wanted),
        _ => Fit::Incompatible,
    }
}

fn ordered_fit(existing: u32, wanted: u32, wanted_type: &PgType) -> Fit {
    if existing >= wanted {
        Fit::Holds
    } else {
        Fit::Widen(wanted_type.clone())
    }
}

/// A numeric(p,s) column against values with `integer_digits` before and `scale` after the point.
fn numeric_fit(precision: u32, scale: u32, integer_digits: u32, wanted_scale: u32) -> Fit {
    let have_integer = precision - scale;
    if have_integer >= integer_digits && scale >= wanted_scale {
        return Fit::Holds;
    }
    let new_scale = scale.max(wanted_scale);
    let new_precision = have_integer.max(integer_digits) + new_scale;
    if new_precision > MAX_NUMERIC_PRECISION {
        Fit::Incompatible
    } else {
        Fit::Widen(PgType::Numeric(Some((new_precision, new_scale))))
    }
}

/// A column of an existing target table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    /// Name.
    pub name: String,
    /// Type.
    pub pg_type: PgType,
    /// Whether it allows NULL.
    pub nullable: bool,
}

/// An existing target table as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableDef {
    /// Columns in order.
    pub columns: Vec<ColumnDef>,
    /// Primary-key columns in order (empty without a primary key).
    pub primary_key: Vec<String>,
}

impl TableDef {
    fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Options that shape target tables.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Hard or soft deletes (soft adds the deleted-at column).
    pub delete_mode: DeleteMode,
    /// What to do with columns the source dropped.
    pub dropped_columns: DroppedColumns,
}

/// Why a table cannot take a schema; the table is paused with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Incompatible(pub String);

/// The columns the loader adds to every target table.
fn metadata_columns(layout: Layout) -> Vec<(&'static str, PgType, bool)> {
    let mut columns = vec![
        (POSITION_COLUMN, PgType::Bytea, false),
        (COMMIT_TIME_COLUMN, PgType::Timestamptz(6), false),
    ];
    if layout.delete_mode == DeleteMode::Soft {
        columns.push((DELETED_AT_COLUMN, PgType::Timestamptz(6), true));
    }
    columns
}

fn is_metadata(name: &str) -> bool {
    [POSITION_COLUMN, COMMIT_TIME_COLUMN, DELETED_AT_COLUMN].contains(&name)
}

/// The statements that make `existing` (or nothing) ready for rows of `schema`: `CREATE
/// TABLE` for a new table; `ADD COLUMN`, `ALTER .. TYPE` (widening only) and `DROP NOT NULL`
/// for an existing one. Empty when nothing needs to change.
pub fn plan(
    table: &TargetTable,
    existing: Option<&TableDef>,
    schema: &TableSchema,
    layout: Layout,
) -> Result<Vec<String>, Incompatible> {
    check_schema_names(schema)?;
    match existing {
        None => Ok(vec![create_table(table, schema, layout)]),
        Some(existing) => evolve(table, existing, schema, layout),
    }
}

fn check_schema_names(schema: &TableSchema) -> Result<(), Incompatible> {
    for column in &schema.columns {
        check_identifier(&column.name)
            .map_err(|reason| Incompatible(format!("column `{}`: {reason}", column.name)))?;
        if is_metadata(&column.name) {
            return Err(Incompatible(format!(
                "source column `{}` has the name of a loader metadata column",
                column.name
            )));
        }
    }
    Ok(())
}

fn create_table(table: &TargetTable, schema: &TableSchema, layout: Layout) -> String {
    let mut columns: Vec<String> = schema
        .columns
        .iter()
        .map(|column| {
            let wanted = PgType::of(&column.r#type.clone().unwrap_or_default());
            let not_null = !column.nullable || schema.key_columns.contains(&column.name);
            column_ddl(&column.name, &wanted, !not_null)
        })
        .collect();
    for (name, pg_type, nullable) in metadata_columns(layout) {
        columns.push(column_ddl(name, &pg_type, nullable));
    }
    let key: Vec<String> = schema.key_columns.iter().map(|k| quote_ident(k)).collect();
    columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
    format!(
        "CREATE TABLE {} (\n  {}\n)",
        table.quoted(),
        columns.join(",\n  ")
    )
}

fn column_ddl(name: &str, pg_type: &PgType, nullable: bool) -> String {
    let null = if nullable { "" } else { " NOT NULL" };
    format!("{} {}{null}", quote_ident(name), pg_type.ddl())
}

fn evolve(
    table: &TargetTable,
    existing: &TableDef,
    schema: &TableSchema,
    layout: Layout,
) -> Result<Vec<String>, Incompatible> {
    if existing.primary_key != schema.key_columns {
        return Err(Incompatible(format!(
            "the target's primary key ({}) is not the source key ({})",
            existing.primary_key.join(", "),
            schema.key_columns.join(", ")
        )));
    }
    let alter = format!("ALTER TABLE {}", table.quoted());
    let mut statements = Vec::new();
    for column in &schema.columns {
        let wanted = PgType::of(&column.r#type.clone().unwrap_or_default());
        let quoted = quote_ident(&column.name);
        let Some(current) = existing.column(&column.name) else {
            // Rows written before the column existed have no value for it.
            statements.push(format!(
                "{alter} ADD COLUMN {}",
                column_ddl(&column.name, &wanted, true)
            ));
            continue;
        };
        match fit(&current.pg_type, &wanted) {
            Fit::Holds => {}
            Fit::Widen(wider) => {
                statements.push(format!(
                    "{alter} ALTER COLUMN {quoted} TYPE {}",
                    wider.ddl()
                ));
            }
            Fit::Incompatible => {
                return Err(Incompatible(format!(
                    "column `{}` is {} in PostgreSQL and cannot safely take {} ({})",
                    column.name,
                    current.pg_type.ddl(),
                    wanted.ddl(),
                    column
                        .r#type
                        .as_ref()
                        .map_or("", |t| t.source_type.as_str())
                )));
            }
        }
        if column.nullable && !current.nullable {
            statements.push(format!("{alter} ALTER COLUMN {quoted} DROP NOT NULL"));
        }
    }
    for current in &existing.columns {
        let in_schema = schema.columns.iter().any(|c| c.name == current.name);
        if in_schema || is_metadata(&current.name) {
            continue;
        }
        let quoted = quote_ident(&current.name);
        match layout.dropped_columns {
            DroppedColumns::Drop => statements.push(format!("{alter} DROP COLUMN {quoted}")),
            DroppedColumns::Keep if !current.nullable => {
                statements.push(format!("{alter} ALTER COLUMN {quoted} DROP NOT NULL"));
            }
            DroppedColumns::Keep => {}
        }
    }
    for (name, pg_type, _) in metadata_columns(layout) {
        if existing.column(name).is_none() {
            statements.push(format!(
                "{alter} ADD COLUMN {}",
                column_ddl(name, &pg_type, true)
            ));
        }
    }
    Ok(statements)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdc_model::proto::{ColumnSchema, TableId};

    const HARD_KEEP: Layout = Layout {
        delete_mode: DeleteMode::Hard,
        dropped_columns: DroppedColumns::Keep,
    };

    fn column(name: &str, logical: LogicalType, length: u32, nullable: bool) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            r#type: Some(ColumnType {
                logical: logical as i32,
                length,
                precision: if logical == LogicalType::Decimal {
                    10
                } else {
                    0
                },
                scale: if logical == LogicalType::Decimal {
                    2
                } else {
                    0
                },
                source_type: String::new(),
            }),
            nullable,
        }
    }

    fn schema(columns: Vec<ColumnSchema>) -> TableSchema {
        TableSchema {
            table: Some(TableId {
                database: "shop".into(),
                schema: "dbo".into(),
                table: "orders".into(),
            }),
            capture_instance: "dbo_orders".into(),
            columns,
            key_columns: vec!["id".into()],
        }
    }

    fn target() -> TargetTable {
        TargetTable {
            schema: "public".into(),
            name: "Order \"Details\"".into(),
        }
    }

    fn existing(columns: &[(&str, PgType, bool)]) -> TableDef {
        let mut columns: Vec<ColumnDef> = columns
            .iter()
            .map(|(name, pg_type, nullable)| ColumnDef {
                name: (*name).into(),
                pg_type: pg_type.clone(),
                nullable: *nullable,
            })
            .collect();
        for (name, pg_type, nullable) in metadata_columns(HARD_KEEP) {
            columns.push(ColumnDef {
                name: name.into(),
                pg_type,
                nullable,
            });
        }
        TableDef {
            columns,
            primary_key: vec!["id".into()],
        }
    }

    #[test]
    fn a_new_table_follows_the_type_map_with_quoted_names() {
        let statements = plan(
            &target(),
            None,
            &schema(vec![
                column("id", LogicalType::Int32, 0, false),
                column("select", LogicalType::Text, 20, true),
                column("amount", LogicalType::Decimal, 0, false),
            ]),
            HARD_KEEP,
        )
        .unwrap();
        assert_eq!(
            statements,
            vec![
                "CREATE TABLE \"public\".\"Order \"\"Details\"\"\" (\n  \"id\" integer NOT NULL,\n  \"select\" varchar(20),\n  \"amount\" numeric(10,2) NOT NULL,\n  \"_cdc_position\" bytea NOT NULL,\n  \"_cdc_commit_time\" timestamptz(6) NOT NULL,\n  PRIMARY KEY (\"id\")\n)"
            ]
        );
    }

    #[test]
    fn evolution_adds_columns_widens_and_relaxes_dropped_columns() {
        let current = existing(&[
            ("id", PgType::Int4, false),
            ("note", PgType::Varchar(10), true),
            ("gone", PgType::Int4, false),
        ]);
        let wanted = schema(vec![
            column("id", LogicalType::Int64, 0, false),
            column("note", LogicalType::Text, 50, true),
            column("added", LogicalType::Bool, 0, false),
        ]);
        let statements = plan(&target(), Some(&current), &wanted, HARD_KEEP).unwrap();
        let alter = "ALTER TABLE \"public\".\"Order \"\"Details\"\"\"";
        assert_eq!(
            statements,
            vec![
                format!("{alter} ALTER COLUMN \"id\" TYPE bigint"),
                format!("{alter} ALTER COLUMN \"note\" TYPE varchar(50)"),
                format!("{alter} ADD COLUMN \"added\" boolean"),
                format!("{alter} ALTER COLUMN \"gone\" DROP NOT NULL"),
            ]
        );
        let dropping = Layout {
            dropped_columns: DroppedColumns::Drop,
            ..HARD_KEEP
        };
        let statements = plan(&target(), Some(&current), &wanted, dropping).unwrap();
        assert!(statements.contains(&format!("{alter} DROP COLUMN \"gone\"")));
    }

    #[test]
    fn an_unchanged_schema_needs_nothing() {
        let current = existing(&[("id", PgType::Int8, false), ("note", PgType::Text, true)]);
        let same = schema(vec![
            column("id", LogicalType::Int32, 0, false),
            column("note", LogicalType::Text, 30, true),
        ]);
        assert!(
            plan(&target(), Some(&current), &same, HARD_KEEP)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn unsafe_changes_are_refused_with_the_column_named() {
        let current = existing(&[("id", PgType::Int4, false), ("note", PgType::Text, true)]);
        let to_int = schema(vec![
            column("id", LogicalType::Int32, 0, false),
            column("note", LogicalType::Int32, 0, true),
        ]);
        let error = plan(&target(), Some(&current), &to_int, HARD_KEEP).unwrap_err();
        assert!(error.0.contains("column `note` is text"), "{error}");
        let mut new_key = to_int.clone();
        new_key.columns[1] = column("note", LogicalType::Text, 0, true);
        new_key.key_columns = vec!["note".into()];
        let error = plan(&target(), Some(&current), &new_key, HARD_KEEP).unwrap_err();
        assert!(error.0.contains("primary key"), "{error}");
    }

    #[test]
    fn widening_rules_keep_every_existing_value() {
        use PgType as T;
        assert_eq!(fit(&T::Int8, &T::Int2), Fit::Holds);
        assert_eq!(fit(&T::Int2, &T::Int4), Fit::Widen(T::Int4));
        assert_eq!(
            fit(&T::Numeric(Some((10, 2))), &T::Numeric(Some((12, 4)))),
            Fit::Widen(T::Numeric(Some((12, 4))))
        );
        assert_eq!(
            fit(&T::Numeric(Some((10, 4))), &T::Numeric(Some((10, 2)))),
            Fit::Widen(T::Numeric(Some((12, 4))))
        );
        assert_eq!(fit(&T::Numeric(Some((19, 0))), &T::Int8), Fit::Holds);
        assert_eq!(
            fit(&T::Int4, &T::Numeric(Some((12, 2)))),
            Fit::Widen(T::Numeric(Some((12, 2))))
        );
        assert_eq!(fit(&T::Varchar(10), &T::Varchar(5)), Fit::Holds);
        assert_eq!(fit(&T::Varchar(10), &T::Text), Fit::Widen(T::Text));
        assert_eq!(
            fit(&T::Timestamp(3), &T::Timestamp(6)),
            Fit::Widen(T::Timestamp(6))
        );
        assert_eq!(fit(&T::Text, &T::Int4), Fit::Incompatible);
        assert_eq!(fit(&T::Int8, &T::Float8), Fit::Incompatible);
    }

    #[test]
    fn ddl_types_agree_with_the_shared_type_map() {
        for logical in 1..=16 {
            for (length, precision, scale) in [(0, 12, 3), (40, 38, 7)] {
                let column_type = ColumnType {
                    logical,
                    length,
                    precision,
                    scale,
                    source_type: String::new(),
                };
                assert_eq!(
                    PgType::of(&column_type).ddl(),
                    cdc_model::typemap::postgres_type(&column_type)
                );
            }
        }
    }

    #[test]
    fn catalog_types_read_back_as_created() {
        assert_eq!(
            PgType::from_catalog("numeric", (12 << 16 | 4) + 4),
            PgType::Numeric(Some((12, 4)))
        );
        assert_eq!(PgType::from_catalog("numeric", -1), PgType::Numeric(None));
        assert_eq!(PgType::from_catalog("varchar", 54), PgType::Varchar(50));
        assert_eq!(PgType::from_catalog("varchar", -1), PgType::Text);
        assert_eq!(PgType::from_catalog("timestamp", -1), PgType::Timestamp(6));
        assert_eq!(PgType::from_catalog("time", 3), PgType::Time(3));
        assert_eq!(
            PgType::from_catalog("point", -1),
            PgType::Other("point".into())
        );
    }
}

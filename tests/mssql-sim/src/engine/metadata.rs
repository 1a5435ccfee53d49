//! Schema metadata an extractor reads: `INFORMATION_SCHEMA.TABLES`, `COLUMNS`,
//! `TABLE_CONSTRAINTS`, `KEY_COLUMN_USAGE`, and `sys.schemas`, `sys.tables`, `sys.columns`,
//! `sys.types`, `sys.databases`. Decimal columns report `numeric`, and text/ntext/image report
//! their `(max)` equivalents, which is how the simulator stores them.

use super::catalog::{Catalog, Column, Database, Row, Table};
use super::relations::{Materialised, SYSNAME, column, type_name};
use crate::tds::types::{SqlType, SqlValue};

fn text(value: &str) -> SqlValue {
    SqlValue::Text(value.to_owned())
}

fn int(value: i64) -> SqlValue {
    SqlValue::Int(value)
}

/// `INFORMATION_SCHEMA.<view>` of `db`, if `view` is one.
pub fn information_schema(db: &Database, view: &str) -> Option<Materialised> {
    let tables = || db.tables.values();
    let catalog = text(&db.name);
    Some(match view.to_uppercase().as_str() {
        "TABLES" => Materialised {
            columns: ["TABLE_CATALOG", "TABLE_SCHEMA", "TABLE_NAME"]
                .iter()
                .map(|n| column(n, SYSNAME))
                .chain([column("TABLE_TYPE", SqlType::VarChar { length: Some(10) })])
                .collect(),
            rows: tables()
                .map(|t| {
                    vec![
                        catalog.clone(),
                        text(&t.schema),
                        text(&t.name),
                        text("BASE TABLE"),
                    ]
                })
                .collect(),
        },
        "COLUMNS" => Materialised {
            columns: vec![
                column("TABLE_CATALOG", SYSNAME),
                column("TABLE_SCHEMA", SYSNAME),
                column("TABLE_NAME", SYSNAME),
                column("COLUMN_NAME", SYSNAME),
                column("ORDINAL_POSITION", SqlType::Int),
                column("IS_NULLABLE", SqlType::VarChar { length: Some(3) }),
                column("DATA_TYPE", SYSNAME),
                column("CHARACTER_MAXIMUM_LENGTH", SqlType::Int),
                column("NUMERIC_PRECISION", SqlType::TinyInt),
                column("NUMERIC_SCALE", SqlType::Int),
                column("DATETIME_PRECISION", SqlType::SmallInt),
            ],
            rows: tables()
                .flat_map(|t| {
                    t.columns
                        .iter()
                        .enumerate()
                        .map(|(i, c)| information_schema_column(&catalog, t, i, c))
                })
                .collect(),
        },
        "TABLE_CONSTRAINTS" => Materialised {
            columns: [
                "CONSTRAINT_CATALOG",
                "CONSTRAINT_SCHEMA",
                "CONSTRAINT_NAME",
                "TABLE_CATALOG",
                "TABLE_SCHEMA",
                "TABLE_NAME",
            ]
            .iter()
            .map(|n| column(n, SYSNAME))
            .chain([column(
                "CONSTRAINT_TYPE",
                SqlType::VarChar { length: Some(11) },
            )])
            .collect(),
            rows: tables()
                .filter(|t| !t.primary_key.is_empty())
                .map(|t| {
                    vec![
                        catalog.clone(),
                        text(&t.schema),
                        text(&t.primary_key_name),
                        catalog.clone(),
                        text(&t.schema),
                        text(&t.name),
                        text("PRIMARY KEY"),
                    ]
                })
                .collect(),
        },
        "KEY_COLUMN_USAGE" => Materialised {
            columns: [
                "CONSTRAINT_CATALOG",
                "CONSTRAINT_SCHEMA",
                "CONSTRAINT_NAME",
                "TABLE_CATALOG",
                "TABLE_SCHEMA",
                "TABLE_NAME",
                "COLUMN_NAME",
            ]
            .iter()
            .map(|n| column(n, SYSNAME))
            .chain([column("ORDINAL_POSITION", SqlType::Int)])
            .collect(),
            rows: tables()
                .flat_map(|t| {
                    let catalog = catalog.clone();
                    t.primary_key.iter().enumerate().map(move |(n, i)| {
                        vec![
                            catalog.clone(),
                            text(&t.schema),
                            text(&t.primary_key_name),
                            catalog.clone(),
                            text(&t.schema),
                            text(&t.name),
                            text(&t.columns[*i].name),
                            int(n as i64 + 1),
                        ]
                    })
                })
                .collect(),
        },
        _ => return None,
    })
}

fn information_schema_column(catalog: &SqlValue, table: &Table, index: usize, c: &Column) -> Row {
    let (precision, scale, datetime_precision) = numeric_facts(c.sql_type);
    vec![
        catalog.clone(),
        text(&table.schema),
        text(&table.name),
        text(&c.name),
        int(index as i64 + 1),
        text(if c.nullable { "YES" } else { "NO" }),
        text(&type_name(c.sql_type)),
        character_length(c.sql_type).map_or(SqlValue::Null, int),
        precision.map_or(SqlValue::Null, int),
        scale.map_or(SqlValue::Null, int),
        datetime_precision.map_or(SqlValue::Null, int),
    ]
}

/// `sys.<view>` of `db` in `catalog`, if `view` is one.
pub fn sys_view(catalog: &Catalog, db: &Database, view: &str) -> Option<Materialised> {
    let schema_id = |schema: &str| -> i64 {
        let mut names: Vec<String> = db
            .tables
            .values()
            .map(|t| t.schema.to_lowercase())
            .filter(|s| s != "dbo")
            .collect();
        names.sort();
        names.dedup();
        if schema.eq_ignore_ascii_case("dbo") {
            1
        } else {
            5 + names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(schema))
                .unwrap_or(0) as i64
        }
    };
    let captured = |t: &Table| {
        db.cdc
            .instances
            .iter()
            .any(|i| i.source_object_id == t.object_id)
    };
    Some(match view.to_lowercase().as_str() {
        "schemas" => {
            let mut names: Vec<String> = db.schemas.iter().cloned().collect();
            names.push("dbo".to_owned());
            names.sort_by_key(|n| n.to_lowercase());
            names.dedup_by_key(|n| n.to_lowercase());
            Materialised {
                columns: vec![column("name", SYSNAME), column("schema_id", SqlType::Int)],
                rows: names
                    .iter()
                    .map(|n| vec![text(n), int(schema_id(n))])
                    .collect(),
            }
        }
        "tables" => Materialised {
            columns: vec![
                column("name", SYSNAME),
                column("object_id", SqlType::Int),
                column("schema_id", SqlType::Int),
                column("is_tracked_by_cdc", SqlType::Bit),
            ],
            rows: db
                .tables
                .values()
                .map(|t| {
                    vec![
                        text(&t.name),
                        int(i64::from(t.object_id)),
                        int(schema_id(&t.schema)),
                        SqlValue::Bit(captured(t)),
                    ]
                })
                .collect(),
        },
        "columns" => Materialised {
            columns: vec![
                column("object_id", SqlType::Int),
                column("name", SYSNAME),
                column("column_id", SqlType::Int),
                column("system_type_id", SqlType::TinyInt),
                column("user_type_id", SqlType::Int),
                column("max_length", SqlType::SmallInt),
                column("precision", SqlType::TinyInt),
                column("scale", SqlType::TinyInt),
                column("is_nullable", SqlType::Bit),
                column("is_identity", SqlType::Bit),
            ],
            rows: db
                .tables
                .values()
                .flat_map(|t| {
                    t.columns.iter().map(move |c| {
                        let (precision, scale, datetime_precision) = numeric_facts(c.sql_type);
                        let type_id = system_type_id(c.sql_type);
                        vec![
                            int(i64::from(t.object_id)),
                            text(&c.name),
                            int(i64::from(c.column_id)),
                            int(type_id),
                            int(type_id),
                            int(max_length(c.sql_type)),
                            int(precision.unwrap_or(0)),
                            int(scale.or(datetime_precision).unwrap_or(0)),
                            SqlValue::Bit(c.nullable),
                            SqlValue::Bit(c.identity),
                        ]
                    })
                })
                .collect(),
        },
        "databases" => Materialised {
            columns: vec![
                column("name", SYSNAME),
                column("database_id", SqlType::Int),
                column("is_cdc_enabled", SqlType::Bit),
            ],
            rows: catalog
                .databases
                .values()
                .enumerate()
                .map(|(i, d)| {
                    vec![
                        text(&d.name),
                        int(i as i64 + 1),
                        SqlValue::Bit(d.cdc.enabled),
                    ]
                })
                .collect(),
        },
        _ => return None,
    })
}

fn character_length(sql_type: SqlType) -> Option<i64> {
    match sql_type {
        SqlType::Char { length } | SqlType::NChar { length } | SqlType::Binary { length } => {
            Some(i64::from(length))
        }
        SqlType::VarChar { length }
        | SqlType::NVarChar { length }
        | SqlType::VarBinary { length } => Some(length.map_or(-1, i64::from)),
        _ => None,
    }
}

/// (NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION) as SQL Server reports them.
fn numeric_facts(sql_type: SqlType) -> (Option<i64>, Option<i64>, Option<i64>) {
    match sql_type {
        SqlType::TinyInt => (Some(3), Some(0), None),
        SqlType::SmallInt => (Some(5), Some(0), None),
        SqlType::Int => (Some(10), Some(0), None),
        SqlType::BigInt => (Some(19), Some(0), None),
        SqlType::Decimal { precision, scale } => {
            (Some(i64::from(precision)), Some(i64::from(scale)), None)
        }
        SqlType::Money => (Some(19), Some(4), None),
        SqlType::SmallMoney => (Some(10), Some(4), None),
        SqlType::Float => (Some(53), None, None),
        SqlType::Real => (Some(24), None, None),
        SqlType::Date | SqlType::SmallDateTime => (None, None, Some(0)),
        SqlType::DateTime => (None, None, Some(3)),
        SqlType::Time { scale }
        | SqlType::DateTime2 { scale }
        | SqlType::DateTimeOffset { scale } => (None, None, Some(i64::from(scale))),
        _ => (None, None, None),
    }
}

/// `sys.columns.max_length`: bytes, -1 for `(max)`.
fn max_length(sql_type: SqlType) -> i64 {
    match sql_type {
        SqlType::Bit | SqlType::TinyInt => 1,
        SqlType::SmallInt => 2,
        SqlType::Int | SqlType::Real | SqlType::SmallMoney | SqlType::SmallDateTime => 4,
        SqlType::BigInt | SqlType::Float | SqlType::Money | SqlType::DateTime => 8,
        SqlType::Decimal { precision, .. } => i64::from(crate::tds::types::decimal_len(precision)),
        SqlType::Date => 3,
        SqlType::Time { scale } => i64::from(crate::tds::types::time_len(scale)),
        SqlType::DateTime2 { scale } => i64::from(crate::tds::types::time_len(scale)) + 3,
        SqlType::DateTimeOffset { scale } => i64::from(crate::tds::types::time_len(scale)) + 5,
        SqlType::Char { length } | SqlType::Binary { length } => i64::from(length),
        SqlType::NChar { length } => i64::from(length) * 2,
        SqlType::VarChar { length } | SqlType::VarBinary { length } => length.map_or(-1, i64::from),
        SqlType::NVarChar { length } => length.map_or(-1, |l| i64::from(l) * 2),
        SqlType::UniqueIdentifier => 16,
        SqlType::Xml => -1,
    }
}

/// `sys.types.system_type_id`.
fn system_type_id(sql_type: SqlType) -> i64 {
    match sql_type {
        SqlType::Bit => 104,
        SqlType::TinyInt => 48,
        SqlType::SmallInt => 52,
        SqlType::Int => 56,
        SqlType::BigInt => 127,
        SqlType::Decimal { .. } => 108,
        SqlType::Money => 60,
        SqlType::SmallMoney => 122,
        SqlType::Float => 62,
        SqlType::Real => 59,
        SqlType::Date => 40,
        SqlType::Time { .. } => 41,
        SqlType::DateTime => 61,
        SqlType::SmallDateTime => 58,
        SqlType::DateTime2 { .. } => 42,
        SqlType::DateTimeOffset { .. } => 43,
        SqlType::Char { .. } => 175,
        SqlType::VarChar { .. } => 167,
        SqlType::NChar { .. } => 239,
        SqlType::NVarChar { .. } => 231,
        SqlType::Binary { .. } => 173,
        SqlType::VarBinary { .. } => 165,
        SqlType::UniqueIdentifier => 36,
        SqlType::Xml => 241,
    }
}

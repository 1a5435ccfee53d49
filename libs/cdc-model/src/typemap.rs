//! The SQL Server to PostgreSQL type map: SQL Server types become logical column types, and
//! logical types become PostgreSQL DDL.
//!
//! | SQL Server | logical | PostgreSQL |
//! |---|---|---|
//! | bit | BOOL | boolean |
//! | tinyint, smallint | INT16 | smallint |
//! | int / bigint | INT32 / INT64 | integer / bigint |
//! | decimal(p,s), numeric(p,s) | DECIMAL(p,s) | numeric(p,s) |
//! | money / smallmoney | DECIMAL(19,4) / DECIMAL(10,4) | numeric(19,4) / numeric(10,4) |
//! | float / real | FLOAT64 / FLOAT32 | double precision / real |
//! | date | DATE | date |
//! | time(n) | TIME(n) | time(min(n,6)) |
//! | datetime, datetime2(n), smalldatetime | TIMESTAMP(3 / n / 0) | timestamp(min(n,6)) |
//! | datetimeoffset(n) | TIMESTAMPTZ(n) | timestamptz(min(n,6)) |
//! | char, varchar, nchar, nvarchar(n) | TEXT(n) | varchar(n) |
//! | varchar(max), nvarchar(max), text, ntext | TEXT | text |
//! | binary, varbinary, image, rowversion/timestamp | BYTES | bytea |
//! | uniqueidentifier | UUID | uuid |
//! | xml | XML | xml |
//! | sql_variant, hierarchyid, geography, geometry, others | refused, naming the column | |

use crate::error::{Error, Result};
use crate::proto::{ColumnType, LogicalType};

/// A column's type as SQL Server's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlServerType {
    /// Type name, e.g. `nvarchar` (any case).
    pub name: String,
    /// Length in characters for character types, bytes for binary types; -1 for `max`.
    pub length: i32,
    /// Precision of decimals.
    pub precision: u32,
    /// Scale of decimals; fractional-second digits of time types.
    pub scale: u32,
}

/// The logical type of a SQL Server column named `column`.
pub fn logical_type(column: &str, source: &SqlServerType) -> Result<ColumnType> {
    let name = source.name.to_ascii_lowercase();
    let length = || u32::try_from(source.length).unwrap_or(0);
    let time_scale = || source.scale.min(7);
    let (logical, length, precision, scale) = match name.as_str() {
        "bit" => (LogicalType::Bool, 0, 0, 0),
        "tinyint" | "smallint" => (LogicalType::Int16, 0, 0, 0),
        "int" => (LogicalType::Int32, 0, 0, 0),
        "bigint" => (LogicalType::Int64, 0, 0, 0),
        "decimal" | "numeric" => (LogicalType::Decimal, 0, source.precision, source.scale),
        "money" => (LogicalType::Decimal, 0, 19, 4),
        "smallmoney" => (LogicalType::Decimal, 0, 10, 4),
        "float" => (LogicalType::Float64, 0, 0, 0),
        "real" => (LogicalType::Float32, 0, 0, 0),
        "date" => (LogicalType::Date, 0, 0, 0),
        "time" => (LogicalType::Time, 0, 0, time_scale()),
        "datetime2" => (LogicalType::Timestamp, 0, 0, time_scale()),
        "datetime" => (LogicalType::Timestamp, 0, 0, 3),
        "smalldatetime" => (LogicalType::Timestamp, 0, 0, 0),
        "datetimeoffset" => (LogicalType::Timestamptz, 0, 0, time_scale()),
        "char" | "varchar" | "nchar" | "nvarchar" => (LogicalType::Text, length(), 0, 0),
        "text" | "ntext" => (LogicalType::Text, 0, 0, 0),
        "binary" | "varbinary" => (LogicalType::Bytes, length(), 0, 0),
        "image" => (LogicalType::Bytes, 0, 0, 0),
        "rowversion" | "timestamp" => (LogicalType::Bytes, 8, 0, 0),
        "uniqueidentifier" => (LogicalType::Uuid, 0, 0, 0),
        "xml" => (LogicalType::Xml, 0, 0, 0),
        "sql_variant" | "hierarchyid" | "geography" | "geometry" => {
            return Err(unsupported(
                column,
                &source.name,
                "no PostgreSQL type carries it exactly; exclude the column by rule",
            ));
        }
        _ => {
            return Err(unsupported(
                column,
                &source.name,
                "unknown type; exclude the column by rule",
            ));
        }
    };
    if logical == LogicalType::Decimal && (precision == 0 || precision > 38 || scale > precision) {
        return Err(unsupported(
            column,
            &source.name,
            "decimal precision must be 1..=38 and scale at most the precision",
        ));
    }
    Ok(ColumnType {
        logical: logical as i32,
        length,
        precision,
        scale,
        source_type: declared(source),
    })
}

/// The PostgreSQL type of a logical column type, as written in DDL.
pub fn postgres_type(column_type: &ColumnType) -> String {
    let sub_second = column_type.scale.min(6);
    match LogicalType::try_from(column_type.logical).unwrap_or(LogicalType::Unspecified) {
        LogicalType::Bool => "boolean".to_owned(),
        LogicalType::Int16 => "smallint".to_owned(),
        LogicalType::Int32 => "integer".to_owned(),
        LogicalType::Int64 => "bigint".to_owned(),
        LogicalType::Decimal => format!("numeric({},{})", column_type.precision, column_type.scale),
        LogicalType::Float32 => "real".to_owned(),
        LogicalType::Float64 => "double precision".to_owned(),
        LogicalType::Date => "date".to_owned(),
        LogicalType::Time => format!("time({sub_second})"),
        LogicalType::Timestamp => format!("timestamp({sub_second})"),
        LogicalType::Timestamptz => format!("timestamptz({sub_second})"),
        LogicalType::Text if column_type.length > 0 => format!("varchar({})", column_type.length),
        LogicalType::Text => "text".to_owned(),
        LogicalType::Bytes => "bytea".to_owned(),
        LogicalType::Uuid => "uuid".to_owned(),
        LogicalType::Json => "jsonb".to_owned(),
        LogicalType::Xml => "xml".to_owned(),
        // A published schema never holds it (schema validation refuses it).
        LogicalType::Unspecified => "text".to_owned(),
    }
}

fn unsupported(column: &str, type_name: &str, reason: &'static str) -> Error {
    Error::UnsupportedType {
        column: column.to_owned(),
        type_name: type_name.to_owned(),
        reason,
    }
}

fn declared(source: &SqlServerType) -> String {
    let name = source.name.to_ascii_lowercase();
    match name.as_str() {
        "decimal" | "numeric" => format!("{name}({},{})", source.precision, source.scale),
        "time" | "datetime2" | "datetimeoffset" => format!("{name}({})", source.scale),
        "char" | "varchar" | "nchar" | "nvarchar" | "binary" | "varbinary" if source.length < 0 => {
            format!("{name}(max)")
        }
        "char" | "varchar" | "nchar" | "nvarchar" | "binary" | "varbinary" => {
            format!("{name}({})", source.length)
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(name: &str, length: i32, precision: u32, scale: u32) -> String {
        let source = SqlServerType {
            name: name.into(),
            length,
            precision,
            scale,
        };
        postgres_type(&logical_type("c", &source).unwrap())
    }

    #[test]
    fn the_design_type_map_holds() {
        assert_eq!(map("bit", 0, 0, 0), "boolean");
        assert_eq!(map("tinyint", 0, 0, 0), "smallint");
        assert_eq!(map("INT", 0, 0, 0), "integer");
        assert_eq!(map("bigint", 0, 0, 0), "bigint");
        assert_eq!(map("decimal", 0, 38, 10), "numeric(38,10)");
        assert_eq!(map("money", 0, 0, 0), "numeric(19,4)");
        assert_eq!(map("smallmoney", 0, 0, 0), "numeric(10,4)");
        assert_eq!(map("float", 0, 0, 0), "double precision");
        assert_eq!(map("real", 0, 0, 0), "real");
        assert_eq!(map("time", 0, 0, 7), "time(6)");
        assert_eq!(map("datetime2", 0, 0, 3), "timestamp(3)");
        assert_eq!(map("datetime", 0, 0, 0), "timestamp(3)");
        assert_eq!(map("smalldatetime", 0, 0, 0), "timestamp(0)");
        assert_eq!(map("datetimeoffset", 0, 0, 7), "timestamptz(6)");
        assert_eq!(map("nvarchar", 50, 0, 0), "varchar(50)");
        assert_eq!(map("nvarchar", -1, 0, 0), "text");
        assert_eq!(map("ntext", 0, 0, 0), "text");
        assert_eq!(map("varbinary", -1, 0, 0), "bytea");
        assert_eq!(map("rowversion", 0, 0, 0), "bytea");
        assert_eq!(map("uniqueidentifier", 0, 0, 0), "uuid");
        assert_eq!(map("xml", 0, 0, 0), "xml");
    }

    #[test]
    fn unsupported_types_name_the_column() {
        let source = SqlServerType {
            name: "geography".into(),
            length: 0,
            precision: 0,
            scale: 0,
        };
        let error = logical_type("location", &source).unwrap_err().to_string();
        assert!(
            error.starts_with("column `location`: SQL Server type `geography` is not supported"),
            "{error}"
        );
    }

    #[test]
    fn the_declared_source_type_is_kept() {
        let source = SqlServerType {
            name: "nvarchar".into(),
            length: -1,
            precision: 0,
            scale: 0,
        };
        assert_eq!(
            logical_type("c", &source).unwrap().source_type,
            "nvarchar(max)"
        );
    }
}

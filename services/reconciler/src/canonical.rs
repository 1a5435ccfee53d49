//! The canonical form of `cdc_model::canonical`, written as SQL for each engine, so that both
//! databases hash the same bytes for equal data and the rows never leave them for the
//! checksum pass.
//!
//! Per column, each engine renders the canonical text (see the table in
//! [`cdc_model::canonical`]) with its own functions; the encoding of a value is `-` for NULL,
//! else the text's UTF-8 byte length in decimal, `:` and the text
//! ([`cdc_model::canonical::canonical_row`]); a row's encoding is its columns' encodings in
//! order, and its UTF-8 bytes are hashed with SHA-256. Rows are
//! grouped into buckets by the first four bytes of the SHA-256 of their key's encoding, so a
//! row lands in the same bucket in both databases whatever each engine's collation or key
//! order; a bucket's checksum is its row count and the sum of the first eight bytes of each
//! row hash (as a signed 64-bit integer, summed without overflow).

use std::fmt::Write as _;

use cdc_extractor::sql::quote as mssql_ident;
use cdc_loader::naming::quote_ident as pg_ident;

/// How a source column is rendered: one per SQL Server type family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `bit`.
    Bit,
    /// `tinyint`, `smallint`, `int`, `bigint`.
    Integer,
    /// `decimal`, `numeric`.
    Decimal,
    /// `money` (as `decimal(19,4)`).
    Money,
    /// `smallmoney` (as `decimal(10,4)`).
    SmallMoney,
    /// `float`.
    Float,
    /// `real` (widened to `float` exactly).
    Real,
    /// `date`.
    Date,
    /// `time(n)`.
    Time,
    /// `datetime` (3.33 ms ticks, shown as milliseconds).
    DateTime,
    /// `datetime2(n)`, `smalldatetime`.
    DateTime2,
    /// `datetimeoffset(n)` (the instant in UTC).
    DateTimeOffset,
    /// `char`, `varchar`, `nchar`, `nvarchar`.
    Text,
    /// `text`, `ntext`, `xml` (read as `nvarchar(max)`).
    LargeText,
    /// `binary`, `varbinary`, `rowversion`.
    Binary,
    /// `image` (read as `varbinary(max)`).
    Image,
    /// `uniqueidentifier`.
    Uuid,
}

/// How a target column is rendered: one per PostgreSQL type family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// `boolean`.
    Bool,
    /// `smallint`, `integer`, `bigint`.
    Integer,
    /// `numeric`.
    Numeric,
    /// `double precision`.
    Float8,
    /// `real`.
    Float4,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `timestamp`.
    Timestamp,
    /// `timestamptz`.
    Timestamptz,
    /// `text`, `varchar`, `char`, `xml`, `json`, `jsonb`.
    Text,
    /// `bytea`.
    Bytes,
    /// `uuid`.
    Uuid,
}

impl SourceKind {
    /// The kind of a SQL Server type as declared (`nvarchar(40)`, `decimal(12,2)`, `int`);
    /// None for types outside the type map.
    pub fn of_declared(declared: &str) -> Option<SourceKind> {
        let base = declared
            .split('(')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        Some(match base.as_str() {
            "bit" => SourceKind::Bit,
            "tinyint" | "smallint" | "int" | "bigint" => SourceKind::Integer,
            "decimal" | "numeric" => SourceKind::Decimal,
            "money" => SourceKind::Money,
            "smallmoney" => SourceKind::SmallMoney,
            "float" => SourceKind::Float,
            "real" => SourceKind::Real,
            "date" => SourceKind::Date,
            "time" => SourceKind::Time,
            "datetime" => SourceKind::DateTime,
            "datetime2" | "smalldatetime" => SourceKind::DateTime2,
            "datetimeoffset" => SourceKind::DateTimeOffset,
            "char" | "varchar" | "nchar" | "nvarchar" => SourceKind::Text,
            "text" | "ntext" | "xml" => SourceKind::LargeText,
            "binary" | "varbinary" | "rowversion" | "timestamp" => SourceKind::Binary,
            "image" => SourceKind::Image,
            "uniqueidentifier" => SourceKind::Uuid,
            _ => return None,
        })
    }

    /// Whether values of this kind can be compared with a target column of `target` kind.
    pub fn compares_with(self, target: TargetKind) -> bool {
        use SourceKind as S;
        use TargetKind as T;
        matches!(
            (self, target),
            (S::Bit, T::Bool)
                | (S::Integer, T::Integer)
                | (S::Decimal | S::Money | S::SmallMoney, T::Numeric)
                | (S::Float, T::Float8)
                | (S::Real, T::Float4 | T::Float8)
                | (S::Date, T::Date)
                | (S::Time, T::Time)
                | (S::DateTime | S::DateTime2, T::Timestamp)
                | (S::DateTimeOffset, T::Timestamptz)
                | (S::Text | S::LargeText, T::Text)
                | (S::Binary | S::Image, T::Bytes)
                | (S::Uuid, T::Uuid)
        )
    }

    /// Whether the canonical text can hold characters outside ASCII.
    fn is_textual(self) -> bool {
        matches!(self, SourceKind::Text | SourceKind::LargeText)
    }
}

impl TargetKind {
    /// The kind of a PostgreSQL column from `information_schema.columns.data_type`; None for
    /// types the canonical form does not cover.
    pub fn of_data_type(data_type: &str) -> Option<TargetKind> {
        Some(match data_type {
            "boolean" => TargetKind::Bool,
            "smallint" | "integer" | "bigint" => TargetKind::Integer,
            "numeric" => TargetKind::Numeric,
            "double precision" => TargetKind::Float8,
            "real" => TargetKind::Float4,
            "date" => TargetKind::Date,
            "time without time zone" => TargetKind::Time,
            "timestamp without time zone" => TargetKind::Timestamp,
            "timestamp with time zone" => TargetKind::Timestamptz,
            "text" | "character varying" | "character" | "xml" | "json" | "jsonb" => {
                TargetKind::Text
            }
            "bytea" => TargetKind::Bytes,
            "uuid" => TargetKind::Uuid,
            _ => return None,
        })
    }
}

/// One column compared: its SQL in each database and how each renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPair {
    /// Name in SQL Server (reports use it).
    pub source_name: String,
    /// Name in PostgreSQL.
    pub target_name: String,
    /// SQL Server rendering.
    pub source: SourceKind,
    /// PostgreSQL rendering.
    pub target: TargetKind,
}

/// SQL Server: the canonical text of `column` (varchar or nvarchar; NULL for NULL).
pub fn source_text(kind: SourceKind, column: &str) -> String {
    let c = mssql_ident(column);
    let float_bits = |value: &str| {
        format!(
            "CASE WHEN {c} = 0 THEN '0000000000000000' \
             ELSE LOWER(CONVERT(varchar(16), CAST({value} AS binary(8)), 2)) END"
        )
    };
    match kind {
        SourceKind::Bit => format!("CAST({c} AS varchar(1))"),
        SourceKind::Integer => format!("CAST({c} AS varchar(20))"),
        SourceKind::Decimal => format!("CAST({c} AS varchar(50))"),
        SourceKind::Money => format!("CAST(CAST({c} AS decimal(19,4)) AS varchar(50))"),
        SourceKind::SmallMoney => format!("CAST(CAST({c} AS decimal(10,4)) AS varchar(50))"),
        SourceKind::Float => float_bits(&c),
        SourceKind::Real => float_bits(&format!("CAST({c} AS float)")),
        SourceKind::Date => format!("CONVERT(varchar(10), {c}, 23)"),
        SourceKind::Time => format!("CAST(CAST({c} AS time(6)) AS varchar(15))"),
        // Milliseconds first: the extractor reports a datetime as SQL Server shows it.
        SourceKind::DateTime => {
            format!("CONVERT(varchar(26), CAST(CAST({c} AS datetime2(3)) AS datetime2(6)), 121)")
        }
        SourceKind::DateTime2 => format!("CONVERT(varchar(26), CAST({c} AS datetime2(6)), 121)"),
        SourceKind::DateTimeOffset => format!(
            "CONVERT(varchar(26), CAST(SWITCHOFFSET({c}, '+00:00') AS datetime2(6)), 121) + '+00:00'"
        ),
        SourceKind::Text => c,
        SourceKind::LargeText => format!("CAST({c} AS nvarchar(max))"),
        SourceKind::Binary => format!("LOWER(CONVERT(varchar(max), {c}, 2))"),
        SourceKind::Image => {
            format!("LOWER(CONVERT(varchar(max), CAST({c} AS varbinary(max)), 2))")
        }
        SourceKind::Uuid => format!("LOWER(CAST({c} AS char(36)))"),
    }
}

/// PostgreSQL: the canonical text of `r.column` (text; NULL for NULL).
pub fn target_text(kind: TargetKind, column: &str) -> String {
    let c = format!("r.{}", pg_ident(column));
    let float_bits = |value: &str| {
        format!(
            "CASE WHEN {c} = 0 THEN '0000000000000000' ELSE encode(float8send({value}), 'hex') END"
        )
    };
    match kind {
        TargetKind::Bool => format!("({c})::int::text"),
        TargetKind::Integer | TargetKind::Numeric | TargetKind::Uuid => format!("({c})::text"),
        TargetKind::Float8 => float_bits(&c),
        TargetKind::Float4 => float_bits(&format!("({c})::float8")),
        TargetKind::Date => format!("to_char({c}, 'YYYY-MM-DD')"),
        TargetKind::Time => format!("to_char({c}, 'HH24:MI:SS.US')"),
        TargetKind::Timestamp => format!("to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')"),
        TargetKind::Timestamptz => {
            format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'")
        }
        TargetKind::Text => format!("({c})::text"),
        TargetKind::Bytes => format!("encode({c}, 'hex')"),
    }
}

/// SQL Server: the encoding of one value (varchar; UTF-8 for text).
fn source_encoding(kind: SourceKind, column: &str) -> String {
    let text = source_text(kind, column);
    let text = if kind.is_textual() {
        // The bytes are UTF-8 once the collation says so (SQL Server 2019 and later).
        format!("CAST(CAST({text} AS nvarchar(max)) COLLATE {UTF8_COLLATION} AS varchar(max))")
    } else {
        // ASCII, alike in every code page.
        text
    };
    format!("ISNULL(CAST(DATALENGTH({text}) AS varchar(11)) + ':' + {text}, '-')")
}

/// PostgreSQL: the encoding of one value (text; the database's encoding is UTF-8).
fn target_encoding(kind: TargetKind, column: &str) -> String {
    let text = target_text(kind, column);
    format!("coalesce(octet_length({text}) || ':' || {text}, '-')")
}

/// The collation that makes SQL Server's varchar UTF-8.
const UTF8_COLLATION: &str = "Latin1_General_100_BIN2_UTF8";

/// One table's comparison, as SQL for both databases.
#[derive(Debug, Clone)]
pub struct TableSql {
    /// `[schema].[table]` in SQL Server.
    pub source_table: String,
    /// `"schema"."table"` in PostgreSQL.
    pub target_table: String,
    /// Key columns first, in key order, then the other compared columns.
    pub columns: Vec<ColumnPair>,
    /// How many of `columns` are the key.
    pub key_len: usize,
    /// Extra condition on target rows (soft deletes), or None.
    pub target_filter: Option<String>,
}

impl TableSql {
    /// SQL Server: the row's encoding as UTF-8 bytes (varbinary). Starts from a
    /// `varchar(max)` so that a long row is never cut at 8000 bytes.
    fn source_row_encoding(&self, columns: &[ColumnPair]) -> String {
        let fields: Vec<String> = columns
            .iter()
            .map(|c| source_encoding(c.source, &c.source_name))
            .collect();
        format!(
            "CAST(CAST('' AS varchar(max)) COLLATE {UTF8_COLLATION} + {} AS varbinary(max))",
            fields.join(" + ")
        )
    }

    /// PostgreSQL: the row's encoding as UTF-8 bytes (bytea).
    fn target_row_encoding(&self, columns: &[ColumnPair]) -> String {
        let fields: Vec<String> = columns
            .iter()
            .map(|c| target_encoding(c.target, &c.target_name))
            .collect();
        format!("convert_to({}, 'UTF8')", fields.join(" || "))
    }

    /// Whether the key is one integer column: its buckets are the key modulo the bucket
    /// count (sequential keys spread evenly, and neither database has to hash the key).
    fn integer_key(&self) -> bool {
        self.key_len == 1
            && self
                .columns
                .first()
                .is_some_and(|c| c.source == SourceKind::Integer)
    }

    fn source_bucket(&self, buckets: u32) -> String {
        if self.integer_key() {
            let key = mssql_ident(&self.columns[0].source_name);
            return format!("(CAST({key} AS bigint) % {buckets} + {buckets}) % {buckets}");
        }
        format!(
            "CAST(SUBSTRING(HASHBYTES('SHA2_256', {}), 1, 4) AS bigint) % {buckets}",
            self.source_row_encoding(&self.columns[..self.key_len])
        )
    }

    fn target_bucket(&self, buckets: u32) -> String {
        if self.integer_key() {
            let key = format!("r.{}", pg_ident(&self.columns[0].target_name));
            return format!("(({key})::bigint % {buckets} + {buckets}) % {buckets}");
        }
        format!(
            "('x00000000' || encode(substr(sha256({}), 1, 4), 'hex'))::bit(64)::bigint % {buckets}",
            self.target_row_encoding(&self.columns[..self.key_len])
        )
    }

    fn target_where(&self, condition: Option<String>) -> String {
        let conditions: Vec<String> = self
            .target_filter
            .iter()
            .cloned()
            .chain(condition)
            .collect();
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        }
    }

    /// The bucket of a key from its columns' canonical texts, as both databases compute it.
    pub fn bucket_of(&self, key: &[Option<String>], buckets: u32) -> u32 {
        use sha2::{Digest, Sha256};
        let buckets = buckets.max(1);
        if self.integer_key()
            && let [Some(text)] = key
            && let Ok(value) = text.parse::<i64>()
        {
            return u32::try_from(value.rem_euclid(i64::from(buckets))).unwrap_or(0);
        }
        let hash = Sha256::digest(cdc_model::canonical::encode_texts(key).as_bytes());
        u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]) % buckets
    }

    /// SQL Server: the row count.
    pub fn source_count(&self) -> String {
        format!("SELECT COUNT_BIG(*) FROM {}", self.source_table)
    }

    /// PostgreSQL: the row count.
    pub fn target_count(&self) -> String {
        format!(
            "SELECT count(*) FROM {} AS r{}",
            self.target_table,
            self.target_where(None)
        )
    }

    /// SQL Server: `(bucket, rows, checksum)` per non-empty bucket.
    pub fn source_buckets(&self, buckets: u32) -> String {
        let bucket = self.source_bucket(buckets);
        format!(
            "SELECT {bucket} AS bucket, COUNT_BIG(*) AS row_count, \
             SUM(CAST(CAST(SUBSTRING(HASHBYTES('SHA2_256', {row}), 1, 8) AS bigint) AS decimal(38,0))) AS hash_sum \
             FROM {table} GROUP BY {bucket}",
            row = self.source_row_encoding(&self.columns),
            table = self.source_table,
        )
    }

    /// PostgreSQL: `(bucket, rows, checksum as text)` per non-empty bucket.
    pub fn target_buckets(&self, buckets: u32) -> String {
        format!(
            "SELECT h.bucket, count(*), sum(h.part)::text FROM {table} AS r \
             CROSS JOIN LATERAL (SELECT {bucket} AS bucket, \
             ('x' || encode(substr(sha256({row}), 1, 8), 'hex'))::bit(64)::bigint AS part) AS h{filter} \
             GROUP BY h.bucket",
            table = self.target_table,
            bucket = self.target_bucket(buckets),
            row = self.target_row_encoding(&self.columns),
            filter = self.target_where(None),
        )
    }

    /// SQL Server: every column's canonical text for the rows of `wanted` buckets.
    pub fn source_rows(&self, buckets: u32, wanted: &[u32]) -> String {
        let mut sql = String::from("SELECT ");
        for (i, column) in self.columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "{}", source_text(column.source, &column.source_name));
        }
        let _ = write!(
            sql,
            " FROM {} WHERE {} IN ({})",
            self.source_table,
            self.source_bucket(buckets),
            list(wanted)
        );
        sql
    }

    /// PostgreSQL: every column's canonical text for the rows of `wanted` buckets.
    pub fn target_rows(&self, buckets: u32, wanted: &[u32]) -> String {
        let texts: Vec<String> = self
            .columns
            .iter()
            .map(|c| target_text(c.target, &c.target_name))
            .collect();
        format!(
            "SELECT {} FROM {} AS r{}",
            texts.join(", "),
            self.target_table,
            self.target_where(Some(format!(
                "{} IN ({})",
                self.target_bucket(buckets),
                list(wanted)
            )))
        )
    }
}

fn list(buckets: &[u32]) -> String {
    buckets
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_map_to_their_rendering() {
        assert_eq!(
            SourceKind::of_declared("nvarchar(40)"),
            Some(SourceKind::Text)
        );
        assert_eq!(
            SourceKind::of_declared("DECIMAL(12, 2)"),
            Some(SourceKind::Decimal)
        );
        assert_eq!(
            SourceKind::of_declared("datetime2(7)"),
            Some(SourceKind::DateTime2)
        );
        assert_eq!(SourceKind::of_declared("geography"), None);
        assert!(SourceKind::Money.compares_with(TargetKind::Numeric));
        assert!(!SourceKind::Text.compares_with(TargetKind::Numeric));
    }

    fn table(key: SourceKind) -> TableSql {
        TableSql {
            source_table: "[dbo].[t]".into(),
            target_table: "\"public\".\"t\"".into(),
            columns: vec![ColumnPair {
                source_name: "k".into(),
                target_name: "k".into(),
                source: key,
                target: TargetKind::Text,
            }],
            key_len: 1,
            target_filter: None,
        }
    }

    #[test]
    fn buckets_follow_the_canonical_key_encoding() {
        // SHA-256 of `2:42` computed independently: the bucket is its first four bytes
        // big-endian modulo the bucket count.
        use sha2::{Digest, Sha256};
        let hash = Sha256::digest(b"2:42");
        let expected = u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]) % 1000;
        let text_key = table(SourceKind::Text);
        assert_eq!(text_key.bucket_of(&[Some("42".to_owned())], 1000), expected);
        assert_eq!(text_key.bucket_of(&[Some("42".to_owned())], 1), 0);
        // One integer column: the key modulo the count, never negative.
        let integer_key = table(SourceKind::Integer);
        assert_eq!(integer_key.bucket_of(&[Some("1042".to_owned())], 1000), 42);
        assert_eq!(integer_key.bucket_of(&[Some("-1".to_owned())], 1000), 999);
        assert!(
            integer_key
                .source_bucket(1000)
                .contains("% 1000 + 1000) % 1000")
        );
    }
}

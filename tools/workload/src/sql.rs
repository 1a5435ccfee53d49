//! T-SQL text: literals quoted as SQL Server reads them, and the statements the workload sends.
//! Values go in as literals rather than parameters so that a whole transaction is one batch
//! (one round trip) and the text can be logged and replayed with sqlcmd.

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
use rust_decimal::Decimal;
use uuid::Uuid;

/// A value as a T-SQL literal of the column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `NULL`.
    Null,
    /// bit, tinyint, smallint, int, bigint.
    Int(i64),
    /// decimal, numeric, money, smallmoney: written with its scale, never in exponent form.
    Decimal(Decimal),
    /// real, float.
    Float(f64),
    /// char, varchar, text: `'...'` (kept to ASCII by the generator so code page 1252 holds it).
    Ansi(String),
    /// nchar, nvarchar, ntext, xml: `N'...'`.
    Unicode(String),
    /// binary, varbinary, image: `0x...`.
    Binary(Vec<u8>),
    /// uniqueidentifier.
    Guid(Uuid),
    /// date.
    Date(NaiveDate),
    /// time(n), with the column's fractional digits.
    Time(NaiveTime, u8),
    /// datetime, datetime2(n), smalldatetime, with the fractional digits to write.
    DateTime(NaiveDateTime, u8),
    /// datetimeoffset(n): `CAST('...+hh:mm' AS datetimeoffset(n))`.
    DateTimeOffset(DateTime<FixedOffset>, u8),
}

impl Literal {
    /// The T-SQL text of the value.
    pub fn to_sql(&self) -> String {
        match self {
            Literal::Null => "NULL".to_owned(),
            Literal::Int(v) => v.to_string(),
            Literal::Decimal(v) => v.to_string(),
            Literal::Float(v) => float(*v),
            Literal::Ansi(s) => quoted("", s),
            Literal::Unicode(s) => quoted("N", s),
            Literal::Binary(bytes) => binary(bytes),
            Literal::Guid(u) => format!("'{}'", u.hyphenated().to_string().to_uppercase()),
            Literal::Date(d) => format!("'{}'", d.format("%Y-%m-%d")),
            Literal::Time(t, digits) => format!("'{}'", time(*t, *digits)),
            Literal::DateTime(dt, digits) => {
                format!(
                    "'{}T{}'",
                    dt.date().format("%Y-%m-%d"),
                    time(dt.time(), *digits)
                )
            }
            Literal::DateTimeOffset(dt, digits) => format!(
                "CAST('{}T{}{}' AS datetimeoffset({digits}))",
                dt.date_naive().format("%Y-%m-%d"),
                time(dt.time(), *digits),
                dt.format("%:z")
            ),
        }
    }
}

/// `prefix'text'` with every quote doubled, as T-SQL escapes it.
fn quoted(prefix: &str, text: &str) -> String {
    format!("{prefix}'{}'", text.replace('\'', "''"))
}

fn binary(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(2 + bytes.len() * 2);
    text.push_str("0x");
    for byte in bytes {
        let _ = write!(text, "{byte:02X}");
    }
    text
}

/// A float literal SQL Server reads as float (`E` form), exact for the values generated.
fn float(v: f64) -> String {
    if v.is_finite() {
        format!("{v:E}")
    } else {
        // SQL Server has no infinity or NaN; the generator never makes them.
        "NULL".to_owned()
    }
}

/// `hh:mm:ss[.fffffff]` with `digits` fractional digits (0 to 7, truncated, never rounded up).
fn time(t: NaiveTime, digits: u8) -> String {
    let base = t.format("%H:%M:%S").to_string();
    if digits == 0 {
        return base;
    }
    let nanos = chrono::Timelike::nanosecond(&t) % 1_000_000_000;
    let fraction = format!("{:09}", nanos);
    let digits = usize::from(digits.min(7));
    format!("{base}.{}", &fraction[..digits])
}

/// `INSERT INTO table (c1, c2) VALUES (v1, v2);`
pub fn insert(table: &str, columns: &[(&str, Literal)]) -> String {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let values: Vec<String> = columns.iter().map(|(_, value)| value.to_sql()).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({});",
        names.join(", "),
        values.join(", ")
    )
}

/// `UPDATE table SET c1 = v1, c2 = v2 WHERE k1 = x AND k2 = y;`
pub fn update(table: &str, set: &[(&str, Literal)], key: &[(&str, Literal)]) -> String {
    format!(
        "UPDATE {table} SET {} WHERE {};",
        assignments(set, ", "),
        assignments(key, " AND ")
    )
}

/// `DELETE FROM table WHERE k1 = x AND k2 = y;`
pub fn delete(table: &str, key: &[(&str, Literal)]) -> String {
    format!("DELETE FROM {table} WHERE {};", assignments(key, " AND "))
}

fn assignments(pairs: &[(&str, Literal)], separator: &str) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{name} = {}", value.to_sql()))
        .collect::<Vec<_>>()
        .join(separator)
}

/// One transaction's first batch: `BEGIN TRANSACTION` and its statements. The `COMMIT` or
/// `ROLLBACK` goes in a batch of its own, so that a statement that fails (SQL Server carries on
/// after most statement errors unless `XACT_ABORT` is on) can never be committed with the rest.
pub fn transaction_body(statements: &[String]) -> String {
    let mut batch = String::from("BEGIN TRANSACTION;\n");
    for statement in statements {
        batch.push_str(statement);
        batch.push('\n');
    }
    batch
}

/// Ends the open transaction, keeping its work.
pub const COMMIT: &str = "COMMIT TRANSACTION;";
/// Ends the open transaction, undoing its work.
pub const ROLLBACK: &str = "ROLLBACK TRANSACTION;";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn strings_double_their_quotes_and_unicode_ones_are_n_prefixed() {
        assert_eq!(Literal::Ansi("O'Brien".into()).to_sql(), "'O''Brien'");
        assert_eq!(
            Literal::Unicode("Zoë's ''x".into()).to_sql(),
            "N'Zoë''s ''''x'"
        );
        assert_eq!(Literal::Unicode(String::new()).to_sql(), "N''");
    }

    #[test]
    fn binaries_are_upper_case_hex_with_0x() {
        assert_eq!(Literal::Binary(vec![0x00, 0xAB, 0x7f]).to_sql(), "0x00AB7F");
    }

    #[test]
    fn numbers_keep_their_scale_and_floats_use_exponent_form() {
        assert_eq!(Literal::Decimal(Decimal::new(11449, 2)).to_sql(), "114.49");
        assert_eq!(Literal::Decimal(Decimal::new(-5, 4)).to_sql(), "-0.0005");
        assert_eq!(Literal::Float(4.25).to_sql(), "4.25E0");
        assert_eq!(Literal::Float(-0.001).to_sql(), "-1E-3");
        assert_eq!(Literal::Int(-2147483648).to_sql(), "-2147483648");
    }

    #[test]
    fn temporal_literals_have_the_column_scale() {
        let dt = NaiveDate::from_ymd_opt(2024, 4, 1)
            .and_then(|d| d.and_hms_nano_opt(12, 0, 5, 123_456_789))
            .unwrap_or_default();
        assert_eq!(
            Literal::DateTime(dt, 7).to_sql(),
            "'2024-04-01T12:00:05.1234567'"
        );
        assert_eq!(Literal::DateTime(dt, 0).to_sql(), "'2024-04-01T12:00:05'");
        assert_eq!(Literal::Time(dt.time(), 3).to_sql(), "'12:00:05.123'");
        assert_eq!(Literal::Date(dt.date()).to_sql(), "'2024-04-01'");
        let offset = FixedOffset::west_opt(5 * 3600 + 30 * 60).unwrap();
        let with_offset = dt.and_local_timezone(offset).single().unwrap_or_default();
        assert_eq!(
            Literal::DateTimeOffset(with_offset.fixed_offset(), 7).to_sql(),
            "CAST('2024-04-01T12:00:05.1234567-05:30' AS datetimeoffset(7))"
        );
    }

    #[test]
    fn guids_are_quoted_upper_case() {
        let id = Uuid::from_u128(0x6F9619FF_8B86_D011_B42D_00C04FC964FF);
        assert_eq!(
            Literal::Guid(id).to_sql(),
            "'6F9619FF-8B86-D011-B42D-00C04FC964FF'"
        );
    }

    #[test]
    fn statements_name_their_columns_and_keys() {
        let key = [("order_id", Literal::Int(7)), ("line_no", Literal::Int(2))];
        assert_eq!(
            insert("dbo.t", &[("a", Literal::Int(1)), ("b", Literal::Null)]),
            "INSERT INTO dbo.t (a, b) VALUES (1, NULL);"
        );
        assert_eq!(
            update("dbo.order_lines", &[("quantity", Literal::Int(3))], &key),
            "UPDATE dbo.order_lines SET quantity = 3 WHERE order_id = 7 AND line_no = 2;"
        );
        assert_eq!(
            delete("dbo.order_lines", &key),
            "DELETE FROM dbo.order_lines WHERE order_id = 7 AND line_no = 2;"
        );
        let body = transaction_body(&["SELECT 1;".to_owned()]);
        assert_eq!(body, "BEGIN TRANSACTION;\nSELECT 1;\n");
    }
}

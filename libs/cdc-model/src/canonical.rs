//! The canonical form of values and rows: one text per value, computed the same way from a
//! change event here and inside each database by the reconciler, so equal data hashes equal
//! across SQL Server and PostgreSQL.
//!
//! | logical type | canonical text | example |
//! |---|---|---|
//! | any, NULL | no text (a distinct marker in the row encoding) | |
//! | bool | `1` or `0` | `1` |
//! | int16/32/64 | base 10, `-` below zero | `-42` |
//! | decimal(p,s) | plain notation with exactly `s` fractional digits | `12.3400` |
//! | float32/64 | IEEE-754 binary64 bits as 16 lowercase hex digits; `-0` as `0`, every NaN as `7ff8000000000000` | `3ff8000000000000` |
//! | text, json, xml | the text itself (UTF-8) | `Zoë` |
//! | bytes | lowercase hex | `00ff10` |
//! | uuid | lowercase `8-4-4-4-12` | `6f9619ff-8b86-d011-b42d-00c04fc964ff` |
//! | date | `YYYY-MM-DD` | `0001-01-01` |
//! | time | `HH:MM:SS.ffffff` | `23:59:59.999999` |
//! | timestamp | `YYYY-MM-DD HH:MM:SS.ffffff` | `2024-02-29 12:00:00.000001` |
//! | timestamptz | the instant in UTC, `YYYY-MM-DD HH:MM:SS.ffffff+00:00` | `2024-02-29 10:00:00.000000+00:00` |
//!
//! Why these choices:
//! - Floats compare by their bits, which both engines expose exactly (`CAST(x AS binary(8))`
//!   in SQL Server, `float8send(x)` in PostgreSQL); a decimal rendering would depend on each
//!   engine's printing rules. A `real` widens to binary64 exactly first.
//! - Times carry microseconds, PostgreSQL's precision: SQL Server's 100 ns ticks are rounded to
//!   the nearest microsecond, halves away from zero, as `CAST(… AS datetime2(6))` does in
//!   SQL Server. The loader writes exactly [`micros_rounded`] so the target holds this value.
//! - A `datetimeoffset`'s offset is kept in the event but is not part of equality:
//!   PostgreSQL's `timestamptz` stores the instant only.

use sha2::{Digest, Sha256};

use crate::calendar::civil_from_days;
use crate::decimal::Decimal;
use crate::error::{Error, Result};
use crate::proto::value::Kind;
use crate::proto::{ColumnSchema, ColumnType, LogicalType, Value};
use crate::value::{NANOS_PER_DAY, kind_name};

const CANONICAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0000;
const MICROS_PER_DAY: i64 = NANOS_PER_DAY / 1000;

/// The canonical text of `value` in a column of type `column_type`; None for NULL.
pub fn canonical_text(value: &Value, column: &ColumnSchema) -> Result<Option<String>> {
    let column_type = column.r#type.clone().unwrap_or_default();
    check_fits(value, column, &column_type)?;
    let Some(kind) = &value.kind else {
        return Err(Error::InvalidValue(format!(
            "column `{}`: a value without a kind",
            column.name
        )));
    };
    Ok(Some(match kind {
        Kind::Null(_) => return Ok(None),
        Kind::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        Kind::Int64(i) => i.to_string(),
        Kind::Float64(f) => float_text(*f),
        Kind::Decimal(d) => decimal_text(&Decimal::from_proto(d)?, &column_type)?,
        Kind::Text(s) | Kind::Json(s) | Kind::Xml(s) => s.clone(),
        Kind::Bytes(b) => hex::encode(b),
        Kind::Uuid(b) => uuid_text(b)?,
        Kind::Date(days) => date_text(*days),
        // Non-negative (validated), so adding half a microsecond rounds halves up.
        Kind::TimeNanos(nanos) => time_text((nanos + 500) / 1000),
        Kind::Timestamp(t) => timestamp_text(micros_rounded(t.seconds, t.nanos)),
        Kind::Timestamptz(t) => format!(
            "{}+00:00",
            timestamp_text(micros_rounded(t.utc_seconds, t.nanos))
        ),
    }))
}

/// Microseconds since the epoch of `seconds` + `nanos`, rounded to the nearest microsecond,
/// halves away from zero (SQL Server's rounding to `datetime2(6)`).
pub fn micros_rounded(seconds: i64, nanos: u32) -> i64 {
    let sub_micro = nanos % 1000;
    let micros = seconds * 1_000_000 + i64::from(nanos / 1000);
    if sub_micro >= 500 { micros + 1 } else { micros }
}

/// The canonical encoding of a row: per column, `-` for NULL, else the text's UTF-8 byte
/// length in decimal, `:`, and the text; columns one after the other, no separator. It is
/// unambiguous (a field starts with `-` or a digit, and its length says where it ends), and
/// both databases build it with plain text functions, which they do much faster than byte
/// strings.
pub fn canonical_row(values: &[Value], columns: &[ColumnSchema]) -> Result<Vec<u8>> {
    if values.len() != columns.len() {
        return Err(Error::InvalidValue(format!(
            "row of {} values for {} columns",
            values.len(),
            columns.len()
        )));
    }
    let texts = values
        .iter()
        .zip(columns)
        .map(|(value, column)| canonical_text(value, column))
        .collect::<Result<Vec<_>>>()?;
    Ok(encode_texts(&texts).into_bytes())
}

/// The canonical encoding of a row given its columns' canonical texts (None for NULL).
pub fn encode_texts(texts: &[Option<String>]) -> String {
    let mut encoded = String::with_capacity(texts.len() * 16);
    for text in texts {
        match text {
            None => encoded.push('-'),
            Some(text) => {
                encoded.push_str(&text.len().to_string());
                encoded.push(':');
                encoded.push_str(text);
            }
        }
    }
    encoded
}

/// SHA-256 of [`canonical_row`].
pub fn row_hash(values: &[Value], columns: &[ColumnSchema]) -> Result<[u8; 32]> {
    Ok(Sha256::digest(canonical_row(values, columns)?).into())
}

fn check_fits(value: &Value, column: &ColumnSchema, column_type: &ColumnType) -> Result<()> {
    let logical = LogicalType::try_from(column_type.logical).unwrap_or(LogicalType::Unspecified);
    let fits = matches!(
        (&value.kind, logical),
        (Some(Kind::Null(_)), _)
            | (Some(Kind::Bool(_)), LogicalType::Bool)
            | (
                Some(Kind::Int64(_)),
                LogicalType::Int16 | LogicalType::Int32 | LogicalType::Int64
            )
            | (
                Some(Kind::Float64(_)),
                LogicalType::Float32 | LogicalType::Float64
            )
            | (Some(Kind::Decimal(_)), LogicalType::Decimal)
            | (Some(Kind::Text(_)), LogicalType::Text)
            | (Some(Kind::Bytes(_)), LogicalType::Bytes)
            | (Some(Kind::Uuid(_)), LogicalType::Uuid)
            | (Some(Kind::Date(_)), LogicalType::Date)
            | (Some(Kind::TimeNanos(_)), LogicalType::Time)
            | (Some(Kind::Timestamp(_)), LogicalType::Timestamp)
            | (Some(Kind::Timestamptz(_)), LogicalType::Timestamptz)
            | (Some(Kind::Json(_)), LogicalType::Json)
            | (Some(Kind::Xml(_)), LogicalType::Xml)
    );
    if fits {
        Ok(())
    } else {
        Err(Error::TypeMismatch {
            column: column.name.clone(),
            expected: logical.as_str_name().to_owned(),
            found: kind_name(value),
        })
    }
}

fn float_text(value: f64) -> String {
    let bits = if value.is_nan() {
        CANONICAL_NAN_BITS
    } else if value == 0.0 {
        0
    } else {
        value.to_bits()
    };
    format!("{bits:016x}")
}

fn decimal_text(decimal: &Decimal, column_type: &ColumnType) -> Result<String> {
    Ok(decimal.with_scale(column_type.scale)?.to_string())
}

fn uuid_text(bytes: &[u8]) -> Result<String> {
    if bytes.len() != 16 {
        return Err(Error::InvalidValue(format!(
            "uuid of {} bytes",
            bytes.len()
        )));
    }
    let h = hex::encode(bytes);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn date_text(days: i32) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

fn time_text(micros_of_day: i64) -> String {
    // A time rounded up past 23:59:59.9999995 wraps to midnight, as SQL Server's time does.
    let micros = micros_of_day.rem_euclid(MICROS_PER_DAY);
    let (seconds, fraction) = (micros / 1_000_000, micros % 1_000_000);
    format!(
        "{:02}:{:02}:{:02}.{fraction:06}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

fn timestamp_text(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let date = date_text(i32::try_from(days).unwrap_or(i32::MAX));
    format!("{date} {}", time_text(micros.rem_euclid(MICROS_PER_DAY)))
}

/// The value whose canonical text is `text` in `column` (None = NULL): the inverse of
/// [`canonical_text`], for keys that travel as text (the reconciler's repair commands).
/// Times come back at microsecond precision, as the canonical form holds them.
pub fn value_from_text(text: Option<&str>, column: &ColumnSchema) -> Result<Value> {
    let Some(text) = text else {
        return Ok(crate::value::null());
    };
    let column_type = column.r#type.clone().unwrap_or_default();
    let logical = LogicalType::try_from(column_type.logical).unwrap_or(LogicalType::Unspecified);
    let bad = |what: &str| {
        Error::InvalidValue(format!(
            "column `{}`: `{text}` is not the canonical text of {what}",
            column.name
        ))
    };
    let kind = match logical {
        LogicalType::Bool => match text {
            "1" => Kind::Bool(true),
            "0" => Kind::Bool(false),
            _ => return Err(bad("a bool")),
        },
        LogicalType::Int16 | LogicalType::Int32 | LogicalType::Int64 => {
            Kind::Int64(text.parse().map_err(|_| bad("an integer"))?)
        }
        LogicalType::Float32 | LogicalType::Float64 => {
            let bits = u64::from_str_radix(text, 16).map_err(|_| bad("a float"))?;
            Kind::Float64(f64::from_bits(bits))
        }
        LogicalType::Decimal => {
            let decimal: Decimal = text.parse().map_err(|_| bad("a decimal"))?;
            Kind::Decimal(decimal.to_proto())
        }
        LogicalType::Text => Kind::Text(text.to_owned()),
        LogicalType::Json => Kind::Json(text.to_owned()),
        LogicalType::Xml => Kind::Xml(text.to_owned()),
        LogicalType::Bytes => Kind::Bytes(hex::decode(text).map_err(|_| bad("bytes"))?),
        LogicalType::Uuid => {
            let digits: String = text.chars().filter(|c| *c != '-').collect();
            let bytes = hex::decode(&digits).map_err(|_| bad("a uuid"))?;
            if bytes.len() != 16 || uuid_text(&bytes).ok().as_deref() != Some(text) {
                return Err(bad("a uuid"));
            }
            Kind::Uuid(bytes)
        }
        LogicalType::Date => Kind::Date(parse_date(text).ok_or_else(|| bad("a date"))?),
        LogicalType::Time => Kind::TimeNanos(parse_time(text).ok_or_else(|| bad("a time"))? * 1000),
        LogicalType::Timestamp => {
            let micros = parse_timestamp(text).ok_or_else(|| bad("a timestamp"))?;
            Kind::Timestamp(crate::proto::Timestamp {
                seconds: micros.div_euclid(1_000_000),
                nanos: nanos_of(micros),
            })
        }
        LogicalType::Timestamptz => {
            let local = text
                .strip_suffix("+00:00")
                .ok_or_else(|| bad("a timestamptz"))?;
            let micros = parse_timestamp(local).ok_or_else(|| bad("a timestamptz"))?;
            Kind::Timestamptz(crate::proto::TimestampTz {
                utc_seconds: micros.div_euclid(1_000_000),
                nanos: nanos_of(micros),
                offset_minutes: 0,
            })
        }
        LogicalType::Unspecified => return Err(bad("a value of a known type")),
    };
    Ok(crate::value::of(kind))
}

/// Nanoseconds within the second of `micros` since the epoch.
fn nanos_of(micros: i64) -> u32 {
    u32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0)
}

/// Days since the epoch of `YYYY-MM-DD`.
fn parse_date(text: &str) -> Option<i32> {
    let mut parts = text.splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    let days = crate::calendar::days_from_civil(year, month, day);
    (date_text(days) == text).then_some(days)
}

/// Microseconds since midnight of `HH:MM:SS.ffffff`.
fn parse_time(text: &str) -> Option<i64> {
    let (clock, fraction) = text.split_once('.')?;
    let mut parts = clock.splitn(3, ':');
    let hours: i64 = parts.next()?.parse().ok()?;
    let minutes: i64 = parts.next()?.parse().ok()?;
    let seconds: i64 = parts.next()?.parse().ok()?;
    if fraction.len() != 6 {
        return None;
    }
    let micros: i64 = fraction.parse().ok()?;
    let total = ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros;
    (time_text(total) == text).then_some(total)
}

/// Microseconds since the epoch of `YYYY-MM-DD HH:MM:SS.ffffff`.
fn parse_timestamp(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(' ')?;
    Some(i64::from(parse_date(date)?) * MICROS_PER_DAY + parse_time(time)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Timestamp, TimestampTz};
    use crate::value::of;

    fn column(logical: LogicalType, scale: u32) -> ColumnSchema {
        ColumnSchema {
            name: "c".into(),
            r#type: Some(ColumnType {
                logical: logical as i32,
                scale,
                ..Default::default()
            }),
            nullable: true,
        }
    }

    fn text(kind: Kind, logical: LogicalType, scale: u32) -> String {
        canonical_text(&of(kind), &column(logical, scale))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn each_type_has_the_documented_form() {
        assert_eq!(text(Kind::Bool(true), LogicalType::Bool, 0), "1");
        assert_eq!(text(Kind::Int64(-42), LogicalType::Int32, 0), "-42");
        let d = crate::Decimal::new(1234, 2).unwrap().to_proto();
        assert_eq!(text(Kind::Decimal(d), LogicalType::Decimal, 4), "12.3400");
        assert_eq!(
            text(Kind::Float64(1.5), LogicalType::Float64, 0),
            "3ff8000000000000"
        );
        assert_eq!(
            text(Kind::Float64(-0.0), LogicalType::Float64, 0),
            "0000000000000000"
        );
        assert_eq!(
            text(Kind::Float64(f64::NAN), LogicalType::Float64, 0),
            "7ff8000000000000"
        );
        assert_eq!(
            text(Kind::Bytes(vec![0, 255, 16]), LogicalType::Bytes, 0),
            "00ff10"
        );
        let uuid = hex::decode("6f9619ff8b86d011b42d00c04fc964ff").unwrap();
        assert_eq!(
            text(Kind::Uuid(uuid), LogicalType::Uuid, 0),
            "6f9619ff-8b86-d011-b42d-00c04fc964ff"
        );
        assert_eq!(
            text(Kind::Date(-719_162), LogicalType::Date, 0),
            "0001-01-01"
        );
        assert_eq!(
            text(Kind::TimeNanos(NANOS_PER_DAY - 1_000), LogicalType::Time, 7),
            "23:59:59.999999"
        );
        let ts = Timestamp {
            seconds: 1_709_208_000,
            nanos: 600,
        };
        assert_eq!(
            text(Kind::Timestamp(ts), LogicalType::Timestamp, 7),
            "2024-02-29 12:00:00.000001"
        );
        let tz = TimestampTz {
            utc_seconds: 1_709_200_800,
            nanos: 0,
            offset_minutes: 120,
        };
        assert_eq!(
            text(Kind::Timestamptz(tz), LogicalType::Timestamptz, 7),
            "2024-02-29 10:00:00.000000+00:00"
        );
    }

    #[test]
    fn rounding_to_microseconds_takes_halves_away_from_zero() {
        assert_eq!(micros_rounded(0, 1_499), 1);
        assert_eq!(micros_rounded(0, 1_500), 2);
        assert_eq!(micros_rounded(-1, 999_999_500), 0);
        let before_epoch = Timestamp {
            seconds: -1,
            nanos: 999_999_400,
        };
        assert_eq!(
            text(Kind::Timestamp(before_epoch), LogicalType::Timestamp, 7),
            "1969-12-31 23:59:59.999999"
        );
    }

    #[test]
    fn a_value_of_the_wrong_kind_names_the_column() {
        let error = canonical_text(&of(Kind::Text("x".into())), &column(LogicalType::Int64, 0))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "column `c`: a text value does not fit type LOGICAL_TYPE_INT64"
        );
    }

    #[test]
    fn null_and_empty_text_encode_differently() {
        let columns = [column(LogicalType::Text, 0)];
        let null_row = canonical_row(&[crate::value::null()], &columns).unwrap();
        let empty_row = canonical_row(&[of(Kind::Text(String::new()))], &columns).unwrap();
        assert_ne!(null_row, empty_row);
        assert_eq!(null_row, b"-");
        assert_eq!(empty_row, b"0:");
        // Lengths are UTF-8 bytes, and they keep neighbouring texts apart.
        assert_eq!(
            encode_texts(&[Some("Zoë".into()), Some("1:2".into()), None]),
            "4:Zoë3:1:2-"
        );
        assert_ne!(
            encode_texts(&[Some("ab".into()), Some("c".into())]),
            encode_texts(&[Some("a".into()), Some("bc".into())])
        );
        assert_ne!(
            row_hash(&[crate::value::null()], &columns).unwrap(),
            row_hash(&[of(Kind::Text(String::new()))], &columns).unwrap()
        );
    }

    #[test]
    fn canonical_texts_read_back_to_the_values_they_came_from() {
        let values = [
            (Kind::Bool(true), LogicalType::Bool, 0),
            (Kind::Int64(-42), LogicalType::Int64, 0),
            (Kind::Float64(0.1), LogicalType::Float64, 0),
            (
                Kind::Decimal(crate::Decimal::new(-5, 1).unwrap().to_proto()),
                LogicalType::Decimal,
                4,
            ),
            (Kind::Text("Zoë 😀".into()), LogicalType::Text, 0),
            (Kind::Bytes(vec![0, 255]), LogicalType::Bytes, 0),
            (
                Kind::Uuid(hex::decode("6f9619ff8b86d011b42d00c04fc964ff").unwrap()),
                LogicalType::Uuid,
                0,
            ),
            (Kind::Date(-719_162), LogicalType::Date, 0),
            (Kind::TimeNanos(86_399_123_456_000), LogicalType::Time, 6),
            (
                Kind::Timestamp(Timestamp {
                    seconds: -1,
                    nanos: 999_999_000,
                }),
                LogicalType::Timestamp,
                6,
            ),
            (
                Kind::Timestamptz(TimestampTz {
                    utc_seconds: 1_700_000_000,
                    nanos: 5_000,
                    offset_minutes: 0,
                }),
                LogicalType::Timestamptz,
                6,
            ),
        ];
        for (kind, logical, scale) in values {
            let column = column(logical, scale);
            let original = of(kind);
            let text = canonical_text(&original, &column).unwrap();
            let back = value_from_text(text.as_deref(), &column).unwrap();
            assert_eq!(
                canonical_text(&back, &column).unwrap(),
                text,
                "{logical:?} did not survive its canonical text"
            );
        }
        assert!(value_from_text(Some("2024-02-30"), &column(LogicalType::Date, 0)).is_err());
        assert!(value_from_text(Some("x"), &column(LogicalType::Int64, 0)).is_err());
        assert!(
            value_from_text(None, &column(LogicalType::Int64, 0))
                .map(|v| crate::value::is_null(&v))
                .unwrap()
        );
    }
}

//! SQL Server values as tiberius decodes them, turned into the pipeline's typed values exactly:
//! decimals from their unscaled integer, times from their 100 ns increments, the offset of a
//! `datetimeoffset` kept, `datetime`'s 1/300 s ticks rounded as SQL Server shows them.

use cdc_model::calendar::FIRST_SQL_SERVER_DAY;
use cdc_model::proto::value::Kind;
use cdc_model::proto::{ColumnSchema, LogicalType, Timestamp, TimestampTz, Value};
use cdc_model::{Decimal, value};
use tiberius::ColumnData;

/// Days from 0001-01-01 to 1900-01-01, the epoch of `datetime` and `smalldatetime`.
const DAYS_0001_TO_1900: i64 = 693_595;
const SECONDS_PER_DAY: i64 = 86_400;
const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Converts one decoded cell of `column`. The error names what did not fit; the caller adds
/// the table and column.
pub fn to_value(data: &ColumnData<'_>, column: &ColumnSchema) -> Result<Value, String> {
    let logical = column
        .r#type
        .as_ref()
        .map_or(LogicalType::Unspecified, |t| t.logical());
    let kind = match data {
        ColumnData::Bit(v) => v.map(Kind::Bool),
        ColumnData::U8(v) => v.map(|v| Kind::Int64(i64::from(v))),
        ColumnData::I16(v) => v.map(|v| Kind::Int64(i64::from(v))),
        ColumnData::I32(v) => v.map(|v| Kind::Int64(i64::from(v))),
        ColumnData::I64(v) => v.map(Kind::Int64),
        ColumnData::F32(v) => v.map(|v| Kind::Float64(f64::from(v))),
        ColumnData::F64(v) => v.map(Kind::Float64),
        ColumnData::Numeric(v) => match v {
            Some(n) => Some(decimal_kind(n.value(), u32::from(n.scale()), column)?),
            None => None,
        },
        ColumnData::String(v) => v.as_ref().map(|s| Kind::Text(s.to_string())),
        ColumnData::Guid(v) => v.map(|u| Kind::Uuid(u.as_bytes().to_vec())),
        ColumnData::Binary(v) => v.as_ref().map(|b| Kind::Bytes(b.to_vec())),
        ColumnData::Xml(v) => v.as_ref().map(|x| Kind::Xml(x.to_string())),
        ColumnData::DateTime(v) => v.map(|dt| {
            // 1/300 s ticks, rounded to the millisecond as SQL Server shows them (.000, .003,
            // .007).
            let millis = (i64::from(dt.seconds_fragments()) * 10 + 1) / 3;
            timestamp(
                i64::from(dt.days()) + DAYS_0001_TO_1900 + i64::from(FIRST_SQL_SERVER_DAY),
                millis * 1_000_000,
            )
        }),
        ColumnData::SmallDateTime(v) => v.map(|dt| {
            timestamp(
                i64::from(dt.days()) + DAYS_0001_TO_1900 + i64::from(FIRST_SQL_SERVER_DAY),
                i64::from(dt.seconds_fragments()) * 60 * NANOS_PER_SECOND,
            )
        }),
        ColumnData::Date(v) => match v {
            Some(date) => Some(Kind::Date(
                i32::try_from(i64::from(date.days()) + i64::from(FIRST_SQL_SERVER_DAY))
                    .map_err(|_| format!("date {} days is out of range", date.days()))?,
            )),
            None => None,
        },
        ColumnData::Time(v) => v.map(|t| Kind::TimeNanos(time_nanos(t.increments(), t.scale()))),
        ColumnData::DateTime2(v) => v.map(|dt| {
            timestamp(
                i64::from(dt.date().days()) + i64::from(FIRST_SQL_SERVER_DAY),
                time_nanos(dt.time().increments(), dt.time().scale()),
            )
        }),
        ColumnData::DateTimeOffset(v) => v.map(|dto| {
            let utc = dto.datetime2();
            let days = i64::from(utc.date().days()) + i64::from(FIRST_SQL_SERVER_DAY);
            let nanos = time_nanos(utc.time().increments(), utc.time().scale());
            Kind::Timestamptz(TimestampTz {
                utc_seconds: days * SECONDS_PER_DAY + nanos / NANOS_PER_SECOND,
                nanos: sub_second(nanos),
                offset_minutes: i32::from(dto.offset()),
            })
        }),
    };
    let Some(kind) = kind else {
        return Ok(value::null());
    };
    check_kind(&kind, logical)?;
    Ok(value::of(kind))
}

fn decimal_kind(unscaled: i128, scale: u32, column: &ColumnSchema) -> Result<Kind, String> {
    let decimal = Decimal::new(unscaled, scale).map_err(|e| e.to_string())?;
    let declared = column.r#type.as_ref().map_or(scale, |t| t.scale);
    // SQL Server sends a decimal at its column's scale; money arrives cast to decimal(19,4).
    let decimal = if declared == scale {
        decimal
    } else {
        decimal.with_scale(declared).map_err(|e| e.to_string())?
    };
    Ok(Kind::Decimal(decimal.to_proto()))
}

fn time_nanos(increments: u64, scale: u8) -> i64 {
    let per_increment = 10_i64.pow(9 - u32::from(scale.min(9)));
    i64::try_from(increments).unwrap_or(i64::MAX) * per_increment
}

fn sub_second(nanos: i64) -> u32 {
    u32::try_from(nanos % NANOS_PER_SECOND).unwrap_or(0)
}

fn timestamp(days: i64, nanos_of_day: i64) -> Kind {
    Kind::Timestamp(Timestamp {
        seconds: days * SECONDS_PER_DAY + nanos_of_day / NANOS_PER_SECOND,
        nanos: sub_second(nanos_of_day),
    })
}

/// Refuses a value whose kind cannot be the column's logical type (the metadata and the
/// data disagree: a bug somewhere, never data to publish).
fn check_kind(kind: &Kind, logical: LogicalType) -> Result<(), String> {
    use LogicalType as L;
    let fits = match kind {
        Kind::Bool(_) => logical == L::Bool,
        Kind::Int64(_) => matches!(logical, L::Int16 | L::Int32 | L::Int64),
        Kind::Float64(_) => matches!(logical, L::Float32 | L::Float64),
        Kind::Decimal(_) => logical == L::Decimal,
        Kind::Text(_) => matches!(logical, L::Text | L::Json | L::Xml),
        Kind::Bytes(_) => logical == L::Bytes,
        Kind::Uuid(_) => logical == L::Uuid,
        Kind::Date(_) => logical == L::Date,
        Kind::TimeNanos(_) => logical == L::Time,
        Kind::Timestamp(_) => logical == L::Timestamp,
        Kind::Timestamptz(_) => logical == L::Timestamptz,
        Kind::Json(_) => logical == L::Json,
        Kind::Xml(_) => logical == L::Xml,
        Kind::Null(_) => true,
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "SQL Server sent a {} value for a {} column",
            kind_label(kind),
            logical.as_str_name()
        ))
    }
}

fn kind_label(kind: &Kind) -> &'static str {
    value::kind_name(&value::of(kind.clone()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cdc_model::proto::ColumnType;
    use tiberius::numeric::Numeric;
    use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, Time};

    use super::*;

    fn column(logical: LogicalType, scale: u32) -> ColumnSchema {
        ColumnSchema {
            name: "c".to_owned(),
            r#type: Some(ColumnType {
                logical: logical as i32,
                scale,
                precision: 19,
                ..ColumnType::default()
            }),
            nullable: true,
        }
    }

    fn kind(data: ColumnData<'_>, logical: LogicalType, scale: u32) -> Kind {
        to_value(&data, &column(logical, scale))
            .unwrap()
            .kind
            .unwrap()
    }

    #[test]
    fn decimals_are_exact_and_take_the_column_scale() {
        let big = Numeric::new_with_scale(-12_345_678_901_234_567_890_123_456_789_012_345_678, 10);
        let Kind::Decimal(d) = kind(ColumnData::Numeric(Some(big)), LogicalType::Decimal, 10)
        else {
            panic!("not a decimal")
        };
        let d = Decimal::from_proto(&d).unwrap();
        assert_eq!(
            d.unscaled(),
            -12_345_678_901_234_567_890_123_456_789_012_345_678
        );
        assert_eq!(d.scale(), 10);
        let money = Numeric::new_with_scale(123_456, 2);
        let Kind::Decimal(d) = kind(ColumnData::Numeric(Some(money)), LogicalType::Decimal, 4)
        else {
            panic!("not a decimal")
        };
        assert_eq!(Decimal::from_proto(&d).unwrap().unscaled(), 12_345_600);
    }

    #[test]
    fn datetime2_keeps_its_100ns_precision() {
        // 9999-12-31 23:59:59.9999999
        let time = Time::new(863_999_999_999, 7);
        let date = Date::new(3_652_058);
        let Kind::Timestamp(ts) = kind(
            ColumnData::DateTime2(Some(DateTime2::new(date, time))),
            LogicalType::Timestamp,
            7,
        ) else {
            panic!("not a timestamp")
        };
        assert_eq!(ts.nanos, 999_999_900);
        assert_eq!(ts.seconds, 253_402_300_799);
    }

    #[test]
    fn datetimeoffset_keeps_the_instant_and_its_offset() {
        // 2024-03-01 10:00:00 UTC written at -05:00.
        let days =
            u32::try_from(cdc_model::calendar::days_from_civil(2024, 3, 1) - FIRST_SQL_SERVER_DAY)
                .unwrap();
        let utc = DateTime2::new(Date::new(days), Time::new(36_000 * 10_000_000, 7));
        let Kind::Timestamptz(tz) = kind(
            ColumnData::DateTimeOffset(Some(DateTimeOffset::new(utc, -300))),
            LogicalType::Timestamptz,
            7,
        ) else {
            panic!("not a timestamptz")
        };
        assert_eq!(tz.offset_minutes, -300);
        assert_eq!(tz.utc_seconds, 1_709_287_200);
    }

    #[test]
    fn legacy_datetime_ticks_round_like_sql_server() {
        // 1900-01-01 00:00:00.003 is one 1/300 s tick; two ticks show as .007.
        let one = kind(
            ColumnData::DateTime(Some(DateTime::new(0, 1))),
            LogicalType::Timestamp,
            3,
        );
        let two = kind(
            ColumnData::DateTime(Some(DateTime::new(0, 2))),
            LogicalType::Timestamp,
            3,
        );
        assert!(matches!(
            one,
            Kind::Timestamp(Timestamp {
                nanos: 3_000_000,
                ..
            })
        ));
        assert!(matches!(
            two,
            Kind::Timestamp(Timestamp {
                nanos: 7_000_000,
                ..
            })
        ));
        let Kind::Timestamp(ts) = one else { panic!() };
        assert_eq!(ts.seconds, -2_208_988_800);
    }

    #[test]
    fn uuids_keep_their_canonical_byte_order() {
        let id = uuid::Uuid::parse_str("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap();
        let Kind::Uuid(bytes) = kind(ColumnData::Guid(Some(id)), LogicalType::Uuid, 0) else {
            panic!("not a uuid")
        };
        assert_eq!(bytes[0], 0x6f);
        assert_eq!(bytes[15], 0xff);
    }

    #[test]
    fn nulls_and_mismatches() {
        let null = to_value(&ColumnData::I32(None), &column(LogicalType::Int32, 0)).unwrap();
        assert!(value::is_null(&null));
        let error = to_value(
            &ColumnData::String(Some("x".into())),
            &column(LogicalType::Int32, 0),
        )
        .unwrap_err();
        assert!(
            error.contains("text value for a LOGICAL_TYPE_INT32 column"),
            "{error}"
        );
    }
}

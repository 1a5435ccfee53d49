//! Typed values: validation and small conveniences over the generated `Value`.

use crate::decimal::Decimal;
use crate::error::{Error, Result};
use crate::proto::value::Kind;
use crate::proto::{self, Value};

/// Nanoseconds in a day.
pub const NANOS_PER_DAY: i64 = 86_400_000_000_000;
/// The widest offset SQL Server's `datetimeoffset` allows, in minutes (±14:00).
pub const MAX_OFFSET_MINUTES: i32 = 840;

/// A value of the given kind.
pub fn of(kind: Kind) -> Value {
    Value { kind: Some(kind) }
}

/// SQL NULL.
pub fn null() -> Value {
    of(Kind::Null(proto::Null::Value as i32))
}

/// An exact decimal.
pub fn decimal(decimal: Decimal) -> Value {
    of(Kind::Decimal(decimal.to_proto()))
}

/// The name of a value's kind, for messages.
pub fn kind_name(value: &Value) -> &'static str {
    match &value.kind {
        None => "missing",
        Some(Kind::Null(_)) => "null",
        Some(Kind::Bool(_)) => "bool",
        Some(Kind::Int64(_)) => "int64",
        Some(Kind::Float64(_)) => "float64",
        Some(Kind::Decimal(_)) => "decimal",
        Some(Kind::Text(_)) => "text",
        Some(Kind::Bytes(_)) => "bytes",
        Some(Kind::Uuid(_)) => "uuid",
        Some(Kind::Date(_)) => "date",
        Some(Kind::TimeNanos(_)) => "time",
        Some(Kind::Timestamp(_)) => "timestamp",
        Some(Kind::Timestamptz(_)) => "timestamptz",
        Some(Kind::Json(_)) => "json",
        Some(Kind::Xml(_)) => "xml",
    }
}

/// Whether the value is SQL NULL.
pub fn is_null(value: &Value) -> bool {
    matches!(value.kind, Some(Kind::Null(_)))
}

/// Checks a value against its kind's rules.
pub fn validate(value: &Value) -> Result<()> {
    let bad = |reason: String| Err(Error::InvalidValue(reason));
    match &value.kind {
        None => bad("a value without a kind".to_owned()),
        Some(Kind::Uuid(bytes)) if bytes.len() != 16 => {
            bad(format!("uuid of {} bytes", bytes.len()))
        }
        Some(Kind::Decimal(d)) => Decimal::from_proto(d).map(|_| ()),
        Some(Kind::TimeNanos(n)) if !(0..NANOS_PER_DAY).contains(n) => {
            bad(format!("time of {n} ns is outside one day"))
        }
        Some(Kind::Timestamp(t)) if t.nanos >= 1_000_000_000 => {
            bad(format!("timestamp nanos {}", t.nanos))
        }
        Some(Kind::Timestamptz(t)) if t.nanos >= 1_000_000_000 => {
            bad(format!("timestamptz nanos {}", t.nanos))
        }
        Some(Kind::Timestamptz(t)) if t.offset_minutes.abs() > MAX_OFFSET_MINUTES => bad(format!(
            "offset of {} minutes is beyond ±14:00",
            t.offset_minutes
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_values_are_named() {
        let message = |v: Value| validate(&v).unwrap_err().to_string();
        assert!(message(Value { kind: None }).contains("without a kind"));
        assert!(message(of(Kind::Uuid(vec![1; 15]))).contains("uuid of 15 bytes"));
        assert!(message(of(Kind::TimeNanos(NANOS_PER_DAY))).contains("outside one day"));
        let tz = proto::TimestampTz {
            utc_seconds: 0,
            nanos: 0,
            offset_minutes: 900,
        };
        assert!(message(of(Kind::Timestamptz(tz))).contains("beyond ±14:00"));
        assert!(validate(&null()).is_ok());
    }
}

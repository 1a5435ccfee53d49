//! Stage rows in PostgreSQL's binary COPY format: every value in the wire form of its stage
//! column's type, so PostgreSQL copies integers, times and numerics without parsing text
//! (about a tenth of its CPU time on an upsert, measured on this stack), and the loader writes
//! them without formatting digits.
//!
//! Times are rounded to microseconds the way the reconciler's canonical form rounds them;
//! PostgreSQL then applies each column's own precision, as it does to text input.
//!
//! A value of a kind its column's type cannot hold (a text in an integer column, an integer
//! beyond the column's range) is refused here with the column's name, before anything is sent,
//! and its event goes to the dead-letter topic. Values PostgreSQL itself refuses (a NUL in a
//! text, an invalid JSON document, a date beyond its calendar) are refused by PostgreSQL, as
//! before.

use cdc_model::canonical::micros_rounded;
use cdc_model::proto::value::Kind;
use cdc_model::proto::{TableSchema, Value};

use crate::target::PgType;

/// The file header: signature, flags (none) and header extension length (none).
const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The field count that marks the end of the data.
const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// PostgreSQL's first timestamp (4714-11-24 00:00 BC) and the end of its range (294277-01-01),
/// in microseconds since its epoch. Beyond them the two largest values mean ±infinity, which
/// no source value is.
const POSTGRES_TIMESTAMPS: std::ops::Range<i64> =
    -211_813_488_000_000_000..9_223_371_331_200_000_000;

/// Seconds whose microseconds fit an `i64` with room for rounding.
const MAX_SECONDS: i64 = i64::MAX / 1_000_000 - 1;

/// Days from the Unix epoch to PostgreSQL's.
const POSTGRES_EPOCH_DAYS: i32 = 10_957;

/// `numeric`'s sign word for negative values.
const NUMERIC_NEGATIVE: u16 = 0x4000;

/// The stage columns after the row image: position, commit time, delete flag, row key.
const STAGE_TAIL_COLUMNS: usize = 4;

/// The wire form of one stage column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `boolean`: one byte.
    Bool,
    /// `smallint`: two bytes.
    Int2,
    /// `integer`: four bytes.
    Int4,
    /// `bigint`: eight bytes.
    Int8,
    /// `numeric`: base-10000 digits.
    Numeric,
    /// `real`: an IEEE single.
    Float4,
    /// `double precision`: an IEEE double.
    Float8,
    /// `date`: days since 2000-01-01.
    Date,
    /// `time`: microseconds since midnight.
    Time,
    /// `timestamp`: microseconds since 2000-01-01 00:00.
    Timestamp,
    /// `timestamptz`: microseconds since 2000-01-01 00:00 UTC.
    Timestamptz,
    /// `text`, `varchar` and the stage's `xml` (staged as text, see `statements`): UTF-8.
    Text,
    /// `bytea`: the bytes.
    Bytea,
    /// `uuid`: sixteen bytes.
    Uuid,
    /// `jsonb`: a version byte, then the document's text.
    Jsonb,
}

impl Wire {
    /// The wire form of a stage column of this type.
    pub fn of(pg_type: &PgType) -> Wire {
        match pg_type {
            PgType::Bool => Wire::Bool,
            PgType::Int2 => Wire::Int2,
            PgType::Int4 => Wire::Int4,
            PgType::Int8 => Wire::Int8,
            PgType::Numeric(_) => Wire::Numeric,
            PgType::Float4 => Wire::Float4,
            PgType::Float8 => Wire::Float8,
            PgType::Date => Wire::Date,
            PgType::Time(_) => Wire::Time,
            PgType::Timestamp(_) => Wire::Timestamp,
            PgType::Timestamptz(_) => Wire::Timestamptz,
            PgType::Bytea => Wire::Bytea,
            PgType::Uuid => Wire::Uuid,
            PgType::Jsonb => Wire::Jsonb,
            PgType::Varchar(_) | PgType::Text | PgType::Xml | PgType::Other(_) => Wire::Text,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Wire::Bool => "boolean",
            Wire::Int2 => "smallint",
            Wire::Int4 => "integer",
            Wire::Int8 => "bigint",
            Wire::Numeric => "numeric",
            Wire::Float4 => "real",
            Wire::Float8 => "double precision",
            Wire::Date => "date",
            Wire::Time => "time",
            Wire::Timestamp => "timestamp",
            Wire::Timestamptz => "timestamptz",
            Wire::Text => "text",
            Wire::Bytea => "bytea",
            Wire::Uuid => "uuid",
            Wire::Jsonb => "jsonb",
        }
    }
}

/// Why a row cannot be staged; its event goes to the dead-letter topic with this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {reason}")]
pub struct Refusal {
    /// The column whose value is refused.
    pub column: String,
    /// Why.
    pub reason: String,
    /// The SQLSTATE PostgreSQL gives the same fault: `22003` for a number out of the column's
    /// range, `42804` for a value of another type than the column's.
    pub code: &'static str,
}

/// The stage columns after the row image, for one event.
pub struct Tail<'a> {
    /// The ordered source position.
    pub position: &'a [u8],
    /// The commit time, microseconds since the Unix epoch (UTC).
    pub commit_time_micros: i64,
    /// Whether the event deletes its row.
    pub delete: bool,
    /// The encoded row key.
    pub row_key: &'a [u8],
}

/// The COPY data of one stage, row by row.
pub struct StageRows {
    columns: Vec<(String, Wire)>,
    /// The position of each key column among the columns, in key order.
    key_indexes: Vec<usize>,
    out: Vec<u8>,
}

impl StageRows {
    /// An empty stream for the stage of `schema`, with room for about `capacity` bytes.
    pub fn new(schema: &TableSchema, capacity: usize) -> StageRows {
        let columns = schema
            .columns
            .iter()
            .map(|c| (c.name.clone(), Wire::of(&crate::statements::stage_type(c))))
            .collect();
        let key_indexes = cdc_model::schema::key_indexes(schema).unwrap_or_default();
        let mut out = Vec::with_capacity(capacity + HEADER.len() + TRAILER.len());
        out.extend_from_slice(HEADER);
        StageRows {
            columns,
            key_indexes,
            out,
        }
    }

    /// Appends one row: `values` in column order, then the tail. A refused row leaves the
    /// stream as it was.
    pub fn push<'v>(
        &mut self,
        values: impl ExactSizeIterator<Item = &'v Value>,
        tail: &Tail<'_>,
    ) -> Result<(), Refusal> {
        let start = self.out.len();
        let result = self.write_row(values, tail);
        if result.is_err() {
            self.out.truncate(start);
        }
        result
    }

    /// Appends the row of a delete that carries only its key: the key values (in key order) in
    /// their columns, NULL in the others.
    pub fn push_key_only(&mut self, key_values: &[Value], tail: &Tail<'_>) -> Result<(), Refusal> {
        let null = cdc_model::value::null();
        // Taken out for the row, so that `push` can borrow the rest of `self`.
        let key_indexes = std::mem::take(&mut self.key_indexes);
        let values = (0..self.columns.len()).map(|index| {
            key_indexes
                .iter()
                .position(|k| *k == index)
                .and_then(|k| key_values.get(k))
                .unwrap_or(&null)
        });
        let result = self.push(values, tail);
        self.key_indexes = key_indexes;
        result
    }

    /// Appends a row PostgreSQL refuses as a whole (a field count of zero), in place of a
    /// refused one, so that a refusal can never drop an event silently: the batch's bisection
    /// finds it and dead-letters it with PostgreSQL's reason.
    pub fn push_refused(&mut self) {
        self.out.extend_from_slice(&0i16.to_be_bytes());
    }

    /// The finished COPY data.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&TRAILER);
        self.out
    }

    fn write_row<'v>(
        &mut self,
        values: impl ExactSizeIterator<Item = &'v Value>,
        tail: &Tail<'_>,
    ) -> Result<(), Refusal> {
        if values.len() != self.columns.len() {
            return Err(Refusal {
                column: String::new(),
                reason: format!(
                    "the row has {} values for {} columns",
                    values.len(),
                    self.columns.len()
                ),
                code: "42804",
            });
        }
        let fields =
            i16::try_from(self.columns.len() + STAGE_TAIL_COLUMNS).map_err(|_| Refusal {
                column: String::new(),
                reason: format!("{} columns are more than COPY takes", self.columns.len()),
                code: "54011",
            })?;
        self.out.extend_from_slice(&fields.to_be_bytes());
        for ((name, wire), value) in self.columns.iter().zip(values) {
            push_value(&mut self.out, *wire, value).map_err(|(reason, code)| Refusal {
                column: name.clone(),
                reason,
                code,
            })?;
        }
        push_field(&mut self.out, tail.position);
        let commit_time = postgres_timestamp(tail.commit_time_micros).ok_or_else(|| Refusal {
            column: crate::statements::STAGE_COMMIT_TIME.to_owned(),
            reason: format!(
                "commit time {} µs since 1970 is out of range for timestamptz",
                tail.commit_time_micros
            ),
            code: "22008",
        })?;
        push_field(&mut self.out, &commit_time.to_be_bytes());
        push_field(&mut self.out, &[u8::from(tail.delete)]);
        push_field(&mut self.out, tail.row_key);
        Ok(())
    }
}

/// A field: its length, then its bytes.
fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    push_length(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn push_length(out: &mut Vec<u8>, length: usize) {
    // A value comes out of one Kafka record, far below 2 GiB. Were one longer, -2 is a length
    // PostgreSQL refuses as a malformed row (22P04), which dead-letters its event.
    out.extend_from_slice(&i32::try_from(length).unwrap_or(-2).to_be_bytes());
}

const NULL_FIELD: [u8; 4] = (-1i32).to_be_bytes();

/// Why one value is refused, and the SQLSTATE of that fault.
type ValueRefusal = (String, &'static str);

fn push_value(out: &mut Vec<u8>, wire: Wire, value: &Value) -> Result<(), ValueRefusal> {
    let Some(kind) = &value.kind else {
        return Err(("a value without a kind".to_owned(), "42804"));
    };
    let out_of_range = |what: String| {
        Err((
            format!("{what} is out of range for {}", wire.name()),
            "22003",
        ))
    };
    match (wire, kind) {
        (_, Kind::Null(_)) => out.extend_from_slice(&NULL_FIELD),
        (Wire::Bool, Kind::Bool(b)) => push_field(out, &[u8::from(*b)]),
        (Wire::Int2, Kind::Int64(i)) => match i16::try_from(*i) {
            Ok(small) => push_field(out, &small.to_be_bytes()),
            Err(_) => return out_of_range(i.to_string()),
        },
        (Wire::Int4, Kind::Int64(i)) => match i32::try_from(*i) {
            Ok(int) => push_field(out, &int.to_be_bytes()),
            Err(_) => return out_of_range(i.to_string()),
        },
        (Wire::Int8, Kind::Int64(i)) => push_field(out, &i.to_be_bytes()),
        (Wire::Numeric, Kind::Decimal(d)) => {
            let decimal =
                cdc_model::Decimal::from_proto(d).map_err(|e| (e.to_string(), "22P02"))?;
            push_numeric(out, decimal.unscaled(), decimal.scale());
        }
        (Wire::Numeric, Kind::Int64(i)) => push_numeric(out, i128::from(*i), 0),
        (Wire::Float8, Kind::Float64(f)) => push_field(out, &f.to_be_bytes()),
        // Exact up to 2^53, rounded to the nearest double beyond, as PostgreSQL rounds the text.
        #[allow(clippy::cast_precision_loss)]
        (Wire::Float8, Kind::Int64(i)) => push_field(out, &(*i as f64).to_be_bytes()),
        (Wire::Float4, Kind::Float64(f)) => match single(*f) {
            Some(single) => push_field(out, &single.to_be_bytes()),
            None => return out_of_range(f.to_string()),
        },
        #[allow(clippy::cast_precision_loss)]
        (Wire::Float4, Kind::Int64(i)) => push_field(out, &(*i as f32).to_be_bytes()),
        (Wire::Date, Kind::Date(days)) => match days.checked_sub(POSTGRES_EPOCH_DAYS) {
            Some(days) => push_field(out, &days.to_be_bytes()),
            None => return out_of_range(format!("day {days}")),
        },
        (Wire::Time, Kind::TimeNanos(nanos)) => {
            push_field(out, &micros_of_nanos(*nanos).to_be_bytes());
        }
        (Wire::Timestamp, Kind::Timestamp(t)) => push_time_point(out, t.seconds, t.nanos, wire)?,
        (Wire::Timestamptz, Kind::Timestamptz(t)) => {
            push_time_point(out, t.utc_seconds, t.nanos, wire)?;
        }
        (Wire::Text, Kind::Text(s) | Kind::Json(s) | Kind::Xml(s)) => push_field(out, s.as_bytes()),
        (Wire::Jsonb, Kind::Json(s) | Kind::Text(s)) => {
            push_length(out, s.len() + 1);
            out.push(1);
            out.extend_from_slice(s.as_bytes());
        }
        (Wire::Bytea, Kind::Bytes(b)) => push_field(out, b),
        (Wire::Uuid, Kind::Uuid(b)) if b.len() == 16 => push_field(out, b),
        (wire, _) => {
            return Err((
                format!(
                    "a {} value cannot be written to a {} column",
                    cdc_model::value::kind_name(value),
                    wire.name()
                ),
                "42804",
            ));
        }
    }
    Ok(())
}

/// `value` as a single, or `None` where PostgreSQL refuses it for `real`: beyond the range of
/// a single, or so small that it would become zero.
fn single(value: f64) -> Option<f32> {
    #[allow(clippy::cast_possible_truncation)]
    let single = value as f32;
    let overflow = value.is_finite() && single.is_infinite();
    let underflow = value != 0.0 && single == 0.0;
    (!overflow && !underflow).then_some(single)
}

/// A `timestamp` or `timestamptz` of `seconds` and `nanos` since the Unix epoch.
fn push_time_point(
    out: &mut Vec<u8>,
    seconds: i64,
    nanos: u32,
    wire: Wire,
) -> Result<(), ValueRefusal> {
    let micros = (-MAX_SECONDS..=MAX_SECONDS)
        .contains(&seconds)
        .then(|| micros_rounded(seconds, nanos))
        .and_then(postgres_timestamp);
    match micros {
        Some(micros) => {
            push_field(out, &micros.to_be_bytes());
            Ok(())
        }
        None => Err((
            format!("{seconds} s since 1970 is out of range for {}", wire.name()),
            "22008",
        )),
    }
}

/// Microseconds since the Unix epoch as PostgreSQL's, if in its range.
fn postgres_timestamp(unix_micros: i64) -> Option<i64> {
    unix_micros
        .checked_sub(POSTGRES_EPOCH_MICROS)
        .filter(|micros| POSTGRES_TIMESTAMPS.contains(micros))
}

/// Nanoseconds since midnight rounded to microseconds (half away from zero, as the canonical
/// form rounds); 23:59:59.9999995 and later become 24:00:00, which PostgreSQL's `time` holds.
fn micros_of_nanos(nanos: i64) -> i64 {
    (nanos + 500) / 1_000
}

/// `unscaled × 10^-scale` as `numeric`: digit count, weight (the power of 10000 of the first
/// digit), sign, display scale, then base-10000 digits aligned on the decimal point, without
/// leading or trailing zero digits.
fn push_numeric(out: &mut Vec<u8>, unscaled: i128, scale: u32) {
    // Decimal digits, least significant first; a `Decimal` has at most 38 (an `i64` 19).
    let mut decimal = [0u8; 40];
    let mut count = 0usize;
    let mut rest = unscaled.unsigned_abs();
    while rest > 0 && count < decimal.len() {
        decimal[count] = (rest % 10) as u8;
        rest /= 10;
        count += 1;
    }
    let scale = i64::from(scale);
    // The decimal digit of 10^exponent.
    let digit = |exponent: i64| -> u16 {
        usize::try_from(exponent + scale)
            .ok()
            .and_then(|at| decimal.get(at).filter(|_| at < count))
            .map_or(0, |d| u16::from(*d))
    };
    let mut groups = [0u16; 12];
    let mut ndigits = 0usize;
    let mut weight = 0i64;
    if let Some(lowest) = decimal[..count].iter().position(|d| *d != 0) {
        let highest_exponent = count as i64 - 1 - scale;
        let lowest_exponent = lowest as i64 - scale;
        weight = highest_exponent.div_euclid(4);
        let last = lowest_exponent.div_euclid(4);
        let mut group = weight;
        while group >= last && ndigits < groups.len() {
            let base = group * 4;
            groups[ndigits] =
                digit(base + 3) * 1000 + digit(base + 2) * 100 + digit(base + 1) * 10 + digit(base);
            ndigits += 1;
            group -= 1;
        }
    }
    let sign = if unscaled < 0 && ndigits > 0 {
        NUMERIC_NEGATIVE
    } else {
        0
    };
    push_length(out, 8 + 2 * ndigits);
    // At most 12 digits, a weight within ±20 and a scale of at most 38: each fits an i16.
    out.extend_from_slice(&(ndigits as i16).to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as i16).to_be_bytes());
    for group in &groups[..ndigits] {
        out.extend_from_slice(&group.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdc_model::proto::{ColumnSchema, ColumnType, LogicalType, Timestamp};
    use cdc_model::value::{null, of};

    fn numeric(unscaled: i128, scale: u32) -> Vec<u8> {
        let mut out = Vec::new();
        push_numeric(&mut out, unscaled, scale);
        out
    }

    /// Length, then ndigits, weight, sign, dscale and the digits, as 16-bit words.
    fn words(length: i32, words: &[i16]) -> Vec<u8> {
        let mut out = length.to_be_bytes().to_vec();
        for word in words {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_are_base_10000_digits_aligned_on_the_decimal_point() {
        // 101.00
        assert_eq!(numeric(10_100, 2), words(10, &[1, 0, 0, 2, 101]));
        // -12345678.0001
        assert_eq!(
            numeric(-123_456_780_001, 4),
            words(14, &[3, 1, 0x4000, 4, 1234, 5678, 1])
        );
        // 0.00012 is 0.0001 2000; 0.000012 has its first digit in the second group.
        assert_eq!(numeric(12, 5), words(12, &[2, -1, 0, 5, 1, 2000]));
        assert_eq!(numeric(12, 6), words(10, &[1, -2, 0, 6, 1200]));
        // 10000 is one digit of weight 1; trailing zero digits are left out.
        assert_eq!(numeric(10_000, 0), words(10, &[1, 1, 0, 0, 1]));
        // Zero, even a negative scale-2 one, has no digits and a positive sign.
        assert_eq!(numeric(0, 2), words(8, &[0, 0, 0, 2]));
        // 38 nines with scale 38.
        let nines = 10i128.pow(38) - 1;
        let mut expected = vec![10, -1, 0, 38];
        expected.extend([9999; 9]);
        expected.push(9900);
        assert_eq!(numeric(nines, 38), words(28, &expected));
    }

    fn column(name: &str, logical: LogicalType) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            r#type: Some(ColumnType {
                logical: logical as i32,
                ..Default::default()
            }),
            nullable: true,
        }
    }

    fn stage(columns: Vec<ColumnSchema>) -> StageRows {
        StageRows::new(
            &TableSchema {
                columns,
                ..Default::default()
            },
            0,
        )
    }

    const TAIL: Tail<'static> = Tail {
        position: &[7],
        commit_time_micros: POSTGRES_EPOCH_MICROS + 1,
        delete: true,
        row_key: &[1, 2],
    };

    #[test]
    fn a_row_is_its_field_count_then_each_field_with_its_length() {
        let mut rows = stage(vec![
            column("id", LogicalType::Int32),
            column("note", LogicalType::Text),
            column("at", LogicalType::Timestamp),
        ]);
        let at = of(Kind::Timestamp(Timestamp {
            seconds: 946_684_800,
            nanos: 1_500,
        }));
        rows.push([of(Kind::Int64(-2)), null(), at].iter(), &TAIL)
            .unwrap();
        let data = rows.finish();
        let mut expected = HEADER.to_vec();
        expected.extend_from_slice(&7i16.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xfe]);
        expected.extend_from_slice(&[0xff; 4]);
        // 2000-01-01 00:00:00.0000015 rounds to 2 µs.
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 2]);
        expected.extend_from_slice(&[0, 0, 0, 1, 7]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0, 0, 0, 1, 1]);
        expected.extend_from_slice(&[0, 0, 0, 2, 1, 2]);
        expected.extend_from_slice(&TRAILER);
        assert_eq!(data, expected);
    }

    #[test]
    fn values_beyond_or_outside_their_column_type_are_refused_by_column_and_leave_no_trace() {
        let mut rows = stage(vec![
            column("small", LogicalType::Int16),
            column("real", LogicalType::Float32),
        ]);
        let too_big = rows
            .push([of(Kind::Int64(40_000)), null()].iter(), &TAIL)
            .unwrap_err();
        assert_eq!(too_big.column, "small");
        assert_eq!(too_big.code, "22003");
        assert!(too_big.reason.contains("40000"), "{}", too_big.reason);
        let huge = rows
            .push([null(), of(Kind::Float64(1e300))].iter(), &TAIL)
            .unwrap_err();
        assert_eq!((huge.column.as_str(), huge.code), ("real", "22003"));
        let text = rows
            .push([of(Kind::Text("12".into())), null()].iter(), &TAIL)
            .unwrap_err();
        assert_eq!(text.code, "42804");
        assert_eq!(
            text.to_string(),
            "column small: a text value cannot be written to a smallint column"
        );
        assert_eq!(rows.finish().len(), HEADER.len() + TRAILER.len());
    }

    #[test]
    fn times_beyond_postgresql_s_calendar_are_refused_not_made_infinite() {
        let mut rows = stage(vec![column("at", LogicalType::Timestamp)]);
        for seconds in [i64::MAX, i64::MIN, -300_000_000_000] {
            let beyond = of(Kind::Timestamp(Timestamp { seconds, nanos: 0 }));
            let refusal = rows.push([beyond].iter(), &TAIL).unwrap_err();
            assert_eq!((refusal.column.as_str(), refusal.code), ("at", "22008"));
        }
        let garbage_commit = Tail {
            commit_time_micros: i64::MIN,
            ..TAIL
        };
        let refusal = rows.push([null()].iter(), &garbage_commit).unwrap_err();
        assert_eq!(refusal.column, "_cdc_commit_time");
        assert_eq!(rows.finish().len(), HEADER.len() + TRAILER.len());
    }

    #[test]
    fn a_delete_with_only_its_key_has_the_key_values_in_their_columns_and_null_elsewhere() {
        let schema = TableSchema {
            columns: vec![
                column("note", LogicalType::Text),
                column("b", LogicalType::Int32),
                column("a", LogicalType::Int16),
            ],
            key_columns: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        let mut rows = StageRows::new(&schema, 0);
        rows.push_key_only(&[of(Kind::Int64(1)), of(Kind::Int64(2))], &TAIL)
            .unwrap();
        let data = rows.finish();
        let fields = &data[HEADER.len() + 2..];
        assert_eq!(&fields[..4], &NULL_FIELD);
        assert_eq!(&fields[4..12], &[0, 0, 0, 4, 0, 0, 0, 2]);
        assert_eq!(&fields[12..18], &[0, 0, 0, 2, 0, 1]);
    }

    #[test]
    fn xml_and_varchar_are_text_and_json_has_its_version_byte() {
        let mut rows = stage(vec![
            column("doc", LogicalType::Json),
            column("xml", LogicalType::Xml),
        ]);
        rows.push(
            [of(Kind::Json("{}".into())), of(Kind::Xml("<a/>".into()))].iter(),
            &TAIL,
        )
        .unwrap();
        let data = rows.finish();
        let fields = &data[HEADER.len() + 2..];
        assert_eq!(&fields[..7], &[0, 0, 0, 3, 1, b'{', b'}']);
        assert_eq!(&fields[7..15], b"\0\0\0\x04<a/>");
    }
}

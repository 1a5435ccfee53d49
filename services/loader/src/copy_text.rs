//! Values written in PostgreSQL's COPY text format, exactly: decimals as their digits, floats
//! in their shortest round-trip form, times rounded to microseconds the way the reconciler's
//! canonical form rounds them, bytes in hex.
//!
//! A value whose kind does not fit its column's type is still written as it is; PostgreSQL
//! refuses the row and the loader sends that event to the dead-letter topic with the reason.

use std::fmt::Write as _;

use cdc_model::calendar::civil_from_days;
use cdc_model::canonical::micros_rounded;
use cdc_model::proto::Value;
use cdc_model::proto::value::Kind;

/// One COPY row being written into a buffer.
pub struct CopyRow<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> CopyRow<'a> {
    /// Starts a row at the end of `out`.
    pub fn new(out: &'a mut Vec<u8>) -> CopyRow<'a> {
        CopyRow { out, first: true }
    }

    fn separate(&mut self) {
        if !self.first {
            self.out.push(b'\t');
        }
        self.first = false;
    }

    /// Appends SQL NULL.
    pub fn null(&mut self) {
        self.separate();
        self.out.extend_from_slice(b"\\N");
    }

    /// Appends bytes as `bytea` hex.
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.separate();
        push_bytea(self.out, bytes);
    }

    /// Appends a boolean.
    pub fn bool(&mut self, value: bool) {
        self.separate();
        self.out.push(if value { b't' } else { b'f' });
    }

    /// Appends a timestamptz given as microseconds since the Unix epoch (UTC).
    pub fn timestamptz_micros(&mut self, micros: i64) {
        self.separate();
        push_timestamp(self.out, micros);
        self.out.extend_from_slice(b"+00");
    }

    /// Appends a typed value.
    pub fn value(&mut self, value: &Value) {
        self.separate();
        push_value(self.out, value);
    }

    /// Ends the row.
    pub fn finish(self) {
        self.out.push(b'\n');
    }
}

fn push_value(out: &mut Vec<u8>, value: &Value) {
    let Some(kind) = &value.kind else {
        out.extend_from_slice(b"\\N");
        return;
    };
    match kind {
        Kind::Null(_) => out.extend_from_slice(b"\\N"),
        Kind::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Kind::Int64(i) => push_i64(out, *i),
        Kind::Float64(f) => push_float(out, *f),
        Kind::Decimal(d) => match cdc_model::Decimal::from_proto(d) {
            Ok(decimal) => push_display(out, &decimal),
            // PostgreSQL refuses this text in a numeric column, which dead-letters the event.
            Err(_) => out.extend_from_slice(b"invalid decimal"),
        },
        Kind::Text(s) | Kind::Json(s) | Kind::Xml(s) => push_escaped(out, s),
        Kind::Bytes(b) => push_bytea(out, b),
        Kind::Uuid(b) => push_uuid(out, b),
        Kind::Date(days) => push_date(out, *days),
        Kind::TimeNanos(nanos) => push_time_of_day(out, micros_of_nanos(*nanos)),
        Kind::Timestamp(t) => push_timestamp(out, micros_rounded(t.seconds, t.nanos)),
        Kind::Timestamptz(t) => {
            push_timestamp(out, micros_rounded(t.utc_seconds, t.nanos));
            out.extend_from_slice(b"+00");
        }
    }
}

/// Decimal digits of an integer, without going through `fmt` (this is the hot path).
fn push_i64(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    push_digits(out, value.unsigned_abs(), 1);
}

/// `value` in decimal, zero-padded to at least `width` digits.
fn push_digits(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while value > 0 || digits.len() - at < width {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    out.extend_from_slice(&digits[at..]);
}

fn push_display(out: &mut Vec<u8>, value: &dyn std::fmt::Display) {
    let mut text = String::new();
    let _ = write!(text, "{value}");
    out.extend_from_slice(text.as_bytes());
}

fn push_float(out: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        });
    } else {
        // Debug prints the shortest text that parses back to the same double.
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        out.extend_from_slice(text.as_bytes());
    }
}

/// COPY text escapes: backslash and the row and column delimiters.
fn push_escaped(out: &mut Vec<u8>, text: &str) {
    for &byte in text.as_bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            other => out.push(other),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Two hex digits of every byte value, so bytes are written a pair at a time.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [HEX[byte >> 4], HEX[byte & 0xf]];
        byte += 1;
    }
    pairs
};

/// `\x…` with its backslash escaped for COPY.
fn push_bytea(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(3 + 2 * bytes.len());
    out.extend_from_slice(b"\\\\x");
    for &byte in bytes {
        out.extend_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
}

fn push_uuid(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() != 16 {
        // PostgreSQL refuses it, which dead-letters the event.
        out.extend_from_slice(b"invalid uuid");
        return;
    }
    for (i, &byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 0xf)]);
    }
}

fn push_date(out: &mut Vec<u8>, days: i32) {
    let (year, month, day) = civil_from_days(days);
    // Year 0 is 1 BC in PostgreSQL's notation.
    let (shown_year, era) = if year <= 0 {
        (1 - year, " BC")
    } else {
        (year, "")
    };
    push_digits(out, u64::from(shown_year.unsigned_abs()), 4);
    out.push(b'-');
    push_digits(out, u64::from(month), 2);
    out.push(b'-');
    push_digits(out, u64::from(day), 2);
    out.extend_from_slice(era.as_bytes());
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Nanoseconds since midnight rounded to microseconds (half away from zero, as the canonical
/// form rounds); 23:59:59.9999995 and later become 24:00:00, which PostgreSQL's `time` holds.
fn micros_of_nanos(nanos: i64) -> i64 {
    (nanos + 500) / 1_000
}

fn push_time_of_day(out: &mut Vec<u8>, micros: i64) {
    let micros = micros.unsigned_abs();
    let (hours, rest) = (micros / 3_600_000_000, micros % 3_600_000_000);
    let (minutes, rest) = (rest / 60_000_000, rest % 60_000_000);
    let (seconds, fraction) = (rest / 1_000_000, rest % 1_000_000);
    push_digits(out, hours, 2);
    out.push(b':');
    push_digits(out, minutes, 2);
    out.push(b':');
    push_digits(out, seconds, 2);
    out.push(b'.');
    push_digits(out, fraction, 6);
}

fn push_timestamp(out: &mut Vec<u8>, micros: i64) {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let of_day = micros.rem_euclid(MICROS_PER_DAY);
    match i32::try_from(days) {
        Ok(days) => push_date(out, days),
        // Out of every calendar PostgreSQL knows: it refuses the row.
        Err(_) => out.extend_from_slice(b"invalid timestamp"),
    }
    out.push(b' ');
    push_time_of_day(out, of_day);
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdc_model::proto::{Timestamp, TimestampTz};
    use cdc_model::value::{null, of};

    fn row(values: &[Value]) -> String {
        let mut out = Vec::new();
        let mut row = CopyRow::new(&mut out);
        for value in values {
            row.value(value);
        }
        row.finish();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_escapes_delimiters_and_backslashes() {
        assert_eq!(
            row(&[of(Kind::Text("a\tb\nc\\d\re".into())), null()]),
            "a\\tb\\nc\\\\d\\re\t\\N\n"
        );
    }

    #[test]
    fn numbers_are_exact() {
        let decimal =
            cdc_model::Decimal::new(-12_345_678_901_234_567_890_123_456_789_012_345_678, 10)
                .unwrap();
        assert_eq!(
            row(&[
                of(Kind::Int64(i64::MIN)),
                cdc_model::value::decimal(decimal),
                of(Kind::Float64(0.1)),
                of(Kind::Float64(f64::NEG_INFINITY)),
                of(Kind::Float64(f64::NAN)),
            ]),
            "-9223372036854775808\t-1234567890123456789012345678.9012345678\t0.1\t-Infinity\tNaN\n"
        );
    }

    #[test]
    fn bytes_and_uuids_are_hex() {
        let uuid: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            row(&[of(Kind::Bytes(vec![0, 0xff])), of(Kind::Uuid(uuid))]),
            "\\\\x00ff\t00010203-0405-0607-0809-0a0b0c0d0e0f\n"
        );
    }

    #[test]
    fn times_round_to_microseconds_half_away_from_zero() {
        let last = Timestamp {
            seconds: 253_402_300_799,
            nanos: 999_999_900,
        };
        let before_epoch = Timestamp {
            seconds: -1,
            nanos: 999_999_500,
        };
        let tz = TimestampTz {
            utc_seconds: 0,
            nanos: 1_234_567,
            offset_minutes: -300,
        };
        assert_eq!(
            row(&[
                of(Kind::Timestamp(last)),
                of(Kind::Timestamp(before_epoch)),
                of(Kind::Timestamptz(tz)),
                of(Kind::TimeNanos(86_399_999_999_900)),
                of(Kind::Date(cdc_model::calendar::FIRST_SQL_SERVER_DAY)),
            ]),
            "10000-01-01 00:00:00.000000\t1970-01-01 00:00:00.000000\t1970-01-01 00:00:00.001235+00\t24:00:00.000000\t0001-01-01\n"
        );
    }
}

//! Ordered keys for uuid and temporal values.
//!
//! Each such value becomes one i128 whose integer order is the value's order, so a
//! comparison on the hot path is a single integer comparison. Literals are read into the
//! same keys once, at compile time, from ISO 8601 (and the usual UUID text).

use cdc_model::calendar::days_from_civil;
use cdc_model::value::MAX_OFFSET_MINUTES;

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const SECONDS_PER_DAY: i128 = 86_400;

/// A type compared through ordered keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    Uuid,
    Date,
    Time,
    Timestamp,
    Timestamptz,
}

impl KeyType {
    /// The type's name in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyType::Uuid => "uuid",
            KeyType::Date => "date",
            KeyType::Time => "time",
            KeyType::Timestamp => "timestamp",
            KeyType::Timestamptz => "timestamptz",
        }
    }

    /// A literal of the type, for hints.
    pub(crate) fn example(self) -> &'static str {
        match self {
            KeyType::Uuid => "'6f9619ff-8b86-d011-b42d-00c04fc964ff'",
            KeyType::Date => "'2024-01-31'",
            KeyType::Time => "'12:30:00'",
            KeyType::Timestamp => "'2024-01-31 12:00:00'",
            KeyType::Timestamptz => "'2024-01-31 12:00:00+02:00'",
        }
    }

    fn form(self) -> &'static str {
        match self {
            KeyType::Uuid => "expected 32 hexadecimal digits as 8-4-4-4-12",
            KeyType::Date => "expected YYYY-MM-DD",
            KeyType::Time => "expected HH:MM[:SS[.fffffffff]]",
            KeyType::Timestamp => "expected YYYY-MM-DD[ HH:MM[:SS[.fffffffff]]]",
            KeyType::Timestamptz => "expected YYYY-MM-DD[ HH:MM[:SS[.fffffffff]]][Z|+HH:MM|-HH:MM]",
        }
    }

    /// The key of literal `text`, or why it is not a value of this type.
    pub(crate) fn parse(self, text: &str) -> Result<i128, String> {
        let mut cursor = Cursor {
            text: text.as_bytes(),
            at: 0,
        };
        let key = match self {
            KeyType::Uuid => return parse_uuid(text).ok_or_else(|| self.form().to_owned()),
            KeyType::Date => cursor.date().map(i128::from),
            KeyType::Time => cursor.time().map(i128::from),
            KeyType::Timestamp => cursor.timestamp(false),
            KeyType::Timestamptz => cursor.timestamp(true),
        };
        match key {
            Ok(key) if cursor.done() => Ok(key),
            Ok(_) | Err(Bad::Shape) => Err(self.form().to_owned()),
            Err(Bad::Range(reason)) => Err(reason),
        }
    }
}

/// The key of an instant or wall-clock time; None for out-of-range nanoseconds.
pub(crate) fn instant_key(seconds: i64, nanos: u32) -> Option<i128> {
    let nanos = i128::from(nanos);
    (nanos < NANOS_PER_SECOND).then(|| i128::from(seconds) * NANOS_PER_SECOND + nanos)
}

/// The key of a uuid's 16 bytes; None for any other length.
pub(crate) fn uuid_key(bytes: &[u8]) -> Option<i128> {
    let bytes: [u8; 16] = bytes.try_into().ok()?;
    Some(order_preserving(u128::from_be_bytes(bytes)))
}

/// Flipping the top bit maps unsigned order onto signed order; the bytes are in textual
/// order, so this is also the order of the lowercase hyphenated text.
fn order_preserving(value: u128) -> i128 {
    (value ^ (1 << 127)) as i128
}

/// A uuid written as 8-4-4-4-12 or 32 bare hex digits, in either case, optionally in braces.
fn parse_uuid(text: &str) -> Option<i128> {
    let body = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let hyphens_at: Vec<usize> = body.match_indices('-').map(|(at, _)| at).collect();
    if !(hyphens_at.is_empty() || hyphens_at == [8, 13, 18, 23]) {
        return None;
    }
    let digits: String = body.chars().filter(|c| *c != '-').collect();
    if digits.len() != 32 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&digits, 16).ok().map(order_preserving)
}

/// Why a literal was refused: the wrong form, or a field out of range (with the reason).
enum Bad {
    Shape,
    Range(String),
}

fn check_range(
    value: u32,
    range: std::ops::RangeInclusive<u32>,
    reason: impl FnOnce() -> String,
) -> Result<u32, Bad> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(Bad::Range(reason()))
    }
}

struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.at == self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8) -> Result<(), Bad> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(Bad::Shape)
        }
    }

    /// Exactly `width` digits.
    fn digits(&mut self, width: usize) -> Result<u32, Bad> {
        let digits = self.text.get(self.at..self.at + width).ok_or(Bad::Shape)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(Bad::Shape);
        }
        self.at += width;
        Ok(digits
            .iter()
            .fold(0, |value, digit| value * 10 + u32::from(digit - b'0')))
    }

    /// `YYYY-MM-DD` as days since 1970-01-01.
    fn date(&mut self) -> Result<i32, Bad> {
        let year = self.digits(4)?;
        self.expect(b'-')?;
        let month = self.digits(2)?;
        self.expect(b'-')?;
        let day = self.digits(2)?;
        let year = check_range(year, 1..=9999, || "year 0000 is out of range".to_owned())?;
        let month = check_range(month, 1..=12, || {
            format!("month {month:02} is out of range")
        })?;
        let last_day = days_in_month(year, month);
        check_range(day, 1..=last_day, || {
            format!("day {day:02} does not exist in {year:04}-{month:02}")
        })?;
        let year = i32::try_from(year).map_err(|_| Bad::Shape)?;
        Ok(days_from_civil(year, month, day))
    }

    /// `HH:MM[:SS[.fffffffff]]` as nanoseconds since midnight.
    fn time(&mut self) -> Result<i64, Bad> {
        let hour = self.digits(2)?;
        self.expect(b':')?;
        let minute = self.digits(2)?;
        let (second, nanos) = if self.eat(b':') {
            let second = self.digits(2)?;
            // Fractions only follow seconds: `12:30.5` is not a time.
            let nanos = if self.eat(b'.') { self.fraction()? } else { 0 };
            (second, nanos)
        } else {
            (0, 0)
        };
        check_range(hour, 0..=23, || format!("hour {hour:02} is out of range"))?;
        check_range(minute, 0..=59, || {
            format!("minute {minute:02} is out of range")
        })?;
        check_range(second, 0..=59, || {
            format!("second {second:02} is out of range")
        })?;
        let seconds = i64::from(hour * 3600 + minute * 60 + second);
        Ok(seconds * 1_000_000_000 + i64::from(nanos))
    }

    /// One to nine fractional digits as nanoseconds.
    fn fraction(&mut self) -> Result<u32, Bad> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let count = self.at - start;
        if count == 0 {
            return Err(Bad::Shape);
        }
        if count > 9 {
            return Err(Bad::Range(format!(
                "{count} fractional digits, at most 9 are allowed"
            )));
        }
        self.at = start;
        let value = self.digits(count)?;
        Ok(value * 10u32.pow(9 - u32::try_from(count).map_err(|_| Bad::Shape)?))
    }

    /// A date with optional time (and, `with_zone`, optional offset) as nanoseconds since the
    /// epoch of the UTC instant, or of the wall-clock time without zone.
    fn timestamp(&mut self, with_zone: bool) -> Result<i128, Bad> {
        let days = self.date()?;
        let nanos_of_day = if self.done() {
            0
        } else if self.eat(b' ') || self.eat(b'T') || self.eat(b't') {
            self.time()?
        } else {
            return Err(Bad::Shape);
        };
        let offset_minutes = if with_zone {
            self.offset()?
        } else if matches!(self.peek(), Some(b'+' | b'-' | b'Z' | b'z')) {
            return Err(Bad::Range(
                "a timestamp column has no time zone, so the literal cannot have an offset"
                    .to_owned(),
            ));
        } else {
            0
        };
        let local_seconds = i128::from(days) * SECONDS_PER_DAY - i128::from(offset_minutes) * 60;
        Ok(local_seconds * NANOS_PER_SECOND + i128::from(nanos_of_day))
    }

    /// An optional `Z`, `±HH:MM`, `±HHMM` or `±HH`, after an optional space; minutes east of UTC.
    fn offset(&mut self) -> Result<i32, Bad> {
        let before_space = self.at;
        self.eat(b' ');
        if self.eat(b'Z') || self.eat(b'z') {
            return Ok(0);
        }
        let sign = match self.peek() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => {
                self.at = before_space;
                return Ok(0);
            }
        };
        self.at += 1;
        let hours = self.digits(2)?;
        let minutes = if self.eat(b':') || self.peek().is_some() {
            self.digits(2)?
        } else {
            0
        };
        let minutes = check_range(minutes, 0..=59, || {
            format!("offset minute {minutes:02} is out of range")
        })?;
        let total = i32::try_from(hours * 60 + minutes).map_err(|_| Bad::Shape)?;
        if total > MAX_OFFSET_MINUTES {
            return Err(Bad::Range(format!(
                "offset {hours:02}:{minutes:02} is beyond ±14:00"
            )));
        }
        Ok(sign * total)
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NANOS: i128 = NANOS_PER_SECOND;

    #[test]
    fn dates() {
        assert_eq!(KeyType::Date.parse("1970-01-02"), Ok(1));
        assert_eq!(KeyType::Date.parse("2000-02-29"), Ok(11_016));
        assert_eq!(
            KeyType::Date.parse("2023-02-29"),
            Err("day 29 does not exist in 2023-02".to_owned())
        );
        assert_eq!(
            KeyType::Date.parse("2024-13-01"),
            Err("month 13 is out of range".to_owned())
        );
        assert_eq!(
            KeyType::Date.parse("0000-01-01"),
            Err("year 0000 is out of range".to_owned())
        );
        for bad in [
            "2024-1-31",
            "2024/01/31",
            "2024-01-31 00:00",
            "",
            "24-01-31",
        ] {
            assert_eq!(
                KeyType::Date.parse(bad),
                Err("expected YYYY-MM-DD".to_owned()),
                "{bad}"
            );
        }
    }

    #[test]
    fn times() {
        let nanos = |h: i128, m: i128, s: i128| ((h * 60 + m) * 60 + s) * NANOS;
        assert_eq!(KeyType::Time.parse("12:30"), Ok(nanos(12, 30, 0)));
        assert_eq!(
            KeyType::Time.parse("12:30:00.5"),
            Ok(nanos(12, 30, 0) + NANOS / 2)
        );
        assert_eq!(
            KeyType::Time.parse("23:59:59.999999999"),
            Ok(nanos(24, 0, 0) - 1)
        );
        assert_eq!(
            KeyType::Time.parse("24:00:00"),
            Err("hour 24 is out of range".to_owned())
        );
        assert_eq!(
            KeyType::Time.parse("00:00:00.0123456789"),
            Err("10 fractional digits, at most 9 are allowed".to_owned())
        );
        for bad in ["12", "12:30.5", "12:30:00.", "1:30", "12:30:00Z"] {
            assert!(KeyType::Time.parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        let noon = (19_753 * SECONDS_PER_DAY + 12 * 3600) * NANOS;
        assert_eq!(KeyType::Timestamp.parse("2024-01-31 12:00:00"), Ok(noon));
        assert_eq!(KeyType::Timestamp.parse("2024-01-31T12:00"), Ok(noon));
        assert_eq!(
            KeyType::Timestamp.parse("2024-01-31 12:00:00.25"),
            Ok(noon + NANOS / 4)
        );
        assert_eq!(
            KeyType::Timestamp.parse("2024-01-31"),
            Ok(noon - 12 * 3600 * NANOS)
        );
        assert_eq!(
            KeyType::Timestamp.parse("2024-01-31 12:00:00Z"),
            Err(
                "a timestamp column has no time zone, so the literal cannot have an offset"
                    .to_owned()
            )
        );
    }

    #[test]
    fn timestamptz_literals_are_utc_instants() {
        let ten_utc = (19_753 * SECONDS_PER_DAY + 10 * 3600) * NANOS;
        for text in [
            "2024-01-31 12:00:00+02:00",
            "2024-01-31T12:00:00+0200",
            "2024-01-31 12:00:00 +02",
            "2024-01-31T10:00:00Z",
            "2024-01-31 10:00:00",
            "2024-01-31 05:30:00-04:30",
        ] {
            assert_eq!(KeyType::Timestamptz.parse(text), Ok(ten_utc), "{text}");
        }
        assert_eq!(
            KeyType::Timestamptz.parse("2024-01-31 10:00:00+15:00"),
            Err("offset 15:00 is beyond ±14:00".to_owned())
        );
        assert!(KeyType::Timestamptz.parse("2024-01-31 10:00:00+2").is_err());
    }

    #[test]
    fn uuids_order_as_their_lowercase_text() {
        let low = KeyType::Uuid
            .parse("7fffffff-ffff-ffff-ffff-ffffffffffff")
            .unwrap();
        let high = KeyType::Uuid
            .parse("80000000-0000-0000-0000-000000000000")
            .unwrap();
        assert!(low < high);
        assert_eq!(
            KeyType::Uuid.parse("{6F9619FF-8B86-D011-B42D-00C04FC964FF}"),
            KeyType::Uuid.parse("6f9619ff8b86d011b42d00c04fc964ff")
        );
        let bytes = [
            0x6f, 0x96, 0x19, 0xff, 0x8b, 0x86, 0xd0, 0x11, 0xb4, 0x2d, 0x00, 0xc0, 0x4f, 0xc9,
            0x64, 0xff,
        ];
        assert_eq!(
            uuid_key(&bytes),
            KeyType::Uuid
                .parse("6f9619ff-8b86-d011-b42d-00c04fc964ff")
                .ok()
        );
        assert_eq!(uuid_key(&bytes[..15]), None);
        for bad in [
            "6f9619ff-8b86-d011-b42d-00c04fc964f",
            "6f9619ff8b86-d011-b42d-00c04fc964ff0",
            "+f9619ff8b86d011b42d00c04fc964ff",
        ] {
            assert!(KeyType::Uuid.parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instant_keys_refuse_out_of_range_nanos() {
        assert_eq!(instant_key(-1, 999_999_999), Some(-1));
        assert_eq!(instant_key(0, 1_000_000_000), None);
    }
}

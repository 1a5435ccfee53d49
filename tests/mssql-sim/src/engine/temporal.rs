//! Dates and times: ISO 8601 text, and conversion between the date and time types with
//! SQL Server's rounding to each type's precision.
//!
//! The calendar arithmetic is written again here rather than taken from `cdc-model`: the
//! simulator stands in for SQL Server in the product's tests, so it shares no code with the
//! product, and a bug in one cannot hide the same bug in the other.

use super::error::{self, SqlError};
use crate::tds::types::{DAYS_TO_1900, SqlType, SqlValue, TICKS_PER_DAY};

const TICKS_PER_SECOND: u64 = 10_000_000;
/// Days from 0001-01-01 to 1970-01-01.
const DAYS_TO_1970: i32 = 719_162;

/// Days since 0001-01-01 of a civil date.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = month as i32;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day as i32 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468 + DAYS_TO_1970
}

/// The civil date of a day since 0001-01-01.
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = days - DAYS_TO_1970 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    (year_of_era + era * 400 + i32::from(month <= 2), month, day)
}

/// A parsed date/time string: date (if any), ticks of the day, offset (if any).
struct Parsed {
    days: Option<i32>,
    ticks: u64,
    offset_minutes: Option<i16>,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses the forms SQL Server reads under `us_english` (DATEFORMAT mdy): ISO 8601
/// (`2024-01-02`, `2024-01-02T03:04:05.1234567+02:00`), `20240102`, `01/02/2024`,
/// `Jan 2 2024`, each optionally followed by a time (`3:04PM` too), or a time alone.
fn parse(text: &str) -> Option<Parsed> {
    let text = text.trim();
    let (days, rest) = match parse_date(text) {
        Some((days, rest)) => (Some(days), rest.trim_start_matches(['T', ' '])),
        None => (None, text),
    };
    if rest.is_empty() {
        return days.map(|days| Parsed {
            days: Some(days),
            ticks: 0,
            offset_minutes: None,
        });
    }
    let (ticks, offset_minutes) = parse_time_and_offset(rest)?;
    Some(Parsed {
        days,
        ticks,
        offset_minutes,
    })
}

/// A leading date and what follows it.
fn parse_date(text: &str) -> Option<(i32, &str)> {
    let bytes = text.as_bytes();
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    let civil = |y: u32, m: u32, d: u32| -> Option<i32> {
        ((1..=9999).contains(&y)
            && (1..=12).contains(&m)
            && (1..=days_in_month(y as i32, m)).contains(&d))
        .then(|| days_from_civil(y as i32, m, d))
    };
    let number = |s: &str| s.parse::<u32>().ok();
    if digits == 4 && bytes.get(4) == Some(&b'-') {
        let date = text.get(..10)?;
        let mut parts = date.split('-').map(number);
        let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
        return Some((civil(y, m, d)?, &text[10..]));
    }
    if digits == 8 {
        let (y, m, d) = (
            number(&text[..4])?,
            number(&text[4..6])?,
            number(&text[6..8])?,
        );
        return Some((civil(y, m, d)?, &text[8..]));
    }
    if (1..=2).contains(&digits) && matches!(bytes.get(digits), Some(b'/' | b'-' | b'.')) {
        let separator = char::from(bytes[digits]);
        let end = text.find(' ').unwrap_or(text.len());
        let mut parts = text[..end].split(separator).map(number);
        let (m, d, y) = (parts.next()??, parts.next()??, parts.next()??);
        if parts.next().is_some() || y < 1000 {
            return None;
        }
        return Some((civil(y, m, d)?, &text[end..]));
    }
    if digits == 0 && text.len() >= 3 && text.is_char_boundary(3) {
        let month = MONTHS
            .iter()
            .position(|m| text[..3].eq_ignore_ascii_case(m))? as u32
            + 1;
        let rest = text[3..].trim_start();
        let day_digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let day = number(&rest[..day_digits])?;
        let rest = rest[day_digits..].trim_start_matches(',').trim_start();
        let year_digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if year_digits != 4 {
            return None;
        }
        let year = number(&rest[..4])?;
        return Some((civil(year, month, day)?, &rest[4..]));
    }
    None
}

fn parse_time_and_offset(text: &str) -> Option<(u64, Option<i16>)> {
    let text = text.trim();
    let upper = text.to_ascii_uppercase();
    let (text, meridiem) = if let Some(t) = upper.strip_suffix("AM") {
        (&text[..t.len()], Some(false))
    } else if let Some(t) = upper.strip_suffix("PM") {
        (&text[..t.len()], Some(true))
    } else {
        (text, None)
    };
    let split = text.find(['+', '-', 'Z']).unwrap_or(text.len());
    let (time, offset) = text.split_at(split);
    let time = time.trim();
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut fields = clock.split(':').map(|f| f.parse::<u64>().ok());
    let (mut hour, minute) = (fields.next()??, fields.next()??);
    let second = fields.next().flatten().unwrap_or(0);
    if fields.next().is_some() {
        return None;
    }
    if let Some(pm) = meridiem {
        if !(1..=12).contains(&hour) {
            return None;
        }
        hour = hour % 12 + if pm { 12 } else { 0 };
    }
    if hour > 23
        || minute > 59
        || second > 59
        || fraction.len() > 7
        || !fraction.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let fraction_ticks = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<7}").parse::<u64>().ok()?
    };
    let ticks = (hour * 3600 + minute * 60 + second) * TICKS_PER_SECOND + fraction_ticks;
    let offset = match offset.trim() {
        "" => None,
        "Z" => Some(0),
        signed => Some(parse_offset(signed)?),
    };
    Some((ticks, offset))
}

/// Minutes of a `+hh:mm` / `-hh:mm` offset within ±14:00.
pub fn parse_offset(text: &str) -> Option<i16> {
    let text = text.trim();
    let (sign, hhmm) = (text.get(..1)?, text.get(1..)?);
    let (h, m) = hhmm.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<i16>().ok()?, m.parse::<i16>().ok()?);
    if m > 59 {
        return None;
    }
    let minutes = h * 60 + m;
    if minutes > 840 {
        return None;
    }
    match sign {
        "+" => Some(minutes),
        "-" => Some(-minutes),
        _ => None,
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Rounds `ticks` to `scale` fractional digits (halves up); may reach the next day.
fn round_ticks(ticks: u64, scale: u8) -> u64 {
    let unit = 10u64.pow(7 - u32::from(scale.min(7)));
    (ticks + unit / 2) / unit * unit
}

/// `datetime` ticks (held as the 100 ns tick at or just after each 1/300 s) rounded to `scale`
/// from the exact 1/300 s value, as SQL Server 2016 and later convert datetime to datetime2:
/// `.003` (1/300 s) becomes `.0033333` at scale 7 and `.003` at scale 3.
fn round_datetime_ticks(ticks: u64, scale: u8) -> u64 {
    let units = (ticks * 3 + 50_000) / 100_000;
    let unit = 10u64.pow(7 - u32::from(scale.min(7)));
    (units * 200_000 + 3 * unit) / (6 * unit) * unit
}

/// Splits day overflow from rounding into the date.
fn normalise(days: i32, ticks: u64) -> (i32, u64) {
    (days + (ticks / TICKS_PER_DAY) as i32, ticks % TICKS_PER_DAY)
}

/// Local (days, ticks) of a datetimeoffset held as UTC plus offset.
fn local(days: i32, ticks: u64, offset_minutes: i16) -> (i32, u64) {
    let local = i64::from(days) * TICKS_PER_DAY as i64
        + ticks as i64
        + i64::from(offset_minutes) * 60 * TICKS_PER_SECOND as i64;
    (
        local.div_euclid(TICKS_PER_DAY as i64) as i32,
        local.rem_euclid(TICKS_PER_DAY as i64) as u64,
    )
}

/// 242: a date outside the target type's range.
fn out_of_range(from: SqlType, to: SqlType) -> SqlError {
    let base = |t: SqlType| {
        let name = super::datatype::name(t);
        name.split('(').next().unwrap_or(&name).to_owned()
    };
    crate::tds::token::ServerMessage {
        number: 242,
        state: 3,
        class: 16,
        text: format!(
            "The conversion of a {} data type to a {} data type resulted in an out-of-range value.",
            base(from),
            base(to)
        ),
    }
}

/// Converts a value of type `from` to a date or time type; None when SQL Server forbids the
/// conversion.
pub fn convert(value: SqlValue, from: SqlType, to: SqlType) -> Option<Result<SqlValue, SqlError>> {
    // Everything goes through (local days, local ticks, offset).
    let (days, ticks, offset) = match value {
        SqlValue::Text(ref text) => match parse(text) {
            Some(p) => (
                p.days.unwrap_or(DAYS_TO_1900),
                p.ticks,
                p.offset_minutes.unwrap_or(0),
            ),
            None => return Some(Err(error::date_conversion_failed())),
        },
        SqlValue::Date(days) => {
            if matches!(to, SqlType::Time { .. }) {
                return None;
            }
            (days, 0, 0)
        }
        SqlValue::Time(ticks) => {
            if to == SqlType::Date {
                return None;
            }
            (DAYS_TO_1900, ticks, 0)
        }
        SqlValue::DateTime { days, ticks } => (days, ticks, 0),
        SqlValue::DateTimeOffset {
            days,
            ticks,
            offset_minutes,
        } => {
            let (days, ticks) = local(days, ticks, offset_minutes);
            (days, ticks, offset_minutes)
        }
        _ => return None,
    };
    let exact = |ticks: u64, scale: u8| {
        if from == SqlType::DateTime {
            round_datetime_ticks(ticks, scale)
        } else {
            round_ticks(ticks, scale)
        }
    };
    let last_day = days_from_civil(9999, 12, 31);
    let result = match to {
        SqlType::Date => SqlValue::Date(days),
        SqlType::Time { scale } => SqlValue::Time(exact(ticks, scale) % TICKS_PER_DAY),
        SqlType::DateTime2 { scale } => {
            let (days, ticks) = normalise(days, exact(ticks, scale));
            SqlValue::DateTime { days, ticks }
        }
        SqlType::DateTime => {
            // 1/300 s resolution.
            let three_hundredths = (ticks * 3 + 50_000) / 100_000;
            let (days, ticks) = normalise(days, (three_hundredths * 100_000).div_ceil(3));
            if days < days_from_civil(1753, 1, 1) {
                return Some(Err(out_of_range(from, to)));
            }
            SqlValue::DateTime { days, ticks }
        }
        SqlType::SmallDateTime => {
            let minute = 60 * TICKS_PER_SECOND;
            let (days, ticks) = normalise(days, (ticks + minute / 2) / minute * minute);
            if days < DAYS_TO_1900 || days > days_from_civil(2079, 6, 6) {
                return Some(Err(out_of_range(from, to)));
            }
            SqlValue::DateTime { days, ticks }
        }
        SqlType::DateTimeOffset { scale } => {
            let local = i64::from(days) * TICKS_PER_DAY as i64 + exact(ticks, scale) as i64;
            let utc = local - i64::from(offset) * 60 * TICKS_PER_SECOND as i64;
            SqlValue::DateTimeOffset {
                days: utc.div_euclid(TICKS_PER_DAY as i64) as i32,
                ticks: utc.rem_euclid(TICKS_PER_DAY as i64) as u64,
                offset_minutes: offset,
            }
        }
        _ => return None,
    };
    let beyond = match &result {
        SqlValue::DateTime { days, .. } | SqlValue::Date(days) => *days > last_day,
        SqlValue::DateTimeOffset {
            days,
            ticks,
            offset_minutes,
        } => local(*days, *ticks, *offset_minutes).0 > last_day,
        _ => false,
    };
    if beyond {
        return Some(Err(out_of_range(from, to)));
    }
    Some(Ok(result))
}

/// `SWITCHOFFSET`: the same instant shown at another offset.
pub fn switch_offset(value: SqlValue, offset_minutes: i16) -> SqlValue {
    match value {
        SqlValue::DateTimeOffset { days, ticks, .. } => SqlValue::DateTimeOffset {
            days,
            ticks,
            offset_minutes,
        },
        other => other,
    }
}

/// The parts a date/time value shows: local date, local time, fractional digits, offset.
struct Shown {
    date: Option<(i32, u32, u32)>,
    /// Hours, minutes, seconds.
    clock: Option<(u64, u64, u64)>,
    /// The fraction as the digits of its type (`digits` of them).
    fraction: u64,
    digits: usize,
    offset: Option<i16>,
}

fn shown(value: &SqlValue, from: SqlType) -> Option<Shown> {
    let clock = |ticks: u64| {
        let seconds = ticks / TICKS_PER_SECOND;
        (seconds / 3600, seconds / 60 % 60, seconds % 60)
    };
    let scaled =
        |ticks: u64, digits: usize| (ticks % TICKS_PER_SECOND) / 10u64.pow(7 - digits as u32);
    let digits = usize::from(super::datatype::temporal_scale(from)).min(7);
    Some(match (value, from) {
        (SqlValue::Date(days), _) => Shown {
            date: Some(civil_from_days(*days)),
            clock: None,
            fraction: 0,
            digits: 0,
            offset: None,
        },
        (SqlValue::Time(ticks), _) => Shown {
            date: None,
            clock: Some(clock(*ticks)),
            fraction: scaled(*ticks, digits),
            digits,
            offset: None,
        },
        (SqlValue::DateTime { days, ticks }, SqlType::DateTime) => {
            // Milliseconds of the 1/300 s value, rounded (.003, .007, .010 …).
            let units = (ticks * 3 + 50_000) / 100_000;
            Shown {
                date: Some(civil_from_days(*days)),
                clock: Some(clock(units / 300 * TICKS_PER_SECOND)),
                fraction: ((units % 300) * 10 + 1) / 3,
                digits: 3,
                offset: None,
            }
        }
        (SqlValue::DateTime { days, ticks }, SqlType::SmallDateTime) => Shown {
            date: Some(civil_from_days(*days)),
            clock: Some(clock(*ticks)),
            fraction: 0,
            digits: 0,
            offset: None,
        },
        (SqlValue::DateTime { days, ticks }, _) => Shown {
            date: Some(civil_from_days(*days)),
            clock: Some(clock(*ticks)),
            fraction: scaled(*ticks, digits),
            digits,
            offset: None,
        },
        (
            SqlValue::DateTimeOffset {
                days,
                ticks,
                offset_minutes,
            },
            _,
        ) => {
            let (days, ticks) = local(*days, *ticks, *offset_minutes);
            Shown {
                date: Some(civil_from_days(days)),
                clock: Some(clock(ticks)),
                fraction: scaled(ticks, digits),
                digits,
                offset: Some(*offset_minutes),
            }
        }
        _ => return None,
    })
}

/// The text of a date/time value of type `from` under CONVERT `style` (None: what CAST
/// gives: style 0 for datetime and smalldatetime, ISO 8601 with the type's fractional digits
/// for the others). None when the value is not a date or time.
pub fn to_text(
    value: &SqlValue,
    from: SqlType,
    style: Option<i64>,
) -> Option<Result<String, SqlError>> {
    use std::fmt::Write;
    let parts = shown(value, from)?;
    let style = style.unwrap_or(match from {
        SqlType::DateTime | SqlType::SmallDateTime => 0,
        _ => -1,
    });
    let mut out = String::with_capacity(40);
    // ISO forms are written digit by digit: they are what canonical text is made of, per row.
    let date_iso = |out: &mut String| {
        if let Some((y, m, d)) = parts.date {
            push_padded(out, y.unsigned_abs().into(), 4);
            out.push('-');
            push_padded(out, m.into(), 2);
            out.push('-');
            push_padded(out, d.into(), 2);
        }
    };
    let time_iso = |out: &mut String, digits: usize| {
        if let Some((h, mi, s)) = parts.clock {
            push_padded(out, h, 2);
            out.push(':');
            push_padded(out, mi, 2);
            out.push(':');
            push_padded(out, s, 2);
            if digits > 0 {
                let value = if digits >= parts.digits {
                    parts.fraction * 10u64.pow((digits - parts.digits) as u32)
                } else {
                    parts.fraction / 10u64.pow((parts.digits - digits) as u32)
                };
                out.push('.');
                push_padded(out, value, digits);
            }
        }
    };
    let offset = |out: &mut String| {
        if let Some(minutes) = parts.offset {
            let sign = if minutes < 0 { '-' } else { '+' };
            let abs = minutes.unsigned_abs();
            let _ = write!(out, "{sign}{:02}:{:02}", abs / 60, abs % 60);
        }
    };
    let date_time = |out: &mut String, separator: char, digits: usize| {
        date_iso(out);
        if parts.date.is_some() && parts.clock.is_some() {
            out.push(separator);
        }
        time_iso(out, digits);
    };
    let hour12 = |h: u64| {
        (
            if h.is_multiple_of(12) { 12 } else { h % 12 },
            if h < 12 { "AM" } else { "PM" },
        )
    };
    let century = style >= 100;
    match style {
        // CAST of date, time, datetime2 and datetimeoffset.
        -1 => {
            date_time(&mut out, ' ', parts.digits);
            if parts.offset.is_some() {
                out.push(' ');
                offset(&mut out);
            }
        }
        0 | 100 => {
            if let Some((y, m, d)) = parts.date {
                let _ = write!(out, "{} {d:>2} {y:04}", MONTHS[m as usize - 1]);
            }
            if let Some((h, mi, _)) = parts.clock {
                if parts.date.is_some() {
                    out.push(' ');
                }
                let (h, meridiem) = hour12(h);
                let _ = write!(out, "{h:>2}:{mi:02}{meridiem}");
            }
        }
        1..=7 | 10..=12 | 101..=107 | 110..=112 => {
            let Some((y, m, d)) = parts.date else {
                return Some(Err(error::not_implemented(&format!(
                    "CONVERT style {style} of a time"
                ))));
            };
            let year = if century {
                format!("{y:04}")
            } else {
                format!("{:02}", y % 100)
            };
            let month = MONTHS[m as usize - 1];
            let _ = match style % 100 {
                1 => write!(out, "{m:02}/{d:02}/{year}"),
                2 => write!(out, "{year}.{m:02}.{d:02}"),
                3 => write!(out, "{d:02}/{m:02}/{year}"),
                4 => write!(out, "{d:02}.{m:02}.{year}"),
                5 => write!(out, "{d:02}-{m:02}-{year}"),
                6 => write!(out, "{d:02} {month} {year}"),
                7 => write!(out, "{month} {d:02}, {year}"),
                10 => write!(out, "{m:02}-{d:02}-{year}"),
                11 => write!(out, "{year}/{m:02}/{d:02}"),
                _ => write!(out, "{year}{m:02}{d:02}"),
            };
        }
        8 | 24 | 108 | 14 | 114 => {
            let Some((h, mi, s)) = parts.clock else {
                return Some(Err(error::not_implemented(&format!(
                    "CONVERT style {style} of a date"
                ))));
            };
            let _ = write!(out, "{h:02}:{mi:02}:{s:02}");
            if style % 100 == 14 {
                let ms = if parts.digits >= 3 {
                    parts.fraction / 10u64.pow((parts.digits - 3) as u32)
                } else {
                    parts.fraction * 10u64.pow((3 - parts.digits) as u32)
                };
                let _ = write!(out, ":{ms:03}");
            }
        }
        20 | 120 => date_time(&mut out, ' ', 0),
        21 | 25 | 121 => {
            // datetime and smalldatetime show milliseconds; the others their own digits.
            let digits = match from {
                SqlType::DateTime | SqlType::SmallDateTime => 3,
                _ => parts.digits,
            };
            date_time(&mut out, ' ', digits);
            if parts.offset.is_some() {
                out.push(' ');
                offset(&mut out);
            }
        }
        23 => {
            if parts.date.is_none() {
                return Some(Err(error::not_implemented("CONVERT style 23 of a time")));
            }
            date_iso(&mut out);
        }
        126 | 127 => {
            // datetime leaves out milliseconds that are zero.
            let digits = match from {
                SqlType::DateTime if parts.fraction == 0 => 0,
                SqlType::SmallDateTime => 0,
                _ => parts.digits,
            };
            date_time(&mut out, 'T', digits);
            match parts.offset {
                Some(0) if style == 127 => out.push('Z'),
                Some(_) => offset(&mut out),
                None => {}
            }
        }
        9 | 13 | 22 | 109 | 113 | 130 | 131 => {
            return Some(Err(error::not_implemented(&format!(
                "CONVERT style {style} of dates and times"
            ))));
        }
        other => {
            return Some(Err(invalid_style(other, from)));
        }
    }
    Some(Ok(out))
}

/// Appends `value` in decimal, zero-padded to `width` digits.
fn push_padded(out: &mut String, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    let mut rest = value;
    while rest > 0 && at > 0 {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let start = at.min(digits.len().saturating_sub(width));
    out.extend(digits[start..].iter().map(|d| char::from(*d)));
}

/// 281: a style number CONVERT does not have for this conversion.
pub fn invalid_style(style: i64, from: SqlType) -> SqlError {
    let name = super::datatype::name(from);
    crate::tds::token::ServerMessage {
        number: 281,
        state: 1,
        class: 16,
        text: format!(
            "{style} is not a valid style number when converting from {} to a character string.",
            name.split('(').next().unwrap_or(&name)
        ),
    }
}

/// ISO 8601 text of a date or time value with seven fractional digits (the value's own
/// form, used where no type is at hand); None for others.
pub fn format(value: &SqlValue) -> Option<String> {
    let from = match value {
        SqlValue::Date(_) => SqlType::Date,
        SqlValue::Time(_) => SqlType::Time { scale: 7 },
        SqlValue::DateTime { .. } => SqlType::DateTime2 { scale: 7 },
        SqlValue::DateTimeOffset { .. } => SqlType::DateTimeOffset { scale: 7 },
        _ => return None,
    };
    to_text(value, from, None).and_then(Result::ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epochs_line_up() {
        assert_eq!(days_from_civil(1, 1, 1), 0);
        assert_eq!(days_from_civil(1900, 1, 1), DAYS_TO_1900);
        assert_eq!(
            civil_from_days(days_from_civil(9999, 12, 31)),
            (9999, 12, 31)
        );
    }

    #[test]
    fn datetimeoffset_text_keeps_its_offset_and_stores_utc() {
        let value = convert(
            SqlValue::Text("2024-02-29 01:30:00.1234567 +05:30".into()),
            SqlType::VarChar { length: None },
            SqlType::DateTimeOffset { scale: 7 },
        )
        .unwrap()
        .unwrap();
        let SqlValue::DateTimeOffset {
            days,
            ticks,
            offset_minutes,
        } = value.clone()
        else {
            panic!("{value:?}")
        };
        assert_eq!(offset_minutes, 330);
        assert_eq!(civil_from_days(days), (2024, 2, 28));
        assert_eq!(ticks, (20 * 3600) * TICKS_PER_SECOND + 1_234_567);
        assert_eq!(
            format(&value).unwrap(),
            "2024-02-29 01:30:00.1234567 +05:30"
        );
    }

    #[test]
    fn rounding_to_a_lower_scale_can_carry_into_the_next_day() {
        let value = convert(
            SqlValue::Text("2024-12-31 23:59:59.9999999".into()),
            SqlType::VarChar { length: None },
            SqlType::DateTime2 { scale: 6 },
        )
        .unwrap()
        .unwrap();
        assert_eq!(format(&value).unwrap(), "2025-01-01 00:00:00.0000000");
        let value = convert(
            SqlValue::Text("9999-12-31 23:59:59.9999999".into()),
            SqlType::VarChar { length: None },
            SqlType::DateTime2 { scale: 6 },
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(value.number, 242);
    }

    #[test]
    fn impossible_dates_are_conversion_errors() {
        let error = convert(
            SqlValue::Text("2023-02-29".into()),
            SqlType::VarChar { length: None },
            SqlType::Date,
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(error.number, 241);
    }

    fn parsed(text: &str, to: SqlType) -> SqlValue {
        convert(
            SqlValue::Text(text.into()),
            SqlType::VarChar { length: None },
            to,
        )
        .unwrap()
        .unwrap()
    }

    #[test]
    fn datetime_converts_to_datetime2_from_its_exact_three_hundredths() {
        let datetime = parsed("2024-01-02 03:04:05.003", SqlType::DateTime);
        let to = |scale| {
            let value = convert(
                datetime.clone(),
                SqlType::DateTime,
                SqlType::DateTime2 { scale },
            )
            .unwrap()
            .unwrap();
            to_text(&value, SqlType::DateTime2 { scale }, Some(121))
                .unwrap()
                .unwrap()
        };
        assert_eq!(to(7), "2024-01-02 03:04:05.0033333");
        assert_eq!(to(3), "2024-01-02 03:04:05.003");
        assert_eq!(
            to_text(&datetime, SqlType::DateTime, None)
                .unwrap()
                .unwrap(),
            "Jan  2 2024  3:04AM"
        );
        assert_eq!(
            to_text(&datetime, SqlType::DateTime, Some(121))
                .unwrap()
                .unwrap(),
            "2024-01-02 03:04:05.003"
        );
    }

    #[test]
    fn styles_show_the_parts_they_name() {
        let value = parsed(
            "2024-01-02 13:04:05.1234567",
            SqlType::DateTime2 { scale: 7 },
        );
        let styled = |style| {
            to_text(&value, SqlType::DateTime2 { scale: 7 }, Some(style))
                .unwrap()
                .unwrap()
        };
        assert_eq!(styled(23), "2024-01-02");
        assert_eq!(styled(120), "2024-01-02 13:04:05");
        assert_eq!(styled(126), "2024-01-02T13:04:05.1234567");
        assert_eq!(styled(101), "01/02/2024");
        assert_eq!(styled(112), "20240102");
        assert_eq!(styled(108), "13:04:05");
        assert_eq!(styled(100), "Jan  2 2024  1:04PM");
        assert_eq!(
            to_text(&value, SqlType::DateTime2 { scale: 7 }, Some(99))
                .unwrap()
                .unwrap_err()
                .number,
            281
        );
    }

    #[test]
    fn other_input_forms_parse() {
        assert_eq!(
            parsed("20240102", SqlType::Date),
            SqlValue::Date(days_from_civil(2024, 1, 2))
        );
        assert_eq!(
            parsed("01/02/2024", SqlType::Date),
            SqlValue::Date(days_from_civil(2024, 1, 2))
        );
        assert_eq!(
            parsed("Jan 2 2024", SqlType::Date),
            SqlValue::Date(days_from_civil(2024, 1, 2))
        );
        assert_eq!(
            parsed("3:04PM", SqlType::Time { scale: 0 }),
            SqlValue::Time((15 * 3600 + 4 * 60) * TICKS_PER_SECOND)
        );
        assert_eq!(
            convert(
                SqlValue::Text("1700-01-01".into()),
                SqlType::VarChar { length: None },
                SqlType::DateTime
            )
            .unwrap()
            .unwrap_err()
            .number,
            242
        );
    }
}

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

/// A parsed ISO 8601 value: date (if any), ticks of the day, offset (if any).
struct Parsed {
    days: Option<i32>,
    ticks: u64,
    offset_minutes: Option<i16>,
}

fn parse(text: &str) -> Option<Parsed> {
    let text = text.trim();
    let (date_part, rest) = if text.len() >= 10 && text.as_bytes().get(4) == Some(&b'-') {
        (Some(&text[..10]), text[10..].trim_start_matches(['T', ' ']))
    } else {
        (None, text)
    };
    let days = match date_part {
        Some(date) => {
            let mut parts = date.split('-').map(|p| p.parse::<u32>().ok());
            let (year, month, day) = (parts.next()??, parts.next()??, parts.next()??);
            let valid = (1..=9999).contains(&year)
                && (1..=12).contains(&month)
                && (1..=days_in_month(year as i32, month)).contains(&day);
            valid.then(|| days_from_civil(year as i32, month, day))?
        }
        None => {
            return parse_time_and_offset(rest).map(|(ticks, offset)| Parsed {
                days: None,
                ticks,
                offset_minutes: offset,
            });
        }
    };
    let (ticks, offset_minutes) = if rest.is_empty() {
        (0, None)
    } else {
        parse_time_and_offset(rest)?
    };
    Some(Parsed {
        days: Some(days),
        ticks,
        offset_minutes,
    })
}

fn parse_time_and_offset(text: &str) -> Option<(u64, Option<i16>)> {
    let split = text.find(['+', '-', 'Z']).unwrap_or(text.len());
    let (time, offset) = text.split_at(split);
    let time = time.trim();
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut fields = clock.split(':').map(|f| f.parse::<u64>().ok());
    let (hour, minute) = (fields.next()??, fields.next()??);
    let second = fields.next().flatten().unwrap_or(0);
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
        signed => {
            let (sign, hhmm) = signed.split_at(1);
            let (h, m) = hhmm.split_once(':')?;
            let minutes = h.parse::<i16>().ok()? * 60 + m.parse::<i16>().ok()?;
            if minutes > 840 {
                return None;
            }
            Some(if sign == "-" { -minutes } else { minutes })
        }
    };
    Some((ticks, offset))
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

/// Splits day overflow from rounding into the date.
fn normalise(days: i32, ticks: u64) -> (i32, u64) {
    (days + (ticks / TICKS_PER_DAY) as i32, ticks % TICKS_PER_DAY)
}

/// Converts a value to a date or time type; None when SQL Server forbids the conversion.
pub fn convert(value: SqlValue, to: SqlType) -> Option<Result<SqlValue, SqlError>> {
    let target_name = super::datatype::name(to);
    // Everything goes through (local days, local ticks, offset).
    let (days, ticks, offset) = match value {
        SqlValue::Text(ref text) => match parse(text) {
            Some(p) => (
                p.days.unwrap_or(DAYS_TO_1900),
                p.ticks,
                p.offset_minutes.unwrap_or(0),
            ),
            None => return Some(Err(error::conversion_failed(text, &target_name))),
        },
        SqlValue::Date(days) => (days, 0, 0),
        SqlValue::Time(ticks) => (DAYS_TO_1900, ticks, 0),
        SqlValue::DateTime { days, ticks } => (days, ticks, 0),
        SqlValue::DateTimeOffset {
            days,
            ticks,
            offset_minutes,
        } => {
            let local = i64::from(days) * TICKS_PER_DAY as i64
                + ticks as i64
                + i64::from(offset_minutes) * 60 * TICKS_PER_SECOND as i64;
            (
                local.div_euclid(TICKS_PER_DAY as i64) as i32,
                local.rem_euclid(TICKS_PER_DAY as i64) as u64,
                offset_minutes,
            )
        }
        _ => return None,
    };
    Some(Ok(match to {
        SqlType::Date => SqlValue::Date(days),
        SqlType::Time { scale } => SqlValue::Time(round_ticks(ticks, scale) % TICKS_PER_DAY),
        SqlType::DateTime2 { scale } => {
            let (days, ticks) = normalise(days, round_ticks(ticks, scale));
            SqlValue::DateTime { days, ticks }
        }
        SqlType::DateTime => {
            // 1/300 s resolution.
            let three_hundredths = (ticks * 3 + 50_000) / 100_000;
            let (days, ticks) = normalise(days, (three_hundredths * 100_000).div_ceil(3));
            SqlValue::DateTime { days, ticks }
        }
        SqlType::SmallDateTime => {
            let minute = 60 * TICKS_PER_SECOND;
            let (days, ticks) = normalise(days, (ticks + minute / 2) / minute * minute);
            SqlValue::DateTime { days, ticks }
        }
        SqlType::DateTimeOffset { scale } => {
            let local = i64::from(days) * TICKS_PER_DAY as i64 + round_ticks(ticks, scale) as i64;
            let utc = local - i64::from(offset) * 60 * TICKS_PER_SECOND as i64;
            SqlValue::DateTimeOffset {
                days: utc.div_euclid(TICKS_PER_DAY as i64) as i32,
                ticks: utc.rem_euclid(TICKS_PER_DAY as i64) as u64,
                offset_minutes: offset,
            }
        }
        _ => return None,
    }))
}

/// ISO 8601 text of a date or time value (what CAST to a string gives); None for others.
pub fn format(value: &SqlValue) -> Option<String> {
    let date = |days: i32| {
        let (y, m, d) = civil_from_days(days);
        format!("{y:04}-{m:02}-{d:02}")
    };
    let time = |ticks: u64| {
        let seconds = ticks / TICKS_PER_SECOND;
        format!(
            "{:02}:{:02}:{:02}.{:07}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60,
            ticks % TICKS_PER_SECOND
        )
    };
    Some(match value {
        SqlValue::Date(days) => date(*days),
        SqlValue::Time(ticks) => time(*ticks),
        SqlValue::DateTime { days, ticks } => format!("{} {}", date(*days), time(*ticks)),
        SqlValue::DateTimeOffset {
            days,
            ticks,
            offset_minutes,
        } => {
            let local = i64::from(*days) * TICKS_PER_DAY as i64
                + *ticks as i64
                + i64::from(*offset_minutes) * 60 * TICKS_PER_SECOND as i64;
            let (d, t) = (
                local.div_euclid(TICKS_PER_DAY as i64) as i32,
                local.rem_euclid(TICKS_PER_DAY as i64) as u64,
            );
            let sign = if *offset_minutes < 0 { '-' } else { '+' };
            let abs = offset_minutes.unsigned_abs();
            format!(
                "{} {} {sign}{:02}:{:02}",
                date(d),
                time(t),
                abs / 60,
                abs % 60
            )
        }
        _ => return None,
    })
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
            SqlType::DateTime2 { scale: 6 },
        )
        .unwrap()
        .unwrap();
        assert_eq!(format(&value).unwrap(), "2025-01-01 00:00:00.0000000");
    }

    #[test]
    fn impossible_dates_are_conversion_errors() {
        let error = convert(SqlValue::Text("2023-02-29".into()), SqlType::Date)
            .unwrap()
            .unwrap_err();
        assert_eq!(error.number, 245);
    }
}

//! CAST and implicit conversion between SQL Server types, with SQL Server's errors.

use super::datatype::name;
use super::error::{self, SqlError};
use super::temporal;
use crate::tds::types::{SqlType, SqlValue};

type Result<T> = std::result::Result<T, SqlError>;

/// `CONVERT(to, value, style)`: styles 2 (binary ↔ hex without `0x`), 23 (`yyyy-mm-dd`),
/// 120 (`yyyy-mm-dd hh:mi:ss`), 121 and 126 (ODBC/ISO with fractional seconds) for date and
/// time to text; any other style, or none, converts as CAST does.
pub fn convert_with_style(
    value: SqlValue,
    from: SqlType,
    to: SqlType,
    style: Option<i64>,
) -> Result<SqlValue> {
    let to_text = matches!(
        to,
        SqlType::Char { .. }
            | SqlType::VarChar { .. }
            | SqlType::NChar { .. }
            | SqlType::NVarChar { .. }
    );
    match (style, &value) {
        (Some(2), SqlValue::Binary(bytes)) if to_text => {
            let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
            convert(SqlValue::Text(hex), SqlType::VarChar { length: None }, to)
        }
        (
            Some(23 | 120 | 121 | 126),
            SqlValue::Date(_) | SqlValue::DateTime { .. } | SqlValue::DateTimeOffset { .. },
        ) if to_text => {
            // A datetime holds 1/300 s ticks and shows them rounded to the millisecond.
            let shown = match (&value, from) {
                (SqlValue::DateTime { days, ticks }, SqlType::DateTime) => SqlValue::DateTime {
                    days: *days,
                    ticks: (ticks + 5_000) / 10_000 * 10_000,
                },
                _ => value.clone(),
            };
            let Some(text) =
                temporal::format(&shown).map(|t| with_fraction_digits(&t, fraction_digits(from)))
            else {
                return convert(value, from, to);
            };
            let styled = match style {
                Some(23) => text.chars().take(10).collect(),
                Some(120) => text.chars().take(19).collect(),
                Some(126) => text.replacen(' ', "T", 1),
                _ => text,
            };
            convert(
                SqlValue::Text(styled),
                SqlType::VarChar { length: None },
                to,
            )
        }
        _ => convert(value, from, to),
    }
}

/// Fractional-second digits a date/time type shows when converted to text.
fn fraction_digits(sql_type: SqlType) -> usize {
    match sql_type {
        SqlType::DateTime => 3,
        SqlType::SmallDateTime | SqlType::Date => 0,
        SqlType::Time { scale }
        | SqlType::DateTime2 { scale }
        | SqlType::DateTimeOffset { scale } => usize::from(scale),
        _ => 7,
    }
}

/// `text` (with 7 fractional digits) cut to `digits` of them; the point goes when none remain.
fn with_fraction_digits(text: &str, digits: usize) -> String {
    let Some(point) = text.find('.') else {
        return text.to_owned();
    };
    let fraction_end = point
        + 1
        + text[point + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .count();
    let kept = if digits == 0 {
        point
    } else {
        point + 1 + digits.min(7)
    };
    format!(
        "{}{}",
        &text[..kept.min(fraction_end)],
        &text[fraction_end..]
    )
}

/// Converts `value` of type `from` to type `to`.
pub fn convert(value: SqlValue, from: SqlType, to: SqlType) -> Result<SqlValue> {
    if value == SqlValue::Null {
        return Ok(SqlValue::Null);
    }
    let not_allowed = || error::conversion_not_allowed(&name(from), &name(to));
    match to {
        SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt => {
            to_integer(value, to).ok_or_else(not_allowed)?
        }
        SqlType::Bit => match value {
            SqlValue::Bit(b) => Ok(SqlValue::Bit(b)),
            SqlValue::Int(i) => Ok(SqlValue::Bit(i != 0)),
            SqlValue::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "1" | "true" => Ok(SqlValue::Bit(true)),
                "0" | "false" => Ok(SqlValue::Bit(false)),
                _ => Err(error::conversion_failed(&t, "bit")),
            },
            _ => Err(not_allowed()),
        },
        SqlType::Decimal { precision, scale } => {
            to_decimal(value, precision, scale, to).ok_or_else(not_allowed)?
        }
        SqlType::Money => to_decimal(value, 19, 4, to).ok_or_else(not_allowed)?,
        SqlType::SmallMoney => to_decimal(value, 10, 4, to).ok_or_else(not_allowed)?,
        SqlType::Float | SqlType::Real => to_float(value, to).ok_or_else(not_allowed)?,
        SqlType::Char { .. }
        | SqlType::VarChar { .. }
        | SqlType::NChar { .. }
        | SqlType::NVarChar { .. }
        | SqlType::Xml => to_text(value, to).ok_or_else(not_allowed),
        SqlType::Binary { .. } | SqlType::VarBinary { .. } => {
            to_binary(value, from, to).ok_or_else(not_allowed)
        }
        SqlType::UniqueIdentifier => match value {
            SqlValue::Guid(g) => Ok(SqlValue::Guid(g)),
            SqlValue::Text(t) => parse_guid(&t)
                .map(SqlValue::Guid)
                .ok_or_else(|| error::conversion_failed(&t, "uniqueidentifier")),
            _ => Err(not_allowed()),
        },
        SqlType::Date
        | SqlType::Time { .. }
        | SqlType::DateTime
        | SqlType::SmallDateTime
        | SqlType::DateTime2 { .. }
        | SqlType::DateTimeOffset { .. } => temporal::convert(value, to).ok_or_else(not_allowed)?,
    }
}

fn integer_range(sql_type: SqlType) -> (i128, i128) {
    match sql_type {
        SqlType::TinyInt => (0, 255),
        SqlType::SmallInt => (i128::from(i16::MIN), i128::from(i16::MAX)),
        SqlType::Int => (i128::from(i32::MIN), i128::from(i32::MAX)),
        _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
    }
}

fn to_integer(value: SqlValue, to: SqlType) -> Option<Result<SqlValue>> {
    let whole: i128 = match value {
        SqlValue::Int(i) => i128::from(i),
        SqlValue::Bit(b) => i128::from(b),
        // Decimal and float to integer truncate toward zero, as CAST does.
        SqlValue::Decimal { unscaled, scale } => unscaled / 10i128.pow(u32::from(scale)),
        SqlValue::Float(f) if f.is_finite() && f.abs() < 1e38 => f.trunc() as i128,
        SqlValue::Float(_) => return Some(Err(error::overflow(&name(to)))),
        SqlValue::Text(t) => match t.trim().parse::<i128>() {
            Ok(i) => i,
            Err(_) => return Some(Err(error::conversion_failed(&t, &name(to)))),
        },
        _ => return None,
    };
    let (low, high) = integer_range(to);
    Some(if (low..=high).contains(&whole) {
        Ok(SqlValue::Int(whole as i64))
    } else {
        Err(error::overflow(&name(to)))
    })
}

/// `unscaled` at `from` scale, rescaled to `to` scale, rounding halves away from zero.
pub fn rescale(unscaled: i128, from: u8, to: u8) -> Option<i128> {
    if to >= from {
        unscaled.checked_mul(10i128.checked_pow(u32::from(to - from))?)
    } else {
        let factor = 10i128.pow(u32::from(from - to));
        let (quotient, remainder) = (unscaled / factor, unscaled % factor);
        Some(if remainder.abs() * 2 >= factor {
            quotient + unscaled.signum()
        } else {
            quotient
        })
    }
}

fn to_decimal(value: SqlValue, precision: u8, scale: u8, to: SqlType) -> Option<Result<SqlValue>> {
    let overflow = || error::overflow(&name(to));
    let unscaled = match value {
        SqlValue::Int(i) => rescale(i128::from(i), 0, scale),
        SqlValue::Bit(b) => rescale(i128::from(b), 0, scale),
        SqlValue::Decimal {
            unscaled,
            scale: from,
        } => rescale(unscaled, from, scale),
        SqlValue::Float(f) => {
            let scaled = (f * 10f64.powi(i32::from(scale))).round();
            (scaled.is_finite() && scaled.abs() < 1e38).then_some(scaled as i128)
        }
        SqlValue::Text(t) => match parse_decimal(&t) {
            Some((unscaled, from)) => rescale(unscaled, from, scale),
            None => return Some(Err(error::conversion_failed(&t, &name(to)))),
        },
        _ => return None,
    };
    let limit = 10i128.pow(u32::from(precision));
    Some(match unscaled {
        Some(unscaled) if unscaled.abs() < limit => Ok(SqlValue::Decimal { unscaled, scale }),
        _ => Err(overflow()),
    })
}

/// Parses `-12.340` into (unscaled, scale).
pub fn parse_decimal(text: &str) -> Option<(i128, u8)> {
    let text = text.trim();
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let magnitude: i128 = if digits.trim_start_matches('0').is_empty() {
        0
    } else {
        digits.trim_start_matches('0').parse().ok()?
    };
    Some((
        if negative { -magnitude } else { magnitude },
        u8::try_from(fraction.len()).ok()?,
    ))
}

fn to_float(value: SqlValue, to: SqlType) -> Option<Result<SqlValue>> {
    let float = match value {
        SqlValue::Int(i) => i as f64,
        SqlValue::Bit(b) => f64::from(u8::from(b)),
        SqlValue::Decimal { unscaled, scale } => unscaled as f64 / 10f64.powi(i32::from(scale)),
        SqlValue::Float(f) => f,
        SqlValue::Text(t) => match t.trim().parse::<f64>() {
            Ok(f) => f,
            Err(_) => return Some(Err(error::conversion_failed(&t, &name(to)))),
        },
        _ => return None,
    };
    // A real holds binary32: round through it so the value is what the column stores.
    Some(Ok(SqlValue::Float(if to == SqlType::Real {
        f64::from(float as f32)
    } else {
        float
    })))
}

fn to_text(value: SqlValue, to: SqlType) -> Option<SqlValue> {
    let text = match value {
        SqlValue::Text(t) => t,
        SqlValue::Int(i) => i.to_string(),
        SqlValue::Bit(b) => u8::from(b).to_string(),
        SqlValue::Decimal { unscaled, scale } => format_decimal(unscaled, scale),
        SqlValue::Float(f) => f.to_string(),
        SqlValue::Guid(g) => format_guid(&g).to_uppercase(),
        other => temporal::format(&other)?,
    };
    let limit = match to {
        SqlType::Char { length } | SqlType::NChar { length } => Some(usize::from(length)),
        SqlType::VarChar { length } | SqlType::NVarChar { length } => length.map(usize::from),
        _ => None,
    };
    // CAST to a shorter string truncates silently (only INSERT and UPDATE raise 2628).
    Some(SqlValue::Text(match limit {
        Some(limit) => text.chars().take(limit).collect(),
        None => text,
    }))
}

fn to_binary(value: SqlValue, from: SqlType, to: SqlType) -> Option<SqlValue> {
    let bytes = match value {
        SqlValue::Binary(b) => b,
        SqlValue::Text(t) if matches!(from, SqlType::NChar { .. } | SqlType::NVarChar { .. }) => {
            t.encode_utf16().flat_map(u16::to_le_bytes).collect()
        }
        SqlValue::Text(t) => t
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect(),
        SqlValue::Int(i) => match from {
            SqlType::TinyInt => vec![i as u8],
            SqlType::SmallInt => (i as i16).to_be_bytes().to_vec(),
            SqlType::Int => (i as i32).to_be_bytes().to_vec(),
            _ => i.to_be_bytes().to_vec(),
        },
        SqlValue::Guid(g) => crate::tds::types::guid_wire_order(&g).to_vec(),
        // IEEE-754, big-endian, as SQL Server stores floats.
        SqlValue::Float(f) if from == SqlType::Real => (f as f32).to_be_bytes().to_vec(),
        SqlValue::Float(f) => f.to_be_bytes().to_vec(),
        _ => return None,
    };
    Some(SqlValue::Binary(match to {
        SqlType::Binary { length } => {
            let mut fixed = bytes;
            fixed.resize(usize::from(length), 0);
            fixed
        }
        SqlType::VarBinary {
            length: Some(length),
        } => bytes.into_iter().take(usize::from(length)).collect(),
        _ => bytes,
    }))
}

/// `unscaled × 10^-scale` in plain notation.
pub fn format_decimal(unscaled: i128, scale: u8) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = usize::from(scale) + 1);
    let (whole, fraction) = padded.split_at(padded.len() - usize::from(scale));
    format!("{sign}{whole}.{fraction}")
}

/// Lowercase `8-4-4-4-12`.
pub fn format_guid(guid: &[u8; 16]) -> String {
    let h: String = guid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parses `6F9619FF-8B86-D011-B42D-00C04FC964FF`, optionally in braces.
pub fn parse_guid(text: &str) -> Option<[u8; 16]> {
    let hex: String = text
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if hex.len() != 32
        || text
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .len()
            != 36
    {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescaling_rounds_halves_away_from_zero() {
        assert_eq!(rescale(125, 2, 1), Some(13));
        assert_eq!(rescale(-125, 2, 1), Some(-13));
        assert_eq!(rescale(124, 2, 1), Some(12));
        assert_eq!(rescale(5, 0, 3), Some(5000));
    }

    #[test]
    fn integer_overflow_is_error_8115() {
        let error = convert(SqlValue::Int(300), SqlType::Int, SqlType::TinyInt).unwrap_err();
        assert_eq!(error.number, 8115);
    }

    #[test]
    fn guids_parse_and_print() {
        let guid = parse_guid("6F9619FF-8B86-D011-B42D-00C04FC964FF").unwrap();
        assert_eq!(format_guid(&guid), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        assert!(parse_guid("6F9619FF8B86D011B42D00C04FC964FF").is_none());
    }
}

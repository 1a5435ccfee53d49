//! CAST, CONVERT and implicit conversion between SQL Server types, with SQL Server's results
//! (string forms, rounding, padding and truncation) and its errors.
//!
//! Text of `char`/`varchar` types depends on the code page of its collation (see
//! [`super::collation`]); [`cast`] takes the code page of each side, the shorter entry points
//! assume the default collation's (1252).

use std::fmt::Write as _;

use super::collation::{self, CodePage};
use super::datatype::{self, name};
use super::error::{self, SqlError};
use super::temporal;
use crate::tds::types::{DAYS_TO_1900, SqlType, SqlValue, TICKS_PER_DAY};

type Result<T> = std::result::Result<T, SqlError>;

/// Powers of ten up to 10^38 (the most decimal digits SQL Server has), computed once: decimal
/// conversions run per row, and `i128::pow` is a loop of 128-bit multiplications.
const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// 10^`exponent` for exponents up to 38.
pub fn pow10(exponent: u32) -> Option<i128> {
    POW10.get(exponent as usize).copied()
}

/// Converts `value` of type `from` to type `to`, as CAST does, in the default collation.
pub fn convert(value: SqlValue, from: SqlType, to: SqlType) -> Result<SqlValue> {
    cast(value, from, to, None, CodePage::Cp1252, CodePage::Cp1252)
}

/// `CONVERT(to, value, style)` in the default collation.
pub fn convert_with_style(
    value: SqlValue,
    from: SqlType,
    to: SqlType,
    style: Option<i64>,
) -> Result<SqlValue> {
    cast(value, from, to, style, CodePage::Cp1252, CodePage::Cp1252)
}

/// Converts `value` of type `from` to `to` with an optional CONVERT `style`; `from_page` and
/// `to_page` are the code pages of `char`/`varchar` text on either side.
///
/// Styles: 0, 1, 2 for binary ↔ character (raw bytes, `0x` hex, bare hex); 0, 1, 2 for float
/// and real to text (6 significant digits, 8 and 16 in scientific notation); 0, 1, 2, 126
/// for money to text; the date and time styles of [`temporal::to_text`].
pub fn cast(
    value: SqlValue,
    from: SqlType,
    to: SqlType,
    style: Option<i64>,
    from_page: CodePage,
    to_page: CodePage,
) -> Result<SqlValue> {
    if value == SqlValue::Null {
        return Ok(SqlValue::Null);
    }
    if datatype::conversion(from, to) == datatype::Conversion::NotAllowed {
        return Err(error::conversion_not_allowed(
            &base_name(from),
            &base_name(to),
        ));
    }
    cast_value(value, from, to, style, from_page, to_page)
}

/// [`cast`] of a conversion already known to be allowed (a compiled CAST was checked once).
pub fn cast_value(
    value: SqlValue,
    from: SqlType,
    to: SqlType,
    style: Option<i64>,
    from_page: CodePage,
    to_page: CodePage,
) -> Result<SqlValue> {
    if value == SqlValue::Null {
        return Ok(SqlValue::Null);
    }
    let not_allowed = || error::conversion_not_allowed(&base_name(from), &base_name(to));
    match to {
        SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt => {
            to_integer(value, from, to)
        }
        SqlType::Bit => to_bit(value, from),
        SqlType::Decimal { precision, scale } => to_decimal(value, from, precision, scale, to),
        SqlType::Money => to_decimal(value, from, 19, 4, to),
        SqlType::SmallMoney => to_decimal(value, from, 10, 4, to),
        SqlType::Float | SqlType::Real => to_float(value, from, to),
        SqlType::Char { .. }
        | SqlType::VarChar { .. }
        | SqlType::NChar { .. }
        | SqlType::NVarChar { .. } => to_text(value, from, to, style, from_page, to_page),
        SqlType::Xml => match value {
            SqlValue::Text(text) => Ok(SqlValue::Text(text)),
            _ => Err(not_allowed()),
        },
        SqlType::Binary { .. } | SqlType::VarBinary { .. } => {
            to_binary(value, from, to, style, from_page)
        }
        SqlType::UniqueIdentifier => match value {
            SqlValue::Guid(g) => Ok(SqlValue::Guid(g)),
            SqlValue::Text(t) => parse_guid(&t)
                .map(SqlValue::Guid)
                .ok_or_else(error::guid_conversion_failed),
            SqlValue::Binary(mut bytes) => {
                bytes.resize(16, 0);
                let mut wire = [0u8; 16];
                wire.copy_from_slice(&bytes);
                // Stored order to textual order (the same swap both ways).
                Ok(SqlValue::Guid(crate::tds::types::guid_wire_order(&wire)))
            }
            _ => Err(not_allowed()),
        },
        SqlType::Date
        | SqlType::Time { .. }
        | SqlType::DateTime
        | SqlType::SmallDateTime
        | SqlType::DateTime2 { .. }
        | SqlType::DateTimeOffset { .. } => to_temporal(value, from, to).ok_or_else(not_allowed)?,
    }
}

/// The conversions [`CastOp`](super::expr::CastOp) specialises, for the values they expect;
/// any other value (or one these paths leave alone, like a number too long for its string)
/// comes back as `Err` for the general conversion to take.
pub fn fast(
    op: super::expr::CastOp,
    value: SqlValue,
    to: SqlType,
) -> std::result::Result<SqlValue, SqlValue> {
    use super::expr::CastOp;
    match (op, value) {
        (CastOp::IntegerToText { limit }, SqlValue::Int(i)) => {
            let mut text = String::with_capacity(20);
            push_integer(&mut text, i);
            if limit.is_some_and(|limit| text.len() > usize::from(limit)) {
                return Err(SqlValue::Int(i));
            }
            Ok(SqlValue::Text(text))
        }
        (CastOp::DecimalToText { limit }, SqlValue::Decimal { unscaled, scale }) => {
            let text = format_decimal(unscaled, scale);
            if limit.is_some_and(|limit| text.len() > usize::from(limit)) {
                return Err(SqlValue::Decimal { unscaled, scale });
            }
            Ok(SqlValue::Text(text))
        }
        (CastOp::BinaryToInteger, SqlValue::Binary(bytes)) => {
            Ok(SqlValue::Int(binary_to_integer(&bytes, to)))
        }
        (CastOp::IntegerToInteger, SqlValue::Int(i)) => {
            let (low, high) = integer_range(to);
            if (low..=high).contains(&i128::from(i)) {
                Ok(SqlValue::Int(i))
            } else {
                Err(SqlValue::Int(i))
            }
        }
        (CastOp::IntegerToDecimal { scale, precision }, SqlValue::Int(i)) => {
            match (pow10(u32::from(scale)), pow10(u32::from(precision))) {
                (Some(factor), Some(limit)) if (i128::from(i) * factor).abs() < limit => {
                    Ok(SqlValue::Decimal {
                        unscaled: i128::from(i) * factor,
                        scale,
                    })
                }
                _ => Err(SqlValue::Int(i)),
            }
        }
        (_, value) => Err(value),
    }
}

/// Appends the decimal digits of `value`.
pub fn push_integer(out: &mut String, value: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut magnitude = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if value < 0 {
        out.push('-');
    }
    out.extend(digits[at..].iter().map(|d| char::from(*d)));
}

/// A type's name without its length, as conversion messages print it.
fn base_name(sql_type: SqlType) -> String {
    let full = name(sql_type);
    full.split('(').next().unwrap_or(&full).to_owned()
}

fn integer_range(sql_type: SqlType) -> (i128, i128) {
    match sql_type {
        SqlType::TinyInt => (0, 255),
        SqlType::SmallInt => (i128::from(i16::MIN), i128::from(i16::MAX)),
        SqlType::Int => (i128::from(i32::MIN), i128::from(i32::MAX)),
        _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
    }
}

/// Bytes of an integer type.
fn integer_width(sql_type: SqlType) -> usize {
    match sql_type {
        SqlType::TinyInt | SqlType::Bit => 1,
        SqlType::SmallInt => 2,
        SqlType::Int => 4,
        _ => 8,
    }
}

fn to_integer(value: SqlValue, from: SqlType, to: SqlType) -> Result<SqlValue> {
    let whole: i128 = match value {
        SqlValue::Int(i) => i128::from(i),
        SqlValue::Bit(b) => i128::from(b),
        // Decimal and float to integer truncate toward zero, as CAST does.
        SqlValue::Decimal { unscaled, scale } => unscaled / pow10(u32::from(scale)).unwrap_or(1),
        SqlValue::Float(f) if f.is_finite() && f.abs() < 1e38 => f.trunc() as i128,
        SqlValue::Float(_) => return Err(error::overflow(&name(to))),
        SqlValue::Text(t) => return text_to_integer(&t, from, to),
        // Binary to integer: the rightmost bytes of the target's width, zero-extended on the
        // left, read big-endian (0xFFFFFFFF as bigint is 4294967295, as int is -1).
        SqlValue::Binary(bytes) => return Ok(SqlValue::Int(binary_to_integer(&bytes, to))),
        // datetime to an integer: days since 1900-01-01, rounded (noon and later round up).
        SqlValue::DateTime { days, ticks }
            if matches!(from, SqlType::DateTime | SqlType::SmallDateTime) =>
        {
            i128::from(days - DAYS_TO_1900) + i128::from(ticks >= TICKS_PER_DAY / 2)
        }
        _ => {
            return Err(error::conversion_not_allowed(
                &base_name(from),
                &base_name(to),
            ));
        }
    };
    let (low, high) = integer_range(to);
    if (low..=high).contains(&whole) {
        Ok(SqlValue::Int(whole as i64))
    } else {
        Err(error::overflow(&name(to)))
    }
}

/// Binary to integer type `to`: the rightmost bytes of its width, zero-extended on the left,
/// read big-endian.
fn binary_to_integer(bytes: &[u8], to: SqlType) -> i64 {
    let width = integer_width(to);
    let tail = &bytes[bytes.len().saturating_sub(width)..];
    let mut buffer = [0u8; 8];
    buffer[8 - tail.len()..].copy_from_slice(tail);
    let unsigned = u64::from_be_bytes(buffer);
    match to {
        SqlType::TinyInt => i64::from(unsigned as u8),
        SqlType::SmallInt => i64::from(unsigned as u16 as i16),
        SqlType::Int => i64::from(unsigned as u32 as i32),
        _ => unsigned as i64,
    }
}

/// Integer text: optional spaces and sign around digits; an empty string is 0.
fn text_to_integer(text: &str, from: SqlType, to: SqlType) -> Result<SqlValue> {
    let trimmed = text.trim_matches(|c: char| c == ' ' || c == '\t');
    let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(SqlValue::Int(0));
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error::conversion_failed_value(
            &base_name(from),
            text,
            &base_name(to),
        ));
    }
    let (low, high) = integer_range(to);
    match trimmed.parse::<i128>() {
        Ok(value) if (low..=high).contains(&value) => Ok(SqlValue::Int(value as i64)),
        _ => Err(error::conversion_overflowed(
            &base_name(from),
            text,
            &base_name(to),
        )),
    }
}

fn to_bit(value: SqlValue, from: SqlType) -> Result<SqlValue> {
    Ok(SqlValue::Bit(match value {
        SqlValue::Bit(b) => b,
        SqlValue::Int(i) => i != 0,
        SqlValue::Decimal { unscaled, .. } => unscaled != 0,
        SqlValue::Float(f) => f != 0.0,
        SqlValue::Binary(bytes) => bytes.iter().any(|b| *b != 0),
        SqlValue::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => match text_to_integer(&t, from, SqlType::BigInt) {
                Ok(SqlValue::Int(i)) => i != 0,
                _ => {
                    return Err(error::conversion_failed_value(&base_name(from), &t, "bit"));
                }
            },
        },
        _ => {
            return Err(error::conversion_not_allowed(&base_name(from), "bit"));
        }
    }))
}

/// `unscaled` at `from` scale, rescaled to `to` scale, rounding halves away from zero.
pub fn rescale(unscaled: i128, from: u8, to: u8) -> Option<i128> {
    if to >= from {
        if to == from {
            return Some(unscaled);
        }
        unscaled.checked_mul(pow10(u32::from(to - from))?)
    } else {
        let factor = pow10(u32::from(from - to))?;
        let (quotient, remainder) = (unscaled / factor, unscaled % factor);
        Some(if remainder.abs() * 2 >= factor {
            quotient + unscaled.signum()
        } else {
            quotient
        })
    }
}

fn to_decimal(
    value: SqlValue,
    from: SqlType,
    precision: u8,
    scale: u8,
    to: SqlType,
) -> Result<SqlValue> {
    let overflow = || match to {
        SqlType::Decimal { .. } => {
            error::overflow_converting(&overflow_source_name(from), "numeric")
        }
        _ => error::overflow(&name(to)),
    };
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
        SqlValue::Text(t) => {
            let money = matches!(to, SqlType::Money | SqlType::SmallMoney);
            // Money also reads a currency sign and thousands separators.
            let cleaned: String = if money {
                t.trim()
                    .trim_start_matches('$')
                    .chars()
                    .filter(|c| *c != ',')
                    .collect()
            } else {
                t.trim().to_owned()
            };
            match parse_decimal(&cleaned) {
                Some((unscaled, from)) => rescale(unscaled, from, scale),
                None if cleaned.is_empty() && money => Some(0),
                None if money => {
                    return Err(crate::tds::token::ServerMessage {
                        number: 235,
                        state: 0,
                        class: 16,
                        text: format!(
                            "Cannot convert a char value to {}. The char value has incorrect syntax.",
                            base_name(to)
                        ),
                    });
                }
                None => {
                    return Err(error::converting_data_type(
                        &base_name(from),
                        &base_name(to).replace("decimal", "numeric"),
                    ));
                }
            }
        }
        SqlValue::Binary(_) => {
            return Err(error::not_implemented(
                "conversion of binary to decimal (SQL Server reads its internal format)",
            ));
        }
        SqlValue::DateTime { .. } if matches!(to, SqlType::Money | SqlType::SmallMoney) => {
            return Err(error::conversion_not_allowed(
                &base_name(from),
                &base_name(to),
            ));
        }
        SqlValue::DateTime { days, ticks } => {
            let day_fraction = (i128::from(days - DAYS_TO_1900) * i128::from(TICKS_PER_DAY)
                + i128::from(ticks)) as f64
                / TICKS_PER_DAY as f64;
            let scaled = (day_fraction * 10f64.powi(i32::from(scale))).round();
            (scaled.abs() < 1e38).then_some(scaled as i128)
        }
        _ => {
            return Err(error::conversion_not_allowed(
                &base_name(from),
                &base_name(to),
            ));
        }
    };
    let fits = |unscaled: i128| match to {
        SqlType::Money => i64::try_from(unscaled).is_ok(),
        SqlType::SmallMoney => i32::try_from(unscaled).is_ok(),
        _ => pow10(u32::from(precision)).is_some_and(|limit| unscaled.abs() < limit),
    };
    match unscaled {
        Some(unscaled) if fits(unscaled) => Ok(SqlValue::Decimal { unscaled, scale }),
        _ => Err(overflow()),
    }
}

/// How an overflow message names the source type (`int`, `numeric`, `float`, `varchar`).
fn overflow_source_name(from: SqlType) -> String {
    match from {
        SqlType::Decimal { .. } => "numeric".to_owned(),
        SqlType::Real => "real".to_owned(),
        other => base_name(other),
    }
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
    let mut magnitude: i128 = 0;
    for digit in whole.bytes().chain(fraction.bytes()) {
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(i128::from(digit - b'0'))?;
    }
    Some((
        if negative { -magnitude } else { magnitude },
        u8::try_from(fraction.len()).ok()?,
    ))
}

fn to_float(value: SqlValue, from: SqlType, to: SqlType) -> Result<SqlValue> {
    let float = match value {
        SqlValue::Int(i) => i as f64,
        SqlValue::Bit(b) => f64::from(u8::from(b)),
        SqlValue::Decimal { unscaled, scale } => unscaled as f64 / 10f64.powi(i32::from(scale)),
        SqlValue::Float(f) => f,
        SqlValue::Text(t) => match t.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => f,
            _ if t.trim().is_empty() => 0.0,
            _ => {
                return Err(error::converting_data_type(
                    &base_name(from),
                    &base_name(to),
                ));
            }
        },
        SqlValue::DateTime { days, ticks }
            if matches!(from, SqlType::DateTime | SqlType::SmallDateTime) =>
        {
            f64::from(days - DAYS_TO_1900) + ticks as f64 / TICKS_PER_DAY as f64
        }
        _ => {
            return Err(error::conversion_not_allowed(
                &base_name(from),
                &base_name(to),
            ));
        }
    };
    // A real holds binary32: round through it so the value is what the column stores.
    if to == SqlType::Real {
        let single = float as f32;
        if single.is_infinite() {
            return Err(error::overflow("real"));
        }
        return Ok(SqlValue::Float(f64::from(single)));
    }
    Ok(SqlValue::Float(float))
}

fn to_temporal(value: SqlValue, from: SqlType, to: SqlType) -> Option<Result<SqlValue>> {
    // Numbers are days since 1900-01-01 (with the fraction of a day), for datetime and
    // smalldatetime only.
    let days = match value {
        SqlValue::Int(i) => Some(i as f64),
        SqlValue::Bit(b) => Some(f64::from(u8::from(b))),
        SqlValue::Decimal { unscaled, scale } => {
            Some(unscaled as f64 / 10f64.powi(i32::from(scale)))
        }
        SqlValue::Float(f) => Some(f),
        _ => None,
    };
    if let Some(days) = days {
        if !matches!(to, SqlType::DateTime | SqlType::SmallDateTime) {
            return None;
        }
        let whole = days.floor();
        let ticks = ((days - whole) * TICKS_PER_DAY as f64).round() as u64;
        if !(-53_690.0..=2_958_463.0).contains(&whole) {
            return Some(Err(error::overflow(&name(to))));
        }
        let value = SqlValue::DateTime {
            days: DAYS_TO_1900 + whole as i32,
            ticks: ticks.min(TICKS_PER_DAY - 1),
        };
        return temporal::convert(value, SqlType::DateTime2 { scale: 7 }, to);
    }
    if let SqlValue::Binary(bytes) = &value {
        // datetime: days then 1/300 s, big-endian; smalldatetime: days then minutes.
        let mut padded = vec![0u8; 8usize.saturating_sub(bytes.len())];
        padded.extend_from_slice(bytes);
        return match (from, to) {
            (_, SqlType::DateTime) => {
                let days = i32::from_be_bytes([padded[0], padded[1], padded[2], padded[3]]);
                let units = u32::from_be_bytes([padded[4], padded[5], padded[6], padded[7]]);
                Some(Ok(SqlValue::DateTime {
                    days: DAYS_TO_1900 + days,
                    ticks: (u64::from(units) * 100_000).div_ceil(3) % TICKS_PER_DAY,
                }))
            }
            _ => Some(Err(error::not_implemented(
                "conversion of binary to this date or time type",
            ))),
        };
    }
    temporal::convert(value, from, to)
}

/// Text → character types and everything else's string form, fitted to the target length.
fn to_text(
    value: SqlValue,
    from: SqlType,
    to: SqlType,
    style: Option<i64>,
    from_page: CodePage,
    to_page: CodePage,
) -> Result<SqlValue> {
    let limit = datatype::char_length(to).map(usize::from);
    let too_long = |text: &str| limit.is_some_and(|limit| units(text, to, to_page) > limit);
    let narrow = !datatype::is_unicode(to);
    let text = match value {
        SqlValue::Text(text) => text,
        SqlValue::Int(i) => {
            let text = i.to_string();
            if too_long(&text) {
                // Integers cut short show `*` in char/varchar and fail in nchar/nvarchar.
                if narrow {
                    return Ok(SqlValue::Text(pad("*".to_owned(), to, to_page)));
                }
                return Err(error::overflow(&base_name(to)));
            }
            text
        }
        SqlValue::Bit(b) => if b { "1" } else { "0" }.to_owned(),
        SqlValue::Decimal { unscaled, scale } => {
            let text = match from {
                SqlType::Money | SqlType::SmallMoney => money_text(unscaled, style)?,
                _ => format_decimal(unscaled, scale),
            };
            if too_long(&text) {
                return Err(error::overflow_converting(
                    &overflow_source_name(from),
                    &base_name(to),
                ));
            }
            text
        }
        SqlValue::Float(f) => {
            let text = float_text(f, from, style)?;
            if too_long(&text) {
                return Err(error::overflow_converting(
                    &overflow_source_name(from),
                    &base_name(to),
                ));
            }
            text
        }
        SqlValue::Guid(g) => {
            if limit.is_some_and(|limit| limit < 36) {
                return Err(error::guid_result_space(&base_name(to)));
            }
            format_guid_upper(&g)
        }
        SqlValue::Binary(bytes) => match style.unwrap_or(0) {
            0 if narrow => collation::decode(&bytes, to_page),
            0 => {
                let units: Vec<u16> = bytes
                    .chunks(2)
                    .map(|pair| u16::from_le_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]))
                    .collect();
                String::from_utf16_lossy(&units)
            }
            1 => {
                let mut text = String::with_capacity(2 + bytes.len() * 2);
                text.push_str("0x");
                push_hex_upper(&mut text, &bytes);
                text
            }
            2 => {
                let mut text = String::with_capacity(bytes.len() * 2);
                push_hex_upper(&mut text, &bytes);
                text
            }
            other => {
                return Err(temporal::invalid_style(other, from));
            }
        },
        other => match temporal::to_text(&other, from, style) {
            Some(text) => text?,
            None => {
                return Err(error::conversion_not_allowed(
                    &base_name(from),
                    &base_name(to),
                ));
            }
        },
    };
    // Text entering a code page keeps only what the code page has.
    let text = if narrow
        && !(datatype::is_character(from) && !datatype::is_unicode(from) && from_page == to_page)
    {
        collation::to_code_page(text, to_page)
    } else {
        text
    };
    let text = match limit {
        Some(limit) => truncate(text, to, to_page, limit),
        None => text,
    };
    Ok(SqlValue::Text(pad(text, to, to_page)))
}

/// The length of `text` in the units its type counts: bytes of the code page for
/// char/varchar, UTF-16 code units for nchar/nvarchar.
pub fn units(text: &str, sql_type: SqlType, page: CodePage) -> usize {
    if datatype::is_unicode(sql_type) {
        if text.is_ascii() {
            text.len()
        } else {
            text.encode_utf16().count()
        }
    } else {
        collation::encoded_len(text, page)
    }
}

/// `text` cut to `limit` units of `sql_type` (never splitting a character). CAST to a shorter
/// string truncates silently; only INSERT and UPDATE raise 2628.
fn truncate(mut text: String, sql_type: SqlType, page: CodePage, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut used = 0;
    let mut end = text.len();
    for (at, c) in text.char_indices() {
        let width = if datatype::is_unicode(sql_type) {
            c.len_utf16()
        } else if page == CodePage::Utf8 {
            c.len_utf8()
        } else {
            1
        };
        if used + width > limit {
            end = at;
            break;
        }
        used += width;
    }
    text.truncate(end);
    text
}

/// Fixed-length types are padded with spaces to their length.
fn pad(mut text: String, sql_type: SqlType, page: CodePage) -> String {
    if let SqlType::Char { length } | SqlType::NChar { length } = sql_type {
        let have = units(&text, sql_type, page);
        for _ in have..usize::from(length) {
            text.push(' ');
        }
    }
    text
}

/// Money as text: style 0 two decimals, 1 two decimals with thousands separators, 2 and 126
/// four decimals.
fn money_text(unscaled: i128, style: Option<i64>) -> Result<String> {
    match style.unwrap_or(0) {
        0 => Ok(format_decimal(rescale(unscaled, 4, 2).unwrap_or(0), 2)),
        1 => {
            let plain = format_decimal(rescale(unscaled, 4, 2).unwrap_or(0), 2);
            let (sign, rest) = match plain.strip_prefix('-') {
                Some(rest) => ("-", rest),
                None => ("", plain.as_str()),
            };
            let (whole, fraction) = rest.split_once('.').unwrap_or((rest, "00"));
            let mut grouped = String::new();
            for (i, digit) in whole.chars().enumerate() {
                if i > 0 && (whole.len() - i) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(digit);
            }
            Ok(format!("{sign}{grouped}.{fraction}"))
        }
        2 | 126 => Ok(format_decimal(unscaled, 4)),
        other => Err(temporal::invalid_style(other, SqlType::Money)),
    }
}

/// Float as text: style 0 at most 6 significant digits (scientific notation when the
/// exponent is below -4 or above 5, with SQL Server's three-digit exponent `1.23457e+006`),
/// style 1 eight digits and style 2 sixteen, always scientific.
fn float_text(f: f64, from: SqlType, style: Option<i64>) -> Result<String> {
    let scientific = |digits: usize| {
        let formatted = format!("{:.*e}", digits - 1, f);
        let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:03}", exponent.abs())
    };
    match style.unwrap_or(0) {
        1 => return Ok(scientific(8)),
        2 => return Ok(scientific(16)),
        3 | 126 | 128 | 129 => {
            return Err(error::not_implemented(&format!(
                "CONVERT style {} of float",
                style.unwrap_or(0)
            )));
        }
        _ => {}
    }
    if f == 0.0 {
        return Ok("0".to_owned());
    }
    let _ = from;
    // %g with precision 6.
    let rounded = format!("{:.5e}", f);
    let exponent: i32 = rounded
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        let (mantissa, _) = rounded.split_once('e').unwrap_or((&rounded, ""));
        let mantissa = trim_fraction(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        return Ok(format!("{mantissa}e{sign}{:03}", exponent.abs()));
    }
    let decimals = (5 - exponent).max(0) as usize;
    Ok(trim_fraction(&format!("{f:.decimals$}")).to_owned())
}

fn trim_fraction(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

fn to_binary(
    value: SqlValue,
    from: SqlType,
    to: SqlType,
    style: Option<i64>,
    from_page: CodePage,
) -> Result<SqlValue> {
    // Numbers are padded and truncated on the left, strings and binaries on the right.
    let (bytes, numeric) = match value {
        SqlValue::Binary(b) => (b, false),
        SqlValue::Text(t) => (text_to_binary(t, from, to, style, from_page)?, false),
        SqlValue::Int(i) => {
            let bytes = i.to_be_bytes();
            (bytes[8 - integer_width(from)..].to_vec(), true)
        }
        SqlValue::Bit(b) => (vec![u8::from(b)], true),
        SqlValue::Guid(g) => (crate::tds::types::guid_wire_order(&g).to_vec(), false),
        // IEEE-754, big-endian, as SQL Server stores floats.
        SqlValue::Float(f) if from == SqlType::Real => ((f as f32).to_be_bytes().to_vec(), true),
        SqlValue::Float(f) => (f.to_be_bytes().to_vec(), true),
        SqlValue::Decimal { unscaled, .. } if from == SqlType::Money => {
            ((unscaled as i64).to_be_bytes().to_vec(), true)
        }
        SqlValue::Decimal { unscaled, .. } if from == SqlType::SmallMoney => {
            ((unscaled as i32).to_be_bytes().to_vec(), true)
        }
        SqlValue::DateTime { days, ticks } if from == SqlType::DateTime => {
            let units = (ticks * 3 + 50_000) / 100_000;
            let mut bytes = (days - DAYS_TO_1900).to_be_bytes().to_vec();
            bytes.extend_from_slice(&(units as u32).to_be_bytes());
            (bytes, true)
        }
        SqlValue::DateTime { days, ticks } if from == SqlType::SmallDateTime => {
            let mut bytes = ((days - DAYS_TO_1900) as u16).to_be_bytes().to_vec();
            bytes.extend_from_slice(&((ticks / 600_000_000) as u16).to_be_bytes());
            (bytes, true)
        }
        _ => {
            return Err(error::not_implemented(&format!(
                "conversion of {} to binary (SQL Server's internal format)",
                base_name(from)
            )));
        }
    };
    Ok(SqlValue::Binary(fit_binary(bytes, to, numeric)))
}

/// Appends integer `value` of type `from` as `to` (binary(n) or varbinary(n)): its big-endian
/// bytes, padded or cut on the left, as CAST makes them.
pub fn append_integer_binary(value: i64, from: SqlType, to: SqlType, out: &mut Vec<u8>) {
    let bytes = value.to_be_bytes();
    let own = &bytes[8 - integer_width(from)..];
    let length = match to {
        SqlType::Binary { length } => usize::from(length),
        SqlType::VarBinary {
            length: Some(length),
        } => usize::from(length).min(own.len()),
        _ => own.len(),
    };
    if length >= own.len() {
        out.extend(std::iter::repeat_n(0u8, length - own.len()));
        out.extend_from_slice(own);
    } else {
        out.extend_from_slice(&own[own.len() - length..]);
    }
}

fn fit_binary(mut bytes: Vec<u8>, to: SqlType, from_left: bool) -> Vec<u8> {
    let (length, fixed) = match to {
        SqlType::Binary { length } => (usize::from(length), true),
        SqlType::VarBinary {
            length: Some(length),
        } => (usize::from(length), false),
        _ => return bytes,
    };
    if bytes.len() > length {
        if from_left {
            bytes.drain(..bytes.len() - length);
        } else {
            bytes.truncate(length);
        }
    } else if fixed && bytes.len() < length {
        if from_left {
            let mut padded = vec![0u8; length - bytes.len()];
            padded.extend_from_slice(&bytes);
            bytes = padded;
        } else {
            bytes.resize(length, 0);
        }
    }
    bytes
}

/// Character data to binary: style 0 the stored bytes (code page or UTF-16LE), style 1 hex
/// after `0x`, style 2 bare hex.
fn text_to_binary(
    text: String,
    from: SqlType,
    to: SqlType,
    style: Option<i64>,
    page: CodePage,
) -> Result<Vec<u8>> {
    let hex = |digits: &str| -> Result<Vec<u8>> {
        let bad = || error::converting_data_type(&base_name(from), &base_name(to));
        if digits.len() % 2 == 1 {
            return Err(bad());
        }
        (0..digits.len())
            .step_by(2)
            .map(|i| {
                digits
                    .get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(bad)
            })
            .collect()
    };
    match style.unwrap_or(0) {
        0 if datatype::is_unicode(from) => {
            Ok(text.encode_utf16().flat_map(u16::to_le_bytes).collect())
        }
        0 => Ok(collation::encode(text, page)),
        1 => match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            Some(digits) => hex(digits),
            None => Err(error::converting_data_type(
                &base_name(from),
                &base_name(to),
            )),
        },
        2 => hex(&text),
        other => Err(crate::tds::token::ServerMessage {
            number: 9809,
            state: 1,
            class: 16,
            text: format!(
                "The style {other} is not supported for conversions from {} to {}.",
                base_name(from),
                base_name(to)
            ),
        }),
    }
}

/// Appends the upper-case hex digits of `bytes`.
pub fn push_hex_upper(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
}

/// `unscaled × 10^-scale` in plain notation, with a leading zero below one (`-0.5000`).
pub fn format_decimal(unscaled: i128, scale: u8) -> String {
    let mut out = String::with_capacity(42);
    push_decimal(&mut out, unscaled, scale);
    out
}

/// Appends `unscaled × 10^-scale` in plain notation.
pub fn push_decimal(out: &mut String, unscaled: i128, scale: u8) {
    let mut digits = [0u8; 40];
    let mut at = digits.len();
    let mut magnitude = unscaled.unsigned_abs();
    // Whole words of u64 first: dividing an i128 per digit is slow.
    loop {
        if let Ok(mut small) = u64::try_from(magnitude) {
            loop {
                at -= 1;
                digits[at] = b'0' + (small % 10) as u8;
                small /= 10;
                if small == 0 {
                    break;
                }
            }
            break;
        }
        at -= 1;
        digits[at] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
    }
    let scale = usize::from(scale);
    // Enough leading zeros for one whole digit.
    while digits.len() - at < scale + 1 {
        at -= 1;
        digits[at] = b'0';
    }
    if unscaled < 0 {
        out.push('-');
    }
    let text = &digits[at..];
    let point = text.len() - scale;
    out.extend(text[..point].iter().map(|b| char::from(*b)));
    if scale > 0 {
        out.push('.');
        out.extend(text[point..].iter().map(|b| char::from(*b)));
    }
}

/// Lowercase `8-4-4-4-12`.
pub fn format_guid(guid: &[u8; 16]) -> String {
    let mut text = format_guid_upper(guid);
    text.make_ascii_lowercase();
    text
}

/// Uppercase `8-4-4-4-12`, as CAST of a uniqueidentifier to a string gives it.
pub fn format_guid_upper(guid: &[u8; 16]) -> String {
    let mut text = String::with_capacity(36);
    for (i, group) in [
        &guid[0..4],
        &guid[4..6],
        &guid[6..8],
        &guid[8..10],
        &guid[10..16],
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            text.push('-');
        }
        push_hex_upper(&mut text, group);
    }
    text
}

/// Parses `6F9619FF-8B86-D011-B42D-00C04FC964FF`, optionally in braces; SQL Server ignores
/// characters after the 36th.
pub fn parse_guid(text: &str) -> Option<[u8; 16]> {
    let trimmed = text.trim();
    let body = match trimmed.strip_prefix('{') {
        Some(inner) => inner.get(..36).filter(|_| inner.get(36..37) == Some("}"))?,
        None => trimmed.get(..36)?,
    };
    let groups: Vec<&str> = body.split('-').collect();
    if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: String = groups.concat();
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(bytes)
}

/// Writes `value` as text for messages (`<NULL>` for NULL).
pub fn display(value: &SqlValue) -> String {
    let mut out = String::new();
    match value {
        SqlValue::Null => out.push_str("<NULL>"),
        SqlValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        SqlValue::Text(t) => out.push_str(t),
        SqlValue::Bit(b) => out.push(if *b { '1' } else { '0' }),
        SqlValue::Decimal { unscaled, scale } => push_decimal(&mut out, *unscaled, *scale),
        SqlValue::Float(f) => {
            let _ = write!(out, "{f}");
        }
        SqlValue::Guid(g) => out.push_str(&format_guid(g)),
        SqlValue::Binary(b) => {
            out.push_str("0x");
            push_hex_upper(&mut out, b);
        }
        other => out.push_str(&temporal::format(other).unwrap_or_default()),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARCHAR_MAX: SqlType = SqlType::VarChar { length: None };

    fn text(value: SqlValue, from: SqlType, to: SqlType) -> String {
        match convert(value, from, to).unwrap() {
            SqlValue::Text(t) => t,
            other => panic!("{other:?}"),
        }
    }

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
        assert_eq!(
            parse_guid("{6F9619FF-8B86-D011-B42D-00C04FC964FF}"),
            Some(guid)
        );
        assert_eq!(
            parse_guid("6F9619FF-8B86-D011-B42D-00C04FC964FFtail"),
            Some(guid)
        );
    }

    #[test]
    fn decimals_print_with_their_scale_and_a_leading_zero() {
        assert_eq!(format_decimal(-5000, 4), "-0.5000");
        assert_eq!(format_decimal(5, 0), "5");
        assert_eq!(format_decimal(7, 3), "0.007");
        assert_eq!(
            format_decimal(-99_999_999_999_999_999_999_999_999_999_999_999_999, 10),
            "-9999999999999999999999999999.9999999999"
        );
    }

    #[test]
    fn binary_reads_as_big_endian_integers_of_the_targets_width() {
        let bytes = |b: &[u8]| SqlValue::Binary(b.to_vec());
        let binary = SqlType::VarBinary { length: Some(8) };
        assert_eq!(
            convert(bytes(&[0xff; 4]), binary, SqlType::BigInt).unwrap(),
            SqlValue::Int(4_294_967_295)
        );
        assert_eq!(
            convert(bytes(&[0xff; 4]), binary, SqlType::Int).unwrap(),
            SqlValue::Int(-1)
        );
        assert_eq!(
            convert(bytes(&[0xff; 8]), binary, SqlType::BigInt).unwrap(),
            SqlValue::Int(-1)
        );
        assert_eq!(
            convert(bytes(&[1, 2, 3, 4, 5]), binary, SqlType::Int).unwrap(),
            SqlValue::Int(0x0203_0405)
        );
        assert_eq!(
            convert(
                SqlValue::Int(7),
                SqlType::Int,
                SqlType::Binary { length: 4 }
            )
            .unwrap(),
            bytes(&[0, 0, 0, 7])
        );
        assert_eq!(
            convert(
                SqlValue::Int(7),
                SqlType::Int,
                SqlType::Binary { length: 6 }
            )
            .unwrap(),
            bytes(&[0, 0, 0, 0, 0, 7])
        );
        assert_eq!(
            convert(bytes(&[1, 2]), binary, SqlType::Binary { length: 4 }).unwrap(),
            bytes(&[1, 2, 0, 0])
        );
        assert_eq!(
            convert(
                SqlValue::Float(1.5),
                SqlType::Float,
                SqlType::Binary { length: 8 }
            )
            .unwrap(),
            bytes(&[0x3f, 0xf8, 0, 0, 0, 0, 0, 0])
        );
    }

    #[test]
    fn specialised_conversions_agree_with_the_general_one() {
        use super::super::expr::CastOp;
        let decimal = SqlType::Decimal {
            precision: 38,
            scale: 0,
        };
        let cases = [
            (
                CastOp::IntegerToText { limit: Some(20) },
                SqlValue::Int(i64::MIN),
                SqlType::BigInt,
                SqlType::VarChar { length: Some(20) },
            ),
            (
                CastOp::IntegerToText { limit: None },
                SqlValue::Int(0),
                SqlType::Int,
                SqlType::NVarChar { length: None },
            ),
            (
                CastOp::DecimalToText { limit: Some(50) },
                SqlValue::Decimal {
                    unscaled: -5,
                    scale: 4,
                },
                SqlType::Decimal {
                    precision: 9,
                    scale: 4,
                },
                SqlType::VarChar { length: Some(50) },
            ),
            (
                CastOp::BinaryToInteger,
                SqlValue::Binary(vec![0x80, 0, 0, 0, 0, 0, 0, 1]),
                SqlType::VarBinary { length: Some(8) },
                SqlType::BigInt,
            ),
            (
                CastOp::BinaryToInteger,
                SqlValue::Binary(vec![0xff, 0xff]),
                SqlType::VarBinary { length: Some(2) },
                SqlType::SmallInt,
            ),
            (
                CastOp::IntegerToInteger,
                SqlValue::Int(70_000),
                SqlType::BigInt,
                SqlType::Int,
            ),
            (
                CastOp::IntegerToDecimal {
                    scale: 0,
                    precision: 38,
                },
                SqlValue::Int(i64::MIN),
                SqlType::BigInt,
                decimal,
            ),
        ];
        for (op, value, from, to) in cases {
            let general = convert(value.clone(), from, to).unwrap();
            assert_eq!(fast(op, value, to), Ok(general), "{op:?} {from:?} {to:?}");
        }
        // What the fast paths leave alone comes back for the general conversion.
        assert_eq!(
            fast(
                CastOp::IntegerToText { limit: Some(2) },
                SqlValue::Int(123),
                SqlType::VarChar { length: Some(2) }
            ),
            Err(SqlValue::Int(123))
        );
        assert_eq!(
            fast(
                CastOp::IntegerToInteger,
                SqlValue::Int(300),
                SqlType::TinyInt
            ),
            Err(SqlValue::Int(300))
        );
    }

    #[test]
    fn integers_append_as_the_binary_cast_makes_them() {
        for (value, from, to) in [
            (258, SqlType::Int, SqlType::Binary { length: 4 }),
            (258, SqlType::Int, SqlType::Binary { length: 6 }),
            (258, SqlType::Int, SqlType::Binary { length: 1 }),
            (-1, SqlType::BigInt, SqlType::VarBinary { length: Some(3) }),
            (7, SqlType::SmallInt, SqlType::VarBinary { length: None }),
        ] {
            let mut appended = vec![9];
            append_integer_binary(value, from, to, &mut appended);
            let SqlValue::Binary(cast) = convert(SqlValue::Int(value), from, to).unwrap() else {
                panic!("not binary");
            };
            assert_eq!(appended[1..], cast[..], "{value} {from:?} {to:?}");
        }
    }

    #[test]
    fn numbers_too_long_for_their_string_star_or_fail() {
        assert_eq!(
            text(
                SqlValue::Int(12345),
                SqlType::Int,
                SqlType::VarChar { length: Some(3) }
            ),
            "*"
        );
        assert_eq!(
            convert(
                SqlValue::Int(12345),
                SqlType::Int,
                SqlType::NVarChar { length: Some(3) }
            )
            .unwrap_err()
            .number,
            8115
        );
        let decimal = SqlType::Decimal {
            precision: 9,
            scale: 4,
        };
        assert_eq!(
            convert(
                SqlValue::Decimal {
                    unscaled: -5000,
                    scale: 4
                },
                decimal,
                SqlType::VarChar { length: Some(3) }
            )
            .unwrap_err()
            .number,
            8115
        );
    }

    #[test]
    fn floats_print_as_sql_server_shows_them() {
        let shown = |f: f64, style| match convert_with_style(
            SqlValue::Float(f),
            SqlType::Float,
            VARCHAR_MAX,
            style,
        )
        .unwrap()
        {
            SqlValue::Text(t) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(shown(1.5, None), "1.5");
        assert_eq!(shown(1_495_591.0, None), "1.49559e+006");
        assert_eq!(shown(123_456.0, None), "123456");
        assert_eq!(shown(0.0001, None), "0.0001");
        assert_eq!(shown(0.00001, None), "1e-005");
        assert_eq!(shown(-2.0 / 3.0, None), "-0.666667");
        assert_eq!(shown(1.5, Some(1)), "1.5000000e+000");
        assert_eq!(shown(1.5, Some(2)), "1.500000000000000e+000");
    }

    #[test]
    fn strings_fit_their_type() {
        assert_eq!(
            text(
                SqlValue::Text("abc".into()),
                VARCHAR_MAX,
                SqlType::Char { length: 5 }
            ),
            "abc  "
        );
        assert_eq!(
            text(
                SqlValue::Text("Zoë 😀".into()),
                SqlType::NVarChar { length: None },
                VARCHAR_MAX
            ),
            "Zoë ??"
        );
        assert_eq!(
            text(
                SqlValue::Text("a😀b".into()),
                SqlType::NVarChar { length: None },
                SqlType::NVarChar { length: Some(2) }
            ),
            "a"
        );
        let utf8 = cast(
            SqlValue::Text("Zoë 😀".into()),
            SqlType::NVarChar { length: None },
            SqlType::VarChar { length: Some(3) },
            None,
            CodePage::Cp1252,
            CodePage::Utf8,
        )
        .unwrap();
        assert_eq!(utf8, SqlValue::Text("Zo".into()));
    }

    #[test]
    fn binary_and_text_convert_with_styles() {
        let bytes = SqlValue::Binary(vec![0xab, 0x01]);
        let binary = SqlType::VarBinary { length: None };
        let styled =
            |style| match convert_with_style(bytes.clone(), binary, VARCHAR_MAX, style).unwrap() {
                SqlValue::Text(t) => t,
                other => panic!("{other:?}"),
            };
        assert_eq!(styled(Some(1)), "0xAB01");
        assert_eq!(styled(Some(2)), "AB01");
        assert_eq!(styled(None), "\u{ab}\u{1}");
        assert_eq!(
            convert_with_style(
                SqlValue::Text("0xab01".into()),
                VARCHAR_MAX,
                binary,
                Some(1)
            )
            .unwrap(),
            bytes
        );
        assert_eq!(
            convert_with_style(SqlValue::Text("AB0".into()), VARCHAR_MAX, binary, Some(2))
                .unwrap_err()
                .number,
            8114
        );
        assert_eq!(
            convert(SqlValue::Text("€".into()), VARCHAR_MAX, binary).unwrap(),
            SqlValue::Binary(vec![0x80])
        );
    }

    #[test]
    fn text_that_is_not_a_number_fails_with_sql_servers_errors() {
        assert_eq!(
            convert(SqlValue::Text("1.5".into()), VARCHAR_MAX, SqlType::Int)
                .unwrap_err()
                .number,
            245
        );
        assert_eq!(
            convert(
                SqlValue::Text("x".into()),
                VARCHAR_MAX,
                SqlType::Decimal {
                    precision: 5,
                    scale: 1
                }
            )
            .unwrap_err()
            .number,
            8114
        );
        assert_eq!(
            convert(
                SqlValue::Text("99999999999".into()),
                VARCHAR_MAX,
                SqlType::Int
            )
            .unwrap_err()
            .number,
            248
        );
        assert_eq!(
            convert(SqlValue::Text(" 42 ".into()), VARCHAR_MAX, SqlType::Int).unwrap(),
            SqlValue::Int(42)
        );
        assert_eq!(
            convert(SqlValue::Date(1), SqlType::Date, SqlType::Int)
                .unwrap_err()
                .number,
            529
        );
    }

    #[test]
    fn money_prints_two_decimals_by_default() {
        let money = SqlValue::Decimal {
            unscaled: 12_345_678,
            scale: 4,
        };
        let styled =
            |style| match convert_with_style(money.clone(), SqlType::Money, VARCHAR_MAX, style)
                .unwrap()
            {
                SqlValue::Text(t) => t,
                other => panic!("{other:?}"),
            };
        assert_eq!(styled(None), "1234.57");
        assert_eq!(styled(Some(1)), "1,234.57");
        assert_eq!(styled(Some(2)), "1234.5678");
    }
}

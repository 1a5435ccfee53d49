//! SQL Server types and values, and their TDS encodings (TYPE_INFO and value), exactly as
//! SQL Server sends them: clients such as tiberius insist on the declared type (reading a
//! `bigint` column as `int` is an error), so a column keeps its exact type.

use super::token::COLLATION;

/// Days from 0001-01-01 to 1900-01-01, the epoch of `datetime` and `smalldatetime`.
pub const DAYS_TO_1900: i32 = 693_595;
/// 100-nanosecond ticks in a day.
pub const TICKS_PER_DAY: u64 = 864_000_000_000;
const PLP_NULL: u64 = u64::MAX;

/// A SQL Server column type with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    /// bit
    Bit,
    /// tinyint
    TinyInt,
    /// smallint
    SmallInt,
    /// int
    Int,
    /// bigint
    BigInt,
    /// decimal(p, s) or numeric(p, s)
    Decimal {
        /// Total digits, 1..=38.
        precision: u8,
        /// Fractional digits.
        scale: u8,
    },
    /// money
    Money,
    /// smallmoney
    SmallMoney,
    /// float (binary64)
    Float,
    /// real (binary32)
    Real,
    /// date
    Date,
    /// time(n)
    Time {
        /// Fractional-second digits, 0..=7.
        scale: u8,
    },
    /// datetime
    DateTime,
    /// smalldatetime
    SmallDateTime,
    /// datetime2(n)
    DateTime2 {
        /// Fractional-second digits, 0..=7.
        scale: u8,
    },
    /// datetimeoffset(n)
    DateTimeOffset {
        /// Fractional-second digits, 0..=7.
        scale: u8,
    },
    /// char(n)
    Char {
        /// Length in bytes.
        length: u16,
    },
    /// varchar(n) or varchar(max) (`None`)
    VarChar {
        /// Maximum length in bytes; `None` for max.
        length: Option<u16>,
    },
    /// nchar(n)
    NChar {
        /// Length in characters.
        length: u16,
    },
    /// nvarchar(n) or nvarchar(max) (`None`)
    NVarChar {
        /// Maximum length in characters; `None` for max.
        length: Option<u16>,
    },
    /// binary(n)
    Binary {
        /// Length in bytes.
        length: u16,
    },
    /// varbinary(n) or varbinary(max) (`None`)
    VarBinary {
        /// Maximum length in bytes; `None` for max.
        length: Option<u16>,
    },
    /// uniqueidentifier
    UniqueIdentifier,
    /// xml
    Xml,
}

/// A value, interpreted through its column's [`SqlType`].
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// NULL of any type.
    Null,
    /// bit.
    Bit(bool),
    /// Any integer type.
    Int(i64),
    /// decimal, numeric, money, smallmoney: `unscaled × 10^-scale`.
    Decimal {
        /// Unscaled value.
        unscaled: i128,
        /// Fractional digits.
        scale: u8,
    },
    /// float, real.
    Float(f64),
    /// date: days since 0001-01-01.
    Date(i32),
    /// time: 100 ns ticks since midnight.
    Time(u64),
    /// datetime, smalldatetime, datetime2: days since 0001-01-01 and 100 ns ticks of that day.
    DateTime {
        /// Days since 0001-01-01.
        days: i32,
        /// Ticks since midnight.
        ticks: u64,
    },
    /// datetimeoffset: the UTC date and time, and the offset in minutes.
    DateTimeOffset {
        /// UTC days since 0001-01-01.
        days: i32,
        /// UTC ticks since midnight.
        ticks: u64,
        /// Offset from UTC in minutes.
        offset_minutes: i16,
    },
    /// Character types and xml.
    Text(String),
    /// Binary types.
    Binary(Vec<u8>),
    /// uniqueidentifier, in RFC 4122 (textual, big-endian) byte order.
    Guid([u8; 16]),
}

impl SqlType {
    /// Writes the TYPE_INFO of a column of this type.
    pub fn write_type_info(&self, out: &mut Vec<u8>) {
        match *self {
            SqlType::Bit => out.extend_from_slice(&[0x68, 1]),
            SqlType::TinyInt => out.extend_from_slice(&[0x26, 1]),
            SqlType::SmallInt => out.extend_from_slice(&[0x26, 2]),
            SqlType::Int => out.extend_from_slice(&[0x26, 4]),
            SqlType::BigInt => out.extend_from_slice(&[0x26, 8]),
            SqlType::Decimal { precision, scale } => {
                out.extend_from_slice(&[0x6a, decimal_len(precision), precision, scale]);
            }
            SqlType::Money => out.extend_from_slice(&[0x6e, 8]),
            SqlType::SmallMoney => out.extend_from_slice(&[0x6e, 4]),
            SqlType::Float => out.extend_from_slice(&[0x6d, 8]),
            SqlType::Real => out.extend_from_slice(&[0x6d, 4]),
            SqlType::Date => out.push(0x28),
            SqlType::Time { scale } => out.extend_from_slice(&[0x29, scale]),
            SqlType::DateTime => out.extend_from_slice(&[0x6f, 8]),
            SqlType::SmallDateTime => out.extend_from_slice(&[0x6f, 4]),
            SqlType::DateTime2 { scale } => out.extend_from_slice(&[0x2a, scale]),
            SqlType::DateTimeOffset { scale } => out.extend_from_slice(&[0x2b, scale]),
            SqlType::Char { length } => sized_text(out, 0xaf, length, true),
            SqlType::VarChar { length } => sized_text(out, 0xa7, length.unwrap_or(u16::MAX), true),
            SqlType::NChar { length } => sized_text(out, 0xef, length.saturating_mul(2), true),
            SqlType::NVarChar { length } => {
                sized_text(
                    out,
                    0xe7,
                    length.map_or(u16::MAX, |l| l.saturating_mul(2)),
                    true,
                );
            }
            SqlType::Binary { length } => sized_text(out, 0xad, length, false),
            SqlType::VarBinary { length } => {
                sized_text(out, 0xa5, length.unwrap_or(u16::MAX), false)
            }
            SqlType::UniqueIdentifier => out.extend_from_slice(&[0x24, 16]),
            SqlType::Xml => out.extend_from_slice(&[0xf1, 0]),
        }
    }

    /// Writes `value` as a value of this type (the caller has checked it fits).
    pub fn write_value(&self, value: &SqlValue, out: &mut Vec<u8>) {
        if self.is_plp() {
            return write_plp(value, *self, out);
        }
        if let SqlValue::Null = value {
            return write_null(*self, out);
        }
        match (*self, value) {
            (SqlType::Bit, SqlValue::Bit(b)) => out.extend_from_slice(&[1, u8::from(*b)]),
            (SqlType::TinyInt, SqlValue::Int(i)) => out.extend_from_slice(&[1, *i as u8]),
            (SqlType::SmallInt, SqlValue::Int(i)) => with_len(out, &(*i as i16).to_le_bytes()),
            (SqlType::Int, SqlValue::Int(i)) => with_len(out, &(*i as i32).to_le_bytes()),
            (SqlType::BigInt, SqlValue::Int(i)) => with_len(out, &i.to_le_bytes()),
            (SqlType::Decimal { precision, .. }, SqlValue::Decimal { unscaled, .. }) => {
                let len = decimal_len(precision);
                out.push(len);
                out.push(u8::from(*unscaled >= 0));
                out.extend_from_slice(
                    &unscaled.unsigned_abs().to_le_bytes()[..usize::from(len) - 1],
                );
            }
            (SqlType::Money, SqlValue::Decimal { unscaled, .. }) => {
                let v = *unscaled as i64;
                out.push(8);
                out.extend_from_slice(&((v >> 32) as i32).to_le_bytes());
                out.extend_from_slice(&(v as u32).to_le_bytes());
            }
            (SqlType::SmallMoney, SqlValue::Decimal { unscaled, .. }) => {
                with_len(out, &(*unscaled as i32).to_le_bytes())
            }
            (SqlType::Float, SqlValue::Float(f)) => with_len(out, &f.to_le_bytes()),
            (SqlType::Real, SqlValue::Float(f)) => with_len(out, &(*f as f32).to_le_bytes()),
            (SqlType::Date, SqlValue::Date(days)) => {
                out.push(3);
                out.extend_from_slice(&days.to_le_bytes()[..3]);
            }
            (SqlType::Time { scale }, SqlValue::Time(ticks)) => {
                out.push(time_len(scale));
                write_time(out, *ticks, scale);
            }
            (SqlType::DateTime, SqlValue::DateTime { days, ticks }) => {
                out.push(8);
                out.extend_from_slice(&(days - DAYS_TO_1900).to_le_bytes());
                let three_hundredths = (*ticks * 3 + 50_000) / 100_000;
                out.extend_from_slice(&(three_hundredths as u32).to_le_bytes());
            }
            (SqlType::SmallDateTime, SqlValue::DateTime { days, ticks }) => {
                out.push(4);
                out.extend_from_slice(&((days - DAYS_TO_1900) as u16).to_le_bytes());
                out.extend_from_slice(&((ticks / 600_000_000) as u16).to_le_bytes());
            }
            (SqlType::DateTime2 { scale }, SqlValue::DateTime { days, ticks }) => {
                out.push(time_len(scale) + 3);
                write_time(out, *ticks, scale);
                out.extend_from_slice(&days.to_le_bytes()[..3]);
            }
            (
                SqlType::DateTimeOffset { scale },
                SqlValue::DateTimeOffset {
                    days,
                    ticks,
                    offset_minutes,
                },
            ) => {
                out.push(time_len(scale) + 5);
                write_time(out, *ticks, scale);
                out.extend_from_slice(&days.to_le_bytes()[..3]);
                out.extend_from_slice(&offset_minutes.to_le_bytes());
            }
            (SqlType::Char { .. } | SqlType::VarChar { .. }, SqlValue::Text(s)) => {
                short_bytes(out, &single_byte(s, self.fixed_length()));
            }
            (SqlType::NChar { .. } | SqlType::NVarChar { .. }, SqlValue::Text(s)) => {
                short_bytes(out, &utf16_padded(s, self.fixed_length()));
            }
            (SqlType::Binary { length }, SqlValue::Binary(b)) => {
                let mut padded = b.clone();
                padded.resize(usize::from(length).max(b.len()), 0);
                short_bytes(out, &padded);
            }
            (SqlType::VarBinary { .. }, SqlValue::Binary(b)) => short_bytes(out, b),
            (SqlType::UniqueIdentifier, SqlValue::Guid(g)) => {
                out.push(16);
                out.extend_from_slice(&guid_wire_order(g));
            }
            // A value that does not fit its column is a bug of the engine; send NULL rather
            // than a corrupt stream the client would fail on in the middle of a result.
            _ => write_null(*self, out),
        }
    }

    /// Whether values travel as PLP (partially length-prefixed): the `(max)` types and xml.
    pub fn is_plp(&self) -> bool {
        matches!(
            self,
            SqlType::VarChar { length: None }
                | SqlType::NVarChar { length: None }
                | SqlType::VarBinary { length: None }
                | SqlType::Xml
        )
    }

    fn fixed_length(&self) -> Option<usize> {
        match *self {
            SqlType::Char { length } | SqlType::NChar { length } => Some(usize::from(length)),
            _ => None,
        }
    }
}

fn write_null(sql_type: SqlType, out: &mut Vec<u8>) {
    match sql_type {
        SqlType::Char { .. }
        | SqlType::VarChar { .. }
        | SqlType::NChar { .. }
        | SqlType::NVarChar { .. }
        | SqlType::Binary { .. }
        | SqlType::VarBinary { .. } => out.extend_from_slice(&0xffffu16.to_le_bytes()),
        _ => out.push(0),
    }
}

fn write_plp(value: &SqlValue, sql_type: SqlType, out: &mut Vec<u8>) {
    let bytes = match (value, sql_type) {
        (SqlValue::Null, _) => return out.extend_from_slice(&PLP_NULL.to_le_bytes()),
        (SqlValue::Text(s), SqlType::VarChar { .. }) => single_byte(s, None),
        (SqlValue::Text(s), _) => utf16_padded(s, None),
        (SqlValue::Binary(b), _) => b.clone(),
        _ => return out.extend_from_slice(&PLP_NULL.to_le_bytes()),
    };
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    // Chunks of at most 8000 bytes, as SQL Server sends them.
    for chunk in bytes.chunks(8000) {
        out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&0u32.to_le_bytes());
}

fn sized_text(out: &mut Vec<u8>, code: u8, max_bytes: u16, with_collation: bool) {
    out.push(code);
    out.extend_from_slice(&max_bytes.to_le_bytes());
    if with_collation {
        out.extend_from_slice(&COLLATION);
    }
}

fn with_len(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn short_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len().min(8000) as u16).to_le_bytes());
    out.extend_from_slice(&bytes[..bytes.len().min(8000)]);
}

/// Bytes of a decimal value (sign byte included) for a precision.
pub fn decimal_len(precision: u8) -> u8 {
    match precision {
        0..=9 => 5,
        10..=19 => 9,
        20..=28 => 13,
        _ => 17,
    }
}

/// Bytes of a time value for a scale.
pub fn time_len(scale: u8) -> u8 {
    match scale {
        0..=2 => 3,
        3..=4 => 4,
        _ => 5,
    }
}

fn write_time(out: &mut Vec<u8>, ticks: u64, scale: u8) {
    let units = ticks / 10u64.pow(7 - u32::from(scale.min(7)));
    out.extend_from_slice(&units.to_le_bytes()[..usize::from(time_len(scale))]);
}

/// Text in the default collation's code page (Windows-1252); characters outside it become
/// `?`, as SQL Server does. Fixed-length types are padded with spaces.
fn single_byte(text: &str, fixed: Option<usize>) -> Vec<u8> {
    let mut bytes = crate::engine::collation::encode(
        text.to_owned(),
        crate::engine::collation::CodePage::Cp1252,
    );
    if let Some(length) = fixed {
        bytes.resize(length.max(bytes.len()), b' ');
    }
    bytes
}

fn utf16_padded(text: &str, fixed: Option<usize>) -> Vec<u8> {
    let mut units: Vec<u16> = text.encode_utf16().collect();
    if let Some(length) = fixed {
        units.resize(length.max(units.len()), u16::from(b' '));
    }
    units.iter().flat_map(|u| u.to_le_bytes()).collect()
}

/// SQL Server stores the first three groups of a GUID little-endian.
pub fn guid_wire_order(rfc: &[u8; 16]) -> [u8; 16] {
    let mut wire = *rfc;
    wire[0..4].reverse();
    wire[4..6].reverse();
    wire[6..8].reverse();
    wire
}

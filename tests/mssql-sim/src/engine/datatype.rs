//! SQL Server types: parsing a declared type, printing one in messages, and the rules that
//! type an expression statically (data type precedence, which conversions are implicit, the
//! type two branches of a CASE share).

use super::error::{self, SqlError};
use crate::tds::types::SqlType;

/// The type named by `declared` (e.g. `nvarchar(max)`, `DECIMAL(38,10)`, `datetime2(7)`).
pub fn parse(declared: &str) -> Option<SqlType> {
    let text = declared.trim().to_ascii_lowercase();
    let (name, args) = match text.split_once('(') {
        Some((name, rest)) => (
            name.trim().to_owned(),
            rest.trim_end_matches(')')
                .split(',')
                .map(|a| a.trim().to_owned())
                .collect(),
        ),
        None => (text.clone(), Vec::new()),
    };
    let number = |i: usize| args.get(i).and_then(|a| a.parse::<u16>().ok());
    let length = || match args.first().map(String::as_str) {
        Some("max") => Some(None),
        Some(_) => number(0).map(Some),
        None => Some(Some(1)),
    };
    let scale = || number(0).map_or(Some(7), |s| u8::try_from(s).ok().filter(|s| *s <= 7));
    Some(match name.as_str() {
        "bit" => SqlType::Bit,
        "tinyint" => SqlType::TinyInt,
        "smallint" => SqlType::SmallInt,
        "int" | "integer" => SqlType::Int,
        "bigint" => SqlType::BigInt,
        "decimal" | "numeric" | "dec" => {
            let precision = u8::try_from(number(0).unwrap_or(18))
                .ok()
                .filter(|p| (1..=38).contains(p))?;
            let scale = u8::try_from(number(1).unwrap_or(0))
                .ok()
                .filter(|s| *s <= precision)?;
            SqlType::Decimal { precision, scale }
        }
        "money" => SqlType::Money,
        "smallmoney" => SqlType::SmallMoney,
        "float" => match number(0) {
            Some(bits) if bits <= 24 => SqlType::Real,
            _ => SqlType::Float,
        },
        "real" => SqlType::Real,
        "date" => SqlType::Date,
        "time" => SqlType::Time { scale: scale()? },
        "datetime" => SqlType::DateTime,
        "smalldatetime" => SqlType::SmallDateTime,
        "datetime2" => SqlType::DateTime2 { scale: scale()? },
        "datetimeoffset" => SqlType::DateTimeOffset { scale: scale()? },
        "char" | "character" => SqlType::Char { length: length()?? },
        "varchar" => SqlType::VarChar { length: length()? },
        "nchar" => SqlType::NChar { length: length()?? },
        "nvarchar" => SqlType::NVarChar { length: length()? },
        "binary" => SqlType::Binary { length: length()?? },
        "varbinary" => SqlType::VarBinary { length: length()? },
        "uniqueidentifier" => SqlType::UniqueIdentifier,
        "xml" => SqlType::Xml,
        "text" => SqlType::VarChar { length: None },
        "ntext" => SqlType::NVarChar { length: None },
        "image" => SqlType::VarBinary { length: None },
        "rowversion" | "timestamp" => SqlType::Binary { length: 8 },
        _ => return None,
    })
}

/// The type's name as SQL Server prints it in messages.
pub fn name(sql_type: SqlType) -> String {
    let length = |l: Option<u16>| l.map_or_else(|| "max".to_owned(), |l| l.to_string());
    match sql_type {
        SqlType::Bit => "bit".into(),
        SqlType::TinyInt => "tinyint".into(),
        SqlType::SmallInt => "smallint".into(),
        SqlType::Int => "int".into(),
        SqlType::BigInt => "bigint".into(),
        SqlType::Decimal { .. } => "numeric".into(),
        SqlType::Money => "money".into(),
        SqlType::SmallMoney => "smallmoney".into(),
        SqlType::Float => "float".into(),
        SqlType::Real => "real".into(),
        SqlType::Date => "date".into(),
        SqlType::Time { .. } => "time".into(),
        SqlType::DateTime => "datetime".into(),
        SqlType::SmallDateTime => "smalldatetime".into(),
        SqlType::DateTime2 { .. } => "datetime2".into(),
        SqlType::DateTimeOffset { .. } => "datetimeoffset".into(),
        SqlType::Char { length } => format!("char({length})"),
        SqlType::VarChar { length: l } => format!("varchar({})", length(l)),
        SqlType::NChar { length } => format!("nchar({length})"),
        SqlType::NVarChar { length: l } => format!("nvarchar({})", length(l)),
        SqlType::Binary { length } => format!("binary({length})"),
        SqlType::VarBinary { length: l } => format!("varbinary({})", length(l)),
        SqlType::UniqueIdentifier => "uniqueidentifier".into(),
        SqlType::Xml => "xml".into(),
    }
}

/// `char`, `varchar`, `nchar` or `nvarchar`.
pub fn is_character(t: SqlType) -> bool {
    matches!(
        t,
        SqlType::Char { .. }
            | SqlType::VarChar { .. }
            | SqlType::NChar { .. }
            | SqlType::NVarChar { .. }
    )
}

/// `nchar` or `nvarchar`.
pub fn is_unicode(t: SqlType) -> bool {
    matches!(t, SqlType::NChar { .. } | SqlType::NVarChar { .. })
}

/// `binary` or `varbinary`.
pub fn is_binary(t: SqlType) -> bool {
    matches!(t, SqlType::Binary { .. } | SqlType::VarBinary { .. })
}

/// `tinyint`, `smallint`, `int` or `bigint`.
pub fn is_integer(t: SqlType) -> bool {
    matches!(
        t,
        SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt
    )
}

/// The number types (exact and approximate), `bit` and `money` included.
pub fn is_number(t: SqlType) -> bool {
    is_integer(t)
        || matches!(
            t,
            SqlType::Bit
                | SqlType::Decimal { .. }
                | SqlType::Money
                | SqlType::SmallMoney
                | SqlType::Float
                | SqlType::Real
        )
}

/// The date and time types.
pub fn is_temporal(t: SqlType) -> bool {
    matches!(
        t,
        SqlType::Date
            | SqlType::Time { .. }
            | SqlType::DateTime
            | SqlType::SmallDateTime
            | SqlType::DateTime2 { .. }
            | SqlType::DateTimeOffset { .. }
    )
}

/// Whether the type is one of the `(max)` large value types (or xml, stored like one).
pub fn is_max(t: SqlType) -> bool {
    matches!(
        t,
        SqlType::VarChar { length: None }
            | SqlType::NVarChar { length: None }
            | SqlType::VarBinary { length: None }
            | SqlType::Xml
    )
}

/// SQL Server's data type precedence: when two types meet, the lower converts to the higher.
pub fn precedence(t: SqlType) -> u8 {
    match t {
        SqlType::Xml => 30,
        SqlType::DateTimeOffset { .. } => 29,
        SqlType::DateTime2 { .. } => 28,
        SqlType::DateTime => 27,
        SqlType::SmallDateTime => 26,
        SqlType::Date => 25,
        SqlType::Time { .. } => 24,
        SqlType::Float => 23,
        SqlType::Real => 22,
        SqlType::Decimal { .. } => 21,
        SqlType::Money => 20,
        SqlType::SmallMoney => 19,
        SqlType::BigInt => 18,
        SqlType::Int => 17,
        SqlType::SmallInt => 16,
        SqlType::TinyInt => 15,
        SqlType::Bit => 14,
        SqlType::UniqueIdentifier => 10,
        SqlType::NVarChar { .. } => 9,
        SqlType::NChar { .. } => 8,
        SqlType::VarChar { .. } => 7,
        SqlType::Char { .. } => 6,
        SqlType::VarBinary { .. } => 5,
        SqlType::Binary { .. } => 4,
    }
}

/// An exact number type as `decimal(p, s)`: what it takes part in decimal arithmetic as.
pub fn decimal_shape(t: SqlType) -> Option<(u8, u8)> {
    Some(match t {
        SqlType::Bit => (1, 0),
        SqlType::TinyInt => (3, 0),
        SqlType::SmallInt => (5, 0),
        SqlType::Int => (10, 0),
        SqlType::BigInt => (19, 0),
        SqlType::Decimal { precision, scale } => (precision, scale),
        SqlType::Money => (19, 4),
        SqlType::SmallMoney => (10, 4),
        _ => return None,
    })
}

/// Whether a conversion happens by itself, only when asked for, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// Implicit (and explicit).
    Implicit,
    /// Only with CAST or CONVERT.
    Explicit,
    /// Never.
    NotAllowed,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Binary,
    Character,
    Exact,
    Approximate,
    OldTemporal,
    NewTemporal,
    Guid,
    Xml,
}

fn family(t: SqlType) -> Family {
    match t {
        SqlType::Binary { .. } | SqlType::VarBinary { .. } => Family::Binary,
        t if is_character(t) => Family::Character,
        SqlType::Float | SqlType::Real => Family::Approximate,
        t if is_number(t) => Family::Exact,
        SqlType::DateTime | SqlType::SmallDateTime => Family::OldTemporal,
        t if is_temporal(t) => Family::NewTemporal,
        SqlType::UniqueIdentifier => Family::Guid,
        _ => Family::Xml,
    }
}

/// Whether `from` converts to `to` implicitly, explicitly only, or not at all (SQL Server's
/// conversion chart).
pub fn conversion(from: SqlType, to: SqlType) -> Conversion {
    use Conversion::{Explicit, Implicit, NotAllowed};
    use Family as F;
    let (a, b) = (family(from), family(to));
    if a == b {
        // Within the new date and time types a date and a time do not convert into each other.
        return match (from, to) {
            (SqlType::Date, SqlType::Time { .. }) | (SqlType::Time { .. }, SqlType::Date) => {
                NotAllowed
            }
            _ => Implicit,
        };
    }
    match (a, b) {
        (F::Character, F::Binary) => Explicit,
        (F::Character, _) => Implicit,
        (F::Xml, F::Character) => Explicit,
        (_, F::Character) => Implicit,
        (F::Binary, F::Approximate) => NotAllowed,
        (F::Binary, F::NewTemporal) => Explicit,
        (F::Binary, _) => Implicit,
        (F::Exact | F::OldTemporal | F::Guid, F::Binary) => Implicit,
        (F::Approximate | F::NewTemporal | F::Xml, F::Binary) => Explicit,
        (F::Exact, F::Approximate) | (F::Approximate, F::Exact) => Implicit,
        (F::Exact | F::Approximate, F::OldTemporal) => Implicit,
        (F::OldTemporal, F::Exact | F::Approximate) => Explicit,
        (F::OldTemporal, F::NewTemporal) | (F::NewTemporal, F::OldTemporal) => Implicit,
        _ => NotAllowed,
    }
}

/// Checks that `from` converts to `to` without CAST: 257 when only CAST may do it, 206 when
/// nothing can.
pub fn check_implicit(from: SqlType, to: SqlType) -> Result<(), SqlError> {
    match conversion(from, to) {
        Conversion::Implicit => Ok(()),
        Conversion::Explicit => Err(error::implicit_conversion(&name(from), &name(to))),
        Conversion::NotAllowed => Err(error::operand_clash(&name(from), &name(to))),
    }
}

/// The type two values share when they meet in a comparison, IN, CASE or COALESCE: the one of
/// higher precedence, widened to hold both (lengths, precision and scale).
pub fn common(a: SqlType, b: SqlType) -> Result<SqlType, SqlError> {
    if a == b {
        return Ok(a);
    }
    let (high, low) = if precedence(a) >= precedence(b) {
        (a, b)
    } else {
        (b, a)
    };
    check_implicit(low, high)?;
    Ok(match high {
        SqlType::Decimal { .. } => match (decimal_shape(a), decimal_shape(b)) {
            (Some((p1, s1)), Some((p2, s2))) => {
                let scale = s1.max(s2);
                let integral = (p1 - s1).max(p2 - s2);
                let precision = (integral + scale).min(38);
                SqlType::Decimal {
                    precision,
                    scale: scale.min(precision),
                }
            }
            _ => high,
        },
        SqlType::Time { .. } | SqlType::DateTime2 { .. } | SqlType::DateTimeOffset { .. } => {
            let scale = temporal_scale(a).max(temporal_scale(b));
            match high {
                SqlType::Time { .. } => SqlType::Time { scale },
                SqlType::DateTime2 { .. } => SqlType::DateTime2 { scale },
                _ => SqlType::DateTimeOffset { scale },
            }
        }
        t if is_character(t) || is_binary(t) => {
            let unicode = is_unicode(t);
            let length = match (char_length(a), char_length(b)) {
                (Some(x), Some(y)) => Some(x.max(y)),
                _ => None,
            };
            let limit = if unicode { 4000 } else { 8000 };
            let length = length.filter(|l| *l <= limit);
            match t {
                SqlType::NVarChar { .. } => SqlType::NVarChar { length },
                SqlType::VarChar { .. } => SqlType::VarChar { length },
                SqlType::VarBinary { .. } => SqlType::VarBinary { length },
                SqlType::NChar { .. } => length
                    .map_or(SqlType::NVarChar { length: None }, |length| {
                        SqlType::NChar { length }
                    }),
                SqlType::Char { .. } => length
                    .map_or(SqlType::VarChar { length: None }, |length| SqlType::Char {
                        length,
                    }),
                _ => length.map_or(SqlType::VarBinary { length: None }, |length| {
                    SqlType::Binary { length }
                }),
            }
        }
        other => other,
    })
}

/// The fractional-second digits of a date or time type (datetime counts as 3).
pub fn temporal_scale(t: SqlType) -> u8 {
    match t {
        SqlType::Time { scale }
        | SqlType::DateTime2 { scale }
        | SqlType::DateTimeOffset { scale } => scale,
        SqlType::DateTime => 3,
        _ => 0,
    }
}

/// The length in characters (bytes for binary types) of a string or binary type; None for
/// `(max)`. Other types count as the length of their longest text form.
pub fn char_length(t: SqlType) -> Option<u16> {
    match t {
        SqlType::Char { length } | SqlType::NChar { length } | SqlType::Binary { length } => {
            Some(length)
        }
        SqlType::VarChar { length }
        | SqlType::NVarChar { length }
        | SqlType::VarBinary { length } => length,
        SqlType::Xml => None,
        SqlType::UniqueIdentifier => Some(36),
        SqlType::Bit => Some(1),
        SqlType::TinyInt => Some(3),
        SqlType::SmallInt => Some(6),
        SqlType::Int => Some(11),
        SqlType::BigInt => Some(20),
        SqlType::Decimal { precision, .. } => Some(u16::from(precision) + 2),
        SqlType::Money | SqlType::SmallMoney => Some(30),
        SqlType::Float | SqlType::Real => Some(30),
        SqlType::Date => Some(10),
        SqlType::Time { .. } => Some(16),
        SqlType::DateTime | SqlType::SmallDateTime => Some(30),
        SqlType::DateTime2 { .. } => Some(27),
        SqlType::DateTimeOffset { .. } => Some(34),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_parse_with_their_parameters() {
        assert_eq!(
            parse("DECIMAL(38,10)"),
            Some(SqlType::Decimal {
                precision: 38,
                scale: 10
            })
        );
        assert_eq!(
            parse("nvarchar(max)"),
            Some(SqlType::NVarChar { length: None })
        );
        assert_eq!(
            parse("nvarchar"),
            Some(SqlType::NVarChar { length: Some(1) })
        );
        assert_eq!(parse("datetime2"), Some(SqlType::DateTime2 { scale: 7 }));
        assert_eq!(parse("time(3)"), Some(SqlType::Time { scale: 3 }));
        assert_eq!(parse("decimal(39,0)"), None);
        assert_eq!(parse("geography"), None);
    }

    #[test]
    fn common_types_follow_precedence_and_widen() {
        assert_eq!(
            common(
                SqlType::Int,
                SqlType::Decimal {
                    precision: 5,
                    scale: 2
                }
            ),
            Ok(SqlType::Decimal {
                precision: 12,
                scale: 2
            })
        );
        assert_eq!(
            common(
                SqlType::VarChar { length: Some(10) },
                SqlType::NVarChar { length: Some(3) }
            ),
            Ok(SqlType::NVarChar { length: Some(10) })
        );
        assert_eq!(common(SqlType::Float, SqlType::Int), Ok(SqlType::Float));
        assert_eq!(common(SqlType::Date, SqlType::Int).unwrap_err().number, 206);
        assert_eq!(
            common(
                SqlType::VarBinary { length: Some(4) },
                SqlType::VarChar { length: Some(4) }
            ),
            Ok(SqlType::VarChar { length: Some(4) })
        );
        assert_eq!(
            check_implicit(
                SqlType::VarChar { length: Some(4) },
                SqlType::VarBinary { length: Some(4) }
            )
            .unwrap_err()
            .number,
            257
        );
    }
}

//! Column value operations: masks and type conversions. Each checks at compile time that it
//! fits the column's type and gives the column's new type; per row it changes one value.
//! Messages name columns and types, never values (reasons are logged and shown to operators).

use std::fmt;

use cdc_model::Decimal;
use cdc_model::proto::value::Kind;
use cdc_model::proto::{ColumnSchema, ColumnType, LogicalType, Value};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::{Convert, ConvertTo, Mask, MaskMethod, OnError};

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Shortest HMAC key accepted, in bytes.
pub const MIN_HMAC_KEY_BYTES: usize = 16;

/// The key of `hmac` masks, keyed once (cloning the keyed state is cheaper than keying again).
#[derive(Clone)]
pub struct HmacKey {
    keyed: Hmac<Sha256>,
}

impl HmacKey {
    /// A key from the resolved secret.
    pub fn new(secret: &SecretString) -> Result<HmacKey, String> {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < MIN_HMAC_KEY_BYTES {
            return Err(format!(
                "the masking key is {} bytes; at least {MIN_HMAC_KEY_BYTES} are needed",
                bytes.len()
            ));
        }
        Hmac::<Sha256>::new_from_slice(bytes)
            .map(|keyed| HmacKey { keyed })
            .map_err(|e| format!("unusable masking key: {e}"))
    }

    fn hex_digest(&self, text: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(text.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(digest.len() * 2);
        for byte in digest {
            out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
        }
        out
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(…)")
    }
}

/// One compiled operation on one column's values.
#[derive(Debug, Clone)]
pub enum ValueOp {
    /// Keyed hash of the canonical text.
    Hmac(HmacKey),
    /// A fixed text.
    Redact(String),
    /// The first characters.
    Truncate(usize),
    /// The last characters, the rest replaced.
    KeepLast {
        /// Characters kept.
        keep: usize,
        /// What replaces the others.
        filler: char,
    },
    /// The same instant at offset zero.
    TimestamptzUtc,
    /// An exact number at a fixed scale.
    Numeric {
        /// Digits in all.
        precision: u32,
        /// Digits after the point.
        scale: u32,
        /// On overflow or lost digits.
        on_error: OnError,
    },
    /// Text of at most `length` characters.
    Varchar {
        /// Characters.
        length: usize,
        /// On a longer value.
        on_error: OnError,
    },
    /// Text parsed as a UUID.
    Uuid {
        /// On text that is not a UUID.
        on_error: OnError,
    },
    /// Text checked to be JSON.
    Json {
        /// On text that is not JSON.
        on_error: OnError,
    },
}

fn logical(column: &ColumnSchema) -> LogicalType {
    column
        .r#type
        .as_ref()
        .and_then(|t| LogicalType::try_from(t.logical).ok())
        .unwrap_or(LogicalType::Unspecified)
}

fn type_name(column: &ColumnSchema) -> String {
    let declared = column
        .r#type
        .as_ref()
        .map(|t| t.source_type.as_str())
        .unwrap_or_default();
    if declared.is_empty() {
        format!("{:?}", logical(column)).to_lowercase()
    } else {
        declared.to_owned()
    }
}

fn retyped(
    column: &ColumnSchema,
    logical: LogicalType,
    length: u32,
    source_type: &str,
) -> ColumnSchema {
    ColumnSchema {
        name: column.name.clone(),
        r#type: Some(ColumnType {
            logical: logical as i32,
            length,
            precision: 0,
            scale: 0,
            source_type: source_type.to_owned(),
        }),
        nullable: column.nullable,
    }
}

impl ValueOp {
    /// The operation a mask compiles to.
    pub fn for_mask(mask: &Mask, key: Option<&HmacKey>) -> Result<ValueOp, String> {
        let length = mask.length.unwrap_or(0) as usize;
        Ok(match mask.method {
            MaskMethod::Hmac => ValueOp::Hmac(
                key.cloned()
                    .ok_or("method `hmac` needs `[masking] hmac_key`")?,
            ),
            MaskMethod::Redact => {
                ValueOp::Redact(mask.replacement.clone().unwrap_or("REDACTED".to_owned()))
            }
            MaskMethod::Truncate => ValueOp::Truncate(length),
            MaskMethod::KeepLast => ValueOp::KeepLast {
                keep: length,
                filler: mask
                    .replacement
                    .as_ref()
                    .and_then(|r| r.chars().next())
                    .unwrap_or('*'),
            },
        })
    }

    /// The operation a conversion compiles to.
    pub fn for_convert(convert: &Convert) -> ValueOp {
        let on_error = convert.on_error.unwrap_or(OnError::DeadLetter);
        match convert.to {
            ConvertTo::TimestamptzUtc => ValueOp::TimestamptzUtc,
            ConvertTo::Numeric => ValueOp::Numeric {
                precision: convert.precision.unwrap_or(19),
                scale: convert.scale.unwrap_or(4),
                on_error,
            },
            ConvertTo::Varchar => ValueOp::Varchar {
                length: convert.length.unwrap_or(1) as usize,
                on_error,
            },
            ConvertTo::Uuid => ValueOp::Uuid { on_error },
            ConvertTo::Json => ValueOp::Json { on_error },
        }
    }

    /// Whether values can be told apart after the operation as before (so it may touch a key).
    pub fn keeps_keys_distinct(&self) -> bool {
        matches!(
            self,
            ValueOp::Hmac(_) | ValueOp::TimestamptzUtc | ValueOp::Uuid { .. }
        ) || matches!(self, ValueOp::Numeric { on_error, .. } if *on_error == OnError::DeadLetter)
    }

    /// The column after the operation, or why the operation does not fit its type.
    pub fn output_column(&self, column: &ColumnSchema) -> Result<ColumnSchema, String> {
        let input = logical(column);
        let textual = matches!(input, LogicalType::Text);
        let expect = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "column `{}` is {}; {what}",
                    column.name,
                    type_name(column)
                ))
            }
        };
        let mut out = match self {
            ValueOp::Hmac(_) => retyped(column, LogicalType::Text, 64, "char(64)"),
            ValueOp::Redact(_) => retyped(column, LogicalType::Text, 0, "text"),
            ValueOp::Truncate(_) | ValueOp::KeepLast { .. } => {
                expect(textual, "this mask needs a text column")?;
                column.clone()
            }
            ValueOp::TimestamptzUtc => {
                expect(
                    input == LogicalType::Timestamptz,
                    "`timestamptz_utc` needs a datetimeoffset (timestamptz) column",
                )?;
                column.clone()
            }
            ValueOp::Numeric {
                precision, scale, ..
            } => {
                let exact = matches!(
                    input,
                    LogicalType::Decimal
                        | LogicalType::Int16
                        | LogicalType::Int32
                        | LogicalType::Int64
                );
                expect(exact, "`numeric` needs a money, decimal or integer column")?;
                let mut out = retyped(column, LogicalType::Decimal, 0, "");
                if let Some(t) = out.r#type.as_mut() {
                    t.precision = *precision;
                    t.scale = *scale;
                    t.source_type = format!("numeric({precision},{scale})");
                }
                out
            }
            ValueOp::Varchar { length, .. } => {
                expect(textual, "`varchar` needs a text column")?;
                let length = u32::try_from(*length).unwrap_or(u32::MAX);
                retyped(
                    column,
                    LogicalType::Text,
                    length,
                    &format!("varchar({length})"),
                )
            }
            ValueOp::Uuid { .. } => {
                expect(textual, "`uuid` needs a text column")?;
                retyped(column, LogicalType::Uuid, 0, "uniqueidentifier")
            }
            ValueOp::Json { .. } => {
                expect(textual, "`json` needs a text column")?;
                retyped(column, LogicalType::Json, 0, "json")
            }
        };
        if self.may_null() {
            out.nullable = true;
        }
        Ok(out)
    }

    fn may_null(&self) -> bool {
        matches!(
            self,
            ValueOp::Numeric {
                on_error: OnError::Null,
                ..
            } | ValueOp::Varchar {
                on_error: OnError::Null,
                ..
            } | ValueOp::Uuid {
                on_error: OnError::Null
            } | ValueOp::Json {
                on_error: OnError::Null
            }
        )
    }

    /// Changes one value of `column` (the column as it was before the operation). NULL stays
    /// NULL. An error says why, naming the column but never the value.
    pub fn apply(&self, value: &mut Value, column: &ColumnSchema) -> Result<(), String> {
        if value.kind.is_none() {
            return Err(format!("column `{}`: a value without a kind", column.name));
        }
        if cdc_model::value::is_null(value) {
            return Ok(());
        }
        match self {
            ValueOp::Hmac(key) => {
                let text = cdc_model::canonical::canonical_text(value, column)
                    .map_err(|e| format!("column `{}`: {e}", column.name))?
                    .unwrap_or_default();
                *value = cdc_model::value::of(Kind::Text(key.hex_digest(&text)));
                return Ok(());
            }
            ValueOp::Redact(text) => {
                *value = cdc_model::value::of(Kind::Text(text.clone()));
                return Ok(());
            }
            _ => {}
        }
        let found = cdc_model::value::kind_name(value);
        let wrong_kind = || {
            format!(
                "column `{}` is {} but holds a {found} value",
                column.name,
                type_name(column),
            )
        };
        let Some(kind) = value.kind.as_mut() else {
            return Err(wrong_kind());
        };
        let replacement = match (self, &mut *kind) {
            (ValueOp::Truncate(keep), Kind::Text(text)) => {
                truncate_chars(text, *keep);
                return Ok(());
            }
            (ValueOp::KeepLast { keep, filler }, Kind::Text(text)) => {
                Kind::Text(keep_last(text, *keep, *filler))
            }
            (ValueOp::TimestamptzUtc, Kind::Timestamptz(t)) => {
                t.offset_minutes = 0;
                return Ok(());
            }
            (
                ValueOp::Numeric {
                    precision,
                    scale,
                    on_error,
                },
                _,
            ) => match to_numeric(kind, *precision, *scale) {
                Ok(decimal) => Kind::Decimal(decimal.to_proto()),
                Err(reason) => return self.refuse(value, *on_error, column, &reason),
            },
            (ValueOp::Varchar { length, on_error }, Kind::Text(text)) => {
                if text.chars().count() <= *length {
                    return Ok(());
                }
                if *on_error == OnError::Truncate {
                    truncate_chars(text, *length);
                    return Ok(());
                }
                let reason = format!("a value longer than {length} characters");
                return self.refuse(value, *on_error, column, &reason);
            }
            (ValueOp::Uuid { on_error }, Kind::Text(text)) => match uuid::Uuid::try_parse(text) {
                Ok(parsed) => Kind::Uuid(parsed.as_bytes().to_vec()),
                Err(_) => return self.refuse(value, *on_error, column, "text that is not a UUID"),
            },
            (ValueOp::Json { on_error }, Kind::Text(text)) => {
                if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
                    Kind::Json(std::mem::take(text))
                } else {
                    return self.refuse(value, *on_error, column, "text that is not JSON");
                }
            }
            _ => return Err(wrong_kind()),
        };
        *kind = replacement;
        Ok(())
    }

    fn refuse(
        &self,
        value: &mut Value,
        on_error: OnError,
        column: &ColumnSchema,
        what: &str,
    ) -> Result<(), String> {
        if on_error == OnError::Null {
            *value = cdc_model::value::null();
            Ok(())
        } else {
            Err(format!(
                "column `{}` holds {what}, which cannot be converted",
                column.name
            ))
        }
    }
}

fn truncate_chars(text: &mut String, keep: usize) {
    if let Some((at, _)) = text.char_indices().nth(keep) {
        text.truncate(at);
    }
}

fn keep_last(text: &str, keep: usize, filler: char) -> String {
    let hidden = text.chars().count().saturating_sub(keep);
    let kept_from = text
        .char_indices()
        .nth(hidden)
        .map_or(text.len(), |(at, _)| at);
    let mut out = String::with_capacity(hidden * filler.len_utf8() + text.len() - kept_from);
    out.extend(std::iter::repeat_n(filler, hidden));
    out.push_str(&text[kept_from..]);
    out
}

fn to_numeric(kind: &Kind, precision: u32, scale: u32) -> Result<Decimal, String> {
    let decimal = match kind {
        Kind::Int64(i) => Decimal::new(i128::from(*i), 0),
        Kind::Decimal(d) => Decimal::from_proto(d),
        _ => return Err("a value that is not a number".to_owned()),
    }
    .map_err(|e| e.to_string())?;
    let rescaled = decimal
        .with_scale(scale)
        .map_err(|_| format!("a value with more than {scale} fraction digits"))?;
    let limit = 10i128.checked_pow(precision).unwrap_or(i128::MAX);
    if rescaled.unscaled().abs() >= limit {
        return Err(format!("a value over numeric({precision},{scale})"));
    }
    Ok(rescaled)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cdc_model::proto::{Timestamp, TimestampTz};
    use cdc_model::value::of;

    fn column(name: &str, logical: LogicalType, source_type: &str) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            r#type: Some(ColumnType {
                logical: logical as i32,
                length: 0,
                precision: if logical == LogicalType::Decimal {
                    19
                } else {
                    0
                },
                scale: if logical == LogicalType::Decimal {
                    4
                } else {
                    0
                },
                source_type: source_type.into(),
            }),
            nullable: false,
        }
    }

    fn text(s: &str) -> Value {
        of(Kind::Text(s.into()))
    }

    fn key() -> HmacKey {
        HmacKey::new(&SecretString::from("0123456789abcdef0123")).unwrap()
    }

    #[test]
    fn hmac_is_keyed_deterministic_and_hides_the_value() {
        let email = column("email", LogicalType::Text, "nvarchar(200)");
        let op = ValueOp::Hmac(key());
        let (mut a, mut b) = (text("ann@example.com"), text("ann@example.com"));
        op.apply(&mut a, &email).unwrap();
        op.apply(&mut b, &email).unwrap();
        assert_eq!(a, b);
        let Some(Kind::Text(digest)) = &a.kind else {
            panic!("not text")
        };
        assert_eq!(digest.len(), 64);
        assert!(!digest.contains("ann"));
        let other = HmacKey::new(&SecretString::from("another key of 16+ bytes")).unwrap();
        let mut c = text("ann@example.com");
        ValueOp::Hmac(other).apply(&mut c, &email).unwrap();
        assert_ne!(a, c, "another key gives another hash");
        let out = op.output_column(&email).unwrap();
        assert_eq!(out.r#type.unwrap().length, 64);
    }

    #[test]
    fn a_short_masking_key_is_refused() {
        let error = HmacKey::new(&SecretString::from("short")).unwrap_err();
        assert!(error.contains("at least 16"), "{error}");
    }

    #[test]
    fn hmac_of_a_number_hashes_its_canonical_text() {
        let id = column("id", LogicalType::Int64, "bigint");
        let mut number = of(Kind::Int64(42));
        ValueOp::Hmac(key()).apply(&mut number, &id).unwrap();
        let mut as_text = text("42");
        let name = column("id", LogicalType::Text, "");
        ValueOp::Hmac(key()).apply(&mut as_text, &name).unwrap();
        assert_eq!(number, as_text);
    }

    #[test]
    fn redact_truncate_and_keep_last_hide_what_they_should() {
        let card = column("card", LogicalType::Text, "varchar(19)");
        let mut v = text("4111111111111111");
        ValueOp::KeepLast {
            keep: 4,
            filler: '*',
        }
        .apply(&mut v, &card)
        .unwrap();
        assert_eq!(v, text("************1111"));
        let mut v = text("Zoë Ångström");
        ValueOp::Truncate(3).apply(&mut v, &card).unwrap();
        assert_eq!(v, text("Zoë"));
        let mut v = text("ab");
        ValueOp::KeepLast {
            keep: 4,
            filler: '#',
        }
        .apply(&mut v, &card)
        .unwrap();
        assert_eq!(v, text("ab"), "shorter than kept: unchanged");
        let mut v = of(Kind::Int64(7));
        let id = column("salary", LogicalType::Int64, "int");
        ValueOp::Redact("hidden".into()).apply(&mut v, &id).unwrap();
        assert_eq!(v, text("hidden"));
        assert_eq!(
            ValueOp::Redact(String::new())
                .output_column(&id)
                .unwrap()
                .r#type
                .unwrap()
                .logical,
            LogicalType::Text as i32
        );
    }

    #[test]
    fn text_masks_refuse_columns_that_are_not_text() {
        let id = column("salary", LogicalType::Int64, "int");
        let error = ValueOp::Truncate(2).output_column(&id).unwrap_err();
        assert_eq!(
            error,
            "column `salary` is int; this mask needs a text column"
        );
    }

    #[test]
    fn nulls_stay_null() {
        let card = column("card", LogicalType::Text, "varchar(19)");
        for op in [
            ValueOp::Hmac(key()),
            ValueOp::Redact("x".into()),
            ValueOp::Truncate(1),
            ValueOp::Uuid {
                on_error: OnError::DeadLetter,
            },
        ] {
            let mut v = cdc_model::value::null();
            op.apply(&mut v, &card).unwrap();
            assert!(cdc_model::value::is_null(&v));
        }
    }

    #[test]
    fn timestamptz_utc_keeps_the_instant_and_drops_the_offset() {
        let at = column("at", LogicalType::Timestamptz, "datetimeoffset(7)");
        let mut v = of(Kind::Timestamptz(TimestampTz {
            utc_seconds: 1_700_000_000,
            nanos: 5,
            offset_minutes: 120,
        }));
        ValueOp::TimestamptzUtc.apply(&mut v, &at).unwrap();
        assert_eq!(
            v,
            of(Kind::Timestamptz(TimestampTz {
                utc_seconds: 1_700_000_000,
                nanos: 5,
                offset_minutes: 0
            }))
        );
        let plain = column("at", LogicalType::Timestamp, "datetime2");
        assert!(ValueOp::TimestamptzUtc.output_column(&plain).is_err());
        let mut wrong = of(Kind::Timestamp(Timestamp {
            seconds: 1,
            nanos: 0,
        }));
        let error = ValueOp::TimestamptzUtc.apply(&mut wrong, &at).unwrap_err();
        assert!(error.contains("holds a timestamp value"), "{error}");
    }

    #[test]
    fn money_becomes_numeric_and_lost_digits_are_refused_or_nulled() {
        let price = column("price", LogicalType::Decimal, "money");
        let op = ValueOp::Numeric {
            precision: 10,
            scale: 2,
            on_error: OnError::DeadLetter,
        };
        let mut v = cdc_model::value::decimal(Decimal::new(123_4500, 4).unwrap());
        op.apply(&mut v, &price).unwrap();
        assert_eq!(
            v,
            cdc_model::value::decimal(Decimal::new(12_345, 2).unwrap())
        );
        let mut v = cdc_model::value::decimal(Decimal::new(123_4567, 4).unwrap());
        let error = op.apply(&mut v, &price).unwrap_err();
        assert_eq!(
            error,
            "column `price` holds a value with more than 2 fraction digits, which cannot be converted"
        );
        let mut v = cdc_model::value::decimal(Decimal::new(1_000_000_000_000, 4).unwrap());
        assert!(
            op.apply(&mut v, &price)
                .unwrap_err()
                .contains("over numeric(10,2)")
        );
        let nulling = ValueOp::Numeric {
            precision: 10,
            scale: 2,
            on_error: OnError::Null,
        };
        nulling.apply(&mut v, &price).unwrap();
        assert!(cdc_model::value::is_null(&v));
        let out = nulling.output_column(&price).unwrap();
        assert!(out.nullable);
        let t = out.r#type.unwrap();
        assert_eq!((t.precision, t.scale), (10, 2));
        let mut int = of(Kind::Int64(-7));
        op.apply(&mut int, &column("n", LogicalType::Int32, "int"))
            .unwrap();
        assert_eq!(
            int,
            cdc_model::value::decimal(Decimal::new(-700, 2).unwrap())
        );
    }

    #[test]
    fn varchar_overflow_follows_its_policy() {
        let name = column("name", LogicalType::Text, "nvarchar(max)");
        let long = || text("abcdefgh");
        for (on_error, expected) in [
            (OnError::Truncate, Some(text("abcde"))),
            (OnError::Null, Some(cdc_model::value::null())),
            (OnError::DeadLetter, None),
        ] {
            let op = ValueOp::Varchar {
                length: 5,
                on_error,
            };
            let mut v = long();
            match (op.apply(&mut v, &name), expected) {
                (Ok(()), Some(expected)) => assert_eq!(v, expected),
                (Err(reason), None) => assert_eq!(
                    reason,
                    "column `name` holds a value longer than 5 characters, which cannot be converted"
                ),
                (outcome, expected) => panic!("{on_error:?}: {outcome:?} vs {expected:?}"),
            }
            let mut short = text("abc");
            op.apply(&mut short, &name).unwrap();
            assert_eq!(short, text("abc"));
        }
        let out = ValueOp::Varchar {
            length: 5,
            on_error: OnError::Truncate,
        }
        .output_column(&name)
        .unwrap();
        assert_eq!(out.r#type.unwrap().length, 5);
    }

    #[test]
    fn strings_become_uuids_and_json_or_are_refused() {
        let c = column("c", LogicalType::Text, "varchar(50)");
        let op = ValueOp::Uuid {
            on_error: OnError::DeadLetter,
        };
        let mut v = text("6F9619FF-8B86-D011-B42D-00C04FC964FF");
        op.apply(&mut v, &c).unwrap();
        let Some(Kind::Uuid(bytes)) = &v.kind else {
            panic!("{v:?}")
        };
        assert_eq!(bytes[0], 0x6f);
        let mut bad = text("not-a-uuid");
        assert!(op.apply(&mut bad, &c).unwrap_err().contains("not a UUID"));
        let json = ValueOp::Json {
            on_error: OnError::Null,
        };
        let mut v = text(r#"{"a": [1, 2]}"#);
        json.apply(&mut v, &c).unwrap();
        assert_eq!(v, of(Kind::Json(r#"{"a": [1, 2]}"#.into())));
        let mut bad = text("{oops");
        json.apply(&mut bad, &c).unwrap();
        assert!(cdc_model::value::is_null(&bad));
        let int = column("n", LogicalType::Int64, "bigint");
        assert_eq!(
            json.output_column(&int).unwrap_err(),
            "column `n` is bigint; `json` needs a text column"
        );
    }
}

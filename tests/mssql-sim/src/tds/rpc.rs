//! RPC requests: `sp_executesql` with typed parameters, as any TDS client sends them.

use super::login::utf16;
use super::types::{DAYS_TO_1900, SqlType, SqlValue, guid_wire_order};

/// `sp_executesql`'s procedure id.
pub const SP_EXECUTESQL: u16 = 10;

/// A decoded RPC request.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcRequest {
    /// Procedure id (when called by id) or name.
    pub procedure: Procedure,
    /// Parameters in order.
    pub parameters: Vec<Parameter>,
}

/// How a procedure was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Procedure {
    /// A well-known procedure id (10 = `sp_executesql`).
    Id(u16),
    /// A procedure name.
    Name(String),
}

/// One RPC parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// Name with its `@`, or empty for positional parameters.
    pub name: String,
    /// The declared type.
    pub sql_type: SqlType,
    /// The value.
    pub value: SqlValue,
}

/// Why a request could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed RPC request: {0}")]
pub struct DecodeError(pub String);

type Result<T> = std::result::Result<T, DecodeError>;

/// Decodes an RPC payload (ALL_HEADERS first).
pub fn decode(payload: &[u8]) -> Result<RpcRequest> {
    let mut r = Reader {
        bytes: payload,
        at: 0,
    };
    let headers_len = r.u32()? as usize;
    r.skip(headers_len.saturating_sub(4))?;
    let name_len = r.u16()?;
    let procedure = if name_len == 0xffff {
        Procedure::Id(r.u16()?)
    } else {
        Procedure::Name(r.utf16(usize::from(name_len))?)
    };
    let _option_flags = r.u16()?;
    let mut parameters = Vec::new();
    while r.at < payload.len() {
        let name_len = usize::from(r.u8()?);
        let name = r.utf16(name_len)?;
        let _status = r.u8()?;
        let (sql_type, value) = read_typed_value(&mut r)?;
        parameters.push(Parameter {
            name,
            sql_type,
            value,
        });
    }
    Ok(RpcRequest {
        procedure,
        parameters,
    })
}

fn read_typed_value(r: &mut Reader<'_>) -> Result<(SqlType, SqlValue)> {
    let code = r.u8()?;
    match code {
        // NULLTYPE: an untyped NULL (a client's `None`).
        0x1f => Ok((SqlType::Int, SqlValue::Null)),
        0x30 => Ok((SqlType::TinyInt, SqlValue::Int(i64::from(r.u8()?)))),
        0x32 => Ok((SqlType::Bit, SqlValue::Bit(r.u8()? != 0))),
        0x34 => Ok((SqlType::SmallInt, SqlValue::Int(i64::from(r.i16()?)))),
        0x38 => Ok((SqlType::Int, SqlValue::Int(i64::from(r.i32()?)))),
        0x7f => Ok((SqlType::BigInt, SqlValue::Int(r.i64()?))),
        0x3b => Ok((
            SqlType::Real,
            SqlValue::Float(f64::from(f32::from_bits(r.u32()?))),
        )),
        0x3e => Ok((SqlType::Float, SqlValue::Float(f64::from_bits(r.u64()?)))),
        0x26 => nullable(r, |r, _| read_int(r)),
        0x68 => nullable(r, |r, _| Ok((SqlType::Bit, SqlValue::Bit(r.u8()? != 0)))),
        0x6d => nullable(r, read_float),
        0x6e => nullable(r, read_money),
        0x6f => nullable(r, read_datetime),
        0x6a | 0x6c => read_decimal(r),
        0x24 => nullable(r, |r, _| read_guid(r)),
        0x28 => read_date(r),
        0x29..=0x2b => read_time_family(r, code),
        0xa5 | 0xad | 0xa7 | 0xaf | 0xe7 | 0xef => read_sized(r, code),
        0xf1 => read_xml(r),
        other => Err(DecodeError(format!(
            "unsupported parameter type 0x{other:02x}"
        ))),
    }
}

/// Reads the one-byte maximum length of a nullable fixed type, then a value length (0 = NULL).
fn nullable(
    r: &mut Reader<'_>,
    read: impl FnOnce(&mut Reader<'_>, usize) -> Result<(SqlType, SqlValue)>,
) -> Result<(SqlType, SqlValue)> {
    let declared = usize::from(r.u8()?);
    let len = usize::from(r.u8()?);
    let mut value_reader = Reader {
        bytes: r.take(len)?,
        at: 0,
    };
    if len == 0 {
        // The declared length still gives the type of a NULL.
        let zeros = [0u8; 16];
        let mut typed = Reader {
            bytes: zeros.get(..declared).unwrap_or(&zeros),
            at: 0,
        };
        let (sql_type, _) = read(&mut typed, declared)?;
        return Ok((sql_type, SqlValue::Null));
    }
    read(&mut value_reader, len)
}

fn read_int(r: &mut Reader<'_>) -> Result<(SqlType, SqlValue)> {
    Ok(match r.bytes.len() {
        1 => (SqlType::TinyInt, SqlValue::Int(i64::from(r.u8()?))),
        2 => (SqlType::SmallInt, SqlValue::Int(i64::from(r.i16()?))),
        4 => (SqlType::Int, SqlValue::Int(i64::from(r.i32()?))),
        8 => (SqlType::BigInt, SqlValue::Int(r.i64()?)),
        other => return Err(DecodeError(format!("INTN of {other} bytes"))),
    })
}

fn read_float(r: &mut Reader<'_>, len: usize) -> Result<(SqlType, SqlValue)> {
    match len {
        4 => Ok((
            SqlType::Real,
            SqlValue::Float(f64::from(f32::from_bits(r.u32()?))),
        )),
        8 => Ok((SqlType::Float, SqlValue::Float(f64::from_bits(r.u64()?)))),
        other => Err(DecodeError(format!("FLTN of {other} bytes"))),
    }
}

fn read_money(r: &mut Reader<'_>, len: usize) -> Result<(SqlType, SqlValue)> {
    match len {
        4 => Ok((
            SqlType::SmallMoney,
            SqlValue::Decimal {
                unscaled: i128::from(r.i32()?),
                scale: 4,
            },
        )),
        8 => {
            let high = i64::from(r.i32()?);
            let low = i64::from(r.u32()?);
            Ok((
                SqlType::Money,
                SqlValue::Decimal {
                    unscaled: i128::from((high << 32) | low),
                    scale: 4,
                },
            ))
        }
        other => Err(DecodeError(format!("MONEYN of {other} bytes"))),
    }
}

fn read_datetime(r: &mut Reader<'_>, len: usize) -> Result<(SqlType, SqlValue)> {
    match len {
        4 => {
            let days = i32::from(r.u16()?) + DAYS_TO_1900;
            let ticks = u64::from(r.u16()?) * 600_000_000;
            Ok((SqlType::SmallDateTime, SqlValue::DateTime { days, ticks }))
        }
        8 => {
            let days = r.i32()? + DAYS_TO_1900;
            let ticks = (u64::from(r.u32()?) * 100_000 + 1) / 3;
            Ok((SqlType::DateTime, SqlValue::DateTime { days, ticks }))
        }
        other => Err(DecodeError(format!("DATETIMEN of {other} bytes"))),
    }
}

fn read_decimal(r: &mut Reader<'_>) -> Result<(SqlType, SqlValue)> {
    let _max_len = r.u8()?;
    let precision = r.u8()?;
    let scale = r.u8()?;
    let sql_type = SqlType::Decimal { precision, scale };
    let len = usize::from(r.u8()?);
    if len == 0 {
        return Ok((sql_type, SqlValue::Null));
    }
    let positive = r.u8()? == 1;
    let mut magnitude = [0u8; 16];
    let digits = r.take(len - 1)?;
    magnitude[..digits.len().min(16)].copy_from_slice(&digits[..digits.len().min(16)]);
    let magnitude = u128::from_le_bytes(magnitude) as i128;
    let unscaled = if positive { magnitude } else { -magnitude };
    Ok((sql_type, SqlValue::Decimal { unscaled, scale }))
}

fn read_guid(r: &mut Reader<'_>) -> Result<(SqlType, SqlValue)> {
    let wire: [u8; 16] = r
        .take(16)?
        .try_into()
        .map_err(|_| DecodeError("short GUID".to_owned()))?;
    // The wire order is its own inverse: swapping the first three groups back.
    Ok((
        SqlType::UniqueIdentifier,
        SqlValue::Guid(guid_wire_order(&wire)),
    ))
}

fn read_date(r: &mut Reader<'_>) -> Result<(SqlType, SqlValue)> {
    match r.u8()? {
        0 => Ok((SqlType::Date, SqlValue::Null)),
        3 => Ok((SqlType::Date, SqlValue::Date(r.u24()? as i32))),
        other => Err(DecodeError(format!("DATEN of {other} bytes"))),
    }
}

fn read_time_family(r: &mut Reader<'_>, code: u8) -> Result<(SqlType, SqlValue)> {
    let scale = r.u8()?;
    let sql_type = match code {
        0x29 => SqlType::Time { scale },
        0x2a => SqlType::DateTime2 { scale },
        _ => SqlType::DateTimeOffset { scale },
    };
    let len = usize::from(r.u8()?);
    if len == 0 {
        return Ok((sql_type, SqlValue::Null));
    }
    let time_len = usize::from(super::types::time_len(scale));
    let units = r
        .take(time_len)?
        .iter()
        .rev()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let ticks = units * 10u64.pow(7 - u32::from(scale.min(7)));
    let value = match code {
        0x29 => SqlValue::Time(ticks),
        0x2a => SqlValue::DateTime {
            days: r.u24()? as i32,
            ticks,
        },
        _ => {
            let days = r.u24()? as i32;
            SqlValue::DateTimeOffset {
                days,
                ticks,
                offset_minutes: r.i16()?,
            }
        }
    };
    Ok((sql_type, value))
}

fn read_sized(r: &mut Reader<'_>, code: u8) -> Result<(SqlType, SqlValue)> {
    let max = r.u16()?;
    if matches!(code, 0xa7 | 0xaf | 0xe7 | 0xef) {
        r.take(5)?;
    }
    let unicode = matches!(code, 0xe7 | 0xef);
    let length = (max != 0xffff).then_some(if unicode { max / 2 } else { max });
    let sql_type = match code {
        0xa5 => SqlType::VarBinary { length },
        0xad => SqlType::Binary { length: max },
        0xa7 => SqlType::VarChar { length },
        0xaf => SqlType::Char { length: max },
        0xe7 => SqlType::NVarChar { length },
        _ => SqlType::NChar { length: max / 2 },
    };
    let bytes = if max == 0xffff {
        r.plp()?
    } else {
        let len = r.u16()?;
        if len == 0xffff {
            None
        } else {
            Some(r.take(usize::from(len))?.to_vec())
        }
    };
    let Some(bytes) = bytes else {
        return Ok((sql_type, SqlValue::Null));
    };
    let value = match code {
        0xa5 | 0xad => SqlValue::Binary(bytes),
        // The collation the client sent is the default one (code page 1252); a client sending
        // another code page's bytes is read as 1252 all the same.
        0xa7 | 0xaf => SqlValue::Text(crate::engine::collation::decode(
            &bytes,
            crate::engine::collation::CodePage::Cp1252,
        )),
        _ => SqlValue::Text(
            utf16(&bytes).ok_or_else(|| DecodeError("text that is not UTF-16".to_owned()))?,
        ),
    };
    Ok((sql_type, value))
}

fn read_xml(r: &mut Reader<'_>) -> Result<(SqlType, SqlValue)> {
    if r.u8()? != 0 {
        return Err(DecodeError(
            "typed xml parameters are not supported".to_owned(),
        ));
    }
    match r.plp()? {
        None => Ok((SqlType::Xml, SqlValue::Null)),
        Some(bytes) => Ok((
            SqlType::Xml,
            SqlValue::Text(
                utf16(&bytes).ok_or_else(|| DecodeError("xml that is not UTF-16".to_owned()))?,
            ),
        )),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| DecodeError(format!("truncated at byte {}", self.at)))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn skip(&mut self, n: usize) -> Result<()> {
        self.take(n).map(|_| ())
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.take(N)?
            .try_into()
            .map_err(|_| DecodeError("short field".to_owned()))
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_le_bytes(self.array()?))
    }
    fn u24(&mut self) -> Result<u32> {
        let [a, b, c] = self.array::<3>()?;
        Ok(u32::from_le_bytes([a, b, c, 0]))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn utf16(&mut self, units: usize) -> Result<String> {
        utf16(self.take(units * 2)?)
            .ok_or_else(|| DecodeError("a name that is not UTF-16".to_owned()))
    }
    /// A PLP value: None for NULL.
    fn plp(&mut self) -> Result<Option<Vec<u8>>> {
        let total = self.u64()?;
        if total == u64::MAX {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        loop {
            let chunk = self.u32()? as usize;
            if chunk == 0 {
                return Ok(Some(bytes));
            }
            bytes.extend_from_slice(self.take(chunk)?);
        }
    }
}

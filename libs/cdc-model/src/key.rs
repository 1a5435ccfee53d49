//! The Kafka message key of a change: the table and the primary key values. Every change to
//! one row has the same key, so it lands in one partition, in order.
//!
//! Encoding (version 1): the byte `0x01`; the database, schema and table names, each as a
//! u32 big-endian byte length and UTF-8; the number of key values as u16 big-endian; then per
//! value a kind tag byte, a u32 big-endian payload length and the payload. Every part is
//! length-prefixed, so the encoding is injective and decodes back exactly.

use crate::error::{Error, Result};
use crate::proto::value::Kind;
use crate::proto::{self, TableId, Value};

const VERSION: u8 = 1;

/// Encodes `table` and its primary key `values` as a Kafka key.
pub fn encode(table: &TableId, values: &[Value]) -> Result<Vec<u8>> {
    let mut out = vec![VERSION];
    for part in [&table.database, &table.schema, &table.table] {
        put_bytes(&mut out, part.as_bytes())?;
    }
    let count = u16::try_from(values.len())
        .map_err(|_| Error::InvalidKey(format!("{} key columns", values.len())))?;
    out.extend_from_slice(&count.to_be_bytes());
    for value in values {
        let (tag, payload) = payload(value)?;
        out.push(tag);
        put_bytes(&mut out, &payload)?;
    }
    Ok(out)
}

/// Decodes a key made by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<(TableId, Vec<Value>)> {
    let mut reader = Reader { bytes, at: 0 };
    let version = reader.take(1)?[0];
    if version != VERSION {
        return Err(Error::InvalidKey(format!("unknown key version {version}")));
    }
    let table = TableId {
        database: reader.text()?,
        schema: reader.text()?,
        table: reader.text()?,
    };
    let count = u16::from_be_bytes(reader.array()?);
    let values = (0..count)
        .map(|_| {
            let tag = reader.take(1)?[0];
            let payload = reader.bytes()?;
            from_payload(tag, payload)
        })
        .collect::<Result<Vec<_>>>()?;
    if reader.at != bytes.len() {
        return Err(Error::InvalidKey(format!(
            "{} trailing bytes",
            bytes.len() - reader.at
        )));
    }
    Ok((table, values))
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
    let length = u32::try_from(bytes.len())
        .map_err(|_| Error::InvalidKey("a part over 4 GiB".to_owned()))?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn payload(value: &Value) -> Result<(u8, Vec<u8>)> {
    let Some(kind) = &value.kind else {
        return Err(Error::InvalidKey("a key value without a kind".to_owned()));
    };
    Ok(match kind {
        Kind::Null(_) => (0, Vec::new()),
        Kind::Bool(b) => (1, vec![u8::from(*b)]),
        Kind::Int64(i) => (2, i.to_be_bytes().to_vec()),
        Kind::Float64(f) => (3, f.to_bits().to_be_bytes().to_vec()),
        Kind::Decimal(d) => (4, [d.scale.to_be_bytes().as_slice(), &d.unscaled].concat()),
        Kind::Text(s) => (5, s.as_bytes().to_vec()),
        Kind::Bytes(b) => (6, b.clone()),
        Kind::Uuid(b) => (7, b.clone()),
        Kind::Date(d) => (8, d.to_be_bytes().to_vec()),
        Kind::TimeNanos(n) => (9, n.to_be_bytes().to_vec()),
        Kind::Timestamp(t) => (
            10,
            [t.seconds.to_be_bytes().as_slice(), &t.nanos.to_be_bytes()].concat(),
        ),
        Kind::Timestamptz(t) => (
            11,
            [
                t.utc_seconds.to_be_bytes().as_slice(),
                &t.nanos.to_be_bytes(),
                &t.offset_minutes.to_be_bytes(),
            ]
            .concat(),
        ),
        Kind::Json(s) => (12, s.as_bytes().to_vec()),
        Kind::Xml(s) => (13, s.as_bytes().to_vec()),
    })
}

fn from_payload(tag: u8, payload: &[u8]) -> Result<Value> {
    let mut r = Reader {
        bytes: payload,
        at: 0,
    };
    let kind = match tag {
        0 => Kind::Null(proto::Null::Value as i32),
        1 => Kind::Bool(r.take(1)?[0] != 0),
        2 => Kind::Int64(i64::from_be_bytes(r.array()?)),
        3 => Kind::Float64(f64::from_bits(u64::from_be_bytes(r.array()?))),
        4 => Kind::Decimal(proto::Decimal {
            scale: u32::from_be_bytes(r.array()?),
            unscaled: r.rest().to_vec(),
        }),
        5 => Kind::Text(utf8(r.rest())?),
        6 => Kind::Bytes(r.rest().to_vec()),
        7 => Kind::Uuid(r.rest().to_vec()),
        8 => Kind::Date(i32::from_be_bytes(r.array()?)),
        9 => Kind::TimeNanos(i64::from_be_bytes(r.array()?)),
        10 => Kind::Timestamp(proto::Timestamp {
            seconds: i64::from_be_bytes(r.array()?),
            nanos: u32::from_be_bytes(r.array()?),
        }),
        11 => Kind::Timestamptz(proto::TimestampTz {
            utc_seconds: i64::from_be_bytes(r.array()?),
            nanos: u32::from_be_bytes(r.array()?),
            offset_minutes: i32::from_be_bytes(r.array()?),
        }),
        12 => Kind::Json(utf8(r.rest())?),
        13 => Kind::Xml(utf8(r.rest())?),
        other => return Err(Error::InvalidKey(format!("unknown value tag {other}"))),
    };
    if r.at != payload.len() {
        return Err(Error::InvalidKey(format!(
            "value tag {tag} with {} extra bytes",
            payload.len() - r.at
        )));
    }
    Ok(Value { kind: Some(kind) })
}

fn utf8(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::InvalidKey("text that is not UTF-8".to_owned()))
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
        let end = end.ok_or_else(|| Error::InvalidKey(format!("truncated at byte {}", self.at)))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let slice = self.take(N)?;
        <[u8; N]>::try_from(slice).map_err(|_| Error::InvalidKey("short field".to_owned()))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let length = u32::from_be_bytes(self.array()?) as usize;
        self.take(length)
    }

    fn text(&mut self) -> Result<String> {
        utf8(self.bytes()?)
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.at..];
        self.at = self.bytes.len();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::of;

    fn table(name: &str) -> TableId {
        TableId {
            database: "shop".into(),
            schema: "dbo".into(),
            table: name.into(),
        }
    }

    #[test]
    fn a_composite_key_round_trips() {
        let values = vec![of(Kind::Int64(7)), of(Kind::Text("Zoë".into()))];
        let key = encode(&table("order_lines"), &values).unwrap();
        assert_eq!(decode(&key).unwrap(), (table("order_lines"), values));
    }

    #[test]
    fn moving_characters_between_name_parts_changes_the_key() {
        let a = TableId {
            database: "ab".into(),
            schema: "c".into(),
            table: "t".into(),
        };
        let b = TableId {
            database: "a".into(),
            schema: "bc".into(),
            table: "t".into(),
        };
        assert_ne!(encode(&a, &[]).unwrap(), encode(&b, &[]).unwrap());
    }

    #[test]
    fn truncated_or_padded_keys_are_refused() {
        let key = encode(&table("t"), &[of(Kind::Int64(1))]).unwrap();
        assert!(decode(&key[..key.len() - 1]).is_err());
        assert!(decode(&[key.as_slice(), &[0]].concat()).is_err());
    }
}

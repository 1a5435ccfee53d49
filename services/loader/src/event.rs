//! Change events as the loader sees them: decoded from Kafka, with where they came from, and
//! coalesced per key inside a batch.

use foldhash::{HashMap, HashMapExt as _};

use cdc_model::proto::{ChangeEvent, Operation, TableId, Value};
use cdc_model::{SourcePosition, key};
use prost::Message as _;

/// Where a record was consumed from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Provenance {
    /// Topic (shared: every record of a topic points at one string).
    pub topic: std::sync::Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// A Kafka record as consumed, before decoding.
#[derive(Debug, Clone)]
pub struct Record {
    /// Where it came from.
    pub provenance: Provenance,
    /// Its key bytes.
    pub key: Option<Vec<u8>>,
    /// Its value bytes.
    pub value: Option<Vec<u8>>,
}

impl Record {
    /// Bytes this record holds, for batch limits.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len)
    }
}

/// What an event does to its target row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Insert or update to the row image.
    Upsert,
    /// Delete the row.
    Delete,
}

/// A decoded, checked change event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The record it was decoded from (kept whole for dead letters).
    pub record: Record,
    /// The source table.
    pub table: TableId,
    /// The encoded key (table and key values), unique per source row.
    pub row_key: Vec<u8>,
    /// Its position in the source change stream.
    pub position: SourcePosition,
    /// The operation as published.
    pub operation: Operation,
    /// What it does.
    pub change: Change,
    /// The row image to write: after for upserts, before (or just the key) for deletes.
    pub image: Option<Vec<Value>>,
    /// Key values in key order.
    pub key_values: Vec<Value>,
    /// Fingerprint of the schema describing the image.
    pub schema_id: String,
    /// Source commit time, microseconds since the epoch.
    pub commit_time_micros: i64,
}

/// Why a record cannot be an event; it goes to the dead-letter topic with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Undecodable(pub String);

/// Decodes and checks a record.
pub fn decode(record: Record) -> Result<Event, (Record, Undecodable)> {
    match decode_parts(&record) {
        Ok(parts) => Ok(parts.into_event(record)),
        Err(reason) => Err((record, Undecodable(reason))),
    }
}

struct Parts {
    event: ChangeEvent,
    table: TableId,
    row_key: Vec<u8>,
    position: SourcePosition,
    operation: Operation,
}

impl Parts {
    fn into_event(self, record: Record) -> Event {
        let Parts {
            event,
            table,
            row_key,
            position,
            operation,
        } = self;
        let change = if operation == Operation::Delete {
            Change::Delete
        } else {
            Change::Upsert
        };
        let image = match change {
            Change::Upsert => event.after.map(|row| row.values),
            Change::Delete => event.before.map(|row| row.values),
        };
        Event {
            record,
            table,
            row_key,
            position,
            operation,
            change,
            image,
            key_values: event.key,
            schema_id: event.schema_id,
            commit_time_micros: event.commit_time_micros,
        }
    }
}

fn decode_parts(record: &Record) -> Result<Parts, String> {
    let value = record
        .value
        .as_deref()
        .ok_or_else(|| "a record without a value (a tombstone) is not a change event".to_owned())?;
    let mut event =
        decode_change(value).map_err(|e| format!("the value is not a cdc.v1.ChangeEvent: {e}"))?;
    let table = event
        .source
        .take()
        .and_then(|source| source.table)
        .ok_or_else(|| "the event names no source table".to_owned())?;
    let position = event
        .position
        .as_ref()
        .ok_or_else(|| "the event has no source position".to_owned())
        .and_then(|p| SourcePosition::from_proto(p).map_err(|e| e.to_string()))?;
    let operation = Operation::try_from(event.op)
        .ok()
        .filter(|op| *op != Operation::Unspecified)
        .ok_or_else(|| format!("operation {} is not a change", event.op))?;
    check_images(&event, operation)?;
    if event.key.is_empty() {
        return Err("the event has no key values".to_owned());
    }
    if event.schema_id.is_empty() {
        return Err("the event names no schema".to_owned());
    }
    let row_key = key::encode(&table, &event.key).map_err(|e| e.to_string())?;
    Ok(Parts {
        event,
        table,
        row_key,
        position,
        operation,
    })
}

/// `cdc.v1.ChangeEvent` without its before image (field 5), which only deletes need, and
/// with only the table of its source: prost skips those bytes instead of building every value
/// of an update's old row and two strings the loader never reads.
#[derive(Clone, PartialEq, prost::Message)]
struct ChangeEventWithoutBefore {
    #[prost(message, optional, tag = "1")]
    source: Option<SourceTable>,
    #[prost(message, optional, tag = "2")]
    position: Option<cdc_model::proto::SourcePosition>,
    #[prost(enumeration = "Operation", tag = "3")]
    op: i32,
    #[prost(message, repeated, tag = "4")]
    key: Vec<Value>,
    #[prost(message, optional, tag = "6")]
    after: Option<cdc_model::proto::Row>,
    #[prost(string, tag = "7")]
    schema_id: String,
    #[prost(int64, tag = "8")]
    commit_time_micros: i64,
}

/// `cdc.v1.Source` with only its table (field 2).
#[derive(Clone, PartialEq, prost::Message)]
struct SourceTable {
    #[prost(message, optional, tag = "2")]
    table: Option<TableId>,
}

/// Decodes an event, its before image only for deletes (the server and capture instance of
/// its source only for deletes too).
fn decode_change(bytes: &[u8]) -> Result<ChangeEvent, prost::DecodeError> {
    let light = ChangeEventWithoutBefore::decode(bytes)?;
    if light.op == Operation::Delete as i32 {
        return ChangeEvent::decode(bytes);
    }
    Ok(ChangeEvent {
        source: light.source.map(|source| cdc_model::proto::Source {
            table: source.table,
            ..Default::default()
        }),
        position: light.position,
        op: light.op,
        key: light.key,
        before: None,
        after: light.after,
        schema_id: light.schema_id,
        commit_time_micros: light.commit_time_micros,
    })
}

fn check_images(event: &ChangeEvent, operation: Operation) -> Result<(), String> {
    let needs_after = matches!(
        operation,
        Operation::Insert | Operation::Update | Operation::Read
    );
    if needs_after && event.after.is_none() {
        return Err(format!(
            "a {} event without an after image",
            operation.as_str_name()
        ));
    }
    for value in event
        .after
        .iter()
        .chain(event.before.iter())
        .flat_map(|row| &row.values)
        .chain(&event.key)
    {
        cdc_model::value::validate(value).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The events of one batch that take effect: per source row, only the one with the newest
/// position (an older one would be overwritten inside the same transaction anyway). Returns
/// the indexes of the winners, in the order of the input.
pub fn coalesce(events: &[Event]) -> Vec<usize> {
    let mut newest: HashMap<&[u8], usize> = HashMap::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        newest
            .entry(event.row_key.as_slice())
            .and_modify(|winner| {
                if events[index].position >= events[*winner].position {
                    *winner = index;
                }
            })
            .or_insert(index);
    }
    let mut winners: Vec<usize> = newest.into_values().collect();
    winners.sort_unstable();
    winners
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use cdc_model::Lsn;
    use cdc_model::proto::value::Kind;
    use cdc_model::proto::{Row, Source};
    use cdc_model::value::of;

    pub(crate) fn table() -> TableId {
        TableId {
            database: "shop".into(),
            schema: "dbo".into(),
            table: "orders".into(),
        }
    }

    pub(crate) fn change(id: i64, lsn: u128, op: Operation, note: &str) -> ChangeEvent {
        let position = SourcePosition {
            commit_lsn: Lsn::from_u128(lsn).unwrap(),
            command_id: 1,
            seqval: Lsn::from_u128(lsn).unwrap(),
            operation: match op {
                Operation::Delete => 1,
                Operation::Insert => 2,
                Operation::Update => 4,
                _ => 0,
            },
        };
        let image = Row {
            values: vec![of(Kind::Int64(id)), of(Kind::Text(note.into()))],
        };
        ChangeEvent {
            source: Some(Source {
                server: "sql1".into(),
                table: Some(table()),
                capture_instance: "dbo_orders".into(),
            }),
            position: Some(position.to_proto()),
            op: op as i32,
            key: vec![of(Kind::Int64(id))],
            before: (op == Operation::Delete || op == Operation::Update).then(|| image.clone()),
            after: (op != Operation::Delete).then_some(image),
            schema_id: "s1-test".into(),
            commit_time_micros: 1_700_000_000_000_000,
        }
    }

    pub(crate) fn record(event: &ChangeEvent, offset: i64) -> Record {
        Record {
            provenance: Provenance {
                topic: "cdc.clean.shop.dbo.orders".into(),
                partition: 0,
                offset,
            },
            key: None,
            value: Some(event.encode_to_vec()),
        }
    }

    fn decoded(events: &[ChangeEvent]) -> Vec<Event> {
        events
            .iter()
            .enumerate()
            .map(|(i, e)| decode(record(e, i as i64)).unwrap())
            .collect()
    }

    #[test]
    fn the_newest_event_per_row_wins_whatever_the_arrival_order() {
        let events = decoded(&[
            change(1, 10, Operation::Insert, "a"),
            change(2, 11, Operation::Insert, "b"),
            change(1, 12, Operation::Update, "a2"),
            change(2, 9, Operation::Read, "stale"),
            change(1, 13, Operation::Delete, "a2"),
        ]);
        assert_eq!(coalesce(&events), vec![1, 4]);
        assert_eq!(events[4].change, Change::Delete);
        assert_eq!(events[1].image.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn an_update_is_read_without_its_before_image_and_a_delete_with_it() {
        let update = decode(record(&change(1, 10, Operation::Update, "new"), 0)).unwrap();
        assert_eq!(update.image.unwrap()[1], of(Kind::Text("new".into())));
        let delete = decode(record(&change(1, 11, Operation::Delete, "old"), 1)).unwrap();
        assert_eq!(delete.image.unwrap()[1], of(Kind::Text("old".into())));
        assert_eq!(delete.key_values, vec![of(Kind::Int64(1))]);
    }

    #[test]
    fn malformed_records_say_why() {
        let mut no_after = change(1, 10, Operation::Insert, "a");
        no_after.after = None;
        let (_, why) = decode(record(&no_after, 0)).unwrap_err();
        assert!(why.0.contains("without an after image"), "{why}");
        let garbage = Record {
            value: Some(vec![0xff, 0xff, 0xff]),
            ..record(&no_after, 0)
        };
        let (_, why) = decode(garbage).unwrap_err();
        assert!(why.0.contains("not a cdc.v1.ChangeEvent"), "{why}");
        let mut no_schema = change(1, 10, Operation::Insert, "a");
        no_schema.schema_id.clear();
        assert!(decode(record(&no_schema, 0)).is_err());
    }
}

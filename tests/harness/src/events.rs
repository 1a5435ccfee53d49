//! Change events for tests: schemas, rows and events of one table with growing LSNs, and
//! reproducible random workloads, built the way the extractor builds them.

use std::collections::BTreeMap;

use cdc_model::proto::value::Kind;
use cdc_model::proto::{
    ChangeEvent, ColumnSchema, ColumnType, LogicalType, Operation, Row, Source, TableId,
    TableSchema, Value,
};
use cdc_model::value::of;
use cdc_model::{Lsn, SourcePosition};

/// A column of a test schema.
pub fn column(name: &str, logical: LogicalType, nullable: bool) -> ColumnSchema {
    let (length, precision, scale) = match logical {
        LogicalType::Decimal => (0, 10, 2),
        _ => (0, 0, 0),
    };
    typed_column(name, logical, length, precision, scale, nullable)
}

/// A column with every type parameter given.
pub fn typed_column(
    name: &str,
    logical: LogicalType,
    length: u32,
    precision: u32,
    scale: u32,
    nullable: bool,
) -> ColumnSchema {
    ColumnSchema {
        name: name.into(),
        r#type: Some(ColumnType {
            logical: logical as i32,
            length,
            precision,
            scale,
            source_type: String::new(),
        }),
        nullable,
    }
}

/// A schema for `table` keyed by `key`.
pub fn schema(table: &TableId, columns: Vec<ColumnSchema>, key: &[&str]) -> TableSchema {
    TableSchema {
        table: Some(table.clone()),
        capture_instance: format!("{}_{}", table.schema, table.table),
        columns,
        key_columns: key.iter().map(|k| (*k).to_owned()).collect(),
    }
}

/// A table id.
pub fn source_table(database: &str, schema: &str, table: &str) -> TableId {
    TableId {
        database: database.into(),
        schema: schema.into(),
        table: table.into(),
    }
}

/// An int64 value.
pub fn int(value: i64) -> Value {
    of(Kind::Int64(value))
}

/// A text value.
pub fn text(value: &str) -> Value {
    of(Kind::Text(value.into()))
}

/// An exact decimal value.
pub fn decimal(unscaled: i128, scale: u32) -> Value {
    cdc_model::value::decimal(cdc_model::Decimal::new(unscaled, scale).unwrap())
}

/// Builds the events of one table under one schema, with growing LSNs.
pub struct Events {
    /// The table's schema.
    pub schema: TableSchema,
    /// Its fingerprint, which every event names.
    pub schema_id: String,
    key_indexes: Vec<usize>,
    next_lsn: u128,
}

impl Events {
    /// Events of `schema`'s table, LSNs from 1001.
    pub fn new(schema: TableSchema) -> Events {
        Events {
            schema_id: cdc_model::schema::fingerprint(&schema),
            key_indexes: cdc_model::schema::key_indexes(&schema).unwrap(),
            schema,
            next_lsn: 1_000,
        }
    }

    /// Same table and LSN sequence, another schema (a new capture instance).
    pub fn evolve(&self, schema: TableSchema) -> Events {
        Events {
            next_lsn: self.next_lsn,
            ..Events::new(schema)
        }
    }

    fn position(&mut self, operation: i32) -> SourcePosition {
        self.next_lsn += 1;
        let lsn = Lsn::from_u128(self.next_lsn).unwrap();
        SourcePosition {
            commit_lsn: lsn,
            command_id: 1,
            seqval: lsn,
            operation,
        }
    }

    /// The LSN the next change will get.
    pub fn next_lsn(&self) -> u128 {
        self.next_lsn + 1
    }

    fn event(
        &self,
        op: Operation,
        position: SourcePosition,
        before: Option<Vec<Value>>,
        after: Option<Vec<Value>>,
    ) -> ChangeEvent {
        let image = after.as_ref().or(before.as_ref()).unwrap();
        ChangeEvent {
            source: Some(Source {
                server: "sql1".into(),
                table: self.schema.table.clone(),
                capture_instance: self.schema.capture_instance.clone(),
            }),
            position: Some(position.to_proto()),
            op: op as i32,
            key: self.key_indexes.iter().map(|i| image[*i].clone()).collect(),
            before: before.map(|values| Row { values }),
            after: after.map(|values| Row { values }),
            schema_id: self.schema_id.clone(),
            commit_time_micros: 1_764_000_000_000_000 + (position.commit_lsn.to_u128() as i64),
        }
    }

    /// An insert of `row`.
    pub fn insert(&mut self, row: Vec<Value>) -> ChangeEvent {
        let position = self.position(2);
        self.event(Operation::Insert, position, None, Some(row))
    }

    /// An update from `before` to `after`.
    pub fn update(&mut self, before: Vec<Value>, after: Vec<Value>) -> ChangeEvent {
        let position = self.position(4);
        self.event(Operation::Update, position, Some(before), Some(after))
    }

    /// A delete of `before`.
    pub fn delete(&mut self, before: Vec<Value>) -> ChangeEvent {
        let position = self.position(1);
        self.event(Operation::Delete, position, Some(before), None)
    }

    /// A snapshot read consistent at `lsn` (which may be older than changes already sent).
    pub fn read_at(&self, lsn: u128, row: Vec<Value>) -> ChangeEvent {
        let position = SourcePosition::snapshot(Lsn::from_u128(lsn).unwrap());
        self.event(Operation::Read, position, None, Some(row))
    }
}

/// The `orders (id bigint key, note text)` table every basic test uses.
pub fn orders(table: &TableId) -> TableSchema {
    schema(
        table,
        vec![
            column("id", LogicalType::Int64, false),
            column("note", LogicalType::Text, true),
        ],
        &["id"],
    )
}

/// `[id, note]`.
pub fn id_note(id: i64, note: &str) -> Vec<Value> {
    vec![int(id), text(note)]
}

/// A deterministic pseudo-random workload over `keys` rows of [`orders`]: inserts, updates and
/// deletes that follow each row's state, with the final state they lead to.
pub struct Workload {
    /// The events, in source order.
    pub events: Vec<ChangeEvent>,
    /// `id -> note` after all of them.
    pub expected: BTreeMap<i64, Option<String>>,
}

impl Workload {
    /// `count` events over ids `1..=keys`, reproducible from `seed`.
    pub fn random(events: &mut Events, seed: u64, keys: i64, count: usize) -> Workload {
        let mut state = seed.max(1);
        let mut next = move || {
            // xorshift64: reproducible from the printed seed.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut rows: BTreeMap<i64, String> = BTreeMap::new();
        let mut out = Vec::with_capacity(count);
        for n in 0..count {
            let id = (next() % keys as u64) as i64 + 1;
            let note = format!("v{n}");
            let event = match rows.get(&id).cloned() {
                None => {
                    rows.insert(id, note.clone());
                    events.insert(id_note(id, &note))
                }
                Some(old) if next() % 4 == 0 => {
                    rows.remove(&id);
                    events.delete(id_note(id, &old))
                }
                Some(old) => {
                    rows.insert(id, note.clone());
                    events.update(id_note(id, &old), id_note(id, &note))
                }
            };
            out.push(event);
        }
        Workload {
            events: out,
            expected: rows.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        }
    }
}

/// A seed from the clock, printed so a failure can be replayed with `CDC_TEST_SEED`.
pub fn seed() -> u64 {
    let seed = std::env::var("CDC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("seed: {seed} (CDC_TEST_SEED={seed} replays this run)");
    seed
}

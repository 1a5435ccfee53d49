//! A loader on the real local stack: per-test topics and database, events published the way
//! the transformer publishes them, the binary run as a process, and the gRPC client.
#![allow(dead_code)]
// each test binary uses a different part of this module
// Test support: panicking with a clear message is how a broken setup is reported.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use cdc_loader::proto::loader_client::LoaderClient;
use cdc_model::proto::value::Kind;
use cdc_model::proto::{
    ChangeEvent, ColumnSchema, ColumnType, LogicalType, Operation, Row, Source, TableId,
    TableSchema, Value,
};
use cdc_model::value::of;
use cdc_model::{Lsn, SourcePosition, Topics};
use cdc_test_harness::Stack;
use cdc_test_harness::kafka::{TestTopics, client_config};
use cdc_test_harness::ports::free_local_addr;
use cdc_test_harness::postgres::TestDatabase;
use cdc_test_harness::process::ServiceProcess;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::Row as _;
use tonic::transport::Channel;

pub const BINARY: &str = env!("CARGO_BIN_EXE_cdc-loader");
pub const CONTROL_TOKEN: &str = "loader-test-control-token";
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

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

pub fn source_table(database: &str, schema: &str, table: &str) -> TableId {
    TableId {
        database: database.into(),
        schema: schema.into(),
        table: table.into(),
    }
}

pub fn int(value: i64) -> Value {
    of(Kind::Int64(value))
}

pub fn text(value: &str) -> Value {
    of(Kind::Text(value.into()))
}

pub fn decimal(unscaled: i128, scale: u32) -> Value {
    cdc_model::value::decimal(cdc_model::Decimal::new(unscaled, scale).unwrap())
}

/// Builds the events of one table under one schema, with growing LSNs.
pub struct Events {
    pub schema: TableSchema,
    pub schema_id: String,
    key_indexes: Vec<usize>,
    next_lsn: u128,
}

impl Events {
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

    pub fn insert(&mut self, row: Vec<Value>) -> ChangeEvent {
        let position = self.position(2);
        self.event(Operation::Insert, position, None, Some(row))
    }

    pub fn update(&mut self, before: Vec<Value>, after: Vec<Value>) -> ChangeEvent {
        let position = self.position(4);
        self.event(Operation::Update, position, Some(before), Some(after))
    }

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

/// Topics, a database and a producer for one test.
pub struct Fixture {
    pub stack: Stack,
    pub topics: TestTopics,
    pub names: Topics,
    pub db: TestDatabase,
    producer: FutureProducer,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let stack = Stack::get();
        let mut topics = TestTopics::new(&stack);
        topics.create("schemas", 1).await;
        topics.create("dlq.loader", 1).await;
        let names = Topics::new(&topics.prefix).unwrap();
        let db = TestDatabase::create(&stack).await;
        let producer = client_config(&stack)
            .set("linger.ms", "5")
            .create()
            .expect("cannot create a Kafka producer");
        Fixture {
            stack,
            topics,
            names,
            db,
            producer,
        }
    }

    /// Creates the clean topic of `table` and returns its name.
    pub async fn table_topic(&mut self, table: &TableId, partitions: i32) -> String {
        let name = self.names.clean(table).unwrap();
        let suffix = name
            .strip_prefix(&format!("{}.", self.topics.prefix))
            .unwrap()
            .to_owned();
        self.topics.create(&suffix, partitions).await
    }

    pub async fn publish_schema(&self, schema: &TableSchema) {
        let id = cdc_model::schema::fingerprint(schema);
        let value = schema.encode_to_vec();
        let topic = self.names.schemas();
        let record = FutureRecord::to(&topic).key(&id).payload(&value);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap_or_else(|(e, _)| panic!("cannot publish schema {id}: {e}"));
    }

    /// Sends events in order (each key's events keep their order within its partition).
    pub async fn send(&self, topic: &str, events: &[ChangeEvent]) {
        let encoded: Vec<(Vec<u8>, Vec<u8>)> = events
            .iter()
            .map(|e| {
                let table = e.source.as_ref().unwrap().table.clone().unwrap();
                (
                    cdc_model::key::encode(&table, &e.key).unwrap(),
                    e.encode_to_vec(),
                )
            })
            .collect();
        for chunk in encoded.chunks(5_000) {
            // Enqueued at once (send_result), then awaited: one round trip per chunk, not per event.
            let deliveries: Vec<_> = chunk
                .iter()
                .map(|(key, value)| {
                    self.producer
                        .send_result(FutureRecord::to(topic).key(key).payload(value))
                        .unwrap_or_else(|(e, _)| panic!("cannot queue an event for {topic}: {e}"))
                })
                .collect();
            for delivery in deliveries {
                delivery
                    .await
                    .expect("the producer went away")
                    .unwrap_or_else(|(e, _)| panic!("cannot send to {topic}: {e}"));
            }
        }
    }

    /// A loader configuration for this fixture; `extra` is appended (more sections or keys
    /// under `[target]`, which comes last).
    pub fn config(
        &self,
        grpc: std::net::SocketAddr,
        metrics: std::net::SocketAddr,
        extra: &str,
    ) -> String {
        format!(
            r#"
[grpc]
listen = "{grpc}"
auth_token = "env:CDC_TEST_CONTROL_TOKEN"

[metrics]
listen = "{metrics}"

[telemetry]
log_filter = "info,sqlx=warn"

[kafka]
bootstrap_servers = "{kafka}"
topic_prefix = "{prefix}"

[consumer]
group_id = "{prefix}-loader"

[consumer.properties]
# A killed loader's partitions move within seconds, not after the default 45 s.
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"

[postgres]
url = "{url}"
password = "env:CDC_TEST_PG_PASSWORD"

[retry]
initial_backoff_ms = 100
max_backoff_ms = 1000

{extra}
"#,
            kafka = self.stack.kafka_bootstrap,
            prefix = self.topics.prefix,
            url = cdc_test_harness::stack::without_password(&self.db.url),
        )
    }

    /// Starts a loader process.
    pub fn start_loader(&self, extra: &str) -> ServiceProcess {
        let (grpc, metrics) = (free_local_addr(), free_local_addr());
        let config = self.config(grpc, metrics, extra);
        let password = self.stack.pg_password();
        let env = [
            ("CDC_TEST_CONTROL_TOKEN", CONTROL_TOKEN),
            ("CDC_TEST_PG_PASSWORD", password.as_str()),
        ];
        let mut process = ServiceProcess::spawn(Path::new(BINARY), &config, &env, grpc, metrics);
        process.wait_until_listening(START_TIMEOUT);
        process
    }

    /// Waits until the loader has stored, for every partition of `topic`, the topic's end.
    pub async fn wait_caught_up(&self, topic: &str, loader: &ServiceProcess, timeout: Duration) {
        let ends = self.ends(topic);
        let deadline = Instant::now() + timeout;
        loop {
            let stored = self.stored_offsets(topic).await;
            if ends
                .iter()
                .all(|(p, end)| *end == 0 || stored.get(p) == Some(end))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the loader did not catch up with {topic} within {timeout:?}: stored {stored:?}, ends {ends:?}\n{}",
                loader.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Partition -> end offset of `topic`.
    pub fn ends(&self, topic: &str) -> BTreeMap<i32, i64> {
        let consumer: BaseConsumer = client_config(&self.stack).create().unwrap();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let partitions: Vec<i32> = metadata.topics()[0]
            .partitions()
            .iter()
            .map(|p| p.id())
            .collect();
        partitions
            .into_iter()
            .map(|p| {
                (
                    p,
                    consumer
                        .fetch_watermarks(topic, p, Duration::from_secs(10))
                        .unwrap()
                        .1,
                )
            })
            .collect()
    }

    /// Partition -> stored next offset of `topic` (none before the loader created its tables).
    pub async fn stored_offsets(&self, topic: &str) -> BTreeMap<i32, i64> {
        let rows =
            sqlx::query("SELECT partition, next_offset FROM cdc_loader.offsets WHERE topic = $1")
                .bind(topic)
                .fetch_all(&self.db.pool)
                .await
                .unwrap_or_default();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }

    /// `id -> note` of a two-column `(id bigint, note text)` table.
    pub async fn id_note_rows(&self, table: &str) -> BTreeMap<i64, Option<String>> {
        let sql = format!("SELECT id, note FROM {table} ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .unwrap_or_else(|e| panic!("cannot read {table}: {e}"));
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }

    /// A gRPC client of the loader's own API, with the control token.
    pub async fn client(
        &self,
        loader: &ServiceProcess,
    ) -> LoaderClient<
        tonic::service::interceptor::InterceptedService<
            Channel,
            fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
        >,
    > {
        let channel = Channel::from_shared(format!("http://{}", loader.grpc))
            .unwrap()
            .connect()
            .await
            .expect("cannot connect to the loader's gRPC port");
        let interceptor: fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> =
            |mut request| {
                request.metadata_mut().insert(
                    "authorization",
                    format!("Bearer {CONTROL_TOKEN}").parse().unwrap(),
                );
                Ok(request)
            };
        LoaderClient::with_interceptor(channel, interceptor)
    }
}

/// Waits until `check` holds, polling; panics with `what` and the loader's output otherwise.
pub async fn eventually<F, Fut>(
    what: &str,
    loader: &ServiceProcess,
    timeout: Duration,
    mut check: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}\n{}",
            loader.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    pub events: Vec<ChangeEvent>,
    pub expected: BTreeMap<i64, Option<String>>,
}

impl Workload {
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

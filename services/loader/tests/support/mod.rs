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
use cdc_model::Topics;
use cdc_model::proto::{ChangeEvent, TableId, TableSchema};
use cdc_test_harness::Stack;
use cdc_test_harness::control::{self, ControlChannel};
use cdc_test_harness::kafka::{EventProducer, TestTopics, service_config};
use cdc_test_harness::ports::free_local_addr;
use cdc_test_harness::postgres::TestDatabase;
use cdc_test_harness::process::ServiceProcess;
use sqlx::Row as _;

pub const BINARY: &str = env!("CARGO_BIN_EXE_cdc-loader");
pub const CONTROL_TOKEN: &str = "loader-test-control-token";
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

pub use cdc_test_harness::events::*;

/// Topics, a database and a producer for one test.
pub struct Fixture {
    pub stack: Stack,
    pub topics: TestTopics,
    pub names: Topics,
    pub db: TestDatabase,
    producer: EventProducer,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let stack = Stack::get();
        let mut topics = TestTopics::new(&stack);
        topics.create("schemas", 1).await;
        topics.create("dlq.loader", 1).await;
        let names = Topics::new(&topics.prefix).unwrap();
        let db = TestDatabase::create(&stack).await;
        let producer = EventProducer::new(&stack);
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
        self.producer.publish_schema(&self.names, schema).await;
    }

    /// Sends events in order (each key's events keep their order within its partition).
    pub async fn send(&self, topic: &str, events: &[ChangeEvent]) {
        self.producer.send(topic, events).await;
    }

    /// A loader configuration for this fixture; `extra` is appended (more sections or keys
    /// under `[target]`, which comes last).
    pub fn config(
        &self,
        grpc: std::net::SocketAddr,
        metrics: std::net::SocketAddr,
        extra: &str,
    ) -> String {
        let common = service_config(
            &self.stack,
            grpc,
            metrics,
            &self.topics.prefix,
            &format!("{}-loader", self.topics.prefix),
        );
        format!(
            r#"{common}
[telemetry]
log_filter = "info,sqlx=warn"

[postgres]
url = "{url}"
password = "env:CDC_TEST_PG_PASSWORD"

[retry]
initial_backoff_ms = 100
max_backoff_ms = 1000

{extra}
"#,
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
        cdc_test_harness::kafka::ends(&self.stack, topic)
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
    pub async fn client(&self, loader: &ServiceProcess) -> LoaderClient<ControlChannel> {
        LoaderClient::new(control::connect(loader.grpc, CONTROL_TOKEN).await)
    }
}

#[allow(unused_imports)] // not every test binary waits
pub use cdc_test_harness::process::eventually;

//! A transformer on the real local stack: per-test topics, events published the way the
//! extractor publishes them, the binary run as a process, the clean topics read back with
//! read_committed (as the loader reads them), and the gRPC client.
#![allow(dead_code)]
// each test binary uses a different part of this module
// Test support: panicking with a clear message is how a broken setup is reported.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;
use std::time::Duration;

use cdc_model::Topics;
use cdc_model::proto::{ChangeEvent, TableId, TableSchema};
use cdc_test_harness::Stack;
use cdc_test_harness::control::{self, ControlChannel};
use cdc_test_harness::kafka::{EventProducer, TestTopics, service_config};
pub use cdc_test_harness::kafka::{Read, read_committed};
use cdc_test_harness::ports::free_local_addr;
use cdc_test_harness::process::ServiceProcess;
use cdc_transformer::proto::transformer_client::TransformerClient;

pub use cdc_test_harness::events::*;

pub const BINARY: &str = env!("CARGO_BIN_EXE_cdc-transformer");
pub const CONTROL_TOKEN: &str = "transformer-test-control-token";
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// A 32-byte masking key for tests.
pub const MASKING_KEY: &str = "test-masking-key-0123456789abcdef";

/// Topics and a producer for one test.
pub struct Fixture {
    pub stack: Stack,
    pub topics: TestTopics,
    pub names: Topics,
    producer: EventProducer,
}

pub type Client = TransformerClient<ControlChannel>;

impl Fixture {
    pub async fn new() -> Fixture {
        let stack = Stack::get();
        let mut topics = TestTopics::new(&stack);
        topics.create("schemas", 1).await;
        topics.create("dlq.transformer", 1).await;
        let names = Topics::new(&topics.prefix).unwrap();
        let producer = EventProducer::new(&stack);
        Fixture {
            stack,
            topics,
            names,
            producer,
        }
    }

    /// Creates the raw topic of `table` and returns its name. The clean topic is created by
    /// the transformer (with as many partitions) and deleted with the test's topics.
    pub async fn raw_topic(&mut self, table: &TableId, partitions: i32) -> String {
        let raw = self.names.raw(table).unwrap();
        self.create(&raw, partitions).await;
        let clean = self.names.clean(table).unwrap();
        self.topics.adopt(&clean);
        raw
    }

    /// Creates `topic` (a full name under this test's prefix).
    pub async fn create(&mut self, topic: &str, partitions: i32) -> String {
        let suffix = topic
            .strip_prefix(&format!("{}.", self.topics.prefix))
            .unwrap()
            .to_owned();
        self.topics.create(&suffix, partitions).await
    }

    pub async fn publish_schema(&self, schema: &TableSchema) {
        self.producer.publish_schema(&self.names, schema).await;
    }

    pub async fn send(&self, topic: &str, events: &[ChangeEvent]) {
        self.producer.send(topic, events).await;
    }

    pub async fn send_encoded(&self, topic: &str, records: &[(Vec<u8>, Vec<u8>)]) {
        self.producer.send_encoded(topic, records).await;
    }

    /// A transformer configuration for this fixture; `extra` is appended (more sections, then
    /// `[[rules]]`).
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
            &format!("{}-transformer", self.topics.prefix),
        );
        format!(
            r#"{common}
[masking]
hmac_key = "env:CDC_TEST_MASKING_KEY"

{extra}
"#
        )
    }

    /// Starts a transformer process with transactional id `<prefix>-<instance>`.
    pub fn start(&self, instance: &str, extra: &str) -> ServiceProcess {
        let (grpc, metrics) = (free_local_addr(), free_local_addr());
        let extra = format!(
            "[producer]\ntransactional_id = \"{}-{instance}\"\n{extra}",
            self.topics.prefix
        );
        let config = self.config(grpc, metrics, &extra);
        let env = [
            ("CDC_TEST_CONTROL_TOKEN", CONTROL_TOKEN),
            ("CDC_TEST_MASKING_KEY", MASKING_KEY),
        ];
        let mut process = ServiceProcess::spawn(Path::new(BINARY), &config, &env, grpc, metrics);
        process.wait_until_listening(START_TIMEOUT);
        process
    }

    /// Reads `topic` from its start with read_committed until `count` records arrived, then
    /// keeps reading one more second so that extra (duplicate) records are seen too.
    pub fn read(
        &self,
        topic: &str,
        count: usize,
        timeout: Duration,
        process: Option<&ServiceProcess>,
    ) -> Vec<Read> {
        read_committed(
            &self.stack,
            &format!("{}-reader", self.topics.prefix),
            topic,
            count,
            timeout,
            process,
        )
    }

    /// A gRPC client of the transformer's own API, with the control token.
    pub async fn client(&self, process: &ServiceProcess) -> Client {
        TransformerClient::new(control::connect(process.grpc, CONTROL_TOKEN).await)
    }
}

#[allow(unused_imports)] // not every test binary waits
pub use cdc_test_harness::process::eventually;

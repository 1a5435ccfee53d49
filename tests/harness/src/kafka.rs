//! Per-test Kafka topics, deleted when the test ends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cdc_model::Topics;
use cdc_model::proto::{ChangeEvent, TableSchema};
use prost::Message as _;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::Stack;
use crate::process::ServiceProcess;

/// Topics that belong to one test: all names start with a unique prefix.
pub struct TestTopics {
    /// The unique prefix, usable as a topic prefix in service configs.
    pub prefix: String,
    created: Vec<String>,
    admin: AdminClient<DefaultClientContext>,
}

impl TestTopics {
    /// A fresh, unique prefix on the stack's cluster.
    pub fn new(stack: &Stack) -> TestTopics {
        let admin = client_config(stack)
            .create()
            .expect("cannot create a Kafka admin client");
        TestTopics {
            prefix: format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            created: Vec::new(),
            admin,
        }
    }

    /// Creates `<prefix>.<suffix>` with `partitions` partitions and returns its name.
    pub async fn create(&mut self, suffix: &str, partitions: i32) -> String {
        let name = format!("{}.{suffix}", self.prefix);
        let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = self
            .admin
            .create_topics([&topic], &options)
            .await
            .expect("Kafka did not answer CreateTopics");
        for result in results {
            result.unwrap_or_else(|(topic, e)| panic!("cannot create topic {topic}: {e}"));
        }
        self.created.push(name.clone());
        name
    }

    /// Deletes `topic` with this test's topics even though a service created it.
    pub fn adopt(&mut self, topic: &str) {
        self.created.push(topic.to_owned());
    }
}

impl Drop for TestTopics {
    fn drop(&mut self) {
        if self.created.is_empty() {
            return;
        }
        let names: Vec<&str> = self.created.iter().map(String::as_str).collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        // librdkafka completes admin futures on its own threads, so blocking here is safe
        // even outside a Tokio runtime.
        if let Err(e) = futures::executor::block_on(self.admin.delete_topics(&names, &options)) {
            eprintln!("warning: could not delete test topics {names:?}: {e}");
        }
    }
}

/// Client configuration for the stack's cluster.
pub fn client_config(stack: &Stack) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &stack.kafka_bootstrap);
    config
}

/// Writes change events and schemas the way the upstream stage does: key = table and primary
/// key, value = the protobuf `ChangeEvent`; schemas keyed by fingerprint.
pub struct EventProducer {
    producer: FutureProducer,
}

impl EventProducer {
    /// A producer on the stack's cluster.
    pub fn new(stack: &Stack) -> EventProducer {
        let producer = client_config(stack)
            .set("linger.ms", "5")
            .create()
            .expect("cannot create a Kafka producer");
        EventProducer { producer }
    }

    /// Publishes `schema` to the schemas topic of `topics`.
    pub async fn publish_schema(&self, topics: &Topics, schema: &TableSchema) {
        let id = cdc_model::schema::fingerprint(schema);
        let value = schema.encode_to_vec();
        let topic = topics.schemas();
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
        self.send_encoded(topic, &encoded).await;
    }

    /// Sends already encoded `(key, value)` records in order.
    pub async fn send_encoded(&self, topic: &str, records: &[(Vec<u8>, Vec<u8>)]) {
        for chunk in records.chunks(5_000) {
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
}

/// The configuration sections every Kafka-consuming service shares in tests: control and
/// metrics endpoints (token from `CDC_TEST_CONTROL_TOKEN`), the cluster under `prefix`, and a
/// consumer group whose killed members' partitions move within seconds.
pub fn service_config(
    stack: &Stack,
    grpc: std::net::SocketAddr,
    metrics: std::net::SocketAddr,
    prefix: &str,
    group: &str,
) -> String {
    format!(
        r#"
[grpc]
listen = "{grpc}"
auth_token = "env:CDC_TEST_CONTROL_TOKEN"

[metrics]
listen = "{metrics}"

[kafka]
bootstrap_servers = "{kafka}"
topic_prefix = "{prefix}"

[consumer]
group_id = "{group}"

[consumer.properties]
# A killed member's partitions move within seconds, not after the default 45 s.
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"
"#,
        kafka = stack.kafka_bootstrap,
    )
}

/// Partition -> end offset (high watermark) of `topic`.
pub fn ends(stack: &Stack, topic: &str) -> std::collections::BTreeMap<i32, i64> {
    let consumer: rdkafka::consumer::BaseConsumer = client_config(stack).create().unwrap();
    let partitions: Vec<i32> = {
        use rdkafka::consumer::Consumer as _;
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        metadata.topics()[0]
            .partitions()
            .iter()
            .map(|p| p.id())
            .collect()
    };
    partitions
        .into_iter()
        .map(|p| {
            use rdkafka::consumer::Consumer as _;
            // A topic just created may not have its partition leaders yet: ask again.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match consumer.fetch_watermarks(topic, p, Duration::from_secs(10)) {
                    Ok((_, high)) => return (p, high),
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    Err(e) => panic!("cannot read the end offsets of {topic}[{p}]: {e}"),
                }
            }
        })
        .collect()
}

/// One record read back from a topic.
#[derive(Debug, Clone)]
pub struct Read {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key (empty when none).
    pub key: Vec<u8>,
    /// Its payload (empty for a tombstone).
    pub value: Vec<u8>,
    /// Its headers, values as text.
    pub headers: BTreeMap<String, String>,
}

impl Read {
    /// The record as a change event.
    pub fn event(&self) -> ChangeEvent {
        ChangeEvent::decode(self.value.as_slice()).expect("not a ChangeEvent")
    }
}

/// Reads `topic` (every partition) from its start with read_committed until `count` records arrived, then
/// keeps reading one more second so that extra (duplicate) records are seen too.
pub fn read_committed(
    stack: &Stack,
    group: &str,
    topic: &str,
    count: usize,
    timeout: Duration,
    process: Option<&ServiceProcess>,
) -> Vec<Read> {
    let consumer: BaseConsumer = client_config(stack)
        .set("group.id", group)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut assigned = false;
    let mut records = Vec::new();
    let mut settle: Option<Instant> = None;
    loop {
        if !assigned {
            assigned = assign_from_start(&consumer, topic);
            if !assigned {
                assert!(
                    Instant::now() < deadline,
                    "topic {topic} was not created within {timeout:?}\n{}",
                    process.map(ServiceProcess::output).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        }
        if records.len() >= count && settle.is_none() {
            settle = Some(Instant::now() + Duration::from_secs(1));
        }
        if settle.is_some_and(|s| Instant::now() > s) {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {} of {count} records within {timeout:?}\n{}",
            records.len(),
            process.map(ServiceProcess::output).unwrap_or_default()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => records.push(read_of(&message)),
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => panic!("cannot read {topic}: {e}"),
        }
    }
}

fn assign_from_start(consumer: &BaseConsumer, topic: &str) -> bool {
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
        return false;
    };
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return false;
    }
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    true
}

fn read_of(message: &rdkafka::message::BorrowedMessage<'_>) -> Read {
    let mut headers = BTreeMap::new();
    if let Some(list) = message.headers() {
        for h in list.iter() {
            headers.insert(
                h.key.to_owned(),
                h.value
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default(),
            );
        }
    }
    Read {
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().unwrap_or_default().to_vec(),
        value: message.payload().unwrap_or_default().to_vec(),
        headers,
    }
}

/// Reads everything committed to `topic` when called (every partition, to its last stable
/// offset), with read_committed; an empty list when the topic does not exist yet.
pub fn read_committed_to_end(
    stack: &Stack,
    group: &str,
    topic: &str,
    timeout: Duration,
) -> Vec<Read> {
    let consumer: BaseConsumer = client_config(stack)
        .set("group.id", group)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    if !assign_from_start(&consumer, topic) {
        return Vec::new();
    }
    // A read_committed client is told the last stable offset as the high watermark.
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for element in consumer.assignment().unwrap().elements() {
        let (_, high) = consumer
            .fetch_watermarks(topic, element.partition(), Duration::from_secs(10))
            .unwrap();
        ends.insert(element.partition(), high);
    }
    let deadline = Instant::now() + timeout;
    let mut records = Vec::new();
    loop {
        let positions = consumer.position().unwrap();
        ends.retain(|partition, end| {
            *end > 0
                && positions
                    .find_partition(topic, *partition)
                    .and_then(|p| p.offset().to_raw())
                    .is_none_or(|offset| offset < *end)
        });
        if ends.is_empty() {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: not read to its end within {timeout:?}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => records.push(read_of(&message)),
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => panic!("cannot read {topic}: {e}"),
        }
    }
}

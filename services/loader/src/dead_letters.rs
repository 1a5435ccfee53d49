//! The loader's dead-letter topic: events PostgreSQL refused (or that cannot be decoded) are
//! written there whole, with why, before the batch that skips them commits. A crash between
//! the two can write a dead letter twice (at-least-once); replay is idempotent, so that is safe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdc_model::dead_letter as header;
use cdc_service_kit::producer::AwaitingProducer;
use cdc_service_kit::topics::TopicCreator;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::event::{Provenance, Record};

/// A record to dead-letter, and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The record as consumed.
    pub record: Record,
    /// The source table, `database.schema.table` (empty when unknown).
    pub source_table: String,
    /// The target table it was meant for (none when undecodable or unnamable).
    pub target: Option<crate::naming::TargetTable>,
    /// Why it was refused.
    pub reason: String,
    /// SQLSTATE, when PostgreSQL refused it.
    pub code: String,
}

/// Writes dead letters.
#[derive(Clone)]
pub struct DeadLetterSink {
    producer: AwaitingProducer,
    topic: String,
    /// Creates the topic before its first letter (brokers here do not create topics on use).
    creator: Arc<TopicCreator>,
}

impl DeadLetterSink {
    /// A sink writing to `topic`; must be created inside the service's runtime.
    pub fn new(client_config: &ClientConfig, topic: String) -> anyhow::Result<Self> {
        let producer = client_config
            .clone()
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(|e| anyhow::anyhow!("cannot create the dead-letter producer: {e}"))?;
        let creator =
            TopicCreator::new(client_config, tokio::runtime::Handle::current()).map_err(|e| {
                anyhow::anyhow!("cannot create the dead-letter topic's admin client: {e}")
            })?;
        Ok(DeadLetterSink {
            producer,
            topic,
            creator: Arc::new(creator),
        })
    }

    /// Creates the topic when it is missing (once per process; later calls return at once).
    async fn ensure_topic(&self) -> Result<(), String> {
        let (creator, topic) = (Arc::clone(&self.creator), self.topic.clone());
        tokio::task::spawn_blocking(move || creator.ensure(&topic, None, false))
            .await
            .map_err(|e| format!("the topic check of {} stopped: {e}", self.topic))?
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Writes every letter and waits until Kafka has them all.
    pub async fn send(&self, letters: &[DeadLetter]) -> Result<(), String> {
        if letters.is_empty() {
            return Ok(());
        }
        self.ensure_topic().await?;
        let refused_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            .to_string();
        let deliveries = letters.iter().map(|letter| {
            let provenance = &letter.record.provenance;
            let partition = provenance.partition.to_string();
            let offset = provenance.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(text_header(header::STAGE, "loader"))
                .insert(text_header(header::REASON, &letter.reason))
                .insert(text_header(header::CODE, &letter.code))
                .insert(text_header(header::TABLE, &letter.source_table))
                .insert(text_header(header::SOURCE_TOPIC, &provenance.topic))
                .insert(text_header(header::SOURCE_PARTITION, &partition))
                .insert(text_header(header::SOURCE_OFFSET, &offset))
                .insert(text_header(header::REFUSED_AT_MS, &refused_at));
            let mut record: FutureRecord<'_, Vec<u8>, Vec<u8>> =
                FutureRecord::to(&self.topic).headers(headers);
            if let Some(key) = &letter.record.key {
                record = record.key(key);
            }
            if let Some(value) = &letter.record.value {
                record = record.payload(value);
            }
            self.producer.send(record, Duration::from_secs(30))
        });
        for outcome in futures::future::join_all(deliveries).await {
            outcome.map_err(|e| format!("cannot write to {}: {e}", self.topic))?;
        }
        Ok(())
    }
}

fn text_header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// A dead letter as read back from the topic.
#[derive(Debug, Clone)]
pub struct StoredLetter {
    /// Partition in the dead-letter topic.
    pub partition: i32,
    /// Offset in the dead-letter topic.
    pub offset: i64,
    /// The original record, with its original provenance.
    pub record: Record,
    /// Headers by name.
    pub headers: HashMap<String, String>,
}

impl StoredLetter {
    /// `partition:offset`, the id operators use.
    pub fn id(&self) -> String {
        format!("{}:{}", self.partition, self.offset)
    }

    /// A header's value, or empty.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// Reads the whole dead-letter topic as it is now, oldest first (per partition).
pub fn read_all(client_config: &ClientConfig, topic: &str) -> Result<Vec<StoredLetter>, String> {
    let consumer: BaseConsumer = client_config
        .clone()
        .set("group.id", "cdc-loader-dead-letter-reader")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("cannot create a Kafka consumer: {e}"))?;
    let partitions =
        cdc_service_kit::kafka::topic_partitions(&consumer, topic, Duration::from_secs(10))?;
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(|e| format!("cannot read the end of {topic}/{partition}: {e}"))?;
        if high > low {
            ends.insert(partition, high);
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(low))
                .map_err(|e| e.to_string())?;
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    let mut letters = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(format!("{topic} could not be read to its end within 30 s"));
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.map_err(|e| format!("cannot read {topic}: {e}"))?;
        let letter = stored_letter(&message);
        if ends
            .get(&letter.partition)
            .is_some_and(|end| letter.offset + 1 >= *end)
        {
            ends.remove(&letter.partition);
        }
        letters.push(letter);
    }
    letters.sort_by_key(|l| (l.partition, l.offset));
    Ok(letters)
}

fn stored_letter(message: &rdkafka::message::BorrowedMessage<'_>) -> StoredLetter {
    let headers = cdc_service_kit::kafka::header_map(message);
    let get = |name: &str| headers.get(name).cloned().unwrap_or_default();
    let provenance = Provenance {
        topic: get(header::SOURCE_TOPIC).into(),
        partition: get(header::SOURCE_PARTITION).parse().unwrap_or(-1),
        offset: get(header::SOURCE_OFFSET).parse().unwrap_or(-1),
    };
    StoredLetter {
        partition: message.partition(),
        offset: message.offset(),
        record: Record {
            provenance,
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
        },
        headers,
    }
}

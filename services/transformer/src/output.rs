//! The producing side, shared by the consume-transform-produce loop and the dead-letter
//! replay: a transactional producer, topics created on first use (clean topics with as many
//! partitions as their raw topic, so keys keep their spread), schemas published once before
//! their first event, and dead letters with their headers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cdc_model::dead_letter;
use cdc_model::proto::TableSchema;
use cdc_service_kit::producer::PolledProducer;
use prost::Message as _;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use crate::engine::{Input, Refusal, Transformed};
pub use cdc_service_kit::topics::TopicCreator;

/// A transactional producer and what it has published.
pub struct Output {
    producer: Arc<TransactionalProducer>,
    creator: Arc<TopicCreator>,
    schemas_topic: String,
    dead_letter_topic: String,
    published: HashSet<Arc<str>>,
    pending_schemas: Vec<Arc<str>>,
    /// Topics known to exist, checked without the creator's lock on the hot path.
    ensured: HashSet<Arc<str>>,
}

/// Where a record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Unchanged to its clean topic.
    Passed,
    /// Transformed to its clean topic.
    Transformed {
        /// Its source commit time.
        commit_time_micros: i64,
    },
    /// Nowhere: a rule kept it out.
    Filtered,
    /// To the dead-letter topic.
    DeadLettered {
        /// Why, in short.
        code: &'static str,
    },
}

/// The producer type of every transactional output.
pub type TransactionalProducer = PolledProducer;

/// A Kafka failure of the producing side.
pub type SendResult = Result<(), KafkaError>;

impl Output {
    /// A transactional producer from `producer_config` (which holds `transactional.id`).
    pub fn new(
        producer_config: &ClientConfig,
        creator: Arc<TopicCreator>,
        schemas_topic: String,
        dead_letter_topic: String,
    ) -> Result<Output, KafkaError> {
        Ok(Output {
            producer: Arc::new(producer_config.create()?),
            creator,
            schemas_topic,
            dead_letter_topic,
            published: HashSet::new(),
            pending_schemas: Vec::new(),
            ensured: HashSet::new(),
        })
    }

    /// The producer, for the transaction calls.
    pub fn producer(&self) -> &TransactionalProducer {
        &self.producer
    }

    /// The producer, shared, for a commit that runs on another thread.
    pub fn shared_producer(&self) -> Arc<TransactionalProducer> {
        Arc::clone(&self.producer)
    }

    /// Creates a topic on first use (see [`TopicCreator::ensure`]).
    pub fn ensure_topic(&mut self, topic: &str, like: Option<&str>) -> Result<(), String> {
        if !self.ensured.contains(topic) {
            self.creator.ensure(topic, like, false)?;
            self.ensured.insert(Arc::from(topic));
        }
        Ok(())
    }

    /// Sends one record into the open transaction, waiting while the local queue is full.
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> SendResult {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        record.key = key;
        record.payload = payload;
        record.headers = headers;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Sends a transformed event, publishing its schema first when this process has not yet.
    pub fn emit(
        &mut self,
        topic: &str,
        raw_topic: &str,
        key: &[u8],
        payload: &[u8],
        schema: &(Arc<str>, Arc<TableSchema>),
        headers: Option<OwnedHeaders>,
    ) -> Result<(), String> {
        let (id, table_schema) = schema;
        if !self.published.contains(id) && !self.pending_schemas.contains(id) {
            self.creator.ensure(&self.schemas_topic, None, true)?;
            let value = table_schema.encode_to_vec();
            self.send(&self.schemas_topic, Some(id.as_bytes()), Some(&value), None)
                .map_err(|e| format!("cannot publish schema {id}: {e}"))?;
            self.pending_schemas.push(Arc::clone(id));
        }
        self.ensure_topic(topic, Some(raw_topic))?;
        self.send(topic, Some(key), Some(payload), headers)
            .map_err(|e| format!("cannot send to {topic}: {e}"))
    }

    /// Sends a refused record, unchanged, to the dead-letter topic with why in its headers.
    pub fn dead_letter(
        &self,
        input: &Input<'_>,
        refusal: &Refusal,
        replays: u32,
        original: Option<OwnedHeaders>,
    ) -> Result<(), String> {
        self.creator.ensure(&self.dead_letter_topic, None, false)?;
        let headers = dead_letter_headers(input, refusal, replays, original);
        self.send(
            &self.dead_letter_topic,
            input.key,
            input.payload,
            Some(headers),
        )
        .map_err(|e| format!("cannot send to {}: {e}", self.dead_letter_topic))
    }

    /// Sends what `input` became into the open transaction; `replays` counts earlier replays
    /// of a dead letter (0 in the main loop). Errors say why sending failed; retrying helps.
    pub fn deliver(
        &mut self,
        input: &Input<'_>,
        transformed: Transformed,
        headers: Option<OwnedHeaders>,
        replays: u32,
    ) -> Result<Delivered, String> {
        Ok(match transformed {
            Transformed::PassThrough { topic } => {
                self.ensure_topic(&topic, Some(input.topic))?;
                self.send(&topic, input.key, input.payload, headers)
                    .map_err(|e| format!("cannot send to {topic}: {e}"))?;
                Delivered::Passed
            }
            Transformed::Emit {
                topic,
                key,
                payload,
                schema,
                commit_time_micros,
            } => {
                self.emit(&topic, input.topic, &key, &payload, &schema, headers)?;
                Delivered::Transformed { commit_time_micros }
            }
            Transformed::Filtered => Delivered::Filtered,
            Transformed::DeadLetter(refusal) => {
                tracing::warn!(
                    table = %refusal.table,
                    rule = %refusal.rule,
                    code = refusal.code,
                    reason = %refusal.reason,
                    topic = input.topic,
                    partition = input.partition,
                    offset = input.offset,
                    replays,
                    "event sent to the dead-letter topic"
                );
                self.dead_letter(input, &refusal, replays, headers)?;
                Delivered::DeadLettered { code: refusal.code }
            }
            Transformed::Retry(reason) => return Err(reason),
        })
    }

    /// The open transaction committed: its schemas count as published.
    pub fn committed(&mut self) {
        self.published.extend(self.pending_schemas.drain(..));
    }

    /// The open transaction aborted: its schemas were not published.
    pub fn aborted(&mut self) {
        self.pending_schemas.clear();
    }
}

fn dead_letter_headers(
    input: &Input<'_>,
    refusal: &Refusal,
    replays: u32,
    original: Option<OwnedHeaders>,
) -> OwnedHeaders {
    let refused_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        .to_string();
    let partition = input.partition.to_string();
    let offset = input.offset.to_string();
    let replays = replays.to_string();
    let mut fields = vec![
        (dead_letter::STAGE, "transformer"),
        (dead_letter::REASON, refusal.reason.as_str()),
        (dead_letter::CODE, refusal.code),
        (dead_letter::TABLE, refusal.table.as_str()),
        (dead_letter::SOURCE_TOPIC, input.topic),
        (dead_letter::SOURCE_PARTITION, partition.as_str()),
        (dead_letter::SOURCE_OFFSET, offset.as_str()),
        (dead_letter::REFUSED_AT_MS, refused_at_ms.as_str()),
        (dead_letter::SOURCE_POSITION, refusal.position.as_str()),
    ];
    if !refusal.rule.is_empty() {
        fields.push((dead_letter::RULE, refusal.rule.as_str()));
    }
    if replays != "0" {
        fields.push((dead_letter::REPLAYS, replays.as_str()));
    }
    let mut headers = OwnedHeaders::new_with_capacity(fields.len() + 2);
    for (key, value) in fields {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    // Trace context and other upstream headers travel on, except our own (a replayed
    // record's old reasons are replaced by the new ones).
    if let Some(original) = original {
        use rdkafka::message::Headers as _;
        for header in original.iter() {
            if !header.key.starts_with("cdc.dlq.") {
                headers = headers.insert(Header {
                    key: header.key,
                    value: header.value,
                });
            }
        }
    }
    headers
}

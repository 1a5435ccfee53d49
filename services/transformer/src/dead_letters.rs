//! The dead-letter topic `<prefix>.dlq.transformer` as a queue: the replay consumer group's
//! committed offsets mark its head; records after them are pending. Listing reads the pending
//! records; replaying transforms them again with the rules in force, inside transactions that
//! also move the head, so each dead letter is replayed exactly once. Replays use one fixed
//! transactional id per pipeline, so two replays started at once fence each other instead of
//! both sending.

use std::time::Duration;

use cdc_model::dead_letter as header;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::Producer;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::engine::{Engine, Input, Refusal, Transformed};
use crate::output::{Delivered, Output};
use crate::proto::DeadLetter;
use crate::rules::plan::RuleCounts;

const TIMEOUT: Duration = Duration::from_secs(30);
/// Dead letters per replay transaction.
const REPLAY_BATCH: usize = 5_000;

/// Where the dead letters are and who replays them.
#[derive(Clone)]
pub struct DeadLetterQueue {
    /// Kafka client settings.
    pub client_config: ClientConfig,
    /// The dead-letter topic.
    pub topic: String,
    /// The consumer group whose offsets mark the queue's head.
    pub replay_group: String,
    /// The replay producer's transactional id.
    pub replay_transactional_id: String,
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayCounts {
    /// Dead letters read.
    pub read: u64,
    /// Transformed and sent on, or filtered out.
    pub replayed: u64,
    /// Refused again.
    pub failed_again: u64,
}

impl DeadLetterQueue {
    fn consumer(&self) -> Result<BaseConsumer, String> {
        self.client_config
            .clone()
            .set("group.id", &self.replay_group)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .create()
            .map_err(|e| format!("cannot create a Kafka consumer: {e}"))
    }

    /// Assigns every partition at the queue's head; false when the topic does not exist.
    fn assign_at_head(&self, consumer: &BaseConsumer) -> Result<usize, String> {
        let partitions = cdc_service_kit::kafka::topic_partitions(consumer, &self.topic, TIMEOUT)?;
        let mut wanted = TopicPartitionList::new();
        for partition in &partitions {
            wanted
                .add_partition_offset(&self.topic, *partition, Offset::Invalid)
                .map_err(|e| e.to_string())?;
        }
        let committed = consumer
            .committed_offsets(wanted, TIMEOUT)
            .map_err(|e| format!("cannot read the replay group's offsets: {e}"))?;
        let mut assignment = TopicPartitionList::new();
        for element in committed.elements() {
            let start = match element.offset() {
                Offset::Offset(at) => Offset::Offset(at),
                _ => Offset::Beginning,
            };
            assignment
                .add_partition_offset(&self.topic, element.partition(), start)
                .map_err(|e| e.to_string())?;
        }
        consumer.assign(&assignment).map_err(|e| e.to_string())?;
        Ok(partitions.len())
    }

    /// Reads pending dead letters to the end (committed records only), calling `each`.
    fn read_pending(
        &self,
        consumer: &BaseConsumer,
        mut each: impl FnMut(&BorrowedMessage<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut open = self.assign_at_head(consumer)?;
        let deadline = std::time::Instant::now() + TIMEOUT;
        while open > 0 {
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "{} could not be read to its end in time",
                    self.topic
                ));
            }
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => each(&message)?,
                Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
                Some(Err(e)) => return Err(format!("cannot read {}: {e}", self.topic)),
                None => {}
            }
        }
        Ok(())
    }

    /// Pending dead letters, oldest first per partition: at most `limit`, and how many in all.
    pub fn list(&self, limit: usize) -> Result<(Vec<DeadLetter>, u64), String> {
        let consumer = self.consumer()?;
        let mut letters = Vec::new();
        let mut pending = 0u64;
        self.read_pending(&consumer, |message| {
            pending += 1;
            if letters.len() < limit {
                letters.push(describe(message));
            }
            Ok(())
        })?;
        Ok((letters, pending))
    }

    /// Replays every pending dead letter with the rules in force; blocking.
    pub fn replay(&self, engine: &Engine, mut output: Output) -> Result<ReplayCounts, String> {
        let producer_error = |what: &str, e: KafkaError| format!("{what}: {e}");
        output
            .producer()
            .init_transactions(TIMEOUT)
            .map_err(|e| producer_error("cannot initialise the replay producer", e))?;
        let consumer = self.consumer()?;
        let mut counts = ReplayCounts::default();
        let mut in_batch = TopicPartitionList::new();
        let mut batch_size = 0usize;
        let rules = engine.rules();
        let mut rule_counts = RuleCounts::new(rules.set.rules.len());
        let result = self.read_pending(&consumer, |message| {
            if batch_size == 0 {
                output
                    .producer()
                    .begin_transaction()
                    .map_err(|e| producer_error("cannot begin a transaction", e))?;
            }
            replay_one(engine, &mut output, message, &mut counts, &mut rule_counts)?;
            in_batch
                .add_partition_offset(
                    message.topic(),
                    message.partition(),
                    Offset::Offset(message.offset() + 1),
                )
                .map_err(|e| e.to_string())?;
            batch_size += 1;
            if batch_size >= REPLAY_BATCH {
                commit(&output, &consumer, &in_batch)?;
                output.committed();
                batch_size = 0;
            }
            Ok(())
        });
        let outcome = result.and_then(|()| {
            if batch_size > 0 {
                commit(&output, &consumer, &in_batch)?;
                output.committed();
            }
            Ok(())
        });
        if let Err(reason) = outcome {
            if batch_size > 0 {
                let _ = output.producer().abort_transaction(TIMEOUT);
            }
            return Err(reason);
        }
        engine.record(rules.generation, &rule_counts);
        Ok(counts)
    }
}

fn commit(
    output: &Output,
    consumer: &BaseConsumer,
    offsets: &TopicPartitionList,
) -> Result<(), String> {
    let group = consumer
        .group_metadata()
        .ok_or("the replay consumer has no group metadata")?;
    let producer = output.producer();
    producer
        .send_offsets_to_transaction(offsets, &group, TIMEOUT)
        .and_then(|()| producer.commit_transaction(TIMEOUT))
        .map_err(|e| format!("cannot commit the replay: {e}"))
}

fn replay_one(
    engine: &Engine,
    output: &mut Output,
    message: &BorrowedMessage<'_>,
    counts: &mut ReplayCounts,
    rule_counts: &mut RuleCounts,
) -> Result<(), String> {
    counts.read += 1;
    let headers = cdc_service_kit::kafka::header_map(message);
    let get = |name: &str| headers.get(name).cloned().unwrap_or_default();
    let source_topic = get(header::SOURCE_TOPIC);
    let input = Input {
        topic: &source_topic,
        partition: get(header::SOURCE_PARTITION).parse().unwrap_or(-1),
        offset: get(header::SOURCE_OFFSET).parse().unwrap_or(-1),
        key: message.key(),
        payload: message.payload(),
    };
    let original = message.headers().map(|h| h.detach());
    let replays = get(header::REPLAYS).parse::<u32>().unwrap_or(0) + 1;
    let route = match engine.route(&source_topic) {
        Ok(route) => route,
        Err(reason) => {
            let refusal = Refusal {
                table: get(header::TABLE),
                rule: String::new(),
                reason,
                code: crate::engine::refusal_code::UNDECODABLE,
                position: get(header::SOURCE_POSITION),
            };
            counts.failed_again += 1;
            return output.dead_letter(&input, &refusal, replays, original);
        }
    };
    let transformed = if route.transformed {
        engine.transform(&route, &input, rule_counts)
    } else {
        Transformed::PassThrough {
            topic: route.clean_topic.clone(),
        }
    };
    match output.deliver(&input, transformed, original, replays)? {
        Delivered::DeadLettered { .. } => counts.failed_again += 1,
        _ => counts.replayed += 1,
    }
    Ok(())
}

/// A pending dead letter as the control API shows it.
fn describe(message: &BorrowedMessage<'_>) -> DeadLetter {
    let headers = cdc_service_kit::kafka::header_map(message);
    let get = |name: &str| headers.get(name).cloned().unwrap_or_default();
    DeadLetter {
        partition: message.partition(),
        offset: message.offset(),
        table: get(header::TABLE),
        rule: get(header::RULE),
        reason: get(header::REASON),
        code: get(header::CODE),
        source_topic: get(header::SOURCE_TOPIC),
        source_partition: get(header::SOURCE_PARTITION).parse().unwrap_or(-1),
        source_offset: get(header::SOURCE_OFFSET).parse().unwrap_or(-1),
        source_position: get(header::SOURCE_POSITION),
        refused_at_ms: get(header::REFUSED_AT_MS).parse().unwrap_or(0),
    }
}

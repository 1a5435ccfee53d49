//! Checkpoints: per table, the position up to which every change has been published and the
//! snapshot in progress. They live in the compacted `<prefix>.extractor.offsets` topic, keyed
//! by server and table, written in the same Kafka transaction as the events they account
//! for, and read back with `read_committed` when a work unit starts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cdc_model::proto::TableId;
use cdc_model::topics::escape_part;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::proto::TableCheckpoint;

/// How long reading the checkpoints back may take before the work unit gives up (and is
/// retried).
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// The record key of a table's checkpoint: the server and the escaped table name.
pub fn key(server: &str, table: &TableId) -> Vec<u8> {
    format!(
        "{}/{}.{}.{}",
        escape_part(server),
        escape_part(&table.database),
        escape_part(&table.schema),
        escape_part(&table.table)
    )
    .into_bytes()
}

/// Reads the newest committed checkpoint of every key in `wanted`. Blocks: run it on a
/// blocking thread. Call it only after the work unit's producer has fenced its predecessor,
/// so that nothing the predecessor left open is still to be decided.
pub fn read_committed(
    client_config: &ClientConfig,
    topic: &str,
    wanted: &[Vec<u8>],
) -> Result<HashMap<Vec<u8>, TableCheckpoint>, String> {
    let mut config = client_config.clone();
    config
        .set("group.id", "cdc-extractor-checkpoint-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config
        .create()
        .map_err(|e| format!("cannot create the checkpoint reader: {e}"))?;
    // Read to the last stable offset (what read_committed can reach), but only once it has
    // passed the log end seen now: before that, another unit's open transaction holds it back,
    // and a newer checkpoint of ours committed after that transaction began would be missed
    // (and its events sent again).
    let log_end: BaseConsumer = client_config
        .clone()
        .set("isolation.level", "read_uncommitted")
        .create()
        .map_err(|e| format!("cannot create the checkpoint reader: {e}"))?;
    let partitions =
        cdc_service_kit::kafka::topic_partitions(&consumer, topic, Duration::from_secs(10))?;
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let watermarks = |client: &BaseConsumer| {
            client
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .map_err(|e| format!("cannot read the offsets of {topic}[{partition}]: {e}"))
        };
        let (low, log_high) = watermarks(&log_end)?;
        if log_high <= low {
            continue;
        }
        // A read_committed client is told the last stable offset as the high watermark.
        let stable = loop {
            let (_, stable) = watermarks(&consumer)?;
            if stable >= log_high {
                break stable;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{topic}[{partition}]: an open transaction of another work unit kept the \
                     checkpoints undecided for over {} s",
                    READ_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        ends.insert(partition, stable);
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    let mut found: HashMap<Vec<u8>, TableCheckpoint> = HashMap::new();
    if ends.is_empty() {
        return Ok(found);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| format!("cannot read {topic}: {e}"))?;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(format!(
                "reading the checkpoints in {topic} took over {} s (an open transaction of \
                 another instance holds them back?)",
                READ_TIMEOUT.as_secs()
            ));
        }
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.map_err(|e| format!("cannot read {topic}: {e}"))?;
            if let Some(key) = message.key()
                && wanted.iter().any(|w| w.as_slice() == key)
            {
                match message.payload() {
                    Some(payload) => {
                        let checkpoint = TableCheckpoint::decode(payload).map_err(|e| {
                            format!(
                                "the checkpoint at {topic}[{}]@{} cannot be read: {e}",
                                message.partition(),
                                message.offset()
                            )
                        })?;
                        found.insert(key.to_vec(), checkpoint);
                    }
                    // A tombstone forgets the table (an operator reset it).
                    None => {
                        found.remove(key);
                    }
                }
            }
        }
        // The position, not the last message, says how far the reader got: transaction
        // markers and aborted records occupy offsets but are never returned.
        let positions = consumer
            .position()
            .map_err(|e| format!("cannot read the position in {topic}: {e}"))?;
        ends.retain(|partition, high| {
            let reached = positions
                .find_partition(topic, *partition)
                .and_then(|p| p.offset().to_raw())
                .is_some_and(|offset| offset >= *high);
            !reached
        });
    }
    Ok(found)
}

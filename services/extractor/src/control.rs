//! The control topic (`<prefix>.control`) as the extractor reads it: commands from operators
//! and the reconciler. Each table remembers in its checkpoint the next offset it has to read,
//! and the keys a command asks for are stored with it in the same Kafka transaction, so a
//! command is carried out once even when its work unit moves to another instance.

use std::time::{Duration, Instant};

use cdc_model::proto::ControlCommand;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// How long reading the commands up to the end may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the control topic's single partition. Blocking: call it from a blocking thread.
pub struct ControlReader {
    consumer: BaseConsumer,
    topic: String,
}

impl ControlReader {
    /// A reader of `topic` (read_committed: only commands whose transaction committed).
    pub fn new(client_config: &ClientConfig, topic: &str) -> Result<ControlReader, String> {
        let consumer = client_config
            .clone()
            .set("group.id", "cdc-extractor-control-reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            .create()
            .map_err(|e| format!("cannot create the control topic reader: {e}"))?;
        Ok(ControlReader {
            consumer,
            topic: topic.to_owned(),
        })
    }

    /// The offset after the last command.
    pub fn end(&self) -> Result<i64, String> {
        self.consumer
            .fetch_watermarks(&self.topic, 0, Duration::from_secs(10))
            .map(|(_, high)| high)
            .map_err(|e| format!("cannot read the end of {}: {e}", self.topic))
    }

    /// The commands at offsets `from..to`. A record that is not a command is skipped with a
    /// warning naming its offset: an operator's mistake must not stop the extractor.
    pub fn read(&self, from: i64, to: i64) -> Result<Vec<(i64, ControlCommand)>, String> {
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&self.topic, 0, Offset::Offset(from))
            .map_err(|e| e.to_string())?;
        self.consumer
            .assign(&assignment)
            .map_err(|e| format!("cannot read {}: {e}", self.topic))?;
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut commands = Vec::new();
        loop {
            let position = self
                .consumer
                .position()
                .map_err(|e| format!("cannot read the position in {}: {e}", self.topic))?
                .find_partition(&self.topic, 0)
                .and_then(|p| p.offset().to_raw())
                .unwrap_or(from);
            if position >= to {
                return Ok(commands);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "reading {} from {from} to {to} took over {} s",
                    self.topic,
                    READ_TIMEOUT.as_secs()
                ));
            }
            let Some(message) = self.consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.map_err(|e| format!("cannot read {}: {e}", self.topic))?;
            match message.payload().map(ControlCommand::decode) {
                Some(Ok(command)) => commands.push((message.offset(), command)),
                Some(Err(e)) => tracing::warn!(
                    topic = %self.topic,
                    offset = message.offset(),
                    error = %e,
                    "a control record that is not a cdc.v1.ControlCommand is skipped"
                ),
                None => {}
            }
        }
    }
}

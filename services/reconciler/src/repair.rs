//! Repair: re-snapshot commands for the differing keys, sent to `<prefix>.control`. The
//! extractor that owns the table reads those rows again (and publishes a delete for a key the
//! source no longer holds); they flow through the pipeline like any change, and a later run
//! confirms the gap closed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdc_model::Topics;
use cdc_model::canonical::value_from_text;
use cdc_model::proto::{ControlCommand, KeyValues, ResnapshotKeys, control_command};
use cdc_service_kit::producer::AwaitingProducer;
use cdc_service_kit::topics::TopicCreator;
use prost::Message as _;
use rdkafka::producer::FutureRecord;

use crate::compare::Difference;
use crate::config::ReconcilerConfig;
use crate::plan::TablePlan;

/// Sends repair commands.
pub struct Repairer {
    producer: AwaitingProducer,
    topic: String,
    keys_per_command: usize,
}

impl Repairer {
    /// A repairer on the configured cluster; creates the control topic if missing.
    pub async fn new(config: &ReconcilerConfig) -> anyhow::Result<Repairer> {
        let topic = Topics::new(&config.kafka.topic_prefix)?.control();
        let client_config = config.kafka.client_config();
        let creator = TopicCreator::new(&client_config, tokio::runtime::Handle::current())?;
        let ensured = topic.clone();
        // One partition: the extractor reads every command in order.
        tokio::task::spawn_blocking(move || creator.ensure_partitions(&ensured, 1, false))
            .await?
            .map_err(|e| anyhow::anyhow!("cannot create the control topic: {e}"))?;
        let producer = client_config
            .clone()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()?;
        Ok(Repairer {
            producer,
            topic,
            keys_per_command: config.repair.keys_per_command,
        })
    }

    /// Sends re-snapshot commands for the keys of `differences` in `plan`'s table, on behalf
    /// of `run_id`. Returns how many keys were sent.
    pub async fn request(
        &self,
        run_id: &str,
        plan: &TablePlan,
        differences: &[Difference],
    ) -> anyhow::Result<u64> {
        let keys = differences
            .iter()
            .map(|d| {
                let values = d
                    .key
                    .iter()
                    .zip(&plan.key_schema)
                    .map(|(text, column)| value_from_text(text.as_deref(), column))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(KeyValues { values })
            })
            .collect::<Result<Vec<_>, cdc_model::Error>>()
            .map_err(|e| {
                anyhow::anyhow!("a differing key of {} cannot be typed: {e}", plan.name)
            })?;
        let mut sent = 0;
        for chunk in keys.chunks(self.keys_per_command) {
            let command = ControlCommand {
                command_id: uuid::Uuid::new_v4().to_string(),
                requested_by: format!("reconciler run {run_id}"),
                requested_at_unix_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    .unwrap_or_default(),
                command: Some(control_command::Command::ResnapshotKeys(ResnapshotKeys {
                    table: Some(plan.id.clone()),
                    keys: chunk.to_vec(),
                })),
            };
            let payload = command.encode_to_vec();
            let record = FutureRecord::to(&self.topic)
                .key(&plan.name)
                .payload(&payload);
            self.producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|e| anyhow::anyhow!("cannot send to {}: {e}", self.topic))?;
            sent += chunk.len() as u64;
        }
        tracing::info!(table = %plan.name, run_id, keys = sent, "re-snapshot of differing keys requested");
        Ok(sent)
    }
}

//! Sharing work between instances: every extractor instance joins one consumer group on the
//! work topic, whose partitions are the work units. A partition assigned here starts its
//! unit; a partition revoked stops it. The unit's transactional id fences a stale owner, so a
//! unit never runs in two places at once in any way that counts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use cdc_service_kit::proto::State;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics as m;
use crate::unit::{self, Shared};

/// Longest pause between attempts to restart a failed unit.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a revoked unit may take to stop before it is left behind (it is fenced anyway).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

enum Change {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

struct GroupContext {
    topic: String,
    changes: mpsc::UnboundedSender<Change>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            metrics::counter!(m::REBALANCES, "kind" => "revoke").increment(1);
            let _ = self.changes.send(Change::Revoked(self.partitions(list)));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            metrics::counter!(m::REBALANCES, "kind" => "assign").increment(1);
            let _ = self.changes.send(Change::Assigned(self.partitions(list)));
        }
    }
}

impl GroupContext {
    fn partitions(&self, list: &rdkafka::TopicPartitionList) -> Vec<i32> {
        list.elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect()
    }
}

struct Running {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// Joins the group and runs the units assigned here until `shutdown`.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = Arc::clone(&shared.config);
    let topic = shared.topics.extractor_work();
    let creator = Arc::clone(&shared.creator);
    let offsets = shared.topics.extractor_offsets();
    let schemas = shared.topics.schemas();
    let control = shared.topics.control();
    let work_topic = topic.clone();
    let partitions = config.work.partitions;
    tokio::task::spawn_blocking(move || {
        creator.ensure_partitions(&work_topic, partitions, false)?;
        creator.ensure_partitions(&offsets, 1, true)?;
        // One partition: every table reads every command, in order.
        creator.ensure_partitions(&control, 1, false)?;
        creator.ensure_partitions(&schemas, 1, true)
    })
    .await
    .map_err(|e| anyhow!("creating topics panicked: {e}"))?
    .map_err(|e| anyhow!(e))?;

    let (changes, mut received) = mpsc::unbounded_channel();
    let mut consumer_config = shared.client_config.clone();
    consumer_config
        .set("group.id", &config.work.group_id)
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000");
    let consumer: StreamConsumer<GroupContext> = consumer_config
        .create_with_context(GroupContext {
            topic: topic.clone(),
            changes,
        })
        .context("cannot create the work group consumer")?;
    consumer
        .subscribe(&[&topic])
        .with_context(|| format!("cannot subscribe to {topic}"))?;
    shared
        .state
        .set_component("work-group", State::Running, format!("joined {topic}"));

    let mut running: HashMap<i32, Running> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            message = consumer.recv() => {
                // Nothing is ever written to the work topic; polling keeps the membership.
                if let Err(e) = message {
                    tracing::warn!(error = %e, "work group consumer");
                }
            }
            Some(change) = received.recv() => match change {
                Change::Revoked(partitions) => {
                    for partition in partitions {
                        if let Some(unit) = running.remove(&partition) {
                            stop(partition, unit).await;
                        }
                    }
                }
                Change::Assigned(partitions) => {
                    for partition in partitions {
                        if let Some(unit) = running.remove(&partition) {
                            stop(partition, unit).await;
                        }
                        running.insert(partition, spawn_unit(Arc::clone(&shared), partition, &shutdown));
                    }
                }
            },
        }
        metrics::gauge!(m::WORK_UNITS).set(running.len() as f64);
    }
    for (partition, unit) in running.drain() {
        stop(partition, unit).await;
    }
    Ok(())
}

async fn stop(partition: i32, unit: Running) {
    unit.cancel.cancel();
    if tokio::time::timeout(STOP_TIMEOUT, unit.handle)
        .await
        .is_err()
    {
        tracing::warn!(
            work_partition = partition,
            "work unit did not stop in time; it is fenced by its successor"
        );
    } else {
        tracing::info!(work_partition = partition, "work unit stopped");
    }
}

fn spawn_unit(shared: Arc<Shared>, partition: i32, shutdown: &CancellationToken) -> Running {
    let cancel = shutdown.child_token();
    let token = cancel.clone();
    let handle = tokio::spawn(async move {
        let component = format!("work-unit-{partition}");
        let mut backoff = Duration::from_secs(1);
        while !token.is_cancelled() {
            shared
                .state
                .set_component(&component, State::Running, "reading");
            match unit::run(Arc::clone(&shared), partition, token.clone()).await {
                Ok(()) => break,
                Err(error) => {
                    let text = format!("{error:#}");
                    tracing::error!(work_partition = partition, error = %text, retry_in_s = backoff.as_secs(), "work unit failed; restarting from its checkpoints");
                    metrics::counter!(m::ERRORS, "kind" => m::ERROR_WORK_UNIT).increment(1);
                    shared
                        .state
                        .set_component(&component, State::Degraded, text);
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        shared
            .state
            .set_component(&component, State::Stopping, "released");
    });
    Running { cancel, handle }
}

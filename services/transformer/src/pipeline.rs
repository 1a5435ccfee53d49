//! The consume-transform-produce loop, on a thread of its own: a consumer-group member reads
//! the raw topics (read_committed); every record is transformed and produced at once into the
//! open Kafka transaction; the transaction closes at `batch.max_events` or `batch.max_wait_ms`
//! by sending the consumed offsets into it and committing. Output and input progress commit
//! together or not at all: exactly once.
//!
//! Rebalances happen only inside `poll`. When one revokes partitions while a transaction is
//! open, the transaction is aborted before the next record is used, so nothing it produced
//! survives and the partitions' new owner starts from the committed offsets. A stale instance
//! is fenced by the broker (its consumer generation is checked with the offsets).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cdc_service_kit::ServiceState;
use cdc_service_kit::proto::State;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, OwnedHeaders};
use rdkafka::producer::Producer;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::BatchConfig;
use crate::engine::{Engine, Input, TopicRoute, Transformed};
use crate::metrics::BatchStats;
use crate::output::{Delivered, Output};
use crate::rules::plan::RuleCounts;

/// Status component of the loop.
pub const PIPELINE_COMPONENT: &str = "pipeline";
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
const IDLE_POLL: Duration = Duration::from_millis(100);
const RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// What the loop needs.
pub struct PipelineSetup {
    /// Group consumer settings (group id and extra properties included).
    pub consumer_config: ClientConfig,
    /// The producing side.
    pub output: Output,
    /// Subscription, a librdkafka regular expression over raw topic names.
    pub topic_pattern: String,
    /// Transaction sizes.
    pub batch: BatchConfig,
    /// The transform.
    pub engine: Engine,
    /// Status and pause.
    pub state: ServiceState,
    /// Stops the loop after its current transaction.
    pub shutdown: CancellationToken,
}

/// Notes revocations, which happen inside `poll`, for the loop to act on after it returns.
#[derive(Default)]
pub struct RebalanceWatch {
    revoked: AtomicBool,
}

impl ClientContext for RebalanceWatch {}

impl ConsumerContext for RebalanceWatch {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            tracing::info!(partitions = partitions.count(), "partitions revoked");
            self.revoked.store(true, Ordering::SeqCst);
        }
    }
}

type GroupConsumer = BaseConsumer<RebalanceWatch>;

/// A failure that ends the loop: the service stops with it.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Kafka refused a client or a fatal transaction error (fenced by another instance with
    /// the same transactional id); restarting after fixing the cause helps.
    #[error("{0}")]
    Kafka(String),
}

/// The open transaction's bookkeeping.
struct Transaction {
    started: Instant,
    events: usize,
    /// Per partition: first and next offset consumed in this transaction.
    spans: BTreeMap<(Arc<str>, i32), (i64, i64)>,
    generation: u64,
    counts: RuleCounts,
    stats: BatchStats,
}

/// Runs the loop until `shutdown`; blocking.
pub fn run(setup: PipelineSetup) -> Result<(), PipelineError> {
    let PipelineSetup {
        consumer_config,
        mut output,
        topic_pattern,
        batch,
        engine,
        state,
        shutdown,
    } = setup;
    let consumer: GroupConsumer = consumer_config
        .create_with_context(RebalanceWatch::default())
        .map_err(|e| PipelineError::Kafka(format!("cannot create the consumer: {e}")))?;
    init_transactions(&output, &state, &shutdown)?;
    consumer
        .subscribe(&[&topic_pattern])
        .map_err(|e| PipelineError::Kafka(format!("cannot subscribe to {topic_pattern}: {e}")))?;
    state.set_component(PIPELINE_COMPONENT, State::Running, "consuming");
    let mut lp = Loop {
        consumer,
        work: Work {
            output: &mut output,
            engine,
            routes: HashMap::new(),
            open: None,
        },
        state,
        batch,
        paused: false,
    };
    lp.run(&shutdown)
}

fn init_transactions(
    output: &Output,
    state: &ServiceState,
    shutdown: &CancellationToken,
) -> Result<(), PipelineError> {
    while !shutdown.is_cancelled() {
        match output.producer().init_transactions(TRANSACTION_TIMEOUT) {
            Ok(()) => return Ok(()),
            Err(e) if is_fatal(&e) => {
                return Err(PipelineError::Kafka(format!(
                    "cannot initialise transactions: {e}"
                )));
            }
            Err(e) => {
                state.set_component(
                    PIPELINE_COMPONENT,
                    State::Degraded,
                    format!("initialising transactions: {e}"),
                );
                std::thread::sleep(RETRY_BACKOFF);
            }
        }
    }
    Ok(())
}

fn is_fatal(error: &KafkaError) -> bool {
    matches!(error, KafkaError::Transaction(e) if e.is_fatal())
}

struct Loop<'a> {
    consumer: GroupConsumer,
    work: Work<'a>,
    state: ServiceState,
    batch: BatchConfig,
    paused: bool,
}

/// Everything but the consumer, so that a polled message (which borrows the consumer) can be
/// handled while the rest changes.
struct Work<'a> {
    output: &'a mut Output,
    engine: Engine,
    routes: HashMap<String, TopicRoute>,
    open: Option<Transaction>,
}

/// Why a record could not be handled now.
struct Retry(String);

impl Loop<'_> {
    fn run(&mut self, shutdown: &CancellationToken) -> Result<(), PipelineError> {
        let max_wait = Duration::from_millis(self.batch.max_wait_ms);
        while !shutdown.is_cancelled() {
            self.honour_pause()?;
            let timeout = self
                .work
                .open
                .as_ref()
                .map_or(IDLE_POLL, |t| max_wait.saturating_sub(t.started.elapsed()));
            let polled = self.consumer.poll(timeout);
            if self
                .consumer
                .context()
                .revoked
                .swap(false, Ordering::SeqCst)
                && self.work.open.is_some()
            {
                drop(polled);
                self.abort("partitions were revoked")?;
                continue;
            }
            match polled {
                Some(Ok(message)) => {
                    if let Err(Retry(reason)) = self.work.handle(&message) {
                        let at = (
                            message.topic().to_owned(),
                            message.partition(),
                            message.offset(),
                        );
                        drop(message);
                        self.retry_later(&reason, at)?;
                        continue;
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                None => {}
            }
            let due = self.work.open.as_ref().is_some_and(|t| {
                t.events >= self.batch.max_events || t.started.elapsed() >= max_wait
            });
            if due {
                self.commit()?;
            }
        }
        if self.work.open.is_some() {
            self.commit()?;
        }
        Ok(())
    }

    fn honour_pause(&mut self) -> Result<(), PipelineError> {
        let paused = self.state.pause_state().paused;
        if paused && self.work.open.is_some() {
            self.commit()?;
        }
        if paused || self.paused {
            let assignment = self.consumer.assignment().unwrap_or_default();
            let outcome = if paused {
                self.consumer.pause(&assignment)
            } else {
                self.consumer.resume(&assignment)
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, paused, "cannot pause or resume the consumer");
            }
            self.paused = paused;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), PipelineError> {
        let Some(open) = self.work.open.take() else {
            return Ok(());
        };
        let started = Instant::now();
        match self.send_offsets_and_commit(&open) {
            Ok(()) => {
                self.work.output.committed();
                self.work.engine.record(open.generation, &open.counts);
                open.stats.publish(
                    &self.work.engine.rules(),
                    open.generation,
                    &open.counts,
                    open.events,
                    started.elapsed(),
                );
                self.state
                    .set_component(PIPELINE_COMPONENT, State::Running, "consuming");
                Ok(())
            }
            Err(e) if is_fatal(&e) => Err(PipelineError::Kafka(format!(
                "the transaction cannot commit and the producer cannot go on (another instance may use the same transactional id): {e}"
            ))),
            Err(e) => {
                self.work.open = Some(open);
                self.abort(&format!("commit failed: {e}"))
            }
        }
    }

    fn send_offsets_and_commit(&self, open: &Transaction) -> Result<(), KafkaError> {
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), (_, next)) in &open.spans {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
        }
        let Some(group) = self.consumer.group_metadata() else {
            // Only while the consumer is leaving its group: the commit would be refused anyway.
            return Err(KafkaError::Canceled);
        };
        let producer = self.work.output.producer();
        producer.send_offsets_to_transaction(&offsets, &group, TRANSACTION_TIMEOUT)?;
        let mut attempts = 0;
        loop {
            match producer.commit_transaction(TRANSACTION_TIMEOUT) {
                Err(KafkaError::Transaction(e))
                    if e.is_retriable() && !e.txn_requires_abort() && attempts < 3 =>
                {
                    attempts += 1;
                    tracing::warn!(error = %e, attempts, "commit will be retried");
                }
                outcome => return outcome,
            }
        }
    }

    /// Aborts the open transaction and rewinds its partitions to where it started.
    fn abort(&mut self, why: &str) -> Result<(), PipelineError> {
        let Some(open) = self.work.open.take() else {
            return Ok(());
        };
        tracing::warn!(reason = why, events = open.events, "transaction aborted");
        crate::metrics::transaction_aborted();
        let mut attempts = 0;
        while let Err(e) = self
            .work
            .output
            .producer()
            .abort_transaction(TRANSACTION_TIMEOUT)
        {
            attempts += 1;
            if is_fatal(&e) || attempts >= 3 {
                return Err(PipelineError::Kafka(format!(
                    "cannot abort the transaction: {e}"
                )));
            }
            tracing::warn!(error = %e, attempts, "abort will be retried");
        }
        self.work.output.aborted();
        for ((topic, partition), (first, _)) in &open.spans {
            self.seek(topic, *partition, *first);
        }
        Ok(())
    }

    fn seek(&self, topic: &str, partition: i32, offset: i64) {
        if let Err(e) = self.consumer.seek(
            topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(5),
        ) {
            // Not assigned any more: its new owner starts from the committed offset.
            tracing::debug!(topic, partition, error = %e, "no rewind");
        }
    }

    fn retry_later(&mut self, reason: &str, at: (String, i32, i64)) -> Result<(), PipelineError> {
        self.state
            .set_component(PIPELINE_COMPONENT, State::Degraded, reason.to_owned());
        let (topic, partition, offset) = at;
        let untracked = self.work.open.as_ref().is_none_or(|t| {
            !t.spans
                .contains_key(&(Arc::from(topic.as_str()), partition))
        });
        self.abort(reason)?;
        if untracked {
            self.seek(&topic, partition, offset);
        }
        std::thread::sleep(RETRY_BACKOFF);
        Ok(())
    }
}

impl Work<'_> {
    fn route(&mut self, topic: &str) -> Result<TopicRoute, String> {
        let generation = self.engine.generation();
        if let Some(route) = self.routes.get(topic)
            && route.generation == generation
        {
            return Ok(route.clone());
        }
        let route = self.engine.route(topic)?;
        self.routes.insert(topic.to_owned(), route.clone());
        Ok(route)
    }

    fn handle(&mut self, message: &BorrowedMessage<'_>) -> Result<(), Retry> {
        if self.open.is_none() {
            self.begin().map_err(Retry)?;
        }
        let input = Input {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            payload: message.payload(),
        };
        let headers = message.headers().map(|h| h.detach());
        let route = self.route(input.topic).map_err(Retry)?;
        let Some(open) = self.open.as_mut() else {
            return Err(Retry("no open transaction".to_owned()));
        };
        let transformed = if route.transformed {
            self.engine.transform(&route, &input, &mut open.counts)
        } else {
            Transformed::PassThrough {
                topic: Arc::clone(&route.clean_topic),
            }
        };
        send(self.output, open, &route, &input, transformed, headers)?;
        open.events += 1;
        open.spans
            .entry((Arc::from(input.topic), input.partition))
            .and_modify(|span| span.1 = input.offset + 1)
            .or_insert((input.offset, input.offset + 1));
        Ok(())
    }

    fn begin(&mut self) -> Result<(), String> {
        self.output
            .producer()
            .begin_transaction()
            .map_err(|e| format!("cannot begin a transaction: {e}"))?;
        let rules = self.engine.rules();
        self.open = Some(Transaction {
            started: Instant::now(),
            events: 0,
            spans: BTreeMap::new(),
            generation: rules.generation,
            counts: RuleCounts::new(rules.set.rules.len()),
            stats: BatchStats::default(),
        });
        Ok(())
    }
}

fn send(
    output: &mut Output,
    open: &mut Transaction,
    route: &TopicRoute,
    input: &Input<'_>,
    transformed: Transformed,
    headers: Option<OwnedHeaders>,
) -> Result<(), Retry> {
    let table = &route.table_name;
    match output
        .deliver(input, transformed, headers, 0)
        .map_err(Retry)?
    {
        Delivered::Passed => open.stats.passed(table, input.payload),
        Delivered::Transformed { commit_time_micros } => {
            open.stats.transformed(table, commit_time_micros);
        }
        Delivered::Filtered => open.stats.filtered(table),
        Delivered::DeadLettered { code } => open.stats.dead_lettered(table, code),
    }
    Ok(())
}

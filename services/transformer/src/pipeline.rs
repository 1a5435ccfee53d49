//! The consume-transform-produce loop, on a thread of its own: a consumer-group member reads
//! the raw topics (read_committed); every record is transformed and produced at once into the
//! open Kafka transaction; the transaction closes at `batch.max_events` or `batch.max_wait_ms`
//! by sending the consumed offsets into it and committing. Output and input progress commit
//! together or not at all: exactly once.
//!
//! Committing overlaps with transforming: two transactional producers take turns. Once every
//! record of transaction N is delivered, its commit (the broker writing the markers) runs on a
//! helper thread while the loop fills transaction N+1 on the other producer.
//! N+1 commits only after N has: if N fails, N+1 is aborted too and both are re-read from where
//! N started, so the committed offsets never pass a transaction that did not commit.
//!
//! Rebalances happen only inside `poll`. When one revokes partitions, the commit in flight is
//! finished and the open transaction aborted before the next record is used, so nothing it
//! produced survives and the partitions' new owner starts from the committed offsets. A stale
//! instance is fenced by the broker (its consumer generation is checked with the offsets).
//!
//! A producer the broker fenced cannot be used again. That happens to a live instance too:
//! a Kafka outage longer than the transaction timeout makes the coordinator abort the open
//! transaction and bump the producer's epoch. Then the loop starts over in-process, exactly as
//! a restarted process would: new producers (whose `init_transactions` takes the ids back), a
//! new group member, reading from the committed offsets. Being fenced again and again means
//! another live instance shares the transactional id; then the service stops.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use cdc_service_kit::ServiceState;
use cdc_service_kit::proto::State;
use cdc_service_kit::trace_context::{self, TraceHeaders};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, OwnedHeaders};
use rdkafka::producer::Producer;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::BatchConfig;
use crate::engine::{Engine, Input, TopicRoute, Transformed};
use crate::metrics::BatchStats;
use crate::output::{Delivered, Output, TransactionalProducer};
use crate::parallel::{Done, Owned, Pool};
use crate::rules::plan::RuleCounts;

/// Status component of the loop.
pub const PIPELINE_COMPONENT: &str = "pipeline";
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
const IDLE_POLL: Duration = Duration::from_millis(100);
const RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// Records per chunk handed to a transform thread.
const CHUNK: usize = 4096;
/// Chunks transformed ahead of producing (bounds memory: about 6 × 4096 records).
const MAX_PENDING_CHUNKS: usize = 6;
/// In-process restarts after being fenced allowed within [`FENCED_WINDOW`].
const MAX_FENCED_RESTARTS: usize = 5;
/// The window [`MAX_FENCED_RESTARTS`] counts over.
const FENCED_WINDOW: Duration = Duration::from_secs(600);

/// Creates the two transactional producers that take turns (called again after a fence).
pub type OutputFactory = Box<dyn Fn() -> Result<[Output; 2], KafkaError> + Send>;

/// What the loop needs.
pub struct PipelineSetup {
    /// Group consumer settings (group id and extra properties included).
    pub consumer_config: ClientConfig,
    /// The producing side: two transactional producers that take turns.
    pub outputs: OutputFactory,
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
            crate::metrics::rebalanced("revoke");
            self.revoked.store(true, Ordering::SeqCst);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(_)) {
            crate::metrics::rebalanced("assign");
        }
    }
}

type GroupConsumer = BaseConsumer<RebalanceWatch>;

/// A failure that ends the loop.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Kafka refused a client; restarting after fixing the cause helps.
    #[error("{0}")]
    Kafka(String),
    /// A fatal transaction error: the producer was fenced (after a Kafka outage longer than
    /// the transaction timeout, or by another instance with the same transactional id). The
    /// loop starts over with new producers; repeated, the service stops with it.
    #[error("{0}")]
    Fenced(String),
}

/// The open transaction's bookkeeping.
struct Transaction {
    started: Instant,
    events: usize,
    /// Per partition: first and next offset consumed in this transaction.
    spans: BTreeMap<Partition, (i64, i64)>,
    generation: u64,
    counts: RuleCounts,
    stats: BatchStats,
    /// Which of the two outputs it is on.
    slot: usize,
    /// The transaction's span (a child of the trace its first record came with, so one trace
    /// follows a batch from the extractor to the loader) and its context as headers, which
    /// every record it produces carries on; set at its first record, ended when it is dropped.
    trace: Option<(tracing::Span, TraceHeaders)>,
}

impl Transaction {
    /// The headers a record consumed with `headers` is produced with.
    fn traced(&mut self, headers: Option<OwnedHeaders>) -> Option<OwnedHeaders> {
        let (_, trace) = self.trace.get_or_insert_with(|| {
            let span = tracing::info_span!("transformer.transaction", slot = self.slot);
            let parent = trace_context::parent_in(headers.as_ref().map(|h| h.as_borrowed()));
            trace_context::adopt_parent(&span, parent.as_ref());
            let trace = TraceHeaders::of(&span);
            (span, trace)
        });
        trace.replace_in(headers)
    }
}

/// A transaction whose offsets are sent and whose commit runs on a helper thread.
struct InFlight {
    transaction: Transaction,
    commit: std::thread::JoinHandle<(Result<(), KafkaError>, Duration)>,
    /// Signalled once every record of the transaction is delivered.
    flushed: Receiver<()>,
    /// Whether that signal came.
    delivered: bool,
}

/// Runs the loop until `shutdown`, starting it over after a fence; blocking.
pub fn run(setup: PipelineSetup) -> Result<(), PipelineError> {
    let mut fenced_at: VecDeque<Instant> = VecDeque::new();
    loop {
        match run_once(&setup) {
            Err(PipelineError::Fenced(reason)) if !setup.shutdown.is_cancelled() => {
                fenced_at.retain(|at| at.elapsed() < FENCED_WINDOW);
                if fenced_at.len() >= MAX_FENCED_RESTARTS {
                    return Err(PipelineError::Fenced(format!(
                        "fenced {} times within {} s; another live instance likely uses the same transactional id: {reason}",
                        fenced_at.len() + 1,
                        FENCED_WINDOW.as_secs()
                    )));
                }
                fenced_at.push_back(Instant::now());
                crate::metrics::pipeline_restarted();
                tracing::warn!(error = %reason, "producer fenced; starting over with new producers from the committed offsets");
                setup.state.set_component(
                    PIPELINE_COMPONENT,
                    State::Degraded,
                    format!("restarting after a fence: {reason}"),
                );
                std::thread::sleep(RETRY_BACKOFF);
            }
            outcome => return outcome,
        }
    }
}

/// One life of the loop: its own consumer group member and producers.
fn run_once(setup: &PipelineSetup) -> Result<(), PipelineError> {
    let PipelineSetup {
        consumer_config,
        outputs,
        topic_pattern,
        batch,
        engine,
        state,
        shutdown,
    } = setup;
    let (engine, state, batch) = (engine.clone(), state.clone(), batch.clone());
    let outputs =
        outputs().map_err(|e| PipelineError::Kafka(format!("cannot create the producers: {e}")))?;
    let consumer: GroupConsumer = consumer_config
        .create_with_context(RebalanceWatch::default())
        .map_err(|e| PipelineError::Kafka(format!("cannot create the consumer: {e}")))?;
    for output in &outputs {
        init_transactions(output, &state, shutdown)?;
    }
    consumer
        .subscribe(&[topic_pattern])
        .map_err(|e| PipelineError::Kafka(format!("cannot subscribe to {topic_pattern}: {e}")))?;
    state.set_component(PIPELINE_COMPONENT, State::Running, "consuming");
    let pool = Pool::new(&engine, batch.transform_threads)
        .map_err(|e| PipelineError::Kafka(format!("cannot start the transform threads: {e}")))?;
    let mut lp = Loop {
        consumer,
        work: Work {
            outputs,
            slot: 0,
            engine,
            routes: HashMap::new(),
            open: None,
        },
        pool,
        pending: VecDeque::new(),
        pending_starts: BTreeMap::new(),
        in_flight: None,
        state,
        batch,
        paused: false,
    };
    let outcome = lp.run(shutdown);
    let finished = lp.finish_in_flight();
    outcome.and(finished.map(drop))
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
                return Err(PipelineError::Fenced(format!(
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

/// Commits the open transaction of `producer`, retrying what the client says may be retried.
fn commit_transaction(producer: &TransactionalProducer) -> Result<(), KafkaError> {
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

struct Loop {
    consumer: GroupConsumer,
    work: Work,
    pool: Pool,
    /// Chunks handed to the pool, oldest first, not produced yet.
    pending: VecDeque<Receiver<Done>>,
    /// Per partition, the first offset of the pending chunks (where to rewind if dropped).
    pending_starts: BTreeMap<Partition, i64>,
    in_flight: Option<InFlight>,
    state: ServiceState,
    batch: BatchConfig,
    paused: bool,
}

/// Everything but the consumer, so that a polled message (which borrows the consumer) can be
/// handled while the rest changes.
struct Work {
    outputs: [Output; 2],
    slot: usize,
    engine: Engine,
    routes: HashMap<String, Arc<TopicRoute>>,
    open: Option<Transaction>,
}

/// Why a record could not be handled now.
struct Retry(String);

/// A raw topic's partition.
type Partition = (Arc<str>, i32);

/// A record that could not be sent, and where it is, to read it again.
struct Undelivered {
    reason: String,
    partition: Partition,
    offset: i64,
}

impl Loop {
    fn run(&mut self, shutdown: &CancellationToken) -> Result<(), PipelineError> {
        while !shutdown.is_cancelled() {
            self.honour_pause()?;
            let polled = self.fill()?;
            let full = self.pending.len() >= MAX_PENDING_CHUNKS;
            self.drain(full || (!polled && !self.pending.is_empty()))?;
            if self.due() {
                self.commit()?;
            } else if !polled && self.pending.is_empty() && self.work.open.is_none() {
                self.finish_in_flight()?;
            }
        }
        self.drain_all()?;
        self.commit()
    }

    /// Whether the open transaction should close (checked once per chunk, not per event).
    fn due(&self) -> bool {
        let max_wait = Duration::from_millis(self.batch.max_wait_ms);
        self.work
            .open
            .as_ref()
            .is_some_and(|t| t.events >= self.batch.max_events || t.started.elapsed() >= max_wait)
    }

    /// Polls up to a chunk of records and hands them to the pool; false when none came.
    fn fill(&mut self) -> Result<bool, PipelineError> {
        if self.pending.len() >= MAX_PENDING_CHUNKS {
            return Ok(true);
        }
        let max_wait = Duration::from_millis(self.batch.max_wait_ms);
        let first_timeout = match (&self.work.open, self.pending.is_empty()) {
            (_, false) => Duration::ZERO,
            (Some(open), true) => max_wait.saturating_sub(open.started.elapsed()),
            (None, true) => IDLE_POLL,
        };
        // A chunk never spans more than a transaction may hold.
        let chunk = CHUNK.min(self.batch.max_events);
        let mut items: Vec<Owned> = Vec::with_capacity(chunk);
        while items.len() < chunk {
            let timeout = if items.is_empty() {
                first_timeout
            } else {
                Duration::ZERO
            };
            let polled = self.consumer.poll(timeout);
            if self
                .consumer
                .context()
                .revoked
                .swap(false, Ordering::SeqCst)
            {
                drop(polled);
                let starts = starts_of(&items);
                drop(items);
                self.settle("partitions were revoked", starts)?;
                return Ok(true);
            }
            match polled {
                Some(Ok(message)) => match self.work.prepare(&message) {
                    Ok(owned) => items.push(owned),
                    Err(Retry(reason)) => {
                        let mut starts = starts_of(&items);
                        starts
                            .entry((Arc::from(message.topic()), message.partition()))
                            .or_insert(message.offset());
                        drop(message);
                        drop(items);
                        self.retry_later(&reason, starts)?;
                        return Ok(true);
                    }
                },
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
                None => break,
            }
        }
        if items.is_empty() {
            return Ok(false);
        }
        if self.state.pause_state().paused {
            // Paused while polling: these records wait, unread, for the resume.
            for ((topic, partition), offset) in starts_of(&items) {
                self.seek(&topic, partition, offset);
            }
            return Ok(false);
        }
        for (partition, offset) in starts_of(&items) {
            self.pending_starts.entry(partition).or_insert(offset);
        }
        self.pending.push_back(self.pool.submit(items));
        Ok(true)
    }

    /// Produces transformed chunks in order while the previous transaction's records are all
    /// delivered; waits for the oldest chunk when `block`.
    fn drain(&mut self, mut block: bool) -> Result<(), PipelineError> {
        while !self.pending.is_empty() {
            if !self.delivered_before(block) {
                return Ok(());
            }
            let received = match self.pending.front().map(|front| {
                if block {
                    front.recv().map_err(|_| TryRecvError::Disconnected)
                } else {
                    front.try_recv()
                }
            }) {
                Some(Ok(done)) => done,
                Some(Err(TryRecvError::Empty)) | None => return Ok(()),
                Some(Err(TryRecvError::Disconnected)) => {
                    return Err(PipelineError::Kafka(
                        "a transform thread stopped".to_owned(),
                    ));
                }
            };
            self.pending.pop_front();
            if self.pending.is_empty() {
                self.pending_starts.clear();
            }
            self.produce(received)?;
            block = false;
        }
        Ok(())
    }

    fn drain_all(&mut self) -> Result<(), PipelineError> {
        while !self.pending.is_empty() {
            self.drain(true)?;
        }
        Ok(())
    }

    /// Whether the records of the transaction in flight are all delivered (so the next may
    /// append); waits for it when `block`.
    fn delivered_before(&mut self, block: bool) -> bool {
        let Some(in_flight) = self.in_flight.as_mut() else {
            return true;
        };
        if in_flight.delivered {
            return true;
        }
        let signal = if block {
            in_flight
                .flushed
                .recv()
                .map_err(|_| TryRecvError::Disconnected)
        } else {
            in_flight.flushed.try_recv()
        };
        match signal {
            Ok(()) | Err(TryRecvError::Disconnected) => {
                // Disconnected: the commit thread ended (a failed flush); its result says so.
                in_flight.delivered = true;
                true
            }
            Err(TryRecvError::Empty) => false,
        }
    }

    fn produce(&mut self, done: Done) -> Result<(), PipelineError> {
        let Done {
            items,
            counts,
            generation,
        } = done;
        if self.work.open.is_none()
            && let Err(reason) = self.work.begin()
        {
            let starts = starts_of(items.iter().map(|(owned, _)| owned));
            return self.retry_later(&reason, starts);
        }
        if let Some(open) = self.work.open.as_mut() {
            open.absorb(&counts, generation);
        }
        let mut items = items.into_iter();
        while let Some((owned, transformed)) = items.next() {
            if let Err(undelivered) = self.work.deliver(owned, transformed) {
                // This record and the rest of the chunk are read again.
                let rest: Vec<(Owned, Transformed)> = items.collect();
                let mut starts = starts_of(rest.iter().map(|(owned, _)| owned));
                starts.insert(undelivered.partition, undelivered.offset);
                return self.retry_later(&undelivered.reason, starts);
            }
        }
        Ok(())
    }

    fn honour_pause(&mut self) -> Result<(), PipelineError> {
        let paused = self.state.pause_state().paused;
        if paused
            && (!self.pending.is_empty() || self.work.open.is_some() || self.in_flight.is_some())
        {
            self.drain_all()?;
            self.commit()?;
            self.finish_in_flight()?;
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

    /// Sends the open transaction's offsets and starts delivering and committing it on a
    /// helper thread, once the transaction before it has committed.
    fn commit(&mut self) -> Result<(), PipelineError> {
        if !self.finish_in_flight()? {
            // The one before failed: everything after it was aborted and will be read again.
            return Ok(());
        }
        let Some(open) = self.work.open.take() else {
            return Ok(());
        };
        if let Err(e) = self.send_offsets(&open) {
            self.work.open = Some(open);
            return if is_fatal(&e) {
                Err(fatal(&e))
            } else {
                self.settle(&format!("offsets not accepted: {e}"), BTreeMap::new())
            };
        }
        let producer = self.work.outputs[open.slot].shared_producer();
        let (flushed_signal, flushed) = mpsc::sync_channel(1);
        let commit = std::thread::Builder::new()
            .name("txn-commit".to_owned())
            .spawn(move || {
                let started = Instant::now();
                // Every record of this transaction must be in its partition before the next
                // transaction (on the other producer) appends any: a partition's order is its
                // append order, and a key's events must stay in order.
                if let Err(e) = producer.flush(TRANSACTION_TIMEOUT) {
                    return (Err(e), started.elapsed());
                }
                let _ = flushed_signal.send(());
                (commit_transaction(&producer), started.elapsed())
            })
            .map_err(|e| PipelineError::Kafka(format!("cannot start a commit thread: {e}")))?;
        self.work.slot = 1 - open.slot;
        self.in_flight = Some(InFlight {
            transaction: open,
            commit,
            flushed,
            delivered: false,
        });
        Ok(())
    }

    fn send_offsets(&self, open: &Transaction) -> Result<(), KafkaError> {
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), (_, next)) in &open.spans {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
        }
        let Some(group) = self.consumer.group_metadata() else {
            // Only while the consumer is leaving its group: the commit would be refused anyway.
            return Err(KafkaError::Canceled);
        };
        self.work.outputs[open.slot]
            .producer()
            .send_offsets_to_transaction(&offsets, &group, TRANSACTION_TIMEOUT)
    }

    /// Waits for the commit in flight. True when it committed (or none was in flight); false
    /// when it failed: then it, the open transaction and the pending chunks were dropped and
    /// their partitions rewound.
    fn finish_in_flight(&mut self) -> Result<bool, PipelineError> {
        match self.join_in_flight()? {
            None => Ok(true),
            Some((failed, why)) => {
                let mut dropped = vec![failed];
                dropped.extend(self.work.open.take());
                self.rollback(dropped, BTreeMap::new(), &why)?;
                Ok(false)
            }
        }
    }

    /// Waits for the commit in flight; returns it with the reason when it failed.
    fn join_in_flight(&mut self) -> Result<Option<(Transaction, String)>, PipelineError> {
        let Some(InFlight {
            transaction,
            commit,
            ..
        }) = self.in_flight.take()
        else {
            return Ok(None);
        };
        let (outcome, took) = commit
            .join()
            .unwrap_or((Err(KafkaError::Canceled), Duration::ZERO));
        match outcome {
            Ok(()) => {
                self.work.outputs[transaction.slot].committed();
                self.work
                    .engine
                    .record(transaction.generation, &transaction.counts);
                transaction.stats.publish(
                    &self.work.engine.rules(),
                    transaction.generation,
                    &transaction.counts,
                    transaction.events,
                    took,
                );
                self.state
                    .set_component(PIPELINE_COMPONENT, State::Running, "consuming");
                Ok(None)
            }
            Err(e) if is_fatal(&e) => Err(fatal(&e)),
            Err(e) => Ok(Some((transaction, format!("commit failed: {e}")))),
        }
    }

    /// Finishes the commit in flight, then drops everything not committed (the open
    /// transaction, the pending chunks, and the in-flight one if it failed) and rewinds to
    /// where it started; `extra` adds records consumed but in none of those.
    fn settle(&mut self, why: &str, extra: BTreeMap<Partition, i64>) -> Result<(), PipelineError> {
        let mut dropped: Vec<Transaction> = Vec::new();
        if let Some((failed, reason)) = self.join_in_flight()? {
            tracing::warn!(%reason, "the transaction in flight did not commit");
            dropped.push(failed);
        }
        dropped.extend(self.work.open.take());
        self.rollback(dropped, extra, why)
    }

    /// Aborts `transactions` (consecutive, oldest first), drops the pending chunks, and rewinds
    /// every partition to the earliest record dropped.
    fn rollback(
        &mut self,
        transactions: Vec<Transaction>,
        extra: BTreeMap<Partition, i64>,
        why: &str,
    ) -> Result<(), PipelineError> {
        let mut starts: BTreeMap<Partition, i64> = BTreeMap::new();
        for transaction in &transactions {
            tracing::warn!(
                reason = why,
                events = transaction.events,
                "transaction aborted"
            );
            crate::metrics::transaction_aborted();
            let output = &mut self.work.outputs[transaction.slot];
            let mut attempts = 0;
            while let Err(e) = output.producer().abort_transaction(TRANSACTION_TIMEOUT) {
                attempts += 1;
                if is_fatal(&e) {
                    return Err(PipelineError::Fenced(format!(
                        "cannot abort the transaction: {e}"
                    )));
                }
                if attempts >= 3 {
                    return Err(PipelineError::Kafka(format!(
                        "cannot abort the transaction: {e}"
                    )));
                }
                tracing::warn!(error = %e, attempts, "abort will be retried");
            }
            output.aborted();
            for (partition, (first, _)) in &transaction.spans {
                starts.entry(partition.clone()).or_insert(*first);
            }
        }
        // Pending chunks come after every transaction; records outside all of them after those.
        self.pending.clear();
        for (partition, first) in std::mem::take(&mut self.pending_starts)
            .into_iter()
            .chain(extra)
        {
            starts.entry(partition).or_insert(first);
        }
        for ((topic, partition), first) in &starts {
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

    fn retry_later(
        &mut self,
        reason: &str,
        extra: BTreeMap<Partition, i64>,
    ) -> Result<(), PipelineError> {
        self.state
            .set_component(PIPELINE_COMPONENT, State::Degraded, reason.to_owned());
        self.settle(reason, extra)?;
        std::thread::sleep(RETRY_BACKOFF);
        Ok(())
    }
}

/// Per partition, the first offset among `items` (in consumption order).
fn starts_of<'a>(items: impl IntoIterator<Item = &'a Owned>) -> BTreeMap<Partition, i64> {
    let mut starts = BTreeMap::new();
    for item in items {
        starts
            .entry((Arc::clone(&item.route.raw_topic), item.partition))
            .or_insert(item.offset);
    }
    starts
}

fn fatal(error: &KafkaError) -> PipelineError {
    PipelineError::Fenced(format!(
        "the transaction cannot commit and the producer cannot go on: {error}"
    ))
}

impl Work {
    fn route(&mut self, topic: &str) -> Result<Arc<TopicRoute>, String> {
        let generation = self.engine.generation();
        if let Some(route) = self.routes.get(topic)
            && route.generation == generation
        {
            return Ok(Arc::clone(route));
        }
        let route = Arc::new(self.engine.route(topic)?);
        self.routes.insert(topic.to_owned(), Arc::clone(&route));
        Ok(route)
    }

    /// Copies a consumed record out of the consumer's buffer, with its route.
    fn prepare(&mut self, message: &BorrowedMessage<'_>) -> Result<Owned, Retry> {
        let route = self.route(message.topic()).map_err(Retry)?;
        Ok(Owned {
            route,
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: message.headers().map(|h| h.detach()),
        })
    }

    /// Sends what one record became into the open transaction; on failure, why and where the
    /// record is (to read it again).
    fn deliver(&mut self, owned: Owned, transformed: Transformed) -> Result<(), Undelivered> {
        let failed = |reason: String| Undelivered {
            reason,
            partition: (Arc::clone(&owned.route.raw_topic), owned.partition),
            offset: owned.offset,
        };
        let Some(open) = self.open.as_mut() else {
            return Err(failed("no open transaction".to_owned()));
        };
        let Owned {
            route,
            partition,
            offset,
            key,
            payload,
            headers,
        } = owned;
        let input = Input {
            topic: &route.raw_topic,
            partition,
            offset,
            key: key.as_deref(),
            payload: payload.as_deref(),
        };
        let table = &route.table_name;
        let headers = open.traced(headers);
        let delivered = self.outputs[open.slot].deliver(&input, transformed, headers, 0);
        match delivered {
            Ok(Delivered::Passed) => open.stats.passed(table, input.payload),
            Ok(Delivered::Transformed { commit_time_micros }) => {
                open.stats.transformed(table, commit_time_micros);
            }
            Ok(Delivered::Filtered) => open.stats.filtered(table),
            Ok(Delivered::DeadLettered { code }) => open.stats.dead_lettered(table, code),
            Err(reason) => {
                return Err(Undelivered {
                    reason,
                    partition: (Arc::clone(&route.raw_topic), partition),
                    offset,
                });
            }
        }
        open.events += 1;
        open.spans
            .entry((Arc::clone(&route.raw_topic), partition))
            .and_modify(|span| span.1 = offset + 1)
            .or_insert((offset, offset + 1));
        Ok(())
    }

    fn begin(&mut self) -> Result<(), String> {
        self.outputs[self.slot]
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
            slot: self.slot,
            trace: None,
        });
        Ok(())
    }
}

impl Transaction {
    /// Adds a chunk's rule counters (dropped if the rules changed in between).
    fn absorb(&mut self, counts: &RuleCounts, generation: u64) {
        if generation != self.generation {
            return;
        }
        for (mine, theirs) in [
            (&mut self.counts.applied, &counts.applied),
            (&mut self.counts.filtered, &counts.filtered),
            (&mut self.counts.failed, &counts.failed),
        ] {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
    }
}

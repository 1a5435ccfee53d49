//! The Kafka side: a consumer-group member on a thread of its own that reads the clean topics
//! (read_committed), starts every assigned partition at the offset stored in PostgreSQL, cuts
//! batches, and hands them to the applier through a bounded queue (which is the backpressure:
//! when the applier falls behind, this thread waits and memory stays bounded).
//!
//! Kafka's own committed offsets are written after PostgreSQL commits, for operators' lag
//! tools only; PostgreSQL's are the truth.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

// Looked up once or more per record: foldhash, not SipHash (a denial of service through
// chosen topic names is not a concern inside the pipeline).
use foldhash::{HashMap, HashMapExt as _};

use cdc_service_kit::trace_context;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::BatchConfig;
use crate::event::{Provenance, Record};
use crate::store::{OffsetStore, PartitionId};
use crate::tables::Tables;

/// Which session applies each partition. A partition seen for the first time goes to the
/// session holding the fewest partitions so far and stays with it for the life of the
/// process, so one session applies a partition's batches, in order. (Hashing partitions to
/// sessions put all four of a table's partitions on one of two sessions in some runs: half
/// the throughput, depending on the topic's name.)
#[derive(Debug)]
pub struct SessionAssignment {
    session_by_partition: HashMap<PartitionId, usize>,
    partitions_per_session: Vec<usize>,
}

impl SessionAssignment {
    /// An assignment over `sessions` sessions (at least one).
    pub fn new(sessions: usize) -> SessionAssignment {
        SessionAssignment {
            session_by_partition: HashMap::new(),
            partitions_per_session: vec![0; sessions.max(1)],
        }
    }

    /// How many sessions there are.
    pub fn sessions(&self) -> usize {
        self.partitions_per_session.len()
    }

    /// The session of partition `id`, assigning one the first time.
    pub fn session_of(&mut self, id: &PartitionId) -> usize {
        if let Some(session) = self.session_by_partition.get(id) {
            return *session;
        }
        let session = (0..self.partitions_per_session.len())
            .min_by_key(|s| self.partitions_per_session[*s])
            .unwrap_or(0);
        self.partitions_per_session[session] += 1;
        self.session_by_partition.insert(id.clone(), session);
        session
    }
}

/// The offsets of one partition that a batch covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionSpan {
    /// The stored next offset this batch expects to find (`None`: nothing stored yet).
    pub expected: Option<i64>,
    /// The next offset to store once the batch is applied.
    pub next_offset: i64,
    /// The partition's epoch when the batch was cut (a rewind or assignment starts a new one).
    pub epoch: u64,
}

/// Records to apply together, with the offsets they cover.
#[derive(Debug, Default)]
pub struct Batch {
    /// Records in consumption order.
    pub records: Vec<Record>,
    /// Per partition, the span the records cover.
    pub partitions: BTreeMap<PartitionId, PartitionSpan>,
    /// The trace context of its first traced record: the batch's span continues that trace.
    pub trace_parent: Option<trace_context::Context>,
    /// Its records' share of `batch.max_in_flight_rows`, given back when it is dropped (after
    /// it is applied).
    pub budget: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, record: Record, expected: Option<i64>, epoch: u64) {
        let id = (record.provenance.topic.clone(), record.provenance.partition);
        let next_offset = record.provenance.offset + 1;
        self.partitions
            .entry(id)
            .and_modify(|span| span.next_offset = next_offset)
            .or_insert(PartitionSpan {
                expected,
                next_offset,
                epoch,
            });
        self.bytes += record.size();
        self.records.push(record);
    }

    /// Splits the batch into one batch per session, by partition, as `sessions` assigns them:
    /// a partition always lands with the same session, so each part can be applied on its own
    /// session while a partition's batches still apply in order.
    pub fn split(self, sessions: &mut SessionAssignment) -> Vec<Batch> {
        let mut split: Vec<Batch> = (0..sessions.sessions())
            .map(|_| Batch {
                trace_parent: self.trace_parent.clone(),
                ..Batch::default()
            })
            .collect();
        for (id, span) in self.partitions {
            split[sessions.session_of(&id)].partitions.insert(id, span);
        }
        for record in self.records {
            let id = (
                Arc::clone(&record.provenance.topic),
                record.provenance.partition,
            );
            let part = &mut split[sessions.session_of(&id)];
            part.bytes += record.size();
            part.records.push(record);
        }
        if let Some(mut budget) = self.budget {
            for part in &mut split {
                part.budget = budget.split(part.records.len().min(budget.num_permits()));
            }
        }
        split
    }

    fn drop_partition(&mut self, id: &PartitionId) {
        if self.partitions.remove(id).is_some() {
            self.records
                .retain(|r| r.provenance.topic != id.0 || r.provenance.partition != id.1);
            self.bytes = self.records.iter().map(Record::size).sum();
        }
    }
}

/// What the applier tells the consumer thread.
#[derive(Debug)]
pub enum SourceCommand {
    /// These next offsets are committed in PostgreSQL (mirror them to Kafka).
    Committed(Vec<(PartitionId, i64)>),
    /// The stored offset is not what a batch of `epoch` expected: read again from `offset`.
    Rewind {
        /// The partition.
        partition: PartitionId,
        /// The epoch of the refused batch.
        epoch: u64,
        /// Where to read from (`None`: the beginning).
        offset: Option<i64>,
    },
    /// Stop reading these topics (their tables are paused).
    Pause(Vec<String>),
    /// Read these topics again from their stored offsets.
    Resume(Vec<String>),
}

#[derive(Debug, Clone, Copy)]
struct PartitionState {
    expected: Option<i64>,
    epoch: u64,
}

#[derive(Default)]
struct PollState {
    partitions: HashMap<PartitionId, PartitionState>,
    batch: Batch,
    next_epoch: u64,
    pending_seeks: HashMap<PartitionId, Option<i64>>,
    topics: HashMap<Box<str>, Arc<str>>,
}

impl PollState {
    /// One shared string per topic name, so records and partition ids share it.
    fn intern(&mut self, topic: &str) -> Arc<str> {
        if let Some(shared) = self.topics.get(topic) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(topic);
        self.topics.insert(Box::from(topic), Arc::clone(&shared));
        shared
    }

    fn start_partition(&mut self, id: PartitionId, expected: Option<i64>) {
        self.next_epoch += 1;
        self.batch.drop_partition(&id);
        self.partitions.insert(
            id,
            PartitionState {
                expected,
                epoch: self.next_epoch,
            },
        );
    }
}

/// The consumer's callbacks: assignment starts partitions at their stored offsets.
pub struct LoaderContext {
    runtime: Handle,
    store: OffsetStore,
    tables: Tables,
    state: Arc<Mutex<PollState>>,
    shutdown: CancellationToken,
}

impl LoaderContext {
    fn state(&self) -> MutexGuard<'_, PollState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stored offsets, retried until PostgreSQL answers (the group waits meanwhile).
    fn stored_offsets(
        &self,
        partitions: &[PartitionId],
    ) -> Option<std::collections::HashMap<PartitionId, i64>> {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.runtime.block_on(self.store.load(partitions)) {
                Ok(stored) => return Some(stored),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read stored offsets for the assignment; retrying");
                }
            }
            if self.shutdown.is_cancelled() {
                return None;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn assign(&self, consumer: &BaseConsumer<Self>, assignment: &mut TopicPartitionList) {
        let partitions: Vec<PartitionId> = {
            let mut state = self.state();
            assignment
                .elements()
                .iter()
                .map(|e| (state.intern(e.topic()), e.partition()))
                .collect()
        };
        let Some(stored) = self.stored_offsets(&partitions) else {
            return;
        };
        {
            let mut state = self.state();
            for id in &partitions {
                let expected = stored.get(id).copied();
                let offset = expected.map_or(Offset::Beginning, Offset::Offset);
                if let Err(e) = assignment.set_partition_offset(&id.0, id.1, offset) {
                    tracing::error!(topic = %id.0, partition = id.1, error = %e, "cannot set the start offset");
                }
                state.start_partition(id.clone(), expected);
            }
        }
        tracing::info!(
            partitions = partitions.len(),
            "partitions assigned; starting at stored offsets"
        );
        if let Err(e) = consumer.assign(assignment) {
            tracing::error!(error = %e, "assignment failed");
        }
        let paused = self.tables.paused_topics();
        pause_topics(consumer, &partitions, &paused);
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>) {
        {
            let mut state = self.state();
            let revoked: Vec<PartitionId> = state.partitions.keys().cloned().collect();
            for id in &revoked {
                state.batch.drop_partition(id);
            }
            state.partitions.clear();
            state.pending_seeks.clear();
        }
        tracing::info!("partitions revoked");
        if let Err(e) = consumer.unassign() {
            tracing::error!(error = %e, "unassignment failed");
        }
    }
}

impl ClientContext for LoaderContext {}

impl ConsumerContext for LoaderContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        error: RDKafkaRespErr,
        assignment: &mut TopicPartitionList,
    ) {
        match error {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                ::metrics::counter!(crate::metrics::REBALANCES, "kind" => "assign").increment(1);
                self.assign(consumer, assignment)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                ::metrics::counter!(crate::metrics::REBALANCES, "kind" => "revoke").increment(1);
                self.revoke(consumer)
            }
            other => tracing::error!(error = ?other, "rebalance failed"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::debug!(error = %e, "mirroring offsets to Kafka failed (informational only)");
        }
    }
}

fn pause_topics(
    consumer: &BaseConsumer<LoaderContext>,
    partitions: &[PartitionId],
    topics: &BTreeSet<String>,
) {
    let list = partition_list(
        partitions
            .iter()
            .filter(|(topic, _)| topics.contains(&**topic)),
    );
    if list.count() > 0
        && let Err(e) = consumer.pause(&list)
    {
        tracing::error!(error = %e, "cannot pause partitions of paused tables");
    }
}

fn partition_list<'a>(partitions: impl Iterator<Item = &'a PartitionId>) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (topic, partition) in partitions {
        list.add_partition(topic, *partition);
    }
    list
}

/// Everything the consumer thread needs.
pub struct SourceSetup {
    /// Client configuration (bootstrap servers and extra properties).
    pub client_config: ClientConfig,
    /// Consumer group.
    pub group_id: String,
    /// Subscription, a `^…` regular expression.
    pub topic_pattern: String,
    /// Batch limits.
    pub batch: BatchConfig,
    /// Stored offsets.
    pub store: OffsetStore,
    /// Table states (for paused topics).
    pub tables: Tables,
    /// The async runtime (for offset look-ups).
    pub runtime: Handle,
    /// Stops the thread.
    pub shutdown: CancellationToken,
}

/// Starts the consumer thread; batches arrive on the returned receiver, `commands` steer it.
pub fn start(
    setup: SourceSetup,
    commands: mpsc::Receiver<SourceCommand>,
) -> anyhow::Result<(
    tokio::sync::mpsc::Receiver<Batch>,
    std::thread::JoinHandle<()>,
)> {
    let (batch_sender, batches) = tokio::sync::mpsc::channel(setup.batch.queue_depth);
    let state = Arc::new(Mutex::new(PollState::default()));
    let context = LoaderContext {
        runtime: setup.runtime.clone(),
        store: setup.store.clone(),
        tables: setup.tables.clone(),
        state: Arc::clone(&state),
        shutdown: setup.shutdown.clone(),
    };
    let mut config = setup.client_config.clone();
    config
        .set("group.id", &setup.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .set("partition.assignment.strategy", "range,roundrobin");
    // librdkafka prefetches up to 64 MiB per partition by default, and with a full queue
    // waits a whole second (fetch.queue.backoff.ms) before fetching again: a small queue
    // refilled at once keeps memory low without starving the appliers. 2 MiB (about 10,000
    // events of a narrow table) rather than 4 took 8 - 10 MiB off the loader benchmark's
    // peak RSS; its throughput moved within the runs' noise.
    for (key, value) in [
        ("queued.max.messages.kbytes", "2048"),
        ("fetch.queue.backoff.ms", "10"),
    ] {
        if config.get(key).is_none() {
            config.set(key, value);
        }
    }
    let consumer: BaseConsumer<LoaderContext> = config
        .create_with_context(context)
        .map_err(|e| anyhow::anyhow!("cannot create the Kafka consumer: {e}"))?;
    consumer
        .subscribe(&[&setup.topic_pattern])
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", setup.topic_pattern))?;
    let worker = Worker {
        consumer,
        state,
        commands,
        batches: batch_sender,
        budget: Arc::new(Semaphore::new(setup.batch.max_in_flight_rows)),
        limits: setup.batch,
        shutdown: setup.shutdown,
        store: setup.store,
        runtime: setup.runtime,
    };
    let thread = std::thread::Builder::new()
        .name("kafka-consumer".to_owned())
        .spawn(move || worker.run())?;
    Ok((batches, thread))
}

struct Worker {
    consumer: BaseConsumer<LoaderContext>,
    state: Arc<Mutex<PollState>>,
    commands: mpsc::Receiver<SourceCommand>,
    batches: tokio::sync::mpsc::Sender<Batch>,
    /// Permits for `limits.max_in_flight_rows` events.
    budget: Arc<Semaphore>,
    limits: BatchConfig,
    shutdown: CancellationToken,
    store: OffsetStore,
    runtime: Handle,
}

impl Worker {
    fn state(&self) -> MutexGuard<'_, PollState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn run(self) {
        let max_wait = Duration::from_millis(self.limits.max_wait_ms);
        let mut first_record_at: Option<Instant> = None;
        while !self.shutdown.is_cancelled() {
            self.handle_commands();
            self.retry_seeks();
            let wait = first_record_at.map_or(Duration::from_millis(100), |at| {
                max_wait
                    .saturating_sub(at.elapsed())
                    .min(Duration::from_millis(100))
            });
            match self.consumer.poll(wait) {
                Some(Ok(message)) if self.take(&message) && first_record_at.is_none() => {
                    first_record_at = Some(Instant::now());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "Kafka consumer error"),
                None => {}
            }
            let full = {
                let state = self.state();
                state.batch.records.len() >= self.limits.max_rows
                    || state.batch.bytes >= self.limits.max_bytes
            };
            let due = first_record_at.is_some_and(|at| at.elapsed() >= max_wait);
            if full || due {
                first_record_at = None;
                let mut batch = std::mem::take(&mut self.state().batch);
                if batch.records.is_empty() {
                    continue;
                }
                let Some(budget) = self.reserve(batch.records.len()) else {
                    return;
                };
                batch.budget = Some(budget);
                if self.batches.blocking_send(batch).is_err() {
                    return;
                }
            }
        }
        tracing::info!("consumer thread stopping");
    }

    /// Waits until `rows` more events may be in flight (None on shutdown). Rebalance callbacks
    /// wait meanwhile, as they do while the batch queue is full.
    fn reserve(&self, rows: usize) -> Option<OwnedSemaphorePermit> {
        let rows = u32::try_from(rows.min(self.limits.max_in_flight_rows)).unwrap_or(u32::MAX);
        let budget = Arc::clone(&self.budget);
        self.runtime.block_on(async {
            tokio::select! {
                permit = budget.acquire_many_owned(rows) => permit.ok(),
                () = self.shutdown.cancelled() => None,
            }
        })
    }

    /// Adds a message to the open batch; false when it is dropped (partition not ours, paused
    /// or waiting for a seek).
    fn take(&self, message: &rdkafka::message::BorrowedMessage<'_>) -> bool {
        let mut state = self.state();
        let topic = state.intern(message.topic());
        let id = (topic, message.partition());
        if state.pending_seeks.contains_key(&id) {
            return false;
        }
        let Some(partition) = state.partitions.get(&id).copied() else {
            return false;
        };
        let record = Record {
            provenance: Provenance {
                topic: id.0.clone(),
                partition: id.1,
                offset: message.offset(),
            },
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
        };
        if state.batch.trace_parent.is_none() {
            state.batch.trace_parent = trace_context::parent_in(message.headers());
        }
        state
            .batch
            .push(record, partition.expected, partition.epoch);
        if let Some(p) = state.partitions.get_mut(&id) {
            p.expected = Some(message.offset() + 1);
        }
        true
    }

    fn handle_commands(&self) {
        while let Ok(command) = self.commands.try_recv() {
            match command {
                SourceCommand::Committed(offsets) => self.mirror_to_kafka(&offsets),
                SourceCommand::Rewind {
                    partition,
                    epoch,
                    offset,
                } => {
                    let mut state = self.state();
                    if state
                        .partitions
                        .get(&partition)
                        .is_some_and(|p| p.epoch == epoch)
                    {
                        tracing::info!(topic = %partition.0, partition = partition.1, ?offset, "re-reading from the stored offset");
                        state.start_partition(partition.clone(), offset);
                        state.pending_seeks.insert(partition, offset);
                    }
                }
                SourceCommand::Pause(topics) => self.pause(&topics),
                SourceCommand::Resume(topics) => self.resume(&topics),
            }
        }
    }

    fn mirror_to_kafka(&self, offsets: &[(PartitionId, i64)]) {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), next) in offsets {
            let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*next));
        }
        if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
            tracing::debug!(error = %e, "mirroring offsets to Kafka failed (informational only)");
        }
    }

    fn assigned_in(&self, topics: &[String]) -> Vec<PartitionId> {
        self.state()
            .partitions
            .keys()
            .filter(|(topic, _)| topics.iter().any(|t| **t == **topic))
            .cloned()
            .collect()
    }

    fn pause(&self, topics: &[String]) {
        let partitions = self.assigned_in(topics);
        {
            let mut state = self.state();
            for id in &partitions {
                state.batch.drop_partition(id);
            }
        }
        let set: BTreeSet<String> = topics.iter().cloned().collect();
        pause_topics(&self.consumer, &partitions, &set);
    }

    fn resume(&self, topics: &[String]) {
        let partitions = self.assigned_in(topics);
        let stored = match self.runtime.block_on(self.store.load(&partitions)) {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(error = %e, "cannot read stored offsets to resume; the partitions stay paused");
                return;
            }
        };
        {
            let mut state = self.state();
            for id in &partitions {
                let offset = stored.get(id).copied();
                state.start_partition(id.clone(), offset);
                state.pending_seeks.insert(id.clone(), offset);
            }
        }
        self.retry_seeks();
        if let Err(e) = self.consumer.resume(&partition_list(partitions.iter())) {
            tracing::error!(error = %e, "cannot resume partitions");
        }
    }

    /// Seeks that librdkafka refused (a partition not fetching yet) are tried again each round;
    /// records of those partitions are dropped until the seek lands.
    fn retry_seeks(&self) {
        let pending: Vec<(PartitionId, Option<i64>)> = self
            .state()
            .pending_seeks
            .iter()
            .map(|(id, offset)| (id.clone(), *offset))
            .collect();
        for (id, offset) in pending {
            let target = offset.map_or(Offset::Beginning, Offset::Offset);
            match self
                .consumer
                .seek(&id.0, id.1, target, Duration::from_secs(5))
            {
                Ok(()) => {
                    self.state().pending_seeks.remove(&id);
                }
                Err(e) => {
                    tracing::debug!(topic = %id.0, partition = id.1, error = %e, "seek not possible yet")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(topic: &str, partition: i32) -> PartitionId {
        (Arc::from(topic), partition)
    }

    #[test]
    fn partitions_are_spread_evenly_over_the_sessions_and_stay_where_they_went() {
        let mut assignment = SessionAssignment::new(2);
        let first: Vec<usize> = (0..4)
            .map(|p| assignment.session_of(&partition("cdc.clean.t", p)))
            .collect();
        let mut per_session = [0, 0];
        for session in &first {
            per_session[*session] += 1;
        }
        assert_eq!(per_session, [2, 2]);
        // Seen again, in another order, with a new partition between: the same sessions.
        let fifth = assignment.session_of(&partition("cdc.clean.u", 0));
        for p in (0..4).rev() {
            assert_eq!(
                assignment.session_of(&partition("cdc.clean.t", p)),
                first[p as usize]
            );
        }
        assert!(fifth < 2);
    }

    #[test]
    fn a_batch_is_split_by_the_sessions_of_its_partitions() {
        let mut assignment = SessionAssignment::new(3);
        let mut batch = Batch::default();
        for p in 0..3 {
            batch.partitions.insert(
                partition("cdc.clean.t", p),
                PartitionSpan {
                    expected: None,
                    next_offset: i64::from(p) + 1,
                    epoch: 0,
                },
            );
        }
        let parts = batch.split(&mut assignment);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|part| part.partitions.len() == 1));
        for (session, part) in parts.iter().enumerate() {
            let (id, _) = part.partitions.iter().next().unwrap();
            assert_eq!(assignment.session_of(id), session);
        }
    }

    #[test]
    fn no_sessions_means_one() {
        let mut assignment = SessionAssignment::new(0);
        assert_eq!(assignment.sessions(), 1);
        assert_eq!(assignment.session_of(&partition("t", 0)), 0);
    }
}

//! A work unit: the tables of one partition of the work topic, read by one loop with one
//! transactional producer. Each pass reads every table's new changes (and its snapshot
//! chunks), publishes the events and the tables' checkpoints, and commits them in one Kafka
//! transaction. Any failure ends the unit; it starts again from the committed checkpoints, so
//! nothing is lost and nothing is published twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use cdc_model::proto::{ChangeEvent, Operation, Row, Source, TableId, Value};
use cdc_model::{Lsn, SourcePosition, Topics};
use cdc_service_kit::ServiceState;
use cdc_service_kit::producer::PolledProducer;
use cdc_service_kit::topics::TopicCreator;
use prost::Message as _;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, Producer};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::change_reader::{ChangeReader, PageRequest};
use crate::checkpoint;
use crate::config::{ExtractorConfig, OnRetentionGap, SnapshotMode};
use crate::control::ControlReader;
use crate::discovery::{self, CaptureInstance, CapturedTable, Selection, table_name};
use crate::metrics as m;
use crate::proto::TableStatus;
use crate::registry::{Registry, SnapshotRequest};
use crate::source::{self, ChangeRow, Watermarks, end_of};
use crate::sql::{Connector, SqlClient};
use crate::table::{Snapshot, TableState, Window};

/// What every work unit of the process shares.
pub struct Shared {
    /// The configuration.
    pub config: Arc<ExtractorConfig>,
    /// Opens SQL Server connections.
    pub connector: Connector,
    /// Topic names.
    pub topics: Topics,
    /// Creates topics on first use.
    pub creator: Arc<TopicCreator>,
    /// Kafka settings of the cluster.
    pub client_config: ClientConfig,
    /// Status and requests shared with the control API.
    pub registry: Registry,
    /// The service's state (pause).
    pub state: ServiceState,
}

/// The work partition a table belongs to: a stable hash of its lower-cased name.
pub fn work_partition(table: &TableId, partitions: i32) -> i32 {
    let digest = Sha256::digest(table_name(table).to_lowercase().as_bytes());
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    let partitions = u64::try_from(partitions.max(1)).unwrap_or(1);
    i32::try_from(u64::from_be_bytes(first) % partitions).unwrap_or(0)
}

/// The transactional id of a work unit: stable, so that a new owner fences the old one.
pub fn transactional_id(group_id: &str, partition: i32) -> String {
    format!("{group_id}-work-{partition}")
}

type KafkaProducer = PolledProducer;

/// Runs the unit of work partition `partition` until `cancel` fires or it fails.
pub async fn run(
    shared: Arc<Shared>,
    partition: i32,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut unit = Unit::start(Arc::clone(&shared), partition).await?;
    let result = unit.run(&cancel).await;
    unit.withdraw();
    if unit.sink.in_transaction {
        let producer = Arc::clone(&unit.sink.producer);
        // Best effort: a fenced or broken producer cannot abort, and the broker aborts the
        // transaction anyway when the next owner starts or the timeout passes.
        let _ = tokio::task::spawn_blocking(move || {
            producer.abort_transaction(Duration::from_secs(10))
        })
        .await;
    }
    result
}

struct Database {
    /// Metadata, snapshot and watermark queries.
    client: SqlClient,
    /// Change-table reads, on a connection of their own so that one can run ahead.
    changes: ChangeReader,
    watermarks: Option<Watermarks>,
    /// The capture instances of the database at the last pass, to notice new ones at once.
    instances: Option<std::collections::BTreeSet<String>>,
}

/// The producing side of a unit.
struct Sink {
    producer: Arc<KafkaProducer>,
    topics: Topics,
    creator: Arc<TopicCreator>,
    server: String,
    raw_partitions: i32,
    published_schemas: HashSet<String>,
    pending_schemas: Vec<String>,
    ensured_topics: HashSet<String>,
    in_transaction: bool,
    events: usize,
    headers: OwnedHeaders,
}

struct Unit {
    shared: Arc<Shared>,
    partition: i32,
    databases: BTreeMap<String, Database>,
    tables: Vec<TableState>,
    sink: Sink,
    discovered_at: Instant,
    control: Arc<ControlReader>,
    /// The control topic's end when last looked at: where a new table starts reading it.
    control_end: i64,
    control_checked: Instant,
}

/// How often the control topic is looked at.
const CONTROL_INTERVAL: Duration = Duration::from_secs(1);

/// Runs a blocking call that fails with a message off the async threads.
async fn blocking_with_message<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| anyhow!("a Kafka call panicked: {e}"))?
        .map_err(|e| anyhow!(e))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn now_micros() -> i64 {
    now_ms() * 1_000
}

/// Runs a blocking Kafka call off the async threads.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| anyhow!("a Kafka call panicked: {e}"))?
        .map_err(anyhow::Error::from)
}

impl Unit {
    async fn start(shared: Arc<Shared>, partition: i32) -> anyhow::Result<Unit> {
        let config = &shared.config;
        let id = transactional_id(&config.work.group_id, partition);
        let producer_config = config.kafka.transactional_producer(
            &id,
            config.work.transaction_timeout_ms,
            &config.work.producer_properties,
        );
        let producer: Arc<KafkaProducer> = Arc::new(
            producer_config
                .create()
                .with_context(|| format!("cannot create the producer of work unit {partition}"))?,
        );
        // Fences the unit's previous owner and aborts whatever it left open, so that the
        // checkpoints read next are final.
        let fencing = Arc::clone(&producer);
        blocking(move || fencing.init_transactions(Duration::from_secs(60)))
            .await
            .with_context(|| {
                format!("work unit {partition}: cannot initialise transactions as {id}")
            })?;

        let mut databases = BTreeMap::new();
        let mut captured = Vec::new();
        for database in &config.source.databases {
            let (db, tables) = open_database(&shared, database, partition).await?;
            databases.insert(database.clone(), db);
            captured.extend(tables);
        }
        let keys: Vec<Vec<u8>> = captured
            .iter()
            .map(|t| checkpoint::key(shared.connector.server_name(), &t.id))
            .collect();
        let reader_config = shared.client_config.clone();
        let topic = shared.topics.extractor_offsets();
        let wanted = keys.clone();
        let stored = tokio::task::spawn_blocking(move || {
            checkpoint::read_committed(&reader_config, &topic, &wanted)
        })
        .await
        .map_err(|e| anyhow!("reading checkpoints panicked: {e}"))?
        .map_err(|e| anyhow!("work unit {partition}: {e}"))?;

        // The schemas and offsets topics exist: the work group creates them before any unit.
        let sink = Sink {
            producer,
            topics: shared.topics.clone(),
            creator: Arc::clone(&shared.creator),
            server: shared.connector.server_name().to_owned(),
            raw_partitions: config.work.raw_topic_partitions,
            published_schemas: HashSet::new(),
            pending_schemas: Vec::new(),
            ensured_topics: HashSet::new(),
            in_transaction: false,
            events: 0,
            headers: OwnedHeaders::new(),
        };
        let control = Arc::new(
            ControlReader::new(&shared.client_config, &shared.topics.control())
                .map_err(|e| anyhow!(e))?,
        );
        let reader = Arc::clone(&control);
        let control_end = blocking_with_message(move || reader.end()).await?;
        let mut unit = Unit {
            shared,
            partition,
            databases,
            tables: Vec::new(),
            sink,
            discovered_at: Instant::now(),
            control,
            control_end,
            control_checked: Instant::now(),
        };
        for (table, key) in captured.into_iter().zip(keys) {
            let state = unit.new_table(table, key.clone(), stored.get(&key)).await?;
            unit.tables.push(state);
        }
        tracing::info!(
            work_partition = partition,
            tables = unit.tables.len(),
            "work unit started"
        );
        unit.publish_status();
        Ok(unit)
    }

    /// The state of a table, from its checkpoint or, without one, new at the current end of
    /// the change stream (with an initial snapshot when configured).
    async fn new_table(
        &mut self,
        captured: CapturedTable,
        checkpoint_key: Vec<u8>,
        stored: Option<&crate::proto::TableCheckpoint>,
    ) -> anyhow::Result<TableState> {
        let name = table_name(&captured.id);
        let mut state = TableState {
            instance: captured
                .newest()
                .map(|i| i.name.clone())
                .unwrap_or_default(),
            captured,
            name: name.clone(),
            checkpoint_key,
            resume_after: end_of(Lsn::ZERO),
            snapshot: None,
            failed: None,
            dirty: false,
            stored: end_of(Lsn::ZERO),
            stored_at: Instant::now(),
            last_commit_micros: None,
            caught_up: false,
            snapshots_completed: 0,
            repair_keys: Vec::new(),
            control_offset: self.control_end,
        };
        match stored {
            Some(checkpoint) => {
                let position = checkpoint
                    .resume_after
                    .as_ref()
                    .ok_or_else(|| anyhow!("the checkpoint of {name} has no position"))?;
                state.resume_after = SourcePosition::from_proto(position)
                    .with_context(|| format!("the checkpoint of {name} is damaged"))?;
                state.stored = state.resume_after;
                state.instance = checkpoint.capture_instance.clone();
                state.snapshot = checkpoint.snapshot.clone().map(Snapshot::resume);
                state.repair_keys.clone_from(&checkpoint.repair_keys);
                state.control_offset = checkpoint.control_offset;
                tracing::info!(table = %name, position = %state.resume_after, instance = %state.instance, snapshot = state.snapshot.is_some(), "resuming table");
            }
            None => {
                let database = &state.captured.id.database;
                let db = self
                    .databases
                    .get_mut(database)
                    .ok_or_else(|| anyhow!("no connection to {database}"))?;
                let max = source::max_lsn(&mut db.client).await?.unwrap_or(Lsn::ZERO);
                // Before the capture job first runs the database has no maximum LSN; the
                // instance holds nothing below its start LSN either way, so the stream starts
                // there at the earliest (the snapshot covers what came before).
                let floor = state
                    .current()
                    .and_then(|instance| instance.start_lsn.decrement())
                    .unwrap_or(Lsn::ZERO);
                state.resume_after = end_of(max.max(floor));
                state.dirty = true;
                if self.shared.config.snapshot.mode == SnapshotMode::Initial {
                    state.snapshot = Some(Snapshot::start(&SnapshotRequest {
                        after_key: None,
                        up_to_key: None,
                    }));
                }
                tracing::info!(table = %name, position = %state.resume_after, snapshot = state.snapshot.is_some(), "new table");
            }
        }
        Ok(state)
    }

    async fn run(&mut self, cancel: &CancellationToken) -> anyhow::Result<()> {
        let poll = Duration::from_millis(self.shared.config.stream.poll_interval_ms);
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            if self.shared.state.pause_state().paused {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(poll) => continue,
                }
            }
            if self.discovered_at.elapsed()
                >= Duration::from_millis(self.shared.config.stream.discovery_interval_ms)
            {
                self.rediscover().await?;
            }
            let busy = self.pass().await?;
            self.publish_status();
            if !busy {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        }
    }

    /// One pass over every table; returns whether there was more to do right away.
    async fn pass(&mut self) -> anyhow::Result<bool> {
        let span = tracing::info_span!(
            "extractor.batch",
            work_partition = self.partition,
            events = tracing::field::Empty
        );
        self.sink.headers = cdc_service_kit::trace_context::inject(&span, OwnedHeaders::new());
        let mut max_lsns = HashMap::new();
        let mut instances_changed = false;
        for (name, db) in &mut self.databases {
            max_lsns.insert(name.clone(), source::max_lsn(&mut db.client).await?);
            // Read after the bound: an instance that starts at or before it is known before
            // any of its changes are read from the instance it replaces.
            let names = source::capture_instances(&mut db.client).await?;
            instances_changed |= db.instances.as_ref().is_some_and(|known| *known != names);
            db.instances = Some(names);
        }
        if instances_changed {
            self.rediscover().await?;
        }
        self.read_control().await?;
        let mut busy = false;
        for index in 0..self.tables.len() {
            let name = self.tables[index].name.clone();
            if let Some(request) = self.shared.registry.take_request(&name) {
                self.start_snapshot(index, &request).await?;
            }
            let table = &mut self.tables[index];
            if table.snapshot.is_none() && table.failed.is_none() && !table.repair_keys.is_empty() {
                let keys = std::mem::take(&mut table.repair_keys);
                tracing::info!(table = %table.name, keys = keys.len(), "reading chosen rows again (repair)");
                table.snapshot = Some(Snapshot::of_keys(keys));
                table.dirty = true;
            }
            if self.tables[index].failed.is_some() {
                continue;
            }
            let database = self.tables[index].id().database.clone();
            let Some(Some(to)) = max_lsns.get(&database).copied() else {
                continue;
            };
            busy |= self.step(index, to).await?;
            if self.sink.events >= self.shared.config.stream.max_batch_events {
                busy = true;
                break;
            }
        }
        self.write_checkpoints().await?;
        let events = self.sink.events;
        span.record("events", events);
        if self.sink.in_transaction {
            let started = Instant::now();
            let producer = Arc::clone(&self.sink.producer);
            blocking(move || producer.commit_transaction(Duration::from_secs(60)))
                .await
                .context("cannot commit the Kafka transaction")?;
            self.sink.in_transaction = false;
            self.sink
                .published_schemas
                .extend(self.sink.pending_schemas.drain(..));
            metrics::histogram!(m::COMMIT_DURATION).record(started.elapsed().as_secs_f64());
            metrics::histogram!(m::BATCH_EVENTS).record(events as f64);
            metrics::counter!(m::TRANSACTIONS).increment(1);
            let now = Instant::now();
            for table in &mut self.tables {
                if table.dirty {
                    table.dirty = false;
                    table.stored = table.resume_after;
                    table.stored_at = now;
                }
            }
        }
        self.sink.events = 0;
        Ok(busy)
    }

    /// Takes the commands of the control topic that this unit's tables have not seen yet:
    /// their keys wait in the tables' checkpoints until a snapshot of them starts.
    async fn read_control(&mut self) -> anyhow::Result<()> {
        if self.control_checked.elapsed() < CONTROL_INTERVAL {
            return Ok(());
        }
        self.control_checked = Instant::now();
        let reader = Arc::clone(&self.control);
        let end = blocking_with_message(move || reader.end()).await?;
        self.control_end = end;
        let Some(from) = self.tables.iter().map(|t| t.control_offset).min() else {
            return Ok(());
        };
        if from >= end {
            return Ok(());
        }
        let reader = Arc::clone(&self.control);
        let commands = blocking_with_message(move || reader.read(from, end)).await?;
        for (offset, command) in commands {
            let Some(cdc_model::proto::control_command::Command::ResnapshotKeys(request)) =
                command.command
            else {
                continue;
            };
            let Some(wanted) = request.table.as_ref() else {
                tracing::warn!(command_id = %command.command_id, offset, "a re-snapshot command without a table is skipped");
                continue;
            };
            for table in &mut self.tables {
                if table.control_offset > offset || !same_table(table.id(), wanted) {
                    continue;
                }
                let key_columns = table.current().map_or(0, |i| i.key_indexes.len());
                let (good, bad): (Vec<_>, Vec<_>) = request.keys.iter().cloned().partition(|k| {
                    k.values.len() == key_columns
                        && k.values
                            .iter()
                            .all(|v| v.kind.is_some() && !cdc_model::value::is_null(v))
                });
                if !bad.is_empty() {
                    tracing::warn!(table = %table.name, command_id = %command.command_id, skipped = bad.len(), key_columns, "keys of the wrong width or with NULLs are skipped");
                }
                tracing::info!(table = %table.name, command_id = %command.command_id, requested_by = %command.requested_by, keys = good.len(), "re-snapshot of chosen keys requested");
                table.repair_keys.extend(good);
                table.dirty = true;
            }
        }
        for table in &mut self.tables {
            if table.control_offset < end {
                table.control_offset = end;
                table.dirty = true;
            }
        }
        Ok(())
    }

    /// Reads one table: its new changes, then its snapshot. Returns whether it has more to
    /// read right away.
    async fn step(&mut self, index: usize, to: Lsn) -> anyhow::Result<bool> {
        let config = Arc::clone(&self.shared.config);
        let table = &mut self.tables[index];
        let Some(db) = self.databases.get_mut(&table.captured.id.database) else {
            return Ok(false);
        };
        let Some(current) = table.current().cloned() else {
            return match switch_after_drop(table) {
                Ok(()) => Ok(true),
                Err(reason) => {
                    fail(table, reason);
                    Ok(false)
                }
            };
        };
        let next = table.next_instance().cloned();
        let mut upper = to;
        if let Some(next) = &next
            && let Some(before) = next.start_lsn.decrement()
        {
            upper = upper.min(before);
        }

        let mut more = false;
        if end_of(upper) > table.resume_after {
            let started = Instant::now();
            let request = PageRequest {
                table: table.captured.id.clone(),
                instance: current.clone(),
                after: table.resume_after,
                upper,
                limit: config.stream.page_rows,
            };
            let page = db.changes.read(request.clone()).await?;
            metrics::histogram!(m::POLL_DURATION).record(started.elapsed().as_secs_f64());
            // A gap is only certain once the read is done: cleanup may have run meanwhile.
            let min = source::min_lsn(&mut db.client, &current.name).await?;
            if source::lost_before(&table.resume_after, min) {
                return self.retention_gap(index, min).await;
            }
            let rows = page.rows;
            let count = rows.len();
            let full = count >= config.stream.page_rows;
            if full && let Some(after) = last_whole_change(&rows) {
                // Most likely the next page wanted: read it while this one is published.
                db.changes.read_ahead(PageRequest { after, ..request });
            }
            let consumed = publish_changes(&mut self.sink, table, &current, rows).await?;
            if !full && consumed == count {
                table.resume_after = table.resume_after.max(end_of(page.upper));
                table.caught_up = true;
            } else {
                table.caught_up = false;
                more = true;
            }
        } else {
            table.caught_up = true;
        }

        if let Some(next) = next
            && to >= next.start_lsn
            && next
                .start_lsn
                .decrement()
                .is_none_or(|b| table.resume_after >= end_of(b))
        {
            tracing::info!(table = %table.name, from = %table.instance, to = %next.name, start_lsn = %next.start_lsn, "switching to the new capture instance");
            table.instance = next.name.clone();
            table.dirty = true;
            if let Some(snapshot) = &mut table.snapshot {
                snapshot.reread();
            }
            more = true;
        }

        if table.snapshot.is_some() {
            more |= advance_snapshot(&mut self.sink, db, table, &config).await?;
        }
        if table.resume_after > table.stored
            && table.stored_at.elapsed()
                >= Duration::from_millis(config.stream.heartbeat_interval_ms)
        {
            table.dirty = true;
        }
        Ok(more)
    }

    async fn retention_gap(&mut self, index: usize, min: Lsn) -> anyhow::Result<bool> {
        let policy = self.shared.config.stream.on_retention_gap;
        let table = &mut self.tables[index];
        metrics::counter!(m::ERRORS, "kind" => m::ERROR_RETENTION_GAP).increment(1);
        let lost = format!(
            "changes of {} after LSN {} up to {} were removed by CDC cleanup before they were read",
            table.name, table.resume_after.commit_lsn, min
        );
        match policy {
            OnRetentionGap::Fail => {
                fail(
                    table,
                    format!(
                        "{lost}; snapshot the table again (Extractor/StartSnapshot) or set \
                         stream.on_retention_gap = \"resnapshot\""
                    ),
                );
                Ok(false)
            }
            OnRetentionGap::Resnapshot => {
                tracing::warn!(table = %table.name, "{lost}; snapshotting the table again");
                restart_from(table, min);
                Ok(true)
            }
        }
    }

    async fn start_snapshot(
        &mut self,
        index: usize,
        request: &SnapshotRequest,
    ) -> anyhow::Result<()> {
        let table = &mut self.tables[index];
        if table.failed.take().is_some() {
            // A failed table (a retention gap) restarts from the oldest change still held.
            let Some(db) = self.databases.get_mut(&table.captured.id.database) else {
                return Ok(());
            };
            let min = source::min_lsn(&mut db.client, &table.instance).await?;
            if min > table.resume_after.commit_lsn {
                table.resume_after = min.decrement().map_or(end_of(Lsn::ZERO), end_of);
            }
        }
        tracing::info!(table = %table.name, "snapshot requested");
        table.snapshot = Some(Snapshot::start(request));
        table.dirty = true;
        Ok(())
    }

    async fn rediscover(&mut self) -> anyhow::Result<()> {
        self.discovered_at = Instant::now();
        let mut found = Vec::new();
        for (database, db) in &mut self.databases {
            found.extend(
                discover_unit_tables(&self.shared, &mut db.client, database, self.partition)
                    .await?,
            );
        }
        for captured in found {
            match self
                .tables
                .iter_mut()
                .find(|t| t.captured.id == captured.id)
            {
                Some(table) => {
                    if table.captured.instances.len() != captured.instances.len()
                        || table
                            .captured
                            .instances
                            .iter()
                            .zip(&captured.instances)
                            .any(|(a, b)| a.name != b.name)
                    {
                        tracing::info!(table = %table.name, instances = ?captured.instances.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), "capture instances changed");
                    }
                    table.captured = captured;
                }
                None => {
                    let key = checkpoint::key(self.shared.connector.server_name(), &captured.id);
                    let state = self.new_table(captured, key, None).await?;
                    self.tables.push(state);
                }
            }
        }
        Ok(())
    }

    async fn write_checkpoints(&mut self) -> anyhow::Result<()> {
        let topic = self.shared.topics.extractor_offsets();
        let written_at = now_ms();
        for table in &self.tables {
            if !table.dirty {
                continue;
            }
            let payload = table.checkpoint(written_at).encode_to_vec();
            self.sink.begin().await?;
            self.sink
                .send(&topic, &table.checkpoint_key, &payload, None)
                .await
                .with_context(|| format!("cannot write the checkpoint of {}", table.name))?;
        }
        Ok(())
    }

    fn publish_status(&self) {
        let now = now_micros();
        for table in &self.tables {
            let snapshot = table.snapshot.as_ref().map(|s| &s.progress);
            let lag = match (table.caught_up, table.last_commit_micros) {
                (false, Some(commit)) => (now - commit).max(0) as f64 / 1e6,
                _ => 0.0,
            };
            metrics::gauge!(m::LAG, "table" => table.name.clone()).set(lag);
            if let Some(progress) = snapshot {
                metrics::gauge!(m::SNAPSHOT_ROWS_DONE, "table" => table.name.clone())
                    .set(progress.rows_done as f64);
                metrics::gauge!(m::SNAPSHOT_ROWS_ESTIMATED, "table" => table.name.clone())
                    .set(progress.rows_estimated as f64);
            }
            let detail = match (&table.failed, &table.snapshot) {
                (Some(reason), _) => reason.clone(),
                (None, Some(s)) if !s.windows.is_empty() => format!(
                    "{} snapshot rows read, waiting for their watermark",
                    s.pending_rows()
                ),
                _ => String::new(),
            };
            self.shared.registry.publish(
                &table.name,
                TableStatus {
                    table: Some(table.id().clone()),
                    capture_instance: table.instance.clone(),
                    phase: table.phase() as i32,
                    position: table.resume_after.to_string(),
                    lag_seconds: lag,
                    snapshot_rows_done: snapshot.map_or(0, |p| p.rows_done),
                    snapshot_rows_estimated: snapshot.map_or(0, |p| p.rows_estimated),
                    detail,
                    work_partition: self.partition,
                    snapshots_completed: table.snapshots_completed,
                },
            );
        }
    }

    fn withdraw(&self) {
        let names: Vec<String> = self.tables.iter().map(|t| t.name.clone()).collect();
        self.shared.registry.withdraw(&names);
    }
}

/// Whether two table ids name the same table (names compare without regard to case, as SQL
/// Server's default collation compares them).
fn same_table(a: &TableId, b: &TableId) -> bool {
    a.database.eq_ignore_ascii_case(&b.database)
        && a.schema.eq_ignore_ascii_case(&b.schema)
        && a.table.eq_ignore_ascii_case(&b.table)
}

fn fail(table: &mut TableState, reason: String) {
    tracing::error!(table = %table.name, %reason, "table stopped");
    table.failed = Some(reason);
}

/// Continues a table whose stream lost history: from the oldest change still held, with a
/// snapshot of the whole table.
fn restart_from(table: &mut TableState, min: Lsn) {
    table.resume_after = min.decrement().map_or(end_of(Lsn::ZERO), end_of);
    table.snapshot = Some(Snapshot::start(&SnapshotRequest {
        after_key: None,
        up_to_key: None,
    }));
    table.dirty = true;
}

/// The capture instance being read was disabled: go on with the next one when nothing
/// between them was lost.
fn switch_after_drop(table: &mut TableState) -> Result<(), String> {
    let resume = table.resume_after;
    let next = table
        .captured
        .instances
        .iter()
        .find(|i| i.start_lsn.decrement().is_none_or(|b| resume >= end_of(b)));
    match next {
        Some(next) => {
            tracing::warn!(table = %table.name, from = %table.instance, to = %next.name, "capture instance dropped; going on with the next one");
            table.instance = next.name.clone();
            table.dirty = true;
            Ok(())
        }
        None => Err(format!(
            "capture instance {} was disabled before its changes after {} were read, and no \
             instance starts early enough to continue; snapshot the table again",
            table.instance, resume
        )),
    }
}

async fn open_database(
    shared: &Shared,
    database: &str,
    partition: i32,
) -> anyhow::Result<(Database, Vec<CapturedTable>)> {
    let mut client = shared.connector.connect(database).await?;
    let config = &shared.config;
    let tables = discover_unit_tables(shared, &mut client, database, partition).await?;
    let watermarks = match (config.snapshot.watermark_parts(), tables.is_empty()) {
        (Some(parts), false) => Some(
            Watermarks::prepare(
                &mut client,
                database,
                parts,
                config.snapshot.create_watermark_table,
            )
            .await?,
        ),
        _ => None,
    };
    Ok((
        Database {
            client,
            changes: ChangeReader::new(shared.connector.clone(), database),
            watermarks,
            instances: None,
        },
        tables,
    ))
}

async fn discover_unit_tables(
    shared: &Shared,
    client: &mut SqlClient,
    database: &str,
    partition: i32,
) -> anyhow::Result<Vec<CapturedTable>> {
    let config = &shared.config;
    let watermark = config.snapshot.watermark_parts().unwrap_or(("", ""));
    let selection = Selection {
        tables: &config.tables,
        watermark,
    };
    let tables = discovery::discover(client, database, &selection).await?;
    Ok(tables
        .into_iter()
        .filter(|t| work_partition(&t.id, config.work.partitions) == partition)
        .collect())
}

/// The position of the last change a page's rows make whole: every row but an update's
/// before image at the very end, which waits for the next page to bring its after image.
fn last_whole_change(rows: &[ChangeRow]) -> Option<SourcePosition> {
    let whole = match rows.last() {
        Some(last) if last.position.operation == 3 => rows.len() - 1,
        _ => rows.len(),
    };
    whole.checked_sub(1).map(|i| rows[i].position)
}

/// Publishes the events of `rows`; returns how many rows were consumed (all but what
/// [`last_whole_change`] leaves for the next page).
async fn publish_changes(
    sink: &mut Sink,
    table: &mut TableState,
    instance: &CaptureInstance,
    rows: Vec<ChangeRow>,
) -> anyhow::Result<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    // A table's raw topic is created with its first event, not before.
    let topic = sink.raw_topic(&table.captured.id).await?;
    let mut tally = Tally::default();
    let mut consumed = 0;
    let mut rows = rows.into_iter().peekable();
    while let Some(row) = rows.next() {
        let commit_time_micros = row.commit_time_micros;
        let (operation, before, after, position, used) = match row.position.operation {
            1 => (Operation::Delete, Some(row.values), None, row.position, 1),
            2 => (Operation::Insert, None, Some(row.values), row.position, 1),
            3 => match rows.next_if(|next| {
                next.position.operation == 4
                    && next.position.commit_lsn == row.position.commit_lsn
                    && next.position.seqval == row.position.seqval
            }) {
                Some(next) => (
                    Operation::Update,
                    Some(row.values),
                    Some(next.values),
                    next.position,
                    2,
                ),
                None if rows.peek().is_none() => break,
                None => {
                    return Err(anyhow!(
                        "{}: the before image of an update at {} is not followed by its after image",
                        table.name,
                        row.position
                    ));
                }
            },
            other => {
                return Err(anyhow!(
                    "{}: unexpected __$operation {other} at {}",
                    table.name,
                    row.position
                ));
            }
        };
        let image = after
            .as_ref()
            .or(before.as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let key = instance.key_of(image);
        let key_bytes = cdc_model::key::encode(&table.captured.id, &key)?;
        if let Some(snapshot) = &mut table.snapshot {
            snapshot.forget(&key_bytes);
            if let Some(before) = &before {
                let old_key = instance.key_of(before);
                snapshot.forget(&cdc_model::key::encode(&table.captured.id, &old_key)?);
            }
        }
        let event = ChangeEvent {
            source: Some(Source {
                server: sink.server.clone(),
                table: Some(table.captured.id.clone()),
                capture_instance: instance.name.clone(),
            }),
            position: Some(position.to_proto()),
            op: operation as i32,
            key,
            before: before.map(|values| Row { values }),
            after: after.map(|values| Row { values }),
            schema_id: instance.schema_id.clone(),
            commit_time_micros: commit_time_micros.unwrap_or(0),
        };
        let bytes = sink
            .emit(&table.name, instance, &topic, &key_bytes, &event)
            .await?;
        tally.add(operation, bytes);
        table.resume_after = position;
        table.dirty = true;
        if commit_time_micros.is_some() {
            table.last_commit_micros = commit_time_micros;
        }
        consumed += used;
    }
    tally.record(&table.name);
    Ok(consumed)
}

/// Events and bytes published for one table, counted as they are sent and added to the
/// metrics once: a labelled counter costs a registry lookup and two label strings.
#[derive(Default)]
struct Tally {
    /// Events per [`Operation`], indexed by its protobuf number.
    events: [u64; 5],
    bytes: u64,
}

impl Tally {
    fn add(&mut self, operation: Operation, bytes: usize) {
        if let Some(count) = self.events.get_mut(operation as usize) {
            *count += 1;
        }
        self.bytes += bytes as u64;
    }

    fn record(&self, table: &str) {
        for (operation, label) in [
            (Operation::Insert, "insert"),
            (Operation::Update, "update"),
            (Operation::Delete, "delete"),
            (Operation::Read, "read"),
        ] {
            let count = self.events[operation as usize];
            if count > 0 {
                metrics::counter!(m::EVENTS, "table" => table.to_owned(), "op" => label)
                    .increment(count);
            }
        }
        if self.bytes > 0 {
            metrics::counter!(m::BYTES, "table" => table.to_owned()).increment(self.bytes);
        }
    }
}

/// Moves a table's snapshot on: publishes the chunks whose watermark the stream has passed,
/// finds the commit LSNs of new watermarks, and reads ahead. Returns whether there is more
/// to do right away.
async fn advance_snapshot(
    sink: &mut Sink,
    db: &mut Database,
    table: &mut TableState,
    config: &ExtractorConfig,
) -> anyhow::Result<bool> {
    let Some(instance) = table.current().cloned() else {
        return Ok(false);
    };
    let Some(watermarks) = db.watermarks.clone() else {
        return Err(anyhow!(
            "{}: no watermark table to snapshot with",
            table.name
        ));
    };
    let Some(snapshot) = table.snapshot.as_mut() else {
        return Ok(false);
    };
    // Publish what the stream has passed.
    while let Some(window) = snapshot.windows.front() {
        let Some(high) = window.high else { break };
        if table.resume_after < end_of(high) {
            break;
        }
        let Some(window) = snapshot.windows.pop_front() else {
            break;
        };
        let position = SourcePosition::snapshot(high);
        // Named (and created) with the window's first row: an empty table gets no topic yet.
        let mut topic: Option<String> = None;
        let mut tally = Tally::default();
        for (key, values) in window.rows.into_iter().flatten() {
            if topic.is_none() {
                topic = Some(sink.raw_topic(&table.captured.id).await?);
            }
            let key_bytes = cdc_model::key::encode(&table.captured.id, &key)?;
            // A key asked for that the table does not hold: as of the watermark the row does
            // not exist, so it is published as a delete (the key, NULL elsewhere).
            let (op, before, after) = match values {
                Some(values) => (Operation::Read, None, Some(Row { values })),
                None => {
                    let mut values = vec![cdc_model::value::null(); instance.schema.columns.len()];
                    for (&index, value) in instance.key_indexes.iter().zip(&key) {
                        values[index] = value.clone();
                    }
                    (Operation::Delete, Some(Row { values }), None)
                }
            };
            let event = ChangeEvent {
                source: Some(Source {
                    server: sink.server.clone(),
                    table: Some(table.captured.id.clone()),
                    capture_instance: instance.name.clone(),
                }),
                position: Some(position.to_proto()),
                op: op as i32,
                key,
                before,
                after,
                schema_id: instance.schema_id.clone(),
                commit_time_micros: 0,
            };
            let bytes = sink
                .emit(
                    &table.name,
                    &instance,
                    topic.as_deref().unwrap_or_default(),
                    &key_bytes,
                    &event,
                )
                .await?;
            tally.add(op, bytes);
            snapshot.progress.rows_done += 1;
        }
        tally.record(&table.name);
        if snapshot.is_of_keys() {
            let taken = window.keys_taken.min(snapshot.progress.keys.len());
            snapshot.progress.keys.drain(..taken);
            snapshot.keys_read -= taken.min(snapshot.keys_read);
        } else {
            snapshot.progress.last_key = window.last_key;
        }
        table.dirty = true;
        if window.last {
            tracing::info!(table = %table.name, rows = snapshot.progress.rows_done, "snapshot done");
            snapshot_done_metrics(&table.name, snapshot.progress.rows_done);
            table.snapshot = None;
            table.snapshots_completed += 1;
            return Ok(true);
        }
    }
    // Watermarks the capture job has read by now.
    for window in snapshot.windows.iter_mut() {
        if window.high.is_some() {
            continue;
        }
        match watermarks.find(&mut db.client, window.token).await? {
            Some(lsn) => window.high = Some(lsn),
            None => break,
        }
    }
    if !snapshot.counted {
        snapshot.progress.rows_estimated =
            source::count(&mut db.client, &table.captured.id).await?;
        snapshot.counted = true;
    }
    if snapshot.is_of_keys() {
        let read = read_chosen_keys(db, &watermarks, table, &instance, config).await?;
        return Ok(read
            || table
                .snapshot
                .as_ref()
                .is_some_and(|s| s.windows.front().is_some_and(|w| w.high.is_some())));
    }
    // Read ahead, within the memory bound.
    let mut read = false;
    while !snapshot.exhausted
        && snapshot.pending_rows() + config.snapshot.chunk_rows
            <= config
                .snapshot
                .max_pending_rows
                .max(config.snapshot.chunk_rows)
    {
        let up_to = (!snapshot.progress.up_to_key.is_empty())
            .then_some(snapshot.progress.up_to_key.as_slice());
        let rows = source::chunk(
            &mut db.client,
            &table.captured.id,
            &instance,
            snapshot.read_key.as_deref(),
            up_to,
            config.snapshot.chunk_rows,
        )
        .await?;
        let last = rows.len() < config.snapshot.chunk_rows;
        snapshot.exhausted = last;
        if rows.is_empty() {
            match snapshot.windows.back_mut() {
                Some(window) => window.last = true,
                None => {
                    tracing::info!(table = %table.name, rows = snapshot.progress.rows_done, "snapshot done");
                    snapshot_done_metrics(&table.name, snapshot.progress.rows_done);
                    table.snapshot = None;
                    table.snapshots_completed += 1;
                    table.dirty = true;
                    return Ok(true);
                }
            }
            break;
        }
        let token = watermarks.write(&mut db.client, &table.captured.id).await?;
        let mut window = Window {
            token,
            high: None,
            rows: Vec::with_capacity(rows.len()),
            index: HashMap::with_capacity(rows.len()),
            last_key: Vec::new(),
            last,
            keys_taken: 0,
        };
        for values in rows {
            let key = instance.key_of(&values);
            window.index.insert(
                cdc_model::key::encode(&table.captured.id, &key)?,
                window.rows.len(),
            );
            window.last_key.clone_from(&key);
            window.rows.push(Some((key, Some(values))));
        }
        snapshot.read_key = Some(window.last_key.clone());
        snapshot.windows.push_back(window);
        read = true;
    }
    Ok(read || snapshot.windows.front().is_some_and(|w| w.high.is_some()))
}

/// Reads ahead a snapshot of chosen keys: the next keys' rows in one query each chunk, then a
/// watermark; keys not found wait in the window as deletes.
async fn read_chosen_keys(
    db: &mut Database,
    watermarks: &Watermarks,
    table: &mut TableState,
    instance: &CaptureInstance,
    config: &ExtractorConfig,
) -> anyhow::Result<bool> {
    let Some(snapshot) = table.snapshot.as_mut() else {
        return Ok(false);
    };
    // SQL Server takes at most 2100 parameters in one statement.
    let per_chunk = (2_000 / instance.key_indexes.len().max(1))
        .min(config.snapshot.chunk_rows)
        .max(1);
    let mut read = false;
    while !snapshot.exhausted
        && snapshot.pending_rows() + per_chunk
            <= config
                .snapshot
                .max_pending_rows
                .max(config.snapshot.chunk_rows)
    {
        let remaining = &snapshot.progress.keys[snapshot.keys_read..];
        let keys: Vec<Vec<Value>> = remaining
            .iter()
            .take(per_chunk)
            .map(|k| k.values.clone())
            .collect();
        if keys.is_empty() {
            snapshot.exhausted = true;
            break;
        }
        let rows =
            source::rows_by_keys(&mut db.client, &table.captured.id, instance, &keys).await?;
        let token = watermarks.write(&mut db.client, &table.captured.id).await?;
        let taken = keys.len();
        let last = snapshot.keys_read + taken >= snapshot.progress.keys.len();
        let mut window = Window {
            token,
            high: None,
            rows: Vec::with_capacity(taken),
            index: HashMap::with_capacity(taken),
            last_key: Vec::new(),
            last,
            keys_taken: taken,
        };
        for values in rows {
            let key = instance.key_of(&values);
            window.index.insert(
                cdc_model::key::encode(&table.captured.id, &key)?,
                window.rows.len(),
            );
            window.rows.push(Some((key, Some(values))));
        }
        for key in keys {
            let encoded = cdc_model::key::encode(&table.captured.id, &key)?;
            if !window.index.contains_key(&encoded) {
                window.index.insert(encoded, window.rows.len());
                window.rows.push(Some((key, None)));
            }
        }
        snapshot.keys_read += taken;
        snapshot.exhausted = last;
        snapshot.windows.push_back(window);
        read = true;
    }
    Ok(read)
}

impl Sink {
    async fn begin(&mut self) -> anyhow::Result<()> {
        if !self.in_transaction {
            let producer = Arc::clone(&self.producer);
            blocking(move || producer.begin_transaction())
                .await
                .context("cannot begin a Kafka transaction")?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Creates a raw table topic on its first use in this unit.
    async fn ensure_raw_topic(&mut self, topic: &str) -> anyhow::Result<()> {
        if self.ensured_topics.contains(topic) {
            return Ok(());
        }
        let creator = Arc::clone(&self.creator);
        let name = topic.to_owned();
        let partitions = self.raw_partitions;
        tokio::task::spawn_blocking(move || creator.ensure_partitions(&name, partitions, false))
            .await
            .map_err(|e| anyhow!("creating a topic panicked: {e}"))?
            .map_err(|e| anyhow!(e))?;
        self.ensured_topics.insert(topic.to_owned());
        Ok(())
    }

    /// The raw topic of a table, created when this unit has not used it yet.
    async fn raw_topic(&mut self, table: &TableId) -> anyhow::Result<String> {
        let topic = self.topics.raw(table)?;
        self.ensure_raw_topic(&topic).await?;
        Ok(topic)
    }

    /// Sends one event to `topic` (from [`Sink::raw_topic`]), its schema first when this
    /// unit has not published it yet; returns the payload's size. The caller counts it in
    /// the metrics.
    async fn emit(
        &mut self,
        table: &str,
        instance: &CaptureInstance,
        topic: &str,
        key: &[u8],
        event: &ChangeEvent,
    ) -> anyhow::Result<usize> {
        self.begin().await?;
        let id = &instance.schema_id;
        if !self.published_schemas.contains(id) && !self.pending_schemas.contains(id) {
            let topic = self.topics.schemas();
            let value = instance.schema.encode_to_vec();
            self.send(&topic, id.as_bytes(), &value, None)
                .await
                .with_context(|| format!("cannot publish schema {id} of {table}"))?;
            self.pending_schemas.push(id.clone());
        }
        let payload = event.encode_to_vec();
        let headers = self.headers.clone();
        self.send(topic, key, &payload, Some(headers))
            .await
            .with_context(|| format!("cannot send an event of {table} to {topic}"))?;
        self.events += 1;
        Ok(payload.len())
    }

    /// Sends one record into the open transaction, waiting while the local queue is full.
    async fn send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<(), KafkaError> {
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(topic).key(key).payload(payload);
        record.headers = headers;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
}

/// A finished snapshot shows its rows done as its estimate too: the estimate was the table's
/// size when it started, which a key range or concurrent deletes never reach, and a gauge left
/// below it would look like a stalled snapshot.
fn snapshot_done_metrics(table: &str, rows_done: u64) {
    let rows = rows_done as f64;
    metrics::gauge!(m::SNAPSHOT_ROWS_DONE, "table" => table.to_owned()).set(rows);
    metrics::gauge!(m::SNAPSHOT_ROWS_ESTIMATED, "table" => table.to_owned()).set(rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seqval: u8, operation: i32) -> ChangeRow {
        let mut bytes = [0_u8; 10];
        bytes[9] = seqval;
        ChangeRow {
            position: SourcePosition {
                commit_lsn: Lsn::new([0, 0, 0, 0, 0, 0, 0, 0, 0, 7]),
                command_id: 1,
                seqval: Lsn::new(bytes),
                operation,
            },
            values: Vec::new(),
            commit_time_micros: None,
        }
    }

    #[test]
    fn a_page_is_whole_up_to_its_last_row_unless_that_is_a_before_image() {
        let page = [row(1, 2), row(2, 3), row(2, 4)];
        assert_eq!(last_whole_change(&page), Some(page[2].position));
        let split = [row(1, 2), row(2, 1), row(3, 3)];
        assert_eq!(
            last_whole_change(&split),
            Some(split[1].position),
            "the before image waits for its after image"
        );
        assert_eq!(last_whole_change(&[row(1, 3)]), None);
        assert_eq!(last_whole_change(&[]), None);
    }
}

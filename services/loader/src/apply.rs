//! The applier: turns a batch into one PostgreSQL transaction that evolves target tables,
//! applies every table's coalesced events set-based, and stores the consumed offsets — so a
//! batch takes effect exactly once or not at all.
//!
//! Delivery: batches may arrive again after a crash or a rebalance (at-least-once from Kafka);
//! the offsets compare-and-set inside the transaction makes a re-delivered batch a no-op, and
//! the row guard (`_cdc_position`) makes any event that is older than a row's current version
//! a no-op too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdc_model::proto::{Operation, TableSchema};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Row};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{DeleteMode, RetryConfig};
use crate::dead_letters::{DeadLetter, DeadLetterSink};
use crate::event::{Change, Event, Provenance};
use crate::metrics;
use crate::naming::TargetTable;
use crate::prepare::{PreparedBatch, Preparer, TableGroup, copy_rows, letter, partition_of};
use crate::source::{PartitionSpan, SourceCommand};
use crate::statements::{self, StageSpec, TableStatements};
use crate::store::{Connector, FailureKind, PartitionId, classify, offset_row, sqlstate};
use crate::tables::{Applied, Tables};
use crate::target::{self, ColumnDef, Layout, PgType, TableDef};

mod replay;

pub use replay::ReplayResult;

/// Fixed settings of the applier.
#[derive(Debug, Clone)]
pub struct ApplySettings {
    /// Schema of the loader's own tables.
    pub state_schema: String,
    /// Consumer group (offsets are stored per group).
    pub group: String,
    /// Delete mode and dropped-column policy.
    pub layout: Layout,
    /// Back-off on transient failures.
    pub retry: RetryConfig,
}

/// Everything the applier works with.
pub struct Applier {
    settings: ApplySettings,
    connector: Connector,
    /// The open PostgreSQL session, if any. The connection and what is known about its session
    /// (stage tables, definitions) live and die together: a stage table recorded for a session
    /// that is gone would make the next batch fail with "relation does not exist".
    live: Option<LiveSession>,
    preparer: Preparer,
    tables: Tables,
    dead_letters: DeadLetterSink,
    source: Option<mpsc::Sender<SourceCommand>>,
    shutdown: CancellationToken,
}

/// One PostgreSQL connection and what its session holds.
struct LiveSession {
    connection: PgConnection,
    session: Session,
}

/// What lives as long as one PostgreSQL session: stage tables and cached table definitions.
#[derive(Default)]
struct Session {
    stages: HashMap<(TargetTable, String), Stage>,
    created_stages: HashSet<String>,
    pending_stages: Vec<String>,
    definitions: HashMap<TargetTable, TableDef>,
}

#[derive(Clone)]
struct Stage {
    name: String,
    statements: TableStatements,
}

/// Why an attempt failed as a whole.
enum AttemptError {
    /// PostgreSQL or Kafka trouble: retry the batch after a back-off.
    Transient(String),
}

impl From<sqlx::Error> for AttemptError {
    fn from(error: sqlx::Error) -> Self {
        AttemptError::Transient(error.to_string())
    }
}

/// What one attempt did, for the book-keeping after COMMIT.
#[derive(Default)]
struct Outcome {
    applied: Vec<(TargetTable, Applied)>,
    dead: Vec<DeadLetter>,
    stale: Vec<(PartitionId, u64, Option<i64>)>,
    stored: Vec<(PartitionId, i64)>,
    ddl_statements: Vec<(TargetTable, usize)>,
}

impl Applier {
    /// An applier; `source` receives commit and rewind notices (none when replaying only).
    pub fn new(
        settings: ApplySettings,
        connector: Connector,
        preparer: Preparer,
        tables: Tables,
        dead_letters: DeadLetterSink,
        source: Option<mpsc::Sender<SourceCommand>>,
        shutdown: CancellationToken,
    ) -> Applier {
        Applier {
            settings,
            connector,
            live: None,
            preparer,
            tables,
            dead_letters,
            source,
            shutdown,
        }
    }

    /// Names this applier's PostgreSQL session `cdc-loader/<index>` (visible in
    /// `pg_stat_activity`).
    pub fn named(mut self, index: usize) -> Applier {
        self.connector = self
            .connector
            .with_application_name(&format!("cdc-loader/{index}"));
        self
    }

    /// The table set this applier reports to.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Applies a prepared batch, retrying transient failures with back-off until it commits or
    /// the service stops (then the batch is left for the next owner: nothing was committed).
    pub async fn apply(&mut self, batch: PreparedBatch) -> bool {
        let span = tracing::info_span!(
            "loader.batch",
            records = batch.records,
            tables = batch.prepared.groups.len()
        );
        // The batch's span continues the trace of its first traced record (extractor, then
        // transformer), so one trace follows a batch through the pipeline.
        cdc_service_kit::trace_context::adopt_parent(&span, batch.trace_parent.as_ref());
        self.apply_in_span(batch).instrument(span).await
    }

    async fn apply_in_span(&mut self, batch: PreparedBatch) -> bool {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(self.settings.retry.initial_backoff_ms);
        let mut sent_letters: HashSet<Provenance> = HashSet::new();
        loop {
            match self.attempt(&batch, &mut sent_letters).await {
                Ok(outcome) => {
                    self.after_commit(outcome, batch.records, started);
                    return true;
                }
                Err(AttemptError::Transient(reason)) => {
                    ::metrics::counter!(metrics::RETRIES).increment(1);
                    tracing::warn!(error = %reason, backoff_ms = backoff.as_millis() as u64, "batch failed; retrying");
                    // The failed attempt dropped its connection, and with it the session.
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.shutdown.cancelled() => return false,
                    }
                    backoff = (backoff * 2)
                        .min(Duration::from_millis(self.settings.retry.max_backoff_ms));
                }
            }
        }
    }

    /// The session, taken out for one transaction (put back after it commits; a failed
    /// transaction drops it, which also ends its temporary tables). A new connection starts
    /// with an empty session.
    async fn take_session(&mut self) -> Result<LiveSession, AttemptError> {
        if let Some(live) = self.live.take() {
            return Ok(live);
        }
        let mut connection = self.connector.connect().await?;
        crate::store::bootstrap(&mut connection, &self.settings.state_schema).await?;
        Ok(LiveSession {
            connection,
            session: Session::default(),
        })
    }

    /// Puts the session back after its transaction committed: the stage tables that transaction
    /// created now exist for the session.
    fn put_back(&mut self, mut live: LiveSession) {
        let pending = std::mem::take(&mut live.session.pending_stages);
        live.session.created_stages.extend(pending);
        self.live = Some(live);
    }

    /// One try at the whole batch in one transaction.
    async fn attempt(
        &mut self,
        batch: &PreparedBatch,
        sent_letters: &mut HashSet<Provenance>,
    ) -> Result<Outcome, AttemptError> {
        let (prepared, spans) = (&batch.prepared, &batch.partitions);
        let mut outcome = Outcome::default();
        let mut excluded: HashSet<PartitionId> = HashSet::new();
        let settings = self.settings.clone();
        let tables = self.tables.clone();
        let mut live = self.take_session().await?;
        let LiveSession {
            connection,
            session,
        } = &mut live;
        let result = async {
            sqlx::query("BEGIN").execute(&mut *connection).await?;
            outcome.stale = check_offsets(connection, &settings, spans).await?;
            excluded.extend(outcome.stale.iter().map(|(id, _, _)| id.clone()));
            for (target, group) in &prepared.groups {
                if let Some(reason) = tables.paused_reason(target) {
                    tracing::debug!(table = %target, %reason, "table paused; its partitions wait");
                    excluded.extend(partitions_of(&group.events));
                    continue;
                }
                let unaffected;
                let group = if !excluded.is_empty() && group.events.iter().any(|e| excluded.contains(&partition_of(&e.record))) {
                    unaffected = group.without_partitions(&excluded);
                    &unaffected
                } else {
                    group
                };
                let mut group_dead = Vec::new();
                match apply_table(connection, session, &settings, target, group, &mut group_dead).await? {
                    TableResult::Applied { ddl } => {
                        outcome.ddl_statements.push((target.clone(), ddl));
                        let dead_keys: HashSet<&Provenance> = group_dead.iter().map(|d| &d.record.provenance).collect();
                        let mut applied = Applied::default();
                        for event in group.events.iter().filter(|e| !dead_keys.contains(&e.record.provenance)) {
                            applied.add(event.operation, event.position, event.commit_time_micros, &event.schema_id);
                        }
                        outcome.applied.push((target.clone(), applied));
                        outcome.dead.extend(group_dead);
                    }
                    TableResult::Paused(reason) => {
                        tracing::warn!(table = %target, %reason, "table paused");
                        let topics = tables.pause(target, &reason);
                        ::metrics::gauge!(metrics::TABLE_PAUSED, "table" => metrics::table_label(target)).set(1.0);
                        excluded.extend(partitions_of(&group.events));
                        outcome.applied.push((target.clone(), Applied::default()));
                        if let Some(source) = &self.source {
                            let _ = source.send(SourceCommand::Pause(topics));
                        }
                    }
                }
            }
            let undecodable = prepared
                .dead
                .iter()
                .filter(|d| !excluded.contains(&partition_of(&d.record)))
                .cloned();
            outcome.dead.extend(undecodable);
            let fresh: Vec<DeadLetter> = outcome
                .dead
                .iter()
                .filter(|d| !sent_letters.contains(&d.record.provenance))
                .cloned()
                .collect();
            if !fresh.is_empty() {
                self.dead_letters.send(&fresh).await.map_err(AttemptError::Transient)?;
                sent_letters.extend(fresh.into_iter().map(|d| d.record.provenance));
            }
            outcome.stored = spans
                .iter()
                .filter(|(id, _)| !excluded.contains(*id))
                .map(|(id, span)| (id.clone(), span.next_offset))
                .collect();
            store_offsets(connection, &settings, &outcome.stored).await?;
            let commit_started = Instant::now();
            sqlx::query("COMMIT").execute(&mut *connection).await?;
            ::metrics::histogram!(metrics::COMMIT_DURATION).record(commit_started.elapsed().as_secs_f64());
            Ok::<(), AttemptError>(())
        }
        .await;
        result?;
        self.put_back(live);
        Ok(outcome)
    }

    fn after_commit(&self, outcome: Outcome, records: usize, started: Instant) {
        ::metrics::histogram!(metrics::BATCH_ROWS).record(records as f64);
        ::metrics::histogram!(metrics::APPLY_DURATION).record(started.elapsed().as_secs_f64());
        for (target, applied) in &outcome.applied {
            let label = metrics::table_label(target);
            for operation in [
                Operation::Insert,
                Operation::Update,
                Operation::Delete,
                Operation::Read,
            ] {
                let count = applied.count(operation);
                if count > 0 {
                    ::metrics::counter!(metrics::ROWS_APPLIED, "table" => label.clone(), "operation" => operation_label(operation))
                        .increment(count);
                }
            }
            self.tables.applied(target, applied);
            if let Some(newest) = applied.latest_commit_micros() {
                ::metrics::gauge!(metrics::LAG, "table" => label.clone()).set(lag_seconds(newest));
            }
        }
        for (target, count) in &outcome.ddl_statements {
            if *count > 0 {
                ::metrics::counter!(metrics::SCHEMA_CHANGES, "table" => metrics::table_label(target)).increment(*count as u64);
            }
        }
        for letter in &outcome.dead {
            let label = letter
                .target
                .as_ref()
                .map_or_else(|| metrics::UNKNOWN_TABLE.to_owned(), metrics::table_label);
            if let Some(target) = &letter.target {
                self.tables.dead_lettered(target, 1);
            }
            ::metrics::counter!(metrics::DEAD_LETTERS, "table" => label).increment(1);
            tracing::warn!(
                table = %letter.source_table, topic = %letter.record.provenance.topic,
                partition = letter.record.provenance.partition, offset = letter.record.provenance.offset,
                code = %letter.code, reason = %letter.reason, "event sent to the dead-letter topic"
            );
        }
        if let Some(source) = &self.source {
            if !outcome.stored.is_empty() {
                let _ = source.send(SourceCommand::Committed(outcome.stored));
            }
            for (partition, epoch, offset) in outcome.stale {
                tracing::info!(topic = %partition.0, partition = partition.1, stored = ?offset, "the stored offset is not where this instance left it (another instance moved it, or PostgreSQL lost the last commits in a crash); re-reading from it");
                let _ = source.send(SourceCommand::Rewind {
                    partition,
                    epoch,
                    offset,
                });
            }
        }
    }

    /// Removes delete tombstones older than the retention.
    pub async fn prune_tombstones(&mut self, retention_hours: u64) -> Result<u64, String> {
        let sql = statements::prune_tombstones(&self.settings.state_schema);
        let mut live = self
            .take_session()
            .await
            .map_err(|AttemptError::Transient(e)| e)?;
        // On error `live` is dropped: the connection and its session end together.
        let pruned = sqlx::query(AssertSqlSafe(sql))
            .bind(i32::try_from(retention_hours).unwrap_or(i32::MAX))
            .execute(&mut live.connection)
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| e.to_string())?;
        self.put_back(live);
        Ok(pruned)
    }
}

fn operation_label(operation: Operation) -> &'static str {
    match operation {
        Operation::Insert => "insert",
        Operation::Update => "update",
        Operation::Delete => "delete",
        Operation::Read | Operation::Unspecified => "read",
    }
}

fn lag_seconds(commit_micros: i64) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    (now - commit_micros).max(0) as f64 / 1e6
}

fn partitions_of(events: &[Event]) -> HashSet<PartitionId> {
    events.iter().map(|e| partition_of(&e.record)).collect()
}

/// Locks the batch's partitions' stored offsets and returns those that are not what the batch
/// expects (another instance moved them): `(partition, batch epoch, stored offset)`.
async fn check_offsets(
    connection: &mut PgConnection,
    settings: &ApplySettings,
    spans: &BTreeMap<PartitionId, PartitionSpan>,
) -> Result<Vec<(PartitionId, u64, Option<i64>)>, sqlx::Error> {
    if spans.is_empty() {
        return Ok(Vec::new());
    }
    let (topics, partitions): (Vec<String>, Vec<i32>) =
        spans.keys().map(|(t, p)| (t.to_string(), *p)).unzip();
    let rows = sqlx::query(AssertSqlSafe(statements::lock_offsets(
        &settings.state_schema,
    )))
    .bind(&settings.group)
    .bind(topics)
    .bind(partitions)
    .fetch_all(&mut *connection)
    .await?;
    let stored: HashMap<PartitionId, i64> =
        rows.iter().map(offset_row).collect::<Result<_, _>>()?;
    Ok(spans
        .iter()
        .filter(|(id, span)| stored.get(*id).copied() != span.expected)
        .map(|(id, span)| (id.clone(), span.epoch, stored.get(id).copied()))
        .collect())
}

async fn store_offsets(
    connection: &mut PgConnection,
    settings: &ApplySettings,
    offsets: &[(PartitionId, i64)],
) -> Result<(), sqlx::Error> {
    if offsets.is_empty() {
        return Ok(());
    }
    let topics: Vec<&str> = offsets.iter().map(|((t, _), _)| &**t).collect();
    let partitions: Vec<i32> = offsets.iter().map(|((_, p), _)| *p).collect();
    let next: Vec<i64> = offsets.iter().map(|(_, n)| *n).collect();
    sqlx::query(AssertSqlSafe(statements::store_offsets(
        &settings.state_schema,
    )))
    .bind(&settings.group)
    .bind(topics)
    .bind(partitions)
    .bind(next)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

enum TableResult {
    Applied { ddl: usize },
    Paused(String),
}

/// Evolves one target table for its schemas and applies its events; rows PostgreSQL refuses
/// go to `dead`. Runs inside the batch's transaction, in a savepoint of its own.
async fn apply_table(
    connection: &mut PgConnection,
    session: &mut Session,
    settings: &ApplySettings,
    target: &TargetTable,
    group: &TableGroup,
    dead: &mut Vec<DeadLetter>,
) -> Result<TableResult, AttemptError> {
    if group.events.is_empty() {
        return Ok(TableResult::Applied { ddl: 0 });
    }
    sqlx::query("SAVEPOINT cdc_table")
        .execute(&mut *connection)
        .await?;
    let outcome = evolve_and_apply(connection, session, settings, target, group, dead).await;
    match outcome {
        Ok(ddl) => {
            sqlx::query("RELEASE SAVEPOINT cdc_table")
                .execute(&mut *connection)
                .await?;
            Ok(TableResult::Applied { ddl })
        }
        Err(TableFailure::Paused(reason)) => {
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT cdc_table; RELEASE SAVEPOINT cdc_table")
                .execute(&mut *connection)
                .await?;
            session.definitions.remove(target);
            dead.clear();
            Ok(TableResult::Paused(reason))
        }
        Err(TableFailure::Transient(e)) => Err(AttemptError::Transient(e)),
    }
}

enum TableFailure {
    Paused(String),
    Transient(String),
}

fn table_failure(error: &sqlx::Error, doing: &str) -> TableFailure {
    match classify(error) {
        FailureKind::Transient => TableFailure::Transient(error.to_string()),
        FailureKind::Data | FailureKind::Table => {
            TableFailure::Paused(format!("{doing} failed ({}): {error}", sqlstate(error)))
        }
    }
}

async fn evolve_and_apply(
    connection: &mut PgConnection,
    session: &mut Session,
    settings: &ApplySettings,
    target: &TargetTable,
    group: &TableGroup,
    dead: &mut Vec<DeadLetter>,
) -> Result<usize, TableFailure> {
    let mut ddl = 0;
    // Schemas in the order their events arrived, so a table evolves the way the source did.
    let mut order: Vec<&str> = Vec::new();
    for event in &group.events {
        if !order.contains(&event.schema_id.as_str()) {
            order.push(&event.schema_id);
        }
    }
    for schema_id in &order {
        let Some(schema) = group.schemas.get(*schema_id) else {
            continue;
        };
        ddl += evolve(connection, session, settings, target, schema).await?;
    }
    for schema_id in order {
        let Some(schema) = group.schemas.get(schema_id) else {
            continue;
        };
        let events: Vec<&Event> = group
            .events
            .iter()
            .filter(|e| e.schema_id == schema_id)
            .collect();
        let stage = stage_for(session, settings, target, schema_id, schema);
        apply_isolating(
            connection,
            session,
            &stage,
            schema,
            (&events, group.copy_data.get(schema_id).map(Vec::as_slice)),
            target,
            &group.source_table,
            dead,
        )
        .await?;
    }
    Ok(ddl)
}

/// Makes the target table ready for `schema`; returns how many DDL statements ran.
async fn evolve(
    connection: &mut PgConnection,
    session: &mut Session,
    settings: &ApplySettings,
    target: &TargetTable,
    schema: &TableSchema,
) -> Result<usize, TableFailure> {
    if let Some(known) = session.definitions.get(target)
        && target::plan(target, Some(known), schema, settings.layout).is_ok_and(|p| p.is_empty())
    {
        return Ok(0);
    }
    sqlx::query(statements::LOCK_TABLE_DDL)
        .bind(target.to_string())
        .execute(&mut *connection)
        .await
        .map_err(|e| table_failure(&e, "locking the table for DDL"))?;
    let current = describe(connection, target)
        .await
        .map_err(|e| table_failure(&e, "reading the table's definition"))?;
    let plan = target::plan(target, current.as_ref(), schema, settings.layout).map_err(
        |incompatible| {
            TableFailure::Paused(format!("schema {}: {incompatible}", schema_id_of(schema)))
        },
    )?;
    if current.is_none() {
        let create_schema = format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            crate::naming::quote_ident(&target.schema)
        );
        sqlx::query(AssertSqlSafe(create_schema))
            .execute(&mut *connection)
            .await
            .map_err(|e| table_failure(&e, "creating the target schema"))?;
    }
    for statement in &plan {
        tracing::info!(table = %target, ddl = %statement, "evolving the target table");
        sqlx::query(AssertSqlSafe(statement.clone()))
            .execute(&mut *connection)
            .await
            .map_err(|e| table_failure(&e, "evolving the table"))?;
    }
    let evolved = if plan.is_empty() {
        current
    } else {
        describe(connection, target)
            .await
            .map_err(|e| table_failure(&e, "reading the table's definition"))?
    };
    if let Some(definition) = evolved {
        session.definitions.insert(target.clone(), definition);
    }
    Ok(plan.len())
}

fn schema_id_of(schema: &TableSchema) -> String {
    cdc_model::schema::fingerprint(schema)
}

/// The target table's definition, or `None` when it does not exist.
async fn describe(
    connection: &mut PgConnection,
    target: &TargetTable,
) -> Result<Option<TableDef>, sqlx::Error> {
    let rows = sqlx::query(statements::DESCRIBE_TABLE)
        .bind(&target.schema)
        .bind(&target.name)
        .fetch_all(&mut *connection)
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut definition = TableDef::default();
    let mut key: Vec<(i32, String)> = Vec::new();
    for row in &rows {
        let name: String = row.try_get(0)?;
        let type_name: String = row.try_get(1)?;
        let modifier: i32 = row.try_get(2)?;
        let nullable: bool = row.try_get(3)?;
        let key_position: Option<i32> = row.try_get(4)?;
        if let Some(position) = key_position {
            key.push((position, name.clone()));
        }
        definition.columns.push(ColumnDef {
            name,
            pg_type: PgType::from_catalog(&type_name, modifier),
            nullable,
        });
    }
    key.sort();
    definition.primary_key = key.into_iter().map(|(_, name)| name).collect();
    Ok(Some(definition))
}

fn stage_for(
    session: &mut Session,
    settings: &ApplySettings,
    target: &TargetTable,
    schema_id: &str,
    schema: &TableSchema,
) -> Stage {
    let next = session.stages.len();
    session
        .stages
        .entry((target.clone(), schema_id.to_owned()))
        .or_insert_with(|| {
            let name = format!("_cdc_stage_{next}");
            let statements = TableStatements::new(&StageSpec {
                target,
                schema,
                stage: &name,
                state_schema: &settings.state_schema,
                soft_delete: settings.layout.delete_mode == DeleteMode::Soft,
            });
            Stage { name, statements }
        })
        .clone()
}

/// Applies `events` through the stage; when PostgreSQL refuses the data, finds the refused rows
/// by bisection (each half in a savepoint) and sends only those to `dead`.
#[allow(clippy::too_many_arguments)]
async fn apply_isolating(
    connection: &mut PgConnection,
    session: &mut Session,
    stage: &Stage,
    schema: &TableSchema,
    (events, precomputed): (&[&Event], Option<&[u8]>),
    target: &TargetTable,
    source_table: &str,
    dead: &mut Vec<DeadLetter>,
) -> Result<(), TableFailure> {
    if !session.created_stages.contains(&stage.name)
        && !session.pending_stages.contains(&stage.name)
    {
        sqlx::query(AssertSqlSafe(stage.statements.create_stage.clone()))
            .execute(&mut *connection)
            .await
            .map_err(|e| table_failure(&e, "creating the stage table"))?;
        session.pending_stages.push(stage.name.clone());
    }
    let mut work: Vec<&[&Event]> = vec![events];
    let mut first = true;
    while let Some(slice) = work.pop() {
        run(connection, "SAVEPOINT cdc_rows").await?;
        // The first attempt sends the COPY data prepared ahead; bisection encodes its halves.
        let data = if first { precomputed } else { None };
        let attempt = apply_rows(connection, stage, schema, (slice, data), target, !first).await;
        first = false;
        match attempt {
            Ok(()) => run(connection, "RELEASE SAVEPOINT cdc_rows").await?,
            Err(e) if classify(&e) == FailureKind::Data => {
                run(connection, ROLLBACK_ROWS).await?;
                if let [only] = slice {
                    dead.push(letter(
                        only.record.clone(),
                        source_table,
                        Some(target),
                        format!("PostgreSQL refused the row: {e}"),
                        &sqlstate(&e),
                    ));
                } else {
                    let (left, right) = slice.split_at(slice.len() / 2);
                    work.push(right);
                    work.push(left);
                }
            }
            Err(e) => {
                run(connection, ROLLBACK_ROWS).await?;
                return Err(table_failure(&e, "applying rows"));
            }
        }
    }
    Ok(())
}

/// Undoes the rows of one attempt and forgets the savepoint (names are reused in bisection).
const ROLLBACK_ROWS: &str = "ROLLBACK TO SAVEPOINT cdc_rows; RELEASE SAVEPOINT cdc_rows";

async fn run(connection: &mut PgConnection, sql: &str) -> Result<(), TableFailure> {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut *connection)
        .await
        .map(drop)
        .map_err(|e| TableFailure::Transient(e.to_string()))
}

/// COPY the rows into the stage, then upsert and delete set-based.
async fn apply_rows(
    connection: &mut PgConnection,
    stage: &Stage,
    schema: &TableSchema,
    (events, prepared_data): (&[&Event], Option<&[u8]>),
    target: &TargetTable,
    clear_stage_first: bool,
) -> Result<(), sqlx::Error> {
    if clear_stage_first {
        let clear = format!("DELETE FROM {}", crate::naming::quote_ident(&stage.name));
        sqlx::query(AssertSqlSafe(clear))
            .execute(&mut *connection)
            .await?;
    }
    let encoded;
    let buffer = match prepared_data {
        Some(data) => data,
        None => {
            encoded = copy_rows(schema, events);
            &encoded
        }
    };
    let mut copy = connection.copy_in_raw(&stage.statements.copy).await?;
    if let Err(e) = copy.send(buffer).await {
        let _ = copy.abort("refused").await;
        return Err(e);
    }
    copy.finish().await?;
    let target_name = target.to_string();
    sqlx::query(AssertSqlSafe(stage.statements.upsert.clone()))
        .bind(&target_name)
        .execute(&mut *connection)
        .await?;
    let has_deletes = events.iter().any(|e| e.change == Change::Delete);
    if has_deletes {
        if let Some(delete) = &stage.statements.delete {
            sqlx::query(AssertSqlSafe(delete.clone()))
                .execute(&mut *connection)
                .await?;
        }
        if let Some(tombstones) = &stage.statements.tombstones {
            sqlx::query(AssertSqlSafe(tombstones.clone()))
                .bind(&target_name)
                .execute(&mut *connection)
                .await?;
        }
    }
    Ok(())
}

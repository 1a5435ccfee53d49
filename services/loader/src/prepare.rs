//! Preparing a batch for the applier, off its critical path: decode every record, find its
//! target table, coalesce per row (newest position wins), fetch the schemas, check row images
//! against them, and encode the stage rows (binary COPY) — while PostgreSQL applies the
//! previous batch.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cdc_model::proto::TableSchema;
use tokio_util::sync::CancellationToken;

use crate::copy_binary::{Refusal, StageRows, Tail};
use crate::dead_letters::DeadLetter;
use crate::event::{self, Change, Event, Record};
use crate::naming::{TableNameTemplate, TargetTable, check_identifier, source_name};
use crate::source::{Batch, PartitionSpan};
use crate::store::PartitionId;
use crate::tables::Tables;
use cdc_service_kit::schema_registry::{SchemaError, SchemaRegistry};

/// Events of one target table in a batch, coalesced, with their schemas.
pub struct TableGroup {
    /// `database.schema.table` of the source.
    pub source_table: String,
    /// The winning event of each row, in arrival order.
    pub events: Vec<Event>,
    /// The schemas the events name.
    pub schemas: BTreeMap<String, Arc<TableSchema>>,
    /// COPY data of every event, per schema id (computed once, used by the first attempt).
    pub copy_data: BTreeMap<String, Vec<u8>>,
}

impl TableGroup {
    /// The same group without the events consumed from `partitions` (their COPY data is
    /// recomputed when needed).
    pub fn without_partitions(&self, partitions: &HashSet<PartitionId>) -> TableGroup {
        let events: Vec<Event> = self
            .events
            .iter()
            .filter(|e| !partitions.contains(&partition_of(&e.record)))
            .cloned()
            .collect();
        TableGroup {
            source_table: self.source_table.clone(),
            events,
            schemas: self.schemas.clone(),
            copy_data: BTreeMap::new(),
        }
    }
}

/// The partition a record came from.
pub fn partition_of(record: &Record) -> PartitionId {
    (record.provenance.topic.clone(), record.provenance.partition)
}

/// A batch ready to apply.
pub struct Prepared {
    /// Events by target table.
    pub groups: BTreeMap<TargetTable, TableGroup>,
    /// Records that cannot be applied at all (undecodable, unknown schema, bad image).
    pub dead: Vec<DeadLetter>,
}

/// A prepared batch with the offsets it covers.
pub struct PreparedBatch {
    /// The events.
    pub prepared: Prepared,
    /// The partitions' spans.
    pub partitions: BTreeMap<PartitionId, PartitionSpan>,
    /// How many records it holds.
    pub records: usize,
    /// The trace its span continues (that of its first traced record).
    pub trace_parent: Option<cdc_service_kit::trace_context::Context>,
    /// Its share of the in-flight budget, given back when it is dropped.
    pub budget: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Turns batches into prepared batches.
#[derive(Clone)]
pub struct Preparer {
    target_schema: String,
    table_names: TableNameTemplate,
    schemas: SchemaRegistry,
    tables: Tables,
}

impl Preparer {
    /// A preparer writing to `target_schema` under `table_names`.
    pub fn new(
        target_schema: String,
        table_names: TableNameTemplate,
        schemas: SchemaRegistry,
        tables: Tables,
    ) -> Preparer {
        Preparer {
            target_schema,
            table_names,
            schemas,
            tables,
        }
    }

    /// Prepares a batch, waiting out an unreachable schemas topic (None on shutdown).
    pub async fn prepare_batch(
        &self,
        batch: Batch,
        shutdown: &CancellationToken,
    ) -> Option<PreparedBatch> {
        let records = batch.records.len();
        let mut backoff = Duration::from_millis(200);
        let mut pending = batch.records;
        loop {
            match self.prepare(pending).await {
                Ok(prepared) => {
                    return Some(PreparedBatch {
                        prepared,
                        partitions: batch.partitions,
                        records,
                        trace_parent: batch.trace_parent,
                        budget: batch.budget,
                    });
                }
                Err((records, error)) => {
                    tracing::warn!(error = %error, "cannot prepare a batch; retrying");
                    pending = records;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return None,
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// The target table of a source table.
    pub fn target_of(&self, table: &cdc_model::proto::TableId) -> TargetTable {
        TargetTable {
            schema: self.target_schema.clone(),
            name: self.table_names.render(table),
        }
    }

    /// Decodes, groups by target table, coalesces per row, fetches schemas and encodes. On a
    /// transient schema failure the records come back for another try.
    pub async fn prepare(
        &self,
        records: Vec<Record>,
    ) -> Result<Prepared, (Vec<Record>, SchemaError)> {
        let mut dead = Vec::new();
        let mut by_table: BTreeMap<TargetTable, Vec<Event>> = BTreeMap::new();
        // Consecutive events nearly always share a table and a topic: names are resolved and
        // progress observed once per run of them, not per event.
        let mut run: Option<Run> = None;
        for record in records {
            let event = match event::decode(record) {
                Ok(event) => event,
                Err((record, why)) => {
                    dead.push(letter(record, "", None, why.0, ""));
                    continue;
                }
            };
            let same_run = run.as_ref().is_some_and(|r| {
                r.table == event.table && Arc::ptr_eq(&r.topic, &event.record.provenance.topic)
            });
            if !same_run {
                if let Some(finished) = run.take() {
                    finished.flush(&mut by_table, &mut dead);
                }
                run = Some(self.start_run(&event));
            }
            if let Some(current) = run.as_mut() {
                current.events.push(event);
            }
        }
        if let Some(finished) = run.take() {
            finished.flush(&mut by_table, &mut dead);
        }
        let mut groups = BTreeMap::new();
        let mut failed: Option<SchemaError> = None;
        for (target, events) in by_table {
            let winners = coalesced(events);
            match self.with_schemas(&target, winners, &mut dead).await {
                Ok(group) => {
                    groups.insert(target, group);
                }
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
        match failed {
            None => Ok(Prepared { groups, dead }),
            Some(error) => {
                let mut records: Vec<Record> = dead.into_iter().map(|d| d.record).collect();
                for group in groups.into_values() {
                    records.extend(group.events.into_iter().map(|e| e.record));
                }
                Err((records, error))
            }
        }
    }

    fn start_run(&self, first: &Event) -> Run {
        let target = self.target_of(&first.table);
        let source_table = source_name(&first.table);
        let target = match check_identifier(&target.name) {
            Ok(()) => {
                self.tables
                    .observe(&target, &source_table, &first.record.provenance.topic);
                Ok(target)
            }
            Err(reason) => Err(format!("target table name: {reason}")),
        };
        Run {
            table: first.table.clone(),
            topic: Arc::clone(&first.record.provenance.topic),
            source_table,
            target,
            events: Vec::new(),
        }
    }

    async fn with_schemas(
        &self,
        target: &TargetTable,
        events: Vec<Event>,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<TableGroup, SchemaError> {
        let source_table = events
            .first()
            .map(|e| source_name(&e.table))
            .unwrap_or_default();
        let mut schemas = BTreeMap::new();
        // Ids the registry read the whole topic for and did not find: asked once per batch.
        let mut missing: HashSet<String> = HashSet::new();
        let mut stages: BTreeMap<String, StageRows> = BTreeMap::new();
        let capacity = events.iter().map(stage_bytes).sum();
        let mut kept = Vec::with_capacity(events.len());
        for event in events {
            let known =
                schemas.contains_key(&event.schema_id) || missing.contains(&event.schema_id);
            if !known {
                match self.schemas.get(&event.schema_id).await {
                    Ok(schema) => {
                        schemas.insert(event.schema_id.clone(), schema);
                    }
                    Err(SchemaError::Missing { .. }) => {
                        missing.insert(event.schema_id.clone());
                    }
                    Err(e @ SchemaError::Unavailable { .. }) => return Err(e),
                }
            }
            let refusal = match schemas.get(&event.schema_id) {
                None => Some((format!("schema {} is not published", event.schema_id), "")),
                Some(schema) => image_mismatch(&event, schema)
                    .map(|reason| (reason, ""))
                    .or_else(|| {
                        let rows = stages
                            .entry(event.schema_id.clone())
                            .or_insert_with(|| StageRows::new(schema, capacity));
                        stage_row(rows, &event)
                            .err()
                            .map(|refusal| (refusal.to_string(), refusal.code))
                    }),
            };
            if let Some((reason, code)) = refusal {
                dead.push(letter(
                    event.record,
                    &source_table,
                    Some(target),
                    reason,
                    code,
                ));
                continue;
            }
            kept.push(event);
        }
        let copy_data = stages
            .into_iter()
            .map(|(id, rows)| (id, rows.finish()))
            .collect();
        Ok(TableGroup {
            source_table,
            events: kept,
            schemas,
            copy_data,
        })
    }
}

/// Consecutive events of one table from one topic.
struct Run {
    table: cdc_model::proto::TableId,
    topic: Arc<str>,
    source_table: String,
    target: Result<TargetTable, String>,
    events: Vec<Event>,
}

impl Run {
    fn flush(self, by_table: &mut BTreeMap<TargetTable, Vec<Event>>, dead: &mut Vec<DeadLetter>) {
        match self.target {
            Ok(target) => by_table.entry(target).or_default().extend(self.events),
            Err(reason) => dead.extend(
                self.events
                    .into_iter()
                    .map(|e| letter(e.record, &self.source_table, None, reason.clone(), "")),
            ),
        }
    }
}

/// The winners of [`event::coalesce`], moved out of `events`, in arrival order.
fn coalesced(mut events: Vec<Event>) -> Vec<Event> {
    let winners = event::coalesce(&events);
    let mut keep = vec![false; events.len()];
    for index in winners {
        keep[index] = true;
    }
    let mut flags = keep.into_iter();
    events.retain(|_| flags.next().unwrap_or(false));
    events
}

/// A dead letter for `record`, meant for `target`.
pub fn letter(
    record: Record,
    source_table: &str,
    target: Option<&TargetTable>,
    reason: String,
    code: &str,
) -> DeadLetter {
    DeadLetter {
        record,
        source_table: source_table.to_owned(),
        target: target.cloned(),
        reason,
        code: code.to_owned(),
    }
}

fn image_mismatch(event: &Event, schema: &TableSchema) -> Option<String> {
    let columns = schema.columns.len();
    match &event.image {
        Some(image) if image.len() != columns => Some(format!(
            "the row image has {} values; schema {} has {columns} columns",
            image.len(),
            event.schema_id
        )),
        _ if event.key_values.len() != schema.key_columns.len() => Some(format!(
            "the event has {} key values; schema {} has {} key columns",
            event.key_values.len(),
            event.schema_id,
            schema.key_columns.len()
        )),
        _ => None,
    }
}

/// The stage rows of `events` as binary COPY data: the schema's columns, then position, commit
/// time, whether it is a delete, and the encoded row key. Used again for parts of a batch after
/// the first attempt; an event refused here was dead-lettered when its batch was prepared, and
/// should one be refused anyway it is written as a row PostgreSQL refuses, never skipped.
pub fn copy_rows(schema: &TableSchema, events: &[&Event]) -> Vec<u8> {
    let mut rows = StageRows::new(schema, events.iter().map(|e| stage_bytes(e)).sum());
    for event in events {
        if stage_row(&mut rows, event).is_err() {
            rows.push_refused();
        }
    }
    rows.finish()
}

/// About how many bytes an event's stage row takes: binary values are about as long as the
/// record they come from, plus the stage's own columns.
fn stage_bytes(event: &Event) -> usize {
    event.record.size() + 64
}

/// Appends the stage row of one event: its image, or for a delete without one its key values
/// in their columns and NULL elsewhere.
fn stage_row(rows: &mut StageRows, event: &Event) -> Result<(), Refusal> {
    let position = event.position.to_ordered_bytes();
    let tail = Tail {
        position: &position,
        commit_time_micros: event.commit_time_micros,
        delete: event.change == Change::Delete,
        row_key: &event.row_key,
    };
    match &event.image {
        Some(image) => rows.push(image.iter(), &tail),
        None => rows.push_key_only(&event.key_values, &tail),
    }
}

//! What the loader knows about each target table: progress for status and metrics, whether it
//! is paused and why, and which topics carry its events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use cdc_model::SourcePosition;
use cdc_model::proto::Operation;

use crate::naming::TargetTable;
use crate::proto::TableStatus;

/// Progress of one table.
#[derive(Debug, Clone, Default)]
struct TableProgress {
    source_table: String,
    inserts: u64,
    updates: u64,
    deletes: u64,
    reads: u64,
    dead_letters: u64,
    last_position: Option<SourcePosition>,
    last_commit_micros: Option<i64>,
    schema_id: String,
    paused_reason: Option<String>,
    topics: BTreeSet<String>,
}

/// Every table's progress, shared by the applier, the consumer thread and the control API.
#[derive(Clone, Default)]
pub struct Tables {
    inner: Arc<Mutex<BTreeMap<TargetTable, TableProgress>>>,
}

/// What one batch applied to a table, as its progress counts it: summed while the batch is
/// applied, so that no event's details outlive the transaction.
#[derive(Debug, Default)]
pub struct Applied {
    /// Events applied, per [`Operation`], indexed by its protobuf number.
    counts: [u64; 5],
    /// The newest event's position, commit time and schema.
    newest: Option<(SourcePosition, i64, String)>,
    /// The latest commit time of any event, microseconds since the epoch.
    latest_commit_micros: Option<i64>,
}

impl Applied {
    /// Counts one event.
    pub fn add(
        &mut self,
        operation: Operation,
        position: SourcePosition,
        commit_time_micros: i64,
        schema_id: &str,
    ) {
        if let Some(count) = self.counts.get_mut(operation as usize) {
            *count += 1;
        }
        self.latest_commit_micros = Some(
            self.latest_commit_micros
                .map_or(commit_time_micros, |t| t.max(commit_time_micros)),
        );
        match &mut self.newest {
            Some((newest, commit, schema)) if position > *newest => {
                *newest = position;
                *commit = commit_time_micros;
                // Reuses the string's buffer: the schema rarely changes.
                schema_id.clone_into(schema);
            }
            Some(_) => {}
            None => self.newest = Some((position, commit_time_micros, schema_id.to_owned())),
        }
    }

    /// Events of `operation` counted.
    pub fn count(&self, operation: Operation) -> u64 {
        self.counts.get(operation as usize).copied().unwrap_or(0)
    }

    /// The latest commit time counted.
    pub fn latest_commit_micros(&self) -> Option<i64> {
        self.latest_commit_micros
    }
}

impl Tables {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<TargetTable, TableProgress>> {
        // A panic elsewhere while holding the lock leaves counters that are still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `topic` carries events of `table` (from `source_table`).
    pub fn observe(&self, table: &TargetTable, source_table: &str, topic: &str) {
        let mut tables = self.lock();
        let progress = tables.entry(table.clone()).or_default();
        if progress.source_table.is_empty() {
            progress.source_table = source_table.to_owned();
        }
        if !progress.topics.contains(topic) {
            progress.topics.insert(topic.to_owned());
        }
    }

    /// Counts applied events.
    pub fn applied(&self, table: &TargetTable, applied: &Applied) {
        let mut tables = self.lock();
        let progress = tables.entry(table.clone()).or_default();
        progress.inserts += applied.count(Operation::Insert);
        progress.updates += applied.count(Operation::Update);
        progress.deletes += applied.count(Operation::Delete);
        progress.reads += applied.count(Operation::Read) + applied.count(Operation::Unspecified);
        if let Some((position, commit_time_micros, schema_id)) = &applied.newest
            && progress.last_position.is_none_or(|last| *position > last)
        {
            progress.last_position = Some(*position);
            progress.last_commit_micros = Some(*commit_time_micros);
            schema_id.clone_into(&mut progress.schema_id);
        }
    }

    /// Counts dead letters.
    pub fn dead_lettered(&self, table: &TargetTable, count: u64) {
        self.lock().entry(table.clone()).or_default().dead_letters += count;
    }

    /// Pauses a table; returns the topics that carry it.
    pub fn pause(&self, table: &TargetTable, reason: &str) -> Vec<String> {
        let mut tables = self.lock();
        let progress = tables.entry(table.clone()).or_default();
        progress.paused_reason = Some(reason.to_owned());
        progress.topics.iter().cloned().collect()
    }

    /// Resumes a table; returns the topics that carry it, or `None` when it was not paused.
    pub fn resume(&self, table: &TargetTable) -> Option<Vec<String>> {
        let mut tables = self.lock();
        let progress = tables.get_mut(table)?;
        progress.paused_reason.take()?;
        Some(progress.topics.iter().cloned().collect())
    }

    /// Why `table` is paused, if it is.
    pub fn paused_reason(&self, table: &TargetTable) -> Option<String> {
        self.lock().get(table).and_then(|p| p.paused_reason.clone())
    }

    /// Topics of every paused table.
    pub fn paused_topics(&self) -> BTreeSet<String> {
        self.lock()
            .values()
            .filter(|p| p.paused_reason.is_some())
            .flat_map(|p| p.topics.iter().cloned())
            .collect()
    }

    /// Whether the loader knows `table`.
    pub fn knows(&self, table: &TargetTable) -> bool {
        self.lock().contains_key(table)
    }

    /// Status of one table.
    pub fn status(&self, table: &TargetTable) -> Option<TableStatus> {
        self.lock().get(table).map(|p| to_status(table, p))
    }

    /// Status of every table, by name.
    pub fn all(&self) -> Vec<TableStatus> {
        self.lock().iter().map(|(t, p)| to_status(t, p)).collect()
    }

    /// Lag of every table, for the metrics gauge.
    pub fn lags(&self) -> Vec<(TargetTable, f64, bool)> {
        self.lock()
            .iter()
            .map(|(t, p)| (t.clone(), lag_seconds(p), p.paused_reason.is_some()))
            .collect()
    }
}

fn lag_seconds(progress: &TableProgress) -> f64 {
    let now_micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    progress
        .last_commit_micros
        .map_or(0.0, |commit| (now_micros - commit).max(0) as f64 / 1e6)
}

fn to_status(table: &TargetTable, progress: &TableProgress) -> TableStatus {
    TableStatus {
        table: table.to_string(),
        source_table: progress.source_table.clone(),
        inserts: progress.inserts,
        updates: progress.updates,
        deletes: progress.deletes,
        snapshot_reads: progress.reads,
        last_position: progress
            .last_position
            .map(|position| position.to_string())
            .unwrap_or_default(),
        lag_seconds: lag_seconds(progress),
        paused_reason: progress.paused_reason.clone().unwrap_or_default(),
        schema_id: progress.schema_id.clone(),
        dead_letters: progress.dead_letters,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdc_model::Lsn;

    fn at(lsn: u8) -> SourcePosition {
        let mut bytes = [0_u8; 10];
        bytes[9] = lsn;
        SourcePosition::snapshot(Lsn::new(bytes))
    }

    #[test]
    fn a_batch_counts_its_events_and_the_status_shows_its_newest_position_and_schema() {
        let table = TargetTable {
            schema: "public".into(),
            name: "orders".into(),
        };
        let tables = Tables::default();
        let mut applied = Applied::default();
        // Arrival order is not position order across partitions.
        applied.add(Operation::Insert, at(3), 300, "schema-b");
        applied.add(Operation::Update, at(5), 200, "schema-b");
        applied.add(Operation::Delete, at(4), 400, "schema-a");
        applied.add(Operation::Read, at(1), 100, "schema-a");
        assert_eq!(applied.latest_commit_micros(), Some(400));
        tables.applied(&table, &applied);
        let status = tables.status(&table).unwrap();
        assert_eq!(
            (
                status.inserts,
                status.updates,
                status.deletes,
                status.snapshot_reads
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(status.last_position, at(5).to_string());
        assert_eq!(status.schema_id, "schema-b");

        // A later batch whose newest event is older than what the table has seen counts its
        // events but leaves the position alone.
        let mut older = Applied::default();
        older.add(Operation::Update, at(2), 500, "schema-a");
        tables.applied(&table, &older);
        let status = tables.status(&table).unwrap();
        assert_eq!(status.updates, 2);
        assert_eq!(status.last_position, at(5).to_string());
        assert_eq!(status.schema_id, "schema-b");
    }
}

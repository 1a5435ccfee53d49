//! Change data capture as SQL Server does it: committed transactions go to the log with one
//! commit LSN each and a seqval per row change; the capture job later reads the log into the
//! change tables of each capture instance (`cdc.<instance>_CT`) and into
//! `cdc.lsn_time_mapping`, and only then does `sys.fn_cdc_get_max_lsn()` move.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::catalog::{Catalog, Column, Database};
use super::error::SqlError;
use super::txn::{Change, ChangeKind};
use crate::tds::types::{SqlType, SqlValue, TICKS_PER_DAY};

/// A 10-byte LSN (or seqval).
pub type Lsn = [u8; 10];

/// The smallest LSN.
pub const ZERO_LSN: Lsn = [0; 10];

/// How the capture job runs.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// Pause between scans while the log is empty (SQL Server's `pollinginterval`, 5 s).
    pub poll_interval: Duration,
    /// Transactions read per scan (SQL Server's `maxtrans`, 500); a full scan is followed at once by another.
    pub max_transactions_per_scan: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            poll_interval: Duration::from_secs(5),
            max_transactions_per_scan: 500,
        }
    }
}

/// A column of a capture instance.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedColumn {
    /// Name.
    pub name: String,
    /// The source column's id.
    pub column_id: i32,
    /// Type.
    pub sql_type: SqlType,
    /// Position in the change table, from 1.
    pub ordinal: i32,
}

/// Positions of the fixed columns of a change table row.
pub mod position {
    /// `__$start_lsn`.
    pub const START_LSN: usize = 0;
    /// `__$seqval`.
    pub const SEQVAL: usize = 2;
    /// `__$operation`.
    pub const OPERATION: usize = 3;
    /// `__$update_mask`.
    pub const UPDATE_MASK: usize = 4;
    /// The first captured column.
    pub const FIRST_CAPTURED: usize = 5;
}

/// The commit LSN of a change table row.
pub fn start_lsn(row: &[SqlValue]) -> &[u8] {
    match row.get(position::START_LSN) {
        Some(SqlValue::Binary(bytes)) => bytes,
        _ => &[],
    }
}

/// The `__$operation` of a change table row.
pub fn operation(row: &[SqlValue]) -> i64 {
    match row.get(position::OPERATION) {
        Some(SqlValue::Int(op)) => *op,
        _ => 0,
    }
}

/// A capture instance and its change table.
#[derive(Debug, Clone)]
pub struct CaptureInstance {
    /// Name, e.g. `dbo_orders`.
    pub name: String,
    /// Object id of the change table.
    pub object_id: i32,
    /// Object id of the source table.
    pub source_object_id: i32,
    /// First LSN it captures after.
    pub start_lsn: Lsn,
    /// `@role_name`.
    pub role_name: Option<String>,
    /// `@supports_net_changes`.
    pub supports_net_changes: bool,
    /// Captured columns.
    pub columns: Vec<CapturedColumn>,
    /// Names of the key columns.
    pub index_columns: Vec<(String, i32)>,
    /// Name of the unique index used.
    pub index_name: String,
    /// Creation time.
    pub create_date: SqlValue,
    /// The change table's rows in its column layout (see [`change_table_columns`]), in
    /// (start_lsn, seqval, operation) order, so queries read them in place.
    pub rows: Vec<Vec<SqlValue>>,
}

/// One committed transaction, not yet read by the capture job.
#[derive(Debug, Clone)]
struct LogRecord {
    commit_lsn: Lsn,
    begin_time: SqlValue,
    end_time: SqlValue,
    tran_id: Vec<u8>,
    entries: Vec<LogEntry>,
}

#[derive(Debug, Clone)]
struct LogEntry {
    object_id: i32,
    seqval: Lsn,
    command_id: i32,
    kind: LoggedKind,
}

/// A row image with the column ids of its values, so later ALTERs do not shift them. The ids
/// are shared by every image of one table in a transaction.
#[derive(Debug, Clone)]
struct Image {
    column_ids: std::sync::Arc<[i32]>,
    values: Vec<SqlValue>,
}

impl Image {
    fn value(&self, column_id: i32) -> SqlValue {
        self.column_ids
            .iter()
            .position(|id| *id == column_id)
            .map_or(SqlValue::Null, |i| self.values[i].clone())
    }
}

#[derive(Debug, Clone)]
enum LoggedKind {
    Insert(Image),
    Delete(Image),
    Update {
        before: Image,
        after: Image,
        key_changed: bool,
    },
}

/// A row of `cdc.lsn_time_mapping`.
#[derive(Debug, Clone)]
pub struct LsnMapping {
    /// Commit LSN.
    pub start_lsn: Lsn,
    /// Transaction begin time.
    pub begin_time: SqlValue,
    /// Transaction end time.
    pub end_time: SqlValue,
    /// Transaction id.
    pub tran_id: Vec<u8>,
}

/// CDC state of one database.
#[derive(Debug, Clone, Default)]
pub struct DatabaseCdc {
    /// `sys.sp_cdc_enable_db` has run.
    pub enabled: bool,
    /// Capture instances (at most two per source table).
    pub instances: Vec<CaptureInstance>,
    /// `cdc.lsn_time_mapping`.
    pub mapping: Vec<LsnMapping>,
    log: VecDeque<LogRecord>,
    next_lsn: u128,
    /// The highest LSN the capture job has processed.
    pub max_lsn: Lsn,
}

impl DatabaseCdc {
    /// Allocates the next LSN; LSNs look like SQL Server's (`00000025:00000100:0001` onwards).
    pub fn allocate_lsn(&mut self) -> Lsn {
        if self.next_lsn == 0 {
            self.next_lsn = (0x25u128 << 48) | (0x100 << 16);
        }
        self.next_lsn += 1;
        to_lsn(self.next_lsn)
    }

    /// Transactions committed but not yet captured.
    pub fn backlog(&self) -> usize {
        self.log.len()
    }

    /// The capture instance named `name`.
    pub fn instance(&self, name: &str) -> Option<&CaptureInstance> {
        self.instances
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(name))
    }
}

/// LSN bytes of an 80-bit integer.
pub fn to_lsn(value: u128) -> Lsn {
    let bytes = value.to_be_bytes();
    let mut lsn = [0u8; 10];
    lsn.copy_from_slice(&bytes[6..]);
    lsn
}

/// The 80-bit integer of LSN bytes (shorter inputs are left-padded).
pub fn from_lsn(bytes: &[u8]) -> u128 {
    bytes
        .iter()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
}

/// The current time as a `datetime` value.
pub fn now() -> SqlValue {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ticks_total = since_epoch.as_nanos() / 100;
    let days = (ticks_total / u128::from(TICKS_PER_DAY)) as i32
        + super::temporal::days_from_civil(1970, 1, 1);
    let ticks = (ticks_total % u128::from(TICKS_PER_DAY)) as u64;
    // datetime has 1/300 s resolution.
    let ticks = (ticks * 3 + 50_000) / 100_000 * 100_000 / 3;
    SqlValue::DateTime { days, ticks }
}

/// Writes committed `changes` to the CDC log of each database whose tables are captured.
pub fn log_commit(catalog: &mut Catalog, changes: Vec<Change>, begin_time: SqlValue) {
    let mut by_database: Vec<(String, Vec<Change>)> = Vec::new();
    for change in changes {
        match by_database
            .iter_mut()
            .find(|(db, _)| *db == change.table.database)
        {
            Some((_, list)) => list.push(change),
            None => by_database.push((change.table.database.clone(), vec![change])),
        }
    }
    for (database, changes) in by_database {
        let Some(db) = catalog.databases.get_mut(&database) else {
            continue;
        };
        if !db.cdc.enabled {
            continue;
        }
        let captured: Vec<Change> = changes
            .into_iter()
            .filter(|c| {
                db.cdc
                    .instances
                    .iter()
                    .any(|i| i.source_object_id == c.object_id)
            })
            .collect();
        if captured.is_empty() {
            continue;
        }
        let record = log_record(db, captured, begin_time.clone());
        db.cdc.log.push_back(record);
    }
}

fn log_record(db: &mut Database, changes: Vec<Change>, begin_time: SqlValue) -> LogRecord {
    let mut entries = Vec::with_capacity(changes.len());
    let mut ids: Option<(i32, std::sync::Arc<[i32]>, Vec<usize>)> = None;
    for change in changes {
        if ids
            .as_ref()
            .is_none_or(|(object_id, _, _)| *object_id != change.object_id)
        {
            let Some(table) = db.tables.values().find(|t| t.object_id == change.object_id) else {
                continue;
            };
            ids = Some((
                change.object_id,
                table.columns.iter().map(|c| c.column_id).collect(),
                table.primary_key.clone(),
            ));
        }
        let Some((_, column_ids, primary_key)) = &ids else {
            continue;
        };
        // The transaction's changes are consumed here, so rows move into the log uncopied.
        let image = |values: Vec<SqlValue>| Image {
            column_ids: column_ids.clone(),
            values,
        };
        let kind = match change.kind {
            ChangeKind::Insert(row) => LoggedKind::Insert(image(row)),
            ChangeKind::Delete(row) => LoggedKind::Delete(image(row)),
            ChangeKind::Update { before, after } => LoggedKind::Update {
                key_changed: primary_key.iter().any(|i| before[*i] != after[*i]),
                before: image(before),
                after: image(after),
            },
        };
        let key_changed = matches!(
            kind,
            LoggedKind::Update {
                key_changed: true,
                ..
            }
        );
        let seqval = db.cdc.allocate_lsn();
        if key_changed {
            // The insert half of a key-changing update gets its own log record, hence seqval.
            let _ = db.cdc.allocate_lsn();
        }
        entries.push(LogEntry {
            object_id: change.object_id,
            seqval,
            command_id: change.command_id,
            kind,
        });
    }
    let commit_lsn = db.cdc.allocate_lsn();
    let tran_id = commit_lsn.to_vec();
    LogRecord {
        commit_lsn,
        begin_time,
        end_time: now(),
        tran_id,
        entries,
    }
}

/// One scan of the capture job over one database: reads up to `max_transactions` committed
/// transactions into the change tables. Returns how many it read.
pub fn capture_scan(db: &mut DatabaseCdc, max_transactions: usize) -> usize {
    let mut read = 0;
    while read < max_transactions {
        let Some(record) = db.log.pop_front() else {
            break;
        };
        for entry in &record.entries {
            for instance in db.instances.iter_mut().filter(|i| {
                i.source_object_id == entry.object_id && i.start_lsn < record.commit_lsn
            }) {
                capture_entry(instance, record.commit_lsn, entry);
            }
        }
        db.mapping.push(LsnMapping {
            start_lsn: record.commit_lsn,
            begin_time: record.begin_time,
            end_time: record.end_time,
            tran_id: record.tran_id,
        });
        db.max_lsn = record.commit_lsn;
        read += 1;
    }
    read
}

fn capture_entry(instance: &mut CaptureInstance, commit_lsn: Lsn, entry: &LogEntry) {
    let all_columns = mask(instance.columns.len(), |_| true);
    let values = |image: &Image| -> Vec<SqlValue> {
        instance
            .columns
            .iter()
            .map(|c| image.value(c.column_id))
            .collect()
    };
    let row = |operation: i32,
               seqval: Lsn,
               update_mask: Vec<u8>,
               values: Vec<SqlValue>|
     -> Vec<SqlValue> {
        let mut row = Vec::with_capacity(values.len() + 6);
        row.extend([
            SqlValue::Binary(commit_lsn.to_vec()),
            SqlValue::Null,
            SqlValue::Binary(seqval.to_vec()),
            SqlValue::Int(i64::from(operation)),
            SqlValue::Binary(update_mask),
        ]);
        row.extend(values);
        row.push(SqlValue::Int(i64::from(entry.command_id)));
        row
    };
    let new_rows = match &entry.kind {
        LoggedKind::Insert(after) => vec![row(2, entry.seqval, all_columns, values(after))],
        LoggedKind::Delete(before) => vec![row(1, entry.seqval, all_columns, values(before))],
        LoggedKind::Update {
            before,
            after,
            key_changed: true,
        } => {
            let insert_seqval = to_lsn(from_lsn(&entry.seqval) + 1);
            vec![
                row(1, entry.seqval, all_columns.clone(), values(before)),
                row(2, insert_seqval, all_columns, values(after)),
            ]
        }
        LoggedKind::Update {
            before,
            after,
            key_changed: false,
        } => {
            let (old, new) = (values(before), values(after));
            let changed = mask(instance.columns.len(), |i| old[i] != new[i]);
            vec![
                row(3, entry.seqval, changed.clone(), old),
                row(4, entry.seqval, changed, new),
            ]
        }
    };
    debug_assert!(
        {
            let orders = change_table_orders(instance);
            let appended: Vec<_> = instance.rows.last().into_iter().chain(&new_rows).collect();
            appended
                .windows(2)
                .all(|pair| orders.iter().all(|order| in_order(pair[0], pair[1], order)))
        },
        "change rows appended out of their table's order"
    );
    instance.rows.extend(new_rows);
}

/// The orders a change table's rows are kept in, each a list of column positions: by
/// (`__$start_lsn`, `__$seqval`, `__$operation`) as the capture job appends them, and so also
/// by (`__$start_lsn`, `__$command_id`, `__$seqval`, `__$operation`), the order readers ask
/// for, since a transaction's statements number its changes in the order they make them.
/// Queries ordered by a prefix of either read the rows in place and stop at their TOP.
pub fn change_table_orders(instance: &CaptureInstance) -> Vec<Vec<usize>> {
    let command_id = position::FIRST_CAPTURED + instance.columns.len();
    vec![
        vec![position::START_LSN, position::SEQVAL, position::OPERATION],
        vec![
            position::START_LSN,
            command_id,
            position::SEQVAL,
            position::OPERATION,
        ],
    ]
}

/// Whether change row `a` may precede `b` in `order` (binary and integer columns only).
fn in_order(a: &[SqlValue], b: &[SqlValue], order: &[usize]) -> bool {
    for &column in order {
        let ordering = match (a.get(column), b.get(column)) {
            (Some(SqlValue::Binary(x)), Some(SqlValue::Binary(y))) => x.cmp(y),
            (Some(SqlValue::Int(x)), Some(SqlValue::Int(y))) => x.cmp(y),
            _ => std::cmp::Ordering::Equal,
        };
        if ordering.is_ne() {
            return ordering.is_lt();
        }
    }
    true
}

/// `__$update_mask`: bit `i` (from the least significant bit of the last byte) is column `i + 1`.
fn mask(columns: usize, set: impl Fn(usize) -> bool) -> Vec<u8> {
    let mut bytes = vec![0u8; columns.div_ceil(8).max(1)];
    let last = bytes.len() - 1;
    for i in (0..columns).filter(|i| set(*i)) {
        bytes[last - i / 8] |= 1 << (i % 8);
    }
    bytes
}

/// The columns of a capture instance's change table.
pub fn change_table_columns(instance: &CaptureInstance) -> Vec<Column> {
    let lsn = SqlType::Binary { length: 10 };
    let meta = |name: &str, sql_type: SqlType, nullable: bool| Column {
        name: name.to_owned(),
        sql_type,
        nullable,
        identity: false,
        column_id: 0,
    };
    let mut columns = vec![
        meta("__$start_lsn", lsn, false),
        meta("__$end_lsn", lsn, true),
        meta("__$seqval", lsn, false),
        meta("__$operation", SqlType::Int, false),
        meta(
            "__$update_mask",
            SqlType::VarBinary { length: Some(128) },
            true,
        ),
    ];
    columns.extend(
        instance
            .columns
            .iter()
            .map(|c| meta(&c.name, c.sql_type, true)),
    );
    columns.push(meta("__$command_id", SqlType::Int, true));
    columns
}

/// An error with SQL Server's number for a CDC procedure.
pub fn cdc_error(number: i32, text: String) -> SqlError {
    SqlError {
        number,
        state: 1,
        class: 16,
        text,
    }
}

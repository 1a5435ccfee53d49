//! One table's reading state: where its stream stands, and the snapshot running beside it.
//!
//! Snapshots use watermarks (the DBLog method), so they need no locks and no isolation level
//! beyond READ COMMITTED, and they can run while the stream goes on: a chunk of rows is read
//! in key order, then a watermark row is written; its commit LSN `H` is after every change
//! the chunk can show. The stream goes on until it has published every change up to `H`; any
//! key it met on the way is dropped from the chunk (the stream carries that row's newer
//! state); the remaining rows are published as reads at position `(H, 0, 0, 0)`. Per key,
//! events in the topic then stay in source order, and a row never goes back to an older
//! version.

use std::collections::{HashMap, VecDeque};

use cdc_model::proto::{KeyValues, TableId, Value};
use cdc_model::{Lsn, SourcePosition};

use crate::discovery::{CaptureInstance, CapturedTable};
use crate::proto::{Phase, SnapshotProgress, TableCheckpoint};
use crate::registry::SnapshotRequest;

/// A row read for a snapshot: its key and its values (None: the key is not in the table).
pub type WindowRow = (Vec<Value>, Option<Vec<Value>>);

/// A chunk read, waiting for its watermark to be streamed past.
#[derive(Debug)]
pub struct Window {
    /// The watermark written after the chunk was read.
    pub token: uuid::Uuid,
    /// The watermark's commit LSN, once the capture job has read it.
    pub high: Option<Lsn>,
    /// Rows by encoded key, in key order, as `(key, values)`; values `None` for a key asked
    /// for that the table does not hold (published as a delete); `None` once the stream has
    /// met the key.
    pub rows: Vec<Option<WindowRow>>,
    /// Encoded key → index in `rows`.
    pub index: HashMap<Vec<u8>, usize>,
    /// The chunk's last key (the next chunk starts after it).
    pub last_key: Vec<Value>,
    /// Whether this chunk reached the end of the snapshot's range.
    pub last: bool,
    /// For a snapshot of chosen keys: how many of the remaining keys this chunk asked for.
    pub keys_taken: usize,
}

/// A running snapshot of a table (or of a key range).
#[derive(Debug)]
pub struct Snapshot {
    /// What is stored in the checkpoint: published up to `last_key`.
    pub progress: SnapshotProgress,
    /// Chunks read and waiting, in key order.
    pub windows: VecDeque<Window>,
    /// The last key read into a window (the next chunk starts after it).
    pub read_key: Option<Vec<Value>>,
    /// No more chunks to read: the last one reached the end of the range.
    pub exhausted: bool,
    /// Whether the row count has been taken.
    pub counted: bool,
    /// For a snapshot of chosen keys: how many of `progress.keys` are read into windows.
    pub keys_read: usize,
}

impl Snapshot {
    /// A snapshot resuming from stored progress.
    pub fn resume(progress: SnapshotProgress) -> Snapshot {
        let read_key = (!progress.last_key.is_empty()).then(|| progress.last_key.clone());
        Snapshot {
            counted: progress.rows_estimated > 0,
            progress,
            windows: VecDeque::new(),
            read_key,
            exhausted: false,
            keys_read: 0,
        }
    }

    /// A snapshot of chosen keys (a repair).
    pub fn of_keys(keys: Vec<KeyValues>) -> Snapshot {
        Snapshot::resume(SnapshotProgress {
            rows_estimated: keys.len() as u64,
            keys,
            ..SnapshotProgress::default()
        })
    }

    /// Whether this snapshot reads chosen keys rather than a key range.
    pub fn is_of_keys(&self) -> bool {
        !self.progress.keys.is_empty()
    }

    /// A new snapshot over the range of `request`.
    pub fn start(request: &SnapshotRequest) -> Snapshot {
        Snapshot::resume(SnapshotProgress {
            last_key: request.after_key.clone().unwrap_or_default(),
            up_to_key: request.up_to_key.clone().unwrap_or_default(),
            rows_done: 0,
            rows_estimated: 0,
            keys: Vec::new(),
        })
    }

    /// Rows (and absent keys) held in windows.
    pub fn pending_rows(&self) -> usize {
        self.windows.iter().map(|w| w.rows.len()).sum()
    }

    /// Drops the key a streamed change touched from every waiting window.
    pub fn forget(&mut self, key: &[u8]) {
        for window in &mut self.windows {
            if let Some(&i) = window.index.get(key) {
                window.rows[i] = None;
            }
        }
    }

    /// Starts over from the published progress (chunks read with an old capture instance's
    /// columns are read again with the new one's).
    pub fn reread(&mut self) {
        self.windows.clear();
        self.read_key =
            (!self.progress.last_key.is_empty()).then(|| self.progress.last_key.clone());
        self.exhausted = false;
        self.keys_read = 0;
    }
}

/// A table served by a work unit.
#[derive(Debug)]
pub struct TableState {
    /// The table and its capture instances.
    pub captured: CapturedTable,
    /// `database.schema.table`.
    pub name: String,
    /// Its checkpoint's record key.
    pub checkpoint_key: Vec<u8>,
    /// The capture instance read now.
    pub instance: String,
    /// Every change at or before this position has been published (or is in the open
    /// transaction).
    pub resume_after: SourcePosition,
    /// The snapshot running beside the stream.
    pub snapshot: Option<Snapshot>,
    /// Why the table stopped, when it did.
    pub failed: Option<String>,
    /// The checkpoint must be written with the open transaction.
    pub dirty: bool,
    /// The position last written to the checkpoint topic.
    pub stored: SourcePosition,
    /// When the checkpoint was last written (for the heartbeat).
    pub stored_at: std::time::Instant,
    /// Source commit time of the newest change published, microseconds.
    pub last_commit_micros: Option<i64>,
    /// Whether the last poll found the stream caught up.
    pub caught_up: bool,
    /// Snapshots of the table finished by this work unit since it started.
    pub snapshots_completed: u64,
    /// Keys to read again once the running snapshot is done (repair commands).
    pub repair_keys: Vec<KeyValues>,
    /// The next offset of the control topic to read for this table.
    pub control_offset: i64,
}

impl TableState {
    /// The table's id.
    pub fn id(&self) -> &TableId {
        &self.captured.id
    }

    /// The capture instance read now.
    pub fn current(&self) -> Option<&CaptureInstance> {
        self.captured.instance(&self.instance)
    }

    /// The instance that follows the current one (a schema change), if any.
    pub fn next_instance(&self) -> Option<&CaptureInstance> {
        let current = self.current()?;
        self.captured
            .instances
            .iter()
            .find(|i| i.start_lsn > current.start_lsn)
    }

    /// The phase, for status.
    pub fn phase(&self) -> Phase {
        if self.failed.is_some() {
            Phase::Failed
        } else if self.snapshot.is_some() {
            Phase::Snapshot
        } else {
            Phase::Streaming
        }
    }

    /// The checkpoint to store now.
    pub fn checkpoint(&self, written_at_ms: i64) -> TableCheckpoint {
        TableCheckpoint {
            table: Some(self.id().clone()),
            capture_instance: self.instance.clone(),
            resume_after: Some(self.resume_after.to_proto()),
            snapshot: self.snapshot.as_ref().map(|s| s.progress.clone()),
            written_at_ms,
            repair_keys: self.repair_keys.clone(),
            control_offset: self.control_offset,
        }
    }
}

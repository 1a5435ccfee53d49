//! What the work units share with the control API: each table's status, and the snapshots
//! operators have asked for.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cdc_model::proto::Value;

use crate::proto::TableStatus;

/// A snapshot asked for by an operator, waiting for the table's work unit.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRequest {
    /// Start after this key (exclusive); none = from the first row.
    pub after_key: Option<Vec<Value>>,
    /// Stop at this key (inclusive); none = at the last row.
    pub up_to_key: Option<Vec<Value>>,
}

#[derive(Default)]
struct Inner {
    tables: BTreeMap<String, TableStatus>,
    requests: HashMap<String, SnapshotRequest>,
}

/// Shared between the work units and the control API.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a table's status (by `database.schema.table`).
    pub fn publish(&self, name: &str, status: TableStatus) {
        self.lock().tables.insert(name.to_owned(), status);
    }

    /// Forgets tables a work unit no longer serves.
    pub fn withdraw(&self, names: &[String]) {
        let mut inner = self.lock();
        for name in names {
            inner.tables.remove(name);
        }
    }

    /// The statuses of every table served here, in name order.
    pub fn tables(&self) -> Vec<TableStatus> {
        self.lock().tables.values().cloned().collect()
    }

    /// The status of one table, if it is served here (names compared without regard to
    /// case), with its name as registered.
    pub fn table(&self, name: &str) -> Option<(String, TableStatus)> {
        self.lock()
            .tables
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(n, s)| (n.clone(), s.clone()))
    }

    /// Asks for a snapshot of a table served here; a later request replaces a waiting one.
    pub fn request_snapshot(&self, name: &str, request: SnapshotRequest) {
        self.lock().requests.insert(name.to_owned(), request);
    }

    /// Takes the waiting request for `name`, if any.
    pub fn take_request(&self, name: &str) -> Option<SnapshotRequest> {
        self.lock().requests.remove(name)
    }
}

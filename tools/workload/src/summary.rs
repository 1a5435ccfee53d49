//! What a run did: committed changes by kind, rolled-back work, errors, the achieved rate; as
//! a progress line for people and a JSON summary for scripts.

use std::time::Duration;

use serde::Serialize;

use crate::mix::Operation;
use crate::pacing;

/// Running counts. Only committed changes count as inserts, updates, deletes and key updates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Committed inserts.
    pub inserts: u64,
    /// Committed updates of non-key columns.
    pub updates: u64,
    /// Committed deletes.
    pub deletes: u64,
    /// Committed primary-key updates.
    pub key_updates: u64,
    /// Changes rolled back on purpose (`--rollback-fraction`).
    pub rolled_back: u64,
    /// Committed transactions.
    pub transactions: u64,
    /// Transactions that failed (their changes are in no other count).
    pub errors: u64,
}

impl Counts {
    /// Counts a committed transaction of `operations`.
    pub fn committed(&mut self, operations: impl IntoIterator<Item = Operation>) {
        for operation in operations {
            *match operation {
                Operation::Insert => &mut self.inserts,
                Operation::Update => &mut self.updates,
                Operation::Delete => &mut self.deletes,
                Operation::KeyUpdate => &mut self.key_updates,
            } += 1;
        }
        self.transactions += 1;
    }

    /// Committed changes of every kind.
    pub fn changes(&self) -> u64 {
        self.inserts + self.updates + self.deletes + self.key_updates
    }

    /// One progress line.
    pub fn progress(&self, elapsed: Duration) -> String {
        format!(
            "cdc-workload: {:.0} s: {} inserts, {} updates, {} deletes, {} key updates \
             in {} transactions ({:.0} rows/s); {} rolled back, {} errors",
            elapsed.as_secs_f64(),
            self.inserts,
            self.updates,
            self.deletes,
            self.key_updates,
            self.transactions,
            pacing::rate(self.changes(), elapsed),
            self.rolled_back,
            self.errors
        )
    }

    /// The summary of a run that took `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        Summary {
            inserts: self.inserts,
            updates: self.updates,
            deletes: self.deletes,
            key_updates: self.key_updates,
            rolled_back: self.rolled_back,
            transactions: self.transactions,
            errors: self.errors,
            seconds: elapsed.as_secs_f64(),
            rows_per_second: pacing::rate(self.changes(), elapsed),
        }
    }
}

/// The end-of-run summary printed as JSON on stdout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Committed inserts.
    pub inserts: u64,
    /// Committed updates of non-key columns.
    pub updates: u64,
    /// Committed deletes.
    pub deletes: u64,
    /// Committed primary-key updates.
    pub key_updates: u64,
    /// Changes rolled back on purpose; none of them is in the database.
    pub rolled_back: u64,
    /// Committed transactions.
    pub transactions: u64,
    /// Failed transactions.
    pub errors: u64,
    /// How long the run took.
    pub seconds: f64,
    /// Committed changes per second.
    pub rows_per_second: f64,
}

impl Summary {
    /// Committed changes of every kind.
    pub fn changes(&self) -> u64 {
        self.inserts + self.updates + self.deletes + self.key_updates
    }

    /// The summary as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_committed_changes_are_counted_by_kind() {
        let mut counts = Counts::default();
        counts.committed([Operation::Insert, Operation::KeyUpdate, Operation::Insert]);
        counts.rolled_back += 4;
        assert_eq!(
            (counts.inserts, counts.key_updates, counts.changes()),
            (2, 1, 3)
        );
        assert_eq!(counts.transactions, 1);
        let summary = counts.summary(Duration::from_secs(2));
        assert_eq!(
            summary.to_json(),
            r#"{"inserts":2,"updates":0,"deletes":0,"key_updates":1,"rolled_back":4,"transactions":1,"errors":0,"seconds":2.0,"rows_per_second":1.5}"#
        );
        assert!(
            counts
                .progress(Duration::from_secs(2))
                .contains("2 inserts")
        );
    }
}

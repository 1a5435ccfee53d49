//! Transactions: an undo log of row versions, statement atomicity, commit and rollback, and
//! the changes a commit hands to change data capture.

use super::catalog::{Catalog, Pending, Row, RowAddress};

/// What happened to one row.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeKind {
    /// Inserted with these values.
    Insert(Row),
    /// Deleted; the row before.
    Delete(Row),
    /// Updated in place.
    Update {
        /// Before.
        before: Row,
        /// After.
        after: Row,
    },
}

/// One row change of a transaction, in statement order.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The changed table.
    pub table: std::sync::Arc<super::catalog::TableAddress>,
    /// The table's object id.
    pub object_id: i32,
    /// What happened.
    pub kind: ChangeKind,
    /// Statement number within the transaction (`__$command_id`), from 1.
    pub command_id: i32,
}

#[derive(Debug, Clone)]
struct UndoEntry {
    address: RowAddress,
    previous: Option<Pending>,
}

/// An open transaction of one session.
#[derive(Debug, Default)]
pub struct Transaction {
    undo: Vec<UndoEntry>,
    /// Changes so far.
    pub changes: Vec<Change>,
    /// The statement being executed (`__$command_id`).
    pub command_id: i32,
}

/// A point to roll a failed statement back to.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    undo: usize,
    changes: usize,
}

impl Transaction {
    /// Records that `address`'s pending version was `previous` before this transaction wrote it.
    pub fn record(&mut self, address: RowAddress, previous: Option<Pending>) {
        self.undo.push(UndoEntry { address, previous });
    }

    /// Starts the next statement and returns the point to undo it to.
    pub fn begin_statement(&mut self) -> Mark {
        self.command_id += 1;
        Mark {
            undo: self.undo.len(),
            changes: self.changes.len(),
        }
    }

    /// Undoes everything after `mark` (a failed statement is atomic).
    pub fn undo_to(&mut self, catalog: &mut Catalog, mark: Mark) {
        while self.undo.len() > mark.undo {
            if let Some(entry) = self.undo.pop() {
                restore(catalog, &entry.address, entry.previous);
            }
        }
        self.changes.truncate(mark.changes);
    }

    /// Makes every pending version of `session` committed; returns the changes.
    pub fn commit(self, catalog: &mut Catalog, session: u64) -> Vec<Change> {
        let mut start = 0;
        while start < self.undo.len() {
            // Entries of one statement share their table address: look the table up once.
            let address = &self.undo[start].address.table;
            let end = self.undo[start..]
                .iter()
                .position(|e| !std::sync::Arc::ptr_eq(&e.address.table, address))
                .map_or(self.undo.len(), |n| start + n);
            if let Some(table) = catalog.table_at(address) {
                for entry in &self.undo[start..end] {
                    commit_row(table, &entry.address.key, session);
                }
            }
            start = end;
        }
        self.changes
    }

    /// Discards everything.
    pub fn rollback(mut self, catalog: &mut Catalog) {
        self.undo_to(
            catalog,
            Mark {
                undo: 0,
                changes: 0,
            },
        );
    }
}

fn commit_row(table: &mut super::catalog::Table, key: &super::catalog::RowKey, session: u64) {
    let Some(slot) = table.rows.get_mut(key) else {
        return;
    };
    if slot.pending.as_ref().is_some_and(|p| p.session == session)
        && let Some(pending) = slot.pending.take()
    {
        slot.committed = pending.row;
    }
    if slot.committed.is_none() && slot.pending.is_none() {
        table.rows.remove(key);
    }
}

fn restore(catalog: &mut Catalog, address: &RowAddress, previous: Option<Pending>) {
    let Some(table) = catalog.table_at(&address.table) else {
        return;
    };
    if let Some(slot) = table.rows.get_mut(&address.key) {
        slot.pending = previous;
        if slot.committed.is_none() && slot.pending.is_none() {
            table.rows.remove(&address.key);
        }
    }
}

//! Which keys exist, so that updates, deletes and key updates hit rows that are there, and new
//! keys are above every key seen. A transaction's changes are applied at once and undone when
//! the transaction rolls back or fails.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use crate::mix::Operation;
use crate::rng::Rng;

/// A table of the `shop` sample database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `dbo.customers`, keyed by `customer_id int`.
    Customers,
    /// `dbo.products`, keyed by `product_id bigint`.
    Products,
    /// `dbo.orders`, keyed by `order_id int`.
    Orders,
    /// `dbo.order_lines`, keyed by `(order_id int, line_no smallint)`.
    OrderLines,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 4] = [
        Table::Customers,
        Table::Products,
        Table::Orders,
        Table::OrderLines,
    ];

    /// The schema-qualified name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Customers => "dbo.customers",
            Table::Products => "dbo.products",
            Table::Orders => "dbo.orders",
            Table::OrderLines => "dbo.order_lines",
        }
    }

    /// A table for the next change: mostly orders and their lines, customers and products
    /// now and then, as a shop's write traffic goes.
    pub fn pick(rng: &mut Rng) -> Table {
        match rng.below(100) {
            0..5 => Table::Customers,
            5..10 => Table::Products,
            10..50 => Table::Orders,
            _ => Table::OrderLines,
        }
    }
}

/// The primary key of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// A one-column integer key (`customer_id`, `product_id`, `order_id`).
    Id(i64),
    /// The composite key of an order line.
    Line {
        /// `order_id`.
        order_id: i32,
        /// `line_no`.
        line_no: i16,
    },
}

/// A set with O(1) insertion, removal and uniform random choice.
#[derive(Debug, Clone)]
pub struct KeySet<K> {
    items: Vec<K>,
    positions: HashMap<K, usize>,
}

impl<K> Default for KeySet<K> {
    fn default() -> KeySet<K> {
        KeySet {
            items: Vec::new(),
            positions: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> KeySet<K> {
    /// Adds `key`; false when it was there.
    pub fn insert(&mut self, key: K) -> bool {
        if self.positions.contains_key(&key) {
            return false;
        }
        self.positions.insert(key, self.items.len());
        self.items.push(key);
        true
    }

    /// Removes `key`; false when it was not there.
    pub fn remove(&mut self, key: &K) -> bool {
        let Some(position) = self.positions.remove(key) else {
            return false;
        };
        self.items.swap_remove(position);
        if let Some(moved) = self.items.get(position) {
            self.positions.insert(*moved, position);
        }
        true
    }

    /// Whether `key` is there.
    pub fn contains(&self, key: &K) -> bool {
        self.positions.contains_key(key)
    }

    /// A key chosen uniformly, `None` when empty.
    pub fn choose(&self, rng: &mut Rng) -> Option<K> {
        rng.pick(&self.items).copied()
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// One planned row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The table changed.
    pub table: Table,
    /// What is done.
    pub operation: Operation,
    /// The row's key (before the change, for a key update).
    pub key: Key,
    /// The row's new key, for a key update.
    pub new_key: Option<Key>,
}

/// The keys of the four tables, and the next free key of each.
#[derive(Debug, Clone, Default)]
pub struct Model {
    keys: BTreeMap<Table, KeySet<Key>>,
    next_id: BTreeMap<Table, i64>,
    next_line: HashMap<i32, i16>,
}

impl Model {
    /// A model of the rows whose keys are `keys` (as read from the database at start).
    pub fn from_keys(keys: impl IntoIterator<Item = (Table, Key)>) -> Model {
        let mut model = Model::default();
        for (table, key) in keys {
            model.add(table, key);
        }
        model
    }

    /// Replaces the keys with `keys`, read again when the fate of the last transaction is
    /// unknown (the connection dropped around its COMMIT). Next keys only ever grow.
    pub fn replace_keys(&mut self, keys: impl IntoIterator<Item = (Table, Key)>) {
        self.keys.clear();
        for (table, key) in keys {
            self.add(table, key);
        }
    }

    /// The keys of `table`.
    pub fn keys(&self, table: Table) -> Option<&KeySet<Key>> {
        self.keys.get(&table)
    }

    /// How many rows `table` has in the model.
    pub fn count(&self, table: Table) -> usize {
        self.keys.get(&table).map_or(0, KeySet::len)
    }

    /// A random existing key of `table`.
    pub fn existing(&self, table: Table, rng: &mut Rng) -> Option<Key> {
        self.keys.get(&table)?.choose(rng)
    }

    /// A random existing `customer_id`, `product_id` or `order_id` for a referencing column.
    pub fn existing_id(&self, table: Table, rng: &mut Rng) -> Option<i64> {
        match self.existing(table, rng)? {
            Key::Id(id) => Some(id),
            Key::Line { .. } => None,
        }
    }

    /// Plans `operation` on `table` and applies it to the model. An update, delete or key
    /// update of a table with no rows becomes an insert; `None` only when keys ran out.
    pub fn plan(&mut self, operation: Operation, table: Table, rng: &mut Rng) -> Option<Change> {
        let existing = self.existing(table, rng);
        let change = match (operation, existing) {
            (Operation::Insert, _) | (_, None) => Change {
                table,
                operation: Operation::Insert,
                key: self.fresh_key(table, rng)?,
                new_key: None,
            },
            (Operation::KeyUpdate, Some(key)) => Change {
                table,
                operation,
                key,
                new_key: Some(self.moved_key(table, key)?),
            },
            (operation, Some(key)) => Change {
                table,
                operation,
                key,
                new_key: None,
            },
        };
        self.apply(&change);
        Some(change)
    }

    /// Takes `changes` back, last first (the transaction that made them did not commit).
    pub fn undo(&mut self, changes: &[Change]) {
        for change in changes.iter().rev() {
            match change.operation {
                Operation::Insert => self.remove(change.table, change.key),
                Operation::Delete => self.add(change.table, change.key),
                Operation::KeyUpdate => {
                    if let Some(new_key) = change.new_key {
                        self.remove(change.table, new_key);
                    }
                    self.add(change.table, change.key);
                }
                Operation::Update => {}
            }
        }
    }

    fn apply(&mut self, change: &Change) {
        match change.operation {
            Operation::Insert => self.add(change.table, change.key),
            Operation::Delete => self.remove(change.table, change.key),
            Operation::KeyUpdate => {
                self.remove(change.table, change.key);
                if let Some(new_key) = change.new_key {
                    self.add(change.table, new_key);
                }
            }
            Operation::Update => {}
        }
    }

    fn add(&mut self, table: Table, key: Key) {
        match key {
            Key::Id(id) => {
                let next = self.next_id.entry(table).or_insert(1);
                *next = (*next).max(id.saturating_add(1));
            }
            Key::Line { order_id, line_no } => {
                let next = self.next_line.entry(order_id).or_insert(1);
                *next = (*next).max(line_no.saturating_add(1));
            }
        }
        self.keys.entry(table).or_default().insert(key);
    }

    fn remove(&mut self, table: Table, key: Key) {
        if let Some(keys) = self.keys.get_mut(&table) {
            keys.remove(&key);
        }
    }

    /// A key no row of `table` has had: above the maximum, never reused after a delete or a
    /// rollback so that a change table's history of one key is one row's history.
    fn fresh_key(&mut self, table: Table, rng: &mut Rng) -> Option<Key> {
        match table {
            Table::OrderLines => {
                let order_id = self.existing_id(Table::Orders, rng).unwrap_or(1);
                self.next_line_of(i32::try_from(order_id).ok()?)
            }
            _ => self.next_id_of(table),
        }
    }

    fn moved_key(&mut self, table: Table, key: Key) -> Option<Key> {
        match key {
            Key::Id(_) => self.next_id_of(table),
            Key::Line { order_id, .. } => self.next_line_of(order_id),
        }
    }

    fn next_id_of(&mut self, table: Table) -> Option<Key> {
        let max = match table {
            Table::Products => i64::MAX,
            _ => i64::from(i32::MAX),
        };
        let next = self.next_id.entry(table).or_insert(1);
        if *next > max {
            return None;
        }
        let id = *next;
        *next += 1;
        Some(Key::Id(id))
    }

    fn next_line_of(&mut self, order_id: i32) -> Option<Key> {
        let next = self.next_line.entry(order_id).or_insert(1);
        let line_no = *next;
        *next = line_no.checked_add(1)?;
        Some(Key::Line { order_id, line_no })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded() -> Model {
        Model::from_keys([
            (Table::Orders, Key::Id(5001)),
            (Table::Orders, Key::Id(5003)),
            (
                Table::OrderLines,
                Key::Line {
                    order_id: 5001,
                    line_no: 2,
                },
            ),
        ])
    }

    #[test]
    fn key_set_removal_keeps_the_others_choosable() {
        let mut set = KeySet::default();
        for k in 0..10 {
            assert!(set.insert(k));
        }
        assert!(!set.insert(3));
        assert!(set.remove(&0) && set.remove(&9) && !set.remove(&9));
        assert_eq!(set.len(), 8);
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            let k = set.choose(&mut rng).unwrap_or(-1);
            assert!(set.contains(&k), "{k}");
        }
    }

    #[test]
    fn inserts_take_keys_above_the_maximum_seen() {
        let mut model = seeded();
        let mut rng = Rng::new(1);
        let change = model.plan(Operation::Insert, Table::Orders, &mut rng);
        assert_eq!(change.map(|c| c.key), Some(Key::Id(5004)));
        let line = model.plan(Operation::Insert, Table::OrderLines, &mut rng);
        match line.map(|c| c.key) {
            Some(Key::Line { order_id, line_no }) => {
                assert!([5001, 5003, 5004].contains(&order_id));
                assert_eq!(line_no, if order_id == 5001 { 3 } else { 1 });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_key_update_moves_the_row_and_its_undo_moves_it_back() {
        let mut model = seeded();
        let mut rng = Rng::new(5);
        let change = model.plan(Operation::KeyUpdate, Table::Orders, &mut rng);
        let Some(change) = change else {
            panic!("no change")
        };
        let (old, new) = (change.key, change.new_key);
        assert_eq!(new, Some(Key::Id(5004)));
        let keys = model.keys(Table::Orders).cloned().unwrap_or_default();
        assert!(!keys.contains(&old) && keys.contains(&Key::Id(5004)));
        model.undo(&[change]);
        let keys = model.keys(Table::Orders).cloned().unwrap_or_default();
        assert!(keys.contains(&old) && !keys.contains(&Key::Id(5004)));
        // The moved-to key is not handed out again.
        let next = model.plan(Operation::Insert, Table::Orders, &mut rng);
        assert_eq!(next.map(|c| c.key), Some(Key::Id(5005)));
    }

    #[test]
    fn changes_to_an_empty_table_become_inserts_and_deletes_empty_it() {
        let mut model = Model::default();
        let mut rng = Rng::new(9);
        let first = model.plan(Operation::Delete, Table::Customers, &mut rng);
        assert_eq!(first.map(|c| c.operation), Some(Operation::Insert));
        let second = model.plan(Operation::Delete, Table::Customers, &mut rng);
        assert_eq!(second.map(|c| c.operation), Some(Operation::Delete));
        assert_eq!(model.count(Table::Customers), 0);
    }

    #[test]
    fn undo_of_a_whole_transaction_restores_the_keys() {
        let mut model = seeded();
        let before: Vec<usize> = Table::ALL.iter().map(|t| model.count(*t)).collect();
        let mut rng = Rng::new(11);
        let mut changes = Vec::new();
        for op in [
            Operation::Delete,
            Operation::Insert,
            Operation::KeyUpdate,
            Operation::Delete,
            Operation::Update,
        ] {
            changes.extend(model.plan(op, Table::Orders, &mut rng));
        }
        model.undo(&changes);
        let after: Vec<usize> = Table::ALL.iter().map(|t| model.count(*t)).collect();
        assert_eq!(before, after);
        let keys = model.keys(Table::Orders).cloned().unwrap_or_default();
        assert!(keys.contains(&Key::Id(5001)) && keys.contains(&Key::Id(5003)));
    }
}

//! Databases, tables and rows. Every row slot holds its committed version and, while a
//! transaction has changed it, that transaction's pending version: other sessions read the
//! committed one (READ COMMITTED), the owner reads its own.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::compare::key_order;
use super::error::{self, SqlError};
use crate::tds::types::{SqlType, SqlValue};

/// A row's values, in column order.
pub type Row = Vec<SqlValue>;

/// The primary key values of a row (or a hidden row id for a heap), ordered as SQL Server orders them.
#[derive(Debug, Clone)]
pub struct RowKey(pub Vec<SqlValue>);

impl PartialEq for RowKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for RowKey {}
impl PartialOrd for RowKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for RowKey {
    fn cmp(&self, other: &Self) -> Ordering {
        key_order(&self.0, &other.0)
    }
}

/// A change a transaction has made but not committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The owning session.
    pub session: u64,
    /// The row as that session sees it; None when deleted.
    pub row: Option<Row>,
}

/// One row position.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowSlot {
    /// What other sessions see.
    pub committed: Option<Row>,
    /// Uncommitted change, if any.
    pub pending: Option<Pending>,
}

impl RowSlot {
    /// The row as `session` sees it.
    pub fn visible(&self, session: u64) -> Option<&Row> {
        match &self.pending {
            Some(pending) if pending.session == session => pending.row.as_ref(),
            _ => self.committed.as_ref(),
        }
    }
}

/// A column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Declared type.
    pub sql_type: SqlType,
    /// NULL allowed.
    pub nullable: bool,
    /// An IDENTITY column.
    pub identity: bool,
    /// `sys.columns.column_id`: never reused after a column is dropped.
    pub column_id: i32,
}

/// A table.
#[derive(Debug, Clone)]
pub struct Table {
    /// `object_id`.
    pub object_id: i32,
    /// Schema name, e.g. `dbo`.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Positions of the primary key columns, in key order (empty for a heap).
    pub primary_key: Vec<usize>,
    /// Name of the primary key constraint.
    pub primary_key_name: String,
    /// Next IDENTITY value and its increment.
    pub identity: Option<(i64, i64)>,
    /// Rows by key.
    pub rows: BTreeMap<RowKey, RowSlot>,
    /// Next hidden row id of a heap.
    pub next_row_id: i64,
    /// Next column id.
    pub next_column_id: i32,
}

impl Table {
    /// Position of the column named `name` (case-insensitive).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// `schema.table`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The key of `row` (its primary key values, or a fresh row id for a heap).
    pub fn key_of(&mut self, row: &Row) -> RowKey {
        if self.primary_key.is_empty() {
            self.next_row_id += 1;
            RowKey(vec![SqlValue::Int(self.next_row_id)])
        } else {
            RowKey(self.primary_key.iter().map(|i| row[*i].clone()).collect())
        }
    }

    /// Rows visible to `session`, in key order.
    pub fn visible_rows(&self, session: u64) -> impl Iterator<Item = (&RowKey, &Row)> {
        self.rows
            .iter()
            .filter_map(move |(key, slot)| slot.visible(session).map(|row| (key, row)))
    }
}

/// A database.
#[derive(Debug, Clone, Default)]
pub struct Database {
    /// Name as created.
    pub name: String,
    /// Tables by lower-case (schema, name).
    pub tables: BTreeMap<(String, String), Table>,
    /// Change data capture.
    pub cdc: super::cdc::DatabaseCdc,
    /// User schemas besides `dbo` (lower-case).
    pub schemas: std::collections::BTreeSet<String>,
}

impl Database {
    /// Whether `schema` exists (`dbo` always does; `cdc` once CDC is enabled).
    pub fn has_schema(&self, schema: &str) -> bool {
        let schema = schema.to_lowercase();
        schema == "dbo" || (schema == "cdc" && self.cdc.enabled) || self.schemas.contains(&schema)
    }

    /// The table `schema.name` (case-insensitive).
    pub fn table(&self, schema: &str, name: &str) -> Option<&Table> {
        self.tables
            .get(&(schema.to_lowercase(), name.to_lowercase()))
    }

    /// The table `schema.name`, mutable.
    pub fn table_mut(&mut self, schema: &str, name: &str) -> Option<&mut Table> {
        self.tables
            .get_mut(&(schema.to_lowercase(), name.to_lowercase()))
    }
}

/// Every database of the server.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Databases by lower-case name.
    pub databases: BTreeMap<String, Database>,
    /// Next object id.
    pub next_object_id: i32,
}

impl Default for Catalog {
    fn default() -> Self {
        let databases = ["master", "tempdb", "model", "msdb"]
            .into_iter()
            .map(|name| {
                (
                    name.to_owned(),
                    Database {
                        name: name.to_owned(),
                        ..Database::default()
                    },
                )
            })
            .collect();
        Catalog {
            databases,
            next_object_id: 1_000,
        }
    }
}

impl Catalog {
    /// The database named `name` (case-insensitive).
    pub fn database(&self, name: &str) -> Option<&Database> {
        self.databases.get(&name.to_lowercase())
    }

    /// The database named `name`, mutable.
    pub fn database_mut(&mut self, name: &str) -> Option<&mut Database> {
        self.databases.get_mut(&name.to_lowercase())
    }

    /// The table at `address`.
    pub fn table_at(&mut self, address: &TableAddress) -> Option<&mut Table> {
        self.databases
            .get_mut(&address.database)?
            .tables
            .get_mut(&address.table)
    }

    /// A new object id.
    pub fn allocate_object_id(&mut self) -> i32 {
        self.next_object_id += 7;
        self.next_object_id
    }
}

/// Where a table lives, as catalog keys (lower-case). Resolved once per statement and shared
/// by every row it touches, so per-row bookkeeping does not allocate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableAddress {
    /// Database key.
    pub database: String,
    /// (schema, table) key.
    pub table: (String, String),
}

impl TableAddress {
    /// The address of `schema.table` in `database`.
    pub fn new(database: &str, schema: &str, table: &str) -> std::sync::Arc<TableAddress> {
        std::sync::Arc::new(TableAddress {
            database: database.to_lowercase(),
            table: (schema.to_lowercase(), table.to_lowercase()),
        })
    }
}

/// Where a row lives.
#[derive(Debug, Clone, PartialEq)]
pub struct RowAddress {
    /// Its table.
    pub table: std::sync::Arc<TableAddress>,
    /// The row's key.
    pub key: RowKey,
}

/// Sets the pending version of a row for `session`, returning what was pending before (for undo).
/// Fails with a lock time-out when another open transaction holds the row: the simulator does
/// not queue lock waits, it reports them.
pub fn write_row(
    table: &mut Table,
    key: RowKey,
    session: u64,
    row: Option<Row>,
) -> Result<Option<Pending>, SqlError> {
    let slot = table.rows.entry(key).or_default();
    if let Some(pending) = &slot.pending
        && pending.session != session
    {
        return Err(error::lock_timeout());
    }
    Ok(slot.pending.replace(Pending { session, row }))
}

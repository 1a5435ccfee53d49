//! The T-SQL engine: parses batches with `sqlparser`'s MS SQL dialect (see [`dialect`]) and
//! executes them against the simulator's catalog. Each statement runs in the session's
//! transaction (an implicit one when none is open) and is atomic: a failing statement leaves no
//! trace, and the batch stops.
//! Committed changes to captured tables go to the CDC log, which the capture job reads later.

pub mod arithmetic;
pub mod catalog;
pub mod cdc;
pub mod collation;
pub mod compare;
pub mod convert;
pub mod datatype;
pub mod ddl;
pub mod dialect;
pub mod dml;
pub mod error;
pub mod expr;
pub mod functions;
mod literal_insert;
pub mod metadata;
pub mod parse_cache;
pub mod procedures;
pub mod query;
pub mod relations;
pub mod sources;
pub mod temporal;
pub mod txn;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use sqlparser::ast::{Expr, ObjectName, ObjectType, SetExpr, Statement, Use};

use crate::tds::token::{ResultColumn, command};
use crate::tds::types::SqlValue;
use catalog::{Catalog, Database};
use error::SqlError;
pub use expr::{Parameters, Scope, Typed};
use txn::Transaction;

/// What one statement produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A result set.
    Rows {
        /// Its columns.
        columns: Vec<ResultColumn>,
        /// Its rows.
        rows: Vec<Vec<SqlValue>>,
    },
    /// A statement without a result set; `rows` affected when it counts rows.
    Done {
        /// `curcmd` for the DONE token.
        command: u16,
        /// Rows affected, for DML.
        rows: Option<u64>,
    },
    /// The session's database changed (USE).
    DatabaseChanged {
        /// New database.
        new: String,
        /// Previous database.
        old: String,
    },
    /// The statement failed; the batch stops here.
    Error(SqlError),
}

/// The server's state shared by every connection.
#[derive(Debug, Default)]
pub struct Engine {
    /// Queries read under a shared lock, so they run side by side (as SQL Server's readers
    /// do); statements that change anything take it exclusively.
    catalog: RwLock<Catalog>,
    next_session: AtomicU64,
    /// Parsed `sp_executesql` texts, shared by every session.
    parsed: parse_cache::ParseCache,
}

impl Engine {
    /// Whether a database exists (names compare case-insensitively, as under the default collation).
    pub fn database_exists(&self, name: &str) -> bool {
        self.catalog_read().database(name).is_some()
    }

    /// One pass of the capture job over every CDC-enabled database; returns the number of
    /// transactions read into change tables. The engine lock is taken per transaction, so
    /// writers are never held up behind a long scan (SQL Server's capture job does not block
    /// them either).
    pub fn capture_scan(&self, max_transactions_per_database: usize) -> usize {
        let databases: Vec<String> = self
            .catalog()
            .databases
            .iter()
            .filter(|(_, db)| db.cdc.enabled)
            .map(|(name, _)| name.clone())
            .collect();
        let mut read = 0;
        for name in databases {
            for _ in 0..max_transactions_per_database {
                let mut catalog = self.catalog();
                let Some(db) = catalog.databases.get_mut(&name) else {
                    break;
                };
                if cdc::capture_scan(&mut db.cdc, 1) == 0 {
                    break;
                }
                read += 1;
            }
        }
        read
    }

    fn catalog(&self) -> RwLockWriteGuard<'_, Catalog> {
        // A poisoned lock means a session panicked mid-statement; statements are atomic under
        // this lock, so the catalog is still consistent and other sessions keep working.
        self.catalog
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn catalog_read(&self) -> RwLockReadGuard<'_, Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn new_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// One connection's session.
#[derive(Debug)]
pub struct Session {
    engine: std::sync::Arc<Engine>,
    id: u64,
    /// The current database.
    pub database: String,
    transaction: Option<Transaction>,
    /// `@@TRANCOUNT`.
    transaction_count: u32,
    /// When the open explicit transaction began (`tran_begin_time`).
    transaction_began: Option<SqlValue>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // A connection that goes away rolls its open transaction back, as SQL Server does.
        if let Some(transaction) = self.transaction.take() {
            transaction.rollback(&mut self.engine.catalog());
        }
    }
}

impl Session {
    /// A session in `database`.
    pub fn new(engine: std::sync::Arc<Engine>, database: String) -> Session {
        let id = engine.new_session_id();
        Session {
            engine,
            id,
            database,
            transaction: None,
            transaction_count: 0,
            transaction_began: None,
        }
    }

    /// Executes an ad-hoc batch (SQL_BATCH). Stops at the first error, whose outcome is last.
    pub fn execute(&mut self, sql: &str, parameters: &Parameters) -> Vec<Outcome> {
        match dialect::parse(sql) {
            Ok(statements) => self.run_statements(&statements, parameters),
            Err(e) => vec![Outcome::Error(error::syntax(&near(&e.to_string())))],
        }
    }

    /// Executes a parameterized batch (`sp_executesql`), its parse kept for the next call
    /// with the same text, as SQL Server keeps the plan. Stops at the first error.
    pub fn execute_parameterized(&mut self, sql: &str, parameters: &Parameters) -> Vec<Outcome> {
        let parsed = self.engine.parsed.get_or_parse(sql, dialect::parse);
        match parsed {
            Ok(statements) => self.run_statements(&statements, parameters),
            Err(e) => vec![Outcome::Error(error::syntax(&near(&e.to_string())))],
        }
    }

    fn run_statements(
        &mut self,
        statements: &[Statement],
        parameters: &Parameters,
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(statements.len());
        for statement in statements {
            let outcome = self
                .statement(statement, parameters)
                .unwrap_or_else(Outcome::Error);
            let failed = matches!(outcome, Outcome::Error(_));
            outcomes.push(outcome);
            if failed {
                break;
            }
        }
        outcomes
    }

    fn statement(
        &mut self,
        statement: &Statement,
        parameters: &Parameters,
    ) -> Result<Outcome, SqlError> {
        match statement {
            Statement::StartTransaction { .. } => {
                if self.transaction.is_none() {
                    self.transaction_began = Some(cdc::now());
                }
                self.transaction.get_or_insert_with(Transaction::default);
                self.transaction_count += 1;
                Ok(done())
            }
            Statement::Commit { .. } => self.commit(),
            Statement::Rollback { .. } => {
                let transaction = self
                    .transaction
                    .take()
                    .ok_or_else(error::rollback_without_begin)?;
                transaction.rollback(&mut self.engine.catalog());
                self.transaction_count = 0;
                Ok(done())
            }
            Statement::CreateDatabase { db_name, .. } => self.create_database(&last_part(db_name)),
            Statement::Drop {
                object_type: ObjectType::Database,
                names,
                if_exists,
                ..
            } => {
                let mut catalog = self.engine.catalog();
                for name in names.iter().map(last_part) {
                    if catalog.databases.remove(&name.to_lowercase()).is_none() && !*if_exists {
                        return Err(error::cannot_drop("database", &name));
                    }
                }
                Ok(done())
            }
            Statement::Use(Use::Object(name) | Use::Database(name)) => {
                let name = last_part(name);
                let new = self
                    .engine
                    .catalog()
                    .database(&name)
                    .map(|d| d.name.clone())
                    .ok_or_else(|| error::database_missing(&name))?;
                let old = std::mem::replace(&mut self.database, new.clone());
                Ok(Outcome::DatabaseChanged { new, old })
            }
            Statement::CreateSchema { schema_name, .. } => {
                ddl::create_schema(&mut self.engine.catalog(), &self.database, schema_name)
                    .map(|()| done())
            }
            Statement::CreateTable(create) => {
                ddl::create_table(&mut self.engine.catalog(), &self.database, create)
                    .map(|()| done())
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                if_exists,
                ..
            } => ddl::drop_table(
                &mut self.engine.catalog(),
                &self.database,
                names,
                *if_exists,
            )
            .map(|()| done()),
            Statement::AlterTable(alter) => ddl::alter_table(
                &mut self.engine.catalog(),
                &self.database,
                &alter.name,
                &alter.operations,
            )
            .map(|()| done()),
            Statement::Insert(insert) => self.in_transaction(parameters, |c| {
                dml::insert(c, insert).map(|n| counted(command::INSERT, n))
            }),
            Statement::Update(update) => self.in_transaction(parameters, |c| {
                dml::update(c, update).map(|n| counted(command::UPDATE, n))
            }),
            Statement::Delete(delete) => self.in_transaction(parameters, |c| {
                dml::delete(c, delete).map(|n| counted(command::DELETE, n))
            }),
            Statement::Query(query) => self.select(query, parameters),
            Statement::Execute {
                name: Some(name),
                parameters: arguments,
                ..
            } => self.execute_procedure(name, arguments, parameters),
            other => Err(error::not_implemented(&format!(
                "`{}`",
                first_words(&other.to_string())
            ))),
        }
    }

    fn create_database(&mut self, name: &str) -> Result<Outcome, SqlError> {
        let mut catalog = self.engine.catalog();
        if catalog.database(name).is_some() {
            return Err(error::database_exists(name));
        }
        catalog.databases.insert(
            name.to_lowercase(),
            Database {
                name: name.to_owned(),
                ..Database::default()
            },
        );
        Ok(done())
    }

    fn commit(&mut self) -> Result<Outcome, SqlError> {
        if self.transaction.is_none() {
            return Err(error::commit_without_begin());
        }
        self.transaction_count = self.transaction_count.saturating_sub(1);
        if self.transaction_count == 0
            && let Some(transaction) = self.transaction.take()
        {
            let mut catalog = self.engine.catalog();
            let changes = transaction.commit(&mut catalog, self.id);
            cdc::log_commit(
                &mut catalog,
                changes,
                self.transaction_began.take().unwrap_or_else(cdc::now),
            );
        }
        Ok(done())
    }

    /// Runs a data statement atomically in the open transaction, or in its own.
    fn in_transaction(
        &mut self,
        parameters: &Parameters,
        run: impl FnOnce(&mut dml::Context<'_>) -> Result<Outcome, SqlError>,
    ) -> Result<Outcome, SqlError> {
        let implicit = self.transaction.is_none();
        let mut transaction = self.transaction.take().unwrap_or_default();
        let mut catalog = self.engine.catalog();
        let mark = transaction.begin_statement();
        let result = run(&mut dml::Context {
            catalog: &mut catalog,
            database: &self.database,
            session: self.id,
            transaction: &mut transaction,
            parameters,
        });
        if result.is_err() {
            transaction.undo_to(&mut catalog, mark);
        }
        if implicit {
            let changes = transaction.commit(&mut catalog, self.id);
            cdc::log_commit(&mut catalog, changes, cdc::now());
        } else {
            self.transaction = Some(transaction);
        }
        result
    }

    fn select(
        &mut self,
        query: &sqlparser::ast::Query,
        parameters: &Parameters,
    ) -> Result<Outcome, SqlError> {
        let SetExpr::Select(select) = query.body.as_ref() else {
            return Err(error::not_implemented("this query form"));
        };
        let catalog = self.engine.catalog_read();
        let db = catalog
            .database(&self.database)
            .ok_or_else(|| error::database_missing(&self.database))?;
        let (columns, rows) = match select.from.as_slice() {
            [] => {
                let constant = vec![];
                let relation = query::Relation {
                    columns: &[],
                    qualifiers: &[],
                    rows: Box::new(std::iter::once(&constant)),
                    orders: &[],
                    database: Some(db),
                };
                query::run(query, select, relation, parameters)?
            }
            [from] if from.joins.is_empty() => {
                let (source, qualifier) =
                    sources::resolve(&catalog, db, &from.relation, parameters)?;
                let qualifiers = vec![qualifier; source.columns().len()];
                let rows: Box<dyn Iterator<Item = &catalog::Row>> = match &source {
                    sources::Source::Table(table) => {
                        Box::new(table.visible_rows(self.id).map(|(_, row)| row))
                    }
                    sources::Source::Rows(materialised) => Box::new(materialised.rows.iter()),
                    sources::Source::Borrowed { rows, .. } => Box::new(
                        sources::seek_change_rows(rows, select.selection.as_ref(), parameters)
                            .iter(),
                    ),
                };
                let relation = query::Relation {
                    columns: source.columns(),
                    qualifiers: &qualifiers,
                    rows,
                    orders: source.orders(),
                    database: Some(db),
                };
                query::run(query, select, relation, parameters)?
            }
            [from] if from.joins.len() == 1 => {
                let left = sources::resolve(&catalog, db, &from.relation, parameters)?;
                let (joined, qualifiers) =
                    sources::join(left, &from.joins[0], &catalog, db, self.id, parameters)?;
                let relation = query::Relation {
                    columns: &joined.columns,
                    qualifiers: &qualifiers,
                    rows: Box::new(joined.rows.iter()),
                    orders: &[],
                    database: Some(db),
                };
                query::run(query, select, relation, parameters)?
            }
            _ => return Err(error::not_implemented("more than one join")),
        };
        Ok(Outcome::Rows { columns, rows })
    }

    fn execute_procedure(
        &mut self,
        name: &ObjectName,
        arguments: &[Expr],
        parameters: &Parameters,
    ) -> Result<Outcome, SqlError> {
        let mut catalog = self.engine.catalog();
        procedures::execute(&mut catalog, &self.database, name, arguments, parameters)?;
        Ok(Outcome::Done {
            command: command::EXECUTE,
            rows: None,
        })
    }
}

fn done() -> Outcome {
    Outcome::Done {
        command: command::OTHER,
        rows: None,
    }
}

fn counted(command: u16, rows: u64) -> Outcome {
    Outcome::Done {
        command,
        rows: Some(rows),
    }
}

fn last_part(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map(|ident| ident.value.clone())
        .unwrap_or_default()
}

/// The token a parser error points at: "… found: X at Line …" gives X.
fn near(message: &str) -> String {
    message
        .split("found: ")
        .nth(1)
        .and_then(|rest| rest.split(" at Line").next())
        .unwrap_or(message)
        .to_owned()
}

fn first_words(statement: &str) -> String {
    statement
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

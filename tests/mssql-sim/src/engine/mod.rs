//! The T-SQL engine: parses batches with `sqlparser`'s MS SQL dialect and executes them against
//! the simulator's catalog. This slice runs constant SELECTs, CREATE/DROP DATABASE and USE;
//! tables, transactions and CDC come next (see the crate README).

pub mod convert;
pub mod datatype;
pub mod error;
pub mod expr;
pub mod temporal;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use sqlparser::ast::{ObjectName, ObjectType, SelectItem, SetExpr, Statement, Use};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::parser::Parser;

use crate::tds::token::{ResultColumn, command};
use crate::tds::types::SqlValue;
use error::SqlError;
pub use expr::{Parameters, Typed};

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
#[derive(Debug)]
pub struct Engine {
    databases: Mutex<BTreeSet<String>>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            databases: Mutex::new(
                ["master", "tempdb", "model", "msdb"]
                    .map(str::to_owned)
                    .into(),
            ),
        }
    }
}

impl Engine {
    /// Whether a database exists (names compare case-insensitively, as under the default collation).
    pub fn database_exists(&self, name: &str) -> bool {
        lock(&self.databases)
            .iter()
            .any(|d| d.eq_ignore_ascii_case(name))
    }
}

/// One connection's session: its current database.
#[derive(Debug)]
pub struct Session {
    engine: Arc<Engine>,
    /// The current database.
    pub database: String,
}

impl Session {
    /// A session in `database`.
    pub fn new(engine: Arc<Engine>, database: String) -> Session {
        Session { engine, database }
    }

    /// Executes a batch. Stops at the first error, whose outcome is last.
    pub fn execute(&mut self, sql: &str, parameters: &Parameters) -> Vec<Outcome> {
        let statements = match Parser::parse_sql(&MsSqlDialect {}, sql) {
            Ok(statements) => statements,
            Err(e) => return vec![Outcome::Error(error::syntax(&near(&e.to_string())))],
        };
        let mut outcomes = Vec::with_capacity(statements.len());
        for statement in &statements {
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
            Statement::Query(query) => match query.body.as_ref() {
                SetExpr::Select(select) if select.from.is_empty() => {
                    constant_select(&select.projection, parameters)
                }
                _ => Err(error::not_implemented("SELECT from tables yet")),
            },
            Statement::CreateDatabase { db_name, .. } => {
                let name = last_part(db_name);
                let mut databases = lock(&self.engine.databases);
                if databases.iter().any(|d| d.eq_ignore_ascii_case(&name)) {
                    return Err(error::database_exists(&name));
                }
                databases.insert(name);
                Ok(Outcome::Done {
                    command: command::OTHER,
                    rows: None,
                })
            }
            Statement::Drop {
                object_type: ObjectType::Database,
                names,
                if_exists,
                ..
            } => {
                let mut databases = lock(&self.engine.databases);
                for name in names.iter().map(last_part) {
                    let existed = databases
                        .iter()
                        .find(|d| d.eq_ignore_ascii_case(&name))
                        .cloned();
                    match existed {
                        Some(existing) => {
                            databases.remove(&existing);
                        }
                        None if *if_exists => {}
                        None => return Err(error::cannot_drop("database", &name)),
                    }
                }
                Ok(Outcome::Done {
                    command: command::OTHER,
                    rows: None,
                })
            }
            Statement::Use(Use::Object(name) | Use::Database(name)) => {
                let name = last_part(name);
                let found = lock(&self.engine.databases)
                    .iter()
                    .find(|d| d.eq_ignore_ascii_case(&name))
                    .cloned();
                let new = found.ok_or_else(|| error::database_missing(&name))?;
                let old = std::mem::replace(&mut self.database, new.clone());
                Ok(Outcome::DatabaseChanged { new, old })
            }
            other => Err(error::not_implemented(&format!(
                "`{}`",
                first_words(&other.to_string())
            ))),
        }
    }
}

fn constant_select(
    projection: &[SelectItem],
    parameters: &Parameters,
) -> Result<Outcome, SqlError> {
    let mut columns = Vec::with_capacity(projection.len());
    let mut row = Vec::with_capacity(projection.len());
    for item in projection {
        let (expr, name) = match item {
            SelectItem::UnnamedExpr(expr) => (expr, String::new()),
            SelectItem::ExprWithAlias { expr, alias } => (expr, alias.value.clone()),
            _ => return Err(error::not_implemented("SELECT * without FROM")),
        };
        let typed = expr::evaluate(expr, parameters)?;
        columns.push(ResultColumn {
            name,
            sql_type: typed.sql_type,
            nullable: true,
        });
        row.push(typed.value);
    }
    Ok(Outcome::Rows {
        columns,
        rows: vec![row],
    })
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

// A poisoned lock means another session panicked mid-statement; the catalog it guards is
// still consistent at statement granularity, so keep serving.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

//! PostgreSQL access: connections, the loader's own state tables (created at start-up), and
//! the stored offsets that make the apply exactly-once in effect.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::config::PostgresConfig;
use crate::statements;

/// A topic partition.
pub type PartitionId = (std::sync::Arc<str>, i32);

/// Whether a PostgreSQL failure concerns the rows, the table, or the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The server refused a row's data (SQLSTATE classes 22 and 23): dead-letter that row.
    Data,
    /// The statement cannot run against this table (undefined column, permissions…): pause it.
    Table,
    /// The connection or the server is in trouble: back off and retry the whole batch.
    Transient,
}

/// Sorts a sqlx error into what to do about it.
pub fn classify(error: &sqlx::Error) -> FailureKind {
    match error {
        sqlx::Error::Database(db) => match db.code().as_deref().map(|c| c.get(..2).unwrap_or(c)) {
            Some("22" | "23") => FailureKind::Data,
            Some("08" | "40" | "53" | "55" | "57" | "58" | "XX") | None => FailureKind::Transient,
            Some(_) => FailureKind::Table,
        },
        _ => FailureKind::Transient,
    }
}

/// The SQLSTATE of a database error, if it is one.
pub fn sqlstate(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()).unwrap_or_default(),
        _ => String::new(),
    }
}

/// How to connect to the target database.
#[derive(Clone)]
pub struct Connector {
    options: PgConnectOptions,
    connect_timeout: Duration,
}

impl Connector {
    /// From configuration and the resolved password (if any).
    pub fn new(config: &PostgresConfig, password: Option<&SecretString>) -> anyhow::Result<Self> {
        let mut options = PgConnectOptions::from_str(&config.url)
            .map_err(|e| anyhow::anyhow!("postgres.url: {e}"))?
            .application_name("cdc-loader")
            .options([("synchronous_commit", config.synchronous_commit.as_str())]);
        if let Some(password) = password {
            options = options.password(password.expose_secret());
        }
        Ok(Connector {
            options,
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
        })
    }

    /// The same, with another `application_name`.
    pub fn with_application_name(&self, name: &str) -> Connector {
        Connector {
            options: self.options.clone().application_name(name),
            connect_timeout: self.connect_timeout,
        }
    }

    /// One connection, for the applier.
    pub async fn connect(&self) -> Result<PgConnection, sqlx::Error> {
        tokio::time::timeout(
            self.connect_timeout,
            PgConnection::connect_with(&self.options),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    /// A small pool, for offset look-ups and the control API.
    pub fn pool(&self) -> PgPool {
        self.pool_of(2)
    }

    /// A pool of at most `max_connections`, connecting on first use.
    pub fn pool_of(&self, max_connections: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(self.connect_timeout)
            .connect_lazy_with(self.options.clone())
    }
}

/// Creates the loader's state tables if missing.
pub async fn bootstrap(
    connection: &mut PgConnection,
    state_schema: &str,
) -> Result<(), sqlx::Error> {
    let mut transaction = connection.begin().await?;
    sqlx::query(statements::LOCK_BOOTSTRAP)
        .execute(&mut *transaction)
        .await?;
    for statement in statements::bootstrap(state_schema) {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&mut *transaction)
            .await?;
    }
    transaction.commit().await
}

/// Stored offsets of one consumer group.
#[derive(Clone)]
pub struct OffsetStore {
    pool: PgPool,
    state_schema: String,
    group: String,
}

impl OffsetStore {
    /// Offsets of `group` in `state_schema`, read through `pool`.
    pub fn new(pool: PgPool, state_schema: &str, group: &str) -> Self {
        OffsetStore {
            pool,
            state_schema: state_schema.to_owned(),
            group: group.to_owned(),
        }
    }

    /// The next offset to apply of each partition that has one stored.
    pub async fn load(
        &self,
        partitions: &[PartitionId],
    ) -> Result<HashMap<PartitionId, i64>, sqlx::Error> {
        let (topics, numbers): (Vec<String>, Vec<i32>) =
            partitions.iter().map(|(t, p)| (t.to_string(), *p)).unzip();
        let rows = sqlx::query(AssertSqlSafe(statements::read_offsets(&self.state_schema)))
            .bind(&self.group)
            .bind(topics)
            .bind(numbers)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(offset_row).collect()
    }

    /// The group name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// `(topic, partition, next_offset)` of an offsets row.
pub fn offset_row(row: &sqlx::postgres::PgRow) -> Result<(PartitionId, i64), sqlx::Error> {
    let topic: String = row.try_get(0)?;
    Ok(((topic.into(), row.try_get(1)?), row.try_get(2)?))
}

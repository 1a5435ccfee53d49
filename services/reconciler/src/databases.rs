//! The two databases as the comparison sees them: a row count, bucket checksums and rows of
//! chosen buckets, each computed by the database itself.

use std::time::Duration;

use cdc_extractor::sql::{self, Connector, SqlClient, SqlError};
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Row as _};

/// One bucket's summary: rows and the sum of their hash prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSum {
    /// Rows in the bucket.
    pub rows: u64,
    /// Sum of the rows' hash prefixes (signed 64-bit each).
    pub hash_sum: i128,
}

/// A row: each compared column's canonical text, key columns first.
pub type TextRow = Vec<Option<String>>;

/// What failed in one of the databases, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQL Server.
    #[error(transparent)]
    Source(#[from] SqlError),
    /// PostgreSQL.
    #[error("PostgreSQL ({context}): {source}")]
    Target {
        /// What was being done.
        context: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A statement ran longer than `compare.statement_timeout_s`.
    #[error("{0} took longer than compare.statement_timeout_s")]
    Timeout(String),
    /// The run was stopped before the comparison ended.
    #[error("the run was stopped")]
    Stopped,
    /// An answer that does not fit the question.
    #[error("unexpected answer ({context}): {detail}")]
    Unexpected {
        /// What was being done.
        context: String,
        /// What was wrong.
        detail: String,
    },
}

impl DbError {
    /// Whether running the comparison again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            DbError::Source(e) => e.is_retryable(),
            DbError::Target { source, .. } => matches!(
                source,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
            ),
            DbError::Timeout(_) => true,
            DbError::Unexpected { .. } | DbError::Stopped => false,
        }
    }
}

/// SQL Server, one database.
pub struct SourceDb {
    client: SqlClient,
    timeout: Duration,
}

impl SourceDb {
    /// Connects to `database`.
    pub async fn connect(
        connector: &Connector,
        database: &str,
        timeout: Duration,
    ) -> Result<SourceDb, DbError> {
        Ok(SourceDb {
            client: connector.connect(database).await?,
            timeout,
        })
    }

    async fn rows(&mut self, query: &str, context: &str) -> Result<Vec<tiberius::Row>, DbError> {
        tokio::time::timeout(
            self.timeout,
            sql::simple_rows(&mut self.client, query, context),
        )
        .await
        .map_err(|_| DbError::Timeout(context.to_owned()))?
        .map_err(DbError::from)
    }

    /// `SELECT COUNT_BIG(*) …`.
    pub async fn count(&mut self, query: &str, context: &str) -> Result<u64, DbError> {
        let rows = self.rows(query, context).await?;
        let row = rows.first().ok_or_else(|| unexpected(context, "no row"))?;
        let count: i64 = sql::required(row, 0, context)?;
        u64::try_from(count).map_err(|_| unexpected(context, "a negative count"))
    }

    /// `(bucket, rows, hash sum)` rows.
    pub async fn buckets(
        &mut self,
        query: &str,
        context: &str,
    ) -> Result<Vec<(u32, BucketSum)>, DbError> {
        let rows = self.rows(query, context).await?;
        rows.iter()
            .map(|row| {
                let bucket: i64 = sql::required(row, 0, context)?;
                let count: i64 = sql::required(row, 1, context)?;
                let sum: tiberius::numeric::Numeric = sql::required(row, 2, context)?;
                if sum.scale() != 0 {
                    return Err(unexpected(context, "a checksum with a fraction"));
                }
                Ok((
                    u32::try_from(bucket)
                        .map_err(|_| unexpected(context, "bucket out of range"))?,
                    BucketSum {
                        rows: u64::try_from(count)
                            .map_err(|_| unexpected(context, "a negative count"))?,
                        hash_sum: sum.value(),
                    },
                ))
            })
            .collect()
    }

    /// Rows of canonical texts, `width` columns each.
    pub async fn text_rows(
        &mut self,
        query: &str,
        width: usize,
        context: &str,
    ) -> Result<Vec<TextRow>, DbError> {
        let rows = self.rows(query, context).await?;
        rows.iter()
            .map(|row| {
                (0..width)
                    .map(|i| Ok(sql::get::<&str>(row, i, context)?.map(str::to_owned)))
                    .collect()
            })
            .collect()
    }
}

/// PostgreSQL.
#[derive(Clone)]
pub struct TargetDb {
    pool: PgPool,
    timeout: Duration,
}

impl TargetDb {
    /// Over a pool.
    pub fn new(pool: PgPool, timeout: Duration) -> TargetDb {
        TargetDb { pool, timeout }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn rows(
        &self,
        query: &str,
        context: &str,
    ) -> Result<Vec<sqlx::postgres::PgRow>, DbError> {
        tokio::time::timeout(
            self.timeout,
            sqlx::query(AssertSqlSafe(query.to_owned())).fetch_all(&self.pool),
        )
        .await
        .map_err(|_| DbError::Timeout(context.to_owned()))?
        .map_err(|source| DbError::Target {
            context: context.to_owned(),
            source,
        })
    }

    /// `SELECT count(*) …`.
    pub async fn count(&self, query: &str, context: &str) -> Result<u64, DbError> {
        let rows = self.rows(query, context).await?;
        let row = rows.first().ok_or_else(|| unexpected(context, "no row"))?;
        let count: i64 = row.try_get(0).map_err(|e| target(context, e))?;
        u64::try_from(count).map_err(|_| unexpected(context, "a negative count"))
    }

    /// `(bucket, rows, hash sum as text)` rows.
    pub async fn buckets(
        &self,
        query: &str,
        context: &str,
    ) -> Result<Vec<(u32, BucketSum)>, DbError> {
        let rows = self.rows(query, context).await?;
        rows.iter()
            .map(|row| {
                let bucket: i64 = row.try_get(0).map_err(|e| target(context, e))?;
                let count: i64 = row.try_get(1).map_err(|e| target(context, e))?;
                let sum: String = row.try_get(2).map_err(|e| target(context, e))?;
                Ok((
                    u32::try_from(bucket)
                        .map_err(|_| unexpected(context, "bucket out of range"))?,
                    BucketSum {
                        rows: u64::try_from(count)
                            .map_err(|_| unexpected(context, "a negative count"))?,
                        hash_sum: sum.parse().map_err(|_| {
                            unexpected(context, "a checksum that is not an integer")
                        })?,
                    },
                ))
            })
            .collect()
    }

    /// Rows of canonical texts, `width` columns each.
    pub async fn text_rows(
        &self,
        query: &str,
        width: usize,
        context: &str,
    ) -> Result<Vec<TextRow>, DbError> {
        let rows = self.rows(query, context).await?;
        rows.iter()
            .map(|row| {
                (0..width)
                    .map(|i| {
                        row.try_get::<Option<String>, _>(i)
                            .map_err(|e| target(context, e))
                    })
                    .collect()
            })
            .collect()
    }
}

fn unexpected(context: &str, detail: &str) -> DbError {
    DbError::Unexpected {
        context: context.to_owned(),
        detail: detail.to_owned(),
    }
}

fn target(context: &str, source: sqlx::Error) -> DbError {
    DbError::Target {
        context: context.to_owned(),
        source,
    }
}

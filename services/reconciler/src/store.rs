//! Reports kept in PostgreSQL: one row per run (with the whole report, protobuf-encoded, for
//! GetRun), one per table result and one per listed differing row, so that operators can
//! query them with SQL.

use prost::Message;
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Row as _};

use crate::proto::Run;
use crate::report::{run_state_name, table_state_name};
use cdc_loader::naming::quote_ident as pg_ident;

/// The reconciler's tables in its state schema.
#[derive(Clone)]
pub struct ReportStore {
    pool: PgPool,
    schema: String,
}

impl ReportStore {
    /// Over `pool`, in `schema`.
    pub fn new(pool: PgPool, schema: &str) -> ReportStore {
        ReportStore {
            pool,
            schema: pg_ident(schema),
        }
    }

    /// Creates the tables if missing.
    pub async fn bootstrap(&self) -> Result<(), sqlx::Error> {
        let s = &self.schema;
        let statements = [
            format!("CREATE SCHEMA IF NOT EXISTS {s}"),
            format!(
                "CREATE TABLE IF NOT EXISTS {s}.runs (run_id text PRIMARY KEY, trigger text NOT NULL, \
                 state text NOT NULL, started_at timestamptz NOT NULL, finished_at timestamptz, \
                 repair boolean NOT NULL, detail text NOT NULL, report bytea NOT NULL)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {s}.table_results (run_id text NOT NULL REFERENCES {s}.runs ON DELETE CASCADE, \
                 table_name text NOT NULL, target_table text NOT NULL, state text NOT NULL, \
                 source_rows bigint NOT NULL, target_rows bigint NOT NULL, missing bigint NOT NULL, \
                 extra bigint NOT NULL, changed bigint NOT NULL, settled bigint NOT NULL, \
                 truncated boolean NOT NULL, detail text NOT NULL, duration_ms bigint NOT NULL, \
                 PRIMARY KEY (run_id, table_name))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {s}.differences (run_id text NOT NULL, table_name text NOT NULL, \
                 kind text NOT NULL, key jsonb NOT NULL, columns text[] NOT NULL, \
                 FOREIGN KEY (run_id, table_name) REFERENCES {s}.table_results ON DELETE CASCADE)"
            ),
            format!("CREATE INDEX IF NOT EXISTS runs_started_at ON {s}.runs (started_at DESC)"),
        ];
        // Several instances may start together: one bootstraps at a time.
        let mut transaction = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('cdc_reconciler.bootstrap'))")
            .execute(&mut *transaction)
            .await?;
        for statement in statements {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await
    }

    /// Stores `run` (again, replacing what was stored of it).
    pub async fn save(&self, run: &Run) -> Result<(), sqlx::Error> {
        let s = &self.schema;
        let mut transaction = self.pool.begin().await?;
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {s}.runs WHERE run_id = $1"
        )))
        .bind(&run.run_id)
        .execute(&mut *transaction)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {s}.runs VALUES ($1, $2, $3, to_timestamp($4::float8 / 1000), \
             CASE WHEN $5 = 0 THEN NULL ELSE to_timestamp($5::float8 / 1000) END, $6, $7, $8)"
        )))
        .bind(&run.run_id)
        .bind(&run.trigger)
        .bind(run_state_name(run.state))
        .bind(run.started_at_unix_ms)
        .bind(run.finished_at_unix_ms)
        .bind(run.repair)
        .bind(&run.detail)
        .bind(run.encode_to_vec())
        .execute(&mut *transaction)
        .await?;
        for table in &run.tables {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {s}.table_results VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            )))
            .bind(&run.run_id)
            .bind(&table.table)
            .bind(&table.target_table)
            .bind(table_state_name(table.state))
            .bind(to_i64(table.source_rows))
            .bind(to_i64(table.target_rows))
            .bind(to_i64(table.missing))
            .bind(to_i64(table.extra))
            .bind(to_i64(table.changed))
            .bind(to_i64(table.settled))
            .bind(table.truncated)
            .bind(&table.detail)
            .bind(to_i64(table.duration_ms))
            .execute(&mut *transaction)
            .await?;
            for difference in &table.differences {
                let key: serde_json::Map<String, serde_json::Value> = difference
                    .key
                    .iter()
                    .map(|k| (k.column.clone(), serde_json::Value::String(k.value.clone())))
                    .collect();
                let kind = crate::proto::DifferenceKind::try_from(difference.kind)
                    .map(|k| {
                        k.as_str_name()
                            .trim_start_matches("DIFFERENCE_KIND_")
                            .to_lowercase()
                    })
                    .unwrap_or_default();
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {s}.differences VALUES ($1, $2, $3, $4, $5)"
                )))
                .bind(&run.run_id)
                .bind(&table.table)
                .bind(kind)
                .bind(serde_json::Value::Object(key))
                .bind(&difference.columns)
                .execute(&mut *transaction)
                .await?;
            }
        }
        transaction.commit().await
    }

    /// One stored run.
    pub async fn get(&self, run_id: &str) -> Result<Option<Run>, sqlx::Error> {
        let s = &self.schema;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT report FROM {s}.runs WHERE run_id = $1"
        )))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| decode(&row.try_get::<Vec<u8>, _>(0)?))
            .transpose()
    }

    /// The newest `limit` runs.
    pub async fn list(&self, limit: i64) -> Result<Vec<Run>, sqlx::Error> {
        let s = &self.schema;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT report FROM {s}.runs ORDER BY started_at DESC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| decode(&row.try_get::<Vec<u8>, _>(0)?))
            .collect()
    }
}

fn decode(bytes: &[u8]) -> Result<Run, sqlx::Error> {
    Run::decode(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

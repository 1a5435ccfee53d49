//! The source side of the benchmark: the tables, the T-SQL of each transaction, and the
//! writers that commit them through tiberius as fast as the simulator takes them or at a
//! fixed rate.

use std::ops::RangeInclusive;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use cdc_e2e_tests::SqlClient;

/// The source tables: `bulk` for the sustained phases, `paced` for the lag phase (the bench
/// adds an `applied_at` column and trigger to its target, so the sustained phases pay nothing
/// for them).
pub const TABLES: &str = "
CREATE TABLE dbo.bulk (id bigint NOT NULL PRIMARY KEY, customer nvarchar(40) NOT NULL,
  amount decimal(12,2) NULL, placed_at datetime2(3) NULL, qty int NOT NULL, version int NOT NULL);
EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'bulk', @role_name = NULL;
CREATE TABLE dbo.paced (id bigint NOT NULL PRIMARY KEY, customer nvarchar(40) NOT NULL,
  amount decimal(12,2) NULL, placed_at datetime2(3) NULL, qty int NOT NULL, version int NOT NULL);
EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'paced', @role_name = NULL;
";

/// One row of the benchmark's tables as a T-SQL `VALUES` tuple.
fn row(id: i64) -> String {
    let seconds = id % 86_400;
    format!(
        "({id}, N'customer-{}', {}.{:02}, '2024-05-{:02} {:02}:{:02}:{:02}.{:03}', {}, 0)",
        id % 9_973,
        id % 100_000,
        id % 100,
        1 + id % 28,
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60,
        id % 1_000,
        id % 50,
    )
}

/// One transaction inserting the rows `ids` into `table` (one multi-row INSERT: at most 1,000
/// rows, SQL Server's limit for a `VALUES` list).
pub fn insert_transaction(table: &str, ids: RangeInclusive<i64>) -> String {
    let rows: Vec<String> = ids.map(row).collect();
    format!(
        "BEGIN TRANSACTION; INSERT INTO dbo.{table} (id, customer, amount, placed_at, qty, version) \
         VALUES {}; COMMIT TRANSACTION;",
        rows.join(", ")
    )
}

/// One transaction updating the rows `ids` of `table` to version 1 (a new amount as well).
pub fn update_transaction(table: &str, ids: RangeInclusive<i64>) -> String {
    format!(
        "BEGIN TRANSACTION; UPDATE dbo.{table} SET version = 1, amount = amount + 1 \
         WHERE id >= {} AND id <= {}; COMMIT TRANSACTION;",
        ids.start(),
        ids.end()
    )
}

/// Runs one T-SQL batch to its end.
pub async fn run(client: &mut SqlClient, batch: &str) -> anyhow::Result<()> {
    client
        .simple_query(batch)
        .await
        .context("sending a batch to the simulator")?
        .into_results()
        .await
        .context("reading a batch's results from the simulator")?;
    Ok(())
}

/// What the writers of a sustained phase did.
pub struct Written {
    /// When the first transaction's commit returned.
    pub first_commit: Instant,
    /// When the last transaction's commit returned.
    pub last_commit: Instant,
    /// The ids of the last transaction of each writer: once they are applied, everything is
    /// (each Kafka partition is applied in commit order).
    pub last_ids: Vec<i64>,
}

/// Commits rows `1..=rows` in transactions of `rows_per_transaction` through `clients`, as
/// fast as the simulator takes them. Transaction `k` goes to writer `k % clients.len()`, and
/// `make` turns an id range into its T-SQL.
pub async fn write_as_fast_as_possible(
    clients: Vec<SqlClient>,
    rows: i64,
    rows_per_transaction: i64,
    make: fn(&str, RangeInclusive<i64>) -> String,
    table: &'static str,
) -> anyhow::Result<Written> {
    let writers = i64::try_from(clients.len())?;
    let first_commit = Arc::new(OnceLock::new());
    let mut tasks = Vec::new();
    for (writer, mut client) in (0..writers).zip(clients) {
        let first_commit = Arc::clone(&first_commit);
        tasks.push(tokio::spawn(async move {
            let mut last = None;
            let mut start = 1 + writer * rows_per_transaction;
            while start <= rows {
                let ids = start..=(start + rows_per_transaction - 1).min(rows);
                run(&mut client, &make(table, ids.clone())).await?;
                first_commit.get_or_init(Instant::now);
                last = Some((Instant::now(), ids));
                start += writers * rows_per_transaction;
            }
            anyhow::Ok(last)
        }));
    }
    let mut last_commit = None;
    let mut last_ids = Vec::new();
    for task in tasks {
        if let Some((at, ids)) = task.await.context("a writer panicked")?? {
            last_commit = last_commit.max(Some(at));
            last_ids.extend(ids);
        }
    }
    Ok(Written {
        first_commit: *first_commit.get().context("no transaction was written")?,
        last_commit: last_commit.context("no transaction was written")?,
        last_ids,
    })
}

/// What the paced writer did.
pub struct Paced {
    /// Rows committed (ids `1..=rows`).
    pub rows: i64,
    /// From the first commit to the last.
    pub seconds: f64,
}

/// Inserts into `paced` at `rate` rows/s for `duration`: one transaction every `tick`.
/// Ticks missed while the simulator was slow are caught up at once, so the average rate holds
/// if the source can take it at all.
pub async fn write_paced(
    client: &mut SqlClient,
    rate: i64,
    duration: Duration,
    tick: Duration,
) -> anyhow::Result<Paced> {
    let per_tick = i64::try_from((rate as u128 * tick.as_millis() / 1_000).max(1))?;
    let ticks = u64::try_from(duration.as_millis() / tick.as_millis().max(1))?;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut next = 1;
    let mut first_commit = None;
    for _ in 0..ticks {
        interval.tick().await;
        let ids = next..=next + per_tick - 1;
        run(client, &insert_transaction("paced", ids)).await?;
        first_commit.get_or_insert_with(Instant::now);
        next += per_tick;
    }
    let seconds = first_commit.map_or(0.0, |t| t.elapsed().as_secs_f64());
    Ok(Paced {
        rows: next - 1,
        seconds,
    })
}

//! The reconciler's benchmark: a table of `--rows` rows (default 1,000,000; eight columns of
//! common types) in the SQL Server simulator and the same rows in PostgreSQL on the local
//! stack. Measures a full comparison of the equal tables, then the time to locate ten rows
//! made to differ (changed, deleted, added in the target). Both databases and the reconciler
//! share this machine. Writes JSON to `--out`.
//!
//! `cargo bench -p cdc-reconciler --bench reconciler -- --rows 1000000 --out target/bench/reconciler.json`
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use cdc_reconciler::proto::{DifferenceKind, TableState};
use cdc_test_harness::bench::{option, write_result};
use sqlx::postgres::PgPoolCopyExt;
use support::{Fixture, differences, run};

const INSERT_BATCH: usize = 1_000;

/// One row's values: SQL Server literals and PostgreSQL COPY text, equal data.
fn row(id: u64) -> (String, String) {
    let name = format!("customer {id} Zoë");
    let amount = format!("{}.{:02}", (id * 37) % 100_000, id % 100);
    let created = format!(
        "2024-01-{:02} {:02}:{:02}:{:02}.{:03}",
        1 + id % 28,
        (id / 3600) % 24,
        (id / 60) % 60,
        id % 60,
        id % 1000
    );
    let active = id % 2;
    let counter = id * 7919;
    let score = (id % 1000) as f64 / 4.0;
    let uid = format!("{:08x}-0000-4000-8000-{:012x}", id, id * 31);
    (
        format!("({id}, N'{name}', {amount}, '{created}', {active}, {counter}, {score}, '{uid}')"),
        format!(
            "{id}\t{name}\t{amount}\t{created}\t{}\t{counter}\t{score}\t{uid}\n",
            if active == 1 { "t" } else { "f" }
        ),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn,cdc_reconciler::compare=info")
        .try_init();
    let rows: u64 = option("--rows").map_or(Ok(1_000_000), |v| v.parse())?;
    let out = option("--out").unwrap_or_else(|| "target/bench/reconciler.json".to_owned());
    let fixture = Fixture::new().await;
    let columns = "id int NOT NULL PRIMARY KEY, name nvarchar(40) NOT NULL, amount decimal(12,2) NOT NULL, \
                   created datetime2(3) NOT NULL, active bit NOT NULL, counter bigint NOT NULL, \
                   score float NOT NULL, uid uniqueidentifier NOT NULL";
    let mut client = fixture.sql().await;
    fixture
        .sql_on(
            &mut client,
            &format!("CREATE TABLE dbo.customers ({columns})"),
        )
        .await;
    fixture
        .pg(
            "CREATE TABLE public.customers (id integer PRIMARY KEY, name varchar(40) NOT NULL, \
             amount numeric(12,2) NOT NULL, created timestamp(3) NOT NULL, active boolean NOT NULL, \
             counter bigint NOT NULL, score double precision NOT NULL, uid uuid NOT NULL)",
        )
        .await;
    let loading = Instant::now();
    let mut copy = fixture
        .target
        .pool
        .copy_in_raw("COPY public.customers FROM STDIN")
        .await?;
    let ids: Vec<u64> = (1..=rows).collect();
    for chunk in ids.chunks(INSERT_BATCH) {
        let (values, lines): (Vec<String>, Vec<String>) = chunk.iter().map(|id| row(*id)).unzip();
        fixture
            .sql_on(
                &mut client,
                &format!("INSERT INTO dbo.customers VALUES {}", values.join(", ")),
            )
            .await;
        copy.send(lines.concat().as_bytes()).await?;
    }
    copy.finish().await?;
    fixture.pg("ANALYZE public.customers").await;
    // Enabled after loading: the comparison reads the table, not its change table.
    fixture
        .sql_on(
            &mut client,
            "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'customers', @role_name = NULL",
        )
        .await;
    println!(
        "loaded {rows} rows into both in {:.1} s",
        loading.elapsed().as_secs_f64()
    );

    let reconciler = fixture.reconciler("[compare]\nsettle_ms = 0\n").await;
    let started = Instant::now();
    let equal = run(&reconciler, &["shop.dbo.customers"]).await;
    let equal_seconds = started.elapsed().as_secs_f64();
    let table = &equal.tables[0];
    assert_eq!(table.state, TableState::Match as i32, "{table:#?}");
    assert_eq!(table.source_rows, rows);
    println!(
        "{rows} equal rows compared in {equal_seconds:.2} s ({} buckets)",
        table.buckets
    );

    // Ten differences: five changed, three missing, two extra.
    let step = rows / 10;
    for i in 0..5 {
        fixture
            .pg(&format!(
                "UPDATE public.customers SET counter = counter + 1 WHERE id = {}",
                1 + i * step
            ))
            .await;
    }
    for i in 5..8 {
        fixture
            .pg(&format!(
                "DELETE FROM public.customers WHERE id = {}",
                1 + i * step
            ))
            .await;
    }
    for extra in [rows + 1, rows + 2] {
        let (_, line) = row(extra);
        let mut copy = fixture
            .target
            .pool
            .copy_in_raw("COPY public.customers FROM STDIN")
            .await?;
        copy.send(line.as_bytes()).await?;
        copy.finish().await?;
    }
    let started = Instant::now();
    let broken = run(&reconciler, &["shop.dbo.customers"]).await;
    let locate_seconds = started.elapsed().as_secs_f64();
    let table = &broken.tables[0];
    let found = differences(table);
    let count = |kind| found.iter().filter(|d| d.0 == kind).count();
    assert_eq!(
        (
            count(DifferenceKind::Changed),
            count(DifferenceKind::Missing),
            count(DifferenceKind::Extra)
        ),
        (5, 3, 2),
        "{found:?}"
    );
    println!("10 differing rows of {rows} located in {locate_seconds:.2} s");

    write_result(
        &out,
        &serde_json::json!({
            "rows": rows,
            "columns": 8,
            "buckets": table.buckets,
            "compare_equal_seconds": equal_seconds,
            "locate_10_differences_seconds": locate_seconds,
            "differing_buckets": table.differing_buckets,
            "targets": { "compare_equal_seconds": 10.0, "locate_10_differences_seconds": 20.0 },
        }),
    )
}

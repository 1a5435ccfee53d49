//! The loader's benchmark on the local stack: rows/s applied to PostgreSQL for inserts,
//! updates and deletes (each phase queued in Kafka while the table is paused, then resumed and
//! timed until every offset is stored), and the loader's peak RSS. Writes JSON to `--out`.
//!
//! `cargo bench -p cdc-loader --bench loader -- --rows 1000000 --out target/bench/loader.json`
//! (`--config '[batch]\nmax_rows = 10000'` runs it with other settings than the defaults)
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use cdc_loader::proto::TableRequest;
use cdc_model::proto::value::Kind;
use cdc_model::proto::{ChangeEvent, LogicalType, Timestamp, Value};
use cdc_model::value::of;
use support::{Events, Fixture, column, decimal, int, schema, source_table, text, typed_column};

fn row(id: i64, generation: i64) -> Vec<Value> {
    vec![
        int(id),
        text(&format!("customer-{}-{generation}", id % 9_973)),
        decimal(i128::from(id % 100_000) * 100 + i128::from(generation), 2),
        of(Kind::Timestamp(Timestamp {
            seconds: 1_700_000_000 + id,
            nanos: 123_456_700,
        })),
    ]
}

/// Makes the event of one phase for one row id.
type MakeEvent = Box<dyn Fn(&mut Events, i64) -> ChangeEvent>;

struct Phase {
    name: &'static str,
    rows: usize,
    seconds: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let option = cdc_test_harness::bench::option;
    let rows: i64 = option("--rows").map_or(Ok(1_000_000), |r| r.parse())?;
    let out = option("--out").unwrap_or_else(|| "target/bench/loader.json".to_owned());
    // Extra loader configuration (`\n` for newlines), to compare settings with the defaults.
    let extra = option("--config").unwrap_or_default().replace("\\n", "\n");

    let mut fixture = Fixture::new().await;
    let table = source_table("bench", "dbo", "orders");
    let topic = fixture.table_topic(&table, 4).await;
    let mut events = Events::new(schema(
        &table,
        vec![
            column("id", LogicalType::Int64, false),
            column("customer", LogicalType::Text, false),
            typed_column("amount", LogicalType::Decimal, 0, 12, 2, true),
            typed_column("placed_at", LogicalType::Timestamp, 0, 0, 7, true),
        ],
        &["id"],
    ));
    fixture.publish_schema(&events.schema).await;
    // One row first, so the table exists and can be paused between phases.
    fixture.send(&topic, &[events.insert(row(0, 0))]).await;
    let loader = fixture.start_loader(&extra);
    fixture
        .wait_caught_up(&topic, &loader, Duration::from_secs(60))
        .await;
    let mut client = fixture.client(&loader).await;
    let target = TableRequest {
        table: "public.orders".into(),
        reason: "benchmark: queueing a phase".into(),
    };

    let mut phases = Vec::new();
    let generate: [(&str, MakeEvent); 3] = [
        ("insert", Box::new(|e, id| e.insert(row(id, 0)))),
        ("update", Box::new(|e, id| e.update(row(id, 0), row(id, 1)))),
        ("delete", Box::new(|e, id| e.delete(row(id, 1)))),
    ];
    for (name, make) in &generate {
        client.pause_table(target.clone()).await?;
        let batch: Vec<ChangeEvent> = (1..=rows).map(|id| make(&mut events, id)).collect();
        fixture.send(&topic, &batch).await;
        drop(batch);
        let started = Instant::now();
        client.resume_table(target.clone()).await?;
        fixture
            .wait_caught_up(&topic, &loader, Duration::from_secs(600))
            .await;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{name:>7}: {rows} rows in {seconds:.2} s = {:.0} rows/s",
            rows as f64 / seconds
        );
        phases.push(Phase {
            name,
            rows: rows as usize,
            seconds,
        });
    }
    let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM public.orders")
        .fetch_one(&fixture.db.pool)
        .await?;
    assert_eq!(
        remaining, 1,
        "only the warm-up row survives the delete phase"
    );
    let scraped = cdc_test_harness::service_contract::scrape(loader.metrics);
    for line in scraped
        .lines()
        .filter(|l| l.contains("_sum") || l.contains("_count"))
    {
        println!("  {line}");
    }
    let (peak_rss_kib, rss_kib) = loader.memory_kib();
    println!(
        "loader RSS: peak {} MiB, now {} MiB",
        peak_rss_kib / 1024,
        rss_kib / 1024
    );

    let json = serde_json::json!({
        "benchmark": "loader",
        "rows_per_phase": rows,
        "phases": phases.iter().map(|p| serde_json::json!({
            "operation": p.name,
            "rows": p.rows,
            "seconds": p.seconds,
            "rows_per_second": p.rows as f64 / p.seconds,
        })).collect::<Vec<_>>(),
        "loader_peak_rss_mib": peak_rss_kib as f64 / 1024.0,
        "loader_rss_mib": rss_kib as f64 / 1024.0,
        "extra_config": extra,
    });
    cdc_test_harness::bench::write_result(&out, &json)?;
    Ok(())
}

//! The extractor's benchmark on the local stack, reading the SQL Server simulator: events/s of
//! the snapshot (rows read in key order, behind watermarks) and of the stream (change rows
//! already captured: inserts and updates), into Kafka in transactions, and the process's peak
//! RSS. "Published" means committed: the clock stops when the raw topic's last stable offset
//! (what read_committed readers see) covers the events. Writes JSON to `--out`.
//!
//! `cargo bench -p cdc-extractor --bench extractor -- --rows 200000 --out target/bench/extractor.json`
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use support::{Fixture, run};

const INSERT_BATCH: usize = 1_000;

/// Sum over partitions of the raw topic's last stable offset (transaction markers included:
/// at most two per transaction, a rounding error here).
fn committed_end(fixture: &Fixture, consumer: &BaseConsumer, topic: &str) -> i64 {
    let Ok(partitions) =
        cdc_service_kit::kafka::topic_partitions(consumer, topic, Duration::from_secs(5))
    else {
        return 0;
    };
    let _ = fixture;
    partitions
        .into_iter()
        .filter_map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .ok()
                .map(|(_, high)| high)
        })
        .sum()
}

/// Waits until `target` events are committed; returns when the first event beyond `start`
/// was seen and when the target was reached.
async fn until_committed(
    fixture: &Fixture,
    topic: &str,
    start: i64,
    target: i64,
    process: &cdc_test_harness::process::ServiceProcess,
) -> (Instant, Instant) {
    let consumer: BaseConsumer = cdc_test_harness::kafka::client_config(&fixture.stack)
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let began = Instant::now();
    let mut first = None;
    loop {
        let end = committed_end(fixture, &consumer, topic);
        if first.is_none() && end > start {
            first = Some(Instant::now());
        }
        if end >= target {
            return (first.unwrap_or_else(Instant::now), Instant::now());
        }
        assert!(
            began.elapsed() < Duration::from_secs(900),
            "{end} of {target} committed after 900 s\n{}",
            process.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn insert_rows(fixture: &Fixture, first_id: usize, count: usize) {
    let mut sql = fixture.sql().await;
    for start in (first_id..first_id + count).step_by(INSERT_BATCH) {
        let values: Vec<String> = (start..(start + INSERT_BATCH).min(first_id + count))
            .map(|id| {
                format!(
                    "({id}, N'customer {id}', N'c{id}@example.com', {}.{:02}, '2024-03-01 10:00:00.1234567', N'open')",
                    id % 1000,
                    id % 100
                )
            })
            .collect();
        run(
            &mut sql,
            &format!("INSERT INTO dbo.orders VALUES {}", values.join(", ")),
        )
        .await;
    }
}

async fn captured(fixture: &Fixture, count: usize) {
    let mut sql = fixture.sql().await;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let rows = sql
            .simple_query("SELECT COUNT_BIG(*) FROM cdc.dbo_orders_CT")
            .await
            .unwrap()
            .into_row()
            .await
            .unwrap()
            .unwrap();
        if rows.get::<i64, _>(0).unwrap() >= count as i64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the capture job did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let option = cdc_test_harness::bench::option;
    let rows: usize = option("--rows").map_or(Ok(200_000), |r| r.parse())?;
    let out = option("--out").unwrap_or_else(|| "target/bench/extractor.json".to_owned());

    let mut fixture = Fixture::new().await;
    let table = fixture
        .captured_table(
            "orders",
            "id int NOT NULL PRIMARY KEY, customer nvarchar(40) NOT NULL, email nvarchar(80) NULL, \
             amount decimal(12,2) NULL, placed_at datetime2(7) NULL, status nvarchar(12) NOT NULL",
        )
        .await;
    let topic = fixture.names.raw(&table).unwrap();
    let settings = fixture.settings_tuned(
        &option("--stream").unwrap_or_default().replace("\\n", "\n"),
        "[snapshot]\nchunk_rows = 10000\nmax_pending_rows = 100000",
    );

    // Snapshot: `rows` rows already there.
    insert_rows(&fixture, 1, rows).await;
    captured(&fixture, rows).await;
    let started = Instant::now();
    let mut process = fixture.start(&settings);
    // From process start: a snapshot can commit in a handful of transactions, so the time
    // from its first commit says little; start-up (group join, discovery) is included.
    let (_, snapshot_done) = until_committed(&fixture, &topic, 0, rows as i64, &process).await;
    let snapshot_seconds = (snapshot_done - started).as_secs_f64();
    let snapshot_rate = rows as f64 / snapshot_seconds;
    println!(
        "snapshot: {rows} rows in {snapshot_seconds:.2} s from process start = {snapshot_rate:.0} rows/s"
    );
    let snapshot_rss = process.memory_kib();
    process.terminate(Duration::from_secs(30));

    // Stream: as many inserts again, and an update of half the rows, captured while the
    // extractor is stopped; then it reads the backlog.
    let before = committed_end(
        &fixture,
        &cdc_test_harness::kafka::client_config(&fixture.stack)
            .set("isolation.level", "read_committed")
            .create()
            .unwrap(),
        &topic,
    );
    insert_rows(&fixture, rows + 1, rows).await;
    let mut sql = fixture.sql().await;
    for start in (1..=rows / 2).step_by(INSERT_BATCH) {
        run(
            &mut sql,
            &format!(
                "UPDATE dbo.orders SET status = N'paid', amount = amount + 1 WHERE id BETWEEN {start} AND {}",
                start + INSERT_BATCH - 1
            ),
        )
        .await;
    }
    let stream_events = rows + rows / 2;
    captured(&fixture, rows * 2 + rows).await;
    let process = fixture.start(&settings);
    let (stream_first, stream_done) = until_committed(
        &fixture,
        &topic,
        before,
        before + stream_events as i64,
        &process,
    )
    .await;
    let stream_rate = stream_events as f64 / (stream_done - stream_first).as_secs_f64();
    let scraped = cdc_test_harness::service_contract::scrape(process.metrics);
    for line in scraped.lines().filter(|l| {
        l.starts_with("cdc_extractor_poll_duration_seconds_sum")
            || l.starts_with("cdc_extractor_poll_duration_seconds_count")
            || l.starts_with("cdc_extractor_commit_duration_seconds_sum")
            || l.starts_with("cdc_extractor_transactions_total")
    }) {
        println!("  {line}");
    }
    let (peak_kib, rss_kib) = process.memory_kib();
    println!(
        "stream: {stream_events} events ({rows} inserts, {} updates) in {:.2} s = {stream_rate:.0} events/s",
        rows / 2,
        (stream_done - stream_first).as_secs_f64()
    );
    println!(
        "extractor RSS: snapshot peak {} MiB; stream peak {} MiB, now {} MiB",
        snapshot_rss.0 / 1024,
        peak_kib / 1024,
        rss_kib / 1024
    );
    let json = serde_json::json!({
        "benchmark": "extractor",
        "source": "mssql-sim (in process), capture job polling every 20 ms",
        "snapshot_rows": rows,
        "snapshot_seconds_from_process_start": snapshot_seconds,
        "snapshot_rows_per_second_from_process_start": snapshot_rate,
        "stream_events": stream_events,
        "stream_events_per_second": stream_rate,
        "snapshot_peak_rss_mib": snapshot_rss.0 as f64 / 1024.0,
        "stream_peak_rss_mib": peak_kib as f64 / 1024.0,
        "rss_mib": rss_kib as f64 / 1024.0,
    });
    cdc_test_harness::bench::write_result(&out, &json)?;
    Ok(())
}

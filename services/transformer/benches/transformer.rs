//! The transformer's benchmark on the local stack: events/s through one instance with a
//! typical rule set (a column dropped, one renamed, an HMAC mask, a keep-last mask, a row
//! filter, a computed column), and the instance's peak RSS. The raw topic is filled first;
//! the clock runs from the process start until the consumer group's committed offsets reach
//! the raw topic's end (exactly-once commits: committed means transformed and produced).
//! Writes JSON to `--out`.
//!
//! `cargo bench -p cdc-transformer --bench transformer -- --events 1000000 --out target/bench/transformer.json`
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cdc_model::proto::value::Kind;
use cdc_model::proto::{ChangeEvent, LogicalType, Timestamp, Value};
use cdc_model::value::of;
use cdc_test_harness::kafka::client_config;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use support::{Events, Fixture, column, decimal, int, schema, source_table, text};

const PARTITIONS: i32 = 4;

const RULES: &str = r#"
[[rules]]
name = "drop notes"
tables = "bench.dbo.orders"
exclude_columns = ["internal_notes"]

[[rules]]
name = "rename customer"
tables = "bench.dbo.orders"
rename_column = { from = "customer", to = "customer_name" }

[[rules]]
name = "hash email"
tables = "bench.dbo.*"
mask = { column = "email", method = "hmac" }

[[rules]]
name = "card last four"
tables = "bench.dbo.orders"
mask = { column = "card", method = "keep_last", length = 4 }

[[rules]]
name = "no cancelled"
tables = "bench.dbo.orders"
filter = "status <> 'cancelled' AND amount >= 0"

[[rules]]
name = "commit time"
tables = "bench.dbo.orders"
add_column = { name = "cdc_committed_at", value = "commit_time" }
"#;

fn row(id: i64, generation: i64) -> Vec<Value> {
    let status = [
        "new",
        "paid",
        "shipped",
        "cancelled",
        "paid",
        "new",
        "paid",
        "shipped",
        "paid",
        "new",
    ];
    vec![
        int(id),
        text(&format!("customer-{}", id % 9_973)),
        text(&format!("user{id}@example.com")),
        text("4111111111111111"),
        text(status[((id + generation) % 10) as usize]),
        decimal(i128::from(id % 100_000) * 100 + i128::from(generation), 2),
        of(Kind::Timestamp(Timestamp {
            seconds: 1_700_000_000 + id,
            nanos: 123_456_700,
        })),
        text("internal remark that never leaves"),
    ]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let option = cdc_test_harness::bench::option;
    let count: usize = option("--events").map_or(Ok(1_000_000), |r| r.parse())?;
    let out = option("--out").unwrap_or_else(|| "target/bench/transformer.json".to_owned());
    // Extra configuration sections to try settings, e.g. `--extra "[batch]\nmax_wait_ms = 500"`.
    let extra = option("--extra").unwrap_or_default().replace("\\n", "\n");

    let mut fixture = Fixture::new().await;
    let table = source_table("bench", "dbo", "orders");
    let raw = fixture.raw_topic(&table, PARTITIONS).await;
    let mut events = Events::new(schema(
        &table,
        vec![
            column("id", LogicalType::Int64, false),
            column("customer", LogicalType::Text, false),
            column("email", LogicalType::Text, true),
            column("card", LogicalType::Text, true),
            column("status", LogicalType::Text, false),
            column("amount", LogicalType::Decimal, true),
            column("placed_at", LogicalType::Timestamp, true),
            column("internal_notes", LogicalType::Text, true),
        ],
        &["id"],
    ));
    fixture.publish_schema(&events.schema).await;
    // A typical change mix: 70 % inserts, 25 % updates (with before images), 5 % deletes.
    let mut batch: Vec<ChangeEvent> = Vec::with_capacity(count);
    let mut next_id = 0i64;
    for n in 0..count {
        batch.push(match n % 20 {
            0..=13 => {
                next_id += 1;
                events.insert(row(next_id, 0))
            }
            14..=18 => {
                let id = (n as i64 * 7919) % next_id + 1;
                events.update(row(id, 0), row(id, 1))
            }
            _ => events.delete(row((n as i64 * 104_729) % next_id + 1, 1)),
        });
    }
    let queued = Instant::now();
    fixture.send(&raw, &batch).await;
    drop(batch);
    println!(
        "queued {count} raw events in {:.1} s",
        queued.elapsed().as_secs_f64()
    );
    let ends = cdc_test_harness::kafka::ends(&fixture.stack, &raw);

    let started = Instant::now();
    let transformer = fixture.start("bench", &format!("{extra}\n{RULES}"));
    let group = format!("{}-transformer", fixture.topics.prefix);
    let offsets = client_config(&fixture.stack)
        .set("group.id", &group)
        .create::<BaseConsumer>()?;
    let mut tenth: Option<(Instant, i64)> = None;
    let total: i64 = ends.values().sum();
    loop {
        let done = committed(&offsets, &raw, &ends);
        if tenth.is_none() && done >= total / 10 {
            tenth = Some((Instant::now(), done));
        }
        if done >= total {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not done within 600 s ({done} of {total})\n{}",
            transformer.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (tenth_at, tenth_done) = tenth.unwrap();
    let steady = (total - tenth_done) as f64 / tenth_at.elapsed().as_secs_f64();
    let (peak_rss_kib, rss_kib) = transformer.memory_kib();
    println!(
        "transformer: {total} events in {seconds:.2} s = {:.0} events/s from process start; \
         {steady:.0} events/s after the first 10 %",
        total as f64 / seconds
    );
    println!(
        "transformer RSS: peak {} MiB, now {} MiB",
        peak_rss_kib / 1024,
        rss_kib / 1024
    );
    let scraped = cdc_test_harness::service_contract::scrape(transformer.metrics);
    for line in scraped.lines().filter(|l| {
        l.starts_with("cdc_transformer_events_total")
            || l.starts_with("cdc_transformer_transactions_total")
            || l.starts_with("cdc_transformer_commit_duration_seconds_sum")
    }) {
        println!("  {line}");
    }
    let json = serde_json::json!({
        "benchmark": "transformer",
        "events": total,
        "seconds_from_process_start": seconds,
        "events_per_second_from_process_start": total as f64 / seconds,
        "events_per_second_after_first_tenth": steady,
        "rules": 6,
        "partitions": PARTITIONS,
        "transformer_peak_rss_mib": peak_rss_kib as f64 / 1024.0,
        "transformer_rss_mib": rss_kib as f64 / 1024.0,
    });
    cdc_test_harness::bench::write_result(&out, &json)?;
    Ok(())
}

/// Events whose offsets the group has committed (transformed and produced, exactly once).
fn committed(consumer: &BaseConsumer, topic: &str, ends: &BTreeMap<i32, i64>) -> i64 {
    let mut wanted = TopicPartitionList::new();
    for p in ends.keys() {
        wanted
            .add_partition_offset(topic, *p, Offset::Invalid)
            .unwrap();
    }
    let Ok(list) = consumer.committed_offsets(wanted, Duration::from_secs(5)) else {
        return 0;
    };
    list.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(at) => at,
            _ => 0,
        })
        .sum()
}

//! The end-to-end benchmark: the whole pipeline (the SQL Server simulator in this process,
//! the extractor, the transformer, the loader and the reconciler as release-build processes,
//! Kafka and PostgreSQL from the local stack), all on this machine.
//!
//! - **Sustained throughput.** `--rows` rows are inserted into `dbo.bulk` through tiberius by
//!   `--writers` connections, as fast as the simulator takes them, in explicit transactions of
//!   `--rows-per-transaction` rows (one multi-row INSERT each), then `--update-rows` of them
//!   are updated the same way. Each phase is timed from its first commit until its last row is
//!   applied in PostgreSQL (the rows of every writer's last transaction are there, confirmed by
//!   a full count). The writers' own rate is reported too, and when each stage (extractor,
//!   transformer, loader) had counted all of the phase's rows, from their `/metrics`.
//! - **Lag at a fixed rate.** One writer inserts into `dbo.paced` at `--rate` rows/s (one
//!   transaction every `--tick-ms`) for `--lag-seconds`. The target table gets an `applied_at`
//!   column set by a `BEFORE INSERT OR UPDATE` trigger to `clock_timestamp()` (the loader keeps
//!   target columns it does not know); a row's lag is `applied_at` minus `cdc_committed_at`,
//!   the source commit time the transformer's rule adds (the simulator's commit time, a
//!   `datetime`: 1/300 s resolution). Percentiles are computed by PostgreSQL over every row of
//!   the phase.
//! - **Resources.** Each service's CPU (utime + stime from `/proc/<pid>/stat`, as % of one
//!   core over each phase) and resident memory (`VmRSS` sampled every 250 ms, and `VmHWM`),
//!   the same for this process (simulator and writers), Kafka and PostgreSQL (postmaster and
//!   backends, CPU only), and the machine's busy time.
//!
//! Writes JSON to `--out` and prints a Markdown table. Build the services first:
//!
//! ```sh
//! cargo build --release --bins -p cdc-extractor -p cdc-transformer -p cdc-loader -p cdc-reconciler
//! cargo bench -p cdc-e2e-tests --bench pipeline -- --rows 500000 --rate 10000 --lag-seconds 60 \
//!   --out target/bench/pipeline.json
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

#[path = "pipeline/report.rs"]
mod report;
#[path = "pipeline/sampler.rs"]
mod sampler;
#[path = "pipeline/visibility.rs"]
mod visibility;
#[path = "pipeline/workload.rs"]
mod workload;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cdc_e2e_tests::{Pipeline, SERVICES};
use serde_json::json;

use report::{Usage, round1, round2, thousands, verdict};
use sampler::{Counter, Sampler, Source, Watched};

/// The simulator's own allocator, as in its binary (`tests/mssql-sim/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The loader creates `public.paced` from the warm-up row; this column and trigger then
/// record when each row was written there.
const ADD_APPLIED_AT: &str = "ALTER TABLE public.paced ADD COLUMN applied_at timestamptz";
const APPLIED_AT_FUNCTION: &str = "CREATE FUNCTION public.bench_applied_at() RETURNS trigger
LANGUAGE plpgsql AS $$ BEGIN NEW.applied_at := clock_timestamp(); RETURN NEW; END $$";
const APPLIED_AT_TRIGGER: &str = "CREATE TRIGGER bench_applied_at BEFORE INSERT OR UPDATE
ON public.paced FOR EACH ROW EXECUTE FUNCTION public.bench_applied_at()";

/// Per-row lag of the lag phase's rows, seconds: p50, p95, p99, max, mean, count.
const LAG_PERCENTILES: &str = "WITH lag AS (
  SELECT extract(epoch FROM applied_at - cdc_committed_at)::float8 AS s FROM public.paced WHERE id > 0)
SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY s), max(s), avg(s), count(*)
FROM lag";

/// p99 lag of each 10-second slice of the lag phase (by commit time), seconds.
const LAG_P99_BY_10S: &str = "WITH lag AS (
  SELECT cdc_committed_at AS at, extract(epoch FROM applied_at - cdc_committed_at)::float8 AS s
  FROM public.paced WHERE id > 0)
SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY s)
FROM lag GROUP BY floor(extract(epoch FROM at - (SELECT min(at) FROM lag)) / 10) ORDER BY 1";

/// The benchmark's settings, from the command line.
struct Settings {
    rows: i64,
    update_rows: i64,
    writers: usize,
    rows_per_transaction: i64,
    rate: i64,
    lag_seconds: u64,
    tick_ms: u64,
    out: String,
}

impl Settings {
    fn parse() -> anyhow::Result<Settings> {
        let option = cdc_test_harness::bench::option;
        let number = |name: &str, default: i64| -> anyhow::Result<i64> {
            option(name).map_or(Ok(default), |v| {
                v.parse()
                    .with_context(|| format!("{name} {v}: not a number"))
            })
        };
        let rows = number("--rows", 500_000)?;
        let settings = Settings {
            rows,
            update_rows: number("--update-rows", rows / 2)?.min(rows),
            writers: usize::try_from(number("--writers", 2)?)?,
            rows_per_transaction: number("--rows-per-transaction", 1_000)?,
            rate: number("--rate", 10_000)?,
            lag_seconds: u64::try_from(number("--lag-seconds", 60)?)?,
            tick_ms: u64::try_from(number("--tick-ms", 20)?)?,
            out: option("--out").unwrap_or_else(|| "target/bench/pipeline.json".to_owned()),
        };
        if !(1..=1_000).contains(&settings.rows_per_transaction) || settings.writers == 0 {
            bail!("--rows-per-transaction must be 1 to 1000 (one INSERT) and --writers at least 1");
        }
        Ok(settings)
    }
}

/// The figures of one sustained phase.
struct Sustained {
    name: &'static str,
    rows: i64,
    /// First commit to last row applied.
    seconds: f64,
    /// First commit to last commit.
    writer_seconds: f64,
    stages: Vec<(&'static str, Option<f64>)>,
    usage: Vec<Usage>,
}

impl Sustained {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.seconds
    }

    fn writer_rate(&self) -> f64 {
        self.rows as f64 / self.writer_seconds
    }

    fn json(&self) -> serde_json::Value {
        let stages: serde_json::Map<String, serde_json::Value> = self
            .stages
            .iter()
            .map(|(stage, s)| ((*stage).to_owned(), json!(s.map(round2))))
            .collect();
        json!({
            "rows": self.rows,
            "seconds": round2(self.seconds),
            "rows_per_second": self.rate().round(),
            "writer_seconds": round2(self.writer_seconds),
            "writer_rows_per_second": self.writer_rate().round(),
            "stage_counted_all_rows_after_seconds": stages,
            "usage": report::usage_json(&self.usage),
        })
    }
}

/// The figures of the lag phase.
struct Lag {
    rows: i64,
    writer_rate: f64,
    /// p50, p95, p99, max, mean, in seconds.
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
    mean: f64,
    p99_by_10s: Vec<f64>,
    /// p50, p95, p99 from commit to visible on the raw and on the clean topic, seconds.
    visible: Vec<(&'static str, [Option<f64>; 3])>,
    usage: Vec<Usage>,
}

impl Lag {
    fn json(&self, settings: &Settings) -> serde_json::Value {
        let ms = |s: f64| round1(s * 1000.0);
        json!({
            "rate_rows_per_second": settings.rate,
            "seconds": settings.lag_seconds,
            "rows": self.rows,
            "writer_rows_per_second": self.writer_rate.round(),
            "lag_ms": {
                "p50": ms(self.p50), "p95": ms(self.p95), "p99": ms(self.p99),
                "max": ms(self.max), "mean": ms(self.mean),
            },
            "p99_ms_by_10_seconds": self.p99_by_10s.iter().map(|s| ms(*s)).collect::<Vec<_>>(),
            "commit_to_visible_ms": self.visible.iter().map(|(topic, [p50, p95, p99])| {
                let ms = |s: &Option<f64>| s.map(ms);
                ((*topic).to_owned(), json!({ "p50": ms(p50), "p95": ms(p95), "p99": ms(p99) }))
            }).collect::<serde_json::Map<_, _>>(),
            "usage": report::usage_json(&self.usage),
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse()?;
    let machine = report::machine();
    let ticks_per_second = sampler::clock_ticks_per_second();
    let pipeline = Pipeline::start(workload::TABLES).await;
    warm_up(&pipeline).await?;
    let sampler = Sampler::start(
        watched(&pipeline),
        counters(&pipeline),
        Duration::from_millis(250),
    );

    let insert = sustained(&pipeline, &sampler, &settings, "insert", ticks_per_second).await?;
    print_sustained(&insert);
    let update = if settings.update_rows > 0 {
        let update = sustained(&pipeline, &sampler, &settings, "update", ticks_per_second).await?;
        print_sustained(&update);
        Some(update)
    } else {
        None
    };
    let lag = lag(&pipeline, &sampler, &settings, ticks_per_second).await?;
    println!(
        "lag at {} rows/s (writer reached {:.0}): p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        settings.rate,
        lag.writer_rate,
        lag.p50 * 1e3,
        lag.p95 * 1e3,
        lag.p99 * 1e3,
        lag.max * 1e3
    );
    let end = sampler.now();
    let peaks: Vec<(String, u64)> = sampler
        .watched()
        .iter()
        .zip(&end.peak_kib)
        .filter(|(_, kib)| **kib > 0)
        .map(|(w, kib)| (w.name.clone(), *kib))
        .collect();
    let result = Results {
        machine,
        settings: &settings,
        insert: &insert,
        update: update.as_ref(),
        lag: &lag,
        peaks: &peaks,
    };
    println!("\n{}\n", result.markdown().join("\n"));
    cdc_test_harness::bench::write_result(&settings.out, &result.json())?;
    drop(sampler);
    drop(pipeline);
    Ok(())
}

/// One row in each table, so the loader creates both target tables; then the lag phase's
/// `applied_at` column and trigger.
async fn warm_up(pipeline: &Pipeline) -> anyhow::Result<()> {
    let mut client = pipeline.sql().await;
    for table in ["bulk", "paced"] {
        workload::run(&mut client, &workload::insert_transaction(table, 0..=0)).await?;
        let count = format!("SELECT count(*) FROM public.{table}");
        pipeline
            .wait_for_target(&count, 1, Duration::from_secs(120))
            .await;
    }
    for statement in [ADD_APPLIED_AT, APPLIED_AT_FUNCTION, APPLIED_AT_TRIGGER] {
        sqlx::raw_sql(statement)
            .execute(&pipeline.target.pool)
            .await
            .with_context(|| format!("preparing the lag phase: {statement}"))?;
    }
    Ok(())
}

/// The processes to report on: the four services, this process, and the stack's Kafka and
/// PostgreSQL when their pid files are there.
fn watched(pipeline: &Pipeline) -> Vec<Watched> {
    let mut watched: Vec<Watched> = SERVICES
        .iter()
        .map(|name| Watched {
            name: (*name).to_owned(),
            source: Source::Process(pipeline.service(name).pid()),
        })
        .collect();
    watched.push(Watched {
        name: "simulator + writers (this process)".to_owned(),
        source: Source::Process(std::process::id()),
    });
    let pids = cdc_test_harness::stack::workspace_root().join(".stack/pids");
    let pid = |file: &str| -> Option<u32> {
        std::fs::read_to_string(pids.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    if let Some(kafka) = pid("kafka.pid") {
        watched.push(Watched {
            name: "Kafka".to_owned(),
            source: Source::Process(kafka),
        });
    }
    if let Some(postmaster) = pid("postgres.pid") {
        watched.push(Watched {
            name: "PostgreSQL (all backends)".to_owned(),
            source: Source::Tree(postmaster),
        });
    }
    watched
}

/// Each stage's progress counter.
fn counters(pipeline: &Pipeline) -> Vec<Counter> {
    [
        ("extractor", "cdc_extractor_events_total"),
        ("transformer", "cdc_transformer_events_total"),
        ("loader", "cdc_loader_rows_applied_total"),
    ]
    .into_iter()
    .map(|(stage, metric)| Counter {
        stage,
        addr: pipeline.service(stage).metrics,
        metric,
    })
    .collect()
}

/// Inserts (or updates) rows of `dbo.bulk` as fast as the writers can and waits until all of
/// them are applied.
async fn sustained(
    pipeline: &Pipeline,
    sampler: &Sampler,
    settings: &Settings,
    name: &'static str,
    ticks_per_second: f64,
) -> anyhow::Result<Sustained> {
    let (rows, make, applied): (_, fn(&str, _) -> String, _) = match name {
        "insert" => (settings.rows, workload::insert_transaction, "true"),
        _ => (
            settings.update_rows,
            workload::update_transaction,
            "version = 1",
        ),
    };
    let mut clients = Vec::new();
    for _ in 0..settings.writers {
        clients.push(pipeline.sql().await);
    }
    let before = sampler.now();
    let written = workload::write_as_fast_as_possible(
        clients,
        rows,
        settings.rows_per_transaction,
        make,
        "bulk",
    )
    .await?;
    let applied_at = wait_applied(pipeline, &written.last_ids, applied, rows).await?;
    let after = sampler.now();
    Ok(Sustained {
        name,
        rows,
        seconds: (applied_at - written.first_commit).as_secs_f64(),
        writer_seconds: (written.last_commit - written.first_commit).as_secs_f64(),
        stages: report::stage_seconds(sampler, &before, &after, written.first_commit, rows),
        usage: report::usage(sampler, &before, &after, ticks_per_second),
    })
}

/// When the rows `last_ids` all satisfy `applied` in `public.bulk`, and a full count of rows
/// that do agrees with `expected` (polled every 100 ms; 10 minutes at most).
async fn wait_applied(
    pipeline: &Pipeline,
    last_ids: &[i64],
    applied: &str,
    expected: i64,
) -> anyhow::Result<Instant> {
    let pool = &pipeline.target.pool;
    let last = format!("SELECT count(*) FROM public.bulk WHERE id = ANY($1) AND {applied}");
    let all = format!("SELECT count(*) FROM public.bulk WHERE id > 0 AND {applied}");
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last_seen = false;
    while Instant::now() < deadline {
        if !last_seen {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(last.clone()))
                .bind(last_ids)
                .fetch_one(pool)
                .await
                .context("counting the last transactions' rows in the target")?;
            last_seen = n == i64::try_from(last_ids.len())?;
        }
        let at = Instant::now();
        if last_seen {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(all.clone()))
                .fetch_one(pool)
                .await
                .context("counting the phase's rows in the target")?;
            if n == expected {
                return Ok(at);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "the target did not have all {expected} rows within 10 minutes\n{}",
        pipeline.output()
    )
}

/// Paced inserts into `dbo.paced`, then the per-row lag of every row.
async fn lag(
    pipeline: &Pipeline,
    sampler: &Sampler,
    settings: &Settings,
    ticks_per_second: f64,
) -> anyhow::Result<Lag> {
    let mut client = pipeline.sql().await;
    let topics = cdc_model::topics::Topics::new(&pipeline.prefix)?;
    let table = cdc_model::proto::TableId {
        database: cdc_e2e_tests::DATABASE.to_owned(),
        schema: "dbo".to_owned(),
        table: "paced".to_owned(),
    };
    let watching = visibility::Visibility::start(
        &cdc_test_harness::Stack::get().kafka_bootstrap,
        vec![topics.raw(&table)?, topics.clean(&table)?],
        visibility::now_micros(),
    )?;
    let before = sampler.now();
    let paced = workload::write_paced(
        &mut client,
        settings.rate,
        Duration::from_secs(settings.lag_seconds),
        Duration::from_millis(settings.tick_ms),
    )
    .await?;
    let count = "SELECT count(*) FROM public.paced WHERE id > 0";
    pipeline
        .wait_for_target(count, paced.rows, Duration::from_secs(300))
        .await;
    let after = sampler.now();
    let mut delays = watching.stop()?;
    let visible = ["raw topic", "clean topic"]
        .into_iter()
        .zip(delays.iter_mut())
        .map(|(topic, d)| (topic, [0.5, 0.95, 0.99].map(|q| visibility::quantile(d, q))))
        .collect();
    let pool = &pipeline.target.pool;
    let (percentiles, max, mean, rows): (Vec<f64>, f64, f64, i64) = sqlx::query_as(LAG_PERCENTILES)
        .fetch_one(pool)
        .await
        .context("computing the lag percentiles")?;
    let p99_by_10s: Vec<f64> = sqlx::query_scalar(LAG_P99_BY_10S)
        .fetch_all(pool)
        .await
        .context("computing the lag's p99 by 10-second slice")?;
    let [p50, p95, p99] = percentiles[..] else {
        bail!("percentile_cont gave {percentiles:?}");
    };
    Ok(Lag {
        rows,
        writer_rate: paced.rows as f64 / paced.seconds,
        p50,
        p95,
        p99,
        max,
        mean,
        p99_by_10s,
        visible,
        usage: report::usage(sampler, &before, &after, ticks_per_second),
    })
}

fn print_sustained(phase: &Sustained) {
    println!(
        "{}: {} rows in {:.2} s = {:.0} rows/s end to end; writers {:.0} rows/s; stages done at {:?}",
        phase.name,
        phase.rows,
        phase.seconds,
        phase.rate(),
        phase.writer_rate(),
        phase.stages
    );
}

/// Everything measured, for the JSON file and the Markdown table.
struct Results<'a> {
    machine: serde_json::Value,
    settings: &'a Settings,
    insert: &'a Sustained,
    update: Option<&'a Sustained>,
    lag: &'a Lag,
    peaks: &'a [(String, u64)],
}

impl Results<'_> {
    fn largest_service_peak(&self) -> (String, u64) {
        self.peaks
            .iter()
            .filter(|(name, _)| SERVICES.contains(&name.as_str()))
            .max_by_key(|(_, kib)| *kib)
            .cloned()
            .unwrap_or_default()
    }

    fn json(&self) -> serde_json::Value {
        let s = self.settings;
        let (largest, largest_kib) = self.largest_service_peak();
        let peaks: serde_json::Map<String, serde_json::Value> = self
            .peaks
            .iter()
            .map(|(name, kib)| (name.clone(), json!(round1(report::mb(*kib)))))
            .collect();
        json!({
            "machine": self.machine,
            "settings": {
                "rows": s.rows, "update_rows": s.update_rows, "writers": s.writers,
                "rows_per_transaction": s.rows_per_transaction, "rate": s.rate,
                "lag_seconds": s.lag_seconds, "tick_ms": s.tick_ms,
            },
            "insert": self.insert.json(),
            "update": self.update.map(Sustained::json),
            "lag": self.lag.json(s),
            "peak_rss_mb": peaks,
            "targets": {
                "sustained_rows_per_second_at_least_50000": self.insert.rate() >= 50_000.0,
                "p99_lag_under_1_s_at_10000_rows_per_second": self.lag.p99 < 1.0 && s.rate == 10_000,
                "each_service_under_100_mb_rss": largest_kib < report::SERVICE_RSS_TARGET_KIB,
                "largest_service_rss": largest,
            },
        })
    }

    fn markdown(&self) -> Vec<String> {
        let (insert, lag, s) = (self.insert, self.lag, self.settings);
        let (largest, largest_kib) = self.largest_service_peak();
        let mut lines = vec![
            "| measure | target | measured |".to_owned(),
            "|---|---|---|".to_owned(),
            format!(
                "| sustained inserts, first commit to last row applied, rows/s | ≥ 50,000 | {} ({}) |",
                thousands(insert.rate()),
                verdict(insert.rate() >= 50_000.0)
            ),
            format!(
                "| the source writers' own rate meanwhile ({} connections, {}-row transactions), rows/s | — | {} |",
                s.writers,
                s.rows_per_transaction,
                thousands(insert.writer_rate())
            ),
        ];
        if let Some(update) = self.update {
            lines.push(format!(
                "| sustained updates, first commit to last row applied, rows/s | — | {} |",
                thousands(update.rate())
            ));
            lines.push(format!(
                "| the source writers' own rate meanwhile, rows/s | — | {} |",
                thousands(update.writer_rate())
            ));
        }
        lines.push(format!(
            "| lag at {} rows/s for {} s, p50 / p95 / p99 (max) | p99 < 1 s | {:.0} / {:.0} / {:.0} ms ({:.0} ms) ({}) |",
            thousands(s.rate as f64),
            s.lag_seconds,
            lag.p50 * 1e3,
            lag.p95 * 1e3,
            lag.p99 * 1e3,
            lag.max * 1e3,
            verdict(lag.p99 < 1.0 && s.rate == 10_000)
        ));
        for (topic, [p50, p95, p99]) in &lag.visible {
            let ms = |s: &Option<f64>| s.map_or("—".to_owned(), |s| format!("{:.0}", s * 1e3));
            lines.push(format!(
                "| lag to the {topic}: commit to visible to a read_committed consumer, p50 / p95 / p99 | — | {} / {} / {} ms |",
                ms(p50),
                ms(p95),
                ms(p99)
            ));
        }
        lines.push(format!(
            "| the paced writer's rate, rows/s | {} | {} |",
            thousands(s.rate as f64),
            thousands(lag.writer_rate)
        ));
        lines.push(format!(
            "| largest service peak RSS | < 100 MB each | {largest} {:.0} MB ({}) |",
            report::mb(largest_kib),
            verdict(largest_kib < report::SERVICE_RSS_TARGET_KIB)
        ));
        lines.push(String::new());
        let mut phases: Vec<(&str, &[Usage])> = vec![("insert", &insert.usage)];
        if let Some(update) = self.update {
            phases.push(("update", &update.usage));
        }
        phases.push(("lag", &lag.usage));
        lines.extend(report::process_table(&phases, self.peaks));
        lines
    }
}

//! The simulator's benchmark: rows/s accepted through multi-row INSERTs (literal values, and
//! parameters of one reused `sp_executesql` text), and CDC change rows/s
//! served to one reader over TDS through tiberius. Writes JSON to `--out` and prints a table.
//!
//! `cargo run --release -p mssql-sim --example bench -- --rows 200000 --out target/bench/mssql-sim.json`
//!
//! With `--checksum-rows N` it also times the reconciler's per-bucket checksum query (1,024
//! buckets, SHA-256 of each row's canonical encoding) over an N-row, 8-column table, and its
//! drill-down into three buckets; `--rows 0` skips the CDC measures.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use mssql_sim::{Simulator, SimulatorConfig};
use rust_decimal::Decimal;
use tiberius::{AuthMethod, Client, Config, EncryptionLevel, Query};
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncWriteCompatExt;

/// The simulator's own allocator, as in its binary (`src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PASSWORD: &str = "Bench-Pa55word!";
const ROWS_PER_INSERT: usize = 1000;
/// 4 parameters a row; SQL Server takes at most 2,100 parameters a call.
const PARAMETERIZED_ROWS_PER_INSERT: usize = 500;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let rows: usize = option("--rows").map_or(Ok(200_000), |r| r.parse())?;
    let out = option("--out").unwrap_or_else(|| "target/bench/mssql-sim.json".to_owned());
    let capture_poll_ms: u64 = option("--capture-poll-ms").map_or(Ok(10), |r| r.parse())?;
    let checksum_rows: usize = option("--checksum-rows").map_or(Ok(0), |r| r.parse())?;

    let mut config = SimulatorConfig::new(PASSWORD);
    config.capture.poll_interval = Duration::from_millis(capture_poll_ms);
    let sim = Simulator::start("127.0.0.1:0".parse()?, config).await?;
    let mut client = connect(&sim).await?;
    let mut json_fields = vec![
        format!("\"rows\": {rows}"),
        format!("\"rows_per_insert\": {ROWS_PER_INSERT}"),
    ];
    let mut table = vec![
        "| measure | rows | seconds | rows/s |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];
    if rows > 0 {
        let CdcMeasures {
            insert_seconds,
            parameterized_seconds,
            read_seconds,
        } = cdc_measures(&mut client, rows).await?;
        let insert_rate = rows as f64 / insert_seconds;
        let parameterized_rate = rows as f64 / parameterized_seconds;
        let changes = 2 * rows;
        let read_rate = changes as f64 / read_seconds;
        json_fields.push(format!("\"insert_seconds\": {insert_seconds:.3}"));
        json_fields.push(format!("\"insert_rows_per_second\": {insert_rate:.0}"));
        json_fields.push(format!(
            "\"parameterized_rows_per_insert\": {PARAMETERIZED_ROWS_PER_INSERT}"
        ));
        json_fields.push(format!(
            "\"parameterized_insert_seconds\": {parameterized_seconds:.3}"
        ));
        json_fields.push(format!(
            "\"parameterized_insert_rows_per_second\": {parameterized_rate:.0}"
        ));
        json_fields.push(format!("\"change_rows\": {changes}"));
        json_fields.push(format!("\"change_read_seconds\": {read_seconds:.3}"));
        json_fields.push(format!("\"change_rows_per_second\": {read_rate:.0}"));
        table.push(format!(
            "| multi-row INSERT, literal values ({ROWS_PER_INSERT} rows per statement) | {rows} | {insert_seconds:.2} | {insert_rate:.0} |"
        ));
        table.push(format!(
            "| multi-row INSERT, parameters ({PARAMETERIZED_ROWS_PER_INSERT} rows per sp_executesql, one text) | {rows} | {parameterized_seconds:.2} | {parameterized_rate:.0} |"
        ));
        table.push(format!(
            "| change rows served to one reader (one query, tiberius) | {changes} | {read_seconds:.2} | {read_rate:.0} |"
        ));
    }
    if checksum_rows > 0 {
        let measures = checksum_measures(&mut client, checksum_rows).await?;
        json_fields.push(format!("\"checksum_rows\": {checksum_rows}"));
        json_fields.push(format!(
            "\"checksum_seconds\": {:.3}",
            measures.checksum_seconds
        ));
        json_fields.push(format!(
            "\"checksum_cpu_seconds\": {:.2}",
            measures.checksum_cpu_seconds
        ));
        json_fields.push(format!("\"checksum_buckets\": {}", measures.buckets));
        json_fields.push(format!(
            "\"drill_down_seconds\": {:.3}",
            measures.drill_down_seconds
        ));
        json_fields.push(format!("\"count_seconds\": {:.3}", measures.count_seconds));
        table.push(format!(
            "| per-bucket checksums, 1,024 buckets, 8 columns (one query) | {checksum_rows} | {:.2} | {:.0} |",
            measures.checksum_seconds,
            checksum_rows as f64 / measures.checksum_seconds
        ));
        table.push(format!(
            "| (CPU time of that query, this process) | {checksum_rows} | {:.2} | |",
            measures.checksum_cpu_seconds
        ));
        table.push(format!(
            "| drill-down into 3 buckets ({} rows returned) | {checksum_rows} | {:.2} | {:.0} |",
            measures.drill_down_rows,
            measures.drill_down_seconds,
            checksum_rows as f64 / measures.drill_down_seconds
        ));
        table.push(format!(
            "| COUNT_BIG(*) | {checksum_rows} | {:.3} | {:.0} |",
            measures.count_seconds,
            checksum_rows as f64 / measures.count_seconds
        ));
    }
    json_fields.push(format!(
        "\"cores\": {}",
        std::thread::available_parallelism().map_or(0, usize::from)
    ));
    let json = format!("{{\n  {}\n}}\n", json_fields.join(",\n  "));
    if let Some(parent) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, &json)?;
    println!("{}", table.join("\n"));
    println!("(written to {out})");
    Ok(())
}

type SqlClient = Client<tokio_util::compat::Compat<TcpStream>>;

/// Rows/s through multi-row INSERTs into a captured table (literal values, then parameters),
/// and change rows/s read back.
async fn cdc_measures(client: &mut SqlClient, rows: usize) -> anyhow::Result<CdcMeasures> {
    client
        .simple_query(
            "CREATE DATABASE bench; USE bench; \
             CREATE TABLE dbo.events (id bigint NOT NULL PRIMARY KEY, kind nvarchar(20) NOT NULL, amount decimal(12,2) NULL, at datetime2(7) NULL); \
             EXEC sys.sp_cdc_enable_db; \
             EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'events', @role_name = NULL",
        )
        .await?
        .into_results()
        .await?;

    let started = Instant::now();
    for chunk_start in (0..rows).step_by(ROWS_PER_INSERT) {
        let values: Vec<String> = (chunk_start..(chunk_start + ROWS_PER_INSERT).min(rows))
            .map(|i| {
                format!(
                    "({i}, N'kind-{}', {}.{:02}, '2024-02-29 12:00:00.1234567')",
                    i % 7,
                    i % 10_000,
                    i % 100
                )
            })
            .collect();
        client
            .simple_query(format!(
                "INSERT INTO dbo.events VALUES {}",
                values.join(", ")
            ))
            .await?
            .into_results()
            .await?;
    }
    let insert_seconds = started.elapsed().as_secs_f64();

    // The same rows again (new keys), as parameters of one sp_executesql text reused for
    // every statement, as a client with a prepared multi-row INSERT sends them.
    let started = Instant::now();
    let text = parameterized_insert(PARAMETERIZED_ROWS_PER_INSERT);
    for chunk_start in (rows..2 * rows).step_by(PARAMETERIZED_ROWS_PER_INSERT) {
        let chunk_end = (chunk_start + PARAMETERIZED_ROWS_PER_INSERT).min(2 * rows);
        let text = if chunk_end - chunk_start == PARAMETERIZED_ROWS_PER_INSERT {
            text.clone()
        } else {
            parameterized_insert(chunk_end - chunk_start)
        };
        let mut query = Query::new(text);
        for i in chunk_start..chunk_end {
            query.bind(i as i64);
            query.bind(format!("kind-{}", i % 7));
            query.bind(Decimal::new((i % 1_000_000) as i64, 2));
            query.bind(
                NaiveDate::from_ymd_opt(2024, 2, 29)
                    .and_then(|d| d.and_hms_nano_opt(12, 0, 0, 123_456_700))
                    .unwrap(),
            );
        }
        query.execute(client).await?;
    }
    let parameterized_seconds = started.elapsed().as_secs_f64();
    let rows = 2 * rows;

    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let captured: i64 = client
            .simple_query("SELECT COUNT_BIG(*) FROM cdc.dbo_events_CT")
            .await?
            .into_row()
            .await?
            .and_then(|r| r.get(0))
            .unwrap_or(0);
        if captured as usize >= rows {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "capture did not finish: {captured} of {rows}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let changes = client
        .query(
            "SELECT ct.__$start_lsn, ct.__$seqval, ct.__$operation, ct.__$update_mask, ct.id, ct.kind, ct.amount, ct.at, ct.__$command_id \
             FROM cdc.dbo_events_CT AS ct WHERE ct.__$start_lsn > @P1 ORDER BY ct.__$start_lsn, ct.__$command_id, ct.__$seqval, ct.__$operation",
            &[&[0u8; 10].as_slice()],
        )
        .await?
        .into_first_result()
        .await?;
    let read_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        changes.len() == rows,
        "read {} change rows, expected {rows}",
        changes.len()
    );

    Ok(CdcMeasures {
        insert_seconds,
        parameterized_seconds,
        read_seconds,
    })
}

/// Seconds taken by each CDC measure.
struct CdcMeasures {
    /// Multi-row INSERTs with literal values, `rows` rows.
    insert_seconds: f64,
    /// Multi-row INSERTs with parameters, `rows` more rows.
    parameterized_seconds: f64,
    /// One reader reading all `2 * rows` change rows.
    read_seconds: f64,
}

/// `INSERT INTO dbo.events VALUES (@P1, @P2, @P3, @P4), ...` for `rows` rows.
fn parameterized_insert(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let first = row * 4 + 1;
            format!(
                "(@P{first}, @P{}, @P{}, @P{})",
                first + 1,
                first + 2,
                first + 3
            )
        })
        .collect();
    format!("INSERT INTO dbo.events VALUES {}", values.join(", "))
}
async fn connect(sim: &Simulator) -> anyhow::Result<Client<tokio_util::compat::Compat<TcpStream>>> {
    let mut config = Config::new();
    config.host("127.0.0.1");
    config.port(sim.addr().port());
    config.authentication(AuthMethod::sql_server("sa", PASSWORD));
    config.encryption(EncryptionLevel::NotSupported);
    let tcp = TcpStream::connect(sim.addr()).await?;
    tcp.set_nodelay(true)?;
    Ok(Client::connect(config, tcp.compat_write()).await?)
}

/// CPU seconds this process has used (user and system), from `/proc/self/stat`; 0 where
/// that file does not exist. The simulator runs in this process, so the difference over a
/// query is its cost even when other work shares the machine.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which ends with ')'): state is field 3; utime and stime
    // are fields 14 and 15, in clock ticks (100 per second on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// What the checksum benchmark measured.
struct ChecksumMeasures {
    checksum_seconds: f64,
    checksum_cpu_seconds: f64,
    buckets: usize,
    drill_down_seconds: f64,
    drill_down_rows: usize,
    count_seconds: f64,
}

/// The columns of the checksum table and how the reconciler renders each as canonical text.
const WIDE: &[(&str, &str)] = &[
    ("id", "CAST([id] AS varchar(20))"),
    ("name", "[name]"),
    ("amount", "CAST([amount] AS varchar(50))"),
    (
        "at",
        "CONVERT(varchar(26), CAST([at] AS datetime2(6)), 121)",
    ),
    ("flag", "CAST([flag] AS varchar(1))"),
    ("qty", "CAST([qty] AS varchar(20))"),
    (
        "ratio",
        "CASE WHEN [ratio] = 0 THEN '0000000000000000' ELSE LOWER(CONVERT(varchar(16), CAST([ratio] AS binary(8)), 2)) END",
    ),
    ("token", "LOWER(CAST([token] AS char(36)))"),
];

/// ENC(c) of the reconciler: 0x00 for NULL, else 0x01, the UTF-8 byte length, the bytes.
fn encoding(text: &str) -> String {
    let utf8 = format!(
        "CAST(CAST(CAST({text} AS nvarchar(max)) COLLATE Latin1_General_100_BIN2_UTF8 AS varchar(max)) AS varbinary(max))"
    );
    format!("ISNULL(0x01 + CAST(CAST(DATALENGTH({utf8}) AS int) AS binary(4)) + {utf8}, 0x00)")
}

/// Times the reconciler's queries over a `rows`-row table of 8 columns.
async fn checksum_measures(
    client: &mut SqlClient,
    rows: usize,
) -> anyhow::Result<ChecksumMeasures> {
    client
        .simple_query(
            "CREATE DATABASE bench_checksums; USE bench_checksums; \
             CREATE TABLE dbo.wide (id int NOT NULL PRIMARY KEY, name nvarchar(40) NULL, amount decimal(12,2) NULL, \
             at datetime2(3) NOT NULL, flag bit NOT NULL, qty bigint NOT NULL, ratio float NOT NULL, token uniqueidentifier NOT NULL)",
        )
        .await?
        .into_results()
        .await?;
    for chunk_start in (0..rows).step_by(ROWS_PER_INSERT) {
        let values: Vec<String> = (chunk_start..(chunk_start + ROWS_PER_INSERT).min(rows))
            .map(|i| {
                let name = if i % 10 == 0 {
                    "NULL".to_owned()
                } else {
                    format!("N'customer {i} Zoë'")
                };
                format!(
                    "({i}, {name}, {}.{:02}, '2024-{:02}-{:02} {:02}:{:02}:{:02}.{:03}', {}, {}, {}e-3, '{:08X}-1234-4abc-8def-{:012X}')",
                    i % 100_000,
                    i % 100,
                    1 + i % 12,
                    1 + i % 28,
                    i % 24,
                    i % 60,
                    (i / 60) % 60,
                    i % 1000,
                    i % 2,
                    i as i64 * 7_919 - 1_000_000,
                    i % 5_000,
                    i,
                    i * 31
                )
            })
            .collect();
        client
            .simple_query(format!("INSERT INTO dbo.wide VALUES {}", values.join(", ")))
            .await?
            .into_results()
            .await?;
    }
    let key = encoding(WIDE[0].1);
    let row: Vec<String> = WIDE.iter().map(|(_, text)| encoding(text)).collect();
    let bucket = format!("CAST(SUBSTRING(HASHBYTES('SHA2_256', {key}), 1, 4) AS bigint) % 1024");
    let checksums = format!(
        "SELECT {bucket} AS bucket, COUNT_BIG(*) AS row_count, \
         SUM(CAST(CAST(SUBSTRING(HASHBYTES('SHA2_256', {}), 1, 8) AS bigint) AS decimal(38,0))) AS hash_sum \
         FROM [dbo].[wide] GROUP BY {bucket}",
        row.join(" + ")
    );
    let (started, cpu_before) = (Instant::now(), cpu_seconds());
    let buckets = client
        .simple_query(checksums)
        .await?
        .into_first_result()
        .await?;
    let checksum_seconds = started.elapsed().as_secs_f64();
    let checksum_cpu_seconds = cpu_seconds() - cpu_before;
    let counted: i64 = buckets.iter().filter_map(|r| r.get::<i64, _>(1)).sum();
    anyhow::ensure!(
        counted as usize == rows,
        "the buckets hold {counted} rows, expected {rows}"
    );

    let texts: Vec<String> = WIDE
        .iter()
        .map(|(name, text)| format!("{text} AS {name}"))
        .collect();
    let drill_down = format!(
        "SELECT {} FROM [dbo].[wide] WHERE {bucket} IN (3, 17, 500)",
        texts.join(", ")
    );
    let started = Instant::now();
    let drilled = client
        .simple_query(drill_down)
        .await?
        .into_first_result()
        .await?;
    let drill_down_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    client
        .simple_query("SELECT COUNT_BIG(*) FROM [dbo].[wide]")
        .await?
        .into_row()
        .await?;
    let count_seconds = started.elapsed().as_secs_f64();
    Ok(ChecksumMeasures {
        checksum_seconds,
        checksum_cpu_seconds,
        buckets: buckets.len(),
        drill_down_seconds,
        drill_down_rows: drilled.len(),
        count_seconds,
    })
}

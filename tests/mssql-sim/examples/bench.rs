//! The simulator's benchmark: rows/s accepted through multi-row INSERTs, and CDC change rows/s
//! served to one reader over TDS through tiberius. Writes JSON to `--out` and prints a table.
//!
//! `cargo run --release -p mssql-sim --example bench -- --rows 200000 --out target/bench/mssql-sim.json`
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use mssql_sim::{Simulator, SimulatorConfig};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncWriteCompatExt;

const PASSWORD: &str = "Bench-Pa55word!";
const ROWS_PER_INSERT: usize = 1000;

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

    let mut config = SimulatorConfig::new(PASSWORD);
    config.capture.poll_interval = Duration::from_millis(capture_poll_ms);
    let sim = Simulator::start("127.0.0.1:0".parse()?, config).await?;
    let mut client = connect(&sim).await?;
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

    let insert_rate = rows as f64 / insert_seconds;
    let read_rate = rows as f64 / read_seconds;
    let json = format!(
        "{{\n  \"rows\": {rows},\n  \"rows_per_insert\": {ROWS_PER_INSERT},\n  \"insert_seconds\": {insert_seconds:.3},\n  \"insert_rows_per_second\": {insert_rate:.0},\n  \"change_read_seconds\": {read_seconds:.3},\n  \"change_rows_per_second\": {read_rate:.0},\n  \"cores\": {}\n}}\n",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    if let Some(parent) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, &json)?;
    println!("| measure | rows | seconds | rows/s |\n|---|---|---|---|");
    println!(
        "| multi-row INSERT ({ROWS_PER_INSERT} rows per statement) | {rows} | {insert_seconds:.2} | {insert_rate:.0} |"
    );
    println!(
        "| change rows served to one reader (one query, tiberius) | {rows} | {read_seconds:.2} | {read_rate:.0} |"
    );
    println!("(written to {out})");
    Ok(())
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

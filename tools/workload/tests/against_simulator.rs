//! The workload against the SQL Server simulator, on the compose stack's `shop` database: what
//! the summary says was committed is what the tables and the change tables hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cdc_workload::client::{self, SqlClient};
use cdc_workload::{ConnectionConfig, Encrypt, Mix, Summary, WorkloadConfig};
use mssql_sim::{Simulator, SimulatorConfig};
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "Sim-Pa55word!";
const SEEDED_ORDERS: i64 = 3;

fn init_sql() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../compose/mssql/init.sql");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn simulator() -> Simulator {
    let mut config = SimulatorConfig::new(PASSWORD);
    config.capture.poll_interval = Duration::from_millis(20);
    Simulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("cannot start the simulator")
}

fn connection(addr: SocketAddr, database: &str) -> ConnectionConfig {
    ConnectionConfig {
        host: addr.ip().to_string(),
        port: addr.port(),
        user: "sa".to_owned(),
        password: PASSWORD.into(),
        database: database.to_owned(),
        encrypt: Encrypt::Off,
        trust_server_certificate: false,
    }
}

/// A simulator with init.sql run on it, and a connection to its `shop`.
async fn shop() -> (Simulator, SqlClient) {
    let sim = simulator().await;
    let mut client = client::connect(&connection(sim.addr(), "master"))
        .await
        .unwrap();
    for (number, batch) in mssql_sim::script::batches(&init_sql()).iter().enumerate() {
        if let Err(e) = client::execute(&mut client, batch).await {
            panic!("batch {} of init.sql failed: {e:?}\n{batch}", number + 1);
        }
    }
    let client = client::connect(&connection(sim.addr(), "shop"))
        .await
        .unwrap();
    (sim, client)
}

async fn count(client: &mut SqlClient, sql: &str) -> i64 {
    let rows = client
        .simple_query(sql)
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    rows[0].get::<i64, _>(0).unwrap()
}

/// Waits until the capture job has read every commit (the change table count stops moving
/// and the CDC maximum LSN has reached the last commit).
async fn captured(client: &mut SqlClient, table: &str) -> Vec<(i32, i64)> {
    let sql = format!(
        "SELECT __$operation, COUNT_BIG(*) FROM cdc.dbo_{table}_CT \
         GROUP BY __$operation ORDER BY __$operation"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = Vec::new();
    loop {
        let rows = client
            .simple_query(sql.as_str())
            .await
            .unwrap()
            .into_first_result()
            .await
            .unwrap();
        let now: Vec<(i32, i64)> = rows
            .iter()
            .map(|r| (r.get::<i32, _>(0).unwrap(), r.get::<i64, _>(1).unwrap()))
            .collect();
        if now == last && !now.is_empty() {
            return now;
        }
        assert!(Instant::now() < deadline, "capture did not settle: {now:?}");
        last = now;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn workload() -> WorkloadConfig {
    WorkloadConfig {
        rows_per_s: 500.0,
        duration: Some(Duration::from_secs(2)),
        seed: 8,
        mix: Mix::default(),
        transaction_rows: 10,
        rollback_fraction: 0.1,
        report_interval: Duration::from_secs(1),
    }
}

async fn run(sim: &Simulator, config: &WorkloadConfig) -> Summary {
    cdc_workload::run(
        &connection(sim.addr(), "shop"),
        config,
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn committed_changes_are_what_the_tables_and_change_tables_hold() {
    let (sim, mut client) = shop().await;
    let before_rows = count(&mut client, "SELECT COUNT_BIG(*) FROM dbo.orders").await;
    assert_eq!(before_rows, SEEDED_ORDERS);
    let summary = run(&sim, &workload()).await;
    eprintln!("{}", summary.to_json());

    assert_eq!(summary.errors, 0, "{summary:?}");
    assert!(
        summary.rolled_back > 0,
        "the seed rolls something back: {summary:?}"
    );
    assert!(summary.key_updates > 0 && summary.deletes > 0 && summary.updates > 0);
    assert!(
        summary.rows_per_second <= 1.5 * 500.0,
        "paced: {}",
        summary.rows_per_second
    );
    assert!(summary.changes() > 100, "it ran: {summary:?}");

    // Rows in the database against the summary's inserts and deletes, over all four tables.
    let mut rows_now = 0;
    for table in ["customers", "products", "orders", "order_lines"] {
        rows_now += count(
            &mut client,
            &format!("SELECT COUNT_BIG(*) FROM dbo.{table}"),
        )
        .await;
    }
    let seeded = 3 + 3 + 3 + 4;
    assert_eq!(
        rows_now,
        seeded + summary.inserts as i64 - summary.deletes as i64,
        "{summary:?}"
    );

    // Every committed change reached a change table once (a key update as delete + insert),
    // and rolled-back work reached none.
    let mut by_operation = [0i64; 5];
    for table in ["customers", "products", "orders", "order_lines"] {
        for (operation, n) in captured(&mut client, table).await {
            by_operation[operation as usize] += n;
        }
    }
    let [_, deletes, inserts, before, after] = by_operation;
    assert_eq!(inserts, (summary.inserts + summary.key_updates) as i64);
    assert_eq!(deletes, (summary.deletes + summary.key_updates) as i64);
    assert_eq!(
        (before, after),
        (summary.updates as i64, summary.updates as i64)
    );
    let orders = captured(&mut client, "orders").await;
    let operations: Vec<i32> = orders.iter().map(|(op, _)| *op).collect();
    assert_eq!(operations, [1, 2, 3, 4], "orders saw every operation");
}

#[tokio::test]
async fn a_key_update_moves_the_order_to_a_key_above_the_maximum() {
    let (sim, mut client) = shop().await;
    let config = WorkloadConfig {
        mix: Mix::new([0, 0, 0, 1]).unwrap(),
        rows_per_s: 200.0,
        duration: Some(Duration::from_millis(300)),
        rollback_fraction: 0.0,
        transaction_rows: 1,
        ..workload()
    };
    let summary = run(&sim, &config).await;
    assert!(summary.key_updates > 0 && summary.changes() == summary.key_updates);
    assert_eq!(
        count(&mut client, "SELECT COUNT_BIG(*) FROM dbo.orders").await,
        SEEDED_ORDERS
    );
    let moved = count(
        &mut client,
        "SELECT COUNT_BIG(*) FROM dbo.orders WHERE order_id > 5003",
    )
    .await;
    assert!(
        moved >= 1,
        "some order moved above the seed keys: {summary:?}"
    );
}

fn binary(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cdc-workload"))
        .args([
            "--host",
            "127.0.0.1",
            "--password-env",
            "CDC_WORKLOAD_TEST_PASSWORD",
        ])
        .args(args)
        .env("CDC_WORKLOAD_TEST_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_binary_refuses_a_zero_rate_and_a_bad_mix_naming_the_flag() {
    let (code, stderr) = binary(&["--rate", "0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--rate"), "{stderr}");
    let (code, stderr) = binary(&["--rate", "10", "--mix", "insert=60,upsert=5"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--mix") && stderr.contains("upsert"),
        "{stderr}"
    );
    let (code, stderr) = binary(&["--rate", "10", "--password-env", "CDC_WORKLOAD_UNSET_VAR"]);
    assert_eq!(code, 2, "{stderr}");
}

#[tokio::test]
async fn the_binary_runs_against_the_simulator_and_prints_a_json_summary() {
    let (sim, _client) = shop().await;
    let port = sim.addr().port().to_string();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_cdc-workload"))
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--password-env",
            "CDC_WORKLOAD_PW",
        ])
        .args([
            "--rate",
            "200",
            "--duration-s",
            "1",
            "--seed",
            "3",
            "--report-interval-s",
            "1",
        ])
        .env("CDC_WORKLOAD_PW", PASSWORD)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for key in [
        "inserts",
        "updates",
        "deletes",
        "key_updates",
        "rolled_back",
        "transactions",
        "seconds",
        "rows_per_second",
    ] {
        assert!(summary.get(key).is_some(), "{key} in {stdout}");
    }
    assert!(summary["inserts"].as_u64().unwrap() > 0, "{stdout}");
}

//! The reconciler as operators use it: the service's gRPC API through grpcurl (StartRun,
//! WatchRun streaming to the end, GetRun, ListRuns), its reports stored in PostgreSQL and
//! published to the reports topic, and the `run` command's report and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use cdc_test_harness::grpcurl::call;
use cdc_test_harness::ports::free_local_addr;
use cdc_test_harness::process::ServiceProcess;
use support::{BINARY, CONTROL_TOKEN, Fixture};

/// One broken row (changed in the target) in a table of 40.
async fn broken_table(fixture: &Fixture) {
    fixture.every_type_table("every_type").await;
    fixture.insert_both("every_type", 1..=40, &[]).await;
    fixture
        .pg("UPDATE public.every_type SET c_nvarchar = 'Zoe' WHERE id = 17")
        .await;
}

fn env(fixture: &Fixture) -> Vec<(&'static str, String)> {
    fixture.env()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_start_stream_and_are_kept_stored_and_published() {
    let fixture = Fixture::new().await;
    broken_table(&fixture).await;
    let (grpc, metrics) = (free_local_addr(), free_local_addr());
    let config = fixture.config_at(grpc, metrics, "[compare]\nsettle_ms = 0\n");
    let env = env(&fixture);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut process =
        ServiceProcess::spawn(std::path::Path::new(BINARY), &config, &env, grpc, metrics);
    process.wait_until_listening(Duration::from_secs(30));
    let stack = &fixture.stack;

    let started = call(
        stack,
        grpc,
        Some(CONTROL_TOKEN),
        "cdc.reconciler.v1.Reconciler/StartRun",
        r#"{"tables": ["shop.dbo.every_type"]}"#,
    );
    assert!(started.success, "{}\n{}", started.stderr, process.output());
    let run: serde_json::Value = serde_json::from_str(&started.stdout).unwrap();
    let run_id = run["runId"].as_str().unwrap().to_owned();
    assert_eq!(run["state"], "RUN_STATE_RUNNING");

    // WatchRun streams states until the run ends, then closes the stream.
    let watched = call(
        stack,
        grpc,
        Some(CONTROL_TOKEN),
        "cdc.reconciler.v1.Reconciler/WatchRun",
        &format!(r#"{{"run_id": "{run_id}"}}"#),
    );
    assert!(watched.success, "{}", watched.stderr);
    assert!(
        watched.stdout.trim_end().ends_with('}') && watched.stdout.contains("RUN_STATE_MISMATCH"),
        "{}",
        watched.stdout
    );

    let got = call(
        stack,
        grpc,
        Some(CONTROL_TOKEN),
        "cdc.reconciler.v1.Reconciler/GetRun",
        &format!(r#"{{"run_id": "{run_id}"}}"#),
    );
    let got: serde_json::Value = serde_json::from_str(&got.stdout).unwrap();
    assert_eq!(got["state"], "RUN_STATE_MISMATCH");
    let table = &got["tables"][0];
    assert_eq!(table["table"], "shop.dbo.every_type");
    assert_eq!(table["differences"][0]["kind"], "DIFFERENCE_KIND_CHANGED");
    assert_eq!(table["differences"][0]["key"][0]["value"], "17");
    assert_eq!(table["differences"][0]["columns"][0], "c_nvarchar");

    let listed = call(
        stack,
        grpc,
        Some(CONTROL_TOKEN),
        "cdc.reconciler.v1.Reconciler/ListRuns",
        "{}",
    );
    assert!(listed.stdout.contains(&run_id), "{}", listed.stdout);
    let missing = call(
        stack,
        grpc,
        Some(CONTROL_TOKEN),
        "cdc.reconciler.v1.Reconciler/GetRun",
        r#"{"run_id": "no-such-run"}"#,
    );
    assert!(
        !missing.success && missing.stderr.contains("NotFound"),
        "{}",
        missing.stderr
    );
    let repair = call(
        stack,
        grpc,
        Some(CONTROL_TOKEN),
        "cdc.reconciler.v1.Reconciler/StartRun",
        r#"{"repair": true}"#,
    );
    assert!(
        !repair.success && repair.stderr.contains("repair.enabled"),
        "{}",
        repair.stderr
    );

    // Stored in PostgreSQL, in tables an operator can query.
    let stored: (String, i64) = sqlx::query_as(
        "SELECT r.state, count(d.*) FROM cdc_reconciler.runs r \
         JOIN cdc_reconciler.differences d USING (run_id) WHERE r.run_id = $1 GROUP BY r.state",
    )
    .bind(&run_id)
    .fetch_one(&fixture.target.pool)
    .await
    .unwrap();
    assert_eq!(stored, ("mismatch".to_owned(), 1));

    // Published to the reports topic as JSON.
    let topic = format!("{}.reconcile.reports", fixture.prefix);
    let records = cdc_test_harness::kafka::read_committed_to_end(
        stack,
        &format!("{}-reader", fixture.prefix),
        &topic,
        Duration::from_secs(30),
    );
    let report: serde_json::Value = records
        .iter()
        .find_map(|r| {
            let value: serde_json::Value = serde_json::from_slice(&r.value).ok()?;
            (value["run_id"] == run_id.as_str()).then_some(value)
        })
        .expect("the run's report on the reports topic");
    assert_eq!(report["state"], "mismatch");
    assert_eq!(report["tables"][0]["changed"], 1);
    assert_eq!(report["tables"][0]["differences"][0]["key"]["id"], "17");

    let scraped = cdc_test_harness::service_contract::scrape(metrics);
    for expected in [
        "cdc_reconciler_rows_compared_total{table=\"shop.dbo.every_type\"} 40",
        "cdc_reconciler_runs_total{state=\"mismatch\"} 1",
    ] {
        assert!(scraped.contains(expected), "no `{expected}` in:\n{scraped}");
    }
    assert!(
        scraped
            .lines()
            .any(|l| l.starts_with("cdc_reconciler_mismatched_rows{")
                && l.contains("kind=\"changed\"")
                && l.ends_with(" 1")),
        "{scraped}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_start_by_themselves() {
    let fixture = Fixture::new().await;
    fixture.every_type_table("every_type").await;
    fixture.insert_both("every_type", 1..=5, &[]).await;
    let (grpc, metrics) = (free_local_addr(), free_local_addr());
    let config = fixture.config_at(
        grpc,
        metrics,
        "[compare]\nsettle_ms = 0\n\n[schedule]\ncron = \"*/2 * * * * *\"\n",
    );
    let env = env(&fixture);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut process =
        ServiceProcess::spawn(std::path::Path::new(BINARY), &config, &env, grpc, metrics);
    process.wait_until_listening(Duration::from_secs(30));
    cdc_test_harness::process::eventually(
        "a clean scheduled run",
        &process,
        Duration::from_secs(30),
        || async {
            let listed = call(
                &fixture.stack,
                grpc,
                Some(CONTROL_TOKEN),
                "cdc.reconciler.v1.Reconciler/ListRuns",
                "{}",
            );
            listed.stdout.contains("\"trigger\": \"schedule\"")
                && listed.stdout.contains("RUN_STATE_CLEAN")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_command_prints_the_report_and_exits_by_the_outcome() {
    let fixture = Fixture::new().await;
    broken_table(&fixture).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reconciler.toml");
    std::fs::write(&path, fixture.config("[compare]\nsettle_ms = 0\n")).unwrap();
    let run = |format: &str| {
        Command::new(BINARY)
            .args(["run", "--config"])
            .arg(&path)
            .args([
                "--tables",
                "shop.dbo.every_type",
                "--format",
                format,
                "--no-publish",
                "--quiet",
            ])
            .envs(fixture.env())
            .output()
            .unwrap()
    };

    let mismatch = run("markdown");
    let text = String::from_utf8_lossy(&mismatch.stdout);
    assert_eq!(
        mismatch.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&mismatch.stderr)
    );
    assert!(text.contains("| changed | id=17 | c_nvarchar |"), "{text}");

    fixture
        .pg("UPDATE public.every_type SET c_nvarchar = 'Zoë 😀' WHERE id = 17")
        .await;
    let clean = run("json");
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&clean.stdout).unwrap();
    assert_eq!(report["state"], "clean");
    assert_eq!(report["tables"][0]["source_rows"], 40);

    let bad = Command::new(BINARY)
        .args(["run", "--config", "/nonexistent/reconciler.toml"])
        .output()
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

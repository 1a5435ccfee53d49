//! The operations guide (`docs/operations.md`), command by command, with the real grpcurl
//! against the four services running as processes: health and status, pausing a service and
//! a table, re-snapshots of a table and of a key range, dead letters at the transformer and at
//! the loader listed and replayed, a reconciliation run watched to its end, and a control
//! token rotated in Vault and taken up by a restart. Every gRPC method the guide names must
//! be one this test ran.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cdc_e2e_tests::{CONTROL_TOKEN, Pipeline, SERVICES, sql};
use cdc_test_harness::grpcurl::{GrpcurlOutput, call, grpcurl};
use cdc_test_harness::kafka::EventProducer;
use serde_json::Value;

const TABLES: &str = "
CREATE TABLE dbo.orders (id int NOT NULL PRIMARY KEY, note nvarchar(100) NULL);
EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', @role_name = NULL;
";
const COUNT: &str = "SELECT count(*) FROM public.orders";
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the guide's commands and remembers which methods ran.
struct Operator {
    ran: BTreeSet<String>,
    token: String,
}

impl Operator {
    /// Calls `method` with `body` on `addr` with the control token; the call must succeed.
    fn call(&mut self, pipeline: &Pipeline, addr: SocketAddr, method: &str, body: &str) -> Value {
        let out = call(&pipeline.stack, addr, Some(&self.token), method, body);
        assert!(out.success, "{method} {body} failed: {out:?}");
        self.ran.insert(method.to_owned());
        // Streaming calls print one JSON document per message: the last one is what counts.
        last_json(&out)
    }

    fn on(&mut self, pipeline: &Pipeline, service: &str, method: &str, body: &str) -> Value {
        let addr = pipeline.service(service).grpc;
        self.call(pipeline, addr, method, body)
    }
}

/// The last of the JSON documents grpcurl printed (each starts with `{` on its own line).
fn last_json(out: &GrpcurlOutput) -> Value {
    let text = out.stdout.trim();
    let start = text.rfind("\n{").map_or(0, |i| i + 1);
    serde_json::from_str(&text[start..])
        .unwrap_or_else(|e| panic!("grpcurl printed no JSON ({e}): {}", out.stdout))
}

/// A protobuf JSON integer (64-bit ones are strings; defaults are left out).
fn number(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

async fn insert(pipeline: &Pipeline, ids: std::ops::RangeInclusive<i64>) {
    let rows: Vec<String> = ids.map(|id| format!("({id}, N'order {id}')")).collect();
    let mut client = pipeline.sql().await;
    sql(
        &mut client,
        &format!(
            "INSERT INTO dbo.orders (id, note) VALUES {}",
            rows.join(", ")
        ),
    )
    .await;
}

/// The target keeps `expected` rows for a while (what is paused stays paused).
async fn stays_at(pipeline: &Pipeline, expected: i64, what: &str) {
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rows: i64 = sqlx::query_scalar(COUNT)
            .fetch_one(&pipeline.target.pool)
            .await
            .unwrap();
        assert_eq!(rows, expected, "{what}: rows arrived while paused");
    }
}

/// Waits until `check` holds for the JSON `method` returns.
async fn until(
    operator: &mut Operator,
    pipeline: &Pipeline,
    service: &str,
    method: &str,
    body: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + LOAD_TIMEOUT;
    loop {
        let answer = operator.on(pipeline, service, method, body);
        if check(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {LOAD_TIMEOUT:?}; last answer: {answer:#}\n{}",
            pipeline.output()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn orders_status(tables: &Value) -> Value {
    tables["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["table"]["table"] == "orders" || t["table"] == "public.orders")
        .cloned()
        .unwrap_or(Value::Null)
}

/// Every `package.Service/Method` named in the operations guide.
fn methods_in_guide() -> BTreeSet<String> {
    let path = cdc_test_harness::stack::workspace_root().join("docs/operations.md");
    let guide = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    guide
        .split(|c: char| c.is_whitespace() || c == '`')
        .filter(|word| {
            word.contains('/')
                && (word.starts_with("cdc.") || word.starts_with("grpc."))
                && word.contains(".v1.")
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_guide_works_command_by_command_against_the_running_pipeline() {
    let mut pipeline = Pipeline::start(TABLES).await;
    let mut operator = Operator {
        ran: BTreeSet::new(),
        token: CONTROL_TOKEN.to_owned(),
    };
    insert(&pipeline, 1..=20).await;
    pipeline.wait_for_target(COUNT, 20, LOAD_TIMEOUT).await;

    // Deploy: every service is healthy and answers its status.
    for service in SERVICES {
        let addr = pipeline.service(service).grpc;
        let health = grpcurl(&pipeline.stack, addr, &[], &["grpc.health.v1.Health/Check"]);
        assert!(health.stdout.contains("SERVING"), "{service}: {health:?}");
        operator
            .ran
            .insert("grpc.health.v1.Health/Check".to_owned());
        let status = operator.call(&pipeline, addr, "cdc.control.v1.Control/GetStatus", "{}");
        assert_eq!(status["service"], service, "{status:#}");
    }

    // Pause and resume a whole service: nothing passes the paused transformer.
    let paused = operator.on(
        &pipeline,
        "transformer",
        "cdc.control.v1.Control/Pause",
        r#"{"reason":"maintenance"}"#,
    );
    assert_eq!(paused["state"], "STATE_PAUSED", "{paused:#}");
    insert(&pipeline, 21..=30).await;
    stays_at(&pipeline, 20, "transformer paused").await;
    operator.on(
        &pipeline,
        "transformer",
        "cdc.control.v1.Control/Resume",
        "{}",
    );
    pipeline.wait_for_target(COUNT, 30, LOAD_TIMEOUT).await;

    // Pause and resume one table at the loader.
    operator.on(
        &pipeline,
        "loader",
        "cdc.loader.v1.Loader/PauseTable",
        r#"{"table":"public.orders","reason":"backfill"}"#,
    );
    let tables = operator.on(&pipeline, "loader", "cdc.loader.v1.Loader/ListTables", "{}");
    assert_eq!(
        orders_status(&tables)["pausedReason"],
        "backfill",
        "{tables:#}"
    );
    insert(&pipeline, 31..=40).await;
    stays_at(&pipeline, 30, "table paused").await;
    operator.on(
        &pipeline,
        "loader",
        "cdc.loader.v1.Loader/ResumeTable",
        r#"{"table":"public.orders"}"#,
    );
    pipeline.wait_for_target(COUNT, 40, LOAD_TIMEOUT).await;

    // Re-snapshot the table, then a key range of it, while streaming goes on.
    let before = operator.on(
        &pipeline,
        "extractor",
        "cdc.extractor.v1.Extractor/ListTables",
        "{}",
    );
    let completed = number(&orders_status(&before)["snapshotsCompleted"]);
    assert!(
        completed >= 1,
        "the initial snapshot is not reported: {before:#}"
    );
    for (n, body) in [
        r#"{"database":"shop","schema":"dbo","table":"orders"}"#,
        r#"{"database":"shop","schema":"dbo","table":"orders","after_key":[{"int64":"10"}],"up_to_key":[{"int64":"20"}]}"#,
    ]
    .into_iter()
    .enumerate()
    {
        operator.on(&pipeline, "extractor", "cdc.extractor.v1.Extractor/StartSnapshot", body);
        let target = completed + n as u64 + 1;
        until(
            &mut operator,
            &pipeline,
            "extractor",
            "cdc.extractor.v1.Extractor/ListTables",
            "{}",
            &format!("snapshot {body} completed"),
            |tables| number(&orders_status(tables)["snapshotsCompleted"]) >= target,
        )
        .await;
    }
    insert(&pipeline, 41..=45).await;
    pipeline.wait_for_target(COUNT, 45, LOAD_TIMEOUT).await;

    // Dead letters: a record neither stage can decode, at each stage.
    let producer = EventProducer::new(&pipeline.stack);
    let garbage = vec![(b"not a key".to_vec(), b"\xff\xfe not an event".to_vec())];
    let prefix = &pipeline.prefix;
    producer
        .send_encoded(&format!("{prefix}.raw.shop.dbo.orders"), &garbage)
        .await;
    producer
        .send_encoded(&format!("{prefix}.clean.shop.dbo.orders"), &garbage)
        .await;
    let letters = until(
        &mut operator,
        &pipeline,
        "transformer",
        "cdc.transformer.v1.Transformer/ListDeadLetters",
        r#"{"limit":20}"#,
        "the transformer dead-lettered the undecodable record",
        |letters| number(&letters["pending"]) >= 1,
    )
    .await;
    assert_eq!(
        letters["deadLetters"][0]["code"], "undecodable",
        "{letters:#}"
    );
    operator.on(
        &pipeline,
        "transformer",
        "cdc.transformer.v1.Transformer/ReloadRules",
        "{}",
    );
    let replay = operator.on(
        &pipeline,
        "transformer",
        "cdc.transformer.v1.Transformer/ReplayDeadLetters",
        "{}",
    );
    assert_eq!(
        number(&replay["failedAgain"]),
        1,
        "still undecodable: {replay:#}"
    );
    let letters = until(
        &mut operator,
        &pipeline,
        "loader",
        "cdc.loader.v1.Loader/ListDeadLetters",
        r#"{"limit":20}"#,
        "the loader dead-lettered the undecodable record",
        |letters| {
            letters["deadLetters"]
                .as_array()
                .is_some_and(|l| !l.is_empty())
        },
    )
    .await;
    let letter = &letters["deadLetters"][0];
    assert!(
        letter["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{letters:#}"
    );
    let id = letter["id"].as_str().expect("a dead letter id");
    let replay = operator.on(
        &pipeline,
        "loader",
        "cdc.loader.v1.Loader/ReplayDeadLetters",
        &format!(r#"{{"ids":["{id}"]}}"#),
    );
    let outcome = &replay["outcomes"][0];
    assert_eq!(outcome["id"], id, "{replay:#}");
    assert_ne!(
        outcome["applied"], true,
        "garbage cannot be applied: {replay:#}"
    );
    // The stream goes on around them.
    insert(&pipeline, 46..=50).await;
    pipeline.wait_for_target(COUNT, 50, LOAD_TIMEOUT).await;

    // Reconcile: a run over every table, watched to its end.
    let run = operator.on(
        &pipeline,
        "reconciler",
        "cdc.reconciler.v1.Reconciler/StartRun",
        r#"{"tables":["shop.dbo.*"]}"#,
    );
    let run_id = run["runId"].as_str().expect("a run id").to_owned();
    let body = format!(r#"{{"run_id":"{run_id}"}}"#);
    let watched = operator.on(
        &pipeline,
        "reconciler",
        "cdc.reconciler.v1.Reconciler/WatchRun",
        &body,
    );
    assert_eq!(watched["state"], "RUN_STATE_CLEAN", "{watched:#}");
    let got = operator.on(
        &pipeline,
        "reconciler",
        "cdc.reconciler.v1.Reconciler/GetRun",
        &body,
    );
    assert_eq!(got["state"], "RUN_STATE_CLEAN", "{got:#}");
    assert_eq!(number(&got["tables"][0]["sourceRows"]), 50, "{got:#}");
    let runs = operator.on(
        &pipeline,
        "reconciler",
        "cdc.reconciler.v1.Reconciler/ListRuns",
        r#"{"limit":10}"#,
    );
    assert!(
        runs["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["runId"] == run_id.as_str()),
        "{runs:#}"
    );

    // Rotate the control token: new value in Vault, then a restart of the instance.
    let rotated = format!("rotated-{}", uuid::Uuid::new_v4().simple());
    cdc_test_harness::vault::write_secret(
        &pipeline.stack,
        &pipeline.control_token_path(),
        &[("token", &rotated)],
    )
    .await;
    pipeline.restart("loader");
    let loader = pipeline.service("loader").grpc;
    let old = call(
        &pipeline.stack,
        loader,
        Some(CONTROL_TOKEN),
        "cdc.control.v1.Control/GetStatus",
        "{}",
    );
    assert!(
        !old.success && old.stderr.contains("Unauthenticated"),
        "the old token must be refused after the rotation: {old:?}"
    );
    operator.token = rotated;
    operator.call(&pipeline, loader, "cdc.control.v1.Control/GetStatus", "{}");
    insert(&pipeline, 51..=55).await;
    pipeline.wait_for_target(COUNT, 55, LOAD_TIMEOUT).await;

    let not_run: Vec<String> = methods_in_guide()
        .difference(&operator.ran)
        .cloned()
        .collect();
    assert!(
        not_run.is_empty(),
        "docs/operations.md names methods this test does not run: {not_run:?}"
    );
}

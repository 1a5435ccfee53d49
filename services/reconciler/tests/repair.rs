//! The whole pipeline (extractor, transformer and loader, in this process) between the
//! simulator and PostgreSQL: the reconciler finds the target equal to the source for every
//! type of the type map after a real snapshot and stream; rows broken in the target (changed,
//! deleted, added) are found, repaired through the control topic and the pipeline, and a
//! second run is clean.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use cdc_reconciler::proto::{DifferenceKind, RunState, TableState};
use cdc_reconciler::runs::RunRequest;
use support::{CONTROL_TOKEN, Fixture, SA_PASSWORD, differences, run, start_in_process};
use tokio_util::sync::CancellationToken;

/// Starts the extractor, the transformer and the loader on `fixture`; stop them with the token.
async fn pipeline(fixture: &Fixture, shutdown: &CancellationToken) {
    let common = |service: &str| {
        cdc_test_harness::kafka::service_config(
            &fixture.stack,
            cdc_test_harness::ports::free_local_addr(),
            cdc_test_harness::ports::free_local_addr(),
            &fixture.prefix,
            &format!("{}-{service}", fixture.prefix),
        )
        .replace(
            "auth_token = \"env:CDC_TEST_CONTROL_TOKEN\"",
            "auth_token = \"env:UNUSED\"",
        )
    };
    let token = ("grpc.auth_token", CONTROL_TOKEN.to_owned());
    // The extractor shares work through its own group, not a consumer section.
    let extractor = common("extractor");
    let extractor = extractor.split("\n[consumer]\n").next().unwrap_or_default();
    let extractor = format!(
        r#"{extractor}
[source]
server_name = "sim"
host = "{host}"
port = {port}
user = "sa"
password = "env:UNUSED"
databases = ["shop"]
encryption = "off"

[stream]
poll_interval_ms = 50
heartbeat_interval_ms = 500
discovery_interval_ms = 500

[work]
group_id = "{prefix}-extractor"
partitions = 2
raw_topic_partitions = 2
transaction_timeout_ms = 10000
"#,
        host = fixture.sim.addr().ip(),
        port = fixture.sim.addr().port(),
        prefix = fixture.prefix,
    );
    start_in_process(
        cdc_extractor::service::SPEC,
        &extractor,
        &[token.clone(), ("source.password", SA_PASSWORD.to_owned())],
        shutdown,
        cdc_extractor::service::start,
    )
    .await;
    let transformer = format!(
        "{}\n[producer]\ntransactional_id = \"{}-transformer-1\"\n",
        common("transformer"),
        fixture.prefix
    );
    start_in_process(
        cdc_transformer::service::SPEC,
        &transformer,
        std::slice::from_ref(&token),
        shutdown,
        cdc_transformer::service::start,
    )
    .await;
    let loader = format!(
        "{}\n[postgres]\nurl = \"{}\"\npassword = \"env:UNUSED\"\n",
        common("loader"),
        cdc_test_harness::stack::without_password(&fixture.target.url)
    );
    start_in_process(
        cdc_loader::service::SPEC,
        &loader,
        &[token, ("postgres.password", fixture.stack.pg_password())],
        shutdown,
        cdc_loader::service::start,
    )
    .await;
}

async fn target_rows(fixture: &Fixture) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM public.every_type")
        .fetch_one(&fixture.target.pool)
        .await
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_reconciles_clean_and_repair_closes_a_gap() {
    // The services' logs, for when this fails (shown by the test runner on failure only).
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,sqlx=warn,rdkafka=warn")
        .with_test_writer()
        .try_init();
    let fixture = Fixture::new().await;
    fixture.every_type_table_in_source("every_type").await;
    fixture.insert_source("every_type", 1..=200, &[50]).await;
    let shutdown = CancellationToken::new();
    // The services stop when the test ends, also when it fails (their blocking loops would
    // keep the runtime from shutting down).
    let _stop = shutdown.clone().drop_guard();
    pipeline(&fixture, &shutdown).await;
    // Streamed as well as snapshotted rows.
    fixture.insert_source("every_type", 201..=250, &[]).await;
    let mut client = fixture.sql().await;
    fixture
        .sql_on(
            &mut client,
            "UPDATE dbo.every_type SET c_varchar = 'streamed' WHERE id = 7",
        )
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while target_rows(&fixture).await != 250 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pipeline did not load 250 rows within 120 s ({} so far)",
            target_rows(&fixture).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reconciler = fixture
        .reconciler("[compare]\nsettle_ms = 3000\n\n[repair]\nenabled = true\n")
        .await;
    // Until the update of row 7 has landed the run may see it in flight; the settle time
    // covers that.
    let first = run(&reconciler, &["shop.dbo.every_type"]).await;
    let table = &first.tables[0];
    assert_eq!(table.state, TableState::Match as i32, "{table:#?}");
    assert_eq!(table.source_rows, 250);
    assert!(
        table.excluded_columns.is_empty(),
        "{:?}",
        table.excluded_columns
    );

    // Break the target behind the pipeline's back.
    fixture
        .pg("UPDATE public.every_type SET c_decimal = 1 WHERE id = 10")
        .await;
    fixture
        .pg("DELETE FROM public.every_type WHERE id = 20")
        .await;
    // A row the source never had, as if written by someone else (the lowest position).
    fixture
        .pg(
            "INSERT INTO public.every_type (id, _cdc_position, _cdc_commit_time) \
             VALUES (9000, '\\x00'::bytea, now())",
        )
        .await;
    let broken = tokio::time::timeout(
        Duration::from_secs(120),
        reconciler.run_to_end(
            RunRequest {
                tables: vec!["shop.dbo.every_type".to_owned()],
                repair: true,
                trigger: "test".to_owned(),
            },
            |_| {},
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(broken.state, RunState::Mismatch as i32);
    let table = &broken.tables[0];
    assert_eq!(
        differences(table),
        vec![
            (DifferenceKind::Missing, "id=20".to_owned(), vec![]),
            (DifferenceKind::Extra, "id=9000".to_owned(), vec![]),
            (
                DifferenceKind::Changed,
                "id=10".to_owned(),
                vec!["c_decimal".to_owned()]
            ),
        ]
    );
    assert_eq!(table.repair_keys_sent, 3);

    // The repaired rows come through the pipeline; a later run is clean.
    let mut clean = None;
    for _ in 0..20 {
        let again = run(&reconciler, &["shop.dbo.every_type"]).await;
        if again.state == RunState::Clean as i32 {
            clean = Some(again);
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let clean = clean.expect("the gap did not close within the retries");
    assert_eq!(clean.tables[0].target_rows, 250);
    shutdown.cancel();
}

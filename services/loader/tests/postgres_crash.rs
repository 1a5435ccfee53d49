//! PostgreSQL crashing under the loader (an immediate shutdown: no checkpoint, and with the
//! loader's default `synchronous_commit = off` its last commits may be lost): it reconnects,
//! reads again whatever the crash took back, and finishes with the exact state. Crashes the
//! stack's shared server, so it is a test binary of its own.

mod support;

use std::process::Command;
use std::time::Duration;

use cdc_test_harness::stack::workspace_root;
use support::{Events, Fixture, Workload, orders, seed, source_table};

#[tokio::test]
async fn a_postgres_crash_mid_load_loses_and_duplicates_nothing() {
    let seed = seed();
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "orders");
    let topic = fixture.table_topic(&table, 2).await;
    let mut events = Events::new(orders(&table));
    fixture.publish_schema(&events.schema).await;
    let workload = Workload::random(&mut events, seed, 3_000, 80_000);
    fixture.send(&topic, &workload.events).await;
    let loader = fixture.start_loader("[batch]\nmax_rows = 200\n");

    support::eventually(
        "the first batches",
        &loader,
        Duration::from_secs(60),
        || async { !fixture.stored_offsets(&topic).await.is_empty() },
    )
    .await;
    let end: i64 = fixture.ends(&topic).values().sum();
    let seen_before_crash: i64 = fixture.stored_offsets(&topic).await.values().sum();
    let crash = Command::new("bash")
        .arg(workspace_root().join("scripts/stack/pg-restart.sh"))
        .args(["1", "immediate"])
        .status()
        .expect("cannot run scripts/stack/pg-restart.sh");
    assert!(
        crash.success(),
        "PostgreSQL did not come back after the crash"
    );
    assert!(
        seen_before_crash < end,
        "the loader had finished before the crash; the test proved nothing"
    );
    let recovered: i64 = fixture.stored_offsets(&topic).await.values().sum();
    // Whether the crash took back commits depends on when the WAL writer last flushed; the
    // outcome must be exact either way.
    println!(
        "stored offsets: {seen_before_crash} seen before the crash, {recovered} after recovery \
         (commits lost: {}), end {end}",
        if recovered < seen_before_crash {
            "yes"
        } else {
            "none seen"
        }
    );

    fixture
        .wait_caught_up(&topic, &loader, Duration::from_secs(120))
        .await;
    assert_eq!(
        fixture.id_note_rows("public.orders").await,
        workload.expected,
        "seed {seed}"
    );
    assert!(
        loader.output().contains("retrying"),
        "the loader should have seen the crash:\n{}",
        loader.output()
    );
}

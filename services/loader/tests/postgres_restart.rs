//! PostgreSQL restarting and crashing under the loader: it backs off, reconnects, reads again
//! whatever a crash took back (with the default `synchronous_commit = off` its last commits may
//! be lost) and finishes with the exact state. Restarts the stack's shared server, so it is a
//! test binary of its own (Cargo runs test binaries one after another, never beside another
//! test), and its one test runs the fast restart and the crash one after the other.

// Tests: a panic with the reason is the failure report; the printed figures are the evidence.
#![allow(clippy::expect_used, clippy::print_stdout)]

mod support;

use std::process::Command;
use std::time::Duration;

use cdc_test_harness::stack::workspace_root;
use support::{Events, Fixture, Workload, orders, seed, source_table};

#[tokio::test]
async fn a_postgres_restart_or_crash_mid_load_loses_and_duplicates_nothing() {
    restart_mid_load("fast", 2, 60_000).await;
    restart_mid_load("immediate", 1, 80_000).await;
}

/// Loads `changes` random changes and stops PostgreSQL (`fast` or `immediate`, for
/// `down_seconds`) once some but not all of them are committed.
async fn restart_mid_load(mode: &str, down_seconds: u32, changes: usize) {
    let seed = seed();
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "orders");
    let topic = fixture.table_topic(&table, 2).await;
    let mut events = Events::new(orders(&table));
    fixture.publish_schema(&events.schema).await;
    let workload = Workload::random(&mut events, seed, 3_000, changes);
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
    let seen_before: i64 = fixture.stored_offsets(&topic).await.values().sum();
    let restart = Command::new("bash")
        .arg(workspace_root().join("scripts/stack/pg-restart.sh"))
        .args([down_seconds.to_string().as_str(), mode])
        .status()
        .expect("cannot run scripts/stack/pg-restart.sh");
    assert!(restart.success(), "PostgreSQL did not come back ({mode})");
    assert!(
        seen_before < end,
        "the loader had finished before the {mode} shutdown; the test proved nothing"
    );
    let recovered: i64 = fixture.stored_offsets(&topic).await.values().sum();
    // Whether a crash takes back commits depends on when the WAL writer last flushed; the
    // outcome must be exact either way.
    println!(
        "{mode}: stored offsets {seen_before} seen before, {recovered} after (commits lost: {}), end {end}",
        if recovered < seen_before {
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
        "{mode}, seed {seed}"
    );
    assert!(
        loader.output().contains("retrying"),
        "the loader should have seen the {mode} shutdown:\n{}",
        loader.output()
    );
}

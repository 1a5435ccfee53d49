//! PostgreSQL restarting under the loader: it backs off, reconnects and finishes with the exact
//! state. Restarts the stack's shared server, so it is a test binary of its own (Cargo runs
//! test binaries one after another, never beside another test).

mod support;

use std::process::Command;
use std::time::Duration;

use cdc_test_harness::stack::workspace_root;
use support::{Events, Fixture, Workload, orders, seed, source_table};

#[tokio::test]
async fn a_postgres_restart_mid_load_loses_and_duplicates_nothing() {
    let seed = seed();
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "orders");
    let topic = fixture.table_topic(&table, 2).await;
    let mut events = Events::new(orders(&table));
    fixture.publish_schema(&events.schema).await;
    let workload = Workload::random(&mut events, seed, 3_000, 60_000);
    fixture.send(&topic, &workload.events).await;
    let loader = fixture.start_loader("[batch]\nmax_rows = 200\n");

    // Restart once some, but not all, of the work is committed.
    support::eventually(
        "the first batches",
        &loader,
        Duration::from_secs(60),
        || async { !fixture.stored_offsets(&topic).await.is_empty() },
    )
    .await;
    let restart = Command::new("bash")
        .arg(workspace_root().join("scripts/stack/pg-restart.sh"))
        .arg("2")
        .status()
        .expect("cannot run scripts/stack/pg-restart.sh");
    assert!(restart.success(), "PostgreSQL did not restart");

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
        "the loader should have seen the restart:\n{}",
        loader.output()
    );
}

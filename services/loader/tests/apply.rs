//! The loader against real Kafka and PostgreSQL: exact final states, duplicates, the row guard,
//! hostile identifiers.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use cdc_model::proto::LogicalType;
use sqlx::Row as _;
use support::{Events, Fixture, column, id_note, orders, schema, source_table, text};

const CATCH_UP: Duration = Duration::from_secs(60);

#[tokio::test]
async fn inserts_updates_and_deletes_land_exactly_once_even_when_every_event_is_delivered_twice() {
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "orders");
    let topic = fixture.table_topic(&table, 3).await;
    let mut events = Events::new(orders(&table));
    fixture.publish_schema(&events.schema).await;

    let mut stream = Vec::new();
    let mut expected: BTreeMap<i64, Option<String>> = BTreeMap::new();
    for id in 1..=300 {
        stream.push(events.insert(id_note(id, "new")));
        expected.insert(id, Some("new".into()));
    }
    for id in (2..=300).step_by(2) {
        stream.push(events.update(id_note(id, "new"), id_note(id, &format!("updated {id}"))));
        expected.insert(id, Some(format!("updated {id}")));
    }
    for id in (5..=300).step_by(5) {
        let before = id_note(id, expected[&id].as_deref().unwrap());
        stream.push(events.delete(before));
        expected.remove(&id);
    }
    // Everything again: an upstream that delivered twice must not change the outcome.
    let twice: Vec<_> = stream.iter().chain(stream.iter()).cloned().collect();
    fixture.send(&topic, &twice).await;

    let loader = fixture.start_loader("");
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;
    assert_eq!(fixture.id_note_rows("public.orders").await, expected);

    // Positions: each surviving row remembers the event that last wrote it.
    let row = sqlx::query("SELECT _cdc_position FROM public.orders WHERE id = 2")
        .fetch_one(&fixture.db.pool)
        .await
        .unwrap();
    let position =
        cdc_model::SourcePosition::from_ordered_bytes(&row.get::<Vec<u8>, _>(0)).unwrap();
    assert_eq!(position.operation, 4, "the update wrote row 2 last");

    // A second loader process resumes from the stored offsets and applies nothing again.
    drop(loader);
    let offsets_before = fixture.stored_offsets(&topic).await;
    let restarted = fixture.start_loader("");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fixture.stored_offsets(&topic).await, offsets_before);
    assert_eq!(fixture.id_note_rows("public.orders").await, expected);
    drop(restarted);
}

#[tokio::test]
async fn a_late_snapshot_read_neither_regresses_a_row_nor_brings_a_deleted_one_back() {
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "orders");
    let topic = fixture.table_topic(&table, 1).await;
    let mut events = Events::new(orders(&table));
    fixture.publish_schema(&events.schema).await;
    let loader = fixture.start_loader("");

    let snapshot_lsn = events.next_lsn();
    let first = vec![
        events.insert(id_note(1, "v1")),
        events.update(id_note(1, "v1"), id_note(1, "v2")),
        events.insert(id_note(2, "doomed")),
        events.delete(id_note(2, "doomed")),
    ];
    fixture.send(&topic, &first).await;
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;

    // A re-snapshot chunk read before those changes arrives after them, in its own batch.
    let stale = vec![
        events.read_at(snapshot_lsn, id_note(1, "snapshot (old)")),
        events.read_at(snapshot_lsn, id_note(2, "snapshot (resurrected)")),
        events.read_at(snapshot_lsn, id_note(3, "snapshot (new row)")),
    ];
    fixture.send(&topic, &stale).await;
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;

    let expected = BTreeMap::from([
        (1, Some("v2".to_owned())),
        (3, Some("snapshot (new row)".to_owned())),
    ]);
    assert_eq!(fixture.id_note_rows("public.orders").await, expected);
}

#[tokio::test]
async fn soft_deletes_keep_the_row_with_its_deletion_time() {
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "orders");
    let topic = fixture.table_topic(&table, 1).await;
    let mut events = Events::new(orders(&table));
    fixture.publish_schema(&events.schema).await;
    let stream = vec![
        events.insert(id_note(1, "kept")),
        events.insert(id_note(2, "gone")),
        events.delete(id_note(2, "gone")),
    ];
    fixture.send(&topic, &stream).await;
    let loader = fixture.start_loader("[target]\ndelete_mode = \"soft\"\n");
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;
    let rows =
        sqlx::query("SELECT id, note, _cdc_deleted_at IS NOT NULL FROM public.orders ORDER BY id")
            .fetch_all(&fixture.db.pool)
            .await
            .unwrap();
    let rows: Vec<(i64, String, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        vec![(1, "kept".into(), false), (2, "gone".into(), true)]
    );
}

#[tokio::test]
async fn tables_and_columns_with_hostile_names_are_created_and_written() {
    let mut fixture = Fixture::new().await;
    let table = source_table("Shop DB", "Sales.EU", "Order \"Details\"");
    let topic = fixture.table_topic(&table, 1).await;
    let hostile = schema(
        &table,
        vec![
            column("Mixed Case", LogicalType::Int64, false),
            column("select", LogicalType::Text, true),
            column("naïve café", LogicalType::Text, true),
            column("\"quoted\"", LogicalType::Text, true),
            column("semi;colon --", LogicalType::Decimal, true),
        ],
        &["Mixed Case", "select"],
    );
    let mut events = Events::new(hostile);
    fixture.publish_schema(&events.schema).await;
    let row = |key: i64, s: &str| {
        vec![
            support::int(key),
            text(s),
            text("é"),
            text("\"q\""),
            support::decimal(-12_345, 2),
        ]
    };
    let stream = vec![
        events.insert(row(1, "a")),
        events.insert(row(1, "b")),
        events.update(
            row(1, "a"),
            vec![
                support::int(1),
                text("a"),
                text("ü"),
                text("'x'"),
                support::decimal(1, 2),
            ],
        ),
        events.delete(row(1, "b")),
    ];
    fixture.send(&topic, &stream).await;
    let loader = fixture.start_loader(
        "[target]\nschema = \"Target \\\"Schema\\\"\"\ntable_name = \"{database}/{table}\"\n",
    );
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;
    let sql = "SELECT \"Mixed Case\", \"select\", \"naïve café\", \"\"\"quoted\"\"\", \"semi;colon --\"::text \
               FROM \"Target \"\"Schema\"\"\".\"Shop DB/Order \"\"Details\"\"\"";
    let rows = sqlx::query(sql).fetch_all(&fixture.db.pool).await.unwrap();
    let rows: Vec<(i64, String, String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        rows,
        vec![(1, "a".into(), "ü".into(), "'x'".into(), "0.01".into())]
    );
}

/// A session lost while idle (here: killed by the server between batches) is first noticed by
/// housekeeping; the next batch must start a new session, stage tables included, rather than
/// reuse what it knew of the old one ("relation _cdc_stage_1 does not exist" paused the table).
#[tokio::test]
async fn a_session_lost_between_batches_is_replaced_with_its_stage_tables() {
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "orders");
    let topic = fixture.table_topic(&table, 1).await;
    let mut events = Events::new(orders(&table));
    fixture.publish_schema(&events.schema).await;
    let loader =
        fixture.start_loader("[batch]\nappliers = 1\n\n[target]\nhousekeeping_interval_ms = 200\n");
    let first: Vec<_> = (1..=50)
        .map(|id| events.insert(id_note(id, "first")))
        .collect();
    fixture.send(&topic, &first).await;
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;

    let terminated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name LIKE 'cdc-loader/%') AS t",
    )
    .fetch_one(&fixture.db.pool)
    .await
    .unwrap();
    assert!(terminated >= 1, "no loader session to terminate");
    support::eventually(
        "housekeeping to notice the lost session",
        &loader,
        CATCH_UP,
        || async { loader.output().contains("cannot prune delete tombstones") },
    )
    .await;

    let second: Vec<_> = (1..=50)
        .map(|id| events.update(id_note(id, "first"), id_note(id, "second")))
        .collect();
    fixture.send(&topic, &second).await;
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;
    let expected: BTreeMap<i64, Option<String>> =
        (1..=50).map(|id| (id, Some("second".to_owned()))).collect();
    assert_eq!(fixture.id_note_rows("public.orders").await, expected);
    assert!(
        !loader.output().contains("table paused"),
        "the table was paused:\n{}",
        loader.output()
    );
}

/// The smallest in-flight budget (one batch) still drains a multi-partition topic split over
/// two sessions: each session's share of a batch gives its part of the budget back when it
/// commits, so the consumer never waits on itself.
#[tokio::test]
async fn an_in_flight_budget_of_one_batch_still_drains_every_partition() {
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "orders");
    let topic = fixture.table_topic(&table, 4).await;
    let mut events = Events::new(orders(&table));
    fixture.publish_schema(&events.schema).await;
    let inserts: Vec<_> = (1..=3_000)
        .map(|id| events.insert(id_note(id, "once")))
        .collect();
    fixture.send(&topic, &inserts).await;
    let loader = fixture.start_loader(
        "[batch]\nmax_rows = 50\nmax_in_flight_rows = 50\nappliers = 2\nmax_wait_ms = 5\n",
    );
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;
    let expected: BTreeMap<i64, Option<String>> = (1..=3_000)
        .map(|id| (id, Some("once".to_owned())))
        .collect();
    assert_eq!(fixture.id_note_rows("public.orders").await, expected);
}

/// Commits PostgreSQL lost in a crash (possible with the default `synchronous_commit = off`):
/// the rows and the stored offsets of the lost transactions vanish together, the sessions die,
/// and the loader, finding the stored offset behind where it left it, reads those events again.
/// Simulated exactly: the target and the offsets set back to an earlier consistent state.
#[tokio::test]
async fn commits_lost_in_a_postgres_crash_are_read_and_applied_again() {
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "orders");
    let topic = fixture.table_topic(&table, 1).await;
    let mut events = Events::new(orders(&table));
    fixture.publish_schema(&events.schema).await;
    let loader = fixture.start_loader("[batch]\nappliers = 1\nmax_rows = 25\n");
    let first: Vec<_> = (1..=100)
        .map(|id| events.insert(id_note(id, "first")))
        .collect();
    fixture.send(&topic, &first).await;
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;

    // The crash: the transactions after offset 60 are gone, and so is every session.
    let mut lost = fixture.db.pool.begin().await.unwrap();
    sqlx::query("DELETE FROM public.orders WHERE id > 60")
        .execute(&mut *lost)
        .await
        .unwrap();
    let rewound = sqlx::query("UPDATE cdc_loader.offsets SET next_offset = 60 WHERE topic = $1")
        .bind(&topic)
        .execute(&mut *lost)
        .await
        .unwrap();
    assert_eq!(rewound.rows_affected(), 1);
    lost.commit().await.unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name LIKE 'cdc-loader%'",
    )
    .execute(&fixture.db.pool)
    .await
    .unwrap();

    // Only new rows arrive: the lost ones come back only if their events are read again.
    let second: Vec<_> = (101..=150)
        .map(|id| events.insert(id_note(id, "second")))
        .collect();
    fixture.send(&topic, &second).await;
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;
    let expected: BTreeMap<i64, Option<String>> = (1..=150)
        .map(|id| {
            (
                id,
                Some(if id <= 100 { "first" } else { "second" }.to_owned()),
            )
        })
        .collect();
    assert_eq!(fixture.id_note_rows("public.orders").await, expected);
    assert!(
        loader.output().contains("re-reading from it"),
        "the loader did not say it read again:\n{}",
        loader.output()
    );
}

#[tokio::test]
async fn the_loader_s_sessions_use_the_configured_synchronous_commit() {
    let fixture = Fixture::new().await;
    use cdc_loader::config::{PostgresConfig, SynchronousCommit};
    for (setting, shown) in [
        (SynchronousCommit::default(), "off"),
        (SynchronousCommit::On, "on"),
        (SynchronousCommit::RemoteApply, "remote_apply"),
    ] {
        let config = PostgresConfig {
            url: fixture.db.url.clone(),
            password: None,
            connect_timeout_ms: 5_000,
            synchronous_commit: setting,
        };
        let connector = cdc_loader::store::Connector::new(&config, None).unwrap();
        let mut session = connector.connect().await.unwrap();
        let value: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut session)
            .await
            .unwrap();
        assert_eq!(value, shown, "with {setting:?}");
    }
}

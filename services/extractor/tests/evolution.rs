//! Schema changes: a second capture instance takes over at its start LSN with nothing lost on
//! either side, and its schema is published.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use cdc_model::proto::{Operation, TableSchema};
use prost::Message as _;
use support::{Fixture, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_capture_instance_takes_over_at_its_start_lsn_and_its_schema_is_published() {
    let mut fixture = Fixture::new().await;
    let table = fixture
        .captured_table("parts", "id int NOT NULL PRIMARY KEY, qty int NOT NULL")
        .await;
    let process = fixture.start(&fixture.settings(""));
    let mut sql = fixture.sql().await;
    run(&mut sql, "INSERT INTO dbo.parts VALUES (1, 10)").await;
    fixture.read(&table, 1, Some(&process));

    run(
        &mut sql,
        "ALTER TABLE dbo.parts ADD colour nvarchar(10) NULL",
    )
    .await;
    // After the ALTER, before the new instance: only the old one captures it.
    run(&mut sql, "INSERT INTO dbo.parts (id, qty) VALUES (2, 20)").await;
    run(
        &mut sql,
        "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'parts', \
         @role_name = NULL, @capture_instance = N'dbo_parts_v2'",
    )
    .await;
    run(&mut sql, "INSERT INTO dbo.parts VALUES (3, 30, N'red')").await;
    run(
        &mut sql,
        "UPDATE dbo.parts SET colour = N'blue' WHERE id = 1",
    )
    .await;

    let events = fixture.read(&table, 4, Some(&process));
    assert_eq!(events.len(), 4, "each change once: {events:#?}");
    let instances: Vec<&str> = events
        .iter()
        .map(|e| e.source.as_ref().unwrap().capture_instance.as_str())
        .collect();
    assert_eq!(
        instances,
        vec!["dbo_parts", "dbo_parts", "dbo_parts_v2", "dbo_parts_v2"]
    );
    assert_eq!(events[2].op(), Operation::Insert);
    assert_eq!(events[3].op(), Operation::Update);
    assert_eq!(
        events[3].after.as_ref().unwrap().values.len(),
        3,
        "the new column is carried"
    );
    let schemas = support::read_committed(
        &fixture.stack,
        &format!("{}-schemas", fixture.topics.prefix),
        &fixture.names.schemas(),
        2,
        Duration::from_secs(30),
        Some(&process),
    );
    let ids: HashSet<String> = schemas
        .iter()
        .map(|r| cdc_model::schema::fingerprint(&TableSchema::decode(r.value.as_slice()).unwrap()))
        .collect();
    assert!(ids.contains(&events[0].schema_id) && ids.contains(&events[3].schema_id));
    assert_ne!(events[0].schema_id, events[3].schema_id);
}

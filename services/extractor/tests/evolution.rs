//! Schema changes and lost history: a second capture instance takes over at its start LSN
//! with nothing lost on either side, and changes removed by cleanup before they were read stop
//! the table with the lost range named, until a snapshot restarts it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use cdc_extractor::proto::{ListTablesRequest, Phase, StartSnapshotRequest};
use cdc_model::proto::{Operation, TableSchema};
use prost::Message as _;
use support::{Fixture, eventually, run};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_removed_before_they_were_read_stop_the_table_until_it_is_snapshotted_again() {
    let mut fixture = Fixture::new().await;
    let table = fixture
        .captured_table("ledger", "id int NOT NULL PRIMARY KEY, amount int NOT NULL")
        .await;
    let settings = fixture.settings("");
    let mut process = fixture.start(&settings);
    let mut sql = fixture.sql().await;
    run(&mut sql, "INSERT INTO dbo.ledger VALUES (1, 10)").await;
    fixture.read(&table, 1, Some(&process));
    process.terminate(Duration::from_secs(20));

    run(&mut sql, "INSERT INTO dbo.ledger VALUES (2, 20), (3, 30)").await;
    run(&mut sql, "INSERT INTO dbo.ledger VALUES (4, 40)").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Cleanup up to the last commit removes the insert of 2 and 3, never read.
    let max = sql
        .simple_query("SELECT sys.fn_cdc_get_max_lsn()")
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap()
        .get::<&[u8], _>(0)
        .unwrap()
        .to_vec();
    sql.execute(
        "EXEC sys.sp_cdc_cleanup_change_table @capture_instance = N'dbo_ledger', @low_water_mark = @P1",
        &[&max.as_slice()],
    )
    .await
    .unwrap();

    let process = fixture.start(&settings);
    let mut client = fixture.client(&process).await;
    let failed_detail = |mut client: support::Extractor| async move {
        let tables = client
            .list_tables(ListTablesRequest {})
            .await
            .unwrap()
            .into_inner()
            .tables;
        tables
            .iter()
            .find(|t| t.phase() == Phase::Failed)
            .map(|t| t.detail.clone())
    };
    eventually("the table stops", &process, Duration::from_secs(60), || {
        let client = client.clone();
        async move { failed_detail(client).await.is_some() }
    })
    .await;
    let detail = failed_detail(client.clone()).await.unwrap();
    assert!(
        detail.contains("shop.dbo.ledger") && detail.contains("removed by CDC cleanup"),
        "the error names the table and the loss: {detail}"
    );

    let reads_of = |events: &[cdc_model::proto::ChangeEvent]| {
        events.iter().filter(|e| e.op() == Operation::Read).count()
    };
    let earlier = fixture.read(&table, 1, Some(&process));
    let (before, reads_before) = (earlier.len(), reads_of(&earlier));
    client
        .start_snapshot(StartSnapshotRequest {
            database: "shop".to_owned(),
            schema: "dbo".to_owned(),
            table: "ledger".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    // The stream resumes at the oldest change still held (the insert of 4), and the
    // snapshot reads all four rows.
    let events = fixture.read(&table, before + 5, Some(&process));
    assert_eq!(
        reads_of(&events) - reads_before,
        4,
        "the snapshot brings back every row: {:?}",
        events
            .iter()
            .map(|e| (e.op(), e.key.clone(), e.position.clone()))
            .collect::<Vec<_>>()
    );
    run(&mut sql, "INSERT INTO dbo.ledger VALUES (5, 50)").await;
    let events = fixture.read(&table, before + 6, Some(&process));
    let last = events
        .iter()
        .max_by_key(|e| {
            cdc_model::SourcePosition::from_proto(e.position.as_ref().unwrap()).unwrap()
        })
        .unwrap();
    assert_eq!(
        (last.op(), last.key.clone()),
        (Operation::Insert, vec![support::int(5)]),
        "and the stream goes on"
    );
}

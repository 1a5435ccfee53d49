//! Repair commands on the control topic: the rows of the keys asked for are read again and
//! published as snapshot reads after everything the stream had published; a key the source
//! does not hold is published as a delete; a command is carried out once, also across a
//! restart of the extractor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use cdc_model::proto::{ControlCommand, KeyValues, Operation, ResnapshotKeys, control_command};
use prost::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::{Fixture, int, run};

async fn send_repair(fixture: &Fixture, table: &cdc_model::proto::TableId, keys: &[i64]) {
    let producer: FutureProducer = cdc_test_harness::kafka::client_config(&fixture.stack)
        .create()
        .unwrap();
    let command = ControlCommand {
        command_id: uuid::Uuid::new_v4().to_string(),
        requested_by: "test".to_owned(),
        requested_at_unix_ms: 0,
        command: Some(control_command::Command::ResnapshotKeys(ResnapshotKeys {
            table: Some(table.clone()),
            keys: keys
                .iter()
                .map(|k| KeyValues {
                    values: vec![int(*k)],
                })
                .collect(),
        })),
    };
    let payload = command.encode_to_vec();
    producer
        .send(
            FutureRecord::to(&fixture.names.control())
                .key("repair")
                .payload(&payload),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_commands_read_chosen_rows_again_and_delete_keys_the_source_lacks() {
    let mut fixture = Fixture::new().await;
    fixture.topics.adopt(&fixture.names.control());
    let table = fixture
        .captured_table("parts", "id int NOT NULL PRIMARY KEY, qty int NOT NULL")
        .await;
    let mut sql = fixture.sql().await;
    run(
        &mut sql,
        "INSERT INTO dbo.parts VALUES (1, 10), (2, 20), (3, 30)",
    )
    .await;
    let process = fixture.start(&fixture.settings(""));
    let snapshot = fixture.read(&table, 3, Some(&process));
    assert!(snapshot.iter().all(|e| e.op() == Operation::Read));
    run(&mut sql, "UPDATE dbo.parts SET qty = 21 WHERE id = 2").await;
    let before_repair = fixture.read(&table, 4, Some(&process));
    let update = before_repair
        .iter()
        .find(|e| e.op() == Operation::Update)
        .expect("the update")
        .clone();

    send_repair(&fixture, &table, &[2, 99]).await;
    let events = fixture.read(&table, 6, Some(&process));
    // Events are in partition order; the repair's are the ones not there before.
    let repaired: Vec<_> = events
        .iter()
        .filter(|e| !before_repair.contains(e))
        .cloned()
        .collect();
    assert_eq!(repaired.len(), 2, "{repaired:#?}");
    let read = repaired
        .iter()
        .find(|e| e.key == vec![int(2)])
        .expect("key 2 read again");
    assert_eq!(read.op(), Operation::Read);
    assert_eq!(read.after.as_ref().unwrap().values, vec![int(2), int(21)]);
    let deleted = repaired
        .iter()
        .find(|e| e.key == vec![int(99)])
        .expect("key 99 deleted");
    assert_eq!(deleted.op(), Operation::Delete);
    assert_eq!(
        deleted.before.as_ref().unwrap().values,
        vec![int(99), cdc_model::value::null()]
    );
    // Ordered after the update the stream published before the command.
    assert!(
        read.position.as_ref().unwrap().commit_lsn > update.position.as_ref().unwrap().commit_lsn,
        "the repair read must come after the update it may reflect"
    );

    // A restart does not carry the command out again.
    drop(process);
    let process = fixture.start(&fixture.settings(""));
    run(&mut sql, "INSERT INTO dbo.parts VALUES (4, 40)").await;
    let events = fixture.read(&table, 7, Some(&process));
    assert!(events.iter().any(|e| e.key == vec![int(4)]), "{events:#?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = fixture.read_all(&table);
    assert_eq!(all.len(), 7, "the command was carried out twice: {all:#?}");
}

//! What SQL Server's changes become: snapshot reads, then inserts, updates, deletes,
//! primary-key updates, rolled-back and multi-table transactions, each with its images, in
//! order per key, and the schema published before its first event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cdc_model::proto::value::Kind;
use cdc_model::proto::{ChangeEvent, Operation, TableSchema};
use std::time::Duration;

use prost::Message as _;
use support::{Fixture, by_key, int, run};

fn ops(events: &[ChangeEvent]) -> Vec<Operation> {
    events.iter().map(ChangeEvent::op).collect()
}

fn text_at(values: &[cdc_model::proto::Value], index: usize) -> String {
    match &values[index].kind {
        Some(Kind::Text(text)) => text.clone(),
        other => panic!("not text: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_become_ordered_events_with_their_images() {
    let mut fixture = Fixture::new().await;
    let orders = fixture
        .captured_table(
            "orders",
            "id int NOT NULL PRIMARY KEY, customer nvarchar(40) NOT NULL, total decimal(12,2) NULL",
        )
        .await;
    let notes = fixture
        .captured_table(
            "notes",
            "id bigint NOT NULL PRIMARY KEY, body nvarchar(max) NULL",
        )
        .await;
    let mut sql = fixture.sql().await;
    run(
        &mut sql,
        "INSERT INTO orders VALUES (1, N'ada', 10.00), (2, N'bob', 20.00), (3, N'cy', NULL)",
    )
    .await;

    let process = fixture.start(&fixture.settings(""));
    let snapshot = fixture.read(&orders, 3, Some(&process));
    assert_eq!(
        ops(&snapshot),
        vec![Operation::Read; 3],
        "{}",
        process.output()
    );
    let keys: Vec<_> = snapshot.iter().map(|e| e.key.clone()).collect();
    assert_eq!(
        keys,
        vec![vec![int(1)], vec![int(2)], vec![int(3)]],
        "key order"
    );

    // Both snapshots over (notes is empty, so nothing shows when its snapshot ends): a change
    // written before would rightly be read by the snapshot, not streamed as the test expects.
    fixture.until_streaming(&process, 2).await;

    run(&mut sql, "INSERT INTO orders VALUES (4, N'dee', 40.00)").await;
    run(&mut sql, "UPDATE orders SET total = 12.50 WHERE id = 1").await;
    run(&mut sql, "DELETE FROM orders WHERE id = 2").await;
    run(&mut sql, "UPDATE orders SET id = 30 WHERE id = 3").await;
    run(
        &mut sql,
        "BEGIN TRAN; INSERT INTO orders VALUES (99, N'ghost', 1.00); ROLLBACK",
    )
    .await;
    run(
        &mut sql,
        "BEGIN TRAN; UPDATE orders SET customer = N'ada2' WHERE id = 1; \
         INSERT INTO notes VALUES (7, N'first'); UPDATE orders SET customer = N'ada3' WHERE id = 1; \
         COMMIT",
    )
    .await;

    // 3 reads + insert 4, update 1, delete 2, delete 3 + insert 30, two updates of 1.
    let events = fixture.read(&orders, 10, Some(&process));
    assert_eq!(
        events.len(),
        10,
        "exactly these events, nothing for the rolled-back insert: {events:#?}"
    );
    let per_key = by_key(&events);
    let key = |id: i64| cdc_model::key::encode(&orders, &[int(id)]).unwrap();
    assert_eq!(
        ops(&per_key[&key(1)]),
        vec![
            Operation::Read,
            Operation::Update,
            Operation::Update,
            Operation::Update
        ]
    );
    let updates = &per_key[&key(1)][1..];
    assert_eq!(
        text_at(&updates[1].before.as_ref().unwrap().values, 1),
        "ada"
    );
    assert_eq!(
        text_at(&updates[1].after.as_ref().unwrap().values, 1),
        "ada2"
    );
    assert_eq!(
        text_at(&updates[2].before.as_ref().unwrap().values, 1),
        "ada2"
    );
    assert_eq!(
        text_at(&updates[2].after.as_ref().unwrap().values, 1),
        "ada3"
    );
    assert!(
        updates[1].position.as_ref().unwrap().commit_lsn
            == updates[2].position.as_ref().unwrap().commit_lsn
            && updates[1].position.as_ref().unwrap().command_id
                < updates[2].position.as_ref().unwrap().command_id,
        "two statements of one transaction share its commit LSN, in statement order"
    );
    assert_eq!(
        ops(&per_key[&key(2)]),
        vec![Operation::Read, Operation::Delete]
    );
    assert!(per_key[&key(2)][1].after.is_none());
    assert_eq!(
        text_at(&per_key[&key(2)][1].before.as_ref().unwrap().values, 1),
        "bob"
    );
    assert_eq!(
        ops(&per_key[&key(3)]),
        vec![Operation::Read, Operation::Delete],
        "a key update deletes the old key"
    );
    assert_eq!(
        ops(&per_key[&key(30)]),
        vec![Operation::Insert],
        "…and inserts the new one"
    );
    assert_eq!(ops(&per_key[&key(4)]), vec![Operation::Insert]);
    assert!(
        !per_key.contains_key(&key(99)),
        "rolled-back work is never published"
    );
    for events in per_key.values() {
        let positions: Vec<_> = events
            .iter()
            .map(|e| cdc_model::SourcePosition::from_proto(e.position.as_ref().unwrap()).unwrap())
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "per key, positions only grow: {positions:?}"
        );
    }

    let notes_events = fixture.read(&notes, 1, Some(&process));
    assert_eq!(ops(&notes_events), vec![Operation::Insert]);
    assert_eq!(
        notes_events[0].position.as_ref().unwrap().commit_lsn,
        updates[1].position.as_ref().unwrap().commit_lsn,
        "one transaction over two tables keeps one commit LSN"
    );

    // The schema of every event was published, and describes the table.
    let schemas = support::read_committed(
        &fixture.stack,
        &format!("{}-schemas", fixture.topics.prefix),
        &fixture.names.schemas(),
        2,
        std::time::Duration::from_secs(30),
        Some(&process),
    );
    let schema = schemas
        .iter()
        .map(|r| TableSchema::decode(r.value.as_slice()).unwrap())
        .find(|s| s.table.as_ref() == Some(&orders))
        .expect("the orders schema");
    assert_eq!(cdc_model::schema::fingerprint(&schema), events[0].schema_id);
    assert_eq!(schema.key_columns, vec!["id".to_owned()]);
    let columns: Vec<_> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, vec!["id", "customer", "total"]);
}

/// A key's events: operation and the `v` of its after image.
type History = Vec<(Operation, Option<i64>)>;

/// The `v` column of an image, as an integer.
fn v_of(row: Option<&cdc_model::proto::Row>) -> Option<i64> {
    row.map(|r| match r.values[1].kind {
        Some(Kind::Int64(v)) => v,
        ref other => panic!("not an int: {other:?}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_read_in_pages_that_split_updates_gives_every_change_once_in_order() {
    let mut fixture = Fixture::new().await;
    let table = fixture
        .captured_table("paged", "id int NOT NULL PRIMARY KEY, v int NOT NULL")
        .await;
    // Three rows a page: pages end between an update's before and after images, and each
    // full page has the next one read ahead while it is published.
    let settings = fixture.settings_tuned("page_rows = 3\nmax_batch_events = 4", "");
    let mut process = fixture.start(&settings);
    fixture.until_streaming(&process, 1).await;
    process.terminate(Duration::from_secs(30));

    // A backlog while it is stopped: 26 change rows, 16 events.
    let mut sql = fixture.sql().await;
    run(
        &mut sql,
        "INSERT INTO paged VALUES (1, 10), (2, 20), (3, 30), (4, 40), (5, 50)",
    )
    .await;
    run(&mut sql, "UPDATE paged SET v = v + 1").await;
    run(&mut sql, "UPDATE paged SET v = v + 100 WHERE id = 2").await;
    run(&mut sql, "DELETE FROM paged WHERE id = 5").await;
    run(&mut sql, "UPDATE paged SET v = v + 1").await;
    let process = fixture.start(&settings);
    let events = fixture.read(&table, 16, Some(&process));
    assert_eq!(events.len(), 16, "{}", process.output());

    let key = |id: i64| cdc_model::key::encode(&table, &[int(id)]).unwrap();
    let per_key = by_key(&events);
    let expected: [(i64, History); 5] = [
        (
            1,
            vec![
                (Operation::Insert, Some(10)),
                (Operation::Update, Some(11)),
                (Operation::Update, Some(12)),
            ],
        ),
        (
            2,
            vec![
                (Operation::Insert, Some(20)),
                (Operation::Update, Some(21)),
                (Operation::Update, Some(121)),
                (Operation::Update, Some(122)),
            ],
        ),
        (
            3,
            vec![
                (Operation::Insert, Some(30)),
                (Operation::Update, Some(31)),
                (Operation::Update, Some(32)),
            ],
        ),
        (
            4,
            vec![
                (Operation::Insert, Some(40)),
                (Operation::Update, Some(41)),
                (Operation::Update, Some(42)),
            ],
        ),
        (
            5,
            vec![
                (Operation::Insert, Some(50)),
                (Operation::Update, Some(51)),
                (Operation::Delete, None),
            ],
        ),
    ];
    for (id, wanted) in expected {
        let got = &per_key[&key(id)];
        let seen: Vec<_> = got
            .iter()
            .map(|e| (e.op(), v_of(e.after.as_ref())))
            .collect();
        assert_eq!(seen, wanted, "key {id}\n{}", process.output());
        // Each before image is the row as the event before left it.
        for pair in got.windows(2) {
            assert_eq!(
                v_of(pair[1].before.as_ref()),
                v_of(pair[0].after.as_ref()),
                "key {id}: the before image of {:?}",
                pair[1].position
            );
        }
    }
}

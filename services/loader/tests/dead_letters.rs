//! Rows PostgreSQL refuses go to the dead-letter topic with their reason while the rest of the
//! batch is applied; operators list them and replay them once the cause is fixed.

mod support;

use std::time::Duration;

use cdc_loader::proto::{ListDeadLettersRequest, ReplayDeadLettersRequest};
use cdc_model::proto::LogicalType;
use support::{Events, Fixture, column, int, schema, source_table, text};

const CATCH_UP: Duration = Duration::from_secs(60);

#[tokio::test]
async fn refused_rows_are_dead_lettered_listed_and_replayed_once_the_cause_is_fixed() {
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "payments");
    let topic = fixture.table_topic(&table, 1).await;
    let payments = schema(
        &table,
        vec![
            column("id", LogicalType::Int64, false),
            column("note", LogicalType::Text, true),
            column("amount", LogicalType::Int64, false),
        ],
        &["id"],
    );
    let mut events = Events::new(payments);
    fixture.publish_schema(&events.schema).await;
    let loader = fixture.start_loader("");
    fixture
        .send(
            &topic,
            &[events.insert(vec![int(1), text("first"), int(10)])],
        )
        .await;
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;

    // An operator's rule on the target that the source does not know.
    sqlx::query("ALTER TABLE public.payments ADD CONSTRAINT positive CHECK (amount >= 0)")
        .execute(&fixture.db.pool)
        .await
        .unwrap();
    let mut batch = Vec::new();
    for id in 2..=40 {
        batch.push(events.insert(vec![int(id), text("ok"), int(id)]));
    }
    batch.push(events.insert(vec![int(41), text("refund"), int(-5)]));
    batch.push(events.insert(vec![int(42), text("nul \0 inside"), int(1)]));
    batch.push(events.insert(vec![int(43), text("last"), int(43)]));
    fixture.send(&topic, &batch).await;
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;

    let ids: Vec<i64> = fixture
        .id_note_rows("public.payments")
        .await
        .into_keys()
        .collect();
    let mut expected: Vec<i64> = (1..=40).collect();
    expected.push(43);
    assert_eq!(
        ids, expected,
        "every row but the two refused ones is applied"
    );

    let mut client = fixture.client(&loader).await;
    let listed = client
        .list_dead_letters(ListDeadLettersRequest {
            source_table: "shop.dbo.payments".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let check = listed
        .iter()
        .find(|l| l.code == "23514")
        .expect("the CHECK violation");
    assert!(check.reason.contains("positive"), "{}", check.reason);
    assert_eq!(check.source_topic, topic);
    let nul = listed
        .iter()
        .find(|l| l.code != "23514")
        .expect("the NUL character");
    assert!(nul.code.starts_with("22"), "{nul:?}");
    assert!(!check.replayed && !nul.replayed);

    // Fixed: the constraint goes; replaying applies the refund, while the NUL is refused again.
    sqlx::query("ALTER TABLE public.payments DROP CONSTRAINT positive")
        .execute(&fixture.db.pool)
        .await
        .unwrap();
    let outcomes = client
        .replay_dead_letters(ReplayDeadLettersRequest {
            ids: vec![],
            source_table: "shop.dbo.payments".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .outcomes;
    let outcome = |id: &str| outcomes.iter().find(|o| o.id == id).unwrap().clone();
    assert!(outcome(&check.id).applied, "{outcomes:?}");
    assert!(
        !outcome(&nul.id).applied && outcome(&nul.id).reason.contains("refused"),
        "{outcomes:?}"
    );
    assert!(
        fixture
            .id_note_rows("public.payments")
            .await
            .contains_key(&41)
    );

    // A replayed letter is never applied twice.
    let again = client
        .replay_dead_letters(ReplayDeadLettersRequest {
            ids: vec![check.id.clone()],
            source_table: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .outcomes;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].reason, "already replayed");
    let listed = client
        .list_dead_letters(ListDeadLettersRequest {
            source_table: String::new(),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert!(listed.iter().any(|l| l.id == check.id && l.replayed));
    let unknown = client
        .replay_dead_letters(ReplayDeadLettersRequest {
            ids: vec!["0:999".into()],
            source_table: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn undecodable_records_are_dead_lettered_without_stopping_the_stream() {
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "orders");
    let topic = fixture.table_topic(&table, 1).await;
    let mut events = Events::new(support::orders(&table));
    fixture.publish_schema(&events.schema).await;
    let mut unknown_schema = events.insert(support::id_note(2, "no schema"));
    unknown_schema.schema_id = "s1-00000000000000000000000000000000".into();
    fixture
        .send(
            &topic,
            &[
                events.insert(support::id_note(1, "fine")),
                unknown_schema,
                events.insert(support::id_note(3, "fine")),
            ],
        )
        .await;
    let loader = fixture.start_loader("");
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;
    let ids: Vec<i64> = fixture
        .id_note_rows("public.orders")
        .await
        .into_keys()
        .collect();
    assert_eq!(ids, vec![1, 3]);
    let mut client = fixture.client(&loader).await;
    let listed = client
        .list_dead_letters(ListDeadLettersRequest {
            source_table: String::new(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].reason.contains("is not published"),
        "{:?}",
        listed[0]
    );
}

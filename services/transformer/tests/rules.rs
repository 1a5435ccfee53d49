//! Rules applied by the real binary between real Kafka topics: what the clean topic and the
//! schemas topic hold afterwards.

// Tests: a panic with the value in question is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use cdc_model::proto::value::Kind;
use cdc_model::proto::{LogicalType, Operation, TableSchema};
use cdc_model::value::of;
use prost::Message as _;
use support::{Events, Fixture, column, int, schema, source_table, text};

const WAIT: Duration = Duration::from_secs(60);

fn customers(table: &cdc_model::proto::TableId) -> TableSchema {
    schema(
        table,
        vec![
            column("id", LogicalType::Int64, false),
            column("email", LogicalType::Text, true),
            column("card", LogicalType::Text, true),
            column("status", LogicalType::Text, true),
            column("internal", LogicalType::Text, true),
        ],
        &["id"],
    )
}

fn row(id: i64, status: &str) -> Vec<cdc_model::proto::Value> {
    vec![
        int(id),
        text(&format!("user{id}@example.com")),
        text("4111111111111111"),
        text(status),
        text("do not copy"),
    ]
}

const RULES: &str = r#"
[[rules]]
name = "drop internal"
tables = "shop.dbo.customers"
exclude_columns = ["internal"]

[[rules]]
name = "hash email"
tables = "shop.dbo.*"
mask = { column = "email", method = "hmac" }

[[rules]]
name = "card last four"
tables = "shop.dbo.customers"
mask = { column = "card", method = "keep_last", length = 4 }

[[rules]]
name = "active only"
tables = "shop.dbo.customers"
filter = "status IN ('active', 'new') AND id < 1000"

[[rules]]
name = "audit"
tables = "shop.dbo.customers"
add_column = { name = "cdc_op", value = "operation" }

[[rules]]
name = "no snapshot reads"
tables = "shop.dbo.customers"
drop_operations = ["read"]
"#;

#[tokio::test]
async fn rules_shape_the_clean_topic_and_publish_the_output_schema_first() {
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "customers");
    let raw = fixture.raw_topic(&table, 2).await;
    let mut events = Events::new(customers(&table));
    fixture.publish_schema(&events.schema).await;
    let batch = vec![
        events.insert(row(1, "active")),                   // kept
        events.insert(row(2, "closed")),                   // filtered
        events.insert(row(5000, "active")),                // filtered (id)
        events.update(row(1, "active"), row(1, "closed")), // leaves the filter: becomes a delete
        events.insert(row(3, "new")),                      // kept
        events.delete(row(3, "new")),                      // kept
        events.read_at(1_000, row(4, "active")),           // dropped operation
    ];
    fixture.send(&raw, &batch).await;
    let transformer = fixture.start("a", RULES);
    let clean = fixture.names.clean(&table).unwrap();
    let records = fixture.read(&clean, 4, WAIT, Some(&transformer));
    assert_eq!(records.len(), 4, "{records:?}");
    let mut by_key: std::collections::BTreeMap<i64, Vec<cdc_model::proto::ChangeEvent>> =
        Default::default();
    for record in &records {
        let event = record.event();
        let Some(Kind::Int64(id)) = event.key[0].kind else {
            panic!("key {:?}", event.key)
        };
        let (key_table, key_values) = cdc_model::key::decode(&record.key).unwrap();
        assert_eq!(key_table, table);
        assert_eq!(key_values, event.key);
        by_key.entry(id).or_default().push(event);
    }
    let one = &by_key[&1];
    assert_eq!(one.len(), 2);
    assert_eq!(one[0].op(), Operation::Insert);
    let after = &one[0].after.as_ref().unwrap().values;
    assert_eq!(after.len(), 5, "id, email, card, status, cdc_op");
    assert_eq!(after[0], int(1));
    let Some(Kind::Text(email)) = &after[1].kind else {
        panic!("{after:?}")
    };
    assert_eq!(email.len(), 64);
    assert!(!email.contains("example"));
    assert_eq!(after[2], text("************1111"));
    assert_eq!(after[4], text("insert"));
    assert_eq!(
        one[1].op(),
        Operation::Delete,
        "an update leaving the filter deletes"
    );
    assert!(one[1].after.is_none());
    let three = &by_key[&3];
    assert_eq!(
        three.iter().map(|e| e.op()).collect::<Vec<_>>(),
        [Operation::Insert, Operation::Delete]
    );
    assert!(!by_key.contains_key(&2) && !by_key.contains_key(&5000) && !by_key.contains_key(&4));

    // The output schema is in the schemas topic, keyed by its fingerprint.
    let schema_id = one[0].schema_id.clone();
    assert_ne!(schema_id, events.schema_id);
    let schemas = fixture.read(&fixture.names.schemas(), 2, WAIT, Some(&transformer));
    let published: Vec<TableSchema> = schemas
        .iter()
        .filter(|r| r.key == schema_id.as_bytes())
        .map(|r| TableSchema::decode(r.value.as_slice()).unwrap())
        .collect();
    assert_eq!(published.len(), 1, "published once");
    let names: Vec<&str> = published[0]
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["id", "email", "card", "status", "cdc_op"]);
    assert_eq!(cdc_model::schema::fingerprint(&published[0]), schema_id);

    // Per-rule and per-table counters, once the transaction's commit is confirmed.
    let expected = [
        r#"cdc_transformer_rule_events_total{rule="active only",outcome="filtered"} 2"#,
        r#"cdc_transformer_rule_events_total{rule="no snapshot reads",outcome="filtered"} 1"#,
        r#"cdc_transformer_events_total{table="shop.dbo.customers",outcome="transformed"} 4"#,
        r#"cdc_transformer_events_total{table="shop.dbo.customers",outcome="filtered"} 3"#,
    ];
    support::eventually("rule metrics", &transformer, WAIT, || async {
        let scraped = cdc_test_harness::service_contract::scrape(transformer.metrics);
        expected.iter().all(|line| scraped.contains(line))
    })
    .await;
}

#[tokio::test]
async fn a_table_no_rule_matches_passes_byte_for_byte() {
    let mut fixture = Fixture::new().await;
    let table = source_table("warehouse", "dbo", "products");
    let raw = fixture.raw_topic(&table, 1).await;
    let mut events = Events::new(customers(&table));
    let batch: Vec<_> = (1..=20).map(|id| events.insert(row(id, "x"))).collect();
    fixture.send(&raw, &batch).await;
    let transformer = fixture.start("a", RULES);
    let clean = fixture.names.clean(&table).unwrap();
    let records = fixture.read(&clean, 20, WAIT, Some(&transformer));
    assert_eq!(records.len(), 20);
    let sent = fixture.read(&raw, 20, WAIT, None);
    for (out, sent) in records.iter().zip(&sent) {
        assert_eq!(out.key, sent.key);
        assert_eq!(out.value, sent.value);
    }
}

#[tokio::test]
async fn conversions_change_types_and_values() {
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "payments");
    let raw = fixture.raw_topic(&table, 1).await;
    let payments = schema(
        &table,
        vec![
            column("id", LogicalType::Int64, false),
            column("ref", LogicalType::Text, true),
            column("at", LogicalType::Timestamptz, true),
            column("memo", LogicalType::Text, true),
        ],
        &["id"],
    );
    let mut events = Events::new(payments);
    fixture.publish_schema(&events.schema).await;
    let at = of(Kind::Timestamptz(cdc_model::proto::TimestampTz {
        utc_seconds: 1_700_000_000,
        nanos: 0,
        offset_minutes: -300,
    }));
    fixture
        .send(
            &raw,
            &[events.insert(vec![
                int(1),
                text("6f9619ff-8b86-d011-b42d-00c04fc964ff"),
                at,
                text("a very long memo"),
            ])],
        )
        .await;
    let rules = r#"
[[rules]]
tables = "shop.dbo.payments"
convert = { column = "ref", to = "uuid" }
[[rules]]
tables = "shop.dbo.payments"
convert = { column = "at", to = "timestamptz_utc" }
[[rules]]
tables = "shop.dbo.payments"
convert = { column = "memo", to = "varchar", length = 6, on_error = "truncate" }
[[rules]]
tables = "shop.dbo.payments"
route = { schema = "finance", table = "payments_v2" }
"#;
    let transformer = fixture.start("a", rules);
    let routed = source_table("shop", "finance", "payments_v2");
    fixture.topics.adopt(&fixture.names.clean(&routed).unwrap());
    let clean = fixture.names.clean(&routed).unwrap();
    let records = fixture.read(&clean, 1, WAIT, Some(&transformer));
    let event = records[0].event();
    assert_eq!(
        event.source.as_ref().unwrap().table.as_ref().unwrap(),
        &routed
    );
    let after = event.after.unwrap().values;
    assert!(matches!(&after[1].kind, Some(Kind::Uuid(b)) if b.len() == 16 && b[0] == 0x6f));
    assert!(
        matches!(&after[2].kind, Some(Kind::Timestamptz(t)) if t.offset_minutes == 0 && t.utc_seconds == 1_700_000_000)
    );
    assert_eq!(after[3], text("a very"));
}

#[tokio::test]
async fn pause_stops_consuming_and_resume_goes_on_from_where_it_stopped() {
    use cdc_service_kit::proto::control_client::ControlClient;
    use cdc_service_kit::proto::{PauseRequest, ResumeRequest};
    let mut fixture = Fixture::new().await;
    let table = source_table("warehouse", "dbo", "stock");
    let raw = fixture.raw_topic(&table, 1).await;
    let mut events = Events::new(customers(&table));
    let transformer = fixture.start("a", RULES);
    let mut control = ControlClient::new(
        cdc_test_harness::control::connect(transformer.grpc, support::CONTROL_TOKEN).await,
    );
    fixture.send(&raw, &[events.insert(row(1, "x"))]).await;
    let clean = fixture.names.clean(&table).unwrap();
    assert_eq!(fixture.read(&clean, 1, WAIT, Some(&transformer)).len(), 1);
    control
        .pause(PauseRequest {
            reason: "maintenance".into(),
        })
        .await
        .unwrap();
    fixture.send(&raw, &[events.insert(row(2, "x"))]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fixture.read(&clean, 1, WAIT, Some(&transformer)).len(),
        1,
        "nothing moves while paused"
    );
    control.resume(ResumeRequest {}).await.unwrap();
    assert_eq!(fixture.read(&clean, 2, WAIT, Some(&transformer)).len(), 2);
}

//! Schema evolution on real PostgreSQL: new columns, safe widening, dropped columns kept, and an
//! incompatible change pausing only its table; operators pausing and resuming a table.

// Helpers below panic on a broken setup, as tests do.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use cdc_loader::proto::{ListTablesRequest, TableRequest};
use cdc_model::proto::{LogicalType, TableSchema};
use sqlx::Row as _;
use support::{
    Events, Fixture, column, decimal, id_note, int, orders, schema, source_table, text,
    typed_column,
};

const CATCH_UP: Duration = Duration::from_secs(60);

/// `(id, note, amount as text, legacy, added)`.
type ItemRow = (i64, String, String, Option<i32>, Option<bool>);

fn items_v1(table: &cdc_model::proto::TableId) -> TableSchema {
    schema(
        table,
        vec![
            column("id", LogicalType::Int32, false),
            typed_column("note", LogicalType::Text, 10, 0, 0, true),
            typed_column("amount", LogicalType::Decimal, 0, 10, 2, false),
            column("legacy", LogicalType::Int32, false),
        ],
        &["id"],
    )
}

fn items_v2(table: &cdc_model::proto::TableId) -> TableSchema {
    schema(
        table,
        vec![
            column("id", LogicalType::Int64, false),
            typed_column("note", LogicalType::Text, 50, 0, 0, true),
            typed_column("amount", LogicalType::Decimal, 0, 12, 4, false),
            column("added", LogicalType::Bool, true),
        ],
        &["id"],
    )
}

async fn columns(fixture: &Fixture, table: &str) -> Vec<(String, String, bool)> {
    let rows = sqlx::query(
        "SELECT column_name::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
         FROM information_schema.columns c
         JOIN pg_attribute a ON a.attrelid = ('public.' || quote_ident(c.table_name))::regclass AND a.attname = c.column_name
         WHERE c.table_schema = 'public' AND c.table_name = $1 ORDER BY c.ordinal_position",
    )
    .bind(table)
    .fetch_all(&fixture.db.pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn a_new_schema_adds_columns_widens_types_and_keeps_dropped_columns_nullable() {
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "items");
    let topic = fixture.table_topic(&table, 1).await;
    let mut v1 = Events::new(items_v1(&table));
    fixture.publish_schema(&v1.schema).await;
    let first = v1.insert(vec![int(1), text("short"), decimal(1_050, 2), int(7)]);
    fixture.send(&topic, &[first]).await;
    let loader = fixture.start_loader("");
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;

    let mut v2 = v1.evolve(items_v2(&table));
    fixture.publish_schema(&v2.schema).await;
    let long_note = "a note much longer than ten characters";
    let second = vec![v2.insert(vec![
        int(3_000_000_000),
        text(long_note),
        decimal(123_456_789_012, 4),
        cdc_model::value::of(cdc_model::proto::value::Kind::Bool(true)),
    ])];
    fixture.send(&topic, &second).await;
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;

    assert_eq!(
        columns(&fixture, "items").await,
        vec![
            ("id".into(), "bigint".into(), false),
            ("note".into(), "character varying(50)".into(), true),
            ("amount".into(), "numeric(12,4)".into(), false),
            ("legacy".into(), "integer".into(), true),
            ("_cdc_position".into(), "bytea".into(), false),
            (
                "_cdc_commit_time".into(),
                "timestamp(6) with time zone".into(),
                false
            ),
            ("added".into(), "boolean".into(), true),
        ]
    );
    let rows =
        sqlx::query("SELECT id, note, amount::text, legacy, added FROM public.items ORDER BY id")
            .fetch_all(&fixture.db.pool)
            .await
            .unwrap();
    let rows: Vec<ItemRow> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, "short".into(), "10.5000".into(), Some(7), None),
            (
                3_000_000_000,
                long_note.into(),
                "12345678.9012".into(),
                None,
                Some(true)
            ),
        ]
    );
}

#[tokio::test]
async fn an_incompatible_change_pauses_its_table_while_other_tables_go_on() {
    let mut fixture = Fixture::new().await;
    let items = source_table("shop", "dbo", "items");
    let other = source_table("shop", "dbo", "other");
    let items_topic = fixture.table_topic(&items, 1).await;
    let other_topic = fixture.table_topic(&other, 1).await;
    let mut v1 = Events::new(orders(&items));
    let mut others = Events::new(orders(&other));
    fixture.publish_schema(&v1.schema).await;
    fixture.publish_schema(&others.schema).await;
    fixture
        .send(&items_topic, &[v1.insert(id_note(1, "text"))])
        .await;
    let loader = fixture.start_loader("");
    fixture
        .wait_caught_up(&items_topic, &loader, CATCH_UP)
        .await;
    let applied_items = fixture.stored_offsets(&items_topic).await;

    // `note` turns from text into a number: no safe change exists.
    let mut v2 = v1.evolve(schema(
        &items,
        vec![
            column("id", LogicalType::Int64, false),
            column("note", LogicalType::Int64, true),
        ],
        &["id"],
    ));
    fixture.publish_schema(&v2.schema).await;
    fixture
        .send(&items_topic, &[v2.insert(vec![int(2), int(42)])])
        .await;
    fixture
        .send(&other_topic, &[others.insert(id_note(1, "still flowing"))])
        .await;
    fixture
        .wait_caught_up(&other_topic, &loader, CATCH_UP)
        .await;

    let mut client = fixture.client(&loader).await;
    let deadline = std::time::Instant::now() + CATCH_UP;
    let paused_reason = loop {
        let tables = client
            .list_tables(ListTablesRequest {})
            .await
            .unwrap()
            .into_inner()
            .tables;
        let reason = tables
            .iter()
            .find(|t| t.table == "public.items")
            .map(|t| t.paused_reason.clone());
        match reason {
            Some(reason) if !reason.is_empty() => break reason,
            _ => assert!(
                std::time::Instant::now() < deadline,
                "items never paused\n{}",
                loader.output()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        paused_reason.contains("column `note` is text"),
        "{paused_reason}"
    );
    assert_eq!(
        fixture.stored_offsets(&items_topic).await,
        applied_items,
        "the paused table's offsets stay put"
    );
    assert_eq!(fixture.id_note_rows("public.items").await.len(), 1);
    assert_eq!(fixture.id_note_rows("public.other").await.len(), 1);
    let metrics = cdc_test_harness::service_contract::scrape(loader.metrics);
    assert!(
        metrics.contains("cdc_loader_table_paused{table=\"public.items\"} 1"),
        "{metrics}"
    );

    // An operator pause holds back new events of a table until it is resumed.
    let status = client
        .pause_table(TableRequest {
            table: "public.other".into(),
            reason: "maintenance".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.paused_reason, "maintenance");
    fixture
        .send(&other_topic, &[others.insert(id_note(2, "held back"))])
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fixture.id_note_rows("public.other").await.len(),
        1,
        "nothing applied while paused"
    );
    let status = client
        .resume_table(TableRequest {
            table: "public.other".into(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(status.paused_reason.is_empty());
    fixture
        .wait_caught_up(&other_topic, &loader, CATCH_UP)
        .await;
    assert_eq!(fixture.id_note_rows("public.other").await.len(), 2);
    let unknown = client
        .pause_table(TableRequest {
            table: "public.nope".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

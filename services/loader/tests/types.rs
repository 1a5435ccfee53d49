//! Every logical type of the type map goes through the loader's binary COPY and reads back
//! from PostgreSQL as exactly the value sent, edge values included; a value beyond its column's
//! range is dead-lettered by the column's name while its neighbours land.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use cdc_loader::proto::ListDeadLettersRequest;
use cdc_model::proto::value::Kind;
use cdc_model::proto::{LogicalType, Timestamp, TimestampTz, Value};
use cdc_model::value::{null, of};
use sqlx::Row as _;
use support::{Events, Fixture, column, decimal, int, schema, source_table, text, typed_column};

const CATCH_UP: Duration = Duration::from_secs(60);

/// The columns after `id`, with the SQL that reads each back as text.
const READ_BACK: [(&str, &str); 18] = [
    ("flag", "flag::text"),
    ("small", "small::text"),
    ("medium", "medium::text"),
    ("amount", "amount::text"),
    ("single", "single::text"),
    ("double", "double::text"),
    ("day", "day::text"),
    ("at_time", "at_time::text"),
    ("stamp", "stamp::text"),
    ("stamp_ms", "stamp_ms::text"),
    ("stamp_tz", "(stamp_tz AT TIME ZONE 'UTC')::text"),
    ("name", "name::text"),
    ("body", "body"),
    ("raw", "raw::text"),
    ("id_uuid", "id_uuid::text"),
    ("doc", "doc::text"),
    ("markup", "markup::text"),
    ("markup_declared", "markup_declared::text"),
];

fn row(id: i64, values: Vec<Value>) -> Vec<Value> {
    let mut row = vec![int(id)];
    row.extend(values);
    row
}

#[tokio::test]
async fn every_logical_type_reads_back_as_sent_and_an_out_of_range_value_is_refused_by_column() {
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "kinds");
    let topic = fixture.table_topic(&table, 1).await;
    let mut events = Events::new(schema(
        &table,
        vec![
            column("id", LogicalType::Int64, false),
            column("flag", LogicalType::Bool, true),
            column("small", LogicalType::Int16, true),
            column("medium", LogicalType::Int32, true),
            typed_column("amount", LogicalType::Decimal, 0, 38, 10, true),
            column("single", LogicalType::Float32, true),
            column("double", LogicalType::Float64, true),
            column("day", LogicalType::Date, true),
            typed_column("at_time", LogicalType::Time, 0, 0, 7, true),
            typed_column("stamp", LogicalType::Timestamp, 0, 0, 7, true),
            typed_column("stamp_ms", LogicalType::Timestamp, 0, 0, 3, true),
            typed_column("stamp_tz", LogicalType::Timestamptz, 0, 0, 7, true),
            typed_column("name", LogicalType::Text, 20, 0, 0, true),
            column("body", LogicalType::Text, true),
            column("raw", LogicalType::Bytes, true),
            column("id_uuid", LogicalType::Uuid, true),
            column("doc", LogicalType::Json, true),
            column("markup", LogicalType::Xml, true),
            column("markup_declared", LogicalType::Xml, true),
        ],
        &["id"],
    ));
    fixture.publish_schema(&events.schema).await;
    let loader = fixture.start_loader("");

    let edges = row(
        1,
        vec![
            of(Kind::Bool(true)),
            int(-32_768),
            int(2_147_483_647),
            decimal(-12_345_678_901_234_567_890_123_456_789_012_345_678, 10),
            of(Kind::Float64(f64::from(0.1f32))),
            of(Kind::Float64(f64::NEG_INFINITY)),
            of(Kind::Date(cdc_model::calendar::FIRST_SQL_SERVER_DAY)),
            // 23:59:59.9999999 rounds up to 24:00:00, which PostgreSQL's time holds.
            of(Kind::TimeNanos(86_399_999_999_900)),
            // 9999-12-31 23:59:59.9999999 rounds up into year 10000.
            of(Kind::Timestamp(Timestamp {
                seconds: 253_402_300_799,
                nanos: 999_999_900,
            })),
            // Rounded to microseconds by the loader, then to the column's milliseconds.
            of(Kind::Timestamp(Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_456_789,
            })),
            of(Kind::Timestamptz(TimestampTz {
                utc_seconds: 0,
                nanos: 1_234_567,
                offset_minutes: -300,
            })),
            text("naïve\ttab\\"),
            text("line\nbreak ✓ \"quoted\" \\N"),
            of(Kind::Bytes(vec![0, 255, 10])),
            of(Kind::Uuid((0u8..16).collect())),
            of(Kind::Json(r#"{"b": [1, 2], "a": null}"#.into())),
            of(Kind::Xml(r#"<r a="1">ü</r>"#.into())),
            // Staged as text, so a declared encoding other than the UTF-8 sent is harmless.
            of(Kind::Xml(
                r#"<?xml version="1.0" encoding="UTF-16"?><r>ü</r>"#.into(),
            )),
        ],
    );
    let small_values = row(
        2,
        vec![
            of(Kind::Bool(false)),
            int(0),
            int(-1),
            decimal(12, 6),
            of(Kind::Float64(-0.5)),
            of(Kind::Float64(f64::NAN)),
            of(Kind::Date(0)),
            of(Kind::TimeNanos(0)),
            of(Kind::Timestamp(Timestamp {
                seconds: -1,
                nanos: 999_999_500,
            })),
            null(),
            null(),
            text(""),
            null(),
            of(Kind::Bytes(Vec::new())),
            null(),
            of(Kind::Json("[]".into())),
            null(),
            null(),
        ],
    );
    let nulls = row(3, vec![null(); READ_BACK.len()]);
    let mut beyond = nulls.clone();
    beyond[0] = int(4);
    beyond[2] = int(40_000);
    fixture
        .send(
            &topic,
            &[
                events.insert(edges),
                events.insert(small_values),
                events.insert(beyond),
                events.insert(nulls),
            ],
        )
        .await;
    fixture.wait_caught_up(&topic, &loader, CATCH_UP).await;

    let selected: Vec<&str> = READ_BACK.iter().map(|(_, sql)| *sql).collect();
    let sql = format!(
        "SELECT id, {} FROM public.kinds ORDER BY id",
        selected.join(", ")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&fixture.db.pool)
        .await
        .unwrap();
    let read: BTreeMap<i64, BTreeMap<&str, Option<String>>> = rows
        .iter()
        .map(|r| {
            let columns = READ_BACK
                .iter()
                .enumerate()
                .map(|(at, (name, _))| (*name, r.get::<Option<String>, _>(at + 1)))
                .collect();
            (r.get(0), columns)
        })
        .collect();
    assert_eq!(
        read.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3],
        "row 4 is refused, the others land"
    );
    let expect = |values: [Option<&str>; 18]| -> BTreeMap<&str, Option<String>> {
        READ_BACK
            .iter()
            .zip(values)
            .map(|((name, _), value)| (*name, value.map(str::to_owned)))
            .collect()
    };
    assert_eq!(
        read[&1],
        expect([
            Some("true"),
            Some("-32768"),
            Some("2147483647"),
            Some("-1234567890123456789012345678.9012345678"),
            Some("0.1"),
            Some("-Infinity"),
            Some("0001-01-01"),
            Some("24:00:00"),
            Some("10000-01-01 00:00:00"),
            Some("2023-11-14 22:13:20.123"),
            Some("1970-01-01 00:00:00.001235"),
            Some("naïve\ttab\\"),
            Some("line\nbreak ✓ \"quoted\" \\N"),
            Some("\\x00ff0a"),
            Some("00010203-0405-0607-0809-0a0b0c0d0e0f"),
            Some(r#"{"a": null, "b": [1, 2]}"#),
            Some(r#"<r a="1">ü</r>"#),
            Some(r#"<?xml version="1.0" encoding="UTF-16"?><r>ü</r>"#),
        ])
    );
    assert_eq!(
        read[&2],
        expect([
            Some("false"),
            Some("0"),
            Some("-1"),
            Some("0.0000120000"),
            Some("-0.5"),
            Some("NaN"),
            Some("1970-01-01"),
            Some("00:00:00"),
            Some("1970-01-01 00:00:00"),
            None,
            None,
            Some(""),
            None,
            Some("\\x"),
            None,
            Some("[]"),
            None,
            None,
        ])
    );
    assert_eq!(read[&3], expect([None; 18]));

    let letters = fixture
        .client(&loader)
        .await
        .list_dead_letters(ListDeadLettersRequest {
            source_table: "shop.dbo.kinds".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].code, "22003");
    assert_eq!(
        letters[0].reason,
        "column small: 40000 is out of range for smallint"
    );
}

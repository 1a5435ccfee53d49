//! Dead letters: what cannot be transformed goes to `<prefix>.dlq.transformer` with its
//! original bytes and why; the rest goes on; a replay after the rules are fixed puts them
//! back exactly once; a bad rule set is refused on reload.

// Tests: a panic with the value in question is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use cdc_model::dead_letter as header;
use cdc_model::proto::value::Kind;
use cdc_model::proto::{LogicalType, TableSchema};
use cdc_transformer::proto::{
    ListDeadLettersRequest, ListRulesRequest, ReloadRulesRequest, ReplayDeadLettersRequest,
};
use support::{Events, Fixture, column, int, schema, source_table, text};

const WAIT: Duration = Duration::from_secs(60);

fn payments(table: &cdc_model::proto::TableId) -> TableSchema {
    schema(
        table,
        vec![
            column("id", LogicalType::Int64, false),
            column("ref", LogicalType::Text, true),
        ],
        &["id"],
    )
}

const STRICT: &str = r#"
[[rules]]
name = "ref is a uuid"
tables = "shop.dbo.payments"
convert = { column = "ref", to = "uuid" }
"#;

const LENIENT: &str = r#"
[[rules]]
name = "ref is a uuid"
tables = "shop.dbo.payments"
convert = { column = "ref", to = "uuid", on_error = "null" }
"#;

const UUID: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

#[tokio::test]
async fn refused_events_are_dead_lettered_then_replayed_once_after_the_rules_are_fixed() {
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "payments");
    let raw = fixture.raw_topic(&table, 1).await;
    let mut events = Events::new(payments(&table));
    fixture.publish_schema(&events.schema).await;
    let batch = vec![
        events.insert(vec![int(1), text(UUID)]),
        events.insert(vec![int(2), text("not a uuid")]),
        events.insert(vec![int(3), text(UUID)]),
    ];
    fixture.send(&raw, &batch).await;
    fixture
        .send_encoded(&raw, &[(b"k".to_vec(), b"\xffnot protobuf".to_vec())])
        .await;
    let transformer = fixture.start("a", STRICT);
    let clean = fixture.names.clean(&table).unwrap();
    let passed = fixture.read(&clean, 2, WAIT, Some(&transformer));
    assert_eq!(passed.len(), 2, "the rest goes on");

    let dlq = fixture.names.dlq_transformer();
    let letters = fixture.read(&dlq, 2, WAIT, Some(&transformer));
    assert_eq!(letters.len(), 2, "{letters:?}");
    let sent = fixture.read(&raw, 4, WAIT, None);
    let refused = &letters[0];
    assert_eq!(refused.value, sent[1].value, "original bytes kept");
    assert_eq!(refused.key, sent[1].key);
    assert_eq!(refused.headers[header::STAGE], "transformer");
    assert_eq!(refused.headers[header::RULE], "ref is a uuid");
    assert_eq!(refused.headers[header::CODE], "rule_failed");
    assert_eq!(
        refused.headers[header::REASON],
        "column `ref` holds text that is not a UUID, which cannot be converted"
    );
    assert_eq!(refused.headers[header::TABLE], "shop.dbo.payments");
    assert_eq!(refused.headers[header::SOURCE_TOPIC], raw);
    assert_eq!(refused.headers[header::SOURCE_OFFSET], "1");
    assert!(!refused.headers[header::SOURCE_POSITION].is_empty());
    assert_eq!(letters[1].headers[header::CODE], "undecodable");
    assert!(!letters[1].headers.contains_key(header::RULE));

    let mut client = fixture.client(&transformer).await;
    let listed = client
        .list_dead_letters(ListDeadLettersRequest { limit: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.pending, 2);
    assert_eq!(listed.dead_letters[0].rule, "ref is a uuid");
    assert_eq!(listed.dead_letters[0].source_offset, 1);

    // Fix the rules in the file, reload, replay.
    let config_path = transformer.config_path();
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, config.replace(STRICT, LENIENT)).unwrap();
    let reloaded = client
        .reload_rules(ReloadRulesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reloaded.generation, reloaded.rules), (2, 1));
    let replay = client
        .replay_dead_letters(ReplayDeadLettersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (replay.read, replay.replayed, replay.failed_again),
        (2, 1, 1)
    );
    let after = fixture.read(&clean, 3, WAIT, Some(&transformer));
    assert_eq!(
        after.len(),
        3,
        "the replayed event reaches the clean topic once"
    );
    let replayed = after
        .iter()
        .map(|r| r.event())
        .find(|e| e.key == vec![int(2)])
        .unwrap();
    assert!(matches!(
        replayed.after.unwrap().values[1].kind,
        Some(Kind::Null(_))
    ));

    // Only the undecodable record is pending now, marked as replayed once.
    let listed = client
        .list_dead_letters(ListDeadLettersRequest { limit: 10 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.pending, 1);
    assert_eq!(listed.dead_letters[0].code, "undecodable");
    let letters = fixture.read(&dlq, 3, WAIT, Some(&transformer));
    assert_eq!(letters[2].headers[header::REPLAYS], "1");
    let again = client
        .replay_dead_letters(ReplayDeadLettersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.read, again.replayed, again.failed_again), (1, 0, 1));
}

#[tokio::test]
async fn a_bad_rule_set_is_refused_on_reload_and_the_running_rules_stay() {
    let fixture = Fixture::new().await;
    let transformer = fixture.start("a", STRICT);
    let mut client = fixture.client(&transformer).await;
    let config_path = transformer.config_path();
    let config = std::fs::read_to_string(&config_path).unwrap();
    let broken = config.replace(
        "convert = { column = \"ref\", to = \"uuid\" }",
        "filter = \"amount >\"",
    );
    std::fs::write(&config_path, broken).unwrap();
    let refused = client
        .reload_rules(ReloadRulesRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused
            .message()
            .contains("`rules[0].filter`: at character 9"),
        "{}",
        refused.message()
    );
    let rules = client
        .list_rules(ListRulesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rules.generation, 1);
    assert_eq!(rules.rules[0].action, "convert");
}

#[tokio::test]
async fn a_rule_that_no_longer_fits_a_new_schema_dead_letters_only_that_table() {
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "payments");
    let other = source_table("shop", "dbo", "notes");
    let raw = fixture.raw_topic(&table, 1).await;
    let other_raw = fixture.raw_topic(&other, 1).await;
    let mut events = Events::new(payments(&table));
    // The new capture instance has no `ref` column, which the rule converts.
    let mut evolved = events.evolve(schema(
        &table,
        vec![
            column("id", LogicalType::Int64, false),
            column("amount", LogicalType::Int64, true),
        ],
        &["id"],
    ));
    fixture.publish_schema(&events.schema).await;
    fixture.publish_schema(&evolved.schema).await;
    let mut notes = Events::new(payments(&other));
    fixture
        .send(&raw, &[events.insert(vec![int(1), text(UUID)])])
        .await;
    fixture
        .send(&raw, &[evolved.insert(vec![int(2), int(10)])])
        .await;
    fixture
        .send(&other_raw, &[notes.insert(vec![int(1), text("x")])])
        .await;
    let transformer = fixture.start("a", STRICT);
    let clean = fixture.names.clean(&table).unwrap();
    assert_eq!(fixture.read(&clean, 1, WAIT, Some(&transformer)).len(), 1);
    let other_clean = fixture.names.clean(&other).unwrap();
    assert_eq!(
        fixture
            .read(&other_clean, 1, WAIT, Some(&transformer))
            .len(),
        1
    );
    let letters = fixture.read(
        &fixture.names.dlq_transformer(),
        1,
        WAIT,
        Some(&transformer),
    );
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].headers[header::CODE], "rule_does_not_fit");
    assert_eq!(
        letters[0].headers[header::REASON],
        "unknown column `ref` (columns: id, amount)"
    );
    let mut client = fixture.client(&transformer).await;
    let rules = client
        .list_rules(ListRulesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rules.problems.len(), 1);
    assert_eq!(rules.problems[0].table, "shop.dbo.payments");
    assert_eq!(rules.problems[0].rule, "ref is a uuid");
    assert_eq!(rules.problems[0].schema_id, evolved.schema_id);
}

#[tokio::test]
async fn operators_list_rules_and_dead_letters_with_grpcurl() {
    let fixture = Fixture::new().await;
    let transformer = fixture.start("a", STRICT);
    let call = |method: &str, data: &str, token: Option<&str>| {
        cdc_test_harness::grpcurl::call(&fixture.stack, transformer.grpc, token, method, data)
    };
    let rules = call(
        "cdc.transformer.v1.Transformer/ListRules",
        "{}",
        Some(support::CONTROL_TOKEN),
    );
    assert!(rules.success, "{}", rules.stderr);
    let listed: serde_json::Value = serde_json::from_str(&rules.stdout).unwrap();
    assert_eq!(listed["rules"][0]["name"], "ref is a uuid");
    assert_eq!(listed["rules"][0]["action"], "convert");
    assert_eq!(listed["generation"], "1");
    let letters = call(
        "cdc.transformer.v1.Transformer/ListDeadLetters",
        r#"{"limit": 5}"#,
        Some(support::CONTROL_TOKEN),
    );
    assert!(letters.success, "{}", letters.stderr);
    let refused = call("cdc.transformer.v1.Transformer/ReloadRules", "{}", None);
    assert!(!refused.success, "control calls need the token");
    assert!(
        refused.stderr.contains("Unauthenticated"),
        "{}",
        refused.stderr
    );
}

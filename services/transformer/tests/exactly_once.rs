//! Exactly once across crashes and rebalances: every raw event reaches the clean topic once,
//! in its key's order, whatever happens to the transformer instances in between.

// Tests: a panic with the value in question is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use cdc_model::proto::ChangeEvent;
use support::{Events, Fixture, Workload, orders, seed, source_table};

const RULE: &str = r#"
[batch]
max_events = 150
max_wait_ms = 50

[[rules]]
name = "audit"
tables = "*"
add_column = { name = "cdc_op", value = "operation" }
"#;

/// Per key, the commit LSNs of its events in order.
fn positions_by_key<'a>(
    events: impl Iterator<Item = &'a ChangeEvent>,
) -> BTreeMap<Vec<u8>, Vec<Vec<u8>>> {
    let mut by_key: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    for event in events {
        let key = cdc_model::key::encode(
            event.source.as_ref().unwrap().table.as_ref().unwrap(),
            &event.key,
        )
        .unwrap();
        by_key
            .entry(key)
            .or_default()
            .push(event.position.as_ref().unwrap().commit_lsn.clone());
    }
    by_key
}

async fn send_slowly(fixture: &Fixture, topic: &str, events: &[ChangeEvent]) {
    for chunk in events.chunks(500) {
        fixture.send(topic, chunk).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

fn check_exactly_once(fixture: &Fixture, clean: &str, sent: &[ChangeEvent], output: &str) {
    let records = fixture.read(clean, sent.len(), Duration::from_secs(120), None);
    let mut ordered = records.clone();
    ordered.sort_by_key(|r| (r.partition, r.offset));
    let received: Vec<ChangeEvent> = ordered.iter().map(|r| r.event()).collect();
    assert_eq!(
        received.len(),
        sent.len(),
        "every event exactly once (received {} of {})\n{output}",
        received.len(),
        sent.len()
    );
    let expected = positions_by_key(sent.iter());
    let actual = positions_by_key(received.iter());
    assert_eq!(expected.len(), actual.len());
    for (key, positions) in &expected {
        assert_eq!(
            actual.get(key),
            Some(positions),
            "key {key:?}: events lost, duplicated or reordered"
        );
    }
}

/// `shop.dbo.orders` with a raw topic of `partitions` partitions and its schema published,
/// a random workload of `events` events over 500 keys, and the name of the clean topic.
async fn orders_workload(
    fixture: &mut Fixture,
    partitions: i32,
    events: usize,
) -> (String, Workload, String) {
    let table = source_table("shop", "dbo", "orders");
    let raw = fixture.raw_topic(&table, partitions).await;
    let mut generator = Events::new(orders(&table));
    fixture.publish_schema(&generator.schema).await;
    let workload = Workload::random(&mut generator, seed(), 500, events);
    let clean = fixture.names.clean(&table).unwrap();
    (raw, workload, clean)
}

#[tokio::test]
async fn kill_9_in_the_middle_of_transactions_loses_and_duplicates_nothing() {
    let mut fixture = Fixture::new().await;
    let (raw, workload, clean) = orders_workload(&mut fixture, 4, 12_000).await;
    let mut transformer = fixture.start("a", RULE);
    let sending = send_slowly(&fixture, &raw, &workload.events);
    let killing = async {
        for round in 0..5u64 {
            tokio::time::sleep(Duration::from_millis(500 + 150 * round)).await;
            transformer.kill();
            transformer = fixture.start("a", RULE);
        }
    };
    tokio::join!(sending, killing);
    check_exactly_once(&fixture, &clean, &workload.events, &transformer.output());
}

#[tokio::test]
async fn a_rebalance_between_two_instances_loses_and_duplicates_nothing() {
    let mut fixture = Fixture::new().await;
    let (raw, workload, clean) = orders_workload(&mut fixture, 6, 15_000).await;
    let mut first = fixture.start("a", RULE);
    let sending = send_slowly(&fixture, &raw, &workload.events);
    let scaling = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        // A second instance joins: partitions move while transactions are open.
        let second = fixture.start("b", RULE);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        // The first leaves cleanly: its partitions move back to the second.
        let status = first.terminate(Duration::from_secs(30));
        assert!(status.success(), "{}", first.output());
        second
    };
    let ((), second) = tokio::join!(sending, scaling);
    check_exactly_once(&fixture, &clean, &workload.events, &second.output());
}

/// Another producer taking the instance's transactional ids fences its producers, as a Kafka
/// outage longer than the transaction timeout does: the instance starts over in-process from
/// the committed offsets, stays up, and still delivers every event once.
#[tokio::test]
async fn a_fenced_instance_starts_over_and_loses_and_duplicates_nothing() {
    use rdkafka::producer::{BaseProducer, Producer};

    let mut fixture = Fixture::new().await;
    let (raw, workload, clean) = orders_workload(&mut fixture, 4, 12_000).await;
    let mut transformer = fixture.start("a", RULE);
    let transactional_id = format!("{}-a", fixture.topics.prefix);
    let sending = send_slowly(&fixture, &raw, &workload.events);
    let fencing = async {
        for round in 0..3u64 {
            tokio::time::sleep(Duration::from_millis(700 + 200 * round)).await;
            // Both of the instance's producers: `<id>` and `<id>-1`.
            let id = if round % 2 == 0 {
                transactional_id.clone()
            } else {
                format!("{transactional_id}-1")
            };
            let intruder: BaseProducer = cdc_test_harness::kafka::client_config(&fixture.stack)
                .set("transactional.id", &id)
                .create()
                .unwrap();
            tokio::task::spawn_blocking(move || {
                intruder.init_transactions(Duration::from_secs(60)).unwrap();
            })
            .await
            .unwrap();
        }
    };
    tokio::join!(sending, fencing);
    check_exactly_once(&fixture, &clean, &workload.events, &transformer.output());
    assert!(
        transformer.exited().is_none(),
        "the fenced instance stopped:\n{}",
        transformer.output()
    );
    let restarts = cdc_test_harness::service_contract::scrape(transformer.metrics)
        .lines()
        .find_map(|l| l.strip_prefix("cdc_transformer_pipeline_restarts_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(
        restarts.is_some_and(|n| n >= 1.0),
        "no restart after a fence ({restarts:?}):\n{}",
        transformer.output()
    );
    let status = transformer.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", transformer.output());
}

//! Proves the local stack is the real thing: a message goes through Kafka, PostgreSQL answers
//! a query in a database of the test's own, and a secret comes back from OpenBao.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cdc_test_harness::kafka::{TestTopics, client_config};
use cdc_test_harness::postgres::TestDatabase;
use cdc_test_harness::{Stack, vault};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::test]
async fn a_message_produced_to_kafka_is_consumed_back_with_read_committed() {
    let stack = Stack::get();
    let mut topics = TestTopics::new(&stack);
    let topic = topics.create("roundtrip", 3).await;
    let producer: FutureProducer = client_config(&stack)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let payload = format!("hello {}", topics.prefix);
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce failed");
    let consumer: StreamConsumer = client_config(&stack)
        .set("group.id", format!("{}-group", topics.prefix))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("no message within 30 s")
        .expect("consume failed");
    assert_eq!(message.payload_view::<str>().unwrap().unwrap(), payload);
    assert_eq!(message.key(), Some(&b"k"[..]));
}

#[tokio::test]
async fn postgres_answers_in_a_database_of_the_tests_own() {
    let stack = Stack::get();
    let database = TestDatabase::create(&stack).await;
    let (name, version): (String, String) =
        sqlx::query_as("SELECT current_database()::text, current_setting('server_version')")
            .fetch_one(&database.pool)
            .await
            .unwrap();
    assert_eq!(name, database.name);
    assert!(
        version.starts_with("15"),
        "expected PostgreSQL 15, got {version}"
    );
}

#[tokio::test]
async fn a_secret_written_to_openbao_is_read_back() {
    let stack = Stack::get();
    let path = format!("cdc-test/{}", uuid::Uuid::new_v4().simple());
    vault::write_secret(&stack, &path, &[("password", "p@ss w0rd")]).await;
    let secret = vault::read_secret(&stack, &path).await;
    assert_eq!(secret["password"], "p@ss w0rd");
}

#[tokio::test]
async fn a_test_database_is_gone_once_the_test_is_done_with_it() {
    let stack = Stack::get();
    let database = TestDatabase::create(&stack).await;
    let name = database.name.clone();
    drop(database);
    let admin = sqlx::PgPool::connect(&stack.pg_admin_url).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "database {name} was not dropped");
}

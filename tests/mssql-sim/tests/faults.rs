//! Fault injection (simulator only, not SQL Server): cut connections, refuse new ones, slow
//! responses. The CDC tests cover pausing the capture job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::{PASSWORD, config, connect, simulator, try_connect};

#[tokio::test]
async fn dropped_connections_fail_their_next_call_and_roll_back_open_work() {
    let sim = simulator().await;
    let mut client = connect(sim.addr()).await;
    client
        .simple_query(
            "CREATE TABLE t (id int NOT NULL PRIMARY KEY); BEGIN TRAN; INSERT INTO t VALUES (1)",
        )
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    sim.drop_connections();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        client.simple_query("SELECT 1").await.is_err(),
        "a cut connection must fail"
    );
    let mut fresh = connect(sim.addr()).await;
    let rows = fresh
        .simple_query("SELECT COUNT(*) FROM t")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(
        rows[0].get::<i32, _>(0),
        Some(0),
        "the open transaction rolled back"
    );
}

#[tokio::test]
async fn new_connections_are_refused_for_a_while_then_accepted() {
    let sim = simulator().await;
    sim.refuse_connections_for(Duration::from_millis(300));
    assert!(
        try_connect(config(sim.addr(), PASSWORD, None))
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        try_connect(config(sim.addr(), PASSWORD, None))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn delayed_responses_arrive_late_but_intact() {
    let sim = simulator().await;
    let mut client = connect(sim.addr()).await;
    sim.delay_responses(Duration::from_millis(200));
    let started = Instant::now();
    let rows = client
        .simple_query("SELECT 42")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(rows[0].get::<i32, _>(0), Some(42));
    sim.delay_responses(Duration::ZERO);
}

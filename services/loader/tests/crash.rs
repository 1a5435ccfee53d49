//! kill -9 at random moments, with two loader instances sharing the work through a consumer
//! group: after every crash and rebalance, the target ends exactly as the source did.

mod support;

use std::time::Duration;

use support::{Events, Fixture, Workload, orders, seed, source_table};

const SMALL_BATCHES: &str = "[batch]\nmax_rows = 100\nmax_wait_ms = 20\n";

#[tokio::test]
async fn killing_loaders_at_random_moments_loses_and_duplicates_nothing() {
    let seed = seed();
    let mut fixture = Fixture::new().await;
    let table = source_table("shop", "dbo", "orders");
    let topic = fixture.table_topic(&table, 4).await;
    let mut events = Events::new(orders(&table));
    fixture.publish_schema(&events.schema).await;
    let workload = Workload::random(&mut events, seed, 2_000, 30_000);
    let mut chunks = workload.events.chunks(5_000);
    fixture.send(&topic, chunks.next().unwrap()).await;

    let mut loaders = [
        fixture.start_loader(SMALL_BATCHES),
        fixture.start_loader(SMALL_BATCHES),
    ];
    let mut random = seed;
    let mut pick = move |n: u64| {
        random = random
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (random >> 33) % n
    };
    let (mut kills, mut kills_mid_stream) = (0, 0);
    for chunk in chunks {
        // More work arrives while loaders die and come back.
        fixture.send(&topic, chunk).await;
        tokio::time::sleep(Duration::from_millis(100 + pick(700))).await;
        let victim = pick(2) as usize;
        let stored: i64 = fixture.stored_offsets(&topic).await.values().sum();
        let end: i64 = fixture.ends(&topic).values().sum();
        loaders[victim].kill();
        kills += 1;
        if stored < end {
            kills_mid_stream += 1;
        }
        loaders[victim] = fixture.start_loader(SMALL_BATCHES);
    }
    assert_eq!(kills, 5);
    assert!(
        kills_mid_stream > 0,
        "no kill landed while work was pending; the test proved nothing"
    );
    fixture
        .wait_caught_up(&topic, &loaders[0], Duration::from_secs(120))
        .await;
    let rows = fixture.id_note_rows("public.orders").await;
    assert_eq!(
        rows.len(),
        workload.expected.len(),
        "row count (seed {seed})"
    );
    assert_eq!(rows, workload.expected, "final state (seed {seed})");
}

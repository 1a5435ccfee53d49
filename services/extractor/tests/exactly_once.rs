//! Exactly once into Kafka: whatever happens to extractor processes (kill -9 during the
//! snapshot or the stream, one instance of two dying), every change committed in SQL Server
//! is in the raw topic once, every row is read by the snapshot at most once, per key the
//! events stay in source order, and applying them gives the source's rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cdc_model::SourcePosition;
use cdc_model::proto::value::Kind;
use cdc_model::proto::{ChangeEvent, Operation, TableId};
use support::{Fixture, by_key, final_rows, run};

const TABLE: &str = "id int NOT NULL PRIMARY KEY, qty int NOT NULL, note nvarchar(40) NULL";
const ROWS: i64 = 4_000;
const NAMES: [&str; 4] = ["alpha", "beta", "gamma", "delta"];

/// A deterministic pseudo-random sequence (the seed is printed, so a failure can be rerun).
struct Random(u64);

impl Random {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

fn seed() -> u64 {
    std::env::var("CDC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

async fn fill(fixture: &mut Fixture, name: &str) -> TableId {
    let table = fixture.captured_table(name, TABLE).await;
    let mut sql = fixture.sql().await;
    for start in (1..=ROWS).step_by(500) {
        let values: Vec<String> = (start..start + 500)
            .map(|id| format!("({id}, {}, N'n{id}')", id % 7))
            .collect();
        run(
            &mut sql,
            &format!("INSERT INTO dbo.{name} VALUES {}", values.join(", ")),
        )
        .await;
    }
    // Everything before the extractor's first start is captured, so every later change
    // is one the stream must carry.
    let deadline = Instant::now() + Duration::from_secs(30);
    while fixture
        .change_positions(&format!("dbo_{name}"), &[])
        .await
        .len()
        < ROWS as usize
    {
        assert!(
            Instant::now() < deadline,
            "the capture job did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    table
}

/// Random inserts, updates (some of the key), deletes and multi-statement transactions,
/// until `stop` is set, in its own task.
fn write(
    mut sql: support::SqlClient,
    name: &'static str,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut random = Random(seed);
        let mut next_id = ROWS + 1;
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let id = 1 + random.next(ROWS as u64) as i64;
            let statement = match random.next(10) {
                0 => {
                    next_id += 1;
                    format!("INSERT INTO dbo.{name} VALUES ({next_id}, 1, N'new')")
                }
                1 => format!("DELETE FROM dbo.{name} WHERE id = {id}"),
                2 => {
                    next_id += 1;
                    format!("UPDATE dbo.{name} SET id = {next_id} WHERE id = {id}")
                }
                3 => format!(
                    "BEGIN TRAN; UPDATE dbo.{name} SET qty = qty + 1 WHERE id = {id}; \
                     UPDATE dbo.{name} SET note = N'tx{n}' WHERE id = {id}; COMMIT"
                ),
                4 => {
                    format!("BEGIN TRAN; UPDATE dbo.{name} SET qty = -1 WHERE id = {id}; ROLLBACK")
                }
                _ => format!(
                    "UPDATE dbo.{name} SET qty = qty + 1, note = N's{n}' WHERE id BETWEEN {id} AND {}",
                    id + 3
                ),
            };
            run(&mut sql, &statement).await;
            n += 1;
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
        usize::try_from(n).unwrap()
    })
}

/// Waits until the raw topic of `table` holds more records than `before`; returns the count.
async fn progress(
    fixture: &Fixture,
    table: &TableId,
    before: i64,
    output: impl Fn() -> String,
) -> i64 {
    let topic = fixture.names.raw(table).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ends = fixture.ends(&topic);
        let total: i64 = ends.values().sum();
        if total > before {
            return total;
        }
        assert!(
            Instant::now() < deadline,
            "no progress on {topic}\n{}",
            output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads the topic until applying it gives the source's rows, then checks exactly once.
async fn check_exactly_once(fixture: &Fixture, table: &TableId, output: impl Fn() -> String) {
    let source = fixture.rows(table, 1).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let events = loop {
        let events = fixture.read_all(table);
        if final_rows(&events) == source {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "the raw topic ({} events) does not converge to the source's {} rows\n{}",
            events.len(),
            source.len(),
            output()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let position =
        |e: &ChangeEvent| SourcePosition::from_proto(e.position.as_ref().unwrap()).unwrap();
    // From the first change streamed on (earlier ones were taken in by the snapshot, whose
    // rows the convergence above checked), every captured change is there, once: a resumed
    // stream neither skips nor repeats.
    let first_change = events
        .iter()
        .filter(|e| e.op() != Operation::Read)
        .map(position)
        .min();
    let expected: Vec<SourcePosition> = fixture
        .change_positions(&format!("dbo_{}", table.table), &[])
        .await
        .into_iter()
        .filter(|p| first_change.is_some_and(|first| *p >= first))
        .collect();
    assert!(
        expected.len() > 100,
        "the test must stream changes, not only snapshot them"
    );
    let mut streamed: Vec<SourcePosition> = events
        .iter()
        .filter(|e| e.op() != Operation::Read)
        .map(position)
        .collect();
    streamed.sort();
    let mut distinct = streamed.clone();
    distinct.dedup();
    eprintln!(
        "{}: {} streamed, {} distinct, {} expected, {} reads",
        table.table,
        streamed.len(),
        distinct.len(),
        expected.len(),
        events.len() - streamed.len()
    );
    assert_eq!(
        streamed.len(),
        expected.len(),
        "every change exactly once (first streamed {first_change:?})\n{}",
        output()
    );
    assert_eq!(
        streamed, expected,
        "the streamed changes are the captured ones"
    );
    // The snapshot read each row at most once.
    let mut read = HashSet::new();
    for event in events.iter().filter(|e| e.op() == Operation::Read) {
        let key = cdc_model::key::encode(table, &event.key).unwrap();
        assert!(read.insert(key), "key {:?} read twice", event.key);
    }
    // Per key, positions only grow.
    let per_key: BTreeMap<_, _> = by_key(&events);
    for (key, events) in per_key {
        let positions: Vec<_> = events.iter().map(position).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "key {key:?} out of order: {positions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_snapshot_and_stream_loses_and_duplicates_nothing() {
    let seed = seed();
    eprintln!("CDC_TEST_SEED={seed}");
    let mut fixture = Fixture::new().await;
    let table = fill(&mut fixture, "items").await;
    let settings = fixture.settings_tuned(
        "page_rows = 200\nmax_batch_events = 400",
        "[snapshot]\nchunk_rows = 150\nmax_pending_rows = 600",
    );
    let mut random = Random(seed);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = write(fixture.sql().await, "items", seed, Arc::clone(&stop));
    let mut process = fixture.start(&settings);
    let mut outputs = String::new();
    let mut seen = 0;
    for _ in 0..4 {
        seen = progress(&fixture, &table, seen, || process.output()).await;
        tokio::time::sleep(Duration::from_millis(random.next(600))).await;
        process.kill();
        outputs.push_str(&process.output());
        process = fixture.start(&settings);
    }
    seen = progress(&fixture, &table, seen, || process.output()).await;
    stop.store(true, Ordering::Relaxed);
    let statements = writer.await.unwrap();
    eprintln!("{statements} statements, {seen} records before the last check");
    check_exactly_once(&fixture, &table, || {
        format!("{outputs}\n{}", process.output())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_instance_hands_its_tables_to_the_other_without_loss_or_duplicates() {
    let seed = seed();
    eprintln!("CDC_TEST_SEED={seed}");
    let mut fixture = Fixture::new().await;
    let mut tables = Vec::new();
    for name in NAMES {
        tables.push(fill(&mut fixture, name).await);
    }
    let settings = fixture.settings("");
    let survivor = fixture.start(&settings);
    let mut doomed = fixture.start(&settings);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        writers.push(write(
            fixture.sql().await,
            name,
            seed + i as u64,
            Arc::clone(&stop),
        ));
    }
    for table in &tables {
        progress(&fixture, table, 0, || doomed.output()).await;
    }
    // Both instances serve tables (four work partitions, two members), so the one killed
    // has work to hand over.
    let client = fixture.client(&doomed).await;
    support::eventually(
        "the doomed instance serves tables",
        &doomed,
        Duration::from_secs(60),
        || {
            let mut client = client.clone();
            async move {
                let tables = client
                    .list_tables(cdc_extractor::proto::ListTablesRequest {})
                    .await
                    .map(|r| r.into_inner().tables.len())
                    .unwrap_or(0);
                tables > 0
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    doomed.kill();
    let doomed_output = doomed.output();
    for table in &tables {
        let before: i64 = fixture
            .ends(&fixture.names.raw(table).unwrap())
            .values()
            .sum();
        progress(&fixture, table, before, || survivor.output()).await;
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    for table in &tables {
        check_exactly_once(&fixture, table, || {
            format!("{doomed_output}\n{}", survivor.output())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_range_snapshot_racing_updates_and_deletes_never_regresses_or_resurrects_a_row() {
    let seed = seed();
    eprintln!("CDC_TEST_SEED={seed}");
    let mut fixture = Fixture::new().await;
    let table = fill(&mut fixture, "racing").await;
    let settings = fixture.settings("[snapshot]\nchunk_rows = 100\nmax_pending_rows = 400");
    let process = fixture.start(&settings);
    progress(&fixture, &table, 0, || process.output()).await;
    let mut client = fixture.client(&process).await;
    let completed = |client: support::Extractor| async move {
        let mut client = client;
        client
            .list_tables(cdc_extractor::proto::ListTablesRequest {})
            .await
            .unwrap()
            .into_inner()
            .tables
            .first()
            .map_or(0, |t| t.snapshots_completed)
    };
    // The initial snapshot first, then a key range while the writer goes on.
    support::eventually(
        "the initial snapshot",
        &process,
        Duration::from_secs(60),
        || {
            let client = client.clone();
            async move { completed(client).await >= 1 }
        },
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = write(fixture.sql().await, "racing", seed, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let position =
        |e: &ChangeEvent| SourcePosition::from_proto(e.position.as_ref().unwrap()).unwrap();
    let requested_after = fixture.read_all(&table).iter().map(position).max().unwrap();
    client
        .start_snapshot(cdc_extractor::proto::StartSnapshotRequest {
            database: "shop".to_owned(),
            schema: "dbo".to_owned(),
            table: "racing".to_owned(),
            after_key: vec![support::int(1_000)],
            up_to_key: vec![support::int(3_000)],
        })
        .await
        .unwrap();
    support::eventually(
        "the key-range snapshot",
        &process,
        Duration::from_secs(60),
        || {
            let client = client.clone();
            async move { completed(client).await >= 2 }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let source = fixture.rows(&table, 1).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let events = loop {
        let events = fixture.read_all(&table);
        if final_rows(&events) == source {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "the raw topic does not converge to the source\n{}",
            process.output()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut second_reads = 0;
    for (key, events) in by_key(&events) {
        // Per key, positions only grow: a re-read row never lands behind a newer change,
        // and a deleted row is never read back after its delete.
        let positions: Vec<_> = events.iter().map(position).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "key {key:?} out of order: {:?}",
            events
                .iter()
                .map(|e| (e.op(), position(e)))
                .collect::<Vec<_>>()
        );
        for event in events.iter().filter(|e| e.op() == Operation::Read) {
            if position(event) > requested_after {
                second_reads += 1;
                let Some(Kind::Int64(id)) = event.key[0].kind.clone() else {
                    panic!("int key")
                };
                assert!(
                    (1_001..=3_000).contains(&id),
                    "read {id} outside the requested range"
                );
            }
        }
    }
    assert!(
        second_reads > 1_000,
        "the range was read again ({second_reads} rows)"
    );
}

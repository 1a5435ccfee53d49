//! Comparisons between the SQL Server simulator and real PostgreSQL: equal tables match;
//! a missing, an extra and a changed row (one per type of the type map) are each found by key
//! with the differing column named; differences that land within the settle time are not
//! reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use cdc_reconciler::proto::{DifferenceKind, RunState, TableState};
use support::{COLUMNS, Fixture, differences, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_tables_of_every_type_match() {
    let fixture = Fixture::new().await;
    fixture.every_type_table("every_type").await;
    fixture
        .insert_both("every_type", 1..=1_500, &[7, 1_000])
        .await;
    let reconciler = fixture
        .reconciler("[compare]\nsettle_ms = 0\nrows_per_bucket = 100\n")
        .await;

    let run = run(&reconciler, &["shop.dbo.every_type"]).await;

    assert_eq!(run.state, RunState::Clean as i32, "{run:#?}");
    let table = &run.tables[0];
    assert_eq!(table.state, TableState::Match as i32, "{table:#?}");
    assert_eq!((table.source_rows, table.target_rows), (1_500, 1_500));
    assert_eq!(table.buckets, 15);
    assert_eq!(table.differing_buckets, 0);
    assert!(table.differences.is_empty());
    assert!(
        table.excluded_columns.is_empty(),
        "{:?}",
        table.excluded_columns
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_extra_and_changed_rows_are_found_by_key_with_the_column_named() {
    let fixture = Fixture::new().await;
    fixture.every_type_table("every_type").await;
    fixture.insert_both("every_type", 1..=2_000, &[1_001]).await;
    // One changed row per column, each in its own row.
    for (index, column) in COLUMNS.iter().enumerate() {
        fixture
            .pg(&format!(
                "UPDATE public.every_type SET {} = {} WHERE id = {}",
                column.name,
                column.postgres_other,
                100 + index
            ))
            .await;
    }
    // NULL in SQL Server, a value in PostgreSQL; and an empty string is not NULL.
    fixture
        .pg("UPDATE public.every_type SET c_bigint = 0, c_varchar = '' WHERE id = 1001")
        .await;
    fixture
        .pg("DELETE FROM public.every_type WHERE id = 1500")
        .await;
    fixture
        .insert_target("every_type", 5_000..=5_000, &[])
        .await;
    let reconciler = fixture.reconciler("[compare]\nsettle_ms = 0\n").await;

    let run = run(&reconciler, &["shop.dbo.*"]).await;

    assert_eq!(run.state, RunState::Mismatch as i32, "{run:#?}");
    let table = &run.tables[0];
    assert_eq!(table.state, TableState::Mismatch as i32);
    let mut expected: Vec<(DifferenceKind, String, Vec<String>)> = COLUMNS
        .iter()
        .enumerate()
        .map(|(index, column)| {
            (
                DifferenceKind::Changed,
                format!("id={}", 100 + index),
                vec![column.name.to_owned()],
            )
        })
        .collect();
    expected.push((
        DifferenceKind::Changed,
        "id=1001".to_owned(),
        vec!["c_bigint".to_owned(), "c_varchar".to_owned()],
    ));
    expected.push((DifferenceKind::Missing, "id=1500".to_owned(), vec![]));
    expected.push((DifferenceKind::Extra, "id=5000".to_owned(), vec![]));
    expected.sort();
    assert_eq!(differences(table), expected);
    assert_eq!(
        (table.missing, table.extra, table.changed),
        (1, 1, COLUMNS.len() as u64 + 1)
    );
    assert_eq!((table.source_rows, table.target_rows), (2_000, 2_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differences_that_land_within_the_settle_time_are_not_reported() {
    let fixture = Fixture::new().await;
    fixture.every_type_table("orders").await;
    fixture.insert_both("orders", 1..=300, &[]).await;
    // In flight: in SQL Server now, in PostgreSQL a second later (as the pipeline would).
    fixture.insert_source("orders", 301..=302, &[]).await;
    let mut client = fixture.sql().await;
    fixture
        .sql_on(
            &mut client,
            "UPDATE dbo.orders SET c_varchar = 'new' WHERE id = 5",
        )
        .await;
    // Not in flight: never arrives.
    fixture.insert_source("orders", 400..=400, &[]).await;
    let reconciler = fixture.reconciler("[compare]\nsettle_ms = 4000\n").await;
    let pool = fixture.target.pool.clone();
    let pipeline = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        sqlx::query("UPDATE public.orders SET c_varchar = 'new' WHERE id = 5")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO public.orders (id) VALUES (301), (302)")
            .execute(&pool)
            .await
            .unwrap();
    });
    // Rows 301 and 302 land with only their key: the columns differ until the last write.
    let fill = fixture.target.pool.clone();
    let run_task = {
        let reconciler = reconciler.clone();
        tokio::spawn(async move { run(&reconciler, &["shop.dbo.orders"]).await })
    };
    pipeline.await.unwrap();
    let set: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("{} = {}", c.name, c.postgres_value))
        .collect();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE public.orders SET {} WHERE id IN (301, 302)",
        set.join(", ")
    )))
    .execute(&fill)
    .await
    .unwrap();
    let run = run_task.await.unwrap();

    let table = &run.tables[0];
    assert_eq!(
        differences(table),
        vec![(DifferenceKind::Missing, "id=400".to_owned(), vec![])],
        "{table:#?}"
    );
    assert_eq!(table.settled, 3, "rows 5, 301 and 302 were in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_text_keys_are_bucketed_alike_in_both_databases_and_by_the_reconciler() {
    let fixture = Fixture::new().await;
    let mut client = fixture.sql().await;
    fixture
        .sql_on(
            &mut client,
            "CREATE TABLE dbo.lines (region nvarchar(20) NOT NULL, line int NOT NULL, note nvarchar(20) NULL, \
             PRIMARY KEY (region, line))",
        )
        .await;
    fixture
        .sql_on(
            &mut client,
            "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'lines', @role_name = NULL",
        )
        .await;
    fixture
        .pg("CREATE TABLE public.lines (region varchar(20), line integer, note varchar(20), PRIMARY KEY (region, line))")
        .await;
    let regions = ["north", "Süd", "東京", "west"];
    let mut sqlserver_rows = Vec::new();
    let mut postgres_rows = Vec::new();
    for region in regions {
        for line in 1..=50 {
            sqlserver_rows.push(format!("(N'{region}', {line}, N'n{line}')"));
            postgres_rows.push(format!("('{region}', {line}, 'n{line}')"));
        }
    }
    fixture
        .sql_on(
            &mut client,
            &format!("INSERT INTO dbo.lines VALUES {}", sqlserver_rows.join(", ")),
        )
        .await;
    fixture
        .pg(&format!(
            "INSERT INTO public.lines VALUES {}",
            postgres_rows.join(", ")
        ))
        .await;
    fixture
        .pg("UPDATE public.lines SET note = 'x' WHERE region = '東京' AND line = 7")
        .await;
    fixture
        .pg("DELETE FROM public.lines WHERE region = 'Süd' AND line = 30")
        .await;
    // The settle re-check finds each difference's bucket from its key, computed here: a
    // bucket computed differently from the databases would lose the differences.
    let reconciler = fixture
        .reconciler("[compare]\nsettle_ms = 200\nrows_per_bucket = 10\n")
        .await;

    let run = run(&reconciler, &["shop.dbo.lines"]).await;

    let table = &run.tables[0];
    assert_eq!(table.buckets, 20);
    assert_eq!(
        differences(table),
        vec![
            (
                DifferenceKind::Missing,
                "region=Süd,line=30".to_owned(),
                vec![]
            ),
            (
                DifferenceKind::Changed,
                "region=東京,line=7".to_owned(),
                vec!["note".to_owned()]
            ),
        ],
        "{table:#?}"
    );
    assert_eq!(table.settled, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transformers_rules_decide_what_is_compared() {
    let fixture = Fixture::new().await;
    fixture.every_type_table("every_type").await;
    fixture.insert_both("every_type", 1..=20, &[]).await;
    // Downstream, c_varchar is called c_text, c_nvarchar is masked, and the table is routed.
    fixture
        .pg("ALTER TABLE public.every_type RENAME COLUMN c_varchar TO c_text")
        .await;
    fixture
        .pg("ALTER TABLE public.every_type RENAME TO customers")
        .await;
    fixture
        .pg("UPDATE public.customers SET c_nvarchar = 'REDACTED'")
        .await;
    fixture.every_type_table("filtered").await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("transformer.toml");
    std::fs::write(
        &rules,
        r#"
[kafka]
bootstrap_servers = "ignored by the reconciler"

[[rules]]
tables = "shop.dbo.every_type"
rename_column = { from = "c_varchar", to = "c_text" }

[[rules]]
name = "hide-names"
tables = "shop.dbo.every_type"
mask = { column = "c_nvarchar", method = "redact" }

[[rules]]
tables = "shop.dbo.every_type"
route = { table = "customers" }

[[rules]]
name = "no-drafts"
tables = "shop.dbo.filtered"
filter = "c_int <> 0"
"#,
    )
    .unwrap();
    let reconciler = fixture
        .reconciler(&format!(
            "[compare]\nsettle_ms = 0\ntransformer_config = \"{}\"\n",
            rules.display()
        ))
        .await;

    let run = run(&reconciler, &["shop.dbo.*"]).await;

    let routed = run
        .tables
        .iter()
        .find(|t| t.table == "shop.dbo.every_type")
        .unwrap();
    assert_eq!(routed.target_table, "public.customers");
    assert_eq!(routed.state, TableState::Match as i32, "{routed:#?}");
    assert_eq!(
        routed.excluded_columns,
        vec!["c_nvarchar: masked by hide-names".to_owned()]
    );
    let filtered = run
        .tables
        .iter()
        .find(|t| t.table == "shop.dbo.filtered")
        .unwrap();
    assert_eq!(filtered.state, TableState::NotComparable as i32);
    assert!(filtered.detail.contains("no-drafts"), "{}", filtered.detail);
    assert_eq!(
        run.state,
        RunState::Mismatch as i32,
        "a table not compared is not clean"
    );
}

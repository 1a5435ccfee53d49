//! The compose stack's SQL Server init script (`compose/mssql/init.sql`), run batch by batch as
//! sqlcmd runs it, against the simulator: the sample database comes out with its four tables,
//! CDC on each, and the seed rows, and its changes are captured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::{PASSWORD, SqlClient, config, connect, rows, simulator, try_connect};

const INIT_SQL: &str = include_str!("../../../compose/mssql/init.sql");

const TABLES: [&str; 4] = ["customers", "order_lines", "orders", "products"];

/// Every SQL Server type of the design's type map that the pipeline carries.
const TYPE_MAP: [&str; 29] = [
    "bit",
    "tinyint",
    "smallint",
    "int",
    "bigint",
    "decimal",
    "numeric",
    "money",
    "smallmoney",
    "float",
    "real",
    "date",
    "time",
    "datetime",
    "datetime2",
    "smalldatetime",
    "datetimeoffset",
    "char",
    "varchar",
    "nchar",
    "nvarchar",
    "text",
    "ntext",
    "binary",
    "varbinary",
    "image",
    "rowversion",
    "uniqueidentifier",
    "xml",
];

/// The declared type of each column definition in the script's CREATE TABLE statements.
fn declared_types(script: &str) -> BTreeSet<String> {
    let mut types = BTreeSet::new();
    let mut in_table = false;
    for line in script.lines().map(str::trim) {
        if line.starts_with("--") {
            continue;
        }
        if line.to_ascii_uppercase().starts_with("CREATE TABLE") {
            in_table = true;
        } else if line.starts_with(");") {
            in_table = false;
        } else if in_table
            && !line.to_ascii_uppercase().starts_with("CONSTRAINT")
            && let Some(declared) = line.split_whitespace().nth(1)
        {
            let name = declared.split(['(', ',']).next().unwrap_or_default();
            types.insert(name.to_ascii_lowercase());
        }
    }
    types
}

async fn run_script(client: &mut SqlClient) {
    for (number, batch) in mssql_sim::script::batches(INIT_SQL).iter().enumerate() {
        let result = match client.simple_query(batch.as_str()).await {
            Ok(stream) => stream.into_results().await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            panic!("batch {} of init.sql failed: {e}\n{batch}", number + 1);
        }
    }
}

async fn count(client: &mut SqlClient, sql: &str) -> i64 {
    rows(client, sql).await[0].get::<i64, _>(0).unwrap()
}

async fn strings(client: &mut SqlClient, sql: &str) -> Vec<String> {
    rows(client, sql)
        .await
        .iter()
        .map(|r| r.get::<&str, _>(0).unwrap().to_owned())
        .collect()
}

#[test]
fn the_script_is_split_at_go_lines_with_the_database_created_before_it_is_used() {
    let batches = mssql_sim::script::batches(INIT_SQL);
    assert_eq!(batches.len(), 6, "batches: {batches:#?}");
    assert!(batches[0].contains("CREATE DATABASE shop;"));
    assert_eq!(batches[1].trim(), "USE shop;");
    assert!(
        batches
            .iter()
            .skip(2)
            .all(|b| !b.contains("CREATE DATABASE"))
    );
}

#[test]
fn the_script_declares_every_type_of_the_type_map() {
    let declared = declared_types(INIT_SQL);
    let missing: Vec<&str> = TYPE_MAP
        .iter()
        .copied()
        .filter(|t| !declared.contains(*t))
        .collect();
    assert!(
        missing.is_empty(),
        "init.sql declares no column of {missing:?}"
    );
    let unknown: Vec<&String> = declared
        .iter()
        .filter(|t| !TYPE_MAP.contains(&t.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "init.sql declares types outside the type map: {unknown:?}"
    );
}

#[tokio::test]
async fn init_sql_creates_shop_with_cdc_on_four_tables_and_seed_rows() {
    let sim = simulator().await;
    let mut client = connect(sim.addr()).await;
    run_script(&mut client).await;

    // A new session, as the extractor opens one, logging in to `shop`.
    let mut client = try_connect(config(sim.addr(), PASSWORD, Some("shop")))
        .await
        .unwrap();
    assert_eq!(
        strings(&mut client, "SELECT name FROM sys.tables ORDER BY name").await,
        TABLES
    );
    let enabled = rows(
        &mut client,
        "SELECT is_cdc_enabled FROM sys.databases WHERE name = N'shop'",
    )
    .await;
    assert_eq!(enabled[0].get::<bool, _>(0), Some(true));
    assert_eq!(
        strings(
            &mut client,
            "SELECT capture_instance FROM cdc.change_tables ORDER BY capture_instance"
        )
        .await,
        TABLES.map(|t| format!("dbo_{t}"))
    );
    let columns = count(
        &mut client,
        "SELECT COUNT_BIG(*) FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = N'dbo'",
    )
    .await;
    assert_eq!(
        count(&mut client, "SELECT COUNT_BIG(*) FROM cdc.captured_columns").await,
        columns,
        "every column is captured"
    );
    assert_eq!(
        strings(
            &mut client,
            "SELECT column_name FROM cdc.index_columns ic JOIN cdc.change_tables ct \
             ON ct.object_id = ic.object_id WHERE ct.capture_instance = N'dbo_order_lines' \
             ORDER BY ic.index_ordinal"
        )
        .await,
        ["order_id", "line_no"],
        "order_lines has a composite key"
    );

    for (table, seeded) in [
        ("customers", 3),
        ("products", 3),
        ("orders", 3),
        ("order_lines", 4),
    ] {
        let sql = format!("SELECT COUNT_BIG(*) FROM dbo.{table}");
        assert_eq!(
            count(&mut client, &sql).await,
            seeded,
            "seed rows of {table}"
        );
    }
    assert_eq!(
        strings(
            &mut client,
            "SELECT name FROM dbo.customers ORDER BY customer_id"
        )
        .await,
        ["Ada Lovelace", "Zoë Ångström", "李雷"]
    );
}

#[tokio::test]
async fn changes_to_the_sample_tables_reach_their_change_tables() {
    let sim = simulator().await;
    let mut client = connect(sim.addr()).await;
    run_script(&mut client).await;
    let _ = rows(
        &mut client,
        "UPDATE dbo.customers SET loyalty_tier = 4, preferences = N'<preferences/>' \
         WHERE customer_id = 1; \
         DELETE FROM dbo.order_lines WHERE order_id = 5003 AND line_no = 1",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let customers = count(&mut client, "SELECT COUNT_BIG(*) FROM cdc.dbo_customers_CT").await;
        let lines = count(
            &mut client,
            "SELECT COUNT_BIG(*) FROM cdc.dbo_order_lines_CT",
        )
        .await;
        if customers == 2 && lines == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 10 s: {customers} of 2 customer changes, {lines} of 1 order line change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let operations = rows(
        &mut client,
        "SELECT __$operation, loyalty_tier FROM cdc.dbo_customers_CT ORDER BY __$seqval, __$operation",
    )
    .await;
    let images: Vec<(Option<i32>, Option<u8>)> = operations
        .iter()
        .map(|r| (r.get::<i32, _>(0), r.get::<u8, _>(1)))
        .collect();
    assert_eq!(images, [(Some(3), Some(3)), (Some(4), Some(4))]);
}

//! Change data capture through tiberius: what the capture job writes to change tables, when
//! it becomes visible, and the functions and views a CDC reader uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::{
    SqlClient, Target, connect, error_of, fresh_database, query_rows, rows, run,
    server_error_number, simulator,
};

async fn scalar_lsn(client: &mut SqlClient, sql: &str) -> Vec<u8> {
    rows(client, sql).await[0]
        .get::<&[u8], _>(0)
        .unwrap()
        .to_vec()
}

/// A database of the test's own with CDC on `dbo.orders`; returns its name.
async fn captured_orders(client: &mut SqlClient) -> String {
    let database = fresh_database(client).await;
    run(client, "CREATE TABLE dbo.orders (id int NOT NULL PRIMARY KEY, customer nvarchar(20) NOT NULL, total decimal(12,2) NULL)").await;
    run(client, "EXEC sys.sp_cdc_enable_db").await;
    run(client, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', @role_name = NULL").await;
    database
}

/// Waits until the change table has at least `count` rows (the capture job is asynchronous).
async fn wait_for_changes(client: &mut SqlClient, table: &str, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = rows(client, &format!("SELECT COUNT_BIG(*) FROM cdc.{table}")).await[0]
            .get::<i64, _>(0)
            .unwrap();
        if found >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {found} of {count} changes captured after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const READ_CHANGES: &str = "SELECT __$operation, __$command_id, id, customer, total, __$update_mask, __$start_lsn, __$seqval \
                            FROM cdc.dbo_orders_CT ORDER BY __$start_lsn, __$command_id, __$seqval, __$operation";

#[tokio::test]
async fn inserts_updates_and_deletes_are_captured_with_images_and_update_masks() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    captured_orders(&mut client).await;
    run(&mut client, "INSERT INTO orders VALUES (1, N'ada', 10.00)").await;
    run(&mut client, "UPDATE orders SET total = 12.50 WHERE id = 1").await;
    run(&mut client, "DELETE FROM orders WHERE id = 1").await;
    wait_for_changes(&mut client, "dbo_orders_CT", 4).await;
    let changes = rows(&mut client, READ_CHANGES).await;
    let operations: Vec<i32> = changes
        .iter()
        .map(|r| r.get::<i32, _>(0).unwrap())
        .collect();
    assert_eq!(operations, [2, 3, 4, 1]);
    let totals: Vec<String> = changes
        .iter()
        .map(|r| r.get::<rust_decimal::Decimal, _>(4).unwrap().to_string())
        .collect();
    assert_eq!(
        totals,
        ["10.00", "10.00", "12.50", "12.50"],
        "before and after images"
    );
    assert_eq!(
        changes[1].get::<&[u8], _>(5),
        Some(&[0b100][..]),
        "only column 3 (total) changed"
    );
    assert_eq!(
        changes[0].get::<&[u8], _>(5),
        Some(&[0b111][..]),
        "an insert sets every bit"
    );
    assert_eq!(
        changes[1].get::<&[u8], _>(7),
        changes[2].get::<&[u8], _>(7),
        "before and after share a seqval"
    );
}

#[tokio::test]
async fn one_transaction_has_one_commit_lsn_and_a_command_id_per_statement() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    captured_orders(&mut client).await;
    run(&mut client, "BEGIN TRAN; INSERT INTO orders VALUES (1, N'a', 1), (2, N'b', 2); UPDATE orders SET customer = N'B' WHERE id = 2; COMMIT").await;
    wait_for_changes(&mut client, "dbo_orders_CT", 4).await;
    let changes = rows(&mut client, READ_CHANGES).await;
    let commit_lsns: Vec<Vec<u8>> = changes
        .iter()
        .map(|r| r.get::<&[u8], _>(6).unwrap().to_vec())
        .collect();
    assert!(
        commit_lsns
            .iter()
            .all(|lsn| *lsn == commit_lsns[0] && lsn.len() == 10)
    );
    let command_ids: Vec<i32> = changes
        .iter()
        .map(|r| r.get::<i32, _>(1).unwrap())
        .collect();
    assert_eq!(command_ids, [1, 1, 2, 2]);
    let seqvals: Vec<Vec<u8>> = changes
        .iter()
        .map(|r| r.get::<&[u8], _>(7).unwrap().to_vec())
        .collect();
    assert!(
        seqvals[0] < seqvals[1] && seqvals[1] < seqvals[2],
        "seqvals follow statement order"
    );
    assert!(
        seqvals.iter().all(|s| *s < commit_lsns[0]),
        "row changes are logged before the commit"
    );
}

#[tokio::test]
async fn rolled_back_work_is_never_captured() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    captured_orders(&mut client).await;
    run(
        &mut client,
        "BEGIN TRAN; INSERT INTO orders VALUES (1, N'ghost', 1); ROLLBACK",
    )
    .await;
    let failed = client
        .simple_query("INSERT INTO orders VALUES (2, N'x', 1), (2, N'dup', 1)")
        .await
        .map(|_| ());
    assert_eq!(
        server_error_number(&error_of(failed, "duplicate")),
        Some(2627)
    );
    run(&mut client, "INSERT INTO orders VALUES (3, N'real', 1)").await;
    wait_for_changes(&mut client, "dbo_orders_CT", 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ids: Vec<i32> = rows(&mut client, READ_CHANGES)
        .await
        .iter()
        .map(|r| r.get::<i32, _>(2).unwrap())
        .collect();
    assert_eq!(ids, [3]);
}

#[tokio::test]
async fn a_primary_key_update_is_captured_as_a_delete_then_an_insert() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    captured_orders(&mut client).await;
    run(&mut client, "INSERT INTO orders VALUES (1, N'a', 1)").await;
    run(&mut client, "UPDATE orders SET id = 7 WHERE id = 1").await;
    wait_for_changes(&mut client, "dbo_orders_CT", 3).await;
    let changes = rows(&mut client, READ_CHANGES).await;
    let seen: Vec<(i32, i32)> = changes
        .iter()
        .map(|r| (r.get::<i32, _>(0).unwrap(), r.get::<i32, _>(2).unwrap()))
        .collect();
    assert_eq!(seen, [(2, 1), (1, 1), (2, 7)]);
}

/// Simulator only: it pauses the capture job through fault injection.
#[tokio::test]
async fn the_max_lsn_moves_only_when_the_capture_job_has_read_the_commit() {
    let sim = simulator().await;
    let mut client = connect(sim.addr()).await;
    captured_orders(&mut client).await;
    let before = scalar_lsn(&mut client, "SELECT sys.fn_cdc_get_max_lsn()").await;
    sim.pause_capture();
    run(&mut client, "INSERT INTO orders VALUES (1, N'a', 1)").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        scalar_lsn(&mut client, "SELECT sys.fn_cdc_get_max_lsn()").await,
        before,
        "nothing captured while the job is paused"
    );
    assert_eq!(
        rows(&mut client, "SELECT COUNT_BIG(*) FROM cdc.dbo_orders_CT").await[0].get::<i64, _>(0),
        Some(0)
    );
    sim.resume_capture();
    wait_for_changes(&mut client, "dbo_orders_CT", 1).await;
    let max_lsn = scalar_lsn(&mut client, "SELECT sys.fn_cdc_get_max_lsn()").await;
    let commit_lsn = scalar_lsn(&mut client, "SELECT __$start_lsn FROM cdc.dbo_orders_CT").await;
    assert!(max_lsn > before);
    assert_eq!(max_lsn, commit_lsn);
}

#[tokio::test]
async fn change_rows_join_lsn_time_mapping_for_their_commit_time() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    captured_orders(&mut client).await;
    run(&mut client, "INSERT INTO orders VALUES (1, N'a', 1)").await;
    run(&mut client, "INSERT INTO orders VALUES (2, N'b', 2)").await;
    wait_for_changes(&mut client, "dbo_orders_CT", 2).await;
    let first = scalar_lsn(
        &mut client,
        "SELECT MIN(__$start_lsn) FROM cdc.dbo_orders_CT",
    )
    .await;
    let joined = query_rows(
        &mut client,
        "SELECT ct.id, m.tran_end_time FROM cdc.dbo_orders_CT AS ct LEFT JOIN cdc.lsn_time_mapping m ON ct.__$start_lsn = m.start_lsn \
         WHERE ct.__$start_lsn > @P1 ORDER BY ct.__$start_lsn",
        &[&first.as_slice()],
    )
    .await;
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].get::<i32, _>(0), Some(2));
    let committed_at = joined[0]
        .get::<chrono::NaiveDateTime, _>(1)
        .expect("every captured commit has a time");
    let age = chrono::Utc::now().naive_utc() - committed_at;
    assert!(
        age.num_seconds().abs() < 60,
        "commit time {committed_at} is now"
    );
    let mapped = rows(
        &mut client,
        "SELECT sys.fn_cdc_map_lsn_to_time(sys.fn_cdc_get_max_lsn())",
    )
    .await;
    assert!(mapped[0].get::<chrono::NaiveDateTime, _>(0).is_some());
}

async fn all_changes(
    client: &mut SqlClient,
    from: &[u8],
    to: &[u8],
    filter: &str,
) -> tiberius::Result<Vec<i32>> {
    let sql = format!(
        "SELECT __$operation FROM cdc.fn_cdc_get_all_changes_dbo_orders(@P1, @P2, N'{filter}')"
    );
    let rows = client
        .query(sql, &[&from, &to])
        .await?
        .into_first_result()
        .await?;
    Ok(rows.iter().map(|r| r.get::<i32, _>(0).unwrap()).collect())
}

#[tokio::test]
async fn get_all_changes_reads_a_range_and_refuses_one_outside_the_timeline() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    captured_orders(&mut client).await;
    run(&mut client, "INSERT INTO orders VALUES (1, N'a', 1)").await;
    run(&mut client, "UPDATE orders SET total = 2 WHERE id = 1").await;
    wait_for_changes(&mut client, "dbo_orders_CT", 3).await;
    let from = scalar_lsn(&mut client, "SELECT sys.fn_cdc_get_min_lsn(N'dbo_orders')").await;
    let to = scalar_lsn(&mut client, "SELECT sys.fn_cdc_get_max_lsn()").await;
    assert_eq!(
        all_changes(&mut client, &from, &to, "all").await.unwrap(),
        [2, 4]
    );
    assert_eq!(
        all_changes(&mut client, &from, &to, "all update old")
            .await
            .unwrap(),
        [2, 3, 4]
    );
    let beyond_max = all_changes(&mut client, &from, &[0xff; 10], "all").await;
    assert_eq!(
        server_error_number(&error_of(beyond_max, "a range beyond the max LSN")),
        Some(313)
    );
    let reversed = all_changes(&mut client, &to, &from, "all").await;
    assert_eq!(
        server_error_number(&error_of(reversed, "a reversed range")),
        Some(313)
    );
}

#[tokio::test]
async fn cleanup_raises_the_minimum_lsn_and_earlier_ranges_fail() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    captured_orders(&mut client).await;
    for id in 1..=3 {
        run(
            &mut client,
            &format!("INSERT INTO orders VALUES ({id}, N'x', 1)"),
        )
        .await;
    }
    wait_for_changes(&mut client, "dbo_orders_CT", 3).await;
    let old_min = scalar_lsn(&mut client, "SELECT sys.fn_cdc_get_min_lsn(N'dbo_orders')").await;
    let last = scalar_lsn(
        &mut client,
        "SELECT MAX(__$start_lsn) FROM cdc.dbo_orders_CT",
    )
    .await;
    client.execute("EXEC sys.sp_cdc_cleanup_change_table @capture_instance = N'dbo_orders', @low_water_mark = @P1", &[&last.as_slice()]).await.unwrap();
    let new_min = scalar_lsn(&mut client, "SELECT sys.fn_cdc_get_min_lsn(N'dbo_orders')").await;
    assert!(new_min > old_min);
    assert_eq!(
        rows(&mut client, "SELECT COUNT_BIG(*) FROM cdc.dbo_orders_CT").await[0].get::<i64, _>(0),
        Some(1)
    );
    let stale = client.query("SELECT * FROM cdc.fn_cdc_get_all_changes_dbo_orders(@P1, sys.fn_cdc_get_max_lsn(), N'all')", &[&old_min.as_slice()]).await.map(|_| ());
    assert_eq!(
        server_error_number(&error_of(stale, "a range below the minimum")),
        Some(313)
    );
}

#[tokio::test]
async fn a_second_capture_instance_sees_new_columns_and_a_third_is_refused() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    captured_orders(&mut client).await;
    run(&mut client, "ALTER TABLE orders ADD note nvarchar(10) NULL").await;
    run(&mut client, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', @role_name = NULL, @capture_instance = N'dbo_orders_v2'").await;
    run(
        &mut client,
        "INSERT INTO orders VALUES (1, N'a', 1, N'hello')",
    )
    .await;
    wait_for_changes(&mut client, "dbo_orders_v2_CT", 1).await;
    wait_for_changes(&mut client, "dbo_orders_CT", 1).await;
    let old = rows(&mut client, "SELECT * FROM cdc.dbo_orders_CT").await;
    assert!(
        old[0].columns().iter().all(|c| c.name() != "note"),
        "a column added after the instance is not in it"
    );
    let new = rows(&mut client, "SELECT note FROM cdc.dbo_orders_v2_CT").await;
    assert_eq!(new[0].get::<&str, _>(0), Some("hello"));
    let third = client.simple_query("EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', @role_name = NULL, @capture_instance = N'v3'").await.map(|_| ());
    assert_eq!(
        server_error_number(&error_of(third, "a third instance")),
        Some(22962)
    );
    let instances = rows(
        &mut client,
        "SELECT capture_instance FROM cdc.change_tables ORDER BY capture_instance",
    )
    .await;
    assert_eq!(
        instances
            .iter()
            .map(|r| r.get::<&str, _>(0).unwrap())
            .collect::<Vec<_>>(),
        ["dbo_orders", "dbo_orders_v2"]
    );
    let keys = rows(&mut client, "SELECT column_name FROM cdc.index_columns").await;
    assert!(keys.iter().all(|r| r.get::<&str, _>(0) == Some("id")));
    let captured = rows(&mut client, "SELECT COUNT(*) FROM cdc.captured_columns").await;
    assert_eq!(captured[0].get::<i32, _>(0), Some(3 + 4));
}

#[tokio::test]
async fn enabling_a_table_needs_cdc_on_the_database_and_a_role_name() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    run(
        &mut client,
        "CREATE DATABASE shop; USE shop; CREATE TABLE t (id int NOT NULL PRIMARY KEY)",
    )
    .await;
    let not_enabled = client.simple_query("EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N't', @role_name = NULL").await.map(|_| ());
    assert_eq!(
        server_error_number(&error_of(not_enabled, "db not enabled")),
        Some(22901)
    );
    run(&mut client, "EXEC sys.sp_cdc_enable_db").await;
    let no_role = client
        .simple_query("EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N't'")
        .await
        .map(|_| ());
    assert_eq!(
        server_error_number(&error_of(no_role, "missing @role_name")),
        Some(201)
    );
}

#[tokio::test]
async fn schema_metadata_describes_tables_columns_and_keys() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    let database = captured_orders(&mut client).await;
    run(&mut client, "CREATE SCHEMA sales").await;
    run(&mut client, "CREATE TABLE sales.lines (order_id int NOT NULL, line smallint NOT NULL, sku nvarchar(max) NULL, at datetime2(3) NULL, CONSTRAINT pk_lines PRIMARY KEY (order_id, line))").await;
    let columns = rows(
        &mut client,
        "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, CHARACTER_MAXIMUM_LENGTH, DATETIME_PRECISION FROM INFORMATION_SCHEMA.COLUMNS \
         WHERE TABLE_SCHEMA = N'sales' AND TABLE_NAME = N'lines' ORDER BY ORDINAL_POSITION",
    )
    .await;
    let described: Vec<(String, String, String)> = columns
        .iter()
        .map(|r| {
            (
                r.get::<&str, _>(0).unwrap().to_owned(),
                r.get::<&str, _>(1).unwrap().to_owned(),
                r.get::<&str, _>(2).unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            ("order_id".into(), "int".into(), "NO".into()),
            ("line".into(), "smallint".into(), "NO".into()),
            ("sku".into(), "nvarchar".into(), "YES".into()),
            ("at".into(), "datetime2".into(), "YES".into())
        ]
    );
    assert_eq!(columns[2].get::<i32, _>(3), Some(-1), "(max) has length -1");
    assert_eq!(columns[3].get::<i16, _>(4), Some(3));
    let keys = rows(&mut client, "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.KEY_COLUMN_USAGE WHERE CONSTRAINT_NAME = N'pk_lines' ORDER BY ORDINAL_POSITION").await;
    assert_eq!(
        keys.iter()
            .map(|r| r.get::<&str, _>(0).unwrap())
            .collect::<Vec<_>>(),
        ["order_id", "line"]
    );
    let tracked = rows(
        &mut client,
        "SELECT t.name FROM sys.tables t WHERE t.is_tracked_by_cdc = 1",
    )
    .await;
    assert_eq!(
        tracked
            .iter()
            .map(|r| r.get::<&str, _>(0).unwrap())
            .collect::<Vec<_>>(),
        ["orders"]
    );
    let cdc_db = rows(
        &mut client,
        &format!("SELECT is_cdc_enabled FROM sys.databases WHERE name = N'{database}'"),
    )
    .await;
    assert_eq!(cdc_db[0].get::<bool, _>(0), Some(true));
}

#[tokio::test]
async fn lsn_ranges_and_position_predicates_read_the_same_rows_as_a_full_scan() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    captured_orders(&mut client).await;
    for id in 1..=30 {
        run(
            &mut client,
            &format!("INSERT INTO orders VALUES ({id}, N'x', 1)"),
        )
        .await;
        if id % 3 == 0 {
            run(
                &mut client,
                &format!("UPDATE orders SET total = 2 WHERE id = {id}"),
            )
            .await;
        }
    }
    wait_for_changes(&mut client, "dbo_orders_CT", 50).await;
    let all = rows(&mut client, READ_CHANGES).await;
    let lsn = |row: &tiberius::Row| row.get::<&[u8], _>(6).unwrap().to_vec();
    let seq = |row: &tiberius::Row| row.get::<&[u8], _>(7).unwrap().to_vec();
    let high = lsn(&all[40]);
    let (middle, middle_seq) = (lsn(&all[20]), seq(&all[20]));
    let hex = |b: &[u8]| {
        format!(
            "0x{}",
            b.iter().map(|x| format!("{x:02X}")).collect::<String>()
        )
    };
    // A range, and a resume-after-position predicate with AND, OR and parentheses.
    let query = format!(
        "SELECT __$operation, __$command_id, id, customer, total, __$update_mask, __$start_lsn, __$seqval \
         FROM cdc.dbo_orders_CT AS ct WHERE ct.__$start_lsn <= {high} AND (ct.__$start_lsn > {low} \
         OR (ct.__$start_lsn = {low} AND ct.__$seqval > {middle_seq})) \
         ORDER BY ct.__$start_lsn, ct.__$command_id, ct.__$seqval, ct.__$operation",
        high = hex(&high),
        low = hex(&middle),
        middle_seq = hex(&middle_seq),
    );
    let ranged = rows(&mut client, &query).await;
    let expected: Vec<_> = all
        .iter()
        .filter(|r| {
            let (l, s) = (lsn(r), seq(r));
            l <= high && (l > middle || (l == middle && s > middle_seq))
        })
        .map(|r| (lsn(r), seq(r), r.get::<i32, _>(0).unwrap()))
        .collect();
    let got: Vec<_> = ranged
        .iter()
        .map(|r| (lsn(r), seq(r), r.get::<i32, _>(0).unwrap()))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
}

/// A reader paging through a change table with TOP and the resume-after-position predicate
/// (inside transactions that span pages) reads every change once, in order: the simulator
/// seeks the start of each page and stops at its TOP, and must not skip or repeat a row.
#[tokio::test]
async fn paging_with_top_from_positions_inside_transactions_reads_every_change_once() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    captured_orders(&mut client).await;
    for first in (1..=210).step_by(7) {
        let values: Vec<String> = (first..first + 7)
            .map(|id| format!("({id}, N'c', 1)"))
            .collect();
        run(
            &mut client,
            &format!(
                "BEGIN TRANSACTION; INSERT INTO orders VALUES {}; \
                 UPDATE orders SET total = 2 WHERE id >= {first} AND id < {}; COMMIT",
                values.join(", "),
                first + 3
            ),
        )
        .await;
    }
    let total = 30 * (7 + 2 * 3);
    wait_for_changes(&mut client, "dbo_orders_CT", total).await;
    let key = |row: &tiberius::Row| {
        (
            row.get::<&[u8], _>(6).unwrap().to_vec(),
            row.get::<i32, _>(1).unwrap(),
            row.get::<&[u8], _>(7).unwrap().to_vec(),
            row.get::<i32, _>(0).unwrap(),
        )
    };
    let all: Vec<_> = rows(&mut client, READ_CHANGES)
        .await
        .iter()
        .map(key)
        .collect();
    assert_eq!(all.len(), total as usize);

    let page_text = "SELECT TOP (11) __$operation, __$command_id, id, customer, total, __$update_mask, __$start_lsn, __$seqval \
         FROM cdc.dbo_orders_CT AS ct WHERE ct.__$start_lsn <= @P1 AND (ct.__$start_lsn > @P2 \
         OR (ct.__$start_lsn = @P2 AND (ct.__$command_id > @P3 OR (ct.__$command_id = @P3 \
         AND (ct.__$seqval > @P4 OR (ct.__$seqval = @P4 AND ct.__$operation > @P5)))))) \
         ORDER BY ct.__$start_lsn, ct.__$command_id, ct.__$seqval, ct.__$operation";
    let upper = all.last().unwrap().0.clone();
    let mut after = (vec![0u8; 10], 0i32, vec![0u8; 10], 0i32);
    let mut paged = Vec::new();
    loop {
        let page: Vec<_> = query_rows(
            &mut client,
            page_text,
            &[
                &upper.as_slice(),
                &after.0.as_slice(),
                &after.1,
                &after.2.as_slice(),
                &after.3,
            ],
        )
        .await
        .iter()
        .map(key)
        .collect();
        let Some(last) = page.last() else { break };
        after = last.clone();
        paged.extend(page);
        assert!(paged.len() <= all.len(), "a page repeated rows");
    }
    assert_eq!(paged, all);
}

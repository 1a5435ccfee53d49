//! Tables through tiberius: DDL, DML with SQL Server's checks and errors, queries, and
//! transactions with statement atomicity and READ COMMITTED visibility.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{
    SqlClient, Target, error_number, error_of, fresh_database, query_rows, run, server_error_number,
};

async fn ints(client: &mut SqlClient, sql: &str) -> Vec<Option<i32>> {
    let rows = client
        .simple_query(sql)
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    rows.iter().map(|row| row.get::<i32, _>(0)).collect()
}

const ORDERS: &str = "CREATE TABLE dbo.orders (id int NOT NULL PRIMARY KEY, customer nvarchar(20) NOT NULL, \
                      total decimal(12,2) NULL, note varchar(5) NULL)";

/// A connection to a database of the test's own holding an empty `dbo.orders`; keep the
/// target alive for as long as the connection is used.
async fn with_orders() -> (Target, SqlClient) {
    let target = Target::new().await;
    let mut client = target.connect().await;
    fresh_database(&mut client).await;
    run(&mut client, ORDERS).await;
    (target, client)
}

#[tokio::test]
async fn multi_row_inserts_and_parameters_land_in_key_order() {
    let (_target, mut client) = with_orders().await;
    let result = client.execute("INSERT INTO dbo.orders (id, customer, total) VALUES (3, N'c', 3.50), (1, N'a', 1.25), (@P1, @P2, NULL)", &[&2i32, &"b"]).await.unwrap();
    assert_eq!(result.rows_affected(), &[3]);
    assert_eq!(
        ints(&mut client, "SELECT id FROM dbo.orders").await,
        [Some(1), Some(2), Some(3)]
    );
    let rows = client
        .simple_query("SELECT customer, total FROM orders WHERE id = 3")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(rows[0].get::<&str, _>(0), Some("c"));
    assert_eq!(
        rows[0].get::<rust_decimal::Decimal, _>(1),
        Some(rust_decimal::Decimal::new(350, 2))
    );
}

#[tokio::test]
async fn where_order_by_top_and_offset_fetch_select_the_right_rows() {
    let (_target, mut client) = with_orders().await;
    let values: Vec<String> = (1..=20)
        .map(|i| format!("({i}, N'c{}', {i}.00, NULL)", i % 3))
        .collect();
    run(
        &mut client,
        &format!("INSERT INTO orders VALUES {}", values.join(", ")),
    )
    .await;
    assert_eq!(
        ints(
            &mut client,
            "SELECT id FROM orders WHERE id IN (4, 9, 99) OR id BETWEEN 18 AND 19"
        )
        .await,
        [Some(4), Some(9), Some(18), Some(19)]
    );
    assert_eq!(
        ints(
            &mut client,
            "SELECT TOP (3) id FROM orders WHERE customer = N'C1' AND total > 5 ORDER BY id DESC"
        )
        .await,
        [Some(19), Some(16), Some(13)]
    );
    assert_eq!(
        ints(
            &mut client,
            "SELECT id FROM orders ORDER BY id OFFSET 5 ROWS FETCH NEXT 2 ROWS ONLY"
        )
        .await,
        [Some(6), Some(7)]
    );
    assert_eq!(
        ints(
            &mut client,
            "SELECT id FROM orders WHERE note IS NULL AND NOT id > 2"
        )
        .await,
        [Some(1), Some(2)]
    );
    let rows = client
        .simple_query("SELECT COUNT_BIG(*), MIN(id), MAX(total) FROM orders WHERE id > 10")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(rows[0].get::<i64, _>(0), Some(10));
    assert_eq!(rows[0].get::<i32, _>(1), Some(11));
    assert_eq!(
        rows[0].get::<rust_decimal::Decimal, _>(2),
        Some(rust_decimal::Decimal::new(2000, 2))
    );
}

#[tokio::test]
async fn constraint_and_name_errors_carry_sql_servers_numbers() {
    let (_target, mut client) = with_orders().await;
    run(
        &mut client,
        "INSERT INTO orders (id, customer) VALUES (1, N'a')",
    )
    .await;
    assert_eq!(
        error_number(&mut client, "SELECT * FROM missing").await,
        Some(208)
    );
    assert_eq!(
        error_number(&mut client, "SELECT nope FROM orders").await,
        Some(207)
    );
    assert_eq!(
        error_number(
            &mut client,
            "INSERT INTO orders (id, customer) VALUES (1, N'dup')"
        )
        .await,
        Some(2627)
    );
    assert_eq!(
        error_number(
            &mut client,
            "INSERT INTO orders (id, customer) VALUES (2, NULL)"
        )
        .await,
        Some(515)
    );
    assert_eq!(
        error_number(
            &mut client,
            "INSERT INTO orders (id, customer, note) VALUES (3, N'x', 'toolong')"
        )
        .await,
        Some(2628)
    );
    assert_eq!(error_number(&mut client, "COMMIT").await, Some(3902));
    assert_eq!(error_number(&mut client, ORDERS).await, Some(2714));
    assert_eq!(
        error_number(&mut client, "CREATE TABLE nowhere.t (id int NOT NULL)").await,
        Some(2760)
    );
    assert_eq!(
        ints(&mut client, "SELECT id FROM orders").await,
        [Some(1)],
        "failed statements leave nothing behind"
    );
}

#[tokio::test]
async fn a_failing_row_undoes_its_whole_statement() {
    let (_target, mut client) = with_orders().await;
    assert_eq!(
        error_number(
            &mut client,
            "INSERT INTO orders (id, customer) VALUES (1, N'a'), (2, N'b'), (1, N'again')"
        )
        .await,
        Some(2627)
    );
    assert_eq!(
        ints(&mut client, "SELECT COUNT(*) FROM orders").await,
        [Some(0)]
    );
}

#[tokio::test]
async fn rollback_discards_and_commit_publishes_to_other_sessions() {
    let target = Target::new().await;
    let mut writer = target.connect().await;
    let mut reader = target.connect().await;
    let database = fresh_database(&mut writer).await;
    run(&mut reader, &format!("USE {database}")).await;
    run(&mut writer, ORDERS).await;
    run(
        &mut writer,
        "BEGIN TRAN; INSERT INTO orders (id, customer) VALUES (1, N'a')",
    )
    .await;
    assert_eq!(
        ints(&mut writer, "SELECT id FROM orders").await,
        [Some(1)],
        "the writer sees its own change"
    );
    assert_eq!(
        ints(&mut reader, "SELECT id FROM orders").await,
        Vec::<Option<i32>>::new(),
        "others do not see uncommitted rows"
    );
    run(&mut writer, "ROLLBACK").await;
    assert_eq!(
        ints(&mut writer, "SELECT id FROM orders").await,
        Vec::<Option<i32>>::new()
    );
    run(&mut writer, "BEGIN TRANSACTION; INSERT INTO orders (id, customer) VALUES (2, N'b'); UPDATE orders SET customer = N'B' WHERE id = 2; COMMIT").await;
    let rows = reader
        .simple_query("SELECT customer FROM orders")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.get::<&str, _>(0)).collect::<Vec<_>>(),
        [Some("B")]
    );
}

#[tokio::test]
async fn an_error_inside_a_transaction_undoes_only_its_statement() {
    let (_target, mut client) = with_orders().await;
    run(
        &mut client,
        "BEGIN TRAN; INSERT INTO orders (id, customer) VALUES (1, N'a')",
    )
    .await;
    assert_eq!(
        error_number(
            &mut client,
            "INSERT INTO orders (id, customer) VALUES (2, N'b'), (1, N'dup')"
        )
        .await,
        Some(2627)
    );
    run(&mut client, "COMMIT").await;
    assert_eq!(ints(&mut client, "SELECT id FROM orders").await, [Some(1)]);
}

#[tokio::test]
async fn updates_move_rows_when_the_key_changes_and_deletes_count() {
    let (_target, mut client) = with_orders().await;
    run(
        &mut client,
        "INSERT INTO orders (id, customer) VALUES (1, N'a'), (2, N'b'), (3, N'c')",
    )
    .await;
    let moved = client
        .execute("UPDATE orders SET id = id + 10 WHERE id >= 2", &[])
        .await
        .unwrap();
    assert_eq!(moved.rows_affected(), &[2]);
    assert_eq!(
        ints(&mut client, "SELECT id FROM orders").await,
        [Some(1), Some(12), Some(13)]
    );
    assert_eq!(
        error_number(&mut client, "UPDATE orders SET id = 1 WHERE id = 12").await,
        Some(2627)
    );
    let deleted = client
        .execute("DELETE FROM orders WHERE customer IN (N'a', N'c')", &[])
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), &[2]);
    assert_eq!(ints(&mut client, "SELECT id FROM orders").await, [Some(12)]);
}

#[tokio::test]
async fn key_equalities_find_exactly_the_rows_a_scan_would() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    fresh_database(&mut client).await;
    run(
        &mut client,
        "CREATE TABLE dbo.lines (order_id bigint NOT NULL, line_no int NOT NULL, qty int NOT NULL, \
         PRIMARY KEY (order_id, line_no))",
    )
    .await;
    run(
        &mut client,
        "INSERT INTO lines (order_id, line_no, qty) VALUES (1, 1, 10), (1, 2, 20), (2, 1, 30)",
    )
    .await;
    // Both key columns by equality (literals, parameters, either side), with and without a
    // further condition that the found row must also meet.
    let updated = client
        .execute(
            "UPDATE lines SET qty = qty + 1 WHERE order_id = @P1 AND @P2 = line_no",
            &[&1i64, &2i32],
        )
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), &[1]);
    let missed = client
        .execute(
            "UPDATE lines SET qty = 0 WHERE order_id = 1 AND line_no = 1 AND qty = 99",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(missed.rows_affected(), &[0]);
    let absent = client
        .execute("DELETE FROM lines WHERE order_id = 7 AND line_no = 1", &[])
        .await
        .unwrap();
    assert_eq!(absent.rows_affected(), &[0]);
    // Only part of the key, or an OR: every matching row, as a scan finds them.
    let partial = client
        .execute("UPDATE lines SET qty = qty + 100 WHERE line_no = 1", &[])
        .await
        .unwrap();
    assert_eq!(partial.rows_affected(), &[2]);
    let either = client
        .execute(
            "UPDATE lines SET qty = qty + 1000 WHERE order_id = 2 AND line_no = 1 OR order_id = 1 AND line_no = 2",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(either.rows_affected(), &[2]);
    assert_eq!(
        ints(&mut client, "SELECT qty FROM lines").await,
        [Some(110), Some(1021), Some(1130)]
    );
    // The session's own uncommitted row is found by its key.
    run(
        &mut client,
        "BEGIN TRAN; INSERT INTO lines (order_id, line_no, qty) VALUES (3, 1, 5)",
    )
    .await;
    let own = client
        .execute("DELETE FROM lines WHERE order_id = 3 AND line_no = 1", &[])
        .await
        .unwrap();
    assert_eq!(own.rows_affected(), &[1]);
    run(&mut client, "COMMIT").await;
}

#[tokio::test]
async fn key_ranges_find_exactly_the_rows_a_scan_would() {
    let (_target, mut client) = with_orders().await;
    let rows: Vec<String> = (1..=20).map(|id| format!("({id}, N'c{id}')")).collect();
    run(
        &mut client,
        &format!(
            "INSERT INTO orders (id, customer) VALUES {}",
            rows.join(", ")
        ),
    )
    .await;
    // (predicate, rows it matches): bounds of each kind, either side, tightest wins, empty.
    let cases = [
        ("id >= 5 AND id <= 8", 4),
        ("id > 5 AND id < 8", 2),
        ("id BETWEEN 18 AND 25", 3),
        ("3 < id AND 6 >= id", 3),
        ("id > 2 AND id > 15 AND id <= 16 AND id < 100", 1),
        ("id >= 7 AND id < 7", 0),
        ("id > 9 AND id < 3", 0),
        ("id >= 10 AND customer = N'c12'", 1),
        ("id BETWEEN @P1 AND @P2", 6),
    ];
    for (number, (predicate, expected)) in cases.iter().enumerate() {
        let mark = format!("N'case{number}'");
        let statement = format!("UPDATE orders SET customer = {mark} WHERE {predicate}");
        let updated = client.execute(statement, &[&1i32, &6i32]).await.unwrap();
        assert_eq!(updated.rows_affected(), &[*expected], "{predicate}");
    }
    let deleted = client
        .execute("DELETE FROM orders WHERE id >= 19", &[])
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), &[2]);
    assert_eq!(
        ints(&mut client, "SELECT COUNT(*) FROM orders").await,
        [Some(18)]
    );
}

#[tokio::test]
async fn identity_columns_number_rows_and_refuse_explicit_values() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    fresh_database(&mut client).await;
    run(
        &mut client,
        "CREATE TABLE t (id bigint IDENTITY(100, 5) NOT NULL PRIMARY KEY, v int NULL)",
    )
    .await;
    run(&mut client, "INSERT INTO t (v) VALUES (1), (2)").await;
    let rows = client
        .simple_query("SELECT id FROM t")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.get::<i64, _>(0)).collect::<Vec<_>>(),
        [Some(100), Some(105)]
    );
    assert_eq!(
        error_number(&mut client, "INSERT INTO t (id, v) VALUES (1, 1)").await,
        Some(544)
    );
}

#[tokio::test]
async fn columns_are_added_and_dropped() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    fresh_database(&mut client).await;
    run(&mut client, "CREATE TABLE t (a int NOT NULL, b int NOT NULL, c int NULL, CONSTRAINT pk_t PRIMARY KEY (a, b))").await;
    run(&mut client, "INSERT INTO t VALUES (1, 2, 3)").await;
    run(&mut client, "ALTER TABLE t ADD d nvarchar(10) NULL").await;
    assert_eq!(
        error_number(&mut client, "ALTER TABLE t ADD e int NOT NULL").await,
        Some(4901)
    );
    run(&mut client, "ALTER TABLE t DROP COLUMN c").await;
    let rows = client
        .simple_query("SELECT * FROM t")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let names: Vec<&str> = rows[0].columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["a", "b", "d"]);
    assert_eq!(rows[0].get::<&str, _>("d"), None);
    assert_eq!(
        error_number(&mut client, "ALTER TABLE t DROP COLUMN a").await,
        Some(5074)
    );
}

/// The simulator keeps the parse of an `sp_executesql` text for its next call, as SQL Server
/// keeps the plan; names are still resolved at each call, so a reused text sees the table as
/// it is now, and different parameter values give different results.
#[tokio::test]
async fn a_reused_parameterized_text_sees_new_values_and_a_changed_table() {
    let (_target, mut client) = with_orders().await;
    let insert = "INSERT INTO dbo.orders (id, customer) VALUES (@P1, @P2), (@P3, @P4)";
    let select = "SELECT * FROM dbo.orders WHERE id >= @P1 ORDER BY id";
    for (first, second) in [(1i32, 2i32), (3, 4)] {
        let result = client
            .execute(insert, &[&first, &"a", &second, &"b"])
            .await
            .unwrap();
        assert_eq!(result.rows_affected(), &[2]);
    }
    let before = query_rows(&mut client, select, &[&2i32]).await;
    assert_eq!(before.len(), 3);
    assert_eq!(before[0].columns().len(), 4);

    run(&mut client, "ALTER TABLE dbo.orders ADD flag bit NULL").await;
    let after = query_rows(&mut client, select, &[&4i32]).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].get::<i32, _>(0), Some(4));
    assert_eq!(after[0].columns().len(), 5);
    assert_eq!(after[0].columns()[4].name(), "flag");

    run(&mut client, "DROP TABLE dbo.orders").await;
    let gone = match client.query(select, &[&1i32]).await {
        Ok(stream) => stream.into_results().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert_eq!(
        server_error_number(&error_of(gone, "the reused SELECT of a dropped table")),
        Some(208)
    );
}

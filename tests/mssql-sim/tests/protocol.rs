//! The simulator through tiberius: login, errors with SQL Server's numbers, messages over many
//! packets, concurrency, and every type round-tripping as a parameter and as a CAST.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use rust_decimal::Decimal;
use support::{PASSWORD, config, connect, error_of, server_error_number, simulator, try_connect};
use tiberius::Row;

async fn one_row(client: &mut support::SqlClient, sql: &str) -> Row {
    client
        .simple_query(sql)
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .expect("one row")
}

#[tokio::test]
async fn sa_logs_in_and_a_constant_select_answers() {
    let sim = simulator().await;
    let mut client = connect(sim.addr()).await;
    let row = one_row(&mut client, "SELECT 1 AS one, N'Zoë' AS name").await;
    assert_eq!(row.get::<i32, _>("one"), Some(1));
    assert_eq!(row.get::<&str, _>("name"), Some("Zoë"));
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_18456() {
    let sim = simulator().await;
    let error = error_of(
        try_connect(config(sim.addr(), "wrong", None)).await,
        "login must fail",
    );
    assert_eq!(server_error_number(&error), Some(18456), "{error}");
}

#[tokio::test]
async fn an_unknown_initial_database_is_refused() {
    let sim = simulator().await;
    let error = error_of(
        try_connect(config(sim.addr(), PASSWORD, Some("nope"))).await,
        "login must fail",
    );
    let number = server_error_number(&error);
    assert!(number == Some(4060) || number == Some(18456), "{error}");
}

#[tokio::test]
async fn a_syntax_error_is_102_and_the_connection_stays_usable() {
    let sim = simulator().await;
    let mut client = connect(sim.addr()).await;
    let error = error_of(client.simple_query("SELEC 1").await, "must fail");
    assert_eq!(server_error_number(&error), Some(102), "{error}");
    assert!(
        error.to_string().contains("Incorrect syntax near 'SELEC'"),
        "{error}"
    );
    let row = one_row(&mut client, "SELECT 2").await;
    assert_eq!(row.get::<i32, _>(0), Some(2));
}

#[tokio::test]
async fn databases_are_created_used_and_dropped() {
    let sim = simulator().await;
    let mut client = connect(sim.addr()).await;
    client
        .simple_query("CREATE DATABASE shop")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    let again = error_of(
        client.simple_query("CREATE DATABASE shop").await,
        "duplicate",
    );
    assert_eq!(server_error_number(&again), Some(1801));
    client
        .simple_query("USE shop")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    let missing = error_of(client.simple_query("USE nowhere").await, "missing");
    assert_eq!(server_error_number(&missing), Some(911));
    let mut second = try_connect(config(sim.addr(), PASSWORD, Some("shop")))
        .await
        .unwrap();
    assert_eq!(
        one_row(&mut second, "SELECT 1").await.get::<i32, _>(0),
        Some(1)
    );
    client
        .simple_query("USE master; DROP DATABASE shop")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    let gone = error_of(client.simple_query("DROP DATABASE shop").await, "gone");
    assert_eq!(server_error_number(&gone), Some(3701));
}

#[tokio::test]
async fn parameters_of_every_client_type_come_back_exactly() {
    let sim = simulator().await;
    let mut client = connect(sim.addr()).await;
    let datetime = NaiveDate::from_ymd_opt(9999, 12, 31)
        .unwrap()
        .and_hms_nano_opt(23, 59, 59, 999_999_900)
        .unwrap();
    let time = NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_900).unwrap();
    let date = NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
    let offset = FixedOffset::east_opt(-(14 * 3600))
        .unwrap()
        .from_local_datetime(&datetime)
        .unwrap();
    let decimal = Decimal::from_str_exact("-7922816251426433759354395.0335").unwrap();
    let uuid = uuid::Uuid::parse_str("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap();
    let bytes: Vec<u8> = (0..=255).collect();
    let stream = client
        .query(
            "SELECT @P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10, @P11, @P12, @P13, @P14",
            &[
                &i32::MIN,
                &i64::MAX,
                &true,
                &1.5e300f64,
                &f32::MIN_POSITIVE,
                &"½ unicode ✓",
                &bytes.as_slice(),
                &decimal,
                &uuid,
                &date,
                &time,
                &datetime,
                &offset,
                &Option::<i32>::None,
            ],
        )
        .await
        .unwrap();
    let row = stream.into_row().await.unwrap().expect("a row");
    assert_eq!(row.get::<i32, _>(0), Some(i32::MIN));
    assert_eq!(row.get::<i64, _>(1), Some(i64::MAX));
    assert_eq!(row.get::<bool, _>(2), Some(true));
    assert_eq!(row.get::<f64, _>(3), Some(1.5e300));
    assert_eq!(row.get::<f32, _>(4), Some(f32::MIN_POSITIVE));
    assert_eq!(row.get::<&str, _>(5), Some("½ unicode ✓"));
    assert_eq!(row.get::<&[u8], _>(6), Some(bytes.as_slice()));
    assert_eq!(row.get::<Decimal, _>(7), Some(decimal));
    assert_eq!(row.get::<uuid::Uuid, _>(8), Some(uuid));
    assert_eq!(row.get::<NaiveDate, _>(9), Some(date));
    assert_eq!(row.get::<NaiveTime, _>(10), Some(time));
    assert_eq!(row.get::<NaiveDateTime, _>(11), Some(datetime));
    assert_eq!(
        row.get::<chrono::DateTime<FixedOffset>, _>(12),
        Some(offset)
    );
    assert_eq!(row.get::<i32, _>(13), None);
}

#[tokio::test]
async fn casts_give_sql_server_types_and_values() {
    let sim = simulator().await;
    let mut client = connect(sim.addr()).await;
    let row = one_row(
        &mut client,
        "SELECT CAST(922337203685477.5807 AS money), CAST(-214748.3648 AS smallmoney), \
         CAST('6F9619FF-8B86-D011-B42D-00C04FC964FF' AS uniqueidentifier), \
         CAST('2024-02-29 01:30:00.1234567 +05:30' AS datetimeoffset(7)), \
         CAST('9999-12-31 23:59:59.9999999' AS datetime2(7)), \
         CAST(12345678901234567890123456789012345678 AS decimal(38,0)), \
         CAST(255 AS tinyint), CAST(NULL AS bigint), \
         CAST(CAST(922337203685477.5807 AS money) AS decimal(19,4))",
    )
    .await;
    // tiberius reads money as f64 (as it does from SQL Server): exact readers CAST money to
    // decimal(19,4), which the next assertions on decimals cover.
    assert_eq!(row.get::<f64, _>(0), Some(922_337_203_685_477.6));
    assert_eq!(row.get::<f64, _>(1), Some(-214_748.364_8));
    assert_eq!(
        row.get::<uuid::Uuid, _>(2).map(|u| u.to_string()),
        Some("6f9619ff-8b86-d011-b42d-00c04fc964ff".to_owned())
    );
    let dto = row.get::<chrono::DateTime<FixedOffset>, _>(3).unwrap();
    assert_eq!(dto.to_rfc3339(), "2024-02-29T01:30:00.123456700+05:30");
    let dt2 = row.get::<NaiveDateTime, _>(4).unwrap();
    assert_eq!(dt2.to_string(), "9999-12-31 23:59:59.999999900");
    let widest = row.get::<tiberius::numeric::Numeric, _>(5).unwrap();
    assert_eq!(
        (widest.value(), widest.scale()),
        (12_345_678_901_234_567_890_123_456_789_012_345_678, 0)
    );
    assert_eq!(row.get::<u8, _>(6), Some(255));
    assert_eq!(row.get::<i64, _>(7), None);
    assert_eq!(
        row.get::<Decimal, _>(8),
        Some(Decimal::from_str_exact("922337203685477.5807").unwrap())
    );
}

#[tokio::test]
async fn an_overflowing_cast_is_error_8115() {
    let sim = simulator().await;
    let mut client = connect(sim.addr()).await;
    let error = error_of(
        client.simple_query("SELECT CAST(300 AS tinyint)").await,
        "overflow",
    );
    assert_eq!(server_error_number(&error), Some(8115), "{error}");
}

#[tokio::test]
async fn megabyte_values_cross_many_packets_both_ways() {
    let sim = simulator().await;
    let mut client = connect(sim.addr()).await;
    let text: String = "abcdefghijklmnopqrstuvwxyz✓".repeat(40_000);
    let bytes: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    let row = client
        .query(
            "SELECT @P1 AS t, @P2 AS b",
            &[&text.as_str(), &bytes.as_slice()],
        )
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .expect("a row");
    assert_eq!(row.get::<&str, _>("t").map(str::len), Some(text.len()));
    assert_eq!(row.get::<&str, _>("t"), Some(text.as_str()));
    assert_eq!(row.get::<&[u8], _>("b"), Some(bytes.as_slice()));
}

#[tokio::test]
async fn fifty_clients_at_once_each_get_their_own_answers() {
    let sim = simulator().await;
    let addr = sim.addr();
    let clients = (0..50).map(|i| {
        tokio::spawn(async move {
            let mut client = connect(addr).await;
            let row = client
                .query("SELECT @P1", &[&i])
                .await
                .unwrap()
                .into_row()
                .await
                .unwrap()
                .unwrap();
            row.get::<i32, _>(0)
        })
    });
    let answers: Vec<Option<i32>> = futures::future::join_all(clients)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(answers, (0..50).map(Some).collect::<Vec<_>>());
}

#[tokio::test]
async fn hashbytes_and_convert_styles_give_what_a_checksum_needs() {
    let sim = simulator().await;
    let mut client = connect(sim.addr()).await;
    let row = one_row(
        &mut client,
        "SELECT HASHBYTES('SHA2_256', 'abc'), HASHBYTES('SHA2_256', N'abc'), \
         LOWER(CONVERT(varchar(64), HASHBYTES('SHA2_256', 'abc'), 2)), \
         CONVERT(varchar(30), CAST('2024-02-29 12:00:00.1234567' AS datetime2(6)), 121), \
         CONVERT(char(10), CAST('2024-02-29' AS date), 23), \
         CONVERT(varchar(30), CAST('2024-02-29 12:00:00.125' AS datetime), 126), \
         LOWER(CONVERT(varchar(16), CAST(CAST(1.5 AS float) AS binary(8)), 2)), \
         LEN(N'trailing  ')",
    )
    .await;
    let sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(row.get::<&[u8], _>(0).map(hex), Some(sha_abc.to_owned()));
    assert_ne!(
        row.get::<&[u8], _>(1).map(hex),
        Some(sha_abc.to_owned()),
        "nvarchar hashes its UTF-16 bytes"
    );
    assert_eq!(row.get::<&str, _>(2), Some(sha_abc));
    assert_eq!(row.get::<&str, _>(3), Some("2024-02-29 12:00:00.123457"));
    assert_eq!(row.get::<&str, _>(4), Some("2024-02-29"));
    assert_eq!(row.get::<&str, _>(5), Some("2024-02-29T12:00:00.127"));
    assert_eq!(row.get::<&str, _>(6), Some("3ff8000000000000"));
    assert_eq!(row.get::<i32, _>(7), Some(8));
}

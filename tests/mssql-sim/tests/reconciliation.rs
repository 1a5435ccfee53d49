//! The reconciler's queries through tiberius: the canonical text of every type, its UTF-8
//! bytes, the per-value encoding and row hashes, the per-bucket count and checksum query, and
//! the drill-down query. Expected values are computed here independently (SHA-256 of the
//! encoding built in Rust), so the simulator's answer is checked, not echoed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use support::{SqlClient, Target, error_number, fresh_database, run};
use tiberius::numeric::Numeric;

/// How the reconciler renders a column as canonical text.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Bit,
    Integer,
    Decimal,
    Money,
    SmallMoney,
    Float,
    Real,
    Date,
    Time,
    DateTime,
    DateTime2,
    DateTimeOffset,
    Text,
    LargeText,
    Binary,
    Image,
    Uuid,
}

/// T(c): the canonical text of column `c` (NULL for NULL).
fn text_sql(kind: Kind, column: &str) -> String {
    let c = format!("[{column}]");
    let float_bits = |value: &str| {
        format!(
            "CASE WHEN {c} = 0 THEN '0000000000000000' \
             ELSE LOWER(CONVERT(varchar(16), CAST({value} AS binary(8)), 2)) END"
        )
    };
    match kind {
        Kind::Bit => format!("CAST({c} AS varchar(1))"),
        Kind::Integer => format!("CAST({c} AS varchar(20))"),
        Kind::Decimal => format!("CAST({c} AS varchar(50))"),
        Kind::Money => format!("CAST(CAST({c} AS decimal(19,4)) AS varchar(50))"),
        Kind::SmallMoney => format!("CAST(CAST({c} AS decimal(10,4)) AS varchar(50))"),
        Kind::Float => float_bits(&c),
        Kind::Real => float_bits(&format!("CAST({c} AS float)")),
        Kind::Date => format!("CONVERT(varchar(10), {c}, 23)"),
        Kind::Time => format!("CAST(CAST({c} AS time(6)) AS varchar(15))"),
        Kind::DateTime => {
            format!("CONVERT(varchar(26), CAST(CAST({c} AS datetime2(3)) AS datetime2(6)), 121)")
        }
        Kind::DateTime2 => format!("CONVERT(varchar(26), CAST({c} AS datetime2(6)), 121)"),
        Kind::DateTimeOffset => format!(
            "CONVERT(varchar(26), CAST(SWITCHOFFSET({c}, '+00:00') AS datetime2(6)), 121) + '+00:00'"
        ),
        Kind::Text => c,
        Kind::LargeText => format!("CAST({c} AS nvarchar(max))"),
        Kind::Binary => format!("LOWER(CONVERT(varchar(max), {c}, 2))"),
        Kind::Image => format!("LOWER(CONVERT(varchar(max), CAST({c} AS varbinary(max)), 2))"),
        Kind::Uuid => format!("LOWER(CAST({c} AS char(36)))"),
    }
}

/// U(c): the UTF-8 bytes of T(c).
fn utf8_sql(kind: Kind, column: &str) -> String {
    format!(
        "CAST(CAST(CAST({} AS nvarchar(max)) COLLATE Latin1_General_100_BIN2_UTF8 AS varchar(max)) AS varbinary(max))",
        text_sql(kind, column)
    )
}

/// ENC(c): 0x00 for NULL, else 0x01, the byte length (int, big-endian), the bytes.
fn encoding_sql(kind: Kind, column: &str) -> String {
    let utf8 = utf8_sql(kind, column);
    format!("ISNULL(0x01 + CAST(CAST(DATALENGTH({utf8}) AS int) AS binary(4)) + {utf8}, 0x00)")
}

fn row_sql(columns: &[(&str, Kind)]) -> String {
    columns
        .iter()
        .map(|(name, kind)| encoding_sql(*kind, name))
        .collect::<Vec<_>>()
        .join(" + ")
}

fn bucket_sql(keys: &[(&str, Kind)], buckets: u32) -> String {
    format!(
        "CAST(SUBSTRING(HASHBYTES('SHA2_256', {}), 1, 4) AS bigint) % {buckets}",
        row_sql(keys)
    )
}

/// Query 1: rows and checksum per non-empty bucket.
fn buckets_sql(
    table: &str,
    keys: &[(&str, Kind)],
    columns: &[(&str, Kind)],
    buckets: u32,
    filter: &str,
) -> String {
    let bucket = bucket_sql(keys, buckets);
    format!(
        "SELECT {bucket} AS bucket, COUNT_BIG(*) AS row_count, \
         SUM(CAST(CAST(SUBSTRING(HASHBYTES('SHA2_256', {row}), 1, 8) AS bigint) AS decimal(38,0))) AS hash_sum \
         FROM {table}{filter} GROUP BY {bucket}",
        row = row_sql(columns)
    )
}

/// The encoding of a row's canonical texts, built here.
fn encode(texts: &[Option<String>]) -> Vec<u8> {
    let mut out = Vec::new();
    for text in texts {
        match text {
            None => out.push(0),
            Some(text) => {
                out.push(1);
                out.extend_from_slice(&(text.len() as u32).to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    out
}

fn bucket_of(key_texts: &[Option<String>], buckets: u32) -> i64 {
    let digest = Sha256::digest(encode(key_texts));
    i64::from(u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % buckets)
}

fn part_of(row_texts: &[Option<String>]) -> i128 {
    let digest = Sha256::digest(encode(row_texts));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i128::from(i64::from_be_bytes(first))
}

async fn texts(client: &mut SqlClient, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows = client
        .simple_query(sql)
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            (0..row.len())
                .map(|i| row.get::<&str, _>(i).map(str::to_owned))
                .collect()
        })
        .collect()
}

const EVERY_TYPE: &[(&str, &str, Kind)] = &[
    ("id", "int NOT NULL PRIMARY KEY", Kind::Integer),
    ("c_bit", "bit", Kind::Bit),
    ("c_tinyint", "tinyint", Kind::Integer),
    ("c_smallint", "smallint", Kind::Integer),
    ("c_int", "int", Kind::Integer),
    ("c_bigint", "bigint", Kind::Integer),
    ("c_decimal", "decimal(9,4)", Kind::Decimal),
    ("c_numeric", "numeric(38,0)", Kind::Decimal),
    ("c_money", "money", Kind::Money),
    ("c_smallmoney", "smallmoney", Kind::SmallMoney),
    ("c_float", "float", Kind::Float),
    ("c_real", "real", Kind::Real),
    ("c_date", "date", Kind::Date),
    ("c_time", "time(7)", Kind::Time),
    ("c_datetime", "datetime", Kind::DateTime),
    ("c_smalldatetime", "smalldatetime", Kind::DateTime2),
    ("c_datetime2", "datetime2(7)", Kind::DateTime2),
    ("c_dto", "datetimeoffset(7)", Kind::DateTimeOffset),
    ("c_char", "char(5)", Kind::Text),
    ("c_varchar", "varchar(20)", Kind::Text),
    ("c_nchar", "nchar(4)", Kind::Text),
    ("c_nvarchar", "nvarchar(40)", Kind::Text),
    ("c_text", "text", Kind::LargeText),
    ("c_ntext", "ntext", Kind::LargeText),
    ("c_xml", "xml", Kind::LargeText),
    ("c_binary", "binary(4)", Kind::Binary),
    ("c_varbinary", "varbinary(10)", Kind::Binary),
    ("c_image", "image", Kind::Image),
    ("c_guid", "uniqueidentifier", Kind::Uuid),
];

/// Row 1: extreme and awkward values; row 2: all NULL; row 3: zeros and small values.
const EVERY_TYPE_ROWS: &str = "INSERT INTO dbo.every_type VALUES \
    (1, 1, 255, -32768, -2147483648, 9223372036854775807, -0.5, 12345678901234567890123456789012345678, \
     -922337203685477.5808, 214748.3647, 1.5, 0.1, '2024-01-02', '03:04:05.1234565', \
     '2024-01-02 03:04:05.003', '2024-01-02 03:04:30', '2024-01-02 03:04:05.1234565', \
     '2024-01-02 03:04:05.5 +02:00', 'ab', 'Zoë €', N'é', N'Zoë 😀', 'long text', N'ntext ☃', \
     '<a>1</a>', 0x0102, 0xABCD, 0x00FF, '6F9619FF-8B86-D011-B42D-00C04FC964FF'), \
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), \
    (3, 0, 0, 0, 0, 0, 0.07, -1, 0, -1.5, 0, 0, '0001-01-01', '23:59:59.9999994', \
     '1753-01-01 00:00:00.007', '2079-06-06 23:59:00', '9999-12-31 23:59:59.9999994', \
     '2024-01-01 00:30:00 +14:00', '', '', N'', N'', '', N'', '<b>x</b>', 0x, 0x, 0x, \
     '00000000-0000-0000-0000-000000000000')";

fn every_type_expected() -> Vec<Vec<Option<String>>> {
    let row = |values: &[&str]| values.iter().map(|v| Some((*v).to_owned())).collect();
    let mut null_row = vec![None; EVERY_TYPE.len()];
    null_row[0] = Some("2".to_owned());
    vec![
        row(&[
            "1",
            "1",
            "255",
            "-32768",
            "-2147483648",
            "9223372036854775807",
            "-0.5000",
            "12345678901234567890123456789012345678",
            "-922337203685477.5808",
            "214748.3647",
            "3ff8000000000000",
            // real 0.1 is binary32 0x3DCCCCCD; as float that is 0x3FB99999A0000000.
            "3fb99999a0000000",
            "2024-01-02",
            "03:04:05.123457",
            "2024-01-02 03:04:05.003000",
            "2024-01-02 03:05:00.000000",
            "2024-01-02 03:04:05.123457",
            "2024-01-02 01:04:05.500000+00:00",
            "ab   ",
            "Zoë €",
            "é   ",
            "Zoë 😀",
            "long text",
            "ntext ☃",
            "<a>1</a>",
            "01020000",
            "abcd",
            "00ff",
            "6f9619ff-8b86-d011-b42d-00c04fc964ff",
        ]),
        null_row,
        row(&[
            "3",
            "0",
            "0",
            "0",
            "0",
            "0",
            "0.0700",
            "-1",
            "0.0000",
            "-1.5000",
            "0000000000000000",
            "0000000000000000",
            "0001-01-01",
            "23:59:59.999999",
            "1753-01-01 00:00:00.007000",
            "2079-06-06 23:59:00.000000",
            "9999-12-31 23:59:59.999999",
            "2023-12-31 10:30:00.000000+00:00",
            "     ",
            "",
            "    ",
            "",
            "",
            "",
            "<b>x</b>",
            "00000000",
            "",
            "",
            "00000000-0000-0000-0000-000000000000",
        ]),
    ]
}

async fn with_every_type() -> (Target, SqlClient) {
    let target = Target::new().await;
    let mut client = target.connect().await;
    fresh_database(&mut client).await;
    let columns: Vec<String> = EVERY_TYPE
        .iter()
        .map(|(name, declared, _)| format!("{name} {declared}"))
        .collect();
    run(
        &mut client,
        &format!("CREATE TABLE dbo.every_type ({})", columns.join(", ")),
    )
    .await;
    run(&mut client, EVERY_TYPE_ROWS).await;
    (target, client)
}

#[tokio::test]
async fn canonical_texts_of_every_type_are_sql_servers() {
    let (_target, mut client) = with_every_type().await;
    let select: Vec<String> = EVERY_TYPE
        .iter()
        .map(|(name, _, kind)| format!("{} AS {name}", text_sql(*kind, name)))
        .collect();
    let got = texts(
        &mut client,
        &format!(
            "SELECT {} FROM dbo.every_type ORDER BY id",
            select.join(", ")
        ),
    )
    .await;
    let expected = every_type_expected();
    assert_eq!(got.len(), expected.len());
    for (got_row, expected_row) in got.iter().zip(&expected) {
        for ((name, _, _), (got, expected)) in
            EVERY_TYPE.iter().zip(got_row.iter().zip(expected_row))
        {
            assert_eq!(got, expected, "T({name}) of row {:?}", expected_row[0]);
        }
    }
}

#[tokio::test]
async fn utf8_bytes_and_byte_lengths_follow_the_collation() {
    let (_target, mut client) = with_every_type().await;
    let rows = client
        .simple_query(format!(
            "SELECT {u_nvarchar}, DATALENGTH({u_nvarchar}), {u_varchar}, \
             CAST(CAST(c_nvarchar AS varchar(max)) AS varbinary(max)), \
             DATALENGTH(CAST(c_nvarchar AS varchar(max))), DATALENGTH(c_nvarchar), \
             CAST(c_varchar AS varbinary(max)), {u_nchar}, DATALENGTH(c_char) \
             FROM dbo.every_type WHERE id = 1",
            u_nvarchar = utf8_sql(Kind::Text, "c_nvarchar"),
            u_varchar = utf8_sql(Kind::Text, "c_varchar"),
            u_nchar = utf8_sql(Kind::Text, "c_nchar"),
        ))
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let row = &rows[0];
    // N'Zoë 😀' in UTF-8 under the _UTF8 collation.
    assert_eq!(
        row.get::<&[u8], _>(0).unwrap(),
        b"Zo\xc3\xab \xf0\x9f\x98\x80"
    );
    assert_eq!(row.get::<i64, _>(1), Some(9));
    // varchar 'Zoë €' (code page 1252) re-encoded as UTF-8.
    assert_eq!(row.get::<&[u8], _>(2).unwrap(), b"Zo\xc3\xab \xe2\x82\xac");
    // Without a UTF-8 collation varchar is code page 1252: the emoji's two code units are '??'.
    assert_eq!(row.get::<&[u8], _>(3).unwrap(), b"Zo\xeb ??");
    assert_eq!(row.get::<i64, _>(4), Some(6));
    // nvarchar is UTF-16: six code units.
    assert_eq!(row.get::<i32, _>(5), Some(12));
    assert_eq!(row.get::<&[u8], _>(6).unwrap(), b"Zo\xeb \x80");
    // nchar(4) keeps its padding.
    assert_eq!(row.get::<&[u8], _>(7).unwrap(), b"\xc3\xa9   ");
    assert_eq!(row.get::<i32, _>(8), Some(5));
}

#[tokio::test]
async fn row_hashes_equal_sha256_of_the_encoding_built_here() {
    let (_target, mut client) = with_every_type().await;
    let columns: Vec<(&str, Kind)> = EVERY_TYPE.iter().map(|(n, _, k)| (*n, *k)).collect();
    let rows = client
        .simple_query(format!(
            "SELECT HASHBYTES('SHA2_256', {row}), {row} FROM dbo.every_type ORDER BY id",
            row = row_sql(&columns)
        ))
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let expected = every_type_expected();
    assert_eq!(rows.len(), expected.len());
    for (row, texts) in rows.iter().zip(&expected) {
        let encoding = encode(texts);
        assert_eq!(row.get::<&[u8], _>(1).unwrap(), encoding.as_slice());
        assert_eq!(
            row.get::<&[u8], _>(0).unwrap(),
            Sha256::digest(&encoding).as_slice(),
            "row {:?}",
            texts[0]
        );
    }
}

const ITEMS: &[(&str, Kind)] = &[
    ("id", Kind::Integer),
    ("name", Kind::Text),
    ("amount", Kind::Decimal),
    ("at", Kind::DateTime2),
    ("flag", Kind::Bit),
    ("qty", Kind::Integer),
    ("ratio", Kind::Float),
    ("token", Kind::Uuid),
];

/// A generated row of `dbo.items`: its INSERT values and the canonical texts of its columns.
fn item(i: i64) -> (String, Vec<Option<String>>) {
    let name = (i % 7 != 0).then(|| format!("name-{i} Zoë 😀"));
    let cents = i * 125 - 10_000;
    let amount = (i % 11 != 0).then(|| {
        let sign = if cents < 0 { "-" } else { "" };
        format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
    });
    let at = format!(
        "2024-01-{:02} {:02}:{:02}:{:02}.{:03}",
        1 + i % 28,
        i % 24,
        i % 60,
        (i * 7) % 60,
        i % 1000
    );
    let qty = i * 1_000_003 - 500_000_000;
    let ratio = i as f64 / 8.0 - 3.0;
    let token = format!("{:08X}-0000-4000-8000-{:012X}", i * 7919, i);
    let values = format!(
        "({i}, {}, {}, '{at}', {}, {qty}, {ratio:e}, '{token}')",
        name.as_ref()
            .map_or("NULL".to_owned(), |n| format!("N'{n}'")),
        amount.clone().unwrap_or_else(|| "NULL".to_owned()),
        i % 2,
    );
    let texts = vec![
        Some(i.to_string()),
        name,
        amount,
        Some(format!("{at}000")),
        Some((i % 2).to_string()),
        Some(qty.to_string()),
        Some(if ratio == 0.0 {
            "0000000000000000".to_owned()
        } else {
            format!("{:016x}", ratio.to_bits())
        }),
        Some(token.to_lowercase()),
    ];
    (values, texts)
}

const ITEM_COUNT: i64 = 600;
const BUCKETS: u32 = 64;

async fn with_items() -> (Target, SqlClient, Vec<Vec<Option<String>>>) {
    let target = Target::new().await;
    let mut client = target.connect().await;
    fresh_database(&mut client).await;
    run(
        &mut client,
        "CREATE TABLE dbo.items (id int NOT NULL PRIMARY KEY, name nvarchar(40) NULL, \
         amount decimal(12,2) NULL, at datetime2(3) NOT NULL, flag bit NOT NULL, qty bigint NOT NULL, \
         ratio float NOT NULL, token uniqueidentifier NOT NULL)",
    )
    .await;
    let mut all = Vec::new();
    let mut values = Vec::new();
    for i in 1..=ITEM_COUNT {
        let (row, texts) = item(i);
        values.push(row);
        all.push(texts);
    }
    for chunk in values.chunks(200) {
        run(
            &mut client,
            &format!("INSERT INTO dbo.items VALUES {}", chunk.join(", ")),
        )
        .await;
    }
    (target, client, all)
}

/// (rows, checksum) per bucket, from the canonical texts.
fn expected_buckets(rows: &[Vec<Option<String>>]) -> BTreeMap<i64, (i64, i128)> {
    let mut buckets = BTreeMap::new();
    for texts in rows {
        let entry = buckets
            .entry(bucket_of(&texts[..1], BUCKETS))
            .or_insert((0, 0));
        entry.0 += 1;
        entry.1 += part_of(texts);
    }
    buckets
}

fn bucket_rows(rows: &[tiberius::Row]) -> BTreeMap<i64, (i64, i128)> {
    rows.iter()
        .map(|row| {
            let sum = row.get::<Numeric, _>(2).unwrap();
            assert_eq!(sum.scale(), 0);
            (
                row.get::<i64, _>(0).unwrap(),
                (row.get::<i64, _>(1).unwrap(), sum.value()),
            )
        })
        .collect()
}

#[tokio::test]
async fn bucket_counts_and_checksums_match_the_rows() {
    let (_target, mut client, all) = with_items().await;
    let keys = &ITEMS[..1];
    let rows = client
        .simple_query(buckets_sql("[dbo].[items]", keys, ITEMS, BUCKETS, ""))
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let got = bucket_rows(&rows);
    assert_eq!(got, expected_buckets(&all));
    assert!(got.len() > 50, "600 rows should fill most of 64 buckets");

    // With a WHERE, sent through sp_executesql with a parameter.
    let rows = client
        .query(
            buckets_sql("[dbo].[items]", keys, ITEMS, BUCKETS, " WHERE id > @P1"),
            &[&250i32],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(bucket_rows(&rows), expected_buckets(&all[250..]));

    let count = client
        .simple_query("SELECT COUNT_BIG(*) FROM [dbo].[items]")
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count.get::<i64, _>(0), Some(ITEM_COUNT));

    // An empty table has no buckets at all.
    run(&mut client, "DELETE FROM dbo.items").await;
    let rows = client
        .simple_query(buckets_sql("[dbo].[items]", keys, ITEMS, BUCKETS, ""))
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert!(rows.is_empty());
}

#[tokio::test]
async fn drill_down_returns_exactly_the_rows_of_the_listed_buckets() {
    let (_target, mut client, all) = with_items().await;
    let wanted: Vec<i64> = expected_buckets(&all)
        .keys()
        .copied()
        .step_by(9)
        .take(3)
        .collect();
    let list: Vec<String> = wanted.iter().map(i64::to_string).collect();
    let select: Vec<String> = ITEMS
        .iter()
        .map(|(name, kind)| format!("{} AS {name}", text_sql(*kind, name)))
        .collect();
    let sql = format!(
        "SELECT {} FROM [dbo].[items] WHERE {} IN ({})",
        select.join(", "),
        bucket_sql(&ITEMS[..1], BUCKETS),
        list.join(", ")
    );
    let mut expected: Vec<Vec<Option<String>>> = all
        .iter()
        .filter(|texts| wanted.contains(&bucket_of(&texts[..1], BUCKETS)))
        .cloned()
        .collect();
    expected.sort();
    let mut got = texts(&mut client, &sql).await;
    got.sort();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);

    // The same through sp_executesql, the buckets as parameters.
    let parameterised = format!(
        "SELECT {} FROM [dbo].[items] WHERE {} IN (@P1, @P2, @P3)",
        select.join(", "),
        bucket_sql(&ITEMS[..1], BUCKETS),
    );
    let rows = client
        .query(parameterised, &[&wanted[0], &wanted[1], &wanted[2]])
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let mut got: Vec<Vec<Option<String>>> = rows
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| row.get::<&str, _>(i).map(str::to_owned))
                .collect()
        })
        .collect();
    got.sort();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn grouping_aggregates_and_case_follow_sql_server() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    fresh_database(&mut client).await;
    run(
        &mut client,
        "CREATE TABLE dbo.sales (id int NOT NULL PRIMARY KEY, region varchar(10) NOT NULL, \
         units int NULL, price decimal(9,2) NULL); \
         INSERT INTO dbo.sales VALUES (1, 'North', 3, 1.50), (2, 'north', 4, 2.25), \
         (3, 'South', NULL, 10.00), (4, 'South', 7, NULL), (5, 'West', 2, 0.10)",
    )
    .await;
    // Case-insensitive collation: 'North' and 'north' are one group.
    let rows = client
        .simple_query(
            "SELECT LOWER(region) AS r, COUNT(*), COUNT(units), SUM(units), SUM(price), AVG(units), \
             MIN(price), MAX(region) FROM dbo.sales GROUP BY region ORDER BY r",
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let north = &rows[0];
    assert_eq!(north.get::<&str, _>(0), Some("north"));
    assert_eq!(north.get::<i32, _>(1), Some(2));
    assert_eq!(north.get::<i32, _>(2), Some(2));
    assert_eq!(north.get::<i32, _>(3), Some(7));
    assert_eq!(
        north.get::<rust_decimal::Decimal, _>(4),
        Some(rust_decimal::Decimal::new(375, 2))
    );
    // AVG of int is an int, truncated.
    assert_eq!(north.get::<i32, _>(5), Some(3));
    let south = &rows[1];
    assert_eq!(south.get::<i32, _>(2), Some(1));
    assert_eq!(
        south.get::<rust_decimal::Decimal, _>(6),
        Some(rust_decimal::Decimal::new(1000, 2))
    );
    assert_eq!(south.get::<&str, _>(7), Some("South"));

    // HAVING, ORDER BY position, searched and simple CASE with the type of higher precedence.
    let rows = client
        .simple_query(
            "SELECT CASE WHEN SUM(units) > 5 THEN 'many' ELSE 'few' END, COUNT_BIG(*), \
             CASE COUNT(*) WHEN 2 THEN 1 ELSE 2.5 END \
             FROM dbo.sales GROUP BY region HAVING COUNT(*) = 2 ORDER BY 1 DESC",
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<&str, _>(0), Some("many"));
    assert_eq!(
        rows[0].get::<rust_decimal::Decimal, _>(2),
        Some(rust_decimal::Decimal::new(10, 1))
    );

    // No GROUP BY: one row even over no rows; SUM of nothing is NULL.
    let rows = client
        .simple_query(
            "SELECT COUNT_BIG(*), SUM(units), COUNT(DISTINCT region) FROM dbo.sales WHERE id > 100",
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<i64, _>(0), Some(0));
    assert_eq!(rows[0].get::<i32, _>(1), None);
    let rows = client
        .simple_query("SELECT COUNT(DISTINCT region), COUNT(DISTINCT region COLLATE Latin1_General_BIN2) FROM dbo.sales")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(rows[0].get::<i32, _>(0), Some(3));
    assert_eq!(rows[0].get::<i32, _>(1), Some(4));
    let rows = client
        .simple_query("SELECT DISTINCT region FROM dbo.sales WHERE region COLLATE Latin1_General_CS_AS <> 'north' ORDER BY region")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let regions: Vec<&str> = rows.iter().filter_map(|r| r.get::<&str, _>(0)).collect();
    assert_eq!(regions, ["North", "South", "West"]);

    // SUBSTRING of text and binary, binary concatenation, int to binary(4).
    let rows = client
        .simple_query(
            "SELECT SUBSTRING('abcdef', 0, 3), SUBSTRING(0x0102030405, 2, 3), 0x01 + CAST(258 AS binary(4)) + 0x, \
             CAST(0xFFFFFFFF AS bigint), CAST(0xFFFFFFFFFFFFFFFE AS bigint), LEN(N'ab  '), DATALENGTH(N'ab  ')",
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let row = &rows[0];
    assert_eq!(row.get::<&str, _>(0), Some("ab"));
    assert_eq!(row.get::<&[u8], _>(1), Some(&[2u8, 3, 4][..]));
    assert_eq!(row.get::<&[u8], _>(2), Some(&[1u8, 0, 0, 1, 2][..]));
    assert_eq!(row.get::<i64, _>(3), Some(4_294_967_295));
    assert_eq!(row.get::<i64, _>(4), Some(-2));
    assert_eq!(row.get::<i32, _>(5), Some(2));
    assert_eq!(row.get::<i32, _>(6), Some(8));
}

#[tokio::test]
async fn expression_errors_carry_sql_servers_numbers() {
    let target = Target::new().await;
    let mut client = target.connect().await;
    fresh_database(&mut client).await;
    run(
        &mut client,
        "CREATE TABLE dbo.t (id int NOT NULL PRIMARY KEY, name varchar(10) NULL, at date NULL); \
         INSERT INTO dbo.t VALUES (1, 'a', '2024-01-02')",
    )
    .await;
    let cases: &[(&str, u32)] = &[
        ("SELECT name COLLATE Latin1_General_CI_XX FROM dbo.t", 448),
        (
            "SELECT 1 FROM dbo.t WHERE name COLLATE Latin1_General_CS_AS = name COLLATE Latin1_General_BIN2",
            468,
        ),
        ("SELECT CAST(at AS int) FROM dbo.t", 529),
        ("SELECT SUBSTRING(name, 1, -1) FROM dbo.t", 537),
        ("SELECT name, COUNT(*) FROM dbo.t", 8120),
        ("SELECT id FROM dbo.t GROUP BY name", 8120),
        ("SELECT CAST(name AS int) FROM dbo.t", 245),
        ("SELECT 1 FROM dbo.t WHERE at = 5", 206),
        ("SELECT 1 FROM dbo.t WHERE id", 4145),
        ("SELECT ISNULL(name) FROM dbo.t", 174),
        ("SELECT SUM(name) FROM dbo.t", 8117),
        ("SELECT 1 FROM dbo.t WHERE COUNT(*) > 0", 147),
        (
            "SELECT SWITCHOFFSET(CAST(at AS datetimeoffset), '+25:00') FROM dbo.t",
            9812,
        ),
        ("SELECT CAST(1 AS tinyint) + CAST(255 AS tinyint)", 220),
        ("SELECT name FROM dbo.t ORDER BY 2", 108),
    ];
    for (sql, number) in cases {
        assert_eq!(error_number(&mut client, sql).await, Some(*number), "{sql}");
    }
    // A column in a collation that behaves like the default is fine everywhere; the
    // simulator refuses (rather than ignores) one that stores text differently.
    run(
        &mut client,
        "CREATE TABLE dbo.c1 (a varchar(10) COLLATE Latin1_General_CI_AS NULL)",
    )
    .await;
    if matches!(target, Target::Simulator(_)) {
        assert_eq!(
            error_number(
                &mut client,
                "CREATE TABLE dbo.c2 (a varchar(10) COLLATE Latin1_General_100_BIN2_UTF8 NULL)"
            )
            .await,
            Some(50000)
        );
    }
}

//! The `shop` sample database's columns (compose/mssql/init.sql, in its column order) and
//! values valid for each: decimals within their precision, dates within their type's range,
//! datetimeoffsets with offsets, text with quotes and non-ASCII characters where the type
//! holds them. `row_version` (rowversion) is set by the server and never written.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
use rust_decimal::Decimal;

use crate::mix::Operation;
use crate::model::{Change, Key, Model, Table};
use crate::rng::Rng;
use crate::sql::{self, Literal};

/// A column name and its value.
pub type Column = (&'static str, Literal);

/// The T-SQL statement that makes `change`; `model` supplies keys for referencing columns.
pub fn statement(change: &Change, model: &Model, rng: &mut Rng) -> String {
    let table = change.table;
    let key = key_columns(table, change.key);
    match (change.operation, change.new_key) {
        (Operation::Insert, _) => sql::insert(table.name(), &row(table, change.key, model, rng)),
        (Operation::Delete, _) => sql::delete(table.name(), &key),
        (Operation::KeyUpdate, Some(new_key)) => {
            // Only the key columns that change are set: an order line moves to a new line_no.
            let moved: Vec<Column> = key_columns(table, new_key)
                .into_iter()
                .filter(|column| !key.contains(column))
                .collect();
            sql::update(table.name(), &moved, &key)
        }
        (Operation::Update | Operation::KeyUpdate, _) => {
            sql::update(table.name(), &update_set(table, model, rng), &key)
        }
    }
}

/// The key columns of `key` in `table`.
pub fn key_columns(table: Table, key: Key) -> Vec<Column> {
    match key {
        Key::Id(id) => vec![(id_column(table), Literal::Int(id))],
        Key::Line { order_id, line_no } => vec![
            ("order_id", Literal::Int(i64::from(order_id))),
            ("line_no", Literal::Int(i64::from(line_no))),
        ],
    }
}

/// The one-column key of `table` (`order_lines` is keyed by `order_id, line_no`).
pub fn id_column(table: Table) -> &'static str {
    match table {
        Table::Customers => "customer_id",
        Table::Products => "product_id",
        Table::Orders | Table::OrderLines => "order_id",
    }
}

/// Every column of a new row of `table` with key `key`.
pub fn row(table: Table, key: Key, model: &Model, rng: &mut Rng) -> Vec<Column> {
    let mut columns = key_columns(table, key);
    columns.extend(match table {
        Table::Customers => customer(rng),
        Table::Products => product(rng),
        Table::Orders => order(model, rng),
        Table::OrderLines => order_line(model, rng),
    });
    columns
}

/// New values for a few non-key columns of `table` (at least one).
pub fn update_set(table: Table, model: &Model, rng: &mut Rng) -> Vec<Column> {
    let mut all = match table {
        Table::Customers => customer(rng),
        Table::Products => product(rng),
        Table::Orders => order(model, rng),
        Table::OrderLines => order_line(model, rng),
    };
    let wanted = 1 + rng.below(3) as usize;
    let mut chosen = Vec::with_capacity(wanted);
    while chosen.len() < wanted && !all.is_empty() {
        let index = rng.below(all.len() as u64) as usize;
        chosen.push(all.swap_remove(index));
    }
    chosen
}

fn customer(rng: &mut Rng) -> Vec<Column> {
    vec![
        ("external_id", guid(rng)),
        ("name", Literal::Unicode(unicode_text(rng, 1, 100))),
        ("email", nullable(rng, |r| Literal::Ansi(email(r)))),
        (
            "country_code",
            nullable(rng, |r| ansi_from(r, &["GB", "SE", "CN", "DE", "US"])),
        ),
        ("phone", nullable(rng, |r| Literal::Unicode(phone(r)))),
        ("is_active", Literal::Int(rng.between(0, 1))),
        (
            "loyalty_tier",
            nullable(rng, |r| Literal::Int(r.between(0, 255))),
        ),
        (
            "birth_date",
            nullable(rng, |r| Literal::Date(date(r, 1900, 2010))),
        ),
        (
            "signed_up_at",
            Literal::DateTimeOffset(datetime_offset(rng), 7),
        ),
        (
            "notes",
            nullable(rng, |r| Literal::Unicode(unicode_text(r, 0, 400))),
        ),
        (
            "preferences",
            nullable(rng, |r| Literal::Unicode(preferences(r))),
        ),
        ("avatar", nullable(rng, |r| binary(r, 1, 64))),
        // smallmoney: -214,748.3648 to 214,748.3647, four decimals.
        (
            "credit_limit",
            nullable(rng, |r| decimal(r, 0, 2_147_483_647, 4)),
        ),
    ]
}

fn product(rng: &mut Rng) -> Vec<Column> {
    vec![
        (
            "sku",
            Literal::Ansi(format!("SKU-{:06}", rng.below(1_000_000))),
        ),
        ("name", Literal::Unicode(unicode_text(rng, 1, 200))),
        (
            "description",
            nullable(rng, |r| Literal::Ansi(ansi_text(r, 0, 300))),
        ),
        ("list_price", decimal(rng, 0, 99_999_999, 4)),
        // real: binary fractions so the stored value is the written one.
        (
            "weight_kg",
            nullable(rng, |r| Literal::Float(r.below(4096) as f64 / 64.0)),
        ),
        (
            "rating",
            nullable(rng, |r| Literal::Float(r.below(501) as f64 / 100.0)),
        ),
        ("stock_level", Literal::Int(rng.between(-100, 32_767))),
        // numeric(9,2): seven digits before the point.
        (
            "width_cm",
            nullable(rng, |r| decimal(r, -99_999, 999_999_999, 2)),
        ),
        ("barcode", nullable(rng, |r| Literal::Binary(r.bytes(8)))),
        ("thumbnail", nullable(rng, |r| binary(r, 1, 2048))),
        // datetime: 1/300 s ticks, so whole hundredths are exact.
        (
            "created_at",
            Literal::DateTime(datetime(rng, 1753, 9999, 10_000_000), 3),
        ),
        // smalldatetime: whole minutes, 1900-01-01 to 2079-06-06.
        (
            "available_from",
            nullable(rng, |r| Literal::DateTime(minute(r), 0)),
        ),
    ]
}

fn order(model: &Model, rng: &mut Rng) -> Vec<Column> {
    let customer_id = model.existing_id(Table::Customers, rng).unwrap_or(1);
    vec![
        ("customer_id", Literal::Int(customer_id)),
        (
            "status",
            ansi_from(rng, &["new", "paid", "shipped", "delivered", "cancelled"]),
        ),
        (
            "ordered_at",
            Literal::DateTime(datetime(rng, 1, 9999, 100), 7),
        ),
        (
            "delivery_slot",
            nullable(rng, |r| Literal::Time(time(r, 1_000_000), 3)),
        ),
        // decimal(12,2): ten digits before the point.
        (
            "total_amount",
            decimal(rng, -9_999_999_999, 999_999_999_999, 2),
        ),
        (
            "currency",
            ansi_from(rng, &["EUR", "SEK", "GBP", "USD", "CNY"]),
        ),
        (
            "notes",
            nullable(rng, |r| Literal::Unicode(unicode_text(r, 0, 600))),
        ),
        ("tracking_token", nullable(rng, |r| binary(r, 1, 16))),
    ]
}

fn order_line(model: &Model, rng: &mut Rng) -> Vec<Column> {
    let product_id = model.existing_id(Table::Products, rng).unwrap_or(1001);
    vec![
        ("product_id", Literal::Int(product_id)),
        ("quantity", Literal::Int(rng.between(1, 1000))),
        // money: four decimals.
        ("unit_price", decimal(rng, 0, 100_000_000, 4)),
        // numeric(5,4): 0.0000 to 9.9999; a rate stays below 1.
        ("discount_rate", decimal(rng, 0, 9_999, 4)),
        // decimal(14,2): twelve digits before the point.
        ("line_total", decimal(rng, 0, 99_999_999_999_999, 2)),
    ]
}

/// NULL one time in five, else `value`.
fn nullable(rng: &mut Rng, value: impl FnOnce(&mut Rng) -> Literal) -> Literal {
    if rng.chance(0.2) {
        Literal::Null
    } else {
        value(rng)
    }
}

fn decimal(rng: &mut Rng, low: i64, high: i64, scale: u32) -> Literal {
    Literal::Decimal(Decimal::new(rng.between(low, high), scale))
}

fn guid(rng: &mut Rng) -> Literal {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&rng.bytes(16));
    Literal::Guid(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

fn binary(rng: &mut Rng, min: usize, max: usize) -> Literal {
    let length = rng.between(min as i64, max as i64) as usize;
    Literal::Binary(rng.bytes(length))
}

fn ansi_from(rng: &mut Rng, choices: &[&str]) -> Literal {
    Literal::Ansi(rng.pick(choices).copied().unwrap_or_default().to_owned())
}

const ANSI_WORDS: [&str; 8] = [
    "cable",
    "O'Brien",
    "it's",
    "keyboard",
    "100%",
    "a;b",
    "--not a comment",
    "x\ty",
];

const UNICODE_WORDS: [&str; 10] = [
    "Zoë",
    "Ångström",
    "李雷",
    "naïve",
    "O'Neil",
    "''",
    "café",
    "Łódź",
    "🙂",
    "plain",
];

/// Words joined by spaces, cut to at most `max` characters, at least `min`.
fn words(rng: &mut Rng, pool: &[&str], min: usize, max: usize) -> String {
    let target = rng.between(min as i64, max as i64) as usize;
    let mut text = String::new();
    while text.chars().count() < target {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(rng.pick(pool).copied().unwrap_or("x"));
    }
    text.chars().take(max.max(min)).collect()
}

fn ansi_text(rng: &mut Rng, min: usize, max: usize) -> String {
    words(rng, &ANSI_WORDS, min, max)
}

/// nvarchar text; its length is counted in UTF-16 code units as SQL Server counts it, so an
/// emoji (two units) never pushes a value past its column's length.
fn unicode_text(rng: &mut Rng, min: usize, max: usize) -> String {
    let text = words(rng, &UNICODE_WORDS, min, max);
    let mut units = 0;
    text.chars()
        .take_while(|c| {
            units += c.len_utf16();
            units <= max
        })
        .collect()
}

fn email(rng: &mut Rng) -> String {
    format!("user{}@example.com", rng.below(1_000_000))
}

/// nchar(16): at most 16 characters (the server pads).
fn phone(rng: &mut Rng) -> String {
    format!("+46 8 {:03} {:04}", rng.below(1000), rng.below(10_000))
}

/// An xml document whose text needs escaping in XML and quoting in T-SQL.
fn preferences(rng: &mut Rng) -> String {
    let tag = words(rng, &UNICODE_WORDS, 1, 30)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<preferences><newsletter>{}</newsletter><tag lang=\"en\">{tag}</tag></preferences>",
        rng.chance(0.5)
    )
}

fn date(rng: &mut Rng, first_year: i32, last_year: i32) -> NaiveDate {
    let start = NaiveDate::from_ymd_opt(first_year, 1, 1).unwrap_or_default();
    let end = NaiveDate::from_ymd_opt(last_year, 12, 31).unwrap_or_default();
    let days = (end - start).num_days();
    start + Duration::days(rng.between(0, days))
}

/// A time of day on a grid of `step_ns` nanoseconds.
fn time(rng: &mut Rng, step_ns: u64) -> NaiveTime {
    let steps = 86_400_000_000_000 / step_ns;
    let ns = rng.below(steps) * step_ns;
    NaiveTime::from_num_seconds_from_midnight_opt(
        (ns / 1_000_000_000) as u32,
        (ns % 1_000_000_000) as u32,
    )
    .unwrap_or_default()
}

fn datetime(rng: &mut Rng, first_year: i32, last_year: i32, step_ns: u64) -> NaiveDateTime {
    date(rng, first_year, last_year).and_time(time(rng, step_ns))
}

fn minute(rng: &mut Rng) -> NaiveDateTime {
    let day = date(rng, 1900, 2078);
    day.and_time(time(rng, 60_000_000_000))
}

/// A datetimeoffset(7) with an offset from -14:00 to +14:00, half and quarter hours included;
/// years kept clear of 0001 and 9999 so the UTC value stays in range whatever the offset.
fn datetime_offset(rng: &mut Rng) -> DateTime<FixedOffset> {
    const OFFSETS_MIN: [i32; 9] = [-840, -480, -300, 0, 60, 330, 345, 540, 840];
    let minutes = rng.pick(&OFFSETS_MIN).copied().unwrap_or(0);
    let local = datetime(rng, 2, 9998, 100);
    let utc = local.and_utc().fixed_offset();
    let Some(offset) = FixedOffset::east_opt(minutes * 60) else {
        return utc;
    };
    local.and_local_timezone(offset).single().unwrap_or(utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;

    fn model() -> Model {
        Model::from_keys([
            (Table::Customers, Key::Id(1)),
            (Table::Products, Key::Id(1001)),
            (Table::Orders, Key::Id(5001)),
        ])
    }

    #[test]
    fn rows_follow_init_sql_column_lists() {
        let mut rng = Rng::new(1);
        let names = |table, key| -> Vec<&str> {
            row(table, key, &model(), &mut Rng::new(1))
                .iter()
                .map(|c| c.0)
                .collect()
        };
        assert_eq!(
            names(Table::Orders, Key::Id(9)),
            [
                "order_id",
                "customer_id",
                "status",
                "ordered_at",
                "delivery_slot",
                "total_amount",
                "currency",
                "notes",
                "tracking_token"
            ]
        );
        assert_eq!(
            names(
                Table::OrderLines,
                Key::Line {
                    order_id: 9,
                    line_no: 1
                }
            ),
            [
                "order_id",
                "line_no",
                "product_id",
                "quantity",
                "unit_price",
                "discount_rate",
                "line_total"
            ]
        );
        assert_eq!(
            names(Table::Customers, Key::Id(9)).len(),
            14,
            "all but row_version"
        );
        assert_eq!(names(Table::Products, Key::Id(9)).len(), 13);
        let _ = rng.next_u64();
    }

    #[test]
    fn values_stay_inside_their_column_types() {
        let mut rng = Rng::new(77);
        let model = model();
        for _ in 0..500 {
            for table in Table::ALL {
                let key = match table {
                    Table::OrderLines => Key::Line {
                        order_id: 5001,
                        line_no: 1,
                    },
                    _ => Key::Id(1),
                };
                for (name, value) in row(table, key, &model, &mut rng) {
                    check(table, name, &value);
                }
            }
        }
    }

    fn check(table: Table, name: &str, value: &Literal) {
        let max_digits = |d: &Decimal, precision: u32, scale: u32| {
            assert_eq!(d.scale(), scale, "{name}");
            let integer = d.trunc().abs().to_string().trim_start_matches('0').len() as u32;
            assert!(integer <= precision - scale, "{name} = {d}");
        };
        match (table, name, value) {
            (_, _, Literal::Null) => {}
            (Table::Orders, "total_amount", Literal::Decimal(d)) => max_digits(d, 12, 2),
            (Table::OrderLines, "line_total", Literal::Decimal(d)) => max_digits(d, 14, 2),
            (Table::OrderLines, "discount_rate", Literal::Decimal(d)) => max_digits(d, 5, 4),
            (Table::Products, "width_cm", Literal::Decimal(d)) => max_digits(d, 9, 2),
            (Table::Customers, "credit_limit", Literal::Decimal(d)) => {
                assert!(d.abs() <= Decimal::new(2_147_483_647, 4), "{d}")
            }
            (_, "name", Literal::Unicode(s)) => {
                let limit = if table == Table::Customers { 100 } else { 200 };
                assert!(s.encode_utf16().count() <= limit && !s.is_empty(), "{s}");
            }
            (_, "phone", Literal::Unicode(s)) => assert!(s.chars().count() <= 16, "{s}"),
            (_, "tracking_token", Literal::Binary(b)) => assert!((1..=16).contains(&b.len())),
            (_, "barcode", Literal::Binary(b)) => assert_eq!(b.len(), 8),
            (_, "description" | "sku" | "email" | "status", Literal::Ansi(s)) => {
                assert!(s.is_ascii(), "{s}")
            }
            (_, "available_from", Literal::DateTime(dt, 0)) => {
                assert_eq!(chrono::Timelike::second(dt), 0);
                assert!(dt.date() < NaiveDate::from_ymd_opt(2079, 6, 6).unwrap_or_default());
            }
            (_, "signed_up_at", Literal::DateTimeOffset(dt, 7)) => {
                assert!(dt.offset().local_minus_utc().abs() <= 14 * 3600)
            }
            (_, "preferences", Literal::Unicode(s)) => assert!(s.starts_with("<preferences>")),
            _ => {}
        }
    }

    #[test]
    fn a_key_update_sets_only_the_changing_key_column() {
        let mut rng = Rng::new(3);
        let model = model();
        let change = Change {
            table: Table::OrderLines,
            operation: Operation::KeyUpdate,
            key: Key::Line {
                order_id: 5001,
                line_no: 2,
            },
            new_key: Some(Key::Line {
                order_id: 5001,
                line_no: 3,
            }),
        };
        assert_eq!(
            statement(&change, &model, &mut rng),
            "UPDATE dbo.order_lines SET line_no = 3 WHERE order_id = 5001 AND line_no = 2;"
        );
        let change = Change {
            table: Table::Orders,
            operation: Operation::KeyUpdate,
            key: Key::Id(5001),
            new_key: Some(Key::Id(6000)),
        };
        assert_eq!(
            statement(&change, &model, &mut rng),
            "UPDATE dbo.orders SET order_id = 6000 WHERE order_id = 5001;"
        );
    }

    #[test]
    fn updates_set_one_to_three_non_key_columns() {
        let mut rng = Rng::new(4);
        for _ in 0..100 {
            let set = update_set(Table::Orders, &model(), &mut rng);
            assert!((1..=3).contains(&set.len()));
            assert!(set.iter().all(|(name, _)| *name != "order_id"));
        }
    }
}

//! End-to-end tests of compile and evaluate, through the public interface where it suffices
//! and through the evaluator's three-valued result where FALSE and NULL must be told apart.

#![allow(clippy::unwrap_used)]

use cdc_model::calendar::days_from_civil;
use cdc_model::proto::value::Kind;
use cdc_model::proto::{self, ColumnSchema, ColumnType, LogicalType, Value};
use cdc_model::value::{null, of};
use proptest::prelude::*;

use super::{ExprError, Filter, check_syntax};

fn column(name: &str, logical: LogicalType) -> ColumnSchema {
    ColumnSchema {
        name: name.to_owned(),
        r#type: Some(ColumnType {
            logical: logical as i32,
            ..ColumnType::default()
        }),
        nullable: true,
    }
}

fn schema() -> Vec<ColumnSchema> {
    use LogicalType as L;
    [
        ("id", L::Int64),
        ("amount", L::Decimal),
        ("ratio", L::Float64),
        ("status", L::Text),
        ("deleted", L::Bool),
        ("p", L::Bool),
        ("q", L::Bool),
        ("u", L::Uuid),
        ("d", L::Date),
        ("t", L::Time),
        ("ts", L::Timestamp),
        ("tz", L::Timestamptz),
        ("payload", L::Bytes),
        ("Order Total", L::Decimal),
        ("CamelCase", L::Int32),
        ("doc", L::Json),
        ("small", L::Int16),
        ("d2", L::Date),
    ]
    .into_iter()
    .map(|(name, logical)| column(name, logical))
    .collect()
}

/// A row of the test schema: NULL everywhere but in the named columns.
fn row(values: &[(&str, Value)]) -> Vec<Value> {
    let schema = schema();
    let mut row = vec![null(); schema.len()];
    for (name, value) in values {
        let index = schema.iter().position(|c| c.name == *name).unwrap();
        row[index] = value.clone();
    }
    row
}

fn int(value: i64) -> Value {
    of(Kind::Int64(value))
}

fn dec(text: &str) -> Value {
    cdc_model::value::decimal(text.parse().unwrap())
}

fn float(value: f64) -> Value {
    of(Kind::Float64(value))
}

fn text(value: &str) -> Value {
    of(Kind::Text(value.to_owned()))
}

fn boolean(value: bool) -> Value {
    of(Kind::Bool(value))
}

fn uuid(hex: &str) -> Value {
    let digits: String = hex.chars().filter(|c| *c != '-').collect();
    let value = u128::from_str_radix(&digits, 16).unwrap();
    of(Kind::Uuid(value.to_be_bytes().to_vec()))
}

fn date(year: i32, month: u32, day: u32) -> Value {
    of(Kind::Date(days_from_civil(year, month, day)))
}

fn time(hour: i64, minute: i64, second: i64, nanos: i64) -> Value {
    of(Kind::TimeNanos(
        ((hour * 60 + minute) * 60 + second) * 1_000_000_000 + nanos,
    ))
}

fn seconds(year: i32, month: u32, day: u32, hour: i64, minute: i64) -> i64 {
    i64::from(days_from_civil(year, month, day)) * 86_400 + hour * 3600 + minute * 60
}

fn timestamp(seconds: i64, nanos: u32) -> Value {
    of(Kind::Timestamp(proto::Timestamp { seconds, nanos }))
}

fn timestamptz(utc_seconds: i64, offset_minutes: i32) -> Value {
    of(Kind::Timestamptz(proto::TimestampTz {
        utc_seconds,
        nanos: 0,
        offset_minutes,
    }))
}

/// TRUE, FALSE or None for NULL.
fn truth(expression: &str, row: &[Value]) -> Option<bool> {
    let filter = Filter::compile(expression, &schema()).unwrap();
    let result = filter.root.eval(row);
    assert_eq!(filter.matches(row), result == Some(true));
    result
}

/// The expression's value on a row of NULLs.
fn constant(expression: &str) -> Option<bool> {
    truth(expression, &row(&[]))
}

fn error(expression: &str) -> ExprError {
    Filter::compile(expression, &schema()).unwrap_err()
}

fn error_in(expression: &str, columns: &[ColumnSchema]) -> (usize, String) {
    let error = Filter::compile(expression, columns).unwrap_err();
    (error.position, error.message)
}

fn small_schema() -> Vec<ColumnSchema> {
    vec![
        column("id", LogicalType::Int64),
        column("amount", LogicalType::Decimal),
        column("status", LogicalType::Text),
    ]
}

const T: Option<bool> = Some(true);
const F: Option<bool> = Some(false);
const N: Option<bool> = None;

mod operators {
    use super::*;

    #[test]
    fn the_example_from_the_configuration() {
        let filter = Filter::compile(
            "amount >= 100 AND status IN ('open', 'paid') AND NOT deleted",
            &schema(),
        )
        .unwrap();
        let open = row(&[
            ("amount", dec("100.00")),
            ("status", text("open")),
            ("deleted", boolean(false)),
        ]);
        assert!(filter.matches(&open));
        let mut closed = open.clone();
        closed[3] = text("closed");
        assert!(!filter.matches(&closed));
        assert_eq!(filter.columns(), ["amount", "status", "deleted"]);
    }

    #[test]
    fn comparisons() {
        let r = row(&[("id", int(5))]);
        for (expression, expected) in [
            ("id = 5", T),
            ("id = 4", F),
            ("id != 4", T),
            ("id <> 5", F),
            ("id < 6", T),
            ("id < 5", F),
            ("id <= 5", T),
            ("id > 5", F),
            ("id > 4", T),
            ("id >= 5", T),
            ("id >= 6", F),
            ("5 = id", T),
        ] {
            assert_eq!(truth(expression, &r), expected, "{expression}");
        }
    }

    #[test]
    fn logical_precedence() {
        let r = row(&[
            ("p", boolean(true)),
            ("q", boolean(false)),
            ("deleted", boolean(false)),
        ]);
        // p OR (q AND deleted), not (p OR q) AND deleted.
        assert_eq!(truth("p OR q AND deleted", &r), T);
        assert_eq!(truth("(p OR q) AND deleted", &r), F);
        // (NOT q) AND deleted, not NOT (q AND deleted).
        assert_eq!(truth("NOT q AND deleted", &r), F);
        assert_eq!(truth("NOT (q AND deleted)", &r), T);
        assert_eq!(truth("NOT NOT p", &r), T);
        assert_eq!(truth("not P or Q", &r), F);
    }

    #[test]
    fn arithmetic_precedence_and_associativity() {
        for expression in [
            "1 + 2 * 3 = 7",
            "(1 + 2) * 3 = 9",
            "10 - 4 - 3 = 3",
            "12 / 4 / 3 = 1",
            "-2 * 3 = -6",
            "- -2 = 2",
            "2 - -2 = 4",
            "7 % 4 = 3",
            "1 + 7 % 4 * 2 = 7",
            "-7 % 3 = -1",
            "5.5 % 2 = 1.5",
        ] {
            assert_eq!(constant(expression), T, "{expression}");
        }
    }

    #[test]
    fn arithmetic_on_columns() {
        let r = row(&[
            ("id", int(7)),
            ("amount", dec("2.50")),
            ("ratio", float(0.5)),
        ]);
        assert_eq!(truth("id * amount = 17.5", &r), T);
        assert_eq!(truth("id / 2 = 3.5", &r), T);
        assert_eq!(truth("id + ratio = 7.5", &r), T);
        assert_eq!(truth("-amount < 0", &r), T);
        assert_eq!(truth("\"Order Total\" + 1 > 0", &r), N);
    }

    #[test]
    fn division_by_zero_is_null() {
        let r = row(&[("id", int(7)), ("ratio", float(0.0))]);
        assert_eq!(truth("id / 0 > 0", &r), N);
        assert_eq!(truth("id / 0 IS NULL", &r), T);
        assert_eq!(truth("id % 0.00 IS NULL", &r), T);
        assert_eq!(truth("1.5 / ratio IS NULL", &r), T);
        assert_eq!(truth("ratio / id = 0", &r), T);
    }

    #[test]
    fn is_null_on_every_type() {
        let full = row(&[
            ("id", int(1)),
            ("amount", dec("1")),
            ("status", text("x")),
            ("deleted", boolean(false)),
            ("u", uuid("00000000-0000-0000-0000-000000000001")),
            ("d", date(2024, 1, 1)),
            ("payload", of(Kind::Bytes(vec![]))),
            ("doc", of(Kind::Json("{}".into()))),
        ]);
        let empty = row(&[]);
        for name in [
            "id", "amount", "status", "deleted", "u", "d", "payload", "doc",
        ] {
            let is_null = format!("{name} IS NULL");
            let is_not_null = format!("{name} IS NOT NULL");
            assert_eq!(truth(&is_null, &full), F, "{name}");
            assert_eq!(truth(&is_not_null, &full), T, "{name}");
            assert_eq!(truth(&is_null, &empty), T, "{name}");
            assert_eq!(truth(&is_not_null, &empty), F, "{name}");
        }
        assert_eq!(constant("NULL IS NULL"), T);
        assert_eq!(constant("1 IS NOT NULL"), T);
        assert_eq!(constant("(id > 1) IS NULL"), T);
    }

    #[test]
    fn boolean_columns_compare_with_boolean_literals() {
        let r = row(&[("deleted", boolean(true))]);
        assert_eq!(truth("deleted = TRUE", &r), T);
        assert_eq!(truth("deleted <> true", &r), F);
        assert_eq!(truth("deleted = (1 < 2)", &r), T);
        assert_eq!(truth("deleted IN (FALSE)", &r), F);
        assert_eq!(truth("p = TRUE", &r), N);
    }
}

mod nulls {
    use super::*;

    fn with(p: Option<bool>, q: Option<bool>) -> Vec<Value> {
        let value = |v: Option<bool>| v.map_or_else(null, boolean);
        row(&[("p", value(p)), ("q", value(q))])
    }

    #[test]
    fn three_valued_and_or_not() {
        let cases = [
            (T, T, T, T),
            (T, F, F, T),
            (T, N, N, T),
            (F, T, F, T),
            (F, F, F, F),
            (F, N, F, N),
            (N, T, N, T),
            (N, F, F, N),
            (N, N, N, N),
        ];
        for (p, q, and, or) in cases {
            let r = with(p, q);
            assert_eq!(truth("p AND q", &r), and, "{p:?} AND {q:?}");
            assert_eq!(truth("p OR q", &r), or, "{p:?} OR {q:?}");
            assert_eq!(truth("NOT p", &r), p.map(|v| !v), "NOT {p:?}");
        }
        assert_eq!(constant("NOT NULL"), N);
        assert_eq!(constant("FALSE AND NULL"), F);
        assert_eq!(constant("TRUE OR NULL"), T);
        assert_eq!(constant("NULL"), N);
    }

    #[test]
    fn comparisons_and_arithmetic_with_null_are_null() {
        let r = row(&[("id", int(1))]);
        for expression in [
            "id = NULL",
            "NULL = NULL",
            "NULL <> 1",
            "amount > 1",
            "id + NULL = 1",
            "amount + 1 > 0",
            "-amount < 0",
            "status = 'x'",
            "status LIKE 'x%'",
            "NULL LIKE 'x'",
            "d = '2024-01-01'",
            "u = NULL",
        ] {
            assert_eq!(truth(expression, &r), N, "{expression}");
            let negated = format!("NOT ({expression})");
            assert_eq!(truth(&negated, &r), N, "{negated}");
        }
    }

    #[test]
    fn in_and_not_in_with_nulls() {
        let one = row(&[("id", int(1))]);
        let three = row(&[("id", int(3))]);
        let none = row(&[]);
        let cases = [
            ("id IN (1, 2)", T, F, N),
            ("id NOT IN (1, 2)", F, T, N),
            ("id IN (1, NULL)", T, N, N),
            ("id NOT IN (1, NULL)", F, N, N),
            ("id IN (NULL)", N, N, N),
            ("id IN (-1, 1.0, 2e0)", T, F, N),
        ];
        for (expression, on_one, on_three, on_null) in cases {
            assert_eq!(truth(expression, &one), on_one, "{expression} with 1");
            assert_eq!(truth(expression, &three), on_three, "{expression} with 3");
            assert_eq!(truth(expression, &none), on_null, "{expression} with NULL");
        }
    }

    #[test]
    fn between_with_nulls() {
        let at = |v: i64| row(&[("id", int(v))]);
        assert_eq!(truth("id BETWEEN 1 AND 10", &at(1)), T);
        assert_eq!(truth("id BETWEEN 1 AND 10", &at(10)), T);
        assert_eq!(truth("id BETWEEN 1 AND 10", &at(11)), F);
        assert_eq!(truth("id BETWEEN 1 AND 10", &row(&[])), N);
        assert_eq!(truth("id NOT BETWEEN 1 AND 3", &at(5)), T);
        assert_eq!(truth("id NOT BETWEEN 1 AND 3", &at(2)), F);
        assert_eq!(truth("id BETWEEN NULL AND 10", &at(20)), F);
        assert_eq!(truth("id BETWEEN NULL AND 10", &at(5)), N);
        assert_eq!(
            truth("id BETWEEN 1 + 1 AND id * 2 AND p IS NULL", &at(2)),
            T
        );
    }

    #[test]
    fn values_of_the_wrong_kind_read_as_null() {
        let wrong = row(&[
            ("id", text("1")),
            ("status", int(1)),
            ("deleted", int(1)),
            ("u", of(Kind::Uuid(vec![1; 15]))),
            ("d", timestamp(0, 0)),
            ("ts", timestamp(0, 1_000_000_000)),
            (
                "amount",
                of(Kind::Decimal(proto::Decimal {
                    unscaled: vec![],
                    scale: 0,
                })),
            ),
            ("payload", text("x")),
        ]);
        for name in [
            "id", "status", "deleted", "u", "d", "ts", "amount", "payload",
        ] {
            assert_eq!(truth(&format!("{name} IS NULL"), &wrong), T, "{name}");
        }
        assert_eq!(truth("id = 1", &wrong), N);
        assert_eq!(truth("id = 1", &[Value { kind: None }]), N);
        assert_eq!(truth("doc = 'x'", &[]), N);
    }

    #[test]
    fn numeric_kinds_are_interchangeable_in_number_columns() {
        assert_eq!(truth("id = 1.5", &row(&[("id", dec("1.50"))])), T);
        assert_eq!(truth("amount = 2", &row(&[("amount", float(2.0))])), T);
    }
}

mod numbers {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(constant("0.1 + 0.2 = 0.3"), T);
        assert_eq!(constant("0.3 - 0.1 = 0.2"), T);
        assert_eq!(constant("1.10 * 3 = 3.3"), T);
        assert_eq!(constant("1 / 8 = 0.125"), T);
        // The same sums in binary floating point are not exact.
        assert_eq!(constant("0.1e0 + 0.2e0 = 0.3e0"), F);
        let r = row(&[("amount", dec("0.10")), ("Order Total", dec("0.2"))]);
        assert_eq!(truth("amount + \"Order Total\" = 0.30000", &r), T);
        assert_eq!(truth("amount = 0.1", &r), T);
    }

    #[test]
    fn integers_decimals_and_floats_compare_by_value() {
        let r = row(&[
            ("id", int(12)),
            ("amount", dec("12.50")),
            ("ratio", float(12.25)),
            ("small", int(-3)),
        ]);
        for (expression, expected) in [
            ("id = 12.0", T),
            ("id < amount", T),
            ("id < 12.5", T),
            ("amount = 12.5", T),
            ("amount > ratio", T),
            ("ratio > id", T),
            ("ratio = 12.25", T),
            ("ratio = 1225e-2", T),
            ("amount = 12.5e0", T),
            ("id = 12e0", T),
            ("small < 0", T),
            ("small * -1 = 3", T),
        ] {
            assert_eq!(truth(expression, &r), expected, "{expression}");
        }
    }

    #[test]
    fn overflow_falls_back_to_float_and_keeps_order() {
        assert_eq!(
            constant("99999999999999999999999999999999999999 * 10 > 1"),
            T
        );
        assert_eq!(
            constant(
                "99999999999999999999999999999999999999 + 1 > 99999999999999999999999999999999999999"
            ),
            T
        );
        assert_eq!(constant("1234567890123456789012345678901234567890 > 1"), T);
        let r = row(&[
            ("id", int(i64::MAX)),
            ("amount", dec("0.00000000000000000000000000000000000001")),
        ]);
        assert_eq!(truth("id > amount", &r), T);
        assert_eq!(truth("id * id * id > 0", &r), T);
        assert_eq!(truth("-id * id * id < 0", &r), T);
    }

    #[test]
    fn inexact_division_is_float() {
        assert_eq!(constant("1 / 3 > 0.3333"), T);
        assert_eq!(constant("1 / 3 < 0.3334"), T);
        assert_eq!(constant("7 / 2 = 3.5"), T);
    }

    #[test]
    fn nan_equals_itself_and_sorts_last() {
        let r = row(&[("ratio", float(f64::NAN))]);
        assert_eq!(truth("ratio = ratio", &r), T);
        assert_eq!(truth("ratio > 1e308", &r), T);
        assert_eq!(truth("ratio = 1", &r), F);
    }
}

mod text_and_uuid {
    use super::*;

    const UUID: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

    #[test]
    fn text_compares_by_code_point_and_case() {
        let r = row(&[
            ("status", text("open")),
            ("doc", of(Kind::Json("{\"a\":1}".into()))),
        ]);
        for (expression, expected) in [
            ("status = 'open'", T),
            ("status = 'OPEN'", F),
            ("status < 'p'", T),
            ("status > 'opem'", T),
            ("status >= 'open'", T),
            ("status <> 'closed'", T),
            ("status IN ('closed', 'open')", T),
            ("status NOT IN ('closed', 'paid')", T),
            ("doc = '{\"a\":1}'", T),
            ("doc > status", T),
            ("'a' < 'b'", T),
        ] {
            assert_eq!(truth(expression, &r), expected, "{expression}");
        }
        assert_eq!(
            truth("status = 'it''s'", &row(&[("status", text("it's"))])),
            T
        );
        assert_eq!(truth("status = 'Zoë'", &row(&[("status", text("Zoë"))])), T);
    }

    #[test]
    fn like() {
        let r = row(&[
            ("status", text("open")),
            ("doc", of(Kind::Xml("<a/>".into()))),
        ]);
        for (expression, expected) in [
            ("status LIKE 'op%'", T),
            ("status LIKE 'OP%'", F),
            ("status LIKE '_pen'", T),
            ("status LIKE '%e%'", T),
            ("status LIKE 'open_'", F),
            ("status NOT LIKE 'c%'", T),
            ("status NOT LIKE '%'", F),
            ("doc LIKE '<%/>'", T),
            ("'50%' LIKE '50!%' ESCAPE '!'", T),
            ("'501' LIKE '50!%' ESCAPE '!'", F),
        ] {
            assert_eq!(truth(expression, &r), expected, "{expression}");
        }
    }

    #[test]
    fn uuids_compare_with_string_literals() {
        let r = row(&[("u", uuid(UUID))]);
        for (expression, expected) in [
            (format!("u = '{UUID}'"), T),
            (format!("u = '{}'", UUID.to_uppercase()), T),
            (format!("'{UUID}' = u"), T),
            ("u = '{6F9619FF-8B86-D011-B42D-00C04FC964FF}'".to_owned(), T),
            ("u = '6f9619ff8b86d011b42d00c04fc964ff'".to_owned(), T),
            ("u <> '00000000-0000-0000-0000-000000000000'".to_owned(), T),
            ("u > '6f9619ff-8b86-d011-b42d-00c04fc964fe'".to_owned(), T),
            ("u < '70000000-0000-0000-0000-000000000000'".to_owned(), T),
            ("u < 'a0000000-0000-0000-0000-000000000000'".to_owned(), T),
            (
                format!("u IN ('00000000-0000-0000-0000-000000000000', '{UUID}')"),
                T,
            ),
            ("u = u".to_owned(), T),
        ] {
            assert_eq!(truth(&expression, &r), expected, "{expression}");
        }
    }

    #[test]
    fn uuids_order_as_lowercase_text_across_the_top_bit() {
        let low = row(&[("u", uuid("7fffffff-ffff-ffff-ffff-ffffffffffff"))]);
        let high = row(&[("u", uuid("80000000-0000-0000-0000-000000000000"))]);
        let filter = "u >= '80000000-0000-0000-0000-000000000000'";
        assert_eq!(truth(filter, &low), F);
        assert_eq!(truth(filter, &high), T);
    }
}

mod temporal {
    use super::*;

    #[test]
    fn dates() {
        let r = row(&[("d", date(2024, 1, 31)), ("d2", date(2024, 2, 1))]);
        for (expression, expected) in [
            ("d = '2024-01-31'", T),
            ("d < '2024-02-01'", T),
            ("d > '2024-01-30'", T),
            ("'2024-01-01' < d", T),
            ("d BETWEEN '2024-01-01' AND '2024-01-31'", T),
            ("d NOT BETWEEN '2024-01-01' AND '2024-01-30'", T),
            ("d IN ('2023-01-31', '2024-01-31')", T),
            ("d < d2", T),
            ("d = '1969-12-31'", F),
        ] {
            assert_eq!(truth(expression, &r), expected, "{expression}");
        }
        assert_eq!(
            truth("d = '1969-12-31'", &row(&[("d", date(1969, 12, 31))])),
            T
        );
    }

    #[test]
    fn times() {
        let r = row(&[("t", time(12, 30, 0, 500_000_000))]);
        for (expression, expected) in [
            ("t = '12:30:00.5'", T),
            ("t = '12:30:00.500000000'", T),
            ("t > '12:30'", T),
            ("t > '12:30:00'", T),
            ("t < '12:30:01'", T),
            ("t < '12:30:00.4999'", F),
        ] {
            assert_eq!(truth(expression, &r), expected, "{expression}");
        }
    }

    #[test]
    fn timestamps() {
        let noon = seconds(2024, 1, 31, 12, 0);
        let r = row(&[("ts", timestamp(noon, 250_000_000))]);
        for (expression, expected) in [
            ("ts = '2024-01-31 12:00:00.25'", T),
            ("ts = '2024-01-31T12:00:00.250'", T),
            ("ts > '2024-01-31 12:00:00'", T),
            ("ts > '2024-01-31'", T),
            ("ts < '2024-02-01'", T),
            ("ts BETWEEN '2024-01-31 11:59' AND '2024-01-31 12:01'", T),
        ] {
            assert_eq!(truth(expression, &r), expected, "{expression}");
        }
        let before_epoch = row(&[("ts", timestamp(-1, 500_000_000))]);
        assert_eq!(truth("ts = '1969-12-31 23:59:59.5'", &before_epoch), T);
    }

    #[test]
    fn timestamptz_compares_utc_instants_whatever_the_offset() {
        // 12:00 at +02:00 is 10:00 UTC.
        let r = row(&[("tz", timestamptz(seconds(2024, 1, 31, 10, 0), 120))]);
        for (expression, expected) in [
            ("tz = '2024-01-31 12:00:00+02:00'", T),
            ("tz = '2024-01-31T10:00:00Z'", T),
            ("tz = '2024-01-31 10:00:00'", T),
            ("tz = '2024-01-31 05:00:00-05:00'", T),
            ("tz = '2024-01-31 12:00:00'", F),
            ("tz < '2024-01-31 12:00:00'", T),
            ("tz > '2024-01-31 11:00:00+02:00'", T),
        ] {
            assert_eq!(truth(expression, &r), expected, "{expression}");
        }
        let other_offset = row(&[("tz", timestamptz(seconds(2024, 1, 31, 10, 0), -300))]);
        assert_eq!(truth("tz = '2024-01-31 12:00:00+02:00'", &other_offset), T);
    }
}

mod names {
    use super::*;

    #[test]
    fn case_insensitive_fallback_resolves_to_the_schema_name() {
        let r = row(&[("id", int(1)), ("CamelCase", int(2))]);
        let filter = Filter::compile("ID = 1 AND camelcase = 2 AND Id < 5", &schema()).unwrap();
        assert!(filter.matches(&r));
        assert_eq!(filter.columns(), ["id", "CamelCase"]);
        assert_eq!(truth("\"ORDER TOTAL\" IS NULL", &r), T);
    }

    #[test]
    fn exact_match_wins_and_several_case_matches_are_ambiguous() {
        let columns = vec![
            column("Code", LogicalType::Int64),
            column("code", LogicalType::Text),
        ];
        let filter = Filter::compile("code = 'x' AND Code = 1", &columns).unwrap();
        assert_eq!(filter.columns(), ["code", "Code"]);
        assert_eq!(
            error_in("CODE = 1", &columns),
            (
                1,
                "column \"CODE\" is ambiguous: it matches Code, code when case is ignored; write the name exactly".to_owned()
            )
        );
    }

    #[test]
    fn quoted_names() {
        let r = row(&[("Order Total", dec("12.5"))]);
        assert_eq!(truth("\"Order Total\" > 10", &r), T);
        assert_eq!(truth("[Order Total] > 10", &r), T);
        assert_eq!(truth("[Order Total] = \"Order Total\"", &r), T);
        let columns = vec![
            column("a\"b", LogicalType::Int64),
            column("c]d", LogicalType::Int64),
            column("select", LogicalType::Int64),
        ];
        let filter = Filter::compile("\"a\"\"b\" = [c]]d] OR \"select\" = 1", &columns).unwrap();
        assert_eq!(filter.columns(), ["a\"b", "c]d", "select"]);
    }

    #[test]
    fn columns_are_listed_once_in_order_of_first_use() {
        let filter = Filter::compile("status = 'a' OR id = 1 OR status = 'b'", &schema()).unwrap();
        assert_eq!(filter.columns(), ["status", "id"]);
        assert!(
            Filter::compile("1 = 1", &schema())
                .unwrap()
                .columns()
                .is_empty()
        );
    }
}

mod errors {
    use super::*;

    fn at(position: usize, message: &str) -> (usize, String) {
        (position, message.to_owned())
    }

    fn small(expression: &str) -> (usize, String) {
        error_in(expression, &small_schema())
    }

    #[test]
    fn display_has_the_position_first() {
        assert_eq!(
            error("amout > 1").to_string(),
            "at character 1: unknown column \"amout\" (columns: id, amount, ratio, status, deleted, p, q, u, d, t, ts, tz, payload, Order Total, CamelCase, doc, small, d2)"
        );
    }

    #[test]
    fn unknown_columns_list_the_schema() {
        assert_eq!(
            small("id = 1 AND amout > 1"),
            at(12, "unknown column \"amout\" (columns: id, amount, status)")
        );
        assert_eq!(
            error_in("x = 1", &[]),
            at(1, "unknown column \"x\" (the table has no columns)")
        );
        let untyped = vec![ColumnSchema {
            name: "x".into(),
            r#type: None,
            nullable: true,
        }];
        assert_eq!(
            error_in("x = 1", &untyped),
            at(1, "column x has no type in the schema")
        );
    }

    #[test]
    fn type_mismatches_name_both_sides() {
        assert_eq!(
            small("id = 1 AND amount = '12'"),
            at(19, "cannot compare number (column amount) with text '12'")
        );
        assert_eq!(
            small("status >= 12.50"),
            at(8, "cannot compare text (column status) with number 12.50")
        );
        assert_eq!(
            small("status = -1"),
            at(8, "cannot compare text (column status) with number -1")
        );
        assert_eq!(
            small("id IN (1, 'two')"),
            at(11, "cannot compare number (column id) with text 'two'")
        );
        assert_eq!(
            small("id BETWEEN 1 AND status"),
            at(
                18,
                "cannot compare number (column id) with text (column status)"
            )
        );
        assert_eq!(
            error("deleted = 1").message,
            "cannot compare boolean (column deleted) with number 1"
        );
        assert_eq!(
            error("d = ts").message,
            "cannot compare date (column d) with timestamp (column ts)"
        );
        assert_eq!(
            error("u = status").message,
            "cannot compare uuid (column u) with text (column status)"
        );
        assert_eq!(
            error("d = 20240131").message,
            "cannot compare date (column d) with number 20240131; write date values as strings, e.g. '2024-01-31'"
        );
        assert_eq!(
            error("[Order Total] = 'x'").message,
            "cannot compare number (column \"Order Total\") with text 'x'"
        );
    }

    #[test]
    fn bytes_only_support_is_null() {
        let e = error("payload = 'x'");
        assert_eq!(
            (e.position, e.message.as_str()),
            (
                9,
                "cannot compare bytes (column payload) with text 'x'; bytes columns only support IS NULL and IS NOT NULL"
            )
        );
        assert_eq!(
            error("payload = NULL").message,
            "cannot compare bytes (column payload) with NULL; bytes columns only support IS NULL and IS NOT NULL"
        );
    }

    #[test]
    fn operands_of_the_wrong_type() {
        assert_eq!(
            small("status + 1 = 2"),
            at(
                1,
                "expected a number operand for '+', found text (column status)"
            )
        );
        assert_eq!(
            small("1 * 'x' = 2"),
            at(5, "expected a number operand for '*', found text 'x'")
        );
        assert_eq!(
            small("-status = 1"),
            at(
                2,
                "expected a number after unary '-', found text (column status)"
            )
        );
        assert_eq!(
            small("status = 'a' AND amount"),
            at(
                18,
                "expected a boolean operand for AND, found number (column amount)"
            )
        );
        assert_eq!(
            small("(id + 1) OR id = 1"),
            at(1, "expected a boolean operand for OR, found number")
        );
        assert_eq!(
            small("NOT 'x'"),
            at(5, "expected a boolean operand for NOT, found text 'x'")
        );
        assert_eq!(
            small("id LIKE 'x'"),
            at(4, "expected text before LIKE, found number (column id)")
        );
    }

    #[test]
    fn the_whole_expression_must_be_boolean() {
        assert_eq!(
            small("amount + 1"),
            at(1, "expected a boolean expression, found number")
        );
        assert_eq!(
            small("amount"),
            at(
                1,
                "expected a boolean expression, found number (column amount)"
            )
        );
        assert_eq!(
            small("'yes'"),
            at(1, "expected a boolean expression, found text 'yes'")
        );
        assert_eq!(
            small("  (status)"),
            at(
                3,
                "expected a boolean expression, found text (column status)"
            )
        );
    }

    #[test]
    fn bad_temporal_and_uuid_literals_name_the_type() {
        let cases = [
            (
                "d = '2024-13-01'",
                5,
                "'2024-13-01' is not a valid date for column d: month 13 is out of range",
            ),
            (
                "d > '31/01/2024'",
                5,
                "'31/01/2024' is not a valid date for column d: expected YYYY-MM-DD",
            ),
            (
                "'2023-02-29' < d",
                1,
                "'2023-02-29' is not a valid date for column d: day 29 does not exist in 2023-02",
            ),
            (
                "t < 'noon'",
                5,
                "'noon' is not a valid time for column t: expected HH:MM[:SS[.fffffffff]]",
            ),
            (
                "t < '25:00'",
                5,
                "'25:00' is not a valid time for column t: hour 25 is out of range",
            ),
            (
                "ts >= '2024-01-31 12:00:00+02:00'",
                7,
                "'2024-01-31 12:00:00+02:00' is not a valid timestamp for column ts: a timestamp column has no time zone, so the literal cannot have an offset",
            ),
            (
                "ts = 'yesterday'",
                6,
                "'yesterday' is not a valid timestamp for column ts: expected YYYY-MM-DD[ HH:MM[:SS[.fffffffff]]]",
            ),
            (
                "tz = '2024-01-31 12:00:00+15:00'",
                6,
                "'2024-01-31 12:00:00+15:00' is not a valid timestamptz for column tz: offset 15:00 is beyond ±14:00",
            ),
            (
                "tz IN ('2024-01-31', 'soon')",
                22,
                "'soon' is not a valid timestamptz for column tz: expected YYYY-MM-DD[ HH:MM[:SS[.fffffffff]]][Z|+HH:MM|-HH:MM]",
            ),
            (
                "u = 'not-a-uuid'",
                5,
                "'not-a-uuid' is not a valid uuid for column u: expected 32 hexadecimal digits as 8-4-4-4-12",
            ),
        ];
        for (expression, position, message) in cases {
            let e = error(expression);
            assert_eq!(
                (e.position, e.message.as_str()),
                (position, message),
                "{expression}"
            );
        }
    }

    #[test]
    fn syntax_errors() {
        let cases = [
            ("", 1, "expected an expression, found end of input"),
            ("   ", 4, "expected an expression, found end of input"),
            ("status = 'open", 10, "unterminated string literal"),
            (
                "id = 1 AND",
                11,
                "expected an expression after AND, found end of input",
            ),
            (
                "id = 1 OR OR id = 2",
                11,
                "expected an expression after OR, found OR",
            ),
            (
                "id =",
                5,
                "expected an expression after '=', found end of input",
            ),
            (
                "id + ) = 1",
                6,
                "expected an expression after '+', found ')'",
            ),
            (
                "NOT",
                4,
                "expected an expression after NOT, found end of input",
            ),
            ("AND id = 1", 1, "expected an expression, found AND"),
            (
                "id = 1 2",
                8,
                "unexpected number 2 after a complete expression (missing AND or OR?)",
            ),
            (
                "id = 1 status = 'x'",
                8,
                "unexpected column status after a complete expression (missing AND or OR?)",
            ),
            (
                "(id = 1",
                8,
                "expected ')' to close the '(' at character 1, found end of input",
            ),
            (
                "((id = 1) AND (id = 2)",
                23,
                "expected ')' to close the '(' at character 1, found end of input",
            ),
            ("id = 1)", 7, "unexpected ')' without a matching '('"),
            ("()", 2, "expected an expression after '(', found ')'"),
            (
                "1 < id < 3",
                8,
                "comparisons cannot be chained; join them with AND",
            ),
            ("id IS 1", 7, "expected NULL after IS, found number 1"),
            (
                "id IS NOT TRUE",
                11,
                "expected NULL after IS NOT, found TRUE",
            ),
            (
                "id NOT = 1",
                8,
                "expected IN, BETWEEN or LIKE after NOT, found '='",
            ),
            ("id IN 1, 2", 7, "expected '(' after IN, found number 1"),
            (
                "id IN ()",
                8,
                "expected a literal in the IN list, found ')'",
            ),
            (
                "id IN (1, id)",
                11,
                "expected a literal in the IN list, found column id",
            ),
            (
                "id IN (1 2)",
                10,
                "expected ',' or ')' in the IN list, found number 2",
            ),
            (
                "id BETWEEN 1 OR 2",
                14,
                "expected AND between the bounds of BETWEEN, found OR",
            ),
            (
                "status LIKE status",
                13,
                "expected a string literal pattern after LIKE, found column status",
            ),
            (
                "status LIKE 'a' ESCAPE 'ab'",
                24,
                "expected a one-character string after ESCAPE, found string 'ab'",
            ),
            (
                "status LIKE 'a!' ESCAPE '!'",
                13,
                "the LIKE pattern ends with its escape character '!'",
            ),
            ("id = 12abc", 6, "invalid number 12abc"),
            ("id = 1e", 6, "invalid number 1e"),
            ("id # 1", 4, "unexpected character '#'"),
            ("\"Order Total = 1", 1, "unterminated quoted column name"),
            ("[Order Total = 1", 1, "unterminated quoted column name"),
            ("\"\" = 1", 1, "empty column name"),
        ];
        for (expression, position, message) in cases {
            let e = check_syntax(expression).unwrap_err();
            assert_eq!(
                (e.position, e.message.as_str()),
                (position, message),
                "{expression:?}"
            );
            assert_eq!(
                error(expression),
                e,
                "{expression:?}: compile reports the same error"
            );
        }
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_eq!(small("status = 'é' AND amout = 1").0, 18);
    }

    #[test]
    fn syntax_check_needs_no_schema() {
        assert_eq!(
            check_syntax("no_such_column = 'whatever' AND x IN (1, 2)"),
            Ok(())
        );
        assert_eq!(check_syntax("amount + 1"), Ok(()));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}id = 1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert_eq!(
            error(&deep).message,
            "expression nested too deeply (at most 100 levels)"
        );
        let within = format!("{}id = 1{}", "(".repeat(90), ")".repeat(90));
        assert!(Filter::compile(&within, &schema()).is_ok());
    }
}

#[test]
fn filters_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Filter>();
}

mod fuzz {
    use super::*;

    const VOCABULARY: &[&str] = &[
        "id",
        "amount",
        "ratio",
        "status",
        "deleted",
        "p",
        "q",
        "u",
        "d",
        "t",
        "ts",
        "tz",
        "payload",
        "\"Order Total\"",
        "[CamelCase]",
        "doc",
        "small",
        "ID",
        "AND",
        "OR",
        "NOT",
        "IS",
        "NULL",
        "IN",
        "BETWEEN",
        "LIKE",
        "ESCAPE",
        "TRUE",
        "FALSE",
        "(",
        ")",
        "(",
        ")",
        ",",
        "=",
        "<>",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "%",
        "0",
        "1",
        "-1",
        "12.50",
        "0.1",
        "1e3",
        "1e308",
        "99999999999999999999999999999999999999",
        "'open'",
        "'o%'",
        "'_p%'",
        "'!'",
        "'2024-01-31'",
        "'12:30:00.5'",
        "'2024-01-31 12:00:00'",
        "'2024-01-31 12:00:00+02:00'",
        "'6f9619ff-8b86-d011-b42d-00c04fc964ff'",
        "'",
        "\"",
        "[",
        "]",
    ];

    fn soup() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(VOCABULARY), 0..24)
            .prop_map(|words| words.join(" "))
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..20);
        prop_oneof![
            Just(Value { kind: None }),
            Just(null()),
            any::<bool>().prop_map(|v| of(Kind::Bool(v))),
            any::<i64>().prop_map(|v| of(Kind::Int64(v))),
            any::<f64>().prop_map(|v| of(Kind::Float64(v))),
            (bytes(), any::<u32>()).prop_map(|(unscaled, scale)| of(Kind::Decimal(
                proto::Decimal {
                    unscaled,
                    scale: scale % 45
                }
            ))),
            ".{0,8}".prop_map(|v| of(Kind::Text(v))),
            ".{0,8}".prop_map(|v| of(Kind::Json(v))),
            ".{0,8}".prop_map(|v| of(Kind::Xml(v))),
            bytes().prop_map(|v| of(Kind::Bytes(v))),
            bytes().prop_map(|v| of(Kind::Uuid(v))),
            any::<i32>().prop_map(|v| of(Kind::Date(v))),
            any::<i64>().prop_map(|v| of(Kind::TimeNanos(v))),
            (any::<i64>(), any::<u32>()).prop_map(|(seconds, nanos)| of(Kind::Timestamp(
                proto::Timestamp { seconds, nanos }
            ))),
            (any::<i64>(), any::<u32>(), any::<i32>()).prop_map(
                |(utc_seconds, nanos, offset_minutes)| of(Kind::Timestamptz(proto::TimestampTz {
                    utc_seconds,
                    nanos,
                    offset_minutes
                }))
            ),
        ]
    }

    fn any_row() -> impl Strategy<Value = Vec<Value>> {
        proptest::collection::vec(any_value(), 0..22)
    }

    /// Filters that reach every kind of node.
    const FILTERS: &[&str] = &[
        "id + amount * ratio / small % 3 - -id > 0 OR amount / 0 IS NULL",
        "amount * amount * amount * amount > ratio AND [Order Total] BETWEEN -1 AND 1e3",
        "status LIKE '%o_%' OR doc NOT LIKE '!%%' ESCAPE '!' OR status < doc",
        "deleted = p OR NOT q OR p IS NULL",
        "u = '6f9619ff-8b86-d011-b42d-00c04fc964ff' OR u > u OR u IS NOT NULL",
        "d BETWEEN '2024-01-01' AND d2 OR t < '12:00' OR ts > '2024-01-31 12:00:00.5'",
        "tz = '2024-01-31 12:00:00+02:00' OR tz IN ('2024-01-31', NULL)",
        "payload IS NULL AND id NOT IN (1, 2.5, 1e3, NULL)",
    ];

    proptest! {
        #[test]
        fn random_ascii_never_panics(text in "[\\x00-\\x7f]{0,80}") {
            let _ = check_syntax(&text);
            let _ = Filter::compile(&text, &schema());
        }

        #[test]
        fn random_unicode_never_panics(text in "\\PC{0,40}") {
            let _ = check_syntax(&text);
            let _ = Filter::compile(&text, &schema());
        }

        #[test]
        fn token_soup_never_panics_and_agrees_with_the_syntax_check(
            text in soup(),
            row in any_row(),
        ) {
            let syntax = check_syntax(&text);
            match Filter::compile(&text, &schema()) {
                Ok(filter) => {
                    prop_assert_eq!(syntax, Ok(()));
                    let _ = filter.matches(&row);
                }
                Err(error) => {
                    // A schema can only add errors to those of syntax.
                    if let Err(syntax_error) = syntax {
                        prop_assert_eq!(error, syntax_error);
                    }
                }
            }
        }

        #[test]
        fn random_rows_never_panic(row in any_row()) {
            for text in FILTERS {
                let filter = Filter::compile(text, &schema()).unwrap();
                let _ = filter.matches(&row);
            }
        }
    }
}

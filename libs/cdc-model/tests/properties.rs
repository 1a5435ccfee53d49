//! Property tests for what every service must agree on: LSN and position order, round trips
//! through text, protobuf and Kafka keys, injective keys and topic names, stable fingerprints.

#![allow(clippy::unwrap_used)]

use cdc_model::proto::value::Kind;
use cdc_model::proto::{self, TableId, Value};
use cdc_model::topics::{escape_part, unescape_part};
use cdc_model::{Decimal, Lsn, SourcePosition, key, schema};
use proptest::prelude::*;
use prost::Message;

fn lsn() -> impl Strategy<Value = Lsn> {
    any::<[u8; 10]>().prop_map(Lsn::new)
}

fn position() -> impl Strategy<Value = SourcePosition> {
    (lsn(), any::<i32>(), lsn(), 0..=4i32).prop_map(
        |(commit_lsn, command_id, seqval, operation)| SourcePosition {
            commit_lsn,
            command_id,
            seqval,
            operation,
        },
    )
}

const MAX_38_DIGITS: i128 = 10i128.pow(38) - 1;

fn decimal() -> impl Strategy<Value = Decimal> {
    (-MAX_38_DIGITS..=MAX_38_DIGITS, 0..=38u32)
        .prop_map(|(unscaled, scale)| Decimal::new(unscaled, scale).unwrap())
}

fn value() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just(Kind::Null(proto::Null::Value as i32)),
        any::<bool>().prop_map(Kind::Bool),
        any::<i64>().prop_map(Kind::Int64),
        // NaN != NaN and -0.0 == 0.0 under PartialEq, while keys encode the exact bits.
        any::<f64>()
            .prop_filter("compared by bits", |f| !(f.is_nan()
                || *f == 0.0 && f.is_sign_negative()))
            .prop_map(Kind::Float64),
        decimal().prop_map(|d| Kind::Decimal(d.to_proto())),
        ".*".prop_map(Kind::Text),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Kind::Bytes),
        any::<[u8; 16]>().prop_map(|b| Kind::Uuid(b.to_vec())),
        any::<i32>().prop_map(Kind::Date),
        (0..86_400_000_000_000i64).prop_map(Kind::TimeNanos),
        (any::<i64>(), 0..1_000_000_000u32)
            .prop_map(|(seconds, nanos)| Kind::Timestamp(proto::Timestamp { seconds, nanos })),
        (any::<i64>(), 0..1_000_000_000u32, -840..=840i32).prop_map(
            |(utc_seconds, nanos, offset_minutes)| {
                Kind::Timestamptz(proto::TimestampTz {
                    utc_seconds,
                    nanos,
                    offset_minutes,
                })
            }
        ),
        ".*".prop_map(Kind::Json),
        ".*".prop_map(Kind::Xml),
    ];
    kind.prop_map(|kind| Value { kind: Some(kind) })
}

fn table() -> impl Strategy<Value = TableId> {
    (".{0,12}", ".{0,12}", ".{0,12}").prop_map(|(database, schema, table)| TableId {
        database,
        schema,
        table,
    })
}

proptest! {
    #[test]
    fn lsn_text_forms_round_trip(lsn in lsn()) {
        prop_assert_eq!(lsn.to_string().parse::<Lsn>().unwrap(), lsn);
        prop_assert_eq!(lsn.to_hex_literal().parse::<Lsn>().unwrap(), lsn);
    }

    #[test]
    fn lsn_order_is_byte_order_and_integer_order(a in lsn(), b in lsn()) {
        prop_assert_eq!(a.cmp(&b), a.as_bytes().cmp(b.as_bytes()));
        prop_assert_eq!(a.cmp(&b), a.to_u128().cmp(&b.to_u128()));
    }

    #[test]
    fn lsn_increment_and_decrement_are_inverse(a in lsn()) {
        if let Some(next) = a.increment() {
            prop_assert!(next > a);
            prop_assert_eq!(next.decrement(), Some(a));
        }
    }

    #[test]
    fn positions_order_as_the_reader_tuple(a in position(), b in position()) {
        let tuple = |p: &SourcePosition| (p.commit_lsn, p.command_id, p.seqval, p.operation);
        prop_assert_eq!(a.cmp(&b), tuple(&a).cmp(&tuple(&b)));
        prop_assert_eq!(a.supersedes(&b), a > b);
    }

    #[test]
    fn ordered_position_bytes_sort_as_positions_and_round_trip(a in position(), b in position()) {
        let (bytes_a, bytes_b) = (a.to_ordered_bytes(), b.to_ordered_bytes());
        prop_assert_eq!(bytes_a.cmp(&bytes_b), a.cmp(&b));
        prop_assert_eq!(SourcePosition::from_ordered_bytes(&bytes_a).unwrap(), a);
    }

    #[test]
    fn positions_round_trip_through_protobuf(p in position()) {
        prop_assert_eq!(SourcePosition::from_proto(&p.to_proto()).unwrap(), p);
    }

    #[test]
    fn decimals_round_trip_through_protobuf_and_text(d in decimal()) {
        prop_assert_eq!(Decimal::from_proto(&d.to_proto()).unwrap(), d);
        prop_assert_eq!(d.to_string().parse::<Decimal>().unwrap(), d);
    }

    #[test]
    fn kafka_keys_round_trip(table in table(), values in prop::collection::vec(value(), 0..4)) {
        let encoded = key::encode(&table, &values).unwrap();
        prop_assert_eq!(key::decode(&encoded).unwrap(), (table, values));
    }

    #[test]
    fn different_keys_never_encode_alike(
        a in (table(), prop::collection::vec(value(), 0..3)),
        b in (table(), prop::collection::vec(value(), 0..3)),
    ) {
        let (ea, eb) = (key::encode(&a.0, &a.1).unwrap(), key::encode(&b.0, &b.1).unwrap());
        prop_assert_eq!(a == b, ea == eb);
    }

    #[test]
    fn escaped_name_parts_are_legal_and_round_trip(part in ".{0,20}") {
        let escaped = escape_part(&part);
        prop_assert!(escaped.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        prop_assert_eq!(unescape_part(&escaped).unwrap(), part);
    }

    #[test]
    fn different_name_parts_escape_differently(a in ".{0,8}", b in ".{0,8}") {
        prop_assert_eq!(a == b, escape_part(&a) == escape_part(&b));
    }

    #[test]
    fn fingerprints_survive_a_protobuf_round_trip(names in prop::collection::btree_set("[a-z]{1,6}", 1..6), nullable in any::<bool>()) {
        let columns: Vec<proto::ColumnSchema> = names.iter().map(|name| proto::ColumnSchema {
            name: name.clone(),
            r#type: Some(proto::ColumnType { logical: proto::LogicalType::Text as i32, length: 10, ..Default::default() }),
            nullable,
        }).collect();
        let table_schema = proto::TableSchema {
            table: Some(TableId { database: "d".into(), schema: "s".into(), table: "t".into() }),
            capture_instance: "s_t".into(),
            key_columns: vec![columns[0].name.clone()],
            columns,
        };
        let decoded = proto::TableSchema::decode(table_schema.encode_to_vec().as_slice()).unwrap();
        prop_assert_eq!(schema::fingerprint(&decoded), schema::fingerprint(&table_schema));
    }
}

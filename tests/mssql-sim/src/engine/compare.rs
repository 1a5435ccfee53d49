//! Comparing values as SQL Server does: numbers by value across integer and decimal types,
//! strings case-insensitively (the default collation, Latin1_General_CI_AS, with trailing
//! spaces ignored), uniqueidentifiers by SQL Server's peculiar byte order, NULL unknown.

use std::cmp::Ordering;

use crate::tds::types::SqlValue;

/// Compares two non-NULL values; None when either is NULL or the kinds do not compare.
pub fn compare(left: &SqlValue, right: &SqlValue) -> Option<Ordering> {
    use SqlValue as V;
    match (left, right) {
        (V::Null, _) | (_, V::Null) => None,
        (V::Int(a), V::Int(b)) => Some(a.cmp(b)),
        (V::Bit(a), V::Bit(b)) => Some(a.cmp(b)),
        (V::Bit(a), V::Int(b)) => Some(i64::from(*a).cmp(b)),
        (V::Int(a), V::Bit(b)) => Some(a.cmp(&i64::from(*b))),
        (V::Float(a), V::Float(b)) => a.partial_cmp(b),
        (V::Float(a), other) | (other, V::Float(a)) if numeric(other).is_some() => {
            let b = numeric(other)?;
            let ordering = a.partial_cmp(&b)?;
            Some(if matches!(left, V::Float(_)) {
                ordering
            } else {
                ordering.reverse()
            })
        }
        (V::Int(_) | V::Decimal { .. }, V::Int(_) | V::Decimal { .. }) => {
            let (a, b) = (exact(left)?, exact(right)?);
            let scale = a.1.max(b.1);
            Some(rescale(a, scale).cmp(&rescale(b, scale)))
        }
        (V::Text(a), V::Text(b)) => Some(collate(a).cmp(&collate(b))),
        (V::Binary(a), V::Binary(b)) => Some(a.cmp(b)),
        (V::Guid(a), V::Guid(b)) => Some(guid_order(a).cmp(&guid_order(b))),
        (V::Date(a), V::Date(b)) => Some(a.cmp(b)),
        (V::Time(a), V::Time(b)) => Some(a.cmp(b)),
        (
            V::DateTime {
                days: d1,
                ticks: t1,
            },
            V::DateTime {
                days: d2,
                ticks: t2,
            },
        ) => Some((d1, t1).cmp(&(d2, t2))),
        (
            V::DateTimeOffset {
                days: d1,
                ticks: t1,
                ..
            },
            V::DateTimeOffset {
                days: d2,
                ticks: t2,
                ..
            },
        ) => {
            // Offsets are not part of equality: the UTC instant decides.
            Some((d1, t1).cmp(&(d2, t2)))
        }
        _ => None,
    }
}

/// A total order for keys and ORDER BY: NULLs first (as SQL Server sorts them), then values.
pub fn sort_order(left: &SqlValue, right: &SqlValue) -> Ordering {
    match (left, right) {
        (SqlValue::Null, SqlValue::Null) => Ordering::Equal,
        (SqlValue::Null, _) => Ordering::Less,
        (_, SqlValue::Null) => Ordering::Greater,
        _ => compare(left, right).unwrap_or(Ordering::Equal),
    }
}

/// Orders rows of key values column by column.
pub fn key_order(left: &[SqlValue], right: &[SqlValue]) -> Ordering {
    left.iter()
        .zip(right)
        .map(|(a, b)| sort_order(a, b))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

fn numeric(value: &SqlValue) -> Option<f64> {
    match value {
        SqlValue::Int(i) => Some(*i as f64),
        SqlValue::Decimal { unscaled, scale } => {
            Some(*unscaled as f64 / 10f64.powi(i32::from(*scale)))
        }
        _ => None,
    }
}

fn exact(value: &SqlValue) -> Option<(i128, u8)> {
    match value {
        SqlValue::Int(i) => Some((i128::from(*i), 0)),
        SqlValue::Decimal { unscaled, scale } => Some((*unscaled, *scale)),
        _ => None,
    }
}

fn rescale((unscaled, scale): (i128, u8), to: u8) -> i128 {
    // Within 38 digits and scale 38, widening by at most 38 digits can overflow only for
    // values SQL Server itself cannot hold; saturate rather than wrap.
    unscaled.saturating_mul(10i128.saturating_pow(u32::from(to - scale)))
}

/// The collation key: case-insensitive, trailing spaces ignored (SQL Server pads to compare).
fn collate(text: &str) -> String {
    text.trim_end_matches(' ').to_lowercase()
}

/// SQL Server compares uniqueidentifiers by bytes 10..16 first, then 8..10, 6..8, 4..6, 0..4
/// (of the textual, big-endian form, with each of the first three groups read little-endian).
fn guid_order(guid: &[u8; 16]) -> [u8; 16] {
    let wire = crate::tds::types::guid_wire_order(guid);
    let mut key = [0u8; 16];
    let groups: [(usize, usize); 5] = [(10, 16), (8, 10), (6, 8), (4, 6), (0, 4)];
    let ordered = groups
        .iter()
        .flat_map(|(start, end)| wire[*start..*end].iter());
    for (slot, byte) in key.iter_mut().zip(ordered) {
        *slot = *byte;
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value_across_types() {
        let dec = SqlValue::Decimal {
            unscaled: 150,
            scale: 2,
        };
        assert_eq!(compare(&SqlValue::Int(1), &dec), Some(Ordering::Less));
        assert_eq!(
            compare(&SqlValue::Int(2), &SqlValue::Float(1.5)),
            Some(Ordering::Greater)
        );
        assert_eq!(compare(&SqlValue::Null, &SqlValue::Int(1)), None);
    }

    #[test]
    fn strings_compare_case_insensitively_ignoring_trailing_spaces() {
        assert_eq!(
            compare(
                &SqlValue::Text("ABC ".into()),
                &SqlValue::Text("abc".into())
            ),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn guids_sort_by_their_last_six_bytes_first() {
        let low = SqlValue::Guid([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let high = SqlValue::Guid([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(compare(&low, &high), Some(Ordering::Less));
    }
}

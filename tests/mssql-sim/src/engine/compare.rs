//! Comparing values as SQL Server does: numbers by value across integer and decimal types,
//! strings case-insensitively (the default collation, Latin1_General_CI_AS, with trailing
//! spaces ignored), uniqueidentifiers by SQL Server's peculiar byte order, NULL unknown.

use std::cmp::Ordering;

use super::collation::Folding;
use crate::tds::types::SqlValue;

/// Compares two non-NULL values, strings case-insensitively (the default collation); None
/// when either is NULL or the kinds do not compare.
pub fn compare(left: &SqlValue, right: &SqlValue) -> Option<Ordering> {
    compare_folded(left, right, Folding::CaseInsensitive)
}

/// Compares two non-NULL values, strings as `folding` says; None when either is NULL or the
/// kinds do not compare.
pub fn compare_folded(left: &SqlValue, right: &SqlValue, folding: Folding) -> Option<Ordering> {
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
        (V::Text(a), V::Text(b)) => Some(compare_text(a, b, folding)),
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

/// Strings compare with trailing spaces ignored (SQL Server pads the shorter one); a
/// case-insensitive collation compares lower-cased characters, a case-sensitive one breaks
/// ties of those by case, a binary one compares code points.
pub fn compare_text(a: &str, b: &str, folding: Folding) -> Ordering {
    let (a, b) = (a.trim_end_matches(' '), b.trim_end_matches(' '));
    let folded = || {
        a.chars()
            .flat_map(char::to_lowercase)
            .cmp(b.chars().flat_map(char::to_lowercase))
    };
    match folding {
        Folding::Binary => a.cmp(b),
        Folding::CaseInsensitive => folded(),
        Folding::CaseSensitive => folded().then_with(|| a.cmp(b)),
    }
}

/// Appends to `out` bytes that are equal for two values exactly when SQL Server's GROUP BY
/// and DISTINCT treat them as equal (strings under `folding`, decimals of any scale by value,
/// datetimeoffsets by instant). Each value is tagged and length-prefixed, so a sequence of
/// values encodes unambiguously.
pub fn group_key(value: &SqlValue, folding: Folding, out: &mut Vec<u8>) {
    match value {
        SqlValue::Null => out.push(0),
        SqlValue::Int(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_be_bytes());
        }
        SqlValue::Bit(b) => out.extend_from_slice(&[2, u8::from(*b)]),
        SqlValue::Decimal { unscaled, scale } => {
            let (mut unscaled, mut scale) = (*unscaled, *scale);
            while scale > 0 && unscaled % 10 == 0 {
                unscaled /= 10;
                scale -= 1;
            }
            out.push(3);
            out.extend_from_slice(&unscaled.to_be_bytes());
            out.push(scale);
        }
        SqlValue::Float(f) => {
            out.push(4);
            let f = if *f == 0.0 { 0.0 } else { *f };
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        SqlValue::Text(text) => {
            out.push(5);
            let trimmed = text.trim_end_matches(' ');
            let start = out.len();
            out.extend_from_slice(&[0; 4]);
            match folding {
                Folding::CaseInsensitive => {
                    let mut buffer = [0u8; 4];
                    for c in trimmed.chars().flat_map(char::to_lowercase) {
                        out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                    }
                }
                Folding::CaseSensitive | Folding::Binary => {
                    out.extend_from_slice(trimmed.as_bytes())
                }
            }
            let length = (out.len() - start - 4) as u32;
            out[start..start + 4].copy_from_slice(&length.to_be_bytes());
        }
        SqlValue::Binary(bytes) => {
            out.push(6);
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        SqlValue::Guid(g) => {
            out.push(7);
            out.extend_from_slice(g);
        }
        SqlValue::Date(days) => {
            out.push(8);
            out.extend_from_slice(&days.to_be_bytes());
        }
        SqlValue::Time(ticks) => {
            out.push(9);
            out.extend_from_slice(&ticks.to_be_bytes());
        }
        SqlValue::DateTime { days, ticks } | SqlValue::DateTimeOffset { days, ticks, .. } => {
            out.push(10);
            out.extend_from_slice(&days.to_be_bytes());
            out.extend_from_slice(&ticks.to_be_bytes());
        }
    }
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
    fn collations_fold_strings_their_way() {
        assert_eq!(
            compare_text("Abc", "abc  ", Folding::CaseInsensitive),
            Ordering::Equal
        );
        assert_eq!(compare_text("Abc", "abc", Folding::Binary), Ordering::Less);
        assert_ne!(
            compare_text("Abc", "abc", Folding::CaseSensitive),
            Ordering::Equal
        );
        assert_eq!(
            compare_text("a", "B", Folding::CaseSensitive),
            Ordering::Less
        );
    }

    #[test]
    fn group_keys_are_equal_for_values_sql_server_groups_together() {
        let key = |v: &SqlValue, folding| {
            let mut out = Vec::new();
            group_key(v, folding, &mut out);
            out
        };
        let (a, b) = (SqlValue::Text("ABC ".into()), SqlValue::Text("abc".into()));
        assert_eq!(
            key(&a, Folding::CaseInsensitive),
            key(&b, Folding::CaseInsensitive)
        );
        assert_ne!(key(&a, Folding::Binary), key(&b, Folding::Binary));
        assert_eq!(
            key(
                &SqlValue::Decimal {
                    unscaled: 150,
                    scale: 2
                },
                Folding::Binary
            ),
            key(
                &SqlValue::Decimal {
                    unscaled: 15,
                    scale: 1
                },
                Folding::Binary
            )
        );
        assert_eq!(
            key(&SqlValue::Float(-0.0), Folding::Binary),
            key(&SqlValue::Float(0.0), Folding::Binary)
        );
    }

    #[test]
    fn guids_sort_by_their_last_six_bytes_first() {
        let low = SqlValue::Guid([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let high = SqlValue::Guid([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(compare(&low, &high), Some(Ordering::Less));
    }
}

//! Table patterns: `database.schema.table` with `*` (any run of characters) and `?` (one
//! character), compared without regard to case, as SQL Server's default collation compares
//! names.

use crate::proto::TableId;

/// A compiled table pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    text: String,
    folded: Vec<char>,
}

impl TablePattern {
    /// A pattern from its text.
    pub fn new(text: &str) -> TablePattern {
        TablePattern {
            text: text.to_owned(),
            folded: text.chars().flat_map(char::to_lowercase).collect(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the table's `database.schema.table` matches.
    pub fn matches(&self, table: &TableId) -> bool {
        let name: Vec<char> = format!("{}.{}.{}", table.database, table.schema, table.table)
            .chars()
            .flat_map(char::to_lowercase)
            .collect();
        glob(&self.folded, &name)
    }
}

/// Iterative glob match with one backtrack point (the last `*`): linear in practice.
fn glob(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(c) if *c == '?' || *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> TableId {
        let mut parts = name.splitn(3, '.');
        TableId {
            database: parts.next().unwrap_or_default().into(),
            schema: parts.next().unwrap_or_default().into(),
            table: parts.next().unwrap_or_default().into(),
        }
    }

    #[test]
    fn stars_and_question_marks_match_runs_and_single_characters() {
        let pattern = TablePattern::new("shop.dbo.order*");
        assert!(pattern.matches(&table("shop.dbo.orders")));
        assert!(pattern.matches(&table("shop.dbo.order_lines")));
        assert!(!pattern.matches(&table("shop.dbo.customers")));
        assert!(!pattern.matches(&table("shop2.dbo.orders")));
        assert!(TablePattern::new("*.*.*").matches(&table("a.b.c")));
        assert!(TablePattern::new("*").matches(&table("a.b.c")));
        assert!(TablePattern::new("shop.dbo.t?").matches(&table("shop.dbo.t1")));
        assert!(!TablePattern::new("shop.dbo.t?").matches(&table("shop.dbo.t10")));
        assert!(TablePattern::new("*.sales.*_archive").matches(&table("x.sales.a_b_archive")));
    }

    #[test]
    fn names_compare_without_regard_to_case() {
        assert!(TablePattern::new("Shop.DBO.Orders").matches(&table("shop.dbo.ORDERS")));
    }
}

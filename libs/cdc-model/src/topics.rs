//! Topic names, from a configurable prefix (default `cdc`).
//!
//! Table topics are `<prefix>.raw.<db>.<schema>.<table>` and `<prefix>.clean.…`. Kafka allows
//! only `[A-Za-z0-9._-]` and 249 characters, while SQL Server names may hold spaces, dots or
//! any Unicode letter. Each name part is therefore escaped: `[A-Za-z0-9_]` stay as they are;
//! every other character, `.` and `-` included, becomes `-<hex code point>-` (a space is
//! `-20-`). A `-` never stands for itself inside a part, so the escape is injective and the
//! dots between parts stay unambiguous.

use crate::error::{Error, Result};
use crate::proto::TableId;

/// Kafka's limit on a topic name's length.
pub const MAX_TOPIC_LENGTH: usize = 249;

/// The topic names of one pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// Names under `prefix`, which must be 1 to 100 of `[A-Za-z0-9_-]`.
    pub fn new(prefix: &str) -> Result<Topics> {
        let legal = !prefix.is_empty()
            && prefix.len() <= 100
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if legal {
            Ok(Topics {
                prefix: prefix.to_owned(),
            })
        } else {
            Err(Error::InvalidTopic(format!(
                "prefix {prefix:?} must be 1 to 100 of [A-Za-z0-9_-]"
            )))
        }
    }

    /// Raw change events of a table, as the extractor writes them.
    pub fn raw(&self, table: &TableId) -> Result<String> {
        self.table_topic("raw", table)
    }

    /// Transformed change events of a table, as the loader reads them.
    pub fn clean(&self, table: &TableId) -> Result<String> {
        self.table_topic("clean", table)
    }

    /// Table schemas, compacted: key = the schema's fingerprint (UTF-8, see
    /// [`crate::schema::fingerprint`]), value = the protobuf `TableSchema`.
    pub fn schemas(&self) -> String {
        format!("{}.schemas", self.prefix)
    }

    /// Commands to the extractor (re-snapshots).
    pub fn control(&self) -> String {
        format!("{}.control", self.prefix)
    }

    /// The extractor's source positions, compacted.
    pub fn extractor_offsets(&self) -> String {
        format!("{}.extractor.offsets", self.prefix)
    }

    /// The extractor's work units: one partition per unit, shared by the extractor instances
    /// as a consumer group (never written to).
    pub fn extractor_work(&self) -> String {
        format!("{}.extractor.work", self.prefix)
    }

    /// Events the transformer could not transform.
    pub fn dlq_transformer(&self) -> String {
        format!("{}.dlq.transformer", self.prefix)
    }

    /// Events the loader could not apply.
    pub fn dlq_loader(&self) -> String {
        format!("{}.dlq.loader", self.prefix)
    }

    /// Reconciliation reports.
    pub fn reconcile_reports(&self) -> String {
        format!("{}.reconcile.reports", self.prefix)
    }

    /// The table a raw topic of this pipeline carries (the inverse of [`Topics::raw`]).
    pub fn table_of_raw(&self, topic: &str) -> Result<TableId> {
        self.table_of("raw", topic)
    }

    fn table_of(&self, stage: &str, topic: &str) -> Result<TableId> {
        let bad = || {
            Error::InvalidTopic(format!(
                "{topic} is not a {stage} table topic of `{}`",
                self.prefix
            ))
        };
        let parts = topic
            .strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|rest| rest.strip_prefix(stage))
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or_else(bad)?;
        let parts: Vec<&str> = parts.split('.').collect();
        let [database, schema, table] = parts.as_slice() else {
            return Err(bad());
        };
        Ok(TableId {
            database: unescape_part(database)?,
            schema: unescape_part(schema)?,
            table: unescape_part(table)?,
        })
    }

    fn table_topic(&self, stage: &str, table: &TableId) -> Result<String> {
        let name = format!(
            "{}.{stage}.{}.{}.{}",
            self.prefix,
            escape_part(&table.database),
            escape_part(&table.schema),
            escape_part(&table.table)
        );
        if name.len() > MAX_TOPIC_LENGTH {
            return Err(Error::InvalidTopic(format!(
                "the topic for {}.{}.{} would be {} characters, over Kafka's {MAX_TOPIC_LENGTH}",
                table.database,
                table.schema,
                table.table,
                name.len()
            )));
        }
        Ok(name)
    }
}

/// Escapes one name part into Kafka's legal characters.
pub fn escape_part(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for c in part.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            out.push_str(&format!("-{:x}-", u32::from(c)));
        }
    }
    out
}

/// Reverses [`escape_part`].
pub fn unescape_part(escaped: &str) -> Result<String> {
    let bad = || Error::InvalidTopic(format!("`{escaped}` is not an escaped name part"));
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find(['-', '.']) {
        out.push_str(&rest[..at]);
        let after = rest[at..].strip_prefix('-').ok_or_else(bad)?;
        let end = after.find('-').ok_or_else(bad)?;
        let code = u32::from_str_radix(&after[..end], 16).map_err(|_| bad())?;
        out.push(char::from_u32(code).ok_or_else(bad)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(database: &str, schema: &str, name: &str) -> TableId {
        TableId {
            database: database.into(),
            schema: schema.into(),
            table: name.into(),
        }
    }

    #[test]
    fn ordinary_names_stay_readable() {
        let topics = Topics::new("cdc").unwrap();
        assert_eq!(
            topics.raw(&table("shop", "dbo", "order_lines")).unwrap(),
            "cdc.raw.shop.dbo.order_lines"
        );
        assert_eq!(topics.extractor_offsets(), "cdc.extractor.offsets");
    }

    #[test]
    fn dots_spaces_and_unicode_are_escaped() {
        let topics = Topics::new("cdc").unwrap();
        let name = topics
            .clean(&table("my.db", "dbo", "Order Lines é"))
            .unwrap();
        assert_eq!(name, "cdc.clean.my-2e-db.dbo.Order-20-Lines-20--e9-");
        assert_eq!(
            unescape_part("Order-20-Lines-20--e9-").unwrap(),
            "Order Lines é"
        );
    }

    #[test]
    fn a_raw_topic_name_gives_back_its_table() {
        let topics = Topics::new("cdc").unwrap();
        let original = table("my.db", "dbo", "Order Lines é");
        let name = topics.raw(&original).unwrap();
        assert_eq!(topics.table_of_raw(&name).unwrap(), original);
        for wrong in [
            "cdc.clean.a.b.c",
            "cdc.raw.a.b",
            "cdc.raw.a.b.c.d",
            "other.raw.a.b.c",
            "cdcx.raw.a.b.c",
        ] {
            assert!(topics.table_of_raw(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn bad_prefixes_and_overlong_names_are_refused() {
        assert!(Topics::new("a.b").is_err());
        assert!(Topics::new("").is_err());
        let topics = Topics::new("cdc").unwrap();
        assert!(topics.raw(&table("d", "s", &"x".repeat(240))).is_err());
    }
}

//! Table schemas: validation, lookups and content-addressed fingerprints.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::proto::{LogicalType, TableSchema};

/// `database.schema.table` of a schema, for messages.
pub fn qualified_name(schema: &TableSchema) -> String {
    schema.table.as_ref().map_or_else(
        || "(no table)".to_owned(),
        |t| format!("{}.{}.{}", t.database, t.schema, t.table),
    )
}

/// Checks that a schema can be published: a table, unique column names, every column typed,
/// and at least one key column, each of which exists.
pub fn validate(schema: &TableSchema) -> Result<()> {
    let invalid = |reason: String| {
        Err(Error::InvalidSchema {
            table: qualified_name(schema),
            reason,
        })
    };
    if schema.table.is_none() {
        return invalid("no table id".to_owned());
    }
    let mut seen = std::collections::HashSet::new();
    for column in &schema.columns {
        if !seen.insert(column.name.as_str()) {
            return invalid(format!("column `{}` appears twice", column.name));
        }
        let typed = column.r#type.as_ref().is_some_and(|t| {
            LogicalType::try_from(t.logical).is_ok_and(|l| l != LogicalType::Unspecified)
        });
        if !typed {
            return invalid(format!("column `{}` has no type", column.name));
        }
    }
    if schema.key_columns.is_empty() {
        return invalid("no key columns".to_owned());
    }
    for key in &schema.key_columns {
        if !seen.contains(key.as_str()) {
            return invalid(format!("key column `{key}` is not a column"));
        }
    }
    Ok(())
}

/// Position of the column named `name`.
pub fn column_index(schema: &TableSchema, name: &str) -> Option<usize> {
    schema.columns.iter().position(|c| c.name == name)
}

/// Positions of the key columns, in key order.
pub fn key_indexes(schema: &TableSchema) -> Result<Vec<usize>> {
    schema
        .key_columns
        .iter()
        .map(|key| {
            column_index(schema, key).ok_or_else(|| Error::InvalidSchema {
                table: qualified_name(schema),
                reason: format!("key column `{key}` is not a column"),
            })
        })
        .collect()
}

/// The schema's fingerprint, `s1-` and 32 hex digits of SHA-256 over a canonical encoding of
/// everything that gives row images their meaning (table, capture instance, columns with their
/// types and nullability, key). Written out field by field rather than hashing protobuf bytes,
/// whose encoding is not guaranteed to be canonical.
pub fn fingerprint(schema: &TableSchema) -> String {
    let mut canonical = Vec::new();
    let mut put = |bytes: &[u8]| {
        canonical.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        canonical.extend_from_slice(bytes);
    };
    let table = schema.table.clone().unwrap_or_default();
    for part in [
        &table.database,
        &table.schema,
        &table.table,
        &schema.capture_instance,
    ] {
        put(part.as_bytes());
    }
    put(&(schema.columns.len() as u64).to_be_bytes());
    for column in &schema.columns {
        let column_type = column.r#type.clone().unwrap_or_default();
        put(column.name.as_bytes());
        put(&column_type.logical.to_be_bytes());
        put(&column_type.length.to_be_bytes());
        put(&column_type.precision.to_be_bytes());
        put(&column_type.scale.to_be_bytes());
        put(column_type.source_type.as_bytes());
        put(&[u8::from(column.nullable)]);
    }
    put(&(schema.key_columns.len() as u64).to_be_bytes());
    for key in &schema.key_columns {
        put(key.as_bytes());
    }
    let digest = Sha256::digest(&canonical);
    format!("s1-{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ColumnSchema, ColumnType, TableId};

    pub(crate) fn orders() -> TableSchema {
        let column = |name: &str, logical: LogicalType| ColumnSchema {
            name: name.into(),
            r#type: Some(ColumnType {
                logical: logical as i32,
                ..Default::default()
            }),
            nullable: name != "id",
        };
        TableSchema {
            table: Some(TableId {
                database: "shop".into(),
                schema: "dbo".into(),
                table: "orders".into(),
            }),
            capture_instance: "dbo_orders".into(),
            columns: vec![
                column("id", LogicalType::Int64),
                column("note", LogicalType::Text),
            ],
            key_columns: vec!["id".into()],
        }
    }

    #[test]
    fn a_valid_schema_passes_and_its_key_is_found() {
        validate(&orders()).unwrap();
        assert_eq!(key_indexes(&orders()).unwrap(), vec![0]);
        assert_eq!(column_index(&orders(), "note"), Some(1));
    }

    #[test]
    fn invalid_schemas_say_what_is_wrong() {
        let mut s = orders();
        s.key_columns = vec!["missing".into()];
        assert!(
            validate(&s)
                .unwrap_err()
                .to_string()
                .contains("key column `missing` is not a column")
        );
        let mut s = orders();
        s.columns.push(s.columns[0].clone());
        assert!(
            validate(&s)
                .unwrap_err()
                .to_string()
                .contains("appears twice")
        );
        let mut s = orders();
        s.key_columns.clear();
        assert!(
            validate(&s)
                .unwrap_err()
                .to_string()
                .contains("no key columns")
        );
    }

    #[test]
    fn fingerprints_change_with_meaning_only() {
        let base = fingerprint(&orders());
        assert!(base.starts_with("s1-") && base.len() == 35);
        assert_eq!(base, fingerprint(&orders().clone()));
        let mut nullable = orders();
        nullable.columns[0].nullable = true;
        assert_ne!(base, fingerprint(&nullable));
        let mut renamed = orders();
        renamed.columns[1].name = "notes".into();
        assert_ne!(base, fingerprint(&renamed));
        let mut new_instance = orders();
        new_instance.capture_instance = "dbo_orders_v2".into();
        assert_ne!(base, fingerprint(&new_instance));
    }
}

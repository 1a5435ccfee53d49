//! PostgreSQL names: safe quoting, and target table names made from source table names.

use std::fmt;

use cdc_model::proto::TableId;

/// PostgreSQL truncates identifiers longer than this many bytes; the loader refuses them instead.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// `name` as a quoted PostgreSQL identifier: any name (quotes, spaces, reserved words, mixed
/// case, non-ASCII letters) is safe inside double quotes once its own quotes are doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether PostgreSQL can hold `name` exactly as an identifier.
pub fn check_identifier(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an identifier must not be empty".to_owned());
    }
    if name.contains('\0') {
        return Err(format!("identifier {name:?} holds a NUL character"));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(format!(
            "identifier {name:?} is {} bytes; PostgreSQL keeps at most {MAX_IDENTIFIER_BYTES}",
            name.len()
        ));
    }
    Ok(())
}

/// A table in PostgreSQL: schema and name, unquoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetTable {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub name: String,
}

impl TargetTable {
    /// `"schema"."name"`, for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// Reads `schema.name` as operators write it (the first dot separates).
    pub fn parse(text: &str) -> Option<TargetTable> {
        let (schema, name) = text.split_once('.')?;
        (!schema.is_empty() && !name.is_empty()).then(|| TargetTable {
            schema: schema.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for TargetTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// One piece of a table name template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Database,
    Schema,
    Table,
}

/// A target table name made from the source's `{database}`, `{schema}` and `{table}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNameTemplate {
    pieces: Vec<Piece>,
}

impl TableNameTemplate {
    /// Parses a template; it must use `{table}`, and braces only for the three placeholders.
    pub fn parse(template: &str) -> Result<TableNameTemplate, String> {
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Literal(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in {template:?}"))?;
            let placeholder = &rest[open + 1..open + close];
            pieces.push(match placeholder {
                "database" => Piece::Database,
                "schema" => Piece::Schema,
                "table" => Piece::Table,
                other => {
                    return Err(format!(
                        "unknown placeholder `{{{other}}}`; use {{database}}, {{schema}}, {{table}}"
                    ));
                }
            });
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("stray `}}` in {template:?}"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.to_owned()));
        }
        if !pieces.contains(&Piece::Table) {
            return Err(format!(
                "{template:?} does not use {{table}}, so every table would land in one"
            ));
        }
        Ok(TableNameTemplate { pieces })
    }

    /// The target name of `source`.
    pub fn render(&self, source: &TableId) -> String {
        self.pieces
            .iter()
            .map(|piece| match piece {
                Piece::Literal(text) => text.as_str(),
                Piece::Database => &source.database,
                Piece::Schema => &source.schema,
                Piece::Table => &source.table,
            })
            .collect()
    }
}

/// `database.schema.table` of a source table.
pub fn source_name(table: &TableId) -> String {
    format!("{}.{}.{}", table.database, table.schema, table.table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_quoted_whole() {
        assert_eq!(
            quote_ident("Order \"Details\""),
            "\"Order \"\"Details\"\"\""
        );
        assert_eq!(quote_ident("select"), "\"select\"");
        assert_eq!(quote_ident("naïve"), "\"naïve\"");
    }

    #[test]
    fn identifiers_postgres_would_truncate_or_refuse_are_refused() {
        assert!(check_identifier("ok").is_ok());
        assert!(check_identifier("").is_err());
        assert!(check_identifier("a\0b").is_err());
        assert!(check_identifier(&"é".repeat(32)).is_err());
    }

    #[test]
    fn templates_render_from_the_source_name() {
        let source = TableId {
            database: "shop".into(),
            schema: "dbo".into(),
            table: "orders".into(),
        };
        let template = TableNameTemplate::parse("{database}_{schema}_{table}").unwrap();
        assert_eq!(template.render(&source), "shop_dbo_orders");
        assert_eq!(
            TableNameTemplate::parse("{table}").unwrap().render(&source),
            "orders"
        );
    }

    #[test]
    fn bad_templates_say_why() {
        assert!(
            TableNameTemplate::parse("{schema}")
                .unwrap_err()
                .contains("{table}")
        );
        assert!(
            TableNameTemplate::parse("{tabel}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(
            TableNameTemplate::parse("{table")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            TableNameTemplate::parse("{table}}")
                .unwrap_err()
                .contains("stray")
        );
    }

    #[test]
    fn target_names_parse_at_the_first_dot() {
        let table = TargetTable::parse("public.a.b").unwrap();
        assert_eq!(
            (table.schema.as_str(), table.name.as_str()),
            ("public", "a.b")
        );
        assert!(TargetTable::parse("nodot").is_none());
    }
}

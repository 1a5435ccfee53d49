//! What the transformer's rules do to a table on its way to PostgreSQL, as far as comparing
//! it goes: where it lands, what its columns are called there, which columns cannot be
//! compared (masked, converted, dropped) and whether the table can be compared at all (a row
//! filter or dropped operations make the target a subset by design).
//!
//! The rules are read from the transformer's own configuration file, so the two cannot drift;
//! only the parts that matter here are interpreted, the rest of that file is ignored.

use std::collections::BTreeMap;
use std::path::Path;

use cdc_model::TablePattern;
use cdc_model::proto::TableId;
use serde::Deserialize;

/// The transformer's file, as far as the reconciler reads it.
#[derive(Debug, Default, Deserialize)]
struct TransformerFile {
    #[serde(default)]
    rules: Vec<RuleView>,
}

/// One `[[rules]]` entry: the actions that change what reaches PostgreSQL.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuleView {
    name: Option<String>,
    tables: String,
    include_columns: Option<Vec<String>>,
    exclude_columns: Option<Vec<String>>,
    rename_column: Option<Rename>,
    route: Option<Route>,
    mask: Option<ColumnOnly>,
    convert: Option<ConvertView>,
    filter: Option<String>,
    drop_operations: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
struct Rename {
    from: String,
    to: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Route {
    database: Option<String>,
    schema: Option<String>,
    table: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct ColumnOnly {
    column: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ConvertView {
    column: String,
    to: String,
}

/// The rules of a transformer configuration file.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<RuleView>,
}

/// A table as it reaches PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downstream {
    /// The table id after routing (the loader names the target table from it).
    pub table: TableId,
    /// Source column name to its name downstream, or to why it is not compared.
    pub columns: BTreeMap<String, Result<String, String>>,
    /// Why the table cannot be compared, if it cannot.
    pub not_comparable: Option<String>,
}

impl Rules {
    /// Reads the `[[rules]]` of the transformer's configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Rules> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "compare.transformer_config: cannot read {}: {e}",
                path.display()
            )
        })?;
        Self::parse(&text).map_err(|e| {
            anyhow::anyhow!(
                "compare.transformer_config: {} has no readable [[rules]]: {e}",
                path.display()
            )
        })
    }

    /// Reads the `[[rules]]` of a transformer configuration's TOML text.
    pub fn parse(text: &str) -> Result<Rules, config::ConfigError> {
        let file: TransformerFile = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        Ok(Rules { rules: file.rules })
    }

    /// What the rules make of `table` with `columns` (source names).
    pub fn downstream(&self, table: &TableId, columns: &[String]) -> Downstream {
        let mut current = table.clone();
        let mut names: BTreeMap<String, Result<String, String>> =
            columns.iter().map(|c| (c.clone(), Ok(c.clone()))).collect();
        let mut not_comparable = None;
        for (index, rule) in self.rules.iter().enumerate() {
            if !TablePattern::new(&rule.tables).matches(&current) {
                continue;
            }
            let rule_name = rule
                .name
                .clone()
                .unwrap_or_else(|| format!("rule-{}", index + 1));
            if let Some(kept) = &rule.include_columns {
                let dropped: Vec<String> = names
                    .values()
                    .filter_map(|v| v.as_ref().ok())
                    .filter(|n| !kept.iter().any(|k| k.eq_ignore_ascii_case(n)))
                    .cloned()
                    .collect();
                for name in dropped {
                    exclude(&mut names, &name, format!("not kept by {rule_name}"));
                }
            }
            for dropped in rule.exclude_columns.iter().flatten() {
                exclude(&mut names, dropped, format!("dropped by {rule_name}"));
            }
            if let Some(mask) = &rule.mask {
                exclude(&mut names, &mask.column, format!("masked by {rule_name}"));
            }
            if let Some(convert) = &rule.convert
                && convert.to != "timestamptz_utc"
            {
                exclude(
                    &mut names,
                    &convert.column,
                    format!("converted to {} by {rule_name}", convert.to),
                );
            }
            if let Some(rename) = &rule.rename_column {
                for value in names.values_mut() {
                    if value.as_deref() == Ok(rename.from.as_str()) {
                        *value = Ok(rename.to.clone());
                    }
                }
            }
            if let Some(route) = &rule.route {
                let replace = |part: &mut String, new: &Option<String>| {
                    if let Some(new) = new {
                        part.clone_from(new);
                    }
                };
                replace(&mut current.database, &route.database);
                replace(&mut current.schema, &route.schema);
                replace(&mut current.table, &route.table);
            }
            if rule.filter.is_some() {
                not_comparable = Some(format!(
                    "{rule_name} keeps only some rows (filter), so the target is a subset by design"
                ));
            }
            if rule.drop_operations.as_ref().is_some_and(|o| !o.is_empty()) {
                not_comparable = Some(format!(
                    "{rule_name} drops operations, so the target differs by design"
                ));
            }
        }
        Downstream {
            table: current,
            columns: names,
            not_comparable,
        }
    }
}

/// Marks the column known downstream as `downstream_name` as not compared, for `reason`.
fn exclude(
    names: &mut BTreeMap<String, Result<String, String>>,
    downstream_name: &str,
    reason: String,
) {
    for value in names.values_mut() {
        if value.as_deref() == Ok(downstream_name) {
            *value = Err(reason.clone());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rules(toml_text: &str) -> Rules {
        Rules::parse(toml_text).unwrap()
    }

    fn orders() -> TableId {
        TableId {
            database: "shop".into(),
            schema: "dbo".into(),
            table: "orders".into(),
        }
    }

    fn columns() -> Vec<String> {
        ["id", "email", "card", "note"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    #[test]
    fn renames_routes_and_masks_are_followed() {
        let rules = rules(
            r#"
            [kafka]
            brokers = "ignored"
            [[rules]]
            tables = "shop.dbo.orders"
            rename_column = { from = "email", to = "contact" }
            [[rules]]
            name = "hide-cards"
            tables = "shop.dbo.*"
            mask = { column = "card", method = "redact" }
            [[rules]]
            tables = "shop.dbo.orders"
            exclude_columns = ["note"]
            [[rules]]
            tables = "shop.dbo.orders"
            route = { schema = "sales" }
            [[rules]]
            tables = "shop.dbo.orders"
            mask = { column = "id", method = "hmac" }
            "#,
        );
        let downstream = rules.downstream(&orders(), &columns());
        assert_eq!(downstream.table.schema, "sales");
        assert_eq!(downstream.columns["email"], Ok("contact".to_owned()));
        assert_eq!(
            downstream.columns["card"],
            Err("masked by hide-cards".to_owned())
        );
        assert_eq!(
            downstream.columns["note"],
            Err("dropped by rule-3".to_owned())
        );
        // The last rule matches the routed name no more: rules see the table as routed.
        assert_eq!(downstream.columns["id"], Ok("id".to_owned()));
        assert_eq!(downstream.not_comparable, None);
    }

    #[test]
    fn filters_make_a_table_not_comparable() {
        let rules = rules(
            r#"
            [[rules]]
            tables = "shop.*.*"
            filter = "status <> 'draft'"
            "#,
        );
        let downstream = rules.downstream(&orders(), &columns());
        assert!(
            downstream
                .not_comparable
                .is_some_and(|reason| reason.contains("filter"))
        );
    }
}

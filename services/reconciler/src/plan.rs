//! Which tables a run compares and how: the captured tables of SQL Server (as the extractor
//! discovers them), where each lands in PostgreSQL (the loader's naming, after the
//! transformer's routes), and which columns pair up.

use cdc_extractor::discovery::{self, Selection};
use cdc_loader::config::{DeleteMode, TargetConfig};
use cdc_loader::naming::{TableNameTemplate, TargetTable, quote_ident};
use cdc_model::TablePattern;
use cdc_model::proto::{ColumnSchema, TableId};
use sqlx::postgres::PgPool;

use crate::canonical::{ColumnPair, SourceKind, TableSql, TargetKind};
use crate::config::ReconcilerConfig;
use crate::databases::DbError;
use crate::rules::Rules;

/// One table of a run.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// The source table.
    pub id: TableId,
    /// `database.schema.table`.
    pub name: String,
    /// Where the loader writes it.
    pub target: TargetTable,
    /// The comparison's SQL, or why the table cannot be compared.
    pub sql: Result<TableSql, String>,
    /// Columns left out, as `column: reason`.
    pub excluded: Vec<String>,
    /// The key columns' schemas, in key order (to type keys for repair).
    pub key_schema: Vec<ColumnSchema>,
}

/// The tables of `database` that match `wanted` (all configured tables when empty).
pub async fn plan_database(
    config: &ReconcilerConfig,
    rules: &Rules,
    client: &mut cdc_extractor::sql::SqlClient,
    pool: &PgPool,
    database: &str,
    wanted: &[TablePattern],
) -> Result<Vec<TablePlan>, anyhow::Error> {
    let snapshot_defaults = cdc_extractor::config::SnapshotConfig::default();
    let selection = Selection {
        tables: &config.tables,
        watermark: snapshot_defaults.watermark_parts().unwrap_or(("", "")),
    };
    let captured = discovery::discover(client, database, &selection).await?;
    let template = TableNameTemplate::parse(&config.target.table_name)
        .map_err(|e| anyhow::anyhow!("target.table_name: {e}"))?;
    let mut plans = Vec::new();
    for table in captured {
        if !wanted.is_empty() && !wanted.iter().any(|p| p.matches(&table.id)) {
            continue;
        }
        let Some(instance) = table.newest() else {
            continue;
        };
        let schema = &instance.schema;
        let names: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
        let downstream = rules.downstream(&table.id, &names);
        let target = TargetTable {
            schema: config.target.schema.clone(),
            name: template.render(&downstream.table),
        };
        let target_columns = target_columns(pool, &target).await?;
        let name = discovery::table_name(&table.id);
        let mut excluded = Vec::new();
        let mut pairs = Vec::new();
        let mut key_problem = None;
        let ordered = schema
            .key_columns
            .iter()
            .filter_map(|k| schema.columns.iter().find(|c| &c.name == k))
            .chain(
                schema
                    .columns
                    .iter()
                    .filter(|c| !schema.key_columns.contains(&c.name)),
            );
        for column in ordered {
            let declared = column
                .r#type
                .as_ref()
                .map(|t| t.source_type.clone())
                .unwrap_or_default();
            let pair = pair_column(
                &column.name,
                &declared,
                downstream.columns.get(&column.name),
                &target_columns,
            );
            match pair {
                Ok(pair) => pairs.push(pair),
                Err(reason) => {
                    if schema.key_columns.contains(&column.name) {
                        key_problem = Some(format!("key column {}: {reason}", column.name));
                    }
                    excluded.push(format!("{}: {reason}", column.name));
                }
            }
        }
        let sql = if let Some(reason) = downstream.not_comparable {
            Err(reason)
        } else if target_columns.is_empty() {
            Err(format!(
                "target table {target} does not exist (the loader creates it with the first event)"
            ))
        } else if let Some(problem) = key_problem {
            Err(problem)
        } else {
            Ok(TableSql {
                source_table: format!(
                    "{}.{}",
                    cdc_extractor::sql::quote(&table.id.schema),
                    cdc_extractor::sql::quote(&table.id.table)
                ),
                target_table: target.quoted(),
                key_len: schema.key_columns.len(),
                columns: pairs,
                target_filter: soft_delete_filter(&config.target),
            })
        };
        plans.push(TablePlan {
            id: table.id.clone(),
            name,
            target,
            sql,
            excluded,
            key_schema: schema
                .key_columns
                .iter()
                .filter_map(|k| schema.columns.iter().find(|c| &c.name == k).cloned())
                .collect(),
        });
    }
    Ok(plans)
}

fn soft_delete_filter(target: &TargetConfig) -> Option<String> {
    (target.delete_mode == DeleteMode::Soft)
        .then(|| format!("r.{} IS NULL", quote_ident("_cdc_deleted_at")))
}

/// How one source column compares, or why it does not.
fn pair_column(
    name: &str,
    declared: &str,
    downstream: Option<&Result<String, String>>,
    target_columns: &[(String, String)],
) -> Result<ColumnPair, String> {
    let target_name = match downstream {
        Some(Ok(target_name)) => target_name.clone(),
        Some(Err(reason)) => return Err(reason.clone()),
        None => name.to_owned(),
    };
    let source = SourceKind::of_declared(declared)
        .ok_or_else(|| format!("SQL Server type {declared} has no canonical form"))?;
    let Some((_, data_type)) = target_columns.iter().find(|(n, _)| *n == target_name) else {
        return Err(format!("no column {target_name} in the target table"));
    };
    let target = TargetKind::of_data_type(data_type)
        .filter(|kind| source.compares_with(*kind))
        .ok_or_else(|| {
            format!("SQL Server {declared} and PostgreSQL {data_type} do not compare")
        })?;
    Ok(ColumnPair {
        source_name: name.to_owned(),
        target_name,
        source,
        target,
    })
}

/// `(column, data_type)` of a PostgreSQL table; empty when it does not exist.
async fn target_columns(
    pool: &PgPool,
    table: &TargetTable,
) -> Result<Vec<(String, String)>, DbError> {
    sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
    )
    .bind(&table.schema)
    .bind(&table.name)
    .fetch_all(pool)
    .await
    .map_err(|source| DbError::Target {
        context: format!("reading the columns of {table}"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_pair_by_downstream_name_and_type() {
        let target = vec![
            ("id".to_owned(), "integer".to_owned()),
            ("contact".to_owned(), "character varying".to_owned()),
            ("price".to_owned(), "text".to_owned()),
        ];
        let pair = pair_column(
            "email",
            "nvarchar(80)",
            Some(&Ok("contact".into())),
            &target,
        );
        assert_eq!(
            pair.map(|p| (p.target_name, p.source, p.target)),
            Ok(("contact".to_owned(), SourceKind::Text, TargetKind::Text))
        );
        let price = pair_column("price", "decimal(12,2)", None, &target);
        assert_eq!(
            price.err().as_deref(),
            Some("SQL Server decimal(12,2) and PostgreSQL text do not compare")
        );
        let missing = pair_column("note", "nvarchar(10)", None, &target);
        assert_eq!(
            missing.err().as_deref(),
            Some("no column note in the target table")
        );
        let masked = pair_column("id", "int", Some(&Err("masked by r".into())), &target);
        assert_eq!(masked.err().as_deref(), Some("masked by r"));
    }
}

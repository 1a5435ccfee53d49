//! The system procedures of change data capture: `sys.sp_cdc_enable_db`, `sp_cdc_disable_db`,
//! `sp_cdc_enable_table`, `sp_cdc_disable_table`, `sp_cdc_cleanup_change_table`.

use std::collections::HashMap;

use sqlparser::ast::{BinaryOperator, Expr, ObjectName};

use super::catalog::Catalog;
use super::cdc::{CaptureInstance, CapturedColumn, Lsn, cdc_error, now};
use super::error::{self, SqlError};
use super::expr::{Parameters, Scope, evaluate};
use crate::tds::types::SqlValue;

/// Runs `EXEC name args` in `database`.
pub fn execute(
    catalog: &mut Catalog,
    database: &str,
    name: &ObjectName,
    arguments: &[Expr],
    parameters: &Parameters,
) -> Result<(), SqlError> {
    let procedure = name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_lowercase())
        .unwrap_or_default();
    let named = named_arguments(arguments, parameters)?;
    let db = catalog
        .database_mut(database)
        .ok_or_else(|| error::database_missing(database))?;
    match procedure.as_str() {
        "sp_cdc_enable_db" => {
            db.cdc.enabled = true;
            Ok(())
        }
        "sp_cdc_disable_db" => {
            db.cdc = Default::default();
            Ok(())
        }
        "sp_cdc_enable_table" => enable_table(catalog, database, &named),
        "sp_cdc_disable_table" => disable_table(catalog, database, &named),
        "sp_cdc_cleanup_change_table" => cleanup(catalog, database, &named),
        _ => Err(cdc_error(
            2812,
            format!("Could not find stored procedure '{name}'."),
        )),
    }
}

type Named = HashMap<String, SqlValue>;

fn named_arguments(arguments: &[Expr], parameters: &Parameters) -> Result<Named, SqlError> {
    let mut named = HashMap::new();
    for argument in arguments {
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = argument
        else {
            return Err(error::not_implemented(
                "positional arguments to CDC procedures",
            ));
        };
        let Expr::Identifier(name) = left.as_ref() else {
            return Err(error::syntax(&left.to_string()));
        };
        named.insert(
            name.value.to_lowercase(),
            evaluate(right, Scope::constants(parameters))?.value,
        );
    }
    Ok(named)
}

fn text(named: &Named, key: &str) -> Option<String> {
    match named.get(key) {
        Some(SqlValue::Text(t)) => Some(t.clone()),
        _ => None,
    }
}

fn required(named: &Named, key: &str, procedure: &str) -> Result<SqlValue, SqlError> {
    named.get(key).cloned().ok_or_else(|| cdc_error(201, format!("Procedure or function '{procedure}' expects parameter '{key}', which was not supplied.")))
}

fn enable_table(catalog: &mut Catalog, database: &str, named: &Named) -> Result<(), SqlError> {
    const PROCEDURE: &str = "sp_cdc_enable_table";
    let schema = text(named, "@source_schema").ok_or_else(|| cdc_error(201, format!("Procedure or function '{PROCEDURE}' expects parameter '@source_schema', which was not supplied.")))?;
    let source = text(named, "@source_name").ok_or_else(|| cdc_error(201, format!("Procedure or function '{PROCEDURE}' expects parameter '@source_name', which was not supplied.")))?;
    let role_name = match required(named, "@role_name", PROCEDURE)? {
        SqlValue::Text(role) => Some(role),
        _ => None,
    };
    let object_id = catalog.allocate_object_id();
    let db = catalog
        .database_mut(database)
        .ok_or_else(|| error::database_missing(database))?;
    if !db.cdc.enabled {
        return Err(cdc_error(
            22901,
            format!(
                "The database '{}' is not enabled for Change Data Capture. Ensure that the correct database context is set and retry the operation. To report on the databases enabled for Change Data Capture, query the is_cdc_enabled column in the sys.databases catalog view.",
                db.name
            ),
        ));
    }
    let table = db
        .table(&schema, &source)
        .ok_or_else(|| error::invalid_object(&format!("{schema}.{source}")))?
        .clone_shape();
    let name = text(named, "@capture_instance")
        .unwrap_or_else(|| format!("{}_{}", table.schema, table.name));
    if db.cdc.instance(&name).is_some() {
        return Err(cdc_error(
            22926,
            format!(
                "Could not create a capture instance because the capture instance name '{name}' already exists in the current database. Specify an explicit unique name for the parameter @capture_instance."
            ),
        ));
    }
    if db
        .cdc
        .instances
        .iter()
        .filter(|i| i.source_object_id == table.object_id)
        .count()
        >= 2
    {
        return Err(cdc_error(
            22962,
            format!(
                "Two capture instances already exist for source table '{}.{}'. A table can have at most two capture instances. If the current tracking options are not appropriate, disable the capture instance that is no longer required and then retry.",
                table.schema, table.name
            ),
        ));
    }
    let wanted: Option<Vec<String>> = text(named, "@captured_column_list").map(|list| {
        list.split(',')
            .map(|c| c.trim().trim_matches(['[', ']']).to_lowercase())
            .collect()
    });
    let mut columns = Vec::new();
    for column in &table.columns {
        if wanted
            .as_ref()
            .is_none_or(|w| w.contains(&column.name.to_lowercase()))
        {
            columns.push(CapturedColumn {
                name: column.name.clone(),
                column_id: column.column_id,
                sql_type: column.sql_type,
                ordinal: columns.len() as i32 + 1,
            });
        }
    }
    let index_columns: Vec<(String, i32)> = table
        .primary_key
        .iter()
        .map(|i| (table.columns[*i].name.clone(), table.columns[*i].column_id))
        .collect();
    if index_columns
        .iter()
        .any(|(name, _)| !columns.iter().any(|c| c.name == *name))
    {
        return Err(cdc_error(22945, "Could not create a capture instance because the captured column list must include the columns of the unique index.".to_owned()));
    }
    let supports_net_changes = !matches!(
        named.get("@supports_net_changes"),
        Some(SqlValue::Int(0) | SqlValue::Bit(false))
    ) && !index_columns.is_empty();
    let start_lsn: Lsn = db.cdc.allocate_lsn();
    db.cdc.instances.push(CaptureInstance {
        name,
        object_id,
        source_object_id: table.object_id,
        start_lsn,
        role_name,
        supports_net_changes,
        columns,
        index_columns,
        index_name: table.primary_key_name.clone(),
        create_date: now(),
        rows: Vec::new(),
    });
    Ok(())
}

fn disable_table(catalog: &mut Catalog, database: &str, named: &Named) -> Result<(), SqlError> {
    let schema = text(named, "@source_schema").unwrap_or_default();
    let source = text(named, "@source_name").unwrap_or_default();
    let which = text(named, "@capture_instance").unwrap_or_default();
    let db = catalog
        .database_mut(database)
        .ok_or_else(|| error::database_missing(database))?;
    let object_id = db
        .table(&schema, &source)
        .ok_or_else(|| error::invalid_object(&format!("{schema}.{source}")))?
        .object_id;
    let before = db.cdc.instances.len();
    db.cdc.instances.retain(|i| {
        !(i.source_object_id == object_id
            && (which.eq_ignore_ascii_case("all") || i.name.eq_ignore_ascii_case(&which)))
    });
    if db.cdc.instances.len() == before {
        return Err(cdc_error(
            22985,
            format!(
                "Could not find the capture instance '{which}' for source table '{schema}.{source}'."
            ),
        ));
    }
    Ok(())
}

fn cleanup(catalog: &mut Catalog, database: &str, named: &Named) -> Result<(), SqlError> {
    let name = text(named, "@capture_instance").unwrap_or_default();
    let low_water_mark = match named.get("@low_water_mark") {
        Some(SqlValue::Binary(bytes)) if bytes.len() == 10 => {
            let mut lsn = [0u8; 10];
            lsn.copy_from_slice(bytes);
            lsn
        }
        _ => {
            return Err(cdc_error(
                22964,
                "LSN NULL, specified as the low water mark, is not valid.".to_owned(),
            ));
        }
    };
    let db = catalog
        .database_mut(database)
        .ok_or_else(|| error::database_missing(database))?;
    let max_lsn = db.cdc.max_lsn;
    let instance = db
        .cdc
        .instances
        .iter_mut()
        .find(|i| i.name.eq_ignore_ascii_case(&name))
        .ok_or_else(|| {
            cdc_error(
                22985,
                format!("Could not find the capture instance '{name}'."),
            )
        })?;
    if low_water_mark > max_lsn {
        return Err(cdc_error(
            22957,
            format!(
                "LSN {}, specified as the new low endpoint for the change table associated with capture instance '{name}', is not within the Change Data Capture timeline.",
                hex(&low_water_mark)
            ),
        ));
    }
    instance
        .rows
        .retain(|r| super::cdc::start_lsn(r) >= low_water_mark.as_slice());
    // The instance's minimum LSN becomes the low water mark: readers below it have lost changes.
    instance.start_lsn = instance.start_lsn.max(low_water_mark);
    Ok(())
}

fn hex(lsn: &Lsn) -> String {
    lsn.iter().map(|b| format!("{b:02X}")).collect()
}

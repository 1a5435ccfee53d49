//! CREATE, ALTER and DROP TABLE. DDL takes effect at once, also inside a transaction (the
//! simulator does not roll DDL back).

use sqlparser::ast::{
    AlterTableOperation, ColumnDef, ColumnOption, CreateTable, Expr, IdentityPropertyFormatKind,
    IdentityPropertyKind, ObjectName, TableConstraint,
};

use super::catalog::{Catalog, Column, Table};
use super::datatype;
use super::error::{self, SqlError};
use crate::tds::types::SqlValue;

/// `(schema, table)` of a possibly qualified name; the schema defaults to `dbo`.
pub fn schema_and_table(name: &ObjectName) -> (String, String) {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(|i| i.value.clone())
        .collect();
    match parts.as_slice() {
        [.., schema, table] => (schema.clone(), table.clone()),
        [table] => ("dbo".to_owned(), table.clone()),
        [] => ("dbo".to_owned(), String::new()),
    }
}

/// CREATE TABLE.
pub fn create_table(
    catalog: &mut Catalog,
    database: &str,
    create: &CreateTable,
) -> Result<(), SqlError> {
    let (schema, name) = schema_and_table(&create.name);
    if catalog
        .database(database)
        .and_then(|d| d.table(&schema, &name))
        .is_some()
    {
        return Err(error::object_exists(&name));
    }
    if !catalog
        .database(database)
        .is_some_and(|d| d.has_schema(&schema))
    {
        return Err(error::schema_missing(&schema));
    }
    let object_id = catalog.allocate_object_id();
    let mut table = Table {
        object_id,
        schema: schema.clone(),
        name: name.clone(),
        columns: Vec::new(),
        primary_key: Vec::new(),
        primary_key_name: format!("PK__{name}__{object_id:08X}"),
        identity: None,
        rows: Default::default(),
        next_row_id: 0,
        next_column_id: 1,
    };
    for definition in &create.columns {
        add_column(&mut table, definition)?;
    }
    for constraint in &create.constraints {
        if let TableConstraint::PrimaryKey(pk) = constraint {
            let mut key = Vec::new();
            for column in &pk.columns {
                let column_name = column.column.expr.to_string();
                let index = table
                    .column_index(&column_name)
                    .ok_or_else(|| error::invalid_column(&column_name))?;
                table.columns[index].nullable = false;
                key.push(index);
            }
            table.primary_key = key;
            if let Some(pk_name) = &pk.name {
                table.primary_key_name = pk_name.value.clone();
            }
        }
    }
    let db = catalog
        .database_mut(database)
        .ok_or_else(|| error::database_missing(database))?;
    db.tables
        .insert((schema.to_lowercase(), name.to_lowercase()), table);
    Ok(())
}

fn add_column(table: &mut Table, definition: &ColumnDef) -> Result<usize, SqlError> {
    let declared = definition.data_type.to_string();
    let sql_type = datatype::parse(&declared)
        .ok_or_else(|| unknown_type(table.columns.len() + 1, &definition.name.value, &declared))?;
    let mut column = Column {
        name: definition.name.value.clone(),
        sql_type,
        nullable: true,
        identity: false,
        column_id: table.next_column_id,
    };
    let mut primary = false;
    for option in &definition.options {
        match &option.option {
            ColumnOption::NotNull => column.nullable = false,
            ColumnOption::Null => column.nullable = true,
            ColumnOption::PrimaryKey(_) => primary = true,
            ColumnOption::Identity(IdentityPropertyKind::Identity(property)) => {
                column.identity = true;
                column.nullable = false;
                let (seed, increment) = match &property.parameters {
                    Some(IdentityPropertyFormatKind::FunctionCall(p)) => {
                        (integer(&p.seed)?, integer(&p.increment)?)
                    }
                    _ => (1, 1),
                };
                table.identity = Some((seed, increment));
            }
            ColumnOption::Collation(name) => column_collation(&column, name)?,
            _ => {}
        }
    }
    table.next_column_id += 1;
    table.columns.push(column);
    let index = table.columns.len() - 1;
    if primary {
        table.columns[index].nullable = false;
        table.primary_key = vec![index];
    }
    Ok(index)
}

/// A column's COLLATE: columns keep the default collation, so only a collation that stores
/// and compares text the same way (code page 1252, case-insensitive) is accepted; any other
/// is refused rather than ignored.
fn column_collation(column: &Column, name: &ObjectName) -> Result<(), SqlError> {
    let shown = name.to_string();
    let collation = super::collation::Collation::parse(&shown)?;
    if !datatype::is_character(column.sql_type) {
        return Err(error::not_implemented(
            "COLLATE on a column that is not char/varchar/nchar/nvarchar",
        ));
    }
    let default = super::collation::Collation::server_default();
    if collation.code_page != default.code_page || collation.folding != default.folding {
        return Err(error::not_implemented(&format!(
            "columns in the collation {shown} (columns keep the default collation)"
        )));
    }
    Ok(())
}

fn integer(expr: &Expr) -> Result<i64, SqlError> {
    let text = expr.to_string();
    text.parse::<i64>().map_err(|_| error::syntax(&text))
}

fn unknown_type(position: usize, column: &str, declared: &str) -> SqlError {
    let _ = column;
    crate::tds::token::ServerMessage {
        number: 2715,
        state: 7,
        class: 16,
        text: format!(
            "Column, parameter, or variable #{position}: Cannot find data type {declared}."
        ),
    }
}

/// DROP TABLE.
pub fn drop_table(
    catalog: &mut Catalog,
    database: &str,
    names: &[ObjectName],
    if_exists: bool,
) -> Result<(), SqlError> {
    let db = catalog
        .database_mut(database)
        .ok_or_else(|| error::database_missing(database))?;
    for name in names {
        let (schema, table) = schema_and_table(name);
        if db
            .tables
            .remove(&(schema.to_lowercase(), table.to_lowercase()))
            .is_none()
            && !if_exists
        {
            return Err(error::cannot_drop("table", &table));
        }
    }
    Ok(())
}

/// ALTER TABLE … ADD column / DROP COLUMN.
pub fn alter_table(
    catalog: &mut Catalog,
    database: &str,
    name: &ObjectName,
    operations: &[AlterTableOperation],
) -> Result<(), SqlError> {
    let (schema, table_name) = schema_and_table(name);
    let table = catalog
        .database_mut(database)
        .and_then(|d| d.table_mut(&schema, &table_name))
        .ok_or_else(|| error::invalid_object(&table_name))?;
    for operation in operations {
        match operation {
            AlterTableOperation::AddColumn { column_def, .. } => {
                if table.column_index(&column_def.name.value).is_some() {
                    return Err(crate::tds::token::ServerMessage {
                        number: 2705,
                        state: 4,
                        class: 16,
                        text: format!(
                            "Column names in each table must be unique. Column name '{}' in table '{}' is specified more than once.",
                            column_def.name.value, table.name
                        ),
                    });
                }
                let index = add_column(table, column_def)?;
                if !table.columns[index].nullable && !table.rows.is_empty() {
                    table.columns.pop();
                    return Err(crate::tds::token::ServerMessage {
                        number: 4901,
                        state: 1,
                        class: 16,
                        text: format!(
                            "ALTER TABLE only allows columns to be added that can contain nulls, or have a DEFAULT definition specified. Column '{}' cannot be added to non-empty table '{}' because it does not satisfy these conditions.",
                            column_def.name.value, table.name
                        ),
                    });
                }
                for slot in table.rows.values_mut() {
                    slot.committed
                        .iter_mut()
                        .for_each(|row| row.push(SqlValue::Null));
                    if let Some(pending) = slot.pending.as_mut() {
                        pending
                            .row
                            .iter_mut()
                            .for_each(|row| row.push(SqlValue::Null));
                    }
                }
            }
            AlterTableOperation::DropColumn { column_names, .. } => {
                for column_name in column_names {
                    let index = table
                        .column_index(&column_name.value)
                        .ok_or_else(|| error::invalid_column(&column_name.value))?;
                    if table.primary_key.contains(&index) {
                        return Err(crate::tds::token::ServerMessage {
                            number: 5074,
                            state: 1,
                            class: 16,
                            text: format!(
                                "The object '{}' is dependent on column '{}'.",
                                table.primary_key_name, column_name.value
                            ),
                        });
                    }
                    table.columns.remove(index);
                    table.primary_key.iter_mut().for_each(|k| {
                        if *k > index {
                            *k -= 1
                        }
                    });
                    for slot in table.rows.values_mut() {
                        slot.committed.iter_mut().for_each(|row| {
                            row.remove(index);
                        });
                        if let Some(pending) = slot.pending.as_mut() {
                            pending.row.iter_mut().for_each(|row| {
                                row.remove(index);
                            });
                        }
                    }
                }
            }
            other => return Err(error::not_implemented(&format!("ALTER TABLE {other}"))),
        }
    }
    Ok(())
}

/// CREATE SCHEMA.
pub fn create_schema(
    catalog: &mut Catalog,
    database: &str,
    name: &sqlparser::ast::SchemaName,
) -> Result<(), SqlError> {
    let object = match name {
        sqlparser::ast::SchemaName::Simple(object)
        | sqlparser::ast::SchemaName::NamedAuthorization(object, _) => object,
        sqlparser::ast::SchemaName::UnnamedAuthorization(_) => {
            return Err(error::syntax("AUTHORIZATION"));
        }
    };
    let schema = object
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
        .unwrap_or_default();
    let db = catalog
        .database_mut(database)
        .ok_or_else(|| error::database_missing(database))?;
    if db.has_schema(&schema) {
        return Err(error::object_exists(&schema));
    }
    db.schemas.insert(schema.to_lowercase());
    Ok(())
}

//! SQL Server's errors, with their real numbers, severities and texts.

use crate::tds::token::ServerMessage;

/// A SQL Server error as the client sees it.
pub type SqlError = ServerMessage;

fn error(number: i32, class: u8, state: u8, text: String) -> SqlError {
    ServerMessage {
        number,
        state,
        class,
        text,
    }
}

/// 102: the batch does not parse.
pub fn syntax(near: &str) -> SqlError {
    error(102, 15, 1, format!("Incorrect syntax near '{near}'."))
}

/// 208: a table or view that does not exist.
pub fn invalid_object(name: &str) -> SqlError {
    error(208, 16, 1, format!("Invalid object name '{name}'."))
}

/// 207: a column that does not exist.
pub fn invalid_column(name: &str) -> SqlError {
    error(207, 16, 1, format!("Invalid column name '{name}'."))
}

/// 137: a variable that was not declared.
pub fn undeclared_variable(name: &str) -> SqlError {
    error(
        137,
        15,
        2,
        format!("Must declare the scalar variable \"{name}\"."),
    )
}

/// 1801: CREATE DATABASE of an existing name.
pub fn database_exists(name: &str) -> SqlError {
    error(
        1801,
        16,
        3,
        format!("Database '{name}' already exists. Choose a different database name."),
    )
}

/// 911: USE of a database that does not exist.
pub fn database_missing(name: &str) -> SqlError {
    error(
        911,
        16,
        1,
        format!("Database '{name}' does not exist. Make sure that the name is entered correctly."),
    )
}

/// 3701: DROP of something that does not exist.
pub fn cannot_drop(kind: &str, name: &str) -> SqlError {
    error(
        3701,
        11,
        5,
        format!(
            "Cannot drop the {kind} '{name}', because it does not exist or you do not have permission."
        ),
    )
}

/// 245 / 8114: a value that does not convert to the target type.
pub fn conversion_failed(value: &str, target: &str) -> SqlError {
    error(
        245,
        16,
        1,
        format!("Conversion failed when converting the value '{value}' to data type {target}."),
    )
}

/// 8115 / 220: arithmetic overflow converting to a type.
pub fn overflow(target: &str) -> SqlError {
    error(
        8115,
        16,
        2,
        format!("Arithmetic overflow error converting expression to data type {target}."),
    )
}

/// 529: a conversion SQL Server does not allow at all.
pub fn conversion_not_allowed(from: &str, to: &str) -> SqlError {
    error(
        529,
        16,
        2,
        format!("Explicit conversion from data type {from} to {to} is not allowed."),
    )
}

/// 2627: duplicate primary key.
pub fn primary_key_violation(constraint: &str, table: &str, key: &str) -> SqlError {
    error(
        2627,
        14,
        1,
        format!(
            "Violation of PRIMARY KEY constraint '{constraint}'. Cannot insert duplicate key in object '{table}'. The duplicate key value is ({key})."
        ),
    )
}

/// 515: NULL into a NOT NULL column.
pub fn null_not_allowed(column: &str, table: &str, statement: &str) -> SqlError {
    error(
        515,
        16,
        2,
        format!(
            "Cannot insert the value NULL into column '{column}', table '{table}'; column does not allow nulls. {statement} fails."
        ),
    )
}

/// 2628: a string or binary value longer than its column.
pub fn truncation(table: &str, column: &str, value: &str) -> SqlError {
    error(
        2628,
        16,
        1,
        format!(
            "String or binary data would be truncated in table '{table}', column '{column}'. Truncated value: '{value}'."
        ),
    )
}

/// 3902: COMMIT without BEGIN TRANSACTION.
pub fn commit_without_begin() -> SqlError {
    error(
        3902,
        16,
        1,
        "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.".to_owned(),
    )
}

/// 3903: ROLLBACK without BEGIN TRANSACTION.
pub fn rollback_without_begin() -> SqlError {
    error(
        3903,
        16,
        1,
        "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.".to_owned(),
    )
}

/// 18456: login failed.
pub fn login_failed(user: &str) -> SqlError {
    error(18456, 14, 1, format!("Login failed for user '{user}'."))
}

/// 4060: the login's initial database does not exist.
pub fn cannot_open_database(name: &str) -> SqlError {
    error(
        4060,
        11,
        1,
        format!("Cannot open database \"{name}\" requested by the login. The login failed."),
    )
}

/// 50000, a simulator-only error: valid T-SQL that the simulator does not implement. Never
/// sent by SQL Server with this text; it marks a gap in the simulator, not in the client.
pub fn not_implemented(what: &str) -> SqlError {
    error(50000, 16, 1, format!("mssql-sim does not implement {what}"))
}

/// 1222: a row another open transaction holds (the simulator reports instead of waiting).
pub fn lock_timeout() -> SqlError {
    error(
        1222,
        16,
        51,
        "Lock request time out period exceeded.".to_owned(),
    )
}

/// 2714: CREATE TABLE of an existing name.
pub fn object_exists(name: &str) -> SqlError {
    error(
        2714,
        16,
        6,
        format!("There is already an object named '{name}' in the database."),
    )
}

/// 213 / 110: INSERT with a different number of values than columns.
pub fn insert_value_count() -> SqlError {
    error(110, 15, 1, "There are fewer columns in the INSERT statement than values specified in the VALUES clause. The number of values in the VALUES clause must match the number of columns specified in the INSERT statement.".to_owned())
}

/// 544: an explicit value for an IDENTITY column.
pub fn identity_insert(table: &str) -> SqlError {
    error(
        544,
        16,
        1,
        format!(
            "Cannot insert explicit value for identity column in table '{table}' when IDENTITY_INSERT is set to OFF."
        ),
    )
}

/// 8134: division by zero.
pub fn divide_by_zero() -> SqlError {
    error(8134, 16, 1, "Divide by zero error encountered.".to_owned())
}

/// 2760: a schema that does not exist.
pub fn schema_missing(schema: &str) -> SqlError {
    error(
        2760,
        16,
        1,
        format!(
            "The specified schema name \"{schema}\" either does not exist or you do not have permission to use it."
        ),
    )
}

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

/// 209: a column name more than one FROM item has.
pub fn ambiguous_column(name: &str) -> SqlError {
    error(209, 16, 1, format!("Ambiguous column name '{name}'."))
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

/// 257: a conversion that only CAST or CONVERT may make.
pub fn implicit_conversion(from: &str, to: &str) -> SqlError {
    error(
        257,
        16,
        3,
        format!(
            "Implicit conversion from data type {from} to {to} is not allowed. Use the CONVERT function to run this query."
        ),
    )
}

/// 206: two types that do not convert into each other at all.
pub fn operand_clash(from: &str, to: &str) -> SqlError {
    error(
        206,
        16,
        2,
        format!("Operand type clash: {from} is incompatible with {to}"),
    )
}

/// 8117: an operator on a type it does not apply to (`operator` as SQL Server names it:
/// add, subtract, multiply, divide, modulo).
pub fn invalid_operand(type_name: &str, operator: &str) -> SqlError {
    error(
        8117,
        16,
        1,
        format!("Operand data type {type_name} is invalid for {operator} operator."),
    )
}

/// 220: integer arithmetic that leaves its (tinyint or smallint) type.
pub fn arithmetic_overflow_value(type_name: &str, value: i128) -> SqlError {
    error(
        220,
        16,
        1,
        format!("Arithmetic overflow error for data type {type_name}, value = {value}."),
    )
}

/// 8114: text that is not a number of the target type (`from` is varchar or nvarchar).
pub fn converting_data_type(from: &str, to: &str) -> SqlError {
    error(
        8114,
        16,
        5,
        format!("Error converting data type {from} to {to}."),
    )
}

/// 245: text that is not an integer (or a bit).
pub fn conversion_failed_value(from: &str, value: &str, to: &str) -> SqlError {
    error(
        245,
        16,
        1,
        format!("Conversion failed when converting the {from} value '{value}' to data type {to}."),
    )
}

/// 248: integer text too large for its integer type.
pub fn conversion_overflowed(from: &str, value: &str, to: &str) -> SqlError {
    error(
        248,
        16,
        1,
        format!("The conversion of the {from} value '{value}' overflowed an {to} column."),
    )
}

/// 241: text that is not a date or time.
pub fn date_conversion_failed() -> SqlError {
    error(
        241,
        16,
        1,
        "Conversion failed when converting date and/or time from character string.".to_owned(),
    )
}

/// 8169: text that is not a uniqueidentifier.
pub fn guid_conversion_failed() -> SqlError {
    error(
        8169,
        16,
        2,
        "Conversion failed when converting from a character string to uniqueidentifier.".to_owned(),
    )
}

/// 8170: a uniqueidentifier cast to a string shorter than 36 characters.
pub fn guid_result_space(to: &str) -> SqlError {
    error(
        8170,
        16,
        2,
        format!("Insufficient result space to convert uniqueidentifier value to {to}."),
    )
}

/// 8115 for a number too long for the string it is cast to.
pub fn overflow_converting(from: &str, to: &str) -> SqlError {
    error(
        8115,
        16,
        2,
        format!("Arithmetic overflow error converting {from} to data type {to}."),
    )
}

/// 537: SUBSTRING, LEFT or RIGHT with a negative length.
pub fn invalid_length(function: &str) -> SqlError {
    error(
        537,
        16,
        3,
        format!("Invalid length parameter passed to the {function} function."),
    )
}

/// 4145: a WHERE, HAVING, ON or WHEN that is not a condition.
pub fn not_a_condition(near: &str) -> SqlError {
    error(
        4145,
        15,
        1,
        format!(
            "An expression of non-boolean type specified in a context where a condition is expected, near '{near}'."
        ),
    )
}

/// 8120: a column in a grouped SELECT list outside the GROUP BY and every aggregate.
pub fn not_grouped(column: &str) -> SqlError {
    error(
        8120,
        16,
        1,
        format!(
            "Column '{column}' is invalid in the select list because it is not contained in either an aggregate function or the GROUP BY clause."
        ),
    )
}

/// 468: two different explicit (or implicit) collations meeting in one operation.
pub fn collation_conflict(left: &str, right: &str, operation: &str) -> SqlError {
    error(
        468,
        16,
        9,
        format!(
            "Cannot resolve the collation conflict between \"{left}\" and \"{right}\" in the {operation} operation."
        ),
    )
}

/// 174: a built-in function called with the wrong number of arguments.
pub fn argument_count(function: &str, count: usize) -> SqlError {
    error(
        174,
        15,
        1,
        format!("The {function} function requires {count} argument(s)."),
    )
}

/// 189: a built-in function with a variable number of arguments called with too few or many.
pub fn argument_range(function: &str, low: usize, high: usize) -> SqlError {
    error(
        189,
        15,
        1,
        format!("The {function} function requires {low} to {high} arguments."),
    )
}

/// 8116: an argument of a type a function does not take.
pub fn invalid_argument(type_name: &str, position: usize, function: &str) -> SqlError {
    error(
        8116,
        16,
        1,
        format!(
            "Argument data type {type_name} is invalid for argument {position} of {function} function."
        ),
    )
}

/// 195: a name that is no built-in function.
pub fn unknown_function(name: &str) -> SqlError {
    error(
        195,
        15,
        10,
        format!("'{name}' is not a recognized built-in function name."),
    )
}

/// 130: an aggregate over an expression that contains an aggregate.
pub fn nested_aggregate() -> SqlError {
    error(
        130,
        16,
        1,
        "Cannot perform an aggregate function on an expression containing an aggregate or a subquery."
            .to_owned(),
    )
}

/// 147: an aggregate in a WHERE clause (or another place it cannot be).
pub fn aggregate_in_where() -> SqlError {
    error(
        147,
        15,
        1,
        "An aggregate may not appear in the WHERE clause unless it is in a subquery contained in a HAVING clause or a select list, and the column being aggregated is an outer reference."
            .to_owned(),
    )
}

/// 8127: an ORDER BY item of a grouped query that is neither grouped nor aggregated.
pub fn order_by_not_grouped(column: &str) -> SqlError {
    error(
        8127,
        16,
        1,
        format!(
            "Column \"{column}\" is invalid in the ORDER BY clause because it is not contained in either an aggregate function or the GROUP BY clause."
        ),
    )
}

/// 108: ORDER BY position beyond the select list.
pub fn order_by_position(position: i64) -> SqlError {
    error(
        108,
        16,
        1,
        format!(
            "The ORDER BY position number {position} is out of range of the number of items in the select list."
        ),
    )
}

/// 9810 family: SWITCHOFFSET / TODATETIMEOFFSET with a time zone offset that is not one.
pub fn invalid_offset() -> SqlError {
    error(
        9812,
        16,
        1,
        "The timezone provided to builtin function switchoffset is invalid.".to_owned(),
    )
}

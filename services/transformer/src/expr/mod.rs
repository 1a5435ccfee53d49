//! Row filters: the `where = "…"` expressions operators write in the transformer's
//! configuration, compiled once per table schema and then tested against every row.
//!
//! ```text
//! amount >= 100 AND status IN ('open', 'paid') AND NOT deleted
//! ```
//!
//! # Grammar
//!
//! Lowest precedence first; keywords are case-insensitive.
//!
//! ```ebnf
//! expression     = or_expr ;
//! or_expr        = and_expr , { "OR" , and_expr } ;
//! and_expr       = not_expr , { "AND" , not_expr } ;
//! not_expr       = "NOT" , not_expr | predicate ;
//! predicate      = additive , [ comparison | null_test | in_test | between_test | like_test ] ;
//! comparison     = ( "=" | "!=" | "<>" | "<" | "<=" | ">" | ">=" ) , additive ;
//! null_test      = "IS" , [ "NOT" ] , "NULL" ;
//! in_test        = [ "NOT" ] , "IN" , "(" , in_item , { "," , in_item } , ")" ;
//! in_item        = [ "-" ] , number | string | "TRUE" | "FALSE" | "NULL" ;
//! between_test   = [ "NOT" ] , "BETWEEN" , additive , "AND" , additive ;
//! like_test      = [ "NOT" ] , "LIKE" , string , [ "ESCAPE" , string ] ;
//! additive       = multiplicative , { ( "+" | "-" ) , multiplicative } ;
//! multiplicative = unary , { ( "*" | "/" | "%" ) , unary } ;
//! unary          = "-" , unary | primary ;
//! primary        = number | string | "TRUE" | "FALSE" | "NULL" | column
//!                | "(" , expression , ")" ;
//! column         = identifier | '"' , quoted_char , { quoted_char } , '"'
//!                | "[" , bracket_char , { bracket_char } , "]" ;
//! identifier     = ( letter | "_" ) , { letter | digit | "_" } ;  (* ASCII, not a keyword *)
//! string         = "'" , { any character but "'" | "''" } , "'" ;
//! quoted_char    = any character but '"' | '""' ;
//! bracket_char   = any character but "]" | "]]" ;
//! number         = ( digits , [ "." , [ digits ] ] | "." , digits ) ,
//!                  [ ( "e" | "E" ) , [ "+" | "-" ] , digits ] ;
//! ```
//!
//! Reserved words: AND, OR, NOT, IS, NULL, IN, BETWEEN, LIKE, TRUE, FALSE; a column with
//! such a name must be quoted. ESCAPE is a keyword only right after a LIKE pattern. A
//! comparison cannot be chained (`a < b < c` is an error); at most 100 levels of nesting.
//!
//! # Types
//!
//! | type | columns | literals |
//! |---|---|---|
//! | boolean | BOOL | `TRUE`, `FALSE` |
//! | number | INT16/32/64, DECIMAL, FLOAT32/64 | `12`, `12.50` (exact), `1e3` (float) |
//! | text | TEXT, JSON, XML | `'it''s'` |
//! | uuid | UUID | a string, read as a uuid when compared with the column |
//! | date, time, timestamp, timestamptz | DATE, TIME, TIMESTAMP, TIMESTAMPTZ | a string, read as ISO 8601 when compared with the column |
//! | bytes | BYTES | none: only `IS [NOT] NULL` |
//!
//! Comparisons need operands of the same type (or NULL); arithmetic needs numbers; LIKE
//! needs text; the whole expression must be boolean. All of this is checked by
//! [`Filter::compile`], as are the string literals compared with uuid and temporal columns.
//!
//! # Semantics
//!
//! - **NULL** is SQL's unknown: a comparison or arithmetic with NULL is NULL, `NOT NULL` is
//!   NULL, `FALSE AND NULL` is FALSE, `TRUE OR NULL` is TRUE. `x IN (a, b)` means
//!   `x = a OR x = b` (so NULL when `x` is NULL, or when no item matches and one is NULL)
//!   and `x BETWEEN a AND b` means `x >= a AND x <= b`. A row matches only when the
//!   expression is TRUE.
//! - **Numbers** are exact (an i128 unscaled value and a decimal scale) for integer and
//!   decimal columns and literals: scales are aligned for comparison, `+` and `-`, and add
//!   up for `*`, so `0.1 + 0.2 = 0.3` is TRUE. Any result that does not fit falls back to
//!   f64. A comparison involving a float is done in f64. NaN equals NaN and is greater than
//!   every other number, as in PostgreSQL.
//! - **Division** is true division, not T-SQL's integer division: `7 / 2` is `3.5`. The
//!   quotient of exact numbers stays exact when it has at most 18 fractional digits (or the
//!   dividend's scale, if larger), else it is the f64 quotient. `%` is the remainder with
//!   the dividend's sign, exact on exact numbers (`5.5 % 2 = 1.5`), f64 otherwise.
//!   **Dividing by zero (exact or float) gives NULL**, not an error or infinity.
//! - **Text** compares by Unicode code point and case-sensitively, as PostgreSQL's `C`
//!   collation does, not case-insensitively as SQL Server's default collation would. LIKE
//!   supports `%` and `_` (and `ESCAPE`), not SQL Server's `[…]` classes, and is
//!   case-sensitive too.
//! - **Uuids** order as their lowercase hyphenated text. A literal may be written in either
//!   case, with or without hyphens or braces.
//! - **Temporal** literals: date `'2024-01-31'`; time `'12:30'`, `'12:30:00'`,
//!   `'12:30:00.5'` (up to 9 fractional digits); timestamp the date, optionally followed by
//!   a space or `T` and a time (a date alone is midnight); timestamptz the same plus an
//!   optional `Z`, `+HH:MM`, `+HHMM` or `+HH` (optionally after a space), none meaning UTC.
//!   Timestamptz values compare by UTC instant, whatever offset they were written with.
//!   A timestamp literal with an offset is an error. Different temporal types do not
//!   compare with each other.
//! - **Column names** match exactly; failing that, the single column whose name is equal
//!   ignoring case (SQL Server's default collation ignores case, so configurations written
//!   against it may too). Two or more such columns make the name ambiguous. Quoted names
//!   follow the same rule.
//! - **Row values** are never trusted: a missing value, a value without a kind, or a value
//!   whose kind does not belong to its column's type (any of int64, float64 or decimal for
//!   a number column; text, json or xml for a text column; the matching kind otherwise)
//!   evaluates as NULL, as do malformed decimals, uuids not 16 bytes long and timestamps
//!   with nanoseconds of a second or more.
//!
//! Errors carry the 1-based character position of the problem, one past the end for
//! "found end of input".

mod check;
mod eval;
mod lexer;
mod like;
mod num;
mod parser;
mod temporal;
#[cfg(test)]
mod tests;

use cdc_model::proto::{ColumnSchema, Value};

/// An error with its position in the expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("at character {position}: {message}")]
pub struct ExprError {
    /// 1-based character (not byte) offset into the text; one past the last character when
    /// the text ended too early.
    pub position: usize,
    /// What was expected and what was found.
    pub message: String,
}

impl ExprError {
    pub(crate) fn new(position: usize, message: impl Into<String>) -> ExprError {
        ExprError {
            position,
            message: message.into(),
        }
    }
}

/// A compiled filter, checked against one table schema.
#[derive(Debug, Clone)]
pub struct Filter {
    root: eval::BoolExpr,
    columns: Vec<String>,
}

impl Filter {
    /// Parses `text` and type-checks it against `columns`.
    pub fn compile(text: &str, columns: &[ColumnSchema]) -> Result<Filter, ExprError> {
        let ast = parser::parse(text)?;
        let compiled = check::compile(&ast, columns)?;
        Ok(Filter {
            root: compiled.root,
            columns: compiled.columns,
        })
    }

    /// Whether the row (values positional to the `columns` given at compile time) makes the
    /// expression TRUE; FALSE and NULL (unknown) both reject it.
    pub fn matches(&self, row: &[Value]) -> bool {
        self.root.eval(row) == Some(true)
    }

    /// The column names the expression refers to (as resolved in the schema), for messages;
    /// each once, in order of first appearance.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }
}

/// Parses without a schema (syntax only), so configuration validation can report syntax
/// errors before any schema is known.
pub fn check_syntax(text: &str) -> Result<(), ExprError> {
    parser::parse(text).map(|_| ())
}

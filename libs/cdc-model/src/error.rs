//! The model's error type.

/// Result with the model's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Something in an event, schema, key or name is malformed. None of these is transient:
/// retrying the same input fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An LSN or seqval that is not 10 bytes, or text that is not an LSN.
    #[error("invalid LSN: {0}")]
    InvalidLsn(String),
    /// A value that breaks its kind's rules (bad length, out of range, missing kind).
    #[error("invalid value: {0}")]
    InvalidValue(String),
    /// A decimal with more than 38 digits or a bad scale.
    #[error("invalid decimal: {0}")]
    InvalidDecimal(String),
    /// A value whose kind does not fit its column's type.
    #[error("column `{column}`: a {found} value does not fit type {expected}")]
    TypeMismatch {
        /// The column.
        column: String,
        /// The column's logical type.
        expected: String,
        /// The kind of value found.
        found: &'static str,
    },
    /// A SQL Server type the pipeline does not carry.
    #[error("column `{column}`: SQL Server type `{type_name}` is not supported ({reason})")]
    UnsupportedType {
        /// The column.
        column: String,
        /// The SQL Server type name.
        type_name: String,
        /// Why, and what to do.
        reason: &'static str,
    },
    /// A malformed table schema.
    #[error("invalid schema for {table}: {reason}")]
    InvalidSchema {
        /// `database.schema.table`.
        table: String,
        /// What is wrong.
        reason: String,
    },
    /// A Kafka key that cannot be decoded.
    #[error("invalid Kafka key: {0}")]
    InvalidKey(String),
    /// A topic name or prefix that cannot be made legal.
    #[error("invalid topic name: {0}")]
    InvalidTopic(String),
}

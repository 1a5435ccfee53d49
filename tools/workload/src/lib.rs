//! A workload generator for the `shop` sample database (compose/mssql/init.sql): paced
//! transactions of inserts, updates, deletes and primary-key updates on orders and order
//! lines (customers and products now and then), sent as T-SQL through tiberius to SQL Server
//! or to the project's simulator, with a JSON summary of what was committed.
//!
//! Pure parts, tested without a network: [`sql`] (literals and statements), [`shop`] (the
//! schema's columns and valid values), [`model`] (which keys exist), [`mix`], [`pacing`],
//! [`summary`]. The I/O edge is [`client`]; [`run`] is the loop that joins them.

pub mod client;
pub mod config;
pub mod mix;
pub mod model;
pub mod pacing;
pub mod rng;
mod runner;
pub mod shop;
pub mod sql;
pub mod summary;

pub use config::{ConfigError, ConnectionConfig, Encrypt, WorkloadConfig};
pub use mix::{Mix, Operation};
pub use runner::run;
pub use summary::Summary;

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The server or the connection failed.
    #[error("{context}")]
    Sql {
        /// What was being done.
        context: String,
        /// The driver's error.
        #[source]
        source: tiberius::error::Error,
    },
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A driver error while doing `context`.
    pub fn sql(context: impl Into<String>, source: tiberius::error::Error) -> Error {
        Error::Sql {
            context: context.into(),
            source,
        }
    }

    /// Whether the connection is gone, so that only a new one can go on (retrying can help).
    pub fn connection_lost(&self) -> bool {
        use tiberius::error::Error as Driver;
        matches!(
            self,
            Error::Sql {
                source: Driver::Io { .. } | Driver::Tls(_) | Driver::Protocol(_),
                ..
            }
        )
    }

    /// Whether the same transaction may succeed if tried again on the same connection:
    /// deadlock victim (1205) or lock time-out (1222).
    pub fn retriable(&self) -> bool {
        match self {
            Error::Sql {
                source: tiberius::error::Error::Server(token),
                ..
            } => matches!(token.code(), 1205 | 1222),
            _ => self.connection_lost(),
        }
    }
}

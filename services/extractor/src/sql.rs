//! Connections to SQL Server through tiberius, and the errors of talking to it.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel, Query, Row};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use crate::config::{Encryption, SourceConfig};

/// A client connection.
pub type SqlClient = Client<Compat<TcpStream>>;

/// What went wrong talking to SQL Server, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The server could not be reached, the connection broke, or the server is busy: retrying
    /// after a pause helps.
    #[error("SQL Server is unavailable ({context}): {source}")]
    Unavailable {
        /// What was being done.
        context: String,
        /// The driver's error.
        source: tiberius::error::Error,
    },
    /// The server refused the statement (permissions, a missing object, bad data): retrying
    /// the same thing does not help.
    #[error("SQL Server refused {context}: {source}")]
    Refused {
        /// What was being done.
        context: String,
        /// The driver's error.
        source: tiberius::error::Error,
    },
    /// The answer was not what SQL Server's metadata promised.
    #[error("unexpected answer from SQL Server ({context}): {detail}")]
    Unexpected {
        /// What was being done.
        context: String,
        /// What was wrong.
        detail: String,
    },
}

impl SqlError {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SqlError::Unavailable { .. })
    }

    /// Wraps a driver error, classifying it.
    pub fn from_driver(context: impl Into<String>, source: tiberius::error::Error) -> SqlError {
        let context = context.into();
        let retryable = match &source {
            tiberius::error::Error::Io { .. }
            | tiberius::error::Error::Routing { .. }
            | tiberius::error::Error::Tls(_) => true,
            // Lock time-out, deadlock victim, server busy, database in transition.
            tiberius::error::Error::Server(token) => {
                matches!(
                    token.code(),
                    1222 | 1205 | 40501 | 40613 | 49918 | 926 | 983
                )
            }
            _ => false,
        };
        if retryable {
            SqlError::Unavailable { context, source }
        } else {
            SqlError::Refused { context, source }
        }
    }

    /// An answer that does not fit what was asked.
    pub fn unexpected(context: impl Into<String>, detail: impl Into<String>) -> SqlError {
        SqlError::Unexpected {
            context: context.into(),
            detail: detail.into(),
        }
    }

    /// SQL Server's error number, when the server refused.
    pub fn server_code(&self) -> Option<u32> {
        match self {
            SqlError::Unavailable { source, .. } | SqlError::Refused { source, .. } => match source
            {
                tiberius::error::Error::Server(token) => Some(token.code()),
                _ => None,
            },
            SqlError::Unexpected { .. } => None,
        }
    }
}

/// Opens connections to one database of the source server.
#[derive(Clone)]
pub struct Connector {
    source: SourceConfig,
    password: SecretString,
}

impl Connector {
    /// A connector for the configured server, with its resolved password.
    pub fn new(source: SourceConfig, password: SecretString) -> Connector {
        Connector { source, password }
    }

    /// The logical server name.
    pub fn server_name(&self) -> &str {
        &self.source.server_name
    }

    /// Connects to `database`.
    pub async fn connect(&self, database: &str) -> Result<SqlClient, SqlError> {
        let mut config = Config::new();
        config.host(&self.source.host);
        config.port(self.source.port);
        config.database(database);
        config.application_name("cdc-extractor");
        config.authentication(AuthMethod::sql_server(
            &self.source.user,
            self.password.expose_secret(),
        ));
        match self.source.encryption {
            Encryption::Off => config.encryption(EncryptionLevel::NotSupported),
            Encryption::Required => config.encryption(EncryptionLevel::Required),
        }
        if self.source.trust_server_certificate {
            config.trust_cert();
        }
        let context = || {
            format!(
                "connecting to {}:{} database {database}",
                self.source.host, self.source.port
            )
        };
        let timeout = Duration::from_millis(self.source.connect_timeout_ms);
        let connect = async {
            let tcp = TcpStream::connect(config.get_addr())
                .await
                .map_err(|e| SqlError::from_driver(context(), e.into()))?;
            tcp.set_nodelay(true)
                .map_err(|e| SqlError::from_driver(context(), e.into()))?;
            Client::connect(config, tcp.compat_write())
                .await
                .map_err(|e| SqlError::from_driver(context(), e))
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(result) => result,
            Err(_) => Err(SqlError::Unavailable {
                context: context(),
                source: tiberius::error::Error::Io {
                    kind: std::io::ErrorKind::TimedOut,
                    message: format!("no login within {} ms", timeout.as_millis()),
                },
            }),
        }
    }
}

/// Runs `query` and collects the rows of its first result set.
pub async fn rows(
    client: &mut SqlClient,
    query: Query<'_>,
    context: &str,
) -> Result<Vec<Row>, SqlError> {
    let stream = query
        .query(client)
        .await
        .map_err(|e| SqlError::from_driver(context, e))?;
    stream
        .into_first_result()
        .await
        .map_err(|e| SqlError::from_driver(context, e))
}

/// Runs `query` and converts each row of its first result set with `convert` as it arrives,
/// so that only one driver row is held at a time (a 50,000-row change page held as driver
/// rows and as converted rows at once was most of the extractor's memory).
pub async fn map_rows<T>(
    client: &mut SqlClient,
    query: Query<'_>,
    context: &str,
    mut convert: impl FnMut(&Row) -> Result<T, SqlError>,
) -> Result<Vec<T>, SqlError> {
    use futures::TryStreamExt as _;
    let mut stream = query
        .query(client)
        .await
        .map_err(|e| SqlError::from_driver(context, e))?;
    let mut converted = Vec::new();
    let mut failure = None;
    // The whole response is read even after a failed conversion: the connection is only
    // usable again once it is.
    while let Some(item) = stream
        .try_next()
        .await
        .map_err(|e| SqlError::from_driver(context, e))?
    {
        if let tiberius::QueryItem::Row(row) = item
            && row.result_index() == 0
            && failure.is_none()
        {
            match convert(&row) {
                Ok(value) => converted.push(value),
                Err(e) => failure = Some(e),
            }
        }
    }
    failure.map_or(Ok(converted), Err)
}

/// Runs a statement text without parameters and collects the rows of its first result set.
pub async fn simple_rows(
    client: &mut SqlClient,
    sql: &str,
    context: &str,
) -> Result<Vec<Row>, SqlError> {
    rows(client, Query::new(sql.to_owned()), context).await
}

/// Runs statements that return nothing useful.
pub async fn execute(
    client: &mut SqlClient,
    query: Query<'_>,
    context: &str,
) -> Result<(), SqlError> {
    query
        .execute(client)
        .await
        .map(|_| ())
        .map_err(|e| SqlError::from_driver(context, e))
}

/// A bracket-quoted identifier: `]` doubled, as T-SQL's QUOTENAME does.
pub fn quote(identifier: &str) -> String {
    format!("[{}]", identifier.replace(']', "]]"))
}

/// An N'…' literal: `'` doubled.
pub fn nliteral(text: &str) -> String {
    format!("N'{}'", text.replace('\'', "''"))
}

/// Reads a column that must be there and of type `T`.
pub fn get<'a, T: tiberius::FromSql<'a>>(
    row: &'a Row,
    index: usize,
    context: &str,
) -> Result<Option<T>, SqlError> {
    row.try_get::<T, usize>(index)
        .map_err(|e| SqlError::unexpected(context, format!("column {index}: {e}")))
}

/// Reads a column that must not be NULL.
pub fn required<'a, T: tiberius::FromSql<'a>>(
    row: &'a Row,
    index: usize,
    context: &str,
) -> Result<T, SqlError> {
    get(row, index, context)?
        .ok_or_else(|| SqlError::unexpected(context, format!("column {index} is NULL")))
}

//! The service kit's error type. Every variant says whether retrying can help.

use std::net::SocketAddr;

/// Result with the kit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One invalid configuration value: the key and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted key path, e.g. `grpc.listen`.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

/// Errors raised while starting or running a service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read or parsed.
    #[error("cannot read configuration: {0}")]
    ConfigSource(#[source] config::ConfigError),
    /// One or more configuration values are invalid; each names its key.
    #[error("invalid configuration: {}", join_fields(.0))]
    ConfigInvalid(Vec<FieldError>),
    /// A secret reference could not be resolved.
    #[error("secret `{key}` ({reference}) cannot be resolved: {reason}")]
    Secret {
        /// Configuration key holding the reference.
        key: String,
        /// The reference itself (never the value).
        reference: String,
        /// Why it failed.
        reason: String,
        /// Whether a later attempt may succeed (Vault unreachable vs. secret missing).
        retryable: bool,
    },
    /// A listener could not be bound.
    #[error("cannot listen for {what} on {addr}")]
    Bind {
        /// Which endpoint (`gRPC`, `metrics`).
        what: &'static str,
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Logging, metrics or tracing could not be set up.
    #[error("telemetry setup failed: {0}")]
    Telemetry(String),
    /// The gRPC server stopped with an error.
    #[error("gRPC server failed")]
    Grpc(#[source] tonic::transport::Error),
    /// The metrics server stopped with an error.
    #[error("metrics server failed")]
    MetricsServer(#[source] std::io::Error),
}

impl Error {
    /// Whether retrying the same operation may succeed without an operator changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Secret { retryable, .. } => *retryable,
            Error::Bind { .. } | Error::Grpc(_) | Error::MetricsServer(_) => true,
            Error::ConfigSource(_) | Error::ConfigInvalid(_) | Error::Telemetry(_) => false,
        }
    }
}

fn join_fields(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

//! What every CDC service binary is built on: layered configuration that names bad keys,
//! secrets resolved from Vault, JSON logs, Prometheus metrics, OTLP traces, a gRPC control
//! endpoint (health, reflection, status, pause, resume) behind a bearer token, and a clean
//! stop on SIGTERM/SIGINT.
//!
//! A binary's `main` is one call to [`runtime::main`].

pub mod config;
pub mod error;
pub mod grpc;
pub mod kafka;
pub mod metrics;
pub mod producer;
pub mod runtime;
pub mod schema_registry;
pub mod secrets;
pub mod state;
pub mod telemetry;
pub mod topics;
pub mod trace_context;

pub mod proto {
    //! The common control API generated from `proto/cdc/control/v1`. Never edited by hand.
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("cdc.control.v1");
}

pub use config::{
    GrpcConfig, MetricsConfig, ServiceConfig, ServiceSpec, TelemetryConfig, VaultConfig,
};
pub use error::{Error, FieldError, Result};
pub use kafka::KafkaConfig;
pub use runtime::{Secrets, ServiceContext, Started};
pub use secrets::SecretRef;
pub use state::ServiceState;

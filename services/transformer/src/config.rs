//! Configuration of the transformer: the kit's sections plus its own.

use cdc_service_kit::config::{GrpcConfig, MetricsConfig, TelemetryConfig, VaultConfig};
use cdc_service_kit::{FieldError, KafkaConfig, ServiceConfig};
use serde::Deserialize;

/// The transformer's configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Control endpoint.
    pub grpc: GrpcConfig,
    /// Metrics endpoint.
    pub metrics: MetricsConfig,
    /// Logs and traces.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Secret store.
    pub vault: Option<VaultConfig>,
    /// Kafka cluster.
    pub kafka: KafkaConfig,
}

impl ServiceConfig for TransformerConfig {
    cdc_service_kit::kit_sections!();

    fn validate_service(&self, errors: &mut Vec<FieldError>) {
        self.kafka.validate(errors);
    }
}

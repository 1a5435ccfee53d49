//! Configuration of the transformer: the kit's sections, the consumer group, the transactional
//! producer, batching, the masking key and the rules.

use std::collections::BTreeMap;

use cdc_service_kit::config::{
    GrpcConfig, MetricsConfig, TelemetryConfig, VaultConfig, field_error,
};
use cdc_service_kit::{FieldError, KafkaConfig, SecretRef, ServiceConfig};
use serde::Deserialize;

use crate::rules::RuleConfig;

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
    /// How the raw topics are consumed.
    #[serde(default)]
    pub consumer: ConsumerConfig,
    /// How the clean topics are written.
    #[serde(default)]
    pub producer: ProducerConfig,
    /// Transaction sizes.
    #[serde(default)]
    pub batch: BatchConfig,
    /// The key of `hmac` masks.
    pub masking: Option<MaskingConfig>,
    /// The rules, applied in order to every table they match. None: every event passes as is.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// This service's `[consumer]` section.
pub type ConsumerConfig = cdc_service_kit::kafka::ConsumerConfig<TransformerGroup>;

/// The default consumer group: `cdc-transformer`.
#[derive(Debug, Clone, Copy)]
pub struct TransformerGroup;

impl cdc_service_kit::kafka::DefaultGroup for TransformerGroup {
    const GROUP_ID: &'static str = "cdc-transformer";
}

/// The transactional producer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerConfig {
    /// Transactional id of this instance. Give each replica a stable one: a restarted instance
    /// then aborts the transaction its predecessor left open at once, instead of readers of
    /// the clean topics waiting `transaction_timeout_ms` for it. Default
    /// `<group_id>-<$HOSTNAME>` (a random suffix when `HOSTNAME` is unset).
    pub transactional_id: Option<String>,
    /// How long the broker keeps an unfinished transaction of a vanished instance open.
    #[serde(default = "default_transaction_timeout_ms")]
    pub transaction_timeout_ms: u64,
    /// Extra librdkafka properties for the producer only (e.g. `compression.type`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            transactional_id: None,
            transaction_timeout_ms: default_transaction_timeout_ms(),
            properties: BTreeMap::new(),
        }
    }
}

fn default_transaction_timeout_ms() -> u64 {
    60_000
}

/// How much goes into one transaction.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// A transaction closes at this many consumed events…
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// …or this long after its first event.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
    /// Threads that decode, transform and encode (order is kept whatever the number);
    /// default the machine's cores.
    #[serde(default = "default_transform_threads")]
    pub transform_threads: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: default_max_events(),
            max_wait_ms: default_max_wait_ms(),
            transform_threads: default_transform_threads(),
        }
    }
}

fn default_max_events() -> usize {
    20_000
}

fn default_max_wait_ms() -> u64 {
    100
}

fn default_transform_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// The secret key of `hmac` masks: the same value gives the same hash in every instance and
/// run, so masked columns still join.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    /// Secret reference to the key (at least 16 bytes).
    pub hmac_key: SecretRef,
}

/// Configuration key of the masking secret.
pub const HMAC_KEY: &str = "masking.hmac_key";

impl ServiceConfig for TransformerConfig {
    cdc_service_kit::kit_sections!();

    fn service_secret_refs(&self) -> Vec<(&'static str, &SecretRef)> {
        self.masking
            .iter()
            .map(|masking| (HMAC_KEY, &masking.hmac_key))
            .collect()
    }

    fn validate_service(&self, errors: &mut Vec<FieldError>) {
        self.kafka.validate(errors);
        self.consumer.validate(errors);
        if let Some(id) = &self.producer.transactional_id
            && id.trim().is_empty()
        {
            errors.push(field_error(
                "producer.transactional_id",
                "must not be empty (leave it out for the default)".to_owned(),
            ));
        }
        if !(1_000..=900_000).contains(&self.producer.transaction_timeout_ms) {
            errors.push(field_error(
                "producer.transaction_timeout_ms",
                "expected 1000 to 900000 (the broker's default maximum is 900000)".to_owned(),
            ));
        }
        if !(1..=1_000_000).contains(&self.batch.max_events) {
            errors.push(field_error(
                "batch.max_events",
                "expected 1 to 1000000".to_owned(),
            ));
        }
        if !(1..=64).contains(&self.batch.transform_threads) {
            errors.push(field_error(
                "batch.transform_threads",
                "expected 1 to 64".to_owned(),
            ));
        }
        if !(1..=60_000).contains(&self.batch.max_wait_ms) {
            errors.push(field_error(
                "batch.max_wait_ms",
                "expected 1 to 60000".to_owned(),
            ));
        }
        crate::rules::validate(&self.rules, self.masking.is_some(), errors);
    }
}

impl TransformerConfig {
    /// This instance's transactional id.
    pub fn transactional_id(&self, instance_id: &str) -> String {
        self.producer.transactional_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.trim().is_empty())
                .unwrap_or_else(|| instance_id.to_owned());
            format!("{}-{host}", self.consumer.group_id)
        })
    }
}

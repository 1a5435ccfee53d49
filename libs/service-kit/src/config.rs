//! Configuration: plain data loaded in layers (defaults, TOML file, environment), with unknown
//! keys rejected and every error naming its key.
//!
//! Environment overrides use `CDC_<SERVICE>__<SECTION>__<KEY>`, e.g.
//! `CDC_LOADER__GRPC__LISTEN=0.0.0.0:50053`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, FieldError, Result};
use crate::secrets::SecretRef;

/// Identity and defaults of one service binary.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// Short name, e.g. `loader`; used in metric names, env prefixes and status.
    pub name: &'static str,
    /// Build version.
    pub version: &'static str,
    /// Default gRPC control port.
    pub default_grpc_port: u16,
    /// Default Prometheus metrics port.
    pub default_metrics_port: u16,
}

impl ServiceSpec {
    /// Prefix of environment overrides, e.g. `CDC_LOADER`.
    pub fn env_prefix(&self) -> String {
        format!("CDC_{}", self.name.to_uppercase())
    }

    /// Name of the binary, e.g. `cdc-loader`.
    pub fn binary_name(&self) -> String {
        format!("cdc-{}", self.name)
    }
}

/// The gRPC control endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Bearer token that control calls must present (a secret reference).
    pub auth_token: SecretRef,
}

/// The Prometheus `/metrics` endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
}

/// Logs and traces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Log filter in `tracing` syntax, e.g. `info` or `info,cdc_loader=debug`.
    #[serde(default = "default_log_filter")]
    pub log_filter: String,
    /// OTLP/gRPC endpoint for traces, e.g. `http://127.0.0.1:4317`; none = no traces exported.
    #[serde(default)]
    pub otlp_endpoint: Option<url::Url>,
    /// Fraction of traces sampled, 0.0..=1.0.
    #[serde(default = "default_sample_ratio")]
    pub trace_sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_filter: default_log_filter(),
            otlp_endpoint: None,
            trace_sample_ratio: default_sample_ratio(),
        }
    }
}

fn default_log_filter() -> String {
    "info".to_owned()
}

fn default_sample_ratio() -> f64 {
    1.0
}

/// Where secrets come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// Vault (or OpenBao) address, e.g. `http://127.0.0.1:8200`.
    pub address: url::Url,
    /// The Vault token, as a reference to an environment variable (`env:VAULT_TOKEN`).
    pub token: SecretRef,
    /// Timeout of one Vault request.
    #[serde(default = "default_vault_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_vault_timeout_ms() -> u64 {
    5_000
}

/// A service's configuration: its own sections plus the kit's.
pub trait ServiceConfig: DeserializeOwned {
    /// The `[grpc]` section.
    fn grpc(&self) -> &GrpcConfig;
    /// The `[metrics]` section.
    fn metrics(&self) -> &MetricsConfig;
    /// The `[telemetry]` section.
    fn telemetry(&self) -> &TelemetryConfig;
    /// The `[vault]` section, if secrets come from Vault.
    fn vault(&self) -> Option<&VaultConfig>;
    /// The service's own secret references with their keys (the kit adds `grpc.auth_token`).
    fn service_secret_refs(&self) -> Vec<(&'static str, &SecretRef)> {
        Vec::new()
    }
    /// Service-specific checks; push one [`FieldError`] per bad value.
    fn validate_service(&self, errors: &mut Vec<FieldError>) {
        let _ = errors;
    }
}

/// Every secret reference in a configuration, with its key, so all resolve at start-up.
pub fn secret_refs<C: ServiceConfig>(config: &C) -> Vec<(&'static str, &SecretRef)> {
    let mut refs = vec![("grpc.auth_token", &config.grpc().auth_token)];
    refs.extend(config.service_secret_refs());
    refs
}

/// Implements the kit's section accessors of [`ServiceConfig`] for a struct whose fields are
/// named `grpc`, `metrics`, `telemetry` and `vault`; the service adds its own items after.
#[macro_export]
macro_rules! kit_sections {
    () => {
        fn grpc(&self) -> &$crate::config::GrpcConfig {
            &self.grpc
        }
        fn metrics(&self) -> &$crate::config::MetricsConfig {
            &self.metrics
        }
        fn telemetry(&self) -> &$crate::config::TelemetryConfig {
            &self.telemetry
        }
        fn vault(&self) -> Option<&$crate::config::VaultConfig> {
            self.vault.as_ref()
        }
    };
}

/// Loads a service's configuration from an optional TOML file and the process environment.
pub fn load<C: ServiceConfig>(spec: &ServiceSpec, file: Option<&Path>) -> Result<C> {
    load_from(spec, file, std::env::vars().collect())
}

/// Loads a configuration from an optional TOML file and the given environment variables.
pub fn load_from<C: ServiceConfig>(
    spec: &ServiceSpec,
    file: Option<&Path>,
    environment: HashMap<String, String>,
) -> Result<C> {
    let mut builder = config::Config::builder()
        .set_default("grpc.listen", format!("0.0.0.0:{}", spec.default_grpc_port))
        .and_then(|b| {
            b.set_default(
                "metrics.listen",
                format!("0.0.0.0:{}", spec.default_metrics_port),
            )
        })
        .map_err(Error::ConfigSource)?;
    if let Some(path) = file {
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
    }
    let environment = config::Environment::with_prefix(&spec.env_prefix())
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(Some(environment.into_iter().collect()));
    let layered = builder
        .add_source(environment)
        .build()
        .map_err(Error::ConfigSource)?;
    let loaded: C = serde_path_to_error::deserialize(layered).map_err(|e| {
        Error::ConfigInvalid(vec![FieldError {
            key: key_of(e.path()),
            message: without_key_suffix(&e.inner().to_string()),
        }])
    })?;
    validate(&loaded)?;
    Ok(loaded)
}

/// The `config` crate appends " for key `…`" to its messages; we already lead with the key.
fn without_key_suffix(message: &str) -> String {
    match message.rfind(" for key `") {
        Some(at) if message.ends_with('`') => message[..at].to_owned(),
        _ => message.to_owned(),
    }
}

fn key_of(path: &serde_path_to_error::Path) -> String {
    match path.to_string().as_str() {
        "." => "(top level)".to_owned(),
        key => key.to_owned(),
    }
}

fn validate<C: ServiceConfig>(config: &C) -> Result<()> {
    let mut errors = Vec::new();
    validate_kit_sections(config, &mut errors);
    config.validate_service(&mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::ConfigInvalid(errors))
    }
}

fn validate_kit_sections<C: ServiceConfig>(config: &C, errors: &mut Vec<FieldError>) {
    let ratio = config.telemetry().trace_sample_ratio;
    if !(0.0..=1.0).contains(&ratio) {
        errors.push(field_error(
            "telemetry.trace_sample_ratio",
            format!("must be between 0.0 and 1.0, got {ratio}"),
        ));
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&config.telemetry().log_filter) {
        errors.push(field_error("telemetry.log_filter", e.to_string()));
    }
    if config.grpc().listen == config.metrics().listen {
        errors.push(field_error(
            "metrics.listen",
            format!("must differ from grpc.listen ({})", config.grpc().listen),
        ));
    }
    match config.vault() {
        Some(vault) => {
            if !matches!(vault.token, SecretRef::Env { .. }) {
                errors.push(field_error(
                    "vault.token",
                    "must be an environment reference such as `env:VAULT_TOKEN`".to_owned(),
                ));
            }
            if vault.timeout_ms == 0 {
                errors.push(field_error(
                    "vault.timeout_ms",
                    "must be above 0".to_owned(),
                ));
            }
        }
        None => {
            for (key, reference) in secret_refs(config) {
                if matches!(reference, SecretRef::Vault { .. }) {
                    errors.push(field_error(
                        key,
                        "refers to Vault, but there is no [vault] section".to_owned(),
                    ));
                }
            }
        }
    }
}

/// Builds a [`FieldError`].
pub fn field_error(key: &str, message: String) -> FieldError {
    FieldError {
        key: key.to_owned(),
        message,
    }
}

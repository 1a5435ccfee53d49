//! Configuration is loaded in layers (defaults, file, environment), rejects unknown keys and
//! names the key of every bad value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write;

use cdc_service_kit::config::{GrpcConfig, MetricsConfig, TelemetryConfig, VaultConfig, load_from};
use cdc_service_kit::{Error, FieldError, KafkaConfig, SecretRef, ServiceConfig, ServiceSpec};
use serde::Deserialize;

const SPEC: ServiceSpec = ServiceSpec {
    name: "sample",
    version: "0.0.0",
    default_grpc_port: 50099,
    default_metrics_port: 9199,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleConfig {
    grpc: GrpcConfig,
    metrics: MetricsConfig,
    #[serde(default)]
    telemetry: TelemetryConfig,
    vault: Option<VaultConfig>,
    kafka: KafkaConfig,
    database_password: Option<SecretRef>,
}

impl ServiceConfig for SampleConfig {
    cdc_service_kit::kit_sections!();

    fn service_secret_refs(&self) -> Vec<(&'static str, &SecretRef)> {
        self.database_password
            .iter()
            .map(|r| ("database_password", r))
            .collect()
    }

    fn validate_service(&self, errors: &mut Vec<FieldError>) {
        self.kafka.validate(errors);
    }
}

const MINIMAL: &str = r#"
[grpc]
auth_token = "env:SAMPLE_TOKEN"
[kafka]
bootstrap_servers = "127.0.0.1:19092"
"#;

fn load(toml: &str, env: &[(&str, &str)]) -> Result<SampleConfig, Error> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(toml.as_bytes()).unwrap();
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    load_from(&SPEC, Some(file.path()), env)
}

fn invalid_keys(error: Error) -> Vec<String> {
    match error {
        Error::ConfigInvalid(fields) => fields.into_iter().map(|f| f.key).collect(),
        other => panic!("expected an invalid-configuration error, got {other}"),
    }
}

#[test]
fn defaults_fill_what_the_file_leaves_out() {
    let config = load(MINIMAL, &[]).unwrap();
    assert_eq!(config.grpc.listen.to_string(), "0.0.0.0:50099");
    assert_eq!(config.metrics.listen.to_string(), "0.0.0.0:9199");
    assert_eq!(config.kafka.topic_prefix, "cdc");
    assert_eq!(config.telemetry.log_filter, "info");
    assert!(config.telemetry.otlp_endpoint.is_none());
}

#[test]
fn environment_overrides_win_over_the_file() {
    let config = load(
        MINIMAL,
        &[
            ("CDC_SAMPLE__GRPC__LISTEN", "127.0.0.1:7001"),
            ("CDC_SAMPLE__KAFKA__TOPIC_PREFIX", "staging"),
            ("CDC_SAMPLE__TELEMETRY__TRACE_SAMPLE_RATIO", "0.25"),
        ],
    )
    .unwrap();
    assert_eq!(config.grpc.listen.to_string(), "127.0.0.1:7001");
    assert_eq!(config.kafka.topic_prefix, "staging");
    assert!((config.telemetry.trace_sample_ratio - 0.25).abs() < f64::EPSILON);
}

#[test]
fn an_unknown_key_in_the_file_is_named_with_its_section() {
    let error = load(
        &format!("{MINIMAL}\n[metrics]\nlisten = \"127.0.0.1:1\"\nport = 3\n"),
        &[],
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("`metrics"), "{message}");
    assert!(message.contains("unknown field `port`"), "{message}");
}

#[test]
fn an_unknown_key_from_the_environment_is_refused_too() {
    let error = load(MINIMAL, &[("CDC_SAMPLE__KAFKA__BOOTSTRAP", "x:1")]).unwrap_err();
    assert!(
        error.to_string().contains("unknown field `bootstrap`"),
        "{error}"
    );
}

#[test]
fn a_value_of_the_wrong_type_names_its_key() {
    let toml = MINIMAL.replace("[grpc]\n", "[grpc]\nlisten = \"not an address\"\n");
    assert_eq!(invalid_keys(load(&toml, &[]).unwrap_err()), ["grpc.listen"]);
}

#[test]
fn every_invalid_value_is_reported_at_once() {
    let toml = format!(
        "{}\n[telemetry]\ntrace_sample_ratio = 2.0\nlog_filter = \"info,[\"\n",
        MINIMAL.replace("127.0.0.1:19092", "a:1,,b:2")
    );
    let mut keys = invalid_keys(load(&toml, &[]).unwrap_err());
    keys.sort();
    assert_eq!(
        keys,
        [
            "kafka.bootstrap_servers",
            "telemetry.log_filter",
            "telemetry.trace_sample_ratio"
        ]
    );
}

#[test]
fn a_vault_reference_without_a_vault_section_is_refused() {
    let toml = format!("database_password = \"vault:secret/db#password\"\n{MINIMAL}");
    assert_eq!(
        invalid_keys(load(&toml, &[]).unwrap_err()),
        ["database_password"]
    );
}

#[test]
fn the_vault_token_must_come_from_the_environment() {
    let toml = format!(
        "{MINIMAL}\n[vault]\naddress = \"http://127.0.0.1:8200\"\ntoken = \"vault:secret/x#y\"\n"
    );
    assert_eq!(invalid_keys(load(&toml, &[]).unwrap_err()), ["vault.token"]);
}

#[test]
fn grpc_and_metrics_cannot_share_an_address() {
    let toml = MINIMAL.replace("[grpc]\n", "[grpc]\nlisten = \"127.0.0.1:5000\"\n");
    let error = load(&toml, &[("CDC_SAMPLE__METRICS__LISTEN", "127.0.0.1:5000")]).unwrap_err();
    assert_eq!(invalid_keys(error), ["metrics.listen"]);
}

#[test]
fn a_secret_value_written_in_the_file_is_refused_without_echoing_it() {
    let toml = MINIMAL.replace("env:SAMPLE_TOKEN", "correct-horse-battery");
    let error = load(&toml, &[]).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("grpc.auth_token"), "{message}");
    assert!(!message.contains("correct-horse-battery"), "{message}");
}

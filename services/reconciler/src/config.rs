//! Configuration of the reconciler: the kit's sections, the source and target as the extractor
//! and the loader see them (the same sections can be copied), and how comparisons run.

use std::path::PathBuf;

use cdc_extractor::config::{SourceConfig, TablesConfig};
use cdc_loader::config::{PostgresConfig, TargetConfig};
use cdc_service_kit::config::{
    GrpcConfig, MetricsConfig, TelemetryConfig, VaultConfig, field_error,
};
use cdc_service_kit::{FieldError, KafkaConfig, SecretRef, ServiceConfig};
use serde::Deserialize;

/// Configuration key of the SQL Server password.
pub const SOURCE_PASSWORD: &str = "source.password";
/// Configuration key of the PostgreSQL password.
pub const POSTGRES_PASSWORD: &str = "postgres.password";

/// The reconciler's configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcilerConfig {
    /// Control endpoint.
    pub grpc: GrpcConfig,
    /// Metrics endpoint.
    pub metrics: MetricsConfig,
    /// Logs and traces.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Secret store.
    pub vault: Option<VaultConfig>,
    /// Kafka cluster (reports and repair commands).
    pub kafka: KafkaConfig,
    /// SQL Server, as in the extractor's `[source]`.
    pub source: SourceConfig,
    /// Which captured tables are compared, as in the extractor's `[tables]`.
    #[serde(default)]
    pub tables: TablesConfig,
    /// PostgreSQL, as in the loader's `[postgres]`.
    pub postgres: PostgresConfig,
    /// Where the loader writes, as in the loader's `[target]`.
    #[serde(default)]
    pub target: TargetConfig,
    /// How tables are compared.
    #[serde(default)]
    pub compare: CompareConfig,
    /// Runs on a schedule.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Repair of differing rows.
    #[serde(default)]
    pub repair: RepairConfig,
    /// Where reports are kept.
    #[serde(default)]
    pub reports: ReportsConfig,
}

/// `[compare]`: how tables are compared.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareConfig {
    /// Rows per checksum bucket, on average: a differing bucket costs reading this many rows
    /// from each side.
    #[serde(default = "default_rows_per_bucket")]
    pub rows_per_bucket: u64,
    /// How long a difference may be in flight: differing rows are checked again after this
    /// long, and only the ones that still differ are reported. Set it above the pipeline's
    /// normal end-to-end lag.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// Differing rows listed per table; drilling down stops once more are found, and the
    /// result says it is truncated (counts then cover the buckets read).
    #[serde(default = "default_max_reported_keys")]
    pub max_reported_keys: u64,
    /// Buckets whose rows are read in one query while drilling down.
    #[serde(default = "default_drill_buckets_per_query")]
    pub drill_buckets_per_query: usize,
    /// The transformer's configuration file, whose `[[rules]]` change what reaches
    /// PostgreSQL (renamed, dropped, masked or converted columns, routed or filtered tables).
    /// Without it, rules are assumed absent.
    pub transformer_config: Option<PathBuf>,
    /// Seconds a statement may run in either database.
    #[serde(default = "default_statement_timeout_s")]
    pub statement_timeout_s: u64,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig {
            rows_per_bucket: default_rows_per_bucket(),
            settle_ms: default_settle_ms(),
            max_reported_keys: default_max_reported_keys(),
            drill_buckets_per_query: default_drill_buckets_per_query(),
            transformer_config: None,
            statement_timeout_s: default_statement_timeout_s(),
        }
    }
}

fn default_rows_per_bucket() -> u64 {
    500
}

fn default_settle_ms() -> u64 {
    30_000
}

fn default_max_reported_keys() -> u64 {
    1_000
}

fn default_drill_buckets_per_query() -> usize {
    64
}

fn default_statement_timeout_s() -> u64 {
    1_800
}

/// `[schedule]`: runs started by the clock.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// A cron expression with seconds (`sec min hour day-of-month month day-of-week`), in
    /// UTC, e.g. `"0 0 * * * *"` for hourly; none = only on demand.
    pub cron: Option<String>,
    /// Tables of scheduled runs (patterns); empty = every configured table.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Whether scheduled runs repair what they find (needs `repair.enabled`).
    #[serde(default)]
    pub repair: bool,
}

/// `[repair]`: re-snapshot commands for differing rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairConfig {
    /// Whether runs may send repair commands at all (each run still has to ask).
    #[serde(default)]
    pub enabled: bool,
    /// Keys per command.
    #[serde(default = "default_keys_per_command")]
    pub keys_per_command: usize,
}

impl Default for RepairConfig {
    fn default() -> Self {
        RepairConfig {
            enabled: false,
            keys_per_command: default_keys_per_command(),
        }
    }
}

fn default_keys_per_command() -> usize {
    500
}

/// `[reports]`: where reports are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// PostgreSQL schema of the reconciler's tables (runs, results, differences).
    #[serde(default = "default_state_schema")]
    pub state_schema: String,
    /// Runs kept in memory for WatchRun/GetRun without a database read.
    #[serde(default = "default_runs_in_memory")]
    pub runs_in_memory: usize,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            state_schema: default_state_schema(),
            runs_in_memory: default_runs_in_memory(),
        }
    }
}

fn default_state_schema() -> String {
    "cdc_reconciler".to_owned()
}

fn default_runs_in_memory() -> usize {
    50
}

impl ServiceConfig for ReconcilerConfig {
    cdc_service_kit::kit_sections!();

    fn service_secret_refs(&self) -> Vec<(&'static str, &SecretRef)> {
        let mut refs = vec![(SOURCE_PASSWORD, &self.source.password)];
        if let Some(password) = &self.postgres.password {
            refs.push((POSTGRES_PASSWORD, password));
        }
        refs
    }

    fn validate_service(&self, errors: &mut Vec<FieldError>) {
        self.kafka.validate(errors);
        self.source.validate(errors);
        self.tables.validate(errors);
        self.postgres.validate(errors);
        self.target.validate(errors);
        let compare = &self.compare;
        require(
            errors,
            (1..=1_000_000).contains(&compare.rows_per_bucket),
            "compare.rows_per_bucket",
            "expected 1 to 1000000",
        );
        require(
            errors,
            compare.settle_ms <= 86_400_000,
            "compare.settle_ms",
            "expected at most 86400000 (a day)",
        );
        require(
            errors,
            (1..=1_000_000).contains(&compare.max_reported_keys),
            "compare.max_reported_keys",
            "expected 1 to 1000000",
        );
        require(
            errors,
            (1..=4096).contains(&compare.drill_buckets_per_query),
            "compare.drill_buckets_per_query",
            "expected 1 to 4096",
        );
        require(
            errors,
            (1..=86_400).contains(&compare.statement_timeout_s),
            "compare.statement_timeout_s",
            "expected 1 to 86400",
        );
        if let Some(path) = &compare.transformer_config {
            require(
                errors,
                path.is_file(),
                "compare.transformer_config",
                "is not a readable file",
            );
        }
        if let Some(cron) = &self.schedule.cron
            && let Err(e) = cron.parse::<cron::Schedule>()
        {
            errors.push(field_error(
                "schedule.cron",
                format!("not a cron expression (sec min hour day month weekday): {e}"),
            ));
        }
        require(
            errors,
            !self.schedule.repair || self.repair.enabled,
            "schedule.repair",
            "needs `repair.enabled = true`",
        );
        require(
            errors,
            (1..=10_000).contains(&self.repair.keys_per_command),
            "repair.keys_per_command",
            "expected 1 to 10000",
        );
        if let Err(reason) = cdc_loader::naming::check_identifier(&self.reports.state_schema) {
            errors.push(field_error("reports.state_schema", reason));
        }
        require(
            errors,
            (1..=10_000).contains(&self.reports.runs_in_memory),
            "reports.runs_in_memory",
            "expected 1 to 10000",
        );
    }
}

/// Records `message` against `key` unless `ok`.
fn require(errors: &mut Vec<FieldError>, ok: bool, key: &str, message: &str) {
    if !ok {
        errors.push(field_error(key, message.to_owned()));
    }
}

//! Configuration of the loader: the kit's sections plus PostgreSQL, the target layout, batching
//! and retries.

use cdc_service_kit::config::{
    GrpcConfig, MetricsConfig, TelemetryConfig, VaultConfig, field_error,
};
use cdc_service_kit::{FieldError, KafkaConfig, SecretRef, ServiceConfig};
use serde::Deserialize;

use crate::naming::TableNameTemplate;

/// The loader's configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderConfig {
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
    /// How the loader consumes its topics.
    #[serde(default)]
    pub consumer: ConsumerConfig,
    /// The target database.
    pub postgres: PostgresConfig,
    /// Where and how rows land.
    #[serde(default)]
    pub target: TargetConfig,
    /// Batch sizes.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Back-off while PostgreSQL is unreachable.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// This service's `[consumer]` section.
pub type ConsumerConfig = cdc_service_kit::kafka::ConsumerConfig<LoaderGroup>;

/// The default consumer group: `cdc-loader`.
#[derive(Debug, Clone, Copy)]
pub struct LoaderGroup;

impl cdc_service_kit::kafka::DefaultGroup for LoaderGroup {
    const GROUP_ID: &'static str = "cdc-loader";
}

/// Connection to PostgreSQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/database` (a password here is refused: use `password`).
    pub url: String,
    /// The password, as a secret reference (`vault:secret/cdc/postgres#password`, `env:VAR`).
    pub password: Option<SecretRef>,
    /// Timeout of one connection attempt.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// PostgreSQL's `synchronous_commit` for the loader's sessions. `off` by default: a
    /// batch's rows and its offsets commit in one transaction, so a commit PostgreSQL loses in
    /// a crash loses both, and the loader reads those events again (see the README).
    #[serde(default)]
    pub synchronous_commit: SynchronousCommit,
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}

/// When a commit returns, in PostgreSQL's terms (`synchronous_commit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SynchronousCommit {
    /// Before the commit is on disk: a crash of PostgreSQL can lose the last commits, which
    /// the loader then applies again.
    #[default]
    Off,
    /// Once the commit is on the local disk.
    Local,
    /// Once the commit is on disk, and on a synchronous standby's if one is configured.
    On,
    /// Once a synchronous standby has written it (not flushed).
    RemoteWrite,
    /// Once a synchronous standby has applied it.
    RemoteApply,
}

impl SynchronousCommit {
    /// The setting's value as PostgreSQL spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SynchronousCommit::Off => "off",
            SynchronousCommit::Local => "local",
            SynchronousCommit::On => "on",
            SynchronousCommit::RemoteWrite => "remote_write",
            SynchronousCommit::RemoteApply => "remote_apply",
        }
    }
}

/// What happens to a deleted source row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// The target row is deleted; a tombstone remembers the delete's position so that a late
    /// snapshot read cannot bring the row back.
    Hard,
    /// The target row stays with `_cdc_deleted_at` set.
    Soft,
}

/// What happens to a target column the source no longer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DroppedColumns {
    /// Kept, made nullable, no longer written.
    Keep,
    /// Dropped from the target table too.
    Drop,
}

/// Target layout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// PostgreSQL schema that receives the tables (created if missing).
    #[serde(default = "default_target_schema")]
    pub schema: String,
    /// Target table name, from `{database}`, `{schema}` and `{table}` of the source table.
    #[serde(default = "default_table_name")]
    pub table_name: String,
    /// PostgreSQL schema of the loader's own tables (offsets, tombstones, replays).
    #[serde(default = "default_state_schema")]
    pub state_schema: String,
    /// `hard` (default) or `soft`.
    #[serde(default = "default_delete_mode")]
    pub delete_mode: DeleteMode,
    /// `keep` (default) or `drop`.
    #[serde(default = "default_dropped_columns")]
    pub dropped_columns: DroppedColumns,
    /// How long delete tombstones are kept; a re-snapshot must finish within it.
    #[serde(default = "default_tombstone_retention_hours")]
    pub tombstone_retention_hours: u64,
    /// How often old tombstones are pruned and the lag gauges refreshed.
    #[serde(default = "default_housekeeping_interval_ms")]
    pub housekeeping_interval_ms: u64,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            schema: default_target_schema(),
            table_name: default_table_name(),
            state_schema: default_state_schema(),
            delete_mode: default_delete_mode(),
            dropped_columns: default_dropped_columns(),
            tombstone_retention_hours: default_tombstone_retention_hours(),
            housekeeping_interval_ms: default_housekeeping_interval_ms(),
        }
    }
}

fn default_target_schema() -> String {
    "public".to_owned()
}

fn default_table_name() -> String {
    "{table}".to_owned()
}

fn default_state_schema() -> String {
    "cdc_loader".to_owned()
}

fn default_delete_mode() -> DeleteMode {
    DeleteMode::Hard
}

fn default_dropped_columns() -> DroppedColumns {
    DroppedColumns::Keep
}

fn default_tombstone_retention_hours() -> u64 {
    7 * 24
}

fn default_housekeeping_interval_ms() -> u64 {
    30_000
}

/// Batching: a batch closes at whichever limit comes first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Events per batch.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Bytes of event payload per batch.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// How long a batch waits for more events once it holds one.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
    /// Batches read ahead while one is applied.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
    /// Events read but not yet committed in PostgreSQL, over every batch on its way (queued,
    /// being decoded, being applied), besides the one being filled: what bounds the loader's
    /// memory when it is behind. At least `max_rows`.
    #[serde(default = "default_max_in_flight_rows")]
    pub max_in_flight_rows: usize,
    /// PostgreSQL sessions applying at once; each partition always goes to the same one, so
    /// order per row holds.
    #[serde(default = "default_appliers")]
    pub appliers: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
            max_wait_ms: default_max_wait_ms(),
            queue_depth: default_queue_depth(),
            max_in_flight_rows: default_max_in_flight_rows(),
            appliers: default_appliers(),
        }
    }
}

fn default_max_rows() -> usize {
    7_500
}

fn default_max_bytes() -> usize {
    32 * 1024 * 1024
}

fn default_max_wait_ms() -> u64 {
    100
}

fn default_queue_depth() -> usize {
    2
}

/// Two batches: one applied while the next is prepared. 15,000 rather than 20,000 (with
/// 7,500-row rather than 10,000-row batches) took the loader's end-to-end peak RSS under
/// 100 MB, for up to a sixth of its own benchmark's bulk throughput (README, Benchmarks).
fn default_max_in_flight_rows() -> usize {
    15_000
}

fn default_appliers() -> usize {
    2
}

/// Exponential back-off between attempts when PostgreSQL fails transiently.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// First wait.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Longest wait.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

fn default_initial_backoff_ms() -> u64 {
    200
}

fn default_max_backoff_ms() -> u64 {
    10_000
}

impl ServiceConfig for LoaderConfig {
    cdc_service_kit::kit_sections!();

    fn service_secret_refs(&self) -> Vec<(&'static str, &SecretRef)> {
        self.postgres
            .password
            .as_ref()
            .map(|password| ("postgres.password", password))
            .into_iter()
            .collect()
    }

    fn validate_service(&self, errors: &mut Vec<FieldError>) {
        self.kafka.validate(errors);
        self.postgres.validate(errors);
        self.validate_target(errors);
        self.validate_limits(errors);
    }
}

impl LoaderConfig {
    fn validate_target(&self, errors: &mut Vec<FieldError>) {
        self.target.validate(errors);
        self.consumer.validate(errors);
    }

    fn validate_limits(&self, errors: &mut Vec<FieldError>) {
        let checks = [
            ("batch.max_rows", self.batch.max_rows as u64, 1, 1_000_000),
            (
                "batch.max_bytes",
                self.batch.max_bytes as u64,
                1024,
                1 << 30,
            ),
            ("batch.max_wait_ms", self.batch.max_wait_ms, 1, 60_000),
            ("batch.queue_depth", self.batch.queue_depth as u64, 1, 64),
            ("batch.appliers", self.batch.appliers as u64, 1, 32),
            (
                "batch.max_in_flight_rows",
                self.batch.max_in_flight_rows as u64,
                1,
                u64::from(u32::MAX),
            ),
            (
                "retry.initial_backoff_ms",
                self.retry.initial_backoff_ms,
                1,
                60_000,
            ),
            (
                "retry.max_backoff_ms",
                self.retry.max_backoff_ms,
                1,
                600_000,
            ),
            (
                "target.housekeeping_interval_ms",
                self.target.housekeeping_interval_ms,
                100,
                3_600_000,
            ),
            (
                "postgres.connect_timeout_ms",
                self.postgres.connect_timeout_ms,
                100,
                600_000,
            ),
        ];
        for (key, value, low, high) in checks {
            if !(low..=high).contains(&value) {
                errors.push(field_error(
                    key,
                    format!("{value} is not within {low}..={high}"),
                ));
            }
        }
        if self.batch.max_in_flight_rows < self.batch.max_rows {
            errors.push(field_error(
                "batch.max_in_flight_rows",
                format!(
                    "{} is less than batch.max_rows ({}): no batch could ever be applied",
                    self.batch.max_in_flight_rows, self.batch.max_rows
                ),
            ));
        }
        if self.retry.max_backoff_ms < self.retry.initial_backoff_ms {
            errors.push(field_error(
                "retry.max_backoff_ms",
                "must be at least retry.initial_backoff_ms".to_owned(),
            ));
        }
    }
}

impl PostgresConfig {
    /// Checks the `[postgres]` section, naming each bad key.
    pub fn validate(&self, errors: &mut Vec<FieldError>) {
        match url::Url::parse(&self.url) {
            Ok(url) if !matches!(url.scheme(), "postgres" | "postgresql") => errors.push(
                field_error("postgres.url", "expected a postgres:// URL".to_owned()),
            ),
            Ok(url) if url.password().is_some() => errors.push(field_error(
                "postgres.url",
                "holds a password; put it in `postgres.password` as a secret reference".to_owned(),
            )),
            Ok(_) => {}
            Err(e) => errors.push(field_error("postgres.url", format!("not a URL: {e}"))),
        }
    }
}

impl TargetConfig {
    /// Checks the `[target]` section, naming each bad key.
    pub fn validate(&self, errors: &mut Vec<FieldError>) {
        for (key, name) in [
            ("target.schema", &self.schema),
            ("target.state_schema", &self.state_schema),
        ] {
            if let Err(reason) = crate::naming::check_identifier(name) {
                errors.push(field_error(key, reason));
            }
        }
        if self.schema == self.state_schema {
            errors.push(field_error(
                "target.state_schema",
                "must differ from target.schema, so no source table can collide with the loader's own"
                    .to_owned(),
            ));
        }
        if let Err(reason) = TableNameTemplate::parse(&self.table_name) {
            errors.push(field_error("target.table_name", reason));
        }
    }
}

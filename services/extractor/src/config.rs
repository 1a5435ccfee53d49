//! Configuration of the extractor: the kit's sections plus the source server, the tables, the
//! snapshot, the stream, and how work is shared between instances.

use std::collections::BTreeMap;

use cdc_model::TablePattern;
use cdc_service_kit::config::{
    GrpcConfig, MetricsConfig, TelemetryConfig, VaultConfig, field_error,
};
use cdc_service_kit::{FieldError, KafkaConfig, SecretRef, ServiceConfig};
use serde::Deserialize;

/// Configuration key of the SQL Server password.
pub const SOURCE_PASSWORD: &str = "source.password";

/// The extractor's configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractorConfig {
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
    /// The SQL Server to read.
    pub source: SourceConfig,
    /// Which tables.
    #[serde(default)]
    pub tables: TablesConfig,
    /// First reads and re-snapshots.
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// Reading the change tables.
    #[serde(default)]
    pub stream: StreamConfig,
    /// Sharing tables between instances.
    #[serde(default)]
    pub work: WorkConfig,
}

/// Whether and how the connection to SQL Server is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encryption {
    /// TLS for the whole session (the default).
    Required,
    /// No TLS at all: only for servers that cannot do TLS, such as the project's simulator.
    Off,
}

/// The SQL Server instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Logical server name, carried in every event (`source.server`).
    pub server_name: String,
    /// Host name or address.
    pub host: String,
    /// TDS port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// SQL login.
    pub user: String,
    /// The login's password: a Vault reference (or `env:`/`literal:` for tests).
    pub password: SecretRef,
    /// Databases whose tables are captured.
    pub databases: Vec<String>,
    /// `required` (default) or `off`.
    #[serde(default = "default_encryption")]
    pub encryption: Encryption,
    /// Accept the server's certificate without checking it. An explicit opt-in for servers
    /// with self-signed certificates; never the default.
    #[serde(default)]
    pub trust_server_certificate: bool,
    /// Seconds to wait for a connection and login.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_port() -> u16 {
    1433
}

fn default_encryption() -> Encryption {
    Encryption::Required
}

fn default_connect_timeout_ms() -> u64 {
    15_000
}

/// What to do with a table that has neither a primary key nor a configured key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WithoutKey {
    /// Start-up fails naming the table (the default).
    #[default]
    Fail,
    /// The table is left out, with a warning.
    Skip,
}

/// Which captured tables to read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablesConfig {
    /// Patterns `database.schema.table` (`*`, `?`; case-insensitive); default every captured
    /// table of the configured databases.
    #[serde(default = "default_include")]
    pub include: Vec<String>,
    /// Patterns of tables to leave out, even when included.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Key columns of tables whose capture instance has no index (`"db.schema.table" =
    /// ["col", …]`).
    #[serde(default)]
    pub keys: BTreeMap<String, Vec<String>>,
    /// `fail` (default) or `skip` a table with no key.
    #[serde(default)]
    pub without_key: WithoutKey,
    /// Captured columns left out of the events (`"db.schema.table" = ["col", …]`): the way
    /// to carry a table that has a column of an unsupported type.
    #[serde(default)]
    pub exclude_columns: BTreeMap<String, Vec<String>>,
}

impl Default for TablesConfig {
    fn default() -> Self {
        TablesConfig {
            include: default_include(),
            exclude: Vec::new(),
            keys: BTreeMap::new(),
            without_key: WithoutKey::Fail,
            exclude_columns: BTreeMap::new(),
        }
    }
}

fn default_include() -> Vec<String> {
    vec!["*".to_owned()]
}

impl TablesConfig {
    /// The include patterns, compiled.
    pub fn include_patterns(&self) -> Vec<TablePattern> {
        self.include.iter().map(|p| TablePattern::new(p)).collect()
    }

    /// The exclude patterns, compiled.
    pub fn exclude_patterns(&self) -> Vec<TablePattern> {
        self.exclude.iter().map(|p| TablePattern::new(p)).collect()
    }
}

/// What happens on first start, when a table has no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Read every row, then stream (the default).
    #[default]
    Initial,
    /// Only stream changes from now on.
    Never,
}

/// Snapshots: chunked, in key order, lock-free (watermarks).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// `initial` (default) or `never`.
    #[serde(default)]
    pub mode: SnapshotMode,
    /// Rows per chunk (one keyset query).
    #[serde(default = "default_chunk_rows")]
    pub chunk_rows: usize,
    /// Rows read ahead and held until their watermark has been captured, per work unit:
    /// bounds memory; more keeps the snapshot going while the capture job catches up.
    #[serde(default = "default_max_pending_rows")]
    pub max_pending_rows: usize,
    /// The table, in each database, where watermarks are written (`schema.table`). It must
    /// have CDC enabled; see `create_watermark_table`.
    #[serde(default = "default_watermark_table")]
    pub watermark_table: String,
    /// Create the watermark table and enable CDC on it when missing (needs `db_owner`).
    #[serde(default = "default_true")]
    pub create_watermark_table: bool,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            mode: SnapshotMode::Initial,
            chunk_rows: default_chunk_rows(),
            max_pending_rows: default_max_pending_rows(),
            watermark_table: default_watermark_table(),
            create_watermark_table: true,
        }
    }
}

fn default_chunk_rows() -> usize {
    10_000
}

fn default_max_pending_rows() -> usize {
    100_000
}

fn default_watermark_table() -> String {
    "dbo.cdc_extractor_watermark".to_owned()
}

fn default_true() -> bool {
    true
}

impl SnapshotConfig {
    /// The watermark table as (schema, table).
    pub fn watermark_parts(&self) -> Option<(&str, &str)> {
        let (schema, table) = self.watermark_table.split_once('.')?;
        let valid = |part: &str| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        (valid(schema) && valid(table)).then_some((schema, table))
    }
}

/// What to do when a table's checkpoint is older than what its change table still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnRetentionGap {
    /// Stop the table with an error naming it and the lost LSN range (the default).
    #[default]
    Fail,
    /// Snapshot the table again and stream from the oldest change still held.
    Resnapshot,
}

/// Reading the change tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Pause between polls when there was nothing new.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Change rows per query.
    #[serde(default = "default_page_rows")]
    pub page_rows: usize,
    /// A Kafka transaction closes at this many events…
    #[serde(default = "default_max_batch_events")]
    pub max_batch_events: usize,
    /// Checkpoints of idle tables advance at least this often, so that retention cleanup
    /// never strands them.
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// `fail` (default) or `resnapshot`.
    #[serde(default)]
    pub on_retention_gap: OnRetentionGap,
    /// How often new capture instances (schema changes) are looked for.
    #[serde(default = "default_discovery_interval_ms")]
    pub discovery_interval_ms: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            poll_interval_ms: default_poll_interval_ms(),
            page_rows: default_page_rows(),
            max_batch_events: default_max_batch_events(),
            heartbeat_interval_ms: default_heartbeat_interval_ms(),
            on_retention_gap: OnRetentionGap::Fail,
            discovery_interval_ms: default_discovery_interval_ms(),
        }
    }
}

fn default_poll_interval_ms() -> u64 {
    500
}

fn default_page_rows() -> usize {
    50_000
}

fn default_max_batch_events() -> usize {
    100_000
}

fn default_heartbeat_interval_ms() -> u64 {
    10_000
}

fn default_discovery_interval_ms() -> u64 {
    30_000
}

/// How tables are shared between instances: each table belongs to one partition of the work
/// topic, and the instances share those partitions as a Kafka consumer group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkConfig {
    /// Consumer group of the extractor instances of one pipeline.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Partitions of `<prefix>.extractor.work` when it is created: the most instances that
    /// can share the tables. Changing it later moves tables between units; do it stopped.
    #[serde(default = "default_work_partitions")]
    pub partitions: i32,
    /// Partitions of each raw table topic when the extractor creates it (keys spread over
    /// them; more lets more transformer and loader instances share one table).
    #[serde(default = "default_raw_topic_partitions")]
    pub raw_topic_partitions: i32,
    /// How long the broker keeps an unfinished transaction of a vanished instance open.
    #[serde(default = "default_transaction_timeout_ms")]
    pub transaction_timeout_ms: u64,
    /// Extra librdkafka properties for the producers (e.g. `compression.type`).
    #[serde(default)]
    pub producer_properties: BTreeMap<String, String>,
}

impl Default for WorkConfig {
    fn default() -> Self {
        WorkConfig {
            group_id: default_group_id(),
            partitions: default_work_partitions(),
            raw_topic_partitions: default_raw_topic_partitions(),
            transaction_timeout_ms: default_transaction_timeout_ms(),
            producer_properties: BTreeMap::new(),
        }
    }
}

fn default_group_id() -> String {
    "cdc-extractor".to_owned()
}

fn default_work_partitions() -> i32 {
    8
}

fn default_raw_topic_partitions() -> i32 {
    3
}

fn default_transaction_timeout_ms() -> u64 {
    60_000
}

impl ServiceConfig for ExtractorConfig {
    cdc_service_kit::kit_sections!();

    fn service_secret_refs(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![(SOURCE_PASSWORD, &self.source.password)]
    }

    fn validate_service(&self, errors: &mut Vec<FieldError>) {
        self.kafka.validate(errors);
        self.source.validate(errors);
        self.tables.validate(errors);
        let mut check = |ok: bool, key: &str, message: &str| require(errors, ok, key, message);
        let snapshot = &self.snapshot;
        check(
            (1..=1_000_000).contains(&snapshot.chunk_rows),
            "snapshot.chunk_rows",
            "expected 1 to 1000000",
        );
        check(
            snapshot.max_pending_rows >= snapshot.chunk_rows,
            "snapshot.max_pending_rows",
            "must be at least snapshot.chunk_rows",
        );
        check(
            snapshot.watermark_parts().is_some(),
            "snapshot.watermark_table",
            "expected `schema.table` (letters, digits, `_`)",
        );
        let stream = &self.stream;
        check(
            (1..=600_000).contains(&stream.poll_interval_ms),
            "stream.poll_interval_ms",
            "expected 1 to 600000",
        );
        check(
            (2..=1_000_000).contains(&stream.page_rows),
            "stream.page_rows",
            "expected 2 to 1000000 (an update's two rows must fit)",
        );
        check(
            (1..=1_000_000).contains(&stream.max_batch_events),
            "stream.max_batch_events",
            "expected 1 to 1000000",
        );
        check(
            (100..=3_600_000).contains(&stream.heartbeat_interval_ms),
            "stream.heartbeat_interval_ms",
            "expected 100 to 3600000",
        );
        check(
            (100..=3_600_000).contains(&stream.discovery_interval_ms),
            "stream.discovery_interval_ms",
            "expected 100 to 3600000",
        );
        let work = &self.work;
        check(
            !work.group_id.trim().is_empty(),
            "work.group_id",
            "must not be empty",
        );
        check(
            (1..=1024).contains(&work.partitions),
            "work.partitions",
            "expected 1 to 1024",
        );
        check(
            (1..=1024).contains(&work.raw_topic_partitions),
            "work.raw_topic_partitions",
            "expected 1 to 1024",
        );
        check(
            (1_000..=900_000).contains(&work.transaction_timeout_ms),
            "work.transaction_timeout_ms",
            "expected 1000 to 900000 (the broker's default maximum is 900000)",
        );
    }
}

impl SourceConfig {
    /// Checks the `[source]` section, naming each bad key.
    pub fn validate(&self, errors: &mut Vec<FieldError>) {
        let source = self;
        let mut check = |ok: bool, key: &str, message: &str| require(errors, ok, key, message);
        check(
            !source.server_name.trim().is_empty(),
            "source.server_name",
            "must not be empty",
        );
        check(
            !source.host.trim().is_empty(),
            "source.host",
            "must not be empty",
        );
        check(
            !source.user.trim().is_empty(),
            "source.user",
            "must not be empty",
        );
        check(
            !source.databases.is_empty() && source.databases.iter().all(|d| !d.trim().is_empty()),
            "source.databases",
            "expected at least one database name",
        );
        check(
            (100..=600_000).contains(&source.connect_timeout_ms),
            "source.connect_timeout_ms",
            "expected 100 to 600000",
        );
        check(
            !(source.trust_server_certificate && source.encryption == Encryption::Off),
            "source.trust_server_certificate",
            "has no meaning with `encryption = \"off\"`",
        );
    }
}

impl TablesConfig {
    /// Checks the `[tables]` section, naming each bad key.
    pub fn validate(&self, errors: &mut Vec<FieldError>) {
        let mut check = |ok: bool, key: &str, message: &str| require(errors, ok, key, message);
        check(
            !self.include.is_empty(),
            "tables.include",
            "expected at least one pattern (`*` for every table)",
        );
        for (name, columns) in self.keys.iter().chain(&self.exclude_columns) {
            check(
                name.split('.').count() == 3 && !columns.is_empty(),
                &format!("tables.keys.\"{name}\""),
                "expected `\"database.schema.table\" = [\"column\", …]`",
            );
        }
    }
}

/// Records `message` against `key` unless `ok`.
fn require(errors: &mut Vec<FieldError>, ok: bool, key: &str, message: &str) {
    if !ok {
        errors.push(field_error(key, message.to_owned()));
    }
}

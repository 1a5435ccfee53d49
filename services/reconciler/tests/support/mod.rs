//! A reconciler between the SQL Server simulator and a per-test PostgreSQL database: a table
//! with every type of the type map, created in both with the same rows written in each
//! dialect, so tests can break the target in chosen ways and check what is found.
#![allow(dead_code)]
// each test binary uses a different part of this module
// Test support: panicking with a clear message is how a broken setup is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cdc_reconciler::config::{POSTGRES_PASSWORD, ReconcilerConfig, SOURCE_PASSWORD};
use cdc_reconciler::proto::{DifferenceKind, Run, TableResult};
use cdc_reconciler::runs::{Reconciler, RunRequest};
use cdc_service_kit::Secrets;
use cdc_test_harness::Stack;
use cdc_test_harness::ports::free_local_addr;
use cdc_test_harness::postgres::TestDatabase;
use mssql_sim::{Simulator, SimulatorConfig};
use secrecy::SecretString;
use sqlx::{AssertSqlSafe, Executor};
use tokio_util::sync::CancellationToken;

pub const BINARY: &str = env!("CARGO_BIN_EXE_cdc-reconciler");
pub const SA_PASSWORD: &str = "Sim-Pa55word!";
pub const CONTROL_TOKEN: &str = "reconciler-test-control-token";

/// A tiberius client.
pub use cdc_test_harness::sqlserver::SqlClient;

/// One column of the every-type table: its declaration in each database, a value in each
/// dialect, and a different value for the target (to break it on purpose).
pub struct TypedColumn {
    pub name: &'static str,
    pub sqlserver_type: &'static str,
    pub postgres_type: &'static str,
    pub sqlserver_value: &'static str,
    pub postgres_value: &'static str,
    pub postgres_other: &'static str,
}

/// Every type of the type map the simulator stores, with values at awkward edges. The
/// PostgreSQL values are what the loader writes for the SQL Server values.
pub const COLUMNS: &[TypedColumn] = &[
    col("c_bit", "bit", "boolean", "1", "true", "false"),
    col("c_tinyint", "tinyint", "smallint", "200", "200", "201"),
    col(
        "c_smallint",
        "smallint",
        "smallint",
        "-32768",
        "-32768",
        "5",
    ),
    col(
        "c_bigint",
        "bigint",
        "bigint",
        "9223372036854775807",
        "9223372036854775807",
        "1",
    ),
    col(
        "c_decimal",
        "decimal(12,4)",
        "numeric(12,4)",
        "-0.5",
        "-0.5",
        "-0.5001",
    ),
    col(
        "c_money",
        "money",
        "numeric(19,4)",
        "922337203685477.5807",
        "922337203685477.5807",
        "1",
    ),
    col(
        "c_smallmoney",
        "smallmoney",
        "numeric(10,4)",
        "-214748.3648",
        "-214748.3648",
        "0",
    ),
    col("c_float", "float", "double precision", "0.1", "0.1", "0.2"),
    col("c_real", "real", "real", "1.5", "1.5", "2.5"),
    col(
        "c_date",
        "date",
        "date",
        "'0001-01-01'",
        "'0001-01-01'",
        "'2024-02-29'",
    ),
    col(
        "c_time",
        "time(7)",
        "time(6)",
        "'23:59:59.1234565'",
        "'23:59:59.123457'",
        "'23:59:59.123458'",
    ),
    col(
        "c_datetime",
        "datetime",
        "timestamp(3)",
        "'2024-01-02 03:04:05.003'",
        "'2024-01-02 03:04:05.003'",
        "'2024-01-02 03:04:05.007'",
    ),
    col(
        "c_datetime2",
        "datetime2(7)",
        "timestamp(6)",
        "'2024-01-02 03:04:05.1234565'",
        "'2024-01-02 03:04:05.123457'",
        "'2024-01-02 03:04:05.123456'",
    ),
    col(
        "c_smalldatetime",
        "smalldatetime",
        "timestamp(0)",
        "'2024-01-02 03:04:00'",
        "'2024-01-02 03:04:00'",
        "'2024-01-02 03:05:00'",
    ),
    col(
        "c_datetimeoffset",
        "datetimeoffset(7)",
        "timestamptz",
        "'2024-01-02 03:04:05.5 +02:00'",
        "'2024-01-02 01:04:05.5+00'",
        "'2024-01-02 03:04:05.5+00'",
    ),
    col("c_char", "char(5)", "varchar(5)", "'ab'", "'ab   '", "'ab'"),
    col(
        "c_varchar",
        "varchar(40)",
        "varchar(40)",
        "'it''s'",
        "'it''s'",
        "'its'",
    ),
    col(
        "c_nvarchar",
        "nvarchar(40)",
        "varchar(40)",
        "N'Zoë 😀'",
        "'Zoë 😀'",
        "'Zoe 😀'",
    ),
    col(
        "c_varbinary",
        "varbinary(16)",
        "bytea",
        "0x00FF10",
        "'\\x00ff10'",
        "'\\x00ff11'",
    ),
    col(
        "c_binary",
        "binary(4)",
        "bytea",
        "0x0102",
        "'\\x01020000'",
        "'\\x0102'",
    ),
    col(
        "c_uuid",
        "uniqueidentifier",
        "uuid",
        "'6F9619FF-8B86-D011-B42D-00C04FC964FF'",
        "'6f9619ff-8b86-d011-b42d-00c04fc964ff'",
        "'6f9619ff-8b86-d011-b42d-00c04fc964fe'",
    ),
];

const fn col(
    name: &'static str,
    sqlserver_type: &'static str,
    postgres_type: &'static str,
    sqlserver_value: &'static str,
    postgres_value: &'static str,
    postgres_other: &'static str,
) -> TypedColumn {
    TypedColumn {
        name,
        sqlserver_type,
        postgres_type,
        sqlserver_value,
        postgres_value,
        postgres_other,
    }
}

/// The simulator and a PostgreSQL database for one test.
pub struct Fixture {
    pub stack: Stack,
    pub sim: Simulator,
    pub target: TestDatabase,
    pub database: String,
    pub prefix: String,
}

impl Fixture {
    /// A simulator with database `shop` enabled for CDC, and an empty PostgreSQL database.
    pub async fn new() -> Fixture {
        let stack = Stack::get();
        let sim = Simulator::start(
            "127.0.0.1:0".parse().unwrap(),
            SimulatorConfig::new(SA_PASSWORD),
        )
        .await
        .expect("cannot start the simulator");
        let target = TestDatabase::create(&stack).await;
        let prefix = format!("rt{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let fixture = Fixture {
            stack,
            sim,
            target,
            database: "shop".to_owned(),
            prefix,
        };
        let mut client = fixture.connect(None).await;
        fixture.sql_on(&mut client, "CREATE DATABASE shop").await;
        let mut client = fixture.sql().await;
        fixture
            .sql_on(&mut client, "EXEC sys.sp_cdc_enable_db")
            .await;
        fixture
    }

    /// A connection as `sa`.
    pub async fn connect(&self, database: Option<&str>) -> SqlClient {
        cdc_test_harness::sqlserver::connect_as_sa(self.sim.addr(), SA_PASSWORD, database).await
    }

    /// A connection to the test database.
    pub async fn sql(&self) -> SqlClient {
        self.connect(Some(&self.database)).await
    }

    /// Runs T-SQL; panics naming it on failure.
    pub async fn sql_on(&self, client: &mut SqlClient, statement: &str) {
        client
            .simple_query(statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"))
            .into_results()
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// Runs SQL in PostgreSQL; panics naming it on failure.
    pub async fn pg(&self, statement: &str) {
        self.target
            .pool
            .execute(AssertSqlSafe(statement.to_owned()))
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// Creates `name` with an int key and every typed column in SQL Server only (CDC
    /// enabled), empty: the loader creates the target table.
    pub async fn every_type_table_in_source(&self, name: &str) {
        self.source_table(name).await;
    }

    /// Creates `name` with an int key and every typed column in both databases (CDC enabled
    /// in SQL Server), empty.
    pub async fn every_type_table(&self, name: &str) {
        self.source_table(name).await;
        let postgres_columns: Vec<String> = COLUMNS
            .iter()
            .map(|c| format!("{} {}", c.name, c.postgres_type))
            .collect();
        self.pg(&format!(
            "CREATE TABLE public.{name} (id integer PRIMARY KEY, {})",
            postgres_columns.join(", ")
        ))
        .await;
    }

    async fn source_table(&self, name: &str) {
        let sqlserver_columns: Vec<String> = COLUMNS
            .iter()
            .map(|c| format!("{} {} NULL", c.name, c.sqlserver_type))
            .collect();
        let mut client = self.sql().await;
        self.sql_on(
            &mut client,
            &format!(
                "CREATE TABLE dbo.{name} (id int NOT NULL PRIMARY KEY, {})",
                sqlserver_columns.join(", ")
            ),
        )
        .await;
        self.sql_on(
            &mut client,
            &format!(
                "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'{name}', @role_name = NULL"
            ),
        )
        .await;
    }

    /// Inserts rows `ids` with the typed values into both databases (`null_ids` all NULL).
    pub async fn insert_both(
        &self,
        name: &str,
        ids: std::ops::RangeInclusive<i64>,
        null_ids: &[i64],
    ) {
        self.insert_source(name, ids.clone(), null_ids).await;
        self.insert_target(name, ids, null_ids).await;
    }

    /// Inserts rows into SQL Server only.
    pub async fn insert_source(
        &self,
        name: &str,
        ids: std::ops::RangeInclusive<i64>,
        null_ids: &[i64],
    ) {
        let mut client = self.sql().await;
        for statement in inserts(&format!("dbo.{name}"), ids, null_ids, |c| c.sqlserver_value) {
            self.sql_on(&mut client, &statement).await;
        }
    }

    /// Inserts rows into PostgreSQL only.
    pub async fn insert_target(
        &self,
        name: &str,
        ids: std::ops::RangeInclusive<i64>,
        null_ids: &[i64],
    ) {
        for statement in inserts(&format!("public.{name}"), ids, null_ids, |c| {
            c.postgres_value
        }) {
            self.pg(&statement).await;
        }
    }

    /// The reconciler's configuration; `extra` is appended.
    pub fn config(&self, extra: &str) -> String {
        self.config_at(free_local_addr(), free_local_addr(), extra)
    }

    /// The reconciler's configuration with its endpoints at `grpc` and `metrics`.
    pub fn config_at(
        &self,
        grpc: std::net::SocketAddr,
        metrics: std::net::SocketAddr,
        extra: &str,
    ) -> String {
        format!(
            r#"
[grpc]
listen = "{grpc}"
auth_token = "env:CDC_TEST_CONTROL_TOKEN"

[metrics]
listen = "{metrics}"

[kafka]
bootstrap_servers = "{kafka}"
topic_prefix = "{prefix}"

[source]
server_name = "sim"
host = "{host}"
port = {port}
user = "sa"
password = "env:CDC_TEST_SQL_PASSWORD"
databases = ["{database}"]
encryption = "off"

[postgres]
url = "{pg_url}"
password = "env:CDC_TEST_PG_PASSWORD"

{extra}
"#,
            kafka = self.stack.kafka_bootstrap,
            prefix = self.prefix,
            host = self.sim.addr().ip(),
            port = self.sim.addr().port(),
            database = self.database,
            pg_url = cdc_test_harness::stack::without_password(&self.target.url),
        )
    }

    /// The environment the configuration's secret references read.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CDC_TEST_CONTROL_TOKEN", CONTROL_TOKEN.to_owned()),
            ("CDC_TEST_SQL_PASSWORD", SA_PASSWORD.to_owned()),
            ("CDC_TEST_PG_PASSWORD", self.stack.pg_password()),
        ]
    }

    /// A reconciler in this process (no Kafka) with `extra` configuration.
    pub async fn reconciler(&self, extra: &str) -> Arc<Reconciler> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reconciler.toml");
        std::fs::write(&path, self.config(extra)).unwrap();
        let config: ReconcilerConfig =
            cdc_service_kit::config::load(&cdc_reconciler::service::SPEC, Some(&path))
                .unwrap_or_else(|e| panic!("test configuration refused: {e}"));
        let secrets = Secrets::from_values(HashMap::from([
            (SOURCE_PASSWORD, SecretString::from(SA_PASSWORD)),
            (
                POSTGRES_PASSWORD,
                SecretString::from(self.stack.pg_password()),
            ),
            ("grpc.auth_token", SecretString::from(CONTROL_TOKEN)),
        ]));
        cdc_reconciler::service::build(Arc::new(config), &secrets, false, CancellationToken::new())
            .await
            .unwrap_or_else(|e| panic!("cannot build the reconciler: {e:#}"))
    }
}

/// INSERT statements of 500 rows each for rows `ids` of the every-type table `table`, values
/// in one dialect (`value` picks it); rows `null_ids` are NULL but for the key.
fn inserts(
    table: &str,
    ids: std::ops::RangeInclusive<i64>,
    null_ids: &[i64],
    value: fn(&TypedColumn) -> &'static str,
) -> Vec<String> {
    let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
    let rows: Vec<String> = ids
        .map(|id| {
            let values: Vec<&str> = COLUMNS
                .iter()
                .map(|c| {
                    if null_ids.contains(&id) {
                        "NULL"
                    } else {
                        value(c)
                    }
                })
                .collect();
            format!("({id}, {})", values.join(", "))
        })
        .collect();
    rows.chunks(500)
        .map(|chunk| {
            format!(
                "INSERT INTO {table} (id, {}) VALUES {}",
                names.join(", "),
                chunk.join(", ")
            )
        })
        .collect()
}

/// Runs the reconciler once over `tables`.
pub async fn run(reconciler: &Arc<Reconciler>, tables: &[&str]) -> Run {
    tokio::time::timeout(
        Duration::from_secs(120),
        reconciler.run_to_end(
            RunRequest {
                tables: tables.iter().map(|t| (*t).to_owned()).collect(),
                repair: false,
                trigger: "test".to_owned(),
            },
            |_| {},
        ),
    )
    .await
    .expect("the run did not end within 120 s")
    .expect("the run did not start")
}

/// The differences of a table result as `(kind, key text, columns)`, sorted.
pub fn differences(table: &TableResult) -> Vec<(DifferenceKind, String, Vec<String>)> {
    let mut found: Vec<_> = table
        .differences
        .iter()
        .map(|d| {
            (
                DifferenceKind::try_from(d.kind).unwrap(),
                d.key
                    .iter()
                    .map(|k| format!("{}={}", k.column, k.value))
                    .collect::<Vec<_>>()
                    .join(","),
                d.columns.clone(),
            )
        })
        .collect();
    found.sort();
    found
}

/// A service of the pipeline running inside the test process (no control or metrics
/// endpoint): `toml` is its configuration, `secrets` its resolved secrets.
pub async fn start_in_process<C, F, Fut>(
    spec: cdc_service_kit::ServiceSpec,
    toml: &str,
    secrets: &[(&'static str, String)],
    shutdown: &CancellationToken,
    start: F,
) -> tokio::task::JoinHandle<()>
where
    C: cdc_service_kit::ServiceConfig + Send + Sync + 'static,
    F: FnOnce(cdc_service_kit::ServiceContext<C>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<cdc_service_kit::Started>>,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.toml");
    std::fs::write(&path, toml).unwrap();
    let config: C = cdc_service_kit::config::load(&spec, Some(&path))
        .unwrap_or_else(|e| panic!("{} test configuration refused: {e}", spec.name));
    let secrets = Secrets::from_values(
        secrets
            .iter()
            .map(|(key, value)| (*key, SecretString::from(value.clone())))
            .collect(),
    );
    let started = start(cdc_service_kit::ServiceContext {
        config: Arc::new(config),
        state: cdc_service_kit::ServiceState::new(spec),
        secrets,
        shutdown: shutdown.clone(),
        config_file: Some(path),
    })
    .await
    .unwrap_or_else(|e| panic!("{} did not start: {e:#}", spec.name));
    let name = spec.name;
    tokio::spawn(async move {
        if let Err(e) = started.worker.await {
            panic!("{name} stopped with an error: {e:#}");
        }
    })
}

//! An extractor on the real local stack, reading the SQL Server simulator: per-test topics,
//! a simulator with a fast capture job, the binary run as a process, the raw topics read back
//! with read_committed (as the transformer reads them).
#![allow(dead_code)]
// each test binary uses a different part of this module
// Test support: panicking with a clear message is how a broken setup is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use cdc_extractor::proto::extractor_client::ExtractorClient;
use cdc_model::Topics;
use cdc_model::proto::value::Kind;
use cdc_model::proto::{ChangeEvent, TableId, Value};
use cdc_test_harness::Stack;
use cdc_test_harness::control::{self, ControlChannel};
use cdc_test_harness::kafka::TestTopics;
use cdc_test_harness::ports::free_local_addr;
use cdc_test_harness::process::ServiceProcess;
use mssql_sim::{Simulator, SimulatorConfig};

pub use cdc_test_harness::kafka::{Read, read_committed};
#[allow(unused_imports)] // not every test binary waits
pub use cdc_test_harness::process::eventually;

pub const BINARY: &str = env!("CARGO_BIN_EXE_cdc-extractor");
pub const CONTROL_TOKEN: &str = "extractor-test-control-token";
pub const SA_PASSWORD: &str = "Sim-Pa55word!";
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A tiberius client.
pub use cdc_test_harness::sqlserver::SqlClient;
/// The extractor's own gRPC API.
pub type Extractor = ExtractorClient<ControlChannel>;

/// A simulator, a database in it, and topics for one test.
pub struct Fixture {
    pub stack: Stack,
    pub topics: TestTopics,
    pub names: Topics,
    pub sim: Simulator,
    pub database: String,
}

impl Fixture {
    /// A simulator whose capture job polls every 20 ms, with database `shop` enabled for CDC.
    pub async fn new() -> Fixture {
        let stack = Stack::get();
        let topics = TestTopics::new(&stack);
        let names = Topics::new(&topics.prefix).unwrap();
        let mut config = SimulatorConfig::new(SA_PASSWORD);
        config.capture.poll_interval = Duration::from_millis(20);
        let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), config)
            .await
            .expect("cannot start the simulator");
        let mut fixture = Fixture {
            stack,
            topics,
            names,
            sim,
            database: "shop".to_owned(),
        };
        let mut client = fixture.connect(None).await;
        run(&mut client, "CREATE DATABASE shop").await;
        let mut client = fixture.connect(Some("shop")).await;
        run(&mut client, "EXEC sys.sp_cdc_enable_db").await;
        for topic in [
            fixture.names.schemas(),
            fixture.names.extractor_offsets(),
            fixture.names.extractor_work(),
        ] {
            fixture.topics.adopt(&topic);
        }
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

    /// Creates a table with `columns` (T-SQL column definitions) and enables CDC on it.
    pub async fn captured_table(&mut self, name: &str, columns: &str) -> TableId {
        let mut client = self.sql().await;
        run(&mut client, &format!("CREATE TABLE dbo.{name} ({columns})")).await;
        run(
            &mut client,
            &format!(
                "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'{name}', @role_name = NULL"
            ),
        )
        .await;
        let table = TableId {
            database: self.database.clone(),
            schema: "dbo".to_owned(),
            table: name.to_owned(),
        };
        self.topics.adopt(&self.names.raw(&table).unwrap());
        table
    }

    /// An extractor configuration; `extra` is appended (it may add sections).
    pub fn config(
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

{extra}
"#,
            kafka = self.stack.kafka_bootstrap,
            prefix = self.topics.prefix,
            host = self.sim.addr().ip(),
            port = self.sim.addr().port(),
            database = self.database,
        )
    }

    /// Default test settings: a fast stream, its own work group.
    pub fn settings(&self, extra: &str) -> String {
        self.settings_tuned("", extra)
    }

    /// Test settings with more `[stream]` keys.
    pub fn settings_tuned(&self, stream: &str, extra: &str) -> String {
        format!(
            r#"
[stream]
{stream}
poll_interval_ms = 50
heartbeat_interval_ms = 500
discovery_interval_ms = 500

[work]
group_id = "{prefix}-extractor"
partitions = 4
raw_topic_partitions = 2
# A killed instance's open transactions end within seconds (the default is a minute): until
# they do, the next owner's checkpoint read waits for them.
transaction_timeout_ms = 10000

{extra}
"#,
            prefix = self.topics.prefix
        )
    }

    /// Starts an extractor process with `settings` (see [`Fixture::settings`]).
    pub fn start(&self, settings: &str) -> ServiceProcess {
        let (grpc, metrics) = (free_local_addr(), free_local_addr());
        let config = self.config(grpc, metrics, settings);
        let env = [
            ("CDC_TEST_CONTROL_TOKEN", CONTROL_TOKEN),
            ("CDC_TEST_SQL_PASSWORD", SA_PASSWORD),
        ];
        let mut process = ServiceProcess::spawn(Path::new(BINARY), &config, &env, grpc, metrics);
        process.wait_until_listening(START_TIMEOUT);
        process
    }

    /// Reads the raw topic of `table` until `count` events arrived (and one second more).
    pub fn read(
        &self,
        table: &TableId,
        count: usize,
        process: Option<&ServiceProcess>,
    ) -> Vec<ChangeEvent> {
        let topic = self.names.raw(table).unwrap();
        let mut records = read_committed(
            &self.stack,
            &format!("{}-reader", self.topics.prefix),
            &topic,
            count,
            Duration::from_secs(120),
            process,
        );
        records.sort_by_key(|r| (r.partition, r.offset));
        records.iter().map(Read::event).collect()
    }

    /// Partition -> end offset of `topic` (no partitions while it does not exist).
    pub fn ends(&self, topic: &str) -> BTreeMap<i32, i64> {
        cdc_test_harness::kafka::ends(&self.stack, topic)
    }

    /// A gRPC client of the extractor's own API.
    pub async fn client(&self, process: &ServiceProcess) -> Extractor {
        ExtractorClient::new(control::connect(process.grpc, CONTROL_TOKEN).await)
    }

    /// Waits until the extractor lists `tables` tables, every one of them streaming (its
    /// snapshot over).
    pub async fn until_streaming(&self, process: &ServiceProcess, tables: usize) {
        let client = self.client(process).await;
        eventually(
            &format!("{tables} tables streaming"),
            process,
            Duration::from_secs(60),
            || {
                let mut client = client.clone();
                async move {
                    let listed = client
                        .list_tables(cdc_extractor::proto::ListTablesRequest {})
                        .await
                        .map(|r| r.into_inner().tables)
                        .unwrap_or_default();
                    listed.len() == tables
                        && listed
                            .iter()
                            .all(|t| t.phase() == cdc_extractor::proto::Phase::Streaming)
                }
            },
        )
        .await;
    }
}

/// Runs a batch and drains its results; panics with the server's message on error.
pub async fn run(client: &mut SqlClient, sql: &str) {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_results()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// An int64 value.
pub fn int(value: i64) -> Value {
    cdc_model::value::of(Kind::Int64(value))
}

/// The events of each key, in topic order.
pub fn by_key(events: &[ChangeEvent]) -> BTreeMap<Vec<u8>, Vec<ChangeEvent>> {
    let mut map: BTreeMap<Vec<u8>, Vec<ChangeEvent>> = BTreeMap::new();
    for event in events {
        let table = event.source.as_ref().unwrap().table.as_ref().unwrap();
        map.entry(cdc_model::key::encode(table, &event.key).unwrap())
            .or_default()
            .push(event.clone());
    }
    map
}

/// The row each key ends with when its events are applied in order (deletes remove it).
pub fn final_rows(events: &[ChangeEvent]) -> BTreeMap<Vec<u8>, Vec<Value>> {
    let mut rows = BTreeMap::new();
    for (key, events) in by_key(events) {
        if let Some(last) = events.last()
            && let Some(after) = &last.after
        {
            rows.insert(key, after.values.clone());
        }
    }
    rows
}

impl Fixture {
    /// Everything committed to the raw topic of `table` so far, in partition and offset order.
    pub fn read_all(&self, table: &TableId) -> Vec<ChangeEvent> {
        let mut records = cdc_test_harness::kafka::read_committed_to_end(
            &self.stack,
            &format!("{}-reader", self.topics.prefix),
            &self.names.raw(table).unwrap(),
            Duration::from_secs(120),
        );
        records.sort_by_key(|r| (r.partition, r.offset));
        records.iter().map(Read::event).collect()
    }

    /// The rows of `table` now, keyed like events, with values as events carry them: read
    /// through the simulator's own change-free path (a plain SELECT converted the same way).
    pub async fn rows(&self, table: &TableId, key_columns: usize) -> BTreeMap<Vec<u8>, Vec<Value>> {
        let mut client = self.sql().await;
        let rows = client
            .simple_query(format!("SELECT * FROM dbo.{}", table.table))
            .await
            .unwrap()
            .into_first_result()
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                let values: Vec<Value> = row.cells().map(|(_, data)| sql_value(data)).collect();
                let key = cdc_model::key::encode(table, &values[..key_columns]).unwrap();
                (key, values)
            })
            .collect()
    }

    /// The positions of the change rows of capture instance `instance` that make events
    /// (deletes, inserts, updates' after images), with commit LSN above `after`.
    pub async fn change_positions(
        &self,
        instance: &str,
        after: &[u8],
    ) -> Vec<cdc_model::SourcePosition> {
        let mut client = self.sql().await;
        let rows = client
            .simple_query(format!(
                "SELECT __$start_lsn, __$command_id, __$seqval, __$operation FROM cdc.{instance}_CT \
                 WHERE __$operation <> 3 ORDER BY __$start_lsn, __$command_id, __$seqval, __$operation"
            ))
            .await
            .unwrap()
            .into_first_result()
            .await
            .unwrap();
        rows.iter()
            .map(|row| cdc_model::SourcePosition {
                commit_lsn: cdc_model::Lsn::from_bytes(row.get::<&[u8], _>(0).unwrap()).unwrap(),
                command_id: row.get::<i32, _>(1).unwrap(),
                seqval: cdc_model::Lsn::from_bytes(row.get::<&[u8], _>(2).unwrap()).unwrap(),
                operation: row.get::<i32, _>(3).unwrap(),
            })
            .filter(|p| p.commit_lsn.as_bytes().as_slice() > after)
            .collect()
    }
}

/// Ints and text as events carry them (the tests' tables use only these types).
fn sql_value(data: &tiberius::ColumnData<'_>) -> Value {
    use tiberius::ColumnData as D;
    match data {
        D::I32(Some(v)) => int(i64::from(*v)),
        D::I64(Some(v)) => int(*v),
        D::String(Some(s)) => cdc_model::value::of(Kind::Text(s.to_string())),
        D::I32(None) | D::I64(None) | D::String(None) => cdc_model::value::null(),
        other => panic!("test tables use int, bigint and nvarchar only, not {other:?}"),
    }
}

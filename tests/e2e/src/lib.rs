//! The whole pipeline as an operator runs it: the extractor, the transformer, the loader and
//! the reconciler as processes (their release or debug binaries), between the SQL Server
//! simulator and PostgreSQL on the local stack, exporting traces to the stack's Jaeger.
//!
//! A missing stack or binary is a loud failure naming the command to run, never a skip.
// Test support code: panicking with a clear message is how a fixture reports a broken setup.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod http;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cdc_test_harness::Stack;
use cdc_test_harness::ports::free_local_addr;
use cdc_test_harness::postgres::TestDatabase;
use cdc_test_harness::process::{ServiceProcess, workspace_binary};
use mssql_sim::engine::cdc::CaptureConfig;
use mssql_sim::{Simulator, SimulatorConfig};

/// The `sa` password of the simulator.
pub const SA_PASSWORD: &str = "E2e-Pa55word!";
/// The control token every service of the pipeline takes at start (from Vault).
pub const CONTROL_TOKEN: &str = "e2e-control-token";
/// The source database.
pub const DATABASE: &str = "shop";

pub use cdc_test_harness::sqlserver::SqlClient;

/// The four services, by name.
pub const SERVICES: [&str; 4] = ["extractor", "transformer", "loader", "reconciler"];

/// What the source holds before any service starts.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// T-SQL run in database `shop` once it exists with CDC enabled: CREATE TABLE and
    /// `sys.sp_cdc_enable_table` calls.
    Tables(&'a str),
    /// A whole script of GO batches run from master that creates `shop`, its tables and rows,
    /// and enables CDC itself (as compose/mssql/init.sql does).
    Script(&'a str),
}

/// How a pipeline starts.
#[derive(Debug, Clone, Copy)]
pub struct PipelineOptions<'a> {
    /// The source database's setup.
    pub source: Source<'a>,
    /// Instances of each service (more than one share the work and take over from each other).
    pub instances: usize,
    /// SQL run in the target database before any service starts (e.g. audit triggers).
    pub target_setup: Option<&'a str>,
}

/// The simulator, a target database and the four services as processes.
pub struct Pipeline {
    /// The local stack.
    pub stack: Stack,
    /// The SQL Server simulator, in this process.
    pub sim: Simulator,
    /// The PostgreSQL database the loader writes and the reconciler reads.
    pub target: TestDatabase,
    /// The topic prefix of this pipeline (unique per test).
    pub prefix: String,
    /// Every instance of every service, in [`SERVICES`] order, then by instance number.
    pub services: Vec<ServiceProcess>,
    /// Instances of each service.
    instances: usize,
    /// Each instance's configuration, in the order of `services` (a restart reuses it).
    configs: Vec<String>,
}

impl Pipeline {
    /// Starts the simulator with database `shop` enabled for CDC and `tables` (T-SQL run
    /// before any service starts: CREATE TABLE and `sys.sp_cdc_enable_table` calls), then the
    /// four services, each traced to the stack's Jaeger; returns once all four listen.
    pub async fn start(tables: &str) -> Pipeline {
        Pipeline::start_with(PipelineOptions {
            source: Source::Tables(tables),
            instances: 1,
            target_setup: None,
        })
        .await
    }

    /// Starts the simulator with the source of `options`, runs its target setup, then starts
    /// its number of instances of each of the four services; returns once all of them listen.
    pub async fn start_with(options: PipelineOptions<'_>) -> Pipeline {
        assert!(
            options.instances >= 1,
            "a pipeline needs an instance of each service"
        );
        let stack = Stack::get();
        let sim = Simulator::start(
            "127.0.0.1:0".parse().unwrap(),
            SimulatorConfig {
                sa_password: SA_PASSWORD.to_owned(),
                capture: CaptureConfig {
                    poll_interval: Duration::from_millis(100),
                    ..CaptureConfig::default()
                },
            },
        )
        .await
        .expect("cannot start the simulator");
        let target = TestDatabase::create(&stack).await;
        if let Some(setup) = options.target_setup {
            sqlx::raw_sql(sqlx::AssertSqlSafe(setup.to_owned()))
                .execute(&target.pool)
                .await
                .unwrap_or_else(|e| panic!("the target setup failed: {e}\n{setup}"));
        }
        let prefix = format!("e2e{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        cdc_test_harness::vault::write_secret(
            &stack,
            &format!("{prefix}/control"),
            &[("token", CONTROL_TOKEN)],
        )
        .await;
        let mut pipeline = Pipeline {
            stack,
            sim,
            target,
            prefix,
            services: Vec::new(),
            instances: options.instances,
            configs: Vec::new(),
        };
        let mut master = pipeline.connect(None).await;
        match options.source {
            Source::Tables(tables) => {
                sql(&mut master, &format!("CREATE DATABASE {DATABASE}")).await;
                let mut shop = pipeline.sql().await;
                sql(&mut shop, "EXEC sys.sp_cdc_enable_db").await;
                sql(&mut shop, tables).await;
            }
            Source::Script(script) => {
                for batch in mssql_sim::script::batches(script) {
                    sql(&mut master, &batch).await;
                }
            }
        }
        for service in SERVICES {
            for number in 1..=options.instances {
                let config = pipeline.config(service, number);
                pipeline.services.push(pipeline.spawn(service, &config));
                pipeline.configs.push(config);
            }
        }
        for process in &mut pipeline.services {
            process.wait_until_listening(Duration::from_secs(60));
        }
        pipeline
    }

    /// Stops `service` with SIGTERM (it must exit 0) and starts it again with the same
    /// configuration, as an operator restarts an instance; returns once it listens.
    pub fn restart(&mut self, service: &str) {
        let index = self.index_of(service, 1);
        let status = self.services[index].terminate(Duration::from_secs(40));
        assert!(status.success(), "{service} did not stop cleanly: {status}");
        self.respawn(service, 1);
    }

    /// Kills instance `number` (from 1) of `service` with SIGKILL, as a crash would.
    pub fn kill(&mut self, service: &str, number: usize) {
        let index = self.index_of(service, number);
        self.services[index].kill();
    }

    /// Starts instance `number` of `service` again with its configuration (after it was killed
    /// or stopped); returns once it listens.
    pub fn respawn(&mut self, service: &str, number: usize) {
        let index = self.index_of(service, number);
        let mut process = self.spawn(service, &self.configs[index]);
        process.wait_until_listening(Duration::from_secs(60));
        self.services[index] = process;
    }

    /// Instance `number` (from 1) of `service`.
    pub fn instance(&self, service: &str, number: usize) -> &ServiceProcess {
        &self.services[self.index_of(service, number)]
    }

    /// Instance `number` (from 1) of `service`, to check whether it still runs.
    pub fn instance_mut(&mut self, service: &str, number: usize) -> &mut ServiceProcess {
        let index = self.index_of(service, number);
        &mut self.services[index]
    }

    /// Instances of each service.
    pub fn instances(&self) -> usize {
        self.instances
    }

    fn index_of(&self, service: &str, number: usize) -> usize {
        let position = SERVICES
            .iter()
            .position(|s| *s == service)
            .unwrap_or_else(|| panic!("no service {service}"));
        assert!(
            (1..=self.instances).contains(&number),
            "no instance {number} of {service}: the pipeline runs {}",
            self.instances
        );
        position * self.instances + number - 1
    }

    fn spawn(&self, service: &str, config: &str) -> ServiceProcess {
        let env = [
            ("VAULT_TOKEN", self.stack.vault_token.clone()),
            ("CDC_E2E_SQL_PASSWORD", SA_PASSWORD.to_owned()),
            ("CDC_E2E_PG_PASSWORD", self.stack.pg_password()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ServiceProcess::spawn(
            &workspace_binary(&format!("cdc-{service}")),
            config,
            &env,
            address(config, "[grpc]"),
            address(config, "[metrics]"),
        )
    }

    /// The process of `service` (one of [`SERVICES`]).
    pub fn service(&self, service: &str) -> &ServiceProcess {
        self.instance(service, 1)
    }

    /// The last lines every service instance wrote, for failure messages.
    pub fn output(&self) -> String {
        SERVICES
            .iter()
            .flat_map(|name| (1..=self.instances).map(move |number| (*name, number)))
            .zip(&self.services)
            .map(|((name, number), process)| {
                format!("---- {name} {number}\n{}", tail(&process.output(), 60))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A connection to the simulator as `sa`, to `database` or to master.
    pub async fn connect(&self, database: Option<&str>) -> SqlClient {
        cdc_test_harness::sqlserver::connect_as_sa(self.sim.addr(), SA_PASSWORD, database).await
    }

    /// A connection to the source database.
    pub async fn sql(&self) -> SqlClient {
        self.connect(Some(DATABASE)).await
    }

    /// Waits until `query` (one bigint) in the target database returns `expected`.
    pub async fn wait_for_target(&self, query: &str, expected: i64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut seen = None;
        while Instant::now() < deadline {
            seen = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(query.to_owned()))
                .fetch_one(&self.target.pool)
                .await
                .ok();
            if seen == Some(expected) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "`{query}` gave {seen:?}, not {expected}, within {timeout:?}\n{}",
            self.output()
        );
    }

    /// The Vault path (KV v2 at `secret/`) of the control token every service reads.
    pub fn control_token_path(&self) -> String {
        format!("{}/control", self.prefix)
    }

    /// The configuration of `service`, as an operator would write it.
    fn config(&self, service: &str, number: usize) -> String {
        let group = format!("{}-{service}", self.prefix);
        let common = format!(
            r#"
[grpc]
listen = "{grpc}"
auth_token = "vault:secret/{prefix}/control#token"

[metrics]
listen = "{metrics}"

[telemetry]
log_filter = "info"
otlp_endpoint = "{otlp}"

[vault]
address = "{vault}"
token = "env:VAULT_TOKEN"

[kafka]
bootstrap_servers = "{kafka}"
topic_prefix = "{prefix}"
"#,
            grpc = free_local_addr(),
            metrics = free_local_addr(),
            otlp = self.stack.otlp_endpoint,
            vault = self.stack.vault_addr,
            kafka = self.stack.kafka_bootstrap,
            prefix = self.prefix,
        );
        let source = format!(
            r#"
[source]
server_name = "sim"
host = "{host}"
port = {port}
user = "sa"
password = "env:CDC_E2E_SQL_PASSWORD"
databases = ["{DATABASE}"]
encryption = "off"
"#,
            host = self.sim.addr().ip(),
            port = self.sim.addr().port(),
        );
        let postgres = format!(
            "\n[postgres]\nurl = \"{}\"\npassword = \"env:CDC_E2E_PG_PASSWORD\"\n",
            cdc_test_harness::stack::without_password(&self.target.url)
        );
        let consumer = format!(
            "\n[consumer]\ngroup_id = \"{group}\"\n\n[consumer.properties]\n\
             \"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n"
        );
        match service {
            "extractor" => format!(
                "{common}{source}
[stream]
poll_interval_ms = 50
heartbeat_interval_ms = 500
discovery_interval_ms = 500

[work]
group_id = \"{group}\"
partitions = 2
raw_topic_partitions = 2
transaction_timeout_ms = 10000
"
            ),
            // One typical rule, so events are decoded and transformed (with none they pass
            // through byte for byte).
            "transformer" => format!(
                "{common}{consumer}
[producer]
transactional_id = \"{group}-{number}\"

[[rules]]
name = \"commit time\"
tables = \"{DATABASE}.*.*\"
add_column = {{ name = \"cdc_committed_at\", value = \"commit_time\" }}
"
            ),
            "loader" => format!("{common}{consumer}{postgres}"),
            "reconciler" => format!("{common}{source}{postgres}\n[compare]\nsettle_ms = 2000\n"),
            other => panic!("no service {other}"),
        }
    }
}

/// Runs T-SQL on `client`; panics naming it on failure.
pub async fn sql(client: &mut SqlClient, statement: &str) {
    client
        .simple_query(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"))
        .into_results()
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// The `listen` address of `section` in a configuration written by [`Pipeline::config`].
fn address(config: &str, section: &str) -> SocketAddr {
    config
        .split(section)
        .nth(1)
        .and_then(|rest| rest.lines().find_map(|l| l.strip_prefix("listen = ")))
        .and_then(|value| value.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no listen address in {section}"))
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

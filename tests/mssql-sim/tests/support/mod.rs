//! Starting a simulator and connecting to it with tiberius, the real client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use mssql_sim::{Simulator, SimulatorConfig};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

/// The `sa` password of test simulators.
pub const PASSWORD: &str = "Sim-Pa55word!";

/// A tiberius client over Tokio.
pub type SqlClient = Client<Compat<TcpStream>>;

/// A simulator on a free loopback port.
pub async fn simulator() -> Simulator {
    let mut config = SimulatorConfig::new(PASSWORD);
    // Asynchronous like SQL Server's job, but quicker than its 5 s so tests stay short.
    config.capture.poll_interval = std::time::Duration::from_millis(20);
    Simulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("cannot start the simulator")
}

/// A client configuration for `addr`.
pub fn config(addr: SocketAddr, password: &str, database: Option<&str>) -> Config {
    let mut config = Config::new();
    config.host(addr.ip().to_string());
    config.port(addr.port());
    config.authentication(AuthMethod::sql_server("sa", password));
    config.encryption(EncryptionLevel::NotSupported);
    if let Some(database) = database {
        config.database(database);
    }
    config
}

/// Connects as `sa`.
pub async fn connect(addr: SocketAddr) -> SqlClient {
    try_connect(config(addr, PASSWORD, None))
        .await
        .expect("login failed")
}

/// Connects with `config`.
pub async fn try_connect(config: Config) -> tiberius::Result<SqlClient> {
    let tcp = TcpStream::connect(config.get_addr()).await?;
    tcp.set_nodelay(true)?;
    Client::connect(config, tcp.compat_write()).await
}

/// The server error number inside a tiberius error.
pub fn server_error_number(error: &tiberius::error::Error) -> Option<u32> {
    match error {
        tiberius::error::Error::Server(token) => Some(token.code()),
        _ => None,
    }
}

/// The error of a call that must fail.
pub fn error_of<T>(result: tiberius::Result<T>, what: &str) -> tiberius::error::Error {
    match result {
        Ok(_) => panic!("{what}: expected an error, got success"),
        Err(e) => e,
    }
}

/// Where a scenario runs: the in-process simulator, or a real SQL Server named by
/// `CDC_TEST_MSSQL_URL` (`mssql://sa:PASSWORD@host:port`, SQL Server Agent running so that
/// the capture job works). The same test bodies run against both.
pub enum Target {
    /// The simulator, started for this test.
    Simulator(Simulator),
    /// A real SQL Server.
    Real(Box<Config>),
}

impl Target {
    /// The real server when `CDC_TEST_MSSQL_URL` is set, else a fresh simulator.
    pub async fn new() -> Target {
        match std::env::var("CDC_TEST_MSSQL_URL") {
            Ok(url) => {
                eprintln!("scenario runs against the real SQL Server at CDC_TEST_MSSQL_URL");
                Target::Real(Box::new(real_config(&url)))
            }
            Err(_) => Target::Simulator(simulator().await),
        }
    }

    /// A new connection as `sa`.
    pub async fn connect(&self) -> SqlClient {
        let config = match self {
            Target::Simulator(sim) => config(sim.addr(), PASSWORD, None),
            Target::Real(config) => (**config).clone(),
        };
        try_connect(config).await.expect("login failed")
    }

    /// How long a committed change may take to reach a change table: SQL Server's capture job
    /// polls every 5 s by default.
    pub fn capture_timeout(&self) -> std::time::Duration {
        match self {
            Target::Simulator(_) => std::time::Duration::from_secs(10),
            Target::Real(_) => std::time::Duration::from_secs(60),
        }
    }
}

fn real_config(url: &str) -> Config {
    let parsed =
        url::Url::parse(url).unwrap_or_else(|e| panic!("CDC_TEST_MSSQL_URL is not a URL: {e}"));
    let mut config = Config::new();
    config.host(parsed.host_str().expect("CDC_TEST_MSSQL_URL needs a host"));
    config.port(parsed.port().unwrap_or(1433));
    let password = url::form_urlencoded::parse(parsed.password().unwrap_or_default().as_bytes())
        .map(|(k, v)| format!("{k}{v}"))
        .collect::<String>();
    config.authentication(AuthMethod::sql_server(parsed.username(), password));
    config.encryption(EncryptionLevel::NotSupported);
    config
}

/// A database name unique to one test, so scenarios can run side by side on one server.
pub fn unique_database() -> String {
    format!("cdc_sim_{}", uuid::Uuid::new_v4().simple())
}

/// Runs a batch and drains its results; panics with the server's message on error.
pub async fn run(client: &mut SqlClient, sql: &str) {
    client
        .simple_query(sql)
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
}

/// The rows of a batch's first result set.
pub async fn rows(client: &mut SqlClient, sql: &str) -> Vec<tiberius::Row> {
    client
        .simple_query(sql)
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap()
}

/// The rows of the first result set of a parameterized query (`sp_executesql`).
pub async fn query_rows(
    client: &mut SqlClient,
    sql: &str,
    parameters: &[&dyn tiberius::ToSql],
) -> Vec<tiberius::Row> {
    client
        .query(sql, parameters)
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap()
}

/// The server error number of a batch that must fail.
pub async fn error_number(client: &mut SqlClient, sql: &str) -> Option<u32> {
    let result = match client.simple_query(sql).await {
        Ok(stream) => stream.into_results().await.map(|_| ()),
        Err(e) => Err(e),
    };
    server_error_number(&error_of(result, sql))
}

/// Creates a database of the test's own and makes it current; returns its name.
pub async fn fresh_database(client: &mut SqlClient) -> String {
    let database = unique_database();
    run(client, &format!("CREATE DATABASE {database}")).await;
    run(client, &format!("USE {database}")).await;
    database
}

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

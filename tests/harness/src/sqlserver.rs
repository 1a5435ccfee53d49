//! A tiberius client of SQL Server (or the simulator standing in for it), as the tests log in.

use std::net::SocketAddr;

use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

/// A tiberius client over a tokio TCP stream.
pub type SqlClient = Client<Compat<TcpStream>>;

/// Logs in to the server at `addr` as `sa` with `password`, to `database` (or master),
/// unencrypted; panics naming the address when it cannot.
pub async fn connect_as_sa(addr: SocketAddr, password: &str, database: Option<&str>) -> SqlClient {
    let mut config = Config::new();
    config.host(addr.ip().to_string());
    config.port(addr.port());
    config.authentication(AuthMethod::sql_server("sa", password));
    config.encryption(EncryptionLevel::NotSupported);
    if let Some(database) = database {
        config.database(database);
    }
    let tcp = TcpStream::connect(config.get_addr())
        .await
        .unwrap_or_else(|e| panic!("cannot reach SQL Server at {addr}: {e}"));
    tcp.set_nodelay(true)
        .unwrap_or_else(|e| panic!("cannot set TCP_NODELAY: {e}"));
    Client::connect(config, tcp.compat_write())
        .await
        .unwrap_or_else(|e| panic!("login as sa to {addr} failed: {e}"))
}

//! The I/O edge: connecting with tiberius, sending a batch, reading the keys that exist.

use secrecy::ExposeSecret;
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use crate::config::{ConnectionConfig, Encrypt};
use crate::model::{Key, Model, Table};
use crate::{Error, Result};

/// A tiberius client over Tokio.
pub type SqlClient = Client<Compat<TcpStream>>;

/// The key queries, one per table.
const KEY_QUERIES: [(Table, &str); 4] = [
    (Table::Customers, "SELECT customer_id FROM dbo.customers"),
    (Table::Products, "SELECT product_id FROM dbo.products"),
    (Table::Orders, "SELECT order_id FROM dbo.orders"),
    (
        Table::OrderLines,
        "SELECT order_id, line_no FROM dbo.order_lines",
    ),
];

/// Connects and logs in to the configured database.
pub async fn connect(connection: &ConnectionConfig) -> Result<SqlClient> {
    let mut config = Config::new();
    config.host(&connection.host);
    config.port(connection.port);
    config.database(&connection.database);
    config.application_name("cdc-workload");
    config.authentication(AuthMethod::sql_server(
        &connection.user,
        connection.password.expose_secret(),
    ));
    config.encryption(match connection.encrypt {
        Encrypt::Off => EncryptionLevel::NotSupported,
        Encrypt::On => EncryptionLevel::On,
        Encrypt::Required => EncryptionLevel::Required,
    });
    if connection.trust_server_certificate {
        config.trust_cert();
    }
    let context = || {
        format!(
            "connecting to {}:{} database {}",
            connection.host, connection.port, connection.database
        )
    };
    let tcp = TcpStream::connect(config.get_addr())
        .await
        .map_err(|e| Error::sql(context(), e.into()))?;
    tcp.set_nodelay(true)
        .map_err(|e| Error::sql(context(), e.into()))?;
    Client::connect(config, tcp.compat_write())
        .await
        .map_err(|e| Error::sql(context(), e))
}

/// Sends `sql` as one batch and drains its results.
pub async fn execute(client: &mut SqlClient, sql: &str) -> Result<()> {
    let stream = client
        .simple_query(sql)
        .await
        .map_err(|e| Error::sql("sending a batch", e))?;
    stream
        .into_results()
        .await
        .map_err(|e| Error::sql("running a batch", e))?;
    Ok(())
}

/// The keys of the four `shop` tables.
pub async fn keys(client: &mut SqlClient) -> Result<Vec<(Table, Key)>> {
    let mut keys = Vec::new();
    for (table, query) in KEY_QUERIES {
        let context = || format!("reading the keys of {}", table.name());
        let rows = client
            .simple_query(query)
            .await
            .map_err(|e| Error::sql(context(), e))?
            .into_first_result()
            .await
            .map_err(|e| Error::sql(context(), e))?;
        for row in rows {
            let key = match table {
                Table::Customers | Table::Orders => row
                    .try_get::<i32, _>(0)
                    .map(|id| id.map(|id| Key::Id(id.into()))),
                Table::Products => row.try_get::<i64, _>(0).map(|id| id.map(Key::Id)),
                Table::OrderLines => row.try_get::<i32, _>(0).and_then(|order_id| {
                    let line_no = row.try_get::<i16, _>(1)?;
                    Ok(order_id
                        .zip(line_no)
                        .map(|(order_id, line_no)| Key::Line { order_id, line_no }))
                }),
            };
            keys.extend(
                key.map_err(|e| Error::sql(context(), e))?
                    .map(|k| (table, k)),
            );
        }
    }
    Ok(keys)
}

/// A model of the rows there are now.
pub async fn model(client: &mut SqlClient) -> Result<Model> {
    Ok(Model::from_keys(keys(client).await?))
}

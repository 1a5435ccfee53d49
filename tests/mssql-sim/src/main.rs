//! `mssql-sim --listen 127.0.0.1:PORT --sa-password PASSWORD`: a SQL Server simulator over TDS.

use std::net::SocketAddr;

use clap::Parser;
use mssql_sim::{Simulator, SimulatorConfig};

/// A SQL Server CDC simulator that speaks TDS 7.4.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:14330")]
    listen: SocketAddr,
    /// Password of the `sa` login.
    #[arg(long, env = "MSSQL_SIM_SA_PASSWORD")]
    sa_password: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let simulator = Simulator::start(
        args.listen,
        SimulatorConfig {
            sa_password: args.sa_password,
        },
    )
    .await?;
    tracing::info!(addr = %simulator.addr(), "mssql-sim listening");
    tokio::signal::ctrl_c().await?;
    tracing::info!("mssql-sim stopping");
    Ok(())
}

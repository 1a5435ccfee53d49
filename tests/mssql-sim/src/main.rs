//! `mssql-sim --listen 127.0.0.1:PORT --sa-password PASSWORD`: a SQL Server simulator over TDS.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use mssql_sim::engine::cdc::CaptureConfig;
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
    /// Pause of the CDC capture job between scans when idle, in milliseconds (SQL Server: 5000).
    #[arg(long, default_value_t = 5000)]
    capture_poll_interval_ms: u64,
    /// Transactions the capture job reads per scan (SQL Server: 500).
    #[arg(long, default_value_t = 500)]
    capture_max_transactions: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let config = SimulatorConfig {
        sa_password: args.sa_password,
        capture: CaptureConfig {
            poll_interval: Duration::from_millis(args.capture_poll_interval_ms),
            max_transactions_per_scan: args.capture_max_transactions.max(1),
        },
    };
    let simulator = Simulator::start(args.listen, config).await?;
    tracing::info!(addr = %simulator.addr(), "mssql-sim listening");
    tokio::signal::ctrl_c().await?;
    tracing::info!("mssql-sim stopping");
    Ok(())
}

//! `mssql-sim --listen 127.0.0.1:PORT --sa-password PASSWORD [--init-sql FILE]...`: a SQL
//! Server simulator over TDS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mssql_sim::engine::cdc::CaptureConfig;
use mssql_sim::engine::{Outcome, Parameters, Session};
use mssql_sim::{Simulator, SimulatorConfig};

/// mimalloc rather than glibc's allocator: the engine allocates for every value of every row,
/// and glibc's malloc and free took about a quarter of its CPU under a bulk load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// T-SQL scripts run before serving, in order, split into batches at `GO` lines as
    /// sqlcmd splits them (for example compose/mssql/init.sql, the sample database). The first
    /// failing batch stops the simulator, naming the file and the batch.
    #[arg(long = "init-sql", value_name = "FILE")]
    init_sql: Vec<PathBuf>,
}

/// Runs `path` on `simulator` as `sa` would, from master.
fn run_script(simulator: &Simulator, path: &Path) -> anyhow::Result<()> {
    let script = std::fs::read_to_string(path)
        .with_context(|| format!("--init-sql {}: cannot read it", path.display()))?;
    let mut session = Session::new(simulator.engine(), "master".to_owned());
    for (index, batch) in mssql_sim::script::batches(&script).iter().enumerate() {
        if let Some(Outcome::Error(error)) = session.execute(batch, &Parameters::new()).last() {
            anyhow::bail!(
                "--init-sql {}: batch {} failed: {error:?}",
                path.display(),
                index + 1
            );
        }
    }
    tracing::info!(script = %path.display(), "init script run");
    Ok(())
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
    for path in &args.init_sql {
        run_script(&simulator, path)?;
    }
    tracing::info!(addr = %simulator.addr(), "mssql-sim listening");
    tokio::signal::ctrl_c().await?;
    tracing::info!("mssql-sim stopping");
    Ok(())
}

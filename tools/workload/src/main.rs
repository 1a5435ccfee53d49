//! `cdc-workload`: paced inserts, updates, deletes and key updates against the `shop` sample
//! database, with a progress line on stderr and a JSON summary on stdout.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use cdc_workload::config::{parse_fraction, parse_rate};
use cdc_workload::{ConnectionConfig, Encrypt, Mix, WorkloadConfig};
use clap::{CommandFactory, Parser, error::ErrorKind};
use tokio_util::sync::CancellationToken;

/// Generates a change workload on the shop sample database (compose/mssql/init.sql) of SQL
/// Server or the project's simulator.
#[derive(Debug, Parser)]
#[command(name = "cdc-workload", version)]
struct Args {
    /// Server host name or address.
    #[arg(long)]
    host: String,
    /// TDS port.
    #[arg(long, default_value_t = 1433)]
    port: u16,
    /// SQL login.
    #[arg(long, default_value = "sa")]
    user: String,
    /// Environment variable holding the login's password.
    #[arg(long, value_name = "VAR")]
    password_env: String,
    /// Database holding the shop tables.
    #[arg(long, default_value = "shop")]
    database: String,
    /// TLS: off, on or required.
    #[arg(long, default_value = "off", value_parser = |s: &str| s.parse::<Encrypt>())]
    encrypt: Encrypt,
    /// Accept the server's certificate without checking it.
    #[arg(long)]
    trust_server_certificate: bool,
    /// Target changes per second (committed and rolled back together).
    #[arg(long, value_name = "ROWS_PER_S", value_parser = parse_rate)]
    rate: f64,
    /// How long to run in seconds; 0 runs until Ctrl-C.
    #[arg(long = "duration-s", default_value_t = 60)]
    duration_s: u64,
    /// Seed of the operation and value choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Relative weights of the operations.
    #[arg(long, default_value = "insert=60,update=25,delete=10,key_update=5")]
    mix: Mix,
    /// Changes per transaction.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    transaction_rows: u32,
    /// Fraction of transactions rolled back on purpose.
    #[arg(long, default_value_t = 0.02, value_parser = parse_fraction)]
    rollback_fraction: f64,
    /// Seconds between progress lines on stderr.
    #[arg(long = "report-interval-s", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..))]
    report_interval_s: u64,
}

impl Args {
    fn workload(&self) -> WorkloadConfig {
        WorkloadConfig {
            rows_per_s: self.rate,
            duration: Some(Duration::from_secs(self.duration_s)).filter(|d| !d.is_zero()),
            seed: self.seed,
            mix: self.mix,
            transaction_rows: self.transaction_rows,
            rollback_fraction: self.rollback_fraction,
            report_interval: Duration::from_secs(self.report_interval_s),
        }
    }

    /// The connection, with the password from `--password-env`; exits 2 when it is unset.
    fn connection(&self) -> ConnectionConfig {
        let password = std::env::var(&self.password_env).unwrap_or_else(|_| {
            Args::command()
                .error(
                    ErrorKind::ValueValidation,
                    format!(
                        "invalid value for --password-env: environment variable `{}` is not set",
                        self.password_env
                    ),
                )
                .exit()
        });
        ConnectionConfig {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: password.into(),
            database: self.database.clone(),
            encrypt: self.encrypt,
            trust_server_certificate: self.trust_server_certificate,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let connection = args.connection();
    let workload = args.workload();
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("cdc-workload: interrupted, finishing the current transaction");
            on_signal.cancel();
        }
    });
    match cdc_workload::run(&connection, &workload, shutdown).await {
        Ok(summary) => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", summary.to_json());
            ExitCode::SUCCESS
        }
        Err(cdc_workload::Error::Config(e)) => Args::command()
            .error(ErrorKind::ValueValidation, e.to_string())
            .exit(),
        Err(e) => {
            eprintln!("cdc-workload: {:#}", anyhow::Error::new(e));
            ExitCode::FAILURE
        }
    }
}

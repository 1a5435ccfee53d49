//! `cdc-reconciler run`: one run from the command line, with a progress bar on standard error,
//! the report on standard output, and an exit code that says how it went.
//!
//! Exit codes: 0 every table matches; 1 rows differ or a table cannot be compared; 2 bad
//! configuration or secrets; 3 the run could not be carried out (a database unreachable).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::config::ReconcilerConfig;
use crate::proto::{Run, RunState, TableState};
use crate::report::{markdown, table_state_name};
use crate::runs::RunRequest;
use crate::service::SPEC;

/// Exit code when rows differ or a table cannot be compared.
const EXIT_MISMATCH: u8 = 1;
/// Exit code when the run could not be carried out.
const EXIT_FAILED: u8 = 3;

/// `cdc-reconciler run`.
#[derive(Debug, Parser)]
#[command(
    name = "cdc-reconciler run",
    about = "Compare SQL Server and PostgreSQL once and report"
)]
pub struct RunCommand {
    /// TOML configuration file (default: `CDC_RECONCILER_CONFIG`).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Tables to compare, `database.schema.table` patterns separated by commas; default every
    /// configured table.
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// Report format on standard output.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,
    /// Do not publish the report to the reports topic (it is still stored in PostgreSQL).
    #[arg(long)]
    no_publish: bool,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    quiet: bool,
}

/// Report formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// For people.
    Markdown,
    /// For programs.
    Json,
}

/// Runs `cdc-reconciler run …` (`args` without the binary name and `run`).
pub fn main(args: impl IntoIterator<Item = String>) -> ExitCode {
    let command = match RunCommand::try_parse_from(
        std::iter::once("cdc-reconciler run".to_owned()).chain(args),
    ) {
        Ok(command) => command,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cdc-reconciler: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(command))
}

async fn run(command: RunCommand) -> ExitCode {
    let (config, secrets) = match cdc_service_kit::runtime::load_for_command::<ReconcilerConfig>(
        &SPEC,
        command.config.clone(),
    )
    .await
    {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("cdc-reconciler: {e}");
            return cdc_service_kit::runtime::exit_code(&e);
        }
    };
    let shutdown = CancellationToken::new();
    let reconciler = match crate::service::build(
        Arc::new(config),
        &secrets,
        !command.no_publish,
        shutdown.clone(),
    )
    .await
    {
        Ok(reconciler) => reconciler,
        Err(e) => {
            eprintln!("cdc-reconciler: {e:#}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let bar = if command.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed}] {bar:30} {pos}/{len} tables  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };
    let stop = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.cancel();
        }
    });
    let outcome = reconciler
        .run_to_end(
            RunRequest {
                tables: command.tables.clone(),
                repair: false,
                trigger: "cli".to_owned(),
            },
            |run| show_progress(&bar, run),
        )
        .await;
    bar.finish_and_clear();
    let run = match outcome {
        Ok(run) => run,
        Err(e) => {
            eprintln!("cdc-reconciler: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let report = match command.format {
        Format::Markdown => markdown(&run),
        Format::Json => format!("{}\n", crate::report::json(&run)),
    };
    // The report is the command's output: standard output, not a log line.
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(report.as_bytes())
        .and_then(|()| stdout.flush())
    {
        eprintln!("cdc-reconciler: cannot write the report: {e}");
        return ExitCode::from(EXIT_FAILED);
    }
    summary_exit_code(&run)
}

fn show_progress(bar: &ProgressBar, run: &Run) {
    let done = run
        .tables
        .iter()
        .filter(|t| {
            !matches!(
                TableState::try_from(t.state).unwrap_or(TableState::Unspecified),
                TableState::Pending
                    | TableState::Hashing
                    | TableState::Drilling
                    | TableState::Settling
            )
        })
        .count();
    bar.set_length(run.tables.len() as u64);
    bar.set_position(done as u64);
    if let Some(current) = run.tables.iter().find(|t| {
        matches!(
            TableState::try_from(t.state).unwrap_or(TableState::Unspecified),
            TableState::Hashing | TableState::Drilling | TableState::Settling
        )
    }) {
        bar.set_message(format!(
            "{} {} ({} rows)",
            current.table,
            table_state_name(current.state),
            current.source_rows
        ));
    }
}

fn summary_exit_code(run: &Run) -> ExitCode {
    match RunState::try_from(run.state).unwrap_or(RunState::Unspecified) {
        RunState::Clean => ExitCode::SUCCESS,
        RunState::Mismatch => ExitCode::from(EXIT_MISMATCH),
        _ => ExitCode::from(EXIT_FAILED),
    }
}

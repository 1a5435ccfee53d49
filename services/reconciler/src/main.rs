//! `cdc-reconciler`: compares SQL Server and PostgreSQL and finds the rows that differ. Runs
//! as a service (control API, schedule), or once with `cdc-reconciler run`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("run") {
        return cdc_reconciler::cli::main(args.skip(1));
    }
    cdc_service_kit::runtime::main(
        cdc_reconciler::service::SPEC,
        cdc_reconciler::service::start,
    )
}

//! `cdc-loader`: applies change events to PostgreSQL, idempotently and in batches.

use std::process::ExitCode;

fn main() -> ExitCode {
    cdc_service_kit::runtime::main(cdc_loader::service::SPEC, cdc_loader::service::start)
}

//! `cdc-extractor`: reads SQL Server's CDC change tables and publishes ordered change events to Kafka.

use std::process::ExitCode;

fn main() -> ExitCode {
    cdc_service_kit::runtime::main(cdc_extractor::service::SPEC, cdc_extractor::service::start)
}

//! `cdc-transformer`: applies declarative rules between the raw and clean topics.

use std::process::ExitCode;

fn main() -> ExitCode {
    cdc_service_kit::runtime::main(
        cdc_transformer::service::SPEC,
        cdc_transformer::service::start,
    )
}

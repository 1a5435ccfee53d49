//! `cdc-loader`: applies change events to PostgreSQL, idempotently and in batches.

use std::process::ExitCode;

use cdc_service_kit::ServiceSpec;

/// Identity and default ports of this binary.
const SPEC: ServiceSpec = ServiceSpec {
    name: "loader",
    version: env!("CARGO_PKG_VERSION"),
    default_grpc_port: 50053,
    default_metrics_port: 9103,
};

fn main() -> ExitCode {
    cdc_service_kit::runtime::main(SPEC, cdc_loader::service::start)
}

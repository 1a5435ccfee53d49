//! `cdc-reconciler`: compares SQL Server and PostgreSQL and finds the rows that differ.

mod config;

use std::process::ExitCode;

use cdc_service_kit::grpc::ExtraServices;
use cdc_service_kit::{ServiceContext, ServiceSpec, Started};

use crate::config::ReconcilerConfig;

/// Identity and default ports of this binary.
const SPEC: ServiceSpec = ServiceSpec {
    name: "reconciler",
    version: env!("CARGO_PKG_VERSION"),
    default_grpc_port: 50054,
    default_metrics_port: 9104,
};

fn main() -> ExitCode {
    cdc_service_kit::runtime::main(SPEC, start)
}

/// Starts the reconciler's work. Its data path lands with its own issue; until then it serves the
/// control plane and keeps the Kafka connection's state in status.
async fn start(context: ServiceContext<ReconcilerConfig>) -> anyhow::Result<Started> {
    let worker = cdc_service_kit::kafka::connectivity_worker(
        context.config.kafka.clone(),
        context.state.clone(),
        context.shutdown.clone(),
    );
    Ok(Started {
        services: ExtraServices::default(),
        worker,
    })
}

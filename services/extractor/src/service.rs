//! Wiring: checks the source at start-up, then runs the work group.

use std::sync::Arc;
use std::time::Duration;

use cdc_model::Topics;
use cdc_service_kit::grpc::ExtraServices;
use cdc_service_kit::topics::TopicCreator;
use cdc_service_kit::{ServiceContext, ServiceSpec, Started};

use crate::config::{ExtractorConfig, SOURCE_PASSWORD};
use crate::discovery::{self, DiscoveryError, Selection, table_name};
use crate::grpc::ExtractorControl;
use crate::proto::extractor_server::ExtractorServer;
use crate::registry::Registry;
use crate::sql::Connector;
use crate::unit::Shared;

/// Identity and default ports of the extractor binary.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "extractor",
    version: env!("CARGO_PKG_VERSION"),
    default_grpc_port: 50051,
    default_metrics_port: 9101,
};

/// Starts the extractor (the kit calls this once configuration and secrets are ready).
pub async fn start(context: ServiceContext<ExtractorConfig>) -> anyhow::Result<Started> {
    let config = Arc::clone(&context.config);
    crate::metrics::describe();
    crate::metrics::zero_counters();
    let connector = Connector::new(
        config.source.clone(),
        context.secrets.get(SOURCE_PASSWORD)?.clone(),
    );
    check_source(&connector, &config).await?;
    let topics = Topics::new(&config.kafka.topic_prefix)?;
    let client_config = config.kafka.client_config();
    let creator = Arc::new(TopicCreator::new(
        &client_config,
        tokio::runtime::Handle::current(),
    )?);
    let registry = Registry::default();
    let shared = Arc::new(Shared {
        config: Arc::clone(&config),
        connector,
        topics,
        creator,
        client_config,
        registry: registry.clone(),
        state: context.state.clone(),
    });
    tokio::spawn(cdc_service_kit::kafka::probe_until(
        config.kafka.clone(),
        context.state.clone(),
        Duration::from_secs(10),
        context.shutdown.clone(),
    ));
    let services = ExtraServices::default().add(
        ExtractorServer::new(ExtractorControl::new(registry)),
        crate::proto::FILE_DESCRIPTOR_SET,
    );
    let shutdown = context.shutdown.clone();
    let worker = async move { crate::assign::run(shared, shutdown).await };
    Ok(Started {
        services,
        worker: Box::pin(worker),
    })
}

/// Discovers every configured database once, so that a table that cannot be captured as
/// configured stops start-up with its name. A server that cannot be reached is only
/// reported: the work units keep trying.
async fn check_source(connector: &Connector, config: &ExtractorConfig) -> anyhow::Result<()> {
    let selection = Selection {
        tables: &config.tables,
        watermark: config.snapshot.watermark_parts().unwrap_or(("", "")),
    };
    for database in &config.source.databases {
        let mut client = match connector.connect(database).await {
            Ok(client) => client,
            Err(e) if e.is_retryable() => {
                tracing::warn!(database, error = %e, "SQL Server is not reachable yet; the work units will keep trying");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match discovery::discover(&mut client, database, &selection).await {
            Ok(tables) => {
                let names: Vec<String> = tables.iter().map(|t| table_name(&t.id)).collect();
                tracing::info!(database, tables = ?names, "captured tables found");
            }
            Err(e @ DiscoveryError::Sql(_)) if e.is_retryable() => {
                tracing::warn!(database, error = %e, "discovery failed for now; the work units will keep trying");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

//! Wiring: the databases, the report store and topic, the control API and the schedule.

use std::sync::Arc;
use std::time::Duration;

use cdc_model::Topics;
use cdc_service_kit::grpc::ExtraServices;
use cdc_service_kit::producer::AwaitingProducer;
use cdc_service_kit::topics::TopicCreator;
use cdc_service_kit::{Secrets, ServiceContext, ServiceSpec, Started};
use tokio_util::sync::CancellationToken;

use crate::config::{POSTGRES_PASSWORD, ReconcilerConfig, SOURCE_PASSWORD};
use crate::databases::TargetDb;
use crate::grpc::ReconcilerControl;
use crate::proto::reconciler_server::ReconcilerServer;
use crate::repair::Repairer;
use crate::rules::Rules;
use crate::runs::{Parts, Reconciler};
use crate::store::ReportStore;

/// Identity and default ports of the reconciler binary.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "reconciler",
    version: env!("CARGO_PKG_VERSION"),
    default_grpc_port: 50054,
    default_metrics_port: 9104,
};

/// Builds the reconciler from configuration and secrets: connections, report store (created
/// if missing) and, when `with_kafka`, the reports topic and its producer.
pub async fn build(
    config: Arc<ReconcilerConfig>,
    secrets: &Secrets,
    with_kafka: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<Arc<Reconciler>> {
    crate::metrics::describe();
    crate::metrics::zero_counters();
    let connector = cdc_extractor::sql::Connector::new(
        config.source.clone(),
        secrets.get(SOURCE_PASSWORD)?.clone(),
    );
    let password = match &config.postgres.password {
        Some(_) => Some(secrets.get(POSTGRES_PASSWORD)?),
        None => None,
    };
    let pool = cdc_loader::store::Connector::new(&config.postgres, password)?
        .with_application_name("cdc-reconciler")
        .pool_of(4);
    let target = TargetDb::new(
        pool.clone(),
        Duration::from_secs(config.compare.statement_timeout_s),
    );
    check_encoding(&pool).await?;
    let store = ReportStore::new(pool, &config.reports.state_schema);
    store.bootstrap().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot create the report tables in schema `{}` (reports.state_schema): {e}",
            config.reports.state_schema
        )
    })?;
    let rules = match &config.compare.transformer_config {
        Some(path) => Rules::load(path)?,
        None => Rules::default(),
    };
    let reports = if with_kafka {
        Some(reports_producer(&config).await?)
    } else {
        None
    };
    let repairer = if config.repair.enabled {
        Some(Repairer::new(&config).await?)
    } else {
        None
    };
    Ok(Arc::new(Reconciler::new(Parts {
        config,
        connector,
        target,
        rules,
        store,
        reports,
        repairer,
        shutdown,
    })?))
}

/// The canonical form counts text lengths in UTF-8 bytes (`octet_length`): the target
/// database must store text as UTF-8.
async fn check_encoding(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let encoding: String = sqlx::query_scalar("SELECT current_setting('server_encoding')")
        .fetch_one(pool)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach PostgreSQL (postgres.url): {e}"))?;
    anyhow::ensure!(
        encoding.eq_ignore_ascii_case("UTF8"),
        "the target database's encoding is {encoding}; comparisons need UTF8 (CREATE DATABASE … ENCODING 'UTF8')"
    );
    Ok(())
}

async fn reports_producer(config: &ReconcilerConfig) -> anyhow::Result<AwaitingProducer> {
    let topics = Topics::new(&config.kafka.topic_prefix)?;
    let client_config = config.kafka.client_config();
    let creator = TopicCreator::new(&client_config, tokio::runtime::Handle::current())?;
    let topic = topics.reconcile_reports();
    tokio::task::spawn_blocking(move || creator.ensure_partitions(&topic, 1, false))
        .await?
        .map_err(|e| anyhow::anyhow!("cannot create the reports topic: {e}"))?;
    Ok(client_config.create()?)
}

/// Starts the reconciler service (the kit calls this once configuration and secrets are
/// ready).
pub async fn start(context: ServiceContext<ReconcilerConfig>) -> anyhow::Result<Started> {
    let config = Arc::clone(&context.config);
    let reconciler = build(
        Arc::clone(&config),
        &context.secrets,
        true,
        context.shutdown.clone(),
    )
    .await?;
    tokio::spawn(cdc_service_kit::kafka::probe_until(
        config.kafka.clone(),
        context.state.clone(),
        Duration::from_secs(10),
        context.shutdown.clone(),
    ));
    if let Some(cron) = &config.schedule.cron {
        let schedule: cron::Schedule = cron
            .parse()
            .map_err(|e| anyhow::anyhow!("schedule.cron: {e}"))?;
        tokio::spawn(crate::schedule::run(
            Arc::clone(&reconciler),
            schedule,
            config.schedule.tables.clone(),
            config.schedule.repair,
            context.shutdown.clone(),
        ));
    }
    let services = ExtraServices::default().add(
        ReconcilerServer::new(ReconcilerControl::new(reconciler)),
        crate::proto::FILE_DESCRIPTOR_SET,
    );
    let shutdown = context.shutdown.clone();
    let worker = async move {
        shutdown.cancelled().await;
        Ok(())
    };
    Ok(Started {
        services,
        worker: Box::pin(worker),
    })
}

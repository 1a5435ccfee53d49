//! Wiring: builds the loader's parts from configuration and runs its work loop.

use std::sync::mpsc;
use std::time::Duration;

use cdc_model::Topics;
use cdc_service_kit::grpc::ExtraServices;
use cdc_service_kit::proto::State;
use cdc_service_kit::{ServiceContext, ServiceSpec, ServiceState, Started};
use tokio_util::sync::CancellationToken;

use crate::apply::{Applier, ApplySettings};
use crate::config::LoaderConfig;
use crate::dead_letters::DeadLetterSink;
use crate::grpc::{ApplierRequest, LoaderControl};
use crate::naming::TableNameTemplate;
use crate::prepare::{PreparedBatch, Preparer};
use crate::proto::loader_server::LoaderServer;
use crate::source::{Batch, SessionAssignment, SourceSetup};
use cdc_service_kit::schema_registry::SchemaRegistry;

use crate::store::{Connector, OffsetStore};
use crate::tables::Tables;
use crate::target::Layout;

/// Identity and default ports of the loader binary.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "loader",
    version: env!("CARGO_PKG_VERSION"),
    default_grpc_port: 50053,
    default_metrics_port: 9103,
};

/// Status component of the PostgreSQL connection.
const POSTGRES_COMPONENT: &str = "postgres";

/// Starts the loader (the kit calls this once configuration and secrets are ready).
pub async fn start(context: ServiceContext<LoaderConfig>) -> anyhow::Result<Started> {
    let config = context.config.clone();
    let password = match &config.postgres.password {
        Some(_) => Some(context.secrets.get("postgres.password")?.clone()),
        None => None,
    };
    let connector = Connector::new(&config.postgres, password.as_ref())?;
    let topics = Topics::new(&config.kafka.topic_prefix)?;
    let client_config = config.kafka.client_config();
    let table_names = TableNameTemplate::parse(&config.target.table_name)
        .map_err(|e| anyhow::anyhow!("target.table_name: {e}"))?;
    crate::metrics::describe();
    crate::metrics::zero_counters();
    let tables = Tables::default();
    let schemas = SchemaRegistry::start(
        client_config.clone(),
        topics.schemas(),
        context.shutdown.clone(),
    );
    let dead_letters = DeadLetterSink::new(&client_config, topics.dlq_loader())?;
    let (source_commands, source_receiver) = mpsc::channel();
    let (applier_requests, applier_receiver) = tokio::sync::mpsc::channel(8);
    let control = LoaderControl::new(
        tables.clone(),
        source_commands.clone(),
        applier_requests,
        client_config.clone(),
        topics.dlq_loader(),
    );
    let settings = ApplySettings {
        state_schema: config.target.state_schema.clone(),
        group: config.consumer.group_id.clone(),
        layout: Layout {
            delete_mode: config.target.delete_mode,
            dropped_columns: config.target.dropped_columns,
        },
        retry: config.retry.clone(),
    };
    let preparer = Preparer::new(
        config.target.schema.clone(),
        table_names,
        schemas,
        tables.clone(),
    );
    let appliers: Vec<Applier> = (0..config.batch.appliers)
        .map(|index| {
            Applier::new(
                settings.clone(),
                connector.clone(),
                preparer.clone(),
                tables.clone(),
                dead_letters.clone(),
                Some(source_commands.clone()),
                context.shutdown.clone(),
            )
            .named(index)
        })
        .collect();
    let mut consumer_config = client_config.clone();
    config.consumer.apply_properties(&mut consumer_config);
    let setup = SourceSetup {
        client_config: consumer_config,
        group_id: config.consumer.group_id.clone(),
        topic_pattern: config
            .consumer
            .subscription(&config.kafka.topic_prefix, "clean"),
        batch: config.batch.clone(),
        store: OffsetStore::new(
            connector.pool(),
            &config.target.state_schema,
            &config.consumer.group_id,
        ),
        tables,
        runtime: tokio::runtime::Handle::current(),
        shutdown: context.shutdown.clone(),
    };
    let probe = cdc_service_kit::kafka::probe_until(
        config.kafka.clone(),
        context.state.clone(),
        Duration::from_secs(10),
        context.shutdown.clone(),
    );
    tokio::spawn(probe);
    let work = Work {
        appliers,
        preparer,
        connector,
        state_schema: config.target.state_schema.clone(),
        housekeeping: Housekeeping {
            tombstone_retention_hours: config.target.tombstone_retention_hours,
            interval: Duration::from_millis(config.target.housekeeping_interval_ms),
        },
        dead_letter_topic: topics.dlq_loader(),
        state: context.state.clone(),
        shutdown: context.shutdown.clone(),
    };
    let services = ExtraServices::default().add(
        LoaderServer::new(control),
        crate::proto::FILE_DESCRIPTOR_SET,
    );
    Ok(Started {
        services,
        worker: Box::pin(work.run(setup, source_receiver, applier_receiver)),
    })
}

/// What the first session does besides applying, and how often.
#[derive(Clone, Copy)]
struct Housekeeping {
    tombstone_retention_hours: u64,
    interval: Duration,
}

struct Work {
    appliers: Vec<Applier>,
    preparer: Preparer,
    connector: Connector,
    state_schema: String,
    housekeeping: Housekeeping,
    dead_letter_topic: String,
    state: ServiceState,
    shutdown: CancellationToken,
}

impl Work {
    async fn run(
        self,
        setup: SourceSetup,
        source_commands: mpsc::Receiver<crate::source::SourceCommand>,
        requests: tokio::sync::mpsc::Receiver<ApplierRequest>,
    ) -> anyhow::Result<()> {
        if !self.bootstrap().await {
            return Ok(());
        }
        let (batches, consumer_thread) = crate::source::start(setup, source_commands)?;
        let Work {
            appliers,
            preparer,
            housekeeping,
            dead_letter_topic,
            state,
            shutdown,
            ..
        } = self;
        let mut requests = Some(requests);
        let mut inputs = Vec::new();
        let mut tasks = Vec::new();
        for applier in appliers {
            // Per session: preparing (decode, coalesce, encode) runs one batch ahead of applying.
            let (raw_sender, raw) = tokio::sync::mpsc::channel(1);
            let (prepared_sender, prepared) = tokio::sync::mpsc::channel(1);
            tasks.push(tokio::spawn(prepare_ahead(
                preparer.clone(),
                raw,
                prepared_sender,
                shutdown.clone(),
            )));
            let worker = ApplyWorker {
                applier,
                housekeeping,
                dead_letter_topic: dead_letter_topic.clone(),
                state: state.clone(),
                shutdown: shutdown.clone(),
            };
            // The first session also serves the control API's requests and housekeeping.
            tasks.push(tokio::spawn(worker.run(prepared, requests.take())));
            inputs.push(raw_sender);
        }
        dispatch(batches, &inputs, &shutdown).await;
        drop(inputs);
        for task in tasks {
            let _ = task.await;
        }
        let _ = tokio::task::spawn_blocking(move || consumer_thread.join()).await;
        Ok(())
    }

    /// Creates the state tables, retrying while PostgreSQL is unreachable; false on shutdown.
    async fn bootstrap(&self) -> bool {
        let mut backoff = Duration::from_millis(200);
        loop {
            let attempt = async {
                let mut connection = self.connector.connect().await?;
                crate::store::bootstrap(&mut connection, &self.state_schema).await
            };
            match attempt.await {
                Ok(()) => {
                    self.state
                        .set_component(POSTGRES_COMPONENT, State::Running, "connected");
                    return true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prepare the loader's state tables; retrying");
                    self.state
                        .set_component(POSTGRES_COMPONENT, State::Degraded, e.to_string());
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.shutdown.cancelled() => return false,
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}

/// Prepares batches from the consumer thread and hands them on, one ahead of the applier.
async fn prepare_ahead(
    preparer: Preparer,
    mut batches: tokio::sync::mpsc::Receiver<Batch>,
    prepared: tokio::sync::mpsc::Sender<PreparedBatch>,
    shutdown: CancellationToken,
) {
    while let Some(batch) = batches.recv().await {
        let Some(ready) = preparer.prepare_batch(batch, &shutdown).await else {
            return;
        };
        if prepared.send(ready).await.is_err() {
            return;
        }
    }
}

/// Hands each session its partitions' share of every batch, in order.
async fn dispatch(
    mut batches: tokio::sync::mpsc::Receiver<Batch>,
    sessions: &[tokio::sync::mpsc::Sender<Batch>],
    shutdown: &CancellationToken,
) {
    let mut assignment = SessionAssignment::new(sessions.len());
    loop {
        let batch = tokio::select! {
            batch = batches.recv() => batch,
            () = shutdown.cancelled() => None,
        };
        let Some(batch) = batch else {
            return;
        };
        for (part, session) in batch.split(&mut assignment).into_iter().zip(sessions) {
            if !part.records.is_empty() && session.send(part).await.is_err() {
                return;
            }
        }
    }
}

/// One PostgreSQL session applying its share of the batches.
struct ApplyWorker {
    applier: Applier,
    housekeeping: Housekeeping,
    dead_letter_topic: String,
    state: ServiceState,
    shutdown: CancellationToken,
}

impl ApplyWorker {
    async fn run(
        mut self,
        mut prepared: tokio::sync::mpsc::Receiver<PreparedBatch>,
        mut requests: Option<tokio::sync::mpsc::Receiver<ApplierRequest>>,
    ) {
        let serves_control = requests.is_some();
        let mut housekeeping = tokio::time::interval(self.housekeeping.interval);
        loop {
            tokio::select! {
                batch = prepared.recv() => match batch {
                    Some(batch) => {
                        if !self.apply(batch).await {
                            return;
                        }
                    }
                    None => return,
                },
                Some(request) = next_request(&mut requests) => self.serve(request).await,
                _ = housekeeping.tick(), if serves_control => self.housekeeping().await,
                () = self.shutdown.cancelled() => return,
            }
        }
    }

    async fn apply(&mut self, batch: PreparedBatch) -> bool {
        if !self.state.wait_until_resumed(&self.shutdown).await {
            return false;
        }
        let applied = self.applier.apply(batch).await;
        if applied {
            self.state
                .set_component(POSTGRES_COMPONENT, State::Running, "applying");
        }
        applied
    }

    async fn serve(&mut self, request: ApplierRequest) {
        match request {
            ApplierRequest::Replayed(reply) => {
                let _ = reply.send(self.applier.replayed(&self.dead_letter_topic).await);
            }
            ApplierRequest::Replay(letters, reply) => {
                let results = self.applier.replay(&self.dead_letter_topic, letters).await;
                let _ = reply.send(results);
            }
        }
    }

    async fn housekeeping(&mut self) {
        for (table, lag, paused) in self.applier.tables().lags() {
            let label = crate::metrics::table_label(&table);
            ::metrics::gauge!(crate::metrics::LAG, "table" => label.clone()).set(lag);
            ::metrics::gauge!(crate::metrics::TABLE_PAUSED, "table" => label.clone())
                .set(if paused { 1.0 } else { 0.0 });
            // Counters of events that may never happen start at zero, so `increase()` over
            // them sees the first dead letter or DDL (a series born at 1 shows no increase).
            ::metrics::counter!(crate::metrics::DEAD_LETTERS, "table" => label.clone())
                .increment(0);
            ::metrics::counter!(crate::metrics::SCHEMA_CHANGES, "table" => label).increment(0);
        }
        match self
            .applier
            .prune_tombstones(self.housekeeping.tombstone_retention_hours)
            .await
        {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "old delete tombstones removed"),
            Err(e) => tracing::warn!(error = %e, "cannot prune delete tombstones"),
        }
    }
}

/// The next control request, or never when this session serves none.
async fn next_request(
    requests: &mut Option<tokio::sync::mpsc::Receiver<ApplierRequest>>,
) -> Option<ApplierRequest> {
    match requests {
        Some(requests) => requests.recv().await,
        None => std::future::pending().await,
    }
}

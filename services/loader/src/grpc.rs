//! The loader's control API: per-table status, pause and resume, dead letters.

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::Duration;

use rdkafka::ClientConfig;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use crate::apply::ReplayResult;
use crate::dead_letters::{self, StoredLetter};
use crate::metrics;
use crate::naming::TargetTable;
use crate::proto::loader_server::Loader;
use crate::proto::{
    DeadLetter, ListDeadLettersRequest, ListDeadLettersResponse, ListTablesRequest,
    ListTablesResponse, ReplayDeadLettersRequest, ReplayDeadLettersResponse, ReplayOutcome,
    TableRequest, TableStatus,
};
use crate::source::SourceCommand;
use crate::tables::Tables;

/// Most dead letters one call lists.
const MAX_LIST: usize = 10_000;

/// Work the control API hands to the applier, which owns the PostgreSQL session.
pub enum ApplierRequest {
    /// Which dead letters were already replayed.
    Replayed(oneshot::Sender<Result<HashSet<(i32, i64)>, String>>),
    /// Replay these dead letters.
    Replay(Vec<StoredLetter>, oneshot::Sender<Vec<ReplayResult>>),
}

/// The `cdc.loader.v1.Loader` service.
pub struct LoaderControl {
    tables: Tables,
    source: mpsc::Sender<SourceCommand>,
    applier: tokio::sync::mpsc::Sender<ApplierRequest>,
    client_config: ClientConfig,
    dead_letter_topic: String,
}

impl LoaderControl {
    /// A control service over the loader's parts.
    pub fn new(
        tables: Tables,
        source: mpsc::Sender<SourceCommand>,
        applier: tokio::sync::mpsc::Sender<ApplierRequest>,
        client_config: ClientConfig,
        dead_letter_topic: String,
    ) -> Self {
        LoaderControl {
            tables,
            source,
            applier,
            client_config,
            dead_letter_topic,
        }
    }

    fn known_table(&self, name: &str) -> Result<TargetTable, Status> {
        let table = TargetTable::parse(name).ok_or_else(|| {
            Status::invalid_argument(format!("table {name:?}: expected `schema.table`"))
        })?;
        if self.tables.knows(&table) {
            Ok(table)
        } else {
            Err(Status::not_found(format!(
                "table {table} has not been seen by this loader instance (ListTables shows those it has)"
            )))
        }
    }

    fn status_of(&self, table: &TargetTable) -> Result<Response<TableStatus>, Status> {
        self.tables
            .status(table)
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("table {table}")))
    }

    async fn letters(&self) -> Result<Vec<StoredLetter>, Status> {
        let client_config = self.client_config.clone();
        let topic = self.dead_letter_topic.clone();
        tokio::task::spawn_blocking(move || dead_letters::read_all(&client_config, &topic))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(Status::unavailable)
    }

    async fn replayed(&self) -> Result<HashSet<(i32, i64)>, Status> {
        let (reply, answer) = oneshot::channel();
        self.applier
            .send(ApplierRequest::Replayed(reply))
            .await
            .map_err(|_| Status::unavailable("the applier is stopping"))?;
        tokio::time::timeout(Duration::from_secs(60), answer)
            .await
            .map_err(|_| Status::deadline_exceeded("the applier is busy; retry"))?
            .map_err(|_| Status::unavailable("the applier is stopping"))?
            .map_err(Status::unavailable)
    }
}

fn to_message(letter: &StoredLetter, replayed: bool) -> DeadLetter {
    use cdc_model::dead_letter as header;
    DeadLetter {
        id: letter.id(),
        source_table: letter.header(header::TABLE).to_owned(),
        reason: letter.header(header::REASON).to_owned(),
        code: letter.header(header::CODE).to_owned(),
        source_topic: letter.record.provenance.topic.to_string(),
        source_partition: letter.record.provenance.partition,
        source_offset: letter.record.provenance.offset,
        refused_at_ms: letter.header(header::REFUSED_AT_MS).parse().unwrap_or(0),
        replayed,
    }
}

#[tonic::async_trait]
impl Loader for LoaderControl {
    #[tracing::instrument(skip_all)]
    async fn list_tables(
        &self,
        _request: Request<ListTablesRequest>,
    ) -> Result<Response<ListTablesResponse>, Status> {
        Ok(Response::new(ListTablesResponse {
            tables: self.tables.all(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn pause_table(
        &self,
        request: Request<TableRequest>,
    ) -> Result<Response<TableStatus>, Status> {
        let request = request.into_inner();
        let table = self.known_table(&request.table)?;
        let reason = if request.reason.trim().is_empty() {
            "paused by operator (no reason given)".to_owned()
        } else {
            request.reason
        };
        let topics = self.tables.pause(&table, &reason);
        ::metrics::gauge!(metrics::TABLE_PAUSED, "table" => metrics::table_label(&table)).set(1.0);
        tracing::info!(%table, %reason, "table paused by operator");
        let _ = self.source.send(SourceCommand::Pause(topics));
        self.status_of(&table)
    }

    #[tracing::instrument(skip_all)]
    async fn resume_table(
        &self,
        request: Request<TableRequest>,
    ) -> Result<Response<TableStatus>, Status> {
        let table = self.known_table(&request.into_inner().table)?;
        if let Some(topics) = self.tables.resume(&table) {
            ::metrics::gauge!(metrics::TABLE_PAUSED, "table" => metrics::table_label(&table))
                .set(0.0);
            tracing::info!(%table, "table resumed by operator");
            let _ = self.source.send(SourceCommand::Resume(topics));
        }
        self.status_of(&table)
    }

    #[tracing::instrument(skip_all)]
    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let request = request.into_inner();
        let limit = match request.limit {
            0 => 100,
            n => (n as usize).min(MAX_LIST),
        };
        let replayed = self.replayed().await?;
        let letters = self.letters().await?;
        let dead_letters = letters
            .iter()
            .filter(|l| {
                request.source_table.is_empty()
                    || l.header(cdc_model::dead_letter::TABLE) == request.source_table
            })
            .take(limit)
            .map(|l| to_message(l, replayed.contains(&(l.partition, l.offset))))
            .collect();
        Ok(Response::new(ListDeadLettersResponse { dead_letters }))
    }

    #[tracing::instrument(skip_all)]
    async fn replay_dead_letters(
        &self,
        request: Request<ReplayDeadLettersRequest>,
    ) -> Result<Response<ReplayDeadLettersResponse>, Status> {
        let request = request.into_inner();
        let wanted: HashSet<&str> = request.ids.iter().map(String::as_str).collect();
        let replayed = self.replayed().await?;
        let letters = self.letters().await?;
        let known: HashSet<String> = letters.iter().map(StoredLetter::id).collect();
        if let Some(missing) = wanted.iter().find(|id| !known.contains(**id)) {
            return Err(Status::not_found(format!(
                "dead letter {missing} is not in {} (ids are `partition:offset`)",
                self.dead_letter_topic
            )));
        }
        let chosen: Vec<StoredLetter> = letters
            .into_iter()
            .filter(|l| {
                if wanted.is_empty() {
                    !replayed.contains(&(l.partition, l.offset))
                        && (request.source_table.is_empty()
                            || l.header(cdc_model::dead_letter::TABLE) == request.source_table)
                } else {
                    wanted.contains(l.id().as_str())
                }
            })
            .collect();
        let (already, fresh): (Vec<StoredLetter>, Vec<StoredLetter>) = chosen
            .into_iter()
            .partition(|l| replayed.contains(&(l.partition, l.offset)));
        let mut outcomes: Vec<ReplayOutcome> = already
            .iter()
            .map(|l| ReplayOutcome {
                id: l.id(),
                applied: true,
                reason: "already replayed".to_owned(),
            })
            .collect();
        if !fresh.is_empty() {
            let (reply, answer) = oneshot::channel();
            self.applier
                .send(ApplierRequest::Replay(fresh, reply))
                .await
                .map_err(|_| Status::unavailable("the applier is stopping"))?;
            let results = answer
                .await
                .map_err(|_| Status::unavailable("the applier stopped during the replay"))?;
            outcomes.extend(results.into_iter().map(|r| ReplayOutcome {
                id: r.id,
                applied: r.applied,
                reason: r.reason,
            }));
        }
        Ok(Response::new(ReplayDeadLettersResponse { outcomes }))
    }
}

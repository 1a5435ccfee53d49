//! The transformer's control API: rules (list, reload) and dead letters (list, replay).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::Mutex;
use tonic::{Request, Response, Status};

use crate::dead_letters::DeadLetterQueue;
use crate::engine::Engine;
use crate::proto::transformer_server::Transformer;
use crate::proto::{
    ListDeadLettersRequest, ListDeadLettersResponse, ListRulesRequest, ListRulesResponse,
    ReloadRulesRequest, ReloadRulesResponse, ReplayDeadLettersRequest, ReplayDeadLettersResponse,
    Rule, TableProblem,
};
use crate::rules::RuleSet;

/// Most dead letters one call lists.
const MAX_LIST: u32 = 10_000;
const DEFAULT_LIST: u32 = 100;

/// Reads the rules again; an error lists every problem, each naming its key.
pub type RuleLoader = Arc<dyn Fn() -> Result<RuleSet, String> + Send + Sync>;

/// Builds the replay's producing side (a transactional producer of its own).
pub type ReplayOutput = Arc<dyn Fn() -> Result<crate::output::Output, String> + Send + Sync>;

/// The `cdc.transformer.v1.Transformer` service.
pub struct TransformerControl {
    engine: Engine,
    load_rules: RuleLoader,
    dead_letters: DeadLetterQueue,
    replay_output: ReplayOutput,
    /// One reload or replay at a time in this process.
    busy: Arc<Mutex<()>>,
}

impl TransformerControl {
    /// A control service over the engine and the dead-letter queue.
    pub fn new(
        engine: Engine,
        load_rules: RuleLoader,
        dead_letters: DeadLetterQueue,
        replay_output: ReplayOutput,
    ) -> Self {
        TransformerControl {
            engine,
            load_rules,
            dead_letters,
            replay_output,
            busy: Arc::new(Mutex::new(())),
        }
    }
}

fn internal(reason: String) -> Status {
    Status::unavailable(reason)
}

#[tonic::async_trait]
impl Transformer for TransformerControl {
    #[tracing::instrument(skip_all)]
    async fn list_rules(
        &self,
        _request: Request<ListRulesRequest>,
    ) -> Result<Response<ListRulesResponse>, Status> {
        let loaded = self.engine.rules();
        let rules = loaded
            .set
            .rules
            .iter()
            .zip(loaded.totals.iter())
            .map(|(rule, totals)| Rule {
                name: rule.name.clone(),
                tables: rule.tables.as_str().to_owned(),
                action: rule.action.kind().to_owned(),
                detail: rule.action.to_string(),
                applied: totals[0].load(Ordering::Relaxed),
                filtered: totals[1].load(Ordering::Relaxed),
                failed: totals[2].load(Ordering::Relaxed),
            })
            .collect();
        let problems = self
            .engine
            .problems()
            .into_iter()
            .map(|(table, problem)| TableProblem {
                table,
                schema_id: problem.schema_id,
                rule: problem.error.rule,
                reason: problem.error.message,
            })
            .collect();
        Ok(Response::new(ListRulesResponse {
            rules,
            generation: loaded.generation,
            problems,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn reload_rules(
        &self,
        _request: Request<ReloadRulesRequest>,
    ) -> Result<Response<ReloadRulesResponse>, Status> {
        let _busy = self.busy.lock().await;
        let load = Arc::clone(&self.load_rules);
        let rules = tokio::task::spawn_blocking(move || load())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|reason| {
                tracing::warn!(%reason, "rule reload refused; the running rules stay in force");
                Status::invalid_argument(format!(
                    "the rules were not reloaded (the running rules stay in force): {reason}"
                ))
            })?;
        let count = u32::try_from(rules.rules.len()).unwrap_or(u32::MAX);
        let generation = self.engine.replace_rules(rules);
        tracing::info!(generation, rules = count, "rules reloaded");
        Ok(Response::new(ReloadRulesResponse {
            generation,
            rules: count,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let limit = match request.into_inner().limit {
            0 => DEFAULT_LIST,
            n => n.min(MAX_LIST),
        } as usize;
        let queue = self.dead_letters.clone();
        let (dead_letters, pending) = tokio::task::spawn_blocking(move || queue.list(limit))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(internal)?;
        Ok(Response::new(ListDeadLettersResponse {
            dead_letters,
            pending,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn replay_dead_letters(
        &self,
        _request: Request<ReplayDeadLettersRequest>,
    ) -> Result<Response<ReplayDeadLettersResponse>, Status> {
        let _busy = self.busy.lock().await;
        let queue = self.dead_letters.clone();
        let engine = self.engine.clone();
        let make_output = Arc::clone(&self.replay_output);
        let counts = tokio::task::spawn_blocking(move || {
            let output = make_output()?;
            queue.replay(&engine, output)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(internal)?;
        tracing::info!(
            read = counts.read,
            replayed = counts.replayed,
            failed_again = counts.failed_again,
            "dead letters replayed"
        );
        Ok(Response::new(ReplayDeadLettersResponse {
            read: counts.read,
            replayed: counts.replayed,
            failed_again: counts.failed_again,
        }))
    }
}

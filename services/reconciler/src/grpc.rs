//! The reconciler's control API: start a run, watch it, read it back, list runs.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::{Request, Response, Status};

use crate::proto::reconciler_server::Reconciler as ReconcilerApi;
use crate::proto::{
    GetRunRequest, ListRunsRequest, ListRunsResponse, Run, RunState, StartRunRequest,
    WatchRunRequest,
};
use crate::runs::{Reconciler, RunRequest};

/// Runs listed when the request gives no limit.
const DEFAULT_LIST_LIMIT: u32 = 20;

/// The `cdc.reconciler.v1.Reconciler` service.
pub struct ReconcilerControl {
    reconciler: Arc<Reconciler>,
}

impl ReconcilerControl {
    /// A control service over `reconciler`.
    pub fn new(reconciler: Arc<Reconciler>) -> Self {
        ReconcilerControl { reconciler }
    }
}

fn store_error(e: &sqlx::Error) -> Status {
    Status::unavailable(format!("cannot read stored runs from PostgreSQL: {e}"))
}

#[tonic::async_trait]
impl ReconcilerApi for ReconcilerControl {
    #[tracing::instrument(skip_all)]
    async fn start_run(&self, request: Request<StartRunRequest>) -> Result<Response<Run>, Status> {
        let request = request.into_inner();
        if let Some(empty) = request.tables.iter().find(|t| t.trim().is_empty()) {
            return Err(Status::invalid_argument(format!(
                "`tables` holds an empty pattern ({empty:?}); use `database.schema.table`"
            )));
        }
        let receiver = self
            .reconciler
            .start(RunRequest {
                tables: request.tables,
                repair: request.repair,
                trigger: "grpc".to_owned(),
            })
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let run = receiver.borrow().clone();
        tracing::info!(run_id = %run.run_id, "run started over gRPC");
        Ok(Response::new(run))
    }

    type WatchRunStream = Pin<Box<dyn Stream<Item = Result<Run, Status>> + Send + 'static>>;

    #[tracing::instrument(skip_all)]
    async fn watch_run(
        &self,
        request: Request<WatchRunRequest>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        let run_id = request.into_inner().run_id;
        let Some(receiver) = self.reconciler.watch(&run_id) else {
            // Finished long ago: its stored report is its only state.
            let run = self
                .reconciler
                .store()
                .get(&run_id)
                .await
                .map_err(|e| store_error(&e))?
                .ok_or_else(|| Status::not_found(format!("no run {run_id:?}")))?;
            return Ok(Response::new(Box::pin(futures::stream::iter([Ok(run)]))));
        };
        // Every state change, then the final state, then the end of the stream.
        let stream = futures::stream::unfold(Some(receiver), |receiver| async move {
            let mut receiver = receiver?;
            let run = receiver.borrow_and_update().clone();
            if run.state != RunState::Running as i32 {
                return Some((Ok(run), None));
            }
            if receiver.changed().await.is_err() {
                return Some((Ok(run), None));
            }
            Some((Ok(run), Some(receiver)))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    #[tracing::instrument(skip_all)]
    async fn get_run(&self, request: Request<GetRunRequest>) -> Result<Response<Run>, Status> {
        let run_id = request.into_inner().run_id;
        if let Some(receiver) = self.reconciler.watch(&run_id) {
            return Ok(Response::new(receiver.borrow().clone()));
        }
        self.reconciler
            .store()
            .get(&run_id)
            .await
            .map_err(|e| store_error(&e))?
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no run {run_id:?}")))
    }

    #[tracing::instrument(skip_all)]
    async fn list_runs(
        &self,
        request: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        let limit = match request.into_inner().limit {
            0 => DEFAULT_LIST_LIMIT,
            n => n.min(1000),
        };
        let mut runs = self.reconciler.recent();
        let stored = self
            .reconciler
            .store()
            .list(i64::from(limit))
            .await
            .map_err(|e| store_error(&e))?;
        for run in stored {
            if !runs.iter().any(|r| r.run_id == run.run_id) {
                runs.push(run);
            }
        }
        runs.sort_by_key(|run| std::cmp::Reverse(run.started_at_unix_ms));
        runs.truncate(limit as usize);
        for run in &mut runs {
            for table in &mut run.tables {
                table.differences.clear();
            }
        }
        Ok(Response::new(ListRunsResponse { runs }))
    }
}

//! Runs: planned from the source's captured tables, compared one table at a time (one run at
//! a time per instance, so comparisons do not compete for the databases), watched while they
//! go, then stored in PostgreSQL and published to `<prefix>.reconcile.reports`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdc_extractor::sql::Connector;
use cdc_model::{TablePattern, Topics};
use cdc_service_kit::producer::AwaitingProducer;
use rdkafka::producer::FutureRecord;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::compare::Comparison;
use crate::config::ReconcilerConfig;
use crate::databases::{SourceDb, TargetDb};
use crate::plan::{TablePlan, plan_database};
use crate::proto::{Run, RunState, TableResult, TableState};
use crate::repair::Repairer;
use crate::rules::Rules;
use crate::store::ReportStore;

/// Everything a run needs, shared by the control API, the schedule and the CLI.
pub struct Reconciler {
    config: Arc<ReconcilerConfig>,
    connector: Connector,
    target: TargetDb,
    rules: Rules,
    store: ReportStore,
    reports: Option<(AwaitingProducer, String)>,
    repairer: Option<Repairer>,
    recent: Mutex<VecDeque<watch::Sender<Run>>>,
    one_at_a_time: tokio::sync::Mutex<()>,
    shutdown: CancellationToken,
}

/// What a reconciler is made of.
pub struct Parts {
    /// The configuration.
    pub config: Arc<ReconcilerConfig>,
    /// SQL Server.
    pub connector: Connector,
    /// PostgreSQL.
    pub target: TargetDb,
    /// The transformer's rules.
    pub rules: Rules,
    /// Where reports are kept.
    pub store: ReportStore,
    /// Producer of the reports topic (none: reports are only stored).
    pub reports: Option<AwaitingProducer>,
    /// Sends repair commands (none: repair is not enabled).
    pub repairer: Option<Repairer>,
    /// Ends runs early.
    pub shutdown: CancellationToken,
}

/// What was asked of a run.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// Table patterns; empty = every configured table.
    pub tables: Vec<String>,
    /// Send repair commands for differing keys.
    pub repair: bool,
    /// `grpc`, `schedule` or `cli`.
    pub trigger: String,
}

/// Why a run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Repair was asked but is not enabled.
    #[error("repair was asked, but `repair.enabled` is false in the configuration")]
    RepairDisabled,
}

impl Reconciler {
    /// Builds the reconciler from its parts.
    pub fn new(parts: Parts) -> anyhow::Result<Reconciler> {
        let topics = Topics::new(&parts.config.kafka.topic_prefix)?;
        Ok(Reconciler {
            reports: parts
                .reports
                .map(|producer| (producer, topics.reconcile_reports())),
            config: parts.config,
            connector: parts.connector,
            target: parts.target,
            rules: parts.rules,
            store: parts.store,
            repairer: parts.repairer,
            recent: Mutex::new(VecDeque::new()),
            one_at_a_time: tokio::sync::Mutex::new(()),
            shutdown: parts.shutdown,
        })
    }

    /// The report store.
    pub fn store(&self) -> &ReportStore {
        &self.store
    }

    /// Starts a run in the background; returns its first state.
    pub fn start(
        self: &Arc<Self>,
        request: RunRequest,
    ) -> Result<watch::Receiver<Run>, StartError> {
        if request.repair && self.repairer.is_none() {
            return Err(StartError::RepairDisabled);
        }
        let run = Run {
            run_id: uuid::Uuid::new_v4().to_string(),
            state: RunState::Running as i32,
            trigger: request.trigger.clone(),
            started_at_unix_ms: now_ms(),
            repair: request.repair,
            ..Run::default()
        };
        let (sender, receiver) = watch::channel(run);
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.push_front(sender.clone());
            recent.truncate(self.config.reports.runs_in_memory);
        }
        let this = Arc::clone(self);
        tokio::spawn(async move { this.execute(request, sender).await });
        Ok(receiver)
    }

    /// Runs to the end and returns the finished run (the CLI's path).
    pub async fn run_to_end(
        self: &Arc<Self>,
        request: RunRequest,
        mut progress: impl FnMut(&Run),
    ) -> Result<Run, StartError> {
        let mut receiver = self.start(request)?;
        loop {
            let run = receiver.borrow_and_update().clone();
            progress(&run);
            if run.state != RunState::Running as i32 {
                return Ok(run);
            }
            if receiver.changed().await.is_err() {
                return Ok(receiver.borrow().clone());
            }
        }
    }

    /// A run kept in memory (running or recent).
    pub fn watch(&self, run_id: &str) -> Option<watch::Receiver<Run>> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .find(|s| s.borrow().run_id == run_id)
            .map(watch::Sender::subscribe)
    }

    /// Runs kept in memory, newest first.
    pub fn recent(&self) -> Vec<Run> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().map(|s| s.borrow().clone()).collect()
    }

    async fn execute(&self, request: RunRequest, sender: watch::Sender<Run>) {
        let _turn = self.one_at_a_time.lock().await;
        let outcome = self.compare_all(&request, &sender).await;
        sender.send_modify(|run| {
            run.finished_at_unix_ms = now_ms();
            run.state = match &outcome {
                Err(e) => {
                    run.detail = format!("{e:#}");
                    RunState::Failed as i32
                }
                Ok(())
                    if run
                        .tables
                        .iter()
                        .all(|t| t.state == TableState::Match as i32) =>
                {
                    RunState::Clean as i32
                }
                Ok(()) => RunState::Mismatch as i32,
            };
        });
        let run = sender.borrow().clone();
        crate::metrics::run_done(crate::report::run_state_name(run.state));
        tracing::info!(
            run_id = %run.run_id,
            state = crate::report::run_state_name(run.state),
            tables = run.tables.len(),
            "run finished"
        );
        if let Err(e) = self.store.save(&run).await {
            tracing::error!(run_id = %run.run_id, error = %e, "cannot store the run's report in PostgreSQL");
        }
        self.publish(&run).await;
    }

    async fn compare_all(
        &self,
        request: &RunRequest,
        sender: &watch::Sender<Run>,
    ) -> anyhow::Result<()> {
        let wanted: Vec<TablePattern> = request
            .tables
            .iter()
            .map(|t| TablePattern::new(t))
            .collect();
        let timeout = Duration::from_secs(self.config.compare.statement_timeout_s);
        let mut planned: Vec<(TablePlan, usize)> = Vec::new();
        for database in &self.config.source.databases {
            let mut client = self.connector.connect(database).await?;
            let plans = plan_database(
                &self.config,
                &self.rules,
                &mut client,
                self.target.pool(),
                database,
                &wanted,
            )
            .await?;
            for plan in plans {
                let index = sender.borrow().tables.len();
                sender.send_modify(|run| {
                    run.tables.push(TableResult {
                        table: plan.name.clone(),
                        target_table: plan.target.to_string(),
                        state: TableState::Pending as i32,
                        excluded_columns: plan.excluded.clone(),
                        ..TableResult::default()
                    });
                });
                planned.push((plan, index));
            }
        }
        if planned.is_empty() && !wanted.is_empty() {
            anyhow::bail!(
                "no captured table matches {:?} (ListTables on the extractor shows the captured tables)",
                request.tables
            );
        }
        for (plan, index) in planned {
            if self.shutdown.is_cancelled() {
                anyhow::bail!("the service is stopping");
            }
            let mut result = sender.borrow().tables[index].clone();
            let report = |table: &TableResult| {
                sender.send_modify(|run| run.tables[index] = table.clone());
            };
            match &plan.sql {
                Err(reason) => {
                    result.state = TableState::NotComparable as i32;
                    result.detail.clone_from(reason);
                    report(&result);
                }
                Ok(sql) => {
                    let comparison = Comparison {
                        sql,
                        settings: &self.config.compare,
                        cancel: &self.shutdown,
                    };
                    let outcome = match SourceDb::connect(
                        &self.connector,
                        &plan.id.database,
                        timeout,
                    )
                    .await
                    {
                        Ok(mut source) => {
                            comparison
                                .run(&mut source, &self.target, &mut result, &report)
                                .await
                        }
                        Err(e) => Err(e),
                    };
                    match outcome {
                        Ok(differences) => {
                            crate::metrics::table_done(
                                &result.table,
                                result.duration_ms as f64 / 1000.0,
                                result.missing,
                                result.extra,
                                result.changed,
                                result.state == TableState::Match as i32,
                            );
                            if request.repair
                                && !differences.is_empty()
                                && let Some(repairer) = &self.repairer
                            {
                                let run_id = sender.borrow().run_id.clone();
                                match repairer.request(&run_id, &plan, &differences).await {
                                    Ok(sent) => {
                                        result.repair_keys_sent = sent;
                                        crate::metrics::repair_keys(&result.table, sent);
                                    }
                                    Err(e) => result.detail = format!("repair not sent: {e:#}"),
                                }
                                report(&result);
                            }
                        }
                        Err(e) => {
                            result.state = TableState::Failed as i32;
                            result.detail = format!(
                                "{e}{}",
                                if e.is_retryable() {
                                    " (retrying later can help)"
                                } else {
                                    ""
                                }
                            );
                            tracing::warn!(table = %result.table, error = %e, "comparison failed");
                            report(&result);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn publish(&self, run: &Run) {
        let Some((producer, topic)) = &self.reports else {
            return;
        };
        let payload = crate::report::json(run).to_string();
        let record = FutureRecord::to(topic).key(&run.run_id).payload(&payload);
        if let Err(e) = producer.send(record, Duration::from_secs(30)).await {
            tracing::error!(run_id = %run.run_id, error = %e, topic, "cannot publish the run's report");
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

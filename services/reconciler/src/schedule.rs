//! Runs started by the clock: `[schedule] cron`, in UTC.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::runs::{Reconciler, RunRequest};

/// Starts a run at every time of `schedule` until `shutdown`. A run still going when the next
/// one is due delays it (runs take turns).
pub async fn run(
    reconciler: Arc<Reconciler>,
    schedule: cron::Schedule,
    tables: Vec<String>,
    repair: bool,
    shutdown: CancellationToken,
) {
    loop {
        let Some(next) = schedule.upcoming(chrono::Utc).next() else {
            tracing::info!("the schedule has no further times");
            return;
        };
        let wait = (next - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        tracing::debug!(next = %next, "next scheduled run");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
        match reconciler.start(RunRequest {
            tables: tables.clone(),
            repair,
            trigger: "schedule".to_owned(),
        }) {
            Ok(receiver) => {
                tracing::info!(run_id = %receiver.borrow().run_id, "scheduled run started");
            }
            Err(e) => tracing::error!(error = %e, "scheduled run not started"),
        }
    }
}

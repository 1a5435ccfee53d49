//! The paced loop: plan a transaction against the key model, send it, count what committed,
//! reconnect with back-off when the connection goes.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::client::{self, SqlClient};
use crate::config::{ConnectionConfig, WorkloadConfig};
use crate::model::{Change, Model, Table};
use crate::pacing::Pacer;
use crate::rng::Rng;
use crate::summary::{Counts, Summary};
use crate::{Error, Result, shop, sql};

/// Failed transactions in a row, with the connection up, after which the run stops: the
/// database is not the `shop` the workload expects, or refuses its statements.
const MAX_CONSECUTIVE_FAILURES: u32 = 10;
/// The first and the longest pause between reconnection attempts.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Runs the workload until its duration is over or `shutdown` is cancelled (a transaction
/// under way is finished first), printing a progress line to stderr every report interval.
/// Reads the keys there are at start and creates nothing.
pub async fn run(
    connection: &ConnectionConfig,
    workload: &WorkloadConfig,
    shutdown: CancellationToken,
) -> Result<Summary> {
    workload.validate()?;
    let mut client = client::connect(connection).await?;
    let model = client::model(&mut client).await?;
    let mut run = Run {
        connection,
        workload,
        shutdown,
        model,
        rng: Rng::new(workload.seed),
        pacer: Pacer::new(workload.rows_per_s),
        counts: Counts::default(),
        start: Instant::now(),
        consecutive_failures: 0,
    };
    while let Ended::ConnectionLost = run.until_over_or_lost(&mut client).await? {
        match run.reconnect().await? {
            Some(new) => client = new,
            None => break,
        }
    }
    let elapsed = run.start.elapsed();
    eprintln!("{}", run.counts.progress(elapsed));
    Ok(run.counts.summary(elapsed))
}

enum Ended {
    Over,
    ConnectionLost,
}

struct Run<'a> {
    connection: &'a ConnectionConfig,
    workload: &'a WorkloadConfig,
    shutdown: CancellationToken,
    model: Model,
    rng: Rng,
    pacer: Pacer,
    counts: Counts,
    start: Instant,
    consecutive_failures: u32,
}

impl Run<'_> {
    fn deadline(&self) -> Option<Duration> {
        self.workload.duration.filter(|d| !d.is_zero())
    }

    fn over(&self) -> bool {
        self.shutdown.is_cancelled() || self.deadline().is_some_and(|d| self.start.elapsed() >= d)
    }

    fn next_report_after(&self, elapsed: Duration) -> Duration {
        let interval = self.workload.report_interval.as_secs_f64();
        let passed = (elapsed.as_secs_f64() / interval).floor() + 1.0;
        Duration::from_secs_f64(passed * interval)
    }

    /// Sends transactions on schedule until the run is over or the connection is lost.
    async fn until_over_or_lost(&mut self, client: &mut SqlClient) -> Result<Ended> {
        let mut next_report = self.next_report_after(self.start.elapsed());
        loop {
            let elapsed = self.start.elapsed();
            if elapsed >= next_report {
                eprintln!("{}", self.counts.progress(elapsed));
                next_report = self.next_report_after(elapsed);
            }
            if self.over() {
                return Ok(Ended::Over);
            }
            let wait = self.pacer.wait(elapsed);
            if !wait.is_zero() {
                let until_end = self.deadline().map_or(wait, |d| d.saturating_sub(elapsed));
                self.nap(wait.min(next_report - elapsed).min(until_end))
                    .await;
                continue;
            }
            if !self.transaction(client).await? {
                return Ok(Ended::ConnectionLost);
            }
        }
    }

    /// Sleeps for `pause`, or less if the run is cancelled meanwhile.
    async fn nap(&self, pause: Duration) {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = self.shutdown.cancelled() => {}
        }
    }

    /// Plans, sends and counts one transaction; false when the connection was lost.
    async fn transaction(&mut self, client: &mut SqlClient) -> Result<bool> {
        let rollback = self.rng.chance(self.workload.rollback_fraction);
        let (changes, statements) = self.plan();
        self.pacer.issued(u64::from(self.workload.transaction_rows));
        let end = if rollback { sql::ROLLBACK } else { sql::COMMIT };
        let sent = match client::execute(client, &sql::transaction_body(&statements)).await {
            Ok(()) => client::execute(client, end).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(()) if rollback => {
                self.model.undo(&changes);
                self.counts.rolled_back += changes.len() as u64;
            }
            Ok(()) => self.counts.committed(changes.iter().map(|c| c.operation)),
            Err(e) => return self.failed(client, &changes, e).await,
        }
        self.consecutive_failures = 0;
        Ok(true)
    }

    /// The changes of the next transaction, applied to the model, and their statements.
    fn plan(&mut self) -> (Vec<Change>, Vec<String>) {
        let rows = self.workload.transaction_rows as usize;
        let mut changes = Vec::with_capacity(rows);
        let mut statements = Vec::with_capacity(rows);
        for _ in 0..rows {
            let operation = self.workload.mix.pick(&mut self.rng);
            let table = Table::pick(&mut self.rng);
            if let Some(change) = self.model.plan(operation, table, &mut self.rng) {
                statements.push(shop::statement(&change, &self.model, &mut self.rng));
                changes.push(change);
            }
        }
        (changes, statements)
    }

    /// Undoes a failed transaction's changes in the model; false when the connection is gone.
    async fn failed(
        &mut self,
        client: &mut SqlClient,
        changes: &[Change],
        e: Error,
    ) -> Result<bool> {
        self.model.undo(changes);
        self.counts.errors += 1;
        if e.connection_lost() {
            eprintln!("cdc-workload: connection lost: {}", chain(&e));
            return Ok(false);
        }
        // The transaction may still be open (SQL Server goes on after most statement errors).
        let _ = client::execute(client, sql::ROLLBACK).await;
        eprintln!(
            "cdc-workload: transaction rolled back after an error: {}",
            chain(&e)
        );
        if !e.retriable() {
            self.consecutive_failures += 1;
            if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES {
                return Err(e);
            }
        }
        Ok(true)
    }

    /// A new connection, tried with growing pauses until it works or the run is over; the key
    /// model is read again, since the last transaction may or may not have committed.
    async fn reconnect(&mut self) -> Result<Option<SqlClient>> {
        let mut backoff = FIRST_BACKOFF;
        while !self.over() {
            eprintln!("cdc-workload: reconnecting in {} ms", backoff.as_millis());
            self.nap(backoff).await;
            if self.over() {
                break;
            }
            let attempt = match client::connect(self.connection).await {
                Ok(mut client) => client::keys(&mut client).await.map(|keys| (client, keys)),
                Err(e) => Err(e),
            };
            match attempt {
                Ok((client, keys)) => {
                    self.model.replace_keys(keys);
                    eprintln!("cdc-workload: reconnected");
                    return Ok(Some(client));
                }
                Err(e) if e.connection_lost() => {
                    eprintln!("cdc-workload: reconnection failed: {}", chain(&e));
                }
                Err(e) => return Err(e),
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Ok(None)
    }
}

/// An error and its sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

//! The transformer's metrics: names in one place, described once at start-up, emitted per
//! committed transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::engine::LoadedRules;
use crate::rules::plan::RuleCounts;

/// Events consumed, by table and outcome (`transformed`, `passed`, `filtered`, `dead_lettered`).
pub const EVENTS: &str = "cdc_transformer_events_total";
/// Events through each rule, by rule and outcome (`applied`, `filtered`, `failed`).
pub const RULE_EVENTS: &str = "cdc_transformer_rule_events_total";
/// Events sent to the dead-letter topic, by table and code.
pub const DEAD_LETTERS: &str = "cdc_transformer_dead_letters_total";
/// Transactions committed.
pub const TRANSACTIONS: &str = "cdc_transformer_transactions_total";
/// Transactions aborted (a rebalance, a failed commit, Kafka unavailable).
pub const ABORTS: &str = "cdc_transformer_transactions_aborted_total";
/// Events per committed transaction.
pub const BATCH_EVENTS: &str = "cdc_transformer_batch_events";
/// Time to send offsets and commit one transaction.
pub const COMMIT_DURATION: &str = "cdc_transformer_commit_duration_seconds";
/// Now minus the source commit time of the table's newest event in the last transaction.
pub const LAG: &str = "cdc_transformer_lag_seconds";
/// Rebalances of the consumer group seen by this instance, by kind (`assign`, `revoke`).
pub const REBALANCES: &str = "cdc_transformer_rebalances_total";
/// In-process restarts of the loop after its producer was fenced.
pub const PIPELINE_RESTARTS: &str = "cdc_transformer_pipeline_restarts_total";

/// Describes every transformer metric.
pub fn describe() {
    metrics::describe_counter!(EVENTS, "Events consumed, by table and outcome.");
    metrics::describe_counter!(
        RULE_EVENTS,
        "Events through each rule, by rule and outcome."
    );
    metrics::describe_counter!(
        DEAD_LETTERS,
        "Events sent to the dead-letter topic, by table and code."
    );
    metrics::describe_counter!(TRANSACTIONS, "Kafka transactions committed.");
    metrics::describe_counter!(ABORTS, "Kafka transactions aborted.");
    metrics::describe_histogram!(BATCH_EVENTS, "Events per committed transaction.");
    metrics::describe_histogram!(
        COMMIT_DURATION,
        metrics::Unit::Seconds,
        "Time to send the offsets and commit one transaction."
    );
    metrics::describe_gauge!(
        LAG,
        metrics::Unit::Seconds,
        "Now minus the source commit time of the table's newest transformed event."
    );
    metrics::describe_counter!(
        REBALANCES,
        "Rebalances of the consumer group, by kind (assign, revoke)."
    );
    metrics::describe_counter!(
        PIPELINE_RESTARTS,
        "In-process restarts of the loop after its producer was fenced."
    );
    // Zero until the first fence, so that increase() sees the first one.
    metrics::counter!(PIPELINE_RESTARTS).increment(0);
}

/// Counts one in-process restart of the loop after a fence.
pub fn pipeline_restarted() {
    metrics::counter!(PIPELINE_RESTARTS).increment(1);
}

/// Counts one aborted transaction.
pub fn transaction_aborted() {
    metrics::counter!(ABORTS).increment(1);
}

/// Counts one rebalance callback of the consumer group (`assign` or `revoke`).
pub fn rebalanced(kind: &'static str) {
    metrics::counter!(REBALANCES, "kind" => kind).increment(1);
}

#[derive(Debug, Default)]
struct TableStats {
    transformed: u64,
    passed: u64,
    filtered: u64,
    dead_lettered: HashMap<&'static str, u64>,
    newest_commit_micros: Option<i64>,
}

/// What one transaction did, per table, gathered while it runs and published once it commits.
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Few tables per transaction: a list searched by pointer first beats hashing per event.
    tables: Vec<(Arc<str>, TableStats)>,
}

/// Field 8 of `ChangeEvent` alone, so that a passed-through event's commit time is read
/// without decoding its rows.
#[derive(Clone, PartialEq, prost::Message)]
struct CommitTimeOnly {
    #[prost(int64, tag = "8")]
    commit_time_micros: i64,
}

impl BatchStats {
    fn table(&mut self, table: &Arc<str>) -> &mut TableStats {
        let at = self
            .tables
            .iter()
            .position(|(t, _)| Arc::ptr_eq(t, table) || t == table)
            .unwrap_or_else(|| {
                self.tables.push((Arc::clone(table), TableStats::default()));
                self.tables.len() - 1
            });
        &mut self.tables[at].1
    }

    /// An event passed unchanged.
    pub fn passed(&mut self, table: &Arc<str>, payload: Option<&[u8]>) {
        let commit = payload
            .and_then(|p| <CommitTimeOnly as prost::Message>::decode(p).ok())
            .map(|c| c.commit_time_micros);
        let stats = self.table(table);
        stats.passed += 1;
        stats.newest_commit_micros = stats.newest_commit_micros.max(commit);
    }

    /// An event transformed.
    pub fn transformed(&mut self, table: &Arc<str>, commit_time_micros: i64) {
        let stats = self.table(table);
        stats.transformed += 1;
        stats.newest_commit_micros = stats.newest_commit_micros.max(Some(commit_time_micros));
    }

    /// An event filtered out.
    pub fn filtered(&mut self, table: &Arc<str>) {
        self.table(table).filtered += 1;
    }

    /// An event sent to the dead-letter topic.
    pub fn dead_lettered(&mut self, table: &Arc<str>, code: &'static str) {
        *self.table(table).dead_lettered.entry(code).or_default() += 1;
    }

    /// Emits everything once the transaction committed.
    pub fn publish(
        &self,
        rules: &LoadedRules,
        generation: u64,
        counts: &RuleCounts,
        events: usize,
        commit: Duration,
    ) {
        metrics::counter!(TRANSACTIONS).increment(1);
        metrics::histogram!(BATCH_EVENTS).record(events as f64);
        metrics::histogram!(COMMIT_DURATION).record(commit.as_secs_f64());
        let now_micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        for (table, stats) in &self.tables {
            let table = table.to_string();
            for (outcome, n) in [
                ("transformed", stats.transformed),
                ("passed", stats.passed),
                ("filtered", stats.filtered),
                ("dead_lettered", stats.dead_lettered.values().sum()),
            ] {
                if n > 0 {
                    metrics::counter!(EVENTS, "table" => table.clone(), "outcome" => outcome)
                        .increment(n);
                }
            }
            // Every code's series starts at zero, so `increase()` sees the first dead letter
            // (a series born at 1 shows no increase).
            for code in crate::engine::refusal_code::ALL {
                if !stats.dead_lettered.contains_key(code) {
                    metrics::counter!(DEAD_LETTERS, "table" => table.clone(), "code" => code)
                        .increment(0);
                }
            }
            for (code, n) in &stats.dead_lettered {
                metrics::counter!(DEAD_LETTERS, "table" => table.clone(), "code" => *code)
                    .increment(*n);
            }
            if let Some(commit) = stats.newest_commit_micros.filter(|c| *c > 0) {
                let lag = (now_micros - commit).max(0) as f64 / 1e6;
                metrics::gauge!(LAG, "table" => table).set(lag);
            }
        }
        if rules.generation != generation {
            return;
        }
        for (index, rule) in rules.set.rules.iter().enumerate() {
            for (outcome, counter) in [
                ("applied", &counts.applied),
                ("filtered", &counts.filtered),
                ("failed", &counts.failed),
            ] {
                let n = counter.get(index).copied().unwrap_or(0);
                if n > 0 {
                    metrics::counter!(RULE_EVENTS, "rule" => rule.name.clone(), "outcome" => outcome)
                        .increment(n);
                }
            }
        }
    }
}

/// Counters of events that may never happen, at zero from the start: alert rules watch them
/// with `increase()`, which does not see the first event of a series born at 1.
pub fn zero_counters() {
    metrics::counter!(ABORTS).increment(0);
}

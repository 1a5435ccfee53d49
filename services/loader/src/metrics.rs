//! The loader's metrics: names in one place, described once at start-up, emitted per batch.

use crate::naming::TargetTable;

/// Rows written, by table and operation: the changes a batch holds for one row are coalesced
/// to the newest, which is written once and counted once.
pub const ROWS_APPLIED: &str = "cdc_loader_rows_applied_total";
/// Events per applied batch.
pub const BATCH_ROWS: &str = "cdc_loader_batch_rows";
/// Time to apply one batch, transaction included.
pub const APPLY_DURATION: &str = "cdc_loader_apply_duration_seconds";
/// Time of the final COMMIT of one batch.
pub const COMMIT_DURATION: &str = "cdc_loader_commit_duration_seconds";
/// Now minus the source commit time of the table's newest applied event.
pub const LAG: &str = "cdc_loader_lag_seconds";
/// Events sent to the dead-letter topic, by table.
pub const DEAD_LETTERS: &str = "cdc_loader_dead_letters_total";
/// 1 while a table is paused.
pub const TABLE_PAUSED: &str = "cdc_loader_table_paused";
/// Batches retried after a transient PostgreSQL failure.
pub const RETRIES: &str = "cdc_loader_retries_total";
/// DDL statements run to create or evolve target tables, by table.
pub const SCHEMA_CHANGES: &str = "cdc_loader_schema_changes_total";
/// Rebalances of the consumer group seen by this instance, by kind (`assign`, `revoke`).
pub const REBALANCES: &str = "cdc_loader_rebalances_total";

/// Describes every loader metric.
pub fn describe() {
    metrics::describe_counter!(
        ROWS_APPLIED,
        "Rows written to PostgreSQL, by table and operation (a batch's changes to one row are coalesced to the newest and counted once)."
    );
    metrics::describe_histogram!(BATCH_ROWS, "Change events per applied batch.");
    metrics::describe_histogram!(
        APPLY_DURATION,
        metrics::Unit::Seconds,
        "Time to apply one batch, its transaction included."
    );
    metrics::describe_histogram!(
        COMMIT_DURATION,
        metrics::Unit::Seconds,
        "Time of one batch's COMMIT."
    );
    metrics::describe_gauge!(
        LAG,
        metrics::Unit::Seconds,
        "Now minus the source commit time of the table's newest applied event."
    );
    metrics::describe_counter!(
        DEAD_LETTERS,
        "Events sent to the loader's dead-letter topic, by table."
    );
    metrics::describe_gauge!(
        TABLE_PAUSED,
        "1 while the table is paused (by an operator or an incompatible schema change)."
    );
    metrics::describe_counter!(
        RETRIES,
        "Batches retried after a transient PostgreSQL failure."
    );
    metrics::describe_counter!(
        SCHEMA_CHANGES,
        "DDL statements run to create or evolve target tables."
    );
    metrics::describe_counter!(
        REBALANCES,
        "Rebalances of the consumer group, by kind (assign, revoke)."
    );
}

/// Label value of a table.
pub fn table_label(table: &TargetTable) -> String {
    table.to_string()
}

/// Table label of a dead letter too broken to name its table.
pub const UNKNOWN_TABLE: &str = "(unknown)";

/// Counters of events that may never happen, at zero from the start: alert rules watch them
/// with `increase()`, which does not see the first event of a series born at 1.
pub fn zero_counters() {
    metrics::counter!(RETRIES).increment(0);
    metrics::counter!(DEAD_LETTERS, "table" => UNKNOWN_TABLE).increment(0);
}

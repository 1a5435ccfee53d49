//! The extractor's metrics: names in one place, described once at start-up.

/// Events published, by table and operation (`insert`, `update`, `delete`, `read`).
pub const EVENTS: &str = "cdc_extractor_events_total";
/// Bytes of event payloads published, by table.
pub const BYTES: &str = "cdc_extractor_event_bytes_total";
/// Events per committed Kafka transaction.
pub const BATCH_EVENTS: &str = "cdc_extractor_batch_events";
/// Time of one poll of a table's change table.
pub const POLL_DURATION: &str = "cdc_extractor_poll_duration_seconds";
/// Time to commit one Kafka transaction.
pub const COMMIT_DURATION: &str = "cdc_extractor_commit_duration_seconds";
/// Now minus the source commit time of the table's newest published change.
pub const LAG: &str = "cdc_extractor_source_lag_seconds";
/// Snapshot rows published, by table (the running snapshot).
pub const SNAPSHOT_ROWS_DONE: &str = "cdc_extractor_snapshot_rows_done";
/// Rows the table held when its running snapshot started.
pub const SNAPSHOT_ROWS_ESTIMATED: &str = "cdc_extractor_snapshot_rows_estimated";
/// Errors, by kind (`sql_unavailable`, `sql_refused`, `kafka`, `retention_gap`, …).
pub const ERRORS: &str = "cdc_extractor_errors_total";
/// `kind` of a work unit that failed and restarts from its checkpoints.
pub const ERROR_WORK_UNIT: &str = "work_unit";
/// `kind` of changes removed by CDC cleanup before they were read.
pub const ERROR_RETENTION_GAP: &str = "retention_gap";
/// Every `kind` of [`ERRORS`].
pub const ERROR_KINDS: [&str; 2] = [ERROR_WORK_UNIT, ERROR_RETENTION_GAP];
/// Kafka transactions committed.
pub const TRANSACTIONS: &str = "cdc_extractor_transactions_total";
/// Work units (partitions of the work topic) served by this instance.
pub const WORK_UNITS: &str = "cdc_extractor_work_units";
/// Rebalances of the work topic's consumer group seen by this instance, by kind (`assign`,
/// `revoke`).
pub const REBALANCES: &str = "cdc_extractor_rebalances_total";

/// Describes every extractor metric.
pub fn describe() {
    metrics::describe_counter!(EVENTS, "Events published, by table and operation.");
    metrics::describe_counter!(
        BYTES,
        metrics::Unit::Bytes,
        "Event payload bytes published, by table."
    );
    metrics::describe_histogram!(BATCH_EVENTS, "Events per committed Kafka transaction.");
    metrics::describe_histogram!(
        POLL_DURATION,
        metrics::Unit::Seconds,
        "Time the loop waited for one page of a table's change table (shorter than the read when the page was read ahead)."
    );
    metrics::describe_histogram!(
        COMMIT_DURATION,
        metrics::Unit::Seconds,
        "Time to commit one Kafka transaction."
    );
    metrics::describe_gauge!(
        LAG,
        metrics::Unit::Seconds,
        "Now minus the source commit time of the table's newest published change."
    );
    metrics::describe_gauge!(
        SNAPSHOT_ROWS_DONE,
        "Rows the table's running snapshot has published."
    );
    metrics::describe_gauge!(
        SNAPSHOT_ROWS_ESTIMATED,
        "Rows the table held when its running snapshot started."
    );
    metrics::describe_counter!(ERRORS, "Errors, by kind.");
    metrics::describe_counter!(TRANSACTIONS, "Kafka transactions committed.");
    metrics::describe_gauge!(WORK_UNITS, "Work units served by this instance.");
    metrics::describe_counter!(
        REBALANCES,
        "Rebalances of the work topic's consumer group, by kind (assign, revoke)."
    );
}

/// Counters of events that may never happen, at zero from the start: alert rules watch them
/// with `increase()`, which does not see the first event of a series born at 1.
pub fn zero_counters() {
    for kind in ERROR_KINDS {
        metrics::counter!(ERRORS, "kind" => kind).increment(0);
    }
}

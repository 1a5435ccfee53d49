//! The reconciler's metrics: names in one place, described once at start-up.

/// Source rows compared, by table.
pub const ROWS_COMPARED: &str = "cdc_reconciler_rows_compared_total";
/// Differing rows found by the table's last comparison (after settling), by table and kind.
pub const MISMATCHED_ROWS: &str = "cdc_reconciler_mismatched_rows";
/// Time of one table's comparison.
pub const TABLE_DURATION: &str = "cdc_reconciler_table_duration_seconds";
/// Unix time of the table's last comparison that found no difference.
pub const LAST_CLEAN: &str = "cdc_reconciler_last_clean_run_timestamp_seconds";
/// Runs finished, by final state (`clean`, `mismatch`, `failed`).
pub const RUNS: &str = "cdc_reconciler_runs_total";
/// Keys sent to the control topic for re-snapshot, by table.
pub const REPAIR_KEYS: &str = "cdc_reconciler_repair_keys_total";

/// Describes every reconciler metric.
pub fn describe() {
    metrics::describe_counter!(ROWS_COMPARED, "Source rows compared, by table.");
    metrics::describe_gauge!(
        MISMATCHED_ROWS,
        "Differing rows found by the table's last comparison, by table and kind."
    );
    metrics::describe_histogram!(
        TABLE_DURATION,
        metrics::Unit::Seconds,
        "Time of one table's comparison."
    );
    metrics::describe_gauge!(
        LAST_CLEAN,
        metrics::Unit::Seconds,
        "Unix time of the table's last comparison without differences."
    );
    metrics::describe_counter!(RUNS, "Runs finished, by state.");
    metrics::describe_counter!(REPAIR_KEYS, "Keys sent for re-snapshot, by table.");
}

/// Counts rows compared.
pub fn rows_compared(table: &str, rows: u64) {
    metrics::counter!(ROWS_COMPARED, "table" => table.to_owned()).increment(rows);
}

/// Records a table's finished comparison.
pub fn table_done(table: &str, seconds: f64, missing: u64, extra: u64, changed: u64, clean: bool) {
    metrics::histogram!(TABLE_DURATION, "table" => table.to_owned()).record(seconds);
    // From its first run on, a table's repair counter exists (at zero until keys are sent), so
    // `increase()` sees the first repair.
    metrics::counter!(REPAIR_KEYS, "table" => table.to_owned()).increment(0);
    for (kind, count) in [("missing", missing), ("extra", extra), ("changed", changed)] {
        metrics::gauge!(MISMATCHED_ROWS, "table" => table.to_owned(), "kind" => kind)
            .set(count as f64);
    }
    if clean {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        metrics::gauge!(LAST_CLEAN, "table" => table.to_owned()).set(now);
    }
}

/// Counts a finished run.
pub fn run_done(state: &'static str) {
    metrics::counter!(RUNS, "state" => state).increment(1);
}

/// Counts keys sent for repair.
pub fn repair_keys(table: &str, keys: u64) {
    metrics::counter!(REPAIR_KEYS, "table" => table.to_owned()).increment(keys);
}

/// Counters of events that may never happen, at zero from the start: alert rules watch them
/// with `increase()`, which does not see the first event of a series born at 1.
pub fn zero_counters() {
    for state in ["clean", "mismatch", "failed"] {
        metrics::counter!(RUNS, "state" => state).increment(0);
    }
}

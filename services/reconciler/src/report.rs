//! A run rendered for people (Markdown) and for programs (JSON).

use std::fmt::Write as _;

use serde_json::{Value as Json, json};

use crate::proto::{DifferenceKind, Run, RunState, TableResult, TableState};

/// Lower-case name of a run state, as JSON and metrics use it.
pub fn run_state_name(state: i32) -> &'static str {
    match RunState::try_from(state).unwrap_or(RunState::Unspecified) {
        RunState::Running => "running",
        RunState::Clean => "clean",
        RunState::Mismatch => "mismatch",
        RunState::Failed => "failed",
        RunState::Unspecified => "unspecified",
    }
}

/// Lower-case name of a table state.
pub fn table_state_name(state: i32) -> &'static str {
    match TableState::try_from(state).unwrap_or(TableState::Unspecified) {
        TableState::Pending => "pending",
        TableState::Hashing => "hashing",
        TableState::Drilling => "drilling",
        TableState::Settling => "settling",
        TableState::Match => "match",
        TableState::Mismatch => "mismatch",
        TableState::NotComparable => "not_comparable",
        TableState::Failed => "failed",
        TableState::Unspecified => "unspecified",
    }
}

fn kind_name(kind: i32) -> &'static str {
    match DifferenceKind::try_from(kind).unwrap_or(DifferenceKind::Unspecified) {
        DifferenceKind::Missing => "missing",
        DifferenceKind::Extra => "extra",
        DifferenceKind::Changed => "changed",
        DifferenceKind::Unspecified => "unspecified",
    }
}

/// The run as JSON (the form published to `<prefix>.reconcile.reports`).
pub fn json(run: &Run) -> Json {
    json!({
        "run_id": run.run_id,
        "state": run_state_name(run.state),
        "trigger": run.trigger,
        "started_at_unix_ms": run.started_at_unix_ms,
        "finished_at_unix_ms": run.finished_at_unix_ms,
        "repair": run.repair,
        "detail": run.detail,
        "tables": run.tables.iter().map(table_json).collect::<Vec<_>>(),
    })
}

fn table_json(table: &TableResult) -> Json {
    json!({
        "table": table.table,
        "target_table": table.target_table,
        "state": table_state_name(table.state),
        "source_rows": table.source_rows,
        "target_rows": table.target_rows,
        "buckets": table.buckets,
        "differing_buckets": table.differing_buckets,
        "missing": table.missing,
        "extra": table.extra,
        "changed": table.changed,
        "settled": table.settled,
        "truncated": table.truncated,
        "excluded_columns": table.excluded_columns,
        "detail": table.detail,
        "duration_ms": table.duration_ms,
        "repair_keys_sent": table.repair_keys_sent,
        "differences": table.differences.iter().map(|d| json!({
            "kind": kind_name(d.kind),
            "key": d.key.iter().map(|k| (k.column.clone(), Json::String(k.value.clone()))).collect::<serde_json::Map<_, _>>(),
            "columns": d.columns,
        })).collect::<Vec<_>>(),
    })
}

/// The run as a Markdown report.
pub fn markdown(run: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Reconciliation {}: {}\n",
        run.run_id,
        run_state_name(run.state)
    );
    let _ = writeln!(
        out,
        "Trigger: {}. Repair: {}.{}\n",
        run.trigger,
        if run.repair { "yes" } else { "no" },
        if run.detail.is_empty() {
            String::new()
        } else {
            format!(" {}", run.detail)
        }
    );
    let _ = writeln!(
        out,
        "| table | state | source rows | target rows | missing | extra | changed | settled | time |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for table in &run.tables {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |",
            table.table,
            table_state_name(table.state),
            table.source_rows,
            table.target_rows,
            table.missing,
            table.extra,
            table.changed,
            table.settled,
            table.duration_ms as f64 / 1000.0
        );
    }
    for table in &run.tables {
        let notes = !table.detail.is_empty()
            || !table.excluded_columns.is_empty()
            || !table.differences.is_empty();
        if !notes {
            continue;
        }
        let _ = writeln!(out, "\n## {} → {}\n", table.table, table.target_table);
        if !table.detail.is_empty() {
            let _ = writeln!(out, "{}\n", table.detail);
        }
        for excluded in &table.excluded_columns {
            let _ = writeln!(out, "- not compared: {excluded}");
        }
        if !table.differences.is_empty() {
            let _ = writeln!(out, "\n| kind | key | columns |\n|---|---|---|");
            for difference in &table.differences {
                let key: Vec<String> = difference
                    .key
                    .iter()
                    .map(|k| format!("{}={}", k.column, k.value))
                    .collect();
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    kind_name(difference.kind),
                    key.join(", "),
                    difference.columns.join(", ")
                );
            }
            if table.truncated {
                let _ = writeln!(
                    out,
                    "\nMore rows differ than are listed (compare.max_reported_keys)."
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{KeyPart, RowDifference};

    #[test]
    fn reports_name_the_differing_rows_and_columns() {
        let run = Run {
            run_id: "r1".into(),
            state: RunState::Mismatch as i32,
            trigger: "cli".into(),
            tables: vec![TableResult {
                table: "shop.dbo.orders".into(),
                target_table: "public.orders".into(),
                state: TableState::Mismatch as i32,
                source_rows: 3,
                target_rows: 3,
                changed: 1,
                differences: vec![RowDifference {
                    key: vec![KeyPart {
                        column: "id".into(),
                        value: "7".into(),
                    }],
                    kind: DifferenceKind::Changed as i32,
                    columns: vec!["total".into()],
                }],
                ..TableResult::default()
            }],
            ..Run::default()
        };
        let text = markdown(&run);
        assert!(text.contains("| changed | id=7 | total |"), "{text}");
        let value = json(&run);
        assert_eq!(value["state"], "mismatch");
        assert_eq!(value["tables"][0]["differences"][0]["key"]["id"], "7");
        assert_eq!(value["tables"][0]["differences"][0]["columns"][0], "total");
    }
}

//! One table's comparison: row counts, bucket checksums computed by each database, the rows
//! of differing buckets read from both sides and compared column by column, and a second
//! look after the settle time so that changes still in flight are not reported.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::canonical::TableSql;
use crate::config::CompareConfig;
use crate::databases::{BucketSum, DbError, SourceDb, TargetDb, TextRow};
use crate::proto::{DifferenceKind, KeyPart, RowDifference, TableResult, TableState};

/// Most buckets a table is split into.
const MAX_BUCKETS: u64 = 1 << 20;

/// One differing row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    /// The key columns' canonical texts.
    pub key: TextRow,
    /// How it differs.
    pub kind: DifferenceKind,
    /// Source names of the differing columns (CHANGED only).
    pub columns: Vec<String>,
}

/// What the comparison needs besides the two databases.
pub struct Comparison<'a> {
    /// The table's SQL.
    pub sql: &'a TableSql,
    /// Settings.
    pub settings: &'a CompareConfig,
    /// Ends the comparison early (the run was cancelled or the service is stopping).
    pub cancel: &'a CancellationToken,
}

impl Comparison<'_> {
    /// Compares the table, updating `result` as it goes and calling `report` after each step.
    /// Returns every difference found (the result lists at most `max_reported_keys`).
    pub async fn run(
        &self,
        source: &mut SourceDb,
        target: &TargetDb,
        result: &mut TableResult,
        report: &(dyn Fn(&TableResult) + Sync),
    ) -> Result<Vec<Difference>, DbError> {
        let started = Instant::now();
        let sql = self.sql;
        set_state(result, TableState::Hashing, report);
        let (source_sql, target_sql) = (sql.source_count(), sql.target_count());
        let (source_count, target_count) = tokio::try_join!(
            source.count(&source_sql, "counting source rows"),
            target.count(&target_sql, "counting target rows"),
        )?;
        let buckets = bucket_count(
            source_count.max(target_count),
            self.settings.rows_per_bucket,
        );
        result.buckets = buckets;
        result.source_rows = source_count;
        result.target_rows = target_count;
        report(result);
        let (source_sql, target_sql) = (sql.source_buckets(buckets), sql.target_buckets(buckets));
        let ((source_buckets, source_took), (target_buckets, target_took)) = tokio::try_join!(
            timed(source.buckets(&source_sql, "hashing source buckets")),
            timed(target.buckets(&target_sql, "hashing target buckets")),
        )?;
        tracing::info!(
            table = %result.table,
            buckets,
            source_seconds = source_took.as_secs_f64(),
            target_seconds = target_took.as_secs_f64(),
            "buckets hashed"
        );
        let source_sums: BTreeMap<u32, BucketSum> = source_buckets.into_iter().collect();
        let target_sums: BTreeMap<u32, BucketSum> = target_buckets.into_iter().collect();
        result.source_rows = source_sums.values().map(|b| b.rows).sum();
        result.target_rows = target_sums.values().map(|b| b.rows).sum();
        let differing = differing_buckets(&source_sums, &target_sums);
        result.differing_buckets = u32::try_from(differing.len()).unwrap_or(u32::MAX);
        crate::metrics::rows_compared(&result.table, result.source_rows);
        let mut differences = Vec::new();
        if !differing.is_empty() {
            set_state(result, TableState::Drilling, report);
            let (found, complete) = self.drill(source, target, buckets, &differing).await?;
            result.truncated = !complete;
            differences = found;
        }
        let first_look = differences.len();
        if !differences.is_empty() && self.settings.settle_ms > 0 {
            set_state(result, TableState::Settling, report);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(self.settings.settle_ms)) => {}
                () = self.cancel.cancelled() => return Err(DbError::Stopped),
            }
            let again: BTreeSet<u32> = differences
                .iter()
                .map(|d| sql.bucket_of(&d.key, buckets))
                .collect();
            let (second, _) = self
                .drill(
                    source,
                    target,
                    buckets,
                    &again.into_iter().collect::<Vec<_>>(),
                )
                .await?;
            let seen_before: BTreeSet<&TextRow> = differences.iter().map(|d| &d.key).collect();
            differences = second
                .into_iter()
                .filter(|d| seen_before.contains(&d.key))
                .collect();
        }
        result.settled = (first_look - differences.len()) as u64;
        self.summarise(result, &differences);
        result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let state = if differences.is_empty() && !result.truncated {
            TableState::Match
        } else {
            TableState::Mismatch
        };
        set_state(result, state, report);
        Ok(differences)
    }

    /// Reads the rows of `buckets` from both sides and compares them; stops early once more
    /// differences than can be reported are found. Returns them and whether every bucket was
    /// read.
    async fn drill(
        &self,
        source: &mut SourceDb,
        target: &TargetDb,
        total_buckets: u32,
        buckets: &[u32],
    ) -> Result<(Vec<Difference>, bool), DbError> {
        let sql = self.sql;
        let width = sql.columns.len();
        let mut differences = Vec::new();
        let chunks: Vec<&[u32]> = buckets
            .chunks(self.settings.drill_buckets_per_query)
            .collect();
        for (index, chunk) in chunks.iter().enumerate() {
            if self.cancel.is_cancelled() {
                return Err(DbError::Stopped);
            }
            let source_sql = sql.source_rows(total_buckets, chunk);
            let target_sql = sql.target_rows(total_buckets, chunk);
            let (source_rows, target_rows) = tokio::try_join!(
                source.text_rows(
                    &source_sql,
                    width,
                    "reading source rows of differing buckets"
                ),
                target.text_rows(
                    &target_sql,
                    width,
                    "reading target rows of differing buckets"
                ),
            )?;
            differences.extend(diff_rows(sql, source_rows, target_rows));
            let enough = differences.len() as u64 > self.settings.max_reported_keys;
            if enough && index + 1 < chunks.len() {
                differences.sort();
                return Ok((differences, false));
            }
        }
        differences.sort();
        Ok((differences, true))
    }

    fn summarise(&self, result: &mut TableResult, differences: &[Difference]) {
        let count =
            |kind: DifferenceKind| differences.iter().filter(|d| d.kind == kind).count() as u64;
        result.missing = count(DifferenceKind::Missing);
        result.extra = count(DifferenceKind::Extra);
        result.changed = count(DifferenceKind::Changed);
        let limit = usize::try_from(self.settings.max_reported_keys).unwrap_or(usize::MAX);
        if differences.len() > limit {
            result.truncated = true;
        }
        let key_names: Vec<&str> = self.sql.columns[..self.sql.key_len]
            .iter()
            .map(|c| c.source_name.as_str())
            .collect();
        result.differences = differences
            .iter()
            .take(limit)
            .map(|d| RowDifference {
                key: key_names
                    .iter()
                    .zip(&d.key)
                    .map(|(column, value)| KeyPart {
                        column: (*column).to_owned(),
                        value: value.clone().unwrap_or_default(),
                    })
                    .collect(),
                kind: d.kind as i32,
                columns: d.columns.clone(),
            })
            .collect();
    }
}

/// Runs `future` and measures how long it took.
async fn timed<T, E>(
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<(T, Duration), E> {
    let started = Instant::now();
    let value = future.await?;
    Ok((value, started.elapsed()))
}

fn set_state(result: &mut TableResult, state: TableState, report: &(dyn Fn(&TableResult) + Sync)) {
    result.state = state as i32;
    report(result);
}

/// Buckets for `rows` rows at `rows_per_bucket` each, at least one.
pub fn bucket_count(rows: u64, rows_per_bucket: u64) -> u32 {
    let wanted = rows.div_ceil(rows_per_bucket.max(1)).clamp(1, MAX_BUCKETS);
    u32::try_from(wanted).unwrap_or(u32::MAX)
}

/// Buckets whose count or checksum differs, or that only one side has.
pub fn differing_buckets(
    source: &BTreeMap<u32, BucketSum>,
    target: &BTreeMap<u32, BucketSum>,
) -> Vec<u32> {
    source
        .keys()
        .chain(target.keys())
        .copied()
        .collect::<BTreeSet<u32>>()
        .into_iter()
        .filter(|bucket| source.get(bucket) != target.get(bucket))
        .collect()
}

/// The differences between two sets of rows (key columns first in each row).
pub fn diff_rows(sql: &TableSql, source: Vec<TextRow>, target: Vec<TextRow>) -> Vec<Difference> {
    let key_len = sql.key_len;
    let mut target_by_key: HashMap<TextRow, TextRow> = target
        .into_iter()
        .map(|row| (row[..key_len].to_vec(), row))
        .collect();
    let mut differences = Vec::new();
    for row in source {
        let key = row[..key_len].to_vec();
        match target_by_key.remove(&key) {
            None => differences.push(Difference {
                key,
                kind: DifferenceKind::Missing,
                columns: Vec::new(),
            }),
            Some(other) if other != row => differences.push(Difference {
                key,
                kind: DifferenceKind::Changed,
                columns: sql
                    .columns
                    .iter()
                    .zip(row.iter().zip(&other))
                    .filter(|(_, (a, b))| a != b)
                    .map(|(column, _)| column.source_name.clone())
                    .collect(),
            }),
            Some(_) => {}
        }
    }
    differences.extend(target_by_key.into_keys().map(|key| Difference {
        key,
        kind: DifferenceKind::Extra,
        columns: Vec::new(),
    }));
    differences
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{ColumnPair, SourceKind, TargetKind};

    fn sql() -> TableSql {
        let column = |name: &str| ColumnPair {
            source_name: name.to_owned(),
            target_name: name.to_owned(),
            source: SourceKind::Text,
            target: TargetKind::Text,
        };
        TableSql {
            source_table: "[dbo].[t]".into(),
            target_table: "\"public\".\"t\"".into(),
            columns: vec![column("id"), column("name"), column("note")],
            key_len: 1,
            target_filter: None,
        }
    }

    fn row(values: &[Option<&str>]) -> TextRow {
        values.iter().map(|v| v.map(str::to_owned)).collect()
    }

    #[test]
    fn rows_differ_by_presence_and_by_column() {
        let source = vec![
            row(&[Some("1"), Some("a"), None]),
            row(&[Some("2"), Some("b"), None]),
            row(&[Some("3"), Some("c"), Some("x")]),
        ];
        let target = vec![
            row(&[Some("1"), Some("a"), None]),
            row(&[Some("3"), Some("c"), None]),
            row(&[Some("4"), Some("d"), None]),
        ];
        let mut found = diff_rows(&sql(), source, target);
        found.sort();
        assert_eq!(
            found,
            vec![
                Difference {
                    key: row(&[Some("2")]),
                    kind: DifferenceKind::Missing,
                    columns: vec![],
                },
                Difference {
                    key: row(&[Some("3")]),
                    kind: DifferenceKind::Changed,
                    columns: vec!["note".to_owned()],
                },
                Difference {
                    key: row(&[Some("4")]),
                    kind: DifferenceKind::Extra,
                    columns: vec![],
                },
            ]
        );
    }

    #[test]
    fn buckets_differ_by_count_sum_or_presence() {
        let sum = |rows, hash_sum| BucketSum { rows, hash_sum };
        let source = BTreeMap::from([(0, sum(2, 10)), (1, sum(1, 5)), (2, sum(1, 7))]);
        let target = BTreeMap::from([(0, sum(2, 10)), (1, sum(1, 6)), (3, sum(1, 1))]);
        assert_eq!(differing_buckets(&source, &target), vec![1, 2, 3]);
        assert_eq!(bucket_count(0, 500), 1);
        assert_eq!(bucket_count(1_000_001, 500), 2001);
    }
}

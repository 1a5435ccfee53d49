//! Replaying dead letters: the same guarded apply as a batch, without offsets, each letter
//! recorded in `<state_schema>.replayed_dead_letters` so that it is applied at most once.

use std::collections::{HashMap, HashSet};

use sqlx::{AssertSqlSafe, Row};

use super::{Applier, AttemptError, LiveSession, TableResult, apply_table};
use crate::dead_letters::{DeadLetter, StoredLetter};
use crate::event::{Provenance, Record};

/// Result of replaying one dead letter.
#[derive(Debug, Clone)]
pub struct ReplayResult {
    /// `partition:offset` of the dead letter.
    pub id: String,
    /// Applied (or found already applied).
    pub applied: bool,
    /// Why not.
    pub reason: String,
}

impl Applier {
    /// Applies dead letters again, each at most once (replays are recorded in the state schema).
    #[tracing::instrument(name = "replay_dead_letters", skip_all, fields(letters = letters.len()))]
    pub async fn replay(
        &mut self,
        dlq_topic: &str,
        letters: Vec<StoredLetter>,
    ) -> Vec<ReplayResult> {
        match self.try_replay(dlq_topic, &letters).await {
            Ok(results) => results,
            Err(AttemptError::Transient(reason)) => {
                // The failed transaction dropped its connection, and with it the session.
                letters
                    .iter()
                    .map(|l| ReplayResult {
                        id: l.id(),
                        applied: false,
                        reason: format!("not attempted, retry later: {reason}"),
                    })
                    .collect()
            }
        }
    }

    async fn try_replay(
        &mut self,
        dlq_topic: &str,
        letters: &[StoredLetter],
    ) -> Result<Vec<ReplayResult>, AttemptError> {
        let records: Vec<Record> = letters.iter().map(|l| l.record.clone()).collect();
        let prepared = self
            .preparer
            .prepare(records)
            .await
            .map_err(|(_, e)| AttemptError::Transient(e.to_string()))?;
        let by_provenance: HashMap<&Provenance, String> = letters
            .iter()
            .map(|l| (&l.record.provenance, l.id()))
            .collect();
        let mut results: HashMap<String, ReplayResult> = HashMap::new();
        let mut note = |provenance: &Provenance, applied: bool, reason: String| {
            let id = by_provenance.get(provenance).cloned().unwrap_or_default();
            results.insert(
                id.clone(),
                ReplayResult {
                    id,
                    applied,
                    reason,
                },
            );
        };
        for dead in &prepared.dead {
            note(&dead.record.provenance, false, dead.reason.clone());
        }
        let settings = self.settings.clone();
        let tables = self.tables.clone();
        let mut live = self.take_session().await?;
        let LiveSession {
            connection: transaction,
            session,
        } = &mut live;
        sqlx::query("BEGIN").execute(&mut *transaction).await?;
        let state = crate::naming::quote_ident(&settings.state_schema);
        for (target, group) in &prepared.groups {
            if let Some(reason) = tables.paused_reason(target) {
                for event in &group.events {
                    let reason = format!("table {target} is paused: {reason}");
                    note(&event.record.provenance, false, reason);
                }
                continue;
            }
            let mut dead = Vec::new();
            let result =
                apply_table(transaction, session, &settings, target, group, &mut dead).await?;
            let failed: HashMap<&Provenance, &DeadLetter> =
                dead.iter().map(|d| (&d.record.provenance, d)).collect();
            for event in &group.events {
                let refusal = match (&result, failed.get(&event.record.provenance)) {
                    (TableResult::Paused(reason), _) => Some(reason.clone()),
                    (_, Some(letter)) => Some(letter.reason.clone()),
                    _ => None,
                };
                let applied = refusal.is_none();
                note(
                    &event.record.provenance,
                    applied,
                    refusal.unwrap_or_default(),
                );
            }
        }
        // Letters coalesced away (an older event for the same row in the same replay) count as
        // applied: the newer one carried the row.
        for letter in letters {
            let id = letter.id();
            results.entry(id.clone()).or_insert(ReplayResult {
                id,
                applied: true,
                reason: String::new(),
            });
        }
        for letter in letters {
            if results.get(&letter.id()).is_some_and(|r| r.applied) {
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {state}.replayed_dead_letters (dlq_topic, dlq_partition, dlq_offset) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
                )))
                .bind(dlq_topic)
                .bind(letter.partition)
                .bind(letter.offset)
                .execute(&mut *transaction)
                .await?;
            }
        }
        sqlx::query("COMMIT").execute(&mut *transaction).await?;
        self.put_back(live);
        Ok(letters
            .iter()
            .filter_map(|l| results.remove(&l.id()))
            .collect())
    }

    /// Which of these dead letters were already replayed.
    pub async fn replayed(&mut self, dlq_topic: &str) -> Result<HashSet<(i32, i64)>, String> {
        let state = crate::naming::quote_ident(&self.settings.state_schema);
        let mut live = self
            .take_session()
            .await
            .map_err(|AttemptError::Transient(e)| e)?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT dlq_partition, dlq_offset FROM {state}.replayed_dead_letters WHERE dlq_topic = $1"
        )))
        .bind(dlq_topic)
        .fetch_all(&mut live.connection)
        .await
        .map_err(|e| e.to_string())?;
        self.put_back(live);
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| e.to_string())
    }
}

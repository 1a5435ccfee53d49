//! The transform of one record: from the raw topic's bytes to what goes out — the same bytes
//! (no rule applies to the table), a transformed event, nothing (filtered), or a dead letter.
//!
//! The engine holds the rules in force (swapped whole on reload), plans compiled per input
//! schema and rule generation, and the tables whose schema the rules do not fit. It is shared
//! by the consume-transform-produce loop and the dead-letter replay.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use cdc_model::Topics;
use cdc_model::proto::{ChangeEvent, TableId, TableSchema};
use cdc_service_kit::schema_registry::{SchemaError, SchemaRegistry};
use prost::Message as _;
use tokio::runtime::Handle;

use crate::rules::RuleSet;
use crate::rules::plan::{Outcome, PlanError, RuleCounts, TablePlan};

/// One record as consumed.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Its raw topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The Kafka key.
    pub key: Option<&'a [u8]>,
    /// The encoded `ChangeEvent`.
    pub payload: Option<&'a [u8]>,
}

/// The codes of dead letters (`cdc.dlq.code`), one per kind of refusal.
pub mod refusal_code {
    /// A rule failed on the event (a conversion refused a value, a key cannot be encoded).
    pub const RULE_FAILED: &str = "rule_failed";
    /// The rules no longer type-check against the event's schema.
    pub const RULE_DOES_NOT_FIT: &str = "rule_does_not_fit";
    /// The record is not a change event.
    pub const UNDECODABLE: &str = "undecodable";
    /// The event's schema is not in the schemas topic.
    pub const SCHEMA_MISSING: &str = "schema_missing";
    /// Every code.
    pub const ALL: [&str; 4] = [RULE_FAILED, RULE_DOES_NOT_FIT, UNDECODABLE, SCHEMA_MISSING];
}

/// Why a record became a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `database.schema.table` of the source (empty when unknown).
    pub table: String,
    /// The rule at fault (empty when none).
    pub rule: String,
    /// Why, naming columns, never values.
    pub reason: String,
    /// One of [`refusal_code::ALL`].
    pub code: &'static str,
    /// The event's source position (empty when undecodable).
    pub position: String,
}

/// What one record becomes.
#[derive(Debug)]
pub enum Transformed {
    /// No rule applies: key and value go unchanged to this clean topic.
    PassThrough {
        /// The clean topic.
        topic: Arc<str>,
    },
    /// The transformed event.
    Emit {
        /// The clean topic of the (possibly routed) table.
        topic: Arc<str>,
        /// Encoded table and key.
        key: Vec<u8>,
        /// Encoded `ChangeEvent`.
        payload: Vec<u8>,
        /// The output schema's fingerprint and the schema, published before its first event.
        schema: (Arc<str>, Arc<TableSchema>),
        /// The event's source commit time (for lag).
        commit_time_micros: i64,
    },
    /// A rule kept it out.
    Filtered,
    /// It goes to the dead-letter topic.
    DeadLetter(Refusal),
    /// It cannot be handled now (the schemas topic is unreadable); retrying helps.
    Retry(String),
}

/// The rules in force and their totals since they were loaded.
pub struct LoadedRules {
    /// The rules.
    pub set: RuleSet,
    /// 1 at start-up, +1 per successful reload.
    pub generation: u64,
    /// Per rule: applied, filtered, failed.
    pub totals: Vec<[AtomicU64; 3]>,
}

/// A table the rules do not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The input schema.
    pub schema_id: String,
    /// What does not fit.
    pub error: PlanError,
}

/// Where a raw topic's events go.
#[derive(Debug, Clone)]
pub struct TopicRoute {
    /// The raw topic.
    pub raw_topic: Arc<str>,
    /// The source table the topic carries.
    pub table: TableId,
    /// `database.schema.table`.
    pub table_name: Arc<str>,
    /// Its clean topic when no rule applies.
    pub clean_topic: Arc<str>,
    /// Whether any rule applies to it.
    pub transformed: bool,
    /// The rule generation this was decided under.
    pub generation: u64,
}

type PlanResult = Arc<Result<TablePlan, PlanError>>;

struct Inner {
    generation: AtomicU64,
    loaded: RwLock<Arc<LoadedRules>>,
    /// Compiled plans of the rules in force, by input schema id (cleared on reload). Read by
    /// every transform thread for every event: a read lock keeps them from waiting on each other.
    plans: RwLock<(u64, HashMap<String, PlanResult>)>,
    problems: Mutex<BTreeMap<String, Problem>>,
    registry: SchemaRegistry,
    topics: Topics,
    runtime: Handle,
}

/// Shared transform state.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// An engine applying `rules`, reading schemas from `registry`.
    pub fn new(rules: RuleSet, registry: SchemaRegistry, topics: Topics, runtime: Handle) -> Self {
        Engine {
            inner: Arc::new(Inner {
                generation: AtomicU64::new(1),
                loaded: RwLock::new(Arc::new(loaded(rules, 1))),
                plans: RwLock::new((1, HashMap::new())),
                problems: Mutex::new(BTreeMap::new()),
                registry,
                topics,
                runtime,
            }),
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<LoadedRules> {
        self.inner
            .loaded
            .read()
            .map(|loaded| Arc::clone(&loaded))
            .unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()))
    }

    /// Puts `rules` in force (already validated); returns the new generation. Tables the old
    /// rules did not fit are checked again as their next events come.
    pub fn replace_rules(&self, rules: RuleSet) -> u64 {
        let mut slot = write(&self.inner.loaded);
        let generation = slot.generation + 1;
        *slot = Arc::new(loaded(rules, generation));
        self.inner.generation.store(generation, Ordering::SeqCst);
        drop(slot);
        *write(&self.inner.plans) = (generation, HashMap::new());
        lock(&self.inner.problems).clear();
        generation
    }

    /// Tables the rules in force do not fit, by table.
    pub fn problems(&self) -> BTreeMap<String, Problem> {
        lock(&self.inner.problems).clone()
    }

    /// The generation of the rules in force (cheap: no lock).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// Where the events of raw topic `topic` go under the rules in force.
    pub fn route(&self, topic: &str) -> Result<TopicRoute, String> {
        let rules = self.rules();
        let table = self
            .inner
            .topics
            .table_of_raw(topic)
            .map_err(|e| e.to_string())?;
        let clean_topic = self.inner.topics.clean(&table).map_err(|e| e.to_string())?;
        Ok(TopicRoute {
            raw_topic: Arc::from(topic),
            table_name: format!("{}.{}.{}", table.database, table.schema, table.table).into(),
            transformed: rules.set.applies_to(&table),
            table,
            clean_topic: clean_topic.into(),
            generation: rules.generation,
        })
    }

    /// Transforms one record of a table whose events the rules change. `counts` gathers the
    /// rules' counters (indexed like the rules of `route.generation`).
    pub fn transform(
        &self,
        route: &TopicRoute,
        input: &Input<'_>,
        counts: &mut RuleCounts,
    ) -> Transformed {
        // The refusal's texts are built only on this (rare) path, never per event.
        let refuse = |rule: String, reason: String, code: &'static str| {
            Transformed::DeadLetter(Refusal {
                table: route.table_name.to_string(),
                rule,
                reason,
                code,
                position: decode(input).map(|e| position_text(&e)).unwrap_or_default(),
            })
        };
        let event = match decode(input) {
            Ok(event) => event,
            Err(reason) => return refuse(String::new(), reason, refusal_code::UNDECODABLE),
        };
        let plan = match self.plan(route.generation, &event.schema_id) {
            Ok(plan) => plan,
            Err(SchemaError::Missing { id, topic }) => {
                let reason = format!("schema {id} is not in {topic}");
                return refuse(String::new(), reason, refusal_code::SCHEMA_MISSING);
            }
            Err(e @ SchemaError::Unavailable { .. }) => return Transformed::Retry(e.to_string()),
        };
        let plan = match plan.as_ref() {
            Ok(plan) => plan,
            Err(error) => {
                self.remember_problem(&route.table_name, &event.schema_id, error);
                counts_failed(counts, error.rule_index);
                return refuse(
                    error.rule.clone(),
                    error.message.clone(),
                    refusal_code::RULE_DOES_NOT_FIT,
                );
            }
        };
        let commit_time_micros = event.commit_time_micros;
        match plan.apply(event, counts) {
            Outcome::Emit(event) => match &plan.output_topic {
                Ok(topic) => match cdc_model::key::encode(&plan.output_table, &event.key) {
                    Ok(key) => Transformed::Emit {
                        topic: Arc::clone(topic),
                        key,
                        payload: event.encode_to_vec(),
                        schema: (
                            Arc::clone(&plan.output_schema_id),
                            Arc::clone(&plan.output_schema),
                        ),
                        commit_time_micros,
                    },
                    Err(e) => refuse(
                        String::new(),
                        format!("the transformed key cannot be encoded: {e}"),
                        refusal_code::RULE_FAILED,
                    ),
                },
                Err(reason) => refuse(String::new(), reason.clone(), refusal_code::RULE_FAILED),
            },
            Outcome::Filtered(_) => Transformed::Filtered,
            Outcome::Failed(rule, reason) => {
                let rule = rule
                    .and_then(|i| self.rules().set.rules.get(i).map(|r| r.name.clone()))
                    .unwrap_or_default();
                refuse(rule, reason, refusal_code::RULE_FAILED)
            }
        }
    }

    /// Adds a batch's counters to the totals, if the rules did not change meanwhile.
    pub fn record(&self, generation: u64, counts: &RuleCounts) {
        let rules = self.rules();
        if rules.generation != generation {
            return;
        }
        for (index, totals) in rules.totals.iter().enumerate() {
            let values = [&counts.applied, &counts.filtered, &counts.failed];
            for (total, counter) in totals.iter().zip(values) {
                let n = counter.get(index).copied().unwrap_or(0);
                if n > 0 {
                    total.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    }

    fn plan(&self, generation: u64, schema_id: &str) -> Result<PlanResult, SchemaError> {
        {
            let plans = self
                .inner
                .plans
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if plans.0 == generation
                && let Some(plan) = plans.1.get(schema_id)
            {
                return Ok(Arc::clone(plan));
            }
        }
        let schema = self
            .inner
            .runtime
            .block_on(self.inner.registry.get(schema_id))?;
        let rules = self.rules();
        let plan = Arc::new(TablePlan::compile(&rules.set, &schema).map(|mut plan| {
            plan.output_topic = self
                .inner
                .topics
                .clean(&plan.output_table)
                .map(Arc::from)
                .map_err(|e| e.to_string());
            plan
        }));
        if let Err(error) = plan.as_ref() {
            tracing::warn!(
                table = %cdc_model::schema::qualified_name(&schema),
                schema_id,
                rule = %error.rule,
                reason = %error.message,
                "the rules do not fit this table's schema: its events go to the dead-letter topic until the rules are fixed"
            );
        }
        let mut plans = write(&self.inner.plans);
        if plans.0 == rules.generation {
            plans.1.insert(schema_id.to_owned(), Arc::clone(&plan));
        }
        Ok(plan)
    }

    fn remember_problem(&self, table: &str, schema_id: &str, error: &PlanError) {
        lock(&self.inner.problems).insert(
            table.to_owned(),
            Problem {
                schema_id: schema_id.to_owned(),
                error: error.clone(),
            },
        );
    }
}

fn counts_failed(counts: &mut RuleCounts, rule: usize) {
    if let Some(count) = counts.failed.get_mut(rule) {
        *count += 1;
    }
}

fn loaded(set: RuleSet, generation: u64) -> LoadedRules {
    let totals = (0..set.rules.len())
        .map(|_| [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)])
        .collect();
    LoadedRules {
        set,
        generation,
        totals,
    }
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn decode(input: &Input<'_>) -> Result<ChangeEvent, String> {
    let payload = input
        .payload
        .ok_or_else(|| "the record has no value".to_owned())?;
    ChangeEvent::decode(payload).map_err(|e| format!("the value is not a ChangeEvent: {e}"))
}

/// `commit_lsn:command_id:seqval:operation`, or empty when the event has no valid position.
pub fn position_text(event: &ChangeEvent) -> String {
    event
        .position
        .as_ref()
        .and_then(|p| cdc_model::SourcePosition::from_proto(p).ok())
        .map(|p| p.to_string())
        .unwrap_or_default()
}

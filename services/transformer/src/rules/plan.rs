//! A table's rules compiled against one of its schemas, and their application to events.
//!
//! Compilation follows the rules in order over a working copy of the schema (columns, key,
//! table name), so that every rule sees the columns as the rules before it left them; each
//! rule that touches rows becomes a [`Step`] with resolved column positions. Applying a plan
//! runs the steps over both row images of an event in lockstep.
//!
//! Filters and updates: an update whose new row no longer passes a filter, while its old row
//! did (or is unknown), becomes a delete, so the row leaves the target instead of staying
//! there stale. Deletes are filtered on their old row; a delete without one passes.

use std::collections::HashSet;
use std::sync::Arc;

use cdc_model::proto::value::Kind;
use cdc_model::proto::{
    ChangeEvent, ColumnSchema, ColumnType, LogicalType, Operation, Row, Source, TableId,
    TableSchema, TimestampTz, Value,
};
use cdc_model::{Lsn, value};

use super::values::ValueOp;
use super::{Action, Computed, OperationName, RuleSet};
use crate::expr::Filter;

/// Why a table's rules do not fit one of its schemas.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule `{rule}`: {message}")]
pub struct PlanError {
    /// The rule's position in the rule set.
    pub rule_index: usize,
    /// Its name.
    pub rule: String,
    /// What does not fit, naming columns and types.
    pub message: String,
}

/// What applying a plan to one event gave.
#[derive(Debug)]
pub enum Outcome {
    /// The transformed event.
    Emit(Box<ChangeEvent>),
    /// A rule (by index) kept the event out.
    Filtered(usize),
    /// The event cannot be transformed: the rule at fault (none when the event itself is
    /// malformed) and why.
    Failed(Option<usize>, String),
}

/// Per-rule counters, indexed like the rule set.
#[derive(Debug, Clone, Default)]
pub struct RuleCounts {
    /// Events that went through each rule.
    pub applied: Vec<u64>,
    /// Events each rule kept out.
    pub filtered: Vec<u64>,
    /// Events each rule could not transform.
    pub failed: Vec<u64>,
}

impl RuleCounts {
    /// Zeroed counters for `rules` rules.
    pub fn new(rules: usize) -> RuleCounts {
        RuleCounts {
            applied: vec![0; rules],
            filtered: vec![0; rules],
            failed: vec![0; rules],
        }
    }

    fn bump(counter: &mut [u64], rule: usize) {
        if let Some(count) = counter.get_mut(rule) {
            *count += 1;
        }
    }
}

#[derive(Debug)]
enum StepKind {
    Project(Vec<usize>),
    Map {
        column: usize,
        op: ValueOp,
        input: ColumnSchema,
    },
    Filter(Filter),
    Add(Computed),
    DropOperations(HashSet<Operation>),
}

#[derive(Debug)]
struct Step {
    rule: usize,
    kind: StepKind,
}

/// One table schema's rules, compiled.
#[derive(Debug)]
pub struct TablePlan {
    /// The schema events leave with.
    pub output_schema: Arc<TableSchema>,
    /// Its fingerprint.
    pub output_schema_id: Arc<str>,
    /// The table events leave as (after routing).
    pub output_table: TableId,
    /// Its clean topic, or why it has none (a name too long for Kafka); set by the engine.
    pub output_topic: Result<Arc<str>, String>,
    input_width: usize,
    steps: Vec<Step>,
    key_indexes: Vec<usize>,
    key_transformed: bool,
    rules_applied: Vec<usize>,
}

/// The working state of compilation.
struct Working {
    table: TableId,
    columns: Vec<ColumnSchema>,
    keys: Vec<String>,
    key_transformed: bool,
}

impl Working {
    /// Resolves a column name: exact, else the one name equal without regard to case.
    fn resolve(&self, name: &str) -> Result<usize, String> {
        if let Some(i) = self.columns.iter().position(|c| c.name == name) {
            return Ok(i);
        }
        let folded: Vec<usize> = (0..self.columns.len())
            .filter(|i| self.columns[*i].name.eq_ignore_ascii_case(name))
            .collect();
        match folded.as_slice() {
            [one] => Ok(*one),
            _ => Err(format!(
                "unknown column `{name}` (columns: {})",
                self.column_names()
            )),
        }
    }

    fn column_names(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn is_key(&self, index: usize) -> bool {
        self.keys.contains(&self.columns[index].name)
    }

    fn project(&mut self, keep: &[usize]) {
        self.columns = keep.iter().map(|i| self.columns[*i].clone()).collect();
    }
}

impl TablePlan {
    /// Compiles the rules that match `input`'s table against it.
    pub fn compile(rules: &RuleSet, input: &TableSchema) -> Result<TablePlan, PlanError> {
        let source_table = input.table.clone().unwrap_or_default();
        let mut working = Working {
            table: source_table.clone(),
            columns: input.columns.clone(),
            keys: input.key_columns.clone(),
            key_transformed: false,
        };
        let mut steps = Vec::new();
        let mut rules_applied = Vec::new();
        for (index, rule) in rules.rules.iter().enumerate() {
            if !rule.tables.matches(&source_table) {
                continue;
            }
            rules_applied.push(index);
            let step =
                compile_action(&rule.action, &mut working, rules).map_err(|message| PlanError {
                    rule_index: index,
                    rule: rule.name.clone(),
                    message,
                })?;
            steps.extend(step.map(|kind| Step { rule: index, kind }));
        }
        let output = TableSchema {
            table: Some(working.table.clone()),
            capture_instance: input.capture_instance.clone(),
            columns: working.columns,
            key_columns: working.keys,
        };
        let invalid = |message: String| PlanError {
            rule_index: rules_applied.last().copied().unwrap_or_default(),
            rule: rules_applied
                .last()
                .map(|i| rules.rules[*i].name.clone())
                .unwrap_or_default(),
            message,
        };
        cdc_model::schema::validate(&output).map_err(|e| invalid(e.to_string()))?;
        let key_indexes =
            cdc_model::schema::key_indexes(&output).map_err(|e| invalid(e.to_string()))?;
        Ok(TablePlan {
            output_schema_id: cdc_model::schema::fingerprint(&output).into(),
            output_schema: Arc::new(output),
            output_table: working.table,
            output_topic: Err("not resolved yet".to_owned()),
            input_width: input.columns.len(),
            steps,
            key_indexes,
            key_transformed: working.key_transformed,
            rules_applied,
        })
    }

    /// The rules (by index) that apply to this table, in order.
    pub fn rules_applied(&self) -> &[usize] {
        &self.rules_applied
    }

    /// Applies the plan to one event.
    pub fn apply(&self, mut event: ChangeEvent, counts: &mut RuleCounts) -> Outcome {
        let mut images = Images {
            op: event.op(),
            before: event.before.take().map(|row| row.values),
            after: event.after.take().map(|row| row.values),
        };
        if let Err(reason) = images.check_width(self.input_width) {
            return Outcome::Failed(None, reason);
        }
        for step in &self.steps {
            match images.run(step, &event) {
                StepResult::Continue => RuleCounts::bump(&mut counts.applied, step.rule),
                StepResult::Filtered => {
                    RuleCounts::bump(&mut counts.filtered, step.rule);
                    return Outcome::Filtered(step.rule);
                }
                StepResult::Failed(reason) => {
                    RuleCounts::bump(&mut counts.failed, step.rule);
                    return Outcome::Failed(Some(step.rule), reason);
                }
            }
        }
        self.finish(event, images)
    }

    fn finish(&self, mut event: ChangeEvent, images: Images) -> Outcome {
        let keyed = if images.op == Operation::Delete {
            images.before.as_ref()
        } else {
            images.after.as_ref()
        };
        match keyed {
            Some(image) => {
                event.key = self.key_indexes.iter().map(|i| image[*i].clone()).collect();
            }
            None if self.key_transformed => {
                return Outcome::Failed(
                    None,
                    "the event has no row image to take its transformed key from".to_owned(),
                );
            }
            None => {}
        }
        event.op = images.op as i32;
        event.before = images.before.map(|values| Row { values });
        event.after = images.after.map(|values| Row { values });
        event.schema_id = self.output_schema_id.to_string();
        let source = event.source.get_or_insert_with(Source::default);
        source.table = Some(self.output_table.clone());
        Outcome::Emit(Box::new(event))
    }
}

fn compile_action(
    action: &Action,
    working: &mut Working,
    rules: &RuleSet,
) -> Result<Option<StepKind>, String> {
    Ok(Some(match action {
        Action::Include(names) => {
            let mut keep = names
                .iter()
                .map(|name| working.resolve(name))
                .collect::<Result<Vec<_>, _>>()?;
            keep.sort_unstable();
            keep.dedup();
            if let Some(key) =
                (0..working.columns.len()).find(|i| working.is_key(*i) && !keep.contains(i))
            {
                return Err(format!(
                    "leaves out key column `{}`; a key column must stay",
                    working.columns[key].name
                ));
            }
            working.project(&keep);
            StepKind::Project(keep)
        }
        Action::Exclude(names) => {
            let drop = names
                .iter()
                .map(|name| working.resolve(name))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(key) = drop.iter().find(|i| working.is_key(**i)) {
                return Err(format!(
                    "excludes key column `{}`; a key column must stay",
                    working.columns[*key].name
                ));
            }
            let keep: Vec<usize> = (0..working.columns.len())
                .filter(|i| !drop.contains(i))
                .collect();
            working.project(&keep);
            StepKind::Project(keep)
        }
        Action::Rename(rename) => {
            let index = working.resolve(&rename.from)?;
            if working
                .columns
                .iter()
                .enumerate()
                .any(|(i, c)| i != index && c.name.eq_ignore_ascii_case(&rename.to))
            {
                return Err(format!("column `{}` already exists", rename.to));
            }
            let old = std::mem::replace(&mut working.columns[index].name, rename.to.clone());
            for key in &mut working.keys {
                if *key == old {
                    key.clone_from(&rename.to);
                }
            }
            return Ok(None);
        }
        Action::Route(route) => {
            let table = &mut working.table;
            for (part, new) in [
                (&mut table.database, &route.database),
                (&mut table.schema, &route.schema),
                (&mut table.table, &route.table),
            ] {
                if let Some(new) = new {
                    part.clone_from(new);
                }
            }
            return Ok(None);
        }
        Action::Mask(mask) => {
            let op = ValueOp::for_mask(mask, rules.hmac_key.as_ref())?;
            map_column(working, &mask.column, op)?
        }
        Action::Convert(convert) => {
            map_column(working, &convert.column, ValueOp::for_convert(convert))?
        }
        Action::Filter(text) => {
            StepKind::Filter(Filter::compile(text, &working.columns).map_err(|e| e.to_string())?)
        }
        Action::Add(add) => {
            if working
                .columns
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(&add.name))
            {
                return Err(format!("column `{}` already exists", add.name));
            }
            working.columns.push(computed_column(&add.name, add.value));
            StepKind::Add(add.value)
        }
        Action::DropOperations(ops) => StepKind::DropOperations(
            ops.iter()
                .map(|op| match op {
                    OperationName::Insert => Operation::Insert,
                    OperationName::Update => Operation::Update,
                    OperationName::Delete => Operation::Delete,
                    OperationName::Read => Operation::Read,
                })
                .collect(),
        ),
    }))
}

fn map_column(working: &mut Working, name: &str, op: ValueOp) -> Result<StepKind, String> {
    let column = working.resolve(name)?;
    let input = working.columns[column].clone();
    if working.is_key(column) {
        if !op.keeps_keys_distinct() {
            return Err(format!(
                "would make distinct values of key column `{}` equal; on a key column only \
                 hmac masks and conversions that refuse bad values are allowed",
                input.name
            ));
        }
        working.key_transformed = true;
    }
    working.columns[column] = op.output_column(&input)?;
    Ok(StepKind::Map { column, op, input })
}

fn computed_column(name: &str, computed: Computed) -> ColumnSchema {
    let (logical, length, source_type) = match computed {
        Computed::CommitTime => (LogicalType::Timestamptz, 0, "datetimeoffset(6)"),
        Computed::Operation => (LogicalType::Text, 6, "varchar(6)"),
        Computed::SourceLsn => (LogicalType::Text, 22, "varchar(22)"),
    };
    ColumnSchema {
        name: name.to_owned(),
        r#type: Some(ColumnType {
            logical: logical as i32,
            length,
            precision: 0,
            scale: if computed == Computed::CommitTime {
                6
            } else {
                0
            },
            source_type: source_type.to_owned(),
        }),
        nullable: false,
    }
}

enum StepResult {
    Continue,
    Filtered,
    Failed(String),
}

/// An event's operation and row images while the steps run.
struct Images {
    op: Operation,
    before: Option<Vec<Value>>,
    after: Option<Vec<Value>>,
}

impl Images {
    fn check_width(&self, width: usize) -> Result<(), String> {
        for (name, image) in [("before", &self.before), ("after", &self.after)] {
            if let Some(values) = image
                && values.len() != width
            {
                return Err(format!(
                    "the {name} image has {} values; its schema has {width} columns",
                    values.len()
                ));
            }
        }
        Ok(())
    }

    fn each(&mut self) -> impl Iterator<Item = &mut Vec<Value>> {
        self.before.iter_mut().chain(self.after.iter_mut())
    }

    fn run(&mut self, step: &Step, event: &ChangeEvent) -> StepResult {
        match &step.kind {
            StepKind::Project(keep) => {
                for image in self.each() {
                    let mut old = std::mem::take(image);
                    *image = keep.iter().map(|i| std::mem::take(&mut old[*i])).collect();
                }
            }
            StepKind::Map { column, op, input } => {
                for image in self.each() {
                    if let Err(reason) = op.apply(&mut image[*column], input) {
                        return StepResult::Failed(reason);
                    }
                }
            }
            StepKind::Filter(filter) => return self.filter(filter),
            StepKind::Add(computed) => {
                let value = computed_value(*computed, self.op, event);
                for image in self.each() {
                    image.push(value.clone());
                }
            }
            StepKind::DropOperations(ops) if ops.contains(&self.op) => {
                return StepResult::Filtered;
            }
            StepKind::DropOperations(_) => {}
        }
        StepResult::Continue
    }

    fn filter(&mut self, filter: &Filter) -> StepResult {
        let passes = |image: &Option<Vec<Value>>| image.as_ref().is_none_or(|v| filter.matches(v));
        let kept = match self.op {
            Operation::Delete => passes(&self.before),
            Operation::Update if passes(&self.after) => true,
            Operation::Update if passes(&self.before) => {
                // The row leaves the filtered set: remove it downstream rather than keep it stale.
                self.op = Operation::Delete;
                self.after = None;
                true
            }
            _ => self.after.as_ref().is_some_and(|v| filter.matches(v)),
        };
        if kept {
            StepResult::Continue
        } else {
            StepResult::Filtered
        }
    }
}

fn computed_value(computed: Computed, op: Operation, event: &ChangeEvent) -> Value {
    match computed {
        Computed::CommitTime => value::of(Kind::Timestamptz(TimestampTz {
            utc_seconds: event.commit_time_micros.div_euclid(1_000_000),
            nanos: u32::try_from(event.commit_time_micros.rem_euclid(1_000_000) * 1_000)
                .unwrap_or_default(),
            offset_minutes: 0,
        })),
        Computed::Operation => value::of(Kind::Text(
            match op {
                Operation::Insert => "insert",
                Operation::Update => "update",
                Operation::Delete => "delete",
                Operation::Read => "read",
                Operation::Unspecified => "",
            }
            .to_owned(),
        )),
        Computed::SourceLsn => value::of(Kind::Text(
            event
                .position
                .as_ref()
                .and_then(|p| Lsn::from_bytes(&p.commit_lsn).ok())
                .map(Lsn::to_hex_literal)
                .unwrap_or_default(),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::rules::values::HmacKey;
    use crate::rules::{
        AddColumn, Convert, ConvertTo, Mask, MaskMethod, OnError, RenameColumn, Route, Rule,
        RuleSet,
    };
    use cdc_model::SourcePosition;
    use cdc_model::TablePattern;
    use secrecy::SecretString;

    fn table() -> TableId {
        TableId {
            database: "shop".into(),
            schema: "dbo".into(),
            table: "customers".into(),
        }
    }

    fn column(name: &str, logical: LogicalType, nullable: bool) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            r#type: Some(ColumnType {
                logical: logical as i32,
                length: 0,
                precision: 0,
                scale: 0,
                source_type: String::new(),
            }),
            nullable,
        }
    }

    /// customers (id bigint key, email text, card text, status text, amount bigint)
    fn schema() -> TableSchema {
        TableSchema {
            table: Some(table()),
            capture_instance: "dbo_customers".into(),
            columns: vec![
                column("id", LogicalType::Int64, false),
                column("email", LogicalType::Text, true),
                column("card", LogicalType::Text, true),
                column("status", LogicalType::Text, true),
                column("amount", LogicalType::Int64, true),
            ],
            key_columns: vec!["id".into()],
        }
    }

    fn int(v: i64) -> Value {
        value::of(Kind::Int64(v))
    }

    fn text(v: &str) -> Value {
        value::of(Kind::Text(v.into()))
    }

    fn row(id: i64, status: &str) -> Vec<Value> {
        vec![
            int(id),
            text("ann@example.com"),
            text("4111111111111111"),
            text(status),
            int(100),
        ]
    }

    fn event(op: Operation, before: Option<Vec<Value>>, after: Option<Vec<Value>>) -> ChangeEvent {
        let lsn = Lsn::from_u128(0x25_0000_042c_0003).unwrap();
        let image = after.as_ref().or(before.as_ref()).unwrap();
        ChangeEvent {
            source: Some(Source {
                server: "sql1".into(),
                table: Some(table()),
                capture_instance: "dbo_customers".into(),
            }),
            position: Some(
                SourcePosition {
                    commit_lsn: lsn,
                    command_id: 1,
                    seqval: lsn,
                    operation: 2,
                }
                .to_proto(),
            ),
            op: op as i32,
            key: vec![image[0].clone()],
            before: before.map(|values| Row { values }),
            after: after.map(|values| Row { values }),
            schema_id: cdc_model::schema::fingerprint(&schema()),
            commit_time_micros: 1_700_000_000_123_456,
        }
    }

    fn set(actions: Vec<Action>) -> RuleSet {
        RuleSet {
            rules: actions
                .into_iter()
                .enumerate()
                .map(|(i, action)| Rule {
                    name: format!("r{}", i + 1),
                    tables: TablePattern::new("shop.dbo.customers"),
                    action,
                })
                .collect(),
            hmac_key: Some(HmacKey::new(&SecretString::from("k".repeat(32))).unwrap()),
        }
    }

    fn emitted(plan: &TablePlan, event: ChangeEvent) -> ChangeEvent {
        let mut counts = RuleCounts::new(10);
        match plan.apply(event, &mut counts) {
            Outcome::Emit(event) => *event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    fn names(plan: &TablePlan) -> Vec<&str> {
        plan.output_schema
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn rules_apply_in_order_each_seeing_the_columns_the_last_left() {
        let rules = set(vec![
            Action::Exclude(vec!["CARD".into()]),
            Action::Rename(RenameColumn {
                from: "email".into(),
                to: "contact".into(),
            }),
            Action::Mask(Mask {
                column: "contact".into(),
                method: MaskMethod::Hmac,
                length: None,
                replacement: None,
            }),
            Action::Add(AddColumn {
                name: "op".into(),
                value: Computed::Operation,
            }),
            Action::Route(Route {
                database: None,
                schema: Some("crm".into()),
                table: Some("people".into()),
            }),
        ]);
        let plan = TablePlan::compile(&rules, &schema()).unwrap();
        assert_eq!(names(&plan), ["id", "contact", "status", "amount", "op"]);
        assert_eq!(plan.output_table.schema, "crm");
        assert_eq!(plan.output_table.table, "people");
        let out = emitted(&plan, event(Operation::Insert, None, Some(row(7, "open"))));
        let after = out.after.unwrap().values;
        assert_eq!(after.len(), 5);
        assert_eq!(after[0], int(7));
        assert_ne!(after[1], text("ann@example.com"));
        assert_eq!(after[4], text("insert"));
        assert_eq!(out.key, vec![int(7)]);
        assert_eq!(out.schema_id, plan.output_schema_id.as_ref());
        assert_eq!(out.source.unwrap().table.unwrap().table, "people");
        assert_eq!(
            plan.output_schema_id.as_ref(),
            cdc_model::schema::fingerprint(&plan.output_schema)
        );
    }

    #[test]
    fn include_keeps_schema_order_and_refuses_to_lose_the_key() {
        let plan = TablePlan::compile(
            &set(vec![Action::Include(vec!["status".into(), "id".into()])]),
            &schema(),
        )
        .unwrap();
        assert_eq!(names(&plan), ["id", "status"]);
        let out = emitted(
            &plan,
            event(Operation::Update, Some(row(1, "a")), Some(row(1, "b"))),
        );
        assert_eq!(out.before.unwrap().values, vec![int(1), text("a")]);
        assert_eq!(out.after.unwrap().values, vec![int(1), text("b")]);
        let error = TablePlan::compile(
            &set(vec![Action::Include(vec!["status".into()])]),
            &schema(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "rule `r1`: leaves out key column `id`; a key column must stay"
        );
        let error = TablePlan::compile(&set(vec![Action::Exclude(vec!["id".into()])]), &schema())
            .unwrap_err();
        assert!(
            error.message.contains("excludes key column `id`"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_column_is_named_with_the_columns_there_are() {
        let error = TablePlan::compile(
            &set(vec![
                Action::Rename(RenameColumn {
                    from: "email".into(),
                    to: "contact".into(),
                }),
                Action::Exclude(vec!["email".into()]),
            ]),
            &schema(),
        )
        .unwrap_err();
        assert_eq!(error.rule_index, 1);
        assert_eq!(
            error.to_string(),
            "rule `r2`: unknown column `email` (columns: id, contact, card, status, amount)"
        );
    }

    #[test]
    fn renaming_onto_an_existing_column_or_adding_one_twice_is_refused() {
        let error = TablePlan::compile(
            &set(vec![Action::Rename(RenameColumn {
                from: "email".into(),
                to: "Status".into(),
            })]),
            &schema(),
        )
        .unwrap_err();
        assert_eq!(error.message, "column `Status` already exists");
        let error = TablePlan::compile(
            &set(vec![Action::Add(AddColumn {
                name: "amount".into(),
                value: Computed::CommitTime,
            })]),
            &schema(),
        )
        .unwrap_err();
        assert_eq!(error.message, "column `amount` already exists");
    }

    #[test]
    fn renaming_the_key_column_renames_the_key() {
        let plan = TablePlan::compile(
            &set(vec![Action::Rename(RenameColumn {
                from: "id".into(),
                to: "customer_id".into(),
            })]),
            &schema(),
        )
        .unwrap();
        assert_eq!(plan.output_schema.key_columns, ["customer_id"]);
    }

    #[test]
    fn masks_on_key_columns_must_keep_keys_distinct() {
        let mask = |method| {
            set(vec![Action::Mask(Mask {
                column: "id".into(),
                method,
                length: Some(2),
                replacement: None,
            })])
        };
        let error = TablePlan::compile(&mask(MaskMethod::Redact), &schema()).unwrap_err();
        assert!(
            error
                .message
                .contains("would make distinct values of key column `id` equal")
        );
        let plan = TablePlan::compile(&mask(MaskMethod::Hmac), &schema()).unwrap();
        let out = emitted(&plan, event(Operation::Delete, Some(row(5, "x")), None));
        assert_eq!(out.key.len(), 1);
        assert_eq!(out.key[0], out.before.unwrap().values[0]);
        assert_ne!(out.key[0], int(5));
    }

    #[test]
    fn a_conversion_that_fails_names_its_rule_and_column() {
        let plan = TablePlan::compile(
            &set(vec![Action::Convert(Convert {
                column: "status".into(),
                to: ConvertTo::Uuid,
                length: None,
                precision: None,
                scale: None,
                on_error: None,
            })]),
            &schema(),
        )
        .unwrap();
        let mut counts = RuleCounts::new(1);
        match plan.apply(
            event(Operation::Insert, None, Some(row(1, "nope"))),
            &mut counts,
        ) {
            Outcome::Failed(Some(0), reason) => assert_eq!(
                reason,
                "column `status` holds text that is not a UUID, which cannot be converted"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(counts.failed, [1]);
        let error = TablePlan::compile(
            &set(vec![Action::Convert(Convert {
                column: "amount".into(),
                to: ConvertTo::Json,
                length: None,
                precision: None,
                scale: None,
                on_error: Some(OnError::Null),
            })]),
            &schema(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "rule `r1`: column `amount` is int64; `json` needs a text column"
        );
    }

    #[test]
    fn dropped_operations_are_filtered_and_counted() {
        let plan = TablePlan::compile(
            &set(vec![Action::DropOperations(
                [OperationName::Delete].into_iter().collect(),
            )]),
            &schema(),
        )
        .unwrap();
        let mut counts = RuleCounts::new(1);
        assert!(matches!(
            plan.apply(
                event(Operation::Delete, Some(row(1, "a")), None),
                &mut counts
            ),
            Outcome::Filtered(0)
        ));
        assert!(matches!(
            plan.apply(
                event(Operation::Insert, None, Some(row(1, "a"))),
                &mut counts
            ),
            Outcome::Emit(_)
        ));
        assert_eq!((counts.applied[0], counts.filtered[0]), (1, 1));
    }

    #[test]
    fn computed_columns_carry_commit_time_operation_and_lsn() {
        let plan = TablePlan::compile(
            &set(vec![
                Action::Add(AddColumn {
                    name: "committed_at".into(),
                    value: Computed::CommitTime,
                }),
                Action::Add(AddColumn {
                    name: "lsn".into(),
                    value: Computed::SourceLsn,
                }),
            ]),
            &schema(),
        )
        .unwrap();
        let out = emitted(&plan, event(Operation::Insert, None, Some(row(1, "a"))));
        let after = out.after.unwrap().values;
        assert_eq!(
            after[5],
            value::of(Kind::Timestamptz(TimestampTz {
                utc_seconds: 1_700_000_000,
                nanos: 123_456_000,
                offset_minutes: 0
            }))
        );
        // 10 bytes, as SQL Server prints binary(10).
        assert_eq!(after[6], text("0x000000250000042C0003"));
    }

    #[test]
    fn an_image_of_the_wrong_width_is_refused_without_blaming_a_rule() {
        let plan = TablePlan::compile(&set(vec![Action::Exclude(vec!["card".into()])]), &schema())
            .unwrap();
        let mut counts = RuleCounts::new(1);
        match plan.apply(
            event(Operation::Insert, None, Some(vec![int(1)])),
            &mut counts,
        ) {
            Outcome::Failed(None, reason) => assert_eq!(
                reason,
                "the after image has 1 values; its schema has 5 columns"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn filters_keep_matching_rows_and_turn_updates_that_leave_into_deletes() {
        let plan = TablePlan::compile(
            &set(vec![Action::Filter(
                "status = 'open' AND amount >= 100".into(),
            )]),
            &schema(),
        )
        .unwrap();
        let mut counts = RuleCounts::new(1);
        let mut outcome = |e| plan.apply(e, &mut counts);
        assert!(matches!(
            outcome(event(Operation::Insert, None, Some(row(1, "open")))),
            Outcome::Emit(_)
        ));
        assert!(matches!(
            outcome(event(Operation::Insert, None, Some(row(1, "closed")))),
            Outcome::Filtered(0)
        ));
        match outcome(event(
            Operation::Update,
            Some(row(1, "open")),
            Some(row(1, "closed")),
        )) {
            Outcome::Emit(e) => {
                assert_eq!(e.op(), Operation::Delete);
                assert!(e.after.is_none());
                assert_eq!(e.key, vec![int(1)]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            outcome(event(
                Operation::Update,
                Some(row(1, "closed")),
                Some(row(1, "shut"))
            )),
            Outcome::Filtered(0)
        ));
        match outcome(event(
            Operation::Update,
            Some(row(1, "closed")),
            Some(row(1, "open")),
        )) {
            Outcome::Emit(e) => assert_eq!(e.op(), Operation::Update),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            outcome(event(Operation::Delete, Some(row(1, "closed")), None)),
            Outcome::Filtered(0)
        ));
        assert_eq!((counts.applied[0], counts.filtered[0]), (3, 3));
    }

    #[test]
    fn a_filter_that_does_not_type_check_names_the_rule_and_position() {
        let error =
            TablePlan::compile(&set(vec![Action::Filter("amount = 'x'".into())]), &schema())
                .unwrap_err();
        assert_eq!(error.rule, "r1");
        assert!(error.message.starts_with("at character 8: "), "{error}");
    }

    #[test]
    fn rules_for_other_tables_do_not_apply() {
        let mut rules = set(vec![Action::Exclude(vec!["card".into()])]);
        let mut only = rules.rules.to_vec();
        only[0].tables = TablePattern::new("shop.dbo.orders");
        rules.rules = only.into();
        let plan = TablePlan::compile(&rules, &schema()).unwrap();
        assert!(plan.rules_applied().is_empty());
        assert_eq!(plan.output_schema.columns.len(), 5);
    }
}

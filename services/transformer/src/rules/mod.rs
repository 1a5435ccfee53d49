//! Rules: how operators write them (plain data from the configuration file), how they are
//! checked before any event is seen, and the validated [`RuleSet`] the pipeline applies.
//!
//! A rule names the tables it applies to and exactly one action. Rules apply in the order they
//! are written; a rule sees the columns as the rules before it left them (a column renamed by
//! rule 2 is known by its new name to rule 3). Per table schema the rules compile into a
//! [`plan::TablePlan`]; a rule that does not fit a schema (an unknown column, a type it cannot
//! handle) makes that table's events dead letters, naming the rule, until the rules are fixed.

pub mod plan;
pub mod values;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use cdc_model::proto::TableId;
use cdc_service_kit::FieldError;
use cdc_service_kit::config::field_error;
use serde::Deserialize;

use crate::expr;
use cdc_model::TablePattern;
use values::HmacKey;

/// One rule as written in `[[rules]]`: a table pattern and exactly one action.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name in metrics, messages and dead letters; default `rule-<n>` (n from 1).
    pub name: Option<String>,
    /// Tables it applies to: `database.schema.table`, `*` any run of characters, `?` one,
    /// compared without regard to case (as SQL Server's default collation does).
    pub tables: String,
    /// Keep only these columns (key columns must be among them).
    pub include_columns: Option<Vec<String>>,
    /// Drop these columns (never a key column).
    pub exclude_columns: Option<Vec<String>>,
    /// Rename one column.
    pub rename_column: Option<RenameColumn>,
    /// Give the table another database, schema or name downstream.
    pub route: Option<Route>,
    /// Hide a column's values.
    pub mask: Option<Mask>,
    /// Change a column's type.
    pub convert: Option<Convert>,
    /// Keep only rows for which this expression is true (see the README's grammar).
    pub filter: Option<String>,
    /// Add a column computed from the event.
    pub add_column: Option<AddColumn>,
    /// Drop events of these operations.
    pub drop_operations: Option<Vec<OperationName>>,
}

/// `rename_column = { from = "…", to = "…" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameColumn {
    /// The column's current name.
    pub from: String,
    /// Its new name.
    pub to: String,
}

/// `route = { database = "…", schema = "…", table = "…" }`: each part given replaces the
/// table's; the others stay.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// New database part.
    pub database: Option<String>,
    /// New schema part.
    pub schema: Option<String>,
    /// New table name.
    pub table: Option<String>,
}

/// How a mask hides values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskMethod {
    /// HMAC-SHA256 of the value's canonical text under `[masking] hmac_key`, as 64 hex digits:
    /// equal values stay equal (joins and keys still work), the value cannot be recovered.
    Hmac,
    /// Replaced by `replacement` (default `REDACTED`).
    Redact,
    /// Only the first `length` characters kept.
    Truncate,
    /// Every character but the last `length` replaced by `replacement` (default `*`).
    KeepLast,
}

/// `mask = { column = "…", method = "hmac" | "redact" | "truncate" | "keep_last", … }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mask {
    /// The column.
    pub column: String,
    /// How.
    pub method: MaskMethod,
    /// Characters kept (`truncate`, `keep_last`).
    pub length: Option<u32>,
    /// The replacement text (`redact`) or character (`keep_last`).
    pub replacement: Option<String>,
}

/// Target of a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvertTo {
    /// A `datetimeoffset` (timestamptz) normalised to UTC: the instant stays, the offset
    /// becomes zero.
    TimestamptzUtc,
    /// `money`, `smallmoney`, any decimal or integer to `numeric(precision, scale)`.
    Numeric,
    /// Text to `varchar(length)`; longer values follow `on_error`.
    Varchar,
    /// Text holding a UUID to `uuid`.
    Uuid,
    /// Text holding JSON to `jsonb`.
    Json,
}

/// What a conversion does with a value it cannot convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The event goes to the dead-letter topic, naming the rule and the column (default).
    DeadLetter,
    /// The value becomes NULL (the column becomes nullable).
    Null,
    /// Cut to the length (`varchar` only).
    Truncate,
}

/// `convert = { column = "…", to = "…", … }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Convert {
    /// The column.
    pub column: String,
    /// The new type.
    pub to: ConvertTo,
    /// Characters of a `varchar`.
    pub length: Option<u32>,
    /// Digits of a `numeric` (default 19, `money`'s).
    pub precision: Option<u32>,
    /// Fraction digits of a `numeric` (default 4, `money`'s).
    pub scale: Option<u32>,
    /// What happens to a value that does not convert (default `dead_letter`).
    pub on_error: Option<OnError>,
}

/// What a computed column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Computed {
    /// The source commit time (timestamptz, UTC).
    CommitTime,
    /// `insert`, `update`, `delete` or `read` (snapshot).
    Operation,
    /// The source commit LSN, as SQL Server prints it (`0x…`, 20 hex digits).
    SourceLsn,
}

/// `add_column = { name = "…", value = "commit_time" | "operation" | "source_lsn" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddColumn {
    /// The new column's name.
    pub name: String,
    /// What it holds.
    pub value: Computed,
}

/// An event's operation, as rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationName {
    /// Inserts.
    Insert,
    /// Updates.
    Update,
    /// Deletes.
    Delete,
    /// Snapshot reads.
    Read,
}

/// A validated action.
#[derive(Debug, Clone)]
pub enum Action {
    /// Keep these columns.
    Include(Vec<String>),
    /// Drop these columns.
    Exclude(Vec<String>),
    /// Rename a column.
    Rename(RenameColumn),
    /// Route the table.
    Route(Route),
    /// Mask a column.
    Mask(Mask),
    /// Convert a column.
    Convert(Convert),
    /// Keep matching rows (the text, already syntax-checked).
    Filter(String),
    /// Add a computed column.
    Add(AddColumn),
    /// Drop operations.
    DropOperations(HashSet<OperationName>),
}

impl Action {
    /// The configuration key of the action.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Include(_) => "include_columns",
            Action::Exclude(_) => "exclude_columns",
            Action::Rename(_) => "rename_column",
            Action::Route(_) => "route",
            Action::Mask(_) => "mask",
            Action::Convert(_) => "convert",
            Action::Filter(_) => "filter",
            Action::Add(_) => "add_column",
            Action::DropOperations(_) => "drop_operations",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Include(columns) | Action::Exclude(columns) => {
                write!(f, "{}", columns.join(", "))
            }
            Action::Rename(r) => write!(f, "{} -> {}", r.from, r.to),
            Action::Route(r) => write!(
                f,
                "database={} schema={} table={}",
                r.database.as_deref().unwrap_or("(same)"),
                r.schema.as_deref().unwrap_or("(same)"),
                r.table.as_deref().unwrap_or("(same)")
            ),
            Action::Mask(m) => write!(f, "{} by {:?}", m.column, m.method),
            Action::Convert(c) => write!(f, "{} to {:?}", c.column, c.to),
            Action::Filter(text) => f.write_str(text),
            Action::Add(a) => write!(f, "{} = {:?}", a.name, a.value),
            Action::DropOperations(ops) => {
                let mut names: Vec<String> = ops.iter().map(|o| format!("{o:?}")).collect();
                names.sort();
                write!(f, "{}", names.join(", "))
            }
        }
    }
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// The tables it applies to.
    pub tables: TablePattern,
    /// What it does.
    pub action: Action,
}

/// The rules in force: validated, in order, with the masking key.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// In order.
    pub rules: Arc<[Rule]>,
    /// Key of `hmac` masks.
    pub hmac_key: Option<HmacKey>,
}

impl RuleSet {
    /// Builds the rules from configuration; every error names its key (`rules[2].mask.length`).
    pub fn from_config(
        configs: &[RuleConfig],
        hmac_key: Option<HmacKey>,
    ) -> Result<RuleSet, Vec<FieldError>> {
        let mut errors = Vec::new();
        validate(configs, hmac_key.is_some(), &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let rules = configs
            .iter()
            .enumerate()
            .filter_map(|(index, config)| {
                let action = action_of(config)?;
                Some(Rule {
                    name: rule_name(index, config),
                    tables: TablePattern::new(&config.tables),
                    action,
                })
            })
            .collect();
        Ok(RuleSet { rules, hmac_key })
    }

    /// No rules: every event passes unchanged.
    pub fn empty() -> RuleSet {
        RuleSet {
            rules: Arc::from(Vec::new()),
            hmac_key: None,
        }
    }

    /// Whether any rule applies to `table` (else its events pass byte for byte).
    pub fn applies_to(&self, table: &TableId) -> bool {
        self.rules.iter().any(|rule| rule.tables.matches(table))
    }
}

fn rule_name(index: usize, config: &RuleConfig) -> String {
    config
        .name
        .clone()
        .unwrap_or_else(|| format!("rule-{}", index + 1))
}

fn action_of(config: &RuleConfig) -> Option<Action> {
    let actions = actions_of(config);
    match actions.as_slice() {
        [(_, action)] => Some(action.clone()),
        _ => None,
    }
}

fn actions_of(config: &RuleConfig) -> Vec<(&'static str, Action)> {
    let mut actions = Vec::new();
    let mut push = |key: &'static str, action: Option<Action>| {
        if let Some(action) = action {
            actions.push((key, action));
        }
    };
    push(
        "include_columns",
        config.include_columns.clone().map(Action::Include),
    );
    push(
        "exclude_columns",
        config.exclude_columns.clone().map(Action::Exclude),
    );
    push(
        "rename_column",
        config.rename_column.clone().map(Action::Rename),
    );
    push("route", config.route.clone().map(Action::Route));
    push("mask", config.mask.clone().map(Action::Mask));
    push("convert", config.convert.clone().map(Action::Convert));
    push("filter", config.filter.clone().map(Action::Filter));
    push("add_column", config.add_column.clone().map(Action::Add));
    push(
        "drop_operations",
        config
            .drop_operations
            .as_ref()
            .map(|ops| Action::DropOperations(ops.iter().copied().collect())),
    );
    actions
}

/// Checks rules as written; pushes one error per problem, keyed `rules[<index>].<field>`.
pub fn validate(configs: &[RuleConfig], has_hmac_key: bool, errors: &mut Vec<FieldError>) {
    let mut names = HashSet::new();
    for (index, config) in configs.iter().enumerate() {
        let key = |field: &str| {
            if field.is_empty() {
                format!("rules[{index}]")
            } else {
                format!("rules[{index}].{field}")
            }
        };
        let name = rule_name(index, config);
        if name.trim().is_empty() {
            errors.push(field_error(&key("name"), "must not be empty".to_owned()));
        } else if !names.insert(name.clone()) {
            errors.push(field_error(
                &key("name"),
                format!("`{name}` names two rules; names must be unique"),
            ));
        }
        if config.tables.trim().is_empty() {
            errors.push(field_error(
                &key("tables"),
                "expected a pattern `database.schema.table` (`*` for any)".to_owned(),
            ));
        }
        let actions = actions_of(config);
        match actions.as_slice() {
            [] => errors.push(field_error(
                &key(""),
                "has no action: give one of include_columns, exclude_columns, rename_column, \
                 route, mask, convert, filter, add_column, drop_operations"
                    .to_owned(),
            )),
            [(field, action)] => {
                if let Err(message) = check_action(action, has_hmac_key) {
                    errors.push(field_error(&key(field), message));
                }
            }
            several => {
                let keys: Vec<&str> = several.iter().map(|(k, _)| *k).collect();
                errors.push(field_error(
                    &key(""),
                    format!(
                        "has {} actions ({}); one rule holds exactly one action",
                        keys.len(),
                        keys.join(", ")
                    ),
                ));
            }
        }
    }
}

fn non_empty(what: &str, text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        Err(format!("{what} must not be empty"))
    } else {
        Ok(())
    }
}

fn check_action(action: &Action, has_hmac_key: bool) -> Result<(), String> {
    match action {
        Action::Include(columns) | Action::Exclude(columns) => {
            if columns.is_empty() {
                return Err("expected at least one column".to_owned());
            }
            columns
                .iter()
                .try_for_each(|c| non_empty("a column name", c))
        }
        Action::Rename(rename) => {
            non_empty("`from`", &rename.from)?;
            non_empty("`to`", &rename.to)
        }
        Action::Route(route) => check_route(route),
        Action::Mask(mask) => check_mask(mask, has_hmac_key),
        Action::Convert(convert) => check_convert(convert),
        Action::Filter(text) => expr::check_syntax(text).map_err(|e| e.to_string()),
        Action::Add(add) => non_empty("`name`", &add.name),
        Action::DropOperations(ops) if ops.is_empty() => {
            Err("expected at least one of insert, update, delete, read".to_owned())
        }
        Action::DropOperations(_) => Ok(()),
    }
}

fn check_route(route: &Route) -> Result<(), String> {
    let parts = [&route.database, &route.schema, &route.table];
    if parts.iter().all(|part| part.is_none()) {
        return Err("give at least one of `database`, `schema`, `table`".to_owned());
    }
    parts
        .iter()
        .filter_map(|part| part.as_deref())
        .try_for_each(|part| non_empty("a route part", part))
}

fn check_mask(mask: &Mask, has_hmac_key: bool) -> Result<(), String> {
    non_empty("`column`", &mask.column)?;
    match mask.method {
        MaskMethod::Hmac if !has_hmac_key => {
            Err("method `hmac` needs a key: add `[masking] hmac_key = \"vault:…\"`".to_owned())
        }
        MaskMethod::Truncate | MaskMethod::KeepLast if mask.length.is_none() => Err(format!(
            "method `{}` needs `length` (characters kept)",
            if mask.method == MaskMethod::Truncate {
                "truncate"
            } else {
                "keep_last"
            }
        )),
        MaskMethod::KeepLast
            if mask
                .replacement
                .as_ref()
                .is_some_and(|r| r.chars().count() != 1) =>
        {
            Err("`replacement` of `keep_last` is one character".to_owned())
        }
        _ => Ok(()),
    }
}

fn check_convert(convert: &Convert) -> Result<(), String> {
    non_empty("`column`", &convert.column)?;
    let on_error = convert.on_error.unwrap_or(OnError::DeadLetter);
    match convert.to {
        ConvertTo::Varchar => match convert.length {
            None | Some(0) => Err("`varchar` needs `length` of at least 1".to_owned()),
            Some(_) => Ok(()),
        },
        ConvertTo::Numeric => {
            let precision = convert.precision.unwrap_or(19);
            let scale = convert.scale.unwrap_or(4);
            if !(1..=38).contains(&precision) {
                Err(format!("`precision` {precision}: expected 1 to 38"))
            } else if scale > precision {
                Err(format!(
                    "`scale` {scale} is larger than `precision` {precision}"
                ))
            } else if on_error == OnError::Truncate {
                Err("`on_error = \"truncate\"` is for `varchar` only".to_owned())
            } else {
                Ok(())
            }
        }
        _ if on_error == OnError::Truncate => {
            Err("`on_error = \"truncate\"` is for `varchar` only".to_owned())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rules(toml_text: &str) -> Vec<RuleConfig> {
        #[derive(Deserialize)]
        struct File {
            rules: Vec<RuleConfig>,
        }
        let file: File = config::Config::builder()
            .add_source(config::File::from_str(toml_text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        file.rules
    }

    fn errors(toml_text: &str, has_key: bool) -> Vec<String> {
        let mut errors = Vec::new();
        validate(&rules(toml_text), has_key, &mut errors);
        errors
            .into_iter()
            .map(|e| format!("{}: {}", e.key, e.message))
            .collect()
    }

    #[test]
    fn a_valid_rule_set_builds_in_order_with_default_names() {
        let configs = rules(
            r#"
            [[rules]]
            tables = "shop.dbo.*"
            exclude_columns = ["secret"]
            [[rules]]
            name = "paid only"
            tables = "shop.dbo.orders"
            filter = "status = 'paid'"
            [[rules]]
            tables = "*"
            drop_operations = ["delete"]
            "#,
        );
        let set = RuleSet::from_config(&configs, None).unwrap();
        let names: Vec<&str> = set.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["rule-1", "paid only", "rule-3"]);
        assert_eq!(set.rules[1].action.kind(), "filter");
        let orders = TableId {
            database: "shop".into(),
            schema: "dbo".into(),
            table: "orders".into(),
        };
        assert!(set.applies_to(&orders));
        assert!(!RuleSet::empty().applies_to(&orders));
    }

    #[test]
    fn a_rule_needs_exactly_one_action() {
        let errors = errors(
            r#"
            [[rules]]
            tables = "a.b.c"
            [[rules]]
            tables = "a.b.c"
            filter = "x = 1"
            exclude_columns = ["y"]
            "#,
            false,
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("rules[0]: has no action"),
            "{errors:?}"
        );
        assert_eq!(
            errors[1],
            "rules[1]: has 2 actions (exclude_columns, filter); one rule holds exactly one action"
        );
    }

    #[test]
    fn bad_settings_are_named_by_key() {
        let errors = errors(
            r#"
            [[rules]]
            name = "twice"
            tables = ""
            exclude_columns = []
            [[rules]]
            name = "twice"
            tables = "a.b.c"
            mask = { column = "email", method = "hmac" }
            [[rules]]
            tables = "a.b.c"
            mask = { column = "card", method = "keep_last" }
            [[rules]]
            tables = "a.b.c"
            convert = { column = "name", to = "varchar" }
            [[rules]]
            tables = "a.b.c"
            convert = { column = "price", to = "numeric", precision = 5, scale = 7 }
            [[rules]]
            tables = "a.b.c"
            convert = { column = "id", to = "uuid", on_error = "truncate" }
            [[rules]]
            tables = "a.b.c"
            route = {}
            [[rules]]
            tables = "a.b.c"
            drop_operations = []
            "#,
            false,
        );
        let expected = [
            "rules[0].tables: expected a pattern `database.schema.table` (`*` for any)",
            "rules[0].exclude_columns: expected at least one column",
            "rules[1].name: `twice` names two rules; names must be unique",
            "rules[1].mask: method `hmac` needs a key: add `[masking] hmac_key = \"vault:…\"`",
            "rules[2].mask: method `keep_last` needs `length` (characters kept)",
            "rules[3].convert: `varchar` needs `length` of at least 1",
            "rules[4].convert: `scale` 7 is larger than `precision` 5",
            "rules[5].convert: `on_error = \"truncate\"` is for `varchar` only",
            "rules[6].route: give at least one of `database`, `schema`, `table`",
            "rules[7].drop_operations: expected at least one of insert, update, delete, read",
        ];
        assert_eq!(errors, expected);
    }

    #[test]
    fn a_filter_with_a_syntax_error_is_refused_with_its_position() {
        let errors = errors(
            r#"
            [[rules]]
            tables = "a.b.c"
            filter = "amount > AND x = 1"
            "#,
            false,
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("rules[0].filter: at character "),
            "{errors:?}"
        );
    }

    #[test]
    fn unknown_keys_and_actions_are_refused_by_name() {
        let bad = config::Config::builder()
            .add_source(config::File::from_str(
                "[[rules]]\ntables = \"a\"\nmask = { column = \"x\", method = \"scramble\" }",
                config::FileFormat::Toml,
            ))
            .build()
            .unwrap()
            .try_deserialize::<std::collections::HashMap<String, Vec<RuleConfig>>>();
        let message = bad.unwrap_err().to_string();
        assert!(message.contains("scramble"), "{message}");
    }
}

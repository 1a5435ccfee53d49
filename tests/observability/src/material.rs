//! The files of `observability/`: alert rules and dashboards, parsed as far as the checks need.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::{files_in, observability_dir, read};

/// `observability/rules/*.yml`, sorted.
///
/// # Panics
///
/// When the folder holds no rules file.
pub fn rule_files() -> Vec<PathBuf> {
    non_empty(
        files_in(&observability_dir().join("rules"), "yml"),
        "rules/*.yml",
    )
}

/// `observability/tests/*.yml` (promtool `test rules` files), sorted.
///
/// # Panics
///
/// When the folder holds no test file.
pub fn rule_test_files() -> Vec<PathBuf> {
    non_empty(
        files_in(&observability_dir().join("tests"), "yml"),
        "tests/*.yml",
    )
}

/// `observability/grafana/dashboards/*.json`, sorted.
///
/// # Panics
///
/// When the folder holds no dashboard.
pub fn dashboard_files() -> Vec<PathBuf> {
    non_empty(
        files_in(&observability_dir().join("grafana/dashboards"), "json"),
        "grafana/dashboards/*.json",
    )
}

fn non_empty(files: Vec<PathBuf>, what: &str) -> Vec<PathBuf> {
    assert!(!files.is_empty(), "no observability/{what}");
    files
}

/// One alerting rule of a rules file.
#[derive(Debug, Clone)]
pub struct AlertRule {
    /// The rules file.
    pub file: PathBuf,
    /// Its group's name.
    pub group: String,
    /// The alert's name (several rules may share one, e.g. per severity).
    pub name: String,
    /// The PromQL expression.
    pub expr: String,
    /// The rule's labels (`severity`, …).
    pub labels: BTreeMap<String, String>,
    /// The rule's annotations (`summary`, `description`, `runbook_url`, …), as templates.
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RulesFile {
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: Option<String>,
    expr: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Every alerting rule of [`rule_files`] (recording rules are left out).
///
/// # Panics
///
/// When a rules file does not parse as Prometheus rule groups.
pub fn alert_rules() -> Vec<AlertRule> {
    rule_files()
        .into_iter()
        .flat_map(|file| alerts_in(&file))
        .collect()
}

fn alerts_in(file: &Path) -> Vec<AlertRule> {
    let parsed: RulesFile = serde_yaml::from_str(&read(file))
        .unwrap_or_else(|e| panic!("{} is not a Prometheus rules file: {e}", file.display()));
    let mut alerts = Vec::new();
    for group in parsed.groups {
        for rule in group.rules {
            if let Some(name) = rule.alert {
                alerts.push(AlertRule {
                    file: file.to_path_buf(),
                    group: group.name.clone(),
                    name,
                    expr: rule.expr,
                    labels: rule.labels,
                    annotations: rule.annotations,
                });
            }
        }
    }
    alerts
}

/// Where a dashboard query is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuerySource {
    /// A panel's target (`panels[].targets[].expr`): PromQL with Grafana variables.
    Panel,
    /// A template variable's query (`templating.list[].query`), e.g. `label_values(…)`.
    Variable,
}

/// One query of a dashboard.
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    /// The dashboard's file.
    pub file: PathBuf,
    /// The dashboard's uid.
    pub dashboard_uid: String,
    /// The panel's title, or `variable <name>`.
    pub title: String,
    /// The query as written, Grafana variables included.
    pub expr: String,
    /// Panel target or template variable.
    pub source: QuerySource,
}

/// Every panel target and template-variable query of [`dashboard_files`] (panels inside
/// collapsed rows included).
///
/// # Panics
///
/// When a dashboard is not JSON.
pub fn dashboard_queries() -> Vec<DashboardQuery> {
    let mut queries = Vec::new();
    for file in dashboard_files() {
        let dashboard: Value = serde_json::from_str(&read(&file))
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
        let uid = dashboard["uid"].as_str().unwrap_or_default().to_owned();
        let mut add = |title: String, expr: &str, source| {
            queries.push(DashboardQuery {
                file: file.clone(),
                dashboard_uid: uid.clone(),
                title,
                expr: expr.to_owned(),
                source,
            });
        };
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or("(untitled panel)");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                    add(format!("panel {title}"), expr, QuerySource::Panel);
                }
            }
        }
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if variable["type"] != "query" {
                continue;
            }
            let query = &variable["query"];
            let expr = query.as_str().or_else(|| query["query"].as_str());
            if let Some(expr) = expr {
                let name = variable["name"].as_str().unwrap_or("?");
                add(format!("variable {name}"), expr, QuerySource::Variable);
            }
        }
    }
    queries
}

/// Every panel of a dashboard, those nested in rows included.
pub(crate) fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rules_file_has_alerts_with_expressions() {
        let alerts = alert_rules();
        assert!(
            alerts
                .iter()
                .any(|a| a.name == "CdcServiceDown" && a.expr.contains("up{"))
        );
        assert!(alerts.iter().all(|a| !a.expr.trim().is_empty()));
    }

    #[test]
    fn panels_in_collapsed_rows_and_variable_queries_are_found() {
        let dashboard: Value = serde_json::json!({
            "panels": [
                {"type": "row", "title": "r", "panels": [
                    {"title": "inner", "targets": [{"expr": "cdc_a"}]}
                ]},
                {"title": "outer", "targets": [{"expr": "cdc_b"}, {"expr": ""}]}
            ]
        });
        let titles: Vec<&str> = panels(&dashboard)
            .iter()
            .filter_map(|p| p["title"].as_str())
            .collect();
        assert_eq!(titles, ["r", "inner", "outer"]);
        let queries = dashboard_queries();
        assert!(
            queries
                .iter()
                .any(|q| q.source == QuerySource::Variable && q.expr.starts_with("label_values("))
        );
        assert!(queries.iter().any(|q| q.source == QuerySource::Panel));
    }
}

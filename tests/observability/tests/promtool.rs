//! The observability material checked with the real promtool, and against the repository: the
//! runbook links, the dashboards' structure and queries, and the metrics the services define.
//!
//! promtool comes from `make stack-up` (see `cdc_observability_tests::promtool`); without it
//! these tests fail with the command to run.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use cdc_observability_tests::{
    QuerySource, alert_rules, dashboard_files, dashboard_queries, github_anchors,
    grafana_to_promql, label_values_selector, metrics_used, observability_dir, promtool, repo_root,
    rule_files, rule_test_files, service_metrics,
};
use serde_json::Value;
use serde_yaml::Value as Yaml;

/// Runs promtool with `args` and fails the test, with promtool's output, unless it succeeds.
fn run_promtool<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let promtool = promtool();
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let output = Command::new(&promtool)
        .args(&args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "`{} {}` failed ({}):\n{stdout}\n{stderr}",
        promtool.display(),
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        output.status
    );
    format!("{stdout}{stderr}")
}

fn yaml(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn name(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_local_scrape_config_and_the_rules_it_loads_pass_promtool_check_config() {
    let config = observability_dir().join("prometheus.yml");
    assert_eq!(strings(&yaml(&config)["rule_files"]), ["rules/*.yml"]);
    let out = run_promtool([
        OsStr::new("check"),
        OsStr::new("config"),
        config.as_os_str(),
    ]);
    assert_checked_every_rules_file(&out);
}

/// The compose config loads `/etc/prometheus/rules/*.yml`, which exists only in the container.
/// promtool resolves rule_files relative to the config's folder and accepts a glob that
/// matches nothing, so the file is checked as it is, and once more as a copy in a temporary
/// folder whose rule_files points at this repository's rules (the folder compose mounts
/// there), so that the config and the rules it loads are checked together.
#[test]
fn the_compose_scrape_config_and_the_rules_it_loads_pass_promtool_check_config() {
    let config = observability_dir().join("compose/prometheus.yml");
    let mut parsed = yaml(&config);
    assert_eq!(
        strings(&parsed["rule_files"]),
        ["/etc/prometheus/rules/*.yml"]
    );
    run_promtool([
        OsStr::new("check"),
        OsStr::new("config"),
        config.as_os_str(),
    ]);

    let rules_glob = observability_dir().join("rules").join("*.yml");
    parsed["rule_files"] = Yaml::Sequence(vec![Yaml::String(rules_glob.display().to_string())]);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let copy = dir.path().join("prometheus.yml");
    let text = serde_yaml::to_string(&parsed).expect("the config serialises");
    std::fs::write(&copy, text).expect("the copy is written");
    let out = run_promtool([OsStr::new("check"), OsStr::new("config"), copy.as_os_str()]);
    assert_checked_every_rules_file(&out);
}

#[test]
fn the_compose_scrape_config_finds_every_replica_of_each_service_through_dns() {
    let config = yaml(&observability_dir().join("compose/prometheus.yml"));
    let expected = [
        ("extractor", 9101),
        ("transformer", 9102),
        ("loader", 9103),
        ("reconciler", 9104),
    ];
    let jobs = config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs");
    assert_eq!(jobs.len(), expected.len());
    for (service, port) in expected {
        let job = jobs
            .iter()
            .find(|j| j["job_name"].as_str() == Some(&format!("cdc-{service}")))
            .unwrap_or_else(|| panic!("no job cdc-{service}"));
        assert_eq!(
            job["metrics_path"].as_str(),
            Some("/metrics"),
            "cdc-{service}"
        );
        assert!(
            job.get("static_configs").is_none(),
            "cdc-{service} has static targets"
        );
        let sd = &job["dns_sd_configs"][0];
        assert_eq!(strings(&sd["names"]), [service], "cdc-{service}");
        assert_eq!(sd["type"].as_str(), Some("A"), "cdc-{service}");
        assert_eq!(sd["port"].as_u64(), Some(port), "cdc-{service}");
        let relabel = &job["relabel_configs"][0];
        assert_eq!(
            relabel["target_label"].as_str(),
            Some("service"),
            "cdc-{service}"
        );
        assert_eq!(
            relabel["replacement"].as_str(),
            Some(service),
            "cdc-{service}"
        );
    }
}

#[test]
fn both_scrape_configs_name_jobs_and_services_alike() {
    let jobs = |file: &str| -> BTreeSet<String> {
        let config = yaml(&observability_dir().join(file));
        config["scrape_configs"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|j| j["job_name"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(jobs("prometheus.yml"), jobs("compose/prometheus.yml"));
}

#[test]
fn every_rules_file_passes_promtool_check_rules() {
    for file in rule_files() {
        run_promtool([OsStr::new("check"), OsStr::new("rules"), file.as_os_str()]);
    }
}

#[test]
fn every_rule_unit_test_file_passes_promtool_test_rules() {
    for file in rule_test_files() {
        run_promtool([OsStr::new("test"), OsStr::new("rules"), file.as_os_str()]);
    }
}

/// Per alert name: how many unit-test cases expect it to fire, and how many expect it not to.
fn unit_test_cases() -> BTreeMap<String, (usize, usize)> {
    let mut cases: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for file in rule_test_files() {
        let tests = yaml(&file);
        for group in tests["tests"].as_sequence().into_iter().flatten() {
            for case in group["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = case["alertname"].as_str().unwrap_or_else(|| {
                    panic!("{}: an alert_rule_test without alertname", file.display())
                });
                let expected = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
                for alert in case["exp_alerts"].as_sequence().into_iter().flatten() {
                    assert_eq!(
                        alert["exp_labels"]["alertname"].as_str(),
                        Some(name),
                        "{}: an expected alert of {name} names another alert",
                        file.display()
                    );
                }
                let entry = cases.entry(name.to_owned()).or_default();
                if expected > 0 {
                    entry.0 += 1;
                } else {
                    entry.1 += 1;
                }
            }
        }
    }
    cases
}

#[test]
fn every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not() {
    let cases = unit_test_cases();
    let alerts: BTreeSet<String> = alert_rules().into_iter().map(|a| a.name).collect();
    let mut problems = Vec::new();
    for alert in &alerts {
        match cases.get(alert) {
            None => problems.push(format!("{alert}: no unit test")),
            Some((0, _)) => problems.push(format!("{alert}: no case where it fires")),
            Some((_, 0)) => problems.push(format!("{alert}: no case where it does not fire")),
            Some(_) => {}
        }
    }
    for tested in cases.keys().filter(|name| !alerts.contains(*name)) {
        problems.push(format!("{tested}: tested, but no rule defines it"));
    }
    assert!(
        problems.is_empty(),
        "in observability/tests/*.yml:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_rules_file_is_loaded_by_a_unit_test_file() {
    let mut loaded = BTreeSet::new();
    for file in rule_test_files() {
        let dir = file
            .parent()
            .expect("a test file has a folder")
            .to_path_buf();
        for rules in strings(&yaml(&file)["rule_files"]) {
            let path = dir.join(rules);
            let path = path.canonicalize().unwrap_or_else(|e| {
                panic!("{}: rule file {}: {e}", file.display(), path.display())
            });
            loaded.insert(path);
        }
    }
    for rules in rule_files() {
        let rules = rules.canonicalize().expect("a rules file exists");
        assert!(
            loaded.contains(&rules),
            "no unit test file loads {}",
            name(&rules)
        );
    }
}

#[test]
fn every_alert_has_a_severity_a_summary_a_description_and_a_runbook_link() {
    let mut problems = Vec::new();
    for alert in alert_rules() {
        let at = format!("{} {}", name(&alert.file), alert.name);
        match alert.labels.get("severity").map(String::as_str) {
            Some("warning" | "critical") => {}
            other => problems.push(format!("{at}: severity {other:?}, not warning or critical")),
        }
        for key in ["summary", "description", "runbook_url"] {
            if alert
                .annotations
                .get(key)
                .is_none_or(|v| v.trim().is_empty())
            {
                problems.push(format!("{at}: no annotations.{key}"));
            }
        }
        let link = alert
            .annotations
            .get("runbook_url")
            .map_or("", String::as_str);
        let expected = format!("docs/runbooks.md#{}", alert.name.to_lowercase());
        if link != expected {
            problems.push(format!("{at}: runbook_url {link:?}, expected {expected:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_runbook_link_points_at_a_section_of_docs_runbooks_md() {
    let runbooks = repo_root().join("docs/runbooks.md");
    let text = std::fs::read_to_string(&runbooks)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", runbooks.display()));
    let anchors = github_anchors(&text);
    let mut missing = Vec::new();
    for alert in alert_rules() {
        let link = alert
            .annotations
            .get("runbook_url")
            .cloned()
            .unwrap_or_default();
        let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
        if !repo_root().join(path).is_file() {
            missing.push(format!("{}: {link}: no file {path}", alert.name));
        } else if !anchors.contains(anchor) {
            missing.push(format!(
                "{}: {link}: no heading with anchor #{anchor}",
                alert.name
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "runbook links without a section (anchors there: {anchors:?}):\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_dashboard_parses_has_a_unique_uid_and_uses_the_prometheus_datasource() {
    let mut uids = BTreeMap::new();
    for file in dashboard_files() {
        let dashboard = json(&file);
        let uid = dashboard["uid"].as_str().unwrap_or_default().to_owned();
        assert!(!uid.is_empty(), "{}: no uid", name(&file));
        assert!(
            uid.len() <= 40,
            "{}: uid {uid} is over Grafana's 40 characters",
            name(&file)
        );
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned());
        assert_eq!(
            Some(uid.clone()),
            stem,
            "{}: uid and file name differ",
            name(&file)
        );
        if let Some(other) = uids.insert(uid.clone(), name(&file)) {
            panic!("uid {uid} is used by {other} and {}", name(&file));
        }
        assert!(
            dashboard["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{}: no title",
            name(&file)
        );
        assert!(
            dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{}: schemaVersion",
            name(&file)
        );
        let mut datasources = Vec::new();
        collect_datasources(&dashboard, &mut datasources);
        assert!(
            !datasources.is_empty(),
            "{}: no datasource at all",
            name(&file)
        );
        for datasource in datasources {
            assert_eq!(
                (datasource["type"].as_str(), datasource["uid"].as_str()),
                (Some("prometheus"), Some("prometheus")),
                "{}: datasource {datasource}",
                name(&file)
            );
        }
    }
    for expected in [
        "cdc-overview",
        "cdc-extractor",
        "cdc-transformer",
        "cdc-loader",
        "cdc-reconciler",
    ] {
        assert!(uids.contains_key(expected), "no dashboard {expected}");
    }
}

/// Every `datasource` value anywhere in a dashboard.
fn collect_datasources<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "datasource" {
                    out.push(inner);
                } else {
                    collect_datasources(inner, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_datasources(v, out)),
        _ => {}
    }
}

#[test]
fn every_dashboard_has_the_instance_and_table_variables_and_panels_with_queries() {
    for file in dashboard_files() {
        let dashboard = json(&file);
        let variables = dashboard["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for wanted in ["instance", "table"] {
            let variable = variables
                .iter()
                .find(|v| v["name"] == wanted)
                .unwrap_or_else(|| panic!("{}: no variable {wanted}", name(&file)));
            let query = variable["query"]["query"]
                .as_str()
                .or(variable["query"].as_str());
            assert!(
                query.is_some_and(|q| q.starts_with("label_values(")),
                "{}: variable {wanted} is not a label_values query",
                name(&file)
            );
        }
        let mut ids = BTreeSet::new();
        let mut panels = Vec::new();
        collect_panels(&dashboard["panels"], &mut panels);
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(!title.is_empty(), "{}: a panel without title", name(&file));
            assert!(
                ids.insert(panel["id"].as_u64()),
                "{}: panel id of {title} repeats",
                name(&file)
            );
            if panel["type"] != "row" {
                let targets = panel["targets"].as_array().map_or(0, Vec::len);
                assert!(targets > 0, "{}: panel {title} has no query", name(&file));
            }
        }
    }
}

fn collect_panels<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
    for panel in list.as_array().into_iter().flatten() {
        out.push(panel);
        collect_panels(&panel["panels"], out);
    }
}

/// Each panel query (and each `label_values` selector) with its Grafana variables replaced is
/// written as a recording rule into one temporary rules file, which promtool parses.
#[test]
fn every_dashboard_query_is_valid_promql() {
    let mut rules = Vec::new();
    let mut origin = Vec::new();
    for query in dashboard_queries() {
        let expr = match query.source {
            QuerySource::Panel => Some(query.expr.clone()),
            QuerySource::Variable => label_values_selector(&query.expr),
        };
        let Some(expr) = expr else { continue };
        let record = format!("dashboard_query_{}", rules.len());
        origin.push(format!(
            "{record}: {} {}: {}",
            name(&query.file),
            query.title,
            query.expr
        ));
        rules.push(serde_json::json!({ "record": record, "expr": grafana_to_promql(&expr) }));
    }
    assert!(!rules.is_empty(), "no dashboard query at all");
    let file = serde_json::json!({ "groups": [{ "name": "dashboards", "rules": rules }] });
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path: PathBuf = dir.path().join("dashboard_queries.yml");
    // JSON is YAML, and promtool reads YAML.
    std::fs::write(&path, file.to_string()).expect("the rules file is written");
    let output = Command::new(promtool())
        .args([OsStr::new("check"), OsStr::new("rules"), path.as_os_str()])
        .output()
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool refuses dashboard queries:\n{}{}\nqueries:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        origin.join("\n")
    );
}

/// A static check of names in the sources; the end-to-end tests check live scrapes as well.
#[test]
fn every_metric_the_rules_and_dashboards_use_is_defined_by_a_service() {
    let defined = service_metrics();
    let used = metrics_used();
    assert!(
        used.len() > 20,
        "suspiciously few metrics used: {:?}",
        used.keys()
    );
    let undefined: Vec<String> = used
        .iter()
        .filter(|(metric, _)| !defined.contains_key(*metric))
        .map(|(metric, places)| format!("{metric}, used by:\n    {}", places.join("\n    ")))
        .collect();
    assert!(
        undefined.is_empty(),
        "metrics no service defines (services/*/src/metrics.rs, libs/service-kit/src/metrics.rs; \
         histograms render as summaries, so there is no _bucket):\n{}",
        undefined.join("\n")
    );
}

#[test]
fn every_service_metric_appears_on_some_dashboard() {
    let on_dashboards: BTreeSet<String> = dashboard_queries()
        .iter()
        .flat_map(|q| cdc_observability_tests::metric_names_in_expr(&q.expr))
        .map(|name| {
            for suffix in ["_sum", "_count"] {
                if let Some(base) = name.strip_suffix(suffix) {
                    return base.to_owned();
                }
            }
            name
        })
        .collect();
    let missing: Vec<String> = service_metrics()
        .into_keys()
        .filter(|metric| !on_dashboards.contains(metric))
        .collect();
    assert!(
        missing.is_empty(),
        "service metrics that no dashboard shows: {missing:?}"
    );
}

#[test]
fn grafana_provisioning_points_at_the_dashboards_and_the_prometheus_datasource() {
    let provisioning = observability_dir().join("grafana/provisioning");
    let datasources = yaml(&provisioning.join("datasources/prometheus.yml"));
    let datasource = &datasources["datasources"][0];
    assert_eq!(datasource["type"].as_str(), Some("prometheus"));
    assert_eq!(datasource["uid"].as_str(), Some("prometheus"));
    assert_eq!(datasource["url"].as_str(), Some("http://prometheus:9090"));
    let dashboards = yaml(&provisioning.join("dashboards/cdc.yml"));
    let provider = &dashboards["providers"][0];
    assert_eq!(provider["type"].as_str(), Some("file"));
    assert_eq!(
        provider["options"]["path"].as_str(),
        Some("/var/lib/grafana/dashboards")
    );
}

/// promtool's `check config` output names each rules file it checked through the config.
fn assert_checked_every_rules_file(out: &str) {
    for rules in rule_files() {
        let file = rules.file_name().map(|f| f.to_string_lossy().into_owned());
        let file = file.unwrap_or_default();
        assert!(
            out.contains(&file),
            "check config did not check {file}:\n{out}"
        );
    }
}

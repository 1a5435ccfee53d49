//! The observability material in `observability/` (Prometheus scrape configs, alert rules and
//! their promtool unit tests, Grafana dashboards) as tests see it: where it is, the promtool
//! that checks it, and which metrics its rules and dashboards use.
//!
//! This crate's own tests (`tests/promtool.rs`) run the real promtool on all of it; the
//! end-to-end tests compare [`metrics_used`] with the running services' scrapes through
//! [`metric_names_in_scrape`].
//!
//! Everything here panics with a message saying what is wrong and what to run: it only serves
//! tests, where a missing tool or a broken file must fail loudly, never skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod markdown;
mod material;
mod promql;
mod scrape;
mod sources;

pub use markdown::github_anchors;
pub use material::{
    AlertRule, DashboardQuery, QuerySource, alert_rules, dashboard_files, dashboard_queries,
    rule_files, rule_test_files,
};
pub use promql::{grafana_to_promql, label_values_selector, metric_names_in_expr};
pub use scrape::metric_names_in_scrape;
pub use sources::{MetricKind, service_metrics};

/// The repository's root directory (two levels above this crate).
pub fn repo_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| {
            panic!(
                "{} is not two levels below the repository root",
                crate_dir.display()
            )
        })
}

/// `<repo>/observability`: scrape configs, `rules/`, `tests/`, `grafana/`.
pub fn observability_dir() -> PathBuf {
    repo_root().join("observability")
}

/// Path of Prometheus's promtool, from the local stack (`CDC_PROMTOOL` in the environment or
/// in `.stack/env`, which `make stack-up` writes; see [`cdc_test_harness::Stack`]).
///
/// # Panics
///
/// When the stack is not there or no promtool exists at that path, with the command that
/// installs it: tests that need promtool fail, they never skip.
pub fn promtool() -> PathBuf {
    let path = cdc_test_harness::Stack::get().promtool;
    assert!(
        path.is_file(),
        "promtool not found at {} (CDC_PROMTOOL, from the environment or .stack/env). Run \
         `make stack-up`: it installs promtool into .stack/bin and records it in .stack/env.",
        path.display()
    );
    path
}

/// Every `cdc_*` metric that an alert rule's expression or a dashboard's panel or template
/// query uses, mapped to where (file, then the alert's name or the panel's title).
///
/// Names are *base* names, comparable with [`metric_names_in_scrape`] as they are: `x_sum` and
/// `x_count` become `x` when the services define `x` as a histogram ([`service_metrics`]).
/// The services render histograms through metrics-exporter-prometheus with
/// `PrometheusBuilder::new()` and no buckets, that is as *summaries*: a scrape shows
/// `x{quantile="…"}`, `x_sum` and `x_count`, never `x_bucket`. So `x_bucket` is left as it is
/// and, since no scrape has it, fails any comparison, as it should. A caller checks
/// `metrics_used().keys()` ⊆ the union of [`metric_names_in_scrape`] over the services'
/// scrapes. `up` and other non-`cdc_` names are not included.
pub fn metrics_used() -> BTreeMap<String, Vec<String>> {
    let kinds = service_metrics();
    let root = repo_root();
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut note = |name: String, at: String| {
        let places = used.entry(base_name(&name, &kinds)).or_default();
        if !places.contains(&at) {
            places.push(at);
        }
    };
    for rule in alert_rules() {
        for name in metric_names_in_expr(&rule.expr) {
            note(
                name,
                format!("{}: alert {}", relative(&rule.file, &root), rule.name),
            );
        }
    }
    for query in dashboard_queries() {
        for name in metric_names_in_expr(&query.expr) {
            note(
                name,
                format!("{}: {}", relative(&query.file, &root), query.title),
            );
        }
    }
    used
}

/// `x` for `x_sum` / `x_count` of a histogram the services define; the name itself otherwise.
fn base_name(name: &str, kinds: &BTreeMap<String, MetricKind>) -> String {
    for suffix in ["_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && kinds.get(base) == Some(&MetricKind::Histogram)
        {
            return base.to_owned();
        }
    }
    name.to_owned()
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Lists `dir`'s files whose names end with `.<ext>`, sorted.
fn files_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path()
        })
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// The file's text.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_and_count_of_a_histogram_are_its_base_name_and_buckets_are_not() {
        let kinds = BTreeMap::from([
            ("cdc_loader_batch_rows".to_owned(), MetricKind::Histogram),
            ("cdc_loader_retries_total".to_owned(), MetricKind::Counter),
        ]);
        assert_eq!(
            base_name("cdc_loader_batch_rows_sum", &kinds),
            "cdc_loader_batch_rows"
        );
        assert_eq!(
            base_name("cdc_loader_batch_rows_count", &kinds),
            "cdc_loader_batch_rows"
        );
        assert_eq!(
            base_name("cdc_loader_batch_rows_bucket", &kinds),
            "cdc_loader_batch_rows_bucket"
        );
        assert_eq!(
            base_name("cdc_loader_retries_total", &kinds),
            "cdc_loader_retries_total"
        );
        assert_eq!(
            base_name("cdc_loader_unknown_count", &kinds),
            "cdc_loader_unknown_count"
        );
    }

    #[test]
    fn metrics_used_names_where_each_metric_is_used() {
        let used = metrics_used();
        let lag = &used["cdc_loader_lag_seconds"];
        assert!(
            lag.iter()
                .any(|at| at == "observability/rules/lag.yml: alert CdcLoaderLagHigh"),
            "{lag:?}"
        );
        assert!(
            lag.iter()
                .any(|at| at.starts_with("observability/grafana/dashboards/cdc-overview.json: ")),
            "{lag:?}"
        );
        assert!(
            used.contains_key("cdc_loader_batch_rows"),
            "histogram _sum/_count not folded"
        );
        assert!(
            !used.keys().any(|name| !name.starts_with("cdc_")),
            "{:?}",
            used.keys()
        );
    }
}

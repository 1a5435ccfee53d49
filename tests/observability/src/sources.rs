//! The metrics the services define, read statically from their sources.
//!
//! Only literal names are read: each service's `src/metrics.rs` defines its names as
//! `pub const NAME: &str = "cdc_<service>_…";` and describes them with
//! `metrics::describe_<kind>!(NAME, …)`; the service kit (`libs/service-kit/src/metrics.rs`)
//! describes the metrics every service has as `describe_<kind>!(metric_name(service, "<what>"),
//! …)`, which is `cdc_<service>_<what>` for each service named in a `ServiceSpec` literal in
//! `services/*/src/service.rs`. A name built any other way (`format!`, a computed `what`) is
//! not seen here; the end-to-end tests' live scrapes complement this check.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;

use crate::{read, repo_root};

/// How a service declares a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MetricKind {
    /// `describe_counter!`.
    Counter,
    /// `describe_gauge!`.
    Gauge,
    /// `describe_histogram!`: rendered as a summary (`x{quantile}`, `x_sum`, `x_count`).
    Histogram,
    /// A name constant that no `describe_*!` of its file mentions.
    Undescribed,
}

/// Every metric the services define, by full name, with its kind.
///
/// # Panics
///
/// When the sources are not where they are expected, or a service's name or metrics cannot be
/// read: the check would otherwise pass on nothing.
pub fn service_metrics() -> BTreeMap<String, MetricKind> {
    let root = repo_root();
    let services_dir = root.join("services");
    let mut services = Vec::new();
    let mut metrics = BTreeMap::new();
    let dirs = std::fs::read_dir(&services_dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", services_dir.display()));
    let mut dirs: Vec<_> = dirs
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("src/metrics.rs").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        services.push(service_name(&dir.join("src/service.rs")));
        metrics.extend(defined_in_service(&read(&dir.join("src/metrics.rs"))));
    }
    assert!(
        !services.is_empty(),
        "no services/*/src/metrics.rs under {}",
        root.display()
    );
    let kit = read(&root.join("libs/service-kit/src/metrics.rs"));
    for (what, kind) in defined_in_kit(&kit) {
        for service in &services {
            metrics.insert(format!("cdc_{service}_{what}"), kind);
        }
    }
    metrics
}

/// The `name` of the `ServiceSpec` literal in a service's `service.rs`.
fn service_name(path: &Path) -> String {
    let text = read(path);
    let pattern = regex(r#"ServiceSpec\s*\{[^}]*?\bname:\s*"([a-z0-9_]+)""#);
    pattern
        .captures(&text)
        .map(|c| c[1].to_owned())
        .unwrap_or_else(|| {
            panic!(
                "no `ServiceSpec {{ name: \"…\", … }}` in {}",
                path.display()
            )
        })
}

/// A service's `metrics.rs`: its name constants and how each is described.
fn defined_in_service(text: &str) -> BTreeMap<String, MetricKind> {
    let constant = regex(r#"pub const ([A-Z][A-Z0-9_]*): &str = "(cdc_[a-z0-9_]+)";"#);
    let describe = regex(r"describe_(counter|gauge|histogram)!\(\s*([A-Z][A-Z0-9_]*)\s*,");
    let kinds: BTreeMap<&str, MetricKind> = describe
        .captures_iter(text)
        .map(|c| (c.get(2).map_or("", |m| m.as_str()), kind(&c[1])))
        .collect();
    constant
        .captures_iter(text)
        .map(|c| {
            let kind = kinds.get(&c[1]).copied().unwrap_or(MetricKind::Undescribed);
            (c[2].to_owned(), kind)
        })
        .collect()
}

/// The kit's `metrics.rs`: the `<what>` of each `describe_*!(metric_name(service, "<what>"), …)`.
fn defined_in_kit(text: &str) -> Vec<(String, MetricKind)> {
    let describe = regex(
        r#"describe_(counter|gauge|histogram)!\(\s*metric_name\(\s*service\s*,\s*"([a-z0-9_]+)"\s*\)"#,
    );
    describe
        .captures_iter(text)
        .map(|c| (c[2].to_owned(), kind(&c[1])))
        .collect()
}

fn kind(word: &str) -> MetricKind {
    match word {
        "counter" => MetricKind::Counter,
        "gauge" => MetricKind::Gauge,
        _ => MetricKind::Histogram,
    }
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad pattern {pattern}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = r#"
/// Events applied.
pub const ROWS: &str = "cdc_loader_rows_applied_total";
/// Per batch.
pub const BATCH: &str = "cdc_loader_batch_rows";
/// Not described.
pub const ODD: &str = "cdc_loader_odd";
pub fn describe() {
    metrics::describe_counter!(ROWS, "Rows.");
    metrics::describe_histogram!(
        BATCH,
        metrics::Unit::Seconds,
        "Rows per batch."
    );
}
"#;

    #[test]
    fn a_services_constants_get_the_kind_they_are_described_with() {
        let defined = defined_in_service(SERVICE);
        assert_eq!(
            defined["cdc_loader_rows_applied_total"],
            MetricKind::Counter
        );
        assert_eq!(defined["cdc_loader_batch_rows"], MetricKind::Histogram);
        assert_eq!(defined["cdc_loader_odd"], MetricKind::Undescribed);
    }

    #[test]
    fn the_kits_metrics_are_named_per_service() {
        let kit = r#"metrics::describe_gauge!(
        metric_name(service, "build_info"),
        "Always 1."
    );"#;
        assert_eq!(
            defined_in_kit(kit),
            [("build_info".to_owned(), MetricKind::Gauge)]
        );
    }

    #[test]
    fn the_real_sources_define_the_documented_metrics() {
        let metrics = service_metrics();
        for (name, kind) in [
            ("cdc_extractor_source_lag_seconds", MetricKind::Gauge),
            ("cdc_transformer_dead_letters_total", MetricKind::Counter),
            ("cdc_loader_apply_duration_seconds", MetricKind::Histogram),
            ("cdc_reconciler_mismatched_rows", MetricKind::Gauge),
            ("cdc_reconciler_paused", MetricKind::Gauge),
            ("cdc_loader_rebalances_total", MetricKind::Counter),
        ] {
            assert_eq!(metrics.get(name), Some(&kind), "{name}");
        }
    }
}

//! Metric names in a Prometheus text exposition (what `/metrics` returns).

use std::collections::{BTreeMap, BTreeSet};

/// The base names of the metric families in a scrape, comparable with
/// [`crate::metrics_used`]: a sample's name, except that the `_sum`, `_count` and `_bucket`
/// series of a family declared `# TYPE x summary` or `# TYPE x histogram` count as `x` (a
/// summary's quantile samples are named `x` already). Families declared by a `# TYPE` line
/// but without samples are not included.
pub fn metric_names_in_scrape(text: &str) -> BTreeSet<String> {
    let mut types: BTreeMap<&str, &str> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(declaration) = line.strip_prefix("# TYPE ") {
            let mut words = declaration.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                types.insert(name, kind);
            }
        } else if !line.is_empty() && !line.starts_with('#') {
            let end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
            samples.push(&line[..end]);
        }
    }
    samples
        .into_iter()
        .filter(|name| !name.is_empty())
        .map(|name| {
            for suffix in ["_sum", "_count", "_bucket"] {
                if let Some(base) = name.strip_suffix(suffix)
                    && matches!(types.get(base), Some(&("summary" | "histogram")))
                {
                    return base.to_owned();
                }
            }
            name.to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As metrics-exporter-prometheus renders it: a counter, a gauge without description, a
    /// histogram rendered as a summary, and a real histogram.
    const SCRAPE: &str = r#"# HELP cdc_loader_rows_applied_total Change events applied to PostgreSQL, by table and operation.
# TYPE cdc_loader_rows_applied_total counter
cdc_loader_rows_applied_total{table="public.orders",operation="insert"} 50

# TYPE cdc_loader_paused gauge
cdc_loader_paused 0

# HELP cdc_loader_batch_rows Change events per applied batch.
# TYPE cdc_loader_batch_rows summary
cdc_loader_batch_rows{quantile="0"} 1
cdc_loader_batch_rows{quantile="0.99"} 50
cdc_loader_batch_rows_sum 51
cdc_loader_batch_rows_count 2

# TYPE other_seconds histogram
other_seconds_bucket{le="0.5"} 1
other_seconds_bucket{le="+Inf"} 1
other_seconds_sum 0.2
other_seconds_count 1
# TYPE declared_only counter
"#;

    #[test]
    fn families_are_named_by_their_base_names() {
        let names: Vec<String> = metric_names_in_scrape(SCRAPE).into_iter().collect();
        assert_eq!(
            names,
            [
                "cdc_loader_batch_rows",
                "cdc_loader_paused",
                "cdc_loader_rows_applied_total",
                "other_seconds"
            ]
        );
    }

    #[test]
    fn suffixes_of_untyped_or_counter_families_are_kept() {
        let names = metric_names_in_scrape("x_count 3\n# TYPE y counter\ny_sum 1\n");
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["x_count", "y_sum"]);
    }
}

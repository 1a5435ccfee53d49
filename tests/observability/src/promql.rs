//! Reading PromQL as far as the checks need: the metric names an expression names, Grafana's
//! template variables replaced so promtool can parse a panel's query, and the selector inside
//! a `label_values(…)` variable query.

use std::collections::BTreeSet;

/// Every `cdc_*` metric name in a PromQL expression (or in a Grafana variable query such as
/// `label_values(cdc_x{…}, table)`), outside string literals. Names are as written: `x_sum`
/// stays `x_sum` (see [`crate::metrics_used`] for base names). A name only matched through
/// `{__name__=~"…"}` is not seen.
pub fn metric_names_in_expr(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expr.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '"' | '\'' | '`' => skip_string(&mut chars, c),
            '#' => {
                // A comment runs to the end of the line.
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            c if is_name_start(c) => {
                let mut end = start + c.len_utf8();
                while let Some(&(at, c)) = chars.peek() {
                    if !is_name_char(c) {
                        break;
                    }
                    end = at + c.len_utf8();
                    chars.next();
                }
                let name = &expr[start..end];
                let after_dollar = expr[..start].ends_with('$') || expr[..start].ends_with("${");
                if name.starts_with("cdc_") && !after_dollar {
                    names.insert(name.to_owned());
                }
            }
            c if c.is_ascii_digit() => {
                // A number or a duration (`5m`, `1e3`): its letters are not a name.
                while chars
                    .peek()
                    .is_some_and(|&(_, c)| is_name_char(c) || c == '.')
                {
                    chars.next();
                }
            }
            _ => {}
        }
    }
    names
}

fn skip_string(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, quote: char) {
    while let Some((_, c)) = chars.next() {
        if c == '\\' && quote != '`' {
            chars.next();
        } else if c == quote {
            return;
        }
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// A Grafana query with its template variables replaced by values PromQL accepts, so that
/// promtool can check it: `$__rate_interval`, `$__interval` → `5m`, `$__range` → `1h`,
/// `$__range_s` / `$__interval_ms`… → a number, any other `$name`, `${name}`, `${name:fmt}`
/// or `[[name]]` → `.*` (dashboards use variables only inside regular-expression matchers,
/// such as `table=~"$table"`).
pub fn grafana_to_promql(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("${") {
            if let Some(end) = after.find('}') {
                let name = after[..end].split(':').next().unwrap_or_default();
                out.push_str(variable_value(name));
                rest = &after[end + 1..];
                continue;
            }
        } else if let Some(after) = rest.strip_prefix("[[") {
            if let Some(end) = after.find("]]") {
                let name = after[..end].split(':').next().unwrap_or_default();
                out.push_str(variable_value(name));
                rest = &after[end + 2..];
                continue;
            }
        } else if let Some(after) = rest.strip_prefix('$') {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len > 0 {
                out.push_str(variable_value(&after[..len]));
                rest = &after[len..];
                continue;
            }
        }
        let mut next = rest.chars();
        if let Some(c) = next.next() {
            out.push(c);
        }
        rest = next.as_str();
    }
    out
}

fn variable_value(name: &str) -> &'static str {
    match name {
        "__rate_interval" | "__interval" => "5m",
        "__range" => "1h",
        "__range_s" | "__interval_s" => "3600",
        "__range_ms" | "__interval_ms" => "3600000",
        _ => ".*",
    }
}

/// The series selector of a Grafana `label_values(<selector>, <label>)` variable query, which
/// is PromQL; `None` for `label_values(<label>)` and other forms, which are not.
pub fn label_values_selector(query: &str) -> Option<String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let mut depth = 0i32;
    let mut quote = None;
    let mut last_comma = None;
    let mut escaped = false;
    for (at, c) in inner.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth -= 1,
            ',' if depth == 0 => last_comma = Some(at),
            _ => {}
        }
    }
    let selector = inner[..last_comma?].trim();
    (!selector.is_empty()).then(|| selector.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        metric_names_in_expr(expr).into_iter().collect()
    }

    #[test]
    fn names_are_found_outside_strings_and_durations() {
        assert_eq!(
            names(
                r#"sum by (table) (rate(cdc_loader_rows_applied_total{table=~"cdc_not_a_metric", op!='cdc_x'}[5m]))
                   / on (table) cdc_loader_lag_seconds > 60 and up{job="cdc-loader"} == 0"#
            ),
            ["cdc_loader_lag_seconds", "cdc_loader_rows_applied_total"]
        );
    }

    #[test]
    fn names_in_a_label_values_query_and_with_suffixes_are_found_as_written() {
        assert_eq!(
            names(r#"label_values(cdc_extractor_events_total{instance=~"$instance"}, table)"#),
            ["cdc_extractor_events_total"]
        );
        assert_eq!(
            names("rate(cdc_x_seconds_sum[5m]) / rate(cdc_x_seconds_count[5m]) # cdc_comment"),
            ["cdc_x_seconds_count", "cdc_x_seconds_sum"]
        );
    }

    #[test]
    fn grafana_variables_become_values_promql_accepts() {
        assert_eq!(
            grafana_to_promql(
                r#"sum(rate(cdc_x_total{table=~"$table",instance=~"${instance}",t=~"[[t]]",u=~"${u:regex}"}[$__rate_interval])) * $__range_s"#
            ),
            r#"sum(rate(cdc_x_total{table=~".*",instance=~".*",t=~".*",u=~".*"}[5m])) * 3600"#
        );
        assert_eq!(
            grafana_to_promql(
                "increase(cdc_x_total[$__range]) + increase(cdc_x_total[$__interval])"
            ),
            "increase(cdc_x_total[1h]) + increase(cdc_x_total[5m])"
        );
        assert_eq!(grafana_to_promql("cdc_x > 1 $"), "cdc_x > 1 $");
    }

    #[test]
    fn the_selector_of_label_values_is_its_first_argument() {
        assert_eq!(
            label_values_selector(r#"label_values(up{job=~"a,b"}, instance)"#).as_deref(),
            Some(r#"up{job=~"a,b"}"#)
        );
        assert_eq!(
            label_values_selector("label_values(cdc_x_total, table)").as_deref(),
            Some("cdc_x_total")
        );
        assert_eq!(label_values_selector("label_values(table)"), None);
        assert_eq!(label_values_selector("query_result(up)"), None);
    }
}

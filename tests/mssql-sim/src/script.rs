//! T-SQL scripts as `sqlcmd` runs them: batches separated by `GO` lines.

/// The batches of `script`, split at lines holding only `GO` (any case), without the batches
/// that hold nothing but blank lines and `--` comments.
pub fn batches(script: &str) -> Vec<String> {
    let mut batches = vec![String::new()];
    for line in script.lines() {
        if line.trim().eq_ignore_ascii_case("go") {
            batches.push(String::new());
        } else if let Some(batch) = batches.last_mut() {
            batch.push_str(line);
            batch.push('\n');
        }
    }
    batches.retain(|batch| {
        batch
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim().starts_with("--"))
    });
    batches
}

#[cfg(test)]
mod tests {
    use super::batches;

    #[test]
    fn go_lines_split_batches_and_comment_only_batches_are_dropped() {
        let script =
            "-- header\nGO\nCREATE TABLE t (id int)\n  go  \n\nINSERT INTO t VALUES (1)\nGO\n";
        assert_eq!(
            batches(script),
            vec![
                "CREATE TABLE t (id int)\n".to_owned(),
                "\nINSERT INTO t VALUES (1)\n".to_owned()
            ]
        );
    }
}

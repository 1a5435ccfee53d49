//! Heading anchors of a Markdown file, as GitHub renders them.

use std::collections::{BTreeMap, BTreeSet};

/// The anchors GitHub gives the headings of `markdown` (ATX headings, `#` to `######`,
/// outside fenced code blocks): the text lower-cased, characters other than letters, digits,
/// spaces, `-` and `_` dropped, spaces turned into `-`; a repeated anchor gets `-1`, `-2`, ….
pub fn github_anchors(markdown: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut fence: Option<&str> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if let Some(open) = fence {
            if trimmed.starts_with(open) {
                fence = None;
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
            continue;
        }
        let Some(text) = heading_text(trimmed) else {
            continue;
        };
        let slug = slug(text);
        let count = seen.entry(slug.clone()).or_insert(0);
        let anchor = if *count == 0 {
            slug
        } else {
            format!("{slug}-{count}")
        };
        *count += 1;
        anchors.insert(anchor);
    }
    anchors
}

fn heading_text(line: &str) -> Option<&str> {
    let level = line.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    Some(rest.trim().trim_end_matches('#').trim_end())
}

fn slug(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_githubs_rules() {
        let md = "# Runbooks\n\n## CdcLoaderLagHigh\n\ntext\n\n```sh\n# not a heading\n```\n\n\
                  ### What to do: `grpcurl` & more!\n## Notes\n## Notes\n#nospace\n";
        let anchors: Vec<String> = github_anchors(md).into_iter().collect();
        assert_eq!(
            anchors,
            [
                "cdcloaderlaghigh",
                "notes",
                "notes-1",
                "runbooks",
                "what-to-do-grpcurl--more"
            ]
        );
    }
}

//! LIKE patterns, compiled once so that rows are matched without re-reading the pattern.

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Char(char),
    /// `_`: exactly one character.
    One,
    /// `%`: any run of characters, possibly empty.
    Many,
}

/// A compiled LIKE pattern: `%` and `_` wildcards, everything else literal and case-sensitive.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LikePattern {
    parts: Vec<Part>,
}

impl LikePattern {
    /// Compiles `pattern`; `escape` makes the character after it literal.
    pub(crate) fn compile(pattern: &str, escape: Option<char>) -> Result<LikePattern, String> {
        let mut parts = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let part = match c {
                _ if Some(c) == escape => match chars.next() {
                    Some(escaped) => Part::Char(escaped),
                    None => {
                        return Err(format!(
                            "the LIKE pattern ends with its escape character '{c}'"
                        ));
                    }
                },
                '%' => Part::Many,
                '_' => Part::One,
                _ => Part::Char(c),
            };
            // Runs of `%` match what one does; collapsing them keeps backtracking cheap.
            if !(part == Part::Many && parts.last() == Some(&Part::Many)) {
                parts.push(part);
            }
        }
        Ok(LikePattern { parts })
    }

    /// Whether the whole of `text` matches.
    ///
    /// Greedy matching that, on a mismatch, lets the most recent `%` swallow one more
    /// character: linear for the usual `prefix%` and `%infix%` patterns and never worse
    /// than pattern length × text length.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let (mut part, mut at) = (0, 0);
        let mut resume: Option<(usize, usize)> = None;
        loop {
            let next = char_at(text, at);
            match (self.parts.get(part), next) {
                (Some(Part::Many), _) => {
                    part += 1;
                    resume = Some((part, at));
                    continue;
                }
                (Some(Part::One), Some(c)) => {
                    part += 1;
                    at += c.len_utf8();
                    continue;
                }
                (Some(Part::Char(want)), Some(c)) if *want == c => {
                    part += 1;
                    at += c.len_utf8();
                    continue;
                }
                (None, None) => return true,
                _ => {}
            }
            let Some((resume_part, swallowed)) = resume else {
                return false;
            };
            let Some(c) = char_at(text, swallowed) else {
                return false;
            };
            let swallowed = swallowed + c.len_utf8();
            resume = Some((resume_part, swallowed));
            (part, at) = (resume_part, swallowed);
        }
    }
}

fn char_at(text: &str, at: usize) -> Option<char> {
    text.get(at..).and_then(|rest| rest.chars().next())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn like(pattern: &str, text: &str) -> bool {
        LikePattern::compile(pattern, Some('\\'))
            .unwrap()
            .matches(text)
    }

    #[test]
    fn wildcards() {
        assert!(like("op%", "open"));
        assert!(like("op%", "op"));
        assert!(!like("op%", "xop"));
        assert!(like("%en", "open"));
        assert!(like("%pe%", "open"));
        assert!(like("_pen", "open"));
        assert!(!like("_pen", "pen"));
        assert!(like("%", ""));
        assert!(like("", ""));
        assert!(!like("", "a"));
        assert!(like("a%b%c", "aXbYbZc"));
        assert!(!like("a%b%c", "aXbYbZ"));
        assert!(like("%a%%_", "bab"));
    }

    #[test]
    fn matching_is_by_character_and_case_sensitive() {
        assert!(like("Zo_", "Zoë"));
        assert!(like("%ë", "Zoë"));
        assert!(!like("zoë", "Zoë"));
    }

    #[test]
    fn escape_makes_wildcards_literal() {
        assert!(like("100\\%", "100%"));
        assert!(!like("100\\%", "1000"));
        assert!(like("a\\_b", "a_b"));
        assert!(!like("a\\_b", "axb"));
        assert_eq!(
            LikePattern::compile("ab\\", Some('\\')).unwrap_err(),
            "the LIKE pattern ends with its escape character '\\'"
        );
    }

    #[test]
    fn backtracking_stays_fast_on_adversarial_input() {
        let text = "a".repeat(2000);
        assert!(!like("%a%a%a%a%a%b", &text));
    }
}

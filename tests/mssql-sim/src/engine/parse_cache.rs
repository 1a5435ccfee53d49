//! Parsed parameterized batches, kept for reuse: SQL Server's plan cache for `sp_executesql`,
//! as far as a simulator needs one. A client sending the same parameterized text again and
//! again (a poll, a prepared multi-row INSERT) pays for parsing once. Only the syntax tree is
//! kept; names are resolved at every execution, so a table altered or dropped in between is
//! seen as it is now, as SQL Server recompiles a plan whose objects changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlparser::ast::Statement;

/// How many distinct texts are kept; the least recently used goes first.
const CAPACITY: usize = 256;
/// Longer texts are parsed every time: such batches are rarely sent twice, and keeping
/// them would cost more memory than parsing them costs time.
const MAX_TEXT_CHARS: usize = 256 * 1024;

/// The cache, shared by every session of an engine.
#[derive(Debug, Default)]
pub struct ParseCache {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_text: HashMap<Arc<str>, Entry>,
    /// Incremented at every use; an entry's stamp says when it was last used.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    statements: Arc<Vec<Statement>>,
    last_used: u64,
}

impl ParseCache {
    /// The statements of `text`, from the cache or from `parse` (whose success is kept).
    pub fn get_or_parse<E>(
        &self,
        text: &str,
        parse: impl FnOnce(&str) -> Result<Vec<Statement>, E>,
    ) -> Result<Arc<Vec<Statement>>, E> {
        if text.len() > MAX_TEXT_CHARS {
            return parse(text).map(Arc::new);
        }
        if let Some(found) = self.lookup(text) {
            return Ok(found);
        }
        // Parsed outside the lock: sessions parsing different texts do not wait on each other.
        let statements = Arc::new(parse(text)?);
        self.insert(text, Arc::clone(&statements));
        Ok(statements)
    }

    /// How many texts are kept.
    pub fn len(&self) -> usize {
        self.lock().by_text.len()
    }

    /// Whether no text is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(&self, text: &str) -> Option<Arc<Vec<Statement>>> {
        let mut entries = self.lock();
        entries.clock += 1;
        let now = entries.clock;
        entries.by_text.get_mut(text).map(|entry| {
            entry.last_used = now;
            Arc::clone(&entry.statements)
        })
    }

    fn insert(&self, text: &str, statements: Arc<Vec<Statement>>) {
        let mut entries = self.lock();
        if entries.by_text.len() >= CAPACITY && !entries.by_text.contains_key(text) {
            let oldest = entries
                .by_text
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(text, _)| Arc::clone(text));
            if let Some(oldest) = oldest {
                entries.by_text.remove(&oldest);
            }
        }
        entries.clock += 1;
        let last_used = entries.clock;
        entries.by_text.insert(
            Arc::from(text),
            Entry {
                statements,
                last_used,
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map is consistent after every operation on it, so a panic elsewhere while the
        // lock was held leaves nothing half done.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::MsSqlDialect;
    use sqlparser::parser::{Parser, ParserError};

    use super::*;

    fn parse(text: &str) -> Result<Vec<Statement>, ParserError> {
        Parser::parse_sql(&MsSqlDialect {}, text)
    }

    #[test]
    fn a_text_is_parsed_once_and_then_served_from_the_cache() {
        let cache = ParseCache::default();
        let mut parses = 0;
        for _ in 0..3 {
            let statements = cache
                .get_or_parse("SELECT @P1", |text| {
                    parses += 1;
                    parse(text)
                })
                .unwrap();
            assert_eq!(statements.len(), 1);
        }
        assert_eq!(parses, 1);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_failed_parse_is_not_kept() {
        let cache = ParseCache::default();
        assert!(cache.get_or_parse("SELEC 1", parse).is_err());
        assert!(cache.is_empty());
    }

    #[test]
    fn the_least_recently_used_text_goes_first_when_full() {
        let cache = ParseCache::default();
        for n in 0..CAPACITY {
            cache.get_or_parse(&format!("SELECT {n}"), parse).unwrap();
        }
        // Text 0 used again: text 1 is now the oldest.
        cache.get_or_parse("SELECT 0", parse).unwrap();
        cache.get_or_parse("SELECT -1", parse).unwrap();
        assert_eq!(cache.len(), CAPACITY);
        let mut reparsed = Vec::new();
        for text in ["SELECT 0", "SELECT 1"] {
            cache
                .get_or_parse(text, |t| {
                    reparsed.push(t.to_owned());
                    parse(t)
                })
                .unwrap();
        }
        assert_eq!(reparsed, ["SELECT 1"]);
    }

    #[test]
    fn a_long_text_is_parsed_every_time() {
        let cache = ParseCache::default();
        let long = format!("SELECT '{}'", "x".repeat(MAX_TEXT_CHARS));
        cache.get_or_parse(&long, parse).unwrap();
        assert!(cache.is_empty());
    }
}

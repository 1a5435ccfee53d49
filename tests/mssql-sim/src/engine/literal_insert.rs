//! A shortcut past `sqlparser` for the commonest large batch: multi-row INSERTs whose values
//! are all plain literals, between `BEGIN TRANSACTION` and `COMMIT`.
//!
//! A 1,000-row INSERT of six columns is some 6,000 literals. `sqlparser` tokenizes all of them
//! (a `String` for each, and a whitespace token after each comma), then clones each token again
//! while parsing: about a third of the simulator's CPU under a bulk load. Here the batch is cut
//! at its top-level semicolons; each INSERT's head (`INSERT INTO t (a, b) VALUES`) is still
//! parsed by `sqlparser`, with one placeholder row, and its rows are scanned here straight into
//! the same syntax tree. The shortcut is taken only when every statement of the batch is one
//! whose text cannot hold a top-level semicolon (transaction control, INSERT, UPDATE, DELETE)
//! and every INSERT's values scan cleanly; otherwise, and on any doubt, the batch goes to
//! `sqlparser` whole, so results and error messages are those of the full parser. A test
//! compares the trees.

use sqlparser::ast::{Expr, Parens, SetExpr, Statement, UnaryOperator, Value};
use sqlparser::dialect::Dialect;
use sqlparser::parser::Parser;

/// The batch's statements, or `None` when the shortcut does not apply (the caller then parses
/// the batch with `sqlparser`).
pub fn parse(dialect: &dyn Dialect, sql: &str) -> Option<Vec<Statement>> {
    let pieces = split_at_semicolons(sql)?;
    // Every statement's kind is checked before any is parsed, so a batch the shortcut does
    // not take costs no parsing twice.
    let kinds: Vec<Kind> = pieces
        .iter()
        .map(|piece| kind(piece))
        .collect::<Option<_>>()?;
    if !kinds.contains(&Kind::Insert) {
        return None;
    }
    let mut statements = Vec::with_capacity(pieces.len());
    for (piece, kind) in pieces.into_iter().zip(kinds) {
        match kind {
            Kind::Insert => statements.push(literal_insert(dialect, piece)?),
            Kind::Other => statements.extend(Parser::parse_sql(dialect, piece).ok()?),
        }
    }
    Some(statements)
}

/// What the shortcut does with a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An INSERT, its values scanned here.
    Insert,
    /// A statement with no top-level semicolon in it, parsed by `sqlparser` on its own.
    Other,
}

/// The statement's kind, or `None` when it may hold a top-level semicolon (or is unknown).
fn kind(piece: &str) -> Option<Kind> {
    let first = first_word(piece)?;
    if first.eq_ignore_ascii_case("INSERT") {
        return Some(Kind::Insert);
    }
    let other = match first.to_ascii_uppercase().as_str() {
        // `BEGIN` also starts blocks (`BEGIN … END`, `BEGIN TRY`), which hold semicolons.
        "BEGIN" => second_word(piece).is_some_and(|w| {
            w.eq_ignore_ascii_case("TRAN") || w.eq_ignore_ascii_case("TRANSACTION")
        }),
        "COMMIT" | "ROLLBACK" | "UPDATE" | "DELETE" => true,
        _ => false,
    };
    other.then_some(Kind::Other)
}

/// The batch cut after each top-level `;` (outside strings and quoted names), blank pieces
/// dropped; `None` when the batch has a comment or an unterminated quote.
fn split_at_semicolons(sql: &str) -> Option<Vec<&str>> {
    let bytes = sql.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < bytes.len() {
        if let Some(close) = closing_quote(bytes[at]) {
            at = end_of_quoted(bytes, at, close)?;
            continue;
        }
        match bytes[at] {
            b'-' if bytes.get(at + 1) == Some(&b'-') => return None,
            b'/' if bytes.get(at + 1) == Some(&b'*') => return None,
            b';' => {
                pieces.push(&sql[start..=at]);
                start = at + 1;
                at += 1;
            }
            _ => at += 1,
        }
    }
    pieces.push(&sql[start..]);
    pieces.retain(|piece| !piece.trim().trim_end_matches(';').trim().is_empty());
    Some(pieces)
}

/// The quote closing one opened by `byte`: strings, quoted names and bracketed names.
fn closing_quote(byte: u8) -> Option<u8> {
    match byte {
        b'\'' | b'"' => Some(byte),
        b'[' => Some(b']'),
        _ => None,
    }
}

/// The index just past the quote closing the one at `open` (a doubled closing quote is an
/// escaped one).
fn end_of_quoted(bytes: &[u8], open: usize, close: u8) -> Option<usize> {
    let mut at = open + 1;
    loop {
        if *bytes.get(at)? == close {
            if bytes.get(at + 1) == Some(&close) {
                at += 2;
                continue;
            }
            return Some(at + 1);
        }
        at += 1;
    }
}

fn first_word(text: &str) -> Option<&str> {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    (end > 0).then(|| &text[..end])
}

fn second_word(text: &str) -> Option<&str> {
    let first = first_word(text)?;
    let rest = &text.trim_start()[first.len()..];
    rest.starts_with(|c: char| c.is_ascii_whitespace())
        .then(|| first_word(rest))
        .flatten()
}

/// One `INSERT … VALUES (…), (…)` whose values are all literals: its head parsed with one
/// placeholder row, then the scanned rows put in its place.
fn literal_insert(dialect: &dyn Dialect, piece: &str) -> Option<Statement> {
    let values_end = end_of_values_keyword(piece)?;
    let rows = scan_rows(piece[values_end..].trim_end().trim_end_matches(';'))?;
    let head = format!("{} (NULL)", &piece[..values_end]);
    let mut parsed = Parser::parse_sql(dialect, &head).ok()?;
    let (Some(mut statement), None) = (parsed.pop(), parsed.pop()) else {
        return None;
    };
    let Statement::Insert(insert) = &mut statement else {
        return None;
    };
    let SetExpr::Values(values) = insert.source.as_mut()?.body.as_mut() else {
        return None;
    };
    if values.rows.len() != 1 {
        return None;
    }
    values.rows = rows;
    Some(statement)
}

/// Where the first top-level word `VALUES` of an INSERT ends.
fn end_of_values_keyword(piece: &str) -> Option<usize> {
    let bytes = piece.as_bytes();
    let mut at = 0;
    let mut depth = 0usize;
    while at < bytes.len() {
        if let Some(close) = closing_quote(bytes[at]) {
            at = end_of_quoted(bytes, at, close)?;
            continue;
        }
        match bytes[at] {
            b'(' => {
                depth += 1;
                at += 1;
            }
            b')' => {
                depth = depth.checked_sub(1)?;
                at += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'@' || c == b'#' => {
                let end = bytes[at..]
                    .iter()
                    .position(|b| {
                        !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'@' | b'#' | b'$'))
                    })
                    .map_or(bytes.len(), |n| at + n);
                if depth == 0 && piece[at..end].eq_ignore_ascii_case("VALUES") {
                    return Some(end);
                }
                at = end;
            }
            _ => at += 1,
        }
    }
    None
}

/// `(lit, …), (lit, …)` with nothing else after it; `None` at anything but a plain literal.
fn scan_rows(text: &str) -> Option<Vec<Parens<Vec<Expr>>>> {
    let mut scanner = Scanner {
        bytes: text.as_bytes(),
        text,
        at: 0,
    };
    let mut rows = Vec::new();
    loop {
        scanner.skip_whitespace();
        scanner.expect(b'(')?;
        let mut row = Vec::with_capacity(
            rows.last()
                .map_or(8, |r: &Parens<Vec<Expr>>| r.content.len()),
        );
        loop {
            scanner.skip_whitespace();
            row.push(scanner.literal()?);
            scanner.skip_whitespace();
            match scanner.next()? {
                b',' => continue,
                b')' => break,
                _ => return None,
            }
        }
        rows.push(Parens::with_empty_span(row));
        scanner.skip_whitespace();
        match scanner.next() {
            Some(b',') => continue,
            None => return Some(rows),
            Some(_) => return None,
        }
    }
}

struct Scanner<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
}

impl Scanner<'_> {
    fn skip_whitespace(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// A number (`12`, `12.50`, negated as `-12`), a string (`'a''b'`, `N'…'`) or `NULL`,
    /// as `sqlparser` reads it; `None` for anything else.
    fn literal(&mut self) -> Option<Expr> {
        let value = |value: Value| Expr::Value(value.with_empty_span());
        match *self.bytes.get(self.at)? {
            b'\'' => Some(value(Value::SingleQuotedString(self.string()?))),
            b'N' | b'n' if self.bytes.get(self.at + 1) == Some(&b'\'') => {
                self.at += 1;
                Some(value(Value::NationalStringLiteral(self.string()?)))
            }
            b'-' => {
                self.at += 1;
                Some(Expr::UnaryOp {
                    op: UnaryOperator::Minus,
                    expr: Box::new(value(self.number()?)),
                })
            }
            b'0'..=b'9' => Some(value(self.number()?)),
            _ => {
                let rest = &self.bytes[self.at..];
                let null = rest.len() >= 4
                    && rest[..4].eq_ignore_ascii_case(b"NULL")
                    && rest
                        .get(4)
                        .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'_');
                null.then(|| {
                    self.at += 4;
                    value(Value::Null)
                })
            }
        }
    }

    /// Digits with at most one `.` between digits, ended by whitespace, `,` or `)`.
    fn number(&mut self) -> Option<Value> {
        let start = self.at;
        let digits = |scanner: &mut Self| {
            let from = scanner.at;
            while scanner
                .bytes
                .get(scanner.at)
                .is_some_and(u8::is_ascii_digit)
            {
                scanner.at += 1;
            }
            scanner.at > from
        };
        if !digits(self) {
            return None;
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if !digits(self) {
                return None;
            }
        }
        let ends = self
            .bytes
            .get(self.at)
            .is_some_and(|b| b.is_ascii_whitespace() || matches!(b, b',' | b')'));
        ends.then(|| Value::Number(self.text[start..self.at].to_owned(), false))
    }

    /// A quoted string from its opening quote, `''` read as `'`.
    fn string(&mut self) -> Option<String> {
        let end = end_of_quoted(self.bytes, self.at, b'\'')?;
        let inner = &self.text[self.at + 1..end - 1];
        self.at = end;
        Some(if inner.contains('\'') {
            inner.replace("''", "'")
        } else {
            inner.to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::dialect::SimulatorDialect;
    use sqlparser::dialect::MsSqlDialect;

    /// Batches the shortcut takes: the benchmark's, the workload generator's, and literals of
    /// every kind it reads.
    const TAKEN: &[&str] = &[
        "BEGIN TRANSACTION; INSERT INTO dbo.bulk (id, customer, amount, placed_at, qty, version) VALUES (1, N'customer-1', 1.01, '2024-05-02 00:00:01.001', 1, 0), (2, N'customer-2', 2.02, '2024-05-03 00:00:02.002', 2, 0); COMMIT TRANSACTION;",
        "INSERT INTO dbo.events VALUES (1, N'kind-1', 12.50, '2024-02-29 12:00:00.1234567'), (-2, N'k''2', -0.01, NULL), (3, 'x', 0.5, '')",
        "BEGIN TRANSACTION;\nINSERT INTO [dbo].[odd;name] ([a b], \"c;d\") VALUES (1, 'semi;colon');\nUPDATE dbo.t SET a = 1 WHERE b = 'x;y';\nDELETE FROM dbo.t WHERE id IN (1, 2);\nCOMMIT;",
        "begin tran; insert into t (a) values (null),(NULL) , ( 7 ); commit tran",
        "INSERT INTO t (a, b) VALUES (N'', ''''), (n'it''s', 'ünïcødé ✓')",
        "INSERT t VALUES (1)",
        "INSERT INTO t (v) VALUES (1);;",
        "INSERT INTO t (a, b) VALUES (1, 2); ROLLBACK TRANSACTION;",
    ];

    /// Batches it leaves to `sqlparser`: expressions among the values, statements that may
    /// hold semicolons, comments, syntax errors.
    const LEFT: &[&str] = &[
        "INSERT INTO t VALUES (1 + 1)",
        "INSERT INTO t VALUES (GETDATE())",
        "INSERT INTO t VALUES (@p1, @p2)",
        "INSERT INTO t VALUES (1e5)",
        "INSERT INTO t VALUES (.5)",
        "INSERT INTO t VALUES (0x0A)",
        "INSERT INTO t VALUES (NULLIF(1, 1))",
        "INSERT INTO t SELECT 1",
        "INSERT INTO t VALUES (1, 'a'",
        "INSERT INTO t VALUES (1 'a')",
        "INSERT INTO t VALUES (1) -- a comment",
        "INSERT INTO t VALUES (1) /* a comment */",
        "INSERT INTO t VALUES ('unterminated)",
        "SELECT 1; INSERT INTO t VALUES (1)",
        "BEGIN INSERT INTO t VALUES (1); END",
        "BEGIN TRANSACTION; COMMIT;",
        "UPDATE t SET a = 1",
    ];

    fn sqlparser(batch: &str) -> Vec<Statement> {
        Parser::parse_sql(&MsSqlDialect {}, batch).unwrap_or_else(|e| panic!("{batch}: {e}"))
    }

    #[test]
    fn the_shortcut_builds_the_syntax_tree_of_the_ms_sql_dialect() {
        for batch in TAKEN {
            let ours = parse(&SimulatorDialect::default(), batch)
                .unwrap_or_else(|| panic!("the shortcut did not take {batch}"));
            assert_eq!(ours, sqlparser(batch), "{batch}");
        }
    }

    #[test]
    fn anything_but_literal_inserts_and_plain_statements_goes_to_sqlparser() {
        for batch in LEFT {
            assert_eq!(
                parse(&SimulatorDialect::default(), batch),
                None,
                "the shortcut took {batch}"
            );
        }
    }

    #[test]
    fn a_thousand_row_insert_reads_as_sqlparser_reads_it() {
        let rows: Vec<String> = (0..1_000)
            .map(|i| {
                format!(
                    "({i}, N'c-{i}', {i}.{:02}, '2024-05-01', -{i}, NULL)",
                    i % 100
                )
            })
            .collect();
        let batch = format!(
            "BEGIN TRANSACTION; INSERT INTO dbo.bulk (id, c, a, p, q, v) VALUES {}; COMMIT TRANSACTION;",
            rows.join(", ")
        );
        let ours = parse(&SimulatorDialect::default(), &batch).expect("the shortcut applies");
        assert_eq!(ours, sqlparser(&batch));
    }
}

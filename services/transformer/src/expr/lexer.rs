//! Splits filter text into tokens.
//!
//! Positions count characters, not bytes: operators read an error's position against the text
//! they typed, which may hold non-ASCII strings and column names.

use super::ExprError;

/// A reserved word, matched case-insensitively as SQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    And,
    Or,
    Not,
    Is,
    Null,
    In,
    Between,
    Like,
    True,
    False,
}

const KEYWORDS: [Keyword; 10] = [
    Keyword::And,
    Keyword::Or,
    Keyword::Not,
    Keyword::Is,
    Keyword::Null,
    Keyword::In,
    Keyword::Between,
    Keyword::Like,
    Keyword::True,
    Keyword::False,
];

impl Keyword {
    /// The keyword as messages spell it.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Keyword::And => "AND",
            Keyword::Or => "OR",
            Keyword::Not => "NOT",
            Keyword::Is => "IS",
            Keyword::Null => "NULL",
            Keyword::In => "IN",
            Keyword::Between => "BETWEEN",
            Keyword::Like => "LIKE",
            Keyword::True => "TRUE",
            Keyword::False => "FALSE",
        }
    }

    /// The keyword spelled `word` in any case, if it is one.
    pub(crate) fn lookup(word: &str) -> Option<Keyword> {
        KEYWORDS
            .into_iter()
            .find(|keyword| keyword.text().eq_ignore_ascii_case(word))
    }
}

/// Operators and punctuation. `!=` and `<>` stay apart so messages echo what was typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Punct {
    LParen,
    RParen,
    Comma,
    Eq,
    BangEq,
    LtGt,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
}

impl Punct {
    /// The punctuation as typed.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Punct::LParen => "(",
            Punct::RParen => ")",
            Punct::Comma => ",",
            Punct::Eq => "=",
            Punct::BangEq => "!=",
            Punct::LtGt => "<>",
            Punct::Lt => "<",
            Punct::Le => "<=",
            Punct::Gt => ">",
            Punct::Ge => ">=",
            Punct::Plus => "+",
            Punct::Minus => "-",
            Punct::Star => "*",
            Punct::Slash => "/",
            Punct::Percent => "%",
        }
    }
}

/// What a token is; literals keep what the parser and checker need.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A number literal as written (its shape already validated).
    Number(String),
    /// A string literal, quotes removed and `''` unescaped.
    Str(String),
    /// A bare column name.
    Ident(String),
    /// A `"quoted"` or `[bracketed]` column name, unescaped.
    Quoted(String),
    Keyword(Keyword),
    Punct(Punct),
    End,
}

impl Tok {
    /// How messages name the token.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Number(text) => format!("number {text}"),
            Tok::Str(text) => format!("string {}", quote_string(text)),
            Tok::Ident(name) => format!("column {name}"),
            Tok::Quoted(name) => format!("column {}", quote_name(name)),
            Tok::Keyword(keyword) => keyword.text().to_owned(),
            Tok::Punct(punct) => format!("'{}'", punct.text()),
            Tok::End => "end of input".to_owned(),
        }
    }
}

/// A token and its 1-based character position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: usize,
}

/// `text` as a SQL string literal.
pub(crate) fn quote_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `name` as a double-quoted column name.
pub(crate) fn quote_name(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The tokens of `text`, ending with [`Tok::End`] positioned one past the last character.
pub(crate) fn lex(text: &str) -> Result<Vec<Token>, ExprError> {
    let mut lexer = Lexer {
        chars: text.chars().collect(),
        at: 0,
    };
    let mut tokens = Vec::new();
    loop {
        while lexer.peek().is_some_and(char::is_whitespace) {
            lexer.at += 1;
        }
        let pos = lexer.at + 1;
        let Some(c) = lexer.peek() else {
            tokens.push(Token { tok: Tok::End, pos });
            return Ok(tokens);
        };
        let tok = lexer.token(c)?;
        tokens.push(Token { tok, pos });
    }
}

struct Lexer {
    chars: Vec<char>,
    at: usize,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn error(&self, message: impl Into<String>) -> ExprError {
        ExprError::new(self.at + 1, message)
    }

    fn token(&mut self, c: char) -> Result<Tok, ExprError> {
        let starts_number =
            c.is_ascii_digit() || (c == '.' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit()));
        match c {
            '\'' => self
                .delimited('\'', "unterminated string literal")
                .map(Tok::Str),
            '"' => self.quoted_name('"'),
            '[' => self.quoted_name(']'),
            _ if starts_number => self.number(),
            _ if c.is_ascii_alphabetic() || c == '_' => Ok(self.word()),
            _ => self.punct(c).map(Tok::Punct),
        }
    }

    /// Text up to the closing `close`, where a doubled `close` stands for itself; the opening
    /// character is at the cursor.
    fn delimited(&mut self, close: char, unterminated: &str) -> Result<String, ExprError> {
        let open = self.error(unterminated);
        self.at += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(open),
                Some(c) if c == close && self.peek_at(1) == Some(close) => {
                    text.push(close);
                    self.at += 2;
                }
                Some(c) if c == close => {
                    self.at += 1;
                    return Ok(text);
                }
                Some(c) => {
                    text.push(c);
                    self.at += 1;
                }
            }
        }
    }

    fn quoted_name(&mut self, close: char) -> Result<Tok, ExprError> {
        let start = self.at + 1;
        let name = self.delimited(close, "unterminated quoted column name")?;
        if name.is_empty() {
            return Err(ExprError::new(start, "empty column name"));
        }
        Ok(Tok::Quoted(name))
    }

    /// A number runs on through letters so that `12abc` is one bad number, not `12` then `abc`.
    fn number(&mut self) -> Result<Tok, ExprError> {
        let start = self.at;
        while let Some(c) = self.peek() {
            let exponent_sign = (c == '+' || c == '-')
                && matches!(self.chars.get(self.at.wrapping_sub(1)), Some('e' | 'E'));
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || exponent_sign {
                self.at += 1;
            } else {
                break;
            }
        }
        let text: String = self.chars[start..self.at].iter().collect();
        if is_number(&text) {
            Ok(Tok::Number(text))
        } else {
            Err(ExprError::new(start + 1, format!("invalid number {text}")))
        }
    }

    fn word(&mut self) -> Tok {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.at += 1;
        }
        let word: String = self.chars[start..self.at].iter().collect();
        Keyword::lookup(&word).map_or(Tok::Ident(word), Tok::Keyword)
    }

    fn punct(&mut self, c: char) -> Result<Punct, ExprError> {
        let next = self.peek_at(1);
        let (punct, width) = match (c, next) {
            ('<', Some('=')) => (Punct::Le, 2),
            ('<', Some('>')) => (Punct::LtGt, 2),
            ('>', Some('=')) => (Punct::Ge, 2),
            ('!', Some('=')) => (Punct::BangEq, 2),
            ('(', _) => (Punct::LParen, 1),
            (')', _) => (Punct::RParen, 1),
            (',', _) => (Punct::Comma, 1),
            ('=', _) => (Punct::Eq, 1),
            ('<', _) => (Punct::Lt, 1),
            ('>', _) => (Punct::Gt, 1),
            ('+', _) => (Punct::Plus, 1),
            ('-', _) => (Punct::Minus, 1),
            ('*', _) => (Punct::Star, 1),
            ('/', _) => (Punct::Slash, 1),
            ('%', _) => (Punct::Percent, 1),
            _ => return Err(self.error(unexpected_character(c))),
        };
        self.at += width;
        Ok(punct)
    }
}

fn unexpected_character(c: char) -> String {
    if c.is_alphabetic() {
        format!(
            "unexpected character '{c}' (write column names that are not plain ASCII in double quotes or brackets)"
        )
    } else if c.is_control() {
        format!("unexpected control character U+{:04X}", u32::from(c))
    } else {
        format!("unexpected character '{c}'")
    }
}

/// `digits[.digits]` or `.digits`, then optionally `e[+|-]digits`.
fn is_number(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok =
        !(whole.is_empty() && fraction.is_empty()) && digits(whole) && digits(fraction);
    let exponent_ok = exponent.is_none_or(|e| {
        let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
        !unsigned.is_empty() && digits(unsigned)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        lex(text).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn keywords_fold_case_and_identifiers_do_not() {
        assert_eq!(
            toks("and Or nOt Status"),
            vec![
                Tok::Keyword(Keyword::And),
                Tok::Keyword(Keyword::Or),
                Tok::Keyword(Keyword::Not),
                Tok::Ident("Status".into()),
                Tok::End
            ]
        );
    }

    #[test]
    fn strings_and_quoted_names_unescape_their_doubled_delimiter() {
        assert_eq!(toks("'it''s'"), vec![Tok::Str("it's".into()), Tok::End]);
        assert_eq!(
            toks("\"a\"\"b\""),
            vec![Tok::Quoted("a\"b".into()), Tok::End]
        );
        assert_eq!(
            toks("[a]]b c]"),
            vec![Tok::Quoted("a]b c".into()), Tok::End]
        );
    }

    #[test]
    fn numbers_keep_their_text() {
        assert_eq!(
            toks("12 12.50 .5 1e3 2E-2"),
            ["12", "12.50", ".5", "1e3", "2E-2"]
                .map(|n| Tok::Number(n.into()))
                .into_iter()
                .chain([Tok::End])
                .collect::<Vec<_>>()
        );
        assert_eq!(
            toks("1-2"),
            vec![
                Tok::Number("1".into()),
                Tok::Punct(Punct::Minus),
                Tok::Number("2".into()),
                Tok::End
            ]
        );
    }

    #[test]
    fn positions_count_characters() {
        let tokens = lex("'é' = x").unwrap();
        assert_eq!(
            tokens.iter().map(|t| t.pos).collect::<Vec<_>>(),
            [1, 5, 7, 8]
        );
    }

    #[test]
    fn two_character_operators() {
        assert_eq!(
            toks("<= <> >= != < >"),
            [
                Punct::Le,
                Punct::LtGt,
                Punct::Ge,
                Punct::BangEq,
                Punct::Lt,
                Punct::Gt
            ]
            .map(Tok::Punct)
            .into_iter()
            .chain([Tok::End])
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn lexical_errors_name_the_problem() {
        let error = |text: &str| lex(text).unwrap_err().to_string();
        assert_eq!(
            error("a = 'x"),
            "at character 5: unterminated string literal"
        );
        assert_eq!(
            error("\"Order Total"),
            "at character 1: unterminated quoted column name"
        );
        assert_eq!(error("[] = 1"), "at character 1: empty column name");
        assert_eq!(error("a = 12abc"), "at character 5: invalid number 12abc");
        assert_eq!(error("a = 1.2.3"), "at character 5: invalid number 1.2.3");
        assert_eq!(error("a # 1"), "at character 3: unexpected character '#'");
        assert_eq!(error("a ! 1"), "at character 3: unexpected character '!'");
        assert!(error("é = 1").starts_with("at character 1: unexpected character 'é' (write"));
    }
}

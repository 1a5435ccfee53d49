//! Collations, as far as they change results: how `char`/`varchar` text is stored (code page
//! 1252 or, for a `_UTF8` collation, UTF-8), and how strings compare (case-insensitive,
//! case-sensitive or binary). SQL Server keeps `varchar` bytes in the code page of the
//! expression's collation, so `CAST(… AS varbinary)`, `DATALENGTH` and `HASHBYTES` of the same
//! text differ between a `_UTF8` collation and a code-page one.
//!
//! Values of character types are held as Rust strings; a `varchar` in code page 1252 only ever
//! holds characters that code page has (others became `?` on the way in, as SQL Server's
//! `WideCharToMultiByte` conversion makes them), so its bytes are recovered exactly.

use super::error::{self, SqlError};

/// How `char`/`varchar` text is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePage {
    /// Windows-1252, the code page of the `Latin1_General` collations.
    Cp1252,
    /// UTF-8 (a `_UTF8` collation, SQL Server 2019 and later).
    Utf8,
}

/// How strings compare under a collation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folding {
    /// `_CI_`: case-insensitive.
    CaseInsensitive,
    /// `_CS_`: case-sensitive.
    CaseSensitive,
    /// `_BIN`/`_BIN2`: by code point.
    Binary,
}

/// A collation the simulator knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collation {
    /// The name as written (SQL Server names compare case-insensitively).
    pub name: String,
    /// Storage of `char`/`varchar`.
    pub code_page: CodePage,
    /// Comparison.
    pub folding: Folding,
    /// `_SC` (or `_UTF8`): nvarchar functions count a supplementary character as one
    /// character, not as its two UTF-16 code units.
    pub supplementary: bool,
}

/// The name of the server's (and every database's) default collation.
pub const DEFAULT_NAME: &str = "SQL_Latin1_General_CP1_CI_AS";

impl Collation {
    /// The server default, `SQL_Latin1_General_CP1_CI_AS` (what the login's ENVCHANGE and every
    /// column's TYPE_INFO announce).
    pub fn server_default() -> Collation {
        Collation {
            name: DEFAULT_NAME.to_owned(),
            code_page: CodePage::Cp1252,
            folding: Folding::CaseInsensitive,
            supplementary: false,
        }
    }

    /// The collation `name`: the `Latin1_General` Windows collations (any version, `_CI`/`_CS`,
    /// `_AI`/`_AS`, `_KS`, `_WS`, `_SC`, `_BIN`, `_BIN2`, and `_UTF8` from version 100) and the
    /// `SQL_Latin1_General_CP1_*` SQL collations. A malformed Latin1 name is SQL Server's error
    /// 448; a name from another family is valid in SQL Server but not simulated (50000).
    pub fn parse(name: &str) -> Result<Collation, SqlError> {
        let upper = name.to_ascii_uppercase();
        let invalid = || invalid_collation(name);
        let (rest, sql_collation) = if let Some(rest) = upper.strip_prefix("SQL_LATIN1_GENERAL_") {
            let Some(rest) = rest.strip_prefix("CP1_") else {
                return Err(error::not_implemented(&format!("the collation {name}")));
            };
            (rest, true)
        } else if let Some(rest) = upper.strip_prefix("LATIN1_GENERAL_") {
            (rest, false)
        } else {
            return Err(error::not_implemented(&format!("the collation {name}")));
        };
        let mut parts: Vec<&str> = rest.split('_').collect();
        let version = match parts.first() {
            Some(v) if !sql_collation && v.chars().all(|c| c.is_ascii_digit()) => {
                let version: u32 = v.parse().map_err(|_| invalid())?;
                if version != 90 && version != 100 {
                    return Err(invalid());
                }
                parts.remove(0);
                version
            }
            _ => 80,
        };
        let utf8 = parts.last() == Some(&"UTF8");
        if utf8 {
            // UTF-8 needs a version-100 Windows collation (SQL collations have none).
            if sql_collation || version < 100 {
                return Err(invalid());
            }
            parts.pop();
        }
        let supplementary = utf8 || parts.contains(&"SC");
        let folding = match parts.as_slice() {
            ["BIN" | "BIN2"] if !sql_collation => Folding::Binary,
            [case, accent, flags @ ..] => {
                let folding = match *case {
                    "CI" => Folding::CaseInsensitive,
                    "CS" => Folding::CaseSensitive,
                    _ => return Err(invalid()),
                };
                if !matches!(*accent, "AI" | "AS") {
                    return Err(invalid());
                }
                let allowed: &[&str] = if sql_collation {
                    &[]
                } else {
                    &["KS", "WS", "SC"]
                };
                if !flags.iter().all(|f| allowed.contains(f)) {
                    return Err(invalid());
                }
                folding
            }
            _ => return Err(invalid()),
        };
        Ok(Collation {
            name: name.to_owned(),
            code_page: if utf8 {
                CodePage::Utf8
            } else {
                CodePage::Cp1252
            },
            folding,
            supplementary,
        })
    }

    /// Whether two collations are the same one.
    pub fn same(&self, other: &Collation) -> bool {
        self.name.eq_ignore_ascii_case(&other.name)
    }
}

/// 448: a collation name SQL Server does not have.
pub fn invalid_collation(name: &str) -> SqlError {
    crate::tds::token::ServerMessage {
        number: 448,
        state: 2,
        class: 16,
        text: format!("Invalid collation '{name}'."),
    }
}

/// Unicode characters of bytes 0x80..=0x9F in Windows-1252 (the five bytes the code page
/// leaves undefined map to the C1 controls of the same value, as Windows converts them).
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}',
    '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

/// The Windows-1252 byte of `c`, if the code page has it.
pub fn cp1252_byte(c: char) -> Option<u8> {
    let code = u32::from(c);
    if code < 0x80 || (0xA0..=0xFF).contains(&code) {
        return u8::try_from(code).ok();
    }
    CP1252_HIGH
        .iter()
        .position(|h| *h == c)
        .and_then(|i| u8::try_from(0x80 + i).ok())
}

/// The character of a Windows-1252 byte.
pub fn cp1252_char(byte: u8) -> char {
    if (0x80..0xA0).contains(&byte) {
        CP1252_HIGH[usize::from(byte - 0x80)]
    } else {
        char::from(byte)
    }
}

/// `text` as it is once stored in `code_page`: every character Windows-1252 lacks becomes `?`
/// (one per UTF-16 code unit, so an emoji becomes `??`, as SQL Server stores it).
pub fn to_code_page(text: String, code_page: CodePage) -> String {
    if code_page == CodePage::Utf8
        || text.is_ascii()
        || text.chars().all(|c| cp1252_byte(c).is_some())
    {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if cp1252_byte(c).is_some() {
            out.push(c);
        } else {
            for _ in 0..c.len_utf16() {
                out.push('?');
            }
        }
    }
    out
}

/// The stored bytes of `char`/`varchar` text in `code_page`.
pub fn encode(text: String, code_page: CodePage) -> Vec<u8> {
    if code_page == CodePage::Utf8 || text.is_ascii() {
        return text.into_bytes();
    }
    text.chars()
        .map(|c| cp1252_byte(c).unwrap_or(b'?'))
        .collect()
}

/// The number of bytes `text` takes in `code_page`.
pub fn encoded_len(text: &str, code_page: CodePage) -> usize {
    match code_page {
        CodePage::Utf8 => text.len(),
        CodePage::Cp1252 if text.is_ascii() => text.len(),
        CodePage::Cp1252 => text.chars().count(),
    }
}

/// Text of `char`/`varchar` bytes in `code_page`. Bytes that are not UTF-8 in a UTF-8
/// collation become U+FFFD (SQL Server would keep the raw bytes; the simulator's strings
/// cannot).
pub fn decode(bytes: &[u8], code_page: CodePage) -> String {
    match code_page {
        CodePage::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
        CodePage::Cp1252 => bytes.iter().map(|b| cp1252_char(*b)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_names_parse_and_others_are_refused() {
        let utf8 = Collation::parse("Latin1_General_100_BIN2_UTF8").unwrap();
        assert_eq!(utf8.code_page, CodePage::Utf8);
        assert_eq!(utf8.folding, Folding::Binary);
        let cs = Collation::parse("latin1_general_cs_as").unwrap();
        assert_eq!(
            (cs.code_page, cs.folding),
            (CodePage::Cp1252, Folding::CaseSensitive)
        );
        assert_eq!(
            Collation::parse("Latin1_General_100_CI_AS_SC_UTF8")
                .unwrap()
                .code_page,
            CodePage::Utf8
        );
        assert_eq!(
            Collation::parse("Latin1_General_BIN2_UTF8")
                .unwrap_err()
                .number,
            448
        );
        assert_eq!(
            Collation::parse("Latin1_General_XX_AS").unwrap_err().number,
            448
        );
        assert_eq!(
            Collation::parse("SQL_Latin1_General_CP1_CI_AS_UTF8")
                .unwrap_err()
                .number,
            448
        );
        assert_eq!(
            Collation::parse("Japanese_CI_AS").unwrap_err().number,
            50000
        );
    }

    #[test]
    fn code_page_1252_is_not_latin1() {
        assert_eq!(cp1252_byte('€'), Some(0x80));
        assert_eq!(cp1252_char(0x80), '€');
        assert_eq!(cp1252_byte('é'), Some(0xE9));
        assert_eq!(cp1252_byte('\u{0080}'), None);
        assert_eq!(encode("Zoë €".to_owned(), CodePage::Cp1252), b"Zo\xEB \x80");
    }

    #[test]
    fn characters_outside_the_code_page_become_question_marks() {
        assert_eq!(
            to_code_page("Zoë 😀 €".to_owned(), CodePage::Cp1252),
            "Zoë ?? €"
        );
        assert_eq!(to_code_page("Zoë 😀".to_owned(), CodePage::Utf8), "Zoë 😀");
        assert_eq!(encoded_len("Zoë 😀", CodePage::Utf8), 9);
        assert_eq!(encoded_len("Zoë", CodePage::Cp1252), 3);
    }
}

//! The simulator's T-SQL dialect: `sqlparser`'s MS SQL dialect, with one shortcut for the
//! commonest expression of a large batch, a lone literal (a multi-row INSERT's values).
//!
//! For every expression `sqlparser` first tries to read a typed literal (`DATE '2024-01-01'`),
//! and for a number or a string that attempt fails only after formatting an error message:
//! most of the time spent parsing a 1,000-row INSERT. A literal followed by `,` or `)` can be
//! nothing but a value, so it is read as one at once; the syntax tree is exactly the one the
//! MS SQL dialect builds (a test compares them).

use sqlparser::ast::{Expr, GranteesType, Statement};
use sqlparser::dialect::{Dialect, MsSqlDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// [`MsSqlDialect`] with the literal shortcut. Every behaviour the MS SQL dialect overrides is
/// delegated to it, and the parser's dialect checks see it as the MS SQL dialect.
#[derive(Debug, Default)]
pub struct SimulatorDialect(MsSqlDialect);

/// Parses a batch with the simulator's dialect, multi-row INSERTs of literals through
/// [`super::literal_insert`]'s shortcut.
pub fn parse(sql: &str) -> Result<Vec<Statement>, ParserError> {
    let dialect = SimulatorDialect::default();
    match super::literal_insert::parse(&dialect, sql) {
        Some(statements) => Ok(statements),
        None => Parser::parse_sql(&dialect, sql),
    }
}

impl Dialect for SimulatorDialect {
    fn dialect(&self) -> std::any::TypeId {
        self.0.dialect()
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let literal = matches!(
            parser.peek_token_ref().token,
            Token::Number(..) | Token::SingleQuotedString(_) | Token::NationalStringLiteral(_)
        );
        let ends_here = matches!(
            parser.peek_nth_token_ref(1).token,
            Token::Comma | Token::RParen
        );
        (literal && ends_here).then(|| parser.parse_value().map(Expr::Value))
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.0.is_delimited_identifier_start(ch)
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        self.0.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        self.0.is_identifier_part(ch)
    }
    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.0.identifier_quote_style(identifier)
    }
    fn convert_type_before_value(&self) -> bool {
        self.0.convert_type_before_value()
    }
    fn supports_outer_join_operator(&self) -> bool {
        self.0.supports_outer_join_operator()
    }
    fn supports_dollar_as_money_prefix(&self) -> bool {
        self.0.supports_dollar_as_money_prefix()
    }
    fn supports_create_proc_syntax(&self) -> bool {
        self.0.supports_create_proc_syntax()
    }
    fn supports_connect_by(&self) -> bool {
        self.0.supports_connect_by()
    }
    fn supports_eq_alias_assignment(&self) -> bool {
        self.0.supports_eq_alias_assignment()
    }
    fn supports_try_convert(&self) -> bool {
        self.0.supports_try_convert()
    }
    fn supports_boolean_literals(&self) -> bool {
        self.0.supports_boolean_literals()
    }
    fn supports_named_fn_args_with_colon_operator(&self) -> bool {
        self.0.supports_named_fn_args_with_colon_operator()
    }
    fn supports_named_fn_args_with_expr_name(&self) -> bool {
        self.0.supports_named_fn_args_with_expr_name()
    }
    fn supports_named_fn_args_with_rarrow_operator(&self) -> bool {
        self.0.supports_named_fn_args_with_rarrow_operator()
    }
    fn supports_start_transaction_modifier(&self) -> bool {
        self.0.supports_start_transaction_modifier()
    }
    fn supports_end_transaction_modifier(&self) -> bool {
        self.0.supports_end_transaction_modifier()
    }
    fn supports_set_stmt_without_operator(&self) -> bool {
        self.0.supports_set_stmt_without_operator()
    }
    fn supports_table_versioning(&self) -> bool {
        self.0.supports_table_versioning()
    }
    fn supports_nested_comments(&self) -> bool {
        self.0.supports_nested_comments()
    }
    fn supports_object_name_double_dot_notation(&self) -> bool {
        self.0.supports_object_name_double_dot_notation()
    }
    fn get_reserved_grantees_types(&self) -> &[GranteesType] {
        self.0.get_reserved_grantees_types()
    }
    fn is_select_item_alias(&self, explicit: bool, kw: &Keyword, parser: &mut Parser) -> bool {
        self.0.is_select_item_alias(explicit, kw, parser)
    }
    fn is_table_factor(&self, kw: &Keyword, parser: &mut Parser) -> bool {
        self.0.is_table_factor(kw, parser)
    }
    fn is_table_factor_alias(&self, explicit: bool, kw: &Keyword, parser: &mut Parser) -> bool {
        self.0.is_table_factor_alias(explicit, kw, parser)
    }
    fn parse_statement(&self, parser: &mut Parser) -> Option<Result<Statement, ParserError>> {
        self.0.parse_statement(parser)
    }
    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        self.0.get_next_precedence(parser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches of the kinds the simulator runs (its own tests', the services', the
    /// benchmarks'), literals in every position the shortcut could touch.
    const BATCHES: &[&str] = &[
        "INSERT INTO dbo.events VALUES (1, N'kind-1', 12.50, '2024-02-29 12:00:00.1234567'), (-2, N'k''2', -0.01, NULL), (3e2, 'x', 1.5E-3, '')",
        "BEGIN TRANSACTION; INSERT INTO dbo.bulk (id, customer, amount, placed_at, qty, version) VALUES (1, N'c', 10.25, '2026-01-01T00:00:00', 3, 0); COMMIT TRANSACTION;",
        "UPDATE dbo.t SET version = 1, amount = amount + 1 WHERE id >= 10 AND id <= 20",
        "DELETE FROM dbo.t WHERE id IN (1, 2, 3) OR (name = N'a' AND code = 'b')",
        "SELECT TOP (10) id, CONVERT(varchar(64), HASHBYTES('SHA2_256', CAST(x AS varbinary(max))), 2) FROM dbo.t WHERE k BETWEEN 1 AND 5 ORDER BY id OFFSET 0 ROWS FETCH NEXT 100 ROWS ONLY",
        "SELECT COUNT_BIG(*), MIN(id), MAX(id) FROM dbo.t WHERE d > DATEADD(day, -1, '2024-01-01') AND s LIKE N'a%' COLLATE Latin1_General_CI_AS",
        "SELECT sys.fn_cdc_map_lsn_to_time(0x0000002A000001F40003), CAST('12.5' AS decimal(12, 2)), CAST(1 AS bit), 'a' + 'b', N'x' + N'y'",
        "SELECT * FROM cdc.fn_cdc_get_all_changes_dbo_orders(@P1, @P2, N'all update old') ORDER BY __$start_lsn, __$seqval",
        "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', @role_name = NULL, @supports_net_changes = 0",
        "CREATE TABLE dbo.x (id int NOT NULL PRIMARY KEY, d decimal(38, 10) NULL, s nvarchar(max) NULL, c char(3) NOT NULL DEFAULT 'abc')",
        "SELECT CASE WHEN a = 1 THEN 'one' WHEN a = 2 THEN N'two' ELSE 'many' END, IIF(b > 0, 1, 0), COALESCE(c, 'z') FROM t",
        "SELECT x FROM t WHERE y IN ('a', 'b') AND z = (SELECT MAX(w) FROM u WHERE v = 'q')",
    ];

    #[test]
    fn the_syntax_trees_are_those_of_the_ms_sql_dialect() {
        for batch in BATCHES {
            let ours = parse(batch).unwrap_or_else(|e| panic!("{batch}: {e}"));
            let theirs = Parser::parse_sql(&MsSqlDialect {}, batch).unwrap();
            // sqlparser's equality leaves out source spans, which the literal-INSERT
            // shortcut does not track (the simulator never reads them).
            assert_eq!(ours, theirs, "{batch}");
        }
    }

    #[test]
    fn syntax_errors_are_those_of_the_ms_sql_dialect() {
        for batch in [
            "INSERT INTO t VALUES (1, 'a'",
            "INSERT INTO t VALUES (1 'a')",
            "SELECT 'a' 'b' FROM",
            "SELEC 1",
        ] {
            let ours = parse(batch).map(|_| ()).unwrap_err().to_string();
            let theirs = Parser::parse_sql(&MsSqlDialect {}, batch)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert_eq!(ours, theirs, "{batch}");
        }
    }
}

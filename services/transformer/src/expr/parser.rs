//! Recursive-descent parser from tokens to an untyped syntax tree.
//!
//! One function per precedence level, lowest first. Each takes `after`, what preceded the
//! operand it parses, so that a missing operand is reported as "after AND" rather than as a
//! bare "expected an expression".

use super::ExprError;
use super::eval::{ArithOp, CmpOp};
use super::lexer::{Keyword, Punct, Tok, Token, lex};
use super::like::LikePattern;

/// How deep expressions may nest. Parsing, checking and evaluating recurse over the tree, so
/// a bound keeps hostile configuration from exhausting the stack.
pub(crate) const MAX_DEPTH: u32 = 100;

/// A literal as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    /// The number's text, kept so messages can echo it.
    Number(String),
    Text(String),
    Bool(bool),
    Null,
}

/// A syntax tree node and the position of its first character.
#[derive(Debug, Clone)]
pub(crate) struct Ast {
    pub(crate) kind: AstKind,
    pub(crate) pos: usize,
    depth: u32,
}

#[derive(Debug, Clone)]
pub(crate) enum AstKind {
    Literal(Literal),
    Column(String),
    Neg(Box<Ast>),
    Not(Box<Ast>),
    And(Vec<Ast>),
    Or(Vec<Ast>),
    Arith {
        op: ArithOp,
        lhs: Box<Ast>,
        rhs: Box<Ast>,
    },
    Compare {
        op: CmpOp,
        op_pos: usize,
        lhs: Box<Ast>,
        rhs: Box<Ast>,
    },
    IsNull {
        operand: Box<Ast>,
        negated: bool,
    },
    In {
        operand: Box<Ast>,
        items: Vec<Ast>,
        negated: bool,
    },
    Between {
        operand: Box<Ast>,
        low: Box<Ast>,
        high: Box<Ast>,
        negated: bool,
    },
    Like {
        operand: Box<Ast>,
        op_pos: usize,
        pattern: LikePattern,
        negated: bool,
    },
}

impl AstKind {
    fn child_depth(&self) -> u32 {
        let deepest = |nodes: &[Ast]| nodes.iter().map(|n| n.depth).max().unwrap_or(0);
        match self {
            AstKind::Literal(_) | AstKind::Column(_) => 0,
            AstKind::Neg(a)
            | AstKind::Not(a)
            | AstKind::IsNull { operand: a, .. }
            | AstKind::Like { operand: a, .. } => a.depth,
            AstKind::And(items) | AstKind::Or(items) => deepest(items),
            AstKind::Arith { lhs, rhs, .. } | AstKind::Compare { lhs, rhs, .. } => {
                lhs.depth.max(rhs.depth)
            }
            AstKind::In { operand, items, .. } => operand.depth.max(deepest(items)),
            AstKind::Between {
                operand, low, high, ..
            } => operand.depth.max(low.depth).max(high.depth),
        }
    }
}

impl Ast {
    fn new(kind: AstKind, pos: usize) -> Result<Ast, ExprError> {
        let depth = kind.child_depth() + 1;
        if depth > MAX_DEPTH {
            return Err(too_deep(pos));
        }
        Ok(Ast { kind, pos, depth })
    }
}

fn too_deep(pos: usize) -> ExprError {
    ExprError::new(
        pos,
        format!("expression nested too deeply (at most {MAX_DEPTH} levels)"),
    )
}

/// Parses a whole expression.
pub(crate) fn parse(text: &str) -> Result<Ast, ExprError> {
    let mut tokens = lex(text)?;
    let end = tokens.pop().unwrap_or(Token {
        tok: Tok::End,
        pos: text.chars().count() + 1,
    });
    let mut parser = Parser {
        tokens,
        end,
        at: 0,
        nesting: 0,
    };
    let ast = parser.or_expr("")?;
    parser.finish()?;
    Ok(ast)
}

struct Parser {
    /// The tokens before [`Tok::End`].
    tokens: Vec<Token>,
    end: Token,
    at: usize,
    /// Current recursion through parentheses, NOT and unary minus.
    nesting: u32,
}

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens.get(self.at).unwrap_or(&self.end)
    }

    fn peek_second(&self) -> &Token {
        self.tokens.get(self.at + 1).unwrap_or(&self.end)
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        self.at = (self.at + 1).min(self.tokens.len());
        token
    }

    fn at_keyword(&self, keyword: Keyword) -> bool {
        self.peek().tok == Tok::Keyword(keyword)
    }

    fn eat_keyword(&mut self, keyword: Keyword) -> bool {
        let found = self.at_keyword(keyword);
        if found {
            self.next();
        }
        found
    }

    /// An error at the next token: `{expected}, found {token}`.
    fn expected(&self, expected: &str) -> ExprError {
        let token = self.peek();
        ExprError::new(
            token.pos,
            format!("{expected}, found {}", token.tok.describe()),
        )
    }

    fn enter(&mut self, pos: usize) -> Result<(), ExprError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(too_deep(pos));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    fn finish(&self) -> Result<(), ExprError> {
        let token = self.peek();
        let message = match &token.tok {
            Tok::End => return Ok(()),
            Tok::Punct(Punct::RParen) => "unexpected ')' without a matching '('".to_owned(),
            other => format!(
                "unexpected {} after a complete expression (missing AND or OR?)",
                other.describe()
            ),
        };
        Err(ExprError::new(token.pos, message))
    }

    fn or_expr(&mut self, after: &str) -> Result<Ast, ExprError> {
        self.logical(Keyword::Or, after)
    }

    fn and_expr(&mut self, after: &str) -> Result<Ast, ExprError> {
        self.logical(Keyword::And, after)
    }

    /// A run of operands joined by `word` (AND or OR), kept flat so long runs stay shallow.
    fn logical(&mut self, word: Keyword, after: &str) -> Result<Ast, ExprError> {
        let operand = |parser: &mut Parser, after: &str| match word {
            Keyword::Or => parser.and_expr(after),
            _ => parser.not_expr(after),
        };
        let first = operand(self, after)?;
        if !self.at_keyword(word) {
            return Ok(first);
        }
        let pos = first.pos;
        let mut items = vec![first];
        while self.eat_keyword(word) {
            items.push(operand(self, word.text())?);
        }
        let kind = match word {
            Keyword::Or => AstKind::Or(items),
            _ => AstKind::And(items),
        };
        Ast::new(kind, pos)
    }

    fn not_expr(&mut self, after: &str) -> Result<Ast, ExprError> {
        if !self.at_keyword(Keyword::Not) {
            return self.predicate(after);
        }
        let pos = self.next().pos;
        self.enter(pos)?;
        let inner = self.not_expr("NOT")?;
        self.leave();
        Ast::new(AstKind::Not(Box::new(inner)), pos)
    }

    /// An additive expression, optionally followed by one comparison or test.
    fn predicate(&mut self, after: &str) -> Result<Ast, ExprError> {
        let lhs = self.additive(after)?;
        match self.peek().tok {
            Tok::Punct(punct) => match comparison_op(punct) {
                Some(op) => self.comparison(lhs, op, punct),
                None => Ok(lhs),
            },
            Tok::Keyword(Keyword::Is) => self.is_null(lhs),
            Tok::Keyword(Keyword::In | Keyword::Between | Keyword::Like) => self.test(lhs, false),
            Tok::Keyword(Keyword::Not) => {
                let is_test = matches!(
                    self.peek_second().tok,
                    Tok::Keyword(Keyword::In | Keyword::Between | Keyword::Like)
                );
                if !is_test {
                    self.next();
                    return Err(self.expected("expected IN, BETWEEN or LIKE after NOT"));
                }
                self.next();
                self.test(lhs, true)
            }
            _ => Ok(lhs),
        }
    }

    fn comparison(&mut self, lhs: Ast, op: CmpOp, punct: Punct) -> Result<Ast, ExprError> {
        let op_pos = self.next().pos;
        let rhs = self.additive(&format!("'{}'", punct.text()))?;
        if let Tok::Punct(next) = self.peek().tok
            && comparison_op(next).is_some()
        {
            return Err(ExprError::new(
                self.peek().pos,
                "comparisons cannot be chained; join them with AND",
            ));
        }
        let pos = lhs.pos;
        let kind = AstKind::Compare {
            op,
            op_pos,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        };
        Ast::new(kind, pos)
    }

    fn is_null(&mut self, operand: Ast) -> Result<Ast, ExprError> {
        self.next();
        let negated = self.eat_keyword(Keyword::Not);
        if !self.eat_keyword(Keyword::Null) {
            let after = if negated { "IS NOT" } else { "IS" };
            return Err(self.expected(&format!("expected NULL after {after}")));
        }
        let pos = operand.pos;
        let kind = AstKind::IsNull {
            operand: Box::new(operand),
            negated,
        };
        Ast::new(kind, pos)
    }

    /// IN, BETWEEN or LIKE, whose keyword is the next token.
    fn test(&mut self, operand: Ast, negated: bool) -> Result<Ast, ExprError> {
        let keyword = self.next();
        let pos = operand.pos;
        let operand = Box::new(operand);
        let kind = match keyword.tok {
            Tok::Keyword(Keyword::In) => AstKind::In {
                operand,
                items: self.in_list()?,
                negated,
            },
            Tok::Keyword(Keyword::Between) => {
                let (low, high) = self.bounds()?;
                AstKind::Between {
                    operand,
                    low,
                    high,
                    negated,
                }
            }
            _ => AstKind::Like {
                operand,
                op_pos: keyword.pos,
                pattern: self.like_pattern()?,
                negated,
            },
        };
        Ast::new(kind, pos)
    }

    fn in_list(&mut self) -> Result<Vec<Ast>, ExprError> {
        if self.peek().tok != Tok::Punct(Punct::LParen) {
            return Err(self.expected("expected '(' after IN"));
        }
        self.next();
        let mut items = Vec::new();
        loop {
            items.push(self.in_item()?);
            match self.peek().tok {
                Tok::Punct(Punct::Comma) => {
                    self.next();
                }
                Tok::Punct(Punct::RParen) => {
                    self.next();
                    return Ok(items);
                }
                _ => return Err(self.expected("expected ',' or ')' in the IN list")),
            };
        }
    }

    /// IN lists hold literals only, so each can be checked against the operand's type.
    fn in_item(&mut self) -> Result<Ast, ExprError> {
        let literal = match (&self.peek().tok, &self.peek_second().tok) {
            (Tok::Punct(Punct::Minus), Tok::Number(_)) => true,
            (Tok::Number(_) | Tok::Str(_), _) => true,
            (Tok::Keyword(keyword), _) => {
                matches!(keyword, Keyword::True | Keyword::False | Keyword::Null)
            }
            _ => false,
        };
        if !literal {
            return Err(self.expected("expected a literal in the IN list"));
        }
        self.unary("")
    }

    fn bounds(&mut self) -> Result<(Box<Ast>, Box<Ast>), ExprError> {
        let low = self.additive("BETWEEN")?;
        if !self.eat_keyword(Keyword::And) {
            return Err(self.expected("expected AND between the bounds of BETWEEN"));
        }
        let high = self.additive("AND")?;
        Ok((Box::new(low), Box::new(high)))
    }

    /// A string literal pattern, then optionally `ESCAPE 'c'`. ESCAPE is only a keyword here,
    /// so a column may still be called `escape`.
    fn like_pattern(&mut self) -> Result<LikePattern, ExprError> {
        let Tok::Str(pattern) = self.peek().tok.clone() else {
            return Err(self.expected("expected a string literal pattern after LIKE"));
        };
        let pattern_pos = self.next().pos;
        let mut escape = None;
        if matches!(&self.peek().tok, Tok::Ident(word) if word.eq_ignore_ascii_case("escape")) {
            self.next();
            let single = match &self.peek().tok {
                Tok::Str(text) => single_char(text),
                _ => None,
            };
            if single.is_none() {
                return Err(self.expected("expected a one-character string after ESCAPE"));
            }
            self.next();
            escape = single;
        }
        LikePattern::compile(&pattern, escape)
            .map_err(|message| ExprError::new(pattern_pos, message))
    }

    fn additive(&mut self, after: &str) -> Result<Ast, ExprError> {
        let mut lhs = self.multiplicative(after)?;
        while let Tok::Punct(punct @ (Punct::Plus | Punct::Minus)) = self.peek().tok {
            let op = if punct == Punct::Plus {
                ArithOp::Add
            } else {
                ArithOp::Sub
            };
            lhs = self.arith(lhs, op, Parser::multiplicative)?;
        }
        Ok(lhs)
    }

    fn multiplicative(&mut self, after: &str) -> Result<Ast, ExprError> {
        let mut lhs = self.unary(after)?;
        loop {
            let op = match self.peek().tok {
                Tok::Punct(Punct::Star) => ArithOp::Mul,
                Tok::Punct(Punct::Slash) => ArithOp::Div,
                Tok::Punct(Punct::Percent) => ArithOp::Rem,
                _ => return Ok(lhs),
            };
            lhs = self.arith(lhs, op, Parser::unary)?;
        }
    }

    /// `lhs op rhs`, with the operator the next token.
    fn arith(
        &mut self,
        lhs: Ast,
        op: ArithOp,
        operand: fn(&mut Parser, &str) -> Result<Ast, ExprError>,
    ) -> Result<Ast, ExprError> {
        self.next();
        let rhs = operand(self, &format!("'{}'", op.text()))?;
        let pos = lhs.pos;
        let kind = AstKind::Arith {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        };
        Ast::new(kind, pos)
    }

    fn unary(&mut self, after: &str) -> Result<Ast, ExprError> {
        if self.peek().tok != Tok::Punct(Punct::Minus) {
            return self.primary(after);
        }
        let pos = self.next().pos;
        self.enter(pos)?;
        let inner = self.unary("unary '-'")?;
        self.leave();
        Ast::new(AstKind::Neg(Box::new(inner)), pos)
    }

    fn primary(&mut self, after: &str) -> Result<Ast, ExprError> {
        let kind = match &self.peek().tok {
            Tok::Number(text) => AstKind::Literal(Literal::Number(text.clone())),
            Tok::Str(text) => AstKind::Literal(Literal::Text(text.clone())),
            Tok::Keyword(Keyword::True) => AstKind::Literal(Literal::Bool(true)),
            Tok::Keyword(Keyword::False) => AstKind::Literal(Literal::Bool(false)),
            Tok::Keyword(Keyword::Null) => AstKind::Literal(Literal::Null),
            Tok::Ident(name) | Tok::Quoted(name) => AstKind::Column(name.clone()),
            Tok::Punct(Punct::LParen) => return self.parenthesized(),
            _ if after.is_empty() => return Err(self.expected("expected an expression")),
            _ => return Err(self.expected(&format!("expected an expression after {after}"))),
        };
        let pos = self.next().pos;
        Ast::new(kind, pos)
    }

    fn parenthesized(&mut self) -> Result<Ast, ExprError> {
        let open = self.next().pos;
        self.enter(open)?;
        let mut inner = self.or_expr("'('")?;
        if self.peek().tok != Tok::Punct(Punct::RParen) {
            return Err(self.expected(&format!(
                "expected ')' to close the '(' at character {open}"
            )));
        }
        self.next();
        self.leave();
        // Errors about the operand as a whole should point at its opening parenthesis.
        inner.pos = open;
        Ok(inner)
    }
}

fn comparison_op(punct: Punct) -> Option<CmpOp> {
    Some(match punct {
        Punct::Eq => CmpOp::Eq,
        Punct::BangEq | Punct::LtGt => CmpOp::Ne,
        Punct::Lt => CmpOp::Lt,
        Punct::Le => CmpOp::Le,
        Punct::Gt => CmpOp::Gt,
        Punct::Ge => CmpOp::Ge,
        _ => return None,
    })
}

fn single_char(text: &str) -> Option<char> {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A compact rendering of the tree, to check grouping.
    fn shape(ast: &Ast) -> String {
        let list = |items: &[Ast], sep: &str| items.iter().map(shape).collect::<Vec<_>>().join(sep);
        match &ast.kind {
            AstKind::Literal(Literal::Number(n)) => n.clone(),
            AstKind::Literal(Literal::Text(t)) => format!("'{t}'"),
            AstKind::Literal(Literal::Bool(b)) => b.to_string(),
            AstKind::Literal(Literal::Null) => "null".into(),
            AstKind::Column(c) => c.clone(),
            AstKind::Neg(a) => format!("(-{})", shape(a)),
            AstKind::Not(a) => format!("(not {})", shape(a)),
            AstKind::And(items) => format!("({})", list(items, " and ")),
            AstKind::Or(items) => format!("({})", list(items, " or ")),
            AstKind::Arith { op, lhs, rhs } => {
                format!("({} {} {})", shape(lhs), op.text(), shape(rhs))
            }
            AstKind::Compare { op, lhs, rhs, .. } => {
                format!("({} {op:?} {})", shape(lhs), shape(rhs))
            }
            AstKind::IsNull { operand, negated } => format!(
                "({} is null{})",
                shape(operand),
                if *negated { " not" } else { "" }
            ),
            AstKind::In {
                operand,
                items,
                negated,
            } => {
                format!(
                    "({} in{} [{}])",
                    shape(operand),
                    if *negated { " not" } else { "" },
                    list(items, ", ")
                )
            }
            AstKind::Between {
                operand,
                low,
                high,
                negated,
            } => format!(
                "({} between{} {} {})",
                shape(operand),
                if *negated { " not" } else { "" },
                shape(low),
                shape(high)
            ),
            AstKind::Like {
                operand, negated, ..
            } => {
                format!(
                    "({} like{})",
                    shape(operand),
                    if *negated { " not" } else { "" }
                )
            }
        }
    }

    fn parsed(text: &str) -> String {
        shape(&parse(text).unwrap())
    }

    #[test]
    fn precedence_from_or_down_to_unary_minus() {
        assert_eq!(parsed("a OR b AND c"), "(a or (b and c))");
        assert_eq!(parsed("a AND b OR c"), "((a and b) or c)");
        assert_eq!(parsed("NOT a AND b"), "((not a) and b)");
        assert_eq!(parsed("NOT a = 1"), "(not (a Eq 1))");
        assert_eq!(parsed("a + b * c = d"), "((a + (b * c)) Eq d)");
        assert_eq!(parsed("a - b - c"), "((a - b) - c)");
        assert_eq!(parsed("-a * b"), "((-a) * b)");
        assert_eq!(parsed("(a OR b) AND c"), "((a or b) and c)");
    }

    #[test]
    fn and_or_runs_are_flat() {
        assert_eq!(parsed("a AND b AND c"), "(a and b and c)");
        let long = vec!["x = 1"; 500].join(" OR ");
        assert!(parse(&long).is_ok());
    }

    #[test]
    fn tests_bind_tighter_than_and() {
        assert_eq!(
            parsed("x BETWEEN 1 AND 2 AND y IS NOT NULL"),
            "((x between 1 2) and (y is null not))"
        );
        assert_eq!(
            parsed("x NOT IN (1, -2, 'a', NULL)"),
            "(x in not [1, (-2), 'a', null])"
        );
        assert_eq!(parsed("x NOT LIKE 'a%' ESCAPE '!'"), "(x like not)");
        assert_eq!(parsed("escape LIKE 'a'"), "(escape like)");
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}x{}", "(".repeat(5000), ")".repeat(5000));
        assert_eq!(
            parse(&deep).unwrap_err().message,
            "expression nested too deeply (at most 100 levels)"
        );
        let long_sum = format!("{} = 1", vec!["x"; 500].join(" + "));
        assert!(parse(&long_sum).is_err());
        assert!(parse(&"NOT ".repeat(5000)).is_err());
        assert!(parse(&format!("{}1 = 1", "-".repeat(5000))).is_err());
    }
}

//! Type-checks the syntax tree against a table schema and lowers it to evaluation nodes.
//!
//! Everything that can be decided once is decided here: column names become indexes,
//! string literals compared with uuid or temporal columns become keys, IN and BETWEEN
//! become the comparisons SQL defines them as.

use cdc_model::proto::{ColumnSchema, LogicalType};

use super::ExprError;
use super::eval::{ArithOp, BoolExpr, CmpOp, KeyExpr, NumExpr, Operand, TextExpr};
use super::lexer::{Keyword, quote_name, quote_string};
use super::like::LikePattern;
use super::num::Num;
use super::parser::{Ast, AstKind, Literal};
use super::temporal::KeyType;

/// A checked node, by the type it evaluates to. `Null` is the NULL literal, which fits
/// wherever a value does.
#[derive(Debug, Clone)]
enum Typed {
    Null,
    Bool(BoolExpr),
    Num(NumExpr),
    Text(TextExpr),
    Key(KeyExpr, KeyType),
    Bytes(usize),
}

impl Typed {
    fn name(&self) -> &'static str {
        match self {
            Typed::Null => "NULL",
            Typed::Bool(_) => "boolean",
            Typed::Num(_) => "number",
            Typed::Text(_) => "text",
            Typed::Key(_, key_type) => key_type.name(),
            Typed::Bytes(_) => "bytes",
        }
    }
}

/// Where a checked node came from, to name it in messages.
#[derive(Debug, Clone)]
enum Origin {
    Column(String),
    /// The literal as it would be written.
    Literal(String),
    Computed,
}

#[derive(Debug, Clone)]
struct Checked {
    typed: Typed,
    origin: Origin,
    pos: usize,
}

impl Checked {
    fn computed(typed: Typed, pos: usize) -> Checked {
        Checked {
            typed,
            origin: Origin::Computed,
            pos,
        }
    }

    /// The node's type and origin: `number (column amount)`, `text '12'`, `number`.
    fn describe(&self) -> String {
        let name = self.typed.name();
        match (&self.typed, &self.origin) {
            (Typed::Null, _) | (_, Origin::Computed) => name.to_owned(),
            (_, Origin::Column(column)) => format!("{name} (column {})", display_name(column)),
            (_, Origin::Literal(text)) => format!("{name} {text}"),
        }
    }
}

/// A column name as an operator could type it back: bare when it can be, else quoted.
fn display_name(name: &str) -> String {
    let bare = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && Keyword::lookup(name).is_none();
    if bare {
        name.to_owned()
    } else {
        quote_name(name)
    }
}

/// The checked expression and the columns it reads.
pub(crate) struct Compiled {
    pub(crate) root: BoolExpr,
    pub(crate) columns: Vec<String>,
}

/// Checks `ast` against `schema`; the whole expression must be boolean.
pub(crate) fn compile(ast: &Ast, schema: &[ColumnSchema]) -> Result<Compiled, ExprError> {
    let mut checker = Checker {
        schema,
        used: Vec::new(),
    };
    let checked = checker.check(ast)?;
    let root = boolean(checked, "expected a boolean expression")?;
    Ok(Compiled {
        root,
        columns: checker.used,
    })
}

/// The node as a boolean, or `{expected}, found {what it is}`.
fn boolean(checked: Checked, expected: &str) -> Result<BoolExpr, ExprError> {
    match checked.typed {
        Typed::Bool(expr) => Ok(expr),
        Typed::Null => Ok(BoolExpr::Const(None)),
        _ => Err(found(&checked, expected)),
    }
}

fn number(checked: Checked, expected: &str) -> Result<NumExpr, ExprError> {
    match checked.typed {
        Typed::Num(expr) => Ok(expr),
        Typed::Null => Ok(NumExpr::Const(None)),
        _ => Err(found(&checked, expected)),
    }
}

fn found(checked: &Checked, expected: &str) -> ExprError {
    ExprError::new(
        checked.pos,
        format!("{expected}, found {}", checked.describe()),
    )
}

struct Checker<'s> {
    schema: &'s [ColumnSchema],
    /// Resolved names in order of first use.
    used: Vec<String>,
}

impl<'s> Checker<'s> {
    fn check(&mut self, ast: &Ast) -> Result<Checked, ExprError> {
        let pos = ast.pos;
        let boolean_node = |expr| Ok(Checked::computed(Typed::Bool(expr), pos));
        match &ast.kind {
            AstKind::Literal(literal) => literal_node(literal, pos),
            AstKind::Column(name) => self.column(name, pos),
            AstKind::Neg(inner) => negate(self.check(inner)?, pos),
            AstKind::Not(inner) => {
                let inner = boolean(self.check(inner)?, "expected a boolean operand for NOT")?;
                boolean_node(BoolExpr::Not(Box::new(inner)))
            }
            AstKind::And(items) => boolean_node(BoolExpr::And(self.operands(items, "AND")?)),
            AstKind::Or(items) => boolean_node(BoolExpr::Or(self.operands(items, "OR")?)),
            AstKind::Arith { op, lhs, rhs } => self.arith(*op, lhs, rhs, pos),
            AstKind::Compare {
                op,
                op_pos,
                lhs,
                rhs,
            } => {
                let (lhs, rhs) = (self.check(lhs)?, self.check(rhs)?);
                boolean_node(compare(*op, &lhs, &rhs, *op_pos)?)
            }
            AstKind::IsNull { operand, negated } => {
                boolean_node(is_null(self.check(operand)?, *negated))
            }
            AstKind::In {
                operand,
                items,
                negated,
            } => boolean_node(negate_if(*negated, self.in_list(operand, items)?)),
            AstKind::Between {
                operand,
                low,
                high,
                negated,
            } => boolean_node(negate_if(*negated, self.between(operand, low, high)?)),
            AstKind::Like {
                operand,
                op_pos,
                pattern,
                negated,
            } => boolean_node(self.like(operand, *op_pos, pattern, *negated)?),
        }
    }

    fn arith(
        &mut self,
        op: ArithOp,
        lhs: &Ast,
        rhs: &Ast,
        pos: usize,
    ) -> Result<Checked, ExprError> {
        let expected = format!("expected a number operand for '{}'", op.text());
        let lhs = number(self.check(lhs)?, &expected)?;
        let rhs = number(self.check(rhs)?, &expected)?;
        let expr = NumExpr::Arith {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        };
        Ok(Checked::computed(Typed::Num(expr), pos))
    }

    fn like(
        &mut self,
        operand: &Ast,
        op_pos: usize,
        pattern: &LikePattern,
        negated: bool,
    ) -> Result<BoolExpr, ExprError> {
        let operand = self.check(operand)?;
        match operand.typed {
            Typed::Text(text) => Ok(BoolExpr::Like {
                operand: text,
                pattern: pattern.clone(),
                negated,
            }),
            Typed::Null => Ok(BoolExpr::Const(None)),
            _ => {
                let message = format!("expected text before LIKE, found {}", operand.describe());
                Err(ExprError::new(op_pos, message))
            }
        }
    }

    fn operands(&mut self, items: &[Ast], word: &str) -> Result<Vec<BoolExpr>, ExprError> {
        let expected = format!("expected a boolean operand for {word}");
        items
            .iter()
            .map(|item| boolean(self.check(item)?, &expected))
            .collect()
    }

    /// `x IN (a, b)` is `x = a OR x = b`, which gives SQL's NULL behaviour for free.
    fn in_list(&mut self, operand: &Ast, items: &[Ast]) -> Result<BoolExpr, ExprError> {
        let operand = self.check(operand)?;
        let mut alternatives = Vec::with_capacity(items.len());
        for item in items {
            let value = self.check(item)?;
            alternatives.push(compare(CmpOp::Eq, &operand, &value, item.pos)?);
        }
        Ok(BoolExpr::Or(alternatives))
    }

    /// `x BETWEEN a AND b` is `x >= a AND x <= b`.
    fn between(&mut self, operand: &Ast, low: &Ast, high: &Ast) -> Result<BoolExpr, ExprError> {
        let operand = self.check(operand)?;
        let (low_checked, high_checked) = (self.check(low)?, self.check(high)?);
        Ok(BoolExpr::And(vec![
            compare(CmpOp::Ge, &operand, &low_checked, low.pos)?,
            compare(CmpOp::Le, &operand, &high_checked, high.pos)?,
        ]))
    }

    fn column(&mut self, name: &str, pos: usize) -> Result<Checked, ExprError> {
        let (index, column) = self.resolve(name, pos)?;
        let Some(typed) = column_node(index, column) else {
            let message = format!(
                "column {} has no type in the schema",
                display_name(&column.name)
            );
            return Err(ExprError::new(pos, message));
        };
        if !self.used.contains(&column.name) {
            self.used.push(column.name.clone());
        }
        Ok(Checked {
            typed,
            origin: Origin::Column(column.name.clone()),
            pos,
        })
    }

    /// The exact name, else the only name equal ignoring case (SQL Server's default
    /// collation ignores case, so configurations written against it may too).
    fn resolve(&self, name: &str, pos: usize) -> Result<(usize, &'s ColumnSchema), ExprError> {
        let schema: &'s [ColumnSchema] = self.schema;
        if let Some(exact) = schema.iter().enumerate().find(|(_, c)| c.name == name) {
            return Ok(exact);
        }
        let folded = name.to_lowercase();
        let matching: Vec<_> = schema
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name.to_lowercase() == folded)
            .collect();
        match matching.as_slice() {
            [only] => Ok(*only),
            [] => Err(ExprError::new(pos, self.unknown(name))),
            several => {
                let names: Vec<_> = several.iter().map(|(_, c)| display_name(&c.name)).collect();
                let message = format!(
                    "column {} is ambiguous: it matches {} when case is ignored; write the name exactly",
                    quote_name(name),
                    names.join(", ")
                );
                Err(ExprError::new(pos, message))
            }
        }
    }

    fn unknown(&self, name: &str) -> String {
        let names: Vec<&str> = self.schema.iter().map(|c| c.name.as_str()).collect();
        if names.is_empty() {
            format!(
                "unknown column {} (the table has no columns)",
                quote_name(name)
            )
        } else {
            format!(
                "unknown column {} (columns: {})",
                quote_name(name),
                names.join(", ")
            )
        }
    }
}

/// The node reading column `index`; None when the schema leaves its type unspecified.
fn column_node(index: usize, column: &ColumnSchema) -> Option<Typed> {
    let logical = column
        .r#type
        .as_ref()
        .and_then(|t| LogicalType::try_from(t.logical).ok())?;
    let key = |key_type| Typed::Key(KeyExpr::Column(index, key_type), key_type);
    Some(match logical {
        LogicalType::Bool => Typed::Bool(BoolExpr::Column(index)),
        LogicalType::Int16
        | LogicalType::Int32
        | LogicalType::Int64
        | LogicalType::Decimal
        | LogicalType::Float32
        | LogicalType::Float64 => Typed::Num(NumExpr::Column(index)),
        LogicalType::Text | LogicalType::Json | LogicalType::Xml => {
            Typed::Text(TextExpr::Column(index))
        }
        LogicalType::Uuid => key(KeyType::Uuid),
        LogicalType::Date => key(KeyType::Date),
        LogicalType::Time => key(KeyType::Time),
        LogicalType::Timestamp => key(KeyType::Timestamp),
        LogicalType::Timestamptz => key(KeyType::Timestamptz),
        LogicalType::Bytes => Typed::Bytes(index),
        LogicalType::Unspecified => return None,
    })
}

fn negate_if(negated: bool, expr: BoolExpr) -> BoolExpr {
    if negated {
        BoolExpr::Not(Box::new(expr))
    } else {
        expr
    }
}

fn literal_node(literal: &Literal, pos: usize) -> Result<Checked, ExprError> {
    let (typed, text) = match literal {
        Literal::Number(text) => {
            let value = Num::parse_literal(text)
                .ok_or_else(|| ExprError::new(pos, format!("invalid number {text}")))?;
            (Typed::Num(NumExpr::Const(Some(value))), text.clone())
        }
        Literal::Text(text) => (
            Typed::Text(TextExpr::Const(text.as_str().into())),
            quote_string(text),
        ),
        Literal::Bool(value) => {
            let text = if *value { "TRUE" } else { "FALSE" };
            (Typed::Bool(BoolExpr::Const(Some(*value))), text.to_owned())
        }
        Literal::Null => (Typed::Null, "NULL".to_owned()),
    };
    Ok(Checked {
        typed,
        origin: Origin::Literal(text),
        pos,
    })
}

/// Unary minus; a negated number literal stays a literal so messages can quote it.
fn negate(operand: Checked, pos: usize) -> Result<Checked, ExprError> {
    let origin = operand.origin.clone();
    let expr = number(operand, "expected a number after unary '-'")?;
    Ok(match (expr, origin) {
        (NumExpr::Const(Some(value)), Origin::Literal(text)) => Checked {
            typed: Typed::Num(NumExpr::Const(Some(value.neg()))),
            origin: Origin::Literal(format!("-{text}")),
            pos,
        },
        (expr, _) => Checked::computed(Typed::Num(NumExpr::Neg(Box::new(expr))), pos),
    })
}

fn is_null(operand: Checked, negated: bool) -> BoolExpr {
    let operand = match operand.typed {
        Typed::Null => return BoolExpr::Const(Some(!negated)),
        Typed::Bool(expr) => Operand::Bool(expr),
        Typed::Num(expr) => Operand::Num(expr),
        Typed::Text(expr) => Operand::Text(expr),
        Typed::Key(expr, _) => Operand::Key(expr),
        Typed::Bytes(index) => Operand::Bytes(index),
    };
    BoolExpr::IsNull {
        operand: Box::new(operand),
        negated,
    }
}

/// `lhs op rhs` for operands of one type; a string literal against a uuid or temporal
/// column is read as a value of the column's type.
fn compare(op: CmpOp, lhs: &Checked, rhs: &Checked, pos: usize) -> Result<BoolExpr, ExprError> {
    Ok(match (&lhs.typed, &rhs.typed) {
        (Typed::Bytes(_), _) | (_, Typed::Bytes(_)) => return Err(mismatch(lhs, rhs, pos)),
        (Typed::Null, _) | (_, Typed::Null) => BoolExpr::Const(None),
        (Typed::Bool(a), Typed::Bool(b)) => BoolExpr::Bool {
            op,
            lhs: Box::new(a.clone()),
            rhs: Box::new(b.clone()),
        },
        (Typed::Num(a), Typed::Num(b)) => BoolExpr::Num {
            op,
            lhs: a.clone(),
            rhs: b.clone(),
        },
        (Typed::Text(a), Typed::Text(b)) => BoolExpr::Text {
            op,
            lhs: a.clone(),
            rhs: b.clone(),
        },
        (Typed::Key(a, a_type), Typed::Key(b, b_type)) if a_type == b_type => BoolExpr::Key {
            op,
            lhs: a.clone(),
            rhs: b.clone(),
        },
        (Typed::Key(a, key_type), Typed::Text(TextExpr::Const(text))) => BoolExpr::Key {
            op,
            lhs: a.clone(),
            rhs: key_literal(*key_type, text, lhs, rhs)?,
        },
        (Typed::Text(TextExpr::Const(text)), Typed::Key(b, key_type)) => BoolExpr::Key {
            op,
            lhs: key_literal(*key_type, text, rhs, lhs)?,
            rhs: b.clone(),
        },
        _ => return Err(mismatch(lhs, rhs, pos)),
    })
}

fn key_literal(
    key_type: KeyType,
    text: &str,
    column: &Checked,
    literal: &Checked,
) -> Result<KeyExpr, ExprError> {
    key_type.parse(text).map(KeyExpr::Const).map_err(|reason| {
        let column = match &column.origin {
            Origin::Column(name) => format!("column {}", display_name(name)),
            _ => column.describe(),
        };
        let message = format!(
            "{} is not a valid {} for {column}: {reason}",
            quote_string(text),
            key_type.name()
        );
        ExprError::new(literal.pos, message)
    })
}

fn mismatch(lhs: &Checked, rhs: &Checked, pos: usize) -> ExprError {
    let mut message = format!("cannot compare {} with {}", lhs.describe(), rhs.describe());
    message.push_str(&mismatch_hint(lhs, rhs));
    ExprError::new(pos, message)
}

fn mismatch_hint(lhs: &Checked, rhs: &Checked) -> String {
    let literal = |c: &Checked| matches!(c.origin, Origin::Literal(_));
    match (&lhs.typed, &rhs.typed) {
        (Typed::Bytes(_), _) | (_, Typed::Bytes(_)) => {
            "; bytes columns only support IS NULL and IS NOT NULL".to_owned()
        }
        (Typed::Key(_, key_type), _) if literal(rhs) => key_hint(*key_type),
        (_, Typed::Key(_, key_type)) if literal(lhs) => key_hint(*key_type),
        _ => String::new(),
    }
}

fn key_hint(key_type: KeyType) -> String {
    format!(
        "; write {} values as strings, e.g. {}",
        key_type.name(),
        key_type.example()
    )
}

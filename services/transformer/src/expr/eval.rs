//! The compiled form: typed nodes with resolved column indexes and pre-parsed literals.
//!
//! Each node kind evaluates to `Option<T>`, None being SQL NULL. Reading a row never
//! allocates, parses text or looks names up; a value whose kind does not belong to its
//! column's type reads as NULL.

use std::cmp::Ordering;

use cdc_model::proto::Value;
use cdc_model::proto::value::Kind;

use super::like::LikePattern;
use super::num::Num;
use super::temporal::{KeyType, instant_key, uuid_key};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn holds(self, order: Ordering) -> bool {
        match self {
            CmpOp::Eq => order.is_eq(),
            CmpOp::Ne => order.is_ne(),
            CmpOp::Lt => order.is_lt(),
            CmpOp::Le => order.is_le(),
            CmpOp::Gt => order.is_gt(),
            CmpOp::Ge => order.is_ge(),
        }
    }

    /// `op` applied to two possibly-NULL operands: NULL if either is.
    fn test<T: Ord>(self, lhs: Option<T>, rhs: Option<T>) -> Option<bool> {
        Some(self.holds(lhs?.cmp(&rhs?)))
    }
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl ArithOp {
    /// The operator as written.
    pub(crate) fn text(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Rem => "%",
        }
    }

    fn apply(self, lhs: Num, rhs: Num) -> Option<Num> {
        match self {
            ArithOp::Add => Some(lhs.add(rhs)),
            ArithOp::Sub => Some(lhs.sub(rhs)),
            ArithOp::Mul => Some(lhs.mul(rhs)),
            ArithOp::Div => lhs.div(rhs),
            ArithOp::Rem => lhs.rem(rhs),
        }
    }
}

/// A boolean-valued node.
#[derive(Debug, Clone)]
pub(crate) enum BoolExpr {
    Const(Option<bool>),
    Column(usize),
    Not(Box<BoolExpr>),
    And(Vec<BoolExpr>),
    Or(Vec<BoolExpr>),
    IsNull {
        operand: Box<Operand>,
        negated: bool,
    },
    Bool {
        op: CmpOp,
        lhs: Box<BoolExpr>,
        rhs: Box<BoolExpr>,
    },
    Num {
        op: CmpOp,
        lhs: NumExpr,
        rhs: NumExpr,
    },
    Text {
        op: CmpOp,
        lhs: TextExpr,
        rhs: TextExpr,
    },
    Key {
        op: CmpOp,
        lhs: KeyExpr,
        rhs: KeyExpr,
    },
    Like {
        operand: TextExpr,
        pattern: LikePattern,
        negated: bool,
    },
}

/// A number-valued node.
#[derive(Debug, Clone)]
pub(crate) enum NumExpr {
    Const(Option<Num>),
    Column(usize),
    Neg(Box<NumExpr>),
    Arith {
        op: ArithOp,
        lhs: Box<NumExpr>,
        rhs: Box<NumExpr>,
    },
}

/// A text-valued node: text, JSON and XML columns, and string literals.
#[derive(Debug, Clone)]
pub(crate) enum TextExpr {
    Const(Box<str>),
    Column(usize),
}

/// A uuid or temporal node, as its ordered key.
#[derive(Debug, Clone)]
pub(crate) enum KeyExpr {
    Const(i128),
    Column(usize, KeyType),
}

/// Any node, for IS NULL; bytes columns can only be tested for NULL.
#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Bool(BoolExpr),
    Num(NumExpr),
    Text(TextExpr),
    Key(KeyExpr),
    Bytes(usize),
}

fn kind(row: &[Value], index: usize) -> Option<&Kind> {
    row.get(index)?.kind.as_ref()
}

impl BoolExpr {
    /// TRUE, FALSE, or None for NULL (unknown).
    pub(crate) fn eval(&self, row: &[Value]) -> Option<bool> {
        match self {
            BoolExpr::Const(value) => *value,
            BoolExpr::Column(index) => match kind(row, *index)? {
                Kind::Bool(value) => Some(*value),
                _ => None,
            },
            BoolExpr::Not(inner) => inner.eval(row).map(|value| !value),
            BoolExpr::And(items) => all(items, row),
            BoolExpr::Or(items) => any(items, row),
            BoolExpr::IsNull { operand, negated } => Some(operand.is_null(row) != *negated),
            BoolExpr::Bool { op, lhs, rhs } => op.test(lhs.eval(row), rhs.eval(row)),
            BoolExpr::Num { op, lhs, rhs } => {
                let (lhs, rhs) = (lhs.eval(row)?, rhs.eval(row)?);
                Some(op.holds(lhs.compare(rhs)))
            }
            BoolExpr::Text { op, lhs, rhs } => op.test(lhs.eval(row), rhs.eval(row)),
            BoolExpr::Key { op, lhs, rhs } => op.test(lhs.eval(row), rhs.eval(row)),
            BoolExpr::Like {
                operand,
                pattern,
                negated,
            } => Some(pattern.matches(operand.eval(row)?) != *negated),
        }
    }
}

/// SQL AND: any FALSE wins, then any NULL.
fn all(items: &[BoolExpr], row: &[Value]) -> Option<bool> {
    let mut unknown = false;
    for item in items {
        match item.eval(row) {
            Some(false) => return Some(false),
            None => unknown = true,
            Some(true) => {}
        }
    }
    if unknown { None } else { Some(true) }
}

/// SQL OR: any TRUE wins, then any NULL.
fn any(items: &[BoolExpr], row: &[Value]) -> Option<bool> {
    let mut unknown = false;
    for item in items {
        match item.eval(row) {
            Some(true) => return Some(true),
            None => unknown = true,
            Some(false) => {}
        }
    }
    if unknown { None } else { Some(false) }
}

impl NumExpr {
    pub(crate) fn eval(&self, row: &[Value]) -> Option<Num> {
        match self {
            NumExpr::Const(value) => *value,
            NumExpr::Column(index) => match kind(row, *index)? {
                Kind::Int64(value) => Some(Num::exact(i128::from(*value), 0)),
                Kind::Float64(value) => Some(Num::Float(*value)),
                Kind::Decimal(value) => Num::from_proto(value),
                _ => None,
            },
            NumExpr::Neg(inner) => Some(inner.eval(row)?.neg()),
            NumExpr::Arith { op, lhs, rhs } => op.apply(lhs.eval(row)?, rhs.eval(row)?),
        }
    }
}

impl TextExpr {
    pub(crate) fn eval<'a>(&'a self, row: &'a [Value]) -> Option<&'a str> {
        match self {
            TextExpr::Const(text) => Some(text),
            TextExpr::Column(index) => match kind(row, *index)? {
                Kind::Text(text) | Kind::Json(text) | Kind::Xml(text) => Some(text),
                _ => None,
            },
        }
    }
}

impl KeyExpr {
    pub(crate) fn eval(&self, row: &[Value]) -> Option<i128> {
        match self {
            KeyExpr::Const(key) => Some(*key),
            KeyExpr::Column(index, key_type) => column_key(kind(row, *index)?, *key_type),
        }
    }
}

fn column_key(kind: &Kind, key_type: KeyType) -> Option<i128> {
    match (kind, key_type) {
        (Kind::Uuid(bytes), KeyType::Uuid) => uuid_key(bytes),
        (Kind::Date(days), KeyType::Date) => Some(i128::from(*days)),
        (Kind::TimeNanos(nanos), KeyType::Time) => Some(i128::from(*nanos)),
        (Kind::Timestamp(t), KeyType::Timestamp) => instant_key(t.seconds, t.nanos),
        (Kind::Timestamptz(t), KeyType::Timestamptz) => instant_key(t.utc_seconds, t.nanos),
        _ => None,
    }
}

impl Operand {
    fn is_null(&self, row: &[Value]) -> bool {
        match self {
            Operand::Bool(expr) => expr.eval(row).is_none(),
            Operand::Num(expr) => expr.eval(row).is_none(),
            Operand::Text(expr) => expr.eval(row).is_none(),
            Operand::Key(expr) => expr.eval(row).is_none(),
            Operand::Bytes(index) => !matches!(kind(row, *index), Some(Kind::Bytes(_))),
        }
    }
}

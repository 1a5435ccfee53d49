//! Scalar expressions. A statement compiles each expression once into a [`Plan`]: names are
//! resolved to column positions, every node gets its static SQL Server type (and, for
//! character types, its collation), implicit conversions become explicit nodes, and constant
//! subtrees are folded. Evaluating a plan per row is then a walk over typed nodes, with no
//! name lookups, no type parsing and no type inference — the way SQL Server types an
//! expression once, at compile time, not per value.

use std::cmp::Ordering;
use std::collections::HashMap;

use sqlparser::ast::{BinaryOperator, CastKind, DataType, Expr, UnaryOperator, Value};

use super::catalog::{Column, Database};
use super::collation::{CodePage, Collation, Folding};
use super::compare::compare_folded;
use super::convert::{cast, cast_value, parse_decimal};
use super::datatype;
use super::error::{self, SqlError};
use crate::tds::types::{SqlType, SqlValue};

/// A typed value: what an expression evaluates to.
#[derive(Debug, Clone, PartialEq)]
pub struct Typed {
    /// The exact SQL Server type.
    pub sql_type: SqlType,
    /// The value.
    pub value: SqlValue,
}

/// Parameters of the statement, by lower-case name with `@`.
pub type Parameters = HashMap<String, Typed>;

/// What names in an expression refer to.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Statement parameters.
    pub parameters: &'a Parameters,
    /// The current row, if any: its columns and values.
    pub row: Option<(&'a [Column], &'a [SqlValue])>,
    /// Per column, the table name or alias that qualifies it (`ct.__$start_lsn`); may be empty.
    pub qualifiers: &'a [String],
    /// The session's database, for functions that read it (`sys.fn_cdc_get_max_lsn()`).
    pub database: Option<&'a Database>,
}

impl<'a> Scope<'a> {
    /// A scope with parameters only.
    pub fn constants(parameters: &'a Parameters) -> Scope<'a> {
        Scope {
            parameters,
            row: None,
            qualifiers: &[],
            database: None,
        }
    }

    /// A scope over one row.
    pub fn over(
        parameters: &'a Parameters,
        columns: &'a [Column],
        values: &'a [SqlValue],
    ) -> Scope<'a> {
        Scope {
            parameters,
            row: Some((columns, values)),
            qualifiers: &[],
            database: None,
        }
    }
}

/// Compiles `expr` in `scope` and evaluates it over the scope's row. For expressions run once;
/// statements that evaluate an expression per row compile it once with [`Compiler`].
pub fn evaluate(expr: &Expr, scope: Scope<'_>) -> Result<Typed, SqlError> {
    // A literal compiles to a constant: taken as it is, without a compiler and a copy (a
    // multi-row INSERT evaluates thousands of them).
    if let Expr::Value(value) = expr
        && let Plan {
            node: Node::Constant(value),
            sql_type,
            ..
        } = literal(&value.value)?
    {
        return Ok(Typed { sql_type, value });
    }
    let plan = Compiler::new(scope).compile(expr)?;
    let row = scope.row.map_or(&[][..], |(_, values)| values);
    let value = plan.eval(&Env::row(row, scope.database))?;
    Ok(Typed {
        sql_type: plan.sql_type,
        value,
    })
}

/// Whether a predicate holds: Some(true), Some(false), or None for UNKNOWN.
pub fn truth(typed: &Typed) -> Option<bool> {
    match typed.value {
        SqlValue::Bit(b) => Some(b),
        SqlValue::Int(i) => Some(i != 0),
        _ => None,
    }
}

/// How strongly a character expression holds its collation (SQL Server's collation
/// precedence): a COLLATE clause beats a column, which beats a literal or variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// Literals, variables, and results of non-character expressions: the database default.
    Coercible,
    /// A column's own collation.
    Implicit,
    /// A COLLATE clause.
    Explicit,
}

/// A compiled expression: its node, static type and collation.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// What it computes.
    pub node: Node,
    /// Its SQL Server type.
    pub sql_type: SqlType,
    /// The collation of a character expression (None for other types).
    pub collation: Option<Collation>,
    /// The collation's precedence.
    pub label: Label,
    /// Written as a literal (`3`, `'a'`): typed by its digits in decimal arithmetic, and a
    /// `NULL` literal has no type of its own in CASE and ISNULL.
    pub literal: bool,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `=`
    Eq,
    /// `<>`, `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Comparison {
    /// The operator with its operands swapped (`a < b` is `b > a`).
    pub fn mirrored(self) -> Comparison {
        match self {
            Comparison::Lt => Comparison::Gt,
            Comparison::Le => Comparison::Ge,
            Comparison::Gt => Comparison::Lt,
            Comparison::Ge => Comparison::Le,
            other => other,
        }
    }

    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Comparison::Eq => ordering.is_eq(),
            Comparison::Ne => ordering.is_ne(),
            Comparison::Lt => ordering.is_lt(),
            Comparison::Le => ordering.is_le(),
            Comparison::Gt => ordering.is_gt(),
            Comparison::Ge => ordering.is_ge(),
        }
    }
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arithmetic {
    /// `+` on numbers.
    Add,
    /// `-`
    Subtract,
    /// `*`
    Multiply,
    /// `/`
    Divide,
    /// `%`
    Modulo,
}

impl Arithmetic {
    /// The operator's name in SQL Server's messages.
    pub fn name(self) -> &'static str {
        match self {
            Arithmetic::Add => "add",
            Arithmetic::Subtract => "subtract",
            Arithmetic::Multiply => "multiply",
            Arithmetic::Divide => "divide",
            Arithmetic::Modulo => "modulo",
        }
    }
}

/// A conversion node.
#[derive(Debug, Clone, PartialEq)]
pub struct CastPlan {
    /// The converted expression.
    pub input: Plan,
    /// CONVERT's style.
    pub style: Option<i64>,
    /// Code page of char/varchar input.
    pub from_page: CodePage,
    /// Code page of char/varchar output.
    pub to_page: CodePage,
    /// TRY_CAST / TRY_CONVERT: a failed conversion is NULL.
    pub try_cast: bool,
    /// How the conversion runs, chosen once from the two types.
    pub op: CastOp,
}

/// A conversion specialised when the plan compiles, so the common ones (what canonical-text
/// and checksum expressions are made of) skip the general conversion's dispatch per value.
/// Each falls back to the general conversion for a value it does not expect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CastOp {
    /// The value does not change (varchar to nvarchar(max), nvarchar to a UTF-8 varchar(max),
    /// a string to a wider one of its kind).
    Identity,
    /// An integer type to varchar/nvarchar (not char: no padding): its digits; too long
    /// gives `*` in varchar and an error in nvarchar (left to the general conversion).
    IntegerToText {
        /// Length of the target, None for max.
        limit: Option<u16>,
    },
    /// decimal/numeric to varchar/nvarchar: plain notation; too long is an error.
    DecimalToText {
        /// Length of the target, None for max.
        limit: Option<u16>,
    },
    /// char/varchar/nchar/nvarchar to varbinary(max), style 0: the stored bytes.
    TextToBinary,
    /// binary/varbinary to an integer type: the rightmost bytes, big-endian.
    BinaryToInteger,
    /// An integer type to a narrower or wider one: a range check.
    IntegerToInteger,
    /// An integer type to decimal(p, s).
    IntegerToDecimal {
        /// Target scale.
        scale: u8,
        /// Target precision.
        precision: u8,
    },
    /// Anything else: the general conversion.
    General,
}

impl CastPlan {
    /// A conversion of `input` to `to`.
    pub fn node(
        input: Plan,
        to: SqlType,
        style: Option<i64>,
        from_page: CodePage,
        to_page: CodePage,
        try_cast: bool,
    ) -> Node {
        let from = input.sql_type;
        let plain = style.is_none_or(|s| s == 0);
        let op = if preserves_value(from, to, from_page, to_page) {
            CastOp::Identity
        } else {
            match to {
                SqlType::VarChar { length } | SqlType::NVarChar { length }
                    if datatype::is_integer(from) =>
                {
                    CastOp::IntegerToText { limit: length }
                }
                SqlType::VarChar { length } | SqlType::NVarChar { length }
                    if matches!(from, SqlType::Decimal { .. }) =>
                {
                    CastOp::DecimalToText { limit: length }
                }
                SqlType::VarBinary { length: None } if plain && datatype::is_character(from) => {
                    CastOp::TextToBinary
                }
                t if datatype::is_integer(t) && datatype::is_binary(from) => {
                    CastOp::BinaryToInteger
                }
                t if datatype::is_integer(t) && datatype::is_integer(from) => {
                    CastOp::IntegerToInteger
                }
                SqlType::Decimal { precision, scale } if datatype::is_integer(from) => {
                    CastOp::IntegerToDecimal { scale, precision }
                }
                _ => CastOp::General,
            }
        };
        Node::Cast(Box::new(CastPlan {
            input,
            style,
            from_page,
            to_page,
            try_cast,
            op,
        }))
    }
}

/// Whether converting `from` to `to` leaves every value as it is: between variable-length
/// strings that lose no character and cut nothing.
fn preserves_value(from: SqlType, to: SqlType, from_page: CodePage, to_page: CodePage) -> bool {
    if !datatype::is_character(from) {
        return from == to && !datatype::is_character(to) && datatype::is_binary(to);
    }
    let fits = |limit: Option<u16>| match (limit, datatype::char_length(from)) {
        (None, _) => true,
        (Some(limit), Some(length)) => {
            // A UTF-8 varchar(n) holds n bytes, at least as many as its UTF-16 units.
            length <= limit && (datatype::is_unicode(to) || !datatype::is_unicode(from))
        }
        (Some(_), None) => false,
    };
    match to {
        SqlType::NVarChar { length } => fits(length),
        SqlType::VarChar { length } => {
            let lossless =
                to_page == CodePage::Utf8 || (!datatype::is_unicode(from) && from_page == to_page);
            lossless && fits(length)
        }
        _ => false,
    }
}

/// The nodes of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A literal, a parameter, or a folded constant subtree.
    Constant(SqlValue),
    /// The value of a column of the current row.
    Column(usize),
    /// A GROUP BY expression's value for the current group.
    GroupKey(usize),
    /// An aggregate's value for the current group.
    Aggregate(usize),
    /// CAST, CONVERT, an implicit conversion, or a COLLATE that changes code page.
    Cast(Box<CastPlan>),
    /// Unary minus.
    Negate(Box<Plan>),
    /// NOT.
    Not(Box<Plan>),
    /// IS [NOT] NULL.
    IsNull {
        /// Tested expression.
        operand: Box<Plan>,
        /// IS NOT NULL.
        negated: bool,
    },
    /// AND.
    And(Box<Plan>, Box<Plan>),
    /// OR.
    Or(Box<Plan>, Box<Plan>),
    /// A comparison of two operands of one type.
    Compare {
        /// Operator.
        op: Comparison,
        /// Left operand.
        left: Box<Plan>,
        /// Right operand.
        right: Box<Plan>,
        /// How strings compare.
        folding: Folding,
    },
    /// `+ - * / %` on numbers.
    Arithmetic {
        /// Operator.
        op: Arithmetic,
        /// Left operand.
        left: Box<Plan>,
        /// Right operand.
        right: Box<Plan>,
    },
    /// `+` on strings or binaries, flattened (`a + b + c` is one node).
    Concat(Vec<Plan>),
    /// `[NOT] IN (…)`.
    In {
        /// The value looked for.
        needle: Box<Plan>,
        /// The list.
        list: Vec<Plan>,
        /// NOT IN.
        negated: bool,
        /// How strings compare.
        folding: Folding,
    },
    /// `[NOT] BETWEEN low AND high`.
    Between {
        /// Tested expression.
        operand: Box<Plan>,
        /// Lower bound.
        low: Box<Plan>,
        /// Upper bound.
        high: Box<Plan>,
        /// NOT BETWEEN.
        negated: bool,
        /// How strings compare.
        folding: Folding,
    },
    /// CASE (a simple CASE compiles to a searched one).
    Case {
        /// WHEN condition, THEN result.
        branches: Vec<(Plan, Plan)>,
        /// ELSE.
        otherwise: Option<Box<Plan>>,
    },
    /// A scalar function.
    Call {
        /// Which.
        function: super::functions::Function,
        /// Arguments, already converted to what the function takes.
        args: Vec<Plan>,
    },
    /// A subtree that occurs more than once in a statement's expressions; evaluated once per
    /// row into a slot and read from there after.
    Shared {
        /// Slot number.
        slot: usize,
        /// The subtree.
        inner: Box<Plan>,
    },
}

/// Per-row results of shared subtrees, one cell per slot (a slot is only written while it is
/// empty, so reading one slot while computing another never conflicts).
#[derive(Debug, Default)]
pub struct Slots {
    values: Vec<std::cell::RefCell<Option<SqlValue>>>,
}

impl Slots {
    /// Room for `count` shared subtrees.
    pub fn new(count: usize) -> Slots {
        Slots {
            values: (0..count).map(|_| std::cell::RefCell::new(None)).collect(),
        }
    }

    /// Forgets the previous row's values.
    pub fn clear(&self) {
        for cell in &self.values {
            if let Ok(mut value) = cell.try_borrow_mut() {
                *value = None;
            }
        }
    }
}

static NULL: SqlValue = SqlValue::Null;

/// What a plan is evaluated against.
#[derive(Clone, Copy)]
pub struct Env<'r> {
    /// The current row's values.
    pub row: &'r [SqlValue],
    /// The session's database (CDC functions read it).
    pub database: Option<&'r Database>,
    /// The current group's GROUP BY values.
    pub keys: &'r [SqlValue],
    /// The current group's aggregate values.
    pub aggregates: &'r [SqlValue],
    /// Values of shared subtrees for the current row (None: nothing is shared).
    pub slots: Option<&'r Slots>,
}

impl<'r> Env<'r> {
    /// An environment over one row.
    pub fn row(row: &'r [SqlValue], database: Option<&'r Database>) -> Env<'r> {
        Env {
            row,
            database,
            keys: &[],
            aggregates: &[],
            slots: None,
        }
    }
}

fn bit(value: Option<bool>) -> SqlValue {
    value.map_or(SqlValue::Null, SqlValue::Bit)
}

fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn as_truth(value: &SqlValue) -> Option<bool> {
    match value {
        SqlValue::Bit(b) => Some(*b),
        _ => None,
    }
}

impl Plan {
    /// A plan with a non-character type.
    pub fn typed(node: Node, sql_type: SqlType) -> Plan {
        Plan {
            node,
            sql_type,
            collation: None,
            label: Label::Coercible,
            literal: false,
        }
    }

    /// A plan with a character type in `collation`.
    pub fn text(node: Node, sql_type: SqlType, collation: Collation, label: Label) -> Plan {
        Plan {
            node,
            sql_type,
            collation: Some(collation),
            label,
            literal: false,
        }
    }

    /// A constant of `sql_type` (the default collation for character types).
    pub fn constant(value: SqlValue, sql_type: SqlType) -> Plan {
        let collation = datatype::is_character(sql_type).then(Collation::server_default);
        Plan {
            node: Node::Constant(value),
            sql_type,
            collation,
            label: Label::Coercible,
            literal: false,
        }
    }

    fn condition(node: Node) -> Plan {
        Plan::typed(node, SqlType::Bit)
    }

    /// Whether this is the `NULL` literal (typeless where SQL Server infers a type).
    pub fn is_null_literal(&self) -> bool {
        self.literal && self.node == Node::Constant(SqlValue::Null)
    }

    /// Whether this is a condition (comparison, AND/OR/NOT, IS NULL, IN, BETWEEN), what
    /// WHERE, HAVING, ON and WHEN take.
    pub fn is_condition(&self) -> bool {
        matches!(
            self.node,
            Node::Compare { .. }
                | Node::And(..)
                | Node::Or(..)
                | Node::Not(_)
                | Node::IsNull { .. }
                | Node::In { .. }
                | Node::Between { .. }
        )
    }

    /// The code page of this expression's char/varchar text.
    pub fn code_page(&self) -> CodePage {
        self.collation
            .as_ref()
            .map_or(CodePage::Cp1252, |c| c.code_page)
    }

    /// Whether the plan reads the row (a column anywhere in it).
    pub fn reads_row(&self) -> bool {
        let mut reads = false;
        self.visit(&mut |plan| reads |= matches!(plan.node, Node::Column(_)));
        reads
    }

    /// Calls `f` on this plan and every plan under it.
    pub fn visit(&self, f: &mut dyn FnMut(&Plan)) {
        f(self);
        self.children().into_iter().for_each(|c| c.visit(f));
    }

    /// The plans directly under this one.
    pub fn children(&self) -> Vec<&Plan> {
        match &self.node {
            Node::Constant(_) | Node::Column(_) | Node::GroupKey(_) | Node::Aggregate(_) => {
                Vec::new()
            }
            Node::Cast(c) => vec![&c.input],
            Node::Negate(p) | Node::Not(p) | Node::IsNull { operand: p, .. } => vec![p],
            Node::Shared { inner, .. } => vec![inner],
            Node::And(a, b)
            | Node::Or(a, b)
            | Node::Compare {
                left: a, right: b, ..
            }
            | Node::Arithmetic {
                left: a, right: b, ..
            } => vec![a, b],
            Node::Concat(list) | Node::Call { args: list, .. } => list.iter().collect(),
            Node::In { needle, list, .. } => std::iter::once(&**needle).chain(list).collect(),
            Node::Between {
                operand, low, high, ..
            } => vec![operand, low, high],
            Node::Case {
                branches,
                otherwise,
            } => branches
                .iter()
                .flat_map(|(w, t)| [w, t])
                .chain(otherwise.as_deref())
                .collect(),
        }
    }

    /// The plans directly under this one, mutable.
    pub fn children_mut(&mut self) -> Vec<&mut Plan> {
        match &mut self.node {
            Node::Constant(_) | Node::Column(_) | Node::GroupKey(_) | Node::Aggregate(_) => {
                Vec::new()
            }
            Node::Cast(c) => vec![&mut c.input],
            Node::Negate(p) | Node::Not(p) | Node::IsNull { operand: p, .. } => vec![p],
            Node::Shared { inner, .. } => vec![inner],
            Node::And(a, b)
            | Node::Or(a, b)
            | Node::Compare {
                left: a, right: b, ..
            }
            | Node::Arithmetic {
                left: a, right: b, ..
            } => vec![a, b],
            Node::Concat(list) | Node::Call { args: list, .. } => list.iter_mut().collect(),
            Node::In { needle, list, .. } => std::iter::once(&mut **needle)
                .chain(list.iter_mut())
                .collect(),
            Node::Between {
                operand, low, high, ..
            } => vec![operand, low, high],
            Node::Case {
                branches,
                otherwise,
            } => branches
                .iter_mut()
                .flat_map(|(w, t)| [w, t])
                .chain(otherwise.as_deref_mut())
                .collect(),
        }
    }

    /// Evaluates the plan. The common nodes are handled here; the rest in out-of-line
    /// functions, which keeps this frame (entered once per node per row) small.
    pub fn eval(&self, env: &Env<'_>) -> Result<SqlValue, SqlError> {
        match &self.node {
            Node::Constant(value) => Ok(value.clone()),
            Node::Column(i) => Ok(env.row.get(*i).cloned().unwrap_or(SqlValue::Null)),
            Node::Cast(_) => self.eval_cast(env),
            Node::Call { function, args } => function.call(args, self, env),
            Node::Concat(parts) => self.eval_concat(parts, env),
            Node::Shared { .. } => self.with_value(env, |value| Ok(value.clone())),
            _ => self.eval_other(env),
        }
    }

    /// Calls `f` with the plan's value, borrowed where it is already held (a column, a
    /// constant, a group's value, a shared subtree's slot) rather than copied.
    pub fn with_value<R>(
        &self,
        env: &Env<'_>,
        f: impl FnOnce(&SqlValue) -> Result<R, SqlError>,
    ) -> Result<R, SqlError> {
        match &self.node {
            Node::Constant(value) => f(value),
            Node::Column(i) => f(env.row.get(*i).unwrap_or(&NULL)),
            Node::GroupKey(i) => f(env.keys.get(*i).unwrap_or(&NULL)),
            Node::Aggregate(i) => f(env.aggregates.get(*i).unwrap_or(&NULL)),
            Node::Shared { slot, inner } => {
                let Some(cell) = env.slots.and_then(|slots| slots.values.get(*slot)) else {
                    return f(&inner.eval(env)?);
                };
                if cell.try_borrow().is_ok_and(|value| value.is_none()) {
                    let value = inner.eval(env)?;
                    if let Ok(mut held) = cell.try_borrow_mut() {
                        *held = Some(value);
                    } else {
                        return f(&value);
                    }
                }
                match cell.try_borrow() {
                    Ok(held) => match held.as_ref() {
                        Some(value) => f(value),
                        None => f(&inner.eval(env)?),
                    },
                    Err(_) => f(&inner.eval(env)?),
                }
            }
            _ => f(&self.eval(env)?),
        }
    }

    /// Appends a binary plan's value to `out`; false, with nothing appended, when it is NULL.
    /// Concatenations, ISNULL and integer-to-binary casts write straight into `out`, so a row
    /// encoding is built in one buffer.
    pub fn append_binary(&self, env: &Env<'_>, out: &mut Vec<u8>) -> Result<bool, SqlError> {
        match &self.node {
            Node::Concat(parts) if datatype::is_binary(self.sql_type) => {
                let start = out.len();
                for part in parts {
                    if !part.append_binary(env, out)? {
                        out.truncate(start);
                        return Ok(false);
                    }
                }
                if let Some(limit) = datatype::char_length(self.sql_type) {
                    out.truncate(start + usize::from(limit).min(out.len() - start));
                }
                Ok(true)
            }
            Node::Call {
                function: super::functions::Function::IsNull,
                args,
            } if datatype::is_binary(self.sql_type) && args.len() == 2 => {
                if args[0].append_binary(env, out)? {
                    return Ok(true);
                }
                args[1].append_binary(env, out)
            }
            Node::Cast(c)
                if datatype::is_integer(c.input.sql_type) && datatype::is_binary(self.sql_type) =>
            {
                // A computed integer (the usual case: a length) is evaluated straight away.
                let value = match &c.input.node {
                    Node::Column(_) | Node::Constant(_) | Node::Shared { .. } => {
                        c.input.with_value(env, |value| Ok(value.clone()))?
                    }
                    _ => c.input.eval(env)?,
                };
                match value {
                    SqlValue::Int(i) => {
                        super::convert::append_integer_binary(
                            i,
                            c.input.sql_type,
                            self.sql_type,
                            out,
                        );
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            }
            Node::Constant(SqlValue::Binary(bytes)) => {
                out.extend_from_slice(bytes);
                Ok(true)
            }
            Node::Constant(SqlValue::Null) => Ok(false),
            _ => self.with_value(env, |value| match value {
                SqlValue::Binary(bytes) => {
                    out.extend_from_slice(bytes);
                    Ok(true)
                }
                SqlValue::Null => Ok(false),
                _ => Err(error::not_implemented(
                    "a non-binary value in a binary expression",
                )),
            }),
        }
    }

    /// A chain of conversions (`CAST(CAST(CAST(x AS …) AS …) AS …)`) runs in one frame:
    /// the innermost input is evaluated, then each conversion applied outward.
    fn eval_cast(&self, env: &Env<'_>) -> Result<SqlValue, SqlError> {
        const DEPTH: usize = 8;
        let mut chain: [Option<&Plan>; DEPTH] = [None; DEPTH];
        let mut depth = 0;
        let mut input = self;
        while let Node::Cast(c) = &input.node
            && depth < DEPTH
        {
            chain[depth] = Some(input);
            depth += 1;
            input = &c.input;
        }
        // A column or constant at the bottom (the usual case) is read here, not through a call.
        let mut value = match &input.node {
            Node::Column(i) => env.row.get(*i).cloned().unwrap_or(SqlValue::Null),
            Node::Constant(value) => value.clone(),
            _ => input.eval(env)?,
        };
        for owner in chain[..depth].iter().rev().flatten() {
            if let Node::Cast(c) = &owner.node {
                value = owner.convert(c, value)?;
            }
        }
        Ok(value)
    }

    /// Applies this plan's conversion `c` to a value of its input.
    fn convert(&self, c: &CastPlan, value: SqlValue) -> Result<SqlValue, SqlError> {
        let value = match (c.op, value) {
            (CastOp::Identity, value) | (_, value @ SqlValue::Null) => return Ok(value),
            (CastOp::General, value) => value,
            (CastOp::TextToBinary, SqlValue::Text(text)) => {
                return Ok(SqlValue::Binary(
                    if datatype::is_unicode(c.input.sql_type) {
                        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
                    } else {
                        super::collation::encode(text, c.from_page)
                    },
                ));
            }
            (op, value) => match super::convert::fast(op, value, self.sql_type) {
                Ok(value) => return Ok(value),
                Err(value) => value,
            },
        };
        // The conversion was checked when the plan compiled.
        match cast_value(
            value,
            c.input.sql_type,
            self.sql_type,
            c.style,
            c.from_page,
            c.to_page,
        ) {
            Ok(value) => Ok(value),
            Err(e) if c.try_cast && e.number != 529 => Ok(SqlValue::Null),
            Err(e) => Err(e),
        }
    }

    #[inline(never)]
    fn eval_concat(&self, parts: &[Plan], env: &Env<'_>) -> Result<SqlValue, SqlError> {
        if datatype::is_binary(self.sql_type) {
            let mut out = Vec::new();
            return Ok(if self.append_binary(env, &mut out)? {
                SqlValue::Binary(out)
            } else {
                SqlValue::Null
            });
        }
        concat(parts, self.sql_type, self.code_page(), env)
    }

    #[inline(never)]
    fn eval_other(&self, env: &Env<'_>) -> Result<SqlValue, SqlError> {
        Ok(match &self.node {
            Node::GroupKey(i) => env.keys.get(*i).cloned().unwrap_or(SqlValue::Null),
            Node::Aggregate(i) => env.aggregates.get(*i).cloned().unwrap_or(SqlValue::Null),
            Node::Negate(operand) => super::arithmetic::negate(operand.eval(env)?, self.sql_type)?,
            Node::Not(operand) => bit(as_truth(&operand.eval(env)?).map(|b| !b)),
            Node::IsNull { operand, negated } => {
                let null = operand.with_value(env, |value| Ok(*value == SqlValue::Null))?;
                SqlValue::Bit(null != *negated)
            }
            Node::And(a, b) => {
                let left = as_truth(&a.eval(env)?);
                if left == Some(false) {
                    return Ok(SqlValue::Bit(false));
                }
                bit(and(left, as_truth(&b.eval(env)?)))
            }
            Node::Or(a, b) => {
                let left = as_truth(&a.eval(env)?);
                if left == Some(true) {
                    return Ok(SqlValue::Bit(true));
                }
                bit(or(left, as_truth(&b.eval(env)?)))
            }
            Node::Compare {
                op,
                left,
                right,
                folding,
            } => {
                let ordering = left.with_value(env, |a| {
                    right.with_value(env, |b| Ok(compare_folded(a, b, *folding)))
                })?;
                bit(ordering.map(|o| op.holds(o)))
            }
            Node::Arithmetic { op, left, right } => {
                let (a, b) = (left.eval(env)?, right.eval(env)?);
                super::arithmetic::apply(*op, a, b, self.sql_type)?
            }
            Node::In {
                needle,
                list,
                negated,
                folding,
            } => {
                let result = needle.with_value(env, |needle| {
                    let mut result = Some(false);
                    for item in list {
                        let ordering = item
                            .with_value(env, |item| Ok(compare_folded(needle, item, *folding)))?;
                        match ordering {
                            Some(Ordering::Equal) => return Ok(Some(true)),
                            None => result = None,
                            Some(_) => {}
                        }
                    }
                    Ok(result)
                })?;
                bit(if *negated { result.map(|b| !b) } else { result })
            }
            Node::Between {
                operand,
                low,
                high,
                negated,
                folding,
            } => {
                let within = operand.with_value(env, |value| {
                    let above = low.with_value(env, |low| {
                        Ok(compare_folded(value, low, *folding).map(Ordering::is_ge))
                    })?;
                    let below = high.with_value(env, |high| {
                        Ok(compare_folded(value, high, *folding).map(Ordering::is_le))
                    })?;
                    Ok(and(above, below))
                })?;
                bit(if *negated { within.map(|b| !b) } else { within })
            }
            Node::Case {
                branches,
                otherwise,
            } => {
                for (when, then) in branches {
                    if as_truth(&when.eval(env)?) == Some(true) {
                        return then.eval(env);
                    }
                }
                match otherwise {
                    Some(otherwise) => otherwise.eval(env)?,
                    None => SqlValue::Null,
                }
            }
            Node::Constant(_)
            | Node::Column(_)
            | Node::Cast(_)
            | Node::Call { .. }
            | Node::Concat(_)
            | Node::Shared { .. } => return self.eval(env),
        })
    }

    /// Whether a condition holds for the row (UNKNOWN does not).
    pub fn holds(&self, env: &Env<'_>) -> Result<bool, SqlError> {
        Ok(self.eval(env)? == SqlValue::Bit(true))
    }
}

/// `a + b + …` on strings: NULL if any part is NULL; cut to the type's length (8,000 bytes
/// unless a part is a large value type).
fn concat(
    parts: &[Plan],
    sql_type: SqlType,
    page: CodePage,
    env: &Env<'_>,
) -> Result<SqlValue, SqlError> {
    let limit = datatype::char_length(sql_type).map(usize::from);
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        let present = if i == 0 {
            match part.eval(env)? {
                SqlValue::Text(text) => {
                    out = text;
                    true
                }
                _ => false,
            }
        } else {
            part.with_value(env, |value| match value {
                SqlValue::Text(text) => {
                    out.push_str(text);
                    Ok(true)
                }
                _ => Ok(false),
            })?
        };
        if !present {
            return Ok(SqlValue::Null);
        }
    }
    if let Some(limit) = limit
        && super::convert::units(&out, sql_type, page) > limit
    {
        let fitted = cast(SqlValue::Text(out), sql_type, sql_type, None, page, page)?;
        return Ok(fitted);
    }
    Ok(SqlValue::Text(out))
}

/// The GROUP BY expressions and the aggregates of a grouped SELECT, collected while its
/// select list, HAVING and ORDER BY compile.
#[derive(Debug, Default)]
pub struct Grouping {
    /// GROUP BY expressions, compiled over rows.
    pub keys: Vec<Plan>,
    /// The aggregates found, each once.
    pub aggregates: Vec<super::functions::AggregateCall>,
}

/// Compiles expressions of one statement.
pub struct Compiler<'a> {
    columns: &'a [Column],
    qualifiers: &'a [String],
    parameters: &'a Parameters,
    database: Option<&'a Database>,
    /// Set while compiling the select list, HAVING and ORDER BY of a grouped query.
    pub grouping: Option<Grouping>,
    /// Set while compiling an aggregate's argument (another aggregate there is error 130).
    pub in_aggregate: bool,
}

impl<'a> Compiler<'a> {
    /// A compiler for the names of `scope`.
    pub fn new(scope: Scope<'a>) -> Compiler<'a> {
        Compiler {
            columns: scope.row.map_or(&[][..], |(columns, _)| columns),
            qualifiers: scope.qualifiers,
            parameters: scope.parameters,
            database: scope.database,
            grouping: None,
            in_aggregate: false,
        }
    }

    /// A compiler for expressions over rows of `columns`.
    pub fn over(
        columns: &'a [Column],
        qualifiers: &'a [String],
        parameters: &'a Parameters,
        database: Option<&'a Database>,
    ) -> Compiler<'a> {
        Compiler {
            columns,
            qualifiers,
            parameters,
            database,
            grouping: None,
            in_aggregate: false,
        }
    }

    /// The session's database.
    pub fn database(&self) -> Option<&'a Database> {
        self.database
    }

    /// Compiles a condition (WHERE, ON, HAVING): error 4145 when it is not one.
    pub fn condition(&mut self, expr: &Expr) -> Result<Plan, SqlError> {
        let plan = self.compile(expr)?;
        if !plan.is_condition() {
            return Err(error::not_a_condition(&first_token(expr)));
        }
        Ok(plan)
    }

    /// Compiles `expr`.
    pub fn compile(&mut self, expr: &Expr) -> Result<Plan, SqlError> {
        if self.grouping.is_some() {
            return self.compile_grouped(expr);
        }
        self.compile_node(expr)
    }

    /// In a grouped query an expression is an aggregate, a GROUP BY expression, a constant,
    /// or built from those; a column anywhere else is error 8120.
    fn compile_grouped(&mut self, expr: &Expr) -> Result<Plan, SqlError> {
        if let Expr::Function(function) = expr
            && super::functions::is_aggregate(function)
        {
            return super::functions::compile_aggregate(self, function);
        }
        let grouping = self.grouping.take();
        let over_rows = self.compile_node(expr);
        self.grouping = grouping;
        if let Ok(plan) = over_rows {
            if let Some(grouping) = &self.grouping
                && let Some(index) = grouping.keys.iter().position(|k| *k == plan)
            {
                let key = &grouping.keys[index];
                return Ok(Plan {
                    node: Node::GroupKey(index),
                    sql_type: key.sql_type,
                    collation: key.collation.clone(),
                    label: key.label,
                    literal: false,
                });
            }
            if !plan.reads_row() {
                return Ok(plan);
            }
        }
        self.compile_node(expr)
    }

    fn compile_node(&mut self, expr: &Expr) -> Result<Plan, SqlError> {
        let plan = match expr {
            Expr::Value(value) => literal(&value.value)?,
            Expr::Identifier(ident) if ident.value.starts_with('@') => self
                .parameters
                .get(&ident.value.to_lowercase())
                .map(|typed| Plan::constant(typed.value.clone(), typed.sql_type))
                .ok_or_else(|| error::undeclared_variable(&ident.value))?,
            Expr::Identifier(ident) => self.column(None, &ident.value)?,
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [.., qualifier, name] => self.column(Some(&qualifier.value), &name.value)?,
                [name] => self.column(None, &name.value)?,
                [] => return Err(error::syntax("")),
            },
            Expr::Nested(inner) => self.compile(inner)?,
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr: inner,
            } => {
                // `-2147483648` is an int literal, not the negation of a numeric one.
                if let Expr::Value(value) = inner.as_ref()
                    && let Value::Number(text, _) = &value.value
                {
                    let mut plan = number(&format!("-{text}"))?;
                    plan.literal = true;
                    return Ok(plan);
                }
                let operand = self.compile(inner)?;
                self.negate(operand)?
            }
            Expr::UnaryOp {
                op: UnaryOperator::Plus,
                expr: inner,
            } => self.compile(inner)?,
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr: inner,
            } => {
                let operand = self.compile(inner)?;
                if !operand.is_condition() {
                    return Err(error::not_a_condition(&first_token(inner)));
                }
                Plan::condition(Node::Not(Box::new(operand)))
            }
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => Plan::condition(Node::IsNull {
                operand: Box::new(self.compile(inner)?),
                negated: matches!(expr, Expr::IsNotNull(_)),
            }),
            Expr::Cast {
                kind: kind @ (CastKind::Cast | CastKind::TryCast),
                expr: inner,
                data_type,
                ..
            } => {
                let target = target_type(data_type)?;
                let input = self.compile(inner)?;
                self.explicit_cast(input, target, None, *kind == CastKind::TryCast)?
            }
            Expr::Convert {
                is_try,
                expr: inner,
                data_type: Some(data_type),
                styles,
                ..
            } => {
                let target = target_type(data_type)?;
                let style = match styles.first() {
                    Some(style) => match self.compile(style)?.node {
                        Node::Constant(SqlValue::Int(n)) => Some(n),
                        Node::Constant(SqlValue::Null) => None,
                        _ => return Err(error::syntax(&style.to_string())),
                    },
                    None => None,
                };
                let input = self.compile(inner)?;
                self.explicit_cast(input, target, style, *is_try)?
            }
            Expr::Collate {
                expr: inner,
                collation,
            } => {
                let name = collation
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.clone())
                    .unwrap_or_default();
                let collation = Collation::parse(&name)?;
                let input = self.compile(inner)?;
                collate(input, collation)?
            }
            Expr::BinaryOp { left, op, right } => self.binary(left, op, right)?,
            Expr::In {
                expr: needle,
                target: sqlparser::ast::InTarget::List(list),
                negated,
                ..
            } => {
                let mut plans = vec![self.compile(needle)?];
                for item in list {
                    plans.push(self.compile(item)?);
                }
                let (mut plans, folding) = self.comparable(plans, "IN")?;
                let needle = plans.remove(0);
                Plan::condition(Node::In {
                    needle: Box::new(needle),
                    list: plans,
                    negated: *negated,
                    folding,
                })
            }
            Expr::Between {
                expr: operand,
                negated,
                low,
                high,
            } => {
                let plans = vec![
                    self.compile(operand)?,
                    self.compile(low)?,
                    self.compile(high)?,
                ];
                let (plans, folding) = self.comparable(plans, "BETWEEN")?;
                let [operand, low, high]: [Plan; 3] =
                    plans.try_into().map_err(|_| error::syntax("BETWEEN"))?;
                Plan::condition(Node::Between {
                    operand: Box::new(operand),
                    low: Box::new(low),
                    high: Box::new(high),
                    negated: *negated,
                    folding,
                })
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.case(operand.as_deref(), conditions, else_result.as_deref())?,
            Expr::Function(function) => super::functions::compile(self, function)?,
            Expr::Substring {
                expr: inner,
                substring_from,
                substring_for,
                ..
            } => {
                let (Some(from), Some(length)) = (substring_from, substring_for) else {
                    return Err(error::argument_count("substring", 3));
                };
                let args = vec![
                    self.compile(inner)?,
                    self.compile(from)?,
                    self.compile(length)?,
                ];
                super::functions::substring(args)?
            }
            Expr::In { .. } | Expr::Subquery(_) | Expr::Exists { .. } => {
                return Err(error::not_implemented("subqueries"));
            }
            other => {
                return Err(error::not_implemented(&format!("the expression `{other}`")));
            }
        };
        Ok(fold(plan, self.database))
    }

    fn column(&self, qualifier: Option<&str>, name: &str) -> Result<Plan, SqlError> {
        let shown = qualifier.map_or_else(|| name.to_owned(), |q| format!("{q}.{name}"));
        let qualified = |i: usize| {
            qualifier.is_none_or(|q| {
                self.qualifiers
                    .get(i)
                    .is_none_or(|own| own.eq_ignore_ascii_case(q))
            })
        };
        let mut found = (0..self.columns.len())
            .filter(|i| self.columns[*i].name.eq_ignore_ascii_case(name) && qualified(*i));
        let index = found.next().ok_or_else(|| error::invalid_column(&shown))?;
        if found.next().is_some() {
            return Err(error::ambiguous_column(name));
        }
        if self.grouping.is_some() {
            return Err(error::not_grouped(&shown));
        }
        let sql_type = self.columns[index].sql_type;
        Ok(Plan {
            node: Node::Column(index),
            sql_type,
            collation: datatype::is_character(sql_type).then(Collation::server_default),
            label: Label::Implicit,
            literal: false,
        })
    }

    fn negate(&self, operand: Plan) -> Result<Plan, SqlError> {
        let sql_type = operand.sql_type;
        if !datatype::is_number(sql_type) || sql_type == SqlType::Bit {
            let shown = datatype::name(sql_type);
            return Err(error::invalid_operand(
                shown.split('(').next().unwrap_or(&shown),
                "minus",
            ));
        }
        Ok(Plan::typed(Node::Negate(Box::new(operand)), sql_type))
    }

    fn binary(&mut self, left: &Expr, op: &BinaryOperator, right: &Expr) -> Result<Plan, SqlError> {
        use BinaryOperator as B;
        let comparison = match op {
            B::Eq => Some(Comparison::Eq),
            B::NotEq => Some(Comparison::Ne),
            B::Lt => Some(Comparison::Lt),
            B::LtEq => Some(Comparison::Le),
            B::Gt => Some(Comparison::Gt),
            B::GtEq => Some(Comparison::Ge),
            _ => None,
        };
        if let Some(op) = comparison {
            let plans = vec![self.compile(left)?, self.compile(right)?];
            let (plans, folding) = self.comparable(plans, comparison_name(op))?;
            let [left, right]: [Plan; 2] = plans.try_into().map_err(|_| error::syntax("="))?;
            return Ok(Plan::condition(Node::Compare {
                op,
                left: Box::new(left),
                right: Box::new(right),
                folding,
            }));
        }
        match op {
            B::And | B::Or => {
                let (a, b) = (self.compile(left)?, self.compile(right)?);
                for (plan, expr) in [(&a, left), (&b, right)] {
                    if !plan.is_condition() {
                        return Err(error::not_a_condition(&first_token(expr)));
                    }
                }
                Ok(Plan::condition(if *op == B::And {
                    Node::And(Box::new(a), Box::new(b))
                } else {
                    Node::Or(Box::new(a), Box::new(b))
                }))
            }
            B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo => {
                let operator = match op {
                    B::Plus => Arithmetic::Add,
                    B::Minus => Arithmetic::Subtract,
                    B::Multiply => Arithmetic::Multiply,
                    B::Divide => Arithmetic::Divide,
                    _ => Arithmetic::Modulo,
                };
                let (a, b) = (self.compile(left)?, self.compile(right)?);
                self.arithmetic(operator, a, b)
            }
            other => Err(error::not_implemented(&format!("the operator {other}"))),
        }
    }

    /// `a op b` on numbers, or `+` joining strings or binaries.
    pub fn arithmetic(&self, op: Arithmetic, a: Plan, b: Plan) -> Result<Plan, SqlError> {
        let joinable =
            |t: SqlType| datatype::is_character(t) || datatype::is_binary(t) || t == SqlType::Xml;
        if op == Arithmetic::Add && joinable(a.sql_type) && joinable(b.sql_type) {
            return self.concatenation(a, b);
        }
        let typing = super::arithmetic::result_type(op, &a, &b)?;
        let a = self.implicit(a, typing.left)?;
        let b = self.implicit(b, typing.right)?;
        Ok(Plan::typed(
            Node::Arithmetic {
                op,
                left: Box::new(a),
                right: Box::new(b),
            },
            typing.result,
        ))
    }

    fn concatenation(&self, a: Plan, b: Plan) -> Result<Plan, SqlError> {
        let binary = datatype::is_binary(a.sql_type) && datatype::is_binary(b.sql_type);
        if a.sql_type == SqlType::Xml || b.sql_type == SqlType::Xml {
            return Err(error::invalid_operand("xml", "add"));
        }
        let unicode = datatype::is_unicode(a.sql_type) || datatype::is_unicode(b.sql_type);
        let length = match (
            datatype::char_length(a.sql_type),
            datatype::char_length(b.sql_type),
        ) {
            (Some(x), Some(y)) => {
                let limit = if unicode { 4000 } else { 8000 };
                Some((u32::from(x) + u32::from(y)).min(limit) as u16)
            }
            _ => None,
        };
        let result = if binary {
            SqlType::VarBinary { length }
        } else if unicode {
            SqlType::NVarChar { length }
        } else {
            SqlType::VarChar { length }
        };
        let (collation, label) = if binary {
            (None, Label::Coercible)
        } else {
            let (collation, label) = resolve_collation(&[&a, &b], "add")?;
            (Some(collation), label)
        };
        let page = collation.as_ref().map_or(CodePage::Cp1252, |c| c.code_page);
        let mut parts = Vec::new();
        for part in [a, b] {
            // A binary meeting a string becomes the string's type first.
            let part = if !binary && datatype::is_binary(part.sql_type) {
                let target = if unicode {
                    SqlType::NVarChar { length: None }
                } else {
                    SqlType::VarChar { length: None }
                };
                implicit_cast(part, target, page)
            } else if !binary && !unicode && part.code_page() != page {
                recode(part, page)
            } else {
                part
            };
            // Keep `a + b + c` one node, built in one buffer, when the inner concatenation
            // cannot have been cut to its own length (a large value type, or shorter than
            // the 8,000-byte cap) or the outer one is cut the same way.
            let uncut = datatype::is_max(part.sql_type)
                || !datatype::is_max(result)
                || datatype::char_length(part.sql_type).is_some_and(|l| l < 4000);
            match part.node {
                Node::Concat(inner) if uncut => parts.extend(inner),
                _ => parts.push(part),
            }
        }
        let mut plan = Plan::typed(Node::Concat(parts), result);
        plan.collation = collation;
        plan.label = label;
        Ok(plan)
    }

    /// Operands brought to the type they are compared as; the folding of their collation.
    fn comparable(
        &self,
        plans: Vec<Plan>,
        operation: &str,
    ) -> Result<(Vec<Plan>, Folding), SqlError> {
        let mut common: Option<SqlType> = None;
        for plan in plans.iter().filter(|p| !p.is_null_literal()) {
            if plan.sql_type == SqlType::Xml {
                return Err(crate::tds::token::ServerMessage {
                    number: 305,
                    state: 1,
                    class: 16,
                    text: "The XML data type cannot be compared or sorted, except when using the IS NULL operator.".to_owned(),
                });
            }
            common = Some(match common {
                None => plan.sql_type,
                Some(t) => datatype::common(t, plan.sql_type)?,
            });
        }
        let Some(common) = common else {
            return Ok((plans, Folding::CaseInsensitive));
        };
        let folding = if datatype::is_character(common) {
            let refs: Vec<&Plan> = plans
                .iter()
                .filter(|p| datatype::is_character(p.sql_type))
                .collect();
            resolve_collation(&refs, operation)?.0.folding
        } else {
            Folding::Binary
        };
        let plans = plans
            .into_iter()
            .map(|plan| {
                if plan.is_null_literal() || same_kind(plan.sql_type, common) {
                    Ok(plan)
                } else {
                    self.implicit(plan, common)
                }
            })
            .collect::<Result<_, _>>()?;
        Ok((plans, folding))
    }

    /// An implicit conversion of `plan` to `to` (errors 257 and 206 when SQL Server does not
    /// make it by itself).
    pub fn implicit(&self, plan: Plan, to: SqlType) -> Result<Plan, SqlError> {
        if plan.sql_type == to || plan.is_null_literal() {
            let mut plan = plan;
            if plan.is_null_literal() {
                plan.sql_type = to;
            }
            return Ok(plan);
        }
        datatype::check_implicit(plan.sql_type, to)?;
        let page = plan.code_page();
        Ok(fold(implicit_cast(plan, to, page), self.database))
    }

    /// CAST / CONVERT: error 529 when SQL Server never converts between the types.
    pub fn explicit_cast(
        &self,
        input: Plan,
        target: SqlType,
        style: Option<i64>,
        try_cast: bool,
    ) -> Result<Plan, SqlError> {
        if datatype::conversion(input.sql_type, target) == datatype::Conversion::NotAllowed
            && !input.is_null_literal()
        {
            let name = |t: SqlType| {
                let n = datatype::name(t);
                n.split('(').next().unwrap_or(&n).to_owned()
            };
            return Err(error::conversion_not_allowed(
                &name(input.sql_type),
                &name(target),
            ));
        }
        // The result keeps a character input's collation; anything else gets the default.
        let (collation, label) = if datatype::is_character(target) {
            match (&input.collation, datatype::is_character(input.sql_type)) {
                (Some(collation), true) => (Some(collation.clone()), input.label),
                _ => (Some(Collation::server_default()), Label::Coercible),
            }
        } else {
            (None, Label::Coercible)
        };
        let from_page = input.code_page();
        let to_page = collation.as_ref().map_or(CodePage::Cp1252, |c| c.code_page);
        Ok(Plan {
            node: CastPlan::node(input, target, style, from_page, to_page, try_cast),
            sql_type: target,
            collation,
            label,
            literal: false,
        })
    }

    fn case(
        &mut self,
        operand: Option<&Expr>,
        conditions: &[sqlparser::ast::CaseWhen],
        otherwise: Option<&Expr>,
    ) -> Result<Plan, SqlError> {
        let operand = operand.map(|o| self.compile(o)).transpose()?;
        let mut whens = Vec::new();
        let mut results = Vec::new();
        for condition in conditions {
            let when = match &operand {
                // A simple CASE compares the operand with each WHEN value.
                Some(operand) => {
                    let plans = vec![operand.clone(), self.compile(&condition.condition)?];
                    let (plans, folding) = self.comparable(plans, "equal to")?;
                    let [left, right]: [Plan; 2] =
                        plans.try_into().map_err(|_| error::syntax("CASE"))?;
                    Plan::condition(Node::Compare {
                        op: Comparison::Eq,
                        left: Box::new(left),
                        right: Box::new(right),
                        folding,
                    })
                }
                None => {
                    let plan = self.compile(&condition.condition)?;
                    if !plan.is_condition() {
                        return Err(error::not_a_condition(&first_token(&condition.condition)));
                    }
                    plan
                }
            };
            whens.push(when);
            results.push(self.compile(&condition.result)?);
        }
        let otherwise = otherwise.map(|e| self.compile(e)).transpose()?;
        let all: Vec<&Plan> = results.iter().chain(otherwise.as_ref()).collect();
        let result_type = self.result_type(&all)?;
        let (collation, label) = if datatype::is_character(result_type) {
            let characters: Vec<&Plan> = all
                .iter()
                .copied()
                .filter(|p| datatype::is_character(p.sql_type))
                .collect();
            let (collation, label) = resolve_collation(&characters, "CASE")?;
            (Some(collation), label)
        } else {
            (None, Label::Coercible)
        };
        let branches = whens
            .into_iter()
            .zip(results)
            .map(|(when, then)| Ok((when, self.to_result(then, result_type)?)))
            .collect::<Result<Vec<_>, SqlError>>()?;
        let otherwise = otherwise
            .map(|o| self.to_result(o, result_type))
            .transpose()?
            .map(Box::new);
        let mut plan = Plan::typed(
            Node::Case {
                branches,
                otherwise,
            },
            result_type,
        );
        plan.collation = collation;
        plan.label = label;
        Ok(plan)
    }

    /// The type a set of results (CASE branches, COALESCE arguments) shares: NULL literals do
    /// not count; all NULL is int.
    pub fn result_type(&self, plans: &[&Plan]) -> Result<SqlType, SqlError> {
        let mut result: Option<SqlType> = None;
        for plan in plans.iter().filter(|p| !p.is_null_literal()) {
            result = Some(match result {
                None => plan.sql_type,
                Some(t) => datatype::common(t, plan.sql_type)?,
            });
        }
        Ok(result.unwrap_or(SqlType::Int))
    }

    /// `plan` as a value of `result_type` (no conversion when the value needs none).
    pub fn to_result(&self, plan: Plan, result_type: SqlType) -> Result<Plan, SqlError> {
        if plan.is_null_literal() {
            let mut plan = plan;
            plan.sql_type = result_type;
            return Ok(plan);
        }
        if widens_without_change(plan.sql_type, result_type) {
            return Ok(plan);
        }
        self.implicit(plan, result_type)
    }
}

/// Whether a value of `from` already is a value of `to` (a wider varchar, a higher precision
/// at the same scale, a wider integer), so no conversion node is needed.
fn widens_without_change(from: SqlType, to: SqlType) -> bool {
    use SqlType as T;
    let wider = |a: Option<u16>, b: Option<u16>| match (a, b) {
        (_, None) => true,
        (Some(a), Some(b)) => a <= b,
        (None, Some(_)) => false,
    };
    match (from, to) {
        _ if from == to => true,
        (T::VarChar { length: a }, T::VarChar { length: b })
        | (T::NVarChar { length: a }, T::NVarChar { length: b })
        | (T::VarBinary { length: a }, T::VarBinary { length: b }) => wider(a, b),
        (T::VarChar { length: a }, T::NVarChar { length: b }) => wider(a, b),
        (
            T::Decimal {
                precision: p1,
                scale: s1,
            },
            T::Decimal {
                precision: p2,
                scale: s2,
            },
        ) => s1 == s2 && p1 <= p2,
        (a, b) if datatype::is_integer(a) && datatype::is_integer(b) => {
            datatype::precedence(a) <= datatype::precedence(b)
        }
        _ => false,
    }
}

/// Whether values of two types compare without converting one (numbers compare across
/// their kinds by value; strings across char/nchar/varchar/nvarchar).
fn same_kind(a: SqlType, b: SqlType) -> bool {
    let kind = |t: SqlType| match t {
        t if datatype::is_number(t) => 0,
        t if datatype::is_character(t) => 1,
        t if datatype::is_binary(t) => 2,
        SqlType::Date => 3,
        SqlType::Time { .. } => 4,
        SqlType::DateTime | SqlType::SmallDateTime | SqlType::DateTime2 { .. } => 5,
        SqlType::DateTimeOffset { .. } => 6,
        SqlType::UniqueIdentifier => 7,
        _ => 8,
    };
    kind(a) == kind(b)
}

/// An implicit conversion node; a character result keeps the input's collation when it has
/// one, else gets the default in code page `page`.
fn implicit_cast(plan: Plan, to: SqlType, page: CodePage) -> Plan {
    let (collation, label) = if datatype::is_character(to) {
        match (&plan.collation, datatype::is_character(plan.sql_type)) {
            (Some(c), true) => (Some(c.clone()), plan.label),
            _ => (Some(Collation::server_default()), Label::Coercible),
        }
    } else {
        (None, Label::Coercible)
    };
    let to_page = collation.as_ref().map_or(page, |c| c.code_page);
    let from_page = plan.code_page();
    Plan {
        node: CastPlan::node(plan, to, None, from_page, to_page, false),
        sql_type: to,
        collation,
        label,
        literal: false,
    }
}

/// varchar text moved into another code page (a UTF-8 varchar meeting a code-page one).
fn recode(plan: Plan, page: CodePage) -> Plan {
    let sql_type = plan.sql_type;
    let collation = plan.collation.clone();
    let label = plan.label;
    let from_page = plan.code_page();
    Plan {
        node: CastPlan::node(plan, sql_type, None, from_page, page, false),
        sql_type,
        collation,
        label,
        literal: false,
    }
}

/// `expr COLLATE name`: only character expressions take a collation; varchar text moves to
/// the new collation's code page.
fn collate(input: Plan, collation: Collation) -> Result<Plan, SqlError> {
    if !datatype::is_character(input.sql_type) {
        let name = datatype::name(input.sql_type);
        return Err(crate::tds::token::ServerMessage {
            number: 447,
            state: 0,
            class: 16,
            text: format!(
                "Expression type {} is invalid for COLLATE clause.",
                name.split('(').next().unwrap_or(&name)
            ),
        });
    }
    let page = collation.code_page;
    let plan = if !datatype::is_unicode(input.sql_type) && input.code_page() != page {
        recode(input, page)
    } else {
        input
    };
    Ok(Plan {
        collation: Some(collation),
        label: Label::Explicit,
        ..plan
    })
}

/// The collation an operation on character operands uses: an explicit one wins (two different
/// explicit ones conflict, error 468), then a column's, then the default.
pub fn resolve_collation(plans: &[&Plan], operation: &str) -> Result<(Collation, Label), SqlError> {
    let mut chosen: Option<(Collation, Label)> = None;
    for plan in plans {
        let collation = plan
            .collation
            .clone()
            .unwrap_or_else(Collation::server_default);
        let label = if plan.collation.is_some() {
            plan.label
        } else {
            Label::Coercible
        };
        chosen = Some(match chosen {
            None => (collation, label),
            Some((current, current_label)) => {
                let rank = |l: Label| match l {
                    Label::Coercible => 0,
                    Label::Implicit => 1,
                    Label::Explicit => 2,
                };
                match rank(label).cmp(&rank(current_label)) {
                    Ordering::Greater => (collation, label),
                    Ordering::Less => (current, current_label),
                    Ordering::Equal if current.same(&collation) || label == Label::Coercible => {
                        (current, current_label)
                    }
                    Ordering::Equal => {
                        return Err(error::collation_conflict(
                            &current.name,
                            &collation.name,
                            operation,
                        ));
                    }
                }
            }
        });
    }
    Ok(chosen.unwrap_or_else(|| (Collation::server_default(), Label::Coercible)))
}

/// Evaluates a node whose operands are all constants once, at compile time (a failure is
/// left for run time: SQL Server raises it only if a row needs the value).
fn fold(plan: Plan, database: Option<&Database>) -> Plan {
    let foldable = match &plan.node {
        Node::Constant(_)
        | Node::Column(_)
        | Node::GroupKey(_)
        | Node::Aggregate(_)
        | Node::Shared { .. } => false,
        Node::Call { function, .. } if !function.is_foldable() => false,
        _ => plan
            .children()
            .iter()
            .all(|c| matches!(c.node, Node::Constant(_))),
    };
    if !foldable {
        return plan;
    }
    match plan.eval(&Env::row(&[], database)) {
        Ok(value) => Plan {
            node: Node::Constant(value),
            literal: false,
            ..plan
        },
        Err(_) => plan,
    }
}

fn comparison_name(op: Comparison) -> &'static str {
    match op {
        Comparison::Eq => "equal to",
        Comparison::Ne => "not equal to",
        Comparison::Lt => "less than",
        Comparison::Le => "less than or equal to",
        Comparison::Gt => "greater than",
        Comparison::Ge => "greater than or equal to",
    }
}

/// The target type of CAST or CONVERT.
fn target_type(data_type: &DataType) -> Result<SqlType, SqlError> {
    datatype::parse(&data_type.to_string())
        .ok_or_else(|| error::not_implemented(&format!("the type {data_type}")))
}

/// The first word of an expression, for "near …" in messages.
fn first_token(expr: &Expr) -> String {
    expr.to_string()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The type SQL Server gives a literal.
fn literal(value: &Value) -> Result<Plan, SqlError> {
    let mut plan = match value {
        Value::Null => Plan::constant(SqlValue::Null, SqlType::Int),
        Value::Number(text, _) => number(text)?,
        Value::SingleQuotedString(text) => {
            // A varchar literal holds what the database's code page can.
            let text = super::collation::to_code_page(text.clone(), CodePage::Cp1252);
            let length = text.chars().count().clamp(1, 8000) as u16;
            Plan::constant(
                SqlValue::Text(text),
                SqlType::VarChar {
                    length: Some(length),
                },
            )
        }
        Value::NationalStringLiteral(text) => {
            let length = text.encode_utf16().count().clamp(1, 4000) as u16;
            Plan::constant(
                SqlValue::Text(text.clone()),
                SqlType::NVarChar {
                    length: Some(length),
                },
            )
        }
        Value::HexStringLiteral(hex) => Plan::constant(
            SqlValue::Binary(decode_hex(hex).ok_or_else(|| error::syntax(hex))?),
            SqlType::VarBinary {
                length: Some((hex.len().div_ceil(2)).clamp(1, 8000) as u16),
            },
        ),
        Value::Boolean(b) => Plan::constant(SqlValue::Bit(*b), SqlType::Bit),
        other => return Err(error::not_implemented(&format!("the literal `{other}`"))),
    };
    plan.literal = true;
    Ok(plan)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let hex = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_owned()
    };
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Integers within `int` are `int`; other exact numbers are `numeric(p, s)`; exponents make `float`.
fn number(text: &str) -> Result<Plan, SqlError> {
    if text.contains(['e', 'E']) {
        let value = text.parse::<f64>().map_err(|_| error::syntax(text))?;
        return Ok(Plan::constant(SqlValue::Float(value), SqlType::Float));
    }
    if let Ok(int) = text.parse::<i32>() {
        return Ok(Plan::constant(SqlValue::Int(i64::from(int)), SqlType::Int));
    }
    let (unscaled, scale) = parse_decimal(text).ok_or_else(|| error::syntax(text))?;
    let digits = unscaled.unsigned_abs().to_string().len() as u8;
    let precision = digits.max(scale).max(1);
    if precision > 38 {
        return Err(error::overflow("numeric"));
    }
    Ok(Plan::constant(
        SqlValue::Decimal { unscaled, scale },
        SqlType::Decimal { precision, scale },
    ))
}

/// Rewrites each largest subtree that occurs more than once across `plans` (outside
/// constants and plain column reads) into a [`Node::Shared`] slot, so a row computes it once.
/// Inside a shared subtree only what also occurs elsewhere gets a slot of its own. Returns the
/// number of slots.
pub fn share(plans: &mut [&mut Plan]) -> usize {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for plan in plans.iter() {
        plan.visit(&mut |p| {
            if worth_sharing(p) {
                *counts.entry(format!("{p:?}")).or_default() += 1;
            }
        });
    }
    if counts.values().all(|c| *c < 2) {
        return 0;
    }
    let mut slots: HashMap<String, usize> = HashMap::new();
    for plan in plans.iter_mut() {
        assign_slots(plan, 1, &counts, &mut slots);
    }
    slots.len()
}

fn worth_sharing(plan: &Plan) -> bool {
    !matches!(
        plan.node,
        Node::Constant(_) | Node::Column(_) | Node::GroupKey(_) | Node::Aggregate(_)
    )
}

/// Top down: a subtree occurring more often than the shared subtree around it gets a slot.
fn assign_slots(
    plan: &mut Plan,
    enclosing: usize,
    counts: &HashMap<String, usize>,
    slots: &mut HashMap<String, usize>,
) {
    let mut enclosing = enclosing;
    if worth_sharing(plan) {
        let key = format!("{plan:?}");
        let count = counts.get(&key).copied().unwrap_or(0);
        if count > enclosing {
            let next = slots.len();
            let slot = *slots.entry(key).or_insert(next);
            let inner = std::mem::replace(plan, Plan::constant(SqlValue::Null, SqlType::Int));
            *plan = Plan {
                node: Node::Shared {
                    slot,
                    inner: Box::new(inner.clone()),
                },
                ..inner
            };
            enclosing = count;
        }
    }
    match &mut plan.node {
        Node::Shared { inner, .. } => {
            for child in inner.children_mut() {
                assign_slots(child, enclosing, counts, slots);
            }
        }
        _ => {
            for child in plan.children_mut() {
                assign_slots(child, enclosing, counts, slots);
            }
        }
    }
}

//! The SOQL subset the emulator understands: parsing into a syntax tree, then planning and
//! running it against the store (`exec`).

pub mod exec;
mod lexer;
mod parser;

use jiff::civil::Date;

pub use parser::parse;

/// A parsed `SELECT`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The select list.
    pub select: Vec<SelectItem>,
    /// The object (or child relationship, in a subquery) after `FROM`.
    pub from: Name,
    /// The `WHERE` condition.
    pub condition: Option<Cond>,
    /// `ORDER BY` keys.
    pub order: Vec<OrderKey>,
    /// `LIMIT`.
    pub limit: Option<u64>,
    /// `OFFSET`.
    pub offset: Option<u64>,
}

/// A name with its position in the query text.
#[derive(Debug, Clone, PartialEq)]
pub struct Name {
    /// The name as written.
    pub text: String,
    /// Byte offset in the query.
    pub pos: usize,
}

/// A dotted field path such as `Account.Owner.Email`.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// The segments.
    pub parts: Vec<String>,
    /// Byte offset of the first segment.
    pub pos: usize,
}

/// One select-list entry.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// A field or parent-relationship field.
    Field(Path),
    /// `COUNT()`.
    Count,
    /// A child-relationship subquery.
    Subquery(Box<Query>),
}

/// A `WHERE` condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// All must hold.
    And(Vec<Cond>),
    /// One must hold.
    Or(Vec<Cond>),
    /// Negation.
    Not(Box<Cond>),
    /// `field op value`.
    Cmp {
        /// The field.
        field: Path,
        /// The operator.
        op: Op,
        /// The right-hand side.
        value: Literal,
        /// Byte offset of the value.
        value_pos: usize,
    },
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE`
    Like,
    /// `IN (...)`
    In,
    /// `NOT IN (...)`
    NotIn,
    /// `INCLUDES (...)`
    Includes,
    /// `EXCLUDES (...)`
    Excludes,
}

/// A literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number.
    Num(f64),
    /// A quoted string (LIKE escapes `\%`, `\_`, `\\` still in place).
    Str(String),
    /// A date.
    Date(Date),
    /// A datetime in epoch milliseconds.
    DateTime(i64),
    /// A relative date literal such as `TODAY` or `LAST_N_DAYS:7`.
    Relative(String, Option<i64>),
    /// A parenthesised list (for IN, NOT IN, INCLUDES, EXCLUDES).
    List(Vec<Literal>),
}

/// One `ORDER BY` key.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    /// The field.
    pub field: Path,
    /// Ascending.
    pub ascending: bool,
    /// Nulls first (defaults: first for ASC, last for DESC).
    pub nulls_first: bool,
}

/// A query the emulator rejects, with the byte offset the message points at.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SoqlError {
    /// `MALFORMED_QUERY`, `INVALID_FIELD`, `INVALID_TYPE`, ...
    pub code: &'static str,
    /// The message after the location lines.
    pub message: String,
    /// Byte offset in the query.
    pub pos: usize,
}

impl SoqlError {
    /// A syntax error.
    pub fn malformed(pos: usize, message: String) -> Self {
        SoqlError { code: "MALFORMED_QUERY", message, pos }
    }

    /// The full Salesforce message: the query line, a caret, `ERROR at Row:r:Column:c`, the text.
    pub fn render(&self, source: &str) -> String {
        let pos = self.pos.min(source.len());
        let before = &source[..pos];
        let row = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[line_start..].find('\n').map_or(source.len(), |i| line_start + i);
        let column = source[line_start..pos].chars().count() + 1;
        let line = &source[line_start..line_end];
        let caret = " ".repeat(column - 1);
        format!("\n{line}\n{caret}^\nERROR at Row:{row}:Column:{column}\n{}", self.message)
    }
}

/// Removes LIKE-style escapes from a string literal used outside LIKE.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

//! Mapping expressions simple enough to evaluate on the source JSON directly.
//!
//! Most fields of a mapping file read a property of `source`, call a library function on a few
//! of them (`formatDateTime(source.closing, 'yyyy-MM-dd')`), pick a property of the result
//! (`first(source.team).email`), join texts with `~` or look a value up in a table. Handing
//! such a field to the template engine costs a render context and a conversion of every value
//! it touches; a [`Native`] expression computes the same value straight from the JSON.
//!
//! It only ever answers what the engine would: anything it cannot decide the same way (a
//! missing property, a function error, `~` on something other than text, a missing lookup
//! entry) gives `None`, and the field is rendered by the engine, whose error message is the
//! one the flow author sees.

use minijinja::machinery::ast::{BinOpKind, CallArg, Expr};
use serde_json::Value;

use super::functions::{self, Def};
use super::mapping::Mapping;
use super::values::text;
use super::{datetime, template::Compiled};

/// The variable a mapping's fields read.
const SOURCE: &str = "source";

/// An expression over `source`, evaluated without the template engine.
#[derive(Debug, Clone)]
pub(crate) enum Native {
    /// `source.a.b`: property names from `source` (none: `source` itself).
    Path(Vec<String>),
    /// A literal string, number or boolean.
    Literal(Value),
    /// A function of the library (not a workflow function), with as many arguments as it takes.
    Call { f: fn(&[Value]) -> Result<Value, String>, args: Vec<Native> },
    /// Properties of a computed value: `first(source.team).email`.
    Attr(Box<Native>, Vec<String>),
    /// `a ~ b` on texts.
    Concat(Box<Native>, Box<Native>),
    /// `lookup('table', key)` or `lookup('table', key, default)` in the mapping's tables.
    Lookup { table: String, key: Box<Native>, default: Option<Box<Native>> },
    /// `opt(value, 'a', 'b')`: null-safe properties (literal names or indexes).
    Opt(Box<Native>, Vec<Value>),
    /// `a or b`: `a` when it is truthy, else `b`.
    Or(Box<Native>, Box<Native>),
}

impl Native {
    /// The native form of a compiled expression, when it has one.
    pub(crate) fn of(compiled: &Compiled) -> Option<Native> {
        let expr = minijinja::machinery::parse_expr(compiled.source()).ok()?;
        Native::from_ast(&expr)
    }

    fn from_ast(expr: &Expr<'_>) -> Option<Native> {
        match expr {
            Expr::Var(var) if var.id == SOURCE => Some(Native::Path(Vec::new())),
            Expr::Const(c) => {
                let value = serde_json::to_value(&c.value).ok()?;
                (!matches!(value, Value::Array(_) | Value::Object(_))).then_some(Native::Literal(value))
            }
            Expr::GetAttr(_) => {
                let mut names = Vec::new();
                let mut current = expr;
                while let Expr::GetAttr(get) = current {
                    names.push(get.name.to_string());
                    current = &get.expr;
                }
                names.reverse();
                match Native::from_ast(current)? {
                    Native::Path(mut path) => {
                        path.extend(names);
                        Some(Native::Path(path))
                    }
                    computed => Some(Native::Attr(Box::new(computed), names)),
                }
            }
            Expr::BinOp(op) if matches!(op.op, BinOpKind::Concat) => Some(Native::Concat(
                Box::new(Native::from_ast(&op.left)?),
                Box::new(Native::from_ast(&op.right)?),
            )),
            Expr::BinOp(op) if matches!(op.op, BinOpKind::ScOr) => Some(Native::Or(
                Box::new(Native::from_ast(&op.left)?),
                Box::new(Native::from_ast(&op.right)?),
            )),
            Expr::Call(call) => {
                let Expr::Var(name) = &call.expr else { return None };
                let args = call
                    .args
                    .iter()
                    .map(|arg| match arg {
                        CallArg::Pos(expr) => Native::from_ast(expr),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                match name.id {
                    "lookup" => return lookup(args),
                    "opt" => return opt(args),
                    _ => {}
                }
                let def: &Def =
                    functions::PURE.iter().chain(datetime::DATE).find(|def| def.name == name.id)?;
                (def.min..=def.max).contains(&args.len()).then_some(Native::Call { f: def.f, args })
            }
            _ => None,
        }
    }

    /// The expression's value over `source`; `None` when only the engine can tell.
    pub(crate) fn eval(&self, source: &Value, mapping: &Mapping) -> Option<Value> {
        match self {
            Native::Path(path) => follow(source, path).cloned(),
            Native::Literal(value) => Some(value.clone()),
            Native::Call { f, args } => {
                let values = args.iter().map(|arg| arg.eval(source, mapping)).collect::<Option<Vec<_>>>()?;
                f(&values).ok()
            }
            Native::Attr(base, names) => follow(&base.eval(source, mapping)?, names).cloned(),
            Native::Concat(left, right) => {
                match (left.eval(source, mapping)?, right.eval(source, mapping)?) {
                    (Value::String(mut a), Value::String(b)) => {
                        a.push_str(&b);
                        Some(Value::String(a))
                    }
                    _ => None,
                }
            }
            Native::Lookup { table, key, default } => {
                let key = key.eval(source, mapping)?;
                match mapping.lookup(table, &text(&key)).ok()? {
                    Some(value) => Some(value.clone()),
                    None => default.as_ref()?.eval(source, mapping),
                }
            }
            Native::Opt(base, keys) => match &**base {
                // Read in place: the source is not copied to pick a few properties from it.
                Native::Path(path) => opt_walk(follow(source, path)?, keys).cloned(),
                computed => opt_walk(&computed.eval(source, mapping)?, keys).cloned(),
            },
            Native::Or(left, right) => {
                let left = left.eval(source, mapping)?;
                if truthy(&left) { Some(left) } else { right.eval(source, mapping) }
            }
        }
    }
}

/// Whether the template engine counts `value` as true (`x or y`, `if x`).
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// What `opt()` gives for `keys` inside `value`: null for a missing property or a null on the
/// way, `None` for the cases the engine refuses (a property of a text, say).
fn opt_walk<'v>(value: &'v Value, keys: &[Value]) -> Option<&'v Value> {
    static NULL: Value = Value::Null;
    let mut current = value;
    for key in keys {
        current = match (current, key) {
            (Value::Null, _) => return Some(&NULL),
            (Value::Object(map), Value::String(name)) => map.get(name).unwrap_or(&NULL),
            (Value::Array(items), Value::Number(n)) => {
                items.get(usize::try_from(n.as_u64()?).ok()?).unwrap_or(&NULL)
            }
            _ => return None,
        };
    }
    Some(current)
}

/// `opt(value, key…)` with literal keys.
fn opt(mut args: Vec<Native>) -> Option<Native> {
    if args.is_empty() {
        return None;
    }
    let keys = args
        .drain(1..)
        .map(|arg| match arg {
            Native::Literal(key @ (Value::String(_) | Value::Number(_))) => Some(key),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Native::Opt(Box::new(args.pop()?), keys))
}

/// `lookup(table, key[, default])` with the table named by a literal.
fn lookup(mut args: Vec<Native>) -> Option<Native> {
    if !(2..=3).contains(&args.len()) {
        return None;
    }
    let default = (args.len() == 3).then(|| args.pop()).flatten().map(Box::new);
    let key = Box::new(args.pop()?);
    match args.pop()? {
        Native::Literal(Value::String(table)) => Some(Native::Lookup { table, key, default }),
        _ => None,
    }
}

/// The value at `path` (property names) inside `value`, if every property is there.
pub(crate) fn follow<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |current, name| current.as_object()?.get(name))
}

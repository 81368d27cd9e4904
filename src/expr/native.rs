//! Expressions simple enough to evaluate on JSON directly, without the template engine.
//!
//! Most expressions of a flow read a property of the trigger or of an earlier action
//! (`triggerBody().id`, `body('Create').id`), fetch a secret, or apply a mapping file. Most fields
//! of a mapping file read a property of `source`, call a library function on a few of them
//! (`formatDateTime(source.closing, 'yyyy-MM-dd')`), pick a property of the result
//! (`first(source.team).email`), compare numbers, join texts with `~` or a few filters, or look
//! a value up in a table. Handing such an expression to the template engine costs a render
//! context and a conversion of every value it touches; a [`Native`] expression computes the
//! same value straight from the JSON.
//!
//! It only ever answers what the engine would: anything it cannot decide the same way (a
//! missing property, a function error, `~` on something other than text, a missing lookup
//! entry, a comparison of unlike values) gives `None`, and the expression is evaluated by the
//! engine, whose error message is the one the flow author sees.

use std::sync::Arc;

use minijinja::machinery::ast::{BinOpKind, CallArg, Expr};
use serde_json::Value;

use super::functions::{self, Def};
use super::mapping::Mapping;
use super::template::Scope;
use super::values::text;
use super::{datetime, secrets};

/// The variable a mapping's fields read.
const SOURCE: &str = "source";

/// What a native expression can read: a mapping's source and tables, and the run.
#[derive(Clone, Copy, Default)]
pub(crate) struct Inputs<'a> {
    /// The value a mapping is applied to (`source`).
    pub source: Option<&'a Value>,
    /// The mapping being applied, for `lookup()`.
    pub mapping: Option<&'a Mapping>,
    /// The run the expression is evaluated in.
    pub scope: Option<&'a Arc<dyn Scope>>,
}

/// Where a [`Native::Read`] starts.
#[derive(Debug, Clone)]
pub(crate) enum Root {
    /// `source`, in a mapping.
    Source,
    /// `triggerBody()`.
    TriggerBody,
    /// `triggerOutputs()`.
    TriggerOutputs,
    /// `body('name')`: the action's `body`, else its `outputs.body`.
    Body(String),
    /// `outputs('name')`.
    Outputs(String),
}

/// One step into a value: a property name, or a non-negative index into an array.
#[derive(Debug, Clone)]
pub(crate) enum Key {
    Name(String),
    Index(usize),
}

/// A filter applied with `|`, among those computed natively.
#[derive(Debug, Clone)]
pub(crate) enum Filter {
    /// `map(attribute='name')`: that property of every item.
    MapAttribute(String),
    /// `zip(other, …)`: lists of the items at the same position.
    Zip(Vec<Native>),
    /// `map('join', separator)`: every item (a list of texts) joined.
    MapJoin(String),
    /// `join(separator)`: a list of texts joined.
    Join(String),
}

/// An expression over `source` or the run, evaluated without the template engine.
#[derive(Debug, Clone)]
pub(crate) enum Native {
    /// `source.a.b`, `triggerBody().x[0]`, `body('step').id`: a value and steps into it.
    Read(Root, Vec<Key>),
    /// A literal string, number or boolean.
    Literal(Value),
    /// A function of the library (not a workflow function), with as many arguments as it takes.
    Call { f: fn(&[Value]) -> Result<Value, String>, args: Vec<Native> },
    /// Steps into a computed value: `first(source.team).email`.
    Attr(Box<Native>, Vec<Key>),
    /// `a ~ b` on texts.
    Concat(Box<Native>, Box<Native>),
    /// `lookup('table', key)` or `lookup('table', key, default)` in the mapping's tables.
    Lookup { table: String, key: Box<Native>, default: Option<Box<Native>> },
    /// `opt(value, 'a', 'b')`: null-safe properties (literal names or indexes).
    Opt(Box<Native>, Vec<Value>),
    /// `a or b`: `a` when it is truthy, else `b`.
    Or(Box<Native>, Box<Native>),
    /// `a == b`, `a < b`…: numbers with numbers, or (for `==` and `!=`) texts or booleans alike.
    Compare(BinOpKind, Box<Native>, Box<Native>),
    /// `value | filter`.
    Filter(Box<Native>, Filter),
    /// `secret('NAME')`.
    Secret(String),
    /// `mapping('name', value)`: a mapping file applied to a value.
    Mapping(String, Box<Native>),
}

impl Native {
    /// The native form of an expression's source text, when it has one.
    pub(crate) fn parse(source: &str) -> Option<Native> {
        let expr = minijinja::machinery::parse_expr(source).ok()?;
        Native::from_ast(&expr)
    }

    fn from_ast(expr: &Expr<'_>) -> Option<Native> {
        match expr {
            Expr::Var(var) if var.id == SOURCE => Some(Native::Read(Root::Source, Vec::new())),
            Expr::Const(c) => {
                let value = serde_json::to_value(&c.value).ok()?;
                (!matches!(value, Value::Array(_) | Value::Object(_))).then_some(Native::Literal(value))
            }
            Expr::GetAttr(_) | Expr::GetItem(_) => {
                let mut keys = Vec::new();
                let mut current = expr;
                loop {
                    match current {
                        Expr::GetAttr(get) => {
                            keys.push(Key::Name(get.name.to_string()));
                            current = &get.expr;
                        }
                        Expr::GetItem(get) => {
                            keys.push(constant_key(&get.subscript_expr)?);
                            current = &get.expr;
                        }
                        _ => break,
                    }
                }
                keys.reverse();
                match Native::from_ast(current)? {
                    Native::Read(root, mut path) => {
                        path.extend(keys);
                        Some(Native::Read(root, path))
                    }
                    computed => Some(Native::Attr(Box::new(computed), keys)),
                }
            }
            Expr::BinOp(op) => {
                let (left, right) = (Native::from_ast(&op.left)?, Native::from_ast(&op.right)?);
                let (left, right) = (Box::new(left), Box::new(right));
                match op.op {
                    BinOpKind::Concat => Some(Native::Concat(left, right)),
                    BinOpKind::ScOr => Some(Native::Or(left, right)),
                    kind @ (BinOpKind::Eq
                    | BinOpKind::Ne
                    | BinOpKind::Lt
                    | BinOpKind::Lte
                    | BinOpKind::Gt
                    | BinOpKind::Gte) => Some(Native::Compare(kind, left, right)),
                    _ => None,
                }
            }
            Expr::Filter(filter) => {
                let base = Native::from_ast(filter.expr.as_ref()?)?;
                Some(Native::Filter(Box::new(base), Filter::from_ast(filter.name, &filter.args)?))
            }
            Expr::Call(call) => {
                let Expr::Var(name) = &call.expr else { return None };
                let args = call.args.iter().map(positional).collect::<Option<Vec<_>>>()?;
                match (name.id, args.as_slice()) {
                    ("lookup", _) => return lookup(args),
                    ("opt", _) => return opt(args),
                    ("triggerBody", []) => return Some(Native::Read(Root::TriggerBody, Vec::new())),
                    ("triggerOutputs", []) => return Some(Native::Read(Root::TriggerOutputs, Vec::new())),
                    ("body", [Native::Literal(Value::String(action))]) => {
                        return Some(Native::Read(Root::Body(action.clone()), Vec::new()));
                    }
                    ("outputs", [Native::Literal(Value::String(action))]) => {
                        return Some(Native::Read(Root::Outputs(action.clone()), Vec::new()));
                    }
                    ("secret", [Native::Literal(Value::String(secret))]) => {
                        return Some(Native::Secret(secret.clone()));
                    }
                    ("mapping", [Native::Literal(Value::String(_)), _]) => {
                        let mut args = args;
                        let value = Box::new(args.pop()?);
                        let Some(Native::Literal(Value::String(name))) = args.pop() else { return None };
                        return Some(Native::Mapping(name, value));
                    }
                    _ => {}
                }
                let def: &Def =
                    functions::PURE.iter().chain(datetime::DATE).find(|def| def.name == name.id)?;
                (def.min..=def.max).contains(&args.len()).then_some(Native::Call { f: def.f, args })
            }
            _ => None,
        }
    }

    /// The expression's value; `None` when only the engine can tell.
    pub(crate) fn eval(&self, inputs: &Inputs<'_>) -> Option<Value> {
        match self {
            Native::Read(root, path) => read(root, path, inputs, |value| value.clone()),
            Native::Literal(value) => Some(value.clone()),
            Native::Call { f, args } => {
                let values = args.iter().map(|arg| arg.eval(inputs)).collect::<Option<Vec<_>>>()?;
                f(&values).ok()
            }
            Native::Attr(base, keys) => follow(&base.eval(inputs)?, keys).cloned(),
            Native::Concat(left, right) => match (left.eval(inputs)?, right.eval(inputs)?) {
                (Value::String(mut a), Value::String(b)) => {
                    a.push_str(&b);
                    Some(Value::String(a))
                }
                _ => None,
            },
            Native::Lookup { table, key, default } => {
                let key = key.eval(inputs)?;
                match inputs.mapping?.lookup(table, &text(&key)).ok()? {
                    Some(value) => Some(value.clone()),
                    None => default.as_ref()?.eval(inputs),
                }
            }
            Native::Opt(base, keys) => match &**base {
                // Read in place: the value is not copied to pick a few properties from it.
                Native::Read(root, path) => {
                    read(root, path, inputs, |value| opt_walk(value, keys).cloned()).flatten()
                }
                computed => opt_walk(&computed.eval(inputs)?, keys).cloned(),
            },
            Native::Or(left, right) => {
                let left = left.eval(inputs)?;
                if truthy(&left) { Some(left) } else { right.eval(inputs) }
            }
            Native::Compare(kind, left, right) => {
                compare(*kind, &left.eval(inputs)?, &right.eval(inputs)?).map(Value::Bool)
            }
            Native::Filter(base, filter) => filter.apply(base.eval(inputs)?, inputs),
            Native::Secret(name) => secrets::secret(name).ok().map(Value::String),
            Native::Mapping(name, value) => {
                let scope = inputs.scope?;
                let mapping = scope.mappings()?.get(name)?;
                let apply = |source: &Value| mapping.render(source, Some(scope)).ok();
                match &**value {
                    // The source is read in place, not copied for the mapping.
                    Native::Read(root, path) => read(root, path, inputs, apply).flatten(),
                    computed => apply(&computed.eval(inputs)?),
                }
            }
        }
    }
}

impl Filter {
    fn from_ast(name: &str, args: &[CallArg<'_>]) -> Option<Filter> {
        let literal_text = |arg: &CallArg<'_>| match positional(arg)? {
            Native::Literal(Value::String(text)) => Some(text),
            _ => None,
        };
        match (name, args) {
            ("map", [CallArg::Kwarg("attribute", Expr::Const(c))]) => {
                let name = c.value.as_str()?;
                (!name.contains('.')).then(|| Filter::MapAttribute(name.to_string()))
            }
            ("map", [filter, separator]) if literal_text(filter)? == "join" => {
                Some(Filter::MapJoin(literal_text(separator)?))
            }
            ("zip", others) if !others.is_empty() => {
                Some(Filter::Zip(others.iter().map(positional).collect::<Option<_>>()?))
            }
            ("join", []) => Some(Filter::Join(String::new())),
            ("join", [separator]) => Some(Filter::Join(literal_text(separator)?)),
            _ => None,
        }
    }

    fn apply(&self, value: Value, inputs: &Inputs<'_>) -> Option<Value> {
        let Value::Array(items) = value else { return None };
        match self {
            Filter::MapAttribute(name) => items
                .into_iter()
                .map(|item| match item {
                    Value::Object(mut map) => map.swap_remove(name.as_str()),
                    _ => None,
                })
                .collect::<Option<_>>()
                .map(Value::Array),
            Filter::Zip(others) => {
                let mut lists = vec![items];
                for other in others {
                    match other.eval(inputs)? {
                        Value::Array(list) => lists.push(list),
                        _ => return None,
                    }
                }
                let len = lists.iter().map(Vec::len).min().unwrap_or(0);
                let mut columns: Vec<_> = lists.into_iter().map(Vec::into_iter).collect();
                let rows =
                    (0..len).map(|_| Value::Array(columns.iter_mut().filter_map(Iterator::next).collect()));
                Some(Value::Array(rows.collect()))
            }
            Filter::MapJoin(separator) => items
                .iter()
                .map(|item| join_texts(item.as_array()?, separator).map(Value::String))
                .collect::<Option<_>>()
                .map(Value::Array),
            Filter::Join(separator) => join_texts(&items, separator).map(Value::String),
        }
    }
}

/// Texts joined with `separator`; `None` if an item is not a text (the engine prints those).
fn join_texts(items: &[Value], separator: &str) -> Option<String> {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        out.push_str(item.as_str()?);
    }
    Some(out)
}

/// `left <op> right` where the answer cannot differ from the engine's.
fn compare(kind: BinOpKind, left: &Value, right: &Value) -> Option<bool> {
    use std::cmp::Ordering;
    let order = match (left, right) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => a.as_f64()?.partial_cmp(&b.as_f64()?)?,
        },
        (Value::String(a), Value::String(b)) if matches!(kind, BinOpKind::Eq | BinOpKind::Ne) => a.cmp(b),
        (Value::Bool(a), Value::Bool(b)) if matches!(kind, BinOpKind::Eq | BinOpKind::Ne) => a.cmp(b),
        _ => return None,
    };
    Some(match kind {
        BinOpKind::Eq => order == Ordering::Equal,
        BinOpKind::Ne => order != Ordering::Equal,
        BinOpKind::Lt => order == Ordering::Less,
        BinOpKind::Lte => order != Ordering::Greater,
        BinOpKind::Gt => order == Ordering::Greater,
        BinOpKind::Gte => order != Ordering::Less,
        _ => return None,
    })
}

/// Calls `f` with the value at `path` from `root`, read in place; `None` if it is not there.
fn read<R>(root: &Root, path: &[Key], inputs: &Inputs<'_>, f: impl FnOnce(&Value) -> R) -> Option<R> {
    static NULL: Value = Value::Null;
    match root {
        Root::Source => Some(f(follow(inputs.source?, path)?)),
        Root::TriggerBody | Root::TriggerOutputs => {
            let outputs = inputs.scope?.trigger();
            let start = match root {
                Root::TriggerBody => outputs.get("body").unwrap_or(&NULL),
                _ => &outputs,
            };
            Some(f(follow(start, path)?))
        }
        Root::Body(action) | Root::Outputs(action) => {
            let found = inputs.scope?.action_outputs(action)?;
            let start = match root {
                Root::Body(_) => found.body(),
                _ => found.outputs(),
            };
            Some(f(follow(start, path)?))
        }
    }
}

/// A subscript the native form takes: a literal name or a non-negative literal index.
fn constant_key(expr: &Expr<'_>) -> Option<Key> {
    let Expr::Const(c) = expr else { return None };
    match c.value.as_str() {
        Some(name) => Some(Key::Name(name.to_string())),
        None => Some(Key::Index(usize::try_from(c.value.as_i64()?).ok()?)),
    }
}

/// A positional argument's native form.
fn positional(arg: &CallArg<'_>) -> Option<Native> {
    match arg {
        CallArg::Pos(expr) => Native::from_ast(expr),
        _ => None,
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

/// The value at `path` inside `value`, if every step is there.
pub(crate) fn follow<'v>(value: &'v Value, path: &[Key]) -> Option<&'v Value> {
    path.iter().try_fold(value, |current, key| match (current, key) {
        (Value::Object(map), Key::Name(name)) => map.get(name),
        (Value::Array(items), Key::Index(index)) => items.get(*index),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::expr::template::{ActionOutputs, context};
    use crate::expr::{Mappings, compile};

    /// A run with a trigger, one finished action (`Create`) and one mapping file (`m`).
    #[derive(Debug)]
    struct Run {
        trigger: Arc<Value>,
        create: Arc<Created>,
        mappings: Mappings,
    }

    #[derive(Debug)]
    struct Created(Value);

    impl ActionOutputs for Created {
        fn outputs(&self) -> &Value {
            &self.0
        }
        fn body(&self) -> &Value {
            &self.0["body"]
        }
    }

    impl Scope for Run {
        fn trigger(&self) -> Arc<Value> {
            self.trigger.clone()
        }
        fn action(&self, name: &str) -> Option<Arc<Value>> {
            let outputs = &self.create.0;
            (name == "Create").then(|| {
                Arc::new(
                    json!({"name": name, "status": "Succeeded", "outputs": outputs, "body": outputs["body"]}),
                )
            })
        }
        fn action_outputs(&self, name: &str) -> Option<Arc<dyn ActionOutputs>> {
            (name == "Create").then(|| self.create.clone() as Arc<dyn ActionOutputs>)
        }
        fn variable(&self, _name: &str) -> Option<Value> {
            None
        }
        fn parameter(&self, _name: &str) -> Option<Value> {
            None
        }
        fn item(&self, _loop_name: Option<&str>) -> Option<Value> {
            None
        }
        fn iteration_index(&self, _loop_name: &str) -> Option<usize> {
            None
        }
        fn result(&self, _container: &str) -> Option<Value> {
            None
        }
        fn workflow(&self) -> Value {
            json!({"name": "test"})
        }
        fn mappings(&self) -> Option<&Mappings> {
            Some(&self.mappings)
        }
    }

    fn run() -> Arc<dyn Scope> {
        let body = json!({
            "id": "R-1", "name": "Deal", "n": 250000, "f": 2.5,
            "team": [{"first": "Ada", "last": "Lovelace", "age": 36}, {"first": "Alan", "last": "Turing", "age": 41}]
        });
        let mut mappings = Mappings::default();
        let text = "fields:\n  Name: '{{ source.name }}'\n  Big: '{{ source.n >= 100000 }}'\n  First: '{{ source.team[0].first }}'\n";
        mappings.insert(Mapping::parse("m", text, Path::new("m.yaml")).unwrap_or_else(|e| panic!("{e}")));
        Arc::new(Run {
            trigger: Arc::new(json!({"headers": {}, "body": body})),
            create: Arc::new(Created(json!({"statusCode": 201, "body": {"id": "OPP-1"}}))),
            mappings,
        })
    }

    /// The value (or error message) of `source` rendered natively where it can be, and by the
    /// template engine alone.
    fn both_ways(scope: &Arc<dyn Scope>, source: &str) -> (Result<Value, String>, Result<Value, String>) {
        let template =
            compile(&Value::String(format!("{{{{ {source} }}}}"))).unwrap_or_else(|e| panic!("{e}"));
        let native = template.render(scope).map_err(|e| e.message);
        let engine = template.render_in(&context(Some(scope.clone()), &[])).map_err(|e| e.message);
        (native, engine)
    }

    #[test]
    fn run_reads_filters_and_comparisons_give_what_the_engine_gives() {
        let scope = run();
        let inputs = Inputs { scope: Some(&scope), ..Inputs::default() };
        for source in [
            "triggerBody().id",
            "triggerBody()['name']",
            "triggerBody().team[0].first",
            "triggerOutputs().body.id",
            "body('Create').id",
            "outputs('Create').statusCode",
            "mapping('m', triggerBody())",
            "triggerBody().n >= 100000",
            "triggerBody().n < 5",
            "triggerBody().n == 250000.0",
            "triggerBody().f > 2",
            "triggerBody().name != 'x'",
            "triggerBody().team | map(attribute='first') | zip(triggerBody().team | map(attribute='last')) | map('join', ' ') | join('; ')",
            "triggerBody().team | map(attribute='first') | join",
        ] {
            let (native, engine) = both_ways(&scope, source);
            assert_eq!(native, engine, "{source}");
            let natively = Native::parse(source).and_then(|n| n.eval(&inputs));
            assert!(natively.is_some(), "{source} is evaluated natively");
        }
        assert_eq!(
            both_ways(&scope, "triggerBody().team | map(attribute='first') | zip(triggerBody().team | map(attribute='last')) | map('join', ' ') | join('; ')").0,
            Ok(json!("Ada Lovelace; Alan Turing"))
        );
    }

    #[test]
    fn what_only_the_engine_decides_falls_back_to_it() {
        let scope = run();
        let inputs = Inputs { scope: Some(&scope), ..Inputs::default() };
        for source in [
            "triggerBody().missing",
            "triggerBody().team[5].first",
            "body('Nope').id",
            "triggerBody().team | map(attribute='age') | join(',')",
            "triggerBody().team | map(attribute='nope') | join(',')",
            "triggerBody().name == 1",
            "triggerBody().id ~ 1",
        ] {
            assert!(Native::parse(source).is_some_and(|n| n.eval(&inputs).is_none()), "{source}");
            let (native, engine) = both_ways(&scope, source);
            assert_eq!(native, engine, "{source}");
        }
        assert!(Native::parse("triggerBody().name < 'z'").is_some_and(|n| n.eval(&inputs).is_none()));
    }
}

//! Compiled templates and the scope they are rendered in.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use minijinja::value::{Object, Rest, Value as JinjaValue, ValueKind};
use minijinja::{Environment, ErrorKind, Expression, State, UndefinedBehavior};
use regex::Regex;
use serde_json::Value;

use super::functions::{self, Def};
use super::native::{Inputs, Native};
use super::values::{from_json_owned, from_json_shared, text, to_json, try_to_json};
use super::{datetime, secrets, sync, workflow};

/// What a template can see of the run it is rendered in. The engine implements it.
pub trait Scope: Send + Sync + std::fmt::Debug {
    /// The trigger's outputs: `{"headers": …, "body": …}`, shared rather than copied: every
    /// template of a run reads the same document.
    fn trigger(&self) -> Arc<Value>;
    /// The record of a finished action: `{"name", "status", "inputs", "outputs", "body", "error", …}`,
    /// shared rather than copied: it is built once, however many templates read it.
    fn action(&self, name: &str) -> Option<Arc<Value>>;
    /// What `outputs('x')` and `body('x')` read of a finished action, shared and in place,
    /// without building its whole record. `None` leaves those reads to the template engine.
    fn action_outputs(&self, _name: &str) -> Option<Arc<dyn ActionOutputs>> {
        None
    }
    /// The current value of a variable.
    fn variable(&self, name: &str) -> Option<Value>;
    /// The value of a flow parameter.
    fn parameter(&self, name: &str) -> Option<Value>;
    /// The current item of the named loop, or of the innermost loop / select / filter when `None`.
    fn item(&self, loop_name: Option<&str>) -> Option<Value>;
    /// The current index of the named loop.
    fn iteration_index(&self, loop_name: &str) -> Option<usize>;
    /// Records of the actions directly inside a scope, if, switch or loop (`result('x')`).
    fn result(&self, container: &str) -> Option<Value>;
    /// Facts about the flow and the run (`workflow()`).
    fn workflow(&self) -> Value;
    /// The mapping files available to `mapping('name', value)`.
    fn mappings(&self) -> Option<&super::Mappings> {
        None
    }
    /// The sync settings of the flow (`settings/sync.yaml`), for the sync functions.
    fn sync_settings(&self) -> Arc<super::SyncSettings> {
        static DEFAULT: LazyLock<Arc<super::SyncSettings>> = LazyLock::new(Default::default);
        DEFAULT.clone()
    }
}

/// A finished action's outputs as `outputs('x')` and `body('x')` read them.
pub trait ActionOutputs: Send + Sync {
    /// The action's outputs (`null` when it has none).
    fn outputs(&self) -> &Value;
    /// What `body('x')` gives: the outputs' `body`, or the outputs themselves for actions whose
    /// outputs are their body (compose, select…).
    fn body(&self) -> &Value;
}

/// An expression or template error, with the expression it came from.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    /// What went wrong, in words for the flow author.
    pub message: String,
    /// The expression text, when known.
    pub source_text: Option<String>,
}

/// minijinja names the expression that produced an undefined value in its error detail.
static UNDEFINED_DETAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"`(.+)` is undefined").unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// The location suffix minijinja appends, which means nothing to a flow author.
static LOCATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r" \(in <expression>:\d+\)$").unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

impl ExprError {
    /// An error with a message about the expression `source`.
    pub fn new(message: impl Into<String>, source: Option<&str>) -> Self {
        ExprError { message: secrets::redact(&message.into()), source_text: source.map(str::to_string) }
    }

    fn from_jinja(err: &minijinja::Error, source: &str) -> Self {
        let detail = err.detail().unwrap_or_default();
        if let Some(found) = UNDEFINED_DETAIL.captures(detail) {
            return Self::new(missing_message(&found[1], source), Some(source));
        }
        let message = match err.kind() {
            ErrorKind::InvalidOperation | ErrorKind::UnknownFunction if !detail.is_empty() => {
                detail.to_string()
            }
            _ => LOCATION.replace(&err.to_string(), "").into_owned(),
        };
        Self::new(message, Some(source))
    }
}

/// The message for `expr` being undefined: a missing property, index or name. minijinja
/// abbreviates call arguments as `(...)`; the expression's `source` fills them back in.
fn missing_message(expr: &str, source: &str) -> String {
    let (base, key) = split_last_access(expr);
    let Some(mut base) = base.map(str::to_string) else {
        return format!(
            "`{expr}` is not defined: a template sees functions such as triggerBody(), body('action') and variables('name'), and `source` inside a mapping"
        );
    };
    let shown = if expr.contains("(...)") { source } else { expr };
    if base.contains("(...)") {
        let (source_base, _) = split_last_access(source);
        base = source_base.filter(|b| !b.is_empty()).unwrap_or("value").to_string();
    }
    if key.parse::<i64>().is_ok() {
        return format!(
            "index {key} is outside the array in `{shown}`: write opt({base}, {key}) to get null instead"
        );
    }
    format!(
        "property {key} doesn't exist in `{shown}`: write opt({base}, {key}) to get null when it may be missing"
    )
}

/// Splits `a.b['c']` into (`a.b`, `'c'`) and `a.b` into (`a`, `'b'`).
fn split_last_access(expr: &str) -> (Option<&str>, String) {
    let expr = expr.trim();
    if let Some(stripped) = expr.strip_suffix(']') {
        if let Some(open) = stripped.rfind('[') {
            return (Some(&expr[..open]), stripped[open + 1..].to_string());
        }
    }
    if let Some(dot) = expr.rfind('.') {
        let key = &expr[dot + 1..];
        if key.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return (Some(&expr[..dot]), format!("'{key}'"));
        }
    }
    (None, expr.to_string())
}

/// Names a template refers to, for the compiler's checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Actions named in `body('x')`, `outputs('x')`, `actions('x')`, `result('x')`.
    pub actions: BTreeSet<String>,
    /// Variables named in `variables('x')`.
    pub variables: BTreeSet<String>,
    /// Functions called.
    pub functions: BTreeSet<String>,
}

/// A compiled flow value.
#[derive(Debug, Clone)]
pub enum Template {
    /// No `{{`: used as is.
    Literal(Value),
    /// Exactly one `{{ expression }}`: keeps the expression's type.
    Expr(Arc<Compiled>),
    /// Text with interpolations: renders to a string.
    Text(Vec<Part>),
    /// An array whose items are templates.
    Array(Vec<Template>),
    /// An object whose values are templates.
    Object(Vec<(String, Template)>),
}

/// One piece of an interpolated string.
#[derive(Debug, Clone)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// An interpolated expression.
    Expr(Arc<Compiled>),
}

/// A precompiled minijinja expression, its source, and its native form when it has one.
pub struct Compiled {
    source: String,
    expr: Expression<'static, 'static>,
    native: Option<Native>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{{{ {} }}}}", self.source)
    }
}

static ENV: LazyLock<Environment<'static>> = LazyLock::new(build_environment);

/// The one environment every template is compiled in.
pub fn environment() -> &'static Environment<'static> {
    &ENV
}

/// Names of every function the environment provides, for checks and the translator.
pub fn function_names() -> impl Iterator<Item = &'static str> {
    functions::PURE
        .iter()
        .chain(datetime::DATE)
        .map(|d| d.name)
        .chain(workflow::NAMES.iter().copied())
        .chain(["secret", "mapping", "lookup", "opt"])
        .chain(sync::NAMES.iter().copied())
}

fn build_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Debug mode makes minijinja remember which expression produced an undefined value,
    // which is how a missing property gets named in the error.
    env.set_debug(true);
    for def in functions::PURE.iter().chain(datetime::DATE) {
        env.add_function(def.name, move |args: Rest<JinjaValue>| call_pure(def, &args));
    }
    workflow::register(&mut env);
    sync::register(&mut env);
    env.add_function("secret", |name: String| -> Result<String, minijinja::Error> {
        secrets::secret(&name).map_err(|e| invalid(e.to_string()))
    });
    env.add_function("opt", |args: Rest<JinjaValue>| opt(&args));
    env.add_function("__strict", |value: JinjaValue| -> Result<JinjaValue, minijinja::Error> {
        if value.is_undefined() { Err(undefined_error(&value)) } else { Ok(value) }
    });
    env
}

/// Calls a pure library function: checks arity and missing values, converts to JSON and back.
fn call_pure(def: &Def, args: &[JinjaValue]) -> Result<JinjaValue, minijinja::Error> {
    check_args(def.name, def.min, def.max, args)?;
    let json: Vec<Value> = args.iter().map(to_json).collect();
    (def.f)(&json).map(from_json_owned).map_err(|m| invalid(format!("{}(): {m}", def.name)))
}

/// Null-safe property access, what Power Automate writes as `value?['a']?['b']`: a missing
/// property or a `null` along the way gives `null` instead of an error. It works on minijinja
/// values directly, so a large object is never converted.
fn opt(args: &[JinjaValue]) -> Result<JinjaValue, minijinja::Error> {
    check_args("opt", 1, usize::MAX, args)?;
    let mut current = args[0].clone();
    for key in &args[1..] {
        match current.kind() {
            ValueKind::None => return Ok(current),
            ValueKind::Map | ValueKind::Seq => {
                current = current.get_item(key)?;
                if current.is_undefined() {
                    return Ok(JinjaValue::from(()));
                }
            }
            _ => {
                let kind = match current.kind() {
                    ValueKind::String => "String",
                    ValueKind::Bool => "Boolean",
                    ValueKind::Number if current.is_integer() => "Integer",
                    ValueKind::Number => "Float",
                    _ => "Other",
                };
                return Err(invalid(format!(
                    "opt(): property {key:?} cannot be selected: property selection is not supported on values of type '{kind}'"
                )));
            }
        }
    }
    Ok(current)
}

/// Checks the argument count and refuses undefined (missing) values, naming where they came from.
pub(crate) fn check_args(
    name: &str,
    min: usize,
    max: usize,
    args: &[JinjaValue],
) -> Result<(), minijinja::Error> {
    if args.len() < min || args.len() > max {
        let expected = match (min, max) {
            (a, b) if a == b => format!("{a}"),
            (a, usize::MAX) => format!("at least {a}"),
            (a, b) => format!("{a} to {b}"),
        };
        return Err(invalid(format!("{name}() takes {expected} arguments, not {}", args.len())));
    }
    match args.iter().find(|a| a.is_undefined()) {
        Some(missing) => Err(undefined_error(missing)),
        None => Ok(()),
    }
}

/// An error for an undefined value that carries minijinja's note of where it came from.
pub(crate) fn undefined_error(value: &JinjaValue) -> minijinja::Error {
    match bool::try_from(value.clone()) {
        Err(e) => e,
        Ok(_) => minijinja::Error::from(ErrorKind::UndefinedError),
    }
}

pub(crate) fn invalid(message: String) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, message)
}

/// The scope object is passed in the render context under this name.
pub(crate) const SCOPE_KEY: &str = "__scope";

/// The run's scope as minijinja sees it, with per-render caches of converted values.
#[derive(Debug)]
pub(crate) struct ScopeHandle {
    pub(crate) scope: Arc<dyn Scope>,
    trigger: OnceLock<JinjaValue>,
    actions: Mutex<Vec<(String, JinjaValue)>>,
}

impl Object for ScopeHandle {}

impl ScopeHandle {
    pub(crate) fn new(scope: Arc<dyn Scope>) -> Self {
        ScopeHandle { scope, trigger: OnceLock::new(), actions: Mutex::new(Vec::new()) }
    }

    /// The trigger's outputs, viewed in place (looked up once per render).
    pub(crate) fn trigger(&self) -> JinjaValue {
        self.trigger.get_or_init(|| from_json_shared(self.scope.trigger())).clone()
    }

    /// An action's record, viewed in place (looked up once per render).
    pub(crate) fn action(&self, name: &str) -> Option<JinjaValue> {
        if let Ok(cache) = self.actions.lock() {
            if let Some((_, v)) = cache.iter().find(|(n, _)| n == name) {
                return Some(v.clone());
            }
        }
        let value = from_json_shared(self.scope.action(name)?);
        if let Ok(mut cache) = self.actions.lock() {
            cache.push((name.to_string(), value.clone()));
        }
        Some(value)
    }
}

/// The scope handle of the render in progress.
pub(crate) fn scope_handle(state: &State) -> Result<Arc<ScopeHandle>, minijinja::Error> {
    state
        .lookup(SCOPE_KEY)
        .and_then(|v| v.downcast_object::<ScopeHandle>())
        .ok_or_else(|| invalid("this function needs a run: it is not available here".into()))
}

/// Compiles one expression (the text between `{{` and `}}`).
pub fn compile_expression(source: &str) -> Result<Arc<Compiled>, ExprError> {
    let expr =
        ENV.compile_expression_owned(source.to_string()).map_err(|e| ExprError::from_jinja(&e, source))?;
    Ok(Arc::new(Compiled { source: source.to_string(), expr, native: Native::parse(source) }))
}

/// Compiles a flow value: strings become templates, arrays and objects are walked.
pub fn compile(value: &Value) -> Result<Template, ExprError> {
    match value {
        Value::String(s) => compile_string(s),
        Value::Array(items) => Ok(Template::Array(items.iter().map(compile).collect::<Result<_, _>>()?)),
        Value::Object(map) => Ok(Template::Object(
            map.iter().map(|(k, v)| Ok((k.clone(), compile(v)?))).collect::<Result<_, ExprError>>()?,
        )),
        other => Ok(Template::Literal(other.clone())),
    }
}

fn compile_string(s: &str) -> Result<Template, ExprError> {
    if !s.contains("{{") {
        return Ok(Template::Literal(Value::String(s.to_string())));
    }
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = find_close(after).ok_or_else(|| ExprError {
            message: "unclosed `{{`: add the matching `}}`".into(),
            source_text: Some(s.to_string()),
        })?;
        parts.push(Part::Expr(compile_expression(after[..end].trim())?));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    match parts.as_slice() {
        [Part::Expr(e)] => Ok(Template::Expr(e.clone())),
        _ => Ok(Template::Text(parts)),
    }
}

/// The byte offset of the `}}` closing an expression, skipping `}}` inside string literals
/// (so `{{ json('{"a": {"b": 1}}') }}` works).
fn find_close(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'}' && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

impl Compiled {
    /// The expression's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates natively when that gives an answer, else in the context `ctx` makes.
    fn eval_with(&self, inputs: &Inputs<'_>, ctx: &LazyContext<'_>) -> Result<Value, ExprError> {
        match self.native.as_ref().and_then(|native| native.eval(inputs)) {
            Some(value) => Ok(value),
            None => self.eval(ctx.get()),
        }
    }

    /// Evaluates to a minijinja value; a missing property is an error naming it.
    pub(crate) fn eval_jinja(&self, ctx: &JinjaValue) -> Result<JinjaValue, ExprError> {
        let value = self.expr.eval(ctx.clone()).map_err(|e| ExprError::from_jinja(&e, &self.source))?;
        if value.is_undefined() {
            return Err(self.diagnose_undefined(ctx));
        }
        Ok(value)
    }

    /// Evaluates to JSON.
    pub(crate) fn eval(&self, ctx: &JinjaValue) -> Result<Value, ExprError> {
        let value = self.eval_jinja(ctx)?;
        try_to_json(&value).map_err(|e| ExprError {
            message: format!("result is not JSON: {e}"),
            source_text: Some(self.source.clone()),
        })
    }

    /// Re-evaluates the expression through a function that refuses undefined values, so that
    /// minijinja names the property that was missing. Only runs on the error path.
    fn diagnose_undefined(&self, ctx: &JinjaValue) -> ExprError {
        let fallback = || {
            ExprError::new(
                format!("`{}` has no value: a property it reads doesn't exist", self.source),
                Some(&self.source),
            )
        };
        let Ok(check) = ENV.compile_expression_owned(format!("__strict(({}))", self.source)) else {
            return fallback();
        };
        match check.eval(ctx.clone()) {
            Err(e) => ExprError::from_jinja(&e, &self.source),
            Ok(_) => fallback(),
        }
    }
}

/// A render context made only when an expression needs the template engine.
pub(crate) struct LazyContext<'a> {
    made: OnceLock<JinjaValue>,
    make: Box<dyn Fn() -> JinjaValue + 'a>,
}

impl<'a> LazyContext<'a> {
    /// A context `make` builds on first use.
    pub(crate) fn new(make: impl Fn() -> JinjaValue + 'a) -> Self {
        LazyContext { made: OnceLock::new(), make: Box::new(make) }
    }

    fn get(&self) -> &JinjaValue {
        self.made.get_or_init(|| (self.make)())
    }
}

impl Template {
    /// Renders the value in a run's scope: natively where an expression allows it, else by
    /// the template engine.
    pub fn render(&self, scope: &Arc<dyn Scope>) -> Result<Value, ExprError> {
        let inputs = Inputs { scope: Some(scope), ..Inputs::default() };
        self.render_with(&inputs, &LazyContext::new(|| context(Some(scope.clone()), &[])))
    }

    /// Renders with native evaluation over `inputs`, and the template engine in the context
    /// `ctx` makes for the expressions that need it.
    pub(crate) fn render_with(&self, inputs: &Inputs<'_>, ctx: &LazyContext<'_>) -> Result<Value, ExprError> {
        match self {
            Template::Literal(v) => Ok(v.clone()),
            Template::Expr(e) => e.eval_with(inputs, ctx),
            Template::Text(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => out.push_str(t),
                        Part::Expr(e) => out.push_str(&text(&e.eval_with(inputs, ctx)?)),
                    }
                }
                Ok(Value::String(out))
            }
            Template::Array(items) => {
                Ok(Value::Array(items.iter().map(|t| t.render_with(inputs, ctx)).collect::<Result<_, _>>()?))
            }
            Template::Object(fields) => Ok(Value::Object(
                fields.iter().map(|(k, t)| Ok((k.clone(), t.render_with(inputs, ctx)?))).collect::<Result<
                    _,
                    ExprError,
                >>(
                )?,
            )),
        }
    }

    /// Whether every expression in the value has a native form.
    pub(crate) fn is_native(&self) -> bool {
        match self {
            Template::Literal(_) => true,
            Template::Expr(e) => e.native.is_some(),
            Template::Text(parts) => parts.iter().all(|part| match part {
                Part::Text(_) => true,
                Part::Expr(e) => e.native.is_some(),
            }),
            Template::Array(items) => items.iter().all(Template::is_native),
            Template::Object(fields) => fields.iter().all(|(_, t)| t.is_native()),
        }
    }

    /// Renders the value with no run: workflow functions fail, everything else works.
    pub fn render_detached(&self) -> Result<Value, ExprError> {
        self.render_in(&context(None, &[]))
    }

    pub(crate) fn render_in(&self, ctx: &JinjaValue) -> Result<Value, ExprError> {
        match self {
            Template::Literal(v) => Ok(v.clone()),
            Template::Expr(e) => e.eval(ctx),
            Template::Text(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => out.push_str(t),
                        Part::Expr(e) => out.push_str(&text(&e.eval(ctx)?)),
                    }
                }
                Ok(Value::String(out))
            }
            Template::Array(items) => {
                Ok(Value::Array(items.iter().map(|t| t.render_in(ctx)).collect::<Result<_, _>>()?))
            }
            Template::Object(fields) => Ok(Value::Object(
                fields
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), t.render_in(ctx)?)))
                    .collect::<Result<_, ExprError>>()?,
            )),
        }
    }

    /// Names this template refers to.
    pub fn references(&self) -> References {
        super::references::collect(self)
    }
}

/// A render context: the run's scope (if any) and extra named values.
pub(crate) fn context(scope: Option<Arc<dyn Scope>>, extra: &[(&str, JinjaValue)]) -> JinjaValue {
    let handle = scope.map(|s| JinjaValue::from_object(ScopeHandle::new(s)));
    context_with_handle(handle, extra)
}

/// A render context sharing an existing scope handle (and its caches).
pub(crate) fn context_with_handle(handle: Option<JinjaValue>, extra: &[(&str, JinjaValue)]) -> JinjaValue {
    let mut pairs: Vec<(&str, JinjaValue)> = Vec::with_capacity(extra.len() + 1);
    if let Some(h) = handle {
        pairs.push((SCOPE_KEY, h));
    }
    pairs.extend(extra.iter().cloned());
    JinjaValue::from_pairs(pairs)
}

/// Evaluates one expression (not a template) with `data` as `triggerBody()` and no other run.
pub fn eval_expression(source: &str, data: Option<Value>) -> Result<Value, ExprError> {
    let compiled = compile_expression(source)?;
    let scope: Arc<dyn Scope> = Arc::new(DataScope { body: data.unwrap_or(Value::Null) });
    compiled.eval(&context(Some(scope), &[]))
}

/// A scope whose only content is a trigger body, for `coflow eval` and tests.
#[derive(Debug, Clone)]
pub struct DataScope {
    /// What `triggerBody()` returns.
    pub body: Value,
}

impl Scope for DataScope {
    fn trigger(&self) -> Arc<Value> {
        Arc::new(serde_json::json!({"headers": {}, "body": self.body}))
    }
    fn action(&self, _name: &str) -> Option<Arc<Value>> {
        None
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
        serde_json::json!({"name": "eval", "run": {"name": "eval"}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_access_is_split() {
        assert_eq!(split_last_access("a.b['c']"), (Some("a.b"), "'c'".to_string()));
        assert_eq!(split_last_access("a.b"), (Some("a"), "'b'".to_string()));
        assert_eq!(split_last_access("x"), (None, "x".to_string()));
    }

    #[test]
    fn close_skips_braces_in_strings() {
        let s = r#" json('{"a": {"b": 1}}') }} tail"#;
        assert_eq!(find_close(s), s.find("}} tail"));
    }
}

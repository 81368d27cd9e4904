//! Compiled templates and the scope they are rendered in.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use minijinja::value::{Object, Value as JinjaValue};
use minijinja::{Environment, Expression, State, UndefinedBehavior};
use serde_json::Value;

/// What a template can see of the run it is rendered in. The engine implements it.
pub trait Scope: Send + Sync + std::fmt::Debug {
    /// The trigger's outputs: `{"headers": …, "body": …}`.
    fn trigger(&self) -> Value;
    /// The record of a finished action: `{"name", "status", "inputs", "outputs", "body", "error", …}`.
    fn action(&self, name: &str) -> Option<Value>;
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

impl ExprError {
    fn from_jinja(err: &minijinja::Error, source: &str) -> Self {
        let mut message = err.to_string();
        if let Some(detail) = err.detail() {
            if !message.contains(detail) {
                message = format!("{message}: {detail}");
            }
        }
        ExprError { message, source_text: Some(source.to_string()) }
    }
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

/// A precompiled minijinja expression and its source.
pub struct Compiled {
    source: String,
    expr: Expression<'static, 'static>,
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

fn build_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_function("triggerBody", |state: &State| -> Result<JinjaValue, minijinja::Error> {
        Ok(JinjaValue::from(minijinja::value::Serde(scope(state)?.trigger().get("body"))))
    });
    env.add_function("body", |state: &State, name: String| -> Result<JinjaValue, minijinja::Error> {
        let record = action_record(state, &name)?;
        Ok(JinjaValue::from(minijinja::value::Serde(record.get("body"))))
    });
    env.add_function("outputs", |state: &State, name: String| -> Result<JinjaValue, minijinja::Error> {
        let record = action_record(state, &name)?;
        Ok(JinjaValue::from(minijinja::value::Serde(record.get("outputs"))))
    });
    env.add_function("variables", |state: &State, name: String| -> Result<JinjaValue, minijinja::Error> {
        let value = scope(state)?
            .variable(&name)
            .ok_or_else(|| invalid(format!("variable '{name}' is not initialized")))?;
        Ok(JinjaValue::from(minijinja::value::Serde(&value)))
    });
    env.add_function("item", |state: &State| -> Result<JinjaValue, minijinja::Error> {
        let value = scope(state)?
            .item(None)
            .ok_or_else(|| invalid("item() is only available inside a loop, select or filter".into()))?;
        Ok(JinjaValue::from(minijinja::value::Serde(&value)))
    });
    env.add_function("concat", |args: minijinja::value::Rest<JinjaValue>| {
        args.iter().map(|v| v.to_string()).collect::<String>()
    });
    env
}

fn invalid(message: String) -> minijinja::Error {
    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message)
}

fn action_record(state: &State, name: &str) -> Result<Value, minijinja::Error> {
    scope(state)?.action(name).ok_or_else(|| invalid(format!("action '{name}' has not run")))
}

/// The scope object is passed in the render context under this name.
const SCOPE_KEY: &str = "__scope";

#[derive(Debug)]
struct ScopeHandle(Arc<dyn Scope>);

impl Object for ScopeHandle {}

fn scope(state: &State) -> Result<Arc<dyn Scope>, minijinja::Error> {
    state
        .lookup(SCOPE_KEY)
        .and_then(|v| v.downcast_object_ref::<ScopeHandle>().map(|h| h.0.clone()))
        .ok_or_else(|| invalid("no run scope".into()))
}

/// Compiles one expression (the text between `{{` and `}}`).
pub fn compile_expression(source: &str) -> Result<Arc<Compiled>, ExprError> {
    let expr =
        ENV.compile_expression_owned(source.to_string()).map_err(|e| ExprError::from_jinja(&e, source))?;
    Ok(Arc::new(Compiled { source: source.to_string(), expr }))
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
        let end = after.find("}}").ok_or_else(|| ExprError {
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

impl Compiled {
    /// The expression's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn eval(&self, ctx: &JinjaValue) -> Result<Value, ExprError> {
        let value = self.expr.eval(ctx.clone()).map_err(|e| ExprError::from_jinja(&e, &self.source))?;
        serde_json::to_value(&value).map_err(|e| ExprError {
            message: format!("result is not JSON: {e}"),
            source_text: Some(self.source.clone()),
        })
    }
}

impl Template {
    /// Renders the value in a run's scope.
    pub fn render(&self, scope: &Arc<dyn Scope>) -> Result<Value, ExprError> {
        let ctx = minijinja::context! { __scope => JinjaValue::from_object(ScopeHandle(scope.clone())) };
        self.render_in(&ctx)
    }

    fn render_in(&self, ctx: &JinjaValue) -> Result<Value, ExprError> {
        match self {
            Template::Literal(v) => Ok(v.clone()),
            Template::Expr(e) => e.eval(ctx),
            Template::Text(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => out.push_str(t),
                        Part::Expr(e) => push_text(&mut out, &e.eval(ctx)?),
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

/// Power Automate's string interpolation: strings as is, null as empty, the rest as JSON.
fn push_text(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Null => {}
        other => out.push_str(&other.to_string()),
    }
}

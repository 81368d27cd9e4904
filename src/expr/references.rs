//! Finding what a template refers to (actions, variables, functions), for the compiler's checks,
//! and which properties of a variable it reads, for mappings.
//!
//! Expressions are parsed with minijinja's own parser, so string literals that look like calls
//! (`'body(x)'`) and method calls (`x.body('y')`) are not mistaken for references.

use std::collections::BTreeMap;

use minijinja::machinery::ast::{CallArg, Expr};
use serde_json::Value;

use super::template::{Part, References, Template};

/// Functions whose first argument names an action.
const ACTION_FUNCTIONS: [&str; 4] = ["body", "outputs", "actions", "result"];

/// Names `template` refers to.
pub fn collect(template: &Template) -> References {
    let mut refs = References::default();
    each_expression(template, &mut |source| collect_source(source, &mut refs));
    refs
}

/// The parts of a variable that templates read: a property with nothing below it is read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reads {
    /// The whole value (also when it is used other than through properties).
    Whole,
    /// Only these properties, each read as far as its own entry says.
    Properties(BTreeMap<String, Reads>),
}

impl Default for Reads {
    fn default() -> Self {
        Reads::Properties(BTreeMap::new())
    }
}

impl Reads {
    /// Adds the read of the property path `path` (an empty path reads the whole value).
    fn add(&mut self, path: &[&str]) {
        let Some((first, rest)) = path.split_first() else {
            *self = Reads::Whole;
            return;
        };
        if let Reads::Properties(properties) = self {
            properties.entry((*first).to_string()).or_default().add(rest);
        }
    }

    /// The part of `value` these reads see: properties nobody reads are left out of maps.
    /// Whatever is not a map is kept whole, so reading it behaves the same.
    pub(crate) fn keep(&self, value: &Value) -> Value {
        match (self, value) {
            (Reads::Properties(properties), Value::Object(map)) => Value::Object(
                map.iter()
                    .filter_map(|(k, v)| properties.get(k).map(|reads| (k.clone(), reads.keep(v))))
                    .collect(),
            ),
            _ => value.clone(),
        }
    }
}

/// What `template` reads of the variable `var`: the property paths it follows from `var`
/// (`var.a.b`), or [`Reads::Whole`] when it uses `var` any other way (passes it to a function,
/// indexes or iterates it) or an expression does not parse.
pub(crate) fn reads_of(template: &Template, var: &str, reads: &mut Reads) {
    each_expression(template, &mut |source| {
        let Ok(expr) = minijinja::machinery::parse_expr(source) else {
            reads.add(&[]);
            return;
        };
        visit(&expr, &mut |e| match e {
            Expr::GetAttr(_) => match attribute_chain(e, var) {
                Some(path) => {
                    reads.add(&path);
                    false
                }
                None => true,
            },
            Expr::Var(v) if v.id == var => {
                reads.add(&[]);
                false
            }
            _ => true,
        });
    });
}

/// The property names of `expr` when it is `var.a.b…` (`["a", "b"]`), else `None`.
fn attribute_chain<'a>(expr: &Expr<'a>, var: &str) -> Option<Vec<&'a str>> {
    let mut names = Vec::new();
    let mut current = expr;
    loop {
        match current {
            Expr::GetAttr(g) => {
                names.push(g.name);
                current = &g.expr;
            }
            Expr::Var(v) if v.id == var => {
                names.reverse();
                return Some(names);
            }
            _ => return None,
        }
    }
}

/// Calls `f` with the source of every expression in `template`.
fn each_expression(template: &Template, f: &mut dyn FnMut(&str)) {
    match template {
        Template::Literal(_) => {}
        Template::Expr(compiled) => f(compiled.source()),
        Template::Text(parts) => {
            for part in parts {
                if let Part::Expr(compiled) = part {
                    f(compiled.source());
                }
            }
        }
        Template::Array(items) => items.iter().for_each(|t| each_expression(t, f)),
        Template::Object(fields) => fields.iter().for_each(|(_, t)| each_expression(t, f)),
    }
}

/// Adds what one expression's source refers to. Sources that do not parse add nothing: they
/// were compiled already, so this only happens for syntax the compiler reports itself.
fn collect_source(source: &str, refs: &mut References) {
    if let Ok(expr) = minijinja::machinery::parse_expr(source) {
        visit(&expr, &mut |e| {
            if let Expr::Call(call) = e {
                if let Expr::Var(var) = &call.expr {
                    record_call(var.id, &call.args, refs);
                }
            }
            true
        });
    }
}

/// Calls `f` on `expr` and, each time it returns true, on the expressions inside.
fn visit<'a>(expr: &Expr<'a>, f: &mut dyn FnMut(&Expr<'a>) -> bool) {
    if !f(expr) {
        return;
    }
    match expr {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::Call(call) => {
            visit(&call.expr, f);
            visit_args(&call.args, f);
        }
        Expr::Slice(s) => {
            visit(&s.expr, f);
            for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                visit(part, f);
            }
        }
        Expr::UnaryOp(op) => visit(&op.expr, f),
        Expr::BinOp(op) => {
            visit(&op.left, f);
            visit(&op.right, f);
        }
        Expr::Compare(cmp) => {
            visit(&cmp.expr, f);
            cmp.ops.iter().for_each(|op| visit(&op.expr, f));
        }
        Expr::IfExpr(e) => {
            visit(&e.test_expr, f);
            visit(&e.true_expr, f);
            if let Some(other) = &e.false_expr {
                visit(other, f);
            }
        }
        Expr::Filter(filter) => {
            if let Some(inner) = &filter.expr {
                visit(inner, f);
            }
            visit_args(&filter.args, f);
        }
        Expr::Test(t) => {
            visit(&t.expr, f);
            visit_args(&t.args, f);
        }
        Expr::GetAttr(g) => visit(&g.expr, f),
        Expr::GetItem(g) => {
            visit(&g.expr, f);
            visit(&g.subscript_expr, f);
        }
        Expr::List(l) => l.items.iter().for_each(|e| visit(e, f)),
        Expr::Tuple(t) => t.items.iter().for_each(|e| visit(e, f)),
        Expr::Map(m) => m.keys.iter().chain(m.values.iter()).for_each(|e| visit(e, f)),
    }
}

fn visit_args<'a>(args: &[CallArg<'a>], f: &mut dyn FnMut(&Expr<'a>) -> bool) {
    for arg in args {
        match arg {
            CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => {
                visit(e, f)
            }
        }
    }
}

fn record_call(function: &str, args: &[CallArg<'_>], refs: &mut References) {
    refs.functions.insert(function.to_string());
    let Some(CallArg::Pos(Expr::Const(constant))) = args.first() else { return };
    let Some(name) = constant.value.as_str() else { return };
    if ACTION_FUNCTIONS.contains(&function) {
        refs.actions.insert(name.to_string());
    } else if function == "variables" {
        refs.variables.insert(name.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refs(text: &str) -> References {
        match crate::expr::compile(&json!(text)) {
            Ok(template) => collect(&template),
            Err(err) => panic!("{text}: {err}"),
        }
    }

    fn set(items: &[&str]) -> std::collections::BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_action_and_variable_references() {
        let r =
            refs("{{ body('a').id ~ outputs('b') ~ variables('v') ~ concat(result('c'), actions('d')) }}");
        assert_eq!(r.actions, set(&["a", "b", "c", "d"]));
        assert_eq!(r.variables, set(&["v"]));
        assert_eq!(r.functions, set(&["actions", "body", "concat", "outputs", "result", "variables"]));
    }

    #[test]
    fn string_literals_and_method_calls_do_not_count() {
        let r = refs("x {{ 'body(\"a\")' ~ thing.body('b') ~ [1,2]|join(',') }} {{ items.keys() }}");
        assert!(r.actions.is_empty(), "{r:?}");
        assert!(r.functions.is_empty(), "{r:?}");
    }

    #[test]
    fn looks_inside_nested_values_and_arguments() {
        let template = crate::expr::compile(
            &json!({"a": ["{{ f(g(body('x'))) }}"], "b": "{{ 1 if variables('y') else 2 }}"}),
        );
        let r = template.map(|t| collect(&t)).unwrap_or_default();
        assert_eq!(r.actions, set(&["x"]));
        assert_eq!(r.variables, set(&["y"]));
        assert_eq!(r.functions, set(&["body", "f", "g", "variables"]));
    }

    #[test]
    fn finds_the_property_paths_a_template_reads() {
        let t = |v: serde_json::Value| crate::expr::compile(&v).unwrap_or_else(|e| panic!("{e}"));
        let reads = |template: &Template| {
            let mut reads = Reads::default();
            reads_of(template, "source", &mut reads);
            reads
        };
        let r = reads(&t(json!(["{{ first(source.a.b).c }} {{ source.d }} {{ source.a }}", "{{ x.y }}"])));
        let value = json!({"a": {"b": [1], "z": 2}, "d": {"e": 3}, "q": 4});
        assert_eq!(r.keep(&value), json!({"a": {"b": [1], "z": 2}, "d": {"e": 3}}));
        let r = reads(&t(json!("{{ first(source.a.b).c }} {{ source.d.e.f }}")));
        assert_eq!(r.keep(&value), json!({"a": {"b": [1]}, "d": {"e": 3}}));
        assert_eq!(reads(&t(json!("{{ opt(source, 'a') }} {{ source.d }}"))), Reads::Whole);
        assert_eq!(reads(&t(json!("{{ source['a'] }}"))), Reads::Whole);
        assert_eq!(reads(&t(json!("plain"))).keep(&value), json!({}));
        assert_eq!(Reads::default().keep(&json!([1])), json!([1]));
    }

    #[test]
    fn a_computed_name_is_a_call_without_a_reference() {
        let r = refs("{{ body('a' ~ 'b') }}");
        assert!(r.actions.is_empty());
        assert_eq!(r.functions, set(&["body"]));
    }
}

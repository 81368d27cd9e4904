//! Finding what a template refers to (actions, variables, functions), for the compiler's checks.
//!
//! Expressions are parsed with minijinja's own parser, so string literals that look like calls
//! (`'body(x)'`) and method calls (`x.body('y')`) are not mistaken for references.

use minijinja::machinery::ast::{CallArg, Expr};

use super::template::{Part, References, Template};

/// Functions whose first argument names an action.
const ACTION_FUNCTIONS: [&str; 4] = ["body", "outputs", "actions", "result"];

/// Names `template` refers to.
pub fn collect(template: &Template) -> References {
    let mut refs = References::default();
    walk_template(template, &mut refs);
    refs
}

fn walk_template(template: &Template, refs: &mut References) {
    match template {
        Template::Literal(_) => {}
        Template::Expr(compiled) => collect_source(compiled.source(), refs),
        Template::Text(parts) => {
            for part in parts {
                if let Part::Expr(compiled) = part {
                    collect_source(compiled.source(), refs);
                }
            }
        }
        Template::Array(items) => items.iter().for_each(|t| walk_template(t, refs)),
        Template::Object(fields) => fields.iter().for_each(|(_, t)| walk_template(t, refs)),
    }
}

/// Adds what one expression's source refers to. Sources that do not parse add nothing: they
/// were compiled already, so this only happens for syntax the compiler reports itself.
fn collect_source(source: &str, refs: &mut References) {
    if let Ok(expr) = minijinja::machinery::parse_expr(source) {
        walk(&expr, refs);
    }
}

fn walk(expr: &Expr<'_>, refs: &mut References) {
    match expr {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::Call(call) => {
            if let Expr::Var(var) = &call.expr {
                record_call(var.id, &call.args, refs);
            } else {
                walk(&call.expr, refs);
            }
            walk_args(&call.args, refs);
        }
        Expr::Slice(s) => {
            walk(&s.expr, refs);
            for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                walk(part, refs);
            }
        }
        Expr::UnaryOp(op) => walk(&op.expr, refs),
        Expr::BinOp(op) => {
            walk(&op.left, refs);
            walk(&op.right, refs);
        }
        Expr::Compare(cmp) => {
            walk(&cmp.expr, refs);
            cmp.ops.iter().for_each(|op| walk(&op.expr, refs));
        }
        Expr::IfExpr(e) => {
            walk(&e.test_expr, refs);
            walk(&e.true_expr, refs);
            if let Some(other) = &e.false_expr {
                walk(other, refs);
            }
        }
        Expr::Filter(f) => {
            if let Some(inner) = &f.expr {
                walk(inner, refs);
            }
            walk_args(&f.args, refs);
        }
        Expr::Test(t) => {
            walk(&t.expr, refs);
            walk_args(&t.args, refs);
        }
        Expr::GetAttr(g) => walk(&g.expr, refs),
        Expr::GetItem(g) => {
            walk(&g.expr, refs);
            walk(&g.subscript_expr, refs);
        }
        Expr::List(l) => l.items.iter().for_each(|e| walk(e, refs)),
        Expr::Tuple(t) => t.items.iter().for_each(|e| walk(e, refs)),
        Expr::Map(m) => m.keys.iter().chain(m.values.iter()).for_each(|e| walk(e, refs)),
    }
}

fn walk_args(args: &[CallArg<'_>], refs: &mut References) {
    for arg in args {
        match arg {
            CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => {
                walk(e, refs)
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
    fn a_computed_name_is_a_call_without_a_reference() {
        let r = refs("{{ body('a' ~ 'b') }}");
        assert!(r.actions.is_empty());
        assert_eq!(r.functions, set(&["body"]));
    }
}

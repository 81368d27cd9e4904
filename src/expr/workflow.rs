//! Workflow functions: what a template reads of its run through the [`Scope`](super::Scope)
//! (`triggerBody()`, `body('x')`, `variables('x')`, `item()`…), plus `mapping()` and `lookup()`.

use minijinja::value::{Rest, Value as JinjaValue};
use minijinja::{Environment, State};
use serde_json::Value;

use super::json_view::JsonView;
use super::mapping::MAPPING_KEY;
use super::template::{SCOPE_KEY, ScopeHandle, check_args, invalid, scope_handle, undefined_error};
use super::values::{from_json, from_json_owned, text, to_json};

/// The names this module provides.
pub(crate) const NAMES: &[&str] = &[
    "action",
    "actions",
    "body",
    "formDataMultiValues",
    "formDataValue",
    "item",
    "items",
    "iterationIndexes",
    "listCallbackUrl",
    "multipartBody",
    "outputs",
    "parameters",
    "result",
    "trigger",
    "triggerBody",
    "triggerFormDataMultiValues",
    "triggerFormDataValue",
    "triggerMultipartBody",
    "triggerOutputs",
    "variables",
    "workflow",
];

type Jr = Result<JinjaValue, minijinja::Error>;

fn attr(value: &JinjaValue, key: &str) -> JinjaValue {
    match value.get_attr(key) {
        Ok(v) if !v.is_undefined() => v,
        _ => JinjaValue::from(()),
    }
}

fn no_args(name: &str, args: &[JinjaValue]) -> Result<(), minijinja::Error> {
    check_args(name, 0, 0, args)
}

fn action_record(state: &State, name: &str) -> Jr {
    scope_handle(state)?.action(name).ok_or_else(|| {
        invalid(format!(
            "the action '{name}' has not run yet (or does not exist): check the name and its run_after"
        ))
    })
}

/// An action's body: its record's `body`, else `outputs.body`.
fn action_body(record: &JinjaValue) -> JinjaValue {
    let body = attr(record, "body");
    if body.is_none() { attr(&attr(record, "outputs"), "body") } else { body }
}

/// Form-data values for `key` in a body: `$formdata` entries, else a property of that name.
fn form_values(body: &JinjaValue, key: &str) -> Vec<Value> {
    // A body read from the run is a view of a shared document: read it in place.
    let converted;
    let body = match body.downcast_object_ref::<JsonView>() {
        Some(view) => view.json(),
        None => {
            converted = to_json(body);
            &converted
        }
    };
    if let Some(entries) = body.get("$formdata").and_then(Value::as_array) {
        return entries
            .iter()
            .filter(|e| e.get("key").and_then(Value::as_str) == Some(key))
            .map(|e| e.get("value").cloned().unwrap_or(Value::Null))
            .collect();
    }
    match body.get(key) {
        Some(Value::Array(items)) => items.clone(),
        Some(v) => vec![v.clone()],
        None => Vec::new(),
    }
}

fn single_form_value(mut values: Vec<Value>, key: &str) -> Jr {
    match values.len() {
        1 => Ok(from_json_owned(values.swap_remove(0))),
        0 => Err(invalid(format!("the form data has no key '{key}'"))),
        _ => Err(invalid(format!(
            "the form data has more than one value for '{key}': use the MultiValues function"
        ))),
    }
}

fn unsupported(name: &'static str) -> impl Fn(Rest<JinjaValue>) -> Jr {
    move |_| Err(invalid(format!("{name}() is not supported by coflow")))
}

/// Adds the workflow functions to the environment.
pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_function("trigger", |state: &State, args: Rest<JinjaValue>| -> Jr {
        no_args("trigger", &args)?;
        let outputs = scope_handle(state)?.trigger();
        Ok(JinjaValue::from_pairs([("outputs", outputs)]))
    });
    env.add_function("triggerOutputs", |state: &State, args: Rest<JinjaValue>| -> Jr {
        no_args("triggerOutputs", &args)?;
        Ok(scope_handle(state)?.trigger())
    });
    env.add_function("triggerBody", |state: &State, args: Rest<JinjaValue>| -> Jr {
        no_args("triggerBody", &args)?;
        Ok(attr(&scope_handle(state)?.trigger(), "body"))
    });
    env.add_function("triggerFormDataValue", |state: &State, key: String| -> Jr {
        let body = attr(&scope_handle(state)?.trigger(), "body");
        single_form_value(form_values(&body, &key), &key)
    });
    env.add_function("triggerFormDataMultiValues", |state: &State, key: String| -> Jr {
        let body = attr(&scope_handle(state)?.trigger(), "body");
        Ok(from_json_owned(Value::Array(form_values(&body, &key))))
    });
    env.add_function("actions", |state: &State, name: String| action_record(state, &name));
    env.add_function("outputs", |state: &State, name: String| -> Jr {
        Ok(attr(&action_record(state, &name)?, "outputs"))
    });
    env.add_function("body", |state: &State, name: String| -> Jr {
        Ok(action_body(&action_record(state, &name)?))
    });
    env.add_function("formDataValue", |state: &State, name: String, key: String| -> Jr {
        let body = action_body(&action_record(state, &name)?);
        single_form_value(form_values(&body, &key), &key)
    });
    env.add_function("formDataMultiValues", |state: &State, name: String, key: String| -> Jr {
        let body = action_body(&action_record(state, &name)?);
        Ok(from_json_owned(Value::Array(form_values(&body, &key))))
    });
    env.add_function("item", |state: &State, args: Rest<JinjaValue>| -> Jr {
        no_args("item", &args)?;
        let value = scope_handle(state)?.scope.item(None);
        value
            .map(from_json_owned)
            .ok_or_else(|| invalid("item() is only available inside a foreach, select or filter".into()))
    });
    env.add_function("items", |state: &State, name: String| -> Jr {
        let value = scope_handle(state)?.scope.item(Some(&name));
        value
            .map(from_json_owned)
            .ok_or_else(|| invalid(format!("items('{name}') is only available inside the loop '{name}'")))
    });
    env.add_function("iterationIndexes", |state: &State, name: String| -> Jr {
        let index = scope_handle(state)?.scope.iteration_index(&name);
        index.map(|i| JinjaValue::from(i as u64)).ok_or_else(|| {
            invalid(format!("iterationIndexes('{name}') is only available inside the loop '{name}'"))
        })
    });
    env.add_function("variables", |state: &State, name: String| -> Jr {
        let value = scope_handle(state)?.scope.variable(&name);
        value.map(from_json_owned).ok_or_else(|| {
            invalid(format!(
                "the variable '{name}' is not initialized: add an initialize_variable action before this one"
            ))
        })
    });
    env.add_function("parameters", |state: &State, name: String| -> Jr {
        let value = scope_handle(state)?.scope.parameter(&name);
        value.map(from_json_owned).ok_or_else(|| invalid(format!("the flow has no parameter '{name}'")))
    });
    env.add_function("result", |state: &State, name: String| -> Jr {
        let value = scope_handle(state)?.scope.result(&name);
        value.map(from_json_owned).ok_or_else(|| {
            invalid(format!(
                "result('{name}'): '{name}' is not a scope, condition, switch or loop that has run"
            ))
        })
    });
    env.add_function("workflow", |state: &State, args: Rest<JinjaValue>| -> Jr {
        no_args("workflow", &args)?;
        Ok(from_json_owned(scope_handle(state)?.scope.workflow()))
    });
    env.add_function("action", unsupported("action"));
    env.add_function("listCallbackUrl", unsupported("listCallbackUrl"));
    env.add_function("multipartBody", unsupported("multipartBody"));
    env.add_function("triggerMultipartBody", unsupported("triggerMultipartBody"));
    env.add_function("mapping", mapping);
    env.add_function("lookup", lookup);
}

/// `mapping('name', value)`: renders the named mapping file's fields over `value`.
fn mapping(state: &State, name: String, value: JinjaValue) -> Jr {
    if value.is_undefined() {
        return Err(undefined_error(&value));
    }
    let handle = state.lookup(SCOPE_KEY);
    let Some(scope) = handle.as_ref().and_then(|h| h.downcast_object_ref::<ScopeHandle>()) else {
        return Err(invalid("mapping() needs a run: it is not available here".into()));
    };
    let Some(mappings) = scope.scope.mappings() else {
        return Err(invalid("this flow has no mapping files: put them in flows/mappings/".into()));
    };
    let Some(found) = mappings.get(&name) else {
        let known: Vec<&str> = mappings.names().collect();
        return Err(invalid(format!("there is no mapping '{name}' (known: {})", known.join(", "))));
    };
    let rendered = found.render_jinja(value, handle.clone()).map_err(|e| invalid(e.to_string()))?;
    Ok(from_json_owned(rendered))
}

/// `lookup('table', key, default?)`: a value from the current mapping file's lookup tables.
fn lookup(state: &State, table: String, key: JinjaValue, default: Option<JinjaValue>) -> Jr {
    if key.is_undefined() {
        return Err(undefined_error(&key));
    }
    let current = state.lookup(MAPPING_KEY);
    let Some(m) = current.as_ref().and_then(|m| m.downcast_object_ref::<super::mapping::MappingHandle>())
    else {
        return Err(invalid("lookup() is only available inside a mapping file".into()));
    };
    let key_text = text(&to_json(&key)).into_owned();
    match m.0.lookup(&table, &key_text) {
        Ok(Some(v)) => Ok(from_json(v)),
        Ok(None) => default.ok_or_else(|| {
            invalid(format!(
                "the lookup table '{table}' has no entry '{key_text}': add it, or pass a default as the third argument"
            ))
        }),
        Err(e) => Err(invalid(e)),
    }
}

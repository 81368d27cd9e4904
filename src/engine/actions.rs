//! Actions that finish without waiting: data operations, variables, response and terminate.

use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use super::Exec;
use super::block::body_of;
use super::record::{ActionError, ActionResult, ResponseRecord, Status};
use super::state::{BodyOf, Frame, ItemScope, Termination, Variable, lock};
use crate::expr::{ExprError, Scope, Template};
use crate::flow::{Action, ActionKind, VariableType};

/// What a simple action produced: its rendered inputs and its outputs.
type Produced = Result<(Option<Value>, Option<Value>), Failure>;

/// Why a simple action failed, with the inputs rendered before the failure.
pub(crate) struct Failure {
    pub inputs: Option<Value>,
    pub error: ActionError,
}

impl From<ActionError> for Failure {
    fn from(error: ActionError) -> Self {
        Failure { inputs: None, error }
    }
}

/// An expression error as the run record shows it.
pub(crate) fn template_error(error: ExprError) -> ActionError {
    let message = match &error.source_text {
        Some(source) => format!("unable to evaluate `{{{{ {source} }}}}`: {}", error.message),
        None => error.message,
    };
    ActionError::new("InvalidTemplate", message)
}

/// A JSON object of `fields`, in order, the values moved in (`json!` would copy them).
pub(crate) fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    let mut map = Map::with_capacity(N);
    for (key, value) in fields {
        map.insert(key.to_string(), value);
    }
    Value::Object(map)
}

/// Renders a template, mapping errors to `InvalidTemplate`.
pub(crate) fn render(template: &Template, scope: &Arc<dyn Scope>) -> Result<Value, ActionError> {
    template.render(scope).map_err(template_error)
}

fn invalid(message: impl Into<String>) -> ActionError {
    ActionError::new("InvalidInputs", message)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Runs `action` at once if it never waits; `None` means it must run as a future.
pub(crate) fn run_sync(
    exec: &Exec<'_>,
    action: &Action,
    frame: &Arc<Frame>,
) -> Option<(ActionResult, BodyOf)> {
    let scope: Arc<dyn Scope> = frame.clone();
    let produced = match &action.kind {
        ActionKind::Compose { inputs } => compose(inputs, &scope),
        ActionKind::ParseJson { content, schema } => parse_json(content, schema.as_ref(), &scope),
        ActionKind::Select { from, map } => select(from, map, frame),
        ActionKind::Filter { from, condition } => filter(from, condition, frame),
        ActionKind::Join { from, separator } => join(from, separator, &scope),
        ActionKind::InitializeVariable { name, kind, value } => {
            initialize_variable(frame, name, *kind, value.as_ref(), &scope)
        }
        ActionKind::SetVariable { name, value } => set_variable(frame, name, value, &scope),
        ActionKind::IncrementVariable { name, by } => add_to_variable(frame, name, by, &scope, 1),
        ActionKind::DecrementVariable { name, by } => add_to_variable(frame, name, by, &scope, -1),
        ActionKind::AppendToArrayVariable { name, value } => append_to_array(frame, name, value, &scope),
        ActionKind::AppendToStringVariable { name, value } => append_to_string(frame, name, value, &scope),
        ActionKind::Response { status, headers, body } => response(frame, status, headers, body, &scope),
        ActionKind::Terminate { status, code, message } => {
            terminate(frame, status, code.as_ref(), message.as_ref(), &scope)
        }
        _ => return None,
    };
    let now = exec.clock().now();
    let mut result = ActionResult::new(Status::Succeeded);
    result.started_at = Some(now);
    result.ended_at = Some(now);
    result.attempts = 1;
    match produced {
        Ok((inputs, outputs)) => {
            result.inputs = inputs;
            result.outputs = outputs;
        }
        Err(failure) => {
            result.status = Status::Failed;
            result.inputs = failure.inputs;
            result.error = Some(failure.error);
        }
    }
    Some((result, body_of(&action.kind)))
}

fn compose(inputs: &Template, scope: &Arc<dyn Scope>) -> Produced {
    let value = render(inputs, scope)?;
    Ok((Some(value.clone()), Some(value)))
}

fn parse_json(content: &Template, schema: Option<&Value>, scope: &Arc<dyn Scope>) -> Produced {
    let content = render(content, scope)?;
    let inputs = object([("content", content), ("schema", schema.cloned().unwrap_or(Value::Null))]);
    let fail = |error: ActionError| Failure { inputs: Some(inputs.clone()), error };
    let parsed = match &inputs["content"] {
        Value::String(text) => serde_json::from_str(text)
            .map_err(|e| fail(ActionError::new("InvalidJSON", format!("content is not valid JSON: {e}"))))?,
        other => other.clone(),
    };
    if let Some(schema) = schema {
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| fail(ActionError::new("InvalidSchema", format!("the schema is not valid: {e}"))))?;
        let problems: Vec<String> = validator
            .iter_errors(&parsed)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() { e.to_string() } else { format!("{path}: {e}") }
            })
            .collect();
        if !problems.is_empty() {
            let message = format!("content does not match the schema: {}", problems.join("; "));
            return Err(fail(ActionError::new("ValidationFailed", message)));
        }
    }
    Ok((Some(inputs), Some(parsed)))
}

fn array_input(template: &Template, scope: &Arc<dyn Scope>, key: &str) -> Result<Vec<Value>, ActionError> {
    match render(template, scope)? {
        Value::Array(items) => Ok(items),
        other => Err(invalid(format!("`{key}` must be an array, got {}", type_name(&other)))),
    }
}

fn select(from: &Template, map: &Template, frame: &Arc<Frame>) -> Produced {
    let scope: Arc<dyn Scope> = frame.clone();
    let items = array_input(from, &scope, "from")?;
    let inputs = json!({"from": items});
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let item_scope: Arc<dyn Scope> = Arc::new(ItemScope { frame: frame.clone(), item });
        let value =
            render(map, &item_scope).map_err(|error| Failure { inputs: Some(inputs.clone()), error })?;
        out.push(value);
    }
    Ok((Some(inputs), Some(Value::Array(out))))
}

fn filter(from: &Template, condition: &Template, frame: &Arc<Frame>) -> Produced {
    let scope: Arc<dyn Scope> = frame.clone();
    let inputs = object([("from", Value::Array(array_input(from, &scope, "from")?))]);
    let fail = |error: ActionError| Failure { inputs: Some(inputs.clone()), error };
    let items = inputs["from"].as_array().map_or(&[][..], Vec::as_slice);
    let mut out = Vec::new();
    for item in items {
        let item_scope: Arc<dyn Scope> = Arc::new(ItemScope { frame: frame.clone(), item: item.clone() });
        match render(condition, &item_scope).map_err(fail)? {
            Value::Bool(true) => out.push(item.clone()),
            Value::Bool(false) => {}
            other => {
                let message = format!("`where` must give a boolean, got {}", type_name(&other));
                return Err(fail(ActionError::new("InvalidTemplate", message)));
            }
        }
    }
    Ok((Some(inputs), Some(Value::Array(out))))
}

/// Power Automate's text form of a value: strings as is, null as empty, the rest as JSON.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn join(from: &Template, separator: &Template, scope: &Arc<dyn Scope>) -> Produced {
    let items = array_input(from, scope, "from")?;
    let separator = match render(separator, scope)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let joined = items.iter().map(as_text).collect::<Vec<_>>().join(&separator);
    let inputs = object([("from", Value::Array(items)), ("separator", Value::String(separator))]);
    Ok((Some(inputs), Some(Value::String(joined))))
}

fn fits(kind: VariableType, value: &Value) -> bool {
    match kind {
        VariableType::Boolean => value.is_boolean(),
        VariableType::Integer => value.is_i64() || value.is_u64(),
        VariableType::Float => value.is_number(),
        VariableType::String => value.is_string(),
        VariableType::Array => value.is_array(),
        VariableType::Object => value.is_object(),
    }
}

fn kind_name(kind: VariableType) -> &'static str {
    match kind {
        VariableType::Boolean => "boolean",
        VariableType::Integer => "integer",
        VariableType::Float => "float",
        VariableType::String => "string",
        VariableType::Array => "array",
        VariableType::Object => "object",
    }
}

fn empty_of(kind: VariableType) -> Value {
    match kind {
        VariableType::Boolean => Value::Bool(false),
        VariableType::Integer => json!(0),
        VariableType::Float => json!(0.0),
        VariableType::String => Value::String(String::new()),
        VariableType::Array => Value::Array(Vec::new()),
        VariableType::Object => Value::Object(Default::default()),
    }
}

fn type_mismatch(name: &str, kind: VariableType, value: &Value) -> ActionError {
    ActionError::new(
        "InvalidVariableType",
        format!("variable '{name}' is of type {}, the value is {}", kind_name(kind), type_name(value)),
    )
}

fn not_initialized(name: &str) -> ActionError {
    ActionError::new(
        "VariableNotInitialized",
        format!("variable '{name}' is not initialized: add an initialize_variable action before this one"),
    )
}

fn variable_io(name: &str, value: Value, new_value: Value) -> (Option<Value>, Option<Value>) {
    let io = |value| object([("name", Value::String(name.to_string())), ("value", value)]);
    (Some(io(value)), Some(io(new_value)))
}

fn initialize_variable(
    frame: &Frame,
    name: &str,
    kind: VariableType,
    value: Option<&Template>,
    scope: &Arc<dyn Scope>,
) -> Produced {
    let value = match value {
        Some(template) => render(template, scope)?,
        None => empty_of(kind),
    };
    let inputs = json!({"name": name, "variable_type": kind_name(kind), "value": value});
    let fail = |error: ActionError| Failure { inputs: Some(inputs.clone()), error };
    if !fits(kind, &value) {
        return Err(fail(type_mismatch(name, kind, &value)));
    }
    let mut variables = lock(&frame.shared.variables);
    if variables.contains_key(name) {
        let message = format!("variable '{name}' is already initialized: give the second one another name");
        return Err(fail(ActionError::new("VariableAlreadyInitialized", message)));
    }
    variables.insert(name.to_string(), Variable { kind, value: value.clone() });
    drop(variables);
    let outputs = object([("name", Value::String(name.to_string())), ("value", value)]);
    Ok((Some(inputs), Some(outputs)))
}

/// Changes a variable under the variables lock, so concurrent loop iterations never lose an update.
fn update_variable(
    frame: &Frame,
    name: &str,
    value: Value,
    change: impl FnOnce(&mut Variable, &Value) -> Result<(), ActionError>,
) -> Produced {
    let mut variables = lock(&frame.shared.variables);
    let fail = |error: ActionError| Failure { inputs: Some(json!({"name": name, "value": value})), error };
    let variable = variables.get_mut(name).ok_or_else(|| fail(not_initialized(name)))?;
    change(variable, &value).map_err(fail)?;
    let new_value = variable.value.clone();
    drop(variables);
    Ok(variable_io(name, value, new_value))
}

fn set_variable(frame: &Frame, name: &str, value: &Template, scope: &Arc<dyn Scope>) -> Produced {
    let value = render(value, scope)?;
    update_variable(frame, name, value, |variable, value| {
        if !fits(variable.kind, value) {
            return Err(type_mismatch(name, variable.kind, value));
        }
        variable.value = value.clone();
        Ok(())
    })
}

fn add_to_variable(frame: &Frame, name: &str, by: &Template, scope: &Arc<dyn Scope>, sign: i64) -> Produced {
    let by = render(by, scope)?;
    update_variable(frame, name, by, |variable, by| {
        let sum = match variable.kind {
            VariableType::Integer => {
                let step = by.as_i64().ok_or_else(|| {
                    invalid(format!(
                        "variable '{name}' is an integer: `by` must be an integer, got {}",
                        type_name(by)
                    ))
                })?;
                let current = variable.value.as_i64().unwrap_or(0);
                let sum = step.checked_mul(sign).and_then(|s| current.checked_add(s)).ok_or_else(|| {
                    ActionError::new("InvalidVariableValue", format!("variable '{name}' would overflow"))
                })?;
                json!(sum)
            }
            VariableType::Float => {
                let step = by.as_f64().ok_or_else(|| {
                    invalid(format!("variable '{name}': `by` must be a number, got {}", type_name(by)))
                })?;
                json!(variable.value.as_f64().unwrap_or(0.0) + step * sign as f64)
            }
            other => {
                let message = format!(
                    "variable '{name}' is of type {}: only integer and float variables can be incremented or decremented",
                    kind_name(other)
                );
                return Err(ActionError::new("InvalidVariableType", message));
            }
        };
        variable.value = sum;
        Ok(())
    })
}

fn append_to_array(frame: &Frame, name: &str, value: &Template, scope: &Arc<dyn Scope>) -> Produced {
    let value = render(value, scope)?;
    update_variable(frame, name, value, |variable, value| match &mut variable.value {
        Value::Array(items) => {
            items.push(value.clone());
            Ok(())
        }
        _ => Err(ActionError::new(
            "InvalidVariableType",
            format!("variable '{name}' is of type {}, not array", kind_name(variable.kind)),
        )),
    })
}

fn append_to_string(frame: &Frame, name: &str, value: &Template, scope: &Arc<dyn Scope>) -> Produced {
    let value = render(value, scope)?;
    update_variable(frame, name, value, |variable, value| {
        if value.is_array() || value.is_object() {
            return Err(invalid(format!(
                "only text can be appended to string variable '{name}', got {}",
                type_name(value)
            )));
        }
        match &mut variable.value {
            Value::String(text) => {
                text.push_str(&as_text(value));
                Ok(())
            }
            _ => Err(ActionError::new(
                "InvalidVariableType",
                format!("variable '{name}' is of type {}, not string", kind_name(variable.kind)),
            )),
        }
    })
}

fn response(
    frame: &Frame,
    status: &Template,
    headers: &Template,
    body: &Template,
    scope: &Arc<dyn Scope>,
) -> Produced {
    let status = render(status, scope)?;
    let headers = render(headers, scope)?;
    let body = render(body, scope)?;
    let inputs = object([("status", status), ("headers", headers), ("body", body)]);
    let fail = |error: ActionError| Failure { inputs: Some(inputs.clone()), error };
    let status = &inputs["status"];
    let code = status
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (200..=599).contains(c) && !(300..400).contains(c))
        .ok_or_else(|| fail(invalid(format!("`status` must be a 2xx, 4xx or 5xx code, got {status}"))))?;
    let headers: IndexMap<String, String> = match &inputs["headers"] {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), as_text(v))).collect(),
        Value::Null => IndexMap::new(),
        other => return Err(fail(invalid(format!("`headers` must be an object, got {}", type_name(other))))),
    };
    let record = ResponseRecord { status: code, headers, body: inputs["body"].clone() };
    {
        let mut slot = lock(&frame.shared.response);
        if slot.is_some() {
            let message = "the request was already answered by an earlier response action";
            return Err(fail(ActionError::new("ResponseAlreadySent", message)));
        }
        // The observer hears of the answer while it is stored, so the record moves into the
        // slot instead of being copied for it.
        if let Some(observer) = &frame.shared.observer {
            observer.response(&record);
        }
        *slot = Some(record);
    }
    Ok((Some(inputs.clone()), Some(inputs)))
}

fn optional_text(template: Option<&Template>, scope: &Arc<dyn Scope>) -> Result<Option<String>, ActionError> {
    template.map(|t| render(t, scope).map(|v| as_text(&v))).transpose()
}

fn terminate(
    frame: &Frame,
    status: &str,
    code: Option<&Template>,
    message: Option<&Template>,
    scope: &Arc<dyn Scope>,
) -> Produced {
    let code = optional_text(code, scope)?;
    let message = optional_text(message, scope)?;
    let inputs = json!({"status": status, "code": code, "message": message});
    let run_status = match status.to_ascii_lowercase().as_str() {
        "succeeded" => Status::Succeeded,
        "failed" => Status::Failed,
        "cancelled" => Status::Cancelled,
        other => {
            let error = invalid(format!("`status` must be succeeded, failed or cancelled, got `{other}`"));
            return Err(Failure { inputs: Some(inputs), error });
        }
    };
    // Only a failed run carries the terminate's error (reference §2.8).
    let error = (run_status == Status::Failed).then(|| {
        ActionError::new(
            code.unwrap_or_else(|| "Terminated".into()),
            message.unwrap_or_else(|| "the run was terminated with status failed".into()),
        )
    });
    {
        let mut termination = lock(&frame.shared.termination);
        if termination.is_none() {
            *termination = Some(Termination { status: run_status, error });
        }
    }
    frame.shared.stop.cancel();
    Ok((Some(inputs), None))
}
